//! The router's policy, event by event, and its invariants over random transactions.

use super::*;
use crate::change::Value;
use crate::position::{MariaDbPosition, Position};
use crate::schema::{Column, ColumnType};
use proptest::prelude::*;

fn schema(db: &str, table: &str) -> Arc<TableSchema> {
    let col = |name: &str| Column {
        name: name.into(),
        ty: ColumnType::Int { unsigned: false },
        nullable: false,
        visible: true,
        omitted_on_change: false,
    };
    Arc::new(TableSchema {
        db: db.into(),
        table: table.into(),
        columns: vec![col("id"), col("v")],
        primary_key: vec![0],
    })
}

fn settings() -> RouterSettings {
    RouterSettings {
        tables: TableFilter::new(vec!["shop.*".into()], vec!["shop.skipped".into()]).expect("filter"),
        transaction_metadata: true,
        tombstones: true,
        truncate_records: true,
    }
}

fn router(settings: RouterSettings) -> Router {
    Router::new(settings, Merger::new(Position::MariaDb(MariaDbPosition::new())))
}

fn gtid(seq: u64) -> Option<Gtid> {
    Some(Gtid::MariaDb(crate::position::MariaDbGtid { domain: 0, server: 1, seq }))
}

fn change(t: &Arc<TableSchema>, op: Op, before: Option<(i64, i64)>, after: Option<(i64, i64)>) -> RowChange {
    let row = |(id, v): (i64, i64)| vec![Value::Int(id), Value::Int(v)];
    RowChange { op, table: Arc::clone(t), before: before.map(row), after: after.map(row), at: RowAt::default() }
}

fn insert(t: &Arc<TableSchema>, id: i64) -> TxnEvent {
    TxnEvent::Row(change(t, Op::Insert, None, Some((id, 0))))
}

/// Routes `events`, returning the steps in a short form.
fn route(r: &mut Router, events: Vec<TxnEvent>) -> Vec<String> {
    let mut out = Vec::new();
    for event in events {
        r.route(event, &mut out).expect("routed");
    }
    out.iter().map(show).collect()
}

fn show(step: &Step) -> String {
    match step {
        Step::Begin(g) => format!("begin {}", g.as_ref().map(Gtid::to_string).unwrap_or_default()),
        Step::Park(_) => "park".into(),
        Step::Unpark(_) => "unpark".into(),
        Step::Metadata { end: None, position, .. } => format!("BEGIN@{position}"),
        Step::Metadata { end: Some(tables), position, .. } => {
            let counts: Vec<String> = tables.iter().map(|(t, n)| format!("{t}={n}")).collect();
            format!("END@{position} {}", counts.join(","))
        }
        Step::Record(r) => {
            let info = r.info.as_ref().map(|i| format!(" {}/{}", i.total_order, i.data_collection_order));
            let tomb = if r.tombstone { "+tombstone" } else { "" };
            format!(
                "{}@{} {}{}{tomb}",
                crate::encoder::datum::op_code(r.change.op),
                r.position,
                r.table,
                info.unwrap_or_default()
            )
        }
        Step::End => "end".into(),
        Step::Void => "void".into(),
        Step::Hold => "hold".into(),
        Step::Stop { table, .. } => format!("stop {table}"),
        Step::Chunk { .. } => "chunk".into(),
        Step::Heartbeat => "heartbeat".into(),
        Step::Truncated => "truncated".into(),
        Step::Ack(p) => format!("ack {}", p.position),
    }
}

#[test]
fn a_transaction_becomes_its_records_between_begin_and_end_with_metadata() {
    let (a, b, skipped) = (schema("shop", "a"), schema("shop", "b"), schema("shop", "skipped"));
    let mut r = router(settings());
    let steps = route(
        &mut r,
        vec![
            TxnEvent::Begin { gtid: gtid(7), commit_us: 5_000_000 },
            insert(&a, 1),
            insert(&skipped, 1),
            insert(&b, 1),
            insert(&a, 2),
            TxnEvent::Row(change(&b, Op::Delete, Some((1, 0)), None)),
            TxnEvent::Commit { gtid: gtid(7) },
        ],
    );
    assert_eq!(
        steps,
        [
            "begin 0-1-7",
            "BEGIN@0",
            "c@1 shop.a 1/1",
            "c@2 shop.b 2/1",
            "c@3 shop.a 3/2",
            "d@4 shop.b 4/2+tombstone",
            "END@5 shop.a=2,shop.b=2",
            "end"
        ]
    );
}

