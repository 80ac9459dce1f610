//! The on-disk format of a file-buffer chunk (`<buffer @type file>`), format version 1.
//!
//! A chunk file is append-only: a header record written when the chunk is created, then one
//! frame per [`EventBatch`] pushed into it. All integers are little-endian.
//!
//! ```text
//! header:  magic "LOGSHIPC" (8) | version u32 (=1) | created secs i64 | created nanos u32
//!          | tag_len u16 | tag (the first batch's tag, informational)
//!          | xxh3-64 of everything before (u64)
//! frame:   payload_len u32 | xxh3-64 of the payload (u64) | payload
//! payload: tag_len u16 | tag | events u32 | events × (secs i64 | nanos u32 | rec_len u32 | record)
//! ```
//!
//! Records are stored in wire form: the msgpack bytes of the map exactly as received (no
//! JSON, no re-encoding). A frame is valid only when it is complete and its checksum matches;
//! a crash in the middle of an append leaves a **torn tail** (a short frame or a checksum
//! mismatch at the end) that [`scan`] reports so that recovery can cut it off and keep the
//! valid prefix. A file whose header is unreadable is *corrupt* (recovery moves it aside).

use std::sync::Arc;

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

use crate::event::{Event, EventBatch, EventTime};

/// First bytes of every chunk file.
pub const MAGIC: &[u8; 8] = b"LOGSHIPC";
/// The format version written by this code (and the only one it reads).
pub const VERSION: u32 = 1;
/// Bytes before a frame's payload (length + checksum).
pub const FRAME_HEADER: usize = 12;
/// Largest payload a frame may declare; anything larger is treated as damage, not data.
pub const MAX_FRAME: u32 = 1 << 30;

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

