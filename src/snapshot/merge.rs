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
//!
//! **Tables without a key** (no primary key, no unique NOT NULL index, no `snapshot.keys`) cannot
//! be merged by key: a stream change and a chunk row of such a table cannot be matched, so no
//! window can say which chunk rows the stream carries. Their copy *holds the stream* instead, as a
//! blocking snapshot does, and the table's stream rows that the copy covers are *muted* (not
//! published: the copy carries their effect):
//!
//! * An initial snapshot's keyless tables are muted from the stream's start ([`Merger::mute`]):
//!   every change the stream reads of them before their copy's position is in the copy.
//! * [`Msg::Freeze`]: the loop stops routing at the next transaction boundary and answers; from
//!   then on the table's routed rows are muted.
//! * The copier opens a consistent snapshot and reads its position P (MariaDB: exact, from
//!   `binlog_snapshot_*`; MySQL: `gtid_executed` read *before* the snapshot opened, so every
//!   transaction in P is in the snapshot — a transaction committed in between is in both, the
//!   only way a row can appear twice).
//! * [`Msg::Hold`]: the loop routes up to P (still muting the table) and holds there, unmuting the
//!   table. A DDL statement routed since the freeze makes the copy start again
//!   ([`HoldOutcome::Retry`]): the copy's columns may no longer match.
//! * While held, the table's rows are read in batches ([`Msg::Rows`]) and each is emitted at
//!   once; nothing else moves. [`Msg::Close`] releases the stream.
//!
//! The rows are thus emitted exactly at P: every change up to P is in them, every change after P
//! is published after them. Memory stays bounded by one batch; the cost is that the whole stream
//! waits while a keyless table is read (it catches up afterwards from the binlog). A copy that
//! fails leaves its table muted for the rest of the run (its progress is not done, so the next
//! start copies it again, which covers everything muted).

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
    /// The copier gave the chunk up (a read failed), or a keyless copy is over: the stream goes on.
    Close {
        id: WindowId,
    },
    /// A keyless table's copy: stop routing at the next transaction boundary; `ready` answers once
    /// the stream is held (see the module docs).
    Freeze {
        id: WindowId,
        table: Arc<str>,
        ready: oneshot::Sender<()>,
    },
    /// Route up to `high` (the copy's snapshot position) and hold there.
    Hold {
        id: WindowId,
        high: Position,
        reply: oneshot::Sender<HoldOutcome>,
    },
}

/// The answer to [`Msg::Hold`].
#[derive(Debug, PartialEq, Eq)]
pub enum HoldOutcome {
    /// The stream is held at the snapshot's position: send the rows.
    Held,
    /// A DDL statement passed while the copy started; read again.
    Retry,
}

/// A keyless copy's hold on the stream.
#[derive(Debug)]
struct Hold {
    id: WindowId,
    table: Arc<str>,
    /// A DDL statement was routed since the freeze was asked for.
    ddl: bool,
    state: HoldState,
}

