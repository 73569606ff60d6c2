//! Values → Avro values for the schemas of [`super::avro_schema`] (mapping in docs/avro.md).
//!
//! Zero dates (`0000-00-00`, a zero month or day) and the zero TIMESTAMP have no Avro date or
//! timestamp: they become `null`. Decimals are written as two's-complement big-endian bytes of
//! exactly [`super::avro_schema::decimal_width`] bytes, sign-extended.

use super::EncodeError;
use super::avro_schema::decimal_width;
use crate::change::{Op, RowChange, Value};
use crate::schema::{Charset, ColumnType, TableSchema};
use apache_avro::types::Value as Avro;

/// Where a change came from: the `source` block.
#[derive(Debug, Clone)]
pub struct SourceInfo<'a> {
    /// `mysql` or `mariadb`.
    pub connector: &'a str,
    /// Connector name.
    pub name: &'a str,
    /// Source commit time, ms since the epoch.
    pub ts_ms: i64,
    /// `true`, `last` or `false`.
    pub snapshot: &'a str,
    pub server_id: u32,
    pub gtid: Option<&'a str>,
    pub file: &'a str,
    pub pos: u64,
    pub row: i32,
}

/// The optional `transaction` block.
#[derive(Debug, Clone)]
pub struct TxnInfo {
    pub id: String,
    pub total_order: i64,
    pub data_collection_order: i64,
}

fn union(v: Avro) -> Avro {
    match v {
        Avro::Null => Avro::Union(0, Box::new(Avro::Null)),
        v => Avro::Union(1, Box::new(v)),
    }
}

/// `op` code for a change.
pub fn op_code(op: Op) -> &'static str {
    match op {
        Op::Insert => "c",
        Op::Update => "u",
        Op::Delete => "d",
        Op::Read => "r",
        Op::Truncate => "t",
    }
}

/// The value record: a `Value` row image, every field a `["null", T]` union.
pub fn row(table: &TableSchema, values: &[Value]) -> Result<Avro, EncodeError> {
    let fields = table
        .columns
        .iter()
        .zip(values)
        .map(|(column, value)| {
            let v = column_value(&column.ty, value).map_err(|problem| EncodeError::Value {
                table: format!("{}.{}", table.db, table.table),
                column: column.name.clone(),
                problem,
            })?;
            Ok((super::avro_schema::avro_name(&column.name), union(v)))
        })
        .collect::<Result<Vec<_>, EncodeError>>()?;
    Ok(Avro::Record(fields))
}

/// The key record (primary-key columns, not nullable), or `None` for a table without a key.
pub fn key(change: &RowChange) -> Result<Option<Avro>, EncodeError> {
    let table = &change.table;
    if table.primary_key.is_empty() {
        return Ok(None);
    }
    let image = change.after.as_ref().or(change.before.as_ref()).ok_or_else(|| EncodeError::Value {
        table: format!("{}.{}", table.db, table.table),
        column: String::new(),
        problem: "a change without an image".into(),
    })?;
    let fields = table
        .primary_key
        .iter()
        .map(|&i| {
            let column = &table.columns[i];
            let v = column_value(&column.ty, &image[i]).map_err(|problem| EncodeError::Value {
                table: format!("{}.{}", table.db, table.table),
                column: column.name.clone(),
                problem,
            })?;
            Ok((super::avro_schema::avro_name(&column.name), v))
        })
        .collect::<Result<Vec<_>, EncodeError>>()?;
    Ok(Some(Avro::Record(fields)))
}

