//! Delivery's semi-sync half (`source.semi_sync`): the binlog points the source waits for an ACK
//! of, in stream order, each with the first transaction after it, and the rule that lets one go
//! back to the reader to be ACKed.
//!
//! A point is ACKed once every record of every transaction before it is acknowledged by Kafka
//! (`Committer::acked_before`; exactly-once: also committed in a Kafka transaction) and no
//! transaction before it is held by a stopped table — never earlier, so a client's COMMIT returns
//! only once its changes can be read from Kafka. A point with nothing before it waiting goes at
//! once (transactions without captured rows). Points leave in order and only the latest of those
//! due is handed over: an ACK of a position covers every earlier one.
//!
//! Memory: a point is queued only when records were sent since the one before (otherwise it
//! replaces that one, due at the same moment), so the queue is bounded by the records in flight,
//! which the publisher bounds; points behind a hold are dropped, not queued.

use super::Delivery;
use crate::committer::TxnId;
use crate::reader::AckPoint;
use std::collections::VecDeque;
use tokio::sync::watch;

/// See the module docs.
#[derive(Debug)]
pub(super) struct SemiSync {
    /// Points not yet ACKed, each with the first transaction after it.
    points: VecDeque<(TxnId, AckPoint)>,
    /// To the reader, which writes the ACK.
    to_reader: watch::Sender<Option<AckPoint>>,
    /// Exactly-once: every transaction before this one is in a committed Kafka transaction.
    committed_before: TxnId,
    /// A record was sent since the last point was queued.
    sent: bool,
}

impl SemiSync {
    pub(super) fn new(to_reader: watch::Sender<Option<AckPoint>>) -> SemiSync {
        SemiSync { points: VecDeque::new(), to_reader, committed_before: 0, sent: false }
    }
}

impl Delivery {
    /// A point the source waits for an ACK of, after everything routed so far. One behind a
    /// stopped table's hold is never ACKed by this process, and is not kept: the source asks for
    /// an ACK after every transaction while it waits for its replica to catch up, and the other
    /// tables go on streaming for as long as the stop lasts.
    pub(super) fn ack_point(&mut self, point: AckPoint) {
        let upto = self.committer.next_txn();
        let held = self.committer.held().is_some_and(|h| h < upto);
        if let Some(s) = &mut self.semi_sync {
            if held {
                s.points.clear();
                return;
            }
            match s.points.back_mut() {
                // No record since the last point: this one is due exactly when that one is, and
                // covers it (transactions without captured rows queue nothing).
                Some((_, last)) if !s.sent => *last = point,
                _ => s.points.push_back((upto, point)),
            }
            s.sent = false;
        }
        self.release_acks();
    }

    /// A record was sent (semi-sync counts whether points can be merged).
    pub(super) fn ack_sent(&mut self) {
        if let Some(s) = &mut self.semi_sync {
            s.sent = true;
        }
    }

    /// Exactly-once: a Kafka transaction committed with every record of the transactions before
    /// `upto`.
    pub(super) fn acks_committed(&mut self, upto: TxnId) {
        if let Some(s) = &mut self.semi_sync {
            s.committed_before = s.committed_before.max(upto);
        }
    }

    /// Hands the latest point that is due (see the module docs) to the reader.
    pub(super) fn release_acks(&mut self) {
        let Some(s) = &mut self.semi_sync else { return };
        // Exactly-once: records acknowledged inside an open Kafka transaction are not readable yet.
        let open = self.kafka_txn.is_some() && self.publisher.in_transaction();
        let mut due = None;
        while let Some((upto, _)) = s.points.front() {
            if !self.committer.acked_before(*upto) || (open && *upto > s.committed_before) {
                break;
            }
            due = s.points.pop_front().map(|(_, p)| p);
        }
        if let Some(point) = due {
            s.to_reader.send_replace(Some(point));
        }
    }
}
