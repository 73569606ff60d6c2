//! `rowferry check`: does the source server and the Kafka cluster give rowferry what it needs?
//!
//! Every requirement becomes one line, `setting: expected X, found Y — fix: <exact SQL or config
//! line>`, prefixed by `ok`, `warn` or `FAIL`. The check fails (exit code 1) when any line is
//! FAIL; warnings are recommendations. `run` and `snapshot` apply the source rules before they
//! read ([`preflight`]). The rules are pure functions ([`rules`]) fed by two
//! gatherers (`source`, `kafka`) that run concurrently.

mod kafka;
mod preflight;
mod report;
pub mod rules;
mod source;

pub use preflight::{PreflightError, PreflightFailure, preflight};
pub use report::{Finding, Report, Status};

use crate::config::Settings;

/// Runs every check against the configured source and Kafka cluster.
pub async fn run(settings: &Settings) -> Report {
    let (mut findings, kafka) = tokio::join!(source::check(settings), kafka::check(settings));
    findings.extend(kafka);
    Report { findings }
}
