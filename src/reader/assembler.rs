//! Transaction assembler: decoded items → transactions, with boundaries that survive reconnects.
//!
//! A transaction starts at its GTID event (MySQL: GTID then `BEGIN`, or GTID then one DDL
//! statement; MariaDB: a GTID event that is itself the BEGIN, or a *standalone* one for DDL) and
//! ends at XID/`COMMIT`, or right after the DDL statement. Rows are held back until the commit,
//! up to `buffer_rows` rows and `buffer_bytes` bytes; a larger transaction is streamed as it is
//! decoded (bounded memory), and
//! then a `ROLLBACK` or a reconnect in its middle emits [`TxnEvent::Abort`]: everything since its
//! `Begin` is void (rolled back, or about to be sent again from its start). Smaller rolled-back
//! groups are dropped without a trace. The committed [`Position`] moves only at `Commit`.
//!
//! Statement-based DML (a session that set binlog_format=STATEMENT) carries no rows: it is an
//! error, not something to skip.
//!
//! **XA transactions.** An XA transaction's group (MySQL: GTID, `XA START`; MariaDB: a GTID event
//! flagged as a prepared XA) ends at XA_PREPARE. With `one_phase` it is committed there, like any
//! other. Otherwise it is *prepared*: a later group (its own GTID) holds `XA COMMIT xid` or
//! `XA ROLLBACK xid`, with any number of other transactions in between. A prepared group emits
//! `Begin` and [`TxnEvent::Prepared`] (no `Commit`): the commit tracker keeps the transaction open,
//! so the stored offset stays before it until its outcome is published — a restart reads it again.
//! Its rows wait here, keyed by XID, and are emitted at `XA COMMIT` after
//! [`TxnEvent::Resume`] and before that transaction's `Commit`; an `XA ROLLBACK` emits `Resume`
//! and `Commit` with no rows. Then the deciding group follows as an empty transaction. The read
//! position includes a prepared group at once (a reconnect does not need it again: its rows are
//! here). Prepared rows count against the same byte budget as held-back rows; past it, a prepared
//! transaction's rows are emitted at PREPARE (published before they are committed: an
//! `XA ROLLBACK` of such a transaction is logged as an error, its records stay in Kafka). An
//! `XA COMMIT` of an XID that was never seen prepared (prepared before the start position, or
//! already published before a restart) has nothing to emit.

use crate::binlog::events::{XaPrepare, Xid};
use crate::change::RowChange;
use crate::decoder::Item;
use crate::error::ErrorClass;
use crate::position::{Gtid, Position};
use std::collections::HashMap;

/// What the assembler emits.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnEvent {
    /// A transaction starts. `commit_us`: source commit time in µs (MySQL 8+), else the event
    /// timestamp in seconds × 10⁶.
    Begin {
        gtid: Option<Gtid>,
        commit_us: u64,
    },
    Row(RowChange),
    /// Rows of captured table `db`.`table` could not be decoded: that table stops.
    TableError {
        db: String,
        table: String,
        error: String,
    },
    /// A statement with no rows: DDL, TRUNCATE, account management.
    Statement {
        db: String,
        sql: String,
    },
    /// The transaction is complete; the position now includes `gtid`.
    Commit {
        gtid: Option<Gtid>,
    },
    /// The transaction since the last `Begin` is an XA transaction, prepared and not yet decided:
    /// no `Commit` comes for it now; its outcome comes after [`TxnEvent::Resume`] with this XID.
    Prepared {
        xid: Xid,
    },
    /// The prepared transaction `xid` is decided: its rows (if committed) and its `Commit` follow.
    /// `commit_us`: when the deciding `XA COMMIT`/`XA ROLLBACK` was written.
    Resume {
        xid: Xid,
        gtid: Option<Gtid>,
        commit_us: u64,
    },
    /// Everything since the last `Begin` is void.
    Abort,
    /// The source is alive (heartbeat while idle).
    Heartbeat,
    /// Semi-sync: the source waits for an ACK of this point; send it once everything before it
    /// in the stream is in Kafka.
    Ack(super::AckPoint),
}

/// The stream did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssemblerError {
    #[error(
        "statement-based DML in the binlog ({sql:.80}): its rows are not in the binlog; some session uses \
         binlog_format=STATEMENT or MIXED — fix the clients, and re-snapshot the table"
    )]
    StatementDml { sql: String },
    #[error("binlog structure: {0}")]
    Structure(String),
    #[error("an XA statement rowferry cannot read ({sql:.120}): expected XA COMMIT/ROLLBACK X'…',X'…',formatID")]
    XaStatement { sql: String },
}

