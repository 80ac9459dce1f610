//! The on-disk format of a file-buffer chunk (`<buffer @type file>`): version 2 is written,
//! versions 1 and 2 are read (chunks left by a logship before the upgrade still recover).
//!
//! A chunk file is append-only: a header record written when the chunk is created, then one
//! frame per batch pushed into it. All integers are little-endian.
//!
//! ```text
//! header:   magic "LOGSHIPC" (8) | version u32 | created secs i64 | created nanos u32
//!           | tag_len u16 | tag (the first batch's tag, informational)
//!           | xxh3-64 of everything before (u64)
//! frame v2: sync "LSFR" (4) | payload_len u32 | xxh3-64 of the payload (u64) | payload
//! payload:  encoding u8 (0 plain, 1 gzip) | body (gzip-compressed with encoding 1)
//! body:     tag_len u16 | tag | events u32
//!           | events × (secs i64 | nanos u32 | meta_len u32 | meta | rec_len u32 | record)
//! frame v1: payload_len u32 | xxh3-64 of the payload (u64)
//!           | tag_len u16 | tag | events u32 | events × (secs i64 | nanos u32 | rec_len u32 | record)
//! ```
//!
//! Records are stored in wire form: the msgpack bytes of the map exactly as received (no
//! JSON, no re-encoding). `meta` is the event's Forward v1.5 metadata, the msgpack bytes of
//! its map as received; `meta_len` = `0xFFFF_FFFF` when the event has none (an empty map is
//! `0x80`, one byte: "none" and "empty" stay different). Version 1 had no metadata.
//!
//! A frame is valid only when it is complete and its checksum matches. [`scan`] keeps **every**
//! valid frame: after a damaged frame it looks for the next valid one (the sync marker of
//! version 2 makes that a search for 4 bytes; in version 1 every offset is tried), so damage
//! in the middle of a chunk costs only the damaged bytes. What follows the last valid frame is
//! the **tail**: an incomplete frame there is a write interrupted by a crash (never acked,
//! since an ack needs the fsync after the write); a complete one with a bad checksum was
//! damaged. A file whose header is unreadable is *corrupt* (recovery moves it aside).

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

use crate::event::{Event, EventBatch, EventTime};

/// First bytes of every chunk file.
pub const MAGIC: &[u8; 8] = b"LOGSHIPC";
/// The format version written by this code.
pub const VERSION: u32 = 2;
/// The first format (no metadata, no sync marker, no compression); still read.
pub const VERSION_1: u32 = 1;
/// First bytes of every version-2 frame.
pub const FRAME_SYNC: &[u8; 4] = b"LSFR";
/// Bytes before a version-2 frame's payload (sync + length + checksum).
pub const FRAME_HEADER: usize = 16;
/// Bytes before a version-1 frame's payload (length + checksum).
pub const FRAME_HEADER_V1: usize = 12;
/// Largest payload a frame may declare; anything larger is treated as damage, not data.
pub const MAX_FRAME: u32 = 1 << 30;
/// `meta_len` of an event without metadata.
pub const NO_METADATA: u32 = u32::MAX;

const ENCODING_PLAIN: u8 = 0;
const ENCODING_GZIP: u8 = 1;

/// The header record of a chunk file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHeader {
    pub version: u32,
    pub created: EventTime,
    pub tag: String,
}

/// Why a chunk file cannot be used at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkFileError {
    /// Shorter than a header: created, then the process died before the header was synced.
    #[error("header incomplete ({0} bytes)")]
    ShortHeader(usize),
    #[error("not a logship chunk file (bad magic)")]
    BadMagic,
    #[error("unsupported chunk format version {0}")]
    Version(u32),
    #[error("header checksum mismatch")]
    HeaderChecksum,
}

/// Appends the header record of a new (version 2) chunk to `out`.
pub fn write_header(out: &mut Vec<u8>, created: EventTime, tag: &str) {
    write_header_version(out, VERSION, created, tag);
}

