# Restarting a learner neither loses nor double-counts episodes.  A learner
# is killed with SIGKILL in the middle of the log, twice: restarted under
# the same learner.id it re-reads what it had been delivered and not
# acknowledged; replaced by a learner with another id, that one takes the
# dead consumers' entries over (XAUTOCLAIM after claim.min_idle_ms).  In the
# end Redis counts equal what the log implies and nothing is pending.
. tests/integration/lib.sh
start_redis
ctl() { "$SO_BIN/soctl" --redis "$REDIS_URL" "$@"; }
verify_ok() { ctl verify --version lr-1 >"$T_DIR/verify.out" 2>&1; }
seq_now() { v=$(rcli GET so:seq:lr-1); echo "${v:-0}"; }
seq_at_least() { [ "$(seq_now)" -ge "$1" ]; }

sed 's/"version": "ref-1"/"version": "lr-1"/' tests/data/hb_refine.json >"$T_DIR/hb.json"
ctl publish "$T_DIR/hb.json" >/dev/null || fail "soctl publish"
N=30000
ctl gen-episodes --count $N --direct --turns 2 --prefix r- >/dev/null || fail "gen-episodes"
say "$N episodes in the log"

# Small batches, quick take-over, no refinement: the log takes a while.
export SO_LEARNER_REDIS_URL=$REDIS_URL SO_LEARNER_BATCH=20 SO_LEARNER_REFINE_EVERY_EPISODES=0
export SO_LEARNER_CLAIM_MIN_IDLE_MS=1000 SO_LEARNER_CLAIM_EVERY_MS=300 SO_LEARNER_STATS_MS=1000

# 1. SIGKILL, then the same learner.id again.
SO_LEARNER_LEARNER_ID=L1 start_bg learner1 "$SO_BIN/so-learner"
wait_for "the learner to get going" 30 seq_at_least 2000
stop_one learner1 KILL
AT=$(seq_now)
[ "$AT" -lt "$N" ] || fail "the learner finished before it was killed ($AT): the test proves nothing"
say "killed L1 at seq $AT"
SO_LEARNER_LEARNER_ID=L1 start_bg learner1b "$SO_BIN/so-learner"
wait_for "more progress" 30 seq_at_least $((AT + 3000))

# 2. SIGKILL, then a learner under another id.
stop_one learner1b KILL
AT2=$(seq_now)
[ "$AT2" -lt "$N" ] || fail "the log was done before the second kill ($AT2): the test proves nothing"
# A consumer that takes 50 entries and dies without acknowledging them, so
# that the take-over below is certain to have work (L1 may have died
# between two batches with nothing pending).
rcli XREADGROUP GROUP learners ghost COUNT 50 STREAMS so:episodes ">" >/dev/null
PENDING=$(rcli XPENDING so:episodes learners | head -1)
[ "$PENDING" -ge 50 ] || fail "expected >= 50 pending entries, got $PENDING"
say "killed L1 again at seq $AT2; $PENDING entries delivered and unacknowledged (L1, ghost)"
SO_LEARNER_LEARNER_ID=L2 start_bg learner2 "$SO_BIN/so-learner"
wait_for "Redis counts to equal the log" 120 verify_ok
grep -q "log implies $N episodes" "$T_DIR/verify.out" || fail "verify: $(cat "$T_DIR/verify.out")"
assert_eq "$(seq_now)" "$N" "episodes applied"
assert_eq "$(rcli SCARD so:applied:lr-1)" "$N" "episodes marked applied"
pass "two SIGKILLs mid-log: $N episodes counted once each, counts equal the log"

wait_for "nothing pending in the group" 10 sh -c \
    "[ \"\$(redis-cli -p $REDIS_PORT XPENDING so:episodes learners | head -1)\" = 0 ]"
grep -q entries_claimed "$T_DIR/learner2.log" || fail "L2 claimed none of the $PENDING entries"
pass "the dead consumer's unacknowledged entries were taken over; nothing left pending"
stop_one learner2 TERM || fail "learner2 did not exit 0 on SIGTERM"
