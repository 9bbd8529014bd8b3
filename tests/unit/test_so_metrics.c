/* Tests for so_metrics: hand-checked hulls, AIQs and cheapest-at-accuracy
 * (the proportion statistics are in test_so_stats.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "offline/so_metrics.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define EPS 1e-12

/* cmocka's assert_float_equal compares in float; these need double. */
static void s_near(double a, double b, double eps, const char *file, int line)
{
    if (!(fabs(a - b) <= eps)) {
        print_error("%.17g != %.17g (eps %g)\n", a, b, eps);
        _fail(file, line);
    }
}
#define assert_near(a, b, eps) s_near((a), (b), (eps), __FILE__, __LINE__)

/* (1,0.5) (2,0.8) (3,0.7) (4,0.9), range [1,4].
 * Upper hull: (3,0.7) lies under the chord (2,0.8)-(4,0.9), which is 0.85 at
 * cost 3, so it goes; (2,0.8) lies above the chord (1,0.5)-(4,0.9), which is
 * 0.633 at cost 2, so it stays.  Hull (1,.5) (2,.8) (4,.9), rising throughout.
 * Area: [1,2] trapezoid (0.5+0.8)/2*1 = 0.65; [2,4] (0.8+0.9)/2*2 = 1.70;
 * total 2.35, AIQ = 2.35/3 = 0.78333... */
static const so_point_t k_toy[] = { { 1, 0.5 }, { 2, 0.8 }, { 3, 0.7 }, { 4, 0.9 } };

static void test_hull_toy(void **state)
{
    so_point_t h[4];
    size_t m = 99;
    assert_int_equal(so_metrics_hull(k_toy, 4, h, &m), 0);
    assert_int_equal(m, 3);
    assert_near(h[0].cost, 1, EPS);
    assert_near(h[0].accuracy, 0.5, EPS);
    assert_near(h[1].cost, 2, EPS);
    assert_near(h[1].accuracy, 0.8, EPS);
    assert_near(h[2].cost, 4, EPS);
    assert_near(h[2].accuracy, 0.9, EPS);
    assert_near(so_aiq(k_toy, 4, 1, 4), 2.35 / 3.0, EPS);
}

static void test_hull_unsorted_in_place(void **state)
{
    /* Same points shuffled, plus a duplicate cost (the better one counts)
     * and a collinear point (dropped: it adds no area). */
    so_point_t p[] = { { 4, 0.9 }, { 3, 0.7 }, { 2, 0.8 }, { 1, 0.5 }, { 2, 0.1 }, { 3, 0.85 } };
    size_t m;
    assert_int_equal(so_metrics_hull(p, N_OF(p), p, &m), 0);
    assert_int_equal(m, 3);
    assert_near(p[1].cost, 2, EPS);
    assert_near(p[1].accuracy, 0.8, EPS);
    assert_near(p[2].cost, 4, EPS);
}

static void test_hull_non_decreasing(void **state)
{
    /* (2,0.5) is below the cheaper (1,0.9): it adds nothing.  Hull
     * (1,.9) (3,.95); AIQ on [1,3] = (0.9+0.95)/2*2/2 = 0.925. */
    so_point_t p[] = { { 1, 0.9 }, { 2, 0.5 }, { 3, 0.95 } };
    so_point_t h[3];
    size_t m;
    assert_int_equal(so_metrics_hull(p, 3, h, &m), 0);
    assert_int_equal(m, 2);
    assert_near(h[1].cost, 3, EPS);
    assert_near(so_aiq(p, 3, 1, 3), 0.925, EPS);

    /* The cheapest point is the best: flat at 0.9 over the whole range. */
    so_point_t q[] = { { 1, 0.9 }, { 2, 0.8 }, { 3, 0.85 } };
    assert_int_equal(so_metrics_hull(q, 3, h, &m), 0);
    assert_int_equal(m, 1);
    assert_near(so_aiq(q, 3, 1, 3), 0.9, EPS);

    /* After the best accuracy the curve is flat: (3,0.6) is dropped and
     * [2,4] counts at 0.8.  (0.5+0.8)/2 + 0.8*2 = 2.25, / 3 = 0.75. */
    so_point_t r[] = { { 1, 0.5 }, { 2, 0.8 }, { 3, 0.6 } };
    assert_near(so_aiq(r, 3, 1, 4), 0.75, EPS);
    assert_near(so_metrics_hull_at(r, 3, 3.5), 0.8, EPS);
    assert_near(so_metrics_hull_at(r, 3, 1.5), 0.65, EPS);
    assert_near(so_metrics_hull_at(r, 3, 0.5), 0.0, EPS);
}

static void test_aiq_single_point(void **state)
{
    so_point_t p[] = { { 2, 0.7 } };
    /* In range [2,4]: flat 0.7. */
    assert_near(so_aiq(p, 1, 2, 4), 0.7, EPS);
    /* Range [1,4] starts below the point: [1,2] counts 0 (RouterBench
     * integrates from the cheapest hull point), [2,4] 0.7*2 = 1.4; / 3. */
    assert_near(so_aiq(p, 1, 1, 4), 1.4 / 3.0, EPS);
    /* A degenerate range is the value at that cost. */
    assert_near(so_aiq(p, 1, 2, 2), 0.7, EPS);
    assert_near(so_aiq(p, 1, 1, 1), 0.0, EPS);
}

