//! Wiring: the one place that creates the stages and the bounded channel between them, in
//! downstream-first order (the receiver exists before the reader that sends into it is started —
//! Ghostferry #331 cannot happen), and routes events between them.
//!
//! ```text
//! reader ──TxnEvent (bounded)──▶ [route] ──▶ encoder ──▶ publisher ──delivery reports──▶ committer ──▶ offsets
//! copier ──chunks (bounded)──▶ [merger] ──▲ (between transactions, once the stream has passed them)
//! ```
//!
//! The snapshot side of the loop (plan, requests, chunk emission) is in `app::snapshot`.
//!
//! The loop is `biased`: delivery reports first (they free capacity and move the offset), then
//! shutdown, then the commit tick, then snapshot chunks (so a copy is never starved by a busy
//! binlog), then new events — chunks and events only while the publisher has room, so memory is bounded by `MAX_INFLIGHT` records and `MAX_INFLIGHT_BYTES` in flight plus
//! the channel. On SIGTERM/SIGINT it stops taking events, waits for the records in flight (up to
//! `shutdown_timeout_secs`), commits the final position and returns; a second signal exits at once.

use crate::binlog::events::Xid;
use crate::change::{Op, RowAt, RowChange};
use crate::check::{PreflightError, PreflightFailure};
use crate::committer::offsets::{OffsetError, OffsetStore};
use crate::committer::stage::{CommitError, Committer};
use crate::committer::{RecordId, TxnId};
use crate::config::{RegistrySettings, Settings, SnapshotMode};
use crate::encoder::EncodeError;
use crate::encoder::datum::{SourceInfo, TxnInfo};
use crate::encoder::stage::Encoder;
use crate::error::ErrorClass;
use crate::kafka::TopicSpec;
use crate::ops::{Ops, State};
use crate::position::Gtid;
use crate::publisher::{PublishError, Publisher, RecordHeaders};
use crate::reader::{Reader, ReaderError, ReaderOptions, TxnEvent};
use crate::registry::embedded::EmbeddedRegistry;
use crate::registry::external::ExternalRegistry;
use crate::registry::{Registry, RegistryError};
use crate::snapshot::SnapshotError;
use crate::snapshot::copier::Copier;
use crate::snapshot::merge::Merger;
use crate::snapshot::progress::{SnapshotKind, SnapshotProgress};
use crate::source::{self, Flavor, SourceError};
use std::sync::Arc;
use std::time::Duration;

mod snapshot;
/// Records in flight to Kafka at most (and so the bound on buffered encoded records)...
const MAX_INFLIGHT: usize = 50_000;
/// ...and their key + value bytes at most.
const MAX_INFLIGHT_BYTES: usize = 64 << 20;
/// Events between the reader and the router...
const CHANNEL: usize = 4096;
/// ...and the bytes of their rows at most.
const CHANNEL_BYTES: usize = 32 << 20;
/// Events routed per wake-up of the loop at most (between checks of acks, ticks and signals).
const EVENT_BATCH: usize = 512;

/// Why `run` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(Box<SourceError>),
    #[error(transparent)]
    Reader(Box<ReaderError>),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Snapshot(Box<SnapshotError>),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error("{0}")]
    Other(String),
}

// The source and reader errors carry mysql_async's (large) error: boxed to keep results small.
impl From<SourceError> for RunError {
    fn from(e: SourceError) -> Self {
        RunError::Source(Box::new(e))
    }
}

impl From<PreflightFailure> for RunError {
    fn from(e: PreflightFailure) -> Self {
        match e {
            PreflightFailure::Requirements(e) => RunError::Preflight(e),
            PreflightFailure::Source(e) => e.into(),
        }
    }
}

impl From<SnapshotError> for RunError {
    fn from(e: SnapshotError) -> Self {
        RunError::Snapshot(Box::new(e))
    }
}

impl From<ReaderError> for RunError {
    fn from(e: ReaderError) -> Self {
        RunError::Reader(Box::new(e))
    }
}

/// Per-transaction routing state.
struct Route {
    txn: Option<TxnId>,
    /// The open transaction's GTID, as read and as text.
    gtid_id: Option<Gtid>,
    gtid: String,
    commit_ms: i64,
    /// The source commit time in µs (MySQL 8+: exact; MariaDB: whole seconds).
    commit_us: u64,
    /// Data records of the transaction so far (tombstones not counted).
    index: u64,
    /// Data records per table, in order of first appearance (transaction metadata).
    tables: Vec<(Arc<str>, u64)>,
    /// The previous row's table: its schema, `db.table`, and whether it is captured (consecutive
    /// rows of a table share one schema `Arc`, so this is computed once per run of rows).
    last_table: Option<(Arc<crate::schema::TableSchema>, Arc<str>, bool)>,
    /// Tables stopped by a per-table error (`db.table` → why), for the rest of this run.
    stopped: std::collections::HashMap<String, String>,
    /// Where snapshot chunks join the stream.
    merger: Merger,
    /// XA transactions prepared and not yet decided: their tracker registration waits open (the
    /// offset stays before them) until the assembler resumes them at XA COMMIT/ROLLBACK.
    prepared: std::collections::HashMap<Xid, Parked>,
}

