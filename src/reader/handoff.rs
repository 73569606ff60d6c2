//! The hand-off from the reader to its consumer: events go in [`EventBatch`]es (what one read
//! of the socket delivered, at most [`MAX_BATCH`] events or [`MAX_BATCH_KIB`] of rows) into an
//! [`EventSink`], bounded in bytes and in batches by an [`EventBudget`].
//!
//! Invariant: a batch's bytes and its place are taken from the budget before it is sent, and given
//! back only once its last event is taken on: the rows between reader and consumer never exceed
//! the budget (a row larger than the whole budget takes all of it, alone).

use super::TxnEvent;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A bound in bytes on the rows between the reader and its consumer, and in batches: the reader
/// takes a batch's bytes and one batch before sending it, the consumer gives them back once it
/// has taken the batch's last event on (the channel's length alone would let 100 KB rows pile up
/// by the thousand). A row larger than the whole budget takes all of it.
///
/// A reader that finds the budget spent waits until *half* of it is free again, not just enough
/// for its batch: while the consumer is the slower side, the reader then wakes once per half a
/// budget instead of once per batch taken (on bench B a batch — one read of the socket — holds
/// ~15 rows, and each wake-up cost a write to the reader runtime's event fd on the consumer's
/// thread and a context switch on the reader's). The consumer still has the other half queued
/// when the reader wakes, so it never waits for that.
#[derive(Debug)]
pub struct EventBudget {
    kib: tokio::sync::Semaphore,
    total_kib: u32,
    batches: tokio::sync::Semaphore,
    total_batches: u32,
}

impl EventBudget {
    /// At most `bytes` of rows and `batches` batches between the reader and its consumer (the
    /// channel between them must hold at least `batches`).
    pub fn new(bytes: usize, batches: usize) -> Arc<EventBudget> {
        let total_kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1);
        let total_batches = u32::try_from(batches).unwrap_or(u32::MAX).max(1);
        Arc::new(EventBudget {
            kib: tokio::sync::Semaphore::new(total_kib as usize),
            total_kib,
            batches: tokio::sync::Semaphore::new(total_batches as usize),
            total_batches,
        })
    }

    /// Waits until a batch of `kib` fits (a batch larger than the whole budget takes all of it).
    pub(super) async fn take(&self, kib: u32) {
        Self::take_from(&self.batches, 1, self.total_batches).await;
        Self::take_from(&self.kib, kib.min(self.total_kib), self.total_kib).await;
    }

    /// Takes `cost` of `total` from `pool`; when they are not there, waits for `cost` and half
    /// of the whole (see the type's docs) and gives the half back at once.
    async fn take_from(pool: &tokio::sync::Semaphore, cost: u32, total: u32) {
        if cost == 0 {
            return;
        }
        if let Ok(permits) = pool.try_acquire_many(cost) {
            permits.forget();
            return;
        }
        let want = cost.saturating_add(total / 2).min(total);
        if let Ok(permits) = pool.acquire_many(want).await {
            permits.forget();
            pool.add_permits((want - cost) as usize);
        }
    }

    /// The consumer has taken on a batch of `kib` ([`EventBatch::kib`]).
    pub fn give_back(&self, kib: u32) {
        self.batches.add_permits(1);
        let cost = kib.min(self.total_kib);
        if cost > 0 {
            self.kib.add_permits(cost as usize);
        }
    }

    /// What is free now: KiB and batches (for tests).
    #[cfg(test)]
    fn free(&self) -> (usize, usize) {
        (self.kib.available_permits(), self.batches.available_permits())
    }
}

/// Sends `batch` into `tx` once `budget` has room for it. A consumer that is gone ends the wait
/// too (`Err`): the budget of a stopping consumer is never given back, and a reader waiting on
/// it would not see its channel closed — nor stop, nor end its dump thread on the source.
pub(super) async fn send(budget: Option<&EventBudget>, tx: &impl EventSink, batch: EventBatch) -> Result<(), ()> {
    if let Some(budget) = budget {
        tokio::select! {
            biased;
            () = budget.take(batch.kib) => {}
            () = tx.closed() => return Err(()),
        }
    }
    tx.send_batch(batch).await
}

/// Events handed downstream together, and the KiB of their rows (for the [`EventBudget`]).
#[derive(Debug, Default)]
pub struct EventBatch {
    pub events: Vec<TxnEvent>,
    pub kib: u32,
}

/// Events per batch at most...
pub const MAX_BATCH: usize = 1024;
/// ...and KiB of rows (a single larger row makes a batch of its own).
pub const MAX_BATCH_KIB: u32 = 4096;

impl EventBatch {
    pub(super) fn push(&mut self, event: TxnEvent) {
        if let TxnEvent::Row(row) = &event {
            let kib = u32::try_from(row.approx_bytes().div_ceil(1024)).unwrap_or(u32::MAX);
            self.kib = self.kib.saturating_add(kib);
        }
        self.events.push(event);
    }

