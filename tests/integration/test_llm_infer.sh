#!/bin/sh
# test_llm_infer.sh — LLM-backed skill inference and skill naming against
# tests/openai_stub.py ("skills" and "name" modes), through the real
# so-skill-inference process, probed with so-probe:
#
#   1. a good analysis → demand source LLM with the stub's ids and weights;
#      a <think> block + ```json fence + trailing comma + an unknown id →
#      LLM with the known id only; the same prompt again → from the cache
#      (no second call to the stub);
#   2. prose, unknown ids only → EMBEDDED fallback (bad output); HTTP 500 →
#      EMBEDDED fallback (error); a 5 s answer → EMBEDDED fallback at the
#      1.5 s timeout, and meanwhile other turns are answered (the loop never
#      waits for the LLM); every fallback counted in the stats line and
#      logged;
#   3. SIGTERM with an analysis in flight: answered, exit 0;
#   4. so-name renames every skill and keeps ids and statistics; with bad
#      answers the skill keeps its name, counted; --label labels turns;
#   5. the stub down → EMBEDDED fallback (error), promptly.
. tests/integration/lib.sh

command -v python3 >/dev/null 2>&1 || fail "python3 is needed for tests/openai_stub.py"
D=../shared/data/routerbench
start_redis
"$SO_BIN/so-learn" --quiet --train "$D/arc_challenge_train.csv,$D/mbpp_train.csv" \
    --version llm-1 --out "$T_DIR/hb.json" --publish "$REDIS_URL" || fail "so-learn"

start_bg stub python3 tests/openai_stub.py --port-file "$T_DIR/stub.port"
wait_for "the stub's port file" 10 test -s "$T_DIR/stub.port"
STUB_PORT=$(cat "$T_DIR/stub.port")
STUB="http://127.0.0.1:$STUB_PORT/v1"

# The handbook's skill ids, in order (the stub's default analysis gives
# the first two 0.7 and 0.3).
python3 -c '
import json, sys
for sid in json.load(open(sys.argv[1]))["skills"]:
    print(sid)' "$T_DIR/hb.json" >"$T_DIR/ids"
ID1=$(sed -n 1p "$T_DIR/ids"); ID2=$(sed -n 2p "$T_DIR/ids"); ID3=$(sed -n 3p "$T_DIR/ids")
[ -n "$ID3" ] || fail "the handbook has fewer than 3 skills: $(cat "$T_DIR/ids")"

# stub_requests MODEL: requests the stub saw for MODEL.
stub_requests() {
    python3 -c '
import json, sys, urllib.request
url = "http://127.0.0.1:%s/control/stats" % sys.argv[1]
with urllib.request.urlopen(url, timeout=5) as r:
    print(json.load(r)["requests"].get(sys.argv[2], 0))' "$STUB_PORT" "$1"
}

# write_conf FILE ENDPOINT LLM_URL
write_conf() {
    cat >"$1" <<EOF
endpoint        = $2
redis.url       = $REDIS_URL
infer.mode      = llm
llm.base_url    = $3
llm.model       = skills~si
llm.timeout_ms  = 1500
llm.threads     = 2
stats_ms        = 300
drain_ms        = 4000
EOF
}

INFER="tcp://127.0.0.1:$(free_port)"
write_conf "$T_DIR/si.conf" "$INFER" "$STUB"
start_bg si "$SO_BIN/so-skill-inference" --config "$T_DIR/si.conf"
wait_for "skill-inference to load llm-1" 10 grep -q "handbook_loaded version=llm-1" "$T_DIR/si.log"

probe() { "$SO_BIN/so-probe" --infer "$INFER" --timeout-ms 10000 "$@"; }
# field FILE KEY: KEY= on the demand line
field() { grep -m1 '^demand' "$1" | tr ' ' '\n' | grep "^$2=" | sed "s/^$2=//"; }
# weight FILE ID: the weight of skill ID in the demand ("" if absent)
weight() { grep "^  skill=$2 " "$1" | sed 's/.*weight=//'; }
# stat KEY: KEY= on the last stats line (waits for a fresh one first)
stat() { grep ' stats ' "$T_DIR/si.log" | tail -1 | tr ' ' '\n' | grep "^$1=" | sed "s/^$1=//"; }
fresh_stats() {
    _fs_n=$(grep -c ' stats ' "$T_DIR/si.log")
    wait_for "a new stats line" 5 sh -c "[ \$(grep -c ' stats ' '$T_DIR/si.log') -gt $_fs_n ]"
}

