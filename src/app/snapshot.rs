//! The driver's side of snapshots: the plan `run` starts with, the copier task and its channels,
//! and `POST /snapshot` requests. The copier's chunks go to the router (which releases them
//! between transactions) and from there to delivery, which emits each as one pseudo-transaction
//! of the commit tracker whose release makes the chunk's progress durable.

use super::RunError;
use super::router::Router;
use crate::committer::stage::Committer;
use crate::config::Settings;
use crate::ops::Ops;
use crate::snapshot::copier::{Copier, Job};
use crate::snapshot::merge::Msg;
use crate::snapshot::progress::{SnapshotKind, SnapshotProgress, TableProgress};
use crate::source::Flavor;
use std::sync::Arc;
use tokio::sync::mpsc;

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

/// The copier task and the channels between it, the HTTP API and the driver.
pub(super) struct Side {
    pub(super) copier: tokio::task::JoinHandle<()>,
    pub(super) copier_done: bool,
    /// Chunks and windows from the copier; closed once the copier has ended.
    pub(super) chunks: mpsc::Receiver<Msg>,
    pub(super) chunks_open: bool,
    /// `POST /snapshot` requests; closed when nothing takes them (the bootstrap command).
    pub(super) requests: mpsc::Receiver<Vec<String>>,
    pub(super) requests_open: bool,
    /// `None`: no more jobs (the bootstrap command's copier ends with its tables).
    jobs: Option<mpsc::UnboundedSender<Job>>,
    /// Every captured table as `(db, table)`, as last listed.
    captured: Vec<(String, String)>,
}

impl Side {
    /// Starts the copier with `plan`'s jobs (its keyless tables muted in `router`, its progress
    /// handed to `committer`), before any binlog event is read, so no window can miss a routed
    /// transaction.
    pub(super) fn start(
        settings: &Settings,
        flavor: Flavor,
        plan: Option<SnapshotPlan>,
        ops: &Arc<Ops>,
        (router, committer): (&mut Router, &mut Committer),
        stop_after_snapshot: bool,
    ) -> Side {
        let (chunk_tx, chunks) = mpsc::channel(2 * settings.snapshot.parallel + 2);
        // Unbounded but small: at most one job per captured table waits (the copier drops a job
        // for a table it is already copying or has queued), and a job is a name and a position.
        let (job_tx, job_rx) = mpsc::unbounded_channel();
        let copier = Copier::new(settings.source.clone(), flavor, settings.snapshot.clone(), Arc::clone(ops), chunk_tx);
        let copier = tokio::spawn(copier.run(job_rx));
        let mut captured = Vec::new();
        if let Some(SnapshotPlan { mut progress, captured: tables, keyless }) = plan {
            progress.tables.retain(|name, _| {
                let exists = tables.iter().any(|(d, t)| format!("{d}.{t}") == *name);
                if !exists {
                    tracing::warn!(table = %name, "the table to snapshot no longer exists; skipped");
                }
                exists
            });
            for job in jobs(progress.kind, &progress.tables, &tables, &keyless) {
                let _ = job_tx.send(job);
            }
            router.mute(keyless.iter().map(|t| Arc::from(t.as_str())));
            committer.snapshot_resume(progress);
            captured = tables;
        }
        let (request_tx, requests) = mpsc::channel::<Vec<String>>(1);
        // Dropped (not kept) for the bootstrap command: the copier sees its job queue close.
        let jobs = (!stop_after_snapshot).then_some(job_tx);
        if jobs.is_some() {
            ops.set_snapshot_requests(Some(request_tx));
        }
        Side { copier, copier_done: false, chunks, chunks_open: true, requests, requests_open: true, jobs, captured }
    }

    /// A `POST /snapshot` request, or `None` once requests are closed.
    pub(super) async fn request(
        &mut self,
        settings: &Settings,
        tables: Option<Vec<String>>,
        committer: &mut Committer,
    ) {
        self.requests_open = tables.is_some();
        if let (Some(tables), Some(jobs)) = (tables, self.jobs.as_ref()) {
            request(settings, tables, &mut self.captured, committer, jobs).await;
        }
    }

    /// Takes no more requests and stops the copier.
    pub(super) fn stop(&mut self, ops: &Ops) {
        ops.set_snapshot_requests(None);
        self.jobs = None;
        self.copier.abort();
    }
}
