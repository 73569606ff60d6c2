//! The committer stage: feeds the [`Tracker`] from the stream and from delivery reports, and
//! stores the released position — on an interval and once more at shutdown.

use super::offsets::{OffsetError, OffsetStore, StoredOffset};
use super::tracker::{RecordId, Tracker, TrackerError, TxnId};
use crate::position::{Gtid, Position};
use crate::snapshot::progress::{SnapshotKind, SnapshotProgress, TableProgress};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// See the module docs.
#[derive(Debug)]
pub struct Committer {
    tracker: Tracker,
    position: Position,
    store: OffsetStore,
    connector: String,
    interval: Duration,
    last_store: Instant,
    /// The position moved since it was last stored.
    dirty: bool,
    /// The snapshot in progress, stored with the position.
    snapshot: Option<SnapshotProgress>,
    /// Chunk progress waiting for its pseudo-transaction to be released, in stream order.
    marks: VecDeque<(TxnId, String, TableProgress)>,
}

/// Committer failures.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    #[error(transparent)]
    Offsets(#[from] OffsetError),
}

impl Committer {
    pub fn new(start: Position, store: OffsetStore, connector: &str, interval: Duration) -> Self {
        Committer {
            tracker: Tracker::new(),
            position: start,
            store,
            connector: connector.to_string(),
            interval,
            last_store: Instant::now(),
            dirty: false,
            snapshot: None,
            marks: VecDeque::new(),
        }
    }

    /// The snapshot whose progress is stored with the position from now on (a resumed one, or
    /// a new one); tables are added to one already running.
    pub fn snapshot_add(&mut self, kind: SnapshotKind, tables: Vec<String>) {
        match &mut self.snapshot {
            Some(s) if !s.is_complete() => s.add(tables),
            _ => self.snapshot = Some(SnapshotProgress::new(kind, tables)),
        }
        self.dirty = true;
    }

    /// Resumes a stored snapshot.
    pub fn snapshot_resume(&mut self, progress: SnapshotProgress) {
        self.snapshot = Some(progress);
    }

    pub fn snapshot(&self) -> Option<&SnapshotProgress> {
        self.snapshot.as_ref()
    }

    /// Chunk progress of `table` that becomes durable with transaction `txn` (a chunk's
    /// pseudo-transaction).
    pub fn mark(&mut self, txn: TxnId, table: &str, progress: TableProgress) {
        self.marks.push_back((txn, table.to_string(), progress));
    }

    /// Tables whose last chunk became durable at the last [`Committer::commit`].
    fn apply_marks(&mut self) -> Vec<String> {
        let released = self.tracker.released_before();
        let mut finished = Vec::new();
        while self.marks.front().is_some_and(|(txn, _, _)| *txn < released) {
            let Some((_, table, progress)) = self.marks.pop_front() else { break };
            if let Some(s) = &mut self.snapshot {
                if progress.done {
                    finished.push(table.clone());
                }
                s.tables.insert(table, progress);
                self.dirty = true;
            }
        }
        finished
    }

    pub fn begin(&mut self, gtid: Option<Gtid>) -> TxnId {
        self.tracker.begin(gtid)
    }

    pub fn sent(&mut self, txn: TxnId) -> Result<RecordId, CommitError> {
        Ok(self.tracker.sent(txn)?)
    }

    pub fn end(&mut self, txn: TxnId) -> Result<(), CommitError> {
        Ok(self.tracker.end(txn)?)
    }

    /// Holds `txn` and everything after it (a table stopped in it): the position stays before it.
    pub fn hold(&mut self, txn: TxnId) -> Result<(), CommitError> {
        Ok(self.tracker.hold(txn)?)
    }

    pub fn void(&mut self, txn: TxnId) -> Result<(), CommitError> {
        Ok(self.tracker.void(txn)?)
    }

    /// A delivery report.
    pub fn delivered(&mut self, record: RecordId, result: Result<(), String>) -> Result<(), CommitError> {
        match result {
            Ok(()) => self.tracker.acked(record)?,
            Err(reason) => {
                tracing::error!(reason = %reason, "a record could not be delivered; stopping before it");
                self.tracker.failed(record, &reason)?;
            }
        }
        Ok(())
    }

    /// Moves the position over everything durable; stores it when `force` or the interval passed.
    /// Returns whether the stored offset is now up to date with everything released.
    pub async fn commit(&mut self, force: bool) -> Result<bool, CommitError> {
        for gtid in self.tracker.release()? {
            self.position.add(&gtid);
            self.dirty = true;
        }
        for table in self.apply_marks() {
            tracing::info!(table = %table, "table snapshot complete");
        }
        if self.dirty && (force || self.last_store.elapsed() >= self.interval) {
            let snapshot = self.snapshot.clone().filter(|s| !s.is_complete());
            self.store.store(&StoredOffset::new(&self.connector, &self.position).with_snapshot(snapshot)).await?;
            tracing::debug!(position = %self.position, "offset committed");
            self.last_store = Instant::now();
            self.dirty = false;
        }
        Ok(!self.dirty)
    }

    pub fn position(&self) -> &Position {
        &self.position
    }
}
