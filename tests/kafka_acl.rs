//! Kafka with SASL/SCRAM and ACLs (Apache Kafka's StandardAuthorizer): rowferry authenticates
//! with SCRAM-SHA-512, `check` reports the broker version and names a missing permission with
//! the ACL that grants it, and `run` stops on a refusal with the same fix instead of a bare
//! librdkafka error. The users and ACLs are made through the broker's operator listener with the
//! stock client's admin API (tests/python/kafka_admin.py).

mod common;

use common::audit::high_watermark;
use common::connector::{Connector, Store, covers, exit_code, offset_reaches, stop};
use common::kafka::Kafka;
use common::{MARIADB, admin, env, position_now, rowferry, unique};
use std::process::Command;
use std::time::Duration;

fn operator(kafka: &Kafka, args: &[&str]) {
    let out = Command::new(env("ROWFERRY_TEST_PYTHON"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/kafka_admin.py"))
        .arg(kafka.operator())
        .args(args)
        .output()
        .expect("python");
    assert!(out.status.success(), "kafka_admin.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A SCRAM user `name` allowed `grants`: (topic name or prefix, pattern, operations).
fn user(kafka: &Kafka, name: &str, grants: &[(&str, &str, &str)]) {
    operator(kafka, &["user", name, "secret-of-rowferry"]);
    for (topic, pattern, ops) in grants {
        operator(kafka, &["allow", &format!("User:{name}"), "topic", topic, pattern, ops]);
    }
}

/// A connector for `db` publishing as `name` over SASL/SCRAM, offsets in Kafka.
fn connector(url: &str, db: &str, kafka: &Kafka, name: &str) -> Connector {
    Connector::new(url, db)
        .with_kafka(&kafka.bootstrap)
        .observed_through(&kafka.operator())
        .with_store(Store::Kafka)
        .with_extra(&format!(
            "[kafka.librdkafka]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
         \"sasl.username\" = \"{name}\"\n\"sasl.password\" = \"secret-of-rowferry\"\n"
        ))
}

/// `rowferry check` with `c`'s configuration.
fn check(c: &Connector) -> common::Outcome {
    rowferry(&["check"], &std::fs::read_to_string(c.config.path()).expect("config"))
}

/// The line of `out` about `what`.
fn line<'a>(out: &'a common::Outcome, what: &str) -> &'a str {
    out.stdout.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no line about {what}:\n{}", out.stdout))
}

#[tokio::test]
async fn sasl_scram_with_acls_check_names_the_missing_permission() {
    let url = env(MARIADB);
    let db = unique("acl");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]).await;
    let kafka = Kafka::with_sasl(&db);
    let (prefix, schemas, offsets, data) =
        (format!("{db}."), format!("_schemas_{db}"), format!("{db}.offsets"), format!("{db}.{db}.t"));

    // Everything rowferry needs: check passes, reports the broker, and rowferry streams.
    let full = format!("{db}-full");
    user(
        &kafka,
        &full,
        &[(&prefix, "prefixed", "Create,Describe,Read,Write"), (&schemas, "literal", "Create,Describe,Read,Write")],
    );
    let c = connector(&url, &db, &kafka, &full);
    let out = check(&c);
    assert_eq!(out.code, Some(0), "check as {full}:\n{}{}", out.stdout, out.stderr);
    assert!(line(&out, "kafka version").contains("Apache Kafka 4.4"), "{}", out.stdout);
    assert!(line(&out, "offsets topic").contains("to be created"), "{}", out.stdout);
    let mut child = c.start();
    let start = position_now(&url).await.to_string();
    offset_reaches(&c, |g| covers(g, &start)).await;
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (1), (2)")]).await;
    let end = position_now(&url).await.to_string();
    offset_reaches(&c, |g| covers(g, &end)).await;
    assert_eq!(stop(&mut child).await, Some(0), "{}", c.log());
    assert_eq!(high_watermark(&kafka.operator(), &data), Some(2), "both rows on {data}");

    // Write missing on the offsets topic only: check names it and the ACL; run stops on it.
    let partial = format!("{db}-nowrite");
    user(
        &kafka,
        &partial,
        &[
            (&prefix, "prefixed", "Describe,Read"),
            (&data, "literal", "Write"),
            (&schemas, "literal", "Describe,Read,Write"),
        ],
    );
    let c = connector(&url, &db, &kafka, &partial);
    let out = check(&c);
    assert_eq!(out.code, Some(1), "check as {partial}:\n{}", out.stdout);
    let offsets_line = line(&out, &format!("offsets topic {offsets}"));
    assert!(offsets_line.starts_with("FAIL") && offsets_line.contains("missing Write"), "{offsets_line}");
    assert!(
        offsets_line.contains(&format!("--allow-principal User:{partial} --operation Write --topic {offsets}")),
        "{offsets_line}"
    );
    assert!(line(&out, &format!("data topic {data}")).starts_with("ok"), "{}", out.stdout);
    let mut child = c.start();
    // A change to publish, and so an offset to store.
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (3)")]).await;
    let code = exit_code(&mut child, Duration::from_secs(60), "stopped on the refused offset write").await;
    let log = c.log();
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("Topic authorization failed") && log.contains("kafka-acls.sh"),
        "the reason and its fix:\n{log}"
    );

    // Exactly-once without Write on its transactional id: run stops at start, naming the ACL;
    // with it, it streams.
    let txn = format!("{db}-txn");
    user(
        &kafka,
        &txn,
        &[(&prefix, "prefixed", "Create,Describe,Read,Write"), (&schemas, "literal", "Create,Describe,Read,Write")],
    );
    let c = connector(&url, &db, &kafka, &txn).with_kafka_keys("delivery = \"exactly_once\"\n");
    let mut child = c.start();
    let code = exit_code(&mut child, Duration::from_secs(60), "stopped on the refused transactional id").await;
    let log = c.log();
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!("transactional.id rowferry-{db}")) && log.contains("--transactional-id rowferry-<name>"),
        "the id and the fix:\n{log}"
    );
    operator(
        &kafka,
        &["allow", &format!("User:{txn}"), "transactional-id", &format!("rowferry-{db}"), "literal", "Describe,Write"],
    );
    let mut child = c.start();
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (4)")]).await;
    let end = position_now(&url).await.to_string();
    offset_reaches(&c, |g| covers(g, &end)).await;
    assert_eq!(stop(&mut child).await, Some(0), "{}", c.log());

    // No Create, on topics that do not exist yet: check says so.
    let fresh = unique("acl");
    admin(&url, &[format!("CREATE DATABASE {fresh}"), format!("CREATE TABLE {fresh}.t (id INT PRIMARY KEY)")]).await;
    let nocreate = format!("{db}-nocreate");
    user(
        &kafka,
        &nocreate,
        &[
            (&format!("{fresh}."), "prefixed", "Describe,Read,Write"),
            (&format!("_schemas_{fresh}"), "literal", "Describe,Read,Write"),
        ],
    );
    let out = check(&connector(&url, &fresh, &kafka, &nocreate));
    assert_eq!(out.code, Some(1), "check as {nocreate}:\n{}", out.stdout);
    let data_line = line(&out, &format!("data topic {fresh}.{fresh}.t"));
    assert!(data_line.starts_with("FAIL") && data_line.contains("--operation Create"), "{data_line}");
    admin(&url, &[format!("DROP DATABASE {db}"), format!("DROP DATABASE {fresh}")]).await;
}
