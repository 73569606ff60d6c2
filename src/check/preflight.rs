//! What `run` and `snapshot` check before they read anything: the source-side rules of
//! `rowferry check`, on the connection the start-up uses anyway.
//!
//! Invariant: rowferry never starts streaming from a server whose binlog it cannot decode
//! completely (statement-based or minimal-image binlogs, no row metadata, GTIDs off, no
//! replication grant, a server_id it shares with the source). Such a start would skip changes
//! silently or stop at the first row; instead it stops before reading, with the same lines
//! `check` prints. Findings that do not make the stream wrong — short binlog retention, the
//! monitoring grant, SELECT when no snapshot can be asked for, the primary's semi-sync off or
//! missing with `source.semi_sync = true` (rowferry then streams asynchronously) — are returned as
//! warnings.

use super::report::{Finding, Status};
use crate::config::Settings;
use crate::error::ErrorClass;
use crate::source::SourceError;
use mysql_async::Conn;
use std::fmt;

/// Settings that can fail without making the stream wrong.
const ADVISORY: &[&str] = &[
    "binlog retention",
    "REPLICATION CLIENT",
    "BINLOG MONITOR",
    "semi-sync",
    "rpl_semi_sync_source_enabled",
    "rpl_semi_sync_master_enabled",
];

/// The source fails a requirement streaming depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightError {
    pub failed: Vec<Finding>,
}

impl PreflightError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

impl fmt::Display for PreflightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the source server is not set up for change data capture; nothing was read:")?;
        for finding in &self.failed {
            write!(f, "\n  {finding}")?;
        }
        write!(f, "\n(`rowferry check` prints every requirement)")
    }
}

impl std::error::Error for PreflightError {}

/// Why a start was refused: the server's answers, or the server itself.
#[derive(Debug, thiserror::Error)]
pub enum PreflightFailure {
    #[error(transparent)]
    Requirements(#[from] PreflightError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Checks the source on `conn`. `Ok` carries the warnings to log. `needs_select`: a snapshot may
/// be taken (SELECT on the captured tables is then a requirement, not advice).
pub async fn preflight(
    conn: &mut Conn,
    settings: &Settings,
    needs_select: bool,
) -> Result<Vec<Finding>, PreflightFailure> {
    let findings = super::source::gather(conn, settings).await?;
    Ok(split(findings, needs_select)?)
}

/// Sorts findings into blocking failures and warnings (pure, so it is unit tested).
fn split(findings: Vec<Finding>, needs_select: bool) -> Result<Vec<Finding>, PreflightError> {
    let advisory = |f: &Finding| ADVISORY.contains(&f.setting.as_str()) || (!needs_select && f.setting == "SELECT");
    let (failed, rest): (Vec<_>, Vec<_>) =
        findings.into_iter().filter(|f| f.status != Status::Ok).partition(|f| f.status == Status::Fail && !advisory(f));
    if failed.is_empty() { Ok(rest) } else { Err(PreflightError { failed }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(setting: &str) -> Finding {
        Finding::fail(setting, "X", "Y", "fix it")
    }

    #[test]
    fn only_stream_breaking_failures_block() {
        let findings = vec![
            Finding::ok("log_bin", "ON", "ON"),
            fail("binlog retention"),
            fail("BINLOG MONITOR"),
            Finding::warn("gtid_strict_mode", "ON", "OFF", "SET GLOBAL gtid_strict_mode = 1"),
            fail("SELECT"),
        ];
        let warnings = split(findings.clone(), false).expect("nothing blocks without a snapshot");
        let names: Vec<_> = warnings.iter().map(|f| f.setting.as_str()).collect();
        assert_eq!(names, ["binlog retention", "BINLOG MONITOR", "gtid_strict_mode", "SELECT"]);

        let err = split(findings, true).expect_err("SELECT blocks when a snapshot may run");
        assert_eq!(err.failed, vec![fail("SELECT")]);

        let err = split(vec![fail("binlog_format"), fail("binlog_row_metadata")], false).expect_err("blocks");
        let text = err.to_string();
        assert!(text.contains("\n  FAIL binlog_format: expected X, found Y — fix: fix it\n"), "{text}");
        assert!(text.ends_with("(`rowferry check` prints every requirement)"), "{text}");
    }
}
