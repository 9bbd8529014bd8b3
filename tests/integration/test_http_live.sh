# The HTTP front door with live agents: curl → so-http → gateway →
# skill-inference → router → a live agent-worker → tests/openai_stub.py (an
# OpenAI-compatible test server) and back.  The handbook's two agents are
# served by the stub: "fast" answers, "strong" always fails (HTTP 500).
#   - a chat completion is the stub's answer, with the decision attached;
#     a turn routed to "strong" falls back to "fast" and says so;
#   - live turns carry no score, so their episodes wait in so:pending until
#     POST /v1/feedback finishes them: logged, applied by the learner, and
#     the next decision is made on the new statistics (its reason names
#     the stats sequence number);
#   - a two-turn episode (final_turn false, then true) is finished by one
#     feedback with both turns;
#   - model=strong: it fails and no other agent may take the turn, so the
#     gateway answers NO_ELIGIBLE_AGENT (503) naming the failure;
#   - stream=true is a valid SSE stream of the stub's answer.
. tests/integration/lib.sh
. tests/integration/services.sh
D=../shared/data/routerbench
command -v curl >/dev/null 2>&1 || fail "curl not installed"
command -v python3 >/dev/null 2>&1 || fail "python3 not installed (the stub and JSON checks)"

start_bg stub python3 tests/openai_stub.py --port-file "$T_DIR/stub.port"
wait_for "the stub's port file" 10 test -s "$T_DIR/stub.port"
STUB="http://127.0.0.1:$(cat "$T_DIR/stub.port")/v1"

# A handbook whose agents are "fast" and "strong": MBPP training records of
# two RouterBench models under those names.
start_redis
"$SO_BIN/so-import" --routerbench "$D/mbpp_train.csv" --out "$T_DIR/mbpp.jsonl" 2>/dev/null \
    || fail "so-import"
python3 - "$T_DIR/mbpp.jsonl" "$T_DIR/live.jsonl" <<'EOF' || fail "cannot rename the agents"
import json, sys
names = {"gpt-3.5-turbo-1106": "fast", "gpt-4-1106-preview": "strong"}
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        e = json.loads(line)
        if e["turns"][0]["agent"] in names:
            for t in e["turns"]:
                t["agent"] = names[t["agent"]]
            e["episode_id"] = e["query_id"] + "/" + e["turns"][0]["agent"]
            out.write(json.dumps(e) + "\n")
EOF
"$SO_BIN/so-learn" --quiet --train "$T_DIR/live.jsonl" --version live-1 --out "$T_DIR/hb.json" \
    --publish "$REDIS_URL" || fail "so-learn"

export SO_AGENT_WORKER_BACKEND=live SO_AGENT_WORKER_LIVE_AGENTS=fast,strong
export SO_AGENT_WORKER_AGENT_FAST_BASE_URL="$STUB" SO_AGENT_WORKER_AGENT_FAST_MODEL="slow:300~fast"
export SO_AGENT_WORKER_AGENT_FAST_PRICE_IN=0.5 SO_AGENT_WORKER_AGENT_FAST_PRICE_OUT=1.5
export SO_AGENT_WORKER_AGENT_STRONG_BASE_URL="$STUB" SO_AGENT_WORKER_AGENT_STRONG_MODEL="status:500~strong"
export SO_AGENT_WORKER_AGENT_STRONG_MAX_RETRIES=0
start_services 1

HTTP_PORT=$(free_port)
SO_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" SO_HTTP_GATEWAY_ENDPOINT="$GATEWAY" SO_HTTP_REFRESH_MS=200 \
    start_bg http "$SO_BIN/so-http"
U="http://127.0.0.1:$HTTP_PORT"
wait_for "so-http to be ready" 20 curl -sf "$U/readyz"

