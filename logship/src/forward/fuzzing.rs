//! The properties the fuzzers check, as functions: the cargo-fuzz targets in `logship/fuzz`
//! call them with libFuzzer's inputs, and `tests/forward_fuzz_regressions.rs` replays every
//! committed crash input and the seed corpus through them on stable Rust in the normal test
//! suite. Each function panics when a property does not hold.
//!
//! - [`check_decoder`]: the frame decoder never panics, and feeding the bytes in chunks gives
//!   exactly the frames and the error that feeding them whole gives.
//! - [`check_connection`]: a whole server connection ([`ForwardServer::serve_connection`] over an
//!   in-memory stream), with or without the `<security>` handshake, the bytes written in random
//!   pieces: it never panics or hangs, it hands the pipeline exactly the events the reference
//!   decoder finds (up to the first bad frame, whose compressed payload may have delivered a
//!   prefix), and it acks exactly the chunks of the frames it handled, in order, and nothing
//!   else.
//!
//! Input layout, both checks: byte 0 holds flags, byte 1 the seed of the piece sizes, the rest
//! is what the client sends ([`FuzzInput`]).

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::codec::{parse_ack, DecodeOptions, ForwardDecoder, Frame, FrameError, FrameScanner};
use super::handshake::{ClientHandshake, SecurityConfig, ServerHandshake};
use super::server::{ForwardServer, ForwardServerConfig};
use crate::event::{BoxFuture, EmitError, EventBatch, EventSink};
use crate::memory_budget::MemoryBudget;

/// Decoding limits of the fuzzed decoder and server (small, so that the fuzzer reaches them).
pub fn fuzz_options(skip_invalid_event: bool) -> DecodeOptions {
    DecodeOptions {
        max_frame_size: 1 << 20,
        max_depth: 64,
        max_decompressed_size: 4 << 20,
        max_decompression_ratio: 100,
        skip_invalid_event,
    }
}

/// A fuzz input: flags, the piece-size seed, and the bytes the client sends.
#[derive(Debug, Clone, Copy)]
pub struct FuzzInput<'a> {
    /// bit 0: `<security>` on; bit 1: the harness sends a valid PING first (so the bytes are
    /// read in the established state); bit 2: `skip_invalid_event`; bit 3: `deny_keepalive`.
    pub flags: u8,
    /// Seeds the sizes of the pieces the bytes are written in (1..=128 bytes each).
    pub split_seed: u8,
    /// What the client sends.
    pub data: &'a [u8],
}

impl<'a> FuzzInput<'a> {
    /// Splits a raw fuzz input; `None` when it is shorter than the two header bytes.
    pub fn parse(raw: &'a [u8]) -> Option<Self> {
        match raw {
            [flags, split_seed, data @ ..] => Some(Self {
                flags: *flags,
                split_seed: *split_seed,
                data,
            }),
            _ => None,
        }
    }

    /// A raw input for these fields (to build seed corpora).
    pub fn encode(flags: u8, split_seed: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![flags, split_seed];
        v.extend_from_slice(data);
        v
    }

    fn security(&self) -> bool {
        self.flags & 1 != 0
    }
    fn valid_ping(&self) -> bool {
        self.security() && self.flags & 2 != 0
    }
    fn skip_invalid(&self) -> bool {
        self.flags & 4 != 0
    }
    fn deny_keepalive(&self) -> bool {
        self.flags & 8 != 0
    }

    /// The data in pieces whose sizes follow from the seed.
    fn pieces(&self) -> Vec<&'a [u8]> {
        let mut state = u64::from(self.split_seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut out = Vec::new();
        let mut rest = self.data;
        while !rest.is_empty() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = ((state % 128) as usize + 1).min(rest.len());
            out.push(&rest[..n]);
            rest = &rest[n..];
        }
        out
    }
}

