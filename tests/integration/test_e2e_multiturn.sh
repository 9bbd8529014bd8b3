# Multi-turn episodes (MT-bench: two turns per conversation): each turn is
# routed by its own demand, the second turn carries the first turn and its
# answer as context, and the episode reaches the log once, after its final
# turn, with both turn records (each credited to its own agent and skills).
. tests/integration/lib.sh
. tests/integration/services.sh
M=../shared/data/mtbench
start_redis
"$SO_BIN/so-learn" --quiet --train "$M" --version mt-1 --out "$T_DIR/hb.json" \
    --publish "$REDIS_URL" || fail "so-learn"
start_services 2 "$M"

"$SO_BIN/so-loadgen" --gateway "$GATEWAY" --data "$M" --limit 30 --concurrency 6 \
    --json "$T_DIR/r.json" >"$T_DIR/loadgen.out" 2>&1 || fail "so-loadgen: $(tail -5 "$T_DIR/loadgen.out")"
json() { grep -o "\"$1\": [0-9.e-]*" "$T_DIR/r.json" | head -1 | sed 's/.*: //'; }
assert_eq "$(json episodes)" 30 "episodes sent"
assert_eq "$(json answered)" 60 "turns answered"
assert_eq "$(json errors)" 0 "turns failed"
pass "30 two-turn episodes answered turn by turn"

wait_for "30 episodes in the log" 20 sh -c "[ \"\$(redis-cli -p $REDIS_PORT XLEN so:episodes)\" -ge 30 ]"
sleep 0.5
assert_eq "$(rcli XLEN so:episodes)" 30 "episodes logged (one per conversation, not per turn)"
assert_eq "$(rcli --scan --pattern 'so:pending:*' | wc -l | tr -d ' ')" 0 "pending turn lists left"
wait_for "the learner to apply 30 episodes" 20 \
    sh -c "[ \"\$(redis-cli -p $REDIS_PORT GET so:seq:mt-1)\" = 30 ]"
"$SO_BIN/soctl" --redis "$REDIS_URL" verify --version mt-1 >"$T_DIR/verify.out" 2>&1 \
    || fail "Redis counts differ from what the log implies: $(cat "$T_DIR/verify.out")"
pass "each episode logged once with both turns, applied once, counts match the log"
