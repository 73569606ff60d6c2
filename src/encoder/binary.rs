//! The hot path of encoding: row changes written straight to Avro binary, without building an
//! `apache_avro::types::Value` tree, resolving names or validating per record.
//!
//! It writes exactly the bytes apache-avro writes for the schemas of [`super::avro_schema`] and
//! the values of [`super::datum`] (a property test compares the two over every column type), so
//! apache-avro remains the reference and this is only a faster route to the same bytes. The
//! value rules are the same: zero dates and the zero TIMESTAMP are null, decimals are
//! sign-extended to their fixed width, a value that does not fit its column is an error.

use super::avro_schema::{decimal_width, required_in_row};
use super::datum::{
    SourceInfo, Style, TxnInfo, bits_le, compact_json, days_from_civil, debezium_datetime, op_code, unscaled_bytes,
    zoned_timestamp,
};
use super::{EncodeError, Format};
use crate::change::{RowChange, Value};
use crate::schema::{Charset, ColumnType, TableSchema};

/// Zig-zag varint, as Avro writes `int` and `long`.
pub fn long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    long(out, b.len() as i64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, s: &str) {
    bytes(out, s.as_bytes());
}

/// One value in the `debezium` format where it differs from `avro-native` (see
/// `datum::debezium_value`); `false` when it does not.
fn debezium_value(out: &mut Vec<u8>, ty: &ColumnType, v: &Value, streamed: bool) -> bool {
    use ColumnType as T;
    match (ty, v) {
        (T::BigInt { unsigned: true }, Value::UInt(u)) => long(out, *u as i64),
        (T::Bit { width: 1 }, Value::Bit { value, .. }) => out.push(u8::from(*value != 0)),
        (T::Bit { width }, Value::Bit { value, .. }) => bytes(out, &bits_le(*value, *width)),
        (T::Date, Value::Date { year, month, day }) if *month != 0 && *day != 0 => {
            long(out, days_from_civil(i64::from(*year), u32::from(*month), u32::from(*day)));
        }
        (T::DateTime { .. } | T::DateTimeV1, Value::DateTime { year, month, day, hour, minute, second, micros })
            if *month != 0 && *day != 0 =>
        {
            let fsp = if let T::DateTime { fsp } = ty { *fsp } else { 0 };
            let days = days_from_civil(i64::from(*year), u32::from(*month), u32::from(*day));
            let second_of_day = i64::from(*hour) * 3600 + i64::from(*minute) * 60 + i64::from(*second);
            long(out, debezium_datetime(fsp, days, second_of_day, *micros));
        }
        (T::Timestamp { .. } | T::TimestampV1, Value::Timestamp { seconds, micros })
            if *seconds != 0 || *micros != 0 =>
        {
            let fsp = if let T::Timestamp { fsp } = ty { *fsp } else { 0 };
            string(out, &zoned_timestamp(*seconds, *micros, fsp, streamed));
        }
        (T::Set { .. }, Value::Set(labels)) => string(out, &labels.join(",")),
        (T::Json { .. }, Value::Json(text)) if streamed => string(out, &compact_json(text)),
        (T::Geometry { .. }, Value::Geometry { srid: 0, wkb }) => {
            bytes(out, wkb);
            long(out, 0);
        }
        _ => return false,
    }
    true
}

