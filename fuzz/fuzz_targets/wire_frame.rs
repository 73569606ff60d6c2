//! Arbitrary bytes as a Confluent-framed message: the parser must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rowferry::encoder::wire::parse(data);
});