/// Frames decoded from `chunks` in order, and the error that stopped decoding, if any. Times
/// of `nil`/0 (which become "now") are zeroed so that two decodings compare equal.
pub fn decode_frames(chunks: &[&[u8]], opts: &DecodeOptions) -> (Vec<Frame>, Option<FrameError>) {
    let mut dec = ForwardDecoder::new(opts.clone());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match dec.next_raw(&mut buf) {
                Ok(Some(raw)) => match dec.parse(raw) {
                    Ok(f) => frames.push(zero_now(f)),
                    Err(e) => return (frames, Some(e)),
                },
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fn zero_now(mut f: Frame) -> Frame {
    if let Frame::Events(ev) = &mut f {
        for e in ev.events.iter_mut() {
            e.time = crate::event::EventTime::default();
        }
    }
    f
}

/// The decoder property (see the module docs).
pub fn check_decoder(raw: &[u8]) {
    let Some(input) = FuzzInput::parse(raw) else {
        return;
    };
    let opts = fuzz_options(input.skip_invalid());
    let whole = decode_frames(&[input.data], &opts);
    let split = decode_frames(&input.pieces(), &opts);
    assert_eq!(whole, split, "chunking changed the decoding");
}

/// Records what the server hands the pipeline.
#[derive(Default)]
struct Collect(Mutex<Vec<EventBatch>>);

impl EventSink for Collect {
    fn emit(&self, batch: EventBatch) -> BoxFuture<'_, Result<(), EmitError>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(batch);
        Box::pin(async { Ok(()) })
    }
}

const NONCE: [u8; 16] = *b"fuzzing-nonce-16";
const KEY: &str = "fuzz-key";

/// The connection property (see the module docs).
pub fn check_connection(raw: &[u8]) {
    let Some(input) = FuzzInput::parse(raw) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(connection(input));
}

async fn connection(input: FuzzInput<'_>) {
    let security = input.security().then(|| SecurityConfig {
        shared_key: KEY.into(),
        self_hostname: "fuzz-server".into(),
        fixed_nonce: Some(NONCE.to_vec()),
        ..Default::default()
    });
    let opts = fuzz_options(input.skip_invalid());
    let cfg = ForwardServerConfig {
        security: security.clone(),
        chunk_size_limit: opts.max_frame_size,
        max_depth: opts.max_depth,
        max_decompressed_size: opts.max_decompressed_size,
        max_decompression_ratio: opts.max_decompression_ratio,
        skip_invalid_event: opts.skip_invalid_event,
        deny_keepalive: input.deny_keepalive(),
        memory_budget: Some(MemoryBudget::new(64 << 20)),
        ..Default::default()
    };
    let server = ForwardServer::new(cfg).expect("no TLS");
    let sink = Arc::new(Collect::default());
    let (client, server_end) = tokio::io::duplex(64 * 1024);
    let (mut from_server, mut to_server) = tokio::io::split(client);

    let ping = input.valid_ping().then(|| {
        let helo = ServerHandshake::new(security.as_ref().expect("security on"));
        let helo = super::handshake::parse_helo(&Bytes::from(helo.helo(true))).expect("HELO");
        ClientHandshake::new("fuzz-client".into(), KEY.into(), None).ping(&helo)
    });
    let writer = {
        let ping = ping.clone();
        let pieces: Vec<Vec<u8>> = input.pieces().into_iter().map(<[u8]>::to_vec).collect();
        async move {
            if let Some(p) = ping {
                let _ = to_server.write_all(&p).await;
            }
            for p in pieces {
                if to_server.write_all(&p).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let _ = to_server.shutdown().await;
        }
    };
    let reader = async move {
        let mut replies = Vec::new();
        let _ = from_server.read_to_end(&mut replies).await;
        replies
    };
    let serve = async {
        // Ok or an error: both are fine, what it did is checked below.
        let _ = server
            .serve_connection(server_end, None, sink.clone())
            .await;
    };
    let limit = std::time::Duration::from_secs(10);
    let (_, replies, _) =
        tokio::time::timeout(limit, async { tokio::join!(writer, reader, serve) })
            .await
            .expect("the connection ends once the client has sent everything");

    // The reference: what the decoder finds in the same bytes.
    let (frames, error) = decode_frames(&[input.data], &opts);
    let mut expected_events = Vec::new();
    let mut expected_acks: Vec<Bytes> = Vec::new();
    let established = !input.security() || input.valid_ping();
    let mut stopped = error.is_some() || (!established && !input.data.is_empty());
    if established {
        for f in &frames {
            match f {
                Frame::Events(ev) => {
                    expected_events.extend(ev.events.iter().map(|e| (ev.tag.clone(), e.clone())));
                    expected_acks.extend(ev.chunk.iter().cloned());
                }
                Frame::Heartbeat => {}
                // a PING in the established state ends the connection
                Frame::Ping(_) => {
                    stopped = true;
                    break;
                }
            }
            if input.deny_keepalive() {
                break;
            }
        }
    }
    let got_events: Vec<_> = sink
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .flat_map(|b| b.events.iter().map(|e| (b.tag.clone(), e.clone())))
        .map(|(tag, mut e)| {
            e.time = crate::event::EventTime::default();
            (tag, e)
        })
        .collect();
    let acks = acks_in(&replies, input.security());
    if !established {
        // No (valid) PING: nothing may reach the pipeline, nothing is acked.
        assert!(got_events.is_empty(), "events before the handshake");
        assert!(acks.is_empty(), "acks before the handshake");
        return;
    }
    if stopped {
        // Frames before the bad one were delivered; a compressed bad frame may have added a
        // prefix of its own events.
        assert!(
            got_events.len() >= expected_events.len()
                && got_events[..expected_events.len()] == expected_events[..],
            "the events before the bad frame"
        );
    } else {
        assert_eq!(got_events, expected_events, "the events of the stream");
    }
    if stopped {
        assert!(
            acks.len() <= expected_acks.len() && acks[..] == expected_acks[..acks.len()],
            "acks are a prefix of the chunks"
        );
    } else {
        assert_eq!(acks, expected_acks, "one ack per chunk, in order");
    }
}

/// The chunk ids acked in the server's replies (after the HELO and PONG with `<security>`).
fn acks_in(replies: &[u8], security: bool) -> Vec<Bytes> {
    let mut scanner = FrameScanner::new(usize::MAX, 100);
    let mut rest = replies;
    let mut out = Vec::new();
    let mut index = 0;
    while !rest.is_empty() {
        let n = scanner
            .scan(rest)
            .expect("replies are msgpack")
            .expect("replies are complete objects");
        let obj = &rest[..n];
        rest = &rest[n..];
        let handshake = security && index < 2;
        index += 1;
        if handshake {
            continue;
        }
        let ack = parse_ack(obj).expect("every other reply is an ack");
        out.push(Bytes::copy_from_slice(ack));
    }
    out
}
