//! A table's schema from information_schema, identical to the one its binlog TABLE_MAP gives.
//!
//! Invariant: for a table, [`describe`] and the stream's TABLE_MAP (binlog_row_metadata=FULL)
//! produce equal [`ColumnType`]s — same types, signedness, lengths, charsets, labels, fsp — so a
//! snapshot row and a streamed row of the same table encode under the same Avro schema and their
//! keys compare equal. The type-matrix tests check this against both servers.

use super::SnapshotError;
use crate::config::{SnapshotSettings, TableFilter};
use crate::schema::{Charset, Column, ColumnType, TableSchema};
use crate::source::{Flavor, SourceError, exec_text, query_text};
use std::collections::HashSet;
use std::sync::Arc;

/// A table to copy: its schema and the columns chunks are ordered by.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub schema: Arc<TableSchema>,
    /// Column indexes of the chunking key (the primary key, or the declared key); empty: the
    /// table is copied in one pass.
    pub key: Vec<usize>,
    /// The server's row estimate (information_schema.TABLES.TABLE_ROWS), for progress.
    pub estimate: u64,
}

/// `` `name` `` with backticks doubled.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The captured base tables that exist now, as `(db, table)`, sorted.
pub async fn list_tables(
    conn: &mut mysql_async::Conn,
    filter: &TableFilter,
) -> Result<Vec<(String, String)>, SourceError> {
    let rows = query_text(
        conn,
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
         ORDER BY TABLE_SCHEMA, TABLE_NAME",
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [Some(db), Some(table)] if filter.captures(db, table) => Some((db.clone(), table.clone())),
            _ => None,
        })
        .collect())
}

/// Of `tables` (`(db, table)`), those [`describe`] finds no key for (`db.table`): no primary key,
/// no `snapshot.keys` entry, no unique index over NOT NULL columns. A table that cannot be
/// described is left out (its copy fails on its own).
/// XA transactions prepared on the source and not yet decided (their gtrid and bqual, as text).
/// A snapshot cannot see their rows, and one prepared before the stream's start position is not
/// in the stream either (see reading.md). Empty when the account may not run `XA RECOVER`
/// (MySQL: XA_RECOVER_ADMIN): then nothing is known, which is logged at debug level.
pub async fn prepared_xa(conn: &mut mysql_async::Conn) -> Vec<String> {
    match query_text(conn, "XA RECOVER").await {
        Ok(rows) => rows.into_iter().filter_map(|row| row.into_iter().nth(3).flatten()).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "XA RECOVER refused: prepared XA transactions not checked");
            Vec::new()
        }
    }
}

pub async fn keyless_tables(
    conn: &mut mysql_async::Conn,
    flavor: Flavor,
    settings: &SnapshotSettings,
    tables: &[(String, String)],
) -> Result<Vec<String>, SnapshotError> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let with_pk: HashSet<(String, String)> = query_text(
        conn,
        "SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.STATISTICS WHERE INDEX_NAME = 'PRIMARY'",
    )
    .await?
    .into_iter()
    .filter_map(|r| match r.as_slice() {
        [Some(db), Some(table)] => Some((db.clone(), table.clone())),
        _ => None,
    })
    .collect();
    let mut keyless = Vec::new();
    for (db, table) in tables {
        if with_pk.contains(&(db.clone(), table.clone())) || settings.declared_key(db, table).is_some() {
            continue;
        }
        if describe(conn, db, table, flavor, settings).await.is_ok_and(|d| d.key.is_empty()) {
            keyless.push(format!("{db}.{table}"));
        }
    }
    Ok(keyless)
}

