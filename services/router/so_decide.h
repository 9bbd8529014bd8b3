/*
 * so_decide — the router's request handler: a RouteRequest (turn + skill
 * demand) in, a RoutingDecision out, from the handbook version the demand
 * names (so_hbcache: tables rebuilt when the online stats move, so a
 * decision never waits on Redis).
 *
 * The decision honours the turn's mode, exclude_agents, budget_usd and
 * lambda, and its routing_profile (so_profile.h): a named set of λ (used
 * when the turn sets none), exploration (Thompson, explore floor) and
 * excluded agents; no profile means opts' own settings.  The decision's
 * reason names the profile used.  Each decision draws from an RNG seeded by
 * so_rng_mix(opts.seed, hash(episode_id) ⊕ turn_index), so the same request
 * against the same handbook version and stats sequence number gives the
 * same decision (the reason names both).
 *
 * Errors are TurnReplies carrying the request id and an Error:
 * NO_ELIGIBLE_AGENT, BUDGET_EXHAUSTED (unless opts.budget_fallback: then the
 * cheapest agent over budget, strategy BUDGET_FALLBACK), UNKNOWN_HANDBOOK,
 * UNAVAILABLE (version not cached and Redis unreachable), INVALID_REQUEST
 * (a routing_profile not configured, a skill or mode the handbook lacks,
 * turn and demand of different versions).
 */
#ifndef SO_DECIDE_H
#define SO_DECIDE_H

#include "so_profile.h"
#include "store/so_hbcache.h"
#include "wire/so_server.h"

#include <stdint.h>

typedef struct {
    double lambda;                 /* when the turn sets none (default 0.055) */
    int thompson;                  /* sample competence (default 1, as so-eval --online) */
    double explore_floor;          /* uniform pick probability (default 0.02, as so-eval) */
    uint64_t seed;                 /* mixed into every decision's seed (default 1) */
    int budget_fallback;           /* 1: nothing fits the budget → cheapest; 0: error */
    const so_profiles_t *profiles; /* borrowed, outlives the handler; NULL = none */
} so_decide_opts_t;

void so_decide_opts_default(so_decide_opts_t *o);

typedef struct so_decide so_decide_t;

/* Borrows cache (built with with_router); it must outlive the handler. */
so_decide_t *so_decide_new(so_hbcache_t *cache, const so_decide_opts_t *opts);
void so_decide_destroy(so_decide_t **self_p);

/* The seed of a decision (exposed for replay tools and tests). */
uint64_t so_decide_seed(uint64_t config_seed, const char *episode_id, uint32_t turn_index);

/* so_server callbacks; arg is the so_decide_t. */
so_server_result_t so_decide_handle(void *arg, void *sock, const so_wire_envelope_t *env,
                                    void *msg);
int so_decide_tick(void *arg);
void so_decide_stats(void *arg, char *buf, size_t len);

#endif
