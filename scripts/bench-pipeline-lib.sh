# Sourced by scripts/bench-pipeline.sh and scripts/bench-pipeline-profile.sh: one run of the
# production pipeline (tracker issue 16) against the test services' node. Needs `es` (the
# node's URL without a trailing slash) and is run from the repository's root.

# pipeline_config CONFIG PORT INDEX_PREFIX OUT: the logship config of a run.
#   fluentd.conf: the shipped fluentd/fluentd.conf with a free Forward port, no fixed monitoring
#                 port and an index prefix of this run (still matching the template's fluentd-*);
#   minimal:      logship/benches/configs/es_minimal.conf (port and prefix from the environment,
#                 see pipeline_env).
pipeline_config() {
  local cfg="$1" port="$2" prefix="$3" out="$4"
  if [[ "$cfg" == fluentd.conf ]]; then
    sed -e "s/^  port 24224$/  port $port/" -e 's/^  port 24231$/  port 0/' \
      -e "s/^  logstash_prefix fluentd$/  logstash_prefix $prefix/" fluentd/fluentd.conf >"$out"
    grep -q "logstash_prefix $prefix" "$out" || {
      echo "pipeline_config: fluentd/fluentd.conf no longer has 'logstash_prefix fluentd'" >&2
      return 1
    }
  else
    cp logship/benches/configs/es_minimal.conf "$out"
  fi
}

# pipeline_env PORT INDEX_PREFIX BUFFER_DIR: the environment of that run's logship, as
# NAME=VALUE words for `env`.
pipeline_env() {
  local hostport="${es#*://}"
  echo "ELASTICSEARCH_HOST=${hostport%:*} ELASTICSEARCH_PORT=${hostport##*:}" \
    "FLUENTD_TEMPLATE_FILE=$PWD/elk/fluentd-template.json LOGSHIP_BUFFER_PATH=$3" \
    "BENCH_PORT=$1 BENCH_INDEX_PREFIX=$2 LOG_LEVEL=info"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_listening PORT PID: until PORT accepts connections (30 s at most); fails when PID exits.
wait_listening() {
  for _ in $(seq 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# es_count INDEX_PATTERN: documents in those indices after a refresh (empty when unknown).
es_count() {
  curl -sf -XPOST "$es/$1/_refresh" >/dev/null 2>&1 || true
  curl -sf "$es/$1/_count" 2>/dev/null | sed -n 's/.*"count":\([0-9]*\).*/\1/p'
}

# wait_exact_count INDEX_PATTERN N SECONDS: until exactly N documents are indexed; fails on more
# than N, or on fewer after SECONDS.
wait_exact_count() {
  local n deadline=$((SECONDS + $3))
  while :; do
    n="$(es_count "$1")"
    n="${n:-0}"
    ((n == $2)) && return 0
    if ((n > $2)); then
      echo "wait_exact_count: $n documents for $2 events sent" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "wait_exact_count: only $n of $2 documents after ${3}s" >&2
      return 1
    fi
    sleep 0.2
  done
}