/// Reads the table's columns, key and row estimate.
pub async fn describe(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
    flavor: Flavor,
    settings: &SnapshotSettings,
) -> Result<Described, SnapshotError> {
    let name = format!("{db}.{table}");
    let params = || vec![mysql_async::Value::from(db), mysql_async::Value::from(table)];
    let rows = exec_text(
        conn,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, \
         CAST(CHARACTER_OCTET_LENGTH AS CHAR), CAST(NUMERIC_PRECISION AS CHAR), CAST(NUMERIC_SCALE AS CHAR), \
         CAST(DATETIME_PRECISION AS CHAR), EXTRA FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        params(),
    )
    .await?;
    if rows.is_empty() {
        return Err(SnapshotError::Table { table: name, problem: "the table does not exist".into() });
    }
    let omits_generated = match flavor {
        Flavor::MariaDb => crate::source::server_info(conn).await?.omits_generated_on_change(),
        Flavor::MySql => false,
    };
    let json = match flavor {
        Flavor::MariaDb => json_columns(conn, db, table).await?,
        Flavor::MySql => HashSet::new(),
    };
    let mut columns = Vec::with_capacity(rows.len());
    for row in &rows {
        let get = |i: usize| row.get(i).cloned().flatten();
        let column = get(0).unwrap_or_default();
        let info = ColumnInfo {
            data_type: get(1).unwrap_or_default().to_ascii_lowercase(),
            column_type: get(2).unwrap_or_default(),
            charset: get(4),
            octets: get(5).and_then(|v| v.parse().ok()),
            precision: get(6).and_then(|v| v.parse().ok()),
            scale: get(7).and_then(|v| v.parse().ok()),
            fsp: get(8).and_then(|v| v.parse().ok()),
            json: json.contains(&column),
            mariadb: flavor == Flavor::MariaDb,
        };
        let ty = column_type(&info).map_err(|problem| SnapshotError::Table {
            table: name.clone(),
            problem: format!("column {column}: {problem}"),
        })?;
        let extra = get(9).unwrap_or_default().to_ascii_uppercase();
        columns.push(Column {
            name: column,
            ty,
            nullable: get(3).as_deref() == Some("YES"),
            visible: !extra.contains("INVISIBLE"),
            omitted_on_change: omits_generated && extra.contains("GENERATED"),
        });
    }
    let pk_rows = exec_text(
        conn,
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
        params(),
    )
    .await?;
    let index_of = |column: &str| columns.iter().position(|c| c.name == column);
    let primary_key: Vec<usize> =
        pk_rows.iter().filter_map(|r| r.first().cloned().flatten()).filter_map(|c| index_of(&c)).collect();
    let key = if !primary_key.is_empty() {
        primary_key.clone()
    } else if let Some(declared) = settings.declared_key(db, table) {
        declared
            .iter()
            .map(|c| {
                index_of(c).ok_or_else(|| SnapshotError::Table {
                    table: name.clone(),
                    problem: format!("snapshot.keys names column {c}, which the table does not have"),
                })
            })
            .collect::<Result<_, _>>()?
    } else {
        unique_not_null_key(conn, db, table, &columns).await?
    };
    let estimate = exec_text(
        conn,
        "SELECT CAST(TABLE_ROWS AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        params(),
    )
    .await?
    .first()
    .and_then(|r| r.first().cloned().flatten())
    .and_then(|v| v.parse().ok())
    .unwrap_or(0);
    let schema = TableSchema { db: db.to_string(), table: table.to_string(), columns, primary_key };
    Ok(Described { schema: Arc::new(schema), key, estimate })
}

/// Without a primary key or `snapshot.keys`, a unique index over NOT NULL columns identifies rows
/// as well: the one with the fewest columns (then by name), as column indexes; empty when there
/// is none (the table is copied in one pass, holding the stream: see `snapshot::merge`).
async fn unique_not_null_key(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
    columns: &[Column],
) -> Result<Vec<usize>, SourceError> {
    let rows = exec_text(
        conn,
        "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        vec![db.into(), table.into()],
    )
    .await?;
    let mut indexes: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
    let mut unusable = HashSet::new();
    for row in rows {
        let (Some(Some(index)), Some(Some(column))) = (row.first(), row.get(1)) else { continue };
        match columns.iter().position(|c| &c.name == column) {
            Some(i) if !columns[i].nullable => indexes.entry(index.clone()).or_default().push(i),
            // A nullable column (NULLs repeat in a unique index) or an expression: not a key.
            _ => {
                unusable.insert(index.clone());
            }
        }
    }
    Ok(indexes
        .into_iter()
        .filter(|(name, _)| !unusable.contains(name))
        .min_by_key(|(name, key)| (key.len(), name.clone()))
        .map(|(_, key)| key)
        .unwrap_or_default())
}

