/*
 * so_learner — consume the episode log, apply, acknowledge, refine
 * (see so_learner.h).
 *
 * One connection (so_store_t) does everything; stream commands go through
 * its raw hiredis context after so_store_ensure, so a reconnect made by any
 * so_store call serves them too.  Every reply is checked for shape before
 * use: the stream is writable by anyone with access to Redis.
 *
 * A batch is all-or-nothing with respect to acknowledgement: if Redis fails
 * anywhere between the read and the XACK, nothing of the batch is
 * acknowledged, and the entries come back through this consumer's pending
 * list (read from id 0 after the reconnect) or, if this process dies,
 * through another learner's XAUTOCLAIM.  Re-applying is a no-op.
 */
#include "so_learner.h"
#include "store/so_store.h"
#include "wire/so_wire.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef Skillorchestra__V1__EpisodeOutcome s_episode_t;

#define S_KEY_MAX 512
#define S_NEG_TTL_MS 5000          /* an unknown version is asked for again after */
#define S_RECOVER_ROUNDS 1000      /* own pending batches read per step at most */
#define S_CLAIM_PAGES 10           /* XAUTOCLAIM pages per claim tick */
#define S_BACKOFF_MIN_MS 100

typedef struct {
    char version[SO_WIRE_MAX_ID + 1];
    so_handbook_t *hb;             /* NULL: Redis has no usable handbook of this version */
    char why[256];                 /* why hb is NULL */
    int64_t loaded_ms;
    uint64_t used;                 /* batch generation of the last use */
} s_cached_t;

struct so_learner {
    so_learner_opts_t o;
    char *url, *prefix, *group;
    so_store_t *store;
    char k_log[S_KEY_MAX], k_dead[S_KEY_MAX];
    s_cached_t *cache;
    size_t n_cache, cap_cache;
    uint64_t gen;
    int up;                        /* connected and the group exists */
    int was_up;                    /* for logging an outage once */
    int recover;                   /* read our own pending entries before new ones */
    int backoff_ms;
    int64_t next_claim, next_stats, next_refine;
    so_learner_stats_t st;
    uint64_t applied_at_last_stats;
    int64_t last_stats_ms;
    char err[512];
};

/* One entry of a batch. */
typedef struct {
    const char *id;                /* borrowed from the reply */
    const char *pb;
    size_t pb_len;
    s_episode_t *ep;
    const so_handbook_t *hb;       /* borrowed from the cache */
    enum { S_APPLY, S_ACK, S_DEAD } what;
    char reason[256];
} s_item_t;

static char *s_strdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

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
    so_merge_opts_default(&o->merge);
}

