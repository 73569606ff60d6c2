//! Confluent wire format: `0x00`, the schema id as a big-endian u32, then the Avro binary datum.
//! <https://docs.confluent.io/platform/current/schema-registry/fundamentals/serdes-develop/index.html#wire-format>

use super::EncodeError;

pub const MAGIC: u8 = 0;

/// Frames an Avro datum for schema `id`, appending to `out`.
pub fn frame_into(id: u32, datum: &[u8], out: &mut Vec<u8>) {
    out.reserve(5 + datum.len());
    header_into(id, out);
    out.extend_from_slice(datum);
}

/// Appends the 5-byte header for schema `id` (the datum is written after it).
pub fn header_into(id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
}

/// Splits a framed message into schema id and datum.
pub fn parse(message: &[u8]) -> Result<(u32, &[u8]), EncodeError> {
    match message {
        [MAGIC, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [other, ..] if *other != MAGIC => Err(EncodeError::Wire(format!("magic byte {other:#04x}, expected 0x00"))),
        _ => Err(EncodeError::Wire(format!("{} bytes is shorter than the 5-byte header", message.len()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frame_then_parse(id: u32, datum in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            frame_into(id, &datum, &mut out);
            let (got_id, got) = parse(&out).expect("parse");
            prop_assert_eq!(got_id, id);
            prop_assert_eq!(got, &datum[..]);
        }

        #[test]
        fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..16)) {
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn rejects_bad_magic_and_short_frames() {
        assert!(parse(&[1, 0, 0, 0, 1]).is_err());
        assert!(parse(&[0, 0, 0]).is_err());
        assert!(parse(&[]).is_err());
        assert_eq!(parse(&[0, 0, 0, 1, 0]).ok(), Some((256, &[][..])));
    }
}
