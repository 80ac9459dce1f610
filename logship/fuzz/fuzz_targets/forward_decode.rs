//! Fuzzes the Forward frame decoder: arbitrary bytes, fed whole and in pieces. The property is
//! `logship::forward::fuzzing::check_decoder` (a crash input committed under
//! `regressions/forward_decode/` is replayed by `tests/forward_fuzz_regressions.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    logship::forward::fuzzing::check_decoder(data);
});
