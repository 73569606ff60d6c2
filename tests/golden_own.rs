//! Golden binlogs written by the project's own test servers (scripts/make-golden runs
//! tests/data/golden.sql on fresh MariaDB 10.11 and MySQL 9.7): decoded with no server, through
//! the same StreamDecoder and Assembler the reader uses, they give exactly the statements' rows.

use rowferry::binlog::file::FileEvents;
use rowferry::change::{Op, RowChange, Value};
use rowferry::decoder::StreamDecoder;
use rowferry::position::{MariaDbPosition, MySqlGtidSet, Position};
use rowferry::reader::{Assembler, TxnEvent};
use rowferry::schema::{CollationMap, SchemaOptions};

fn decode(file: &str, start: Position) -> Vec<TxnEvent> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = StreamDecoder::new(CollationMap::default(), SchemaOptions { require_full_metadata: true });
    let mut assembler = Assembler::new(start, 10_000);
    let mut out = Vec::new();
    for event in FileEvents::new(&bytes).expect("binlog") {
        let (_, event) = event.expect("event");
        let mut items = Vec::new();
        decoder.push(event, &mut |i| items.push(i)).expect("decode");
        for item in items {
            assembler.push(item, &mut |e| out.push(e)).expect("assemble");
        }
    }
    out
}

fn rows(events: &[TxnEvent]) -> Vec<&RowChange> {
    events
        .iter()
        .filter_map(|e| match e {
            TxnEvent::Row(r) if r.table.db == "golden" => Some(r),
            _ => None,
        })
        .collect()
}

fn check(events: &[TxnEvent], json: Value) {
    let rows = rows(events);
    let ops: Vec<Op> = rows.iter().map(|r| r.op).collect();
    assert_eq!(ops, [Op::Insert, Op::Insert, Op::Update, Op::Delete, Op::Insert]);
    let first = rows[0].after.as_ref().expect("insert");
    let text = |s: &str| Value::Text(s.to_string());
    assert_eq!(
        first,
        &vec![
            Value::Int(1),
            Value::Int(-8_388_608),
            Value::UInt(u64::MAX),
            Value::Decimal(format!("-{}.{}", "9".repeat(35), "9".repeat(30))),
            Value::Time { micros: -10_000 },
            Value::DateTime { year: 2001, month: 2, day: 3, hour: 4, minute: 5, second: 6, micros: 7 },
            Value::Timestamp { seconds: 2_147_483_647, micros: 999_999 },
            Value::Year(0),
            text("café €"),
            Value::Bytes(b"ab\0\0".to_vec()),
            Value::Enum("ü".into()),
            Value::Set(vec!["x".into(), "z".into()]),
            json,
            Value::Bit { value: 0b1_0000_0000_0001, width: 13 },
        ]
    );
    let second = rows[1].after.as_ref().expect("insert");
    assert_eq!(second[1], Value::Null);
    assert_eq!(second[4], Value::Time { micros: (838 * 3600 + 59 * 60 + 59) * 1_000_000 });
    assert_eq!(second[5], Value::DateTime { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, micros: 0 });
    assert_eq!(second[7], Value::Year(2155));
    assert_eq!(second[9], Value::Bytes(vec![0; 4]));
    assert_eq!(rows[2].before.as_ref().map(|b| &b[1]), Some(&Value::Null));
    assert_eq!(rows[2].after.as_ref().map(|a| &a[1]), Some(&Value::Int(5)));
    assert_eq!(rows[3].before.as_ref().map(|b| &b[0]), Some(&Value::Int(1)));
    // After ALTER TABLE … ADD COLUMN the rows have the new shape and its default.
    let last = rows[4];
    assert_eq!(last.table.columns.last().map(|c| c.name.as_str()), Some("extra"));
    assert_eq!(last.after.as_ref().and_then(|a| a.last()), Some(&text("new")));
    assert!(
        events.iter().any(|e| matches!(e, TxnEvent::Statement { sql, .. } if sql.starts_with("ALTER TABLE golden.t")))
    );
}

#[test]
fn mysql_golden_binlog() {
    let events = decode("mysql-golden.binlog", Position::MySql(MySqlGtidSet::new()));
    check(&events, Value::Json(r#"{"k": [1, 2.5, null, "😀"]}"#.into()));
}

#[test]
fn mariadb_golden_binlog() {
    // MariaDB keeps JSON as the text that was written (the JSON marking needs information_schema,
    // which a file does not have: here it is LONGTEXT).
    let events = decode("mariadb-golden.binlog", Position::MariaDb(MariaDbPosition::new()));
    check(&events, Value::Text(r#"{"k": [1, 2.5, null, "😀"]}"#.into()));
}
