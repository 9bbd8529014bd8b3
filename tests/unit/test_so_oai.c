/* Unit tests for so_oai (services/http): OpenAI chat requests into
 * TurnRequests (messages, content parts, limits, the "skillorchestra"
 * extension and X-SO-* headers, refused parameters), replies into
 * chat.completion JSON and SSE chunks, ErrorCodes into HTTP statuses and
 * OpenAI's error shape, and feedback bodies. */
#include "so_test_util.h"
#include "so_oai.h"
#include "wire/so_wire.h"

#include <jansson.h>
#include <strings.h>

typedef struct {
    const char *names[8];
    const char *values[8];
} hdrs_t;

static const char *lookup(void *arg, const char *name)
{
    hdrs_t *h = arg;
    for (int i = 0; i < 8 && h->names[i]; i++)
        if (strcasecmp(h->names[i], name) == 0)
            return h->values[i];
    return NULL;
}

static so_oai_request_t *parse(const char *body, hdrs_t *h, so_oai_error_t *e)
{
    so_oai_limits_t lim;
    so_oai_limits_default(&lim);
    return so_oai_parse_request(body, strlen(body), h ? lookup : NULL, h, &lim, e);
}

/* Parsing must fail with this status, code and a message containing msg. */
static void expect_fail(const char *body, hdrs_t *h, int status, const char *code,
                        const char *msg)
{
    so_oai_error_t e;
    so_oai_request_t *r = parse(body, h, &e);
    if (r)
        fail_msg("accepted: %s", body);
    assert_int_equal(e.status, status);
    assert_string_equal(e.code, code);
    SO_ASSERT_CONTAINS(e.message, msg);
}

static void test_minimal_request(void **state)
{
    so_oai_error_t e;
    so_oai_request_t *r = parse("{\"model\":\"auto\",\"messages\":["
                                "{\"role\":\"system\",\"content\":\"be brief\"},"
                                "{\"role\":\"user\",\"content\":\"hi there\"},"
                                "{\"role\":\"assistant\",\"content\":null},"
                                "{\"role\":\"user\",\"content\":\"and now?\"}]}",
                                NULL, &e);
    assert_non_null(r);
    assert_string_equal(r->model, "auto");
    assert_int_equal(r->stream, 0);
    assert_int_equal(r->turn.n_messages, 4);
    assert_string_equal(r->turn.messages[1]->role, "user");
    assert_string_equal(r->turn.messages[1]->content, "hi there");
    assert_string_equal(r->turn.messages[2]->content, "");
    assert_int_equal(r->turn.turn_index, 1); /* one assistant message so far */
    assert_int_equal(r->turn.final_turn, 1); /* default: one request, one episode */
    assert_int_equal(r->turn.lambda_opt_case, 0);
    assert_int_equal(r->turn.max_completion_tokens, 0);
    assert_int_equal(r->est_prompt_tokens, (8 + 8 + 0 + 8) / 4);
    /* With an id it is a valid TurnRequest. */
    so_oai_request_set_id(r, "h-1");
    assert_string_equal(r->turn.request_id, "h-1");
    char err[256];
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &r->turn, err, sizeof err), 0);
    so_oai_request_destroy(&r);
    assert_null(r);
    so_oai_request_destroy(&r); /* NULL-safe */
}

static void test_content_parts(void **state)
{
    so_oai_error_t e;
    so_oai_request_t *r = parse(
        "{\"model\":\"auto\",\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"text\",\"text\":\"b\"}]}]}",
        NULL, &e);
    assert_non_null(r);
    assert_string_equal(r->turn.messages[0]->content, "a\nb");
    assert_int_equal(r->stream, 1);
    assert_int_equal(r->include_usage, 1);
    so_oai_request_destroy(&r);
    expect_fail("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":"
                "[{\"type\":\"image_url\",\"image_url\":{}}]}]}",
                NULL, 400, "invalid_request",
                "messages[0].content[0]: content part type "
                "'image_url' is not supported");
    expect_fail("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":7}]}", NULL,
                400, "invalid_request", "messages[0].content: expected a string");
}

