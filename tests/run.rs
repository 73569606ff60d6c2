//! `rowferry run` end to end: rows inserted, updated and deleted on the real servers arrive in
//! Kafka with the right op and values (read by the stock Python client through the embedded
//! registry's REST API), a SIGTERM drains and commits the exact position, and a restart continues
//! from it without a duplicate.

mod common;

use common::connector::{Connector, consume, covers, offset_reaches, stop};
use common::{MARIADB, MYSQL, admin, env, unique};

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
    let stored = connector.offset().expect("offset");
    assert_eq!(stored["gtid_set"], after_first, "the final commit is the last acked transaction");

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
    assert_eq!(records[0]["value"]["after"]["n"], "18446744073709551615");
    assert_eq!(records[2]["value"]["before"]["name"], "a");
    assert_eq!(records[2]["value"]["after"]["name"], "z");
    assert_eq!(records[3]["value"]["after"], serde_json::Value::Null);
    assert_eq!(records[5]["value"]["source"]["db"], db);
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
