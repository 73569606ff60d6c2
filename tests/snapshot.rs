//! Snapshots end to end, on both servers:
//! * under a continuous concurrent write load (updates, inserts, deletes from several sessions),
//!   the initial snapshot completes, and once the stream has caught up the latest record per key
//!   in Kafka equals the table, row for row;
//! * `kill -9` in the middle of a snapshot, then a restart: the copy resumes after the last
//!   durable chunk (no row at or before the stored boundary is copied again) and ends complete;
//! * MariaDB binlogs purged past the stored position: refused without `when_needed`, snapshotted
//!   again with it;
//! * `rowferry snapshot --then-stream` bootstraps, then keeps streaming;
//! * a table with no key at all, copied while a session keeps inserting into it: every row of the
//!   table is in its topic (exactly once on MariaDB, whose snapshot position is exact).

mod common;

use common::connector::{Connector, consume, covers, exit_code, offset_reaches, snapshot_complete};
use common::{MARIADB, MYSQL, admin, env, position_now, unique};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ROWS: i64 = 20_000;

async fn seed(url: &str, db: &str, rows: i64) {
    admin(
        url,
        &[
            format!("CREATE DATABASE {db}"),
            format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(64) NOT NULL)"),
        ],
    )
    .await;
    let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
    for start in (1..=rows).step_by(2000) {
        let values: Vec<String> =
            (start..(start + 2000).min(rows + 1)).map(|i| format!("({i}, {i}, 'seed-{i}')")).collect();
        conn.query_drop(format!("INSERT INTO {db}.t VALUES {}", values.join(","))).await.expect("seed");
    }
}

