/*
 * so_demand — TurnRequest → SkillDemand (see so_demand.h).
 *
 * The embedded hot path allocates nothing of its own: the demand vector and
 * the SkillWeight list live in buffers that grow to the largest handbook
 * seen; only so_wire_send packs into a fresh buffer.  In llm mode each
 * request that goes to the LLM becomes a job holding copies of everything
 * its reply needs (envelope, ids, the embedded fallback), because the
 * handbook cache may drop the version before the answer comes back.
 */
#include "so_demand.h"
#include "wire/so_sock.h"
#include "base/so_alloc.h"
#include "base/so_pctl.h"
#include "base/so_svc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define S_SRC(x) SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_##x

#define S_MEMO 8        /* (version, mode) analysis prompts kept */
#define S_LAT_RING 1024 /* LLM call durations kept for the stats line */

/* The analysis prompt of one (version, mode): built once, copied per job. */
typedef struct {
    char version[SO_WIRE_MAX_ID + 1];
    int mode;
    char *system;
    size_t *idx; /* [n] the listed skills' indices */
    size_t n;
    uint64_t used; /* 0 = empty */
} s_memo_t;

struct so_demand {
    so_hbcache_t *cache;
    double *vec;               /* [cap] dense demand */
    so_pb_skill_weight_t *w;   /* [cap] */
    so_pb_skill_weight_t **wp; /* [cap] */
    so_llmcache_item_t *items; /* [cap] */
    size_t cap, n_w;
    uint64_t embedded, uniform, llm_demands, by_code[16];
    /* llm mode */
    so_llminfer_t *llm; /* NULL: embedded mode */
    so_llmcache_t *acache;
    so_skillprompt_opts_t popts;
    s_memo_t memo[S_MEMO];
    uint64_t memo_clock;
    uint64_t llm_ok, llm_cached, fallback[5]; /* fallback by so_llm_code_t */
    int64_t fallback_log_at;
    uint64_t fallback_suppressed;
    uint32_t lat_ms[S_LAT_RING];
    uint64_t n_lat;
};

so_demand_t *so_demand_new(so_hbcache_t *cache)
{
    so_demand_t *d = so_calloc(1, sizeof *d);
    d->cache = cache;
    return d;
}

void so_demand_use_llm(so_demand_t *d, so_llminfer_t *llm, so_llmcache_t *acache,
                       const so_skillprompt_opts_t *popts)
{
    d->llm = llm;
    d->acache = acache;
    d->popts = *popts;
}

void so_demand_destroy(so_demand_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_demand_t *d = *self_p;
    for (size_t i = 0; i < S_MEMO; i++) {
        free(d->memo[i].system);
        free(d->memo[i].idx);
    }
    free(d->vec);
    free(d->w);
    free(d->wp);
    free(d->items);
    free(d);
    *self_p = NULL;
}

static void s_reserve(so_demand_t *d, size_t n)
{
    if (n <= d->cap)
        return;
    free(d->vec);
    free(d->w);
    free(d->wp);
    free(d->items);
    d->vec = so_reallocarray(NULL, n, sizeof *d->vec);
    d->w = so_reallocarray(NULL, n, sizeof *d->w);
    d->wp = so_reallocarray(NULL, n, sizeof *d->wp);
    d->items = so_reallocarray(NULL, n, sizeof *d->items);
    d->cap = n;
}

static so_server_result_t s_fail_ids(so_demand_t *d, void *sock, const so_wire_envelope_t *env,
                                     const char *request_id, const char *episode_id,
                                     so_pb_error_code_t code, const char *msg)
{
    char err[256];
    d->by_code[(unsigned) code & 15]++;
    so_info("request_failed", "request_id=%s episode_id=%s code=%d error=\"%s\"", request_id,
            episode_id, (int) code, msg);
    if (so_sock_send_error(sock, env, request_id, episode_id, code, msg, err, sizeof err) != 0) {
        so_warn("reply_failed", "request_id=%s error=\"%s\"", request_id, err);
        return SO_SERVER_NO_REPLY;
    }
    return SO_SERVER_ERROR_REPLY;
}

static so_server_result_t s_fail(so_demand_t *d, void *sock, const so_wire_envelope_t *env,
                                 const so_pb_turn_request_t *t, so_pb_error_code_t code,
                                 const char *msg)
{
    return s_fail_ids(d, sock, env, t->request_id, t->episode_id, code, msg);
}

/* ---- building and sending a demand ------------------------------------- */

static void s_clear_weights(so_demand_t *d)
{
    d->n_w = 0;
}

