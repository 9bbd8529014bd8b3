/*
 * so_learn — skill discovery and profiling from recorded outcomes
 * (see so_learn.h for the method).
 */
#include "offline/so_learn.h"
#include "offline/so_corpus.h"
#include "offline/so_eval.h"
#include "method/so_infer.h"
#include "method/so_stats.h"
#include "base/so_alloc.h"
#include "base/so_rng.h"
#include "base/so_text.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void s_log(const so_learn_opts_t *o, const char *fmt, ...)
{
    va_list ap;
    if (!o->log)
        return;
    va_start(ap, fmt);
    vfprintf(o->log, fmt, ap);
    va_end(ap);
    fflush(o->log);
}

void so_learn_opts_default(so_learn_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->merge_alpha = 0.05;
    o->min_leaf = 25;
    o->max_depth = 3;
    o->val_fraction = 0.2;
    o->max_terms = 300;
}

/* ------------------------------------------------------------------ */
/* The skill tree                                                     */

typedef struct {
    size_t *docs; /* corpus document indices */
    size_t n;
    int parent;     /* node index, -1 for a top-level cluster */
    int child[2];   /* -1 when not split */
    double split_p; /* Bonferroni-corrected p of the split, 1 if none */
    int mode;       /* index into the handbook's modes */
} s_node_t;

typedef struct {
    s_node_t *v;
    size_t n;
} s_tree_t;

static int s_node_add(s_tree_t *t, size_t *docs, size_t n, int parent, int mode)
{
    t->v = so_realloc(t->v, (t->n + 1) * sizeof *t->v);
    t->v[t->n] = (s_node_t){ docs, n, parent, { -1, -1 }, 1.0, mode };
    return (int) t->n++;
}

static void s_tree_free(s_tree_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].docs);
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* Per-agent success sums of a set of documents. */
static void s_outcomes(const so_corpus_t *c, const size_t *docs, size_t n, double *succ,
                       double *att)
{
    size_t A = c->ds->n_agents;
    memset(succ, 0, A * sizeof *succ);
    memset(att, 0, A * sizeof *att);
    for (size_t i = 0; i < n; i++) {
        const so_sample_t *s = &c->ds->samples[c->sample[docs[i]]];
        for (size_t a = 0; a < A; a++)
            if (isfinite(s->score[a])) {
                succ[a] += s->score[a];
                att[a] += 1;
            }
    }
}

/* Smallest per-agent two-proportion p-value between two document sets, and
 * how many agents were compared. */
static double s_min_p(const so_corpus_t *c, const size_t *d1, size_t n1, const size_t *d2,
                      size_t n2, size_t *tests)
{
    size_t A = c->ds->n_agents;
    double *s1 = so_calloc(A, sizeof(double)), *a1 = so_calloc(A, sizeof(double));
    double *s2 = so_calloc(A, sizeof(double)), *a2 = so_calloc(A, sizeof(double));
    double pmin = 1;
    s_outcomes(c, d1, n1, s1, a1);
    s_outcomes(c, d2, n2, s2, a2);
    *tests = 0;
    for (size_t a = 0; a < A; a++) {
        if (a1[a] < 1 || a2[a] < 1)
            continue;
        double p = so_two_prop_pvalue(s1[a], a1[a], s2[a], a2[a]);
        (*tests)++;
        if (isfinite(p) && p < pmin)
            pmin = p;
    }
    free(s1);
    free(a1);
    free(s2);
    free(a2);
    return pmin;
}

/* Bisects node ni; keeps the split when some agent differs between the
 * halves (corrected p < alpha_max), then recurses into the halves. */
