use super::*;
use crate::encoder::avro_schema::table_schemas;
use crate::schema::TableSchema;
use apache_avro::reader::datum::GenericDatumReader;
use proptest::prelude::*;
use std::sync::Arc;

fn decode(schema: &apache_avro::Schema, bytes: &[u8]) -> Avro {
    GenericDatumReader::builder(schema).build().and_then(|r| r.read_value(&mut &bytes[..])).expect("decode")
}

fn source() -> SourceInfo<'static> {
    SourceInfo {
        connector: "mysql",
        name: "test",
        ts_ms: 1_700_000_000_000,
        snapshot: "false",
        server_id: 1,
        gtid: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:7"),
        file: "binlog.000001",
        pos: 4,
        row: 0,
    }
}

fn table() -> Arc<TableSchema> {
    Arc::new(crate::encoder::avro_schema::tests::table(crate::encoder::avro_schema::tests::every_type()))
}

fn row_values() -> Vec<Value> {
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
        Value::Int(7),
    ]
}

#[test]
fn envelope_round_trips_through_avro() {
    let table = table();
    let schemas = table_schemas(&table, "rowferry.shop.every-type").expect("schemas");
    let change =
        RowChange { op: Op::Update, table: Arc::clone(&table), before: Some(row_values()), after: Some(row_values()) };
    let value = envelope(&change, &source(), None, 42).expect("envelope");
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
    let key = key(&change).expect("key").expect("has a key");
    let key_bytes = encode(&schemas.key.expect("key schema").1, key).expect("encode key");
    assert_eq!(key_bytes, [2]); // zig-zag 1
}

#[test]
fn zero_dates_become_null() {
    assert_eq!(column_value(&ColumnType::Date, &Value::Date { year: 0, month: 0, day: 0 }), Ok(Avro::Null));
    assert_eq!(
        column_value(&ColumnType::Timestamp { fsp: 0 }, &Value::Timestamp { seconds: 0, micros: 0 }),
        Ok(Avro::Null)
    );
    let zero = Value::DateTime { year: 2020, month: 0, day: 1, hour: 0, minute: 0, second: 0, micros: 0 };
    assert_eq!(column_value(&ColumnType::DateTime { fsp: 0 }, &zero), Ok(Avro::Null));
}

#[test]
fn mismatched_and_absent_values_are_errors() {
    assert!(column_value(&ColumnType::Int { unsigned: false }, &Value::Text("x".into())).is_err());
    assert!(column_value(&ColumnType::Int { unsigned: false }, &Value::Absent).is_err());
    assert!(column_value(&ColumnType::TinyInt { unsigned: false }, &Value::Int(1 << 40)).is_err());
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
        prop_assert_eq!(column_value(&ColumnType::Int { unsigned: false }, &Value::Int(i64::from(i))), Ok(Avro::Int(i)));
        prop_assert_eq!(column_value(&ColumnType::BigInt { unsigned: false }, &Value::Int(l)), Ok(Avro::Long(l)));
        prop_assert_eq!(column_value(&ColumnType::Int { unsigned: true }, &Value::UInt(u64::from(u))), Ok(Avro::Long(i64::from(u))));
    }
}
