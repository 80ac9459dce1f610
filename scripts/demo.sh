#!/usr/bin/env bash
# The README's first command: run the api on its embedded default (SQLite) with its logs
# flowing through logship, on a fresh machine with no Docker.
#
#   api (stdout: bunyan JSON) --logship exec--> Forward :24224 --> logship run -c fluentd/demo.conf --> stdout
#
# The api listens on :5000 (PORT). In another terminal: `curl localhost:5000/users`, and the
# request's events appear here as Fluentd-format lines (`TIME TAG: JSON`). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "demo: cargo is not installed; install Rust from https://rustup.rs first" >&2
  exit 1
fi

echo "demo: building api and logship (first build takes a few minutes)..." >&2
cargo build --locked --quiet --bin api --bin logship
# cargo honours CARGO_TARGET_DIR; the binaries are where it put them (absolute path, since the
# api runs from its own working directory below).
target_dir="${CARGO_TARGET_DIR:-target}"
bin="$(cd "$target_dir/debug" && pwd)"

workdir=target/demo
mkdir -p "$workdir"
forward_port=24224   # fluentd/demo.conf listens where Fluentd does
export PORT="${PORT:-5000}"

pids=()
cleanup() {
  # Stop only what this script started, newest first, and wait for each.
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# 1. The shipper: Fluentd's demo pipeline (forward in, stdout out), unchanged.
"$bin/logship" run -c fluentd/demo.conf 2>"$workdir/logship.log" &
pids+=($!)

# 2. The api on SQLite (./target/demo/api.db), its stdout shipped the way Docker's fluentd
#    driver ships a container's lines. The api's own copy of its lines goes to a file so the
#    terminal shows only what arrived through logship.
(
  cd "$workdir"
  exec "$bin/logship" exec --tag docker.api --name api --port "$forward_port" -- "$bin/api" serve
) >"$workdir/api.stdout" 2>"$workdir/api.stderr" &
pids+=($!)

echo "demo: api on http://localhost:$PORT  (try: curl localhost:$PORT/users)" >&2
echo "demo: events shipped through logship appear below; Ctrl-C to stop" >&2
wait -n "${pids[@]}"
