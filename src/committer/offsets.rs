//! Where the committed position lives: a compacted Kafka topic keyed by connector name (the
//! default), or a local file.
//!
//! The stored value is JSON with the fields of `schemas/offset.avsc`: connector, flavor, the GTID
//! set, and when it was written. The file store writes a temporary file, fsyncs it, renames it over
//! the old one and fsyncs the directory, so a crash leaves either the old or the new offset, never
//! a torn one. The Kafka store produces with acks=all (idempotent, so writes land in order) and
//! reads back the last value for its key.
//!
//! A write to the Kafka store may take as long as the cluster needs to elect a leader, or until
//! librdkafka's `message.timeout.ms` when it cannot: [`OffsetStore::begin`] starts a write and
//! hands back a [`Pending`] one that the committer checks on its ticks, so the pipeline never waits
//! on the offsets topic while records keep flowing.

use crate::config::{KafkaSettings, OffsetSettings};
use crate::kafka::{Context, TopicSpec};
use crate::kafka::{client_config, create_topic, read_to_end};
use crate::position::{MariaDbPosition, MySqlGtidSet, Position};
use crate::source::Flavor;
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredOffset {
    pub connector: String,
    pub flavor: String,
    pub gtid_set: String,
    pub committed_at_ms: i64,
    /// The snapshot in progress at this position, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<crate::snapshot::progress::SnapshotProgress>,
}

impl StoredOffset {
    pub fn new(connector: &str, position: &Position) -> Self {
        let flavor = match position {
            Position::MySql(_) => "mysql",
            Position::MariaDb(_) => "mariadb",
        };
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        StoredOffset {
            connector: connector.into(),
            flavor: flavor.into(),
            gtid_set: position.to_string(),
            committed_at_ms: now,
            snapshot: None,
        }
    }

    /// With the snapshot progress that goes with the position.
    pub fn with_snapshot(mut self, snapshot: Option<crate::snapshot::progress::SnapshotProgress>) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// The position, checked against the server's flavor.
    pub fn position(&self, flavor: Flavor) -> Result<Position, OffsetError> {
        let bad = |detail: String| OffsetError::Invalid { detail };
        match (self.flavor.as_str(), flavor) {
            ("mysql", Flavor::MySql) => {
                Ok(Position::MySql(MySqlGtidSet::parse(&self.gtid_set).map_err(|e| bad(e.to_string()))?))
            }
            ("mariadb", Flavor::MariaDb) => {
                Ok(Position::MariaDb(MariaDbPosition::parse(&self.gtid_set).map_err(|e| bad(e.to_string()))?))
            }
            (stored, server) => Err(bad(format!(
                "the stored offset is a {stored} position but the source is {server}; point rowferry at the right server or use another connector name"
            ))),
        }
    }
}

/// Offset storage failures.
#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("offset file {}: {detail}", path.display())]
    File { path: PathBuf, detail: String },
    #[error("offsets topic {topic}: {detail}")]
    Topic { topic: String, detail: String },
    #[error("offsets topic {topic}: {detail} — fix: {fix}")]
    Refused { topic: String, detail: String, fix: String },
    #[error("stored offset is unusable: {detail}")]
    Invalid { detail: String },
}

impl OffsetError {
    pub fn class(&self) -> crate::error::ErrorClass {
        match self {
            OffsetError::Topic { .. } => crate::error::ErrorClass::Retryable,
            OffsetError::Refused { .. } | OffsetError::File { .. } | OffsetError::Invalid { .. } => {
                crate::error::ErrorClass::Fatal
            }
        }
    }
}

/// A write to the store that may not have completed yet.
pub enum Pending {
    /// Written (the file store writes before it returns).
    Done,
    /// Produced to the offsets topic; done when Kafka acknowledges it.
    Kafka { topic: String, delivery: rdkafka::producer::DeliveryFuture },
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pending::Done => write!(f, "Pending::Done"),
            Pending::Kafka { topic, .. } => write!(f, "Pending::Kafka({topic})"),
        }
    }
}

impl Pending {
    /// `Some` once the write has completed (at once for the file store), without waiting.
    pub async fn poll(&mut self) -> Option<Result<(), OffsetError>> {
        match self {
            Pending::Done => Some(Ok(())),
            Pending::Kafka { topic, delivery } => {
                // A zero timeout polls the delivery once and returns at once.
                let outcome = tokio::time::timeout(Duration::ZERO, delivery).await.ok()?;
                Some(delivered(topic, outcome))
            }
        }
    }

    /// Waits for the write to complete.
    pub async fn wait(self) -> Result<(), OffsetError> {
        match self {
            Pending::Done => Ok(()),
            Pending::Kafka { topic, delivery } => delivered(&topic, delivery.await),
        }
    }
}

/// The outcome of a produce to the offsets topic, classed.
fn delivered<Canceled>(
    topic: &str,
    outcome: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Canceled>,
) -> Result<(), OffsetError> {
    match outcome {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(topic_error(topic, &e)),
        Err(_) => Err(OffsetError::Topic { topic: topic.into(), detail: "the producer was closed".into() }),
    }
}

