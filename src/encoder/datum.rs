//! Values → Avro values for the schemas of [`super::avro_schema`] (mapping in docs/avro.md).
//!
//! Zero dates (`0000-00-00`, a zero month or day) and the zero TIMESTAMP have no Avro date or
//! timestamp: they become `null` (in both formats). Decimals are written as two's-complement big-endian bytes of
//! exactly [`super::avro_schema::decimal_width`] bytes, sign-extended.

use super::avro_schema::{decimal_width, required_in_row};
use super::{EncodeError, Format};
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
    /// The same in µs (`debezium` format: `ts_us`, and ×1000 `ts_ns`).
    pub ts_us: i64,
    /// `true`, `last` or `false`.
    pub snapshot: &'a str,
    pub server_id: u32,
    pub gtid: Option<&'a str>,
    pub file: &'a str,
    pub pos: u64,
    pub row: i32,
    /// The session that wrote the change (streaming, MySQL).
    pub thread: Option<u32>,
}

/// The optional `transaction` block.
#[derive(Debug, Clone)]
pub struct TxnInfo {
    pub id: std::sync::Arc<str>,
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

/// How values are written: the format, and whether the row was streamed (not read by a
/// snapshot): Debezium writes MySQL's binary JSON from the binlog compact, and JSON read by a
/// snapshot as the server prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub format: Format,
    pub streamed: bool,
}

impl Style {
    pub fn of(format: Format, op: Op) -> Style {
        Style { format, streamed: op != Op::Read }
    }
}

/// The value record: a `Value` row image, every field a `["null", T]` union.
pub fn row(table: &TableSchema, values: &[Value], style: Style) -> Result<Avro, EncodeError> {
    let fields = table
        .columns
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (column, value))| {
            let v = column_value(&column.ty, value, style).map_err(|problem| EncodeError::Value {
                table: format!("{}.{}", table.db, table.table),
                column: column.name.clone(),
                problem,
            })?;
            let v = if required_in_row(table, i, style.format) { v } else { union(v) };
            Ok((super::avro_schema::avro_name(&column.name), v))
        })
        .collect::<Result<Vec<_>, EncodeError>>()?;
    Ok(Avro::Record(fields))
}

