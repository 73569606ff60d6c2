use super::*;
use crate::encoder::avro_schema::table_schemas;
use crate::schema::TableSchema;
use apache_avro::reader::datum::GenericDatumReader;
use proptest::prelude::*;
use std::sync::Arc;

const NATIVE: Style = Style { format: Format::AvroNative, streamed: true };
const DEBEZIUM: Style = Style { format: Format::Debezium, streamed: true };

fn decode(schema: &apache_avro::Schema, bytes: &[u8]) -> Avro {
    GenericDatumReader::builder(schema).build().and_then(|r| r.read_value(&mut &bytes[..])).expect("decode")
}

pub(crate) fn source() -> SourceInfo<'static> {
    SourceInfo {
        connector: "mysql",
        name: "test",
        ts_ms: 1_700_000_000_000,
        snapshot: "false",
        server_id: 1,
        gtid: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:7"),
        file: "binlog.000001",
        ts_us: 1_700_000_000_000_123,
        pos: 4,
        row: 0,
        thread: Some(9),
    }
}

pub(crate) fn table() -> Arc<TableSchema> {
    Arc::new(crate::encoder::avro_schema::tests::table(crate::encoder::avro_schema::tests::every_type()))
}

pub(crate) fn row_values() -> Vec<Value> {
    vec![
        Value::Int(1),
        Value::Int(-128),
        Value::UInt(255),
        Value::Int(-8_388_608),
        Value::UInt(4_294_967_295),
        Value::Int(i64::MIN),
        Value::UInt(u64::MAX),
        Value::Float(1.5),
        Value::Double(-0.1),
        Value::Decimal(format!("-{}.{}", "9".repeat(35), "9".repeat(30))),
        Value::Decimal("-0.01".into()),
        Value::Bit { value: 0b10101, width: 5 },
        Value::Bit { value: u64::MAX, width: 64 },
        Value::Year(0),
        Value::Date { year: 2024, month: 2, day: 29 },
        Value::DateTime { year: 1969, month: 12, day: 31, hour: 23, minute: 59, second: 59, micros: 999_999 },
        Value::Timestamp { seconds: 2_147_483_647, micros: 1 },
        Value::Time { micros: -3_020_399_000_000 },
        Value::Text("😀 ü".into()),
        Value::Bytes(b"ab\0\0".to_vec()),
        Value::Bytes(vec![]),
        Value::Enum("b".into()),
        Value::Set(vec!["a".into(), "b".into()]),
        Value::Json("{\"k\": [1]}".into()),
        Value::Geometry { srid: 4326, wkb: vec![1, 1, 0, 0, 0] },
        Value::Null,
        Value::Vector(vec![1.5, -2.0]),
        Value::Bit { value: 1, width: 1 },
        Value::DateTime { year: 2024, month: 2, day: 29, hour: 12, minute: 34, second: 56, micros: 789_000 },
        Value::Timestamp { seconds: 1_709_210_096, micros: 780_000 },
        Value::UInt(65_535),
        Value::Int(7),
    ]
}

#[test]
fn envelope_round_trips_through_avro() {
    let table = table();
    let schemas = table_schemas(&table, "rowferry.shop.every-type", Format::AvroNative, "mysql").expect("schemas");
    let change = RowChange {
        op: Op::Update,
        table: Arc::clone(&table),
        before: Some(row_values()),
        after: Some(row_values()),
        at: Default::default(),
    };
    let value = envelope(&change, &source(), None, 42, Format::AvroNative).expect("envelope");
    let bytes = encode(&schemas.value.1, value.clone()).expect("encode");
    let back = decode(&schemas.value.1, &bytes);
    let Avro::Record(fields) = back else { panic!("not a record") };
    assert_eq!(fields[3], ("op".to_string(), Avro::String("u".into())));
    let Avro::Union(1, after) = &fields[1].1 else { panic!("after is null") };
    let Avro::Record(cols) = after.as_ref() else { panic!("after not a record") };
    let get = |name: &str| cols.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).expect(name);
    let inner = |v: Avro| match v {
        Avro::Union(_, b) => *b,
        other => other,
    };
    assert_eq!(
        inner(get("biu")),
        Avro::Decimal(apache_avro::Decimal::from(unscaled_bytes(&u64::MAX.to_string(), 0, 9).expect("bytes")))
    );
    assert_eq!(inner(get("dt")), Avro::Date(days_from_civil(2024, 2, 29) as i32));
    assert_eq!(inner(get("dtm")), Avro::LocalTimestampMicros(-1));
    assert_eq!(inner(get("ts")), Avro::TimestampMicros(2_147_483_647_000_001));
    assert_eq!(inner(get("tm")), Avro::Long(-3_020_399_000_000));
    assert_eq!(inner(get("g2")), Avro::Null);
    assert_eq!(inner(get("b64")), Avro::Bytes(vec![0xff; 8]));
    // The key is the primary key, not nullable.
    let key = key(&change, Format::AvroNative).expect("key").expect("has a key");
    let key_bytes = encode(&schemas.key.expect("key schema").1, key).expect("encode key");
    assert_eq!(key_bytes, [2]); // zig-zag 1
}

