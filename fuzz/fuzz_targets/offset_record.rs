//! An offsets-topic record parsed and its position read back: no stored text may crash rowferry,
//! and every position it accepts must survive its own text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rowferry::fuzzing::offset_record(data);
});
