//! Producer-only ceiling for scripts/bench: COUNT records of KEY and VALUE bytes sent with
//! rowferry's own publisher (same producer settings, same in-flight bounds) to a new topic, and
//! timed until Kafka has acknowledged every one. Prints `seconds records bytes` on one line.
//!
//! ```text
//! cargo run --release --example produce_ceiling -- BOOTSTRAP TOPIC COUNT KEY_BYTES VALUE_BYTES
//! ```

use rowferry::committer::RecordId;
use rowferry::config::KafkaSettings;
use rowferry::kafka::TopicSpec;
use rowferry::publisher::{Publisher, RecordHeaders};
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, count, key_bytes, value_bytes] = args.as_slice() else {
        return Err("usage: produce_ceiling BOOTSTRAP TOPIC COUNT KEY_BYTES VALUE_BYTES".into());
    };
    let (count, key_bytes, value_bytes): (u64, usize, usize) =
        (count.parse()?, key_bytes.parse()?, value_bytes.parse()?);
    let kafka = KafkaSettings {
        bootstrap_servers: bootstrap.clone(),
        topic_prefix: "ceiling".into(),
        librdkafka: Default::default(),
        delivery: Default::default(),
    };
    let spec = TopicSpec { partitions: 1, replication: -1, config: Vec::new() };
    // The bounds `rowferry run` uses.
    let mut publisher = Publisher::new(&kafka, spec, 50_000, 64 << 20)?;
    publisher.ensure_topic(topic).await?;
    // Values vary a little, like rows, so compression does not flatter the ceiling.
    let mut value: Vec<u8> = (0..value_bytes).map(|i| (i * 31 % 251) as u8).collect();
    let mut acks = Vec::new();
    let headers = RecordHeaders { gtid: "0-1-1000000", position: 1, table: "sbtest.sbtest1", commit_us: 0 };
    let started = Instant::now();
    for n in 0..count {
        while !publisher.has_capacity() {
            publisher.next_acks(&mut acks).await;
            failures(&mut acks)?;
        }
        let key = n.to_be_bytes();
        if let Some(b) = value.get_mut((n as usize) % value_bytes.max(1)) {
            *b = b.wrapping_add(1);
        }
        publisher
            .send(RecordId { txn: 0 }, topic, Some(&key[..key_bytes.min(8)]), Some(&value), &headers, &mut acks)
            .await?;
        failures(&mut acks)?;
    }
    while publisher.inflight() > 0 {
        publisher.next_acks(&mut acks).await;
        failures(&mut acks)?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{secs:.3} {count} {}", count * (key_bytes.min(8) + value_bytes) as u64);
    Ok(())
}

fn failures(acks: &mut Vec<(RecordId, Result<(), String>)>) -> Result<(), Box<dyn std::error::Error>> {
    for (_, result) in acks.drain(..) {
        result?;
    }
    Ok(())
}
