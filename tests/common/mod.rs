//! Shared helpers for the integration tests.
//!
//! Servers come from the environment that `scripts/test` starts (`scripts/env up`), as URLs in
//! environment variables. A test that needs a server and does not find its variable fails with a
//! message saying how to get one: a skipped test would pass without checking anything.
//! Every test creates its own users, databases and topics (names from [`unique`]), so tests run
//! in parallel against the same servers.
#![allow(dead_code)]

use mysql_async::prelude::Queryable;
use std::io::{Read, Seek, Write};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Admin URL of the good MariaDB 10.11.
pub const MARIADB: &str = "ROWFERRY_TEST_MARIADB_URL";
/// Admin URL of a MariaDB started with binlog_format=STATEMENT and binlog_row_metadata=MINIMAL.
pub const MARIADB_BAD: &str = "ROWFERRY_TEST_MARIADB_BAD_URL";
/// Admin URL of a MariaDB 11.8 (Debian sid), set up as the good MariaDB 10.11 is.
pub const MARIADB_11: &str = "ROWFERRY_TEST_MARIADB11_URL";
/// Admin URL of a MariaDB 11.8 started with binlog_format=STATEMENT and binlog_row_metadata=MINIMAL.
pub const MARIADB_11_BAD: &str = "ROWFERRY_TEST_MARIADB11_BAD_URL";
/// Admin URL of the good MySQL 9.7.
pub const MYSQL: &str = "ROWFERRY_TEST_MYSQL_URL";
/// Admin URL of a MySQL started with binlog_format=STATEMENT and binlog_row_metadata=MINIMAL.
pub const MYSQL_BAD: &str = "ROWFERRY_TEST_MYSQL_BAD_URL";
/// Kafka bootstrap servers of the test broker.
pub const KAFKA: &str = "ROWFERRY_TEST_KAFKA";

/// The value of one of the variables above.
pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the integration tests through scripts/test, which starts the servers")
    })
}

/// A port for a server or a connector a test starts: free now, below the kernel's ephemeral range
/// (so no client socket takes it before the server binds it) and never handed out twice in this
/// process (tests run in parallel threads). `bind("127.0.0.1:0")` and closing is not enough: the
/// kernel may give the same port to the next test's `bind(0)` before the first server binds it —
/// two connectors once shared an HTTP port that way, and one test's requests reached the other's.
pub fn free_port() -> u16 {
    kafka::port_block(1)
}

/// A name no other test (or earlier run) uses: `prefix_<pid>_<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Host and port of an admin URL.
pub fn host_port(url: &str) -> (String, u16) {
    let parsed = url::Url::parse(url).expect("server URL");
    (parsed.host_str().expect("host").to_string(), parsed.port().unwrap_or(3306))
}

