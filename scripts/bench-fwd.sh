#!/usr/bin/env bash
# The Forward input at scale and per acked message (tracker issue 17), loopback only, every run
# bounded in events and time:
#
#   scripts/bench-fwd.sh                 # prints the section, `scripts/bench.sh fwd` writes it
#
# 1. Fleet: `cargo test --release --test forward_fleet` — 10,000 concurrent connections to a
#    release `logship run`, each sending one Docker-shaped Message-mode event per second and
#    waiting for its ack, for FLEET_SECS (30) seconds; FLEET_RUNS (3) runs with a `null` output
#    (the input's cost; every ack counted by the output) and one with the `file` output (every
#    event written once, checked line by line). The test prints the steady-state figures.
# 2. One ack per message, one connection (`loadgen --mode message --ack every`, 50,000
#    events), RUNS (5) times, alternating between `logship run -c null.conf` and the
#    `ack_floor` example (a tokio server that only reads and acks: the floor of this pattern
#    on this machine).
# 3. If valgrind is installed: logship's instructions per acked message (callgrind, the
#    difference between runs of 12,000 and 2,000 messages, so start-up cancels out).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
RUNS="${RUNS:-5}"
FLEET_RUNS="${FLEET_RUNS:-3}"
FLEET_SECS="${FLEET_SECS:-30}"
out="$(mktemp -d)"
cargo build --release --locked --quiet -p logship --bin logship --example loadgen --example ack_floor
bin="$CARGO_TARGET_DIR/release/logship"
gen="$CARGO_TARGET_DIR/release/examples/loadgen"
floor="$CARGO_TARGET_DIR/release/examples/ack_floor"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT INT TERM

wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench-fwd: nothing listens on $1" >&2
  exit 1
}

# 1. fleet
fleet() { # output
  FLEET_OUTPUT="$1" FLEET_SECS="$FLEET_SECS" cargo test --release --locked --quiet -p logship \
    --test forward_fleet -- --nocapture 2>&1 | grep '^FLEET:' || echo "FLEET: output=$1 failed"
}
for i in $(seq "$FLEET_RUNS"); do
  line=$(fleet null)
  echo "$line" >>"$out/fleet.txt"
  echo "bench-fwd: fleet run $i: $line" >&2
done
line=$(fleet file)
echo "$line" >>"$out/fleet.txt"
echo "bench-fwd: fleet run with the file output: $line" >&2

# 2. one ack per message: logship vs the floor
"$bin" run -c logship/benches/configs/null.conf >/dev/null 2>&1 &
logship_pid=$!
pids+=("$logship_pid")
"$floor" 24392 &
floor_pid=$!
pids+=("$floor_pid")
wait_port 24311
wait_port 24392
sleep 1
for i in $(seq "$RUNS"); do
  for who in logship floor; do
    if [[ $who == logship ]]; then port=24311 pid=$logship_pid; else port=24392 pid=$floor_pid; fi
    line=$("$gen" --port "$port" --pid "$pid" --mode message --ack every --events 50000 --timeout-secs 60 2>/dev/null) || line="FAILED"
    echo "$who	$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')	$line" >>"$out/ack.tsv"
  done
done
kill -TERM "$logship_pid" "$floor_pid"
wait "$logship_pid" "$floor_pid" 2>/dev/null || true
pids=()

# 3. instructions per acked message
instr="valgrind not installed: not measured"
if command -v valgrind >/dev/null; then
  conf="$out/cg.conf"
  sed 's/port 24311/port 24395/' logship/benches/configs/null.conf >"$conf"
  total() { # messages -> callgrind instruction total of the server
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1" "$bin" run -c "$conf" >/dev/null 2>&1 &
    local vp=$!
    wait_port 24395
    "$gen" --port 24395 --mode message --ack every --events "$1" --timeout-secs 300 >/dev/null 2>&1
    kill -TERM "$vp"
    wait "$vp" || true
    awk '/^summary:/ {print $2}' "$out/cg.$1"
  }
  a=$(total 2000)
  b=$(total 12000)
  instr="$(((b - a) / 10000)) instructions per acked message (callgrind: $b − $a instructions for 12,000 − 2,000 messages)"
fi

python3 - "$out" "$RUNS" "$FLEET_RUNS" "$FLEET_SECS" "$instr" <<'PY'
import sys, statistics, os
out, runs, fleet_runs, fleet_secs, instr = sys.argv[1:6]
print("Fleet: `FLEET_OUTPUT=null|file FLEET_SECS=%s cargo test --release --locked -p logship --test forward_fleet -- --nocapture`: "
      "10,000 connections, each one Docker-shaped Message-mode event per second with an ack; with `null`, %s runs "
      "(median, min–max), every ack counted by the output; with `file`, one run, every event written once "
      "(checked line by line)." % (fleet_secs, fleet_runs))
print()
rows = {"null": [], "file": []}
for line in open(os.path.join(out, "fleet.txt")):
    if "failed" in line:
        continue
    r = dict(kv.split("=", 1) for kv in line.split()[1:])
    rows[r["output"]].append(r)
def col(rs, k, fmt="%.1f"):
    v = sorted(float(r[k]) for r in rs)
    if not v:
        return "–"
    if len(v) == 1:
        return fmt % v[0]
    return (fmt % statistics.median(v)) + " (" + (fmt % v[0]) + "–" + (fmt % v[-1]) + ")"
print("| output | events/s | server CPU-s per M events | server CPU ms per connection-second | RSS MiB (idle → with 10,000) | RSS per connection KiB | ack p50 / p99 / max ms | load avg |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for name in ("null", "file"):
    rs = rows[name]
    if not rs:
        print("| %s | FAILED | | | | | | |" % name)
        continue
    print("| `%s` | %s | %s | %s | %s → %s | %s | %s / %s / %s | %s |" % (
        name, col(rs, "events_per_s", "%.0f"), col(rs, "cpu_s_per_M", "%.2f"), col(rs, "cpu_ms_per_conn_s", "%.4f"),
        col(rs, "rss_idle_MiB"), col(rs, "rss_MiB"), col(rs, "rss_per_conn_KiB", "%.2f"),
        col(rs, "ack_p50_ms", "%.2f"), col(rs, "ack_p99_ms", "%.1f"), col(rs, "ack_max_ms", "%.0f"),
        rs[len(rs)//2]["loadavg"]))
print()
print("One ack per message, one connection: `loadgen --mode message --ack every --events 50000`, "
      "%s runs alternating (median, min–max)." % runs)
print()
print("| server | events/s | server CPU-s per M events | load avg (first run) |")
print("| --- | ---: | ---: | --- |")
by = {}
for line in open(os.path.join(out, "ack.tsv")):
    f = line.rstrip("\n").split("\t")
    by.setdefault(f[0], []).append(f)
names = {"logship": "`logship run -c null.conf`", "floor": "`ack_floor` example (read + ack only)"}
for who in ("logship", "floor"):
    rs = [r for r in by.get(who, []) if len(r) > 12]
    if not rs:
        print("| %s | FAILED | | |" % names[who]); continue
    eps = sorted(float(r[9]) for r in rs)
    cpm = sorted(float(r[12]) for r in rs)
    print("| %s | %s (%s–%s) | %.2f (%.2f–%.2f) | %s |" % (names[who], f"{statistics.median(eps):,.0f}",
          f"{eps[0]:,.0f}", f"{eps[-1]:,.0f}", statistics.median(cpm), cpm[0], cpm[-1], rs[0][1]))
print()
print("- logship's own work: " + instr + ".")
PY
