//! The binlog as bytes: a pure codec, no IO, no tokio.
//!
//! An event is a 19-byte header (timestamp, type, server_id, size, next position, flags), a body
//! whose layout depends on the type and on the FORMAT_DESCRIPTION event (FDE) that opened the
//! file, and — when `binlog_checksum=CRC32` — a 4-byte CRC32 of everything before it.
//! [`EventReader`] tracks the FDE, verifies checksums and hands out [`RawEvent`]s; the per-event
//! modules parse the bodies rowferry needs. Anything that does not fit (truncated, corrupt, an
//! unknown layout) is a [`BinlogError`] — these functions are fuzzed and never panic.
//!
//! MySQL and MariaDB share the framing; MariaDB adds its own event types (GTID 162, GTID_LIST
//! 163, compressed QUERY/ROWS 165–171), which are handled here rather than silently dropped.
//! Reference: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_replication_binlog_event.html>
//! and MariaDB's `sql/log_event.h`.

pub mod cursor;
pub mod events;
pub mod fde;
pub mod file;
pub mod payload;
pub mod serialization;

pub use fde::{ChecksumAlg, FormatDescription};

use crate::error::ErrorClass;
use cursor::Cursor;

/// Bytes in a v4 event header.
pub const HEADER_LEN: usize = 19;
/// Bytes of the CRC32 checksum at the end of an event.
pub const CHECKSUM_LEN: usize = 4;

/// Event type codes rowferry handles or recognises.
pub mod event_type {
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    pub const INTVAR: u8 = 5;
    pub const RAND: u8 = 13;
    pub const USER_VAR: u8 = 14;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const INCIDENT: u8 = 26;
    pub const HEARTBEAT: u8 = 27;
    pub const IGNORABLE: u8 = 28;
    pub const ROWS_QUERY: u8 = 29;
    pub const WRITE_ROWS_V2: u8 = 30;
    pub const UPDATE_ROWS_V2: u8 = 31;
    pub const DELETE_ROWS_V2: u8 = 32;
    pub const GTID: u8 = 33;
    pub const ANONYMOUS_GTID: u8 = 34;
    pub const PREVIOUS_GTIDS: u8 = 35;
    pub const TRANSACTION_CONTEXT: u8 = 36;
    pub const VIEW_CHANGE: u8 = 37;
    pub const XA_PREPARE: u8 = 38;
    pub const PARTIAL_UPDATE_ROWS: u8 = 39;
    pub const TRANSACTION_PAYLOAD: u8 = 40;
    pub const HEARTBEAT_V2: u8 = 41;
    pub const GTID_TAGGED: u8 = 42;
    pub const MARIADB_ANNOTATE_ROWS: u8 = 160;
    pub const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
    pub const MARIADB_GTID: u8 = 162;
    pub const MARIADB_GTID_LIST: u8 = 163;
    pub const MARIADB_START_ENCRYPTION: u8 = 164;
    pub const MARIADB_QUERY_COMPRESSED: u8 = 165;
    pub const MARIADB_WRITE_ROWS_COMPRESSED_V1: u8 = 166;
    pub const MARIADB_UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
    pub const MARIADB_DELETE_ROWS_COMPRESSED_V1: u8 = 168;
    pub const MARIADB_WRITE_ROWS_COMPRESSED: u8 = 169;
    pub const MARIADB_UPDATE_ROWS_COMPRESSED: u8 = 170;
    pub const MARIADB_DELETE_ROWS_COMPRESSED: u8 = 171;
}

/// A problem with binlog bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinlogError {
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error(
        "checksum mismatch in event type {event_type} ending at position {log_pos}: computed {computed:#010x}, stored {stored:#010x} (corrupted binlog or network)"
    )]
    Checksum { event_type: u8, log_pos: u32, computed: u32, stored: u32 },
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl BinlogError {
    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        BinlogError::Malformed { what, detail: detail.into() }
    }

    /// A checksum mismatch may be a network fault, worth one reconnect; bytes that are malformed
    /// at the source will be malformed again.
    pub fn class(&self) -> ErrorClass {
        match self {
            BinlogError::Checksum { .. } => ErrorClass::Retryable,
            BinlogError::Malformed { .. } | BinlogError::Unsupported(_) => ErrorClass::Fatal,
        }
    }
}

/// The common 19-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    pub timestamp: u32,
    pub event_type: u8,
    pub server_id: u32,
    pub event_size: u32,
    /// Position of the next event in the binlog file (0 for artificial and embedded events).
    pub log_pos: u32,
    pub flags: u16,
}

