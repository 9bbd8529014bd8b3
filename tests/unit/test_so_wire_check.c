/*
 * Tests for so_wire_validate, the per-message rules checked after decoding
 * and before encoding: golden messages are mutated one field at a time and
 * must be refused on both sides with an error naming the field.  Run from
 * the repo root.
 */
#include "so_test_wire.h"

static void test_bad_enums(void **state)
{
    uint8_t *file;
    size_t len;
    so_pb_skill_demand_t *d = s_golden_decode("skill_demand", SO_MSG_SKILL_DEMAND, &file, &len);
    d->source = 9;
    s_assert_rejected(SO_MSG_SKILL_DEMAND, d, "SkillDemand.source: 9 is not a valid");
    d->source = -1;
    s_assert_rejected(SO_MSG_SKILL_DEMAND, d, "SkillDemand.source: -1 is not a valid");
    d->source = 0;
    s_assert_rejected(SO_MSG_SKILL_DEMAND, d, "SkillDemand.source: unset (SOURCE_UNSPECIFIED)");
    so_wire_free(SO_MSG_SKILL_DEMAND, d);
    free(file);

    so_pb_routing_decision_t *r = s_golden_decode("routing_decision", SO_MSG_ROUTING_DECISION,
                                                  &file, &len);
    r->strategy = 5;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r, "RoutingDecision.strategy: 5 is not a valid");
    r->strategy = 0;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r, "RoutingDecision.strategy: unset");
    so_wire_free(SO_MSG_ROUTING_DECISION, r);
    free(file);

    so_pb_agent_result_t *a = s_golden_decode("agent_result", SO_MSG_AGENT_RESULT, &file, &len);
    a->error->code = 77;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a, "AgentResult.error.code: 77 is not a valid");
    so_wire_free(SO_MSG_AGENT_RESULT, a);
    free(file);
}

static void test_bad_numbers(void **state)
{
    uint8_t *file;
    size_t len;
    so_pb_agent_result_t *a = s_golden_decode("agent_result", SO_MSG_AGENT_RESULT, &file, &len);
    a->cost_usd = NAN;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a, "AgentResult.cost_usd: not a finite number");
    a->cost_usd = -1;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a, "AgentResult.cost_usd: -1 is negative");
    a->cost_usd = 0.001;
    a->latency_s = INFINITY;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a, "AgentResult.latency_s: not a finite number");
    a->latency_s = 1;
    a->replay_score = 1.5;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a,
                      "AgentResult.replay_score: 1.5 out of range [0, 1]");
    a->replay_score = -0.5;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a,
                      "AgentResult.replay_score: -0.5 out of range [0, 1]");
    a->replay_score_opt_case = 4; /* encode side only: protobuf-c would not pack it */
    char err[256];
    assert_int_equal(so_wire_validate(SO_MSG_AGENT_RESULT, a, err, sizeof err), -1);
    assert_string_equal(err, "AgentResult.replay_score: invalid case 4");
    a->replay_score_opt_case = SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE;
    so_wire_free(SO_MSG_AGENT_RESULT, a);
    free(file);

    so_pb_turn_request_t *t = s_golden_decode("turn_request", SO_MSG_TURN_REQUEST, &file, &len);
    t->budget_usd = -0.01;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.budget_usd: -0.01 is negative");
    t->budget_usd = 1;
    t->lambda = -1;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.lambda: -1 is negative");
    t->lambda = NAN;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.lambda: not a finite number");
    so_wire_free(SO_MSG_TURN_REQUEST, t);
    free(file);

    so_pb_routing_decision_t *r = s_golden_decode("routing_decision", SO_MSG_ROUTING_DECISION,
                                                  &file, &len);
    r->scores[0]->skills[1]->competence = 1.5;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r,
                      "RoutingDecision.scores[0].skills[1].competence: 1.5 out of range [0, 1]");
    r->scores[0]->skills[1]->competence = 0.5;
    r->scores[1]->score = -INFINITY;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r,
                      "RoutingDecision.scores[1].score: not a finite number");
    r->scores[1]->score = -3; /* utilities may be negative */
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

    so_pb_episode_outcome_t *o = s_golden_decode("episode_outcome", SO_MSG_EPISODE_OUTCOME, &file,
                                                 &len);
    o->score = 1.0000001;
    s_assert_rejected(SO_MSG_EPISODE_OUTCOME, o,
                      "EpisodeOutcome.score: 1.0000001 out of range [0, 1]");
    o->score = nextafter(1.0, 2.0); /* one ulp over still prints as over */
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

    so_pb_agent_call_t *c = s_golden_decode("agent_call", SO_MSG_AGENT_CALL, &file, &len);
    c->attempt = 101;
    s_assert_rejected(SO_MSG_AGENT_CALL, c, "AgentCall.attempt: 101 exceeds 100");
    c->attempt = 0;
    c->deadline_ms = SO_WIRE_MAX_DEADLINE_MS + 1;
    s_assert_rejected(SO_MSG_AGENT_CALL, c, "AgentCall.deadline_ms");
    so_wire_free(SO_MSG_AGENT_CALL, c);
    free(file);

    a = s_golden_decode("agent_result", SO_MSG_AGENT_RESULT, &file, &len);
    a->partial = 1;
    s_assert_rejected(SO_MSG_AGENT_RESULT, a,
                      "AgentResult.partial: a partial result carries "
                      "no usage, cost, score or error");
    so_wire_free(SO_MSG_AGENT_RESULT, a);
    free(file);
}

