//! Fuzzes a whole Forward server connection: handshake states, acks, heartbeats, bytes in
//! random pieces. The property is `logship::forward::fuzzing::check_connection` (a crash input
//! committed under `regressions/forward_connection/` is replayed by
//! `tests/forward_fuzz_regressions.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    logship::forward::fuzzing::check_connection(data);
});
