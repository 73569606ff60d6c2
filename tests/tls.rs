//! The source connection over TLS, against both servers (each has a private CA, made by the
//! environment scripts): `check` passes with `verify_identity` for a user that may only connect
//! over TLS, the same user without TLS is refused, another server's CA is refused with a clear
//! line, and the binlog stream itself runs over TLS.

mod common;

use common::{KAFKA, MARIADB, MYSQL, admin, committed_until, config_for, env, position_now, rowferry, unique};
use mysql_async::prelude::Queryable;
use rowferry::config::{Secret, TlsMode, TlsSettings};
use rowferry::reader::{ReaderOptions, TxnEvent};
use std::time::Duration;

const PW: &str = "tls-pw";

fn ca(server: &str) -> String {
    env(if server == MYSQL { "ROWFERRY_TEST_MYSQL_CA" } else { "ROWFERRY_TEST_MARIADB_CA" })
}

fn other(server: &str) -> &'static str {
    if server == MYSQL { MARIADB } else { MYSQL }
}

fn check_with(server: &str, user: &str, tls: &str) -> common::Outcome {
    let mut config = config_for(&env(server), user, PW, &env(KAFKA));
    config.push_str(&format!("\n[source.tls]\n{tls}\n"));
    rowferry(&["check"], &config)
}

async fn tls(server: &str) {
    let url = env(server);
    let user = unique("rf_tls");
    let client = if server == MYSQL { "REPLICATION CLIENT" } else { "BINLOG MONITOR" };
    admin(
        &url,
        &[
            format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{PW}' REQUIRE SSL"),
            format!("GRANT REPLICATION SLAVE, {client}, SELECT ON *.* TO '{user}'@'%'"),
        ],
    )
    .await;

    let out = check_with(server, &user, &format!("mode = \"verify_identity\"\nca_file = \"{}\"", ca(server)));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.contains("check passed"), "{}", out.stdout);

    // The account requires TLS, so the pass above was over TLS.
    let out = check_with(server, &user, "mode = \"disabled\"");
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stdout.starts_with("FAIL connection:"), "{}", out.stdout);

    let out = check_with(server, &user, &format!("mode = \"verify_ca\"\nca_file = \"{}\"", ca(other(server))));
    assert_eq!(out.code, Some(1), "{out:#?}");
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("FAIL connection:") && first.contains("invalid peer certificate"), "{}", out.stdout);
    assert!(first.ends_with("— fix: source.tls.ca_file must hold the CA that signed the server's certificate (and with tls.mode = \"verify_identity\" the certificate must name source.host)"), "{first}");

    // The binlog stream over TLS, as that user.
    let db = unique("tls");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]).await;
    let mut settings = common::source_settings(&url, common::unique_server_id(), None);
    settings.user = user;
    settings.password = Secret::new(PW);
    settings.tls =
        TlsSettings { mode: TlsMode::VerifyIdentity, ca_file: Some(ca(server).into()), client_identity: None };
    let (mut rx, _) = common::spawn_reader(settings, ReaderOptions::default(), position_now(&url).await);
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("writer connection");
    conn.query_drop(format!("INSERT INTO {db}.t VALUES (1), (2)")).await.expect("insert");
    let txns = committed_until(&mut rx, &db, Duration::from_secs(60), |t| !t.is_empty()).await;
    let rows = txns[0].1.iter().filter(|e| matches!(e, TxnEvent::Row(_))).count();
    assert_eq!(rows, 2, "both rows arrive over the TLS stream");
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_over_tls() {
    tls(MARIADB).await;
}

#[tokio::test]
async fn mysql_over_tls() {
    tls(MYSQL).await;
}
