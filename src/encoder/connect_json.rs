//! `envelope.format = "json"`: records as Kafka Connect's JsonConverter writes them with
//! `schemas.enable=true` — `{"schema": <Connect schema>, "payload": <value>}`, for keys and values —
//! for consumers and sinks built on Connect's JSON converter (Debezium's JDBC sink among them).
//!
//! Nothing here decides a value or a type: the schemas are the `debezium` format's Avro schemas
//! ([`super::avro_schema`]) read as Confluent's AvroData reads them into Connect schemas
//! (`connect.name`/`connect.version`/`connect.parameters`/`connect.type` annotations, `["null", T]`
//! unions as optional, the Avro decimal as Connect's `Decimal`), and the payloads are the
//! `debezium` format's values ([`super::datum`]) written as JsonConverter writes them: bytes and
//! decimals base64 (a decimal's unscaled value in the fewest two's-complement bytes, as Java's
//! `BigInteger.toByteArray`), numbers as numbers, records as objects. So the `json` and `debezium`
//! formats carry the same data by construction. Field names are the columns' own names (Connect
//! names are not limited to Avro's `[A-Za-z0-9_]`; the Avro schema keeps the original name in
//! `mysql.column`).
//!
//! Invariant: [`payload`] walks a value and its Connect schema together; a value that does not
//! fit the schema is an error, never a silently different record.

use apache_avro::types::Value as Avro;
use base64::Engine as _;
use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;
use std::io::Write as _;

/// The Connect schema (JsonConverter's JSON form) of an Avro schema annotated as
/// [`super::avro_schema`] writes it.
pub fn connect_schema(avro: &Json) -> Result<Json, String> {
    convert(avro, &mut HashMap::new(), false, None)
}

fn convert(
    avro: &Json,
    named: &mut HashMap<String, Json>,
    optional: bool,
    default: Option<&Json>,
) -> Result<Json, String> {
    let object = match avro {
        Json::Array(branches) => {
            let rest: Vec<&Json> = branches.iter().filter(|b| *b != "null").collect();
            let [only] = rest.as_slice() else {
                return Err(format!("a union other than [\"null\", T] has no Connect schema: {avro}"));
            };
            return convert(only, named, true, default);
        }
        Json::String(name) => {
            if let Some(defined) = named.get(name).cloned() {
                return convert(&defined, named, optional, default);
            }
            let mut o = Map::new();
            o.insert("type".into(), json!(name));
            o
        }
        Json::Object(o) => o.clone(),
        other => return Err(format!("not an Avro schema: {other}")),
    };
    let kind = object.get("type").cloned().unwrap_or(Json::Null);
    if kind.is_object() || kind.is_array() {
        return convert(&kind, named, optional, default);
    }
    let kind = kind.as_str().ok_or_else(|| format!("an Avro schema without a type: {avro}"))?.to_string();
    let mut out = Map::new();
    out.insert("optional".into(), json!(optional));
    match kind.as_str() {
        "record" => {
            let name = object.get("name").and_then(Json::as_str).unwrap_or_default();
            let full = match object.get("namespace").and_then(Json::as_str) {
                Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
                _ => name.to_string(),
            };
            named.insert(full.clone(), Json::Object(object.clone()));
            out.insert("type".into(), json!("struct"));
            out.insert("name".into(), object.get("connect.name").cloned().unwrap_or(json!(full)));
            let mut fields = Vec::new();
            for f in object.get("fields").and_then(Json::as_array).into_iter().flatten() {
                let ty = f.get("type").ok_or_else(|| format!("a field without a type in {full}"))?;
                let mut field = convert(ty, named, false, f.get("default"))?;
                let name = f.get("mysql.column").or_else(|| f.get("name")).cloned().unwrap_or(Json::Null);
                field["field"] = name;
                fields.push(field);
            }
            out.insert("fields".into(), Json::Array(fields));
        }
        "array" => {
            let items = object.get("items").ok_or_else(|| format!("an array without items: {avro}"))?;
            out.insert("type".into(), json!("array"));
            out.insert("items".into(), convert(items, named, false, None)?);
        }
        primitive => {
            let connect = match primitive {
                "int" => "int32",
                "long" => "int64",
                "float" | "double" | "boolean" | "string" | "bytes" => primitive,
                // A column of MySQL's NULL type: no Connect type; an always-null string.
                "null" => "string",
                other => return Err(format!("Avro type {other:?} has no Connect type")),
            };
            out.insert("type".into(), object.get("connect.type").cloned().unwrap_or(json!(connect)));
            if primitive == "null" {
                out.insert("optional".into(), json!(true));
            }
            if object.get("logicalType").and_then(Json::as_str) == Some("decimal")
                && !object.contains_key("connect.name")
            {
                out.insert("name".into(), json!("org.apache.kafka.connect.data.Decimal"));
                out.insert("version".into(), json!(1));
                let scale = object.get("scale").and_then(Json::as_u64).unwrap_or(0);
                let precision = object.get("precision").and_then(Json::as_u64).unwrap_or(0);
                out.insert(
                    "parameters".into(),
                    json!({"scale": scale.to_string(), "connect.decimal.precision": precision.to_string()}),
                );
            }
        }
    }
    for (annotation, attr) in
        [("connect.name", "name"), ("connect.version", "version"), ("connect.parameters", "parameters")]
    {
        if let Some(v) = object.get(annotation) {
            out.insert(attr.into(), v.clone());
        }
    }
    match (object.get("connect.default"), default) {
        (Some(d), _) if !d.is_null() => {
            out.insert("default".into(), d.clone());
        }
        (_, Some(d)) if !d.is_null() && kind != "record" && kind != "array" => {
            out.insert("default".into(), d.clone());
        }
        _ => {}
    }
    Ok(Json::Object(out))
}