#[test]
fn zero_dates_become_null() {
    assert_eq!(column_value(&ColumnType::Date, &Value::Date { year: 0, month: 0, day: 0 }, NATIVE), Ok(Avro::Null));
    assert_eq!(
        column_value(&ColumnType::Timestamp { fsp: 0 }, &Value::Timestamp { seconds: 0, micros: 0 }, NATIVE),
        Ok(Avro::Null)
    );
    let zero = Value::DateTime { year: 2020, month: 0, day: 1, hour: 0, minute: 0, second: 0, micros: 0 };
    assert_eq!(column_value(&ColumnType::DateTime { fsp: 0 }, &zero, NATIVE), Ok(Avro::Null));
}

#[test]
fn mismatched_and_absent_values_are_errors() {
    assert!(column_value(&ColumnType::Int { unsigned: false }, &Value::Text("x".into()), NATIVE).is_err());
    assert!(column_value(&ColumnType::Int { unsigned: false }, &Value::Absent, NATIVE).is_err());
    assert!(column_value(&ColumnType::TinyInt { unsigned: false }, &Value::Int(1 << 40), NATIVE).is_err());
}

#[test]
fn days_from_civil_known_dates() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(1969, 12, 31), -1);
    assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
    assert_eq!(days_from_civil(1000, 1, 1), -354_285);
}

#[test]
fn unscaled_bytes_known_values() {
    assert_eq!(unscaled_bytes("1.00", 2, 2), Ok(vec![0, 100]));
    assert_eq!(unscaled_bytes("-1.00", 2, 2), Ok(vec![0xff, 0x9c]));
    assert_eq!(unscaled_bytes("-0.01", 2, 3), Ok(vec![0xff, 0xff, 0xff]));
    assert!(unscaled_bytes("1.0", 2, 2).is_err());
    assert!(unscaled_bytes("999", 0, 1).is_err());
}

proptest! {
    /// Decimals of every precision: encode, decode through Avro, back to the same number.
    #[test]
    fn decimals_round_trip(int in "[1-9][0-9]{0,34}|0", frac in "[0-9]{0,30}", neg: bool) {
        let scale = frac.len() as u8;
        let precision = (int.len() as u8 + scale).max(1);
        let text = if scale > 0 { format!("{int}.{frac}") } else { int.clone() };
        let text = if neg { format!("-{text}") } else { text };
        let bytes = unscaled_bytes(&text, scale, decimal_width(precision)).expect("fits");
        prop_assert_eq!(bytes.len(), decimal_width(precision));
        // Back from two's complement to a signed integer string.
        let negative = bytes[0] & 0x80 != 0;
        let mut magnitude = bytes.clone();
        if negative {
            let mut carry = 1u16;
            for b in magnitude.iter_mut().rev() {
                let v = u16::from(!*b) + carry;
                *b = v as u8;
                carry = v >> 8;
            }
        }
        let mut digits = vec![0u8];
        for byte in magnitude {
            let mut carry = u32::from(byte);
            for d in digits.iter_mut() {
                let v = u32::from(*d) * 256 + carry;
                *d = (v % 10) as u8;
                carry = v / 10;
            }
            while carry > 0 {
                digits.push((carry % 10) as u8);
                carry /= 10;
            }
        }
        let unscaled: String = digits.iter().rev().map(|d| (b'0' + d) as char).collect::<String>().trim_start_matches('0').to_string();
        let want = format!("{int}{frac}").trim_start_matches('0').to_string();
        prop_assert_eq!(unscaled, want.clone());
        prop_assert_eq!(negative, neg && !want.is_empty());
    }

    /// Integers of every width and signedness encode into their Avro types and back.
    #[test]
    fn integers_round_trip(i in any::<i32>(), l in any::<i64>(), u in any::<u32>()) {
        prop_assert_eq!(column_value(&ColumnType::Int { unsigned: false }, &Value::Int(i64::from(i)), NATIVE), Ok(Avro::Int(i)));
        prop_assert_eq!(column_value(&ColumnType::BigInt { unsigned: false }, &Value::Int(l), NATIVE), Ok(Avro::Long(l)));
        prop_assert_eq!(column_value(&ColumnType::Int { unsigned: true }, &Value::UInt(u64::from(u)), NATIVE), Ok(Avro::Long(i64::from(u))));
    }
}

