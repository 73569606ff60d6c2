//! Bodies of the control events: GTIDs (MySQL untagged and tagged, MariaDB), GTID lists, XID,
//! XA_PREPARE, QUERY (and MariaDB's compressed QUERY), ROTATE and HEARTBEAT.
//!
//! Each parser takes the event body as framed by [`super::EventReader`] (post-header and payload,
//! no checksum) and returns an owned value or a [`BinlogError`].

use super::cursor::Cursor;
use super::serialization::{varlen_bytes, varlen_i64, varlen_u64};
use super::{BinlogError, EventHeader, FormatDescription, event_type};
use crate::position::{MariaDbGtid, MySqlGtid, Uuid};
use std::borrow::Cow;

/// A MySQL GTID event (untagged, tagged or anonymous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MySqlGtidEvent {
    /// `None` for ANONYMOUS_GTID (gtid_mode was not ON when it was written).
    pub gtid: Option<MySqlGtid>,
    /// When the transaction committed on the server that wrote this binlog, µs since the epoch
    /// (MySQL 8.0.1+).
    pub immediate_commit_us: Option<u64>,
}

/// Parses GTID (33), ANONYMOUS_GTID (34) and GTID_TAGGED (42).
pub fn mysql_gtid(event_type: u8, body: &[u8]) -> Result<MySqlGtidEvent, BinlogError> {
    if event_type == event_type::GTID_TAGGED {
        return mysql_gtid_tagged(body);
    }
    let mut c = Cursor::new(body, "GTID event");
    c.skip(1)?; // commit flag
    let sid = c.bytes(16)?;
    let gno = c.u64()?;
    if c.remaining() >= 17 {
        c.skip(17)?; // logical clock (MySQL 5.7+): type, last_committed, sequence_number
    }
    let immediate_commit_us = if c.remaining() >= 7 { Some(c.uint(7)? & !(1 << 55)) } else { None };
    let gtid = if event_type == event_type::ANONYMOUS_GTID {
        None
    } else {
        if gno == 0 || gno > crate::position::mysql::MAX_GNO {
            return Err(BinlogError::malformed("GTID event", format!("transaction number {gno} out of range")));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(sid);
        Some(MySqlGtid { uuid: Uuid(uuid), tag: String::new(), gno })
    };
    Ok(MySqlGtidEvent { gtid, immediate_commit_us })
}

/// The serialization-library form (MySQL 8.3+ writes it for tagged GTIDs).
fn mysql_gtid_tagged(body: &[u8]) -> Result<MySqlGtidEvent, BinlogError> {
    const WHAT: &str = "tagged GTID event";
    let mut c = Cursor::new(body, WHAT);
    let version = c.u8()?;
    if version != 2 {
        return Err(BinlogError::Unsupported(format!("tagged GTID serialization version {version}")));
    }
    let payload_size = varlen_u64(&mut c)?;
    varlen_u64(&mut c)?; // last non-ignorable field id
    let fields_len = usize::try_from(payload_size)
        .ok()
        .and_then(|p| p.checked_sub(c.position()))
        .ok_or_else(|| BinlogError::malformed(WHAT, "payload size smaller than its envelope"))?;
    let mut f = Cursor::new(c.bytes(fields_len)?, WHAT);
    let (mut uuid, mut gno, mut tag, mut commit_us) = ([0u8; 16], None, String::new(), None);
    while !f.is_empty() {
        match varlen_u64(&mut f)? {
            1 => {
                for b in uuid.iter_mut() {
                    *b = u8::try_from(varlen_u64(&mut f)?)
                        .map_err(|_| BinlogError::malformed(WHAT, "UUID byte > 255"))?;
                }
            }
            2 => gno = Some(varlen_i64(&mut f)?),
            3 => {
                let raw = varlen_bytes(&mut f)?;
                tag = std::str::from_utf8(raw)
                    .map_err(|_| BinlogError::malformed(WHAT, "tag is not UTF-8"))?
                    .to_ascii_lowercase();
            }
            6 => commit_us = Some(varlen_u64(&mut f)?),
            // gtid flags, last_committed, sequence_number, original timestamp, lengths,
            // server versions, commit ticket: integers rowferry does not need.
            0 | 4 | 5 | 7..=11 => {
                varlen_u64(&mut f)?;
            }
            other => return Err(BinlogError::Unsupported(format!("tagged GTID field {other}"))),
        }
    }
    let gno =
        gno.filter(|&g| g > 0).ok_or_else(|| BinlogError::malformed(WHAT, "missing or invalid transaction number"))?;
    Ok(MySqlGtidEvent {
        gtid: Some(MySqlGtid { uuid: Uuid(uuid), tag, gno: gno as u64 }),
        immediate_commit_us: commit_us,
    })
}

/// A MariaDB GTID event (162): starts an event group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaDbGtidEvent {
    pub gtid: MariaDbGtid,
    /// A group of one statement with no COMMIT/XID (DDL, non-transactional).
    pub standalone: bool,
}