int so_learner_config(const so_config_t *cfg, so_learner_opts_t *o, char *err, size_t errlen)
{
    long v;
    double d;
    o->redis_url = so_config_get(cfg, "redis.url", o->redis_url);
    o->redis_prefix = so_config_get(cfg, "redis.prefix", o->redis_prefix);
    o->group = so_config_get(cfg, "group", o->group);
    const char *id = so_config_get(cfg, "learner.id", NULL);
    if (id && (!*id || strlen(id) >= sizeof o->consumer)) {
        snprintf(err, errlen, "learner.id: want 1..%zu bytes", sizeof o->consumer - 1);
        return -1;
    }
    if (id)
        snprintf(o->consumer, sizeof o->consumer, "%s", id);
    if (!*o->group || strlen(o->group) > SO_WIRE_MAX_ID) {
        snprintf(err, errlen, "group: want 1..%d bytes", SO_WIRE_MAX_ID);
        return -1;
    }
#define S_INT(key, field, min, max)                                                                \
    do {                                                                                           \
        if (so_config_long(cfg, key, (long) o->field, min, max, &v, err, errlen) != 0)             \
            return -1;                                                                             \
        o->field = (int) v;                                                                        \
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
    so_learner_t *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    l->o = *o;
    if (!*l->o.consumer)
        snprintf(l->o.consumer, sizeof l->o.consumer, "%s", so_instance());
    /* The connection's read timeout must outlast a blocking read. */
    if (l->o.redis_timeout_ms < l->o.block_ms + 1000)
        l->o.redis_timeout_ms = l->o.block_ms + 1000;
    l->url = s_strdup(o->redis_url);
    l->prefix = s_strdup(o->redis_prefix);
    l->group = s_strdup(o->group);
    l->o.redis_url = l->url;
    l->o.redis_prefix = l->prefix;
    l->o.group = l->group;
    if (snprintf(l->k_log, sizeof l->k_log, "%sepisodes", l->prefix) >= (int) sizeof l->k_log ||
        snprintf(l->k_dead, sizeof l->k_dead, "%sepisodes:dead", l->prefix) >=
            (int) sizeof l->k_dead) {
        snprintf(err, errlen, "redis.prefix too long");
        so_learner_destroy(&l);
        return NULL;
    }
    l->backoff_ms = S_BACKOFF_MIN_MS;
    l->recover = 1;
    l->was_up = 1;          /* so that a first failure is logged */
    int64_t now = so_now_ms();
    l->next_stats = now + o->stats_ms;
    l->last_stats_ms = now;
    return l;
}

static void s_cache_drop(s_cached_t *e)
{
    so_handbook_destroy(&e->hb);
}

void so_learner_destroy(so_learner_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_learner_t *l = *self_p;
    for (size_t i = 0; i < l->n_cache; i++)
        s_cache_drop(&l->cache[i]);
    free(l->cache);
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

/* Marks the connection lost (logged once per outage). */
static void s_down(so_learner_t *l)
{
    l->up = 0;
    l->st.redis_errors++;
    if (l->was_up)
        so_warn("redis_down", "error=\"%s\"", l->err);
    l->was_up = 0;
}

static redisReply *s_cmd(so_learner_t *l, int argc, const char **argv, const size_t *lens)
{
    if (so_store_ensure(l->store, l->err, sizeof l->err) < 0) {
        s_down(l);
        return NULL;
    }
    redisContext *c = so_store_redis(l->store);
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (!r) {
        snprintf(l->err, sizeof l->err, "redis %s: %s", argv[0],
                 c->errstr[0] ? c->errstr : "connection lost");
        s_down(l);
    }
    return r;
}

static redisReply *s_cmd_str(so_learner_t *l, int argc, const char **argv)
{
    size_t lens[16];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return s_cmd(l, argc, argv, lens);
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
            s_down(l);
            return -1;
        }
    }
    const char *argv[] = { "XGROUP", "CREATE", l->k_log, l->group, "0", "MKSTREAM" };
    redisReply *r = s_cmd_str(l, 6, argv);
    if (!r)
        return -1;
    int ok = r->type == REDIS_REPLY_STATUS ||
             (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0);
    if (!ok) {
        snprintf(l->err, sizeof l->err, "XGROUP CREATE %.200s %.128s: %.150s", l->k_log, l->group,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        s_down(l);
        return -1;
    }
    freeReplyObject(r);
    l->up = 1;
    l->recover = 1;
    l->backoff_ms = S_BACKOFF_MIN_MS;
    so_info("redis_up", "url=%s group=%s consumer=%s stream=%s", l->url, l->group,
            l->o.consumer, l->k_log);
    l->was_up = 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Handbook cache                                                     */

static void s_cache_trim(so_learner_t *l)
{
    while (l->n_cache > l->o.cache_versions) {
        size_t lru = 0;
        for (size_t i = 1; i < l->n_cache; i++)
            if (l->cache[i].used < l->cache[lru].used)
                lru = i;
        s_cache_drop(&l->cache[lru]);
        l->cache[lru] = l->cache[--l->n_cache];
    }
}

/* The handbook of a version: 0 with *hb, 1 when Redis has none usable (why
 * says what), -1 when Redis failed.  A handbook used in the current batch
 * is never evicted or reloaded before the batch ends. */
static int s_handbook(so_learner_t *l, const char *version, const so_handbook_t **hb,
                      char *why, size_t wlen)
{
    int64_t now = so_now_ms();
    s_cached_t *e = NULL;
    for (size_t i = 0; i < l->n_cache && !e; i++)
        if (strcmp(l->cache[i].version, version) == 0)
            e = &l->cache[i];
    if (e && (e->used == l->gen ||
              now - e->loaded_ms < (e->hb ? l->o.cache_ttl_ms : S_NEG_TTL_MS))) {
        e->used = l->gen;
        *hb = e->hb;
        if (!e->hb)
            snprintf(why, wlen, "%s", e->why);
        return e->hb ? 0 : 1;
    }
    char err[256];
    so_handbook_t *got = so_store_get_handbook(l->store, version, err, sizeof err);
    if (!got && so_store_io_error(l->store)) {
        snprintf(l->err, sizeof l->err, "%s", err);
        s_down(l);
        return -1;
    }
    if (!e) {
        size_t slot = l->n_cache;
        if (l->n_cache >= l->o.cache_versions) {
            /* Evict the least recently used one not in this batch; if all
             * are, grow for now (trimmed when the next batch starts). */
            int lru = -1;
            for (size_t i = 0; i < l->n_cache; i++)
                if (l->cache[i].used != l->gen &&
                    (lru < 0 || l->cache[i].used < l->cache[lru].used))
                    lru = (int) i;
            if (lru >= 0)
                slot = (size_t) lru;
        }
        if (slot == l->n_cache) {
            if (l->n_cache == l->cap_cache) {
                l->cap_cache = l->cap_cache ? 2 * l->cap_cache : 8;
                l->cache = realloc(l->cache, l->cap_cache * sizeof *l->cache);
                if (!l->cache)
                    abort();
            }
            l->n_cache++;
        } else {
            s_cache_drop(&l->cache[slot]);
        }
        e = &l->cache[slot];
        memset(e, 0, sizeof *e);
        snprintf(e->version, sizeof e->version, "%s", version);
    } else {
        s_cache_drop(e);
    }
    e->hb = got;
    e->loaded_ms = now;
    e->used = l->gen;
    if (!got) {
        snprintf(e->why, sizeof e->why, "%s", err);
        snprintf(why, wlen, "%s", err);
        so_warn("handbook_unusable", "version=%s error=\"%s\"", version, err);
        return 1;
    }
    so_info("handbook_loaded", "version=%s skills=%zu agents=%zu", version, got->n_skills,
            got->n_agents);
    *hb = got;
    return 0;
}

/* ------------------------------------------------------------------ */
/* A batch                                                            */

/* Reads one entry of an XREADGROUP/XAUTOCLAIM reply into it.  Returns 0,
 * or -1 if the entry has no usable id (it cannot even be acknowledged). */
static int s_item_parse(const redisReply *e, s_item_t *it)
{
    memset(it, 0, sizeof *it);
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !e->element[0] ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len == 0 ||
        e->element[0]->len >= 64)
        return -1;
    it->id = e->element[0]->str;
    const redisReply *f = e->element[1];
    if (!f || f->type == REDIS_REPLY_NIL) {
        it->what = S_ACK;       /* deleted from the log since it was delivered */
        snprintf(it->reason, sizeof it->reason, "entry deleted from the log");
        return 0;
    }
    if (f->type != REDIS_REPLY_ARRAY) {
        it->what = S_DEAD;
        snprintf(it->reason, sizeof it->reason, "fields are not a list");
        return 0;
    }
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i] && f->element[i]->type == REDIS_REPLY_STRING &&
            f->element[i]->len == 2 && memcmp(f->element[i]->str, "pb", 2) == 0 &&
            f->element[i + 1] && f->element[i + 1]->type == REDIS_REPLY_STRING) {
            it->pb = f->element[i + 1]->str;
            it->pb_len = f->element[i + 1]->len;
        }
    if (!it->pb) {
        it->what = S_DEAD;
        snprintf(it->reason, sizeof it->reason, "no pb field");
    }
    return 0;
}

