/*
 * so-golden — writes (or checks) the golden wire vectors in tests/golden.
 *
 *     so-golden [--check] [DIR]      DIR defaults to tests/golden
 *
 * For each top-level message type it builds one canonical, fully populated
 * instance with fixed values and writes DIR/<message>.bin: the 4-byte
 * header frame followed by the protobuf body (the two frames of the wire
 * message, concatenated; see docs/PROTOCOL.md).  --check compares instead of
 * writing and exits 1 on any difference.
 *
 * tests/unit/test_so_wire.c asserts every field of these files by hand, so
 * change a value here only together with the test (and never to paper over a
 * changed encoding: that is what the vectors are for).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/so_alloc.h"
#include "wire/so_wire.h"


#define N(a) (sizeof(a) / sizeof((a)[0]))

static so_pb_chat_message_t s_chat[2] = { SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT,
                                          SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT };
static so_pb_chat_message_t *s_chat_p[2];

static void s_messages(void)
{
    s_chat[0].role = "system";
    s_chat[0].content = "You are a careful assistant.";
    s_chat[1].role = "user";
    s_chat[1].content =
        "Write a function that reverses a string \xe2\x80\x94 caf\xc3\xa9 \xe2\x9c\x93";
    s_chat_p[0] = &s_chat[0];
    s_chat_p[1] = &s_chat[1];
}

static void s_turn_request(so_pb_turn_request_t *m)
{
    static char *exclude[] = { "gpt-4o", "claude-3-opus" };
    s_messages();
    m->request_id = "req-0001";
    m->episode_id = "ep-42";
    m->turn_index = 3;
    m->mode = "code";
    m->n_messages = N(s_chat_p);
    m->messages = s_chat_p;
    m->budget_usd = 0.25;
    m->lambda_opt_case = SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA;
    m->lambda = 0.5;
    m->handbook_version = "hb-2024-06-01.3";
    m->max_completion_tokens = 1024;
    m->routing_profile = "balanced";
    m->n_exclude_agents = N(exclude);
    m->exclude_agents = exclude;
}

static void s_skill_demand(so_pb_skill_demand_t *m)
{
    static so_pb_skill_weight_t w[3] = { SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT,
                                         SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT,
                                         SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT };
    static so_pb_skill_weight_t *wp[3] = { &w[0], &w[1], &w[2] };
    w[0].skill_id = "code.string_manipulation";
    w[0].weight = 0.625;
    w[1].skill_id = "code.algorithms";
    w[1].weight = 0.25;
    w[2].skill_id = "answer.formatting";
    w[2].weight = 0.125;
    m->request_id = "req-0001";
    m->handbook_version = "hb-2024-06-01.3";
    m->n_skills = N(wp);
    m->skills = wp;
    m->source = SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_LLM;
}

static void s_competence(so_pb_skill_competence_t *c, char *skill, double w, double comp,
                         double succ, double att, uint32_t backoff)
{
    c->skill_id = skill;
    c->weight = w;
    c->competence = comp;
    c->successes = succ;
    c->attempts = att;
    c->backoff_level = backoff;
}

static void s_routing_decision(so_pb_routing_decision_t *m)
{
    static so_pb_skill_competence_t c[3] = { SKILLORCHESTRA__V1__SKILL_COMPETENCE__INIT,
                                             SKILLORCHESTRA__V1__SKILL_COMPETENCE__INIT,
                                             SKILLORCHESTRA__V1__SKILL_COMPETENCE__INIT };
    static so_pb_skill_competence_t *c0[2] = { &c[0], &c[1] }, *c1[1] = { &c[2] };
    static so_pb_agent_score_t s[2] = { SKILLORCHESTRA__V1__AGENT_SCORE__INIT,
                                        SKILLORCHESTRA__V1__AGENT_SCORE__INIT };
    static so_pb_agent_score_t *sp[2] = { &s[0], &s[1] };
    static so_pb_skill_weight_t w[2] = { SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT,
                                         SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT };
    static so_pb_skill_weight_t *wp[2] = { &w[0], &w[1] };

    s_competence(&c[0], "code.string_manipulation", 0.625, 0.8, 12.5, 15, 0);
    s_competence(&c[1], "code.algorithms", 0.25, 0.5, 2, 4, 1);
    s_competence(&c[2], "code.string_manipulation", 0.625, 0.9, 9, 10, 0);
    s[0].agent_id = "qwen-coder-7b";
    s[0].score = 0.6875;
    s[0].competence = 0.75;
    s[0].cost_usd = 0.0015;
    s[0].cost_norm = 0.125;
    s[0].eligible = 1;
    s[0].n_skills = N(c0);
    s[0].skills = c0;
    s[1].agent_id = "llama-70b";
    s[1].score = -0.25;
    s[1].competence = 0.5;
    s[1].cost_usd = 0.03;
    s[1].cost_norm = 1.5;
    s[1].eligible = 0;
    s[1].excluded_reason = "over budget";
    s[1].n_skills = N(c1);
    s[1].skills = c1;
    w[0].skill_id = "code.string_manipulation";
    w[0].weight = 0.625;
    w[1].skill_id = "code.algorithms";
    w[1].weight = 0.25;

    m->request_id = "req-0001";
    m->episode_id = "ep-42";
    m->turn_index = 3;
    m->handbook_version = "hb-2024-06-01.3";
    m->chosen_agent = "qwen-coder-7b";
    m->n_scores = N(sp);
    m->scores = sp;
    m->reason = "thompson: sampled utility 0.6875";
    m->strategy = SKILLORCHESTRA__V1__ROUTING_DECISION__STRATEGY__STRATEGY_THOMPSON;
    m->n_top_skills = N(wp);
    m->top_skills = wp;
    m->lambda = 0.5;
    m->seed = UINT64_C(0x0123456789abcdef);
}

static void s_agent_call(so_pb_agent_call_t *m)
{
    s_messages();
    m->request_id = "req-0001";
    m->episode_id = "ep-42";
    m->turn_index = 3;
    m->agent_id = "qwen-coder-7b";
    m->model = "Qwen/Qwen2.5-Coder-7B-Instruct";
    m->n_messages = N(s_chat_p);
    m->messages = s_chat_p;
    m->max_completion_tokens = 1024;
    m->deadline_ms = 30000;
    m->attempt = 1;
}

static void s_agent_result(so_pb_agent_result_t *m)
{
    static so_pb_error_t e = SKILLORCHESTRA__V1__ERROR__INIT;
    e.code = SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_RATE_LIMITED;
    e.message = "429 from provider; retry after 2 s";
    m->request_id = "req-0001";
    m->agent_id = "qwen-coder-7b";
    m->text = "def rev(s):\n    return s[::-1]\n";
    m->prompt_tokens = 412;
    m->completion_tokens = 37;
    m->cost_usd = 0.00125;
    m->latency_s = 1.5;
    m->error = &e;
    m->replay_score_opt_case = SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE;
    m->replay_score = 0.75;
    m->worker_id = "worker-a/3";
}

static void s_episode_outcome(so_pb_episode_outcome_t *m)
{
    static so_pb_skill_weight_t w[3] = { SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT,
                                         SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT,
                                         SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT };
    static so_pb_skill_weight_t *d0[1] = { &w[0] }, *d1[2] = { &w[1], &w[2] };
    static so_pb_turn_record_t r[2] = { SKILLORCHESTRA__V1__TURN_RECORD__INIT,
                                        SKILLORCHESTRA__V1__TURN_RECORD__INIT };
    static so_pb_turn_record_t *rp[2] = { &r[0], &r[1] };
    w[0].skill_id = "search.web";
    w[0].weight = 1.0;
    w[1].skill_id = "code.string_manipulation";
    w[1].weight = 0.625;
    w[2].skill_id = "code.algorithms";
    w[2].weight = 0.25;
    r[0].turn_index = 0;
    r[0].mode = "search";
    r[0].agent_id = "search-agent";
    r[0].n_demand = N(d0);
    r[0].demand = d0;
    r[0].prompt_tokens = 200;
    r[0].completion_tokens = 50;
    r[0].cost_usd = 0.0005;
    r[0].latency_s = 0.75;
    r[0].score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
    r[0].score = 1.0;
    r[1].turn_index = 3;
    r[1].mode = "code";
    r[1].agent_id = "qwen-coder-7b";
    r[1].n_demand = N(d1);
    r[1].demand = d1;
    r[1].prompt_tokens = 412;
    r[1].completion_tokens = 37;
    r[1].cost_usd = 0.00125;
    r[1].latency_s = 1.5;
    m->episode_id = "ep-42";
    m->handbook_version = "hb-2024-06-01.3";
    m->result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE;
    m->score = 0.75;
    m->n_turns = N(rp);
    m->turns = rp;
    m->finished_unix_ms = UINT64_C(1717243200123);
}

static void s_turn_reply(so_pb_turn_reply_t *m)
{
    static so_pb_routing_decision_t d = SKILLORCHESTRA__V1__ROUTING_DECISION__INIT;
    static so_pb_agent_result_t r = SKILLORCHESTRA__V1__AGENT_RESULT__INIT;
    /* Present but all-default: encodes as an empty sub-message. */
    static so_pb_error_t e = SKILLORCHESTRA__V1__ERROR__INIT;
    s_routing_decision(&d);
    s_agent_result(&r);
    m->request_id = "req-0001";
    m->episode_id = "ep-42";
    m->text = "def rev(s):\n    return s[::-1]\n";
    m->decision = &d;
    m->result = &r;
    m->error = &e;
}

