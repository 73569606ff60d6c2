//! The commit rule as a pure state machine.
//!
//! Transactions are registered in stream order; each published record is registered under its
//! transaction and later acked (or failed) by Kafka in any order. A transaction is *durable* when
//! it has ended (its commit was read) and all its records are acked. The tracker releases
//! transactions strictly in stream order: the first one that is not yet durable holds back every
//! later one, so the committed position never passes an unacked record. A transaction with no
//! records (filtered tables, DDL) is durable as soon as it ends. A voided transaction (rolled back,
//! or cut by a reconnect and about to be read again) is released without a GTID once its records
//! have settled. A permanent delivery failure stops all further releases: the connector must stop,
//! never skip. A *held* transaction (a table stopped in it: its rows cannot be published) is never
//! released by this process, nor is anything after it: the stored position stays before it, so a
//! restart after the fix reads it again. Behind a hold nothing is tracked (memory stays bounded
//! while the other tables keep streaming); only delivery failures still count.

use crate::error::ErrorClass;
use crate::position::Gtid;
use std::collections::VecDeque;

/// Identifies a transaction inside the tracker (stream order).
pub type TxnId = u64;
/// Identifies a published record by its transaction (acks only need to find the transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordId {
    pub txn: TxnId,
}

/// Misuse or failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    #[error("a record of transaction {gtid} could not be delivered: {reason}; the offset stays before it")]
    DeliveryFailed { gtid: String, reason: String },
    #[error("tracker misuse: {0}")]
    Misuse(String),
}

impl TrackerError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