CODE="Write a python function to find the maximum of three numbers."
MC="Which of the following is a renewable resource?
A) coal
B) oil
C) wind
D) natural gas
Print only a single choice from \"A\" or \"B\" or \"C\" or \"D\" without explanation.
Answer:"

# ---- 1. good analyses ----------------------------------------------------
probe "$CODE" >"$T_DIR/good.out" || fail "good: $(cat "$T_DIR/good.out")"
assert_eq "$(field "$T_DIR/good.out" source)" LLM "default analysis: source"
assert_eq "$(field "$T_DIR/good.out" skills)" 2 "default analysis: skills"
assert_eq "$(weight "$T_DIR/good.out" "$ID1")" 0.7000 "default analysis: $ID1"
assert_eq "$(weight "$T_DIR/good.out" "$ID2")" 0.3000 "default analysis: $ID2"
pass "LLM analysis: demand source LLM with the stub's ids and weights ($ID1 0.7, $ID2 0.3)"

P_MARK="Reverse a list in python <<reply:{\"skills\": [{\"id\": \"$ID3\", \"weight\": 0.25}, {\"id\": \"$ID2\", \"weight\": 0.75}]}>>"
probe "$P_MARK" >"$T_DIR/mark.out" || fail "marker: $(cat "$T_DIR/mark.out")"
assert_eq "$(field "$T_DIR/mark.out" source)" LLM "chosen analysis: source"
assert_eq "$(weight "$T_DIR/mark.out" "$ID2")" 0.7500 "chosen analysis: $ID2"
assert_eq "$(weight "$T_DIR/mark.out" "$ID3")" 0.2500 "chosen analysis: $ID3"
assert_eq "$(weight "$T_DIR/mark.out" "$ID1")" "" "chosen analysis: $ID1 absent"

