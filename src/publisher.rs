//! Publisher stage: an idempotent rdkafka producer (acks=all), murmur2 key partitioning, bounded
//! in-flight records and bytes; delivery acks flow to the committer.
//!
//! Not built yet: issue #5 (`rowferry run`).
