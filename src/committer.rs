//! Committer and offset store: the stored GTID set moves only at transaction boundaries and only
//! to a transaction whose records, and every earlier transaction's records, Kafka has acked.
//! Stored in a compacted topic keyed by connector name, or in a file (write, fsync, rename).
//!
//! Not built yet: issue #5 (`rowferry run`).
