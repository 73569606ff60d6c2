//! The fuzz target's entry point on random bytes and on mutated golden binlogs, in the normal
//! test suite: no input may panic.

use proptest::prelude::*;
use std::path::PathBuf;

/// A golden binlog's events without their FDE and checksums (the fuzz entry point supplies a
/// checksum-free FDE), so that mutations reach the body parsers instead of failing the CRC.
fn golden(name: &str) -> Vec<u8> {
    // As tests/golden_binlogs.rs: ROWFERRY_TESTDATA, else shared/testdata beside the clone.
    let dir = std::env::var_os("ROWFERRY_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/mysql-binlogs"));
    let path = dir.join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for event in rowferry::binlog::file::FileEvents::new(&bytes).expect("binlog") {
        let (_, event) = event.expect("event");
        if event[4] == rowferry::binlog::event_type::FORMAT_DESCRIPTION || event.len() < 23 {
            continue;
        }
        let mut e = event[..event.len() - 4].to_vec();
        let size = (e.len() as u32).to_le_bytes();
        e[9..13].copy_from_slice(&size);
        out.extend_from_slice(&e);
    }
    out
}

#[test]
fn unmutated_golden_events_decode_through_the_fuzz_entry() {
    // The transformation keeps the files decodable: the mutations below start from valid input.
    let data = golden("mysql-enum-string-set.000001");
    assert!(data.len() > 1000);
    rowferry::fuzzing::decode_events(&data);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        rowferry::fuzzing::decode_events(&data);
    }

    #[test]
    fn mutated_golden_events_never_panic(
        file in prop::sample::select(vec!["mysql-enum-string-set.000001", "json-opaque.binlog", "vector.binlog", "mysql_type_bit.000001", "update-full-row.binlog", "time_issue.000001"]),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut data = golden(file);
        for (at, byte) in flips {
            let i = at.index(data.len());
            data[i] ^= byte | 1;
        }
        rowferry::fuzzing::decode_events(&data);
    }
}
