# Online learning changes later decisions.  The router starts from a handbook
# learned on RouterBench's ARC training split, greedy at λ = 0 (no
# exploration): it sends ARC questions to the agent it trusts most.  The
# replay workers then answer from a doctored copy of the ARC test records in
# which that agent fails every question.  Completed episodes flow gateway →
# episode log → learner → Redis; the router re-reads the counts, loses
# confidence in the agent and routes later questions elsewhere.
. tests/integration/lib.sh
. tests/integration/services.sh
D=../shared/data/routerbench
start_redis
"$SO_BIN/so-learn" --quiet --train "$D/arc_challenge_train.csv" --version learn-1 \
    --out "$T_DIR/hb.json" --publish "$REDIS_URL" || fail "so-learn"
export SO_ROUTER_THOMPSON=0 SO_ROUTER_EXPLORE_FLOOR=0 SO_ROUTER_LAMBDA=0
services_ports
PROMPT="Which gas do plants absorb from the air to make food?
A) oxygen
B) carbon dioxide
C) nitrogen
D) helium
Print only a single choice from \"A\" or \"B\" or \"C\" or \"D\" without explanation.
Answer:"
probe() { "$SO_BIN/so-probe" --infer "$INFER" --route "$ROUTER" --json "$PROMPT"; }
chosen() { probe | grep -o '"chosen_agent": *"[^"]*"' | head -1 | sed 's/.*: *"//; s/"$//'; }

# The doctored records: the trusted agent fails everything.
start_bg skill-inference "$SO_BIN/so-skill-inference"
start_bg router "$SO_BIN/so-router"
wait_for "the router to answer" 20 probe
BEFORE=$(chosen)
[ -n "$BEFORE" ] || fail "no decision before learning: $(probe 2>&1 | tail -3)"
say "trusted agent before learning: $BEFORE"
"$SO_BIN/so-import" --routerbench "$D/arc_challenge_test.csv" --out "$T_DIR/arc.jsonl" 2>/dev/null \
    || fail "so-import"
sed "/\"agent\":\"$(echo "$BEFORE" | sed 's|/|\\/|g')\"/ s/\"score\":[0-9.]*/\"score\":0/; /\"agent\":\"$(echo "$BEFORE" | sed 's|/|\\/|g')\"/ s/\"outcome\":[0-9.]*/\"outcome\":0/" \
    "$T_DIR/arc.jsonl" >"$T_DIR/arc_doctored.jsonl"
grep "\"agent\":\"$BEFORE\"" "$T_DIR/arc_doctored.jsonl" | grep -q '"score":1' && fail "doctoring failed"

start_bg learner "$SO_BIN/so-learner"
start_bg gateway "$SO_BIN/so-gateway"
SO_REPLAY_FILES="$T_DIR/arc_doctored.jsonl"
start_worker worker-1
start_worker worker-2
wait_for "2 workers registered" 30 gateway_registered 2

"$SO_BIN/so-loadgen" --gateway "$GATEWAY" --data "$T_DIR/arc_doctored.jsonl" --concurrency 2 \
    --json "$T_DIR/r.json" >"$T_DIR/loadgen.out" 2>&1 || fail "so-loadgen: $(tail -5 "$T_DIR/loadgen.out")"
N=$(grep -o '"answered": [0-9]*' "$T_DIR/r.json" | sed 's/.*: //')
CALLS=$(grep -o "\"$BEFORE\": [0-9]*" "$T_DIR/r.json" | sed 's/.*: //')
say "$N questions answered; $BEFORE took $CALLS of them"
[ "$N" -gt 400 ] || fail "only $N questions answered"
[ "$CALLS" -gt 0 ] || fail "$BEFORE was never chosen: the test proves nothing"
[ "$CALLS" -lt "$N" ] || fail "$BEFORE took every question: routing never changed"
wait_for "the learner to apply every episode" 30 \
    sh -c "[ \"\$(redis-cli -p $REDIS_PORT GET so:seq:learn-1)\" -ge $N ]"
sleep 1   # one stats refresh of the router (200 ms)
AFTER=$(chosen)
say "chosen after learning: $AFTER"
[ -n "$AFTER" ] && [ "$AFTER" != "$BEFORE" ] || fail "the router still picks $BEFORE after $N failures"
pass "learner updates reach Redis and change later decisions ($BEFORE → $AFTER after $CALLS failures)"