static void test_malformed(void **state)
{
    so_oai_error_t e;
    assert_null(parse("{\"model\":\"auto\",\"messages\":[}", NULL, &e));
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "invalid_json");
    SO_ASSERT_CONTAINS(e.message, "line 1 column 29");
    expect_fail("", NULL, 400, "invalid_json", "malformed JSON");
    expect_fail("[1,2]", NULL, 400, "invalid_request", "must be a JSON object, got an array");
    expect_fail("{\"messages\":[]}", NULL, 400, "invalid_request", "model: required");
    expect_fail("{\"model\":3,\"messages\":[]}", NULL, 400, "invalid_request",
                "model: expected a string");
    expect_fail("{\"model\":\"auto\"}", NULL, 400, "invalid_request", "messages: required");
    expect_fail("{\"model\":\"auto\",\"messages\":[]}", NULL, 400, "invalid_request",
                "messages: empty");
    expect_fail("{\"model\":\"auto\",\"messages\":[{\"content\":\"x\"}]}", NULL, 400,
                "invalid_request", "messages[0].role: expected a string");
    expect_fail("{\"model\":\"auto\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
                NULL, 400, "invalid_request", "'robot' is not one of");
    expect_fail("{\"model\":\"auto\",\"stream\":\"yes\",\"messages\":[{\"role\":\"user\"}]}",
                NULL, 400, "invalid_request", "stream: expected a boolean");
    /* The param names the field. */
    assert_null(
        parse("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\"},{\"role\":1}]}", NULL, &e));
    assert_string_equal(e.param, "messages[1].role");
}

