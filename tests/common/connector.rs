//! A `rowferry run` process for end-to-end tests: its config (unique names, offsets in a file or
//! in Kafka, a free HTTP port), start/stop, its stored offset, and the stock Python client reading
//! its topics.
#![allow(dead_code)]

use super::{KAFKA, env, host_port, unique_server_id};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Connector {
    pub config: tempfile::NamedTempFile,
    pub offsets: tempfile::TempDir,
    pub http: String,
    /// Bootstrap servers it publishes to (the shared test broker unless told otherwise).
    pub kafka: String,
    /// Where the test reads its offsets and topics (default: `kafka`; an ACL broker's operator
    /// listener otherwise).
    pub observe: Option<String>,
    /// The `[registry]` section's body (default: the embedded registry on a topic of its own).
    pub registry: String,
    /// The registry URL consumers use (default: the embedded registry on `http`).
    pub registry_url: String,
    /// TOML appended to the generated config (more sections).
    pub extra: String,
    /// Top-level keys added to the config (`stall_timeout_secs = 3`).
    pub top: String,
    /// Keys added to its `[kafka]` section (`delivery = "exactly_once"`).
    pub kafka_keys: String,
    /// Keys added to its `[source]` section (`semi_sync = true`).
    pub source_keys: String,
    /// Keys added to its `[http]` section (`token = "…"`).
    pub http_extra: String,
    /// Where offsets are stored (default: a file in `offsets`).
    pub store: Store,
    /// `offsets.interval_ms`, when not the default.
    pub offset_interval_ms: Option<u64>,
    /// Whether a first start snapshots (default off here: the streaming tests count exact
    /// records, and an initial snapshot racing their first writes would add `r` records).
    pub snapshots: bool,
    source: String,
    db: String,
    server_id: u32,
}

impl Connector {
    pub fn new(url: &str, db: &str) -> Connector {
        let offsets = tempfile::tempdir().expect("tempdir");
        let http_port = super::free_port();
        let config = tempfile::NamedTempFile::new().expect("config");
        let c = Connector {
            config,
            offsets,
            http: format!("127.0.0.1:{http_port}"),
            kafka: env(KAFKA),
            observe: None,
            registry: format!("topic = \"_schemas_{db}\""),
            registry_url: format!("http://127.0.0.1:{http_port}"),
            extra: String::new(),
            top: String::new(),
            kafka_keys: String::new(),
            source_keys: String::new(),
            http_extra: String::new(),
            snapshots: false,
            store: Store::File,
            offset_interval_ms: None,
            source: url.to_string(),
            db: db.to_string(),
            server_id: unique_server_id(),
        };
        c.point_at(url);
        c
    }

    /// Publishes to the broker at `kafka`.
    pub fn with_kafka(mut self, kafka: &str) -> Connector {
        self.kafka = kafka.to_string();
        self.point_at(&self.source.clone());
        self
    }

    /// Tests read its offsets and topics through `bootstrap`.
    pub fn observed_through(mut self, bootstrap: &str) -> Connector {
        self.observe = Some(bootstrap.to_string());
        self
    }

    /// Where tests read its offsets and topics.
    pub fn observer(&self) -> &str {
        self.observe.as_deref().unwrap_or(&self.kafka)
    }

    /// Stores offsets as `store` says.
    pub fn with_store(mut self, store: Store) -> Connector {
        self.store = store;
        self.point_at(&self.source.clone());
        self
    }

    /// Stores the offset every `ms` milliseconds.
    pub fn with_offset_interval(mut self, ms: u64) -> Connector {
        self.offset_interval_ms = Some(ms);
        self.point_at(&self.source.clone());
        self
    }

    /// Adds `extra` TOML sections to the config.
    pub fn with_extra(mut self, extra: &str) -> Connector {
        self.extra = extra.to_string();
        self.point_at(&self.source.clone());
        self
    }

    /// Keeps `snapshot.mode` as configured (default `initial`) instead of `never`.
    pub fn with_snapshots(mut self) -> Connector {
        self.snapshots = true;
        self
    }

    /// Adds top-level keys.
    pub fn with_top(mut self, lines: &str) -> Connector {
        self.top = lines.to_string();
        self.point_at(&self.source.clone());
        self
    }

