/*
 * so-eval — replays a test split against a handbook and reports the
 * accuracy-cost trade-off (RouterBench-style), or learns online in replay.
 *
 *   so-eval --handbook H --test FILE[,FILE...] --json OUT [--plot OUT.svg]
 *   so-eval --online [--handbook H | --empty] --test FILE[,...] [--lambda L]
 *           [--window N] [--json OUT] [--curve OUT.csv]
 */
#include "offline/so_eval.h"
#include "offline/so_learn.h"
#include "offline/so_plot.h"
#include "base/so_alloc.h"
#include "base/so_opts.h"
#include "base/so_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void s_progress(void *arg, size_t done, size_t total)
{
    const char *what = arg;
    if (done == total || done % 25 == 0 || total < 100) {
        fprintf(stderr, "\r%s %zu/%zu", what, done, total);
        if (done == total)
            fputc('\n', stderr);
        fflush(stderr);
    }
}

/* An empty handbook: one general skill per mode of the data, its agents,
 * no statistics. */
static so_handbook_t *s_empty(const so_dataset_t *ds)
{
    char err[256], id[160];
    so_handbook_t *hb = so_handbook_new("empty");
    for (size_t i = 0; i < ds->n_samples; i++) {
        const char *m = ds->samples[i].mode && *ds->samples[i].mode ? ds->samples[i].mode
                                                                    : "default";
        if (so_handbook_mode_index(hb, m) < 0) {
            so_handbook_add_mode(hb, m, "", err, sizeof err);
            snprintf(id, sizeof id, "%s.general", m);
            so_handbook_add_skill(hb, id, "general", "everything in this mode", m, NULL, err,
                                  sizeof err);
        }
    }
    for (size_t a = 0; a < ds->n_agents; a++)
        so_handbook_add_agent(hb, ds->agents[a], ds->agents[a], NULL, 0, 0, 0, err, sizeof err);
    return hb;
}

/* The learning curve as a plot: cumulative and per-window accuracy. */
static void s_online_plot(const so_online_t *r, const so_handbook_t *hb, double lambda,
                          const char *path)
{
    so_point_t *cum = so_calloc(r->n_rows, sizeof *cum), *win = so_calloc(r->n_rows, sizeof *win);
    char title[200], err[256];
    for (size_t i = 0; i < r->n_rows; i++) {
        cum[i] = (so_point_t){ r->row_n[i], r->row_acc[i] };
        win[i] = (so_point_t){ r->row_n[i], r->row_win_acc[i] };
    }
    so_plot_series_t series[2] = {
        { "cumulative accuracy", cum, r->n_rows, 0, SO_PLOT_MARK_CIRCLE, "#1f77b4", 0, 0 },
        { "accuracy in the window", win, r->n_rows, 1, SO_PLOT_MARK_SQUARE, "#ff7f0e", 0, 0 },
    };
    so_plot_t p = { 0 };
    snprintf(title, sizeof title, "Online learning in replay from %s (lambda %.3g)", hb->version,
             lambda);
    p.title = title;
    p.xlabel = "Queries routed";
    p.ylabel = "Accuracy";
    p.series = series;
    p.nseries = 2;
    p.xscale = SO_PLOT_XLINEAR;
    if (so_plot_svg(path, &p, err, sizeof err) < 0)
        fprintf(stderr, "so-eval: %s\n", err);
    free(cum);
    free(win);
}

