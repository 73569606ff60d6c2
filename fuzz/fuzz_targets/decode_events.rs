//! Arbitrary bytes as a binlog event stream: framing, TABLE_MAP, rows, JSON, decimals,
//! compressed payloads — no input may panic. `cargo fuzz run decode_events` (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rowferry::fuzzing::decode_events(data);
});