/// The envelope record for `change`. `ts_ms` is when rowferry processed it.
pub fn envelope(
    change: &RowChange,
    source: &SourceInfo<'_>,
    txn: Option<&TxnInfo>,
    ts_ms: i64,
) -> Result<Avro, EncodeError> {
    let image = |v: &Option<Vec<Value>>| -> Result<Avro, EncodeError> {
        Ok(match v {
            Some(values) => union(row(&change.table, values)?),
            None => union(Avro::Null),
        })
    };
    let opt_string = |s: Option<&str>| union(s.map_or(Avro::Null, |s| Avro::String(s.to_string())));
    let source = Avro::Record(vec![
        ("version".into(), Avro::String(env!("CARGO_PKG_VERSION").into())),
        ("connector".into(), Avro::String(source.connector.into())),
        ("name".into(), Avro::String(source.name.into())),
        ("ts_ms".into(), Avro::Long(source.ts_ms)),
        ("snapshot".into(), Avro::Union(0, Box::new(Avro::String(source.snapshot.into())))),
        ("db".into(), Avro::String(change.table.db.clone())),
        ("table".into(), opt_string(Some(&change.table.table))),
        ("server_id".into(), Avro::Long(i64::from(source.server_id))),
        ("gtid".into(), opt_string(source.gtid)),
        ("file".into(), Avro::String(source.file.into())),
        ("pos".into(), Avro::Long(source.pos as i64)),
        ("row".into(), Avro::Int(source.row)),
        ("thread".into(), union(Avro::Null)),
        ("query".into(), union(Avro::Null)),
    ]);
    let transaction = match txn {
        Some(t) => union(Avro::Record(vec![
            ("id".into(), Avro::String(t.id.clone())),
            ("total_order".into(), Avro::Long(t.total_order)),
            ("data_collection_order".into(), Avro::Long(t.data_collection_order)),
        ])),
        None => union(Avro::Null),
    };
    Ok(Avro::Record(vec![
        ("before".into(), image(&change.before)?),
        ("after".into(), image(&change.after)?),
        ("source".into(), source),
        ("op".into(), Avro::String(op_code(change.op).into())),
        ("ts_ms".into(), union(Avro::Long(ts_ms))),
        ("transaction".into(), transaction),
    ]))
}

