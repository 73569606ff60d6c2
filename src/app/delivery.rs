//! The delivery stage: carries out the router's [`Step`]s in order — encodes each record,
//! registers it with the commit tracker, hands it to the producer — and gives Kafka's delivery
//! reports to the committer, which stores the position. It owns the encoder, the publisher and
//! the committer together, so acknowledgements never travel through the driver.
//!
//! Invariants:
//! - A record is registered under its transaction (`Committer::sent`) before the producer has it,
//!   and a transaction ends (`Committer::end`) only after its last record: the stored offset never
//!   passes a record Kafka has not acknowledged.
//! - A per-table failure — a record that cannot be encoded, a schema the registry refuses, a record
//!   the broker refuses for its own reasons (too large, not authorised) — stops that table through
//!   the router (its transaction is held, the other tables go on); any other failure stops the run.
//! - Memory: the publisher bounds the records and bytes in flight; the driver hands in no new
//!   work while it has no capacity.
//!
//! **Exactly-once** (`kafka.delivery = "exactly_once"`): records go into a Kafka transaction,
//! committed at the first source-transaction boundary (no transaction open, no XA transaction
//! prepared and undecided) once `kafka.transaction_interval_ms` has passed or
//! `kafka.transaction_max_bytes` were sent. The offset record for the position those records
//! complete is added to the same transaction — computed before the commit, as if every record
//! were acknowledged, since a committed transaction makes them all durable and a failed one none —
//! and the transaction is committed (librdkafka flushes the records first; after it, every
//! delivery report has come and the committer releases exactly that position). The records and
//! the position after them become visible together, or neither does. When no boundary comes within half of the Kafka transaction timeout (one
//! source transaction still being sent, an XA transaction left prepared), the Kafka transaction is
//! committed anyway with the position before the open source transaction — its part sent so far
//! would be sent again if rowferry stopped before its end — and one warning says so. A table stop
//! ends the run in this mode (its transaction's other records are in the open Kafka transaction,
//! and going on past it would send later records again after the restart its fix needs).

use super::RunError;
use super::router::{Record, Router, Step, TxnContext};
use crate::binlog::events::Xid;
use crate::change::{Op, RowChange, TableId};
use crate::committer::stage::Committer;
use crate::committer::{RecordId, TxnId};
use crate::config::TransactionBounds;
use crate::encoder::datum::SourceInfo;
use crate::encoder::stage::Encoder;
use crate::error::ErrorClass;
use crate::kafka::TopicSpec;
use crate::ops::{Ops, RowCounts};
use crate::publisher::{Publisher, RecordHeaders};
use crate::snapshot::merge::{Chunk, Outcome};
use semi_sync::SemiSync;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use transaction::KafkaTxn;

mod semi_sync;
mod transaction;

/// The settings delivery needs.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `mysql` or `mariadb` (the `source` block's `connector`).
    pub connector: &'static str,
    /// The connector's name.
    pub name: Arc<str>,
    /// How the transaction metadata topic is created: one partition, so BEGIN and END of every
    /// transaction stay in commit order.
    pub metadata_topic: TopicSpec,
    /// Check every n-th snapshot record against an independent encoding (0: never).
    pub inline_verify_every: u64,
    /// Exactly-once: when a Kafka transaction is committed, and the Kafka transaction timeout.
    pub transactions: Option<(TransactionBounds, Duration)>,
    /// How often a position that moved without records (filtered tables, DDL) is stored
    /// (`offsets.interval_ms`; exactly-once: in a transaction of its own).
    pub commit_interval: Duration,
}

/// See the module docs.
pub struct Delivery {
    settings: DeliverySettings,
    encoder: Encoder,
    publisher: Publisher,
    committer: Committer,
    ops: Arc<Ops>,
    /// Delivery reports taken from the publisher, for the committer.
    acks: Vec<(RecordId, Result<(), String>)>,
    /// The open transaction's registration.
    open: Option<TxnId>,
    /// Prepared XA transactions' registrations, open until their decision.
    parked: HashMap<Xid, TxnId>,
    /// Key and value buffers, reused record after record (the producer copies what it sends).
    key: Vec<u8>,
    value: Vec<u8>,
    /// Exactly-once: the Kafka transaction (`None`: at-least-once).
    kafka_txn: Option<KafkaTxn>,
    /// Semi-sync: the points waiting to be ACKed (`None`: off).
    semi_sync: Option<SemiSync>,
    /// The rows published in this batch per table, and the last one's commit time (ms): reported
    /// to `ops` once per batch ([`Delivery::report_rows`]).
    rows: Vec<(TableId, RowCounts)>,
    last_commit_ms: i64,
}

