//! Committer and offset store: the stored GTID set moves only at transaction boundaries and only
//! to a transaction whose records, and every earlier transaction's records, Kafka has acked
//! (DESIGN.md, invariant 1).
//!
//! [`tracker`] is the pure rule; [`offsets`] stores the position (a compacted topic keyed by
//! connector name, or a file written with fsync and rename).

pub mod offsets;
pub mod stage;
pub mod tracker;

pub use tracker::{RecordId, Tracker, TrackerError, TxnId};
