//! Validated, typed settings: the only configuration the rest of rowferry sees.
//!
//! [`Settings::from_raw`] applies defaults, reads `password_file`, checks every value and every
//! cross-field rule, and turns the first problem into a [`ConfigError::Invalid`] that names the
//! key. Nothing here clamps or guesses: an invalid value stops start-up.

use super::ConfigError;
use super::columns::ColumnRules;
use super::raw::{RawConfig, RawHttp, RawKafka, RawLog, RawOffsets, RawRegistry};
use super::secret::Secret;
use super::snapshot::SnapshotSettings;
use super::tables::TableFilter;
use super::topics::TopicSettings;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

mod connection;
use connection::decode_url_part;

/// Everything rowferry was configured with, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Connector name (offset key, `source.name`).
    pub name: String,
    /// How long `run` waits at shutdown for records in flight.
    pub shutdown_timeout: Duration,
    /// Silence after which rowferry is not ready and reconnects the source.
    pub stall_timeout: Duration,
    /// How often the acknowledged position is stored (`offsets.interval_ms`).
    pub commit_interval: Duration,
    pub source: SourceSettings,
    pub kafka: KafkaSettings,
    pub registry: RegistrySettings,
    pub offsets: OffsetSettings,
    pub tables: TableFilter,
    pub topics: TopicSettings,
    /// `envelope.format`.
    pub envelope: EnvelopeFormat,
    pub columns: ColumnRules,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub snapshot: SnapshotSettings,
}

/// How records represent values, schemas and `source` (`envelope.format`; docs/avro.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvelopeFormat {
    /// What Debezium 3.6's MySQL connector writes with its default settings.
    #[default]
    Debezium,
    /// Avro logical types; rowferry's own representation of SET and BIT(n).
    AvroNative,
    /// The `debezium` format's values and schemas as Kafka Connect's JsonConverter writes them
    /// with `schemas.enable=true`: `{"schema": …, "payload": …}`, no registry.
    Json,
}

impl EnvelopeFormat {
    fn parse(text: Option<&str>) -> Result<EnvelopeFormat, ConfigError> {
        match text {
            None | Some("debezium") => Ok(EnvelopeFormat::Debezium),
            Some("avro-native") => Ok(EnvelopeFormat::AvroNative),
            Some("json") => Ok(EnvelopeFormat::Json),
            Some(other) => {
                Err(invalid("envelope.format", format!("{other:?} is not \"debezium\", \"avro-native\" or \"json\"")))
            }
        }
    }
}

/// Which server family the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlavorSetting {
    /// Detect from the server's version string.
    Auto,
    MySql,
    MariaDb,
}

/// How the connection to the source uses TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    Disabled,
    /// Encrypt, do not verify the certificate.
    Required,
    /// Encrypt and verify the chain, not the host name.
    VerifyCa,
    /// Encrypt and verify chain and host name.
    VerifyIdentity,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: TlsMode,
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, both or neither.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    /// Our replica server_id; 0 is not a valid server_id.
    pub server_id: NonZeroU32,
    pub flavor: FlavorSetting,
    pub connect_timeout: Duration,
    pub tls: TlsSettings,
    /// `source.semi_sync`: the binlog connection registers as a semi-synchronous replica and
    /// ACKs a transaction only once Kafka has every record of it (docs/running.md, "Semi-sync").
    pub semi_sync: bool,
}

#[derive(Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub topic_prefix: String,
    /// Extra librdkafka properties, keys normalised (`linger_ms` → `linger.ms`). Some are secrets
    /// ([`secret_librdkafka_key`]): `Debug` prints them as `***`.
    pub librdkafka: BTreeMap<String, String>,
    /// `kafka.delivery`.
    pub delivery: DeliveryMode,
}

/// `kafka.delivery`: what a consumer may see after a fault (docs/running.md, "Delivery
/// guarantees").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// Records after the last stored offset are sent again after a crash.
    #[default]
    AtLeastOnce,
    /// Whole source transactions and the offset after them are committed in one Kafka
    /// transaction: a `read_committed` consumer sees each change once.
    ExactlyOnce(TransactionBounds),
}

