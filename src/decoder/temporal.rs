//! Temporal values in their binlog forms.
//!
//! MySQL 5.6+ (and MariaDB with `mysql56_temporal_format=ON`, its default) write DATETIME2,
//! TIMESTAMP2 and TIME2: big-endian packed integers followed by 0–3 bytes of fractional seconds
//! (`(fsp + 1) / 2` bytes). Older binlogs use DATETIME (a decimal YYYYMMDDhhmmss in 8 bytes), TIME
//! (HHMMSS in 3) and TIMESTAMP (epoch seconds in 4). Reference: MySQL `my_time.cc`
//! (`my_datetime_packed_from_binary`, `my_time_packed_from_binary`).

use crate::binlog::BinlogError;
use crate::binlog::cursor::Cursor;
use crate::change::Value;

const WHAT: &str = "temporal value";

/// Fractional seconds in µs for precision `fsp`, as DATETIME2/TIMESTAMP2 store them.
fn frac_micros(fsp: u8, c: &mut Cursor<'_>) -> Result<u32, BinlogError> {
    Ok(match fsp {
        0 => 0,
        1 | 2 => c.u8()? as u32 * 10_000,
        3 | 4 => c.uint_be(2)? as u32 * 100,
        _ => c.uint_be(3)? as u32,
    })
}

fn check_micros(m: u32) -> Result<u32, BinlogError> {
    if m < 1_000_000 { Ok(m) } else { Err(BinlogError::malformed(WHAT, format!("{m} µs is not below one second"))) }
}

pub fn datetime2(fsp: u8, c: &mut Cursor<'_>) -> Result<Value, BinlogError> {
    let packed = c.uint_be(5)? as i64 - 0x80_0000_0000;
    let micros = check_micros(frac_micros(fsp, c)?)?;
    if packed < 0 {
        return Err(BinlogError::malformed(WHAT, "negative DATETIME"));
    }
    let ymd = packed >> 17;
    let ym = ymd >> 5;
    let hms = packed & 0x1_ffff;
    Ok(Value::DateTime {
        year: (ym / 13) as u16,
        month: (ym % 13) as u8,
        day: (ymd & 31) as u8,
        hour: (hms >> 12) as u8,
        minute: ((hms >> 6) & 63) as u8,
        second: (hms & 63) as u8,
        micros,
    })
}

pub fn timestamp2(fsp: u8, c: &mut Cursor<'_>) -> Result<Value, BinlogError> {
    let seconds = c.uint_be(4)? as u32;
    let micros = check_micros(frac_micros(fsp, c)?)?;
    Ok(Value::Timestamp { seconds, micros })
}

pub fn time2(fsp: u8, c: &mut Cursor<'_>) -> Result<Value, BinlogError> {
    const INT_OFS: i64 = 0x80_0000;
    // Packed as (integer part << 24) + fraction; negative values keep the fraction in reverse
    // order, so it is borrowed from the integer part.
    let packed: i64 = match fsp {
        0 => (c.uint_be(3)? as i64 - INT_OFS) << 24,
        1 | 2 => {
            let mut int = c.uint_be(3)? as i64 - INT_OFS;
            let mut frac = i64::from(c.u8()?);
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 0x100;
            }
            (int << 24) + frac * 10_000
        }
        3 | 4 => {
            let mut int = c.uint_be(3)? as i64 - INT_OFS;
            let mut frac = c.uint_be(2)? as i64;
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 0x1_0000;
            }
            (int << 24) + frac * 100
        }
        _ => c.uint_be(6)? as i64 - 0x8000_0000_0000,
    };
    let negative = packed < 0;
    let abs = packed.unsigned_abs();
    let hms = abs >> 24;
    let frac = abs & 0xff_ffff;
    let (hour, minute, second) = ((hms >> 12) & 0x3ff, (hms >> 6) & 63, hms & 63);
    if minute > 59 || second > 59 || frac >= 1_000_000 {
        return Err(BinlogError::malformed(WHAT, format!("TIME {hour}:{minute}:{second}.{frac} is out of range")));
    }
    let micros = (((hour * 60 + minute) * 60 + second) * 1_000_000 + frac) as i64;
    Ok(Value::Time { micros: if negative { -micros } else { micros } })
}

