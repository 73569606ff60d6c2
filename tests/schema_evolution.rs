//! Schema changes through `rowferry run`, read back with the stock Python client:
//!
//! * an added column makes a new, compatible schema version and streaming goes on;
//! * an incompatible change (a column's type) stops only that table: the other table keeps
//!   streaming, the stored offset stays before the stopped transaction, and the log names the
//!   table, the subject and the level. After the level of that subject is relaxed (PUT /config)
//!   and rowferry restarted, it resumes at the stopped transaction with nothing lost;
//! * a table rowferry cannot decode (a latin5 column): when it is not captured, it is not decoded
//!   and stops nothing; when it is captured, it stops alone, like an incompatible change;
//! * a row whose record is larger than the producer may send (2 MB against librdkafka's 1 MB
//!   `message.max.bytes`) stops its table alone, with a message naming the table, the key, the
//!   size, the limit and the fixes (it used to end the run, and every restart met it again);
//! * with an external registry (a Confluent-compatible REST server behind basic auth) records
//!   are registered there, and a wrong password stops rowferry with an error naming the keys.

mod common;

use common::connector::{Connector, consume, covers, offset_reaches, stop};
use common::{KAFKA, MARIADB, MYSQL, admin, env, position_now, unique};
use rowferry::config::KafkaSettings;
use rowferry::registry::embedded::EmbeddedRegistry;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn http_client() -> reqwest::Client {
    rowferry::install_tls_provider();
    reqwest::Client::new()
}

async fn incompatible_change_stops_one_table(server: &str) {
    let url = env(server);
    let db = unique("evolve");
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            format!("CREATE TABLE {db}.a (id INT PRIMARY KEY, v INT)"),
            format!("CREATE TABLE {db}.b (id INT PRIMARY KEY, v INT)"),
        ],
    )
    .await;
    let connector = Connector::new(&url, &db);
    let mut child = connector.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &start)).await;

    // A compatible change: a new nullable column.
    admin(
        &url,
        &[
            format!("INSERT INTO {db}.a VALUES (1, 1)"),
            format!("ALTER TABLE {db}.a ADD COLUMN note VARCHAR(10)"),
            format!("INSERT INTO {db}.a VALUES (2, 2, 'n')"),
        ],
    )
    .await;
    let before = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &before)).await;

    // An incompatible one: v becomes text. Table a stops at the insert after it; b goes on.
    admin(
        &url,
        &[format!("ALTER TABLE {db}.a MODIFY v VARCHAR(10)"), format!("INSERT INTO {db}.a VALUES (3, 'x', 'm')")],
    )
    .await;
    let stopped_at = position_now(&url).await.to_string();
    admin(&url, &[format!("INSERT INTO {db}.b VALUES (1, 10)"), format!("INSERT INTO {db}.b VALUES (2, 20)")]).await;
    let b_topic = format!("{db}.{db}.b");
    let b_records = consume(&connector, &b_topic, 2).await;
    assert_eq!(b_records.len(), 2, "the other table keeps streaming");
    let subject = format!("{db}.{db}.a-value");
    let log = connector.log();
    assert!(
        log.contains("table stopped") && log.contains(&subject) && log.contains("BACKWARD"),
        "the log names the table, subject and level:\n{log}"
    );

    // The operator relaxes the subject's level, then restarts rowferry.
    let answer = http_client()
        .put(format!("{}/config/{subject}", connector.registry_url))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .body(r#"{"compatibility": "NONE"}"#)
        .send()
        .await
        .expect("PUT /config");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
    assert_eq!(stop(&mut child).await, Some(0));
    let stored = connector.offset().expect("offset")["gtid_set"].as_str().expect("set").to_string();
    assert!(covers(&stored, &before), "{stored} covers what came before");
    assert!(!covers(&stored, &stopped_at), "{stored} must stay before the stopped transaction {stopped_at}");

    let mut child = connector.start();
    let end = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &end)).await;
    let a_topic = format!("{db}.{db}.a");
    let a_records = consume(&connector, &a_topic, 0).await;
    assert_eq!(stop(&mut child).await, Some(0));
    let rows: Vec<serde_json::Value> = a_records.iter().map(|r| r["value"]["after"].clone()).collect();
    assert_eq!(
        rows,
        [
            serde_json::json!({"id": 1, "v": 1}),
            serde_json::json!({"id": 2, "v": 2, "note": "n"}),
            serde_json::json!({"id": 3, "v": "x", "note": "m"}),
        ],
        "every row of a, each in the shape of its time"
    );
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