#[test]
fn a_transaction_without_captured_rows_has_no_metadata_and_settings_switch_policy_off() {
    let skipped = schema("shop", "skipped");
    let mut r = router(settings());
    let events = || {
        vec![TxnEvent::Begin { gtid: gtid(1), commit_us: 0 }, insert(&skipped, 1), TxnEvent::Commit { gtid: gtid(1) }]
    };
    assert_eq!(route(&mut r, events()), ["begin 0-1-1", "end"]);
    let a = schema("shop", "a");
    let mut r = router(RouterSettings { transaction_metadata: false, tombstones: false, ..settings() });
    let steps = route(
        &mut r,
        vec![
            TxnEvent::Begin { gtid: gtid(2), commit_us: 0 },
            TxnEvent::Row(change(&a, Op::Delete, Some((1, 0)), None)),
            TxnEvent::Commit { gtid: gtid(2) },
        ],
    );
    assert_eq!(steps, ["begin 0-1-2", "d@1 shop.a", "end"]);
}

#[test]
fn a_new_shape_of_a_table_is_the_same_table_and_truncates_with_it() {
    let (old, new) = (schema("shop", "a"), schema("shop", "a"));
    let mut r = router(RouterSettings { transaction_metadata: false, ..settings() });
    let truncate = TxnEvent::Statement { db: "shop".into(), sql: "TRUNCATE a".into() };
    let steps = route(
        &mut r,
        vec![
            TxnEvent::Begin { gtid: gtid(1), commit_us: 0 },
            insert(&old, 1),
            insert(&new, 2),
            insert(&old, 3),
            truncate,
            TxnEvent::Commit { gtid: gtid(1) },
        ],
    );
    assert_eq!(steps, ["begin 0-1-1", "c@1 shop.a", "c@2 shop.a", "c@3 shop.a", "truncated", "t@0 shop.a", "end"]);
}

#[test]
fn a_primary_key_change_is_a_delete_and_a_create() {
    let a = schema("shop", "a");
    let mut r = router(RouterSettings { transaction_metadata: false, ..settings() });
    let mut out = Vec::new();
    r.route(TxnEvent::Begin { gtid: gtid(1), commit_us: 0 }, &mut out).expect("begin");
    r.route(TxnEvent::Row(change(&a, Op::Update, Some((1, 5)), Some((1, 6)))), &mut out).expect("same key");
    r.route(TxnEvent::Row(change(&a, Op::Update, Some((1, 6)), Some((2, 6)))), &mut out).expect("new key");
    let shown: Vec<String> = out.iter().map(show).collect();
    assert_eq!(shown, ["begin 0-1-1", "u@1 shop.a", "d@2 shop.a+tombstone", "c@3 shop.a"]);
    let Step::Record(delete) = &out[2] else { panic!("{shown:?}") };
    let Step::Record(create) = &out[3] else { panic!("{shown:?}") };
    assert_eq!(delete.change.before, Some(vec![Value::Int(1), Value::Int(6)]));
    assert_eq!((delete.change.after.as_ref(), create.change.before.as_ref()), (None, None));
    assert_eq!(create.change.after, Some(vec![Value::Int(2), Value::Int(6)]));
}

#[test]
fn a_stopped_table_holds_its_transactions_and_the_others_go_on() {
    let (a, b) = (schema("shop", "a"), schema("shop", "b"));
    let mut r = router(RouterSettings { transaction_metadata: false, ..settings() });
    let error = || TxnEvent::TableError { db: "shop".into(), table: "a".into(), error: "bad".into() };
    let steps = route(
        &mut r,
        vec![
            TxnEvent::Begin { gtid: gtid(1), commit_us: 0 },
            error(),
            insert(&a, 1),
            insert(&b, 1),
            error(),
            TxnEvent::Commit { gtid: gtid(1) },
            TxnEvent::Begin { gtid: gtid(2), commit_us: 0 },
            insert(&a, 2),
            TxnEvent::Commit { gtid: gtid(2) },
        ],
    );
    assert_eq!(
        steps,
        ["begin 0-1-1", "stop shop.a", "hold", "c@1 shop.b", "hold", "end", "begin 0-1-2", "hold", "end"]
    );
}

