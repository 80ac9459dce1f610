#!/usr/bin/env bash
# Private test services for the integration tests: MariaDB, PostgreSQL, Redis,
# an embedded OpenSearch node and embedded Elasticsearch 7 and 8 nodes, each on
# 127.0.0.1 with its own free port and its own data directory under
# $SERVICES_DIR; in front of OpenSearch, nginx as a TLS-terminating reverse proxy
# with basic auth, an API-key rule and mutual TLS, with certificates from a
# private CA made by openssl at each start; on request, a 3-node OpenSearch
# cluster. Nothing system-wide is started, and only processes this script
# started are ever stopped.
#
# Usage: scripts/test-services.sh COMMAND
#   install               apt-get install whatever is missing (quiet if nothing is)
#   start [NAME...]       install if needed, (re)start all services (or only the NAMEd
#                         ones) with fresh data, print TEST_* env lines on stdout and
#                         write them to $SERVICES_DIR/env (nginx needs opensearch)
#   stop                  stop everything started by `start` (and the cluster)
#   stop-service NAME     stop one service   (NAME: mysql | postgres | redis | opensearch
#                         | nginx | elasticsearch7 | elasticsearch8)
#   start-service NAME    start it again on the same port and data dir
#   env                   print the env lines of the running services
#   start-cluster         start a 3-node OpenSearch cluster (fresh data) and print
#                         TEST_OPENSEARCH_CLUSTER_URLS=URL1,URL2,URL3
#   stop-cluster          stop its three nodes
#   kill-node N           SIGKILL cluster node N (1..3)
#   start-node N          start node N again with its data; waits until it has rejoined
#
# Typical use:  eval "$(scripts/test-services.sh start)"  ...  scripts/test-services.sh stop
#
# stdout carries only the env lines of `start`/`env`; every message goes to
# stderr and every service log to $SERVICES_DIR/<name>/*.log.
#
# Environment:
#   SERVICES_DIR      state and data (default $CARGO_TARGET_DIR/services, else
#                     <repo>/target/services; wiped by `start`)
#   OPENSEARCH_HEAP   JVM heap of the OpenSearch node (default 512m)
#   ELASTICSEARCH7_HEAP, ELASTICSEARCH8_HEAP  JVM heap of the Elasticsearch nodes (384m)
#   CLUSTER_HEAP      JVM heap of each cluster node (default 256m)
#   SERVICES_TIMEOUT  seconds to wait for MariaDB/PostgreSQL/Redis (default 60);
#                     the search nodes get 3x that
set -euo pipefail

SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "$SCRIPT")/.." && pwd)"
# Each cargo target dir gets its own services, so checkouts sharing a tree
# with different CARGO_TARGET_DIRs do not stop each other's.
SERVICES_DIR="${SERVICES_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/services}"
mkdir -p "$SERVICES_DIR"
SERVICES_DIR="$(cd "$SERVICES_DIR" && pwd)"
OPENSEARCH_HEAP="${OPENSEARCH_HEAP:-512m}"
ELASTICSEARCH7_HEAP="${ELASTICSEARCH7_HEAP:-384m}"
ELASTICSEARCH8_HEAP="${ELASTICSEARCH8_HEAP:-384m}"
CLUSTER_HEAP="${CLUSTER_HEAP:-256m}"
TIMEOUT="${SERVICES_TIMEOUT:-60}"
OS_TIMEOUT=$((TIMEOUT * 3))
# mariadbd, runuser, ... live in sbin, which a non-login shell may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
LC_NUMERIC=C # "1.5", not "1,5", in $EPOCHREALTIME

ALL_SERVICES=(mysql postgres redis opensearch nginx elasticsearch7 elasticsearch8)
CLUSTER_NODES=(oscluster1 oscluster2 oscluster3)
# The services `start` starts (all unless named on its command line).
WANTED=("${ALL_SERVICES[@]}")
wanted() { [[ " ${WANTED[*]} " == *" $1 "* ]]; }
PIDS_FILE="$SERVICES_DIR/pids"   # lines "NAME PID"
PORTS_FILE="$SERVICES_DIR/ports" # lines "NAME PORT"
ENV_FILE="$SERVICES_DIR/env"

# Test database and account created on MariaDB and PostgreSQL.
DB_NAME=app_test
DB_USER=app
DB_PASSWORD=app
PG_SUPERPASS=postgres # password of the `postgres` superuser of the test cluster

