#!/usr/bin/env bash
# The project's test command (see README): starts the private test services
# (installing what is missing), then runs
#   cargo fmt --all -- --check
#   cargo clippy --workspace --all-targets --locked -- -D warnings
#   scripts/lint-dockerfiles.sh   (hadolint)
#   scripts/build-release.sh      (the Dockerfiles' cargo build --release --locked)
#   scripts/fuzz.sh               (the Forward decoder and connection fuzzers, FUZZ_SECONDS each, default 60)
#   cargo test --workspace --locked [ARGS...]
# and stops the services on exit, whatever happened.
#
# Usage: scripts/test.sh [-- ARGS...]     e.g. scripts/test.sh -- --test harness_services
# ARGS go to `cargo test` as they are (put test-binary flags after another `--`).
#
# cargo test's output comes last, so its summary lines end the output. The exit
# code is cargo test's; if the tests pass but fmt or clippy failed, it is 1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ "${1:-}" == "--" ]] && shift

# rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
    echo "test.sh: cargo is not installed (or not on PATH); install Rust with rustup first" >&2
    exit 127
fi

SERVICES=scripts/test-services.sh
mkdir -p "${CARGO_TARGET_DIR:-target}"
STOP_LOG="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/test-services-stop.log"
# Stop the services however we leave; its messages go to a log file so that
# cargo test's summary stays the last thing printed.
trap '"$SERVICES" stop >>"$STOP_LOG" 2>&1 || echo "test.sh: stopping the services failed, see $STOP_LOG" >&2' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start the services and export their TEST_* variables (one KEY=VALUE a line).
env_lines="$("$SERVICES" start)"
while IFS= read -r line; do
    [[ -n "$line" ]] && export "${line?}"
done <<<"$env_lines"
# Tests must fail, not skip, when a service they need is missing.
export REQUIRE_SERVICES=1

failed=()
echo "==> cargo fmt --all -- --check" >&2
cargo fmt --all -- --check || failed+=(fmt)
echo "==> cargo clippy --workspace --all-targets --locked -- -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings || failed+=(clippy)
echo "==> scripts/lint-dockerfiles.sh" >&2
scripts/lint-dockerfiles.sh >&2 || failed+=(hadolint)
# The images' exact cargo command (api/tests/deploy_dockerfiles.rs keeps them in step).
echo "==> scripts/build-release.sh" >&2
scripts/build-release.sh >&2 || failed+=(release-build)
echo "==> scripts/fuzz.sh ${FUZZ_SECONDS:-60}" >&2
scripts/fuzz.sh "${FUZZ_SECONDS:-60}" >&2 || failed+=(fuzz)

# schemathesis (the newest release on PyPI; PIP_FIND_LINKS may point at a wheel
# directory) for api/tests/schemathesis.rs, in a venv under the target dir. Under
# REQUIRE_SERVICES=1 that test fails if it is missing.
ST_VENV="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/schemathesis-venv"
if [[ ! -x "$ST_VENV/bin/schemathesis" ]]; then
    echo "==> installing schemathesis into $ST_VENV" >&2
    { python3 -m venv "$ST_VENV" && "$ST_VENV/bin/pip" install -q --upgrade schemathesis; } >&2 ||
        echo "test.sh: installing schemathesis failed" >&2
fi
export SCHEMATHESIS="$ST_VENV/bin/schemathesis"

echo "==> cargo test --workspace --locked $*" >&2
rc=0
cargo test --workspace --locked "$@" || rc=$?
if ((rc == 0 && ${#failed[@]} > 0)); then
    echo "test.sh: tests passed but ${failed[*]} failed" >&2
    rc=1
fi
exit "$rc"
