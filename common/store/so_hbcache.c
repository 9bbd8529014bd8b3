/*
 * so_hbcache — handbook versions in memory, refreshed from Redis by a poll
 * (see so_hbcache.h).
 */
#include "store/so_hbcache.h"
#include "store/so_hbwatch.h"
#include "store/so_store.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NEG_SLOTS 16 /* unknown versions remembered */
#define S_VERSION_MAX SO_WIRE_MAX_ID

typedef struct {
    so_hbcache_entry_t pub; /* what so_hbcache_get hands out */
    char version[S_VERSION_MAX + 1];
    so_handbook_t *hb;
    so_stat_t *base; /* the handbook's bootstrap stats */
    so_stat_t *prev; /* scratch: stats before a reload */
    so_infer_t *infer;
    so_route_tables_t *router;
    uint64_t used; /* LRU clock value of the last lookup */
    uint64_t held; /* hold_gen of the last lookup */
    int64_t loaded_ms;
    long long bad_seq; /* a sequence number whose stats did not load */
} s_entry_t;

typedef struct {
    char version[S_VERSION_MAX + 1];
    char why[256];
    int64_t expires;
} s_negative_t;

struct so_hbcache {
    so_hbcache_opts_t o;
    char *url, *prefix;
    so_hbwatch_t *watch; /* hb:current, the connection, up/down */
    s_entry_t **entries; /* [n_slots], NULL = free slot */
    size_t n_slots;      /* max_versions, more while a hold needs it */
    int holding;         /* so_hbcache_hold was called */
    uint64_t hold_gen;   /* the current hold */
    uint64_t clock;
    s_negative_t neg[S_NEG_SLOTS];
    size_t neg_next;
    int64_t current_checked; /* when a lookup last asked Redis for it */
    so_hbcache_stats_t st;
};

void so_hbcache_opts_default(so_hbcache_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->redis_url = "redis://127.0.0.1:6379";
    o->redis_prefix = "so:";
    o->redis_timeout_ms = 500;
    o->max_versions = 4;
    o->refresh_ms = 200;
    o->negative_ttl_ms = 1000;
    o->backoff_max_ms = 5000;
    so_route_opts_default(&o->router);
}

int so_hbcache_config(const so_config_t *cfg, so_hbcache_opts_t *o, char *err, size_t errlen)
{
    long v;
    o->redis_url = so_config_get(cfg, "redis.url", o->redis_url);
    o->redis_prefix = so_config_get(cfg, "redis.prefix", o->redis_prefix);
#define S_INT(key, field, min, max) \
    do { \
        if (so_config_long(cfg, key, (long) o->field, min, max, &v, err, errlen) != 0) \
            return -1; \
        o->field = (int) v; \
    } while (0)
    S_INT("redis.timeout_ms", redis_timeout_ms, 1, 60000);
    S_INT("stats_refresh_ms", refresh_ms, 10, 3600000);
    S_INT("negative_ttl_ms", negative_ttl_ms, 0, 3600000);
    S_INT("backoff_max_ms", backoff_max_ms, 10, 3600000);
#undef S_INT
    if (so_config_long(cfg, "cache.versions", (long) o->max_versions, 1, 1024, &v, err, errlen) !=
        0)
        return -1;
    o->max_versions = (size_t) v;
    return 0;
}

static void s_entry_free(s_entry_t **p)
{
    if (!p || !*p)
        return;
    s_entry_t *e = *p;
    so_route_tables_destroy(&e->router);
    so_infer_destroy(&e->infer);
    so_handbook_destroy(&e->hb);
    free(e->base);
    free(e->prev);
    free(e);
    *p = NULL;
}

