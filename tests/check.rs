//! `rowferry check` against the real servers: correct servers pass, each misconfiguration is named
//! with its exact line and fix, and the exit code says which.

mod common;

use common::{
    KAFKA, MARIADB, MARIADB_11, MARIADB_11_BAD, MARIADB_BAD, MYSQL, MYSQL_BAD, config_for, create_user, env, rowferry,
    unique,
};

const PW: &str = "check-pw";

fn client_privilege(server: &str) -> &'static str {
    if [MARIADB, MARIADB_BAD, MARIADB_11, MARIADB_11_BAD].contains(&server) {
        "BINLOG MONITOR"
    } else {
        "REPLICATION CLIENT"
    }
}

/// Creates a user with the given privileges on `server` and runs `check` as that user.
async fn check_as(server: &str, privileges: &str) -> (String, common::Outcome) {
    let url = env(server);
    let user = unique("rf_check");
    create_user(&url, &user, PW, privileges).await;
    let out = rowferry(&["check"], &config_for(&url, &user, PW, &env(KAFKA)));
    (user, out)
}

async fn correct_server_passes(server: &str) {
    let grants = format!("REPLICATION SLAVE, {}, SELECT", client_privilege(server));
    let (_, out) = check_as(server, &grants).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.contains("check passed"), "{}", out.stdout);
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
    assert!(out.stdout.contains("ok   kafka: expected brokers answering at"), "{}", out.stdout);
}

#[tokio::test]
async fn mariadb_correct_server_passes() {
    correct_server_passes(MARIADB).await;
}

#[tokio::test]
async fn mariadb_11_correct_server_passes() {
    correct_server_passes(MARIADB_11).await;
}

#[tokio::test]
async fn mysql_correct_server_passes() {
    correct_server_passes(MYSQL).await;
}

async fn mariadb_misconfigured_fails_with_exact_lines(server: &str) {
    let (_, out) = check_as(server, "REPLICATION SLAVE, BINLOG MONITOR, SELECT").await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    for want in [
        "FAIL binlog_format: expected ROW, found STATEMENT — fix: SET GLOBAL binlog_format = 'ROW'; \
         and add `binlog_format = ROW` under [mariadbd] in the server config",
        "FAIL binlog_row_metadata: expected FULL, found MINIMAL — fix: SET GLOBAL binlog_row_metadata = 'FULL'; \
         and add `binlog_row_metadata = FULL` under [mariadbd] in the server config",
        "ok   binlog_row_image: expected FULL, found FULL",
    ] {
        assert!(lines.contains(&want), "missing line {want:?} in\n{}", out.stdout);
    }
    assert!(out.stdout.contains("check failed: 2 of"), "{}", out.stdout);
}

#[tokio::test]
async fn mariadb_statement_format_and_minimal_metadata_fail_with_exact_lines() {
    mariadb_misconfigured_fails_with_exact_lines(MARIADB_BAD).await;
}

#[tokio::test]
async fn mariadb_11_statement_format_and_minimal_metadata_fail_with_exact_lines() {
    mariadb_misconfigured_fails_with_exact_lines(MARIADB_11_BAD).await;
}

#[tokio::test]
async fn mysql_statement_format_and_minimal_metadata_fail_with_exact_lines() {
    let (_, out) = check_as(MYSQL_BAD, "REPLICATION SLAVE, REPLICATION CLIENT, SELECT").await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    for want in [
        "FAIL binlog_format: expected ROW, found STATEMENT — fix: SET PERSIST binlog_format = 'ROW';",
        "FAIL binlog_row_metadata: expected FULL, found MINIMAL — fix: SET PERSIST binlog_row_metadata = 'FULL';",
    ] {
        assert!(lines.contains(&want), "missing line {want:?} in\n{}", out.stdout);
    }
}

async fn missing_replication_slave_is_named(server: &str) {
    let grants = format!("{}, SELECT", client_privilege(server));
    let (user, out) = check_as(server, &grants).await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    let want = format!(
        "FAIL REPLICATION SLAVE: expected granted, found missing — fix: GRANT REPLICATION SLAVE ON *.* TO '{user}'@'%';"
    );
    assert!(out.stdout.lines().any(|l| l == want), "missing {want:?} in\n{}", out.stdout);
    assert!(out.stdout.contains("check failed: 1 of"), "{}", out.stdout);
}

#[tokio::test]
async fn mariadb_user_without_replication_slave_fails() {
    missing_replication_slave_is_named(MARIADB).await;
}

