/* Tests for so_stats: the Wilson interval and the two-proportion test,
 * checked against R. */
#include "so_test_util.h"

#include "method/so_stats.h"

#define EPS 1e-12
#define assert_near SO_ASSERT_NEAR

static void test_wilson(void **state)
{
    double lo, hi;
    /* R: prop.test(50, 100, correct = FALSE)$conf.int = 0.4038315 0.5961685
     * (R's z is qnorm(0.975), not 1.96). */
    assert_int_equal(so_wilson_interval(50, 100, 1.959963984540054, &lo, &hi), 0);
    assert_near(lo, 0.4038315, 1e-6);
    assert_near(hi, 0.5961685, 1e-6);
    /* 0/10: centre = half = (z^2/20)/(1 + z^2/10) = 0.138770. */
    assert_int_equal(so_wilson_interval(0, 10, 1.96, &lo, &hi), 0);
    assert_near(lo, 0.0, EPS);
    assert_near(hi, 0.2775401, 1e-6);
    assert_int_equal(so_wilson_interval(11, 10, 1.96, &lo, &hi), -1);
    assert_true(isnan(lo) && isnan(hi));
    assert_int_equal(so_wilson_interval(0, 0, 1.96, &lo, &hi), -1);
}

static void test_two_prop_pvalue(void **state)
{
    assert_near(so_two_prop_pvalue(50, 100, 50, 100), 1.0, EPS);
    /* z = 0.4 / sqrt(0.7*0.3*0.02) = 6.172, p = 6.74e-10. */
    double p = so_two_prop_pvalue(90, 100, 50, 100);
    assert_true(p < 1e-6);
    assert_near(p, 6.737436e-10, 1e-15);
    /* R: prop.test(c(60, 50), c(100, 100), correct = FALSE) p = 0.1552 */
    assert_near(so_two_prop_pvalue(60, 100, 50, 100), 0.1552185, 1e-6);
    assert_near(so_two_prop_pvalue(50, 100, 60, 100), 0.1552185, 1e-6);
    /* Small counts go to Fisher.  Tea tasting, table [[3,1],[1,3]]: the
     * tables have probabilities 1,16,36,16,1 /70; two-sided 34/70. */
    assert_near(so_two_prop_pvalue(3, 4, 1, 4), 34.0 / 70.0, 1e-9);
    /* [[3,0],[0,3]]: 1/20 each extreme, two-sided 0.1. */
    assert_near(so_two_prop_pvalue(3, 3, 0, 3), 0.1, 1e-9);
    assert_near(so_two_prop_pvalue(2, 3, 2, 3), 1.0, 1e-9);
    /* No evidence, or nothing to compare. */
    assert_near(so_two_prop_pvalue(0, 0, 5, 10), 1.0, EPS);
    assert_near(so_two_prop_pvalue(10, 10, 7, 7), 1.0, EPS);
    /* Fractional (weighted) counts use the z-test. */
    p = so_two_prop_pvalue(2.5, 4, 0.5, 4);
    assert_true(p > 0 && p < 1);
    /* Invalid counts. */
    assert_true(isnan(so_two_prop_pvalue(11, 10, 5, 10)));
    assert_true(isnan(so_two_prop_pvalue(-1, 10, 5, 10)));
    assert_true(isnan(so_two_prop_pvalue(NAN, 10, 5, 10)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wilson),
        cmocka_unit_test(test_two_prop_pvalue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
