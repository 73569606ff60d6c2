//! The direct encoder against apache-avro (the reference): same bytes for every column type,
//! nulls, zero dates, key and envelope, and the same refusals.

use super::*;
use crate::change::Op;
use crate::encoder::avro_schema::table_schemas;
use crate::encoder::avro_schema::tests::{every_type, table};
use crate::encoder::datum;
use proptest::prelude::*;
use std::sync::Arc;

fn source(gtid: Option<&str>) -> SourceInfo<'_> {
    SourceInfo {
        connector: "mariadb",
        name: "n",
        ts_ms: 1_700_000_000_123,
        snapshot: "false",
        server_id: 77,
        gtid,
        ts_us: 1_700_000_000_123_456,
        file: "binlog.000007",
        pos: 4,
        row: 3,
        thread: Some(12),
    }
}

/// A value for each column of `every_type()`, from random parts.
fn row() -> impl Strategy<Value = Vec<Value>> {
    let text = "\\PC{0,12}";
    (
        (any::<i32>(), any::<i8>(), any::<u8>(), -8_388_608i64..8_388_608, any::<u32>(), any::<i64>(), any::<u64>()),
        (
            any::<f32>(),
            any::<f64>(),
            "-?[1-9][0-9]{0,34}\\.[0-9]{30}",
            "-?[0-9]{1,8}\\.[0-9]{2}",
            0u64..32,
            any::<u64>(),
        ),
        (0u16..2156, (0u16..10000, 0u8..13, 0u8..32), (0u16..10000, 1u8..13, 1u8..29, 0u8..24, 0u32..1_000_000)),
        (
            0u32..u32::MAX,
            0u32..1_000_000,
            -3_020_399_000_000i64..3_020_399_000_000,
            text,
            prop::collection::vec(any::<u8>(), 4),
        ),
        (
            prop::collection::vec(any::<u8>(), 0..20),
            prop::sample::select(vec!["a", "b"]),
            prop::collection::vec(prop::sample::select(vec!["a", "b"]), 0..3),
            text,
        ),
        (
            prop::collection::vec(any::<u8>(), 0..30),
            any::<u32>(),
            prop::collection::vec(any::<f32>(), 0..4),
            any::<i32>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (i, ti, tiu, mi, iu, bi, biu),
                (f, d, dec, dec2, b5, b64),
                (y, (dy, dm, dd), (ty, tm, td, th, tu)),
                (ts, tsu, time, c, bin),
                (bl, e, s, j),
                (wkb, srid, v, odd, nulls),
            )| {
                let mut row = vec![
                    Value::Int(i64::from(i)),
                    Value::Int(i64::from(ti)),
                    Value::UInt(u64::from(tiu)),
                    Value::Int(mi),
                    Value::UInt(u64::from(iu)),
                    Value::Int(bi),
                    Value::UInt(biu),
                    Value::Float(f),
                    Value::Double(d),
                    Value::Decimal(dec),
                    Value::Decimal(dec2),
                    Value::Bit { value: b5, width: 5 },
                    Value::Bit { value: b64, width: 64 },
                    Value::Year(y),
                    Value::Date { year: dy, month: dm, day: dd },
                    Value::DateTime { year: ty, month: tm, day: td, hour: th, minute: 59, second: 0, micros: tu },
                    Value::Timestamp { seconds: ts, micros: tsu },
                    Value::Time { micros: time },
                    Value::Text(c),
                    Value::Bytes(bin),
                    Value::Bytes(bl),
                    Value::Enum(e.into()),
                    Value::Set(s.into_iter().map(String::from).collect()),
                    Value::Json(j),
                    Value::Geometry { srid, wkb },
                    Value::Null,
                    Value::Vector(v),
                    Value::Bit { value: b5 & 1, width: 1 },
                    Value::DateTime {
                        year: ty,
                        month: tm,
                        day: td,
                        hour: th,
                        minute: 1,
                        second: 2,
                        micros: tu / 1000 * 1000,
                    },
                    Value::Timestamp { seconds: ts, micros: tsu / 1000 * 1000 },
                    Value::UInt(u64::from(iu as u16)),
                    Value::Int(i64::from(odd)),
                ];
                if nulls {
                    // Some nulls, never in the key.
                    for i in (3..row.len()).step_by(3) {
                        row[i] = Value::Null;
                    }
                }
                row
            },
        )
}

