/* Unit tests for so_rng: reproducibility, uniform range, Gamma and Beta draws. */
#include "so_test_util.h"
#include "base/so_rng.h"

#define DRAWS 20000

static void test_same_seed_same_sequence(void **state)
{
    so_rng_t a, b;
    so_rng_seed(&a, 42);
    so_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++)
        assert_true(so_rng_next(&a) == so_rng_next(&b));
    /* Derived draws too. */
    for (int i = 0; i < 200; i++) {
        assert_true(so_rng_uniform(&a) == so_rng_uniform(&b));
        assert_true(so_rng_beta(&a, 2.5, 0.7) == so_rng_beta(&b, 2.5, 0.7));
        assert_true(so_rng_gamma(&a, 0.4) == so_rng_gamma(&b, 0.4));
    }
    /* Re-seeding restarts the sequence. */
    so_rng_seed(&a, 7);
    uint64_t first = so_rng_next(&a);
    so_rng_seed(&a, 7);
    assert_true(so_rng_next(&a) == first);
}

static void test_different_seeds_differ(void **state)
{
    so_rng_t a, b, z;
    so_rng_seed(&a, 1);
    so_rng_seed(&b, 2);
    so_rng_seed(&z, 0); /* seed 0 must not give the all-zero state */
    int same = 0, zeros = 0;
    for (int i = 0; i < 64; i++) {
        uint64_t x = so_rng_next(&a), y = so_rng_next(&b);
        same += x == y;
        zeros += so_rng_next(&z) == 0;
    }
    assert_int_equal(same, 0);
    assert_true(zeros < 2);
}

static void test_mix(void **state)
{
    assert_true(so_rng_mix(1, 2) == so_rng_mix(1, 2));
    assert_true(so_rng_mix(1, 2) != so_rng_mix(1, 3));
    assert_true(so_rng_mix(1, 2) != so_rng_mix(2, 1));
    assert_true(so_rng_mix(0, 0) != 0);
}

static void test_uniform_range(void **state)
{
    so_rng_t r;
    double sum = 0, lo = 1, hi = 0;
    so_rng_seed(&r, 123);
    for (int i = 0; i < 100000; i++) {
        double u = so_rng_uniform(&r);
        if (!(u >= 0.0 && u < 1.0))
            fail_msg("uniform draw %d out of [0,1): %.17g", i, u);
        sum += u;
        lo = fmin(lo, u);
        hi = fmax(hi, u);
    }
    SO_ASSERT_NEAR(sum / 100000, 0.5, 0.005);
    assert_true(lo < 0.001);
    assert_true(hi > 0.999);
}

/* Sample mean and variance of DRAWS Beta(a, b) draws against the exact
 * moments, within 5 standard errors for the mean and 10% for the variance. */
static void s_check_beta(double a, double b, uint64_t seed)
{
    so_rng_t r;
    double sum = 0, sum2 = 0;
    so_rng_seed(&r, seed);
    for (int i = 0; i < DRAWS; i++) {
        double x = so_rng_beta(&r, a, b);
        if (!(x >= 0.0 && x <= 1.0))
            fail_msg("Beta(%g,%g) draw %d out of [0,1]: %.17g", a, b, i, x);
        sum += x;
        sum2 += x * x;
    }
    double mean = a / (a + b);
    double var = a * b / ((a + b) * (a + b) * (a + b + 1));
    double m = sum / DRAWS, v = sum2 / DRAWS - m * m;
    SO_ASSERT_NEAR(m, mean, 5 * sqrt(var / DRAWS));
    SO_ASSERT_NEAR(v, var, 0.1 * var);
}

static void test_beta_mean_2_5(void **state)
{
    s_check_beta(2, 5, 1);
}

static void test_beta_mean_half_half(void **state)
{
    s_check_beta(0.5, 0.5, 2);
}

static void test_beta_mean_200_100(void **state)
{
    s_check_beta(200, 100, 3);
}

static void test_beta_mean_1_1_and_skewed(void **state)
{
    s_check_beta(1, 1, 4);
    s_check_beta(0.2, 3, 5);
    s_check_beta(854, 175, 6);
}

/* Gamma(k, 1) has mean k and variance k; shape < 1 goes through the boost. */
static void s_check_gamma(double k, uint64_t seed)
{
    so_rng_t r;
    double sum = 0, sum2 = 0;
    so_rng_seed(&r, seed);
    for (int i = 0; i < DRAWS; i++) {
        double x = so_rng_gamma(&r, k);
        if (!(x >= 0.0 && isfinite(x)))
            fail_msg("Gamma(%g) draw %d invalid: %.17g", k, i, x);
        sum += x;
        sum2 += x * x;
    }
    double m = sum / DRAWS, v = sum2 / DRAWS - m * m;
    SO_ASSERT_NEAR(m, k, 5 * sqrt(k / DRAWS));
    SO_ASSERT_NEAR(v, k, 0.15 * k);
}

static void test_gamma_shape_below_one(void **state)
{
    s_check_gamma(0.5, 11);
    s_check_gamma(0.3, 12);
    s_check_gamma(0.9, 13);
}

static void test_gamma_shape_above_one(void **state)
{
    s_check_gamma(1.0, 14);
    s_check_gamma(3.0, 15);
    s_check_gamma(50.0, 16);
}

static void test_gamma_bad_shape(void **state)
{
    so_rng_t r;
    so_rng_seed(&r, 9);
    assert_true(so_rng_gamma(&r, 0) == 0);
    assert_true(so_rng_gamma(&r, -1) == 0);
    assert_true(so_rng_gamma(&r, NAN) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_different_seeds_differ),
        cmocka_unit_test(test_mix),
        cmocka_unit_test(test_uniform_range),
        cmocka_unit_test(test_beta_mean_2_5),
        cmocka_unit_test(test_beta_mean_half_half),
        cmocka_unit_test(test_beta_mean_200_100),
        cmocka_unit_test(test_beta_mean_1_1_and_skewed),
        cmocka_unit_test(test_gamma_shape_below_one),
        cmocka_unit_test(test_gamma_shape_above_one),
        cmocka_unit_test(test_gamma_bad_shape),
    };
    return cmocka_run_group_tests_name("so_rng", tests, NULL, NULL);
}
