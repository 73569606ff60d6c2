use super::*;
use crate::position::MariaDbGtid;
use proptest::prelude::*;

fn g(seq: u64) -> Gtid {
    Gtid::MariaDb(MariaDbGtid { domain: 0, server: 1, seq })
}

fn rel(seq: u64) -> Released {
    Released::Gtid(g(seq))
}

/// The last sequence number a release covers (0 for none).
fn upto(released: &[Released]) -> u64 {
    released
        .iter()
        .filter_map(|r| match r {
            Released::Gtid(Gtid::MariaDb(m)) => Some(m.seq),
            Released::Set(Position::MariaDb(p)) => p.gtids().map(|m| m.seq).max(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Position of `released` (MariaDB domain 0).
fn applied(released: &[Released]) -> Position {
    let mut p = Position::MariaDb(MariaDbPosition::new());
    for r in released {
        match r {
            Released::Gtid(g) => p.add(g),
            Released::Set(s) => p.union(s),
        }
    }
    p
}

#[test]
fn release_if_acked_is_what_release_gives_once_everything_is_acked() {
    let mut t = Tracker::new();
    let mut records = Vec::new();
    for seq in 1..=6 {
        let id = t.begin(Some(g(seq)));
        for _ in 0..seq % 3 {
            records.push(t.sent(id).expect("sent"));
        }
        if seq == 3 {
            t.void(id).expect("void");
        } else if seq != 6 {
            t.end(id).expect("end");
        }
    }
    // 1 is acked already; 6 is still open.
    t.acked(records.remove(0)).expect("ack");
    let (expected, upto) = t.release_if_acked().expect("no failure");
    assert_eq!(upto, 5, "everything before the open transaction");
    assert_eq!(super::tests::upto(&expected), 5);
    for r in records {
        if r.txn < upto {
            t.acked(r).expect("ack");
        }
    }
    let released = t.release().expect("release");
    assert_eq!(applied(&released), applied(&expected));
    assert!(!expected.contains(&rel(3)), "3 was voided");
}

#[test]
fn durable_transactions_behind_a_stuck_one_cost_one_entry() {
    let mut t = Tracker::new();
    let stuck = t.begin(Some(g(1)));
    let record = t.sent(stuck).expect("sent");
    t.end(stuck).expect("end");
    let voided = t.begin(Some(g(2)));
    t.void(voided).expect("void");
    for seq in 3..100_003 {
        let id = t.begin(Some(g(seq)));
        t.end(id).expect("end");
    }
    assert_eq!(t.pending(), 100_002);
    assert!(t.entries() <= 3, "{} entries behind one unacked record", t.entries());
    assert_eq!(t.release(), Ok(vec![]));
    t.acked(record).expect("ack");
    let released = t.release().expect("release");
    assert_eq!(released[0], rel(1));
    assert_eq!(upto(&released), 100_002, "{released:?}");
    assert_eq!(t.pending(), 0);
    // A pipeline behind a stuck record: each transaction's record is acked only after the
    // next transaction began (found by the property test: merging only at the back let these
    // pile up one entry each).
    let stuck = t.begin(Some(g(200_000)));
    let record = t.sent(stuck).expect("sent");
    t.end(stuck).expect("end");
    let mut in_flight = None;
    for seq in 200_001..210_000 {
        let id = t.begin(Some(g(seq)));
        let r = t.sent(id).expect("sent");
        t.end(id).expect("end");
        if let Some(previous) = in_flight.replace(r) {
            t.acked(previous).expect("ack");
        }
    }
    assert!(t.entries() <= 3, "{} entries behind one unacked record in a pipeline", t.entries());
    t.acked(record).expect("ack");
    t.acked(in_flight.expect("last")).expect("ack");
    assert_eq!(upto(&t.release().expect("release")), 209_999);
    // A MySQL run of GTIDs stays one interval.
    let mut t = Tracker::new();
    let sid = |gno| {
        let uuid = crate::position::Uuid::parse("3e11fa47-71ca-11e1-9e33-c80aa9429562").expect("uuid");
        Gtid::MySql(crate::position::MySqlGtid { uuid, tag: String::new(), gno })
    };
    let stuck = t.begin(Some(sid(1)));
    let record = t.sent(stuck).expect("sent");
    t.end(stuck).expect("end");
    for gno in 2..1000 {
        let id = t.begin(Some(sid(gno)));
        t.end(id).expect("end");
    }
    t.acked(record).expect("ack");
    let mut position = Position::MySql(MySqlGtidSet::new());
    for released in t.release().expect("release") {
        match released {
            Released::Gtid(g) => position.add(&g),
            Released::Set(s) => position.union(&s),
        }
    }
    assert_eq!(position.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-999");
}

#[test]
fn releases_in_order_only_when_durable() {
    let mut t = Tracker::new();
    let a = t.begin(Some(g(1)));
    let ra = t.sent(a).expect("sent");
    t.end(a).expect("end");
    let b = t.begin(Some(g(2)));
    t.end(b).expect("end"); // no records: durable at once, but after a
    assert_eq!(t.release(), Ok(vec![]));
    t.acked(ra).expect("ack");
    assert_eq!(upto(&t.release().expect("release")), 2, "both, in one merged release");
    assert_eq!(t.pending(), 0);
}

#[test]
fn a_failure_stops_every_release() {
    let mut t = Tracker::new();
    let a = t.begin(Some(g(1)));
    let r = t.sent(a).expect("sent");
    t.end(a).expect("end");
    t.failed(r, "message too large").expect("failed");
    t.acked(r).expect("ack");
    assert!(matches!(t.release(), Err(TrackerError::DeliveryFailed { .. })));
}

#[test]
fn void_transactions_release_without_their_gtid() {
    let mut t = Tracker::new();
    // A GTID no later transaction has: it must not leak out of the void one.
    let a = t.begin(Some(g(7)));
    let r = t.sent(a).expect("sent");
    t.void(a).expect("void");
    let b = t.begin(Some(g(1)));
    t.end(b).expect("end");
    assert_eq!(t.release(), Ok(vec![]));
    t.acked(r).expect("ack");
    let released = t.release().expect("release");
    assert_eq!(upto(&released), 1, "{released:?}");
}

#[test]
fn misuse_is_an_error() {
    let mut t = Tracker::new();
    let a = t.begin(None);
    t.end(a).expect("end");
    assert!(t.sent(a).is_err());
    assert!(t.acked(RecordId { txn: a }).is_err());
    assert_eq!(t.release(), Ok(vec![]));
    assert!(t.end(a).is_err());
}

#[test]
fn a_hold_stops_releases_at_the_held_transaction_and_tracks_nothing_after() {
    let mut t = Tracker::new();
    let a = t.begin(Some(g(1)));
    let ra = t.sent(a).expect("sent");
    t.end(a).expect("end");
    let b = t.begin(Some(g(2)));
    let rb = t.sent(b).expect("sent");
    t.hold(b).expect("hold");
    t.end(b).expect("end");
    for _ in 0..1000 {
        let c = t.begin(Some(g(3)));
        let rc = t.sent(c).expect("sent behind the hold");
        t.end(c).expect("end");
        t.acked(rc).expect("ack");
    }
    assert_eq!(t.pending(), 1, "only the transaction before the hold is tracked");
    t.acked(rb).expect("ack of a held record");
    assert_eq!(t.release(), Ok(vec![]));
    t.acked(ra).expect("ack");
    assert_eq!(t.release(), Ok(vec![rel(1)]), "what precedes the hold is still released");
    assert_eq!(t.release(), Ok(vec![]));
    assert_eq!(t.held(), Some(b));
    t.hold(a).expect_err("a released transaction cannot be held");
}

#[test]
fn acked_before_counts_records_not_releases() {
    let mut t = Tracker::new();
    // An XA transaction prepared (not ended) with its one record acknowledged...
    let xa = t.begin(Some(g(1)));
    let rx = t.sent(xa).expect("sent");
    let a = t.begin(Some(g(2)));
    let ra = t.sent(a).expect("sent");
    t.end(a).expect("end");
    let upto = t.next_id();
    assert!(!t.acked_before(upto), "a's record is not acknowledged");
    t.acked(ra).expect("ack");
    assert!(!t.acked_before(upto), "the XA transaction's record is not acknowledged");
    t.acked(rx).expect("ack");
    // ...lets a later point be ACKed although the position stays before it.
    assert!(t.acked_before(upto));
    assert_eq!(t.release(), Ok(vec![]));
    // A filtered transaction after it: nothing to wait for.
    let f = t.begin(Some(g(3)));
    t.end(f).expect("end");
    assert!(t.acked_before(t.next_id()));
    // A held transaction is never ACKed, nor anything after it; what came before still is.
    let h = t.begin(Some(g(4)));
    t.hold(h).expect("hold");
    let after = t.begin(Some(g(5)));
    t.end(after).expect("end");
    assert!(t.acked_before(h));
    assert!(!t.acked_before(h + 1));
    assert!(!t.acked_before(t.next_id()));
    // Nor after a delivery failure.
    let mut t = Tracker::new();
    let a = t.begin(Some(g(1)));
    let r = t.sent(a).expect("sent");
    t.failed(r, "gone").expect("failed");
    assert!(!t.acked_before(t.next_id()));
}

#[derive(Debug, Clone)]
enum Step {
    /// a transaction with this many records
    Txn(u8),
    /// ack the n-th outstanding record (mod count)
    Ack(usize),
    /// fail the n-th outstanding record
    Fail(usize),
    /// hold the n-th unreleased transaction (mod count)
    Hold(usize),
    Release,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..4).prop_map(Step::Txn),
        6 => any::<usize>().prop_map(Step::Ack),
        1 => any::<usize>().prop_map(Step::Fail),
        1 => any::<usize>().prop_map(Step::Hold),
        3 => Just(Step::Release),
    ]
}

proptest! {
    /// Random ack orders and failures never let the committed position pass an unacked record.
    #[test]
    fn committed_never_passes_an_unacked_record(steps in prop::collection::vec(step(), 1..80)) {
        let mut t = Tracker::new();
        let mut outstanding: Vec<(RecordId, u64)> = Vec::new(); // (record, txn seq)
        let mut acked_all_of: Vec<u64> = Vec::new(); // per txn: records still unacked
        let mut committed: u64 = 0; // everything up to this seq is released
        let mut failed = false;
        let mut held: Option<u64> = None; // seq of the first held transaction
        let mut seq = 0u64;
        for s in steps {
            match s {
                Step::Txn(n) => {
                    seq += 1;
                    let id = t.begin(Some(g(seq)));
                    acked_all_of.push(u64::from(n));
                    for _ in 0..n {
                        outstanding.push((t.sent(id).expect("sent"), seq));
                    }
                    t.end(id).expect("end");
                }
                Step::Ack(i) if !outstanding.is_empty() => {
                    let (r, s) = outstanding.remove(i % outstanding.len());
                    t.acked(r).expect("ack");
                    acked_all_of[(s - 1) as usize] -= 1;
                }
                Step::Fail(i) if !outstanding.is_empty() => {
                    let (r, _) = outstanding[i % outstanding.len()];
                    t.failed(r, "boom").expect("fail");
                    failed = true;
                }
                Step::Hold(i) if seq > committed => {
                    let first = committed + 1;
                    let target = first + (i as u64) % (seq - first + 1);
                    t.hold(target - 1).expect("hold");
                    held = Some(held.map_or(target, |h| h.min(target)));
                }
                Step::Release => match t.release() {
                    Ok(released) => {
                        prop_assert!(!failed);
                        committed = committed.max(upto(&released));
                    }
                    Err(_) => prop_assert!(failed),
                },
                _ => {}
            }
            // Bounded: what waits is the unacked records' transactions and at most one merged
            // run before and after each.
            prop_assert!(
                t.entries() <= 2 * outstanding.len() + 1,
                "{} entries for {} outstanding records", t.entries(), outstanding.len()
            );
            // The invariant: what is released is a prefix 1..=k of the stream, every
            // transaction in it has all records acked, and none is at or after a hold.
            for c in 1..=committed {
                prop_assert_eq!(acked_all_of[(c - 1) as usize], 0);
                prop_assert!(held.is_none_or(|h| c < h), "released {} at or after the hold {:?}", c, held);
            }

        }
        // Liveness: with every record acked and no failure, everything is released.
        if !failed {
            for (r, s) in outstanding.drain(..) {
                t.acked(r).expect("ack");
                acked_all_of[(s - 1) as usize] -= 1;
            }
            committed = committed.max(upto(&t.release().expect("release")));
            // Everything before the hold (a merged run is held from its start) is released.
            prop_assert_eq!(committed, t.held().map_or(seq, |h| h));
        }
    }
}
