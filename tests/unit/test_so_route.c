/* Unit tests for so_route: Beta posteriors with hierarchical back-off, the
 * competence/cost trade-off, exploration, candidate filtering and budgets. */
#include "so_test_util.h"
#include "method/so_route.h"
#include "base/so_rng.h"

/* Fixture: what a test builds, freed by teardown even after a failure. */
typedef struct {
    so_handbook_t *hb;
    so_route_tables_t *r;
    so_decision_t d;
    so_route_req_t q;
} s_fix_t;

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->hb = so_handbook_new("test");
    so_decision_init(&f->d);
    so_route_req_default(&f->q);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    so_route_tables_destroy(&f->r);
    so_decision_free(&f->d);
    so_handbook_destroy(&f->hb);
    free(f);
    return 0;
}

static void s_router(s_fix_t *f, double min_obs, so_cost_norm_t norm)
{
    so_route_opts_t o;
    so_route_opts_default(&o);
    o.min_obs = min_obs;
    o.cost_norm = norm;
    so_route_tables_destroy(&f->r);
    f->r = so_route_tables_new(f->hb, &o);
    assert_non_null(f->r);
}

static double s_mean(const so_route_tables_t *r, int agent, int skill, int *level)
{
    double a, b;
    so_route_posterior(r, (size_t) agent, (size_t) skill, &a, &b, level);
    return a / (a + b);
}

static int s_route_ok(s_fix_t *f, const double *demand)
{
    int rc = so_route(f->r, demand, &f->q, &f->d);
    if (rc != 0)
        fail_msg("so_route failed: %s", f->d.reason);
    return f->d.chosen;
}

static void test_defaults(void **state)
{
    s_fix_t *f = *state;
    so_route_opts_t o;
    so_route_opts_default(&o);
    assert_true(o.min_obs == 10);
    assert_int_equal(o.cost_norm, SO_COST_LINEAR);
    assert_int_equal(f->q.mode, -1);
    assert_true(f->q.lambda == 0 && f->q.budget_usd == 0 && f->q.thompson == 0);
    assert_null(f->q.exclude);
    assert_int_equal(f->d.chosen, -1);
    assert_string_equal(so_strategy_name(SO_STRATEGY_GREEDY), "greedy");
    assert_string_equal(so_strategy_name(SO_STRATEGY_THOMPSON), "thompson");
    assert_string_equal(so_strategy_name(SO_STRATEGY_EXPLORE_UNIFORM), "explore-uniform");
    assert_string_equal(so_strategy_name(SO_STRATEGY_BUDGET_FALLBACK), "budget-fallback");
    so_route_tables_t *r = so_route_tables_new(f->hb, NULL); /* NULL opts: defaults */
    assert_true(so_route_tables_handbook(r) == f->hb);
    so_route_tables_destroy(&r);
    assert_null(r);
    so_route_tables_destroy(&r);
}

/* An agent that has never been seen scores the prior mean, not 0. */
static void test_prior_case(void **state)
{
    s_fix_t *f = *state;
    f->hb->prior_alpha = 3;
    f->hb->prior_beta = 1;
    so_t_mode(f->hb, "m");
    int s = so_t_skill(f->hb, "s", "m", NULL);
    int a = so_t_agent(f->hb, "a", NULL, 0, 0, 0);
    so_t_agent(f->hb, "b", NULL, 0, 0, 0);
    s_router(f, 10, SO_COST_LINEAR);

    int level = -1;
    SO_ASSERT_NEAR(s_mean(f->r, a, s, &level), 0.75, 1e-12);
    assert_true(level > 0);
    double demand[1] = { 1 };
    s_route_ok(f, demand);
    SO_ASSERT_NEAR(f->d.scores[0].competence, 0.75, 1e-12);
    SO_ASSERT_NEAR(f->d.scores[1].competence, 0.75, 1e-12);
    assert_true(f->d.scores[0].top[0].backoff_level > 0);
    assert_true(f->d.scores[0].top[0].attempts == 0);

    /* Also with back-off off: plain Beta(3,1). */
    s_router(f, 0, SO_COST_LINEAR);
    SO_ASSERT_NEAR(s_mean(f->r, a, s, &level), 0.75, 1e-12);
    assert_int_equal(level, 0);
}

