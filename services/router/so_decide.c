/*
 * so_decide — RouteRequest → RoutingDecision (see so_decide.h).
 *
 * The hot path allocates nothing of its own: the dense demand, the
 * exclusion mask, the so_decision_t and the protobuf structs of the reply
 * live in buffers that grow to the largest handbook seen; the reply's
 * strings are borrowed from the handbook; only so_wire_send packs into a
 * fresh buffer.
 */
#include "so_decide.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_rng.h"
#include "base/so_svc.h"
#include "base/so_text.h"
#include "wire/so_sock.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct so_decide {
    so_hbcache_t *cache;
    so_decide_opts_t o;
    /* scratch, grown on demand */
    double *vec; /* [cap_s] */
    size_t cap_s;
    unsigned char *excl;     /* [cap_a] */
    so_pb_agent_score_t *sc; /* [cap_a] */
    so_pb_agent_score_t **scp;
    so_pb_skill_competence_t *comp; /* [cap_a * SO_ROUTE_TOP] */
    so_pb_skill_competence_t **compp;
    size_t cap_a;
    so_decision_t dec;
    /* counters */
    so_profile_t defaults; /* a turn naming no profile */
    uint64_t by_strategy[4], by_code[16], profile_unknown, profiled;
};

void so_decide_opts_default(so_decide_opts_t *o)
{
    o->lambda = 0.055;
    o->thompson = 1;
    o->explore_floor = 0.02;
    o->seed = 1;
    o->budget_fallback = 0;
    o->profiles = NULL;
}

so_decide_t *so_decide_new(so_hbcache_t *cache, const so_decide_opts_t *opts)
{
    so_decide_t *d = so_calloc(1, sizeof *d);
    d->cache = cache;
    if (opts)
        d->o = *opts;
    else
        so_decide_opts_default(&d->o);
    d->defaults = (so_profile_t){ .name = "",
                                  .lambda = d->o.lambda,
                                  .thompson = d->o.thompson,
                                  .explore_floor = d->o.explore_floor };
    so_decision_init(&d->dec);
    return d;
}

void so_decide_destroy(so_decide_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_decide_t *d = *self_p;
    free(d->vec);
    free(d->excl);
    free(d->sc);
    free(d->scp);
    free(d->comp);
    free(d->compp);
    so_decision_free(&d->dec);
    free(d);
    *self_p = NULL;
}

uint64_t so_decide_seed(uint64_t config_seed, const char *episode_id, uint32_t turn_index)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, the id's bytes as sent */
    for (const unsigned char *p = (const unsigned char *) (episode_id ? episode_id : ""); *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return so_rng_mix(config_seed, so_rng_mix(h, turn_index));
}

static void *s_grow(void *p, size_t n, size_t size)
{
    free(p);
    return so_calloc(n, size);
}

static void s_reserve(so_decide_t *d, size_t S, size_t A)
{
    if (S + 1 > d->cap_s) {
        d->vec = s_grow(d->vec, S + 1, sizeof *d->vec);
        d->cap_s = S + 1;
    }
    if (A + 1 > d->cap_a) {
        size_t n = A + 1;
        d->excl = s_grow(d->excl, n, sizeof *d->excl);
        d->sc = s_grow(d->sc, n, sizeof *d->sc);
        d->scp = s_grow(d->scp, n, sizeof *d->scp);
        d->comp = s_grow(d->comp, n * SO_ROUTE_TOP, sizeof *d->comp);
        d->compp = s_grow(d->compp, n * SO_ROUTE_TOP, sizeof *d->compp);
        d->cap_a = n;
    }
}

static so_server_result_t s_fail(so_decide_t *d, void *sock, const so_wire_envelope_t *env,
                                 const so_pb_turn_request_t *t, so_pb_error_code_t code,
                                 const char *msg)
{
    char err[256];
    d->by_code[(unsigned) code & 15]++;
    so_info("request_failed", "request_id=%s episode_id=%s code=%d error=\"%s\"", t->request_id,
            t->episode_id, (int) code, msg);
    if (so_sock_send_error(sock, env, t->request_id, t->episode_id, code, msg, err, sizeof err) !=
        0) {
        so_warn("reply_failed", "request_id=%s error=\"%s\"", t->request_id, err);
        return SO_SERVER_NO_REPLY;
    }
    return SO_SERVER_ERROR_REPLY;
}

