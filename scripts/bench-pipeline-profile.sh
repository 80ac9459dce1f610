#!/usr/bin/env bash
# Where the production pipeline's CPU and memory go (tracker issue 16): one bounded run of
# `fluentd/fluentd.conf` (Forward → parser filter → file buffer → `_bulk`) into the test
# services' node, the whole `logship run` process under valgrind. Instruction counts and heap
# bytes are repeatable on a loaded machine, unlike wall-clock figures.
#
#   TOOL=callgrind scripts/bench-pipeline-profile.sh     # instructions per doc, by function
#   TOOL=massif scripts/bench-pipeline-profile.sh        # heap at its peak, by allocation site
#   LOGSHIP_BIN=target/logship-old TOOL=... scripts/bench-pipeline-profile.sh   # another build
#   EVENTS=50000 CONFIG=minimal ...                      # (defaults: 100000, fluentd.conf)
#
# Needs TEST_ELASTICSEARCH_URL (`eval "$(scripts/test-services.sh start)"`); loopback only.
# The run: loadgen --mode packed --distinct --invalid-every 10 --events EVENTS (as
# scripts/bench-pipeline.sh), then `_count` of the run's indices is polled until it is exactly
# EVENTS (TIMEOUT_SECS, default 900), then logship gets SIGTERM (stopped by PID).
# Prints a summary; writes under $CARGO_TARGET_DIR/bench/profile/NAME-TOOL.* (NAME: the
# binary's file name): the raw valgrind output and, for callgrind, the inclusive and self
# tables of callgrind_annotate; for massif, ms_print's report.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
TOOL="${TOOL:-callgrind}"
EVENTS="${EVENTS:-100000}"
CONFIG="${CONFIG:-fluentd.conf}"
TIMEOUT_SECS="${TIMEOUT_SECS:-900}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
: "${TEST_ELASTICSEARCH_URL:?TEST_ELASTICSEARCH_URL is not set (eval \"\$(scripts/test-services.sh start)\")}"
es="${TEST_ELASTICSEARCH_URL%/}"
# shellcheck source=scripts/bench-pipeline-lib.sh
. scripts/bench-pipeline-lib.sh
[[ -n "${NO_BUILD:-}" ]] || cargo build --release --quiet -p logship --bin logship --example loadgen
bin="${LOGSHIP_BIN:-$CARGO_TARGET_DIR/release/logship}"
gen="$CARGO_TARGET_DIR/release/examples/loadgen"
out="$CARGO_TARGET_DIR/bench/profile/$(basename "$bin")-$CONFIG-$TOOL"
mkdir -p "$(dirname "$out")"
case "$TOOL" in
  callgrind) vg=(--tool=callgrind "--callgrind-out-file=$out.out") ;;
  # Heap only (thread stacks are reserved, not resident, and the same in both builds);
  # snapshots often enough to catch the peak of a flush.
  massif) vg=(--tool=massif "--massif-out-file=$out.out" --detailed-freq=1 --max-snapshots=200 --threshold=0.5) ;;
  *)
    echo "bench-pipeline-profile: TOOL is callgrind or massif" >&2
    exit 2
    ;;
esac

work="$(mktemp -d)"
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

port="$(free_port)"
prefix="fluentd-bench-prof-$(printf '%08x' $RANDOM$RANDOM)"
pipeline_config "$CONFIG" "$port" "$prefix" "$work/logship.conf"
# shellcheck disable=SC2046 # the environment, word by word
env $(pipeline_env "$port" "$prefix" "$work/buffer") \
  valgrind "${vg[@]}" "$bin" run -c "$work/logship.conf" >/dev/null 2>"$work/stderr.log" &
pid=$!
# Under valgrind the start-up is ~50× slower: wait up to 30 s, then again.
wait_listening "$port" "$pid" || wait_listening "$port" "$pid" || {
  echo "bench-pipeline-profile: logship did not start: $(tail -5 "$work/stderr.log")" >&2
  exit 1
}
"$gen" --port "$port" --mode packed --distinct --invalid-every 10 --tag docker.web \
  --events "$EVENTS" --timeout-secs "$TIMEOUT_SECS" >/dev/null 2>"$work/loadgen.log" || {
  echo "bench-pipeline-profile: loadgen failed: $(cat "$work/loadgen.log")" >&2
  exit 1
}
wait_exact_count "$prefix-*" "$EVENTS" "$TIMEOUT_SECS"
kill -TERM "$pid"
wait "$pid" || true
pid=""
curl -sf -XDELETE "$es/$prefix-*" >/dev/null || true
cp "$work/stderr.log" "$out.log"

per_doc() { awk -v n="$EVENTS" '{gsub(",", "", $1); printf "%12.0f  %s\n", $1 / n, substr($0, index($0, $2))}'; }
if [[ "$TOOL" == callgrind ]]; then
  callgrind_annotate --auto=no --inclusive=yes "$out.out" >"$out.inclusive.txt"
  callgrind_annotate --auto=no "$out.out" >"$out.self.txt"
  total="$(awk '/PROGRAM TOTALS/ && !n++ {gsub(",", "", $1); print $1}' "$out.self.txt")"
  echo "$(basename "$bin") $CONFIG: $EVENTS docs, $((total / EVENTS)) instructions per doc (whole process)"
  echo "-- inclusive, per doc --"
  grep -E '^ *[0-9,]+ \(' "$out.inclusive.txt" | awk -v n="${TOP:-40}" 'NR <= n' | per_doc
  echo "-- self, per doc --"
  grep -E '^ *[0-9,]+ \(' "$out.self.txt" | awk -v n="${TOP:-40}" 'NR <= n' | per_doc
else
  ms_print "$out.out" >"$out.txt"
  peak="$(python3 - "$out.out" <<'PY'
import sys
snaps, cur = [], {}
for line in open(sys.argv[1]):
    k, _, v = line.strip().partition("=")
    if k == "snapshot":
        cur = {}
        snaps.append(cur)
    elif k in ("mem_heap_B", "mem_heap_extra_B"):
        cur[k] = int(v)
best = max(snaps, key=lambda s: s.get("mem_heap_B", 0) + s.get("mem_heap_extra_B", 0))
print(f"{best['mem_heap_B'] / 2**20:.1f} MiB requested + {best['mem_heap_extra_B'] / 2**20:.1f} MiB allocator overhead")
PY
)"
  echo "$(basename "$bin") $CONFIG: $EVENTS docs, peak heap $peak; report: $out.txt"
fi
