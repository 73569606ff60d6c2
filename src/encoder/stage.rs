//! The encoder stage: a row change → topic, key bytes and value bytes in the Confluent wire
//! format. Keeps, per table, the schemas of the table's current shape and their registry ids; a
//! new shape (a DDL passed) is registered before its first record is encoded.

use super::avro_schema::{TableSchemas, table_schemas};
use super::{EncodeError, datum, wire};
use crate::change::RowChange;
use crate::registry::embedded::EmbeddedRegistry;
use crate::schema::TableSchema;
use std::collections::HashMap;
use std::sync::Arc;

/// One encoded record.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub topic: String,
    /// `None`: no primary key (null Kafka key).
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

struct Prepared {
    table: Arc<TableSchema>,
    topic: String,
    schemas: TableSchemas,
    key_id: Option<u32>,
    value_id: u32,
}

/// See the module docs.
pub struct Encoder {
    registry: Arc<EmbeddedRegistry>,
    prefix: String,
    tables: HashMap<(String, String), Prepared>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("prefix", &self.prefix).field("tables", &self.tables.len()).finish()
    }
}

impl Encoder {
    pub fn new(registry: Arc<EmbeddedRegistry>, prefix: &str) -> Self {
        Encoder { registry, prefix: prefix.to_string(), tables: HashMap::new() }
    }

    /// The topic of a table: `<prefix>.<db>.<table>`.
    pub fn topic(&self, table: &TableSchema) -> String {
        format!("{}.{}.{}", self.prefix, table.db, table.table)
    }

    async fn prepare(&mut self, table: &Arc<TableSchema>) -> Result<&Prepared, EncodeError> {
        let name = (table.db.clone(), table.table.clone());
        let current = self.tables.get(&name).is_some_and(|p| Arc::ptr_eq(&p.table, table) || *p.table == **table);
        if !current {
            let topic = self.topic(table);
            let schemas = table_schemas(table, &topic)?;
            let reg = |e: crate::registry::RegistryError| EncodeError::Schema {
                table: format!("{}.{}", table.db, table.table),
                problem: e.to_string(),
            };
            let key_id = match &schemas.key {
                Some((text, _)) => Some(self.registry.register(&format!("{topic}-key"), text).await.map_err(reg)?.id),
                None => None,
            };
            let value_id = self.registry.register(&format!("{topic}-value"), &schemas.value.0).await.map_err(reg)?.id;
            self.tables.insert(name.clone(), Prepared { table: Arc::clone(table), topic, schemas, key_id, value_id });
        }
        self.tables.get(&name).ok_or_else(|| EncodeError::Avro("table schema vanished".into()))
    }

    /// Encodes one change.
    pub async fn encode(
        &mut self,
        change: &RowChange,
        source: &datum::SourceInfo<'_>,
        ts_ms: i64,
    ) -> Result<Encoded, EncodeError> {
        let prepared = self.prepare(&change.table).await?;
        let key = match (&prepared.schemas.key, prepared.key_id, datum::key(change)?) {
            (Some((_, schema)), Some(id), Some(value)) => {
                let mut out = Vec::new();
                wire::frame_into(id, &datum::encode(schema, value)?, &mut out);
                Some(out)
            }
            _ => None,
        };
        let envelope = datum::envelope(change, source, None, ts_ms)?;
        let mut value = Vec::new();
        wire::frame_into(prepared.value_id, &datum::encode(&prepared.schemas.value.1, envelope)?, &mut value);
        Ok(Encoded { topic: prepared.topic.clone(), key, value })
    }
}
