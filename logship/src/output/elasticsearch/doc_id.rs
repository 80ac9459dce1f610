//! Deterministic document ids, and the few msgpack look-ups the encoder needs.
//!
//! `_id` = lower-case hex of xxh3-128 over: the tag, the event time (seconds and nanoseconds,
//! little endian) and the record in **canonical form**: map entries sorted by their canonical
//! key, recursively; integers by value whatever their width; str and bin by content; float32
//! widened to float64. Two encodings of the same record (Docker's Go client writes map keys in
//! random order) therefore get the same id, so a resent chunk or a retried bulk request hits
//! the existing document (409 with `create`) instead of indexing it twice.

use xxhash_rust::xxh3::Xxh3;

use crate::event::EventTime;

const MAX_DEPTH: usize = 128;

/// A record that is not well-formed msgpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

fn take<'a>(b: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], Malformed> {
    let end = pos.checked_add(n).ok_or(Malformed)?;
    let s = b.get(*pos..end).ok_or(Malformed)?;
    *pos = end;
    Ok(s)
}

fn be(b: &[u8], pos: &mut usize, n: usize) -> Result<u64, Malformed> {
    Ok(take(b, pos, n)?
        .iter()
        .fold(0u64, |a, &x| (a << 8) | u64::from(x)))
}

/// The header of the value at `pos`.
enum Head {
    Int(i128),
    Nil,
    Bool(bool),
    F64(f64),
    /// str or bin content.
    Bytes(usize, usize),
    Ext(i8, usize, usize),
    Array(usize),
    Map(usize),
}

fn head(b: &[u8], pos: &mut usize) -> Result<Head, Malformed> {
    let m = *take(b, pos, 1)?.first().ok_or(Malformed)?;
    let bytes = |pos: &mut usize, n: usize| -> Result<Head, Malformed> {
        let start = *pos;
        take(b, pos, n)?;
        Ok(Head::Bytes(start, n))
    };
    Ok(match m {
        0x00..=0x7f => Head::Int(i128::from(m)),
        0xe0..=0xff => Head::Int(i128::from(m as i8)),
        0x80..=0x8f => Head::Map((m & 0x0f) as usize),
        0x90..=0x9f => Head::Array((m & 0x0f) as usize),
        0xa0..=0xbf => return bytes(pos, (m & 0x1f) as usize),
        0xc0 => Head::Nil,
        0xc2 => Head::Bool(false),
        0xc3 => Head::Bool(true),
        0xc4 | 0xd9 => {
            let n = be(b, pos, 1)? as usize;
            return bytes(pos, n);
        }
        0xc5 | 0xda => {
            let n = be(b, pos, 2)? as usize;
            return bytes(pos, n);
        }
        0xc6 | 0xdb => {
            let n = be(b, pos, 4)? as usize;
            return bytes(pos, n);
        }
        0xc7..=0xc9 => {
            let n = be(b, pos, 1 << (m - 0xc7))? as usize;
            let ty = be(b, pos, 1)? as u8 as i8;
            let start = *pos;
            take(b, pos, n)?;
            Head::Ext(ty, start, n)
        }
        0xca => Head::F64(f64::from(f32::from_bits(be(b, pos, 4)? as u32))),
        0xcb => Head::F64(f64::from_bits(be(b, pos, 8)?)),
        0xcc..=0xcf => Head::Int(i128::from(be(b, pos, 1 << (m - 0xcc))?)),
        0xd0 => Head::Int(i128::from(be(b, pos, 1)? as u8 as i8)),
        0xd1 => Head::Int(i128::from(be(b, pos, 2)? as u16 as i16)),
        0xd2 => Head::Int(i128::from(be(b, pos, 4)? as u32 as i32)),
        0xd3 => Head::Int(i128::from(be(b, pos, 8)? as i64)),
        0xd4..=0xd8 => {
            let ty = be(b, pos, 1)? as u8 as i8;
            let n = 1usize << (m - 0xd4);
            let start = *pos;
            take(b, pos, n)?;
            Head::Ext(ty, start, n)
        }
        0xdc => Head::Array(be(b, pos, 2)? as usize),
        0xdd => Head::Array(be(b, pos, 4)? as usize),
        0xde => Head::Map(be(b, pos, 2)? as usize),
        0xdf => Head::Map(be(b, pos, 4)? as usize),
        _ => return Err(Malformed),
    })
}

