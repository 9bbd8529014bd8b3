/*
 * so_watch — see so_watch.h.
 *
 * The thread owns its so_hbwatch (hb:current, the Redis connection and
 * the outage log lines); everything readers see sits in the struct under mu
 * and is copied out.
 */
#include "so_watch.h"
#include "store/so_hbwatch.h"
#include "store/so_store.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_svc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char version[129];
    so_watch_agent_t *agents;
    size_t n;
    uint64_t used; /* LRU tick */
} s_book_t;

struct so_watch {
    so_watch_opts_t o;
    char *url, *prefix;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop; /* under mu */
    /* under mu: */
    int redis_up;
    int64_t last_ok;
    char current[129];
    s_book_t books[SO_WATCH_VERSIONS];
    uint64_t tick;
    char wanted[129]; /* a version a reply named that is not held */
    /* thread only: */
    so_hbwatch_t *hw;
};

static s_book_t *s_find(so_watch_t *w, const char *version)
{
    for (int i = 0; i < SO_WATCH_VERSIONS; i++)
        if (w->books[i].agents && strcmp(w->books[i].version, version) == 0)
            return &w->books[i];
    return NULL;
}

/* Loads a version's agents (not under mu: Redis may be slow).  0 or -1. */
static int s_load(so_watch_t *w, const char *version, so_watch_agent_t **out, size_t *n)
{
    char err[512];
    so_store_t *s = so_hbwatch_store(w->hw);
    so_handbook_t *hb = s ? so_store_get_handbook(s, version, err, sizeof err) : NULL;
    if (!s)
        return -1;
    if (!hb) {
        so_warn("handbook_load_failed", "version=%s error=\"%s\"", version, err);
        return -1;
    }
    so_watch_agent_t *a = so_calloc(hb->n_agents ? hb->n_agents : 1, sizeof *a);
    for (size_t i = 0; i < hb->n_agents; i++) {
        const so_agent_t *g = &hb->agents[i];
        snprintf(a[i].id, sizeof a[i].id, "%s", g->id);
        snprintf(a[i].model, sizeof a[i].model, "%s", g->model && *g->model ? g->model : g->id);
        a[i].price_in = g->price_in;
        a[i].price_out = g->price_out;
        a[i].context_limit = g->context_limit;
        a[i].available = g->available;
    }
    *out = a;
    *n = hb->n_agents;
    so_info("handbook_loaded", "version=%s agents=%zu skills=%zu", version, hb->n_agents,
            hb->n_skills);
    so_handbook_destroy(&hb);
    return 0;
}

/* Keeps a loaded version, evicting the least recently used one. */
static void s_keep(so_watch_t *w, const char *version, so_watch_agent_t *agents, size_t n)
{
    pthread_mutex_lock(&w->mu);
    s_book_t *b = s_find(w, version);
    if (!b) {
        b = &w->books[0];
        for (int i = 1; i < SO_WATCH_VERSIONS; i++)
            if (!w->books[i].agents || (b->agents && w->books[i].used < b->used))
                b = &w->books[i];
    }
    free(b->agents);
    snprintf(b->version, sizeof b->version, "%s", version);
    b->agents = agents;
    b->n = n;
    b->used = ++w->tick;
    if (strcmp(w->wanted, version) == 0)
        w->wanted[0] = '\0';
    pthread_mutex_unlock(&w->mu);
}

static void s_poll(so_watch_t *w)
{
    char version[129] = "";
    int changed = so_hbwatch_poll(w->hw);
    int up = changed >= 0;
    so_hbwatch_done(w->hw, up);
    if (up)
        snprintf(version, sizeof version, "%s", so_hbwatch_current(w->hw));
    pthread_mutex_lock(&w->mu);
    w->redis_up = up;
    if (up) {
        w->last_ok = so_now_ms();
        if (strcmp(w->current, version) != 0)
            so_info("handbook_version", "current=%s previous=%s", version[0] ? version : "(none)",
                    w->current[0] ? w->current : "(none)");
        snprintf(w->current, sizeof w->current, "%s", version);
    }
    /* What to load: the current version, else a version a reply named. */
    char load[129] = "";
    if (up && version[0] && !s_find(w, version))
        snprintf(load, sizeof load, "%s", version);
    else if (up && w->wanted[0] && !s_find(w, w->wanted))
        snprintf(load, sizeof load, "%s", w->wanted);
    if (load[0] && strcmp(load, w->wanted) == 0)
        w->wanted[0] = '\0'; /* one try per request for it */
    pthread_mutex_unlock(&w->mu);
    so_watch_agent_t *agents = NULL;
    size_t n = 0;
    if (load[0] && s_load(w, load, &agents, &n) == 0)
        s_keep(w, load, agents, n);
}

