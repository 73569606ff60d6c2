//! `rowferry run` end to end: rows inserted, updated and deleted on the real servers arrive in
//! Kafka with the right op and values (read by the stock Python client through the embedded
//! registry's REST API), a SIGTERM drains and commits the exact position, and a restart continues
//! from it without a duplicate.

mod common;

use common::{KAFKA, MARIADB, MYSQL, admin, env, host_port, unique, unique_server_id};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Connector {
    config: tempfile::NamedTempFile,
    offsets: tempfile::TempDir,
    http: String,
}

impl Connector {
    fn new(url: &str, db: &str) -> Connector {
        let (host, port) = host_port(url);
        let parsed = url::Url::parse(url).expect("url");
        let offsets = tempfile::tempdir().expect("tempdir");
        let http_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let http = format!("127.0.0.1:{http_port}");
        let mut config = tempfile::NamedTempFile::new().expect("config");
        write!(
            config,
            "name = \"{db}\"\nshutdown_timeout_secs = 20\n\
             [source]\nhost = \"{host}\"\nport = {port}\nuser = \"{}\"\npassword = \"{}\"\nserver_id = {}\n\
             [kafka]\nbootstrap_servers = \"{}\"\ntopic_prefix = \"{db}\"\n\
             [registry]\ntopic = \"_schemas_{db}\"\n\
             [offsets]\nstore = \"file\"\npath = \"{}/offset.json\"\n\
             [tables]\ninclude = [\"{db}.*\"]\n\
             [http]\nlisten = \"{http}\"\n",
            parsed.username(),
            parsed.password().unwrap_or_default(),
            unique_server_id(),
            env(KAFKA),
            offsets.path().display(),
        )
        .expect("write config");
        Connector { config, offsets, http }
    }

    fn start(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_rowferry"))
            .args(["run", "--config"])
            .arg(self.config.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rowferry run")
    }

    fn offset(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.offsets.path().join("offset.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Sends SIGTERM and waits (bounded) for the exit code.
fn stop(child: &mut Child) -> Option<i32> {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "rowferry did not stop within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the stored offset names `gtid_part` (polling a file written by another process).
async fn offset_reaches(c: &Connector, want: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c.offset().and_then(|o| o["gtid_set"].as_str().map(&want)).unwrap_or(false) {
        assert!(Instant::now() < deadline, "offset never got there: {:?}", c.offset());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The topic's records as the stock Python client decodes them.
fn consume(c: &Connector, topic: &str, count: usize) -> Vec<serde_json::Value> {
    let out = Command::new(env("ROWFERRY_TEST_PYTHON"))
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/consume_avro.py"),
            &env(KAFKA),
            &format!("http://{}", c.http),
            topic,
        ])
        .arg(count.to_string())
        .output()
        .expect("python");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}

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
    offset_reaches(&connector, |g| g == now).await;

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
    offset_reaches(&connector, |g| g == after_first).await;
    assert_eq!(stop(&mut child), Some(0), "graceful shutdown exits 0");
    let stored = connector.offset().expect("offset");
    assert_eq!(stored["gtid_set"], after_first, "the final commit is the last acked transaction");

    // Restart: only the new change arrives after the old ones; nothing twice.
    let mut child = connector.start();
    admin(&url, &[format!("INSERT INTO {db}.c VALUES (3, 'c', 3)")]).await;
    let after_second = current_gtid_text(&url).await;
    offset_reaches(&connector, |g| g == after_second).await;
    let records = consume(&connector, &format!("{db}.{db}.c"), 6);
    assert_eq!(stop(&mut child), Some(0));

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
