/*
 * so_stats — the small statistics the method uses to compare success rates:
 * a Wilson score interval and a two-sided two-proportion test (Fisher's
 * exact test or the pooled z-test).  Offline learning splits and merges
 * skills with them; online refinement (so_refine) merges skills with them.
 * Pure functions; nothing is allocated.
 */
#include "method/so_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int so_wilson_interval(double s, double n, double z, double *lo, double *hi)
{
    double l = NAN, u = NAN;
    int rc = -1;
    if (isfinite(s) && isfinite(n) && isfinite(z) && n > 0 && s >= 0 && s <= n && z > 0) {
        double p = s / n, z2 = z * z;
        double denom = 1.0 + z2 / n;
        double centre = (p + z2 / (2.0 * n)) / denom;
        double half = z * sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom;
        l = fmax(0.0, centre - half);
        u = fmin(1.0, centre + half);
        rc = 0;
    }
    if (lo)
        *lo = l;
    if (hi)
        *hi = u;
    return rc;
}

static double s_lchoose(double n, double k)
{
    return lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0);
}

/* Fisher's exact test, two-sided as in R: the p-value is the total
 * probability (hypergeometric, margins fixed) of the tables whose
 * probability does not exceed the observed one, with a 1e-7 relative
 * tolerance so that ties computed through lgamma are not lost.  Returns
 * NAN if the support is too wide to walk (the caller then uses z). */
static double s_fisher(double s1, double n1, double s2, double n2)
{
    double k = s1 + s2, N = n1 + n2;
    double lo = fmax(0.0, k - n2), hi = fmin(n1, k);
    if (hi - lo > 1e7)
        return NAN;
    double lnorm = s_lchoose(N, k);
    double lobs = s_lchoose(n1, s1) + s_lchoose(n2, s2) - lnorm;
    double limit = lobs + log1p(1e-7);
    double p = 0.0;
    for (double x = lo; x <= hi; x += 1.0) {
        double lx = s_lchoose(n1, x) + s_lchoose(n2, k - x) - lnorm;
        if (lx <= limit)
            p += exp(lx);
    }
    return fmin(1.0, p);
}

static int s_whole(double x)
{
    return x == floor(x) && x < 9007199254740992.0; /* 2^53 */
}

double so_two_prop_pvalue(double s1, double n1, double s2, double n2)
{
    if (!isfinite(s1) || !isfinite(n1) || !isfinite(s2) || !isfinite(n2) || s1 < 0 || s2 < 0 ||
        s1 > n1 || s2 > n2)
        return NAN;
    if (n1 == 0 || n2 == 0)
        return 1.0;
    double k = s1 + s2, N = n1 + n2;
    if (k == 0 || k == N)
        return 1.0;
    double min_expected = fmin(n1, n2) * fmin(k, N - k) / N;
    if (min_expected < 5.0 && s_whole(s1) && s_whole(n1) && s_whole(s2) && s_whole(n2)) {
        double p = s_fisher(s1, n1, s2, n2);
        if (!isnan(p))
            return p;
    }
    double pool = k / N;
    double se = sqrt(pool * (1.0 - pool) * (1.0 / n1 + 1.0 / n2));
    double z = (s1 / n1 - s2 / n2) / se;
    return erfc(fabs(z) / sqrt(2.0));
}
