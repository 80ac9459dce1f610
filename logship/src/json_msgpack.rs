//! JSON text → msgpack in one pass, without a value tree: the parser filter's hot path.
//!
//! The grammar is RFC 8259's, checked as strictly as `serde_json` checks it (a differential test
//! holds the two together): one value with optional whitespace around it, no trailing comma,
//! no leading zero, at least one digit after `.` and in an exponent, only the escapes `\" \\ \/
//! \b \f \n \r \t \uXXXX`, surrogates only in valid pairs, no raw control character in a
//! string, valid UTF-8, at most 127 nested arrays/objects, and a number whose value would be
//! infinite is an error.
//!
//! The msgpack written is what `serde_json` + `rmp` produced before this module (so documents,
//! `_id`s and files stay the same): object key order is kept (duplicate keys too); an integer
//! that fits `u64` is an unsigned int, a negative one that fits `i64` a signed int, both in
//! their shortest form; every other number (fraction, exponent, too large, `-0`) a float64,
//! correctly rounded (`serde_json`'s default parser is sometimes one bit off); strings
//! are str in their shortest form; arrays and maps get their shortest header. A container's
//! header is written after its body is known: one byte is reserved, and the body is moved
//! when 16 entries or more need a 3- or 5-byte header.
//!
//! [`object_entries`] is the form the parser filter uses: the entries of a top-level object
//! written without the map header, with the position of each entry, so that the filter can
//! merge them with the record's own entries by copying bytes.

use std::ops::Range;

/// Why a text is not a JSON value (or not an object, for [`object_entries`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON: `what` went wrong at byte `at`.
    #[error("invalid JSON at byte {at}: {what}")]
    Syntax { at: usize, what: &'static str },
    /// Valid JSON, but not an object (for [`object_entries`]).
    #[error("the JSON value is not an object")]
    NotObject,
}

/// Nesting deeper than this is an error (as `serde_json`'s recursion limit).
const MAX_DEPTH: usize = 127;

/// One entry of a top-level object, as byte ranges of the output buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// The msgpack str of the key.
    pub key: Range<usize>,
    /// The key's text (without its msgpack header).
    pub key_text: Range<usize>,
    /// The msgpack value.
    pub value: Range<usize>,
}

/// Appends the msgpack form of the JSON value `json` to `out`. On error `out` may hold a
/// partial value: truncate it to its previous length.
pub fn json_to_msgpack(json: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    let mut p = Parser::new(json)?;
    p.ws();
    p.value(out, 0)?;
    p.end()
}

