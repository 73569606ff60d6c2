//! Snapshot stage: chunked keyset reads of the primary key, each chunk read at a known stream
//! position and merged into the stream there (MariaDB: consistent-snapshot transaction position;
//! MySQL: low/high watermarks), throttled and resumable per chunk.
//!
//! Not built yet: issue #6 (snapshot and verify).