/// A Kafka error of the offsets topic: a refusal no retry can fix, or a retryable fault.
fn topic_error(topic: &str, e: &rdkafka::error::KafkaError) -> OffsetError {
    match crate::kafka::refusal(e) {
        Some(fix) => OffsetError::Refused { topic: topic.into(), detail: e.to_string(), fix },
        None => OffsetError::Topic { topic: topic.into(), detail: crate::kafka::produce_failure(e) },
    }
}

/// The configured store.
pub enum OffsetStore {
    File { path: PathBuf },
    Kafka { topic: String, producer: FutureProducer<Context>, config: ClientConfig },
}

impl std::fmt::Debug for OffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OffsetStore::File { path } => write!(f, "OffsetStore::File({})", path.display()),
            OffsetStore::Kafka { topic, .. } => write!(f, "OffsetStore::Kafka({topic})"),
        }
    }
}

impl OffsetStore {
    /// `replication`: of the offsets topic when rowferry creates it (-1: the broker's default).
    pub async fn open(
        settings: &OffsetSettings,
        kafka: &KafkaSettings,
        replication: i32,
    ) -> Result<OffsetStore, OffsetError> {
        match settings {
            OffsetSettings::File { path } => Ok(OffsetStore::File { path: path.clone() }),
            OffsetSettings::Kafka { topic } => {
                let err = |detail: String| OffsetError::Topic { topic: topic.clone(), detail };
                let config = client_config(kafka);
                let admin: std::sync::Arc<AdminClient<Context>> =
                    crate::kafka::create(&config).map(std::sync::Arc::new).map_err(|e| err(e.to_string()))?;
                create_topic(&admin, topic, &TopicSpec::internal(replication)).await.map_err(err)?;
                let producer =
                    crate::kafka::create(&crate::kafka::internal_producer(&config)).map_err(|e| err(e.to_string()))?;
                Ok(OffsetStore::Kafka { topic: topic.clone(), producer, config })
            }
        }
    }

    /// The offsets topic (`None`: the file store).
    pub fn topic(&self) -> Option<&str> {
        match self {
            OffsetStore::File { .. } => None,
            OffsetStore::Kafka { topic, .. } => Some(topic),
        }
    }

    /// The last stored offset of `connector`, if any.
    pub async fn load(&self, connector: &str) -> Result<Option<StoredOffset>, OffsetError> {
        match self {
            OffsetStore::File { path } => match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| OffsetError::File { path: path.clone(), detail: format!("not an offset: {e}") }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(OffsetError::File { path: path.clone(), detail: e.to_string() }),
            },
            OffsetStore::Kafka { topic, config, .. } => {
                let (config, topic, key) = (config.clone(), topic.clone(), connector.to_string());
                tokio::task::spawn_blocking(move || read_last(&config, &topic, &key))
                    .await
                    .map_err(|e| OffsetError::Invalid { detail: e.to_string() })?
            }
        }
    }

    /// Stores `offset` durably (waits for it).
    pub async fn store(&self, offset: &StoredOffset) -> Result<(), OffsetError> {
        self.begin(offset).await?.wait().await
    }

    /// Starts storing `offset`: the file store writes it before returning; the Kafka store hands
    /// the record to its producer and returns the write to check later (writes land in the
    /// order they were begun).
    pub async fn begin(&self, offset: &StoredOffset) -> Result<Pending, OffsetError> {
        let bytes = serde_json::to_vec(offset).map_err(|e| OffsetError::Invalid { detail: e.to_string() })?;
        match self {
            OffsetStore::File { path } => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
                    .await
                    .map_err(|e| OffsetError::Invalid { detail: e.to_string() })??;
                Ok(Pending::Done)
            }
            OffsetStore::Kafka { topic, producer, .. } => {
                let record = FutureRecord::to(topic).partition(0).key(&offset.connector).payload(&bytes);
                match producer.send_result(record) {
                    Ok(delivery) => Ok(Pending::Kafka { topic: topic.clone(), delivery }),
                    Err((e, _)) => Err(topic_error(topic, &e)),
                }
            }
        }
    }
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), OffsetError> {
    use std::io::Write;
    let err = |e: std::io::Error| OffsetError::File { path: path.to_path_buf(), detail: e.to_string() };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)
}

fn read_last(config: &ClientConfig, topic: &str, key: &str) -> Result<Option<StoredOffset>, OffsetError> {
    let mut last = None;
    read_to_end(config, topic, TIMEOUT, |message| {
        if message.key() == Some(key.as_bytes()) {
            last = match message.payload() {
                Some(p) => Some(serde_json::from_slice(p).map_err(|e| format!("offset {}: {e}", message.offset()))?),
                None => None,
            };
        }
        Ok(())
    })
    .map_err(|detail| OffsetError::Topic { topic: topic.to_string(), detail })?;
    Ok(last)
}
