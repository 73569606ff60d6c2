//! The fuzz targets' entry points in the normal test suite: every file of the committed corpora
//! (`fuzz/corpus/<target>/`, minimised from runs of the fuzzers, and the inputs of every bug they
//! found) replayed, plus random bytes and mutated golden binlogs. No input may panic.

use proptest::prelude::*;
use std::path::PathBuf;

/// A golden binlog's events without their checksums, after its own FDE with checksums turned off,
/// so that mutations reach the body parsers instead of failing the CRC.
fn golden(name: &str) -> Vec<u8> {
    // As tests/golden_binlogs.rs: ROWFERRY_TESTDATA, else shared/testdata beside the clone.
    let dir = std::env::var_os("ROWFERRY_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/mysql-binlogs"));
    let path = dir.join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut checksums = false;
    for event in rowferry::binlog::file::FileEvents::new(&bytes).expect("binlog") {
        let (_, event) = event.expect("event");
        if event[4] == rowferry::binlog::event_type::FORMAT_DESCRIPTION {
            // The file's own layout (older servers' post-header lengths differ), checksums off.
            let fde = rowferry::binlog::FormatDescription::parse(&event[19..]).expect("the file's FDE");
            checksums = fde.checksum_alg == Some(rowferry::binlog::ChecksumAlg::Crc32);
            let mut event = event.to_vec();
            if checksums {
                // The algorithm byte sits before the FDE's own 4-byte checksum.
                let alg = event.len() - 5;
                event[alg] = 0;
            }
            out.extend_from_slice(&event);
            continue;
        }
        let mut e = event[..event.len() - if checksums { 4 } else { 0 }].to_vec();
        let size = (e.len() as u32).to_le_bytes();
        e[9..13].copy_from_slice(&size);
        out.extend_from_slice(&e);
    }
    out
}

const GOLDEN: [&str; 6] = [
    "mysql-enum-string-set.000001",
    "json-opaque.binlog",
    "vector.binlog",
    "mysql_type_bit.000001",
    "update-full-row.binlog",
    "time_issue.000001",
];

#[test]
fn unmutated_golden_events_decode_through_the_fuzz_entry() {
    // The transformation keeps the files decodable, so the mutations below start from valid input.
    for file in GOLDEN {
        let data = golden(file);
        let decoded = rowferry::fuzzing::decode_events(&data);
        assert_eq!(decoded.error, None, "{file}: every event decodes ({} did before the error)", decoded.events);
        assert!(decoded.events > 3 && decoded.rows > 0, "{file}: {decoded:?}");
    }
}

/// Every target's committed corpus, replayed: `(target, files)`.
fn corpora() -> Vec<(String, Vec<PathBuf>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let dir = dir.expect("corpus dir").path();
        let files = std::fs::read_dir(&dir).expect("corpus").map(|f| f.expect("file").path()).collect();
        out.push((dir.file_name().expect("name").to_string_lossy().into_owned(), files));
    }
    out
}

#[test]
fn every_fuzz_corpus_replays_without_a_panic() {
    let corpora = corpora();
    let targets: Vec<&str> = corpora.iter().map(|(t, _)| t.as_str()).collect();
    for want in
        ["decode_events", "frame_with_checksums", "format_description", "assemble", "schemas_log", "offset_record"]
    {
        assert!(targets.contains(&want), "fuzz/corpus/{want} is missing (have {targets:?})");
    }
    for (target, files) in corpora {
        assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
        for file in files {
            let data = std::fs::read(&file).expect("read");
            match target.as_str() {
                "decode_events" => drop(rowferry::fuzzing::decode_events(&data)),
                "frame_with_checksums" => rowferry::fuzzing::frame_with_checksums(&data),
                "format_description" => rowferry::fuzzing::format_description(&data),
                "assemble" => rowferry::fuzzing::assemble(&data),
                "schemas_log" => rowferry::fuzzing::schemas_log(&data),
                "offset_record" => rowferry::fuzzing::offset_record(&data),
                "wire_frame" => drop(rowferry::encoder::wire::parse(&data)),
                other => panic!("fuzz/corpus/{other}: no such target"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        rowferry::fuzzing::decode_events(&data);
        rowferry::fuzzing::frame_with_checksums(&data);
        rowferry::fuzzing::format_description(&data);
        rowferry::fuzzing::assemble(&data);
        rowferry::fuzzing::schemas_log(&data);
        rowferry::fuzzing::offset_record(&data);
    }

    #[test]
    fn mutated_golden_events_never_panic(
        file in prop::sample::select(GOLDEN.to_vec()),
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