/// Runs SQL statements as the admin of `url`.
pub async fn admin(url: &str, statements: &[String]) {
    let mut conn = mysql_async::Conn::from_url(url).await.expect("admin connection");
    for sql in statements {
        conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn.disconnect().await.expect("disconnect");
}

/// Creates user `name`@`%` with password `pw` and the given global privileges.
pub async fn create_user(url: &str, name: &str, pw: &str, privileges: &str) {
    admin(
        url,
        &[
            format!("CREATE USER '{name}'@'%' IDENTIFIED BY '{pw}'"),
            format!("GRANT {privileges} ON *.* TO '{name}'@'%'"),
        ],
    )
    .await;
}

/// What a rowferry invocation printed and returned.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the rowferry binary with `args` and a config file holding `config`, with no inherited
/// ROWFERRY__ variables. A command still running after two minutes is killed and fails the test
/// (a `run` that should have refused to start must not hang the suite).
pub fn rowferry(args: &[&str], config: &str) -> Outcome {
    let mut file = tempfile::NamedTempFile::new().expect("temp config");
    file.write_all(config.as_bytes()).expect("write config");
    let (stdout, stderr) = (tempfile::tempfile().expect("stdout file"), tempfile::tempfile().expect("stderr file"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rowferry"));
    cmd.args(args).arg("--config").arg(file.path());
    cmd.stdout(stdout.try_clone().expect("stdout")).stderr(stderr.try_clone().expect("stderr"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ROWFERRY")) {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().expect("run rowferry");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for rowferry") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("rowferry {args:?} still running after 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let read = |mut f: std::fs::File| {
        let mut bytes = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).and_then(|_| f.read_to_end(&mut bytes)).expect("read output");
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Outcome { code: status.code(), stdout: read(stdout), stderr: read(stderr) }
}

/// A config for `user`/`pw` on the server of `url`, Kafka from the environment.
pub fn config_for(url: &str, user: &str, pw: &str, kafka: &str) -> String {
    let (host, port) = host_port(url);
    format!(
        "[source]\nhost = \"{host}\"\nport = {port}\nuser = \"{user}\"\npassword = \"{pw}\"\nserver_id = 5401\n\n\
         [kafka]\nbootstrap_servers = \"{kafka}\"\n"
    )
}

pub mod audit;
pub mod connector;
pub mod kafka;
pub mod kill;
pub mod proxy;

use rowferry::config::{FlavorSetting, Secret, SourceSettings, TlsMode, TlsSettings};
use rowferry::position::Position;
use rowferry::reader::{Reader, ReaderOptions, TxnEvent};

/// Source settings for the admin of `url`, optionally through another host:port.
pub fn source_settings(url: &str, server_id: u32, via: Option<std::net::SocketAddr>) -> SourceSettings {
    let parsed = url::Url::parse(url).expect("server URL");
    let (host, port) = match via {
        Some(addr) => (addr.ip().to_string(), addr.port()),
        None => host_port(url),
    };
    SourceSettings {
        host,
        port,
        user: parsed.username().to_string(),
        password: Secret::new(parsed.password().unwrap_or_default()),
        server_id: std::num::NonZeroU32::new(server_id).expect("nonzero server_id"),
        flavor: FlavorSetting::Auto,
        connect_timeout: std::time::Duration::from_secs(10),
        tls: TlsSettings { mode: TlsMode::Disabled, ca_file: None, client_identity: None },
        semi_sync: false,
    }
}

/// A server_id no other test uses.
pub fn unique_server_id() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    10_000 + (std::process::id() % 10_000) * 100 + N.fetch_add(1, Ordering::Relaxed)
}

/// The server's current position ("now").
pub async fn position_now(url: &str) -> Position {
    let mut conn = mysql_async::Conn::from_url(url).await.expect("admin connection");
    let flavor = rowferry::reader::flavor(&mut conn).await.expect("flavor");
    let pos = rowferry::reader::current_position(&mut conn, flavor).await.expect("position");
    conn.disconnect().await.expect("disconnect");
    pos
}

/// Starts a reader from `start`; events arrive on the returned receiver.
pub fn spawn_reader(
    settings: SourceSettings,
    options: ReaderOptions,
    start: Position,
) -> (tokio::sync::mpsc::Receiver<TxnEvent>, std::sync::Arc<rowferry::reader::ReaderStats>) {
    // The reader's warnings (reconnects) show up in a failing test's output.
    rowferry::logging::init(rowferry::config::LogFormat::Human, "warn");
    let (tx, rx) = tokio::sync::mpsc::channel::<TxnEvent>(256);
    let reader = Reader::new(settings, options);
    let stats = reader.stats();
    tokio::spawn(async move {
        let result = reader.run(start, tx).await;
        if let Err(e) = &result {
            eprintln!("reader stopped: {e}");
        }
        result
    });
    (rx, stats)
}

/// Committed transactions, as assembled: (gtid text, events between Begin and Commit).
pub type Txn = (String, Vec<TxnEvent>);

/// Whether an event concerns database `db` (tests share servers, so each looks only at its own).
pub fn about(event: &TxnEvent, db: &str) -> bool {
    match event {
        TxnEvent::Row(r) => r.table.db == db,
        TxnEvent::Statement { db: d, sql } => d == db || sql.contains(db),
        _ => false,
    }
}

/// Receives events until `done` says the committed transactions so far are enough, or fails after
/// `limit`. Only transactions with an event about `db` are kept; transactions voided by `Abort`
/// are dropped; heartbeats are ignored.
pub async fn committed_until(
    rx: &mut tokio::sync::mpsc::Receiver<TxnEvent>,
    db: &str,
    limit: std::time::Duration,
    done: impl Fn(&[Txn]) -> bool,
) -> Vec<Txn> {
    let mut txns: Vec<Txn> = Vec::new();
    let mut open: Option<Txn> = None;
    let deadline = tokio::time::Instant::now() + limit;
    while !done(&txns) {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {limit:?}; {} transactions so far", txns.len()))
            .expect("reader stopped (its error is printed above)");
        match event {
            TxnEvent::Begin { gtid, .. } => open = Some((gtid.map(|g| g.to_string()).unwrap_or_default(), Vec::new())),
            TxnEvent::Commit { .. } => {
                let txn = open.take().expect("commit without begin");
                if txn.1.iter().any(|e| about(e, db)) {
                    txns.push(txn);
                }
            }
            TxnEvent::Abort => open = None,
            TxnEvent::Heartbeat | TxnEvent::Ack(_) => {}
            other => open.as_mut().expect("event outside a transaction").1.push(other),
        }
    }
    txns
}