/* Posterior mean: 9/10 → 10/12 beats 1/1 → 2/3 (the raw rate would not). */
static void test_nine_of_ten_beats_one_of_one(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    int s = so_t_skill(f->hb, "s", "m", NULL);
    int one = so_t_agent(f->hb, "one-of-one", NULL, 0, 0, 0);
    int nine = so_t_agent(f->hb, "nine-of-ten", NULL, 0, 0, 0);
    so_t_stat(f->hb, one, s, 1, 1, 0.001);
    so_t_stat(f->hb, nine, s, 9, 10, 0.001);
    double demand[1] = { 1 };

    s_router(f, 0, SO_COST_LINEAR); /* plain Beta(1,1) posterior */
    SO_ASSERT_NEAR(s_mean(f->r, nine, s, NULL), 10.0 / 12.0, 1e-12);
    SO_ASSERT_NEAR(s_mean(f->r, one, s, NULL), 2.0 / 3.0, 1e-12);
    assert_int_equal(s_route_ok(f, demand), nine);
    assert_int_equal(f->d.runner_up, one);

    s_router(f, 10, SO_COST_LINEAR); /* with back-off: still */
    assert_int_equal(s_route_ok(f, demand), nine);
}

/* Hierarchical back-off: child → parent (subtree) → mode → prior. */
static void test_backoff(void **state)
{
    s_fix_t *f = *state;
    so_handbook_t *hb = f->hb;
    so_t_mode(hb, "m");
    int P = so_t_skill(hb, "p", "m", NULL);
    int C = so_t_skill(hb, "p.c", "m", "p");
    int Q = so_t_skill(hb, "q", "m", NULL);
    int X = so_t_agent(hb, "x", NULL, 0, 0, 0); /* 2 on the child, 100 on the parent */
    int Y = so_t_agent(hb, "y", NULL, 0, 0, 0); /* 0 on the child, 100 on the parent */
    int Z = so_t_agent(hb, "z", NULL, 0, 0, 0); /* only the mode's other skill */
    int W = so_t_agent(hb, "w", NULL, 0, 0, 0); /* nothing */
    int V = so_t_agent(hb, "v", NULL, 0, 0, 0); /* enough on the child */
    so_t_stat(hb, X, C, 0, 2, -1);
    so_t_stat(hb, X, P, 90, 100, -1);
    so_t_stat(hb, Y, P, 90, 100, -1);
    so_t_stat(hb, Z, Q, 80, 100, -1);
    so_t_stat(hb, V, C, 20, 30, -1);
    so_t_stat(hb, V, P, 90, 100, -1);
    s_router(f, 10, SO_COST_LINEAR);
    int lc, lp;

    /* X: parent subtree 90/102 → p = 91/104; the child's 0/2 moves a
     * prior of strength 2 centred there: (2p + 0) / (2 + 2). */
    double p_parent = s_mean(f->r, X, P, &lp);
    SO_ASSERT_NEAR(p_parent, 91.0 / 104.0, 1e-12);
    assert_int_equal(lp, 0);
    double c = s_mean(f->r, X, C, &lc);
    SO_ASSERT_NEAR(c, (2 * p_parent) / 4.0, 1e-12);
    assert_true(c > 1.0 / 4.0); /* pulled up from the plain 1/4 */
    assert_true(c < p_parent);
    assert_int_equal(lc, 1);

    /* Y: nothing on the child → exactly the parent's estimate. */
    p_parent = s_mean(f->r, Y, P, &lp);
    SO_ASSERT_NEAR(p_parent, 91.0 / 102.0, 1e-12);
    SO_ASSERT_NEAR(s_mean(f->r, Y, C, &lc), p_parent, 1e-12);
    assert_true(lc > 0);

    /* Z: parent unseen too → the mode's estimate, one level further. */
    double p_mode = 81.0 / 102.0;
    SO_ASSERT_NEAR(s_mean(f->r, Z, Q, NULL), p_mode, 1e-12);
    SO_ASSERT_NEAR(s_mean(f->r, Z, P, &lp), p_mode, 1e-12);
    SO_ASSERT_NEAR(s_mean(f->r, Z, C, &lc), p_mode, 1e-12);
    assert_true(lp > 0);
    assert_true(lc > lp);

    /* W: nothing anywhere → the global prior. */
    SO_ASSERT_NEAR(s_mean(f->r, W, C, &lc), 0.5, 1e-12);
    assert_true(lc > 2);

    /* V: min_obs met on the child → plain posterior, whatever the parent. */
    SO_ASSERT_NEAR(s_mean(f->r, V, C, &lc), 21.0 / 32.0, 1e-12);
    assert_int_equal(lc, 0);

    /* The decision's breakdown reports the same. */
    double demand[3] = { 0 };
    demand[C] = 1;
    s_route_ok(f, demand);
    assert_int_equal(f->d.scores[X].n_top, 1);
    assert_int_equal(f->d.scores[X].top[0].skill, C);
    assert_int_equal(f->d.scores[X].top[0].backoff_level, 1);
    assert_true(f->d.scores[X].top[0].attempts == 2);
    SO_ASSERT_NEAR(f->d.scores[X].competence, (2 * 91.0 / 104.0) / 4.0, 1e-12);
    assert_int_equal(f->d.scores[V].top[0].backoff_level, 0);
    /* Y has the parent's 91/102 on the child, the best of the five. */
    assert_int_equal(f->d.chosen, Y);
}

