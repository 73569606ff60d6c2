//! The reader's semi-sync half (`source.semi_sync`; see the parent's module docs): whether the
//! source can do it, the points it waits for an ACK of, and the task that writes a session's ACKs
//! on its dump connection while the session reads.
//!
//! Invariant: a point is ACKed only on the connection (session) that read its event; points
//! come in stream order, and only the latest one handed over is written (an ACK of a position
//! covers every earlier one).

use super::{ReaderStats, dump};
use crate::source::{SourceError, query_text};
use mysql_async::Conn;
use std::sync::Arc;

/// A binlog point the source waits for an ACK of (semi-sync): `file` up to `position`, read by
/// the reader's session number `session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckPoint {
    pub session: u64,
    pub file: Arc<str>,
    pub position: u64,
}

/// Whether the source can do semi-sync: its semi-sync variable exists (MySQL: the source plugin
/// is installed; MariaDB: always). Whether it is enabled is `rowferry check`'s business: a
/// disabled source still sends the header, and starts waiting for ACKs when enabled.
pub(super) async fn semi_sync_capable(conn: &mut Conn) -> Result<bool, SourceError> {
    let rows = query_text(
        conn,
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('rpl_semi_sync_source_enabled', 'rpl_semi_sync_master_enabled')",
    )
    .await?;
    Ok(!rows.is_empty())
}

/// Writes this session's ACKs (see the module docs) until the session ends (the task is aborted)
/// or the link fails (the reader then finds it dead too).
pub(super) async fn send_acks(
    mut acker: dump::Acker,
    session: u64,
    mut points: tokio::sync::watch::Receiver<Option<AckPoint>>,
    stats: Arc<ReaderStats>,
) {
    let mut last: Option<AckPoint> = None;
    loop {
        let point = points.borrow_and_update().clone();
        if let Some(p) = point
            && p.session == session
            && last.as_ref() != Some(&p)
        {
            if let Err(e) = acker.ack(&p.file, p.position).await {
                tracing::warn!(error = %e, "semi-sync: the ACK could not be sent");
                return;
            }
            stats.semi_sync_acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            last = Some(p);
        }
        if points.changed().await.is_err() {
            return;
        }
    }
}

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
