#!/usr/bin/env bash
# The whole benchmark matrix of tracker issue 9, one entry point.
#
#   scripts/bench.sh [logship|micro|api|es|buffer|pipeline|callgrind|fwd|targets|all]...  (default: all)
#
# Sections (each writes its table between its markers in BENCHMARKS.md; `targets` is rebuilt
# after every section from the latest results of all of them):
#   logship  scripts/bench-logship.sh: forward -> null / stdout JSON end to end, idle RSS
#            (markers bench-logship:start/end)
#   micro    criterion frame decoder + msgpack -> JSON transcode, RUNS times (bench-micro)
#   api      api/benches/wrk.sh sqlite mysql: 10,000 users, 32 connections, DURATION (15s),
#            RUNS times per endpoint; on MariaDB sysbench oltp_point_select (32 threads) before
#            and after each /users/{id} run and the ratio; start-up to first /readyz 200; RSS;
#            api CPU/request (bench-api)
#   es       `cargo bench -p logship --bench es_bench` RUNS times: logship -> real OpenSearch
#            vs the same documents pre-encoded as `_bulk` (bench-es)
#   buffer   `cargo bench -p logship --bench buffer`: pushes into a memory / file / gzip file
#            buffer, acked when held (bench-buffer)
#   pipeline scripts/bench-pipeline.sh (tracker issue 16): fluentd/fluentd.conf (parser filter,
#            file buffer) and the minimal forward -> elasticsearch path into the test node,
#            500 k events, exact count; shipper and node CPU per M docs, peak RSS
#            (bench-pipeline; RUNS, PIPELINE_EVENTS)
#   callgrind scripts/bench-parser-callgrind.sh: instructions per event of the parser filter
#            (bench-callgrind; LOGSHIP_BASELINE=<older logship binary> adds a "before" row)
#   profile  scripts/bench-pipeline-profile.sh: fluentd.conf into the node (PROFILE_EVENTS,
#            100 k) under callgrind (instructions per doc) and massif (peak heap), whole process
#            (bench-profile; PROFILE_BASELINES="<older logship binaries>" adds "before" rows)
#   fwd      scripts/bench-fwd.sh (tracker issue 17): 10,000 concurrent acked connections
#            (forward_fleet test in release), one ack per message vs the ack_floor example,
#            instructions per acked message (bench-fwd; FLEET_RUNS, FLEET_SECS)
#   targets  the issue-9 target table with met / not met (bench-targets)
#
# Environment: RUNS (5; medians with min–max), DURATION (wrk, 15s), ES_BENCH_EVENTS
# (100000 documents per es variant, so one run stays ~10–20 s), NO_WRITE=1 (print only).
# api MariaDB and es need the test services: if TEST_MYSQL_URL / TEST_ELASTICSEARCH_URL are not
# set, the env of a running `scripts/test-services.sh start` for this CARGO_TARGET_DIR is used,
# else the services are started here and stopped at the end.
# Raw results: $CARGO_TARGET_DIR/bench/*.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export RUNS="${RUNS:-5}"
RES="$CARGO_TARGET_DIR/bench"
mkdir -p "$RES"
SECTIONS=("$@")
[[ ${#SECTIONS[@]} -eq 0 || " ${SECTIONS[*]} " == *" all "* ]] && SECTIONS=(logship micro api es buffer pipeline callgrind profile fwd)

commit=$(git rev-parse --short HEAD)$(git diff --quiet -- api logship scripts || echo "+dirty")
machine="$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -r)"
header() { # command
  echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC, commit \`$commit\`, $machine, shared with other" \
    "builds (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end). Command: \`$1\`."
}

# write_section NAME FILE: replace the text between <!-- bench-NAME:start/end --> markers.
write_section() {
  cat "$2"
  [[ -n "${NO_WRITE:-}" ]] && return 0
  python3 - BENCHMARKS.md "$1" "$2" <<'PY'
import sys
path, name, table = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().strip()
s = open(path).read()
a, b = f"<!-- bench-{name}:start -->", f"<!-- bench-{name}:end -->"
if a not in s or b not in s:
    sys.exit(f"BENCHMARKS.md has no {a} ... {b} markers")
i, j = s.index(a) + len(a), s.index(b)
open(path, "w").write(s[:i] + "\n" + table + "\n" + s[j:])
PY
  echo "bench: BENCHMARKS.md section $1 updated" >&2
}

started_services=""
need_services() {
  [[ -n "${TEST_MYSQL_URL:-}" && -n "${TEST_ELASTICSEARCH_URL:-}" ]] && return 0
  if [[ -f "$CARGO_TARGET_DIR/services/env" ]] && scripts/test-services.sh env >/dev/null 2>&1; then
    set -a; . "$CARGO_TARGET_DIR/services/env"; set +a
  else
    set -a; eval "$(scripts/test-services.sh start)"; set +a
    started_services=1
  fi
}
cleanup() { [[ -n "$started_services" ]] && scripts/test-services.sh stop >&2 || true; }
trap cleanup EXIT

run_logship() {
  NO_WRITE="${NO_WRITE:-}" scripts/bench-logship.sh
  cp "$CARGO_TARGET_DIR/bench-logship-runs.tsv" "$RES/logship.tsv"
  cp "$CARGO_TARGET_DIR/bench-logship-idle.tsv" "$RES/logship-idle.tsv"
}

run_micro() {
  : >"$RES/micro.tsv"
  local filter="forward_decode|transcode"
  for i in $(seq "$RUNS"); do
    cargo bench --quiet -p logship --bench forward --bench pipeline -- \
      --warm-up-time 1 --measurement-time 2 --noplot "$filter" 2>/dev/null |
      python3 -c '
import re, sys
name = None
for line in sys.stdin:
    if line and not line[0].isspace() and not line.startswith(("Benchmarking", "Found", "Gnuplot")):
        name = line.strip() or name
    m = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
    if m and name:
        v, u = float(m.group(1)), m.group(2)
        scale = {"B/s": 1, "KiB/s": 1024, "MiB/s": 2**20, "GiB/s": 2**30,
                 "elem/s": 1, "Kelem/s": 1e3, "Melem/s": 1e6, "Gelem/s": 1e9}[u]
        kind = "bytes" if u.endswith("B/s") else "events"
        print(f"{name}\t{sys.argv[1]}\t{v * scale:.0f}\t{kind}")
' "$i" >>"$RES/micro.tsv"
    echo "bench: micro run $i done" >&2
  done
  python3 - "$RES/micro.tsv" "$RUNS" >"$RES/micro.md" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    name, _, v, kind = line.rstrip("\n").split("\t")
    rows.setdefault((name, kind), []).append(float(v))
print("| bench | unit | median (min–max) |")
print("| --- | --- | ---: |")
for (name, kind), vs in rows.items():
    f = (lambda x: f"{x / 1e9:.2f}") if kind == "bytes" else (lambda x: f"{x / 1e6:.2f}")
    unit = "GB/s of wire bytes" if kind == "bytes" else "M events/s"
    print(f"| {name} | {unit} | {f(statistics.median(vs))} ({f(min(vs))}–{f(max(vs))}) |")
PY
  {
    header "RUNS=$RUNS scripts/bench.sh micro"
    echo "Each run: \`cargo bench -p logship --bench forward --bench pipeline -- --warm-up-time 1 --measurement-time 2 \"forward_decode|transcode\"\`;"
    echo "the figure per run is criterion's estimate, then the median of the $RUNS runs (min–max)."
    echo
    cat "$RES/micro.md"
  } >"$RES/micro.section"
  write_section micro "$RES/micro.section"
}

run_api() {
  need_services
  cargo build --quiet --release -p api
  : >"$RES/api.tsv"
  API_TSV="$RES/api.tsv" api/benches/wrk.sh sqlite mysql >"$RES/api.log" 2>&1 || {
    tail -20 "$RES/api.log" >&2
    return 1
  }
  python3 - "$RES/api.tsv" >"$RES/api.md" <<'PY'
import sys, statistics
runs, startup, sysbench = {}, [], {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "startup":
        startup.append((int(f[2]), int(f[3])))
    elif f[0] == "sysbench":
        run, when = f[2].split(".")
        sysbench.setdefault(run, {})[when] = (float(f[3]), float(f[4]))
    else:
        runs.setdefault((f[0], f[1]), []).append([f[2]] + [float(x) for x in f[3:]])
def mm(vs, fmt):
    return f"{fmt(statistics.median(vs))} ({fmt(min(vs))}–{fmt(max(vs))})"
name = {"mysql": "MariaDB", "sqlite": "SQLite"}
print("| backend | endpoint | req/s (min–max) | p50 ms | p99 ms (min–max) | api CPU µs/request | peak RSS MiB |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for (b, e), rs in runs.items():
    col = lambda k: [r[k + 1] for r in rs]
    print(f"| {name.get(b, b)} | `GET {e}` | {mm(col(0), lambda x: f'{x:,.0f}')} | "
          f"{statistics.median(col(1)):.2f} | {mm(col(2), lambda x: f'{x:.2f}')} | "
          f"{mm(col(3), lambda x: f'{x:.0f}')} | {max(col(4)) / 1024:.1f} |")
api_by_run = {r[0]: r for r in runs.get(("mysql", "/users/{id}"), [])}
ratios, ceil, ceil_p99 = [], [], []
for run, s in sysbench.items():
    if "before" in s and "after" in s and run in api_by_run:
        mean = (s["before"][0] + s["after"][0]) / 2
        ceil.append(mean); ceil_p99 += [s["before"][1], s["after"][1]]
        ratios.append(api_by_run[run][1] / mean)
if ratios:
    print()
    print("Same MariaDB, same database, same cores, same run: the api's `GET /users/{id}` against "
          "sysbench `oltp_point_select` (32 threads, 10,000 rows; mean of the run right before and "
          "right after the api's):")
    print()
    print("| | per second (min–max) | p99 ms |")
    print("| --- | ---: | ---: |")
    print(f"| sysbench `oltp_point_select`, 32 threads | {mm(ceil, lambda x: f'{x:,.0f}')} queries | "
          f"{statistics.median(ceil_p99):.2f} |")
    api_rps = [api_by_run[r][1] for r in sysbench if r in api_by_run]
    api_p99 = [api_by_run[r][3] for r in sysbench if r in api_by_run]
    print(f"| api `GET /users/{{id}}`, wrk -t2 -c32 | {mm(api_rps, lambda x: f'{x:,.0f}')} requests | "
          f"{statistics.median(api_p99):.2f} |")
    print(f"| **ratio api / sysbench** (per run) | **{mm(ratios, lambda x: f'{x:.2f}×')}** | |")
if startup:
    ms = [s[0] for s in startup]
    print()
    print(f"- Start-up, exec → first 200 of `/readyz` (SQLite, empty directory, file created and "
          f"migrated): median {statistics.median(ms)} ms ({min(ms)}–{max(ms)}, {len(ms)} runs); "
          f"idle RSS {statistics.median([s[1] for s in startup]) / 1024:.1f} MiB.")
PY
  {
    header "RUNS=$RUNS scripts/bench.sh api"
    echo "Per backend: \`api seed --count 10000\`, \`api serve\` with \`DATABASE_MAX_CONNECTIONS=32\`, logs at info"
    echo "to /dev/null, then $RUNS × (\`wrk -t2 -c32 -d${DURATION:-15s} --latency\` on each endpoint)"
    echo "(\`api/benches/wrk.sh\`; wrk, the api and MariaDB share the 2 cores). api CPU: utime+stime of the"
    echo "server across the wrk run divided by the requests served."
    echo
    cat "$RES/api.md"
  } >"$RES/api.section"
  write_section api "$RES/api.section"
}

run_es() {
  need_services
  : >"$RES/es.tsv"
  : >"$RES/es.stderr"
  local events="${ES_BENCH_EVENTS:-100000}"
  for i in $(seq "$RUNS"); do
    ES_BENCH_EVENTS="$events" cargo bench --quiet -p logship --bench es_bench 2>>"$RES/es.stderr" |
      awk -F'\t' -v run="$i" '/^bulk_preencoded|^logship\(/ {sub(/\(.*/, "", $1); print $1 "\t" run "\t" $3 "\t" $4}' \
        >>"$RES/es.tsv"
    echo "bench: es run $i done" >&2
  done
  python3 - "$RES/es.tsv" >"$RES/es.md" <<'PY'
import sys, statistics
runs = {}
for line in open(sys.argv[1]):
    v, run, secs, dps = line.rstrip("\n").split("\t")
    runs.setdefault(v, {})[run] = float(dps)
b, l = runs.get("bulk_preencoded", {}), runs.get("logship", {})
ratios = [l[r] / b[r] for r in l if r in b]
mm = lambda vs, f: f"{f(statistics.median(vs))} ({f(min(vs))}–{f(max(vs))})" if vs else "–"
print("| variant | docs/s (min–max) |")
print("| --- | ---: |")
print(f"| pre-encoded `_bulk` (the node's ceiling) | {mm(list(b.values()), lambda x: f'{x:,.0f}')} |")
print(f"| logship (`fluentd/fluentd.conf`: parser filter → file buffer → `_bulk`) | {mm(list(l.values()), lambda x: f'{x:,.0f}')} |")
print(f"| ratio logship / pre-encoded (same run; pre-encoded = mean of the runs before and after logship) | {mm(ratios, lambda x: f'{x:.2f}×')} |")
PY
  {
    header "RUNS=$RUNS scripts/bench.sh es"
    echo "Each run: \`ES_BENCH_EVENTS=$events cargo bench -p logship --bench es_bench\` against the single"
    echo "OpenSearch node of \`scripts/test-services.sh\` (512 MB heap) on the same 2 cores."
    echo
    cat "$RES/es.md"
  } >"$RES/es.section"
  write_section es "$RES/es.section"
}

run_pipeline() {
  need_services
  RUNS="$RUNS" scripts/bench-pipeline.sh >&2
  {
    header "RUNS=$RUNS scripts/bench.sh pipeline"
    echo "Each run: \`scripts/bench-pipeline.sh\` (${PIPELINE_EVENTS:-500000} events, PackedForward 1,000/frame, one connection,"
    echo "every 10th \`log\` line not JSON) into the single OpenSearch node of \`scripts/test-services.sh\`;"
    echo "figures from the first byte sent to the exact \`_count\`; medians (min–max) of $RUNS runs."
    echo
    cat "$RES/pipeline.md"
  } >"$RES/pipeline.section"
  write_section pipeline "$RES/pipeline.section"
}

run_callgrind() {
  : >"$RES/callgrind.tsv"
  if [[ -n "${LOGSHIP_BASELINE:-}" ]]; then
    LOGSHIP_BIN="$LOGSHIP_BASELINE" scripts/bench-parser-callgrind.sh | sed 's/^[^\t]*/before/' >>"$RES/callgrind.tsv"
  fi
  scripts/bench-parser-callgrind.sh | sed 's/^[^\t]*/this commit/' >>"$RES/callgrind.tsv"
  {
    header "scripts/bench.sh callgrind"
    echo "\`valgrind --tool=callgrind logship run\` (Forward → parser filter as in fluentd.conf → null),"
    echo "fed by \`loadgen --mode packed --distinct --invalid-every 10\`; instructions divided by the events."
    echo
    echo "| build | events | instructions per event (whole process) | parser filter, inclusive, per event |"
    echo "| --- | ---: | ---: | ---: |"
    awk -F'\t' '{printf "| %s | %\047d | %\047d | %\047d |\n", $1, $2, $3, $4}' "$RES/callgrind.tsv"
  } >"$RES/callgrind.section"
  write_section callgrind "$RES/callgrind.section"
}

run_profile() {
  need_services
  local events="${PROFILE_EVENTS:-100000}" bins=() b tool label
  read -ra bins <<<"${PROFILE_BASELINES:-}"
  bins+=("$CARGO_TARGET_DIR/release/logship")
  : >"$RES/profile.tsv"
  for b in "${bins[@]}"; do
    label="before ($(basename "$b"))"
    [[ "$b" == "$CARGO_TARGET_DIR/release/logship" ]] && label="this commit"
    for tool in callgrind massif; do
      LOGSHIP_BIN="$b" TOOL="$tool" EVENTS="$events" scripts/bench-pipeline-profile.sh >"$RES/profile.log" 2>&1 ||
        { tail -20 "$RES/profile.log" >&2; return 1; }
      tail -1 "$RES/profile.log" | awk -F'\t' -v OFS='\t' -v l="$label" '{$1 = l; print}' >>"$RES/profile.tsv"
    done
  done
  {
    header "scripts/bench.sh profile"
    echo "\`scripts/bench-pipeline-profile.sh\`: \`logship run\` on \`fluentd/fluentd.conf\` under valgrind, whole process,"
    echo "$events events (\`loadgen --mode packed --distinct --invalid-every 10\`) into the test node until the exact"
    echo "\`_count\`. Per-function tables: \`target/bench/profile/\`."
    echo
    echo "| build | docs | instructions per doc (callgrind) | peak heap MiB (massif, incl. allocator overhead) |"
    echo "| --- | ---: | ---: | ---: |"
    python3 - "$RES/profile.tsv" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, cfg, n, tool, figure = line.rstrip("\n").split("\t")
    rows.setdefault(name, {"n": int(n)})[tool] = float(figure)
for name, r in rows.items():
    print(f"| {name} | {r['n']:,} | {r.get('callgrind', 0):,.0f} | {r.get('massif', 0):.1f} |")
PY
  } >"$RES/profile.section"
  write_section profile "$RES/profile.section"
}

run_targets() {
  python3 - "$RES" >"$RES/targets.section" <<'PY'
import os, sys, statistics
res = sys.argv[1]
def rows(name):
    p = os.path.join(res, name)
    return [l.rstrip("\n").split("\t") for l in open(p)] if os.path.exists(p) else []
med = statistics.median
out = []
def row(target, figure, ok):
    status = "–" if ok is None else ("met" if ok else "**not met**")
    out.append(f"| {target} | {figure} | {status} |")

ls = rows("logship.tsv")
def ls_runs(output, name):
    return [r for r in ls if r[0] == output and r[1] == name and len(r) > 14]
def num(x):
    try: return float(x)
    except ValueError: return None
p = ls_runs("null", "PackedForward 1000/chunk, 1 conn, ack last")
if p:
    eps = med([float(r[10]) for r in p]); cpm = med([num(r[13]) for r in p if num(r[13]) is not None])
    rss = max(num(r[14]) for r in p)
    row("forward → null, PackedForward 1,000/chunk, 1 conn: ≤ 0.15 CPU-s/M, ≥ 1.5 M events/s",
        f"{cpm:.3f} CPU-s/M, {eps / 1e6:.2f} M events/s", cpm <= 0.15 and eps >= 1.5e6)
    row("same, peak RSS while blasting (5 M events) ≤ 64 MiB", f"{rss:.1f} MiB", rss <= 64)
m = ls_runs("null", "Message EventTime {}, 8 conns, ack last")
if m:
    eps = med([float(r[10]) for r in m]); cpm = med([num(r[13]) for r in m if num(r[13]) is not None])
    row("forward → null, Message as Docker sends it, 8 conns: ≥ 500 k events/s",
        f"{eps / 1e6:.2f} M events/s, {cpm:.3f} CPU-s/M", eps >= 5e5)
for name in ["PackedForward 1000/chunk, 1 conn, ack last", "Message EventTime {}, 8 conns, ack last"]:
    s = ls_runs("stdout-json", name)
    if s:
        cpm = med([num(r[13]) for r in s if num(r[13]) is not None])
        row(f"forward → stdout JSON lines ({name.split(',')[0]}): ≤ 0.50 CPU-s/M", f"{cpm:.3f} CPU-s/M", cpm <= 0.5)
idle = os.path.join(res, "logship-idle.tsv")
if os.path.exists(idle):
    kib = max(int(l.split("\t")[2]) for l in open(idle))
    row("logship idle RSS ≤ 10 MiB", f"{kib / 1024:.1f} MiB", kib / 1024 <= 10)
mi = rows("micro.tsv")
def micro(prefix):
    return [float(r[2]) for r in mi if r[0].startswith(prefix) and r[3] == "bytes"]
d = micro("forward_decode_bytes/packed")
if d:
    row("frame decoder (criterion), PackedForward ≥ 3 GB/s", f"{med(d) / 1e9:.2f} GB/s", med(d) >= 3e9)
t = micro("transcode/docker record")
if t:
    row("msgpack → JSON transcode of a record (criterion) ≥ 1.5 GB/s", f"{med(t) / 1e9:.2f} GB/s ({min(t) / 1e9:.2f}–{max(t) / 1e9:.2f})", med(t) >= 1.5e9)
es = rows("es.tsv")
if es:
    b = {r[1]: float(r[3]) for r in es if r[0] == "bulk_preencoded"}
    l = {r[1]: float(r[3]) for r in es if r[0] == "logship"}
    ratios = [l[k] / b[k] for k in l if k in b]
    if ratios:
        row("logship → real OpenSearch ≥ 0.9× the pre-encoded `_bulk` rate", f"{med(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})", med(ratios) >= 0.9)
api = rows("api.tsv")
def api_runs(backend, endpoint):
    return [[float(x) for x in r[3:]] for r in api if r[0] == backend and r[1] == endpoint]
# (sysbench rows: "sysbench  oltp_point_select  RUN.before|RUN.after  queries/s  p99 ms")
a = api_runs("mysql", "/users/{id}")
if a:
    rps = med([r[0] for r in a]); p99 = med([r[2] for r in a]); cpu = med([r[3] for r in a])
    sb = {}
    for r in api:
        if r[0] == "sysbench":
            run, when = r[2].split(".")
            sb.setdefault(run, []).append(float(r[3]))
    by_run = {r[2]: float(r[3]) for r in api if r[0] == "mysql" and r[1] == "/users/{id}"}
    ratios = [by_run[k] / (sum(v) / len(v)) for k, v in sb.items() if k in by_run and len(v) == 2]
    if ratios:
        row("api `GET /users/{id}`, MariaDB, wrk -t2 -c32: ≥ 0.5× sysbench `oltp_point_select` (32 threads, same run)",
            f"{med(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}); {rps:,.0f} req/s (api {cpu:.0f} µs CPU/request)",
            med(ratios) >= 0.5)
    row("api `GET /users/{id}`, MariaDB: p99 < 5 ms", f"{p99:.2f} ms", p99 < 5)
a = api_runs("mysql", "/users?limit=100")
if a:
    rps = med([r[0] for r in a]); cpu = med([r[3] for r in a])
    row("api `GET /users?limit=100`, MariaDB: ≥ 8,000 req/s", f"{rps:,.0f} req/s (api {cpu:.0f} µs CPU/request)", rps >= 8000)
st = [r for r in api if r[0] == "startup"]
if st:
    ms = med([int(r[2]) for r in st]); rss = med([int(r[3]) for r in st]) / 1024
    row("api start-up to first 200 of `/readyz` (SQLite) < 50 ms", f"{ms} ms", ms < 50)
    row("api idle RSS < 20 MiB", f"{rss:.1f} MiB", rss < 20)
print("Built by `scripts/bench.sh targets` from the latest raw results of each section "
      "(`$CARGO_TARGET_DIR/bench/*.tsv`); medians (min–max) as in the section tables below.")
print()
print("| target (issue 9) | figure | status |")
print("| --- | --- | --- |")
print("\n".join(out))
PY
  write_section targets "$RES/targets.section"
}

run_fwd() {
  scripts/bench-fwd.sh >"$RES/fwd.section"
  { header "RUNS=$RUNS scripts/bench.sh fwd"; echo; cat "$RES/fwd.section"; } >"$RES/fwd.md"
  write_section fwd "$RES/fwd.md"
}

run_buffer() {
  {
    header "cargo bench -p logship --bench buffer (RUNS=$RUNS)"
    echo
    cargo bench --quiet -p logship --bench buffer 2>/dev/null | grep '^|'
  } >"$RES/buffer.section"
  write_section buffer "$RES/buffer.section"
}

for s in "${SECTIONS[@]}"; do
  case "$s" in
  buffer) run_buffer ;;
  fwd) run_fwd ;;
  logship) run_logship ;;
  micro) run_micro ;;
  api) run_api ;;
  es) run_es ;;
  pipeline) run_pipeline ;;
  callgrind) run_callgrind ;;
  profile) run_profile ;;
  targets) ;;
  *) echo "unknown section $s (logship|micro|api|es|buffer|pipeline|callgrind|profile|fwd|targets|all)" >&2; exit 2 ;;
  esac
  run_targets
done
