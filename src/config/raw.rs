//! The configuration exactly as written: defaults → TOML file → `ROWFERRY__SECTION__KEY`
//! environment variables, merged by the `config` crate and deserialised into these structs.
//!
//! Every struct denies unknown fields, so a misspelt key (in the file or in an environment
//! variable) stops start-up instead of being ignored. Every field is optional here: defaults,
//! required keys and cross-field rules are applied in one place, [`super::Settings::from_raw`],
//! which also produces the error message that names the key.

use super::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Connector name: the key of the stored offset and the `source.name` of every record.
    /// Default `rowferry`.
    pub name: Option<String>,
    /// Seconds `run` waits at shutdown for records in flight before committing. Default 30.
    pub shutdown_timeout_secs: Option<u64>,
    /// Seconds without an event or heartbeat from the source (or without a Kafka ack while
    /// records are in flight) after which rowferry is not ready and reconnects the source.
    /// Default 60; at least 3.
    pub stall_timeout_secs: Option<u64>,
    /// The MySQL or MariaDB server to read from.
    #[serde(default)]
    pub source: RawSource,
    /// The Kafka cluster to write to.
    #[serde(default)]
    pub kafka: RawKafka,
    /// Where Avro schemas are registered.
    #[serde(default)]
    pub registry: RawRegistry,
    /// Where the committed GTID offset is stored.
    #[serde(default)]
    pub offsets: RawOffsets,
    /// Which tables are captured.
    #[serde(default)]
    pub tables: RawTables,
    /// Topic names, topic creation, tombstones, transaction metadata.
    #[serde(default)]
    pub topics: RawTopics,
    /// What the records look like.
    #[serde(default)]
    pub envelope: RawEnvelope,
    /// Columns left out or masked.
    #[serde(default)]
    pub columns: RawColumns,
    /// The HTTP server for health, metrics, status, control and the embedded registry.
    #[serde(default)]
    pub http: RawHttp,
    /// Snapshots: when they run and how fast.
    #[serde(default)]
    pub snapshot: RawSnapshot,
    /// Logging.
    #[serde(default)]
    pub log: RawLog,
}

/// `[source]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `mysql://user:password@host:port` (or `mariadb://`); alternative to host/port/user/password.
    pub url: Option<Secret>,
    /// Server host name or address. Default `127.0.0.1`.
    pub host: Option<String>,
    /// Server port. Default 3306.
    pub port: Option<u16>,
    /// Replication user.
    pub user: Option<String>,
    /// Password of `user`. Set it, or `password_file`, or put it in `url`; `""` means no password.
    pub password: Option<Secret>,
    /// File whose content (one trailing newline trimmed) is the password.
    pub password_file: Option<PathBuf>,
    /// The server_id rowferry registers with as a replica; unique among the topology's servers.
    pub server_id: Option<u32>,
    /// `auto` (default), `mysql` or `mariadb`; a set flavor must match the server.
    pub flavor: Option<String>,
    /// Seconds to wait for a connection. Default 10.
    pub connect_timeout_secs: Option<u64>,
    /// Register as a semi-synchronous replica: ACK a transaction once Kafka has it. Default false.
    pub semi_sync: Option<bool>,
    /// TLS to the server.
    #[serde(default)]
    pub tls: RawTls,
}

/// `[source.tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// `disabled` (default), `required`, `verify_ca` or `verify_identity`.
    pub mode: Option<String>,
    /// PEM file with the CA that signed the server certificate (`verify_ca`, `verify_identity`).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that require one.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// `[kafka]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    /// Comma-separated `host:port` list. Default `127.0.0.1:9092`.
    pub bootstrap_servers: Option<String>,
    /// First part of every topic name: `<prefix>.<db>.<table>`. Default `rowferry`.
    pub topic_prefix: Option<String>,
    /// Extra librdkafka properties passed through as they are (`"linger.ms" = "5"`). From the
    /// environment, write dots as underscores: `ROWFERRY__KAFKA__LIBRDKAFKA__LINGER_MS=5`.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
    /// `at_least_once` (default) or `exactly_once` (docs/running.md, "Delivery guarantees").
    pub delivery: Option<String>,
    /// exactly_once: how long one Kafka transaction gathers whole source transactions. Default 100.
    pub transaction_interval_ms: Option<u64>,
    /// exactly_once: …or how many key + value bytes. Default 16 MiB.
    pub transaction_max_bytes: Option<u64>,
}

/// `[registry]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    /// `embedded` (default: schemas kept in the `_schemas` topic, served on the HTTP port) or
    /// `external` (a Confluent-compatible Schema Registry at `url`).
    pub mode: Option<String>,
    /// Registry URL, for `external`.
    pub url: Option<String>,
    /// Basic-auth user, for `external`.
    pub username: Option<String>,
    /// Basic-auth password, for `external`.
    pub password: Option<Secret>,
    /// PEM file of a CA to trust for `external` (besides the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Compatibility level of subjects without their own, for `embedded` (`BACKWARD` default,
    /// as Confluent's; `NONE`, `FORWARD`, `FULL`, `*_TRANSITIVE`).
    pub compatibility: Option<String>,
    /// Topic the embedded registry keeps its schemas in. Default `_schemas`. One embedded registry
    /// writes to a topic: connectors sharing a cluster need their own topics (or one external
    /// registry).
    pub topic: Option<String>,
}

