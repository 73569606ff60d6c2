use super::*;
use crate::schema::{Column, ColumnType as T};
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use std::sync::Arc;

fn col(name: &str, ty: T) -> Column {
    Column { name: name.into(), ty, nullable: true, visible: true, omitted_on_change: false }
}

pub(crate) fn every_type() -> Vec<Column> {
    let labels: Arc<[String]> = vec!["a".to_string(), "b".to_string()].into();
    vec![
        col("id", T::Int { unsigned: false }),
        col("ti", T::TinyInt { unsigned: false }),
        col("tiu", T::TinyInt { unsigned: true }),
        col("mi", T::MediumInt { unsigned: false }),
        col("iu", T::Int { unsigned: true }),
        col("bi", T::BigInt { unsigned: false }),
        col("biu", T::BigInt { unsigned: true }),
        col("f", T::Float),
        col("d", T::Double),
        col("dec", T::Decimal { precision: 65, scale: 30 }),
        col("dec2", T::Decimal { precision: 10, scale: 2 }),
        col("b5", T::Bit { width: 5 }),
        col("b64", T::Bit { width: 64 }),
        col("y", T::Year),
        col("dt", T::Date),
        col("dtm", T::DateTime { fsp: 6 }),
        col("ts", T::Timestamp { fsp: 6 }),
        col("tm", T::Time { fsp: 6 }),
        col("c", T::VarChar { max_len: 40, charset: Charset::Utf8 }),
        col("bin", T::Char { max_len: 4, charset: Charset::Binary }),
        col("bl", T::Blob { len_bytes: 2, charset: Charset::Binary }),
        col("e", T::Enum { pack_len: 1, labels: labels.clone() }),
        col("s", T::Set { pack_len: 1, labels }),
        col("j", T::Json { len_bytes: 4 }),
        col("g", T::Geometry { len_bytes: 4 }),
        col("g2", T::Geometry { len_bytes: 4 }),
        col("v", T::Vector { len_bytes: 4 }),
        col("b1", T::Bit { width: 1 }),
        col("dtm3", T::DateTime { fsp: 3 }),
        col("ts3", T::Timestamp { fsp: 3 }),
        col("usi", T::SmallInt { unsigned: true }),
        col("odd-name é", T::Int { unsigned: false }),
    ]
}

pub(crate) fn table(columns: Vec<Column>) -> TableSchema {
    TableSchema { db: "shop".into(), table: "every-type".into(), columns, primary_key: vec![0] }
}

#[test]
fn schemas_parse_and_are_deterministic() {
    let t = table(every_type());
    let a = table_schemas(&t, "rowferry.shop.every-type", Format::AvroNative, "mysql").expect("schemas");
    let b = table_schemas(&t, "rowferry.shop.every-type", Format::AvroNative, "mysql").expect("schemas");
    assert_eq!(a.value.0, b.value.0);
    let value: Json = serde_json::from_str(&a.value.0).expect("json");
    assert_eq!(value["name"], "Envelope");
    assert_eq!(value["namespace"], "rowferry.shop.every_type");
    let fields: Vec<&str> =
        value["fields"].as_array().expect("fields").iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(fields, ["before", "after", "source", "op", "ts_ms", "transaction"]);
    // Every column field of the row record is ["null", T] with a null default.
    let row = &value["fields"][0]["type"][1];
    for f in row["fields"].as_array().expect("row fields") {
        assert_eq!(f["type"][0], "null", "{f}");
        assert_eq!(f["default"], Json::Null, "{f}");
    }
    assert_eq!(row["fields"].as_array().map(|f| f.len()), Some(every_type().len()));
    let odd = row["fields"].as_array().and_then(|f| f.last()).expect("odd");
    assert_eq!(odd["name"], "odd_name__");
    assert_eq!(odd["mysql.column"], "odd-name é");
    let key: Json = serde_json::from_str(&a.key.expect("key").0).expect("key json");
    assert_eq!(key["fields"], json!([{"name": "id", "type": "int"}]));
}

#[test]
fn no_primary_key_means_no_key_schema() {
    let mut t = table(every_type());
    t.primary_key.clear();
    assert!(table_schemas(&t, "p.shop.t", Format::Debezium, "mysql").expect("schemas").key.is_none());
}

#[test]
fn adding_or_dropping_a_column_is_fully_compatible() {
    let before = table(every_type());
    let mut after = before.clone();
    after.columns.push(col("added", T::VarChar { max_len: 10, charset: Charset::Utf8 }));
    let mut dropped = before.clone();
    dropped.columns.remove(3);
    for format in [Format::Debezium, Format::AvroNative] {
        let v = |t: &TableSchema| table_schemas(t, "p.shop.t", format, "mysql").expect("schemas").value.1;
        for (a, b) in [(v(&before), v(&after)), (v(&before), v(&dropped))] {
            // FULL = readable in both directions, every union branch included.
            assert!(matches!(SchemaCompatibility::mutual_read(&a, &b), Ok(Compatibility::Full)), "{format:?}");
        }
    }
}

