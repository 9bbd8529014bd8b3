/*
 * so-gateway — the front door.  One loop, four sockets and a recorder
 * thread (docs/SERVICES.md, "Gateway"):
 *
 *   clients  ROUTER  TurnRequest → TurnReply
 *   workers  ROUTER  AgentCall → AgentResult, READY/HEARTBEAT/DISCONNECT
 *   infer    DEALER  TurnRequest → SkillDemand        (skill-inference)
 *   route    DEALER  RouteRequest → RoutingDecision   (router)
 *
 * A turn moves INFER → ROUTE → CALL (WAIT while no worker has a free slot)
 * and always ends in exactly one reply to its client: the answer, or an
 * error when a stage fails or the request's deadline passes.  Backend
 * messages carry the gateway's own request id, so clients may reuse theirs.
 *
 * Resilience: skill-inference silent → retried, then a uniform demand (the
 * router treats it as "any skill of the mode"); router silent → retried,
 * then UNAVAILABLE; a worker that dies or stalls → its calls go to another
 * worker (up to max_attempts); an agent that fails → routed again without it
 * (up to max_fallbacks), the reason kept in the decision.
 *
 * Settings: config/gateway.conf.
 */
#include "so_broker.h"
#include "base/so_cli.h"
#include "so_recorder.h"
#include "wire/so_sock.h"
#include "store/so_store.h"
#include "base/so_svc.h"
#include "base/so_text.h"
#include "wire/so_wire.h"

#include <czmq.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Skillorchestra__V1__TurnRequest s_turn_t;
typedef Skillorchestra__V1__SkillDemand s_demand_t;
typedef Skillorchestra__V1__RoutingDecision s_decision_t;
typedef Skillorchestra__V1__AgentResult s_result_t;
typedef Skillorchestra__V1__TurnReply s_reply_t;
typedef Skillorchestra__V1__ErrorCode s_code_t;

#define S_ERR(x) SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_##x
#define S_LAT_RING 2048

static const char *s_usage =
    "Keys: client.endpoint workers.endpoint infer.endpoint router.endpoint\n"
    "      redis.url redis.prefix request_timeout_ms stage_timeout_ms call_timeout_ms\n"
    "      max_inflight max_attempts max_fallbacks heartbeat_ms liveness episode_ttl_s\n"
    "      pending_ttl_s drain_ms stats_ms log.level zmq.*\n";

typedef enum { S_INFER, S_ROUTE, S_WAIT, S_CALL } s_stage_t;

static const char *s_stage_name[] = { "infer", "route", "wait", "call" };

typedef struct {
    char id[SO_WIRE_MAX_ID + 1];          /* ours, on every backend message */
    char client_id[SO_WIRE_MAX_ID + 1];   /* the client's request_id */
    char episode[SO_WIRE_MAX_ID + 1];
    char version[SO_WIRE_MAX_ID + 1];
    so_wire_envelope_t env;               /* the client's envelope */
    s_turn_t *turn;                       /* decoded client request */
    s_demand_t *demand;                   /* decoded, or fallback (own) */
    int demand_owned;
    s_decision_t *decision;
    s_stage_t stage;
    int64_t started, deadline, stage_deadline;
    int stage_tries, attempts, fallbacks;
    size_t partials;                      /* deltas forwarded to the client */
    char **exclude;                       /* the client's + failed agents */
    size_t n_exclude;
    char note[512];                       /* why an agent was skipped */
} s_req_t;

typedef struct {
    char version[SO_WIRE_MAX_ID + 1];
    int64_t expires;
} s_episode_t;

typedef struct {
    /* settings */
    int request_timeout_ms, stage_timeout_ms, call_timeout_ms, heartbeat_ms, liveness;
    int drain_ms, stats_ms, episode_ttl_s;
    long max_inflight, max_attempts, max_fallbacks;
    /* sockets */
    void *ctx, *clients, *workers, *infer, *route;
    so_broker_t *broker;
    so_recorder_t *recorder;
    char current[SO_WIRE_MAX_ID + 1];     /* handbook version for new episodes */
    zhashx_t *reqs;                       /* id → s_req_t* */
    zlistx_t *waiting;                    /* ids waiting for a worker, FIFO */
    zhashx_t *episodes;                   /* episode id → s_episode_t* */
    int draining;
    /* counters */
    uint64_t received, replied, errors, rejected, timeouts, redispatched, fallbacks;
    uint64_t uniform_fallbacks, stray, send_failed, partials;
    double lat_ms[S_LAT_RING];
    size_t n_lat;
    int64_t next_stats, next_sweep;
} s_gw_t;

/* ---- Requests ---------------------------------------------------------- */

static void s_req_free(s_req_t **p)
{
    if (!p || !*p)
        return;
    s_req_t *r = *p;
    so_wire_free(SO_MSG_TURN_REQUEST, r->turn);
    if (r->demand_owned)
        free(r->demand);
    else
        so_wire_free(SO_MSG_SKILL_DEMAND, r->demand);
    so_wire_free(SO_MSG_ROUTING_DECISION, r->decision);
    for (size_t i = 0; i < r->n_exclude; i++)
        free(r->exclude[i]);
    free(r->exclude);
    free(r);
    *p = NULL;
}

static int s_excluded(const s_req_t *r, const char *agent)
{
    for (size_t i = 0; i < r->n_exclude; i++)
        if (strcmp(r->exclude[i], agent) == 0)
            return 1;
    return 0;
}