/// A prepared XA transaction's place in the tracker and its records so far.
#[derive(Debug)]
struct Parked {
    txn: TxnId,
    index: u64,
    tables: Vec<(Arc<str>, u64)>,
}

impl Route {
    /// The transaction whose events follow: registered as `txn`.
    fn start(&mut self, gtid: Option<Gtid>, commit_us: u64, txn: TxnId) {
        self.gtid = gtid.as_ref().map(Gtid::to_string).unwrap_or_default();
        self.gtid_id = gtid;
        self.commit_ms = (commit_us / 1000) as i64;
        self.commit_us = commit_us;
        self.index = 0;
        self.tables.clear();
        self.txn = Some(txn);
    }

    /// The `source` block of a streamed record of the open transaction, read at `at`.
    fn source<'a>(&'a self, ctx: &'a Ctx<'_>, at: &'a RowAt) -> SourceInfo<'a> {
        SourceInfo {
            connector: ctx.connector,
            name: &ctx.settings.name,
            ts_ms: self.commit_ms,
            ts_us: self.commit_us as i64,
            snapshot: "false",
            server_id: at.server_id,
            gtid: Some(&self.gtid),
            file: at.file.as_deref().unwrap_or_default(),
            pos: at.pos,
            row: at.row as i32,
            thread: at.thread,
        }
    }
}

/// What `run` is asked to do besides streaming.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `rowferry snapshot`: snapshot now, whatever `snapshot.mode` says (a stored snapshot in
    /// progress is resumed instead).
    pub force_snapshot: bool,
    /// Only these `db.table`s (default: every captured table).
    pub tables: Option<Vec<String>>,
    /// Stop once the snapshot is durable (the bootstrap command without `--then-stream`).
    pub stop_after_snapshot: bool,
}

/// Streams changes until a signal or a fatal error.
pub async fn run(settings: Settings) -> Result<(), RunError> {
    run_with(settings, RunOptions::default()).await
}

