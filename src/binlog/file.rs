//! Binlog files on disk: the 4-byte magic `\xfebin`, then events back to back. Used for golden
//! tests, the fuzz target and the decode benchmark; the live stream frames events by packet.

use super::{BinlogError, HEADER_LEN};

pub const MAGIC: &[u8; 4] = b"\xfebin";

/// Splits a binlog file into event byte slices. A truncated last event is an error.
#[derive(Debug, Clone)]
pub struct FileEvents<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> FileEvents<'a> {
    pub fn new(file: &'a [u8]) -> Result<Self, BinlogError> {
        match file.strip_prefix(MAGIC) {
            Some(rest) => Ok(FileEvents { rest, offset: MAGIC.len() }),
            None => Err(BinlogError::malformed("binlog file", "does not start with the binlog magic \\xfebin")),
        }
    }
}

impl<'a> Iterator for FileEvents<'a> {
    /// (offset in the file, event bytes)
    type Item = Result<(usize, &'a [u8]), BinlogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < HEADER_LEN {
            let err = BinlogError::malformed(
                "binlog file",
                format!("{} trailing bytes at offset {}", self.rest.len(), self.offset),
            );
            self.rest = &[];
            return Some(Err(err));
        }
        let size = u32::from_le_bytes([self.rest[9], self.rest[10], self.rest[11], self.rest[12]]) as usize;
        if size < HEADER_LEN || size > self.rest.len() {
            let err = BinlogError::malformed(
                "binlog file",
                format!(
                    "event at offset {} claims {size} bytes, {} remain (truncated or corrupt)",
                    self.offset,
                    self.rest.len()
                ),
            );
            self.rest = &[];
            return Some(Err(err));
        }
        let (event, rest) = self.rest.split_at(size);
        let offset = self.offset;
        self.rest = rest;
        self.offset += size;
        Some(Ok((offset, event)))
    }
}
