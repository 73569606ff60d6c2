use super::*;
use crate::binlog::EventHeader;
use crate::change::Op;
use crate::position::MariaDbGtid;
use crate::schema::TableSchema;
use std::sync::Arc;

fn header() -> EventHeader {
    EventHeader { timestamp: 7, event_type: 0, server_id: 1, event_size: 0, log_pos: 0, flags: 0 }
}

fn gtid(seq: u64) -> Item {
    Item::MariaDbGtid { gtid: MariaDbGtid { domain: 0, server: 1, seq }, standalone: false, header: header() }
}

fn row(id: i64) -> Item {
    let table =
        Arc::new(TableSchema { db: "d".into(), table: "t".into(), columns: Vec::new(), primary_key: Vec::new() });
    Item::Row(RowChange {
        op: Op::Insert,
        table,
        before: None,
        after: Some(vec![crate::change::Value::Int(id)]),
        at: Default::default(),
    })
}

fn statement(sql: &str) -> Item {
    Item::Statement { db: "d".into(), sql: sql.into(), header: header() }
}

/// Feeds items; returns the events, as short names.
fn feed(a: &mut Assembler, items: Vec<Item>) -> Result<Vec<String>, AssemblerError> {
    let mut out = Vec::new();
    for item in items {
        a.push(item, &mut |e| out.push(e))?;
    }
    Ok(out.iter().map(name).collect())
}

fn name(e: &TxnEvent) -> String {
    match e {
        TxnEvent::Begin { gtid, .. } => format!("begin {}", gtid.as_ref().map_or("-".into(), |g| g.to_string())),
        TxnEvent::Row(r) => format!("row {:?}", r.after.as_ref().and_then(|a| a.first())),
        TxnEvent::Statement { sql, .. } => format!("stmt {sql}"),
        TxnEvent::TableError { table, .. } => format!("error {table}"),
        TxnEvent::Commit { .. } => "commit".into(),
        TxnEvent::Prepared { xid } => format!("prepared {xid}"),
        TxnEvent::Resume { xid, gtid, .. } => {
            format!("resume {xid} {}", gtid.as_ref().map_or("-".into(), |g| g.to_string()))
        }
        TxnEvent::Abort => "abort".into(),
        TxnEvent::Heartbeat => "heartbeat".into(),
        TxnEvent::Ack(p) => format!("ack {}:{}", p.file, p.position),
    }
}

fn start() -> Assembler {
    Assembler::new(Position::MariaDb(crate::position::MariaDbPosition::parse("0-1-10").expect("position")), 2)
}

#[test]
fn a_transaction_streams_once_its_rows_hold_too_many_bytes() {
    // Room for a thousand rows, but only a few hundred bytes.
    let position = start().position().clone();
    let mut by_rows = Assembler::new(position.clone(), 1000);
    let held = feed(&mut by_rows, vec![gtid(11), row(1), row(2), row(3)]).expect("ok");
    assert!(held.is_empty(), "by rows alone all three are held: {held:?}");
    let mut a = Assembler::new(position, 1000).with_buffer_bytes(3 * row_bytes() - 1);
    let events = feed(&mut a, vec![gtid(11), row(1), row(2)]).expect("ok");
    assert!(events.is_empty(), "two rows fit: {events:?}");
    let events = feed(&mut a, vec![row(3)]).expect("ok");
    assert_eq!(events, ["begin 0-1-11", "row Some(Int(1))", "row Some(Int(2))", "row Some(Int(3))"]);
    assert_eq!(feed(&mut a, vec![Item::Commit { header: header() }]).expect("ok"), ["commit"]);
}

fn row_bytes() -> usize {
    match row(1) {
        Item::Row(r) => r.approx_bytes(),
        _ => unreachable!(),
    }
}

#[test]
fn transactions_are_held_until_commit_and_rollbacks_leave_no_trace() {
    let mut a = start();
    let events = feed(&mut a, vec![gtid(11), row(1), Item::Commit { header: header() }]).expect("ok");
    assert_eq!(events, ["begin 0-1-11", "row Some(Int(1))", "commit"]);
    assert_eq!(feed(&mut a, vec![gtid(12), row(2), Item::Rollback]).expect("ok"), Vec::<String>::new());
    // The rolled-back group's GTID is consumed on the source; the position moves past it.
    assert_eq!(a.position().to_string(), "0-1-12");
}

