//! Avro schemas derived from a table schema: pure and deterministic (same table, same schema
//! text), so the registry sees a new version only when the table really changed.
//!
//! Names follow Debezium: namespace `<topic>` (sanitised), records `Key`, `Value` and `Envelope`;
//! the source block is `io.debezium.connector.mysql.Source`. Avro names allow only
//! `[A-Za-z0-9_]` (and not a leading digit); other characters in database, table and column names
//! become `_`, and the original column name is kept in the field's `"connect.name"`-style
//! `"mysql.column"` attribute. Two columns that sanitise to the same name are an error for that
//! table.

use super::{EncodeError, fixed};
use crate::schema::{Charset, ColumnType, TableSchema};
use serde_json::{Value as Json, json};
use std::collections::HashSet;

/// The key and value schemas of one table, as JSON text and parsed.
#[derive(Debug, Clone)]
pub struct TableSchemas {
    /// `None` for a table without a primary key: its records have a null key.
    pub key: Option<(String, apache_avro::Schema)>,
    pub value: (String, apache_avro::Schema),
}

/// Avro name for arbitrary text.
pub fn avro_name(text: &str) -> String {
    let mut out: String = text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Avro namespace for a topic: each dot-separated part is an Avro name.
pub fn namespace(topic: &str) -> String {
    topic.split('.').map(avro_name).collect::<Vec<_>>().join(".")
}

/// Bytes of a two's-complement decimal wide enough for `precision` digits, sign included. Every
/// decimal is written at exactly this width (apache-avro fails on shorter bytes).
pub fn decimal_width(precision: u8) -> usize {
    // bits for 10^p - 1, plus the sign bit
    let bits = (f64::from(precision) * std::f64::consts::LOG2_10).ceil() as usize + 1;
    bits.div_ceil(8)
}

/// The Avro type of one column's values (without the null union).
pub fn column_type(ty: &ColumnType) -> Json {
    use ColumnType as T;
    let micro_time = json!({"type": "long", "connect.name": "io.debezium.time.MicroTime"});
    match ty {
        T::TinyInt { .. } | T::SmallInt { .. } | T::MediumInt { .. } | T::Int { unsigned: false } | T::Year => {
            json!("int")
        }
        T::Int { unsigned: true } | T::BigInt { unsigned: false } => json!("long"),
        T::BigInt { unsigned: true } => {
            json!({"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 0, "connect.name": "org.apache.kafka.connect.data.Decimal"})
        }
        T::Float => json!("float"),
        T::Double => json!("double"),
        T::Decimal { precision, scale } => json!({
            "type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale,
            "connect.name": "org.apache.kafka.connect.data.Decimal"
        }),
        T::Bit { width } if *width <= 63 => json!({"type": "long", "connect.name": "io.rowferry.Bits", "bits": width}),
        T::Bit { width } => json!({"type": "bytes", "connect.name": "io.debezium.data.Bits", "bits": width}),
        T::Date => json!({"type": "int", "logicalType": "date"}),
        T::DateTime { .. } | T::DateTimeV1 => json!({"type": "long", "logicalType": "local-timestamp-micros"}),
        T::Timestamp { .. } | T::TimestampV1 => json!({"type": "long", "logicalType": "timestamp-micros"}),
        T::Time { .. } | T::TimeV1 => micro_time,
        T::Char { charset, .. } | T::VarChar { charset, .. } | T::Blob { charset, .. } => {
            if *charset == Charset::Binary { json!("bytes") } else { json!("string") }
        }
        T::Enum { labels, .. } => {
            json!({"type": "string", "connect.name": "io.debezium.data.Enum", "allowed": labels.join(",")})
        }
        T::Set { labels, .. } => {
            json!({"type": "array", "items": "string", "connect.name": "io.rowferry.Set", "allowed": labels.join(",")})
        }
        T::Json { .. } | T::JsonText { .. } => json!({"type": "string", "connect.name": "io.debezium.data.Json"}),
        T::Geometry { .. } => json!({
            "type": "record", "name": "Geometry", "namespace": "io.debezium.data.geometry",
            "fields": [{"name": "wkb", "type": "bytes"}, {"name": "srid", "type": ["null", "int"], "default": null}]
        }),
        T::Vector { .. } | T::VarVector { .. } => {
            json!({"type": "array", "items": "float", "connect.name": "io.rowferry.Vector"})
        }
        T::Uuid => json!({"type": "string", "logicalType": "uuid"}),
        T::Inet4 | T::Inet6 => json!("string"),
        T::Null => json!("null"),
    }
}

/// Avro's rule: a named type is defined once per schema and then referred to by name.
fn dedupe_named(ty: Json, defined: &mut HashSet<String>) -> Json {
    if let Some(name) = ty.get("name").and_then(Json::as_str) {
        let full = format!("{}.{name}", ty.get("namespace").and_then(Json::as_str).unwrap_or_default());
        if !defined.insert(full.clone()) {
            return json!(full);
        }
    }
    ty
}

fn row_record(
    table: &TableSchema,
    ns: &str,
    name: &str,
    columns: &[usize],
    nullable: bool,
) -> Result<Json, EncodeError> {
    let mut seen = HashSet::new();
    let mut defined = HashSet::new();
    let mut fields = Vec::with_capacity(columns.len());
    for &i in columns {
        let column = &table.columns[i];
        let field = avro_name(&column.name);
        if !seen.insert(field.clone()) {
            return Err(EncodeError::Schema {
                table: format!("{}.{}", table.db, table.table),
                problem: format!("columns sanitise to the same Avro name {field:?}"),
            });
        }
        let ty = dedupe_named(column_type(&column.ty), &mut defined);
        let mut f = if nullable || ty == json!("null") {
            json!({"name": field, "type": ["null", ty], "default": null})
        } else {
            json!({"name": field, "type": ty})
        };
        if field != column.name {
            f["mysql.column"] = json!(column.name);
        }
        fields.push(f);
    }
    Ok(
        json!({"type": "record", "name": name, "namespace": ns, "fields": fields, "connect.name": format!("{ns}.{name}")}),
    )
}

fn parse(text: &str, table: &TableSchema) -> Result<apache_avro::Schema, EncodeError> {
    apache_avro::Schema::parse_str(text)
        .map_err(|e| EncodeError::Schema { table: format!("{}.{}", table.db, table.table), problem: e.to_string() })
}

/// The key and value schemas of `table` for records on `topic`.
pub fn table_schemas(table: &TableSchema, topic: &str) -> Result<TableSchemas, EncodeError> {
    let ns = namespace(topic);
    let all: Vec<usize> = (0..table.columns.len()).collect();
    let value_row = row_record(table, &ns, "Value", &all, true)?;
    let source: Json =
        serde_json::from_str(fixed::SOURCE).map_err(|e| EncodeError::Avro(format!("source.avsc: {e}")))?;
    let transaction: Json =
        serde_json::from_str(fixed::TRANSACTION).map_err(|e| EncodeError::Avro(format!("transaction.avsc: {e}")))?;
    let envelope = json!({
        "type": "record",
        "name": "Envelope",
        "namespace": ns,
        "connect.name": format!("{ns}.Envelope"),
        "fields": [
            {"name": "before", "type": ["null", value_row], "default": null},
            {"name": "after", "type": ["null", format!("{ns}.Value")], "default": null},
            {"name": "source", "type": source},
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": ["null", "long"], "default": null},
            {"name": "transaction", "type": ["null", transaction], "default": null}
        ]
    });
    let value_text = envelope.to_string();
    let value = (value_text.clone(), parse(&value_text, table)?);
    let key = if table.primary_key.is_empty() {
        None
    } else {
        let text = row_record(table, &ns, "Key", &table.primary_key, false)?.to_string();
        let schema = parse(&text, table)?;
        Some((text, schema))
    };
    Ok(TableSchemas { key, value })
}

#[cfg(test)]
pub(crate) mod tests;
