/*
 * so_inflight — the turns in flight and their state machine (the diagram
 * is in so_inflight.h).
 */
#include "so_inflight.h"
#include "so_episodes.h"

#include "base/so_alloc.h"
#include "base/so_pctl.h"
#include "base/so_map.h"
#include "base/so_svc.h"
#include "base/so_text.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LAT_RING 2048
#define S_MAX_EPISODES 1000000
#define S_SWEEP_MS 50

static const char *s_stage_name[] = { "infer", "route", "wait", "call" };

/* One turn in flight. */
typedef struct {
    char id[SO_WIRE_MAX_ID + 1];        /* ours, on every backend message */
    char client_id[SO_WIRE_MAX_ID + 1]; /* the client's request_id */
    char episode[SO_WIRE_MAX_ID + 1];
    char version[SO_WIRE_MAX_ID + 1];
    so_wire_envelope_t env;        /* the client's envelope */
    so_pb_turn_request_t *request; /* decoded client request */
    so_pb_skill_demand_t *demand;  /* decoded, or the uniform one (own) */
    int demand_owned;
    so_pb_routing_decision_t *decision;
    so_inflight_stage_t stage;
    int64_t started, deadline, stage_deadline;
    int stage_tries, attempts, fallbacks;
    size_t partials; /* deltas forwarded to the client */
    char **exclude;  /* the client's + failed agents */
    size_t n_exclude;
    char note[512]; /* why an agent was skipped */
} s_flight_t;

struct so_inflight {
    so_inflight_opts_t o;
    so_inflight_ops_t ops;
    void *arg;
    so_broker_t *broker;
    char current[SO_WIRE_MAX_ID + 1]; /* handbook version for new episodes */
    so_map_t *flights;                /* id → s_flight_t* */
    zlistx_t *waiting;                /* ids waiting for a worker, FIFO */
    so_episodes_t *episodes;          /* pinned handbook versions */
    int draining;
    so_inflight_counters_t c;
    double lat_ms[S_LAT_RING];
    size_t n_lat;
    int64_t next_sweep;
};

static int s_dispatch(so_inflight_t *f, s_flight_t *r);

/* ---- Turns ------------------------------------------------------------- */

static int64_t s_now(const so_inflight_t *f)
{
    return f->ops.now ? f->ops.now(f->arg) : so_now_ms();
}

static void s_flight_free(void *p)
{
    s_flight_t *r = p;
    if (!r)
        return;
    so_wire_free(SO_MSG_TURN_REQUEST, r->request);
    if (r->demand_owned)
        free(r->demand);
    else
        so_wire_free(SO_MSG_SKILL_DEMAND, r->demand);
    so_wire_free(SO_MSG_ROUTING_DECISION, r->decision);
    for (size_t i = 0; i < r->n_exclude; i++)
        free(r->exclude[i]);
    free(r->exclude);
    free(r);
}

static s_flight_t *s_find(const so_inflight_t *f, const char *id)
{
    return id ? so_map_get(f->flights, id) : NULL;
}

static int s_excluded(const s_flight_t *r, const char *agent)
{
    for (size_t i = 0; i < r->n_exclude; i++)
        if (strcmp(r->exclude[i], agent) == 0)
            return 1;
    return 0;
}

static void s_exclude(s_flight_t *r, const char *agent)
{
    if (s_excluded(r, agent) || r->n_exclude >= SO_WIRE_MAX_AGENTS)
        return;
    r->exclude = so_reallocarray(r->exclude, r->n_exclude + 1, sizeof *r->exclude);
    r->exclude[r->n_exclude++] = so_strdup(agent);
}

/* The turn as the backends see it: our id, the episode, the pinned version
 * and the exclusions (a shallow copy: it borrows everything). */
static so_pb_turn_request_t s_forward(const s_flight_t *r)
{
    so_pb_turn_request_t t = *r->request;
    t.request_id = (char *) r->id;
    t.episode_id = (char *) r->episode;
    t.handbook_version = (char *) r->version;
    t.exclude_agents = r->exclude;
    t.n_exclude_agents = r->n_exclude;
    return t;
}

static void s_latency(so_inflight_t *f, const s_flight_t *r)
{
    f->lat_ms[f->n_lat++ % S_LAT_RING] = (double) (s_now(f) - r->started);
}

