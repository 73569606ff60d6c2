//! `rowferry run` end to end: rows inserted, updated and deleted on the real servers arrive in
//! Kafka with the right op and values (read by the stock Python client through the embedded
//! registry's REST API), a SIGTERM drains and commits the exact position, and a restart continues
//! from it without a duplicate. Tables with generated columns stream on every server, including
//! MariaDB 11.8, which leaves those columns out of UPDATE and DELETE images.

mod common;

use common::connector::{Connector, consume, covers, exit_code, offset_reaches, stop};
use common::{MARIADB, MARIADB_11, MYSQL, admin, env, unique};
use std::time::Duration;

async fn current_gtid_text(url: &str) -> String {
    common::position_now(url).await.to_string()
}

async fn streams_stops_and_resumes(server: &str) {
    let url = env(server);
    let db = unique("run");
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            format!("CREATE TABLE {db}.c (id INT PRIMARY KEY, name VARCHAR(20), n BIGINT UNSIGNED)"),
        ],
    )
    .await;
    let connector = Connector::new(&url, &db);
    let mut child = connector.start();
    // The first start begins at "now" and stores that position before streaming.
    let now = current_gtid_text(&url).await;
    offset_reaches(&connector, |g| covers(g, &now)).await;

    admin(
        &url,
        &[
            format!("INSERT INTO {db}.c VALUES (1, 'a', 18446744073709551615), (2, 'b', 0)"),
            format!("UPDATE {db}.c SET name = 'z' WHERE id = 1"),
            format!("DELETE FROM {db}.c WHERE id = 2"),
        ],
    )
    .await;
    let after_first = current_gtid_text(&url).await;
    offset_reaches(&connector, |g| covers(g, &after_first)).await;
    assert_eq!(stop(&mut child).await, Some(0), "graceful shutdown exits 0");
    // Other tests write to the same server meanwhile: the final commit covers (at least) the
    // last transaction of this test.
    let stored = connector.stored_set();
    assert!(covers(&stored, &after_first), "the final commit {stored} misses {after_first}");

    // Restart: only the new change arrives after the old ones; nothing twice.
    let mut child = connector.start();
    admin(&url, &[format!("INSERT INTO {db}.c VALUES (3, 'c', 3)")]).await;
    let after_second = current_gtid_text(&url).await;
    offset_reaches(&connector, |g| covers(g, &after_second)).await;
    let records = consume(&connector, &format!("{db}.{db}.c"), 6).await;
    assert_eq!(stop(&mut child).await, Some(0));

    let summary: Vec<(String, serde_json::Value)> = records
        .iter()
        .map(|r| (r["value"]["op"].as_str().unwrap_or("tombstone").to_string(), r["key"]["id"].clone()))
        .collect();
    let expect = |op: &str, id: i64| (op.to_string(), serde_json::json!(id));
    assert_eq!(
        summary,
        [expect("c", 1), expect("c", 2), expect("u", 1), expect("d", 2), expect("tombstone", 2), expect("c", 3)]
    );
    // Debezium's default bigint.unsigned.handling.mode=long: 2^64-1 wraps to -1.
    assert_eq!(records[0]["value"]["after"]["n"], -1);
    assert_eq!(records[2]["value"]["before"]["name"], "a");
    assert_eq!(records[2]["value"]["after"]["name"], "z");
    assert_eq!(records[3]["value"]["after"], serde_json::Value::Null);
    assert_eq!(records[5]["value"]["source"]["db"], db);
    // Each record's Kafka timestamp (CreateTime) is its envelope's ts_ms, a tombstone's its delete's.
    for (i, r) in records.iter().enumerate() {
        let of = if r["value"].is_null() { &records[i - 1] } else { r };
        assert_eq!(r["timestamp"], serde_json::json!([1, of["value"]["ts_ms"]]), "record {i}: {r}");
    }
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_run_streams_stops_and_resumes() {
    streams_stops_and_resumes(MARIADB).await;
}

#[tokio::test]
async fn mysql_run_streams_stops_and_resumes() {
    streams_stops_and_resumes(MYSQL).await;
}