    /// Adds keys to `[kafka]`.
    pub fn with_kafka_keys(mut self, lines: &str) -> Connector {
        self.kafka_keys = lines.to_string();
        self.point_at(&self.source.clone());
        self
    }

    /// Adds keys to `[source]`.
    pub fn with_source_keys(mut self, lines: &str) -> Connector {
        self.source_keys = lines.to_string();
        self.point_at(&self.source.clone());
        self
    }

    /// Adds keys to `[http]`.
    pub fn with_http(mut self, lines: &str) -> Connector {
        self.http_extra = lines.to_string();
        self.point_at(&self.source.clone());
        self
    }

    /// Uses the `[registry]` section `section`; consumers read schemas from `consumer_url`.
    pub fn with_registry(mut self, section: &str, consumer_url: &str) -> Connector {
        self.registry = section.to_string();
        self.registry_url = consumer_url.to_string();
        self.point_at(&self.source.clone());
        self
    }

    /// (Re)writes the config for the server at `url`; name, offsets, topics and HTTP port stay.
    pub fn point_at(&self, url: &str) {
        let (host, port) = host_port(url);
        let parsed = url::Url::parse(url).expect("url");
        let db = &self.db;
        let mut file = std::fs::File::create(self.config.path()).expect("config");
        write!(
            file,
            "name = \"{db}\"\nshutdown_timeout_secs = 20\n{}\n\
             [source]\nhost = \"{host}\"\nport = {port}\nuser = \"{}\"\npassword = \"{}\"\nserver_id = {}\n{}\n\
             [kafka]\nbootstrap_servers = \"{}\"\ntopic_prefix = \"{db}\"\n{}\n\
             [registry]\n{}\n\
             [offsets]\n{}\n\
             [tables]\ninclude = [\"{db}.*\"]\n\
             [http]\nlisten = \"{}\"\n{}\n{}\n",
            self.top,
            parsed.username(),
            parsed.password().unwrap_or_default(),
            self.server_id,
            self.source_keys,
            self.kafka,
            self.kafka_keys,
            self.registry,
            match self.store {
                Store::File => format!("store = \"file\"\npath = \"{}/offset.json\"", self.offsets.path().display()),
                // The default store, on its default topic (`<topic_prefix>.offsets`).
                Store::Kafka => "store = \"kafka\"".to_string(),
            } + &self.offset_interval_ms.map(|ms| format!("\ninterval_ms = {ms}")).unwrap_or_default(),
            self.http,
            self.http_extra,
            self.extra,
        )
        .expect("write config");
    }

    pub fn start(&self) -> Child {
        self.start_command(&["run"])
    }

    /// Starts `rowferry ARGS… --config FILE` (`run`, or `snapshot --then-stream`, …).
    pub fn start_command(&self, args: &[&str]) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rowferry"));
        if !self.snapshots {
            command.env("ROWFERRY__SNAPSHOT__MODE", "never");
        }
        command
            .args(args)
            .arg("--config")
            .arg(self.config.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .expect("start rowferry run")
    }

    /// Runs `rowferry ARGS --config <this config>` to its end (off the runtime: the connector
    /// under test may be served by it).
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rowferry"));
        command.args(args).arg("--config").arg(self.config.path());
        tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("rowferry")
    }

    /// rowferry's log (appended by every start), shown when a wait fails.
    fn log_file(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.offsets.path().join("rowferry.log"))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.offsets.path().join("rowferry.log")).unwrap_or_default()
    }

    /// The stored offset (the offset file, or the last record of this connector on the offsets
    /// topic); `None` when there is none or the store cannot be read right now.
    pub fn offset(&self) -> Option<serde_json::Value> {
        self.offset_reader().offset()
    }

    /// What reads this connector's stored offset, for another thread.
    pub fn offset_reader(&self) -> OffsetReader {
        OffsetReader {
            store: self.store,
            file: self.offsets.path().join("offset.json"),
            kafka: self.observer().to_string(),
            topic: self.offsets_topic(),
            key: self.db.clone(),
        }
    }

    /// The offsets topic of the Kafka store.
    pub fn offsets_topic(&self) -> String {
        format!("{}.offsets", self.db)
    }

    /// The stored GTID set ("" when none can be read now).
    pub fn stored_set(&self) -> String {
        self.offset_reader().stored_set().unwrap_or_default()
    }
}

