//! TABLE_MAP_EVENT: which table a following rows event writes, and the binlog's view of its
//! columns — type codes, per-type metadata, nullability and, with `binlog_row_metadata=FULL`,
//! the optional metadata (names, signedness, charsets, ENUM/SET labels, primary key, visibility).
//!
//! Optional metadata is a sequence of (type, length, value) fields; unknown types are skipped by
//! their length, so newer servers do not break older readers. Reference:
//! <https://dev.mysql.com/doc/dev/mysql-server/latest/classmysql_1_1binlog_1_1event_1_1Table__map__event.html>

use crate::binlog::cursor::Cursor;
use crate::binlog::{BinlogError, FormatDescription, event_type};

const WHAT: &str = "TABLE_MAP event";

/// Column type codes as the binlog writes them.
pub mod type_code {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const TYPED_ARRAY: u8 = 20;
    pub const VECTOR: u8 = 242;
    pub const INVALID: u8 = 243;
    pub const BOOL: u8 = 244;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

use type_code as t;

/// One column as the TABLE_MAP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapColumn {
    /// Type code; for STRING the *real* type (STRING, ENUM or SET) decoded from the metadata.
    pub type_code: u8,
    /// Type metadata (precision/scale, max length, length-of-length, fsp …), decoded per type.
    pub meta: u16,
    pub nullable: bool,
    pub name: Option<String>,
    /// Some for numeric columns when the signedness metadata is present.
    pub unsigned: Option<bool>,
    /// Collation id for character, ENUM and SET columns, when present.
    pub collation: Option<u16>,
    /// ENUM or SET labels, raw bytes in the column's charset.
    pub labels: Option<Vec<Vec<u8>>>,
    /// Geometry subtype, when present.
    pub geometry_type: Option<u32>,
    /// False for invisible columns (MySQL 8.0.23+), when the metadata says so.
    pub visible: bool,
}

/// A parsed TABLE_MAP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMap {
    pub table_id: u64,
    pub db: String,
    pub table: String,
    pub columns: Vec<MapColumn>,
    /// Primary key column indexes, when the metadata has them (`binlog_row_metadata=FULL`).
    pub primary_key: Option<Vec<usize>>,
    /// Whether column names were present: true only with `binlog_row_metadata=FULL`.
    pub has_full_metadata: bool,
}

/// Reads the 6-byte (or, in old formats, 4-byte) table id that starts TABLE_MAP and rows events.
pub fn read_table_id(c: &mut Cursor<'_>, fde: &FormatDescription, event_type: u8) -> Result<u64, BinlogError> {
    if fde.post_header_len(event_type) == Some(6) { Ok(u64::from(c.u32()?)) } else { c.u48() }
}

/// Columns that get a bit in the signedness bitmap. YEAR is one of them (MySQL's
/// `is_numeric_type`); the matrix test shows the bit of a column after a YEAR otherwise shifts.
fn is_numeric(code: u8) -> bool {
    matches!(
        code,
        t::TINY
            | t::SHORT
            | t::INT24
            | t::LONG
            | t::LONGLONG
            | t::NEWDECIMAL
            | t::DECIMAL
            | t::FLOAT
            | t::DOUBLE
            | t::YEAR
    )
}

/// Columns that get charset metadata. MySQL 9 counts VECTOR among them (binary charset); the
/// golden file vector.binlog shows it.
fn is_character(code: u8) -> bool {
    matches!(code, t::STRING | t::VAR_STRING | t::VARCHAR | t::BLOB | t::VECTOR)
}

