/*
 * Tests for so_wire's framing and encode/decode: the golden vectors in
 * tests/golden (every field checked by hand, and re-encoding must reproduce
 * the file byte for byte), the header, the type table, the retired type 7,
 * oneof presence and unknown fields.  The pre-scan is tested in
 * test_so_wire_scan.c, the validators in test_so_wire_check.c, the sockets
 * in test_so_wire_sock.c.  Run from the repo root.
 */
#include "so_test_wire.h"

static void s_assert_chat(so_pb_chat_message_t *const *m, size_t n)
{
    assert_int_equal(n, 2);
    assert_string_equal(m[0]->role, "system");
    assert_string_equal(m[0]->content, "You are a careful assistant.");
    assert_string_equal(m[1]->role, "user");
    assert_string_equal(
        m[1]->content,
        "Write a function that reverses a string \xe2\x80\x94 caf\xc3\xa9 \xe2\x9c\x93");
}

static void s_assert_weight(const so_pb_skill_weight_t *w, const char *id, double weight)
{
    assert_string_equal(w->skill_id, id);
    assert_dbl(w->weight, weight);
}

static void test_golden_turn_request(void **state)
{
    uint8_t *file;
    size_t len;
    so_pb_turn_request_t *m = s_golden_decode("turn_request", SO_MSG_TURN_REQUEST, &file, &len);
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
    so_pb_skill_demand_t *m = s_golden_decode("skill_demand", SO_MSG_SKILL_DEMAND, &file, &len);
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

static void s_assert_competence(const so_pb_skill_competence_t *c, const char *id, double w,
                                double comp, double succ, double att, uint32_t backoff)
{
    assert_string_equal(c->skill_id, id);
    assert_dbl(c->weight, w);
    assert_dbl(c->competence, comp);
    assert_dbl(c->successes, succ);
    assert_dbl(c->attempts, att);
    assert_int_equal(c->backoff_level, backoff);
}

static void s_assert_decision(const so_pb_routing_decision_t *m)
{
    assert_string_equal(m->request_id, "req-0001");
    assert_string_equal(m->episode_id, "ep-42");
    assert_int_equal(m->turn_index, 3);
    assert_string_equal(m->handbook_version, "hb-2024-06-01.3");
    assert_string_equal(m->chosen_agent, "qwen-coder-7b");
    assert_int_equal(m->n_scores, 2);
    const so_pb_agent_score_t *s = m->scores[0];
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
    so_pb_routing_decision_t *m = s_golden_decode("routing_decision", SO_MSG_ROUTING_DECISION,
                                                  &file, &len);
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
    so_pb_agent_call_t *m = s_golden_decode("agent_call", SO_MSG_AGENT_CALL, &file, &len);
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

static void s_assert_result(const so_pb_agent_result_t *m)
{
    assert_string_equal(m->request_id, "req-0001");
    assert_string_equal(m->agent_id, "qwen-coder-7b");
    assert_string_equal(m->text, "def rev(s):\n    return s[::-1]\n");
    assert_int_equal(m->prompt_tokens, 412);
    assert_int_equal(m->completion_tokens, 37);
    assert_dbl(m->cost_usd, 0.00125);
    assert_dbl(m->latency_s, 1.5);
    assert_non_null(m->error);
    assert_int_equal(m->error->code, SO_ERR(RATE_LIMITED));
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
    so_pb_agent_result_t *m = s_golden_decode("agent_result", SO_MSG_AGENT_RESULT, &file, &len);
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
    so_pb_episode_outcome_t *m = s_golden_decode("episode_outcome", SO_MSG_EPISODE_OUTCOME, &file,
                                                 &len);
    assert_memory_equal(file, "SO\x01\x06", 4);
    assert_string_equal(m->episode_id, "ep-42");
    assert_string_equal(m->handbook_version, "hb-2024-06-01.3");
    assert_int_equal(m->result_case, SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE);
    assert_dbl(m->score, 0.75);
    assert_true(m->finished_unix_ms == UINT64_C(1717243200123));
    assert_int_equal(m->n_turns, 2);
    const so_pb_turn_record_t *r = m->turns[0];
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

/* Type 7 was HandbookAnnouncement, retired: the number is reserved, the
 * header is refused and nothing encodes or validates as it. */
static void test_retired_type_7(void **state)
{
    size_t len;
    uint8_t *file = s_read("turn_request", &len);
    char err[256];
    void *msg = (void *) 1;
    uint8_t hdr[SO_WIRE_HDR_LEN] = { 'S', 'O', SO_WIRE_VERSION, 7 };
    assert_int_equal(so_wire_decode(hdr, 4, file + 4, len - 4, SO_MSG_ANY, &msg, err, sizeof err),
                     -1);
    assert_null(msg);
    assert_string_equal(err, "unknown message type 7");
    assert_int_equal(so_wire_parse_header(hdr, 4, NULL, err, sizeof err), -1);
    assert_null(so_wire_descriptor((so_msg_type_t) 7));
    assert_string_equal(so_wire_type_name((so_msg_type_t) 7), "unknown");
    assert_null(
        protobuf_c_enum_descriptor_get_value(&skillorchestra__v1__message_type__descriptor, 7));
    free(file);
    so_pb_turn_request_t *t = s_golden_decode("turn_request", SO_MSG_TURN_REQUEST, &file, &len);
    assert_int_equal(so_wire_validate((so_msg_type_t) 7, t, err, sizeof err), -1);
    assert_string_equal(err, "unknown message type 7");
    uint8_t *body;
    assert_int_equal(so_wire_encode((so_msg_type_t) 7, t, hdr, &body, &len, err, sizeof err), -1);
    so_wire_free(SO_MSG_TURN_REQUEST, t);
    free(file);
}

static void test_golden_turn_reply(void **state)
{
    uint8_t *file;
    size_t len;
    so_pb_turn_reply_t *m = s_golden_decode("turn_reply", SO_MSG_TURN_REPLY, &file, &len);
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
    assert_int_equal(m->error->code, SO_ERR(NONE));
    assert_string_equal(m->error->message, "");
    s_assert_reencodes(SO_MSG_TURN_REPLY, m, file, len);
    so_wire_free(SO_MSG_TURN_REPLY, m);
    free(file);
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
                                    sizeof err),
                     -1);
    assert_null(msg);
    assert_string_equal(err, "protocol version 7 unsupported (want 1)");

    memcpy(hdr, "XO\x01\x01", 4);
    assert_int_equal(so_wire_decode(hdr, 4, body, body_len, SO_MSG_ANY, &msg, err, sizeof err),
                     -1);
    assert_err_contains(err, "bad magic");

    assert_int_equal(so_wire_decode("SO\x01", 3, body, body_len, SO_MSG_ANY, &msg, err,
                                    sizeof err),
                     -1);
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
                                    sizeof err),
                     -1);
    assert_null(msg);
    assert_string_equal(err, "expected TurnRequest, got AgentResult");
    free(file);
}

