//! The encoder stage: a row change → topic, key bytes and value bytes in the Confluent wire
//! format. Keeps, per table, its topic (`[topics]` routes), its column projection (`[columns]`
//! rules), the schemas of the table's current shape and their registry ids; a new shape (a DDL
//! passed) is planned and registered before its first record is encoded. In the `json` format
//! nothing is registered: each record carries its Connect schema ([`super::connect_json`]).

use super::avro_schema::table_schemas;
use super::project::{self, Projection};
use super::{EncodeError, Format, binary, connect_json, datum, wire};
use crate::change::RowChange;
use crate::config::{ColumnRules, EnvelopeFormat, TopicSettings};
use crate::registry::Registry;
use crate::schema::TableSchema;
use std::collections::HashMap;
use std::sync::Arc;

/// One encoded transaction metadata record.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub topic: Arc<str>,
    /// `None`: no primary key (null Kafka key).
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

struct Prepared {
    table: Arc<TableSchema>,
    projection: Option<Projection>,
    topic: Arc<str>,
    /// `db.table`.
    name: Arc<str>,
    key_id: Option<u32>,
    value_id: u32,
    /// The registered value schema (for [`Encoder::verify_inline`]).
    value_schema: apache_avro::Schema,
    /// The `json` format's Connect schemas.
    json: Option<ConnectSchemas>,
}

/// A schema of the transaction topic: Avro, its registry id (0 in the `json` format), and in the
/// `json` format its Connect schema as text and parsed.
type TxnSchema = (apache_avro::Schema, u32, Option<(String, serde_json::Value)>);

/// Connect schemas of a table's records, as text (written into each record) and parsed (to walk
/// the payload with).
struct ConnectSchemas {
    key: Option<(String, serde_json::Value)>,
    value: (String, serde_json::Value),
}

impl ConnectSchemas {
    fn of(schemas: &super::avro_schema::TableSchemas, table: &str) -> Result<ConnectSchemas, EncodeError> {
        let convert = |text: &str| -> Result<(String, serde_json::Value), EncodeError> {
            let avro: serde_json::Value = serde_json::from_str(text).map_err(|e| EncodeError::Avro(e.to_string()))?;
            let connect = connect_json::connect_schema(&avro)
                .map_err(|problem| EncodeError::Schema { table: table.to_string(), problem })?;
            Ok((connect.to_string(), connect))
        };
        Ok(ConnectSchemas {
            key: schemas.key.as_ref().map(|(text, _)| convert(text)).transpose()?,
            value: convert(&schemas.value.0)?,
        })
    }
}

/// `value` as a `json`-format record of `schema`.
fn json_record(
    schema: &(String, serde_json::Value),
    value: &apache_avro::types::Value,
    table: &str,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(schema.0.len() + 256);
    connect_json::record_into(&mut out, &schema.0, &schema.1, value)
        .map_err(|problem| EncodeError::Schema { table: table.to_string(), problem })?;
    Ok(out)
}

/// See the module docs.
pub struct Encoder {
    registry: Registry,
    topics: TopicSettings,
    columns: ColumnRules,
    /// The values' mapping (`json` uses Debezium's).
    format: Format,
    /// `envelope.format = "json"`: Connect's JSON with schemas instead of Avro.
    json: bool,
    /// `mysql` or `mariadb` (names the `debezium` format's source record).
    connector: &'static str,
    /// Prepared tables, and their index by (db, table).
    prepared: Vec<Prepared>,
    tables: HashMap<(String, String), usize>,
    /// The entry of the previous change's table: consecutive rows of a table share one
    /// `Arc<TableSchema>`, so most lookups are a pointer comparison.
    last: Option<usize>,
    /// Key and value schemas of the transaction topic with their ids (0 in the `json` format),
    /// once registered, and their Connect schemas in the `json` format.
    transaction: Option<[TxnSchema; 2]>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("prefix", &self.topics.prefix).field("tables", &self.tables.len()).finish()
    }
}

impl Encoder {
    pub fn new(
        registry: Registry,
        topics: TopicSettings,
        columns: ColumnRules,
        format: EnvelopeFormat,
        connector: &'static str,
    ) -> Self {
        Encoder {
            registry,
            topics,
            columns,
            format: format.into(),
            json: format == EnvelopeFormat::Json,
            connector,
            prepared: Vec::new(),
            tables: HashMap::new(),
            last: None,
            transaction: None,
        }
    }

