//! Frame decoding for the Forward protocol.
//!
//! Two layers:
//!
//! 1. [`FrameScanner`] finds where one complete top-level msgpack object ends, without
//!    building a value tree. It is *resumable*: when the buffer holds only part of an object
//!    it remembers how far it got (position plus the stack of open containers) so the next
//!    read continues from there instead of re-scanning from the start. Limits (frame size,
//!    nesting depth, container counts) are enforced as soon as the offending header is seen.
//! 2. [`FrameParser::parse`] classifies one complete frame (Message, Forward, PackedForward,
//!    CompressedPackedForward, PING, heartbeat `nil`) and splits it into events whose records
//!    are zero-copy [`Bytes`] slices of the frame.
//!
//! # Event times and Forward protocol v1.5 metadata
//!
//! An entry's time slot is `Metadata ::= integer | float | EventTime | [ time, Hash* ]`. The
//! array form is protocol v1.5, and Fluent Bit >= 5.0.5 sends it by default
//! (`[[EventTime, {metadata}], record]`). Its maps become the event's
//! [`Event::metadata`]: one map is kept as a zero-copy slice (the common case: every captured
//! client sends exactly one), no map gives an empty map, several maps are merged into one
//! (their pairs in order, so a reader that keeps the last value of a repeated key sees the
//! later map win). A plain time gives no metadata at all. The array form is accepted in every
//! mode, including a Message whose second element is `[time, {metadata}]` (told apart from
//! Forward mode because a Forward entry is itself an array, a time never is).
//!
//! [`ForwardDecoder`] glues both into a [`tokio_util::codec::Decoder`].

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::inflate;
use crate::event::{Event, EventTime};

