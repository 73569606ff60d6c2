//! Avro schemas derived from a table schema: pure and deterministic (same table, same schema
//! text), so the registry sees a new version only when the table really changed.
//!
//! Names follow Debezium: namespace `<topic>` (sanitised), records `Key`, `Value` and `Envelope`;
//! the source block is `io.debezium.connector.mysql.Source`. In the `debezium` format every
//! schema also carries the annotations Confluent's AvroConverter writes for Debezium's Connect
//! schemas (`connect.name`, `connect.version`, `connect.parameters`, `connect.type`), so a
//! Connect-based sink reads the same Connect schema from rowferry's records as from Debezium's. Avro names allow only
//! `[A-Za-z0-9_]` (and not a leading digit); other characters in database, table and column names
//! become `_`, and the original column name is kept in the field's `"connect.name"`-style
//! `"mysql.column"` attribute. Two columns that sanitise to the same name are an error for that
//! table.

use super::{EncodeError, Format, fixed};
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
pub fn column_type(ty: &ColumnType, format: Format) -> Json {
    match format {
        Format::Debezium => debezium_type(ty),
        Format::AvroNative => native_type(ty),
    }
}

/// A Connect schema with a name and version 1 (Debezium's semantic types), as AvroData writes it.
fn named(avro: &str, name: &str) -> Json {
    json!({"type": avro, "connect.version": 1, "connect.name": name})
}

fn with_parameters(mut ty: Json, parameters: Json) -> Json {
    ty["connect.parameters"] = parameters;
    ty
}

/// What Debezium 3.6's MySQL connector declares for a column (default converter settings),
/// through AvroData.
fn debezium_type(ty: &ColumnType) -> Json {
    use ColumnType as T;
    match ty {
        T::TinyInt { .. } | T::SmallInt { unsigned: false } => json!({"type": "int", "connect.type": "int16"}),
        T::SmallInt { unsigned: true } | T::MediumInt { .. } | T::Int { unsigned: false } => json!("int"),
        T::Int { unsigned: true } | T::BigInt { .. } => json!("long"),
        T::Float => json!("float"),
        T::Double => json!("double"),
        T::Decimal { precision, scale } => json!({
            "type": "bytes", "scale": scale, "precision": precision, "connect.version": 1,
            "connect.parameters": {"scale": scale.to_string(), "connect.decimal.precision": precision.to_string()},
            "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"
        }),
        T::Bit { width: 1 } => json!("boolean"),
        T::Bit { width } => {
            with_parameters(named("bytes", "io.debezium.data.Bits"), json!({"length": width.to_string()}))
        }
        T::Year => named("int", "io.debezium.time.Year"),
        T::Date => named("int", "io.debezium.time.Date"),
        T::Time { .. } | T::TimeV1 => named("long", "io.debezium.time.MicroTime"),
        T::DateTime { fsp } if *fsp > 3 => named("long", "io.debezium.time.MicroTimestamp"),
        T::DateTime { .. } | T::DateTimeV1 => named("long", "io.debezium.time.Timestamp"),
        T::Timestamp { .. } | T::TimestampV1 => named("string", "io.debezium.time.ZonedTimestamp"),
        T::Char { charset, .. } | T::VarChar { charset, .. } | T::Blob { charset, .. } => {
            if *charset == Charset::Binary { json!("bytes") } else { json!("string") }
        }
        T::Enum { labels, .. } => {
            with_parameters(named("string", "io.debezium.data.Enum"), json!({"allowed": labels.join(",")}))
        }
        T::Set { labels, .. } => {
            with_parameters(named("string", "io.debezium.data.EnumSet"), json!({"allowed": labels.join(",")}))
        }
        T::Json { .. } | T::JsonText { .. } => named("string", "io.debezium.data.Json"),
        T::Geometry { .. } => json!({
            "type": "record", "name": "Geometry", "namespace": "io.debezium.data.geometry",
            "fields": [{"name": "wkb", "type": "bytes"}, {"name": "srid", "type": ["null", "int"], "default": null}],
            "connect.version": 1, "connect.name": "io.debezium.data.geometry.Geometry"
        }),
        T::Vector { .. } | T::VarVector { .. } => {
            json!({"type": "array", "items": "float", "connect.version": 1, "connect.name": "io.debezium.data.FloatVector"})
        }
        T::Uuid | T::Inet4 | T::Inet6 => json!("string"),
        T::Null => json!("null"),
    }
}