static void s_split(s_tree_t *t, const so_corpus_t *c, int ni, int depth,
                    const so_learn_opts_t *o, double alpha_max, so_rng_t *rng)
{
    s_node_t *nd = &t->v[ni];
    size_t n = nd->n, min_leaf = (size_t) o->min_leaf;
    if (depth >= o->max_depth || n < 2 * min_leaf)
        return;
    int *assign = so_calloc(n, sizeof *assign);
    so_corpus_kmeans(c, nd->docs, n, 2, rng, assign);
    size_t n0 = 0;
    for (size_t i = 0; i < n; i++)
        n0 += assign[i] == 0;
    size_t n1 = n - n0;
    if (n0 < min_leaf || n1 < min_leaf) {
        free(assign);
        return;
    }
    size_t *d0 = so_calloc(n0, sizeof *d0), *d1 = so_calloc(n1, sizeof *d1), i0 = 0, i1 = 0;
    for (size_t i = 0; i < n; i++) {
        if (assign[i] == 0)
            d0[i0++] = nd->docs[i];
        else
            d1[i1++] = nd->docs[i];
    }
    free(assign);
    size_t tests;
    double p = s_min_p(c, d0, n0, d1, n1, &tests) * (double) (tests ? tests : 1);
    if (p > 1)
        p = 1;
    if (p >= alpha_max) {
        free(d0);
        free(d1);
        return;
    }
    int mode = nd->mode;
    int a = s_node_add(t, d0, n0, ni, mode);
    int b = s_node_add(t, d1, n1, ni, mode);
    t->v[ni].child[0] = a; /* t->v may have moved */
    t->v[ni].child[1] = b;
    t->v[ni].split_p = p;
    s_split(t, c, a, depth + 1, o, alpha_max, rng);
    s_split(t, c, b, depth + 1, o, alpha_max, rng);
}

/* Merges top-level clusters where no agent's success rate differs
 * (every per-agent p >= merge_alpha), most similar pair first. */
static size_t s_merge_top(s_tree_t *t, const so_corpus_t *c, const so_learn_opts_t *o)
{
    size_t merged = 0;
    for (;;) {
        int bi = -1, bj = -1;
        double bp = -1;
        for (size_t i = 0; i < t->n; i++) {
            if (t->v[i].n == 0)
                continue;
            for (size_t j = i + 1; j < t->n; j++) {
                if (t->v[j].n == 0 || t->v[j].mode != t->v[i].mode)
                    continue;
                size_t tests;
                double p = s_min_p(c, t->v[i].docs, t->v[i].n, t->v[j].docs, t->v[j].n, &tests);
                if (p > bp) {
                    bp = p;
                    bi = (int) i;
                    bj = (int) j;
                }
            }
        }
        if (bi < 0 || bp < o->merge_alpha)
            return merged;
        s_node_t *a = &t->v[bi], *b = &t->v[bj];
        a->docs = so_realloc(a->docs, (a->n + b->n) * sizeof *a->docs);
        memcpy(a->docs + a->n, b->docs, b->n * sizeof *b->docs);
        a->n += b->n;
        free(b->docs);
        b->docs = NULL;
        b->n = 0;
        merged++;
    }
}

/* Builds the tree: per mode, k-means top level, merge, then splits. */
static void s_tree_build(s_tree_t *t, const so_corpus_t *c, const so_handbook_t *hb, int k,
                         const so_learn_opts_t *o, double alpha_max)
{
    so_rng_t rng;
    so_rng_seed(&rng, so_rng_mix(o->seed, (uint64_t) k));
    memset(t, 0, sizeof *t);
    for (size_t m = 0; m < hb->n_modes; m++) {
        size_t *docs = so_calloc(c->n, sizeof *docs), n = 0;
        for (size_t i = 0; i < c->n; i++) {
            const so_sample_t *s = &c->ds->samples[c->sample[i]];
            const char *mode = s->mode && *s->mode ? s->mode : "default";
            if (strcmp(mode, hb->modes[m].id) == 0)
                docs[n++] = i;
        }
        if (n == 0) {
            free(docs);
            continue;
        }
        int km = (int) lround((double) k * (double) n / (double) c->n);
        if (km < 1)
            km = 1;
        if ((size_t) km * (size_t) o->min_leaf > n)
            km = (int) (n / (size_t) o->min_leaf) > 0 ? (int) (n / (size_t) o->min_leaf) : 1;
        int *assign = so_calloc(n, sizeof *assign);
        so_corpus_kmeans(c, docs, n, km, &rng, assign);
        for (int j = 0; j < km; j++) {
            size_t cnt = 0;
            for (size_t i = 0; i < n; i++)
                cnt += assign[i] == j;
            if (cnt == 0)
                continue;
            size_t *d = so_calloc(cnt, sizeof *d), q = 0;
            for (size_t i = 0; i < n; i++)
                if (assign[i] == j)
                    d[q++] = docs[i];
            s_node_add(t, d, cnt, -1, (int) m);
        }
        free(assign);
        free(docs);
    }
    size_t tops = t->n, merged = s_merge_top(t, c, o), splits = 0;
    for (size_t i = 0; i < tops; i++)
        if (t->v[i].n > 0)
            s_split(t, c, (int) i, 0, o, alpha_max, &rng);
    for (size_t i = 0; i < t->n; i++)
        splits += t->v[i].child[0] >= 0;
    s_log(o,
          "  k=%d: %zu top-level clusters, %zu merged as indistinguishable, %zu splits kept"
          " at p < %g\n",
          k, tops, merged, splits, alpha_max);
}

