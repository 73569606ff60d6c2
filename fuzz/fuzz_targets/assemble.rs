//! Arbitrary item sequences through the transaction assembler, XA included: it must never panic
//! and what it emits must stay well formed (checked inside the entry point).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rowferry::fuzzing::assemble(data);
});
