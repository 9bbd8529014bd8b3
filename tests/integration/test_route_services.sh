# skill-inference and router as real processes, probed with so-probe the way
# the gateway asks them: demands for a code and a multiple-choice prompt,
# decisions that follow lambda, routing profiles, exclusions and budgets,
# reproducible seeds,
# error replies (unknown version, malformed frames) after which both keep
# serving, online stats picked up by the poll, a newly published version,
# and exit 0 on SIGTERM.
. tests/integration/lib.sh
D=../shared/data/routerbench
start_redis
"$SO_BIN/so-learn" --quiet --train "$D/arc_challenge_train.csv,$D/mbpp_train.csv" --version rs-1 \
    --out "$T_DIR/hb.json" --publish "$REDIS_URL" || fail "so-learn"

INFER="tcp://127.0.0.1:$(free_port)"
ROUTER="tcp://127.0.0.1:$(free_port)"
export SO_REDIS_URL="$REDIS_URL" SO_STATS_MS=1000
# No uniform exploration here, so that the lambda checks cannot be hit by
# the 2% random pick (Thompson sampling stays on).  One routing profile,
# "cheap": lambda 10 and no exploration at all.
SO_SKILL_INFERENCE_ENDPOINT="$INFER" start_bg skill-inference "$SO_BIN/so-skill-inference"
SO_ROUTER_ENDPOINT="$ROUTER" SO_ROUTER_EXPLORE_FLOOR=0 SO_ROUTER_PROFILES=cheap \
    SO_ROUTER_PROFILE_CHEAP_LAMBDA=10 SO_ROUTER_PROFILE_CHEAP_EXPLORE=off \
    start_bg router "$SO_BIN/so-router"
wait_for "skill-inference to load rs-1" 10 grep -q "handbook_loaded version=rs-1" "$T_DIR/skill-inference.log"
wait_for "router to load rs-1" 10 grep -q "handbook_loaded version=rs-1" "$T_DIR/router.log"

CODE="Write a python function to find the maximum of three numbers."
MC="Which of the following is a renewable resource?
A) coal
B) oil
C) wind
D) natural gas
Print only a single choice from \"A\" or \"B\" or \"C\" or \"D\" without explanation.
Answer:"

probe() { "$SO_BIN/so-probe" --infer "$INFER" --route "$ROUTER" --timeout-ms 5000 "$@"; }
# field FILE LINE-PREFIX KEY: the value of KEY= on the first line starting with the prefix
field() { grep -m1 "^$2" "$1" | tr ' ' '\n' | grep "^$3=" | head -1 | sed "s/^$3=//"; }
# agent_field FILE AGENT KEY
agent_field() { grep -m1 "^  agent=$2 " "$1" | tr ' ' '\n' | grep "^$3=" | sed "s/^$3=//"; }

# ---- Demands and decisions
probe "$CODE" >"$T_DIR/code.out" || fail "code prompt: $(cat "$T_DIR/code.out")"
probe "$MC" >"$T_DIR/mc.out" || fail "multiple-choice prompt: $(cat "$T_DIR/mc.out")"
for f in code mc; do
    assert_eq "$(field "$T_DIR/$f.out" demand source)" EMBEDDED "$f: demand source"
    assert_eq "$(field "$T_DIR/$f.out" demand version)" rs-1 "$f: demand version"
    [ "$(field "$T_DIR/$f.out" demand skills)" -ge 1 ] || fail "$f: empty demand"
    [ -n "$(field "$T_DIR/$f.out" decision chosen)" ] || fail "$f: no chosen agent"
    assert_eq "$(field "$T_DIR/$f.out" decision version)" rs-1 "$f: decision version"
    assert_eq "$(grep -c '^  agent=' "$T_DIR/$f.out")" 11 "$f: a score for every agent"
done
[ "$(field "$T_DIR/code.out" '  top_skill' top_skill)" != "$(field "$T_DIR/mc.out" '  top_skill' top_skill)" ] \
    || fail "code and multiple-choice prompts got the same top skill"
pass "code and multiple-choice prompts: different demands, decisions with per-agent scores"

# ---- Lambda: large picks a cheap agent, 0 a competent one
probe --lambda 10 "$CODE" >"$T_DIR/l10.out" || fail "lambda 10"
probe --lambda 0 "$CODE" >"$T_DIR/l0.out" || fail "lambda 0"
cheap=$(field "$T_DIR/l10.out" decision chosen)
good=$(field "$T_DIR/l0.out" decision chosen)
assert_eq "$(field "$T_DIR/l10.out" decision lambda)" 10 "lambda used"
awk -v a="$(agent_field "$T_DIR/l10.out" "$cheap" cost_norm)" 'BEGIN { exit !(a < 0.1) }' \
    || fail "lambda 10 chose $cheap, not a cheap agent"
