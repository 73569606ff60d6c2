//! The driver: creates the stages and the bounded channels between them, in downstream-first
//! order (the receiver exists before the reader that sends into it is started — Ghostferry #331
//! cannot happen), and runs the loop that moves work between them. It holds no policy: what an
//! event becomes is the router's, how it is published and committed is delivery's.
//!
//! One row, from the socket to the stored offset:
//!
//! 1. `reader::dump` reads the event's packet from the replication connection (the reader runs on
//!    a thread of its own, [`spawn_reader`]);
//!    `decoder` decodes it once, against the schema its TABLE_MAP gave (`schema`), into a
//!    [`RowChange`](crate::change::RowChange); `reader::assembler` frames it as a
//!    [`TxnEvent::Row`] between the transaction's `Begin` and `Commit`, and the reader sends it,
//!    in a batch with the events the socket had already delivered ([`EventBatch`]), into the
//!    bounded event channel (bounded by batches and by bytes, [`CHANNEL`] and [`CHANNEL_BYTES`]).
//! 2. Here, the driver takes it when the publisher has room and hands it to the router
//!    (`app::router`), which turns it into [`Step`](router::Step)s: the records it becomes
//!    (captured tables only, a key change split in two, tombstone and transaction metadata), or a
//!    hold when its table is stopped.
//! 3. `app::delivery` carries the steps out: `encoder` makes the record's bytes (registering its
//!    schema on first use), the commit tracker (`committer::tracker`) registers it under its
//!    transaction, `publisher` hands it to librdkafka.
//! 4. Kafka acknowledges it; the report comes back to delivery, which tells the committer. Once
//!    every record of the transaction and of all transactions before it is acknowledged, the
//!    tracker releases its GTID, and `committer::stage` stores the position (`committer::offsets`)
//!    as soon as `offsets.interval_ms` has passed since its last write (the loop wakes then).
//!
//! Snapshot chunks (`snapshot::copier`) come in through the router too, which releases them
//! between transactions (`snapshot::merge`); `app::snapshot` holds the copier's side of the loop,
//! `app::start` what happens before streaming.
//!
//! The loop is `biased`: delivery reports first (they free capacity and move the offset), then
//! shutdown, then the commit tick and the offset's store time, then snapshot chunks (so a copy is never starved by a busy
//! binlog), then new events — chunks and events only while the publisher has room, so memory is
//! bounded by the publisher's records and bytes in flight ([`MAX_INFLIGHT`],
//! [`MAX_INFLIGHT_BYTES`]) plus the channels. On SIGTERM/SIGINT it stops taking events, waits for
//! the records in flight (up to `shutdown_timeout_secs`), commits the final position and returns;
//! a second signal exits at once.

use crate::check::{PreflightError, PreflightFailure};
use crate::committer::offsets::OffsetError;
use crate::committer::stage::{CommitError, Committer};
use crate::config::{DeliveryMode, Settings};
use crate::encoder::EncodeError;
use crate::encoder::stage::Encoder;
use crate::kafka::TopicSpec;
use crate::ops::{Ops, State};
use crate::publisher::PublishError;
use crate::reader::{EventBatch, EventBudget, Reader, ReaderError, ReaderOptions, ReaderStats, TxnEvent};
use crate::registry::{Registry, RegistryError};
use crate::snapshot::SnapshotError;
use crate::snapshot::merge::Merger;
use crate::source::{Flavor, SourceError};
use delivery::{Delivery, DeliverySettings};
use router::{RouteError, Router, RouterSettings, Step};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

mod delivery;
mod router;
mod snapshot;
mod start;

/// Records in flight to Kafka at most (and so the bound on buffered encoded records)...
const MAX_INFLIGHT: usize = 50_000;
/// ...and their key + value bytes at most.
const MAX_INFLIGHT_BYTES: usize = 64 << 20;
/// Event batches between the reader and the router (each at most `reader::MAX_BATCH` events)...
const CHANNEL: usize = 64;
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
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("{0}")]
    Other(String),
}

