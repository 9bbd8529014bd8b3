# End to end through the real services: requests flow client → gateway →
# skill-inference → router → worker and back; every reply carries a decision
# from the pinned handbook; completed episodes reach the log and the learner
# applies each exactly once; malformed client frames get an error reply and
# the gateway keeps serving.
. tests/integration/lib.sh
. tests/integration/services.sh
D=../shared/data/routerbench
start_redis
"$SO_BIN/so-learn" --quiet --train "$D/arc_challenge_train.csv,$D/mbpp_train.csv" --version e2e-1 \
    --out "$T_DIR/hb.json" --publish "$REDIS_URL" || fail "so-learn"
start_services 2 "$D/arc_challenge_test.csv,$D/mbpp_test.csv"

"$SO_BIN/so-loadgen" --gateway "$GATEWAY" --data "$D/arc_challenge_test.csv,$D/mbpp_test.csv" \
    --limit 60 --concurrency 8 --timeout-ms 20000 --json "$T_DIR/r.json" >"$T_DIR/loadgen.out" 2>&1 \
    || fail "so-loadgen: $(tail -5 "$T_DIR/loadgen.out")"
json() { grep -o "\"$1\": [0-9.e-]*" "$T_DIR/r.json" | head -1 | sed 's/.*: //'; }
assert_eq "$(json answered)" 60 "turns answered"
assert_eq "$(json errors)" 0 "turns failed"
grep -q '"version": "e2e-1"' "$T_DIR/r.json" || fail "replies were not routed with handbook e2e-1"
pass "60 turns answered through gateway, skill-inference, router and two workers"

# Both workers took calls (LRU dispatch).
for w in worker-1 worker-2; do
    grep -Eq "calls=[1-9]" "$T_DIR/$w.log" || sleep 6   # stats lines come every 5 s
    grep -Eq "calls=[1-9]" "$T_DIR/$w.log" || fail "$w served no call"
done
pass "calls spread over both workers"

# Every episode was logged once and applied once by the learner.
wait_for "60 episodes in the log" 20 sh -c "[ \"\$(redis-cli -p $REDIS_PORT XLEN so:episodes)\" -ge 60 ]"
wait_for "the learner to apply 60 episodes" 20 \
    sh -c "[ \"\$(redis-cli -p $REDIS_PORT GET so:seq:e2e-1)\" = 60 ]"
assert_eq "$(rcli SCARD so:applied:e2e-1)" 60 "episodes marked applied"
pass "60 episodes logged and applied once"

# A malformed frame: an error reply names the problem, the gateway lives on.
"$SO_BIN/so-probe" --raw-garbage "$GATEWAY" >"$T_DIR/garbage.out" 2>&1
grep -qi "error" "$T_DIR/garbage.out" || fail "no error reply to a malformed frame: $(cat "$T_DIR/garbage.out")"
"$SO_BIN/so-loadgen" --gateway "$GATEWAY" --data "$D/mbpp_test.csv" --limit 5 \
    --json "$T_DIR/r2.json" >/dev/null 2>&1 || fail "gateway stopped serving after a malformed frame"
pass "malformed frame rejected with an error reply; service keeps running"

for s in gateway router skill-inference learner worker-1 worker-2; do
    stop_one "$s" TERM || fail "$s did not exit cleanly on SIGTERM"
done
pass "every service exits 0 on SIGTERM"
