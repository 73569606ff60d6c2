//! Semi-sync replica mode (`source.semi_sync = true`) against private primaries with semi-sync on
//! and `AFTER_SYNC` (MySQL 9.7 with its source plugin, MariaDB 10.11 built in): the primary's
//! COMMIT returns only once rowferry has the transaction in Kafka.
//!
//! The judge of "in Kafka" is the broker itself: right after a COMMIT returns, the topic's high
//! watermarks (what a consumer can read now) already count the transaction's record, and the
//! records read back are the rows written; after a `kill -9` of rowferry, every row whose COMMIT
//! had returned is readable `read_committed` before any restart (exactly-once: only a committed
//! Kafka transaction gets there). The primary's own counters tell whether it waited for an ACK
//! (`yes_tx`) or timed out and committed without one (`no_tx`).
//!
//! Shown to fail: with `semi_sync = false` the commit and kill tests fail (the COMMIT returns
//! before rowferry has even read the transaction); with the ACK sent on the records' acks instead
//! of the Kafka commit, the exactly-once kill test; with the hold ignored, the stopped-table test.

mod common;

use common::connector::{Connector, Store, consume, covers, offset_reaches, stop};
use common::kafka::read_to_end;
use common::{admin, env, position_now, unique};
use mysql_async::prelude::Queryable;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
enum Flavor {
    MySql,
    MariaDb,
}

/// A private primary with semi-sync on (AFTER_SYNC, `timeout_ms`), stopped when dropped: the
/// shared servers must not make every other test's commits wait.
struct Primary {
    flavor: Flavor,
    name: String,
    url: String,
}

impl Primary {
    fn start(flavor: Flavor, timeout_ms: u64) -> Primary {
        let name = unique("semisync");
        let port = common::free_port();
        let args: Vec<String> = match flavor {
            Flavor::MySql => vec![
                "--plugin-load-add=semisync_source.so".into(),
                "--rpl-semi-sync-source-enabled=ON".into(),
                "--rpl-semi-sync-source-wait-point=AFTER_SYNC".into(),
                format!("--rpl-semi-sync-source-timeout={timeout_ms}"),
            ],
            Flavor::MariaDb => vec![
                "--rpl-semi-sync-master-enabled=ON".into(),
                "--rpl-semi-sync-master-wait-point=AFTER_SYNC".into(),
                format!("--rpl-semi-sync-master-timeout={timeout_ms}"),
            ],
        };
        let out = std::process::Command::new(Primary::script(flavor))
            .args(["start", &name, &port.to_string()])
            .args(&args)
            .output()
            .expect("start script");
        assert!(out.status.success(), "start: {}", String::from_utf8_lossy(&out.stderr));
        Primary { flavor, name, url: String::from_utf8_lossy(&out.stdout).trim().to_string() }
    }

    fn script(flavor: Flavor) -> &'static str {
        match flavor {
            Flavor::MySql => concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mysql"),
            Flavor::MariaDb => concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mariadb"),
        }
    }

    /// A semi-sync status counter or flag (`yes_tx`, `no_tx`, `status`, `clients`).
    async fn status(&self, conn: &mut mysql_async::Conn, what: &str) -> String {
        let prefix = match self.flavor {
            Flavor::MySql => "Rpl_semi_sync_source_",
            Flavor::MariaDb => "Rpl_semi_sync_master_",
        };
        let row: Option<(String, String)> =
            conn.query_first(format!("SHOW GLOBAL STATUS LIKE '{prefix}{what}'")).await.expect("status");
        row.map(|(_, v)| v).unwrap_or_else(|| panic!("no status {prefix}{what}"))
    }

    async fn count(&self, conn: &mut mysql_async::Conn, what: &str) -> u64 {
        self.status(conn, what).await.parse().expect("a number")
    }

    async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(self.url.as_str()).await.expect("connect")
    }

    /// Writes to table `w` until the primary waits for ACKs again (it switches semi-sync back
    /// on once its semi-sync replica has caught up) and one write was ACKed.
    async fn until_semi_sync(&self, conn: &mut mysql_async::Conn, db: &str, c: &Connector) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut id = 0u64;
        loop {
            let yes = self.count(conn, "yes_tx").await;
            id += 1;
            conn.query_drop(format!("INSERT INTO {db}.w VALUES ({}) ON DUPLICATE KEY UPDATE id = id", id))
                .await
                .expect("insert");
            if self.status(conn, "status").await == "ON" && self.count(conn, "yes_tx").await > yes {
                return;
            }
            assert!(Instant::now() < deadline, "the primary never waited for rowferry's ACK; log:\n{}", c.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Primary {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Primary::script(self.flavor)).args(["stop", &self.name]).output();
    }
}

