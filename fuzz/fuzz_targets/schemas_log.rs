//! `_schemas` records replayed into the embedded registry's store, then a registration planned and
//! checked: whoever can write that topic must not be able to crash rowferry.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rowferry::fuzzing::schemas_log(data);
});
