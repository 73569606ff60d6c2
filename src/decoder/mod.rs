//! Decoder stage: rows events → typed [`RowChange`](crate::change::RowChange)s, against the schema of their TABLE_MAP.
//!
//! The per-table work (types, signedness, charsets, labels) is done once, when the TABLE_MAP is
//! turned into a [`TableSchema`](crate::schema::TableSchema) whose column types are the decode plan; decoding a row is then
//! one pass over the columns with a `match` per value and no lookups. Known traps handled here
//! (INFRA.md): negative MEDIUMINT is sign-extended, YEAR 0 is 0000, TIMESTAMP stays UTC epoch
//! seconds, BINARY(n) is padded back to n bytes, ENUM/SET become labels, latin1 is transcoded
//! (as Windows-1252, which is what MySQL's latin1 is), MariaDB's compressed rows are inflated.
//!
//! Errors never panic: malformed bytes are [`DecodeError::Binlog`]; a value that does not fit its
//! column is [`DecodeError::Value`], naming table and column.

mod decimal;
mod json;
mod rows;
mod stream;
mod temporal;
mod value;

pub use rows::{RowsEvent, RowsIter, is_rows_event, parse_rows};
pub use stream::{Item, PAYLOAD_BATCH, StreamDecoder};

use crate::binlog::BinlogError;
use crate::error::ErrorClass;
use crate::schema::SchemaError;

/// Decoding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Binlog(#[from] BinlogError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("rows event for table id {table_id} without a preceding TABLE_MAP")]
    UnknownTable { table_id: u64 },
    #[error("table {db}.{table}: rows event has {found} columns, its TABLE_MAP {expected}")]
    ColumnCount { db: String, table: String, expected: usize, found: usize },
    #[error("table {db}.{table} column {column}: {problem}")]
    Value { db: String, table: String, column: String, problem: String },
}

impl DecodeError {
    pub fn class(&self) -> ErrorClass {
        match self {
            DecodeError::Binlog(e) => e.class(),
            DecodeError::Schema(e) => e.class(),
            DecodeError::UnknownTable { .. } | DecodeError::ColumnCount { .. } => ErrorClass::Fatal,
            DecodeError::Value { .. } => ErrorClass::PerTable,
        }
    }
}

/// Text decoding lives with the charsets (the schema needs it for ENUM/SET labels).
pub use crate::schema::charset::text;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Charset;

    #[test]
    fn latin1_is_windows_1252_and_invalid_text_is_an_error() {
        let latin1 = Charset::Encoded(encoding_rs::WINDOWS_1252);
        assert_eq!(text(b"caf\xe9 \x80", latin1).ok().as_deref(), Some("café €"));
        assert!(text(b"\xff\xfe", Charset::Utf8).is_err());
        assert_eq!(text(&[0, 0, 0x00, 0x41, 0, 1, 0xf6, 0x00], Charset::Utf32).ok().as_deref(), Some("A😀"));
    }
}
