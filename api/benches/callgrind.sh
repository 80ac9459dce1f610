#!/usr/bin/env bash
# Instructions per request of the api (callgrind): repeatable on a loaded machine, unlike
# wall-clock figures, so before/after comparisons of api changes use this.
#
# Usage: api/benches/callgrind.sh [API_BIN]      (default $CARGO_TARGET_DIR/release/api)
#
# Fresh database `api_cg_<pid>` on the MariaDB of TEST_MYSQL_URL (or BENCH_MYSQL_URL),
# `api migrate`, `api seed --count 10000`, then twice `api serve` under
# `valgrind --tool=callgrind` (logs at LOG_LEVEL, default info, to /dev/null): once serving
# WARMUP requests, once serving WARMUP + REQUESTS (default 5,000) `GET /users/{id}`
# (random ids in 1..10000, 4 keep-alive connections), each then SIGTERMed. Instructions
# per request = the difference of the two runs' totals / REQUESTS (start-up, warm-up and
# shutdown cancel out). The top functions by inclusive cost of the longer run
# (callgrind_annotate) go to $OUT (default $CARGO_TARGET_DIR/bench/callgrind-<git sha>.txt),
# the raw profile to $OUT.callgrind (for callgrind_annotate / kcachegrind).
# Bounded: a fixed number of requests, and every wait has a deadline.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
API_BIN="$(realpath "${1:-$TARGET/release/api}")"
REQUESTS="${REQUESTS:-5000}"
WARMUP="${WARMUP:-500}"
LOG_LEVEL="${LOG_LEVEL:-info}"
ADMIN="${BENCH_MYSQL_URL:-${TEST_MYSQL_URL:-}}"
[ -n "$ADMIN" ] || { echo "set TEST_MYSQL_URL or BENCH_MYSQL_URL (scripts/test-services.sh start)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)" >&2; exit 1; }
mkdir -p "$TARGET/bench"
OUT="${OUT:-$TARGET/bench/callgrind-$(cd "$REPO" && git rev-parse --short HEAD).txt}"

WORK="$(mktemp -d /tmp/api-callgrind.XXXXXX)"
PID=""
DB="api_cg_$$"
mysql_exec() {
    python3 - "$ADMIN" "$1" <<'PY'
import sys, urllib.parse, subprocess
u = urllib.parse.urlparse(sys.argv[1])
subprocess.run(["mariadb", "--no-defaults", "-h", u.hostname, "-P", str(u.port or 3306),
                "-u", urllib.parse.unquote(u.username or ""), "-p" + urllib.parse.unquote(u.password or ""),
                "-e", sys.argv[2]], check=True)
PY
}
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    mysql_exec "DROP DATABASE IF EXISTS \`$DB\`" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mysql_exec "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\`"
URL="${ADMIN%/*}/$DB"
DATABASE_URL="$URL" LOG_LEVEL=warn "$API_BIN" migrate >/dev/null
DATABASE_URL="$URL" LOG_LEVEL=warn "$API_BIN" seed --count 10000 >/dev/null 2>&1
# load N: N GET /users/{id} over 4 keep-alive connections; fails on any non-200.
load() {
    [ "$2" -gt 0 ] || return 0
    python3 - "$1" "$2" <<'PY'
import http.client, random, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
errors = []
def worker(count, seed):
    rnd = random.Random(seed)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(count):
        c.request("GET", f"/users/{rnd.randint(1, 10000)}")
        r = c.getresponse(); r.read()
        if r.status != 200:
            errors.append(r.status)
threads = [threading.Thread(target=worker, args=(n // 4 + (i < n % 4), i)) for i in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
if errors:
    sys.exit(f"{len(errors)} non-200 answers, e.g. {errors[0]}")
PY
}

# profile NAME N: serve N requests under callgrind; prints the total instructions.
profile() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    (cd "$WORK" && DATABASE_URL="$URL" PORT=$port HOST=127.0.0.1 LOG_LEVEL="$LOG_LEVEL" \
        DATABASE_MAX_CONNECTIONS=8 exec valgrind --tool=callgrind --callgrind-out-file="$WORK/$1.out" \
        "$API_BIN" serve >/dev/null 2>"$WORK/$1.log") &
    PID=$!
    for _ in $(seq 1 600); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break
        sleep 0.1
    done
    curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" || { cat "$WORK/$1.log" >&2; exit 1; }
    load "$port" "$2" >&2
    kill -TERM "$PID"
    wait "$PID" || true
    PID=""
    awk '/^summary:/ {print $2}' "$WORK/$1.out"
}

BASE=$(profile base "$WARMUP")
FULL=$(profile full $((WARMUP + REQUESTS)))
PER=$(((FULL - BASE) / REQUESTS))
{
    echo "api: $("$API_BIN" --version)   $REQUESTS x GET /users/{id} (MariaDB, LOG_LEVEL=$LOG_LEVEL)"
    echo "instructions: $BASE ($WARMUP requests), $FULL ($((WARMUP + REQUESTS)) requests): $PER per request"
    echo
    callgrind_annotate --inclusive=yes "$WORK/full.out" >"$WORK/annotate.txt" 2>/dev/null || true
    head -90 "$WORK/annotate.txt"
} >"$OUT"
cp "$WORK/full.out" "$OUT.callgrind"
echo "instructions per request: $PER   (profile: $OUT, raw: $OUT.callgrind)"
