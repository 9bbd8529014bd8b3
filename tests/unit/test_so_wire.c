/*
 * Tests for so_wire: the golden vectors in tests/golden (every field checked
 * by hand, and re-encoding must reproduce the file byte for byte), the
 * rejection of bad input (each error must name the field), and the
 * send/recv helpers over real inproc:// sockets.  Run from the repo root.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/so_wire.h"

#define GOLDEN_DIR "tests/golden"

typedef Skillorchestra__V1__TurnRequest turn_request_t;
typedef Skillorchestra__V1__SkillDemand skill_demand_t;
typedef Skillorchestra__V1__RoutingDecision routing_decision_t;
typedef Skillorchestra__V1__AgentCall agent_call_t;
typedef Skillorchestra__V1__AgentResult agent_result_t;
typedef Skillorchestra__V1__EpisodeOutcome episode_outcome_t;
typedef Skillorchestra__V1__HandbookAnnouncement handbook_announcement_t;
typedef Skillorchestra__V1__TurnReply turn_reply_t;
typedef Skillorchestra__V1__ChatMessage chat_t;
typedef Skillorchestra__V1__SkillWeight weight_t;

#define assert_dbl(a, b) assert_true((a) == (b))

#define assert_err_contains(err, s)                                                 \
    do {                                                                            \
        if (!strstr((err), (s))) {                                                  \
            print_error("error \"%s\" does not contain \"%s\"\n", (err), (s));      \
            fail();                                                                 \
        }                                                                           \
    } while (0)

static const struct {
    const char *file;
    so_msg_type_t type;
} s_golden[] = {
    {"turn_request", SO_MSG_TURN_REQUEST},
    {"skill_demand", SO_MSG_SKILL_DEMAND},
    {"routing_decision", SO_MSG_ROUTING_DECISION},
    {"agent_call", SO_MSG_AGENT_CALL},
    {"agent_result", SO_MSG_AGENT_RESULT},
    {"episode_outcome", SO_MSG_EPISODE_OUTCOME},
    {"handbook_announcement", SO_MSG_HANDBOOK_ANNOUNCEMENT},
    {"turn_reply", SO_MSG_TURN_REPLY},
};
#define N_GOLDEN (sizeof s_golden / sizeof s_golden[0])

/* ------------------------------------------------------------------------
 * Helpers.
 */

static uint8_t *s_read(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.bin", GOLDEN_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        print_error("cannot open %s (run from the repo root)\n", path);
        fail();
    }
    uint8_t *buf = malloc(65536);
    assert_non_null(buf);
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    assert_true(*len >= SO_WIRE_HDR_LEN && *len < 65536);
    return buf;
}

/* Decodes a golden file (must succeed) and keeps its bytes in *file. */
static void *s_golden_decode(const char *name, so_msg_type_t type, uint8_t **file,
                             size_t *file_len)
{
    char err[256] = "";
    void *msg = NULL;
    *file = s_read(name, file_len);
    int rc = so_wire_decode(*file, SO_WIRE_HDR_LEN, *file + SO_WIRE_HDR_LEN,
                            *file_len - SO_WIRE_HDR_LEN, type, &msg, err, sizeof err);
    if (rc != 0) {
        print_error("%s: %s\n", name, err);
        fail();
    }
    assert_non_null(msg);
    return msg;
}

/* Re-encodes msg and compares with the golden bytes. */
static void s_assert_reencodes(so_msg_type_t type, const void *msg, const uint8_t *file,
                               size_t file_len)
{
    char err[256] = "";
    uint8_t hdr[SO_WIRE_HDR_LEN], *body = NULL;
    size_t len = 0;
    if (so_wire_encode(type, msg, hdr, &body, &len, err, sizeof err) != 0) {
        print_error("re-encode: %s\n", err);
        fail();
    }
    assert_int_equal(SO_WIRE_HDR_LEN + len, file_len);
    assert_memory_equal(hdr, file, SO_WIRE_HDR_LEN);
    assert_memory_equal(body, file + SO_WIRE_HDR_LEN, len);
    free(body);
}

/* Packs msg with protobuf-c directly (no validation, as a bad peer would)
 * and decodes it as type.  Returns so_wire_decode's result; err holds the
 * message.  Also checks that the encode-side validator agrees. */
static int s_raw_decode(so_msg_type_t type, const void *msg, char *err, size_t errlen)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *b = malloc(n + 1);
    assert_non_null(b);
    assert_int_equal(protobuf_c_message_pack(msg, b), n);
    uint8_t hdr[SO_WIRE_HDR_LEN];
    so_wire_header(type, hdr);
    void *out = NULL;
    int rc = so_wire_decode(hdr, sizeof hdr, b, n, type, &out, err, errlen);
    if (rc == 0) {
        assert_non_null(out);
        so_wire_free(type, out);
    } else {
        assert_null(out);
    }
    free(b);
    return rc;
}

/* Asserts that a (mutated) message is rejected on decode and on encode with
 * an error containing want. */
static void s_assert_rejected(so_msg_type_t type, const void *msg, const char *want)
{
    char err[512] = "";
    assert_int_equal(s_raw_decode(type, msg, err, sizeof err), -1);
    assert_err_contains(err, want);
    err[0] = 0;
    assert_int_equal(so_wire_validate(type, msg, err, sizeof err), -1);
    assert_err_contains(err, want);
    uint8_t hdr[SO_WIRE_HDR_LEN], *body = (uint8_t *) 1;
    size_t len = 1;
    assert_int_equal(so_wire_encode(type, msg, hdr, &body, &len, err, sizeof err), -1);
    assert_null(body);
    assert_int_equal(len, 0);
}

static int s_decode_bytes(so_msg_type_t type, const uint8_t *body, size_t len, char *err,
                          size_t errlen)
{
    uint8_t hdr[SO_WIRE_HDR_LEN];
    so_wire_header(type, hdr);
    void *out = NULL;
    int rc = so_wire_decode(hdr, sizeof hdr, body, len, type, &out, err, errlen);
    so_wire_free(type, out);
    return rc;
}

/* Marks the offsets in a well-formed body where a top-level field starts. */
static void s_top_boundaries(const uint8_t *b, size_t len, bool *at)
{
    size_t pos = 0;
    memset(at, 0, len + 1);
    at[0] = true;
    while (pos < len) {
        uint64_t tag = 0, v = 0;
        for (unsigned sh = 0;; sh += 7) {
            tag |= (uint64_t)(b[pos] & 0x7f) << sh;
            if (!(b[pos++] & 0x80))
                break;
        }
        switch (tag & 7) {
        case 0:
            while (b[pos++] & 0x80)
                ;
            break;
        case 1: pos += 8; break;
        case 5: pos += 4; break;
        case 2:
            for (unsigned sh = 0;; sh += 7) {
                v |= (uint64_t)(b[pos] & 0x7f) << sh;
                if (!(b[pos++] & 0x80))
                    break;
            }
            pos += v;
            break;
        default: fail();
        }
        assert_true(pos <= len);
        at[pos] = true;
    }
}

/* ------------------------------------------------------------------------
 * Golden vectors: every field.
 */

static void s_assert_chat(chat_t *const *m, size_t n)
{
    assert_int_equal(n, 2);
    assert_string_equal(m[0]->role, "system");
    assert_string_equal(m[0]->content, "You are a careful assistant.");
    assert_string_equal(m[1]->role, "user");
    assert_string_equal(
        m[1]->content,
        "Write a function that reverses a string \xe2\x80\x94 caf\xc3\xa9 \xe2\x9c\x93");
}

static void s_assert_weight(const weight_t *w, const char *id, double weight)
{
    assert_string_equal(w->skill_id, id);
    assert_dbl(w->weight, weight);
}