pub fn mariadb_gtid(header: &EventHeader, body: &[u8]) -> Result<MariaDbGtidEvent, BinlogError> {
    let mut c = Cursor::new(body, "MariaDB GTID event");
    let seq = c.u64()?;
    let domain = c.u32()?;
    let flags = c.u8()?;
    const FL_STANDALONE: u8 = 1;
    Ok(MariaDbGtidEvent {
        gtid: MariaDbGtid { domain, server: header.server_id, seq },
        standalone: flags & FL_STANDALONE != 0,
    })
}

/// MariaDB GTID_LIST (163): the binlog state at the start of a file.
pub fn mariadb_gtid_list(body: &[u8]) -> Result<Vec<MariaDbGtid>, BinlogError> {
    let mut c = Cursor::new(body, "MariaDB GTID_LIST event");
    let count = c.u32()? & ((1 << 28) - 1);
    if count as usize > c.remaining() / 16 {
        return Err(BinlogError::malformed("MariaDB GTID_LIST event", format!("{count} entries do not fit")));
    }
    (0..count).map(|_| Ok(MariaDbGtid { domain: c.u32()?, server: c.u32()?, seq: c.u64()? })).collect()
}

/// ROTATE (4): the next binlog file and the position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotate {
    pub position: u64,
    pub next_file: String,
}

/// Parses ROTATE.
pub fn rotate(body: &[u8]) -> Result<Rotate, BinlogError> {
    let mut c = Cursor::new(body, "ROTATE event");
    let position = c.u64()?;
    let name = c.take_rest();
    let next_file = String::from_utf8(name.to_vec())
        .map_err(|_| BinlogError::malformed("ROTATE event", "file name is not UTF-8"))?;
    Ok(Rotate { position, next_file })
}

/// XID (16): the commit of an InnoDB transaction.
pub fn xid(body: &[u8]) -> Result<u64, BinlogError> {
    Cursor::new(body, "XID event").u64()
}

/// An XA transaction's identifier, as the server writes it in the binlog: `X'gtrid',X'bqual',formatID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xid {
    pub format_id: i64,
    pub gtrid: Vec<u8>,
    pub bqual: Vec<u8>,
}

impl std::fmt::Display for Xid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        write!(f, "X'{}',X'{}',{}", hex(&self.gtrid), hex(&self.bqual), self.format_id)
    }
}

/// Longest gtrid or bqual the XA standard (and both servers) allow.
const XID_PART_MAX: usize = 64;

impl Xid {
    /// Parses the identifier the server writes after `XA COMMIT` / `XA ROLLBACK` in a QUERY event
    /// (`X'6131',X'',1`; hex digits in either case, spaces around the commas tolerated). `None`
    /// when the text has another shape.
    pub fn parse_sql(text: &str) -> Option<Xid> {
        let mut parts = text.trim().trim_end_matches(';').split(',').map(str::trim);
        let hex = |part: &str| -> Option<Vec<u8>> {
            let digits = part.strip_prefix(['X', 'x'])?.strip_prefix('\'')?.strip_suffix('\'')?;
            if digits.len() % 2 != 0 || digits.len() > 2 * XID_PART_MAX {
                return None;
            }
            (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok()).collect()
        };
        let gtrid = hex(parts.next()?)?;
        let bqual = hex(parts.next()?)?;
        let format_id = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Xid { format_id, gtrid, bqual })
    }
}

/// XA_PREPARE (38, MySQL and MariaDB): the end of an XA transaction's group. `one_phase`: it was
/// `XA COMMIT … ONE PHASE` and is committed here; otherwise it is prepared, and a later group's
/// `XA COMMIT` or `XA ROLLBACK` decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XaPrepare {
    pub one_phase: bool,
    pub xid: Xid,
}

