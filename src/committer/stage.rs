//! The committer stage: feeds the [`Tracker`] from the stream and from delivery reports, and
//! stores the released position — at most once per interval, as soon as the interval allows
//! ([`Committer::store_due_at`]), and once more at shutdown.
//!
//! One write to the store is in flight at a time. It is checked, never awaited, on the ticks
//! between (a write to the offsets topic lasts as long as a leader election, or until librdkafka's
//! `message.timeout.ms` when the cluster cannot take it); a write that failed for a passing
//! reason is logged and made again on a later tick, with the position of then. Only the final
//! commit at shutdown waits for its write.

use super::offsets::{OffsetError, OffsetStore, Pending, StoredOffset};
use super::tracker::{RecordId, Released, Tracker, TrackerError, TxnId};
use crate::error::ErrorClass;
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
    /// The position moved since its last write was begun (or that write failed).
    dirty: bool,
    /// The write in flight.
    pending: Option<Pending>,
    /// The snapshot in progress, stored with the position.
    snapshot: Option<SnapshotProgress>,
    /// Chunk progress waiting for its pseudo-transaction to be released, in stream order.
    marks: VecDeque<(TxnId, String, TableProgress)>,
    /// Transactions were released since [`Committer::caught_up`] last said yes.
    progressed: bool,
    /// Exactly-once: the position of the offset in the Kafka transaction being committed.
    expected: Option<Position>,
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
            pending: None,
            snapshot: None,
            marks: VecDeque::new(),
            progressed: false,
            expected: None,
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

    /// Moves the position over everything durable; stores it when `force` or the interval passed
    /// (see the module docs: only `force` waits for the write). Returns whether the stored offset
    /// is now up to date with everything released.
    pub async fn commit(&mut self, force: bool) -> Result<bool, CommitError> {
        self.advance()?;
        self.check_pending(force).await?;
        if self.pending.is_some() {
            return Ok(false);
        }
        if self.dirty && (force || self.due()) {
            let offset = self.offset_now();
            self.last_store = Instant::now();
            match self.store.begin(&offset).await {
                Ok(pending) => {
                    self.pending = Some(pending);
                    self.dirty = false;
                    self.check_pending(force).await?;
                }
                Err(e) if e.class() == ErrorClass::Retryable && !force => {
                    tracing::warn!(error = %e, "the offset could not be stored; storing it again on the next tick");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(!self.dirty && self.pending.is_none())
    }

    /// When the position is next to be stored: `interval` after the last write began, while
    /// something acknowledged (or a snapshot's progress) is not stored yet and no write is in
    /// flight. The driver wakes then, so a position is stored as soon as its interval allows,
    /// not on the tick after (which is up to an interval later: the first offset after a start
    /// and the last of a burst waited for it).
    pub fn store_due_at(&self) -> Option<Instant> {
        let waiting = self.dirty || self.tracker.releasable();
        (waiting && self.pending.is_none()).then(|| self.last_store + self.interval)
    }

    /// Whether the interval has passed since the last write began: at most one write per
    /// interval, whether the driver's wake-up at [`Committer::store_due_at`] or its tick comes
    /// first.
    fn due(&self) -> bool {
        self.last_store.elapsed() >= self.interval
    }

    /// The record to store for the position now.
    fn offset_now(&self) -> StoredOffset {
        let snapshot = self.snapshot.clone().filter(|s| !s.is_complete());
        StoredOffset::new(&self.connector, &self.position).with_snapshot(snapshot)
    }

    /// Exactly-once: moves the position over everything durable and returns the offset to commit
    /// in the Kafka transaction about to be committed (`None`: nothing moved since the last one).
    /// The store itself is not written: the offset goes into the transaction with the records.
    pub fn transaction_offset(&mut self) -> Result<Option<(String, StoredOffset)>, CommitError> {
        self.advance()?;
        let Some(topic) = self.store.topic().map(String::from) else {
            return Err(OffsetError::Invalid { detail: "exactly-once needs the Kafka offset store".into() }.into());
        };
        // The position once the transaction's records are durable, which its commit makes them
        // all (or none): everything ended, acknowledged yet or not.
        let (more, upto) = self.tracker.release_if_acked()?;
        let marked = self.marks.front().is_some_and(|(txn, _, _)| *txn < upto);
        if more.is_empty() && !marked && !self.dirty {
            return Ok(None);
        }
        let mut position = self.position.clone();
        for released in more {
            match released {
                Released::Gtid(gtid) => position.add(&gtid),
                Released::Set(set) => position.union(&set),
            }
        }
        let mut snapshot = self.snapshot.clone();
        if let Some(s) = &mut snapshot {
            for (_, table, progress) in self.marks.iter().take_while(|(txn, _, _)| *txn < upto) {
                s.tables.insert(table.clone(), progress.clone());
            }
        }
        let offset = StoredOffset::new(&self.connector, &position).with_snapshot(snapshot.filter(|s| !s.is_complete()));
        self.expected = Some(position);
        Ok(Some((topic, offset)))
    }

    /// Exactly-once: the Kafka transaction with the offset [`Committer::transaction_offset`] gave
    /// is committed, and every delivery report of it was given to [`Committer::delivered`]. The
    /// position moves to that offset's.
    pub fn transaction_committed(&mut self) -> Result<(), CommitError> {
        self.advance()?;
        match self.expected.take() {
            Some(expected) if expected != self.position => {
                // Not expected: every record of a committed transaction is acknowledged. The
                // next commit writes the released position again.
                tracing::warn!(committed = %expected, released = %self.position, "the committed offset and the released position differ");
            }
            _ => {
                self.dirty = false;
                tracing::debug!(position = %self.position, "offset committed in a Kafka transaction");
            }
        }
        Ok(())
    }

    /// Whether the stored offset is up to date with the position (exactly-once: committed with
    /// the last Kafka transaction).
    pub fn is_stored(&self) -> bool {
        !self.dirty && self.pending.is_none()
    }

    /// Moves the position over every released transaction and the snapshot over its durable
    /// chunks.
    fn advance(&mut self) -> Result<(), CommitError> {
        let before = self.tracker.released_before();
        for released in self.tracker.release()? {
            match released {
                Released::Gtid(gtid) => self.position.add(&gtid),
                Released::Set(set) => self.position.union(&set),
            }
            self.dirty = true;
        }
        // Snapshot chunks and voided transactions carry no GTID but move the stream on too.
        self.progressed |= self.tracker.released_before() > before;
        for table in self.apply_marks() {
            tracing::info!(table = %table, "table snapshot complete");
        }
        Ok(())
    }

    /// Checks the write in flight (with `force`, waits for it); a write that failed for a
    /// passing reason leaves the position to be written again.
    async fn check_pending(&mut self, force: bool) -> Result<(), CommitError> {
        let Some(mut pending) = self.pending.take() else { return Ok(()) };
        let outcome = if force {
            pending.wait().await
        } else {
            match pending.poll().await {
                Some(outcome) => outcome,
                None => {
                    self.pending = Some(pending);
                    return Ok(());
                }
            }
        };
        match outcome {
            Ok(()) => tracing::debug!(position = %self.position, "offset committed"),
            Err(e) if e.class() == ErrorClass::Retryable && !force => {
                tracing::warn!(error = %e, "the offset could not be stored; storing it again on the next tick");
                self.dirty = true;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// See [`Tracker::acked_before`].
    pub fn acked_before(&self, upto: TxnId) -> bool {
        self.tracker.acked_before(upto)
    }

    /// The first transaction held by a stopped table, if any: nothing from it on is released
    /// (or, semi-sync, ACKed) by this process.
    pub fn held(&self) -> Option<TxnId> {
        self.tracker.held()
    }

    /// The id the next transaction will get: every transaction begun so far is before it.
    pub fn next_txn(&self) -> TxnId {
        self.tracker.next_id()
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Whether the stored offset (`stored`: up to date with everything released, as
    /// [`Committer::commit`] said) moved since the last call that said yes, or has nothing
    /// waiting behind it. A stuck offset — an unacknowledged record, a held table — says no
    /// however often it is stored.
    pub fn caught_up(&mut self, stored: bool) -> bool {
        let nothing_waits = self.tracker.pending() == 0 && self.tracker.held().is_none();
        let yes = stored && (self.progressed || nothing_waits);
        if yes {
            self.progressed = false;
        }
        yes
    }

    /// Transactions not yet covered by the stored offset, and whether a held table stops it.
    pub fn waiting(&self) -> (usize, bool) {
        (self.tracker.pending(), self.tracker.held().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::{MariaDbGtid, MariaDbPosition};

    fn gtid(seq: u64) -> Option<Gtid> {
        Some(Gtid::MariaDb(MariaDbGtid { domain: 0, server: 1, seq }))
    }

    /// Makes the position move: one transaction, acknowledged and ended.
    fn one_acked(c: &mut Committer, seq: u64) {
        let t = c.begin(gtid(seq));
        let r = c.sent(t).expect("sent");
        c.delivered(r, Ok(())).expect("ack");
        c.end(t).expect("end");
    }

    /// At most one write per interval, and as soon as the interval allows: the driver wakes at
    /// [`Committer::store_due_at`], which names the time the next commit stores at.
    #[tokio::test]
    async fn the_position_is_stored_as_soon_as_its_interval_allows() {
        let interval = Duration::from_millis(50);
        let dir = tempfile::tempdir().expect("dir");
        let store = OffsetStore::File { path: dir.path().join("offset.json") };
        let start = Position::MariaDb(MariaDbPosition::parse("0-1-10").expect("position"));
        let mut c = Committer::new(start, store, "t", interval);
        assert_eq!(c.store_due_at(), None, "nothing to store");
        one_acked(&mut c, 11);
        let due = c.store_due_at().expect("11 waits to be stored");
        assert!(!c.commit(false).await.expect("commit"), "no interval since the start yet");
        tokio::time::sleep_until(due.into()).await;
        assert!(c.commit(false).await.expect("commit"), "stored at the time named");
        assert_eq!(c.store_due_at(), None, "nothing waits after the write");
        one_acked(&mut c, 12);
        let next = c.store_due_at().expect("12 waits to be stored");
        assert!(next >= due + interval, "an interval after the last write, not sooner");
        assert!(!c.commit(false).await.expect("commit"), "right after a write");
        tokio::time::sleep_until(next.into()).await;
        assert!(c.commit(false).await.expect("commit"), "stored at the time named");
        assert_eq!(c.position().to_string(), "0-1-12");
    }

    #[tokio::test]
    async fn a_stuck_offset_is_not_caught_up_however_often_it_is_stored() {
        let dir = tempfile::tempdir().expect("dir");
        let store = OffsetStore::File { path: dir.path().join("offset.json") };
        let start = Position::MariaDb(MariaDbPosition::parse("0-1-10").expect("position"));
        let mut c = Committer::new(start, store, "t", Duration::ZERO);
        let stored = c.commit(true).await.expect("commit");
        assert!(c.caught_up(stored), "nothing waits");
        // 11 is acknowledged; 12 has a record Kafka never acknowledges.
        let t11 = c.begin(gtid(11));
        let r11 = c.sent(t11).expect("sent");
        c.delivered(r11, Ok(())).expect("ack");
        c.end(t11).expect("end");
        let t12 = c.begin(gtid(12));
        let _r12 = c.sent(t12).expect("sent");
        c.end(t12).expect("end");
        let stored = c.commit(true).await.expect("commit");
        assert!(c.caught_up(stored), "11 moved it");
        for _ in 0..3 {
            let stored = c.commit(true).await.expect("commit");
            assert!(stored, "the position is stored");
            assert!(!c.caught_up(stored), "but 12 waits behind it");
        }
        assert_eq!(c.waiting(), (1, false));
        // A held table: nothing moves after it either.
        let t13 = c.begin(gtid(13));
        c.hold(t13).expect("hold");
        let stored = c.commit(true).await.expect("commit");
        assert!(!c.caught_up(stored));
        assert_eq!(c.waiting(), (1, true));
    }
}
