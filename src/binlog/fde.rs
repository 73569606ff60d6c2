//! FORMAT_DESCRIPTION_EVENT: the layout of the events that follow in this binlog file.
//!
//! Body: binlog version (2), server version (50, NUL padded), create timestamp (4), common header
//! length (1), one post-header length per event type, then — from MySQL 5.6.1 / every MariaDB —
//! the checksum algorithm (1) (and the FDE's own checksum, which the framer removes).

use super::cursor::Cursor;
use super::{BinlogError, HEADER_LEN};

/// The checksum algorithm of the events that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlg {
    Off,
    Crc32,
}

/// What an FDE says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatDescription {
    pub binlog_version: u16,
    pub server_version: String,
    /// Post-header length per event type, indexed by `type - 1`.
    pub post_header_lens: Vec<u8>,
    /// `None` when the server predates checksums (no algorithm byte).
    pub checksum_alg: Option<ChecksumAlg>,
}

impl Default for FormatDescription {
    fn default() -> Self {
        FormatDescription {
            binlog_version: 4,
            server_version: String::new(),
            post_header_lens: Vec::new(),
            checksum_alg: None,
        }
    }
}

/// The first server versions whose FDE carries the checksum algorithm byte.
fn has_checksum_byte(version: &str) -> bool {
    let mut parts = version.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    v >= (5, 6, 1)
}

impl FormatDescription {
    /// Parses the FDE body (everything after the common header, including any checksum).
    pub fn parse(body: &[u8]) -> Result<FormatDescription, BinlogError> {
        let mut c = Cursor::new(body, "FORMAT_DESCRIPTION event");
        let binlog_version = c.u16()?;
        if binlog_version != 4 {
            return Err(BinlogError::Unsupported(format!(
                "binlog format version {binlog_version} (only v4, MySQL 5.0+)"
            )));
        }
        let raw_version = c.bytes(50)?;
        let end = raw_version.iter().position(|&b| b == 0).unwrap_or(raw_version.len());
        let server_version = String::from_utf8_lossy(&raw_version[..end]).into_owned();
        c.skip(4)?;
        let header_len = c.u8()?;
        if usize::from(header_len) != HEADER_LEN {
            return Err(BinlogError::Unsupported(format!("common header length {header_len} (expected {HEADER_LEN})")));
        }
        let rest = c.take_rest();
        let (post_header_lens, checksum_alg) = if has_checksum_byte(&server_version) {
            let n = rest
                .len()
                .checked_sub(5)
                .ok_or_else(|| BinlogError::malformed("FORMAT_DESCRIPTION event", "too short"))?;
            let alg = match rest[n] {
                0 => ChecksumAlg::Off,
                1 => ChecksumAlg::Crc32,
                other => return Err(BinlogError::Unsupported(format!("binlog checksum algorithm {other}"))),
            };
            (rest[..n].to_vec(), Some(alg))
        } else {
            (rest.to_vec(), None)
        };
        Ok(FormatDescription { binlog_version, server_version, post_header_lens, checksum_alg })
    }

    /// Post-header length of `event_type`, if the FDE lists it.
    pub fn post_header_len(&self, event_type: u8) -> Option<u8> {
        usize::from(event_type).checked_sub(1).and_then(|i| self.post_header_lens.get(i)).copied()
    }
}