/// One column value as its Avro type (no union); `Ok(false)` when the value is null in Avro
/// (nothing written), for the caller to write the null branch instead.
fn value(out: &mut Vec<u8>, ty: &ColumnType, v: &Value, style: Style) -> Result<bool, String> {
    use ColumnType as T;
    if style.format == Format::Debezium && debezium_value(out, ty, v, style.streamed) {
        return Ok(true);
    }
    let mismatch = || format!("value {v:?} does not fit column type {ty:?}");
    let int = |out: &mut Vec<u8>, i: i64| -> Result<bool, String> {
        i32::try_from(i).map_err(|_| mismatch())?;
        long(out, i);
        Ok(true)
    };
    match (ty, v) {
        (_, Value::Null) => Ok(false),
        (_, Value::Absent) => Err(crate::change::ABSENT.into()),
        (T::TinyInt { .. } | T::SmallInt { .. } | T::MediumInt { .. } | T::Int { unsigned: false }, Value::Int(i)) => {
            int(out, *i)
        }
        (T::TinyInt { .. } | T::SmallInt { .. } | T::MediumInt { .. }, Value::UInt(u)) => {
            int(out, i64::try_from(*u).map_err(|_| mismatch())?)
        }
        (T::Int { unsigned: true }, Value::UInt(u)) => {
            long(out, *u as i64);
            Ok(true)
        }
        (T::BigInt { unsigned: false }, Value::Int(i)) => {
            long(out, *i);
            Ok(true)
        }
        (T::BigInt { unsigned: true }, Value::UInt(u)) => {
            bytes(out, &unscaled_bytes(&u.to_string(), 0, decimal_width(20))?);
            Ok(true)
        }
        (T::Float, Value::Float(f)) => {
            out.extend_from_slice(&f.to_le_bytes());
            Ok(true)
        }
        (T::Double, Value::Double(d)) => {
            out.extend_from_slice(&d.to_le_bytes());
            Ok(true)
        }
        (T::Decimal { precision, scale }, Value::Decimal(text)) => {
            bytes(out, &unscaled_bytes(text, *scale, decimal_width(*precision))?);
            Ok(true)
        }
        (T::Bit { width }, Value::Bit { value, .. }) if *width <= 63 => {
            long(out, *value as i64);
            Ok(true)
        }
        (T::Bit { width }, Value::Bit { value, .. }) => {
            bytes(out, &value.to_be_bytes()[8 - usize::from(width.div_ceil(8)).min(8)..]);
            Ok(true)
        }
        (T::Year, Value::Year(y)) => int(out, i64::from(*y)),
        (T::Date, Value::Date { year, month, day }) => {
            if *month == 0 || *day == 0 {
                return Ok(false);
            }
            let days = days_from_civil(i64::from(*year), u32::from(*month), u32::from(*day));
            int(out, days)
        }
        (T::DateTime { .. } | T::DateTimeV1, Value::DateTime { year, month, day, hour, minute, second, micros }) => {
            if *month == 0 || *day == 0 {
                return Ok(false);
            }
            let days = days_from_civil(i64::from(*year), u32::from(*month), u32::from(*day));
            let secs = days * 86_400 + i64::from(*hour) * 3600 + i64::from(*minute) * 60 + i64::from(*second);
            long(out, secs * 1_000_000 + i64::from(*micros));
            Ok(true)
        }
        (T::Timestamp { .. } | T::TimestampV1, Value::Timestamp { seconds, micros }) => {
            if *seconds == 0 && *micros == 0 {
                return Ok(false);
            }
            long(out, i64::from(*seconds) * 1_000_000 + i64::from(*micros));
            Ok(true)
        }
        (T::Time { .. } | T::TimeV1, Value::Time { micros }) => {
            long(out, *micros);
            Ok(true)
        }
        (T::Char { charset, .. } | T::VarChar { charset, .. } | T::Blob { charset, .. }, v) => {
            match (charset, v) {
                (Charset::Binary, Value::Bytes(b)) => bytes(out, b),
                (Charset::Binary, _) => return Err(mismatch()),
                (_, Value::Text(s)) => string(out, s),
                _ => return Err(mismatch()),
            }
            Ok(true)
        }
        (T::Enum { .. }, Value::Enum(label)) => {
            string(out, label);
            Ok(true)
        }
        (T::Set { .. }, Value::Set(labels)) => {
            if !labels.is_empty() {
                long(out, labels.len() as i64);
                for l in labels {
                    string(out, l);
                }
            }
            long(out, 0);
            Ok(true)
        }
        (T::Json { .. } | T::JsonText { .. }, Value::Json(text)) => {
            string(out, text);
            Ok(true)
        }
        (T::Geometry { .. }, Value::Geometry { srid, wkb }) => {
            bytes(out, wkb);
            long(out, 1);
            long(out, i64::from(*srid as i32));
            Ok(true)
        }
        (T::Uuid | T::Inet4 | T::Inet6, Value::Text(s)) => {
            string(out, s);
            Ok(true)
        }
        (T::Vector { .. } | T::VarVector { .. }, Value::Vector(v)) => {
            if !v.is_empty() {
                long(out, v.len() as i64);
                for f in v {
                    out.extend_from_slice(&f.to_le_bytes());
                }
            }
            long(out, 0);
            Ok(true)
        }
        _ => Err(mismatch()),
    }
}