static void test_golden_turn_request(void **state)
{
    uint8_t *file;
    size_t len;
    turn_request_t *m = s_golden_decode("turn_request", SO_MSG_TURN_REQUEST, &file, &len);
    assert_memory_equal(file, "SO\x01\x01", 4);
    assert_string_equal(m->request_id, "req-0001");
    assert_string_equal(m->episode_id, "ep-42");
    assert_int_equal(m->turn_index, 3);
    assert_string_equal(m->mode, "code");
    s_assert_chat(m->messages, m->n_messages);
    assert_dbl(m->budget_usd, 0.25);
    assert_int_equal(m->lambda_opt_case, SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA);
    assert_dbl(m->lambda, 0.5);
    assert_string_equal(m->handbook_version, "hb-2024-06-01.3");
    assert_int_equal(m->max_completion_tokens, 1024);
    assert_string_equal(m->routing_profile, "balanced");
    assert_int_equal(m->n_exclude_agents, 2);
    assert_string_equal(m->exclude_agents[0], "gpt-4o");
    assert_string_equal(m->exclude_agents[1], "claude-3-opus");
    assert_int_equal(m->base.n_unknown_fields, 0);
    s_assert_reencodes(SO_MSG_TURN_REQUEST, m, file, len);
    so_wire_free(SO_MSG_TURN_REQUEST, m);
    free(file);
}

static void test_golden_skill_demand(void **state)
{
    uint8_t *file;
    size_t len;
    skill_demand_t *m = s_golden_decode("skill_demand", SO_MSG_SKILL_DEMAND, &file, &len);
    assert_memory_equal(file, "SO\x01\x02", 4);
    assert_string_equal(m->request_id, "req-0001");
    assert_string_equal(m->handbook_version, "hb-2024-06-01.3");
    assert_int_equal(m->n_skills, 3);
    s_assert_weight(m->skills[0], "code.string_manipulation", 0.625);
    s_assert_weight(m->skills[1], "code.algorithms", 0.25);
    s_assert_weight(m->skills[2], "answer.formatting", 0.125);
    assert_int_equal(m->source, SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_LLM);
    s_assert_reencodes(SO_MSG_SKILL_DEMAND, m, file, len);
    so_wire_free(SO_MSG_SKILL_DEMAND, m);
    free(file);
}

static void s_assert_competence(const Skillorchestra__V1__SkillCompetence *c, const char *id,
                                double w, double comp, double succ, double att,
                                uint32_t backoff)
{
    assert_string_equal(c->skill_id, id);
    assert_dbl(c->weight, w);
    assert_dbl(c->competence, comp);
    assert_dbl(c->successes, succ);
    assert_dbl(c->attempts, att);
    assert_int_equal(c->backoff_level, backoff);
}

static void s_assert_decision(const routing_decision_t *m)
{
    assert_string_equal(m->request_id, "req-0001");
    assert_string_equal(m->episode_id, "ep-42");
    assert_int_equal(m->turn_index, 3);
    assert_string_equal(m->handbook_version, "hb-2024-06-01.3");
    assert_string_equal(m->chosen_agent, "qwen-coder-7b");
    assert_int_equal(m->n_scores, 2);
    const Skillorchestra__V1__AgentScore *s = m->scores[0];
    assert_string_equal(s->agent_id, "qwen-coder-7b");
    assert_dbl(s->score, 0.6875);
    assert_dbl(s->competence, 0.75);
    assert_dbl(s->cost_usd, 0.0015);
    assert_dbl(s->cost_norm, 0.125);
    assert_true(s->eligible);
    assert_string_equal(s->excluded_reason, "");
    assert_int_equal(s->n_skills, 2);
    s_assert_competence(s->skills[0], "code.string_manipulation", 0.625, 0.8, 12.5, 15, 0);
    s_assert_competence(s->skills[1], "code.algorithms", 0.25, 0.5, 2, 4, 1);
    s = m->scores[1];
    assert_string_equal(s->agent_id, "llama-70b");
    assert_dbl(s->score, -0.25);
    assert_dbl(s->competence, 0.5);
    assert_dbl(s->cost_usd, 0.03);
    assert_dbl(s->cost_norm, 1.5);
    assert_false(s->eligible);
    assert_string_equal(s->excluded_reason, "over budget");
    assert_int_equal(s->n_skills, 1);
    s_assert_competence(s->skills[0], "code.string_manipulation", 0.625, 0.9, 9, 10, 0);
    assert_string_equal(m->reason, "thompson: sampled utility 0.6875");
    assert_int_equal(m->strategy,
                     SKILLORCHESTRA__V1__ROUTING_DECISION__STRATEGY__STRATEGY_THOMPSON);
    assert_int_equal(m->n_top_skills, 2);
    s_assert_weight(m->top_skills[0], "code.string_manipulation", 0.625);
    s_assert_weight(m->top_skills[1], "code.algorithms", 0.25);
    assert_dbl(m->lambda, 0.5);
    assert_true(m->seed == UINT64_C(0x0123456789abcdef));
}

static void test_golden_routing_decision(void **state)
{
    uint8_t *file;
    size_t len;
    routing_decision_t *m = s_golden_decode("routing_decision", SO_MSG_ROUTING_DECISION, &file,
                                            &len);
    assert_memory_equal(file, "SO\x01\x03", 4);
    s_assert_decision(m);
    s_assert_reencodes(SO_MSG_ROUTING_DECISION, m, file, len);
    so_wire_free(SO_MSG_ROUTING_DECISION, m);
    free(file);
}

static void test_golden_agent_call(void **state)
{
    uint8_t *file;
    size_t len;
    agent_call_t *m = s_golden_decode("agent_call", SO_MSG_AGENT_CALL, &file, &len);
    assert_memory_equal(file, "SO\x01\x04", 4);
    assert_string_equal(m->request_id, "req-0001");
    assert_string_equal(m->episode_id, "ep-42");
    assert_int_equal(m->turn_index, 3);
    assert_string_equal(m->agent_id, "qwen-coder-7b");
    assert_string_equal(m->model, "Qwen/Qwen2.5-Coder-7B-Instruct");
    s_assert_chat(m->messages, m->n_messages);
    assert_int_equal(m->max_completion_tokens, 1024);
    assert_int_equal(m->deadline_ms, 30000);
    assert_int_equal(m->attempt, 1);
    s_assert_reencodes(SO_MSG_AGENT_CALL, m, file, len);
    so_wire_free(SO_MSG_AGENT_CALL, m);
    free(file);
}

static void s_assert_result(const agent_result_t *m)
{
    assert_string_equal(m->request_id, "req-0001");
    assert_string_equal(m->agent_id, "qwen-coder-7b");
    assert_string_equal(m->text, "def rev(s):\n    return s[::-1]\n");
    assert_int_equal(m->prompt_tokens, 412);
    assert_int_equal(m->completion_tokens, 37);
    assert_dbl(m->cost_usd, 0.00125);
    assert_dbl(m->latency_s, 1.5);
    assert_non_null(m->error);
    assert_int_equal(m->error->code, SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_RATE_LIMITED);
    assert_string_equal(m->error->message, "429 from provider; retry after 2 s");
    assert_int_equal(m->replay_score_opt_case,
                     SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE);
    assert_dbl(m->replay_score, 0.75);
    assert_string_equal(m->worker_id, "worker-a/3");
}

static void test_golden_agent_result(void **state)
{
    uint8_t *file;
    size_t len;
    agent_result_t *m = s_golden_decode("agent_result", SO_MSG_AGENT_RESULT, &file, &len);
    assert_memory_equal(file, "SO\x01\x05", 4);
    s_assert_result(m);
    s_assert_reencodes(SO_MSG_AGENT_RESULT, m, file, len);
    so_wire_free(SO_MSG_AGENT_RESULT, m);
    free(file);
}

