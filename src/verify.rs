//! `rowferry verify`: does the latest record per key in each table's topic equal the table?
//!
//! Per table: the topic is read from the beginning to its end at the start of the pass into a
//! map `hash(key) → fingerprint(after image)` (a delete or a tombstone removes the key). The
//! table is then read in key order with the snapshot's chunk reader, and each row's fingerprint is
//! computed the way the encoder would publish it (column rules applied, the `after` image as the
//! Avro record the encoder writes), and looked up. A key in the table but not the topic is
//! *missing*, one in both with another fingerprint is *different*, one only in the topic is
//! *extra*. Rows may simply be in flight: a table with mismatches is compared again once the
//! connector's stored offset covers the source position taken after the first pass (or after
//! `RECHECK_WAIT` if it never does), and only mismatches seen both times are reported.
//!
//! Fingerprints are 64-bit hashes of the `after` record's Avro bytes: on the Kafka side cut out of
//! the envelope by a schema-driven skipper ([`crate::encoder::skip`]; nothing is decoded into
//! values), on the table side written by the encoder's own binary writer. Avro's binary form of a
//! record is unique, so equal records give equal fingerprints; a collision could hide a
//! difference with probability ~2⁻⁶⁴ per row. A record written under an
//! older schema version (before an ALTER) differs from the current shape and is reported until
//! the row is written again. Tables without a key cannot be compared per key and are skipped
//! (said so in the report). Schemas come from the embedded registry.

use crate::change::{Op, RowChange};
use crate::config::{RegistrySettings, Settings};
use crate::encoder::datum::Style;
use crate::encoder::skip::{self, Plan, SkipError};
use crate::encoder::{Format, binary, datum, project, wire};
use crate::position::Position;
use crate::registry::embedded::EmbeddedRegistry;
use crate::schema::ColumnType;
use crate::snapshot::copier::{convert_rows, select, session};
use crate::snapshot::describe::{Described, describe, list_tables};
use crate::source::Flavor;
use mysql_async::prelude::Queryable;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// How long the re-check waits for the connector to pass the source position.
const RECHECK_WAIT: Duration = Duration::from_secs(60);
/// Mismatched keys listed per table at most (all are counted).
const LISTED: usize = 20;
/// Rows per SELECT.
const CHUNK: usize = 20_000;

/// What is wrong with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    Missing,
    Different,
    Extra,
}

/// One table's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableReport {
    pub table: String,
    pub topic: String,
    pub rows: u64,
    pub records: u64,
    /// Persistent mismatches: count per problem.
    pub mismatches: HashMap<Problem, u64>,
    /// Up to `LISTED` of them: the key (as JSON) and the problem.
    pub listed: Vec<(String, Problem)>,
    /// Why the table was not compared, if it was not.
    pub skipped: Option<String>,
    pub seconds: f64,
}

/// Why verify could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error("verify: {0}")]
    Other(String),
}

impl VerifyError {
    pub fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Fatal
    }
}

