//! The router: one transaction event in, the [`Step`]s that publish it out — which records, in
//! which order, under which transaction registration, and which tables stop. Pure: no IO, no
//! await, no clock. The delivery stage (`app::delivery`) carries the steps out, in order.
//!
//! Policy lives here:
//! - Only captured tables' rows become records. A *stopped* table's rows never do: each becomes a
//!   [`Step::Hold`] of its transaction, so the stored offset stays before the first one while the
//!   other tables keep streaming. A table stops on a decode error read from the stream
//!   ([`TxnEvent::TableError`]) or when delivery reports it cannot encode or publish its record
//!   ([`Router::stop`]).
//! - A primary-key change is a delete of the old key and a create of the new one (as Debezium
//!   writes it: a compacted topic must lose the old key); a delete is followed by a tombstone
//!   when `topics.tombstones` is on.
//! - Transaction metadata (`topics.transaction_metadata`): a BEGIN record before a transaction's
//!   first data record, an END record with the counts per table after its last; nothing for a
//!   transaction without data records. The `transaction` block of each record counts in order.
//! - A captured table's TRUNCATE becomes Debezium's op "t" record when `topics.truncate_records`
//!   is on and the table's shape is known (a row of it was seen since the start).
//! - XA: a prepared transaction is parked under its XID with its counts; its decision resumes it.
//! - Snapshot chunks join the stream only between transactions, when the merger
//!   (`snapshot::merge`) releases them; rows of a keyless table being copied are muted.
//!
//! Invariant: every step of a transaction comes between its [`Step::Begin`] (or
//! [`Step::Unpark`]) and its [`Step::End`], [`Step::Void`] or [`Step::Park`].

use crate::binlog::events::Xid;
use crate::change::{Op, RowAt, RowChange, TableId};
use crate::config::TableFilter;
use crate::encoder::datum::{SourceInfo, TxnInfo};
use crate::error::ErrorClass;
use crate::position::Gtid;
use crate::reader::TxnEvent;
use crate::schema::TableSchema;
use crate::snapshot::merge::{Chunk, Merger, Msg, Outcome, Ready};
use std::collections::HashMap;
use std::sync::Arc;

/// Table shapes the router remembers at most (see [`Router::table_of`]).
const MAX_SHAPES: usize = 4096;

/// Events out of order (a reader bug): the run stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("{0} outside a transaction")]
    OutsideTransaction(&'static str),
    #[error("XA transaction {0} resumed but never prepared")]
    NeverPrepared(String),
}

impl RouteError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

/// What the router needs of the settings.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub tables: TableFilter,
    pub transaction_metadata: bool,
    pub tombstones: bool,
    pub truncate_records: bool,
}

/// A source transaction as its records show it; shared by its records (one allocation per
/// transaction).
#[derive(Debug, Default)]
pub struct TxnContext {
    pub gtid: Option<Gtid>,
    /// The GTID as text (`""` without one).
    pub gtid_text: Arc<str>,
    /// The source commit time in ms and in µs (MySQL 8+: exact; MariaDB: whole seconds).
    pub commit_ms: i64,
    pub commit_us: u64,
}

impl TxnContext {
    fn new(gtid: Option<Gtid>, commit_us: u64) -> Arc<TxnContext> {
        let gtid_text = gtid.as_ref().map(Gtid::to_string).unwrap_or_default().into();
        Arc::new(TxnContext { gtid, gtid_text, commit_ms: (commit_us / 1000) as i64, commit_us })
    }

    /// The `source` block of a streamed record of this transaction, read at `at`.
    pub fn source<'a>(&'a self, connector: &'a str, name: &'a str, at: &'a RowAt) -> SourceInfo<'a> {
        SourceInfo {
            connector,
            name,
            ts_ms: self.commit_ms,
            ts_us: self.commit_us as i64,
            snapshot: "false",
            server_id: at.server_id,
            gtid: Some(&self.gtid_text),
            file: at.file.as_deref().unwrap_or_default(),
            pos: at.pos,
            row: at.row as i32,
            thread: at.thread,
        }
    }
}

/// One data record to encode and publish.
#[derive(Debug)]
pub struct Record {
    pub change: RowChange,
    pub table: TableId,
    pub txn: Arc<TxnContext>,
    /// 1-based position among the transaction's data records (0: a TRUNCATE's op "t" record).
    pub position: u64,
    /// The envelope's `transaction` block (transaction metadata on).
    pub info: Option<TxnInfo>,
    /// A tombstone follows when the record has a key.
    pub tombstone: bool,
}

