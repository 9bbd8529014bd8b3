#!/bin/sh
# test_worker_live.sh — the agent-worker's live backend against
# tests/openai_stub.py, driven by so-workerprobe standing in for the gateway's
# worker endpoint (READY, heartbeats both ways, AgentCall → AgentResult).
#
#   1. one worker, eight agents on the stub, all calls at once:
#      a normal call returns text, tokens and cost from the reply's usage;
#      429 + Retry-After is waited out and succeeds; 500 forever → UPSTREAM
#      after the retries; a call past its deadline → TIMEOUT; the API key is
#      sent and never logged; an agent the worker does not serve →
#      UNAVAILABLE; a prompt over the context → CONTEXT_TOO_LONG; and while
#      a 2-second call runs, heartbeats keep flowing and other calls finish.
#   2. SIGTERM during a slow call: the worker drains, cancels the call after
#      drain_ms, answers it UNAVAILABLE and exits 0.
#   3. a missing API key variable stops the worker at start, naming it.
. tests/integration/lib.sh

command -v python3 >/dev/null 2>&1 || fail "python3 is needed for tests/openai_stub.py"

start_bg stub python3 tests/openai_stub.py --port-file "$T_DIR/stub.port"
wait_for "the stub's port file" 10 test -s "$T_DIR/stub.port"
STUB_PORT=$(cat "$T_DIR/stub.port")
STUB="http://127.0.0.1:$STUB_PORT/v1"

# load_results FILE: the probe's result lines as shell variables
# R_<agent>_<field> (agent ids here are shell-safe), and R_<agent>_line.
load_results() {
    python3 - "$1" >"$T_DIR/results.sh" <<'EOF'
import json, shlex, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    o = json.loads(line)
    if o.get("event") == "result":
        for k, v in o.items():
            print("R_%s_%s=%s" % (o["agent_id"], k, shlex.quote(str(v))))
        print("R_%s_line=%d" % (o["agent_id"], n))
EOF
    . "$T_DIR/results.sh"
}

# ge X Y / lt X Y: floating-point comparisons.
ge() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x >= y) }'; }
lt() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x < y) }'; }

# stub_requests MODEL: requests the stub saw for MODEL.
stub_requests() {
    python3 -c '
import json, sys, urllib.request
url = "http://127.0.0.1:%s/control/stats" % sys.argv[1]
with urllib.request.urlopen(url, timeout=5) as r:
    print(json.load(r)["requests"].get(sys.argv[2], 0))' "$STUB_PORT" "$1"
}

# write_conf FILE PORT: a live worker with every agent of this test.
write_conf() {
    cat >"$1" <<EOF
backend       = live
gateway.endpoint = tcp://127.0.0.1:$2
capacity      = 10
heartbeat_ms  = 100
liveness      = 20
drain_ms      = 500
stats_ms      = 0
log.level     = info
live.agents   = fast, limited, broken, slowto, slow, keyed, tiny

agent.fast.base_url       = $STUB
agent.fast.model          = echo~fast
agent.fast.price_in       = 1.5
agent.fast.price_out      = 2

agent.limited.base_url    = $STUB
agent.limited.model       = 429:1:1~limited

agent.broken.base_url     = $STUB
agent.broken.model        = 500:inf~broken
agent.broken.backoff_base_ms = 50
agent.broken.backoff_max_ms  = 100

agent.slowto.base_url     = $STUB
agent.slowto.model        = slow:5000~slowto

agent.slow.base_url       = $STUB
agent.slow.model          = slow:2000~slow

agent.keyed.base_url      = $STUB
agent.keyed.model         = whoami~keyed
agent.keyed.api_key_env   = SO_TEST_STUB_KEY

agent.tiny.base_url       = $STUB
agent.tiny.context        = 3
EOF
}

