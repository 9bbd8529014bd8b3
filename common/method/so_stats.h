/*
 * so_stats — the small statistics the method uses to compare success rates
 * (offline skill learning and online refinement alike): a Wilson score
 * interval and a two-sided test that two proportions are equal.  Pure
 * functions; nothing is allocated.
 */
#ifndef SO_STATS_H
#define SO_STATS_H

/* Wilson score interval for a proportion of s successes in n trials with
 * normal quantile z (1.96 for 95%).  Counts may be fractional (weighted).
 * Returns 0, or -1 if 0 <= s <= n, n > 0 and z > 0 do not hold (or a value
 * is not finite); then *lo = *hi = NAN. */
int so_wilson_interval(double s, double n, double z, double *lo, double *hi);

/* Two-sided p-value for H0: the success rates s1/n1 and s2/n2 are equal.
 * Fisher's exact test when all counts are whole numbers and the smallest
 * expected cell count is below 5 (R's fisher.test convention for "two
 * sided": sum the tables no more likely than the observed one); otherwise
 * the pooled two-proportion z-test without continuity correction (R's
 * prop.test(correct = FALSE)).  1.0 when either n is 0 or both samples are
 * all successes or all failures.  NAN if a count is negative, not finite,
 * or s > n. */
double so_two_prop_pvalue(double s1, double n1, double s2, double n2);

#endif