static void test_limits(void **state)
{
    so_oai_limits_t lim;
    so_oai_limits_default(&lim);
    lim.max_messages = 2;
    lim.max_prompt_tokens = 2;
    lim.max_completion_tokens = 100;
    so_oai_error_t e;
    const char *three = "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                        "{\"role\":\"user\",\"content\":\"b\"},{\"role\":\"user\"}]}";
    assert_null(so_oai_parse_request(three, strlen(three), NULL, NULL, &lim, &e));
    assert_string_equal(e.code, "too_many_messages");
    const char *long_prompt = "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\","
                              "\"content\":\"0123456789ab\"}]}";
    assert_null(so_oai_parse_request(long_prompt, strlen(long_prompt), NULL, NULL, &lim, &e));
    assert_string_equal(e.code, "context_length_exceeded");
    const char
        *big = "{\"model\":\"auto\",\"max_tokens\":101,\"messages\":[{\"role\":\"user\"}]}";
    assert_null(so_oai_parse_request(big, strlen(big), NULL, NULL, &lim, &e));
    assert_string_equal(e.code, "max_tokens_exceeded");
    assert_string_equal(e.param, "max_tokens");
    const char *neg = "{\"model\":\"auto\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\"}]}";
    assert_null(so_oai_parse_request(neg, strlen(neg), NULL, NULL, &lim, &e));
    assert_string_equal(e.code, "invalid_request");
    const char *both = "{\"model\":\"auto\",\"max_tokens\":50,\"max_completion_tokens\":70,"
                       "\"messages\":[{\"role\":\"user\"}]}";
    so_oai_request_t *r = so_oai_parse_request(both, strlen(both), NULL, NULL, &lim, &e);
    assert_non_null(r);
    assert_int_equal(r->turn.max_completion_tokens, 70); /* the newer name wins */
    so_oai_request_destroy(&r);
    const char *turn = "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\"}],"
                       "\"skillorchestra\":{\"turn_index\":300}}";
    so_oai_limits_default(&lim);
    assert_null(so_oai_parse_request(turn, strlen(turn), NULL, NULL, &lim, &e));
    assert_string_equal(e.code, "too_many_turns");
}

static void test_refused_parameters(void **state)
{
    expect_fail("{\"model\":\"auto\",\"n\":2,\"messages\":[{\"role\":\"user\"}]}", NULL, 400,
                "invalid_request", "n: only one choice");
    expect_fail("{\"model\":\"auto\",\"tools\":[{\"type\":\"function\"}],"
                "\"messages\":[{\"role\":\"user\"}]}",
                NULL, 400, "invalid_request", "tool calling is not supported");
    /* Accepted and ignored: sampling parameters, empty tools, n = 1. */
    so_oai_error_t e;
    so_oai_request_t *r = parse("{\"model\":\"auto\",\"n\":1,\"tools\":[],\"temperature\":0.2,"
                                "\"top_p\":1,\"user\":\"u\",\"messages\":[{\"role\":\"user\"}]}",
                                NULL, &e);
    assert_non_null(r);
    so_oai_request_destroy(&r);
}

static void test_extension(void **state)
{
    so_oai_error_t e;
    hdrs_t h = { { "X-SO-Episode-Id", "x-so-lambda", "X-SO-Final-Turn", "X-SO-Exclude-Agents",
                   "X-SO-Mode", NULL },
                 { "ep-from-header", "0.25", "false", "a1, a2", "code", NULL } };
    so_oai_request_t *r = parse("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\"}],"
                                "\"skillorchestra\":{\"episode_id\":\"ep-body\",\"turn_index\":3,"
                                "\"budget_usd\":0.01,\"exclude_agents\":[\"a2\",\"a3\"],"
                                "\"handbook_version\":\"v7\"}}",
                                &h, &e);
    assert_non_null(r);
    assert_string_equal(r->turn.episode_id, "ep-body"); /* the body wins */
    assert_int_equal(r->turn.turn_index, 3);
    assert_int_equal(r->turn.final_turn, 0); /* from the header */
    assert_int_equal(r->turn.lambda_opt_case,
                     SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA);
    SO_ASSERT_NEAR(r->turn.lambda, 0.25, 0);
    SO_ASSERT_NEAR(r->turn.budget_usd, 0.01, 0);
    assert_string_equal(r->turn.mode, "code");
    assert_string_equal(r->turn.handbook_version, "v7");
    assert_int_equal(r->pinned_version, 1);
    assert_int_equal(r->turn.n_exclude_agents, 2); /* the body's list */
    assert_string_equal(r->turn.exclude_agents[0], "a2");
    /* More exclusions from the caller (model = an agent): duplicates skipped. */
    const char *more[] = { "a3", "a4" };
    assert_int_equal(so_oai_request_exclude(r, more, 2), 0);
    assert_int_equal(r->turn.n_exclude_agents, 3);
    so_oai_request_set_profile(r, "fast");
    assert_string_equal(r->turn.routing_profile, "fast");
    so_oai_request_destroy(&r);

    expect_fail("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\"}],"
                "\"skillorchestra\":{\"lamda\":1}}",
                NULL, 400, "invalid_request", "skillorchestra.lamda: unknown field");
    expect_fail("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\"}],"
                "\"skillorchestra\":{\"lambda\":-1}}",
                NULL, 400, "invalid_request", "skillorchestra.lambda: expected a number >= 0");
    expect_fail("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\"}],"
                "\"skillorchestra\":{\"final_turn\":1}}",
                NULL, 400, "invalid_request", "final_turn: expected a boolean");
    expect_fail("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\"}],"
                "\"skillorchestra\":{\"episode_id\":\"a\\u0001b\"}}",
                NULL, 400, "invalid_request", "control character");
    expect_fail("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\"}],\"skillorchestra\":[]}",
                NULL, 400, "invalid_request", "skillorchestra: expected an object");
    hdrs_t bad = { { "X-SO-Turn-Index", NULL }, { "three", NULL } };
    expect_fail("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\"}]}", &bad, 400,
                "invalid_request", "header X-SO-Turn-Index: 'three' does not parse");
}

static void test_error_mapping(void **state)
{
    static const struct {
        int code, status;
        const char *oai;
    } want[] = {
        { SO_ERR(INVALID_REQUEST), 400, "invalid_request" },
        { SO_ERR(TIMEOUT), 504, "timeout" },
        { SO_ERR(UPSTREAM), 502, "upstream_error" },
        { SO_ERR(RATE_LIMITED), 429, "rate_limited" },
        { SO_ERR(BUDGET_EXHAUSTED), 402, "budget_exhausted" },
        { SO_ERR(NO_ELIGIBLE_AGENT), 503, "no_eligible_agent" },
        { SO_ERR(CONTEXT_TOO_LONG), 400, "context_length_exceeded" },
        { SO_ERR(UNAVAILABLE), 503, "unavailable" },
        { SO_ERR(INTERNAL), 500, "internal_error" },
        { SO_ERR(UNKNOWN_HANDBOOK), 503, "unknown_handbook" },
        { 77, 500, "internal_error" },
    };
    so_oai_error_t e;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        so_oai_error_from_code((so_pb_error_code_t) want[i].code, "why", 0, &e);
        assert_int_equal(e.status, want[i].status);
        assert_string_equal(e.code, want[i].oai);
        assert_string_equal(e.message, "why");
    }
    /* A version the client pinned that does not exist is the client's 404. */
    so_oai_error_from_code(SO_ERR(UNKNOWN_HANDBOOK), "", 1, &e);
    assert_int_equal(e.status, 404);
    assert_string_equal(e.message, "UNKNOWN_HANDBOOK");
    assert_string_equal(so_oai_code_name(SO_ERR(TIMEOUT)), "TIMEOUT");
    assert_string_equal(so_oai_code_name((so_pb_error_code_t) 99), "UNKNOWN");
}