static void s_exclude(s_req_t *r, const char *agent)
{
    if (s_excluded(r, agent) || r->n_exclude >= SO_WIRE_MAX_AGENTS)
        return;
    char **v = realloc(r->exclude, (r->n_exclude + 1) * sizeof *v);
    char *a = strdup(agent);
    if (!v || !a) {
        free(a);
        if (v)
            r->exclude = v;
        return;
    }
    r->exclude = v;
    r->exclude[r->n_exclude++] = a;
}

/* The turn as the backends see it: our id, the episode, the pinned version
 * and the exclusions (a shallow copy: it borrows everything). */
static s_turn_t s_forward(const s_req_t *r)
{
    s_turn_t t = *r->turn;
    t.request_id = (char *) r->id;
    t.episode_id = (char *) r->episode;
    t.handbook_version = (char *) r->version;
    t.exclude_agents = r->exclude;
    t.n_exclude_agents = r->n_exclude;
    return t;
}

static void s_latency(s_gw_t *g, const s_req_t *r)
{
    g->lat_ms[g->n_lat++ % S_LAT_RING] = (double) (so_now_ms() - r->started);
}

/* Ends a request with an error reply; frees it. */
static void s_fail(s_gw_t *g, s_req_t *r, s_code_t code, const char *msg)
{
    char err[256];
    if (so_sock_send_error(g->clients, &r->env, r->client_id, r->episode, code, msg, err,
                           sizeof err) != 0)
        g->send_failed++;
    so_info("turn_failed", "request_id=%s episode_id=%s stage=%s code=%d error=\"%s\"", r->id,
            r->episode, s_stage_name[r->stage], (int) code, msg);
    g->errors++;
    s_latency(g, r);
    zhashx_delete(g->reqs, r->id);      /* frees r */
}

/* ---- Stages ------------------------------------------------------------ */

static void s_send_infer(s_gw_t *g, s_req_t *r)
{
    char err[512];
    s_turn_t t = s_forward(r);
    r->stage = S_INFER;
    r->stage_deadline = so_now_ms() + g->stage_timeout_ms;
    r->stage_tries++;
    if (so_wire_send(g->infer, NULL, SO_MSG_TURN_REQUEST, &t, ZMQ_DONTWAIT, err, sizeof err) != 0)
        so_warn("infer_send_failed", "request_id=%s error=\"%s\"", r->id, err);
    /* A send that failed is retried by the stage timeout. */
}

static void s_send_route(s_gw_t *g, s_req_t *r)
{
    char err[512];
    s_turn_t t = s_forward(r);
    Skillorchestra__V1__RouteRequest rr = SKILLORCHESTRA__V1__ROUTE_REQUEST__INIT;
    rr.turn = &t;
    rr.demand = r->demand;
    if (r->stage != S_ROUTE)
        r->stage_tries = 0;
    r->stage = S_ROUTE;
    r->stage_deadline = so_now_ms() + g->stage_timeout_ms;
    r->stage_tries++;
    if (so_wire_send(g->route, NULL, SO_MSG_ROUTE_REQUEST, &rr, ZMQ_DONTWAIT, err, sizeof err) != 0)
        so_warn("route_send_failed", "request_id=%s error=\"%s\"", r->id, err);
}

/* A uniform demand: the router spreads it over the mode's skills. */
static void s_uniform_demand(s_gw_t *g, s_req_t *r)
{
    s_demand_t *d = calloc(1, sizeof *d);
    if (!d) {
        s_fail(g, r, S_ERR(INTERNAL), "out of memory");
        return;
    }
    skillorchestra__v1__skill_demand__init(d);
    d->request_id = r->id;
    d->handbook_version = r->version;
    d->source = SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_UNIFORM_FALLBACK;
    r->demand = d;
    r->demand_owned = 1;
    g->uniform_fallbacks++;
    s_send_route(g, r);
}

/* The chosen agent cannot serve this turn: route it again without the
 * agent (up to max_fallbacks), else end it with code.  why says what went
 * wrong; it goes into the decision's reason. */
static void s_fallback(s_gw_t *g, s_req_t *r, const char *agent, s_code_t code, const char *why)
{
    /* After deltas went out, another agent's answer would not continue
     * them: the turn fails instead (docs/PROTOCOL.md, "Streaming"). */
    if (r->fallbacks >= g->max_fallbacks || r->partials > 0) {
        char msg[SO_WIRE_MAX_NOTE];
        snprintf(msg, sizeof msg, "agent %s: %s", agent, why);
        s_fail(g, r, code, msg);
        return;
    }
    r->fallbacks++;
    g->fallbacks++;
    size_t n = strlen(r->note);
    so_text_fmt_utf8(r->note + n, sizeof r->note - n, "%s%s failed (%s)", n ? ", " : "", agent,
                     why);
    s_exclude(r, agent);
    so_info("fallback", "request_id=%s agent=%s code=%d error=\"%s\"", r->id, agent, (int) code,
            why);
    so_wire_free(SO_MSG_ROUTING_DECISION, r->decision);
    r->decision = NULL;
    s_send_route(g, r);
}

/* Sends the call to the least recently used worker with a free slot that
 * serves the chosen agent, or queues it; with no worker serving the agent at
 * all, falls back to another agent.  Returns 0, or -1 when r was ended. */
static int s_dispatch(s_gw_t *g, s_req_t *r);

static void s_orphan(void *arg, const char *request_id)
{
    zlistx_t *orphans = arg;
    zlistx_add_end(orphans, strdup(request_id));
}