hc() {
    _hc_n=$1; shift
    curl -s --max-time 20 -o "$T_DIR/$_hc_n.body" -D "$T_DIR/$_hc_n.hdr" -w '%{http_code}' \
        -H 'Content-Type: application/json' "$@"
}
js() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
hdr() { grep -i "^$2:" "$T_DIR/$1.hdr" | head -1 | sed 's/^[^:]*: *//' | tr -d '\r'; }
user() { printf '{"model":"%s","messages":[{"role":"user","content":"%s"}]%s}' "$1" "$2" "${3:-}"; }
applied() { [ "$(rcli SISMEMBER so:applied:live-1 "$1")" = 1 ]; }

# ---- An answer from the live agent --------------------------------------
assert_eq "$(hc q1 -d "$(user auto 'What is 2+2?')" "$U/v1/chat/completions")" 200 \
    "chat: $(cat "$T_DIR/q1.body")"
assert_eq "$(js "$T_DIR/q1.body" 'd["choices"][0]["message"]["content"]')" "echo: What is 2+2?" \
    "the stub's answer"
assert_eq "$(hdr q1 X-SO-Agent)" fast "the agent that answered"
assert_eq "$(js "$T_DIR/q1.body" 'd["usage"]["prompt_tokens"], d["usage"]["completion_tokens"]')" \
    "(3, 4)" "usage from the stub's reply"
js "$T_DIR/q1.body" 'd["skillorchestra"]["cost_usd"] > 0' | grep -qx True || fail "no cost"
# Routed to "strong" first, the turn fell back to "fast"; either way the
# decision says which agent answered.
for i in 1 2 3 4 5 6; do
    hc fbk -d "$(user auto "fallback check $i")" "$U/v1/chat/completions" >/dev/null
    grep -q 'fallback: strong failed' "$T_DIR/fbk.body" && break
done
grep -q 'fallback: strong failed' "$T_DIR/fbk.body" && assert_eq "$(hdr fbk X-SO-Agent)" fast \
    "the agent after a fallback"
pass "an answer from the live agent through so-http and the services, decision attached"

# ---- Feedback finishes live episodes ------------------------------------
EP=$(hdr q1 X-SO-Episode-Id)
wait_for "the unscored turn in so:pending" 10 sh -c \
    "[ \"\$(redis-cli -p $REDIS_PORT EXISTS so:pending:$EP)\" = 1 ]"
rcli XRANGE so:episodes - + | grep -qx "$EP" && fail "live episode logged before feedback"
assert_eq "$(hc fb1 -d "{\"episode_id\":\"$EP\",\"success\":true}" "$U/v1/feedback")" 200 \
    "feedback: $(cat "$T_DIR/fb1.body")"
rcli XRANGE so:episodes - + | grep -qx "$EP" || fail "episode not logged after feedback"
wait_for "the learner to apply $EP" 20 applied "$EP"
SEQ=$(rcli GET so:seq:live-1)
[ "${SEQ:-0}" -ge 1 ] || fail "so:seq:live-1 did not move"
# The next decision uses the new statistics (the router polls so:seq).
wait_for "a decision made at stats seq $SEQ" 20 sh -c \
    "curl -s -H 'Content-Type: application/json' -d '$(user auto 'And 3+3?')' $U/v1/chat/completions \
     | grep -q 'stats seq $SEQ'"
pass "feedback: the live episode is logged, applied by the learner, and the next decision uses it"

# A two-turn episode: both turns wait, one feedback ends the episode.
assert_eq "$(hc t0 -d "$(user auto 'Name a prime.' ',"skillorchestra":{"episode_id":"live-ep-2","final_turn":false}')" \
    "$U/v1/chat/completions")" 200 "turn 0"
cat >"$T_DIR/t1.json" <<'EOF'
{"model": "auto", "skillorchestra": {"episode_id": "live-ep-2", "final_turn": true},
 "messages": [{"role": "user", "content": "Name a prime."},
              {"role": "assistant", "content": "echo: Name a prime."},
              {"role": "user", "content": "Another one?"}]}
EOF
assert_eq "$(hc t1 -d @"$T_DIR/t1.json" "$U/v1/chat/completions")" 200 "turn 1"
assert_eq "$(js "$T_DIR/t1.body" 'd["skillorchestra"]["turn_index"]')" 1 \
    "turn_index defaults to the assistant messages so far"