    /// The index in `prepared` of `table`'s current shape, planning and registering it if new.
    async fn prepare(&mut self, table: &Arc<TableSchema>) -> Result<usize, EncodeError> {
        if let Some(i) = self.last
            && Arc::ptr_eq(&self.prepared[i].table, table)
        {
            return Ok(i);
        }
        let name = (table.db.clone(), table.table.clone());
        let known = self.tables.get(&name).copied();
        if let Some(i) = known
            && (Arc::ptr_eq(&self.prepared[i].table, table) || *self.prepared[i].table == **table)
        {
            self.prepared[i].table = Arc::clone(table);
            self.last = Some(i);
            return Ok(i);
        }
        let name_of = || format!("{}.{}", table.db, table.table);
        let topic = self
            .topics
            .topic_for(&table.db, &table.table)
            .map_err(|problem| EncodeError::Schema { table: name_of(), problem })?;
        let projection = project::plan(&self.columns, table)?;
        let shown = projection.as_ref().map_or(table, |p| &p.table);
        let schemas = table_schemas(shown, &topic, self.format, self.connector)?;
        let (key_id, value_id, json) = if self.json {
            (schemas.key.as_ref().map(|_| 0), 0, Some(ConnectSchemas::of(&schemas, &name_of())?))
        } else {
            let reg = |e: crate::registry::RegistryError| EncodeError::Registry { table: name_of(), source: e };
            let key_id = match &schemas.key {
                Some((text, _)) => Some(self.registry.register(&format!("{topic}-key"), text).await.map_err(reg)?),
                None => None,
            };
            (key_id, self.registry.register(&format!("{topic}-value"), &schemas.value.0).await.map_err(reg)?, None)
        };
        let entry = Prepared {
            table: Arc::clone(table),
            projection,
            topic: topic.into(),
            name: name_of().into(),
            key_id,
            value_id,
            value_schema: schemas.value.1.clone(),
            json,
        };
        let i = match known {
            Some(i) => {
                self.prepared[i] = entry;
                i
            }
            None => {
                self.prepared.push(entry);
                self.tables.insert(name, self.prepared.len() - 1);
                self.prepared.len() - 1
            }
        };
        self.last = Some(i);
        Ok(i)
    }

    /// Encodes one change into the caller's buffers (cleared first; reused across records, as the
    /// producer copies what it sends); `txn` fills the envelope's `transaction` block. Returns the
    /// record's topic and whether it has a key (an empty `key` otherwise).
    pub async fn encode_into(
        &mut self,
        change: &RowChange,
        source: &datum::SourceInfo<'_>,
        txn: Option<&datum::TxnInfo>,
        ts_ms: i64,
        key: &mut Vec<u8>,
        value: &mut Vec<u8>,
    ) -> Result<(Arc<str>, bool), EncodeError> {
        key.clear();
        value.clear();
        let i = self.prepare(&change.table).await?;
        let prepared = &self.prepared[i];
        let change = &*project::shown(prepared.projection.as_ref(), change);
        if let Some(json) = &prepared.json {
            // Through the Avro values of the `debezium` format, written as Connect's JSON.
            let keyed = match (&json.key, datum::key(change, self.format)?) {
                (Some(schema), Some(k)) => {
                    *key = json_record(schema, &k, &prepared.name)?;
                    true
                }
                _ => false,
            };
            let envelope = datum::envelope(change, source, txn, ts_ms, self.format)?;
            *value = json_record(&json.value, &envelope, &prepared.name)?;
            return Ok((Arc::clone(&prepared.topic), keyed));
        }
        // Straight to Avro binary (binary.rs; the same bytes as apache-avro, property-tested).
        let keyed = match prepared.key_id {
            Some(id) => {
                wire::header_into(id, key);
                binary::key(key, change, self.format)?
            }
            None => false,
        };
        if !keyed {
            key.clear();
        }
        wire::header_into(prepared.value_id, value);
        binary::envelope(value, change, source, txn, ts_ms, self.format)?;
        Ok((Arc::clone(&prepared.topic), keyed))
    }

    /// Checks the record [`Encoder::encode_into`] just made for `change` the other way round: the
    /// value decodes under the registered schema, and an independent encoding of the source row
    /// (apache-avro's, from the row's typed values) gives the same bytes. A mismatch is a
    /// per-table error naming the table.
    pub fn verify_inline(
        &self,
        change: &RowChange,
        source: &datum::SourceInfo<'_>,
        ts_ms: i64,
        value: &[u8],
    ) -> Result<(), EncodeError> {
        let Some(prepared) = self.last.and_then(|i| self.prepared.get(i)) else {
            return Err(EncodeError::Avro("inline verify without a prepared table".into()));
        };
        let table = || prepared.name.to_string();
        if prepared.json.is_some() {
            // The record is JSON with a schema and a payload, and its values are valid for the
            // table's Avro schema (the `json` format writes the `debezium` format's values).
            let doc: serde_json::Value = serde_json::from_slice(value).map_err(|e| EncodeError::Schema {
                table: table(),
                problem: format!("inline verify: the record is not JSON: {e}"),
            })?;
            if !doc.get("schema").is_some_and(serde_json::Value::is_object) || doc.get("payload").is_none() {
                return Err(EncodeError::Schema {
                    table: table(),
                    problem: "inline verify: no schema or payload".into(),
                });
            }
            let change = &*project::shown(prepared.projection.as_ref(), change);
            datum::encode(&prepared.value_schema, datum::envelope(change, source, None, ts_ms, self.format)?)?;
            return Ok(());
        }
        let (id, mut datum_bytes) = wire::parse(value)?;
        let bytes = datum_bytes;
        if id != prepared.value_id {
            return Err(EncodeError::Schema { table: table(), problem: format!("inline verify: schema id {id}") });
        }
        apache_avro::reader::datum::GenericDatumReader::builder(&prepared.value_schema)
            .build()
            .and_then(|r| r.read_value(&mut datum_bytes))
            .map_err(|e| EncodeError::Schema {
                table: table(),
                problem: format!("inline verify: the record does not decode: {e}"),
            })?;
        if !datum_bytes.is_empty() {
            return Err(EncodeError::Schema {
                table: table(),
                problem: format!("inline verify: {} bytes after the record", datum_bytes.len()),
            });
        }
        let change = &*project::shown(prepared.projection.as_ref(), change);
        let expected =
            datum::encode(&prepared.value_schema, datum::envelope(change, source, None, ts_ms, self.format)?)?;
        if expected != bytes {
            return Err(EncodeError::Schema {
                table: table(),
                problem: "inline verify: the record differs from an independent encoding of the row read".into(),
            });
        }
        Ok(())
    }