/// When an exactly-once Kafka transaction is committed: at the first source-transaction boundary
/// after `interval`, or after `max_bytes` of records, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionBounds {
    pub interval: Duration,
    pub max_bytes: u64,
}

/// The data producer's `linger.ms` when `source.semi_sync` is on and `kafka.librdkafka` does not
/// set it (1 ms: every COMMIT on the primary waits for it; 0 shortens the wait further at low
/// rates, at some cost in batching). Otherwise the publisher's default, 5 ms.
pub const SEMI_SYNC_LINGER_MS: u32 = 1;

impl Settings {
    /// The settings of the data producer: `kafka`, with semi-sync's `linger.ms` default (only
    /// the producer gets it: consumers would warn about a producer property).
    pub fn data_producer(&self) -> KafkaSettings {
        let mut kafka = self.kafka.clone();
        if self.source.semi_sync {
            kafka.librdkafka.entry("linger.ms".to_string()).or_insert_with(|| SEMI_SYNC_LINGER_MS.to_string());
        }
        kafka
    }
}

impl KafkaSettings {
    /// The Kafka transaction timeout the producer asks for (librdkafka's
    /// `transaction.timeout.ms`, 60 s unless set in `kafka.librdkafka`).
    pub fn transaction_timeout(&self) -> Duration {
        let ms = self.librdkafka.get("transaction.timeout.ms").and_then(|v| v.parse().ok()).unwrap_or(60_000);
        Duration::from_millis(ms)
    }
}