/* Ends a turn with an error reply; frees it. */
static void s_fail(so_inflight_t *f, s_flight_t *r, so_pb_error_code_t code, const char *msg)
{
    char err[256];
    if (f->ops.send_error(f->arg, &r->env, r->client_id, r->episode, code, msg, err,
                          sizeof err) != 0)
        f->c.send_failed++;
    so_info("turn_failed", "request_id=%s episode_id=%s stage=%s code=%d error=\"%s\"", r->id,
            r->episode, s_stage_name[r->stage], (int) code, msg);
    f->c.errors++;
    s_latency(f, r);
    so_map_del(f->flights, r->id); /* frees r */
}

/* ---- Stages ------------------------------------------------------------ */

static void s_send_infer(so_inflight_t *f, s_flight_t *r)
{
    char err[512];
    so_pb_turn_request_t t = s_forward(r);
    r->stage = SO_INFLIGHT_INFER;
    r->stage_deadline = s_now(f) + f->o.stage_timeout_ms;
    r->stage_tries++;
    if (f->ops.send_infer(f->arg, &t, err, sizeof err) != 0)
        so_warn("infer_send_failed", "request_id=%s error=\"%s\"", r->id, err);
    /* A send that failed is retried by the stage timeout. */
}

static void s_send_route(so_inflight_t *f, s_flight_t *r)
{
    char err[512];
    so_pb_turn_request_t t = s_forward(r);
    so_pb_route_request_t rr = SKILLORCHESTRA__V1__ROUTE_REQUEST__INIT;
    rr.turn = &t;
    rr.demand = r->demand;
    if (r->stage != SO_INFLIGHT_ROUTE)
        r->stage_tries = 0;
    r->stage = SO_INFLIGHT_ROUTE;
    r->stage_deadline = s_now(f) + f->o.stage_timeout_ms;
    r->stage_tries++;
    if (f->ops.send_route(f->arg, &rr, err, sizeof err) != 0)
        so_warn("route_send_failed", "request_id=%s error=\"%s\"", r->id, err);
}

/* A uniform demand: the router spreads it over the mode's skills. */
static void s_uniform_demand(so_inflight_t *f, s_flight_t *r)
{
    so_pb_skill_demand_t *d = so_calloc(1, sizeof *d);
    skillorchestra__v1__skill_demand__init(d);
    d->request_id = r->id;
    d->handbook_version = r->version;
    d->source = SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_UNIFORM_FALLBACK;
    r->demand = d;
    r->demand_owned = 1;
    f->c.uniform_fallbacks++;
    s_send_route(f, r);
}

/* The chosen agent cannot serve this turn: route it again without the
 * agent (up to max_fallbacks), else end it with code.  why says what went
 * wrong; it goes into the decision's reason. */
static void s_fallback(so_inflight_t *f, s_flight_t *r, const char *agent,
                       so_pb_error_code_t code, const char *why)
{
    /* After deltas went out, another agent's answer would not continue
     * them: the turn fails instead (docs/PROTOCOL.md, "Streaming"). */
    if (r->fallbacks >= f->o.max_fallbacks || r->partials > 0) {
        char msg[SO_WIRE_MAX_NOTE];
        snprintf(msg, sizeof msg, "agent %s: %s", agent, why);
        s_fail(f, r, code, msg);
        return;
    }
    r->fallbacks++;
    f->c.fallbacks++;
    size_t n = strlen(r->note);
    so_text_fmt_utf8(r->note + n, sizeof r->note - n, "%s%s failed (%s)", n ? ", " : "", agent,
                     why);
    s_exclude(r, agent);
    so_info("fallback", "request_id=%s agent=%s code=%d error=\"%s\"", r->id, agent, (int) code,
            why);
    so_wire_free(SO_MSG_ROUTING_DECISION, r->decision);
    r->decision = NULL;
    s_send_route(f, r);
}

/* The broker's orphan callback: collects the calls of a dropped worker in
 * a list, dispatched again afterwards (the broker must not be re-entered). */
static void s_orphan(void *arg, const char *request_id)
{
    zlistx_add_end((zlistx_t *) arg, so_strdup(request_id));
}

static zlistx_t *s_orphans_new(void)
{
    zlistx_t *l = zlistx_new();
    if (!l)
        so_oom("orphan list");
    return l;
}

