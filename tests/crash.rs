//! Crash safety of `rowferry run`: under continuous writes, `kill -9` it three times at moments
//! set by a timer and restart it each time. At the end the latest record per key in Kafka equals
//! the table (nothing lost), and every transaction that appears twice was, at the kill before its
//! second appearance, not yet in the stored offset (duplicates only from the uncommitted tail).

mod common;

use common::connector::{Connector, consume, covers, offset_reaches, stop};
use common::{KAFKA, MARIADB, MYSQL, admin, env, position_now, unique};
use mysql_async::prelude::Queryable;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const KEYS: i64 = 20;
const KILLS: usize = 3;

/// Whether the GTID `gtid` is inside the stored position `stored` (either flavor).
fn contains(stored: &str, gtid: &str) -> bool {
    use rowferry::position::{MariaDbPosition, MySqlGtidSet};
    if let (Ok(s), Ok(g)) = (MySqlGtidSet::parse(stored), MySqlGtidSet::parse(gtid)) {
        return g.is_subset(&s);
    }
    match (MariaDbPosition::parse(stored), MariaDbPosition::parse(gtid)) {
        (Ok(s), Ok(g)) => g.is_subset(&s),
        _ => panic!("unparsable positions {stored:?} / {gtid:?}"),
    }
}

fn high_watermark(topic: &str) -> i64 {
    let consumer: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", env(KAFKA)).create().expect("consumer");
    consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)).map(|(_, high)| high).unwrap_or(0)
}

async fn kill_nine_loses_nothing(server: &str) {
    let url = env(server);
    let db = unique("crash");
    let mut seed = vec![format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")];
    seed.extend((1..=KEYS).map(|k| format!("INSERT INTO {db}.t VALUES ({k}, 0)")));
    admin(&url, &seed).await;
    let topic = format!("{db}.{db}.t");
    let connector = Connector::new(&url, &db);
    let mut child = connector.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &start)).await;

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
        child.kill().expect("kill -9");
        let _ = child.wait();
        let stored =
            connector.offset().expect("an offset is always stored")["gtid_set"].as_str().expect("set").to_string();
        let t = topic.clone();
        let high = tokio::task::spawn_blocking(move || high_watermark(&t)).await.expect("watermark");
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
    let mut first_seen: HashMap<(String, i64, i64), i64> = HashMap::new();
    let mut duplicates = 0;
    for r in records.iter().filter(|r| r["value"].is_object()) {
        let gtid = r["value"]["source"]["gtid"].as_str().expect("gtid").to_string();
        let ident =
            (gtid.clone(), r["value"]["source"]["row"].as_i64().unwrap_or(-1), r["key"]["id"].as_i64().unwrap_or(-1));
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
    eprintln!("{} records, {duplicates} duplicates from uncommitted tails", records.len());
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_kill_nine_loses_nothing() {
    kill_nine_loses_nothing(MARIADB).await;
}

#[tokio::test]
async fn mysql_kill_nine_loses_nothing() {
    kill_nine_loses_nothing(MYSQL).await;
}
