/*
 * so_credit — credit assignment: what one finished episode is worth to the
 * (agent, skill) statistics of the handbook that routed it.
 *
 * Pure: no Redis, no I/O.  so_store applies what it returns (the online
 * statistics so:stats:<version>, the rebuild and the in-memory replay all
 * go through so_credit_episode, so they cannot disagree).
 *
 * The rule (docs/SERVICES.md, "Credit assignment"): every turn credits its
 * agent on each skill of its demand with the skill's share of the demand
 * (positive finite weights normalised to sum 1 over the whole demand, so a
 * turn is worth one attempt; the share of skills hb does not know is
 * dropped), and with the turn's own score if it has one, else the
 * episode's outcome (success = 1/0, or the score).  A turn with no usable
 * demand credits the skills of its mode uniformly (every skill when it
 * names no known mode), as the router does for it.  Turns naming agents hb
 * does not know are skipped.  Each credited (agent, skill) pair adds, times
 * the weight w: successes w*score, attempts w, cost_usd, prompt and
 * completion tokens and latency w*the turn's, cost_count w.
 */
#ifndef SO_CREDIT_H
#define SO_CREDIT_H

#include "method/so_handbook.h"
#include "base/so_pb.h"

#include <stddef.h>

/* The increments of one (agent, skill) pair (indexes into hb). */
typedef struct {
    size_t agent, skill;
    so_stat_t d;
} so_credit_cell_t;

/* An episode's increments: one cell per distinct pair, in the order the
 * pairs were first credited. */
typedef struct {
    so_credit_cell_t *cells; /* owned; free with so_credit_free */
    size_t n;
    size_t skipped; /* turns or demand entries naming unknown ids */
} so_credit_t;

/* The episode's outcome as a score in [0, 1] when valid: 1/0 for a
 * success result, else the score. */
double so_credit_outcome(const so_pb_episode_outcome_t *ep);

/* Fills *out (always initialised; free with so_credit_free).  Returns 0,
 * or -1 with err when a turn's score (its own, or the outcome it falls
 * back on) is not a finite number in [0, 1] — then *out is empty.  The
 * caller checks that ep was routed by hb and validated it. */
int so_credit_episode(const so_handbook_t *hb, const so_pb_episode_outcome_t *ep,
                      so_credit_t *out, char *err, size_t errlen);
void so_credit_free(so_credit_t *c);

/* Adds c's cells onto deltas[n_agents * n_skills] (agent-major, as
 * hb->stats). */
void so_credit_accumulate(const so_credit_t *c, size_t n_skills, so_stat_t *deltas);

#endif