#[derive(Debug)]
struct Txn {
    id: TxnId,
    gtid: Option<Gtid>,
    unacked: u64,
    ended: bool,
    void: bool,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Tracker {
    open: VecDeque<Txn>,
    next_id: TxnId,
    failed: Option<TrackerError>,
    /// The first held transaction, if any.
    held: Option<TxnId>,
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the next transaction of the stream.
    pub fn begin(&mut self, gtid: Option<Gtid>) -> TxnId {
        let id = self.next_id;
        self.next_id += 1;
        if self.held.is_none() {
            self.open.push_back(Txn { id, gtid, unacked: 0, ended: false, void: false });
        }
        id
    }

    /// Whether `id` is at or after the hold.
    fn behind_hold(&self, id: TxnId) -> bool {
        self.held.is_some_and(|h| id >= h)
    }

    /// Holds transaction `txn` and everything after it: see the module docs.
    pub fn hold(&mut self, txn: TxnId) -> Result<(), TrackerError> {
        if self.behind_hold(txn) {
            return Ok(());
        }
        self.txn(txn)?;
        self.held = Some(txn);
        self.open.retain(|t| t.id < txn);
        Ok(())
    }

    /// Every transaction before this one has been released.
    pub fn released_before(&self) -> TxnId {
        self.open.front().map(|t| t.id).or(self.held).unwrap_or(self.next_id)
    }

    /// The first held transaction, if any.
    pub fn held(&self) -> Option<TxnId> {
        self.held
    }

    fn txn(&mut self, id: TxnId) -> Result<&mut Txn, TrackerError> {
        let front = self
            .open
            .front()
            .map(|t| t.id)
            .ok_or_else(|| TrackerError::Misuse(format!("transaction {id} is not open")))?;
        let index =
            id.checked_sub(front).ok_or_else(|| TrackerError::Misuse(format!("transaction {id} was released")))?;
        self.open.get_mut(index as usize).ok_or_else(|| TrackerError::Misuse(format!("transaction {id} is unknown")))
    }

    /// Registers a record sent to Kafka for transaction `txn`.
    pub fn sent(&mut self, txn: TxnId) -> Result<RecordId, TrackerError> {
        if self.behind_hold(txn) {
            return Ok(RecordId { txn });
        }
        let t = self.txn(txn)?;
        if t.ended {
            return Err(TrackerError::Misuse(format!("record for transaction {txn} after its end")));
        }
        t.unacked += 1;
        Ok(RecordId { txn })
    }

    /// The transaction's commit was read: no more records will come for it.
    pub fn end(&mut self, txn: TxnId) -> Result<(), TrackerError> {
        if self.behind_hold(txn) {
            return Ok(());
        }
        self.txn(txn)?.ended = true;
        Ok(())
    }

    /// The transaction is void (rolled back, or to be read again after a reconnect): its records
    /// still settle, but its GTID is never committed from this registration.
    pub fn void(&mut self, txn: TxnId) -> Result<(), TrackerError> {
        if self.behind_hold(txn) {
            return Ok(());
        }
        let t = self.txn(txn)?;
        t.void = true;
        t.ended = true;
        Ok(())
    }

    /// Kafka acknowledged a record.
    pub fn acked(&mut self, record: RecordId) -> Result<(), TrackerError> {
        if self.behind_hold(record.txn) {
            return Ok(());
        }
        let t = self.txn(record.txn)?;
        t.unacked = t.unacked.checked_sub(1).ok_or_else(|| TrackerError::Misuse("more acks than records".into()))?;
        Ok(())
    }

    /// Kafka gave up on a record: nothing after it may ever be committed.
    pub fn failed(&mut self, record: RecordId, reason: &str) -> Result<(), TrackerError> {
        let gtid = if self.behind_hold(record.txn) {
            "(a transaction after a stopped table's)".to_string()
        } else {
            self.txn(record.txn)?.gtid.as_ref().map_or("(anonymous)".to_string(), |g| g.to_string())
        };
        self.failed.get_or_insert(TrackerError::DeliveryFailed { gtid, reason: reason.to_string() });
        Ok(())
    }

    /// Releases the durable prefix of the stream: the GTIDs that may now be added to the stored
    /// position, in order. Errors once a delivery failed.
    pub fn release(&mut self) -> Result<Vec<Gtid>, TrackerError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        while self.open.front().is_some_and(|t| t.ended && t.unacked == 0) {
            if let Some(t) = self.open.pop_front()
                && !t.void
                && let Some(g) = t.gtid
            {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// Transactions registered and not yet released.
    pub fn pending(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::MariaDbGtid;
    use proptest::prelude::*;

    fn g(seq: u64) -> Gtid {
        Gtid::MariaDb(MariaDbGtid { domain: 0, server: 1, seq })
    }

    #[test]
    fn releases_in_order_only_when_durable() {
        let mut t = Tracker::new();
        let a = t.begin(Some(g(1)));
        let ra = t.sent(a).expect("sent");
        t.end(a).expect("end");
        let b = t.begin(Some(g(2)));
        t.end(b).expect("end"); // no records: durable at once, but after a
        assert_eq!(t.release(), Ok(vec![]));
        t.acked(ra).expect("ack");
        assert_eq!(t.release(), Ok(vec![g(1), g(2)]));
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_failure_stops_every_release() {
        let mut t = Tracker::new();
        let a = t.begin(Some(g(1)));
        let r = t.sent(a).expect("sent");
        t.end(a).expect("end");
        t.failed(r, "message too large").expect("failed");
        t.acked(r).expect("ack");
        assert!(matches!(t.release(), Err(TrackerError::DeliveryFailed { .. })));
    }

    #[test]
    fn void_transactions_release_without_their_gtid() {
        let mut t = Tracker::new();
        let a = t.begin(Some(g(1)));
        let r = t.sent(a).expect("sent");
        t.void(a).expect("void");
        let b = t.begin(Some(g(1)));
        t.end(b).expect("end");
        assert_eq!(t.release(), Ok(vec![]));
        t.acked(r).expect("ack");
        assert_eq!(t.release(), Ok(vec![g(1)]));
    }

    #[test]
    fn misuse_is_an_error() {
        let mut t = Tracker::new();
        let a = t.begin(None);
        t.end(a).expect("end");
        assert!(t.sent(a).is_err());
        assert!(t.acked(RecordId { txn: a }).is_err());
        assert_eq!(t.release(), Ok(vec![]));
        assert!(t.end(a).is_err());
    }

    #[test]
    fn a_hold_stops_releases_at_the_held_transaction_and_tracks_nothing_after() {
        let mut t = Tracker::new();
        let a = t.begin(Some(g(1)));
        let ra = t.sent(a).expect("sent");
        t.end(a).expect("end");
        let b = t.begin(Some(g(2)));
        let rb = t.sent(b).expect("sent");
        t.hold(b).expect("hold");
        t.end(b).expect("end");
        for _ in 0..1000 {
            let c = t.begin(Some(g(3)));
            let rc = t.sent(c).expect("sent behind the hold");
            t.end(c).expect("end");
            t.acked(rc).expect("ack");
        }
        assert_eq!(t.pending(), 1, "only the transaction before the hold is tracked");
        t.acked(rb).expect("ack of a held record");
        assert_eq!(t.release(), Ok(vec![]));
        t.acked(ra).expect("ack");
        assert_eq!(t.release(), Ok(vec![g(1)]), "what precedes the hold is still released");
        assert_eq!(t.release(), Ok(vec![]));
        assert_eq!(t.held(), Some(b));
        t.hold(a).expect_err("a released transaction cannot be held");
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// a transaction with this many records
        Txn(u8),
        /// ack the n-th outstanding record (mod count)
        Ack(usize),
        /// fail the n-th outstanding record
        Fail(usize),
        /// hold the n-th unreleased transaction (mod count)
        Hold(usize),
        Release,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0u8..4).prop_map(Step::Txn),
            6 => any::<usize>().prop_map(Step::Ack),
            1 => any::<usize>().prop_map(Step::Fail),
            1 => any::<usize>().prop_map(Step::Hold),
            3 => Just(Step::Release),
        ]
    }

    proptest! {
        /// Random ack orders and failures never let the committed position pass an unacked record.
        #[test]
        fn committed_never_passes_an_unacked_record(steps in prop::collection::vec(step(), 1..80)) {
            let mut t = Tracker::new();
            let mut outstanding: Vec<(RecordId, u64)> = Vec::new(); // (record, txn seq)
            let mut acked_all_of: Vec<u64> = Vec::new(); // per txn: records still unacked
            let mut committed: Vec<u64> = Vec::new();
            let mut failed = false;
            let mut held: Option<u64> = None; // seq of the first held transaction
            let mut seq = 0u64;
            for s in steps {
                match s {
                    Step::Txn(n) => {
                        seq += 1;
                        let id = t.begin(Some(g(seq)));
                        acked_all_of.push(u64::from(n));
                        for _ in 0..n {
                            outstanding.push((t.sent(id).expect("sent"), seq));
                        }
                        t.end(id).expect("end");
                    }
                    Step::Ack(i) if !outstanding.is_empty() => {
                        let (r, s) = outstanding.remove(i % outstanding.len());
                        t.acked(r).expect("ack");
                        acked_all_of[(s - 1) as usize] -= 1;
                    }
                    Step::Fail(i) if !outstanding.is_empty() => {
                        let (r, _) = outstanding[i % outstanding.len()];
                        t.failed(r, "boom").expect("fail");
                        failed = true;
                    }
                    Step::Hold(i) if seq > committed.len() as u64 => {
                        let first = committed.len() as u64 + 1;
                        let target = first + (i as u64) % (seq - first + 1);
                        t.hold(target - 1).expect("hold");
                        held = Some(held.map_or(target, |h| h.min(target)));
                    }
                    Step::Release => match t.release() {
                        Ok(gtids) => {
                            prop_assert!(!failed);
                            for gtid in gtids {
                                let Gtid::MariaDb(m) = gtid else { unreachable!() };
                                committed.push(m.seq);
                            }
                        }
                        Err(_) => prop_assert!(failed),
                    },
                    _ => {}
                }
                // The invariant: committed is a prefix 1..=k of the stream, and every transaction
                // in it has all records acked.
                for (i, c) in committed.iter().enumerate() {
                    prop_assert_eq!(*c, i as u64 + 1);
                    prop_assert_eq!(acked_all_of[(*c - 1) as usize], 0);
                    prop_assert!(held.is_none_or(|h| *c < h), "released {} at or after the hold {:?}", c, held);
                }
            }
            // Liveness: with every record acked and no failure, everything is released.
            if !failed {
                for (r, s) in outstanding.drain(..) {
                    t.acked(r).expect("ack");
                    acked_all_of[(s - 1) as usize] -= 1;
                }
                committed.extend(t.release().expect("release").into_iter().map(|g| match g { Gtid::MariaDb(m) => m.seq, Gtid::MySql(_) => 0 }));
                prop_assert_eq!(committed.len() as u64, held.map_or(seq, |h| h - 1));
            }
        }
    }
}
