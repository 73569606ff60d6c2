//! Apache Kafka brokers of a test's own, through `scripts/kafka` (the same jars and settings as
//! the shared broker): a single combined node, a 3-broker cluster, or a node with SASL/SCRAM and
//! ACLs; kill -9 and restart of one node. Stopped and removed when dropped.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};

/// The node id `scripts/kafka` gives the cluster's controller.
pub const CONTROLLER: i32 = 9;

#[derive(Debug)]
pub struct Kafka {
    name: String,
    /// Bootstrap servers for clients.
    pub bootstrap: String,
    /// First port of the block the nodes listen on.
    pub port: u16,
}

fn script(args: &[&str]) -> String {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka"))
        .args(args)
        // The script stops the broker once this test process is gone, however it ends.
        .env("ROWFERRY_KAFKA_OWNER", std::process::id().to_string())
        .output()
        .unwrap_or_else(|e| panic!("scripts/kafka {args:?}: {e}"));
    assert!(
        out.status.success(),
        "scripts/kafka {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `n` consecutive free ports below the kernel's ephemeral range (so no client socket of another
/// test takes one between this check and the broker's bind).
pub fn port_block(n: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let spread = (std::process::id() % 500) as u16 * 16;
    loop {
        let base = 20_000 + (spread + NEXT.fetch_add(n + 1, Ordering::Relaxed)) % 12_000;
        if (base..base + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}

impl Kafka {
    /// One combined broker+controller node.
    pub fn single(name: &str) -> Kafka {
        let port = port_block(2);
        let bootstrap = script(&["start", name, &port.to_string()]);
        Kafka { name: name.to_string(), bootstrap, port }
    }

    /// One node whose client listener is SASL_PLAINTEXT (SCRAM-SHA-512) with ACLs enforced; the
    /// operator's listener (anonymous, super user) is [`Kafka::operator`].
    pub fn with_sasl(name: &str) -> Kafka {
        let port = port_block(3);
        let bootstrap = script(&["start", name, &port.to_string(), "--sasl"]);
        Kafka { name: name.to_string(), bootstrap, port }
    }

    /// The super-user PLAINTEXT listener of a [`Kafka::with_sasl`] node.
    pub fn operator(&self) -> String {
        format!("127.0.0.1:{}", self.port + 2)
    }

    /// Three brokers (node ids 1–3) and a controller ([`CONTROLLER`]); replication factor 3,
    /// `min.insync.replicas` 2.
    pub fn cluster(name: &str) -> Kafka {
        let port = port_block(4);
        let bootstrap = script(&["start-cluster", name, &port.to_string()]);
        Kafka { name: name.to_string(), bootstrap, port }
    }

    /// kill -9 of node `node`.
    pub fn kill(&self, node: i32) {
        script(&["kill", &self.name, &node.to_string()]);
    }

    /// Starts node `node` again on its data; returns once it is back in the cluster.
    pub fn start_node(&self, node: i32) {
        script(&["start-node", &self.name, &node.to_string()]);
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka")).args(["stop", &self.name]).status();
    }
}

/// How many records `topic` (every partition) holds for a consumer with `isolation`
/// (`read_committed` or `read_uncommitted`), read to each partition's end (its EOF).
pub fn count_records(bootstrap: &str, topic: &str, isolation: &str) -> usize {
    let mut count = 0;
    read_to_end(bootstrap, topic, isolation, |_| count += 1);
    count
}

/// Reads every record of `topic` (every partition, from the beginning) with `isolation` up to
/// each partition's end (its EOF), handing each to `each`.
pub fn read_to_end(
    bootstrap: &str,
    topic: &str,
    isolation: &str,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use std::time::{Duration, Instant};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rowferry-read-to-end")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut ended = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended.len() < partitions.len() {
        assert!(Instant::now() < deadline, "{topic} not read to its end");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => each(&m),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
}