static void s_redispatch_orphans(so_inflight_t *f, zlistx_t *orphans)
{
    char *id;
    while ((id = zlistx_detach(orphans, NULL))) {
        s_flight_t *r = s_find(f, id);
        free(id);
        if (!r || r->stage != SO_INFLIGHT_CALL)
            continue;
        f->c.redispatched++;
        if (r->partials > 0) {
            s_fail(f, r, SO_ERR(UNAVAILABLE), "the worker streaming this call stopped answering");
            continue;
        }
        if (r->attempts >= f->o.max_attempts) {
            s_fail(f, r, SO_ERR(UNAVAILABLE), "the workers holding this call stopped answering");
            continue;
        }
        so_info("redispatch", "request_id=%s attempt=%d", r->id, r->attempts);
        s_dispatch(f, r);
    }
}

/* The AgentCall for r's chosen agent. */
static so_pb_agent_call_t s_call(const so_inflight_t *f, const s_flight_t *r)
{
    so_pb_agent_call_t call = SKILLORCHESTRA__V1__AGENT_CALL__INIT;
    call.request_id = (char *) r->id;
    call.episode_id = (char *) r->episode;
    call.turn_index = r->request->turn_index;
    call.agent_id = r->decision->chosen_agent;
    call.messages = r->request->messages;
    call.n_messages = r->request->n_messages;
    call.max_completion_tokens = r->request->max_completion_tokens;
    call.deadline_ms = (uint32_t) f->o.call_timeout_ms;
    call.attempt = (uint32_t) r->attempts;
    call.stream = r->request->stream;
    return call;
}

/* The send to w failed: unless the call itself is invalid, w is gone
 * (EHOSTUNREACH) or stuck, so it is dropped and r tried elsewhere. */
static int s_send_call_failed(so_inflight_t *f, s_flight_t *r, so_broker_worker_t *w,
                              const char *err)
{
    if (errno == EINVAL) {
        s_fail(f, r, SO_ERR(INTERNAL), err);
        return -1;
    }
    so_warn("worker_send_failed", "worker=%s error=\"%s\"", w->name, err);
    zlistx_t *orphans = s_orphans_new();
    so_broker_remove(f->broker, w, s_orphan, orphans);
    r->attempts--;
    r->stage = SO_INFLIGHT_ROUTE; /* not WAIT: let s_dispatch queue it */
    int rc = s_dispatch(f, r);
    s_redispatch_orphans(f, orphans); /* what the dropped worker held */
    zlistx_destroy(&orphans);
    return rc;
}

/* Sends the call to the least recently used worker with a free slot that
 * serves the chosen agent, or queues it; with no worker serving the agent at
 * all, falls back to another agent.  Returns 0, or -1 when r was ended. */
static int s_dispatch(so_inflight_t *f, s_flight_t *r)
{
    const char *agent = r->decision->chosen_agent;
    so_broker_worker_t *w = so_broker_pick_for(f->broker, agent);
    if (!w && so_broker_active(f->broker) > 0 && !so_broker_has_agent(f->broker, agent)) {
        /* Workers are up, but none serves this agent. */
        s_fallback(f, r, agent, SO_ERR(UNAVAILABLE), "no registered worker serves it");
        return -1;
    }
    if (!w) {
        if (r->stage != SO_INFLIGHT_WAIT) {
            r->stage = SO_INFLIGHT_WAIT;
            zlistx_add_end(f->waiting, so_strdup(r->id));
        }
        return 0;
    }
    so_pb_agent_call_t call = s_call(f, r);
    char err[512];
    int64_t now = s_now(f);
    r->stage = SO_INFLIGHT_CALL;
    r->attempts++;
    if (f->ops.send_call(f->arg, w, &call, err, sizeof err) != 0)
        return s_send_call_failed(f, r, w, err);
    /* The worker has the call's deadline plus two heartbeats of slack
     * before the broker presumes it stuck and re-dispatches. */
    so_broker_assign(f->broker, w, r->id, now + f->o.call_timeout_ms + 2 * f->o.heartbeat_ms);
    return 0;
}

/* Dispatches waiting calls, oldest first, each as soon as a worker that
 * serves its agent has a free slot. */
