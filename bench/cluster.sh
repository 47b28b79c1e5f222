#!/usr/bin/env bash
# natter as a cluster (issue 25) on this machine: several natter-server nodes sharing
# one PostgreSQL and one Redis, against one node, and the message stores against each
# other. Run through `bench/run.sh --cluster [--full]` (or directly).
#
#   (a) N = 1 000 receivers in one room on ONE cluster node (PostgreSQL + Redis)
#   (b) the same room spread over TWO nodes: receivers round-robin, senders on node 1;
#       latency split by the receivers' node (the cross-node hop = p50 difference)
#   (c) the same on one standalone node (SQLite), for reference
#   (d) commit throughput: 64 senders, messages/s acknowledged (`ok`), SQLite node vs
#       a cluster node (PostgreSQL)
#
# Fan-out phases: flat out (throughput), then 100 and 500 messages/s (latency: at
# 500/s into 1 000 receivers, one message per tick already keeps the pinned core busy,
# so the 100/s phase shows the hop without queueing).
#
# Starts its own PostgreSQL (initdb and postgres from Debian's packages, as the
# postgres user through runuser when root, in a temporary directory, on a free loopback
# port; fsync stays on, like SQLite's synchronous = FULL) and redis-server (temporary
# directory, free port, --save "" --appendonly no); installs postgresql and
# redis-server with apt-get when missing. Every server (the nodes, PostgreSQL, Redis)
# is pinned to core 1 and the generator to core 0 when there are two cores or more, so
# one node and the cluster get the same CPU. Everything is stopped and the temporary
# directory removed on exit (trap). Writes:
#   bench/results/cluster-latest.json   small summary (committed)
#   bench/results/raw/STAMP-cluster.*   raw records and server logs (git-ignored)
set -euo pipefail

MODE=quick
for arg in "$@"; do
    case "$arg" in
        --cluster | --quick) ;;
        --full) MODE=full ;;
        -h | --help)
            sed -n '2,27p' "$0"
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (use --full, or nothing for quick settings)" >&2
            exit 2
            ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS="$ROOT/bench/results"
RAWDIR="$RESULTS/raw"
mkdir -p "$RAWDIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW="$RAWDIR/$STAMP-cluster.jsonl"
LOG="$RAWDIR/$STAMP-cluster"
TMP=$(mktemp -d /tmp/natter-cluster.XXXXXX)
chmod 755 "$TMP"
# Node name -> pid of the natter-server processes running now.
declare -A NODE_PID=()
PG_DATA="$TMP/pg/data"
PG_WRAPPER=""
REDIS_PID=""

log() { printf '\n== %s\n' "$*" >&2; }

