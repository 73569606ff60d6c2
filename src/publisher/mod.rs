//! Publisher stage: an idempotent rdkafka producer (`acks=all`, `enable.idempotence=true`,
//! lz4 by default, Java-compatible murmur2 partitioning of keys) with a bounded number of records
//! in flight. Records are enqueued in stream order (so one key's records keep their order on its
//! partition); a full local queue is waited out, never dropped; each delivery report comes back as
//! an ack or a failure for the committer.

use crate::committer::RecordId;
use crate::config::KafkaSettings;
use crate::error::ErrorClass;
use crate::kafka::{Context, TopicSpec};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::admin::AdminClient;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Publishing failures.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("topic {topic}: {detail}")]
    Topic { topic: String, detail: String },
}

impl PublishError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

/// Per-record metadata carried as Kafka headers.
#[derive(Debug, Clone)]
pub struct RecordHeaders<'a> {
    pub gtid: &'a str,
    /// 1-based position of the record in its transaction.
    pub position: u64,
    pub table: &'a str,
}

type Delivery = Pin<Box<dyn Future<Output = (RecordId, usize, Result<(), String>)> + Send>>;

/// See the module docs.
pub struct Publisher {
    producer: FutureProducer<Context>,
    admin: AdminClient<Context>,
    /// Topics known to exist, and how to create the others.
    topics: HashSet<String>,
    spec: TopicSpec,
    inflight: FuturesUnordered<Delivery>,
    max_inflight: usize,
    /// Key + value bytes of the records in flight, and their bound.
    inflight_bytes: usize,
    max_inflight_bytes: usize,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("inflight", &self.inflight.len()).finish()
    }
}

impl Publisher {
    /// `max_inflight` records and `max_inflight_bytes` bytes at most may await their delivery report.
    pub fn new(
        kafka: &KafkaSettings,
        topics: TopicSpec,
        max_inflight: usize,
        max_inflight_bytes: usize,
    ) -> Result<Publisher, PublishError> {
        let mut config = crate::kafka::client_config(kafka);
        // Defaults the pass-through may change...
        for (key, value) in [("compression.type", "lz4"), ("partitioner", "murmur2_random"), ("linger.ms", "5")] {
            if !kafka.librdkafka.contains_key(key) {
                config.set(key, value);
            }
        }
        // ...but never what the commit rule depends on (config validation rejects them too).
        config.set("enable.idempotence", "true").set("acks", "all");
        let producer = crate::kafka::create(&config).map_err(|e: KafkaError| PublishError::Kafka(e.to_string()))?;
        let admin = crate::kafka::create(&config).map_err(|e: KafkaError| PublishError::Kafka(e.to_string()))?;
        Ok(Publisher {
            producer,
            admin,
            topics: HashSet::new(),
            spec: topics,
            inflight: FuturesUnordered::new(),
            max_inflight,
            inflight_bytes: 0,
            max_inflight_bytes,
        })
    }

    /// Creates `topic` the first time it is seen, if the cluster does not have it, as the data
    /// topics' spec says.
    pub async fn ensure_topic(&mut self, topic: &str) -> Result<(), PublishError> {
        if self.topics.contains(topic) {
            return Ok(());
        }
        let spec = self.spec.clone();
        self.ensure_topic_as(topic, &spec).await
    }

    /// Like [`Publisher::ensure_topic`], with another layout.
    pub async fn ensure_topic_as(&mut self, topic: &str, spec: &TopicSpec) -> Result<(), PublishError> {
        if self.topics.contains(topic) {
            return Ok(());
        }
        crate::kafka::create_topic(&self.admin, topic, spec)
            .await
            .map_err(|detail| PublishError::Topic { topic: topic.into(), detail })?;
        self.topics.insert(topic.to_string());
        Ok(())
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Key + value bytes of the records in flight.
    pub fn inflight_bytes(&self) -> usize {
        self.inflight_bytes
    }

    pub fn has_capacity(&self) -> bool {
        self.inflight.len() < self.max_inflight && self.inflight_bytes < self.max_inflight_bytes
    }

    /// Enqueues a record (a tombstone when `value` is `None`). Waits while librdkafka's queue is
    /// full, collecting delivery reports meanwhile into `acks`.
    pub async fn send(
        &mut self,
        id: RecordId,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &RecordHeaders<'_>,
        acks: &mut Vec<(RecordId, Result<(), String>)>,
    ) -> Result<(), PublishError> {
        let position = headers.position.to_string();
        let owned = OwnedHeaders::new()
            .insert(Header { key: "rowferry.gtid", value: Some(headers.gtid) })
            .insert(Header { key: "rowferry.position", value: Some(&position) })
            .insert(Header { key: "rowferry.table", value: Some(headers.table) });
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(owned.clone());
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(v) = value {
                record = record.payload(v);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    let size = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
                    self.inflight_bytes += size;
                    self.inflight.push(Box::pin(settle(id, size, delivery)));
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Wait for a delivery to free space; if none is ours, give librdkafka a moment.
                    match self.next_ack_within(Duration::from_millis(100)).await {
                        Some(ack) => acks.push(ack),
                        None => self.producer.poll(Duration::from_millis(10)),
                    }
                }
                Err((e, _)) => return Err(PublishError::Kafka(e.to_string())),
            }
        }
    }

    /// The next delivery report, or `None` when nothing is in flight.
    pub async fn next_ack(&mut self) -> Option<(RecordId, Result<(), String>)> {
        let (id, size, result) = self.inflight.next().await?;
        self.inflight_bytes -= size;
        Some((id, result))
    }

    async fn next_ack_within(&mut self, limit: Duration) -> Option<(RecordId, Result<(), String>)> {
        tokio::time::timeout(limit, self.next_ack()).await.ok().flatten()
    }
}

async fn settle(id: RecordId, size: usize, delivery: DeliveryFuture) -> (RecordId, usize, Result<(), String>) {
    let result = match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.to_string()),
        Err(_) => Err("the producer dropped the delivery report".into()),
    };
    (id, size, result)
}