/// `[offsets]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOffsets {
    /// `kafka` (default: a compacted topic keyed by connector name) or `file`.
    pub store: Option<String>,
    /// Offsets topic, for `kafka`. Default `<topic_prefix>.offsets`.
    pub topic: Option<String>,
    /// Offsets file, for `file` (written atomically: temp file, fsync, rename).
    pub path: Option<PathBuf>,
    /// How often the acknowledged position is stored, in milliseconds. Default 1000.
    pub interval_ms: Option<u64>,
}

/// `[tables]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTables {
    /// `db.table` patterns with `*` and `?`; default `["*.*"]`. System schemas are never captured.
    pub include: Option<Vec<String>>,
    /// `db.table` patterns removed from what `include` matched.
    pub exclude: Option<Vec<String>>,
}

/// `[topics]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopics {
    /// Topic per table pattern, first match wins; default `<prefix>.<db>.<table>`:
    /// `routes = [{ tables = "shop_*.orders", topic = "{prefix}.shop.orders" }]`.
    pub routes: Option<Vec<RawRoute>>,
    /// Partitions of the data topics rowferry creates. Default 1.
    pub partitions: Option<i32>,
    /// Replication factor of the topics rowferry creates. Default -1: the broker's default.
    pub replication_factor: Option<i32>,
    /// Topic config of the data topics rowferry creates (`"cleanup.policy" = "compact"`).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// A tombstone (null value) after each delete, for compaction. Default true.
    pub tombstones: Option<bool>,
    /// A record with `op = "t"` (no key, no row images) for each TRUNCATE of a captured table,
    /// as Debezium's `skipped.operations = none`. Default false (Debezium's default too).
    pub truncate_records: Option<bool>,
    /// BEGIN/END records on `<prefix>.transaction` and a `transaction` block in every record, as
    /// Debezium's `provide.transaction.metadata`. Default false.
    pub transaction_metadata: Option<bool>,
    /// Kafka headers `rowferry.gtid`, `rowferry.position`, `rowferry.table` on each record.
    /// Default false (Debezium adds none either).
    pub headers: Option<bool>,
}

/// `[envelope]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvelope {
    /// `debezium` (default): every value, schema name and `source` field as Debezium 3.6's MySQL
    /// connector writes them with its default settings; `avro-native`: Avro logical types
    /// (date, timestamp-micros, decimal for BIGINT UNSIGNED), SET as an array, BIT(n) as a long.
    pub format: Option<String>,
}

/// One `[[topics.routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// `db.table` pattern with `*` and `?`.
    pub tables: String,
    /// Topic name; may use `{prefix}`, `{db}` and `{table}`.
    pub topic: String,
}

/// `[columns]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumns {
    /// `db.table.column` patterns of columns left out of every record (not primary-key columns).
    pub exclude: Option<Vec<String>>,
    /// `db.table.column` patterns of columns replaced by the hex SHA-256 of salt + value.
    pub hash: Option<Vec<String>>,
    /// The salt of `hash` (required with it; keep it secret).
    pub hash_salt: Option<Secret>,
    /// Columns cut to at most N characters (text) or bytes (binary): `"shop.users.bio" = 100`.
    #[serde(default)]
    pub truncate: BTreeMap<String, usize>,
}

/// `[snapshot]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnapshot {
    /// `initial` (default: snapshot the captured tables on the first start), `never`, or
    /// `when_needed` (also when the stored position has been purged from the source).
    pub mode: Option<String>,
    /// Tables copied at the same time. Default 2.
    pub parallel: Option<usize>,
    /// Rows of the first chunk of each table. Default 5000.
    pub chunk_rows: Option<usize>,
    /// Milliseconds a chunk's read should take; the chunk size adapts toward it. Default 300.
    pub chunk_target_ms: Option<u64>,
    /// Rows per second copied at most, all tables together; 0 (default) means no limit.
    pub max_rows_per_sec: Option<u64>,
    /// A query returning one number, the replication lag in seconds, run before each chunk (on
    /// the source connection), e.g. against a heartbeat table; copying waits while it is above
    /// `max_lag_secs`.
    pub lag_query: Option<String>,
    /// Lag above which copying waits. Default 10.
    pub max_lag_secs: Option<f64>,
    /// Key columns for tables without a primary key: `{ "db.table" = ["col", ...] }` — a unique
    /// key over NOT NULL columns. Without one a table is copied in one pass.
    #[serde(default)]
    pub keys: BTreeMap<String, Vec<String>>,
    /// Check every n-th snapshot record (and the first of each chunk) by decoding it back and
    /// comparing it with an independent encoding of the row read; 1 checks every record, 0 none.
    /// Default 64 (every record costs about two thirds of the copy's speed).
    pub inline_verify_every: Option<u64>,
}

/// `[http]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Address and port to listen on. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Bearer token for the control endpoints (POST /pause, /resume, /snapshot); required for
    /// them when `listen` is not a loopback address.
    pub token: Option<Secret>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// Level or `tracing` filter (`info`, `rowferry=debug,warn`). Default `info`; RUST_LOG wins.
    pub level: Option<String>,
    /// `human` (default) or `json`; `--log-format` wins.
    pub format: Option<String>,
}
