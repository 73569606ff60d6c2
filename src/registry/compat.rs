//! Schema compatibility as Confluent Schema Registry defines it, checked with apache-avro's
//! schema resolution. Pure.
//!
//! * BACKWARD: the new schema can read data written with the latest one.
//! * FORWARD: data written with the new schema can be read with the latest one.
//! * FULL: both. The `_TRANSITIVE` levels check against every version, not only the latest.
//! * NONE: anything goes.
//!
//! rowferry's own schemas stay FULL-compatible when columns are added or dropped (every field is
//! a nullable union with a null default); a column whose type changes is what these levels catch.

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

pub use crate::config::compatibility::Level;

/// Whether `new` may follow `existing` (oldest first) under `level`; the error says why not.
pub fn check(level: Level, new: &str, existing: &[&str]) -> Result<(), String> {
    if level == Level::None || existing.is_empty() {
        return Ok(());
    }
    let parse = |text: &str| Schema::parse_str(text).map_err(|e| format!("not a valid Avro schema: {e}"));
    let new = parse(new)?;
    let against = if level.transitive() { existing } else { &existing[existing.len() - 1..] };
    for (i, old) in against.iter().enumerate().rev() {
        let old = parse(old)?;
        let which = if level.transitive() { format!("version {}", i + 1) } else { "the latest version".into() };
        if matches!(level, Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive) {
            fully(&old, &new).map_err(|e| format!("the new schema cannot read data written with {which}: {e}"))?;
        }
        if matches!(level, Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive) {
            fully(&new, &old).map_err(|e| format!("{which} cannot read data written with the new schema: {e}"))?;
        }
    }
    Ok(())
}

/// Whether `reader` reads everything `writer` can write. apache-avro calls a union pairing where
/// only some branches resolve "partial"; Confluent (and the Avro spec) require all of them.
fn fully(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(format!(
            "{} cannot be read (some of the writer's union branches have no match)",
            culprit(writer, reader, "").unwrap_or_else(|| "a value".into())
        )),
        Err(e) => Err(format!("{}: {e}", culprit(writer, reader, "").unwrap_or_else(|| "the schema".into()))),
    }
}

/// The path of the first field (through records and unions) that does not resolve fully.
fn culprit(writer: &Schema, reader: &Schema, path: &str) -> Option<String> {
    let full = |w: &Schema, r: &Schema| matches!(SchemaCompatibility::can_read(w, r), Ok(Compatibility::Full));
    match (writer, reader) {
        (Schema::Record(w), Schema::Record(r)) => {
            for field in &r.fields {
                let Some(wf) = w.fields.iter().find(|f| f.name == field.name) else { continue };
                if !full(&wf.schema, &field.schema) {
                    let here = if path.is_empty() { field.name.clone() } else { format!("{path}.{}", field.name) };
                    return culprit(&wf.schema, &field.schema, &here).or(Some(format!("field {here}")));
                }
            }
            None
        }
        (Schema::Union(w), Schema::Union(r)) => w
            .variants()
            .iter()
            .find(|wv| !r.variants().iter().any(|rv| full(wv, rv)))
            .and_then(|wv| r.variants().iter().find_map(|rv| culprit(wv, rv, path)))
            .or_else(|| (!path.is_empty()).then(|| format!("field {path}"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"V","fields":[{fields}]}}"#)
    }

    #[test]
    fn levels() {
        let v1 = record(r#"{"name":"a","type":["null","int"],"default":null}"#);
        let added = record(
            r#"{"name":"a","type":["null","int"],"default":null},{"name":"b","type":["null","string"],"default":null}"#,
        );
        let retyped = record(r#"{"name":"a","type":["null","string"],"default":null}"#);
        let required = record(r#"{"name":"a","type":["null","int"],"default":null},{"name":"c","type":"int"}"#);
        for level in [Level::Backward, Level::Forward, Level::Full, Level::FullTransitive] {
            assert_eq!(check(level, &added, &[&v1]), Ok(()), "{level}: an added nullable column");
            assert!(check(level, &retyped, &[&v1]).is_err(), "{level}: int → string");
        }
        assert!(check(Level::Backward, &required, &[&v1]).is_err(), "a new field without default");
        assert_eq!(check(Level::Forward, &required, &[&v1]), Ok(()));
        assert_eq!(check(Level::None, &retyped, &[&v1]), Ok(()));
        assert_eq!(check(Level::Backward, &retyped, &[]), Ok(()), "first version");
        // Transitive levels look at every version, plain ones only at the latest.
        assert_eq!(check(Level::Backward, &v1, &[&retyped, &added]), Ok(()));
        assert!(check(Level::BackwardTransitive, &v1, &[&retyped, &added]).expect_err("v1").contains("version 1"));
        let why = check(Level::Backward, &retyped, &[&v1]).expect_err("retyped");
        assert!(why.contains("field a"), "names the field: {why}");
        assert_eq!(Level::parse("full_transitive"), Some(Level::FullTransitive));
        assert_eq!(Level::parse("sideways"), None);
    }
}
