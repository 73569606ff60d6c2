//! WRITE/UPDATE/DELETE rows events (v1 23–25, v2 30–32, MariaDB compressed 166–171).
//!
//! Layout: table id and flags; v2 adds variable "extra data"; then the column count, a bitmap of
//! the columns present in the before image (and, for UPDATE, one for the after image), then the
//! rows: per image a NULL bitmap over the present columns and the non-NULL values. MariaDB's
//! compressed variants zlib-compress just the rows part.

use super::{DecodeError, value};
use crate::binlog::cursor::Cursor;
use crate::binlog::{BinlogError, FormatDescription, event_type as et, payload};
use crate::change::{Op, RowChange, Value};
use crate::schema::TableSchema;
use crate::schema::table_map::read_table_id;
use std::borrow::Cow;
use std::sync::Arc;

const WHAT: &str = "rows event";

/// A rows event, framed but not yet decoded.
#[derive(Debug, Clone)]
pub struct RowsEvent<'a> {
    pub table_id: u64,
    pub op: Op,
    /// Last event of its statement (STMT_END_F).
    pub end_of_statement: bool,
    column_count: usize,
    present: &'a [u8],
    present_after: &'a [u8],
    rows: Cow<'a, [u8]>,
}

fn kind(event_type: u8) -> Option<(Op, bool, bool)> {
    // (op, v2 layout, compressed)
    Some(match event_type {
        et::WRITE_ROWS_V1 => (Op::Insert, false, false),
        et::UPDATE_ROWS_V1 => (Op::Update, false, false),
        et::DELETE_ROWS_V1 => (Op::Delete, false, false),
        et::WRITE_ROWS_V2 => (Op::Insert, true, false),
        et::UPDATE_ROWS_V2 => (Op::Update, true, false),
        et::DELETE_ROWS_V2 => (Op::Delete, true, false),
        et::MARIADB_WRITE_ROWS_COMPRESSED_V1 => (Op::Insert, false, true),
        et::MARIADB_UPDATE_ROWS_COMPRESSED_V1 => (Op::Update, false, true),
        et::MARIADB_DELETE_ROWS_COMPRESSED_V1 => (Op::Delete, false, true),
        et::MARIADB_WRITE_ROWS_COMPRESSED => (Op::Insert, true, true),
        et::MARIADB_UPDATE_ROWS_COMPRESSED => (Op::Update, true, true),
        et::MARIADB_DELETE_ROWS_COMPRESSED => (Op::Delete, true, true),
        _ => return None,
    })
}

/// Whether `event_type` is a rows event this module decodes.
pub fn is_rows_event(event_type: u8) -> bool {
    kind(event_type).is_some()
}

/// Frames a rows event body.
pub fn parse_rows<'a>(event_type: u8, body: &'a [u8], fde: &FormatDescription) -> Result<RowsEvent<'a>, DecodeError> {
    let (op, v2, compressed) = kind(event_type)
        .ok_or_else(|| BinlogError::malformed(WHAT, format!("type {event_type} is not a rows event")))?;
    let mut c = Cursor::new(body, WHAT);
    let table_id = read_table_id(&mut c, fde, event_type)?;
    let flags = c.u16()?;
    if v2 {
        let extra = usize::from(c.u16()?);
        c.skip(extra.checked_sub(2).ok_or_else(|| BinlogError::malformed(WHAT, "extra data length below 2"))?)?;
    }
    let column_count = usize::try_from(c.lenenc()?)
        .ok()
        .filter(|&n| n <= 4096)
        .ok_or_else(|| BinlogError::malformed(WHAT, "more than 4096 columns"))?;
    let bitmap = column_count.div_ceil(8);
    let present = c.bytes(bitmap)?;
    let present_after = if op == Op::Update { c.bytes(bitmap)? } else { present };
    let rest = c.take_rest();
    let rows = if compressed { Cow::Owned(payload::mariadb_uncompress(rest, WHAT)?) } else { Cow::Borrowed(rest) };
    Ok(RowsEvent { table_id, op, end_of_statement: flags & 1 != 0, column_count, present, present_after, rows })
}

impl<'a> RowsEvent<'a> {
    /// Iterates the rows, decoded with `schema` (the TABLE_MAP of `table_id`).
    pub fn rows<'s>(&'s self, schema: &Arc<TableSchema>) -> Result<RowsIter<'s>, DecodeError> {
        if schema.columns.len() != self.column_count {
            return Err(DecodeError::ColumnCount {
                db: schema.db.clone(),
                table: schema.table.clone(),
                expected: schema.columns.len(),
                found: self.column_count,
            });
        }
        Ok(RowsIter { event: self, schema: Arc::clone(schema), cursor: Cursor::new(&self.rows, WHAT) })
    }
}

/// Decodes rows one at a time (a rows event holds up to `binlog_row_event_max_size` bytes).
#[derive(Debug)]
pub struct RowsIter<'s> {
    event: &'s RowsEvent<'s>,
    schema: Arc<TableSchema>,
    cursor: Cursor<'s>,
}

impl Iterator for RowsIter<'_> {
    type Item = Result<RowChange, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.cursor.is_empty() {
            return None;
        }
        let result = self.next_row();
        if result.is_err() {
            // Stop after an error: the position inside the event is no longer known.
            self.cursor = Cursor::new(&[], WHAT);
        }
        Some(result)
    }
}

impl RowsIter<'_> {
    fn next_row(&mut self) -> Result<RowChange, DecodeError> {
        let e = self.event;
        let start = self.cursor.position();
        let (before, after) = match e.op {
            // Rows events never carry snapshot reads or truncates.
            Op::Insert | Op::Read | Op::Truncate => (None, Some(self.image(e.present)?)),
            Op::Delete => (Some(self.image(e.present)?), None),
            Op::Update => (Some(self.image(e.present)?), Some(self.image(e.present_after)?)),
        };
        // A row that takes no bytes (no column present) would repeat forever on corrupt input.
        if self.cursor.position() == start {
            return Err(BinlogError::malformed(WHAT, "a row image with no columns").into());
        }
        Ok(RowChange { op: e.op, table: Arc::clone(&self.schema), before, after, at: Default::default() })
    }

    /// One row image: NULL bitmap over the present columns, then their non-NULL values.
    fn image(&mut self, present: &[u8]) -> Result<Vec<Value>, DecodeError> {
        let is_set = |bits: &[u8], i: usize| bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
        let present_count = (0..self.schema.columns.len()).filter(|&i| is_set(present, i)).count();
        let nulls = self.cursor.bytes(present_count.div_ceil(8))?;
        let mut values = Vec::with_capacity(self.schema.columns.len());
        let mut n = 0;
        for (i, column) in self.schema.columns.iter().enumerate() {
            if !is_set(present, i) {
                values.push(Value::Absent);
                continue;
            }
            let null = is_set(nulls, n);
            n += 1;
            if null {
                values.push(Value::Null);
                continue;
            }
            let v = value::decode(&column.ty, &mut self.cursor).map_err(|e| DecodeError::Value {
                db: self.schema.db.clone(),
                table: self.schema.table.clone(),
                column: column.name.clone(),
                problem: e.to_string(),
            })?;
            values.push(v);
        }
        Ok(values)
    }
}