/* ------------------------------------------------------------------ */
/* From a (pruned) tree to a handbook                                 */

typedef struct {
    size_t t;
    double w;
} s_tw_t;

static int s_cmp_tw(const void *a, const void *b)
{
    const s_tw_t *x = a, *y = b;
    if (x->w != y->w)
        return x->w > y->w ? -1 : 1;
    return x->t < y->t ? -1 : x->t > y->t;
}

static int s_expanded(const s_tree_t *t, int ni, double alpha)
{
    return t->v[ni].child[0] >= 0 && t->v[ni].split_p < alpha;
}

/* A readable id fragment from a term: letters, digits, '-' for spaces. */
static void s_slug(const char *term, char *out, size_t len)
{
    size_t n = 0;
    if (strcmp(term, "_") == 0)
        term = "blank";
    for (const char *p = term; *p && n + 1 < len; p++) {
        unsigned char ch = (unsigned char) *p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
            out[n++] = (char) ch;
        else if (ch == ' ')
            out[n++] = '-';
    }
    out[n] = '\0';
}

typedef struct {
    const so_corpus_t *c;
    const s_tree_t *t;
    const so_learn_opts_t *o;
    double alpha;
    so_handbook_t *hb;
    double *cent, *pcent; /* scratch [V] */
    int *skill_of_node;
    int *leaf_of_doc; /* [corpus docs] leaf skill */
} s_emit_t;

static void s_emit(s_emit_t *e, int ni, int parent_skill);

