/* so_metrics — hull, AIQ, cheapest-at-accuracy (see so_metrics.h). */
#include "offline/so_metrics.h"
#include "base/so_alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int s_by_cost_then_best(const void *a, const void *b)
{
    const so_point_t *p = a, *q = b;
    if (p->cost != q->cost)
        return p->cost < q->cost ? -1 : 1;
    if (p->accuracy != q->accuracy)
        return p->accuracy > q->accuracy ? -1 : 1;
    return 0;
}

/* > 0 when o -> a -> b turns left (counter-clockwise), i.e. a lies below the
 * chord o-b; then a is not on the upper hull. */
static double s_cross(so_point_t o, so_point_t a, so_point_t b)
{
    return (a.cost - o.cost) * (b.accuracy - o.accuracy) -
           (a.accuracy - o.accuracy) * (b.cost - o.cost);
}

int so_metrics_hull(const so_point_t *pts, size_t n, so_point_t *out, size_t *out_n)
{
    if (out_n)
        *out_n = 0;
    if (n == 0)
        return out_n ? 0 : -1;
    if (!pts || !out || !out_n)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(pts[i].cost) || !isfinite(pts[i].accuracy))
            return -1;
    if (out != pts)
        memmove(out, pts, n * sizeof *out);
    qsort(out, n, sizeof *out, s_by_cost_then_best);

    /* Andrew's monotone chain, upper half only, in place: the write index
     * m never passes the read index i.  After the sort the first point of
     * each cost is its best one, so later ones of that cost are skipped. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        so_point_t p = out[i];
        if (m > 0 && p.cost == out[m - 1].cost)
            continue;
        while (m >= 2 && s_cross(out[m - 2], out[m - 1], p) >= 0)
            m--;
        out[m++] = p;
    }
    /* A concave chain rises, then falls: cut it at its (first) maximum. */
    size_t best = 0;
    for (size_t i = 1; i < m; i++)
        if (out[i].accuracy > out[best].accuracy)
            best = i;
    *out_n = best + 1;
    return 0;
}

/* Evaluates a hull (from so_metrics_hull) at c. */
static double s_hull_eval(const so_point_t *h, size_t m, double c)
{
    if (c < h[0].cost)
        return 0.0;
    for (size_t i = 0; i + 1 < m; i++) {
        if (c <= h[i + 1].cost) {
            double t = (c - h[i].cost) / (h[i + 1].cost - h[i].cost);
            return h[i].accuracy + t * (h[i + 1].accuracy - h[i].accuracy);
        }
    }
    return h[m - 1].accuracy;
}

/* Allocates and fills the hull; NULL on bad input or out of memory. */
static so_point_t *s_hull_new(const so_point_t *pts, size_t n, size_t *m)
{
    if (n == 0 || !pts)
        return NULL;
    so_point_t *h = so_reallocarray(NULL, n, sizeof *h);
    if (so_metrics_hull(pts, n, h, m) != 0 || *m == 0) {
        free(h);
        return NULL;
    }
    return h;
}

double so_metrics_hull_at(const so_point_t *pts, size_t n, double c)
{
    size_t m;
    if (!isfinite(c))
        return NAN;
    so_point_t *h = s_hull_new(pts, n, &m);
    if (!h)
        return NAN;
    double v = s_hull_eval(h, m, c);
    free(h);
    return v;
}

/* Why the region below the first vertex counts as 0, and why we divide by
 * cmax - cmin rather than by cmax as RouterBench's calc_AIQ does: see the
 * header.  The curve is piecewise linear, so the trapezoid rule on the
 * clipped pieces is exact. */
double so_aiq(const so_point_t *pts, size_t n, double cmin, double cmax)
{
    if (!isfinite(cmin) || !isfinite(cmax) || cmax < cmin)
        return NAN;
    size_t m;
    so_point_t *h = s_hull_new(pts, n, &m);
    if (!h)
        return NAN;
    if (cmax == cmin) {
        double v = s_hull_eval(h, m, cmin);
        free(h);
        return v;
    }
    double area = 0.0;
    for (size_t i = 0; i + 1 < m; i++) {
        double a = fmax(h[i].cost, cmin), b = fmin(h[i + 1].cost, cmax);
        if (b <= a)
            continue;
        double dc = h[i + 1].cost - h[i].cost, da = h[i + 1].accuracy - h[i].accuracy;
        double ya = h[i].accuracy + da * (a - h[i].cost) / dc;
        double yb = h[i].accuracy + da * (b - h[i].cost) / dc;
        area += (b - a) * (ya + yb) / 2.0;
    }
    double a = fmax(h[m - 1].cost, cmin);
    if (cmax > a)
        area += (cmax - a) * h[m - 1].accuracy;
    free(h);
    return area / (cmax - cmin);
}

double so_cheapest_at_accuracy(const so_point_t *pts, size_t n, double target)
{
    if (!isfinite(target))
        return NAN;
    size_t m;
    so_point_t *h = s_hull_new(pts, n, &m);
    if (!h)
        return NAN;
    double c = NAN;
    for (size_t i = 0; i < m; i++) {
        if (h[i].accuracy >= target) {
            if (i == 0) {
                c = h[0].cost;
            } else {
                /* h[i-1].accuracy < target <= h[i].accuracy, so the
                 * segment rises strictly and the division is safe. */
                double t = (target - h[i - 1].accuracy) / (h[i].accuracy - h[i - 1].accuracy);
                c = h[i - 1].cost + t * (h[i].cost - h[i - 1].cost);
            }
            break;
        }
    }
    free(h);
    return c;
}

double so_cheapest_at_accuracy_raw(const so_point_t *pts, size_t n, double target)
{
    if (!isfinite(target) || (n > 0 && !pts))
        return NAN;
    double c = NAN;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(pts[i].cost) || !isfinite(pts[i].accuracy))
            return NAN;
        if (pts[i].accuracy >= target && !(pts[i].cost >= c))
            c = pts[i].cost;
    }
    return c;
}