/* Three agents: A best and dearest, B nearly as good and ten times
 * cheaper, C mediocre and cheapest. */
static void s_three_agents(s_fix_t *f, int *A, int *B, int *C, int *s)
{
    so_t_mode(f->hb, "m");
    *s = so_t_skill(f->hb, "s", "m", NULL);
    *A = so_t_agent(f->hb, "a-dear", NULL, 0, 0, 0);
    *B = so_t_agent(f->hb, "b-mid", NULL, 0, 0, 0);
    *C = so_t_agent(f->hb, "c-cheap", NULL, 0, 0, 0);
    so_t_stat(f->hb, *A, *s, 80, 100, 0.01);
    so_t_stat(f->hb, *B, *s, 79, 100, 0.001);
    so_t_stat(f->hb, *C, *s, 50, 100, 0.0001);
}

static void test_lambda_trade_off(void **state)
{
    s_fix_t *f = *state;
    int A, B, C, s;
    s_three_agents(f, &A, &B, &C, &s);
    s_router(f, 10, SO_COST_LINEAR);
    double demand[1] = { 1 };

    f->q.lambda = 0;
    assert_int_equal(s_route_ok(f, demand), A); /* most competent, whatever it costs */
    assert_int_equal(f->d.strategy, SO_STRATEGY_GREEDY);
    assert_true(f->d.lambda == 0);
    SO_ASSERT_NEAR(f->d.scores[A].score, 81.0 / 102.0, 1e-12);
    f->q.lambda = 1;
    assert_int_equal(s_route_ok(f, demand), B); /* cheap among the similar */
    f->q.lambda = 100;
    assert_int_equal(s_route_ok(f, demand), C); /* cheapest outright */
    SO_ASSERT_NEAR(f->d.scores[C].score, 51.0 / 102.0 - 100 * 0.01, 1e-9);
}

