# The HTTP front door end to end: so-http in front of the real service set
# (gateway, skill-inference, router, learner, two replay workers, a handbook
# learned from RouterBench), driven with curl:
#   chat completions in OpenAI's shape with the decision in headers and in
#   the "skillorchestra" extension; SSE when stream=true; bearer API keys;
#   malformed JSON, oversize bodies, unknown routes, methods and models;
#   gateway errors as HTTP statuses; a local timeout; feedback finishing a
#   pending episode into the episode log (and the learner applying it);
#   /v1/models, /v1/handbook, /healthz, /readyz, /metrics; the gateway
#   going away; SIGTERM draining with a request in flight.
# The official OpenAI Python/Node client runs too when installed.
. tests/integration/lib.sh
. tests/integration/services.sh
D=../shared/data/routerbench
command -v curl >/dev/null 2>&1 || fail "curl not installed"
command -v python3 >/dev/null 2>&1 || fail "python3 not installed (the test reads JSON with it)"

start_redis
"$SO_BIN/so-learn" --quiet --train "$D/arc_challenge_train.csv,$D/mbpp_train.csv" --version http-1 \
    --out "$T_DIR/hb.json" --publish "$REDIS_URL" || fail "so-learn"
start_services 2 "$D/arc_challenge_test.csv,$D/mbpp_test.csv"

# Request bodies: real test prompts (the replay workers answer those).
"$SO_BIN/so-import" --routerbench "$D/arc_challenge_test.csv" --out "$T_DIR/arc.jsonl" \
    2>/dev/null || fail "so-import"
python3 - "$T_DIR" <<'EOF' || fail "cannot build request bodies"
import json, sys
d = sys.argv[1]
prompts = []
for line in open(d + "/arc.jsonl"):
    p = json.loads(line)["turns"][0]["prompt"]
    if p not in prompts:
        prompts.append(p)
def req(name, i, **extra):
    body = {"model": "auto", "messages": [{"role": "user", "content": prompts[i]}]}
    body.update(extra)
    json.dump(body, open("%s/%s.json" % (d, name), "w"))
req("chat", 0)
req("stream", 1, stream=True, stream_options={"include_usage": True})
req("pending", 2, skillorchestra={"final_turn": False})
req("pending2", 3, skillorchestra={"final_turn": False, "episode_id": "http-ep-2"})
req("agent", 4, model="claude-v1")
req("budget", 5, skillorchestra={"budget_usd": 1e-10})
req("pinned", 6, skillorchestra={"handbook_version": "no-such-version"})
req("noagent", 7, model="claude-v1", skillorchestra={"exclude_agents": ["claude-v1"]})
req("badmodel", 8, model="gpt-9")
req("slow", 9)
open(d + "/prompts.json", "w").write(json.dumps(prompts[10:20]))
EOF

KEY=http-test-key
HTTP_PORT=$(free_port)
SO_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" SO_HTTP_GATEWAY_ENDPOINT="$GATEWAY"
SO_HTTP_API_KEYS="other-key, $KEY" SO_HTTP_MAX_BODY_BYTES=65536 SO_HTTP_TIMEOUT_MS=800
SO_HTTP_DRAIN_MS=5000 SO_HTTP_REFRESH_MS=200 SO_HTTP_CONNECT_WAIT_MS=300
export SO_HTTP_LISTEN SO_HTTP_GATEWAY_ENDPOINT SO_HTTP_API_KEYS SO_HTTP_MAX_BODY_BYTES \
    SO_HTTP_TIMEOUT_MS SO_HTTP_DRAIN_MS SO_HTTP_REFRESH_MS SO_HTTP_CONNECT_WAIT_MS
start_bg http "$SO_BIN/so-http"
U="http://127.0.0.1:$HTTP_PORT"
wait_for "so-http to be ready" 20 curl -sf "$U/readyz"