static void s_redispatch_orphans(s_gw_t *g, zlistx_t *orphans)
{
    char *id;
    while ((id = zlistx_detach(orphans, NULL))) {
        s_req_t *r = zhashx_lookup(g->reqs, id);
        free(id);
        if (!r || r->stage != S_CALL)
            continue;
        g->redispatched++;
        if (r->partials > 0) {
            s_fail(g, r, S_ERR(UNAVAILABLE), "the worker streaming this call stopped answering");
            continue;
        }
        if (r->attempts >= g->max_attempts) {
            s_fail(g, r, S_ERR(UNAVAILABLE), "the workers holding this call stopped answering");
            continue;
        }
        so_info("redispatch", "request_id=%s attempt=%d", r->id, r->attempts);
        s_dispatch(g, r);
    }
}

static int s_dispatch(s_gw_t *g, s_req_t *r)
{
    const char *agent = r->decision->chosen_agent;
    so_broker_worker_t *w = so_broker_pick_for(g->broker, agent);
    if (!w && so_broker_active(g->broker) > 0 && !so_broker_has_agent(g->broker, agent)) {
        /* Workers are up, but none serves this agent. */
        s_fallback(g, r, agent, S_ERR(UNAVAILABLE), "no registered worker serves it");
        return -1;
    }
    if (!w) {
        if (r->stage != S_WAIT) {
            r->stage = S_WAIT;
            zlistx_add_end(g->waiting, strdup(r->id));
        }
        return 0;
    }
    Skillorchestra__V1__AgentCall call = SKILLORCHESTRA__V1__AGENT_CALL__INIT;
    call.request_id = r->id;
    call.episode_id = r->episode;
    call.turn_index = r->turn->turn_index;
    call.agent_id = r->decision->chosen_agent;
    call.messages = r->turn->messages;
    call.n_messages = r->turn->n_messages;
    call.max_completion_tokens = r->turn->max_completion_tokens;
    call.deadline_ms = (uint32_t) g->call_timeout_ms;
    call.attempt = (uint32_t) r->attempts;
    call.stream = r->turn->stream;
    so_wire_envelope_t env;
    so_wire_envelope_reset(&env);
    so_wire_envelope_push(&env, w->rid, w->rid_len);
    char err[512];
    int64_t now = so_now_ms();
    r->stage = S_CALL;
    r->attempts++;
    if (so_wire_send(g->workers, &env, SO_MSG_AGENT_CALL, &call, ZMQ_DONTWAIT, err, sizeof err)
        != 0) {
        if (errno == EINVAL) {
            s_fail(g, r, S_ERR(INTERNAL), err);
            return -1;
        }
        /* The worker is gone (EHOSTUNREACH) or stuck: drop it, try again. */
        so_warn("worker_send_failed", "worker=%s error=\"%s\"", w->name, err);
        zlistx_t *orphans = zlistx_new();
        so_broker_remove(g->broker, w, s_orphan, orphans);
        r->attempts--;
        r->stage = S_ROUTE;         /* not S_WAIT: let s_dispatch queue it */
        int rc = s_dispatch(g, r);
        s_redispatch_orphans(g, orphans);     /* what the dropped worker held */
        zlistx_destroy(&orphans);
        return rc;
    }
    /* The worker has the call's deadline plus two heartbeats of slack
     * before the broker presumes it stuck and re-dispatches. */
    so_broker_assign(g->broker, w, r->id, now + g->call_timeout_ms + 2 * g->heartbeat_ms);
    return 0;
}

/* Dispatches waiting calls, oldest first, each as soon as a worker that
 * serves its agent has a free slot. */
static void s_dispatch_waiting(s_gw_t *g)
{
    char *id = zlistx_first(g->waiting);
    while (id && so_broker_free_slots(g->broker) > 0) {
        s_req_t *r = zhashx_lookup(g->reqs, id);
        if (r && r->stage == S_WAIT && so_broker_active(g->broker) > 0 &&
            (so_broker_pick_for(g->broker, r->decision->chosen_agent) ||
             !so_broker_has_agent(g->broker, r->decision->chosen_agent))) {
            zlistx_delete(g->waiting, zlistx_cursor(g->waiting));
            r->stage = S_ROUTE;             /* leave S_WAIT so s_dispatch may queue it again */
            s_dispatch(g, r);
            id = zlistx_first(g->waiting);  /* dispatching may have changed the list */
            continue;
        }
        if (!r || r->stage != S_WAIT) {
            zlistx_delete(g->waiting, zlistx_cursor(g->waiting));
            id = zlistx_first(g->waiting);
            continue;
        }
        id = zlistx_next(g->waiting);
    }
}

/* ---- Replies ----------------------------------------------------------- */

static void s_record(s_gw_t *g, const s_req_t *r, const s_result_t *res)
{
    Skillorchestra__V1__TurnRecord tr = SKILLORCHESTRA__V1__TURN_RECORD__INIT;
    tr.turn_index = r->turn->turn_index;
    tr.mode = r->turn->mode;
    tr.agent_id = res->agent_id;
    tr.demand = r->demand->skills;
    tr.n_demand = r->demand->n_skills;
    tr.prompt_tokens = res->prompt_tokens;
    tr.completion_tokens = res->completion_tokens;
    tr.cost_usd = res->cost_usd;
    tr.latency_s = res->latency_s;
    if (res->replay_score_opt_case == SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE) {
        tr.score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
        tr.score = res->replay_score;
    }
    so_recorder_turn(g->recorder, r->episode, r->version, &tr, r->turn->final_turn);
}