/// [`run`] with a snapshot request (the `snapshot` command).
pub async fn run_with(settings: Settings, options: RunOptions) -> Result<(), RunError> {
    // Signals first: a SIGTERM during start-up must also end in a clean stop.
    let signals = Signals::register().map_err(|e| RunError::Other(format!("installing signal handlers: {e}")))?;
    // The source first, as `check` sees it: a server rowferry cannot stream from correctly stops
    // the start before anything is read or stored.
    let mut conn = source::connect(&settings.source).await?;
    let flavor = crate::reader::flavor(&mut conn).await?;
    let mode = settings.snapshot.mode;
    // Without a snapshot to take at start, SELECT is needed only by a later `POST /snapshot`,
    // which reports its own error.
    let needs_select = mode != SnapshotMode::Never || options.force_snapshot;
    for warning in crate::check::preflight(&mut conn, &settings, needs_select).await? {
        tracing::warn!("{warning}");
    }
    // Downstream next: offsets, registry, encoder, publisher, committer, then the channel, and
    // only then the reader.
    let offsets = OffsetStore::open(&settings.offsets, &settings.kafka, settings.topics.replication_factor).await?;
    let stored = offsets.load(&settings.name).await?;
    let mut start = match &stored {
        Some(offset) => offset.position(flavor)?,
        None => crate::reader::current_position(&mut conn, flavor).await?,
    };
    let mut kind_reason = None;
    if let Err(e) = crate::reader::check_start(&mut conn, &start).await {
        let purged = matches!(e, ReaderError::Purged { .. });
        if purged && (mode == SnapshotMode::WhenNeeded || options.force_snapshot) {
            tracing::warn!(
                error = %e,
                "the stored position is gone from the source: streaming from now and snapshotting every captured \
                 table again (rowferry cannot tell which tables changed in the purged binlogs)"
            );
            start = crate::reader::current_position(&mut conn, flavor).await?;
            kind_reason = Some("purged");
        } else {
            return Err(e.into());
        }
    }
    let captured = crate::snapshot::describe::list_tables(&mut conn, &settings.tables).await?;
    let resumed = stored.as_ref().and_then(|o| o.snapshot.clone()).filter(|_| kind_reason.is_none());
    let plan = if let Some(progress) = resumed {
        tracing::info!(tables = progress.remaining().count(), "resuming the snapshot in progress");
        Some(progress)
    } else if options.force_snapshot || kind_reason.is_some() || (stored.is_none() && mode != SnapshotMode::Never) {
        let tables = match (&options.tables, kind_reason) {
            (Some(wanted), None) => snapshot::resolve_tables(wanted, &captured)?,
            _ => captured.iter().map(|(d, t)| format!("{d}.{t}")).collect(),
        };
        Some(SnapshotProgress::new(SnapshotKind::Initial, tables))
    } else {
        None
    };
    let plan = match plan {
        Some(progress) => {
            // An initial snapshot's keyless tables: their stream rows are muted until their copy.
            let keyless = match progress.kind {
                SnapshotKind::Initial => {
                    let pending: Vec<(String, String)> = captured
                        .iter()
                        .filter(|(d, t)| progress.remaining().any(|(n, _)| *n == format!("{d}.{t}")))
                        .cloned()
                        .collect();
                    crate::snapshot::describe::keyless_tables(&mut conn, flavor, &settings.snapshot, &pending).await?
                }
                SnapshotKind::Incremental => Vec::new(),
            };
            let prepared = crate::snapshot::describe::prepared_xa(&mut conn).await;
            if !prepared.is_empty() {
                tracing::warn!(
                    xids = ?prepared,
                    "XA transactions are prepared on the source and not decided: the snapshot cannot see their rows, \
                     and if they were prepared before its position the stream does not carry them either; commit or \
                     roll them back first (XA RECOVER lists them), or re-snapshot the tables they touched afterwards"
                );
            }
            Some(snapshot::SnapshotPlan { progress, captured, keyless })
        }
        None => None,
    };
    drop(conn);
    if stored.is_none() || kind_reason.is_some() {
        // Record where a first start begins: a crash before the first commit must resume here,
        // not at a later "now" (which would skip what changed in between). The snapshot to do
        // is stored with it, so a crash before its first chunk still snapshots.
        let first = crate::committer::offsets::StoredOffset::new(&settings.name, &start)
            .with_snapshot(plan.as_ref().map(|p| p.progress.clone()));
        offsets.store(&first).await?;
    }
    tracing::info!(position = %start, resumed = stored.is_some(), snapshot = plan.is_some(), "starting");

    let registry = match &settings.registry {
        RegistrySettings::Embedded { topic, compatibility } => Registry::Embedded(Arc::new(
            EmbeddedRegistry::open(&settings.kafka, topic, settings.topics.replication_factor)
                .await?
                .with_default_level(*compatibility),
        )),
        RegistrySettings::External { url, username, password, ca_file } => Registry::External(Arc::new(
            ExternalRegistry::new(url, username.as_deref(), password.as_ref(), ca_file.as_deref())?,
        )),
    };
    let listener = tokio::net::TcpListener::bind(settings.http.listen)
        .await
        .map_err(|e| RunError::Other(format!("http.listen {}: {e}", settings.http.listen)))?;
    let ops = Ops::new(&settings.name, settings.stall_timeout);
    let gate = crate::ops::http::Gate::new(settings.http.token.clone(), settings.http.listen);
    let mut http = crate::ops::http::router(Arc::clone(&ops), gate.clone());
    if let Registry::Embedded(embedded) = &registry {
        // The embedded registry's REST API is served for consumers; an external one serves itself.
        http = http.merge(crate::registry::http::router(Arc::clone(embedded), gate));
    }
    tokio::spawn(async move { axum::serve(listener, http).await });
    let outcome = stream(&settings, (flavor, start), registry, offsets, signals, &ops, (plan, &options)).await;
    match &outcome {
        Ok(()) => ops.set_state(State::Stopped),
        Err(e) => ops.failed(&e.to_string()),
    }
    outcome
}

