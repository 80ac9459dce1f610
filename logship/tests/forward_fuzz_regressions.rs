//! The fuzzers' properties (`logship::forward::fuzzing`) on stable Rust, in the normal test
//! suite: every input committed under `logship/fuzz/regressions/<target>/` (a crash the fuzzer
//! found; see `scripts/fuzz.sh`), and the seed corpus the fuzzers start from (every golden
//! vector with each combination of flags: handshake on/off with a valid PING, lenient,
//! `deny_keepalive`).

mod common;

use std::path::PathBuf;

use common::all_vectors;
use logship::forward::fuzzing::{check_connection, check_decoder, FuzzInput};

fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn committed_crash_inputs_pass() {
    for (path, input) in regressions("forward_decode") {
        eprintln!("replaying {}", path.display());
        check_decoder(&input);
    }
    for (path, input) in regressions("forward_connection") {
        eprintln!("replaying {}", path.display());
        check_connection(&input);
    }
}

#[test]
fn the_seed_corpus_passes() {
    for (name, bin, _) in all_vectors() {
        for flags in [0u8, 0b0011, 0b0100, 0b1000, 0b1011] {
            let raw = FuzzInput::encode(flags, 7, &bin);
            check_decoder(&raw);
            check_connection(&raw);
            eprintln!("{name} flags {flags:04b}: ok");
        }
    }
}
