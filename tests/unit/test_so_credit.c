/*
 * Tests for so_credit: the increments an episode is worth, without Redis
 * (test_so_store checks that so_store writes exactly these).
 */
#include "so_test_util.h"
#include "so_test_episode.h"
#include "method/so_credit.h"


/* modes: default, other; skills math, math.alg, math.geo, code (default),
 * talk (other); agents a1, a2. */
static so_handbook_t *s_handbook(void)
{
    so_handbook_t *hb = so_handbook_new("v1");
    so_t_mode(hb, "default");
    so_t_mode(hb, "other");
    so_t_skill(hb, "math", "default", NULL);
    so_t_skill(hb, "math.alg", "default", "math");
    so_t_skill(hb, "math.geo", "default", "math");
    so_t_skill(hb, "code", "default", NULL);
    so_t_skill(hb, "talk", "other", NULL);
    so_t_agent(hb, "a1", "", 1, 2, 0);
    so_t_agent(hb, "a2", "", 3, 4, 0);
    return hb;
}

static const so_stat_t *s_cell(const so_handbook_t *hb, const so_credit_t *c, const char *agent,
                               const char *skill)
{
    size_t a = (size_t) so_handbook_agent_index(hb, agent);
    size_t s = (size_t) so_handbook_skill_index(hb, skill);
    for (size_t i = 0; i < c->n; i++)
        if (c->cells[i].agent == a && c->cells[i].skill == s)
            return &c->cells[i].d;
    return NULL;
}

static void test_fractional_demand(void **state)
{
    (void) state;
    char err[256] = "";
    so_handbook_t *hb = s_handbook();
    so_t_ep_t e;
    so_credit_t c;
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_pb_turn_record_t *t = so_t_ep_turn(&e, "a1", 0.02);
    so_t_ep_demand(&e, t, "math.alg", 0.75);
    so_t_ep_demand(&e, t, "math.geo", 0.25);
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.skipped, 0);
    /* Cells in the order first credited. */
    assert_int_equal(c.cells[0].skill, (size_t) so_handbook_skill_index(hb, "math.alg"));
    const so_stat_t *d = s_cell(hb, &c, "a1", "math.alg");
    assert_non_null(d);
    SO_ASSERT_NEAR(d->attempts, 0.75, 1e-15);
    SO_ASSERT_NEAR(d->successes, 0.75, 1e-15);
    SO_ASSERT_NEAR(d->cost_usd, 0.015, 1e-15);
    SO_ASSERT_NEAR(d->prompt_tokens, 75, 1e-12);
    SO_ASSERT_NEAR(d->completion_tokens, 7.5, 1e-12);
    SO_ASSERT_NEAR(d->latency_s, 0.375, 1e-15);
    SO_ASSERT_NEAR(d->cost_count, 0.75, 1e-15);
    d = s_cell(hb, &c, "a1", "math.geo");
    SO_ASSERT_NEAR(d->attempts, 0.25, 1e-15);
    so_credit_free(&c);

    /* Weights not summing to 1 are normalised; unusable weights dropped. */
    so_t_ep_init(&e, "ep-1", "v1", 0);
    t = so_t_ep_turn(&e, "a2", 0);
    so_t_ep_demand(&e, t, "code", 0.2);
    so_t_ep_demand(&e, t, "math", 0.2);
    so_t_ep_demand(&e, t, "talk", -1);
    so_t_ep_demand(&e, t, "talk", NAN);
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 2);
    SO_ASSERT_NEAR(s_cell(hb, &c, "a2", "code")->attempts, 0.5, 1e-15);
    SO_ASSERT_NEAR(s_cell(hb, &c, "a2", "code")->successes, 0, 0);
    assert_null(s_cell(hb, &c, "a2", "talk"));
    so_credit_free(&c);
    so_handbook_destroy(&hb);
}

static void test_uniform_without_demand(void **state)
{
    (void) state;
    char err[256] = "";
    so_handbook_t *hb = s_handbook();
    so_t_ep_t e;
    so_credit_t c;
    /* The turn's mode: its four skills, a quarter each. */
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_t_ep_turn(&e, "a1", 0.04)->mode = "default";
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 4);
    SO_ASSERT_NEAR(s_cell(hb, &c, "a1", "math")->attempts, 0.25, 1e-15);
    SO_ASSERT_NEAR(s_cell(hb, &c, "a1", "code")->cost_usd, 0.01, 1e-15);
    assert_null(s_cell(hb, &c, "a1", "talk"));
    so_credit_free(&c);
    /* No mode (or an unknown one): every skill. */
    so_t_ep_init(&e, "ep-1", "v1", 0);
    so_t_ep_turn(&e, "a2", 0)->mode = "nope";
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 5);
    SO_ASSERT_NEAR(s_cell(hb, &c, "a2", "talk")->attempts, 0.2, 1e-15);
    SO_ASSERT_NEAR(s_cell(hb, &c, "a2", "talk")->successes, 0, 0);
    so_credit_free(&c);
    /* Only zero weights: treated as no demand. */
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_pb_turn_record_t *t = so_t_ep_turn(&e, "a1", 0);
    t->mode = "other";
    so_t_ep_demand(&e, t, "code", 0);
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 1);
    SO_ASSERT_NEAR(s_cell(hb, &c, "a1", "talk")->attempts, 1, 1e-15);
    so_credit_free(&c);
    so_handbook_destroy(&hb);
}

