//! Verify: the snapshot's chunk reader with a canonical fingerprint per row, compared with the
//! latest record per key in the topic; mismatches re-checked after the stream passes the source
//! position, persistent ones reported with their keys.
//!
//! Not built yet: issue #6 (snapshot and verify).
