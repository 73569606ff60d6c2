//! Where snapshot chunks join the stream: the watermark windows, as a pure state machine.
//!
//! A chunk is read between a *low* position L (MySQL: `gtid_executed` before the SELECT; MariaDB:
//! the exact position of its consistent snapshot) and a *high* position H (MySQL:
//! `gtid_executed` after the SELECT; MariaDB: H = L). The stream loop feeds this machine every
//! routed row and commit. The invariant it keeps: **a chunk row is emitted only if no stream
//! change of its key could be newer than the row and already be in Kafka before it.**
//!
//! * [`Msg::Prepare`] registers the window *before L is read*, and the copier waits until the
//!   loop has taken it. From then on every routed row of the window's table marks its key (before
//!   and after image) as *touched*: the stream carries that key's state from there on, so the
//!   chunk's row for it may be dropped. Until L is known ([`Msg::Open`]) every row counts; after,
//!   rows of transactions in L do not (the SELECT saw them). Counting too many only drops rows
//!   the stream carries anyway.
//! * If the stream had routed, before the window was prepared, a transaction that is not in L,
//!   its changes may be in Kafka unrecorded and newer than what the SELECT saw: the window is
//!   *late* and the chunk is read again ([`Ready::Retry`]). That needs a transaction to reach
//!   rowferry before the server counts it in L — a rare race, not the steady state. (Registering
//!   the window only after reading L made nearly every window late while the stream kept up with
//!   a busy server.)
//! * Once the chunk's rows are attached and the stream has routed everything in H
//!   (H ⊆ routed), the chunk is emitted *between two transactions*, minus its touched keys.
//!   Rows the SELECT saw that commit later in the stream (in H's gap) are simply sent again by the
//!   stream afterwards: the last record per key is still the latest state.
//!
//! Soundness needs L to contain only transactions the SELECT sees. MariaDB's consistent snapshot
//! position is exact. MySQL adds a GTID to `gtid_executed` after the storage engine commit when
//! `binlog_order_commits=ON` (the default), so "in L" implies
//! "visible to a later SELECT".
//!
//! Memory: a window's touched set is bounded ([`MAX_TOUCHED`]); past it the window is late and
//! the chunk is read again (smaller chunks take less time, so fewer keys are touched).

use super::progress::{SnapshotKind, TableProgress};
use crate::change::{RowChange, Value};
use crate::position::{Gtid, Position};
use crate::schema::TableSchema;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Keys a window remembers at most.
pub const MAX_TOUCHED: usize = 1_000_000;

pub type WindowId = u64;

/// A chunk read by the copier.
#[derive(Debug)]
pub struct Chunk {
    /// `db.table`.
    pub table: Arc<str>,
    pub schema: Arc<TableSchema>,
    /// Key column indexes in `schema`.
    pub key: Vec<usize>,
    pub rows: Vec<Vec<Value>>,
    /// The stream must have routed this before the chunk is emitted.
    pub high: Position,
    /// The table's progress once this chunk is durable.
    pub progress: TableProgress,
    pub kind: SnapshotKind,
}

/// What became of a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Emitted (rows sent, others dropped because the stream carries them).
    Emitted { sent: u64, dropped: u64 },
    /// Read it again: the window opened too late or grew too large.
    Retry,
    /// The table cannot be snapshotted (its records cannot be encoded).
    Failed(String),
}

/// From the copier to the stream loop.
#[derive(Debug)]
pub enum Msg {
    /// Start recording the table's touched keys; `ready` answers once recording has started.
    Prepare {
        id: WindowId,
        table: Arc<str>,
        key_names: Vec<String>,
        ready: oneshot::Sender<()>,
    },
    /// The window's low mark L, read after the loop took [`Msg::Prepare`].
    Open {
        id: WindowId,
        low: Position,
    },
    Rows {
        id: WindowId,
        chunk: Chunk,
        reply: oneshot::Sender<Outcome>,
    },
    /// The copier gave the chunk up (a read failed).
    Close {
        id: WindowId,
    },
}

/// A chunk to act on now.
#[derive(Debug)]
pub enum Ready {
    /// Send these rows (touched ones removed), then reply.
    Emit { chunk: Chunk, dropped: u64, reply: oneshot::Sender<Outcome> },
    /// Tell the copier to read it again.
    Retry { reply: oneshot::Sender<Outcome> },
}