static double s_unit(double x)
{
    return isfinite(x) ? (x < 0 ? 0 : x > 1 ? 1 : x) : 0;
}

static double s_nonneg(double x)
{
    return isfinite(x) && x > 0 ? x : 0;
}

/* Fills the reply from d->dec (strings borrowed from the handbook). */
static void s_fill(so_decide_t *d, const so_hbcache_entry_t *e, const so_pb_turn_request_t *t,
                   uint64_t seed, const char *reason, so_pb_routing_decision_t *out,
                   so_pb_skill_weight_t *top, so_pb_skill_weight_t **topp)
{
    const so_handbook_t *hb = e->hb;
    const so_decision_t *dec = &d->dec;
    out->request_id = t->request_id;
    out->episode_id = t->episode_id;
    out->turn_index = t->turn_index;
    out->handbook_version = (char *) e->version;
    out->chosen_agent = hb->agents[dec->chosen].id;
    out->reason = (char *) reason;
    out->strategy = (Skillorchestra__V1__RoutingDecision__Strategy) (dec->strategy + 1);
    out->lambda = dec->lambda;
    out->seed = seed;
    for (size_t i = 0; i < dec->n_top; i++) {
        skillorchestra__v1__skill_weight__init(&top[i]);
        top[i].skill_id = hb->skills[dec->top_skills[i]].id;
        top[i].weight = s_unit(dec->top_weights[i]);
        topp[i] = &top[i];
    }
    out->top_skills = topp;
    out->n_top_skills = dec->n_top;
    for (size_t a = 0; a < dec->n_agents; a++) {
        const so_agent_score_t *as = &dec->scores[a];
        so_pb_agent_score_t *sc = &d->sc[a];
        skillorchestra__v1__agent_score__init(sc);
        sc->agent_id = hb->agents[a].id;
        sc->score = isfinite(as->score) ? as->score : 0;
        sc->competence = s_unit(as->competence);
        sc->cost_usd = s_nonneg(as->cost);
        sc->cost_norm = s_nonneg(as->cost_norm);
        sc->eligible = as->eligible;
        sc->excluded_reason = (char *) (as->excluded ? as->excluded : "");
        sc->skills = &d->compp[a * SO_ROUTE_TOP];
        for (size_t k = 0; k < as->n_top && k < SO_ROUTE_TOP; k++) {
            const so_skill_comp_t *c = &as->top[k];
            so_pb_skill_competence_t *x = &d->comp[a * SO_ROUTE_TOP + k];
            skillorchestra__v1__skill_competence__init(x);
            x->skill_id = hb->skills[c->skill].id;
            x->weight = s_unit(c->weight);
            x->competence = s_unit(c->competence);
            x->successes = s_nonneg(c->successes);
            x->attempts = s_nonneg(c->attempts);
            x->backoff_level = (uint32_t) (c->backoff_level < 0 ? 0
                                           : c->backoff_level > SO_WIRE_MAX_BACKOFF
                                               ? SO_WIRE_MAX_BACKOFF
                                               : c->backoff_level);
            sc->skills[k] = x;
            sc->n_skills = k + 1;
        }
        d->scp[a] = sc;
    }
    out->scores = d->scp;
    out->n_scores = dec->n_agents;
}

/* The profile a turn names: the router's defaults when it names none, NULL
 * when it names one that is not configured. */
static const so_profile_t *s_profile(const so_decide_t *d, const so_pb_turn_request_t *t)
{
    if (!t->routing_profile || !*t->routing_profile)
        return &d->defaults;
    return so_profiles_get(d->o.profiles, t->routing_profile);
}

/* The dense demand of dm over hb's skills into d->vec.  0, or -1 with err. */
static int s_demand(so_decide_t *d, const so_hbcache_entry_t *e, const so_pb_skill_demand_t *dm,
                    char *err, size_t errlen)
{
    const so_handbook_t *hb = e->hb;
    memset(d->vec, 0, hb->n_skills * sizeof *d->vec);
    for (size_t i = 0; i < dm->n_skills; i++) {
        int s = so_handbook_skill_index(hb, dm->skills[i]->skill_id);
        if (s < 0)
            return so_err(err, errlen,
                          "SkillDemand.skills[%zu].skill_id: '%s' is not in "
                          "handbook %s",
                          i, dm->skills[i]->skill_id, e->version);
        d->vec[s] += dm->skills[i]->weight;
    }
    return 0;
}

