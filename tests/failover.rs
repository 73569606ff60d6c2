//! Moving rowferry to another server with the same GTID history (a MariaDB replica of the source)
//! continues with nothing lost or repeated; pointing it at a server whose history lacks the stored
//! position stops it with a clear error instead of a silent jump.

mod common;

use common::connector::{Connector, consume, covers, exit_code, offset_reaches, stop};
use common::{MARIADB, MARIADB_11, admin, env, position_now, unique};
use rowferry::position::Position;
use std::time::{Duration, Instant};

/// The replica of each MariaDB (10.11 and 11.8).
const REPLICA: &str = "ROWFERRY_TEST_MARIADB_REPLICA_URL";
const REPLICA_11: &str = "ROWFERRY_TEST_MARIADB11_REPLICA_URL";

/// Waits (polling, bounded) until `url` has applied everything `primary` has.
async fn caught_up(url: &str, primary: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (Position::MariaDb(want), Position::MariaDb(have)) = (position_now(primary).await, position_now(url).await)
        else {
            panic!("MariaDB positions expected");
        };
        if want.is_subset(&have) {
            return;
        }
        assert!(Instant::now() < deadline, "replica at {have}, primary at {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn moves_to_a_replica_with_nothing_lost(primary: &str, replica: &str) {
    let (primary, replica) = (env(primary), env(replica));
    let db = unique("failover");
    admin(&primary, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]).await;
    let connector = Connector::new(&primary, &db);
    let mut child = connector.start();
    let now = position_now(&primary).await.to_string();
    offset_reaches(&connector, |g| covers(g, &now)).await;
    admin(&primary, &(1..=3).map(|i| format!("INSERT INTO {db}.t VALUES ({i})")).collect::<Vec<_>>()).await;
    let now = position_now(&primary).await.to_string();
    offset_reaches(&connector, |g| covers(g, &now)).await;
    assert_eq!(stop(&mut child).await, Some(0));

    // While rowferry is down, the primary moves on and the replica follows.
    admin(&primary, &(4..=6).map(|i| format!("INSERT INTO {db}.t VALUES ({i})")).collect::<Vec<_>>()).await;
    caught_up(&replica, &primary).await;

    connector.point_at(&replica);
    let mut child = connector.start();
    let now = position_now(&primary).await.to_string();
    offset_reaches(&connector, |g| covers(g, &now)).await;
    let records = consume(&connector, &format!("{db}.{db}.t"), 6).await;
    assert_eq!(stop(&mut child).await, Some(0));
    let ids: Vec<i64> = records.iter().filter_map(|r| r["key"]["id"].as_i64()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6], "each row exactly once, across the move");
    admin(&primary, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_moves_to_a_replica_with_nothing_lost() {
    moves_to_a_replica_with_nothing_lost(MARIADB, REPLICA).await;
}

#[tokio::test]
async fn mariadb_11_moves_to_a_replica_with_nothing_lost() {
    moves_to_a_replica_with_nothing_lost(MARIADB_11, REPLICA_11).await;
}

async fn refuses_a_server_without_the_stored_history(server: &str) {
    let primary = env(server);
    let db = unique("diverged");
    admin(&primary, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]).await;
    let connector = Connector::new(&primary, &db);
    let mut child = connector.start();
    admin(&primary, &[format!("INSERT INTO {db}.t VALUES (1)")]).await;
    let now = position_now(&primary).await.to_string();
    offset_reaches(&connector, |g| covers(g, &now)).await;
    assert_eq!(stop(&mut child).await, Some(0));

    // A server with another history: one that never ran the transactions of GTID domain 9 that
    // the stored offset (as if written against a different primary) includes.
    let mut before = connector.offset().expect("offset");
    let foreign = format!("{},9-9-5", before["gtid_set"].as_str().expect("gtid_set"));
    before["gtid_set"] = serde_json::Value::String(foreign);
    std::fs::write(connector.offsets.path().join("offset.json"), before.to_string()).expect("write offset");
    let code = exit_code(&mut connector.start(), Duration::from_secs(60), "refused the foreign position").await;
    assert_eq!(code, Some(1));
    let stderr = connector.log();
    assert!(stderr.contains("does not contain rowferry's position: 9-9-5"), "{stderr}");
    assert!(stderr.contains("diverged"), "{stderr}");
    assert_eq!(connector.offset().expect("offset"), before, "the stored offset is untouched");
    admin(&primary, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_refuses_a_server_without_the_stored_history() {
    refuses_a_server_without_the_stored_history(MARIADB).await;
}

#[tokio::test]
async fn mariadb_11_refuses_a_server_without_the_stored_history() {
    refuses_a_server_without_the_stored_history(MARIADB_11).await;
}
