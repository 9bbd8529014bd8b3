/*
 * so_learner_int.h — what the learner's files share (so_learner.c: options,
 * connection and loop; so_learner_batch.c: reading, applying and
 * acknowledging; so_learner_refine.c: refinement).  Not for other code.
 */
#ifndef SO_LEARNER_INT_H
#define SO_LEARNER_INT_H

#include "so_learner.h"
#include "store/so_hbcache.h"
#include "store/so_hbwatch.h"
#include "store/so_store.h"
#include "wire/so_wire.h"

#include <stdint.h>

#define S_KEY_MAX 512

struct so_learner {
    so_learner_opts_t o;
    char *url, *prefix, *group;
    so_store_t *store;
    so_hbwatch_t *watch; /* hb:current, on store (no log lines of its own) */
    char k_log[S_KEY_MAX], k_dead[S_KEY_MAX];
    so_hbcache_t *books; /* the handbooks of episodes' versions, on store */
    int up;              /* connected and the group exists */
    int was_up;          /* for logging an outage once */
    int recover;         /* read our own pending entries before new ones */
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
/* 0 (done or not due) or -1 (Redis failed). */
int so_lrn_refine_tick(so_learner_t *l);

#endif