static void s_emit_skill(s_emit_t *e, int ni, int parent_skill, int leaf)
{
    const so_corpus_t *c = e->c;
    const s_node_t *nd = &e->t->v[ni];
    so_handbook_t *hb = e->hb;
    size_t V = c->V, A = c->ds->n_agents;
    char id[160], name[200], desc[400], slug[3][48], err[256];

    so_corpus_centroid(c, nd->docs, nd->n, NULL, 0, e->cent);
    /* Distinctive terms: centroid weight above the parent's (or the mode's). */
    if (nd->parent >= 0) {
        const s_node_t *pn = &e->t->v[nd->parent];
        so_corpus_centroid(c, pn->docs, pn->n, NULL, 0, e->pcent);
    } else {
        memset(e->pcent, 0, V * sizeof *e->pcent);
    }
    /* Only terms the skill's prompts use are candidates: sort those. */
    s_tw_t *tw = so_calloc(V, sizeof *tw);
    size_t nz = 0;
    for (size_t t = 0; t < V; t++)
        if (e->cent[t] > 0)
            tw[nz++] = (s_tw_t){ t, e->cent[t] - 0.5 * e->pcent[t] };
    qsort(tw, nz, sizeof *tw, s_cmp_tw);
    V = nz;
    for (int i = 0; i < 3; i++)
        s_slug(V > (size_t) i ? c->text[tw[i].t] : "x", slug[i], sizeof slug[i]);
    snprintf(id, sizeof id, "%s.%s.%s", hb->modes[nd->mode].id, slug[0], slug[1]);
    for (int k = 2; so_handbook_skill_index(hb, id) >= 0; k++)
        snprintf(id, sizeof id, "%s.%s.%s.%d", hb->modes[nd->mode].id, slug[0], slug[1], k);
    snprintf(name, sizeof name, "%s / %s / %s", V > 0 ? c->text[tw[0].t] : "",
             V > 1 ? c->text[tw[1].t] : "", V > 2 ? c->text[tw[2].t] : "");

    /* Description: size and the agents that differ most on it. */
    double *succ = so_calloc(A, sizeof(double)), *att = so_calloc(A, sizeof(double));
    s_outcomes(c, nd->docs, nd->n, succ, att);
    int hi = -1, lo = -1;
    for (size_t a = 0; a < A; a++) {
        if (att[a] < 1)
            continue;
        if (hi < 0 || succ[a] / att[a] > succ[hi] / att[hi])
            hi = (int) a;
        if (lo < 0 || succ[a] / att[a] < succ[lo] / att[lo])
            lo = (int) a;
    }
    if (hi >= 0)
        snprintf(desc, sizeof desc, "%zu training prompts; best %s (%.2f), weakest %s (%.2f)%s",
                 nd->n, c->ds->agents[hi], succ[hi] / att[hi], c->ds->agents[lo],
                 succ[lo] / att[lo], leaf ? "" : "; category of the skills below");
    else
        snprintf(desc, sizeof desc, "%zu training prompts", nd->n);
    free(succ);
    free(att);

    int si = so_handbook_add_skill(hb, id, name, desc, hb->modes[nd->mode].id,
                                   parent_skill >= 0 ? hb->skills[parent_skill].id : NULL, err,
                                   sizeof err);
    e->skill_of_node[ni] = si;
    if (leaf)
        for (size_t i = 0; i < nd->n; i++)
            e->leaf_of_doc[nd->docs[i]] = si;
    so_skill_t *sk = &hb->skills[si];
    for (size_t i = 0; i < 5 && i < V; i++)
        so_skill_add_indicator(sk, c->text[tw[i].t]);
    free(tw);

    /* Leaves carry the centroid for inference; parents exist for back-off. */
    if (leaf) {
        size_t keep = 0, max = (size_t) e->o->max_terms;
        s_tw_t *top = so_calloc(c->V, sizeof *top);
        for (size_t t = 0; t < c->V; t++)
            if (e->cent[t] > 0)
                top[keep++] = (s_tw_t){ t, e->cent[t] };
        qsort(top, keep, sizeof *top, s_cmp_tw);
        if (keep > max)
            keep = max;
        double norm = 0;
        for (size_t i = 0; i < keep; i++)
            norm += top[i].w * top[i].w;
        norm = norm > 0 ? sqrt(norm) : 1;
        so_term_t *terms = so_calloc(keep, sizeof *terms);
        for (size_t i = 0; i < keep; i++)
            terms[i] = (so_term_t){ 0, c->text[top[i].t], top[i].w / norm };
        so_skill_set_terms(sk, terms, keep);
        free(terms);
        free(top);
        /* Examples: the two prompts nearest the centroid. */
        size_t b1 = SIZE_MAX, b2 = SIZE_MAX;
        double d1 = -2, d2 = -2;
        for (size_t i = 0; i < nd->n; i++) {
            double d = so_corpus_dot(&c->doc[nd->docs[i]], e->cent);
            if (d > d1) {
                b2 = b1;
                d2 = d1;
                b1 = i;
                d1 = d;
            } else if (d > d2) {
                b2 = i;
                d2 = d;
            }
        }
        for (size_t k = 0; k < 2; k++) {
            size_t bi = k == 0 ? b1 : b2;
            if (bi == SIZE_MAX)
                continue;
            const char *p = c->ds->samples[c->sample[nd->docs[bi]]].prompt;
            char ex[301];
            snprintf(ex, sizeof ex, "%s", p ? p : "");
            so_skill_add_example(sk, ex);
        }
    }
}

