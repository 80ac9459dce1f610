#!/usr/bin/env bash
# The production pipeline against a real node (tracker issue 16): `fluentd/fluentd.conf`
# (Forward → parser filter on `log` → elasticsearch with a file buffer) beside the minimal path
# (`logship/benches/configs/es_minimal.conf`: Forward → elasticsearch, memory buffer), into
# the OpenSearch node of `scripts/test-services.sh`.
#
#   scripts/bench-pipeline.sh                  # RUNS=3 runs per config, prints the table
#   PIPELINE_EVENTS=100000 scripts/bench-pipeline.sh
#   LOGSHIP_BIN=/path/to/other/logship scripts/bench-pipeline.sh   # e.g. an older build
#   CONFIGS="fluentd.conf" scripts/bench-pipeline.sh               # one of the two only
#
# Needs TEST_ELASTICSEARCH_URL (scripts/bench.sh pipeline sets it up) and the node's PID in
# $SERVICES_DIR/pids (written by scripts/test-services.sh), loopback only.
#
# Each run: a fresh `logship run` (its own port, buffer directory and index prefix), then
# `loadgen --mode packed --distinct --invalid-every 10 --events N` (PackedForward, 1,000 events
# per frame, one connection, ack on the last frame; every event a distinct document, every
# tenth `log` line not JSON, as in the issue's load), then `_count` of the run's indices is
# polled until it is exactly N (more is an error, fewer after TIMEOUT_SECS is an error) and
# stays N. Figures, from the first byte sent to the exact count:
#   - shipper CPU-s per M docs: utime+stime of logship (/proc/PID/stat);
#   - shipper peak RSS: VmHWM of logship (a fresh process per run);
#   - node CPU-s per M docs: utime+stime of the OpenSearch JVM over the same interval;
#   - ratio: shipper CPU / node CPU;
#   - logship's stderr lines over the whole run (the log-flood check).
# Raw lines: $CARGO_TARGET_DIR/bench/pipeline.tsv; the table: $CARGO_TARGET_DIR/bench/pipeline.md.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
EVENTS="${PIPELINE_EVENTS:-500000}"
TIMEOUT_SECS="${TIMEOUT_SECS:-600}"
CONFIGS="${CONFIGS:-fluentd.conf minimal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
SERVICES_DIR="${SERVICES_DIR:-$CARGO_TARGET_DIR/services}"
RES="$CARGO_TARGET_DIR/bench"
mkdir -p "$RES"
: "${TEST_ELASTICSEARCH_URL:?TEST_ELASTICSEARCH_URL is not set (eval \"\$(scripts/test-services.sh start)\")}"
es="${TEST_ELASTICSEARCH_URL%/}"
# shellcheck source=scripts/bench-pipeline-lib.sh
. scripts/bench-pipeline-lib.sh
node_pid="$(awk '$1 == "opensearch" {p = $2} END {print p}' "$SERVICES_DIR/pids" 2>/dev/null || true)"
[[ -n "$node_pid" && -r "/proc/$node_pid/stat" ]] || {
  echo "bench-pipeline: no running OpenSearch node in $SERVICES_DIR/pids" >&2
  exit 1
}

cargo build --release --quiet -p logship --bin logship --example loadgen
bin="${LOGSHIP_BIN:-$CARGO_TARGET_DIR/release/logship}"
gen="$CARGO_TARGET_DIR/release/examples/loadgen"
tck="$(getconf CLK_TCK)"
work="$(mktemp -d)"