/// The streaming part of [`run`], once the HTTP server is up.
async fn stream(
    settings: &Settings,
    (flavor, start): (Flavor, crate::position::Position),
    registry: Registry,
    offsets: OffsetStore,
    signals: Signals,
    ops: &Arc<Ops>,
    (plan, run_options): (Option<snapshot::SnapshotPlan>, &RunOptions),
) -> Result<(), RunError> {
    let publisher =
        Publisher::new(&settings.kafka, TopicSpec::data(&settings.topics), MAX_INFLIGHT, MAX_INFLIGHT_BYTES)?;
    ops.attach_latency(publisher.latency());
    let connector = match flavor {
        Flavor::MySql => "mysql",
        Flavor::MariaDb => "mariadb",
    };
    let mut st = Stages {
        encoder: Encoder::new(
            registry,
            settings.topics.clone(),
            settings.columns.clone(),
            settings.envelope,
            connector,
        ),
        publisher,
        committer: Committer::new(start.clone(), offsets, &settings.name, settings.commit_interval),
        acks: Vec::new(),
    };
    let mut merger = Merger::new(start.clone());
    // Snapshot chunks come into the loop before any binlog event is read, so no window can miss
    // a routed transaction; the copier's jobs are queued once the loop exists.
    let (chunk_tx, mut chunk_rx) = tokio::sync::mpsc::channel(2 * settings.snapshot.parallel + 2);
    // Unbounded but small: at most one job per captured table waits (the copier drops a job for
    // a table it is already copying or has queued), and a job is a name and a position.
    let (job_tx, job_rx) = tokio::sync::mpsc::unbounded_channel();
    let copier = Copier::new(settings.source.clone(), flavor, settings.snapshot.clone(), Arc::clone(ops), chunk_tx);
    let mut copier_task = tokio::spawn(copier.run(job_rx));
    let mut copier_done = false;
    let mut captured = Vec::new();
    if let Some(snapshot::SnapshotPlan { mut progress, captured: tables, keyless }) = plan {
        progress.tables.retain(|name, _| {
            let exists = tables.iter().any(|(d, t)| format!("{d}.{t}") == *name);
            if !exists {
                tracing::warn!(table = %name, "the table to snapshot no longer exists; skipped");
            }
            exists
        });
        for job in snapshot::jobs(progress.kind, &progress.tables, &tables, &keyless) {
            let _ = job_tx.send(job);
        }
        merger.mute(keyless.iter().map(|t| Arc::from(t.as_str())));
        st.committer.snapshot_resume(progress);
        captured = tables;
    }
    // The bootstrap command takes no requests: its copier ends with its tables.
    let mut job_tx = Some(job_tx);
    if run_options.stop_after_snapshot {
        // Dropped (not shadowed): the copier sees its job queue close.
        job_tx = None;
    }
    let (request_tx, mut request_rx) = tokio::sync::mpsc::channel::<Vec<String>>(1);
    let (mut requests_open, mut chunks_open) = (true, true);
    if job_tx.is_some() {
        ops.set_snapshot_requests(Some(request_tx));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(CHANNEL);
    // Heartbeats at least three times per stall bound; a dead link is noticed after three.
    let heartbeat = Duration::from_secs(5).min(settings.stall_timeout / 3);
    let budget = crate::reader::EventBudget::new(CHANNEL_BYTES);
    let options = ReaderOptions {
        heartbeat,
        read_timeout: heartbeat * 3,
        tables: Some(settings.tables.clone()),
        budget: Some(Arc::clone(&budget)),
        ..ReaderOptions::default()
    };
    let reader = Reader::new(settings.source.clone(), options);
    let reader_stats = reader.stats();
    ops.attach_reader(Arc::clone(&reader_stats));
    let reader = tokio::spawn(async move { reader.run(start, tx).await });
    let snapshotting = |c: &Committer| c.snapshot().is_some_and(|s| !s.is_complete());
    ops.set_state(if snapshotting(&st.committer) { State::Snapshotting } else { State::Streaming });
    let mut paused = ops.paused();
    let mut watchdog = tokio::time::interval(Duration::from_secs(1));
    let mut stalled = false;

    let mut shutdown = Box::pin(shutdown_signal(signals));
    // At least once a second: the tick is also the loop's heartbeat (`/healthz`); the committer
    // stores the offset only once its interval has passed.
    let mut tick = tokio::time::interval(settings.commit_interval.min(Duration::from_secs(1)));
    let mut route = Route {
        txn: None,
        gtid_id: None,
        gtid: String::new(),
        commit_ms: 0,
        commit_us: 0,
        index: 0,
        tables: Vec::new(),
        last_table: None,
        stopped: Default::default(),
        merger,
        prepared: Default::default(),
    };
    let reader_ended = loop {
        tokio::select! {
            biased;
            _ = st.publisher.acks_ready(), if st.publisher.inflight() > 0 => {
                st.publisher.take_acks(&mut st.acks);
                st.settle(ops)?;
            }
            _ = &mut shutdown => break false,
            _ = tick.tick() => {
                ops.beat();
                let stored = st.committer.commit(false).await?;
                let caught_up = st.committer.caught_up(stored);
                let (waiting, held) = st.committer.waiting();
                ops.offset(st.committer.position().to_string(), caught_up, waiting, held);
                if let Some(s) = st.committer.snapshot() {
                    for (table, p) in &s.tables {
                        if p.done {
                            ops.snapshot_done(table);
                        }
                    }
                }
                if !*paused.borrow() {
                    ops.set_state(if snapshotting(&st.committer) { State::Snapshotting } else { State::Streaming });
                }
                if run_options.stop_after_snapshot && copier_done && st.publisher.inflight() == 0 && route.merger.is_idle() {
                    st.committer.commit(true).await?;
                    if snapshotting(&st.committer) {
                        return Err(RunError::Other(
                            "the snapshot did not complete: see the errors above (the finished tables' progress \
                             is stored; `rowferry snapshot` again resumes)"
                                .into(),
                        ));
                    }
                    tracing::info!("snapshot complete and committed; `rowferry run` continues from here");
                    break false;
                }
            }
            _ = &mut copier_task, if !copier_done => copier_done = true,
            request = request_rx.recv(), if requests_open => {
                // Closed when nothing takes requests (the bootstrap command): stop polling it.
                requests_open = request.is_some();
                if let (Some(tables), Some(jobs_tx)) = (request, job_tx.as_ref()) {
                    snapshot::request(settings, tables, &mut captured, &mut st.committer, jobs_tx).await;
                }
            }
            msg = chunk_rx.recv(), if chunks_open && st.publisher.has_capacity() && !*paused.borrow() => {
                // Closed once the copier has ended (the bootstrap command): stop polling it.
                chunks_open = msg.is_some();
                if let Some(msg) = msg {
                    route.merger.handle(msg);
                    if route.txn.is_none() {
                        route.merger.between_transactions();
                        let ctx = Ctx { settings, connector, ops, now_ms: crate::ops::now_ms() as i64 };
                        snapshot::emit_chunks(&mut route, &ctx, &mut st).await?;
                        st.settle(ops)?;
                    }
                }
            }
            _ = watchdog.tick() => {
                ops.inflight(
                    st.publisher.inflight(),
                    st.publisher.inflight_bytes(),
                    // A keyless table's copy holding the stream is rowferry's own wait too.
                    !st.publisher.has_capacity() || (route.txn.is_none() && route.merger.holds_stream()),
                    st.publisher.acked_bytes(),
                );
                let readiness = ops.readiness();
                if readiness.source_stalled && !stalled {
                    tracing::warn!(reasons = ?readiness.reasons, "stalled: reconnecting to the source");
                    ops.stalled();
                    reader_stats.kick.notify_one();
                }
                stalled = readiness.source_stalled;
            }
            _ = paused.changed() => {}
            event = rx.recv(), if st.publisher.has_capacity() && !*paused.borrow()
                && !(route.txn.is_none() && route.merger.holds_stream()) => {
                let Some(mut event) = event else { break true };
                budget.give_back(&event);
                let now_ms = crate::ops::now_ms() as i64;
                let ctx = Ctx { settings, connector, ops, now_ms };
                // A batch of what is already queued per wake-up, while there is room. An event is
                // taken from the channel only when it is routed right away.
                let mut routed = 0;
                let mut interrupted = false;
                loop {
                    ops.event();
                    // A signal also ends an event that waits (a schema registry retried for a
                    // minute, a full producer queue): its transaction is left unfinished, so the
                    // final offset stays before it and a restart sends it again.
                    tokio::select! {
                        biased;
                        outcome = route_event(event, &mut route, &ctx, &mut st) => outcome?,
                        _ = &mut shutdown => {
                            interrupted = true;
                            break;
                        }
                    }
                    if route.txn.is_none() && !route.merger.is_idle() {
                        route.merger.between_transactions();
                        snapshot::emit_chunks(&mut route, &ctx, &mut st).await?;
                        if route.merger.holds_stream() {
                            st.settle(ops)?;
                            break;
                        }
                    }
                    st.settle(ops)?;
                    routed += 1;
                    if routed == EVENT_BATCH || !st.publisher.has_capacity() {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(next) => {
                            budget.give_back(&next);
                            event = next;
                        }
                        Err(_) => break,
                    }
                }
                if interrupted {
                    break false;
                }
            }
        }
    };
    ops.set_state(State::Stopping);
    ops.set_snapshot_requests(None);
    job_tx.take();
    copier_task.abort();

    // Stop reading, settle what is in flight, store the final position.
    drop(rx);
    let deadline = tokio::time::Instant::now() + settings.shutdown_timeout;
    while st.publisher.inflight() > 0 {
        match tokio::time::timeout_at(deadline, st.publisher.next_acks(&mut st.acks)).await {
            Ok(()) => st.settle(ops)?,
            Err(_) => {
                tracing::warn!(
                    inflight = st.publisher.inflight(),
                    "shutdown deadline passed with records in flight; they will be sent again"
                );
                break;
            }
        }
    }
    st.committer.commit(true).await?;
    ops.committed(st.committer.position().to_string());
    tracing::info!(position = %st.committer.position(), "stopped; offset committed");
    // The reader ends as soon as it sees the channel closed; bounded anyway (then abandoned).
    let outcome = match tokio::time::timeout(Duration::from_secs(5), reader).await {
        Ok(joined) => joined.map_err(|e| RunError::Other(format!("reader task: {e}")))?,
        Err(_) => {
            tracing::warn!("the binlog reader did not stop within 5 s; abandoning it");
            Ok(())
        }
    };
    match (reader_ended, outcome) {
        (_, Err(e)) => Err(e.into()),
        (true, Ok(())) => Err(RunError::Other("the reader stopped unexpectedly".into())),
        (false, Ok(())) => Ok(()),
    }
}

struct Ctx<'a> {
    settings: &'a Settings,
    connector: &'a str,
    ops: &'a Ops,
    /// When this batch of events is processed (the records' `ts_ms`).
    now_ms: i64,
}

