//! Row changes: what the decoder produces and the encoder consumes. Pure data, no IO.
//!
//! A [`RowChange`] carries the table's schema *as of the event* (an `Arc` shared by every row
//! decoded against the same TABLE_MAP) and typed [`Value`]s in column order. UPDATE carries
//! before and after images, INSERT only after, DELETE only before.

use crate::schema::TableSchema;
use std::sync::Arc;

/// Why a value can be missing from a row image, and the fixes: the message of a table stopped
/// on one.
pub const ABSENT: &str = "value missing from the row image: binlog_row_image is not FULL, or the server leaves \
                          this column out of it (a MariaDB 11 release other than 11.8 with a generated column?) \
                          — fix: SET GLOBAL binlog_row_image = 'FULL', or leave the column out with columns.exclude";

/// A column value as MySQL/MariaDB stored it, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// Not in the row image: the server's binlog_row_image is not FULL, or the server leaves the
    /// column out (see [`ABSENT`]).
    Absent,
    /// Signed integers of every width.
    Int(i64),
    /// Unsigned integers of every width (BIGINT UNSIGNED up to 2^64-1).
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact decimal text: optional `-`, integer digits, and exactly `scale` fraction digits.
    Decimal(String),
    /// BIT(n): the bits, right-aligned.
    Bit {
        value: u64,
        width: u16,
    },
    /// YEAR; 0 is the zero year `0000`.
    Year(u16),
    /// DATE; zero parts allowed (`0000-00-00`, `2020-00-00`).
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// DATETIME(n), no time zone.
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// TIMESTAMP(n): seconds since the epoch, UTC; 0 with 0 µs is the zero timestamp.
    Timestamp {
        seconds: u32,
        micros: u32,
    },
    /// TIME(n): signed microseconds (−838:59:59.999999 … 838:59:59.999999).
    Time {
        micros: i64,
    },
    /// Character data, transcoded to UTF-8.
    Text(String),
    /// Binary data; BINARY(n) padded to n bytes.
    Bytes(Vec<u8>),
    /// ENUM label; an invalid value (index 0) is the empty string, as MySQL shows it.
    Enum(String),
    /// SET members in definition order.
    Set(Vec<String>),
    /// JSON as text (MySQL's binary JSON decoded; MariaDB's LONGTEXT as stored).
    Json(String),
    /// Spatial value: SRID and WKB.
    Geometry {
        srid: u32,
        wkb: Vec<u8>,
    },
    /// MySQL 9 VECTOR.
    Vector(Vec<f32>),
}

/// The kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// A row read by a snapshot (Debezium's `r`): the row's state at the record's position.
    Read,
    /// The table was truncated (Debezium's `t`): no key, no row images.
    Truncate,
}

/// One row changed by one rows event.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub op: Op,
    pub table: Arc<TableSchema>,
    pub before: Option<Vec<Value>>,
    pub after: Option<Vec<Value>>,
    /// Where the change is in the source's binlog (default for snapshot rows).
    pub at: RowAt,
}

/// Where a streamed row change was read: the `file`, `pos`, `row`, `server_id` and `thread` of
/// the record's `source` block, as Debezium fills them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowAt {
    /// The binlog file (`None` before the stream named one).
    pub file: Option<Arc<str>>,
    /// Start of the rows event in that file (0 inside a compressed transaction payload: the
    /// payload's own position).
    pub pos: u64,
    /// Index of the row within its rows event.
    pub row: u32,
    /// The server that wrote the event (the origin, not the server rowferry reads from).
    pub server_id: u32,
    /// The thread of the transaction's `BEGIN` (MySQL; `None` when the binlog does not say).
    pub thread: Option<u32>,
}

impl Value {
    /// About how many bytes the value holds (inline and on the heap), for memory bounds.
    pub fn approx_bytes(&self) -> usize {
        let heap = match self {
            Value::Decimal(s) | Value::Text(s) | Value::Enum(s) | Value::Json(s) => s.len(),
            Value::Bytes(b) | Value::Geometry { wkb: b, .. } => b.len(),
            Value::Set(members) => members.iter().map(|m| m.len() + 24).sum(),
            Value::Vector(v) => v.len() * 4,
            _ => 0,
        };
        std::mem::size_of::<Value>() + heap
    }
}

impl RowChange {
    /// About how many bytes the change holds, for memory bounds.
    pub fn approx_bytes(&self) -> usize {
        let image = |i: &Option<Vec<Value>>| i.as_ref().map_or(0, |v| v.iter().map(Value::approx_bytes).sum::<usize>());
        64 + image(&self.before) + image(&self.after)
    }
}

/// A table's identity: its database and its name, compared as the pair (never as a formatted
/// `db.table`, which two tables share when a name contains a dot: `a.b`+`c` and `a`+`b.c`).
/// Cheap to clone (one `Arc`); the dotted form is kept for messages, metrics labels and the
/// snapshot progress' keys.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TableId(Arc<TableName>);

#[derive(PartialEq, Eq, Hash)]
struct TableName {
    db: String,
    table: String,
    dotted: Arc<str>,
}

impl TableId {
    pub fn new(db: &str, table: &str) -> TableId {
        let dotted = format!("{db}.{table}").into();
        TableId(Arc::new(TableName { db: db.to_string(), table: table.to_string(), dotted }))
    }

    /// The table a schema describes.
    pub fn of(schema: &TableSchema) -> TableId {
        TableId::new(&schema.db, &schema.table)
    }

    pub fn db(&self) -> &str {
        &self.0.db
    }

    pub fn table(&self) -> &str {
        &self.0.table
    }

    /// `db.table`, for people and labels (not unique: see the type's docs).
    pub fn dotted(&self) -> &str {
        &self.0.dotted
    }

    /// The same, shared.
    pub fn dotted_arc(&self) -> Arc<str> {
        Arc::clone(&self.0.dotted)
    }
}

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.dotted)
    }
}

impl std::fmt::Debug for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableId({:?}, {:?})", self.0.db, self.0.table)
    }
}

#[cfg(test)]
mod table_id_tests {
    use super::TableId;

    #[test]
    fn tables_whose_dotted_names_agree_are_still_two() {
        let (a, b) = (TableId::new("a.b", "c"), TableId::new("a", "b.c"));
        assert_eq!(a.dotted(), b.dotted());
        assert_ne!(a, b);
        assert_eq!(a, TableId::new("a.b", "c"));
        assert_eq!((a.db(), a.table(), a.to_string(), a.dotted()), ("a.b", "c", "a.b.c".to_string(), "a.b.c"));
    }
}
