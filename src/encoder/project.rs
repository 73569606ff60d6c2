//! `[columns]` rules applied to one table: the projected table (excluded columns gone, hashed
//! columns turned into 64-character strings) from which the Avro schemas are derived, and the
//! rewrite of each row image to match it. Planned once per table shape; a table no rule touches
//! has no projection and its changes are encoded as they are.
//!
//! Hashing is `hex(SHA-256(salt ‖ value))` over the value's bytes (text as UTF-8, binary as is,
//! integers and decimals as their decimal text), so equal values hash equally across tables and
//! restarts while the salt stays the same. Truncation keeps the first N characters of text or N
//! bytes of binary. NULL stays NULL under every rule.

use super::EncodeError;
use crate::change::{RowChange, Value};
use crate::config::{ColumnAction, ColumnRules};
use crate::schema::{Charset, Column, ColumnType, TableSchema};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// See the module docs.
#[derive(Debug)]
pub struct Projection {
    /// The table as consumers see it.
    pub table: Arc<TableSchema>,
    /// Per kept column: its index in the source row, and what to do with it.
    plan: Vec<(usize, ColumnAction)>,
    salt: Vec<u8>,
}

/// The projection of `table` under `rules`, or `None` when no rule touches it. Columns the
/// server leaves out of UPDATE and DELETE images ([`Column::omitted_on_change`]) are excluded
/// whatever the rules say.
pub fn plan(rules: &ColumnRules, table: &TableSchema) -> Result<Option<Projection>, EncodeError> {
    let omitted: Vec<&str> = table.columns.iter().filter(|c| c.omitted_on_change).map(|c| c.name.as_str()).collect();
    if rules.is_empty() && omitted.is_empty() {
        return Ok(None);
    }
    let actions: Vec<ColumnAction> =
        table
            .columns
            .iter()
            .map(|c| {
                if c.omitted_on_change { ColumnAction::Exclude } else { rules.action(&table.db, &table.table, &c.name) }
            })
            .collect();
    if actions.iter().all(|a| *a == ColumnAction::Keep) {
        return Ok(None);
    }
    if !omitted.is_empty() {
        tracing::warn!(
            table = %format!("{}.{}", table.db, table.table),
            columns = %omitted.join(", "),
            "the server leaves these generated columns out of UPDATE and DELETE row images (MariaDB 11.8, even with \
             binlog_row_image=FULL), so their values are not in the binlog: rowferry leaves them out of every record \
             of the table; consumers can compute them from the other columns"
        );
    }
    let refuse = |column: &Column, problem: String| EncodeError::Schema {
        table: format!("{}.{}", table.db, table.table),
        problem: format!("column {}: {problem}", column.name),
    };
    let mut plan = Vec::new();
    let mut columns = Vec::new();
    let mut primary_key = Vec::new();
    for (i, (column, action)) in table.columns.iter().zip(&actions).enumerate() {
        let in_key = table.primary_key.contains(&i);
        let textual =
            matches!(column.ty, ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Blob { .. });
        let mut projected = column.clone();
        match action {
            ColumnAction::Keep => {}
            ColumnAction::Exclude if in_key => {
                return Err(refuse(
                    column,
                    "is part of the primary key and cannot be excluded (columns.exclude); mask it with columns.hash \
                     instead"
                        .into(),
                ));
            }
            ColumnAction::Exclude => continue,
            ColumnAction::Hash => {
                let hashable = textual
                    || matches!(
                        column.ty,
                        ColumnType::Enum { .. }
                            | ColumnType::Json { .. }
                            | ColumnType::JsonText { .. }
                            | ColumnType::TinyInt { .. }
                            | ColumnType::SmallInt { .. }
                            | ColumnType::MediumInt { .. }
                            | ColumnType::Int { .. }
                            | ColumnType::BigInt { .. }
                            | ColumnType::Decimal { .. }
                    );
                if !hashable {
                    return Err(refuse(
                        column,
                        format!(
                            "columns.hash covers text, binary, JSON, ENUM, integer and DECIMAL columns, not {:?}",
                            column.ty
                        ),
                    ));
                }
                projected.ty = ColumnType::VarChar { max_len: 64, charset: Charset::Utf8 };
            }
            ColumnAction::Truncate(_) if !textual => {
                return Err(refuse(
                    column,
                    format!(
                        "columns.truncate covers CHAR, VARCHAR, TEXT, BINARY and BLOB columns, not {:?}",
                        column.ty
                    ),
                ));
            }
            ColumnAction::Truncate(_) => {}
        }
        if in_key {
            primary_key.push(columns.len());
        }
        plan.push((i, *action));
        columns.push(projected);
    }
    let table = Arc::new(TableSchema { db: table.db.clone(), table: table.table.clone(), columns, primary_key });
    Ok(Some(Projection { table, plan, salt: rules.salt().to_vec() }))
}

/// `change` as consumers see it: projected when the table has column rules, else as is.
pub fn shown<'a>(projection: Option<&Projection>, change: &'a RowChange) -> std::borrow::Cow<'a, RowChange> {
    match projection {
        Some(p) => std::borrow::Cow::Owned(p.apply(change)),
        None => std::borrow::Cow::Borrowed(change),
    }
}

