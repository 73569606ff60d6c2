//! Faults of a real Kafka cluster under write load. One Apache Kafka cluster (3 brokers, one
//! controller, replication factor 3, `min.insync.replicas` 2) serves these tests one at a time.
//! Each streams MariaDB and MySQL 9.7 at once, both loaded by sysbench (`oltp_write_only`), with
//! the default offset store (the offsets topic on the cluster), and injects one fault:
//!
//! - kill -9 of the broker leading the MariaDB data topic's partition (ridden through);
//! - kill -9 of the broker leading the MariaDB offsets topic's partition (ridden through);
//! - two brokers down, so producing fails with NOT_ENOUGH_REPLICAS for longer than the records'
//!   delivery timeout (`message.timeout.ms` 8 s here): rowferry stops with exit code 1 and a
//!   message naming the cause; once the brokers are back it is started again;
//! - the controller killed and started again (ridden through).
//!
//! Each ends with a graceful stop and a restart that streams the last writes, then checks that
//! the latest record per key equals the table, that the auditor never saw a stored offset ahead of
//! an acknowledged record, and that the offsets topic is compacted with the cluster's replication
//! factor.

mod common;

use common::audit::{self, Audit};
use common::connector::{Connector, Store, consume, covers, exit_code, offset_reaches, stop};
use common::kafka::{CONTROLLER, Kafka};
use common::{MARIADB, MYSQL, admin, env, position_now, unique};
use mysql_async::prelude::Queryable;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Rows of each sysbench table.
const ROWS: u32 = 300;
/// sysbench transactions per second per server (4 row changes each).
const RATE: u32 = 40;

/// The cluster, started by the first test that needs it (stopped when the test process ends).
fn cluster() -> &'static Kafka {
    static CLUSTER: OnceLock<Kafka> = OnceLock::new();
    CLUSTER.get_or_init(|| Kafka::cluster(&unique("faults")))
}

/// One fault at a time: they share the cluster.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// sysbench `oltp_write_only` on `db` of the server behind `socket`.
fn sysbench(socket: &str, db: &str, args: &[&str]) -> Command {
    let mut c = Command::new("sysbench");
    c.args(["oltp_write_only", "--db-driver=mysql", "--mysql-user=root", "--tables=1"])
        .arg(format!("--mysql-socket={socket}"))
        .arg(format!("--mysql-db={db}"))
        .arg(format!("--table-size={ROWS}"))
        .args(args)
        .stdout(std::process::Stdio::null());
    c
}

/// One server under load, streamed by one connector.
struct Loaded {
    url: String,
    db: String,
    topic: String,
    connector: Connector,
    child: Child,
    audit: Option<Audit>,
    load: Option<Child>,
}

impl Loaded {
    /// A database with a sysbench table, a connector streaming it to the cluster, and the load
    /// (running for `seconds`).
    async fn start(server: &str, socket_var: &str, kafka: &Kafka, extra: &str, seconds: u32) -> Loaded {
        let url = env(server);
        let db = unique("faults");
        admin(&url, &[format!("CREATE DATABASE {db}")]).await;
        let connector =
            Connector::new(&url, &db).with_kafka(&kafka.bootstrap).with_store(Store::Kafka).with_extra(extra);
        let child = connector.start();
        let start = position_now(&url).await.to_string();
        offset_reaches(&connector, |g| covers(g, &start)).await;
        let socket = env(socket_var);
        let status = sysbench(&socket, &db, &["prepare"]).status().expect("sysbench prepare");
        assert!(status.success(), "sysbench prepare on {server}");
        let topic = format!("{db}.{db}.sbtest1");
        let audit = Some(Audit::start(&connector, &topic));
        let load = sysbench(&socket, &db, &[&format!("--rate={RATE}"), &format!("--time={seconds}"), "run"])
            .spawn()
            .expect("sysbench run");
        Loaded { url, db, topic, connector, child, audit, load: Some(load) }
    }

    /// Waits for the load to end and for rowferry to have stored an offset past it.
    async fn drain(&mut self) {
        let mut load = self.load.take().expect("load");
        let status = tokio::task::spawn_blocking(move || load.wait()).await.expect("join").expect("sysbench");
        assert!(status.success(), "sysbench run on {}", self.db);
        let end = position_now(&self.url).await.to_string();
        offset_reaches(&self.connector, |g| covers(g, &end)).await;
    }