    /// The BEGIN record (`end: None`) or END record (`end`: data records per table) of the
    /// transaction `id` for the transaction topic; `ts_ms` is the source commit time.
    pub async fn transaction_record(
        &mut self,
        id: &str,
        end: Option<&[(crate::change::TableId, u64)]>,
        ts_ms: i64,
    ) -> Result<Encoded, EncodeError> {
        use apache_avro::types::Value as Avro;
        let topic = self.topics.transaction_topic();
        if self.transaction.is_none() {
            let mut registered = Vec::new();
            for (suffix, text) in
                [("key", super::fixed::TRANSACTION_METADATA_KEY), ("value", super::fixed::TRANSACTION_METADATA_VALUE)]
            {
                // Registered as compact JSON with docs and defaults (the canonical form drops defaults).
                let compact = serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| EncodeError::Avro(format!("transaction metadata schema: {e}")))?
                    .to_string();
                let schema = apache_avro::Schema::parse_str(&compact).map_err(|e| EncodeError::Avro(e.to_string()))?;
                if self.json {
                    let avro: serde_json::Value =
                        serde_json::from_str(&compact).map_err(|e| EncodeError::Avro(e.to_string()))?;
                    let connect = connect_json::connect_schema(&avro)
                        .map_err(|problem| EncodeError::Schema { table: topic.clone(), problem })?;
                    registered.push((schema, 0, Some((connect.to_string(), connect))));
                    continue;
                }
                let id = self
                    .registry
                    .register(&format!("{topic}-{suffix}"), &compact)
                    .await
                    .map_err(|e| EncodeError::Registry { table: topic.clone(), source: e })?;
                registered.push((schema, id, None));
            }
            let value = registered.pop();
            let key = registered.pop();
            if let (Some(key), Some(value)) = (key, value) {
                self.transaction = Some([key, value]);
            }
        }
        let Some([(key_schema, key_id, key_json), (value_schema, value_id, value_json)]) = &self.transaction else {
            return Err(EncodeError::Avro("transaction schemas missing".into()));
        };
        let opt = |v: Option<Avro>| match v {
            None => Avro::Union(0, Box::new(Avro::Null)),
            Some(v) => Avro::Union(1, Box::new(v)),
        };
        let count = end.map(|tables| Avro::Long(tables.iter().map(|(_, n)| *n as i64).sum()));
        let tables = end.map(|tables| {
            Avro::Array(
                tables
                    .iter()
                    .map(|(name, n)| {
                        Avro::Record(vec![
                            ("data_collection".into(), Avro::String(name.dotted().to_string())),
                            ("event_count".into(), Avro::Long(*n as i64)),
                        ])
                    })
                    .collect(),
            )
        });
        let value = Avro::Record(vec![
            ("status".into(), Avro::String(if end.is_some() { "END" } else { "BEGIN" }.into())),
            ("id".into(), Avro::String(id.into())),
            ("event_count".into(), opt(count)),
            ("data_collections".into(), opt(tables)),
            ("ts_ms".into(), Avro::Long(ts_ms)),
        ]);
        let key = Avro::Record(vec![("id".into(), Avro::String(id.into()))]);
        if let (Some(key_json), Some(value_json)) = (key_json, value_json) {
            // Validated against the Avro schema as the Avro records are.
            datum::encode(key_schema, key.clone())?;
            datum::encode(value_schema, value.clone())?;
            let (key, value) = (json_record(key_json, &key, &topic)?, json_record(value_json, &value, &topic)?);
            return Ok(Encoded { topic: topic.into(), key: Some(key), value });
        }
        let (mut key_bytes, mut value_bytes) = (Vec::new(), Vec::new());
        wire::frame_into(*key_id, &datum::encode(key_schema, key)?, &mut key_bytes);
        wire::frame_into(*value_id, &datum::encode(value_schema, value)?, &mut value_bytes);
        Ok(Encoded { topic: topic.into(), key: Some(key_bytes), value: value_bytes })
    }
}