#[derive(Debug)]
struct Window {
    id: WindowId,
    table: Arc<str>,
    key_names: Vec<String>,
    /// Routed when the window was prepared; `None` once L is known.
    routed_at_prepare: Option<Position>,
    /// `None` until [`Msg::Open`].
    low: Option<Position>,
    late: bool,
    touched: HashSet<String>,
    pending: Option<(Chunk, oneshot::Sender<Outcome>)>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Merger {
    routed: Position,
    windows: Vec<Window>,
}

/// The canonical identity of a row's key (equal values ⇔ equal strings).
pub fn key_string(values: &[Value], key: &[usize]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for &i in key {
        let _ = write!(out, "{:?}\u{1f}", values.get(i).unwrap_or(&Value::Absent));
    }
    out
}

impl Merger {
    /// `start`: where the stream starts (everything in it counts as routed).
    pub fn new(start: Position) -> Self {
        Merger { routed: start, windows: Vec::new() }
    }

    /// Everything the stream has routed.
    pub fn routed(&self) -> &Position {
        &self.routed
    }

    pub fn is_idle(&self) -> bool {
        self.windows.is_empty()
    }

    pub fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Prepare { id, table, key_names, ready } => {
                self.windows.push(Window {
                    id,
                    table,
                    key_names,
                    routed_at_prepare: Some(self.routed.clone()),
                    low: None,
                    late: false,
                    touched: HashSet::new(),
                    pending: None,
                });
                let _ = ready.send(());
            }
            Msg::Open { id, low } => {
                if let Some(w) = self.windows.iter_mut().find(|w| w.id == id) {
                    if w.routed_at_prepare.take().is_some_and(|before| !before.is_subset(&low)) {
                        w.late = true;
                    }
                    w.low = Some(low);
                }
            }
            Msg::Rows { id, chunk, reply } => match self.windows.iter_mut().find(|w| w.id == id) {
                Some(w) => w.pending = Some((chunk, reply)),
                None => {
                    let _ = reply.send(Outcome::Retry);
                }
            },
            Msg::Close { id } => self.windows.retain(|w| w.id != id),
        }
    }

    /// A routed row of `table` (`db.table`) in the transaction `gtid`.
    pub fn row(&mut self, table: &str, gtid: Option<&Gtid>, change: &RowChange) {
        for w in self.windows.iter_mut().filter(|w| &*w.table == table) {
            if w.late || gtid.is_some_and(|g| w.low.as_ref().is_some_and(|low| low.contains(g))) {
                continue;
            }
            let key: Option<Vec<usize>> =
                w.key_names.iter().map(|name| change.table.columns.iter().position(|c| &c.name == name)).collect();
            let Some(key) = key else {
                // The key column is gone (DDL): the chunk's rows no longer match the stream.
                w.late = true;
                continue;
            };
            for image in [&change.before, &change.after].into_iter().flatten() {
                w.touched.insert(key_string(image, &key));
            }
            if w.touched.len() > MAX_TOUCHED {
                w.late = true;
                w.touched = HashSet::new();
            }
        }
    }

    /// A DDL statement passed: chunks read before it may not match the tables' new shape.
    pub fn ddl(&mut self) {
        for w in &mut self.windows {
            w.late = true;
        }
    }

    /// A transaction was fully routed.
    pub fn committed(&mut self, gtid: Option<&Gtid>) {
        if let Some(g) = gtid {
            self.routed.add(g);
        }
    }

    /// The next chunk to act on, if any (call between transactions only).
    pub fn take_ready(&mut self) -> Option<Ready> {
        let routed = &self.routed;
        let i = self
            .windows
            .iter()
            .position(|w| w.pending.as_ref().is_some_and(|(chunk, _)| w.late || chunk.high.is_subset(routed)))?;
        let w = self.windows.swap_remove(i);
        let (mut chunk, reply) = w.pending?;
        if w.late {
            return Some(Ready::Retry { reply });
        }
        let before = chunk.rows.len();
        if !w.touched.is_empty() {
            let key = chunk.key.clone();
            chunk.rows.retain(|row| !w.touched.contains(&key_string(row, &key)));
        }
        Some(Ready::Emit { dropped: (before - chunk.rows.len()) as u64, chunk, reply })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Op;
    use crate::position::{MariaDbGtid, MariaDbPosition};
    use crate::schema::{Column, ColumnType};

    fn pos(text: &str) -> Position {
        Position::MariaDb(MariaDbPosition::parse(text).expect("position"))
    }

    fn gtid(seq: u64) -> Gtid {
        Gtid::MariaDb(MariaDbGtid { domain: 0, server: 1, seq })
    }

    fn schema() -> Arc<TableSchema> {
        let col = |name: &str| Column {
            name: name.into(),
            ty: ColumnType::Int { unsigned: false },
            nullable: false,
            visible: true,
            omitted_on_change: false,
        };
        Arc::new(TableSchema {
            db: "d".into(),
            table: "t".into(),
            columns: vec![col("id"), col("v")],
            primary_key: vec![0],
        })
    }

    fn row(id: i64, v: i64) -> Vec<Value> {
        vec![Value::Int(id), Value::Int(v)]
    }

    fn update(id: i64) -> RowChange {
        RowChange { op: Op::Update, table: schema(), before: Some(row(id, 0)), after: Some(row(id, 1)) }
    }

    fn chunk(rows: Vec<Vec<Value>>, high: &str) -> Chunk {
        Chunk {
            table: "d.t".into(),
            schema: schema(),
            key: vec![0],
            rows,
            high: pos(high),
            progress: TableProgress::default(),
            kind: SnapshotKind::Initial,
        }
    }

    fn prepare(m: &mut Merger, id: WindowId) {
        let (ready, mut taken) = oneshot::channel();
        m.handle(Msg::Prepare { id, table: "d.t".into(), key_names: vec!["id".into()], ready });
        assert_eq!(taken.try_recv().ok(), Some(()), "prepare answers at once");
    }

    fn open(m: &mut Merger, id: WindowId, low: &str) {
        prepare(m, id);
        m.handle(Msg::Open { id, low: pos(low) });
    }

    fn attach(m: &mut Merger, id: WindowId, c: Chunk) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        m.handle(Msg::Rows { id, chunk: c, reply: tx });
        rx
    }

    #[test]
    fn waits_for_the_high_watermark_and_drops_keys_changed_in_the_window() {
        let mut m = Merger::new(pos("0-1-10"));
        open(&mut m, 1, "0-1-12");
        // 11 and 12 are in L: the SELECT saw them, their keys stay.
        m.row("d.t", Some(&gtid(11)), &update(1));
        m.committed(Some(&gtid(11)));
        m.committed(Some(&gtid(12)));
        let _rx = attach(&mut m, 1, chunk(vec![row(1, 1), row(2, 2), row(3, 3)], "0-1-14"));
        assert!(m.take_ready().is_none(), "the stream is before H");
        // 13 is outside L: key 2 is the stream's now.
        m.row("d.t", Some(&gtid(13)), &update(2));
        m.row("other.t", Some(&gtid(13)), &update(3));
        m.committed(Some(&gtid(13)));
        assert!(m.take_ready().is_none());
        m.committed(Some(&gtid(14)));
        match m.take_ready() {
            Some(Ready::Emit { chunk, dropped, .. }) => {
                assert_eq!(dropped, 1);
                assert_eq!(chunk.rows, vec![row(1, 1), row(3, 3)]);
            }
            other => panic!("{other:?}"),
        }
        assert!(m.is_idle());
    }

    #[test]
    fn changes_routed_between_prepare_and_open_count_and_the_window_is_not_late() {
        let mut m = Merger::new(pos("0-1-10"));
        prepare(&mut m, 1);
        // The stream keeps up: 11 and 12 are routed before the copier reads L = 12.
        m.row("d.t", Some(&gtid(11)), &update(1));
        m.committed(Some(&gtid(11)));
        m.row("d.t", Some(&gtid(12)), &update(2));
        m.committed(Some(&gtid(12)));
        m.handle(Msg::Open { id: 1, low: pos("0-1-12") });
        // In L now: not counted.
        m.row("d.t", Some(&gtid(12)), &update(3));
        let _rx = attach(&mut m, 1, chunk(vec![row(1, 1), row(2, 2), row(3, 3), row(4, 4)], "0-1-12"));
        match m.take_ready() {
            Some(Ready::Emit { chunk, dropped, .. }) => {
                assert_eq!(dropped, 2, "keys changed before L was known are the stream's");
                assert_eq!(chunk.rows, vec![row(3, 3), row(4, 4)]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_window_whose_low_mark_misses_what_was_routed_before_it_was_prepared_is_read_again() {
        let mut m = Merger::new(pos("0-1-10"));
        m.committed(Some(&gtid(11)));
        // 11 reached rowferry before the server counted it in L.
        open(&mut m, 1, "0-1-10");
        let _rx = attach(&mut m, 1, chunk(vec![row(1, 1)], "0-1-11"));
        assert!(matches!(m.take_ready(), Some(Ready::Retry { .. })));
    }

    #[test]
    fn ddl_and_unknown_windows_mean_retry() {
        let mut m = Merger::new(pos("0-1-10"));
        open(&mut m, 1, "0-1-10");
        m.ddl();
        let _rx = attach(&mut m, 1, chunk(vec![row(1, 1)], "0-1-10"));
        assert!(matches!(m.take_ready(), Some(Ready::Retry { .. })));
        let mut rx = attach(&mut m, 7, chunk(vec![], "0-1-10"));
        assert_eq!(rx.try_recv().ok(), Some(Outcome::Retry));
    }
}
