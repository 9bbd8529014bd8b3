# A worker killed with SIGKILL in the middle of a load loses no request: the
# gateway notices the silence (heartbeats), hands its calls to the other
# workers, and every client gets its answer.
. tests/integration/lib.sh
. tests/integration/services.sh
D=../shared/data/routerbench
start_redis
"$SO_BIN/so-learn" --quiet --train "$D/arc_challenge_train.csv" --version kill-1 \
    --out "$T_DIR/hb.json" --publish "$REDIS_URL" || fail "so-learn"
export SO_AGENT_WORKER_DELAY_MS=300 SO_AGENT_WORKER_CAPACITY=2
start_services 3 "$D/arc_challenge_test.csv"

"$SO_BIN/so-loadgen" --gateway "$GATEWAY" --data "$D/arc_challenge_test.csv" --limit 80 \
    --concurrency 6 --timeout-ms 30000 --json "$T_DIR/r.json" >"$T_DIR/loadgen.out" 2>&1 &
LG=$!
sleep 1.5
alive worker-1 || fail "worker-1 died before the kill"
stop_one worker-1 KILL
n=0
while kill -0 "$LG" 2>/dev/null; do
    [ $n -ge 600 ] && { kill "$LG"; fail "so-loadgen did not finish in 60 s"; }
    sleep 0.1; n=$((n + 1))
done
wait "$LG" || fail "so-loadgen failed: $(tail -5 "$T_DIR/loadgen.out")"
json() { grep -o "\"$1\": [0-9.e-]*" "$T_DIR/r.json" | head -1 | sed 's/.*: //'; }
assert_eq "$(json answered)" 80 "turns answered"
assert_eq "$(json errors)" 0 "turns failed"
grep -q redispatch "$T_DIR/gateway.log" || fail "the gateway re-dispatched nothing (was worker-1 holding calls?)"
pass "SIGKILL of a worker mid-load: 80/80 answered, its calls re-dispatched"
