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
//!
//! Memory stays bounded behind a stuck transaction too (an unacked record, an undecided XA
//! PREPARE): a transaction that becomes durable is merged at once with a durable neighbour, so
//! consecutive durable transactions waiting behind it are one entry that keeps their GTIDs as a
//! set (an interval per source for MySQL, one per domain for MariaDB). The entries alternate
//! between not-yet-durable transactions and single durable runs: a million filtered-out
//! transactions behind one slow record cost one entry, not a million.

use crate::error::ErrorClass;
use crate::position::{Gtid, MariaDbPosition, MySqlGtidSet, Position};
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
    /// The last transaction this entry stands for (`id` unless durable ones were merged in).
    last: TxnId,
    gtid: Option<Gtid>,
    /// The GTIDs of the transactions merged in (all durable).
    merged: Option<Position>,
    unacked: u64,
    ended: bool,
    void: bool,
}

impl Txn {
    fn durable(&self) -> bool {
        self.ended && self.unacked == 0
    }

    /// Takes `next` (durable, right after this durable entry) into this one.
    fn absorb(&mut self, next: Txn) {
        if self.void {
            // A void transaction's own GTID is never released; the merged ones are.
            self.gtid = None;
            self.void = false;
        }
        self.last = next.last;
        let add = |set: &mut Option<Position>, gtid: &Gtid| {
            let set = set.get_or_insert_with(|| match gtid {
                Gtid::MySql(_) => Position::MySql(MySqlGtidSet::new()),
                Gtid::MariaDb(_) => Position::MariaDb(MariaDbPosition::new()),
            });
            set.add(gtid);
        };
        if !next.void
            && let Some(g) = &next.gtid
        {
            add(&mut self.merged, g);
        }
        if let Some(other) = next.merged {
            match &mut self.merged {
                Some(mine) => mine.union(&other),
                None => self.merged = Some(other),
            }
        }
    }
}

