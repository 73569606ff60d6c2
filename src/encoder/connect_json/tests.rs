use super::*;
use crate::change::{Op, RowChange, Value};
use crate::encoder::Format;
use crate::encoder::avro_schema::table_schemas;
use crate::encoder::datum::{self, tests as fixtures};
use proptest::prelude::*;

fn schemas() -> (Json, Json) {
    let t = fixtures::table();
    let s = table_schemas(&t, "rowferry.shop.every-type", Format::Debezium, "mysql").expect("schemas");
    let key: Json = serde_json::from_str(&s.key.expect("key").0).expect("key json");
    let value: Json = serde_json::from_str(&s.value.0).expect("value json");
    (connect_schema(&key).expect("key schema"), connect_schema(&value).expect("value schema"))
}

fn field<'a>(schema: &'a Json, name: &str) -> &'a Json {
    schema["fields"].as_array().and_then(|f| f.iter().find(|f| f["field"] == name)).expect(name)
}

#[test]
fn connect_schemas_are_debeziums() {
    let (key, value) = schemas();
    assert_eq!(key["type"], "struct");
    assert_eq!(key["name"], "rowferry.shop.every_type.Key");
    assert_eq!(field(&key, "id"), &json!({"type": "int32", "optional": false, "field": "id"}));
    assert_eq!(value["name"], "rowferry.shop.every_type.Envelope");
    assert_eq!(value["version"], 2);
    let after = field(&value, "after");
    assert_eq!(after["optional"], true);
    assert_eq!(after["name"], "rowferry.shop.every_type.Value");
    // `before` defines the Value record, `after` refers to it: both the same struct.
    assert_eq!(after["fields"], field(&value, "before")["fields"]);
    assert_eq!(field(after, "id")["optional"], false, "a key column is required");
    assert_eq!(
        field(after, "ti"),
        &json!({"type": "int16", "optional": true, "field": "ti"}),
        "TINYINT is Connect's int16 through connect.type"
    );
    assert_eq!(
        field(after, "dec2"),
        &json!({"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
                "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "dec2"})
    );
    assert_eq!(field(after, "ts")["name"], "io.debezium.time.ZonedTimestamp");
    assert_eq!(field(after, "b5")["parameters"], json!({"length": "5"}));
    // The second GEOMETRY column is a reference to the first's record in Avro; a full struct here.
    assert_eq!(field(after, "g2")["type"], "struct");
    assert_eq!(field(after, "g2")["name"], "io.debezium.data.geometry.Geometry");
    assert_eq!(field(after, "v")["items"], json!({"type": "float", "optional": false}));
    // Connect field names are the columns' own, not their Avro-sanitised form.
    assert!(after["fields"].as_array().expect("fields").iter().any(|f| f["field"] == "odd-name é"));
    let source = field(&value, "source");
    assert_eq!(source["name"], "io.debezium.connector.mysql.Source");
    assert_eq!(
        field(source, "snapshot"),
        &json!({"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
                "parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
                "default": "false", "field": "snapshot"})
    );
    assert_eq!(field(&value, "op"), &json!({"type": "string", "optional": false, "field": "op"}));
}

#[test]
fn unions_other_than_optional_are_refused() {
    assert!(connect_schema(&json!(["null", "int", "string"])).is_err());
    assert!(connect_schema(&json!({"type": "map", "values": "int"})).is_err());
}

fn record(change: &RowChange) -> Json {
    let (_, value) = schemas();
    let avro =
        datum::envelope(change, &fixtures::source(), None, 1_700_000_000_999, Format::Debezium).expect("envelope");
    let mut out = Vec::new();
    record_into(&mut out, &value.to_string(), &value, &avro).expect("record");
    serde_json::from_slice(&out).expect("valid JSON")
}

#[test]
fn payloads_are_jsonconverters() {
    let change = RowChange {
        op: Op::Insert,
        table: fixtures::table(),
        before: None,
        after: Some(fixtures::row_values()),
        at: Default::default(),
    };
    let doc = record(&change);
    assert_eq!(doc["schema"]["name"], "rowferry.shop.every_type.Envelope");
    let p = &doc["payload"];
    assert_eq!(p["op"], "c");
    assert_eq!(p["before"], Json::Null);
    assert_eq!(p["source"]["gtid"], "3e11fa47-71ca-11e1-9e33-c80aa9429562:7");
    assert_eq!(p["ts_us"], 1_700_000_000_999_000i64);
    let a = &p["after"];
    assert_eq!(a["id"], 1);
    assert_eq!(a["ti"], -128);
    assert_eq!(a["biu"], -1, "BIGINT UNSIGNED as a long (bigint.unsigned.handling.mode=long)");
    assert_eq!(a["f"], 1.5);
    // DECIMAL(10,2) -0.01: unscaled -1, one byte 0xff, base64 "/w==" (Java's BigInteger.toByteArray).
    assert_eq!(a["dec2"], "/w==");
    assert_eq!(a["b5"], "FQ==", "BIT(5) 0b10101, little-endian bytes");
    assert_eq!(a["bin"], "YWIAAA==");
    assert_eq!(a["bl"], "");
    assert_eq!(a["s"], "a,b");
    assert_eq!(a["g"], json!({"wkb": "AQEAAAA=", "srid": 4326}));
    assert_eq!(a["g2"], Json::Null);
    assert_eq!(a["v"], json!([1.5, -2.0]));
    assert_eq!(a["b1"], true);
    assert_eq!(a["c"], "😀 ü");
    assert_eq!(a["odd-name é"], 7);
}

#[test]
fn a_value_that_does_not_fit_its_schema_is_an_error() {
    let schema = json!({"type": "struct", "fields": [{"type": "int32", "field": "a"}]});
    let two = Avro::Record(vec![("a".into(), Avro::Int(1)), ("b".into(), Avro::Int(2))]);
    assert!(payload(&mut Vec::new(), &schema, &two).is_err());
    assert!(payload(&mut Vec::new(), &json!({"type": "int32"}), &Avro::Map(Default::default())).is_err());
}

#[test]
fn minimal_bytes_known_values() {
    assert_eq!(minimal_twos_complement(&[0, 0, 0x7f]), &[0x7f]);
    assert_eq!(minimal_twos_complement(&[0, 0, 0x80]), &[0, 0x80]);
    assert_eq!(minimal_twos_complement(&[0xff, 0xff, 0x80]), &[0x80]);
    assert_eq!(minimal_twos_complement(&[0xff, 0x7f]), &[0xff, 0x7f]);
    assert_eq!(minimal_twos_complement(&[0, 0]), &[0]);
    assert_eq!(minimal_twos_complement(&[0xff, 0xff]), &[0xff]);
}

proptest! {
    /// The fewest bytes that still read back as the same signed number, as BigInteger.toByteArray.
    #[test]
    fn minimal_bytes_keep_the_value(v: i64) {
        let bytes = v.to_be_bytes();
        let short = minimal_twos_complement(&bytes);
        let mut wide = if v < 0 { [0xffu8; 8] } else { [0u8; 8] };
        wide[8 - short.len()..].copy_from_slice(short);
        prop_assert_eq!(i64::from_be_bytes(wide), v);
        // One byte fewer would change the sign or the value.
        if short.len() > 1 {
            prop_assert!((short[0] == 0) == (short[1] & 0x80 != 0) || (short[0] != 0 && short[0] != 0xff));
        }
    }

    /// Any decimal: the base64 payload reads back as its unscaled value.
    #[test]
    fn decimals_read_back(unscaled in -99_999_999_999i64..99_999_999_999i64) {
        let text = format!("{}{}.{:02}", if unscaled < 0 { "-" } else { "" }, unscaled.unsigned_abs() / 100, unscaled.unsigned_abs() % 100);
        let avro = datum::column_value(
            &crate::schema::ColumnType::Decimal { precision: 13, scale: 2 },
            &Value::Decimal(text),
            datum::Style { format: Format::Debezium, streamed: true },
        ).expect("decimal");
        let mut out = Vec::new();
        payload(&mut out, &json!({"type": "bytes"}), &avro).expect("payload");
        let text: String = serde_json::from_slice(&out).expect("string");
        let raw = base64::engine::general_purpose::STANDARD.decode(text).expect("base64");
        let mut wide = if raw[0] & 0x80 != 0 { [0xffu8; 8] } else { [0u8; 8] };
        wide[8 - raw.len()..].copy_from_slice(&raw);
        prop_assert_eq!(i64::from_be_bytes(wide), unscaled);
    }
}
