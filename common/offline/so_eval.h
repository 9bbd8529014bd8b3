/*
 * so_eval — replays recorded outcomes against a handbook (RouterBench-style).
 *
 * For every sample of a dataset the turn's demand is inferred once; then for
 * each λ of a sweep every sample is routed (only agents whose outcome was
 * recorded for that sample are candidates) and the recorded score and cost
 * of the chosen agent are averaged.  The report holds the sweep, the single
 * models, the oracle (best score, cheapest among those), uniform random,
 * the AIQ of the router and of the zero router (hull of single models) over
 * the single models' cost range, and the share of calls per agent.
 */
#ifndef SO_EVAL_H
#define SO_EVAL_H

#include "method/so_handbook.h"
#include "method/so_route.h"
#include "offline/so_trace.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
    double lambda;
    double accuracy;
    double cost;   /* mean USD per query */
    double *share; /* [n_agents] share of calls (dataset agent order) */
} so_eval_point_t;

typedef struct {
    size_t n_samples;
    size_t n_agents;                  /* the dataset's agents */
    char **agents;                    /* borrowed from the dataset */
    double *single_acc, *single_cost; /* [n_agents] */
    int best_single;                  /* most accurate single agent (cheaper on ties) */
    double oracle_acc, oracle_cost;
    double random_acc, random_cost;
    double cmin, cmax; /* cost range of the single agents */
    so_eval_point_t *points;
    size_t n_points;
    double aiq, zero_aiq;
    double max_accuracy, max_accuracy_cost;
    double cost_to_match_best; /* cheapest sweep point with acc >= best single; NAN if none */
    double cost_to_match_best_hull; /* the same on the hull (mixing two points); NAN if none */
    /* Per-skill view: samples whose largest demand weight is on the skill. */
    size_t n_skills;
    size_t *skill_samples; /* [n_skills] */
} so_eval_t;

typedef void so_progress_fn(void *arg, size_t done, size_t total);

typedef struct {
    const double *lambdas; /* NULL = the default sweep */
    size_t n_lambdas;
    so_route_opts_t router;
    double temperature; /* 0 = the handbook's */
    int thompson;
    double explore_floor;
    uint64_t seed;
    so_progress_fn *progress;
    void *progress_arg;
} so_eval_opts_t;

void so_eval_opts_default(so_eval_opts_t *o);
/* The default λ sweep: 0 and 40 values log-spaced over [1e-3, 10]. */
size_t so_eval_default_lambdas(double *out, size_t max);

int so_eval_run(const so_handbook_t *hb, const so_dataset_t *ds, const so_eval_opts_t *o,
                so_eval_t *out, char *err, size_t errlen);
void so_eval_free(so_eval_t *e);
/* Only the baselines of ds (single agents, best single, oracle, random,
 * cost range) into a zeroed *e; free with so_eval_free. */
void so_eval_baselines(const so_dataset_t *ds, so_eval_t *e);

/* JSON report (keys: aiq, max_accuracy, best_single, oracle, random,
 * cost_to_match_best, points, singles, shares, skills ...). */
int so_eval_write_json(const so_eval_t *e, const so_handbook_t *hb, const char *path, char *err,
                       size_t errlen);
/* SVG plot of the sweep against the single models. */
int so_eval_write_svg(const so_eval_t *e, const char *title, const char *path, char *err,
                      size_t errlen);
/* Human-readable summary. */
void so_eval_print(const so_eval_t *e, const so_handbook_t *hb, FILE *out);

/* Online learning in replay: streams ds in order; routes each sample with
 * exploration, reveals the recorded outcome, credits the chosen agent on the
 * turn's inferred skills (weights = demand) and refreshes the router every
 * refresh_every samples.  Writes one row per window of the learning curve
 * (cumulative and windowed accuracy and cost) to curve (may be NULL) and
 * returns the overall accuracy and cost.  hb is updated in place. */
typedef struct {
    double lambda;
    int thompson;
    double explore_floor;
    uint64_t seed;
    size_t window;        /* samples per curve row (default 100) */
    size_t refresh_every; /* default 1: learn from every outcome at once */
    so_route_opts_t router;
    so_progress_fn *progress;
    void *progress_arg;
} so_online_opts_t;

typedef struct {
    size_t n;
    double accuracy, cost;
    size_t n_rows;
    double *row_n, *row_acc, *row_cost, *row_win_acc, *row_win_cost;
    double *share; /* [n_agents of ds] */
} so_online_t;

void so_online_opts_default(so_online_opts_t *o);
int so_online_run(so_handbook_t *hb, const so_dataset_t *ds, const so_online_opts_t *o,
                  so_online_t *out, char *err, size_t errlen);
void so_online_free(so_online_t *r);

#endif
