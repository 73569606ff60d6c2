//! `[topics]` and `[columns]` end to end, read back with the stock Python client: a route sends
//! two tables into one topic, created with the configured partitions; excluded columns are gone
//! from the records, hashed ones carry the salted SHA-256, truncated ones are cut; tombstones can
//! be switched off; with transaction metadata on, BEGIN/END records with per-table counts frame
//! each transaction on `<prefix>.transaction` and every record carries its `transaction` block.
//! The stage does not depend on the server flavor, so one server (MySQL) runs it; the TRUNCATE
//! record (`topics.truncate_records`) comes from each server's own statement, so both run that
//! (with `topics.headers` on; the first test checks there are none by default).

mod common;

use common::connector::{Connector, consume, covers, offset_reaches, stop};
use common::{KAFKA, MYSQL, admin, env, position_now, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

fn partitions(topic: &str) -> usize {
    let consumer: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", env(KAFKA)).create().expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    metadata.topics().first().map_or(0, |t| t.partitions().len())
}

#[tokio::test]
async fn routes_masks_and_frames_transactions() {
    let url = env(MYSQL);
    let db = unique("topics");
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            format!("CREATE TABLE {db}.people (id INT PRIMARY KEY, ssn VARCHAR(11), email VARCHAR(100), bio TEXT)"),
            format!("CREATE TABLE {db}.shard_1 (id INT PRIMARY KEY, v INT)"),
            format!("CREATE TABLE {db}.shard_2 (id INT PRIMARY KEY, v INT)"),
        ],
    )
    .await;
    let extra = format!(
        "[topics]\npartitions = 2\ntombstones = false\ntransaction_metadata = true\n\
         routes = [{{ tables = \"{db}.shard_*\", topic = \"{{prefix}}.{{db}}.shards\" }}]\n\
         [columns]\nexclude = [\"{db}.people.ssn\"]\nhash = [\"{db}.people.email\"]\nhash_salt = \"pepper\"\n\
         truncate = {{ \"{db}.people.bio\" = 3 }}\n"
    );
    let connector = Connector::new(&url, &db).with_extra(&extra);
    let mut child = connector.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &start)).await;

    admin(
        &url,
        &[
            "START TRANSACTION".into(),
            format!("INSERT INTO {db}.people VALUES (1, '123-45-6789', 'a@b.c', 'hello')"),
            format!("INSERT INTO {db}.shard_1 VALUES (1, 10)"),
            format!("INSERT INTO {db}.shard_2 VALUES (1, 20)"),
            format!("INSERT INTO {db}.shard_2 VALUES (2, 21)"),
            "COMMIT".into(),
            format!("DELETE FROM {db}.people WHERE id = 1"),
        ],
    )
    .await;
    let end = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &end)).await;
    let topic = |t: &str| format!("{db}.{db}.{t}");
    let people = consume(&connector, &topic("people"), 0).await;
    let shards = consume(&connector, &topic("shards"), 0).await;
    let txns = consume(&connector, &format!("{db}.transaction"), 0).await;
    assert_eq!(stop(&mut child).await, Some(0));

    // Masking: ssn gone, email hashed with the salt, bio cut to 3 characters; no tombstone.
    assert_eq!(people.len(), 2, "insert and delete, no tombstone: {people:?}");
    let hash: String = Sha256::digest(b"peppera@b.c").iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(people[0]["value"]["after"], json!({"id": 1, "email": hash, "bio": "hel"}));
    assert_eq!(people[1]["value"]["op"], "d");
    assert_eq!(people[1]["value"]["before"]["email"], json!(hash));
    // No Kafka headers by default (topics.headers).
    assert_eq!(people[0]["headers"], json!([]), "{people:?}");

    // Routing: both shards in one topic, created with two partitions.
    let mut routed: Vec<(String, i64)> = shards
        .iter()
        .map(|r| {
            (
                r["value"]["source"]["table"].as_str().unwrap_or("").to_string(),
                r["value"]["after"]["v"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    routed.sort();
    assert_eq!(
        routed,
        [("shard_1".into(), 10), ("shard_2".into(), 20), ("shard_2".into(), 21)],
        "records read from the routed topic: {shards:?}; transaction frames: {txns:?}"
    );
    assert_eq!(partitions(&topic("shards")), 2);
    assert_eq!(partitions(&topic("people")), 2);

    // Transaction metadata: BEGIN/END around each transaction, END with per-table counts, and
    // the records' transaction blocks numbering them.
    let gtid = people[0]["value"]["source"]["gtid"].as_str().expect("gtid").to_string();
    let frames: Vec<(Value, Value)> = txns.iter().map(|r| (r["key"].clone(), r["value"].clone())).collect();
    assert_eq!(frames.len(), 4, "{frames:?}");
    assert_eq!(frames[0].0, json!({"id": gtid}));
    assert_eq!(frames[0].1["status"], "BEGIN");
    assert_eq!(frames[0].1["event_count"], Value::Null);
    assert_eq!(frames[1].1["status"], "END");
    assert_eq!(frames[1].1["id"], json!(gtid));
    assert_eq!(frames[1].1["event_count"], 4);
    assert_eq!(
        frames[1].1["data_collections"],
        json!([
            {"data_collection": format!("{db}.people"), "event_count": 1},
            {"data_collection": format!("{db}.shard_1"), "event_count": 1},
            {"data_collection": format!("{db}.shard_2"), "event_count": 2},
        ])
    );
    assert_eq!((frames[2].1["status"].clone(), frames[3].1["status"].clone()), (json!("BEGIN"), json!("END")));
    assert_eq!(frames[3].1["event_count"], 1);
    assert_eq!(people[0]["value"]["transaction"], json!({"id": gtid, "total_order": 1, "data_collection_order": 1}));
    let last_shard = shards.iter().find(|r| r["value"]["after"]["v"] == 21).expect("shard_2 id 2");
    assert_eq!(last_shard["value"]["transaction"], json!({"id": gtid, "total_order": 4, "data_collection_order": 2}));
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

/// With `topics.truncate_records`, a TRUNCATE of a captured table is Debezium's `op = "t"` record:
/// no key, no row images, in the table's topic between the changes around it. Without it (the
/// default), it is a warning and a counter (tests/ops.rs).
async fn truncate_is_an_op_t_record(server: &str) {
    let url = env(server);
    let db = unique("trunc");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")]).await;
    let connector = Connector::new(&url, &db).with_extra("[topics]\ntruncate_records = true\nheaders = true\n");
    let mut child = connector.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &start)).await;
    admin(
        &url,
        &[
            format!("INSERT INTO {db}.t VALUES (1, 1), (2, 2)"),
            format!("TRUNCATE TABLE {db}.t"),
            format!("INSERT INTO {db}.t VALUES (3, 3)"),
        ],
    )
    .await;
    let end = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &end)).await;
    let records = consume(&connector, &format!("{db}.{db}.t"), 4).await;
    let ops: Vec<&str> = records.iter().filter_map(|r| r["value"]["op"].as_str()).collect();
    assert_eq!(ops, ["c", "c", "t", "c"], "{records:?}");
    let t = &records[2];
    assert_eq!((&t["key"], &t["value"]["before"], &t["value"]["after"]), (&Value::Null, &Value::Null, &Value::Null));
    assert_eq!(t["value"]["source"]["table"], json!("t"), "{t}");
    // With topics.headers, each record names its GTID, place in the transaction and table.
    let gtid = records[1]["value"]["source"]["gtid"].clone();
    let table = json!(format!("{db}.t"));
    assert_eq!(
        records[1]["headers"],
        json!([["rowferry.gtid", gtid], ["rowferry.position", "2"], ["rowferry.table", table]]),
        "{records:?}"
    );
    assert!(connector.log().contains("op \"t\" record sent"), "{}", connector.log());
    assert_eq!(stop(&mut child).await, Some(0), "{}", connector.log());
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_truncate_is_an_op_t_record() {
    truncate_is_an_op_t_record(common::MARIADB).await;
}

#[tokio::test]
async fn mysql_truncate_is_an_op_t_record() {
    truncate_is_an_op_t_record(MYSQL).await;
}
