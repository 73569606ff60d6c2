//! Entry points for the fuzz targets (`fuzz/`) and for the tests that replay their corpora and run
//! the same inputs in the normal test suite. Not part of the supported API.
//!
//! Each entry takes arbitrary bytes and must never panic; those that can also check an invariant
//! on what comes out (the assembler's event order) panic when it breaks, so the fuzzer reports it.
//! Inputs that reach the code under test: checksums are off or recomputed, lengths agree.

use crate::binlog::events::{XaPrepare, Xid};
use crate::binlog::{EventHeader, HEADER_LEN, event_type};
use crate::change::{Op, RowChange, Value};
use crate::decoder::{Item, StreamDecoder};
use crate::position::{MariaDbGtid, MariaDbPosition, Position};
use crate::reader::{Assembler, TxnEvent};
use crate::schema::{CollationMap, SchemaOptions, TableSchema};
use std::sync::Arc;

/// Post-header lengths of a MySQL 9.0 FORMAT_DESCRIPTION (from the golden file vector.binlog).
const POST_HEADER_LENS: [u8; 42] = [
    0, 13, 0, 8, 0, 0, 0, 0, 4, 0, 4, 0, 0, 0, 99, 0, 4, 26, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 10, 10, 10, 42, 42, 0,
    18, 52, 0, 10, 40, 0, 0,
];

/// A FORMAT_DESCRIPTION event with checksums off, so fuzzed event bodies reach the decoders
/// instead of stopping at a CRC mismatch.
pub fn format_description_without_checksums() -> Vec<u8> {
    event(event_type::FORMAT_DESCRIPTION, &fde_body("9.0.1", &POST_HEADER_LENS, 0), false)
}

/// An FDE body: version, post-header lengths, checksum algorithm (0 off, 1 CRC32), and the FDE's
/// own checksum field (zeros; the framer removes it).
fn fde_body(version: &str, post_header_lens: &[u8], checksum: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&4u16.to_le_bytes());
    let mut v = version.as_bytes().to_vec();
    v.resize(50, 0);
    body.extend_from_slice(&v);
    body.extend_from_slice(&0u32.to_le_bytes());
    body.push(HEADER_LEN as u8);
    body.extend_from_slice(post_header_lens);
    body.push(checksum);
    body.extend_from_slice(&[0; 4]);
    body
}

/// A whole event around `body`: header with the right size, and a valid CRC32 if `crc`.
fn event(event_type: u8, body: &[u8], crc: bool) -> Vec<u8> {
    let size = (HEADER_LEN + body.len() + if crc { 4 } else { 0 }) as u32;
    let mut e = Vec::with_capacity(size as usize);
    e.extend_from_slice(&0u32.to_le_bytes());
    e.push(event_type);
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&size.to_le_bytes());
    e.extend_from_slice(&size.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(body);
    if crc {
        let sum = crc32fast::hash(&e);
        e.extend_from_slice(&sum.to_le_bytes());
    }
    e
}

/// MariaDB 10.11's post-header lengths: MySQL's first 41 types, then its own 160–171.
fn mariadb_post_header_lens() -> Vec<u8> {
    let mut lens = POST_HEADER_LENS[..41].to_vec();
    lens.resize(171, 0);
    for (ty, len) in
        [(161, 4), (162, 19), (163, 4), (165, 13), (166, 8), (167, 8), (168, 8), (169, 10), (170, 10), (171, 10)]
    {
        lens[ty - 1] = len;
    }
    lens
}

/// What [`decode_events`] got through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub events: usize,
    pub rows: usize,
    /// The first error, which ends the input (as it ends a stream).
    pub error: Option<String>,
}

/// Splits `data` into events framed by their headers' sizes (clamped to what is there), each
/// handed to `push` with the size field made to agree with the slice.
fn each_event(data: &[u8], mut push: impl FnMut(Vec<u8>) -> bool) {
    let mut rest = data;
    while rest.len() >= HEADER_LEN {
        let Ok(header) = EventHeader::parse(rest) else { return };
        let size = (header.event_size as usize).clamp(HEADER_LEN, rest.len());
        let (event, tail) = rest.split_at(size);
        rest = tail;
        let mut event = event.to_vec();
        event[9..13].copy_from_slice(&(size as u32).to_le_bytes());
        if !push(event) {
            return;
        }
    }
}

