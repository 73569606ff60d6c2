//! Table schemas as the binlog describes them, and the cache the decoder keeps.
//!
//! Invariant: rows are decoded with the table's shape *at the event* (DESIGN.md, invariant 3).
//! Every rows event is preceded in its transaction by the TABLE_MAP of its table, and with
//! `binlog_row_metadata=FULL` that TABLE_MAP carries names, signedness, charsets, ENUM/SET labels
//! and the primary key — so the schema comes from the stream itself, not from a DDL parser.
//! [`TableSchema::from_map`] turns a TABLE_MAP into a schema whose column types are the decode
//! plan (all per-column decisions made once); [`SchemaCache`] keeps them by table id and reuses the
//! plan when the same TABLE_MAP bytes come again (every transaction repeats them).
//!
//! The binlog lacks a few facts (MariaDB writes JSON columns as LONGTEXT); [`TableExtras`] carries
//! those from `information_schema`, refreshed by the reader when a DDL passes.

pub mod charset;
mod table;
pub mod table_map;

pub use charset::{Charset, CollationMap};
pub use table::{Column, ColumnType, Mapped, SchemaCache, SchemaError, SchemaOptions, TableExtras, TableSchema};
