//! The committer stage: feeds the [`Tracker`] from the stream and from delivery reports, and
//! stores the released position — on an interval and once more at shutdown.

use super::offsets::{OffsetError, OffsetStore, StoredOffset};
use super::tracker::{RecordId, Tracker, TrackerError, TxnId};
use crate::position::{Gtid, Position};
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
        }
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
        if self.dirty && (force || self.last_store.elapsed() >= self.interval) {
            self.store.store(&StoredOffset::new(&self.connector, &self.position)).await?;
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