static void s_items_free(s_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        so_store_episode_free(&items[i].ep);
    free(items);
}

/* Moves dead entries to the dead-letter stream and acknowledges the whole
 * batch, in one pipeline.  A dead-letter write Redis refuses is logged and
 * the entry acknowledged anyway: the entry itself stays in the log. */
static int s_finish_batch(so_learner_t *l, s_item_t *items, size_t n)
{
    if (so_store_ensure(l->store, l->err, sizeof l->err) < 0) {
        s_down(l);
        return -1;
    }
    redisContext *c = so_store_redis(l->store);
    char maxlen[32];
    snprintf(maxlen, sizeof maxlen, "%ld", l->o.dead_maxlen);
    size_t queued = 0, n_ack = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].id)
            continue;
        n_ack++;
        if (items[i].what != S_DEAD)
            continue;
        const char *argv[13] = { "XADD", l->k_dead, "MAXLEN", "~", maxlen, "*",
                                 "src", items[i].id, "reason", items[i].reason,
                                 "consumer", l->o.consumer, "pb" };
        size_t lens[14];
        for (int k = 0; k < 13; k++)
            lens[k] = strlen(argv[k]);
        const char *full[14];
        memcpy(full, argv, sizeof argv);
        full[13] = items[i].pb ? items[i].pb : "";
        lens[13] = items[i].pb ? items[i].pb_len : 0;
        if (redisAppendCommandArgv(c, items[i].pb ? 14 : 12, full, lens) != REDIS_OK)
            goto io;
        queued++;
    }
    if (n_ack) {
        const char **argv = malloc((3 + n_ack) * sizeof *argv);
        size_t *lens = malloc((3 + n_ack) * sizeof *lens);
        if (!argv || !lens)
            abort();
        argv[0] = "XACK";
        argv[1] = l->k_log;
        argv[2] = l->group;
        size_t k = 3;
        for (size_t i = 0; i < n; i++)
            if (items[i].id)
                argv[k++] = items[i].id;
        for (size_t i = 0; i < k; i++)
            lens[i] = strlen(argv[i]);
        int rc = redisAppendCommandArgv(c, (int) k, argv, lens);
        free(argv);
        free(lens);
        if (rc != REDIS_OK)
            goto io;
        queued++;
    }
    for (size_t q = 0; q < queued; q++) {
        void *v = NULL;
        if (redisGetReply(c, &v) != REDIS_OK || !v)
            goto io;
        redisReply *r = v;
        if (r->type == REDIS_REPLY_ERROR)
            so_error("batch_write_failed", "command=%s error=\"%s\"",
                     q + 1 == queued && n_ack ? "XACK" : "XADD dead", r->str);
        freeReplyObject(r);
    }
    return 0;