/// Encodes an Avro value with its schema (binary, no framing).
pub fn encode(schema: &apache_avro::Schema, value: Avro) -> Result<Vec<u8>, EncodeError> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .map_err(|e| EncodeError::Avro(e.to_string()))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One column value as the Avro type of [`super::avro_schema::column_type`] (not the null union).
pub fn column_value(ty: &ColumnType, value: &Value) -> Result<Avro, String> {
    use ColumnType as T;
    let mismatch = || format!("value {value:?} does not fit column type {ty:?}");
    Ok(match (ty, value) {
        (_, Value::Null) => Avro::Null,
        (_, Value::Absent) => return Err(crate::change::ABSENT.into()),
        (T::TinyInt { .. } | T::SmallInt { .. } | T::MediumInt { .. } | T::Int { unsigned: false }, Value::Int(i)) => {
            Avro::Int(i32::try_from(*i).map_err(|_| mismatch())?)
        }
        (T::TinyInt { .. } | T::SmallInt { .. } | T::MediumInt { .. }, Value::UInt(u)) => {
            Avro::Int(i32::try_from(*u).map_err(|_| mismatch())?)
        }
        (T::Int { unsigned: true }, Value::UInt(u)) => Avro::Long(*u as i64),
        (T::BigInt { unsigned: false }, Value::Int(i)) => Avro::Long(*i),
        (T::BigInt { unsigned: true }, Value::UInt(u)) => {
            Avro::Decimal(apache_avro::Decimal::from(unscaled_bytes(&u.to_string(), 0, decimal_width(20))?))
        }
        (T::Float, Value::Float(f)) => Avro::Float(*f),
        (T::Double, Value::Double(d)) => Avro::Double(*d),
        (T::Decimal { precision, scale }, Value::Decimal(text)) => {
            Avro::Decimal(apache_avro::Decimal::from(unscaled_bytes(text, *scale, decimal_width(*precision))?))
        }
        (T::Bit { width }, Value::Bit { value, .. }) if *width <= 63 => Avro::Long(*value as i64),
        (T::Bit { width }, Value::Bit { value, .. }) => {
            Avro::Bytes(value.to_be_bytes()[8 - usize::from(width.div_ceil(8)).min(8)..].to_vec())
        }
        (T::Year, Value::Year(y)) => Avro::Int(i32::from(*y)),
        (T::Date, Value::Date { year, month, day }) => {
            if *month == 0 || *day == 0 {
                Avro::Null
            } else {
                Avro::Date(days_from_civil(i64::from(*year), u32::from(*month), u32::from(*day)) as i32)
            }
        }
        (T::DateTime { .. } | T::DateTimeV1, Value::DateTime { year, month, day, hour, minute, second, micros }) => {
            if *month == 0 || *day == 0 {
                Avro::Null
            } else {
                let days = days_from_civil(i64::from(*year), u32::from(*month), u32::from(*day));
                let secs = days * 86_400 + i64::from(*hour) * 3600 + i64::from(*minute) * 60 + i64::from(*second);
                Avro::LocalTimestampMicros(secs * 1_000_000 + i64::from(*micros))
            }
        }
        (T::Timestamp { .. } | T::TimestampV1, Value::Timestamp { seconds, micros }) => {
            if *seconds == 0 && *micros == 0 {
                Avro::Null
            } else {
                Avro::TimestampMicros(i64::from(*seconds) * 1_000_000 + i64::from(*micros))
            }
        }
        (T::Time { .. } | T::TimeV1, Value::Time { micros }) => Avro::Long(*micros),
        (T::Char { charset, .. } | T::VarChar { charset, .. } | T::Blob { charset, .. }, v) => match (charset, v) {
            (Charset::Binary, Value::Bytes(b)) => Avro::Bytes(b.clone()),
            (Charset::Binary, _) => return Err(mismatch()),
            (_, Value::Text(s)) => Avro::String(s.clone()),
            _ => return Err(mismatch()),
        },
        (T::Enum { .. }, Value::Enum(label)) => Avro::String(label.clone()),
        (T::Set { .. }, Value::Set(labels)) => Avro::Array(labels.iter().map(|l| Avro::String(l.clone())).collect()),
        (T::Json { .. } | T::JsonText { .. }, Value::Json(text)) => Avro::String(text.clone()),
        (T::Geometry { .. }, Value::Geometry { srid, wkb }) => Avro::Record(vec![
            ("wkb".into(), Avro::Bytes(wkb.clone())),
            ("srid".into(), union(Avro::Int(*srid as i32))),
        ]),
        (T::Vector { .. } | T::VarVector { .. }, Value::Vector(v)) => {
            Avro::Array(v.iter().map(|f| Avro::Float(*f)).collect())
        }
        (T::Uuid | T::Inet4 | T::Inet6, Value::Text(s)) => Avro::String(s.clone()),
        _ => return Err(mismatch()),
    })
}

/// `text` (a decimal with exactly `scale` fraction digits, optional `-`) as the two's-complement
/// big-endian bytes of its unscaled integer, sign-extended to `width` bytes.
pub fn unscaled_bytes(text: &str, scale: u8, width: usize) -> Result<Vec<u8>, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if frac_part.len() != usize::from(scale) {
        return Err(format!("decimal {text:?} does not have {scale} fraction digits"));
    }
    let mut out = vec![0u8; width];
    for d in int_part.bytes().chain(frac_part.bytes()) {
        if !d.is_ascii_digit() {
            return Err(format!("{text:?} is not a decimal"));
        }
        // out = out * 10 + d, big-endian
        let mut carry = u32::from(d - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        if carry != 0 || out[0] & 0x80 != 0 {
            return Err(format!("{text:?} does not fit {width} bytes"));
        }
    }
    if negative {
        // two's complement: invert and add one
        let mut carry = 1u16;
        for byte in out.iter_mut().rev() {
            let v = u16::from(!*byte) + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