/// Where a snapshot chunk's records go: their `source` block, table, pseudo-transaction and time.
struct ChunkAt<'a> {
    source: &'a SourceInfo<'a>,
    table: &'a str,
    txn: TxnId,
    now_ms: i64,
}

/// A table that cannot go on, and why.
type Failure = Option<(TableId, String)>;

impl Delivery {
    pub fn new(
        settings: DeliverySettings,
        encoder: Encoder,
        publisher: Publisher,
        committer: Committer,
        ops: Arc<Ops>,
    ) -> Delivery {
        Delivery {
            encoder,
            publisher,
            committer,
            ops,
            acks: Vec::new(),
            open: None,
            parked: HashMap::new(),
            key: Vec::with_capacity(64),
            value: Vec::with_capacity(1024),
            kafka_txn: settings
                .transactions
                .map(|(bounds, timeout)| KafkaTxn::new(bounds, timeout, settings.commit_interval)),
            semi_sync: None,
            rows: Vec::new(),
            last_commit_ms: 0,
            settings,
        }
    }

    /// Semi-sync: the points due for an ACK go to `to_reader` (see `delivery::semi_sync`).
    pub fn ack_to(&mut self, to_reader: tokio::sync::watch::Sender<Option<crate::reader::AckPoint>>) {
        self.semi_sync = Some(SemiSync::new(to_reader));
    }

    /// Carries out `steps` (drained) in order. A table that fails on the way is stopped through
    /// `router`, and its records left in `steps` become holds of their transaction.
    pub async fn carry_out(&mut self, steps: &mut Vec<Step>, router: &mut Router, now_ms: i64) -> Result<(), RunError> {
        let outcome = self.carry_out_steps(steps, router, now_ms).await;
        self.fenced_or(outcome)
    }

    async fn carry_out_steps(
        &mut self,
        steps: &mut Vec<Step>,
        router: &mut Router,
        now_ms: i64,
    ) -> Result<(), RunError> {
        for step in steps.drain(..) {
            let Some(step) = router.recheck(step) else { continue };
            if let Some((table, why)) = self.apply(step, now_ms).await? {
                let stop = router.stop(table, why);
                self.apply(stop, now_ms).await?;
            }
        }
        self.settle()?;
        self.transaction_tick(now_ms, false).await
    }

    async fn apply(&mut self, step: Step, now_ms: i64) -> Result<Failure, RunError> {
        match step {
            Step::Begin(gtid) => self.open = Some(self.committer.begin(gtid)),
            Step::Park(xid) => {
                let txn = self.take_open("XA PREPARE")?;
                self.parked.insert(xid, txn);
            }
            Step::Unpark(xid) => {
                let txn = self.parked.remove(&xid);
                self.open = Some(txn.ok_or_else(|| RunError::Other(format!("XA transaction {xid} never parked")))?);
            }
            Step::Metadata { txn, end, position } => self.metadata(&txn, end, position, now_ms).await?,
            Step::Record(record) => return self.record(record, now_ms).await,
            Step::End => {
                let txn = self.take_open("a commit")?;
                self.committer.end(txn)?;
            }
            Step::Void => {
                let txn = self.take_open("a rollback")?;
                self.committer.void(txn)?;
            }
            Step::Hold => {
                let txn = self.current("a held change")?;
                self.committer.hold(txn)?;
            }
            Step::Stop { table, why, gtid } if self.kafka_txn.is_some() => {
                self.ops.table_stopped(table.dotted(), &why);
                return Err(RunError::Other(format!(
                    "table {table} cannot be published ({why}) in transaction {gtid}. With kafka.delivery = \
                     \"exactly_once\" a stopped table stops the run: the open Kafka transaction is not committed \
                     (none of its records is visible to read_committed consumers) and the stored offset stays before \
                     this transaction. Fix the cause (or exclude the table) and restart"
                )));
            }
            Step::Stop { table, why, gtid } => {
                tracing::error!(
                    %table,
                    %gtid,
                    error = %why,
                    "table stopped: its changes are not published and the stored offset stays before this \
                     transaction; the other tables keep streaming. Fix the cause and restart rowferry: it resumes \
                     here (the other tables' records since then are sent again)"
                );
                self.ops.table_stopped(table.dotted(), &why);
                let txn = self.current("a table stop")?;
                self.committer.hold(txn)?;
            }
            Step::Chunk { chunk, dropped, reply } => {
                let outcome = self.chunk(chunk, dropped, now_ms).await?;
                let _ = reply.send(outcome);
            }
            Step::Heartbeat => self.ops.heartbeat(),
            Step::Ack(point) => self.ack_point(point),
            Step::Truncated => self.ops.truncated(),
        }
        Ok(None)
    }

