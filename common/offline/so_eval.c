/*
 * so_eval — offline replay evaluation and online learning in replay
 * (see so_eval.h).
 */
#include "offline/so_eval.h"
#include "method/so_infer.h"
#include "offline/so_metrics.h"
#include "offline/so_plot.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_rng.h"
#include "base/so_text.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void so_eval_opts_default(so_eval_opts_t *o)
{
    memset(o, 0, sizeof *o);
    so_route_opts_default(&o->router);
}

size_t so_eval_default_lambdas(double *out, size_t max)
{
    size_t n = 0;
    if (max == 0)
        return 0;
    out[n++] = 0;
    for (int i = 0; i < 40 && n < max; i++)
        out[n++] = 1e-3 * pow(10.0, 4.0 * i / 39.0);
    return n;
}

/* Maps handbook agents to dataset agents (-1: no recorded outcomes). */
static int *s_agent_map(const so_handbook_t *hb, const so_dataset_t *ds)
{
    int *map = so_calloc(hb->n_agents, sizeof *map);
    for (size_t a = 0; a < hb->n_agents; a++)
        map[a] = so_dataset_agent_index(ds, hb->agents[a].id);
    return map;
}

static int s_sample_mode(const so_handbook_t *hb, const so_sample_t *s)
{
    return so_handbook_mode_index(hb, s->mode && *s->mode ? s->mode : "default");
}

/* The route request of one sample: only agents with a recorded score are
 * candidates (replay can only reveal what was recorded). */
static void s_sample_req(const so_handbook_t *hb, const so_sample_t *s, const int *map,
                         unsigned char *exclude, so_route_req_t *q)
{
    so_route_req_default(q);
    q->mode = s_sample_mode(hb, s);
    q->est_prompt_tokens = so_tokens_estimate(strlen(s->prompt ? s->prompt : ""));
    q->exclude = exclude;
    for (size_t a = 0; a < hb->n_agents; a++)
        exclude[a] = map[a] < 0 || !isfinite(s->score[map[a]]);
}

static double s_cost_of(const so_sample_t *s, int d)
{
    return isfinite(s->cost[d]) ? s->cost[d] : 0;
}

static void s_baselines(const so_dataset_t *ds, so_eval_t *e);

void so_eval_baselines(const so_dataset_t *ds, so_eval_t *e)
{
    memset(e, 0, sizeof *e);
    e->n_samples = ds->n_samples;
    e->n_agents = ds->n_agents;
    e->agents = ds->agents;
    s_baselines(ds, e);
}

/* Single agents, oracle and random on the dataset. */
static void s_baselines(const so_dataset_t *ds, so_eval_t *e)
{
    size_t A = ds->n_agents;
    double *n = so_calloc(A, sizeof *n);
    e->single_acc = so_calloc(A, sizeof(double));
    e->single_cost = so_calloc(A, sizeof(double));
    for (size_t i = 0; i < ds->n_samples; i++) {
        const so_sample_t *s = &ds->samples[i];
        int best = -1;
        double racc = 0, rcost = 0, rn = 0;
        for (size_t a = 0; a < A; a++) {
            if (!isfinite(s->score[a]))
                continue;
            e->single_acc[a] += s->score[a];
            e->single_cost[a] += s_cost_of(s, (int) a);
            n[a] += 1;
            racc += s->score[a];
            rcost += s_cost_of(s, (int) a);
            rn += 1;
            if (best < 0 || s->score[a] > s->score[best] ||
                (s->score[a] == s->score[best] && s_cost_of(s, (int) a) < s_cost_of(s, best)))
                best = (int) a;
        }
        if (best >= 0) {
            e->oracle_acc += s->score[best];
            e->oracle_cost += s_cost_of(s, best);
            e->random_acc += racc / rn;
            e->random_cost += rcost / rn;
        }
    }
    double N = (double) (ds->n_samples ? ds->n_samples : 1);
    e->oracle_acc /= N;
    e->oracle_cost /= N;
    e->random_acc /= N;
    e->random_cost /= N;
    e->best_single = -1;
    e->cmin = INFINITY;
    e->cmax = 0;
    for (size_t a = 0; a < A; a++) {
        if (n[a] > 0) {
            e->single_acc[a] /= n[a];
            e->single_cost[a] /= n[a];
        } else {
            e->single_acc[a] = e->single_cost[a] = NAN;
            continue;
        }
        e->cmin = fmin(e->cmin, e->single_cost[a]);
        e->cmax = fmax(e->cmax, e->single_cost[a]);
        if (e->best_single < 0 || e->single_acc[a] > e->single_acc[e->best_single] ||
            (e->single_acc[a] == e->single_acc[e->best_single] &&
             e->single_cost[a] < e->single_cost[e->best_single]))
            e->best_single = (int) a;
    }
    free(n);
}

