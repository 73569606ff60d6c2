//! Publisher stage: an idempotent rdkafka producer (`acks=all`, `enable.idempotence=true`,
//! lz4 by default, Java-compatible murmur2 partitioning of keys) with a bounded number of records
//! in flight. Records are enqueued in stream order (so one key's records keep their order on its
//! partition); a full local queue is waited out, never dropped; each delivery report comes back as
//! an ack or a failure for the committer.
//!
//! With `kafka.delivery = "exactly_once"` the producer is transactional (`transactional.id`
//! `rowferry-<name>`): [`Publisher::init_transactions`] fences any older instance of the
//! connector and aborts its open transaction; records are sent inside a Kafka transaction begun
//! with the first of them, and [`Publisher::commit_transaction`] makes them visible to
//! `read_committed` consumers at once, with the offset record [`Publisher::send_offset`] added.
//! A delivery report then means "written, not yet visible"; only the commit makes it so.
//!
//! Delivery reports arrive on librdkafka's polling thread ([`ThreadedProducer`]), which queues
//! them and wakes the pipeline once per batch, not once per record: one future and one
//! cross-thread wake per record cost more CPU than encoding it.

use crate::committer::RecordId;
use crate::config::KafkaSettings;
use crate::error::ErrorClass;
use crate::histogram::Histogram;
use crate::kafka::transaction::TransactionError;
use crate::kafka::{Context, TopicSpec};
use rdkafka::admin::AdminClient;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod transaction;

/// Publishing failures.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("topic {topic}: {detail}")]
    Topic { topic: String, detail: String },
    /// One record is larger than the producer may send (`message.max.bytes`): its table stops.
    /// Another instance with this connector's name initialised the same transactional id.
    #[error(
        "fenced: another rowferry with the connector name took over this one's Kafka transactions ({detail}); \
         this instance stops and nothing it wrote since is visible to read_committed consumers. Run one instance \
         per connector name (the Helm chart's StatefulSet runs one pod)"
    )]
    Fenced { detail: String },
    /// A transactional call failed: initialising, beginning, or committing (then the transaction
    /// was aborted: none of its records is visible).
    #[error("Kafka transaction: {detail}")]
    Transaction { detail: String },
    #[error(
        "a record for topic {topic} is {size} bytes, over the producer's message.max.bytes ({limit}); fixes: raise \
         kafka.librdkafka.\"message.max.bytes\" and the topic's max.message.bytes (topics.config) above it, or cut \
         the large column (columns.truncate) or leave it out (columns.exclude)"
    )]
    TooLarge { topic: String, size: usize, limit: usize },
}

impl PublishError {
    pub fn class(&self) -> ErrorClass {
        match self {
            PublishError::TooLarge { .. } => ErrorClass::PerTable,
            _ => ErrorClass::Fatal,
        }
    }
}

/// Per-record metadata carried as Kafka headers.
#[derive(Debug, Clone)]
pub struct RecordHeaders<'a> {
    pub gtid: &'a str,
    /// 1-based position of the record in its transaction.
    pub position: u64,
    pub table: &'a str,
    /// Source commit time of the transaction, µs since the epoch (0: unknown); not a header, it
    /// feeds the commit → ack latency histogram.
    pub commit_us: u64,
    /// The record's Kafka timestamp (CreateTime), ms since the epoch; 0: librdkafka's clock when it
    /// takes the record. rowferry gives the time its batch was routed — the envelope's `ts_ms` —
    /// which spares librdkafka a clock read per record.
    pub timestamp_ms: i64,
}

/// One delivery report: the record's slot in [`Slots`] and the outcome.
type Report = (usize, Result<(), String>);

/// What travels with a record through librdkafka: its slot in [`Slots`] (a number, so nothing is
/// allocated per record here and freed on librdkafka's thread).
type Opaque = usize;

/// The opaque of the offset record of a Kafka transaction: not a record of the tracker (its
/// delivery is the transaction's commit).
const OFFSET_SLOT: Opaque = usize::MAX;

/// The records in flight: id, key + value bytes, source commit time (µs, 0 when unknown), by slot.
/// Slots are reused; there are as many as records were ever in flight at once. Freed slots are
/// reused first in, first out: reports come in the order records were sent, so sends and reports
/// walk the slots in order (the cache's prefetcher follows) instead of jumping around a table of
/// up to 50,000 (a cache miss per record on each side, with a stack of free slots).
#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Option<(RecordId, usize, u64)>>,
    free: VecDeque<usize>,
}

