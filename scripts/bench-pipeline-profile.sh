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
# Prints a summary, then as its last line: binary, config, events, tool, figure (callgrind:
# instructions per doc of the whole process; massif: peak heap MiB, requested + allocator
# overhead), tab-separated. Writes under $CARGO_TARGET_DIR/bench/profile/BIN-CONFIG-TOOL.*
# (BIN: the binary's file name): the raw valgrind output and logship's log; for callgrind, the
# inclusive and self tables of callgrind_annotate; for massif, ms_print's report and the heap
# at its peak by the logship function that allocated it (.sites.txt).
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

per_doc() { # callgrind_annotate's lines as "instructions per doc  function"
  sed -E 's/ \[[^]]*\]$//; s/^ *([0-9,]+) \( *[0-9.]+%\) +([^ :]*:)?/\1 /' |
    awk -v n="$EVENTS" '{gsub(",", "", $1); printf "%10.0f  %s\n", $1 / n, substr($0, index($0, " ") + 1)}'
}
if [[ "$TOOL" == callgrind ]]; then
  callgrind_annotate --auto=no --inclusive=yes "$out.out" >"$out.inclusive.txt"
  callgrind_annotate --auto=no "$out.out" >"$out.self.txt"
  total="$(awk '/PROGRAM TOTALS/ && !n++ {gsub(",", "", $1); print $1}' "$out.self.txt")"
  echo "$(basename "$bin") $CONFIG: $EVENTS docs, $((total / EVENTS)) instructions per doc (whole process)"
  echo "-- inclusive, per doc --"
  grep -E '^ *[0-9,]+ \(' "$out.inclusive.txt" | awk -v n="${TOP:-40}" 'NR <= n' | per_doc
  echo "-- self, per doc --"
  grep -E '^ *[0-9,]+ \(' "$out.self.txt" | awk -v n="${TOP:-40}" 'NR <= n' | per_doc
  printf '%s\t%s\t%s\tcallgrind\t%s\n' "$(basename "$bin")" "$CONFIG" "$EVENTS" "$((total / EVENTS))"
else
  ms_print "$out.out" >"$out.txt"
  python3 - "$out.out" >"$out.sites.txt" <<'PY'
# The peak snapshot's heap, by allocation site: each leaf of massif's tree (a call stack from
# malloc upwards) is counted under the first logship function on its stack.
import collections, re, sys
snaps, cur = [], None
lines = iter(open(sys.argv[1]).read().split("\n"))
for line in lines:
    k, _, v = line.partition("=")
    if k == "snapshot":
        cur = {"n": int(v), "heap": 0, "extra": 0, "tree": []}
        snaps.append(cur)
    elif k == "mem_heap_B":
        cur["heap"] = int(v)
    elif k == "mem_heap_extra_B":
        cur["extra"] = int(v)
    elif k == "heap_tree" and v != "empty":
        # The tree ends at the next snapshot's "#-----------" separator (or a blank line).
        for t in lines:
            if not t.strip() or t.startswith("#"):
                break
            cur["tree"].append(t)
peak = max((s for s in snaps if s["tree"]), key=lambda s: s["heap"] + s["extra"])
node = re.compile(r"^( *)n(\d+): (\d+) (.*)$")
stack, sites = [], collections.Counter()
for t in peak["tree"]:
    m = node.match(t)
    if not m:
        continue
    depth, children, size, desc = len(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
    del stack[depth:]
    stack.append(re.sub(r" \(.*\)$", "", re.sub(r"^0x[0-9A-F]+: ", "", desc)))
    if children == 0:
        site = next((f for f in stack if "logship::" in f), None)
        sites[(site or "(outside logship's code) " + stack[min(len(stack) - 1, 2)])[:160]] += size
print(f"{peak['heap'] / 2**20:.1f}\t{peak['extra'] / 2**20:.1f}")
for site, size in sites.most_common(25):
    print(f"{size / 2**20:8.2f} MiB  {site}")
PY
  read -r heap extra <"$out.sites.txt"
  echo "$(basename "$bin") $CONFIG: $EVENTS docs, peak heap $heap MiB requested + $extra MiB allocator overhead"
  echo "-- heap at the peak, by the logship function that allocated it --"
  tail -n +2 "$out.sites.txt"
  printf '%s\t%s\t%s\tmassif\t%s\n' "$(basename "$bin")" "$CONFIG" "$EVENTS" "$(echo "$heap + $extra" | bc)"
fi
