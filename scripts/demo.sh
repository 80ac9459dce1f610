#!/usr/bin/env bash
# The README's first command: run the api on its embedded default (SQLite) with its logs
# flowing through logship, on a fresh machine with no Docker.
#
#   api (stdout: bunyan JSON) --logship exec--> Forward :24224 --> logship run -c fluentd/demo.conf --> stdout
#
# The api listens on :5000 (PORT). In another terminal: `curl localhost:5000/users`, and the
# request's events appear here as Fluentd-format lines (`TIME TAG: JSON`). Ctrl-C stops both.
#
#   scripts/demo.sh es [opensearch|elasticsearch7]
#
# The main job without Docker: the production pipeline into a search engine.
#
#   api --logship exec--> Forward :24224 --> logship run -c fluentd/fluentd.conf --> search node
#
# starts the test services' search node (OpenSearch 2.19 by default, or Elasticsearch 7.10)
# in target/demo/services, logship with fluentd/fluentd.conf (template elk/fluentd-template.json,
# file buffer in target/demo/buffer), the api under `logship exec`; sends a few requests,
# prints `_cat/indices` once the documents are there, then follows them with
# `logship tail -f`. Ctrl-C stops everything it started (the node too).
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
workdir="$(cd "$workdir" && pwd)"
forward_port=24224   # fluentd/demo.conf listens where Fluentd does
export PORT="${PORT:-5000}"

pids=()
cleanup() {
  # Stop only what this script started, newest first, and wait for each.
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# es: the search node first (it takes longest), logship with the production config.
mode="${1:-}"
if [[ "$mode" == es ]]; then
  engine="${2:-opensearch}"
  case "$engine" in
    opensearch) url_var=TEST_ELASTICSEARCH_URL ;;
    elasticsearch7) url_var=TEST_ELASTICSEARCH7_URL ;;
    *) echo "demo: unknown engine '$engine' (opensearch or elasticsearch7)" >&2; exit 2 ;;
  esac
  export SERVICES_DIR="$workdir/services"
  echo "demo: starting the $engine node (scripts/test-services.sh; the first run builds it with Maven)..." >&2
  env_lines="$(scripts/test-services.sh start "$engine")"
  es_url="$(sed -n "s/^$url_var=//p" <<<"$env_lines")"
  stop_services() { scripts/test-services.sh stop >"$workdir/services-stop.log" 2>&1 || true; }
  trap 'cleanup; stop_services' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  rm -rf "$workdir/buffer"
  ELASTICSEARCH_HOST=127.0.0.1 ELASTICSEARCH_PORT="${es_url##*:}" \
    FLUENTD_TEMPLATE_FILE="$PWD/elk/fluentd-template.json" LOGSHIP_BUFFER_PATH="$workdir/buffer" \
    "$bin/logship" run -c fluentd/fluentd.conf 2>"$workdir/logship.log" &
  pids+=($!)
else
  # 1. The shipper: Fluentd's demo pipeline (forward in, stdout out), unchanged.
  "$bin/logship" run -c fluentd/demo.conf 2>"$workdir/logship.log" &
  pids+=($!)
fi

# 2. The api on SQLite (./target/demo/api.db), its stdout shipped the way Docker's fluentd
#    driver ships a container's lines. The api's own copy of its lines goes to a file so the
#    terminal shows only what arrived through logship.
(
  cd "$workdir"
  exec "$bin/logship" exec --tag docker.api --name api --port "$forward_port" -- "$bin/api" serve
) >"$workdir/api.stdout" 2>"$workdir/api.stderr" &
pids+=($!)

if [[ "$mode" != es ]]; then
  echo "demo: api on http://localhost:$PORT  (try: curl localhost:$PORT/users)" >&2
  echo "demo: events shipped through logship appear below; Ctrl-C to stop" >&2
  wait -n "${pids[@]}"
  exit 0
fi

# es: a few requests, the index they landed in, then follow.
api="http://localhost:$PORT"
for _ in $(seq 1 100); do curl -sf "$api/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf "$api/healthz" >/dev/null || { echo "demo: the api did not start; see $workdir/api.stderr" >&2; exit 1; }
echo "demo: api on $api; sending a few requests" >&2
curl -s -o /dev/null -w "  POST /users -> %{http_code}\n" -XPOST "$api/users" \
  -H 'content-type: application/json' -d '{"name":"Ada","email":"ada@example.com"}' >&2
curl -s -o /dev/null -w "  GET /users -> %{http_code}\n" "$api/users" >&2
curl -s -o /dev/null -w "  GET /users/999 -> %{http_code}\n" "$api/users/999" >&2
# fluentd.conf flushes every second; wait for the documents of the start-up and the three
# requests (bounded: 30 s).
for _ in $(seq 1 60); do
  curl -s -o /dev/null -XPOST "$es_url/fluentd-*/_refresh"
  n="$(curl -s "$es_url/fluentd-*/_count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')"
  [[ "${n:-0}" -ge 6 ]] && break
  sleep 0.5
done
echo "demo: $es_url/_cat/indices?v" >&2
curl -s "$es_url/_cat/indices/fluentd-*?v&s=index"
echo "demo: following with logship tail -f (more requests: curl $api/users); Ctrl-C to stop" >&2
"$bin/logship" tail -f -n 20 --url "$es_url"