log() { echo "test-services: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# ---------------------------------------------------------------- small helpers

# now: wall-clock seconds with fractions, without forking.
now() { echo "${EPOCHREALTIME:-$(date +%s)}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# kv_get FILE KEY / kv_set FILE KEY VALUE / kv_del FILE KEY: tiny "KEY VALUE" files.
# Tests stop and restart services from parallel threads (one outage test per service in one
# binary), so every rewrite holds an exclusive lock on FILE.lock: two unlocked rewrites of
# the same file lose each other's lines (and with them the PIDs that `stop` needs).
kv_get() {
    if [[ -f "$1" ]]; then awk -v k="$2" '$1 == k { print $2 }' "$1" | tail -n 1; fi
}
kv_rewrite() { # FILE KEY [VALUE]: drop KEY's lines, then append "KEY VALUE" if given
    (
        flock 9
        if [[ -f "$1" ]]; then
            awk -v k="$2" '$1 != k' "$1" >"$1.tmp.$$" && mv "$1.tmp.$$" "$1"
        fi
        if [[ $# -ge 3 ]]; then echo "$2 $3" >>"$1"; fi
    ) 9>>"$1.lock"
}
kv_del() { kv_rewrite "$1" "$2"; }
kv_set() { kv_rewrite "$1" "$2" "$3"; }

# port_in_use PORT: true if something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port NAME: record a port nothing listens on for NAME. Ports come from
# below the kernel's ephemeral range, so outgoing connections do not grab them
# meanwhile, and are never one handed out earlier in this run.
pick_port() {
    local port _
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 12000))
        grep -qx "[^ ]* $port" "$PORTS_FILE" 2>/dev/null && continue
        port_in_use "$port" && continue
        kv_set "$PORTS_FILE" "$1" "$port"
        return 0
    done
    die "no free port found"
}

# wait_port_free PORT SECONDS: for restarts on the same port.
wait_port_free() {
    local deadline=$((SECONDS + $2))
    while port_in_use "$1"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# is_ours NAME PID: the process is alive and is the program we started for NAME
# (guards against a recycled PID: we must never signal someone else's process).
is_ours() {
    local cmd
    [[ -n "$2" && -r "/proc/$2/cmdline" ]] || return 1
    cmd="$(tr '\0' ' ' <"/proc/$2/cmdline" 2>/dev/null)" || return 1
    case "$1" in
    mysql) [[ "$cmd" == *mariadbd* || "$cmd" == *mysqld* ]] ;;
    postgres) [[ "$cmd" == *postgres*"$(kv_get "$PORTS_FILE" postgres_dir)"* ]] ;;
    redis) [[ "$cmd" == *redis-server*":$(kv_get "$PORTS_FILE" redis)"* ]] ;;
    opensearch | elasticsearch[78] | oscluster[123]) [[ "$cmd" == *java*"-Dtest.services.node=$1 "*Launcher* ]] ;;
    nginx) [[ "$cmd" == *nginx*"$SERVICES_DIR/nginx"* ]] ;;
    *) return 1 ;;
    esac && [[ "$cmd" == *"$SERVICES_DIR"* || "$1" == redis || "$1" == postgres ]]
}

# alive PID: the process exists and is not a zombie (an exited daemon whose
# parent is init may stay a zombie for a moment before it is reaped).
alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat%% *}" != Z ]]
}

# show_log NAME FILE: the last 30 lines of a log, for failures.
show_log() {
    log "$1 failed to start; last 30 lines of $2:"
    if [[ -f "$2" ]]; then tail -n 30 "$2" | sed 's/^/    /' >&2; fi
}

# ------------------------------------------------------------------- install

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
pg_bindir() {
    local d
    d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    if [[ -d "$d" ]]; then echo "$d"; fi
}