static void test_golden_episode_outcome(void **state)
{
    uint8_t *file;
    size_t len;
    episode_outcome_t *m = s_golden_decode("episode_outcome", SO_MSG_EPISODE_OUTCOME, &file,
                                           &len);
    assert_memory_equal(file, "SO\x01\x06", 4);
    assert_string_equal(m->episode_id, "ep-42");
    assert_string_equal(m->handbook_version, "hb-2024-06-01.3");
    assert_int_equal(m->result_case, SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE);
    assert_dbl(m->score, 0.75);
    assert_true(m->finished_unix_ms == UINT64_C(1717243200123));
    assert_int_equal(m->n_turns, 2);
    const Skillorchestra__V1__TurnRecord *r = m->turns[0];
    assert_int_equal(r->turn_index, 0);
    assert_string_equal(r->mode, "search");
    assert_string_equal(r->agent_id, "search-agent");
    assert_int_equal(r->n_demand, 1);
    s_assert_weight(r->demand[0], "search.web", 1.0);
    assert_int_equal(r->prompt_tokens, 200);
    assert_int_equal(r->completion_tokens, 50);
    assert_dbl(r->cost_usd, 0.0005);
    assert_dbl(r->latency_s, 0.75);
    assert_int_equal(r->score_opt_case, SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE);
    assert_dbl(r->score, 1.0);
    r = m->turns[1];
    assert_int_equal(r->turn_index, 3);
    assert_string_equal(r->mode, "code");
    assert_string_equal(r->agent_id, "qwen-coder-7b");
    assert_int_equal(r->n_demand, 2);
    s_assert_weight(r->demand[0], "code.string_manipulation", 0.625);
    s_assert_weight(r->demand[1], "code.algorithms", 0.25);
    assert_int_equal(r->prompt_tokens, 412);
    assert_int_equal(r->completion_tokens, 37);
    assert_dbl(r->cost_usd, 0.00125);
    assert_dbl(r->latency_s, 1.5);
    assert_int_equal(r->score_opt_case, SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT__NOT_SET);
    s_assert_reencodes(SO_MSG_EPISODE_OUTCOME, m, file, len);
    so_wire_free(SO_MSG_EPISODE_OUTCOME, m);
    free(file);
}

static void test_golden_handbook_announcement(void **state)
{
    uint8_t *file;
    size_t len;
    handbook_announcement_t *m =
        s_golden_decode("handbook_announcement", SO_MSG_HANDBOOK_ANNOUNCEMENT, &file, &len);
    assert_memory_equal(file, "SO\x01\x07", 4);
    assert_string_equal(m->version, "hb-2024-06-01.3");
    assert_string_equal(m->previous_version, "hb-2024-06-01.2");
    assert_true(m->published_unix_ms == UINT64_C(1717243200000));
    assert_int_equal(m->n_skills, 42);
    assert_int_equal(m->n_agents, 7);
    assert_string_equal(m->redis_key, "so:handbook:hb-2024-06-01.3");
    s_assert_reencodes(SO_MSG_HANDBOOK_ANNOUNCEMENT, m, file, len);
    so_wire_free(SO_MSG_HANDBOOK_ANNOUNCEMENT, m);
    free(file);
}

static void test_golden_turn_reply(void **state)
{
    uint8_t *file;
    size_t len;
    turn_reply_t *m = s_golden_decode("turn_reply", SO_MSG_TURN_REPLY, &file, &len);
    assert_memory_equal(file, "SO\x01\x08", 4);
    assert_string_equal(m->request_id, "req-0001");
    assert_string_equal(m->episode_id, "ep-42");
    assert_string_equal(m->text, "def rev(s):\n    return s[::-1]\n");
    assert_non_null(m->decision);
    s_assert_decision(m->decision);
    assert_non_null(m->result);
    s_assert_result(m->result);
    /* present but empty: presence survives the wire */
    assert_non_null(m->error);
    assert_int_equal(m->error->code, SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_NONE);
    assert_string_equal(m->error->message, "");
    s_assert_reencodes(SO_MSG_TURN_REPLY, m, file, len);
    so_wire_free(SO_MSG_TURN_REPLY, m);
    free(file);
}

/* ------------------------------------------------------------------------
 * Framing errors.
 */

static void test_truncated_bodies(void **state)
{
    for (size_t g = 0; g < N_GOLDEN; g++) {
        size_t len;
        uint8_t *file = s_read(s_golden[g].file, &len);
        const uint8_t *body = file + SO_WIRE_HDR_LEN;
        size_t body_len = len - SO_WIRE_HDR_LEN;
        bool *at = malloc(body_len + 1);
        assert_non_null(at);
        s_top_boundaries(body, body_len, at);
        size_t n_truncated = 0;
        for (size_t cut = 0; cut < body_len; cut++) {
            char err[512] = "", want[64];
            int rc = s_decode_bytes(s_golden[g].type, body, cut, err, sizeof err);
            if (at[cut])
                continue;   /* a shorter, well-formed message: validation decides */
            assert_int_equal(rc, -1);
            snprintf(want, sizeof want, "truncated protobuf (body %zu bytes)", cut);
            assert_err_contains(err, want);
            n_truncated++;
        }
        assert_true(n_truncated > body_len / 2);
        free(at);
        free(file);
    }
}

static void test_cut_at_boundary_still_validated(void **state)
{
    /* The empty prefix of every golden body misses its required id. */
    for (size_t g = 0; g < N_GOLDEN; g++) {
        char err[256] = "";
        assert_int_equal(s_decode_bytes(s_golden[g].type, (const uint8_t *) "", 0, err,
                                        sizeof err), -1);
        assert_err_contains(err, so_wire_type_name(s_golden[g].type));
        assert_err_contains(err, "empty (required)");
    }
}

static void test_header_errors(void **state)
{
    size_t len;
    uint8_t *file = s_read("turn_request", &len);
    const uint8_t *body = file + SO_WIRE_HDR_LEN;
    size_t body_len = len - SO_WIRE_HDR_LEN;
    char err[256];
    void *msg = (void *) 1;
    uint8_t hdr[SO_WIRE_HDR_LEN];

    memcpy(hdr, "SO\x07\x01", 4);
    assert_int_equal(so_wire_decode(hdr, 4, body, body_len, SO_MSG_TURN_REQUEST, &msg, err,
                                    sizeof err), -1);
    assert_null(msg);
    assert_string_equal(err, "protocol version 7 unsupported (want 1)");

    memcpy(hdr, "XO\x01\x01", 4);
    assert_int_equal(so_wire_decode(hdr, 4, body, body_len, SO_MSG_ANY, &msg, err, sizeof err),
                     -1);
    assert_err_contains(err, "bad magic");

    assert_int_equal(so_wire_decode("SO\x01", 3, body, body_len, SO_MSG_ANY, &msg, err,
                                    sizeof err), -1);
    assert_string_equal(err, "header frame is 3 bytes (want 4)");

    memcpy(hdr, "SO\x01\x00", 4);
    assert_int_equal(so_wire_decode(hdr, 4, body, body_len, SO_MSG_ANY, &msg, err, sizeof err),
                     -1);
    assert_string_equal(err, "unknown message type 0");
    hdr[3] = 99;
    assert_int_equal(so_wire_decode(hdr, 4, body, body_len, SO_MSG_ANY, &msg, err, sizeof err),
                     -1);
    assert_string_equal(err, "unknown message type 99");

    /* SO_MSG_ANY accepts the type in the header */
    so_msg_type_t type;
    assert_int_equal(so_wire_parse_header(file, 4, &type, err, sizeof err), 0);
    assert_int_equal(type, SO_MSG_TURN_REQUEST);
    assert_int_equal(so_wire_decode(file, 4, body, body_len, SO_MSG_ANY, &msg, err, sizeof err),
                     0);
    assert_ptr_equal(((ProtobufCMessage *) msg)->descriptor,
                     so_wire_descriptor(SO_MSG_TURN_REQUEST));
    so_wire_free(SO_MSG_ANY, msg);
    free(file);
}

