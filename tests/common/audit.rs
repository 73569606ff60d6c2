//! The commit rule, audited from outside: while a connector runs, a thread samples its stored
//! offset and then the data topic's high watermark, over and over. The offset is stored only after
//! Kafka acknowledged the records it covers, so every transaction a sample's offset covers must
//! have a copy in the topic below the watermark read right after it. [`Audit::check`] holds the
//! samples against the records finally read from the topic: a transaction covered by an offset
//! while none of its records was in the topic yet means an offset ran ahead of an acked record.
//! It works the same for both offset stores and through broker faults (a sample that cannot be
//! read is skipped).
#![allow(dead_code)]

use super::connector::Connector;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One observation: the stored GTID set, then the topic's high watermark (partition 0).
pub type Sample = (String, i64);

#[derive(Debug)]
pub struct Audit {
    stop: Arc<AtomicBool>,
    taken: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<Vec<Sample>>>,
}

/// Whether the single GTID `gtid` is in the stored set `stored` (either flavor).
pub fn contains(stored: &str, gtid: &str) -> bool {
    use rowferry::position::{MariaDbPosition, MySqlGtidSet};
    if let (Ok(s), Ok(g)) = (MySqlGtidSet::parse(stored), MySqlGtidSet::parse(gtid)) {
        return g.is_subset(&s);
    }
    match (MariaDbPosition::parse(stored), MariaDbPosition::parse(gtid)) {
        (Ok(s), Ok(g)) => g.is_subset(&s),
        _ => panic!("unparsable positions {stored:?} / {gtid:?}"),
    }
}

/// The high watermark of partition 0 of `topic`: 0 while the topic does not exist, `None` when
/// the cluster does not answer now.
pub fn high_watermark(bootstrap: &str, topic: &str) -> Option<i64> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let consumer: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("consumer");
    let exists = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(3))
        .ok()?
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none());
    if !exists {
        return Some(0);
    }
    match consumer.fetch_watermarks(topic, 0, Duration::from_secs(3)) {
        Ok((_, high)) => Some(high),
        Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownPartition)) => Some(0),
        Err(_) => None,
    }
}

impl Audit {
    /// Starts sampling `connector`'s stored offset and `topic`.
    pub fn start(connector: &Connector, topic: &str) -> Audit {
        let stop = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicUsize::new(0));
        // The connector's reading side only: a config to read the store, the topic's cluster.
        let (reader, topic, kafka, stopping, count) = (
            connector.offset_reader(),
            topic.to_string(),
            connector.observer().to_string(),
            Arc::clone(&stop),
            Arc::clone(&taken),
        );
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                if let Some(stored) = reader.stored_set()
                    && let Some(high) = high_watermark(&kafka, &topic)
                {
                    samples.push((stored, high));
                    count.fetch_add(1, Ordering::Relaxed);
                }
                // Sampling pace, not synchronisation: each sample stands on its own.
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        });
        Audit { stop, taken, thread: Some(thread) }
    }

    /// Waits (a minute at most) until `n` samples were taken. How many a run gets depends on how
    /// long its phases last (a sample is skipped while the cluster does not answer), so a test
    /// that requires a number awaits it before it stops the connector.
    pub async fn until_samples(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.taken.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "the auditor took only {} of {n} samples in a minute",
                self.taken.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops sampling; returns the samples.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map(|t| t.join().expect("audit thread")).unwrap_or_default()
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Fails the test if a sample's offset covers a transaction none of whose records (`(gtid,
/// offset)` of everything finally in the topic) was below the watermark sampled after it.
/// Returns how many samples were checked.
pub fn check(samples: &[Sample], records: &[(String, i64)]) -> usize {
    // The first copy of each transaction, sorted by offset.
    let mut first: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for (gtid, offset) in records {
        let at = first.entry(gtid.as_str()).or_insert(*offset);
        *at = (*at).min(*offset);
    }
    let mut by_offset: Vec<(i64, &str)> = first.into_iter().map(|(g, o)| (o, g)).collect();
    by_offset.sort_unstable();
    for (stored, high) in samples {
        // Only transactions whose first copy was at or past the watermark can break the rule.
        let later = by_offset.partition_point(|(o, _)| *o < *high);
        for (offset, gtid) in &by_offset[later..] {
            assert!(
                !contains(stored, gtid),
                "the stored offset {stored} covered {gtid} while the topic ended at {high} (its first record is at \
                 {offset}): an offset ran ahead of an acknowledged record"
            );
        }
    }
    samples.len()
}
