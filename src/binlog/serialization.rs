//! MySQL's serialization library format (used by GTID_TAGGED_LOG_EVENT, MySQL 8.3+).
//!
//! Unsigned integers are variable length: the number of trailing one bits of the first byte, plus
//! one, is the byte count; the value is the little-endian number shifted right by that count.
//! A first byte of 0xFF means eight raw bytes follow. Signed integers are zig-zag encoded.
//! Reference: <https://dev.mysql.com/doc/dev/mysql-server/latest/PageLibsMysqlSerialization.html>

use super::BinlogError;
use super::cursor::Cursor;

const WHAT: &str = "serialized field";

/// Reads a variable-length unsigned integer.
pub fn varlen_u64(c: &mut Cursor<'_>) -> Result<u64, BinlogError> {
    let first = *c.rest().first().ok_or_else(|| BinlogError::malformed(WHAT, "empty"))?;
    let ones = first.trailing_ones() as usize;
    if ones == 8 {
        c.skip(1)?;
        return c.u64();
    }
    let n = ones + 1;
    let raw = c.uint(n)?;
    Ok(raw >> n)
}

/// Reads a zig-zag encoded signed integer.
pub fn varlen_i64(c: &mut Cursor<'_>) -> Result<i64, BinlogError> {
    let u = varlen_u64(c)?;
    let magnitude = (u >> 1) as i64;
    Ok(if u & 1 == 1 { -magnitude - 1 } else { magnitude })
}

/// Reads a length-prefixed byte string.
pub fn varlen_bytes<'a>(c: &mut Cursor<'a>) -> Result<&'a [u8], BinlogError> {
    let n = varlen_u64(c)?;
    let n = usize::try_from(n).map_err(|_| BinlogError::malformed(WHAT, "length overflows"))?;
    c.bytes(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoder, for round-trip tests only.
    fn encode(v: u64) -> Vec<u8> {
        for n in 1..=8usize {
            if n < 8 && v < (1u64 << (7 * n)) {
                let raw = (v << n) | ((1u64 << (n - 1)) - 1);
                return raw.to_le_bytes()[..n].to_vec();
            }
        }
        let mut out = vec![0xff];
        out.extend_from_slice(&v.to_le_bytes());
        out
    }

    #[test]
    fn round_trips() {
        for v in [0, 1, 127, 128, 300, 1 << 20, u32::MAX as u64, 1 << 55, (1 << 56) - 1, 1 << 56, u64::MAX] {
            let bytes = encode(v);
            assert_eq!(varlen_u64(&mut Cursor::new(&bytes, "t")).ok(), Some(v), "{v}: {bytes:?}");
        }
        assert!(varlen_u64(&mut Cursor::new(&[0b11], "t")).is_err());
        assert!(varlen_u64(&mut Cursor::new(&[], "t")).is_err());
    }
}