/// Parses the JSON object `json` and appends its entries to `out` **without** a map header
/// (key str, value, key str, value, ...), recording each in `entries`. Valid JSON that is not
/// an object gives [`JsonError::NotObject`].
pub fn object_entries(
    json: &[u8],
    out: &mut Vec<u8>,
    entries: &mut Vec<ObjectEntry>,
) -> Result<(), JsonError> {
    let mut p = Parser::new(json)?;
    p.ws();
    if p.peek() != Some(b'{') {
        // Tell "valid, but not an object" from "not JSON".
        let mark = out.len();
        let r = p.value(out, 0).and_then(|()| p.end());
        out.truncate(mark);
        r?;
        return Err(JsonError::NotObject);
    }
    p.pos += 1;
    p.ws();
    if p.peek() == Some(b'}') {
        p.pos += 1;
        return p.end();
    }
    loop {
        if p.peek() != Some(b'"') {
            return Err(p.err("expected a string key"));
        }
        let k0 = out.len();
        p.pos += 1;
        let text_at = p.string(out)?;
        let k1 = out.len();
        p.colon()?;
        p.value(out, 1)?;
        entries.push(ObjectEntry {
            key: k0..k1,
            key_text: text_at..k1,
            value: k1..out.len(),
        });
        if !p.comma_or(b'}')? {
            return p.end();
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    /// Decoded text of a string with escapes.
    scratch: Vec<u8>,
}

impl<'a> Parser<'a> {
    fn new(s: &'a [u8]) -> Result<Self, JsonError> {
        // Bytes >= 0x80 are only valid inside strings; checking the whole text once is
        // cheaper than checking each string, and rejects the same inputs. Most log lines are
        // ASCII, which is quicker to tell.
        if s.is_ascii() {
        } else if let Err(e) = std::str::from_utf8(s) {
            return Err(JsonError::Syntax {
                at: e.valid_up_to(),
                what: "invalid UTF-8",
            });
        }
        Ok(Self {
            s,
            pos: 0,
            scratch: Vec::new(),
        })
    }

    fn err(&self, what: &'static str) -> JsonError {
        JsonError::Syntax { at: self.pos, what }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn end(&mut self) -> Result<(), JsonError> {
        self.ws();
        if self.pos == self.s.len() {
            Ok(())
        } else {
            Err(self.err("trailing characters"))
        }
    }

    fn colon(&mut self) -> Result<(), JsonError> {
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.err("expected ':'"));
        }
        self.pos += 1;
        self.ws();
        Ok(())
    }

    /// After a member or element: `,` (true, with the whitespace after it skipped) or the
    /// closing `close` (false).
    fn comma_or(&mut self, close: u8) -> Result<bool, JsonError> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.ws();
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.err("expected ',' or the end of the container")),
        }
    }

    /// The value at `pos` (whitespace before it already skipped).
    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'{') => self.object(out, depth + 1),
            Some(b'[') => self.array(out, depth + 1),
            Some(b'"') => {
                self.pos += 1;
                self.string(out).map(|_| ())
            }
            Some(b't') => self.literal(b"true", 0xc3, out),
            Some(b'f') => self.literal(b"false", 0xc2, out),
            Some(b'n') => self.literal(b"null", 0xc0, out),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            Some(_) => Err(self.err("expected a value")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &[u8], marker: u8, out: &mut Vec<u8>) -> Result<(), JsonError> {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            out.push(marker);
            Ok(())
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        self.pos += 1;
        let head = out.len();
        out.push(0x80);
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let mut n = 0usize;
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            self.pos += 1;
            self.string(out)?;
            self.colon()?;
            self.value(out, depth)?;
            n += 1;
            if !self.comma_or(b'}')? {
                break;
            }
        }
        set_header(out, head, n, [0x80, 0xde, 0xdf]);
        Ok(())
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        self.pos += 1;
        let head = out.len();
        out.push(0x90);
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        let mut n = 0usize;
        loop {
            self.value(out, depth)?;
            n += 1;
            if !self.comma_or(b']')? {
                break;
            }
        }
        set_header(out, head, n, [0x90, 0xdc, 0xdd]);
        Ok(())
    }

    /// A string whose opening quote was consumed: writes it as a msgpack str and returns the
    /// offset in `out` where its text starts.
    fn string(&mut self, out: &mut Vec<u8>) -> Result<usize, JsonError> {
        let start = self.pos;
        let s = self.s;
        // Fast path: the first special byte is the closing quote.
        let Some(i) = special(s, start) else {
            self.pos = s.len();
            return Err(self.err("unterminated string"));
        };
        match s[i] {
            b'"' => {
                self.pos = i + 1;
                return Ok(write_str(out, &s[start..i]));
            }
            b'\\' => {}
            _ => {
                self.pos = i;
                return Err(self.err("control character in a string"));
            }
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(&s[start..i]);
        self.pos = i;
        let r = self.escaped_rest(&mut buf);
        let at = r.map(|()| write_str(out, &buf));
        self.scratch = buf;
        at
    }

    /// The rest of a string from its first backslash, decoded into `buf`.
    fn escaped_rest(&mut self, buf: &mut Vec<u8>) -> Result<(), JsonError> {
        loop {
            let Some(i) = special(self.s, self.pos) else {
                self.pos = self.s.len();
                return Err(self.err("unterminated string"));
            };
            buf.extend_from_slice(&self.s[self.pos..i]);
            self.pos = i;
            match self.s[i] {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => self.pos += 1,
                _ => return Err(self.err("control character in a string")),
            }
            let Some(e) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            self.pos += 1;
            match e {
                b'"' | b'\\' | b'/' => buf.push(e),
                b'b' => buf.push(0x08),
                b'f' => buf.push(0x0c),
                b'n' => buf.push(b'\n'),
                b'r' => buf.push(b'\r'),
                b't' => buf.push(b'\t'),
                b'u' => {
                    let ch = self.unicode_escape()?;
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                }
                _ => {
                    self.pos -= 1;
                    return Err(self.err("invalid escape"));
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let Some(h) = self.s.get(self.pos..self.pos + 4) else {
            return Err(self.err("unterminated \\u escape"));
        };
        let mut v = 0u16;
        for &c in h {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(self.err("invalid \\u escape")),
            };
            v = (v << 4) | u16::from(d);
        }
        self.pos += 4;
        Ok(v)
    }

    /// `XXXX` after `\u` (and the low half of a surrogate pair).
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let cp = match hi {
            0xd800..=0xdbff => {
                if !self.s[self.pos..].starts_with(b"\\u") {
                    return Err(self.err("lone leading surrogate in \\u escape"));
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&lo) {
                    return Err(self.err("invalid low surrogate in \\u escape"));
                }
                0x10000 + ((u32::from(hi) - 0xd800) << 10) + (u32::from(lo) - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.err("lone trailing surrogate in \\u escape")),
            _ => u32::from(hi),
        };
        char::from_u32(cp).ok_or_else(|| self.err("invalid \\u escape"))
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.err("leading zero in a number"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        let int_end = self.pos;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("expected a digit after '.'"));
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("expected a digit in the exponent"));
            }
            float = true;
        }
        if !float {
            let u = self.s[int_start..int_end].iter().try_fold(0u64, |acc, &d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            });
            if let Some(u) = u {
                if !negative {
                    let _ = rmp::encode::write_uint(out, u);
                    return Ok(());
                }
                // -0 and values below i64::MIN become floats, as in serde_json.
                if u != 0 && u <= i64::MAX as u64 + 1 {
                    let _ = rmp::encode::write_sint(out, (u as i64).wrapping_neg());
                    return Ok(());
                }
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => {
                let _ = rmp::encode::write_f64(out, f);
                Ok(())
            }
            _ => {
                self.pos = start;
                Err(self.err("number out of range"))
            }
        }
    }
}

