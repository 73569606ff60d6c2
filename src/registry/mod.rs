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
//! Every new version passes a compatibility check before it is used ([`compat`]): the embedded
//! registry applies the subject's level itself; against an external registry ([`external`]) the
//! registry's own check is asked first and its answer to the registration (409) is final.
//! [`Registry`] is the one the pipeline holds.

pub mod compat;
pub mod embedded;
pub mod external;
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
    #[error(
        "subject {subject}: the new schema breaks the subject's compatibility level {level}: {detail} — fix: make \
         the change compatible, or relax the level for this subject (PUT /config/{subject} \
         {{\"compatibility\": \"NONE\"}}) and restart"
    )]
    Incompatible { subject: String, level: String, detail: String },
    #[error("subject {subject}: the registry refused the schema as invalid: {detail}")]
    Invalid { subject: String, detail: String },
    #[error("schema registry {url}: {detail}")]
    Unavailable { url: String, detail: String },
    #[error("schema registry {url} refused rowferry ({status}): {detail}")]
    Refused { url: String, status: u16, detail: String },
}

impl RegistryError {
    pub fn class(&self) -> ErrorClass {
        match self {
            RegistryError::Log { .. } => ErrorClass::Retryable,
            RegistryError::Record { .. } => ErrorClass::Fatal,
            RegistryError::Subject { .. } | RegistryError::Incompatible { .. } | RegistryError::Invalid { .. } => {
                ErrorClass::PerTable
            }
            RegistryError::Unavailable { .. } => ErrorClass::Retryable,
            RegistryError::Refused { .. } => ErrorClass::Fatal,
        }
    }
}

/// The registry the encoder registers with.
#[derive(Debug, Clone)]
pub enum Registry {
    Embedded(std::sync::Arc<embedded::EmbeddedRegistry>),
    External(std::sync::Arc<external::ExternalRegistry>),
}

impl Registry {
    /// The id of `schema` under `subject`, registering it (after the compatibility check) when new.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        match self {
            Registry::Embedded(r) => Ok(r.register(subject, schema).await?.id),
            Registry::External(r) => r.register(subject, schema).await,
        }
    }
}