/// What [`Tracker::release`] hands out, in stream order: a transaction's GTID, or the GTIDs of
/// merged durable transactions as a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    Gtid(Gtid),
    Set(Position),
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
            self.open.push_back(Txn { id, last: id, gtid, merged: None, unacked: 0, ended: false, void: false });
        }
        id
    }

    /// Transaction `id` may have become durable: merges it with its durable neighbours (which
    /// were merged the same way, so one step on each side keeps the entries alternating).
    fn settle(&mut self, id: TxnId) -> Result<(), TrackerError> {
        let mut at = self.entry(id)?;
        if !self.open[at].durable() {
            return Ok(());
        }
        if at > 0
            && self.open[at - 1].durable()
            && let Some(t) = self.open.remove(at)
        {
            at -= 1;
            self.open[at].absorb(t);
        }
        if self.open.get(at + 1).is_some_and(Txn::durable)
            && let Some(next) = self.open.remove(at + 1)
        {
            self.open[at].absorb(next);
        }
        Ok(())
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
        // A transaction already merged into a durable run holds from the run's start (earlier:
        // never past what it asks).
        let at = self.entry(txn)?;
        let txn = self.open[at].id;
        self.held = Some(txn);
        self.open.truncate(at);
        Ok(())
    }

    /// Whether [`Tracker::release`] would hand something out (or move past a void transaction).
    pub fn releasable(&self) -> bool {
        self.open.front().is_some_and(Txn::durable)
    }

    /// Every transaction before this one has been released.
    pub fn released_before(&self) -> TxnId {
        self.open.front().map(|t| t.id).or(self.held).unwrap_or(self.next_id)
    }

    /// The first held transaction, if any.
    pub fn held(&self) -> Option<TxnId> {
        self.held
    }

    /// The index of the entry that stands for transaction `id`.
    fn entry(&self, id: TxnId) -> Result<usize, TrackerError> {
        let front = self
            .open
            .front()
            .map(|t| t.id)
            .ok_or_else(|| TrackerError::Misuse(format!("transaction {id} is not open")))?;
        if id < front {
            return Err(TrackerError::Misuse(format!("transaction {id} was released")));
        }
        // Records are sent for the newest transaction and mostly acknowledged for the oldest not
        // yet durable — the first entry, or the second while the first is the durable run that
        // waits for the next release: those are looked at before a search (per record, the
        // search was 2% of the CPU).
        let last = self.open.len() - 1;
        if self.open[last].id <= id {
            return if id <= self.open[last].last {
                Ok(last)
            } else {
                Err(TrackerError::Misuse(format!("transaction {id} is unknown")))
            };
        }
        if id <= self.open[0].last {
            return Ok(0);
        }
        if self.open.get(1).is_some_and(|t| t.id <= id && id <= t.last) {
            return Ok(1);
        }
        let at = self.open.partition_point(|t| t.last < id);
        match self.open.get(at) {
            Some(t) if t.id <= id => Ok(at),
            _ => Err(TrackerError::Misuse(format!("transaction {id} is unknown"))),
        }
    }

    fn txn(&mut self, id: TxnId) -> Result<&mut Txn, TrackerError> {
        let at = self.entry(id)?;
        let t = &mut self.open[at];
        if t.id != t.last {
            return Err(TrackerError::Misuse(format!("transaction {id} is durable and merged")));
        }
        Ok(t)
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
        self.settle(txn)
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
        self.settle(txn)
    }

    /// Kafka acknowledged a record.
    pub fn acked(&mut self, record: RecordId) -> Result<(), TrackerError> {
        if self.behind_hold(record.txn) {
            return Ok(());
        }
        let t = self.txn(record.txn)?;
        t.unacked = t.unacked.checked_sub(1).ok_or_else(|| TrackerError::Misuse("more acks than records".into()))?;
        self.settle(record.txn)
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
    pub fn release(&mut self) -> Result<Vec<Released>, TrackerError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        while self.open.front().is_some_and(Txn::durable) {
            let Some(t) = self.open.pop_front() else { break };
            if !t.void
                && let Some(g) = t.gtid
            {
                out.push(Released::Gtid(g));
            }
            if let Some(set) = t.merged {
                out.push(Released::Set(set));
            }
        }
        Ok(out)
    }

    /// What [`Tracker::release`] would hand out if every record sent so far were acknowledged,
    /// and the first transaction that would still not be released; nothing changes. For
    /// exactly-once delivery, where one Kafka transaction makes all its records durable or none:
    /// the offset written into it is computed before its commit.
    pub fn release_if_acked(&self) -> Result<(Vec<Released>, TxnId), TrackerError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        let mut upto = self.released_before();
        for t in self.open.iter().take_while(|t| t.ended) {
            if !t.void
                && let Some(g) = &t.gtid
            {
                out.push(Released::Gtid(g.clone()));
            }
            if let Some(set) = &t.merged {
                out.push(Released::Set(set.clone()));
            }
            upto = t.last + 1;
        }
        Ok((out, upto))
    }

    /// Whether every record of the transactions before `upto` is acknowledged and none of them is
    /// held: what the stream carried before that point is in Kafka, though the position may still
    /// wait (behind a prepared XA transaction, whose records so far count). For semi-sync ACKs.
    pub fn acked_before(&self, upto: TxnId) -> bool {
        self.failed.is_none()
            && self.held.is_none_or(|h| h >= upto)
            && self.open.iter().take_while(|t| t.id < upto).all(|t| t.unacked == 0)
    }

    /// The id the next transaction will get.
    pub fn next_id(&self) -> TxnId {
        self.next_id
    }

    /// Transactions registered and not yet released.
    pub fn pending(&self) -> usize {
        self.open.iter().map(|t| (t.last - t.id + 1) as usize).sum()
    }

    /// Entries kept for them (what memory the tracker holds).
    pub fn entries(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests;