# hc NAME ARGS...: curl into $T_DIR/NAME.body and NAME.hdr; prints the status.
hc() {
    _hc_n=$1; shift
    curl -s --max-time 20 -o "$T_DIR/$_hc_n.body" -D "$T_DIR/$_hc_n.hdr" -w '%{http_code}' "$@"
}
AUTH="Authorization: Bearer $KEY"
chat() {
    _ch_n=$1; shift
    hc "$_ch_n" -H "$AUTH" -H 'Content-Type: application/json' "$U/v1/chat/completions" "$@"
}
# jq-like: js FILE PYTHON-EXPRESSION-ON-d
js() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
hdr() { grep -i "^$2:" "$T_DIR/$1.hdr" | head -1 | sed 's/^[^:]*: *//' | tr -d '\r'; }
# An error in OpenAI's shape with this code.
is_error() {
    assert_eq "$(js "$T_DIR/$1.body" 'sorted(d["error"].keys())')" \
        "['code', 'message', 'param', 'type']" "$1: error shape"
    assert_eq "$(js "$T_DIR/$1.body" 'd["error"]["code"]')" "$2" "$1: error code"
}

# ---- Health and auth ----------------------------------------------------
assert_eq "$(hc health "$U/healthz")" 200 "/healthz"
assert_eq "$(js "$T_DIR/health.body" 'd["status"]')" ok "/healthz body"
assert_eq "$(hc ready "$U/readyz")" 200 "/readyz"
assert_eq "$(js "$T_DIR/ready.body" 'd["ready"], d["gateway"]["connected"], d["handbook_version"]')" \
    "(True, 1, 'http-1')" "/readyz body"
pass "/healthz and /readyz"

assert_eq "$(hc noauth -d @"$T_DIR/chat.json" "$U/v1/chat/completions")" 401 "chat without a key"
is_error noauth missing_api_key
[ "$(hdr noauth WWW-Authenticate)" = Bearer ] || fail "401 without WWW-Authenticate: Bearer"
assert_eq "$(hc badauth -H 'Authorization: Bearer nope' -d @"$T_DIR/chat.json" "$U/v1/chat/completions")" \
    401 "chat with a wrong key"
is_error badauth invalid_api_key
assert_eq "$(hc models_noauth "$U/v1/models")" 401 "/v1/models without a key"
pass "API keys: 401 in OpenAI's error shape without or with a wrong key"

# ---- A chat completion --------------------------------------------------
assert_eq "$(chat chat -d @"$T_DIR/chat.json")" 200 "chat completion: $(cat "$T_DIR/chat.body")"
B="$T_DIR/chat.body"
assert_eq "$(js "$B" 'd["object"], d["choices"][0]["message"]["role"], d["choices"][0]["finish_reason"]')" \
    "('chat.completion', 'assistant', 'stop')" "chat.completion shape"
js "$B" 'd["id"].startswith("chatcmpl-") and isinstance(d["created"], int) and len(d["choices"][0]["message"]["content"]) > 0' \
    | grep -qx True || fail "id/created/content missing: $(cat "$B")"
assert_eq "$(js "$B" 'd["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + d["usage"]["completion_tokens"] > 0')" \
    True "usage"
AGENT=$(js "$B" 'd["skillorchestra"]["agent"]')
assert_eq "$(hdr chat X-SO-Agent)" "$AGENT" "X-SO-Agent header = extension agent"
assert_eq "$(js "$B" 'd["model"]')" "$AGENT" "model = the chosen agent's model (RouterBench ids are model names)"
assert_eq "$(hdr chat X-SO-Handbook-Version)" http-1 "X-SO-Handbook-Version"
assert_eq "$(js "$B" 'd["skillorchestra"]["handbook_version"]')" http-1 "extension handbook_version"
assert_eq "$(hdr chat X-SO-Episode-Id)" "$(js "$B" 'd["skillorchestra"]["episode_id"]')" "episode id"
[ -n "$(hdr chat X-SO-Top-Skills)" ] || fail "no X-SO-Top-Skills header"
js "$B" 'all(k in d["skillorchestra"] for k in ("top_skills","scores","reason","strategy","cost_usd")) and len(d["skillorchestra"]["scores"]) == 11 and all(set(s) >= {"agent","score","competence","cost"} for s in d["skillorchestra"]["scores"]) and all(set(t) == {"id","weight"} for t in d["skillorchestra"]["top_skills"])' \
    | grep -qx True || fail "decision extension incomplete: $(cat "$B")"
