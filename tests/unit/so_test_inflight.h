/*
 * so_test_inflight — the fixture of test_so_inflight: so_inflight with
 * recording fakes for every op and a fake clock, and builders for the
 * decoded messages the gateway's loop would hand it.
 *
 * Header-only, for one test file; everything is static.
 */
#ifndef SO_TEST_INFLIGHT_H
#define SO_TEST_INFLIGHT_H

#include "so_test_util.h"
#include "so_episodes.h"
#include "so_inflight.h"
#include "base/so_svc.h"

#include <errno.h>

#define ID (SO_WIRE_MAX_ID + 1)

/* What the turns sent, the last of each kind. */
typedef struct {
    int64_t now;
    int n_infer, n_route, n_call, n_reply, n_partial, n_error, n_record;
    char infer_id[ID], infer_version[ID], infer_episode[ID];
    char route_id[ID], route_exclude[8][ID];
    size_t route_n_exclude;
    int route_source;
    char call_id[ID], call_agent[ID], call_worker[ID];
    unsigned call_attempt;
    char reply_id[ID], reply_text[256], reply_reason[1024], reply_decision_id[ID];
    char reply_result_id[ID];
    char error_id[ID], error_msg[1024];
    int error_code;
    char record_episode[ID], record_version[ID], record_agent[ID];
    int record_final;
    int fail_call_errno, fail_call_times; /* the next send_call(s) fail with this errno */
    int fail_reply_errno;                 /* every final reply fails with this errno */
} world_t;

static void s_copy(char *dst, const char *src)
{
    snprintf(dst, ID, "%s", src ? src : "");
}

static int fake_infer(void *arg, const so_pb_turn_request_t *t, char *err, size_t errlen)
{
    world_t *w = arg;
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, t, err, errlen), 0);
    w->n_infer++;
    s_copy(w->infer_id, t->request_id);
    s_copy(w->infer_version, t->handbook_version);
    s_copy(w->infer_episode, t->episode_id);
    return 0;
}

static int fake_route(void *arg, const so_pb_route_request_t *rr, char *err, size_t errlen)
{
    world_t *w = arg;
    assert_int_equal(so_wire_validate(SO_MSG_ROUTE_REQUEST, rr, err, errlen), 0);
    w->n_route++;
    s_copy(w->route_id, rr->turn->request_id);
    w->route_n_exclude = rr->turn->n_exclude_agents;
    for (size_t i = 0; i < rr->turn->n_exclude_agents && i < 8; i++)
        s_copy(w->route_exclude[i], rr->turn->exclude_agents[i]);
    w->route_source = (int) rr->demand->source;
    return 0;
}

static int fake_call(void *arg, const so_broker_worker_t *wk, const so_pb_agent_call_t *c,
                     char *err, size_t errlen)
{
    world_t *w = arg;
    assert_int_equal(so_wire_validate(SO_MSG_AGENT_CALL, c, err, errlen), 0);
    if (w->fail_call_times > 0) {
        w->fail_call_times--;
        snprintf(err, errlen, "send failed");
        errno = w->fail_call_errno;
        return -1;
    }
    w->n_call++;
    s_copy(w->call_id, c->request_id);
    s_copy(w->call_agent, c->agent_id);
    s_copy(w->call_worker, wk->name);
    w->call_attempt = c->attempt;
    return 0;
}

static int fake_reply(void *arg, const so_wire_envelope_t *env, const so_pb_turn_reply_t *rep,
                      char *err, size_t errlen)
{
    world_t *w = arg;
    assert_int_equal(env->n, 1);
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REPLY, rep, err, errlen), 0);
    if (!rep->partial && w->fail_reply_errno) {
        snprintf(err, errlen, "reply refused");
        errno = w->fail_reply_errno;
        return -1;
    }
    if (rep->partial)
        w->n_partial++;
    else
        w->n_reply++;
    s_copy(w->reply_id, rep->request_id);
    snprintf(w->reply_text, sizeof w->reply_text, "%s", rep->text);
    snprintf(w->reply_reason, sizeof w->reply_reason, "%s", rep->decision->reason);
    s_copy(w->reply_decision_id, rep->decision->request_id);
    s_copy(w->reply_result_id, rep->result->request_id);
    return 0;
}

static int fake_error(void *arg, const so_wire_envelope_t *env, const char *request_id,
                      const char *episode_id, so_pb_error_code_t code, const char *msg, char *err,
                      size_t errlen)
{
    world_t *w = arg;
    (void) env, (void) episode_id, (void) err, (void) errlen;
    w->n_error++;
    s_copy(w->error_id, request_id);
    w->error_code = (int) code;
    snprintf(w->error_msg, sizeof w->error_msg, "%s", msg);
    return 0;
}

static void fake_record(void *arg, const char *episode_id, const char *version,
                        const so_pb_turn_record_t *tr, int final)
{
    world_t *w = arg;
    w->n_record++;
    s_copy(w->record_episode, episode_id);
    s_copy(w->record_version, version);
    s_copy(w->record_agent, tr->agent_id);
    w->record_final = final;
}

static int64_t fake_now(void *arg)
{
    return ((world_t *) arg)->now;
}

static const so_inflight_ops_t s_ops = {
    .send_infer = fake_infer,
    .send_route = fake_route,
    .send_call = fake_call,
    .send_reply = fake_reply,
    .send_error = fake_error,
    .record = fake_record,
    .now = fake_now,
};

static so_inflight_opts_t s_opts(void)
{
    so_inflight_opts_t o = {
        .request_timeout_ms = 10000,
        .stage_timeout_ms = 100,
        .call_timeout_ms = 1000,
        .heartbeat_ms = 100,
        .liveness = 3,
        .episode_ttl_s = 60,
        .max_inflight = 10,
        .max_attempts = 3,
        .max_fallbacks = 2,
    };
    return o;
}

