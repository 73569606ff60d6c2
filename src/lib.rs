//! rowferry streams the row changes of MySQL 8.0+/9.x and MariaDB 10.6+ to Kafka as Avro, reading
//! the binlog as a replica would.
//!
//! The pipeline (see DESIGN.md; each stage is a module, wired in one place, [`app`]):
//!
//! ```text
//! source ─binlog─▶ reader ─events─▶ decoder (+ schema) ─changes─▶ encoder ─records─▶ publisher
//!                                                                                      │ acks
//!                                       offsets ◀─ committer ◀─────────────────────────┘
//! source ─SELECT chunk─▶ snapshot (and verify) ─changes, merged at a stream position─▶ encoder
//! ```
//!
//! Pure modules (config parsing, check rules, and later GTID sets, row changes, table schemas)
//! do no IO so they can be unit- and property-tested and fuzzed.

pub mod app;
pub mod binlog;
pub mod change;
pub mod check;
pub mod clock;
pub mod committer;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod histogram;
pub mod kafka;
pub mod logging;
pub mod ops;
pub mod position;
pub mod publisher;
pub mod reader;
pub mod registry;
pub mod schema;
pub mod snapshot;
pub mod source;
pub mod tail;
pub mod verify;

pub mod cli;

/// Installs rustls' process-wide crypto provider (ring, as the MySQL connection uses), which the
/// HTTP client needs before it is built. Idempotent; every HTTP client constructor calls it.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