so_hbcache_t *so_hbcache_new(const so_hbcache_opts_t *opts, char *err, size_t errlen)
{
    so_hbcache_opts_t d;
    if (!opts) {
        so_hbcache_opts_default(&d);
        opts = &d;
    }
    if (opts->max_versions < 1 || opts->max_versions > 1024) {
        so_err(err, errlen, "max_versions %zu out of range [1, 1024]", opts->max_versions);
        return NULL;
    }
    if (opts->refresh_ms < 0 || opts->negative_ttl_ms < 0 || opts->redis_timeout_ms < 1 ||
        opts->backoff_max_ms < 1) {
        so_err(err, errlen, "negative period or timeout");
        return NULL;
    }
    so_hbcache_t *c = so_calloc(1, sizeof *c);
    c->o = *opts;
    c->url = so_strdup(opts->redis_url && *opts->redis_url ? opts->redis_url
                                                           : "redis://127.0.0.1:6379");
    c->prefix = so_strdup(opts->redis_prefix ? opts->redis_prefix : "so:");
    c->n_slots = opts->max_versions;
    c->entries = so_calloc(c->n_slots, sizeof *c->entries);
    c->o.redis_url = c->url;
    c->o.redis_prefix = c->prefix;
    so_hbwatch_opts_t wo;
    so_hbwatch_opts_default(&wo);
    wo.store = opts->store;
    wo.log = !opts->store;
    wo.redis_url = c->url;
    wo.redis_prefix = c->prefix;
    wo.redis_timeout_ms = c->o.redis_timeout_ms;
    wo.refresh_ms = c->o.refresh_ms;
    wo.backoff_max_ms = c->o.backoff_max_ms;
    wo.down_note = "serving cached handbooks; retrying";
    c->watch = so_hbwatch_new(&wo);
    return c;
}

void so_hbcache_destroy(so_hbcache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_hbcache_t *c = *self_p;
    for (size_t i = 0; i < c->n_slots; i++)
        s_entry_free(&c->entries[i]);
    free(c->entries);
    so_hbwatch_destroy(&c->watch);
    free(c->url);
    free(c->prefix);
    free(c);
    *self_p = NULL;
}

/* ---- Redis health -------------------------------------------------------- */

/* A call failed on the connection: stop calling Redis from lookups until the
 * poll gets through again. */
static void s_mark_down(so_hbcache_t *c, const char *err)
{
    so_hbwatch_down(c->watch, err);
}

static int s_down(const so_hbcache_t *c)
{
    return !so_hbwatch_up(c->watch);
}

static const char *s_current(const so_hbcache_t *c)
{
    return so_hbwatch_current(c->watch);
}

/* The store, connecting if needed; NULL (and marked down) on failure. */
static so_store_t *s_store(so_hbcache_t *c)
{
    return so_hbwatch_store(c->watch);
}

/* ---- Unknown versions ---------------------------------------------------- */

static const s_negative_t *s_neg_find(so_hbcache_t *c, const char *version)
{
    int64_t now = so_now_ms();
    for (size_t i = 0; i < S_NEG_SLOTS; i++)
        if (c->neg[i].expires > now && strcmp(c->neg[i].version, version) == 0)
            return &c->neg[i];
    return NULL;
}

static void s_neg_add(so_hbcache_t *c, const char *version, const char *why)
{
    if (c->o.negative_ttl_ms == 0)
        return;
    if (c->o.log_unknown)
        so_warn("handbook_unusable", "version=%s error=\"%s\"", version, why);
    s_negative_t *n = &c->neg[c->neg_next++ % S_NEG_SLOTS];
    snprintf(n->version, sizeof n->version, "%s", version);
    snprintf(n->why, sizeof n->why, "%s", why);
    n->expires = so_now_ms() + c->o.negative_ttl_ms;
}

/* ---- Entries ------------------------------------------------------------- */

static s_entry_t *s_find(so_hbcache_t *c, const char *version)
{
    for (size_t i = 0; i < c->n_slots; i++)
        if (c->entries[i] && strcmp(c->entries[i]->version, version) == 0)
            return c->entries[i];
    return NULL;
}

static int s_held(const so_hbcache_t *c, const s_entry_t *e)
{
    return c->holding && e->held == c->hold_gen;
}

/* A free slot, evicting the least recently used entry when there is none
 * (never the current version while another entry could go, never one
 * held; when all are held, the table grows until the next hold). */