impl EventHeader {
    pub fn parse(bytes: &[u8]) -> Result<EventHeader, BinlogError> {
        let mut c = Cursor::new(bytes, "event header");
        Ok(EventHeader {
            timestamp: c.u32()?,
            event_type: c.u8()?,
            server_id: c.u32()?,
            event_size: c.u32()?,
            log_pos: c.u32()?,
            flags: c.u16()?,
        })
    }
}

/// One framed event: header and body, the checksum already verified and removed.
#[derive(Debug, Clone, Copy)]
pub struct RawEvent<'a> {
    pub header: EventHeader,
    /// Post-header and payload (no checksum).
    pub body: &'a [u8],
}

/// Frames events: knows the current FDE (layout and checksum algorithm).
#[derive(Debug, Clone)]
pub struct EventReader {
    fde: FormatDescription,
    /// Whether an FDE has been read; before it, the checksum algorithm is unknown.
    seen_fde: bool,
    /// Whether events carry a checksum; false for events embedded in a TRANSACTION_PAYLOAD.
    verify: bool,
}

impl Default for EventReader {
    fn default() -> Self {
        Self::new()
    }
}

impl EventReader {
    /// Before the first FDE: v4 layout; checksums are recognised once the FDE says so.
    pub fn new() -> Self {
        EventReader { fde: FormatDescription::default(), seen_fde: false, verify: true }
    }

    /// A reader for the events embedded in a TRANSACTION_PAYLOAD: same layout, no checksums.
    pub fn embedded(&self) -> Self {
        EventReader { fde: self.fde.clone(), seen_fde: true, verify: false }
    }

    pub fn fde(&self) -> &FormatDescription {
        &self.fde
    }

    /// Frames one event from `bytes` (exactly one event: header, body, checksum) and, when it is
    /// an FDE, adopts it for the events that follow.
    pub fn read<'a>(&mut self, bytes: &'a [u8]) -> Result<RawEvent<'a>, BinlogError> {
        let header = EventHeader::parse(bytes)?;
        if header.event_size as usize != bytes.len() {
            return Err(BinlogError::malformed(
                "event",
                format!("header says {} bytes, the event has {} (truncated?)", header.event_size, bytes.len()),
            ));
        }
        if header.event_type == event_type::FORMAT_DESCRIPTION {
            let fde = FormatDescription::parse(&bytes[HEADER_LEN..])?;
            let end = bytes.len() - if fde.checksum_alg.is_some() { CHECKSUM_LEN } else { 0 };
            if fde.checksum_alg == Some(ChecksumAlg::Crc32) && self.verify {
                verify_checksum(&header, bytes, true)?;
            }
            self.fde = fde;
            self.seen_fde = true;
            return Ok(RawEvent { header, body: &bytes[HEADER_LEN..end] });
        }
        // Before the first FDE (the artificial ROTATE a server sends first) the algorithm is not
        // known yet: a trailing CRC32 that matches is a checksum.
        let checksummed = self.verify
            && match self.fde.checksum_alg {
                Some(alg) => alg == ChecksumAlg::Crc32,
                None => !self.seen_fde && verify_checksum(&header, bytes, false).is_ok(),
            };
        let end = bytes.len() - if checksummed { CHECKSUM_LEN } else { 0 };
        if end < HEADER_LEN {
            return Err(BinlogError::malformed("event", format!("{} bytes is shorter than a header", bytes.len())));
        }
        if checksummed {
            verify_checksum(&header, bytes, false)?;
        }
        Ok(RawEvent { header, body: &bytes[HEADER_LEN..end] })
    }
}

/// Verifies the trailing CRC32. For an FDE the server computed it with the "binlog in use" flag
/// cleared, so it is cleared here too.
fn verify_checksum(header: &EventHeader, bytes: &[u8], is_fde: bool) -> Result<(), BinlogError> {
    let split = bytes.len().checked_sub(CHECKSUM_LEN).filter(|&s| s >= HEADER_LEN).ok_or_else(|| {
        BinlogError::malformed("event", format!("{} bytes cannot hold a header and a checksum", bytes.len()))
    })?;
    let (data, stored) = bytes.split_at(split);
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    let mut hasher = crc32fast::Hasher::new();
    const IN_USE: u16 = 0x1;
    if is_fde && header.flags & IN_USE != 0 {
        let flags = (header.flags & !IN_USE).to_le_bytes();
        hasher.update(&data[..17]);
        hasher.update(&flags);
        hasher.update(&data[19..]);
    } else {
        hasher.update(data);
    }
    let computed = hasher.finalize();
    if computed != stored {
        return Err(BinlogError::Checksum { event_type: header.event_type, log_pos: header.log_pos, computed, stored });
    }
    Ok(())
}