/// Default limit for one frame (fluentd's `chunk_size_limit` default is unlimited; ours is 32 MiB).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 32 * 1024 * 1024;
/// Default limit for the nesting depth of a frame (the frame's own array counts as level 1).
pub const DEFAULT_MAX_DEPTH: usize = 100;
/// Default limit for the size of a decompressed `CompressedPackedForward` payload.
pub const DEFAULT_MAX_DECOMPRESSED_SIZE: usize = 256 * 1024 * 1024;
/// Default limit for decompressed bytes per compressed byte of a `CompressedPackedForward`
/// payload (see [`super::inflate`]).
pub const DEFAULT_MAX_DECOMPRESSION_RATIO: u32 = 100;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A frame declares (or has) more bytes than allowed.
    #[error("frame too large: needs at least {needed} bytes, limit is {limit}")]
    FrameTooLarge { needed: u64, limit: usize },
    /// Containers are nested deeper than allowed.
    #[error("msgpack nesting deeper than {limit}")]
    TooDeep { limit: usize },
    /// The byte 0xc1 (never used by msgpack) or another impossible encoding.
    #[error("invalid msgpack: {0}")]
    InvalidMsgpack(&'static str),
    /// The stream ended (or a bin payload ended) in the middle of an object.
    #[error("truncated msgpack: {0}")]
    Truncated(&'static str),
    /// The top-level object is not one of the Forward protocol shapes.
    #[error("not a forward protocol message: {0}")]
    BadShape(&'static str),
    /// The tag is not a msgpack str holding valid UTF-8.
    #[error("invalid tag: {0}")]
    BadTag(&'static str),
    /// An event time is not an int, float or EventTime.
    #[error("invalid event time: {0}")]
    BadTime(&'static str),
    /// A record is not a msgpack map (and `skip_invalid_event` is off).
    #[error("record is not a map")]
    RecordNotMap,
    /// The option map is malformed.
    #[error("invalid option: {0}")]
    BadOption(&'static str),
    /// `compressed` names an unknown algorithm.
    #[error("unsupported compression {0:?}")]
    UnsupportedCompression(String),
    /// The gzip payload is broken, or decompresses to more than allowed.
    #[error("decompression failed: {0}")]
    Decompress(String),
}

impl FrameError {
    /// Whether the byte stream is still in sync after this error, i.e. the frame boundary was
    /// found and the next frame could be decoded. Framing errors (too large, too deep, invalid
    /// msgpack at the top level) lose sync; errors found while interpreting a complete frame do
    /// not. The server closes the connection on any error regardless (as fluentd does for
    /// broken streams); this tells callers that want to be lenient what is possible.
    pub fn connection_can_continue(&self) -> bool {
        !matches!(
            self,
            FrameError::FrameTooLarge { .. }
                | FrameError::TooDeep { .. }
                | FrameError::InvalidMsgpack(_)
        )
    }
}

/// Decoder limits and lenience.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Largest accepted frame in bytes (`chunk_size_limit`).
    pub max_frame_size: usize,
    /// Deepest accepted nesting.
    pub max_depth: usize,
    /// Largest accepted decompressed payload of one `CompressedPackedForward` frame.
    pub max_decompressed_size: usize,
    /// Largest accepted ratio of decompressed to compressed bytes (payloads that inflate to
    /// less than [`super::inflate::RATIO_FLOOR`] are always accepted).
    pub max_decompression_ratio: u32,
    /// Skip events whose record is not a map or whose time is invalid instead of failing the frame.
    pub skip_invalid_event: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_depth: DEFAULT_MAX_DEPTH,
            max_decompressed_size: DEFAULT_MAX_DECOMPRESSED_SIZE,
            max_decompression_ratio: DEFAULT_MAX_DECOMPRESSION_RATIO,
            skip_invalid_event: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Low-level header reading
// ---------------------------------------------------------------------------------------------

/// What a msgpack header says about the element that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// A scalar or blob: header length and payload length.
    Leaf { hdr: usize, payload: u64 },
    /// An array or map: header length and number of child elements (maps: 2 × pairs).
    Container { hdr: usize, children: u64 },
}

#[inline]
fn be_u16(b: &[u8]) -> u64 {
    u16::from_be_bytes([b[0], b[1]]) as u64
}
#[inline]
fn be_u32(b: &[u8]) -> u64 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64
}

/// Reads the header at the start of `b`. `Ok(None)` when `b` is too short to hold the header.
#[inline]
fn read_head(b: &[u8]) -> Result<Option<Head>, FrameError> {
    let Some(&m) = b.first() else { return Ok(None) };
    let leaf = |hdr, payload| Ok(Some(Head::Leaf { hdr, payload }));
    let need = |n: usize| b.len() < n;
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => leaf(1, 0),
        0x80..=0x8f => Ok(Some(Head::Container {
            hdr: 1,
            children: 2 * (m & 0x0f) as u64,
        })),
        0x90..=0x9f => Ok(Some(Head::Container {
            hdr: 1,
            children: (m & 0x0f) as u64,
        })),
        0xa0..=0xbf => leaf(1, (m & 0x1f) as u64),
        0xc1 => Err(FrameError::InvalidMsgpack("reserved byte 0xc1")),
        // bin8/str8
        0xc4 | 0xd9 => {
            if need(2) {
                return Ok(None);
            }
            leaf(2, b[1] as u64)
        }
        0xc5 | 0xda => {
            if need(3) {
                return Ok(None);
            }
            leaf(3, be_u16(&b[1..]))
        }
        0xc6 | 0xdb => {
            if need(5) {
                return Ok(None);
            }
            leaf(5, be_u32(&b[1..]))
        }
        // ext8/16/32: length + type byte
        0xc7 => {
            if need(3) {
                return Ok(None);
            }
            leaf(3, b[1] as u64)
        }
        0xc8 => {
            if need(4) {
                return Ok(None);
            }
            leaf(4, be_u16(&b[1..]))
        }
        0xc9 => {
            if need(6) {
                return Ok(None);
            }
            leaf(6, be_u32(&b[1..]))
        }
        0xca => leaf(1, 4),
        0xcb => leaf(1, 8),
        0xcc | 0xd0 => leaf(1, 1),
        0xcd | 0xd1 => leaf(1, 2),
        0xce | 0xd2 => leaf(1, 4),
        0xcf | 0xd3 => leaf(1, 8),
        // fixext 1/2/4/8/16: marker + type byte
        0xd4 => leaf(2, 1),
        0xd5 => leaf(2, 2),
        0xd6 => leaf(2, 4),
        0xd7 => leaf(2, 8),
        0xd8 => leaf(2, 16),
        0xdc => {
            if need(3) {
                return Ok(None);
            }
            Ok(Some(Head::Container {
                hdr: 3,
                children: be_u16(&b[1..]),
            }))
        }
        0xdd => {
            if need(5) {
                return Ok(None);
            }
            Ok(Some(Head::Container {
                hdr: 5,
                children: be_u32(&b[1..]),
            }))
        }
        0xde => {
            if need(3) {
                return Ok(None);
            }
            Ok(Some(Head::Container {
                hdr: 3,
                children: 2 * be_u16(&b[1..]),
            }))
        }
        0xdf => {
            if need(5) {
                return Ok(None);
            }
            Ok(Some(Head::Container {
                hdr: 5,
                children: 2 * be_u32(&b[1..]),
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resumable scanner
// ---------------------------------------------------------------------------------------------

/// Finds the end of one complete top-level msgpack object, resumably.
///
/// Call [`FrameScanner::scan`] with the whole pending buffer each time more bytes arrive; it
/// continues where it stopped. After it returns `Ok(Some(n))` the caller must remove the first
/// `n` bytes from the buffer (the scanner then starts over at offset 0).
#[derive(Debug, Clone)]
pub struct FrameScanner {
    pos: u64,
    started: bool,
    /// Remaining children of each open container, innermost last.
    stack: Vec<u64>,
    max_size: usize,
    max_depth: usize,
}

impl FrameScanner {
    /// A scanner enforcing `max_size` bytes per object and `max_depth` nesting.
    pub fn new(max_size: usize, max_depth: usize) -> Self {
        Self {
            pos: 0,
            started: false,
            stack: Vec::with_capacity(16),
            max_size,
            max_depth,
        }
    }

    /// Forgets any partial progress.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.started = false;
        self.stack.clear();
    }

    /// True when a partial object has been seen (bytes are pending).
    pub fn in_progress(&self) -> bool {
        self.started
    }

    /// The least total size of the object in progress that its headers prove (a str, bin or
    /// ext header declares its payload), or `None` when no object is in progress. Callers use
    /// it to size the buffer before reading on.
    pub fn known_len(&self) -> Option<usize> {
        self.started.then_some(self.pos as usize)
    }

    /// Scans `buf` (which must start with the object and keep every byte seen before).
    /// `Ok(Some(n))`: the first `n` bytes are one complete object. `Ok(None)`: need more bytes.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        // Fast path: the whole object is usually buffered already (a Docker Message frame is
        // a few hundred bytes), so walk it once with the tight non-resumable loop. Only on a
        // fresh object, so a large frame arriving piecewise costs at most one extra partial
        // walk; when the buffer cannot hold a frame over the limit, every complete object is
        // within it. Anything but success (incomplete, or an error) falls back to the
        // resumable walk, which then keeps its progress and reports errors canonically.
        if !self.started && !buf.is_empty() && buf.len() <= self.max_size {
            let fast = object_len(buf, self);
            self.stack.clear();
            if let Ok(n) = fast {
                return Ok(Some(n));
            }
        }
        let len = buf.len() as u64;
        loop {
            if self.started && self.stack.is_empty() {
                if self.pos <= len {
                    let n = self.pos as usize;
                    self.reset();
                    return Ok(Some(n));
                }
                return Ok(None);
            }
            if self.pos >= len {
                return Ok(None);
            }
            let p = self.pos as usize;
            let Some(head) = read_head(&buf[p..])? else {
                return Ok(None);
            };
            let limit = self.max_size as u64;
            match head {
                Head::Leaf { hdr, payload } => {
                    let end = self.pos + hdr as u64 + payload;
                    if end > limit {
                        return Err(FrameError::FrameTooLarge {
                            needed: end,
                            limit: self.max_size,
                        });
                    }
                    self.pos = end;
                    self.started = true;
                    self.consume_one();
                }
                Head::Container { hdr, children } => {
                    let end = self.pos + hdr as u64;
                    // every child needs at least one byte
                    if end + children > limit {
                        return Err(FrameError::FrameTooLarge {
                            needed: end + children,
                            limit: self.max_size,
                        });
                    }
                    self.pos = end;
                    self.started = true;
                    if let Some(top) = self.stack.last_mut() {
                        *top -= 1;
                    }
                    if children > 0 {
                        if self.stack.len() + 1 > self.max_depth {
                            return Err(FrameError::TooDeep {
                                limit: self.max_depth,
                            });
                        }
                        self.stack.push(children);
                    } else {
                        self.pop_done();
                    }
                }
            }
        }
    }

    #[inline]
    fn consume_one(&mut self) {
        if let Some(top) = self.stack.last_mut() {
            *top -= 1;
            self.pop_done();
        }
    }

    #[inline]
    fn pop_done(&mut self) {
        while let Some(&0) = self.stack.last() {
            self.stack.pop();
        }
    }
}

/// Length of the complete msgpack object at the start of `b`, checking depth.
/// Errors with `Truncated` when `b` ends inside the object. This is the hot path for records,
/// so it is a tight loop over a complete slice (no resumable state), with the common fix*
/// markers handled inline.
#[inline]
fn object_len(b: &[u8], scratch: &mut FrameScanner) -> Result<usize, FrameError> {
    const TRUNC: FrameError = FrameError::Truncated("value extends past the end of its container");
    let stack = &mut scratch.stack;
    stack.clear();
    let max_depth = scratch.max_depth;
    let len = b.len();
    let mut pos = 0usize;
    // items left in the innermost open container (the top level counts as one item)
    let mut remaining: u64 = 1;
    loop {
        let Some(&m) = b.get(pos) else {
            return Err(TRUNC);
        };
        let children: u64 = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => {
                pos += 1;
                0
            }
            0xa0..=0xbf => {
                pos += 1 + (m & 0x1f) as usize;
                0
            }
            0x80..=0x8f => {
                pos += 1;
                2 * (m & 0x0f) as u64
            }
            0x90..=0x9f => {
                pos += 1;
                (m & 0x0f) as u64
            }
            // str8: longer strings such as a container id or a log line
            0xd9 => {
                let Some(&l) = b.get(pos + 1) else {
                    return Err(TRUNC);
                };
                pos += 2 + l as usize;
                0
            }
            _ => match read_head(&b[pos..])? {
                None => return Err(TRUNC),
                Some(Head::Leaf { hdr, payload }) => {
                    if payload > (len - pos) as u64 {
                        return Err(TRUNC);
                    }
                    pos += hdr + payload as usize;
                    0
                }
                Some(Head::Container { hdr, children }) => {
                    pos += hdr;
                    if children > (len - pos.min(len)) as u64 {
                        return Err(TRUNC);
                    }
                    children
                }
            },
        };
        remaining -= 1;
        if children > 0 {
            if stack.len() + 1 > max_depth {
                stack.clear();
                return Err(FrameError::TooDeep { limit: max_depth });
            }
            stack.push(remaining);
            remaining = children;
        }
        while remaining == 0 {
            match stack.pop() {
                Some(r) => remaining = r,
                None => {
                    return if pos <= len { Ok(pos) } else { Err(TRUNC) };
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Frame classification
// ---------------------------------------------------------------------------------------------

/// The protocol mode of a decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `[tag, time, record]` or `[tag, time, record, option]`.
    Message,
    /// `[tag, [[time, record], ...], option?]`.
    Forward,
    /// `[tag, bin-or-str of concatenated [time, record], option?]`.
    PackedForward,
    /// PackedForward whose payload is gzip (`compressed: "gzip"`).
    CompressedPackedForward,
}

/// The events of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsFrame {
    /// How the client sent them.
    pub mode: Mode,
    /// The tag as sent.
    pub tag: Arc<str>,
    /// The events, in order.
    pub events: Vec<Event>,
    /// The `chunk` option (the raw str bytes): the server must reply `{"ack": chunk}`.
    pub chunk: Option<Bytes>,
    /// The `size` option, if present (a hint only).
    pub size_hint: Option<u64>,
    /// Events dropped because `skip_invalid_event` is on.
    pub skipped: usize,
}

/// A client's PING (handshake), fields as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingFrame {
    /// The client's `self_hostname`.
    pub client_hostname: Bytes,
    /// The client's salt for the shared-key digest.
    pub shared_key_salt: Bytes,
    /// hex(sha512(salt + client_hostname + nonce + shared_key)).
    pub shared_key_hexdigest: Bytes,
    /// Username (empty when no user auth).
    pub username: Bytes,
    /// hex(sha512(auth_salt + username + password)) (empty when no user auth).
    pub password_digest: Bytes,
}

/// One decoded top-level object.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Events (any of the four event modes).
    Events(EventsFrame),
    /// A handshake PING.
    Ping(PingFrame),
    /// A top-level `nil` (heartbeat/keep-alive); carries nothing.
    Heartbeat,
}

/// A frame as [`FrameParser::parse_deferred`] leaves it: decoded, or a
/// `CompressedPackedForward` frame whose payload is still compressed (the caller inflates it
/// window by window with [`super::inflate::Inflater`], under its memory budget).
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Everything but a gzip payload: decoded.
    Frame(Frame),
    /// A `CompressedPackedForward` frame, payload not yet inflated.
    Compressed(CompressedFrame),
}

/// A `CompressedPackedForward` frame before decompression.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressedFrame {
    /// The tag as sent.
    pub tag: Arc<str>,
    /// The gzip payload (one or more members).
    pub payload: Bytes,
    /// The `chunk` option: reply `{"ack": chunk}` once every event of the frame is held.
    pub chunk: Option<Bytes>,
    /// The `size` option, if present (a hint only).
    pub size_hint: Option<u64>,
}

/// A cursor over a complete frame.
struct Cur<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Cur<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.p).copied()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.b.len() - self.p < n {
            return Err(FrameError::Truncated("unexpected end of data"));
        }
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        Ok(s)
    }
    fn array_len(&mut self) -> Result<Option<u64>, FrameError> {
        match read_head(&self.b[self.p..])? {
            Some(Head::Container { hdr, children })
                if self.b[self.p] & 0xf0 == 0x90
                    || self.b[self.p] == 0xdc
                    || self.b[self.p] == 0xdd =>
            {
                self.p += hdr;
                Ok(Some(children))
            }
            None => Err(FrameError::Truncated("unexpected end of data")),
            _ => Ok(None),
        }
    }
    fn map_len(&mut self) -> Result<Option<u64>, FrameError> {
        let m = self
            .peek()
            .ok_or(FrameError::Truncated("unexpected end of data"))?;
        match read_head(&self.b[self.p..])? {
            Some(Head::Container { hdr, children })
                if (0x80..=0x8f).contains(&m) || m == 0xde || m == 0xdf =>
            {
                self.p += hdr;
                Ok(Some(children / 2))
            }
            None => Err(FrameError::Truncated("unexpected end of data")),
            _ => Ok(None),
        }
    }
    /// A str or bin: returns (is_str, byte range within the frame).
    fn str_or_bin(&mut self) -> Result<Option<(bool, std::ops::Range<usize>)>, FrameError> {
        let m = self
            .peek()
            .ok_or(FrameError::Truncated("unexpected end of data"))?;
        let is_str = matches!(m, 0xa0..=0xbf | 0xd9..=0xdb);
        let is_bin = matches!(m, 0xc4..=0xc6);
        if !is_str && !is_bin {
            return Ok(None);
        }
        let Some(Head::Leaf { hdr, payload }) = read_head(&self.b[self.p..])? else {
            return Err(FrameError::Truncated("unexpected end of data"));
        };
        let start = self.p + hdr;
        if payload > (self.b.len() - start) as u64 {
            return Err(FrameError::Truncated("str/bin extends past the end"));
        }
        let end = start + payload as usize;
        self.p = end;
        Ok(Some((is_str, start..end)))
    }
    fn skip(&mut self, scratch: &mut FrameScanner) -> Result<std::ops::Range<usize>, FrameError> {
        let start = self.p;
        let n = object_len(&self.b[self.p..], scratch)?;
        self.p += n;
        Ok(start..self.p)
    }
    fn at_end(&self) -> bool {
        self.p >= self.b.len()
    }
}

/// Decodes an event time at the cursor. `Ok(None)` for `nil`, or for a wrong type (the value
/// is then skipped by the caller on `Err`).
fn read_time(c: &mut Cur<'_>) -> Result<Option<EventTime>, FrameError> {
    let m = c.peek().ok_or(FrameError::Truncated("missing time"))?;
    let t = match m {
        0x00..=0x7f => EventTime::new(m as i64, 0),
        0xe0..=0xff => EventTime::new((m as i8) as i64, 0),
        0xc0 => {
            c.p += 1;
            return Ok(None);
        }
        0xcc => EventTime::new(c.take(2)?[1] as i64, 0),
        0xcd => EventTime::new(be_u16(&c.take(3)?[1..]) as i64, 0),
        0xce => EventTime::new(be_u32(&c.take(5)?[1..]) as i64, 0),
        0xcf => {
            let b = c.take(9)?;
            let v = u64::from_be_bytes(b[1..9].try_into().unwrap());
            EventTime::new(
                i64::try_from(v).map_err(|_| FrameError::BadTime("integer time out of range"))?,
                0,
            )
        }
        0xd0 => EventTime::new(c.take(2)?[1] as i8 as i64, 0),
        0xd1 => {
            let b = c.take(3)?;
            EventTime::new(i16::from_be_bytes([b[1], b[2]]) as i64, 0)
        }
        0xd2 => {
            let b = c.take(5)?;
            EventTime::new(i32::from_be_bytes(b[1..5].try_into().unwrap()) as i64, 0)
        }
        0xd3 => {
            let b = c.take(9)?;
            EventTime::new(i64::from_be_bytes(b[1..9].try_into().unwrap()), 0)
        }
        0xca => {
            let b = c.take(5)?;
            let f = f32::from_be_bytes(b[1..5].try_into().unwrap()) as f64;
            if !f.is_finite() {
                return Err(FrameError::BadTime("non-finite float time"));
            }
            EventTime::from_f64(f)
        }
        0xcb => {
            let b = c.take(9)?;
            let f = f64::from_be_bytes(b[1..9].try_into().unwrap());
            if !f.is_finite() {
                return Err(FrameError::BadTime("non-finite float time"));
            }
            EventTime::from_f64(f)
        }
        // fixext8 type 0
        0xd7 => {
            let b = c.take(10)?;
            if b[1] != 0 {
                return Err(FrameError::BadTime("ext type is not 0 (EventTime)"));
            }
            event_time_from_ext(&b[2..10])?
        }
        // ext8 with length 8, type 0
        0xc7 => {
            let b = c.take(3)?;
            if b[1] != 8 || b[2] != 0 {
                c.p -= 3;
                return Err(FrameError::BadTime(
                    "ext8 time must have length 8 and type 0",
                ));
            }
            let d = c.take(8)?;
            event_time_from_ext(d)?
        }
        _ => {
            return Err(FrameError::BadTime(
                "time must be an integer, float or EventTime",
            ))
        }
    };
    if matches!(m, 0x00..=0x7f | 0xe0..=0xff) {
        c.p += 1;
    }
    Ok(Some(t))
}

#[inline]
fn event_time_from_ext(d: &[u8]) -> Result<EventTime, FrameError> {
    let secs = u32::from_be_bytes(d[0..4].try_into().unwrap()) as i64;
    let nanos = u32::from_be_bytes(d[4..8].try_into().unwrap());
    if nanos >= 1_000_000_000 {
        return Err(FrameError::BadTime("EventTime nanoseconds >= 1e9"));
    }
    Ok(EventTime::new(secs, nanos))
}

#[inline]
fn is_array_marker(m: Option<u8>) -> bool {
    matches!(m, Some(0x90..=0x9f | 0xdc | 0xdd))
}

/// Merges several msgpack maps (byte ranges of `src`) into one map: a new header counting every
/// pair, then each map's pairs in order. Used only for v1.5 entries with more than one map.
fn merge_maps(src: &Bytes, maps: &[std::ops::Range<usize>]) -> Result<Bytes, FrameError> {
    let mut pairs = 0u64;
    let mut bodies = Vec::with_capacity(maps.len());
    for r in maps {
        let mut c = Cur { b: src, p: r.start };
        pairs += c
            .map_len()?
            .ok_or(FrameError::BadTime("metadata is not a map"))?;
        bodies.push(c.p..r.end);
    }
    let pairs = u32::try_from(pairs).map_err(|_| FrameError::BadTime("metadata too large"))?;
    let mut out = Vec::with_capacity(5 + bodies.iter().map(|r| r.len()).sum::<usize>());
    write_map_len(&mut out, pairs);
    for r in bodies {
        out.extend_from_slice(&src[r]);
    }
    Ok(Bytes::from(out))
}

/// Parsed option map.
#[derive(Default)]
struct Options {
    chunk: Option<std::ops::Range<usize>>,
    size: Option<u64>,
    compressed: Option<std::ops::Range<usize>>,
}

fn read_uint(c: &mut Cur<'_>) -> Option<u64> {
    let m = c.peek()?;
    let v = match m {
        0x00..=0x7f => {
            c.p += 1;
            return Some(m as u64);
        }
        0xcc => c.take(2).ok()?[1] as u64,
        0xcd => be_u16(&c.take(3).ok()?[1..]),
        0xce => be_u32(&c.take(5).ok()?[1..]),
        0xcf => u64::from_be_bytes(c.take(9).ok()?[1..9].try_into().ok()?),
        _ => return None,
    };
    Some(v)
}

fn read_options(c: &mut Cur<'_>, scratch: &mut FrameScanner) -> Result<Options, FrameError> {
    let mut o = Options::default();
    if c.peek() == Some(0xc0) {
        c.p += 1;
        return Ok(o);
    }
    let n = c
        .map_len()?
        .ok_or(FrameError::BadOption("option is not a map"))?;
    for _ in 0..n {
        let key = c.str_or_bin()?;
        let key = match key {
            Some((_, r)) => &c.b[r],
            None => {
                c.skip(scratch)?;
                c.skip(scratch)?;
                continue;
            }
        };
        match key {
            b"chunk" => match c.str_or_bin()? {
                Some((_, r)) => o.chunk = Some(r),
                None => return Err(FrameError::BadOption("chunk must be a str")),
            },
            b"size" => match read_uint(c) {
                Some(v) => o.size = Some(v),
                None => {
                    c.skip(scratch)?;
                }
            },
            b"compressed" => match c.str_or_bin()? {
                Some((_, r)) => o.compressed = Some(r),
                None => return Err(FrameError::BadOption("compressed must be a str")),
            },
            _ => {
                c.skip(scratch)?;
            }
        }
    }
    Ok(o)
}

fn is_map_marker(m: u8) -> bool {
    (0x80..=0x8f).contains(&m) || m == 0xde || m == 0xdf
}

/// Stateful frame parser: holds scratch space so the hot path does not allocate beyond the
/// events vector.
#[derive(Debug, Clone)]
pub struct FrameParser {
    opts: DecodeOptions,
    scratch: FrameScanner,
    /// The tag of the previous frame: a connection usually repeats one tag, so frames share
    /// one `Arc<str>` (no allocation or UTF-8 check per Message frame).
    last_tag: Option<Arc<str>>,
}

impl FrameParser {
    /// A parser with these options.
    pub fn new(opts: DecodeOptions) -> Self {
        let scratch = FrameScanner::new(usize::MAX, opts.max_depth);
        Self {
            opts,
            scratch,
            last_tag: None,
        }
    }

    /// The options in force.
    pub fn options(&self) -> &DecodeOptions {
        &self.opts
    }

    /// Classifies and decodes one complete frame (as delimited by [`FrameScanner`]), a
    /// `CompressedPackedForward` payload included (inflated whole, within
    /// `max_decompressed_size` and `max_decompression_ratio`).
    pub fn parse(&mut self, frame: Bytes) -> Result<Frame, FrameError> {
        match self.parse_deferred(frame)? {
            Parsed::Frame(f) => Ok(f),
            Parsed::Compressed(cf) => {
                let mut inflater = super::inflate::Inflater::new(cf.payload, &self.opts);
                let mut events = Vec::new();
                let mut skipped = 0;
                while let Some(w) =
                    inflater.next_window(self, inflater.window_size(inflate::WHOLE_WINDOW))?
                {
                    events.extend(w.events);
                    skipped += w.skipped;
                }
                Ok(Frame::Events(EventsFrame {
                    mode: Mode::CompressedPackedForward,
                    tag: cf.tag,
                    events,
                    chunk: cf.chunk,
                    size_hint: cf.size_hint,
                    skipped,
                }))
            }
        }
    }

    /// Classifies and decodes one complete frame, except that a `CompressedPackedForward`
    /// payload is left compressed ([`Parsed::Compressed`]).
    pub fn parse_deferred(&mut self, frame: Bytes) -> Result<Parsed, FrameError> {
        let b: &[u8] = &frame;
        let mut c = Cur { b, p: 0 };
        if c.peek() == Some(0xc0) && b.len() == 1 {
            return Ok(Parsed::Frame(Frame::Heartbeat));
        }
        let n = c
            .array_len()?
            .ok_or(FrameError::BadShape("top-level object is not an array"))?;
        if !(2..=6).contains(&n) {
            return Err(FrameError::BadShape(
                "top-level array must have 2 to 4 elements (6 for PING)",
            ));
        }
        let (tag_is_str, tag_r) = c
            .str_or_bin()?
            .ok_or(FrameError::BadTag("tag is not a str"))?;
        let tag_bytes = &b[tag_r.clone()];
        let second = c
            .peek()
            .ok_or(FrameError::Truncated("missing second element"))?;
        // PING: 6 elements, second is a str (a Message's second element is a time).
        if n == 6
            && tag_bytes == b"PING"
            && matches!(second, 0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6)
        {
            let mut fields: [Bytes; 5] = Default::default();
            for f in fields.iter_mut() {
                let (_, r) = c
                    .str_or_bin()?
                    .ok_or(FrameError::BadShape("PING fields must be strings"))?;
                *f = frame.slice(r);
            }
            let [client_hostname, shared_key_salt, shared_key_hexdigest, username, password_digest] =
                fields;
            return Ok(Parsed::Frame(Frame::Ping(PingFrame {
                client_hostname,
                shared_key_salt,
                shared_key_hexdigest,
                username,
                password_digest,
            })));
        }
        if !tag_is_str {
            return Err(FrameError::BadTag("tag is a bin, not a str"));
        }
        let tag: Arc<str> = match &self.last_tag {
            Some(t) if t.as_bytes() == tag_bytes => t.clone(),
            _ => {
                let t: Arc<str> = std::str::from_utf8(tag_bytes)
                    .map_err(|_| FrameError::BadTag("tag is not valid UTF-8"))?
                    .into();
                self.last_tag = Some(t.clone());
                t
            }
        };
        let skip_invalid = self.opts.skip_invalid_event;
        let mut skipped = 0usize;
        match second {
            // Forward: array of entries (a Message's v1.5 `[time, {metadata}]` is handled below)
            0x90..=0x9f | 0xdc | 0xdd if !self.is_v15_time_array(b, c.p) => {
                if n > 3 {
                    return Err(FrameError::BadShape("Forward mode has at most 3 elements"));
                }
                let count = c.array_len()?.unwrap_or(0);
                let mut events = Vec::with_capacity(count.min(4096) as usize);
                for _ in 0..count {
                    let entry_start = c.p;
                    let ok = self.entry(&frame, &mut c, &mut events)?;
                    if !ok {
                        if !skip_invalid {
                            return Err(self.entry_error(&frame, entry_start));
                        }
                        skipped += 1;
                    }
                }
                let o = if n == 3 {
                    read_options(&mut c, &mut self.scratch)?
                } else {
                    Options::default()
                };
                self.finish(&c)?;
                Ok(Parsed::Frame(Frame::Events(EventsFrame {
                    mode: Mode::Forward,
                    tag,
                    events,
                    chunk: o.chunk.map(|r| frame.slice(r)),
                    size_hint: o.size,
                    skipped,
                })))
            }
            // PackedForward: bin or str
            0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6 => {
                if n > 3 {
                    return Err(FrameError::BadShape(
                        "PackedForward mode has at most 3 elements",
                    ));
                }
                let (_, r) = c.str_or_bin()?.expect("checked marker");
                let o = if n == 3 {
                    read_options(&mut c, &mut self.scratch)?
                } else {
                    Options::default()
                };
                self.finish(&c)?;
                if let Some(alg) = &o.compressed {
                    let alg = &b[alg.clone()];
                    if alg == b"gzip" {
                        return Ok(Parsed::Compressed(CompressedFrame {
                            tag,
                            payload: frame.slice(r),
                            chunk: o.chunk.map(|r| frame.slice(r)),
                            size_hint: o.size,
                        }));
                    } else if !(alg == b"text" || alg.is_empty()) {
                        return Err(FrameError::UnsupportedCompression(
                            String::from_utf8_lossy(alg).into_owned(),
                        ));
                    }
                }
                let payload = frame.slice(r);
                let (events, sk) = self.split_packed(&payload, o.size)?;
                skipped += sk;
                Ok(Parsed::Frame(Frame::Events(EventsFrame {
                    mode: Mode::PackedForward,
                    tag,
                    events,
                    chunk: o.chunk.map(|r| frame.slice(r)),
                    size_hint: o.size,
                    skipped,
                })))
            }
            // Message: time, record, option?
            _ => {
                if n == 2 || n > 4 {
                    return Err(FrameError::BadShape("Message mode has 3 or 4 elements"));
                }
                let mut events = Vec::with_capacity(1);
                let time_start = c.p;
                let time = match self.read_time_slot(&frame, &mut c) {
                    Ok((t, metadata)) => Some((
                        t.filter(|t| *t != EventTime::default())
                            .unwrap_or_else(EventTime::now),
                        metadata,
                    )),
                    Err(e) => {
                        if !skip_invalid {
                            return Err(e);
                        }
                        // skip the bad time value
                        c.p = time_start;
                        c.skip(&mut self.scratch)?;
                        None
                    }
                };
                let rec_marker = c.peek().ok_or(FrameError::Truncated("missing record"))?;
                let rr = c.skip(&mut self.scratch)?;
                match time {
                    Some((time, metadata)) if is_map_marker(rec_marker) => {
                        events.push(Event::with_metadata(time, frame.slice(rr), metadata));
                    }
                    Some(_) if !skip_invalid => return Err(FrameError::RecordNotMap),
                    _ => skipped += 1,
                }
                let o = if n == 4 {
                    read_options(&mut c, &mut self.scratch)?
                } else {
                    Options::default()
                };
                self.finish(&c)?;
                Ok(Parsed::Frame(Frame::Events(EventsFrame {
                    mode: Mode::Message,
                    tag,
                    events,
                    chunk: o.chunk.map(|r| frame.slice(r)),
                    size_hint: o.size,
                    skipped,
                })))
            }
        }
    }

    /// Whether the array at `b[p..]` is a v1.5 time slot `[time, ...]` rather than Forward
    /// mode's array of entries: its first element is a time (integer, float or ext), never an
    /// array. An empty array is Forward mode with no entries.
    fn is_v15_time_array(&self, b: &[u8], p: usize) -> bool {
        let mut c = Cur { b, p };
        match c.array_len() {
            Ok(Some(n)) if n > 0 => matches!(
                c.peek(),
                Some(0x00..=0x7f | 0xe0..=0xff | 0xca..=0xd3 | 0xd4..=0xd8 | 0xc7..=0xc9)
            ),
            _ => false,
        }
    }

    fn finish(&self, c: &Cur<'_>) -> Result<(), FrameError> {
        if !c.at_end() {
            return Err(FrameError::BadShape("trailing data inside the frame"));
        }
        Ok(())
    }

    /// Reads an entry's time slot: a plain time, or the v1.5 array `[time, Hash*]` whose maps
    /// become the event's metadata (see the module docs). `Ok((None, _))` for a `nil` time.
    #[inline(always)]
    fn read_time_slot(
        &mut self,
        src: &Bytes,
        c: &mut Cur<'_>,
    ) -> Result<(Option<EventTime>, Option<Bytes>), FrameError> {
        // A plain time is by far the common case: one marker test, then straight to it.
        if is_array_marker(c.peek()) {
            self.read_v15_time(src, c)
        } else {
            Ok((read_time(c)?, None))
        }
    }

    /// The v1.5 form of [`Self::read_time_slot`]: `[time, Hash*]` (cold path).
    #[inline(never)]
    fn read_v15_time(
        &mut self,
        src: &Bytes,
        c: &mut Cur<'_>,
    ) -> Result<(Option<EventTime>, Option<Bytes>), FrameError> {
        let n = c.array_len()?.unwrap_or(0);
        if n == 0 {
            return Err(FrameError::BadTime("v1.5 metadata array has no time"));
        }
        let time = read_time(c)?;
        let mut next_map = |c: &mut Cur<'_>| {
            let m = c.peek().ok_or(FrameError::Truncated("missing metadata"))?;
            if !is_map_marker(m) {
                return Err(FrameError::BadTime(
                    "v1.5 metadata array must hold a time and maps",
                ));
            }
            c.skip(&mut self.scratch)
        };
        let metadata = match n {
            1 => Bytes::from_static(&[0x80]),
            2 => src.slice(next_map(c)?),
            _ => {
                let maps = (1..n).map(|_| next_map(c)).collect::<Result<Vec<_>, _>>()?;
                merge_maps(src, &maps)?
            }
        };
        Ok((time, Some(metadata)))
    }

    /// Recomputes the error for an invalid entry (cold path).
    fn entry_error(&mut self, frame: &Bytes, start: usize) -> FrameError {
        let mut c = Cur { b: frame, p: start };
        match c.array_len() {
            Ok(Some(2)) => {}
            Ok(_) => return FrameError::BadShape("entry must be [time, record]"),
            Err(e) => return e,
        }
        if let Err(e) = self.read_time_slot(frame, &mut c) {
            return e;
        }
        FrameError::RecordNotMap
    }

    /// Decodes one `[time, record]` entry from `c`, pushing an event. Returns `Ok(false)` (with
    /// the cursor past the entry) when the entry is well-formed msgpack but not a valid event.
    #[inline]
    fn entry(
        &mut self,
        src: &Bytes,
        c: &mut Cur<'_>,
        out: &mut Vec<Event>,
    ) -> Result<bool, FrameError> {
        let start = c.p;
        // fast path: [[EventTime, {metadata}], fixmap record], Fluent Bit >= 5.0.5's default entry
        if let Some(h) = c.b.get(start..start + 13) {
            if h[0] == 0x92 && h[1] == 0x92 && h[2] == 0xd7 && h[3] == 0x00 && is_map_marker(h[12])
            {
                let secs = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as i64;
                let nanos = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
                let ms = start + 12;
                let mn = object_len(&c.b[ms..], &mut self.scratch)?;
                let rs = ms + mn;
                if secs != 0
                    && nanos < 1_000_000_000
                    && c.b.get(rs).is_some_and(|&m| is_map_marker(m))
                {
                    let n = object_len(&c.b[rs..], &mut self.scratch)?;
                    c.p = rs + n;
                    out.push(Event::with_metadata(
                        EventTime::new(secs, nanos),
                        src.slice(rs..rs + n),
                        Some(src.slice(ms..rs)),
                    ));
                    return Ok(true);
                }
            }
        }
        // fast path: [EventTime (fixext8 type 0), fixmap record], the common PackedForward entry
        if let Some(h) = c.b.get(start..start + 12) {
            if h[0] == 0x92 && h[1] == 0xd7 && h[2] == 0x00 && (0x81..=0x8f).contains(&h[11]) {
                let secs = u32::from_be_bytes([h[3], h[4], h[5], h[6]]) as i64;
                let nanos = u32::from_be_bytes([h[7], h[8], h[9], h[10]]);
                if secs != 0 && nanos < 1_000_000_000 {
                    let rs = start + 11;
                    let n = object_len(&c.b[rs..], &mut self.scratch)?;
                    c.p = rs + n;
                    out.push(Event::new(
                        EventTime::new(secs, nanos),
                        src.slice(rs..rs + n),
                    ));
                    return Ok(true);
                }
            }
        }
        let n = match c.array_len()? {
            Some(n) => n,
            None => {
                c.skip(&mut self.scratch)?;
                return Ok(false);
            }
        };
        if n != 2 {
            c.p = start;
            c.skip(&mut self.scratch)?;
            return Ok(false);
        }
        let (time, metadata) = match self.read_time_slot(src, c) {
            Ok((t, metadata)) => (
                t.filter(|t| *t != EventTime::default())
                    .unwrap_or_else(EventTime::now),
                metadata,
            ),
            Err(FrameError::Truncated(m)) => return Err(FrameError::Truncated(m)),
            Err(_) => {
                c.p = start;
                c.skip(&mut self.scratch)?;
                return Ok(false);
            }
        };
        let m = c.peek().ok_or(FrameError::Truncated("missing record"))?;
        let rr = c.skip(&mut self.scratch)?;
        if !is_map_marker(m) {
            return Ok(false);
        }
        out.push(Event::with_metadata(time, src.slice(rr), metadata));
        Ok(true)
    }

    /// Splits a PackedForward payload into events (records are slices of `payload`).
    pub fn split_packed(
        &mut self,
        payload: &Bytes,
        size_hint: Option<u64>,
    ) -> Result<(Vec<Event>, usize), FrameError> {
        // `size` is a hint only: cap what we pre-allocate by what the payload could hold.
        let cap = size_hint
            .unwrap_or(0)
            .min(payload.len() as u64 / 3)
            .min(65536) as usize;
        let mut events = Vec::with_capacity(cap);
        let (skipped, _) = self.split_entries(payload, true, &mut events)?;
        Ok((events, skipped))
    }

    /// Splits the complete `[time, record]` entries at the start of `payload` into `out`.
    /// Returns (entries skipped by `skip_invalid_event`, bytes consumed). Unless `last`, an
    /// entry that runs past the end of `payload` is not an error: the bytes consumed stop
    /// before it (a window of a payload that is inflated piece by piece).
    pub fn split_entries(
        &mut self,
        payload: &Bytes,
        last: bool,
        out: &mut Vec<Event>,
    ) -> Result<(usize, usize), FrameError> {
        let mut c = Cur { b: payload, p: 0 };
        let mut skipped = 0;
        while !c.at_end() {
            let start = c.p;
            let complete = match self.entry(payload, &mut c, out) {
                Ok(ok) => ok,
                Err(FrameError::Truncated(_)) if !last => return Ok((skipped, start)),
                Err(e) => return Err(e),
            };
            if !complete {
                if !self.opts.skip_invalid_event {
                    return Err(self.entry_error(payload, start));
                }
                skipped += 1;
            }
        }
        Ok((skipped, c.p))
    }
}