fn write_header_version(out: &mut Vec<u8>, version: u32, created: EventTime, tag: &str) {
    let start = out.len();
    let tag = &tag.as_bytes()[..tag.len().min(u16::MAX as usize)];
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&created.secs.to_le_bytes());
    out.extend_from_slice(&created.nanos.to_le_bytes());
    out.extend_from_slice(&(tag.len() as u16).to_le_bytes());
    out.extend_from_slice(tag);
    let sum = xxh3_64(&out[start..]);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// Parses the header at the start of `data`; returns it and its length.
pub fn read_header(data: &[u8]) -> Result<(ChunkHeader, usize), ChunkFileError> {
    const FIXED: usize = 8 + 4 + 8 + 4 + 2;
    if data.len() >= 8 && &data[..8] != MAGIC {
        return Err(ChunkFileError::BadMagic);
    }
    if data.len() < FIXED {
        return Err(ChunkFileError::ShortHeader(data.len()));
    }
    let version = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
    let secs = i64::from_le_bytes(data[12..20].try_into().expect("8 bytes"));
    let nanos = u32::from_le_bytes(data[20..24].try_into().expect("4 bytes"));
    let tag_len = u16::from_le_bytes(data[24..26].try_into().expect("2 bytes")) as usize;
    let end = FIXED + tag_len;
    if data.len() < end + 8 {
        return Err(ChunkFileError::ShortHeader(data.len()));
    }
    let sum = u64::from_le_bytes(data[end..end + 8].try_into().expect("8 bytes"));
    if xxh3_64(&data[..end]) != sum {
        return Err(ChunkFileError::HeaderChecksum);
    }
    if version != VERSION && version != VERSION_1 {
        return Err(ChunkFileError::Version(version));
    }
    Ok((
        ChunkHeader {
            version,
            created: EventTime::new(secs, nanos),
            tag: String::from_utf8_lossy(&data[FIXED..end]).into_owned(),
        },
        end + 8,
    ))
}

/// A frame ready to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The frame as written to disk.
    pub bytes: Vec<u8>,
    /// Bytes of the body before compression (what `chunk_limit_size` counts).
    pub body_len: u64,
}

/// Bytes of the uncompressed body of `batch`.
pub fn body_len(batch: &EventBatch) -> usize {
    2 + batch.tag.len().min(u16::MAX as usize)
        + 4
        + batch
            .events
            .iter()
            .map(|e| 20 + e.record.len() + e.metadata.as_ref().map_or(0, |m| m.len()))
            .sum::<usize>()
}

fn write_body(out: &mut Vec<u8>, batch: &EventBatch) {
    let tag = &batch.tag.as_bytes()[..batch.tag.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(tag.len() as u16).to_le_bytes());
    out.extend_from_slice(tag);
    out.extend_from_slice(&(batch.events.len() as u32).to_le_bytes());
    for e in &batch.events {
        out.extend_from_slice(&e.time.secs.to_le_bytes());
        out.extend_from_slice(&e.time.nanos.to_le_bytes());
        match &e.metadata {
            Some(m) => {
                out.extend_from_slice(&(m.len() as u32).to_le_bytes());
                out.extend_from_slice(m);
            }
            None => out.extend_from_slice(&NO_METADATA.to_le_bytes()),
        }
        out.extend_from_slice(&(e.record.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.record);
    }
}

/// The version-2 frame of `batch`, its payload gzip-compressed when `gzip` (level 1: a third
/// of the CPU of the default level for most of its saving on log records).
pub fn encode_frame(batch: &EventBatch, gzip: bool) -> EncodedFrame {
    let body_len = body_len(batch);
    let mut out = Vec::with_capacity(FRAME_HEADER + 1 + if gzip { body_len / 4 } else { body_len });
    out.extend_from_slice(FRAME_SYNC);
    out.extend_from_slice(&[0u8; FRAME_HEADER - 4]);
    if gzip {
        out.push(ENCODING_GZIP);
        let mut body = Vec::with_capacity(body_len);
        write_body(&mut body, batch);
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        gz.write_all(&body).expect("writing into a Vec");
        out = gz.finish().expect("writing into a Vec");
    } else {
        out.push(ENCODING_PLAIN);
        write_body(&mut out, batch);
    }
    let len = (out.len() - FRAME_HEADER) as u32;
    let sum = xxh3_64(&out[FRAME_HEADER..]);
    out[4..8].copy_from_slice(&len.to_le_bytes());
    out[8..16].copy_from_slice(&sum.to_le_bytes());
    EncodedFrame {
        bytes: out,
        body_len: body_len as u64,
    }
}

/// How the bytes after the last valid frame look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// The file ends with a valid frame.
    Clean,
    /// An incomplete frame: a write interrupted by a crash.
    Incomplete,
    /// Complete but failing its checksum (or malformed).
    Damaged,
}