/// A table with a VIRTUAL and a STORED generated column: every change arrives and the table is
/// never stopped. Where the server logs the generated columns in every image (MariaDB 10.11,
/// MySQL) the records carry them; MariaDB 11.8 leaves them out of UPDATE and DELETE images, and
/// rowferry leaves them out of every record of the table (one shape for all records).
async fn generated_columns(server: &str, in_records: bool) {
    let url = env(server);
    let db = unique("gen");
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            format!(
                "CREATE TABLE {db}.g (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL, s INT AS (a * 3) STORED)"
            ),
        ],
    )
    .await;
    let connector = Connector::new(&url, &db);
    let mut child = connector.start();
    let now = current_gtid_text(&url).await;
    offset_reaches(&connector, |g| covers(g, &now)).await;
    admin(
        &url,
        &[
            format!("INSERT INTO {db}.g (id, a) VALUES (1, 10), (2, 20)"),
            format!("UPDATE {db}.g SET a = 11 WHERE id = 1"),
            format!("DELETE FROM {db}.g WHERE id = 2"),
        ],
    )
    .await;
    let end = current_gtid_text(&url).await;
    offset_reaches(&connector, |g| covers(g, &end)).await;
    let records = consume(&connector, &format!("{db}.{db}.g"), 5).await;
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_rowferry"))
        .args(["status", "--config"])
        .arg(connector.config.path())
        .output()
        .expect("rowferry status");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(stop(&mut child).await, Some(0), "{}", connector.log());
    assert!(status["tables"][format!("{db}.g")]["state"] != "stopped", "table stopped: {status}");

    let ops: Vec<&str> = records.iter().map(|r| r["value"]["op"].as_str().unwrap_or("tombstone")).collect();
    assert_eq!(ops, ["c", "c", "u", "d", "tombstone"]);
    let update = &records[2]["value"];
    assert_eq!((update["before"]["a"].as_i64(), update["after"]["a"].as_i64()), (Some(10), Some(11)));
    for r in records.iter().filter(|r| r["value"].is_object()) {
        for image in ["before", "after"] {
            let Some(row) = r["value"][image].as_object() else { continue };
            assert_eq!(row.contains_key("v") && row.contains_key("s"), in_records, "{image} of {r}");
            if in_records {
                let a = row["a"].as_i64().expect("a");
                assert_eq!((row["v"].as_i64(), row["s"].as_i64()), (Some(a * 2), Some(a * 3)), "{r}");
            }
        }
    }
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_generated_columns_are_in_the_records() {
    generated_columns(MARIADB, true).await;
}

#[tokio::test]
async fn mariadb_11_generated_columns_are_left_out_and_the_table_streams() {
    generated_columns(MARIADB_11, false).await;
}

#[tokio::test]
async fn mysql_generated_columns_are_in_the_records() {
    generated_columns(MYSQL, true).await;
}

/// MariaDB's UUID, INET4, INET6 (and on 11.8 VECTOR) columns arrive as the server prints them
/// (the binlog carries only their BINARY/VARBINARY storage), decoded by a stock Avro consumer.
async fn mariadb_plugin_types(server: &str, vector: bool) {
    let url = env(server);
    let db = unique("types");
    let v = if vector { ", v VECTOR(2)" } else { "" };
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, u UUID, a INET4, b INET6{v})"),
        ],
    )
    .await;
    let connector = Connector::new(&url, &db);
    let mut child = connector.start();
    let now = current_gtid_text(&url).await;
    offset_reaches(&connector, |g| covers(g, &now)).await;
    let v = if vector { ", VEC_FromText('[0.5, -1]')" } else { "" };
    admin(
        &url,
        &[format!(
            "INSERT INTO {db}.t VALUES (1, '6ba7b810-9dad-41d1-80b4-00c04fd430c8', '10.1.2.3', '2001:db8::1'{v})"
        )],
    )
    .await;
    let end = current_gtid_text(&url).await;
    offset_reaches(&connector, |g| covers(g, &end)).await;
    let records = consume(&connector, &format!("{db}.{db}.t"), 1).await;
    assert_eq!(stop(&mut child).await, Some(0));
    let after = &records[0]["value"]["after"];
    assert_eq!(after["u"], "6ba7b810-9dad-41d1-80b4-00c04fd430c8");
    assert_eq!((after["a"].as_str(), after["b"].as_str()), (Some("10.1.2.3"), Some("2001:db8::1")));
    if vector {
        assert_eq!(after["v"], serde_json::json!([0.5, -1.0]));
    }
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_uuid_and_inet_arrive_as_text() {
    mariadb_plugin_types(MARIADB, false).await;
}

#[tokio::test]
async fn mariadb_11_uuid_inet_and_vector_arrive_decoded() {
    mariadb_plugin_types(MARIADB_11, true).await;
}

/// The registry opens while the reader and a snapshot's copier start: one that cannot open still
/// stops the run, promptly, with its error naming its topic. (Nothing can be published either way
/// here — no topic of three replicas can be made on one broker — so that is not what it checks.)
#[tokio::test]
async fn a_registry_that_cannot_open_stops_the_run_with_its_error() {
    let url = env(MARIADB);
    let db = unique("noreg");
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"),
            format!("INSERT INTO {db}.t VALUES (1), (2)"),
        ],
    )
    .await;
    // One broker cannot hold a topic of three replicas: the registry's topic cannot be made.
    let connector = Connector::new(&url, &db).with_snapshots().with_extra("[topics]\nreplication_factor = 3\n");
    let mut child = connector.start();
    let code = exit_code(&mut child, Duration::from_secs(60), "stopped on the registry's error").await;
    let log = connector.log();
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains(&format!("schema log (topic _schemas_{db})")), "the error names the topic: {log}");
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}
