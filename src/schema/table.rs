//! A table's schema and its decode plan, built once per distinct TABLE_MAP.

use super::charset::{Charset, CollationMap};
use super::table_map::{MapColumn, TableMap, type_code as t};
use crate::error::ErrorClass;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How a column's value is decoded; every parameter resolved from the TABLE_MAP up front.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    TinyInt {
        unsigned: bool,
    },
    SmallInt {
        unsigned: bool,
    },
    MediumInt {
        unsigned: bool,
    },
    Int {
        unsigned: bool,
    },
    BigInt {
        unsigned: bool,
    },
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Bit {
        width: u16,
    },
    Year,
    Date,
    /// TIME(fsp), MySQL 5.6+ format.
    Time {
        fsp: u8,
    },
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    /// Pre-5.6 temporal formats (old binlogs).
    TimeV1,
    DateTimeV1,
    TimestampV1,
    /// CHAR/BINARY: up to `max_len` bytes; BINARY is padded with 0x00 to `max_len`.
    Char {
        max_len: u16,
        charset: Charset,
    },
    /// VARCHAR/VARBINARY.
    VarChar {
        max_len: u16,
        charset: Charset,
    },
    /// TEXT/BLOB: `len_bytes` of length prefix.
    Blob {
        len_bytes: u8,
        charset: Charset,
    },
    Enum {
        pack_len: u8,
        labels: Arc<[String]>,
    },
    Set {
        pack_len: u8,
        labels: Arc<[String]>,
    },
    /// MySQL binary JSON.
    Json {
        len_bytes: u8,
    },
    /// MariaDB JSON: LONGTEXT in the binlog, JSON by declaration.
    JsonText {
        len_bytes: u8,
    },
    Geometry {
        len_bytes: u8,
    },
    /// MariaDB's UUID, INET4 and INET6 (binlogged as BINARY(16), BINARY(4), BINARY(16); the type
    /// is known from information_schema): the value as the server prints it.
    Uuid,
    Inet4,
    Inet6,
    /// MariaDB's VECTOR(n) (binlogged as VARBINARY(4n)): n little-endian floats.
    VarVector {
        max_len: u16,
    },
    Vector {
        len_bytes: u8,
    },
    Null,
}

/// One column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    /// False for INVISIBLE columns (still in the row image).
    pub visible: bool,
    /// The server leaves it out of UPDATE and DELETE row images even with
    /// `binlog_row_image=FULL` (MariaDB 11.8 does so with generated columns): its value is not in
    /// the binlog, so rowferry leaves it out of every record of the table (inserts too, so all
    /// records have one shape).
    pub omitted_on_change: bool,
}

/// A table as of one TABLE_MAP.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub db: String,
    pub table: String,
    pub columns: Vec<Column>,
    /// Primary key column indexes; empty for tables without one.
    pub primary_key: Vec<usize>,
}

/// What the binlog does not say about a table, from information_schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableExtras {
    /// Columns declared JSON on MariaDB (binlogged as LONGTEXT).
    pub json_columns: HashSet<String>,
    /// Columns the server leaves out of UPDATE and DELETE images ([`Column::omitted_on_change`]).
    pub omitted_on_change: HashSet<String>,
    /// Columns of MariaDB's data type plugins (`uuid`, `inet4`, `inet6`, `vector`: the binlog
    /// shows only their storage type), by column name.
    pub plugin_types: HashMap<String, String>,
}

/// How strict schema building is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaOptions {
    /// Refuse TABLE_MAPs without column names (binlog_row_metadata≠FULL). The live connector
    /// requires it; decoding old binlog files for tests does not.
    pub require_full_metadata: bool,
}

/// A table whose schema cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "table {db}.{table}: its TABLE_MAP has no column names, so binlog_row_metadata was not FULL when it was \
         written; fix: SET GLOBAL binlog_row_metadata = 'FULL' (MySQL: SET PERSIST). The events already written \
         cannot be decoded: delete rowferry's stored offset and start it again, which starts at the current \
         position and snapshots the tables (snapshot.mode = initial; see Recovery in docs/operations.md)"
    )]
    MinimalMetadata { db: String, table: String },
    #[error("table {db}.{table} column {column}: {problem}")]
    Column { db: String, table: String, column: String, problem: String },
}

