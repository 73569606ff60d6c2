//! Small Kafka helpers shared by the stages that talk to the cluster directly (publisher,
//! offset store, embedded registry): one way to build a client from the settings, to create a
//! topic idempotently (returning once it can be used), and to read a single-partition topic from
//! its start to its current end.
//!
//! Every client uses [`Context`], which keeps librdkafka's messages in rowferry's log without
//! flooding it: while a broker is down librdkafka reports each failed reconnect from each client,
//! a few times a second; the context logs each distinct message at most once per
//! [`REPEAT_WINDOW`] and says how many it held back.

pub mod authorized;
pub mod transaction;
pub mod version;

use crate::config::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a repeated librdkafka message stays quiet.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(30);

/// Client context of every rowferry Kafka client (see the module docs). Errors reported here are
/// what librdkafka retries by itself (unreachable brokers, transport failures), so they are
/// warnings; a delivery that finally fails reaches the committer as a failed ack and stops the run.
#[derive(Debug, Default)]
pub struct Context {
    /// Per message key: when it was last logged, and how many were held back since.
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Context {
    /// Whether to log the message with this key now, and how many were held back before it.
    fn admit(&self, key: &str) -> Option<u64> {
        let Ok(mut seen) = self.seen.lock() else { return Some(0) };
        let now = Instant::now();
        match seen.get_mut(key) {
            Some((at, held)) if now.duration_since(*at) < REPEAT_WINDOW => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = *held;
                *at = now;
                *held = 0;
                Some(n)
            }
            None => {
                if seen.len() > 1024 {
                    seen.clear();
                }
                seen.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        use RDKafkaLogLevel::*;
        let Some(held) = self.admit(&format!("log:{fac}:{}", strip_counts(message))) else { return };
        match level {
            Emerg | Alert | Critical | Error | Warning => {
                tracing::warn!(target: "librdkafka", held_back = held, "{fac}: {message}")
            }
            Notice | Info => tracing::info!(target: "librdkafka", held_back = held, "{fac}: {message}"),
            Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if group_only(&error) || matches!(error, KafkaError::PartitionEOF(_)) {
            // Readers name a group they never join (see READER_GROUP): a refused lookup of its
            // coordinator changes nothing. A reader at its partition's end is where it wants to be.
            tracing::debug!(target: "librdkafka", "kafka client: {reason}");
            return;
        }
        let Some(held) = self.admit(&format!("error:{:?}", error.rdkafka_error_code())) else { return };
        tracing::warn!(target: "librdkafka", held_back = held, "kafka client: {reason} (retrying)");
    }
}

impl ConsumerContext for Context {}

/// A message without its changing parts (durations, counts), so repeats compare equal.
fn strip_counts(message: &str) -> String {
    message.split(" (after").next().unwrap_or(message).to_string()
}

/// When Kafka refused a request for a reason no retry fixes (a missing permission, a record over
/// a size limit, a bad topic setting): the fix, for the operator. `None` for faults that pass
/// (an unreachable broker, a leader election, too few in-sync replicas, a timeout).
pub fn refusal(error: &KafkaError) -> Option<String> {
    refusal_fix(error.rdkafka_error_code()?).map(String::from)
}

/// [`refusal`] for an error code.
pub fn refusal_fix(code: RDKafkaErrorCode) -> Option<&'static str> {
    use RDKafkaErrorCode::*;
    let fix = match code {
        TopicAuthorizationFailed => {
            "grant rowferry's principal Describe and Write on the topic (and Create, or create the topic \
             yourself): kafka-acls.sh --add --allow-principal User:<name> --operation Write --operation Describe \
             --topic <topic>"
        }
        ClusterAuthorizationFailed => {
            "grant rowferry's principal IdempotentWrite on the cluster (kafka-acls.sh --add --allow-principal \
             User:<name> --operation IdempotentWrite --cluster), or Write on its topics (Kafka 2.8+ accepts \
             either for an idempotent producer)"
        }
        TransactionalIdAuthorizationFailed => {
            "kafka.delivery = \"exactly_once\" needs Write and Describe on the transactional id \
             rowferry-<name> (kafka-acls.sh --add --allow-principal User:<name> --operation Write --operation \
             Describe --transactional-id rowferry-<name>), and IdempotentWrite on the cluster"
        }
        MessageSizeTooLarge | InvalidMessageSize | MessageBatchTooLarge => {
            "the record is larger than Kafka accepts: raise the topic's max.message.bytes (and the producer's \
             kafka.librdkafka message.max.bytes), or make rows smaller with columns.truncate / columns.exclude"
        }
        InvalidTopic
        | InvalidPartitions
        | InvalidReplicationFactor
        | InvalidReplicaAssignment
        | InvalidConfig
        | PolicyViolation
        | InvalidRequiredAcks => {
            "the cluster refuses this topic's settings: see [topics] (partitions, replication_factor, config)"
        }
        _ => return None,
    };
    Some(fix)
}

/// Why a produce failed, and what to do about it. librdkafka retries every passing fault (no
/// leader, too few in-sync replicas, an unreachable broker) by itself until the record's
/// `message.timeout.ms`; a failure means that time ran out, or Kafka refused the record.
pub fn produce_failure(e: &KafkaError) -> String {
    match refusal(e) {
        Some(fix) => format!("{e} — fix: {fix}"),
        None => format!(
            "{e}: Kafka did not take it within kafka.librdkafka message.timeout.ms (librdkafka's default: 300000 ms). \
             Nothing is lost: a restart resumes from the stored offset once the cluster takes writes again"
        ),
    }
}

/// Client settings: bootstrap servers plus the `kafka.librdkafka` pass-through. No client of
/// rowferry's lets the broker auto-create a topic: librdkafka's producers (and admin clients)
/// allow it by default, and Apache Kafka's brokers default to `auto.create.topics.enable=true`,
/// so the metadata request that checks whether a topic exists would create it with the broker's
/// `num.partitions` and no compaction before rowferry could create it as configured.
pub fn client_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers).set("allow.auto.create.topics", "false");
    for (k, v) in &kafka.librdkafka {
        c.set(k, v);
    }
    c
}