static void s_answer(s_gw_t *g, s_req_t *r, s_result_t *res)
{
    char err[512];
    if (r->note[0]) {
        /* Say in the decision why earlier agents were skipped. */
        char reason[SO_WIRE_MAX_NOTE];
        so_text_fmt_utf8(reason, sizeof reason, "%s; fallback: %s", r->decision->reason,
                         r->note);
        /* protobuf-c leaves an absent string pointing at a shared static. */
        if (r->decision->reason != protobuf_c_empty_string)
            free(r->decision->reason);
        r->decision->reason = strdup(reason);
    }
    s_reply_t rep = SKILLORCHESTRA__V1__TURN_REPLY__INIT;
    rep.request_id = r->client_id;
    rep.episode_id = r->episode;
    rep.text = res->text;
    rep.decision = r->decision;
    char *rid = res->request_id;
    res->request_id = r->client_id;
    rep.result = res;
    if (so_wire_send(g->clients, &r->env, SO_MSG_TURN_REPLY, &rep, ZMQ_DONTWAIT, err, sizeof err)
        != 0) {
        g->send_failed++;
        so_warn("reply_failed", "request_id=%s error=\"%s\"", r->id, err);
        if (errno == EINVAL)    /* the reply did not validate: the client still gets one */
            so_sock_send_error(g->clients, &r->env, r->client_id, r->episode, S_ERR(INTERNAL),
                               err, err, sizeof err);
    }
    res->request_id = rid;
    s_record(g, r, res);
    if (r->turn->final_turn)
        zhashx_delete(g->episodes, r->episode);
    g->replied++;
    s_latency(g, r);
    zhashx_delete(g->reqs, r->id);
}

static int s_retryable(s_code_t c)
{
    return c == S_ERR(TIMEOUT) || c == S_ERR(UPSTREAM) || c == S_ERR(RATE_LIMITED) ||
           c == S_ERR(UNAVAILABLE) || c == S_ERR(CONTEXT_TOO_LONG) || c == S_ERR(INTERNAL);
}

/* A delta from the worker holding the call: forwarded to the client as a
 * partial TurnReply at once; no completion, no recording. */
static void s_on_partial(s_gw_t *g, so_broker_worker_t *w, s_result_t *res)
{
    s_req_t *r = zhashx_lookup(g->reqs, res->request_id);
    if (!r || r->stage != S_CALL || !so_broker_holds(w, res->request_id)) {
        g->stray++;
        return;
    }
    s_reply_t rep = SKILLORCHESTRA__V1__TURN_REPLY__INIT;
    rep.request_id = r->client_id;
    rep.episode_id = r->episode;
    rep.text = res->text;
    rep.decision = r->decision;
    rep.partial = 1;
    char *rid = res->request_id;
    res->request_id = r->client_id;
    rep.result = res;
    char err[512];
    if (so_wire_send(g->clients, &r->env, SO_MSG_TURN_REPLY, &rep, ZMQ_DONTWAIT, err, sizeof err)
        != 0) {
        g->send_failed++;
        so_debug("partial_reply_failed", "request_id=%s error=\"%s\"", r->id, err);
    } else {
        r->partials++;
        g->partials++;
    }
    res->request_id = rid;
}

static void s_on_result(s_gw_t *g, so_broker_worker_t *w, s_result_t *res)
{
    if (res->partial) {
        s_on_partial(g, w, res);
        return;
    }
    int held = so_broker_complete(g->broker, w, res->request_id);
    s_req_t *r = zhashx_lookup(g->reqs, res->request_id);
    if (!held || !r || r->stage != S_CALL) {
        g->stray++;        /* late (re-dispatched or timed out) or unknown */
        return;
    }
    const Skillorchestra__V1__Error *e = res->error;
    if (!e || e->code == S_ERR(NONE)) {
        s_answer(g, r, res);
        return;
    }
    if (s_retryable(e->code)) {
        s_fallback(g, r, res->agent_id, e->code, e->message ? e->message : "error");
        return;
    }
    char msg[SO_WIRE_MAX_NOTE];
    snprintf(msg, sizeof msg, "agent %s: %s", res->agent_id, e->message ? e->message : "error");
    s_fail(g, r, e->code, msg);
}

/* ---- Socket handlers --------------------------------------------------- */

