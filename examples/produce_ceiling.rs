//! Producer-only ceiling for scripts/bench: records sent with rowferry's own publisher (same
//! producer settings, same in-flight bounds) to a new topic, and timed until Kafka has
//! acknowledged every one. Prints `seconds records bytes` on one line.
//!
//! ```text
//! produce_ceiling sample BOOTSTRAP TOPIC COUNT FILE      # COUNT records of TOPIC, evenly spread, into FILE
//! produce_ceiling replay BOOTSTRAP TOPIC COUNT FILE      # COUNT records: FILE's, round and round
//! produce_ceiling BOOTSTRAP TOPIC COUNT KEY_BYTES VALUE_BYTES   # synthetic records of those sizes
//! ```
//!
//! `replay` is what scripts/bench measures: the records rowferry itself published in the run
//! being compared (a sample of them, taken from its topic), so the ceiling pays for the same
//! bytes — the same compression ratio in librdkafka, the same work in the broker. The synthetic
//! records (a repeating byte pattern) compress far better than real rows and flatter the ceiling.

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rowferry::committer::RecordId;
use rowferry::config::KafkaSettings;
use rowferry::kafka::TopicSpec;
use rowferry::publisher::{Publisher, RecordHeaders};
use std::io::{BufWriter, Read, Write};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;
/// A record's key and value (None: null).
type Record = (Option<Vec<u8>>, Option<Vec<u8>>);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["sample", bootstrap, topic, count, file] => sample(bootstrap, topic, count.parse()?, file),
        ["replay", bootstrap, topic, count, file] => {
            produce(bootstrap, topic, count.parse()?, read_sample(file)?).await
        }
        [bootstrap, topic, count, key_bytes, value_bytes] => {
            let (key_bytes, value_bytes): (usize, usize) = (key_bytes.parse()?, value_bytes.parse()?);
            // Values vary a little from record to record.
            let mut value: Vec<u8> = (0..value_bytes).map(|i| (i * 31 % 251) as u8).collect();
            let records = (0..1u64 << 16)
                .map(|n| {
                    if let Some(b) = value.get_mut((n as usize) % value_bytes.max(1)) {
                        *b = b.wrapping_add(1);
                    }
                    (Some(n.to_be_bytes()[..key_bytes.min(8)].to_vec()), Some(value.clone()))
                })
                .collect();
            produce(bootstrap, topic, count.parse()?, records).await
        }
        _ => Err("usage: produce_ceiling [sample|replay] BOOTSTRAP TOPIC COUNT FILE \
                  | produce_ceiling BOOTSTRAP TOPIC COUNT KEY_BYTES VALUE_BYTES"
            .into()),
    }
}

