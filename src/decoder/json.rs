//! MySQL's binary JSON (the JSON column format in row events) to JSON text, printed the way MySQL
//! prints it (`{"a": 1, "b": [true, null]}`), so the text equals what `SELECT` returns.
//!
//! Format (MySQL `json_binary.h`): a type byte, then the value. Objects and arrays come in a small
//! (16-bit offsets) and a large (32-bit) form: element count, byte size, key entries (objects),
//! value entries (type + offset, or the value inline for small scalars), then the data. Offsets
//! are relative to the start of the container. Depth is limited so hostile input cannot overflow
//! the stack.

use crate::binlog::BinlogError;
use crate::binlog::cursor::Cursor;
use std::fmt::Write;

const WHAT: &str = "JSON value";
const MAX_DEPTH: usize = 150;

const SMALL_OBJECT: u8 = 0x00;
const LARGE_OBJECT: u8 = 0x01;
const SMALL_ARRAY: u8 = 0x02;
const LARGE_ARRAY: u8 = 0x03;
const LITERAL: u8 = 0x04;
const INT16: u8 = 0x05;
const UINT16: u8 = 0x06;
const INT32: u8 = 0x07;
const UINT32: u8 = 0x08;
const INT64: u8 = 0x09;
const UINT64: u8 = 0x0a;
const DOUBLE: u8 = 0x0b;
const STRING: u8 = 0x0c;
const OPAQUE: u8 = 0x0f;

fn bad(detail: impl Into<String>) -> BinlogError {
    BinlogError::malformed(WHAT, detail)
}

/// Converts a binary JSON document to text. An empty document is JSON `null` (MySQL writes an
/// empty value for a JSON null in some statements).
pub fn to_text(doc: &[u8]) -> Result<String, BinlogError> {
    let mut out = String::with_capacity(doc.len() + 16);
    match doc.split_first() {
        None => out.push_str("null"),
        Some((&ty, data)) => value(ty, data, &mut out, 0)?,
    }
    Ok(out)
}

fn value(ty: u8, data: &[u8], out: &mut String, depth: usize) -> Result<(), BinlogError> {
    if depth > MAX_DEPTH {
        return Err(bad("nested deeper than MySQL allows"));
    }
    let mut c = Cursor::new(data, WHAT);
    match ty {
        SMALL_OBJECT | LARGE_OBJECT => container(data, ty == LARGE_OBJECT, true, out, depth),
        SMALL_ARRAY | LARGE_ARRAY => container(data, ty == LARGE_ARRAY, false, out, depth),
        LITERAL => literal(c.u8()?, out),
        INT16 => number(i64::from(c.u16()? as i16), out),
        UINT16 => number(c.u16()?, out),
        INT32 => number(c.u32()? as i32, out),
        UINT32 => number(c.u32()?, out),
        INT64 => number(c.u64()? as i64, out),
        UINT64 => number(c.u64()?, out),
        DOUBLE => {
            double(f64::from_bits(c.u64()?), out);
            Ok(())
        }
        STRING => {
            let n = varlen(&mut c)?;
            let s = std::str::from_utf8(c.bytes(n)?).map_err(|_| bad("string is not UTF-8"))?;
            quote(s, out);
            Ok(())
        }
        OPAQUE => opaque(&mut c, out),
        other => Err(bad(format!("unknown type {other:#x}"))),
    }
}

fn number(v: impl std::fmt::Display, out: &mut String) -> Result<(), BinlogError> {
    // Writing to a String cannot fail.
    let _ = write!(out, "{v}");
    Ok(())
}

fn literal(v: u8, out: &mut String) -> Result<(), BinlogError> {
    out.push_str(match v {
        0 => "null",
        1 => "true",
        2 => "false",
        other => return Err(bad(format!("unknown literal {other}"))),
    });
    Ok(())
}

/// MySQL prints doubles in their shortest round-trip form, with `.0` on integral values and an
/// exponent for very large or small magnitudes — as Rust's `{:?}` does.
fn double(v: f64, out: &mut String) {
    let _ = write!(out, "{v:?}");
}

/// Length of a string or opaque value: 7 bits per byte, little-endian, high bit = more.
fn varlen(c: &mut Cursor<'_>) -> Result<usize, BinlogError> {
    let mut n: u64 = 0;
    for i in 0..5 {
        let b = c.u8()?;
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return usize::try_from(n).map_err(|_| bad("length overflows"));
        }
    }
    Err(bad("length longer than 5 bytes"))
}