/// Whether a librdkafka property holds a secret (a password, a private key, a token).
pub fn secret_librdkafka_key(key: &str) -> bool {
    ["password", "secret", "token", "key.pem", "ssl.key", "oauthbearer.config", "sasl.jaas"]
        .iter()
        .any(|part| key.contains(part))
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let librdkafka: BTreeMap<&str, &str> = self
            .librdkafka
            .iter()
            .map(|(k, v)| (k.as_str(), if secret_librdkafka_key(k) { "***" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic_prefix", &self.topic_prefix)
            .field("librdkafka", &librdkafka)
            .field("delivery", &self.delivery)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub enum RegistrySettings {
    Embedded { topic: String, compatibility: super::compatibility::Level },
    External { url: url::Url, username: Option<String>, password: Option<Secret>, ca_file: Option<PathBuf> },
}

#[derive(Debug, Clone)]
pub enum OffsetSettings {
    Kafka { topic: String },
    File { path: PathBuf },
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Bearer token of the control endpoints.
    pub token: Option<Secret>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

/// librdkafka properties that rowferry sets itself; setting them in `kafka.librdkafka` would either
/// duplicate a typed key or break the commit rule, so they are rejected.
const OWNED_LIBRDKAFKA_KEYS: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    ("metadata.broker.list", "set kafka.bootstrap_servers instead"),
    ("enable.idempotence", "rowferry always produces idempotently (ordering and no duplicates on retry)"),
    ("acks", "rowferry always uses acks=all (the offset is committed only after a durable ack)"),
    ("request.required.acks", "rowferry always uses acks=all (the offset is committed only after a durable ack)"),
    (
        "transactional.id",
        "set kafka.delivery = \"exactly_once\" instead: rowferry derives the transactional.id from the connector \
         name (rowferry-<name>), so a restarted or second instance fences the old one",
    ),
    (
        "isolation.level",
        "rowferry reads its own topics read_committed; what a data consumer sets is the consumer's choice (with \
         kafka.delivery = \"exactly_once\", consumers set isolation.level=read_committed)",
    ),
    (
        "allow.auto.create.topics",
        "rowferry creates its topics itself with the layout [topics] and [offsets] ask for; a topic the broker \
         auto-creates gets the broker's num.partitions and no compaction",
    ),
];

fn invalid(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), problem: problem.into() }
}

impl Settings {
    /// Applies defaults and validates; the first problem found is returned, naming its key.
    pub fn from_raw(raw: RawConfig) -> Result<Settings, ConfigError> {
        let name = raw.name.unwrap_or_else(|| "rowferry".to_string());
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(invalid(
                "name",
                format!("{name:?} is not a valid connector name: use letters, digits, '.', '_' and '-'"),
            ));
        }
        let source = connection::source(raw.source)?;
        let kafka = kafka(raw.kafka)?;
        let shutdown_timeout = match raw.shutdown_timeout_secs {
            Some(0) => return Err(invalid("shutdown_timeout_secs", "must be at least 1")),
            Some(s) => Duration::from_secs(s),
            None => Duration::from_secs(30),
        };
        let stall_timeout = match raw.stall_timeout_secs {
            Some(s) if s < 3 => {
                return Err(invalid(
                    "stall_timeout_secs",
                    format!("{s} is below 3 (heartbeats come every third of it)"),
                ));
            }
            Some(s) => Duration::from_secs(s),
            None => Duration::from_secs(60),
        };
        let commit_interval = match raw.offsets.interval_ms {
            Some(ms) if !(10..=60_000).contains(&ms) => {
                return Err(invalid("offsets.interval_ms", format!("{ms} is not between 10 and 60000")));
            }
            Some(ms) => Duration::from_millis(ms),
            None => Duration::from_secs(1),
        };
        Ok(Settings {
            shutdown_timeout,
            stall_timeout,
            commit_interval,
            source,
            registry: registry(raw.registry)?,
            offsets: offsets(raw.offsets, &kafka)?,
            tables: TableFilter::new(
                raw.tables.include.unwrap_or_else(|| vec!["*.*".to_string()]),
                raw.tables.exclude.unwrap_or_default(),
            )?,
            topics: TopicSettings::new(
                &kafka.topic_prefix,
                raw.topics.routes.unwrap_or_default().into_iter().map(|r| (r.tables, r.topic)).collect(),
                raw.topics.partitions,
                raw.topics.replication_factor,
                raw.topics.config,
                raw.topics.tombstones,
                raw.topics.transaction_metadata,
            )?
            .with_truncate_records(raw.topics.truncate_records)
            .with_headers(raw.topics.headers),
            envelope: EnvelopeFormat::parse(raw.envelope.format.as_deref())?,
            columns: ColumnRules::new(
                raw.columns.exclude.unwrap_or_default(),
                raw.columns.hash.unwrap_or_default(),
                raw.columns.hash_salt,
                raw.columns.truncate,
            )?,
            http: http(raw.http)?,
            log: log(raw.log)?,
            snapshot: SnapshotSettings::new(raw.snapshot)?,
            kafka,
            name,
        })
    }
}

fn kafka(raw: RawKafka) -> Result<KafkaSettings, ConfigError> {
    let bootstrap_servers = raw.bootstrap_servers.unwrap_or_else(|| "127.0.0.1:9092".to_string());
    for server in bootstrap_servers.split(',') {
        let server = server.trim();
        let ok = server.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(invalid("kafka.bootstrap_servers", format!("{server:?} is not host:port")));
        }
    }
    let topic_prefix = raw.topic_prefix.unwrap_or_else(|| "rowferry".to_string());
    if topic_prefix.is_empty() || !topic_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(invalid(
            "kafka.topic_prefix",
            format!("{topic_prefix:?} is not a valid topic name part: use letters, digits, '.', '_' and '-'"),
        ));
    }
    let mut librdkafka = BTreeMap::new();
    for (key, value) in raw.librdkafka {
        // Environment variables cannot carry dots, so `linger_ms` means `linger.ms`; librdkafka
        // property names have no underscores.
        let normal = key.to_ascii_lowercase().replace('_', ".");
        let shown = format!("kafka.librdkafka.{key:?}");
        if let Some((_, why)) = OWNED_LIBRDKAFKA_KEYS.iter().find(|(k, _)| *k == normal) {
            return Err(invalid(&shown, format!("rowferry sets {normal} itself: {why}")));
        }
        if librdkafka.insert(normal.clone(), value).is_some() {
            return Err(invalid(&shown, format!("{normal} is set twice (keys differ only in case or '_' versus '.')")));
        }
    }
    let delivery = delivery(&raw.delivery, raw.transaction_interval_ms, raw.transaction_max_bytes, &librdkafka)?;
    Ok(KafkaSettings { bootstrap_servers, topic_prefix, librdkafka, delivery })
}