static void s_emit(s_emit_t *e, int ni, int parent_skill)
{
    int leaf = !s_expanded(e->t, ni, e->alpha);
    s_emit_skill(e, ni, parent_skill, leaf);
    if (!leaf) {
        int me = e->skill_of_node[ni];
        s_emit(e, e->t->v[ni].child[0], me);
        s_emit(e, e->t->v[ni].child[1], me);
    }
}

static so_handbook_t *s_handbook_new(const so_dataset_t *ds, const so_learn_opts_t *o)
{
    char version[64], err[256];
    if (o->version)
        snprintf(version, sizeof version, "%s", o->version);
    else
        snprintf(version, sizeof version, "learned-%llu", (unsigned long long) o->seed);
    so_handbook_t *hb = so_handbook_new(version);
    for (size_t i = 0; i < ds->n_samples; i++) {
        const char *m = ds->samples[i].mode && *ds->samples[i].mode ? ds->samples[i].mode
                                                                    : "default";
        if (so_handbook_mode_index(hb, m) < 0)
            so_handbook_add_mode(hb, m, "", err, sizeof err);
    }
    if (hb->n_modes == 0)
        so_handbook_add_mode(hb, "default", "", err, sizeof err);
    for (size_t a = 0; a < ds->n_agents; a++)
        so_handbook_add_agent(hb, ds->agents[a], ds->agents[a], NULL, 0, 0, 0, err, sizeof err);
    return hb;
}

/* The handbook of a tree pruned at alpha, profiled on the corpus. */
static so_handbook_t *s_handbook_from_tree(const s_tree_t *t, const so_corpus_t *c, double alpha,
                                           double temperature, const so_learn_opts_t *o)
{
    so_handbook_t *hb = s_handbook_new(c->ds, o);
    s_emit_t e = { c,
                   t,
                   o,
                   alpha,
                   hb,
                   so_calloc(c->V, sizeof(double)),
                   so_calloc(c->V, sizeof(double)),
                   so_calloc(t->n, sizeof(int)),
                   so_calloc(c->n, sizeof(int)) };
    for (size_t i = 0; i < t->n; i++)
        e.skill_of_node[i] = -1;
    for (size_t i = 0; i < c->n; i++)
        e.leaf_of_doc[i] = -1;
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].parent < 0 && t->v[i].n > 0)
            s_emit(&e, (int) i, -1);
    hb->infer_temperature = temperature;
    so_term_t *idf = so_calloc(c->V, sizeof *idf);
    for (size_t v = 0; v < c->V; v++)
        idf[v] = (so_term_t){ 0, c->text[v], c->idf[v] };
    so_handbook_set_idf(hb, idf, c->V);
    free(idf);

    /* Competence and cost: each training prompt counts for its leaf. */
    for (size_t i = 0; i < c->n; i++) {
        int sk = e.leaf_of_doc[i];
        const so_sample_t *sm = &c->ds->samples[c->sample[i]];
        if (sk < 0)
            continue;
        for (size_t a = 0; a < c->ds->n_agents; a++)
            if (isfinite(sm->score[a]))
                so_handbook_observe(hb, a, (size_t) sk, 1.0, sm->score[a], sm->cost[a],
                                    sm->prompt_tokens[a], sm->completion_tokens[a],
                                    sm->latency[a]);
    }
    free(e.cent);
    free(e.pcent);
    free(e.skill_of_node);
    free(e.leaf_of_doc);
    return hb;
}

/* ------------------------------------------------------------------ */

