//! Randomized robustness test on stable Rust, beside the cargo-fuzz targets of `logship/fuzz`
//! (`scripts/fuzz.sh`): mutations of the golden vectors and random bytes go through the same
//! properties the fuzzers check (`logship::forward::fuzzing`): the decoder never panics and
//! decodes the same in pieces as whole, and a whole server connection (with and without the
//! handshake, in random pieces) delivers exactly the decoded events and acks.
//! `FORWARD_FUZZ_CASES` scales the number of cases (default 3000 per vector; a tenth of them
//! also run the connection check).

mod common;

use common::*;
use logship::forward::fuzzing::{
    check_connection, check_decoder, decode_frames, fuzz_options, FuzzInput,
};

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
    let mut connections = 0usize;
    for (name, bin, _) in &vectors {
        // the big py_types vector is 200 KB: fewer cases there to keep the test quick
        let n = if bin.len() > 64 * 1024 {
            cases / 30
        } else {
            cases
        };
        for i in 0..n {
            let data = mutate(&mut rng, bin);
            let raw = FuzzInput::encode(rng.next() as u8, rng.next() as u8, &data);
            check_decoder(&raw);
            if i % 10 == 0 {
                check_connection(&raw);
                connections += 1;
            }
            let input = FuzzInput::parse(&raw).unwrap();
            match decode_frames(&[input.data], &fuzz_options(false)).1 {
                Some(_) => errors += 1,
                None => oks += 1,
            }
            let _ = name;
        }
    }
    // pure random bytes
    for _ in 0..cases {
        let len = rng.below(300);
        let raw: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check_decoder(&raw);
    }
    eprintln!("mutated cases: {oks} decoded fine, {errors} rejected, {connections} connections");
    assert!(errors > 0 && oks > 0);
}
