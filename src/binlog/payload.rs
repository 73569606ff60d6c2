//! Compressed events.
//!
//! * MySQL TRANSACTION_PAYLOAD (40, `binlog_transaction_compression=ON`): a header of
//!   (type, length, value) fields in length-encoded integers, then the compressed bytes of the
//!   transaction's events (full headers, no checksums). [`PayloadEvents`] decompresses them as a
//!   stream, one event at a time into a reused buffer, so memory is bounded by the largest inner
//!   event, not by the transaction.
//! * MariaDB compressed QUERY/ROWS (165–171, `log_bin_compress=ON`): one byte `0x80 | n`, the
//!   uncompressed length in `n` big-endian bytes, then a zlib stream ([`mariadb_uncompress`]).

use super::cursor::Cursor;
use super::{BinlogError, HEADER_LEN};
use std::io::Read;

const WHAT: &str = "TRANSACTION_PAYLOAD event";

/// How the payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    None,
}

/// The header fields of a TRANSACTION_PAYLOAD and where its data starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadHeader<'a> {
    pub compression: Compression,
    pub uncompressed_size: u64,
    pub data: &'a [u8],
}

/// Parses the TRANSACTION_PAYLOAD body.
pub fn payload_header(body: &[u8]) -> Result<PayloadHeader<'_>, BinlogError> {
    let mut c = Cursor::new(body, WHAT);
    let (mut size, mut compression, mut uncompressed_size) = (None, Compression::None, None);
    loop {
        let field = c.lenenc()?;
        if field == 0 {
            break;
        }
        let len = c.lenenc_len()?;
        let mut value = Cursor::new(c.bytes(len)?, WHAT);
        match field {
            1 => size = Some(value.lenenc()?),
            2 => {
                compression = match value.lenenc()? {
                    0 => Compression::Zstd,
                    255 => Compression::None,
                    other => {
                        return Err(BinlogError::Unsupported(format!("transaction payload compression type {other}")));
                    }
                }
            }
            3 => uncompressed_size = Some(value.lenenc()?),
            _ => {} // fields added later carry their own length
        }
    }
    let data = c.take_rest();
    if size.is_some_and(|s| s != data.len() as u64) {
        return Err(BinlogError::malformed(WHAT, format!("payload size {size:?} but {} bytes follow", data.len())));
    }
    let uncompressed_size = uncompressed_size.ok_or_else(|| BinlogError::malformed(WHAT, "no uncompressed size"))?;
    Ok(PayloadHeader { compression, uncompressed_size, data })
}

/// Streams the events inside a TRANSACTION_PAYLOAD.
pub struct PayloadEvents<'a> {
    source: Box<dyn Read + Send + 'a>,
    remaining: u64,
}

impl std::fmt::Debug for PayloadEvents<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadEvents").field("remaining", &self.remaining).finish()
    }
}

impl<'a> PayloadEvents<'a> {
    pub fn new(header: &PayloadHeader<'a>) -> Result<Self, BinlogError> {
        let source: Box<dyn Read + Send + 'a> = match header.compression {
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(header.data)
                    .map_err(|e| BinlogError::malformed(WHAT, format!("zstd: {e}")))?,
            ),
            Compression::None => Box::new(header.data),
        };
        Ok(PayloadEvents { source, remaining: header.uncompressed_size })
    }

    /// The same over an owned copy of the compressed bytes, so decoding can stop between
    /// embedded events and resume later (the event it came in is gone by then).
    pub fn owned(header: &PayloadHeader<'_>) -> Result<PayloadEvents<'static>, BinlogError> {
        let data = std::io::Cursor::new(header.data.to_vec());
        let source: Box<dyn Read + Send> = match header.compression {
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(data)
                    .map_err(|e| BinlogError::malformed(WHAT, format!("zstd: {e}")))?,
            ),
            Compression::None => Box::new(data),
        };
        Ok(PayloadEvents { source, remaining: header.uncompressed_size })
    }

    /// Reads the next embedded event into `buf` (replacing its content); `false` at the end.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, BinlogError> {
        if self.remaining == 0 {
            return Ok(false);
        }
        buf.clear();
        buf.resize(HEADER_LEN, 0);
        self.fill(&mut buf[..])?;
        let size = u32::from_le_bytes([buf[9], buf[10], buf[11], buf[12]]) as usize;
        if size < HEADER_LEN || size as u64 > self.remaining {
            return Err(BinlogError::malformed(
                WHAT,
                format!("embedded event of {size} bytes with {} left", self.remaining),
            ));
        }
        buf.resize(size, 0);
        self.fill(&mut buf[HEADER_LEN..])?;
        self.remaining -= size as u64;
        Ok(true)
    }

    fn fill(&mut self, out: &mut [u8]) -> Result<(), BinlogError> {
        self.source.read_exact(out).map_err(|e| BinlogError::malformed(WHAT, format!("decompressing: {e}")))
    }
}