typedef struct {
    world_t w;
    so_inflight_t *f;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    so_inflight_opts_t o = s_opts();
    fx->w.now = 1000;
    fx->f = so_inflight_new(&o, &s_ops, &fx->w);
    so_inflight_set_version(fx->f, "v1");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    so_inflight_destroy(&fx->f);
    assert_null(fx->f);
    free(fx);
    return 0;
}

/* ---- Building decoded messages ------------------------------------------ */

/* Packs and unpacks msg: the copy is what so_wire_recv would hand over. */
static void *s_decoded(so_msg_type_t type, const void *msg)
{
    uint8_t hdr[SO_WIRE_HDR_LEN], *body = NULL;
    size_t len = 0;
    char err[512];
    void *out = NULL;
    if (so_wire_encode(type, msg, hdr, &body, &len, err, sizeof err) != 0 ||
        so_wire_decode(hdr, sizeof hdr, body, len, type, &out, err, sizeof err) != 0)
        fail_msg("%s", err);
    free(body);
    return out;
}

typedef struct {
    const char *episode, *version, *exclude;
    int final_turn, stream;
} turn_opts_t;

static void s_admit_ex(fx_t *fx, const char *client_id, turn_opts_t o)
{
    so_pb_chat_message_t m = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT, *mp = &m;
    m.role = "user";
    m.content = "hi";
    so_pb_turn_request_t t = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    char *ex[1] = { (char *) o.exclude };
    t.request_id = (char *) client_id;
    t.episode_id = (char *) (o.episode ? o.episode : "");
    t.handbook_version = (char *) (o.version ? o.version : "");
    t.mode = "m";
    t.messages = &mp;
    t.n_messages = 1;
    t.exclude_agents = ex;
    t.n_exclude_agents = o.exclude ? 1 : 0;
    t.final_turn = o.final_turn;
    t.stream = o.stream;
    so_pb_turn_request_t *turn = s_decoded(SO_MSG_TURN_REQUEST, &t);
    so_wire_envelope_t env;
    so_wire_envelope_reset(&env);
    so_wire_envelope_push(&env, "client", 6);
    so_inflight_admit(fx->f, &env, &turn);
    assert_null(turn);
}

static void s_admit(fx_t *fx, const char *client_id)
{
    s_admit_ex(fx, client_id, (turn_opts_t){ .episode = "ep1" });
}

static void s_demand(fx_t *fx, const char *id)
{
    so_pb_skill_weight_t sw = SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT, *swp = &sw;
    sw.skill_id = "s1";
    sw.weight = 1;
    so_pb_skill_demand_t d = SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
    d.request_id = (char *) id;
    d.handbook_version = "v1";
    d.skills = &swp;
    d.n_skills = 1;
    d.source = SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_EMBEDDED;
    so_pb_skill_demand_t *dp = s_decoded(SO_MSG_SKILL_DEMAND, &d);
    so_inflight_on_demand(fx->f, &dp);
    assert_null(dp);
}

static void s_decide(fx_t *fx, const char *id, const char *agent)
{
    so_pb_routing_decision_t d = SKILLORCHESTRA__V1__ROUTING_DECISION__INIT;
    d.request_id = (char *) id;
    d.episode_id = "ep1";
    d.handbook_version = "v1";
    d.chosen_agent = (char *) agent;
    d.reason = "best";
    d.strategy = SKILLORCHESTRA__V1__ROUTING_DECISION__STRATEGY__STRATEGY_GREEDY;
    so_pb_routing_decision_t *dp = s_decoded(SO_MSG_ROUTING_DECISION, &d);
    so_inflight_on_decision(fx->f, &dp);
    assert_null(dp);
}

/* A result from worker name (0 = success; partial: a delta). */
static void s_result(fx_t *fx, const char *worker, const char *id, const char *agent,
                     so_pb_error_code_t code, int partial)
{
    so_pb_error_t e = SKILLORCHESTRA__V1__ERROR__INIT;
    e.code = code;
    e.message = "boom";
    so_pb_agent_result_t r = SKILLORCHESTRA__V1__AGENT_RESULT__INIT;
    r.request_id = (char *) id;
    r.agent_id = (char *) agent;
    r.text = partial ? "del" : "answer";
    r.partial = partial;
    r.error = code == SO_ERR(NONE) ? NULL : &e;
    so_broker_worker_t *w = so_broker_find(so_inflight_broker(fx->f), worker, strlen(worker));
    assert_non_null(w);
    so_inflight_on_result(fx->f, w, &r);
    assert_string_equal(r.request_id, id); /* borrowed: given back as it was */
}

static so_broker_worker_t *s_worker(fx_t *fx, const char *name, unsigned cap, const char *agents)
{
    return so_inflight_worker_ready(fx->f, name, strlen(name), name, cap, agents, fx->w.now);
}

static void s_tick(fx_t *fx, int64_t advance_ms)
{
    fx->w.now += advance_ms;
    so_inflight_tick(fx->f, fx->w.now);
}

/* Admits c1, answers its demand and decides for agent: the call is out. */
static void s_to_call(fx_t *fx, const char *agent)
{
    s_admit(fx, "c1");
    s_demand(fx, fx->w.infer_id);
    s_decide(fx, fx->w.infer_id, agent);
    assert_int_equal(so_inflight_stage(fx->f, fx->w.infer_id), SO_INFLIGHT_CALL);
}

static so_inflight_counters_t *C(fx_t *fx)
{
    return so_inflight_counters(fx->f);
}

#endif