static void s_dispatch_waiting(so_inflight_t *f)
{
    char *id = zlistx_first(f->waiting);
    while (id && so_broker_free_slots(f->broker) > 0) {
        s_flight_t *r = s_find(f, id);
        if (r && r->stage == SO_INFLIGHT_WAIT && so_broker_active(f->broker) > 0 &&
            (so_broker_pick_for(f->broker, r->decision->chosen_agent) ||
             !so_broker_has_agent(f->broker, r->decision->chosen_agent))) {
            zlistx_delete(f->waiting, zlistx_cursor(f->waiting));
            r->stage = SO_INFLIGHT_ROUTE; /* leave WAIT so s_dispatch may queue it again */
            s_dispatch(f, r);
            id = zlistx_first(f->waiting); /* dispatching may have changed the list */
            continue;
        }
        if (!r || r->stage != SO_INFLIGHT_WAIT) {
            zlistx_delete(f->waiting, zlistx_cursor(f->waiting));
            id = zlistx_first(f->waiting);
            continue;
        }
        id = zlistx_next(f->waiting);
    }
}

/* ---- Replies ----------------------------------------------------------- */

static void s_record(so_inflight_t *f, const s_flight_t *r, const so_pb_agent_result_t *res)
{
    so_pb_turn_record_t tr = SKILLORCHESTRA__V1__TURN_RECORD__INIT;
    tr.turn_index = r->request->turn_index;
    tr.mode = r->request->mode;
    tr.agent_id = res->agent_id;
    tr.demand = r->demand->skills;
    tr.n_demand = r->demand->n_skills;
    tr.prompt_tokens = res->prompt_tokens;
    tr.completion_tokens = res->completion_tokens;
    tr.cost_usd = res->cost_usd;
    tr.latency_s = res->latency_s;
    if (res->replay_score_opt_case ==
        SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE) {
        tr.score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
        tr.score = res->replay_score;
    }
    f->ops.record(f->arg, r->episode, r->version, &tr, r->request->final_turn);
}

/* Says in the decision why earlier agents were skipped. */
static void s_note_fallbacks(s_flight_t *r)
{
    if (!r->note[0])
        return;
    char reason[SO_WIRE_MAX_NOTE];
    so_text_fmt_utf8(reason, sizeof reason, "%s; fallback: %s", r->decision->reason, r->note);
    /* protobuf-c leaves an absent string pointing at a shared static. */
    if (r->decision->reason != protobuf_c_empty_string)
        free(r->decision->reason);
    r->decision->reason = so_strdup(reason);
}

/* Sends a TurnReply with res (partial or final) to r's client, under the
 * client's own request id.  0, or -1 with errno and err. */
static int s_reply(so_inflight_t *f, const s_flight_t *r, so_pb_agent_result_t *res, int partial,
                   char *err, size_t errlen)
{
    so_pb_turn_reply_t rep = SKILLORCHESTRA__V1__TURN_REPLY__INIT;
    rep.request_id = (char *) r->client_id;
    rep.episode_id = (char *) r->episode;
    rep.text = res->text;
    rep.decision = r->decision;
    rep.partial = partial;
    char *rid = res->request_id;
    res->request_id = (char *) r->client_id;
    rep.result = res;
    int rc = f->ops.send_reply(f->arg, &r->env, &rep, err, errlen);
    int saved = errno;
    res->request_id = rid;
    errno = saved;
    return rc;
}

static void s_answer(so_inflight_t *f, s_flight_t *r, so_pb_agent_result_t *res)
{
    char err[512];
    s_note_fallbacks(r);
    if (s_reply(f, r, res, 0, err, sizeof err) != 0) {
        f->c.send_failed++;
        int was_invalid = errno == EINVAL;
        so_warn("reply_failed", "request_id=%s error=\"%s\"", r->id, err);
        if (was_invalid) /* the reply did not validate: the client still gets one */
            f->ops.send_error(f->arg, &r->env, r->client_id, r->episode, SO_ERR(INTERNAL), err,
                              err, sizeof err);
    }
    s_record(f, r, res);
    if (r->request->final_turn)
        so_episodes_forget(f->episodes, r->episode);
    f->c.replied++;
    s_latency(f, r);
    so_map_del(f->flights, r->id);
}

static int s_retryable(so_pb_error_code_t c)
{
    return c == SO_ERR(TIMEOUT) || c == SO_ERR(UPSTREAM) || c == SO_ERR(RATE_LIMITED) ||
           c == SO_ERR(UNAVAILABLE) || c == SO_ERR(CONTEXT_TOO_LONG) || c == SO_ERR(INTERNAL);
}

/* A delta from the worker holding the call: forwarded to the client as a
 * partial TurnReply at once; no completion, no recording. */