/// Parses a TABLE_MAP body.
pub fn parse(body: &[u8], fde: &FormatDescription) -> Result<TableMap, BinlogError> {
    let mut c = Cursor::new(body, WHAT);
    let table_id = read_table_id(&mut c, fde, event_type::TABLE_MAP)?;
    c.skip(2)?; // flags
    let db_len = usize::from(c.u8()?);
    let db = utf8(c.bytes(db_len)?, "database name")?;
    c.skip(1)?;
    let table_len = usize::from(c.u8()?);
    let table = utf8(c.bytes(table_len)?, "table name")?;
    c.skip(1)?;
    let count = c.lenenc_len()?;
    let types = c.bytes(count)?;
    let meta_block = c.lenenc_bytes()?;
    let nulls = c.bytes(count.div_ceil(8))?;
    let mut meta = Cursor::new(meta_block, WHAT);
    let mut columns = Vec::with_capacity(count);
    for (i, &code) in types.iter().enumerate() {
        let (type_code, m) = column_meta(code, &mut meta)?;
        columns.push(MapColumn {
            type_code,
            meta: m,
            nullable: nulls[i / 8] & (1 << (i % 8)) != 0,
            name: None,
            unsigned: None,
            collation: None,
            labels: None,
            geometry_type: None,
            visible: true,
        });
    }
    let mut map = TableMap { table_id, db, table, columns, primary_key: None, has_full_metadata: false };
    optional_metadata(&mut map, c.take_rest())?;
    Ok(map)
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, BinlogError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| BinlogError::malformed(WHAT, format!("{what} is not UTF-8")))
}

/// Reads one column's metadata; returns the real type code and the metadata value.
fn column_meta(code: u8, m: &mut Cursor<'_>) -> Result<(u8, u16), BinlogError> {
    Ok(match code {
        t::FLOAT
        | t::DOUBLE
        | t::BLOB
        | t::GEOMETRY
        | t::JSON
        | t::VECTOR
        | t::TIMESTAMP2
        | t::DATETIME2
        | t::TIME2 => (code, u16::from(m.u8()?)),
        // These types also use one byte in MariaDB's compressed-column variants.
        t::TINY_BLOB | t::MEDIUM_BLOB | t::LONG_BLOB => (code, u16::from(m.u8()?)),
        t::VARCHAR | t::VAR_STRING | t::BIT | t::ENUM | t::SET => (code, m.u16()?),
        // Precision and scale, big-endian-ish: first byte precision, second scale.
        t::NEWDECIMAL => {
            let precision = m.u8()?;
            let scale = m.u8()?;
            (code, u16::from(precision) << 8 | u16::from(scale))
        }
        t::STRING => {
            let b0 = m.u8()?;
            let b1 = m.u8()?;
            // CHAR longer than 255 bytes keeps two extra length bits in the type byte.
            if b0 & 0x30 != 0x30 {
                let len = u16::from(b1) | (u16::from((b0 & 0x30) ^ 0x30) << 4);
                (b0 | 0x30, len)
            } else {
                (b0, u16::from(b1))
            }
        }
        _ => (code, 0),
    })
}

/// Optional metadata field types.
mod field {
    pub const SIGNEDNESS: u8 = 1;
    pub const DEFAULT_CHARSET: u8 = 2;
    pub const COLUMN_CHARSET: u8 = 3;
    pub const COLUMN_NAME: u8 = 4;
    pub const SET_STR_VALUE: u8 = 5;
    pub const ENUM_STR_VALUE: u8 = 6;
    pub const GEOMETRY_TYPE: u8 = 7;
    pub const SIMPLE_PRIMARY_KEY: u8 = 8;
    pub const PRIMARY_KEY_WITH_PREFIX: u8 = 9;
    pub const ENUM_AND_SET_DEFAULT_CHARSET: u8 = 10;
    pub const ENUM_AND_SET_COLUMN_CHARSET: u8 = 11;
    pub const COLUMN_VISIBILITY: u8 = 12;
}