static void test_presence(void **state)
{
    char err[256];
    so_pb_chat_message_t c = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT, *cp = &c;
    c.role = "user";
    so_pb_turn_request_t m = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    m.request_id = "r";
    m.episode_id = "e";
    m.n_messages = 1;
    m.messages = &cp;

    uint8_t hdr[4], *unset, *zero;
    size_t unset_len, zero_len;
    assert_int_equal(so_wire_encode(SO_MSG_TURN_REQUEST, &m, hdr, &unset, &unset_len, err,
                                    sizeof err),
                     0);
    m.lambda_opt_case = SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA;
    m.lambda = 0;
    assert_int_equal(so_wire_encode(SO_MSG_TURN_REQUEST, &m, hdr, &zero, &zero_len, err,
                                    sizeof err),
                     0);
    assert_int_equal(zero_len, unset_len + 9); /* tag + 8-byte double */

    so_pb_turn_request_t *d;
    assert_int_equal(so_wire_decode(hdr, 4, zero, zero_len, SO_MSG_TURN_REQUEST, (void **) &d,
                                    err, sizeof err),
                     0);
    assert_int_equal(d->lambda_opt_case, SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA);
    assert_dbl(d->lambda, 0.0);
    so_wire_free(SO_MSG_TURN_REQUEST, d);
    assert_int_equal(so_wire_decode(hdr, 4, unset, unset_len, SO_MSG_TURN_REQUEST, (void **) &d,
                                    err, sizeof err),
                     0);
    assert_int_equal(d->lambda_opt_case, SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT__NOT_SET);
    so_wire_free(SO_MSG_TURN_REQUEST, d);
    free(unset);
    free(zero);

    /* EpisodeOutcome: success=false is a result; no result is an error */
    so_pb_episode_outcome_t o = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
    o.episode_id = "e";
    o.handbook_version = "v";
    s_assert_rejected(SO_MSG_EPISODE_OUTCOME, &o, "EpisodeOutcome.result: not set (required)");
    o.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
    o.success = 0;
    uint8_t *body;
    size_t len;
    assert_int_equal(so_wire_encode(SO_MSG_EPISODE_OUTCOME, &o, hdr, &body, &len, err,
                                    sizeof err),
                     0);
    so_pb_episode_outcome_t *od;
    assert_int_equal(so_wire_decode(hdr, 4, body, len, SO_MSG_EPISODE_OUTCOME, (void **) &od, err,
                                    sizeof err),
                     0);
    assert_int_equal(od->result_case, SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS);
    assert_false(od->success);
    so_wire_free(SO_MSG_EPISODE_OUTCOME, od);
    free(body);
}

static void test_unknown_fields_kept(void **state)
{
    /* A newer peer adds fields 100 (varint) and 101 (string): we decode,
     * and re-encoding forwards them. */
    size_t len;
    uint8_t *file = s_read("episode_outcome", &len);
    static const uint8_t extra[] = { 0xa0, 0x06, 0x05, 0xaa, 0x06, 0x03, 'n', 'e', 'w' };
    uint8_t *b = malloc(len + sizeof extra);
    assert_non_null(b);
    memcpy(b, file, len);
    memcpy(b + len, extra, sizeof extra);
    char err[256];
    so_pb_episode_outcome_t *h;
    assert_int_equal(so_wire_decode(b, 4, b + 4, len - 4 + sizeof extra, SO_MSG_EPISODE_OUTCOME,
                                    (void **) &h, err, sizeof err),
                     0);
    assert_string_equal(h->episode_id, "ep-42");
    assert_int_equal(h->base.n_unknown_fields, 2);
    s_assert_reencodes(SO_MSG_EPISODE_OUTCOME, h, b, len + sizeof extra);
    so_wire_free(SO_MSG_EPISODE_OUTCOME, h);
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
    /* MessageType in the .proto lists exactly our types (0..9 but the
     * retired 7) */
    const ProtobufCEnumDescriptor *ed = &skillorchestra__v1__message_type__descriptor;
    assert_int_equal(ed->n_values, SO_MSG_TYPE_MAX);
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
        cmocka_unit_test(test_retired_type_7),
        cmocka_unit_test(test_golden_turn_reply),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_presence),
        cmocka_unit_test(test_unknown_fields_kept),
        cmocka_unit_test(test_type_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
