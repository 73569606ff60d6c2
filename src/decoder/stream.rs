//! From raw events to decoded items: the part of the read side that needs no IO.
//!
//! [`StreamDecoder::push`] takes one event's bytes as the server sent them (header, body,
//! checksum), frames it with the current FORMAT_DESCRIPTION, keeps the schema cache, and calls
//! back with zero or more [`Item`]s: positions (GTIDs, rotations, heartbeats), transaction
//! boundaries, DDL and decoded rows. A MySQL TRANSACTION_PAYLOAD is opened and its embedded
//! events are pushed through the same code, one at a time. Event types that carry no row data
//! for rowferry are skipped *by type*; an unknown type that the server did not mark ignorable is an
//! error — nothing is dropped silently.
//!
//! Tables the connector does not capture ([`StreamDecoder::with_tables`]) are not decoded at all:
//! their TABLE_MAP is parsed for its name only, their rows are skipped, so a column rowferry cannot
//! decode in a table nobody asked for stops nothing. A captured table rowferry cannot decode (its
//! schema cannot be built, or one of its row values cannot be read) becomes one
//! [`Item::TableError`] per rows event instead of an error of the whole stream: that table stops,
//! the others go on.

use super::{DecodeError, parse_rows};
use crate::binlog::events::{self, MySqlGtidEvent, XaPrepare};
use crate::binlog::payload::{PayloadEvents, payload_header};
use crate::binlog::{BinlogError, EventHeader, EventReader, event_type as et};
use crate::change::{RowAt, RowChange};
use crate::config::TableFilter;
use crate::position::{MariaDbGtid, MySqlGtid};
use crate::schema::table_map;
use crate::schema::{CollationMap, Mapped, SchemaCache, SchemaOptions, TableExtras, TableSchema};
use std::collections::HashMap;
use std::sync::Arc;

/// Something the stream said.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A MySQL transaction starts (GTID event); `None` for an anonymous transaction.
    MySqlGtid { gtid: Option<MySqlGtid>, commit_us: Option<u64>, header: EventHeader },
    /// A MariaDB event group starts; `standalone` groups have no COMMIT (one DDL statement).
    MariaDbGtid { gtid: MariaDbGtid, standalone: bool, header: EventHeader },
    /// MariaDB's binlog state at the start of a file.
    MariaDbGtidList(Vec<MariaDbGtid>),
    /// `BEGIN`.
    Begin,
    /// XID or `COMMIT`: the transaction is durable on the server.
    Commit { header: EventHeader },
    /// XA_PREPARE: the end of an XA transaction's group (committed if `one_phase`, else prepared).
    XaPrepare(XaPrepare),
    /// `ROLLBACK`: the group's changes did not happen.
    Rollback,
    /// A statement other than BEGIN/COMMIT/ROLLBACK: DDL (CREATE, ALTER, DROP, RENAME, ...).
    Statement { db: String, sql: String, header: EventHeader },
    /// A decoded row change.
    Row(RowChange),
    /// Rows of a captured table that cannot be decoded (see the module docs).
    TableError { db: String, table: String, error: String },
    /// The stream continues in `file` at `position`.
    Rotate { file: String, position: u64 },
    /// The server is alive and idle.
    Heartbeat { header: EventHeader },
}

/// Stateful decoder of one event stream; see the module docs.
#[derive(Debug)]
pub struct StreamDecoder {
    reader: EventReader,
    schemas: SchemaCache,
    collations: CollationMap,
    options: SchemaOptions,
    extras: HashMap<(String, String), TableExtras>,
    /// The captured tables (`None`: every table).
    tables: Option<TableFilter>,
    /// Reused buffer for events embedded in a TRANSACTION_PAYLOAD.
    embedded: Vec<u8>,
    /// Where rows are read, for [`RowAt`]: the binlog file (from ROTATE), the thread of the
    /// open transaction's BEGIN, and the position of the TRANSACTION_PAYLOAD being opened (its
    /// embedded events have no position of their own).
    file: Option<Arc<str>>,
    thread: Option<u32>,
    payload_pos: u64,
    /// A TRANSACTION_PAYLOAD whose embedded events are not all decoded yet ([`StreamDecoder::start`]).
    pending: Option<PayloadEvents<'static>>,
}

/// Embedded events of a TRANSACTION_PAYLOAD decoded per [`StreamDecoder::start`] or
/// [`StreamDecoder::resume`] call: the caller hands their items on between calls, so a large
/// compressed transaction never sits decoded in memory as a whole.
pub const PAYLOAD_BATCH: usize = 256;

impl StreamDecoder {
    pub fn new(collations: CollationMap, options: SchemaOptions) -> Self {
        StreamDecoder {
            reader: EventReader::new(),
            schemas: SchemaCache::new(),
            collations,
            options,
            extras: HashMap::new(),
            tables: None,
            embedded: Vec::new(),
            file: None,
            thread: None,
            payload_pos: 0,
            pending: None,
        }
    }