P_THINK="Sort a list in python <<reply:<think>The user wants {\"skills\": [\"$ID1\"]}? No.</think>
Here you go:
\`\`\`json
{\"skills\": [{\"id\": \"$ID3\", \"weight\": 2}, {\"id\": \"calculus\", \"weight\": 1},]}
\`\`\`>>"
probe "$P_THINK" >"$T_DIR/think.out" || fail "think: $(cat "$T_DIR/think.out")"
assert_eq "$(field "$T_DIR/think.out" source)" LLM "think + fence: source"
assert_eq "$(field "$T_DIR/think.out" skills)" 1 "think + fence: skills"
assert_eq "$(weight "$T_DIR/think.out" "$ID3")" 1.0000 "think + fence: $ID3"
pass "think block, code fence, trailing comma and an unknown id: LLM demand of the known id"

before=$(stub_requests 'skills~si')
probe "$P_MARK" >"$T_DIR/mark2.out" || fail "marker again"
assert_eq "$(grep '^  skill' "$T_DIR/mark2.out")" "$(grep '^  skill' "$T_DIR/mark.out")" "cached demand"
assert_eq "$(field "$T_DIR/mark2.out" source)" LLM "cached: source"
assert_eq "$(stub_requests 'skills~si')" "$before" "stub requests after a repeated prompt"
pass "a repeated prompt is answered from the analysis cache (no LLM call)"

# ---- 2. fallbacks ---------------------------------------------------------
probe "$CODE <<reply:I think this one needs coding skills.>>" >"$T_DIR/prose.out" ||
    fail "prose: $(cat "$T_DIR/prose.out")"
assert_eq "$(field "$T_DIR/prose.out" source)" EMBEDDED "prose: source"
[ "$(field "$T_DIR/prose.out" skills)" -ge 1 ] || fail "prose: empty embedded demand"
probe "$MC <<reply:{\"skills\": [{\"id\": \"calculus\", \"weight\": 1}]}>>" >"$T_DIR/unk.out" ||
    fail "unknown: $(cat "$T_DIR/unk.out")"
assert_eq "$(field "$T_DIR/unk.out" source)" EMBEDDED "unknown ids only: source"
pass "prose and unknown-ids-only answers: EMBEDDED fallback"

probe "$CODE <<status:500>>" >"$T_DIR/e500.out" || fail "500: $(cat "$T_DIR/e500.out")"
assert_eq "$(field "$T_DIR/e500.out" source)" EMBEDDED "HTTP 500: source"
pass "HTTP 500: EMBEDDED fallback"

# A 5 s answer: the turn gets the embedded demand at the 1.5 s timeout.
# Meanwhile another turn is answered by the LLM at once.
T0=$(date +%s%N)
start_bg slow "$SO_BIN/so-probe" --infer "$INFER" --timeout-ms 10000 "$MC <<sleep:5000>>"
sleep 0.3
Td=$(date +%s%N)
probe "$MC <<reply:{\"skills\": {\"$ID1\": 1}}>>" >"$T_DIR/during.out" || fail "during the slow call"
T1=$(date +%s%N)
assert_eq "$(field "$T_DIR/during.out" source)" LLM "a turn during the slow call: source"
alive slow || fail "the slow turn was answered before its timeout"
wait_for "the slow turn's answer" 10 grep -q '^demand' "$T_DIR/slow.log"
stop_one slow || fail "so-probe of the slow turn failed: $(cat "$T_DIR/slow.log")"
T2=$(date +%s%N)
assert_eq "$(field "$T_DIR/slow.log" source)" EMBEDDED "timeout: source"
ms_during=$(( (T1 - Td) / 1000000 )); ms_slow=$(( (T2 - T0) / 1000000 ))
# Bounded by the timeout plus slack (the stub would take 5 s).
[ "$ms_slow" -lt 4000 ] || fail "the timed-out turn took $ms_slow ms (llm.timeout_ms 1500)"
pass "LLM timeout: EMBEDDED fallback after ${ms_slow} ms; another turn answered by the LLM meanwhile (${ms_during} ms)"

fresh_stats
assert_eq "$(stat llm_ok)" 4 "stats: llm_ok"
assert_eq "$(stat llm_cached)" 1 "stats: llm_cached"
assert_eq "$(stat llm_fallback_bad_output)" 2 "stats: llm_fallback_bad_output"
assert_eq "$(stat llm_fallback_error)" 1 "stats: llm_fallback_error"
assert_eq "$(stat llm_fallback_timeout)" 1 "stats: llm_fallback_timeout"
assert_eq "$(stat llm)" 5 "stats: LLM demands"
assert_eq "$(stat embedded)" 4 "stats: embedded demands"
assert_eq "$(stat llm_pending)" 0 "stats: pending"
grep -q "llm_fallback reason=timeout .*no answer within 1500 ms" "$T_DIR/si.log" ||
    fail "no log line for the timeout fallback"
pass "fallbacks counted in the stats line (bad output 2, error 1, timeout 1) and logged"

# ---- 3. SIGTERM with an analysis in flight ---------------------------------
start_bg late "$SO_BIN/so-probe" --infer "$INFER" --timeout-ms 10000 "$CODE <<sleep:800>>"
sleep 0.3
stop_one si || fail "skill-inference exited non-zero on SIGTERM"
wait_for "the in-flight turn's answer" 10 grep -q '^demand' "$T_DIR/late.log"
assert_eq "$(field "$T_DIR/late.log" source)" LLM "in flight at SIGTERM: source"
stop_one late
pass "SIGTERM: the analysis in flight finished and was answered; exit 0"

# A call longer than drain_ms: answered at once with the embedded demand.
SO_SKILL_INFERENCE_DRAIN_MS=300 start_bg si3 "$SO_BIN/so-skill-inference" --config "$T_DIR/si.conf"
wait_for "skill-inference to load llm-1" 10 grep -q "handbook_loaded version=llm-1" "$T_DIR/si3.log"
start_bg late2 "$SO_BIN/so-probe" --infer "$INFER" --timeout-ms 10000 "$CODE <<sleep:5000>>"
sleep 0.3
stop_one si3 || fail "skill-inference exited non-zero on SIGTERM (short drain)"
wait_for "the in-flight turn's answer" 10 grep -q '^demand' "$T_DIR/late2.log"
assert_eq "$(field "$T_DIR/late2.log" source)" EMBEDDED "in flight past drain_ms: source"
grep -q "drain_deferred answered_at_once=1" "$T_DIR/si3.log" || fail "no drain_deferred line"
grep -q "llm_fallback reason=error .*stopping" "$T_DIR/si3.log" || fail "no stopping fallback logged"
stop_one late2
pass "SIGTERM with a call longer than drain_ms: answered at once with the embedded demand"

# ---- 4. so-name ------------------------------------------------------------
"$SO_BIN/so-name" --handbook "$T_DIR/hb.json" --out "$T_DIR/named.json" --llm-url "$STUB" \
    --model 'name~n1' >"$T_DIR/name1.out" 2>&1 || fail "so-name: $(cat "$T_DIR/name1.out")"
grep -q "named 3 of 3 skills; 0 kept their name" "$T_DIR/name1.out" ||
    fail "so-name report: $(cat "$T_DIR/name1.out")"
# compare_hb A B: prints "same" when A and B differ only in skill names and
# descriptions; then the new names.
compare_hb() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
names = {k: v["name"] for k, v in b["skills"].items()}
for h in (a, b):
    for s in h["skills"].values():
        s.pop("name", None); s.pop("description", None)
print("same" if a == b else "differ")
for k, v in names.items():
    print("%s=%s" % (k, v))
EOF
}
compare_hb "$T_DIR/hb.json" "$T_DIR/named.json" >"$T_DIR/cmp1.out"
assert_eq "$(head -1 "$T_DIR/cmp1.out")" same "so-name: everything but names and descriptions"
for id in $ID1 $ID2 $ID3; do
    grep -qx "$id=Named $id" "$T_DIR/cmp1.out" || fail "so-name: $id not renamed: $(cat "$T_DIR/cmp1.out")"
done
grep -q "\"description\": \"Requests that need $ID1.\"" "$T_DIR/named.json" ||
    fail "so-name: no new description"
assert_eq "$(stub_requests 'name~n1')" 3 "so-name: LLM calls"
pass "so-name: every skill renamed and described; ids, terms and statistics unchanged"

"$SO_BIN/so-name" --handbook "$T_DIR/hb.json" --out "$T_DIR/named2.json" --llm-url "$STUB" \
    --model 'name:2~n2' --version llm-2 >"$T_DIR/name2.out" 2>&1 ||
    fail "so-name with bad answers: $(cat "$T_DIR/name2.out")"
grep -q "named 2 of 3 skills; 1 kept their name (bad output 1, errors 0)" "$T_DIR/name2.out" ||
    fail "so-name report: $(cat "$T_DIR/name2.out")"
grep -q "skill id=$ID2 kept name=.*no JSON object or array" "$T_DIR/name2.out" ||
    fail "so-name: the fallback is not reported: $(cat "$T_DIR/name2.out")"
old2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["skills"][sys.argv[2]]["name"])' \
    "$T_DIR/hb.json" "$ID2")
compare_hb "$T_DIR/hb.json" "$T_DIR/named2.json" >"$T_DIR/cmp2.out"
grep -qx "$ID2=$old2" "$T_DIR/cmp2.out" || fail "so-name: $ID2 did not keep '$old2'"
grep -q '"version": "llm-2"' "$T_DIR/named2.json" || fail "so-name --version not applied"
pass "so-name: a bad answer keeps the skill's name, counted and reported"

"$SO_BIN/so-name" --handbook "$T_DIR/hb.json" --llm-url "$STUB" --model 'skills~lab' \
    --label "$D/mbpp_test.csv" --out-labels "$T_DIR/labels.jsonl" --limit 22 \
    >"$T_DIR/label.out" 2>&1 || fail "so-name --label: $(cat "$T_DIR/label.out")"
assert_eq "$(wc -l <"$T_DIR/labels.jsonl" | tr -d ' ')" 22 "labels written"
assert_eq "$(grep -c '"source":"llm"' "$T_DIR/labels.jsonl")" 22 "labels by the LLM"
[ "$(stub_requests 'skills~lab')" -lt 22 ] || fail "repeated prompts were asked again"
pass "so-name --label: 22 turns labelled, $(stub_requests 'skills~lab') LLM calls (one per distinct prompt)"

# ---- 5. the LLM endpoint down ------------------------------------------------
stop_one stub
start_bg si2 "$SO_BIN/so-skill-inference" --config "$T_DIR/si.conf"
wait_for "skill-inference to load llm-1" 10 grep -q "handbook_loaded version=llm-1" "$T_DIR/si2.log"
T0=$(date +%s%N)
probe "$CODE" >"$T_DIR/down.out" || fail "stub down: $(cat "$T_DIR/down.out")"
T1=$(date +%s%N)
assert_eq "$(field "$T_DIR/down.out" source)" EMBEDDED "stub down: source"
grep -q "llm_fallback reason=error .*UNAVAILABLE" "$T_DIR/si2.log" ||
    fail "no error fallback logged: $(grep llm_fallback "$T_DIR/si2.log")"
pass "LLM endpoint down: EMBEDDED fallback in $(( (T1 - T0) / 1000000 )) ms"
stop_one si2 || fail "skill-inference exited non-zero"
