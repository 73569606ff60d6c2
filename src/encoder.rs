//! Encoder stage: row change → Debezium-shaped envelope → Avro datum → Confluent wire format
//! (magic 0, schema id), with the schema registry (external or embedded) and topic routing.
//!
//! Not built yet: issue #4 (Avro encoding, envelope, registry).
