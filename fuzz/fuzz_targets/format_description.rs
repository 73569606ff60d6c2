//! A fuzzed FORMAT_DESCRIPTION (MariaDB's or MySQL's layout) and the events read with it: no
//! post-header table, however short or odd, may make a parser panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rowferry::fuzzing::format_description(data);
});
