//! A snapshot's progress, stored with the offset.
//!
//! Invariant: a table's `after` bound moves only when every record of the chunks up to it has
//! been acked *and* the stream position stored next to it has been released (the committer
//! applies a chunk's progress when its pseudo-transaction is released, in stream order). So after
//! a crash the copy resumes at the first chunk that is not durable: at most one chunk per table
//! is copied twice, none is skipped.

use super::convert::Bound;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why the snapshot runs (the `source.snapshot` field of its records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// The first start, the bootstrap command, or a purged position (`when_needed`).
    Initial,
    /// Asked for while streaming (`POST /snapshot`).
    Incremental,
}

impl SnapshotKind {
    /// The `source.snapshot` value of the records (Debezium's spelling).
    pub fn source_field(self) -> &'static str {
        match self {
            SnapshotKind::Initial => "true",
            SnapshotKind::Incremental => "incremental",
        }
    }
}

/// One table's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableProgress {
    /// Key of the last durable row; `None`: nothing copied yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<Bound>>,
    /// Rows emitted so far.
    #[serde(default)]
    pub rows: u64,
    /// The last chunk is durable.
    #[serde(default)]
    pub done: bool,
}

/// Every table of the snapshot in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    pub kind: SnapshotKind,
    /// By `db.table`.
    pub tables: BTreeMap<String, TableProgress>,
}

impl SnapshotProgress {
    pub fn new(kind: SnapshotKind, tables: impl IntoIterator<Item = String>) -> Self {
        SnapshotProgress { kind, tables: tables.into_iter().map(|t| (t, TableProgress::default())).collect() }
    }

    pub fn is_complete(&self) -> bool {
        self.tables.values().all(|t| t.done)
    }

    /// Adds tables (an incremental request); a table already in progress keeps its progress,
    /// a finished one starts again.
    pub fn add(&mut self, tables: impl IntoIterator<Item = String>) {
        for t in tables {
            let entry = self.tables.entry(t).or_default();
            if entry.done {
                *entry = TableProgress::default();
            }
        }
    }

    /// The tables still to copy, with their progress.
    pub fn remaining(&self) -> impl Iterator<Item = (&String, &TableProgress)> {
        self.tables.iter().filter(|(_, p)| !p.done)
    }
}