impl AssemblerError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

#[derive(Debug)]
struct Open {
    gtid: Option<Gtid>,
    commit_us: u64,
    /// Inside BEGIN … COMMIT (false: waiting for BEGIN or a lone DDL statement).
    began: bool,
    /// Already included in the position (seen before a reconnect): drop its rows.
    skip: bool,
    /// Rows and statements held back until the commit, and about how many bytes they hold.
    pending: Vec<TxnEvent>,
    pending_bytes: usize,
    /// Begin and rows already emitted.
    streaming: bool,
}

/// An XA transaction prepared and not yet decided.
#[derive(Debug)]
struct Prepared {
    gtid: Option<Gtid>,
    /// Its rows, unless they were emitted at PREPARE.
    pending: Vec<TxnEvent>,
    pending_bytes: usize,
    streamed: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct Assembler {
    position: Position,
    open: Option<Open>,
    buffer_rows: usize,
    buffer_bytes: usize,
    /// XA transactions prepared and not yet decided, and the bytes their rows hold.
    prepared: HashMap<Xid, Prepared>,
    prepared_bytes: usize,
}

/// The held-back rows' bytes at most, unless [`Assembler::with_buffer_bytes`] says otherwise.
pub const BUFFER_BYTES: usize = 16 << 20;

impl Assembler {
    pub fn new(position: Position, buffer_rows: usize) -> Self {
        Assembler {
            position,
            open: None,
            buffer_rows,
            buffer_bytes: BUFFER_BYTES,
            prepared: HashMap::new(),
            prepared_bytes: 0,
        }
    }

    /// Streams a transaction once its held-back rows hold more than `bytes`.
    pub fn with_buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// Everything up to the last committed transaction.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// XA transactions prepared and not yet decided.
    pub fn prepared(&self) -> usize {
        self.prepared.len()
    }

    /// The link dropped: forget the open transaction (it will be sent again from its start).
    /// Prepared XA transactions stay: their groups are in the position and will not come again.
    pub fn reset(&mut self, out: &mut dyn FnMut(TxnEvent)) {
        if let Some(open) = self.open.take()
            && open.streaming
        {
            out(TxnEvent::Abort);
        }
    }

    /// Feeds one decoded item.
    pub fn push(&mut self, item: Item, out: &mut dyn FnMut(TxnEvent)) -> Result<(), AssemblerError> {
        match item {
            Item::MySqlGtid { gtid, commit_us, header } => {
                let gtid = gtid.map(Gtid::MySql);
                self.start(gtid, commit_us.unwrap_or(u64::from(header.timestamp) * 1_000_000), false)?;
            }
            Item::MariaDbGtid { gtid, standalone, header } => {
                self.start(Some(Gtid::MariaDb(gtid)), u64::from(header.timestamp) * 1_000_000, !standalone)?;
            }
            Item::Begin => match &mut self.open {
                Some(open) if !open.began => open.began = true,
                Some(_) => return Err(AssemblerError::Structure("BEGIN inside a transaction".into())),
                // Anonymous transaction without a GTID event (old binlogs).
                None => self.open = Some(Open::anonymous(true)),
            },
            Item::Row(row) => self.row(row, out)?,
            Item::TableError { db, table, error } => {
                if self.open.is_none() {
                    self.open = Some(Open::anonymous(true));
                }
                self.hold(TxnEvent::TableError { db, table, error }, out);
            }
            Item::Commit { .. } => {
                if self.open.is_none() {
                    return Err(AssemblerError::Structure("COMMIT without a transaction".into()));
                }
                self.finish(out, true);
            }
            Item::XaPrepare(xa) => self.xa_prepare(xa, out)?,
            Item::Rollback => {
                if let Some(open) = self.open.as_ref()
                    && open.streaming
                {
                    out(TxnEvent::Abort);
                }
                // The group is over either way; its GTID is consumed on the source.
                if let Some(open) = self.open.as_mut() {
                    open.pending.clear();
                    open.streaming = false;
                    open.skip = true;
                }
                self.finish(out, false);
            }
            Item::Statement { db, sql, .. } => self.statement(db, sql, out)?,
            Item::Heartbeat { .. } => out(TxnEvent::Heartbeat),
            Item::Rotate { .. } | Item::MariaDbGtidList(_) => {}
        }
        Ok(())
    }

