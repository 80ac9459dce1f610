//! msgpack → JSON, written straight into a `Vec<u8>` without building a value tree.
//!
//! Sinks (stdout, file, later Elasticsearch) call [`write_json`] on a record's wire bytes.
//!
//! # Mapping
//! | msgpack | JSON |
//! | --- | --- |
//! | nil, bool | `null`, `true`/`false` |
//! | int / uint (all widths, up to `u64::MAX` / `i64::MIN`) | the exact integer |
//! | float32 / float64 | shortest round-trip decimal (`42.0` keeps its fraction); NaN and ±Infinity become `null` (JSON has no such values) |
//! | str | a JSON string; bytes that are not valid UTF-8 are replaced by U+FFFD, one per invalid sequence (as `String::from_utf8_lossy`) |
//! | bin | a JSON string: the bytes as text when they are valid UTF-8 (Fluentd does not tell bin from str either), otherwise standard base64 with padding |
//! | array, map | array, object |
//! | ext | `{"$ext":{"type":N,"data":"<base64>"}}`, the shape the shared golden vectors use |
//!
//! Map keys that are not strings become strings: the JSON text of the key (`1` → `"1"`,
//! `nil` → `"null"`). Nesting deeper than [`MAX_DEPTH`] is an error rather than a stack overflow.

use base64::Engine as _;

/// Deepest nesting of arrays and maps accepted.
pub const MAX_DEPTH: usize = 128;

/// Why a buffer could not be transcoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    /// The buffer ends in the middle of a value.
    #[error("truncated msgpack value")]
    Truncated,
    /// Byte 0xc1, which msgpack never uses.
    #[error("invalid msgpack marker 0x{0:02x}")]
    InvalidMarker(u8),
    /// Arrays/maps nested deeper than [`MAX_DEPTH`].
    #[error("msgpack value nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Transcodes the single msgpack value at the start of `input` into `out`; returns how many
/// bytes of `input` it used.
pub fn write_json(input: &[u8], out: &mut Vec<u8>) -> Result<usize, TranscodeError> {
    let mut r = Reader { buf: input, pos: 0 };
    r.value(out, 0)?;
    Ok(r.pos)
}

