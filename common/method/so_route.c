/*
 * so_route — the routing rule and its back-off tables (see so_route.h).
 */
#include "method/so_route.h"
#include "base/so_alloc.h"
#include "base/so_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct so_route_tables {
    const so_handbook_t *hb;
    so_route_opts_t opts;
    size_t n_agents, n_skills, n_modes;
    double *alpha, *beta; /* [agent * n_skills + skill], back-off applied */
    int *level;
    double *cost;             /* mean USD, NAN unknown */
    double *m_alpha, *m_beta; /* [agent * n_modes + mode] */
    double *m_cost;
    int *m_level;
    double *mean_tokens; /* [agent * 2]: mean prompt, completion tokens */
};

typedef struct {
    double succ, att, cost, count;
} s_agg_t;

void so_route_opts_default(so_route_opts_t *o)
{
    o->min_obs = 10;
    o->cost_norm = SO_COST_LINEAR;
}

static void s_free_tables(so_route_tables_t *r)
{
    free(r->alpha);
    free(r->beta);
    free(r->level);
    free(r->cost);
    free(r->m_alpha);
    free(r->m_beta);
    free(r->m_cost);
    free(r->m_level);
    free(r->mean_tokens);
}

/* Posterior pseudo-counts for an aggregate: with enough data the plain
 * Beta(α0 + s, β0 + f); otherwise a prior of the same strength centred on
 * the estimate one level up (p_up), so few observations move it little. */
static void s_estimate(const so_route_tables_t *r, const s_agg_t *g, double p_up, int level_up,
                       double *a, double *b, int *level)
{
    const so_handbook_t *hb = r->hb;
    double fail = g->att - g->succ;
    if (g->att >= r->opts.min_obs) {
        *a = hb->prior_alpha + g->succ;
        *b = hb->prior_beta + fail;
        *level = 0;
    } else {
        double k = hb->prior_alpha + hb->prior_beta;
        *a = k * p_up + g->succ;
        *b = k * (1 - p_up) + fail;
        *level = level_up + 1;
    }
}

void so_route_tables_refresh(so_route_tables_t *r, const so_handbook_t *hb)
{
    size_t A = hb->n_agents, S = hb->n_skills, M = hb->n_modes;
    s_free_tables(r);
    r->hb = hb;
    r->n_agents = A;
    r->n_skills = S;
    r->n_modes = M;
    r->alpha = so_calloc(A * S, sizeof(double));
    r->beta = so_calloc(A * S, sizeof(double));
    r->level = so_calloc(A * S, sizeof(int));
    r->cost = so_calloc(A * S, sizeof(double));
    r->m_alpha = so_calloc(A * M, sizeof(double));
    r->m_beta = so_calloc(A * M, sizeof(double));
    r->m_cost = so_calloc(A * M, sizeof(double));
    r->m_level = so_calloc(A * M, sizeof(int));
    r->mean_tokens = so_calloc(A * 2, sizeof(double));

    s_agg_t *sub = so_calloc(S, sizeof *sub), *mode = so_calloc(M, sizeof *mode);
    double p0 = hb->prior_alpha / (hb->prior_alpha + hb->prior_beta);
    for (size_t a = 0; a < A; a++) {
        double pt = 0, ct = 0, n = 0;
        memset(sub, 0, S * sizeof *sub);
        memset(mode, 0, M * sizeof *mode);
        /* Subtree sums: each skill's stats count for itself and every ancestor. */
        for (size_t s = 0; s < S; s++) {
            const so_stat_t *st = so_handbook_stat(hb, a, s);
            for (int u = (int) s; u >= 0; u = hb->skills[u].parent) {
                sub[u].succ += st->successes;
                sub[u].att += st->attempts;
                sub[u].cost += st->cost_usd;
                sub[u].count += st->cost_count;
            }
            s_agg_t *m = &mode[hb->skills[s].mode];
            m->succ += st->successes;
            m->att += st->attempts;
            m->cost += st->cost_usd;
            m->count += st->cost_count;
            pt += st->prompt_tokens;
            ct += st->completion_tokens;
            n += st->cost_count;
        }
        r->mean_tokens[a * 2] = n > 0 ? pt / n : 0;
        r->mean_tokens[a * 2 + 1] = n > 0 ? ct / n : 0;
        for (size_t m = 0; m < M; m++) {
            size_t i = a * M + m;
            s_estimate(r, &mode[m], p0, 0, &r->m_alpha[i], &r->m_beta[i], &r->m_level[i]);
            r->m_cost[i] = mode[m].count > 0 ? mode[m].cost / mode[m].count : NAN;
        }
        /* Parents precede children in index order (a parent must exist
         * when its child is added), so one pass sees every parent done. */
        for (size_t s = 0; s < S; s++) {
            const so_skill_t *sk = &hb->skills[s];
            size_t i = a * S + s, up;
            double p_up, c_up;
            int l_up;
            if (sk->parent >= 0) {
                up = a * S + (size_t) sk->parent;
                p_up = r->alpha[up] / (r->alpha[up] + r->beta[up]);
                l_up = r->level[up];
                c_up = r->cost[up];
            } else {
                up = a * M + (size_t) sk->mode;
                p_up = r->m_alpha[up] / (r->m_alpha[up] + r->m_beta[up]);
                l_up = r->m_level[up];
                c_up = r->m_cost[up];
            }
            s_estimate(r, &sub[s], p_up, l_up, &r->alpha[i], &r->beta[i], &r->level[i]);
            r->cost[i] = sub[s].count > 0 ? sub[s].cost / sub[s].count : c_up;
        }
    }
    free(sub);
    free(mode);
}

