#!/usr/bin/env bash
# HTTP benchmark of the api service with wrk (release build).
#
# Usage: api/benches/wrk.sh [sqlite] [mysql]        (default: both)
#
# For each backend: fresh database, `api migrate`, `api seed --count 10000`,
# `api serve`, then
#   wrk -t2 -c32 -d15s --latency -s <random id 1..10000>  /users/{id}
#   wrk -t2 -c32 -d15s --latency                          /users?limit=100
# with RSS (ps) idle and after load. On MariaDB each run also measures the
# database's own ceiling on the same server, database and cores: sysbench
# `oltp_point_select` (10,000 rows, 32 threads, DURATION) right before and
# right after the api's `/users/{id}` run; the ratio api req/s / mean sysbench
# queries/s is reported by scripts/bench.sh. Also time from exec to the first 200 of
# /readyz on SQLite (5 runs). Logs go to /dev/null at the default level (info).
#
# Environment: BENCH_MYSQL_URL or TEST_MYSQL_URL (admin URL of a MariaDB, a
# database `api_bench_<pid>` is created on it), API_BIN (default
# $CARGO_TARGET_DIR/release/api), DURATION (15s), CONNECTIONS (32),
# BENCH_LOG_LEVEL (info), RUNS (wrk runs per endpoint, default 1),
# API_TSV (append one tab-separated line per run to this file, for
# scripts/bench.sh: `startup  run  ms  idle_rss_kib` and
# `backend  endpoint  run  req_s  p50_ms  p99_ms  api_cpu_us_per_req  rss_kib`
# and `sysbench  oltp_point_select  run  queries_s  p99_ms`;
# api CPU = utime+stime of /proc/PID/stat across the wrk run / requests).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
API_BIN="$(realpath -m "${API_BIN:-$TARGET/release/api}")"
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-32}"
LOG_LEVEL="${BENCH_LOG_LEVEL:-info}"
RUNS="${RUNS:-1}"
API_TSV="${API_TSV:-/dev/null}"
CLK_TCK=$(getconf CLK_TCK)
BACKENDS=("$@")
[ ${#BACKENDS[@]} -eq 0 ] && BACKENDS=(sqlite mysql)

# wrk and sysbench come from Debian; install them if missing (root, or sudo).
missing=()
for tool in wrk sysbench; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "installing ${missing[*]} with apt-get" >&2
    "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
if [ ! -x "$API_BIN" ]; then
    (cd "$REPO" && cargo build -p api --release)
fi

WORK="$(mktemp -d /tmp/api-bench.XXXXXX)"
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { ps -o rss= -p "$1" | tr -d ' '; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run_wrk BACKEND ENDPOINT WRK-ARGS...: one wrk run, output shown and summarised into API_TSV.
run_wrk() {
    local backend=$1 endpoint=$2 run=$3
    shift 3
    local c0 c1 out
    c0=$(cpu_ticks "$SERVER_PID")
    out=$(wrk "$@")
    c1=$(cpu_ticks "$SERVER_PID")
    echo "$out"
    python3 - "$backend" "$endpoint" "$run" "$((c1 - c0))" "$CLK_TCK" "$(rss_kib "$SERVER_PID")" "$out" >>"$API_TSV" <<'PY'
import re, sys
backend, endpoint, run, ticks, hz, rss, out = sys.argv[1:]
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    n, u = float(m.group(1)), m.group(2)
    return n * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
reqs = int(re.search(r"(\d+) requests in", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
cpu_us = int(ticks) / int(hz) * 1e6 / max(reqs, 1)
print(f"{backend}\t{endpoint}\t{run}\t{rps:.0f}\t{p50:.2f}\t{p99:.2f}\t{cpu_us:.1f}\t{rss}")
PY
}

# sysbench_conn ADMIN_URL: sysbench's --mysql-* options for that URL, one per line.
sysbench_conn() {
    python3 - "$1" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
print(f"--mysql-host={u.hostname}"); print(f"--mysql-port={u.port or 3306}")
print(f"--mysql-user={urllib.parse.unquote(u.username or '')}")
print(f"--mysql-password={urllib.parse.unquote(u.password or '')}")
PY
}

# sysbench_prepare ADMIN_URL DB: the sbtest1 table (10,000 rows) beside the api's tables.
sysbench_prepare() {
    local -a conn
    mapfile -t conn < <(sysbench_conn "$1")
    sysbench oltp_point_select --db-driver=mysql "${conn[@]}" --mysql-db="$2" --tables=1 \
        --table-size=10000 prepare >/dev/null
}

# run_sysbench ADMIN_URL DB RUN: one sysbench oltp_point_select run (CONNECTIONS threads) on
# the bench database, output shown and summarised into API_TSV.
run_sysbench() {
    local run=$3 out
    local -a conn
    mapfile -t conn < <(sysbench_conn "$1")
    local -a args=(oltp_point_select --db-driver=mysql --mysql-db="$2" --tables=1
        --table-size=10000 --threads="$CONNECTIONS" --time="${DURATION%s}" --percentile=99
        --histogram=off)
    echo "\$ sysbench ${args[*]} --mysql-host=... run"
    out=$(sysbench "${args[@]}" "${conn[@]}" run)
    echo "$out"
    python3 - "$run" "$out" >>"$API_TSV" <<'PY'
import re, sys
run, out = sys.argv[1:]
qps = float(re.search(r"queries:\s+\d+\s+\(([\d.]+) per sec", out).group(1))
p99 = float(re.search(r"99th percentile:\s+([\d.]+)", out).group(1))
print(f"sysbench\toltp_point_select\t{run}\t{qps:.0f}\t{p99:.2f}")
PY
}

cat >"$WORK/ids.lua" <<'LUA'
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/users/" .. math.random(1, 10000))
end
LUA

wait_ready() {
    local port=$1
    for _ in $(seq 1 2000); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && return 0
        sleep 0.005
    done
    echo "server on $port never became ready" >&2
    return 1
}

startup_time() {
    echo "== start-up: exec -> first 200 /readyz (SQLite, fresh empty dir, AUTO_MIGRATE) =="
    for i in 1 2 3 4 5; do
        local dir="$WORK/startup$i" port
        mkdir -p "$dir"
        port=$(free_port)
        local t0 t1
        t0=$(date +%s%N)
        (cd "$dir" && PORT=$port HOST=127.0.0.1 exec "$API_BIN" serve >/dev/null 2>&1) &
        local pid=$!
        # Poll without sleeping (the figure is the time to the first 200), for at most 10 s.
        local deadline=$((t0 + 10000000000))
        until curl -sf -o /dev/null "http://127.0.0.1:$port/readyz"; do
            [ "$(date +%s%N)" -lt "$deadline" ] || { echo "api never became ready" >&2; exit 1; }
        done
        t1=$(date +%s%N)
        local rss
        rss=$(rss_kib $pid)
        echo "run $i: $(((t1 - t0) / 1000000)) ms   idle RSS $rss KiB"
        printf 'startup\t%s\t%s\t%s\n' "$i" "$(((t1 - t0) / 1000000))" "$rss" >>"$API_TSV"
        kill -TERM $pid
        wait $pid || true
    done
}

bench_backend() {
    local backend=$1 url
    case $backend in
    sqlite) url="sqlite:$WORK/bench.db" ;;
    mysql)
        local admin="${BENCH_MYSQL_URL:-${TEST_MYSQL_URL:-}}"
        [ -n "$admin" ] || { echo "skip mysql: set BENCH_MYSQL_URL or TEST_MYSQL_URL" >&2; return 0; }
        local db="api_bench_$$"
        python3 - "$admin" "$db" <<'PY'
import sys, urllib.parse, subprocess
u = urllib.parse.urlparse(sys.argv[1])
subprocess.run(["mariadb", "--no-defaults", "-h", u.hostname, "-P", str(u.port or 3306),
                "-u", urllib.parse.unquote(u.username or ""), "-p" + urllib.parse.unquote(u.password or ""),
                "-e", f"DROP DATABASE IF EXISTS `{sys.argv[2]}`; CREATE DATABASE `{sys.argv[2]}`"], check=True)
PY
        url="${admin%/*}/$db"
        ;;
    *) echo "unknown backend $backend" >&2; return 1 ;;
    esac
    echo "== backend: $backend =="
    [ "$backend" = mysql ] && sysbench_prepare "$admin" "$db"
    DATABASE_URL="$url" LOG_LEVEL=warn "$API_BIN" migrate >/dev/null
    DATABASE_URL="$url" LOG_LEVEL=warn "$API_BIN" seed --count 10000 2>&1 >/dev/null | tail -1
    local port
    port=$(free_port)
    DATABASE_URL="$url" PORT=$port HOST=127.0.0.1 LOG_LEVEL="$LOG_LEVEL" \
        DATABASE_MAX_CONNECTIONS="$CONNECTIONS" "$API_BIN" serve >/dev/null 2>&1 &
    SERVER_PID=$!
    wait_ready "$port"
    curl -sf -o /dev/null "http://127.0.0.1:$port/users/1"
    echo "idle RSS: $(rss_kib $SERVER_PID) KiB"
    local run
    for run in $(seq "$RUNS"); do
        if [ "$backend" = mysql ]; then
            echo "-- sysbench oltp_point_select before the api, run $run"
            run_sysbench "$admin" "$db" "$run.before"
        fi
        echo "-- GET /users/{id} (random 1..10000), run $run"
        echo "\$ wrk -t2 -c$CONNECTIONS -d$DURATION --latency -s ids.lua http://127.0.0.1:$port"
        run_wrk "$backend" "/users/{id}" "$run" -t2 -c"$CONNECTIONS" -d"$DURATION" --latency \
            -s "$WORK/ids.lua" "http://127.0.0.1:$port"
        echo "RSS after load: $(rss_kib $SERVER_PID) KiB"
        if [ "$backend" = mysql ]; then
            echo "-- sysbench oltp_point_select after the api, run $run"
            run_sysbench "$admin" "$db" "$run.after"
        fi
        echo "-- GET /users?limit=100, run $run"
        echo "\$ wrk -t2 -c$CONNECTIONS -d$DURATION --latency http://127.0.0.1:$port/users?limit=100"
        run_wrk "$backend" "/users?limit=100" "$run" -t2 -c"$CONNECTIONS" -d"$DURATION" --latency \
            "http://127.0.0.1:$port/users?limit=100"
        echo "RSS after load: $(rss_kib $SERVER_PID) KiB"
    done
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=""
}

echo "api: $("$API_BIN" --version)   cores: $(nproc)   $(date -u +%FT%TZ)"
startup_time
for b in "${BACKENDS[@]}"; do bench_backend "$b"; done