/// Skips the value at `pos`.
pub fn skip(b: &[u8], pos: &mut usize) -> Result<(), Malformed> {
    // Iterative: count of values still to skip.
    let mut left: usize = 1;
    while left > 0 {
        left -= 1;
        match head(b, pos)? {
            Head::Array(n) => left = left.checked_add(n).ok_or(Malformed)?,
            Head::Map(n) => {
                left = left
                    .checked_add(n.checked_mul(2).ok_or(Malformed)?)
                    .ok_or(Malformed)?
            }
            _ => {}
        }
        if left > b.len() {
            return Err(Malformed);
        }
    }
    Ok(())
}

/// For a record (a msgpack map): the byte range of the value of each top-level string key
/// in `keys` that is present. `Err` when the record is not a well-formed map.
pub fn find_keys<const N: usize>(
    record: &[u8],
    keys: [Option<&str>; N],
) -> Result<[Option<(usize, usize)>; N], Malformed> {
    let mut pos = 0;
    let Head::Map(n) = head(record, &mut pos)? else {
        return Err(Malformed);
    };
    let mut found = [None; N];
    for _ in 0..n {
        let k = head(record, &mut pos)?;
        let vstart = pos;
        skip(record, &mut pos)?;
        if let Head::Bytes(s, l) = k {
            let key = &record[s..s + l];
            for (i, want) in keys.iter().enumerate() {
                if want.is_some_and(|w| w.as_bytes() == key) && found[i].is_none() {
                    found[i] = Some((vstart, pos));
                }
            }
        }
    }
    if pos != record.len() {
        return Err(Malformed);
    }
    Ok(found)
}