    pub(super) fn full(&self) -> bool {
        self.events.len() >= MAX_BATCH || self.kib >= MAX_BATCH_KIB
    }

    /// Takes the batch, leaving an empty one with room for as many events: a batch regrown from
    /// nothing reallocated and copied its events up to eight times on its way to 1,024 (with
    /// glibc's free-chunk consolidation, ~1.6% of rowferry's samples on bench B).
    pub(super) fn take(&mut self) -> EventBatch {
        let room = self.events.len().min(MAX_BATCH);
        std::mem::replace(self, EventBatch { events: Vec::with_capacity(room), kib: 0 })
    }
}

/// Where the reader hands its events: a channel of batches (the pipeline), or of single events
/// (tests, tools).
pub trait EventSink: Send + Sync {
    /// Hands `batch` on; an error means the receiver is gone.
    fn send_batch(&self, batch: EventBatch) -> impl std::future::Future<Output = Result<(), ()>> + Send;
    /// Resolves once the receiver is gone.
    fn closed(&self) -> impl std::future::Future<Output = ()> + Send;
}

impl EventSink for mpsc::Sender<EventBatch> {
    async fn send_batch(&self, batch: EventBatch) -> Result<(), ()> {
        self.send(batch).await.map_err(|_| ())
    }

    async fn closed(&self) {
        mpsc::Sender::closed(self).await
    }
}

impl EventSink for mpsc::Sender<TxnEvent> {
    async fn send_batch(&self, batch: EventBatch) -> Result<(), ()> {
        for event in batch.events {
            self.send(event).await.map_err(|_| ())?;
        }
        Ok(())
    }

    async fn closed(&self) {
        mpsc::Sender::closed(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_that_found_the_budget_spent_waits_for_half_of_it() {
        let budget = EventBudget::new(64 << 10, 8);
        for _ in 0..8 {
            budget.take(1).await;
        }
        assert_eq!(budget.free(), (56, 0));
        let ninth = budget.take(1);
        let mut ninth = std::pin::pin!(ninth);
        assert!(pending(&mut ninth).await);
        // One batch back is room for one, but not half the budget: still waiting.
        budget.give_back(1);
        assert!(pending(&mut ninth).await, "woke for a single free batch");
        for _ in 0..3 {
            budget.give_back(1);
        }
        assert!(pending(&mut ninth).await, "woke before its one batch and half the budget were free");
        budget.give_back(1);
        // 1 + 8 / 2 batches free: it takes its one and leaves the rest.
        assert!(!pending(&mut ninth).await);
        assert_eq!(budget.free(), (60, 4));
        // With room, a take does not wait at all.
        budget.take(1).await;
        assert_eq!(budget.free(), (59, 3));
    }

    #[tokio::test]
    async fn a_reader_waiting_on_the_budget_stops_when_its_consumer_is_gone() {
        let budget = EventBudget::new(64 << 10, 1);
        let (tx, rx) = mpsc::channel::<EventBatch>(1);
        let batch = || EventBatch { events: vec![TxnEvent::Heartbeat], kib: 0 };
        assert_eq!(send(Some(&budget), &tx, batch()).await, Ok(()));
        let second = send(Some(&budget), &tx, batch());
        let mut second = std::pin::pin!(second);
        assert!(pending(&mut second).await, "sent past a spent budget");
        // The consumer stops without giving the budget back.
        drop(rx);
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), second).await;
        assert_eq!(ended, Ok(Err(())), "still waiting on the budget of a consumer that is gone");
    }

    /// Whether `f` is still waiting after everything ready has run.
    async fn pending<T>(f: &mut std::pin::Pin<&mut impl std::future::Future<Output = T>>) -> bool {
        tokio::select! {
            biased;
            _ = f.as_mut() => false,
            () = tokio::task::yield_now() => true,
        }
    }

    #[tokio::test]
    async fn the_bytes_are_bounded_the_same_way() {
        let budget = EventBudget::new(8 << 10, 64);
        budget.take(3).await;
        budget.take(3).await;
        let more = budget.take(4);
        let mut more = std::pin::pin!(more);
        assert!(pending(&mut more).await);
        budget.give_back(3);
        // 5 KiB free: enough for 4, not for 4 and half of 8.
        assert!(pending(&mut more).await, "woke as soon as its own 4 KiB were free");
        budget.give_back(3);
        assert!(!pending(&mut more).await);
        assert_eq!(budget.free(), (4, 63));
        // A batch larger than the whole budget takes all of it, once all of it is free.
        budget.give_back(4);
        assert_eq!(budget.free(), (8, 64));
        budget.take(100).await;
        assert_eq!(budget.free(), (0, 63));
    }
}