impl RunError {
    /// Another instance with this connector's name took over (exactly-once delivery).
    pub fn is_fenced(&self) -> bool {
        matches!(self, RunError::Publish(PublishError::Fenced { .. }))
    }
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
    // Downstream first: the source checked and the start worked out (offsets opened), the HTTP
    // port taken; then the stages, the channel, and only then the reader. The registry opens
    // meanwhile (its topic made, and replayed unless just made), since only the first record's
    // schema needs it.
    let started = start::prepare(&settings, &options).await?;
    let listener = tokio::net::TcpListener::bind(settings.http.listen)
        .await
        .map_err(|e| RunError::Other(format!("http.listen {}: {e}", settings.http.listen)))?;
    let registry = tokio::spawn({
        let settings = settings.clone();
        async move { start::registry(&settings).await }
    });
    let ops = Ops::new(&settings.name, settings.stall_timeout);
    let outcome = stream(&settings, Opening { started, registry, listener }, signals, &ops, &options).await;
    match &outcome {
        Ok(()) => ops.set_state(State::Stopped),
        Err(e) => ops.failed(&e.to_string()),
    }
    outcome
}

/// What the start left for streaming: where and how it starts, the registry being opened, and the
/// HTTP API's port.
struct Opening {
    started: start::Started,
    registry: tokio::task::JoinHandle<Result<Registry, RunError>>,
    listener: tokio::net::TcpListener,
}

/// Serves the HTTP API on `listener` (ops endpoints; the embedded registry's REST API for
/// consumers).
fn serve_http(listener: tokio::net::TcpListener, settings: &Settings, registry: &Registry, ops: &Arc<Ops>) {
    let gate = crate::ops::http::Gate::new(settings.http.token.clone(), settings.http.listen);
    let mut http = crate::ops::http::router(Arc::clone(ops), gate.clone());
    if let Registry::Embedded(embedded) = registry {
        // An external registry serves itself.
        http = http.merge(crate::registry::http::router(Arc::clone(embedded), gate));
    }
    tokio::spawn(async move { axum::serve(listener, http).await });
}

/// The streaming part of [`run`], once the start is worked out: the stages, the reader, and —
/// once the registry is open — the HTTP API and the loop.
async fn stream(
    settings: &Settings,
    opening: Opening,
    signals: Signals,
    ops: &Arc<Ops>,
    options: &RunOptions,
) -> Result<(), RunError> {
    let Opening { started, registry, listener } = opening;
    let start::Started { flavor, position, offsets, plan, mut publisher } = started;
    ops.attach_latency(publisher.latency());
    let connector = match flavor {
        Flavor::MySql => "mysql",
        Flavor::MariaDb => "mariadb",
    };
    let mut committer = Committer::new(position.clone(), offsets, &settings.name, settings.commit_interval);
    let mut router = Router::new(router_settings(settings), Merger::new(position.clone()));
    // Snapshot chunks come into the loop before any binlog event is read.
    let side =
        snapshot::Side::start(settings, flavor, plan, ops, (&mut router, &mut committer), options.stop_after_snapshot);
    let delivery_settings = delivery_settings(settings, connector);
    // Semi-sync: delivery tells the reader which binlog point is in Kafka, to ACK.
    let (to_reader, acks) = if settings.source.semi_sync {
        let (to_reader, acks) = tokio::sync::watch::channel(None);
        (Some(to_reader), Some(acks))
    } else {
        (None, None)
    };
    let (reader, mut events, budget, reader_stats) = spawn_reader(settings, position, ops, acks)?;
    // The reader fills its bounded channel while the registry finishes opening; the first
    // batch's new topics are made meanwhile.
    let (opened, first) = start::open_registry(registry, &mut events, &mut publisher, settings).await;
    let registry = match opened {
        Ok(registry) => registry,
        Err(e) => {
            // Nothing was published; the tasks started for it end here too (the reader once it
            // sees its channel closed, as this returns).
            side.copier.abort();
            return Err(e);
        }
    };
    serve_http(listener, settings, &registry, ops);
    let encoder =
        Encoder::new(registry, settings.topics.clone(), settings.columns.clone(), settings.envelope, connector);
    let mut delivery = Delivery::new(delivery_settings, encoder, publisher, committer, Arc::clone(ops));
    if let Some(to_reader) = to_reader {
        delivery.ack_to(to_reader);
    }
    let mut driver = Driver {
        settings,
        ops,
        options,
        router,
        delivery,
        steps: Vec::new(),
        events,
        pending: Vec::new().into_iter(),
        pending_kib: 0,
        budget,
        reader_stats,
        side,
        paused: ops.paused(),
        stalled: false,
    };
    if let Some(batch) = first {
        driver.take(batch);
    }
    let mut shutdown: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(shutdown_signal(signals));
    let reader_ended = driver.run(&mut shutdown).await?;
    driver.stop(reader, reader_ended).await
}