static void test_wrong_type(void **state)
{
    size_t len;
    uint8_t *file = s_read("agent_result", &len);
    char err[256];
    void *msg = (void *) 1;
    assert_int_equal(so_wire_decode(file, 4, file + 4, len - 4, SO_MSG_TURN_REQUEST, &msg, err,
                                    sizeof err), -1);
    assert_null(msg);
    assert_string_equal(err, "expected TurnRequest, got AgentResult");
    free(file);
}

static void test_body_too_large(void **state)
{
    char err[256];
    size_t n = SO_WIRE_MAX_BODY + 1;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, big, n, err, sizeof err), -1);
    assert_err_contains(err, "exceeds limit 4194304");
    free(big);

    /* encode: five 1 MiB messages are each fine but too big together */
    char *content = malloc(SO_WIRE_MAX_TEXT + 1);
    assert_non_null(content);
    memset(content, 'x', SO_WIRE_MAX_TEXT);
    content[SO_WIRE_MAX_TEXT] = 0;
    chat_t chat[5];
    chat_t *cp[5];
    for (int i = 0; i < 5; i++) {
        chat[i] = (chat_t) SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT;
        chat[i].role = "user";
        chat[i].content = content;
        cp[i] = &chat[i];
    }
    turn_request_t m = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    m.request_id = "r";
    m.episode_id = "e";
    m.n_messages = 5;
    m.messages = cp;
    uint8_t hdr[4], *body;
    size_t len;
    assert_int_equal(so_wire_encode(SO_MSG_TURN_REQUEST, &m, hdr, &body, &len, err, sizeof err),
                     -1);
    assert_err_contains(err, "TurnRequest: body");
    assert_err_contains(err, "exceeds limit");

    /* one message over 1 MiB */
    content[SO_WIRE_MAX_TEXT - 1] = 'y';
    char *longer = malloc(SO_WIRE_MAX_TEXT + 2);
    assert_non_null(longer);
    memcpy(longer, content, SO_WIRE_MAX_TEXT);
    longer[SO_WIRE_MAX_TEXT] = 'z';
    longer[SO_WIRE_MAX_TEXT + 1] = 0;
    chat[0].content = longer;
    m.n_messages = 1;
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m,
                      "TurnRequest.messages[0].content: longer than 1048576 bytes");
    free(longer);
    free(content);
}

static void test_malformed_bytes(void **state)
{
    char err[256];
    /* request_id sent as a varint */
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, (const uint8_t *) "\x08\x01", 2, err,
                                    sizeof err), -1);
    assert_string_equal(err,
                        "malformed protobuf: TurnRequest.request_id at offset 0 has wire type 0");
    /* group wire type */
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, (const uint8_t *) "\x0b", 1, err,
                                    sizeof err), -1);
    assert_err_contains(err, "wire type 3 unsupported");
    /* field number 0 */
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, (const uint8_t *) "\x02\x00", 2, err,
                                    sizeof err), -1);
    assert_err_contains(err, "bad tag at offset 0");
    /* an 11-byte varint */
    assert_int_equal(
        s_decode_bytes(SO_MSG_TURN_REQUEST,
                       (const uint8_t *)"\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, err,
                       sizeof err),
        -1);
    assert_err_contains(err, "varint too long");
    /* nested length runs past its parent */
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, (const uint8_t *) "\x2a\x02\x0a\x05", 4,
                                    err, sizeof err), -1);
    assert_err_contains(err, "truncated protobuf (body 4 bytes): ChatMessage.role at offset 2");
    /* a singular sub-message twice (protobuf-c would merge them) */
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REPLY, (const uint8_t *) "\x0a\x01r\x2a\x00\x2a\x00",
                                    7, err, sizeof err), -1);
    assert_string_equal(err, "malformed protobuf: TurnReply.result at offset 5 repeats a singular field");
}

static void test_embedded_nul_and_utf8(void **state)
{
    char err[256];
    static const uint8_t nul[] = {0x0a, 0x03, 'a', 0x00, 'b', 0x12, 0x01, 'e'};
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, nul, sizeof nul, err, sizeof err), -1);
    assert_string_equal(err, "TurnRequest.request_id: embedded NUL at byte 1");

    /* inside a nested message */
    static const uint8_t nul2[] = {0x0a, 0x01, 'r', 0x12, 0x01, 'e',
                                   0x2a, 0x07, 0x0a, 0x01, 'u', 0x12, 0x02, 'h', 0x00};
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, nul2, sizeof nul2, err, sizeof err), -1);
    assert_string_equal(err, "ChatMessage.content: embedded NUL at byte 1");

    turn_request_t m = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    chat_t c = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT, *cp = &c;
    m.request_id = "r";
    m.episode_id = "e";
    m.n_messages = 1;
    m.messages = &cp;
    c.role = "user";
    c.content = "ok \xc3\xa9";
    char err2[256];
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &m, err2, sizeof err2), 0);
    c.content = "bad \xc0\xaf";   /* overlong '/' */
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m,
                      "TurnRequest.messages[0].content: invalid UTF-8 at byte 4");
    c.content = "\xed\xa0\x80";   /* surrogate */
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m, "invalid UTF-8 at byte 0");
    c.content = "cut \xe2\x80";
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m, "invalid UTF-8 at byte 4");
    c.content = "line\nbreaks\tare fine in text";
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &m, err2, sizeof err2), 0);
    m.episode_id = "ep\n1";
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m,
                      "TurnRequest.episode_id: control character 0x0a at byte 2");
    m.episode_id = "\xff";
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m, "TurnRequest.episode_id: invalid UTF-8 at byte 0");
}

/* ------------------------------------------------------------------------
 * Field validation (mutating decoded golden messages).
 */

static void test_bad_enums(void **state)
{
    uint8_t *file;
    size_t len;
    skill_demand_t *d = s_golden_decode("skill_demand", SO_MSG_SKILL_DEMAND, &file, &len);
    d->source = 9;
    s_assert_rejected(SO_MSG_SKILL_DEMAND, d, "SkillDemand.source: 9 is not a valid");
    d->source = -1;
    s_assert_rejected(SO_MSG_SKILL_DEMAND, d, "SkillDemand.source: -1 is not a valid");
    d->source = 0;
    s_assert_rejected(SO_MSG_SKILL_DEMAND, d, "SkillDemand.source: unset (SOURCE_UNSPECIFIED)");
    so_wire_free(SO_MSG_SKILL_DEMAND, d);
    free(file);

    routing_decision_t *r = s_golden_decode("routing_decision", SO_MSG_ROUTING_DECISION, &file,
                                            &len);
    r->strategy = 5;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r, "RoutingDecision.strategy: 5 is not a valid");
    r->strategy = 0;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r, "RoutingDecision.strategy: unset");
    so_wire_free(SO_MSG_ROUTING_DECISION, r);
    free(file);

    agent_result_t *a = s_golden_decode("agent_result", SO_MSG_AGENT_RESULT, &file, &len);
    a->error->code = 77;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a, "AgentResult.error.code: 77 is not a valid");
    so_wire_free(SO_MSG_AGENT_RESULT, a);
    free(file);
}