fn reference(change: &RowChange, source: &SourceInfo<'_>, txn: Option<&TxnInfo>, f: Format) -> (Vec<u8>, Vec<u8>) {
    let schemas = table_schemas(&change.table, "p.shop.every-type", f, source.connector).expect("schemas");
    let value =
        datum::encode(&schemas.value.1, datum::envelope(change, source, txn, 9, f).expect("envelope")).expect("encode");
    let key =
        datum::encode(&schemas.key.expect("key").1, datum::key(change, f).expect("key").expect("some")).expect("key");
    (key, value)
}

fn direct(change: &RowChange, source: &SourceInfo<'_>, txn: Option<&TxnInfo>, f: Format) -> (Vec<u8>, Vec<u8>) {
    let (mut key_out, mut value_out) = (Vec::new(), Vec::new());
    assert!(key(&mut key_out, change, f).expect("key"));
    envelope(&mut value_out, change, source, txn, 9, f).expect("envelope");
    (key_out, value_out)
}

const FORMATS: [Format; 2] = [Format::Debezium, Format::AvroNative];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn same_bytes_as_apache_avro(before in row(), after in row(), op in 0u8..4, gtid in proptest::option::of("[0-9]-[0-9]-[0-9]{1,5}"), txn: bool, debezium: bool) {
        let t = Arc::new(table(every_type()));
        let (op, before, after) = match op {
            0 => (Op::Insert, None, Some(after)),
            1 => (Op::Update, Some(before), Some(after)),
            2 => (Op::Read, None, Some(after)),
            _ => (Op::Delete, Some(before), None),
        };
        let f = FORMATS[usize::from(!debezium)];
        let change = RowChange { op, table: t, before, after, at: Default::default() };
        let info = TxnInfo { id: "0-1-5".into(), total_order: 4, data_collection_order: 2 };
        let txn = txn.then_some(&info);
        let src = source(gtid.as_deref());
        prop_assert_eq!(direct(&change, &src, txn, f), reference(&change, &src, txn, f));
    }
}

#[test]
fn the_same_refusals() {
    let t = Arc::new(table(every_type()));
    let mut values: Vec<Value> = every_type().iter().map(|_| Value::Null).collect();
    values[0] = Value::Int(1);
    // Both check only the Avro int range, not the column's: 1000 in a TINYINT passes in both.
    values[1] = Value::Int(1000);
    let ok = RowChange {
        op: Op::Insert,
        table: Arc::clone(&t),
        before: None,
        after: Some(values.clone()),
        at: Default::default(),
    };
    for f in FORMATS {
        assert_eq!(direct(&ok, &source(None), None, f), reference(&ok, &source(None), None, f));
        for bad in [Value::Absent, Value::Text("x".into()), Value::Int(i64::from(i32::MAX) + 1)] {
            let mut v = values.clone();
            v[2] = bad.clone();
            let change = RowChange {
                op: Op::Insert,
                table: Arc::clone(&t),
                before: None,
                after: Some(v),
                at: Default::default(),
            };
            let schemas = table_schemas(&t, "p.x.y", f, "mariadb").expect("schemas");
            let reference =
                datum::envelope(&change, &source(None), None, 1, f).and_then(|e| datum::encode(&schemas.value.1, e));
            let mut out = Vec::new();
            let direct = envelope(&mut out, &change, &source(None), None, 1, f);
            assert!(reference.is_err() && direct.is_err(), "{bad:?}: {reference:?} / {direct:?}");
        }
    }
    // A zero date in the key has no Avro value.
    let mut v = values;
    let date_key = TableSchema { primary_key: vec![14], ..table(every_type()) };
    v[14] = Value::Date { year: 0, month: 0, day: 0 };
    let change =
        RowChange { op: Op::Insert, table: Arc::new(date_key), before: None, after: Some(v), at: Default::default() };
    for f in FORMATS {
        assert!(key(&mut Vec::new(), &change, f).is_err());
    }
}