/// What the delivery stage does, in order.
#[derive(Debug)]
pub enum Step {
    /// A source transaction begins: register it with the commit tracker.
    Begin(Option<Gtid>),
    /// The open transaction is an XA PREPARE: its registration waits under the XID, open.
    Park(Xid),
    /// The XA transaction is decided: its registration is the open one again.
    Unpark(Xid),
    /// A transaction metadata record of the open transaction: BEGIN (`end: None`) or END with
    /// the data records per table; `position` for the headers.
    Metadata {
        txn: Arc<TxnContext>,
        end: Option<Vec<(TableId, u64)>>,
        position: u64,
    },
    Record(Record),
    /// The open transaction has all its records.
    End,
    /// The open transaction is void (rolled back, or cut and read again).
    Void,
    /// The open transaction is held: a stopped table's change is in it.
    Hold,
    /// `table` stops here (see the module docs) in the open transaction (`gtid`), which is held.
    Stop {
        table: TableId,
        why: String,
        gtid: Arc<str>,
    },
    /// A snapshot chunk to emit as `op = "r"` records, then answer.
    Chunk {
        chunk: Chunk,
        dropped: u64,
        reply: tokio::sync::oneshot::Sender<Outcome>,
    },
    /// The source is alive.
    Heartbeat,
    /// Semi-sync: ACK this point once everything routed before it is in Kafka.
    Ack(crate::reader::AckPoint),
    /// A captured table was truncated (counted).
    Truncated,
}

/// The routed transaction's counts so far.
#[derive(Debug, Default)]
struct Open {
    /// Data records (tombstones not counted).
    index: u64,
    /// Data records per table, in order of first appearance (transaction metadata).
    tables: Vec<(TableId, u64)>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Router {
    settings: RouterSettings,
    open: Option<Open>,
    /// The transaction begun last (kept after its end: its GTID tells the merger what was routed).
    txn: Arc<TxnContext>,
    parked: HashMap<Xid, Open>,
    /// Per schema seen (by its `Arc`'s address; the `Arc` is held, so an address is never reused
    /// while it is here): its table and whether it is captured. Rows of a table share their schema
    /// `Arc` until its shape changes, so this is worked out once per table and shape, not per row.
    tables: HashMap<usize, (Arc<TableSchema>, TableId, bool)>,
    /// The latest shape seen of each captured table (a TRUNCATE's op "t" record needs one).
    known: HashMap<TableId, Arc<TableSchema>>,
    /// Stopped tables and why, for the rest of this run.
    stopped: HashMap<TableId, String>,
    merger: Merger,
}

impl Router {
    pub fn new(settings: RouterSettings, merger: Merger) -> Router {
        Router {
            settings,
            open: None,
            txn: Arc::default(),
            parked: HashMap::new(),
            tables: HashMap::new(),
            known: HashMap::new(),
            stopped: HashMap::new(),
            merger,
        }
    }

    /// Appends to `out` the steps that carry `event` out.
    pub fn route(&mut self, event: TxnEvent, out: &mut Vec<Step>) -> Result<(), RouteError> {
        match event {
            TxnEvent::Begin { gtid, commit_us } => {
                self.txn = TxnContext::new(gtid.clone(), commit_us);
                self.open = Some(Open::default());
                out.push(Step::Begin(gtid));
            }
            TxnEvent::Prepared { xid } => {
                // Not ended: the tracker keeps the offset before it until its outcome is routed.
                let open = self.open.take().ok_or(RouteError::OutsideTransaction("XA PREPARE"))?;
                self.parked.insert(xid.clone(), open);
                out.push(Step::Park(xid));
            }
            TxnEvent::Resume { xid, gtid, commit_us } => {
                let open = self.parked.remove(&xid).ok_or_else(|| RouteError::NeverPrepared(xid.to_string()))?;
                self.txn = TxnContext::new(gtid, commit_us);
                self.open = Some(open);
                out.push(Step::Unpark(xid));
            }
            TxnEvent::Row(change) => self.row(change, out)?,
            TxnEvent::Commit { .. } => {
                if let Some(open) = self.open.take() {
                    if self.settings.transaction_metadata && open.index > 0 {
                        let (txn, position) = (Arc::clone(&self.txn), open.index + 1);
                        out.push(Step::Metadata { txn, end: Some(open.tables), position });
                    }
                    out.push(Step::End);
                }
                self.merger.committed(self.txn.gtid.as_ref());
            }
            TxnEvent::Abort => {
                if self.open.take().is_some() {
                    out.push(Step::Void);
                }
            }
            TxnEvent::TableError { db, table, error } => {
                if self.open.is_none() {
                    return Err(RouteError::OutsideTransaction("a table error"));
                }
                let table = TableId::new(&db, &table);
                out.push(if self.stopped.contains_key(&table) { Step::Hold } else { self.stop(table, error) });
            }
            TxnEvent::Heartbeat => out.push(Step::Heartbeat),
            TxnEvent::Ack(point) => out.push(Step::Ack(point)),
            TxnEvent::Statement { db, sql } => {
                self.merger.ddl();
                if let Some((db, table)) = truncated_table(&db, &sql)
                    && self.settings.tables.captures(&db, &table)
                {
                    out.push(Step::Truncated);
                    self.truncate(TableId::new(&db, &table), out);
                }
            }
        }
        Ok(())
    }

