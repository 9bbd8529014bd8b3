/*
 * test_so_eval — replay evaluation: baselines (single models, oracle,
 * random) checked by hand on a four-query dataset, the λ sweep's ends,
 * AIQ consistency with so_metrics, the JSON report and the plot, and online
 * learning in replay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "offline/so_eval.h"
#include "offline/so_metrics.h"

/* Two agents, four queries of one skill:
 *   q0: cheap 1, dear 1     q1: cheap 0, dear 1
 *   q2: cheap 0, dear 1     q3: cheap 1, dear 0
 * cheap costs 1, dear costs 10 (USD, to keep the arithmetic plain). */
static void s_make(so_dataset_t *ds)
{
    static const double sc[4][2] = { { 1, 1 }, { 0, 1 }, { 0, 1 }, { 1, 0 } };
    memset(ds, 0, sizeof *ds);
    ds->n_agents = 2;
    ds->agents = calloc(2, sizeof(char *));
    ds->agents[0] = strdup("cheap");
    ds->agents[1] = strdup("dear");
    ds->n_samples = 4;
    ds->samples = calloc(4, sizeof *ds->samples);
    for (int i = 0; i < 4; i++) {
        so_sample_t *s = &ds->samples[i];
        char id[16]; /* "q" and any int: -Wformat-truncation stays quiet */
        snprintf(id, sizeof id, "q%d", i);
        s->query_id = strdup(id);
        s->task = strdup("");
        s->mode = strdup("");
        s->prompt = strdup("solve the puzzle");
        s->score = calloc(2, sizeof(double));
        s->cost = calloc(2, sizeof(double));
        s->prompt_tokens = calloc(2, sizeof(double));
        s->completion_tokens = calloc(2, sizeof(double));
        s->latency = calloc(2, sizeof(double));
        for (int a = 0; a < 2; a++) {
            s->score[a] = sc[i][a];
            s->cost[a] = a ? 10 : 1;
            s->prompt_tokens[a] = s->completion_tokens[a] = s->latency[a] = NAN;
        }
    }
}

/* A handbook whose one skill knows: cheap 50% (2/4), dear 75% (3/4). */
static so_handbook_t *s_handbook(void)
{
    char err[256];
    so_handbook_t *hb = so_handbook_new("t1");
    so_handbook_add_mode(hb, "default", "", err, sizeof err);
    so_handbook_add_skill(hb, "default.puzzle", "puzzles", "", "default", NULL, err, sizeof err);
    so_skill_add_indicator(&hb->skills[0], "puzzle");
    so_handbook_add_agent(hb, "cheap", "cheap", NULL, 0, 0, 0, err, sizeof err);
    so_handbook_add_agent(hb, "dear", "dear", NULL, 0, 0, 0, err, sizeof err);
    for (int i = 0; i < 40; i++) {
        so_handbook_observe(hb, 0, 0, 1, i % 2 == 0, 1, NAN, NAN, NAN);
        so_handbook_observe(hb, 1, 0, 1, i % 4 != 0, 10, NAN, NAN, NAN);
    }
    return hb;
}