static void test_aiq_beyond_range(void **state)
{
    /* (10,1.0) is beyond cmax = 4; the hull is interpolated there:
     * 0.5 + 0.5*3/9 = 2/3.  Area (0.5 + 2/3)/2*3 = 1.75, AIQ 1.75/3. */
    so_point_t p[] = { { 1, 0.5 }, { 10, 1.0 } };
    assert_near(so_aiq(p, 2, 1, 4), 1.75 / 3.0, EPS);

    /* (0.5,0.4) is below cmin = 1: the hull at 1 is 0.4 + 0.4/3 = 8/15.
     * [1,2]: (8/15 + 0.8)/2 = 2/3; [2,3]: 0.8; total 22/15, / 2 = 11/15. */
    so_point_t q[] = { { 0.5, 0.4 }, { 2, 0.8 } };
    assert_near(so_aiq(q, 2, 1, 3), 11.0 / 15.0, EPS);

    /* Everything beyond cmax: the range is under the first point, 0. */
    so_point_t r[] = { { 5, 0.9 } };
    assert_near(so_aiq(r, 1, 1, 4), 0.0, EPS);
}

static void test_aiq_zero_router_reference(void **state)
{
    /* Mean cost and accuracy (correct/945) of the 11 single models on the
     * RouterBench test rows with no empty cell; shared/data/README.md
     * quotes the zero router's AIQ as 0.823. */
    const so_point_t models[] = {
        { 0.005003365079365073, 831 / 945.0 },   { 0.00041793333333333473, 709 / 945.0 },
        { 0.0035393269841270006, 697 / 945.0 },  { 0.003776634920634941, 536 / 945.0 },
        { 0.00036465523809523783, 646 / 945.0 }, { 0.00037443047619047527, 594 / 945.0 },
        { 0.00031042217142857113, 581 / 945.0 }, { 0.00024663746031746, 706 / 945.0 },
        { 8.105248677248692e-05, 560 / 945.0 },  { 0.0003297252910052911, 736 / 945.0 },
        { 0.00012261333333333323, 534 / 945.0 },
    };
    double cmin = INFINITY, cmax = -INFINITY;
    for (size_t i = 0; i < N_OF(models); i++) {
        cmin = fmin(cmin, models[i].cost);
        cmax = fmax(cmax, models[i].cost);
    }
    double aiq = so_aiq(models, N_OF(models), cmin, cmax);
    assert_true(fabs(aiq - 0.823) < 0.0005);
}

static void test_aiq_bad_input(void **state)
{
    so_point_t nan_pt[] = { { 1, NAN }, { 2, 0.5 } };
    assert_true(isnan(so_aiq(k_toy, 0, 1, 4)));
    assert_true(isnan(so_aiq(NULL, 3, 1, 4)));
    assert_true(isnan(so_aiq(nan_pt, 2, 1, 4)));
    assert_true(isnan(so_aiq(k_toy, 4, 4, 1)));
    assert_true(isnan(so_aiq(k_toy, 4, 1, INFINITY)));
    size_t m = 7;
    assert_int_equal(so_metrics_hull(nan_pt, 2, nan_pt, &m), -1);
    assert_int_equal(m, 0);
    assert_int_equal(so_metrics_hull(NULL, 0, NULL, &m), 0);
    assert_int_equal(m, 0);
}

static void test_cheapest_at_accuracy(void **state)
{
    /* Hull (1,.5) (2,.8) (4,.9). 0.85 is halfway from (2,.8) to (4,.9):
     * cost 3 when mixing; the cheapest raw point reaching it is (4,.9). */
    assert_near(so_cheapest_at_accuracy(k_toy, 4, 0.85), 3.0, EPS);
    assert_near(so_cheapest_at_accuracy_raw(k_toy, 4, 0.85), 4.0, EPS);
    /* 0.65 is halfway from (1,.5) to (2,.8): 1.5; raw: (2,.8) at 2. */
    assert_near(so_cheapest_at_accuracy(k_toy, 4, 0.65), 1.5, EPS);
    assert_near(so_cheapest_at_accuracy_raw(k_toy, 4, 0.65), 2.0, EPS);
    /* (3,0.7) reaches 0.7 raw, but the hull does at 1 + 2/3. */
    assert_near(so_cheapest_at_accuracy(k_toy, 4, 0.7), 5.0 / 3.0, EPS);
    assert_near(so_cheapest_at_accuracy_raw(k_toy, 4, 0.7), 2.0, EPS);
    /* Exactly at a vertex, and below the cheapest point. */
    assert_near(so_cheapest_at_accuracy(k_toy, 4, 0.8), 2.0, EPS);
    assert_near(so_cheapest_at_accuracy(k_toy, 4, 0.1), 1.0, EPS);
    assert_near(so_cheapest_at_accuracy_raw(k_toy, 4, 0.1), 1.0, EPS);
    /* Never reached. */
    assert_true(isnan(so_cheapest_at_accuracy(k_toy, 4, 0.95)));
    assert_true(isnan(so_cheapest_at_accuracy_raw(k_toy, 4, 0.95)));
    assert_true(isnan(so_cheapest_at_accuracy(k_toy, 0, 0.5)));
    assert_true(isnan(so_cheapest_at_accuracy(k_toy, 4, NAN)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hull_toy),
        cmocka_unit_test(test_hull_unsorted_in_place),
        cmocka_unit_test(test_hull_non_decreasing),
        cmocka_unit_test(test_aiq_single_point),
        cmocka_unit_test(test_aiq_beyond_range),
        cmocka_unit_test(test_aiq_zero_router_reference),
        cmocka_unit_test(test_aiq_bad_input),
        cmocka_unit_test(test_cheapest_at_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