/// Inflates a MariaDB compressed block; `what` names the event for errors.
pub fn mariadb_uncompress(block: &[u8], what: &'static str) -> Result<Vec<u8>, BinlogError> {
    let mut c = Cursor::new(block, what);
    let first = c.u8()?;
    let lenlen = usize::from(first & 0x07);
    if first & 0x80 == 0 || !(1..=4).contains(&lenlen) {
        return Err(BinlogError::malformed(what, format!("bad compression header byte {first:#x}")));
    }
    let len = c.uint_be(lenlen)? as usize;
    // Bound the allocation: zlib cannot expand more than ~1032:1.
    if len > c.remaining().saturating_mul(1032).saturating_add(64) {
        return Err(BinlogError::malformed(what, format!("claims {len} uncompressed bytes from {}", c.remaining())));
    }
    let mut out = Vec::with_capacity(len);
    flate2::read::ZlibDecoder::new(c.take_rest())
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BinlogError::malformed(what, format!("zlib: {e}")))?;
    if out.len() != len {
        return Err(BinlogError::malformed(what, format!("inflated to {} bytes, header says {len}", out.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn mariadb_block_round_trip_and_lies() {
        let text = b"INSERT INTO t VALUES (1), (2), (3), (4), (5), (6)".repeat(10);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).expect("compress");
        let compressed = z.finish().expect("finish");
        let mut block = vec![0x82, (text.len() >> 8) as u8, text.len() as u8];
        block.extend_from_slice(&compressed);
        assert_eq!(mariadb_uncompress(&block, "t").expect("inflate"), text);
        block[2] = block[2].wrapping_add(1);
        assert!(mariadb_uncompress(&block, "t").is_err());
        assert!(mariadb_uncompress(&[0x05, 1, 2], "t").is_err());
        assert!(mariadb_uncompress(&[0x84, 0xff, 0xff, 0xff, 0xff, 1], "t").is_err());
    }

    #[test]
    fn payload_streams_embedded_events() {
        let mut events = Vec::new();
        for size in [19u32, 25, 40] {
            let mut e = vec![0u8; size as usize];
            e[9..13].copy_from_slice(&size.to_le_bytes());
            events.extend_from_slice(&e);
        }
        let compressed = zstd::encode_all(&events[..], 3).expect("zstd");
        fn lenenc(v: usize) -> Vec<u8> {
            if v < 251 { vec![v as u8] } else { vec![0xfc, v as u8, (v >> 8) as u8] }
        }
        let mut body = Vec::new();
        for (field, value) in [(2usize, 0usize), (3, events.len()), (1, compressed.len())] {
            let value = lenenc(value);
            body.push(field as u8);
            body.extend_from_slice(&lenenc(value.len()));
            body.extend_from_slice(&value);
        }
        body.push(0);
        body.extend_from_slice(&compressed);
        let header = payload_header(&body).expect("header");
        assert_eq!(header.compression, Compression::Zstd);
        let mut stream = PayloadEvents::new(&header).expect("stream");
        let mut buf = Vec::new();
        let mut sizes = Vec::new();
        while stream.next_into(&mut buf).expect("event") {
            sizes.push(buf.len());
        }
        assert_eq!(sizes, [19, 25, 40]);
    }
}