/// Convenience: the JSON text of the msgpack value at the start of `input`.
pub fn to_json_string(input: &[u8]) -> Result<String, TranscodeError> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 4 + 8);
    write_json(input, &mut out)?;
    // write_json only writes valid UTF-8.
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TranscodeError> {
        let end = self.pos.checked_add(n).ok_or(TranscodeError::Truncated)?;
        if end > self.buf.len() {
            return Err(TranscodeError::Truncated);
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, TranscodeError> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> Result<[u8; N], TranscodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn len8(&mut self) -> Result<usize, TranscodeError> {
        Ok(self.u8()? as usize)
    }
    fn len16(&mut self) -> Result<usize, TranscodeError> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }
    fn len32(&mut self) -> Result<usize, TranscodeError> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), TranscodeError> {
        let m = self.u8()?;
        match m {
            0x00..=0x7f => write_u64(out, m as u64),
            0xe0..=0xff => write_i64(out, (m as i8) as i64),
            0x80..=0x8f => self.map(out, (m & 0x0f) as usize, depth)?,
            0x90..=0x9f => self.array(out, (m & 0x0f) as usize, depth)?,
            0xa0..=0xbf => {
                let s = self.take((m & 0x1f) as usize)?;
                write_str_lossy(out, s);
            }
            0xc0 => out.extend_from_slice(b"null"),
            0xc1 => return Err(TranscodeError::InvalidMarker(m)),
            0xc2 => out.extend_from_slice(b"false"),
            0xc3 => out.extend_from_slice(b"true"),
            0xc4..=0xc6 => {
                let n = match m {
                    0xc4 => self.len8()?,
                    0xc5 => self.len16()?,
                    _ => self.len32()?,
                };
                let b = self.take(n)?;
                write_bin(out, b);
            }
            0xc7..=0xc9 => {
                let n = match m {
                    0xc7 => self.len8()?,
                    0xc8 => self.len16()?,
                    _ => self.len32()?,
                };
                let ty = self.u8()? as i8;
                let d = self.take(n)?;
                write_ext(out, ty, d);
            }
            0xca => write_f32(out, f32::from_be_bytes(self.be()?)),
            0xcb => write_f64(out, f64::from_be_bytes(self.be()?)),
            0xcc => write_u64(out, self.u8()? as u64),
            0xcd => write_u64(out, u16::from_be_bytes(self.be()?) as u64),
            0xce => write_u64(out, u32::from_be_bytes(self.be()?) as u64),
            0xcf => write_u64(out, u64::from_be_bytes(self.be()?)),
            0xd0 => write_i64(out, i8::from_be_bytes(self.be()?) as i64),
            0xd1 => write_i64(out, i16::from_be_bytes(self.be()?) as i64),
            0xd2 => write_i64(out, i32::from_be_bytes(self.be()?) as i64),
            0xd3 => write_i64(out, i64::from_be_bytes(self.be()?)),
            0xd4..=0xd8 => {
                let n = 1usize << (m - 0xd4);
                let ty = self.u8()? as i8;
                let d = self.take(n)?;
                write_ext(out, ty, d);
            }
            0xd9..=0xdb => {
                let n = match m {
                    0xd9 => self.len8()?,
                    0xda => self.len16()?,
                    _ => self.len32()?,
                };
                let s = self.take(n)?;
                write_str_lossy(out, s);
            }
            0xdc => {
                let n = self.len16()?;
                self.array(out, n, depth)?
            }
            0xdd => {
                let n = self.len32()?;
                self.array(out, n, depth)?
            }
            0xde => {
                let n = self.len16()?;
                self.map(out, n, depth)?
            }
            0xdf => {
                let n = self.len32()?;
                self.map(out, n, depth)?
            }
        }
        Ok(())
    }

    fn array(&mut self, out: &mut Vec<u8>, n: usize, depth: usize) -> Result<(), TranscodeError> {
        if depth >= MAX_DEPTH {
            return Err(TranscodeError::TooDeep);
        }
        out.push(b'[');
        for i in 0..n {
            if i > 0 {
                out.push(b',');
            }
            self.value(out, depth + 1)?;
        }
        out.push(b']');
        Ok(())
    }

    fn map(&mut self, out: &mut Vec<u8>, n: usize, depth: usize) -> Result<(), TranscodeError> {
        if depth >= MAX_DEPTH {
            return Err(TranscodeError::TooDeep);
        }
        out.push(b'{');
        for i in 0..n {
            if i > 0 {
                out.push(b',');
            }
            self.key(out, depth + 1)?;
            out.push(b':');
            self.value(out, depth + 1)?;
        }
        out.push(b'}');
        Ok(())
    }

    fn key(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), TranscodeError> {
        let m = *self.buf.get(self.pos).ok_or(TranscodeError::Truncated)?;
        match m {
            0xa0..=0xbf | 0xd9 | 0xda | 0xdb => self.value(out, depth),
            _ => {
                // Non-string key: its JSON text, as a string.
                let mut tmp = Vec::new();
                self.value(&mut tmp, depth)?;
                if tmp.first() == Some(&b'"') {
                    out.extend_from_slice(&tmp);
                } else {
                    write_str_lossy(out, &tmp);
                }
                Ok(())
            }
        }
    }
}

fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut b = itoa_buf();
    out.extend_from_slice(fmt_u64(&mut b, v));
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
        write_u64(out, v.unsigned_abs());
    } else {
        write_u64(out, v as u64);
    }
}

fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

fn fmt_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        // serde_json formats finite floats with ryu (shortest round trip, keeps ".0").
        let _ = serde_json::to_writer(&mut *out, &v);
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_f32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &v);
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_bin(out: &mut Vec<u8>, b: &[u8]) {
    if std::str::from_utf8(b).is_ok() {
        write_str_lossy(out, b);
    } else {
        out.push(b'"');
        base64_into(out, b);
        out.push(b'"');
    }
}