static void *s_run(void *arg)
{
    so_watch_t *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        s_poll(w);
        pthread_mutex_lock(&w->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += w->o.refresh_ms / 1000;
        until.tv_nsec += (long) (w->o.refresh_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
            if (w->wanted[0])
                break; /* a reply named a version we lack: load it now */
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

so_watch_t *so_watch_new(const so_watch_opts_t *o, char *err, size_t errlen)
{
    so_watch_t *w = so_calloc(1, sizeof *w);
    w->o = *o;
    if (w->o.refresh_ms < 10)
        w->o.refresh_ms = 10;
    w->url = so_strdup(o->redis_url ? o->redis_url : "redis://127.0.0.1:6379");
    w->prefix = so_strdup(o->prefix ? o->prefix : "so:");
    so_hbwatch_opts_t wo;
    so_hbwatch_opts_default(&wo);
    wo.redis_url = w->url;
    wo.redis_prefix = w->prefix;
    wo.redis_timeout_ms = w->o.timeout_ms;
    wo.refresh_ms = w->o.refresh_ms;
    wo.backoff_max_ms = w->o.refresh_ms; /* the thread polls every refresh_ms */
    wo.log_first = 1;
    w->hw = so_hbwatch_new(&wo);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, s_run, w) != 0) {
        so_err(err, errlen, "cannot start the Redis watch thread");
        so_watch_destroy(&w);
        return NULL;
    }
    w->started = 1;
    return w;
}

void so_watch_destroy(so_watch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_watch_t *w = *self_p;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->thread, NULL);
    so_hbwatch_destroy(&w->hw);
    for (int i = 0; i < SO_WATCH_VERSIONS; i++)
        free(w->books[i].agents);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->url);
    free(w->prefix);
    free(w);
    *self_p = NULL;
}

void so_watch_status(so_watch_t *w, so_watch_status_t *out)
{
    pthread_mutex_lock(&w->mu);
    out->redis_up = w->redis_up;
    out->last_ok_ms = w->last_ok;
    snprintf(out->version, sizeof out->version, "%s", w->current);
    s_book_t *b = w->current[0] ? s_find(w, w->current) : NULL;
    out->n_agents = b ? b->n : 0;
    pthread_mutex_unlock(&w->mu);
}

int so_watch_agents(so_watch_t *w, char *version, size_t vlen, so_watch_agent_t **agents,
                    size_t *n)
{
    *agents = NULL;
    *n = 0;
    pthread_mutex_lock(&w->mu);
    s_book_t *b = w->current[0] ? s_find(w, w->current) : NULL;
    int rc = -1;
    if (b) {
        *agents = so_calloc(b->n ? b->n : 1, sizeof **agents);
        memcpy(*agents, b->agents, b->n * sizeof **agents);
        *n = b->n;
        snprintf(version, vlen, "%s", b->version);
        b->used = ++w->tick;
        rc = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int so_watch_model(so_watch_t *w, const char *version, const char *agent, char *buf, size_t len)
{
    int rc = -1;
    pthread_mutex_lock(&w->mu);
    s_book_t *b = s_find(w, version);
    if (b) {
        b->used = ++w->tick;
        for (size_t i = 0; i < b->n; i++)
            if (strcmp(b->agents[i].id, agent) == 0) {
                snprintf(buf, len, "%s", b->agents[i].model);
                rc = 0;
                break;
            }
    } else if (*version && strlen(version) < sizeof w->wanted) {
        snprintf(w->wanted, sizeof w->wanted, "%s", version);
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}
