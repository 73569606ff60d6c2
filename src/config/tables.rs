//! Which tables are captured: `db.table` glob patterns (`*` any run, `?` one character).
//!
//! A table is captured when some include pattern matches it, no exclude pattern does, and its
//! schema is not a system schema (those are never captured, whatever the patterns say). Matching
//! is exact in case, as MySQL compares names on Linux (lower_case_table_names=0).

use super::ConfigError;

/// Schemas whose tables are never captured.
pub const SYSTEM_SCHEMAS: &[&str] = &["mysql", "sys", "information_schema", "performance_schema"];

/// One `db.table` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    db: String,
    table: String,
}

impl TablePattern {
    /// Parses `db.table`; both parts non-empty, exactly one dot.
    pub fn parse(text: &str) -> Option<TablePattern> {
        let (db, table) = text.split_once('.')?;
        if db.is_empty() || table.is_empty() || table.contains('.') {
            return None;
        }
        Some(TablePattern { db: db.to_string(), table: table.to_string() })
    }

    pub fn matches(&self, db: &str, table: &str) -> bool {
        glob(self.db.as_bytes(), db.as_bytes()) && glob(self.table.as_bytes(), table.as_bytes())
    }

    /// The pattern as SQL `LIKE` patterns of its schema and its table (`*` → `%`, `?` → `_`, `%`,
    /// `_` and `\` escaped), to narrow a query of information_schema: where the server compares
    /// names without case they match a superset of what [`TablePattern::matches`] does, which
    /// decides.
    pub fn like(&self) -> (String, String) {
        let like = |glob: &str| {
            let mut out = String::with_capacity(glob.len() + 4);
            for c in glob.chars() {
                match c {
                    '*' => out.push('%'),
                    '?' => out.push('_'),
                    '%' | '_' | '\\' => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out
        };
        (like(&self.db), like(&self.table))
    }

    /// One name against one glob (`*`, `?`), the matching every pattern here uses.
    pub fn glob(pattern: &str, text: &str) -> bool {
        glob(pattern.as_bytes(), text.as_bytes())
    }
}

/// The include/exclude rule; see the module docs.
#[derive(Debug, Clone)]
pub struct TableFilter {
    include: Vec<TablePattern>,
    exclude: Vec<TablePattern>,
}

impl TableFilter {
    /// Builds the filter, naming the first malformed pattern.
    pub fn new(include: Vec<String>, exclude: Vec<String>) -> Result<TableFilter, ConfigError> {
        let parse = |key: &str, list: Vec<String>| {
            list.iter()
                .map(|p| {
                    TablePattern::parse(p).ok_or_else(|| ConfigError::Invalid {
                        key: key.to_string(),
                        problem: format!("{p:?} is not a db.table pattern (use * and ?, e.g. \"shop.*\")"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let include = parse("tables.include", include)?;
        if include.is_empty() {
            return Err(ConfigError::Invalid {
                key: "tables.include".into(),
                problem: "is empty: nothing would be captured".into(),
            });
        }
        Ok(TableFilter { include, exclude: parse("tables.exclude", exclude)? })
    }

    /// The include patterns (never empty).
    pub fn includes(&self) -> &[TablePattern] {
        &self.include
    }

    /// Whether `db.table` is captured.
    pub fn captures(&self, db: &str, table: &str) -> bool {
        !SYSTEM_SCHEMAS.contains(&db)
            && self.include.iter().any(|p| p.matches(db, table))
            && !self.exclude.iter().any(|p| p.matches(db, table))
    }
}

/// Glob match with `*` and `?`, iterative with one backtrack point (linear-ish, no recursion).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn filter(include: &[&str], exclude: &[&str]) -> TableFilter {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        TableFilter::new(owned(include), owned(exclude)).expect("valid patterns")
    }

    #[test]
    fn include_exclude_and_system_schemas() {
        let f = filter(&["shop.*", "crm.customer?"], &["shop.tmp_*"]);
        assert!(f.captures("shop", "orders"));
        assert!(!f.captures("shop", "tmp_x"));
        assert!(f.captures("crm", "customers"));
        assert!(!f.captures("crm", "customer"));
        assert!(!f.captures("other", "orders"));
        assert!(!filter(&["*.*"], &[]).captures("mysql", "user"));
    }

    #[test]
    fn malformed_patterns_name_the_key() {
        for bad in ["shop", ".x", "x.", "a.b.c"] {
            let err = TableFilter::new(vec![bad.into()], vec![]).expect_err(bad);
            assert!(err.to_string().contains("tables.include"), "{err}");
        }
        let err = TableFilter::new(vec!["*.*".into()], vec!["nodot".into()]).expect_err("exclude");
        assert!(err.to_string().contains("tables.exclude"), "{err}");
    }

    #[test]
    fn patterns_as_sql_like() {
        let like = |p: &str| TablePattern::parse(p).expect("pattern").like();
        assert_eq!(like("shop.*"), ("shop".into(), "%".into()));
        assert_eq!(like("crm.customer?"), ("crm".into(), "customer_".into()));
        // SQL's wildcards and escape are literal in a glob.
        assert_eq!(like("my_db.50%\\off*"), ("my\\_db".into(), "50\\%\\\\off%".into()));
    }

    /// Reference: the textbook recursive matcher.
    fn glob_reference(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob_reference(&p[1..], t) || (!t.is_empty() && glob_reference(p, &t[1..])),
            (Some(&c), Some(&d)) if c == b'?' || c == d => glob_reference(&p[1..], &t[1..]),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_reference(p in "[ab*?]{0,8}", t in "[ab]{0,10}") {
            prop_assert_eq!(glob(p.as_bytes(), t.as_bytes()), glob_reference(p.as_bytes(), t.as_bytes()));
        }
    }
}