/* Appends (id, w) when w is a positive finite weight (capped at 1). */
static void s_add_weight(so_demand_t *d, const char *id, double w)
{
    if (!(w > 0) || !isfinite(w) || d->n_w >= d->cap)
        return;
    so_pb_skill_weight_t *x = &d->w[d->n_w];
    skillorchestra__v1__skill_weight__init(x);
    x->skill_id = (char *) id;
    x->weight = w > 1 ? 1 : w;
    d->wp[d->n_w++] = x;
}

static const char *s_source_name(int source)
{
    return source == S_SRC(LLM) ? "llm" : source == S_SRC(EMBEDDED) ? "embedded" : "uniform";
}

/* Sends the demand held in d->w (a uniform demand carries no skills). */
static so_server_result_t s_send(so_demand_t *d, void *sock, const so_wire_envelope_t *env,
                                 const char *request_id, const char *episode_id,
                                 const char *version, int source)
{
    char err[512];
    so_pb_skill_demand_t out = SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
    out.request_id = (char *) request_id;
    out.handbook_version = (char *) version;
    out.source = source;
    out.skills = d->wp;
    out.n_skills = source == S_SRC(UNIFORM_FALLBACK) ? 0 : d->n_w;
    if (source == S_SRC(UNIFORM_FALLBACK))
        d->uniform++;
    else if (source == S_SRC(LLM))
        d->llm_demands++;
    else
        d->embedded++;
    if (so_wire_send(sock, env, SO_MSG_SKILL_DEMAND, &out, ZMQ_DONTWAIT, err, sizeof err) != 0) {
        if (errno == EINVAL) /* our own message failed validation: a bug */
            return s_fail_ids(d, sock, env, request_id, episode_id, SO_ERR(INTERNAL), err);
        so_warn("reply_failed", "request_id=%s error=\"%s\"", request_id, err);
        return SO_SERVER_NO_REPLY;
    }
    so_debug("demand", "request_id=%s version=%s source=%s skills=%zu", request_id, version,
             s_source_name(source), out.n_skills);
    return SO_SERVER_ANSWERED;
}

/* The embedded demand in d->vec (source src of so_infer). */
static so_server_result_t s_send_embedded(so_demand_t *d, void *sock,
                                          const so_wire_envelope_t *env,
                                          const so_pb_turn_request_t *t,
                                          const so_hbcache_entry_t *e, so_demand_source_t src)
{
    s_clear_weights(d);
    if (src == SO_DEMAND_UNIFORM_FALLBACK)
        /* No skill matched: an empty list says "uniform over the mode" to
         * the router and credits no skill when the episode is learned. */
        return s_send(d, sock, env, t->request_id, t->episode_id, e->version,
                      S_SRC(UNIFORM_FALLBACK));
    for (size_t s = 0; s < e->hb->n_skills; s++)
        s_add_weight(d, e->hb->skills[s].id, d->vec[s]);
    return s_send(d, sock, env, t->request_id, t->episode_id, e->version, S_SRC(EMBEDDED));
}

/* The text to infer from: the last user message, else the last message. */
static const char *s_text(const so_pb_turn_request_t *t)
{
    for (size_t i = t->n_messages; i-- > 0;)
        if (t->messages[i]->role && strcmp(t->messages[i]->role, "user") == 0)
            return t->messages[i]->content;
    return t->n_messages ? t->messages[t->n_messages - 1]->content : "";
}

/* ---- llm mode ------------------------------------------------------------ */

/* The analysis prompt of (version, mode), built on first use. */
static const s_memo_t *s_memo(so_demand_t *d, const so_hbcache_entry_t *e, int mode)
{
    s_memo_t *pick = &d->memo[0];
    for (size_t i = 0; i < S_MEMO; i++) {
        s_memo_t *m = &d->memo[i];
        if (m->used && m->mode == mode && strcmp(m->version, e->version) == 0) {
            m->used = ++d->memo_clock;
            return m;
        }
        if (!m->used || (pick->used && m->used < pick->used))
            pick = m;
    }
    free(pick->system);
    free(pick->idx);
    pick->idx = so_reallocarray(NULL, e->hb->n_skills + 1, sizeof *pick->idx);
    pick->system = so_skillprompt_analysis(e->hb, mode, &d->popts, pick->idx, &pick->n);
    snprintf(pick->version, sizeof pick->version, "%s", e->version);
    pick->mode = mode;
    pick->used = ++d->memo_clock;
    return pick;
}

