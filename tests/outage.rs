//! Broker outage: while rowferry streams, its broker (Apache Kafka, one node of the test's own) is
//! killed (`kill -9`) and writes go on; a few seconds later the broker starts again on its data.
//! During the outage rowferry stays up (deliveries wait and are retried) and its stored offset
//! never covers a transaction written after the broker went away; once the broker is back,
//! streaming resumes, every row arrives, and a graceful stop exits 0. An auditor samples the
//! stored offset against the topic all along: no offset is ever ahead of an acknowledged record.
//!
//! Both offset stores at once: one connector (and database) each, on the same broker. With the
//! Kafka store (the default) the offsets live on the broker that dies, so the test also checks
//! that the stored offset survives a broker restart.

mod common;

use common::audit::{self, Audit};
use common::connector::{Connector, Store, consume, covers, offset_reaches, stop};
use common::kafka::Kafka;
use common::{MARIADB, MYSQL, admin, env, position_now, unique};
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Inserts rows `ids`, one transaction of one row each.
async fn insert(conn: &mut mysql_async::Conn, db: &str, ids: std::ops::RangeInclusive<i64>) {
    for id in ids {
        conn.query_drop(format!("INSERT INTO {db}.t VALUES ({id}, {})", id * 10)).await.expect("insert");
    }
}

/// Inserts rows `ids` into each database's table.
async fn insert_all(conn: &mut mysql_async::Conn, dbs: &[String], ids: std::ops::RangeInclusive<i64>) {
    for db in dbs {
        insert(conn, db, ids.clone()).await;
    }
}

/// One connector under test: its database, table topic and process.
struct Under {
    db: String,
    topic: String,
    connector: Connector,
    child: std::process::Child,
}

/// Streams one database per offset store from `server` through one broker of the test's own,
/// which dies for a while (see the module docs).
async fn outage_loses_nothing(server: &str) {
    let url = env(server);
    let kafka = Kafka::single(&unique("outage"));
    let mut under = Vec::new();
    for store in [Store::File, Store::Kafka] {
        let db = unique("outage");
        admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")])
            .await;
        let connector = Connector::new(&url, &db).with_kafka(&kafka.bootstrap).with_store(store);
        let child = connector.start();
        under.push(Under { topic: format!("{db}.{db}.t"), db, connector, child });
    }
    let start = position_now(&url).await.to_string();
    for u in &under {
        offset_reaches(&u.connector, |g| covers(g, &start)).await;
    }
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("writer");
    let dbs: Vec<String> = under.iter().map(|u| u.db.clone()).collect();

    // Before: acknowledged and committed.
    insert_all(&mut conn, &dbs, 1..=30).await;
    let before = position_now(&url).await.to_string();
    for u in &under {
        offset_reaches(&u.connector, |g| covers(g, &before)).await;
    }
    let audits: Vec<Audit> = under.iter().map(|u| Audit::start(&u.connector, &u.topic)).collect();

    // During: the broker is gone. rowferry reads these rows but nothing can acknowledge them, so
    // for the whole outage the stored offset must not reach them, and rowferry must not give up.
    kafka.kill(1);
    insert_all(&mut conn, &dbs, 31..=60).await;
    let during = position_now(&url).await.to_string();
    let outage_ends = Instant::now() + Duration::from_secs(4);
    while Instant::now() < outage_ends {
        for u in &mut under {
            // (With the Kafka store there is nothing to read while the broker is down.)
            let stored = u.connector.stored_set();
            assert!(!covers(&stored, &during), "offset {stored} covers writes no broker acknowledged");
            assert!(
                u.child.try_wait().expect("try_wait").is_none(),
                "rowferry exited in the outage:\n{}",
                u.connector.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // After: the broker is back; the queued records go out and streaming goes on.
    kafka.start_node(1);
    insert_all(&mut conn, &dbs, 61..=90).await;
    let after = position_now(&url).await.to_string();
    let mut finals = Vec::new();
    for (u, audit) in under.iter_mut().zip(audits) {
        offset_reaches(&u.connector, |g| covers(g, &after)).await;
        audit.until_samples(11).await;
        let records = consume(&u.connector, &u.topic, 0).await;
        assert_eq!(stop(&mut u.child).await, Some(0), "graceful stop:\n{}", u.connector.log());
        let samples = audit.finish();

        // Every row arrived with its values; count what was sent twice (retries across the outage).
        let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
        for r in &records {
            let id = r["key"]["id"].as_i64().expect("key");
            assert_eq!(r["value"]["after"]["v"].as_i64(), Some(id * 10), "record {r}");
            *seen.entry(id).or_default() += 1;
        }
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (1..=90).collect::<Vec<_>>(), "every row, none lost");
        let duplicates: usize = seen.values().map(|n| n - 1).sum();
        let gtids: Vec<(String, i64)> = records
            .iter()
            .map(|r| {
                (
                    r["value"]["source"]["gtid"].as_str().expect("gtid").to_string(),
                    r["offset"].as_i64().expect("offset"),
                )
            })
            .collect();
        let checked = audit::check(&samples, &gtids);
        assert!(checked > 10, "the auditor sampled only {checked} times");
        eprintln!(
            "{:?}: {} records for 90 rows, {duplicates} duplicates; {checked} samples",
            u.connector.store,
            records.len()
        );
        let stored = u.connector.stored_set();
        assert!(covers(&stored, &after), "final offset {stored} misses {after}");
        finals.push(stored);
    }

    // The final offsets survive a restart of the broker (which holds the Kafka store's): a
    // restarted rowferry resumes from them.
    kafka.kill(1);
    kafka.start_node(1);
    for (u, stored) in under.iter().zip(finals) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let reread = loop {
            if let Some(set) = u.connector.offset_reader().stored_set() {
                break set;
            }
            assert!(Instant::now() < deadline, "the stored offset could not be read after the broker restarted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(reread, stored, "the stored offset after the broker restart ({:?} store)", u.connector.store);
        admin(&url, &[format!("DROP DATABASE {}", u.db)]).await;
    }
}

#[tokio::test]
async fn mariadb_broker_outage_loses_nothing() {
    outage_loses_nothing(MARIADB).await;
}

#[tokio::test]
async fn mysql_broker_outage_loses_nothing() {
    outage_loses_nothing(MYSQL).await;
}