/// Hands one event to the stage it belongs to.
async fn route_event(event: TxnEvent, route: &mut Route, ctx: &Ctx<'_>, st: &mut Stages) -> Result<(), RunError> {
    let Stages { encoder, publisher, committer, acks } = st;
    match event {
        TxnEvent::Begin { gtid, commit_us } => {
            let txn = committer.begin(gtid.clone());
            route.start(gtid, commit_us, txn);
        }
        TxnEvent::Prepared { xid } => {
            // Not ended: the tracker holds the offset before it until its outcome is published.
            let txn = route.txn.take().ok_or_else(|| RunError::Other("XA PREPARE outside a transaction".into()))?;
            let parked = Parked { txn, index: route.index, tables: std::mem::take(&mut route.tables) };
            route.prepared.insert(xid, parked);
        }
        TxnEvent::Resume { xid, gtid, commit_us } => {
            let parked = route
                .prepared
                .remove(&xid)
                .ok_or_else(|| RunError::Other(format!("XA transaction {xid} resumed but never prepared")))?;
            route.start(gtid, commit_us, parked.txn);
            route.index = parked.index;
            route.tables = parked.tables;
        }
        TxnEvent::Row(change) => {
            let txn = route.txn.ok_or_else(|| RunError::Other("row outside a transaction".into()))?;
            let (table, captured) = match &route.last_table {
                Some((schema, name, captured)) if Arc::ptr_eq(schema, &change.table) => (Arc::clone(name), *captured),
                _ => {
                    let name: Arc<str> = format!("{}.{}", change.table.db, change.table.table).into();
                    let captured = ctx.settings.tables.captures(&change.table.db, &change.table.table);
                    route.last_table = Some((Arc::clone(&change.table), Arc::clone(&name), captured));
                    (name, captured)
                }
            };
            if !captured {
                return Ok(());
            }
            let muted = !route.merger.is_idle() && !route.merger.row(&table, route.gtid_id.as_ref(), &change);
            if route.stopped.contains_key(&*table) {
                // Not published; the hold keeps the offset before the first such transaction.
                committer.hold(txn)?;
                return Ok(());
            }
            if muted {
                // A keyless table's copy carries this change (see `snapshot::merge`).
                return Ok(());
            }
            // A primary-key change is a delete of the old key and a create of the new one, as
            // Debezium writes it: a compacted topic must lose the old key.
            for change in split_key_change(change).into_iter().flatten() {
                if route.stopped.contains_key(&*table) {
                    st.committer.hold(txn)?;
                    return Ok(());
                }
                publish_row(&change, &table, txn, route, ctx, st).await?;
            }
        }
        TxnEvent::Commit { .. } => {
            if let Some(txn) = route.txn.take() {
                if ctx.settings.topics.transaction_metadata && route.index > 0 {
                    let end = encoder.transaction_record(&route.gtid, Some(&route.tables), route.commit_ms).await?;
                    let headers = RecordHeaders {
                        gtid: &route.gtid,
                        position: route.index + 1,
                        table: "",
                        commit_us: route.commit_us,
                    };
                    send(encoder_record(end), txn, &headers, publisher, committer, acks).await?;
                }
                committer.end(txn)?;
            }
            route.merger.committed(route.gtid_id.as_ref());
        }
        TxnEvent::Abort => {
            if let Some(txn) = route.txn.take() {
                committer.void(txn)?;
            }
        }
        TxnEvent::TableError { db, table, error } => {
            let txn = route.txn.ok_or_else(|| RunError::Other("table error outside a transaction".into()))?;
            let table = format!("{db}.{table}");
            if !route.stopped.contains_key(&table) {
                return stop_table(route, ctx, committer, txn, &table, &error);
            }
            committer.hold(txn)?;
        }
        TxnEvent::Heartbeat => ctx.ops.heartbeat(),
        TxnEvent::Statement { db, sql } => {
            route.merger.ddl();
            if let Some((db, table)) = truncated_table(&db, &sql)
                && ctx.settings.tables.captures(&db, &table)
            {
                ctx.ops.truncated();
                let name = format!("{db}.{table}");
                let schema = encoder.known(&db, &table);
                match (ctx.settings.topics.truncate_records, route.txn, schema) {
                    (true, Some(txn), Some(schema)) if !route.stopped.contains_key(&name) => {
                        let change = RowChange {
                            op: Op::Truncate,
                            table: schema,
                            before: None,
                            after: None,
                            at: Default::default(),
                        };
                        // The statement's own position is not carried: an empty one.
                        let at = RowAt::default();
                        let source = route.source(ctx, &at);
                        let encoded = match encoder.encode(&change, &source, None, ctx.now_ms).await {
                            Ok(encoded) => encoded,
                            Err(e) if e.class() == ErrorClass::PerTable => {
                                return stop_table(route, ctx, committer, txn, &name, &e.to_string());
                            }
                            Err(e) => return Err(e.into()),
                        };
                        let headers =
                            RecordHeaders { gtid: &route.gtid, position: 0, table: &name, commit_us: route.commit_us };
                        send(encoder_record(encoded), txn, &headers, publisher, committer, acks).await?;
                        tracing::info!(table = %name, gtid = %route.gtid, "TRUNCATE TABLE: op \"t\" record sent");
                    }
                    (true, _, None) => tracing::warn!(
                        table = %name,
                        gtid = %route.gtid,
                        "TRUNCATE TABLE of a table with no rows read since rowferry started: its shape is not known, so \
                         no op \"t\" record was sent; the topic keeps the old rows' records (POST /snapshot re-seeds it)"
                    ),
                    _ => tracing::warn!(
                        table = %name,
                        gtid = %route.gtid,
                        "TRUNCATE TABLE: the binlog has no rows for it, so no record says the rows are gone; the topic \
                         keeps their last records (a snapshot of the table, POST /snapshot, re-seeds it; delete the old \
                         records with a retention or by hand; topics.truncate_records = true sends Debezium's op \"t\" \
                         record)"
                    ),
                }
            }
        }
    }
    Ok(())
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
    // One identifier or two joined by a dot, each plain or in backticks (`` doubled inside).
    let mut parts = Vec::new();
    let mut chars = rest.chars().peekable();
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
            break;
        }
    }
    match parts.as_slice() {
        [table] => Some((db.to_string(), table.clone())),
        [db, table] => Some((db.clone(), table.clone())),
        _ => None,
    }
}