impl Slots {
    fn insert(&mut self, record: (RecordId, usize, u64)) -> usize {
        match self.free.pop_front() {
            Some(slot) => {
                self.slots[slot] = Some(record);
                slot
            }
            None => {
                self.slots.push(Some(record));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, slot: usize) -> Option<(RecordId, usize, u64)> {
        let record = self.slots.get_mut(slot)?.take()?;
        self.free.push_back(slot);
        Some(record)
    }
}

/// The producer's context: rowferry's logging, plus delivery reports queued for the pipeline.
struct Acks {
    log: Context,
    /// Source commit → acknowledgement (when the pipeline takes the report: one clock read per
    /// batch of reports, not per report), observed as reports are taken.
    latency: Arc<Histogram>,
    queue: Mutex<VecDeque<Report>>,
    /// How many reports `queue` holds, read without its lock: the pipeline looks for reports
    /// after every event, and most of the time there are none.
    queued: AtomicUsize,
    ready: tokio::sync::Notify,
}

impl ClientContext for Acks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = Opaque;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: Self::DeliveryOpaque) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| crate::kafka::produce_failure(e));
        if let Ok(mut queue) = self.queue.lock() {
            queue.push_back((slot, outcome));
            self.queued.fetch_add(1, Ordering::Release);
        }
        self.ready.notify_one();
    }
}

/// See the module docs.
pub struct Publisher {
    producer: ThreadedProducer<Acks>,
    /// Exactly-once: the producer's transactional id (`None`: not transactional), and whether a
    /// Kafka transaction is open.
    transactional_id: Option<String>,
    in_transaction: bool,
    /// How long a transactional call (init, commit, abort) may take.
    transaction_timeout: Duration,
    /// A commit running on a blocking thread. Kept here, not only in the future that awaits it:
    /// that future may be dropped (a signal interrupts the loop) while librdkafka goes on
    /// committing, and the next transactional call must first learn how it ended.
    committing: Option<tokio::task::JoinHandle<Result<(), TransactionError>>>,
    acks: Arc<Acks>,
    /// The records in flight, by the slot their delivery report names.
    slots: Slots,
    admin: Arc<AdminClient<Context>>,
    /// Topics known to exist, and how to create the others.
    topics: HashSet<String>,
    /// The topic [`Publisher::ensure_topic`] last found (one of `topics`).
    last_topic: Option<String>,
    spec: TopicSpec,
    /// Records sent and not yet reported.
    inflight: usize,
    /// Key + value bytes of the records Kafka acknowledged so far.
    acked_bytes: u64,
    max_inflight: usize,
    /// Key + value bytes of the records in flight, and their bound.
    inflight_bytes: usize,
    max_inflight_bytes: usize,
    /// librdkafka's `message.max.bytes`: a larger record is refused before it is sent.
    max_message_bytes: usize,
    /// Records carry the `rowferry.*` headers (`topics.headers`).
    headers: bool,
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("inflight", &self.inflight).finish()
    }
}

/// The data producer's librdkafka settings: the pass-through, rowferry's defaults where it is
/// silent, and what the commit rule depends on whatever it says.
pub fn producer_config(kafka: &KafkaSettings, transactional_id: Option<&str>) -> rdkafka::ClientConfig {
    let mut config = crate::kafka::client_config(kafka);
    if let Some(id) = transactional_id {
        config.set("transactional.id", id);
    }
    // Defaults the pass-through may change...
    for (key, value) in [("compression.type", "lz4"), ("partitioner", "murmur2_random"), ("linger.ms", "5")] {
        if !kafka.librdkafka.contains_key(key) {
            config.set(key, value);
        }
    }
    // ...but never what the commit rule depends on (config validation rejects them too).
    config.set("enable.idempotence", "true").set("acks", "all");
    config
}

impl Publisher {
    /// `max_inflight` records and `max_inflight_bytes` bytes at most may await their delivery report.
    pub fn new(
        kafka: &KafkaSettings,
        topics: TopicSpec,
        max_inflight: usize,
        max_inflight_bytes: usize,
    ) -> Result<Publisher, PublishError> {
        Publisher::with_transactional_id(kafka, topics, max_inflight, max_inflight_bytes, None)
    }

