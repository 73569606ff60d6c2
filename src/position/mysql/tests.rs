use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
const B: &str = "4f22fb58-82db-22f2-af44-d91bbaa3a673";

fn set(text: &str) -> MySqlGtidSet {
    MySqlGtidSet::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn gtid(uuid: &str, tag: &str, gno: u64) -> MySqlGtid {
    MySqlGtid { uuid: Uuid::parse(uuid).expect("uuid"), tag: tag.into(), gno }
}

#[test]
fn parses_and_prints_canonically() {
    assert_eq!(set("").to_string(), "");
    assert_eq!(set(&format!("{A}:1-5:7-9")).to_string(), format!("{A}:1-5:7-9"));
    // Upper case, MySQL's ",\n", unsorted/overlapping/adjacent intervals, tags switching.
    let messy = format!("{},\n{A}:9:1-3:4-5:blue:2:Blue:1:7", B.to_uppercase());
    let messy = messy.replacen(&B.to_uppercase(), &format!("{}:3", B.to_uppercase()), 1);
    assert_eq!(set(&messy).to_string(), format!("{A}:1-5:9:blue:1-2:7,{B}:3"));
}

#[test]
fn tagged_gtids() {
    let s = set(&format!("{A}:1-5:mytag:1-3"));
    assert!(s.contains(&gtid(A, "", 4)));
    assert!(s.contains(&gtid(A, "mytag", 3)));
    assert!(!s.contains(&gtid(A, "mytag", 4)));
    assert!(!s.contains(&gtid(A, "other", 1)));
    assert_eq!(gtid(A, "mytag", 3).to_string(), format!("{A}:mytag:3"));
}

#[test]
fn malformed_text_is_an_error_not_a_panic() {
    for bad in [
        "x",
        "3e11fa47-71ca-11e1-9e33",
        A,
        &format!("{A}:"),
        &format!("{A}:0"),
        &format!("{A}:5-3"),
        &format!("{A}:1-x"),
        &format!("{A}:9223372036854775807"),
        &format!("{A}:1tag:1"),
        &format!("{A}:tag"),
        &format!("{A}:a-b:1"),
        &format!("{A}:{}:1", "t".repeat(33)),
        "zz11fa47-71ca-11e1-9e33-c80aa9429562:1",
        "é11fa47-71ca-11e1-9e33-c80aa9429562:1",
    ] {
        assert!(MySqlGtidSet::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn set_operations() {
    let mut s = set(&format!("{A}:1-5"));
    s.add(&gtid(A, "", 6));
    s.add(&gtid(A, "", 8));
    assert_eq!(s.to_string(), format!("{A}:1-6:8"));
    s.add(&gtid(A, "", 7));
    assert_eq!(s.to_string(), format!("{A}:1-8"));
    assert!(set(&format!("{A}:2-3")).is_subset(&s));
    assert!(!set(&format!("{A}:2-9")).is_subset(&s));
    assert!(!set(&format!("{B}:1")).is_subset(&s));
    assert_eq!(
        set(&format!("{A}:1-10,{B}:1-3")).difference(&set(&format!("{A}:3-4:8,{B}:1-3"))).to_string(),
        format!("{A}:1-2:5-7:9-10")
    );
}

/// The model: an explicit set of (uuid index, tag, gno) over small numbers.
type Model = BTreeSet<(usize, &'static str, u64)>;

const UUIDS: [&str; 2] = [A, B];
const TAGS: [&str; 3] = ["", "a", "zz"];

fn arb_items() -> impl Strategy<Value = Vec<(usize, usize, u64, u64)>> {
    prop::collection::vec((0..2usize, 0..3usize, 1..40u64, 0..6u64), 0..8)
}

fn build(items: &[(usize, usize, u64, u64)]) -> (MySqlGtidSet, Model) {
    let mut text = Vec::new();
    let mut model = Model::new();
    for &(u, t, start, len) in items {
        let end = start + len;
        let tag = if TAGS[t].is_empty() { String::new() } else { format!("{}:", TAGS[t]) };
        text.push(format!("{}:{tag}{start}-{end}", UUIDS[u]));
        model.extend((start..=end).map(|g| (u, TAGS[t], g)));
    }
    (set(&text.join(",")), model)
}

fn model_of(s: &MySqlGtidSet) -> Model {
    let mut m = Model::new();
    for (u, uuid) in UUIDS.iter().enumerate() {
        for tag in TAGS {
            for g in 1..60 {
                if s.contains(&gtid(uuid, tag, g)) {
                    m.insert((u, tag, g));
                }
            }
        }
    }
    m
}

proptest! {
    #[test]
    fn agrees_with_the_model(a in arb_items(), b in arb_items(), extra in (0..2usize, 0..3usize, 1..50u64)) {
        let (sa, ma) = build(&a);
        let (sb, mb) = build(&b);
        prop_assert_eq!(model_of(&sa), ma.clone());
        // print → parse is the identity
        prop_assert_eq!(set(&sa.to_string()), sa.clone());
        // union
        let mut u = sa.clone();
        u.union(&sb);
        prop_assert_eq!(model_of(&u), ma.union(&mb).cloned().collect::<Model>());
        // subset
        prop_assert_eq!(sa.is_subset(&sb), ma.is_subset(&mb));
        prop_assert!(sa.is_subset(&u) && sb.is_subset(&u));
        // difference
        prop_assert_eq!(model_of(&sa.difference(&sb)), ma.difference(&mb).cloned().collect::<Model>());
        // add
        let (eu, et, eg) = extra;
        let mut added = sa.clone();
        added.add(&gtid(UUIDS[eu], TAGS[et], eg));
        let mut expected = ma.clone();
        expected.insert((eu, TAGS[et], eg));
        prop_assert_eq!(model_of(&added), expected);
    }

    #[test]
    fn parse_never_panics(text in ".{0,80}") {
        let _ = MySqlGtidSet::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_near_misses(text in "[0-9a-fA-F:,\\- ]{0,80}") {
        let _ = MySqlGtidSet::parse(&text);
    }
}