int so_eval_run(const so_handbook_t *hb, const so_dataset_t *ds, const so_eval_opts_t *o,
                so_eval_t *e, char *err, size_t errlen)
{
    double lam_default[64];
    const double *lams = o->lambdas;
    size_t n_lams = o->n_lambdas;
    size_t S = hb->n_skills, A = hb->n_agents, N = ds->n_samples;

    memset(e, 0, sizeof *e);
    if (N == 0) {
        so_err(err, errlen, "no samples to evaluate");
        return -1;
    }
    if (!lams) {
        n_lams = so_eval_default_lambdas(lam_default, 64);
        lams = lam_default;
    }
    int *map = s_agent_map(hb, ds);
    size_t n_mapped = 0;
    for (size_t a = 0; a < A; a++)
        n_mapped += map[a] >= 0;
    if (n_mapped == 0) {
        free(map);
        so_err(err, errlen, "no handbook agent has recorded outcomes in the test data");
        return -1;
    }
    e->n_samples = N;
    e->n_agents = ds->n_agents;
    e->agents = ds->agents;
    s_baselines(ds, e);

    /* Demands once: inference does not depend on λ. */
    so_infer_t *inf = so_infer_new(hb);
    so_infer_set_temperature(inf, o->temperature);
    double *dem = so_calloc(N * (S ? S : 1), sizeof *dem);
    e->n_skills = S;
    e->skill_samples = so_calloc(S, sizeof(size_t));
    for (size_t i = 0; i < N; i++) {
        double *d = dem + i * S;
        so_infer(inf, ds->samples[i].prompt, s_sample_mode(hb, &ds->samples[i]), d);
        size_t best = 0;
        for (size_t s = 1; s < S; s++)
            if (d[s] > d[best])
                best = s;
        if (S)
            e->skill_samples[best]++;
    }
    so_infer_destroy(&inf);

    so_route_tables_t *r = so_route_tables_new(hb, &o->router);
    so_decision_t dec;
    so_decision_init(&dec);
    unsigned char *excl = so_calloc(A, 1);
    e->points = so_calloc(n_lams, sizeof *e->points);
    e->n_points = n_lams;
    for (size_t l = 0; l < n_lams; l++) {
        so_eval_point_t *p = &e->points[l];
        p->lambda = lams[l];
        p->share = so_calloc(ds->n_agents, sizeof(double));
        for (size_t i = 0; i < N; i++) {
            const so_sample_t *s = &ds->samples[i];
            so_route_req_t q;
            s_sample_req(hb, s, map, excl, &q);
            q.lambda = lams[l];
            q.thompson = o->thompson;
            q.explore_floor = o->explore_floor;
            q.seed = so_rng_mix(o->seed, i * 1000003ULL + l);
            if (so_route(r, dem + i * S, &q, &dec) < 0)
                continue; /* cannot happen: some agent has a score */
            int d = map[dec.chosen];
            p->accuracy += s->score[d];
            p->cost += s_cost_of(s, d);
            p->share[d] += 1;
        }
        p->accuracy /= (double) N;
        p->cost /= (double) N;
        for (size_t a = 0; a < ds->n_agents; a++)
            p->share[a] /= (double) N;
        if (o->progress)
            o->progress(o->progress_arg, l + 1, n_lams);
    }
    free(excl);
    so_decision_free(&dec);
    so_route_tables_destroy(&r);
    free(dem);
    free(map);

    /* Summary figures. */
    so_point_t *pts = so_calloc(n_lams + ds->n_agents, sizeof *pts);
    size_t np = 0;
    e->max_accuracy = -1;
    for (size_t l = 0; l < n_lams; l++) {
        pts[np++] = (so_point_t){ e->points[l].cost, e->points[l].accuracy };
        if (e->points[l].accuracy > e->max_accuracy ||
            (e->points[l].accuracy == e->max_accuracy &&
             e->points[l].cost < e->max_accuracy_cost)) {
            e->max_accuracy = e->points[l].accuracy;
            e->max_accuracy_cost = e->points[l].cost;
        }
    }
    e->aiq = so_aiq(pts, np, e->cmin, e->cmax);
    double target = e->best_single >= 0 ? e->single_acc[e->best_single] : NAN;
    e->cost_to_match_best = so_cheapest_at_accuracy_raw(pts, np, target);
    e->cost_to_match_best_hull = so_cheapest_at_accuracy(pts, np, target);
    np = 0;
    for (size_t a = 0; a < ds->n_agents; a++)
        if (isfinite(e->single_acc[a]))
            pts[np++] = (so_point_t){ e->single_cost[a], e->single_acc[a] };
    e->zero_aiq = so_aiq(pts, np, e->cmin, e->cmax);
    free(pts);
    return 0;
}