#[test]
fn a_table_stopped_by_delivery_turns_its_queued_records_into_holds() {
    let (a, b) = (schema("shop", "a"), schema("shop", "b"));
    let mut r = router(RouterSettings { transaction_metadata: false, ..settings() });
    let mut out = Vec::new();
    for event in [TxnEvent::Begin { gtid: gtid(1), commit_us: 0 }, insert(&a, 1), insert(&b, 1), insert(&a, 2)] {
        r.route(event, &mut out).expect("routed");
    }
    // Delivery could not publish shop.a's first record.
    let stop = r.stop(TableId::new("shop", "a"), "too large".into());
    assert_eq!(show(&stop), "stop shop.a");
    let after: Vec<String> = out.drain(..).filter_map(|s| r.recheck(s)).map(|s| show(&s)).collect();
    assert_eq!(after, ["begin 0-1-1", "hold", "c@2 shop.b", "hold"]);
    // A table whose `db.table` reads the same is another table: not stopped with it.
    let mut r = router(RouterSettings {
        tables: TableFilter::new(vec!["shop*.*".into()], Vec::new()).expect("filter"),
        transaction_metadata: false,
        ..settings()
    });
    r.route(TxnEvent::Begin { gtid: gtid(2), commit_us: 0 }, &mut out).expect("begin");
    let _ = r.stop(TableId::new("shop", "a.x"), "too large".into());
    r.route(insert(&schema("shop", "a.x"), 1), &mut out).expect("routed");
    r.route(insert(&schema("shop.a", "x"), 1), &mut out).expect("routed");
    assert_eq!(out.iter().map(show).collect::<Vec<_>>(), ["begin 0-1-2", "hold", "c@1 shop.a.x"]);
}

#[test]
fn a_prepared_xa_transaction_is_parked_and_resumed_with_its_counts() {
    let a = schema("shop", "a");
    let xid = crate::binlog::events::Xid { format_id: 1, gtrid: b"g".to_vec(), bqual: Vec::new() };
    let mut r = router(settings());
    let steps = route(
        &mut r,
        vec![
            TxnEvent::Begin { gtid: gtid(1), commit_us: 0 },
            insert(&a, 1),
            TxnEvent::Prepared { xid: xid.clone() },
            TxnEvent::Begin { gtid: gtid(2), commit_us: 0 },
            TxnEvent::Commit { gtid: gtid(2) },
            TxnEvent::Resume { xid: xid.clone(), gtid: gtid(3), commit_us: 0 },
            insert(&a, 2),
            TxnEvent::Commit { gtid: gtid(3) },
        ],
    );
    assert_eq!(
        steps,
        [
            "begin 0-1-1",
            "BEGIN@0",
            "c@1 shop.a 1/1",
            "park",
            "begin 0-1-2",
            "end",
            "unpark",
            "c@2 shop.a 2/2",
            "END@3 shop.a=2",
            "end"
        ]
    );
    let mut out = Vec::new();
    assert_eq!(
        r.route(TxnEvent::Resume { xid, gtid: gtid(4), commit_us: 0 }, &mut out),
        Err(RouteError::NeverPrepared("X'67',X'',1".into()))
    );
    assert_eq!(r.route(insert(&a, 3), &mut out), Err(RouteError::OutsideTransaction("a row")));
}

#[test]
fn a_truncate_is_an_op_t_record_once_the_shape_is_known() {
    let a = schema("shop", "a");
    let mut r = router(RouterSettings { transaction_metadata: false, ..settings() });
    let truncate = |sql: &str| TxnEvent::Statement { db: "shop".into(), sql: sql.into() };
    let steps = route(
        &mut r,
        vec![
            TxnEvent::Begin { gtid: gtid(1), commit_us: 0 },
            truncate("TRUNCATE TABLE a"),
            insert(&a, 1),
            TxnEvent::Commit { gtid: gtid(1) },
            TxnEvent::Begin { gtid: gtid(2), commit_us: 0 },
            truncate("truncate `a`"),
            truncate("TRUNCATE skipped"),
            TxnEvent::Commit { gtid: gtid(2) },
            TxnEvent::Begin { gtid: gtid(3), commit_us: 0 },
            TxnEvent::Abort,
            TxnEvent::Heartbeat,
        ],
    );
    assert_eq!(
        steps,
        [
            "begin 0-1-1",
            "truncated",
            "c@1 shop.a",
            "end",
            "begin 0-1-2",
            "truncated",
            "t@0 shop.a",
            "end",
            "begin 0-1-3",
            "void",
            "heartbeat"
        ]
    );
}