fn base64_into(out: &mut Vec<u8>, b: &[u8]) {
    let s = base64::engine::general_purpose::STANDARD.encode(b);
    out.extend_from_slice(s.as_bytes());
}

fn write_ext(out: &mut Vec<u8>, ty: i8, d: &[u8]) {
    out.extend_from_slice(b"{\"$ext\":{\"type\":");
    write_i64(out, ty as i64);
    out.extend_from_slice(b",\"data\":\"");
    base64_into(out, d);
    out.extend_from_slice(b"\"}}");
}

/// `0` = copy as is; otherwise the character after the backslash (`u` = `\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Writes `s` as a JSON string (with quotes). Runs of bytes that need no escaping are copied
/// in one go.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_valid(out, s.as_bytes());
    out.push(b'"');
}

/// Writes bytes as a JSON string, replacing invalid UTF-8 sequences with U+FFFD.
///
/// Escaping is byte-wise and never touches bytes ≥ 0x80, so the bytes are escaped first and
/// validated only when one of them was ≥ 0x80 (the escaper reports that for free): ASCII
/// strings take a single pass.
pub fn write_str_lossy(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    let mark = out.len();
    if escape_valid(out, b) && std::str::from_utf8(b).is_err() {
        out.truncate(mark);
        let mut b = b;
        loop {
            match std::str::from_utf8(b) {
                Ok(s) => {
                    escape_valid(out, s.as_bytes());
                    break;
                }
                Err(e) => {
                    let (good, rest) = b.split_at(e.valid_up_to());
                    escape_valid(out, good);
                    out.extend_from_slice("\u{FFFD}".as_bytes());
                    match e.error_len() {
                        Some(n) => b = &rest[n..],
                        None => break,
                    }
                }
            }
        }
    }
    out.push(b'"');
}

/// High bit set in exactly the bytes of `v` below 0x20 (control characters).
#[inline(always)]
fn control_bytes(v: u64) -> u64 {
    !(((v & !HI) + LO * 0x60) | v) & HI
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in exactly the bytes of `v` that are a control character, `"` or `\\`.
///
/// Each test works on the low 7 bits of every byte (`t`), where adding 0x60 or 0x7f cannot
/// carry into the next byte: bit 7 of `t + 0x60` is set iff the byte is ≥ 0x20, bit 7 of
/// `(t ^ c) + 0x7f` iff the byte differs from `c`. Bytes ≥ 0x80 never need escaping.
#[inline(always)]
fn escape_mask(v: u64) -> u64 {
    let t = v & !HI;
    let not_ctl = t + LO * 0x60;
    let not_quote = (t ^ (LO * b'"' as u64)) + LO * 0x7f;
    let not_bs = (t ^ (LO * b'\\' as u64)) + LO * 0x7f;
    !((not_ctl & not_quote & not_bs) | v) & HI
}

/// Length of the longest prefix of `b` that needs no escaping, and the OR of the words read
/// (whose high bits tell whether a byte ≥ 0x80 was seen in that prefix).
#[inline(always)]
fn clean_prefix(b: &[u8]) -> (usize, u64) {
    let mut i = 0;
    let mut seen = 0;
    while let Some(w) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        let m = escape_mask(v);
        seen |= v; // bytes past the prefix are in `b` too
        if m != 0 {
            return (i + (m.trailing_zeros() / 8) as usize, seen);
        }
        i += 8;
    }
    let r = b.len() - i;
    if r > 0 && b.len() >= 8 {
        // The last 8 bytes, shifted so that only the `r` unread ones remain (the zero bytes
        // shifted in are cleared from the mask).
        let last = u64::from_le_bytes(b[b.len() - 8..].try_into().expect("8 bytes"));
        let v = last >> (8 * (8 - r));
        seen |= v;
        let m = escape_mask(v) & (u64::MAX >> (8 * (8 - r)));
        let k = if m == 0 {
            r
        } else {
            (m.trailing_zeros() / 8) as usize
        };
        return (i + k, seen);
    }
    while i < b.len() && ESCAPE[b[i] as usize] == 0 {
        seen |= b[i] as u64;
        i += 1;
    }
    (i, seen)
}