static int s_emit(const char *dir, const char *name, so_msg_type_t type, const void *msg,
                  int check)
{
    char path[4096], err[256];
    uint8_t hdr[SO_WIRE_HDR_LEN], *body;
    size_t len;
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    if (so_wire_encode(type, msg, hdr, &body, &len, err, sizeof err) != 0) {
        fprintf(stderr, "so-golden: %s: %s\n", name, err);
        return -1;
    }
    size_t total = SO_WIRE_HDR_LEN + len;
    uint8_t *buf = so_malloc(total);
    memcpy(buf, hdr, SO_WIRE_HDR_LEN);
    if (len)
        memcpy(buf + SO_WIRE_HDR_LEN, body, len);
    free(body);

    int rc = 0;
    if (check) {
        FILE *f = fopen(path, "rb");
        uint8_t *old = so_malloc(total + 1);
        size_t got = f ? fread(old, 1, total + 1, f) : 0;
        if (!f || got != total || memcmp(old, buf, total) != 0) {
            fprintf(stderr, "so-golden: %s differs from the canonical %s (%zu bytes)\n", path,
                    so_wire_type_name(type), total);
            rc = -1;
        }
        if (f)
            fclose(f);
        free(old);
    } else {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, total, f) != total || fclose(f) != 0) {
            fprintf(stderr, "so-golden: cannot write %s\n", path);
            rc = -1;
        } else {
            printf("%s: %s, %zu bytes\n", path, so_wire_type_name(type), total);
        }
    }
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    int check = 0;
    const char *dir = "tests/golden";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check") == 0)
            check = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: so-golden [--check] [DIR]\n");
            return 2;
        } else
            dir = argv[i];
    }

    so_pb_turn_request_t treq = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    so_pb_skill_demand_t dem = SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
    so_pb_routing_decision_t dec = SKILLORCHESTRA__V1__ROUTING_DECISION__INIT;
    so_pb_agent_call_t call = SKILLORCHESTRA__V1__AGENT_CALL__INIT;
    so_pb_agent_result_t res = SKILLORCHESTRA__V1__AGENT_RESULT__INIT;
    so_pb_episode_outcome_t out = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
    so_pb_turn_reply_t rep = SKILLORCHESTRA__V1__TURN_REPLY__INIT;
    so_pb_route_request_t rreq = SKILLORCHESTRA__V1__ROUTE_REQUEST__INIT;
    s_turn_request(&treq);
    s_skill_demand(&dem);
    s_routing_decision(&dec);
    s_agent_call(&call);
    s_agent_result(&res);
    s_episode_outcome(&out);
    s_turn_reply(&rep);
    /* RouteRequest: the same turn, marked final, with its demand. */
    so_pb_turn_request_t rturn = treq;
    rturn.final_turn = 1;
    rreq.turn = &rturn;
    rreq.demand = &dem;

    int rc = 0;
    rc |= s_emit(dir, "turn_request", SO_MSG_TURN_REQUEST, &treq, check);
    rc |= s_emit(dir, "skill_demand", SO_MSG_SKILL_DEMAND, &dem, check);
    rc |= s_emit(dir, "routing_decision", SO_MSG_ROUTING_DECISION, &dec, check);
    rc |= s_emit(dir, "agent_call", SO_MSG_AGENT_CALL, &call, check);
    rc |= s_emit(dir, "agent_result", SO_MSG_AGENT_RESULT, &res, check);
    rc |= s_emit(dir, "episode_outcome", SO_MSG_EPISODE_OUTCOME, &out, check);
    rc |= s_emit(dir, "turn_reply", SO_MSG_TURN_REPLY, &rep, check);
    rc |= s_emit(dir, "route_request", SO_MSG_ROUTE_REQUEST, &rreq, check);
    if (check && rc == 0)
        printf("so-golden: %s matches\n", dir);
    return rc ? 1 : 0;
}