/// The primary key of a change's row as `col=value, …` (the whole row when it has none), for
/// messages.
fn key_text(change: &RowChange) -> String {
    let Some(image) = change.after.as_ref().or(change.before.as_ref()) else { return "-".into() };
    let columns = &change.table.columns;
    let shown: Vec<usize> = if change.table.primary_key.is_empty() {
        (0..columns.len().min(image.len())).collect()
    } else {
        change.table.primary_key.clone()
    };
    let text: Vec<String> = shown
        .iter()
        .filter_map(|&i| Some(format!("{}={}", columns.get(i)?.name, short(&format!("{:?}", image.get(i)?)))))
        .collect();
    text.join(", ")
}

/// At most 64 characters of `s`.
fn short(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
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

/// Publishes one row change of captured, running table `table` in transaction `txn` (with the
/// transaction's BEGIN record first, when transaction metadata is on, and a tombstone after a
/// delete); a per-table failure stops the table.
async fn publish_row(
    change: &RowChange,
    table: &Arc<str>,
    txn: TxnId,
    route: &mut Route,
    ctx: &Ctx<'_>,
    st: &mut Stages,
) -> Result<(), RunError> {
    let Stages { encoder, publisher, committer, acks } = st;
    let metadata = ctx.settings.topics.transaction_metadata;
    if metadata && route.index == 0 {
        let begin = encoder.transaction_record(&route.gtid, None, route.commit_ms).await?;
        // One partition: BEGIN and END of every transaction in commit order.
        let spec = TopicSpec { partitions: 1, ..TopicSpec::data(&ctx.settings.topics) };
        publisher.ensure_topic_as(&begin.topic, &spec).await?;
        let headers = RecordHeaders { gtid: &route.gtid, position: 0, table: "", commit_us: route.commit_us };
        send(encoder_record(begin), txn, &headers, publisher, committer, acks).await?;
    }
    route.index += 1;
    // Per-table counts exist for transaction metadata only.
    let txn_info = metadata.then(|| {
        let in_table = match route.tables.iter_mut().find(|(t, _)| *t == *table) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                route.tables.push((Arc::clone(table), 1));
                1
            }
        };
        TxnInfo { id: route.gtid.clone(), total_order: route.index as i64, data_collection_order: in_table as i64 }
    });
    let source = route.source(ctx, &change.at);
    let encoded = match encoder.encode(change, &source, txn_info.as_ref(), ctx.now_ms).await {
        Ok(encoded) => encoded,
        Err(e) if e.class() == ErrorClass::PerTable => {
            return stop_table(route, ctx, committer, txn, table, &e.to_string());
        }
        Err(e) => return Err(e.into()),
    };
    ctx.ops.row(table, crate::encoder::datum::op_code(change.op), route.commit_ms, ctx.now_ms);
    let headers = RecordHeaders { gtid: &route.gtid, position: route.index, table, commit_us: route.commit_us };
    // A tombstone after a delete lets compaction drop the key.
    let tombstone = (ctx.settings.topics.tombstones && change.op == Op::Delete && encoded.key.is_some())
        .then(|| (Arc::clone(&encoded.topic), encoded.key.clone(), None));
    match send(encoder_record(encoded), txn, &headers, publisher, committer, acks).await {
        Err(RunError::Publish(e)) if e.class() == ErrorClass::PerTable => {
            let why = format!("{e} (the row's key: {})", key_text(change));
            return stop_table(route, ctx, committer, txn, table, &why);
        }
        other => other?,
    }
    if let Some(tombstone) = tombstone {
        send(tombstone, txn, &headers, publisher, committer, acks).await?;
    }
    Ok(())
}