void so_eval_free(so_eval_t *e)
{
    if (!e)
        return;
    for (size_t l = 0; l < e->n_points; l++)
        free(e->points[l].share);
    free(e->points);
    free(e->single_acc);
    free(e->single_cost);
    free(e->skill_samples);
    memset(e, 0, sizeof *e);
}

static json_t *s_num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *s_point(double acc, double cost)
{
    json_t *o = json_object();
    json_object_set_new(o, "accuracy", s_num(acc));
    json_object_set_new(o, "cost", s_num(cost));
    return o;
}

int so_eval_write_json(const so_eval_t *e, const so_handbook_t *hb, const char *path, char *err,
                       size_t errlen)
{
    json_t *root = json_object(), *pts = json_array(), *singles = json_object();
    json_t *skills = json_array();
    json_object_set_new(root, "handbook_version", json_string(hb->version));
    json_object_set_new(root, "n_samples", json_integer((json_int_t) e->n_samples));
    json_object_set_new(root, "aiq", s_num(e->aiq));
    json_object_set_new(root, "zero_router_aiq", s_num(e->zero_aiq));
    json_object_set_new(root, "max_accuracy", s_num(e->max_accuracy));
    json_object_set_new(root, "max_accuracy_cost", s_num(e->max_accuracy_cost));
    if (e->best_single >= 0) {
        json_t *b = s_point(e->single_acc[e->best_single], e->single_cost[e->best_single]);
        json_object_set_new(b, "model", json_string(e->agents[e->best_single]));
        json_object_set_new(root, "best_single", b);
    }
    json_object_set_new(root, "oracle", s_point(e->oracle_acc, e->oracle_cost));
    json_object_set_new(root, "random", s_point(e->random_acc, e->random_cost));
    json_object_set_new(root, "cost_to_match_best", s_num(e->cost_to_match_best));
    json_object_set_new(root, "cost_to_match_best_hull", s_num(e->cost_to_match_best_hull));
    if (e->best_single >= 0 && isfinite(e->cost_to_match_best))
        json_object_set_new(root, "cost_to_match_best_ratio",
                            json_real(e->cost_to_match_best / e->single_cost[e->best_single]));
    json_object_set_new(root, "single_cost_range", json_pack("[f,f]", e->cmin, e->cmax));
    for (size_t l = 0; l < e->n_points; l++) {
        const so_eval_point_t *p = &e->points[l];
        json_t *o = json_object(), *sh = json_object();
        json_object_set_new(o, "lambda", json_real(p->lambda));
        json_object_set_new(o, "accuracy", s_num(p->accuracy));
        json_object_set_new(o, "cost", s_num(p->cost));
        for (size_t a = 0; a < e->n_agents; a++)
            if (p->share[a] > 0)
                json_object_set_new(sh, e->agents[a], json_real(p->share[a]));
        json_object_set_new(o, "share", sh);
        json_array_append_new(pts, o);
    }
    json_object_set_new(root, "points", pts);
    for (size_t a = 0; a < e->n_agents; a++)
        json_object_set_new(singles, e->agents[a], s_point(e->single_acc[a], e->single_cost[a]));
    json_object_set_new(root, "singles", singles);

    /* Per-skill competence table: posterior means of every agent. */
    so_route_tables_t *r = so_route_tables_new(hb, NULL);
    for (size_t s = 0; s < hb->n_skills; s++) {
        json_t *o = json_object(), *comp = json_object();
        json_object_set_new(o, "skill", json_string(hb->skills[s].id));
        json_object_set_new(o, "name", json_string(hb->skills[s].name));
        json_object_set_new(o, "test_samples",
                            json_integer(
                                (json_int_t) (s < e->n_skills ? e->skill_samples[s] : 0)));
        for (size_t a = 0; a < hb->n_agents; a++) {
            double al, be;
            so_route_posterior(r, a, s, &al, &be, NULL);
            json_t *c = json_object();
            json_object_set_new(c, "competence", json_real(al / (al + be)));
            json_object_set_new(c, "attempts", json_real(so_handbook_stat(hb, a, s)->attempts));
            json_object_set_new(c, "cost", s_num(so_route_skill_cost(r, a, s)));
            json_object_set_new(comp, hb->agents[a].id, c);
        }
        json_object_set_new(o, "agents", comp);
        json_array_append_new(skills, o);
    }
    so_route_tables_destroy(&r);
    json_object_set_new(root, "skills", skills);

    int rc = json_dump_file(root, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc != 0) {
        so_err(err, errlen, "%s: cannot write report", path);
        return -1;
    }
    return 0;
}