static void test_baselines_and_sweep(void **state)
{
    (void) state;
    so_dataset_t ds;
    so_eval_opts_t o;
    so_eval_t e;
    char err[256];
    double lams[] = { 0, 100 };
    s_make(&ds);
    so_handbook_t *hb = s_handbook();
    so_eval_opts_default(&o);
    o.lambdas = lams;
    o.n_lambdas = 2;
    assert_int_equal(so_eval_run(hb, &ds, &o, &e, err, sizeof err), 0);
    assert_int_equal(e.n_samples, 4);
    /* Single models by hand. */
    assert_true(fabs(e.single_acc[0] - 0.5) < 1e-12);
    assert_true(fabs(e.single_acc[1] - 0.75) < 1e-12);
    assert_true(fabs(e.single_cost[0] - 1) < 1e-12);
    assert_true(fabs(e.single_cost[1] - 10) < 1e-12);
    assert_int_equal(e.best_single, 1);
    /* Oracle: every query has a correct agent; the cheapest correct costs
     * 1, 10, 10, 1 → mean 5.5.  Random: mean of the two agents. */
    assert_true(fabs(e.oracle_acc - 1) < 1e-12);
    assert_true(fabs(e.oracle_cost - 5.5) < 1e-12);
    assert_true(fabs(e.random_acc - 0.625) < 1e-12);
    assert_true(fabs(e.random_cost - 5.5) < 1e-12);
    /* λ = 0 takes the more competent agent, a large λ the cheaper one. */
    assert_true(fabs(e.points[0].accuracy - 0.75) < 1e-12);
    assert_true(fabs(e.points[0].share[1] - 1) < 1e-12);
    assert_true(fabs(e.points[1].accuracy - 0.5) < 1e-12);
    assert_true(fabs(e.points[1].share[0] - 1) < 1e-12);
    /* AIQ of the sweep over the single models' range [1, 10]: the hull is
     * the segment (1, .5)–(10, .75) → mean 0.625, as for the zero router. */
    assert_true(fabs(e.aiq - 0.625) < 1e-12);
    assert_true(fabs(e.zero_aiq - 0.625) < 1e-12);
    assert_true(fabs(e.max_accuracy - 0.75) < 1e-12);
    assert_true(fabs(e.cost_to_match_best - 10) < 1e-12);

    /* The JSON report has the documented keys; the plot is an SVG. */
    char dir[] = "/tmp/so-eval-test-XXXXXX", path[128], svg[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/report.json", dir);
    snprintf(svg, sizeof svg, "%s/plot.svg", dir);
    assert_int_equal(so_eval_write_json(&e, hb, path, err, sizeof err), 0);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    assert_non_null(root);
    const char *keys[] = {
        "aiq",    "max_accuracy", "best_single", "oracle", "cost_to_match_best",
        "points", "singles",      "skills"
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        assert_non_null(json_object_get(root, keys[i]));
    assert_string_equal(json_string_value(
                            json_object_get(json_object_get(root, "best_single"), "model")),
                        "dear");
    assert_int_equal(json_array_size(json_object_get(root, "points")), 2);
    json_decref(root);
    assert_int_equal(so_eval_write_svg(&e, "test", svg, err, sizeof err), 0);
    FILE *f = fopen(svg, "r");
    char head[8] = "";
    assert_non_null(f);
    assert_non_null(fgets(head, sizeof head, f));
    fclose(f);
    assert_int_equal(strncmp(head, "<svg", 4), 0);
    unlink(path);
    unlink(svg);
    rmdir(dir);
    so_eval_free(&e);
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
}

static void test_no_matching_agents(void **state)
{
    (void) state;
    so_dataset_t ds;
    so_eval_opts_t o;
    so_eval_t e;
    char err[256] = "";
    s_make(&ds);
    so_handbook_t *hb = so_handbook_new("other");
    so_handbook_add_mode(hb, "default", "", err, sizeof err);
    so_handbook_add_agent(hb, "nobody", "nobody", NULL, 0, 0, 0, err, sizeof err);
    so_eval_opts_default(&o);
    assert_int_equal(so_eval_run(hb, &ds, &o, &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "no handbook agent"));
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
}

/* Online: starting with no statistics, the router learns that "dear" is
 * better and the run credits exactly one attempt per query. */
static void test_online_learns(void **state)
{
    (void) state;
    so_dataset_t ds;
    so_online_opts_t o;
    so_online_t r;
    char err[256];
    s_make(&ds);
    so_handbook_t *hb = s_handbook();
    memset(hb->stats, 0, hb->n_agents * hb->n_skills * sizeof *hb->stats);
    so_online_opts_default(&o);
    o.window = 2;
    assert_int_equal(so_online_run(hb, &ds, &o, &r, err, sizeof err), 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.n_rows, 2);
    double att = so_handbook_stat(hb, 0, 0)->attempts + so_handbook_stat(hb, 1, 0)->attempts;
    assert_true(fabs(att - 4) < 1e-9);
    assert_true(r.accuracy >= 0 && r.accuracy <= 1);
    assert_true(fabs(r.share[0] + r.share[1] - 1) < 1e-12);
    so_online_free(&r);
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_baselines_and_sweep),
        cmocka_unit_test(test_no_matching_agents),
        cmocka_unit_test(test_online_learns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