/// The key record (primary-key columns, not nullable), or `None` for a table without a key.
pub fn key(change: &RowChange, format: Format) -> Result<Option<Avro>, EncodeError> {
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
            let v = column_value(&column.ty, &image[i], Style::of(format, change.op)).map_err(|problem| {
                EncodeError::Value {
                    table: format!("{}.{}", table.db, table.table),
                    column: column.name.clone(),
                    problem,
                }
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
    format: Format,
) -> Result<Avro, EncodeError> {
    let style = Style::of(format, change.op);
    let image = |v: &Option<Vec<Value>>| -> Result<Avro, EncodeError> {
        Ok(match v {
            Some(values) => union(row(&change.table, values, style)?),
            None => union(Avro::Null),
        })
    };
    let opt_string = |s: Option<&str>| union(s.map_or(Avro::Null, |s| Avro::String(s.to_string())));
    let opt_long = |v: Option<i64>| union(v.map_or(Avro::Null, Avro::Long));
    let thread = opt_long(source.thread.map(i64::from));
    let debezium = format == Format::Debezium;
    let mut fields = vec![
        ("version".into(), Avro::String(env!("CARGO_PKG_VERSION").into())),
        ("connector".into(), Avro::String(source.connector.into())),
        ("name".into(), Avro::String(source.name.into())),
        ("ts_ms".into(), Avro::Long(source.ts_ms)),
        ("snapshot".into(), Avro::Union(0, Box::new(Avro::String(source.snapshot.into())))),
        ("db".into(), Avro::String(change.table.db.clone())),
    ];
    if debezium {
        fields.push(("sequence".into(), union(Avro::Null)));
        fields.push(("ts_us".into(), opt_long(Some(source.ts_us))));
        fields.push(("ts_ns".into(), opt_long(Some(source.ts_us.saturating_mul(1000)))));
    }
    fields.extend([
        ("table".into(), opt_string(Some(&change.table.table))),
        ("server_id".into(), Avro::Long(i64::from(source.server_id))),
        ("gtid".into(), opt_string(source.gtid)),
        ("file".into(), Avro::String(source.file.into())),
        ("pos".into(), Avro::Long(source.pos as i64)),
        ("row".into(), Avro::Int(source.row)),
        ("thread".into(), if debezium { thread } else { union(Avro::Null) }),
        ("query".into(), union(Avro::Null)),
    ]);
    let source = Avro::Record(fields);
    let transaction = match txn {
        Some(t) => union(Avro::Record(vec![
            ("id".into(), Avro::String(t.id.to_string())),
            ("total_order".into(), Avro::Long(t.total_order)),
            ("data_collection_order".into(), Avro::Long(t.data_collection_order)),
        ])),
        None => union(Avro::Null),
    };
    let (before, after, op) = (image(&change.before)?, image(&change.after)?, Avro::String(op_code(change.op).into()));
    Ok(Avro::Record(match format {
        Format::AvroNative => vec![
            ("before".into(), before),
            ("after".into(), after),
            ("source".into(), source),
            ("op".into(), op),
            ("ts_ms".into(), union(Avro::Long(ts_ms))),
            ("transaction".into(), transaction),
        ],
        Format::Debezium => vec![
            ("before".into(), before),
            ("after".into(), after),
            ("source".into(), source),
            ("transaction".into(), transaction),
            ("op".into(), op),
            ("ts_ms".into(), union(Avro::Long(ts_ms))),
            ("ts_us".into(), union(Avro::Long(ts_ms.saturating_mul(1000)))),
            ("ts_ns".into(), union(Avro::Long(ts_ms.saturating_mul(1_000_000)))),
        ],
    }))
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

/// BIT(n) as Debezium writes it: ⌈n/8⌉ bytes, least significant first.
pub fn bits_le(value: u64, width: u16) -> Vec<u8> {
    value.to_le_bytes()[..usize::from(width.div_ceil(8)).clamp(1, 8)].to_vec()
}

/// DATETIME as Debezium writes it: ms since the epoch (`io.debezium.time.Timestamp`) up to
/// fsp 3, µs (`MicroTimestamp`) above; the date and time taken as UTC.
pub fn debezium_datetime(fsp: u8, days: i64, second_of_day: i64, micros: u32) -> i64 {
    let secs = days * 86_400 + second_of_day;
    if fsp > 3 { secs * 1_000_000 + i64::from(micros) } else { secs * 1000 + i64::from(micros / 1000) }
}

/// TIMESTAMP as Debezium writes it (`io.debezium.time.ZonedTimestamp`): ISO-8601 in UTC with
/// `Z`; from the binlog with exactly `fsp` fraction digits (none for fsp 0), from a snapshot's
/// SELECT with trailing zeros dropped (Debezium formats the two through different paths).
pub fn zoned_timestamp(seconds: u32, micros: u32, fsp: u8, streamed: bool) -> String {
    let secs = i64::from(seconds);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rest / 3600, rest / 60 % 60, rest % 60);
    let digits = format!("{micros:06}");
    let fraction = if streamed { &digits[..usize::from(fsp.min(6))] } else { digits.trim_end_matches('0') };
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    out.push('Z');
    out
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// MySQL's JSON text (`{"a": [1, 2]}`) without the blanks after `,` and `:` — the compact text
/// Debezium writes for binary JSON read from the binlog. Blanks inside strings stay.
pub fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ' ' || c == '\n' || c == '\t' || c == '\r' {
            continue;
        }
        out.push(c);
    }
    out
}

/// One column value in the `debezium` format where it differs from `avro-native`, else `None`.
fn debezium_value(ty: &ColumnType, value: &Value, streamed: bool) -> Option<Avro> {
    use ColumnType as T;
    Some(match (ty, value) {
        (T::BigInt { unsigned: true }, Value::UInt(u)) => Avro::Long(*u as i64),
        (T::Bit { width: 1 }, Value::Bit { value, .. }) => Avro::Boolean(*value != 0),
        (T::Bit { width }, Value::Bit { value, .. }) => Avro::Bytes(bits_le(*value, *width)),
        (T::Date, Value::Date { year, month, day }) if *month != 0 && *day != 0 => {
            Avro::Int(days_from_civil(i64::from(*year), u32::from(*month), u32::from(*day)) as i32)
        }
        (T::DateTime { .. } | T::DateTimeV1, Value::DateTime { year, month, day, hour, minute, second, micros })
            if *month != 0 && *day != 0 =>
        {
            let fsp = if let T::DateTime { fsp } = ty { *fsp } else { 0 };
            let days = days_from_civil(i64::from(*year), u32::from(*month), u32::from(*day));
            let second_of_day = i64::from(*hour) * 3600 + i64::from(*minute) * 60 + i64::from(*second);
            Avro::Long(debezium_datetime(fsp, days, second_of_day, *micros))
        }
        (T::Timestamp { .. } | T::TimestampV1, Value::Timestamp { seconds, micros })
            if *seconds != 0 || *micros != 0 =>
        {
            let fsp = if let T::Timestamp { fsp } = ty { *fsp } else { 0 };
            Avro::String(zoned_timestamp(*seconds, *micros, fsp, streamed))
        }
        (T::Set { .. }, Value::Set(labels)) => Avro::String(labels.join(",")),
        (T::Json { .. }, Value::Json(text)) if streamed => Avro::String(compact_json(text)),
        // SRID 0 (none given) is a null SRID.
        (T::Geometry { .. }, Value::Geometry { srid: 0, wkb }) => {
            Avro::Record(vec![("wkb".into(), Avro::Bytes(wkb.clone())), ("srid".into(), union(Avro::Null))])
        }
        _ => return None,
    })
}

/// One column value as the Avro type of [`super::avro_schema::column_type`] (not the null union).
pub fn column_value(ty: &ColumnType, value: &Value, style: Style) -> Result<Avro, String> {
    use ColumnType as T;
    if style.format == Format::Debezium
        && let Some(v) = debezium_value(ty, value, style.streamed)
    {
        return Ok(v);
    }
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
pub(crate) mod tests;