c_cheap=$(agent_field "$T_DIR/l0.out" "$cheap" competence)
c_good=$(agent_field "$T_DIR/l0.out" "$good" competence)
c_max=$(grep '^  agent=' "$T_DIR/l0.out" | tr ' ' '\n' | grep '^competence=' | sed 's/.*=//' | sort -g | tail -1)
awk -v g="$c_good" -v c="$c_cheap" -v m="$c_max" 'BEGIN { exit !(g > c && g >= m - 0.1) }' \
    || fail "lambda 0 chose $good (competence $c_good; max $c_max; $cheap $c_cheap)"
pass "lambda 10 chose $cheap (cheap); lambda 0 chose $good (competence $c_good of max $c_max)"

# ---- Routing profiles: "cheap" routes as lambda 10; an unknown one is refused
probe --profile cheap "$CODE" >"$T_DIR/prof.out" || fail "profile cheap: $(cat "$T_DIR/prof.out")"
assert_eq "$(field "$T_DIR/prof.out" decision lambda)" 10 "the profile's lambda"
pc=$(field "$T_DIR/prof.out" decision chosen)
[ "$pc" != "$good" ] || fail "profile cheap chose $good, the lambda-0 choice"
awk -v a="$(agent_field "$T_DIR/prof.out" "$pc" cost_norm)" 'BEGIN { exit !(a < 0.1) }' \
    || fail "profile cheap chose $pc, not a cheap agent"
grep -q "^  reason: .*; routing_profile 'cheap'" "$T_DIR/prof.out" || fail "reason does not name the profile"
assert_eq "$(field "$T_DIR/prof.out" decision strategy)" GREEDY "no exploration under profile cheap"
probe --profile no-such-profile "$CODE" >"$T_DIR/prof2.out" && fail "unknown profile accepted"
grep -q "^route error code=INVALID_REQUEST .*routing_profile 'no-such-profile' is not configured" \
    "$T_DIR/prof2.out" || fail "unknown profile: $(cat "$T_DIR/prof2.out")"
pass "profile cheap chose $pc (lambda 10, greedy, named in the reason); an unknown profile: INVALID_REQUEST"

# ---- The same request gives the same decision (seed from episode and turn)
probe --lambda 0 "$CODE" >"$T_DIR/l0b.out" || fail "lambda 0 again"
assert_eq "$(grep '^decision' "$T_DIR/l0b.out" | sed 's/request_id=[^ ]*//')" \
    "$(grep '^decision' "$T_DIR/l0.out" | sed 's/request_id=[^ ]*//')" "replayed decision"
probe --lambda 0 --episode ep-other --turn 3 "$CODE" >"$T_DIR/l0c.out" || fail "other episode"
[ "$(field "$T_DIR/l0c.out" decision seed)" != "$(field "$T_DIR/l0.out" decision seed)" ] \
    || fail "another episode got the same seed"
pass "same episode and turn: same seed and decision; another episode: another seed"

# ---- Exclusions and budget
probe --lambda 0 --exclude "$good" "$CODE" >"$T_DIR/excl.out" || fail "exclude"
[ "$(field "$T_DIR/excl.out" decision chosen)" != "$good" ] || fail "excluded agent $good chosen"
grep -q "^  agent=$good eligible=0 .*excluded=\"excluded by request\"" "$T_DIR/excl.out" \
    || fail "excluded agent not marked"
probe --budget 0.0000000001 "$CODE" >"$T_DIR/budget.out" && fail "a tiny budget was accepted"
grep -q "^route error code=BUDGET_EXHAUSTED" "$T_DIR/budget.out" || fail "no BUDGET_EXHAUSTED: $(cat "$T_DIR/budget.out")"
all=$(grep '^  agent=' "$T_DIR/code.out" | sed 's/^  agent=\([^ ]*\) .*/\1/' | tr '\n' , | sed 's/,$//')
probe --exclude "$all" "$CODE" >"$T_DIR/none.out" && fail "every agent excluded, still routed"
grep -q "^route error code=NO_ELIGIBLE_AGENT" "$T_DIR/none.out" || fail "no NO_ELIGIBLE_AGENT: $(cat "$T_DIR/none.out")"
pass "exclude_agents honoured; BUDGET_EXHAUSTED and NO_ELIGIBLE_AGENT answered"

# ---- Unknown versions and modes
probe --version no-such-version "$CODE" >"$T_DIR/unk.out" && fail "unknown version accepted"
grep -q "^infer error code=UNKNOWN_HANDBOOK" "$T_DIR/unk.out" || fail "skill-inference: $(cat "$T_DIR/unk.out")"
"$SO_BIN/so-probe" --route "$ROUTER" --version no-such-version "$CODE" >"$T_DIR/unk2.out" \
    && fail "router accepted an unknown version"
