//! MySQL GTID sets: `source_uuid[:tag]:interval[:interval...]`, groups separated by commas.
//!
//! Text form (as `@@gtid_executed` prints it, and as rowferry stores it): per source UUID, the
//! untagged intervals first, then each tag (sorted) followed by its intervals:
//! `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,3e11...:1-3:blue:1-4`. Parsing also accepts
//! upper-case UUIDs, whitespace/newlines after commas (MySQL prints `,\n`), unsorted and
//! overlapping intervals, and a tag that switches back and forth; printing is canonical, so
//! `parse(print(s)) == s` and equal sets print equally.
//!
//! Invariant: each (uuid, tag) maps to a sorted list of disjoint, non-adjacent, inclusive
//! intervals `[start, end]` with `1 <= start <= end < 2^63`; empty lists are not stored.

use super::PositionError;
use std::collections::BTreeMap;
use std::fmt;

/// Largest transaction number MySQL allows (GNO_END - 1).
pub const MAX_GNO: u64 = (1 << 63) - 2;

/// A server UUID (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses `8-4-4-4-12` hex digits (either case).
    pub fn parse(text: &str) -> Result<Uuid, PositionError> {
        let bad = |p: &str| PositionError::malformed("UUID", text, p);
        let groups: Vec<&str> = text.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return Err(bad("expected 8-4-4-4-12 hex digits"));
        }
        let hex: String = groups.concat();
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("not hexadecimal"));
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad("not hexadecimal"))?;
        }
        Ok(Uuid(bytes))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One MySQL transaction id: `uuid[:tag]:gno`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MySqlGtid {
    pub uuid: Uuid,
    /// Lower-case tag (MySQL 8.3+), empty when untagged.
    pub tag: String,
    pub gno: u64,
}

impl fmt::Display for MySqlGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tag.is_empty() {
            write!(f, "{}:{}", self.uuid, self.gno)
        } else {
            write!(f, "{}:{}:{}", self.uuid, self.tag, self.gno)
        }
    }
}

/// Validates and normalises a tag: `[a-z_][a-z0-9_]{0,31}`, case-insensitive.
fn parse_tag(text: &str) -> Result<String, PositionError> {
    let tag = text.to_ascii_lowercase();
    let mut chars = tag.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !first_ok || tag.len() > 32 || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(PositionError::malformed(
            "tag",
            text,
            "a tag is a letter or '_' then up to 31 letters, digits or '_'",
        ));
    }
    Ok(tag)
}

/// A set of MySQL GTIDs; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MySqlGtidSet {
    groups: BTreeMap<(Uuid, String), Vec<(u64, u64)>>,
}