/// The `avro-native` format: Avro logical types.
fn native_type(ty: &ColumnType) -> Json {
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

/// Whether column `i` of `table` is a plain (not `["null", T]`) field of the row record: the
/// primary-key columns in the `debezium` format, as Debezium declares NOT NULL columns required.
/// Other NOT NULL columns stay optional, so adding one stays a compatible schema change.
pub fn required_in_row(table: &TableSchema, i: usize, format: Format) -> bool {
    format == Format::Debezium && table.primary_key.contains(&i) && table.columns[i].ty != ColumnType::Null
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
    format: Format,
) -> Result<Json, EncodeError> {
    let mut seen = HashSet::new();
    let mut defined = HashSet::new();
    let mut fields = Vec::with_capacity(columns.len());
    for &i in columns {
        let column = &table.columns[i];
        let nullable = nullable && !required_in_row(table, i, format);
        let field = avro_name(&column.name);
        if !seen.insert(field.clone()) {
            return Err(EncodeError::Schema {
                table: format!("{}.{}", table.db, table.table),
                problem: format!("columns sanitise to the same Avro name {field:?}"),
            });
        }
        let ty = dedupe_named(column_type(&column.ty, format), &mut defined);
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

/// The key and value schemas of `table` for records on `topic`; `connector` (`mysql` or
/// `mariadb`) names the `debezium` format's source record, as Debezium's two connectors do.
pub fn table_schemas(
    table: &TableSchema,
    topic: &str,
    format: Format,
    connector: &str,
) -> Result<TableSchemas, EncodeError> {
    let ns = namespace(topic);
    let all: Vec<usize> = (0..table.columns.len()).collect();
    let value_row = row_record(table, &ns, "Value", &all, true, format)?;
    let fixed_json = |name: &str, text: &str| -> Result<Json, EncodeError> {
        serde_json::from_str(text).map_err(|e| EncodeError::Avro(format!("{name}: {e}")))
    };
    let envelope = match format {
        Format::AvroNative => json!({
            "type": "record",
            "name": "Envelope",
            "namespace": ns,
            "connect.name": format!("{ns}.Envelope"),
            "fields": [
                {"name": "before", "type": ["null", value_row], "default": null},
                {"name": "after", "type": ["null", format!("{ns}.Value")], "default": null},
                {"name": "source", "type": fixed_json("source.avsc", fixed::SOURCE)?},
                {"name": "op", "type": "string"},
                {"name": "ts_ms", "type": ["null", "long"], "default": null},
                {"name": "transaction", "type": ["null", fixed_json("transaction.avsc", fixed::TRANSACTION)?], "default": null}
            ]
        }),
        Format::Debezium => {
            let mut source = fixed_json("debezium_source.avsc", fixed::DEBEZIUM_SOURCE)?;
            if connector == "mariadb" {
                source["namespace"] = json!("io.debezium.connector.mariadb");
                source["connect.name"] = json!("io.debezium.connector.mariadb.Source");
            }
            json!({
                "type": "record",
                "name": "Envelope",
                "namespace": ns,
                "fields": [
                    {"name": "before", "type": ["null", value_row], "default": null},
                    {"name": "after", "type": ["null", format!("{ns}.Value")], "default": null},
                    {"name": "source", "type": source},
                    {"name": "transaction", "type": ["null", fixed_json("debezium_transaction.avsc", fixed::DEBEZIUM_TRANSACTION)?], "default": null},
                    {"name": "op", "type": "string"},
                    {"name": "ts_ms", "type": ["null", "long"], "default": null},
                    {"name": "ts_us", "type": ["null", "long"], "default": null},
                    {"name": "ts_ns", "type": ["null", "long"], "default": null}
                ],
                "connect.version": 2,
                "connect.name": format!("{ns}.Envelope")
            })
        }
    };
    let value_text = envelope.to_string();
    let value = (value_text.clone(), parse(&value_text, table)?);
    let key = if table.primary_key.is_empty() {
        None
    } else {
        let text = row_record(table, &ns, "Key", &table.primary_key, false, format)?.to_string();
        let schema = parse(&text, table)?;
        Some((text, schema))
    };
    Ok(TableSchemas { key, value })
}

#[cfg(test)]
pub(crate) mod tests;
