/*
 * test_so_learn — skill learning from recorded outcomes: determinism, the
 * contrastive merge and split criteria, and profiling.  Data is synthetic so
 * every expectation is known: two topics (fruit, vehicles) whose prompts
 * share no words, and two agents whose success depends (or not) on topic.
 */
#include "so_test_util.h"

#include "method/so_infer.h"
#include "offline/so_learn.h"
#include "base/so_rng.h"
#include "method/so_route.h"
#include "base/so_text.h"

static const char *s_fruit[] = { "apple", "banana", "cherry", "grape",
                                 "mango", "peach",  "plum",   "melon" };
static const char *s_cars[] = { "truck", "sedan", "engine", "wheel",
                                "brake", "tyre",  "diesel", "garage" };

/* n prompts per topic; p_alpha[t], p_beta[t]: success rates per topic. */
static void s_make(so_dataset_t *ds, size_t n, const double p_alpha[2], const double p_beta[2],
                   uint64_t seed)
{
    so_rng_t r;
    so_rng_seed(&r, seed);
    memset(ds, 0, sizeof *ds);
    ds->n_agents = 2;
    ds->agents = calloc(2, sizeof(char *));
    ds->agents[0] = strdup("alpha");
    ds->agents[1] = strdup("beta");
    ds->n_samples = 2 * n;
    ds->samples = calloc(2 * n, sizeof *ds->samples);
    for (size_t i = 0; i < 2 * n; i++) {
        so_sample_t *s = &ds->samples[i];
        int topic = (int) (i % 2);
        const char **words = topic ? s_cars : s_fruit;
        char buf[256], id[32];
        size_t len = 0;
        for (int w = 0; w < 6; w++)
            len += (size_t) snprintf(buf + len, sizeof buf - len, "%s%s", w ? " " : "",
                                     words[so_rng_next(&r) % 8]);
        snprintf(id, sizeof id, "q%zu", i);
        s->query_id = strdup(id);
        s->task = strdup(topic ? "cars" : "fruit");
        s->mode = strdup("");
        s->prompt = strdup(buf);
        s->score = calloc(2, sizeof(double));
        s->cost = calloc(2, sizeof(double));
        s->prompt_tokens = calloc(2, sizeof(double));
        s->completion_tokens = calloc(2, sizeof(double));
        s->latency = calloc(2, sizeof(double));
        s->score[0] = so_rng_uniform(&r) < p_alpha[topic] ? 1 : 0;
        s->score[1] = so_rng_uniform(&r) < p_beta[topic] ? 1 : 0;
        s->cost[0] = 0.001;
        s->cost[1] = 0.01;
        for (int a = 0; a < 2; a++)
            s->prompt_tokens[a] = s->completion_tokens[a] = s->latency[a] = NAN;
    }
}

static void s_opts(so_learn_opts_t *o, int k)
{
    so_learn_opts_default(o);
    o->k = k;
    o->split_alpha = 0.01;
    o->temperature = 0.05;
    o->min_leaf = 10;
    o->version = "test";
}

static size_t s_leaves(const so_handbook_t *hb)
{
    size_t n = 0;
    for (size_t s = 0; s < hb->n_skills; s++)
        n += hb->skills[s].n_terms > 0;
    return n;
}

/* The agent chosen at λ = 0 for a prompt. */
static const char *s_pick(const so_handbook_t *hb, const char *prompt)
{
    static char name[64];
    double dem[64] = { 0 };
    so_infer_t *inf = so_infer_new(hb);
    so_route_tables_t *r = so_route_tables_new(hb, NULL);
    so_route_req_t q;
    so_decision_t d;
    so_route_req_default(&q);
    so_decision_init(&d);
    so_infer(inf, prompt, -1, dem);
    assert_int_equal(so_route(r, dem, &q, &d), 0);
    snprintf(name, sizeof name, "%s", hb->agents[d.chosen].id);
    so_decision_free(&d);
    so_route_tables_destroy(&r);
    so_infer_destroy(&inf);
    return name;
}

static void test_deterministic(void **state)
{
    (void) state;
    const double pa[2] = { 0.9, 0.3 }, pb[2] = { 0.3, 0.9 };
    so_dataset_t ds;
    so_learn_opts_t o;
    char err[256];
    s_make(&ds, 100, pa, pb, 7);
    so_learn_opts_default(&o); /* granularity chosen on validation */
    o.min_leaf = 10;
    o.seed = 42;
    so_handbook_t *h1 = so_learn(&ds, &o, err, sizeof err);
    so_handbook_t *h2 = so_learn(&ds, &o, err, sizeof err);
    assert_non_null(h1);
    assert_non_null(h2);
    char *j1 = so_handbook_dumps(h1), *j2 = so_handbook_dumps(h2);
    assert_string_equal(j1, j2);
    free(j1);
    free(j2);
    so_handbook_destroy(&h1);
    so_handbook_destroy(&h2);
    so_dataset_free(&ds);
}

/* Agents differ by topic: two skills, each routed to its own best agent,
 * named by the topic's words, with competence profiled per skill. */
