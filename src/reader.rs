//! Binlog reader stage: connects as a replica (our `server_id`), starts from a GTID set, verifies
//! event checksums, keeps the link alive with heartbeats and reconnects with backoff from the last
//! fully processed transaction; then the transaction assembler groups events GTID … XID/COMMIT.
//!
//! Not built yet: issue #3 (binlog reader and row decoder).