/// A [`Decoder`] producing [`Frame`]s: scanning (resumable) plus classification.
#[derive(Debug, Clone)]
pub struct ForwardDecoder {
    scanner: FrameScanner,
    parser: FrameParser,
}

impl ForwardDecoder {
    /// A decoder with these options.
    pub fn new(opts: DecodeOptions) -> Self {
        Self {
            scanner: FrameScanner::new(opts.max_frame_size, opts.max_depth),
            parser: FrameParser::new(opts),
        }
    }

    /// True when part of a frame is buffered (used for the slow-loris timeout and for EOF checks).
    pub fn in_progress(&self) -> bool {
        self.scanner.in_progress()
    }

    /// The least total size of the frame in progress, as far as its headers tell
    /// ([`FrameScanner::known_len`]).
    pub fn known_frame_len(&self) -> Option<usize> {
        self.scanner.known_len()
    }

    /// Classifies a raw frame, leaving a gzip payload compressed ([`FrameParser::parse_deferred`]).
    pub fn parse_deferred(&mut self, frame: Bytes) -> Result<Parsed, FrameError> {
        self.parser.parse_deferred(frame)
    }

    /// Splits the next complete raw frame off `buf` without classifying it.
    pub fn next_raw(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.scanner.scan(buf)? {
            Some(n) => Ok(Some(buf.split_to(n).freeze())),
            None => Ok(None),
        }
    }