static s_entry_t **s_slot(so_hbcache_t *c)
{
    s_entry_t **victim = NULL;
    for (size_t i = 0; i < c->n_slots; i++) {
        s_entry_t **p = &c->entries[i];
        if (!*p)
            return p;
        if (s_held(c, *p))
            continue;
        int cur = strcmp((*p)->version, s_current(c)) == 0;
        int vcur = victim && strcmp((*victim)->version, s_current(c)) == 0;
        if (!victim || (vcur && !cur) || (vcur == cur && (*p)->used < (*victim)->used))
            victim = p;
    }
    if (!victim) {
        size_t n = c->n_slots;
        c->n_slots *= 2;
        c->entries = so_reallocarray(c->entries, c->n_slots, sizeof *c->entries);
        memset(c->entries + n, 0, (c->n_slots - n) * sizeof *c->entries);
        return &c->entries[n];
    }
    so_info("handbook_evicted", "version=%s", (*victim)->version);
    c->st.evictions++;
    s_entry_free(victim);
    return victim;
}

void so_hbcache_hold(so_hbcache_t *c)
{
    c->holding = 1;
    c->hold_gen++;
    /* Back to max_versions entries, least recently used first out. */
    for (;;) {
        size_t n = 0;
        s_entry_t **lru = NULL;
        for (size_t i = 0; i < c->n_slots; i++)
            if (c->entries[i]) {
                n++;
                if (!lru || c->entries[i]->used < (*lru)->used)
                    lru = &c->entries[i];
            }
        if (n <= c->o.max_versions)
            break;
        so_info("handbook_evicted", "version=%s", (*lru)->version);
        c->st.evictions++;
        s_entry_free(lru);
    }
}

/* Reloads the online stats onto the bootstrap stats and rebuilds the router.
 * On failure the entry keeps what it had.  Returns 0, or -1 with err. */
static int s_reload_stats(so_hbcache_t *c, s_entry_t *e, char *err, size_t errlen)
{
    so_handbook_t *hb = e->hb;
    size_t n = hb->n_agents * hb->n_skills;
    long long seq = 0;
    size_t unknown = 0;
    memcpy(e->prev, hb->stats, n * sizeof *hb->stats);
    memcpy(hb->stats, e->base, n * sizeof *hb->stats);
    if (so_store_load_stats(s_store(c), hb, &seq, &unknown, err, errlen) != 0) {
        memcpy(hb->stats, e->prev, n * sizeof *hb->stats);
        return -1;
    }
    if (unknown > 0)
        so_warn("stats_unknown_cells",
                "version=%s cells=%zu (agents or skills not in the handbook)", e->version,
                unknown);
    if (e->router)
        so_route_tables_refresh(e->router, hb);
    else
        e->router = so_route_tables_new(hb, &c->o.router);
    e->pub.router = e->router;
    e->pub.seq = seq;
    return 0;
}