/// A table outside `tables.include` with a latin5 column, and a captured one with another; writes
/// to both, and to a plain captured table between them. (Before tables were filtered in the
/// decoder, the first insert into the uncaptured table ended the run: "collation id 30 has a
/// character set rowferry cannot decode".)
async fn undecodable_tables_stop_only_themselves(server: &str) {
    let url = env(server);
    let db = unique("charset");
    let other = format!("{db}_x");
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            format!("CREATE DATABASE {other}"),
            format!("CREATE TABLE {other}.t (id INT PRIMARY KEY, s VARCHAR(10) CHARACTER SET latin5)"),
            format!("CREATE TABLE {db}.ok (id INT PRIMARY KEY, v INT)"),
            format!("CREATE TABLE {db}.tr (id INT PRIMARY KEY, s VARCHAR(10) CHARACTER SET latin5)"),
        ],
    )
    .await;
    let connector = Connector::new(&url, &db);
    let mut child = connector.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &start)).await;

    admin(&url, &[format!("INSERT INTO {other}.t VALUES (1, 'a')"), format!("INSERT INTO {db}.ok VALUES (1, 1)")])
        .await;
    let before = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &before)).await;
    admin(&url, &[format!("INSERT INTO {db}.tr VALUES (1, 'b')")]).await;
    let stopped_at = position_now(&url).await.to_string();
    admin(&url, &[format!("INSERT INTO {other}.t VALUES (2, 'c')"), format!("INSERT INTO {db}.ok VALUES (2, 2)")])
        .await;
    let ok = consume(&connector, &format!("{db}.{db}.ok"), 2).await;
    let ids: Vec<i64> = ok.iter().filter_map(|r| r["value"]["after"]["id"].as_i64()).collect();
    assert_eq!(ids, [1, 2], "the captured table keeps streaming");
    assert!(child.try_wait().expect("wait").is_none(), "rowferry keeps running:\n{}", connector.log());
    let log = connector.log();
    assert!(
        log.contains("table stopped") && log.contains(&format!("{db}.tr")) && log.contains("collation id 30"),
        "the log names the stopped table and why:\n{log}"
    );
    assert!(!log.contains(&format!("{other}.t")), "the uncaptured table is not even looked at:\n{log}");
    assert_eq!(stop(&mut child).await, Some(0), "{log}");
    let stored = connector.offset().expect("offset")["gtid_set"].as_str().expect("set").to_string();
    assert!(covers(&stored, &before), "{stored} covers what came before");
    assert!(!covers(&stored, &stopped_at), "{stored} must stay before the stopped transaction {stopped_at}");
    admin(&url, &[format!("DROP DATABASE {db}"), format!("DROP DATABASE {other}")]).await;
}

async fn oversized_row_stops_its_table(server: &str) {
    let url = env(server);
    let db = unique("big");
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            format!("CREATE TABLE {db}.big (id INT PRIMARY KEY, doc LONGTEXT)"),
            format!("CREATE TABLE {db}.ok (id INT PRIMARY KEY, v INT)"),
        ],
    )
    .await;
    let connector = Connector::new(&url, &db);
    let mut child = connector.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &start)).await;
    admin(&url, &[format!("INSERT INTO {db}.ok VALUES (1, 1)"), format!("INSERT INTO {db}.big VALUES (1, 'small')")])
        .await;
    let before = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &before)).await;
    admin(&url, &[format!("INSERT INTO {db}.big VALUES (7, REPEAT('x', 2000000))")]).await;
    let stopped_at = position_now(&url).await.to_string();
    admin(&url, &[format!("INSERT INTO {db}.ok VALUES (2, 2)")]).await;
    let ok = consume(&connector, &format!("{db}.{db}.ok"), 2).await;
    assert_eq!(ok.len(), 2, "the other table keeps streaming");
    assert!(child.try_wait().expect("wait").is_none(), "rowferry keeps running:\n{}", connector.log());
    let log = connector.log();
    let stop_line = log.lines().find(|l| l.contains("table stopped")).unwrap_or_default();
    for part in
        [&format!("{db}.big"), "id=Int(7)", "message.max.bytes (1000000)", "columns.truncate", "columns.exclude"]
    {
        assert!(stop_line.contains(part), "the stop names {part}:\n{log}");
    }
    assert_eq!(stop(&mut child).await, Some(0), "{log}");
    let stored = connector.offset().expect("offset")["gtid_set"].as_str().expect("set").to_string();
    assert!(covers(&stored, &before), "{stored} covers what came before");
    assert!(!covers(&stored, &stopped_at), "{stored} must stay before the oversized row {stopped_at}");
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_oversized_row_stops_its_table() {
    oversized_row_stops_its_table(MARIADB).await;
}