static void s_on_client(s_gw_t *g)
{
    so_wire_envelope_t env;
    so_wire_envelope_reset(&env);
    void *msg = NULL;
    char err[512];
    if (so_wire_recv(g->clients, &env, SO_MSG_TURN_REQUEST, NULL, &msg, ZMQ_DONTWAIT, err,
                     sizeof err) != 0) {
        if (errno != EPROTO)
            return;
        g->rejected++;
        so_warn("request_rejected", "error=\"%s\" rejected_total=%llu", err,
                (unsigned long long) g->rejected);
        if (env.n > 0)
            so_sock_send_error(g->clients, &env, NULL, NULL, S_ERR(INVALID_REQUEST), err, err,
                               sizeof err);
        return;
    }
    s_turn_t *t = msg;
    g->received++;
    const char *why = NULL;
    s_code_t code = S_ERR(UNAVAILABLE);
    if (g->draining)
        why = "the gateway is shutting down";
    else if ((long) zhashx_size(g->reqs) >= g->max_inflight)
        why = "overloaded: too many requests in flight";
    if (why) {
        so_sock_send_error(g->clients, &env, t->request_id, t->episode_id, code, why, err,
                           sizeof err);
        g->errors++;
        so_wire_free(SO_MSG_TURN_REQUEST, t);
        return;
    }
    s_req_t *r = calloc(1, sizeof *r);
    if (!r) {
        so_wire_free(SO_MSG_TURN_REQUEST, t);
        return;
    }
    r->turn = t;
    r->env = env;
    r->started = so_now_ms();
    r->deadline = r->started + g->request_timeout_ms;
    so_new_id("rq", r->id, sizeof r->id);
    snprintf(r->client_id, sizeof r->client_id, "%s", t->request_id);
    if (t->episode_id && *t->episode_id)
        snprintf(r->episode, sizeof r->episode, "%s", t->episode_id);
    else
        so_new_id("ep", r->episode, sizeof r->episode);
    for (size_t i = 0; i < t->n_exclude_agents; i++)
        s_exclude(r, t->exclude_agents[i]);
    /* The handbook version: the client's pin, else the episode's, else the
     * current one (and the episode keeps it for its later turns). */
    s_episode_t *ep = zhashx_lookup(g->episodes, r->episode);
    if (t->handbook_version && *t->handbook_version)
        snprintf(r->version, sizeof r->version, "%s", t->handbook_version);
    else if (ep)
        snprintf(r->version, sizeof r->version, "%s", ep->version);
    else
        snprintf(r->version, sizeof r->version, "%s", g->current);
    zhashx_insert(g->reqs, r->id, r);
    if (!r->version[0]) {
        s_fail(g, r, S_ERR(UNKNOWN_HANDBOOK), "no handbook has been published yet");
        return;
    }
    if (!t->final_turn) {
        if (!ep && zhashx_size(g->episodes) < 1000000) {
            ep = calloc(1, sizeof *ep);
            if (ep)
                zhashx_insert(g->episodes, r->episode, ep);
        }
        if (ep) {
            snprintf(ep->version, sizeof ep->version, "%s", r->version);
            ep->expires = r->started + (int64_t) g->episode_ttl_s * 1000;
        }
    }
    s_send_infer(g, r);
}

static void s_on_infer(s_gw_t *g)
{
    so_msg_type_t type;
    void *msg = NULL;
    char err[512];
    if (so_wire_recv(g->infer, NULL, SO_MSG_ANY, &type, &msg, ZMQ_DONTWAIT, err, sizeof err) != 0) {
        if (errno == EPROTO) {
            g->rejected++;
            so_warn("infer_reply_rejected", "error=\"%s\"", err);
        }
        return;
    }
    if (type == SO_MSG_SKILL_DEMAND) {
        s_demand_t *d = msg;
        s_req_t *r = zhashx_lookup(g->reqs, d->request_id);
        if (!r || r->stage != S_INFER) {
            g->stray++;
            so_wire_free(type, msg);
            return;
        }
        r->demand = d;
        snprintf(r->version, sizeof r->version, "%s", d->handbook_version);
        s_send_route(g, r);
        return;
    }
    if (type == SO_MSG_TURN_REPLY) {
        s_reply_t *rep = msg;
        s_req_t *r = zhashx_lookup(g->reqs, rep->request_id);
        if (r && r->stage == S_INFER)
            s_fail(g, r, rep->error ? rep->error->code : S_ERR(INTERNAL),
                   rep->error && rep->error->message ? rep->error->message : "skill inference failed");
        else
            g->stray++;
    } else {
        g->rejected++;
        so_warn("infer_reply_rejected", "error=\"unexpected %s\"", so_wire_type_name(type));
    }
    so_wire_free(type, msg);
}

static void s_on_route(s_gw_t *g)
{
    so_msg_type_t type;
    void *msg = NULL;
    char err[512];
    if (so_wire_recv(g->route, NULL, SO_MSG_ANY, &type, &msg, ZMQ_DONTWAIT, err, sizeof err) != 0) {
        if (errno == EPROTO) {
            g->rejected++;
            so_warn("route_reply_rejected", "error=\"%s\"", err);
        }
        return;
    }
    if (type == SO_MSG_ROUTING_DECISION) {
        s_decision_t *d = msg;
        s_req_t *r = zhashx_lookup(g->reqs, d->request_id);
        if (!r || r->stage != S_ROUTE || s_excluded(r, d->chosen_agent)) {
            /* Late, or a late duplicate of a decision made before a fallback. */
            g->stray++;
            so_wire_free(type, msg);
            return;
        }
        so_wire_free(SO_MSG_ROUTING_DECISION, r->decision);
        r->decision = d;
        /* The client sees its own ids in the decision. */
        free(d->request_id);
        d->request_id = strdup(r->client_id);
        s_dispatch(g, r);
        return;
    }
    if (type == SO_MSG_TURN_REPLY) {
        s_reply_t *rep = msg;
        s_req_t *r = zhashx_lookup(g->reqs, rep->request_id);
        if (r && r->stage == S_ROUTE) {
            char m[SO_WIRE_MAX_NOTE];
            so_text_fmt_utf8(m, sizeof m, "%s%s%s",
                     rep->error && rep->error->message ? rep->error->message : "routing failed",
                     r->note[0] ? "; earlier: " : "", r->note);
            s_fail(g, r, rep->error ? rep->error->code : S_ERR(INTERNAL), m);
        } else {
            g->stray++;
        }
    } else {
        g->rejected++;
        so_warn("route_reply_rejected", "error=\"unexpected %s\"", so_wire_type_name(type));
    }
    so_wire_free(type, msg);
}