/* Loads a version from Redis into a new entry.  NULL with *status and err. */
static s_entry_t *s_load(so_hbcache_t *c, const char *version, so_hbcache_status_t *status,
                         char *err, size_t errlen)
{
    int64_t t0 = so_now_ms();
    so_store_t *s = c->o.store ? c->o.store : s_down(c) ? NULL : s_store(c);
    if (!s) {
        *status = SO_HBCACHE_UNAVAILABLE;
        c->st.unavailable++;
        so_err(err, errlen, "handbook version '%s' is not cached and Redis is unreachable",
               version);
        return NULL;
    }
    char why[256];
    so_handbook_t *hb = so_store_get_handbook(s, version, why, sizeof why);
    if (!hb) {
        if (so_store_io_error(s)) {
            s_mark_down(c, why);
            *status = SO_HBCACHE_UNAVAILABLE;
            c->st.unavailable++;
        } else {
            s_neg_add(c, version, why);
            *status = SO_HBCACHE_UNKNOWN;
            c->st.unknown++;
        }
        so_err(err, errlen, "%s", why);
        return NULL;
    }
    /* The services speak the wire protocol: a handbook it cannot express
     * (demand and score lists are capped) is unusable. */
    if ((c->o.with_infer || c->o.with_router) &&
        (hb->n_skills > SO_WIRE_MAX_SKILLS || hb->n_agents > SO_WIRE_MAX_AGENTS)) {
        snprintf(why, sizeof why,
                 "handbook version '%s' has %zu skills and %zu agents "
                 "(limits %d and %d)",
                 version, hb->n_skills, hb->n_agents, SO_WIRE_MAX_SKILLS, SO_WIRE_MAX_AGENTS);
        so_handbook_destroy(&hb);
        s_neg_add(c, version, why);
        *status = SO_HBCACHE_UNKNOWN;
        c->st.unknown++;
        so_err(err, errlen, "%s", why);
        return NULL;
    }
    s_entry_t *e = so_calloc(1, sizeof *e);
    size_t n = hb->n_agents * hb->n_skills;
    e->base = so_calloc(n + 1, sizeof *e->base);
    e->prev = so_calloc(n + 1, sizeof *e->prev);
    snprintf(e->version, sizeof e->version, "%s", version);
    e->loaded_ms = t0;
    memcpy(e->base, hb->stats, n * sizeof *hb->stats);
    e->hb = hb;
    e->pub.version = e->version;
    e->pub.hb = hb;
    e->pub.seq = -1;
    e->bad_seq = -1;
    if (c->o.with_infer) {
        e->infer = so_infer_new(hb);
        if (c->o.infer_temperature > 0)
            so_infer_set_temperature(e->infer, c->o.infer_temperature);
        e->pub.infer = e->infer;
    }
    if (c->o.with_router && s_reload_stats(c, e, why, sizeof why) != 0) {
        /* Serve the bootstrap stats; the poll loads the online ones (seq -1
         * never matches). */
        if (so_store_io_error(s))
            s_mark_down(c, why);
        so_warn("stats_load_failed",
                "version=%s error=\"%s\" (bootstrap stats until the next poll)", version, why);
        e->router = so_route_tables_new(hb, &c->o.router);
        e->pub.router = e->router;
    }
    s_entry_t **slot = s_slot(c);
    *slot = e;
    c->st.loads++;
    so_info("handbook_loaded", "version=%s skills=%zu agents=%zu seq=%lld load_ms=%lld", version,
            hb->n_skills, hb->n_agents, e->pub.seq, (long long) (so_now_ms() - t0));
    return e;
}

/* ---- Lookups ------------------------------------------------------------- */

const so_hbcache_entry_t *so_hbcache_get(so_hbcache_t *c, const char *version,
                                         so_hbcache_status_t *status, char *err, size_t errlen)
{
    so_hbcache_status_t dummy;
    if (!status)
        status = &dummy;
    *status = SO_HBCACHE_OK;
    if (!version || !*version) {
        if (!s_current(c)[0] && !s_down(c) &&
            (!c->current_checked || so_now_ms() - c->current_checked >= c->o.negative_ttl_ms)) {
            /* No poll has seen a current version yet: ask Redis (at most
             * once per negative_ttl_ms, never while it is down). */
            c->current_checked = so_now_ms();
            so_hbwatch_poll(c->watch);
        }
        if (!s_current(c)[0]) {
            *status = s_down(c) ? SO_HBCACHE_UNAVAILABLE : SO_HBCACHE_UNKNOWN;
            if (s_down(c))
                c->st.unavailable++;
            else
                c->st.unknown++;
            so_err(err, errlen, "no current handbook version (%s)",
                   s_down(c) ? "Redis is unreachable" : "none has been published");
            return NULL;
        }
        version = s_current(c);
    }
    s_entry_t *e = s_find(c, version);
    if (e && c->o.reload_ms > 0 && !s_held(c, e) &&
        so_now_ms() - e->loaded_ms >= c->o.reload_ms) {
        /* Read it again (below, as a miss). */
        for (size_t i = 0; i < c->n_slots; i++)
            if (c->entries[i] == e)
                s_entry_free(&c->entries[i]);
        e = NULL;
    }
    if (e) {
        c->st.hits++;
        e->used = ++c->clock;
        e->held = c->hold_gen;
        return &e->pub;
    }
    c->st.misses++;
    const s_negative_t *n = s_neg_find(c, version);
    if (n) {
        *status = SO_HBCACHE_UNKNOWN;
        c->st.unknown++;
        so_err(err, errlen, "%s", n->why);
        return NULL;
    }
    e = s_load(c, version, status, err, errlen);
    if (!e)
        return NULL;
    e->used = ++c->clock;
    e->held = c->hold_gen;
    return &e->pub;
}

