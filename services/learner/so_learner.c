/*
 * so_learner — consume the episode log, apply, acknowledge, refine
 * (see so_learner.h).  This file: options, the connection and the loop;
 * so_learner_batch.c reads and applies, so_learner_refine.c refines.
 *
 * One connection (so_store_t) does everything, through so_store functions
 * only: the learner sends no Redis command of its own.
 *
 * A batch is all-or-nothing with respect to acknowledgement: if Redis fails
 * anywhere between the read and the XACK, nothing of the batch is
 * acknowledged, and the entries come back through this consumer's pending
 * list (read from id 0 after the reconnect) or, if this process dies,
 * through another learner's XAUTOCLAIM.  Re-applying is a no-op.
 */
#include "so_learner_int.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_RECOVER_ROUNDS 1000 /* own pending batches read per step at most */
#define S_BACKOFF_MIN_MS 100
#define S_NEG_TTL_MS 5000 /* an unknown version is asked for again after */

void so_learner_opts_default(so_learner_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->redis_url = "redis://127.0.0.1:6379";
    o->redis_prefix = "so:";
    o->redis_timeout_ms = 2000;
    o->group = "learners";
    o->batch = 100;
    o->block_ms = 500;
    o->claim_min_idle_ms = 30000;
    o->claim_every_ms = 5000;
    o->cache_versions = 8;
    o->cache_ttl_ms = 60000;
    o->dead_maxlen = 100000;
    o->backoff_max_ms = 5000;
    o->stats_ms = 10000;
    o->refine_every = 500;
    o->refine_check_ms = 1000;
    o->refine_lock_ttl_ms = 30000;
    o->refine_always_publish = 0;
    so_refine_opts_default(&o->merge);
}

int so_learner_config(const so_config_t *cfg, so_learner_opts_t *o, char *err, size_t errlen)
{
    long v;
    double d;
    o->redis_url = so_config_get(cfg, "redis.url", o->redis_url);
    o->redis_prefix = so_config_get(cfg, "redis.prefix", o->redis_prefix);
    o->group = so_config_get(cfg, "group", o->group);
    const char *id = so_config_get(cfg, "learner.id", NULL);
    if (id && (!*id || strlen(id) >= sizeof o->consumer))
        return so_err(err, errlen, "learner.id: want 1..%zu bytes", sizeof o->consumer - 1);
    if (id)
        snprintf(o->consumer, sizeof o->consumer, "%s", id);
    if (!*o->group || strlen(o->group) > SO_WIRE_MAX_ID)
        return so_err(err, errlen, "group: want 1..%d bytes", SO_WIRE_MAX_ID);
#define S_INT(key, field, min, max) \
    do { \
        if (so_config_long(cfg, key, (long) o->field, min, max, &v, err, errlen) != 0) \
            return -1; \
        o->field = (int) v; \
    } while (0)
    S_INT("redis.timeout_ms", redis_timeout_ms, 1, 600000);
    S_INT("batch", batch, 1, 10000);
    S_INT("block_ms", block_ms, 1, 60000);
    S_INT("claim.min_idle_ms", claim_min_idle_ms, 1, 86400000);
    S_INT("claim.every_ms", claim_every_ms, 10, 86400000);
    S_INT("cache.ttl_ms", cache_ttl_ms, 0, 86400000);
    S_INT("backoff_max_ms", backoff_max_ms, S_BACKOFF_MIN_MS, 3600000);
    S_INT("stats_ms", stats_ms, 0, 86400000);
    S_INT("refine.check_ms", refine_check_ms, 10, 86400000);
    S_INT("refine.lock_ttl_ms", refine_lock_ttl_ms, 100, 3600000);
    S_INT("refine.always_publish", refine_always_publish, 0, 1);
#undef S_INT
    if (so_config_long(cfg, "cache.versions", (long) o->cache_versions, 1, 1024, &v, err,
                       errlen) != 0)
        return -1;
    o->cache_versions = (size_t) v;
    if (so_config_long(cfg, "dead.maxlen", o->dead_maxlen, 1, 1000000000L, &v, err, errlen) != 0)
        return -1;
    o->dead_maxlen = v;
    if (so_config_long(cfg, "refine.every_episodes", o->refine_every, 0, 1000000000L, &v, err,
                       errlen) != 0)
        return -1;
    o->refine_every = v;
    if (so_config_double(cfg, "refine.alpha", o->merge.alpha, 0, 1, &d, err, errlen) != 0)
        return -1;
    o->merge.alpha = d;
    if (so_config_double(cfg, "refine.min_attempts", o->merge.min_attempts, 0, 1e12, &d, err,
                         errlen) != 0)
        return -1;
    o->merge.min_attempts = d;
    if (so_config_long(cfg, "refine.max_merges", (long) o->merge.max_merges, 0, 100000, &v, err,
                       errlen) != 0)
        return -1;
    o->merge.max_merges = (size_t) v;
    return 0;
}

