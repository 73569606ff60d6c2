//! Encoder stage: row change → Debezium-shaped envelope → Avro datum → Confluent wire format.
//!
//! * [`avro_schema`] derives, deterministically, a key schema (the primary-key columns) and a value
//!   schema (the envelope: `before`, `after`, `source`, `op`, `ts_ms`, `transaction`) from a
//!   [`TableSchema`](crate::schema::TableSchema). Every column of the row record is a
//!   `["null", T]` union with `"default": null`, so adding or dropping a column is a BACKWARD,
//!   FORWARD and FULL compatible change by construction. The fixed parts (source, transaction,
//!   offset, heartbeat records) are the `.avsc` files in `schemas/`, compiled in.
//! * [`datum`] turns values into Avro values for those schemas (type mapping in docs/avro.md).
//! * [`project`] applies the `[columns]` rules (exclude, hash, truncate) to a table and its rows.
//! * [`wire`] frames and parses the Confluent wire format: magic byte 0, big-endian u32 schema id,
//!   Avro binary.
//! * [`connect_json`] writes the `json` format: the same schemas read as Connect schemas and the
//!   same values, as Kafka Connect's JsonConverter writes them (`{"schema": …, "payload": …}`).
//! * [`stage`] wires them per table: topic, projection, schemas registered, records encoded.

pub mod avro_schema;
pub mod binary;
pub mod connect_json;
pub mod datum;
pub mod project;
pub mod skip;
pub mod stage;
pub mod wire;

use crate::error::ErrorClass;

/// How values and schemas are represented (docs/avro.md): Debezium's mapping (the `debezium`
/// and `json` values of `envelope.format`) or Avro's logical types (`avro-native`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Debezium,
    AvroNative,
}

impl From<crate::config::EnvelopeFormat> for Format {
    fn from(format: crate::config::EnvelopeFormat) -> Format {
        use crate::config::EnvelopeFormat as E;
        match format {
            E::Debezium | E::Json => Format::Debezium,
            E::AvroNative => Format::AvroNative,
        }
    }
}

/// The fixed records, as shipped in `schemas/`.
pub mod fixed {
    pub const SOURCE: &str = include_str!("../../schemas/source.avsc");
    pub const TRANSACTION: &str = include_str!("../../schemas/transaction.avsc");
    /// The `debezium` format's source and transaction blocks.
    pub const DEBEZIUM_SOURCE: &str = include_str!("../../schemas/debezium_source.avsc");
    pub const DEBEZIUM_TRANSACTION: &str = include_str!("../../schemas/debezium_transaction.avsc");
    pub const OFFSET: &str = include_str!("../../schemas/offset.avsc");
    pub const HEARTBEAT: &str = include_str!("../../schemas/heartbeat.avsc");
    pub const TRANSACTION_METADATA_KEY: &str = include_str!("../../schemas/transaction_metadata_key.avsc");
    pub const TRANSACTION_METADATA_VALUE: &str = include_str!("../../schemas/transaction_metadata_value.avsc");
}

/// Encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("table {table}: {problem}")]
    Schema { table: String, problem: String },
    #[error("table {table} column {column}: {problem}")]
    Value { table: String, column: String, problem: String },
    #[error("table {table}: {source}")]
    Registry { table: String, source: crate::registry::RegistryError },
    #[error("Avro: {0}")]
    Avro(String),
    #[error("Confluent wire format: {0}")]
    Wire(String),
}

impl EncodeError {
    /// A value or schema a table cannot encode stops that table; a malformed frame is fatal.
    pub fn class(&self) -> ErrorClass {
        match self {
            EncodeError::Schema { .. } | EncodeError::Value { .. } => ErrorClass::PerTable,
            EncodeError::Registry { source, .. } => source.class(),
            EncodeError::Avro(_) | EncodeError::Wire(_) => ErrorClass::Fatal,
        }
    }
}