impl SchemaError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SchemaError::MinimalMetadata { .. } => ErrorClass::Fatal,
            SchemaError::Column { .. } => ErrorClass::PerTable,
        }
    }
}

impl TableSchema {
    /// Builds the schema and decode plan from a TABLE_MAP.
    pub fn from_map(
        map: &TableMap,
        collations: &CollationMap,
        extras: Option<&TableExtras>,
        options: SchemaOptions,
    ) -> Result<TableSchema, SchemaError> {
        if options.require_full_metadata && !map.has_full_metadata {
            return Err(SchemaError::MinimalMetadata { db: map.db.clone(), table: map.table.clone() });
        }
        let columns = map
            .columns
            .iter()
            .enumerate()
            .map(|(i, col)| {
                let name = col.name.clone().unwrap_or_else(|| format!("col_{}", i + 1));
                let json = extras.is_some_and(|e| e.json_columns.contains(&name));
                let plugin = extras.and_then(|e| e.plugin_types.get(&name)).map(String::as_str);
                let ty = column_type(col, collations, json, plugin).map_err(|problem| SchemaError::Column {
                    db: map.db.clone(),
                    table: map.table.clone(),
                    column: name.clone(),
                    problem,
                })?;
                let omitted_on_change = extras.is_some_and(|e| e.omitted_on_change.contains(&name));
                Ok(Column { name, ty, nullable: col.nullable, visible: col.visible, omitted_on_change })
            })
            .collect::<Result<Vec<_>, SchemaError>>()?;
        Ok(TableSchema {
            db: map.db.clone(),
            table: map.table.clone(),
            columns,
            primary_key: map.primary_key.clone().unwrap_or_default(),
        })
    }
}

fn charset_of(col: &MapColumn, collations: &CollationMap) -> Result<Charset, String> {
    match col.collation {
        Some(id) => collations
            .charset(id)
            .ok_or_else(|| format!("collation id {id} has a character set rowferry cannot decode")),
        // Minimal metadata: no charset known; treat as UTF-8 text (validated when decoded).
        None => Ok(Charset::Utf8),
    }
}

fn labels(col: &MapColumn, collations: &CollationMap, what: &str) -> Result<Arc<[String]>, String> {
    let raw = col.labels.as_ref().ok_or_else(|| format!("{what} labels missing (binlog_row_metadata is not FULL)"))?;
    let charset = charset_of(col, collations)?;
    raw.iter().map(|l| super::charset::text(l, charset).map_err(|e| e.to_string())).collect()
}