    /// Classifies a raw frame.
    pub fn parse(&mut self, frame: Bytes) -> Result<Frame, FrameError> {
        self.parser.parse(frame)
    }
}

impl Default for ForwardDecoder {
    fn default() -> Self {
        Self::new(DecodeOptions::default())
    }
}

impl Decoder for ForwardDecoder {
    type Item = Frame;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        match self.next_raw(src)? {
            Some(f) => Ok(Some(self.parse(f)?)),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        match self.decode(buf)? {
            Some(f) => Ok(Some(f)),
            None if buf.is_empty() => Ok(None),
            None => Err(DecodeError::Frame(FrameError::Truncated(
                "stream ended inside a frame",
            ))),
        }
    }
}

/// Error type of the [`Decoder`] impl (codecs need `From<io::Error>`).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A protocol error.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// An I/O error from the underlying stream.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

// ---------------------------------------------------------------------------------------------
// Record rewriting and small encoders
// ---------------------------------------------------------------------------------------------

/// Appends `key: value` (both strs) to the msgpack map `record`, bumping its header.
/// Returns `None` when `record` is not a map.
pub fn append_str_pair(record: &[u8], pairs: &[(&str, &str)]) -> Option<Bytes> {
    let m = *record.first()?;
    let (count, hdr) = match m {
        0x80..=0x8f => ((m & 0x0f) as u64, 1),
        0xde if record.len() >= 3 => (be_u16(&record[1..]), 3),
        0xdf if record.len() >= 5 => (be_u32(&record[1..]), 5),
        _ => return None,
    };
    let new_count = count + pairs.len() as u64;
    let extra: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
    let mut out = Vec::with_capacity(record.len() + extra + 4);
    write_map_len(&mut out, new_count as u32);
    out.extend_from_slice(&record[hdr..]);
    for (k, v) in pairs {
        write_str(&mut out, k.as_bytes());
        write_str(&mut out, v.as_bytes());
    }
    Some(Bytes::from(out))
}