static void test_multi_turn_scores(void **state)
{
    (void) state;
    char err[256] = "";
    so_handbook_t *hb = s_handbook();
    so_t_ep_t e;
    so_credit_t c;
    so_t_ep_init(&e, "ep-1", "v1", 0); /* the episode failed ... */
    so_pb_turn_record_t *t0 = so_t_ep_turn(&e, "a1", 0.01);
    so_t_ep_demand(&e, t0, "code", 1);
    t0->score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
    t0->score = 0.9; /* ... turn 0 has its own score */
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a2", 0.02), "code", 1);
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a1", 0.03), "code", 1); /* same pair again: one cell */
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 2);
    const so_stat_t *d = s_cell(hb, &c, "a1", "code");
    SO_ASSERT_NEAR(d->attempts, 2, 1e-15);
    SO_ASSERT_NEAR(d->successes, 0.9, 1e-15);
    SO_ASSERT_NEAR(d->cost_usd, 0.04, 1e-15);
    SO_ASSERT_NEAR(d->cost_count, 2, 1e-15);
    d = s_cell(hb, &c, "a2", "code");
    SO_ASSERT_NEAR(d->attempts, 1, 1e-15);
    SO_ASSERT_NEAR(d->successes, 0, 0);

    /* Accumulating into a dense table (the replay). */
    so_stat_t deltas[2 * 5];
    memset(deltas, 0, sizeof deltas);
    so_credit_accumulate(&c, hb->n_skills, deltas);
    so_credit_accumulate(&c, hb->n_skills, deltas);
    SO_ASSERT_NEAR(deltas[0 * 5 + 3].attempts, 4, 1e-15);
    SO_ASSERT_NEAR(deltas[1 * 5 + 3].cost_usd, 0.04, 1e-15);
    so_credit_free(&c);

    /* A score outcome credits its value. */
    so_t_ep_init(&e, "ep-1", "v1", 0);
    e.ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE;
    e.ep.score = 0.25;
    SO_ASSERT_NEAR(so_credit_outcome(&e.ep), 0.25, 0);
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a2", 0), "math.geo", 1);
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), 0);
    SO_ASSERT_NEAR(s_cell(hb, &c, "a2", "math.geo")->successes, 0.25, 1e-15);
    so_credit_free(&c);
    so_handbook_destroy(&hb);
}

static void test_unknown_and_bad_scores(void **state)
{
    (void) state;
    char err[256] = "";
    so_handbook_t *hb = s_handbook();
    so_t_ep_t e;
    so_credit_t c;
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_t_ep_demand(&e, so_t_ep_turn(&e, "ghost", 0), "code", 1);   /* unknown agent */
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a1\x1fx", 0), "code", 1); /* separator in an id */
    so_pb_turn_record_t *t = so_t_ep_turn(&e, "a1", 0);
    so_t_ep_demand(&e, t, "nope", 0.5); /* unknown skill */
    so_t_ep_demand(&e, t, "math.alg", 0.5);
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), 0);
    assert_int_equal(c.skipped, 3);
    assert_int_equal(c.n, 1);
    SO_ASSERT_NEAR(s_cell(hb, &c, "a1", "math.alg")->attempts, 0.5, 1e-15);
    so_credit_free(&c);

    /* A score outside [0, 1] (the turn's or the outcome's) is an error. */
    so_t_ep_init(&e, "ep-1", "v1", 1);
    t = so_t_ep_turn(&e, "a1", 0);
    so_t_ep_demand(&e, t, "code", 1);
    t->score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
    t->score = 1.5;
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "outside [0, 1]");
    assert_int_equal(c.n, 0);
    assert_null(c.cells);
    so_t_ep_init(&e, "ep-1", "v1", 1);
    e.ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE;
    e.ep.score = NAN;
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a1", 0), "code", 1);
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), -1);
    /* No turns: nothing, no error. */
    so_t_ep_init(&e, "ep-1", "v1", 1);
    assert_int_equal(so_credit_episode(hb, &e.ep, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 0);
    so_credit_free(&c);
    so_credit_free(NULL);
    so_handbook_destroy(&hb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fractional_demand),
        cmocka_unit_test(test_uniform_without_demand),
        cmocka_unit_test(test_multi_turn_scores),
        cmocka_unit_test(test_unknown_and_bad_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