ls_pid=""
on_error() { # a failed step: say where, with the end of logship's log
  echo "bench-pipeline: failed at line $1 (exit $2)" >&2
  tail -n 5 "$work"/*/stderr.log 2>/dev/null | cut -c1-400 >&2 || true
}
trap 'on_error $LINENO $?' ERR
cleanup() {
  if [[ -n "$ls_pid" ]]; then
    kill -TERM "$ls_pid" 2>/dev/null || true
    wait "$ls_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

cpu_s() { # PID: utime+stime in seconds (fields 14 and 15 of /proc/PID/stat)
  awk -v t="$tck" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t}' "/proc/$1/stat"
}

run_one() { # CONFIG RUN
  local cfg="$1" run="$2" port prefix dir
  port="$(free_port)"
  prefix="fluentd-bench-pipe-$(printf '%08x' $RANDOM$RANDOM)"
  dir="$work/$run"
  mkdir -p "$dir"
  pipeline_config "$cfg" "$port" "$prefix" "$dir/logship.conf"
  # shellcheck disable=SC2046 # the environment, word by word
  env $(pipeline_env "$port" "$prefix" "$dir/buffer") \
    "$bin" run -c "$dir/logship.conf" >/dev/null 2>"$dir/stderr.log" &
  ls_pid=$!
  wait_listening "$port" "$ls_pid" || {
    echo "bench-pipeline: logship did not start: $(tail -3 "$dir/stderr.log")" >&2
    exit 1
  }
  local load ls0 node0 t0 line n
  load="$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
  ls0="$(cpu_s "$ls_pid")"
  node0="$(cpu_s "$node_pid")"
  t0="$(date +%s.%N)"
  line="$("$gen" --port "$port" --mode packed --distinct --invalid-every 10 --tag docker.web \
    --events "$EVENTS" --timeout-secs "$TIMEOUT_SECS" 2>>"$dir/loadgen.log")" || {
    echo "bench-pipeline: loadgen failed: $(cat "$dir/loadgen.log")" >&2
    exit 1
  }
  local acked_secs
  acked_secs="$(echo "$line" | cut -f7)"
  wait_exact_count "$prefix-*" "$EVENTS" "$TIMEOUT_SECS" || {
    tail -5 "$dir/stderr.log" >&2
    exit 1
  }
  local secs ls1 node1 hwm
  secs="$(echo "$(date +%s.%N) - $t0" | bc)"
  ls1="$(cpu_s "$ls_pid")"
  node1="$(cpu_s "$node_pid")"
  hwm="$(awk '/^VmHWM:/ {print $2}' "/proc/$ls_pid/status")"
  # The count must stay exact (no late duplicate).
  sleep 1.5
  n="$(es_count "$prefix-*")"
  if [[ "$n" != "$EVENTS" ]]; then
    echo "bench-pipeline: count changed to $n after settling" >&2
    exit 1
  fi
  kill -TERM "$ls_pid"
  wait "$ls_pid" || true
  ls_pid=""
  local lines
  lines="$(wc -l <"$dir/stderr.log")"
  curl -sf -XDELETE "$es/$prefix-*" >/dev/null || true
  printf '%s\t%s\t%s\t%s\t%.2f\t%s\t%.2f\t%.2f\t%s\t%s\n' "$cfg" "$run" "$load" "$EVENTS" "$secs" \
    "$acked_secs" "$(echo "$ls1 - $ls0" | bc)" "$(echo "$node1 - $node0" | bc)" "$hwm" "$lines" |
    tee -a "$RES/pipeline.tsv"
}

: >"$RES/pipeline.tsv"
# An interrupted earlier run may have left its indices behind.
curl -sf -XDELETE "$es/fluentd-bench-pipe-*" >/dev/null || true
for i in $(seq "$RUNS"); do
  for cfg in $CONFIGS; do
    run_one "$cfg" "$i" >&2
  done
done

python3 - "$RES/pipeline.tsv" >"$RES/pipeline.md" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    cfg, run, load, n, secs, acked, ls_cpu, node_cpu, hwm, lines = line.rstrip("\n").split("\t")
    rows.setdefault(cfg, []).append(dict(load=load, n=int(n), secs=float(secs), ls=float(ls_cpu),
                                         node=float(node_cpu), hwm=int(hwm), lines=int(lines)))
name = {"fluentd.conf": "`fluentd/fluentd.conf`: parser filter, file buffer",
        "minimal": "minimal: forward → elasticsearch, memory buffer"}
mm = lambda vs, f: f"{f(statistics.median(vs))} ({f(min(vs))}–{f(max(vs))})"
print("| logship config | docs (exact) | docs/s | shipper CPU-s per M docs | shipper peak RSS MiB | node CPU-s per M docs | shipper / node CPU | logship stderr lines | load avg at start |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for cfg, rs in rows.items():
    per_m = lambda k: [r[k] / (r["n"] / 1e6) for r in rs]
    print(f"| {name.get(cfg, cfg)} | {rs[0]['n']:,} | {mm([r['n'] / r['secs'] for r in rs], lambda x: f'{x:,.0f}')} "
          f"| {mm(per_m('ls'), lambda x: f'{x:.2f}')} | {mm([r['hwm'] / 1024 for r in rs], lambda x: f'{x:.0f}')} "
          f"| {mm(per_m('node'), lambda x: f'{x:.1f}')} | {mm([r['ls'] / r['node'] for r in rs], lambda x: f'{x:.2f}')} "
          f"| {max(r['lines'] for r in rs):,} | {', '.join(r['load'] for r in rs)} |")
PY
cat "$RES/pipeline.md"