static void s_on_partial(so_inflight_t *f, so_broker_worker_t *w, so_pb_agent_result_t *res)
{
    s_flight_t *r = s_find(f, res->request_id);
    if (!r || r->stage != SO_INFLIGHT_CALL || !so_broker_holds(w, res->request_id)) {
        f->c.stray++;
        return;
    }
    char err[512];
    if (s_reply(f, r, res, 1, err, sizeof err) != 0) {
        f->c.send_failed++;
        so_debug("partial_reply_failed", "request_id=%s error=\"%s\"", r->id, err);
    } else {
        r->partials++;
        f->c.partials++;
    }
}

void so_inflight_on_result(so_inflight_t *f, so_broker_worker_t *w, so_pb_agent_result_t *res)
{
    if (res->partial) {
        s_on_partial(f, w, res);
        return;
    }
    int held = so_broker_complete(f->broker, w, res->request_id);
    s_flight_t *r = s_find(f, res->request_id);
    if (!held || !r || r->stage != SO_INFLIGHT_CALL) {
        f->c.stray++; /* late (re-dispatched or timed out) or unknown */
        return;
    }
    const so_pb_error_t *e = res->error;
    if (!e || e->code == SO_ERR(NONE)) {
        s_answer(f, r, res);
        return;
    }
    if (s_retryable(e->code)) {
        s_fallback(f, r, res->agent_id, e->code, e->message ? e->message : "error");
        return;
    }
    char msg[SO_WIRE_MAX_NOTE];
    snprintf(msg, sizeof msg, "agent %s: %s", res->agent_id, e->message ? e->message : "error");
    s_fail(f, r, e->code, msg);
}

/* ---- Admission --------------------------------------------------------- */

/* The handbook version: the client's pin, else the episode's, else the
 * current one. */
static void s_pin_version(const so_inflight_t *f, s_flight_t *r)
{
    const so_pb_turn_request_t *t = r->request;
    const char *pinned = so_episodes_version(f->episodes, r->episode);
    if (t->handbook_version && *t->handbook_version)
        snprintf(r->version, sizeof r->version, "%s", t->handbook_version);
    else if (pinned)
        snprintf(r->version, sizeof r->version, "%s", pinned);
    else
        snprintf(r->version, sizeof r->version, "%s", f->current);
}

static s_flight_t *s_flight_new(so_inflight_t *f, const so_wire_envelope_t *env,
                                so_pb_turn_request_t *t)
{
    s_flight_t *r = so_calloc(1, sizeof *r);
    r->request = t;
    r->env = *env;
    r->started = s_now(f);
    r->deadline = r->started + f->o.request_timeout_ms;
    so_new_id("rq", r->id, sizeof r->id);
    snprintf(r->client_id, sizeof r->client_id, "%s", t->request_id);
    if (t->episode_id && *t->episode_id)
        snprintf(r->episode, sizeof r->episode, "%s", t->episode_id);
    else
        so_new_id("ep", r->episode, sizeof r->episode);
    for (size_t i = 0; i < t->n_exclude_agents; i++)
        s_exclude(r, t->exclude_agents[i]);
    return r;
}

void so_inflight_admit(so_inflight_t *f, const so_wire_envelope_t *env,
                       so_pb_turn_request_t **turn_p)
{
    so_pb_turn_request_t *t = *turn_p;
    *turn_p = NULL;
    f->c.received++;
    const char *why = NULL;
    if (f->draining)
        why = "the gateway is shutting down";
    else if ((long) so_map_size(f->flights) >= f->o.max_inflight)
        why = "overloaded: too many requests in flight";
    if (why) {
        char err[512];
        f->ops.send_error(f->arg, env, t->request_id, t->episode_id, SO_ERR(UNAVAILABLE), why,
                          err, sizeof err);
        f->c.errors++;
        so_wire_free(SO_MSG_TURN_REQUEST, t);
        return;
    }
    s_flight_t *r = s_flight_new(f, env, t);
    s_pin_version(f, r);
    so_map_put(f->flights, r->id, r);
    if (!r->version[0]) {
        s_fail(f, r, SO_ERR(UNKNOWN_HANDBOOK), "no handbook has been published yet");
        return;
    }
    if (!t->final_turn) /* the episode keeps the version for its later turns */
        so_episodes_keep(f->episodes, r->episode, r->version, r->started);
    s_send_infer(f, r);
}

