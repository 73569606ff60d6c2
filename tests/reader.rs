//! The read side against the real servers: every column type decodes to exactly what `SELECT`
//! returns, rows keep their shape across DDL, and the reader survives dead links without losing
//! or repeating a transaction, leaving one dump thread on the source.

mod common;

use common::{
    MARIADB, MARIADB_11, MYSQL, Txn, admin, committed_until, env, position_now, source_settings, spawn_reader, unique,
    unique_server_id,
};
use mysql_async::prelude::Queryable;
use rowferry::change::{Op, RowChange, Value};
use rowferry::reader::{ReaderOptions, TxnEvent};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn rows(txns: &[Txn]) -> Vec<RowChange> {
    txns.iter()
        .flat_map(|(_, events)| events.iter())
        .filter_map(|e| match e {
            TxnEvent::Row(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn row_count(txns: &[Txn]) -> usize {
    txns.iter().flat_map(|(_, e)| e).filter(|e| matches!(e, TxnEvent::Row(_))).count()
}

/// The type matrix: (column definition, values for rows 1..=5: max, min, zero, NULL, unusual).
/// `mariadb_vector`: the server is MariaDB 11.7+ (VECTOR).
fn matrix(mysql: bool, mariadb_vector: bool) -> Vec<(&'static str, &'static str, [&'static str; 5])> {
    let mut m = vec![
        ("ti", "TINYINT", ["127", "-128", "0", "NULL", "-1"]),
        ("tiu", "TINYINT UNSIGNED", ["255", "0", "0", "NULL", "128"]),
        ("si", "SMALLINT", ["32767", "-32768", "0", "NULL", "-2"]),
        ("siu", "SMALLINT UNSIGNED", ["65535", "0", "0", "NULL", "40000"]),
        ("mi", "MEDIUMINT", ["8388607", "-8388608", "0", "NULL", "-5"]),
        ("miu", "MEDIUMINT UNSIGNED", ["16777215", "0", "0", "NULL", "8388608"]),
        ("i", "INT", ["2147483647", "-2147483648", "0", "NULL", "-7"]),
        ("iu", "INT UNSIGNED", ["4294967295", "0", "0", "NULL", "2147483648"]),
        ("bi", "BIGINT", ["9223372036854775807", "-9223372036854775808", "0", "NULL", "-9"]),
        ("biu", "BIGINT UNSIGNED", ["18446744073709551615", "0", "0", "NULL", "9223372036854775808"]),
        ("f", "FLOAT", ["3.40282e38", "-3.40282e38", "0", "NULL", "1.5"]),
        ("d", "DOUBLE", ["1.7976931348623157e308", "-1.7976931348623157e308", "0", "NULL", "0.1"]),
        ("dec1", "DECIMAL(10,2)", ["99999999.99", "-99999999.99", "0", "NULL", "-0.01"]),
        (
            "dec2",
            "DECIMAL(65,30)",
            [
                "99999999999999999999999999999999999.999999999999999999999999999999",
                "-99999999999999999999999999999999999.999999999999999999999999999999",
                "0",
                "NULL",
                "12345678901234567890.000000000000000000000000000001",
            ],
        ),
        ("dec3", "DECIMAL(5,0)", ["99999", "-99999", "0", "NULL", "7"]),
        ("b1", "BIT(1)", ["b'1'", "b'0'", "0", "NULL", "1"]),
        ("b13", "BIT(13)", ["b'1111111111111'", "0", "0", "NULL", "b'1000000000001'"]),
        ("b64", "BIT(64)", ["0xFFFFFFFFFFFFFFFF", "0", "0", "NULL", "0x8000000000000001"]),
        ("dt", "DATE", ["'9999-12-31'", "'1000-01-01'", "'0000-00-00'", "NULL", "'2024-02-29'"]),
        (
            "dtm",
            "DATETIME",
            [
                "'9999-12-31 23:59:59'",
                "'1000-01-01 00:00:00'",
                "'0000-00-00 00:00:00'",
                "NULL",
                "'2024-02-29 12:34:56'",
            ],
        ),
        (
            "dtm6",
            "DATETIME(6)",
            [
                "'9999-12-31 23:59:59.999999'",
                "'1000-01-01 00:00:00.000000'",
                "'0000-00-00 00:00:00'",
                "NULL",
                "'2001-02-03 04:05:06.000007'",
            ],
        ),
        (
            "dtm3",
            "DATETIME(3)",
            ["'9999-12-31 23:59:59.999'", "'1000-01-01 00:00:00'", "0", "NULL", "'2024-02-29 12:00:00.5'"],
        ),
        (
            "ts",
            "TIMESTAMP(6) NULL",
            ["'2038-01-19 03:14:07.999999'", "'1970-01-01 00:00:01'", "0", "NULL", "'2020-06-01 12:00:00.123456'"],
        ),
        (
            "ts0",
            "TIMESTAMP NULL",
            ["'2038-01-19 03:14:07'", "'1970-01-01 00:00:01'", "0", "NULL", "'1999-12-31 23:59:59'"],
        ),
        ("tm", "TIME", ["'838:59:59'", "'-838:59:59'", "'00:00:00'", "NULL", "'-00:00:01'"]),
        ("tm6", "TIME(6)", ["'838:59:59.000000'", "'-838:59:59.000000'", "0", "NULL", "'-12:34:56.000001'"]),
        ("tm2", "TIME(2)", ["'23:59:59.99'", "'-00:00:00.01'", "0", "NULL", "'-01:00:00.50'"]),
        ("y", "YEAR", ["2155", "1901", "0", "NULL", "2000"]),
        ("c", "CHAR(10)", ["'ABCDEFGHIJ'", "''", "''", "NULL", "'é😀 '"]),
        ("vc", "VARCHAR(300)", ["REPEAT('x', 300)", "''", "''", "NULL", "'emoji 😀 and \"quotes\" \\\\ and ünïcode'"]),
        ("t", "TEXT", ["REPEAT('t', 1000)", "''", "''", "NULL", "'line1\\nline2\\ttab'"]),
        ("lt", "LONGTEXT", ["REPEAT('l', 70000)", "''", "''", "NULL", "'😀😀😀'"]),
        ("lat", "VARCHAR(20) CHARACTER SET latin1", ["'ÿÿÿ'", "''", "''", "NULL", "'café €'"]),
        ("bin", "BINARY(8)", ["0xFFFFFFFFFFFFFFFF", "0x00", "''", "NULL", "'ab'"]),
        ("vb", "VARBINARY(20)", ["0xFF00FF", "''", "''", "NULL", "0x0000"]),
        ("bl", "BLOB", ["REPEAT(0xAB, 1000)", "''", "''", "NULL", "0x00FF00"]),
        ("e", "ENUM('a','b','ü')", ["'ü'", "'a'", "'b'", "NULL", "'b'"]),
        ("s", "SET('x','y','z')", ["'x,y,z'", "''", "'x'", "NULL", "'x,z'"]),
        (
            "j",
            "JSON",
            [
                "'{\"a\": [1, 2.5, true, null, \"x\"], \"b\": {\"c\": -1}}'",
                "'[]'",
                "'{}'",
                "NULL",
                "'{\"k\\\\u00e9\": \"v\\\\n\\\\\"q\\\\\"\", \"n\": 12345678901234, \"u\": 18446744073709551615, \"f\": -0.25}'",
            ],
        ),
        (
            "g",
            "GEOMETRY",
            [
                "ST_GeomFromText('POINT(1 2)')",
                "ST_GeomFromText('LINESTRING(0 0, 1 1)')",
                "ST_GeomFromText('POINT(0 0)')",
                "NULL",
                "ST_GeomFromText('POINT(-1.5 2.25)', 4326)",
            ],
        ),
    ];
    if !mysql {
        // MariaDB's data type plugins, binlogged as BINARY: printed as the server prints them.
        m.push((
            "u",
            "UUID",
            [
                "'123e4567-e89b-12d3-a456-426655440000'",
                "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                "'00000000-0000-0000-0000-000000000000'",
                "NULL",
                "'6ba7b810-9dad-41d1-80b4-00c04fd430c8'",
            ],
        ));
        m.push(("i4", "INET4", ["'192.168.0.1'", "'255.255.255.255'", "'0.0.0.0'", "NULL", "'10.0.0.1'"]));
        m.push((
            "i6",
            "INET6",
            ["'2001:db8::ff00:42:8329'", "'::ffff:192.0.2.128'", "'::'", "NULL", "'fe80::1:2:3:4'"],
        ));
    }
    if mariadb_vector {
        m.push((
            "v",
            "VECTOR(3)",
            [
                "VEC_FromText('[1.5, -2, 3e10]')",
                "VEC_FromText('[0, 0, 0]')",
                "VEC_FromText('[0, 0, 0]')",
                "NULL",
                "VEC_FromText('[0.1, 0.2, 0.3]')",
            ],
        ));
    }
    if mysql {
        m.push((
            "v",
            "VECTOR(3)",
            [
                "TO_VECTOR('[1.5, -2, 3e10]')",
                "TO_VECTOR('[0, 0, 0]')",
                "TO_VECTOR('[0, 0, 0]')",
                "NULL",
                "TO_VECTOR('[0.1, 0.2, 0.3]')",
            ],
        ));
    }
    m
}

/// Rows as the server returns them over the binary protocol, in column order, by id.
async fn select_all(conn: &mut mysql_async::Conn, table: &str) -> Vec<Vec<mysql_async::Value>> {
    let rows: Vec<mysql_async::Row> =
        conn.exec(format!("SELECT * FROM {table} ORDER BY id"), ()).await.expect("select");
    rows.into_iter().map(|r| r.unwrap()).collect()
}

/// Whether the decoded value equals what the server returned.
fn same(server: &mysql_async::Value, decoded: &Value) -> bool {
    use mysql_async::Value as S;
    match (server, decoded) {
        (S::NULL, Value::Null) => true,
        (S::Int(a), Value::Int(b)) => a == b,
        (S::Int(a), Value::UInt(b)) => u64::try_from(*a).is_ok_and(|a| a == *b),
        (S::UInt(a), Value::UInt(b)) => a == b,
        (S::Int(a), Value::Year(y)) => *a == i64::from(*y),
        (S::UInt(a), Value::Year(y)) => *a == u64::from(*y),
        (S::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
        (S::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
        (S::Double(a), Value::Float(b)) => *a == f64::from(*b),
        (S::Bytes(a), Value::Text(b)) | (S::Bytes(a), Value::Decimal(b)) | (S::Bytes(a), Value::Enum(b)) => {
            a == b.as_bytes()
        }
        (S::Bytes(a), Value::Json(b)) => a == b.as_bytes(),
        (S::Bytes(a), Value::Bytes(b)) => a == b,
        (S::Bytes(a), Value::Set(b)) => a == b.join(",").as_bytes(),
        (S::Bytes(a), Value::Bit { value, width }) => {
            let n = usize::from(width.div_ceil(8));
            a.as_slice() == &value.to_be_bytes()[8 - n..]
        }
        (S::Bytes(a), Value::Geometry { srid, wkb }) => {
            a.len() >= 4 && a[..4] == srid.to_le_bytes() && a[4..] == wkb[..]
        }
        (S::Bytes(a), Value::Vector(v)) => *a == v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>(),
        (S::Date(y, m, d, 0, 0, 0, 0), Value::Date { year, month, day }) => (*y, *m, *d) == (*year, *month, *day),
        (S::Date(y, mo, d, h, mi, s, us), Value::DateTime { year, month, day, hour, minute, second, micros }) => {
            (*y, *mo, *d, *h, *mi, *s, *us) == (*year, *month, *day, *hour, *minute, *second, *micros)
        }
        (S::Date(y, mo, d, h, mi, s, us), Value::Timestamp { seconds, micros }) => {
            if *seconds == 0 && *micros == 0 {
                return (*y, *mo, *d, *h, *mi, *s, *us) == (0, 0, 0, 0, 0, 0, 0);
            }
            let secs = i64::from(*seconds);
            let (cy, cm, cd) = rowferry::encoder::datum::civil_from_days(secs.div_euclid(86_400));
            let tod = secs.rem_euclid(86_400);
            (i64::from(*y), u32::from(*mo), u32::from(*d), i64::from(*h), i64::from(*mi), i64::from(*s), *us)
                == (cy, cm, cd, tod / 3600, tod / 60 % 60, tod % 60, *micros)
        }
        (S::Time(neg, days, h, m, s, us), Value::Time { micros }) => {
            let total = (((i64::from(*days) * 24 + i64::from(*h)) * 60 + i64::from(*m)) * 60 + i64::from(*s))
                * 1_000_000
                + i64::from(*us);
            (if *neg { -total } else { total }) == *micros
        }
        _ => false,
    }
}

/// Asserts that every decoded image equals the server's rows (both ordered by id).
/// `absent`: columns that must be absent from the decoded images (the server does not log them).
fn assert_images(
    what: &str,
    columns: &[String],
    absent: &[&str],
    server: &[Vec<mysql_async::Value>],
    decoded: &[Vec<Value>],
) {
    assert_eq!(server.len(), decoded.len(), "{what}: row count");
    for (r, (s, d)) in server.iter().zip(decoded).enumerate() {
        assert_eq!(s.len(), d.len(), "{what}: column count of row {r}");
        for (c, (sv, dv)) in s.iter().zip(d).enumerate() {
            if absent.contains(&columns[c].as_str()) {
                assert_eq!(*dv, Value::Absent, "{what}: row {r} column {} is not logged", columns[c]);
            } else {
                assert!(same(sv, dv), "{what}: row {r} column {}: server {sv:?}, decoded {dv:?}", columns[c]);
            }
        }
    }
}

/// `compressed`: on MySQL the writes use binlog_transaction_compression (TRANSACTION_PAYLOAD
/// events); the test MariaDB always compresses (scripts/env starts it with log_bin_compress).
async fn type_matrix(server: &str, compressed: bool) {
    let url = env(server);
    let mysql = server == MYSQL;
    let db = unique("matrix");
    let table = format!("{db}.m");
    let matrix = matrix(mysql, server == MARIADB_11);
    let defs: Vec<String> = matrix.iter().map(|(name, ty, _)| format!("`{name}` {ty}")).collect();
    admin(
        &url,
        &[
            format!("CREATE DATABASE {db}"),
            format!("CREATE TABLE {table} (id INT PRIMARY KEY, {}, gen INT AS (i + 1) STORED)", defs.join(", ")),
        ],
    )
    .await;
    let start = position_now(&url).await;
    let (mut rx, _reader) =
        spawn_reader(source_settings(&url, unique_server_id(), None), ReaderOptions::default(), start);

    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("connect");
    conn.query_drop("SET NAMES utf8mb4").await.expect("names");
    conn.query_drop("SET SESSION time_zone = '+00:00', SESSION sql_mode = ''").await.expect("session");
    if compressed && mysql {
        conn.query_drop("SET SESSION binlog_transaction_compression = ON").await.expect("compression");
    }
    let names: Vec<&str> = matrix.iter().map(|(n, _, _)| *n).collect();
    for r in 0..5 {
        let values: Vec<&str> = matrix.iter().map(|(_, _, v)| v[r]).collect();
        conn.query_drop(format!(
            "INSERT INTO {table} (id, {}) VALUES ({}, {})",
            names.join(", "),
            r + 1,
            values.join(", ")
        ))
        .await
        .unwrap_or_else(|e| panic!("insert row {}: {e}", r + 1));
    }
    let inserted = select_all(&mut conn, &table).await;
    conn.query_drop(format!(
        "UPDATE {table} SET i = COALESCE(i, 0) + 1, vc = CONCAT(COALESCE(vc, ''), '!'), dtm6 = '2000-01-01 00:00:00.000001'"
    ))
    .await
    .expect("update");
    let updated = select_all(&mut conn, &table).await;
    conn.query_drop(format!("DELETE FROM {table}")).await.expect("delete");
    if compressed {
        // The server really wrote compressed events (else this test would prove nothing new).
        let status = if mysql { "SHOW BINARY LOG STATUS" } else { "SHOW MASTER STATUS" };
        let file: String = conn
            .query_first(status)
            .await
            .expect("status")
            .map(|r: mysql_async::Row| r.get(0).expect("file"))
            .expect("a binlog");
        let kinds: Vec<String> = conn
            .query_map(format!("SHOW BINLOG EVENTS IN '{file}'"), |r: mysql_async::Row| {
                r.get::<String, _>(2).unwrap_or_default()
            })
            .await
            .expect("binlog events");
        let want = if mysql { "Transaction_payload" } else { "_compressed" };
        assert!(
            kinds.iter().any(|k| k.contains(want)),
            "no {want} event in {file}: {:?}",
            kinds.iter().rev().take(10).collect::<Vec<_>>()
        );
    }

    let txns = committed_until(&mut rx, &db, LIMIT, |t| row_count(t) >= 15).await;
    let rows = rows(&txns);
    assert_eq!(rows.len(), 15);
    // The snapshot's view of the same table is the binlog's: information_schema gives the same
    // schema as the TABLE_MAP, and SELECT values convert to the same values the decoder produced.
    let flavor = if mysql { rowferry::source::Flavor::MySql } else { rowferry::source::Flavor::MariaDb };
    let described = rowferry::snapshot::describe::describe(
        &mut conn,
        &db,
        "m",
        flavor,
        &rowferry::config::SnapshotSettings::default(),
    )
    .await
    .expect("describe");
    assert_eq!(described.schema.columns, rows[0].table.columns, "information_schema vs TABLE_MAP");
    assert_eq!(described.schema.primary_key, rows[0].table.primary_key);
    assert_eq!(described.key, vec![0]);
    let converted: Vec<Vec<Value>> = inserted
        .iter()
        .map(|row| {
            row.iter()
                .zip(&described.schema.columns)
                .map(|(v, c)| rowferry::snapshot::convert::convert(&c.ty, v.clone()).expect("convert"))
                .collect()
        })
        .collect();
    let decoded_inserts: Vec<Vec<Value>> =
        rows.iter().filter(|r| r.op == Op::Insert).map(|r| r.after.clone().expect("after")).collect();
    assert_eq!(converted, decoded_inserts, "SELECT → snapshot values vs binlog → decoder values");
    let columns: Vec<String> = rows[0].table.columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(columns[0], "id");
    assert_eq!(columns.last().map(String::as_str), Some("gen"));
    assert_eq!(rows[0].table.primary_key, vec![0]);
    // JSON is JSON on both flavors (MariaDB's LONGTEXT is recognised through information_schema).
    let j = rows[0].table.columns.iter().find(|c| c.name == "j").expect("column j");
    let want = if mysql { "Json" } else { "JsonText" };
    assert!(format!("{:?}", j.ty).starts_with(want), "{:?}", j.ty);
    assert!(matches!(
        rows[0].after.as_ref().map(|a| &a[columns.iter().position(|c| c == "j").expect("j")]),
        Some(Value::Json(_))
    ));
    let images = |op: Op, after: bool| -> Vec<Vec<Value>> {
        rows.iter()
            .filter(|r| r.op == op)
            .map(|r| if after { r.after.clone() } else { r.before.clone() }.expect("image"))
            .collect()
    };
    // MariaDB 11.8 leaves generated columns out of UPDATE and DELETE images (even with
    // binlog_row_image=FULL); the schema says so, and rowferry leaves them out of the records.
    let omitted: Vec<&str> =
        rows[0].table.columns.iter().filter(|c| c.omitted_on_change).map(|c| c.name.as_str()).collect();
    let version: String = conn.query_first("SELECT VERSION()").await.expect("version").expect("a version");
    let omits = rowferry::source::ServerInfo::from_version_string(&version).expect("parse").omits_generated_on_change();
    assert_eq!(omitted, if omits { vec!["gen"] } else { vec![] }, "omitted columns on {version}");
    assert_images("insert after", &columns, &[], &inserted, &images(Op::Insert, true));
    assert_images("update before", &columns, &omitted, &inserted, &images(Op::Update, false));
    assert_images("update after", &columns, &omitted, &updated, &images(Op::Update, true));
    assert_images("delete before", &columns, &omitted, &updated, &images(Op::Delete, false));
    assert!(rows.iter().filter(|r| r.op == Op::Insert).all(|r| r.before.is_none()));
    assert!(rows.iter().filter(|r| r.op == Op::Delete).all(|r| r.after.is_none()));
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_type_matrix_decodes_exactly_from_compressed_events() {
    type_matrix(MARIADB, true).await;
}

#[tokio::test]
async fn mariadb_11_type_matrix_decodes_exactly_from_compressed_events() {
    type_matrix(MARIADB_11, true).await;
}

#[tokio::test]
async fn mysql_type_matrix_decodes_exactly() {
    type_matrix(MYSQL, false).await;
}

#[tokio::test]
async fn mysql_type_matrix_decodes_exactly_from_transaction_payloads() {
    type_matrix(MYSQL, true).await;
}

async fn ddl_mid_stream(server: &str) {
    let url = env(server);
    let db = unique("ddl");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, a VARCHAR(10))")])
        .await;
    let start = position_now(&url).await;
    let (mut rx, _reader) =
        spawn_reader(source_settings(&url, unique_server_id(), None), ReaderOptions::default(), start);
    admin(
        &url,
        &[
            format!("INSERT INTO {db}.t VALUES (1, 'one')"),
            format!("ALTER TABLE {db}.t ADD COLUMN b INT"),
            format!("INSERT INTO {db}.t VALUES (2, 'two', 2)"),
            format!("ALTER TABLE {db}.t DROP COLUMN a"),
            format!("INSERT INTO {db}.t VALUES (3, 3)"),
            format!("ALTER TABLE {db}.t MODIFY b BIGINT UNSIGNED"),
            format!("INSERT INTO {db}.t VALUES (4, 18446744073709551615)"),
            format!("RENAME TABLE {db}.t TO {db}.u"),
            format!("INSERT INTO {db}.u VALUES (5, 5)"),
            // A JSON column added mid-stream is JSON at once (MariaDB: refreshed after the DDL).
            format!("ALTER TABLE {db}.u ADD COLUMN j JSON"),
            format!("INSERT INTO {db}.u VALUES (6, 6, '[1]')"),
        ],
    )
    .await;
    let txns = committed_until(&mut rx, &db, LIMIT, |t| row_count(t) >= 6).await;
    let statements: Vec<String> = txns
        .iter()
        .flat_map(|(_, e)| e)
        .filter_map(|e| match e {
            TxnEvent::Statement { sql, .. } => Some(sql.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(statements.len(), 5, "{statements:?}");
    let shapes: Vec<(String, Vec<String>, Vec<Value>)> = rows(&txns)
        .into_iter()
        .map(|r| {
            (r.table.table.clone(), r.table.columns.iter().map(|c| c.name.clone()).collect(), r.after.expect("insert"))
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(shapes[0], ("t".into(), s(&["id", "a"]), vec![Value::Int(1), Value::Text("one".into())]));
    assert_eq!(
        shapes[1],
        ("t".into(), s(&["id", "a", "b"]), vec![Value::Int(2), Value::Text("two".into()), Value::Int(2)])
    );
    assert_eq!(shapes[2], ("t".into(), s(&["id", "b"]), vec![Value::Int(3), Value::Int(3)]));
    assert_eq!(shapes[3], ("t".into(), s(&["id", "b"]), vec![Value::Int(4), Value::UInt(u64::MAX)]));
    assert_eq!(shapes[4], ("u".into(), s(&["id", "b"]), vec![Value::Int(5), Value::UInt(5)]));
    assert_eq!(
        shapes[5],
        ("u".into(), s(&["id", "b", "j"]), vec![Value::Int(6), Value::UInt(6), Value::Json("[1]".into())])
    );
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn mariadb_rows_keep_their_shape_across_ddl() {
    ddl_mid_stream(MARIADB).await;
}

#[tokio::test]
async fn mariadb_11_rows_keep_their_shape_across_ddl() {
    ddl_mid_stream(MARIADB_11).await;
}

#[tokio::test]
async fn mysql_rows_keep_their_shape_across_ddl() {
    ddl_mid_stream(MYSQL).await;
}

/// Dump threads on the source serving `user`.
///
/// SHOW PROCESSLIST, not information_schema.PROCESSLIST: MySQL builds the latter's rows in
/// utf8mb3 and fails the whole query (error 3854) whenever any session's statement holds a 4-byte
/// character — which the parallel type-matrix tests do.
async fn dump_threads(url: &str, user: &str) -> usize {
    let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
    let rows: Vec<mysql_async::Row> = conn.query("SHOW PROCESSLIST").await.expect("processlist");
    conn.disconnect().await.expect("disconnect");
    rows.iter()
        .filter(|row| {
            let column = |name: &str| row.get_opt::<String, _>(name).and_then(Result::ok).unwrap_or_default();
            column("User") == user && column("Command").starts_with("Binlog Dump")
        })
        .count()
}

/// Waits (polling the condition, bounded) until `f` holds.
async fn eventually<F, Fut>(what: &str, limit: Duration, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A new account with a replica's grants (password `pw`), so that its dump threads can be told
/// apart from the other tests'.
async fn replica_user(url: &str, server: &str, prefix: &str) -> String {
    let user = unique(prefix);
    admin(
        url,
        &[
            format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"),
            format!("GRANT REPLICATION SLAVE, SELECT ON *.* TO '{user}'@'%'"),
            format!(
                "GRANT {} ON *.* TO '{user}'@'%'",
                if server == MYSQL { "REPLICATION CLIENT" } else { "BINLOG MONITOR" }
            ),
        ],
    )
    .await;
    user
}

/// A reader that stops (its receiver dropped, as at rowferry's shutdown) ends its dump on the
/// source at once. Left to itself, the source keeps the dump thread until a heartbeat to the
/// closed link fails (here 30 s away), and a restart with the same server_id waits while the
/// source kills it (~100 ms on MariaDB 10.11).
async fn a_stopped_reader_ends_its_dump(server: &str) {
    let url = env(server);
    let user = replica_user(&url, server, "rf_stop").await;
    let mut settings = source_settings(&url, unique_server_id(), None);
    settings.user = user.clone();
    settings.password = rowferry::config::Secret::new("pw");
    let options = ReaderOptions {
        heartbeat: Duration::from_secs(30),
        read_timeout: Duration::from_secs(90),
        ..Default::default()
    };
    let (rx, _stats) = common::spawn_reader(settings, options, common::position_now(&url).await);
    eventually("the reader's dump thread", Duration::from_secs(30), || async { dump_threads(&url, &user).await == 1 })
        .await;
    drop(rx);
    eventually("the dump thread to end with the reader", Duration::from_secs(2), || async {
        dump_threads(&url, &user).await == 0
    })
    .await;
    admin(&url, &[format!("DROP USER '{user}'@'%'")]).await;
}

#[tokio::test]
async fn mariadb_a_stopped_reader_ends_its_dump() {
    a_stopped_reader_ends_its_dump(MARIADB).await;
}

#[tokio::test]
async fn mysql_a_stopped_reader_ends_its_dump() {
    a_stopped_reader_ends_its_dump(MYSQL).await;
}

async fn dead_links_lose_nothing(server: &str) {
    const TXNS: usize = 200;
    const FREEZES: usize = 3;
    const ROWS_PER_TXN: usize = 5;
    let url = env(server);
    let db = unique("relink");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]).await;
    let user = replica_user(&url, server, "rf_relink").await;
    let (host, port) = common::host_port(&url);
    let proxy = common::proxy::Proxy::start(format!("{host}:{port}").parse().expect("address")).await;
    let mut settings = source_settings(&url, unique_server_id(), Some(proxy.addr));
    settings.user = user.clone();
    settings.password = rowferry::config::Secret::new("pw");
    let options = ReaderOptions {
        heartbeat: Duration::from_millis(200),
        read_timeout: Duration::from_millis(1500),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        // Small, so that a freeze can cut a transaction that is already streaming.
        buffer_rows: 2,
        tables: None,
        budget: None,
        acks: None,
    };
    let (mut rx, stats) = spawn_reader(settings, options, position_now(&url).await);
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("writer connection");

    // Rounds of writes; from the second round on, the link is cut after some kilobytes of the
    // stream (inside an event or a transaction, wherever that falls) and goes silent.
    let rounds = FREEZES + 1;
    let per_round = TXNS / rounds;
    let mut all: Vec<Txn> = Vec::new();
    for round in 0..rounds {
        if round > 0 {
            proxy.freeze_after(1_000 + 1_777 * round as i64);
        }
        for t in round * per_round..(round + 1) * per_round {
            let values: Vec<String> = (1..=ROWS_PER_TXN).map(|r| format!("({})", t * ROWS_PER_TXN + r)).collect();
            conn.query_drop(format!("INSERT INTO {db}.t VALUES {}", values.join(","))).await.expect("insert");
        }
        let want = (round + 1) * per_round;
        let have = all.len();
        all.extend(committed_until(&mut rx, &db, LIMIT, move |t| have + t.len() >= want).await);
    }
    assert!(
        stats.reconnects.load(std::sync::atomic::Ordering::Relaxed) >= FREEZES as u64,
        "every cut must force a reconnect"
    );

    // Every row exactly once, every transaction whole.
    let mut ids: Vec<i64> = rows(&all)
        .iter()
        .map(|r| match r.after.as_ref().and_then(|a| a.first()) {
            Some(Value::Int(id)) => *id,
            other => panic!("unexpected row {other:?}"),
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=(TXNS * ROWS_PER_TXN) as i64).collect::<Vec<_>>());
    assert!(all.iter().all(|(_, events)| events.len() == ROWS_PER_TXN));

    // The source retired the dump threads of the dead links: one is left, ours.
    eventually("a single dump thread", LIMIT, || async { dump_threads(&url, &user).await == 1 }).await;
    admin(&url, &[format!("DROP DATABASE {db}"), format!("DROP USER '{user}'@'%'")]).await;
}

#[tokio::test]
async fn mariadb_dead_links_lose_nothing_and_leave_one_dump_thread() {
    dead_links_lose_nothing(MARIADB).await;
}

#[tokio::test]
async fn mysql_dead_links_lose_nothing_and_leave_one_dump_thread() {
    dead_links_lose_nothing(MYSQL).await;
}

#[tokio::test]
async fn a_position_the_server_never_had_is_refused() {
    let url = env(MYSQL);
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("connect");
    let foreign = rowferry::position::Position::MySql(
        rowferry::position::MySqlGtidSet::parse("11111111-2222-3333-4444-555555555555:1-10").expect("set"),
    );
    let err = rowferry::reader::check_start(&mut conn, &foreign).await.expect_err("diverged");
    assert!(err.to_string().contains("11111111-2222-3333-4444-555555555555:1-10"), "{err}");
    assert!(err.to_string().contains("diverged"), "{err}");
}

/// Two readers with one server_id on MySQL. The source hands the stream to the newcomer and
/// drops the first one, which stops with an error naming the id and the fix (fighting back would
/// make the two take turns); the newcomer continues from its start with nothing lost. (MariaDB
/// usually does the same, with error 4052, but not always: under load it was seen serving both
/// dumps, so its side is a unit test of the error's classification.)
#[tokio::test]
async fn mysql_reader_displaced_by_one_with_the_same_server_id_stops_with_a_clear_error() {
    use std::sync::atomic::Ordering::Relaxed;
    let url = env(MYSQL);
    let db = unique("sameid");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]).await;
    let options = ReaderOptions {
        heartbeat: Duration::from_millis(200),
        read_timeout: Duration::from_millis(1500),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        buffer_rows: 100,
        tables: None,
        budget: None,
        acks: None,
    };
    let id = unique_server_id();
    let start = position_now(&url).await;
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("writer connection");

    let first = rowferry::reader::Reader::new(source_settings(&url, id, None), options.clone());
    let first_stats = first.stats();
    let (first_tx, mut first_rx) = tokio::sync::mpsc::channel::<TxnEvent>(256);
    let first_task = tokio::spawn({
        let start = start.clone();
        async move { first.run(start, first_tx).await }
    });
    conn.query_drop(format!("INSERT INTO {db}.t VALUES (1)")).await.expect("insert");
    let seen = committed_until(&mut first_rx, &db, LIMIT, |t| !t.is_empty()).await;
    assert_eq!(row_count(&seen), 1);
    assert!(first_stats.connected.load(Relaxed));
    // Keep taking what the first reader sends, as the pipeline would: the server is shared with
    // other tests, and a full channel would hold the reader in its send, never reading the
    // socket that tells it it was dropped.
    tokio::spawn(async move { while first_rx.recv().await.is_some() {} });

    let (mut second_rx, _) = spawn_reader(source_settings(&url, id, None), options, start);
    let err = tokio::time::timeout(LIMIT, first_task)
        .await
        .expect("the displaced reader stops")
        .expect("reader task")
        .expect_err("the displaced reader stops with an error");
    let text = err.to_string();
    assert!(text.contains(&format!("another replica of the source uses server_id {id}")), "{text}");
    assert!(text.contains("and the source dropped this connection for it"), "{text}");
    assert!(text.contains("fix: give every rowferry and replica of this source its own source.server_id"), "{text}");

    conn.query_drop(format!("INSERT INTO {db}.t VALUES (2)")).await.expect("insert");
    let seen = committed_until(&mut second_rx, &db, LIMIT, |t| t.len() >= 2).await;
    assert_eq!(row_count(&seen), 2, "the second reader continues from its start with nothing lost");
}

/// One compressed MySQL transaction (a single TRANSACTION_PAYLOAD) of many more embedded events
/// than the decoder's batch: every row arrives once, in order, in one committed transaction —
/// the reader decodes the payload in batches and hands each on before the next.
#[tokio::test]
async fn mysql_a_large_compressed_transaction_arrives_whole_across_batches() {
    let url = env(MYSQL);
    let db = unique("bigpayload");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, pad TEXT)")])
        .await;
    let start = position_now(&url).await;
    // A small assembler buffer: the transaction streams out while it is being decoded.
    let options = ReaderOptions { buffer_rows: 100, ..ReaderOptions::default() };
    let (mut rx, _reader) = spawn_reader(source_settings(&url, unique_server_id(), None), options, start);
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.expect("connect");
    conn.query_drop("SET SESSION binlog_transaction_compression = ON").await.expect("compression");
    // One INSERT per row: two embedded events each (TABLE_MAP, WRITE_ROWS), ~16 batches.
    const ROWS: usize = 2000;
    let mut batch = vec!["BEGIN".to_string()];
    batch.extend((1..=ROWS).map(|i| format!("INSERT INTO {db}.t VALUES ({i}, REPEAT('x', {i} % 300))")));
    batch.push("COMMIT".into());
    conn.query_drop(batch.join("; ")).await.expect("one transaction");
    let events = rowferry::decoder::PAYLOAD_BATCH;
    assert!(2 * ROWS > 10 * events, "the transaction must span many batches of {events} events");
    let txns = committed_until(&mut rx, &db, LIMIT, |t| row_count(t) >= ROWS).await;
    assert_eq!(txns.len(), 1, "one transaction");
    let ids: Vec<i64> = rows(&txns)
        .iter()
        .map(|r| match r.after.as_ref().map(|v| &v[0]) {
            Some(Value::Int(i)) => *i,
            other => panic!("id {other:?}"),
        })
        .collect();
    assert_eq!(ids, (1..=ROWS as i64).collect::<Vec<_>>(), "every row once, in order");
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}
