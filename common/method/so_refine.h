/*
 * so_refine — online refinement: how a live handbook's skill set adapts to
 * the statistics the learner service gathers.  Today one step: merging
 * sibling skills that no agent tells apart (the skills exist where agents
 * differ; where they stop differing, one skill is enough).  Works on a
 * handbook alone (no prompts, no store); the result is a new handbook.
 */
#ifndef SO_REFINE_H
#define SO_REFINE_H

#include "method/so_handbook.h"

#include <stddef.h>

/* Merges leaf skills that share a mode and a parent when no agent's success
 * rate differs between them — the merge test of offline learning (so_learn,
 * step 3), run on a handbook's statistics instead of on prompts.  A pair is a candidate only when every available agent has at
 * least min_attempts on both skills; it merges when the smallest per-agent
 * two-proportion p-value is >= alpha.  Most similar pair first, repeated
 * until no pair qualifies (or max_merges). */
typedef struct {
    double alpha;        /* default 0.05 */
    double min_attempts; /* evidence per agent and skill (default 30) */
    size_t max_merges;   /* per call, 0 = no limit */
} so_refine_opts_t;

void so_refine_opts_default(so_refine_opts_t *o);

/* Returns a new handbook (caller destroys it) named version, with
 * parent_version = hb->version and hb's statistics as its bootstrap: a
 * merged skill keeps the id, mode and parent of the lower-indexed skill,
 * joins names, indicators and examples, averages the learned terms weighted
 * by attempts, and sums every agent's statistics.  *merged (may be NULL)
 * receives the number of merges; with 0 the result is a copy of hb under
 * the new version.  NULL with err when a handbook cannot be built. */
so_handbook_t *so_refine_merge(const so_handbook_t *hb, const so_refine_opts_t *o,
                               const char *version, size_t *merged, char *err, size_t errlen);

#endif
