//! Before streaming: the source checked as `rowferry check` checks it, the position to start
//! from (stored, or the source's current one, or — when the stored one was purged and a snapshot
//! may repair it — now plus a snapshot of every captured table), the snapshot to take or resume,
//! and the registry (which the driver opens while the reader starts: only the first record's
//! schema waits for it; the reader's first batch's new topics are made meanwhile,
//! [`open_registry`]). Nothing here reads the binlog.
//!
//! Invariant: a first start stores where it begins (and the snapshot it is about to take) before
//! anything is published, so a crash before the first commit resumes there, not at a later "now".
//! With exactly-once delivery the producer's transactions are initialised before the stored
//! offset is read: an older instance of the connector is fenced first, so none can commit a
//! transaction (and an offset) after the read.

use super::snapshot::{self, SnapshotPlan};
use super::{MAX_INFLIGHT, MAX_INFLIGHT_BYTES};
use super::{RunError, RunOptions};
use crate::committer::offsets::{OffsetStore, StoredOffset};
use crate::config::{DeliveryMode, RegistrySettings, Settings, SnapshotMode};
use crate::kafka::TopicSpec;
use crate::position::Position;
use crate::publisher::Publisher;
use crate::reader::ReaderError;
use crate::registry::Registry;
use crate::registry::embedded::EmbeddedRegistry;
use crate::registry::external::ExternalRegistry;
use crate::snapshot::progress::{SnapshotKind, SnapshotProgress};
use crate::source::{self, Flavor};
use std::sync::Arc;

/// Where and how streaming starts.
pub(super) struct Started {
    pub(super) flavor: Flavor,
    pub(super) position: Position,
    pub(super) offsets: OffsetStore,
    pub(super) plan: Option<SnapshotPlan>,
    pub(super) publisher: Publisher,
}

/// The data producer: transactional (its transactions initialised, fencing older instances)
/// with exactly-once delivery.
async fn publisher(settings: &Settings) -> Result<Publisher, RunError> {
    let id = match settings.kafka.delivery {
        DeliveryMode::AtLeastOnce => None,
        DeliveryMode::ExactlyOnce(_) => Some(format!("rowferry-{}", settings.name)),
    };
    let spec = TopicSpec::data(&settings.topics);
    let publisher = Publisher::with_transactional_id(
        &settings.data_producer(),
        spec,
        MAX_INFLIGHT,
        MAX_INFLIGHT_BYTES,
        id.as_deref(),
    )?
    .with_headers(settings.topics.headers);
    if let Some(id) = &id {
        publisher.init_transactions().await?;
        tracing::info!(transactional_id = %id, "exactly-once delivery: Kafka transactions initialised");
    }
    Ok(publisher)
}

/// Checks the source, opens the offsets store and works out the start (see the module docs).
pub(super) async fn prepare(settings: &Settings, options: &RunOptions) -> Result<Started, RunError> {
    // A server rowferry cannot stream from correctly stops the start before anything is read or
    // stored.
    let mut conn = source::connect(&settings.source).await?;
    let flavor = crate::reader::flavor(&mut conn).await?;
    let mode = settings.snapshot.mode;
    // Without a snapshot to take at start, SELECT is needed only by a later `POST /snapshot`,
    // which reports its own error.
    let needs_select = mode != SnapshotMode::Never || options.force_snapshot;
    for warning in crate::check::preflight(&mut conn, settings, needs_select).await? {
        tracing::warn!("{warning}");
    }
    let offsets = OffsetStore::open(&settings.offsets, &settings.kafka, settings.topics.replication_factor).await?;
    let publisher = publisher(settings).await?;
    let stored = offsets.load(&settings.name).await?;
    let mut position = match &stored {
        Some(offset) => offset.position(flavor)?,
        None => crate::reader::current_position(&mut conn, flavor).await?,
    };
    let mut purged = false;
    if let Err(e) = crate::reader::check_start(&mut conn, &position).await {
        if matches!(e, ReaderError::Purged { .. }) && (mode == SnapshotMode::WhenNeeded || options.force_snapshot) {
            tracing::warn!(
                error = %e,
                "the stored position is gone from the source: streaming from now and snapshotting every captured \
                 table again (rowferry cannot tell which tables changed in the purged binlogs)"
            );
            position = crate::reader::current_position(&mut conn, flavor).await?;
            purged = true;
        } else {
            return Err(e.into());
        }
    }
    let captured = crate::snapshot::describe::list_tables(&mut conn, &settings.tables).await?;
    let resumed = stored.as_ref().and_then(|o| o.snapshot.clone()).filter(|_| !purged);
    let progress = if let Some(progress) = resumed {
        tracing::info!(tables = progress.remaining().count(), "resuming the snapshot in progress");
        Some(progress)
    } else if options.force_snapshot || purged || (stored.is_none() && mode != SnapshotMode::Never) {
        let tables = match (&options.tables, purged) {
            (Some(wanted), false) => snapshot::resolve_tables(wanted, &captured)?,
            _ => captured.iter().map(|(d, t)| format!("{d}.{t}")).collect(),
        };
        Some(SnapshotProgress::new(SnapshotKind::Initial, tables))
    } else {
        None
    };
    let plan = match progress {
        Some(progress) => Some(plan(&mut conn, flavor, settings, progress, captured).await?),
        None => None,
    };
    drop(conn);
    if stored.is_none() || purged {
        // The snapshot to do is stored with it, so a crash before its first chunk still snapshots.
        let first =
            StoredOffset::new(&settings.name, &position).with_snapshot(plan.as_ref().map(|p| p.progress.clone()));
        offsets.store(&first).await?;
    }
    tracing::info!(%position, resumed = stored.is_some(), snapshot = plan.is_some(), "starting");
    Ok(Started { flavor, position, offsets, plan, publisher })
}

