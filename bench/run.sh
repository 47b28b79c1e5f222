#!/usr/bin/env bash
# Benchmarks natter against Redis pub/sub and ngircd with the same workloads, in one run
# on this machine, and prints a table of natter's figures and the ratios.
#
#   bench/run.sh           quick mode (a few minutes): N = 100 and 1000
#   bench/run.sh --full    full mode: also N = 10 000, longer phases
#   bench/run.sh --irc     natter's IRC gateway against ngircd only: fan-out into 1 000
#                          and 10 000 users joining one room
#   bench/run.sh --cluster natter as a cluster (PostgreSQL + Redis): a room of 1 000 on one
#                          node vs spread over two, and commit throughput PostgreSQL vs
#                          SQLite (bench/cluster.sh; add --full for longer phases)
#   bench/run.sh --pair W  one workload only, natter and Redis alternately three times
#                          each (a fresh server every time), pinned and then unpinned;
#                          prints every pair's ratio and the median. W is one of
#                          fanout100, fanout1000, tls1000 (natter over TLS against Redis
#                          in plaintext), private, storm, idle, idle-tls; add --full for
#                          the full mode's sizes (longer phases, a storm of 2 000)
#
# Workloads per server: fan-out (pinned and unpinned), idle connections, private
# messages, a login storm and N users joining one room; natter also over TLS and over
# its IRC gateway (natter-server --irc-listen, "natter IRC", compared with ngircd).
#
# Installs redis-server and ngircd with apt-get when missing, builds natter-server and
# natter-bench in release mode, starts each server itself (pinned to core 1 with taskset
# when the machine has two or more cores; the generator runs on core 0), stops them on
# exit (trap), and writes:
#   bench/results/latest.json        small summary of this run (committed; --irc writes
#                                    bench/results/raw/STAMP-irc-summary.json instead)
#   bench/results/raw/*.jsonl, *.log raw records and server logs (git-ignored)
# Every step has a timeout so the script cannot hang; everything runs on 127.0.0.1.
set -euo pipefail

MODE=quick
for arg in "$@"; do
    if [ "$arg" = --cluster ]; then
        exec bash "$(dirname "$0")/cluster.sh" "$@"
    fi
done
PAIR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) MODE=quick ;;
        --full) MODE=full ;;
        --irc) MODE=irc ;;
        --pair)
            PAIR=${2:-}
            case "$PAIR" in
                fanout100 | fanout1000 | tls1000 | private | storm | idle | idle-tls) ;;
                *)
                    echo "--pair needs a workload: fanout100, fanout1000, tls1000, private, storm, idle or idle-tls" >&2
                    exit 2
                    ;;
            esac
            shift
            ;;
        -h | --help)
            sed -n '2,30p' "$0"
            exit 0
            ;;
        *)
            echo "unknown argument: $1 (use --quick, --full, --irc, --cluster or --pair WORKLOAD)" >&2
            exit 2
            ;;
    esac
    shift
done
if [ -n "$PAIR" ] && [ "$MODE" = irc ]; then
    echo "--pair compares natter with Redis; it does not combine with --irc" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS="$ROOT/bench/results"
RAWDIR="$RESULTS/raw"
mkdir -p "$RAWDIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW="$RAWDIR/$STAMP-$MODE${PAIR:+-pair-$PAIR}.jsonl"
TMP=$(mktemp -d /tmp/natter-bench.XXXXXX)
SERVER_PID=""

cleanup() {
    stop_server || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '\n== %s\n' "$*" >&2; }

# --- packages --------------------------------------------------------------------------
need=()
command -v redis-server > /dev/null || need+=(redis-server)
command -v ngircd > /dev/null && [ -x "$(command -v ngircd)" ] || need+=(ngircd)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" > /dev/null
fi
# Debian starts packaged services on installation; this run wants its own instances only.
for svc in redis-server ngircd; do
    if command -v systemctl > /dev/null && systemctl is-active --quiet "$svc" 2> /dev/null; then
        echo "note: the system's $svc service is running; it is left alone (other ports)" >&2
    fi
done

# --- limits and build ------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
NOFILE=$(ulimit -n)
log "file descriptor limit: $NOFILE"

log "building natter-server and natter-bench (release)"
(cd "$ROOT" && timeout 900 cargo build --release -q -p natter-server -p natter-bench)
NS="$ROOT/target/release/natter-server"
NB="$ROOT/target/release/natter-bench"

