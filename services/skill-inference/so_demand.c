/*
 * so_demand — TurnRequest → SkillDemand (see so_demand.h).
 *
 * The hot path allocates nothing of its own: the demand vector and the
 * SkillWeight list live in buffers that grow to the largest handbook seen;
 * only so_wire_send packs into a fresh buffer.
 */
#include "so_demand.h"
#include "so_sock.h"
#include "so_svc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Skillorchestra__V1__TurnRequest s_turn_t;
typedef Skillorchestra__V1__SkillDemand s_demand_t;
typedef Skillorchestra__V1__SkillWeight s_weight_t;

#define S_ERR(x) SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_##x
#define S_SRC(x) SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_##x

struct so_demand {
    so_hbcache_t *cache;
    double *vec;                /* [cap] dense demand */
    s_weight_t *w;              /* [cap] */
    s_weight_t **wp;            /* [cap] */
    size_t cap;
    uint64_t embedded, uniform, by_code[16];
};

so_demand_t *so_demand_new(so_hbcache_t *cache)
{
    so_demand_t *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    d->cache = cache;
    return d;
}

void so_demand_destroy(so_demand_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_demand_t *d = *self_p;
    free(d->vec);
    free(d->w);
    free(d->wp);
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
    d->vec = malloc(n * sizeof *d->vec);
    d->w = malloc(n * sizeof *d->w);
    d->wp = malloc(n * sizeof *d->wp);
    if (!d->vec || !d->w || !d->wp)
        abort();
    d->cap = n;
}

static so_server_result_t s_fail(so_demand_t *d, void *sock, const so_wire_envelope_t *env,
                                 const s_turn_t *t, Skillorchestra__V1__ErrorCode code,
                                 const char *msg)
{
    char err[256];
    d->by_code[(unsigned) code & 15]++;
    so_info("request_failed", "request_id=%s episode_id=%s code=%d error=\"%s\"", t->request_id,
            t->episode_id, (int) code, msg);
    if (so_sock_send_error(sock, env, t->request_id, t->episode_id, code, msg, err,
                           sizeof err) != 0) {
        so_warn("reply_failed", "request_id=%s error=\"%s\"", t->request_id, err);
        return SO_SERVER_NO_REPLY;
    }
    return SO_SERVER_ERROR_REPLY;
}

/* The text to infer from: the last user message, else the last message. */
static const char *s_text(const s_turn_t *t)
{
    for (size_t i = t->n_messages; i-- > 0;)
        if (t->messages[i]->role && strcmp(t->messages[i]->role, "user") == 0)
            return t->messages[i]->content;
    return t->n_messages ? t->messages[t->n_messages - 1]->content : "";
}

so_server_result_t so_demand_handle(void *arg, void *sock, const so_wire_envelope_t *env,
                                    void *msg)
{
    so_demand_t *d = arg;
    const s_turn_t *t = msg;
    char err[512];
    so_hbcache_status_t st;
    int mode;

    if (!t->episode_id || !*t->episode_id)
        return s_fail(d, sock, env, t, S_ERR(INVALID_REQUEST),
                      "TurnRequest.episode_id: empty (required by skill-inference)");
    const so_hbcache_entry_t *e = so_hbcache_get(d->cache, t->handbook_version, &st, err,
                                                 sizeof err);
    if (!e)
        return s_fail(d, sock, env, t,
                      st == SO_HBCACHE_UNKNOWN ? S_ERR(UNKNOWN_HANDBOOK) : S_ERR(UNAVAILABLE),
                      err);
    if (so_hbcache_mode(e->hb, t->mode, &mode, err, sizeof err) != 0)
        return s_fail(d, sock, env, t, S_ERR(INVALID_REQUEST), err);

    size_t S = e->hb->n_skills;
    s_reserve(d, S + 1);
    so_demand_source_t src = so_infer(e->infer, s_text(t), mode, d->vec);

    s_demand_t out = SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
    out.request_id = t->request_id;
    out.handbook_version = (char *) e->version;
    out.skills = d->wp;
    if (src == SO_DEMAND_UNIFORM_FALLBACK) {
        /* No skill matched: an empty list says "uniform over the mode" to
         * the router and credits no skill when the episode is learned. */
        out.source = S_SRC(UNIFORM_FALLBACK);
        d->uniform++;
    } else {
        out.source = S_SRC(EMBEDDED);
        d->embedded++;
        for (size_t s = 0; s < S; s++) {
            double w = d->vec[s];
            if (!(w > 0) || !isfinite(w))
                continue;
            s_weight_t *x = &d->w[out.n_skills];
            skillorchestra__v1__skill_weight__init(x);
            x->skill_id = e->hb->skills[s].id;
            x->weight = w > 1 ? 1 : w;
            d->wp[out.n_skills++] = x;
        }
    }
    if (so_wire_send(sock, env, SO_MSG_SKILL_DEMAND, &out, ZMQ_DONTWAIT, err, sizeof err) != 0) {
        if (errno == EINVAL)        /* our own message failed validation: a bug */
            return s_fail(d, sock, env, t, S_ERR(INTERNAL), err);
        so_warn("reply_failed", "request_id=%s error=\"%s\"", t->request_id, err);
        return SO_SERVER_NO_REPLY;
    }
    so_debug("demand", "request_id=%s version=%s source=%s skills=%zu", t->request_id,
             e->version, src == SO_DEMAND_UNIFORM_FALLBACK ? "uniform" : "embedded",
             out.n_skills);
    return SO_SERVER_ANSWERED;
}

int so_demand_tick(void *arg)
{
    so_demand_t *d = arg;
    return so_hbcache_tick(d->cache);
}

void so_demand_stats(void *arg, char *buf, size_t len)
{
    so_demand_t *d = arg;
    so_hbcache_stats_t c;
    so_hbcache_stats(d->cache, &c);
    snprintf(buf, len,
             " embedded=%llu uniform=%llu unknown_handbook=%llu unavailable=%llu invalid=%llu"
             " current=%s cached=%zu cache_misses=%llu loads=%llu redis_up=%d",
             (unsigned long long) d->embedded, (unsigned long long) d->uniform,
             (unsigned long long) d->by_code[S_ERR(UNKNOWN_HANDBOOK)],
             (unsigned long long) d->by_code[S_ERR(UNAVAILABLE)],
             (unsigned long long) d->by_code[S_ERR(INVALID_REQUEST)],
             so_hbcache_current(d->cache)[0] ? so_hbcache_current(d->cache) : "-", c.cached,
             (unsigned long long) c.misses, (unsigned long long) c.loads, c.redis_up);
}