/// The string content of the value at `range` of `record`, if it is a str/bin (or an integer,
/// as text).
pub fn value_as_string(record: &[u8], range: (usize, usize)) -> Option<String> {
    let mut pos = range.0;
    match head(record, &mut pos).ok()? {
        Head::Bytes(s, l) => Some(String::from_utf8_lossy(&record[s..s + l]).into_owned()),
        Head::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A value usable as a time: text to parse, or a number of Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeValue {
    Text(String),
    Seconds(f64),
}

/// The value at `range` as a [`TimeValue`] (str/bin, integer or float); `None` otherwise.
pub fn value_as_time(record: &[u8], range: (usize, usize)) -> Option<TimeValue> {
    let mut pos = range.0;
    match head(record, &mut pos).ok()? {
        Head::Bytes(s, l) => Some(TimeValue::Text(
            String::from_utf8_lossy(&record[s..s + l]).into_owned(),
        )),
        Head::Int(i) => Some(TimeValue::Seconds(i as f64)),
        Head::F64(f) => Some(TimeValue::Seconds(f)),
        _ => None,
    }
}

/// `target_index_key` as Fluentd applies it: follows the dotted `path` through nested maps;
/// when the last key holds a value other than nil/false, returns that value as text (str or
/// integer) and the record re-encoded without that key. `Ok(None)`: the path is absent (or
/// nil/false, or not text), the record is used as it is.
pub fn take_path(record: &[u8], path: &[&str]) -> Result<Option<(String, Vec<u8>)>, Malformed> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let mut pos = 0;
    let Head::Map(n) = head(record, &mut pos)? else {
        return Err(Malformed);
    };
    let mut entries: Vec<(usize, usize, usize)> = Vec::with_capacity(n); // key start, value start, end
    let mut hit: Option<usize> = None;
    for i in 0..n {
        let kstart = pos;
        let k = head(record, &mut pos)?;
        let vstart = pos;
        skip(record, &mut pos)?;
        if hit.is_none() {
            if let Head::Bytes(s, l) = k {
                if &record[s..s + l] == first.as_bytes() {
                    hit = Some(i);
                }
            }
        }
        entries.push((kstart, vstart, pos));
    }
    if pos != record.len() {
        return Err(Malformed);
    }
    let Some(i) = hit else { return Ok(None) };
    let (_, vstart, vend) = entries[i];
    let value = &record[vstart..vend];
    // The re-encoded map: the same entries, the hit one dropped (last key) or replaced by its
    // own re-encoding (inner key).
    let (name, replacement) = if rest.is_empty() {
        let mut p = vstart;
        let name = match head(record, &mut p)? {
            Head::Bytes(s, l) => String::from_utf8_lossy(&record[s..s + l]).into_owned(),
            Head::Int(v) => v.to_string(),
            _ => return Ok(None),
        };
        (name, None)
    } else {
        match take_path(value, rest) {
            Ok(Some((name, inner))) => (name, Some(inner)),
            // a scalar where a map was expected: the path is absent
            Ok(None) | Err(_) => return Ok(None),
        }
    };
    let mut out = Vec::with_capacity(record.len());
    let kept = if replacement.is_some() { n } else { n - 1 };
    crate::pipeline::record::write_map_len(&mut out, kept);
    for (j, &(kstart, vs, end)) in entries.iter().enumerate() {
        if j != i {
            out.extend_from_slice(&record[kstart..end]);
        } else if let Some(inner) = &replacement {
            out.extend_from_slice(&record[kstart..vs]);
            out.extend_from_slice(inner);
        }
    }
    Ok(Some((name, out)))
}

/// Computes document ids, reusing its buffers from one event to the next (the canonical form
/// of a record used to cost two allocations per map entry, half of the whole pipeline's CPU).
#[derive(Debug, Default)]
pub struct DocIds {
    /// The canonical form being built.
    canon: Vec<u8>,
    /// Entries of the maps being built, a stack.
    entries: Vec<MapEntry>,
    /// Unsorted entries of a map while they are written back in order, a stack.
    tmp: Vec<u8>,
}

impl DocIds {
    /// The 128-bit id of an event.
    pub fn id(&mut self, tag: &str, time: EventTime, record: &[u8]) -> Result<u128, Malformed> {
        self.canon.clear();
        let mut pos = 0;
        self.value(record, &mut pos, 0)?;
        if pos != record.len() {
            return Err(Malformed);
        }
        let mut h = Xxh3::new();
        h.update(&(tag.len() as u64).to_le_bytes());
        h.update(tag.as_bytes());
        h.update(&time.secs.to_le_bytes());
        h.update(&time.nanos.to_le_bytes());
        h.update(&self.canon);
        Ok(h.digest128())
    }

    /// Appends the 32 hex digits of the id of an event to `out`.
    pub fn write(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        time: EventTime,
        record: &[u8],
    ) -> Result<(), Malformed> {
        let id = self.id(tag, time, record)?;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for i in (0..32).rev() {
            out.push(HEX[((id >> (i * 4)) & 0xf) as usize]);
        }
        Ok(())
    }

    /// Appends the canonical encoding of the value at `pos` to `self.canon`.
    fn value(&mut self, b: &[u8], pos: &mut usize, depth: usize) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        let out = &mut self.canon;
        match head(b, pos)? {
            Head::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            }
            Head::Nil => out.push(b'n'),
            Head::Bool(v) => out.push(if v { b't' } else { b'f' }),
            Head::F64(f) => {
                out.push(b'd');
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Head::Bytes(s, l) => {
                out.push(b's');
                out.extend_from_slice(&(l as u64).to_le_bytes());
                out.extend_from_slice(&b[s..s + l]);
            }
            Head::Ext(ty, s, l) => {
                out.push(b'e');
                out.push(ty as u8);
                out.extend_from_slice(&(l as u64).to_le_bytes());
                out.extend_from_slice(&b[s..s + l]);
            }
            Head::Array(n) => {
                out.push(b'a');
                out.extend_from_slice(&(n as u64).to_le_bytes());
                for _ in 0..n {
                    self.value(b, pos, depth + 1)?;
                }
            }
            Head::Map(n) => {
                if n > b.len() {
                    return Err(Malformed);
                }
                out.push(b'm');
                out.extend_from_slice(&(n as u64).to_le_bytes());
                // The entries in wire order, then rewritten sorted by (key, value) — the order
                // of the canonical form.
                let region = self.canon.len();
                let first = self.entries.len();
                for _ in 0..n {
                    let k = self.canon.len();
                    self.value(b, pos, depth + 1)?;
                    let v = self.canon.len();
                    self.value(b, pos, depth + 1)?;
                    let e = self.canon.len();
                    self.entries.push(MapEntry::new(&self.canon, k, v, e));
                }
                let canon = &self.canon;
                let entries = &mut self.entries[first..];
                if !entries.is_sorted_by(|x, y| x.cmp(y, canon).is_le()) {
                    entries.sort_unstable_by(|x, y| x.cmp(y, canon));
                    let t = self.tmp.len();
                    self.tmp.extend_from_slice(&self.canon[region..]);
                    self.canon.truncate(region);
                    for m in &self.entries[first..] {
                        let (k, e) = (t + m.key - region, t + m.end - region);
                        self.canon.extend_from_slice(&self.tmp[k..e]);
                    }
                    self.tmp.truncate(t);
                }
                self.entries.truncate(first);
            }
        }
        Ok(())
    }
}