static const char *s_short(const char *model)
{
    const char *sl = strrchr(model, '/');
    return sl ? sl + 1 : model;
}

void so_eval_print(const so_eval_t *e, const so_handbook_t *hb, FILE *out)
{
    fprintf(out, "handbook %s: %zu skills, %zu agents; %zu test queries\n", hb->version,
            hb->n_skills, hb->n_agents, e->n_samples);
    fprintf(out, "\n  %-34s %9s %12s\n", "single model", "accuracy", "cost/query");
    for (size_t a = 0; a < e->n_agents; a++)
        fprintf(out, "  %-34s %9.3f %12.6f%s\n", s_short(e->agents[a]), e->single_acc[a],
                e->single_cost[a], (int) a == e->best_single ? "  <- best single" : "");
    fprintf(out, "  %-34s %9.3f %12.6f\n", "oracle (cheapest correct)", e->oracle_acc,
            e->oracle_cost);
    fprintf(out, "  %-34s %9.3f %12.6f\n", "uniform random", e->random_acc, e->random_cost);

    fprintf(out, "\n  %8s %9s %12s  %s\n", "lambda", "accuracy", "cost/query", "top agents");
    for (size_t l = 0; l < e->n_points; l++) {
        const so_eval_point_t *p = &e->points[l];
        int t1 = -1, t2 = -1;
        for (size_t a = 0; a < e->n_agents; a++) {
            if (t1 < 0 || p->share[a] > p->share[t1]) {
                t2 = t1;
                t1 = (int) a;
            } else if (t2 < 0 || p->share[a] > p->share[t2]) {
                t2 = (int) a;
            }
        }
        fprintf(out, "  %8.4f %9.3f %12.6f  %s %.0f%%", p->lambda, p->accuracy, p->cost,
                s_short(e->agents[t1]), 100 * p->share[t1]);
        if (t2 >= 0 && p->share[t2] > 0)
            fprintf(out, ", %s %.0f%%", s_short(e->agents[t2]), 100 * p->share[t2]);
        fputc('\n', out);
    }
    fprintf(out, "\n  AIQ %.4f (zero router %.4f); max accuracy %.4f at $%.6f\n", e->aiq,
            e->zero_aiq, e->max_accuracy, e->max_accuracy_cost);
    if (e->best_single >= 0) {
        double bc = e->single_cost[e->best_single];
        if (isfinite(e->cost_to_match_best))
            fprintf(out,
                    "  matches the best single model (%.3f) at $%.6f = %.0f%% of its cost"
                    " (mixing two points: %.0f%%)\n",
                    e->single_acc[e->best_single], e->cost_to_match_best,
                    100 * e->cost_to_match_best / bc, 100 * e->cost_to_match_best_hull / bc);
        else
            fprintf(out, "  never matches the best single model's accuracy %.3f\n",
                    e->single_acc[e->best_single]);
    }
}