# ---- 1. every path at once ------------------------------------------------
export SO_TEST_STUB_KEY=sk-stub-secret-42
P1=$(free_port)
write_conf "$T_DIR/worker.conf" "$P1"
start_bg worker "$SO_BIN/so-agent-worker" --config "$T_DIR/worker.conf"
timeout 60 "$SO_BIN/so-workerprobe" --bind "tcp://127.0.0.1:$P1" --heartbeat-ms 100 \
    --timeout-ms 30000 --deadline-ms 10000 --prompt "hello big world" \
    fast limited broken slowto@800 slow keyed nosuch tiny >"$T_DIR/probe.out" \
    2>"$T_DIR/probe.log" || fail "so-workerprobe: not every call answered ($(cat "$T_DIR/probe.log"))"
say "probe output:"
cat "$T_DIR/probe.out"

load_results "$T_DIR/probe.out"

assert_eq "$R_fast_error_code" NONE "fast: error code"
assert_eq "$R_fast_text" "echo: hello big world" "fast: text"
assert_eq "$R_fast_prompt_tokens" 3 "fast: prompt tokens (usage)"
assert_eq "$R_fast_completion_tokens" 4 "fast: completion tokens (usage)"
# 3 x 1.5 + 4 x 2 USD per 1M tokens
ge "$R_fast_cost_usd" 12.4999e-6 && lt "$R_fast_cost_usd" 12.5001e-6 ||
    fail "fast: cost $R_fast_cost_usd, expected 1.25e-05"
pass "normal call: text, tokens and cost from usage"

assert_eq "$R_limited_error_code" NONE "limited: error code"
assert_eq "$R_limited_text" "echo: hello big world" "limited: text"
assert_eq "$(stub_requests '429:1:1~limited')" 2 "limited: requests the stub saw"
ge "$R_limited_latency_s" 1.0 ||
    fail "limited: latency $R_limited_latency_s s, but Retry-After asked for 1 s"
pass "429 with Retry-After: waited out, retried, succeeded"

assert_eq "$R_broken_error_code" UPSTREAM "broken: error code"
case $R_broken_error in
*"agent broken"*"HTTP 500"*"stub server error 500"*"after 3 attempts"*) ;;
*) fail "broken: error message '$R_broken_error'" ;;
esac
assert_eq "$(stub_requests '500:inf~broken')" 3 "broken: requests the stub saw"
pass "500 forever: UPSTREAM after 3 attempts, reported with the provider's message"

assert_eq "$R_slowto_error_code" TIMEOUT "slowto: error code"
lt "$R_slowto_latency_s" 4.0 ||
    fail "slowto: latency $R_slowto_latency_s s: the 800 ms deadline was not kept"
pass "deadline: TIMEOUT within the call's deadline ($R_slowto_error)"

assert_eq "$R_slow_error_code" NONE "slow: error code"
[ "$R_slow_heartbeats" -ge 5 ] ||
    fail "only $R_slow_heartbeats worker heartbeats arrived during a 2 s call (interval 100 ms)"
[ "$R_fast_line" -lt "$R_slow_line" ] || fail "the fast call waited for the slow one"
pass "slow call: $R_slow_heartbeats heartbeats meanwhile, other calls answered first"

assert_eq "$R_keyed_text" "Bearer sk-stub-secret-42" "keyed: Authorization header"
if grep -q "sk-stub-secret-42" "$T_DIR/worker.log"; then fail "the API key appears in the log"; fi
pass "API key from the environment sent, never logged"

assert_eq "$R_nosuch_error_code" UNAVAILABLE "nosuch: error code"
case $R_nosuch_error in
*"does not serve agent 'nosuch'"*) ;;
*) fail "nosuch: error message '$R_nosuch_error'" ;;
esac
assert_eq "$R_tiny_error_code" CONTEXT_TOO_LONG "tiny: error code"
pass "unknown agent UNAVAILABLE, prompt over the context CONTEXT_TOO_LONG"