fn container(data: &[u8], large: bool, object: bool, out: &mut String, depth: usize) -> Result<(), BinlogError> {
    let width = if large { 4 } else { 2 };
    let mut c = Cursor::new(data, WHAT);
    let count = c.uint(width)? as usize;
    let size = c.uint(width)? as usize;
    if size > data.len() {
        return Err(bad(format!("container claims {size} bytes, has {}", data.len())));
    }
    let data = &data[..size];
    // Where the value entries start; count ≤ 2^32 so these products cannot overflow a usize.
    let value_entries = 2 * width + if object { count * (width + 2) } else { 0 };
    if value_entries + count * (1 + width) > size {
        return Err(bad(format!("{count} entries do not fit in {size} bytes")));
    }
    out.push(if object { '{' } else { '[' });
    for i in 0..count {
        if i > 0 {
            out.push_str(", ");
        }
        if object {
            let mut k = Cursor::new(data, WHAT);
            k.skip(2 * width + i * (width + 2))?;
            let offset = k.uint(width)? as usize;
            let len = k.u16()? as usize;
            let key = data.get(offset..offset + len).ok_or_else(|| bad("key outside its object"))?;
            quote(std::str::from_utf8(key).map_err(|_| bad("key is not UTF-8"))?, out);
            out.push_str(": ");
        }
        let mut e = Cursor::new(data, WHAT);
        e.skip(value_entries + i * (1 + width))?;
        let ty = e.u8()?;
        let inline = matches!(ty, LITERAL | INT16 | UINT16) || (large && matches!(ty, INT32 | UINT32));
        if inline {
            value(ty, e.bytes(width)?, out, depth + 1)?;
        } else {
            let offset = e.uint(width)? as usize;
            let inner = data
                .get(offset..)
                .filter(|_| offset >= value_entries)
                .ok_or_else(|| bad("value outside its container"))?;
            value(ty, inner, out, depth + 1)?;
        }
    }
    out.push(if object { '}' } else { ']' });
    Ok(())
}

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Opaque values: a MySQL column type and its bytes. DECIMAL and temporal types print as MySQL
/// prints them; anything else as MySQL's `base64:typeNN:` string.
fn opaque(c: &mut Cursor<'_>, out: &mut String) -> Result<(), BinlogError> {
    use crate::schema::table_map::type_code as t;
    let field_type = c.u8()?;
    let n = varlen(c)?;
    let bytes = c.bytes(n)?;
    let mut v = Cursor::new(bytes, WHAT);
    match field_type {
        t::NEWDECIMAL => {
            let precision = v.u8()?;
            let scale = v.u8()?;
            out.push_str(&super::decimal::decode(precision, scale, &mut v)?);
        }
        t::DATE | t::DATETIME | t::TIMESTAMP | t::TIME => {
            let packed = v.u64()? as i64;
            out.push('"');
            packed_temporal(field_type, packed, out);
            out.push('"');
        }
        other => {
            let _ = write!(out, "\"base64:type{other}:{}\"", base64(bytes));
        }
    }
    Ok(())
}

fn packed_temporal(field_type: u8, packed: i64, out: &mut String) {
    use crate::schema::table_map::type_code as t;
    let negative = packed < 0;
    let abs = packed.unsigned_abs();
    let int = abs >> 24;
    let frac = abs & 0xff_ffff;
    if field_type == t::TIME {
        let hms = int;
        let _ = write!(
            out,
            "{}{:02}:{:02}:{:02}.{frac:06}",
            if negative { "-" } else { "" },
            (hms >> 12) & 0x3ff,
            (hms >> 6) & 63,
            hms & 63
        );
        return;
    }
    let ymd = int >> 17;
    let ym = ymd >> 5;
    let hms = int & 0x1_ffff;
    let _ = write!(out, "{:04}-{:02}-{:02}", ym / 13, ym % 13, ymd & 31);
    if field_type != t::DATE {
        let _ = write!(out, " {:02}:{:02}:{:02}.{frac:06}", hms >> 12, (hms >> 6) & 63, hms & 63);
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_containers() {
        assert_eq!(to_text(&[LITERAL, 1]).ok().as_deref(), Some("true"));
        assert_eq!(to_text(&[INT16, 0xff, 0xff]).ok().as_deref(), Some("-1"));
        assert_eq!(to_text(&[STRING, 3, b'a', b'"', b'c']).ok().as_deref(), Some("\"a\\\"c\""));
        let mut d = vec![DOUBLE];
        d.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(to_text(&d).ok().as_deref(), Some("1.5"));
        // small array [1, "x"]: count 2, size, entries (type+offset 3 bytes each), data
        let mut arr = vec![SMALL_ARRAY, 2, 0, 0, 0, INT16, 1, 0, STRING, 10, 0, 1, b'x'];
        let size = (arr.len() - 1) as u8;
        arr[3] = size;
        assert_eq!(to_text(&arr).ok().as_deref(), Some("[1, \"x\"]"));
        // small object {"k": null}
        let mut obj = vec![SMALL_OBJECT, 1, 0, 0, 0, 11, 0, 1, 0, LITERAL, 0, 0, b'k'];
        let size = (obj.len() - 1) as u8;
        obj[3] = size;
        assert_eq!(to_text(&obj).ok().as_deref(), Some("{\"k\": null}"));
        assert_eq!(to_text(&[]).ok().as_deref(), Some("null"));
    }

    #[test]
    fn hostile_input_is_an_error() {
        assert!(to_text(&[SMALL_ARRAY, 0xff, 0xff, 4, 0]).is_err());
        assert!(to_text(&[0x33]).is_err());
        assert!(to_text(&[STRING, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Nesting: arrays of one element holding the next; fine at 100 levels, refused at 300.
        let nested = |levels: usize| {
            let mut doc = vec![0u8, 0, 4, 0]; // []
            for _ in 0..levels {
                let mut outer = vec![1, 0, 0, 0, SMALL_ARRAY, 7, 0];
                outer.extend_from_slice(&doc);
                let size = (outer.len() as u16).to_le_bytes();
                outer[2..4].copy_from_slice(&size);
                doc = outer;
            }
            doc.insert(0, SMALL_ARRAY);
            to_text(&doc)
        };
        assert_eq!(nested(2).ok().as_deref(), Some("[[[]]]"));
        assert!(nested(100).is_ok());
        assert!(nested(300).is_err());
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"f"), "Zg==");
    }
}