/* ------------------------------------------------------------------ */
/* Online learning in replay                                          */

void so_online_opts_default(so_online_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->thompson = 1;
    o->explore_floor = 0.02;
    o->window = 100;
    o->refresh_every = 1;
    so_route_opts_default(&o->router);
}

int so_online_run(so_handbook_t *hb, const so_dataset_t *ds, const so_online_opts_t *o,
                  so_online_t *out, char *err, size_t errlen)
{
    size_t S = hb->n_skills, A = hb->n_agents, N = ds->n_samples;
    size_t win = o->window ? o->window : 100, every = o->refresh_every ? o->refresh_every : 1;

    memset(out, 0, sizeof *out);
    if (N == 0 || S == 0) {
        so_err(err, errlen, N == 0 ? "no samples to replay" : "handbook has no skills");
        return -1;
    }
    int *map = s_agent_map(hb, ds);
    so_infer_t *inf = so_infer_new(hb);
    so_route_tables_t *r = so_route_tables_new(hb, &o->router);
    so_decision_t dec;
    so_decision_init(&dec);
    double *dem = so_calloc(S, sizeof *dem);
    unsigned char *excl = so_calloc(A, 1);
    size_t rows = (N + win - 1) / win;
    out->row_n = so_calloc(rows, sizeof(double));
    out->row_acc = so_calloc(rows, sizeof(double));
    out->row_cost = so_calloc(rows, sizeof(double));
    out->row_win_acc = so_calloc(rows, sizeof(double));
    out->row_win_cost = so_calloc(rows, sizeof(double));
    out->share = so_calloc(ds->n_agents, sizeof(double));
    double acc = 0, cost = 0, wacc = 0, wcost = 0;
    size_t wn = 0;

    for (size_t i = 0; i < N; i++) {
        const so_sample_t *s = &ds->samples[i];
        so_route_req_t q;
        s_sample_req(hb, s, map, excl, &q);
        q.lambda = o->lambda;
        q.thompson = o->thompson;
        q.explore_floor = o->explore_floor;
        q.seed = so_rng_mix(o->seed, i);
        so_infer(inf, s->prompt, q.mode, dem);
        if (so_route(r, dem, &q, &dec) == 0) {
            int d = map[dec.chosen];
            double sc = s->score[d], c = s_cost_of(s, d);
            acc += sc;
            cost += c;
            wacc += sc;
            wcost += c;
            out->share[d] += 1;
            /* Reveal the outcome: credit the chosen agent on the turn's skills. */
            for (size_t k = 0; k < S; k++)
                if (dem[k] > 0)
                    so_handbook_observe(hb, (size_t) dec.chosen, k, dem[k], sc, c,
                                        s->prompt_tokens[d], s->completion_tokens[d],
                                        s->latency[d]);
            if ((i + 1) % every == 0)
                so_route_tables_refresh(r, hb);
        }
        wn++;
        if (wn == win || i + 1 == N) {
            size_t row = out->n_rows++;
            out->row_n[row] = (double) (i + 1);
            out->row_acc[row] = acc / (double) (i + 1);
            out->row_cost[row] = cost / (double) (i + 1);
            out->row_win_acc[row] = wacc / (double) wn;
            out->row_win_cost[row] = wcost / (double) wn;
            wacc = wcost = 0;
            wn = 0;
        }
        if (o->progress)
            o->progress(o->progress_arg, i + 1, N);
    }
    out->n = N;
    out->accuracy = acc / (double) N;
    out->cost = cost / (double) N;
    for (size_t a = 0; a < ds->n_agents; a++)
        out->share[a] /= (double) N;
    free(dem);
    free(excl);
    free(map);
    so_decision_free(&dec);
    so_route_tables_destroy(&r);
    so_infer_destroy(&inf);
    return 0;
}

