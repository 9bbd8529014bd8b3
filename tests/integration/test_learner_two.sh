# Two learners at once give the same counts as the log implies, and each
# episode is applied by exactly one of them: the consumer group splits the
# log between them, and so_apply's per-episode idempotency covers the rest.
. tests/integration/lib.sh
start_redis
ctl() { "$SO_BIN/soctl" --redis "$REDIS_URL" "$@"; }
verify_ok() { ctl verify --version lt-1 >"$T_DIR/verify.out" 2>&1; }

sed 's/"version": "ref-1"/"version": "lt-1"/' tests/data/hb_refine.json >"$T_DIR/hb.json"
ctl publish "$T_DIR/hb.json" >/dev/null || fail "soctl publish"
export SO_LEARNER_REDIS_URL=$REDIS_URL SO_LEARNER_BATCH=25 SO_LEARNER_REFINE_EVERY_EPISODES=0
start_bg learner1 "$SO_BIN/so-learner"
start_bg learner2 "$SO_BIN/so-learner"
consumers() { [ "$(rcli XINFO CONSUMERS so:episodes learners 2>/dev/null | grep -cx name)" = 2 ]; }
wait_for "both learners in the group" 20 consumers

# Episodes arrive while both run: from two writers at once, pending turns +
# outcome and direct, some of them twice.
ctl gen-episodes --count 4000 --direct --prefix a- >/dev/null &
W1=$!
ctl gen-episodes --count 1000 --turns 2 --prefix b- >/dev/null || fail "gen-episodes b"
wait $W1 || fail "gen-episodes a"
ctl gen-episodes --count 500 --direct --prefix a- >/dev/null || fail "gen-episodes (repeats)"
N=5000
wait_for "Redis counts to equal the log" 60 verify_ok
grep -q "log implies $N episodes" "$T_DIR/verify.out" || fail "verify: $(cat "$T_DIR/verify.out")"
assert_eq "$(rcli GET so:seq:lt-1)" $N "episodes applied"
pass "two learners: $N episodes (500 logged twice), counts equal the log"

stop_one learner1 TERM || fail "learner1 did not exit 0"
stop_one learner2 TERM || fail "learner2 did not exit 0"
applied() { sed -n 's/.* stop .*applied=\([0-9]*\).*/\1/p' "$T_DIR/$1.log" | tail -1; }
A1=$(applied learner1); A2=$(applied learner2)
say "learner1 applied $A1, learner2 applied $A2"
[ -n "$A1" ] && [ -n "$A2" ] || fail "no stop line with counts"
[ "$A1" -gt 0 ] && [ "$A2" -gt 0 ] || fail "one learner did all the work: the test proves nothing"
assert_eq $((A1 + A2)) $N "episodes newly applied by the two learners together"
pass "each episode applied by exactly one learner; both took a share"
