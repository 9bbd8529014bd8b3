#!/bin/sh
# make up / make down — leave the service set running, or stop it.
#
#   sh tools/stack.sh up     redis-server (unless $REDIS_URL), a handbook learned
#                            from the RouterBench training split, and every
#                            service on the default ports (config/*.conf):
#                            gateway clients 5555, workers 5556,
#                            skill-inference 5557, router 5558
#   sh tools/stack.sh down   stops what `up` started (SIGTERM, then SIGKILL)
#   sh tools/stack.sh status
#
# State (pids, logs, handbook) lives in $SO_STACK_DIR (default out/stack).
cd "$(dirname "$0")/.." || exit 1
DIR=${SO_STACK_DIR:-out/stack}
BIN=${SO_BIN:-build/bin}
DATA=${SO_DATA:-../shared/data/routerbench}
REDIS_PORT=${SO_REDIS_PORT:-6390}
mkdir -p "$DIR"

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    name=$1; shift
    if running "$DIR/$name.pid"; then
        echo "stack: $name already runs (pid $(cat "$DIR/$name.pid"))"
        return 0
    fi
    setsid "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/$name.pid"
    echo "stack: started $name (pid $!, log $DIR/$name.log)"
}

up() {
    if [ -z "${REDIS_URL:-}" ]; then
        start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
        REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
        n=0
        until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
            n=$((n + 1)); [ $n -gt 100 ] && { echo "stack: redis-server did not start" >&2; exit 1; }
            sleep 0.1
        done
    fi
    echo "$REDIS_URL" >"$DIR/redis_url"
    if ! redis-cli -u "$REDIS_URL" exists so:hb:current | grep -q 1; then
        "$BIN/so-learn" --quiet --version "rb-$(date +%s)" --out "$DIR/handbook.json" \
            --train "$DATA/arc_challenge_train.csv,$DATA/mbpp_train.csv,$DATA/winograde_train.csv" \
            --publish "$REDIS_URL" || { echo "stack: so-learn failed" >&2; exit 1; }
        echo "stack: published a handbook learned from the RouterBench training split"
    fi
    export SO_REDIS_URL="$REDIS_URL"
    export SO_AGENT_WORKER_REPLAY_FILES="$(ls "$DATA"/*.csv | tr '\n' , | sed 's/,$//')"
    start skill-inference "$BIN/so-skill-inference"
    start router "$BIN/so-router"
    start learner "$BIN/so-learner"
    start gateway "$BIN/so-gateway"
    for i in 1 2; do
        SO_AGENT_WORKER_WORKER_ID="worker-$i" start "worker-$i" "$BIN/so-agent-worker"
    done
    echo "stack: up — clients connect a DEALER to tcp://127.0.0.1:5555; Redis at $REDIS_URL"
    echo "stack: try  $BIN/soctl --redis $REDIS_URL stats"
}

# Services first, the redis-server they write to last.
pidfiles() { ls "$DIR"/*.pid 2>/dev/null | grep -v '/redis.pid$'; ls "$DIR"/redis.pid 2>/dev/null; }

down() {
    for f in $(pidfiles); do
        pid=$(cat "$f"); n=0
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
        while kill -0 "$pid" 2>/dev/null && [ $n -lt 150 ]; do sleep 0.1; n=$((n + 1)); done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        echo "stack: stopped $(basename "$f" .pid)"
        rm -f "$f"
    done
}

status() {
    for f in "$DIR"/*.pid; do
        [ -f "$f" ] || continue
        if running "$f"; then s=running; else s=stopped; fi
        echo "$(basename "$f" .pid): $s"
    done
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: sh tools/stack.sh up|down|status" >&2; exit 2 ;;
esac
