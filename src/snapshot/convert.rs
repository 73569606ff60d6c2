//! Values read with `SELECT` (binary protocol, `SET NAMES utf8mb4`, `time_zone = '+00:00'`) →
//! the same [`Value`]s the binlog decoder produces for the same column type.
//!
//! Invariant: for every column type, `convert(select(row)) == decode(binlog(row))` — checked
//! against both servers by the type-matrix tests. Chunk boundaries are kept as the server's own
//! values ([`Bound`]) so that the next chunk's `WHERE key > ?` compares exactly as the server does.

use crate::change::Value;
use crate::schema::{Charset, ColumnType};
use mysql_async::Value as S;
use serde::{Deserialize, Serialize};

/// One value as the server returned it, in a form that survives the offset store (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Bound {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Hex, so that binary keys survive JSON.
    Bytes(String),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl Bound {
    pub fn from_sql(v: &S) -> Bound {
        match v {
            S::NULL => Bound::Null,
            S::Int(i) => Bound::Int(*i),
            S::UInt(u) => Bound::UInt(*u),
            S::Float(f) => Bound::Float(*f),
            S::Double(d) => Bound::Double(*d),
            S::Bytes(b) => Bound::Bytes(b.iter().map(|x| format!("{x:02x}")).collect()),
            S::Date(y, m, d, h, mi, s, us) => Bound::Date(*y, *m, *d, *h, *mi, *s, *us),
            S::Time(neg, days, h, m, s, us) => Bound::Time(*neg, *days, *h, *m, *s, *us),
        }
    }

    pub fn to_sql(&self) -> Result<S, String> {
        Ok(match self {
            Bound::Null => S::NULL,
            Bound::Int(i) => S::Int(*i),
            Bound::UInt(u) => S::UInt(*u),
            Bound::Float(f) => S::Float(*f),
            Bound::Double(d) => S::Double(*d),
            Bound::Bytes(hex) => {
                if hex.len() % 2 != 0 {
                    return Err(format!("key bound {hex:?} is not hex"));
                }
                S::Bytes(
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
                        .collect::<Result<_, _>>()
                        .map_err(|_| format!("key bound {hex:?} is not hex"))?,
                )
            }
            Bound::Date(y, m, d, h, mi, s, us) => S::Date(*y, *m, *d, *h, *mi, *s, *us),
            Bound::Time(neg, days, h, m, s, us) => S::Time(*neg, *days, *h, *m, *s, *us),
        })
    }
}