/// The router's part of the settings.
fn router_settings(settings: &Settings) -> RouterSettings {
    RouterSettings {
        tables: settings.tables.clone(),
        transaction_metadata: settings.topics.transaction_metadata,
        tombstones: settings.topics.tombstones,
        truncate_records: settings.topics.truncate_records,
    }
}

/// The delivery stage's part of the settings (`connector`: the source's flavor, as `source.connector`).
fn delivery_settings(settings: &Settings, connector: &'static str) -> DeliverySettings {
    DeliverySettings {
        connector,
        name: settings.name.as_str().into(),
        metadata_topic: TopicSpec { partitions: 1, ..TopicSpec::data(&settings.topics) },
        inline_verify_every: settings.snapshot.inline_verify_every,
        transactions: match settings.kafka.delivery {
            DeliveryMode::AtLeastOnce => None,
            DeliveryMode::ExactlyOnce(bounds) => Some((bounds, settings.kafka.transaction_timeout())),
        },
        commit_interval: settings.commit_interval,
    }
}

/// Starts the binlog reader, sending into a channel bounded by count and bytes. It runs on a
/// thread of its own with a single-threaded runtime: as a task of the shared runtime, each of
/// its socket's wake-ups could move it to the other worker, and woke a worker to look for work
/// (on B, the reader ran on both workers in turn: ~17,000 context switches a run; its own
/// thread took ~4% less CPU and ~5% less time, five alternating runs each).
fn spawn_reader(
    settings: &Settings,
    start: crate::position::Position,
    ops: &Ops,
    acks: Option<tokio::sync::watch::Receiver<Option<crate::reader::AckPoint>>>,
) -> Result<ReaderEnds, RunError> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    // Heartbeats at least three times per stall bound; a dead link is noticed after three.
    let heartbeat = Duration::from_secs(5).min(settings.stall_timeout / 3);
    let budget = EventBudget::new(CHANNEL_BYTES, CHANNEL);
    let options = ReaderOptions {
        heartbeat,
        read_timeout: heartbeat * 3,
        tables: Some(settings.tables.clone()),
        budget: Some(Arc::clone(&budget)),
        acks,
        ..ReaderOptions::default()
    };
    let reader = Reader::new(settings.source.clone(), options);
    let stats = reader.stats();
    ops.attach_reader(Arc::clone(&stats));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Other(format!("starting the binlog reader's runtime: {e}")))?;
    let (done, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rowferry-reader".into())
        .spawn(move || {
            let _ = done.send(runtime.block_on(reader.run(start, tx)));
        })
        .map_err(|e| RunError::Other(format!("starting the binlog reader's thread: {e}")))?;
    Ok((ReaderTask { outcome }, rx, budget, stats))
}

/// The reader's thread, the channel it sends into, the channel's byte budget, its statistics.
type ReaderEnds = (ReaderTask, mpsc::Receiver<EventBatch>, Arc<EventBudget>, Arc<ReaderStats>);

/// The reader's thread: its outcome once it ends (it ends when its channel's receiver is gone).
struct ReaderTask {
    outcome: tokio::sync::oneshot::Receiver<Result<(), ReaderError>>,
}

