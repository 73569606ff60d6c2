//! Rows read from the real servers, encoded as rowferry encodes them, registered in the embedded
//! registry and produced to the broker, are decoded by the stock Python client (confluent-kafka's
//! AvroDeserializer, fetching schemas from the embedded registry's REST API) to the same values.
//! This is the `avro-native` format (Avro logical types); the `debezium` format is compared with
//! Debezium itself in tests/debezium.rs.

mod common;

use common::{
    KAFKA, MARIADB, MYSQL, admin, committed_until, env, position_now, source_settings, spawn_reader, unique,
    unique_server_id,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rowferry::encoder::{avro_schema, datum, wire};
use rowferry::reader::{ReaderOptions, TxnEvent};
use rowferry::registry::embedded::EmbeddedRegistry;
use std::sync::Arc;
use std::time::Duration;

const NATIVE: rowferry::encoder::Format = rowferry::encoder::Format::AvroNative;

async fn stock_client_reads_what_rowferry_writes(server: &str) {
    let url = env(server);
    let db = unique("avro");
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            format!(
                "CREATE TABLE {db}.t (id INT PRIMARY KEY, biu BIGINT UNSIGNED, dec2 DECIMAL(65,30), dt DATE, dtm DATETIME(6), \
                 ts TIMESTAMP(6) NULL, tm TIME(6), s SET('x','y','z'), e ENUM('a','ü'), vc VARCHAR(40), bin BINARY(4), y YEAR, \
                 j JSON, f FLOAT, bits BIT(5)) DEFAULT CHARSET utf8mb4"
            ),
        ],
    )
    .await;
    let (mut rx, _stats) = spawn_reader(
        source_settings(&url, unique_server_id(), None),
        ReaderOptions::default(),
        position_now(&url).await,
    );
    admin(
        &url,
        &[
            "SET NAMES utf8mb4".to_string(),
            "SET time_zone = '+00:00'".to_string(),
            format!(
                "INSERT INTO {db}.t VALUES (1, 18446744073709551615, '-{nines35}.{nines30}', '2024-02-29', \
                 '2001-02-03 04:05:06.000007', '2038-01-19 03:14:07.999999', '-838:59:59', 'x,z', 'ü', 'emoji 😀', 'ab', 0, \
                 '{{\"k\": [1]}}', 1.5, b'10101')",
                nines35 = "9".repeat(35),
                nines30 = "9".repeat(30)
            ),
            format!("INSERT INTO {db}.t (id) VALUES (2)"),
            format!("UPDATE {db}.t SET vc = 'changed' WHERE id = 2"),
            format!("DELETE FROM {db}.t WHERE id = 1"),
        ],
    )
    .await;
    let txns = committed_until(&mut rx, &db, Duration::from_secs(60), |t| t.len() >= 4).await;

    // Encode and produce, as the pipeline will.
    let kafka = rowferry::config::KafkaSettings {
        bootstrap_servers: env(KAFKA),
        topic_prefix: "rowferry".into(),
        librdkafka: Default::default(),
        delivery: Default::default(),
    };
    let registry = Arc::new(EmbeddedRegistry::open(&kafka, &unique("_schemas"), -1).await.expect("registry"));
    let topic = format!("rowferry.{db}.t");
    // As the publisher does: the broker creates no topic on first use.
    let topics = Arc::new(rowferry::kafka::create(&rowferry::kafka::client_config(&kafka)).expect("admin"));
    rowferry::kafka::create_topic(&topics, &topic, &rowferry::kafka::TopicSpec::internal(-1)).await.expect("topic");
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", env(KAFKA))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    let connector = if server == MYSQL { "mysql" } else { "mariadb" };
    for (gtid, events) in &txns {
        for event in events {
            let TxnEvent::Row(change) = event else { continue };
            let schemas = avro_schema::table_schemas(&change.table, &topic, NATIVE, connector).expect("schemas");
            let (key_text, key_schema) = schemas.key.clone().expect("primary key");
            let key_id = registry.register(&format!("{topic}-key"), &key_text).await.expect("key subject").id;
            let value_id =
                registry.register(&format!("{topic}-value"), &schemas.value.0).await.expect("value subject").id;
            let source = datum::SourceInfo {
                connector,
                name: "test",
                ts_ms: 0,
                ts_us: 0,
                snapshot: "false",
                server_id: 1,
                gtid: Some(gtid),
                file: "",
                pos: 0,
                row: 0,
                thread: None,
            };
            let mut key = Vec::new();
            wire::frame_into(
                key_id,
                &datum::encode(&key_schema, datum::key(change, NATIVE).expect("key").expect("some")).expect("key"),
                &mut key,
            );
            let mut value = Vec::new();
            let envelope = datum::envelope(change, &source, None, 1, NATIVE).expect("envelope");
            wire::frame_into(value_id, &datum::encode(&schemas.value.1, envelope).expect("encode"), &mut value);
            producer
                .send(FutureRecord::to(&topic).partition(0).key(&key).payload(&value), Duration::from_secs(10))
                .await
                .expect("produce");
        }
    }

    // The stock client, pointed at the embedded registry's REST API.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            rowferry::registry::http::router(
                registry,
                rowferry::ops::http::Gate::new(None, ([127, 0, 0, 1], 0).into()),
            ),
        )
        .await
    });
    let python = env("ROWFERRY_TEST_PYTHON");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/consume_avro.py");
    let args = [script.to_string(), env(KAFKA), format!("http://{addr}"), topic.clone(), "4".to_string()];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new(python).args(args).output())
        .await
        .expect("join")
        .expect("python");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let ops: Vec<&str> = records.iter().filter_map(|r| r["value"]["op"].as_str()).collect();
    assert_eq!(ops, ["c", "c", "u", "d"]);
    let first = &records[0];
    assert_eq!(first["key"], serde_json::json!({"id": 1}));
    let after = &first["value"]["after"];
    assert_eq!(after["biu"], "18446744073709551615");
    assert_eq!(after["dec2"], format!("-{}.{}", "9".repeat(35), "9".repeat(30)));
    assert_eq!(after["dt"], "2024-02-29");
    assert_eq!(after["dtm"], "2001-02-03T04:05:06.000007");
    assert_eq!(after["ts"], "2038-01-19T03:14:07.999999+00:00");
    assert_eq!(after["tm"], -3_020_399_000_000i64);
    assert_eq!(after["s"], serde_json::json!(["x", "z"]));
    assert_eq!(after["e"], "ü");
    assert_eq!(after["vc"], "emoji 😀");
    assert_eq!(after["bin"], "61620000");
    assert_eq!(after["y"], 0);
    assert_eq!(after["j"], r#"{"k": [1]}"#);
    assert_eq!(after["f"], 1.5);
    assert_eq!(after["bits"], 0b10101);
    assert_eq!(first["value"]["source"]["db"], db);
    assert_eq!(first["value"]["source"]["connector"], connector);
    assert!(first["value"]["source"]["gtid"].is_string());
    assert_eq!(records[1]["value"]["after"]["vc"], serde_json::Value::Null);
    assert_eq!(records[2]["value"]["after"]["vc"], "changed");
    assert_eq!(records[3]["value"]["before"]["id"], 1);
    assert_eq!(records[3]["value"]["after"], serde_json::Value::Null);
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mysql_rows_decode_in_the_stock_python_client() {
    stock_client_reads_what_rowferry_writes(MYSQL).await;
}

#[tokio::test]
async fn mariadb_rows_decode_in_the_stock_python_client() {
    stock_client_reads_what_rowferry_writes(MARIADB).await;
}