    fn row(&mut self, change: RowChange, out: &mut Vec<Step>) -> Result<(), RouteError> {
        if self.open.is_none() {
            return Err(RouteError::OutsideTransaction("a row"));
        }
        let (table, captured) = self.table_of(&change.table);
        if !captured {
            return Ok(());
        }
        // The merger sees every captured row (a window records the keys the stream touched).
        let muted = !self.merger.is_idle() && !self.merger.row(table.dotted(), self.txn.gtid.as_ref(), &change);
        if self.stopped.contains_key(&table) {
            out.push(Step::Hold);
            return Ok(());
        }
        if muted {
            // A keyless table's copy carries this change (see `snapshot::merge`).
            return Ok(());
        }
        for change in split_key_change(change).into_iter().flatten() {
            self.record(change, &table, out);
        }
        Ok(())
    }

    /// The table a row's schema belongs to, and whether it is captured.
    fn table_of(&mut self, schema: &Arc<TableSchema>) -> (TableId, bool) {
        let key = Arc::as_ptr(schema) as usize;
        if let Some((_, table, captured)) = self.tables.get(&key) {
            return (table.clone(), *captured);
        }
        // Bounded: a run with endless DDL starts over rather than keeping every old shape.
        if self.tables.len() >= MAX_SHAPES {
            self.tables.clear();
        }
        let table = TableId::of(schema);
        let captured = self.settings.tables.captures(table.db(), table.table());
        if captured {
            self.known.insert(table.clone(), Arc::clone(schema));
        }
        self.tables.insert(key, (Arc::clone(schema), table.clone(), captured));
        (table, captured)
    }

    /// One data record of the open transaction (with the transaction's BEGIN record first).
    fn record(&mut self, change: RowChange, table: &TableId, out: &mut Vec<Step>) {
        let Some(open) = self.open.as_mut() else { return };
        let metadata = self.settings.transaction_metadata;
        if metadata && open.index == 0 {
            out.push(Step::Metadata { txn: Arc::clone(&self.txn), end: None, position: 0 });
        }
        open.index += 1;
        // Per-table counts exist for transaction metadata only.
        let info = metadata.then(|| {
            let in_table = match open.tables.iter_mut().find(|(t, _)| t == table) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    open.tables.push((table.clone(), 1));
                    1
                }
            };
            TxnInfo {
                id: Arc::clone(&self.txn.gtid_text),
                total_order: open.index as i64,
                data_collection_order: in_table as i64,
            }
        });
        let tombstone = self.settings.tombstones && change.op == Op::Delete;
        let (txn, position) = (Arc::clone(&self.txn), open.index);
        out.push(Step::Record(Record { change, table: table.clone(), txn, position, info, tombstone }));
    }

    /// A captured table's TRUNCATE: an op "t" record, or a warning saying why there is none.
    fn truncate(&mut self, table: TableId, out: &mut Vec<Step>) {
        let gtid = &self.txn.gtid_text;
        match (self.settings.truncate_records, self.open.is_some(), self.known.get(&table)) {
            (true, true, Some(schema)) if !self.stopped.contains_key(&table) => {
                let change = RowChange {
                    op: Op::Truncate,
                    table: Arc::clone(schema),
                    before: None,
                    after: None,
                    at: RowAt::default(),
                };
                let txn = Arc::clone(&self.txn);
                out.push(Step::Record(Record { change, table, txn, position: 0, info: None, tombstone: false }));
            }
            (true, _, None) => tracing::warn!(
                %table,
                %gtid,
                "TRUNCATE TABLE of a table with no rows read since rowferry started: its shape is not known, so \
                 no op \"t\" record was sent; the topic keeps the old rows' records (POST /snapshot re-seeds it)"
            ),
            _ => tracing::warn!(
                %table,
                %gtid,
                "TRUNCATE TABLE: the binlog has no rows for it, so no record says the rows are gone; the topic \
                 keeps their last records (a snapshot of the table, POST /snapshot, re-seeds it; delete the old \
                 records with a retention or by hand; topics.truncate_records = true sends Debezium's op \"t\" \
                 record)"
            ),
        }
    }

    /// Stops `table` for the rest of this run: the step that says so (and holds the open
    /// transaction); its later rows become holds.
    pub fn stop(&mut self, table: TableId, why: String) -> Step {
        self.stopped.insert(table.clone(), why.clone());
        Step::Stop { table, why, gtid: Arc::clone(&self.txn.gtid_text) }
    }

    /// What a step becomes as delivery takes it, now that its table may have stopped: a stopped
    /// table's record a hold of its transaction, its snapshot chunk answered as failed (`None`).
    pub fn recheck(&self, step: Step) -> Option<Step> {
        if self.stopped.is_empty() {
            return Some(step);
        }
        match step {
            Step::Record(r) if self.stopped.contains_key(&r.table) => Some(Step::Hold),
            Step::Chunk { chunk, reply, .. } if let Some(why) = self.stopped.get(&TableId::of(&chunk.schema)) => {
                let _ = reply.send(Outcome::Failed(format!("the table is stopped: {why}")));
                None
            }
            step => Some(step),
        }
    }

    /// A message from the snapshot copier (see `snapshot::merge`).
    pub fn snapshot_message(&mut self, msg: Msg) {
        self.merger.handle(msg);
    }

    /// Between transactions: appends the snapshot chunks the stream has caught up with (one to read
    /// again is answered as such).
    pub fn release_chunks(&mut self, out: &mut Vec<Step>) {
        if self.open.is_some() || self.merger.is_idle() {
            return;
        }
        self.merger.between_transactions();
        while let Some(ready) = self.merger.take_ready() {
            match ready {
                Ready::Retry { reply } => {
                    let _ = reply.send(Outcome::Retry);
                }
                // A stopped table's chunk is answered as failed by `recheck`, as delivery takes it.
                Ready::Emit { chunk, dropped, reply } => {
                    self.known.insert(TableId::of(&chunk.schema), Arc::clone(&chunk.schema));
                    out.push(Step::Chunk { chunk, dropped, reply });
                }
            }
        }
    }

    /// Whether the next transaction must wait (a keyless table's copy holds the stream).
    pub fn holds_stream(&self) -> bool {
        self.open.is_none() && self.merger.holds_stream()
    }

    /// No snapshot window, hold or muted table is left.
    pub fn snapshot_idle(&self) -> bool {
        self.merger.is_idle()
    }

    /// Mutes the stream rows of an initial snapshot's keyless tables (`db.table`) until their copy.
    pub fn mute(&mut self, tables: impl IntoIterator<Item = Arc<str>>) {
        self.merger.mute(tables);
    }
}

