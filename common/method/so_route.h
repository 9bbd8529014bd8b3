/*
 * so_route — the routing rule.
 *
 *   score(a) = Σ_s w_s·ĉ(a,s) / Σ_s w_s  −  λ·c̃(a)
 *
 * ĉ(a,s) is the posterior mean of agent a's competence on skill s, and c̃(a)
 * its expected cost under the demand, normalised over the eligible
 * candidates (c/max c, or on a log scale).  Unlike the reference:
 *   - competence is a Beta posterior mean, never the raw success rate, so an
 *     unseen agent gets its prior (not 0) and 9/10 beats 1/1;
 *   - when an agent has fewer than min_obs observations on a skill, the
 *     skill's prior is centred on the estimate one level up: the parent
 *     skill (counting its whole subtree), then the agent's whole mode, then
 *     the global prior — hierarchical back-off, weighted by how much the
 *     skill itself has seen;
 *   - cost enters the score through λ, not only as a tie-break.
 *
 * Exploration (optional): Thompson sampling replaces ĉ with a draw from the
 * demand-weighted Beta posterior, and with probability explore_floor a
 * uniformly chosen eligible agent is taken, so routing cannot collapse onto
 * one agent.  Draws come from a seeded RNG: same seed, same decision.
 *
 * so_route_tables_t holds the back-off tables precomputed from a handbook, so a
 * decision costs O(agents × skills with weight) and touches no shared state;
 * rebuild it (so_route_tables_refresh) when the handbook's statistics change.
 */
#ifndef SO_ROUTE_H
#define SO_ROUTE_H

#include "method/so_handbook.h"

#include <stdint.h>

#define SO_ROUTE_TOP 5 /* skills shown in an explanation */

typedef enum {
    SO_COST_LINEAR = 0, /* c / max c over candidates */
    SO_COST_LOG = 1     /* (log c − log min) / (log max − log min) */
} so_cost_norm_t;

typedef enum {
    SO_STRATEGY_GREEDY = 0,
    SO_STRATEGY_THOMPSON = 1,
    SO_STRATEGY_EXPLORE_UNIFORM = 2,
    SO_STRATEGY_BUDGET_FALLBACK = 3
} so_strategy_t;

typedef struct {
    double min_obs;           /* back off below this many attempts (default 10) */
    so_cost_norm_t cost_norm; /* default SO_COST_LINEAR */
} so_route_opts_t;

typedef struct {
    int mode;                 /* mode index, -1 = any */
    double lambda;            /* cost trade-off, >= 0 */
    double budget_usd;        /* remaining budget for this turn, 0 = none */
    double est_prompt_tokens; /* for context limits and price-based cost */
    double est_completion_tokens;
    int thompson;                 /* sample competence from the posteriors */
    double explore_floor;         /* probability of a uniform pick, [0,1] */
    uint64_t seed;                /* per-decision seed (see so_rng_mix) */
    const unsigned char *exclude; /* [n_agents], nonzero = not a candidate; may be NULL */
} so_route_req_t;

typedef struct {
    int skill;
    double weight;              /* normalised demand weight */
    double competence;          /* ĉ(a, skill) */
    double successes, attempts; /* the skill's own counts for this agent */
    int backoff_level;          /* 0 own data, 1.. parent levels, then mode, then prior */
} so_skill_comp_t;

typedef struct {
    int eligible;
    const char *excluded; /* static reason when not eligible */
    double competence;    /* demand-weighted ĉ */
    double sampled;       /* the value used in the score (Thompson draw or ĉ) */
    double cost;          /* expected USD for this turn */
    double cost_norm;
    double score;
    so_skill_comp_t top[SO_ROUTE_TOP];
    size_t n_top;
} so_agent_score_t;

typedef struct {
    int chosen;    /* agent index, -1 if no candidate */
    int runner_up; /* -1 if none */
    so_strategy_t strategy;
    double lambda;
    int top_skills[SO_ROUTE_TOP];
    double top_weights[SO_ROUTE_TOP];
    size_t n_top;
    so_agent_score_t *scores; /* [n_agents], owned */
    size_t n_agents, cap;
    char reason[320];
} so_decision_t;

typedef struct so_route_tables so_route_tables_t;

void so_route_opts_default(so_route_opts_t *o);
/* Borrows hb: it must outlive the router (or be handed to refresh). */
so_route_tables_t *so_route_tables_new(const so_handbook_t *hb, const so_route_opts_t *opts);
void so_route_tables_destroy(so_route_tables_t **self_p);
/* Recomputes the tables from hb (same or replacement handbook). */
void so_route_tables_refresh(so_route_tables_t *r, const so_handbook_t *hb);
const so_handbook_t *so_route_tables_handbook(const so_route_tables_t *r);

/* Back-off estimate: posterior pseudo-counts of agent on skill. */
void so_route_posterior(const so_route_tables_t *r, size_t agent, size_t skill, double *alpha,
                        double *beta, int *level);
/* Expected cost of agent on skill in USD (NAN when nothing is known). */
double so_route_skill_cost(const so_route_tables_t *r, size_t agent, size_t skill);

void so_route_req_default(so_route_req_t *q);
void so_decision_init(so_decision_t *d);
void so_decision_free(so_decision_t *d);

/* Routes one turn given its demand (dense, [n_skills], weights >= 0; all
 * zero means uniform over the mode's skills).  Returns 0, or -1 when no
 * agent is a candidate (d->reason says why). */
int so_route(const so_route_tables_t *r, const double *demand, const so_route_req_t *q,
             so_decision_t *d);

const char *so_strategy_name(so_strategy_t s);

#endif