/// Produces `count` records, `records` round and round, and waits for every acknowledgement.
async fn produce(bootstrap: &str, topic: &str, count: u64, records: Vec<Record>) -> Result<(), Error> {
    let kafka = KafkaSettings {
        bootstrap_servers: bootstrap.to_owned(),
        topic_prefix: "ceiling".into(),
        // rowferry's own overrides from the environment (ROWFERRY__KAFKA__LIBRDKAFKA__LINGER.MS=…),
        // so a bench run that changes a producer setting changes it for the ceiling too.
        librdkafka: std::env::vars()
            .filter_map(|(k, v)| {
                Some((k.strip_prefix("ROWFERRY__KAFKA__LIBRDKAFKA__")?.to_lowercase().replace('_', "."), v))
            })
            .collect(),
        delivery: Default::default(),
    };
    let spec = TopicSpec { partitions: 1, replication: -1, config: Vec::new() };
    // The bounds `rowferry run` uses.
    let mut publisher = Publisher::new(&kafka, spec, 50_000, 64 << 20)?;
    publisher.ensure_topic(topic).await?;
    let mut acks = Vec::new();
    // The Kafka timestamp given as rowferry gives it (its batch's time), refreshed every 1,000
    // records, so librdkafka reads no clock per record here either.
    let mut headers =
        RecordHeaders { gtid: "0-1-1000000", position: 1, table: "sbtest.sbtest1", commit_us: 0, timestamp_ms: 0 };
    let (mut sent_bytes, started) = (0u64, Instant::now());
    for n in 0..count {
        while !publisher.has_capacity() {
            publisher.next_acks(&mut acks).await;
            failures(&mut acks)?;
        }
        if n % 1000 == 0 {
            headers.timestamp_ms = rowferry::clock::now_ms() as i64;
        }
        let (key, value) = &records[n as usize % records.len()];
        sent_bytes += (key.as_ref().map_or(0, Vec::len) + value.as_ref().map_or(0, Vec::len)) as u64;
        publisher.send(RecordId { txn: 0 }, topic, key.as_deref(), value.as_deref(), &headers, &mut acks).await?;
        failures(&mut acks)?;
    }
    while publisher.inflight() > 0 {
        publisher.next_acks(&mut acks).await;
        failures(&mut acks)?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{secs:.3} {count} {sent_bytes}");
    Ok(())
}

/// Writes `count` records of `topic` spread evenly over it (every n-th record of its first
/// partition, n = its length / count; all of it if shorter) to `file`: per record the key and the
/// value, each a u32 length (u32::MAX: null, as a tombstone's value) and the bytes. Read with
/// rowferry's own `kafka::read_to_end`.
fn sample(bootstrap: &str, topic: &str, count: u64, file: &str) -> Result<(), Error> {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    let watermarks: BaseConsumer = rowferry::kafka::assigning(&config).create()?;
    let (low, high) = watermarks.fetch_watermarks(topic, 0, Duration::from_secs(10))?;
    let step = ((high - low).max(0) as u64 / count.max(1)).max(1);
    let mut out = BufWriter::new(std::fs::File::create(file)?);
    let (mut read, mut taken) = (0u64, 0u64);
    rowferry::kafka::read_to_end(&config, topic, Duration::from_secs(300), |m| {
        read += 1;
        if (read - 1) % step != 0 || taken == count {
            return Ok(());
        }
        taken += 1;
        write_record(&mut out, m.key(), m.payload()).map_err(|e| e.to_string())
    })?;
    out.flush()?;
    println!("{taken}");
    Ok(())
}

fn write_record(out: &mut impl Write, key: Option<&[u8]>, value: Option<&[u8]>) -> std::io::Result<()> {
    for part in [key, value] {
        match part {
            Some(bytes) => {
                let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("a record over 4 GiB"))?;
                out.write_all(&len.to_le_bytes())?;
                out.write_all(bytes)?;
            }
            None => out.write_all(&u32::MAX.to_le_bytes())?,
        }
    }
    Ok(())
}

fn read_sample(file: &str) -> Result<Vec<Record>, Error> {
    let mut bytes = Vec::new();
    std::fs::File::open(file)?.read_to_end(&mut bytes)?;
    let mut rest = &bytes[..];
    let mut records = Vec::new();
    while !rest.is_empty() {
        records.push((take(&mut rest)?, take(&mut rest)?));
    }
    if records.is_empty() {
        return Err(format!("{file}: no records").into());
    }
    Ok(records)
}

/// One length-prefixed part of a sample file (None: null).
fn take(rest: &mut &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let (len, tail) = rest.split_first_chunk::<4>().ok_or("truncated sample")?;
    let len = u32::from_le_bytes(*len);
    if len == u32::MAX {
        *rest = tail;
        return Ok(None);
    }
    let part = tail.get(..len as usize).ok_or("truncated sample")?.to_vec();
    *rest = &tail[len as usize..];
    Ok(Some(part))
}

fn failures(acks: &mut Vec<(RecordId, Result<(), String>)>) -> Result<(), Error> {
    for (_, result) in acks.drain(..) {
        result?;
    }
    Ok(())
}
