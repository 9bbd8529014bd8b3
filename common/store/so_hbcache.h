/*
 * so_hbcache — the handbooks a routing service works with, kept in memory so
 * that no request waits on Redis.
 *
 * A cache holds up to max_versions handbook versions (least recently used
 * goes first).  Each entry owns the handbook loaded from Redis
 * (so_store_get_handbook) and, as configured, its inference index
 * (so_infer) and its router tables (so_route) built from the handbook's
 * bootstrap statistics plus the online deltas in so:stats:<version>.
 *
 * A version is loaded on first use (one Redis round trip on that request).
 * A version Redis does not have is remembered as unknown for negative_ttl_ms,
 * so a client pinning a bad version cannot turn every request into a Redis
 * call.
 *
 * so_hbcache_tick, called from the service's timer loop, polls Redis every
 * refresh_ms: the current version (a new one is loaded at once, before any
 * request asks for it) and, with routers, so:seq:<version> of every cached
 * version; when a sequence number moved, the statistics are reloaded and
 * the router tables rebuilt.  When Redis is unreachable the cache keeps
 * serving what it holds, logs the outage once, and retries with exponential
 * back-off (refresh_ms doubling up to backoff_max_ms); meanwhile a version
 * not in the cache fails at once as unavailable (no connect attempt on the
 * request path).
 *
 * The current version, the connection and the outage handling are
 * so_hbwatch's (one per cache).
 *
 * Not thread-safe: one cache per thread (it owns one so_store connection,
 * or borrows opts.store).
 */
#ifndef SO_HBCACHE_H
#define SO_HBCACHE_H

#include "method/so_handbook.h"
#include "method/so_infer.h"
#include "method/so_route.h"
#include "base/so_svc.h"
#include "store/so_store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *redis_url;    /* "redis://host:port[/db]" or "unix:/path" */
    const char *redis_prefix; /* key prefix, default "so:" */
    int redis_timeout_ms;     /* per command (default 500) */
    size_t max_versions;      /* handbooks kept (default 4, >= 1) */
    int refresh_ms;           /* poll period (default 200) */
    int negative_ttl_ms;      /* how long "unknown version" is remembered (default 1000) */
    int backoff_max_ms;       /* longest wait between retries while Redis is down (5000) */
    int with_infer;           /* build so_infer indexes */
    int with_router;          /* load online stats, build routers, poll sequence numbers */
    double infer_temperature; /* > 0 overrides the handbooks' softmax temperature */
    so_route_opts_t router;   /* options of the routers built */
    /* For a batch consumer (the learner): */
    so_store_t *store; /* borrowed connection instead of redis_url: a miss always
                                   asks Redis, and the caller logs outages (NULL: own) */
    int reload_ms;     /* read a cached version again after this long (0: never) */
    int log_unknown;   /* warn handbook_unusable when a version cannot be used */
} so_hbcache_opts_t;

void so_hbcache_opts_default(so_hbcache_opts_t *o);

/* Overrides the defaults in *o with a service's config keys (so_svc):
 *   redis.url  redis.prefix  redis.timeout_ms  cache.versions
 *   stats_refresh_ms  negative_ttl_ms  backoff_max_ms
 * The strings are borrowed from cfg until so_hbcache_new copies them.
 * Returns 0, or -1 with err naming the bad key. */
int so_hbcache_config(const so_config_t *cfg, so_hbcache_opts_t *o, char *err, size_t errlen);

/* What a lookup returns: borrowed, valid until the next so_hbcache_get or
 * so_hbcache_tick on the same cache (either may evict or rebuild it). */
typedef struct {
    const char *version;
    const so_handbook_t *hb;         /* stats = bootstrap + online deltas (with_router) */
    const so_infer_t *infer;         /* NULL unless with_infer */
    const so_route_tables_t *router; /* NULL unless with_router */
    long long seq;                   /* so:seq the stats were read at; -1 = not loaded yet */
} so_hbcache_entry_t;

typedef enum {
    SO_HBCACHE_OK = 0,
    SO_HBCACHE_UNKNOWN = 1,    /* Redis has no such version (or it is unusable) */
    SO_HBCACHE_UNAVAILABLE = 2 /* not cached and Redis is unreachable */
} so_hbcache_status_t;

typedef struct {
    uint64_t hits, misses;       /* lookups served from memory / needing Redis */
    uint64_t loads, unknown;     /* versions loaded; lookups answered "unknown" */
    uint64_t unavailable;        /* lookups failed because Redis was down */
    uint64_t evictions, reloads; /* versions dropped (LRU); stats reloads */
    uint64_t redis_errors;       /* failed Redis calls (connection) */
    size_t cached;               /* versions held now */
    int redis_up;                /* 0 while Redis is unreachable */
} so_hbcache_stats_t;

typedef struct so_hbcache so_hbcache_t;

/* Copies the options (the strings too).  Connects lazily: a Redis that is
 * down at start-up is retried by so_hbcache_tick.  Returns NULL with err only
 * for bad options. */
so_hbcache_t *so_hbcache_new(const so_hbcache_opts_t *opts, char *err, size_t errlen);
void so_hbcache_destroy(so_hbcache_t **self_p);

/* The entry of version (NULL or "" = the current version).  On a miss it
 * loads the version from Redis.  Returns NULL with *status (UNKNOWN or
 * UNAVAILABLE) and a message in err. */
const so_hbcache_entry_t *so_hbcache_get(so_hbcache_t *c, const char *version,
                                         so_hbcache_status_t *status, char *err, size_t errlen);

/* Starts a batch: every entry so_hbcache_get returns from now until the
 * next so_hbcache_hold stays valid (it is neither evicted nor read again;
 * the cache holds more than max_versions meanwhile if it must, and is
 * trimmed back here).  Without holds, the rule above applies. */
void so_hbcache_hold(so_hbcache_t *c);

/* Periodic work (see above); does nothing until it is due.  Returns the ms
 * until it is next due, for a poll timeout. */
int so_hbcache_tick(so_hbcache_t *c);

/* The mode index a request names, as so-eval resolves it: "" (or NULL) is
 * the handbook's "default" mode if it has one, else -1 (every mode).
 * Returns 0, or -1 with err when the handbook has no such mode. */
int so_hbcache_mode(const so_handbook_t *hb, const char *mode, int *index, char *err,
                    size_t errlen);

/* The current version as last read from Redis ("" if none yet). */
const char *so_hbcache_current(const so_hbcache_t *c);
void so_hbcache_stats(const so_hbcache_t *c, so_hbcache_stats_t *out);

#endif