void so_learn_profile(so_handbook_t *hb, const so_dataset_t *ds)
{
    char err[256];
    double *dem = so_calloc(hb->n_skills, sizeof *dem);
    int *map = so_calloc(ds->n_agents, sizeof *map);
    for (size_t a = 0; a < ds->n_agents; a++) {
        map[a] = so_handbook_agent_index(hb, ds->agents[a]);
        if (map[a] < 0)
            map[a] = so_handbook_add_agent(hb, ds->agents[a], ds->agents[a], NULL, 0, 0, 0, err,
                                           sizeof err);
    }
    so_infer_t *inf = so_infer_new(hb);
    for (size_t i = 0; i < ds->n_samples; i++) {
        const so_sample_t *s = &ds->samples[i];
        int mode = so_handbook_mode_index(hb, s->mode && *s->mode ? s->mode : "default");
        so_infer(inf, s->prompt, mode, dem);
        for (size_t a = 0; a < ds->n_agents; a++) {
            if (!isfinite(s->score[a]) || map[a] < 0)
                continue;
            for (size_t k = 0; k < hb->n_skills; k++)
                if (dem[k] > 0)
                    so_handbook_observe(hb, (size_t) map[a], k, dem[k], s->score[a], s->cost[a],
                                        s->prompt_tokens[a], s->completion_tokens[a],
                                        s->latency[a]);
        }
    }
    so_infer_destroy(&inf);
    free(map);
    free(dem);
}

/* A dataset view over some samples (shallow: strings are borrowed). */
static void s_view(so_dataset_t *v, const so_dataset_t *ds, const size_t *idx, size_t n)
{
    *v = *ds;
    v->samples = so_calloc(n, sizeof *v->samples);
    for (size_t i = 0; i < n; i++)
        v->samples[i] = ds->samples[idx[i]];
    v->n_samples = n;
}

static size_t s_count_leaves(const so_handbook_t *hb)
{
    size_t n = 0;
    for (size_t s = 0; s < hb->n_skills; s++)
        n += hb->skills[s].n_terms > 0;
    return n;
}