#[tokio::test]
async fn mysql_oversized_row_stops_its_table() {
    oversized_row_stops_its_table(MYSQL).await;
}

#[tokio::test]
async fn mariadb_undecodable_tables_stop_only_themselves() {
    undecodable_tables_stop_only_themselves(MARIADB).await;
}

#[tokio::test]
async fn mysql_undecodable_tables_stop_only_themselves() {
    undecodable_tables_stop_only_themselves(MYSQL).await;
}

#[tokio::test]
async fn mariadb_incompatible_change_stops_one_table() {
    incompatible_change_stops_one_table(MARIADB).await;
}

#[tokio::test]
async fn mysql_incompatible_change_stops_one_table() {
    incompatible_change_stops_one_table(MYSQL).await;
}

/// A Confluent-compatible registry server for the test: rowferry's registry REST API (on a
/// schema topic of its own) behind basic auth `rf:s3cret`.
async fn registry_server() -> String {
    let kafka = KafkaSettings {
        bootstrap_servers: env(KAFKA),
        topic_prefix: "x".into(),
        librdkafka: Default::default(),
        delivery: Default::default(),
    };
    let registry = Arc::new(EmbeddedRegistry::open(&kafka, &unique("_schemas_ext"), -1).await.expect("registry"));
    let app =
        rowferry::registry::http::router(registry, rowferry::ops::http::Gate::new(None, ([127, 0, 0, 1], 0).into()))
            .layer(axum::middleware::from_fn(
                |request: axum::extract::Request, next: axum::middleware::Next| async move {
                    let authorised = request.headers().get("authorization").and_then(|v| v.to_str().ok())
                        == Some("Basic cmY6czNjcmV0");
                    if authorised {
                        next.run(request).await
                    } else {
                        axum::response::IntoResponse::into_response((
                            axum::http::StatusCode::UNAUTHORIZED,
                            "unauthorised",
                        ))
                    }
                },
            ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(axum::serve(listener, app).into_future());
    format!("http://{addr}")
}

#[tokio::test]
async fn external_registry_with_basic_auth() {
    let url = env(MYSQL);
    let db = unique("extreg");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, s TEXT)")]).await;
    let registry = registry_server().await;
    let consumer_url = registry.replacen("http://", "http://rf:s3cret@", 1);

    // A wrong password: rowferry stops at the first registration with an error naming the keys.
    let wrong = Connector::new(&url, &db).with_registry(
        &format!("mode = \"external\"\nurl = \"{registry}\"\nusername = \"rf\"\npassword = \"nope\""),
        "",
    );
    let mut child = wrong.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&wrong, |g| covers(g, &start)).await;
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (1, 'one')")]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "rowferry kept running with a wrong registry password");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(1));
    let log = wrong.log();
    assert!(log.contains("401") && log.contains("registry.password"), "{log}");
    let stored = wrong.offset().expect("offset")["gtid_set"].as_str().expect("set").to_string();
    assert!(covers(&stored, &start) && !covers(&stored, &position_now(&url).await.to_string()), "nothing skipped");

    // The right one: records arrive, their schemas registered in the external registry.
    let connector = Connector::new(&url, &db).with_registry(
        &format!("mode = \"external\"\nurl = \"{registry}\"\nusername = \"rf\"\npassword = \"s3cret\""),
        &consumer_url,
    );
    // Continue where the failed run stopped.
    std::fs::copy(wrong.offsets.path().join("offset.json"), connector.offsets.path().join("offset.json"))
        .expect("copy offset");
    let mut child = connector.start();
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (2, 'two')")]).await;
    let end = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &end)).await;
    let topic = format!("{db}.{db}.t");
    let records = consume(&connector, &topic, 2).await;
    assert_eq!(stop(&mut child).await, Some(0));
    let rows: Vec<serde_json::Value> = records.iter().map(|r| r["value"]["after"].clone()).collect();
    assert_eq!(rows, [serde_json::json!({"id": 1, "s": "one"}), serde_json::json!({"id": 2, "s": "two"})]);
    let subjects: Vec<String> = http_client()
        .get(format!("{registry}/subjects"))
        .basic_auth("rf", Some("s3cret"))
        .send()
        .await
        .expect("GET /subjects")
        .json()
        .await
        .expect("json");
    assert!(subjects.contains(&format!("{db}.{db}.t-value")), "{subjects:?}");
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}