static void test_bad_numbers(void **state)
{
    uint8_t *file;
    size_t len;
    agent_result_t *a = s_golden_decode("agent_result", SO_MSG_AGENT_RESULT, &file, &len);
    a->cost_usd = NAN;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a, "AgentResult.cost_usd: not a finite number");
    a->cost_usd = -1;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a, "AgentResult.cost_usd: -1 is negative");
    a->cost_usd = 0.001;
    a->latency_s = INFINITY;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a, "AgentResult.latency_s: not a finite number");
    a->latency_s = 1;
    a->replay_score = 1.5;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a, "AgentResult.replay_score: 1.5 out of range [0, 1]");
    a->replay_score = -0.5;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a, "AgentResult.replay_score: -0.5 out of range [0, 1]");
    a->replay_score_opt_case = 4;   /* encode side only: protobuf-c would not pack it */
    char err[256];
    assert_int_equal(so_wire_validate(SO_MSG_AGENT_RESULT, a, err, sizeof err), -1);
    assert_string_equal(err, "AgentResult.replay_score: invalid case 4");
    a->replay_score_opt_case = SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE;
    so_wire_free(SO_MSG_AGENT_RESULT, a);
    free(file);

    turn_request_t *t = s_golden_decode("turn_request", SO_MSG_TURN_REQUEST, &file, &len);
    t->budget_usd = -0.01;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.budget_usd: -0.01 is negative");
    t->budget_usd = 1;
    t->lambda = -1;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.lambda: -1 is negative");
    t->lambda = NAN;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.lambda: not a finite number");
    so_wire_free(SO_MSG_TURN_REQUEST, t);
    free(file);

    routing_decision_t *r = s_golden_decode("routing_decision", SO_MSG_ROUTING_DECISION, &file,
                                            &len);
    r->scores[0]->skills[1]->competence = 1.5;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r,
                      "RoutingDecision.scores[0].skills[1].competence: 1.5 out of range [0, 1]");
    r->scores[0]->skills[1]->competence = 0.5;
    r->scores[1]->score = -INFINITY;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r,
                      "RoutingDecision.scores[1].score: not a finite number");
    r->scores[1]->score = -3;   /* utilities may be negative */
    assert_int_equal(so_wire_validate(SO_MSG_ROUTING_DECISION, r, err, sizeof err), 0);
    r->top_skills[0]->weight = 2;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r,
                      "RoutingDecision.top_skills[0].weight: 2 out of range");
    r->top_skills[0]->weight = 1;
    r->scores[0]->skills[0]->backoff_level = 17;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r,
                      "RoutingDecision.scores[0].skills[0].backoff_level: 17 exceeds 16");
    so_wire_free(SO_MSG_ROUTING_DECISION, r);
    free(file);

    episode_outcome_t *o = s_golden_decode("episode_outcome", SO_MSG_EPISODE_OUTCOME, &file, &len);
    o->score = 1.0000001;
    s_assert_rejected(SO_MSG_EPISODE_OUTCOME, o,
                      "EpisodeOutcome.score: 1.0000001 out of range [0, 1]");
    o->score = nextafter(1.0, 2.0);   /* one ulp over still prints as over */
    s_assert_rejected(SO_MSG_EPISODE_OUTCOME, o,
                      "EpisodeOutcome.score: 1.0000000000000002 out of range");
    o->score = 1;
    o->turns[0]->score = 2;
    s_assert_rejected(SO_MSG_EPISODE_OUTCOME, o, "EpisodeOutcome.turns[0].score: 2 out of range");
    o->turns[0]->score = 1;
    o->turns[1]->cost_usd = -0.5;
    s_assert_rejected(SO_MSG_EPISODE_OUTCOME, o,
                      "EpisodeOutcome.turns[1].cost_usd: -0.5 is negative");
    so_wire_free(SO_MSG_EPISODE_OUTCOME, o);
    free(file);

    agent_call_t *c = s_golden_decode("agent_call", SO_MSG_AGENT_CALL, &file, &len);
    c->attempt = 101;
    s_assert_rejected(SO_MSG_AGENT_CALL, c, "AgentCall.attempt: 101 exceeds 100");
    c->attempt = 0;
    c->deadline_ms = SO_WIRE_MAX_DEADLINE_MS + 1;
    s_assert_rejected(SO_MSG_AGENT_CALL, c, "AgentCall.deadline_ms");
    so_wire_free(SO_MSG_AGENT_CALL, c);
    free(file);

    handbook_announcement_t *h =
        s_golden_decode("handbook_announcement", SO_MSG_HANDBOOK_ANNOUNCEMENT, &file, &len);
    h->n_skills = SO_WIRE_MAX_SKILLS + 1;
    s_assert_rejected(SO_MSG_HANDBOOK_ANNOUNCEMENT, h,
                      "HandbookAnnouncement.n_skills: 1025 exceeds 1024");
    so_wire_free(SO_MSG_HANDBOOK_ANNOUNCEMENT, h);
    free(file);
}

static void test_required_ids(void **state)
{
    uint8_t *file;
    size_t len;
    char empty[] = "";
    turn_request_t *t = s_golden_decode("turn_request", SO_MSG_TURN_REQUEST, &file, &len);
    char *saved = t->request_id;
    t->request_id = empty;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.request_id: empty (required)");
    t->request_id = NULL;   /* NULL counts as empty */
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.request_id: empty (required)");
    t->request_id = saved;
    saved = t->exclude_agents[1];
    t->exclude_agents[1] = empty;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.exclude_agents[1]: empty (required)");
    t->exclude_agents[1] = saved;
    size_t n = t->n_messages;
    t->n_messages = 0;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t,
                      "TurnRequest.messages: 0 entries (at least 1 required)");
    t->n_messages = n;
    saved = t->messages[0]->role;
    t->messages[0]->role = empty;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.messages[0].role: empty (required)");
    t->messages[0]->role = saved;
    char long_id[SO_WIRE_MAX_ID + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[SO_WIRE_MAX_ID + 1] = 0;
    saved = t->episode_id;
    t->episode_id = long_id;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.episode_id: longer than 128 bytes");
    long_id[SO_WIRE_MAX_ID] = 0;   /* exactly 128: fine */
    char err[256];
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, t, err, sizeof err), 0);
    t->episode_id = saved;
    so_wire_free(SO_MSG_TURN_REQUEST, t);
    free(file);

    routing_decision_t *r = s_golden_decode("routing_decision", SO_MSG_ROUTING_DECISION, &file,
                                            &len);
    saved = r->scores[1]->agent_id;
    r->scores[1]->agent_id = empty;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r,
                      "RoutingDecision.scores[1].agent_id: empty (required)");
    r->scores[1]->agent_id = saved;
    saved = r->chosen_agent;
    r->chosen_agent = empty;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r, "RoutingDecision.chosen_agent: empty (required)");
    r->chosen_agent = saved;
    so_wire_free(SO_MSG_ROUTING_DECISION, r);
    free(file);

    handbook_announcement_t *h =
        s_golden_decode("handbook_announcement", SO_MSG_HANDBOOK_ANNOUNCEMENT, &file, &len);
    saved = h->redis_key;
    h->redis_key = empty;
    s_assert_rejected(SO_MSG_HANDBOOK_ANNOUNCEMENT, h,
                      "HandbookAnnouncement.redis_key: empty (required)");
    h->redis_key = saved;
    so_wire_free(SO_MSG_HANDBOOK_ANNOUNCEMENT, h);
    free(file);
}

