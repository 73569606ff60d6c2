use super::*;
use crate::schema::{Column, ColumnType, TableSchema};

fn described(key: Vec<usize>) -> Described {
    let col = |n: &str| Column {
        name: n.into(),
        ty: ColumnType::Int { unsigned: false },
        nullable: false,
        visible: true,
        omitted_on_change: false,
    };
    Described {
        schema: Arc::new(TableSchema {
            db: "d".into(),
            table: "t`x".into(),
            columns: vec![col("a"), col("b"), col("c")],
            primary_key: key.clone(),
        }),
        key,
        estimate: 0,
    }
}

#[test]
fn keyset_queries_expand_composite_keys() {
    let d = described(vec![0, 1]);
    let (sql, params) = select(&d, None, 10).expect("sql");
    assert_eq!(sql, "SELECT `a`, `b`, `c` FROM `d`.`t``x` ORDER BY `a`, `b` LIMIT 10");
    assert!(params.is_empty());
    let (sql, params) = select(&d, Some(&[Bound::Int(1), Bound::Int(2)]), 10).expect("sql");
    assert_eq!(
        sql,
        "SELECT `a`, `b`, `c` FROM `d`.`t``x` WHERE (`a` > ?) OR (`a` = ? AND `b` > ?) ORDER BY `a`, `b` LIMIT 10"
    );
    assert_eq!(params, vec![1i64.into(), 1i64.into(), 2i64.into()]);
    assert!(select(&d, Some(&[Bound::Int(1)]), 10).is_err());
    let (sql, _) = select(&described(vec![]), None, 10).expect("sql");
    assert_eq!(sql, "SELECT `a`, `b`, `c` FROM `d`.`t``x`");
}

#[test]
fn chunks_adapt_toward_the_target() {
    let target = Duration::from_millis(300);
    assert_eq!(adapt(1000, Duration::from_millis(300), target), 1000);
    assert_eq!(adapt(1000, Duration::from_millis(30), target), 2000);
    assert_eq!(adapt(1000, Duration::from_secs(3), target), 500);
    assert_eq!(adapt(100, Duration::from_secs(3), target), MIN_CHUNK);
}