pub fn date(c: &mut Cursor<'_>) -> Result<Value, BinlogError> {
    let v = c.u24()?;
    Ok(Value::Date { year: (v >> 9) as u16, month: ((v >> 5) & 15) as u8, day: (v & 31) as u8 })
}

pub fn year(c: &mut Cursor<'_>) -> Result<Value, BinlogError> {
    let v = c.u8()?;
    Ok(Value::Year(if v == 0 { 0 } else { 1900 + u16::from(v) }))
}

pub fn time_v1(c: &mut Cursor<'_>) -> Result<Value, BinlogError> {
    let raw = c.u24()?;
    let v = ((raw << 8) as i32 >> 8) as i64; // sign-extend 24 bits
    let abs = v.unsigned_abs();
    let micros = ((abs / 10_000 * 3600 + abs / 100 % 100 * 60 + abs % 100) * 1_000_000) as i64;
    Ok(Value::Time { micros: if v < 0 { -micros } else { micros } })
}

pub fn datetime_v1(c: &mut Cursor<'_>) -> Result<Value, BinlogError> {
    let v = c.u64()?;
    let (d, t) = (v / 1_000_000, v % 1_000_000);
    Ok(Value::DateTime {
        year: (d / 10_000) as u16,
        month: (d / 100 % 100) as u8,
        day: (d % 100) as u8,
        hour: (t / 10_000) as u8,
        minute: (t / 100 % 100) as u8,
        second: (t % 100) as u8,
        micros: 0,
    })
}

pub fn timestamp_v1(c: &mut Cursor<'_>) -> Result<Value, BinlogError> {
    Ok(Value::Timestamp { seconds: c.u32()?, micros: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(bytes: &[u8], fsp: u8) -> i64 {
        match time2(fsp, &mut Cursor::new(bytes, "t")).expect("time") {
            Value::Time { micros } => micros,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn time2_examples() {
        // 00:00:00
        assert_eq!(time(&[0x80, 0x00, 0x00], 0), 0);
        // 12:34:56 = (12 << 12 | 34 << 6 | 56) + 0x800000
        let hms = (12 << 12) | (34 << 6) | 56;
        let v = (0x80_0000 + hms) as u32;
        assert_eq!(time(&v.to_be_bytes()[1..], 0), ((12 * 3600 + 34 * 60 + 56) as i64) * 1_000_000);
        // -00:00:01 at fsp 0
        let v = (0x80_0000 - 1) as u32;
        assert_eq!(time(&v.to_be_bytes()[1..], 0), -1_000_000);
        // -00:00:00.5 at fsp 1: int part -1 + 1, frac 0x100 - 50
        let v = (0x80_0000 - 1) as u32;
        let mut b = v.to_be_bytes()[1..].to_vec();
        b.push((0x100 - 50) as u8);
        assert_eq!(time(&b, 1), -500_000);
    }

    #[test]
    fn datetime2_example() {
        // 2017-10-24 12:34:56.789 (fsp 3)
        let ym = 2017 * 13 + 10;
        let ymd: i64 = (ym << 5) | 24;
        let hms: i64 = (12 << 12) | (34 << 6) | 56;
        let packed = ((ymd << 17) | hms) + 0x80_0000_0000;
        let mut b = packed.to_be_bytes()[3..].to_vec();
        b.extend_from_slice(&7890u16.to_be_bytes());
        let v = datetime2(3, &mut Cursor::new(&b, "t")).expect("datetime");
        assert_eq!(
            v,
            Value::DateTime { year: 2017, month: 10, day: 24, hour: 12, minute: 34, second: 56, micros: 789_000 }
        );
    }

    #[test]
    fn year_zero_and_date() {
        assert_eq!(year(&mut Cursor::new(&[0], "t")).ok(), Some(Value::Year(0)));
        assert_eq!(year(&mut Cursor::new(&[155], "t")).ok(), Some(Value::Year(2055)));
        let v: u32 = (2024 << 9) | (2 << 5) | 29;
        assert_eq!(
            date(&mut Cursor::new(&v.to_le_bytes()[..3], "t")).ok(),
            Some(Value::Date { year: 2024, month: 2, day: 29 })
        );
    }
}
