# The learner applies the episode log to Redis: after it catches up, the
# online statistics equal what the log implies (soctl verify: so:stats
# against an in-memory replay of the log), each episode counted once even
# when it is in the log twice; malformed entries go to the dead-letter
# stream and the learner keeps running; it survives a Redis restart;
# SIGTERM exits 0.
. tests/integration/lib.sh
D=../shared/data/routerbench
start_redis
ctl() { "$SO_BIN/soctl" --redis "$REDIS_URL" "$@"; }
verify_ok() { ctl verify --version la-1 >"$T_DIR/verify.out" 2>&1; }

"$SO_BIN/so-learn" --quiet --train "$D/arc_challenge_train.csv" --version la-1 \
    --out "$T_DIR/hb.json" || fail "so-learn"
ctl publish "$T_DIR/hb.json" >/dev/null || fail "soctl publish"
# A version is published once: two replicas must never route one version
# with two handbooks.  --version publishes under another name; --force
# replaces on purpose.
if ctl publish "$T_DIR/hb.json" >"$T_DIR/pub2.out" 2>&1; then fail "published la-1 twice"; fi
grep -q "la-1 is already published" "$T_DIR/pub2.out" || fail "publish again: $(cat "$T_DIR/pub2.out")"
ctl publish "$T_DIR/hb.json" --version la-copy --no-current >/dev/null || fail "publish --version"
assert_eq "$(rcli GET so:hb:current)" la-1 "current after --no-current"
ctl publish "$T_DIR/hb.json" --version la-copy --force --no-current >/dev/null || fail "publish --force"
assert_eq "$(rcli LLEN so:hb:versions)" 2 "versions after --version and --force"
ctl help publish | grep -q -- "--force" || fail "soctl help publish"
pass "soctl publish refuses a published version; --version renames, --force replaces; soctl help CMD"

# Episodes the way the services write them (pending turns, then the
# outcome), two turns each, and one-turn episodes straight into the log.
ctl gen-episodes --count 1500 --turns 2 --prefix p- >/dev/null || fail "gen-episodes (pending)"
ctl gen-episodes --count 3000 --direct --prefix d- >/dev/null || fail "gen-episodes (direct)"
# The same 200 episodes again: in the log twice, to be counted once.
ctl gen-episodes --count 200 --direct --prefix d- >/dev/null || fail "gen-episodes (repeat)"
# Malformed entries: not protobuf, no pb field, a handbook nobody published.
rcli XADD so:episodes '*' id junk pb notprotobuf >/dev/null
rcli XADD so:episodes '*' id nopb >/dev/null
ctl push-turn ep-ghost --agent gpt-4-1106-preview --version ghost-9 >/dev/null || fail "push-turn"
ctl outcome ep-ghost --success 1 >/dev/null || fail "soctl outcome"
assert_eq "$(rcli XLEN so:episodes)" 4703 "entries in the log"

T0=$(date +%s%N)
SO_LEARNER_REDIS_URL=$REDIS_URL SO_LEARNER_STATS_MS=1000 start_bg learner "$SO_BIN/so-learner"
wait_for "Redis counts to equal the log (soctl verify)" 60 verify_ok
T1=$(date +%s%N)
say "4500 episodes (4703 entries) applied and verified in $(( (T1 - T0) / 1000000 )) ms" \
    "($(( 4703 * 1000000000 / (T1 - T0) )) entries/s, including start-up and polling)"
grep -q "log implies 4500 episodes" "$T_DIR/verify.out" || fail "verify: $(cat "$T_DIR/verify.out")"
assert_eq "$(rcli GET so:seq:la-1)" 4500 "episodes applied"
assert_eq "$(rcli SCARD so:applied:la-1)" 4500 "episodes marked applied"
pass "4500 episodes applied once each (200 of them logged twice); counts equal the log"

wait_for "3 dead letters" 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT XLEN so:episodes:dead)\" = 3 ]"
rcli XRANGE so:episodes:dead - + >"$T_DIR/dead.out"
grep -q "undecodable" "$T_DIR/dead.out" || fail "no undecodable entry in the dead letters"
grep -q "no pb field" "$T_DIR/dead.out" || fail "no 'no pb field' entry in the dead letters"
grep -q "handbook ghost-9" "$T_DIR/dead.out" || fail "no unknown-handbook entry in the dead letters"
assert_eq "$(grep -c episode_dead "$T_DIR/learner.log")" 3 "dead-letter log lines"
pass "malformed entries moved to so:episodes:dead with their reasons"

# Still running and applying: more episodes after the bad ones.
alive learner || fail "the learner died"
ctl gen-episodes --count 300 --turns 3 --prefix late- --seed 7 >/dev/null || fail "gen-episodes (late)"
wait_for "the late episodes" 30 sh -c "[ \"\$(redis-cli -p $REDIS_PORT GET so:seq:la-1)\" = 4800 ]"
verify_ok || fail "after the late episodes: $(cat "$T_DIR/verify.out")"
ctl stats >"$T_DIR/stats.out" || fail "soctl stats"
grep -q "name=learners consumers=1 pending=0" "$T_DIR/stats.out" \
    || fail "entries left unacknowledged: $(cat "$T_DIR/stats.out")"
pass "the learner keeps applying after malformed entries; nothing left unacknowledged"

# soctl rebuild recomputes the same statistics from the log.
ctl rebuild --version la-1 >"$T_DIR/rebuild.out" || fail "rebuild: $(cat "$T_DIR/rebuild.out")"
grep -q "from 4800 episodes" "$T_DIR/rebuild.out" || fail "rebuild: $(cat "$T_DIR/rebuild.out")"
verify_ok || fail "after rebuild: $(cat "$T_DIR/verify.out")"
pass "soctl rebuild gives the same counts"

# Redis goes away (SIGKILL, no persistence) and comes back empty on the same
# port: the learner backs off, reconnects, recreates its group and goes on.
stop_one redis KILL
sleep 1
alive learner || fail "the learner exited when Redis went away"
start_bg redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize no --dir "$T_DIR" --loglevel warning
wait_for "redis back" 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT PING)\" = PONG ]"
ctl publish "$T_DIR/hb.json" >/dev/null || fail "soctl publish after the restart"
ctl gen-episodes --count 100 --prefix again- >/dev/null || fail "gen-episodes after the restart"
wait_for "the learner to apply after the Redis restart" 30 verify_ok
grep -q "log implies 100 episodes" "$T_DIR/verify.out" || fail "verify: $(cat "$T_DIR/verify.out")"
grep -q redis_down "$T_DIR/learner.log" || fail "no redis_down line"
[ "$(grep -c redis_up "$T_DIR/learner.log")" -ge 2 ] || fail "no second redis_up line"
pass "Redis killed and restarted: the learner reconnects and keeps applying"

stop_one learner TERM || fail "the learner did not exit 0 on SIGTERM"
grep -q " stop " "$T_DIR/learner.log" || fail "no stop line"
pass "SIGTERM: clean exit"
