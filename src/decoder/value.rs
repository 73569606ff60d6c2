//! One value of one column, by the column's plan.

use super::{json, temporal, text};
use crate::binlog::BinlogError;
use crate::binlog::cursor::Cursor;
use crate::change::Value;
use crate::schema::{Charset, ColumnType};

/// Decodes the next value of type `ty` from `c`.
pub fn decode(ty: &ColumnType, c: &mut Cursor<'_>) -> Result<Value, BinlogError> {
    use ColumnType as T;
    Ok(match ty {
        T::TinyInt { unsigned: false } => Value::Int(i64::from(c.u8()? as i8)),
        T::TinyInt { unsigned: true } => Value::UInt(u64::from(c.u8()?)),
        T::SmallInt { unsigned: false } => Value::Int(i64::from(c.u16()? as i16)),
        T::SmallInt { unsigned: true } => Value::UInt(u64::from(c.u16()?)),
        // 24-bit: sign-extend by shifting into the top of an i32 and back.
        T::MediumInt { unsigned: false } => Value::Int(i64::from(((c.u24()? << 8) as i32) >> 8)),
        T::MediumInt { unsigned: true } => Value::UInt(u64::from(c.u24()?)),
        T::Int { unsigned: false } => Value::Int(i64::from(c.u32()? as i32)),
        T::Int { unsigned: true } => Value::UInt(u64::from(c.u32()?)),
        T::BigInt { unsigned: false } => Value::Int(c.u64()? as i64),
        T::BigInt { unsigned: true } => Value::UInt(c.u64()?),
        T::Float => Value::Float(f32::from_bits(c.u32()?)),
        T::Double => Value::Double(f64::from_bits(c.u64()?)),
        T::Decimal { precision, scale } => Value::Decimal(super::decimal::decode(*precision, *scale, c)?),
        T::Bit { width } => {
            let n = usize::from(width.div_ceil(8));
            if n > 8 {
                return Err(BinlogError::malformed("BIT value", format!("{width} bits")));
            }
            Value::Bit { value: c.uint_be(n)?, width: *width }
        }
        T::Year => temporal::year(c)?,
        T::Date => temporal::date(c)?,
        T::Time { fsp } => temporal::time2(*fsp, c)?,
        T::DateTime { fsp } => temporal::datetime2(*fsp, c)?,
        T::Timestamp { fsp } => temporal::timestamp2(*fsp, c)?,
        T::TimeV1 => temporal::time_v1(c)?,
        T::DateTimeV1 => temporal::datetime_v1(c)?,
        T::TimestampV1 => temporal::timestamp_v1(c)?,
        T::Char { max_len, charset } => {
            let n = if *max_len > 255 { usize::from(c.u16()?) } else { usize::from(c.u8()?) };
            let bytes = c.bytes(n)?;
            if *charset == Charset::Binary {
                // The server strips trailing 0x00 from BINARY(n); SELECT shows them.
                let mut padded = bytes.to_vec();
                padded.resize(padded.len().max(usize::from(*max_len)), 0);
                Value::Bytes(padded)
            } else {
                Value::Text(text(bytes, *charset)?)
            }
        }
        T::VarChar { max_len, charset } => {
            let n = if *max_len > 255 { usize::from(c.u16()?) } else { usize::from(c.u8()?) };
            string_or_bytes(c.bytes(n)?, *charset)?
        }
        T::Blob { len_bytes, charset } => {
            let n = c.uint(usize::from(*len_bytes))? as usize;
            string_or_bytes(c.bytes(n)?, *charset)?
        }
        T::Enum { pack_len, labels } => {
            let index = c.uint(usize::from(*pack_len))? as usize;
            match index {
                0 => Value::Enum(String::new()),
                i => {
                    Value::Enum(labels.get(i - 1).cloned().ok_or_else(|| {
                        BinlogError::malformed("ENUM value", format!("index {i} of {}", labels.len()))
                    })?)
                }
            }
        }
        T::Set { pack_len, labels } => {
            let bits = c.uint(usize::from(*pack_len))?;
            if labels.len() < 64 && bits >> labels.len() != 0 {
                return Err(BinlogError::malformed(
                    "SET value",
                    format!("bits {bits:#x} beyond {} members", labels.len()),
                ));
            }
            Value::Set(
                labels.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, l)| l.clone()).collect(),
            )
        }
        T::Json { len_bytes } => {
            let n = c.uint(usize::from(*len_bytes))? as usize;
            Value::Json(json::to_text(c.bytes(n)?)?)
        }
        T::JsonText { len_bytes } => {
            let n = c.uint(usize::from(*len_bytes))? as usize;
            Value::Json(text(c.bytes(n)?, Charset::Utf8)?)
        }
        T::Geometry { len_bytes } => {
            let n = c.uint(usize::from(*len_bytes))? as usize;
            let mut g = Cursor::new(c.bytes(n)?, "GEOMETRY value");
            let srid = g.u32()?;
            Value::Geometry { srid, wkb: g.take_rest().to_vec() }
        }
        T::Vector { len_bytes } => {
            let n = c.uint(usize::from(*len_bytes))? as usize;
            Value::Vector(floats(c.bytes(n)?)?)
        }
        T::VarVector { max_len } => {
            let n = if *max_len > 255 { usize::from(c.u16()?) } else { usize::from(c.u8()?) };
            Value::Vector(floats(c.bytes(n)?)?)
        }
        T::Uuid | T::Inet4 | T::Inet6 => {
            // BINARY(n): a one-byte length, trailing 0x00 stripped by the server.
            let n = usize::from(c.u8()?);
            Value::Text(plugin_text(ty, c.bytes(n)?).map_err(|e| BinlogError::malformed("MariaDB typed value", e))?)
        }
        T::Null => Value::Null,
    })
}

/// A VECTOR's floats (little-endian f32s).
fn floats(bytes: &[u8]) -> Result<Vec<f32>, BinlogError> {
    if bytes.len() % 4 != 0 {
        return Err(BinlogError::malformed(
            "VECTOR value",
            format!("{} bytes is not a whole number of floats", bytes.len()),
        ));
    }
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// MariaDB's UUID, INET4 and INET6 values, from their stored bytes (trailing 0x00 may be
/// stripped), as the server prints them: `123e4567-e89b-12d3-a456-426655440000`, `192.168.0.1`,
/// `2001:db8::ff00:42:8329` (RFC 5952).
pub fn plugin_text(ty: &ColumnType, stored: &[u8]) -> Result<String, String> {
    let width = match ty {
        ColumnType::Inet4 => 4,
        _ => 16,
    };
    if stored.len() > width {
        return Err(format!("{} bytes for a {width}-byte value", stored.len()));
    }
    let mut b = [0u8; 16];
    b[..stored.len()].copy_from_slice(stored);
    Ok(match ty {
        ColumnType::Inet4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        ColumnType::Inet6 => std::net::Ipv6Addr::from(b).to_string(),
        _ => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
        }
    })
}

fn string_or_bytes(bytes: &[u8], charset: Charset) -> Result<Value, BinlogError> {
    if charset == Charset::Binary { Ok(Value::Bytes(bytes.to_vec())) } else { Ok(Value::Text(text(bytes, charset)?)) }
}