    fn start(&mut self, gtid: Option<Gtid>, commit_us: u64, began: bool) -> Result<(), AssemblerError> {
        if let Some(open) = &self.open {
            return Err(AssemblerError::Structure(format!(
                "transaction {} started before {} ended",
                gtid.as_ref().map_or("(anonymous)".into(), |g| g.to_string()),
                open.gtid.as_ref().map_or("(anonymous)".into(), |g| g.to_string())
            )));
        }
        let skip = gtid.as_ref().is_some_and(|g| self.position.contains(g));
        self.open =
            Some(Open { gtid, commit_us, began, skip, pending: Vec::new(), pending_bytes: 0, streaming: false });
        Ok(())
    }

    fn row(&mut self, row: RowChange, out: &mut dyn FnMut(TxnEvent)) -> Result<(), AssemblerError> {
        if self.open.is_none() {
            self.open = Some(Open::anonymous(true));
        }
        self.hold(TxnEvent::Row(row), out);
        Ok(())
    }

    /// Buffers an event of the open transaction, or emits it when the transaction streams.
    fn hold(&mut self, event: TxnEvent, out: &mut dyn FnMut(TxnEvent)) {
        let Some(open) = self.open.as_mut() else { return };
        if open.skip {
            return;
        }
        if open.streaming {
            out(event);
            return;
        }
        if let TxnEvent::Row(row) = &event {
            open.pending_bytes += row.approx_bytes();
        }
        open.pending.push(event);
        if open.pending.len() > self.buffer_rows || open.pending_bytes > self.buffer_bytes {
            out(TxnEvent::Begin { gtid: open.gtid.clone(), commit_us: open.commit_us });
            for event in open.pending.drain(..) {
                out(event);
            }
            open.streaming = true;
        }
    }

    fn statement(&mut self, db: String, sql: String, out: &mut dyn FnMut(TxnEvent)) -> Result<(), AssemblerError> {
        let first = first_keyword(&sql);
        if first == "XA" {
            return self.xa_statement(&sql, out);
        }
        // A binlogged statement starting with WITH is a data change (WITH ... UPDATE/DELETE):
        // a WITH ... SELECT is not binlogged.
        if matches!(first.as_str(), "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD" | "WITH") {
            return Err(AssemblerError::StatementDml { sql });
        }
        let inside = self.open.as_ref().map(|open| open.began);
        if inside.is_none() {
            // No GTID event (anonymous/old binlogs): a one-statement transaction.
            self.open = Some(Open::anonymous(false));
        }
        // SAVEPOINT and RELEASE SAVEPOINT only structure the transaction.
        if first != "SAVEPOINT" && first != "RELEASE" {
            self.hold(TxnEvent::Statement { db, sql }, out);
        }
        // A statement right after its GTID (no BEGIN) is the whole transaction.
        if inside != Some(true) {
            self.finish(out, true);
        }
        Ok(())
    }

    /// XA_PREPARE ends the open group: committed if one-phase, else prepared (see the module docs).
    fn xa_prepare(&mut self, xa: XaPrepare, out: &mut dyn FnMut(TxnEvent)) -> Result<(), AssemblerError> {
        if !self.open.as_ref().is_some_and(|open| open.began) {
            return Err(AssemblerError::Structure(format!("XA_PREPARE of {} outside a transaction", xa.xid)));
        }
        if xa.one_phase {
            self.finish(out, true);
            return Ok(());
        }
        let Some(mut open) = self.open.take() else { return Ok(()) };
        if let Some(gtid) = &open.gtid {
            self.position.add(gtid);
        }
        if open.skip {
            return Ok(());
        }
        if !open.streaming {
            out(TxnEvent::Begin { gtid: open.gtid.clone(), commit_us: open.commit_us });
            if self.prepared_bytes + open.pending_bytes > self.buffer_bytes {
                for event in open.pending.drain(..) {
                    out(event);
                }
                open.pending_bytes = 0;
                open.streaming = true;
            }
        }
        out(TxnEvent::Prepared { xid: xa.xid.clone() });
        self.prepared_bytes += open.pending_bytes;
        let prepared = Prepared {
            gtid: open.gtid,
            pending: open.pending,
            pending_bytes: open.pending_bytes,
            streamed: open.streaming,
        };
        if let Some(earlier) = self.prepared.insert(xa.xid.clone(), prepared) {
            // The server refuses a second XA START of a prepared XID; a binlog that has one anyway
            // must not lose the first one's rows silently.
            return Err(AssemblerError::Structure(format!(
                "XA transaction {} prepared twice (first in {})",
                xa.xid,
                earlier.gtid.as_ref().map_or("(anonymous)".into(), |g| g.to_string())
            )));
        }
        Ok(())
    }