#[derive(Debug)]
enum HoldState {
    /// Asked to stop at the next transaction boundary.
    Freezing(oneshot::Sender<()>),
    Frozen,
    /// Routing up to the snapshot's position.
    Catching {
        high: Position,
        reply: oneshot::Sender<HoldOutcome>,
    },
    /// At the snapshot's position; chunks of the table are emitted as they come.
    Held,
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
    /// A keyless copy's hold on the stream (one at a time: the copier serialises them).
    hold: Option<Hold>,
    /// Keyless tables of an initial snapshot not yet held: their stream rows are in their copy.
    muted: HashSet<Arc<str>>,
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
        Merger { routed: start, windows: Vec::new(), hold: None, muted: HashSet::new() }
    }

    /// Everything the stream has routed.
    pub fn routed(&self) -> &Position {
        &self.routed
    }

    pub fn is_idle(&self) -> bool {
        self.windows.is_empty() && self.hold.is_none() && self.muted.is_empty()
    }

    /// Mutes the stream rows of `tables` (`db.table`): an initial snapshot's keyless tables, whose
    /// copies will carry every change up to their position (see the module docs).
    pub fn mute(&mut self, tables: impl IntoIterator<Item = Arc<str>>) {
        self.muted.extend(tables);
    }

    /// Whether the stream must not take its next transaction now (a keyless copy holds it).
    /// Only meaningful between transactions: a transaction always completes.
    pub fn holds_stream(&self) -> bool {
        match self.hold.as_ref().map(|h| &h.state) {
            Some(HoldState::Freezing(_) | HoldState::Frozen | HoldState::Held) => true,
            Some(HoldState::Catching { high, .. }) => high.is_subset(&self.routed),
            None => false,
        }
    }

    /// Moves a hold on between transactions: a freeze takes effect, a catching hold that reached
    /// its position answers. Call between transactions, after routing and after [`Merger::handle`].
    pub fn between_transactions(&mut self) {
        let Some(hold) = self.hold.as_mut() else { return };
        match std::mem::replace(&mut hold.state, HoldState::Frozen) {
            HoldState::Freezing(ready) => {
                if ready.send(()).is_err() {
                    self.hold = None;
                }
            }
            HoldState::Catching { high, reply } if high.is_subset(&self.routed) => {
                let outcome = if hold.ddl { HoldOutcome::Retry } else { HoldOutcome::Held };
                if reply.send(outcome).is_err() || hold.ddl {
                    self.hold = None;
                } else {
                    // Changes after P are published after the copy's rows.
                    self.muted.remove(&hold.table);
                    hold.state = HoldState::Held;
                }
            }
            other => hold.state = other,
        }
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
                None if self.hold.as_ref().is_some_and(|h| h.id == id && matches!(h.state, HoldState::Held)) => {
                    // A held copy's batch: emitted as it comes (the stream waits for it).
                    self.windows.push(Window {
                        id,
                        table: Arc::clone(&chunk.table),
                        key_names: Vec::new(),
                        routed_at_prepare: None,
                        low: None,
                        late: false,
                        touched: HashSet::new(),
                        pending: Some((chunk, reply)),
                    });
                }
                None => {
                    let _ = reply.send(Outcome::Retry);
                }
            },
            Msg::Close { id } => {
                self.windows.retain(|w| w.id != id);
                if self.hold.as_ref().is_some_and(|h| h.id == id) {
                    self.hold = None;
                }
            }
            Msg::Freeze { id, table, ready } => {
                self.hold = Some(Hold { id, table, ddl: false, state: HoldState::Freezing(ready) });
            }
            Msg::Hold { id, high, reply } => match self.hold.as_mut() {
                Some(h) if h.id == id => h.state = HoldState::Catching { high, reply },
                _ => {
                    let _ = reply.send(HoldOutcome::Retry);
                }
            },
        }
    }

    /// A routed row of `table` (`db.table`) in the transaction `gtid`; `false`: the row is muted
    /// (a keyless copy carries it) and must not be published.
    pub fn row(&mut self, table: &str, gtid: Option<&Gtid>, change: &RowChange) -> bool {
        if self.muted.contains(table)
            || self.hold.as_ref().is_some_and(|h| &*h.table == table && !matches!(h.state, HoldState::Held))
        {
            return false;
        }
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
        true
    }

    /// A DDL statement passed: chunks read before it may not match the tables' new shape (a
    /// keyless copy not yet held starts again).
    pub fn ddl(&mut self) {
        for w in &mut self.windows {
            w.late = true;
        }
        if let Some(h) = self.hold.as_mut().filter(|h| !matches!(h.state, HoldState::Held)) {
            h.ddl = true;
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
        RowChange {
            op: Op::Update,
            table: schema(),
            before: Some(row(id, 0)),
            after: Some(row(id, 1)),
            at: Default::default(),
        }
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

    #[test]
    fn a_keyless_copy_mutes_its_table_up_to_the_snapshot_and_holds_the_stream_there() {
        let mut m = Merger::new(pos("0-1-10"));
        m.mute(["d.t".into()]);
        assert!(!m.is_idle());
        // Before its copy, an initial snapshot's keyless table is muted; others are not.
        assert!(!m.row("d.t", Some(&gtid(11)), &update(1)));
        assert!(m.row("other.t", Some(&gtid(11)), &update(1)));
        m.committed(Some(&gtid(11)));
        let (ready, mut frozen) = oneshot::channel();
        m.handle(Msg::Freeze { id: 1, table: "d.t".into(), ready });
        assert!(m.holds_stream());
        m.between_transactions();
        assert_eq!(frozen.try_recv().ok(), Some(()), "frozen at the boundary");
        // The snapshot is at 12: the stream catches up to it, the table still muted.
        let (reply, mut held) = oneshot::channel();
        m.handle(Msg::Hold { id: 1, high: pos("0-1-12"), reply });
        assert!(!m.holds_stream(), "12 is not routed yet");
        assert!(!m.row("d.t", Some(&gtid(12)), &update(2)));
        m.committed(Some(&gtid(12)));
        assert!(m.holds_stream(), "at the snapshot's position");
        m.between_transactions();
        assert_eq!(held.try_recv().ok(), Some(HoldOutcome::Held));
        let _rx = attach(&mut m, 1, chunk(vec![row(1, 1)], "0-1-12"));
        assert!(matches!(m.take_ready(), Some(Ready::Emit { dropped: 0, .. })));
        m.handle(Msg::Close { id: 1 });
        assert!(!m.holds_stream() && m.is_idle());
        // After the copy's position the table's changes are published.
        assert!(m.row("d.t", Some(&gtid(13)), &update(3)));
    }

    #[test]
    fn a_ddl_while_a_keyless_copy_starts_makes_it_start_again() {
        let mut m = Merger::new(pos("0-1-10"));
        let (ready, _frozen) = oneshot::channel();
        m.handle(Msg::Freeze { id: 1, table: "d.t".into(), ready });
        m.between_transactions();
        let (reply, mut held) = oneshot::channel();
        m.handle(Msg::Hold { id: 1, high: pos("0-1-11"), reply });
        m.ddl();
        m.committed(Some(&gtid(11)));
        m.between_transactions();
        assert_eq!(held.try_recv().ok(), Some(HoldOutcome::Retry));
        assert!(!m.holds_stream(), "the stream goes on until the next try");
    }
}
