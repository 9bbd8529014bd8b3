/*
 * so_test_episode — episodes built on the stack for the credit, store and
 * cache tests: up to four turns of up to four demanded skills each; every
 * string is borrowed (literals).  Header-only.
 *
 *     so_t_ep_t e;
 *     so_t_ep_init(&e, "ep-1", "v1", 1);
 *     so_pb_turn_record_t *t = so_t_ep_turn(&e, "a1", 0.01);
 *     so_t_ep_demand(&e, t, "math.alg", 0.75);
 */
#ifndef SO_TEST_EPISODE_H
#define SO_TEST_EPISODE_H

#include "base/so_pb.h"

#include <string.h>

typedef struct {
    so_pb_episode_outcome_t ep;
    so_pb_turn_record_t turn[4];
    so_pb_turn_record_t *turns[4];
    so_pb_skill_weight_t w[4][4];
    so_pb_skill_weight_t *ws[4][4];
} so_t_ep_t;

static inline void so_t_ep_init(so_t_ep_t *e, const char *id, const char *version, int success)
{
    memset(e, 0, sizeof *e);
    skillorchestra__v1__episode_outcome__init(&e->ep);
    e->ep.episode_id = (char *) id;
    e->ep.handbook_version = (char *) version;
    e->ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
    e->ep.success = success;
    e->ep.turns = e->turns;
}

/* The next turn: agent, cost, 100 prompt and 10 completion tokens, 0.5 s. */
static inline so_pb_turn_record_t *so_t_ep_turn(so_t_ep_t *e, const char *agent, double cost)
{
    size_t i = e->ep.n_turns++;
    so_pb_turn_record_t *t = &e->turn[i];
    skillorchestra__v1__turn_record__init(t);
    t->turn_index = (uint32_t) i;
    t->agent_id = (char *) agent;
    t->cost_usd = cost;
    t->prompt_tokens = 100;
    t->completion_tokens = 10;
    t->latency_s = 0.5;
    t->demand = e->ws[i];
    e->turns[i] = t;
    return t;
}

static inline void so_t_ep_demand(so_t_ep_t *e, so_pb_turn_record_t *t, const char *skill,
                                  double w)
{
    size_t ti = (size_t) (t - e->turn), k = t->n_demand++;
    so_pb_skill_weight_t *x = &e->w[ti][k];
    skillorchestra__v1__skill_weight__init(x);
    x->skill_id = (char *) skill;
    x->weight = w;
    e->ws[ti][k] = x;
}

#endif