CORES=$(nproc)
if [ "$CORES" -ge 2 ]; then
    SRV_PIN=(taskset -c 1)
    GEN_PIN=(taskset -c 0)
    PINNED=(--pinned)
else
    SRV_PIN=()
    GEN_PIN=()
    PINNED=()
fi

NATTER_PORT=19999
# natter's IRC gateway (the same natter-server, also listening with --irc-listen).
NATTER_IRC_PORT=16668
REDIS_PORT=16379
IRC_PORT=16667

# --- workload sizes ----------------------------------------------------------------------
if [ "$MODE" = quick ]; then
    FAN_NS=100,1000
    PHASES=flat:40000:6,rate:500:4,rate:1000:4,rate:5000:4
    TLS_PHASES=flat:40000:6,rate:500:4
    IDLE_NS=(1000)
    PRIVATE_SECS=5
    STORM=500
    JOIN_N=1000
    STEP_TIMEOUT=400
elif [ "$MODE" = irc ]; then
    # The issue's IRC targets: N = 1 000 flat (natter IRC >= 3x ngircd) and 10 000
    # users joining one room (natter IRC < 10 s). Logging 10 000 natter users in
    # (Argon2id each) takes minutes, so the steps get more time.
    FAN_NS=1000
    PHASES=flat:40000:6,rate:500:4
    IDLE_NS=(0)
    PRIVATE_SECS=5
    STORM=0
    JOIN_N=10000
    STEP_TIMEOUT=1500
else
    FAN_NS=100,1000,10000
    PHASES=flat:200000:15,rate:500:10,rate:1000:10,rate:5000:10
    TLS_PHASES=flat:200000:15,rate:500:10
    IDLE_NS=(1000 10000)
    PRIVATE_SECS=15
    STORM=2000
    JOIN_N=10000
    STEP_TIMEOUT=1500
fi
# The join workload's measured part (joins, then one probe message to all) is bounded
# by this; a server that has not finished by then gets a failed row, not a hang.
JOIN_TIMEOUT=60
MAXN=${FAN_NS##*,}
MAXIDLE=${IDLE_NS[-1]}
if [ "$MODE" = irc ]; then
    SERVERS=(natter-irc ngircd)
    PRIVATE_USERS=0
else
    SERVERS=(natter natter-irc redis ngircd)
    PRIVATE_USERS=1000
fi

# --- servers -----------------------------------------------------------------------------
wait_port() {
    local port=$1
    for _ in $(seq 1 100); do
        if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "server on port $port did not come up" >&2
    return 1
}

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2> /dev/null; then
        kill -TERM "$SERVER_PID" 2> /dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2> /dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2> /dev/null || true
        wait "$SERVER_PID" 2> /dev/null || true
    fi
    SERVER_PID=""
}

# start_server natter|natter-tls|redis|ngircd [pinned|unpinned]
start_server() {
    local which=$1 pin=${2:-pinned}
    local pre=()
    [ "$pin" = pinned ] && pre=("${SRV_PIN[@]}")
    stop_server
    case "$which" in
        natter | natter-tls | natter-irc)
            local tlsflag=(--plaintext) irc=(--irc-listen off)
            [ "$which" = natter-tls ] && tlsflag=()
            [ "$which" = natter-irc ] && irc=(--irc-listen "127.0.0.1:$NATTER_IRC_PORT")
            "${pre[@]}" "$NS" "${tlsflag[@]}" --listen "127.0.0.1:$NATTER_PORT" "${irc[@]}" \
                --data-dir "$TMP/natter-data" --web-listen off \
                --message-rate 1000000 --message-burst 1000000 \
                --max-connections 30000 --max-connections-per-ip 30000 \
                --session-queue 16384 --history-on-join 0 \
                --auth-timeout-secs 120 --ping-interval-secs 600 --ping-timeout-secs 600 \
                >> "$RAWDIR/$STAMP-natter.log" 2>&1 &
            SERVER_PID=$!
            wait_port $NATTER_PORT
            if [ "$which" = natter-irc ]; then
                wait_port $NATTER_IRC_PORT
            fi
            ;;
        redis)
            # No persistence; the default pub/sub output buffer limits stay.
            "${pre[@]}" redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" \
                --appendonly no --maxclients 30000 --daemonize no --protected-mode no \
                >> "$RAWDIR/$STAMP-redis.log" 2>&1 &
            SERVER_PID=$!
            wait_port $REDIS_PORT
            ;;
        ngircd)
            "${pre[@]}" ngircd --nodaemon --config "$TMP/ngircd.conf" \
                >> "$RAWDIR/$STAMP-ngircd.log" 2>&1 &
            SERVER_PID=$!
            wait_port $IRC_PORT
            ;;
    esac
}