cmd_install() {
    local missing=()
    if wanted mysql; then
        command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null && command -v mariadb >/dev/null ||
            missing+=(mariadb-server mariadb-client)
    fi
    if wanted postgres; then
        [[ -n "$(pg_bindir)" && -x "$(pg_bindir)/initdb" ]] && command -v psql >/dev/null || missing+=(postgresql)
    fi
    if wanted redis; then command -v redis-server >/dev/null || missing+=(redis-server); fi
    if wanted opensearch || wanted elasticsearch7 || wanted elasticsearch8; then
        command -v mvn >/dev/null || missing+=(maven)
        command -v java >/dev/null && command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
    fi
    command -v curl >/dev/null || missing+=(curl)
    command -v runuser >/dev/null || missing+=(util-linux)
    if wanted nginx; then
        # The TLS proxy in front of the search node (certificates are made with openssl).
        command -v nginx >/dev/null || missing+=(nginx)
        command -v openssl >/dev/null || missing+=(openssl)
    fi
    if ((${#WANTED[@]} == ${#ALL_SERVICES[@]})); then
        # Not a service, but a test peer: logship's `tail` is driven in a real terminal (tmux).
        command -v tmux >/dev/null || missing+=(tmux)
        # Not a service either: promtool (Debian's prometheus package) validates logship's /metrics.
        command -v promtool >/dev/null || missing+=(prometheus)
    fi
    ((${#missing[@]} == 0)) && return 0

    log "installing ${missing[*]} with apt-get"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Keep apt from starting system-wide instances of these daemons: we run
    # our own. (Only when no policy-rc.d exists; ours is removed afterwards.)
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod +x "$policy"
        added_policy=1
    fi
    local rc=0
    { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 || rc=$?
    ((added_policy)) && "${sudo[@]}" rm -f "$policy"
    ((rc == 0)) || die "apt-get install ${missing[*]} failed"
}

# ------------------------------------------------------------------- MariaDB

mysql_socket() {
    # unix socket paths are limited to ~107 bytes
    local sock="$SERVICES_DIR/mysql/mysqld.sock"
    ((${#sock} < 100)) || sock="/tmp/test-services-mysql-$(kv_get "$PORTS_FILE" mysql).sock"
    echo "$sock"
}

# start_mysql FRESH(0|1)
start_mysql() {
    local dir="$SERVICES_DIR/mysql" port sock t0 userarg=() pid
    port="$(kv_get "$PORTS_FILE" mysql)"
    sock="$(mysql_socket)"
    ((EUID == 0)) && userarg=(--user=root)
    t0="$(now)"
    if (($1)); then
        mkdir -p "$dir/data"
        mariadb-install-db --no-defaults --datadir="$dir/data" "${userarg[@]}" \
            --auth-root-authentication-method=normal --skip-test-db \
            >"$dir/install.log" 2>&1 || {
            show_log mysql "$dir/install.log"
            return 1
        }
    fi
    # Durability off: this is throw-away test data.
    mariadbd --no-defaults --datadir="$dir/data" "${userarg[@]}" \
        --port="$port" --bind-address=127.0.0.1 --socket="$sock" \
        --pid-file="$dir/mariadbd.pid" --log-error="$dir/mariadbd.log" \
        --skip-name-resolve --max-connections=500 \
        --innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        </dev/null >>"$dir/mariadbd.log" 2>&1 &
    pid=$!
    kv_set "$PIDS_FILE" mysql "$pid"
    local deadline=$((SECONDS + TIMEOUT))
    until mariadb-admin --no-defaults --socket="$sock" -uroot --connect-timeout=2 ping >/dev/null 2>&1; do
        if ! alive "$pid" || ((SECONDS >= deadline)); then
            show_log mysql "$dir/mariadbd.log"
            return 1
        fi
        sleep 0.2
    done
    if (($1)); then
        mariadb --no-defaults --socket="$sock" -uroot >>"$dir/install.log" 2>&1 <<SQL || {
CREATE DATABASE $DB_NAME;
CREATE USER '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
-- all rights, so tests may create a database each
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
            show_log mysql "$dir/install.log"
            return 1
        }
    fi
    log "mysql: MariaDB $(mariadbd --version | awk '{print $3}') ready on 127.0.0.1:$port in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------- PostgreSQL

# As root we run PostgreSQL as an unprivileged system user (the server
# refuses to run as root): `postgres` from the Debian package, else our own.
PG_OS_USER=""
pg_run() {
    if [[ -n "$PG_OS_USER" ]]; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@")
    else
        "$@"
    fi
}

pg_setup_user() {
    ((EUID == 0)) || return 0
    if id postgres >/dev/null 2>&1; then
        PG_OS_USER=postgres
    else
        id test-services >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin test-services
        PG_OS_USER=test-services
    fi
}

# pg_datadir: $SERVICES_DIR/postgres, unless the server user cannot reach it
# (e.g. a checkout under /root): then a directory in /tmp, noted in the state.
pg_datadir() {
    local dir
    dir="$(kv_get "$PORTS_FILE" postgres_dir)"
    [[ -n "$dir" ]] && {
        echo "$dir"
        return
    }
    dir="$SERVICES_DIR/postgres"
    mkdir -p "$dir"
    if [[ -n "$PG_OS_USER" ]] && ! runuser -u "$PG_OS_USER" -- test -x "$dir"; then
        dir="/tmp/test-services-postgres-$(echo "$SERVICES_DIR" | cksum | cut -d' ' -f1)"
    fi
    kv_set "$PORTS_FILE" postgres_dir "$dir"
    echo "$dir"
}

# start_postgres FRESH(0|1)
start_postgres() {
    local bin dir port t0 pid
    bin="$(pg_bindir)"
    pg_setup_user
    dir="$(pg_datadir)"
    port="$(kv_get "$PORTS_FILE" postgres)"
    t0="$(now)"
    if (($1)); then
        rm -rf "$dir"
        mkdir -p "$dir"
        echo "$PG_SUPERPASS" >"$dir/superpass"
        [[ -n "$PG_OS_USER" ]] && chown -R "$PG_OS_USER": "$dir"
        chmod 700 "$dir"
        pg_run "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/superpass" \
            --auth=scram-sha-256 -E UTF8 --no-locale --no-sync \
            >"$dir/initdb.log" 2>&1 || {
            show_log postgres "$dir/initdb.log"
            return 1
        }
    fi
    # TCP on 127.0.0.1 only (no unix socket: its path length is limited and we
    # do not need it); durability off for speed.
    pg_run "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$TIMEOUT" start \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >>"$dir/pg_ctl.log" 2>&1 || {
        show_log postgres "$dir/postgres.log"
        return 1
    }
    pid="$(head -n 1 "$dir/data/postmaster.pid")"
    kv_set "$PIDS_FILE" postgres "$pid"
    local psql=(env PGPASSWORD="$PG_SUPERPASS" "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
    local deadline=$((SECONDS + TIMEOUT))
    until "${psql[@]}" -d postgres -c 'SELECT 1' >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            show_log postgres "$dir/postgres.log"
            return 1
        fi
        sleep 0.2
    done
    if (($1)); then
        {
            "${psql[@]}" -d postgres -c "CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD'" &&
                "${psql[@]}" -d postgres -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
        } >>"$dir/initdb.log" 2>&1 || {
            show_log postgres "$dir/initdb.log"
            return 1
        }
    fi
    log "postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') ready on 127.0.0.1:$port in $(elapsed "$t0") s"
}

# --------------------------------------------------------------------- Redis

start_redis() {
    local dir="$SERVICES_DIR/redis" port t0 pid
    port="$(kv_get "$PORTS_FILE" redis)"
    mkdir -p "$dir"
    t0="$(now)"
    # No persistence: a restart starts empty, like a cache would.
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize no \
        --save '' --appendonly no --pidfile "$dir/redis.pid" \
        </dev/null >>"$dir/redis.log" 2>&1 &
    pid=$!
    kv_set "$PIDS_FILE" redis "$pid"
    local deadline=$((SECONDS + TIMEOUT))
    until [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; do
        if ! alive "$pid" || ((SECONDS >= deadline)); then
            show_log redis "$dir/redis.log"
            return 1
        fi
        sleep 0.1
    done
    log "redis: Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') ready on 127.0.0.1:$port in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------- OpenSearch

OS_SRC="$REPO/scripts/opensearch"

# maven_build NAME SRC: compile the launcher in SRC and write its classpath, unless
# SRC/target is up to date (then Maven is not run at all, so no network either).
maven_build() {
    local name="$1" src="$2"
    local stamp="$src/target/.built" f jar ok=1
    if [[ -f "$stamp" && -f "$src/target/cp.txt" ]]; then
        while IFS= read -r f; do
            [[ "$stamp" -nt "$f" ]] || ok=0
        done < <(find "$src/pom.xml" "$src/src" "$REPO/scripts/launcher-common" -type f)
        for jar in $(tr ':' ' ' <"$src/target/cp.txt"); do [[ -f "$jar" ]] || ok=0; done
        ((ok)) && return 0
    fi
    local t0
    t0="$(now)"
    log "$name: building the launcher with Maven (the first run downloads its jars into ~/.m2)"
    mkdir -p "$SERVICES_DIR/$name"
    rm -f "$stamp"
    (cd "$src" && mvn -q -B dependency:build-classpath -Dmdep.outputFile=target/cp.txt compile) \
        >"$SERVICES_DIR/$name/maven.log" 2>&1 || {
        show_log "$name" "$SERVICES_DIR/$name/maven.log"
        return 1
    }
    touch "$stamp"
    log "$name: launcher built in $(elapsed "$t0") s"
}

opensearch_build() { maven_build opensearch "$OS_SRC"; }

# launch_opensearch: start the JVM in the background; wait_opensearch waits.
OS_T0=""
launch_opensearch() {
    local dir="$SERVICES_DIR/opensearch" port tport
    port="$(kv_get "$PORTS_FILE" opensearch)"
    tport="$(kv_get "$PORTS_FILE" opensearch_transport)"
    mkdir -p "$dir"
    OS_T0="$(now)"
    OS_HTTP_PORT="$port" OS_TRANSPORT_PORT="$tport" OS_HOME="$dir/home" OS_PID_FILE="$dir/opensearch.pid" \
        java -Xms"$OPENSEARCH_HEAP" -Xmx"$OPENSEARCH_HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Djava.locale.providers=SPI,COMPAT -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
        -Dlog4j2.disable.jmx=true -Dlog4j.shutdownHookEnabled=false \
        -Dopensearch.set.netty.runtime.available.processors=false -Dopensearch.distribution.type=tar \
        -Dtest.services.dir="$SERVICES_DIR" -Dtest.services.node=opensearch \
        -cp "$OS_SRC/target/classes:$(cat "$OS_SRC/target/cp.txt")" Launcher \
        </dev/null >"$dir/opensearch.log" 2>&1 &
    kv_set "$PIDS_FILE" opensearch "$!"
}

wait_opensearch() {
    local dir="$SERVICES_DIR/opensearch" port pid version
    port="$(kv_get "$PORTS_FILE" opensearch)"
    pid="$(kv_get "$PIDS_FILE" opensearch)"
    local deadline=$((SECONDS + OS_TIMEOUT))
    until grep -q OPENSEARCH_READY "$dir/opensearch.log" 2>/dev/null &&
        curl -sf "http://127.0.0.1:$port/_cluster/health?wait_for_status=green&timeout=5s" >/dev/null 2>&1; do
        if ! alive "$pid" || ((SECONDS >= deadline)); then
            show_log opensearch "$dir/opensearch.log"
            return 1
        fi
        sleep 0.3
    done
    version="$(curl -sf "http://127.0.0.1:$port/" | sed -n 's/.*"number" *: *"\([^"]*\)".*/\1/p')"
    log "opensearch: OpenSearch $version ready on 127.0.0.1:$port in $(elapsed "$OS_T0") s (heap $OPENSEARCH_HEAP)"
}

start_opensearch() {
    opensearch_build && launch_opensearch && wait_opensearch
}

# ------------------------------------------------- Elasticsearch 7 and 8
#
# elasticsearch7 (7.10.2) and elasticsearch8 (8.15.5): one node each, embedded from Maven
# artifacts by scripts/elasticsearchN/ (docs/services.md). The functions take the name.

es_src() { echo "$REPO/scripts/$1"; }
es_heap() { if [[ "$1" == elasticsearch7 ]]; then echo "$ELASTICSEARCH7_HEAP"; else echo "$ELASTICSEARCH8_HEAP"; fi; }

# launch_elasticsearch NAME: start the JVM in the background; wait_elasticsearch NAME waits.
declare -A ES_T0=()
launch_elasticsearch() {
    local name="$1" dir="$SERVICES_DIR/$1" src heap port tport
    src="$(es_src "$name")"
    heap="$(es_heap "$name")"
    port="$(kv_get "$PORTS_FILE" "$name")"
    tport="$(kv_get "$PORTS_FILE" "${name}_transport")"
    mkdir -p "$dir"
    ES_T0[$name]="$(now)"
    # log4j2.configurationFile: the 8.x test framework jar brings a log4j2-test.properties
    # that would win over the launcher's own.
    ES_HTTP_PORT="$port" ES_TRANSPORT_PORT="$tport" ES_HOME="$dir/home" ES_PID_FILE="$dir/$name.pid" \
        java -Xms"$heap" -Xmx"$heap" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Djava.locale.providers=SPI,COMPAT -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
        -Dlog4j2.disable.jmx=true -Dlog4j.shutdownHookEnabled=false \
        -Dlog4j2.configurationFile="$src/target/classes/log4j2.properties" \
        -Des.set.netty.runtime.available.processors=false \
        -Des.distribution.flavor=oss -Des.distribution.type=tar \
        -Dtest.services.dir="$SERVICES_DIR" -Dtest.services.node="$name" \
        -cp "$src/target/classes:$(cat "$src/target/cp.txt")" Launcher \
        </dev/null >"$dir/$name.log" 2>&1 &
    kv_set "$PIDS_FILE" "$name" "$!"
}

wait_elasticsearch() {
    local name="$1" dir="$SERVICES_DIR/$1" port pid version
    port="$(kv_get "$PORTS_FILE" "$name")"
    pid="$(kv_get "$PIDS_FILE" "$name")"
    local deadline=$((SECONDS + OS_TIMEOUT))
    # A fresh node has no index yet, so it is green (later, indices without
    # number_of_replicas 0 make it yellow, as on any single-node server).
    until grep -q ELASTICSEARCH_READY "$dir/$name.log" 2>/dev/null &&
        curl -sf "http://127.0.0.1:$port/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null 2>&1; do
        if ! alive "$pid" || ((SECONDS >= deadline)); then
            show_log "$name" "$dir/$name.log"
            return 1
        fi
        sleep 0.3
    done
    version="$(curl -sf "http://127.0.0.1:$port/" | sed -n 's/.*"number" *: *"\([^"]*\)".*/\1/p')"
    log "$name: Elasticsearch $version ready on 127.0.0.1:$port in $(elapsed "${ES_T0[$name]}") s (heap $(es_heap "$name"))"
}

start_elasticsearch() {
    maven_build "$1" "$(es_src "$1")" && launch_elasticsearch "$1" && wait_elasticsearch "$1"
}

# ------------------------------------------------ 3-node OpenSearch cluster
#
# Started only on request (`start-cluster`, e.g. by logship/tests/es_cluster.rs):
# three OpenSearch JVMs from the same launcher as the single node, each with its
# own HTTP and transport port, discovering each other through discovery.seed_hosts.

CLUSTER_T0=""

# launch_cluster_node N KEEP_DATA(0|1)
launch_cluster_node() {
    local name="oscluster$1" dir="$SERVICES_DIR/cluster/oscluster$1" seeds="" names="" i
    for i in 1 2 3; do
        seeds+="${seeds:+,}127.0.0.1:$(kv_get "$PORTS_FILE" "oscluster${i}_transport")"
        names+="${names:+,}oscluster$i"
    done
    mkdir -p "$dir"
    OS_HTTP_PORT="$(kv_get "$PORTS_FILE" "$name")" OS_TRANSPORT_PORT="$(kv_get "$PORTS_FILE" "${name}_transport")" \
        OS_HOME="$dir/home" OS_NODE_NAME="$name" OS_CLUSTER_NAME=test-services-cluster \
        OS_SEED_HOSTS="$seeds" OS_INITIAL_CLUSTER_MANAGER_NODES="$names" OS_KEEP_DATA="$2" \
        java -Xms"$CLUSTER_HEAP" -Xmx"$CLUSTER_HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Djava.locale.providers=SPI,COMPAT -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
        -Dlog4j2.disable.jmx=true -Dlog4j.shutdownHookEnabled=false \
        -Dopensearch.set.netty.runtime.available.processors=false -Dopensearch.distribution.type=tar \
        -Dtest.services.dir="$SERVICES_DIR" -Dtest.services.node="$name" \
        -cp "$OS_SRC/target/classes:$(cat "$OS_SRC/target/cp.txt")" Launcher \
        </dev/null >>"$dir/opensearch.log" 2>&1 &
    kv_set "$PIDS_FILE" "$name" "$!"
}

# wait_cluster N...: the listed nodes are up, and node 1 (or the first listed)
# sees all three with every shard allocated (green).
wait_cluster() {
    local n port deadline=$((SECONDS + OS_TIMEOUT))
    for n in "$@"; do
        port="$(kv_get "$PORTS_FILE" "oscluster$n")"
        until curl -sf "http://127.0.0.1:$port/_cluster/health?wait_for_nodes=3&wait_for_status=green&timeout=5s" >/dev/null 2>&1; do
            if ! alive "$(kv_get "$PIDS_FILE" "oscluster$n")" || ((SECONDS >= deadline)); then
                show_log "oscluster$n" "$SERVICES_DIR/cluster/oscluster$n/opensearch.log"
                return 1
            fi
            sleep 0.3
        done
    done
}

cluster_urls() {
    local i urls=""
    for i in 1 2 3; do urls+="${urls:+,}http://127.0.0.1:$(kv_get "$PORTS_FILE" "oscluster$i")"; done
    echo "$urls"
}

# rss_mib PID: resident memory of a process in MiB.
rss_mib() { awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }

cmd_start_cluster() {
    local i name rss=""
    if [[ ! -e "$SERVICES_DIR/.test-services" ]]; then
        [[ -z "$(ls -A "$SERVICES_DIR")" ]] || die "$SERVICES_DIR was not made by this script; run '$0 start' first"
        touch "$SERVICES_DIR/.test-services"
    fi
    cmd_stop_cluster
    rm -rf "$SERVICES_DIR/cluster"
    mkdir -p "$SERVICES_DIR/cluster"
    for name in "${CLUSTER_NODES[@]}"; do
        kv_del "$PORTS_FILE" "$name"
        kv_del "$PORTS_FILE" "${name}_transport"
    done
    for name in "${CLUSTER_NODES[@]}"; do
        pick_port "$name"
        pick_port "${name}_transport"
    done
    opensearch_build || die "the OpenSearch launcher did not build"
    CLUSTER_T0="$(now)"
    for i in 1 2 3; do launch_cluster_node "$i" 0; done
    wait_cluster 1 || {
        cmd_stop_cluster
        die "the 3-node cluster did not form"
    }
    for name in "${CLUSTER_NODES[@]}"; do rss+="${rss:+ }$(rss_mib "$(kv_get "$PIDS_FILE" "$name")")"; done
    log "cluster: 3 OpenSearch nodes green in $(elapsed "$CLUSTER_T0") s (heap $CLUSTER_HEAP each, RSS MiB: $rss)"
    echo "TEST_OPENSEARCH_CLUSTER_URLS=$(cluster_urls)"
}

cmd_stop_cluster() {
    local name
    [[ -f "$PIDS_FILE" ]] || return 0
    for name in "${CLUSTER_NODES[@]}"; do stop_one "$name"; done
}

check_node() {
    [[ "${1:-}" =~ ^[123]$ ]] || die "expected a cluster node number 1..3, got '${1:-}'"
    [[ -n "$(kv_get "$PORTS_FILE" "oscluster$1")" ]] || die "the cluster is not started; run '$0 start-cluster' first"
}

cmd_kill_node() {
    check_node "$1"
    local name="oscluster$1" pid
    pid="$(kv_get "$PIDS_FILE" "$name")"
    kv_del "$PIDS_FILE" "$name"
    if [[ -n "$pid" ]] && is_ours "$name" "$pid"; then
        kill -s KILL "$pid"
        while alive "$pid"; do sleep 0.05; done
        log "$name killed (SIGKILL, pid $pid)"
    else
        log "$name is not running"
    fi
}

cmd_start_node() {
    check_node "$1"
    local name="oscluster$1" pid t0
    pid="$(kv_get "$PIDS_FILE" "$name")"
    if [[ -n "$pid" ]] && is_ours "$name" "$pid"; then
        log "$name is already running (pid $pid)"
        return 0
    fi
    wait_port_free "$(kv_get "$PORTS_FILE" "$name")" 30 || die "port of $name is still in use"
    wait_port_free "$(kv_get "$PORTS_FILE" "${name}_transport")" 30 || die "transport port of $name is still in use"
    t0="$(now)"
    launch_cluster_node "$1" 1
    wait_cluster "$1" || die "$name did not rejoin the cluster"
    log "$name rejoined, cluster green in $(elapsed "$t0") s"
}

# ------------------------------------------------- TLS proxy (nginx) and its CA
#
# What a self-hosted secured cluster often looks like: nginx terminates TLS and
# checks credentials in front of the search node. Everything is made fresh at
# each `start` under $SERVICES_DIR/tls (certificates, keys, passwords) and
# $SERVICES_DIR/nginx (config, logs, temp files); the search node itself stays
# plain HTTP. Four listeners, all proxying to the OpenSearch node:
#   nginx             server cert for 127.0.0.1/localhost; HTTP basic auth, or
#                     `Authorization: ApiKey base64(ID:KEY)` with the one API key
#   nginx_mtls        the same certificate; requires a client certificate signed
#                     by the test CA (no other credentials)
#   nginx_expired     an expired server certificate (signed by the test CA)
#   nginx_wrong_name  a certificate for wrong-name.invalid only
# The last two take the same credentials as the first.

TLS_DIR="$SERVICES_DIR/tls"
TLS_USER=logship
TLS_API_KEY_ID=logship-test

pick_tls_ports() {
    local name
    for name in nginx_mtls nginx_expired nginx_wrong_name; do pick_port "$name"; done
}

# tls_sign CSR OUT EXTENSIONS [openssl ca options...]: a certificate signed by
# the test CA (openssl ca, so that validity dates in the past are possible).
tls_sign() {
    local csr="$1" out="$2" ext="$3"
    shift 3
    printf '%b' "$ext" >"$TLS_DIR/ext.cnf"
    openssl ca -batch -config "$TLS_DIR/ca.cnf" -cert "$TLS_DIR/ca.crt" -keyfile "$TLS_DIR/ca.key" \
        -in "$csr" -out "$out" -extfile "$TLS_DIR/ext.cnf" -notext "$@"
}

# tls_key_and_csr NAME CN: NAME.key (RSA 2048, unencrypted) and NAME.csr.
tls_key_and_csr() {
    openssl req -new -newkey rsa:2048 -nodes -keyout "$TLS_DIR/$1.key" -out "$TLS_DIR/$1.csr" -subj "/CN=$2"
}

# make_tls_material: the CA, the certificates, the client key in encrypted form,
# the passwords, the htpasswd file. Logged to $TLS_DIR/openssl.log.
make_tls_material() {
    local d="$TLS_DIR" server_ext client_ext rc=0
    rm -rf "$d"
    mkdir -p "$d/ca-db"
    # In the background and waited for: in a subshell tested with `||`, bash
    # would ignore `set -e` and carry on after a failed step.
    (
        set -e
        cd "$d"
        : >ca-db/index.txt
        echo 1000 >ca-db/serial
        cat >ca.cnf <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
database = $d/ca-db/index.txt
new_certs_dir = $d/ca-db
serial = $d/ca-db/serial
default_md = sha256
default_days = 30
policy = any_name
unique_subject = no
[ any_name ]
commonName = supplied
CNF
        # The CA whose certificate the clients are given (ca_file), and another one
        # that signed nothing here (the wrong-CA case).
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
            -subj "/CN=logship test CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.crt -days 30 \
            -subj "/CN=some other CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        server_ext='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n'
        client_ext='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'
        tls_key_and_csr server localhost
        tls_sign server.csr server.crt "${server_ext}subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        tls_key_and_csr expired localhost
        tls_sign expired.csr expired.crt "${server_ext}subjectAltName=IP:127.0.0.1,DNS:localhost\n" \
            -startdate 20250101000000Z -enddate 20250201000000Z
        tls_key_and_csr wrong-name wrong-name.invalid
        tls_sign wrong-name.csr wrong-name.crt "${server_ext}subjectAltName=DNS:wrong-name.invalid\n"
        tls_key_and_csr client logship-client
        tls_sign client.csr client.crt "$client_ext"
        # A client certificate from the other CA: refused by the mutual-TLS listener.
        tls_key_and_csr other-client logship-client
        printf '%b' "$client_ext" >other-client.ext
        openssl x509 -req -in other-client.csr -CA other-ca.crt -CAkey other-ca.key \
            -set_serial 7 -days 30 -extfile other-client.ext -out other-client.crt
        # The same client key as PKCS#8 encrypted with a passphrase (client_key_pass).
        openssl rand -hex 12 >client-key-pass
        openssl pkcs8 -topk8 -v2 aes-256-cbc -in client.key -out client-encrypted.key \
            -passout "file:client-key-pass"
        openssl rand -hex 12 >password
        openssl rand -hex 16 >api-key
        printf '%s:%s\n' "$TLS_USER" "$(openssl passwd -apr1 -in password)" >htpasswd
        chmod 600 ./*.key password api-key client-key-pass
    ) >"$d/openssl.log" 2>&1 &
    wait $! || rc=$?
    if ((rc != 0)); then
        show_log nginx "$d/openssl.log"
        return 1
    fi
}

# nginx_server PORT CERT KEY EXTRA: one TLS listener proxying to the search node.
nginx_server() {
    cat <<CONF
    server {
        listen 127.0.0.1:$1 ssl;
        ssl_certificate $2;
        ssl_certificate_key $3;
$4
        location / {
            proxy_pass http://search;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_read_timeout 120s;
        }
    }
CONF
}

write_nginx_conf() {
    local dir="$SERVICES_DIR/nginx" d="$TLS_DIR" api_key_header user_line="" auth
    api_key_header="ApiKey $(printf '%s:%s' "$TLS_API_KEY_ID" "$(cat "$d/api-key")" | base64 -w0)"
    # As root, nginx would switch its worker to `nobody`, who cannot read the
    # htpasswd file under the services dir.
    ((EUID == 0)) && user_line="user root root;"
    mkdir -p "$dir/tmp"
    auth="        auth_basic \$auth_realm;
        auth_basic_user_file $d/htpasswd;"
    cat >"$dir/nginx.conf" <<CONF
# Written by scripts/test-services.sh at each start.
$user_line
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 512; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    client_max_body_size 200m;
    # The API-key header below is longer than the default bucket holds.
    map_hash_bucket_size 256;
    ssl_protocols TLSv1.2 TLSv1.3;
    upstream search {
        server 127.0.0.1:$(kv_get "$PORTS_FILE" opensearch);
        keepalive 16;
    }
    # The API-key rule: this exact header switches basic auth off ("off" as the
    # realm); anything else must pass basic auth.
    map \$http_authorization \$auth_realm {
        "$api_key_header" off;
        default "search";
    }
$(nginx_server "$(kv_get "$PORTS_FILE" nginx)" "$d/server.crt" "$d/server.key" "$auth")
$(nginx_server "$(kv_get "$PORTS_FILE" nginx_mtls)" "$d/server.crt" "$d/server.key" "        ssl_client_certificate $d/ca.crt;
        ssl_verify_client on;")
$(nginx_server "$(kv_get "$PORTS_FILE" nginx_expired)" "$d/expired.crt" "$d/expired.key" "$auth")
$(nginx_server "$(kv_get "$PORTS_FILE" nginx_wrong_name)" "$d/wrong-name.crt" "$d/wrong-name.key" "$auth")
}
CONF
}

start_nginx() {
    local dir="$SERVICES_DIR/nginx" port t0 pid
    port="$(kv_get "$PORTS_FILE" nginx)"
    mkdir -p "$dir"
    t0="$(now)"
    write_nginx_conf
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" </dev/null >>"$dir/nginx.out" 2>&1 &
    pid=$!
    kv_set "$PIDS_FILE" nginx "$pid"
    local deadline=$((SECONDS + TIMEOUT))
    # Up when the main listener answers 401 to a request without credentials.
    until [[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TLS_DIR/ca.crt" "https://127.0.0.1:$port/" 2>/dev/null)" == 401 ]]; do
        if ! alive "$pid" || ((SECONDS >= deadline)); then
            show_log nginx "$dir/error.log"
            return 1
        fi
        sleep 0.1
    done
    log "nginx: nginx $(nginx -v 2>&1 | sed 's|.*/||') (TLS, basic auth, API key, mutual TLS) ready on 127.0.0.1:$port in $(elapsed "$t0") s"
}

print_tls_env() {
    local d="$TLS_DIR"
    cat <<EOT
TEST_ELASTICSEARCH_TLS_URL=https://$TLS_USER:$(cat "$d/password")@127.0.0.1:$(kv_get "$PORTS_FILE" nginx)
TEST_ELASTICSEARCH_CA_FILE=$d/ca.crt
TEST_ELASTICSEARCH_WRONG_CA_FILE=$d/other-ca.crt
TEST_ELASTICSEARCH_API_KEY=$TLS_API_KEY_ID:$(cat "$d/api-key")
TEST_ELASTICSEARCH_MTLS_URL=https://127.0.0.1:$(kv_get "$PORTS_FILE" nginx_mtls)
TEST_ELASTICSEARCH_CLIENT_CERT=$d/client.crt
TEST_ELASTICSEARCH_CLIENT_KEY=$d/client.key
TEST_ELASTICSEARCH_CLIENT_KEY_ENCRYPTED=$d/client-encrypted.key
TEST_ELASTICSEARCH_CLIENT_KEY_PASS=$(cat "$d/client-key-pass")
TEST_ELASTICSEARCH_OTHER_CLIENT_CERT=$d/other-client.crt
TEST_ELASTICSEARCH_OTHER_CLIENT_KEY=$d/other-client.key
TEST_ELASTICSEARCH_EXPIRED_URL=https://$TLS_USER:$(cat "$d/password")@127.0.0.1:$(kv_get "$PORTS_FILE" nginx_expired)
TEST_ELASTICSEARCH_WRONG_NAME_URL=https://$TLS_USER:$(cat "$d/password")@127.0.0.1:$(kv_get "$PORTS_FILE" nginx_wrong_name)
EOT
}

# ---------------------------------------------------------------------- stop

# stop_one NAME: graceful signal, then SIGKILL after a timeout.
stop_one() {
    local name="$1" pid sig=TERM deadline t0
    pid="$(kv_get "$PIDS_FILE" "$name")"
    kv_del "$PIDS_FILE" "$name"
    if [[ -z "$pid" ]] || ! is_ours "$name" "$pid"; then
        return 0
    fi
    [[ "$name" == postgres ]] && sig=INT # "fast" shutdown: do not wait for clients
    t0="$(now)"
    kill -s "$sig" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 30))
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            log "$name (pid $pid) did not stop in 30 s; killing it"
            # PostgreSQL's backends first, while they are still the postmaster's children
            if [[ "$name" == postgres ]]; then pkill -KILL -P "$pid" 2>/dev/null || true; fi
            kill -s KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.1
    done
    log "$name stopped (pid $pid) in $(elapsed "$t0") s"
}

cmd_stop() {
    [[ -f "$PIDS_FILE" ]] || return 0
    local name
    # One after the other, in reverse start order; each waits for its process to exit.
    for name in "${CLUSTER_NODES[@]}" elasticsearch8 elasticsearch7 nginx opensearch redis postgres mysql; do stop_one "$name"; done
    rm -f "$PIDS_FILE"
}

# ---------------------------------------------------------------------- start

print_env() {
    if wanted mysql; then echo "TEST_MYSQL_URL=mysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$(kv_get "$PORTS_FILE" mysql)/$DB_NAME"; fi
    if wanted postgres; then echo "TEST_POSTGRES_URL=postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$(kv_get "$PORTS_FILE" postgres)/$DB_NAME"; fi
    if wanted redis; then echo "TEST_REDIS_URL=redis://127.0.0.1:$(kv_get "$PORTS_FILE" redis)/"; fi
    if wanted opensearch; then echo "TEST_ELASTICSEARCH_URL=http://127.0.0.1:$(kv_get "$PORTS_FILE" opensearch)"; fi
    if wanted elasticsearch7; then echo "TEST_ELASTICSEARCH7_URL=http://127.0.0.1:$(kv_get "$PORTS_FILE" elasticsearch7)"; fi
    if wanted elasticsearch8; then echo "TEST_ELASTICSEARCH8_URL=http://127.0.0.1:$(kv_get "$PORTS_FILE" elasticsearch8)"; fi
    echo "TEST_SERVICES_SCRIPT=$SCRIPT"
    echo "TEST_SERVICES_DIR=$SERVICES_DIR"
}

# on_start_failure NAME: report, stop what was started, exit non-zero.
on_start_failure() {
    log "error: $1 did not start; stopping the services started so far"
    cmd_stop
    exit 1
}

cmd_start() {
    local t0 name
    t0="$(now)"
    if (($# > 0)); then
        for name in "$@"; do check_name "$name" any; done
        WANTED=("$@")
    fi
    cmd_install
    # Leftovers of an earlier run (crashed test, missing stop) go first.
    cmd_stop
    # Fresh state. The PostgreSQL data may live outside (see pg_datadir).
    local old_pg
    old_pg="$(kv_get "$PORTS_FILE" postgres_dir)"
    [[ -n "$old_pg" && "$old_pg" == /tmp/test-services-postgres-* ]] && rm -rf "$old_pg"
    # Refuse to wipe a directory this script did not create (SERVICES_DIR=~ ...).
    if [[ -n "$(ls -A "$SERVICES_DIR")" && ! -e "$SERVICES_DIR/.test-services" ]]; then
        die "$SERVICES_DIR is not empty and was not made by this script; not wiping it"
    fi
    rm -rf "$SERVICES_DIR"
    mkdir -p "$SERVICES_DIR"
    touch "$SERVICES_DIR/.test-services"
    : >"$PIDS_FILE"
    : >"$PORTS_FILE"
    for name in "${WANTED[@]}"; do pick_port "$name"; done
    if wanted opensearch; then pick_port opensearch_transport; fi
    if wanted nginx; then pick_tls_ports; fi
    if wanted elasticsearch7; then pick_port elasticsearch7_transport; fi
    if wanted elasticsearch8; then pick_port elasticsearch8_transport; fi

    # The search nodes take longest: launch their JVMs first, start the others
    # while they boot, then wait for them.
    if wanted opensearch; then
        opensearch_build || on_start_failure opensearch
        launch_opensearch || on_start_failure opensearch
    fi
    for name in elasticsearch7 elasticsearch8; do
        if wanted "$name"; then
            maven_build "$name" "$(es_src "$name")" || on_start_failure "$name"
            launch_elasticsearch "$name" || on_start_failure "$name"
        fi
    done
    if wanted mysql; then start_mysql 1 || on_start_failure mysql; fi
    if wanted postgres; then start_postgres 1 || on_start_failure postgres; fi
    if wanted redis; then start_redis || on_start_failure redis; fi
    if wanted nginx; then
        make_tls_material || on_start_failure nginx
        start_nginx || on_start_failure nginx
    fi
    if wanted opensearch; then wait_opensearch || on_start_failure opensearch; fi
    for name in elasticsearch7 elasticsearch8; do
        if wanted "$name"; then wait_elasticsearch "$name" || on_start_failure "$name"; fi
    done

    { print_env && if wanted nginx; then print_tls_env; fi; } >"$ENV_FILE"
    log "${WANTED[*]} ready in $(elapsed "$t0") s; env in $ENV_FILE, logs under $SERVICES_DIR"
    cat "$ENV_FILE"
}

# check_name NAME [any]: a known service (and, without `any`, one that was started).
check_name() {
    case "${1:-}" in
    mysql | postgres | redis | opensearch | nginx | elasticsearch7 | elasticsearch8) ;;
    *) die "unknown service '${1:-}' (expected one of: ${ALL_SERVICES[*]})" ;;
    esac
    [[ "${2:-}" == any ]] && return 0
    [[ -n "$(kv_get "$PORTS_FILE" "$1")" ]] || die "$1 is not started (no port in $PORTS_FILE); run '$0 start' first"
}

cmd_stop_service() {
    check_name "$1"
    stop_one "$1"
}

cmd_start_service() {
    check_name "$1"
    local port pid
    port="$(kv_get "$PORTS_FILE" "$1")"
    pid="$(kv_get "$PIDS_FILE" "$1")"
    if [[ -n "$pid" ]] && is_ours "$1" "$pid"; then
        log "$1 is already running (pid $pid)"
        return 0
    fi
    wait_port_free "$port" 30 || die "port $port of $1 is still in use"
    case "$1" in
    mysql) start_mysql 0 ;;
    postgres) start_postgres 0 ;;
    redis) start_redis ;;
    opensearch) start_opensearch ;;
    elasticsearch7 | elasticsearch8) start_elasticsearch "$1" ;;
    nginx) start_nginx ;;
    esac || {
        stop_one "$1"
        die "$1 did not start again"
    }
}

case "${1:-}" in
install) cmd_install ;;
start)
    shift
    cmd_start "$@"
    ;;
stop) cmd_stop ;;
stop-service) cmd_stop_service "${2:-}" ;;
start-service) cmd_start_service "${2:-}" ;;
start-cluster) cmd_start_cluster ;;
stop-cluster) cmd_stop_cluster ;;
kill-node) cmd_kill_node "${2:-}" ;;
start-node) cmd_start_node "${2:-}" ;;
env)
    [[ -f "$ENV_FILE" ]] || die "services are not started"
    cat "$ENV_FILE"
    ;;
*)
    sed -n '2,/^set -euo/p' "$SCRIPT" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