/* Hand-computed scores under both cost normalisations. */
static void test_cost_normalisation(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    int s = so_t_skill(f->hb, "s", "m", NULL);
    const double cost[3] = { 0.001, 0.01, 0.1 };
    for (int a = 0; a < 3; a++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", a);
        so_t_agent(f->hb, id, NULL, 0, 0, 0);
        so_t_stat(f->hb, a, s, 50, 100, cost[a]); /* competence 51/102 = 0.5 */
    }
    double demand[1] = { 1 };
    f->q.lambda = 0.5;

    s_router(f, 10, SO_COST_LINEAR);
    s_route_ok(f, demand);
    const double lin[3] = { 0.01, 0.1, 1.0 };
    for (int a = 0; a < 3; a++) {
        SO_ASSERT_NEAR(f->d.scores[a].cost, cost[a], 1e-15);
        SO_ASSERT_NEAR(f->d.scores[a].cost_norm, lin[a], 1e-12);
        SO_ASSERT_NEAR(f->d.scores[a].score, 0.5 - 0.5 * lin[a], 1e-12);
        SO_ASSERT_NEAR(so_route_skill_cost(f->r, a, s), cost[a], 1e-15);
    }
    assert_int_equal(f->d.chosen, 0);
    assert_int_equal(f->d.runner_up, 1);

    s_router(f, 10, SO_COST_LOG);
    s_route_ok(f, demand);
    const double lg[3] = { 0.0, 0.5, 1.0 }; /* log10 steps of 1 over a range of 2 */
    for (int a = 0; a < 3; a++) {
        SO_ASSERT_NEAR(f->d.scores[a].cost_norm, lg[a], 1e-12);
        SO_ASSERT_NEAR(f->d.scores[a].score, 0.5 - 0.5 * lg[a], 1e-12);
    }
    assert_int_equal(f->d.chosen, 0);
}

/* No cost observed: price × tokens; nothing at all: the others' mean. */
static void test_price_based_cost(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    int s = so_t_skill(f->hb, "s", "m", NULL);
    int priced = so_t_agent(f->hb, "priced", NULL, 2.0, 8.0, 0); /* USD per 1M tokens */
    int seen = so_t_agent(f->hb, "seen", NULL, 0, 0, 0);
    int blank = so_t_agent(f->hb, "blank", NULL, 0, 0, 0);
    so_t_stat(f->hb, seen, s, 5, 10, 0.006);
    s_router(f, 10, SO_COST_LINEAR);
    assert_true(isnan(so_route_skill_cost(f->r, priced, s)));
    f->q.est_prompt_tokens = 1000;
    f->q.est_completion_tokens = 250;
    double demand[1] = { 1 };
    s_route_ok(f, demand);
    SO_ASSERT_NEAR(f->d.scores[priced].cost, (2.0 * 1000 + 8.0 * 250) / 1e6, 1e-15);
    SO_ASSERT_NEAR(f->d.scores[seen].cost, 0.006, 1e-15);
    SO_ASSERT_NEAR(f->d.scores[blank].cost, (0.004 + 0.006) / 2, 1e-15);
}

/* A small handbook of three agents of similar, uncertain competence. */
static void s_similar_agents(s_fix_t *f)
{
    so_t_mode(f->hb, "m");
    so_t_skill(f->hb, "s0", "m", NULL);
    so_t_skill(f->hb, "s1", "m", NULL);
    for (int a = 0; a < 3; a++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", a);
        so_t_agent(f->hb, id, NULL, 0, 0, 0);
        so_t_stat(f->hb, a, 0, 6 + a, 12, 0.01);
        so_t_stat(f->hb, a, 1, 8 - a, 12, 0.01);
    }
    s_router(f, 10, SO_COST_LINEAR);
}

static void test_thompson_reproducible(void **state)
{
    s_fix_t *f = *state;
    s_similar_agents(f);
    double demand[2] = { 0.6, 0.4 };
    int chosen[2][100];
    double sampled[2][100][3];
    f->q.thompson = 1;
    for (int run = 0; run < 2; run++)
        for (int i = 0; i < 100; i++) {
            f->q.seed = so_rng_mix(12345, (uint64_t) i);
            chosen[run][i] = s_route_ok(f, demand);
            assert_int_equal(f->d.strategy, SO_STRATEGY_THOMPSON);
            for (int a = 0; a < 3; a++)
                sampled[run][i][a] = f->d.scores[a].sampled;
        }
    assert_memory_equal(chosen[0], chosen[1], sizeof chosen[0]);
    assert_memory_equal(sampled[0], sampled[1], sizeof sampled[0]);

    /* Other seeds: other draws and another sequence of choices. */
    int same_draws = 0, same_choice = 0, differs_from_mean = 0;
    for (int i = 0; i < 100; i++) {
        f->q.seed = so_rng_mix(54321, (uint64_t) i);
        same_choice += s_route_ok(f, demand) == chosen[0][i];
        same_draws += f->d.scores[0].sampled == sampled[0][i][0];
        differs_from_mean += f->d.scores[0].sampled != f->d.scores[0].competence;
    }
    assert_int_equal(same_draws, 0);
    assert_true(same_choice < 100);
    assert_int_equal(differs_from_mean, 100);
}