/// A damaged region followed by valid frames, skipped by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    pub offset: u64,
    pub len: u64,
}

/// What a scan of a whole chunk file found.
#[derive(Debug)]
pub struct Scanned {
    pub header: ChunkHeader,
    /// The batches of every valid frame, in order (records are slices of the file's bytes, or
    /// of the decompressed payload).
    pub batches: Vec<EventBatch>,
    pub records: u64,
    /// Bytes of valid frames.
    pub frame_bytes: u64,
    /// Offset where the last valid frame ends (the header's end when there is none).
    pub valid_len: u64,
    /// Bytes after `valid_len` (0 for a clean file), and what they look like.
    pub torn_bytes: u64,
    pub tail: Tail,
    /// Damaged regions between valid frames, each skipped.
    pub skipped: Vec<Skipped>,
}

impl Scanned {
    /// Bytes of the damaged regions in the middle.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped.iter().map(|s| s.len).sum()
    }
}

/// Why the bytes at an offset are not a valid frame.
enum Bad {
    /// The data ends before the frame does.
    Short,
    Damaged,
}

/// Decodes a chunk file's bytes, keeping every valid frame (see the module docs).
pub fn scan(data: Bytes) -> Result<Scanned, ChunkFileError> {
    let (header, header_len) = read_header(&data)?;
    let v = header.version;
    let mut batches = Vec::new();
    let mut records = 0u64;
    let mut frame_bytes = 0u64;
    let mut skipped = Vec::new();
    let mut pos = header_len;
    let mut valid_end = header_len;
    let mut tail = Tail::Clean;
    while pos < data.len() {
        match decode_frame(&data, pos, v) {
            Ok((batch, next)) => {
                records += batch.events.len() as u64;
                frame_bytes += (next - pos) as u64;
                batches.push(batch);
                pos = next;
                valid_end = next;
            }
            Err(bad) => match resync(&data, pos + 1, v) {
                Some(next) => {
                    skipped.push(Skipped {
                        offset: pos as u64,
                        len: (next - pos) as u64,
                    });
                    pos = next;
                }
                None => {
                    tail = match bad {
                        Bad::Short => Tail::Incomplete,
                        Bad::Damaged => Tail::Damaged,
                    };
                    break;
                }
            },
        }
    }
    Ok(Scanned {
        header,
        batches,
        records,
        frame_bytes,
        valid_len: valid_end as u64,
        torn_bytes: (data.len() - valid_end) as u64,
        tail,
        skipped,
    })
}

/// The offset of the next valid frame at or after `from`.
fn resync(data: &Bytes, from: usize, version: u32) -> Option<usize> {
    let mut at = from;
    while at < data.len() {
        let cand = if version == VERSION_1 {
            at
        } else {
            at + data[at..].windows(4).position(|w| w == FRAME_SYNC)?
        };
        if decode_frame(data, cand, version).is_ok() {
            return Some(cand);
        }
        at = cand + 1;
    }
    None
}

