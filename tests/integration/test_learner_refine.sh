# Refinement: after refine.every_episodes episodes on the current version, a
# learner merges sibling skills on which no agent differs (tests/data/
# hb_refine.json: algebra and arithmetic have the same success rates for
# both agents, poetry does not) and publishes "<version>.r1" as current;
# episodes of the old version keep counting there, new ones go to the new
# version, and both match the log.
. tests/integration/lib.sh
start_redis
ctl() { "$SO_BIN/soctl" --redis "$REDIS_URL" "$@"; }
current() { ctl stats | sed -n 's/^current version *//p'; }
is_current() { [ "$(current)" = "$1" ]; }

ctl publish tests/data/hb_refine.json >/dev/null || fail "soctl publish"
export SO_LEARNER_REDIS_URL=$REDIS_URL SO_LEARNER_REFINE_EVERY_EPISODES=100
export SO_LEARNER_REFINE_CHECK_MS=100
start_bg learner "$SO_BIN/so-learner"
ctl gen-episodes --count 150 --prefix a- >/dev/null || fail "gen-episodes"
wait_for "ref-1.r1 to become current" 30 is_current ref-1.r1
ctl handbook --version ref-1.r1 >"$T_DIR/hb.out" || fail "soctl handbook"
grep -q "parent    ref-1" "$T_DIR/hb.out" || fail "parent: $(cat "$T_DIR/hb.out")"
grep -q "skills    3" "$T_DIR/hb.out" || fail "skills: $(cat "$T_DIR/hb.out")"
grep -q "top.a  *algebra + arithmetic" "$T_DIR/hb.out" || fail "merged skill: $(cat "$T_DIR/hb.out")"
grep -q "top.c" "$T_DIR/hb.out" || fail "poetry was merged: $(cat "$T_DIR/hb.out")"
grep -q "handbook_refined version=ref-1.r1 parent=ref-1 .*merged_away=top.b" "$T_DIR/learner.log" \
    || fail "no handbook_refined line"
pass "indistinguishable skills merged into ref-1.r1 (published as current), distinct ones kept"

# The new version's bootstrap holds the old one's bootstrap + online counts.
ctl competence --version ref-1.r1 >"$T_DIR/comp.out" || fail "soctl competence"
BOOT_N=$(awk '$1 == "x" && $2 == "top.a" { split($3, f, "/"); print f[2] }' "$T_DIR/comp.out")
awk -v n="$BOOT_N" 'BEGIN { exit !(n > 2000) }' \
    || fail "bootstrap attempts of x on the merged skill: '$BOOT_N', want > 2000 (1000 + 1000 + online)"
pass "the refined version starts from the merged bootstrap + online statistics"

# In-flight episodes of ref-1 still count there; new ones go to ref-1.r1.
ctl gen-episodes --count 40 --version ref-1 --prefix late- >/dev/null || fail "gen-episodes ref-1"
ctl gen-episodes --count 60 --prefix new- >/dev/null || fail "gen-episodes ref-1.r1"
wait_for "ref-1.r1 episodes applied" 20 sh -c \
    "[ \"\$(redis-cli -p $REDIS_PORT GET so:seq:ref-1.r1)\" = 60 ]"
wait_for "ref-1 episodes applied" 20 sh -c \
    "[ \"\$(redis-cli -p $REDIS_PORT GET so:seq:ref-1)\" = 190 ]"
ctl verify --version ref-1 >"$T_DIR/v1.out" || fail "verify ref-1: $(cat "$T_DIR/v1.out")"
ctl verify --version ref-1.r1 >"$T_DIR/v2.out" || fail "verify ref-1.r1: $(cat "$T_DIR/v2.out")"
pass "episodes keep their pinned version; both versions match the log"
stop_one learner TERM || fail "the learner did not exit 0 on SIGTERM"