/// Database `db` with the data table `t` and a warm-up table `w`, and a semi-sync connector.
async fn setup(primary: &Primary, db: &str) -> Connector {
    admin(
        &primary.url,
        &[
            format!("CREATE DATABASE {db}"),
            format!("CREATE TABLE {db}.t (id BIGINT PRIMARY KEY, v VARCHAR(20))"),
            format!("CREATE TABLE {db}.w (id BIGINT PRIMARY KEY)"),
        ],
    )
    .await;
    Connector::new(&primary.url, db).with_source_keys("semi_sync = true").with_http("token = \"t0k\"")
}

/// What is in `topic` now: the sum of its partitions' high watermarks (`read_uncommitted`: every
/// record written; `read_committed`: up to the last stable offset).
struct Watermarks {
    consumer: BaseConsumer,
    topic: String,
    partitions: Vec<i32>,
}

impl Watermarks {
    fn new(topic: &str, isolation: &str) -> Watermarks {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", env("ROWFERRY_TEST_KAFKA"))
            .set("isolation.level", isolation)
            .create()
            .expect("client");
        Watermarks { consumer, topic: topic.to_string(), partitions: Vec::new() }
    }

    fn records(&mut self) -> Result<i64, rdkafka::error::KafkaError> {
        if self.partitions.is_empty() {
            let metadata = self.consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(10)).expect("metadata");
            self.partitions = metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if self.partitions.is_empty() {
                return Ok(0);
            }
        }
        let mut sum = 0;
        for &p in &self.partitions {
            sum += self.consumer.fetch_watermarks(&self.topic, p, Duration::from_secs(10))?.1;
        }
        Ok(sum)
    }
}

/// The `id` of a record key (`{"id": long}` in the Confluent wire format: magic byte, schema id,
/// then the Avro zig-zag varint).
fn key_id(key: &[u8]) -> Option<i64> {
    let (mut value, mut shift) = (0u64, 0);
    for &b in key.get(5..)? {
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
        shift += 7;
    }
    None
}

/// Every `id` in `topic`'s record keys, read `read_committed` to the end (no registry needed:
/// rowferry may be dead).
fn ids_in(topic: &str) -> BTreeSet<i64> {
    use rdkafka::message::Message;
    let mut ids = BTreeSet::new();
    read_to_end(&env("ROWFERRY_TEST_KAFKA"), topic, "read_committed", |m| {
        ids.insert(m.key().and_then(key_id).expect("an Avro key"));
    });
    ids
}

async fn post(c: &Connector, path: &str) {
    rowferry::install_tls_provider();
    let status = reqwest::Client::new()
        .post(format!("http://{}{path}", c.http))
        .bearer_auth("t0k")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(status, 200, "POST {path}");
}