so_learner_t *so_learner_new(const so_learner_opts_t *o, char *err, size_t errlen)
{
    so_learner_t *l = so_calloc(1, sizeof *l);
    l->o = *o;
    if (!*l->o.consumer)
        snprintf(l->o.consumer, sizeof l->o.consumer, "%s", so_instance());
    /* The connection's read timeout must outlast a blocking read. */
    if (l->o.redis_timeout_ms < l->o.block_ms + 1000)
        l->o.redis_timeout_ms = l->o.block_ms + 1000;
    l->url = so_strdup(o->redis_url ? o->redis_url : "");
    l->prefix = so_strdup(o->redis_prefix ? o->redis_prefix : "");
    l->group = so_strdup(o->group ? o->group : "");
    l->o.redis_url = l->url;
    l->o.redis_prefix = l->prefix;
    l->o.group = l->group;
    if (snprintf(l->k_log, sizeof l->k_log, "%sepisodes", l->prefix) >= (int) sizeof l->k_log ||
        snprintf(l->k_dead, sizeof l->k_dead, "%sepisodes:dead", l->prefix) >=
            (int) sizeof l->k_dead) {
        so_err(err, errlen, "redis.prefix too long");
        so_learner_destroy(&l);
        return NULL;
    }
    l->backoff_ms = S_BACKOFF_MIN_MS;
    l->recover = 1;
    l->was_up = 1; /* so that a first failure is logged */
    int64_t now = so_now_ms();
    l->next_stats = now + o->stats_ms;
    l->last_stats_ms = now;
    return l;
}

void so_learner_destroy(so_learner_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_learner_t *l = *self_p;
    so_hbcache_destroy(&l->books);
    so_hbwatch_destroy(&l->watch);
    so_store_destroy(&l->store);
    free(l->url);
    free(l->prefix);
    free(l->group);
    free(l);
    *self_p = NULL;
}

void so_learner_stats(const so_learner_t *l, so_learner_stats_t *out)
{
    *out = l->st;
}

/* ------------------------------------------------------------------ */
/* Connection                                                         */

void so_lrn_down(so_learner_t *l)
{
    l->up = 0;
    l->st.redis_errors++;
    if (l->was_up)
        so_warn("redis_down", "error=\"%s\"", l->err);
    l->was_up = 0;
}

/* The handbook cache: a version used in the current batch is neither
 * evicted nor read again before the batch ends (so_hbcache_hold); others
 * are read again after cache_ttl_ms (0: at their next use), unknown ones
 * after S_NEG_TTL_MS. */
static so_hbcache_t *s_books_new(so_learner_t *l)
{
    so_hbcache_opts_t o;
    char err[256];
    so_hbcache_opts_default(&o);
    o.redis_url = l->url;
    o.redis_prefix = l->prefix;
    o.store = l->store;
    o.max_versions = l->o.cache_versions;
    o.reload_ms = l->o.cache_ttl_ms > 0 ? l->o.cache_ttl_ms : 1;
    o.negative_ttl_ms = S_NEG_TTL_MS;
    o.log_unknown = 1;
    so_hbcache_t *c = so_hbcache_new(&o, err, sizeof err);
    if (!c)
        so_oom(err); /* options checked by so_learner_config */
    return c;
}

/* Connects if needed and makes sure the consumer group exists (created at
 * the start of the log, so a new group applies every logged episode). */