    /// Decodes only the tables `tables` captures (see the module docs).
    pub fn with_tables(mut self, tables: TableFilter) -> Self {
        self.tables = Some(tables);
        self
    }

    /// Replaces what information_schema knows that the binlog does not, for every table;
    /// schemas built from later TABLE_MAPs use it.
    pub fn set_all_extras(&mut self, extras: HashMap<(String, String), TableExtras>) {
        if extras != self.extras {
            self.extras = extras;
            self.schemas.clear();
        }
    }

    /// Decodes one event, calling `out` for each item (all of a TRANSACTION_PAYLOAD's).
    pub fn push(&mut self, bytes: &[u8], out: &mut dyn FnMut(Item)) -> Result<(), DecodeError> {
        let mut more = self.start(bytes, out)?;
        while more {
            more = self.resume(out)?;
        }
        Ok(())
    }

    /// Decodes one event, calling `out` for each item — of a TRANSACTION_PAYLOAD only its first
    /// [`PAYLOAD_BATCH`] embedded events: `true` means more follow through
    /// [`StreamDecoder::resume`], which must be called until it returns `false` before the next
    /// event is started.
    pub fn start(&mut self, bytes: &[u8], out: &mut dyn FnMut(Item)) -> Result<bool, DecodeError> {
        if self.pending.is_some() {
            return Err(
                BinlogError::malformed("TRANSACTION_PAYLOAD event", "a new event before the last was decoded").into()
            );
        }
        let event = self.reader.read(bytes)?;
        if event.header.event_type == et::TRANSACTION_PAYLOAD {
            self.payload_pos = u64::from(event.header.log_pos.saturating_sub(event.header.event_size));
            let header = payload_header(event.body)?;
            self.pending = Some(PayloadEvents::owned(&header)?);
            return self.resume(out);
        }
        self.dispatch(event.header, event.body, out)?;
        Ok(false)
    }

    /// The next [`PAYLOAD_BATCH`] embedded events of the open TRANSACTION_PAYLOAD; `false` when
    /// it is done (or none is open).
    pub fn resume(&mut self, out: &mut dyn FnMut(Item)) -> Result<bool, DecodeError> {
        let Some(mut inner) = self.pending.take() else { return Ok(false) };
        let mut reader = self.reader.embedded();
        let mut buf = std::mem::take(&mut self.embedded);
        let result = (|| {
            for _ in 0..PAYLOAD_BATCH {
                if !inner.next_into(&mut buf)? {
                    return Ok(false);
                }
                let event = reader.read(&buf)?;
                if event.header.event_type == et::TRANSACTION_PAYLOAD {
                    return Err(BinlogError::malformed("TRANSACTION_PAYLOAD event", "nested payload").into());
                }
                self.dispatch(event.header, event.body, out)?;
            }
            Ok(true)
        })();
        self.embedded = buf;
        // An error ends the payload: the reader reconnects and decodes it again from its start.
        if let Ok(true) = result {
            self.pending = Some(inner);
        }
        result
    }