fn le_u32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// The frame at `pos`: its batch and where the next frame starts.
fn decode_frame(data: &Bytes, pos: usize, version: u32) -> Result<(EventBatch, usize), Bad> {
    let (head, len_at) = if version == VERSION_1 {
        (FRAME_HEADER_V1, pos)
    } else {
        match data.get(pos..pos + 4) {
            Some(s) if s == FRAME_SYNC => {}
            Some(_) => return Err(Bad::Damaged),
            None => return Err(Bad::Short),
        }
        (FRAME_HEADER, pos + 4)
    };
    let len = le_u32(data, len_at).ok_or(Bad::Short)?;
    if len > MAX_FRAME {
        return Err(Bad::Damaged);
    }
    let sum = u64::from_le_bytes(
        data.get(len_at + 4..len_at + 12)
            .ok_or(Bad::Short)?
            .try_into()
            .map_err(|_| Bad::Short)?,
    );
    let start = pos + head;
    let end = start.checked_add(len as usize).ok_or(Bad::Damaged)?;
    let payload = data.get(start..end).ok_or(Bad::Short)?;
    if xxh3_64(payload) != sum {
        return Err(Bad::Damaged);
    }
    // The checksum matched, so the payload is what was written; still parse defensively.
    let batch = if version == VERSION_1 {
        decode_body(&data.slice(start..end), false)
    } else {
        match payload.first() {
            Some(&ENCODING_PLAIN) => decode_body(&data.slice(start + 1..end), true),
            Some(&ENCODING_GZIP) => {
                let mut body = Vec::new();
                flate2::read::GzDecoder::new(&payload[1..])
                    .read_to_end(&mut body)
                    .map_err(|_| Bad::Damaged)?;
                decode_body(&Bytes::from(body), true)
            }
            _ => None,
        }
    };
    Ok((batch.ok_or(Bad::Damaged)?, end))
}

/// A frame body; `with_metadata` for version 2.
fn decode_body(body: &Bytes, with_metadata: bool) -> Option<EventBatch> {
    let tag_len = u16::from_le_bytes(body.get(0..2)?.try_into().ok()?) as usize;
    let tag = std::str::from_utf8(body.get(2..2 + tag_len)?).ok()?;
    let mut p = 2 + tag_len;
    let n = le_u32(body, p)? as usize;
    p += 4;
    let mut events = Vec::with_capacity(n.min(body.len() / 16));
    for _ in 0..n {
        let secs = i64::from_le_bytes(body.get(p..p + 8)?.try_into().ok()?);
        let nanos = le_u32(body, p + 8)?;
        p += 12;
        let metadata = if with_metadata {
            let ml = le_u32(body, p)?;
            p += 4;
            if ml == NO_METADATA {
                None
            } else {
                let ml = ml as usize;
                body.get(p..p + ml)?;
                p += ml;
                Some(body.slice(p - ml..p))
            }
        } else {
            None
        };
        let rl = le_u32(body, p)? as usize;
        p += 4;
        body.get(p..p + rl)?;
        events.push(Event::with_metadata(
            EventTime::new(secs, nanos),
            body.slice(p..p + rl),
            metadata,
        ));
        p += rl;
    }
    if p != body.len() {
        return None;
    }
    let tag: Arc<str> = Arc::from(tag);
    Some(EventBatch { tag, events })
}

/// The version-1 writer, kept for tests: files as a logship before format version 2 left them.
#[cfg(test)]
pub mod v1 {
    use super::*;

    pub fn write_header(out: &mut Vec<u8>, created: EventTime, tag: &str) {
        write_header_version(out, VERSION_1, created, tag);
    }