/// An UPDATE that changes the primary key, as a delete and a create; any other change as it is
/// (no allocation: this runs for every row).
fn split_key_change(change: RowChange) -> [Option<RowChange>; 2] {
    let changed = change.op == Op::Update
        && match (&change.before, &change.after) {
            (Some(before), Some(after)) => change.table.primary_key.iter().any(|&i| before.get(i) != after.get(i)),
            _ => false,
        };
    if !changed {
        return [Some(change), None];
    }
    let RowChange { table, before, after, at, .. } = change;
    [
        Some(RowChange { op: Op::Delete, table: Arc::clone(&table), before, after: None, at: at.clone() }),
        Some(RowChange { op: Op::Insert, table, before: None, after, at }),
    ]
}

/// The table of a `TRUNCATE [TABLE] name` statement run in database `db`, as `(db, table)`.
fn truncated_table(db: &str, sql: &str) -> Option<(String, String)> {
    let mut rest = sql.trim_start();
    // Leading comments (`/* … */`), as some clients and the server's own rewrites add them.
    while let Some(after) = rest.strip_prefix("/*") {
        rest = after.split_once("*/")?.1.trim_start();
    }
    let word = |s: &str, w: &str| {
        s.get(..w.len()).is_some_and(|p| p.eq_ignore_ascii_case(w)).then(|| s[w.len()..].to_string())
    };
    let rest = word(rest, "truncate")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let mut rest = rest.trim_start().to_string();
    if let Some(after) = word(&rest, "table").filter(|a| a.starts_with(char::is_whitespace) || a.starts_with('`')) {
        rest = after.trim_start().to_string();
    }
    let parts = identifiers(&rest)?;
    match parts.as_slice() {
        [table] => Some((db.to_string(), table.clone())),
        [db, table] => Some((db.clone(), table.clone())),
        _ => None,
    }
}

/// One identifier or two joined by a dot at the start of `text`, each plain or in backticks
/// (`` doubled inside).
fn identifiers(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut name = String::new();
        if chars.peek() == Some(&'`') {
            chars.next();
            loop {
                match chars.next()? {
                    '`' if chars.peek() == Some(&'`') => {
                        chars.next();
                        name.push('`');
                    }
                    '`' => break,
                    c => name.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_alphanumeric() || c == '_' || c == '$' {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
        }
        if name.is_empty() {
            return None;
        }
        parts.push(name);
        if chars.peek() == Some(&'.') && parts.len() == 1 {
            chars.next();
        } else {
            return Some(parts);
        }
    }
}

#[cfg(test)]
mod tests;
