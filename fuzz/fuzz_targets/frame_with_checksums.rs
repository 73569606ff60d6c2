//! Events framed with CRC32 on after a MariaDB FDE, some with valid checksums and some not: the
//! checksum check and the parsers behind it must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rowferry::fuzzing::frame_with_checksums(data);
});