so_route_tables_t *so_route_tables_new(const so_handbook_t *hb, const so_route_opts_t *opts)
{
    so_route_tables_t *r = so_calloc(1, sizeof *r);
    if (opts)
        r->opts = *opts;
    else
        so_route_opts_default(&r->opts);
    if (!(r->opts.min_obs >= 0))
        r->opts.min_obs = 0;
    so_route_tables_refresh(r, hb);
    return r;
}

void so_route_tables_destroy(so_route_tables_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_free_tables(*self_p);
    free(*self_p);
    *self_p = NULL;
}

const so_handbook_t *so_route_tables_handbook(const so_route_tables_t *r)
{
    return r->hb;
}

void so_route_posterior(const so_route_tables_t *r, size_t agent, size_t skill, double *alpha,
                        double *beta, int *level)
{
    size_t i = agent * r->n_skills + skill;
    *alpha = r->alpha[i];
    *beta = r->beta[i];
    if (level)
        *level = r->level[i];
}

double so_route_skill_cost(const so_route_tables_t *r, size_t agent, size_t skill)
{
    return r->cost[agent * r->n_skills + skill];
}

void so_route_req_default(so_route_req_t *q)
{
    memset(q, 0, sizeof *q);
    q->mode = -1;
}

void so_decision_init(so_decision_t *d)
{
    memset(d, 0, sizeof *d);
    d->chosen = -1;
    d->runner_up = -1;
}

void so_decision_free(so_decision_t *d)
{
    free(d->scores);
    so_decision_init(d);
}

const char *so_strategy_name(so_strategy_t s)
{
    switch (s) {
    case SO_STRATEGY_GREEDY: return "greedy";
    case SO_STRATEGY_THOMPSON: return "thompson";
    case SO_STRATEGY_EXPLORE_UNIFORM: return "explore-uniform";
    case SO_STRATEGY_BUDGET_FALLBACK: return "budget-fallback";
    }
    return "unknown";
}

/* Indices of the k largest weights, largest first (ties: lower index). */
static size_t s_top_k(const double *w, const int *idx, size_t n, int *out, size_t k)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int s = idx[i];
        size_t j;
        if (m < k)
            j = m++;
        else if (w[s] > w[out[k - 1]])
            j = k - 1;
        else
            continue;
        while (j > 0 && w[s] > w[out[j - 1]]) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = s;
    }
    return m;
}

/* Price-based cost when nothing has been observed for the agent. */
static double s_price_cost(const so_route_tables_t *r, size_t a, const so_route_req_t *q)
{
    const so_agent_t *ag = &r->hb->agents[a];
    double pt = q->est_prompt_tokens > 0 ? q->est_prompt_tokens : r->mean_tokens[a * 2];
    double ct = q->est_completion_tokens > 0 ? q->est_completion_tokens
                                             : r->mean_tokens[a * 2 + 1];
    double c = (ag->price_in * pt + ag->price_out * ct) / 1e6;
    return c > 0 ? c : NAN;
}

static const char *s_ineligible(const so_route_tables_t *r, size_t a, const so_route_req_t *q)
{
    const so_agent_t *ag = &r->hb->agents[a];
    if (q->exclude && q->exclude[a])
        return "excluded by request";
    if (!ag->available)
        return "unavailable";
    if (q->mode >= 0 && ag->mode >= 0 && ag->mode != q->mode)
        return "serves another mode";
    if (ag->context_limit > 0 &&
        q->est_prompt_tokens + q->est_completion_tokens > (double) ag->context_limit)
        return "context limit";
    return NULL;
}

