//! Minimal msgpack record surgery for filters: find a field, list a map's entries as raw
//! slices, build a new map from raw pieces, and write JSON text as msgpack — all without a
//! generic value tree. Values a filter does not touch are copied as their original bytes.

use std::fmt;

/// The record is not a well-formed msgpack map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError(pub &'static str);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for RecordError {}

const TRUNC: RecordError = RecordError("truncated msgpack value");

fn get(buf: &[u8], pos: usize) -> Result<u8, RecordError> {
    buf.get(pos).copied().ok_or(TRUNC)
}

fn be_len(buf: &[u8], pos: usize, n: usize) -> Result<usize, RecordError> {
    let s = buf.get(pos..pos + n).ok_or(TRUNC)?;
    Ok(s.iter().fold(0usize, |a, &b| (a << 8) | b as usize))
}

/// Returns the end offset of the value starting at `pos`.
pub fn skip_value(buf: &[u8], pos: usize) -> Result<usize, RecordError> {
    skip_depth(buf, pos, 0)
}

fn skip_depth(buf: &[u8], pos: usize, depth: usize) -> Result<usize, RecordError> {
    if depth > 128 {
        return Err(RecordError("msgpack value nested too deep"));
    }
    let m = get(buf, pos)?;
    let p = pos + 1;
    let (items, mut p) = match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => return Ok(p),
        0xc1 => return Err(RecordError("invalid msgpack marker 0xc1")),
        0x80..=0x8f => (2 * (m & 0x0f) as usize, p),
        0x90..=0x9f => ((m & 0x0f) as usize, p),
        0xa0..=0xbf => return end(buf, p + (m & 0x1f) as usize),
        0xc4 | 0xd9 => return end(buf, p + 1 + be_len(buf, p, 1)?),
        0xc5 | 0xda => return end(buf, p + 2 + be_len(buf, p, 2)?),
        0xc6 | 0xdb => return end(buf, p + 4 + be_len(buf, p, 4)?),
        0xc7 => return end(buf, p + 2 + be_len(buf, p, 1)?),
        0xc8 => return end(buf, p + 3 + be_len(buf, p, 2)?),
        0xc9 => return end(buf, p + 5 + be_len(buf, p, 4)?),
        0xca => return end(buf, p + 4),
        0xcb => return end(buf, p + 8),
        0xcc | 0xd0 => return end(buf, p + 1),
        0xcd | 0xd1 => return end(buf, p + 2),
        0xce | 0xd2 => return end(buf, p + 4),
        0xcf | 0xd3 => return end(buf, p + 8),
        0xd4..=0xd8 => return end(buf, p + 1 + (1usize << (m - 0xd4))),
        0xdc => (be_len(buf, p, 2)?, p + 2),
        0xdd => (be_len(buf, p, 4)?, p + 4),
        0xde => (2 * be_len(buf, p, 2)?, p + 2),
        0xdf => (2 * be_len(buf, p, 4)?, p + 4),
    };
    for _ in 0..items {
        p = skip_depth(buf, p, depth + 1)?;
    }
    Ok(p)
}

fn end(buf: &[u8], e: usize) -> Result<usize, RecordError> {
    if e > buf.len() {
        Err(TRUNC)
    } else {
        Ok(e)
    }
}

/// If the value at `pos` is a str or bin, its bytes and end offset.
pub fn read_str(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let m = *buf.get(pos)?;
    let (len, start) = match m {
        0xa0..=0xbf => ((m & 0x1f) as usize, pos + 1),
        0xd9 | 0xc4 => (be_len(buf, pos + 1, 1).ok()?, pos + 2),
        0xda | 0xc5 => (be_len(buf, pos + 1, 2).ok()?, pos + 3),
        0xdb | 0xc6 => (be_len(buf, pos + 1, 4).ok()?, pos + 5),
        _ => return None,
    };
    let s = buf.get(start..start + len)?;
    Some((s, start + len))
}