/* d->excl: the turn's exclude_agents and the profile's.  An agent this
 * handbook lacks is excluded anyway. */
static void s_exclude(so_decide_t *d, const so_handbook_t *hb, const so_pb_turn_request_t *t,
                      const so_profile_t *p)
{
    memset(d->excl, 0, hb->n_agents);
    for (size_t i = 0; i < t->n_exclude_agents; i++) {
        int a = so_handbook_agent_index(hb, t->exclude_agents[i]);
        if (a >= 0)
            d->excl[a] = 1;
    }
    for (size_t i = 0; i < p->n_exclude; i++) {
        int a = so_handbook_agent_index(hb, p->exclude[i]);
        if (a >= 0)
            d->excl[a] = 1;
    }
}

/* The so_route request of a turn under profile p (d->excl filled). */
static void s_route_req(const so_decide_t *d, const so_pb_turn_request_t *t,
                        const so_profile_t *p, int mode, so_route_req_t *q)
{
    size_t bytes = 0;
    for (size_t i = 0; i < t->n_messages; i++)
        bytes += strlen(t->messages[i]->content);
    so_route_req_default(q);
    q->mode = mode;
    q->lambda = t->lambda_opt_case == SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA
                    ? t->lambda
                    : p->lambda;
    q->budget_usd = t->budget_usd;
    q->est_prompt_tokens = so_tokens_estimate(bytes); /* as so-eval */
    q->est_completion_tokens = t->max_completion_tokens;
    q->thompson = p->thompson;
    q->explore_floor = p->explore_floor;
    q->seed = so_decide_seed(d->o.seed, t->episode_id, t->turn_index);
    q->exclude = d->excl;
}

/* Sends the decision in d->dec; the reason names the stats and profile. */
static so_server_result_t s_reply(so_decide_t *d, void *sock, const so_wire_envelope_t *env,
                                  const so_hbcache_entry_t *e, const so_pb_turn_request_t *t,
                                  const so_profile_t *p, const so_route_req_t *q)
{
    char err[512], reason[SO_WIRE_MAX_NOTE];
    so_text_fmt_utf8(reason, sizeof reason, "%s; handbook %s stats seq %lld%s%s%s", d->dec.reason,
                     e->version, e->seq, *p->name ? "; routing_profile '" : "", p->name,
                     *p->name ? "'" : "");
    so_pb_routing_decision_t out = SKILLORCHESTRA__V1__ROUTING_DECISION__INIT;
    so_pb_skill_weight_t top[SO_ROUTE_TOP], *topp[SO_ROUTE_TOP];
    s_fill(d, e, t, q->seed, reason, &out, top, topp);
    if (so_wire_send(sock, env, SO_MSG_ROUTING_DECISION, &out, ZMQ_DONTWAIT, err, sizeof err) !=
        0) {
        if (errno == EINVAL) /* our own message failed validation: a bug */
            return s_fail(d, sock, env, t, SO_ERR(INTERNAL), err);
        so_warn("reply_failed", "request_id=%s error=\"%s\"", t->request_id, err);
        return SO_SERVER_NO_REPLY;
    }
    d->by_strategy[d->dec.strategy & 3]++;
    d->profiled += *p->name != 0;
    so_debug("decision",
             "request_id=%s episode_id=%s turn=%u version=%s seq=%lld agent=%s "
             "strategy=%s lambda=%g seed=%llu profile=%s",
             t->request_id, t->episode_id, t->turn_index, e->version, e->seq, out.chosen_agent,
             so_strategy_name(d->dec.strategy), q->lambda, (unsigned long long) q->seed,
             *p->name ? p->name : "-");
    return SO_SERVER_ANSWERED;
}