/// Where a connector stores its offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    File,
    /// The default: a compacted topic.
    Kafka,
}

/// Reads a connector's stored offset (from any thread).
#[derive(Debug, Clone)]
pub struct OffsetReader {
    store: Store,
    file: std::path::PathBuf,
    kafka: String,
    topic: String,
    key: String,
}

impl OffsetReader {
    /// The stored offset, `None` when there is none or the store cannot be read right now.
    pub fn offset(&self) -> Option<serde_json::Value> {
        match self.store {
            Store::File => serde_json::from_str(&std::fs::read_to_string(&self.file).ok()?).ok(),
            // The last value of this connector's key, read as rowferry reads it at start.
            Store::Kafka => {
                let mut config = rdkafka::ClientConfig::new();
                config.set("bootstrap.servers", &self.kafka);
                let mut last = None;
                rowferry::kafka::read_to_end(&config, &self.topic, Duration::from_secs(5), |m| {
                    use rdkafka::Message;
                    if m.key() == Some(self.key.as_bytes()) {
                        last = m.payload().and_then(|p| serde_json::from_slice(p).ok());
                    }
                    Ok(())
                })
                .ok()?;
                last
            }
        }
    }

    /// The stored GTID set, `None` when none can be read now.
    pub fn stored_set(&self) -> Option<String> {
        self.offset().and_then(|o| o["gtid_set"].as_str().map(String::from))
    }
}

/// Whether the stored GTID set `stored` includes every transaction of `target` (either flavor).
/// Other tests write to the same servers, so the offset may already be past `target`.
pub fn covers(stored: &str, target: &str) -> bool {
    use rowferry::position::{MariaDbPosition, MySqlGtidSet};
    if let (Ok(s), Ok(t)) = (MariaDbPosition::parse(stored), MariaDbPosition::parse(target)) {
        return t.is_subset(&s);
    }
    match (MySqlGtidSet::parse(stored), MySqlGtidSet::parse(target)) {
        (Ok(s), Ok(t)) => t.is_subset(&s),
        _ => false,
    }
}

/// Sends SIGTERM and waits (bounded) for the exit code, without blocking the test's runtime
/// (a proxy or registry the test serves must keep working while rowferry drains).
pub async fn stop(child: &mut Child) -> Option<i32> {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    exit_code(child, Duration::from_secs(30), "stopped after SIGTERM").await
}

/// Waits for the process to exit and returns its code; kills it and fails the test if it has
/// not `what` within `limit`.
pub async fn exit_code(child: &mut Child, limit: Duration, what: &str) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rowferry has not {what} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the stored offset to show the snapshot complete (the progress is dropped then).
pub async fn snapshot_complete(c: &Connector, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !c.offset().is_some_and(|o| o.get("snapshot").is_none_or(serde_json::Value::is_null)) {
        assert!(Instant::now() < deadline, "snapshot never completed: {:?}\nlog:\n{}", c.offset(), c.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the stored offset names `gtid_part` (polling a file written by another process).
pub async fn offset_reaches(c: &Connector, want: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c.offset().and_then(|o| o["gtid_set"].as_str().map(&want)).unwrap_or(false) {
        assert!(Instant::now() < deadline, "offset never got there: {:?}\nrowferry's log:\n{}", c.offset(), c.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The topic's records as the stock Python client decodes them (read_committed, its default).
pub async fn consume(c: &Connector, topic: &str, count: usize) -> Vec<serde_json::Value> {
    consume_as(c, topic, count, "read_committed").await
}

/// [`consume`] with the consumer's `isolation.level`.
pub async fn consume_as(c: &Connector, topic: &str, count: usize, isolation: &str) -> Vec<serde_json::Value> {
    let args = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/consume_avro.py").to_string(),
        c.observer().to_string(),
        c.registry_url.clone(),
        topic.to_string(),
        count.to_string(),
        isolation.to_string(),
    ];
    // Off the runtime: the connector under test may be served by it (proxy, registry).
    let out = tokio::task::spawn_blocking(move || Command::new(env("ROWFERRY_TEST_PYTHON")).args(args).output())
        .await
        .expect("join")
        .expect("python");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}