#[test]
fn finds_the_table_of_a_truncate() {
    let t = |db: &str, table: &str| Some((db.to_string(), table.to_string()));
    assert_eq!(truncated_table("d", "TRUNCATE TABLE t"), t("d", "t"));
    assert_eq!(truncated_table("d", "truncate t"), t("d", "t"));
    assert_eq!(truncated_table("d", "  /* c */ TRUNCATE TABLE other.t2"), t("other", "t2"));
    assert_eq!(truncated_table("d", "truncate table `we``ird`.`ta ble`"), t("we`ird", "ta ble"));
    assert_eq!(truncated_table("d", "TRUNCATE `table`"), t("d", "table"));
    assert_eq!(truncated_table("d", "TRUNCATE TABLE table_x"), t("d", "table_x"));
    assert_eq!(truncated_table("d", "TRUNCATEX t"), None);
    assert_eq!(truncated_table("d", "ALTER TABLE t ADD c INT"), None);
}

/// A random row of one of three tables (one not captured): (table, op, key before, key after).
fn row_strategy() -> impl Strategy<Value = (usize, u8, i64, i64)> {
    (0usize..3, 0u8..3, 0i64..4, 0i64..4)
}

proptest! {
    /// Over random transactions (committed, rolled back, with table errors): every record is
    /// inside its transaction; records number 1..n in order; the END record counts exactly the
    /// records; each captured row is one record, a key change two; nothing of the uncaptured
    /// table or of a stopped table is published.
    #[test]
    fn records_stay_inside_their_transaction_and_count_right(
        txns in proptest::collection::vec((proptest::collection::vec(row_strategy(), 0..8), any::<bool>(), 0u8..8), 1..12)
    ) {
        let tables = [schema("shop", "a"), schema("shop", "b"), schema("shop", "skipped")];
        let mut r = router(settings());
        let mut out = Vec::new();
        let mut stopped_b = false;
        for (i, (rows, commit, error_at)) in txns.into_iter().enumerate() {
            out.clear();
            r.route(TxnEvent::Begin { gtid: gtid(i as u64 + 1), commit_us: 0 }, &mut out).expect("begin");
            let mut expected = 0u64;
            let mut holds = 0;
            for (n, (t, op, k1, k2)) in rows.iter().copied().enumerate() {
                if n == error_at as usize && !stopped_b {
                    r.route(TxnEvent::TableError { db: "shop".into(), table: "b".into(), error: "x".into() }, &mut out).expect("error");
                    stopped_b = true;
                }
                let ch = match op {
                    0 => change(&tables[t], Op::Insert, None, Some((k1, 0))),
                    1 => change(&tables[t], Op::Delete, Some((k1, 0)), None),
                    _ => change(&tables[t], Op::Update, Some((k1, 0)), Some((k2, 1))),
                };
                match t {
                    2 => {}
                    1 if stopped_b => holds += 1,
                    _ => expected += if op == 2 && k1 != k2 { 2 } else { 1 },
                }
                r.route(TxnEvent::Row(ch), &mut out).expect("row");
            }
            let end = if commit { TxnEvent::Commit { gtid: gtid(i as u64 + 1) } } else { TxnEvent::Abort };
            r.route(end, &mut out).expect("end");
            prop_assert!(matches!(out.first(), Some(Step::Begin(_))));
            prop_assert!(matches!(out.last(), Some(Step::End) | Some(Step::Void)));
            let records: Vec<&Record> = out.iter().filter_map(|s| if let Step::Record(r) = s { Some(r) } else { None }).collect();
            prop_assert_eq!(records.len() as u64, expected);
            prop_assert!(records.iter().all(|r| r.table.table() != "skipped"));
            prop_assert_eq!(records.iter().map(|r| r.position).collect::<Vec<_>>(), (1..=expected).collect::<Vec<_>>());
            prop_assert_eq!(out.iter().filter(|s| matches!(s, Step::Hold)).count(), holds);
            let ends: Vec<u64> = out.iter().filter_map(|s| match s {
                Step::Metadata { end: Some(t), .. } => Some(t.iter().map(|(_, n)| n).sum()),
                _ => None,
            }).collect();
            prop_assert_eq!(ends, if commit && expected > 0 { vec![expected] } else { vec![] });
        }
    }
}