fn decoder() -> StreamDecoder {
    StreamDecoder::new(CollationMap::default(), SchemaOptions { require_full_metadata: false })
}

/// Decodes `data` as a sequence of events (each framed by its header's size) after a
/// checksum-free FDE. Must never panic, whatever `data` is; says how far it got.
pub fn decode_events(data: &[u8]) -> Decoded {
    let mut decoder = decoder();
    let mut decoded = Decoded::default();
    if let Err(e) = decoder.push(&format_description_without_checksums(), &mut |_| {}) {
        decoded.error = Some(e.to_string());
        return decoded;
    }
    each_event(data, |event| {
        let mut rows = 0;
        let result = decoder.push(&event, &mut |item| rows += usize::from(matches!(item, Item::Row(_))));
        decoded.rows += rows;
        match result {
            Ok(()) => {
                decoded.events += 1;
                true
            }
            Err(e) => {
                decoded.error = Some(e.to_string());
                false
            }
        }
    });
    decoded
}

/// Events framed with CRC32 on, after a MariaDB FDE: the first byte of `data` chooses, bit by
/// bit, which events get a valid checksum (the others keep the bytes they have), so both the
/// checksum check and the parsers behind it are reached.
pub fn frame_with_checksums(data: &[u8]) {
    let Some((&mask, data)) = data.split_first() else { return };
    let mut decoder = decoder();
    let fde =
        event(event_type::FORMAT_DESCRIPTION, &fde_body("10.11.6-MariaDB-log", &mariadb_post_header_lens(), 1), true);
    if decoder.push(&fde, &mut |_| {}).is_err() {
        panic!("the MariaDB FDE with CRC32 must be accepted");
    }
    let mut n = 0;
    each_event(data, |mut e| {
        if mask & (1 << (n % 8)) != 0 && e.len() >= HEADER_LEN + 4 {
            let body_end = e.len() - 4;
            let sum = crc32fast::hash(&e[..body_end]);
            e[body_end..].copy_from_slice(&sum.to_le_bytes());
        }
        n += 1;
        // A checksum mismatch is retryable on a live link; here the next event is tried.
        decoder.push(&e, &mut |_| {}).map_or_else(|e| e.class() == crate::error::ErrorClass::Retryable, |()| true)
    });
}

/// A fuzzed FORMAT_DESCRIPTION body (MariaDB's and MySQL's layouts alike) and the events that
/// follow it: the first two bytes are the body's length. A version from 5.6.1 on makes the last
/// 5 bytes the checksum algorithm and the FDE's own checksum.
pub fn format_description(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let len = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
    let (body, rest) = data[2..].split_at(len);
    let _ = crate::binlog::FormatDescription::parse(body);
    let mut decoder = decoder();
    if decoder.push(&event(event_type::FORMAT_DESCRIPTION, body, false), &mut |_| {}).is_err() {
        return;
    }
    each_event(rest, |e| decoder.push(&e, &mut |_| {}).is_ok());
}

