//! Crash safety of `rowferry run`: under continuous writes, `kill -9` it three times at moments
//! set by a timer and restart it each time. At the end the latest record per key in Kafka equals
//! the table (nothing lost), and every transaction that appears twice was, at the kill before its
//! second appearance, not yet in the stored offset (duplicates only from the uncommitted tail).
//! An auditor samples the stored offset against the topic all along (no offset ahead of an acked
//! record). Run with both offset stores.
//!
//! Records wait 300 ms in the producer before they are sent (`linger.ms`) and the offset is
//! stored every 50 ms, so a committer that stored a position before Kafka acknowledged it would
//! have its position cover records that die with the process at the next kill.
//!
//! A kill's boundary (where the next run's records start) is read once the broker has closed
//! every link of the killed process (`common::kill`): read earlier, a produce request still in
//! the broker's buffer could land after it and look like a duplicate with no kill in between.

mod common;

use common::audit::{self, Audit, contains};
use common::connector::{Connector, Store, consume, covers, offset_reaches, stop};
use common::{MARIADB, MYSQL, admin, env, position_now, unique};
use mysql_async::prelude::Queryable;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const KEYS: i64 = 20;
const KILLS: usize = 3;

async fn kill_nine_loses_nothing(server: &str, store: Store) {
    let url = env(server);
    let db = unique("crash");
    let mut seed = vec![format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")];
    seed.extend((1..=KEYS).map(|k| format!("INSERT INTO {db}.t VALUES ({k}, 0)")));
    admin(&url, &seed).await;
    let topic = format!("{db}.{db}.t");
    let connector = Connector::new(&url, &db)
        .with_store(store)
        .with_offset_interval(50)
        .with_extra("[kafka.librdkafka]\n\"linger.ms\" = \"300\"\n");
    let mut child = connector.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &start)).await;
    let audit = Audit::start(&connector, &topic);

    // Continuous writes: every key updated each round, some inserts and deletes, until told to stop.
    let stop_writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (url, db, stop_writing) = (url.clone(), db.clone(), stop_writing.clone());
        tokio::spawn(async move {
            let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("writer");
            let mut round = 0i64;
            while !stop_writing.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                let mut sql = format!("START TRANSACTION; INSERT INTO {db}.t VALUES ({}, {round});", 1000 + round);
                for k in 1..=KEYS {
                    sql.push_str(&format!("UPDATE {db}.t SET v = v + 1 WHERE id = {k};"));
                }
                if round % 3 == 0 {
                    sql.push_str(&format!("DELETE FROM {db}.t WHERE id = {};", 1000 + round - 1));
                }
                sql.push_str("COMMIT;");
                conn.query_drop(sql).await.expect("write");
            }
        })
    };

    // kill -9 at timer-set moments (fault injection, not synchronisation), restart each time.
    let mut boundaries = Vec::new(); // (topic offset where the next run starts, stored offset then)
    for k in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(700 + 400 * k as u64)).await;
        common::kill::kill_and_settle(&mut child, &common::kill::ports(&connector.kafka));
        let stored = connector.offset_reader().stored_set().expect("an offset is always stored");
        let (t, kafka) = (topic.clone(), connector.observer().to_string());
        let high = tokio::task::spawn_blocking(move || audit::high_watermark(&kafka, &t))
            .await
            .expect("watermark")
            .expect("the broker answers");
        boundaries.push((high, stored));
        child = connector.start();
    }
    stop_writing.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.expect("writer");
    let end = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &end)).await;
    // Read while the connector runs: its HTTP port serves the schemas to the stock client.
    let records = consume(&connector, &topic, 0).await;
    assert_eq!(stop(&mut child).await, Some(0));
    let samples = audit.finish();
    assert!(records.len() > 100, "only {} records", records.len());

    // 1. Nothing lost: the latest record per key is the table.
    let mut latest: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    for r in &records {
        let Some(id) = r["key"]["id"].as_i64() else { continue };
        latest.insert(id, r["value"]["after"]["v"].as_i64());
    }
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("connect");
    let table: Vec<(i64, i64)> = conn.query(format!("SELECT id, v FROM {db}.t ORDER BY id")).await.expect("select");
    let in_kafka: Vec<(i64, i64)> = latest.into_iter().filter_map(|(id, v)| v.map(|v| (id, v))).collect();
    assert_eq!(in_kafka, table, "latest record per key must equal the table");

    // 2. Duplicates only from the uncommitted tail at each kill.
    let mut first_seen: HashMap<(String, i64, i64, i64), i64> = HashMap::new();
    let mut duplicates = 0;
    for r in records.iter().filter(|r| r["value"].is_object()) {
        let gtid = r["value"]["source"]["gtid"].as_str().expect("gtid").to_string();
        // A row change is its transaction, its rows event (pos) and its index in that event.
        let source = &r["value"]["source"];
        let ident = (
            gtid.clone(),
            source["pos"].as_i64().unwrap_or(-1),
            source["row"].as_i64().unwrap_or(-1),
            r["key"]["id"].as_i64().unwrap_or(-1),
        );
        let offset = r["offset"].as_i64().expect("offset");
        if let Some(&earlier) = first_seen.get(&ident) {
            duplicates += 1;
            // The kill between the two copies: the last boundary at or before this copy.
            let (_, stored) =
                boundaries.iter().rev().find(|(b, _)| *b <= offset && *b > earlier).expect("a kill between copies");
            assert!(!contains(stored, &gtid), "{gtid} was committed ({stored}) yet sent again");
        } else {
            first_seen.insert(ident, offset);
        }
    }
    // 3. No stored offset ever ahead of an acknowledged record.
    let gtids: Vec<(String, i64)> = records
        .iter()
        .filter(|r| r["value"].is_object())
        .map(|r| {
            (r["value"]["source"]["gtid"].as_str().expect("gtid").to_string(), r["offset"].as_i64().expect("offset"))
        })
        .collect();
    let checked = audit::check(&samples, &gtids);
    eprintln!(
        "{} records, {duplicates} duplicates from uncommitted tails, {checked} offset samples audited",
        records.len()
    );
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_kill_nine_loses_nothing_file_offsets() {
    kill_nine_loses_nothing(MARIADB, Store::File).await;
}

#[tokio::test]
async fn mysql_kill_nine_loses_nothing_file_offsets() {
    kill_nine_loses_nothing(MYSQL, Store::File).await;
}

#[tokio::test]
async fn mariadb_kill_nine_loses_nothing_kafka_offsets() {
    kill_nine_loses_nothing(MARIADB, Store::Kafka).await;
}

#[tokio::test]
async fn mysql_kill_nine_loses_nothing_kafka_offsets() {
    kill_nine_loses_nothing(MYSQL, Store::Kafka).await;
}
