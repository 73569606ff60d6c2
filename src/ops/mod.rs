//! Operations surface: the connector's live state ([`Ops`]), shared by the pipeline (which
//! records what moves) and the HTTP server ([`http`]: /healthz, /readyz, /metrics, /status,
//! POST /pause, /resume, /snapshot), plus the stall rule the watchdog applies.
//!
//! Invariants: recording is cheap (atomics; one short lock per row for the per-table counters)
//! and never blocks the data path on a reader of the state; every metric name and help text is
//! declared once ([`metrics`]); label sets are bounded (per-table series stop growing at
//! [`MAX_TABLES`] tables, the rest count under `table="_other"`); passwords never appear here
//! (nothing from the settings but the connector name is kept).
//!
//! Readiness: ready when the source connection is up and neither side is stalled — no event or
//! heartbeat from the source for `stall_timeout` (unless rowferry itself is not taking events:
//! paused, or waiting for Kafka), or records in flight and no ack for `stall_timeout` — and the
//! run has not failed. A paused connector is ready (it is healthy, and on purpose idle). Nor is it
//! ready when the stored offset has not moved for `stall_timeout` while a table stopped by an
//! error holds it, or while transactions wait behind it and Kafka acknowledges nothing: the age
//! of the stored offset resets only when it moves or has nothing waiting behind it.
//!
//! Liveness: `/healthz` fails once the stream loop, which beats on every tick, has not beaten for
//! `stall_timeout` (a wedged loop); before the loop's first beat and while stopping it passes.

/// Latency histograms (shared with the reader and the publisher, which fill them).
pub use crate::histogram;
pub mod http;
pub mod metrics;

use crate::reader::ReaderStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Per-table series stop growing here.
pub const MAX_TABLES: usize = 10_000;

/// Where the connector is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Starting,
    Snapshotting,
    Streaming,
    Paused,
    Stopping,
    Stopped,
    Failed,
}

pub use crate::clock::{now_ms, now_us};

/// Rows of one table by operation, added up before they are reported ([`Ops::rows`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RowCounts {
    pub inserts: u64,
    pub updates: u64,
    /// Deletes, and any other op (as `rowferry_rows_total{op="d"}`).
    pub deletes: u64,
}

impl RowCounts {
    /// One row of `op` (`c`, `u`, else counted as a delete).
    pub fn add(&mut self, op: &str) {
        match op {
            "c" => self.inserts += 1,
            "u" => self.updates += 1,
            _ => self.deletes += 1,
        }
    }
}

#[derive(Debug, Default)]
struct TableCounts {
    inserts: u64,
    updates: u64,
    deletes: u64,
    /// Why the table is stopped, if it is.
    stopped: Option<String>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Ops {
    connector: String,
    stall_timeout: Duration,
    started_ms: u64,
    state: Mutex<State>,
    paused: tokio::sync::watch::Sender<bool>,
    reader: OnceLock<Arc<ReaderStats>>,
    /// Source commit → Kafka ack per record, kept by the publisher.
    latency: OnceLock<Arc<histogram::Histogram>>,
    /// Source events taken by the pipeline (transaction boundaries, rows, statements, heartbeats).
    events: AtomicU64,
    published: AtomicU64,
    published_bytes: AtomicU64,
    delivery_errors: AtomicU64,
    inflight_records: AtomicU64,
    inflight_bytes: AtomicU64,
    last_ack_ms: AtomicU64,
    /// Source commit → processing delay of the last row, ms; 0 after a heartbeat (caught up).
    behind_ms: AtomicI64,
    /// rowferry is waiting for Kafka (the publisher is full): source silence is then expected.
    backpressured: AtomicBool,
    tables: Mutex<BTreeMap<String, TableCounts>>,
    /// The stored position, and when it last moved or was up to date with everything.
    committed: Mutex<Option<(String, u64)>>,
    /// Transactions registered but not yet covered by the stored offset.
    offset_waiting: AtomicU64,
    /// A table stopped by an error holds the stored offset.
    offset_held: AtomicBool,
    /// The stream loop's last tick, ms since the epoch (0: not yet).
    loop_beat_ms: AtomicU64,
    /// TRUNCATE TABLE statements of captured tables.
    truncates: AtomicU64,
    last_error: Mutex<Option<String>>,
    stalls: AtomicU64,
    /// Snapshot progress per table (`db.table`).
    snapshot: Mutex<BTreeMap<String, SnapshotTable>>,
    /// Where `POST /snapshot` hands its tables (set while the stream loop runs).
    snapshot_requests: Mutex<Option<tokio::sync::mpsc::Sender<Vec<String>>>>,
}

/// One table's snapshot, as `/status` and `/metrics` show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SnapshotTable {
    pub rows: u64,
    /// The server's row estimate when the copy started.
    pub estimate: u64,
    pub done: bool,
    /// Chunks read again because their window could not be placed in the stream.
    pub chunk_retries: u64,
    pub error: Option<String>,
    #[serde(skip)]
    pub started_ms: u64,
    #[serde(skip)]
    pub started_rows: u64,
}