    fn current(&self, what: &str) -> Result<TxnId, RunError> {
        self.open.ok_or_else(|| RunError::Other(format!("{what} outside a transaction")))
    }

    fn take_open(&mut self, what: &str) -> Result<TxnId, RunError> {
        self.open.take().ok_or_else(|| RunError::Other(format!("{what} outside a transaction")))
    }

    /// A data record (and its tombstone); a per-table failure is returned, not raised.
    async fn record(&mut self, r: Record, now_ms: i64) -> Result<Failure, RunError> {
        let txn = self.current("a row")?;
        let source = r.txn.source(self.settings.connector, &self.settings.name, &r.change.at);
        let (mut key, mut value) = (std::mem::take(&mut self.key), std::mem::take(&mut self.value));
        let encoded = self.encoder.encode_into(&r.change, &source, r.info.as_ref(), now_ms, &mut key, &mut value).await;
        let outcome = match encoded {
            Ok((topic, keyed)) => self.publish(&r, topic, keyed.then_some(key.as_slice()), &value, txn, now_ms).await,
            Err(e) if e.class() == ErrorClass::PerTable => Ok(Some((r.table.clone(), e.to_string()))),
            Err(e) => Err(e.into()),
        };
        (self.key, self.value) = (key, value);
        outcome
    }

    /// Publishes the encoded record of `r` (and a tombstone after a delete, when on).
    async fn publish(
        &mut self,
        r: &Record,
        topic: Arc<str>,
        key: Option<&[u8]>,
        value: &[u8],
        txn: TxnId,
        now_ms: i64,
    ) -> Result<Failure, RunError> {
        let op = r.change.op;
        if op != Op::Truncate {
            self.count_row(&r.table, crate::encoder::datum::op_code(op), r.txn.commit_ms);
        }
        let headers = headers(&r.txn, r.position, r.table.dotted(), now_ms);
        match self.send(&topic, key, Some(value), txn, &headers).await {
            Err(RunError::Publish(e)) if e.class() == ErrorClass::PerTable => {
                return Ok(Some((r.table.clone(), format!("{e} (the row's key: {})", key_text(&r.change)))));
            }
            other => other?,
        }
        if r.tombstone && key.is_some() {
            // A tombstone after a delete lets compaction drop the key.
            self.send(&topic, key, None, txn, &headers).await?;
        }
        if op == Op::Truncate {
            tracing::info!(table = %r.table, gtid = %r.txn.gtid_text, "TRUNCATE TABLE: op \"t\" record sent");
        }
        Ok(None)
    }

    /// Counts a published row of `table` for `ops` (reported at the end of the batch).
    fn count_row(&mut self, table: &TableId, op: &str, commit_ms: i64) {
        self.last_commit_ms = commit_ms;
        // A batch's rows are mostly of one table, or a few: the last entry is checked first.
        let at = match self.rows.iter().rposition(|(t, _)| t == table) {
            Some(at) => at,
            None => {
                self.rows.push((table.clone(), RowCounts::default()));
                self.rows.len() - 1
            }
        };
        self.rows[at].1.add(op);
    }

    /// Reports the rows published since the last call to `ops`, processed at `now_ms` (the driver
    /// calls it once per batch of events).
    pub fn report_rows(&mut self, now_ms: i64) {
        for (table, counts) in self.rows.drain(..) {
            self.ops.rows(table.dotted(), counts, self.last_commit_ms, now_ms);
        }
    }