    /// [`Publisher::new`], transactional when `transactional_id` is given (exactly-once; call
    /// [`Publisher::init_transactions`] before anything else).
    pub fn with_transactional_id(
        kafka: &KafkaSettings,
        topics: TopicSpec,
        max_inflight: usize,
        max_inflight_bytes: usize,
        transactional_id: Option<&str>,
    ) -> Result<Publisher, PublishError> {
        let config = producer_config(kafka, transactional_id);
        let context = Acks {
            log: Context::default(),
            latency: Arc::default(),
            queue: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
            ready: Default::default(),
        };
        let producer: ThreadedProducer<Acks> =
            config.create_with_context(context).map_err(|e: KafkaError| PublishError::Kafka(e.to_string()))?;
        let acks = Arc::clone(producer.context());
        let admin =
            crate::kafka::create(&config).map(Arc::new).map_err(|e: KafkaError| PublishError::Kafka(e.to_string()))?;
        let max_message_bytes =
            kafka.librdkafka.get("message.max.bytes").and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        Ok(Publisher {
            producer,
            transactional_id: transactional_id.map(String::from),
            in_transaction: false,
            transaction_timeout: kafka.transaction_timeout(),
            committing: None,
            acks,
            admin,
            topics: HashSet::new(),
            last_topic: None,
            spec: topics,
            inflight: 0,
            acked_bytes: 0,
            max_inflight,
            inflight_bytes: 0,
            max_inflight_bytes,
            max_message_bytes,
            headers: false,
            slots: Slots::default(),
        })
    }

    /// Records carry the `rowferry.gtid`, `rowferry.position` and `rowferry.table` headers
    /// (`topics.headers`; off by default: librdkafka allocates a header list and each header per
    /// record, and the envelope's `source` block says the same).
    pub fn with_headers(mut self, on: bool) -> Self {
        self.headers = on;
        self
    }

    /// Creates `topic` the first time it is seen, if the cluster does not have it, as the data
    /// topics' spec says.
    pub async fn ensure_topic(&mut self, topic: &str) -> Result<(), PublishError> {
        // Runs for every record: the previous record's topic is compared before hashing the name.
        if self.last_topic.as_deref() == Some(topic) {
            return Ok(());
        }
        if !self.topics.contains(topic) {
            let spec = self.spec.clone();
            self.ensure_topic_as(topic, &spec).await?;
        }
        match &mut self.last_topic {
            Some(last) => {
                last.clear();
                last.push_str(topic);
            }
            None => self.last_topic = Some(topic.to_string()),
        }
        Ok(())
    }

    /// Like [`Publisher::ensure_topic`], with another layout.
    pub async fn ensure_topic_as(&mut self, topic: &str, spec: &TopicSpec) -> Result<(), PublishError> {
        if self.topics.contains(topic) {
            return Ok(());
        }
        crate::kafka::create_topic(&self.admin, topic, spec)
            .await
            .map_err(|detail| PublishError::Topic { topic: topic.into(), detail })?;
        crate::kafka::look_up_leader(self.producer.clone(), topic).await;
        self.topics.insert(topic.to_string());
        Ok(())
    }

    pub fn inflight(&self) -> usize {
        self.inflight
    }

    /// The source-commit → acknowledgement histogram of the records this publisher sent.
    pub fn latency(&self) -> Arc<Histogram> {
        Arc::clone(&self.acks.latency)
    }

    /// Key + value bytes of the records Kafka acknowledged so far.
    pub fn acked_bytes(&self) -> u64 {
        self.acked_bytes
    }

    /// Key + value bytes of the records in flight.
    pub fn inflight_bytes(&self) -> usize {
        self.inflight_bytes
    }

    pub fn has_capacity(&self) -> bool {
        self.inflight < self.max_inflight && self.inflight_bytes < self.max_inflight_bytes
    }