io:
    snprintf(l->err, sizeof l->err, "redis batch finish: %s",
             c->errstr[0] ? c->errstr : "connection lost");
    s_down(l);
    return -1;
}

/* Handles the entries of one read: decode, look up handbooks, apply in a
 * pipeline, dead-letter what cannot be used, acknowledge.  Returns the
 * number of entries, or -1 if Redis failed (nothing acknowledged). */
static int s_handle(so_learner_t *l, const redisReply *entries)
{
    size_t n = entries->elements;
    if (n == 0)
        return 0;
    l->gen++;
    s_cache_trim(l);
    l->st.read += n;
    l->st.batches++;
    s_item_t *items = calloc(n, sizeof *items);
    if (!items)
        abort();
    const so_handbook_t **hbs = calloc(n, sizeof *hbs);
    const s_episode_t **eps = calloc(n, sizeof *eps);
    int *applied = calloc(n, sizeof *applied);
    size_t *idx = calloc(n, sizeof *idx), m = 0;
    if (!hbs || !eps || !applied || !idx)
        abort();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        s_item_t *it = &items[i];
        if (s_item_parse(entries->element[i], it) < 0) {
            so_error("entry_unreadable", "stream=%s index=%zu (no id: cannot acknowledge)",
                     l->k_log, i);
            continue;
        }
        if (it->what != S_APPLY)
            continue;
        char e[256];
        if (so_store_decode_episode(it->pb, it->pb_len, &it->ep, e, sizeof e) < 0) {
            it->what = S_DEAD;
            snprintf(it->reason, sizeof it->reason, "undecodable: %.230s", e);
            continue;
        }
        int h = s_handbook(l, it->ep->handbook_version, &it->hb, e, sizeof e);
        if (h < 0) {
            rc = -1;
        } else if (h > 0) {
            it->what = S_DEAD;
            snprintf(it->reason, sizeof it->reason, "handbook %.100s: %.140s",
                     it->ep->handbook_version, e);
        } else {
            hbs[m] = it->hb;
            eps[m] = it->ep;
            idx[m++] = i;
        }
    }
    if (rc == 0 && m > 0 &&
        so_store_apply_many(l->store, hbs, eps, m, applied, l->err, sizeof l->err) < 0) {
        s_down(l);
        rc = -1;
    }
    for (size_t k = 0; k < m && rc == 0; k++) {
        s_item_t *it = &items[idx[k]];
        if (applied[k] < 0) {
            /* Ask again alone for this episode's own reason. */
            char e[256] = "";
            int again = so_store_apply_episode(l->store, it->hb, it->ep, e, sizeof e);
            if (again < 0 && so_store_io_error(l->store)) {
                snprintf(l->err, sizeof l->err, "%s", e);
                s_down(l);
                rc = -1;
                break;
            }
            applied[k] = again;
            if (again < 0) {
                it->what = S_DEAD;
                snprintf(it->reason, sizeof it->reason, "rejected: %.230s", e);
                continue;
            }
        }
        it->what = S_ACK;
        if (applied[k] == 1)
            l->st.applied++;
        else
            l->st.duplicates++;
        so_debug("episode_applied", "entry=%s episode_id=%s version=%s new=%d", it->id,
                 it->ep->episode_id, it->ep->handbook_version, applied[k]);
    }
    if (rc == 0)
        rc = s_finish_batch(l, items, n);
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            if (items[i].what == S_DEAD) {
                l->st.dead++;
                so_warn("episode_dead", "entry=%s dead_stream=%s reason=\"%s\"", items[i].id,
                        l->k_dead, items[i].reason);
            }
    s_items_free(items, n);
    free(hbs);
    free(eps);
    free(applied);
    free(idx);
    return rc < 0 ? -1 : (int) n;
}