/// Parses XA_PREPARE: one_phase (1), formatID (4), gtrid length (4), bqual length (4), data.
pub fn xa_prepare(body: &[u8]) -> Result<XaPrepare, BinlogError> {
    const WHAT: &str = "XA_PREPARE event";
    let mut c = Cursor::new(body, WHAT);
    let one_phase = c.u8()? != 0;
    let format_id = i64::from(c.u32()? as i32);
    let gtrid_len = c.u32()? as usize;
    let bqual_len = c.u32()? as usize;
    if gtrid_len > XID_PART_MAX || bqual_len > XID_PART_MAX {
        return Err(BinlogError::malformed(WHAT, format!("XID part lengths {gtrid_len}/{bqual_len} exceed 64")));
    }
    let gtrid = c.bytes(gtrid_len)?.to_vec();
    let bqual = c.bytes(bqual_len)?.to_vec();
    Ok(XaPrepare { one_phase, xid: Xid { format_id, gtrid, bqual } })
}

/// A QUERY event: BEGIN/COMMIT/ROLLBACK markers and DDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    /// The session that ran the statement.
    pub thread_id: u32,
    pub db: Cow<'a, str>,
    pub sql: Cow<'a, str>,
}

/// Parses QUERY (2) and MariaDB's QUERY_COMPRESSED (165).
pub fn query<'a>(event_type: u8, body: &'a [u8], fde: &FormatDescription) -> Result<Query<'a>, BinlogError> {
    const WHAT: &str = "QUERY event";
    let post = usize::from(fde.post_header_len(event_type::QUERY).unwrap_or(13));
    let mut c = Cursor::new(body, WHAT);
    let thread_id = c.u32()?;
    c.skip(4)?; // exec time
    let db_len = usize::from(c.u8()?);
    c.skip(2)?; // error code
    let status_len = if post >= 13 { usize::from(c.u16()?) } else { 0 };
    c.skip(post.saturating_sub(13))?;
    c.skip(status_len)?;
    let db = c.bytes(db_len)?;
    c.skip(1)?; // NUL
    let raw = c.take_rest();
    let sql = if event_type == event_type::MARIADB_QUERY_COMPRESSED {
        Cow::Owned(String::from_utf8_lossy(&super::payload::mariadb_uncompress(raw, WHAT)?).into_owned())
    } else {
        String::from_utf8_lossy(raw)
    };
    Ok(Query { thread_id, db: String::from_utf8_lossy(db), sql })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xa_prepare_and_its_xid_in_sql() {
        // As MariaDB 10.11 wrote it for XA PREPARE 'a1'.
        let body = [0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'a', b'1'];
        let p = xa_prepare(&body).expect("xa prepare");
        assert!(!p.one_phase);
        assert_eq!(p.xid.to_string(), "X'6131',X'',1");
        assert_eq!(Xid::parse_sql("X'6131',X'',1"), Some(p.xid.clone()));
        assert_eq!(
            Xid::parse_sql(" x'6A32' , X'71' ,7 "),
            Some(Xid { format_id: 7, gtrid: b"j2".to_vec(), bqual: b"q".to_vec() })
        );
        for bad in ["'a1'", "X'613',X'',1", "X'61',X'',one", "X'61',X''", "X'61',X'',1,2"] {
            assert_eq!(Xid::parse_sql(bad), None, "{bad}");
        }
        assert!(xa_prepare(&body[..14]).is_err(), "data cut short");
        let mut lying = body.to_vec();
        lying[5] = 200;
        assert!(xa_prepare(&lying).is_err(), "a gtrid longer than 64 bytes");
    }

    #[test]
    fn mariadb_gtid_and_list() {
        let header = EventHeader { timestamp: 0, event_type: 162, server_id: 7, event_size: 0, log_pos: 0, flags: 0 };
        let mut body = 42u64.to_le_bytes().to_vec();
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(1);
        let g = mariadb_gtid(&header, &body).expect("gtid");
        assert_eq!(g.gtid.to_string(), "3-7-42");
        assert!(g.standalone);
        assert!(mariadb_gtid(&header, &body[..5]).is_err());

        let mut list = 1u32.to_le_bytes().to_vec();
        list.extend_from_slice(&0u32.to_le_bytes());
        list.extend_from_slice(&1u32.to_le_bytes());
        list.extend_from_slice(&9u64.to_le_bytes());
        assert_eq!(mariadb_gtid_list(&list).expect("list")[0].to_string(), "0-1-9");
        let mut lying = 1000u32.to_le_bytes().to_vec();
        lying.extend_from_slice(&[0; 16]);
        assert!(mariadb_gtid_list(&lying).is_err());
    }

    #[test]
    fn rotate() {
        let mut body = 4u64.to_le_bytes().to_vec();
        body.extend_from_slice(b"binlog.000002");
        assert_eq!(super::rotate(&body).expect("rotate"), Rotate { position: 4, next_file: "binlog.000002".into() });
        assert!(super::rotate(&body[..7]).is_err());
    }
}