/// A map entry of the canonical form being built: its key and value in `canon`, and the first
/// 16 bytes of its key (zero-padded, big-endian) so that most comparisons are one integer
/// comparison.
#[derive(Debug, Clone, Copy)]
struct MapEntry {
    prefix: u128,
    key: usize,
    value: usize,
    end: usize,
}

impl MapEntry {
    fn new(canon: &[u8], key: usize, value: usize, end: usize) -> Self {
        let mut p = [0u8; 16];
        let k = &canon[key..value];
        let n = k.len().min(16);
        p[..n].copy_from_slice(&k[..n]);
        Self {
            prefix: u128::from_be_bytes(p),
            key,
            value,
            end,
        }
    }

    /// By key, then value, as byte strings. Prefixes that differ decide as the bytes would (a
    /// shorter key is padded with zeros, which sort first); equal prefixes compare the bytes.
    fn cmp(&self, other: &Self, canon: &[u8]) -> std::cmp::Ordering {
        self.prefix.cmp(&other.prefix).then_with(|| {
            canon[self.key..self.value]
                .cmp(&canon[other.key..other.value])
                .then_with(|| canon[self.value..self.end].cmp(&canon[other.value..other.end]))
        })
    }
}

/// The 128-bit id of an event (see [`DocIds`] to compute many).
pub fn doc_id_u128(tag: &str, time: EventTime, record: &[u8]) -> Result<u128, Malformed> {
    DocIds::default().id(tag, time, record)
}

