//! Every golden binlog file (../shared/testdata/mysql-binlogs: MySQL 5.1–9.x and MariaDB cases
//! from MySQL's own test suite) decodes cleanly or fails with a clear error — never a panic —
//! and the files with known content decode to that content.

use rowferry::binlog::file::FileEvents;
use rowferry::change::{Op, Value};
use rowferry::decoder::{Item, StreamDecoder};
use rowferry::schema::{CollationMap, SchemaOptions};
use std::path::PathBuf;

fn testdata() -> PathBuf {
    let dir = std::env::var_os("ROWFERRY_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/mysql-binlogs"));
    assert!(dir.is_dir(), "{} is missing: the golden binlogs live in shared/testdata beside the clone", dir.display());
    dir
}

/// Decodes a whole file; returns the items, or the first error with its offset.
fn decode(name: &str) -> Result<Vec<Item>, String> {
    decode_with(name, SchemaOptions { require_full_metadata: false })
}

fn decode_with(name: &str, options: SchemaOptions) -> Result<Vec<Item>, String> {
    let bytes = std::fs::read(testdata().join(name)).map_err(|e| e.to_string())?;
    let mut decoder = StreamDecoder::new(CollationMap::default(), options);
    let mut items = Vec::new();
    for event in FileEvents::new(&bytes).map_err(|e| e.to_string())? {
        let (offset, event) = event.map_err(|e| e.to_string())?;
        decoder.push(event, &mut |item| items.push(item)).map_err(|e| format!("offset {offset}: {e}"))?;
    }
    Ok(items)
}

fn rows(items: &[Item]) -> Vec<&rowferry::change::RowChange> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Files that must fail, and the words their error must contain: truncated and corrupt files,
/// and binlogs that hold what a row-based CDC reader cannot turn into rows.
const EXPECTED_ERRORS: &[(&str, &str)] = &[
    ("binlog_truncated_event.000001", "trailing bytes"),
    ("binlog_truncated_prev_gtid_event.000001", "trailing bytes"),
    ("corrupt-relay-bin.000624", "malformed QUERY event"),
    ("bug40482-bin.000001", "INCIDENT event"),
    ("json.binlog.000001", "PARTIAL_UPDATE_ROWS"),
    ("ver_5_1-wl2325_r.001", "LOAD DATA logged as a statement"),
    ("ver_5_1-wl2325_s.001", "pre-GA rows events"),
    ("ver_5_1_23.001", "LOAD DATA logged as a statement"),
    ("ver_trunk_row_v2.001", "LOAD DATA logged as a statement"),
];

#[test]
fn every_file_decodes_or_fails_clearly() {
    let mut names: Vec<String> = std::fs::read_dir(testdata())
        .expect("list testdata")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n != "README.md")
        .collect();
    names.sort();
    assert!(names.len() >= 40, "expected the 41 golden files, found {}", names.len());
    for name in &names {
        let outcome = std::panic::catch_unwind(|| decode(name)).unwrap_or_else(|_| panic!("{name}: decoder panicked"));
        let expected = EXPECTED_ERRORS.iter().find(|(n, _)| n == name).map(|(_, e)| *e);
        match (outcome, expected) {
            (Ok(_), None) => {}
            (Err(e), Some(want)) => assert!(e.contains(want), "{name}: error {e:?} should mention {want:?}"),
            (Ok(items), Some(want)) => {
                panic!("{name}: decoded {} items, expected an error about {want:?}", items.len())
            }
            (Err(e), None) => panic!("{name}: {e}"),
        }
    }
}

/// (op, before image, after image) of every row in a file.
type Rows = Vec<(Op, Option<Vec<Value>>, Option<Vec<Value>>)>;

