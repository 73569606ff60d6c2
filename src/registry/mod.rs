//! Schema registry: ids for the Avro schemas rowferry writes, readable by stock Confluent
//! deserializers.
//!
//! The embedded registry (the local default) keeps its schemas in the Kafka topic `_schemas`, in
//! the record format Confluent Schema Registry itself uses ([`records`]), assigns ids the way it
//! does (one global counter; an identical schema under another subject reuses its id), and serves
//! the read side of the REST API on rowferry's HTTP port ([`http`]). On start it replays the topic,
//! so ids survive restarts, and a real Confluent registry can later take over the same topic.
//!
//! Invariant: an id is handed out only after its `_schemas` record is acknowledged by Kafka, so no
//! message ever names an id that a restarted registry would not know.
//!
//! Not built yet (issue #4): the client for an external registry (basic auth, TLS, 409 handling).

pub mod embedded;
pub mod http;
pub mod records;
pub mod store;

use crate::error::ErrorClass;

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema log (topic {topic}): {detail}")]
    Log { topic: String, detail: String },
    #[error("malformed record in the schema log at offset {offset}: {detail}")]
    Record { offset: i64, detail: String },
    #[error("subject {subject}: {detail}")]
    Subject { subject: String, detail: String },
}

impl RegistryError {
    pub fn class(&self) -> ErrorClass {
        match self {
            RegistryError::Log { .. } => ErrorClass::Retryable,
            RegistryError::Record { .. } => ErrorClass::Fatal,
            RegistryError::Subject { .. } => ErrorClass::PerTable,
        }
    }
}
