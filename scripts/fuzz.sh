#!/usr/bin/env bash
# Fuzz the Forward protocol for a bounded time: the frame decoder and a whole server connection
# (handshake states, acks, heartbeats, bytes in random pieces).
#
#   scripts/fuzz.sh [SECONDS]          (default 60 per target; scripts/test.sh runs it in CI)
#
# cargo-fuzz (installed on demand, pinned) builds the libFuzzer targets of logship/fuzz on the
# stable toolchain with `--sanitizer none`: libFuzzer's coverage instrumentation is stable
# (`-Cpasses=sancov-module`), only the sanitizers need nightly, and logship is safe Rust. Where
# a nightly toolchain is installed, `FUZZ_TOOLCHAIN=nightly FUZZ_SANITIZER=address` adds
# AddressSanitizer (for the dependencies' unsafe code).
#
# The corpus starts from the golden vectors (../shared/vectors/forward), each with a few flag
# combinations (handshake with a valid PING, lenient decoding, deny_keepalive; see
# logship::forward::fuzzing). A failing input is copied into
# logship/fuzz/regressions/<target>/ and printed in hex; commit that file:
# `cargo test -p logship --test forward_fuzz_regressions` replays it as a failing test until the
# bug is fixed. The script then exits 1.
set -euo pipefail
secs="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
vectors="${FORWARD_VECTORS_DIR:-$root/../shared/vectors/forward}"
target_dir="${CARGO_TARGET_DIR:-$root/target}/fuzz"
sanitizer="${FUZZ_SANITIZER:-none}"
toolchain=()
if [[ -n "${FUZZ_TOOLCHAIN:-}" ]]; then toolchain=("+$FUZZ_TOOLCHAIN"); fi
cargo_fuzz_version=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q " $cargo_fuzz_version\$"; then
  echo "fuzz.sh: installing cargo-fuzz $cargo_fuzz_version" >&2
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi
# libFuzzer itself is C++ (built by the libfuzzer-sys crate).
if ! command -v c++ >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    apt-get install -y -q g++ >&2
  else
    echo "fuzz.sh: a C++ compiler is needed for libFuzzer (apt-get install g++)" >&2
    exit 1
  fi
fi
if [[ ! -f "$vectors/index.json" ]]; then
  echo "fuzz.sh: golden vectors missing at $vectors (FORWARD_VECTORS_DIR)" >&2
  exit 1
fi

cd "$root/logship/fuzz"
# The fuzz crate's Cargo.lock is committed and must be up to date.
cargo metadata --locked --format-version 1 >/dev/null

status=0
for target in forward_decode forward_connection; do
  corpus="$target_dir/corpus/$target"
  artifacts="$root/logship/fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  for f in "$vectors"/*.bin; do
    # byte 0: flags (0 plain, 03 handshake with a valid PING, 04 lenient, 08 deny_keepalive),
    # byte 1: the seed of the piece sizes
    for flags in 00 03 04 08; do
      { printf "\\x$flags\\x07"; cat "$f"; } >"$corpus/$(basename "$f" .bin)-$flags"
    done
  done
  before="$(find "$artifacts" -type f | sort)"
  echo "fuzz.sh: $target for ${secs}s (sanitizer $sanitizer)" >&2
  if ! cargo "${toolchain[@]}" fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" \
    "$target" "$corpus" -- \
    -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048 -timeout=30 -print_final_stats=1; then
    status=1
    new="$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) || true)"
    mkdir -p "$root/logship/fuzz/regressions/$target"
    for a in $new; do
      dest="$root/logship/fuzz/regressions/$target/$(basename "$a")"
      cp "$a" "$dest"
      echo "fuzz.sh: $target failed on $dest — commit it; hex:" >&2
      od -An -tx1 -v "$a" | head -64 >&2
    done
  fi
done
exit "$status"
