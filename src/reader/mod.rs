//! Binlog reader stage: a replica connection that turns the source's binlog into transactions.
//!
//! * **Start.** From a stored [`Position`] (a GTID set), or from "now" — the server's executed
//!   set — on first start ([`current_position`]). Before streaming, [`check_start`] refuses a
//!   position the server can no longer serve (purged) or never had (diverged): no silent jumps.
//! * **Protocol.** rowferry's own replication connection ([`dump`]: handshake, TLS, login,
//!   registration as a replica). MySQL: COM_BINLOG_DUMP_GTID with the set. MariaDB:
//!   `@mariadb_slave_capability=4` (GTID events stay GTID events), `@slave_connect_state`, strict
//!   mode, then a plain dump. Each event's bytes go as the server sent them to rowferry's
//!   [`StreamDecoder`], decoded once (checksums verified, MariaDB events and compressed events
//!   included). The setup queries (flavor, start checks, collations) use a mysql_async connection.
//! * **Liveness.** The heartbeat period is set on every connection, and a read that sees neither
//!   an event nor a heartbeat for `read_timeout` (> heartbeat) means the link is dead: reconnect
//!   with exponential backoff and jitter, with the same server_id — the source then retires the
//!   old dump thread — from the last fully processed transaction. The [`Assembler`] voids a
//!   half-received transaction ([`TxnEvent::Abort`] if it had started streaming). Only events
//!   past a dump's preamble reset the backoff. Another process that connects with the same
//!   server_id takes the stream over: rowferry then stops ([`ReaderError::SameServerId`]).
//! * **Backpressure.** Events go downstream in batches ([`EventBatch`]: what one read of the
//!   socket buffer holds, at most [`MAX_BATCH`] events or [`MAX_BATCH_KIB`] of rows; a batch is
//!   sent before the reader waits on the socket, so batching adds no latency) through a bounded
//!   channel, their bytes bounded by an [`EventBudget`]; a slow consumer slows the reads, and the
//!   server's socket buffers, not rowferry's memory, absorb the difference.
//!
//! * **Semi-sync** (`source.semi_sync`). When the source has semi-sync (the MySQL source plugin;
//!   MariaDB's is built in), the connection registers as a semi-sync replica. An event the source
//!   waits on becomes a [`TxnEvent::Ack`] after the events it completes; downstream decides when
//!   that point is in Kafka and sends it back through [`ReaderOptions::acks`], and this session's
//!   acker task writes the ACK on the dump connection. Points are tied to the session that read
//!   them: an ACK never goes to another connection (after a failover, another server's binlog
//!   positions mean something else).
//!
//! A MySQL TRANSACTION_PAYLOAD (`binlog_transaction_compression=ON`) is held compressed (the
//! packet) and decoded in batches of [`crate::decoder::PAYLOAD_BATCH`] embedded events,
//! each handed downstream before the next: a large compressed transaction costs its compressed
//! size plus what the assembler and the channel hold, not its decoded size.

pub mod assembler;
pub mod dump;
mod handoff;
mod semi_sync;
mod setup;

pub use assembler::{Assembler, AssemblerError, TxnEvent};
pub use handoff::{EventBatch, EventBudget, EventSink, MAX_BATCH, MAX_BATCH_KIB};
pub use semi_sync::AckPoint;
use semi_sync::{AbortOnDrop, semi_sync_capable, send_acks};
pub use setup::{check_start, collations, current_position, flavor, mariadb_extras};

use crate::config::SourceSettings;
use crate::decoder::{DecodeError, Item, StreamDecoder};
use crate::error::ErrorClass;
use crate::position::{Position, PositionError};
use crate::schema::SchemaOptions;
use crate::source::{self, Flavor, SourceError};
use std::sync::Arc;
use std::time::Duration;

/// Reader tuning.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// How often an idle source sends a heartbeat.
    pub heartbeat: Duration,
    /// No event and no heartbeat for this long = dead link. Must exceed `heartbeat`.
    pub read_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Rows held back per transaction before it is streamed (see the assembler).
    pub buffer_rows: usize,
    /// The captured tables: the others are not decoded (`None`: every table).
    pub tables: Option<crate::config::TableFilter>,
    /// Bytes of rows handed over and not yet taken back by the consumer ([`EventBudget`]);
    /// `None`: the channel's length is the only bound.
    pub budget: Option<Arc<EventBudget>>,
    /// Semi-sync: the latest binlog point that is in Kafka, to ACK (`None`: no ACKs are sent, and
    /// the connection does not register as a semi-sync replica).
    pub acks: Option<tokio::sync::watch::Receiver<Option<AckPoint>>>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            heartbeat: Duration::from_secs(5),
            read_timeout: Duration::from_secs(15),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            buffer_rows: 10_000,
            tables: None,
            budget: None,
            acks: None,
        }
    }
}

