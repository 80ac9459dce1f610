#!/usr/bin/env bash
# logship end-to-end benchmark matrix (loopback only; every run bounded in events and time).
#
#   scripts/bench-logship.sh            # runs the matrix, rewrites the "## logship" figures in BENCHMARKS.md
#   RUNS=3 scripts/bench-logship.sh     # fewer repetitions
#   NO_WRITE=1 scripts/bench-logship.sh # print the table only
#   LOGSHIP_BIN=/path/to/other/logship NO_WRITE=1 scripts/bench-logship.sh  # e.g. an older build
#
# Builds the release `logship` binary and the `loadgen` example (not part of the shipped
# binary), starts `logship run` with logship/benches/configs/{null,stdout_json}.conf, and runs
# each scenario RUNS times (default 5): median events/s with min–max, server CPU-s per million
# events (utime+stime from /proc/PID/stat), peak RSS (VmHWM, reset before each run). The server's
# idle RSS is read 1 s after start. Stops only the servers it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p logship --bin logship --example loadgen
bin="${LOGSHIP_BIN:-$CARGO_TARGET_DIR/release/logship}"
gen="$CARGO_TARGET_DIR/release/examples/loadgen"
out="$(mktemp -d)"

server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

start_server() { # config port
  "$bin" run -c "$1" >/dev/null 2>"$out/server.log" &
  server_pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then break; fi
    sleep 0.05
  done
  sleep 1
  idle_rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
  echo "idle	$1	$idle_rss_kib" >>"$out/idle.tsv"
}

stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=""
}

scenario() { # output name args...
  local output="$1" name="$2"
  shift 2
  for i in $(seq "$RUNS"); do
    local line
    line=$("$gen" --timeout-secs 20 "$@" 2>/dev/null) || line="FAILED"
    echo "$output	$name	$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')	$line" >>"$out/runs.tsv"
  done
  echo "bench: $output / $name done" >&2
}

# Loopback baseline: the same bytes into a discard sink inside the load generator.
scenario sink "PackedForward 1000/chunk, 1 conn" --sink --mode packed --events 5000000
scenario sink "Message EventTime {}, 8 conns" --sink --mode message --conns 8 --events 2000000

start_server logship/benches/configs/null.conf 24311
p=(--port 24311 --pid "$server_pid")
scenario null "PackedForward 1000/chunk, 1 conn, ack last" "${p[@]}" --mode packed --events 5000000
scenario null "PackedForward 1000/chunk, 1 conn, ack every chunk" "${p[@]}" --mode packed --ack every --events 1000000
scenario null "PackedForward 1000/chunk, 8 conns, ack last" "${p[@]}" --mode packed --conns 8 --events 5000000
scenario null "CompressedPackedForward 1000/chunk, 1 conn, ack last" "${p[@]}" --mode compressed --events 2000000
scenario null "Message EventTime {}, 8 conns, ack last" "${p[@]}" --mode message --conns 8 --events 2000000
scenario null "Message int32 {}, 8 conns, ack last" "${p[@]}" --mode message --int-time --conns 8 --events 2000000
scenario null "Message EventTime {}, 1 conn, ack last" "${p[@]}" --mode message --events 1000000
scenario null "Message EventTime, 1 conn, ack every message" "${p[@]}" --mode message --ack every --events 50000
stop_server

start_server logship/benches/configs/stdout_json.conf 24312
p=(--port 24312 --pid "$server_pid")
scenario stdout-json "PackedForward 1000/chunk, 1 conn, ack last" "${p[@]}" --mode packed --events 2000000
scenario stdout-json "Message EventTime {}, 8 conns, ack last" "${p[@]}" --mode message --conns 8 --events 1000000
stop_server

commit=$(git rev-parse --short HEAD)$(git diff --quiet -- logship || echo "+dirty")
table=$(python3 - "$out/runs.tsv" "$out/idle.tsv" "$RUNS" "$commit" <<'PY'
import sys, statistics, platform, datetime, os
runs, idle, n, commit = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = {}
order = []
for line in open(runs):
    f = line.rstrip("\n").split("\t")
    key = (f[0], f[1])
    if key not in rows:
        rows[key] = []
        order.append(key)
    rows[key].append(f)
cpu = "unknown"
for l in open("/proc/cpuinfo"):
    if l.startswith("model name"):
        cpu = l.split(":", 1)[1].strip()
        break
print(f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{commit}`, "
      f"{os.cpu_count()} CPUs ({cpu}), {platform.release()}. Command: `scripts/bench-logship.sh` "
      f"(RUNS={n}). Median of {n} runs, min–max in brackets; load average (1/5/15 min) at the "
      f"median run's start. Sink rows: the load generator's own discard sink (loopback limit).")
print()
print("| output | traffic | events | events/s (min–max) | MB/s | server CPU-s per M events (min–max) | peak RSS MiB | load avg |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
for key in order:
    rs = [r for r in rows[key] if len(r) > 14]
    failed = len(rows[key]) - len(rs)
    if not rs:
        print(f"| {key[0]} | {key[1]} | – | FAILED | | | | |")
        continue
    rs.sort(key=lambda r: float(r[10]))
    med = rs[len(rs) // 2]
    eps = [float(r[10]) for r in rs]
    def num(x):
        try:
            return float(x)
        except ValueError:
            return None
    cpm = [num(r[13]) for r in rs if num(r[13]) is not None]
    rss = [num(r[14]) for r in rs if num(r[14]) is not None]
    cpm_s = f"{statistics.median(cpm):.3f} ({min(cpm):.3f}–{max(cpm):.3f})" if cpm else "–"
    rss_s = f"{max(rss):.1f}" if rss else "–"
    fail_s = f" ({failed} failed)" if failed else ""
    print(f"| {key[0]} | {key[1]} | {int(med[7]):,} | {statistics.median(eps)/1e6:.2f} M ({min(eps)/1e6:.2f}–{max(eps)/1e6:.2f}){fail_s} "
          f"| {float(med[11]):.0f} | {cpm_s} | {rss_s} | {med[2]} |")
print()
for line in open(idle):
    _, conf, kib = line.split("\t")
    print(f"- Idle RSS of `logship run -c {conf}`: {int(kib)/1024:.1f} MiB (VmRSS 1 s after start).")
PY
)
echo "$table"
cp "$out/runs.tsv" "${CARGO_TARGET_DIR}/bench-logship-runs.tsv"
cp "$out/idle.tsv" "${CARGO_TARGET_DIR}/bench-logship-idle.tsv"
echo "bench: raw runs in ${CARGO_TARGET_DIR}/bench-logship-runs.tsv" >&2

if [[ -z "${NO_WRITE:-}" ]]; then
  # Replace the text between the logship markers in BENCHMARKS.md.
  python3 - BENCHMARKS.md "$table" <<'PY'
import sys
path, table = sys.argv[1], sys.argv[2]
s = open(path).read()
a, b = "<!-- bench-logship:start -->", "<!-- bench-logship:end -->"
i, j = s.index(a) + len(a), s.index(b)
open(path, "w").write(s[:i] + "\n" + table + "\n" + s[j:])
PY
  echo "bench: BENCHMARKS.md updated" >&2
fi
rm -rf "$out"