/// Appends `b` (valid UTF-8) JSON-escaped, without quotes.
///
/// The clean prefix (the whole string for keys, ids and most values) is found 8 bytes at a
/// time and copied with one `extend_from_slice`. From the first escape on, the output is
/// grown once (2 bytes per input byte plus slack; a `\\u00XX` escape grows it further) and
/// written by index, a word of 8 bytes per step: the word is stored as is, then for each
/// `"` or `\\` in it (exact mask, lowest first) a backslash is stored in front of the byte
/// and the rest of the word is stored again one byte further on. That is two stores per
/// escape instead of two per byte — log lines that embed JSON have a quote every few bytes.
/// Words holding a control character take the per-byte table path (rare).
///
/// Returns whether `b` holds a byte ≥ 0x80 (so ASCII callers need no UTF-8 validation).
fn escape_valid(out: &mut Vec<u8>, b: &[u8]) -> bool {
    let (p, mut seen) = clean_prefix(b);
    out.extend_from_slice(&b[..p]);
    let b = &b[p..];
    if b.is_empty() {
        return seen & HI != 0;
    }
    let n = b.len();
    let mut j = out.len();
    out.resize(j + 2 * n + SLACK, 0);
    let mut i = 0;
    // Invariant: out.len() >= j + 2 * (n - i) + SLACK.
    while let Some(w) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        seen |= v;
        let m = escape_mask(v);
        if m != 0 && control_bytes(v) != 0 {
            // `\\u00XX` needs up to 4 more bytes per input byte (rare)
            out.resize(out.len() + 32, 0);
            for &c in w {
                j = escape_byte(out, j, c);
            }
        } else {
            let dst: &mut [u8; 32] = (&mut out[j..j + 32]).try_into().expect("32 bytes");
            j += 8 + quote_word(dst, v, m);
        }
        i += 8;
    }
    let r = n - i;
    if r > 0 && n >= 8 {
        // The last 8 bytes, shifted so that only the `r` unread ones remain; the zero bytes
        // shifted in are cleared from the masks and their stores land beyond `j`.
        let keep = u64::MAX >> (8 * (8 - r));
        let v = u64::from_le_bytes(b[n - 8..].try_into().expect("8 bytes")) >> (8 * (8 - r));
        seen |= v;
        if control_bytes(v) & keep == 0 {
            let dst: &mut [u8; 32] = (&mut out[j..j + 32]).try_into().expect("32 bytes");
            j += r + quote_word(dst, v, escape_mask(v) & keep);
            out.truncate(j);
            return seen & HI != 0;
        }
    }
    for &c in &b[i..] {
        seen |= c as u64;
        if ESCAPE[c as usize] == b'u' {
            out.resize(out.len() + 4, 0);
        }
        j = escape_byte(out, j, c);
    }
    out.truncate(j);
    seen & HI != 0
}

/// Stores the word `v` at `dst` with a backslash in front of each byte flagged in `m` (only
/// `"` and `\\`, lowest first): the word is stored as is, then per escape a backslash and
/// the rest of the word one byte further on. Returns the number of backslashes.
#[inline(always)]
fn quote_word(dst: &mut [u8; 32], v: u64, mut m: u64) -> usize {
    dst[..8].copy_from_slice(&v.to_le_bytes());
    let mut extra = 0usize;
    while m != 0 {
        let bit = m.trailing_zeros() as usize; // 8 * position + 7
        let at = ((bit >> 3) + extra) & 15; // ≤ 14: 7 + 7 earlier escapes
        dst[at] = b'\\';
        dst[at + 1..at + 9].copy_from_slice(&(v >> (bit - 7)).to_le_bytes());
        extra += 1;
        m &= m - 1;
    }
    extra
}

/// Room beyond the 2-per-byte worst case: a word (also the last, partial one) is written
/// through a 32-byte window.
const SLACK: usize = 32;