/* XREADGROUP from id ("0": our pending entries; ">": new ones, blocking). */
static int s_read(so_learner_t *l, const char *id, int block)
{
    char count[16], blk[16];
    snprintf(count, sizeof count, "%d", l->o.batch);
    snprintf(blk, sizeof blk, "%d", l->o.block_ms);
    const char *argv[] = { "XREADGROUP", "GROUP", l->group, l->o.consumer, "COUNT", count,
                           "BLOCK", blk, "STREAMS", l->k_log, id };
    const char *nb[] = { "XREADGROUP", "GROUP", l->group, l->o.consumer, "COUNT", count,
                         "STREAMS", l->k_log, id };
    redisReply *r = block ? s_cmd_str(l, 11, argv) : s_cmd_str(l, 9, nb);
    if (!r)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_NIL) {
        rc = 0;                 /* timed out: nothing new */
    } else if (r->type == REDIS_REPLY_ERROR) {
        /* NOGROUP: the log or the group was deleted; recreate it. */
        snprintf(l->err, sizeof l->err, "XREADGROUP: %s", r->str);
        s_down(l);
        rc = -1;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0] &&
               r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
               r->element[0]->element[1] &&
               r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        rc = s_handle(l, r->element[0]->element[1]);
    } else {
        snprintf(l->err, sizeof l->err, "XREADGROUP: unexpected reply shape");
        s_down(l);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* Takes over entries other consumers (dead ones, most likely) left
 * unacknowledged for claim_min_idle_ms, and handles them. */
static int s_claim(so_learner_t *l)
{
    char idle[16], count[16], cursor[64] = "0-0";
    snprintf(idle, sizeof idle, "%d", l->o.claim_min_idle_ms);
    snprintf(count, sizeof count, "%d", l->o.batch);
    int total = 0;
    for (int page = 0; page < S_CLAIM_PAGES; page++) {
        const char *argv[] = { "XAUTOCLAIM", l->k_log, l->group, l->o.consumer, idle, cursor,
                               "COUNT", count };
        redisReply *r = s_cmd_str(l, 8, argv);
        if (!r)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !r->element[0] ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof cursor ||
            !r->element[1] || r->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(l->err, sizeof l->err, "XAUTOCLAIM: %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply shape");
            freeReplyObject(r);
            s_down(l);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        size_t got = r->element[1]->elements;
        int rc = s_handle(l, r->element[1]);
        freeReplyObject(r);
        if (rc < 0)
            return -1;
        if (got) {
            l->st.claimed += got;
            so_info("entries_claimed", "count=%zu min_idle_ms=%d", got, l->o.claim_min_idle_ms);
        }
        total += (int) got;
        if (strcmp(cursor, "0-0") == 0)
            break;
    }
    return total;
}

/* ------------------------------------------------------------------ */
/* Refinement                                                         */

/* "<base>.r<N+1>" for "<base>.r<N>", else "<version>.r1"; the first such
 * name not yet published.  0 or -1 (too long, or Redis failed). */
static int s_next_version(so_learner_t *l, const char *cur, char *out, size_t len)
{
    char base[SO_WIRE_MAX_ID + 1];
    snprintf(base, sizeof base, "%s", cur);
    long n = 1;
    char *dot = strrchr(base, '.');
    if (dot && dot[1] == 'r' && dot[2] >= '0' && dot[2] <= '9') {
        char *end;
        errno = 0;
        long k = strtol(dot + 2, &end, 10);
        if (!*end && !errno && k >= 0 && k < 1000000000L) {
            n = k + 1;
            *dot = '\0';
        }
    }
    char **versions = NULL;
    size_t nv = 0;
    if (so_store_versions(l->store, &versions, &nv, l->err, sizeof l->err) < 0)
        return -1;
    int rc = -1;
    for (int tries = 0; tries < 1000; tries++, n++) {
        int w = snprintf(out, len, "%s.r%ld", base, n);
        if (w < 0 || (size_t) w >= len || w > SO_WIRE_MAX_ID) {
            snprintf(l->err, sizeof l->err, "refined version name of '%s' too long", cur);
            break;
        }
        int taken = 0;
        for (size_t i = 0; i < nv && !taken; i++)
            taken = strcmp(versions[i], out) == 0;
        if (!taken) {
            rc = 0;
            break;
        }
    }
    so_store_strv_free(&versions, nv);
    return rc;
}

/* Under the lock: merge the current version's skills on its bootstrap +
 * online statistics and publish the result if anything merged.  Records
 * the sequence number it looked at in so:refined:<version>.  0 or -1. */
static int s_refine_locked(so_learner_t *l, const char *cur)
{
    char now_cur[SO_WIRE_MAX_ID + 1], name[SO_WIRE_MAX_ID + 1], key[S_KEY_MAX], seqs[32];
    if (so_store_current_version(l->store, now_cur, sizeof now_cur, l->err, sizeof l->err) < 0)
        return -1;
    if (strcmp(now_cur, cur) != 0)
        return 0;               /* someone published meanwhile */
    l->st.refines++;
    so_handbook_t *hb = so_store_get_handbook(l->store, cur, l->err, sizeof l->err);
    if (!hb)
        return -1;
    long long seq = 0;
    size_t unknown = 0;
    int rc = so_store_load_stats(l->store, hb, &seq, &unknown, l->err, sizeof l->err);
    so_handbook_t *out = NULL;
    size_t merged = 0;
    if (rc == 0 && (rc = s_next_version(l, cur, name, sizeof name)) == 0) {
        out = so_learn_merge(hb, &l->o.merge, name, &merged, l->err, sizeof l->err);
        rc = out ? 0 : -1;
    }
    if (rc == 0 && (merged > 0 || l->o.refine_always_publish)) {
        int p = so_store_put_handbook_if(l->store, out, cur, l->err, sizeof l->err);
        if (p < 0) {
            rc = -1;
        } else if (p == 0) {
            so_info("refine_raced", "version=%s (current moved; not published)", name);
        } else {
            char gone[512] = "";
            for (size_t s = 0; s < hb->n_skills; s++)
                if (so_handbook_skill_index(out, hb->skills[s].id) < 0 &&
                    strlen(gone) + strlen(hb->skills[s].id) + 2 < sizeof gone) {
                    if (*gone)
                        strcat(gone, ",");
                    strcat(gone, hb->skills[s].id);
                }
            l->st.published++;
            so_info("handbook_refined", "version=%s parent=%s seq=%lld merged=%zu skills=%zu->%zu "
                    "merged_away=%s", name, cur, seq, merged, hb->n_skills, out->n_skills,
                    *gone ? gone : "-");
        }
    } else if (rc == 0) {
        so_info("refine_checked", "version=%s seq=%lld merged=0 (nothing to publish)", cur, seq);
    }
    if (rc == 0) {
        snprintf(seqs, sizeof seqs, "%lld", seq);
        so_store_key(l->store, key, sizeof key, "refined:%s", cur);
        const char *argv[] = { "SET", key, seqs };
        redisReply *r = s_cmd_str(l, 3, argv);
        if (r)
            freeReplyObject(r);
        else
            rc = -1;
    }
    so_handbook_destroy(&out);
    so_handbook_destroy(&hb);
    return rc;
}

/* Due when refine_every episodes were applied to the current version
 * since the last check.  0 (done or not due) or -1 (Redis failed). */
static int s_refine_tick(so_learner_t *l)
{
    char cur[SO_WIRE_MAX_ID + 1], key[S_KEY_MAX];
    long long seq = 0, last = 0;
    if (so_store_current_version(l->store, cur, sizeof cur, l->err, sizeof l->err) < 0)
        return so_store_io_error(l->store) ? -1 : 0;     /* no handbook yet */
    if (so_store_seq(l->store, cur, &seq, l->err, sizeof l->err) < 0)
        return so_store_io_error(l->store) ? -1 : 0;
    if (seq < l->o.refine_every)
        return 0;
    so_store_key(l->store, key, sizeof key, "refined:%s", cur);
    const char *argv[] = { "GET", key };
    redisReply *r = s_cmd_str(l, 2, argv);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < 24) {
        char *end;
        last = strtoll(r->str, &end, 10);
        if (*end)
            last = 0;
    }
    freeReplyObject(r);
    if (seq - last < l->o.refine_every)
        return 0;
    int got = so_store_lock(l->store, "refine", l->o.consumer, l->o.refine_lock_ttl_ms, l->err,
                            sizeof l->err);
    if (got <= 0)
        return got < 0 && so_store_io_error(l->store) ? -1 : 0;
    int rc = s_refine_locked(l, cur);
    if (rc < 0 && !so_store_io_error(l->store))
        so_error("refine_failed", "version=%s error=\"%s\"", cur, l->err);
    char e[128];
    so_store_unlock(l->store, "refine", l->o.consumer, e, sizeof e);
    return rc < 0 && so_store_io_error(l->store) ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* The loop                                                           */

static void s_stats_line(so_learner_t *l, int64_t now)
{
    double secs = (double) (now - l->last_stats_ms) / 1000.0;
    double rate = secs > 0 ? (double) (l->st.applied - l->applied_at_last_stats) / secs : 0;
    so_info("stats", "read=%" PRIu64 " applied=%" PRIu64 " duplicates=%" PRIu64 " dead=%" PRIu64
            " claimed=%" PRIu64 " batches=%" PRIu64 " redis_errors=%" PRIu64 " refines=%" PRIu64
            " published=%" PRIu64 " applied_per_s=%.1f cached_versions=%zu redis_up=%d",
            l->st.read, l->st.applied, l->st.duplicates, l->st.dead, l->st.claimed,
            l->st.batches, l->st.redis_errors, l->st.refines, l->st.published, rate, l->n_cache,
            l->up);
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
        int n = s_read(l, "0", 0);
        if (n < 0)
            return -1;
        handled += n;
        if (n == 0)
            l->recover = 0;
    }
    if (now >= l->next_claim) {
        int n = s_claim(l);
        if (n < 0)
            return -1;
        handled += n;
        l->next_claim = now + l->o.claim_every_ms;
    }
    if (l->o.refine_every > 0 && now >= l->next_refine) {
        if (s_refine_tick(l) < 0) {
            if (l->up)
                s_down(l);
            return -1;
        }
        l->next_refine = now + l->o.refine_check_ms;
    }
    int n = s_read(l, ">", 1);
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
    so_info("start", "consumer=%s group=%s stream=%s batch=%d block_ms=%d claim_min_idle_ms=%d "
            "refine_every=%ld", l->o.consumer, l->group, l->k_log, l->o.batch, l->o.block_ms,
            l->o.claim_min_idle_ms, l->o.refine_every);
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
    so_info("stop", "consumer=%s applied=%" PRIu64 " dead=%" PRIu64, l->o.consumer,
            l->st.applied, l->st.dead);
    return 0;
}