alive worker || fail "the worker died"
stop_one worker || fail "the worker exited non-zero on SIGTERM"
grep -q "live_agent agent_id=fast" "$T_DIR/worker.log" || fail "no live_agent line in the log"

# ---- 2. SIGTERM during a slow call ----------------------------------------
P2=$(free_port)
write_conf "$T_DIR/worker2.conf" "$P2"
start_bg worker2 "$SO_BIN/so-agent-worker" --config "$T_DIR/worker2.conf"
start_bg probe2 "$SO_BIN/so-workerprobe" --bind "tcp://127.0.0.1:$P2" --heartbeat-ms 100 \
    --timeout-ms 20000 --deadline-ms 15000 slowto
wait_for "the worker's registration with the probe" 10 grep -q '"event": *"ready"' \
    "$T_DIR/probe2.log"
sleep 0.5
T0=$(date +%s)
stop_one worker2 || fail "worker2 exited non-zero after SIGTERM during a call"
T1=$(date +%s)
[ $((T1 - T0)) -le 4 ] || fail "worker2 took $((T1 - T0)) s to stop (drain_ms 500)"
wait_for "the probe's answer" 10 grep -q '"event": *"done"' "$T_DIR/probe2.log"
grep '"event": *"result"' "$T_DIR/probe2.log" | grep -q '"error_code": *"UNAVAILABLE"' ||
    fail "the cancelled call was not answered UNAVAILABLE: $(cat "$T_DIR/probe2.log")"
grep -q '"error": *"[^"]*cancelled' "$T_DIR/probe2.log" ||
    fail "the answer does not say the call was cancelled"
grep -q "cancelling running=1" "$T_DIR/worker2.log" || fail "worker2 did not log the cancel"
pass "SIGTERM: drained, cancelled after drain_ms, answered UNAVAILABLE, exit 0"

# ---- 3. a missing API key stops the worker at start ----------------------
unset SO_TEST_STUB_KEY
"$SO_BIN/so-agent-worker" --config "$T_DIR/worker.conf" >"$T_DIR/worker3.log" 2>&1 &
W3=$!
s_record worker3 "$W3"
s_wait_gone "$W3" 10 || fail "the worker without its API key kept running"
wait "$W3"
RC=$?
s_forget worker3
assert_eq "$RC" 2 "exit status without the API key"
grep -q "environment variable SO_TEST_STUB_KEY (the API key) is not set" "$T_DIR/worker3.log" ||
    fail "the start-up error does not name the variable: $(cat "$T_DIR/worker3.log")"
pass "missing API key variable: exit 2 naming it"

# ---- 4. agent ids with '/' (RouterBench's and the reference's) ------------
P4=$(free_port)
cat >"$T_DIR/worker4.conf" <<EOF
backend       = live
gateway.endpoint = tcp://127.0.0.1:$P4
heartbeat_ms  = 100
stats_ms      = 0
live.agents   = meta/llama-2-70b-chat
agent.meta/llama-2-70b-chat.base_url = $STUB
agent.meta/llama-2-70b-chat.model    = echo~meta
EOF
start_bg worker4 "$SO_BIN/so-agent-worker" --config "$T_DIR/worker4.conf"
timeout 30 "$SO_BIN/so-workerprobe" --bind "tcp://127.0.0.1:$P4" --heartbeat-ms 100 \
    --timeout-ms 20000 --prompt "slash ok" meta/llama-2-70b-chat >"$T_DIR/probe4.out" \
    2>"$T_DIR/probe4.log" || fail "agent id with '/': $(cat "$T_DIR/probe4.log" "$T_DIR/worker4.log")"
grep -q '"text": *"echo: slash ok"' "$T_DIR/probe4.out" ||
    fail "agent id with '/': $(cat "$T_DIR/probe4.out")"
stop_one worker4 || fail "worker4 exited non-zero on SIGTERM"
pass "an agent id with '/' works in live config (agent.meta/llama-2-70b-chat.*)"