/// Stops `table` for the rest of this run (`error` says why): its changes are not published and
/// the commit tracker holds transaction `txn`, so the stored offset stays before it while the
/// other tables keep streaming; a restart after the fix reads it again.
fn stop_table(
    route: &mut Route,
    ctx: &Ctx<'_>,
    committer: &mut Committer,
    txn: TxnId,
    table: &str,
    error: &str,
) -> Result<(), RunError> {
    tracing::error!(
        table = %table,
        gtid = %route.gtid,
        error = %error,
        "table stopped: its changes are not published and the stored offset stays before this transaction; the \
         other tables keep streaming. Fix the cause and restart rowferry: it resumes here (the other tables' \
         records since then are sent again)"
    );
    ctx.ops.table_stopped(table, error);
    route.stopped.insert(table.to_string(), error.to_string());
    committer.hold(txn)?;
    Ok(())
}

/// The stages a routed event or snapshot chunk passes through, and the deliveries Kafka has
/// reported but the committer has not yet been told about.
struct Stages {
    encoder: Encoder,
    publisher: Publisher,
    committer: Committer,
    acks: Vec<(RecordId, Result<(), String>)>,
}

impl Stages {
    /// Hands the reported deliveries to the committer.
    fn settle(&mut self, ops: &Ops) -> Result<(), RunError> {
        for (record, result) in self.acks.drain(..) {
            ops.acked(result.is_ok());
            self.committer.delivered(record, result)?;
        }
        // With the records' count, so the two figures always agree.
        ops.published_bytes(self.publisher.acked_bytes());
        Ok(())
    }
}

