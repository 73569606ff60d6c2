//! Small Kafka helpers shared by the stages that talk to the cluster directly (publisher,
//! offset store, embedded registry): one way to build a client from the settings, to create a
//! topic idempotently, and to read a single-partition topic from its start to its current end.

use crate::config::KafkaSettings;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Client settings: bootstrap servers plus the `kafka.librdkafka` pass-through.
pub fn client_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers);
    for (k, v) in &kafka.librdkafka {
        c.set(k, v);
    }
    c
}

/// Creates a one-partition topic unless it exists; `compacted` sets cleanup.policy=compact.
pub async fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    compacted: bool,
) -> Result<(), String> {
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    if compacted {
        new = new.set("cleanup.policy", "compact");
    }
    for result in admin.create_topics([&new], &AdminOptions::new()).await.map_err(|e| e.to_string())? {
        if let Err((_, code)) = result
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(format!("creating topic {topic}: {code}"));
        }
    }
    Ok(())
}

/// Calls `each` for every record of partition 0 of `topic`, from the beginning up to the end it
/// had when called. Blocking: run it on a blocking thread.
pub fn read_to_end(
    config: &ClientConfig,
    topic: &str,
    group: &str,
    limit: Duration,
    mut each: impl FnMut(&BorrowedMessage<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let mut c = config.clone();
    c.set("group.id", group).set("enable.auto.commit", "false");
    let consumer: BaseConsumer = c.create().map_err(|e| e.to_string())?;
    let (low, high) = consumer.fetch_watermarks(topic, 0, limit).map_err(|e| format!("watermarks: {e}"))?;
    if high <= low {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    loop {
        if Instant::now() > deadline {
            return Err(format!("did not reach offset {high} within {limit:?}"));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message.map_err(|e| e.to_string())?;
        each(&message)?;
        if message.offset() + 1 >= high {
            return Ok(());
        }
    }
}
