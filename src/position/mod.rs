//! Stream positions as GTIDs: pure values with text forms, no IO.
//!
//! rowferry's offset is a GTID set, never a file/position pair, so that it survives a failover to
//! another server with the same history (DESIGN.md, invariant 7). The two server families spell
//! positions differently:
//!
//! * MySQL ([`mysql`]): a set of transactions, `uuid:1-5:7-9`, with tagged GTIDs in 8.3+
//!   (`uuid:1-5:tag:1-3`). A transaction is *in* the set or not; holes are meaningful.
//! * MariaDB ([`mariadb`]): a position, one `domain-server-seq` per replication domain
//!   (`0-1-100,1-2-5`). Within a domain, sequence numbers only grow (gtid_strict_mode), so the
//!   position names the last transaction applied and everything before it.
//!
//! Parsing never panics; malformed text is a [`PositionError`] that quotes the bad part.

pub mod mariadb;
pub mod mysql;

use crate::error::ErrorClass;

pub use mariadb::{MariaDbGtid, MariaDbPosition};
pub use mysql::{MySqlGtid, MySqlGtidSet, Uuid};

/// Malformed GTID text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error("malformed GTID {what} {text:?}: {problem}")]
    Malformed { what: &'static str, text: String, problem: String },
}

impl PositionError {
    pub(crate) fn malformed(what: &'static str, text: &str, problem: impl Into<String>) -> PositionError {
        PositionError::Malformed { what, text: text.to_string(), problem: problem.into() }
    }

    /// A malformed position in the offset store or the config is never retried.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

/// Where a stream stands: everything up to and including the last fully processed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    MySql(MySqlGtidSet),
    MariaDb(MariaDbPosition),
}

impl Position {
    /// Records a finished transaction.
    pub fn add(&mut self, gtid: &Gtid) {
        match (self, gtid) {
            (Position::MySql(set), Gtid::MySql(g)) => set.add(g),
            (Position::MariaDb(pos), Gtid::MariaDb(g)) => pos.add(g),
            // A GTID of the other flavor cannot come from the same server; the reader rejects it.
            _ => {}
        }
    }

    /// Whether a transaction is already included.
    pub fn contains(&self, gtid: &Gtid) -> bool {
        match (self, gtid) {
            (Position::MySql(set), Gtid::MySql(g)) => set.contains(g),
            (Position::MariaDb(pos), Gtid::MariaDb(g)) => pos.contains(g),
            _ => false,
        }
    }

    /// Adds everything in `other` (nothing across flavors, as [`Position::add`]).
    pub fn union(&mut self, other: &Position) {
        match (self, other) {
            (Position::MySql(a), Position::MySql(b)) => a.union(b),
            (Position::MariaDb(a), Position::MariaDb(b)) => a.union(b),
            _ => {}
        }
    }

    /// Whether everything in `self` is in `other` (false across flavors).
    pub fn is_subset(&self, other: &Position) -> bool {
        match (self, other) {
            (Position::MySql(a), Position::MySql(b)) => a.is_subset(b),
            (Position::MariaDb(a), Position::MariaDb(b)) => a.is_subset(b),
            _ => false,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::MySql(s) => s.fmt(f),
            Position::MariaDb(p) => p.fmt(f),
        }
    }
}

/// One transaction's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Gtid {
    MySql(MySqlGtid),
    MariaDb(MariaDbGtid),
}

impl std::fmt::Display for Gtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gtid::MySql(g) => g.fmt(f),
            Gtid::MariaDb(g) => g.fmt(f),
        }
    }
}
