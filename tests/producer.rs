//! The data producer — rowferry's librdkafka settings on the librdkafka rowferry links
//! (third_party/rdkafka-sys) — against the test broker.

mod common;

use common::{KAFKA, env, unique};
use rdkafka::client::ClientContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The broker threads' poll-loop wake-ups and requests sent, from librdkafka's latest statistics,
/// and how many statistics reports came.
#[derive(Default)]
struct Stats(Mutex<(u64, u64, u64)>);

impl ClientContext for Stats {
    fn stats(&self, s: Statistics) {
        let (wakeups, requests) = s.brokers.values().fold((0, 0), |(w, r), b| (w + b.wakeups.unwrap_or(0), r + b.tx));
        let mut last = self.0.lock().expect("stats lock");
        *last = (wakeups, requests, last.2 + 1);
    }
}

impl ProducerContext for Stats {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            panic!("a record failed: {e}");
        }
    }
}

/// librdkafka 2.12 counts an idempotent partition's in-flight *messages* against its limit of
/// five in-flight *requests*, so while one batch is in flight the next cannot go; unpatched, a
/// batch that is ready meanwhile makes the broker thread poll with a zero timeout until the
/// response comes — ~700,000 wake-ups for 600,000 records, a core's worth of CPU. Patched, the
/// response wakes it: a few wake-ups per request.
#[tokio::test]
async fn a_batch_in_flight_does_not_spin_the_broker_thread() {
    let kafka = rowferry::config::KafkaSettings {
        bootstrap_servers: env(KAFKA),
        topic_prefix: "p".into(),
        librdkafka: [("statistics.interval.ms".to_string(), "100".to_string())].into(),
        delivery: Default::default(),
    };
    let topic = unique("producer_spin");
    let admin = std::sync::Arc::new(rowferry::kafka::create(&rowferry::kafka::client_config(&kafka)).expect("admin"));
    rowferry::kafka::create_topic(
        &admin,
        &topic,
        &rowferry::kafka::TopicSpec { partitions: 1, replication: -1, config: Vec::new() },
    )
    .await
    .expect("topic");
    let producer: ThreadedProducer<Stats> =
        rowferry::publisher::producer_config(&kafka, None).create_with_context(Stats::default()).expect("producer");

    // 40 MB of records that compress about as well as rowferry's: ~40 one-megabyte batches, each
    // one ready before the one ahead of it is acknowledged.
    let records = 100_000u64;
    let mut value = vec![0u8; 400];
    for n in 0..records {
        for (i, b) in value.iter_mut().enumerate().step_by(7) {
            *b = (n as usize * 31 + i) as u8;
        }
        let key = n.to_be_bytes();
        let mut record = BaseRecord::to(&topic).key(&key[..]).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => panic!("send: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    // Two reports after the flush, so the last one counts every request.
    let reports = producer.context().0.lock().expect("stats lock").2;
    let deadline = Instant::now() + Duration::from_secs(10);
    while producer.context().0.lock().expect("stats lock").2 < reports + 2 {
        assert!(Instant::now() < deadline, "no statistics from librdkafka");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (wakeups, requests, _) = *producer.context().0.lock().expect("stats lock");
    eprintln!("broker threads: {wakeups} wake-ups, {requests} requests");
    assert!(requests >= 10, "the records went in {requests} requests: too few to tell");
    assert!(
        wakeups < 50 * requests + 2_000,
        "librdkafka's broker threads woke {wakeups} times for {requests} requests: \
         is third_party/rdkafka-sys (its patch) what Cargo.toml builds?"
    );
}
