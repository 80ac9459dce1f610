//! Streaming decompression of a `CompressedPackedForward` payload, window by window.
//!
//! A gzip payload of a few megabytes can inflate to gigabytes (a "gzip bomb"), so the payload
//! is never inflated whole. [`Inflater::next_window`] inflates at most one window of bytes
//! (the caller reserves it from the memory budget first), splits the complete `[time, record]`
//! entries out of it as events, and carries the incomplete entry at its end over into the next
//! window. An entry larger than the window doubles the next one. Several gzip members back to
//! back are one stream.
//!
//! Two limits stop a payload early, before it has produced much:
//! - `max_decompressed_size`: the total for one frame (default 256 MiB);
//! - `max_decompression_ratio`: decompressed bytes per compressed byte (default 100). Logs
//!   compress 5–20× in practice, identical records up to ~60×; a bomb compresses 100–1000×.
//!   The first [`RATIO_FLOOR`] bytes are always allowed, so a small payload of very repetitive
//!   records is not refused for its ratio.
//!
//! Either limit is a [`FrameError::Decompress`]: the connection is closed without an ack (the
//! events of earlier windows were already handed to the pipeline, so a client that resends
//! the chunk delivers them twice — at least once, as everywhere in the protocol).

use std::io::Read;

use bytes::buf::Reader;
use bytes::{Buf, Bytes};
use flate2::read::MultiGzDecoder;

use super::codec::{DecodeOptions, FrameError, FrameParser};
use crate::event::Event;

/// Payloads inflating to at most this many bytes are accepted whatever their ratio.
pub const RATIO_FLOOR: u64 = 1024 * 1024;
/// The window a Forward connection reserves and inflates at a time.
pub const STREAM_WINDOW: usize = 256 * 1024;
/// The window used when a payload is inflated whole ([`FrameParser::parse`]).
pub const WHOLE_WINDOW: usize = 4 * 1024 * 1024;

/// The events of one window.
#[derive(Debug)]
pub struct Window {
    /// Events whose records are slices of this window's bytes.
    pub events: Vec<Event>,
    /// Invalid entries skipped (`skip_invalid_event`).
    pub skipped: usize,
    /// Bytes inflated for this window (what it holds in memory).
    pub bytes: usize,
}

