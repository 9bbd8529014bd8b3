#!/bin/sh
# make run — the main job: the whole service set on real recorded outcomes.
#
#   1. a private redis-server on a free loopback port (or $REDIS_URL);
#   2. so-learn bootstraps a skill handbook from the RouterBench training
#      split and publishes it to Redis;
#   3. every service starts as its own process: gateway, skill-inference,
#      router, learner and $SO_WORKERS replay agent-workers (default 2);
#   4. so-loadgen sends the test split through the gateway as a client would
#      (online learning on: completed episodes flow to the learner, which
#      updates the competence the router reads), shows progress and prints
#      the report;
#   5. everything it started is stopped (also on Ctrl-C or a failure).
#
# Environment: REDIS_URL, SO_WORKERS, SO_CONCURRENCY (16), SO_LIMIT (all
# queries), SO_DATA (../shared/data/routerbench), SO_RUN_DIR (out/run: logs,
# handbook and report stay there).
cd "$(dirname "$0")/.." || exit 1
mkdir -p "${SO_RUN_DIR:-out/run}"
RUN_DIR=$(cd "${SO_RUN_DIR:-out/run}" && pwd)
rm -rf "$RUN_DIR"/so-run.*
export TMPDIR="$RUN_DIR" T_KEEP=1
. tests/integration/lib.sh

DATA=${SO_DATA:-../shared/data/routerbench}
WORKERS=${SO_WORKERS:-2}
TRAIN="$DATA/arc_challenge_train.csv,$DATA/mbpp_train.csv,$DATA/winograde_train.csv"
TEST="$DATA/arc_challenge_test.csv,$DATA/mbpp_test.csv,$DATA/winograde_test.csv"
for f in $(echo "$TRAIN,$TEST" | tr , ' '); do
    [ -r "$f" ] || fail "cannot read $f (the shared data must sit beside the project: ../shared)"
done

say "logs in $T_DIR"
if [ -n "${REDIS_URL:-}" ]; then
    say "using REDIS_URL=$REDIS_URL"
else
    start_redis
    say "private redis-server on $REDIS_URL"
fi

say "learning a handbook from the training split"
"$SO_BIN/so-learn" --train "$TRAIN" --out "$T_DIR/handbook.json" --version "rb-$(date +%s)" \
    --publish "$REDIS_URL" 2>"$T_DIR/so-learn.log" || fail "so-learn failed"
tail -n 2 "$T_DIR/so-learn.log"

say "starting the services (gateway, skill-inference, router, learner, $WORKERS workers)"
. tests/integration/services.sh
start_services "$WORKERS" "$TRAIN,$TEST"

say "sending the test split through the gateway"
limit=""
[ -n "${SO_LIMIT:-}" ] && limit="--limit $SO_LIMIT"
# shellcheck disable=SC2086
"$SO_BIN/so-loadgen" --gateway "$GATEWAY" --data "$TEST" \
    --concurrency "${SO_CONCURRENCY:-16}" --shuffle "${SO_SHUFFLE:-1}" --redis "$REDIS_URL" --json "$T_DIR/report.json" \
    $limit || fail "so-loadgen failed"

# The last episodes are still on their way (gateway recorder → log →
# learner → Redis): wait for them, bounded, then show what was learned.
VERSION=$(grep -o '"version": "[^"]*"' "$T_DIR/report.json" | sed 's/.*: "//; s/"$//')
EPISODES=$(grep -o '"episodes": [0-9]*' "$T_DIR/report.json" | sed 's/.*: //')
applied() { v=$(redis-cli -u "$REDIS_URL" GET "so:seq:$VERSION" 2>/dev/null); echo "${v:-0}"; }
n=0
while [ "$(applied)" -lt "${EPISODES:-0}" ] && [ $n -lt 300 ]; do
    sleep 0.1; n=$((n + 1))
done
say "online learning: $(applied) of $EPISODES episodes applied to Redis by the learner"
"$SO_BIN/soctl" --redis "$REDIS_URL" stats || true
"$SO_BIN/so-eval" --handbook "$T_DIR/handbook.json" --test "$TEST" --json "$T_DIR/offline.json" \
    --plot "$T_DIR/curve.svg" >/dev/null 2>&1 \
    && say "accuracy-cost curve of this handbook over λ (offline replay): $T_DIR/curve.svg"
say "stopping everything this run started"
stop_all
echo "report: $RUN_DIR/$(basename "$T_DIR")/report.json (logs beside it)"