    /// Enqueues a record (a tombstone when `value` is `None`). Waits while librdkafka's queue is
    /// full, collecting delivery reports meanwhile into `acks`.
    /// Refuses a record librdkafka would refuse for its size (`message.max.bytes` counts key,
    /// value and headers): checked before the record is registered anywhere, so its table can
    /// stop alone. The headers are counted generously (their framing is a few bytes each).
    pub fn check_size(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &RecordHeaders<'_>,
    ) -> Result<(), PublishError> {
        const HEADER_FRAMING: usize = 3 * 16 + 20;
        let header_bytes = if self.headers {
            "rowferry.gtidrowferry.positionrowferry.table".len()
                + headers.gtid.len()
                + headers.table.len()
                + HEADER_FRAMING
        } else {
            0
        };
        let size = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len) + header_bytes;
        if size > self.max_message_bytes {
            return Err(PublishError::TooLarge { topic: topic.to_string(), size, limit: self.max_message_bytes });
        }
        Ok(())
    }

    pub async fn send(
        &mut self,
        id: RecordId,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &RecordHeaders<'_>,
        acks: &mut Vec<(RecordId, Result<(), String>)>,
    ) -> Result<(), PublishError> {
        if self.transactional_id.is_some() {
            self.begin_if_needed().await?;
        }
        let size = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        let slot = self.slots.insert((id, size, headers.commit_us));
        let mut record: BaseRecord<'_, [u8], [u8], Opaque> = BaseRecord::with_opaque_to(topic, slot);
        if self.headers {
            let mut digits = [0u8; 20];
            let position = decimal(headers.position, &mut digits);
            let owned = OwnedHeaders::new_with_capacity(3)
                .insert(Header { key: "rowferry.gtid", value: Some(headers.gtid) })
                .insert(Header { key: "rowferry.position", value: Some(position) })
                .insert(Header { key: "rowferry.table", value: Some(headers.table) });
            record = record.headers(owned);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        if headers.timestamp_ms > 0 {
            record = record.timestamp(headers.timestamp_ms);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.inflight_bytes += size;
                    self.inflight += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    // Wait for deliveries to free space (collecting their reports meanwhile).
                    let _ = tokio::time::timeout(Duration::from_millis(100), self.acks.ready.notified()).await;
                    self.take_acks(acks);
                }
                Err((e, _)) => {
                    self.slots.remove(slot);
                    if let Some(detail) = self.fenced() {
                        return Err(PublishError::Fenced { detail });
                    }
                    return Err(PublishError::Kafka(e.to_string()));
                }
            }
        }
    }

    /// Moves every delivery report received so far into `out`.
    pub fn take_acks(&mut self, out: &mut Vec<(RecordId, Result<(), String>)>) {
        if self.acks.queued.load(Ordering::Acquire) == 0 {
            return;
        }
        let Ok(mut queue) = self.acks.queue.lock() else { return };
        self.acks.queued.fetch_sub(queue.len(), Ordering::Release);
        // When the reports were taken, for the commit → ack latency.
        let at_us = crate::clock::now_us();
        for (slot, result) in queue.drain(..) {
            if slot == OFFSET_SLOT {
                // Not a record of the tracker: the commit reports its fate.
                continue;
            }
            let Some((id, size, commit_us)) = self.slots.remove(slot) else {
                tracing::error!(slot, "a delivery report for no record in flight");
                continue;
            };
            if result.is_ok() && commit_us > 0 {
                self.acks.latency.observe(at_us as i64 - commit_us as i64);
            }
            self.inflight -= 1;
            self.inflight_bytes -= size;
            if result.is_ok() {
                self.acked_bytes += size as u64;
            }
            out.push((id, result));
        }
    }

    /// Waits until delivery reports are available (returns at once when some are queued).
    pub async fn acks_ready(&self) {
        let notified = self.acks.ready.notified();
        if self.acks.queued.load(Ordering::Acquire) > 0 {
            return;
        }
        notified.await;
    }

    /// The next delivery reports (at least one), or none when nothing is in flight.
    pub async fn next_acks(&mut self, out: &mut Vec<(RecordId, Result<(), String>)>) {
        while self.inflight > 0 && out.is_empty() {
            self.acks_ready().await;
            self.take_acks(out);
        }
    }
}

/// `n` in decimal, written into `buf` (no allocation).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    #[test]
    fn slots_are_reused_and_read_once() {
        use crate::committer::RecordId;
        let mut slots = super::Slots::default();
        let (a, b) = (slots.insert((RecordId { txn: 1 }, 10, 0)), slots.insert((RecordId { txn: 2 }, 20, 5)));
        assert_ne!(a, b);
        assert_eq!(slots.remove(a), Some((RecordId { txn: 1 }, 10, 0)));
        assert_eq!(slots.remove(a), None, "a report is read once");
        assert_eq!(slots.insert((RecordId { txn: 3 }, 30, 0)), a, "a freed slot is reused");
        assert_eq!(slots.remove(b), Some((RecordId { txn: 2 }, 20, 5)));
        assert_eq!(slots.remove(99), None);
    }

    #[test]
    fn freed_slots_are_reused_in_the_order_freed() {
        use crate::committer::RecordId;
        let mut slots = super::Slots::default();
        let taken: Vec<usize> = (0..4).map(|n| slots.insert((RecordId { txn: n }, 1, 0))).collect();
        for &slot in &taken {
            slots.remove(slot);
        }
        let again: Vec<usize> = (0..4).map(|n| slots.insert((RecordId { txn: n }, 1, 0))).collect();
        assert_eq!(again, taken, "reports come in send order: the slots are walked in order again");
    }

    #[test]
    fn decimal_digits() {
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 12345, u64::MAX] {
            assert_eq!(super::decimal(n, &mut buf), n.to_string());
        }
    }
}
