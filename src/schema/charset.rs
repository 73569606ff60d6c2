//! Collation ids → how to turn column bytes into text.
//!
//! The binlog gives a collation id per character column. rowferry needs only the character set
//! behind it: UTF-8 family (validated, kept as is), binary (bytes, never text), MySQL's `latin1`
//! (which is Windows-1252, transcoded) and the other single/multi-byte sets `encoding_rs` knows.
//! The id → charset table below covers the ids MySQL and MariaDB assign to their compiled-in
//! collations; a live connection can extend it from `information_schema.COLLATIONS`
//! ([`CollationMap`]), which is authoritative for the server at hand.

use encoding_rs::Encoding;
use std::collections::HashMap;
use std::sync::Arc;

/// How a column's bytes become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Not text: BINARY, VARBINARY, BLOB.
    Binary,
    /// utf8mb4, utf8mb3, ascii: already UTF-8 (validated).
    Utf8,
    /// UTF-32 (big-endian code units), which encoding_rs does not cover.
    Utf32,
    /// Any other character set, transcoded to UTF-8.
    Encoded(&'static Encoding),
}

impl Charset {
    /// The charset of a character set *name* as `information_schema.COLLATIONS` spells it.
    pub fn from_name(name: &str) -> Option<Charset> {
        use encoding_rs::*;
        Some(match name {
            "binary" => Charset::Binary,
            "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => Charset::Utf8,
            "utf32" => Charset::Utf32,
            "latin1" => Charset::Encoded(WINDOWS_1252),
            "latin2" => Charset::Encoded(ISO_8859_2),
            "latin7" => Charset::Encoded(ISO_8859_13),
            "greek" => Charset::Encoded(ISO_8859_7),
            "hebrew" => Charset::Encoded(ISO_8859_8),
            "cp1250" => Charset::Encoded(WINDOWS_1250),
            "cp1251" => Charset::Encoded(WINDOWS_1251),
            "cp1256" => Charset::Encoded(WINDOWS_1256),
            "cp1257" => Charset::Encoded(WINDOWS_1257),
            "koi8r" => Charset::Encoded(KOI8_R),
            "koi8u" => Charset::Encoded(KOI8_U),
            "tis620" => Charset::Encoded(WINDOWS_874),
            "big5" => Charset::Encoded(BIG5),
            "sjis" | "cp932" => Charset::Encoded(SHIFT_JIS),
            "ujis" | "eucjpms" => Charset::Encoded(EUC_JP),
            "euckr" => Charset::Encoded(EUC_KR),
            "gbk" | "gb2312" => Charset::Encoded(GBK),
            "gb18030" => Charset::Encoded(GB18030),
            "utf16" | "ucs2" => Charset::Encoded(UTF_16BE),
            "utf16le" => Charset::Encoded(UTF_16LE),
            "cp866" => Charset::Encoded(IBM866),
            "macroman" => Charset::Encoded(MACINTOSH),
            _ => return None,
        })
    }

    /// The charset of a collation id from the compiled-in table (MySQL 8/9, MariaDB 10.6+).
    pub fn from_collation_id(id: u16) -> Option<Charset> {
        let name = match id {
            63 => "binary",
            11 | 65 => "ascii",
            5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => "latin1",
            33 | 76 | 83 | 192..=215 | 223 | 2048..=2303 => "utf8mb3",
            45 | 46 | 224..=247 | 255..=323 | 2304..=2559 => "utf8mb4",
            9 | 21 | 27 | 77 | 99 => "latin2",
            1 | 84 => "big5",
            13 | 88 => "sjis",
            95 | 96 => "cp932",
            12 | 91 => "ujis",
            97 | 98 => "eucjpms",
            19 | 85 => "euckr",
            28 | 87 => "gbk",
            24 | 86 => "gb2312",
            248..=250 => "gb18030",
            14 | 23 | 50..=52 => "cp1251",
            26 | 34 | 44 | 66 => "cp1250",
            57 | 67 => "cp1256",
            29 | 58 | 59 => "cp1257",
            7 | 74 => "koi8r",
            22 | 75 => "koi8u",
            25 | 70 => "greek",
            16 | 71 => "hebrew",
            18 | 89 => "tis620",
            35 | 90 | 128..=151 | 159 => "ucs2",
            54 | 55 | 101..=124 => "utf16",
            56 | 62 => "utf16le",
            60 | 61 | 160..=183 => "utf32",
            20 | 41 | 42 | 79 => "latin7",
            36 | 68 => "cp866",
            39 | 53 => "macroman",
            _ => return None,
        };
        Charset::from_name(name)
    }
}

/// Collation id → charset for one server, seeded from the compiled-in table and extended from
/// `information_schema.COLLATIONS` when connected.
#[derive(Debug, Clone, Default)]
pub struct CollationMap {
    overrides: Arc<HashMap<u16, Charset>>,
}

impl CollationMap {
    /// Builds the map from `(collation id, character set name)` rows.
    pub fn from_rows(rows: impl IntoIterator<Item = (u16, String)>) -> Self {
        let overrides = rows.into_iter().filter_map(|(id, name)| Charset::from_name(&name).map(|c| (id, c))).collect();
        CollationMap { overrides: Arc::new(overrides) }
    }

    pub fn charset(&self, id: u16) -> Option<Charset> {
        self.overrides.get(&id).copied().or_else(|| Charset::from_collation_id(id))
    }
}

/// Bytes in `charset` → UTF-8 text. Invalid bytes are an error: a value is never altered.
pub fn text(bytes: &[u8], charset: Charset) -> Result<String, crate::binlog::BinlogError> {
    match charset {
        Charset::Utf8 | Charset::Binary => String::from_utf8(bytes.to_vec())
            .map_err(|e| crate::binlog::BinlogError::malformed("text value", format!("not UTF-8: {e}"))),
        Charset::Encoded(encoding) => {
            encoding.decode_without_bom_handling_and_without_replacement(bytes).map(|s| s.into_owned()).ok_or_else(
                || crate::binlog::BinlogError::malformed("text value", format!("not valid {}", encoding.name())),
            )
        }
        Charset::Utf32 => {
            if bytes.len() % 4 != 0 {
                return Err(crate::binlog::BinlogError::malformed(
                    "text value",
                    "UTF-32 length is not a multiple of 4",
                ));
            }
            bytes
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect::<Option<String>>()
                .ok_or_else(|| crate::binlog::BinlogError::malformed("text value", "not valid UTF-32"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_collations() {
        assert_eq!(Charset::from_collation_id(255), Some(Charset::Utf8));
        assert_eq!(Charset::from_collation_id(45), Some(Charset::Utf8));
        assert_eq!(Charset::from_collation_id(63), Some(Charset::Binary));
        assert_eq!(Charset::from_collation_id(8), Some(Charset::Encoded(encoding_rs::WINDOWS_1252)));
        assert_eq!(Charset::from_collation_id(1000), None);
        let map = CollationMap::from_rows([(1000, "utf8mb4".to_string())]);
        assert_eq!(map.charset(1000), Some(Charset::Utf8));
        assert_eq!(map.charset(63), Some(Charset::Binary));
    }
}
