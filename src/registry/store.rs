//! The registry's state: subjects, their versions, and schema ids, rebuilt from the schema log.
//! Pure; the embedded registry wraps it with the Kafka log and a lock.

use super::records::{LogRecord, SchemaValue};
use std::collections::{BTreeMap, HashMap};

/// One registered version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
}

/// Subjects → versions, ids → schemas.
#[derive(Debug, Default, Clone)]
pub struct Store {
    subjects: BTreeMap<String, BTreeMap<u32, (u32, bool)>>,
    schemas: HashMap<u32, String>,
    ids: HashMap<String, u32>,
    max_id: u32,
    /// Compatibility levels from CONFIG records: per subject, and global (key `None`).
    levels: HashMap<Option<String>, String>,
}

/// What registering would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Already registered under this subject.
    Existing(Version),
    /// Needs a new version (and maybe a new id): write this record, then [`Store::apply`] it.
    New(SchemaValue),
}

/// Schema identity ignores JSON whitespace: two texts that parse to the same JSON are one schema.
pub fn normalise(schema: &str) -> String {
    serde_json::from_str::<serde_json::Value>(schema).map(|v| v.to_string()).unwrap_or_else(|_| schema.to_string())
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one record of the log (replay or after a write).
    pub fn apply(&mut self, record: LogRecord) {
        match record {
            LogRecord::Schema(v) => {
                let normal = normalise(&v.schema);
                self.ids.entry(normal).or_insert(v.id);
                self.schemas.insert(v.id, v.schema);
                self.max_id = self.max_id.max(v.id);
                self.subjects.entry(v.subject).or_default().insert(v.version, (v.id, v.deleted));
            }
            LogRecord::Tombstone { subject, version } => {
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    versions.remove(&version);
                }
            }
            LogRecord::Config { subject, level: Some(level) } => {
                self.levels.insert(subject, level);
            }
            LogRecord::Config { subject, level: None } => {
                self.levels.remove(&subject);
            }
            LogRecord::Other => {}
        }
    }

    /// Plans registering `schema` under `subject` (Confluent's rules: same schema under the subject
    /// → that version; same schema elsewhere → same id, new version; else a new id).
    pub fn plan(&self, subject: &str, schema: &str) -> Plan {
        let normal = normalise(schema);
        if let Some(found) = self.lookup(subject, schema) {
            return Plan::Existing(found);
        }
        let id = self.ids.get(&normal).copied().unwrap_or(self.max_id + 1);
        let version = self.subjects.get(subject).and_then(|v| v.keys().next_back().copied()).unwrap_or(0) + 1;
        Plan::New(SchemaValue {
            subject: subject.into(),
            version,
            id,
            schema: schema.into(),
            deleted: false,
            schema_type: None,
        })
    }

    /// The version of `subject` holding `schema`, if any.
    pub fn lookup(&self, subject: &str, schema: &str) -> Option<Version> {
        let id = *self.ids.get(&normalise(schema))?;
        let (&version, _) = self.subjects.get(subject)?.iter().find(|(_, (i, deleted))| *i == id && !deleted)?;
        Some(Version { subject: subject.into(), version, id, schema: self.schemas.get(&id)?.clone() })
    }

    /// The compatibility level set for `subject` (`None`: the global one), as written.
    pub fn level(&self, subject: Option<&str>) -> Option<&str> {
        self.levels.get(&subject.map(str::to_string)).map(String::as_str)
    }

    /// The schemas of `subject`'s live versions, oldest first.
    pub fn history(&self, subject: &str) -> Vec<&str> {
        self.subjects.get(subject).map_or_else(Vec::new, |versions| {
            versions
                .values()
                .filter(|(_, d)| !d)
                .filter_map(|(id, _)| self.schemas.get(id).map(String::as_str))
                .collect()
        })
    }

    pub fn schema(&self, id: u32) -> Option<&str> {
        self.schemas.get(&id).map(String::as_str)
    }

    pub fn subjects(&self) -> Vec<String> {
        self.subjects.iter().filter(|(_, v)| v.values().any(|(_, d)| !d)).map(|(s, _)| s.clone()).collect()
    }

    pub fn versions(&self, subject: &str) -> Option<Vec<u32>> {
        let v: Vec<u32> = self.subjects.get(subject)?.iter().filter(|(_, (_, d))| !d).map(|(v, _)| *v).collect();
        if v.is_empty() { None } else { Some(v) }
    }

    /// A version of a subject; `None` version = latest.
    pub fn version(&self, subject: &str, version: Option<u32>) -> Option<Version> {
        let versions = self.subjects.get(subject)?;
        let (&v, &(id, _)) = match version {
            Some(v) => versions.get_key_value(&v).filter(|(_, (_, d))| !d)?,
            None => versions.iter().rev().find(|(_, (_, d))| !d)?,
        };
        Some(Version { subject: subject.into(), version: v, id, schema: self.schemas.get(&id)?.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(store: &mut Store, subject: &str, schema: &str) -> (u32, u32) {
        match store.plan(subject, schema) {
            Plan::Existing(v) => (v.id, v.version),
            Plan::New(value) => {
                let out = (value.id, value.version);
                store.apply(LogRecord::Schema(value));
                out
            }
        }
    }

    #[test]
    fn confluent_id_rules() {
        let mut s = Store::new();
        assert_eq!(register(&mut s, "a-value", r#"{"type":"string"}"#), (1, 1));
        assert_eq!(register(&mut s, "a-value", r#"{ "type": "string" }"#), (1, 1)); // same schema
        assert_eq!(register(&mut s, "b-value", r#"{"type":"string"}"#), (1, 1)); // same id, other subject
        assert_eq!(register(&mut s, "a-value", r#"{"type":"int"}"#), (2, 2));
        assert_eq!(s.subjects(), ["a-value", "b-value"]);
        assert_eq!(s.versions("a-value"), Some(vec![1, 2]));
        assert_eq!(s.version("a-value", None).map(|v| v.id), Some(2));
        assert_eq!(s.version("a-value", Some(1)).map(|v| v.id), Some(1));
        assert_eq!(s.schema(2), Some(r#"{"type":"int"}"#));
        assert!(s.version("zzz", None).is_none());
    }

    #[test]
    fn replay_rebuilds_the_same_state() {
        let mut a = Store::new();
        let mut log = Vec::new();
        for (subject, schema) in [("x", "\"int\""), ("y", "\"long\""), ("x", "\"long\"")] {
            if let Plan::New(v) = a.plan(subject, schema) {
                log.push(v.clone());
                a.apply(LogRecord::Schema(v));
            }
        }
        let mut b = Store::new();
        for v in log {
            b.apply(LogRecord::Schema(v));
        }
        assert_eq!(b.plan("z", "\"float\""), a.plan("z", "\"float\""));
        assert_eq!(b.version("x", None), a.version("x", None));
        assert_eq!(b.version("x", None).map(|v| (v.id, v.version)), Some((2, 2)));
    }
}