impl MySqlGtidSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Parses the text form; empty text is the empty set.
    pub fn parse(text: &str) -> Result<MySqlGtidSet, PositionError> {
        let mut set = MySqlGtidSet::new();
        for group in text.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let mut parts = group.split(':');
            let uuid = Uuid::parse(parts.next().unwrap_or_default().trim())?;
            let mut tag = String::new();
            let mut any = false;
            for part in parts {
                if part.starts_with(|c: char| c.is_ascii_digit()) {
                    let (start, end) = parse_interval(part, group)?;
                    set.insert_interval(uuid, &tag, start, end);
                    any = true;
                } else {
                    tag = parse_tag(part)?;
                }
            }
            if !any {
                return Err(PositionError::malformed("GTID set", group, "a UUID needs at least one interval"));
            }
        }
        Ok(set)
    }

    /// Each (uuid, tag) group with its sorted, disjoint, inclusive intervals.
    pub fn groups(&self) -> impl Iterator<Item = (&Uuid, &str, &[(u64, u64)])> {
        self.groups.iter().map(|((uuid, tag), iv)| (uuid, tag.as_str(), iv.as_slice()))
    }

    /// Adds one transaction.
    pub fn add(&mut self, gtid: &MySqlGtid) {
        self.insert_interval(gtid.uuid, &gtid.tag, gtid.gno, gtid.gno);
    }

    pub fn contains(&self, gtid: &MySqlGtid) -> bool {
        self.groups.get(&(gtid.uuid, gtid.tag.clone())).is_some_and(|iv| {
            let i = iv.partition_point(|&(_, end)| end < gtid.gno);
            iv.get(i).is_some_and(|&(start, _)| start <= gtid.gno)
        })
    }

    /// Adds every transaction of `other`.
    pub fn union(&mut self, other: &MySqlGtidSet) {
        for ((uuid, tag), intervals) in &other.groups {
            for &(start, end) in intervals {
                self.insert_interval(*uuid, tag, start, end);
            }
        }
    }

    /// Whether every transaction of `self` is in `other`.
    pub fn is_subset(&self, other: &MySqlGtidSet) -> bool {
        self.groups.iter().all(|(key, mine)| {
            let Some(theirs) = other.groups.get(key) else { return false };
            mine.iter().all(|&(start, end)| {
                let i = theirs.partition_point(|&(_, e)| e < start);
                theirs.get(i).is_some_and(|&(s, e)| s <= start && end <= e)
            })
        })
    }

    /// The transactions of `self` that are not in `other` (for messages like "purged: ...").
    pub fn difference(&self, other: &MySqlGtidSet) -> MySqlGtidSet {
        let mut out = MySqlGtidSet::new();
        for ((uuid, tag), mine) in &self.groups {
            let theirs = other.groups.get(&(*uuid, tag.clone())).map(Vec::as_slice).unwrap_or(&[]);
            for &(start, end) in mine {
                let mut next = start;
                for &(s, e) in theirs.iter().skip_while(|&&(_, e)| e < start) {
                    if s > end {
                        break;
                    }
                    if s > next {
                        out.insert_interval(*uuid, tag, next, s - 1);
                    }
                    next = e.saturating_add(1);
                    if next > end {
                        break;
                    }
                }
                if next <= end {
                    out.insert_interval(*uuid, tag, next, end);
                }
            }
        }
        out
    }

    fn insert_interval(&mut self, uuid: Uuid, tag: &str, start: u64, end: u64) {
        let intervals = self.groups.entry((uuid, tag.to_string())).or_default();
        // First interval that overlaps or touches [start, end], and the first one past it.
        let lo = intervals.partition_point(|&(_, e)| e.saturating_add(1) < start);
        let hi = intervals.partition_point(|&(s, _)| s <= end.saturating_add(1));
        let merged_start = intervals.get(lo).filter(|_| lo < hi).map_or(start, |&(s, _)| s.min(start));
        let merged_end = if lo < hi { intervals[hi - 1].1.max(end) } else { end };
        intervals.splice(lo..hi, [(merged_start, merged_end)]);
    }
}

fn parse_interval(part: &str, group: &str) -> Result<(u64, u64), PositionError> {
    let bad = |p: &str| PositionError::malformed("GTID set", group, format!("interval {part:?}: {p}"));
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad("not a number"));
    let (start, end) = match part.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => (number(part)?, number(part)?),
    };
    if start == 0 {
        return Err(bad("transaction numbers start at 1"));
    }
    if end < start {
        return Err(bad("end is before start"));
    }
    if end > MAX_GNO {
        return Err(bad("larger than 2^63-2"));
    }
    Ok((start, end))
}

impl fmt::Display for MySqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut current: Option<Uuid> = None;
        for ((uuid, tag), intervals) in &self.groups {
            if current != Some(*uuid) {
                if current.is_some() {
                    f.write_str(",")?;
                }
                write!(f, "{uuid}")?;
                current = Some(*uuid);
            }
            if !tag.is_empty() {
                write!(f, ":{tag}")?;
            }
            for &(start, end) in intervals {
                if start == end { write!(f, ":{start}")? } else { write!(f, ":{start}-{end}")? }
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for MySqlGtidSet {
    type Err = PositionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests;
