//! MariaDB GTID positions: `domain-server-seq`, one per replication domain, comma-separated.
//!
//! A MariaDB GTID names a transaction by its domain, the server that wrote it and a sequence
//! number. The *position* (`@@gtid_binlog_pos`, `@slave_connect_state`) keeps the last GTID of each
//! domain; with gtid_strict_mode, sequence numbers grow within a domain, so a transaction is
//! "contained" when its domain's position has a sequence number at least as large.
//!
//! Invariant: at most one entry per domain. Text form is canonical (domains ascending), so
//! `parse(print(p)) == p`.
//!
//! A connect state that omits a domain makes MariaDB stream that domain from its oldest binlog
//! (INFRA.md); rowferry's position starts from the server's whole `gtid_binlog_pos` and gains every
//! domain it reads, and the reader refuses a position the server's history does not contain.

use super::PositionError;
use std::collections::BTreeMap;
use std::fmt;

/// One MariaDB transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MariaDbGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl MariaDbGtid {
    pub fn parse(text: &str) -> Result<MariaDbGtid, PositionError> {
        let bad = |p: &str| PositionError::malformed("MariaDB GTID", text, p);
        let mut parts = text.trim().splitn(3, '-');
        let mut next =
            |what: &str| parts.next().ok_or_else(|| bad(&format!("missing {what}; expected domain-server-seq")));
        let domain = next("domain")?.parse().map_err(|_| bad("domain is not a 32-bit number"))?;
        let server = next("server")?.parse().map_err(|_| bad("server_id is not a 32-bit number"))?;
        let seq = next("seq")?.parse().map_err(|_| bad("sequence is not a 64-bit number"))?;
        Ok(MariaDbGtid { domain, server, seq })
    }
}

impl fmt::Display for MariaDbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// The last GTID of each domain; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MariaDbPosition {
    domains: BTreeMap<u32, (u32, u64)>,
}

impl MariaDbPosition {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Parses `d-s-n,d-s-n`; empty text is the empty position. A domain listed twice is an error
    /// (the server never prints that; it would make the position ambiguous).
    pub fn parse(text: &str) -> Result<MariaDbPosition, PositionError> {
        let mut pos = MariaDbPosition::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g = MariaDbGtid::parse(part)?;
            if pos.domains.insert(g.domain, (g.server, g.seq)).is_some() {
                return Err(PositionError::malformed(
                    "MariaDB GTID position",
                    text,
                    format!("domain {} appears twice", g.domain),
                ));
            }
        }
        Ok(pos)
    }

    /// Records `gtid` as the last transaction of its domain.
    pub fn add(&mut self, gtid: &MariaDbGtid) {
        self.domains.insert(gtid.domain, (gtid.server, gtid.seq));
    }

    /// Whether `gtid` is at or before this position in its domain (by sequence number: with
    /// gtid_strict_mode they grow within a domain whichever server writes; see
    /// [`MariaDbPosition::diverged_from`] for the one case the server tells apart).
    pub fn contains(&self, gtid: &MariaDbGtid) -> bool {
        self.domains.get(&gtid.domain).is_some_and(|&(_, seq)| gtid.seq <= seq)
    }

    /// The GTIDs of this position that `other` has at the same sequence number from another
    /// server: another transaction under the same number (histories that diverged, e.g. a
    /// failover without gtid_strict_mode). Sequence-number comparison alone would take them as
    /// the same.
    pub fn diverged_from(&self, other: &MariaDbPosition) -> Vec<MariaDbGtid> {
        self.gtids()
            .filter(|g| other.domains.get(&g.domain).is_some_and(|&(server, seq)| seq == g.seq && server != g.server))
            .collect()
    }

    /// The later of the two positions, domain by domain.
    pub fn union(&mut self, other: &MariaDbPosition) {
        for (&domain, &(server, seq)) in &other.domains {
            let entry = self.domains.entry(domain).or_insert((server, seq));
            if seq > entry.1 {
                *entry = (server, seq);
            }
        }
    }

    /// Whether every domain of `self` is in `other` at the same or a later sequence number.
    pub fn is_subset(&self, other: &MariaDbPosition) -> bool {
        self.domains.iter().all(|(d, &(_, seq))| other.domains.get(d).is_some_and(|&(_, s)| seq <= s))
    }

    /// The last GTID of each domain.
    pub fn gtids(&self) -> impl Iterator<Item = MariaDbGtid> + '_ {
        self.domains.iter().map(|(&domain, &(server, seq))| MariaDbGtid { domain, server, seq })
    }
}

impl fmt::Display for MariaDbPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.gtids().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for MariaDbPosition {
    type Err = PositionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_sequence_number_from_another_server_is_another_transaction() {
        let stored = pos("0-1-100,1-1-5");
        assert_eq!(stored.diverged_from(&pos("0-2-100,1-1-9")), [MariaDbGtid { domain: 0, server: 1, seq: 100 }]);
        assert!(stored.diverged_from(&pos("0-2-101,1-1-5")).is_empty(), "later numbers: by sequence");
        assert!(stored.diverged_from(&stored).is_empty());
    }
    use proptest::prelude::*;

    fn pos(text: &str) -> MariaDbPosition {
        MariaDbPosition::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parse_print_contains() {
        let p = pos("1-2-5, 0-1-100");
        assert_eq!(p.to_string(), "0-1-100,1-2-5");
        assert!(p.contains(&MariaDbGtid { domain: 0, server: 7, seq: 100 }));
        assert!(!p.contains(&MariaDbGtid { domain: 0, server: 1, seq: 101 }));
        assert!(!p.contains(&MariaDbGtid { domain: 2, server: 1, seq: 1 }));
        assert_eq!(pos("").to_string(), "");
    }

    #[test]
    fn malformed_is_an_error() {
        for bad in [
            "0-1",
            "0-1-x",
            "a-1-2",
            "0-1-2-3",
            "0-1-2,0-1-3",
            "-1-2",
            "0--2",
            "4294967296-1-1",
            "0-1-18446744073709551616",
        ] {
            assert!(MariaDbPosition::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn union_and_subset() {
        let mut a = pos("0-1-10,1-1-5");
        a.union(&pos("0-2-12,2-1-1"));
        assert_eq!(a.to_string(), "0-2-12,1-1-5,2-1-1");
        assert!(pos("0-1-11").is_subset(&a));
        assert!(!pos("0-1-13").is_subset(&a));
        assert!(!pos("3-1-1").is_subset(&a));
    }

    fn arb() -> impl Strategy<Value = MariaDbPosition> {
        prop::collection::btree_map(0..4u32, (1..3u32, 0..50u64), 0..4).prop_map(|domains| MariaDbPosition { domains })
    }

    proptest! {
        #[test]
        fn laws(a in arb(), b in arb(), g in (0..4u32, 1..3u32, 0..60u64)) {
            prop_assert_eq!(pos(&a.to_string()), a.clone());
            let mut u = a.clone();
            u.union(&b);
            prop_assert!(a.is_subset(&u) && b.is_subset(&u));
            let mut v = b.clone();
            v.union(&a);
            prop_assert!(u.is_subset(&v) && v.is_subset(&u));
            let g = MariaDbGtid { domain: g.0, server: g.1, seq: g.2 };
            let mut added = a.clone();
            added.add(&g);
            prop_assert!(added.contains(&g));
            prop_assert_eq!(a.contains(&g), a.domains.get(&g.domain).is_some_and(|&(_, s)| g.seq <= s));
        }

        #[test]
        fn parse_never_panics(text in "[0-9,\\- a]{0,40}") {
            let _ = MariaDbPosition::parse(&text);
        }
    }
}
