//! The embedded registry: a [`Store`] persisted in the `_schemas` topic.
//!
//! `open` creates the topic when missing (one partition, compacted — as Confluent's registry
//! does) and replays it to its end (a topic this call created held nothing when it was made: not
//! read). `register` writes the new version's record and waits for
//! Kafka's acknowledgement (acks=all) before applying it and returning the id. Registrations are
//! serialised, so two writers never pick the same id.

use super::RegistryError;
use super::compat::{self, Level};
use super::records::{self, LogRecord};
use super::store::{Plan, Store, Version};
use crate::config::KafkaSettings;
use crate::kafka::{Context, TopicSpec};
use crate::kafka::{client_config, create_topic, read_to_end};
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::RwLock;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// See the module docs.
pub struct EmbeddedRegistry {
    store: RwLock<Store>,
    producer: FutureProducer<Context>,
    topic: String,
    writing: tokio::sync::Mutex<()>,
    /// The level for subjects without a CONFIG record (and no global one in the log).
    default_level: Level,
}

impl std::fmt::Debug for EmbeddedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedRegistry").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl EmbeddedRegistry {
    /// Opens the registry on `topic` (normally `_schemas`), replaying what it holds.
    /// `replication`: of the topic when rowferry creates it (-1: the broker's default).
    pub async fn open(kafka: &KafkaSettings, topic: &str, replication: i32) -> Result<EmbeddedRegistry, RegistryError> {
        let log = |detail: String| RegistryError::Log { topic: topic.to_string(), detail };
        let config = client_config(kafka);
        // The producer first: librdkafka asks for its idempotent producer id in the background,
        // while the topic is made and replayed, so the first schema written does not wait for it.
        let producer: FutureProducer<Context> =
            crate::kafka::create(&crate::kafka::internal_producer(&config)).map_err(|e| log(e.to_string()))?;
        let admin: std::sync::Arc<AdminClient<Context>> =
            crate::kafka::create(&config).map(std::sync::Arc::new).map_err(|e| log(e.to_string()))?;
        let created = create_topic(&admin, topic, &TopicSpec::internal(replication)).await.map_err(log)?;
        crate::kafka::close_in_background(admin);
        // The producer looks up the topic's leader while the log is replayed, so the first schema
        // written does not wait for that either. A log just created is empty (what another
        // writer adds after that is missed as it would be after a replay's end): a new
        // cluster's first start saves the consumer's set-up and watermark query.
        let replayed = {
            let config = config.clone();
            let topic = topic.to_string();
            tokio::task::spawn_blocking(move || if created { Ok(Store::new()) } else { replay(&config, &topic) })
        };
        let (replayed, ()) = tokio::join!(replayed, crate::kafka::look_up_leader(producer.clone(), topic));
        let store = replayed.map_err(|e| log(e.to_string()))??;
        Ok(EmbeddedRegistry {
            store: RwLock::new(store),
            producer,
            topic: topic.to_string(),
            writing: tokio::sync::Mutex::new(()),
            default_level: Level::Backward,
        })
    }

    /// The compatibility level of subjects that have none of their own (default BACKWARD, as
    /// Confluent's). A global CONFIG record in the log wins over it.
    pub fn with_default_level(mut self, level: Level) -> Self {
        self.default_level = level;
        self
    }

    /// The level that applies to `subject`: its own, else the global one, else the default.
    pub fn level(&self, subject: &str) -> Level {
        self.read(|s| s.level(Some(subject)).and_then(Level::parse)).unwrap_or_else(|| self.global_level())
    }

    /// The global level: a global CONFIG record's, else the default.
    pub fn global_level(&self) -> Level {
        self.read(|s| s.level(None).and_then(Level::parse)).unwrap_or(self.default_level)
    }

    /// Whether `schema` may be registered under `subject` now (the level's rule against the
    /// subject's versions).
    pub fn check(&self, subject: &str, schema: &str) -> Result<(), RegistryError> {
        let level = self.level(subject);
        self.read(|s| compat::check(level, schema, &s.history(subject))).map_err(|detail| RegistryError::Incompatible {
            subject: subject.to_string(),
            level: level.to_string(),
            detail,
        })
    }

    /// Registers `schema` under `subject`, returning its id and version (existing or new). A new
    /// version must pass the subject's compatibility level.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<Version, RegistryError> {
        let _one_writer = self.writing.lock().await;
        let plan = self.read(|s| s.plan(subject, schema));
        let value = match plan {
            Plan::Existing(v) => return Ok(v),
            Plan::New(value) => value,
        };
        apache_avro::Schema::parse_str(schema)
            .map_err(|e| RegistryError::Invalid { subject: subject.into(), detail: e.to_string() })?;
        self.check(subject, schema)?;
        let (key, payload) = records::schema_record(&value.subject, value.version, value.id, &value.schema);
        let record = FutureRecord::to(&self.topic).partition(0).key(&key).payload(&payload);
        self.producer.send(record, TIMEOUT).await.map_err(|(e, _)| RegistryError::Log {
            topic: self.topic.clone(),
            detail: format!("writing {subject}: {}", crate::kafka::produce_failure(&e)),
        })?;
        let version = Version {
            subject: value.subject.clone(),
            version: value.version,
            id: value.id,
            schema: value.schema.clone(),
        };
        self.write(|s| s.apply(LogRecord::Schema(value)));
        Ok(version)
    }

    /// Sets the compatibility level of `subject` (`None`: the global level) in the log.
    pub async fn set_level(&self, subject: Option<&str>, level: Level) -> Result<(), RegistryError> {
        let _one_writer = self.writing.lock().await;
        let (key, payload) = records::config_record(subject, level.name());
        let record = FutureRecord::to(&self.topic).partition(0).key(&key).payload(&payload);
        self.producer.send(record, TIMEOUT).await.map_err(|(e, _)| RegistryError::Log {
            topic: self.topic.clone(),
            detail: format!("writing the level of {}: {e}", subject.unwrap_or("(global)")),
        })?;
        let subject = subject.map(str::to_string);
        self.write(|s| s.apply(LogRecord::Config { subject, level: Some(level.name().to_string()) }));
        Ok(())
    }

    /// Reads the store.
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        // A panic while holding the lock cannot leave the store half-updated (apply is one insert
        // sequence), so a poisoned lock's data is still good.
        f(&self.store.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn write(&self, f: impl FnOnce(&mut Store)) {
        f(&mut self.store.write().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Reads the topic from the beginning to its current end.
fn replay(config: &ClientConfig, topic: &str) -> Result<Store, RegistryError> {
    let mut store = Store::new();
    let mut bad = None;
    read_to_end(config, topic, TIMEOUT, |message| {
        match records::parse(message.key().unwrap_or_default(), message.payload()) {
            Ok(record) => store.apply(record),
            Err(detail) => {
                bad = Some(RegistryError::Record { offset: message.offset(), detail });
                return Err("malformed record".into());
            }
        }
        Ok(())
    })
    .map_err(|detail| bad.take().unwrap_or(RegistryError::Log { topic: topic.to_string(), detail }))?;
    Ok(store)
}
