//! MySQL's packed DECIMAL: groups of nine decimal digits in four big-endian bytes, partial groups
//! in fewer bytes, the sign in the top bit (set = positive; negative values have every bit
//! inverted). Decoded to exact text, so DECIMAL(65,30) loses nothing.

use crate::binlog::BinlogError;
use crate::binlog::cursor::Cursor;

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
const POW10: [u32; 10] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000];

/// Bytes a DECIMAL(precision, scale) takes.
pub fn packed_len(precision: u8, scale: u8) -> usize {
    let intg = usize::from(precision.saturating_sub(scale));
    let frac = usize::from(scale);
    intg / 9 * 4 + DIG2BYTES[intg % 9] + frac / 9 * 4 + DIG2BYTES[frac % 9]
}

/// Decodes one DECIMAL(precision, scale) value to text: `-`?, integer digits (at least one), and
/// exactly `scale` fraction digits after a `.` when `scale > 0`.
pub fn decode(precision: u8, scale: u8, c: &mut Cursor<'_>) -> Result<String, BinlogError> {
    let len = packed_len(precision, scale);
    if len == 0 || len > 32 || scale > precision {
        return Err(BinlogError::malformed("DECIMAL value", format!("DECIMAL({precision},{scale}) cannot be decoded")));
    }
    let raw = c.bytes(len)?;
    let mut buf = [0u8; 32];
    buf[..len].copy_from_slice(raw);
    let negative = buf[0] & 0x80 == 0;
    buf[0] ^= 0x80;
    if negative {
        buf[..len].iter_mut().for_each(|b| *b = !*b);
    }
    let intg = usize::from(precision - scale);
    let mut r = Cursor::new(&buf[..len], "DECIMAL value");
    let mut int_digits = String::with_capacity(intg + 1);
    let group = |r: &mut Cursor<'_>, digits: usize, out: &mut String| -> Result<(), BinlogError> {
        if digits == 0 {
            return Ok(());
        }
        let v = r.uint_be(DIG2BYTES[digits])? as u32;
        if v >= POW10[digits] {
            return Err(BinlogError::malformed("DECIMAL value", format!("group {v} has more than {digits} digits")));
        }
        out.push_str(&format!("{v:0digits$}"));
        Ok(())
    };
    group(&mut r, intg % 9, &mut int_digits)?;
    for _ in 0..intg / 9 {
        group(&mut r, 9, &mut int_digits)?;
    }
    let mut frac_digits = String::with_capacity(usize::from(scale));
    for _ in 0..usize::from(scale) / 9 {
        group(&mut r, 9, &mut frac_digits)?;
    }
    group(&mut r, usize::from(scale) % 9, &mut frac_digits)?;

    let int_part = int_digits.trim_start_matches('0');
    let mut out = String::with_capacity(int_part.len() + frac_digits.len() + 3);
    let zero = int_part.is_empty() && frac_digits.bytes().all(|b| b == b'0');
    if negative && !zero {
        out.push('-');
    }
    out.push_str(if int_part.is_empty() { "0" } else { int_part });
    if scale > 0 {
        out.push('.');
        out.push_str(&frac_digits);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `text` as DECIMAL(p, s) the way MySQL does, for round trips.
    pub(crate) fn encode(text: &str, precision: u8, scale: u8) -> Vec<u8> {
        let negative = text.starts_with('-');
        let text = text.trim_start_matches('-');
        let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
        let intg = usize::from(precision - scale);
        let int_part = format!("{int_part:0>intg$}");
        let frac_part = format!("{frac_part:0<width$}", width = usize::from(scale));
        let mut out = Vec::new();
        let mut push = |digits: &str| {
            if digits.is_empty() {
                return;
            }
            let v: u64 = digits.parse().expect("digits");
            let n = DIG2BYTES[digits.len()];
            out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
        };
        let lead = intg % 9;
        push(&int_part[..lead]);
        for chunk in int_part.as_bytes()[lead..].chunks(9) {
            push(std::str::from_utf8(chunk).expect("ascii"));
        }
        for chunk in frac_part.as_bytes().chunks(9) {
            push(std::str::from_utf8(chunk).expect("ascii"));
        }
        out[0] ^= 0x80;
        if negative {
            out.iter_mut().for_each(|b| *b = !*b);
        }
        out
    }

    fn round_trip(text: &str, p: u8, s: u8) -> String {
        let bytes = encode(text, p, s);
        assert_eq!(bytes.len(), packed_len(p, s));
        decode(p, s, &mut Cursor::new(&bytes, "t")).expect("decode")
    }

    #[test]
    fn known_values() {
        assert_eq!(round_trip("1234567890.1234", 14, 4), "1234567890.1234");
        assert_eq!(round_trip("-1234567890.1234", 14, 4), "-1234567890.1234");
        assert_eq!(round_trip("0.5", 10, 2), "0.50");
        assert_eq!(round_trip("-0.05", 10, 2), "-0.05");
        assert_eq!(round_trip("0", 10, 0), "0");
        assert_eq!(round_trip("12", 2, 0), "12");
        let max = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        assert_eq!(round_trip(&max, 65, 30), max);
        assert_eq!(round_trip(&format!("-{max}"), 65, 30), format!("-{max}"));
        // MySQL's own example: 1234567890.1234 as DECIMAL(14,4)
        assert_eq!(encode("1234567890.1234", 14, 4), [0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2]);
    }

    #[test]
    fn rejects_overlong_groups_and_short_input() {
        let bytes = [0x80 | 0x7f, 0xff, 0xff, 0xff]; // 9 digits group value > 999999999
        assert!(decode(9, 0, &mut Cursor::new(&bytes, "t")).is_err());
        assert!(decode(14, 4, &mut Cursor::new(&[0x81, 0x0D], "t")).is_err());
    }

    proptest::proptest! {
        #[test]
        fn round_trips(int in "[0-9]{1,35}", frac in "[0-9]{0,30}", neg: bool) {
            let int = int.trim_start_matches('0');
            let int = if int.is_empty() { "0" } else { int };
            let scale = frac.len() as u8;
            let precision = (int.len() as u8 + scale).max(1);
            let text = if scale > 0 { format!("{int}.{frac}") } else { int.to_string() };
            let zero = text.bytes().all(|b| b == b'0' || b == b'.');
            let signed = if neg && !zero { format!("-{text}") } else { text.clone() };
            proptest::prop_assert_eq!(round_trip(&signed, precision, scale), signed);
        }
    }
}
