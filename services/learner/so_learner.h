/*
 * so_learner — the learner's loop: consumes the episode log (the Redis
 * Stream so:episodes) in the consumer group "learners", applies each
 * episode to the statistics of the handbook version that routed it, and
 * refines the current handbook now and then.
 *
 *   XREADGROUP COUNT batch BLOCK block_ms  →  decode (so_store_decode_episode)
 *   → handbook of the episode's version (so_hbcache)  →  so_store_apply_many
 *   (one pipeline; so_apply is idempotent per episode)  →  XACK.
 *
 * An entry is acknowledged only after its episode was applied (or found
 * already applied), so a learner that dies mid-batch loses nothing: its
 * unacknowledged entries stay in the group's pending list, and a live
 * learner takes them over with XAUTOCLAIM once they have been idle for
 * claim_min_idle_ms.  Applying them again is harmless (so_apply counts an
 * episode id once), so any number of learners can run.
 *
 * Entries that cannot be used — no "pb" field, an EpisodeOutcome that does
 * not decode or validate, a handbook version Redis does not have, an
 * episode so_apply rejects — are logged, counted and copied to the
 * dead-letter stream so:episodes:dead (fields: src = the entry's id,
 * reason, consumer, pb when present), then acknowledged.
 *
 * Redis errors never stop the loop: a lost connection is retried with
 * exponential back-off (up to backoff_max_ms), and what was delivered but
 * not acknowledged is read again from this consumer's pending list.
 *
 * Refinement (refine_every > 0): every refine_check_ms the learner reads
 * the current version's sequence number; when refine_every episodes were
 * applied to it since the last check (so:refine:<version> holds the
 * sequence number of that check), it takes the lock so:refine:lock, loads
 * the version with its online statistics, runs so_refine_merge and, if any
 * skills merged, publishes the result as "<base>.r<N>" with
 * so_store_put_handbook_if (only if the current version has not moved
 * meanwhile).  Episodes keep the version they were routed with.
 */
#ifndef SO_LEARNER_H
#define SO_LEARNER_H

#include "method/so_refine.h"
#include "base/so_svc.h"

#include <stddef.h>
#include <stdint.h>

typedef struct so_learner so_learner_t;

typedef struct {
    const char *redis_url;
    const char *redis_prefix;  /* "so:" */
    int redis_timeout_ms;      /* per command, raised above block_ms (2000) */
    char consumer[129];        /* consumer name (default so_instance()) */
    const char *group;         /* "learners" */
    int batch;                 /* entries per read (100) */
    int block_ms;              /* XREADGROUP BLOCK (500) */
    int claim_min_idle_ms;     /* take over entries idle this long (30000) */
    int claim_every_ms;        /* XAUTOCLAIM period (5000) */
    size_t cache_versions;     /* handbooks kept (8) */
    int cache_ttl_ms;          /* re-read a cached handbook after (60000) */
    long dead_maxlen;          /* approximate cap of the dead-letter stream (100000) */
    int backoff_max_ms;        /* longest wait between reconnects (5000) */
    int stats_ms;              /* stats line period, 0 = off (10000) */
    long refine_every;         /* episodes between refinements, 0 = off (500) */
    int refine_check_ms;       /* how often to look (1000) */
    int refine_lock_ttl_ms;    /* (30000) */
    int refine_always_publish; /* publish even when nothing merged (0) */
    so_refine_opts_t merge;    /* alpha 0.05, min_attempts 30 */
} so_learner_opts_t;

typedef struct {
    uint64_t read;       /* entries delivered (new, pending or claimed) */
    uint64_t applied;    /* episodes newly counted */
    uint64_t duplicates; /* already applied before (redelivery, a peer) */
    uint64_t dead;       /* entries moved to the dead-letter stream */
    uint64_t claimed;    /* entries taken over from idle consumers */
    uint64_t batches;
    uint64_t redis_errors; /* failures of the connection */
    uint64_t refines;      /* refinement checks run under the lock */
    uint64_t published;    /* refined versions published */
} so_learner_stats_t;

void so_learner_opts_default(so_learner_opts_t *o);
/* Reads the keys documented in config/learner.conf into *o (strings are
 * borrowed from cfg).  0, or -1 with err naming the key. */
int so_learner_config(const so_config_t *cfg, so_learner_opts_t *o, char *err, size_t errlen);

/* Connects lazily: NULL only on bad options (err says which). */
so_learner_t *so_learner_new(const so_learner_opts_t *o, char *err, size_t errlen);
void so_learner_destroy(so_learner_t **self_p);

/* One round: cron work that is due, then one read (blocking up to
 * block_ms) and its batch applied and acknowledged.  Returns the number
 * of entries handled, or -1 when Redis failed (the caller backs off). */
int so_learner_step(so_learner_t *l);
/* Steps until so_stopping(), backing off while Redis is away.  Returns 0. */
int so_learner_run(so_learner_t *l);
void so_learner_stats(const so_learner_t *l, so_learner_stats_t *out);

#endif
