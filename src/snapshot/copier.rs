//! The copier: reads tables in key order, chunk by chunk, each chunk between two watermarks,
//! and hands the chunks to the stream loop ([`super::merge`]), which emits them.
//!
//! * One connection per table being copied; `parallel` tables at a time.
//! * Keyset pagination: `WHERE key > last ORDER BY key LIMIT n` over the primary key (or the
//!   declared key), composite keys expanded as `k1 > ? OR (k1 = ? AND k2 > ?) …`, so each chunk is
//!   an index range scan whatever its position in the table.
//! * The chunk size adapts toward `chunk_target` per SELECT (halving or doubling at most per step).
//! * Throttled by `max_rows_per_sec` (shared by all tables), by `lag_query`, and by pause.
//! * A chunk waits for the stream loop's answer before the next is read: at most `parallel`
//!   chunks exist at a time (bounded memory), and the loop gives chunks priority over new binlog
//!   events, so the copy progresses under any write load.
//! * A table with no key at all (no primary key, no unique NOT NULL index, no `snapshot.keys`) is
//!   read in one pass inside a consistent snapshot while the stream is held at the snapshot's
//!   position ([`super::merge`]'s hold), in batches of at most `chunk_rows` rows and
//!   [`MAX_BATCH_BYTES`], each emitted before the next is read; one such copy at a time. After
//!   a restart an unfinished keyless copy starts over (its rows have no key to resume after).

use super::SnapshotError;
use super::convert::{Bound, convert};
use super::describe::{Described, describe, ident};
use super::merge::{Chunk, HoldOutcome, Msg, Outcome, WindowId};
use super::progress::{SnapshotKind, TableProgress};
use crate::config::{SnapshotSettings, SourceSettings};
use crate::ops::Ops;
use crate::position::{MariaDbPosition, MySqlGtidSet, Position};
use crate::source::{Flavor, SourceError, exec_text, query_one, query_text};
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Smallest and largest chunk.
const MIN_CHUNK: usize = 100;
const MAX_CHUNK: usize = 100_000;
/// Retries of one chunk (late windows) before the table fails.
const MAX_RETRIES: u32 = 100;
/// A keyless copy's batch at most, in bytes of the values read.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// What every table's copy shares.
#[derive(Debug)]
pub struct Copier {
    pub source: SourceSettings,
    pub flavor: Flavor,
    pub settings: SnapshotSettings,
    pub ops: Arc<Ops>,
    pub tx: mpsc::Sender<Msg>,
    next_window: AtomicU64,
    /// Rate limit: when the next chunk may start.
    next_slot: Mutex<Instant>,
    /// Keyless copies hold the stream: one at a time.
    holding: Mutex<()>,
}

/// One table to copy.
#[derive(Debug, Clone)]
pub struct Job {
    pub db: String,
    pub table: String,
    pub progress: TableProgress,
    pub kind: SnapshotKind,
    /// Planned as keyless: its stream rows are muted until its copy holds the stream, so it is
    /// copied that way whatever its key is by then.
    pub held: bool,
}

impl Copier {
    pub fn new(
        source: SourceSettings,
        flavor: Flavor,
        settings: SnapshotSettings,
        ops: Arc<Ops>,
        tx: mpsc::Sender<Msg>,
    ) -> Arc<Copier> {
        Arc::new(Copier {
            source,
            flavor,
            settings,
            ops,
            tx,
            next_window: AtomicU64::new(1),
            next_slot: Mutex::new(Instant::now()),
            holding: Mutex::new(()),
        })
    }