#[test]
fn a_large_transaction_streams_and_is_voided_by_a_reconnect() {
    let mut a = start();
    let events = feed(&mut a, vec![gtid(11), row(1), row(2), row(3)]).expect("ok");
    assert_eq!(events, ["begin 0-1-11", "row Some(Int(1))", "row Some(Int(2))", "row Some(Int(3))"]);
    let mut voided = Vec::new();
    a.reset(&mut |e| voided.push(name(&e)));
    assert_eq!(voided, ["abort"]);
    assert_eq!(a.position().to_string(), "0-1-10", "the position stays before the cut transaction");
    // Sent again from its start after the reconnect: whole, once.
    let events = feed(&mut a, vec![gtid(11), row(1), Item::Commit { header: header() }]).expect("ok");
    assert_eq!(events, ["begin 0-1-11", "row Some(Int(1))", "commit"]);
}

#[test]
fn transactions_already_in_the_position_are_dropped() {
    let mut a = start();
    assert!(feed(&mut a, vec![gtid(9), row(1), Item::Commit { header: header() }]).expect("ok").is_empty());
}

#[test]
fn a_standalone_ddl_is_one_transaction() {
    let mut a = start();
    let ddl =
        Item::MariaDbGtid { gtid: MariaDbGtid { domain: 0, server: 1, seq: 11 }, standalone: true, header: header() };
    let events = feed(&mut a, vec![ddl, statement("/* tool */ ALTER TABLE t ADD c INT")]).expect("ok");
    assert_eq!(events, ["begin 0-1-11", "stmt /* tool */ ALTER TABLE t ADD c INT", "commit"]);
}

#[test]
fn statement_based_dml_is_an_error_whatever_precedes_it() {
    for sql in [
        "INSERT INTO t VALUES (1)",
        "  update t set a = 1",
        "/* app:orders */ DELETE FROM t",
        "-- traced\nREPLACE INTO t VALUES (1)",
        "# note\n/* two */ /* comments */ insert into t values (2)",
        "/*!80000 INSERT INTO t VALUES (3) */",
        "WITH x AS (SELECT 1) UPDATE t, x SET t.a = 1",
        "LOAD DATA INFILE 'f' INTO TABLE t",
    ] {
        let mut a = start();
        let err = feed(&mut a, vec![gtid(11), statement(sql)]).expect_err(sql);
        assert!(matches!(err, AssemblerError::StatementDml { .. }), "{sql}: {err}");
    }
}

fn xid(name: &str) -> Xid {
    Xid { format_id: 1, gtrid: name.as_bytes().to_vec(), bqual: Vec::new() }
}

fn prepare(name: &str, one_phase: bool) -> Item {
    Item::XaPrepare(XaPrepare { one_phase, xid: xid(name) })
}

/// A standalone group holding one statement (how both servers log XA COMMIT/ROLLBACK).
fn standalone(seq: u64, sql: &str) -> Vec<Item> {
    let gtid = MariaDbGtid { domain: 0, server: 1, seq };
    vec![Item::MariaDbGtid { gtid, standalone: true, header: header() }, statement(sql)]
}

#[test]
fn a_prepared_xa_transaction_is_emitted_at_its_xa_commit() {
    let mut a = start();
    // MariaDB: the GTID event is the XA START; XA END is a statement inside the group.
    let events = feed(&mut a, vec![gtid(11), row(1), statement("XA END X'6131',X'',1"), prepare("a1", false)]);
    assert_eq!(events.expect("ok"), ["begin 0-1-11", "prepared X'6131',X'',1"]);
    assert_eq!(a.position().to_string(), "0-1-11", "the read position includes the prepared group");
    // Another transaction in between is emitted as usual.
    let events = feed(&mut a, vec![gtid(12), row(2), Item::Commit { header: header() }]).expect("ok");
    assert_eq!(events, ["begin 0-1-12", "row Some(Int(2))", "commit"]);
    // A reconnect does not lose the prepared rows: the group will not come again.
    a.reset(&mut |e| panic!("nothing to void: {e:?}"));
    assert_eq!(a.prepared(), 1);
    let events = feed(&mut a, standalone(13, "XA COMMIT X'6131',X'',1")).expect("ok");
    assert_eq!(
        events,
        ["resume X'6131',X'',1 0-1-11", "row Some(Int(1))", "commit", "begin 0-1-13", "commit"],
        "the rows under their own transaction, then the deciding group, empty"
    );
    assert_eq!(a.prepared(), 0);
    assert_eq!(a.position().to_string(), "0-1-13");
}

