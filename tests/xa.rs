//! XA transactions through `rowferry run`, on both servers, read back with the stock Python client.
//!
//! A two-phase XA transaction's rows are published at its `XA COMMIT`, after the transactions
//! that committed between its PREPARE and its COMMIT; an `XA ROLLBACK` publishes nothing; a
//! one-phase `XA COMMIT … ONE PHASE` is an ordinary transaction. While a transaction is prepared,
//! the stored offset stays before it: a stop, an `XA COMMIT` while rowferry is down, and a
//! restart still publish its rows (the transactions after the PREPARE come again: at least once).
//! A snapshot (initial, or incremental through `rowferry snapshot --tables`) that starts while an
//! XA transaction is prepared (whose rows it cannot see) warns, naming it.
//!
//! Each XA transaction is decided on the session that prepared it. On MariaDB a prepared
//! transaction stays attached to its session until the server has finished that session's
//! disconnect, which it does after the client has gone: a decision from another session in that
//! window answers XAER_NOTA or, a few times in a hundred, succeeds and leaves an InnoDB
//! transaction behind that holds the rows' locks and that `XA RECOVER` does not list (MariaDB
//! 10.11 and 11.8; docs/environment.md).

mod common;

use common::connector::{Connector, consume, covers, offset_reaches, snapshot_complete, stop};
use common::{MARIADB, MYSQL, admin, env, position_now, unique};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// A session of the test's own, kept open while its XA transactions are undecided.
async fn session(url: &str) -> mysql_async::Conn {
    mysql_async::Conn::from_url(url).await.expect("session")
}