static void test_oversized_counts(void **state)
{
    enum { N = SO_WIRE_MAX_MESSAGES + 1 };
    static chat_t chat[N];
    static chat_t *cp[N];
    static char *ex[N];
    for (int i = 0; i < N; i++) {
        chat[i] = (chat_t) SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT;
        chat[i].role = "user";
        chat[i].content = "hi";
        cp[i] = &chat[i];
        ex[i] = "agent";
    }
    turn_request_t m = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    m.request_id = "r";
    m.episode_id = "e";
    m.n_messages = N;
    m.messages = cp;
    /* the scan rejects it before protobuf-c allocates; validate agrees */
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m, "TurnRequest.messages: 257 entries (limit 256)");
    m.n_messages = N - 1;
    char err[256];
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &m, err, sizeof err), 0);
    m.n_exclude_agents = SO_WIRE_MAX_AGENTS + 1;
    m.exclude_agents = ex;
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m,
                      "TurnRequest.exclude_agents: 257 entries (limit 256)");

    enum { S = SO_WIRE_MAX_SKILLS + 1 };
    static weight_t w[S];
    static weight_t *wp[S];
    for (int i = 0; i < S; i++) {
        w[i] = (weight_t) SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT;
        w[i].skill_id = "s";
        w[i].weight = 0.001;
        wp[i] = &w[i];
    }
    skill_demand_t d = SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
    d.request_id = "r";
    d.handbook_version = "v";
    d.source = SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_EMBEDDED;
    d.n_skills = S;
    d.skills = wp;
    s_assert_rejected(SO_MSG_SKILL_DEMAND, &d, "SkillDemand.skills: 1025 entries (limit 1024)");
    d.n_skills = S - 1;
    assert_int_equal(so_wire_validate(SO_MSG_SKILL_DEMAND, &d, err, sizeof err), 0);
    char err2[256];
    assert_int_equal(s_raw_decode(SO_MSG_SKILL_DEMAND, &d, err2, sizeof err2), 0);
}

static void test_allocation_caps(void **state)
{
    char err[256];
    /* 1025 unknown varint fields */
    size_t n = 2 * (SO_WIRE_MAX_UNKNOWN + 1);
    uint8_t *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i += 2) {
        b[i] = (15 << 3) | 0;   /* field 15: unknown to HandbookAnnouncement */
        b[i + 1] = 1;
    }
    assert_int_equal(s_decode_bytes(SO_MSG_HANDBOOK_ANNOUNCEMENT, b, n, err, sizeof err), -1);
    assert_string_equal(err, "HandbookAnnouncement: more than 1024 unknown fields");
    free(b);

    /* EpisodeOutcome: 256 turns x 1024 empty demand entries = 2^19 objects
     * from ~530 KB: each count is within its cap, the total is not. */
    size_t inner = SO_WIRE_MAX_SKILLS * 2;          /* 0x22 0x00 per entry */
    size_t turn = 1 + 3 + inner;                    /* 0x2a, 3-byte length, entries */
    n = SO_WIRE_MAX_TURNS * turn;
    b = malloc(n);
    assert_non_null(b);
    uint8_t *p = b;
    for (int t = 0; t < SO_WIRE_MAX_TURNS; t++) {
        *p++ = 0x2a;
        *p++ = (uint8_t)(0x80 | (inner & 0x7f));
        *p++ = (uint8_t)(0x80 | ((inner >> 7) & 0x7f));
        *p++ = (uint8_t)(inner >> 14);
        for (int s = 0; s < SO_WIRE_MAX_SKILLS; s++) {
            *p++ = 0x22;
            *p++ = 0x00;
        }
    }
    assert_int_equal((size_t)(p - b), n);
    assert_int_equal(s_decode_bytes(SO_MSG_EPISODE_OUTCOME, b, n, err, sizeof err), -1);
    assert_err_contains(err, "would unpack into more than 262144 objects");
    free(b);
}

static void test_presence(void **state)
{
    char err[256];
    chat_t c = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT, *cp = &c;
    c.role = "user";
    turn_request_t m = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    m.request_id = "r";
    m.episode_id = "e";
    m.n_messages = 1;
    m.messages = &cp;

    uint8_t hdr[4], *unset, *zero;
    size_t unset_len, zero_len;
    assert_int_equal(so_wire_encode(SO_MSG_TURN_REQUEST, &m, hdr, &unset, &unset_len, err,
                                    sizeof err), 0);
    m.lambda_opt_case = SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA;
    m.lambda = 0;
    assert_int_equal(so_wire_encode(SO_MSG_TURN_REQUEST, &m, hdr, &zero, &zero_len, err,
                                    sizeof err), 0);
    assert_int_equal(zero_len, unset_len + 9);   /* tag + 8-byte double */

    turn_request_t *d;
    assert_int_equal(so_wire_decode(hdr, 4, zero, zero_len, SO_MSG_TURN_REQUEST, (void **) &d,
                                    err, sizeof err), 0);
    assert_int_equal(d->lambda_opt_case, SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA);
    assert_dbl(d->lambda, 0.0);
    so_wire_free(SO_MSG_TURN_REQUEST, d);
    assert_int_equal(so_wire_decode(hdr, 4, unset, unset_len, SO_MSG_TURN_REQUEST, (void **) &d,
                                    err, sizeof err), 0);
    assert_int_equal(d->lambda_opt_case, SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT__NOT_SET);
    so_wire_free(SO_MSG_TURN_REQUEST, d);
    free(unset);
    free(zero);

    /* EpisodeOutcome: success=false is a result; no result is an error */
    episode_outcome_t o = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
    o.episode_id = "e";
    o.handbook_version = "v";
    s_assert_rejected(SO_MSG_EPISODE_OUTCOME, &o, "EpisodeOutcome.result: not set (required)");
    o.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
    o.success = 0;
    uint8_t *body;
    size_t len;
    assert_int_equal(so_wire_encode(SO_MSG_EPISODE_OUTCOME, &o, hdr, &body, &len, err,
                                    sizeof err), 0);
    episode_outcome_t *od;
    assert_int_equal(so_wire_decode(hdr, 4, body, len, SO_MSG_EPISODE_OUTCOME, (void **) &od,
                                    err, sizeof err), 0);
    assert_int_equal(od->result_case, SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS);
    assert_false(od->success);
    so_wire_free(SO_MSG_EPISODE_OUTCOME, od);
    free(body);
}

static void test_turn_reply_rules(void **state)
{
    char err[256];
    turn_reply_t r = SKILLORCHESTRA__V1__TURN_REPLY__INIT;
    r.request_id = "r";
    s_assert_rejected(SO_MSG_TURN_REPLY, &r,
                      "TurnReply.result: absent (required unless error is set)");
    Skillorchestra__V1__Error e = SKILLORCHESTRA__V1__ERROR__INIT;
    e.code = SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_NO_ELIGIBLE_AGENT;
    e.message = "every agent excluded";
    r.error = &e;
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REPLY, &r, err, sizeof err), 0);
    char err2[256];
    assert_int_equal(s_raw_decode(SO_MSG_TURN_REPLY, &r, err2, sizeof err2), 0);
}