/* ---- Backend replies --------------------------------------------------- */

void so_inflight_on_demand(so_inflight_t *f, so_pb_skill_demand_t **demand_p)
{
    so_pb_skill_demand_t *d = *demand_p;
    *demand_p = NULL;
    s_flight_t *r = s_find(f, d->request_id);
    if (!r || r->stage != SO_INFLIGHT_INFER) {
        f->c.stray++;
        so_wire_free(SO_MSG_SKILL_DEMAND, d);
        return;
    }
    r->demand = d;
    snprintf(r->version, sizeof r->version, "%s", d->handbook_version);
    s_send_route(f, r);
}

void so_inflight_on_infer_error(so_inflight_t *f, const so_pb_turn_reply_t *rep)
{
    s_flight_t *r = s_find(f, rep->request_id);
    if (r && r->stage == SO_INFLIGHT_INFER)
        s_fail(f, r, rep->error ? rep->error->code : SO_ERR(INTERNAL),
               rep->error && rep->error->message ? rep->error->message
                                                 : "skill inference failed");
    else
        f->c.stray++;
}

void so_inflight_on_decision(so_inflight_t *f, so_pb_routing_decision_t **decision_p)
{
    so_pb_routing_decision_t *d = *decision_p;
    *decision_p = NULL;
    s_flight_t *r = s_find(f, d->request_id);
    if (!r || r->stage != SO_INFLIGHT_ROUTE || s_excluded(r, d->chosen_agent)) {
        /* Late, or a late duplicate of a decision made before a fallback. */
        f->c.stray++;
        so_wire_free(SO_MSG_ROUTING_DECISION, d);
        return;
    }
    so_wire_free(SO_MSG_ROUTING_DECISION, r->decision);
    r->decision = d;
    /* The client sees its own ids in the decision. */
    free(d->request_id);
    d->request_id = so_strdup(r->client_id);
    s_dispatch(f, r);
}

void so_inflight_on_route_error(so_inflight_t *f, const so_pb_turn_reply_t *rep)
{
    s_flight_t *r = s_find(f, rep->request_id);
    if (!r || r->stage != SO_INFLIGHT_ROUTE) {
        f->c.stray++;
        return;
    }
    char m[SO_WIRE_MAX_NOTE];
    so_text_fmt_utf8(m, sizeof m, "%s%s%s",
                     rep->error && rep->error->message ? rep->error->message : "routing failed",
                     r->note[0] ? "; earlier: " : "", r->note);
    s_fail(f, r, rep->error ? rep->error->code : SO_ERR(INTERNAL), m);
}

so_broker_worker_t *so_inflight_worker_ready(so_inflight_t *f, const void *rid, size_t rid_len,
                                             const char *name, unsigned capacity,
                                             const char *agents, int64_t now)
{
    zlistx_t *orphans = s_orphans_new();
    so_broker_worker_t *w = so_broker_ready(f->broker, rid, rid_len, name, capacity, now,
                                            s_orphan, orphans);
    if (w) {
        so_broker_set_agents(f->broker, w, agents);
        so_info("worker_ready", "worker=%s capacity=%u agents=%s workers=%zu", name, capacity,
                agents && agents[0] ? agents : "all", so_broker_size(f->broker));
    }
    s_redispatch_orphans(f, orphans);
    zlistx_destroy(&orphans);
    return w;
}

/* ---- Time -------------------------------------------------------------- */

void so_inflight_expire_workers(so_inflight_t *f, int64_t now)
{
    zlistx_t *orphans = s_orphans_new();
    so_broker_expire(f->broker, now, s_orphan, orphans);
    s_redispatch_orphans(f, orphans);
    zlistx_destroy(&orphans);
}

/* A turn past its deadline fails; a stage past its own is tried once more,
 * then skill-inference is replaced by a uniform demand and a silent router
 * ends the turn. */
static void s_timed_out(so_inflight_t *f, s_flight_t *r, int64_t now)
{
    if (now >= r->deadline) {
        f->c.timeouts++;
        s_fail(f, r, SO_ERR(TIMEOUT), "no answer within request_timeout_ms");
    } else if (r->stage == SO_INFLIGHT_INFER) {
        if (r->stage_tries < 2)
            s_send_infer(f, r);
        else
            s_uniform_demand(f, r); /* skill-inference is not answering */
    } else if (r->stage_tries < 2) {
        s_send_route(f, r);
    } else {
        s_fail(f, r, SO_ERR(UNAVAILABLE), "the router is not answering");
    }
}