static int s_online(so_handbook_t *hb, const so_dataset_t *ds, const so_online_opts_t *oo,
                    const char *json, const char *curve, const char *plot)
{
    so_online_t r;
    char err[512];
    if (so_online_run(hb, ds, oo, &r, err, sizeof err) < 0) {
        fprintf(stderr, "so-eval: %s\n", err);
        return 1;
    }
    printf(
        "online replay from handbook %s (%zu skills), lambda %.4g, thompson %s, explore floor %.3f\n",
        hb->version, hb->n_skills, oo->lambda, oo->thompson ? "on" : "off", oo->explore_floor);
    printf("  %8s %10s %12s %12s %12s\n", "queries", "accuracy", "cost/query", "window acc",
           "window cost");
    for (size_t i = 0; i < r.n_rows; i++)
        printf("  %8.0f %10.3f %12.6f %12.3f %12.6f\n", r.row_n[i], r.row_acc[i], r.row_cost[i],
               r.row_win_acc[i], r.row_win_cost[i]);
    printf("  overall accuracy %.4f at $%.6f per query; calls:", r.accuracy, r.cost);
    for (size_t a = 0; a < ds->n_agents; a++)
        if (r.share[a] > 0)
            printf(" %s %.0f%%", ds->agents[a], 100 * r.share[a]);
    printf("\n");
    if (curve) {
        FILE *f = fopen(curve, "w");
        if (!f) {
            fprintf(stderr, "so-eval: %s: cannot write\n", curve);
        } else {
            fprintf(f, "queries,accuracy,cost,window_accuracy,window_cost\n");
            for (size_t i = 0; i < r.n_rows; i++)
                fprintf(f, "%.0f,%.6f,%.8f,%.6f,%.8f\n", r.row_n[i], r.row_acc[i], r.row_cost[i],
                        r.row_win_acc[i], r.row_win_cost[i]);
            fclose(f);
        }
    }
    if (json) {
        FILE *f = fopen(json, "w");
        if (f) {
            fprintf(f,
                    "{\"mode\": \"online\", \"handbook_start\": \"%s\", \"lambda\": %.6g, "
                    "\"n\": %zu, \"accuracy\": %.6f, \"cost\": %.8f, \"curve\": [",
                    hb->version, oo->lambda, r.n, r.accuracy, r.cost);
            for (size_t i = 0; i < r.n_rows; i++)
                fprintf(f,
                        "%s{\"queries\": %.0f, \"accuracy\": %.6f, \"cost\": %.8f, "
                        "\"window_accuracy\": %.6f, \"window_cost\": %.8f}",
                        i ? ", " : "", r.row_n[i], r.row_acc[i], r.row_cost[i], r.row_win_acc[i],
                        r.row_win_cost[i]);
            fprintf(f, "]}\n");
            fclose(f);
        } else {
            fprintf(stderr, "so-eval: %s: cannot write\n", json);
        }
    }
    if (plot)
        s_online_plot(&r, hb, oo->lambda, plot);
    so_online_free(&r);
    return 0;
}

static const char s_synopsis[] =
    "so-eval --handbook H --test FILE[,FILE...] --json OUT [--plot OUT.svg]\n"
    "               [--cost-norm linear|log] [--min-obs N] [--quiet]\n"
    "       so-eval --online (--handbook H | --empty) --test FILE[,FILE...]\n"
    "               [--lambda L] [--explore P] [--no-thompson] [--window N]\n"
    "               [--seed N] [--shuffle] [--reset-stats] [--json OUT] [--curve OUT.csv]\n"
    "               [--plot OUT.svg]";

/* The command line. */
typedef struct {
    const char *hbpath, *test, *json, *plot, *curve, *cost_norm;
    int online, empty, quiet, shuffle, reset, no_thompson;
    long seed, window;
    double min_obs;
} s_args_t;

/* The parsed options into eo and oo, checked together; -1 to go on, else 2. */
static int s_apply(const s_args_t *a, const so_opts_t *p, so_eval_opts_t *eo,
                   so_online_opts_t *oo)
{
    if (a->cost_norm && strcmp(a->cost_norm, "linear") == 0)
        eo->router.cost_norm = oo->router.cost_norm = SO_COST_LINEAR;
    else if (a->cost_norm && strcmp(a->cost_norm, "log") == 0)
        eo->router.cost_norm = oo->router.cost_norm = SO_COST_LOG;
    else if (a->cost_norm) {
        fprintf(stderr, "so-eval: --cost-norm: expected linear or log, got '%s'\n", a->cost_norm);
        return 2;
    }
    if (so_opts_seen(p, "min-obs"))
        eo->router.min_obs = oo->router.min_obs = a->min_obs;
    if (so_opts_seen(p, "window"))
        oo->window = (size_t) a->window;
    if (so_opts_seen(p, "seed"))
        oo->seed = eo->seed = (uint64_t) a->seed;
    if (a->no_thompson)
        oo->thompson = 0;
    if (!a->test || (!a->hbpath && !(a->online && a->empty)) || (!a->online && !a->json)) {
        fprintf(stderr, "so-eval: give --test and --handbook (or --online --empty), and --json "
                        "unless --online (so-eval --help)\n");
        return 2;
    }
    return -1;
}