    /// `XA START` opens the group (MySQL), `XA END` is structure, `XA COMMIT`/`XA ROLLBACK`
    /// decide a prepared transaction and are the whole of their own group.
    fn xa_statement(&mut self, sql: &str, out: &mut dyn FnMut(TxnEvent)) -> Result<(), AssemblerError> {
        let bad = || AssemblerError::XaStatement { sql: sql.to_string() };
        let rest = sql.trim_start().get(2..).ok_or_else(bad)?.trim_start();
        let verb = rest.split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or_default().to_ascii_uppercase();
        match verb.as_str() {
            "START" | "BEGIN" => match &mut self.open {
                Some(open) if !open.began => open.began = true,
                Some(_) => return Err(AssemblerError::Structure("XA START inside a transaction".into())),
                None => self.open = Some(Open::anonymous(true)),
            },
            "END" => {}
            "COMMIT" | "ROLLBACK" => {
                let xid = Xid::parse_sql(&rest[verb.len()..]).ok_or_else(bad)?;
                // The whole of its own group, never inside another transaction.
                if self.open.as_ref().is_some_and(|open| open.began || open.streaming || !open.pending.is_empty()) {
                    return Err(AssemblerError::Structure(format!("XA {verb} inside a transaction")));
                }
                let open = self.open.take().unwrap_or_else(|| Open::anonymous(false));
                if !open.skip {
                    self.decide(&xid, verb == "COMMIT", open.commit_us, out);
                }
                // The deciding group itself: an empty transaction.
                self.open = Some(open);
                self.finish(out, true);
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// Emits the outcome of prepared transaction `xid`, if it was seen prepared.
    fn decide(&mut self, xid: &Xid, commit: bool, commit_us: u64, out: &mut dyn FnMut(TxnEvent)) {
        let Some(mut prepared) = self.prepared.remove(xid) else {
            tracing::debug!(%xid, commit, "XA outcome of a transaction not seen prepared: nothing to emit");
            return;
        };
        self.prepared_bytes -= prepared.pending_bytes;
        let gtid = prepared.gtid.clone();
        out(TxnEvent::Resume { xid: xid.clone(), gtid: gtid.clone(), commit_us });
        if commit {
            for event in prepared.pending.drain(..) {
                out(event);
            }
        } else if prepared.streamed {
            tracing::error!(
                %xid,
                gtid = %gtid.as_ref().map_or("(anonymous)".into(), |g| g.to_string()),
                "XA ROLLBACK of a transaction whose rows were published at its PREPARE (it was larger than the \
                 buffer): its records stay in Kafka although the rows never existed; re-snapshot the tables it touched"
            );
        }
        out(TxnEvent::Commit { gtid });
    }

    /// Ends the open transaction: emits it (unless skipped) and moves the position.
    fn finish(&mut self, out: &mut dyn FnMut(TxnEvent), committed: bool) {
        let Some(mut open) = self.open.take() else { return };
        if committed && !open.skip {
            if !open.streaming {
                out(TxnEvent::Begin { gtid: open.gtid.clone(), commit_us: open.commit_us });
            }
            for event in open.pending.drain(..) {
                out(event);
            }
            out(TxnEvent::Commit { gtid: open.gtid.clone() });
        }
        if let Some(gtid) = &open.gtid {
            self.position.add(gtid);
        }
    }
}

/// The statement's first keyword, upper-cased, after whitespace and comments (`/* */`, `-- `,
/// `#`): clients prefix statements with tracing comments, which the binlog keeps. The text of an
/// executable comment (`/*!80000 ...*/`) counts as the statement.
pub(crate) fn first_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(body) = rest.strip_prefix("/*") {
            if let Some(executable) = body.strip_prefix('!').or_else(|| body.strip_prefix("M!")) {
                // Skip the version digits; the comment's text is part of the statement.
                rest = executable.trim_start_matches(|c: char| c.is_ascii_digit());
                continue;
            }
            rest = body.split_once("*/").map_or("", |(_, after)| after);
        } else if rest.starts_with("-- ") || rest.starts_with("--\t") || rest.starts_with('#') {
            rest = rest.split_once('\n').map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or_default().to_ascii_uppercase()
}

impl Open {
    fn anonymous(began: bool) -> Open {
        Open { gtid: None, commit_us: 0, began, skip: false, pending: Vec::new(), pending_bytes: 0, streaming: false }
    }
}

#[cfg(test)]
mod tests;