    /// Copies jobs as they come, `parallel` at a time, until `jobs` closes and all are done.
    /// A table that fails is reported (log, status) and the others go on.
    /// Copies the jobs as they come, `snapshot.parallel` at a time; a job for a table already
    /// queued or being copied is dropped (its copy covers the request).
    pub async fn run(self: Arc<Self>, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let mut running = tokio::task::JoinSet::new();
        let mut queue = std::collections::VecDeque::<Job>::new();
        let mut active = std::collections::HashSet::<String>::new();
        let mut open = true;
        loop {
            while running.len() < self.settings.parallel
                && let Some(job) = queue.pop_front()
            {
                let copier = Arc::clone(&self);
                running.spawn(async move {
                    let name = format!("{}.{}", job.db, job.table);
                    let outcome = copier.copy(job).await;
                    (name, outcome)
                });
            }
            if !open && running.is_empty() && queue.is_empty() {
                return;
            }
            tokio::select! {
                job = jobs.recv(), if open => match job {
                    Some(job) => {
                        if active.insert(format!("{}.{}", job.db, job.table)) {
                            queue.push_back(job);
                        } else {
                            tracing::info!(table = %format!("{}.{}", job.db, job.table), "snapshot already queued or running for the table");
                        }
                    }
                    None => open = false,
                },
                Some(done) = running.join_next() => match done {
                    Ok((name, outcome)) => {
                        active.remove(&name);
                        if let Err(e) = outcome {
                            tracing::error!(table = %name, error = %e, "snapshot of the table failed; the other tables go on");
                            self.ops.snapshot_failed(&name, &e.to_string());
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "snapshot task ended abnormally"),
                },
            }
        }
    }

    /// Copies one table; returns when its last chunk has been emitted (or the loop is gone).
    async fn copy(&self, job: Job) -> Result<(), SnapshotError> {
        let name: Arc<str> = format!("{}.{}", job.db, job.table).into();
        let mut conn = crate::source::connect(&self.source).await?;
        session(&mut conn, self.flavor).await?;
        if job.kind == SnapshotKind::Incremental {
            // (An initial snapshot warns once, at its plan.)
            let prepared = super::describe::prepared_xa(&mut conn).await;
            if !prepared.is_empty() {
                tracing::warn!(
                    table = %name,
                    xids = ?prepared,
                    "XA transactions are prepared on the source and not decided: this copy cannot see their rows; the \
                     stream publishes them at their XA COMMIT unless they were prepared before rowferry's start position"
                );
            }
        }
        let mut described = describe(&mut conn, &job.db, &job.table, self.flavor, &self.settings).await?;
        // A table planned as keyless has had its stream rows muted: it is copied held even if a
        // key appeared since (only its copy carries those rows).
        if described.key.is_empty() || job.held {
            return self.copy_held(&mut conn, &name, &described, job.kind).await;
        }
        let mut after: Option<Vec<Bound>> = job.progress.after.clone();
        let mut rows_done = job.progress.rows;
        self.ops.snapshot_started(&name, rows_done, described.estimate);
        let mut size = self.settings.chunk_rows.clamp(1, MAX_CHUNK);
        let mut retries = 0;
        let (mut chunks, mut retried) = (0u64, 0u64);
        let (mut logged_at, mut logged_rows) = (Instant::now(), rows_done);
        loop {
            self.throttle(&mut conn, &name, size).await?;
            let id: WindowId = self.next_window.fetch_add(1, Ordering::Relaxed);
            let read = self.read_chunk(&mut conn, id, &name, &described, after.as_deref(), size).await;
            let (rows, last, high, took) = match read {
                Ok(read) => read,
                Err(e) => {
                    let _ = self.tx.send(Msg::Close { id }).await;
                    return Err(e);
                }
            };
            let n = rows.len();
            let done = described.key.is_empty() || n < size;
            let progress =
                TableProgress { after: last.clone().or_else(|| after.clone()), rows: rows_done + n as u64, done };
            let chunk = Chunk {
                table: Arc::clone(&name),
                schema: Arc::clone(&described.schema),
                key: described.key.clone(),
                rows,
                high,
                progress,
                kind: job.kind,
            };
            let (reply, answer) = oneshot::channel();
            if self.tx.send(Msg::Rows { id, chunk, reply }).await.is_err() {
                return Ok(());
            }
            let Ok(outcome) = answer.await else { return Ok(()) };
            match outcome {
                Outcome::Emitted { .. } => {
                    retries = 0;
                    chunks += 1;
                    rows_done += n as u64;
                    if last.is_some() {
                        after = last;
                    }
                    self.ops.snapshot_rows(&name, rows_done);
                    if logged_at.elapsed() >= Duration::from_secs(10) {
                        let rate = (rows_done - logged_rows) as f64 / logged_at.elapsed().as_secs_f64();
                        let left = described.estimate.saturating_sub(rows_done);
                        let eta = if rate > 0.0 { format!("{:.0} s", left as f64 / rate) } else { "?".into() };
                        tracing::info!(table = %name, rows = rows_done, estimate = described.estimate, rate = rate.round(), eta, "copying");
                        (logged_at, logged_rows) = (Instant::now(), rows_done);
                    }
                    if done {
                        tracing::info!(table = %name, rows = rows_done, chunks, retried, "table copied");
                        return Ok(());
                    }
                    size = adapt(size, took, self.settings.chunk_target);
                }
                Outcome::Retry => {
                    retries += 1;
                    retried += 1;
                    self.ops.snapshot_retry(&name);
                    tracing::debug!(table = %name, retries, "chunk read again: its window could not be placed");
                    if retries > MAX_RETRIES {
                        return Err(SnapshotError::Table {
                            table: name.to_string(),
                            problem: format!(
                                "{MAX_RETRIES} chunks in a row could not be placed in the stream (the stream kept \
                                 passing their read position, or DDL kept changing the table)"
                            ),
                        });
                    }
                    // Smaller chunks take less time: fewer changes land inside their window.
                    size = (size / 2).max(MIN_CHUNK.min(size));
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(retries.min(50)))).await;
                    described = describe(&mut conn, &job.db, &job.table, self.flavor, &self.settings).await?;
                }
                Outcome::Failed(problem) => return Err(SnapshotError::Table { table: name.to_string(), problem }),
            }
        }
    }

    /// A keyless table: one pass inside a consistent snapshot while the stream is held at its
    /// position (see the module docs).
    async fn copy_held(
        &self,
        conn: &mut mysql_async::Conn,
        name: &Arc<str>,
        d: &Described,
        kind: SnapshotKind,
    ) -> Result<(), SnapshotError> {
        let _one_at_a_time = self.holding.lock().await;
        tracing::warn!(
            table = %name,
            rows = d.estimate,
            "no primary key, no unique NOT NULL index and no snapshot.keys entry: copied in one pass while the \
             stream waits at the copy's position (the other tables catch up afterwards); its records have no key"
        );
        self.ops.snapshot_started(name, 0, d.estimate);
        conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await
            .map_err(|e| query_error("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", e))?;
        for attempt in 1..=MAX_RETRIES {
            self.throttle(conn, name, 0).await?;
            let id: WindowId = self.next_window.fetch_add(1, Ordering::Relaxed);
            let (ready, frozen) = oneshot::channel();
            self.tx
                .send(Msg::Freeze { id, table: Arc::clone(name), ready })
                .await
                .map_err(|_| SnapshotError::Stopped)?;
            frozen.await.map_err(|_| SnapshotError::Stopped)?;
            let copied = self.copy_at_snapshot(conn, id, name, d, kind).await;
            let _ = conn.query_drop("ROLLBACK").await;
            let _ = self.tx.send(Msg::Close { id }).await;
            match copied {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    self.ops.snapshot_retry(name);
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt.min(50)))).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(SnapshotError::Table {
            table: name.to_string(),
            problem: format!(
                "its one-pass copy was started {MAX_RETRIES} times and each time a DDL statement passed before it \
                 began; its stream rows stay muted until a restart copies it again"
            ),
        })
    }

    /// One try of a keyless copy, the stream frozen: `Ok(false)` when a DDL statement passed
    /// while the copy started and it must start again.
    async fn copy_at_snapshot(
        &self,
        conn: &mut mysql_async::Conn,
        id: WindowId,
        name: &Arc<str>,
        d: &Described,
        kind: SnapshotKind,
    ) -> Result<bool, SnapshotError> {
        // MySQL: gtid_executed read before the snapshot opens, so every transaction in it is in
        // the snapshot (the stream mutes the table up to it; see `merge`).
        let before = match self.flavor {
            Flavor::MySql => Some(mysql_executed(conn).await?),
            Flavor::MariaDb => None,
        };
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await
            .map_err(|e| query_error("START TRANSACTION WITH CONSISTENT SNAPSHOT", e))?;
        let high = match before {
            Some(executed) => executed,
            None => mariadb_snapshot_position(conn).await?,
        };
        let (reply, answer) = oneshot::channel();
        self.tx.send(Msg::Hold { id, high: high.clone(), reply }).await.map_err(|_| SnapshotError::Stopped)?;
        if answer.await.map_err(|_| SnapshotError::Stopped)? == HoldOutcome::Retry {
            tracing::debug!(table = %name, "a DDL statement passed while the copy started; again");
            return Ok(false);
        }
        let (sql, params) = select(d, None, 0)?;
        let mut result = conn.exec_iter(sql.as_str(), params).await.map_err(|e| query_error(&sql, e))?;
        let mut rows_done = 0u64;
        let started = Instant::now();
        let mut next = result.next().await.map_err(|e| query_error(&sql, e))?;
        // One chunk per batch; the last one (empty for an empty table) marks the table done.
        loop {
            let (mut batch, mut bytes) = (Vec::new(), 0usize);
            while let Some(row) = next.take() {
                let values = row.unwrap();
                bytes += values.iter().map(value_bytes).sum::<usize>();
                batch.push(values);
                next = result.next().await.map_err(|e| query_error(&sql, e))?;
                if batch.len() >= self.settings.chunk_rows.max(1) || bytes >= MAX_BATCH_BYTES {
                    break;
                }
            }
            let last = next.is_none();
            let rows = convert_values(batch, d, name)?;
            let n = rows.len() as u64;
            let chunk = Chunk {
                table: Arc::clone(name),
                schema: Arc::clone(&d.schema),
                key: Vec::new(),
                rows,
                high: high.clone(),
                progress: TableProgress { after: None, rows: rows_done + n, done: last },
                kind,
            };
            let (reply, answer) = oneshot::channel();
            self.tx.send(Msg::Rows { id, chunk, reply }).await.map_err(|_| SnapshotError::Stopped)?;
            match answer.await.map_err(|_| SnapshotError::Stopped)? {
                Outcome::Emitted { .. } => {
                    rows_done += n;
                    self.ops.snapshot_rows(name, rows_done);
                }
                Outcome::Failed(problem) => return Err(SnapshotError::Table { table: name.to_string(), problem }),
                Outcome::Retry => return Ok(false),
            }
            if last {
                break;
            }
        }
        tracing::info!(table = %name, rows = rows_done, secs = started.elapsed().as_secs_f64(), "table copied (one pass, stream held)");
        Ok(true)
    }

    /// Pause, rate limit and replica lag.
    async fn throttle(&self, conn: &mut mysql_async::Conn, name: &str, rows: usize) -> Result<(), SnapshotError> {
        let mut paused = self.ops.paused();
        while *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                break;
            }
        }
        if let Some(rate) = self.settings.max_rows_per_sec {
            let wait = {
                let mut slot = self.next_slot.lock().await;
                let now = Instant::now();
                let start = (*slot).max(now);
                *slot = start + Duration::from_secs_f64(rows as f64 / rate as f64);
                start - now
            };
            tokio::time::sleep(wait).await;
        }
        if let Some(query) = &self.settings.lag_query {
            let mut warned = false;
            loop {
                let lag: f64 = query_one(conn, query).await?.trim().parse().map_err(|_| SnapshotError::Table {
                    table: name.to_string(),
                    problem: format!("snapshot.lag_query `{query}` did not return a number"),
                })?;
                if lag <= self.settings.max_lag_secs {
                    break;
                }
                if !warned {
                    tracing::info!(table = %name, lag, max = self.settings.max_lag_secs, "replica lag: copy waits");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Ok(())
    }

    /// Reads one chunk between its watermarks; the window is prepared before L is read.
    async fn read_chunk(
        &self,
        conn: &mut mysql_async::Conn,
        id: WindowId,
        name: &Arc<str>,
        d: &Described,
        after: Option<&[Bound]>,
        size: usize,
    ) -> Result<(Vec<Vec<crate::change::Value>>, Option<Vec<Bound>>, Position, Duration), SnapshotError> {
        let key_names = d.key.iter().map(|&i| d.schema.columns[i].name.clone()).collect();
        let (ready, taken) = oneshot::channel();
        self.tx
            .send(Msg::Prepare { id, table: Arc::clone(name), key_names, ready })
            .await
            .map_err(|_| SnapshotError::Stopped)?;
        taken.await.map_err(|_| SnapshotError::Stopped)?;
        let low = match self.flavor {
            Flavor::MySql => mysql_executed(conn).await?,
            Flavor::MariaDb => {
                conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .await
                    .map_err(|e| query_error("START TRANSACTION WITH CONSISTENT SNAPSHOT", e))?;
                mariadb_snapshot_position(conn).await?
            }
        };
        self.tx.send(Msg::Open { id, low: low.clone() }).await.map_err(|_| SnapshotError::Stopped)?;
        let (sql, params) = select(d, after, size)?;
        let started = Instant::now();
        let raw: Vec<mysql_async::Row> = conn.exec(&sql, params).await.map_err(|e| query_error(&sql, e))?;
        let took = started.elapsed();
        let high = match self.flavor {
            Flavor::MySql => mysql_executed(conn).await?,
            Flavor::MariaDb => {
                conn.query_drop("COMMIT").await.map_err(|e| query_error("COMMIT", e))?;
                low
            }
        };
        let (rows, last) = convert_rows(raw, d, name)?;
        Ok((rows, last, high, took))
    }
}

/// Converted rows and the last row's key.
pub(crate) type ConvertedRows = (Vec<Vec<crate::change::Value>>, Option<Vec<Bound>>);

/// Rows as read → the decoder's values, and the last row's key (the next chunk's boundary).
pub(crate) fn convert_rows(
    raw: Vec<mysql_async::Row>,
    d: &Described,
    name: &str,
) -> Result<ConvertedRows, SnapshotError> {
    let raw: Vec<Vec<mysql_async::Value>> = raw.into_iter().map(mysql_async::Row::unwrap).collect();
    let last = raw
        .last()
        .filter(|_| !d.key.is_empty())
        .map(|values| d.key.iter().map(|&k| values.get(k).map_or(Bound::Null, Bound::from_sql)).collect());
    Ok((convert_values(raw, d, name)?, last))
}

/// Rows' values as read → the decoder's values.
fn convert_values(
    raw: Vec<Vec<mysql_async::Value>>,
    d: &Described,
    name: &str,
) -> Result<Vec<Vec<crate::change::Value>>, SnapshotError> {
    raw.into_iter()
        .map(|values| {
            values
                .into_iter()
                .zip(&d.schema.columns)
                .map(|(v, c)| {
                    convert(&c.ty, v).map_err(|problem| SnapshotError::Table {
                        table: name.to_string(),
                        problem: format!("column {}: {problem}", c.name),
                    })
                })
                .collect()
        })
        .collect()
}

/// About how many bytes a value read holds.
fn value_bytes(v: &mysql_async::Value) -> usize {
    match v {
        mysql_async::Value::Bytes(b) => b.len() + 24,
        _ => 24,
    }
}

/// The next chunk's SELECT and its parameters.
pub(crate) fn select(
    d: &Described,
    after: Option<&[Bound]>,
    size: usize,
) -> Result<(String, Vec<mysql_async::Value>), SnapshotError> {
    let s = &d.schema;
    let columns: Vec<String> = s.columns.iter().map(|c| ident(&c.name)).collect();
    let mut sql = format!("SELECT {} FROM {}.{}", columns.join(", "), ident(&s.db), ident(&s.table));
    let mut params = Vec::new();
    let keys: Vec<String> = d.key.iter().map(|&i| ident(&s.columns[i].name)).collect();
    if let Some(after) = after {
        let bad = |problem: String| SnapshotError::Table { table: format!("{}.{}", s.db, s.table), problem };
        if after.len() != keys.len() {
            return Err(bad(format!(
                "the stored chunk boundary has {} values for a {}-column key",
                after.len(),
                keys.len()
            )));
        }
        let values: Vec<mysql_async::Value> = after.iter().map(Bound::to_sql).collect::<Result<_, _>>().map_err(bad)?;
        // k1 > ? OR (k1 = ? AND k2 > ?) OR …
        let mut terms = Vec::new();
        for i in 0..keys.len() {
            let mut term: Vec<String> = keys[..i].iter().map(|k| format!("{k} = ?")).collect();
            term.push(format!("{} > ?", keys[i]));
            params.extend(values[..=i].iter().cloned());
            terms.push(format!("({})", term.join(" AND ")));
        }
        sql.push_str(&format!(" WHERE {}", terms.join(" OR ")));
    }
    if !keys.is_empty() {
        sql.push_str(&format!(" ORDER BY {} LIMIT {size}", keys.join(", ")));
    }
    Ok((sql, params))
}

fn adapt(size: usize, took: Duration, target: Duration) -> usize {
    let ratio = (target.as_secs_f64() / took.as_secs_f64().max(1e-4)).clamp(0.5, 2.0);
    ((size as f64 * ratio) as usize).clamp(MIN_CHUNK, MAX_CHUNK)
}

fn query_error(query: &str, source: mysql_async::Error) -> SnapshotError {
    SnapshotError::Source(Box::new(SourceError::Query { query: query.to_string(), source }))
}

/// UTF-8 text, UTC times, and (MariaDB) the isolation a consistent snapshot needs.
pub async fn session(conn: &mut mysql_async::Conn, flavor: Flavor) -> Result<(), SnapshotError> {
    let mut statements = vec!["SET NAMES utf8mb4", "SET SESSION time_zone = '+00:00'"];
    if flavor == Flavor::MariaDb {
        statements.push("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    }
    for s in statements {
        conn.query_drop(s).await.map_err(|e| query_error(s, e))?;
    }
    Ok(())
}

async fn mysql_executed(conn: &mut mysql_async::Conn) -> Result<Position, SnapshotError> {
    let text = query_one(conn, "SELECT @@GLOBAL.gtid_executed").await?;
    Ok(Position::MySql(MySqlGtidSet::parse(&text.replace('\n', ""))?))
}

/// The exact binlog position of the open consistent snapshot, as a GTID position.
async fn mariadb_snapshot_position(conn: &mut mysql_async::Conn) -> Result<Position, SnapshotError> {
    let status = query_text(conn, "SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
    let get = |name: &str| {
        status.iter().find_map(|r| match r.as_slice() {
            [Some(n), Some(v)] if n.eq_ignore_ascii_case(name) => Some(v.clone()),
            _ => None,
        })
    };
    let (Some(file), Some(pos)) = (get("Binlog_snapshot_file"), get("Binlog_snapshot_position")) else {
        return Err(SnapshotError::Source(Box::new(SourceError::Unexpected {
            query: "SHOW STATUS LIKE 'binlog_snapshot_%'".into(),
            detail: "no Binlog_snapshot_file/position: is log_bin on?".into(),
        })));
    };
    let query = "SELECT BINLOG_GTID_POS(?, ?)";
    let rows = exec_text(conn, query, vec![file.clone().into(), pos.clone().into()]).await?;
    let text = rows.first().and_then(|r| r.first().cloned().flatten()).ok_or_else(|| {
        SnapshotError::Source(Box::new(SourceError::Unexpected {
            query: query.into(),
            detail: format!("NULL for {file}:{pos}"),
        }))
    })?;
    Ok(Position::MariaDb(MariaDbPosition::parse(&text)?))
}

#[cfg(test)]
mod tests;