grep -q "^route error code=UNKNOWN_HANDBOOK" "$T_DIR/unk2.out" || fail "router: $(cat "$T_DIR/unk2.out")"
probe --mode no-such-mode "$CODE" >"$T_DIR/mode.out" && fail "unknown mode accepted"
grep -q "^infer error code=INVALID_REQUEST" "$T_DIR/mode.out" || fail "mode: $(cat "$T_DIR/mode.out")"
pass "unknown handbook version: UNKNOWN_HANDBOOK from both; unknown mode: INVALID_REQUEST"

# ---- Malformed frames: an error reply, and the services keep serving
for ep in "$INFER" "$ROUTER"; do
    "$SO_BIN/so-probe" --raw-garbage "$ep" --timeout-ms 5000 >"$T_DIR/garbage.out" 2>&1 \
        || fail "no error reply from $ep: $(cat "$T_DIR/garbage.out")"
    grep -q "^garbage error code=INVALID_REQUEST" "$T_DIR/garbage.out" || fail "$(cat "$T_DIR/garbage.out")"
done
probe "$CODE" >/dev/null || fail "not serving after malformed frames"
alive skill-inference && alive router || fail "a service died on a malformed frame"
grep -q "request_rejected" "$T_DIR/router.log" || fail "router did not log the rejection"
pass "malformed frames answered with INVALID_REQUEST; both services keep serving"

# ---- Online stats: the router's poll picks up a change in Redis
# Make $good look hopeless on every skill (10,000 failed attempts) and bump
# the sequence number, as a learner's so_apply would.
for sk in $(grep -o '^  skill=[^ ]*' "$T_DIR/code.out" "$T_DIR/mc.out" | sed 's/.*skill=//' | sort -u); do
    rcli HINCRBYFLOAT so:stats:rs-1 "$good$(printf '\037')$sk$(printf '\037')n" 10000 >/dev/null
done
rcli INCR so:seq:rs-1 >/dev/null
sleep 1
probe --lambda 0 "$CODE" >"$T_DIR/after.out" || fail "after stats change"
[ "$(field "$T_DIR/after.out" decision chosen)" != "$good" ] || fail "router did not pick up the new stats"
grep -q "stats seq 1" "$T_DIR/after.out" || fail "decision not from stats seq 1"
pass "router reloaded the online stats (seq 1) without a restart: $good no longer chosen"

# ---- A newly published version becomes current; pinned old one still works
"$SO_BIN/so-learn" --quiet --train "$D/arc_challenge_train.csv,$D/mbpp_train.csv" --version rs-2 \
    --out "$T_DIR/hb2.json" --publish "$REDIS_URL" || fail "so-learn rs-2"
wait_for "skill-inference to load rs-2" 10 grep -q "handbook_loaded version=rs-2" "$T_DIR/skill-inference.log"
probe "$CODE" >"$T_DIR/v2.out" || fail "after publishing rs-2"
assert_eq "$(field "$T_DIR/v2.out" decision version)" rs-2 "version after publishing"
probe --version rs-1 "$CODE" >"$T_DIR/v1.out" || fail "pinned rs-1"
assert_eq "$(field "$T_DIR/v1.out" decision version)" rs-1 "pinned version"
pass "new current version rs-2 served; pinned rs-1 still served"

# ---- Stats lines, then SIGTERM → exit 0
sleep 1.2
grep -q "info stats requests=" "$T_DIR/skill-inference.log" || fail "no stats line (skill-inference)"
grep -q "info stats requests=" "$T_DIR/router.log" || fail "no stats line (router)"
grep -q "info stats requests=.* profile_unknown=1 profiled=1 " "$T_DIR/router.log" \
    || fail "router stats do not count the profiles"
stop_one skill-inference TERM || fail "skill-inference did not exit 0 on SIGTERM"
stop_one router TERM || fail "router did not exit 0 on SIGTERM"
pass "stats lines logged; both exit 0 on SIGTERM"

# log.format = json: every line one JSON object, the event's fields as keys.
SO_LOG_FORMAT=json SO_SKILL_INFERENCE_ENDPOINT="tcp://127.0.0.1:$(free_port)" \
    start_bg si-json "$SO_BIN/so-skill-inference"
wait_for "the JSON-logging skill-inference to load rs-2" 10 \
    grep -q '"event":"handbook_loaded".*"version":"rs-2"' "$T_DIR/si-json.log"
stop_one si-json TERM || fail "si-json did not exit 0 on SIGTERM"
python3 - "$T_DIR/si-json.log" <<'EOF' || fail "log.format=json: $(head -c 800 "$T_DIR/si-json.log")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
events = [json.loads(l) for l in lines]
assert len(events) >= 3, len(events)
assert all({"ts", "service", "instance", "level", "event"} <= e.keys() for e in events)
assert any(e["event"] == "stopped" or e["event"] == "stats" for e in events), events[-1]
EOF
pass "log.format = json: $(wc -l <"$T_DIR/si-json.log") lines, each a JSON object"