fn delivery(
    mode: &Option<String>,
    interval_ms: Option<u64>,
    max_bytes: Option<u64>,
    librdkafka: &BTreeMap<String, String>,
) -> Result<DeliveryMode, ConfigError> {
    match mode.as_deref() {
        None | Some("at_least_once") => {
            for (key, set) in
                [("transaction_interval_ms", interval_ms.is_some()), ("transaction_max_bytes", max_bytes.is_some())]
            {
                if set {
                    return Err(invalid(&format!("kafka.{key}"), "set only with kafka.delivery = \"exactly_once\""));
                }
            }
            Ok(DeliveryMode::AtLeastOnce)
        }
        Some("exactly_once") => {
            let interval = interval_ms.unwrap_or(100);
            if !(1..=60_000).contains(&interval) {
                return Err(invalid("kafka.transaction_interval_ms", format!("{interval} is not between 1 and 60000")));
            }
            let max_bytes = max_bytes.unwrap_or(16 << 20);
            if max_bytes < 1024 {
                return Err(invalid("kafka.transaction_max_bytes", format!("{max_bytes} is below 1024")));
            }
            let timeout: u64 = match librdkafka.get("transaction.timeout.ms") {
                Some(v) => v.parse().map_err(|_| {
                    invalid("kafka.librdkafka.\"transaction.timeout.ms\"", format!("{v:?} is not a number of ms"))
                })?,
                None => 60_000,
            };
            if interval * 2 > timeout {
                return Err(invalid(
                    "kafka.transaction_interval_ms",
                    format!(
                        "{interval} ms is more than half the Kafka transaction timeout ({timeout} ms, \
                         kafka.librdkafka.\"transaction.timeout.ms\"): lower it, or raise the timeout"
                    ),
                ));
            }
            Ok(DeliveryMode::ExactlyOnce(TransactionBounds { interval: Duration::from_millis(interval), max_bytes }))
        }
        Some(other) => Err(invalid("kafka.delivery", format!("{other:?} is not one of at_least_once, exactly_once"))),
    }
}

fn registry(raw: RawRegistry) -> Result<RegistrySettings, ConfigError> {
    match raw.mode.as_deref() {
        None | Some("embedded") => {
            if raw.url.is_some() || raw.username.is_some() || raw.password.is_some() || raw.ca_file.is_some() {
                return Err(invalid("registry.url", "set only with registry.mode = \"external\""));
            }
            let compatibility = match raw.compatibility.as_deref() {
                None => super::compatibility::Level::Backward,
                Some(text) => super::compatibility::Level::parse(text).ok_or_else(|| {
                    invalid(
                        "registry.compatibility",
                        format!(
                            "{text:?} is not one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, \
                             FULL, FULL_TRANSITIVE"
                        ),
                    )
                })?,
            };
            Ok(RegistrySettings::Embedded { topic: raw.topic.unwrap_or_else(|| "_schemas".to_string()), compatibility })
        }
        Some("external") => {
            let text =
                raw.url.ok_or_else(|| invalid("registry.url", "missing: external mode needs the registry's URL"))?;
            let mut url = url::Url::parse(&text)
                .map_err(|e| invalid("registry.url", format!("{:?} is not a URL: {e}", without_userinfo(&text))))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid("registry.url", "must be http:// or https://"));
            }
            // `https://user:pass@host`: the credentials move out of the URL, which is printed in
            // messages, into the username and the (never printed) password.
            let (mut username, mut password) = (raw.username, raw.password);
            if !url.username().is_empty() || url.password().is_some() {
                if username.is_some() || password.is_some() {
                    return Err(invalid(
                        "registry.url",
                        "carries user:password@ and registry.username/password are set too: keep one",
                    ));
                }
                username = Some(decode_url_part(url.username(), "registry.url")?);
                password = url.password().map(|p| decode_url_part(p, "registry.url").map(Secret::new)).transpose()?;
                let _ = url.set_username("");
                let _ = url.set_password(None);
            }
            if raw.topic.is_some() {
                return Err(invalid("registry.topic", "set only with registry.mode = \"embedded\""));
            }
            if password.is_some() && username.is_none() {
                return Err(invalid("registry.username", "missing: registry.password is set without a user"));
            }
            if raw.compatibility.is_some() {
                return Err(invalid(
                    "registry.compatibility",
                    "set only with registry.mode = \"embedded\"; an external registry applies its own levels",
                ));
            }
            Ok(RegistrySettings::External { url, username, password, ca_file: raw.ca_file })
        }
        Some(other) => Err(invalid("registry.mode", format!("{other:?} is not one of embedded, external"))),
    }
}