static void test_error_json(void **state)
{
    so_oai_error_t e;
    assert_int_equal(so_oai_fail(&e, 400, "invalid_request_error", "invalid_json", "",
                                 "bad \"quote\" and \xff\xfe bytes"),
                     -1);
    char *s = so_oai_error_json(&e);
    assert_non_null(s);
    json_error_t je;
    json_t *root = json_loads(s, 0, &je);
    assert_non_null(root);
    json_t *err = json_object_get(root, "error");
    assert_string_equal(json_string_value(json_object_get(err, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "invalid_json");
    assert_true(json_is_null(json_object_get(err, "param")));
    /* Bytes that are not UTF-8 become '?', the rest is kept. */
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "bad \"quote\" and ?? bytes");
    json_decref(root);
    free(s);
    so_oai_fail(&e, 500, "server_error", NULL, "x", "m");
    s = so_oai_error_json(&e);
    root = json_loads(s, 0, &je);
    assert_true(json_is_null(json_object_get(json_object_get(root, "error"), "code")));
    assert_string_equal(json_string_value(
                            json_object_get(json_object_get(root, "error"), "param")),
                        "x");
    json_decref(root);
    free(s);
}

/* A reply as the gateway sends it. */
typedef struct {
    so_pb_turn_reply_t rep;
    so_pb_routing_decision_t d;
    so_pb_agent_result_t res;
    so_pb_skill_weight_t sw[2], *swp[2];
    so_pb_agent_score_t sc[2], *scp[2];
} reply_t;

static void make_reply(reply_t *r)
{
    skillorchestra__v1__turn_reply__init(&r->rep);
    skillorchestra__v1__routing_decision__init(&r->d);
    skillorchestra__v1__agent_result__init(&r->res);
    for (int i = 0; i < 2; i++) {
        skillorchestra__v1__skill_weight__init(&r->sw[i]);
        skillorchestra__v1__agent_score__init(&r->sc[i]);
        r->swp[i] = &r->sw[i];
        r->scp[i] = &r->sc[i];
    }
    r->sw[0].skill_id = "s.math";
    r->sw[0].weight = 0.7;
    r->sw[1].skill_id = "s.code";
    r->sw[1].weight = 0.3;
    r->sc[0].agent_id = "big";
    r->sc[0].score = 0.8;
    r->sc[0].competence = 0.9;
    r->sc[0].cost_usd = 0.01;
    r->sc[0].eligible = 1;
    r->sc[1].agent_id = "small";
    r->sc[1].eligible = 0;
    r->sc[1].excluded_reason = "over budget";
    r->d.request_id = "h-1";
    r->d.episode_id = "ep-1";
    r->d.turn_index = 2;
    r->d.handbook_version = "v1";
    r->d.chosen_agent = "big";
    r->d.top_skills = r->swp;
    r->d.n_top_skills = 2;
    r->d.scores = r->scp;
    r->d.n_scores = 2;
    r->d.reason = "why";
    r->d.strategy = SKILLORCHESTRA__V1__ROUTING_DECISION__STRATEGY__STRATEGY_GREEDY;
    r->d.lambda = 0.05;
    r->d.seed = UINT64_MAX;
    r->res.request_id = "h-1";
    r->res.agent_id = "big";
    r->res.text = "the answer";
    r->res.prompt_tokens = 10;
    r->res.completion_tokens = 5;
    r->res.cost_usd = 0.002;
    r->rep.request_id = "h-1";
    r->rep.episode_id = "ep-1";
    r->rep.text = "the answer";
    r->rep.decision = &r->d;
    r->rep.result = &r->res;
}

static void test_completion_json(void **state)
{
    reply_t r;
    make_reply(&r);
    char *s = so_oai_completion_json(&r.rep, "chatcmpl-1", 1700000000, "big-model-v2");
    assert_non_null(s);
    json_error_t je;
    json_t *root = json_loads(s, 0, &je);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "object")), "chat.completion");
    assert_string_equal(json_string_value(json_object_get(root, "model")), "big-model-v2");
    assert_int_equal(json_integer_value(json_object_get(root, "created")), 1700000000);
    json_t *c0 = json_array_get(json_object_get(root, "choices"), 0);
    assert_string_equal(json_string_value(
                            json_object_get(json_object_get(c0, "message"), "content")),
                        "the answer");
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "stop");
    json_t *u = json_object_get(root, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 15);
    json_t *x = json_object_get(root, "skillorchestra");
    assert_string_equal(json_string_value(json_object_get(x, "agent")), "big");
    assert_string_equal(json_string_value(json_object_get(x, "episode_id")), "ep-1");
    assert_string_equal(json_string_value(json_object_get(x, "handbook_version")), "v1");
    assert_string_equal(json_string_value(json_object_get(x, "strategy")), "greedy");
    assert_string_equal(json_string_value(json_object_get(x, "seed")), "18446744073709551615");
    json_t *top = json_object_get(x, "top_skills");
    assert_int_equal(json_array_size(top), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(top, 0), "id")),
                        "s.math");
    SO_ASSERT_NEAR(json_real_value(json_object_get(json_array_get(top, 0), "weight")), 0.7,
                   1e-12);
    json_t *sc = json_object_get(x, "scores");
    assert_int_equal(json_array_size(sc), 2);
    assert_string_equal(json_string_value(
                            json_object_get(json_array_get(sc, 1), "excluded_reason")),
                        "over budget");
    assert_null(json_object_get(json_array_get(sc, 0), "excluded_reason"));
    SO_ASSERT_NEAR(json_real_value(json_object_get(x, "cost_usd")), 0.002, 1e-12);
    json_decref(root);
    free(s);
    /* No model name known: the agent's id. */
    s = so_oai_completion_json(&r.rep, "chatcmpl-2", 0, NULL);
    root = json_loads(s, 0, &je);
    assert_string_equal(json_string_value(json_object_get(root, "model")), "big");
    json_decref(root);
    free(s);
}

