//! `rowferry verify` against both servers: after a snapshot and some streamed changes a clean
//! run passes; then three faults are planted and each is reported with its key and exit code 1:
//! a record with a wrong value in the topic (another row's value under a key), a row the topic
//! never got (inserted with sql_log_bin=0), and a key the table no longer has (deleted with
//! sql_log_bin=0).

mod common;

use common::connector::{Connector, covers, offset_reaches, snapshot_complete};
use common::{MARIADB, MYSQL, admin, env, position_now, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::process::Command;
use std::time::Duration;

fn verify(c: &Connector) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rowferry"))
        .args(["verify", "--config"])
        .arg(c.config.path())
        .output()
        .expect("rowferry verify");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The raw (key, value) of every record in `topic`.
fn raw_records(topic: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", env(common::KAFKA))
        .set("group.id", "verify-test")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let (_, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)).expect("watermarks");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning).expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    while (out.len() as i64) < high {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            out.push((m.key().unwrap_or_default().to_vec(), m.payload().map(<[u8]>::to_vec)));
        }
    }
    out
}

async fn planted_faults_are_reported(server: &str) {
    let url = env(server);
    let db = unique("verify");
    let values: Vec<String> = (1..=200).map(|i| format!("({i}, 'v{i}', {i}.5, '{{\"a\": [{i}, 2]}}')")).collect();
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            // JSON: written compact when streamed from MySQL's binlog, as the server prints it when
            // read by the snapshot (Debezium's two texts); verify accepts either.
            format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20), d DECIMAL(10,2), j JSON)"),
            format!("INSERT INTO {db}.t VALUES {}", values.join(",")),
        ],
    )
    .await;
    let connector = Connector::new(&url, &db).with_snapshots();
    let mut child = connector.start();
    snapshot_complete(&connector, Duration::from_secs(60)).await;
    admin(
        &url,
        &[
            format!("UPDATE {db}.t SET v = 'changed', j = '{{\"b\": [1, 2]}}' WHERE id <= 10"),
            format!("DELETE FROM {db}.t WHERE id = 200"),
        ],
    )
    .await;
    let end = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &end)).await;
    let (code, out) = verify(&connector);
    assert_eq!(code, 0, "a clean table passes:\n{out}");
    assert!(out.contains(&format!("{db}.t: OK — 199 rows")), "{out}");

    // A wrong value: id 1's key with id 2's value.
    let topic = format!("{db}.{db}.t");
    let records = raw_records(&topic);
    let value_of = |id: u8| {
        records.iter().rev().find(|(k, v)| k.last() == Some(&(id * 2)) && v.is_some()).and_then(|(_, v)| v.clone())
    };
    let key_of_1 = records.iter().find(|(k, _)| k.last() == Some(&2)).map(|(k, _)| k.clone()).expect("key 1");
    let producer: BaseProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", env(common::KAFKA)).create().expect("producer");
    let wrong = value_of(2).expect("value of 2");
    producer.send(BaseRecord::to(&topic).key(&key_of_1).payload(&wrong)).expect("plant");
    producer.flush(Duration::from_secs(10)).expect("flush");
    // A missing key and an extra key: changes the binlog never carries.
    admin(
        &url,
        &[
            "SET SESSION sql_log_bin = 0".into(),
            format!("INSERT INTO {db}.t VALUES (1000, 'unseen', 1, NULL)"),
            format!("DELETE FROM {db}.t WHERE id = 3"),
        ],
    )
    .await;
    let (code, out) = verify(&connector);
    assert_eq!(code, 1, "faults make verify fail:\n{out}");
    assert!(out.contains("MISMATCH"), "{out}");
    assert!(out.contains("Different: key {\"id\":1}"), "{out}");
    assert!(out.contains("Missing: key {\"id\":1000}"), "{out}");
    assert!(out.contains("Extra: key {\"id\":3}"), "{out}");
    assert!(!out.contains("key {\"id\":2}"), "a correct key is not reported:\n{out}");
    common::connector::stop(&mut child).await;
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_verify_passes_clean_and_reports_planted_faults() {
    planted_faults_are_reported(MARIADB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_verify_passes_clean_and_reports_planted_faults() {
    planted_faults_are_reported(MYSQL).await;
}