/// The offset of the first byte at or after `from` that ends the plain part of a string: `"`,
/// `\` or a control character (< 0x20). Eight bytes at a time: in each word a flag per byte
/// equal to `"`, equal to `\` or below 0x20 (the usual "has zero byte" arithmetic, whose
/// lowest flag is exact), then the lowest flag's byte.
fn special(s: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = from;
    while let Some(chunk) = s.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let m = zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i.min(s.len())..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|p| i + p)
}

/// Writes a msgpack str; returns the offset of its text in `out`.
fn write_str(out: &mut Vec<u8>, s: &[u8]) -> usize {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n < 256 {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n < 65_536 {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    let at = out.len();
    out.extend_from_slice(s);
    at
}

/// Sets the header of the container whose one reserved byte is at `head`:
/// `markers` = [fix marker, 16-bit marker, 32-bit marker].
fn set_header(out: &mut Vec<u8>, head: usize, n: usize, markers: [u8; 3]) {
    if n < 16 {
        out[head] = markers[0] | n as u8;
    } else if n < 65_536 {
        out[head] = markers[1];
        out.splice(head + 1..head + 1, (n as u16).to_be_bytes());
    } else {
        out[head] = markers[2];
        out.splice(head + 1..head + 1, (n as u32).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

    /// The reference: serde_json's parser driving rmp, as the filter did before this module.
    fn reference(json: &[u8]) -> Option<Vec<u8>> {
        struct Seed<'o>(&'o mut Vec<u8>);
        impl<'de> DeserializeSeed<'de> for Seed<'_> {
            type Value = ();
            fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(V(self.0))
            }
        }
        struct V<'o>(&'o mut Vec<u8>);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
                rmp::encode::write_bool(self.0, v).unwrap();
                Ok(())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
                rmp::encode::write_sint(self.0, v).unwrap();
                Ok(())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
                rmp::encode::write_uint(self.0, v).unwrap();
                Ok(())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
                rmp::encode::write_f64(self.0, v).unwrap();
                Ok(())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
                rmp::encode::write_str(self.0, v).unwrap();
                Ok(())
            }
            fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                rmp::encode::write_nil(self.0).unwrap();
                Ok(())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                let mut body = Vec::new();
                let mut n = 0u32;
                while seq.next_element_seed(Seed(&mut body))?.is_some() {
                    n += 1;
                }
                rmp::encode::write_array_len(self.0, n).unwrap();
                self.0.extend_from_slice(&body);
                Ok(())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                let mut body = Vec::new();
                let mut n = 0u32;
                while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    rmp::encode::write_str(&mut body, &k).unwrap();
                    map.next_value_seed(Seed(&mut body))?;
                    n += 1;
                }
                rmp::encode::write_map_len(self.0, n).unwrap();
                self.0.extend_from_slice(&body);
                Ok(())
            }
        }
        let mut out = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(json);
        Seed(&mut out).deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(out)
    }

    fn ours(json: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        json_to_msgpack(json, &mut out).ok().map(|()| out)
    }

    /// Same bytes, except that a float may differ from serde_json's in its last bit: ours is
    /// correctly rounded (Rust's parser), serde_json's default parser is not always.
    fn same(json: &[u8]) {
        let (a, b) = (ours(json), reference(json));
        if a == b {
            return;
        }
        let what = String::from_utf8_lossy(json);
        let (Some(a), Some(b)) = (a.clone(), b.clone()) else {
            panic!("{what:?}: ours {a:?}, serde_json {b:?}");
        };
        let read = |v: &[u8]| rmpv::decode::read_value(&mut &v[..]).unwrap();
        assert!(close(&read(&a), &read(&b)), "{what:?}");
    }

    fn close(a: &rmpv::Value, b: &rmpv::Value) -> bool {
        use rmpv::Value::*;
        match (a, b) {
            (F64(x), F64(y)) => x.to_bits().abs_diff(y.to_bits()) <= 1,
            (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| close(a, b)),
            (Map(x), Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|((ka, va), (kb, vb))| ka == kb && close(va, vb))
            }
            _ => a == b,
        }
    }

    #[test]
    fn matches_serde_json_on_hand_picked_inputs() {
        let cases: &[&[u8]] = &[
            br#"{"z":1,"a":[true,null,-2,1.5,"x"],"m":{"k":"v"}}"#,
            b" { } ",
            b"[]",
            b"0",
            b"-0",
            b"-0.0",
            b"1e400",
            b"-1e400",
            b"1e-400",
            b"0e999999999999",
            b"18446744073709551615",
            b"18446744073709551616",
            b"-9223372036854775808",
            b"-9223372036854775809",
            b"127",
            b"128",
            b"-32",
            b"-33",
            b"65536",
            b"01",
            b"1.",
            b".5",
            b"1e",
            b"1e+",
            b"-",
            b"+1",
            b"1.5e3",
            b"2.2250738585072014e-308",
            b"123456789012345678901234567890",
            br#""\u0000\b\f\n\r\t\/\\\"""#,
            br#""\ud83d\ude00""#,
            br#""\ud83d""#,
            br#""\ude00""#,
            br#""\ud83d\u0041""#,
            br#""\u12""#,
            br#""\x""#,
            b"\"a\x01b\"",
            b"\"\xc3\xa9\"",
            b"\"\xff\"",
            b"\"unterminated",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{1:2}",
            b"[1 2]",
            b"tru",
            b"true false",
            b"nul",
            b"",
            b"   ",
            b"{\"a\":1}x",
            b"{\"a\":1}\n",
            b"\x7f",
            br#"{"k":"v","k":"w"}"#,
            br#"[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]"#,
            br#"[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14]"#,
        ];
        for c in cases {
            same(c);
        }
        // 16+ entries, long strings, deep nesting (127 levels are fine, 128 are not).
        let big: String = format!(
            "{{{}}}",
            (0..70_000)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        same(big.as_bytes());
        same(format!("\"{}\"", "x".repeat(70_000)).as_bytes());
        same(format!("\"{}\\n\"", "x".repeat(300)).as_bytes());
        for depth in [126, 127, 128, 129] {
            same(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).as_bytes());
            same(format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).as_bytes());
        }
    }

    #[test]
    fn matches_serde_json_on_random_inputs() {
        // Random documents from a small grammar, then random single-byte mutations of them.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        fn gen(rng: &mut rand::rngs::StdRng, depth: u32, out: &mut String) {
            let pick = if depth > 4 {
                rng.gen_range(0..6)
            } else {
                rng.gen_range(0..8)
            };
            match pick {
                0 => out.push_str(["true", "false", "null"][rng.gen_range(0..3)]),
                1 => out.push_str(&rng.gen::<i64>().to_string()),
                2 => out.push_str(&rng.gen_range(0u64..300).to_string()),
                3 => out.push_str(&format!("{:e}", rng.gen::<f64>() * 1e10)),
                4 | 5 => {
                    out.push('"');
                    for _ in 0..rng.gen_range(0..40) {
                        match rng.gen_range(0..12) {
                            0 => out.push_str("\\\""),
                            1 => out.push_str("\\n"),
                            2 => out.push_str(&format!("\\u{:04x}", rng.gen_range(0..0xd800))),
                            3 => out.push('é'),
                            4 => out.push_str("\\ud83d\\ude00"),
                            _ => out.push(rng.gen_range(b' '..b'~') as char),
                        }
                    }
                    out.push('"');
                }
                6 => {
                    out.push('[');
                    for i in 0..rng.gen_range(0..20) {
                        if i > 0 {
                            out.push(',');
                        }
                        gen(rng, depth + 1, out);
                    }
                    out.push(']');
                }
                _ => {
                    out.push('{');
                    for i in 0..rng.gen_range(0..20) {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        out.push_str(&format!("\"k{}\": ", rng.gen_range(0..30)));
                        gen(rng, depth + 1, out);
                    }
                    out.push('}');
                }
            }
        }
        let alphabet = b"{}[]\",:\\ 0-1.eE+truefalsnu\x01\x80\xc3";
        for _ in 0..3_000 {
            let mut s = String::new();
            gen(&mut rng, 0, &mut s);
            same(s.as_bytes());
            let mut b = s.into_bytes();
            for _ in 0..3 {
                if b.is_empty() {
                    break;
                }
                let i = rng.gen_range(0..b.len());
                match rng.gen_range(0..3) {
                    0 => b[i] = alphabet[rng.gen_range(0..alphabet.len())],
                    1 => {
                        b.remove(i);
                    }
                    _ => b.insert(i, alphabet[rng.gen_range(0..alphabet.len())]),
                }
                same(&b);
            }
        }
    }

    #[test]
    fn object_entries_are_the_object_without_its_header() {
        let json = br#"{"a":1,"bb":{"c":[1,2]},"a":"x"}"#;
        let mut out = vec![0xff];
        let mut entries = Vec::new();
        object_entries(json, &mut out, &mut entries).unwrap();
        let whole = reference(json).unwrap();
        assert_eq!(&out[1..], &whole[1..]);
        assert_eq!(entries.len(), 3);
        assert_eq!(&out[entries[1].key_text.clone()], b"bb");
        assert_eq!(&out[entries[2].value.clone()], &[0xa1, b'x']);
        assert_eq!(
            object_entries(b"[1]", &mut out, &mut entries),
            Err(JsonError::NotObject)
        );
        assert!(matches!(
            object_entries(b"{\"a\":}", &mut out, &mut entries),
            Err(JsonError::Syntax { .. })
        ));
        assert!(matches!(
            object_entries(b"[1", &mut out, &mut entries),
            Err(JsonError::Syntax { .. })
        ));
    }
}
