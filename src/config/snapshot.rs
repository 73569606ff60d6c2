//! `[snapshot]`, validated: when snapshots run, how fast, and the key of keyless tables.

use super::raw::RawSnapshot;
use super::{ConfigError, TablePattern};
use std::time::Duration;

/// When `run` snapshots the captured tables by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// On the first start (no stored offset).
    Initial,
    /// Never: only what the binlog carries from the start position on.
    Never,
    /// On the first start, and again (from now) when the stored position has been purged.
    WhenNeeded,
}

/// `[snapshot]`.
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    pub mode: SnapshotMode,
    pub parallel: usize,
    pub chunk_rows: usize,
    pub chunk_target: Duration,
    /// Rows/s at most (all tables); `None`: no limit.
    pub max_rows_per_sec: Option<u64>,
    pub lag_query: Option<String>,
    pub max_lag_secs: f64,
    /// Declared key columns of keyless tables, by exact `db.table`.
    pub keys: Vec<(TablePattern, Vec<String>)>,
    /// Check every n-th snapshot record (and each chunk's first); 0: none.
    pub inline_verify_every: u64,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        SnapshotSettings::new(RawSnapshot::default()).unwrap_or_else(|_| unreachable!("defaults are valid"))
    }
}

impl SnapshotSettings {
    pub fn new(raw: RawSnapshot) -> Result<SnapshotSettings, ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid { key: format!("snapshot.{key}"), problem };
        let mode = match raw.mode.as_deref() {
            None | Some("initial") => SnapshotMode::Initial,
            Some("never") => SnapshotMode::Never,
            Some("when_needed") => SnapshotMode::WhenNeeded,
            Some(other) => {
                return Err(invalid(
                    "mode",
                    format!("{other:?} is not one of \"initial\", \"never\", \"when_needed\""),
                ));
            }
        };
        let parallel = raw.parallel.unwrap_or(2);
        if !(1..=64).contains(&parallel) {
            return Err(invalid("parallel", format!("{parallel} is not between 1 and 64")));
        }
        let chunk_rows = raw.chunk_rows.unwrap_or(5000);
        if !(1..=1_000_000).contains(&chunk_rows) {
            return Err(invalid("chunk_rows", format!("{chunk_rows} is not between 1 and 1000000")));
        }
        let target = raw.chunk_target_ms.unwrap_or(300);
        if !(10..=60_000).contains(&target) {
            return Err(invalid("chunk_target_ms", format!("{target} is not between 10 and 60000")));
        }
        let max_lag_secs = raw.max_lag_secs.unwrap_or(10.0);
        if !(max_lag_secs.is_finite() && max_lag_secs >= 0.0) {
            return Err(invalid("max_lag_secs", format!("{max_lag_secs} is not a number of seconds")));
        }
        let mut keys = Vec::new();
        for (table, columns) in raw.keys {
            let pattern = TablePattern::parse(&table)
                .filter(|_| !table.contains(['*', '?']))
                .ok_or_else(|| invalid("keys", format!("{table:?} is not a db.table name")))?;
            if columns.is_empty() {
                return Err(invalid("keys", format!("{table}: no key columns given")));
            }
            keys.push((pattern, columns));
        }
        Ok(SnapshotSettings {
            mode,
            parallel,
            chunk_rows,
            chunk_target: Duration::from_millis(target),
            max_rows_per_sec: raw.max_rows_per_sec.filter(|&n| n > 0),
            lag_query: raw.lag_query.filter(|q| !q.trim().is_empty()),
            max_lag_secs,
            keys,
            inline_verify_every: raw.inline_verify_every.unwrap_or(64),
        })
    }

    /// The declared key columns of `db.table`, if any.
    pub fn declared_key(&self, db: &str, table: &str) -> Option<&[String]> {
        self.keys.iter().find(|(p, _)| p.matches(db, table)).map(|(_, c)| c.as_slice())
    }
}