    fn dispatch(&mut self, header: EventHeader, body: &[u8], out: &mut dyn FnMut(Item)) -> Result<(), DecodeError> {
        let fde = self.reader.fde();
        match header.event_type {
            et::GTID | et::ANONYMOUS_GTID | et::GTID_TAGGED => {
                let MySqlGtidEvent { gtid, immediate_commit_us } = events::mysql_gtid(header.event_type, body)?;
                self.thread = None;
                out(Item::MySqlGtid { gtid, commit_us: immediate_commit_us, header });
            }
            et::MARIADB_GTID => {
                let g = events::mariadb_gtid(&header, body)?;
                self.thread = None;
                out(Item::MariaDbGtid { gtid: g.gtid, standalone: g.standalone, header });
            }
            et::MARIADB_GTID_LIST => out(Item::MariaDbGtidList(events::mariadb_gtid_list(body)?)),
            et::XA_PREPARE => out(Item::XaPrepare(events::xa_prepare(body)?)),
            et::XID => {
                events::xid(body)?;
                out(Item::Commit { header });
            }
            et::QUERY | et::MARIADB_QUERY_COMPRESSED => {
                let q = events::query(header.event_type, body, fde)?;
                let sql = q.sql.trim();
                if sql.eq_ignore_ascii_case("BEGIN") || sql.eq_ignore_ascii_case("START TRANSACTION") {
                    self.thread = Some(q.thread_id);
                    out(Item::Begin);
                } else if sql.eq_ignore_ascii_case("COMMIT") {
                    out(Item::Commit { header });
                } else if sql.eq_ignore_ascii_case("ROLLBACK") {
                    out(Item::Rollback);
                } else {
                    out(Item::Statement { db: q.db.into_owned(), sql: sql.to_string(), header });
                }
            }
            et::ROTATE => {
                let r = events::rotate(body)?;
                self.file = Some(Arc::from(r.next_file.as_str()));
                out(Item::Rotate { file: r.next_file, position: r.position });
            }
            et::HEARTBEAT | et::HEARTBEAT_V2 => out(Item::Heartbeat { header }),
            et::TABLE_MAP => self.table_map(body)?,
            t if super::is_rows_event(t) => {
                let rows = parse_rows(t, body, fde)?;
                match self.schemas.get(rows.table_id).ok_or(DecodeError::UnknownTable { table_id: rows.table_id })? {
                    Mapped::Skipped => {}
                    Mapped::Broken { db, table, error } => {
                        out(Item::TableError { db: db.clone(), table: table.clone(), error: error.clone() });
                    }
                    Mapped::Table(schema) => {
                        let schema = Arc::clone(schema);
                        let failed = |e: DecodeError| Item::TableError {
                            db: schema.db.clone(),
                            table: schema.table.clone(),
                            error: e.to_string(),
                        };
                        // A row that cannot be read ends the event (the next row's offset is
                        // not known): the table stops, the stream goes on.
                        let pos = match header.log_pos.checked_sub(header.event_size) {
                            Some(start) if header.log_pos != 0 => u64::from(start),
                            _ => self.payload_pos,
                        };
                        match rows.rows(&schema) {
                            Ok(decoded) => {
                                for (i, row) in decoded.enumerate() {
                                    match row {
                                        Ok(mut row) => {
                                            row.at = RowAt {
                                                file: self.file.clone(),
                                                pos,
                                                row: i as u32,
                                                server_id: header.server_id,
                                                thread: self.thread,
                                            };
                                            out(Item::Row(row))
                                        }
                                        Err(e) => {
                                            out(failed(e));
                                            break;
                                        }
                                    }
                                }
                            }
                            Err(e) => out(failed(e)),
                        }
                    }
                }
            }
            et::PARTIAL_UPDATE_ROWS => {
                return Err(BinlogError::Unsupported(
                    "PARTIAL_UPDATE_ROWS events (binlog_row_value_options=PARTIAL_JSON); fix: SET PERSIST binlog_row_value_options = ''"
                        .into(),
                )
                .into());
            }
            // No row data for rowferry: file/stream bookkeeping, statement-based helpers (with
            // binlog_format=ROW they only accompany DDL), annotations, group-replication views.
            et::FORMAT_DESCRIPTION
            | et::STOP
            | et::PREVIOUS_GTIDS
            | et::ROWS_QUERY
            | et::IGNORABLE
            | et::INTVAR
            | et::RAND
            | et::USER_VAR
            | et::TRANSACTION_CONTEXT
            | et::VIEW_CHANGE
            | et::MARIADB_ANNOTATE_ROWS
            | et::MARIADB_BINLOG_CHECKPOINT
            | et::MARIADB_START_ENCRYPTION => {
                if header.event_type == et::MARIADB_START_ENCRYPTION {
                    return Err(BinlogError::Unsupported("encrypted MariaDB binlogs (encrypt_binlog=ON)".into()).into());
                }
            }
            et::INCIDENT => {
                return Err(BinlogError::Unsupported(format!(
                    "the source wrote an INCIDENT event at position {}: it lost changes (e.g. a failed statement on a \
                     non-transactional table); rowferry cannot know which rows changed — re-snapshot the affected tables",
                    header.log_pos
                ))
                .into());
            }
            // The server marks events a reader may skip.
            _ if header.flags & 0x80 != 0 => {}
            6..=12 | 17 | 18 => {
                return Err(BinlogError::Unsupported(format!(
                    "LOAD DATA logged as a statement (event type {}) at position {}: rows are not in the binlog; \
                     rowferry needs binlog_format=ROW for every session",
                    header.event_type, header.log_pos
                ))
                .into());
            }
            20..=22 => {
                return Err(BinlogError::Unsupported("pre-GA rows events (MySQL 5.1 beta binlogs)".into()).into());
            }
            other => {
                return Err(BinlogError::Unsupported(format!(
                    "binlog event type {other} at position {}",
                    header.log_pos
                ))
                .into());
            }
        }
        Ok(())
    }

    fn table_map(&mut self, body: &[u8]) -> Result<(), DecodeError> {
        let fde = self.reader.fde();
        let mut c = crate::binlog::cursor::Cursor::new(body, "TABLE_MAP event");
        let table_id = table_map::read_table_id(&mut c, fde, et::TABLE_MAP)?;
        if self.schemas.cached(table_id, body).is_some() {
            return Ok(());
        }
        let map = table_map::parse(body, fde)?;
        if self.tables.as_ref().is_some_and(|t| !t.captures(&map.db, &map.table)) {
            self.schemas.insert(table_id, body, Mapped::Skipped);
            return Ok(());
        }
        let extras = self.extras.get(&(map.db.clone(), map.table.clone()));
        let mapped = match TableSchema::from_map(&map, &self.collations, extras, self.options) {
            Ok(schema) => Mapped::Table(Arc::new(schema)),
            Err(e) if e.class() == crate::error::ErrorClass::PerTable => {
                Mapped::Broken { db: map.db.clone(), table: map.table.clone(), error: e.to_string() }
            }
            Err(e) => return Err(e.into()),
        };
        self.schemas.insert(table_id, body, mapped);
        Ok(())
    }
}
