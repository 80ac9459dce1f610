#!/usr/bin/env bash
# Fuzz the Forward protocol decoder for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]      (default 60)
#
# With a nightly toolchain and cargo-fuzz (installed on demand) this runs the libFuzzer target
# logship/fuzz/fuzz_targets/forward_decode.rs, seeded with the golden vectors. Without nightly it
# falls back to the stable randomized test (tests/forward_fuzz_stable.rs) with more cases.
set -euo pipefail
secs="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
vectors="$root/../shared/vectors/forward"

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
  fi
  cd "$root/logship/fuzz"
  corpus="corpus/forward_decode"
  mkdir -p "$corpus"
  if [ -d "$vectors" ]; then
    for f in "$vectors"/*.bin; do
      # first byte is the chunking control byte of the target
      { printf '\x07'; cat "$f"; } > "$corpus/$(basename "$f" .bin)"
    done
  fi
  exec cargo +nightly fuzz run forward_decode "$corpus" -- \
    -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048
else
  echo "no nightly toolchain: running the stable randomized decoder test instead" >&2
  cd "$root"
  FORWARD_FUZZ_CASES="$((secs * 500))" exec cargo test -p logship --test forward_fuzz_stable -- --nocapture
fi