/// A reason the connector is not ready, or `None`.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub reasons: Vec<String>,
    /// The source side is stalled (the watchdog reconnects it).
    #[serde(skip)]
    pub source_stalled: bool,
}

impl Ops {
    pub fn new(connector: &str, stall_timeout: Duration) -> Arc<Ops> {
        Arc::new(Ops {
            connector: connector.to_string(),
            stall_timeout,
            started_ms: now_ms(),
            state: Mutex::new(State::Starting),
            paused: tokio::sync::watch::Sender::new(false),
            reader: OnceLock::new(),
            latency: OnceLock::new(),
            events: AtomicU64::new(0),
            published: AtomicU64::new(0),
            published_bytes: AtomicU64::new(0),
            delivery_errors: AtomicU64::new(0),
            inflight_records: AtomicU64::new(0),
            inflight_bytes: AtomicU64::new(0),
            last_ack_ms: AtomicU64::new(now_ms()),
            behind_ms: AtomicI64::new(0),
            backpressured: AtomicBool::new(false),
            tables: Mutex::new(BTreeMap::new()),
            committed: Mutex::new(None),
            offset_waiting: AtomicU64::new(0),
            offset_held: AtomicBool::new(false),
            loop_beat_ms: AtomicU64::new(0),
            truncates: AtomicU64::new(0),
            last_error: Mutex::new(None),
            stalls: AtomicU64::new(0),
            snapshot: Mutex::new(BTreeMap::new()),
            snapshot_requests: Mutex::new(None),
        })
    }

    pub fn stall_timeout(&self) -> Duration {
        self.stall_timeout
    }