    /// A transaction metadata record (BEGIN, or END with the counts per table).
    async fn metadata(
        &mut self,
        txn: &TxnContext,
        end: Option<Vec<(TableId, u64)>>,
        position: u64,
        now_ms: i64,
    ) -> Result<(), RunError> {
        let open = self.current("transaction metadata")?;
        let record = self.encoder.transaction_record(&txn.gtid_text, end.as_deref(), txn.commit_ms).await?;
        if end.is_none() {
            self.publisher.ensure_topic_as(&record.topic, &self.settings.metadata_topic).await?;
        }
        let headers = headers(txn, position, "", now_ms);
        self.send(&record.topic, record.key.as_deref(), Some(&record.value), open, &headers).await
    }

    /// A snapshot chunk as one pseudo-transaction of `op = "r"` records, whose release makes the
    /// chunk's progress durable. A per-table failure fails the chunk (the copier reports it).
    async fn chunk(&mut self, chunk: Chunk, dropped: u64, now_ms: i64) -> Result<Outcome, RunError> {
        let txn = self.committer.begin(None);
        let name = Arc::clone(&self.settings.name);
        let source = SourceInfo {
            connector: self.settings.connector,
            name: &name,
            ts_ms: now_ms,
            ts_us: now_ms.saturating_mul(1000),
            snapshot: chunk.kind.source_field(),
            // Read by a SELECT, not from the binlog: no server wrote these records' event.
            server_id: 0,
            gtid: None,
            file: "",
            pos: 0,
            row: 0,
            thread: None,
        };
        let mut sent = 0;
        let mut failed = None;
        for (i, row) in chunk.rows.into_iter().enumerate() {
            let table = Arc::clone(&chunk.schema);
            let change = RowChange { op: Op::Read, table, before: None, after: Some(row), at: Default::default() };
            let at = ChunkAt { source: &source, table: &chunk.table, txn, now_ms };
            match self.chunk_row(&change, i as u64, &at).await? {
                Some(problem) => {
                    failed = Some(problem);
                    break;
                }
                None => sent += 1,
            }
        }
        self.committer.end(txn)?;
        Ok(match failed {
            Some(problem) => Outcome::Failed(problem),
            None => {
                self.committer.mark(txn, &chunk.table, chunk.progress);
                Outcome::Emitted { sent, dropped }
            }
        })
    }

    /// The `i`-th row of a chunk; a per-table problem is returned.
    async fn chunk_row(&mut self, change: &RowChange, i: u64, at: &ChunkAt<'_>) -> Result<Option<String>, RunError> {
        let (mut key, mut value) = (std::mem::take(&mut self.key), std::mem::take(&mut self.value));
        let outcome = match self.encoder.encode_into(change, at.source, None, at.now_ms, &mut key, &mut value).await {
            Ok((topic, keyed)) => self.read_record(change, i, at, &topic, keyed.then_some(&key), &value).await,
            Err(e) if e.class() == ErrorClass::PerTable => Ok(Some(e.to_string())),
            Err(e) => Err(e.into()),
        };
        (self.key, self.value) = (key, value);
        outcome
    }

    /// Checks (every `snapshot.inline_verify_every`-th) and publishes the `i`-th record of a chunk.
    async fn read_record(
        &mut self,
        change: &RowChange,
        i: u64,
        at: &ChunkAt<'_>,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Option<String>, RunError> {
        let every = self.settings.inline_verify_every;
        if every > 0
            && i % every == 0
            && let Err(e) = self.encoder.verify_inline(change, at.source, at.now_ms, value)
        {
            return Ok(Some(e.to_string()));
        }
        let headers =
            RecordHeaders { gtid: "", position: i + 1, table: at.table, commit_us: 0, timestamp_ms: at.now_ms };
        match self.send(topic, key, Some(value), at.txn, &headers).await {
            Err(RunError::Publish(e)) if e.class() == ErrorClass::PerTable => Ok(Some(e.to_string())),
            other => other.map(|()| None),
        }
    }