void so_online_free(so_online_t *r)
{
    if (!r)
        return;
    free(r->row_n);
    free(r->row_acc);
    free(r->row_cost);
    free(r->row_win_acc);
    free(r->row_win_cost);
    free(r->share);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------ */
/* The accuracy-cost plot                                             */

static int s_cmp_point(const void *a, const void *b)
{
    const so_point_t *x = a, *y = b;
    return x->cost < y->cost ? -1 : x->cost > y->cost;
}

int so_eval_write_svg(const so_eval_t *e, const char *title, const char *path, char *err,
                      size_t errlen)
{
    so_point_t *sweep = so_calloc(e->n_points, sizeof *sweep);
    so_point_t *hull = so_calloc(e->n_points, sizeof *hull);
    so_point_t *zero = so_calloc(e->n_agents, sizeof *zero);
    so_plot_label_t *labels = so_calloc(e->n_agents + 2, sizeof *labels);
    size_t ns = 0, nh = 0, nz = 0, nzh = 0, nl = 0;

    /* Cost 0 cannot sit on a log axis: such points are left out of the plot. */
    for (size_t l = 0; l < e->n_points; l++)
        if (e->points[l].cost > 0)
            sweep[ns++] = (so_point_t){ e->points[l].cost, e->points[l].accuracy };
    qsort(sweep, ns, sizeof *sweep, s_cmp_point);
    so_metrics_hull(sweep, ns, hull, &nh);
    for (size_t a = 0; a < e->n_agents; a++) {
        if (!(e->single_cost[a] > 0))
            continue;
        zero[nz++] = (so_point_t){ e->single_cost[a], e->single_acc[a] };
        labels[nl++] = (so_plot_label_t){ s_short(e->agents[a]), zero[nz - 1],
                                          SO_PLOT_MARK_SQUARE, NULL, "single models" };
    }
    so_point_t *zh = so_calloc(nz ? nz : 1, sizeof *zh);
    so_metrics_hull(zero, nz, zh, &nzh);
    if (e->oracle_cost > 0)
        labels[nl++] = (so_plot_label_t){
            "oracle", { e->oracle_cost, e->oracle_acc }, SO_PLOT_MARK_STAR, "#d62728", "oracle"
        };
    if (e->random_cost > 0)
        labels[nl++] = (so_plot_label_t){ "random",
                                          { e->random_cost, e->random_acc },
                                          SO_PLOT_MARK_CROSS,
                                          "#7f7f7f",
                                          "uniform random" };
    so_plot_series_t series[3] = {
        { "SkillOrchestra λ sweep", sweep, ns, 0, SO_PLOT_MARK_CIRCLE, "#1f77b4", 1, e->aiq },
        { "SkillOrchestra hull", hull, nh, 1, SO_PLOT_MARK_NONE, "#1f77b4", 0, 0 },
        { "zero router (single-model hull)", zh, nzh, 1, SO_PLOT_MARK_NONE, "#555555", 1,
          e->zero_aiq },
    };
    so_plot_t p = { 0 };
    p.title = title;
    p.series = series;
    p.nseries = nzh > 0 ? 3 : 2;
    p.labels = labels;
    p.nlabels = nl;
    p.xscale = SO_PLOT_XLOG;
    int rc = ns > 0 ? so_plot_svg(path, &p, err, errlen) : -1;
    if (ns == 0)
        so_err(err, errlen, "%s: no sweep point with a positive cost to plot", path);
    free(sweep);
    free(hull);
    free(zero);
    free(zh);
    free(labels);
    return rc;
}
