/*
 * so_metrics — the numbers a router is judged by, RouterBench-style
 * (Hu et al. 2024, "RouterBench: A Benchmark for Multi-LLM Routing System"):
 * the non-decreasing convex hull of (cost, accuracy) operating points, the
 * AIQ (average accuracy under that hull over a cost range), and the cheapest cost
 * that reaches an accuracy.  (The proportion tests that compare success
 * rates are method/so_stats.h.)  Pure functions; nothing is allocated that the
 * caller must free.
 *
 * The hull.  Points are sorted by cost; the upper concave hull is kept; the
 * part after the highest accuracy is dropped, and the curve is flat from the
 * last vertex on.  A point below an earlier, cheaper point adds nothing.  Any
 * two adjacent vertices can be mixed (route a fraction of queries to each),
 * so the curve between them is the straight line.  Points of equal cost keep
 * the best accuracy.
 *
 * AIQ, and what happens below the cheapest hull point.  The paper defines
 *     AIQ = 1/(cmax - cmin) * integral_{cmin}^{cmax} hull(c) dc
 * with [cmin, cmax] the cost range of the single models; the shared data's
 * reference figure (zero router AIQ 0.823) uses exactly that normalisation.
 * RouterBench's code (withmartian/routerbench, evaluation/AIQ.py, calc_AIQ)
 * integrates with np.trapz over the hull vertices only, from the router's
 * cheapest hull point to the largest cost, after appending a flat point at
 * that largest cost.  So cost below the router's cheapest operating point
 * contributes nothing: a router cannot be credited with an accuracy at a
 * cost it cannot run at.  We do the same: hull(c) = 0 for c below the first
 * hull vertex, linear between vertices, flat after the last one.  Vertices
 * outside [cmin, cmax] still shape the curve, which is then clipped to the
 * range (interpolated at cmin and cmax).  (The code divides by the largest
 * cost, i.e. uses cmin = 0; we divide by cmax - cmin as the paper and the
 * reference figure do.  Its hull routine's quirks — interior points replaced
 * by interpolated values, one-pass removal of decreasing points — give the
 * same area for a concave hull and are not copied.)
 */
#ifndef SO_METRICS_H
#define SO_METRICS_H

#include <stddef.h>

typedef struct {
    double cost, accuracy;
} so_point_t;

/* Non-decreasing convex hull of pts[0..n).  Writes the vertices, sorted by
 * increasing cost and (weakly) increasing accuracy, into out, which must
 * hold n points (out may equal pts), and their count into *out_n.  Returns
 * 0, or -1 (and *out_n = 0) if a coordinate is not finite or a pointer is
 * NULL while n > 0.  n == 0 gives an empty hull. */
int so_metrics_hull(const so_point_t *pts, size_t n, so_point_t *out, size_t *out_n);

/* The hull's accuracy at cost c: 0 below the first vertex, linear between
 * vertices, flat after the last.  NAN on bad input or n == 0. */
double so_metrics_hull_at(const so_point_t *pts, size_t n, double c);

/* AIQ of pts over [cmin, cmax] (see the top of this file): the area under
 * the hull on that range divided by cmax - cmin.  When cmax == cmin (one
 * single model) it is the hull's value at cmin, the limit of the average.
 * NAN if n == 0, a coordinate or bound is not finite, or cmax < cmin. */
double so_aiq(const so_point_t *pts, size_t n, double cmin, double cmax);

/* Cheapest cost at which the hull reaches accuracy >= target.  Between two
 * vertices the cost is interpolated: a router can mix two operating points
 * in any proportion, so every point on the segment is attainable.  NAN if
 * the best accuracy is below target, n == 0 or the input is not finite. */
double so_cheapest_at_accuracy(const so_point_t *pts, size_t n, double target);

/* The same over the raw points, without mixing: the smallest cost among
 * points whose own accuracy is >= target.  Never below the hull version.
 * NAN if no point reaches target or the input is not finite. */
double so_cheapest_at_accuracy_raw(const so_point_t *pts, size_t n, double target);

#endif