/* One fallback: counted always, logged at most once a second. */
static void s_fallback(so_demand_t *d, so_llm_code_t code, const char *request_id,
                       const char *why)
{
    d->fallback[code <= SO_LLM_BUSY ? code : SO_LLM_ERROR]++;
    int64_t now = so_now_ms();
    if (d->fallback_log_at && now - d->fallback_log_at < 1000) {
        d->fallback_suppressed++;
        return;
    }
    so_warn("llm_fallback", "reason=%s request_id=%s error=\"%s\" suppressed=%llu",
            so_llm_code_name(code), request_id, why, (unsigned long long) d->fallback_suppressed);
    d->fallback_log_at = now;
    d->fallback_suppressed = 0;
}

/* Asks the LLM about the turn (d->vec holds its embedded demand, src its
 * source).  Returns 1 with *r when the request was dealt with (deferred, or
 * answered from the cache, or answered with the embedded demand because the
 * queue is full); 0 when there is nothing to ask (no skills in the mode). */
static int s_ask_llm(so_demand_t *d, void *sock, const so_wire_envelope_t *env,
                     const so_pb_turn_request_t *t, const so_hbcache_entry_t *e, int mode,
                     const char *text, so_demand_source_t src, so_server_result_t *r)
{
    const s_memo_t *m = s_memo(d, e, mode);
    if (m->n == 0)
        return 0;
    so_skillprompt_key_t key = so_skillprompt_key(e->version, mode, text);
    size_t n = so_llmcache_get(d->acache, key, so_now_ms(), d->items, d->cap);
    if (n > 0) {
        s_clear_weights(d);
        for (size_t k = 0; k < n; k++)
            if (d->items[k].skill < e->hb->n_skills)
                s_add_weight(d, e->hb->skills[d->items[k].skill].id, d->items[k].weight);
        if (d->n_w > 0) {
            d->llm_cached++;
            *r = s_send(d, sock, env, t->request_id, t->episode_id, e->version, S_SRC(LLM));
            return 1;
        }
    }
    so_llmjob_t *j = so_llmjob_new(m->n);
    j->system = so_strdup(m->system ? m->system : "");
    j->user = so_skillprompt_turn(text, &d->popts);
    for (size_t k = 0; k < m->n; k++) {
        j->ids[k] = so_strdup(e->hb->skills[m->idx[k]].id);
        j->skill[k] = (uint32_t) m->idx[k];
        j->fallback[k] = d->vec[m->idx[k]];
    }
    j->fallback_uniform = src == SO_DEMAND_UNIFORM_FALLBACK;
    j->env = *env;
    j->request_id = so_strdup(t->request_id ? t->request_id : "");
    j->episode_id = so_strdup(t->episode_id ? t->episode_id : "");
    j->version = so_strdup(e->version ? e->version : "");
    j->key_h1 = key.h1;
    j->key_h2 = key.h2;
    j->received_us = so_server_now_us();
    if (so_llminfer_submit(d->llm, j) != 0) {
        char why[96];
        snprintf(why, sizeof why, "%zu analyses in flight (llm.max_inflight)",
                 so_llminfer_opts(d->llm)->max_inflight);
        so_llmjob_free(&j);
        s_fallback(d, SO_LLM_BUSY, t->request_id, why);
        *r = s_send_embedded(d, sock, env, t, e, src);
        return 1;
    }
    *r = SO_SERVER_DEFERRED;
    return 1;
}

/* Answers a job that came back: the LLM's analysis, or its fallback. */
static so_server_result_t s_answer_job(so_demand_t *d, void *sock, const so_llmjob_t *j)
{
    s_reserve(d, j->n_ids + 1);
    s_clear_weights(d);
    if (j->code == SO_LLM_OK) {
        size_t n = 0;
        for (size_t k = 0; k < j->n_ids; k++) {
            s_add_weight(d, j->ids[k], j->weights[k]);
            if (j->weights[k] > 0 && isfinite(j->weights[k]))
                d->items[n++] = (so_llmcache_item_t){ j->skill[k], j->weights[k] };
        }
        so_skillprompt_key_t key = { j->key_h1, j->key_h2 };
        so_llmcache_put(d->acache, key, so_now_ms(), d->items, n);
        d->llm_ok++;
        d->lat_ms[d->n_lat++ % S_LAT_RING] = (uint32_t) (j->llm_ms > 0 ? j->llm_ms : 0);
        return s_send(d, sock, &j->env, j->request_id, j->episode_id, j->version, S_SRC(LLM));
    }
    s_fallback(d, j->code, j->request_id, j->error);
    if (j->fallback_uniform)
        return s_send(d, sock, &j->env, j->request_id, j->episode_id, j->version,
                      S_SRC(UNIFORM_FALLBACK));
    for (size_t k = 0; k < j->n_ids; k++)
        s_add_weight(d, j->ids[k], j->fallback[k]);
    return s_send(d, sock, &j->env, j->request_id, j->episode_id, j->version, S_SRC(EMBEDDED));
}

