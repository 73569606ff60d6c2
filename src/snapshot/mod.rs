//! Snapshots: the captured tables' current rows, copied in key-ordered chunks and merged into the
//! stream at positions where they cannot hide a newer change.
//!
//! Stages, from the source to the stream loop:
//! * [`describe`] — a table's schema from information_schema, equal to its TABLE_MAP schema;
//! * [`copier`] — chunked keyset reads between watermarks, parallel per table, throttled;
//! * [`convert`] — SELECT values into the decoder's [`crate::change::Value`]s;
//! * [`merge`] — the window state machine the stream loop runs: where a chunk may be emitted and
//!   which of its keys the stream already carries;
//! * [`progress`] — per-table chunk boundaries stored with the offset, for resuming.
//!
//! Invariants (DESIGN.md "Snapshot and verify"): for every key, the last record in Kafka is the
//! latest state — a chunk row is never emitted after a newer stream change of its key; no global
//! lock is taken; a crash resumes at the first chunk whose records and position are not durable.

pub mod bars;
pub mod convert;
pub mod copier;
pub mod describe;
pub mod merge;
pub mod progress;

use crate::error::ErrorClass;
use crate::position::PositionError;
use crate::source::SourceError;

/// Why a snapshot (or one table of it) stopped.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Source(Box<SourceError>),
    #[error("snapshot: the server returned a position rowferry cannot read: {0}")]
    Position(#[from] PositionError),
    #[error("snapshot of {table}: {problem}")]
    Table { table: String, problem: String },
    #[error("snapshot: the stream loop has stopped")]
    Stopped,
}

impl From<SourceError> for SnapshotError {
    fn from(e: SourceError) -> Self {
        SnapshotError::Source(Box::new(e))
    }
}

impl SnapshotError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SnapshotError::Source(e) => e.class(),
            SnapshotError::Position(_) | SnapshotError::Stopped => ErrorClass::Fatal,
            SnapshotError::Table { .. } => ErrorClass::PerTable,
        }
    }
}