#[test]
fn changing_a_column_type_incompatibly_is_detected() {
    let before = table(every_type());
    let mut after = before.clone();
    after.columns[18].ty = T::Int { unsigned: false }; // string -> int
    let v = |t: &TableSchema| table_schemas(t, "p.shop.t", Format::Debezium, "mysql").expect("schemas").value.1;
    // Only the null branch of the changed column still resolves: "partial" is not compatible.
    let (a, b) = (v(&before), v(&after));
    assert!(!matches!(SchemaCompatibility::can_read(&a, &b), Ok(Compatibility::Full)));
}

#[test]
fn colliding_names_are_an_error_for_the_table() {
    let t = table(vec![col("a-b", T::Int { unsigned: false }), col("a_b", T::Int { unsigned: false })]);
    let err = table_schemas(&t, "p.shop.t", Format::Debezium, "mysql").expect_err("collision");
    assert!(err.to_string().contains("a_b"), "{err}");
}

#[test]
fn decimal_widths_hold_their_precision() {
    assert_eq!(decimal_width(1), 1);
    assert_eq!(decimal_width(2), 1); // 99 < 127
    assert_eq!(decimal_width(3), 2); // 999 > 127
    assert_eq!(decimal_width(20), 9); // 2^64 - 1 needs 65 bits
    assert_eq!(decimal_width(38), 16);
    assert_eq!(decimal_width(65), 28);
}

/// The `debezium` format declares what Debezium 3.6 declares (through AvroData): the envelope's
/// field order and version, the source record, and each column's Connect annotations.
#[test]
fn debezium_format_carries_debeziums_connect_schema() {
    let t = table(every_type());
    let s = table_schemas(&t, "p.shop.every-type", Format::Debezium, "mysql").expect("schemas");
    let value: Json = serde_json::from_str(&s.value.0).expect("json");
    assert_eq!(value["connect.version"], 2);
    assert_eq!(value["connect.name"], "p.shop.every_type.Envelope");
    let fields: Vec<&str> =
        value["fields"].as_array().expect("fields").iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(fields, ["before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns"]);
    assert_eq!(value["fields"][2]["type"]["connect.name"], "io.debezium.connector.mysql.Source");
    assert_eq!(value["fields"][3]["type"][1]["connect.name"], "event.block");
    let column = |name: &str| -> Json {
        let row = &value["fields"][0]["type"][1]["fields"];
        row.as_array().and_then(|f| f.iter().find(|f| f["name"] == name)).expect(name)["type"][1].clone()
    };
    assert_eq!(column("ti"), json!({"type": "int", "connect.type": "int16"}));
    assert_eq!(column("usi"), json!("int"));
    assert_eq!(column("biu"), json!("long"));
    assert_eq!(column("b1"), json!("boolean"));
    assert_eq!(column("b5")["connect.parameters"], json!({"length": "5"}));
    assert_eq!(column("dec2")["connect.parameters"], json!({"scale": "2", "connect.decimal.precision": "10"}));
    assert_eq!(column("dt")["connect.name"], "io.debezium.time.Date");
    assert_eq!(column("dtm")["connect.name"], "io.debezium.time.MicroTimestamp");
    assert_eq!(column("dtm3")["connect.name"], "io.debezium.time.Timestamp");
    assert_eq!(
        column("ts"),
        json!({"type": "string", "connect.version": 1, "connect.name": "io.debezium.time.ZonedTimestamp"})
    );
    assert_eq!(column("s")["connect.name"], "io.debezium.data.EnumSet");
    assert_eq!(column("s")["connect.parameters"], json!({"allowed": "a,b"}));
    // The primary key is required in the row record too (Debezium: NOT NULL), other columns not.
    let id = &value["fields"][0]["type"][1]["fields"][0];
    assert_eq!((id["name"].as_str(), &id["type"]), (Some("id"), &json!("int")));
    let key: Json = serde_json::from_str(&s.key.expect("key").0).expect("key json");
    assert_eq!(key["connect.name"], "p.shop.every_type.Key");
    // Debezium's MariaDB connector names its source block after itself.
    let m = table_schemas(&t, "p.shop.every-type", Format::Debezium, "mariadb").expect("schemas");
    let value: Json = serde_json::from_str(&m.value.0).expect("json");
    assert_eq!(value["fields"][2]["type"]["connect.name"], "io.debezium.connector.mariadb.Source");
}