static void test_completion_sse(void **state)
{
    reply_t r;
    make_reply(&r);
    for (int usage = 0; usage < 2; usage++) {
        char *s = so_oai_completion_sse(&r.rep, "chatcmpl-1", 1, NULL, usage);
        assert_non_null(s);
        /* Events: "data: <json>\n\n" ..., then "data: [DONE]\n\n". */
        int events = 0, done = 0;
        char text[64] = "";
        for (char *p = s; *p;) {
            assert_memory_equal(p, "data: ", 6);
            char *end = strstr(p, "\n\n");
            assert_non_null(end);
            *end = '\0';
            if (strcmp(p + 6, "[DONE]") == 0) {
                done = 1;
                assert_int_equal(end[2], '\0'); /* the last event */
            } else {
                json_error_t je;
                json_t *chunk = json_loads(p + 6, 0, &je);
                assert_non_null(chunk);
                assert_string_equal(json_string_value(json_object_get(chunk, "object")),
                                    "chat.completion.chunk");
                json_t *c0 = json_array_get(json_object_get(chunk, "choices"), 0);
                const char *piece = json_string_value(
                    json_object_get(json_object_get(c0, "delta"), "content"));
                if (piece)
                    strncat(text, piece, sizeof text - strlen(text) - 1);
                if (!c0)
                    assert_non_null(json_object_get(chunk, "usage"));
                events++;
                json_decref(chunk);
            }
            p = end + 2;
        }
        assert_true(done);
        assert_int_equal(events, 3 + usage);
        assert_string_equal(text, "the answer");
        free(s);
    }
}