/* The options of the command line into a, eo and oo; -1 to go on, else the exit status. */
static int s_parse(int argc, char **argv, s_args_t *a, so_eval_opts_t *eo, so_online_opts_t *oo)
{
    so_opt_t opts[] = {
        SO_OPT_STR("handbook", 0, &a->hbpath, "H", "the handbook to replay"),
        SO_OPT_STR("test", 0, &a->test, "FILE[,FILE...]", "the test split"),
        SO_OPT_STR("json", 0, &a->json, "OUT", "results as JSON"),
        SO_OPT_STR("plot", 0, &a->plot, "OUT.svg", "a plot of the results"),
        SO_OPT_STR("curve", 0, &a->curve, "OUT.csv", "the online learning curve"),
        SO_OPT_STR("cost-norm", 0, &a->cost_norm, "linear|log", "cost normalisation"),
        SO_OPT_DBL("min-obs", 0, &a->min_obs, "N", 0, 1e9,
                   "observations before a statistic counts"),
        SO_OPT_FLAG("quiet", 0, &a->quiet, "no progress"),
        SO_OPT_FLAG("online", 0, &a->online, "learn online in replay"),
        SO_OPT_FLAG("empty", 0, &a->empty, "start from an empty handbook (with --online)"),
        SO_OPT_DBL("lambda", 0, &oo->lambda, "L", 0, 1e6, "cost weight (online)"),
        SO_OPT_DBL("explore", 0, &oo->explore_floor, "P", 0, 1, "exploration floor (online)"),
        SO_OPT_FLAG("no-thompson", 0, &a->no_thompson, "greedy instead of Thompson sampling"),
        SO_OPT_INT("window", 0, &a->window, "N", 1, 1e9, "queries per curve window"),
        SO_OPT_INT("seed", 0, &a->seed, "N", 0, 1e18, "RNG seed"),
        SO_OPT_FLAG("shuffle", 0, &a->shuffle,
                    "replay the queries in a seeded random order (the test files\n"
                    "are sorted by task, which would make the learning curve a\n"
                    "curve of task shifts)"),
        SO_OPT_FLAG("reset-stats", 0, &a->reset,
                    "keep the handbook's skills but forget every competence and\n"
                    "cost statistic: competence is then learned online only"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    int code = so_opts_main(&p, argc, argv, "so-eval", s_synopsis, NULL);
    return code >= 0 ? code : s_apply(a, &p, eo, oo);
}

/* Fisher–Yates with the run's seed: the same order every time. */
static void s_shuffle(so_dataset_t *ds, uint64_t seed)
{
    so_rng_t rng;
    so_rng_seed(&rng, so_rng_mix(seed, 0x5eed));
    for (size_t i = ds->n_samples; i > 1; i--) {
        size_t j = (size_t) (so_rng_next(&rng) % i);
        so_sample_t t = ds->samples[i - 1];
        ds->samples[i - 1] = ds->samples[j];
        ds->samples[j] = t;
    }
}

/* The lambda sweep, printed and written; the exit status. */
static int s_offline(const so_handbook_t *hb, const so_dataset_t *ds, const so_eval_opts_t *eo,
                     const char *json, const char *plot)
{
    char err[512], title[256];
    so_eval_t e;
    if (so_eval_run(hb, ds, eo, &e, err, sizeof err) < 0) {
        fprintf(stderr, "so-eval: %s\n", err);
        return 1;
    }
    int rc = 0;
    so_eval_print(&e, hb, stdout);
    if (so_eval_write_json(&e, hb, json, err, sizeof err) < 0) {
        fprintf(stderr, "so-eval: %s\n", err);
        rc = 1;
    }
    snprintf(title, sizeof title, "Accuracy vs cost — handbook %s, %zu queries", hb->version,
             e.n_samples);
    if (plot && so_eval_write_svg(&e, title, plot, err, sizeof err) < 0) {
        fprintf(stderr, "so-eval: %s\n", err);
        rc = 1;
    }
    so_eval_free(&e);
    return rc;
}

int main(int argc, char **argv)
{
    s_args_t a = { 0 };
    so_eval_opts_t eo;
    so_online_opts_t oo;
    char err[512];

    so_eval_opts_default(&eo);
    so_online_opts_default(&oo);
    int code = s_parse(argc, argv, &a, &eo, &oo);
    if (code >= 0)
        return code;
    int tty = isatty(2) && !a.quiet;
    so_dataset_t ds;
    if (so_dataset_load(&ds, a.test, err, sizeof err) < 0) {
        fprintf(stderr, "so-eval: %s\n", err);
        return 1;
    }
    if (!a.quiet)
        fprintf(stderr, "so-eval: %zu test queries, %zu agents (%zu rows skipped as unusable)\n",
                ds.n_samples, ds.n_agents, ds.skipped);
    if (a.shuffle)
        s_shuffle(&ds, oo.seed);
    so_handbook_t *hb = a.empty ? s_empty(&ds) : so_handbook_load(a.hbpath, err, sizeof err);
    if (!hb) {
        fprintf(stderr, "so-eval: %s\n", err);
        so_dataset_free(&ds);
        return 1;
    }
    if (a.reset)
        memset(hb->stats, 0, hb->n_agents * hb->n_skills * sizeof *hb->stats);
    oo.progress = tty ? s_progress : NULL;
    oo.progress_arg = tty ? "so-eval: online replay" : NULL;
    eo.progress = tty ? s_progress : NULL;
    eo.progress_arg = tty ? "so-eval: lambda sweep" : NULL;
    int rc = a.online ? s_online(hb, &ds, &oo, a.json, a.curve, a.plot)
                      : s_offline(hb, &ds, &eo, a.json, a.plot);
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
    return rc;
}