static void test_encode_misuse(void **state)
{
    char err[256];
    uint8_t hdr[4], *body;
    size_t len;
    handbook_announcement_t h = SKILLORCHESTRA__V1__HANDBOOK_ANNOUNCEMENT__INIT;
    h.version = "v";
    h.redis_key = "k";
    assert_int_equal(so_wire_encode(SO_MSG_AGENT_RESULT, &h, hdr, &body, &len, err, sizeof err),
                     -1);
    assert_string_equal(err, "message is HandbookAnnouncement, not AgentResult");
    assert_int_equal(so_wire_encode(SO_MSG_ANY, &h, hdr, &body, &len, err, sizeof err), -1);
    assert_string_equal(err, "unknown message type 0");
    assert_int_equal(so_wire_encode(SO_MSG_HANDBOOK_ANNOUNCEMENT, NULL, hdr, &body, &len, err,
                                    sizeof err), -1);
    assert_err_contains(err, "NULL message");

    /* repeated string with a NULL element */
    chat_t c = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT, *cp = &c;
    c.role = "user";
    char *ex[2] = {"a", NULL};
    turn_request_t m = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    m.request_id = "r";
    m.episode_id = "e";
    m.n_messages = 1;
    m.messages = &cp;
    m.n_exclude_agents = 2;
    m.exclude_agents = ex;
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &m, err, sizeof err), -1);
    assert_string_equal(err, "TurnRequest.exclude_agents[1]: NULL");
    /* a sub-message of the wrong type */
    m.n_exclude_agents = 0;
    weight_t w = SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT;
    chat_t *wrong = (chat_t *) &w;
    m.messages = &wrong;
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &m, err, sizeof err), -1);
    assert_string_equal(err, "TurnRequest.messages[0]: not a ChatMessage");
}

static void test_unknown_fields_kept(void **state)
{
    /* A newer peer adds fields 100 (varint) and 101 (string): we decode,
     * and re-encoding forwards them. */
    size_t len;
    uint8_t *file = s_read("handbook_announcement", &len);
    static const uint8_t extra[] = {0xa0, 0x06, 0x05, 0xaa, 0x06, 0x03, 'n', 'e', 'w'};
    uint8_t *b = malloc(len + sizeof extra);
    assert_non_null(b);
    memcpy(b, file, len);
    memcpy(b + len, extra, sizeof extra);
    char err[256];
    handbook_announcement_t *h;
    assert_int_equal(so_wire_decode(b, 4, b + 4, len - 4 + sizeof extra,
                                    SO_MSG_HANDBOOK_ANNOUNCEMENT, (void **) &h, err, sizeof err),
                     0);
    assert_string_equal(h->version, "hb-2024-06-01.3");
    assert_int_equal(h->base.n_unknown_fields, 2);
    s_assert_reencodes(SO_MSG_HANDBOOK_ANNOUNCEMENT, h, b, len + sizeof extra);
    so_wire_free(SO_MSG_HANDBOOK_ANNOUNCEMENT, h);
    free(b);
    free(file);
}

static void test_type_table(void **state)
{
    for (size_t g = 0; g < N_GOLDEN; g++) {
        const ProtobufCMessageDescriptor *d = so_wire_descriptor(s_golden[g].type);
        assert_non_null(d);
        assert_string_equal(d->short_name, so_wire_type_name(s_golden[g].type));
        assert_int_equal(so_wire_type_of(d), s_golden[g].type);
    }
    assert_null(so_wire_descriptor(SO_MSG_ANY));
    assert_null(so_wire_descriptor(SO_MSG_TYPE_MAX + 1));
    assert_string_equal(so_wire_type_name(42), "unknown");
    assert_int_equal(so_wire_type_of(&skillorchestra__v1__chat_message__descriptor), SO_MSG_ANY);
    /* MessageType in the .proto lists exactly our types */
    const ProtobufCEnumDescriptor *ed = &skillorchestra__v1__message_type__descriptor;
    assert_int_equal(ed->n_values, SO_MSG_TYPE_MAX + 1);
}

/* ------------------------------------------------------------------------
 * Sockets.
 */

static void *s_socket(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    assert_non_null(s);
    so_wire_sockopts_t o;
    so_wire_sockopts_defaults(&o);
    o.linger_ms = 0;
    char err[256];
    assert_int_equal(so_wire_set_sockopts(s, &o, err, sizeof err), 0);
    int timeout = 5000;   /* no test waits forever */
    assert_int_equal(zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout), 0);
    assert_int_equal(zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout), 0);
    return s;
}