/// Appends `{"schema":<schema>,"payload":<value>}`; `schema` is the Connect schema's JSON text
/// and `connect` the same parsed.
pub fn record_into(out: &mut Vec<u8>, schema: &str, connect: &Json, value: &Avro) -> Result<(), String> {
    out.extend_from_slice(b"{\"schema\":");
    out.extend_from_slice(schema.as_bytes());
    out.extend_from_slice(b",\"payload\":");
    payload(out, connect, value)?;
    out.push(b'}');
    Ok(())
}

/// Appends `value` as JsonConverter writes a value of the Connect schema `schema`.
pub fn payload(out: &mut Vec<u8>, schema: &Json, value: &Avro) -> Result<(), String> {
    let ty = schema.get("type").and_then(Json::as_str).unwrap_or_default();
    let mismatch = || format!("value {value:?} does not fit Connect type {ty:?}");
    let number = |out: &mut Vec<u8>, n: &dyn std::fmt::Display| {
        let _ = write!(out, "{n}");
    };
    match value {
        Avro::Union(_, inner) => return payload(out, schema, inner),
        Avro::Null => out.extend_from_slice(b"null"),
        Avro::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => number(out, i),
        Avro::Long(l) | Avro::TimeMicros(l) | Avro::TimestampMicros(l) | Avro::LocalTimestampMicros(l) => {
            number(out, l)
        }
        // serde_json writes the shortest text that reads back as the same float (null if not finite).
        Avro::Float(f) => serde_json::to_writer(&mut *out, f).map_err(|e| e.to_string())?,
        Avro::Double(d) => serde_json::to_writer(&mut *out, d).map_err(|e| e.to_string())?,
        Avro::String(s) | Avro::Enum(_, s) => serde_json::to_writer(&mut *out, s).map_err(|e| e.to_string())?,
        Avro::Uuid(u) => serde_json::to_writer(&mut *out, &u.to_string()).map_err(|e| e.to_string())?,
        Avro::Bytes(b) | Avro::Fixed(_, b) => base64_into(out, b),
        Avro::Decimal(d) => {
            let bytes = Vec::<u8>::try_from(d).map_err(|e| e.to_string())?;
            base64_into(out, minimal_twos_complement(&bytes));
        }
        Avro::Record(fields) => {
            let names = schema.get("fields").and_then(Json::as_array).ok_or_else(mismatch)?;
            if names.len() != fields.len() {
                return Err(format!(
                    "{} values for the {} fields of {:?}",
                    fields.len(),
                    names.len(),
                    schema.get("name")
                ));
            }
            out.push(b'{');
            for (i, (field, (_, v))) in names.iter().zip(fields).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let name = field.get("field").and_then(Json::as_str).ok_or_else(mismatch)?;
                serde_json::to_writer(&mut *out, name).map_err(|e| e.to_string())?;
                out.push(b':');
                payload(out, field, v)?;
            }
            out.push(b'}');
        }
        Avro::Array(items) => {
            let item = schema.get("items").ok_or_else(mismatch)?;
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                payload(out, item, v)?;
            }
            out.push(b']');
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn base64_into(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + base64::encoded_len(bytes.len(), true).unwrap_or(0), 0);
    let written = base64::engine::general_purpose::STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

/// Two's-complement big-endian bytes without redundant sign bytes (at least one byte), as Java's
/// `BigInteger.toByteArray` gives them.
pub fn minimal_twos_complement(bytes: &[u8]) -> &[u8] {
    let mut start = 0;
    while start + 1 < bytes.len() {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    &bytes[start..]
}

#[cfg(test)]
mod tests;