static void test_required_ids(void **state)
{
    uint8_t *file;
    size_t len;
    char empty[] = "";
    so_pb_turn_request_t *t = s_golden_decode("turn_request", SO_MSG_TURN_REQUEST, &file, &len);
    char *saved = t->request_id;
    t->request_id = empty;
    s_assert_rejected(SO_MSG_TURN_REQUEST, t, "TurnRequest.request_id: empty (required)");
    t->request_id = NULL; /* NULL counts as empty */
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
    long_id[SO_WIRE_MAX_ID] = 0; /* exactly 128: fine */
    char err[256];
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, t, err, sizeof err), 0);
    t->episode_id = saved;
    so_wire_free(SO_MSG_TURN_REQUEST, t);
    free(file);

    so_pb_routing_decision_t *r = s_golden_decode("routing_decision", SO_MSG_ROUTING_DECISION,
                                                  &file, &len);
    saved = r->scores[1]->agent_id;
    r->scores[1]->agent_id = empty;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r,
                      "RoutingDecision.scores[1].agent_id: empty (required)");
    r->scores[1]->agent_id = saved;
    saved = r->chosen_agent;
    r->chosen_agent = empty;
    s_assert_rejected(SO_MSG_ROUTING_DECISION, r,
                      "RoutingDecision.chosen_agent: empty (required)");
    r->chosen_agent = saved;
    so_wire_free(SO_MSG_ROUTING_DECISION, r);
    free(file);

    so_pb_episode_outcome_t *o = s_golden_decode("episode_outcome", SO_MSG_EPISODE_OUTCOME, &file,
                                                 &len);
    saved = o->handbook_version;
    o->handbook_version = empty;
    s_assert_rejected(SO_MSG_EPISODE_OUTCOME, o,
                      "EpisodeOutcome.handbook_version: empty (required)");
    o->handbook_version = saved;
    so_wire_free(SO_MSG_EPISODE_OUTCOME, o);
    free(file);
}

static void test_turn_reply_rules(void **state)
{
    char err[256];
    so_pb_turn_reply_t r = SKILLORCHESTRA__V1__TURN_REPLY__INIT;
    r.request_id = "r";
    s_assert_rejected(SO_MSG_TURN_REPLY, &r,
                      "TurnReply.result: absent (required unless error is set)");
    so_pb_error_t e = SKILLORCHESTRA__V1__ERROR__INIT;
    e.code = SO_ERR(NO_ELIGIBLE_AGENT);
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
    so_pb_episode_outcome_t h = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
    h.episode_id = "e";
    h.handbook_version = "v";
    h.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
    assert_int_equal(so_wire_encode(SO_MSG_AGENT_RESULT, &h, hdr, &body, &len, err, sizeof err),
                     -1);
    assert_string_equal(err, "message is EpisodeOutcome, not AgentResult");
    assert_int_equal(so_wire_encode(SO_MSG_ANY, &h, hdr, &body, &len, err, sizeof err), -1);
    assert_string_equal(err, "unknown message type 0");
    assert_int_equal(so_wire_encode(SO_MSG_EPISODE_OUTCOME, NULL, hdr, &body, &len, err,
                                    sizeof err),
                     -1);
    assert_err_contains(err, "NULL message");

    /* repeated string with a NULL element */
    so_pb_chat_message_t c = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT, *cp = &c;
    c.role = "user";
    char *ex[2] = { "a", NULL };
    so_pb_turn_request_t m = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
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
    so_pb_skill_weight_t w = SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT;
    so_pb_chat_message_t *wrong = (so_pb_chat_message_t *) &w;
    m.messages = &wrong;
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &m, err, sizeof err), -1);
    assert_string_equal(err, "TurnRequest.messages[0]: not a ChatMessage");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_enums),     cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_required_ids),  cmocka_unit_test(test_turn_reply_rules),
        cmocka_unit_test(test_encode_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