# ngircd configuration. Changes from the defaults, to let the same load through:
#  - MaxPenaltyTime = 0: disables ngircd's flood protection (command penalties that
#    throttle a client to about one command per second after a burst);
#  - MaxConnectionsIP = 0, MaxConnections = 0: no connection caps (default 5 per IP);
#  - MaxJoins = 0: no per-user channel limit; MaxNickLength = 31 for the bench names;
#  - PingTimeout/PongTimeout 600 s, so slow setup phases do not drop clients;
#  - DNS, Ident and PAM off: no lookups per connection on a machine without network.
# Not configurable and unchanged: the per-client write buffer limit (a client whose
# unsent output exceeds it is disconnected), which the in-flight window stays under.
cat > "$TMP/ngircd.conf" << EOF
[Global]
    Name = bench.irc
    Info = natter benchmark
    Listen = 127.0.0.1
    Ports = $IRC_PORT
    MotdPhrase = bench
    PidFile = $TMP/ngircd.pid
    ServerUID = $(id -u)
    ServerGID = $(id -g)
[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 31
    MaxPenaltyTime = 0
    PingTimeout = 600
    PongTimeout = 600
[Options]
    DNS = no
    Ident = no
    PAM = no
EOF

addr_of() {
    case "$1" in
        natter | natter-tls) echo "127.0.0.1:$NATTER_PORT" ;;
        natter-irc) echo "127.0.0.1:$NATTER_IRC_PORT" ;;
        redis) echo "127.0.0.1:$REDIS_PORT" ;;
        ngircd) echo "127.0.0.1:$IRC_PORT" ;;
    esac
}
kind_of() {
    case "$1" in
        natter | natter-tls) echo natter ;;
        natter-irc) echo natter-irc ;;
        redis) echo redis ;;
        ngircd) echo irc ;;
    esac
}

# bench SERVER PIN SUBCOMMAND ARGS...: one natter-bench step, bounded in time; a failed
# or timed-out step is reported and the run goes on.
bench() {
    local which=$1 pin=$2 sub=$3
    shift 3
    local extra=()
    [ "$which" = natter-tls ] && extra+=(--tls-cert "$TMP/natter-data/tls/cert.pem")
    [ "$pin" = pinned ] && extra+=("${PINNED[@]}")
    local gen=()
    [ "$pin" = pinned ] && gen=("${GEN_PIN[@]}")
    if ! timeout -k 5 "$STEP_TIMEOUT" "${gen[@]}" "$NB" "$sub" --kind "$(kind_of "$which")" \
        --addr "$(addr_of "$which")" --pid "$SERVER_PID" --out "$RAW" "${extra[@]}" "$@"; then
        echo "step '$sub $*' against $which failed or timed out" >&2
    fi
}

# --- alternating pairs (--pair) -----------------------------------------------------------
# pair_step SERVER PIN: one measurement of the chosen workload on a fresh server.
pair_step() {
    local server=$1 pin=$2
    start_server "$server" "$pin"
    case "$PAIR" in
        fanout100 | fanout1000 | tls1000)
            local n=1000
            [ "$PAIR" = fanout100 ] && n=100
            bench "$server" "$pin" fanout --ns $n --senders 4 --window 128 \
                --phases "${PHASES%%,*}" --parallel 64
            ;;
        private) bench "$server" "$pin" private --users 1000 --secs "$PRIVATE_SECS" --parallel 64 ;;
        storm)
            bench "$server" "$pin" storm --chat 100 --senders 4 --rate 500 --storm "$STORM" \
                --storm-parallel 1000 --parallel 64
            ;;
        idle | idle-tls) bench "$server" "$pin" idle --n 1000 --parallel 64 ;;
    esac
}