/// Writes until `stop`: small transactions of updates, upserts and deletes on random keys
/// (some beyond the seeded range). Counts the transactions.
async fn writer(url: String, db: String, seed: u64, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) {
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("connect");
    let mut x = seed;
    let mut next = move |n: i64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as i64 + 1
    };
    while !stop.load(Ordering::Relaxed) {
        let (a, b, c) = (next(ROWS + 2000), next(ROWS + 2000), next(ROWS + 2000));
        let statements = [
            "START TRANSACTION".to_string(),
            format!("UPDATE {db}.t SET k = k + 1, c = CONCAT('u-', k + 1) WHERE id = {a}"),
            format!("INSERT INTO {db}.t VALUES ({b}, 0, 'new') ON DUPLICATE KEY UPDATE k = k + 7, c = 'upsert'"),
            format!("DELETE FROM {db}.t WHERE id = {c} AND k % 5 = 0"),
            "COMMIT".to_string(),
        ];
        for s in statements {
            // Deadlocks between the writers are expected; the transaction is simply dropped.
            if conn.query_drop(&s).await.is_err() {
                let _ = conn.query_drop("ROLLBACK").await;
                break;
            }
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The table as `id → (k, c)`.
async fn table(url: &str, db: &str) -> BTreeMap<i64, (i64, String)> {
    let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
    let rows: Vec<(i64, i64, String)> = conn.query(format!("SELECT id, k, c FROM {db}.t")).await.expect("select");
    rows.into_iter().map(|(id, k, c)| (id, (k, c))).collect()
}

/// The latest record per key in the table's topic (deletes and tombstones remove the key), and
/// the count of records per op.
fn latest(records: &[Value]) -> (BTreeMap<i64, (i64, String)>, BTreeMap<String, usize>) {
    let mut state = BTreeMap::new();
    let mut ops = BTreeMap::new();
    for r in records {
        let Some(id) = r["key"]["id"].as_i64() else { continue };
        let value = &r["value"];
        if value.is_null() {
            state.remove(&id);
            continue;
        }
        *ops.entry(value["op"].as_str().unwrap_or("?").to_string()).or_insert(0) += 1;
        match value["after"].as_object() {
            Some(after) => {
                let k = after["k"].as_i64().expect("k");
                let c = after["c"].as_str().expect("c").to_string();
                state.insert(id, (k, c));
            }
            None => {
                state.remove(&id);
            }
        }
    }
    (state, ops)
}

fn assert_same(what: &str, kafka: &BTreeMap<i64, (i64, String)>, table: &BTreeMap<i64, (i64, String)>) {
    let wrong: Vec<String> = table
        .iter()
        .filter(|(id, row)| kafka.get(id) != Some(row))
        .map(|(id, row)| format!("{id}: table {row:?}, kafka {:?}", kafka.get(id)))
        .chain(kafka.keys().filter(|id| !table.contains_key(id)).map(|id| format!("{id}: only in kafka")))
        .take(10)
        .collect();
    assert!(wrong.is_empty(), "{what}: latest per key differs from the table:\n{}", wrong.join("\n"));
    assert_eq!(kafka.len(), table.len());
}

async fn under_load(server: &str) {
    let url = env(server);
    let db = unique("snapload");
    seed(&url, &db, ROWS).await;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..3)
        .map(|i| tokio::spawn(writer(url.clone(), db.clone(), 0x9E37_79B9 + i, Arc::clone(&stop), Arc::clone(&count))))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < 50 {
        assert!(Instant::now() < deadline, "the writers made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Small chunks: many windows, each overlapping the writes.
    let connector =
        Connector::new(&url, &db).with_snapshots().with_extra("[snapshot]\nchunk_rows = 300\nchunk_target_ms = 20\n");
    let mut child = connector.start();
    let before = count.load(Ordering::Relaxed);
    snapshot_complete(&connector, Duration::from_secs(120)).await;
    let during = count.load(Ordering::Relaxed) - before;
    assert!(during >= 100, "the load kept writing while the snapshot ran ({during} transactions)");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let end = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &end)).await;
    let records = consume(&connector, &format!("{db}.{db}.t"), 0).await;
    let (kafka, ops) = latest(&records);
    assert!(ops.get("r").copied().unwrap_or(0) > (ROWS as usize) / 2, "snapshot records: {ops:?}");
    assert!(
        ops.get("u").copied().unwrap_or(0) > 0 && ops.get("c").copied().unwrap_or(0) > 0,
        "stream records: {ops:?}"
    );
    assert_same(server, &kafka, &table(&url, &db).await);
    // Chunks are placed in the stream while it keeps up with the writers, not read over and over
    // (a window registered only after its low mark was read was nearly always too late).
    let log = connector.log();
    let field = |name: &str| -> u64 {
        let line =
            log.lines().find(|l| l.contains("table copied")).unwrap_or_else(|| panic!("no 'table copied':\n{log}"));
        let at = line.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in {line}")) + name.len() + 1;
        line[at..].split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).expect("number")
    };
    let (chunks, retried) = (field("chunks"), field("retried"));
    assert!(retried * 4 <= chunks, "{retried} of {chunks} chunks were read again");
    common::connector::stop(&mut child).await;
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_snapshot_under_write_load_ends_with_the_table_in_kafka() {
    under_load(MARIADB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_snapshot_under_write_load_ends_with_the_table_in_kafka() {
    under_load(MYSQL).await;
}

async fn resume_after_kill(server: &str) {
    let url = env(server);
    let db = unique("snapkill");
    let rows = 40_000;
    seed(&url, &db, rows).await;
    // Slow enough to be killed in the middle: 1000-row chunks at 8000 rows/s.
    let connector = Connector::new(&url, &db)
        .with_snapshots()
        .with_extra("[snapshot]\nchunk_rows = 1000\nmax_rows_per_sec = 8000\n");
    let mut child = connector.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    let boundary = loop {
        let progress = connector.offset().and_then(|o| o["snapshot"]["tables"][format!("{db}.t")].as_object().cloned());
        if let Some(p) = progress
            && p.get("rows").and_then(Value::as_u64).unwrap_or(0) >= 5000
        {
            break p["after"][0]["Int"].as_i64().expect("stored boundary");
        }
        assert!(Instant::now() < deadline, "no progress stored: {:?}\n{}", connector.offset(), connector.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill().expect("kill -9");
    let _ = child.wait();
    // What was durable when it died (it may have stored a little more after we looked).
    let stored = connector.offset().expect("offset");
    let boundary = stored["snapshot"]["tables"][format!("{db}.t")]["after"][0]["Int"].as_i64().unwrap_or(boundary);
    assert!(boundary < rows, "killed before the end");
    let restarted_ms = rowferry::ops::now_ms() as i64;
    let mut child = connector.start();
    snapshot_complete(&connector, Duration::from_secs(120)).await;
    assert!(connector.log().contains("resuming the snapshot in progress"), "{}", connector.log());
    // (The embedded registry the consumer reads schemas from is the connector's.)
    let records = consume(&connector, &format!("{db}.{db}.t"), 0).await;
    common::connector::stop(&mut child).await;
    let again: Vec<i64> = records
        .iter()
        .filter(|r| r["value"]["op"] == "r" && r["value"]["source"]["ts_ms"].as_i64().unwrap_or(0) >= restarted_ms)
        .filter_map(|r| r["key"]["id"].as_i64())
        .collect();
    assert!(!again.is_empty(), "the second run copied the rest");
    let min = again.iter().min().copied().unwrap_or_default();
    assert!(min > boundary, "the second run copied row {min} again, at or before the stored boundary {boundary}");
    let (kafka, _) = latest(&records);
    assert_same(server, &kafka, &table(&url, &db).await);
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_snapshot_resumes_after_kill_from_the_last_durable_chunk() {
    resume_after_kill(MARIADB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_snapshot_resumes_after_kill_from_the_last_durable_chunk() {
    resume_after_kill(MYSQL).await;
}

/// A private MariaDB started by the environment script (binlogs are purged in it, which a test
/// must not do to the shared servers); stopped when dropped.
struct PrivateMariaDb {
    name: String,
    url: String,
}

impl PrivateMariaDb {
    fn start() -> PrivateMariaDb {
        let name = unique("purge");
        let port = common::free_port();
        let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mariadb"))
            .args(["start", &name, &port.to_string()])
            .output()
            .expect("scripts/mariadb");
        assert!(out.status.success(), "scripts/mariadb start: {}", String::from_utf8_lossy(&out.stderr));
        PrivateMariaDb { name, url: String::from_utf8_lossy(&out.stdout).trim().to_string() }
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mariadb"))
            .args(["stop", &self.name])
            .output();
    }
}

/// `snapshot.mode = "when_needed"` on MariaDB: after the binlogs past the stored position are
/// purged, a start without it is refused with the purged error, and a start with it streams from
/// now and snapshots the table again, so every row of the table is in Kafka as it is now. (Rows
/// deleted in the purged binlogs keep their last record: nothing tells rowferry they are gone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_when_needed_snapshots_again_after_the_stored_position_was_purged() {
    let server = PrivateMariaDb::start();
    let url = server.url.clone();
    let db = unique("purged");
    seed(&url, &db, 100).await;
    let mut c = Connector::new(&url, &db).with_snapshots().with_extra("[snapshot]\nmode = \"when_needed\"\n");
    let mut child = c.start();
    snapshot_complete(&c, Duration::from_secs(60)).await;
    let now = position_now(&url).await.to_string();
    offset_reaches(&c, |g| covers(g, &now)).await;
    assert_eq!(common::connector::stop(&mut child).await, Some(0));

    // While rowferry is down: changes, then their binlog is purged.
    admin(
        &url,
        &[
            format!("UPDATE {db}.t SET k = k + 1000, c = 'changed' WHERE id <= 10"),
            format!("INSERT INTO {db}.t VALUES (101, 101, 'new'), (102, 102, 'new')"),
            format!("DELETE FROM {db}.t WHERE id = 50"),
            "FLUSH BINARY LOGS".to_string(),
        ],
    )
    .await;
    // MariaDB purges a binlog only once its checkpoint has moved to the next file, which happens
    // shortly after the flush: purge until the older files are gone.
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs: Vec<(String, u64)> = conn.query("SHOW BINARY LOGS").await.expect("binary logs");
        if logs.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the binlogs were never purged: {logs:?}");
        let newest = &logs.last().expect("a binlog").0;
        conn.query_drop(format!("PURGE BINARY LOGS TO '{newest}'")).await.expect("purge");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    c.snapshots = false;
    let code = exit_code(&mut c.start(), Duration::from_secs(60), "refused on a purged position").await;
    assert_eq!(code, Some(1), "{}", c.log());
    assert!(
        c.log().contains("the source has purged transactions rowferry has not read yet: domain 0: after"),
        "{}",
        c.log()
    );

    c.snapshots = true;
    let mut child = c.start();
    snapshot_complete(&c, Duration::from_secs(60)).await;
    let now = position_now(&url).await.to_string();
    offset_reaches(&c, |g| covers(g, &now)).await;
    assert!(c.log().contains("the stored position is gone from the source: streaming from now and snapshotting"));
    // Read while rowferry runs: it serves the schemas.
    let rows = table(&url, &db).await;
    let records = consume(&c, &format!("{db}.{db}.t"), 100 + rows.len()).await;
    assert_eq!(common::connector::stop(&mut child).await, Some(0));
    let (mut kafka, ops) = latest(&records);
    assert_eq!(ops.get("r"), Some(&(100 + rows.len())), "two snapshots and nothing else: {ops:?}");
    assert_eq!(kafka.remove(&50), Some((50, "seed-50".to_string())), "the deleted row keeps its last record");
    assert_same("after the purge", &kafka, &rows);
}

/// `rowferry snapshot --then-stream` with no connector running: the bootstrap snapshots the table
/// (whatever `snapshot.mode` says; here `never`) and the process keeps streaming afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_snapshot_then_stream_keeps_streaming_after_the_bootstrap() {
    let url = env(MARIADB);
    let db = unique("thenstream");
    seed(&url, &db, 50).await;
    let c = Connector::new(&url, &db);
    let mut child = c.start_command(&["snapshot", "--then-stream"]);
    snapshot_complete(&c, Duration::from_secs(60)).await;
    admin(
        &url,
        &[format!("INSERT INTO {db}.t VALUES (51, 51, 'after')"), format!("UPDATE {db}.t SET k = 100 WHERE id = 1")],
    )
    .await;
    let now = position_now(&url).await.to_string();
    offset_reaches(&c, |g| covers(g, &now)).await;
    let records = consume(&c, &format!("{db}.{db}.t"), 52).await;
    let (kafka, ops) = latest(&records);
    assert_eq!(ops, BTreeMap::from([("r".to_string(), 50), ("c".to_string(), 1), ("u".to_string(), 1)]));
    assert_same("snapshot, then the stream", &kafka, &table(&url, &db).await);
    assert_eq!(common::connector::stop(&mut child).await, Some(0));
}

/// A table with no key at all: seeded, then a writer inserts into it, one row per transaction,
/// for the whole copy. Every row of the table must be in the topic at the end. (Before the copy
/// held the stream, every routed row of the table marked the same empty key, and each chunk's
/// rows — all with that empty key — were dropped: the topic ended with the writer's rows only.)
async fn keyless_under_load(server: &str) {
    let url = env(server);
    let db = unique("keyless");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.k (n INT NOT NULL, v VARCHAR(20))")])
        .await;
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("connect");
    for start in (1..=ROWS).step_by(2000) {
        let values: Vec<String> = (start..(start + 2000).min(ROWS + 1)).map(|i| format!("({i}, 'seed')")).collect();
        conn.query_drop(format!("INSERT INTO {db}.k VALUES {}", values.join(","))).await.expect("seed");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let writer = {
        let (url, db, stop, count) = (url.clone(), db.clone(), Arc::clone(&stop), Arc::clone(&count));
        tokio::spawn(async move {
            let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("writer");
            let mut n = 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                conn.query_drop(format!("INSERT INTO {db}.k VALUES ({n}, 'new')")).await.expect("insert");
                count.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < 50 {
        assert!(Instant::now() < deadline, "the writer made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Batches of 1,000 rows: the copy is emitted in many pieces while the stream waits.
    let connector = Connector::new(&url, &db).with_snapshots().with_extra("[snapshot]\nchunk_rows = 1000\n");
    let mut child = connector.start();
    let before = count.load(Ordering::Relaxed);
    snapshot_complete(&connector, Duration::from_secs(120)).await;
    assert!(count.load(Ordering::Relaxed) - before >= 20, "the writer kept inserting while the table was copied");
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let end = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &end)).await;
    let records = consume(&connector, &format!("{db}.{db}.k"), 0).await;
    common::connector::stop(&mut child).await;

    let mut in_kafka: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &records {
        assert!(r["key"].is_null(), "a keyless table's records have no key: {r}");
        if let Some(n) = r["value"]["after"]["n"].as_i64() {
            *in_kafka.entry(n).or_default() += 1;
        }
    }
    let table: Vec<i64> = conn.query(format!("SELECT n FROM {db}.k ORDER BY n")).await.expect("select");
    let missing: Vec<&i64> = table.iter().filter(|n| !in_kafka.contains_key(n)).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {} rows missing from the topic, e.g. {missing:?}",
        table.iter().filter(|n| !in_kafka.contains_key(n)).count(),
        table.len()
    );
    let twice: Vec<(&i64, &usize)> = in_kafka.iter().filter(|(_, c)| **c > 1).collect();
    eprintln!("{server}: {} rows, {} records, {} rows twice", table.len(), records.len(), twice.len());
    // MariaDB's snapshot position is exact: each row once. MySQL's is gtid_executed read just
    // before the snapshot opened: a write committed in that round trip is in both (a handful).
    let allowed = if server == MARIADB { 0 } else { 20 };
    assert!(
        twice.len() <= allowed,
        "{} rows sent twice, e.g. {:?}",
        twice.len(),
        twice.iter().take(10).collect::<Vec<_>>()
    );
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_keyless_table_snapshot_under_writes_has_every_row() {
    keyless_under_load(MARIADB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_keyless_table_snapshot_under_writes_has_every_row() {
    keyless_under_load(MYSQL).await;
}