fn only_rows(name: &str) -> Rows {
    rows(&decode(name).expect(name)).into_iter().map(|r| (r.op, r.before.clone(), r.after.clone())).collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

#[test]
fn known_contents_match_mysqlbinlog() {
    // Expected values as `mysqlbinlog -vv` (MySQL 9.7) prints them for the same files.
    let r = only_rows("time_issue.000001");
    assert_eq!(r[0].2, Some(vec![Value::Time { micros: -(507 * 3600 + 48 * 60 + 27) * 1_000_000 }]));

    let r = only_rows("mysql_type_bit.000001");
    assert_eq!(
        r[0].2,
        Some(vec![Value::Bit { value: 0b100, width: 3 }, text("foo"), Value::Bit { value: 0b0010_0000, width: 8 }])
    );

    let r = only_rows("vector.binlog");
    assert_eq!(r[0].2, Some(vec![Value::UInt(1), Value::Vector(vec![1.1, 2.2, 3.3])]));
    assert_eq!(
        r[2].2,
        Some(vec![Value::UInt(1), Value::Vector(vec![1.1, 2.2]), Value::Null, Value::Vector(vec![1.1, 2.2, 3.3, 4.4])])
    );

    let json: Vec<Value> =
        only_rows("json-opaque.binlog").into_iter().filter_map(|r| r.2.map(|mut v| v.remove(0))).collect();
    for (i, want) in [
        r#"{"a": "base64:type15:VQ=="}"#,
        r#"{"b": "2012-03-18"}"#,
        r#"{"c": "2012-03-18 11:30:45.000000"}"#,
        r#"{"c": "87:31:46.654321"}"#,
        r#"{"d": 123.456}"#,
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(json[i], Value::Json(want.to_string()));
    }

    let r = only_rows("mysql-enum-string-set.000001");
    let after = r[0].2.as_ref().expect("insert image");
    assert_eq!(after[2], Value::Enum("var1".into()));
    assert_eq!(after[3], Value::Set(vec!["one".into(), "three".into()]));
    assert_eq!(after[4], text("0123456789"));
    assert_eq!(r.last().map(|x| x.0), Some(Op::Delete));

    let items = decode("binlog_transaction_with_GTID_TAG.000001").expect("tagged");
    let tagged = items.iter().find_map(|i| match i {
        Item::MySqlGtid { gtid: Some(g), .. } => Some(g.to_string()),
        _ => None,
    });
    assert_eq!(tagged.as_deref(), Some("55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3"));
    assert_eq!(
        only_rows("binlog_transaction_with_GTID_TAG.000001")[0].2,
        Some(vec![Value::Int(3), Value::Int(100), Value::Decimal("250.00".into())])
    );

    // Compressed transaction payload (MySQL binlog_transaction_compression=ON).
    assert_eq!(only_rows("transaction_compression.000001")[0].2, Some(vec![Value::Int(1)]));

    // MariaDB: GTID events (162) start the groups.
    let items = decode("mariadb-bin.000001").expect("mariadb");
    let gtids: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Item::MariaDbGtid { gtid, .. } => Some(gtid.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(gtids, ["0-1-1", "0-1-2"]);
    assert_eq!(rows(&items).len(), 2);
}

#[test]
fn flipped_bytes_never_panic() {
    // Every golden file with each event's bytes disturbed in a few places: errors are fine,
    // panics are not (the fuzz target explores this further).
    for name in [
        "mysql-enum-string-set.000001",
        "json-opaque.binlog",
        "vector.binlog",
        "mariadb-bin.000001",
        "transaction_compression.000001",
    ] {
        let bytes = std::fs::read(testdata().join(name)).expect("read");
        for flip in (4..bytes.len()).step_by(7) {
            let mut copy = bytes.clone();
            copy[flip] ^= 0x5a;
            let result = std::panic::catch_unwind(|| {
                let mut decoder =
                    StreamDecoder::new(CollationMap::default(), SchemaOptions { require_full_metadata: false });
                let Ok(events) = FileEvents::new(&copy) else { return };
                for event in events {
                    let Ok((_, event)) = event else { return };
                    if decoder.push(event, &mut |_| {}).is_err() {
                        return;
                    }
                }
            });
            assert!(result.is_ok(), "{name}: panic with byte {flip} flipped");
        }
    }
}

#[test]
fn the_live_connector_refuses_minimal_row_metadata_with_the_fix() {
    // Decodable for tests (positional columns), but the connector needs names and keys.
    assert!(!rows(&decode("minimal_row_metadata.000001").expect("decodes without names")).is_empty());
    let err = decode_with("minimal_row_metadata.000001", SchemaOptions { require_full_metadata: true })
        .expect_err("minimal metadata is refused");
    assert!(err.contains("its TABLE_MAP has no column names, so binlog_row_metadata was not FULL"), "{err}");
    assert!(err.contains("fix: SET GLOBAL binlog_row_metadata = 'FULL' (MySQL: SET PERSIST)"), "{err}");
    assert!(err.contains("delete rowferry's stored offset and start it again"), "{err}");
}