/// `plugin`: the MariaDB data type plugin information_schema names for the column, if any.
fn column_type(
    col: &MapColumn,
    collations: &CollationMap,
    json: bool,
    plugin: Option<&str>,
) -> Result<ColumnType, String> {
    let unsigned = col.unsigned.unwrap_or(false);
    let byte = |m: u16| m as u8;
    match (plugin, col.type_code) {
        (Some("uuid"), t::STRING) if col.meta == 16 => return Ok(ColumnType::Uuid),
        (Some("inet4"), t::STRING) if col.meta == 4 => return Ok(ColumnType::Inet4),
        (Some("inet6"), t::STRING) if col.meta == 16 => return Ok(ColumnType::Inet6),
        (Some("vector"), t::VARCHAR | t::VAR_STRING) if col.meta % 4 == 0 => {
            return Ok(ColumnType::VarVector { max_len: col.meta });
        }
        (Some(other), code) => {
            return Err(format!("MariaDB type {other} binlogged as type code {code} (meta {}) is not known", col.meta));
        }
        (None, _) => {}
    }
    Ok(match col.type_code {
        t::TINY => ColumnType::TinyInt { unsigned },
        t::SHORT => ColumnType::SmallInt { unsigned },
        t::INT24 => ColumnType::MediumInt { unsigned },
        t::LONG => ColumnType::Int { unsigned },
        t::LONGLONG => ColumnType::BigInt { unsigned },
        t::FLOAT => ColumnType::Float,
        t::DOUBLE => ColumnType::Double,
        t::NEWDECIMAL => {
            let (precision, scale) = ((col.meta >> 8) as u8, col.meta as u8);
            if precision == 0 || precision > 65 || scale > 30 || scale > precision {
                return Err(format!("DECIMAL({precision},{scale}) is out of range"));
            }
            ColumnType::Decimal { precision, scale }
        }
        t::BIT => ColumnType::Bit { width: (col.meta >> 8) * 8 + (col.meta & 0xff) },
        t::YEAR => ColumnType::Year,
        t::DATE | t::NEWDATE => ColumnType::Date,
        t::TIME2 => ColumnType::Time { fsp: fsp(col.meta)? },
        t::DATETIME2 => ColumnType::DateTime { fsp: fsp(col.meta)? },
        t::TIMESTAMP2 => ColumnType::Timestamp { fsp: fsp(col.meta)? },
        t::TIME => ColumnType::TimeV1,
        t::DATETIME => ColumnType::DateTimeV1,
        t::TIMESTAMP => ColumnType::TimestampV1,
        t::STRING => ColumnType::Char { max_len: col.meta, charset: charset_of(col, collations)? },
        t::VARCHAR | t::VAR_STRING => ColumnType::VarChar { max_len: col.meta, charset: charset_of(col, collations)? },
        t::BLOB | t::TINY_BLOB | t::MEDIUM_BLOB | t::LONG_BLOB => {
            let len_bytes = len_bytes(col.meta)?;
            if json {
                ColumnType::JsonText { len_bytes }
            } else {
                ColumnType::Blob { len_bytes, charset: charset_of(col, collations)? }
            }
        }
        t::ENUM => ColumnType::Enum { pack_len: byte(col.meta), labels: labels(col, collations, "ENUM")? },
        t::SET => ColumnType::Set { pack_len: byte(col.meta), labels: labels(col, collations, "SET")? },
        t::JSON => ColumnType::Json { len_bytes: len_bytes(col.meta)? },
        t::GEOMETRY => ColumnType::Geometry { len_bytes: len_bytes(col.meta)? },
        t::VECTOR => ColumnType::Vector { len_bytes: len_bytes(col.meta)? },
        t::NULL => ColumnType::Null,
        other => return Err(format!("column type code {other} is not supported")),
    })
    .and_then(|ty| match ty {
        ColumnType::Enum { pack_len, .. } | ColumnType::Set { pack_len, .. } if pack_len == 0 || pack_len > 8 => {
            Err(format!("ENUM/SET pack length {pack_len}"))
        }
        other => Ok(other),
    })
}

fn fsp(meta: u16) -> Result<u8, String> {
    u8::try_from(meta).ok().filter(|&f| f <= 6).ok_or_else(|| format!("fractional seconds precision {meta}"))
}

fn len_bytes(meta: u16) -> Result<u8, String> {
    u8::try_from(meta).ok().filter(|l| (1..=4).contains(l)).ok_or_else(|| format!("length prefix of {meta} bytes"))
}

/// What a TABLE_MAP's table id stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A captured table and its decode plan.
    Table(Arc<TableSchema>),
    /// A table rowferry does not capture: its rows are not decoded at all.
    Skipped,
    /// A captured table whose schema cannot be built (an unsupported character set, …): its rows
    /// are reported as that table's error, never decoded, and the other tables go on.
    Broken { db: String, table: String, error: String },
}

/// What each table id stands for, as the stream's TABLE_MAPs define it.
///
/// Table ids are reused by the server for other tables after a DDL or a table cache eviction, so
/// an entry is replaced whenever a TABLE_MAP with different bytes arrives; identical bytes reuse
/// the existing plan.
#[derive(Debug, Default)]
pub struct SchemaCache {
    tables: HashMap<u64, (Vec<u8>, Mapped)>,
}

impl SchemaCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// What `table_id` stands for if this exact TABLE_MAP body was seen before.
    pub fn cached(&self, table_id: u64, body: &[u8]) -> Option<&Mapped> {
        self.tables.get(&table_id).filter(|(bytes, _)| bytes == body).map(|(_, m)| m)
    }

    pub fn insert(&mut self, table_id: u64, body: &[u8], mapped: Mapped) {
        self.tables.insert(table_id, (body.to_vec(), mapped));
    }

    pub fn get(&self, table_id: u64) -> Option<&Mapped> {
        self.tables.get(&table_id).map(|(_, m)| m)
    }

    /// Forgets every table (after a DDL: ids may now mean other shapes).
    pub fn clear(&mut self) {
        self.tables.clear();
    }
}