/* Deadlines: collect first, then act (acting frees turns). */
static void s_sweep_deadlines(so_inflight_t *f, int64_t now)
{
    zlistx_t *due = s_orphans_new();
    size_t it = 0;
    const char *id;
    void *v;
    while (so_map_next(f->flights, &it, &id, &v)) {
        s_flight_t *r = v;
        if (now >= r->deadline ||
            ((r->stage == SO_INFLIGHT_INFER || r->stage == SO_INFLIGHT_ROUTE) &&
             now >= r->stage_deadline))
            zlistx_add_end(due, so_strdup(r->id));
    }
    char *d;
    while ((d = zlistx_detach(due, NULL))) {
        s_flight_t *r = s_find(f, d);
        free(d);
        if (r)
            s_timed_out(f, r, now);
    }
    zlistx_destroy(&due);
}

/* Drops waiting entries of turns that ended meanwhile (timed out). */
static void s_sweep_waiting(so_inflight_t *f)
{
    for (char *w = zlistx_first(f->waiting); w;) {
        void *item = zlistx_cursor(f->waiting);
        s_flight_t *r = s_find(f, w);
        w = zlistx_next(f->waiting); /* step first: deleting item keeps the cursor */
        if (!r || r->stage != SO_INFLIGHT_WAIT)
            zlistx_delete(f->waiting, item);
    }
}

void so_inflight_tick(so_inflight_t *f, int64_t now)
{
    s_dispatch_waiting(f);
    if (now < f->next_sweep)
        return;
    f->next_sweep = now + S_SWEEP_MS;
    s_sweep_deadlines(f, now);
    s_sweep_waiting(f);
    so_episodes_expire(f->episodes, now);
}

void so_inflight_fail_all(so_inflight_t *f, so_pb_error_code_t code, const char *msg)
{
    size_t it = 0;
    const char *id;
    void *v;
    while (it = 0, so_map_next(f->flights, &it, &id, &v))
        s_fail(f, v, code, msg);
}

/* ---- Lifetime and state ------------------------------------------------ */

so_inflight_t *so_inflight_new(const so_inflight_opts_t *opts, const so_inflight_ops_t *ops,
                               void *arg)
{
    so_inflight_t *f = so_calloc(1, sizeof *f);
    f->o = *opts;
    f->ops = *ops;
    f->arg = arg;
    f->broker = so_broker_new(opts->heartbeat_ms, opts->liveness);
    f->flights = so_map_new(s_flight_free);
    f->episodes = so_episodes_new(opts->episode_ttl_s, S_MAX_EPISODES);
    f->waiting = zlistx_new();
    if (!f->broker || !f->waiting) {
        so_inflight_destroy(&f);
        return NULL;
    }
    zlistx_set_destructor(f->waiting, (zlistx_destructor_fn *) zstr_free);
    return f;
}

void so_inflight_destroy(so_inflight_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_inflight_t *f = *self_p;
    so_map_destroy(&f->flights);
    so_episodes_destroy(&f->episodes);
    zlistx_destroy(&f->waiting);
    so_broker_destroy(&f->broker);
    free(f);
    *self_p = NULL;
}

so_broker_t *so_inflight_broker(so_inflight_t *f)
{
    return f->broker;
}

void so_inflight_set_draining(so_inflight_t *f, int draining)
{
    f->draining = draining;
}

void so_inflight_set_version(so_inflight_t *f, const char *version)
{
    snprintf(f->current, sizeof f->current, "%s", version ? version : "");
}

const char *so_inflight_version(const so_inflight_t *f)
{
    return f->current;
}

size_t so_inflight_size(const so_inflight_t *f)
{
    return so_map_size(f->flights);
}

size_t so_inflight_waiting(const so_inflight_t *f)
{
    return zlistx_size(f->waiting);
}

int so_inflight_stage(const so_inflight_t *f, const char *id)
{
    const s_flight_t *r = s_find(f, id);
    return r ? (int) r->stage : -1;
}

so_inflight_counters_t *so_inflight_counters(so_inflight_t *f)
{
    return &f->c;
}

void so_inflight_latency(const so_inflight_t *f, double *p50, double *p99)
{
    so_pctl_double(f->lat_ms, f->n_lat, S_LAT_RING, p50, p99);
}