so_server_result_t so_decide_handle(void *arg, void *sock, const so_wire_envelope_t *env,
                                    void *msg)
{
    so_decide_t *d = arg;
    const so_pb_route_request_t *rr = msg;
    const so_pb_turn_request_t *t = rr->turn;
    const so_pb_skill_demand_t *dm = rr->demand;
    char err[512];
    so_hbcache_status_t st;
    int mode;

    /* so_wire checked presence, ids and ranges; the rest is about the
     * configuration and the handbook.  The skill ids belong to the demand's
     * version. */
    const so_profile_t *p = s_profile(d, t);
    if (!p) {
        d->profile_unknown++; // NOLINT(clang-analyzer-core.NullDereference): d is the handler's own state, never NULL
        so_text_fmt_utf8(err, sizeof err, "routing_profile '%s' is not configured (profiles: %s)",
                         t->routing_profile, so_profiles_names(d->o.profiles));
        return s_fail(d, sock, env, t, SO_ERR(INVALID_REQUEST), err);
    }
    if (t->handbook_version[0] && strcmp(t->handbook_version, dm->handbook_version) != 0) {
        snprintf(err, sizeof err, "turn pins handbook '%s' but the demand is of '%s'",
                 t->handbook_version, dm->handbook_version);
        return s_fail(d, sock, env, t, SO_ERR(INVALID_REQUEST), err);
    }
    const so_hbcache_entry_t *e = so_hbcache_get(d->cache, dm->handbook_version, &st, err,
                                                 sizeof err);
    if (!e)
        return s_fail(d, sock, env, t,
                      st == SO_HBCACHE_UNKNOWN ? SO_ERR(UNKNOWN_HANDBOOK) : SO_ERR(UNAVAILABLE),
                      err);
    const so_handbook_t *hb = e->hb;
    if (so_hbcache_mode(hb, t->mode, &mode, err, sizeof err) != 0)
        return s_fail(d, sock, env, t, SO_ERR(INVALID_REQUEST), err);
    s_reserve(d, hb->n_skills, hb->n_agents);
    if (s_demand(d, e, dm, err, sizeof err) != 0)
        return s_fail(d, sock, env, t, SO_ERR(INVALID_REQUEST), err);
    s_exclude(d, hb, t, p);

    so_route_req_t q;
    s_route_req(d, t, p, mode, &q);
    if (so_route(e->router, d->vec, &q, &d->dec) != 0)
        return s_fail(d, sock, env, t, SO_ERR(NO_ELIGIBLE_AGENT), d->dec.reason);
    if (d->dec.strategy == SO_STRATEGY_BUDGET_FALLBACK && !d->o.budget_fallback) {
        const so_agent_score_t *c = &d->dec.scores[d->dec.chosen];
        snprintf(err, sizeof err,
                 "budget $%.3g is below every eligible agent's expected cost "
                 "(cheapest: %s, $%.3g)",
                 t->budget_usd, hb->agents[d->dec.chosen].id, c->cost);
        return s_fail(d, sock, env, t, SO_ERR(BUDGET_EXHAUSTED), err);
    }
    return s_reply(d, sock, env, e, t, p, &q);
}

int so_decide_tick(void *arg)
{
    so_decide_t *d = arg;
    return so_hbcache_tick(d->cache);
}

void so_decide_stats(void *arg, char *buf, size_t len)
{
    so_decide_t *d = arg;
    so_hbcache_stats_t c;
    so_hbcache_stats(d->cache, &c);
    snprintf(
        buf, len,
        " greedy=%llu thompson=%llu explore=%llu budget_fallback=%llu no_eligible=%llu"
        " budget_exhausted=%llu unknown_handbook=%llu unavailable=%llu invalid=%llu"
        " profile_unknown=%llu profiled=%llu current=%s cached=%zu stats_reloads=%llu cache_misses=%llu"
        " redis_up=%d",
        (unsigned long long) d->by_strategy[SO_STRATEGY_GREEDY],
        (unsigned long long) d->by_strategy[SO_STRATEGY_THOMPSON],
        (unsigned long long) d->by_strategy[SO_STRATEGY_EXPLORE_UNIFORM],
        (unsigned long long) d->by_strategy[SO_STRATEGY_BUDGET_FALLBACK],
        (unsigned long long) d->by_code[SO_ERR(NO_ELIGIBLE_AGENT)],
        (unsigned long long) d->by_code[SO_ERR(BUDGET_EXHAUSTED)],
        (unsigned long long) d->by_code[SO_ERR(UNKNOWN_HANDBOOK)],
        (unsigned long long) d->by_code[SO_ERR(UNAVAILABLE)],
        (unsigned long long) d->by_code[SO_ERR(INVALID_REQUEST)],
        (unsigned long long) d->profile_unknown, (unsigned long long) d->profiled,
        so_hbcache_current(d->cache)[0] ? so_hbcache_current(d->cache) : "-", c.cached,
        (unsigned long long) c.reloads, (unsigned long long) c.misses, c.redis_up);
}