stop_pid() {
    local pid=$1 sig=${2:-TERM}
    if [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null; then
        kill "-$sig" "$pid" 2> /dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    fi
}

stop_nodes() {
    local name
    for name in "${!NODE_PID[@]}"; do
        stop_pid "${NODE_PID[$name]}"
        unset "NODE_PID[$name]"
    done
}

stop_postgres() {
    # Fast shutdown of the postmaster (by its pid: runuser stands between it and us).
    if [ -f "$PG_DATA/postmaster.pid" ]; then
        local pm
        pm=$(head -1 "$PG_DATA/postmaster.pid")
        kill -INT "$pm" 2> /dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pm" 2> /dev/null || break
            sleep 0.1
        done
        kill -KILL "$pm" 2> /dev/null || true
    fi
    stop_pid "$PG_WRAPPER"
    PG_WRAPPER=""
}

cleanup() {
    stop_nodes || true
    stop_pid "$REDIS_PID" || true
    stop_postgres || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- packages ----------------------------------------------------------------------------
# `name` on PATH, else in the newest /usr/lib/postgresql/*/bin.
pg_bin() {
    local found
    found=$(command -v "$1" 2> /dev/null || true)
    if [ -z "$found" ]; then
        found=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2> /dev/null | sort -V | tail -1 || true)
    fi
    echo "$found"
}
need=()
command -v redis-server > /dev/null || need+=(redis-server)
[ -n "$(pg_bin initdb)" ] && [ -n "$(pg_bin postgres)" ] || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" > /dev/null
fi
INITDB=$(pg_bin initdb)
POSTGRES=$(pg_bin postgres)
CREATEDB=$(pg_bin createdb)
[ -n "$CREATEDB" ] || CREATEDB="$(dirname "$POSTGRES")/createdb"

# --- limits and build ----------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
log "file descriptor limit: $(ulimit -n)"
log "building natter-server and natter-bench (release)"
(cd "$ROOT" && timeout 900 cargo build --release -q -p natter-server -p natter-bench)
NS="$ROOT/target/release/natter-server"
NB="$ROOT/target/release/natter-bench"

if [ "$(nproc)" -ge 2 ]; then
    SRV_PIN=(taskset -c 1)
    GEN_PIN=(taskset -c 0)
    PINNED=(--pinned)
else
    SRV_PIN=()
    GEN_PIN=()
    PINNED=()
fi

if [ "$MODE" = quick ]; then
    PHASES=flat:40000:6,rate:100:4,rate:500:4
    COMMIT_SECS=5
    STEP_TIMEOUT=600
else
    PHASES=flat:200000:15,rate:100:10,rate:500:10,rate:5000:10
    COMMIT_SECS=15
    STEP_TIMEOUT=1200
fi
N=1000
SENDERS=4
COMMIT_SENDERS=64
COMMIT_WINDOW=16

# --- ports -----------------------------------------------------------------------------------
USED_PORTS=" "
# Sets FREE_PORT to a loopback port nobody listens on, not handed out before in this run.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 30000))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if ! (exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null; then
            USED_PORTS="$USED_PORTS$p "
            FREE_PORT=$p
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

wait_port() {
    local port=$1 what=$2
    for _ in $(seq 1 300); do
        if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "$what on port $port did not come up (see $LOG-*.log)" >&2
    return 1
}

# --- PostgreSQL and Redis --------------------------------------------------------------------
free_port
PG_PORT=$FREE_PORT
free_port
REDIS_PORT=$FREE_PORT
log "starting PostgreSQL on 127.0.0.1:$PG_PORT and Redis on 127.0.0.1:$REDIS_PORT"
mkdir -p "$TMP/pg" "$TMP/redis"
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root.
    chown -R postgres: "$TMP/pg"
    AS_PG=(runuser -u postgres --)
fi
"${AS_PG[@]}" "$INITDB" -D "$PG_DATA" -U natter -A trust -E UTF8 --locale=C \
    > "$LOG-initdb.log" 2>&1
"${SRV_PIN[@]}" "${AS_PG[@]}" "$POSTGRES" -D "$PG_DATA" -h 127.0.0.1 -p "$PG_PORT" \
    -k "$TMP/pg" -c max_connections=300 >> "$LOG-postgres.log" 2>&1 &
PG_WRAPPER=$!
wait_port "$PG_PORT" PostgreSQL
for _ in $(seq 1 100); do
    if "${AS_PG[@]}" "$CREATEDB" -h 127.0.0.1 -p "$PG_PORT" -U natter natter 2> /dev/null; then
        break
    fi
    sleep 0.2
done
PG_URL="postgres://natter@127.0.0.1:$PG_PORT/natter"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"

"${SRV_PIN[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" \
    --save "" --appendonly no --maxclients 30000 --daemonize no --protected-mode no \
    >> "$LOG-redis.log" 2>&1 &
REDIS_PID=$!
wait_port "$REDIS_PORT" Redis

# --- nodes -------------------------------------------------------------------------------------
# start_node NAME cluster|sqlite: its pid goes to NODE_PID[NAME], its port to
# NODE_PORT[NAME].
declare -A NODE_PORT=()
start_node() {
    local name=$1 how=$2 port
    free_port
    port=$FREE_PORT
    local extra=()
    if [ "$how" = cluster ]; then
        extra=(--cluster-postgres "$PG_URL" --cluster-redis "$REDIS_URL" --node-id "$name")
    fi
    mkdir -p "$TMP/data-$name"
    "${SRV_PIN[@]}" "$NS" --plaintext --listen "127.0.0.1:$port" --web-listen off \
        --irc-listen off --data-dir "$TMP/data-$name" "${extra[@]}" \
        --message-rate 1000000 --message-burst 1000000 \
        --max-connections 30000 --max-connections-per-ip 30000 \
        --session-queue 16384 --history-on-join 0 \
        --auth-timeout-secs 120 --ping-interval-secs 600 --ping-timeout-secs 600 \
        >> "$LOG-$name.log" 2>&1 &
    NODE_PID[$name]=$!
    NODE_PORT[$name]=$port
    if ! wait_port "$port" "natter node $name"; then
        tail -20 "$LOG-$name.log" >&2 || true
        return 1
    fi
}

addr() { echo "127.0.0.1:${NODE_PORT[$1]}"; }

# bench STORE SUBCOMMAND ARGS...: one natter-bench step, bounded in time; a failed or
# timed-out step is reported and the run goes on. --pid is node 1's.
bench() {
    local store=$1 sub=$2
    shift 2
    if ! timeout -k 5 "$STEP_TIMEOUT" "${GEN_PIN[@]}" "$NB" "$sub" --kind natter \
        --store "$store" --out "$RAW" "${PINNED[@]}" "$@"; then
        echo "step '$sub $*' ($store) failed or timed out" >&2
    fi
}

register() {
    timeout 1800 "$NB" register --kind natter --addr "$1" --parallel 8 \
        --receivers "$N" --senders "$SENDERS" --commit "$COMMIT_SENDERS"
}

# --- the run ---------------------------------------------------------------------------------
log "(a) cluster, one node: registering accounts (setup), then fan-out N=$N"
start_node n1 cluster
register "$(addr n1)"
bench postgres fanout --addr "$(addr n1)" --pid "${NODE_PID[n1]}" --ns "$N" \
    --senders "$SENDERS" --window 128 --phases "$PHASES" --parallel 64
stop_nodes

log "(b) cluster, two nodes: receivers spread, senders on node 1"
start_node n1 cluster
start_node n2 cluster
bench postgres fanout --addr "$(addr n1),$(addr n2)" --pid "${NODE_PID[n1]}" --ns "$N" \
    --senders "$SENDERS" --window 128 --phases "$PHASES" --parallel 64

log "(d) commit throughput on a cluster node (PostgreSQL)"
stop_nodes
start_node n1 cluster
bench postgres commit --addr "$(addr n1)" --pid "${NODE_PID[n1]}" \
    --senders "$COMMIT_SENDERS" --secs "$COMMIT_SECS" --window "$COMMIT_WINDOW"
stop_nodes

log "(c) one node alone (SQLite): registering accounts (setup), then fan-out N=$N"
start_node solo sqlite
register "$(addr solo)"
bench sqlite fanout --addr "$(addr solo)" --pid "${NODE_PID[solo]}" --ns "$N" \
    --senders "$SENDERS" --window 128 --phases "$PHASES" --parallel 64

log "(d) commit throughput on one node alone (SQLite)"
bench sqlite commit --addr "$(addr solo)" --pid "${NODE_PID[solo]}" \
    --senders "$COMMIT_SENDERS" --secs "$COMMIT_SECS" --window "$COMMIT_WINDOW"
stop_nodes

# --- report ----------------------------------------------------------------------------------
SUMMARY="$RESULTS/cluster-latest.json"
log "results (cluster, $MODE mode, $STAMP)"
"$NB" report --input "$RAW" --summary "$SUMMARY" \
    --label "cluster $MODE mode, $STAMP, servers (nodes, PostgreSQL, Redis) pinned to core 1 and generator to core 0"
echo
echo "raw records: $RAW"
echo "summary:     $SUMMARY"