static void test_explore_floor(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    int s = so_t_skill(f->hb, "s", "m", NULL);
    for (int a = 0; a < 4; a++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", a);
        so_t_agent(f->hb, id, NULL, 0, 0, 0);
        so_t_stat(f->hb, a, s, 20 * a, 100, 0.01); /* clearly ranked: a3 best */
    }
    s_router(f, 10, SO_COST_LINEAR);
    unsigned char exclude[4] = { 0, 0, 1, 0 };
    double demand[1] = { 1 };
    int count[4] = { 0 };
    const int N = 3000;

    f->q.exclude = exclude;
    f->q.explore_floor = 1;
    for (int i = 0; i < N; i++) {
        f->q.seed = (uint64_t) i;
        count[s_route_ok(f, demand)]++;
        assert_int_equal(f->d.strategy, SO_STRATEGY_EXPLORE_UNIFORM);
    }
    assert_int_equal(count[2], 0); /* never an excluded one */
    for (int a = 0; a < 4; a++)
        if (a != 2 && (count[a] < 850 || count[a] > 1150))
            fail_msg("agent %d picked %d of %d times under explore_floor=1", a, count[a], N);

    /* No floor, no sampling: deterministic greedy. */
    f->q.explore_floor = 0;
    for (int i = 0; i < N; i++) {
        f->q.seed = (uint64_t) i;
        assert_int_equal(s_route_ok(f, demand), 3);
        assert_int_equal(f->d.strategy, SO_STRATEGY_GREEDY);
        assert_true(f->d.scores[3].sampled == f->d.scores[3].competence);
    }
}

/* Thompson keeps a cheap, little-known agent in play. */
static void test_thompson_no_collapse(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    int s = so_t_skill(f->hb, "s", "m", NULL);
    int A = so_t_agent(f->hb, "known", NULL, 0, 0, 0);
    int B = so_t_agent(f->hb, "cheap-new", NULL, 0, 0, 0);
    so_t_stat(f->hb, A, s, 80, 100, 0.01);
    so_t_stat(f->hb, B, s, 2, 3, 0.001);
    s_router(f, 10, SO_COST_LINEAR);
    double demand[1] = { 1 };
    f->q.lambda = 0.1;

    for (int i = 0; i < 50; i++) { /* greedy never tries B */
        f->q.seed = (uint64_t) i;
        assert_int_equal(s_route_ok(f, demand), A);
    }
    f->q.thompson = 1;
    int picks_b = 0;
    for (int i = 0; i < 1000; i++) {
        f->q.seed = so_rng_mix(99, (uint64_t) i);
        picks_b += s_route_ok(f, demand) == B;
    }
    if (picks_b < 50 || picks_b > 950)
        fail_msg("cheap agent chosen %d of 1000 times under Thompson", picks_b);
}