pass "chat completion: OpenAI shape, decision in X-SO-* headers and the skillorchestra extension"

# ---- Streaming ----------------------------------------------------------
assert_eq "$(chat stream -d @"$T_DIR/stream.json")" 200 "stream=true"
case $(hdr stream Content-Type) in text/event-stream*) ;; *) fail "stream: not text/event-stream" ;; esac
python3 - "$T_DIR/stream.body" <<'EOF' || fail "stream: not a valid SSE stream: $(head -c 600 "$T_DIR/stream.body")"
import json, sys
raw = open(sys.argv[1]).read()
events = [e for e in raw.split("\n\n") if e]
assert raw.endswith("\n\n") and events[-1] == "data: [DONE]", "must end with data: [DONE]"
text, usage = "", None
for e in events[:-1]:
    assert e.startswith("data: "), e
    c = json.loads(e[6:])
    assert c["object"] == "chat.completion.chunk"
    if c["choices"]:
        text += c["choices"][0]["delta"].get("content", "")
    else:
        usage = c["usage"]
assert text and usage and usage["total_tokens"] > 0
EOF
case $(hdr stream X-SO-Episode-Id) in
""|*null*) fail "stream: X-SO-Episode-Id is '$(hdr stream X-SO-Episode-Id)'" ;;
esac
pass "stream=true: a valid SSE stream of chat.completion.chunk events ending in [DONE], episode $(hdr stream X-SO-Episode-Id)"

# ---- Malformed and refused requests -------------------------------------
assert_eq "$(chat bad -d '{"model":"auto","messages":[}')" 400 "malformed JSON"
is_error bad invalid_json
grep -q 'line 1 column' "$T_DIR/bad.body" || fail "malformed JSON: the error does not say where"
assert_eq "$(chat badrole -d '{"model":"auto","messages":[{"role":"robot","content":"x"}]}')" 400 \
    "bad role"
assert_eq "$(js "$T_DIR/badrole.body" 'd["error"]["param"]')" "messages[0].role" "param names the field"
head -c 70000 /dev/zero | tr '\0' a >"$T_DIR/big"
assert_eq "$(chat big --data-binary @"$T_DIR/big")" 413 "oversize body"
is_error big request_too_large
assert_eq "$(chat bigchunked -H 'Transfer-Encoding: chunked' --data-binary @"$T_DIR/big")" 413 \
    "oversize chunked body"
assert_eq "$(hc nope -H "$AUTH" "$U/v1/nope")" 404 "unknown route"
is_error nope unknown_url
assert_eq "$(hc getchat -H "$AUTH" "$U/v1/chat/completions")" 405 "GET on chat"
assert_eq "$(chat badmodel -d @"$T_DIR/badmodel.json")" 404 "unknown model"
is_error badmodel model_not_found
assert_eq "$(hc health2 "$U/healthz")" 200 "/healthz after bad requests"
assert_eq "$(chat chat2 -d @"$T_DIR/chat.json")" 200 "chat after bad requests"
pass "malformed JSON 400, oversize 413, unknown route/model 404, 405; the service keeps serving"

# ---- Routing controls and gateway errors --------------------------------
assert_eq "$(chat agent -d @"$T_DIR/agent.json")" 200 "model = an agent"
assert_eq "$(hdr agent X-SO-Agent)" claude-v1 "model = an agent routes to it"
assert_eq "$(chat budget -d @"$T_DIR/budget.json")" 402 "budget too small"
is_error budget budget_exhausted
assert_eq "$(chat pinned -d @"$T_DIR/pinned.json")" 404 "unknown pinned handbook"
is_error pinned unknown_handbook
assert_eq "$(chat noagent -d @"$T_DIR/noagent.json")" 503 "every agent excluded"
is_error noagent no_eligible_agent
pass "model=<agent>, gateway errors as HTTP statuses (402, 404, 503)"

# ---- Models and handbook ------------------------------------------------
assert_eq "$(hc models -H "$AUTH" "$U/v1/models")" 200 "/v1/models"
assert_eq "$(js "$T_DIR/models.body" 'd["object"], d["data"][0]["id"], len(d["data"])')" \
    "('list', 'auto', 12)" "/v1/models: auto and 11 agents"