    /// Publishes one record of transaction `txn` (`value: None`: a tombstone), creating its topic
    /// the first time.
    async fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        txn: TxnId,
        headers: &RecordHeaders<'_>,
    ) -> Result<(), RunError> {
        self.publisher.ensure_topic(topic).await?;
        self.publisher.check_size(topic, key, value, headers)?;
        let record = self.committer.sent(txn)?;
        self.publisher.send(record, topic, key, value, headers, &mut self.acks).await?;
        self.ack_sent();
        if let Some(t) = &mut self.kafka_txn {
            t.sent(key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        }
        Ok(())
    }

    /// Hands every delivery report received so far to the committer.
    pub fn settle(&mut self) -> Result<(), RunError> {
        let outcome = self.settle_reports();
        self.fenced_or(outcome)
    }

    fn settle_reports(&mut self) -> Result<(), RunError> {
        self.publisher.take_acks(&mut self.acks);
        let (mut ok, mut failed) = (0, 0);
        for (record, result) in self.acks.drain(..) {
            if result.is_ok() {
                ok += 1;
            } else {
                failed += 1;
            }
            self.committer.delivered(record, result)?;
        }
        self.ops.acked(ok, failed);
        // With the records' count, so the two figures always agree.
        self.ops.published_bytes(self.publisher.acked_bytes());
        self.release_acks();
        Ok(())
    }

    /// Resolves once delivery reports are waiting (never while nothing is in flight).
    pub async fn acks_ready(&self) {
        if self.publisher.inflight() == 0 {
            std::future::pending::<()>().await;
        }
        self.publisher.acks_ready().await;
    }

    /// Whether the publisher takes more records now.
    pub fn has_capacity(&self) -> bool {
        self.publisher.has_capacity()
    }

    pub fn inflight(&self) -> usize {
        self.publisher.inflight()
    }

    /// Stores the position when its interval has passed (`force`: now, waiting for the write),
    /// and reports it.
    pub async fn commit(&mut self, force: bool) -> Result<(), RunError> {
        let stored = if self.kafka_txn.is_some() {
            let outcome = self.transaction_tick(crate::clock::now_ms() as i64, force).await;
            self.fenced_or(outcome)?;
            self.committer.is_stored()
        } else {
            self.committer.commit(force).await?
        };
        let caught_up = self.committer.caught_up(stored);
        let (waiting, held) = self.committer.waiting();
        self.ops.offset(self.committer.position().to_string(), caught_up, waiting, held);
        if let Some(s) = self.committer.snapshot() {
            for (table, p) in &s.tables {
                if p.done {
                    self.ops.snapshot_done(table);
                }
            }
        }
        Ok(())
    }

    /// Reports what is in flight (`held`: the stream waits for a keyless table's copy).
    pub fn report(&self, held: bool) {
        let p = &self.publisher;
        self.ops.inflight(p.inflight(), p.inflight_bytes(), !p.has_capacity() || held, p.acked_bytes());
    }

    /// Whether a snapshot is in progress.
    pub fn snapshotting(&self) -> bool {
        self.committer.snapshot().is_some_and(|s| !s.is_complete())
    }

    /// When the position is next to be stored (at-least-once; exactly-once commits it with its
    /// Kafka transaction, on the tick).
    pub fn store_due_at(&self) -> Option<std::time::Instant> {
        if self.kafka_txn.is_some() { None } else { self.committer.store_due_at() }
    }

    /// The committer, for snapshot requests.
    pub fn committer(&mut self) -> &mut Committer {
        &mut self.committer
    }

    /// At shutdown: waits for the records in flight until `deadline`, then stores the final
    /// position.
    pub async fn finish(&mut self, deadline: tokio::time::Instant) -> Result<(), RunError> {
        while self.publisher.inflight() > 0 {
            match tokio::time::timeout_at(deadline, self.publisher.next_acks(&mut self.acks)).await {
                Ok(()) => self.settle()?,
                Err(_) => {
                    tracing::warn!(
                        inflight = self.publisher.inflight(),
                        "shutdown deadline passed with records in flight; they will be sent again"
                    );
                    break;
                }
            }
        }
        if self.kafka_txn.is_some() {
            self.finish_transaction().await?;
        } else {
            self.committer.commit(true).await?;
        }
        self.ops.committed(self.committer.position().to_string());
        tracing::info!(position = %self.committer.position(), "stopped; offset committed");
        Ok(())
    }
}

/// A record's headers; its Kafka timestamp is `now_ms`, its envelope's `ts_ms`.
fn headers<'a>(txn: &'a TxnContext, position: u64, table: &'a str, now_ms: i64) -> RecordHeaders<'a> {
    RecordHeaders { gtid: &txn.gtid_text, position, table, commit_us: txn.commit_us, timestamp_ms: now_ms }
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
