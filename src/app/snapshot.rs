//! The stream loop's side of snapshots: the plan `run` starts with, `POST /snapshot` requests,
//! and emitting the chunks the merger releases as `op = "r"` records, each chunk one
//! pseudo-transaction of the commit tracker whose release makes the chunk's progress durable.

use super::{Ctx, Route, RunError, Stages, encoder_record, send};
use crate::change::{Op, RowChange};
use crate::committer::stage::Committer;
use crate::config::Settings;
use crate::encoder::datum::SourceInfo;
use crate::error::ErrorClass;
use crate::publisher::RecordHeaders;
use crate::snapshot::copier::Job;
use crate::snapshot::merge::{Outcome, Ready};
use crate::snapshot::progress::{SnapshotKind, SnapshotProgress, TableProgress};
use std::sync::Arc;

/// The snapshot `run` starts with.
#[derive(Debug)]
pub(super) struct SnapshotPlan {
    pub(super) progress: SnapshotProgress,
    /// Every captured table as `(db, table)`, to resolve `db.table` names.
    pub(super) captured: Vec<(String, String)>,
    /// An initial snapshot's tables without any key (`db.table`): copied holding the stream, their
    /// stream rows muted until then (see `snapshot::merge`).
    pub(super) keyless: Vec<String>,
}

/// `db.table` names checked against the captured tables.
pub(super) fn resolve_tables(wanted: &[String], captured: &[(String, String)]) -> Result<Vec<String>, RunError> {
    wanted
        .iter()
        .map(|name| {
            if captured.iter().any(|(d, t)| format!("{d}.{t}") == *name) {
                Ok(name.clone())
            } else {
                Err(RunError::Other(format!(
                    "snapshot table {name}: no such base table among the captured ones (check the name and \
                     tables.include/exclude)"
                )))
            }
        })
        .collect()
}

/// The copier jobs for `tables` (`db.table` → progress so far) that are captured and unfinished;
/// those in `keyless` are copied holding the stream.
pub(super) fn jobs<'a>(
    kind: SnapshotKind,
    tables: impl IntoIterator<Item = (&'a String, &'a TableProgress)>,
    captured: &[(String, String)],
    keyless: &[String],
) -> Vec<Job> {
    tables
        .into_iter()
        .filter(|(_, p)| !p.done)
        .filter_map(|(name, p)| {
            let (db, table) = captured.iter().find(|(d, t)| format!("{d}.{t}") == *name)?;
            Some(Job { db: db.clone(), table: table.clone(), progress: p.clone(), kind, held: keyless.contains(name) })
        })
        .collect()
}

/// A `POST /snapshot` request: the named tables (checked against the tables captured now — one
/// may have been created since the start) join the snapshot, and the unfinished ones are queued.
pub(super) async fn request(
    settings: &Settings,
    tables: Vec<String>,
    captured: &mut Vec<(String, String)>,
    committer: &mut Committer,
    jobs_tx: &tokio::sync::mpsc::UnboundedSender<Job>,
) {
    match crate::source::connect(&settings.source).await {
        Ok(mut conn) => match crate::snapshot::describe::list_tables(&mut conn, &settings.tables).await {
            Ok(now) => *captured = now,
            Err(e) => tracing::warn!(error = %e, "listing the tables for a snapshot request"),
        },
        Err(e) => tracing::warn!(error = %e, "listing the tables for a snapshot request"),
    }
    let tables = match resolve_tables(&tables, captured) {
        Ok(tables) => tables,
        Err(e) => {
            tracing::warn!(error = %e, "snapshot request refused");
            return;
        }
    };
    tracing::info!(tables = ?tables, "incremental snapshot requested");
    committer.snapshot_add(SnapshotKind::Incremental, tables.clone());
    let Some(progress) = committer.snapshot() else { return };
    let wanted = progress.tables.iter().filter(|(n, _)| tables.contains(n));
    for job in jobs(progress.kind, wanted, captured, &[]) {
        // Fails only once the copier is gone (the run is ending).
        let _ = jobs_tx.send(job);
    }
}

/// Emits every snapshot chunk the stream has caught up with (between two transactions only).
pub(super) async fn emit_chunks(route: &mut Route, ctx: &Ctx<'_>, st: &mut Stages) -> Result<(), RunError> {
    let Stages { encoder, publisher, committer, acks } = st;
    while let Some(ready) = route.merger.take_ready() {
        let (chunk, dropped, reply) = match ready {
            Ready::Retry { reply } => {
                let _ = reply.send(Outcome::Retry);
                continue;
            }
            Ready::Emit { chunk, dropped, reply } => (chunk, dropped, reply),
        };
        if let Some(why) = route.stopped.get(&*chunk.table) {
            let _ = reply.send(Outcome::Failed(format!("the table is stopped: {why}")));
            continue;
        }
        let txn = committer.begin(None);
        let source = SourceInfo {
            connector: ctx.connector,
            name: &ctx.settings.name,
            ts_ms: ctx.now_ms,
            ts_us: ctx.now_ms.saturating_mul(1000),
            snapshot: chunk.kind.source_field(),
            // Read by a SELECT, not from the binlog: no server wrote these records' event.
            server_id: 0,
            gtid: None,
            file: "",
            pos: 0,
            row: 0,
            thread: None,
        };
        let mut failed = None;
        let mut sent = 0;
        for (i, row) in chunk.rows.into_iter().enumerate() {
            let change = RowChange {
                op: Op::Read,
                table: Arc::clone(&chunk.schema),
                before: None,
                after: Some(row),
                at: Default::default(),
            };
            let encoded = match encoder.encode(&change, &source, None, ctx.now_ms).await {
                Ok(encoded) => encoded,
                Err(e) if e.class() == ErrorClass::PerTable => {
                    failed = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let every = ctx.settings.snapshot.inline_verify_every;
            if every > 0
                && (i as u64) % every == 0
                && let Err(e) = encoder.verify_inline(&change, &source, ctx.now_ms, &encoded)
            {
                failed = Some(e.to_string());
                break;
            }
            let headers = RecordHeaders { gtid: "", position: i as u64 + 1, table: &chunk.table, commit_us: 0 };
            match send(encoder_record(encoded), txn, &headers, publisher, committer, acks).await {
                Err(RunError::Publish(e)) if e.class() == ErrorClass::PerTable => {
                    failed = Some(e.to_string());
                    break;
                }
                other => other?,
            }
            sent += 1;
        }
        committer.end(txn)?;
        match failed {
            Some(problem) => {
                let _ = reply.send(Outcome::Failed(problem));
            }
            None => {
                committer.mark(txn, &chunk.table, chunk.progress);
                let _ = reply.send(Outcome::Emitted { sent, dropped });
            }
        }
    }
    Ok(())
}