/// Writes `c` at `out[j..]` (escaped if needed); returns the new write position. For a plain
/// byte the second store is scratch that the next byte overwrites.
#[inline(always)]
fn escape_byte(out: &mut [u8], j: usize, c: u8) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let t = ESCAPE[c as usize];
    if t == b'u' {
        out[j..j + 6].copy_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(c >> 4) as usize],
            HEX[(c & 0xf) as usize],
        ]);
        return j + 6;
    }
    let esc = t != 0;
    out[j] = if esc { b'\\' } else { c };
    out[j + 1] = t;
    j + 1 + esc as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_at_every_offset() {
        // Every special byte at every position of strings around the 8-byte step.
        for len in 0..20 {
            for pos in 0..len {
                for special in [0u8, 0x1f, b'"', b'\\', b'\n', 0x7f, b' ', b'~'] {
                    let mut s = vec![b'a'; len];
                    s[pos] = special;
                    let mut out = Vec::new();
                    write_str_lossy(&mut out, &s);
                    let want = serde_json::to_string(std::str::from_utf8(&s).unwrap()).unwrap();
                    assert_eq!(String::from_utf8(out).unwrap(), want, "len {len} pos {pos}");
                }
            }
        }
    }

    #[test]
    fn escapes_mixed_strings() {
        // Deterministic pseudo-random strings over an alphabet of plain, special, and
        // multi-byte characters, compared with serde_json's escaping.
        let alphabet = [
            "a", "Z", " ", "\"", "\\", "\n", "\t", "\u{1}", "\u{1f}", "é", "€", "😀", "{",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (x >> 58) as usize;
            let mut s = String::new();
            for _ in 0..len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push_str(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            let mut out = b"prefix".to_vec();
            write_str_lossy(&mut out, s.as_bytes());
            let want = format!("prefix{}", serde_json::to_string(&s).unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn escaper_matches_serde_json_on_random_bytes() {
        // Differential test: random byte strings built from every control character, `"`,
        // `\\`, DEL, U+2028/U+2029, multi-byte characters, long clean runs and invalid UTF-8
        // (lone continuation bytes, truncated sequences, 0xff). The expected text is
        // serde_json's escaping of `String::from_utf8_lossy` of the same bytes.
        let mut pieces: Vec<Vec<u8>> = (0u8..0x20).map(|c| vec![c]).collect();
        for p in [
            &b"\""[..],
            b"\\",
            b"\x7f",
            b"a",
            b"Z",
            b" ",
            b"{\"k\":",
            b"0123456789abcdef",
            "é".as_bytes(),
            "€".as_bytes(),
            "😀".as_bytes(),
            "\u{2028}".as_bytes(),
            "\u{2029}".as_bytes(),
            b"\x80",
            b"\xbf",
            b"\xc3",
            b"\xe2\x82",
            b"\xf0\x9f\x98",
            b"\xff",
            b"\xed\xa0\x80",
        ] {
            pieces.push(p.to_vec());
        }
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            let mut s = Vec::new();
            for _ in 0..len {
                s.extend_from_slice(&pieces[(next() % pieces.len() as u64) as usize]);
            }
            let mut out = b"x".to_vec();
            write_str_lossy(&mut out, &s);
            let want = format!(
                "x{}",
                serde_json::to_string(&String::from_utf8_lossy(&s)).unwrap()
            );
            assert_eq!(String::from_utf8(out).unwrap(), want, "input {s:?}");
        }
    }

    #[test]
    fn ints_and_strings() {
        let mut v = Vec::new();
        rmp::encode::write_map_len(&mut v, 2).unwrap();
        rmp::encode::write_str(&mut v, "a").unwrap();
        rmp::encode::write_uint(&mut v, u64::MAX).unwrap();
        rmp::encode::write_str(&mut v, "b\"").unwrap();
        rmp::encode::write_sint(&mut v, i64::MIN).unwrap();
        assert_eq!(
            to_json_string(&v).unwrap(),
            format!("{{\"a\":{},\"b\\\"\":{}}}", u64::MAX, i64::MIN)
        );
    }
}