/// Appends the header record of a new chunk to `out`.
pub fn write_header(out: &mut Vec<u8>, created: EventTime, tag: &str) {
    let start = out.len();
    let tag = &tag.as_bytes()[..tag.len().min(u16::MAX as usize)];
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
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
    if version != VERSION {
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

/// Bytes a frame for `batch` takes on disk.
pub fn frame_len(batch: &EventBatch) -> usize {
    FRAME_HEADER
        + 2
        + batch.tag.len().min(u16::MAX as usize)
        + 4
        + batch
            .events
            .iter()
            .map(|e| 16 + e.record.len())
            .sum::<usize>()
}

/// Appends the frame of `batch` to `out`.
pub fn write_frame(out: &mut Vec<u8>, batch: &EventBatch) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    let tag = &batch.tag.as_bytes()[..batch.tag.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(tag.len() as u16).to_le_bytes());
    out.extend_from_slice(tag);
    out.extend_from_slice(&(batch.events.len() as u32).to_le_bytes());
    for e in &batch.events {
        out.extend_from_slice(&e.time.secs.to_le_bytes());
        out.extend_from_slice(&e.time.nanos.to_le_bytes());
        out.extend_from_slice(&(e.record.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.record);
    }
    let payload = start + FRAME_HEADER;
    let len = (out.len() - payload) as u32;
    let sum = xxh3_64(&out[payload..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + FRAME_HEADER].copy_from_slice(&sum.to_le_bytes());
}

/// What a scan of a whole chunk file found.
#[derive(Debug)]
pub struct Scanned {
    pub header: ChunkHeader,
    /// The batches of every valid frame, in order (records are slices of the file's bytes).
    pub batches: Vec<EventBatch>,
    pub records: u64,
    /// Bytes of valid frames (the file's length minus header and torn tail).
    pub frame_bytes: u64,
    /// Offset where the valid prefix ends.
    pub valid_len: u64,
    /// Bytes after the valid prefix (a torn tail), 0 for a clean file.
    pub torn_bytes: u64,
}

/// Decodes a chunk file's bytes. A torn or damaged frame ends the scan: everything before it
/// is kept, the rest is reported in `torn_bytes`.
pub fn scan(data: Bytes) -> Result<Scanned, ChunkFileError> {
    let (header, mut pos) = read_header(&data)?;
    let header_len = pos;
    let mut batches = Vec::new();
    let mut records = 0u64;
    while pos < data.len() {
        match decode_frame(&data, pos) {
            Some((batch, next)) => {
                records += batch.events.len() as u64;
                batches.push(batch);
                pos = next;
            }
            None => break,
        }
    }
    Ok(Scanned {
        header,
        batches,
        records,
        frame_bytes: (pos - header_len) as u64,
        valid_len: pos as u64,
        torn_bytes: (data.len() - pos) as u64,
    })
}

fn le_u32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// The frame at `pos`, or `None` when it is short or fails its checksum.
fn decode_frame(data: &Bytes, pos: usize) -> Option<(EventBatch, usize)> {
    let len = le_u32(data, pos)?;
    if len > MAX_FRAME {
        return None;
    }
    let sum = u64::from_le_bytes(data.get(pos + 4..pos + FRAME_HEADER)?.try_into().ok()?);
    let start = pos + FRAME_HEADER;
    let end = start.checked_add(len as usize)?;
    let payload = data.get(start..end)?;
    if xxh3_64(payload) != sum {
        return None;
    }
    // The checksum matched, so the payload is what was written; still parse defensively.
    let tag_len = u16::from_le_bytes(payload.get(0..2)?.try_into().ok()?) as usize;
    let tag = std::str::from_utf8(payload.get(2..2 + tag_len)?).ok()?;
    let mut p = 2 + tag_len;
    let n = le_u32(payload, p)? as usize;
    p += 4;
    let mut events = Vec::with_capacity(n.min(payload.len() / 16));
    for _ in 0..n {
        let secs = i64::from_le_bytes(payload.get(p..p + 8)?.try_into().ok()?);
        let nanos = le_u32(payload, p + 8)?;
        let rl = le_u32(payload, p + 12)? as usize;
        p += 16;
        payload.get(p..p + rl)?;
        events.push(Event::new(
            EventTime::new(secs, nanos),
            data.slice(start + p..start + p + rl),
        ));
        p += rl;
    }
    if p != payload.len() {
        return None;
    }
    let tag: Arc<str> = Arc::from(tag);
    Some((EventBatch { tag, events }, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(tag: &str, n: usize) -> EventBatch {
        EventBatch::new(
            tag,
            (0..n)
                .map(|i| {
                    Event::new(
                        EventTime::new(1_700_000_000 + i as i64, i as u32),
                        Bytes::from(vec![0x81, 0xa1, b'k', 0xa1, b'0' + (i % 10) as u8]),
                    )
                })
                .collect(),
        )
    }

    fn file(batches: &[EventBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out, EventTime::new(5, 6), "docker.api");
        for b in batches {
            let before = out.len();
            write_frame(&mut out, b);
            assert_eq!(out.len() - before, frame_len(b));
        }
        out
    }

    #[test]
    fn round_trip() {
        let bs = vec![batch("a", 3), batch("b.c", 0), batch("d", 2)];
        let data = file(&bs);
        let s = scan(Bytes::from(data.clone())).unwrap();
        assert_eq!(s.header.tag, "docker.api");
        assert_eq!(s.header.created, EventTime::new(5, 6));
        assert_eq!(s.batches, bs);
        assert_eq!(s.records, 5);
        assert_eq!(s.torn_bytes, 0);
        assert_eq!(s.valid_len, data.len() as u64);
    }

    #[test]
    fn every_torn_tail_keeps_the_valid_prefix() {
        let bs = vec![batch("a", 3), batch("b", 4)];
        let data = file(&bs);
        let first_end = file(&bs[..1]).len();
        let (_, header_len) = read_header(&data).unwrap();
        for cut in 0..data.len() {
            let r = scan(Bytes::copy_from_slice(&data[..cut]));
            if cut < header_len {
                assert!(matches!(r, Err(ChunkFileError::ShortHeader(_))), "{cut}");
                continue;
            }
            let s = r.unwrap();
            let want = if cut >= first_end { 1 } else { 0 };
            assert_eq!(s.batches.len(), want, "cut at {cut}");
            assert_eq!(s.valid_len + s.torn_bytes, cut as u64);
        }
        // a flipped bit in the last frame: the first frame survives
        let mut bad = data.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let s = scan(Bytes::from(bad)).unwrap();
        assert_eq!(s.batches, bs[..1]);
        assert_eq!(s.torn_bytes, (data.len() - first_end) as u64);
    }

    #[test]
    fn damaged_headers_are_errors() {
        let data = file(&[batch("a", 1)]);
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