/// Why reading stopped or must reconnect.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Assemble(#[from] AssemblerError),
    #[error(transparent)]
    Position(#[from] PositionError),
    #[error("binlog stream: {0}")]
    Stream(dump::DumpError),
    #[error(
        "another replica of the source uses server_id {server_id} (source.server_id), and the source dropped this \
         connection for it; fix: give every rowferry and replica of this source its own source.server_id, or stop \
         the other one ({detail})"
    )]
    SameServerId { server_id: u32, detail: String },
    #[error("no event or heartbeat for {0:?}: the link is dead")]
    Silent(Duration),
    #[error("the stall watchdog saw nothing move and asked for a new connection")]
    Kicked,
    #[error("the source ended the binlog stream")]
    Ended,
    #[error(
        "the source has purged transactions rowferry has not read yet: {missing}; the stored position cannot \
         continue — re-snapshot the tables (rowferry snapshot) or restore the binlogs"
    )]
    Purged { missing: String },
    #[error(
        "the source's history does not contain rowferry's position: {missing} were read from elsewhere \
         (a diverged server, or one that is behind); point rowferry at a server that has them"
    )]
    Diverged { missing: String },
}

impl ReaderError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ReaderError::Source(e) => e.class(),
            ReaderError::Decode(e) => e.class(),
            ReaderError::Assemble(e) => e.class(),
            ReaderError::Position(e) => e.class(),
            // 1236: the source cannot serve the position (purged binlog, bad GTID state).
            ReaderError::Stream(e) => e.class(),
            // Another process took the stream over; fighting back would make the two take turns.
            // (A reconnect of this process replaces its own dead link without this error: the
            // error goes to the old, abandoned connection.)
            ReaderError::SameServerId { .. } => ErrorClass::Fatal,
            ReaderError::Silent(_) | ReaderError::Ended | ReaderError::Kicked => ErrorClass::Retryable,
            ReaderError::Purged { .. } | ReaderError::Diverged { .. } => ErrorClass::Fatal,
        }
    }

    /// An error of the binlog stream; the server's "same server_id" answers get their own variant.
    fn stream(e: dump::DumpError, server_id: u32) -> ReaderError {
        if let dump::DumpError::Server { code, message } = &e {
            // Both servers end the older dump of a server_id when a newer one registers, and tell
            // the older one: MySQL with 1236 "... has connected to the source", MariaDB with 4052
            // (ER_SLAVE_SAME_ID).
            if *code == 4052 || (*code == 1236 && message.contains("same server_uuid/server_id")) {
                return ReaderError::SameServerId { server_id, detail: message.clone() };
            }
            // MariaDB, when its binlogs no longer reach back to the requested position.
            if *code == 1236 && message.contains("have been purged") {
                return ReaderError::Purged { missing: message.clone() };
            }
        }
        ReaderError::Stream(e)
    }
}

/// Counters the reader keeps for metrics and tests.
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// Connections re-established after a retryable error.
    pub reconnects: std::sync::atomic::AtomicU64,
    /// A binlog stream is open.
    pub connected: std::sync::atomic::AtomicBool,
    /// When the last event or heartbeat arrived (ms since the epoch).
    pub last_seen_ms: std::sync::atomic::AtomicU64,
    /// Told by the stall watchdog: drop the connection and reconnect.
    pub kick: tokio::sync::Notify,
    /// Why the last connection ended (shown while reconnecting).
    pub last_error: std::sync::Mutex<Option<String>>,
    /// Semi-sync: the binlog connection is a semi-sync replica of the source now.
    pub semi_sync: std::sync::atomic::AtomicBool,
    /// Semi-sync ACKs sent.
    pub semi_sync_acks: std::sync::atomic::AtomicU64,
    /// The server's id of the last dump connection (0: none yet), ended on a clean stop.
    pub dump_connection: std::sync::atomic::AtomicU32,
    /// Source commit → the transaction's first event read from the socket, per transaction
    /// (MySQL 8+: µs commit times; MariaDB: whole seconds): the source's and the network's part of
    /// the commit → ack latency.
    pub commit_to_read: crate::histogram::Histogram,
}