/// Arbitrary sequences of decoded items through the transaction assembler (a small buffer, so
/// streaming, XA budgets and aborts happen), each byte choosing the next item. Checks that what
/// comes out is well formed: rows only inside a transaction, every `Begin`/`Resume` closed by one
/// `Commit`, `Prepared` or `Abort` before the next, and nothing but rows, errors and statements in
/// between.
pub fn assemble(data: &[u8]) {
    let table =
        Arc::new(TableSchema { db: "d".into(), table: "t".into(), columns: Vec::new(), primary_key: Vec::new() });
    let header = EventHeader { timestamp: 1, event_type: 0, server_id: 1, event_size: 0, log_pos: 0, flags: 0 };
    let start = Position::MariaDb(MariaDbPosition::parse("0-1-5").unwrap_or_else(|_| unreachable!()));
    let mut assembler = Assembler::new(start, 3).with_buffer_bytes(400);
    let mut open = false;
    let mut check = |e: TxnEvent| match e {
        TxnEvent::Begin { .. } | TxnEvent::Resume { .. } => {
            assert!(!open, "{e:?} inside an open transaction");
            open = true;
        }
        TxnEvent::Commit { .. } | TxnEvent::Prepared { .. } | TxnEvent::Abort => {
            assert!(open, "{e:?} outside a transaction");
            open = false;
        }
        TxnEvent::Row(_) | TxnEvent::Statement { .. } | TxnEvent::TableError { .. } => {
            assert!(open, "{e:?} outside a transaction");
        }
        TxnEvent::Heartbeat | TxnEvent::Ack(_) => {}
    };
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        let xid = Xid { format_id: 1, gtrid: vec![b'a' + arg % 4], bqual: Vec::new() };
        let item = match op % 14 {
            0 | 1 => Item::MariaDbGtid {
                gtid: MariaDbGtid { domain: u32::from(arg % 2), server: 1, seq: u64::from(arg) },
                standalone: op % 14 == 1,
                header,
            },
            2 => Item::Begin,
            3..=5 => Item::Row(RowChange {
                op: Op::Insert,
                table: Arc::clone(&table),
                before: None,
                after: Some(vec![Value::Bytes(vec![0; usize::from(arg)])]),
                at: Default::default(),
            }),
            6 => Item::Commit { header },
            7 => Item::Rollback,
            8 => Item::Statement { db: "d".into(), sql: "ALTER TABLE t ADD c INT".into(), header },
            9 => Item::XaPrepare(XaPrepare { one_phase: arg % 3 == 0, xid }),
            10 => Item::Statement { db: String::new(), sql: format!("XA COMMIT {xid}"), header },
            11 => Item::Statement { db: String::new(), sql: format!("XA ROLLBACK {xid}"), header },
            12 => Item::Statement { db: String::new(), sql: format!("XA START {xid}"), header },
            _ => {
                assembler.reset(&mut check);
                continue;
            }
        };
        if assembler.push(item, &mut check).is_err() {
            // A stream error ends the session; the reader reconnects from the read position.
            assembler.reset(&mut check);
        }
    }
}

/// A sequence of `_schemas` records (each: u16 key length, u16 value length with 0xFFFF for null,
/// then the bytes) replayed into a registry store, then a registration planned and checked as
/// the embedded registry would. Anyone who can write that topic controls these bytes.
pub fn schemas_log(data: &[u8]) {
    use crate::registry::{compat, records, store::Store};
    let mut store = Store::new();
    let mut rest = data;
    while rest.len() >= 4 {
        let key_len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 4);
        let value_len = u16::from_le_bytes([rest[2], rest[3]]);
        let (key, after) = rest[4..].split_at(key_len);
        let (value, after) = match value_len {
            0xFFFF => (None, after),
            n => {
                let (v, a) = after.split_at(usize::from(n).min(after.len()));
                (Some(v), a)
            }
        };
        rest = after;
        if let Ok(record) = records::parse(key, value) {
            store.apply(record);
        }
    }
    for subject in store.subjects() {
        let history = store.history(&subject);
        let level = store.level(Some(&subject)).and_then(compat::Level::parse).unwrap_or(compat::Level::Backward);
        let _ = compat::check(level, r#"{"type":"record","name":"r","fields":[]}"#, &history);
        let _ = store.version(&subject, None);
    }
    let _ = store.plan("fuzz-value", r#""string""#);
}

/// An offsets-topic (or offset file) record: parsed, its position read for both flavors, its
/// snapshot progress inspected. Anyone who can write that topic controls these bytes.
pub fn offset_record(data: &[u8]) {
    use crate::committer::offsets::StoredOffset;
    let Ok(stored) = serde_json::from_slice::<StoredOffset>(data) else { return };
    for flavor in [crate::source::Flavor::MySql, crate::source::Flavor::MariaDb] {
        if let Ok(position) = stored.position(flavor) {
            let text = position.to_string();
            // What is stored again must read back the same.
            let again = StoredOffset { gtid_set: text.clone(), ..stored.clone() };
            let back = again.position(flavor).unwrap_or_else(|e| panic!("{text:?} does not read back: {e}"));
            assert_eq!(back.to_string(), text, "a position must survive its own text");
        }
    }
    if let Some(snapshot) = &stored.snapshot {
        let _ = snapshot.is_complete();
        // A resumed copy turns the stored key back into query parameters.
        for bound in snapshot.tables.values().filter_map(|t| t.after.as_ref()).flatten() {
            let _ = bound.to_sql();
        }
    }
}