so_handbook_t *so_learn(const so_dataset_t *train, const so_learn_opts_t *opts, char *err,
                        size_t errlen)
{
    static const int k_grid[] = { 3, 6, 12, 24 };
    static const double a_grid[] = { 0.001, 0.01, 0.05, 0.2 };
    static const double t_grid[] = { 0.02, 0.05, 0.1 };
    so_learn_opts_t o = *opts;
    size_t N = train->n_samples;

    if (N == 0 || train->n_agents == 0) {
        snprintf(err, errlen, "no training samples with recorded outcomes");
        return NULL;
    }
    if (o.min_leaf < 1)
        o.min_leaf = 1;

    /* Validation slice: whole queries, chosen by a seeded hash of their id. */
    size_t *all = so_calloc(N, sizeof *all), *fit = so_calloc(N, sizeof *fit);
    size_t *val = so_calloc(N, sizeof *val), nf = 0, nv = 0;
    for (size_t i = 0; i < N; i++) {
        const char *q = train->samples[i].query_id ? train->samples[i].query_id : "";
        uint64_t h = so_rng_mix(o.seed, so_term_hash(q, strlen(q)));
        all[i] = i;
        if ((double) (h % 10000) < o.val_fraction * 10000)
            val[nv++] = i;
        else
            fit[nf++] = i;
    }

    int best_k = o.k > 0 ? o.k : k_grid[0];
    double best_a = o.split_alpha > 0 ? o.split_alpha : a_grid[0];
    double best_t = o.temperature > 0 ? o.temperature : t_grid[0];
    int need_select = o.k <= 0 || o.split_alpha <= 0 || o.temperature <= 0;
    if (need_select && (nv < 20 || nf < 2 * (size_t) o.min_leaf)) {
        s_log(&o, "learn: too few samples to hold out a validation slice (%zu); using defaults\n",
              N);
        need_select = 0;
        best_k = o.k > 0 ? o.k : 6;
        best_a = o.split_alpha > 0 ? o.split_alpha : 0.01;
        best_t = o.temperature > 0 ? o.temperature : 0.05;
    }

    if (need_select) {
        so_corpus_t c;
        so_dataset_t vds;
        double lams[24];
        size_t nl = 0, nk = o.k > 0 ? 1 : sizeof k_grid / sizeof *k_grid;
        size_t na = o.split_alpha > 0 ? 1 : sizeof a_grid / sizeof *a_grid;
        size_t nt = o.temperature > 0 ? 1 : sizeof t_grid / sizeof *t_grid;
        double best_aiq = -1;
        size_t best_leaves = 0;
        lams[nl++] = 0;
        for (int i = 0; i < 20; i++)
            lams[nl++] = 1e-3 * pow(10.0, 4.0 * i / 19.0);
        so_handbook_t *shape = s_handbook_new(train, &o);
        so_corpus_build(&c, train, fit, nf);
        s_view(&vds, train, val, nv);
        s_log(
            &o,
            "learn: choosing granularity on a validation slice: %zu fit, %zu validation queries\n",
            nf, nv);
        for (size_t ki = 0; ki < nk; ki++) {
            int k = o.k > 0 ? o.k : k_grid[ki];
            double amax = o.split_alpha > 0 ? o.split_alpha : a_grid[na - 1];
            s_tree_t t;
            s_tree_build(&t, &c, shape, k, &o, amax);
            size_t prev_splits = SIZE_MAX;
            for (size_t ai = 0; ai < na; ai++) {
                double alpha = o.split_alpha > 0 ? o.split_alpha : a_grid[ai];
                /* A looser alpha that keeps no more splits gives the same handbook. */
                size_t splits = 0;
                for (size_t i = 0; i < t.n; i++)
                    splits += s_expanded(&t, (int) i, alpha);
                if (splits == prev_splits)
                    continue;
                prev_splits = splits;
                so_handbook_t *hb = s_handbook_from_tree(&t, &c, alpha, 1, &o);
                size_t leaves = s_count_leaves(hb);
                for (size_t ti = 0; ti < nt; ti++) {
                    double temp = o.temperature > 0 ? o.temperature : t_grid[ti];
                    so_eval_opts_t eo;
                    so_eval_t ev;
                    char e2[256];
                    so_eval_opts_default(&eo);
                    eo.lambdas = lams;
                    eo.n_lambdas = nl;
                    eo.temperature = temp;
                    if (so_eval_run(hb, &vds, &eo, &ev, e2, sizeof e2) < 0)
                        continue;
                    s_log(&o,
                          "  k=%-3d split_alpha=%-6g temperature=%-5g skills=%3zu (%3zu leaves)"
                          "  validation AIQ %.4f  max acc %.3f\n",
                          k, alpha, temp, hb->n_skills, leaves, ev.aiq, ev.max_accuracy);
                    if (ev.aiq > best_aiq + 1e-9 ||
                        (fabs(ev.aiq - best_aiq) <= 1e-9 && leaves < best_leaves)) {
                        best_aiq = ev.aiq;
                        best_leaves = leaves;
                        best_k = k;
                        best_a = alpha;
                        best_t = temp;
                    }
                    so_eval_free(&ev);
                }
                so_handbook_destroy(&hb);
            }
            s_tree_free(&t);
        }
        free(vds.samples);
        so_corpus_free(&c);
        so_handbook_destroy(&shape);
        s_log(&o, "learn: chose k=%d split_alpha=%g temperature=%g (validation AIQ %.4f)\n",
              best_k, best_a, best_t, best_aiq);
    }

    /* Final handbook: all training data, the chosen granularity. */
    so_corpus_t c;
    s_tree_t t;
    so_corpus_build(&c, train, all, N);
    so_handbook_t *shape = s_handbook_new(train, &o);
    s_tree_build(&t, &c, shape, best_k, &o, best_a);
    so_handbook_destroy(&shape);
    so_handbook_t *hb = s_handbook_from_tree(&t, &c, best_a, best_t, &o);
    s_log(&o, "learn: %zu skills (%zu leaves) from %zu queries, %zu agents, %zu terms\n",
          hb->n_skills, s_count_leaves(hb), N, hb->n_agents, c.V);
    s_tree_free(&t);
    so_corpus_free(&c);
    free(all);
    free(fit);
    free(val);
    return hb;
}