#[tokio::test]
async fn mariadb_11_user_without_replication_slave_fails() {
    missing_replication_slave_is_named(MARIADB_11).await;
}

#[tokio::test]
async fn mysql_user_without_replication_slave_fails() {
    missing_replication_slave_is_named(MYSQL).await;
}

#[tokio::test]
async fn mysql_user_without_replication_client_or_select_fails() {
    let (user, out) = check_as(MYSQL, "REPLICATION SLAVE").await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    let want = format!(
        "FAIL REPLICATION CLIENT: expected granted, found missing — fix: GRANT REPLICATION CLIENT ON *.* TO '{user}'@'%';"
    );
    assert!(out.stdout.lines().any(|l| l == want), "missing {want:?} in\n{}", out.stdout);
    assert!(
        out.stdout.contains(
            "warn SELECT: expected SELECT on the tables matched by tables.include, found no matching table visible"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn wrong_password_is_a_failed_connection_line() {
    let url = env(MARIADB);
    let out = rowferry(&["check"], &config_for(&url, "root", "not-the-password", &env(KAFKA)));
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stdout.starts_with("FAIL connection: expected login to 127.0.0.1:"), "{}", out.stdout);
    assert!(out.stdout.contains("Access denied"), "{}", out.stdout);
    assert!(!out.stdout.contains("not-the-password") && !out.stderr.contains("not-the-password"));
}

#[test]
fn unreachable_kafka_fails_the_kafka_line() {
    // A port that was just free: nothing listens there.
    let port = common::free_port();
    let url = env(MARIADB);
    let out = rowferry(&["check"], &config_for(&url, "root", "rowferry", &format!("127.0.0.1:{port}")));
    assert_eq!(out.code, Some(1), "{out:#?}");
    let want = format!("FAIL kafka: expected brokers answering at 127.0.0.1:{port}, found no answer");
    assert!(out.stdout.lines().any(|l| l.starts_with(&want)), "missing {want:?} in\n{}", out.stdout);
}

#[test]
fn misspelt_librdkafka_property_is_named() {
    let url = env(MARIADB);
    let mut config = config_for(&url, "root", "rowferry", &env(KAFKA));
    config.push_str("\n[kafka.librdkafka]\n\"lingerr.ms\" = \"5\"\n");
    let out = rowferry(&["check"], &config);
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(
        out.stdout.lines().any(|l| l.starts_with("FAIL kafka.librdkafka: expected valid librdkafka properties")
            && l.contains("lingerr.ms")),
        "{}",
        out.stdout
    );
}

/// `run` applies the same rules before it reads: a misconfigured server stops the start with the
/// failing lines, and no offset is stored.
fn run_refuses_to_start(server: &str, lines: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let offsets = dir.path().join("offsets.json");
    let mut config = config_for(&env(server), "root", "rowferry", &env(KAFKA));
    config.push_str(&format!(
        "\n[offsets]\nstore = \"file\"\npath = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n",
        offsets.display()
    ));
    let out = rowferry(&["run"], &config);
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(
        out.stderr.contains("rowferry: the source server is not set up for change data capture; nothing was read:"),
        "{}",
        out.stderr
    );
    for line in lines {
        assert!(out.stderr.lines().any(|l| l == format!("  {line}")), "missing {line:?} in\n{}", out.stderr);
    }
    assert!(!offsets.exists(), "an offset was stored for a server rowferry refused");
}

#[test]
fn mariadb_run_refuses_statement_format_and_minimal_metadata() {
    run_refuses_to_start(
        MARIADB_BAD,
        &[
            "FAIL binlog_format: expected ROW, found STATEMENT — fix: SET GLOBAL binlog_format = 'ROW'; \
             and add `binlog_format = ROW` under [mariadbd] in the server config",
            "FAIL binlog_row_metadata: expected FULL, found MINIMAL — fix: SET GLOBAL binlog_row_metadata = 'FULL'; \
             and add `binlog_row_metadata = FULL` under [mariadbd] in the server config",
        ],
    );
}

#[test]
fn mysql_run_refuses_statement_format_and_minimal_metadata() {
    run_refuses_to_start(
        MYSQL_BAD,
        &[
            "FAIL binlog_format: expected ROW, found STATEMENT — fix: SET PERSIST binlog_format = 'ROW';",
            "FAIL binlog_row_metadata: expected FULL, found MINIMAL — fix: SET PERSIST binlog_row_metadata = 'FULL';",
        ],
    );
}