if [ -n "$PAIR" ]; then
    log "registering natter accounts for $PAIR (setup; Argon2id per account)"
    start_server natter unpinned
    timeout 1800 "$NB" register --kind natter --addr "127.0.0.1:$NATTER_PORT" --parallel 8 \
        --receivers 1000 --senders 4 --private 1000 --storm "$STORM" --idle 1000
    NATTER_SIDE=natter
    case "$PAIR" in tls1000 | idle-tls) NATTER_SIDE=natter-tls ;; esac
    for pin in pinned unpinned; do
        for i in 1 2 3; do
            log "$PAIR $pin, pair $i of 3: $NATTER_SIDE, then Redis"
            pair_step "$NATTER_SIDE" $pin
            pair_step redis $pin
        done
    done
    stop_server
    log "results ($PAIR, $MODE sizes, $STAMP)"
    "$NB" report --pairs --input "$RAW" \
        --label "pairs of $PAIR ($MODE sizes), $STAMP, natter and Redis alternately"
    echo
    echo "raw records: $RAW"
    exit 0
fi

# --- accounts (setup, not measured) ------------------------------------------------------
log "registering natter accounts (setup; Argon2id per account)"
start_server natter unpinned
timeout 1800 "$NB" register --kind natter --addr "127.0.0.1:$NATTER_PORT" --parallel 8 \
    --receivers "$MAXN" --senders 4 --private "$PRIVATE_USERS" --storm "$STORM" --idle "$MAXIDLE" \
    --join "$JOIN_N"

# --- the run -------------------------------------------------------------------------------
# natter-irc is natter-server with its IRC gateway on as well (same data directory, so
# the accounts registered above), measured over IRC like ngircd.
for server in "${SERVERS[@]}"; do
    # Logins in progress at once during setup, and in the login storm. ngircd listens
    # with a backlog of 10 connections: with 1 000 simultaneous connects it reset
    # connections ("Connection reset by peer"), and with 100 the overflowing SYNs were
    # retried after 1 s, so its storm ran at ~60 logins/s and setting up 1 000 receivers
    # took ~60 s; with 10 at once it logs in ~320 users/s. The others take 1 000.
    par=64
    storm_par=1000
    if [ "$server" = ngircd ]; then
        par=10
        storm_par=10
    fi
    log "$server: fan-out N=$FAN_NS (pinned)"
    start_server $server pinned
    bench $server pinned fanout --ns "$FAN_NS" --senders 4 --window 128 --phases "$PHASES" \
        --parallel $par
    if [ "$MODE" != irc ]; then
        log "$server: fan-out N=1000 flat (unpinned)"
        start_server $server unpinned
        bench $server unpinned fanout --ns 1000 --senders 4 --window 128 \
            --phases "${PHASES%%,*}" --parallel $par
        for n in "${IDLE_NS[@]}"; do
            log "$server: $n idle connections"
            start_server $server pinned
            bench $server pinned idle --n "$n" --parallel 64
        done
        log "$server: private messages, 1000 users"
        start_server $server pinned
        bench $server pinned private --users 1000 --secs "$PRIVATE_SECS" --parallel $par
        log "$server: login storm of $STORM while 100 chat at 500/s"
        start_server $server pinned
        bench $server pinned storm --chat 100 --senders 4 --rate 500 --storm "$STORM" \
            --storm-parallel $storm_par --parallel $par
    fi
    log "$server: $JOIN_N users join one room"
    start_server $server pinned
    bench $server pinned join --n "$JOIN_N" --timeout-secs "$JOIN_TIMEOUT" --parallel $par
done

if [ "$MODE" != irc ]; then
    log "natter over TLS"
    start_server natter-tls pinned
    bench natter-tls pinned fanout --ns "$FAN_NS" --senders 4 --window 128 --phases "$TLS_PHASES"
    for n in "${IDLE_NS[@]}"; do
        start_server natter-tls pinned
        bench natter-tls pinned idle --n "$n" --parallel 64
    done
    log "natter over TLS: private messages, 1000 users"
    start_server natter-tls pinned
    bench natter-tls pinned private --users 1000 --secs "$PRIVATE_SECS"
    log "natter over TLS: login storm of $STORM while 100 chat at 500/s"
    start_server natter-tls pinned
    bench natter-tls pinned storm --chat 100 --senders 4 --rate 500 --storm "$STORM"
fi
stop_server

# --- report --------------------------------------------------------------------------------
# The IRC-only mode's summary stays with the raw records: latest.json is a whole run's.
SUMMARY="$RESULTS/latest.json"
if [ "$MODE" = irc ]; then
    SUMMARY="$RAWDIR/$STAMP-irc-summary.json"
fi
log "results ($MODE mode, $STAMP)"
"$NB" report --input "$RAW" --summary "$SUMMARY" \
    --label "$MODE mode, $STAMP, server pinned to core 1 and generator to core 0 where marked"
echo
echo "raw records: $RAW"
echo "summary:     $SUMMARY"
