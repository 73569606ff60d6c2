//! Delivery's exactly-once half (see the parent's module docs): when a Kafka transaction is due,
//! its commit with the offset its records complete, the split of one too long for the Kafka
//! transaction timeout, and the commit or abort at shutdown.

use super::{Delivery, RunError};
use crate::committer::TxnId;
use crate::config::TransactionBounds;
use crate::publisher::PublishError;
use std::time::Duration;

/// Exactly-once: the Kafka transaction being filled.
#[derive(Debug)]
pub(super) struct KafkaTxn {
    bounds: TransactionBounds,
    /// Past this age (ms) without a boundary, the transaction is committed at the position before
    /// the open source transaction (half the Kafka transaction timeout).
    split_ms: i64,
    /// When its first record was sent (ms since the epoch).
    started_ms: Option<i64>,
    /// When the last one was committed.
    committed_ms: i64,
    /// Key + value bytes sent in it.
    bytes: u64,
    /// `offsets.interval_ms`: a transaction with no record, only the offset, waits this long.
    offset_only_ms: i64,
}

impl KafkaTxn {
    pub(super) fn new(bounds: TransactionBounds, timeout: Duration, commit_interval: Duration) -> KafkaTxn {
        KafkaTxn {
            bounds,
            split_ms: (timeout.as_millis() / 2) as i64,
            started_ms: None,
            committed_ms: crate::clock::now_ms() as i64,
            bytes: 0,
            offset_only_ms: commit_interval.as_millis() as i64,
        }
    }

    /// A record of `bytes` was sent in it.
    pub(super) fn sent(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        self.started_ms.get_or_insert_with(|| crate::clock::now_ms() as i64);
    }
}

impl Delivery {
    /// No source transaction open and none prepared (XA): a Kafka transaction may end here.
    fn at_boundary(&self) -> bool {
        self.open.is_none() && self.parked.is_empty()
    }

    /// A failure of a fenced producer is reported as the fencing (the cause the operator acts on).
    pub(super) fn fenced_or<T>(&self, outcome: Result<T, RunError>) -> Result<T, RunError> {
        match outcome {
            Err(e) if self.kafka_txn.is_some() && !matches!(e, RunError::Publish(PublishError::Fenced { .. })) => {
                match self.publisher.fenced() {
                    Some(detail) => Err(RunError::Publish(PublishError::Fenced { detail })),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    /// Exactly-once: commits the Kafka transaction when it is due (see the module docs; `force`:
    /// at any boundary).
    pub(super) async fn transaction_tick(&mut self, now_ms: i64, force: bool) -> Result<(), RunError> {
        let Some(t) = &self.kafka_txn else { return Ok(()) };
        let boundary = self.at_boundary();
        // Records wait for the transaction interval; a position that moved without any (filtered
        // tables) is stored as often as at-least-once stores it.
        let interval =
            if self.publisher.in_transaction() { t.bounds.interval.as_millis() as i64 } else { t.offset_only_ms };
        let due = force || t.bytes >= t.bounds.max_bytes || now_ms - t.committed_ms >= interval;
        if boundary && due {
            return self.commit_transaction().await;
        }
        let age = t.started_ms.map_or(0, |started| now_ms - started);
        if !boundary && self.publisher.in_transaction() && age >= t.split_ms {
            tracing::warn!(
                open_for_ms = age,
                xa_prepared = self.parked.len(),
                "exactly_once: no source-transaction boundary within half the Kafka transaction timeout \
                 (kafka.librdkafka.\"transaction.timeout.ms\"): committing the Kafka transaction with the open \
                 source transaction's records sent so far (with an XA transaction prepared and undecided: every \
                 transaction's since its PREPARE) and the offset before them. If rowferry stops before the \
                 transaction ends (or the XA transaction is decided), those records are sent again: a \
                 read_committed consumer sees them twice. Raise transaction.timeout.ms (up to the broker's \
                 transaction.max.timeout.ms) to keep such transactions whole"
            );
            return self.commit_transaction().await;
        }
        Ok(())
    }

    /// Exactly-once: adds the offset that the Kafka transaction's records complete and commits
    /// it (librdkafka flushes the records first: when the commit returns, every delivery report
    /// has come).
    async fn commit_transaction(&mut self) -> Result<(), RunError> {
        let started = std::time::Instant::now();
        self.settle()?;
        // Every record of the transactions before the first one still open (or prepared) is in
        // this Kafka transaction; an open one's later records are not.
        let upto = self.parked.values().chain(self.open.iter()).copied().fold(self.committer.next_txn(), TxnId::min);
        let offset = self.committer.transaction_offset()?;
        if let Some((topic, offset)) = &offset {
            let bytes = serde_json::to_vec(offset).map_err(|e| RunError::Other(e.to_string()))?;
            self.publisher.send_offset(topic, &offset.connector, &bytes).await?;
        }
        self.publisher.commit_transaction().await?;
        // Reports not yet handed over (normally none are left in flight).
        self.settle()?;
        while self.publisher.inflight() > 0 {
            self.publisher.next_acks(&mut self.acks).await;
            self.settle()?;
        }
        if offset.is_some() {
            self.committer.transaction_committed()?;
        }
        self.acks_committed(upto);
        self.release_acks();
        tracing::debug!(took = ?started.elapsed(), "Kafka transaction committed");
        if let Some(t) = &mut self.kafka_txn {
            // The interval runs from the commit's end (`now_ms` is when the batch being carried
            // out began: a commit as long as the interval would make the next one due at once).
            (t.started_ms, t.bytes, t.committed_ms) = (None, 0, crate::clock::now_ms() as i64);
        }
        Ok(())
    }

    /// Exactly-once, at shutdown: commits the Kafka transaction at a boundary; in the middle of a
    /// source transaction aborts it (nothing of it visible; a restart sends it again whole).
    pub(super) async fn finish_transaction(&mut self) -> Result<(), RunError> {
        if self.at_boundary() && self.publisher.inflight() == 0 {
            let outcome = self.commit_transaction().await;
            return self.fenced_or(outcome);
        }
        tracing::warn!(
            "stopping inside a source transaction (or with records unacknowledged): the open Kafka transaction is \
             aborted, and a restart sends its records again from the stored offset"
        );
        self.publisher.abort_transaction().await;
        Ok(())
    }
}