/// The `debezium` format's values, as Debezium 3.6 wrote them for the same MySQL values (measured
/// with scripts/debezium-compare).
#[test]
fn debezium_values() {
    let table = table();
    let v = |name: &str, style: Style| -> Avro {
        let i = table.columns.iter().position(|c| c.name == name).expect(name);
        column_value(&table.columns[i].ty, &row_values()[i], style).expect(name)
    };
    assert_eq!(v("biu", DEBEZIUM), Avro::Long(-1)); // bigint.unsigned.handling.mode=long wraps
    assert_eq!(v("b1", DEBEZIUM), Avro::Boolean(true));
    assert_eq!(v("b5", DEBEZIUM), Avro::Bytes(vec![0b10101]));
    assert_eq!(v("b64", DEBEZIUM), Avro::Bytes(vec![0xff; 8]));
    assert_eq!(v("dt", DEBEZIUM), Avro::Int(19_782));
    assert_eq!(v("dtm", DEBEZIUM), Avro::Long(-1)); // µs (fsp 6)
    assert_eq!(v("dtm3", DEBEZIUM), Avro::Long(1_709_210_096_789)); // ms (fsp 3)
    assert_eq!(v("ts", DEBEZIUM), Avro::String("2038-01-19T03:14:07.000001Z".into()));
    assert_eq!(v("ts3", DEBEZIUM), Avro::String("2024-02-29T12:34:56.780Z".into()));
    assert_eq!(
        v("ts3", Style { format: Format::Debezium, streamed: false }),
        Avro::String("2024-02-29T12:34:56.78Z".into())
    );
    let g =
        |srid| column_value(&ColumnType::Geometry { len_bytes: 4 }, &Value::Geometry { srid, wkb: vec![1] }, DEBEZIUM);
    assert_eq!(
        g(0),
        Ok(Avro::Record(vec![
            ("wkb".into(), Avro::Bytes(vec![1])),
            ("srid".into(), Avro::Union(0, Box::new(Avro::Null)))
        ]))
    );
    assert_eq!(
        g(4326),
        Ok(Avro::Record(vec![
            ("wkb".into(), Avro::Bytes(vec![1])),
            ("srid".into(), Avro::Union(1, Box::new(Avro::Int(4326))))
        ]))
    );
    assert_eq!(v("s", DEBEZIUM), Avro::String("a,b".into()));
    assert_eq!(v("j", DEBEZIUM), Avro::String("{\"k\":[1]}".into()));
    assert_eq!(v("j", Style { format: Format::Debezium, streamed: false }), Avro::String("{\"k\": [1]}".into()));
    assert_eq!(v("j", NATIVE), Avro::String("{\"k\": [1]}".into()));
    assert_eq!(v("usi", DEBEZIUM), Avro::Int(65_535));
    // Zero dates stay null in both formats.
    assert_eq!(column_value(&ColumnType::Date, &Value::Date { year: 0, month: 0, day: 0 }, DEBEZIUM), Ok(Avro::Null));
    let zero_ts = Value::Timestamp { seconds: 0, micros: 0 };
    assert_eq!(column_value(&ColumnType::Timestamp { fsp: 3 }, &zero_ts, DEBEZIUM), Ok(Avro::Null));
}

#[test]
fn zoned_timestamps_and_compact_json() {
    assert_eq!(zoned_timestamp(1, 0, 0, true), "1970-01-01T00:00:01Z");
    assert_eq!(zoned_timestamp(1_709_210_096, 789_012, 6, true), "2024-02-29T12:34:56.789012Z");
    assert_eq!(zoned_timestamp(1_709_210_096, 100_000, 1, true), "2024-02-29T12:34:56.1Z");
    // Streamed: the column's digits; read by a snapshot: trailing zeros dropped (as Debezium).
    assert_eq!(zoned_timestamp(2_147_483_647, 500_000, 6, true), "2038-01-19T03:14:07.500000Z");
    assert_eq!(zoned_timestamp(2_147_483_647, 500_000, 6, false), "2038-01-19T03:14:07.5Z");
    assert_eq!(zoned_timestamp(2_147_483_647, 0, 6, false), "2038-01-19T03:14:07Z");
    assert_eq!(compact_json(r#"{"a b": [1, 2.5, "s, t: \" u"], "c": {}}"#), r#"{"a b":[1,2.5,"s, t: \" u"],"c":{}}"#);
}

proptest! {
    /// `civil_from_days` is the inverse of `days_from_civil` over MySQL's whole date range.
    #[test]
    fn civil_from_days_inverts_days_from_civil(days in -719_528i64..2_932_897) {
        let (y, m, d) = civil_from_days(days);
        prop_assert_eq!(days_from_civil(y, m, d), days);
    }
}
