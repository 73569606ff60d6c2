//! Column rules (`[columns]`): columns left out of the records, and columns masked — replaced by
//! a salted SHA-256 hash (hex) or truncated to a length.
//!
//! Patterns are `db.table.column` with `*` and `?` in each part. When several rules match one
//! column, `exclude` wins over `hash`, and `hash` over `truncate`. Which column types each rule
//! accepts is decided when a table is first seen (see `encoder::project`); a primary-key column
//! may be masked (the key is masked the same way, so partitioning and compaction still work) but
//! not excluded.

use super::{ConfigError, Secret, TablePattern};
use std::collections::BTreeMap;

/// One `db.table.column` pattern.
#[derive(Debug, Clone)]
pub struct ColumnPattern {
    table: TablePattern,
    column: String,
}

impl ColumnPattern {
    pub fn parse(text: &str) -> Option<ColumnPattern> {
        let (table, column) = text.rsplit_once('.')?;
        if column.is_empty() {
            return None;
        }
        Some(ColumnPattern { table: TablePattern::parse(table)?, column: column.to_string() })
    }

    pub fn matches(&self, db: &str, table: &str, column: &str) -> bool {
        self.table.matches(db, table) && TablePattern::glob(&self.column, column)
    }
}

/// What happens to one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnAction {
    Keep,
    Exclude,
    Hash,
    /// At most this many characters (text) or bytes (binary).
    Truncate(usize),
}

/// `[columns]`, validated.
#[derive(Debug, Clone, Default)]
pub struct ColumnRules {
    exclude: Vec<ColumnPattern>,
    hash: Vec<ColumnPattern>,
    salt: Option<Secret>,
    truncate: Vec<(ColumnPattern, usize)>,
}

impl ColumnRules {
    pub fn new(
        exclude: Vec<String>,
        hash: Vec<String>,
        hash_salt: Option<Secret>,
        truncate: BTreeMap<String, usize>,
    ) -> Result<ColumnRules, ConfigError> {
        let parse = |key: &str, text: &str| {
            ColumnPattern::parse(text).ok_or_else(|| ConfigError::Invalid {
                key: key.into(),
                problem: format!("{text:?} is not a db.table.column pattern (e.g. \"shop.customers.email\")"),
            })
        };
        let exclude = exclude.iter().map(|p| parse("columns.exclude", p)).collect::<Result<_, _>>()?;
        let hash: Vec<ColumnPattern> = hash.iter().map(|p| parse("columns.hash", p)).collect::<Result<_, _>>()?;
        if !hash.is_empty() && hash_salt.as_ref().is_none_or(|s| s.expose().is_empty()) {
            return Err(ConfigError::Invalid {
                key: "columns.hash_salt".into(),
                problem: "missing: columns.hash needs a secret salt (unsalted hashes of short values are reversed by \
                          trying them all)"
                    .into(),
            });
        }
        let mut truncated = Vec::new();
        for (pattern, len) in truncate {
            let key = format!("columns.truncate.{pattern:?}");
            if len == 0 {
                return Err(ConfigError::Invalid { key, problem: "0: exclude the column instead".into() });
            }
            truncated.push((parse(&key, &pattern)?, len));
        }
        Ok(ColumnRules { exclude, hash, salt: hash_salt, truncate: truncated })
    }

    /// Whether no rule is set (the encoder then skips projection entirely).
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty() && self.hash.is_empty() && self.truncate.is_empty()
    }

    pub fn action(&self, db: &str, table: &str, column: &str) -> ColumnAction {
        if self.exclude.iter().any(|p| p.matches(db, table, column)) {
            ColumnAction::Exclude
        } else if self.hash.iter().any(|p| p.matches(db, table, column)) {
            ColumnAction::Hash
        } else if let Some((_, len)) = self.truncate.iter().find(|(p, _)| p.matches(db, table, column)) {
            ColumnAction::Truncate(*len)
        } else {
            ColumnAction::Keep
        }
    }

    /// The hash salt (set whenever a hash rule is).
    pub fn salt(&self) -> &[u8] {
        self.salt.as_ref().map_or(&[], |s| s.expose().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(exclude: &[&str], hash: &[&str], truncate: &[(&str, usize)]) -> Result<ColumnRules, ConfigError> {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        ColumnRules::new(
            owned(exclude),
            owned(hash),
            Some(Secret::new("pepper")),
            truncate.iter().map(|(p, n)| (p.to_string(), *n)).collect(),
        )
    }

    #[test]
    fn precedence_and_patterns() {
        let r = rules(
            &["shop.*.ssn"],
            &["shop.customers.*mail", "shop.*.ssn"],
            &[("*.*.notes", 5), ("shop.customers.email", 3)],
        )
        .expect("valid");
        assert_eq!(r.action("shop", "customers", "ssn"), ColumnAction::Exclude);
        assert_eq!(r.action("shop", "customers", "email"), ColumnAction::Hash);
        assert_eq!(r.action("crm", "x", "notes"), ColumnAction::Truncate(5));
        assert_eq!(r.action("shop", "customers", "name"), ColumnAction::Keep);
        assert!(!r.is_empty() && ColumnRules::default().is_empty());
    }

    #[test]
    fn bad_rules_name_the_key() {
        let err = rules(&["shop.customers"], &[], &[]).expect_err("two parts").to_string();
        assert!(err.contains("columns.exclude"), "{err}");
        let err = rules(&[], &[], &[("a.b.c", 0)]).expect_err("zero").to_string();
        assert!(err.contains("columns.truncate"), "{err}");
        let err = ColumnRules::new(vec![], vec!["a.b.c".into()], None, BTreeMap::new()).expect_err("no salt");
        assert!(err.to_string().contains("columns.hash_salt"), "{err}");
    }
}