static void s_explain(const so_route_tables_t *r, so_decision_t *d)
{
    const so_handbook_t *hb = r->hb;
    const so_agent_score_t *w = &d->scores[d->chosen];
    int n = 0, len = (int) sizeof d->reason;
    n += snprintf(d->reason + n, (size_t) (len - n), "%s (%s, lambda=%.3g): competence %.3f",
                  hb->agents[d->chosen].id, so_strategy_name(d->strategy), d->lambda,
                  w->competence);
    for (size_t i = 0; i < w->n_top && i < 3 && n < len; i++)
        n += snprintf(d->reason + n, (size_t) (len - n), "%s%s %.2f@w%.2f", i ? ", " : " on ",
                      hb->skills[w->top[i].skill].id, w->top[i].competence, w->top[i].weight);
    if (n < len)
        n += snprintf(d->reason + n, (size_t) (len - n), "; cost $%.6f (norm %.2f); score %.4f",
                      w->cost, w->cost_norm, w->score);
    if (d->runner_up >= 0 && n < len)
        snprintf(d->reason + n, (size_t) (len - n), " vs %s %.4f", hb->agents[d->runner_up].id,
                 d->scores[d->runner_up].score);
}

int so_route(const so_route_tables_t *r, const double *demand, const so_route_req_t *q,
             so_decision_t *d)
{
    const so_handbook_t *hb = r->hb;
    size_t A = r->n_agents, S = r->n_skills;
    int idx_stack[256], *idx = idx_stack;
    double w_stack[256], *wn = w_stack;
    size_t nz = 0;
    double wsum = 0;
    so_rng_t rng;

    so_rng_seed(&rng, q->seed);
    if (d->cap < A) {
        free(d->scores);
        d->scores = so_calloc(A, sizeof *d->scores);
        d->cap = A;
    }
    d->n_agents = A;
    d->chosen = d->runner_up = -1;
    d->strategy = q->thompson ? SO_STRATEGY_THOMPSON : SO_STRATEGY_GREEDY;
    d->lambda = q->lambda;
    d->n_top = 0;
    d->reason[0] = '\0';
    if (A == 0) {
        snprintf(d->reason, sizeof d->reason, "no agents in handbook %s", hb->version);
        return -1;
    }
    if (q->mode >= (int) r->n_modes) {
        snprintf(d->reason, sizeof d->reason, "mode index %d outside handbook %s (%zu modes)",
                 q->mode, hb->version, r->n_modes);
        return -1;
    }

    /* Skills with weight; none → uniform over the request's mode. */
    if (S > 256) {
        idx = so_calloc(S, sizeof *idx);
        wn = so_calloc(S, sizeof *wn);
    }
    for (size_t s = 0; s < S; s++) {
        double w = demand ? demand[s] : 0;
        wn[s] = 0;
        if (w > 0 && isfinite(w)) {
            idx[nz++] = (int) s;
            wn[s] = w;
            wsum += w;
        }
    }
    if (nz == 0) {
        for (size_t s = 0; s < S; s++)
            if (q->mode < 0 || hb->skills[s].mode == q->mode) {
                idx[nz++] = (int) s;
                wn[s] = 1;
                wsum += 1;
            }
    }
    for (size_t i = 0; i < nz; i++)
        wn[idx[i]] /= wsum;
    d->n_top = s_top_k(wn, idx, nz, d->top_skills, SO_ROUTE_TOP);
    for (size_t i = 0; i < d->n_top; i++)
        d->top_weights[i] = wn[d->top_skills[i]];

    /* Competence and cost of each agent under the demand. */
    size_t n_elig = 0, n_budget = 0;
    double known_cost = 0;
    size_t n_known = 0;
    for (size_t a = 0; a < A; a++) {
        so_agent_score_t *sc = &d->scores[a];
        double comp = 0, sa = 0, sb = 0, cost = 0, cw = 0;
        memset(sc, 0, sizeof *sc);
        sc->excluded = s_ineligible(r, a, q);
        if (nz == 0) {
            /* No skill in this mode: fall back to the agent's mode estimate. */
            int m = q->mode >= 0 ? q->mode : (hb->agents[a].mode >= 0 ? hb->agents[a].mode : 0);
            size_t i = a * r->n_modes + (size_t) m;
            if (r->n_modes) {
                sa = r->m_alpha[i];
                sb = r->m_beta[i];
                comp = sa / (sa + sb);
                cost = r->m_cost[i];
                cw = isfinite(cost) ? 1 : 0;
            } else {
                sa = hb->prior_alpha;
                sb = hb->prior_beta;
                comp = sa / (sa + sb);
            }
        }
        for (size_t i = 0; i < nz; i++) {
            size_t s = (size_t) idx[i], k = a * S + s;
            double w = wn[s], al = r->alpha[k], be = r->beta[k];
            comp += w * al / (al + be);
            sa += w * al;
            sb += w * be;
            if (isfinite(r->cost[k])) {
                cost += w * r->cost[k];
                cw += w;
            }
        }
        sc->competence = comp;
        sc->sampled = comp;
        sc->cost = cw > 0 ? cost / cw : s_price_cost(r, a, q);
        if (isfinite(sc->cost)) {
            known_cost += sc->cost;
            n_known++;
        }
        if (q->thompson)
            sc->sampled = so_rng_beta(&rng, sa, sb);
        for (size_t i = 0; i < d->n_top; i++) {
            size_t s = (size_t) d->top_skills[i], k = a * S + s;
            const so_stat_t *st = so_handbook_stat(hb, a, s);
            so_skill_comp_t *t = &sc->top[sc->n_top++];
            t->skill = (int) s;
            t->weight = wn[s];
            t->competence = r->alpha[k] / (r->alpha[k] + r->beta[k]);
            t->successes = st->successes;
            t->attempts = st->attempts;
            t->backoff_level = r->level[k];
        }
    }
    /* An agent with no cost information costs what the others cost on average. */
    for (size_t a = 0; a < A; a++) {
        so_agent_score_t *sc = &d->scores[a];
        if (!isfinite(sc->cost))
            sc->cost = n_known ? known_cost / (double) n_known : 0;
        if (!sc->excluded && q->budget_usd > 0 && sc->cost > q->budget_usd) {
            sc->excluded = "over budget";
            n_budget++;
        }
        sc->eligible = sc->excluded == NULL;
        n_elig += (size_t) sc->eligible;
    }
    if (idx != idx_stack) {
        free(idx);
        free(wn);
    }

    if (n_elig == 0 && n_budget > 0) {
        /* Nothing fits the budget: take the cheapest of those it excluded. */
        for (size_t a = 0; a < A; a++)
            if (d->scores[a].excluded && strcmp(d->scores[a].excluded, "over budget") == 0 &&
                (d->chosen < 0 || d->scores[a].cost < d->scores[d->chosen].cost))
                d->chosen = (int) a;
        d->strategy = SO_STRATEGY_BUDGET_FALLBACK;
        d->scores[d->chosen].score = d->scores[d->chosen].competence;
        s_explain(r, d);
        return 0;
    }
    if (n_elig == 0) {
        snprintf(d->reason, sizeof d->reason, "no candidate agent: all %zu excluded (%s: %s)", A,
                 hb->agents[0].id, d->scores[0].excluded);
        return -1;
    }

    double cmin = INFINITY, cmax = 0;
    for (size_t a = 0; a < A; a++)
        if (d->scores[a].eligible) {
            cmin = fmin(cmin, d->scores[a].cost);
            cmax = fmax(cmax, d->scores[a].cost);
        }
    for (size_t a = 0; a < A; a++) {
        so_agent_score_t *sc = &d->scores[a];
        if (!sc->eligible)
            continue;
        if (r->opts.cost_norm == SO_COST_LOG) {
            double lo = log(fmax(cmin, 1e-12)), hi = log(fmax(cmax, 1e-12));
            sc->cost_norm = hi > lo ? (log(fmax(sc->cost, 1e-12)) - lo) / (hi - lo) : 0;
        } else {
            sc->cost_norm = cmax > 0 ? sc->cost / cmax : 0;
        }
        sc->score = sc->sampled - q->lambda * sc->cost_norm;
        /* Best first; ties go to the cheaper, then the lower index. */
        if (d->chosen < 0 || sc->score > d->scores[d->chosen].score ||
            (sc->score == d->scores[d->chosen].score && sc->cost < d->scores[d->chosen].cost)) {
            d->runner_up = d->chosen;
            d->chosen = (int) a;
        } else if (d->runner_up < 0 || sc->score > d->scores[d->runner_up].score) {
            d->runner_up = (int) a;
        }
    }
    if (q->explore_floor > 0 && so_rng_uniform(&rng) < q->explore_floor) {
        size_t pick = (size_t) (so_rng_uniform(&rng) * (double) n_elig);
        for (size_t a = 0; a < A; a++)
            if (d->scores[a].eligible && pick-- == 0) {
                if ((int) a != d->chosen)
                    d->runner_up = d->chosen;
                d->chosen = (int) a;
                break;
            }
        d->strategy = SO_STRATEGY_EXPLORE_UNIFORM;
    }
    s_explain(r, d);
    return 0;
}