/// Inflates one gzip payload window by window (see the module docs).
pub struct Inflater {
    gz: MultiGzDecoder<Reader<Bytes>>,
    /// The incomplete entry at the end of the previous window.
    carry: Bytes,
    /// Bytes inflated so far.
    produced: u64,
    /// At most this many bytes may be inflated (size and ratio limits together).
    allowed: u64,
    /// Which limit `allowed` comes from, for the error message.
    limit_reason: String,
    finished: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("produced", &self.produced)
            .field("allowed", &self.allowed)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Inflater {
    /// An inflater for `payload` with the limits of `opts`.
    pub fn new(payload: Bytes, opts: &DecodeOptions) -> Self {
        let compressed = payload.len() as u64;
        let by_ratio = compressed
            .saturating_mul(u64::from(opts.max_decompression_ratio.max(1)))
            .max(RATIO_FLOOR);
        let by_size = opts.max_decompressed_size as u64;
        let (allowed, limit_reason) = if by_ratio < by_size {
            (
                by_ratio,
                format!(
                    "more than {}× its {compressed} compressed bytes (max_decompression_ratio)",
                    opts.max_decompression_ratio.max(1)
                ),
            )
        } else {
            (
                by_size,
                format!("more than {by_size} bytes (max_decompressed_size)"),
            )
        };
        Self {
            gz: MultiGzDecoder::new(payload.reader()),
            carry: Bytes::new(),
            produced: 0,
            allowed,
            limit_reason,
            finished: false,
        }
    }

    /// The size of the next window when `preferred` is asked for: larger when the entry
    /// carried over needs it (twice its size so far), never beyond what may still be inflated.
    pub fn window_size(&self, preferred: usize) -> usize {
        let need = (self.carry.len() * 2).max(preferred);
        let left = self.allowed.saturating_sub(self.produced) as usize + self.carry.len();
        need.min(left.max(self.carry.len() + 1))
    }

    /// Bytes inflated so far.
    pub fn inflated(&self) -> u64 {
        self.produced
    }

    /// True once every byte was inflated and every entry returned.
    pub fn is_done(&self) -> bool {
        self.finished
    }

    /// Inflates up to `window` bytes (the carried entry included; ask
    /// [`Inflater::window_size`] for it) and splits the complete entries with `parser`.
    /// `Ok(None)` once the payload is exhausted. A window that holds no complete entry comes
    /// back empty; the entry is carried and the next `window_size` is twice as large.
    pub fn next_window(
        &mut self,
        parser: &mut FrameParser,
        window: usize,
    ) -> Result<Option<Window>, FrameError> {
        if self.finished {
            return Ok(None);
        }
        let window = window.max(self.carry.len() + 1);
        let mut buf = Vec::with_capacity(window);
        buf.extend_from_slice(&self.carry);
        let want = (window - buf.len()) as u64;
        // One byte more than allowed tells "at the limit" from "over it".
        let left = self.allowed.saturating_sub(self.produced) + 1;
        let asked = want.min(left);
        let n = (&mut self.gz)
            .take(asked)
            .read_to_end(&mut buf)
            .map_err(|e| FrameError::Decompress(e.to_string()))? as u64;
        self.produced += n;
        if self.produced > self.allowed {
            return Err(FrameError::Decompress(format!(
                "the payload inflates to {}",
                self.limit_reason
            )));
        }
        let last = n < asked;
        let bytes = Bytes::from(buf);
        let mut events = Vec::new();
        let (skipped, used) = parser.split_entries(&bytes, last, &mut events)?;
        self.carry = bytes.slice(used..);
        self.finished = last;
        Ok(Some(Window {
            events,
            skipped,
            bytes: bytes.len(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    /// `n` entries `[i, {"n": "<pad>"}]` with `pad` bytes of padding each.
    fn entries(n: u32, pad: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend_from_slice(&[0x92, 0xce]);
            out.extend_from_slice(&(1_700_000_000 + i).to_be_bytes());
            out.extend_from_slice(&[0x81, 0xa1, b'n', 0xdb]);
            out.extend_from_slice(&(pad as u32).to_be_bytes());
            out.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, pad));
        }
        out
    }

    fn inflate_all(
        payload: Bytes,
        opts: &DecodeOptions,
        window: usize,
    ) -> Result<Vec<Event>, FrameError> {
        let mut p = FrameParser::new(opts.clone());
        let mut inf = Inflater::new(payload, opts);
        let mut all = Vec::new();
        let mut windows = 0;
        while let Some(w) = inf.next_window(&mut p, inf.window_size(window))? {
            all.extend(w.events);
            windows += 1;
        }
        assert!(inf.is_done());
        assert!(windows >= 1);
        Ok(all)
    }

    #[test]
    fn windows_split_entries_exactly_as_the_whole_payload() {
        let raw = entries(500, 100);
        let opts = DecodeOptions::default();
        let whole = {
            let mut p = FrameParser::new(opts.clone());
            p.split_packed(&Bytes::from(raw.clone()), None).unwrap().0
        };
        for window in [1, 7, 113, 4096, 1 << 20] {
            let got = inflate_all(gzip(&raw), &opts, window).unwrap();
            assert_eq!(got, whole, "window {window}");
        }
    }

    #[test]
    fn an_entry_larger_than_the_window_grows_it() {
        let raw = entries(3, 300_000);
        let got = inflate_all(gzip(&raw), &DecodeOptions::default(), 4096).unwrap();
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn the_ratio_limit_stops_a_bomb_early() {
        // 64 MiB of one repeated entry compresses about 500×.
        let raw = entries(64, 1 << 20);
        let payload = gzip(&raw);
        let opts = DecodeOptions::default();
        let mut p = FrameParser::new(opts.clone());
        let mut inf = Inflater::new(payload.clone(), &opts);
        let err = loop {
            match inf.next_window(&mut p, inf.window_size(STREAM_WINDOW)) {
                Ok(Some(_)) => {}
                Ok(None) => panic!(
                    "a {}× payload passed the ratio limit",
                    raw.len() / payload.len()
                ),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(&err, FrameError::Decompress(m) if m.contains("max_decompression_ratio")),
            "{err}"
        );
        // stopped one byte past the limit, not after inflating the whole 64 MiB
        assert_eq!(
            inf.inflated(),
            (payload.len() as u64 * 100).max(RATIO_FLOOR) + 1
        );
        // the same payload passes with a ratio limit above its own
        let lenient = DecodeOptions {
            max_decompression_ratio: 100_000,
            ..opts
        };
        assert_eq!(
            inflate_all(payload, &lenient, STREAM_WINDOW).unwrap().len(),
            64
        );
    }

    #[test]
    fn the_size_limit_still_applies() {
        let raw = entries(10, 10_000);
        let opts = DecodeOptions {
            max_decompressed_size: 50_000,
            ..Default::default()
        };
        let err = inflate_all(gzip(&raw), &opts, 4096).unwrap_err();
        assert!(
            matches!(&err, FrameError::Decompress(m) if m.contains("max_decompressed_size")),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_last_entry_and_broken_gzip_are_errors() {
        let mut raw = entries(5, 10);
        raw.truncate(raw.len() - 3);
        assert!(matches!(
            inflate_all(gzip(&raw), &DecodeOptions::default(), 16),
            Err(FrameError::Truncated(_))
        ));
        let mut broken = gzip(&entries(5, 10)).to_vec();
        broken.truncate(broken.len() / 2);
        assert!(matches!(
            inflate_all(Bytes::from(broken), &DecodeOptions::default(), 16),
            Err(FrameError::Decompress(_))
        ));
    }
}