/* ---- The poll ------------------------------------------------------------ */

/* One round of polling.  Returns 0, or -1 when Redis failed on the
 * connection (the rest of the round is skipped). */
static int s_poll(so_hbcache_t *c)
{
    char err[256], cur[S_VERSION_MAX + 1];
    int changed = so_hbwatch_poll(c->watch);
    if (changed < 0)
        return -1;
    so_store_t *s = s_store(c);
    snprintf(cur, sizeof cur, "%s", s_current(c));
    if (changed) {
        const char *was = so_hbwatch_previous(c->watch);
        so_info("current_version", "version=%s previous=%s", cur[0] ? cur : "-",
                was[0] ? was : "-");
        if (cur[0] && !s_find(c, cur)) {
            /* Load it now, so the first request on it does not wait. */
            so_hbcache_status_t st;
            s_entry_t *e = s_load(c, cur, &st, err, sizeof err);
            if (!e && st == SO_HBCACHE_UNAVAILABLE)
                return -1;
            if (!e)
                so_warn("current_unusable", "version=%s error=\"%s\"", cur, err);
            else
                e->used = ++c->clock;
        }
    }
    if (!c->o.with_router)
        return 0;
    for (size_t i = 0; i < c->n_slots; i++) {
        s_entry_t *e = c->entries[i];
        long long seq = 0;
        if (!e)
            continue;
        if (so_store_seq(s, e->version, &seq, err, sizeof err) != 0) {
            if (so_store_io_error(s)) {
                s_mark_down(c, err);
                return -1;
            }
            so_warn("seq_unreadable", "version=%s error=\"%s\"", e->version, err);
            continue;
        }
        if (seq == e->pub.seq || seq == e->bad_seq)
            continue;
        long long was = e->pub.seq;
        int64_t t0 = so_now_ms();
        if (s_reload_stats(c, e, err, sizeof err) != 0) {
            if (so_store_io_error(s)) {
                s_mark_down(c, err);
                return -1;
            }
            /* Bad data: say so once, try again when the sequence moves. */
            so_warn("stats_reload_failed", "version=%s seq=%lld error=\"%s\"", e->version, seq,
                    err);
            e->bad_seq = seq;
            continue;
        }
        c->st.reloads++;
        so_debug("stats_reloaded", "version=%s seq=%lld previous=%lld ms=%lld", e->version,
                 e->pub.seq, was, (long long) (so_now_ms() - t0));
    }
    return 0;
}

int so_hbcache_tick(so_hbcache_t *c)
{
    int wait = so_hbwatch_wait(c->watch);
    if (wait > 0)
        return wait;
    return so_hbwatch_done(c->watch, s_poll(c) == 0);
}

int so_hbcache_mode(const so_handbook_t *hb, const char *mode, int *index, char *err,
                    size_t errlen)
{
    if (!mode || !*mode) {
        *index = so_handbook_mode_index(hb, "default");
        return 0;
    }
    *index = so_handbook_mode_index(hb, mode);
    if (*index >= 0)
        return 0;
    so_err(err, errlen, "mode '%s' is not in handbook %s (%zu modes%s%s)", mode, hb->version,
           hb->n_modes, hb->n_modes ? ", e.g. " : "", hb->n_modes ? hb->modes[0].id : "");
    return -1;
}

const char *so_hbcache_current(const so_hbcache_t *c)
{
    return s_current(c);
}

void so_hbcache_stats(const so_hbcache_t *c, so_hbcache_stats_t *out)
{
    *out = c->st;
    out->redis_errors = so_hbwatch_errors(c->watch);
    out->redis_up = so_hbwatch_up(c->watch);
    out->cached = 0;
    for (size_t i = 0; i < c->n_slots; i++)
        out->cached += c->entries[i] != NULL;
}