    /// A graceful stop, a restart that streams a last write, another graceful stop; then the
    /// checks of the module docs.
    async fn finish(mut self, kafka: &Kafka) {
        self.audit.as_ref().expect("audit").until_samples(21).await;
        assert_eq!(stop(&mut self.child).await, Some(0), "graceful stop:\n{}", self.connector.log());
        let mut again = self.connector.start();
        let mut conn = mysql_async::Conn::from_url(self.url.as_str()).await.expect("connect");
        conn.query_drop(format!("UPDATE {}.sbtest1 SET k = k + 1 WHERE id = 1", self.db)).await.expect("update");
        let last = position_now(&self.url).await.to_string();
        offset_reaches(&self.connector, |g| covers(g, &last)).await;
        let records = consume(&self.connector, &self.topic, 0).await;
        assert_eq!(stop(&mut again).await, Some(0), "graceful stop after the restart:\n{}", self.connector.log());
        let samples = self.audit.take().expect("audit").finish();

        // The latest record per key is the table.
        let mut latest: BTreeMap<i64, Option<serde_json::Value>> = BTreeMap::new();
        for r in &records {
            let Some(id) = r["key"]["id"].as_i64() else { continue };
            latest.insert(id, r["value"]["after"].as_object().map(|a| serde_json::Value::Object(a.clone())));
        }
        let in_kafka: Vec<(i64, i64, String, String)> = latest
            .into_iter()
            .filter_map(|(id, after)| {
                let a = after?;
                Some((id, a["k"].as_i64()?, a["c"].as_str()?.to_string(), a["pad"].as_str()?.to_string()))
            })
            .collect();
        let table: Vec<(i64, i64, String, String)> =
            conn.query(format!("SELECT id, k, c, pad FROM {}.sbtest1 ORDER BY id", self.db)).await.expect("select");
        assert_eq!(in_kafka.len(), table.len(), "keys in Kafka vs rows in {}", self.db);
        assert!(in_kafka == table, "the latest record per key differs from the table {}", self.db);

        // No stored offset ever ran ahead of an acknowledged record.
        let gtids: Vec<(String, i64)> = records
            .iter()
            .filter(|r| r["value"].is_object())
            .map(|r| {
                (
                    r["value"]["source"]["gtid"].as_str().expect("gtid").to_string(),
                    r["offset"].as_i64().expect("offset"),
                )
            })
            .collect();
        let checked = audit::check(&samples, &gtids);
        assert!(checked > 20, "the auditor sampled only {checked} times");

        // The offsets topic: compacted, replicated as the cluster's default says (3).
        let (replicas, policy) = topic_layout(&kafka.bootstrap, &self.connector.offsets_topic()).await;
        assert_eq!((replicas, policy.as_str()), (3, "compact"), "offsets topic layout");
        eprintln!("{}: {} records, {checked} offset samples audited", self.db, records.len());
        admin(&self.url, &[format!("DROP DATABASE {}", self.db)]).await;
    }
}

/// (replicas of partition 0, cleanup.policy) of `topic`.
async fn topic_layout(bootstrap: &str, topic: &str) -> (usize, String) {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    let consumer: BaseConsumer = config.create().expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let replicas = metadata.topics()[0].partitions()[0].replicas().len();
    let admin: AdminClient<DefaultClientContext> = config.create().expect("admin");
    let described =
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()).await.expect("describe");
    let resource = described.into_iter().next().expect("one").expect("described");
    let policy = resource.get("cleanup.policy").and_then(|e| e.value.clone()).unwrap_or_default();
    (replicas, policy)
}

/// The node leading partition 0 of `topic`.
fn leader(bootstrap: &str, topic: &str) -> i32 {
    let consumer: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    metadata.topics()[0].partitions()[0].leader()
}