# One model by id, as OpenAI's GET /v1/models/{id}; agent ids may hold '/'.
assert_eq "$(hc m_auto -H "$AUTH" "$U/v1/models/auto")" 200 "/v1/models/auto"
assert_eq "$(js "$T_DIR/m_auto.body" 'd["id"], d["object"]')" "('auto', 'model')" "/v1/models/auto body"
assert_eq "$(hc m_slash -H "$AUTH" "$U/v1/models/meta/llama-2-70b-chat")" 200 "/v1/models/{id with /}"
assert_eq "$(js "$T_DIR/m_slash.body" 'd["id"], d["skillorchestra"]["handbook_version"]')" \
    "('meta/llama-2-70b-chat', 'http-1')" "/v1/models/{id with /} body"
assert_eq "$(hc m_none -H "$AUTH" "$U/v1/models/nope")" 404 "/v1/models/{unknown}"
is_error m_none model_not_found
assert_eq "$(hc m_noauth "$U/v1/models/auto")" 401 "/v1/models/{id} without a key"
assert_eq "$(hc hb -H "$AUTH" "$U/v1/handbook")" 200 "/v1/handbook"
assert_eq "$(js "$T_DIR/hb.body" 'd["metadata"]["version"]')" http-1 "/v1/handbook version"
assert_eq "$(hc hb2 -H "$AUTH" "$U/v1/handbook?version=http-1")" 200 "/v1/handbook?version="
assert_eq "$(hc hb3 -H "$AUTH" "$U/v1/handbook?version=nope")" 404 "/v1/handbook unknown version"
is_error hb3 unknown_handbook
pass "/v1/models, /v1/models/{id} and /v1/handbook"

# ---- Feedback -----------------------------------------------------------
fb() { hc "$1" -H "$AUTH" -H 'Content-Type: application/json' -d "$2" "$U/v1/feedback"; }
assert_eq "$(fb fb404 '{"episode_id":"no-such-episode","success":true}')" 404 "feedback, unknown episode"
is_error fb404 episode_not_found
assert_eq "$(fb fbbad '{"episode_id":"x"}')" 400 "feedback without success or score"
assert_eq "$(chat pending -d @"$T_DIR/pending.json")" 200 "a turn with final_turn false"
EP=$(hdr pending X-SO-Episode-Id)
[ -n "$EP" ] || fail "no episode id"
wait_for "the turn of $EP in so:pending" 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT EXISTS so:pending:$EP)\" = 1 ]"
rcli XRANGE so:episodes - + | grep -qx "$EP" && fail "episode $EP logged before feedback"
SEQ0=$(rcli GET so:seq:http-1)
assert_eq "$(fb fb "{\"episode_id\":\"$EP\",\"success\":true}")" 200 "feedback: $(cat "$T_DIR/fb.body")"
assert_eq "$(js "$T_DIR/fb.body" 'd["status"], d["episode_id"]')" "('logged', '$EP')" "feedback reply"
rcli XRANGE so:episodes - + | grep -qx "$EP" || fail "episode $EP not in so:episodes after feedback"
assert_eq "$(rcli EXISTS "so:pending:$EP")" 0 "pending turns dropped"
wait_for "the learner to apply $EP" 20 sh -c \
    "[ \"\$(redis-cli -p $REDIS_PORT SISMEMBER so:applied:http-1 $EP)\" = 1 ]"
[ "$(rcli GET so:seq:http-1)" -gt "${SEQ0:-0}" ] || fail "so:seq:http-1 did not move"
assert_eq "$(fb fbagain "{\"episode_id\":\"$EP\",\"success\":true}")" 404 "feedback twice"
# Right after the answer, by score, the episode id chosen by the client.
assert_eq "$(chat pending2 -d @"$T_DIR/pending2.json")" 200 "a client-named episode"
assert_eq "$(fb fb2 '{"episode_id":"http-ep-2","score":0.5}')" 200 "feedback right after the turn"
rcli XRANGE so:episodes - + | grep -qx http-ep-2 || fail "http-ep-2 not logged"
pass "feedback: pending episode logged to so:episodes, the learner applied it (so:seq moved); 404 when nothing pends"