/// The snapshot plan for `progress`: an initial snapshot's keyless tables (their stream rows are
/// muted until their copy), and a warning about undecided XA transactions.
async fn plan(
    conn: &mut mysql_async::Conn,
    flavor: Flavor,
    settings: &Settings,
    progress: SnapshotProgress,
    captured: Vec<(String, String)>,
) -> Result<SnapshotPlan, RunError> {
    let keyless = match progress.kind {
        SnapshotKind::Initial => {
            let pending: Vec<(String, String)> = captured
                .iter()
                .filter(|(d, t)| progress.remaining().any(|(n, _)| *n == format!("{d}.{t}")))
                .cloned()
                .collect();
            crate::snapshot::describe::keyless_tables(conn, flavor, &settings.snapshot, &pending).await?
        }
        SnapshotKind::Incremental => Vec::new(),
    };
    let prepared = crate::snapshot::describe::prepared_xa(conn).await;
    if !prepared.is_empty() {
        tracing::warn!(
            xids = ?prepared,
            "XA transactions are prepared on the source and not decided: the snapshot cannot see their rows, \
             and if they were prepared before its position the stream does not carry them either; commit or \
             roll them back first (XA RECOVER lists them), or re-snapshot the tables they touched afterwards"
        );
    }
    Ok(SnapshotPlan { progress, captured, keyless })
}

/// The schema registry: the embedded one (its topic opened) or a client of an external one.
pub(super) async fn registry(settings: &Settings) -> Result<Registry, RunError> {
    Ok(match &settings.registry {
        RegistrySettings::Embedded { topic, compatibility } => Registry::Embedded(Arc::new(
            EmbeddedRegistry::open(&settings.kafka, topic, settings.topics.replication_factor)
                .await?
                .with_default_level(*compatibility),
        )),
        RegistrySettings::External { url, username, password, ca_file } => Registry::External(Arc::new(
            ExternalRegistry::new(url, username.as_deref(), password.as_ref(), ca_file.as_deref())?,
        )),
    })
}

/// Waits for the registry being opened. If the reader's first batch comes meanwhile, the data
/// topics of its rows are made at the same time (each would be made before its first record
/// anyway, after its schema: a new cluster's start then waits for one topic creation instead of
/// two in a row). Best effort: a topic that fails here is tried again, and its failure reported,
/// when its first record is sent. Returns the opened registry and the batch taken, for the loop.
pub(super) async fn open_registry(
    mut registry: tokio::task::JoinHandle<Result<Registry, RunError>>,
    events: &mut tokio::sync::mpsc::Receiver<crate::reader::EventBatch>,
    publisher: &mut Publisher,
    settings: &Settings,
) -> (Result<Registry, RunError>, Option<crate::reader::EventBatch>) {
    let joined = |opened: Result<Result<Registry, RunError>, tokio::task::JoinError>| {
        opened.unwrap_or_else(|e| Err(RunError::Other(format!("opening the registry: {e}"))))
    };
    let first = tokio::select! {
        biased;
        opened = &mut registry => return (joined(opened), None),
        batch = events.recv() => batch,
    };
    // A closed channel stays closed: the loop sees it on its first receive.
    let Some(batch) = first else { return (joined(registry.await), None) };
    let mut topics: Vec<String> = Vec::new();
    for event in &batch.events {
        if let crate::reader::TxnEvent::Row(change) = event
            && settings.tables.captures(&change.table.db, &change.table.table)
            && let Ok(topic) = settings.topics.topic_for(&change.table.db, &change.table.table)
            && !topics.contains(&topic)
        {
            topics.push(topic);
        }
    }
    let create = async {
        for topic in &topics {
            if let Err(e) = publisher.ensure_topic(topic).await {
                tracing::debug!(topic, error = %e, "creating the topic ahead of its first record failed");
            }
        }
    };
    // Both finish, unless the registry fails: its error is not held up by a slow topic.
    let mut create = std::pin::pin!(create);
    let opened = tokio::select! {
        opened = &mut registry => joined(opened),
        () = &mut create => return (joined(registry.await), Some(batch)),
    };
    if opened.is_ok() {
        create.await;
    }
    (opened, Some(batch))
}