static void test_candidate_filters(void **state)
{
    s_fix_t *f = *state;
    so_handbook_t *hb = f->hb;
    int search = so_t_mode(hb, "search");
    so_t_mode(hb, "code");
    so_t_skill(hb, "s.search", "search", NULL);
    so_t_skill(hb, "s.code", "code", NULL);
    int A = so_t_agent(hb, "a-search", "search", 0, 0, 0);
    int B = so_t_agent(hb, "b-code", "code", 0, 0, 0);
    int C = so_t_agent(hb, "c-any-1k", NULL, 0, 0, 1000);
    int D = so_t_agent(hb, "d-off", "search", 0, 0, 0);
    int E = so_t_agent(hb, "e-search", "search", 0, 0, 0);
    hb->agents[D].available = 0;
    /* Make the filtered-out agents the best, so a filter that leaks shows. */
    so_t_stat(hb, B, 0, 100, 100, 0.01);
    so_t_stat(hb, D, 0, 100, 100, 0.01);
    so_t_stat(hb, E, 0, 99, 100, 0.01);
    so_t_stat(hb, C, 0, 90, 100, 0.01);
    so_t_stat(hb, A, 0, 50, 100, 0.01);
    s_router(f, 10, SO_COST_LINEAR);
    double demand[2] = { 1, 0 };

    f->q.mode = search;
    f->q.est_prompt_tokens = 500;
    f->q.est_completion_tokens = 100;
    assert_int_equal(s_route_ok(f, demand), E);
    assert_true(f->d.scores[A].eligible && f->d.scores[C].eligible && f->d.scores[E].eligible);
    assert_false(f->d.scores[B].eligible);
    assert_string_equal(f->d.scores[B].excluded, "serves another mode");
    assert_false(f->d.scores[D].eligible);
    assert_string_equal(f->d.scores[D].excluded, "unavailable");
    assert_null(f->d.scores[C].excluded);

    unsigned char exclude[5] = { 0 };
    exclude[E] = 1;
    f->q.exclude = exclude;
    assert_int_equal(s_route_ok(f, demand), C);
    assert_string_equal(f->d.scores[E].excluded, "excluded by request");

    f->q.est_prompt_tokens = 2000; /* over c's 1000-token context */
    assert_int_equal(s_route_ok(f, demand), A);
    assert_string_equal(f->d.scores[C].excluded, "context limit");

    /* Any mode: b serves again. */
    f->q.mode = -1;
    assert_int_equal(s_route_ok(f, demand), B);
}

static void test_budget(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    int s = so_t_skill(f->hb, "s", "m", NULL);
    int A = so_t_agent(f->hb, "a", NULL, 0, 0, 0);
    int B = so_t_agent(f->hb, "b", NULL, 0, 0, 0);
    int C = so_t_agent(f->hb, "c", NULL, 0, 0, 0);
    so_t_stat(f->hb, A, s, 50, 100, 0.01);
    so_t_stat(f->hb, B, s, 60, 100, 0.02);
    so_t_stat(f->hb, C, s, 90, 100, 0.05);
    s_router(f, 10, SO_COST_LINEAR);
    double demand[1] = { 1 };

    f->q.budget_usd = 0.03;
    assert_int_equal(s_route_ok(f, demand), B); /* c would win but is over budget */
    assert_string_equal(f->d.scores[C].excluded, "over budget");
    assert_int_equal(f->d.strategy, SO_STRATEGY_GREEDY);

    f->q.budget_usd = 0.001;                    /* everyone over */
    assert_int_equal(s_route_ok(f, demand), A); /* the cheapest */
    assert_int_equal(f->d.strategy, SO_STRATEGY_BUDGET_FALLBACK);
    SO_ASSERT_CONTAINS(f->d.reason, "budget-fallback");

    f->hb->agents[A].available = 0; /* cheapest among the over-budget */
    assert_int_equal(s_route_ok(f, demand), B);
    assert_int_equal(f->d.strategy, SO_STRATEGY_BUDGET_FALLBACK);
}

static void test_no_candidate(void **state)
{
    s_fix_t *f = *state;
    double demand[1] = { 1 };

    /* No agents at all. */
    s_router(f, 10, SO_COST_LINEAR);
    assert_int_equal(so_route(f->r, NULL, &f->q, &f->d), -1);
    assert_int_equal(f->d.chosen, -1);
    SO_ASSERT_CONTAINS(f->d.reason, "no agents");

    so_t_mode(f->hb, "m");
    so_t_skill(f->hb, "s", "m", NULL);
    so_t_agent(f->hb, "a", NULL, 0, 0, 0);
    so_t_agent(f->hb, "b", NULL, 0, 0, 0);
    f->hb->agents[0].available = 0;
    f->hb->agents[1].available = 0;
    s_router(f, 10, SO_COST_LINEAR);
    assert_int_equal(so_route(f->r, demand, &f->q, &f->d), -1);
    assert_int_equal(f->d.chosen, -1);
    SO_ASSERT_CONTAINS(f->d.reason, "no candidate");
    SO_ASSERT_CONTAINS(f->d.reason, "unavailable");
}