# ---- Metrics ------------------------------------------------------------
assert_eq "$(hc metrics "$U/metrics")" 200 "/metrics"
M="$T_DIR/metrics.body"
for want in 'so_http_requests_total{route="chat",code="200"}' \
            'so_http_requests_total{route="chat",code="401"}' \
            'so_http_rejected_total{reason="invalid_json"} 1' \
            'so_http_feedback_total{result="logged"} 2' \
            'so_http_feedback_total{result="not_found"} 2' \
            'so_http_errors_total{code="BUDGET_EXHAUSTED",source="gateway"} 1' \
            'so_http_request_duration_seconds_bucket{route="chat",le="+Inf"}' \
            'so_http_gateway_peers 1' 'so_http_ready 1'; do
    grep -qF "$want" "$M" || fail "/metrics lacks '$want'"
done
pass "/metrics: requests by status, latency histogram, errors by ErrorCode, rejections, feedback"

# ---- The official OpenAI client, when installed -------------------------
if python3 -c 'import openai' 2>/dev/null; then
    python3 - "$U" "$KEY" "$T_DIR/prompts.json" <<'EOF' || fail "openai python client"
import json, sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2])
p = json.load(open(sys.argv[3]))[0]
r = c.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": p}])
assert r.headers["x-so-agent"]
cc = r.parse()
assert cc.choices[0].message.content
s = c.chat.completions.create(model="auto", stream=True, messages=[{"role": "user", "content": p}])
assert "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
try:
    openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="wrong").models.list()
    raise SystemExit("no 401")
except openai.AuthenticationError:
    pass
EOF
    pass "the official openai Python client works against so-http"
else
    say "skip: the openai Python package is not installed"
fi
if command -v node >/dev/null 2>&1 && node -e 'require("openai")' 2>/dev/null; then
    say "note: the openai Node package is installed but not exercised here"
else
    say "skip: the openai Node package is not installed"
fi

# ---- A local timeout: the gateway stops answering -----------------------
GW_PID=$(pid_of gateway)
s_kill STOP "$GW_PID"
assert_eq "$(chat slow -d @"$T_DIR/slow.json")" 504 "gateway frozen: timeout_ms"
s_kill CONT "$GW_PID"
is_error slow timeout
wait_for "a chat answered again after the gateway resumed" 20 \
    sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H '$AUTH' -d @$T_DIR/chat.json $U/v1/chat/completions)\" = 200 ]"
pass "no answer within timeout_ms: 504 timeout; served again once the gateway answers"

# ---- SIGTERM with a request in flight ----------------------------------
s_kill STOP "$GW_PID"
(chat inflight -d @"$T_DIR/slow.json" >"$T_DIR/inflight.status") &
CURL_PID=$!
sleep 0.3
stop_one http TERM || { s_kill CONT "$GW_PID"; fail "so-http did not exit 0 on SIGTERM"; }
s_kill CONT "$GW_PID"
wait "$CURL_PID"
assert_eq "$(cat "$T_DIR/inflight.status")" 504 "the request in flight at SIGTERM was answered"
grep -q 'draining inflight=1' "$T_DIR/http.log" || fail "SIGTERM came with no request in flight"
grep -q 'stop exit=0' "$T_DIR/http.log" || fail "no stop line in the log"
pass "SIGTERM: the request in flight is answered (its deadline), then exit 0"

# ---- The gateway goes away ----------------------------------------------
start_bg http "$SO_BIN/so-http"
wait_for "so-http to be ready again" 20 curl -sf "$U/readyz"
stop_one gateway || fail "gateway did not exit cleanly"
wait_for "/readyz to say not ready" 20 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $U/readyz)\" = 503 ]"
assert_eq "$(chat down -d @"$T_DIR/chat.json")" 503 "no gateway"
is_error down unavailable
assert_eq "$(hc health3 "$U/healthz")" 200 "/healthz without a gateway"
stop_one http TERM || fail "so-http did not exit 0 on SIGTERM"
pass "gateway gone: /readyz 503, chat 503 unavailable, /healthz 200; exit 0 on SIGTERM"