static void test_top_skills_header(void **state)
{
    reply_t r;
    make_reply(&r);
    char buf[64];
    so_oai_top_skills_header(&r.rep, buf, sizeof buf);
    assert_string_equal(buf, "s.math=0.700,s.code=0.300");
    char small[20];
    so_oai_top_skills_header(&r.rep, small, sizeof small);
    assert_string_equal(small, "s.math=0.700"); /* whole entries only */
    r.rep.decision = NULL;
    so_oai_top_skills_header(&r.rep, buf, sizeof buf);
    assert_string_equal(buf, "");
}

static void test_feedback(void **state)
{
    so_oai_feedback_t fb;
    so_oai_error_t e;
    const char *ok = "{\"episode_id\":\"ep-1\",\"success\":false}";
    assert_int_equal(so_oai_parse_feedback(ok, strlen(ok), &fb, &e), 0);
    assert_string_equal(fb.episode_id, "ep-1");
    assert_int_equal(fb.has_success, 1);
    assert_int_equal(fb.success, 0);
    const char *score = "{\"episode_id\":\"ep-2\",\"score\":0.25,\"success\":null}";
    assert_int_equal(so_oai_parse_feedback(score, strlen(score), &fb, &e), 0);
    assert_int_equal(fb.has_success, 0);
    SO_ASSERT_NEAR(fb.score, 0.25, 0);
    static const struct {
        const char *body, *msg;
    } bad[] = {
        { "{", "malformed JSON" },
        { "[]", "must be a JSON object" },
        { "{\"success\":true}", "episode_id: required" },
        { "{\"episode_id\":\"\",\"success\":true}", "episode_id: empty" },
        { "{\"episode_id\":\"e\"}", "exactly one of success" },
        { "{\"episode_id\":\"e\",\"success\":true,\"score\":1}", "exactly one of success" },
        { "{\"episode_id\":\"e\",\"success\":1}", "success: expected a boolean" },
        { "{\"episode_id\":\"e\",\"score\":1.5}", "score: expected a number in [0, 1]" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (so_oai_parse_feedback(bad[i].body, strlen(bad[i].body), &fb, &e) == 0)
            fail_msg("accepted: %s", bad[i].body);
        assert_int_equal(e.status, 400);
        SO_ASSERT_CONTAINS(e.message, bad[i].msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_request),    cmocka_unit_test(test_content_parts),
        cmocka_unit_test(test_malformed),          cmocka_unit_test(test_limits),
        cmocka_unit_test(test_refused_parameters), cmocka_unit_test(test_extension),
        cmocka_unit_test(test_error_mapping),      cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_completion_json),    cmocka_unit_test(test_completion_sse),
        cmocka_unit_test(test_top_skills_header),  cmocka_unit_test(test_feedback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