fn column_error(table: &TableSchema, column: &str, problem: String) -> EncodeError {
    EncodeError::Value { table: format!("{}.{}", table.db, table.table), column: column.to_string(), problem }
}

/// The row record: every column a `["null", T]` union.
pub fn row(out: &mut Vec<u8>, table: &TableSchema, values: &[Value], style: Style) -> Result<(), EncodeError> {
    if values.len() != table.columns.len() {
        return Err(column_error(table, "", format!("{} values for {} columns", values.len(), table.columns.len())));
    }
    for (i, (column, v)) in table.columns.iter().zip(values).enumerate() {
        if required_in_row(table, i, style.format) {
            if !value(out, &column.ty, v, style).map_err(|p| column_error(table, &column.name, p))? {
                return Err(column_error(table, &column.name, "a primary-key value that is null in Avro".into()));
            }
            continue;
        }
        let mark = out.len();
        out.push(2); // union branch 1 (zig-zag), replaced below when the value is null
        if !value(out, &column.ty, v, style).map_err(|p| column_error(table, &column.name, p))? {
            out.truncate(mark);
            out.push(0);
        }
    }
    Ok(())
}

/// The key record (primary-key columns, not nullable); `false` for a table without a key.
pub fn key(out: &mut Vec<u8>, change: &RowChange, format: Format) -> Result<bool, EncodeError> {
    let table = &change.table;
    if table.primary_key.is_empty() || change.op == crate::change::Op::Truncate {
        return Ok(false);
    }
    let image = change
        .after
        .as_ref()
        .or(change.before.as_ref())
        .ok_or_else(|| column_error(table, "", "a change without an image".into()))?;
    for &i in &table.primary_key {
        let column = &table.columns[i];
        let v = image.get(i).ok_or_else(|| column_error(table, &column.name, "missing from the image".into()))?;
        if !value(out, &column.ty, v, Style::of(format, change.op)).map_err(|p| column_error(table, &column.name, p))? {
            return Err(column_error(table, &column.name, "a primary-key value that is null in Avro".into()));
        }
    }
    Ok(true)
}

fn opt_long(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => {
            long(out, 1);
            long(out, v);
        }
        None => long(out, 0),
    }
}

/// The envelope record of `change` (see `datum::envelope`, which this matches byte for byte).
pub fn envelope(
    out: &mut Vec<u8>,
    change: &RowChange,
    source: &SourceInfo<'_>,
    txn: Option<&TxnInfo>,
    ts_ms: i64,
    format: Format,
) -> Result<(), EncodeError> {
    let style = Style::of(format, change.op);
    let debezium = format == Format::Debezium;
    for image in [&change.before, &change.after] {
        match image {
            Some(values) => {
                long(out, 1);
                row(out, &change.table, values, style)?;
            }
            None => long(out, 0),
        }
    }
    string(out, env!("CARGO_PKG_VERSION"));
    string(out, source.connector);
    string(out, source.name);
    long(out, source.ts_ms);
    long(out, 0);
    string(out, source.snapshot);
    string(out, &change.table.db);
    if debezium {
        long(out, 0); // sequence: null
        opt_long(out, Some(source.ts_us));
        opt_long(out, Some(source.ts_us.saturating_mul(1000)));
    }
    long(out, 1);
    string(out, &change.table.table);
    long(out, i64::from(source.server_id));
    match source.gtid {
        Some(g) => {
            long(out, 1);
            string(out, g);
        }
        None => long(out, 0),
    }
    string(out, source.file);
    long(out, source.pos as i64);
    long(out, i64::from(source.row));
    opt_long(out, if debezium { source.thread.map(i64::from) } else { None });
    long(out, 0); // query: null
    let transaction = |out: &mut Vec<u8>| match txn {
        Some(t) => {
            long(out, 1);
            string(out, &t.id);
            long(out, t.total_order);
            long(out, t.data_collection_order);
        }
        None => long(out, 0),
    };
    if debezium {
        transaction(out);
    }
    string(out, op_code(change.op));
    opt_long(out, Some(ts_ms));
    if debezium {
        opt_long(out, Some(ts_ms.saturating_mul(1000)));
        opt_long(out, Some(ts_ms.saturating_mul(1_000_000)));
    } else {
        transaction(out);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