/// `text` with whatever stands between `://` and `@` (a user and password) replaced by `***`.
fn without_userinfo(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else { return text.to_string() };
    let host_end = text[start..].find('/').map_or(text.len(), |i| start + i);
    match text[start..host_end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_string(),
    }
}

fn offsets(raw: RawOffsets, kafka: &KafkaSettings) -> Result<OffsetSettings, ConfigError> {
    let topic_prefix = &kafka.topic_prefix;
    match raw.store.as_deref() {
        None | Some("kafka") => {
            if raw.path.is_some() {
                return Err(invalid("offsets.path", "set only with offsets.store = \"file\""));
            }
            Ok(OffsetSettings::Kafka { topic: raw.topic.unwrap_or_else(|| format!("{topic_prefix}.offsets")) })
        }
        Some("file") => {
            if raw.topic.is_some() {
                return Err(invalid("offsets.topic", "set only with offsets.store = \"kafka\""));
            }
            if kafka.delivery != DeliveryMode::AtLeastOnce {
                return Err(invalid(
                    "offsets.store",
                    "\"file\" cannot be used with kafka.delivery = \"exactly_once\": the offset must be committed in \
                     the same Kafka transaction as the records; use offsets.store = \"kafka\" (the default)",
                ));
            }
            let path =
                raw.path.ok_or_else(|| invalid("offsets.path", "missing: file mode needs the offsets file's path"))?;
            Ok(OffsetSettings::File { path })
        }
        Some(other) => Err(invalid("offsets.store", format!("{other:?} is not one of kafka, file"))),
    }
}

fn http(raw: RawHttp) -> Result<HttpSettings, ConfigError> {
    let text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listen = text.parse().map_err(|_| {
        invalid("http.listen", format!("{text:?} is not an address:port such as 127.0.0.1:8080 or 0.0.0.0:8080"))
    })?;
    if raw.token.as_ref().is_some_and(|t| t.expose().is_empty()) {
        return Err(invalid("http.token", "is empty; remove it or set a token"));
    }
    Ok(HttpSettings { listen, token: raw.token })
}

fn log(raw: RawLog) -> Result<LogSettings, ConfigError> {
    let level = raw.level.unwrap_or_else(|| "info".to_string());
    // A bare word is a level; EnvFilter would take a misspelt one ("infoo") for a target name.
    let bare = !level.contains(['=', ',', '[']);
    if bare && !["trace", "debug", "info", "warn", "error", "off"].contains(&level.to_ascii_lowercase().as_str()) {
        return Err(invalid("log.level", format!("{level:?} is not one of trace, debug, info, warn, error, off")));
    }
    tracing_subscriber::EnvFilter::try_new(&level)
        .map_err(|e| invalid("log.level", format!("{level:?} is not a level or tracing filter: {e}")))?;
    let format = match raw.format.as_deref() {
        None | Some("human") => LogFormat::Human,
        Some("json") => LogFormat::Json,
        Some(other) => return Err(invalid("log.format", format!("{other:?} is not one of human, json"))),
    };
    Ok(LogSettings { level, format })
}