static void test_contrastive_skills(void **state)
{
    (void) state;
    const double pa[2] = { 0.9, 0.2 }, pb[2] = { 0.2, 0.9 };
    so_dataset_t ds;
    so_learn_opts_t o;
    char err[256];
    s_make(&ds, 100, pa, pb, 1);
    s_opts(&o, 2);
    so_handbook_t *hb = so_learn(&ds, &o, err, sizeof err);
    assert_non_null(hb);
    assert_int_equal(s_leaves(hb), 2);
    assert_string_equal(s_pick(hb, "banana mango peach apple"), "alpha");
    assert_string_equal(s_pick(hb, "diesel truck garage brake"), "beta");
    /* Every agent has 100 attempts per skill, and the names read as topics. */
    for (size_t s = 0; s < hb->n_skills; s++) {
        assert_true(fabs(so_handbook_stat(hb, 0, s)->attempts - 100) < 1e-9);
        int fruit = strstr(hb->skills[s].id, "apple") || strstr(hb->skills[s].id, "banana") ||
                    strstr(hb->skills[s].id, "cherry") || strstr(hb->skills[s].id, "grape") ||
                    strstr(hb->skills[s].id, "mango") || strstr(hb->skills[s].id, "peach") ||
                    strstr(hb->skills[s].id, "plum") || strstr(hb->skills[s].id, "melon");
        double rate = so_handbook_stat(hb, 0, s)->successes / 100.0;
        assert_true(fruit ? rate > 0.7 : rate < 0.4);
    }
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
}

/* Two text clusters on which no agent differs are merged into one skill. */
static void test_merge_indistinguishable(void **state)
{
    (void) state;
    const double pa[2] = { 0.6, 0.6 }, pb[2] = { 0.5, 0.5 };
    so_dataset_t ds;
    so_learn_opts_t o;
    char err[256];
    s_make(&ds, 100, pa, pb, 3);
    s_opts(&o, 2);
    o.merge_alpha = 0.05;
    so_handbook_t *hb = so_learn(&ds, &o, err, sizeof err);
    assert_non_null(hb);
    assert_int_equal(hb->n_skills, 1);
    so_handbook_destroy(&hb);
    /* With merging off (merge_alpha above any p-value) they stay apart. */
    o.merge_alpha = 1.01;
    hb = so_learn(&ds, &o, err, sizeof err);
    assert_non_null(hb);
    assert_int_equal(hb->n_skills, 2);
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
}

/* One top-level cluster holding both topics: split where agents differ
 * (a parent with two children), not where they do not. */
static void test_split_where_agents_differ(void **state)
{
    (void) state;
    const double pa[2] = { 0.9, 0.2 }, pb[2] = { 0.2, 0.9 };
    const double qa[2] = { 0.6, 0.6 }, qb[2] = { 0.5, 0.5 };
    so_dataset_t ds;
    so_learn_opts_t o;
    char err[256];
    s_make(&ds, 100, pa, pb, 5);
    s_opts(&o, 1);
    so_handbook_t *hb = so_learn(&ds, &o, err, sizeof err);
    assert_non_null(hb);
    assert_int_equal(hb->n_skills, 3);
    assert_int_equal(s_leaves(hb), 2);
    assert_int_equal(hb->skills[0].parent, -1);
    assert_int_equal(hb->skills[1].parent, 0);
    assert_int_equal(hb->skills[2].parent, 0);
    assert_string_equal(s_pick(hb, "banana mango peach apple"), "alpha");
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);

    s_make(&ds, 100, qa, qb, 5);
    hb = so_learn(&ds, &o, err, sizeof err);
    assert_non_null(hb);
    assert_int_equal(hb->n_skills, 1);
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
}

static void test_profile_by_demand(void **state)
{
    (void) state;
    const double pa[2] = { 1.0, 0.0 }, pb[2] = { 0.0, 1.0 };
    so_dataset_t ds;
    so_learn_opts_t o;
    char err[256];
    s_make(&ds, 50, pa, pb, 9);
    s_opts(&o, 2);
    so_handbook_t *hb = so_learn(&ds, &o, err, sizeof err);
    assert_non_null(hb);
    /* Profiling the same data again doubles the attempts (credit sums to 1
     * per sample and agent). */
    double before = 0, after = 0;
    for (size_t s = 0; s < hb->n_skills; s++)
        before += so_handbook_stat(hb, 1, s)->attempts;
    so_learn_profile(hb, &ds);
    for (size_t s = 0; s < hb->n_skills; s++)
        after += so_handbook_stat(hb, 1, s)->attempts;
    assert_true(fabs(before - 100) < 1e-9);
    assert_true(fabs(after - 200) < 1e-6);
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
}

static void test_empty_input(void **state)
{
    (void) state;
    so_dataset_t ds;
    so_learn_opts_t o;
    char err[256] = "";
    memset(&ds, 0, sizeof ds);
    so_learn_opts_default(&o);
    assert_null(so_learn(&ds, &o, err, sizeof err));
    assert_non_null(strstr(err, "no training samples"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_contrastive_skills),
        cmocka_unit_test(test_merge_indistinguishable),
        cmocka_unit_test(test_split_where_agents_differ),
        cmocka_unit_test(test_profile_by_demand),
        cmocka_unit_test(test_empty_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