#[test]
fn an_xa_rollback_emits_no_rows_and_one_phase_commits_at_once() {
    let mut a = start();
    let events = feed(&mut a, vec![gtid(11), row(1), prepare("r", false)]).expect("ok");
    assert_eq!(events, ["begin 0-1-11", "prepared X'72',X'',1"]);
    let events = feed(&mut a, standalone(12, "XA ROLLBACK X'72',X'',1")).expect("ok");
    assert_eq!(events, ["resume X'72',X'',1 0-1-11", "commit", "begin 0-1-12", "commit"]);
    // MySQL: GTID, XA START, rows, XA END, XA_PREPARE with one_phase.
    let gtid13 = MariaDbGtid { domain: 0, server: 1, seq: 13 };
    let items = vec![
        Item::MariaDbGtid { gtid: gtid13, standalone: true, header: header() },
        statement("XA START X'6f',X'',1"),
        row(3),
        statement("XA END X'6f',X'',1"),
        prepare("o", true),
    ];
    assert_eq!(feed(&mut a, items).expect("ok"), ["begin 0-1-13", "row Some(Int(3))", "commit"]);
    // The outcome of an XID never seen prepared (before the start position): nothing to emit.
    let events = feed(&mut a, standalone(14, "XA COMMIT X'7a',X'',1")).expect("ok");
    assert_eq!(events, ["begin 0-1-14", "commit"]);
    let err = feed(&mut a, standalone(15, "XA COMMIT 'z'")).expect_err("not the server's form");
    assert!(matches!(err, AssemblerError::XaStatement { .. }), "{err}");
    // Found by the fuzzer: an XA outcome after rows of an open group resumed a transaction
    // inside it. It is the whole of its own group, or an error.
    let mut a = start();
    let mut items = standalone(16, "");
    items.truncate(1);
    items.extend([row(1), row(2), row(3), statement("XA COMMIT X'7a',X'',1")]);
    let err = feed(&mut a, items).expect_err("inside a transaction");
    assert!(matches!(err, AssemblerError::Structure(_)), "{err}");
}

#[test]
fn prepared_rows_beyond_the_byte_budget_are_emitted_at_prepare() {
    let mut a = Assembler::new(start().position().clone(), 1000).with_buffer_bytes(2 * row_bytes());
    let events = feed(&mut a, vec![gtid(11), row(1), prepare("a", false)]).expect("ok");
    assert_eq!(events, ["begin 0-1-11", "prepared X'61',X'',1"]);
    let events = feed(&mut a, vec![gtid(12), row(2), row(3), prepare("b", false)]).expect("ok");
    assert_eq!(events, ["begin 0-1-12", "row Some(Int(2))", "row Some(Int(3))", "prepared X'62',X'',1"]);
    let events = feed(&mut a, standalone(13, "XA COMMIT X'62',X'',1")).expect("ok");
    assert_eq!(events, ["resume X'62',X'',1 0-1-12", "commit", "begin 0-1-13", "commit"]);
    let events = feed(&mut a, standalone(14, "XA COMMIT X'61',X'',1")).expect("ok");
    assert_eq!(events, ["resume X'61',X'',1 0-1-11", "row Some(Int(1))", "commit", "begin 0-1-14", "commit"]);
    assert_eq!(a.prepared_bytes, 0);
}

#[test]
fn first_keywords() {
    assert_eq!(first_keyword("CREATE TABLE t (a INT)"), "CREATE");
    assert_eq!(first_keyword("/* unterminated"), "");
    assert_eq!(first_keyword("-- only a comment"), "");
    assert_eq!(first_keyword("/*M!100100 ALTER TABLE t */"), "ALTER");
    assert_eq!(first_keyword("TRUNCATE `t`"), "TRUNCATE");
    assert_eq!(first_keyword(""), "");
}