static int s_ready(so_learner_t *l)
{
    if (l->up)
        return 0;
    if (!l->store) {
        l->store = so_store_connect(l->url, l->prefix, l->o.redis_timeout_ms, l->err,
                                    sizeof l->err);
        if (!l->store) {
            so_lrn_down(l);
            return -1;
        }
        so_hbwatch_opts_t wo;
        so_hbwatch_opts_default(&wo);
        wo.store = l->store;
        wo.log = 0;
        l->watch = so_hbwatch_new(&wo);
        l->books = s_books_new(l);
    }
    if (so_store_group_create(l->store, l->group, l->err, sizeof l->err) < 0) {
        so_lrn_down(l);
        return -1;
    }
    l->up = 1;
    l->recover = 1;
    l->backoff_ms = S_BACKOFF_MIN_MS;
    so_info("redis_up", "url=%s group=%s consumer=%s stream=%s", l->url, l->group, l->o.consumer,
            l->k_log);
    l->was_up = 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* The loop                                                           */

static void s_stats_line(so_learner_t *l, int64_t now)
{
    double secs = (double) (now - l->last_stats_ms) / 1000.0;
    so_hbcache_stats_t hs = { 0 };
    if (l->books)
        so_hbcache_stats(l->books, &hs);
    double rate = secs > 0 ? (double) (l->st.applied - l->applied_at_last_stats) / secs : 0;
    so_info("stats",
            "read=%" PRIu64 " applied=%" PRIu64 " duplicates=%" PRIu64 " dead=%" PRIu64
            " claimed=%" PRIu64 " batches=%" PRIu64 " redis_errors=%" PRIu64 " refines=%" PRIu64
            " published=%" PRIu64 " applied_per_s=%.1f cached_versions=%zu redis_up=%d",
            l->st.read, l->st.applied, l->st.duplicates, l->st.dead, l->st.claimed, l->st.batches,
            l->st.redis_errors, l->st.refines, l->st.published, rate, hs.cached, l->up);
    l->applied_at_last_stats = l->st.applied;
    l->last_stats_ms = now;
}

int so_learner_step(so_learner_t *l)
{
    int64_t now = so_now_ms();
    if (l->o.stats_ms > 0 && now >= l->next_stats) {
        s_stats_line(l, now);
        l->next_stats = now + l->o.stats_ms;
    }
    if (s_ready(l) < 0)
        return -1;
    int handled = 0;
    /* What was delivered to us and not acknowledged (a failure mid-batch,
     * or a restart under a fixed learner.id) comes first. */
    for (int i = 0; l->recover && i < S_RECOVER_ROUNDS; i++) {
        int n = so_lrn_read(l, "0", 0);
        if (n < 0)
            return -1;
        handled += n;
        if (n == 0)
            l->recover = 0;
    }
    if (now >= l->next_claim) {
        int n = so_lrn_claim(l);
        if (n < 0)
            return -1;
        handled += n;
        l->next_claim = now + l->o.claim_every_ms;
    }
    if (l->o.refine_every > 0 && now >= l->next_refine) {
        if (so_lrn_refine_tick(l) < 0) {
            if (l->up)
                so_lrn_down(l);
            return -1;
        }
        l->next_refine = now + l->o.refine_check_ms;
    }
    int n = so_lrn_read(l, ">", 1);
    if (n < 0)
        return -1;
    return handled + n;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

int so_learner_run(so_learner_t *l)
{
    so_info("start",
            "consumer=%s group=%s stream=%s batch=%d block_ms=%d claim_min_idle_ms=%d "
            "refine_every=%ld",
            l->o.consumer, l->group, l->k_log, l->o.batch, l->o.block_ms, l->o.claim_min_idle_ms,
            l->o.refine_every);
    while (!so_stopping()) {
        if (so_learner_step(l) >= 0)
            continue;
        /* Redis is away: wait (interruptibly), then try again. */
        int64_t until = so_now_ms() + l->backoff_ms;
        while (!so_stopping() && so_now_ms() < until)
            s_sleep_ms(20);
        l->backoff_ms = l->backoff_ms * 2 > l->o.backoff_max_ms ? l->o.backoff_max_ms
                                                                : l->backoff_ms * 2;
    }
    s_stats_line(l, so_now_ms());
    so_info("stop", "consumer=%s applied=%" PRIu64 " dead=%" PRIu64, l->o.consumer, l->st.applied,
            l->st.dead);
    return 0;
}
