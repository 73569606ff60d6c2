//! Broker outage: while rowferry streams, its broker is killed (`kill -9`) and writes go on; after
//! a while the broker starts again on the same storage. During the outage rowferry stays up
//! (deliveries wait and are retried) and its stored offset never covers a transaction written
//! after the broker went away; once the broker is back, streaming resumes, every row arrives, and
//! a graceful stop exits 0.
//!
//! The test runs a broker of its own (the same nisshi binary as the shared one, with SQLite storage
//! in a temporary directory so that acknowledged records survive the kill), so the outage touches
//! no other test.

mod common;

use common::connector::{Connector, consume, covers, offset_reaches, stop};
use common::{MARIADB, MYSQL, admin, env, position_now, unique};
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A broker process on `port`, storing into `dir`.
struct Broker {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let child = Broker::spawn(&dir, port);
        Broker { dir, port, child }
    }

    fn spawn(dir: &tempfile::TempDir, port: u16) -> Child {
        let listener = format!("tcp://127.0.0.1:{port}");
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("broker.log")).expect("log");
        let child = Command::new(env("ROWFERRY_TEST_BROKER_BIN"))
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
            .args(["--storage-engine", "sqlite://broker.db"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the broker");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the broker did not listen on {port} within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        self.child.kill().expect("kill -9 the broker");
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.child = Broker::spawn(&self.dir, self.port);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Inserts rows `ids`, one transaction of one row each.
async fn insert(conn: &mut mysql_async::Conn, db: &str, ids: std::ops::RangeInclusive<i64>) {
    for id in ids {
        conn.query_drop(format!("INSERT INTO {db}.t VALUES ({id}, {})", id * 10)).await.expect("insert");
    }
}

async fn outage_loses_nothing(server: &str) {
    let url = env(server);
    let db = unique("outage");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")]).await;
    let topic = format!("{db}.{db}.t");
    let mut broker = Broker::start();
    let connector = Connector::new(&url, &db).with_kafka(&broker.addr());
    let mut child = connector.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &start)).await;
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("writer");

    // Before: acknowledged and committed.
    insert(&mut conn, &db, 1..=30).await;
    let before = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &before)).await;

    // During: the broker is gone. rowferry reads these rows but nothing can acknowledge them, so
    // for the whole outage the stored offset must not reach them, and rowferry must not give up.
    broker.kill();
    insert(&mut conn, &db, 31..=60).await;
    let during = position_now(&url).await.to_string();
    let outage_ends = Instant::now() + Duration::from_secs(4);
    while Instant::now() < outage_ends {
        let stored = connector.offset().and_then(|o| o["gtid_set"].as_str().map(String::from)).unwrap_or_default();
        assert!(!covers(&stored, &during), "offset {stored} covers writes no broker acknowledged");
        assert!(child.try_wait().expect("try_wait").is_none(), "rowferry exited in the outage:\n{}", connector.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // After: the broker is back; the queued records go out and streaming goes on.
    broker.restart();
    insert(&mut conn, &db, 61..=90).await;
    let after = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &after)).await;
    let records = consume(&connector, &topic, 0).await;
    assert_eq!(stop(&mut child).await, Some(0), "graceful stop:\n{}", connector.log());

    // Every row arrived with its values; count what was sent twice (retries across the outage).
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &records {
        let id = r["key"]["id"].as_i64().expect("key");
        assert_eq!(r["value"]["after"]["v"].as_i64(), Some(id * 10), "record {r}");
        *seen.entry(id).or_default() += 1;
    }
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (1..=90).collect::<Vec<_>>(), "every row, none lost");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("{} records for 90 rows, {duplicates} duplicates", records.len());
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_broker_outage_loses_nothing() {
    outage_loses_nothing(MARIADB).await;
}

#[tokio::test]
async fn mysql_broker_outage_loses_nothing() {
    outage_loses_nothing(MYSQL).await;
}