impl Projection {
    /// `change` as consumers see it.
    pub fn apply(&self, change: &RowChange) -> RowChange {
        let image = |values: &Vec<Value>| -> Vec<Value> {
            self.plan.iter().map(|&(i, action)| self.value(action, values.get(i).unwrap_or(&Value::Absent))).collect()
        };
        RowChange {
            op: change.op,
            table: Arc::clone(&self.table),
            before: change.before.as_ref().map(image),
            after: change.after.as_ref().map(image),
            at: change.at.clone(),
        }
    }

    fn value(&self, action: ColumnAction, value: &Value) -> Value {
        match (action, value) {
            (_, Value::Null | Value::Absent) | (ColumnAction::Keep | ColumnAction::Exclude, _) => value.clone(),
            (ColumnAction::Hash, v) => {
                let text;
                let bytes: &[u8] = match v {
                    Value::Text(s) | Value::Enum(s) | Value::Json(s) | Value::Decimal(s) => s.as_bytes(),
                    Value::Bytes(b) => b,
                    Value::Int(i) => {
                        text = i.to_string();
                        text.as_bytes()
                    }
                    Value::UInt(u) => {
                        text = u.to_string();
                        text.as_bytes()
                    }
                    // The plan admits only the types above.
                    _ => return Value::Null,
                };
                let digest = Sha256::new().chain_update(&self.salt).chain_update(bytes).finalize();
                Value::Text(digest.iter().map(|b| format!("{b:02x}")).collect())
            }
            (ColumnAction::Truncate(n), Value::Text(s)) => match s.char_indices().nth(n) {
                Some((cut, _)) => Value::Text(s[..cut].to_string()),
                None => value.clone(),
            },
            (ColumnAction::Truncate(n), Value::Bytes(b)) => Value::Bytes(b[..b.len().min(n)].to_vec()),
            (ColumnAction::Truncate(_), v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Op;
    use crate::config::Secret;

    fn table() -> TableSchema {
        let col =
            |name: &str, ty| Column { name: name.into(), ty, nullable: true, visible: true, omitted_on_change: false };
        TableSchema {
            db: "shop".into(),
            table: "customers".into(),
            columns: vec![
                col("id", ColumnType::Int { unsigned: false }),
                col("ssn", ColumnType::VarChar { max_len: 20, charset: Charset::Utf8 }),
                col("email", ColumnType::VarChar { max_len: 200, charset: Charset::Utf8 }),
                col("bio", ColumnType::Blob { len_bytes: 2, charset: Charset::Utf8 }),
                col("photo", ColumnType::Blob { len_bytes: 2, charset: Charset::Binary }),
            ],
            primary_key: vec![0],
        }
    }

    fn rules(exclude: &[&str], hash: &[&str], truncate: &[(&str, usize)]) -> ColumnRules {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        ColumnRules::new(
            owned(exclude),
            owned(hash),
            Some(Secret::new("salt")),
            truncate.iter().map(|(p, n)| (p.to_string(), *n)).collect(),
        )
        .expect("rules")
    }

    fn sha256_hex(input: &[u8]) -> String {
        Sha256::digest(input).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn exclude_hash_truncate() {
        let t = table();
        let p = plan(
            &rules(&["*.*.ssn"], &["shop.customers.email", "shop.customers.id"], &[("*.*.bio", 3), ("*.*.photo", 2)]),
            &t,
        )
        .expect("plan")
        .expect("a projection");
        let names: Vec<&str> = p.table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "email", "bio", "photo"]);
        assert_eq!(p.table.primary_key, vec![0]);
        assert!(matches!(p.table.columns[1].ty, ColumnType::VarChar { max_len: 64, .. }));
        let row = vec![
            Value::Int(7),
            Value::Text("123-45".into()),
            Value::Text("a@b.c".into()),
            Value::Text("héllo".into()),
            Value::Bytes(vec![1, 2, 3]),
        ];
        let change = RowChange {
            op: Op::Update,
            table: Arc::new(t),
            before: Some(row.clone()),
            after: Some(row),
            at: Default::default(),
        };
        let out = p.apply(&change);
        let after = out.after.expect("after");
        assert_eq!(after[0], Value::Text(sha256_hex(b"salt7")), "a masked key column is hashed like any other");
        assert_eq!(after[1], Value::Text(sha256_hex(b"salta@b.c")));
        assert_eq!(after[2], Value::Text("hél".into()), "characters, not bytes");
        assert_eq!(after[3], Value::Bytes(vec![1, 2]));
        assert_eq!(out.before.map(|b| b.len()), Some(4));
    }

    #[test]
    fn nulls_stay_null_and_untouched_tables_have_no_projection() {
        let t = table();
        assert!(plan(&rules(&["crm.*.*"], &[], &[]), &t).expect("plan").is_none());
        assert!(plan(&ColumnRules::default(), &t).expect("plan").is_none());
        let p = plan(&rules(&[], &["*.*.email"], &[]), &t).expect("plan").expect("projection");
        assert_eq!(p.value(ColumnAction::Hash, &Value::Null), Value::Null);
    }

    #[test]
    fn refusals_name_table_and_column() {
        let t = table();
        let err = plan(&rules(&["*.*.id"], &[], &[]), &t).expect_err("key").to_string();
        assert!(err.contains("shop.customers") && err.contains("column id") && err.contains("primary key"), "{err}");
        let err = plan(&rules(&[], &[], &[("*.*.id", 2)]), &t).expect_err("int").to_string();
        assert!(err.contains("columns.truncate"), "{err}");
    }
}