size_t so_demand_deferred(void *arg, so_server_t *srv, void *sock, int all)
{
    so_demand_t *d = arg;
    if (!d->llm)
        return 0;
    so_llmjob_t *j;
    while ((j = so_llminfer_next(d->llm, so_now_ms(), all))) {
        so_server_finish(srv, s_answer_job(d, sock, j), j->received_us);
        so_llminfer_release(d->llm, &j);
    }
    return so_llminfer_pending(d->llm);
}

/* ---- the handler ------------------------------------------------------------ */

so_server_result_t so_demand_handle(void *arg, void *sock, const so_wire_envelope_t *env,
                                    void *msg)
{
    so_demand_t *d = arg;
    const so_pb_turn_request_t *t = msg;
    char err[512];
    so_hbcache_status_t st;
    int mode;

    if (!t->episode_id || !*t->episode_id)
        return s_fail(d, sock, env, t, SO_ERR(INVALID_REQUEST),
                      "TurnRequest.episode_id: empty (required by skill-inference)");
    const so_hbcache_entry_t *e = so_hbcache_get(d->cache, t->handbook_version, &st, err,
                                                 sizeof err);
    if (!e)
        return s_fail(d, sock, env, t,
                      st == SO_HBCACHE_UNKNOWN ? SO_ERR(UNKNOWN_HANDBOOK) : SO_ERR(UNAVAILABLE),
                      err);
    if (so_hbcache_mode(e->hb, t->mode, &mode, err, sizeof err) != 0)
        return s_fail(d, sock, env, t, SO_ERR(INVALID_REQUEST), err);

    s_reserve(d, e->hb->n_skills + 1);
    const char *text = s_text(t);
    /* Computed in llm mode too: it is the fallback, and costs microseconds. */
    so_demand_source_t src = so_infer(e->infer, text, mode, d->vec);
    so_server_result_t r;
    if (d->llm && text && *text && s_ask_llm(d, sock, env, t, e, mode, text, src, &r))
        return r;
    return s_send_embedded(d, sock, env, t, e, src);
}

int so_demand_tick(void *arg)
{
    so_demand_t *d = arg;
    int ms = so_hbcache_tick(d->cache);
    if (d->llm) {
        long due = so_llminfer_due_ms(d->llm, so_now_ms());
        if (due >= 0 && due < ms)
            ms = (int) due;
    }
    return ms;
}

void so_demand_stats(void *arg, char *buf, size_t len)
{
    so_demand_t *d = arg;
    so_hbcache_stats_t c;
    so_hbcache_stats(d->cache, &c);
    int n = snprintf(
        buf, len,
        " embedded=%llu uniform=%llu unknown_handbook=%llu unavailable=%llu invalid=%llu"
        " current=%s cached=%zu cache_misses=%llu loads=%llu redis_up=%d",
        (unsigned long long) d->embedded, (unsigned long long) d->uniform,
        (unsigned long long) d->by_code[SO_ERR(UNKNOWN_HANDBOOK)],
        (unsigned long long) d->by_code[SO_ERR(UNAVAILABLE)],
        (unsigned long long) d->by_code[SO_ERR(INVALID_REQUEST)],
        so_hbcache_current(d->cache)[0] ? so_hbcache_current(d->cache) : "-", c.cached,
        (unsigned long long) c.misses, (unsigned long long) c.loads, c.redis_up);
    if (!d->llm || n < 0 || (size_t) n >= len)
        return;
    uint32_t p50, p99;
    so_pctl_u32(d->lat_ms, d->n_lat, S_LAT_RING, &p50, &p99);
    so_llmcache_stats_t cs;
    so_llmcache_stats(d->acache, &cs);
    snprintf(buf + n, len - (size_t) n,
             " llm=%llu llm_ok=%llu llm_cached=%llu llm_fallback_timeout=%llu"
             " llm_fallback_bad_output=%llu llm_fallback_error=%llu llm_fallback_busy=%llu"
             " llm_pending=%zu llm_p50_ms=%u llm_p99_ms=%u llm_cache_entries=%zu",
             (unsigned long long) d->llm_demands, (unsigned long long) d->llm_ok,
             (unsigned long long) d->llm_cached, (unsigned long long) d->fallback[SO_LLM_TIMEOUT],
             (unsigned long long) d->fallback[SO_LLM_BAD_OUTPUT],
             (unsigned long long) d->fallback[SO_LLM_ERROR],
             (unsigned long long) d->fallback[SO_LLM_BUSY], so_llminfer_pending(d->llm), p50, p99,
             cs.entries);
}