/// Writes a msgpack map header.
pub fn write_map_len(out: &mut Vec<u8>, n: u32) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else if n <= u16::MAX as u32 {
        out.push(0xde);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Writes a msgpack array header.
pub fn write_array_len(out: &mut Vec<u8>, n: u32) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if n <= u16::MAX as u32 {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Writes a msgpack str (bytes taken as given).
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n < 256 {
        out.push(0xd9);
        out.push(n as u8);
    } else if n <= u16::MAX as usize {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// Writes a msgpack bin.
pub fn write_bin(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 256 {
        out.push(0xc4);
        out.push(n as u8);
    } else if n <= u16::MAX as usize {
        out.push(0xc5);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// Writes one Forward/PackedForward entry for `ev`: `[time, record]`, or with `with_metadata`
/// and an event that carries v1.5 metadata, `[[time, metadata], record]`. Receivers older than
/// Fluentd 1.19 / Fluent Bit 5 reject the v1.5 form, so senders opt in.
pub fn write_entry(out: &mut Vec<u8>, ev: &Event, with_metadata: bool) {
    out.push(0x92);
    match &ev.metadata {
        Some(m) if with_metadata => {
            out.push(0x92);
            write_event_time(out, ev.time);
            out.extend_from_slice(m);
        }
        _ => write_event_time(out, ev.time),
    }
    out.extend_from_slice(&ev.record);
}

/// Writes an EventTime (fixext8, ext type 0).
pub fn write_event_time(out: &mut Vec<u8>, t: EventTime) {
    out.push(0xd7);
    out.push(0x00);
    out.extend_from_slice(&(t.secs as u32).to_be_bytes());
    out.extend_from_slice(&t.nanos.to_be_bytes());
}

/// Encodes the ack reply `{"ack": chunk}`.
pub fn encode_ack(chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 8);
    write_ack(&mut out, chunk);
    out
}

/// Appends the ack reply `{"ack": chunk}` to `out`.
pub fn write_ack(out: &mut Vec<u8>, chunk: &[u8]) {
    out.push(0x81);
    write_str(out, b"ack");
    write_str(out, chunk);
}

/// Parses an ack reply `{"ack": chunk}`; returns the chunk bytes.
pub fn parse_ack(frame: &[u8]) -> Option<&[u8]> {
    let mut c = Cur { b: frame, p: 0 };
    let n = c.map_len().ok()??;
    for _ in 0..n {
        let (_, k) = c.str_or_bin().ok()??;
        let (_, v) = c.str_or_bin().ok()??;
        if &frame[k] == b"ack" {
            return Some(&frame[v]);
        }
    }
    None
}

/// Generic helper for the handshake module: reads an array of (str|bin|bool|map) values.
pub(crate) mod raw {
    use super::*;

    /// A shallow msgpack value, enough for HELO/PONG.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Raw {
        Bytes(Bytes),
        Bool(bool),
        Nil,
        Map(Vec<(Bytes, Raw)>),
        Other,
    }

    fn value(
        frame: &Bytes,
        c: &mut Cur<'_>,
        scratch: &mut FrameScanner,
        depth: usize,
    ) -> Result<Raw, FrameError> {
        let m = c.peek().ok_or(FrameError::Truncated("unexpected end"))?;
        match m {
            0xc0 => {
                c.p += 1;
                Ok(Raw::Nil)
            }
            0xc2 | 0xc3 => {
                c.p += 1;
                Ok(Raw::Bool(m == 0xc3))
            }
            _ => {
                if let Some((_, r)) = c.str_or_bin()? {
                    return Ok(Raw::Bytes(frame.slice(r)));
                }
                if depth < 2 && is_map_marker(m) {
                    let n = c.map_len()?.unwrap_or(0);
                    let mut v = Vec::new();
                    for _ in 0..n {
                        let k = match value(frame, c, scratch, depth + 1)? {
                            Raw::Bytes(b) => b,
                            _ => Bytes::new(),
                        };
                        let val = value(frame, c, scratch, depth + 1)?;
                        v.push((k, val));
                    }
                    return Ok(Raw::Map(v));
                }
                c.skip(scratch)?;
                Ok(Raw::Other)
            }
        }
    }

    /// Parses a top-level array into shallow values.
    pub fn array(frame: &Bytes) -> Result<Vec<Raw>, FrameError> {
        let mut scratch = FrameScanner::new(usize::MAX, DEFAULT_MAX_DEPTH);
        let mut c = Cur { b: frame, p: 0 };
        let n = c.array_len()?.ok_or(FrameError::BadShape("not an array"))?;
        let mut out = Vec::with_capacity(n.min(16) as usize);
        for _ in 0..n {
            out.push(value(frame, &mut c, &mut scratch, 0)?);
        }
        Ok(out)
    }
}