static void s_ctl(s_gw_t *g, const so_wire_envelope_t *env, int cmd)
{
    so_ctl_send(g->workers, env, cmd, 0, NULL);
}

static void s_on_worker(s_gw_t *g)
{
    so_wire_envelope_t env;
    so_wire_envelope_reset(&env);
    so_ctl_t ctl;
    so_msg_type_t type;
    void *msg = NULL;
    char err[512];
    int rc = so_sock_recv_mixed(g->workers, 1, &env, &ctl, &type, &msg, err, sizeof err);
    if (rc < 0) {
        if (errno == EPROTO) {
            g->rejected++;
            so_warn("worker_message_rejected", "error=\"%s\"", err);
        }
        return;
    }
    int64_t now = so_now_ms();
    so_broker_worker_t *w = so_broker_find(g->broker, env.frame[0], env.len[0]);
    zlistx_t *orphans = zlistx_new();
    if (rc == 1) {
        if (ctl.cmd == SO_CTL_READY) {
            w = so_broker_ready(g->broker, env.frame[0], env.len[0], ctl.worker_id, ctl.capacity,
                                now, s_orphan, orphans);
            if (w) {
                so_broker_set_agents(g->broker, w, ctl.agents);
                so_info("worker_ready", "worker=%s capacity=%u agents=%s workers=%zu",
                        ctl.worker_id, ctl.capacity, ctl.agents[0] ? ctl.agents : "all",
                        so_broker_size(g->broker));
            }
        } else if (!w) {
            if (ctl.cmd == SO_CTL_HEARTBEAT)
                s_ctl(g, &env, SO_CTL_DISCONNECT);    /* "register again" */
        } else if (ctl.cmd == SO_CTL_HEARTBEAT) {
            so_broker_seen(g->broker, w, now);
        } else if (ctl.cmd == SO_CTL_DISCONNECT) {
            so_info("worker_draining", "worker=%s inflight=%u", w->name, w->inflight);
            so_broker_seen(g->broker, w, now);
            so_broker_drain(g->broker, w);
        }
    } else if (!w) {
        g->stray++;
        s_ctl(g, &env, SO_CTL_DISCONNECT);
    } else if (type != SO_MSG_AGENT_RESULT) {
        g->rejected++;
        so_warn("worker_message_rejected", "worker=%s error=\"unexpected %s\"", w->name,
                so_wire_type_name(type));
    } else {
        so_broker_seen(g->broker, w, now);
        s_on_result(g, w, msg);
    }
    so_wire_free(type, msg);
    s_redispatch_orphans(g, orphans);
    zlistx_destroy(&orphans);
}

/* ---- Timers ------------------------------------------------------------ */