static void test_pair_roundtrip(void **state)
{
    void *ctx = zmq_ctx_new();
    void *a = s_socket(ctx, ZMQ_PAIR), *b = s_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://so-wire-pair"), 0);
    assert_int_equal(zmq_connect(b, "inproc://so-wire-pair"), 0);
    char err[256];

    for (size_t g = 0; g < N_GOLDEN; g++) {
        uint8_t *file;
        size_t len;
        void *m = s_golden_decode(s_golden[g].file, s_golden[g].type, &file, &len);
        assert_int_equal(so_wire_send(a, NULL, s_golden[g].type, m, 0, err, sizeof err), 0);
        void *got = NULL;
        so_msg_type_t type = SO_MSG_ANY;
        if (so_wire_recv(b, NULL, SO_MSG_ANY, &type, &got, 0, err, sizeof err) != 0) {
            print_error("recv %s: %s\n", s_golden[g].file, err);
            fail();
        }
        assert_int_equal(type, s_golden[g].type);
        s_assert_reencodes(type, got, file, len);
        so_wire_free(type, got);
        so_wire_free(s_golden[g].type, m);
        free(file);
    }

    /* nothing waiting */
    void *got = (void *) 1;
    assert_int_equal(so_wire_recv(b, NULL, SO_MSG_ANY, NULL, &got, ZMQ_DONTWAIT, err,
                                  sizeof err), -1);
    assert_int_equal(errno, EAGAIN);
    assert_null(got);

    /* an invalid message is refused at the sender */
    handbook_announcement_t h = SKILLORCHESTRA__V1__HANDBOOK_ANNOUNCEMENT__INIT;
    assert_int_equal(so_wire_send(a, NULL, SO_MSG_HANDBOOK_ANNOUNCEMENT, &h, 0, err, sizeof err),
                     -1);
    assert_int_equal(errno, EINVAL);
    assert_string_equal(err, "HandbookAnnouncement.version: empty (required)");

    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

static void test_dealer_router(void **state)
{
    void *ctx = zmq_ctx_new();
    void *router = s_socket(ctx, ZMQ_ROUTER), *dealer = s_socket(ctx, ZMQ_DEALER);
    assert_int_equal(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "gw-1", 4), 0);
    assert_int_equal(zmq_bind(router, "inproc://so-wire-router"), 0);
    assert_int_equal(zmq_connect(dealer, "inproc://so-wire-router"), 0);
    char err[256];
    uint8_t *file;
    size_t len;

    /* DEALER -> ROUTER: the routing id comes back as the envelope */
    turn_request_t *req = s_golden_decode("turn_request", SO_MSG_TURN_REQUEST, &file, &len);
    assert_int_equal(so_wire_send(dealer, NULL, SO_MSG_TURN_REQUEST, req, 0, err, sizeof err), 0);
    so_wire_envelope_t env = {0};
    turn_request_t *got = NULL;
    so_msg_type_t type;
    assert_int_equal(so_wire_recv(router, &env, SO_MSG_TURN_REQUEST, &type, (void **) &got, 0,
                                  err, sizeof err), 0);
    assert_int_equal(type, SO_MSG_TURN_REQUEST);
    assert_int_equal(env.n, 1);
    assert_int_equal(env.len[0], 4);
    assert_memory_equal(env.frame[0], "gw-1", 4);
    assert_string_equal(got->request_id, "req-0001");
    so_wire_free(SO_MSG_TURN_REQUEST, got);
    so_wire_free(SO_MSG_TURN_REQUEST, req);
    free(file);

    /* ROUTER -> DEALER with that envelope */
    turn_reply_t *rep = s_golden_decode("turn_reply", SO_MSG_TURN_REPLY, &file, &len);
    assert_int_equal(so_wire_send(router, &env, SO_MSG_TURN_REPLY, rep, 0, err, sizeof err), 0);
    turn_reply_t *rgot = NULL;
    assert_int_equal(so_wire_recv(dealer, NULL, SO_MSG_TURN_REPLY, NULL, (void **) &rgot, 0, err,
                                  sizeof err), 0);
    s_assert_reencodes(SO_MSG_TURN_REPLY, rgot, file, len);
    so_wire_free(SO_MSG_TURN_REPLY, rgot);

    /* an unknown routing id fails loudly (ZMQ_ROUTER_MANDATORY) */
    so_wire_envelope_t nobody = {0};
    assert_int_equal(so_wire_envelope_push(&nobody, "nobody", 6), 0);
    assert_int_equal(so_wire_send(router, &nobody, SO_MSG_TURN_REPLY, rep, 0, err, sizeof err),
                     -1);
    assert_int_equal(errno, EHOSTUNREACH);
    so_wire_free(SO_MSG_TURN_REPLY, rep);
    free(file);

    /* protocol errors consume exactly one message, keep the envelope, and
     * leave the socket aligned for the next one */
    file = s_read("agent_result", &len);
    uint8_t bad_hdr[4] = {'S', 'O', 7, SO_MSG_AGENT_RESULT};
    assert_int_equal(zmq_send(dealer, bad_hdr, 4, ZMQ_SNDMORE), 4);
    assert_int_equal(zmq_send(dealer, file + 4, len - 4, 0), (int) (len - 4));
    assert_int_equal(zmq_send(dealer, "lonely", 6, 0), 6);                   /* 1 frame */
    for (int i = 0; i < SO_WIRE_MAX_ENVELOPE + 3; i++)                       /* 11 frames */
        assert_int_equal(zmq_send(dealer, "x", 1, i < SO_WIRE_MAX_ENVELOPE + 2 ? ZMQ_SNDMORE : 0),
                         1);
    assert_int_equal(zmq_send(dealer, file, 4, ZMQ_SNDMORE), 4);             /* wrong type */
    assert_int_equal(zmq_send(dealer, file + 4, len - 4, 0), (int) (len - 4));
    assert_int_equal(zmq_send(dealer, file, 4, ZMQ_SNDMORE), 4);             /* good */
    assert_int_equal(zmq_send(dealer, file + 4, len - 4, 0), (int) (len - 4));

    void *m = (void *) 1;
    assert_int_equal(so_wire_recv(router, &env, SO_MSG_AGENT_RESULT, NULL, &m, 0, err,
                                  sizeof err), -1);
    assert_int_equal(errno, EPROTO);
    assert_null(m);
    assert_string_equal(err, "protocol version 7 unsupported (want 1)");
    assert_int_equal(env.n, 1);
    assert_memory_equal(env.frame[0], "gw-1", 4);

    assert_int_equal(so_wire_recv(router, &env, SO_MSG_AGENT_RESULT, NULL, &m, 0, err,
                                  sizeof err), -1);
    assert_int_equal(errno, EPROTO);
    assert_string_equal(err, "bad magic 0x67 0x77 (want \"SO\")");   /* [id]["lonely"] */
    assert_int_equal(so_wire_recv(router, &env, SO_MSG_AGENT_RESULT, NULL, &m, 0, err,
                                  sizeof err), -1);
    assert_int_equal(errno, EPROTO);
    assert_string_equal(err, "message has 12 frames (limit 10)");
    assert_int_equal(so_wire_recv(router, &env, SO_MSG_TURN_REQUEST, NULL, &m, 0, err,
                                  sizeof err), -1);
    assert_int_equal(errno, EPROTO);
    assert_string_equal(err, "expected TurnRequest, got AgentResult");
    assert_int_equal(env.n, 1);
    assert_int_equal(so_wire_recv(router, &env, SO_MSG_AGENT_RESULT, NULL, &m, 0, err,
                                  sizeof err), 0);
    assert_string_equal(((agent_result_t *) m)->worker_id, "worker-a/3");
    so_wire_free(SO_MSG_AGENT_RESULT, m);
    /* a ROUTER message read without an envelope */
    assert_int_equal(zmq_send(dealer, file, 4, ZMQ_SNDMORE), 4);
    assert_int_equal(zmq_send(dealer, file + 4, len - 4, 0), (int) (len - 4));
    assert_int_equal(so_wire_recv(router, NULL, SO_MSG_AGENT_RESULT, NULL, &m, 0, err,
                                  sizeof err), -1);
    assert_int_equal(errno, EPROTO);
    assert_string_equal(err, "message has 1 envelope frames, none expected");
    free(file);

    zmq_close(router);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
}

static void test_sockopts(void **state)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    char err[256];
    assert_int_equal(so_wire_set_sockopts(s, NULL, err, sizeof err), 0);
    int v;
    int64_t v64;
    size_t len = sizeof v;
    assert_int_equal(zmq_getsockopt(s, ZMQ_SNDHWM, &v, &len), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(zmq_getsockopt(s, ZMQ_RCVHWM, &v, &len), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(zmq_getsockopt(s, ZMQ_LINGER, &v, &len), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(zmq_getsockopt(s, ZMQ_HEARTBEAT_IVL, &v, &len), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(zmq_getsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &v, &len), 0);
    assert_int_equal(v, 15000);
    assert_int_equal(zmq_getsockopt(s, ZMQ_HEARTBEAT_TTL, &v, &len), 0);
    assert_int_equal(v, 15000);
    len = sizeof v64;
    assert_int_equal(zmq_getsockopt(s, ZMQ_MAXMSGSIZE, &v64, &len), 0);
    assert_int_equal(v64, SO_WIRE_MAX_BODY);

    so_wire_sockopts_t o;
    so_wire_sockopts_defaults(&o);
    o.sndhwm = -5;
    assert_int_equal(so_wire_set_sockopts(s, &o, err, sizeof err), -1);
    assert_err_contains(err, "ZMQ_SNDHWM");
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static void test_envelope(void **state)
{
    so_wire_envelope_t env = {0};
    uint8_t big[SO_WIRE_MAX_ROUTING_ID + 1] = {0};
    assert_int_equal(so_wire_envelope_push(&env, big, sizeof big), -1);
    assert_int_equal(so_wire_envelope_push(&env, "", 0), 0);
    for (int i = 1; i < SO_WIRE_MAX_ENVELOPE; i++)
        assert_int_equal(so_wire_envelope_push(&env, "id", 2), 0);
    assert_int_equal(so_wire_envelope_push(&env, "id", 2), -1);
    assert_int_equal(env.n, SO_WIRE_MAX_ENVELOPE);
    so_wire_envelope_reset(&env);
    assert_int_equal(env.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_turn_request),
        cmocka_unit_test(test_golden_skill_demand),
        cmocka_unit_test(test_golden_routing_decision),
        cmocka_unit_test(test_golden_agent_call),
        cmocka_unit_test(test_golden_agent_result),
        cmocka_unit_test(test_golden_episode_outcome),
        cmocka_unit_test(test_golden_handbook_announcement),
        cmocka_unit_test(test_golden_turn_reply),
        cmocka_unit_test(test_truncated_bodies),
        cmocka_unit_test(test_cut_at_boundary_still_validated),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_malformed_bytes),
        cmocka_unit_test(test_embedded_nul_and_utf8),
        cmocka_unit_test(test_bad_enums),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_required_ids),
        cmocka_unit_test(test_oversized_counts),
        cmocka_unit_test(test_allocation_caps),
        cmocka_unit_test(test_presence),
        cmocka_unit_test(test_turn_reply_rules),
        cmocka_unit_test(test_encode_misuse),
        cmocka_unit_test(test_unknown_fields_kept),
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_pair_roundtrip),
        cmocka_unit_test(test_dealer_router),
        cmocka_unit_test(test_sockopts),
        cmocka_unit_test(test_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