/// Converts one value; the error says what did not fit.
pub fn convert(ty: &ColumnType, v: S) -> Result<Value, String> {
    use ColumnType as T;
    let mismatch = |v: &S| format!("the server returned {v:?} for a {ty:?} column");
    Ok(match (ty, v) {
        (_, S::NULL) => Value::Null,
        (T::Null, _) => Value::Null,
        (T::TinyInt { unsigned } | T::SmallInt { unsigned } | T::MediumInt { unsigned } | T::Int { unsigned }, v) => {
            int(*unsigned, v)?
        }
        (T::BigInt { unsigned }, v) => int(*unsigned, v)?,
        (T::Year, S::Int(y)) => Value::Year(u16::try_from(y).map_err(|_| format!("YEAR {y}"))?),
        (T::Year, S::UInt(y)) => Value::Year(u16::try_from(y).map_err(|_| format!("YEAR {y}"))?),
        (T::Float, S::Float(f)) => Value::Float(f),
        (T::Float, S::Double(d)) => Value::Float(d as f32),
        (T::Double, S::Double(d)) => Value::Double(d),
        (T::Decimal { .. }, S::Bytes(b)) => Value::Decimal(utf8(b)?),
        (T::Bit { width }, S::Bytes(b)) => {
            if b.len() > 8 {
                return Err(format!("BIT value of {} bytes", b.len()));
            }
            Value::Bit { value: b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)), width: *width }
        }
        (T::Date, S::Date(year, month, day, _, _, _, _)) => Value::Date { year, month, day },
        (T::DateTime { .. } | T::DateTimeV1, S::Date(year, month, day, hour, minute, second, micros)) => {
            Value::DateTime { year, month, day, hour, minute, second, micros }
        }
        (T::Timestamp { .. } | T::TimestampV1, S::Date(y, mo, d, h, mi, s, us)) => {
            if (y, mo, d) == (0, 0, 0) {
                Value::Timestamp { seconds: 0, micros: 0 }
            } else {
                let days = crate::encoder::datum::days_from_civil(i64::from(y), u32::from(mo), u32::from(d));
                let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
                Value::Timestamp { seconds: u32::try_from(secs).map_err(|_| format!("TIMESTAMP {secs}"))?, micros: us }
            }
        }
        (T::Time { .. } | T::TimeV1, S::Time(neg, days, h, m, s, us)) => {
            let total = (((i64::from(days) * 24 + i64::from(h)) * 60 + i64::from(m)) * 60 + i64::from(s)) * 1_000_000
                + i64::from(us);
            Value::Time { micros: if neg { -total } else { total } }
        }
        (T::Char { charset, .. } | T::VarChar { charset, .. } | T::Blob { charset, .. }, S::Bytes(b)) => {
            if *charset == Charset::Binary { Value::Bytes(b) } else { Value::Text(utf8(b)?) }
        }
        (T::Enum { .. }, S::Bytes(b)) => Value::Enum(utf8(b)?),
        (T::Set { .. }, S::Bytes(b)) => {
            let text = utf8(b)?;
            // Labels cannot contain commas (MySQL refuses them in SET definitions).
            Value::Set(if text.is_empty() { Vec::new() } else { text.split(',').map(str::to_string).collect() })
        }
        (T::Json { .. } | T::JsonText { .. }, S::Bytes(b)) => Value::Json(utf8(b)?),
        (T::Geometry { .. }, S::Bytes(b)) => {
            if b.len() < 4 {
                return Err(format!("GEOMETRY value of {} bytes", b.len()));
            }
            Value::Geometry { srid: u32::from_le_bytes([b[0], b[1], b[2], b[3]]), wkb: b[4..].to_vec() }
        }
        // SELECT returns these as text, as the binlog decoder prints them.
        (T::Uuid | T::Inet4 | T::Inet6, S::Bytes(b)) => Value::Text(utf8(b)?),
        (T::Vector { .. } | T::VarVector { .. }, S::Bytes(b)) => {
            if b.len() % 4 != 0 {
                return Err(format!("VECTOR value of {} bytes", b.len()));
            }
            Value::Vector(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        (_, v) => return Err(mismatch(&v)),
    })
}

fn int(unsigned: bool, v: S) -> Result<Value, String> {
    match (unsigned, v) {
        (false, S::Int(i)) => Ok(Value::Int(i)),
        (false, S::UInt(u)) => i64::try_from(u).map(Value::Int).map_err(|_| format!("signed integer {u}")),
        (true, S::UInt(u)) => Ok(Value::UInt(u)),
        (true, S::Int(i)) => u64::try_from(i).map(Value::UInt).map_err(|_| format!("unsigned integer {i}")),
        (_, v) => Err(format!("the server returned {v:?} for an integer column")),
    }
}

fn utf8(b: Vec<u8>) -> Result<String, String> {
    String::from_utf8(b).map_err(|e| format!("text that is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_survive_json() {
        let values = [
            S::NULL,
            S::Int(-5),
            S::UInt(u64::MAX),
            S::Double(0.1),
            S::Bytes(vec![0, 255, 16]),
            S::Date(2024, 2, 29, 1, 2, 3, 4),
            S::Time(true, 1, 2, 3, 4, 5),
        ];
        for v in values {
            let b = Bound::from_sql(&v);
            let back: Bound = serde_json::from_str(&serde_json::to_string(&b).unwrap_or_default()).expect("json");
            assert_eq!(back.to_sql().ok(), Some(v));
        }
        assert!(Bound::Bytes("zz".into()).to_sql().is_err());
        assert!(Bound::Bytes("abc".into()).to_sql().is_err());
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        let ts = ColumnType::Timestamp { fsp: 6 };
        assert_eq!(convert(&ts, S::Date(1970, 1, 1, 0, 0, 1, 5)), Ok(Value::Timestamp { seconds: 1, micros: 5 }));
        assert_eq!(convert(&ts, S::Date(0, 0, 0, 0, 0, 0, 0)), Ok(Value::Timestamp { seconds: 0, micros: 0 }));
        let time = ColumnType::Time { fsp: 0 };
        assert_eq!(convert(&time, S::Time(true, 1, 0, 0, 1, 0)), Ok(Value::Time { micros: -86_401_000_000 }));
        assert!(convert(&ColumnType::Int { unsigned: true }, S::Int(-1)).is_err());
    }
}