/// Appends the 32 hex digits of the id of an event to `out` (see [`DocIds`] to compute many).
pub fn write_doc_id(
    out: &mut Vec<u8>,
    tag: &str,
    time: EventTime,
    record: &[u8],
) -> Result<(), Malformed> {
    DocIds::default().write(out, tag, time, record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(v: &serde_json::Value) -> Vec<u8> {
        crate::forward::client::encode_record_from_json(v).to_vec()
    }

    #[test]
    fn key_order_and_int_width_do_not_change_the_id() {
        let t = EventTime::new(1_700_000_000, 5);
        // {"a":1,"b":{"x":"y","z":[1]}} and the same with keys reversed and a wide int.
        let a = mp(&serde_json::json!({"a":1,"b":{"x":"y","z":[1]}}));
        let mut b = vec![
            0x82, 0xa1, b'b', 0x82, 0xa1, b'z', 0x91, 0x01, 0xa1, b'x', 0xa1, b'y',
        ];
        b.extend_from_slice(&[0xa1, b'a', 0xcd, 0x00, 0x01]);
        assert_eq!(
            doc_id_u128("t", t, &a).unwrap(),
            doc_id_u128("t", t, &b).unwrap()
        );
        assert_ne!(
            doc_id_u128("t", t, &a).unwrap(),
            doc_id_u128("u", t, &a).unwrap()
        );
        assert_ne!(
            doc_id_u128("t", t, &a).unwrap(),
            doc_id_u128("t", EventTime::new(1_700_000_000, 6), &a).unwrap()
        );
        let mut s = Vec::new();
        write_doc_id(&mut s, "t", t, &a).unwrap();
        assert_eq!(s.len(), 32);
        assert!(doc_id_u128("t", t, &[0x82, 0xa1]).is_err());
    }

    /// The canonical form as first written (two vectors per map entry, then sorted): the ids
    /// of documents already in Elasticsearch must not change.
    fn canon_reference(b: &[u8], pos: &mut usize, out: &mut Vec<u8>) {
        let start = *pos;
        match head(b, pos).unwrap() {
            Head::Array(n) => {
                out.push(b'a');
                out.extend_from_slice(&(n as u64).to_le_bytes());
                for _ in 0..n {
                    canon_reference(b, pos, out);
                }
            }
            Head::Map(n) => {
                let mut entries: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
                    .map(|_| {
                        let (mut k, mut v) = (Vec::new(), Vec::new());
                        canon_reference(b, pos, &mut k);
                        canon_reference(b, pos, &mut v);
                        (k, v)
                    })
                    .collect();
                entries.sort_unstable();
                out.push(b'm');
                out.extend_from_slice(&(n as u64).to_le_bytes());
                for (k, v) in entries {
                    out.extend_from_slice(&k);
                    out.extend_from_slice(&v);
                }
            }
            _ => {
                // A scalar (its bytes are b[start..pos]): the same encoding as DocIds.
                let mut d = DocIds::default();
                d.value(&b[start..*pos], &mut 0, 0).unwrap();
                out.extend_from_slice(&d.canon);
            }
        }
    }

    #[test]
    fn the_canonical_form_is_unchanged() {
        let records = [
            serde_json::json!({"z":1,"a":{"y":[1,{"k":"v","b":null}],"x":true},"m":"s","log":"{\"a\":1}"}),
            serde_json::json!({"container_id":"abc","container_name":"/api","source":"stdout","log":"x","name":"api","level":30,"latency_ms":1.5,"nested":{"b":2,"a":1}}),
            serde_json::json!({}),
            serde_json::json!({"a":[],"b":{}}),
        ];
        for r in &records {
            let rec = mp(r);
            let mut want = Vec::new();
            let mut pos = 0;
            canon_reference(&rec, &mut pos, &mut want);
            let mut d = DocIds::default();
            d.id("t", EventTime::new(1, 2), &rec).unwrap();
            assert_eq!(d.canon, want, "{r}");
        }
    }

    #[test]
    fn take_path_removes_the_key_it_reads() {
        let r = mp(&serde_json::json!({"a":1,"k8s":{"ns":"Prod","pod":"p"},"ix":"Top"}));
        let (name, rest) = take_path(&r, &["ix"]).unwrap().unwrap();
        assert_eq!(name, "Top");
        assert_eq!(
            crate::msgpack_json::to_json_string(&rest).unwrap(),
            r#"{"a":1,"k8s":{"ns":"Prod","pod":"p"}}"#
        );
        let (name, rest) = take_path(&r, &["k8s", "ns"]).unwrap().unwrap();
        assert_eq!(name, "Prod");
        assert_eq!(
            crate::msgpack_json::to_json_string(&rest).unwrap(),
            r#"{"a":1,"ix":"Top","k8s":{"pod":"p"}}"#
        );
        assert_eq!(take_path(&r, &["nope"]).unwrap(), None);
        assert_eq!(take_path(&r, &["a", "b"]).unwrap(), None);
        let nil = mp(&serde_json::json!({"ix": null}));
        assert_eq!(take_path(&nil, &["ix"]).unwrap(), None);
        let ts = mp(&serde_json::json!({"t": 1.5, "s": "x", "n": 3}));
        let [t, s, n] = find_keys(&ts, [Some("t"), Some("s"), Some("n")]).unwrap();
        assert_eq!(
            value_as_time(&ts, t.unwrap()),
            Some(TimeValue::Seconds(1.5))
        );
        assert_eq!(
            value_as_time(&ts, s.unwrap()),
            Some(TimeValue::Text("x".into()))
        );
        assert_eq!(
            value_as_time(&ts, n.unwrap()),
            Some(TimeValue::Seconds(3.0))
        );
    }

    #[test]
    fn finds_top_level_keys() {
        let r = mp(&serde_json::json!({"log":"x","@timestamp":"now","n":{"@timestamp":1}}));
        let [ts, tag, log] = find_keys(&r, [Some("@timestamp"), Some("tag"), Some("log")]).unwrap();
        assert!(ts.is_some() && tag.is_none());
        assert_eq!(value_as_string(&r, log.unwrap()).as_deref(), Some("x"));
        assert!(find_keys(&[0x91, 0x01], [Some("a")]).is_err());
    }
}