impl ReaderStats {
    /// Why the last connection ended, if one did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

/// Marks the stream connected while alive.
struct Connected<'a>(&'a ReaderStats);

impl<'a> Connected<'a> {
    fn mark(stats: &'a ReaderStats) -> Connected<'a> {
        stats.connected.store(true, std::sync::atomic::Ordering::Relaxed);
        stats.last_seen_ms.store(crate::clock::now_ms(), std::sync::atomic::Ordering::Relaxed);
        Connected(stats)
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.connected.store(false, std::sync::atomic::Ordering::Relaxed);
        self.0.semi_sync.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One replica connection's worth of streaming; see the module docs.
#[derive(Debug)]
pub struct Reader {
    settings: SourceSettings,
    options: ReaderOptions,
    stats: std::sync::Arc<ReaderStats>,
}

impl Reader {
    pub fn new(settings: SourceSettings, options: ReaderOptions) -> Self {
        Reader { settings, options, stats: std::sync::Arc::default() }
    }

    pub fn stats(&self) -> std::sync::Arc<ReaderStats> {
        std::sync::Arc::clone(&self.stats)
    }

    /// Streams from `start` until the receiver of `tx` is dropped (returns `Ok`) or a fatal error.
    /// Retryable errors reconnect with backoff; `reconnects` counts them. Either way, the dump
    /// ends on the source too ([`Reader::end_dump`]).
    pub async fn run(&self, start: Position, tx: impl EventSink) -> Result<(), ReaderError> {
        let outcome = self.stream(start, &tx).await;
        self.end_dump().await;
        // The channel closes with the outcome ready: whoever sees it closed finds out why.
        drop(tx);
        outcome
    }

    /// Ends the last dump on the source. A source notices that a replica has gone only when a
    /// write to it fails (its next heartbeat, seconds later) and keeps the dump thread until
    /// then; a restart with the same server_id first has that thread killed, which costs MariaDB
    /// 10.11 ~100 ms before the first event. Best effort (the dump connection is closed already),
    /// and only a thread that is still this account's binlog dump with that id is killed (the
    /// address may lead to another server by now, after a failover): killing one's own
    /// connection needs no privilege. A failure is logged.
    async fn end_dump(&self) {
        let id = self.stats.dump_connection.swap(0, std::sync::atomic::Ordering::Relaxed);
        if id == 0 {
            return;
        }
        let user = self.settings.user.as_str();
        let kill = async {
            use mysql_async::prelude::Queryable;
            let mut conn = source::connect(&self.settings).await?;
            let query = "SHOW PROCESSLIST";
            let rows: Vec<mysql_async::Row> =
                conn.query(query).await.map_err(|source| SourceError::Query { query: query.into(), source })?;
            let ours = rows.iter().any(|row| {
                let text = |i: usize| row.get_opt::<String, _>(i).and_then(Result::ok).unwrap_or_default();
                row.get_opt::<u64, _>(0).and_then(Result::ok) == Some(u64::from(id))
                    && text(1) == user
                    && text(4).starts_with("Binlog Dump")
            });
            if ours {
                let query = format!("KILL CONNECTION {id}");
                conn.query_drop(&query).await.map_err(|source| SourceError::Query { query, source })?;
            }
            let _ = conn.disconnect().await;
            Ok::<_, SourceError>(ours)
        };
        match tokio::time::timeout(Duration::from_secs(2), kill).await {
            Ok(Ok(true)) => tracing::debug!(connection = id, "binlog dump ended on the source"),
            // The server saw the link close (or it is another server now): nothing to end.
            Ok(Ok(false)) => tracing::debug!(connection = id, "binlog dump already gone from the source"),
            Ok(Err(e)) => tracing::debug!(connection = id, error = %e, "ending the binlog dump on the source"),
            Err(_) => tracing::debug!(connection = id, "ending the binlog dump on the source: no answer within 2 s"),
        }
    }

    async fn stream(&self, start: Position, tx: &impl EventSink) -> Result<(), ReaderError> {
        let mut assembler = Assembler::new(start, self.options.buffer_rows);
        let mut delay = self.options.backoff_initial;
        // Events the assembler has passed and the session has not handed on yet: kept across a
        // lost connection (the assembler's position already counts them).
        let mut out = EventBatch::default();
        let mut session = 0;
        loop {
            session += 1;
            let mut progressed = false;
            // Downstream gone (shutdown) ends the reader whatever the session is doing: waiting
            // for a connection, for an event, or for room in the channel.
            let outcome = tokio::select! {
                outcome = self.session(session, &mut assembler, tx, &mut progressed, &mut out) => outcome,
                _ = tx.closed() => return Ok(()),
            };
            let error = match outcome {
                Ok(()) => return Ok(()),
                Err(e) if e.class() == ErrorClass::Retryable => e,
                Err(e) => return Err(e),
            };
            // What was decoded before the connection was lost goes on first, then the void.
            if !out.events.is_empty() && self.send(tx, out.take()).await.is_err() {
                return Ok(());
            }
            let mut voided = EventBatch::default();
            assembler.reset(&mut |e| voided.push(e));
            if !voided.events.is_empty() && self.send(tx, voided).await.is_err() {
                return Ok(());
            }
            if progressed {
                delay = self.options.backoff_initial;
            }
            if let Ok(mut last) = self.stats.last_error.lock() {
                *last = Some(error.to_string());
            }
            let pause = jitter(delay);
            tracing::warn!(error = %error, retry_in_ms = pause.as_millis() as u64, position = %assembler.position(), "binlog connection lost; reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = tx.closed() => return Ok(()),
            }
            delay = (delay * 2).min(self.options.backoff_max);
            self.stats.reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Sends `batch` once the budget has room for it (see [`handoff::send`]).
    async fn send(&self, tx: &impl EventSink, batch: EventBatch) -> Result<(), ()> {
        handoff::send(self.options.budget.as_deref(), tx, batch).await
    }

    async fn session(
        &self,
        session: u64,
        assembler: &mut Assembler,
        tx: &impl EventSink,
        progressed: &mut bool,
        out: &mut EventBatch,
    ) -> Result<(), ReaderError> {
        // The setup queries are bounded too: a link can die before the stream starts.
        let setup = async {
            let mut conn = source::connect(&self.settings).await?;
            let flavor = flavor(&mut conn).await?;
            check_start(&mut conn, assembler.position()).await?;
            let collations = collations(&mut conn).await?;
            let extras = match flavor {
                Flavor::MariaDb => Some(mariadb_extras(&mut conn, self.options.tables.as_ref()).await?),
                Flavor::MySql => None,
            };
            let semi_sync = self.options.acks.is_some() && semi_sync_capable(&mut conn).await?;
            if self.options.acks.is_some() && !semi_sync {
                tracing::warn!(
                    "source.semi_sync = true, but the source has no semi-sync (MySQL: the rpl_semi_sync_source plugin \
                     is not installed): streaming asynchronously. Fix: INSTALL PLUGIN rpl_semi_sync_source SONAME \
                     'semisync_source.so' and SET GLOBAL rpl_semi_sync_source_enabled = ON (rowferry check tells)"
                );
            }
            // The setup connection ends cleanly (the server logs no aborted connection).
            let _ = conn.disconnect().await;
            let stream = self.request(flavor, assembler.position(), semi_sync).await?;
            self.stats.dump_connection.store(stream.id(), std::sync::atomic::Ordering::Relaxed);
            Ok::<_, ReaderError>((stream, collations, extras, semi_sync))
        };
        let limit = self.settings.connect_timeout + self.options.read_timeout;
        let (mut stream, collations, extras, semi_sync) =
            tokio::time::timeout(limit, setup).await.map_err(|_| ReaderError::Silent(limit))??;
        // Semi-sync: this session's ACKs are written by a task of their own while the loop reads.
        let _acker = match (&self.options.acks, stream.acker()) {
            (Some(points), Some(acker)) if semi_sync => {
                self.stats.semi_sync.store(true, std::sync::atomic::Ordering::Relaxed);
                let task = send_acks(acker, session, points.clone(), Arc::clone(&self.stats));
                Some(AbortOnDrop(tokio::spawn(task)))
            }
            _ => None,
        };
        // The binlog file being read (every dump starts with a rotate that names it).
        let mut file: Arc<str> = Arc::from("");
        let mut decoder = StreamDecoder::new(collations, SchemaOptions { require_full_metadata: true });
        if let Some(tables) = &self.options.tables {
            decoder = decoder.with_tables(tables.clone());
        }
        let _connected = Connected::mark(&self.stats);
        // MariaDB only: a second connection to refresh the JSON columns after a DDL.
        let mut metadata = match extras {
            Some(extras) => {
                decoder.set_all_extras(extras);
                Some(source::connect(&self.settings).await?)
            }
            None => None,
        };
        let mut items = Vec::new();
        let server_id = self.settings.server_id.get();
        loop {
            // What is decoded goes on before the reader waits for the server (or once a batch is
            // full): batches take only what the socket had already delivered.
            if !out.events.is_empty()
                && (out.full() || !stream.event_buffered())
                && self.send(tx, out.take()).await.is_err()
            {
                // Downstream is gone: stop reading (nothing is lost: the position did not move).
                return Ok(());
            }
            // An event already in the buffer is taken without a timer, a kick check or a clock
            // read (per event, those were a tenth of the reader's CPU): only a wait for the
            // server can be silent for too long, and a kick (a stored permit) is seen at the
            // next wait, when the buffer has run dry.
            let next = if stream.event_buffered() {
                Ok(stream.next_event().await)
            } else {
                let next = tokio::select! {
                    next = tokio::time::timeout(self.options.read_timeout, stream.next_event()) => next,
                    _ = self.stats.kick.notified() => return Err(ReaderError::Kicked),
                };
                self.stats.last_seen_ms.store(crate::clock::now_ms(), std::sync::atomic::Ordering::Relaxed);
                next
            };
            let event = match next {
                Err(_) => return Err(ReaderError::Silent(self.options.read_timeout)),
                Ok(Ok(None)) => return Err(ReaderError::Ended),
                Ok(Err(e)) => return Err(ReaderError::stream(e, server_id)),
                Ok(Ok(Some(event))) => event,
            };
            // Semi-sync: where the source waits for an ACK (the event's end in the binlog file).
            let ack = event
                .ack
                .then(|| event.bytes.get(13..17))
                .flatten()
                .map(|p| u64::from(u32::from_le_bytes([p[0], p[1], p[2], p[3]])));
            let event = event.bytes;
            // The event's bytes as the server sent them: decoded once, checksum verified.
            // A compressed transaction comes out in batches of embedded events, each handed on
            // (and waited for) before the next is decoded.
            let mut more = decoder.start(event, &mut |item| items.push(item))?;
            loop {
                let mut ddl = false;
                for item in items.drain(..) {
                    // Every dump starts with a rotate (and MariaDB a GTID list), also one the server
                    // ends right after with an error: only what follows resets the reconnect backoff.
                    *progressed |= !matches!(item, Item::Rotate { .. } | Item::MariaDbGtidList(_));
                    if let Item::Rotate { file: next, .. } = &item {
                        file = Arc::from(next.as_str());
                    }
                    ddl |= matches!(&item, Item::Statement { sql, .. } if assembler::first_keyword(sql) != "XA");
                    assembler.push(item, &mut |e| {
                        if let TxnEvent::Begin { commit_us, .. } = &e {
                            let read_us = crate::clock::now_us() as i64;
                            self.stats.commit_to_read.observe(read_us - *commit_us as i64);
                        }
                        out.push(e)
                    })?;
                }
                if ddl && let Some(conn) = metadata.as_mut() {
                    let refresh = mariadb_extras(conn, self.options.tables.as_ref());
                    let extras = tokio::time::timeout(self.options.read_timeout, refresh)
                        .await
                        .map_err(|_| ReaderError::Silent(self.options.read_timeout))??;
                    decoder.set_all_extras(extras);
                }
                if !more {
                    // After the events it completes, in stream order: downstream ACKs it once
                    // everything before it is in Kafka.
                    if let Some(position) = ack {
                        out.push(TxnEvent::Ack(AckPoint { session, file: Arc::clone(&file), position }));
                    }
                    break;
                }
                // A compressed transaction's batch goes on before the next one is decoded.
                if !out.events.is_empty() && self.send(tx, out.take()).await.is_err() {
                    return Ok(());
                }
                self.stats.last_seen_ms.store(crate::clock::now_ms(), std::sync::atomic::Ordering::Relaxed);
                more = decoder.resume(&mut |item| items.push(item))?;
            }
        }
    }

    /// rowferry's own replication connection ([`dump`]): the session variables of a replica,
    /// registration, and the dump request from `start`.
    async fn request(&self, flavor: Flavor, start: &Position, semi_sync: bool) -> Result<dump::DumpConn, ReaderError> {
        let server_id = self.settings.server_id.get();
        let stream_error = |e: dump::DumpError| ReaderError::stream(e, server_id);
        let period_ns = self.options.heartbeat.as_nanos();
        // Both names: MySQL 8.4+ reads the source_ one, MariaDB and older MySQL the master_ one.
        // The checksum variable tells the source this replica understands checksummed events.
        let mut statements = vec![
            format!("SET @master_heartbeat_period = {period_ns}"),
            format!("SET @source_heartbeat_period = {period_ns}"),
            "SET @master_binlog_checksum = @@global.binlog_checksum".to_string(),
            "SET @source_binlog_checksum = @@global.binlog_checksum".to_string(),
        ];
        if semi_sync {
            // MySQL 8.0.26+ reads the first, MariaDB and older MySQL the second.
            statements.push("SET @rpl_semi_sync_replica = 1".into());
            statements.push("SET @rpl_semi_sync_slave = 1".into());
        }
        let mut sids = Vec::new();
        let dump_start = match (flavor, start) {
            (Flavor::MariaDb, Position::MariaDb(pos)) => {
                statements.push("SET @mariadb_slave_capability = 4".into());
                statements.push(format!("SET @slave_connect_state = '{pos}'"));
                statements.push("SET @slave_gtid_strict_mode = 1".into());
                statements.push("SET @slave_gtid_ignore_duplicates = 0".into());
                dump::DumpStart::MariaDb
            }
            (Flavor::MySql, Position::MySql(set)) => {
                for (uuid, tag, intervals) in set.groups() {
                    let mut sid = mysql_common::packets::Sid::new(uuid.0).with_intervals(
                        intervals.iter().map(|&(s, e)| mysql_common::packets::GnoInterval::new(s, e + 1)).collect(),
                    );
                    if !tag.is_empty() {
                        // Never sent untagged: the source would then stream the tagged
                        // transactions again (or skip untagged ones).
                        let t = mysql_common::packets::Tag::new(tag.to_string()).map_err(|e| {
                            ReaderError::Source(SourceError::Unexpected {
                                query: "start position".into(),
                                detail: format!(
                                    "the GTID tag {tag:?} of the start position cannot be sent to the source ({e:?}); \
                                     check the stored offset"
                                ),
                            })
                        })?;
                        sid = sid.with_tag(t);
                    }
                    sids.push(sid);
                }
                dump::DumpStart::Gtid(sids)
            }
            (flavor, _) => {
                return Err(ReaderError::Source(SourceError::Unexpected {
                    query: "start position".into(),
                    detail: format!("the stored position is not a {flavor} position ({start})"),
                }));
            }
        };
        let mut conn = dump::DumpConn::connect(&self.settings).await.map_err(stream_error)?;
        for sql in &statements {
            conn.execute(sql).await.map_err(stream_error)?;
        }
        conn.register(server_id).await.map_err(stream_error)?;
        if semi_sync {
            conn.semi_sync();
        }
        conn.dump(server_id, dump_start).await.map_err(stream_error)?;
        Ok(conn)
    }
}

/// ±25 % jitter, from the clock's nanoseconds (no RNG needed for spreading reconnects).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.subsec_nanos());
    let factor = 0.75 + f64::from(nanos % 1000) / 2000.0;
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: u16, message: &str) -> dump::DumpError {
        dump::DumpError::Server { code, message: message.into() }
    }

    #[test]
    fn takeover_and_purge_answers_get_their_own_errors() {
        // As the servers word them (MariaDB 10.11, MySQL 9.7).
        let mariadb = "A slave with the same server_uuid/server_id as this slave has connected to the master";
        let mysql = "A replica with the same server_uuid/server_id as this replica has connected to the source; \
                     the first event '' at 4, the last event read from './binlog.000002' at 749";
        for e in [server_error(4052, mariadb), server_error(1236, mysql)] {
            let err = ReaderError::stream(e, 77);
            assert!(matches!(err, ReaderError::SameServerId { server_id: 77, .. }), "{err}");
            assert_eq!(err.class(), ErrorClass::Fatal);
        }
        let purged = "Could not find GTID state requested by slave in any binlog files. Probably the slave state is \
                      too old and required binlog files have been purged.";
        let err = ReaderError::stream(server_error(1236, purged), 77);
        assert!(matches!(err, ReaderError::Purged { .. }), "{err}");
        assert!(err.to_string().starts_with("the source has purged transactions rowferry has not read yet"));
        let other = ReaderError::stream(server_error(1105, "unknown error"), 77);
        assert!(matches!(other, ReaderError::Stream(_)) && other.class() == ErrorClass::Retryable);
        // A lost link is retried; a login the source refuses is not.
        let lost = ReaderError::stream(dump::DumpError::Io(std::io::ErrorKind::ConnectionReset.into()), 77);
        assert_eq!(lost.class(), ErrorClass::Retryable);
        assert_eq!(ReaderError::stream(server_error(1045, "Access denied"), 77).class(), ErrorClass::Fatal);
    }
}