/// `commits` autocommit INSERTs, each checked the moment its COMMIT returns: the topic already
/// holds its record (exactly-once: written — a committed Kafka transaction becomes visible to
/// `read_committed` clients once the broker has written its markers, which the coordinator does
/// after answering the commit; that the ACK waits for the commit is the kill test's to show);
/// then (at-least-once) an XA transaction with a commit beside it between its PREPARE and its
/// COMMIT. The primary waited for an ACK every time (no `no_tx`), and the records read back are
/// the rows.
async fn commit_returns_after_kafka_has_it(flavor: Flavor, commits: i64, exactly_once: bool) {
    // A minute before the primary gives up on the ACK: the first row of `t` waits for its schema,
    // subject and topic, which took over 10 s once on a machine busy with the suite's other lane
    // (the COMMIT then returned without an ACK, as semi-sync does, and the test failed).
    let primary = Primary::start(flavor, 60_000);
    let db = unique("semi");
    let mut c = setup(&primary, &db).await;
    if exactly_once {
        c = c.with_store(Store::Kafka).with_kafka_keys("delivery = \"exactly_once\"\n");
    }
    let mut child = c.start();
    let mut conn = primary.conn().await;
    primary.until_semi_sync(&mut conn, &db, &c).await;
    let no_before = primary.count(&mut conn, "no_tx").await;
    let yes_before = primary.count(&mut conn, "yes_tx").await;
    let topic = format!("{db}.{db}.t");
    let mut visible = Watermarks::new(&topic, if exactly_once { "read_uncommitted" } else { "read_committed" });
    for i in 1..=commits {
        conn.query_drop(format!("INSERT INTO {db}.t VALUES ({i}, 'row {i}')")).await.expect("insert");
        let readable = match visible.records() {
            Ok(n) => n,
            Err(e) => {
                let no_tx = primary.count(&mut conn, "no_tx").await - no_before;
                panic!(
                    "after COMMIT {i}, {topic}'s watermarks: {e} ({no_tx} commits did not wait for an ACK); log:\n{}",
                    c.log()
                )
            }
        };
        assert!(
            readable >= i,
            "COMMIT {i} returned with only {readable} records readable in {topic}; log:\n{}",
            c.log()
        );
    }
    // XA (at-least-once): the PREPARE is ACKed once everything before it is in Kafka (its rows
    // are published at its COMMIT; the prepared transaction, whose offset waits for its
    // decision, does not hold later ACKs back), and the COMMIT once its rows are. (Exactly-once
    // commits no Kafka transaction while an XA transaction is prepared: docs/running.md.)
    let rows = if exactly_once { commits } else { commits + 2 };
    if !exactly_once {
        let (xa, beside) = (commits + 1, commits + 2);
        for sql in [
            "XA START 'semi'".to_string(),
            format!("INSERT INTO {db}.t VALUES ({xa}, 'xa')"),
            "XA END 'semi'".to_string(),
            "XA PREPARE 'semi'".to_string(),
        ] {
            conn.query_drop(sql).await.expect("XA");
        }
        let mut second = primary.conn().await;
        second.query_drop(format!("INSERT INTO {db}.t VALUES ({beside}, 'beside')")).await.expect("insert");
        assert!(
            visible.records().expect("watermarks") > commits,
            "a commit after the XA PREPARE returned before its record was readable"
        );
        conn.query_drop("XA COMMIT 'semi'").await.expect("XA COMMIT");
        assert!(visible.records().expect("watermarks") >= rows, "XA COMMIT returned before its record was readable");
    }
    let no_tx = primary.count(&mut conn, "no_tx").await - no_before;
    let yes_tx = primary.count(&mut conn, "yes_tx").await - yes_before;
    assert_eq!(no_tx, 0, "commits that did not wait for rowferry's ACK");
    assert!(yes_tx >= rows as u64, "only {yes_tx} commits waited for an ACK");
    let records = consume(&c, &topic, rows as usize).await;
    let ids: BTreeSet<i64> = records.iter().filter_map(|r| r["value"]["after"]["id"].as_i64()).collect();
    assert_eq!(ids, (1..=rows).collect::<BTreeSet<_>>());
    assert_eq!(stop(&mut child).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_commit_returns_only_once_kafka_has_it() {
    commit_returns_after_kafka_has_it(Flavor::MySql, 1000, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_commit_returns_only_once_kafka_has_it() {
    commit_returns_after_kafka_has_it(Flavor::MariaDb, 1000, false).await;
}

/// Exactly-once: every COMMIT waits for the Kafka transaction's commit (every
/// `transaction_interval_ms`, 100 by default); that it is the commit, not the records' acks, the
/// exactly-once kill test shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_exactly_once_commit_returns_only_once_its_records_are_written() {
    commit_returns_after_kafka_has_it(Flavor::MySql, 100, true).await;
}

/// Inserts a row into `t` and says whether the primary committed it without an ACK (after its
/// timeout).
async fn insert_timed_out(primary: &Primary, conn: &mut mysql_async::Conn, db: &str, id: i64) -> bool {
    let no = primary.count(conn, "no_tx").await;
    conn.query_drop(format!("INSERT INTO {db}.t VALUES ({id}, 'x')")).await.expect("insert");
    primary.count(conn, "no_tx").await > no
}

/// Paused (`POST /pause`) or killed, rowferry ACKs nothing: the next COMMIT waits for the
/// primary's timeout, which then commits without the ACK and goes asynchronous. Resumed or
/// restarted, rowferry catches up and the primary waits for its ACKs again, and a COMMIT returns
/// only once its record is in Kafka.
async fn falls_back_and_resumes(flavor: Flavor) {
    // Short enough to wait out twice; long enough that an ACK under the suite's load is never
    // late (the bench's semi-sync p99 is ~8 ms, its max ~30 ms).
    let primary = Primary::start(flavor, 3000);
    let db = unique("semifall");
    let c = setup(&primary, &db).await;
    let topic = format!("{db}.{db}.t");
    // `rowferry check` reports the primary's semi-sync settings (MariaDB's names are master_).
    let out = c.cli(&["check"]).await;
    let report = String::from_utf8_lossy(&out.stdout);
    let name = |v: &str| match flavor {
        Flavor::MySql => format!("rpl_semi_sync_source_{v}"),
        Flavor::MariaDb => format!("rpl_semi_sync_master_{v}"),
    };
    for line in [
        format!("ok   {}: expected ON, found ON", name("enabled")),
        format!("ok   {}: expected AFTER_SYNC, found AFTER_SYNC", name("wait_point")),
        format!(
            "ok   {}: expected ≥ 1000 ms (how long a COMMIT waits for an ACK before the primary goes asynchronous), found 3000 ms",
            name("timeout")
        ),
        match flavor {
            Flavor::MySql => "ok   rpl_semi_sync_source_wait_for_replica_count: expected 1".into(),
            Flavor::MariaDb => "ok   semi-sync replicas waited for: expected 1".into(),
        },
    ] {
        assert!(report.contains(&line), "no {line:?} in:\n{report}");
    }
    assert!(out.status.success(), "{report}");
    let mut child = c.start();
    let mut conn = primary.conn().await;
    primary.until_semi_sync(&mut conn, &db, &c).await;
    assert!(!insert_timed_out(&primary, &mut conn, &db, 1).await, "ACKed while streaming");

    post(&c, "/pause").await;
    assert!(insert_timed_out(&primary, &mut conn, &db, 2).await, "paused, yet the commit was ACKed");
    assert_eq!(primary.status(&mut conn, "status").await, "OFF");
    post(&c, "/resume").await;
    primary.until_semi_sync(&mut conn, &db, &c).await;
    assert!(!insert_timed_out(&primary, &mut conn, &db, 3).await, "not ACKed after the resume");
    assert!(
        Watermarks::new(&topic, "read_committed").records().expect("watermarks") >= 3,
        "row 3's COMMIT returned before its record was in Kafka"
    );

    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(insert_timed_out(&primary, &mut conn, &db, 4).await, "killed, yet the commit was ACKed");
    assert_eq!(primary.status(&mut conn, "status").await, "OFF");
    // The source drops the dead connection when it next writes to it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while primary.count(&mut conn, "clients").await > 0 {
        assert!(Instant::now() < deadline, "the killed rowferry is still a semi-sync client");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut child = c.start();
    primary.until_semi_sync(&mut conn, &db, &c).await;
    assert!(!insert_timed_out(&primary, &mut conn, &db, 5).await, "not ACKed after the restart");
    assert!(
        Watermarks::new(&topic, "read_committed").records().expect("watermarks") >= 5,
        "row 5's COMMIT returned before its record was in Kafka"
    );
    assert_eq!(primary.count(&mut conn, "clients").await, 1);
    let now = position_now(&primary.url).await.to_string();
    offset_reaches(&c, |g| covers(g, &now)).await;
    assert_eq!(ids_in(&topic), (1..=5).collect::<BTreeSet<_>>());
    assert_eq!(stop(&mut child).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_pause_and_kill_fall_back_and_semi_sync_resumes() {
    falls_back_and_resumes(Flavor::MySql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_pause_and_kill_fall_back_and_semi_sync_resumes() {
    falls_back_and_resumes(Flavor::MariaDb).await;
}

/// Writers commit rows as fast as they can; rowferry is killed with `kill -9` in the middle.
/// Every row whose COMMIT had returned before the kill is in Kafka after it, read
/// `read_committed` before any restart — exactly-once: in a committed Kafka transaction (one still
/// open when rowferry died stays invisible until the coordinator aborts it); after the restart
/// every committed row is.
async fn kill_under_load(flavor: Flavor, exactly_once: bool) {
    const WRITERS: i64 = 4;
    let primary = Primary::start(flavor, 5000);
    let db = unique("semikill");
    let mut c = setup(&primary, &db).await;
    if exactly_once {
        c = c.with_store(Store::Kafka).with_kafka_keys("delivery = \"exactly_once\"\n");
    }
    let topic = format!("{db}.{db}.t");
    let mut child = c.start();
    let mut conn = primary.conn().await;
    primary.until_semi_sync(&mut conn, &db, &c).await;

    let committed: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let halt = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (url, db, committed, halt) =
                (primary.url.clone(), db.clone(), Arc::clone(&committed), Arc::clone(&halt));
            tokio::spawn(async move {
                let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("connect");
                let mut n = 0;
                while !halt.load(Ordering::Relaxed) {
                    n += 1;
                    let id = w * 1_000_000 + n;
                    conn.query_drop(format!("INSERT INTO {db}.t VALUES ({id}, 'w')")).await.expect("insert");
                    committed.lock().expect("lock").push((id, Instant::now()));
                }
            })
        })
        .collect();
    // Until a good number of commits went through semi-sync.
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed.lock().expect("lock").len() < 500 {
        assert!(Instant::now() < deadline, "the writers are stuck; log:\n{}", c.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = Instant::now();
    child.kill().expect("kill -9");
    let _ = child.wait();
    let acknowledged: BTreeSet<i64> =
        committed.lock().expect("lock").iter().filter(|(_, at)| *at < killed_at).map(|(id, _)| *id).collect();
    // The coordinator writes a committed Kafka transaction's markers after it has answered the
    // commit: the last one's records become readable a moment later (a transaction left open by
    // the kill would stay unreadable for the whole transaction timeout, 60 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut in_kafka = ids_in(&topic);
    while !acknowledged.is_subset(&in_kafka) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        in_kafka = ids_in(&topic);
    }
    let missing: Vec<_> = acknowledged.difference(&in_kafka).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {} rows whose COMMIT returned before the kill are not in Kafka, e.g. {missing:?}",
        acknowledged.difference(&in_kafka).count(),
        acknowledged.len()
    );
    halt.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }

    let mut child = c.start();
    let now = position_now(&primary.url).await.to_string();
    offset_reaches(&c, |g| covers(g, &now)).await;
    let all: BTreeSet<i64> = committed.lock().expect("lock").iter().map(|(id, _)| *id).collect();
    let in_kafka = ids_in(&topic);
    assert!(all.is_subset(&in_kafka), "{} committed rows missing after the restart", all.difference(&in_kafka).count());
    assert_eq!(stop(&mut child).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_kill_9_under_load_loses_no_acknowledged_commit() {
    kill_under_load(Flavor::MySql, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_exactly_once_kill_9_under_load_loses_no_acknowledged_commit() {
    kill_under_load(Flavor::MySql, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_kill_9_under_load_loses_no_acknowledged_commit() {
    kill_under_load(Flavor::MariaDb, false).await;
}

/// A table stopped by a per-table error (here a row over the broker's `message.max.bytes`): its
/// transaction is never ACKed, so its COMMIT returns only after the primary's timeout, which then
/// goes asynchronous; the other tables keep streaming, and nothing after the stop is ACKed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_a_stopped_tables_transaction_is_never_acked() {
    let primary = Primary::start(Flavor::MySql, 3000);
    let db = unique("semistop");
    let c = setup(&primary, &db).await;
    admin(&primary.url, &[format!("CREATE TABLE {db}.big (id INT PRIMARY KEY, doc LONGTEXT)")]).await;
    let mut child = c.start();
    let mut conn = primary.conn().await;
    primary.until_semi_sync(&mut conn, &db, &c).await;
    assert!(!insert_timed_out(&primary, &mut conn, &db, 1).await, "ACKed while streaming");

    let no = primary.count(&mut conn, "no_tx").await;
    conn.query_drop(format!("INSERT INTO {db}.big VALUES (1, REPEAT('x', 2000000))")).await.expect("insert");
    assert_eq!(primary.count(&mut conn, "no_tx").await, no + 1, "the stopped table's commit was ACKed");
    let yes = primary.count(&mut conn, "yes_tx").await;
    for id in 2..=4 {
        conn.query_drop(format!("INSERT INTO {db}.t VALUES ({id}, 'after')")).await.expect("insert");
    }
    let topic = format!("{db}.{db}.t");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids_in(&topic) != (1..=4).collect::<BTreeSet<_>>() {
        assert!(Instant::now() < deadline, "the other table stopped too; log:\n{}", c.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(primary.count(&mut conn, "yes_tx").await, yes, "a commit after the stop was ACKed");
    assert_eq!(primary.status(&mut conn, "status").await, "OFF");
    assert!(c.log().contains("table stopped"), "{}", c.log());
    assert_eq!(stop(&mut child).await, Some(0));
}
