#!/usr/bin/env bash
# Instruction counts of the parser filter (tracker issue 16), repeatable on a loaded machine:
# `logship run` under callgrind with Forward → parser filter (fluentd.conf's: key_name log,
# reserve_data true, <parse> @type json) → null, fed by loadgen with EVENTS Docker-shaped events
# (PackedForward, 1,000 per frame, every 10th `log` line not JSON).
#
#   scripts/bench-parser-callgrind.sh                          # this checkout's release build
#   LOGSHIP_BIN=/path/to/older/logship scripts/bench-parser-callgrind.sh
#   EVENTS=20000 scripts/bench-parser-callgrind.sh
#   NO_BUILD=1 ...                                             # use the binaries as they are
#
# Prints one tab-separated line: binary, events, instructions of the whole process per event,
# inclusive instructions of the parser filter (`ParserFilter as Filter>::filter*`) per event.
# Loopback only; the server is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${EVENTS:-20000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
[[ -n "${NO_BUILD:-}" ]] || cargo build --release --quiet -p logship --bin logship --example loadgen
bin="${LOGSHIP_BIN:-$CARGO_TARGET_DIR/release/logship}"
gen="$CARGO_TARGET_DIR/release/examples/loadgen"
work="$(mktemp -d)"
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  if [[ -n "${KEEP:-}" ]]; then cp "$work/cg.out" "$KEEP"; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$work/parser_null.conf" <<EOF
<system>
  log_level error
</system>
<source>
  @type forward
  bind 127.0.0.1
  port $port
</source>
<filter docker.**>
  @type parser
  key_name log
  reserve_data true
  <parse>
    @type json
  </parse>
</filter>
<match **>
  @type null
</match>
EOF
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$bin" run -c "$work/parser_null.conf" \
  >/dev/null 2>"$work/valgrind.log" &
pid=$!
for _ in $(seq 600); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
"$gen" --port "$port" --mode packed --distinct --invalid-every 10 --tag docker.web \
  --events "$EVENTS" --timeout-secs 600 >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid" || true
pid=""
total="$(callgrind_annotate "$work/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n++ {gsub(",", "", $1); print $1}')"
filter="$(callgrind_annotate --inclusive=yes "$work/cg.out" 2>/dev/null |
  awk '/ParserFilter as logship::filter::Filter>::filter/ && !n++ {gsub(",", "", $1); print $1}')"
printf '%s\t%s\t%.0f\t%.0f\n' "$(basename "$bin")" "$EVENTS" "$(echo "$total / $EVENTS" | bc -l)" \
  "$(echo "${filter:-0} / $EVENTS" | bc -l)"
