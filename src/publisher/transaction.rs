//! The publisher's exactly-once half: the Kafka transaction calls (see the parent's module docs).
//! Each blocking librdkafka call runs on a blocking thread; a commit's handle is kept so that a
//! caller dropped mid-commit leaves the next call able to learn how it ended.

use super::{OFFSET_SLOT, Opaque, PublishError, Publisher};
use crate::kafka::transaction::TransactionError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};
use std::time::Duration;

/// How long initialising transactions may take in all (a retriable failure is retried).
const INIT_LIMIT: Duration = Duration::from_secs(60);

impl Publisher {
    /// Exactly-once: registers the transactional id with its coordinator, which fences every
    /// older producer of it and aborts the transaction such a one left open. Before any record
    /// is sent, and before the stored offset is read (so no older instance commits after it).
    pub async fn init_transactions(&self) -> Result<(), PublishError> {
        // Not bounded by the transaction timeout (a setting for transactions, possibly short): a
        // fresh cluster first creates its coordinator's topic, which takes seconds.
        let deadline = std::time::Instant::now() + INIT_LIMIT;
        let what =
            format!("initialising transactions (transactional.id {})", self.transactional_id.as_deref().unwrap_or("-"));
        loop {
            let producer = self.producer.clone();
            let outcome = tokio::task::spawn_blocking(move || producer.init_transactions(INIT_LIMIT / 6))
                .await
                .map_err(|e| PublishError::Kafka(e.to_string()))?;
            match outcome {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(e)) if e.is_retriable() && std::time::Instant::now() < deadline => {
                    tracing::info!(error = %e, "{what}: the coordinator is not ready yet; asking again");
                }
                Err(e) => return Err(self.transaction_error(&what, &e)),
            }
        }
    }

    /// Whether a Kafka transaction is open (records were sent since the last commit).
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Waits for a commit begun by a call whose future was dropped; its outcome is `None` when
    /// none was running.
    async fn committed(&mut self) -> Option<Result<(), TransactionError>> {
        let handle = self.committing.as_mut()?;
        let outcome = match handle.await {
            Ok(outcome) => outcome,
            Err(e) => Err(TransactionError {
                code: RDKafkaErrorCode::Fail,
                message: format!("the commit's thread failed: {e}"),
                retriable: false,
                abortable: false,
                fatal: true,
            }),
        };
        self.committing = None;
        if outcome.is_ok() {
            self.in_transaction = false;
        }
        Some(outcome)
    }

    pub(super) async fn begin_if_needed(&mut self) -> Result<(), PublishError> {
        if let Some(Err(e)) = self.committed().await {
            return Err(self.commit_error(&e));
        }
        if self.transactional_id.is_some() && !self.in_transaction {
            self.producer.begin_transaction().map_err(|e| self.transaction_error("beginning a transaction", &e))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Exactly-once: adds the offset record (`value` under `key`, partition 0 of `topic`) to the
    /// open Kafka transaction. Its delivery is the commit's: no report reaches the tracker.
    pub async fn send_offset(&mut self, topic: &str, key: &str, value: &[u8]) -> Result<(), PublishError> {
        self.begin_if_needed().await?;
        let mut record: BaseRecord<'_, str, [u8], Opaque> =
            BaseRecord::with_opaque_to(topic, OFFSET_SLOT).partition(0).key(key).payload(value);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    let _ = tokio::time::timeout(Duration::from_millis(100), self.acks.ready.notified()).await;
                }
                Err((e, _)) => return Err(self.transaction_error("sending the offset", &e)),
            }
        }
    }

    /// Exactly-once: commits the open Kafka transaction — librdkafka first flushes its records
    /// and the offset record, so every delivery report has come when this returns. A commit Kafka
    /// cannot take is aborted (nothing of it visible) and reported; the caller stops.
    pub async fn commit_transaction(&mut self) -> Result<(), PublishError> {
        if let Some(Err(e)) = self.committed().await {
            return Err(self.commit_error(&e));
        }
        if !self.in_transaction {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + self.transaction_timeout;
        loop {
            let (producer, timeout) =
                (self.producer.clone(), deadline.saturating_duration_since(std::time::Instant::now()));
            self.committing = Some(tokio::task::spawn_blocking(move || {
                crate::kafka::transaction::commit(producer.client(), timeout)
            }));
            let e = match self.committed().await {
                Some(Ok(())) | None => return Ok(()),
                Some(Err(e)) => e,
            };
            // A passing fault (a coordinator moving, a broker restarting): the same commit again.
            if e.retriable && std::time::Instant::now() < deadline {
                tracing::warn!(error = %e, "committing the Kafka transaction: retrying");
                continue;
            }
            let error = self.commit_error(&e);
            if matches!(error, PublishError::Transaction { .. }) {
                self.abort_transaction().await;
            }
            return Err(error);
        }
    }

    /// Exactly-once: aborts the open Kafka transaction (its records are never visible to
    /// read_committed consumers). Best effort: a producer that cannot abort is fenced or gone,
    /// and the coordinator aborts the transaction at its timeout or at the next instance's start.
    pub async fn abort_transaction(&mut self) {
        if self.committed().await.is_some_and(|outcome| outcome.is_ok()) || !self.in_transaction {
            return;
        }
        self.in_transaction = false;
        let (producer, timeout) = (self.producer.clone(), self.transaction_timeout);
        match tokio::task::spawn_blocking(move || producer.abort_transaction(timeout)).await {
            Ok(Ok(())) => tracing::info!("Kafka transaction aborted"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the Kafka transaction could not be aborted; its coordinator will")
            }
            Err(e) => tracing::warn!(error = %e, "aborting the Kafka transaction"),
        }
    }

    /// Why this producer was fenced, if it was (the fatal error librdkafka recorded).
    pub fn fenced(&self) -> Option<String> {
        let (code, reason) = self.producer.client().fatal_error()?;
        is_fencing(code).then(|| format!("{code}: {reason}"))
    }

    /// A transactional call's failure, classed: fenced, or a transaction that cannot go on
    /// (with the fix when Kafka refused it).
    fn transaction_error(&self, what: &str, e: &KafkaError) -> PublishError {
        let fix = crate::kafka::refusal(e).map(|fix| format!(" — fix: {fix}")).unwrap_or_default();
        self.classified(e.rdkafka_error_code(), format!("{what}: {e}{fix}"))
    }

    /// A failed commit, classed like [`Publisher::transaction_error`].
    fn commit_error(&self, e: &TransactionError) -> PublishError {
        let detail = format!(
            "the commit failed: {e}. The transaction was aborted, so none of its records is visible to \
             read_committed consumers; a restart sends them again from the stored offset"
        );
        self.classified(Some(e.code), detail)
    }

    /// Fenced (what librdkafka recorded, or `code` says so), else a failed transaction.
    fn classified(&self, code: Option<RDKafkaErrorCode>, detail: String) -> PublishError {
        match self.fenced() {
            Some(detail) => PublishError::Fenced { detail },
            None if code.is_some_and(is_fencing) => PublishError::Fenced { detail },
            None => PublishError::Transaction { detail },
        }
    }
}

/// Whether a fatal producer error means another producer took over the transactional id.
fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(code, RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::Fenced | RDKafkaErrorCode::InvalidProducerEpoch)
}
