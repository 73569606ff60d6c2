//! A bounds-checked reader over event bytes: every read returns `Err` instead of panicking when
//! the bytes run out, so a truncated or malicious event is an error, never a crash.

use super::BinlogError;

/// Reads little-endian fields from a byte slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Which structure is being read, for error messages.
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Cursor { buf, pos: 0, what }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn short(&self, need: usize) -> BinlogError {
        BinlogError::Malformed {
            what: self.what,
            detail: format!("needs {need} more bytes at offset {}, only {} left", self.pos, self.remaining()),
        }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], BinlogError> {
        if n > self.remaining() {
            return Err(self.short(n));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), BinlogError> {
        self.bytes(n).map(|_| ())
    }

    pub fn take_rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub fn u8(&mut self) -> Result<u8, BinlogError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, BinlogError> {
        Ok(self.uint(2)? as u16)
    }

    pub fn u24(&mut self) -> Result<u32, BinlogError> {
        Ok(self.uint(3)? as u32)
    }

    pub fn u32(&mut self) -> Result<u32, BinlogError> {
        Ok(self.uint(4)? as u32)
    }

    pub fn u48(&mut self) -> Result<u64, BinlogError> {
        self.uint(6)
    }

    pub fn u64(&mut self) -> Result<u64, BinlogError> {
        self.uint(8)
    }

    /// A little-endian unsigned integer of `n` ≤ 8 bytes.
    pub fn uint(&mut self, n: usize) -> Result<u64, BinlogError> {
        let b = self.bytes(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// A big-endian unsigned integer of `n` ≤ 8 bytes (temporal and decimal types use these).
    pub fn uint_be(&mut self, n: usize) -> Result<u64, BinlogError> {
        let b = self.bytes(n)?;
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// MySQL's length-encoded integer.
    pub fn lenenc(&mut self) -> Result<u64, BinlogError> {
        match self.u8()? {
            n @ 0..=0xfa => Ok(u64::from(n)),
            0xfc => self.uint(2),
            0xfd => self.uint(3),
            0xfe => self.uint(8),
            other => Err(BinlogError::Malformed {
                what: self.what,
                detail: format!("bad length-encoded integer prefix {other:#x}"),
            }),
        }
    }

    /// A length-encoded integer used as a length: it must fit what is left.
    pub fn lenenc_len(&mut self) -> Result<usize, BinlogError> {
        let n = self.lenenc()?;
        usize::try_from(n).ok().filter(|&n| n <= self.remaining()).ok_or_else(|| self.short(n as usize))
    }

    /// Length-encoded bytes.
    pub fn lenenc_bytes(&mut self) -> Result<&'a [u8], BinlogError> {
        let n = self.lenenc_len()?;
        self.bytes(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_refuses_to_overrun() {
        let mut c = Cursor::new(&[1, 2, 3, 0xfc, 0x10, 0x00, 9], "test");
        assert_eq!(c.u16().ok(), Some(0x0201));
        assert_eq!(c.u8().ok(), Some(3));
        assert_eq!(c.lenenc().ok(), Some(16));
        assert!(c.u16().is_err());
        assert_eq!(c.u8().ok(), Some(9));
        assert!(c.u8().is_err());
        let mut c = Cursor::new(&[0xfb], "test");
        assert!(c.lenenc().is_err());
        let mut c = Cursor::new(&[5, 1, 2], "test");
        assert!(c.lenenc_bytes().is_err());
        assert_eq!(Cursor::new(&[1, 2, 3], "t").uint_be(3).ok(), Some(0x010203));
    }
}