wait_for "both turns in so:pending" 10 sh -c \
    "[ \"\$(redis-cli -p $REDIS_PORT LLEN so:pending:live-ep-2)\" = 2 ]"
assert_eq "$(hc fb2 -d '{"episode_id":"live-ep-2","score":0.8}' "$U/v1/feedback")" 200 \
    "feedback by score"
wait_for "the learner to apply live-ep-2" 20 applied live-ep-2
assert_eq "$(rcli EXISTS so:pending:live-ep-2)" 0 "pending turns dropped"
pass "a two-turn live episode finished by one feedback"

# ---- Agent failure without fallback, streaming --------------------------
assert_eq "$(hc strong -d "$(user strong 'Only strong')" "$U/v1/chat/completions")" 503 \
    "model=strong: $(cat "$T_DIR/strong.body")"
assert_eq "$(js "$T_DIR/strong.body" 'd["error"]["code"]')" no_eligible_agent "error code"
grep -q 'strong failed' "$T_DIR/strong.body" || fail "the error does not name the failed agent"
assert_eq "$(hc st -d "$(user auto 'Stream me' ',"stream":true')" "$U/v1/chat/completions")" 200 "stream"
python3 - "$T_DIR/st.body" <<'EOF' || fail "stream: $(cat "$T_DIR/st.body")"
import json, sys
ev = [e for e in open(sys.argv[1]).read().split("\n\n") if e]
assert ev[-1] == "data: [DONE]"
text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in ev[:-1])
assert text == "echo: Stream me", text
EOF
pass "the only allowed agent failing: 503 naming the failure; stream=true carries the answer"

# ---- Incremental streaming ----------------------------------------------
# "fast" is the stub's slow:300 model: it streams one word every 300 ms, so
# the first delta must reach the client well before [DONE].
curl -sN --max-time 30 -H 'Content-Type: application/json' \
    -d "$(user fast 'one two three four five' ',"stream":true,"stream_options":{"include_usage":true}')" \
    "$U/v1/chat/completions" | python3 -c '
import json, sys, time
first = done = None
text, usage = "", None
for line in sys.stdin:
    now = time.monotonic()
    if not line.startswith("data: "):
        continue
    data = line[6:].strip()
    if data == "[DONE]":
        done = now
        break
    d = json.loads(data)
    assert "error" not in d, d
    if d["choices"] and d["choices"][0]["delta"].get("content"):
        first = first or now
        text += d["choices"][0]["delta"]["content"]
    usage = d.get("usage") or usage
assert done and first, (first, done)
assert text == "echo: one two three four five", text
assert usage and usage["completion_tokens"] > 0, usage
gap = done - first
assert gap > 0.5, "first delta only %.3f s before [DONE]" % gap
print("first delta %.3f s before [DONE]" % gap)
' > "$T_DIR/inc.out" 2>&1 || fail "incremental stream: $(cat "$T_DIR/inc.out")"
pass "stream=true is incremental: $(cat "$T_DIR/inc.out"), deltas = the whole answer"

# The streamed reply's headers name the episode the gateway opened (it was
# formatted from a NULL: "(null)"), and feedback for it is accepted.
curl -sN --max-time 30 -D "$T_DIR/sh.hdr" -o "$T_DIR/sh.body" -H 'Content-Type: application/json' \
    -d "$(user fast 'six seven' ',"stream":true')" "$U/v1/chat/completions" || fail "stream headers"
SEP=$(hdr sh X-SO-Episode-Id)
case $SEP in
""|*null*) fail "streamed reply: X-SO-Episode-Id is '$SEP'" ;;
esac
grep -q "episode_id=$SEP " "$T_DIR/http.log" || fail "access log does not name episode $SEP"
pass "streamed reply: X-SO-Episode-Id $SEP (the gateway's), in the access log too"

for s in http gateway router skill-inference learner worker-1; do
    stop_one "$s" TERM || fail "$s did not exit cleanly on SIGTERM"
done
pass "every service exits 0 on SIGTERM"