static void s_heartbeat(void *arg, so_broker_worker_t *w)
{
    s_gw_t *g = arg;
    so_wire_envelope_t env;
    so_wire_envelope_reset(&env);
    so_wire_envelope_push(&env, w->rid, w->rid_len);
    s_ctl(g, &env, SO_CTL_HEARTBEAT);
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static void s_stats(s_gw_t *g)
{
    size_t n = g->n_lat < S_LAT_RING ? g->n_lat : S_LAT_RING;
    double p50 = 0, p99 = 0;
    if (n > 0) {
        double *v = malloc(n * sizeof *v);
        if (v) {
            memcpy(v, g->lat_ms, n * sizeof *v);
            qsort(v, n, sizeof *v, s_cmp_double);
            p50 = v[n / 2];
            p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
            free(v);
        }
    }
    so_recorder_stats_t rs;
    so_recorder_stats(g->recorder, &rs);
    so_info("stats",
            "received=%llu replied=%llu errors=%llu rejected=%llu timeouts=%llu inflight=%zu "
            "waiting=%zu workers=%zu free_slots=%zu redispatched=%llu fallbacks=%llu "
            "uniform_demand=%llu stray=%llu p50_ms=%.1f p99_ms=%.1f version=%s "
            "episodes_logged=%llu turns_pending=%llu record_dropped=%llu record_backlog=%llu",
            (unsigned long long) g->received, (unsigned long long) g->replied,
            (unsigned long long) g->errors, (unsigned long long) g->rejected,
            (unsigned long long) g->timeouts, zhashx_size(g->reqs), zlistx_size(g->waiting),
            so_broker_size(g->broker), so_broker_free_slots(g->broker),
            (unsigned long long) g->redispatched, (unsigned long long) g->fallbacks,
            (unsigned long long) g->uniform_fallbacks, (unsigned long long) g->stray, p50, p99,
            g->current, (unsigned long long) rs.logged, (unsigned long long) rs.pushed,
            (unsigned long long) rs.dropped, (unsigned long long) rs.backlog);
}

static void s_timers(s_gw_t *g, int64_t now)
{
    zlistx_t *orphans = zlistx_new();
    so_broker_expire(g->broker, now, s_orphan, orphans);
    s_redispatch_orphans(g, orphans);
    zlistx_destroy(&orphans);
    so_broker_heartbeats(g->broker, now, s_heartbeat, g);
    s_dispatch_waiting(g);

    if (now >= g->next_sweep) {
        g->next_sweep = now + 50;
        /* Deadlines: collect first, then act (acting frees requests). */
        zlistx_t *due = zlistx_new();
        for (s_req_t *r = zhashx_first(g->reqs); r; r = zhashx_next(g->reqs))
            if (now >= r->deadline ||
                ((r->stage == S_INFER || r->stage == S_ROUTE) && now >= r->stage_deadline))
                zlistx_add_end(due, strdup(r->id));
        char *id;
        while ((id = zlistx_detach(due, NULL))) {
            s_req_t *r = zhashx_lookup(g->reqs, id);
            free(id);
            if (!r)
                continue;
            if (now >= r->deadline) {
                g->timeouts++;
                s_fail(g, r, S_ERR(TIMEOUT), "no answer within request_timeout_ms");
            } else if (r->stage == S_INFER) {
                if (r->stage_tries < 2)
                    s_send_infer(g, r);
                else
                    s_uniform_demand(g, r);     /* skill-inference is not answering */
            } else if (r->stage_tries < 2) {
                s_send_route(g, r);
            } else {
                s_fail(g, r, S_ERR(UNAVAILABLE), "the router is not answering");
            }
        }
        zlistx_destroy(&due);
        /* Drop waiting entries of turns that ended meanwhile (timed out). */
        for (char *w = zlistx_first(g->waiting); w;) {
            void *item = zlistx_cursor(g->waiting);
            s_req_t *r = zhashx_lookup(g->reqs, w);
            w = zlistx_next(g->waiting);        /* step first: deleting item keeps the cursor */
            if (!r || r->stage != S_WAIT)
                zlistx_delete(g->waiting, item);
        }
        /* Forget episodes idle past their ttl. */
        zlistx_t *old = zlistx_new();
        for (s_episode_t *e = zhashx_first(g->episodes); e; e = zhashx_next(g->episodes))
            if (now >= e->expires)
                zlistx_add_end(old, strdup(zhashx_cursor(g->episodes)));
        while ((id = zlistx_detach(old, NULL))) {
            zhashx_delete(g->episodes, id);
            free(id);
        }
        zlistx_destroy(&old);
    }
    if (g->stats_ms > 0 && now >= g->next_stats) {
        s_stats(g);
        g->next_stats = now + g->stats_ms;
    }
}

/* ---- Setup ------------------------------------------------------------- */

static int s_settings(s_gw_t *g, const so_config_t *cfg, char *err, size_t errlen)
{
    long v;
#define S_INT(key, field, def, min, max)                                                           \
    if (so_config_long(cfg, key, def, min, max, &v, err, errlen) != 0)                             \
        return -1;                                                                                 \
    g->field = v;
    S_INT("request_timeout_ms", request_timeout_ms, 30000, 100, 3600000);
    S_INT("stage_timeout_ms", stage_timeout_ms, 2000, 10, 600000);
    S_INT("call_timeout_ms", call_timeout_ms, 20000, 10, 3600000);
    S_INT("heartbeat_ms", heartbeat_ms, 500, 10, 60000);
    S_INT("liveness", liveness, 3, 1, 100);
    S_INT("drain_ms", drain_ms, 10000, 0, 600000);
    S_INT("stats_ms", stats_ms, 10000, 0, 3600000);
    S_INT("episode_ttl_s", episode_ttl_s, 3600, 1, 30 * 86400);
    S_INT("max_inflight", max_inflight, 10000, 1, 1000000);
    S_INT("max_attempts", max_attempts, 3, 1, SO_WIRE_MAX_ATTEMPT);
    S_INT("max_fallbacks", max_fallbacks, 2, 0, SO_WIRE_MAX_AGENTS);
#undef S_INT
    return 0;
}

static void *s_socket(s_gw_t *g, const so_config_t *cfg, int type, const char *key,
                      const char *def, int bind, const so_wire_sockopts_t *opts)
{
    char err[512];
    const char *ep = so_config_get(cfg, key, def);
    void *s = so_sock_new(g->ctx, type, opts, ep, bind, 0, err, sizeof err);
    if (!s)
        so_error("socket_failed", "key=%s endpoint=%s error=\"%s\"", key, ep, err);
    return s;
}

/* The current version at start-up, so the first requests need not wait for
 * the recorder's first poll. */
static void s_initial_version(s_gw_t *g, const char *url, const char *prefix)
{
    char err[256];
    so_store_t *st = so_store_connect(url, prefix, 1000, err, sizeof err);
    if (!st || so_store_current_version(st, g->current, sizeof g->current, err, sizeof err) < 0) {
        g->current[0] = '\0';
        so_warn("no_handbook_yet", "redis=%s error=\"%s\"", url, err);
    }
    so_store_destroy(&st);
}

int main(int argc, char **argv)
{
    int code = 0;
    so_config_t *cfg = so_cli_config("gateway", argc, argv, s_usage, &code);
    if (!cfg)
        return code;
    s_gw_t g;
    memset(&g, 0, sizeof g);
    char err[512];
    so_wire_sockopts_t opts;
    if (s_settings(&g, cfg, err, sizeof err) != 0 || so_sock_opts(cfg, &opts, err, sizeof err) != 0) {
        so_error("config", "error=\"%s\"", err);
        so_config_destroy(&cfg);
        return 2;
    }
    so_recorder_opts_t ro;
    so_recorder_opts_default(&ro);
    ro.redis_url = so_config_get(cfg, "redis.url", ro.redis_url);
    ro.prefix = so_config_get(cfg, "redis.prefix", ro.prefix);
    long ttl;
    if (so_config_long(cfg, "pending_ttl_s", ro.pending_ttl_s, 1, 30 * 86400, &ttl, err,
                       sizeof err) != 0) {
        so_error("config", "error=\"%s\"", err);
        so_config_destroy(&cfg);
        return 2;
    }
    ro.pending_ttl_s = (int) ttl;

    g.ctx = zmq_ctx_new();
    g.clients = s_socket(&g, cfg, ZMQ_ROUTER, "client.endpoint", "tcp://127.0.0.1:5555", 1, &opts);
    g.workers = s_socket(&g, cfg, ZMQ_ROUTER, "workers.endpoint", "tcp://127.0.0.1:5556", 1, &opts);
    g.infer = s_socket(&g, cfg, ZMQ_DEALER, "infer.endpoint", "tcp://127.0.0.1:5557", 0, &opts);
    g.route = s_socket(&g, cfg, ZMQ_DEALER, "router.endpoint", "tcp://127.0.0.1:5558", 0, &opts);
    g.broker = so_broker_new(g.heartbeat_ms, g.liveness);
    g.reqs = zhashx_new();
    zhashx_set_destructor(g.reqs, (zhashx_destructor_fn *) s_req_free);
    g.waiting = zlistx_new();
    zlistx_set_destructor(g.waiting, (zlistx_destructor_fn *) zstr_free);
    g.episodes = zhashx_new();
    zhashx_set_destructor(g.episodes, (zhashx_destructor_fn *) zstr_free);
    int ret = 0;
    if (g.clients && g.workers && g.infer && g.route && g.broker) {
        s_initial_version(&g, ro.redis_url, ro.prefix);
        g.recorder = so_recorder_new(g.ctx, &ro, err, sizeof err);
        if (!g.recorder)
            so_error("recorder_failed", "error=\"%s\"", err);
    }
    if (!g.recorder) {
        ret = 1;
        goto done;
    }
    so_info("start", "client=%s workers=%s infer=%s router=%s redis=%s version=%s",
            so_config_get(cfg, "client.endpoint", "tcp://127.0.0.1:5555"),
            so_config_get(cfg, "workers.endpoint", "tcp://127.0.0.1:5556"),
            so_config_get(cfg, "infer.endpoint", "tcp://127.0.0.1:5557"),
            so_config_get(cfg, "router.endpoint", "tcp://127.0.0.1:5558"), ro.redis_url,
            g.current[0] ? g.current : "(none)");
    g.next_stats = so_now_ms() + g.stats_ms;
    int64_t drain_until = 0;
    for (;;) {
        int64_t now = so_now_ms();
        if (so_stopping() && !g.draining) {
            g.draining = 1;
            drain_until = now + g.drain_ms;
            so_info("draining", "inflight=%zu drain_ms=%d", zhashx_size(g.reqs), g.drain_ms);
        }
        if (g.draining && (zhashx_size(g.reqs) == 0 || now >= drain_until))
            break;
        zmq_pollitem_t items[] = {
            { g.clients, 0, ZMQ_POLLIN, 0 },  { g.workers, 0, ZMQ_POLLIN, 0 },
            { g.infer, 0, ZMQ_POLLIN, 0 },    { g.route, 0, ZMQ_POLLIN, 0 },
            { so_recorder_socket(g.recorder), 0, ZMQ_POLLIN, 0 },
        };
        int rc = zmq_poll(items, 5, 20);
        if (rc < 0 && errno != EINTR) {
            so_error("poll_failed", "error=\"%s\"", zmq_strerror(errno));
            ret = 1;
            break;
        }
        /* Up to 64 messages per socket per round: no socket starves another. */
        for (int i = 0; rc > 0 && i < 64; i++) {
            int any = 0;
            void *socks[4] = { g.workers, g.route, g.infer, g.clients };
            for (int k = 0; k < 4; k++) {
                int ev = 0;
                size_t len = sizeof ev;
                if (zmq_getsockopt(socks[k], ZMQ_EVENTS, &ev, &len) != 0 || !(ev & ZMQ_POLLIN))
                    continue;
                any = 1;
                if (k == 0)
                    s_on_worker(&g);
                else if (k == 1)
                    s_on_route(&g);
                else if (k == 2)
                    s_on_infer(&g);
                else
                    s_on_client(&g);
            }
            if (!any)
                break;
        }
        char v[SO_WIRE_MAX_ID + 1];
        while (so_recorder_recv(g.recorder, v, sizeof v)) {
            if (strcmp(v, g.current) != 0)
                so_info("handbook_version", "current=%s previous=%s", v, g.current);
            snprintf(g.current, sizeof g.current, "%s", v);
        }
        s_timers(&g, so_now_ms());
    }
    /* Whatever is still in flight past the drain gets an answer. */
    while (zhashx_size(g.reqs) > 0)
        s_fail(&g, zhashx_first(g.reqs), S_ERR(UNAVAILABLE), "the gateway stopped");
    s_stats(&g);
done:
    so_info("stop", "received=%llu replied=%llu errors=%llu", (unsigned long long) g.received,
            (unsigned long long) g.replied, (unsigned long long) g.errors);
    so_recorder_destroy(&g.recorder);
    zhashx_destroy(&g.reqs);
    zlistx_destroy(&g.waiting);
    zhashx_destroy(&g.episodes);
    so_broker_destroy(&g.broker);
    so_sock_close(&g.clients);
    so_sock_close(&g.workers);
    so_sock_close(&g.infer);
    so_sock_close(&g.route);
    if (g.ctx)
        zmq_ctx_term(g.ctx);
    so_config_destroy(&cfg);
    return ret;
}