/// Waits until every partition of the cluster has all its replicas in sync (a fault's brokers
/// are back and caught up), so the next fault starts from a whole cluster.
fn wait_in_sync(bootstrap: &str) {
    let consumer: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let lagging = consumer.fetch_metadata(None, Duration::from_secs(10)).map(|m| {
            m.topics()
                .iter()
                .flat_map(|t| t.partitions())
                .filter(|p| p.leader() < 0 || p.isr().len() < p.replicas().len())
                .count()
        });
        if lagging == Ok(0) {
            return;
        }
        assert!(Instant::now() < deadline, "partitions still out of sync after 120 s: {lagging:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The two servers under load for `seconds`, on the cluster.
async fn both(kafka: &Kafka, extra: &str, seconds: u32) -> (Loaded, Loaded) {
    let maria = Loaded::start(MARIADB, "ROWFERRY_TEST_MARIADB_SOCKET", kafka, extra, seconds).await;
    let mysql = Loaded::start(MYSQL, "ROWFERRY_TEST_MYSQL_SOCKET", kafka, extra, seconds).await;
    // Some load streamed by both before the fault.
    for topic in [&maria.topic, &mysql.topic] {
        wait_for("records before the fault", || audit::high_watermark(&kafka.bootstrap, topic).unwrap_or(0) > 50);
    }
    (maria, mysql)
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills node `node`, keeps it down while the load goes on, starts it again.
fn bounce(kafka: &Kafka, node: i32, down: Duration) {
    kafka.kill(node);
    std::thread::sleep(down); // the fault's duration, not a synchronisation
    kafka.start_node(node);
}

async fn ridden_through(fault: impl FnOnce(&Kafka, &Loaded)) {
    let _serial = SERIAL.lock().await;
    let kafka = cluster();
    wait_in_sync(&kafka.bootstrap);
    let (mut maria, mut mysql) = both(kafka, "", 20).await;
    fault(kafka, &maria);
    for l in [&mut maria, &mut mysql] {
        assert!(l.child.try_wait().expect("try_wait").is_none(), "rowferry exited:\n{}", l.connector.log());
    }
    maria.drain().await;
    mysql.drain().await;
    maria.finish(kafka).await;
    mysql.finish(kafka).await;
    wait_in_sync(&kafka.bootstrap);
}

#[tokio::test]
async fn data_partition_leader_killed() {
    ridden_through(|kafka, maria| {
        let node = leader(&kafka.bootstrap, &maria.topic);
        bounce(kafka, node, Duration::from_secs(5));
    })
    .await;
}

#[tokio::test]
async fn offsets_partition_leader_killed() {
    ridden_through(|kafka, maria| {
        let node = leader(&kafka.bootstrap, &maria.connector.offsets_topic());
        bounce(kafka, node, Duration::from_secs(5));
    })
    .await;
}

#[tokio::test]
async fn controller_restarted() {
    ridden_through(|kafka, _| bounce(kafka, CONTROLLER, Duration::from_secs(3))).await;
}

#[tokio::test]
async fn too_few_in_sync_replicas_for_longer_than_the_delivery_timeout() {
    let _serial = SERIAL.lock().await;
    let kafka = cluster();
    wait_in_sync(&kafka.bootstrap);
    let timeout = "[kafka.librdkafka]\n\"message.timeout.ms\" = \"8000\"\n";
    let (mut maria, mut mysql) = both(kafka, timeout, 40).await;
    // Two of three brokers down: one in-sync replica left, min.insync.replicas is 2.
    kafka.kill(2);
    kafka.kill(3);
    for l in [&mut maria, &mut mysql] {
        let code = exit_code(&mut l.child, Duration::from_secs(60), "stopped once deliveries timed out").await;
        let log = l.connector.log();
        assert_eq!(code, Some(1), "exit code; log:\n{log}");
        assert!(log.contains("message.timeout.ms") && log.contains("Nothing is lost"), "the reason:\n{log}");
    }
    kafka.start_node(2);
    kafka.start_node(3);
    // Started again (as a supervisor would), rowferry resumes from its stored offset.
    for l in [&mut maria, &mut mysql] {
        l.child = l.connector.start();
    }
    maria.drain().await;
    mysql.drain().await;
    maria.finish(kafka).await;
    mysql.finish(kafka).await;
    wait_in_sync(&kafka.bootstrap);
}
