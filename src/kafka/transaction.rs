//! Committing a Kafka transaction through librdkafka's C API.
//!
//! rust-rdkafka's `commit_transaction` first runs its own flush, which polls the producer's event
//! queue in rounds of up to 100 ms; with a `ThreadedProducer` the producer's polling thread serves
//! the delivery reports instead, so that flush often sleeps a whole round per commit — with a
//! commit every 100 ms, half the stream's time. librdkafka's own `rd_kafka_commit_transaction`
//! flushes too (serving reports itself, in 10 ms rounds, alongside the polling thread), then
//! commits. This module calls it directly: the second module of rowferry allowed `unsafe`, one
//! call, its error object read and destroyed exactly once.
#![allow(unsafe_code)]

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};
use rdkafka::types::RDKafkaErrorCode;
use std::ffi::CStr;
use std::time::Duration;

/// Why a commit failed, with librdkafka's classification of the error.
#[derive(Debug, Clone)]
pub struct TransactionError {
    pub code: RDKafkaErrorCode,
    pub message: String,
    /// The same call may be made again (a timeout, a coordinator moving).
    pub retriable: bool,
    /// The transaction must be aborted (a record could not be delivered, the transaction timed out).
    pub abortable: bool,
    /// The producer cannot go on (fenced, or another fatal error).
    pub fatal: bool,
}

impl std::fmt::Display for TransactionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)
    }
}

/// Flushes every record of the producer's open transaction and commits it (blocking, up to
/// `timeout`).
pub fn commit<C: ClientContext>(client: &Client<C>, timeout: Duration) -> Result<(), TransactionError> {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the client (a producer with a transactional.id) is live for the call.
    let error = unsafe { rd::rd_kafka_commit_transaction(client.native_ptr(), ms) };
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: `error` is a non-null error object owned by us: read, then destroyed once; the
    // message is copied before that.
    unsafe {
        let message = rd::rd_kafka_error_string(error);
        let out = TransactionError {
            code: rd::rd_kafka_error_code(error).into(),
            message: if message.is_null() {
                String::new()
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            },
            retriable: rd::rd_kafka_error_is_retriable(error) != 0,
            abortable: rd::rd_kafka_error_txn_requires_abort(error) != 0,
            fatal: rd::rd_kafka_error_is_fatal(error) != 0,
        };
        rd::rd_kafka_error_destroy(error);
        Err(out)
    }
}