/// Settings of the producers of rowferry's own topics (offsets, schemas): idempotent with
/// `acks=all`, and sent at once — one record now and then gains nothing from waiting for a batch
/// (`linger.ms` in the pass-through is for the data records), and a schema write holds up the
/// first record of its table, an offset write the at-least-once tail.
pub fn internal_producer(config: &ClientConfig) -> ClientConfig {
    let mut c = config.clone();
    c.set("enable.idempotence", "true").set("acks", "all").set("linger.ms", "0");
    c
}

/// A client of type `T` (producer, consumer, admin) with rowferry's [`Context`].
pub fn create<T: rdkafka::config::FromClientConfigAndContext<Context>>(config: &ClientConfig) -> KafkaResult<T> {
    config.create_with_context(Context::default())
}

/// How a topic rowferry creates is laid out.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication: i32,
    pub config: Vec<(String, String)>,
}

impl TopicSpec {
    /// rowferry's own single-partition compacted topics (offsets, schemas).
    pub fn internal(replication: i32) -> TopicSpec {
        TopicSpec { partitions: 1, replication, config: vec![("cleanup.policy".into(), "compact".into())] }
    }

    /// Data topics, as `[topics]` says.
    pub fn data(topics: &crate::config::TopicSettings) -> TopicSpec {
        TopicSpec {
            partitions: topics.partitions,
            replication: topics.replication_factor,
            config: topics.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

/// How long a new topic may take to appear in the brokers' metadata.
const TOPIC_LISTED: Duration = Duration::from_secs(30);

/// Creates `topic` as `spec` says unless it exists (an existing topic is used as it is, and
/// needs no Create permission: Kafka refuses CreateTopics for want of Create before it would say
/// the topic exists), and returns once the cluster's metadata lists it with a leader for every
/// partition. (A KRaft broker learns of a new topic from the metadata log a moment after
/// CreateTopics has answered; a read or write before that fails with "Unknown partition".)
/// Returns whether this call created it (so it held nothing when it was listed).
pub async fn create_topic(admin: &Arc<AdminClient<Context>>, topic: &str, spec: &TopicSpec) -> Result<bool, String> {
    let exists = {
        let (admin, name) = (Arc::clone(admin), topic.to_string());
        tokio::task::spawn_blocking(move || listed(&admin, &name)).await.map_err(|e| e.to_string())?
    };
    let mut created = false;
    if !exists {
        let mut new = NewTopic::new(topic, spec.partitions, TopicReplication::Fixed(spec.replication));
        for (key, value) in &spec.config {
            new = new.set(key, value);
        }
        for result in admin.create_topics([&new], &AdminOptions::new()).await.map_err(|e| e.to_string())? {
            match result {
                Ok(_) => created = true,
                // Made meanwhile by another client (another rowferry, an operator).
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(match refusal_fix(code) {
                        Some(fix) => format!("creating topic {topic}: {code} — fix: {fix}"),
                        None => format!("creating topic {topic}: {code}"),
                    });
                }
            }
        }
    }
    let (admin, name) = (Arc::clone(admin), topic.to_string());
    tokio::task::spawn_blocking(move || wait_listed(&admin, &name)).await.map_err(|e| e.to_string())??;
    Ok(created)
}

/// Whether the metadata lists `topic` with a leader for each partition (blocking).
fn listed(admin: &AdminClient<Context>, topic: &str) -> bool {
    admin.inner().fetch_metadata(Some(topic), Duration::from_secs(5)).is_ok_and(|m| {
        m.topics().iter().any(|t| {
            t.name() == topic
                && t.error().is_none()
                && !t.partitions().is_empty()
                && t.partitions().iter().all(|p| p.leader() >= 0 && p.error().is_none())
        })
    })
}

/// Waits (blocking) until the metadata lists `topic` with a leader for each partition.
fn wait_listed(admin: &AdminClient<Context>, topic: &str) -> Result<(), String> {
    let deadline = Instant::now() + TOPIC_LISTED;
    while !listed(admin, topic) {
        if Instant::now() >= deadline {
            return Err(format!("topic {topic} was created but the brokers did not list it within {TOPIC_LISTED:?}"));
        }
        // The next metadata request. A topic just created is usually listed within a few
        // milliseconds (a 50 ms pace made every start-up on a new topic wait ~50 ms more).
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Consumer settings for reading a topic through as fast as it comes: a full prefetch queue
/// postpones the next fetch by `fetch.queue.backoff.ms` (librdkafka: 1 s), far longer than
/// rowferry takes to drain it — with the default, `rowferry verify` read at a tenth of the speed.
pub fn fast_reads(config: &mut ClientConfig) {
    config.set("fetch.queue.backoff.ms", "5").set("max.partition.fetch.bytes", "4194304");
}

/// The consumer group named by rowferry's readers. They assign partitions themselves and never
/// join it or commit to it, but librdkafka assigns only with a `group.id` set — and then looks
/// up the group's coordinator in the background, which a cluster with ACLs refuses unless the
/// principal may Describe the group. That lookup concerns the group only; fetching the assigned
/// partitions goes on, so readers pass over its errors ([`group_only`]) and need no group grant.
pub const READER_GROUP: &str = "rowferry-reader";

/// Settings of a consumer that reads partitions it assigns itself (see [`READER_GROUP`]).
pub fn assigning(config: &ClientConfig) -> ClientConfig {
    let mut c = config.clone();
    c.set("group.id", READER_GROUP).set("enable.auto.commit", "false").set("enable.auto.offset.store", "false");
    c
}

/// Whether a consumer error concerns only the consumer group, not the assigned partitions (a
/// reader that never joins the group carries on).
pub fn group_only(error: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        error.rdkafka_error_code(),
        Some(GroupAuthorizationFailed | CoordinatorNotAvailable | NotCoordinator | CoordinatorLoadInProgress)
    )
}

/// The next record of a reader's poll, passing over group-only errors (see [`READER_GROUP`]).
pub fn next_record<'a>(
    polled: Option<KafkaResult<BorrowedMessage<'a>>>,
) -> Result<Option<BorrowedMessage<'a>>, KafkaError> {
    match polled {
        Some(Err(e)) if group_only(&e) => Ok(None),
        Some(other) => other.map(Some),
        None => Ok(None),
    }
}

/// Calls `each` for every committed record of partition 0 of `topic`, from the beginning up to
/// the end it had when called. Blocking: run it on a blocking thread.
///
/// Reads `read_committed`: records of an aborted or still open Kafka transaction are never
/// given (exactly-once delivery writes the offsets topic in transactions). Such a topic may end
/// in a transaction marker, an offset no record has, so the end is also the partition's EOF
/// (librdkafka signals it at the last stable offset).
pub fn read_to_end(
    config: &ClientConfig,
    topic: &str,
    limit: Duration,
    mut each: impl FnMut(&BorrowedMessage<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let mut c = assigning(config);
    fast_reads(&mut c);
    c.set("isolation.level", "read_committed").set("enable.partition.eof", "true");
    let consumer: BaseConsumer<Context> = create(&c).map_err(|e| e.to_string())?;
    let read = read_with(&consumer, topic, limit, &mut each);
    close_in_background(consumer);
    read
}

fn read_with(
    consumer: &BaseConsumer<Context>,
    topic: &str,
    limit: Duration,
    each: &mut impl FnMut(&BorrowedMessage<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    // A leader election (a broker restarted, leadership moved back) answers "not leader" for a
    // moment: asked again until the limit. A refusal (no permission) is final.
    let (low, high) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match consumer.fetch_watermarks(topic, 0, left.min(Duration::from_secs(5))) {
            Ok(marks) => break marks,
            Err(e) if refusal(&e).is_some() || left.is_zero() => return Err(format!("watermarks: {e}")),
            Err(e) => {
                tracing::debug!(topic, error = %e, "reading the topic's end again");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    if high <= low {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    loop {
        if Instant::now() > deadline {
            return Err(format!("did not reach offset {high} within {limit:?}"));
        }
        let polled = consumer.poll(Duration::from_millis(200));
        if let Some(Err(KafkaError::PartitionEOF(_))) = polled {
            return Ok(());
        }
        let Some(message) = next_record(polled).map_err(|e| e.to_string())? else {
            continue;
        };
        each(&message)?;
        if message.offset() + 1 >= high {
            return Ok(());
        }
    }
}

/// How long a producer looks up a new topic's leader ahead of its first record.
const LEADER_LOOKUP: Duration = Duration::from_secs(5);

/// Has `producer` fetch `topic`'s metadata now (on a blocking thread), so its first record finds
/// the leader: asked for only when that record is produced, librdkafka skips the request while no
/// connection of its own is up and waits for its next leader query (~40 ms on a new topic, with
/// everything behind that record waiting). Only a head start: on failure the first record asks
/// again, as it would have.
pub async fn look_up_leader<C, P>(producer: P, topic: &str)
where
    C: rdkafka::producer::ProducerContext + 'static,
    P: rdkafka::producer::Producer<C> + Send + 'static,
{
    let topic = topic.to_string();
    let looked_up =
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(Some(&topic), LEADER_LOOKUP)).await;
    if let Ok(Err(e)) = looked_up {
        tracing::debug!(error = %e, "a new topic's leader was not looked up ahead; its first record will");
    }
}

/// Drops a librdkafka client on a thread of its own: its destruction joins librdkafka's threads,
/// ~100 ms that nothing needs to wait for (a start-up would, once per client it is done with).
pub fn close_in_background<T: Send + 'static>(client: T) {
    let spawned = std::thread::Builder::new().name("rowferry-close".into()).spawn(move || drop(client));
    if let Err(e) = spawned {
        // No thread to spare: the client is dropped on this one, as it would have been.
        tracing::debug!(error = %e, "closing a Kafka client in place");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Managed Kafka services need TLS and SASL (PLAIN, SCRAM, OAUTHBEARER): librdkafka refuses
    /// these settings at client creation when built without OpenSSL.
    #[test]
    fn tls_and_sasl_scram_are_built_in() {
        for (protocol, mechanism) in [("SSL", None), ("SASL_SSL", Some("SCRAM-SHA-512")), ("SASL_SSL", Some("PLAIN"))] {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", "127.0.0.1:1").set("security.protocol", protocol);
            if let Some(m) = mechanism {
                c.set("sasl.mechanism", m).set("sasl.username", "u").set("sasl.password", "p");
            }
            let made: KafkaResult<rdkafka::producer::FutureProducer<Context>> = create(&c);
            assert!(made.is_ok(), "{protocol} {mechanism:?}: {:?}", made.err());
        }
    }

    #[test]
    fn a_repeated_message_is_logged_once_per_window() {
        let c = Context::default();
        assert_eq!(c.admit("a"), Some(0));
        assert_eq!(c.admit("a"), None);
        assert_eq!(c.admit("a"), None);
        assert_eq!(c.admit("b"), Some(0), "other messages are not held back");
        // Once the window has passed, the next one is logged with the count held back.
        if let Ok(mut seen) = c.seen.lock() {
            seen.get_mut("a").expect("seen").0 -= REPEAT_WINDOW;
        }
        assert_eq!(c.admit("a"), Some(2));
    }

    #[test]
    fn durations_do_not_make_messages_distinct() {
        assert_eq!(
            strip_counts("Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)"),
            strip_counts(
                "Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 3ms in state CONNECT, 1 identical)"
            )
        );
    }
}
