#!/bin/sh
# The service set under load (part of make bench): a private redis-server,
# skill-inference, router, learner, gateway and two replay workers on
# loopback; so-loadgen sends the RouterBench test split (945 turns) through
# the gateway 3 times at each concurrency, and the median run is reported
# (turns/s, client-side latency p50/p99 over the whole chain).
cd "$(dirname "$0")/.." || exit 1
. tests/integration/lib.sh
. tests/integration/services.sh
D=../shared/data/routerbench
TEST="$D/arc_challenge_test.csv,$D/mbpp_test.csv,$D/winograde_test.csv"
start_redis
"$SO_BIN/so-learn" --quiet --train "$D/arc_challenge_train.csv,$D/mbpp_train.csv,$D/winograde_train.csv" \
    --version bench-1 --out "$T_DIR/hb.json" --publish "$REDIS_URL" || fail "so-learn"
SO_STATS_MS=60000 start_services 2 "$TEST"
echo "service chain: client → gateway → skill-inference → router → worker → client, 945 turns per run"
printf "  %-12s %10s %10s %10s\n" concurrency "turns/s" "p50 ms" "p99 ms"
for c in 1 16 64; do
    for i in 1 2 3; do
        "$SO_BIN/so-loadgen" --gateway "$GATEWAY" --data "$TEST" --concurrency "$c" \
            --json "$T_DIR/r.json" >/dev/null 2>&1 || fail "so-loadgen"
        j() { grep -o "\"$1\": [0-9.e-]*" "$T_DIR/r.json" | head -1 | sed 's/.*: //'; }
        echo "$(j turns) $(j seconds) $(j p50_ms) $(j p99_ms)"
    done | awk '{ printf "%.1f %.3f %.3f\n", $1 / $2, $3, $4 }' | sort -n | sed -n 2p |
        awk -v c="$c" '{ printf "  %-12s %10.0f %10.2f %10.2f\n", c, $1, $2, $3 }'
done
