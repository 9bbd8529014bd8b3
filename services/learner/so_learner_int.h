/*
 * so_learner_int.h — what the learner's files share (so_learner.c: options,
 * connection and loop; so_learner_batch.c: reading, applying and
 * acknowledging; so_learner_refine.c: refinement).  Not for other code.
 */
#ifndef SO_LEARNER_INT_H
#define SO_LEARNER_INT_H

#include "so_learner.h"
#include "store/so_hbwatch.h"
#include "store/so_store.h"
#include "wire/so_wire.h"

#include <stdint.h>

#define S_KEY_MAX 512

typedef struct {
    char version[SO_WIRE_MAX_ID + 1];
    so_handbook_t *hb;             /* NULL: Redis has no usable handbook of this version */
    char why[256];                 /* why hb is NULL */
    int64_t loaded_ms;
    uint64_t used;                 /* batch generation of the last use */
} so_lrn_cached_t;

struct so_learner {
    so_learner_opts_t o;
    char *url, *prefix, *group;
    so_store_t *store;
    so_hbwatch_t *watch;           /* hb:current, on store (no log lines of its own) */
    char k_log[S_KEY_MAX], k_dead[S_KEY_MAX];
    so_lrn_cached_t *cache;
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

/* Marks the connection lost (logged once per outage); l->err says why. */
void so_lrn_down(so_learner_t *l);
/* One XREADGROUP from id ("0": our pending entries, not blocking; ">":
 * new ones, blocking) and its batch handled.  Entries handled, or -1. */
int so_lrn_read(so_learner_t *l, const char *id, int block);
/* XAUTOCLAIM pages handled.  Entries handled, or -1. */
int so_lrn_claim(so_learner_t *l);
void so_lrn_cache_free(so_learner_t *l);
/* 0 (done or not due) or -1 (Redis failed). */
int so_lrn_refine_tick(so_learner_t *l);

#endif
