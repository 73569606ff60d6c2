//! Shared helpers for the integration tests.
//!
//! Servers come from the environment that `scripts/test` starts (`scripts/env up`), as URLs in
//! environment variables. A test that needs a server and does not find its variable fails with a
//! message saying how to get one: a skipped test would pass without checking anything.
//! Every test creates its own users, databases and topics (names from [`unique`]), so tests run
//! in parallel against the same servers.
#![allow(dead_code)]

use mysql_async::prelude::Queryable;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Admin URL of the good MariaDB 10.11.
pub const MARIADB: &str = "ROWFERRY_TEST_MARIADB_URL";
/// Admin URL of a MariaDB started with binlog_format=STATEMENT and binlog_row_metadata=MINIMAL.
pub const MARIADB_BAD: &str = "ROWFERRY_TEST_MARIADB_BAD_URL";
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
/// ROWFERRY__ variables.
pub fn rowferry(args: &[&str], config: &str) -> Outcome {
    let mut file = tempfile::NamedTempFile::new().expect("temp config");
    file.write_all(config.as_bytes()).expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rowferry"));
    cmd.args(args).arg("--config").arg(file.path());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ROWFERRY")) {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("run rowferry");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A config for `user`/`pw` on the server of `url`, Kafka from the environment.
pub fn config_for(url: &str, user: &str, pw: &str, kafka: &str) -> String {
    let (host, port) = host_port(url);
    format!(
        "[source]\nhost = \"{host}\"\nport = {port}\nuser = \"{user}\"\npassword = \"{pw}\"\nserver_id = 5401\n\n\
         [kafka]\nbootstrap_servers = \"{kafka}\"\n"
    )
}
