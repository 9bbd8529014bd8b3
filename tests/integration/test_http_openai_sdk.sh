# The official OpenAI client (the `openai` package for Node.js, from the npm
# registry, installed into build/npm on first use) pointed at so-http in
# front of the real service set: a chat completion routed with model
# "auto" (answer, usage, the decision in the X-SO-* headers and in the
# "skillorchestra" field), a streamed completion read chunk by chunk, a
# wrong key rejected as AuthenticationError, and feedback for an episode.
# Skipped, saying so, when the machine has no Node.js/npm or the registry
# cannot be reached.
. tests/integration/lib.sh
. tests/integration/services.sh
D=../shared/data/routerbench
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "SKIP: no Node.js/npm on this machine"; exit 77
fi
NPM_DIR=$(pwd)/build/npm
if ! [ -d "$NPM_DIR/node_modules/openai" ]; then
    mkdir -p "$NPM_DIR"
    timeout 180 npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error openai@4 \
        >"$T_DIR/npm.log" 2>&1 || { say "SKIP: npm install openai failed: $(tail -2 "$T_DIR/npm.log")"; exit 77; }
fi

start_redis
"$SO_BIN/so-learn" --quiet --train "$D/arc_challenge_train.csv" --version sdk-1 \
    --out "$T_DIR/hb.json" --publish "$REDIS_URL" || fail "so-learn"
start_services 2 "$D/arc_challenge_test.csv"
"$SO_BIN/so-import" --routerbench "$D/arc_challenge_test.csv" --out "$T_DIR/arc.jsonl" \
    2>/dev/null || fail "so-import"

HTTP_PORT=$(free_port)
SO_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" SO_HTTP_GATEWAY_ENDPOINT="$GATEWAY" SO_HTTP_API_KEYS=sdk-key \
    start_bg http "$SO_BIN/so-http"
U="http://127.0.0.1:$HTTP_PORT"
wait_for "so-http to be ready" 20 curl -sf "$U/readyz"

cat >"$T_DIR/sdk.mjs" <<'EOF'
import fs from "node:fs";
import { createRequire } from "node:module";
const require = createRequire(process.env.NPM_DIR + "/");
const OpenAI = require("openai");
const [base, jsonl] = process.argv.slice(2);
const prompts = [...new Set(fs.readFileSync(jsonl, "utf8").trim().split("\n")
    .map((l) => JSON.parse(l).turns[0].prompt))];
const check = (ok, what) => { if (!ok) { console.error("FAILED: " + what); process.exit(1); } };
const client = new OpenAI({ baseURL: base + "/v1", apiKey: "sdk-key", maxRetries: 0, timeout: 20000 });

// 1. A plain completion, with the raw response for the headers.
const { data: c, response } = await client.chat.completions
    .create({ model: "auto", messages: [{ role: "user", content: prompts[0] }] }).withResponse();
check(c.object === "chat.completion", "object is chat.completion");
check(typeof c.choices[0].message.content === "string" && c.choices[0].message.content.length > 0,
      "an answer");
check(c.usage && c.usage.total_tokens >= 0, "usage");
const so = c.skillorchestra;
check(so && so.agent && so.episode_id && so.handbook_version === "sdk-1", "the decision field");
check(Array.isArray(so.top_skills) && so.top_skills.length > 0, "top skills");
check(response.headers.get("x-so-agent") === so.agent, "X-SO-Agent header = decision agent");
console.log(`completion: agent ${so.agent}, model ${c.model}, episode ${so.episode_id}`);

// 2. Streaming: chunks until the end, text joined.
const stream = await client.chat.completions.create({
    model: "auto", stream: true, messages: [{ role: "user", content: prompts[1] }] });
let text = "", chunks = 0, finish = null;
for await (const ch of stream) {
    chunks++;
    text += ch.choices[0]?.delta?.content ?? "";
    finish = ch.choices[0]?.finish_reason ?? finish;
}
check(chunks >= 1 && text.length > 0 && finish === "stop", "a streamed answer");
console.log(`stream: ${chunks} chunks, finish_reason ${finish}`);

// 3. A wrong key.
try {
    await new OpenAI({ baseURL: base + "/v1", apiKey: "wrong", maxRetries: 0 }).models.list();
    check(false, "a wrong key rejected");
} catch (e) {
    check(e instanceof OpenAI.AuthenticationError, "AuthenticationError for a wrong key: " + e);
}

// 4. A turn left open for feedback, then the feedback.
const open = await client.chat.completions.create({ model: "auto",
    messages: [{ role: "user", content: prompts[2] }], skillorchestra: { final_turn: false } });
const fb = await fetch(base + "/v1/feedback", { method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer sdk-key" },
    body: JSON.stringify({ episode_id: open.skillorchestra.episode_id, success: true }) });
check(fb.status === 200, "feedback accepted (status " + fb.status + ")");
const models = await client.models.list();
check(models.data.some((m) => m.id === "auto"), "models list has auto");
console.log("ok");
EOF
NPM_DIR="$NPM_DIR" node "$T_DIR/sdk.mjs" "$U" "$T_DIR/arc.jsonl" >"$T_DIR/sdk.out" 2>&1 \
    || fail "the openai Node client: $(tail -5 "$T_DIR/sdk.out")"
cat "$T_DIR/sdk.out"
pass "the official openai Node client gets routed answers, streams, auth errors and feedback through so-http"
wait_for "the feedback episode in the log" 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT XLEN so:episodes)\" -ge 3 ]"
pass "feedback reached the episode log"