    pub fn set_state(&self, state: State) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
    }

    pub fn state(&self) -> State {
        let state = self.state.lock().map_or(State::Failed, |s| *s);
        if state == State::Streaming && *self.paused.borrow() { State::Paused } else { state }
    }

    pub fn attach_reader(&self, stats: Arc<ReaderStats>) {
        let _ = self.reader.set(stats);
    }

    pub fn attach_latency(&self, latency: Arc<histogram::Histogram>) {
        let _ = self.latency.set(latency);
    }

    /// Pause (`true`) or resume; the pipeline watches this.
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    pub fn paused(&self) -> tokio::sync::watch::Receiver<bool> {
        self.paused.subscribe()
    }

    pub fn event(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// A captured table was truncated (no rows in the binlog say so; see the log).
    pub fn truncated(&self) {
        self.truncates.fetch_add(1, Ordering::Relaxed);
    }

    pub fn truncates(&self) -> u64 {
        self.truncates.load(Ordering::Relaxed)
    }

    /// `counts` rows of `table` were processed at `now`, the last of them committed at
    /// `commit_ms` (the pipeline adds up a batch's rows and reports them once: one lock and one
    /// lookup per table and batch, not per row).
    pub fn rows(&self, table: &str, counts: RowCounts, commit_ms: i64, now: i64) {
        self.behind_ms.store(if commit_ms > 0 { (now - commit_ms).max(0) } else { 0 }, Ordering::Relaxed);
        if let Ok(mut tables) = self.tables.lock() {
            // A known table's counts are found with one lookup and no key built; a new one gets
            // its own entry while there is room, else "_other"'s.
            let entry = match tables.get_mut(table) {
                Some(entry) => entry,
                None => {
                    let key = if tables.len() < MAX_TABLES { table } else { "_other" };
                    tables.entry(key.to_string()).or_default()
                }
            };
            entry.inserts += counts.inserts;
            entry.updates += counts.updates;
            entry.deletes += counts.deletes;
        }
    }

    /// The source said it has nothing new: rowferry is caught up.
    pub fn heartbeat(&self) {
        self.behind_ms.store(0, Ordering::Relaxed);
    }

    /// Delivery reports taken together: `ok` records acknowledged, `failed` not.
    pub fn acked(&self, ok: u64, failed: u64) {
        if ok + failed == 0 {
            return;
        }
        self.last_ack_ms.store(now_ms(), Ordering::Relaxed);
        self.published.fetch_add(ok, Ordering::Relaxed);
        self.delivery_errors.fetch_add(failed, Ordering::Relaxed);
    }

    /// Key + value bytes Kafka acknowledged so far.
    pub fn published_bytes(&self, acked_bytes: u64) {
        self.published_bytes.store(acked_bytes, Ordering::Relaxed);
    }

    pub fn inflight(&self, records: usize, bytes: usize, full: bool, acked_bytes: u64) {
        self.published_bytes.store(acked_bytes, Ordering::Relaxed);
        self.inflight_records.store(records as u64, Ordering::Relaxed);
        self.inflight_bytes.store(bytes as u64, Ordering::Relaxed);
        self.backpressured.store(full, Ordering::Relaxed);
    }

    /// The stored offset is `gtid_set`; `caught_up`: it moved since the last report, or has
    /// nothing waiting behind it (its age restarts); `waiting` transactions are not yet covered
    /// by it, `held`: a stopped table holds it.
    pub fn offset(&self, gtid_set: String, caught_up: bool, waiting: usize, held: bool) {
        if let Ok(mut c) = self.committed.lock() {
            let at = match c.take() {
                Some((_, at)) if !caught_up => at,
                _ => now_ms(),
            };
            *c = Some((gtid_set, at));
        }
        self.offset_waiting.store(waiting as u64, Ordering::Relaxed);
        self.offset_held.store(held, Ordering::Relaxed);
    }

    /// The stored offset is `gtid_set` and up to date.
    pub fn committed(&self, gtid_set: String) {
        self.offset(gtid_set, true, 0, false);
    }

    /// The stream loop turned.
    pub fn beat(&self) {
        self.loop_beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// `Err(why)` when the stream loop has not turned for `stall_timeout` (see the module docs).
    pub fn liveness(&self) -> Result<(), String> {
        let beat = self.loop_beat_ms.load(Ordering::Relaxed);
        if beat == 0 || matches!(self.state(), State::Stopping | State::Stopped | State::Failed) {
            return Ok(());
        }
        let silent = Ops::age_secs(beat);
        if silent > self.stall_timeout.as_secs_f64() {
            return Err(format!("the stream loop has not turned for {silent:.0} s"));
        }
        Ok(())
    }

    /// Transactions not yet covered by the stored offset, and whether a stopped table holds it.
    pub fn offset_waiting(&self) -> (u64, bool) {
        (self.offset_waiting.load(Ordering::Relaxed), self.offset_held.load(Ordering::Relaxed))
    }

    pub fn table_stopped(&self, table: &str, why: &str) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.entry(table.to_string()).or_default().stopped = Some(why.to_string());
        }
    }

    pub fn snapshot_started(&self, table: &str, rows: u64, estimate: u64) {
        if let Ok(mut s) = self.snapshot.lock() {
            // Bounded like the per-table counters: /status and /metrics stay small.
            if s.len() >= MAX_TABLES && !s.contains_key(table) {
                return;
            }
            let entry =
                SnapshotTable { rows, estimate, started_ms: now_ms(), started_rows: rows, ..Default::default() };
            s.insert(table.to_string(), entry);
        }
    }

    pub fn snapshot_rows(&self, table: &str, rows: u64) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.entry(table.to_string()).or_default().rows = rows;
        }
    }

    pub fn snapshot_retry(&self, table: &str) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.entry(table.to_string()).or_default().chunk_retries += 1;
        }
    }

    /// A table's last chunk is durable.
    pub fn snapshot_done(&self, table: &str) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.entry(table.to_string()).or_default().done = true;
        }
    }

    pub fn snapshot_failed(&self, table: &str, why: &str) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.entry(table.to_string()).or_default().error = Some(why.to_string());
        }
    }

    /// Snapshot progress per table.
    pub fn snapshot_tables(&self) -> BTreeMap<String, SnapshotTable> {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Where `POST /snapshot` sends; `None` while no stream loop runs.
    pub fn set_snapshot_requests(&self, tx: Option<tokio::sync::mpsc::Sender<Vec<String>>>) {
        if let Ok(mut r) = self.snapshot_requests.lock() {
            *r = tx;
        }
    }

    /// Asks the running connector to snapshot `tables` (`db.table` names).
    pub fn request_snapshot(&self, tables: Vec<String>) -> Result<(), String> {
        let tx = self.snapshot_requests.lock().ok().and_then(|r| r.clone());
        match tx {
            None => Err("the connector is not streaming yet".into()),
            Some(tx) => tx.try_send(tables).map_err(|_| "a snapshot request is already being taken; try again".into()),
        }
    }

    pub fn failed(&self, error: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(error.to_string());
        }
        self.set_state(State::Failed);
    }

    pub fn stalled(&self) {
        self.stalls.fetch_add(1, Ordering::Relaxed);
    }

    fn age_secs(stamp_ms: u64) -> f64 {
        now_ms().saturating_sub(stamp_ms) as f64 / 1000.0
    }

    /// Readiness now; see the module docs.
    pub fn readiness(&self) -> Readiness {
        let limit = self.stall_timeout.as_secs_f64();
        let mut reasons = Vec::new();
        let mut source_stalled = false;
        let state = self.state();
        match state {
            State::Starting => reasons.push("starting".to_string()),
            State::Failed | State::Stopped | State::Stopping => reasons.push(format!("{state:?}").to_lowercase()),
            _ => {}
        }
        if let Some(reader) = self.reader.get() {
            let waiting_for_us = state == State::Paused || self.backpressured.load(Ordering::Relaxed);
            if !reader.connected.load(Ordering::Relaxed) {
                reasons.push(match reader.last_error() {
                    Some(error) => format!("not connected to the source (last error: {error})"),
                    None => "not connected to the source".into(),
                });
            } else if !waiting_for_us {
                let silent = Ops::age_secs(reader.last_seen_ms.load(Ordering::Relaxed));
                if silent > limit {
                    reasons.push(format!("no event or heartbeat from the source for {silent:.0} s"));
                    source_stalled = true;
                }
            }
        }
        let inflight = self.inflight_records.load(Ordering::Relaxed);
        let since_ack = Ops::age_secs(self.last_ack_ms.load(Ordering::Relaxed));
        if inflight > 0 && since_ack > limit {
            reasons.push(format!("no Kafka acknowledgement for {since_ack:.0} s with {inflight} records in flight"));
        }
        // A stuck offset: held by a stopped table, or with transactions waiting and no Kafka
        // acknowledgement either (a long transaction whose records keep being acknowledged is
        // progress, though the offset moves only at its end).
        let (waiting, held) = self.offset_waiting();
        let offset_age = self.committed.lock().ok().and_then(|c| c.as_ref().map(|(_, at)| Ops::age_secs(*at)));
        if let Some(age) = offset_age.filter(|age| *age > limit) {
            if held {
                reasons.push(format!(
                    "the stored offset has not moved for {age:.0} s: a stopped table holds it (see /status)"
                ));
            } else if waiting > 0 && since_ack > limit {
                reasons.push(format!(
                    "the stored offset has not moved for {age:.0} s with {waiting} transactions waiting behind it"
                ));
            }
        }
        Readiness { ready: reasons.is_empty(), reasons, source_stalled }
    }

    /// The `/status` document.
    pub fn status(&self) -> serde_json::Value {
        let readiness = self.readiness();
        let reader = self.reader.get();
        let committed = self.committed.lock().ok().and_then(|c| c.clone());
        let tables: serde_json::Map<String, serde_json::Value> = self
            .tables
            .lock()
            .map(|tables| {
                tables
                    .iter()
                    .map(|(name, t)| {
                        let state = if t.stopped.is_some() { "stopped" } else { "streaming" };
                        let doc = serde_json::json!({
                            "state": state,
                            "rows": {"c": t.inserts, "u": t.updates, "d": t.deletes},
                            "error": t.stopped,
                        });
                        (name.clone(), doc)
                    })
                    .collect()
            })
            .unwrap_or_default();
        serde_json::json!({
            "connector": self.connector,
            "version": env!("CARGO_PKG_VERSION"),
            "state": self.state(),
            "uptime_secs": Ops::age_secs(self.started_ms).round(),
            "ready": readiness.ready,
            "not_ready_because": readiness.reasons,
            "source": {
                "connected": reader.is_some_and(|r| r.connected.load(Ordering::Relaxed)),
                "last_event_age_secs": reader.map(|r| Ops::age_secs(r.last_seen_ms.load(Ordering::Relaxed))),
                "reconnects": reader.map_or(0, |r| r.reconnects.load(Ordering::Relaxed)),
                "last_error": reader.and_then(|r| r.last_error()),
                "semi_sync": reader.is_some_and(|r| r.semi_sync.load(Ordering::Relaxed)),
                "semi_sync_acks": reader.map_or(0, |r| r.semi_sync_acks.load(Ordering::Relaxed)),
            },
            "kafka": {
                "inflight_records": self.inflight_records.load(Ordering::Relaxed),
                "inflight_bytes": self.inflight_bytes.load(Ordering::Relaxed),
                "last_ack_age_secs": Ops::age_secs(self.last_ack_ms.load(Ordering::Relaxed)),
                "records_published": self.published.load(Ordering::Relaxed),
                "delivery_errors": self.delivery_errors.load(Ordering::Relaxed),
            },
            "seconds_behind_source": self.behind_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            "committed": committed.map(|(gtid_set, at)| serde_json::json!({
                "gtid_set": gtid_set,
                "age_secs": Ops::age_secs(at),
                "waiting_transactions": self.offset_waiting.load(Ordering::Relaxed),
                "held": self.offset_held.load(Ordering::Relaxed),
            })),
            "tables": tables,
            "snapshot": self.snapshot_tables(),
            "stalls": self.stalls.load(Ordering::Relaxed),
            "last_error": self.last_error.lock().ok().and_then(|e| e.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Arc<Ops> {
        let ops = Ops::new("c", Duration::from_secs(60));
        ops.set_state(State::Streaming);
        ops
    }

    /// Pretends the stored offset last moved, the loop last turned and Kafka last acknowledged
    /// `secs` ago.
    fn age(ops: &Ops, secs: u64) {
        if let Ok(mut c) = ops.committed.lock()
            && let Some((_, at)) = c.as_mut()
        {
            *at = now_ms() - secs * 1000;
        }
        ops.loop_beat_ms.store(now_ms() - secs * 1000, Ordering::Relaxed);
        ops.last_ack_ms.store(now_ms() - secs * 1000, Ordering::Relaxed);
    }

    #[test]
    fn a_stuck_offset_with_work_waiting_makes_rowferry_unready() {
        let ops = ops();
        ops.offset("0-1-5".into(), true, 3, false);
        age(&ops, 120);
        let r = ops.readiness();
        assert!(!r.ready && r.reasons.iter().any(|r| r.contains("3 transactions waiting")), "{r:?}");
        // Stored again without moving: the age does not restart.
        ops.offset("0-1-5".into(), false, 3, false);
        assert!(!ops.readiness().ready);
        ops.offset("0-1-5".into(), false, 0, true);
        assert!(ops.readiness().reasons.iter().any(|r| r.contains("a stopped table holds it")));
        // A long transaction whose records Kafka keeps acknowledging: not stuck.
        ops.acked(1, 0);
        ops.offset("0-1-5".into(), false, 1, false);
        assert!(ops.readiness().ready, "{:?}", ops.readiness());
        // Moved: ready again.
        ops.offset("0-1-6".into(), true, 3, false);
        assert!(ops.readiness().ready, "{:?}", ops.readiness());
        // Old but with nothing waiting (an idle source): ready.
        ops.offset("0-1-6".into(), true, 0, false);
        age(&ops, 120);
        assert!(ops.readiness().ready);
    }

    #[test]
    fn health_follows_the_stream_loop() {
        let ops = ops();
        assert!(ops.liveness().is_ok(), "before the loop's first beat");
        ops.beat();
        assert!(ops.liveness().is_ok());
        age(&ops, 120);
        assert!(ops.liveness().is_err_and(|e| e.contains("has not turned for 120 s")), "{:?}", ops.liveness());
        ops.set_state(State::Stopping);
        assert!(ops.liveness().is_ok(), "draining on shutdown is not a wedge");
    }
}