fn optional_metadata(map: &mut TableMap, mut rest: &[u8]) -> Result<(), BinlogError> {
    while !rest.is_empty() {
        let mut c = Cursor::new(rest, WHAT);
        let kind = c.u8()?;
        let value = c.lenenc_bytes()?;
        rest = c.rest();
        let mut v = Cursor::new(value, WHAT);
        let cols = &mut map.columns;
        match kind {
            field::SIGNEDNESS => {
                for (n, col) in cols.iter_mut().filter(|c| is_numeric(c.type_code)).enumerate() {
                    let byte =
                        *value.get(n / 8).ok_or_else(|| BinlogError::malformed(WHAT, "signedness bitmap too short"))?;
                    col.unsigned = Some(byte & (0x80 >> (n % 8)) != 0);
                }
            }
            field::DEFAULT_CHARSET => default_charset(&mut v, cols, is_character)?,
            field::ENUM_AND_SET_DEFAULT_CHARSET => default_charset(&mut v, cols, is_enum_or_set)?,
            field::COLUMN_CHARSET => column_charset(&mut v, cols, is_character)?,
            field::ENUM_AND_SET_COLUMN_CHARSET => column_charset(&mut v, cols, is_enum_or_set)?,
            field::COLUMN_NAME => {
                for col in cols.iter_mut() {
                    col.name = Some(utf8(v.lenenc_bytes()?, "column name")?);
                }
                map.has_full_metadata = true;
            }
            field::SET_STR_VALUE => labels(&mut v, cols, t::SET)?,
            field::ENUM_STR_VALUE => labels(&mut v, cols, t::ENUM)?,
            field::GEOMETRY_TYPE => {
                for col in cols.iter_mut().filter(|c| c.type_code == t::GEOMETRY) {
                    col.geometry_type = Some(v.lenenc()? as u32);
                }
            }
            field::SIMPLE_PRIMARY_KEY => {
                let mut pk = Vec::new();
                while !v.is_empty() {
                    pk.push(column_index(&mut v, cols.len())?);
                }
                map.primary_key = Some(pk);
            }
            field::PRIMARY_KEY_WITH_PREFIX => {
                let mut pk = Vec::new();
                while !v.is_empty() {
                    pk.push(column_index(&mut v, cols.len())?);
                    v.lenenc()?; // prefix length: the key still names the column
                }
                map.primary_key = Some(pk);
            }
            field::COLUMN_VISIBILITY => {
                for (n, col) in cols.iter_mut().enumerate() {
                    let byte =
                        *value.get(n / 8).ok_or_else(|| BinlogError::malformed(WHAT, "visibility bitmap too short"))?;
                    col.visible = byte & (0x80 >> (n % 8)) != 0;
                }
            }
            _ => {} // newer field types: skipped by their length
        }
    }
    Ok(())
}

fn is_enum_or_set(code: u8) -> bool {
    matches!(code, t::ENUM | t::SET)
}

fn column_index(v: &mut Cursor<'_>, count: usize) -> Result<usize, BinlogError> {
    let i = v.lenenc()?;
    usize::try_from(i)
        .ok()
        .filter(|&i| i < count)
        .ok_or_else(|| BinlogError::malformed(WHAT, format!("column index {i} out of range")))
}

fn collation(v: &mut Cursor<'_>) -> Result<u16, BinlogError> {
    u16::try_from(v.lenenc()?).map_err(|_| BinlogError::malformed(WHAT, "collation id out of range"))
}

/// DEFAULT_CHARSET: the default collation, then (index among matching columns, collation) pairs.
fn default_charset(v: &mut Cursor<'_>, cols: &mut [MapColumn], kind: fn(u8) -> bool) -> Result<(), BinlogError> {
    let default = collation(v)?;
    let mut matching: Vec<&mut MapColumn> = cols.iter_mut().filter(|c| kind(c.type_code)).collect();
    for col in matching.iter_mut() {
        col.collation = Some(default);
    }
    while !v.is_empty() {
        let i = v.lenenc()? as usize;
        let coll = collation(v)?;
        let col = matching
            .get_mut(i)
            .ok_or_else(|| BinlogError::malformed(WHAT, format!("charset for column {i} out of range")))?;
        col.collation = Some(coll);
    }
    Ok(())
}

fn column_charset(v: &mut Cursor<'_>, cols: &mut [MapColumn], kind: fn(u8) -> bool) -> Result<(), BinlogError> {
    for col in cols.iter_mut().filter(|c| kind(c.type_code)) {
        col.collation = Some(collation(v)?);
    }
    Ok(())
}

fn labels(v: &mut Cursor<'_>, cols: &mut [MapColumn], code: u8) -> Result<(), BinlogError> {
    for col in cols.iter_mut().filter(|c| c.type_code == code) {
        let n = v.lenenc_len()?;
        col.labels = Some((0..n).map(|_| v.lenenc_bytes().map(<[u8]>::to_vec)).collect::<Result<_, _>>()?);
    }
    Ok(())
}
