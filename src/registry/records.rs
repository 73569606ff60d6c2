//! The `_schemas` topic's record format, as Confluent Schema Registry writes it: JSON keys and
//! values. Key `{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}`, value
//! `{"subject":S,"version":V,"id":I,"schema":TEXT,"deleted":false}`. CONFIG records
//! (`{"keytype":"CONFIG","subject":S|null,"magic":0}` → `{"compatibilityLevel":"FULL"}`, null to
//! remove) set a subject's (or, without subject, the global) compatibility level. Other key types
//! (NOOP, MODE, DELETE_SUBJECT) carry nothing rowferry needs; a null SCHEMA value is a tombstone
//! (the schema was hard-deleted).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaKey {
    pub keytype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    pub magic: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaValue {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
    #[serde(default)]
    pub deleted: bool,
    /// Absent for Avro, which is all rowferry writes.
    #[serde(rename = "schemaType", default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
}

/// The key and value bytes of a SCHEMA record.
pub fn schema_record(subject: &str, version: u32, id: u32, schema: &str) -> (Vec<u8>, Vec<u8>) {
    let key = SchemaKey { keytype: "SCHEMA".into(), subject: Some(subject.into()), version: Some(version), magic: 1 };
    let value =
        SchemaValue { subject: subject.into(), version, id, schema: schema.into(), deleted: false, schema_type: None };
    // Serialising these plain structs cannot fail.
    (serde_json::to_vec(&key).unwrap_or_default(), serde_json::to_vec(&value).unwrap_or_default())
}

/// The key and value bytes of a CONFIG record (`subject` `None`: the global level).
pub fn config_record(subject: Option<&str>, level: &str) -> (Vec<u8>, Vec<u8>) {
    let key = SchemaKey { keytype: "CONFIG".into(), subject: subject.map(str::to_string), version: None, magic: 0 };
    let value = serde_json::json!({ "compatibilityLevel": level });
    (serde_json::to_vec(&key).unwrap_or_default(), value.to_string().into_bytes())
}

/// What a `_schemas` record means for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    Schema(SchemaValue),
    /// A SCHEMA key whose value is null (hard delete).
    Tombstone {
        subject: String,
        version: u32,
    },
    /// A compatibility level for a subject (`None`: global); `level` `None` removes it.
    Config {
        subject: Option<String>,
        level: Option<String>,
    },
    /// NOOP, MODE, DELETE_SUBJECT, …
    Other,
}

/// Parses one record of the topic.
pub fn parse(key: &[u8], value: Option<&[u8]>) -> Result<LogRecord, String> {
    let key: SchemaKey = serde_json::from_slice(key).map_err(|e| format!("key: {e}"))?;
    if key.keytype == "CONFIG" {
        let level = match value {
            None => None,
            Some(v) => {
                let v: serde_json::Value = serde_json::from_slice(v).map_err(|e| format!("config value: {e}"))?;
                v.get("compatibilityLevel").and_then(|l| l.as_str()).map(str::to_string)
            }
        };
        return Ok(LogRecord::Config { subject: key.subject, level });
    }
    if key.keytype != "SCHEMA" {
        return Ok(LogRecord::Other);
    }
    let (subject, version) = match (key.subject, key.version) {
        (Some(s), Some(v)) => (s, v),
        _ => return Err("SCHEMA key without subject or version".into()),
    };
    match value {
        None => Ok(LogRecord::Tombstone { subject, version }),
        Some(v) => {
            let value: SchemaValue = serde_json::from_slice(v).map_err(|e| format!("value: {e}"))?;
            if value.subject != subject || value.version != version {
                return Err(format!("key says {subject} v{version}, value says {} v{}", value.subject, value.version));
            }
            // Confluent's ids and versions are Java ints; a larger one (which only a hand-written
            // record can hold) would also leave no next id.
            if value.id == 0 || value.id > i32::MAX as u32 || version == 0 || version > i32::MAX as u32 {
                return Err(format!("id {} / version {version} outside 1..=2147483647", value.id));
            }
            Ok(LogRecord::Schema(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_confluent_samples() {
        let (k, v) = schema_record("t-value", 2, 7, "\"string\"");
        assert_eq!(String::from_utf8_lossy(&k), r#"{"keytype":"SCHEMA","subject":"t-value","version":2,"magic":1}"#);
        match parse(&k, Some(&v)) {
            Ok(LogRecord::Schema(s)) => assert_eq!((s.id, s.version, s.schema.as_str()), (7, 2, "\"string\"")),
            other => panic!("{other:?}"),
        }
        // As Confluent writes them.
        assert_eq!(parse(br#"{"keytype":"NOOP","magic":0}"#, Some(b"{}")), Ok(LogRecord::Other));
        let confluent = br#"{"subject":"x-key","version":1,"id":1,"schema":"\"int\"","deleted":false}"#;
        assert!(matches!(
            parse(br#"{"keytype":"SCHEMA","subject":"x-key","version":1,"magic":1}"#, Some(confluent)),
            Ok(LogRecord::Schema(_))
        ));
        assert_eq!(
            parse(br#"{"keytype":"SCHEMA","subject":"x-key","version":1,"magic":1}"#, None),
            Ok(LogRecord::Tombstone { subject: "x-key".into(), version: 1 })
        );
        assert!(parse(b"not json", None).is_err());
        // Ids a registry never hands out: the next id would overflow (found reading the fuzz
        // target's store code: `max_id + 1` after a record with id u32::MAX).
        let key = br#"{"keytype":"SCHEMA","subject":"x-key","version":1,"magic":1}"#;
        for value in [
            r#"{"subject":"x-key","version":1,"id":4294967295,"schema":"\"int\""}"#,
            r#"{"subject":"x-key","version":1,"id":0,"schema":"\"int\""}"#,
        ] {
            assert!(parse(key, Some(value.as_bytes())).is_err(), "{value}");
        }
        let key = br#"{"keytype":"SCHEMA","subject":"x-key","version":4294967295,"magic":1}"#;
        let value = br#"{"subject":"x-key","version":4294967295,"id":3,"schema":"\"int\""}"#;
        assert!(parse(key, Some(value)).is_err(), "a version past Java's int");
        let (k, v) = config_record(Some("t-value"), "NONE");
        assert_eq!(
            parse(&k, Some(&v)),
            Ok(LogRecord::Config { subject: Some("t-value".into()), level: Some("NONE".into()) })
        );
        assert_eq!(
            parse(br#"{"keytype":"CONFIG","magic":0}"#, Some(br#"{"compatibilityLevel":"FULL"}"#)),
            Ok(LogRecord::Config { subject: None, level: Some("FULL".into()) })
        );
        assert!(parse(br#"{"keytype":"SCHEMA","subject":"a","version":1,"magic":1}"#, Some(confluent)).is_err());
    }
}
