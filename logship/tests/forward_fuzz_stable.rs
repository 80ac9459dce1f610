//! Randomized decoder robustness test on stable Rust (the cargo-fuzz target in `logship/fuzz`
//! needs nightly). Mutates the golden vectors and random bytes; the decoder must never panic,
//! and feeding the same bytes in random chunks must give exactly the same frames and error as
//! feeding them whole. `FORWARD_FUZZ_CASES` scales the number of cases (default 3000/vector).

mod common;

use bytes::BytesMut;
use common::*;
use logship::forward::{DecodeOptions, ForwardDecoder, Frame, FrameError};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn opts() -> DecodeOptions {
    DecodeOptions {
        max_frame_size: 1 << 20,
        max_depth: 64,
        max_decompressed_size: 4 << 20,
        ..Default::default()
    }
}

fn decode_all(chunks: &[&[u8]], skip_invalid: bool) -> (Vec<Frame>, Option<FrameError>) {
    let mut dec = ForwardDecoder::new(DecodeOptions {
        skip_invalid_event: skip_invalid,
        ..opts()
    });
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match dec.next_raw(&mut buf) {
                Ok(Some(raw)) => match dec.parse(raw) {
                    Ok(f) => frames.push(normalize_now(f)),
                    Err(e) => return (frames, Some(e)),
                },
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

/// A time of nil/0 is replaced by the current time; make that comparable.
fn normalize_now(mut f: Frame) -> Frame {
    let now = logship::event::EventTime::now().secs;
    if let Frame::Events(ev) = &mut f {
        for e in ev.events.iter_mut() {
            if (e.time.secs as i128 - now as i128).abs() < 600 {
                e.time = logship::event::EventTime::new(-1, 0);
            }
        }
    }
    f
}

fn mutate(rng: &mut Rng, src: &[u8]) -> Vec<u8> {
    let mut v = src.to_vec();
    for _ in 0..=rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                v[i] = [0xc1, 0xdd, 0xdf, 0xc6, 0xdb, 0xc9, 0xff, 0x00, 0xd7, 0xc7][rng.below(10)];
            }
            3 => {
                let i = rng.below(len + 1);
                v.insert(i, rng.next() as u8);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                v.remove(i);
            }
            5 => v.truncate(rng.below(len + 1)),
            6 if len > 1 => {
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(len);
                let seg = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, seg);
            }
            _ => {
                let n = rng.below(16);
                for _ in 0..n {
                    v.push(rng.next() as u8);
                }
            }
        }
    }
    v
}

fn chunked<'a>(rng: &mut Rng, data: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let bound = if rng.below(2) == 0 { 8 } else { 512 };
        let n = (rng.below(bound) + 1).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

#[test]
fn mutated_vectors_never_panic_and_chunking_is_transparent() {
    let cases: usize = std::env::var("FORWARD_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let vectors = all_vectors();
    let mut errors = 0usize;
    let mut oks = 0usize;
    for (name, bin, _) in &vectors {
        // the big py_types vector is 200 KB: fewer cases there to keep the test quick
        let n = if bin.len() > 64 * 1024 {
            cases / 30
        } else {
            cases
        };
        for _ in 0..n {
            let data = mutate(&mut rng, bin);
            let skip = rng.below(2) == 0;
            let whole = decode_all(&[&data], skip);
            let parts = chunked(&mut rng, &data);
            let split = decode_all(&parts, skip);
            assert_eq!(
                whole,
                split,
                "{name}: chunked decode differs (len {})",
                data.len()
            );
            if whole.1.is_some() {
                errors += 1;
            } else {
                oks += 1;
            }
        }
    }
    // pure random bytes, with a msgpack-ish bias
    for _ in 0..cases {
        let len = rng.below(300);
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let whole = decode_all(&[&data], false);
        let parts = chunked(&mut rng, &data);
        assert_eq!(whole, decode_all(&parts, false));
    }
    eprintln!("mutated cases: {oks} decoded fine, {errors} rejected");
    assert!(errors > 0 && oks > 0);
}
