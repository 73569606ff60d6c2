//! Entry points for the fuzz targets (`fuzz/`) and for the property tests that run the same
//! inputs in the normal test suite. Not part of the supported API.

use crate::binlog::{EventHeader, HEADER_LEN, event_type};
use crate::decoder::StreamDecoder;
use crate::schema::{CollationMap, SchemaOptions};

/// Post-header lengths of a MySQL 9.0 FORMAT_DESCRIPTION (from the golden file vector.binlog).
const POST_HEADER_LENS: [u8; 42] = [
    0, 13, 0, 8, 0, 0, 0, 0, 4, 0, 4, 0, 0, 0, 99, 0, 4, 26, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 10, 10, 10, 42, 42, 0,
    18, 52, 0, 10, 40, 0, 0,
];

/// A FORMAT_DESCRIPTION event with checksums off, so fuzzed event bodies reach the decoders
/// instead of stopping at a CRC mismatch.
pub fn format_description_without_checksums() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&4u16.to_le_bytes());
    let mut version = b"9.0.1".to_vec();
    version.resize(50, 0);
    body.extend_from_slice(&version);
    body.extend_from_slice(&0u32.to_le_bytes());
    body.push(HEADER_LEN as u8);
    body.extend_from_slice(&POST_HEADER_LENS);
    body.push(0); // checksum algorithm: off
    body.extend_from_slice(&[0; 4]); // the FDE's own (unused) checksum field
    let size = (HEADER_LEN + body.len()) as u32;
    let mut event = Vec::with_capacity(size as usize);
    event.extend_from_slice(&0u32.to_le_bytes());
    event.push(event_type::FORMAT_DESCRIPTION);
    event.extend_from_slice(&1u32.to_le_bytes());
    event.extend_from_slice(&size.to_le_bytes());
    event.extend_from_slice(&size.to_le_bytes());
    event.extend_from_slice(&0u16.to_le_bytes());
    event.extend_from_slice(&body);
    event
}

/// Decodes `data` as a sequence of events (each framed by its header's size) after a
/// checksum-free FDE. Must never panic, whatever `data` is.
pub fn decode_events(data: &[u8]) {
    let mut decoder = StreamDecoder::new(CollationMap::default(), SchemaOptions { require_full_metadata: false });
    if decoder.push(&format_description_without_checksums(), &mut |_| {}).is_err() {
        return;
    }
    let mut rest = data;
    while rest.len() >= HEADER_LEN {
        let Ok(header) = EventHeader::parse(rest) else { return };
        let size = (header.event_size as usize).clamp(HEADER_LEN, rest.len());
        let (event, tail) = rest.split_at(size);
        rest = tail;
        // Make the header agree with the slice, so the body parsers are what gets exercised.
        let mut event = event.to_vec();
        event[9..13].copy_from_slice(&(size as u32).to_le_bytes());
        if decoder.push(&event, &mut |_| {}).is_err() {
            return;
        }
    }
}