/// Number of entries and offset of the first key, if `buf` starts with a map.
pub fn map_header(buf: &[u8]) -> Result<(usize, usize), RecordError> {
    let m = get(buf, 0)?;
    match m {
        0x80..=0x8f => Ok(((m & 0x0f) as usize, 1)),
        0xde => Ok((be_len(buf, 1, 2)?, 3)),
        0xdf => Ok((be_len(buf, 1, 4)?, 5)),
        _ => Err(RecordError("record is not a msgpack map")),
    }
}

/// One entry of a map: the key's raw bytes (as encoded), its text when it is a string, and
/// the value's raw bytes (as encoded).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub raw_key: &'a [u8],
    pub key: Option<&'a [u8]>,
    pub raw_value: &'a [u8],
}

impl<'a> Entry<'a> {
    /// The value's bytes when it is a str/bin.
    pub fn value_str(&self) -> Option<&'a [u8]> {
        read_str(self.raw_value, 0).map(|(s, _)| s)
    }
}

/// All entries of the map `buf`, in wire order.
pub fn entries(buf: &[u8]) -> Result<Vec<Entry<'_>>, RecordError> {
    let (n, mut p) = map_header(buf)?;
    let mut v = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let ke = skip_value(buf, p)?;
        let ve = skip_value(buf, ke)?;
        v.push(Entry {
            raw_key: &buf[p..ke],
            key: read_str(buf, p).map(|(s, _)| s),
            raw_value: &buf[ke..ve],
        });
        p = ve;
    }
    Ok(v)
}

/// The raw value of `key` in the map `buf`, without collecting the other entries.
pub fn find<'a>(buf: &'a [u8], key: &str) -> Result<Option<&'a [u8]>, RecordError> {
    let (n, mut p) = map_header(buf)?;
    for _ in 0..n {
        let ke = skip_value(buf, p)?;
        let ve = skip_value(buf, ke)?;
        if read_str(buf, p).map(|(s, _)| s) == Some(key.as_bytes()) {
            return Ok(Some(&buf[ke..ve]));
        }
        p = ve;
    }
    Ok(None)
}

/// The string value of `key`, when present and a str/bin.
pub fn find_str<'a>(buf: &'a [u8], key: &str) -> Option<&'a [u8]> {
    find(buf, key)
        .ok()
        .flatten()
        .and_then(|v| read_str(v, 0).map(|(s, _)| s))
}

/// Writes a map header for `n` entries.
pub fn write_map_len(out: &mut Vec<u8>, n: usize) {
    let _ = rmp::encode::write_map_len(out, n as u32);
}

/// Writes a msgpack str.
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    let _ = rmp::encode::write_str_len(out, s.len() as u32);
    out.extend_from_slice(s);
}

/// Builds a map from entries given as raw encoded key and value bytes.
pub fn build_map<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let pairs: Vec<_> = pairs.into_iter().collect();
    let mut out =
        Vec::with_capacity(5 + pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
    write_map_len(&mut out, pairs.len());
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    out
}

/// Encodes `s` as a msgpack str and returns the bytes.
pub fn encode_str(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 5);
    write_str(&mut v, s);
    v
}

/// Parses the JSON text `json` and writes it as msgpack into `out`, keeping object key order
/// (see [`crate::json_msgpack`]).
pub use crate::json_msgpack::json_to_msgpack;

/// Encodes a `serde_json::Value` as msgpack (for tests and the CLI).
pub fn value_to_msgpack(v: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    let text = serde_json::to_vec(v).unwrap_or_default();
    let _ = json_to_msgpack(&text, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_roundtrip_keeps_order() {
        let mut out = Vec::new();
        json_to_msgpack(
            br#"{"z":1,"a":[true,null,-2,1.5,"x"],"m":{"k":"v"}}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            crate::msgpack_json::to_json_string(&out).unwrap(),
            r#"{"z":1,"a":[true,null,-2,1.5,"x"],"m":{"k":"v"}}"#
        );
        let e = entries(&out).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].key, Some(&b"z"[..]));
        assert_eq!(skip_value(&out, 0).unwrap(), out.len());
        assert!(json_to_msgpack(b"{\"a\":", &mut Vec::new()).is_err());
    }
}