/// The loop's state: the stages and the ends of the channels.
struct Driver<'a> {
    settings: &'a Settings,
    ops: &'a Arc<Ops>,
    options: &'a RunOptions,
    router: Router,
    delivery: Delivery,
    /// The router's output, carried out by delivery right away (reused).
    steps: Vec<Step>,
    events: mpsc::Receiver<EventBatch>,
    /// The rest of the batch being routed, and the batch's bytes (given back to the budget once
    /// its last event is routed).
    pending: std::vec::IntoIter<TxnEvent>,
    pending_kib: u32,
    budget: Arc<EventBudget>,
    reader_stats: Arc<ReaderStats>,
    side: snapshot::Side,
    paused: tokio::sync::watch::Receiver<bool>,
    stalled: bool,
}

type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Driver<'_> {
    /// The loop (see the module docs); returns whether the reader's channel closed.
    async fn run(&mut self, shutdown: &mut Shutdown) -> Result<bool, RunError> {
        self.ops.set_state(if self.delivery.snapshotting() { State::Snapshotting } else { State::Streaming });
        // At least once a second: the tick is also the loop's heartbeat (`/healthz`); the
        // committer stores the offset only once its interval has passed.
        let mut every = self.settings.commit_interval.min(Duration::from_secs(1));
        if let DeliveryMode::ExactlyOnce(bounds) = self.settings.kafka.delivery {
            // A quiet stream's last Kafka transaction is committed on a tick.
            every = every.min(bounds.interval);
        }
        let mut tick = tokio::time::interval(every);
        let mut watchdog = tokio::time::interval(Duration::from_secs(1));
        // The position is stored as soon as its interval allows (not on the next tick).
        let mut store = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let mut store_armed = None;
        loop {
            let open = self.delivery.has_capacity() && !*self.paused.borrow();
            let store_at = self.delivery.store_due_at();
            if let Some(at) = store_at
                && store_at != store_armed
            {
                store_armed = store_at;
                store.as_mut().reset(at.into());
            }
            let side = &mut self.side;
            tokio::select! {
                biased;
                _ = self.delivery.acks_ready() => self.delivery.settle()?,
                _ = &mut *shutdown => return Ok(false),
                _ = tick.tick() => {
                    if self.tick().await? {
                        return Ok(false);
                    }
                }
                _ = &mut store, if store_at.is_some() => {
                    store_armed = None;
                    self.delivery.commit(false).await?;
                }
                _ = &mut side.copier, if !side.copier_done => self.side.copier_done = true,
                request = side.requests.recv(), if side.requests_open => {
                    self.side.request(self.settings, request, self.delivery.committer()).await;
                }
                msg = side.chunks.recv(), if side.chunks_open && open => self.snapshot_message(msg).await?,
                _ = watchdog.tick() => self.watchdog(),
                _ = self.paused.changed() => {}
                _ = std::future::ready(()), if self.pending.len() > 0 && open && !self.router.holds_stream() => {
                    if self.route_events(shutdown).await? {
                        return Ok(false);
                    }
                }
                batch = self.events.recv(), if self.pending.len() == 0 && open && !self.router.holds_stream() => {
                    let Some(batch) = batch else { return Ok(true) };
                    self.take(batch);
                    if self.route_events(shutdown).await? {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Routes the events of the batch taken and of those already queued behind it (up to
    /// [`EVENT_BATCH`], while the publisher has room and no snapshot copy holds the stream); the
    /// rest waits in `pending`. Returns whether a signal came meanwhile: the event it interrupted
    /// is left unfinished (a schema registry retried for a minute, a full producer queue), so the
    /// final offset stays before its transaction and a restart sends it again.
    async fn route_events(&mut self, shutdown: &mut Shutdown) -> Result<bool, RunError> {
        let now_ms = crate::ops::now_ms() as i64;
        let mut interrupted = false;
        for _ in 0..EVENT_BATCH {
            let Some(event) = self.next_event() else { break };
            self.ops.event();
            self.router.route(event, &mut self.steps)?;
            self.router.release_chunks(&mut self.steps);
            tokio::select! {
                biased;
                outcome = self.delivery.carry_out(&mut self.steps, &mut self.router, now_ms) => outcome?,
                _ = &mut *shutdown => {
                    interrupted = true;
                    break;
                }
            }
            if self.router.holds_stream() || !self.delivery.has_capacity() {
                break;
            }
        }
        self.delivery.report_rows(now_ms);
        Ok(interrupted)
    }

    /// A batch from the reader becomes the one being routed.
    fn take(&mut self, batch: EventBatch) {
        let EventBatch { events, kib } = batch;
        self.pending = events.into_iter();
        self.pending_kib = kib;
    }

    /// The next event to route: of the batch being routed, else of one already queued. A
    /// batch's bytes go back to the budget once its last event is taken.
    fn next_event(&mut self) -> Option<TxnEvent> {
        loop {
            if let Some(event) = self.pending.next() {
                if self.pending.len() == 0 {
                    self.budget.give_back(std::mem::take(&mut self.pending_kib));
                }
                return Some(event);
            }
            let batch = self.events.try_recv().ok()?;
            self.take(batch);
        }
    }

    /// A message from the snapshot copier; the chunks it releases are emitted at once when the
    /// stream is between transactions.
    async fn snapshot_message(&mut self, msg: Option<crate::snapshot::merge::Msg>) -> Result<(), RunError> {
        // Closed once the copier has ended (the bootstrap command): stop polling it.
        self.side.chunks_open = msg.is_some();
        if let Some(msg) = msg {
            self.router.snapshot_message(msg);
            self.router.release_chunks(&mut self.steps);
            let now_ms = crate::ops::now_ms() as i64;
            self.delivery.carry_out(&mut self.steps, &mut self.router, now_ms).await?;
            self.delivery.report_rows(now_ms);
        }
        Ok(())
    }

    /// The commit tick; returns whether the run is over (the bootstrap command's snapshot is
    /// complete and committed).
    async fn tick(&mut self) -> Result<bool, RunError> {
        self.ops.beat();
        self.delivery.commit(false).await?;
        if !*self.paused.borrow() {
            self.ops.set_state(if self.delivery.snapshotting() { State::Snapshotting } else { State::Streaming });
        }
        let finished = self.side.copier_done && self.delivery.inflight() == 0 && self.router.snapshot_idle();
        if !(self.options.stop_after_snapshot && finished) {
            return Ok(false);
        }
        self.delivery.commit(true).await?;
        if self.delivery.snapshotting() {
            return Err(RunError::Other(
                "the snapshot did not complete: see the errors above (the finished tables' progress is stored; \
                 `rowferry snapshot` again resumes)"
                    .into(),
            ));
        }
        tracing::info!("snapshot complete and committed; `rowferry run` continues from here");
        Ok(true)
    }

    /// Once a second: what is in flight, and the stall watchdog (a stalled source is reconnected).
    fn watchdog(&mut self) {
        // A keyless table's copy holding the stream is rowferry's own wait too.
        self.delivery.report(self.router.holds_stream());
        let readiness = self.ops.readiness();
        if readiness.source_stalled && !self.stalled {
            tracing::warn!(reasons = ?readiness.reasons, "stalled: reconnecting to the source");
            self.ops.stalled();
            self.reader_stats.kick.notify_one();
        }
        self.stalled = readiness.source_stalled;
    }

    /// Stops reading, settles what is in flight, stores the final position, and ends the reader.
    async fn stop(mut self, reader: ReaderTask, reader_ended: bool) -> Result<(), RunError> {
        self.ops.set_state(State::Stopping);
        self.side.stop(self.ops);
        drop(self.events);
        let deadline = tokio::time::Instant::now() + self.settings.shutdown_timeout;
        self.delivery.finish(deadline).await?;
        // The reader ends as soon as it sees the channel closed; bounded anyway (then abandoned).
        let outcome = match tokio::time::timeout(Duration::from_secs(5), reader.outcome).await {
            Ok(ended) => {
                ended.map_err(|_| RunError::Other("the binlog reader's thread ended without an outcome".into()))?
            }
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