/// MariaDB's JSON columns of one table (LONGTEXT with a `json_valid` CHECK); MySQL's are typed.
async fn json_columns(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<HashSet<String>, SourceError> {
    let rows = exec_text(
        conn,
        "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE 'json\\_valid(%'",
        vec![db.into(), table.into()],
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .filter_map(|c| c.strip_prefix("json_valid(`").and_then(|c| c.strip_suffix("`)")).map(|c| c.replace("``", "`")))
        .collect())
}

/// What information_schema.COLUMNS says about one column.
#[derive(Debug)]
struct ColumnInfo {
    data_type: String,
    column_type: String,
    charset: Option<String>,
    octets: Option<u64>,
    precision: Option<u64>,
    scale: Option<u64>,
    fsp: Option<u64>,
    json: bool,
    /// The server is MariaDB (whose VECTOR differs from MySQL's).
    mariadb: bool,
}

fn column_type(c: &ColumnInfo) -> Result<ColumnType, String> {
    let unsigned = c.column_type.to_ascii_lowercase().contains("unsigned");
    let charset = || match c.charset.as_deref() {
        None => Ok(Charset::Binary),
        Some(name) => Charset::from_name(name).ok_or_else(|| format!("character set {name} cannot be decoded")),
    };
    let fsp = || u8::try_from(c.fsp.unwrap_or(0)).map_err(|_| "fractional seconds out of range".to_string());
    let max_len = || u16::try_from(c.octets.unwrap_or(0)).map_err(|_| "length out of range".to_string());
    let labels = || -> Result<Arc<[String]>, String> { Ok(parse_labels(&c.column_type)?.into()) };
    Ok(match c.data_type.as_str() {
        "tinyint" => ColumnType::TinyInt { unsigned },
        "smallint" => ColumnType::SmallInt { unsigned },
        "mediumint" => ColumnType::MediumInt { unsigned },
        "int" | "integer" => ColumnType::Int { unsigned },
        "bigint" => ColumnType::BigInt { unsigned },
        "float" => ColumnType::Float,
        "double" | "real" => ColumnType::Double,
        "decimal" | "numeric" => ColumnType::Decimal {
            precision: u8::try_from(c.precision.unwrap_or(10)).map_err(|_| "precision out of range")?,
            scale: u8::try_from(c.scale.unwrap_or(0)).map_err(|_| "scale out of range")?,
        },
        "bit" => ColumnType::Bit { width: u16::try_from(c.precision.unwrap_or(1)).map_err(|_| "width out of range")? },
        "year" => ColumnType::Year,
        "date" => ColumnType::Date,
        "time" => ColumnType::Time { fsp: fsp()? },
        "datetime" => ColumnType::DateTime { fsp: fsp()? },
        "timestamp" => ColumnType::Timestamp { fsp: fsp()? },
        "char" | "binary" => ColumnType::Char { max_len: max_len()?, charset: charset()? },
        "varchar" | "varbinary" => ColumnType::VarChar { max_len: max_len()?, charset: charset()? },
        "tinytext" | "tinyblob" => ColumnType::Blob { len_bytes: 1, charset: charset()? },
        "text" | "blob" => ColumnType::Blob { len_bytes: 2, charset: charset()? },
        "mediumtext" | "mediumblob" => ColumnType::Blob { len_bytes: 3, charset: charset()? },
        "longtext" if c.json => ColumnType::JsonText { len_bytes: 4 },
        "longtext" | "longblob" => ColumnType::Blob { len_bytes: 4, charset: charset()? },
        "enum" => {
            let labels = labels()?;
            ColumnType::Enum { pack_len: if labels.len() > 255 { 2 } else { 1 }, labels }
        }
        "set" => {
            let labels = labels()?;
            let bytes = labels.len().div_ceil(8) as u8;
            ColumnType::Set { pack_len: if bytes > 4 { 8 } else { bytes.max(1) }, labels }
        }
        "json" => ColumnType::Json { len_bytes: 4 },
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" | "geomcollection" => ColumnType::Geometry { len_bytes: 4 },
        // MariaDB's VECTOR(n) is binlogged as VARBINARY(4n); MySQL's as its own type.
        "vector" if c.mariadb => ColumnType::VarVector { max_len: max_len()? },
        "vector" => ColumnType::Vector { len_bytes: 4 },
        "uuid" => ColumnType::Uuid,
        "inet4" => ColumnType::Inet4,
        "inet6" => ColumnType::Inet6,
        other => return Err(format!("type {other} ({}) is not supported by snapshots", c.column_type)),
    })
}

/// The labels of `enum('a','b''c')` / `set(...)`: quotes doubled or backslash-escaped.
fn parse_labels(column_type: &str) -> Result<Vec<String>, String> {
    let bad = || format!("cannot read the labels of {column_type}");
    let open = column_type.find('(').ok_or_else(bad)?;
    let inner = column_type[open + 1..].strip_suffix(')').ok_or_else(bad)?;
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        if chars.next() != Some('\'') {
            return Err(bad());
        }
        let mut label = String::new();
        loop {
            match chars.next().ok_or_else(bad)? {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => label.push(chars.next().ok_or_else(bad)?),
                c => label.push(c),
            }
        }
        labels.push(label);
        match chars.next() {
            None => return Ok(labels),
            Some(',') => {}
            Some(_) => return Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_labels;

    #[test]
    fn labels_with_quotes_commas_and_escapes() {
        assert_eq!(parse_labels("enum('a','b')").ok(), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(parse_labels("set('it''s','x,y','')").ok(), Some(vec!["it's".into(), "x,y".into(), String::new()]));
        assert_eq!(parse_labels("enum('a\\\\b')").ok(), Some(vec!["a\\b".to_string()]));
        assert!(parse_labels("enum('a'").is_err());
        assert!(parse_labels("enum(a)").is_err());
    }
}