/// Verifies `tables` (`db.table`; default every captured table).
pub async fn verify(settings: &Settings, tables: Option<Vec<String>>) -> Result<Vec<TableReport>, VerifyError> {
    let RegistrySettings::Embedded { topic: registry_topic, .. } = &settings.registry else {
        return Err(VerifyError::Other(
            "verify reads schemas from the embedded registry; with registry.mode = external it is not available yet"
                .into(),
        ));
    };
    if settings.envelope == crate::config::EnvelopeFormat::Json {
        return Err(VerifyError::Other(
            "verify compares Avro records; with envelope.format = \"json\" it is not available yet (the json \
             format writes the same values as \"debezium\": verify a run in that format)"
                .into(),
        ));
    }
    let mut conn = crate::source::connect(&settings.source).await?;
    let flavor = crate::reader::flavor(&mut conn).await?;
    session(&mut conn, flavor).await?;
    let captured = list_tables(&mut conn, &settings.tables).await?;
    let chosen: Vec<(String, String)> = match &tables {
        None => captured,
        Some(wanted) => wanted
            .iter()
            .map(|name| {
                captured.iter().find(|(d, t)| format!("{d}.{t}") == *name).cloned().ok_or_else(|| {
                    VerifyError::Other(format!("table {name}: no such base table among the captured ones"))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut registry = open_registry(settings, registry_topic).await?;
    let mut reports = Vec::new();
    for (db, table) in chosen {
        let started = Instant::now();
        let described = describe(&mut conn, &db, &table, flavor, &settings.snapshot).await?;
        let topic = settings.topics.topic_for(&db, &table).map_err(VerifyError::Other)?;
        let name = format!("{db}.{table}");
        let mut report = TableReport {
            table: name.clone(),
            topic: topic.clone(),
            rows: 0,
            records: 0,
            mismatches: HashMap::new(),
            listed: Vec::new(),
            skipped: None,
            seconds: 0.0,
        };
        if described.schema.primary_key.is_empty() {
            report.skipped = Some("no primary key: its records have no key to compare by".into());
            reports.push(report);
            continue;
        }
        let first = pass(settings, &mut conn, &described, &topic, &registry).await?;
        report.rows = first.rows;
        report.records = first.records;
        let mut persistent = first.problems;
        if !persistent.is_empty() {
            let now = crate::reader::current_position(&mut conn, flavor)
                .await
                .map_err(|e| VerifyError::Other(e.to_string()))?;
            wait_for_connector(settings, flavor, &now).await;
            // Schemas registered since the first pass.
            registry = open_registry(settings, registry_topic).await?;
            let second = pass(settings, &mut conn, &described, &topic, &registry).await?;
            persistent.retain(|k, (p, _)| second.problems.get(k).is_some_and(|(q, _)| q == p));
            report.rows = second.rows;
            report.records = second.records;
        }
        for (problem, shown) in persistent.values() {
            *report.mismatches.entry(*problem).or_default() += 1;
            if report.listed.len() < LISTED {
                report.listed.push((shown.clone(), *problem));
            }
        }
        report.listed.sort();
        report.seconds = started.elapsed().as_secs_f64();
        reports.push(report);
    }
    Ok(reports)
}

async fn open_registry(settings: &Settings, topic: &str) -> Result<EmbeddedRegistry, VerifyError> {
    EmbeddedRegistry::open(&settings.kafka, topic, settings.topics.replication_factor)
        .await
        .map_err(|e| VerifyError::Other(e.to_string()))
}

/// Key hash → (problem, key shown as text).
type Problems = HashMap<u64, (Problem, String)>;

struct Pass {
    rows: u64,
    records: u64,
    problems: Problems,
}

fn hash(bytes: &[u8]) -> u64 {
    // Fixed keys: the same bytes hash the same in every pass.
    let mut h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
    h.write(bytes);
    h.finish()
}

/// One comparison of a table with its topic.
async fn pass(
    settings: &Settings,
    conn: &mut mysql_async::Conn,
    d: &Described,
    topic: &str,
    registry: &EmbeddedRegistry,
) -> Result<Pass, VerifyError> {
    let started = Instant::now();
    let (mut latest, records, _) = read_topic(settings, topic, registry, None, d.estimate).await?;
    tracing::info!(topic, records, keys = latest.len(), secs = started.elapsed().as_secs_f64(), "topic read");
    let started = Instant::now();
    let projection = project::plan(&settings.columns, &d.schema).map_err(|e| VerifyError::Other(e.to_string()))?;
    let mut problems = Problems::new();
    let mut rows = 0u64;
    let mut after = None;
    let name = format!("{}.{}", d.schema.db, d.schema.table);
    let (mut key_bytes, mut row_bytes) = (Vec::new(), Vec::new());
    let format = Format::from(settings.envelope);
    let two_styles = format == Format::Debezium
        && projection
            .as_ref()
            .map_or(&d.schema, |p| &p.table)
            .columns
            .iter()
            .any(|c| matches!(c.ty, ColumnType::Json { .. }));
    loop {
        let (sql, params) = select(d, after.as_deref(), CHUNK)?;
        let raw: Vec<mysql_async::Row> = conn
            .exec(&sql, params)
            .await
            .map_err(|e| crate::source::SourceError::Query { query: sql.clone(), source: e })?;
        let n = raw.len();
        let (chunk, last) = convert_rows(raw, d, &name)?;
        for row in chunk {
            rows += 1;
            let change = RowChange {
                op: Op::Read,
                table: std::sync::Arc::clone(&d.schema),
                before: None,
                after: Some(row),
                at: Default::default(),
            };
            let change = project::shown(projection.as_ref(), &change);
            key_bytes.clear();
            binary::key(&mut key_bytes, &change, format).map_err(|e| VerifyError::Other(e.to_string()))?;
            let key = hash(&key_bytes);
            let values = change.after.as_deref().unwrap_or_default();
            let mut expect = |streamed: bool| -> Result<u64, VerifyError> {
                row_bytes.clear();
                binary::row(&mut row_bytes, &change.table, values, Style { format, streamed })
                    .map_err(|e| VerifyError::Other(e.to_string()))?;
                Ok(fingerprint(&row_bytes))
            };
            // The row as a snapshot writes it, or (JSON written compact when streamed, in the
            // debezium format) as the stream does.
            let expected = [expect(false)?, if two_styles { expect(true)? } else { DELETED }];
            let shown = || match datum::key(&change, format) {
                Ok(Some(k)) => serde_json::Value::try_from(k).map_or_else(|e| e.to_string(), |j| j.to_string()),
                _ => format!("hash {key:016x}"),
            };
            // Removed when seen: what is left at the end is only in the topic.
            match latest.remove(&key) {
                None | Some(DELETED) => {
                    problems.insert(key, (Problem::Missing, shown()));
                }
                Some(fp) if !expected.contains(&fp) => {
                    problems.insert(key, (Problem::Different, shown()));
                }
                Some(_) => {}
            }
        }
        if n < CHUNK {
            break;
        }
        after = last;
    }
    tracing::info!(table = %name, rows, secs = started.elapsed().as_secs_f64(), "table read");
    let extra: HashSet<u64> =
        latest.iter().filter(|(_, fp)| **fp != DELETED).map(|(k, _)| *k).take(LISTED * 10).collect();
    if !extra.is_empty() {
        // Read again for the keys themselves (only the listed ones are kept).
        let (_, _, keys) = read_topic(settings, topic, registry, Some(&extra), 0).await?;
        for (key, fp) in &latest {
            if *fp != DELETED {
                let shown = keys.get(key).cloned().unwrap_or_else(|| format!("hash {key:016x}"));
                problems.insert(*key, (Problem::Extra, shown));
            }
        }
    }
    Ok(Pass { rows, records, problems })
}

/// Records a topic map is sized for up front (more grow it).
const MAX_PRESIZE: u64 = 64 << 20;

/// The fingerprint of a deleted key (fingerprints of records are never 0).
const DELETED: u64 = 0;

/// The fingerprint of an `after` record's Avro bytes.
fn fingerprint(after: &[u8]) -> u64 {
    hash(after) | 1
}

/// Where the `after` image lies in an envelope written with one schema.
struct AfterPlan {
    /// The fields before `after`, to step over.
    ahead: Vec<Plan>,
    /// `after`'s union branches.
    branches: Vec<Plan>,
}

impl AfterPlan {
    fn new(schema: &apache_avro::Schema) -> Result<AfterPlan, String> {
        let fields = skip::fields(schema).map_err(|e| e.to_string())?;
        let at = fields.iter().position(|(name, _)| name == "after").ok_or("the record has no `after` field")?;
        let mut ahead: Vec<Plan> = fields.into_iter().take(at + 1).map(|(_, plan)| plan).collect();
        match ahead.pop() {
            Some(Plan::Union(branches)) => Ok(AfterPlan { ahead, branches }),
            _ => Err("`after` is not a union".into()),
        }
    }

    /// The fingerprint of the record's `after` image, [`DELETED`] when it is null.
    fn fingerprint(&self, datum: &[u8]) -> Result<u64, SkipError> {
        let mut at = 0;
        for plan in &self.ahead {
            plan.skip(datum, &mut at)?;
        }
        let branch = skip::varint(datum, &mut at)?;
        let plan = usize::try_from(branch).ok().and_then(|b| self.branches.get(b)).ok_or(SkipError::Branch(branch))?;
        if *plan == Plan::Nothing {
            return Ok(DELETED);
        }
        let start = at;
        plan.skip(datum, &mut at)?;
        Ok(fingerprint(&datum[start..at]))
    }
}

/// The topic from the beginning to its end now: key hash → fingerprint of the latest `after`
/// image ([`DELETED`]: deleted), and the number of records read.
async fn read_topic(
    settings: &Settings,
    topic: &str,
    registry: &EmbeddedRegistry,
    keys_of: Option<&HashSet<u64>>,
    table_estimate: u64,
) -> Result<(HashMap<u64, u64>, u64, HashMap<u64, String>), VerifyError> {
    let err = |e: String| VerifyError::Other(format!("topic {topic}: {e}"));
    let mut config = crate::kafka::assigning(&crate::kafka::client_config(&settings.kafka));
    config
        // A topic written in Kafka transactions ends in a marker no record has: its end is the
        // partition's EOF (at the last stable offset, as read_committed reads).
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        // Bounded prefetch: the per-key map, not librdkafka's queue, is what memory is for.
        .set("queued.max.messages.kbytes", "16384");
    crate::kafka::fast_reads(&mut config);
    let consumer: BaseConsumer<crate::kafka::Context> =
        crate::kafka::create(&config).map_err(|e| err(e.to_string()))?;
    let topic_owned = topic.to_string();
    let metadata = tokio::task::block_in_place(|| consumer.fetch_metadata(Some(&topic_owned), Duration::from_secs(30)))
        .map_err(|e| err(e.to_string()))?;
    let partitions: Vec<i32> =
        metadata.topics().first().map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
    let mut ends = HashMap::new();
    let mut total = 0u64;
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = tokio::task::block_in_place(|| consumer.fetch_watermarks(topic, p, Duration::from_secs(30)))
            .map_err(|e| err(e.to_string()))?;
        if high > low {
            total += (high - low) as u64;
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(|e| err(e.to_string()))?;
        }
    }
    // 16 bytes per key, sized once up front (a growing map holds its old and new tables at once):
    // for the records, or for the table's estimated rows if fewer (an update-heavy topic has
    // many records per key). A 4M-key topic's map takes about 140 MB. Keyed lookups only need
    // the extra keys.
    let expected = total.min(table_estimate.saturating_add(table_estimate / 8).saturating_add(1024));
    let capacity = if keys_of.is_some() { 0 } else { expected.min(MAX_PRESIZE) as usize };
    let mut latest: HashMap<u64, u64> = HashMap::with_capacity(capacity);
    let mut records = 0u64;
    let mut shown_keys = HashMap::new();
    if ends.is_empty() {
        return Ok((latest, 0, shown_keys));
    }
    consumer.assign(&tpl).map_err(|e| err(e.to_string()))?;
    let mut schemas: HashMap<u32, apache_avro::Schema> = HashMap::new();
    let mut plans: HashMap<u32, AfterPlan> = HashMap::new();
    let mut done: HashSet<i32> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    // One blocking section for the whole read (polling is synchronous).
    tokio::task::block_in_place(|| -> Result<(), VerifyError> {
        while done.len() < ends.len() {
            if Instant::now() > deadline {
                return Err(err("did not reach the end of the topic within 10 minutes".into()));
            }
            let polled = consumer.poll(Duration::from_millis(200));
            if let Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) = polled {
                done.insert(p);
                continue;
            }
            let Some(message) = crate::kafka::next_record(polled).map_err(|e| err(e.to_string()))? else { continue };
            let partition = message.partition();
            if message.offset() + 1 >= ends.get(&partition).copied().unwrap_or(0) {
                done.insert(partition);
            }
            if message.offset() >= ends.get(&partition).copied().unwrap_or(0) {
                continue;
            }
            records += 1;
            let Some(key) = message.key() else { continue };
            let (key_id, key_datum) = wire::parse(key).map_err(|e| err(e.to_string()))?;
            let key = hash(key_datum);
            if let Some(wanted) = keys_of {
                if wanted.contains(&key) && !shown_keys.contains_key(&key) {
                    let schema = schema_of(&mut schemas, registry, key_id).map_err(err)?;
                    let decoded = apache_avro::reader::datum::GenericDatumReader::builder(schema)
                        .build()
                        .and_then(|r| r.read_value(&mut &key_datum[..]))
                        .map_err(|e| err(format!("a key does not decode: {e}")))?;
                    let json = serde_json::Value::try_from(decoded).map_err(|e| err(e.to_string()))?;
                    shown_keys.insert(key, json.to_string());
                }
                continue;
            }
            let Some(value) = message.payload() else {
                latest.insert(key, DELETED);
                continue;
            };
            let (id, datum_bytes) = wire::parse(value).map_err(|e| err(e.to_string()))?;
            if let std::collections::hash_map::Entry::Vacant(slot) = plans.entry(id) {
                let plan = AfterPlan::new(schema_of(&mut schemas, registry, id).map_err(err)?)
                    .map_err(|e| err(format!("schema id {id}: {e}")))?;
                slot.insert(plan);
            }
            let plan = plans.get(&id).ok_or_else(|| err("plan cache".into()))?;
            let fp = plan.fingerprint(datum_bytes).map_err(|e| {
                err(format!("the record at partition {partition} offset {} does not decode: {e}", message.offset()))
            })?;
            latest.insert(key, fp);
        }
        Ok(())
    })?;
    Ok((latest, records, shown_keys))
}

/// The parsed schema `id`, from the cache or the embedded registry.
fn schema_of<'a>(
    schemas: &'a mut HashMap<u32, apache_avro::Schema>,
    registry: &EmbeddedRegistry,
    id: u32,
) -> Result<&'a apache_avro::Schema, String> {
    if let std::collections::hash_map::Entry::Vacant(slot) = schemas.entry(id) {
        let text = registry
            .read(|s| s.schema(id).map(str::to_string))
            .ok_or_else(|| format!("schema id {id} is not in the embedded registry"))?;
        slot.insert(apache_avro::Schema::parse_str(&text).map_err(|e| e.to_string())?);
    }
    schemas.get(&id).ok_or_else(|| "schema cache".to_string())
}

/// Waits (bounded) until the connector's stored offset covers `position`.
async fn wait_for_connector(settings: &Settings, flavor: Flavor, position: &Position) {
    let deadline = Instant::now() + RECHECK_WAIT;
    let Ok(store) = crate::committer::offsets::OffsetStore::open(
        &settings.offsets,
        &settings.kafka,
        settings.topics.replication_factor,
    )
    .await
    else {
        return;
    };
    while Instant::now() < deadline {
        if let Ok(Some(stored)) = store.load(&settings.name).await
            && let Ok(p) = stored.position(flavor)
            && position.is_subset(&p)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::warn!(position = %position, "the connector's offset did not reach the source position within 60 s; re-checking anyway");
}