static void test_top_skills_and_breakdown(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    for (int s = 0; s < 7; s++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", s);
        so_t_skill(f->hb, id, "m", NULL);
    }
    so_t_agent(f->hb, "a", NULL, 0, 0, 0);
    so_t_agent(f->hb, "b", NULL, 0, 0, 0);
    for (int s = 0; s < 7; s++) {
        so_t_stat(f->hb, 0, s, s, 12, 0.01);
        so_t_stat(f->hb, 1, s, 7 - s, 3 + s, 0.02);
    }
    s_router(f, 10, SO_COST_LINEAR);
    double demand[7] = { 1, 7, 3, 0, 5, 2, 4 }; /* sum 22 */
    s_route_ok(f, demand);

    const int want[5] = { 1, 4, 6, 2, 5 };
    assert_int_equal(f->d.n_top, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f->d.top_skills[i], want[i]);
        SO_ASSERT_NEAR(f->d.top_weights[i], demand[want[i]] / 22.0, 1e-12);
    }
    for (int a = 0; a < 2; a++) {
        const so_agent_score_t *sc = &f->d.scores[a];
        double comp = 0;
        for (int s = 0; s < 7; s++)
            comp += demand[s] / 22.0 * s_mean(f->r, a, s, NULL);
        SO_ASSERT_NEAR(sc->competence, comp, 1e-12);
        assert_true(sc->eligible);
        assert_int_equal(sc->n_top, 5);
        for (int i = 0; i < 5; i++) {
            int lvl;
            const so_stat_t *st = so_handbook_stat(f->hb, (size_t) a, (size_t) want[i]);
            assert_int_equal(sc->top[i].skill, want[i]);
            SO_ASSERT_NEAR(sc->top[i].weight, demand[want[i]] / 22.0, 1e-12);
            SO_ASSERT_NEAR(sc->top[i].competence, s_mean(f->r, a, want[i], &lvl), 1e-12);
            assert_true(sc->top[i].successes == st->successes);
            assert_true(sc->top[i].attempts == st->attempts);
            assert_int_equal(sc->top[i].backoff_level, lvl);
        }
    }
    assert_true(f->d.chosen >= 0 && f->d.runner_up >= 0 && f->d.runner_up != f->d.chosen);
    SO_ASSERT_CONTAINS(f->d.reason, f->hb->agents[f->d.chosen].id);
    SO_ASSERT_CONTAINS(f->d.reason, "greedy");
}

static void test_zero_demand_is_uniform_over_mode(void **state)
{
    s_fix_t *f = *state;
    int m0 = so_t_mode(f->hb, "m0");
    int m1 = so_t_mode(f->hb, "m1");
    so_t_skill(f->hb, "x0", "m0", NULL);
    so_t_skill(f->hb, "y0", "m1", NULL);
    so_t_skill(f->hb, "x1", "m0", NULL);
    so_t_skill(f->hb, "y1", "m1", NULL);
    so_t_skill(f->hb, "x2", "m0", NULL);
    so_t_agent(f->hb, "a", NULL, 0, 0, 0);
    for (int s = 0; s < 5; s++)
        so_t_stat(f->hb, 0, s, 2 * s, 10, 0.01);
    s_router(f, 10, SO_COST_LINEAR);
    double zero[5] = { 0 }, junk[5] = { -1, NAN, 0, -INFINITY, 0 };

    const double *inputs[3] = { zero, NULL, junk };
    for (int k = 0; k < 3; k++) {
        f->q.mode = m0;
        s_route_ok(f, inputs[k]);
        assert_int_equal(f->d.n_top, 3);
        double comp = 0;
        for (size_t i = 0; i < 3; i++) {
            SO_ASSERT_NEAR(f->d.top_weights[i], 1.0 / 3.0, 1e-12);
            assert_int_equal(f->hb->skills[f->d.top_skills[i]].mode, m0);
        }
        for (int s = 0; s < 5; s += 2)
            comp += s_mean(f->r, 0, s, NULL) / 3.0;
        SO_ASSERT_NEAR(f->d.scores[0].competence, comp, 1e-12);
    }
    f->q.mode = m1;
    s_route_ok(f, zero);
    assert_int_equal(f->d.n_top, 2);
    SO_ASSERT_NEAR(f->d.top_weights[0], 0.5, 1e-12);
    SO_ASSERT_NEAR(f->d.top_weights[1], 0.5, 1e-12);
    f->q.mode = -1;
    s_route_ok(f, zero);
    assert_int_equal(f->d.n_top, 5);
    SO_ASSERT_NEAR(f->d.top_weights[4], 0.2, 1e-12);
}