/// Topic, key and value (`None`: a tombstone) of one record.
type Record = (Arc<str>, Option<Vec<u8>>, Option<Vec<u8>>);

fn encoder_record(e: crate::encoder::stage::Encoded) -> Record {
    (e.topic, e.key, Some(e.value))
}

/// Publishes one record of transaction `txn`, creating its topic the first time.
async fn send(
    (topic, key, value): Record,
    txn: TxnId,
    headers: &RecordHeaders<'_>,
    publisher: &mut Publisher,
    committer: &mut Committer,
    acks: &mut Vec<(RecordId, Result<(), String>)>,
) -> Result<(), RunError> {
    publisher.ensure_topic(&topic).await?;
    publisher.check_size(&topic, key.as_deref(), value.as_deref(), headers)?;
    let record = committer.sent(txn)?;
    publisher.send(record, &topic, key.as_deref(), value.as_deref(), headers, acks).await?;
    Ok(())
}

/// SIGTERM and SIGINT, registered when created (so none is missed while starting up).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits the process at once.
async fn shutdown_signal(mut signals: Signals) {
    signals.next().await;
    tracing::info!("stopping: finishing records in flight and committing (signal again to exit at once)");
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("second signal: exiting without the final commit");
        std::process::exit(130);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_table_of_a_truncate() {
        let t = |db: &str, table: &str| Some((db.to_string(), table.to_string()));
        assert_eq!(truncated_table("d", "TRUNCATE TABLE t"), t("d", "t"));
        assert_eq!(truncated_table("d", "truncate t"), t("d", "t"));
        assert_eq!(truncated_table("d", "  /* c */ TRUNCATE TABLE other.t2"), t("other", "t2"));
        assert_eq!(truncated_table("d", "truncate table `we``ird`.`ta ble`"), t("we`ird", "ta ble"));
        assert_eq!(truncated_table("d", "TRUNCATE `table`"), t("d", "table"));
        assert_eq!(truncated_table("d", "TRUNCATE TABLE table_x"), t("d", "table_x"));
        assert_eq!(truncated_table("d", "TRUNCATEX t"), None);
        assert_eq!(truncated_table("d", "ALTER TABLE t ADD c INT"), None);
    }

    #[test]
    fn a_primary_key_change_is_a_delete_and_a_create() {
        use crate::change::Value;
        use crate::encoder::avro_schema::tests::{every_type, table};
        let t = Arc::new(table(every_type()));
        let row = |id: i64, ti: i64| {
            let mut v: Vec<Value> = t.columns.iter().map(|_| Value::Null).collect();
            v[0] = Value::Int(id);
            v[1] = Value::Int(ti);
            v
        };
        let at = RowAt { pos: 700, row: 2, server_id: 1, ..RowAt::default() };
        let update = |before, after| RowChange {
            op: Op::Update,
            table: Arc::clone(&t),
            before: Some(before),
            after: Some(after),
            at: at.clone(),
        };
        // Another column changed: one update, as it was.
        let same_key = update(row(1, 5), row(1, 6));
        assert_eq!(split_key_change(same_key.clone()), [Some(same_key), None]);
        // The key changed: the old key deleted, the new one created, both where the update was.
        let split: Vec<RowChange> = split_key_change(update(row(1, 5), row(2, 5))).into_iter().flatten().collect();
        let shape: Vec<_> = split.iter().map(|c| (c.op, c.before.is_some(), c.after.is_some(), c.at.pos)).collect();
        assert_eq!(shape, [(Op::Delete, true, false, 700), (Op::Insert, false, true, 700)]);
        assert_eq!(split[0].before, Some(row(1, 5)));
        assert_eq!(split[1].after, Some(row(2, 5)));
    }
}