    pub fn write_frame(out: &mut Vec<u8>, batch: &EventBatch) {
        let start = out.len();
        out.extend_from_slice(&[0u8; FRAME_HEADER_V1]);
        out.extend_from_slice(&(batch.tag.len() as u16).to_le_bytes());
        out.extend_from_slice(batch.tag.as_bytes());
        out.extend_from_slice(&(batch.events.len() as u32).to_le_bytes());
        for e in &batch.events {
            out.extend_from_slice(&e.time.secs.to_le_bytes());
            out.extend_from_slice(&e.time.nanos.to_le_bytes());
            out.extend_from_slice(&(e.record.len() as u32).to_le_bytes());
            out.extend_from_slice(&e.record);
        }
        let payload = start + FRAME_HEADER_V1;
        let len = (out.len() - payload) as u32;
        let sum = xxh3_64(&out[payload..]);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + FRAME_HEADER_V1].copy_from_slice(&sum.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(tag: &str, n: usize) -> EventBatch {
        EventBatch::new(
            tag,
            (0..n)
                .map(|i| {
                    let meta = match i % 3 {
                        0 => None,
                        1 => Some(Bytes::from_static(&[0x80])),
                        _ => Some(Bytes::from(vec![0x81, 0xa1, b'm', i as u8 & 0x7f])),
                    };
                    Event::with_metadata(
                        EventTime::new(1_700_000_000 + i as i64, i as u32),
                        Bytes::from(vec![0x81, 0xa1, b'k', 0xa1, b'0' + (i % 10) as u8]),
                        meta,
                    )
                })
                .collect(),
        )
    }

    fn file(batches: &[EventBatch], gzip: bool) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        write_header(&mut out, EventTime::new(5, 6), "docker.api");
        let mut ends = Vec::new();
        for b in batches {
            let f = encode_frame(b, gzip);
            assert_eq!(f.body_len as usize, body_len(b));
            out.extend_from_slice(&f.bytes);
            ends.push(out.len());
        }
        (out, ends)
    }

    #[test]
    fn round_trip_with_metadata_plain_and_gzip() {
        let bs = vec![batch("a", 3), batch("b.c", 0), batch("d", 5)];
        for gzip in [false, true] {
            let (data, _) = file(&bs, gzip);
            let s = scan(Bytes::from(data.clone())).unwrap();
            assert_eq!(s.header.tag, "docker.api");
            assert_eq!(s.header.version, VERSION);
            assert_eq!(s.header.created, EventTime::new(5, 6));
            assert_eq!(s.batches, bs, "gzip {gzip}");
            assert_eq!(s.records, 8);
            assert_eq!((s.torn_bytes, s.tail), (0, Tail::Clean));
            assert_eq!(s.valid_len, data.len() as u64);
        }
        // gzip makes a repetitive batch smaller on disk
        let big = EventBatch::new(
            "t",
            (0..200)
                .map(|_| Event::new(EventTime::new(1, 0), Bytes::from(vec![0xa5; 300])))
                .collect(),
        );
        let plain = encode_frame(&big, false);
        let gz = encode_frame(&big, true);
        assert_eq!(plain.body_len, gz.body_len);
        assert!(
            gz.bytes.len() * 10 < plain.bytes.len(),
            "{}",
            gz.bytes.len()
        );
    }