/* New observations change nothing until refresh; then they do. */
static void test_refresh(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    int s = so_t_skill(f->hb, "s", "m", NULL);
    int A = so_t_agent(f->hb, "a", NULL, 0, 0, 0);
    int B = so_t_agent(f->hb, "b", NULL, 0, 0, 0);
    so_t_stat(f->hb, A, s, 60, 100, 0.01);
    so_t_stat(f->hb, B, s, 50, 100, 0.01);
    s_router(f, 10, SO_COST_LINEAR);
    double demand[1] = { 1 };
    assert_int_equal(s_route_ok(f, demand), A);
    for (int i = 0; i < 100; i++)
        so_handbook_observe(f->hb, (size_t) B, (size_t) s, 1, 1, 0.01, NAN, NAN, NAN);
    assert_int_equal(s_route_ok(f, demand), A);
    so_route_tables_refresh(f->r, f->hb);
    assert_int_equal(s_route_ok(f, demand), B);
    SO_ASSERT_NEAR(s_mean(f->r, B, s, NULL), 151.0 / 202.0, 1e-12);

    /* A replacement handbook with more agents: the decision grows. */
    so_t_agent(f->hb, "c", NULL, 0, 0, 0);
    so_t_stat(f->hb, 2, s, 199, 200, 0.01);
    so_route_tables_refresh(f->r, f->hb);
    assert_int_equal(s_route_ok(f, demand), 2);
    assert_int_equal(f->d.n_agents, 3);
}

/* Child skills with no cost fall back to the parent's, then the mode's. */
static void test_skill_cost_backoff(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    int P = so_t_skill(f->hb, "p", "m", NULL);
    int C = so_t_skill(f->hb, "p.c", "m", "p");
    int Q = so_t_skill(f->hb, "q", "m", NULL);
    so_t_agent(f->hb, "a", NULL, 0, 0, 0);
    so_t_agent(f->hb, "b", NULL, 0, 0, 0);
    so_t_stat(f->hb, 0, P, 5, 10, 0.02);
    so_t_stat(f->hb, 1, Q, 5, 10, 0.04);
    s_router(f, 10, SO_COST_LINEAR);
    SO_ASSERT_NEAR(so_route_skill_cost(f->r, 0, C), 0.02, 1e-15);
    SO_ASSERT_NEAR(so_route_skill_cost(f->r, 0, Q), 0.02, 1e-15);
    SO_ASSERT_NEAR(so_route_skill_cost(f->r, 1, C), 0.04, 1e-15);
    SO_ASSERT_NEAR(so_route_skill_cost(f->r, 1, P), 0.04, 1e-15);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_prior_case),
        T(test_nine_of_ten_beats_one_of_one),
        T(test_backoff),
        T(test_lambda_trade_off),
        T(test_cost_normalisation),
        T(test_price_based_cost),
        T(test_thompson_reproducible),
        T(test_explore_floor),
        T(test_thompson_no_collapse),
        T(test_candidate_filters),
        T(test_budget),
        T(test_no_candidate),
        T(test_top_skills_and_breakdown),
        T(test_zero_demand_is_uniform_over_mode),
        T(test_refresh),
        T(test_skill_cost_backoff),
    };
#undef T
    return cmocka_run_group_tests_name("so_route", tests, NULL, NULL);
}