async fn run(session: &mut mysql_async::Conn, statements: &[String]) {
    for sql in statements {
        session.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn ids(records: &[serde_json::Value]) -> Vec<i64> {
    records.iter().filter_map(|r| r["value"]["after"]["id"].as_i64()).collect()
}

fn xa(name: &str, db: &str, ids: &[i64], end: &str) -> Vec<String> {
    let mut statements = vec![format!("XA START '{name}'")];
    statements.extend(ids.iter().map(|id| format!("INSERT INTO {db}.t VALUES ({id}, {id})")));
    statements.push(format!("XA END '{name}'"));
    statements.push(end.replace("{name}", name));
    statements
}

async fn xa_transactions_are_published_at_their_commit(server: &str) {
    let url = env(server);
    let db = unique("xa");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")]).await;
    // Names unique per run: prepared XA transactions outlive sessions and are server-wide.
    let name = |n: &str| format!("{db}_{n}");
    let topic = format!("{db}.{db}.t");
    let connector = Connector::new(&url, &db);
    let mut child = connector.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &start)).await;

    // Prepared, then another transaction commits: only that one is published.
    let mut p1 = session(&url).await;
    run(&mut p1, &xa(&name("p1"), &db, &[1, 2], "XA PREPARE '{name}'")).await;
    let prepared_at = position_now(&url).await.to_string();
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (10, 10)")]).await;
    let after = position_now(&url).await.to_string();
    assert_eq!(ids(&consume(&connector, &topic, 1).await), [10], "the prepared rows are not published yet");
    assert_eq!(stop(&mut child).await, Some(0), "{}", connector.log());
    let stored = connector.offset().expect("offset")["gtid_set"].as_str().expect("set").to_string();
    assert!(covers(&stored, &start), "{stored} covers what came before");
    assert!(
        !covers(&stored, &prepared_at) && !covers(&stored, &after),
        "{stored} must stay before the prepared transaction ({prepared_at}) while it is undecided"
    );

    // Decided while rowferry is down; the restart reads the PREPARE again and publishes it.
    run(&mut p1, &[format!("XA COMMIT '{}'", name("p1"))]).await;
    p1.disconnect().await.expect("disconnect");
    let mut child = connector.start();
    // While it runs: a rollback, a one-phase commit, and a commit with a transaction in between.
    let mut xas = session(&url).await;
    run(&mut xas, &xa(&name("r1"), &db, &[20], "XA PREPARE '{name}'")).await;
    run(&mut xas, &[format!("XA ROLLBACK '{}'", name("r1"))]).await;
    run(&mut xas, &xa(&name("o1"), &db, &[30], "XA COMMIT '{name}' ONE PHASE")).await;
    run(&mut xas, &xa(&name("p2"), &db, &[40], "XA PREPARE '{name}'")).await;
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (41, 41)")]).await;
    run(&mut xas, &[format!("XA COMMIT '{}'", name("p2")), format!("INSERT INTO {db}.t VALUES (99, 99)")]).await;
    xas.disconnect().await.expect("disconnect");
    let end = position_now(&url).await.to_string();

    let records = consume(&connector, &topic, 8).await;
    assert_eq!(
        ids(&records),
        [10, 10, 1, 2, 30, 41, 40, 99],
        "10 once more (the restart began before the PREPARE), then each XA transaction at its commit, \
         the rolled-back one nowhere:\n{}",
        connector.log()
    );
    let gtids: Vec<&str> = records.iter().filter_map(|r| r["value"]["source"]["gtid"].as_str()).collect();
    assert_eq!(gtids[2], gtids[3], "the rows of one XA transaction carry one GTID: {gtids:?}");
    offset_reaches(&connector, |g| covers(g, &end)).await;
    assert_eq!(stop(&mut child).await, Some(0), "{}", connector.log());
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_xa_transactions_are_published_at_their_commit() {
    xa_transactions_are_published_at_their_commit(MARIADB).await;
}

#[tokio::test]
async fn mysql_xa_transactions_are_published_at_their_commit() {
    xa_transactions_are_published_at_their_commit(MYSQL).await;
}

async fn a_snapshot_warns_of_prepared_xa_transactions(server: &str) {
    let url = env(server);
    let db = unique("xasnap");
    let name = format!("{db}_w");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")]).await;
    let mut prepared = session(&url).await;
    run(&mut prepared, &xa(&name, &db, &[1], "XA PREPARE '{name}'")).await;
    let connector = Connector::new(&url, &db).with_snapshots();
    let mut child = connector.start();
    snapshot_complete(&connector, Duration::from_secs(60)).await;
    let log = connector.log();
    assert_eq!(stop(&mut child).await, Some(0), "{log}");
    run(&mut prepared, &[format!("XA ROLLBACK '{name}'")]).await;
    prepared.disconnect().await.expect("disconnect");
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
    assert!(log.contains("XA transactions are prepared on the source") && log.contains(&name), "{log}");
}

#[tokio::test]
async fn mariadb_a_snapshot_warns_of_prepared_xa_transactions() {
    a_snapshot_warns_of_prepared_xa_transactions(MARIADB).await;
}

#[tokio::test]
async fn mysql_a_snapshot_warns_of_prepared_xa_transactions() {
    a_snapshot_warns_of_prepared_xa_transactions(MYSQL).await;
}

async fn an_incremental_snapshot_warns_of_prepared_xa_transactions(server: &str) {
    let url = env(server);
    let db = unique("xainc");
    let name = format!("{db}_w");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")]).await;
    let connector = Connector::new(&url, &db).with_http("token = \"t0k\"");
    let mut child = connector.start();
    // Serving HTTP (the first offset is stored before the listener binds): `rowferry snapshot`
    // must find this connector, not run a snapshot of its own on the same port.
    rowferry::install_tls_provider();
    let ready = format!("http://{}/readyz", connector.http);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
        assert!(std::time::Instant::now() < deadline, "never ready:\n{}", connector.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut prepared = session(&url).await;
    run(&mut prepared, &xa(&name, &db, &[1], "XA PREPARE '{name}'")).await;
    let out = connector.cli(&["snapshot", "--tables", &format!("{db}.t")]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !connector.log().contains("this copy cannot see their rows") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = connector.log();
    assert_eq!(stop(&mut child).await, Some(0), "{log}");
    run(&mut prepared, &[format!("XA ROLLBACK '{name}'")]).await;
    prepared.disconnect().await.expect("disconnect");
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(log.contains("this copy cannot see their rows") && log.contains(&name), "{log}");
}

#[tokio::test]
async fn mariadb_an_incremental_snapshot_warns_of_prepared_xa_transactions() {
    an_incremental_snapshot_warns_of_prepared_xa_transactions(MARIADB).await;
}

#[tokio::test]
async fn mysql_an_incremental_snapshot_warns_of_prepared_xa_transactions() {
    an_incremental_snapshot_warns_of_prepared_xa_transactions(MYSQL).await;
}