    #[test]
    fn version_1_files_still_read() {
        let bs = vec![batch("a", 3), batch("b", 2)];
        let mut out = Vec::new();
        v1::write_header(&mut out, EventTime::new(5, 6), "t");
        for b in &bs {
            v1::write_frame(&mut out, b);
        }
        let s = scan(Bytes::from(out)).unwrap();
        assert_eq!(s.header.version, VERSION_1);
        // version 1 had no metadata: the events come back without it
        let plain: Vec<EventBatch> = bs
            .iter()
            .map(|b| {
                EventBatch::new(
                    b.tag.clone(),
                    b.events
                        .iter()
                        .map(|e| Event::new(e.time, e.record.clone()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(s.batches, plain);
    }

    #[test]
    fn every_torn_tail_keeps_the_valid_prefix() {
        let bs = vec![batch("a", 3), batch("b", 4)];
        let (data, ends) = file(&bs, false);
        let (_, header_len) = read_header(&data).unwrap();
        for cut in 0..data.len() {
            let r = scan(Bytes::copy_from_slice(&data[..cut]));
            if cut < header_len {
                assert!(matches!(r, Err(ChunkFileError::ShortHeader(_))), "{cut}");
                continue;
            }
            let s = r.unwrap();
            let want = if cut >= ends[0] { 1 } else { 0 };
            assert_eq!(s.batches.len(), want, "cut at {cut}");
            assert_eq!(s.valid_len + s.torn_bytes, cut as u64);
            assert!(s.skipped.is_empty());
            let clean = cut == header_len || cut == ends[0];
            assert_eq!(s.tail == Tail::Clean, clean, "cut at {cut}: {:?}", s.tail);
            if !clean {
                assert_eq!(s.tail, Tail::Incomplete, "cut at {cut}");
            }
        }
        // a flipped bit in the last frame: the first frame survives, the tail is damaged
        let mut bad = data.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let s = scan(Bytes::from(bad)).unwrap();
        assert_eq!(s.batches, bs[..1]);
        assert_eq!(s.tail, Tail::Damaged);
        assert_eq!(s.torn_bytes, (data.len() - ends[0]) as u64);
    }

    /// Flips one byte in frame `i` of five (every byte of it, in turn): exactly the other
    /// four frames come back, whatever field the damage hits, in both versions.
    #[test]
    fn damage_anywhere_in_a_frame_costs_only_that_frame() {
        let bs: Vec<EventBatch> = (0..5).map(|i| batch(&format!("t{i}"), 2 + i)).collect();
        let (data, ends) = file(&bs, false);
        let mut v1data = Vec::new();
        v1::write_header(&mut v1data, EventTime::new(5, 6), "t");
        let mut v1ends = Vec::new();
        for b in &bs {
            v1::write_frame(&mut v1data, b);
            v1ends.push(v1data.len());
        }
        let (_, hl) = read_header(&data).unwrap();
        let (_, hl1) = read_header(&v1data).unwrap();
        for (data, ends, hl, v1) in [(&data, &ends, hl, false), (&v1data, &v1ends, hl1, true)] {
            for i in 0..bs.len() {
                let start = if i == 0 { hl } else { ends[i - 1] };
                for at in start..ends[i] {
                    let mut bad = data.clone();
                    bad[at] ^= 0x5a;
                    let s = scan(Bytes::from(bad)).unwrap();
                    let tags: Vec<String> = s.batches.iter().map(|b| b.tag.to_string()).collect();
                    let want: Vec<String> = (0..bs.len())
                        .filter(|j| *j != i)
                        .map(|j| format!("t{j}"))
                        .collect();
                    assert_eq!(tags, want, "v1 {v1}: frame {i}, byte {at}");
                    if i + 1 < bs.len() {
                        assert_eq!(s.skipped.len(), 1, "v1 {v1}: frame {i}, byte {at}");
                        assert_eq!(s.skipped_bytes(), (ends[i] - start) as u64);
                        assert_eq!(s.tail, Tail::Clean);
                    } else {
                        assert!(s.skipped.is_empty());
                        assert_ne!(s.tail, Tail::Clean);
                    }
                }
            }
        }
    }

    #[test]
    fn damaged_headers_are_errors() {
        let (data, _) = file(&[batch("a", 1)], false);
        let mut bad = data.clone();
        bad[0] = b'X';
        assert_eq!(
            scan(Bytes::from(bad)).unwrap_err(),
            ChunkFileError::BadMagic
        );
        let mut bad = data.clone();
        bad[13] ^= 0xff;
        assert_eq!(
            scan(Bytes::from(bad)).unwrap_err(),
            ChunkFileError::HeaderChecksum
        );
    }
}
