/*
 * so_refine — online refinement of a handbook on its own statistics (what
 * the learner service runs; see so_refine.h).
 */
#include "method/so_refine.h"
#include "method/so_stats.h"
#include "base/so_alloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void so_refine_opts_default(so_refine_opts_t *o)
{
    o->alpha = 0.05;
    o->min_attempts = 30;
    o->max_merges = 0;
}

/* Smallest per-agent p-value between skills i and j (statistics summed over
 * their groups in succ/att, [skill * A + agent]); -1 when some available
 * agent lacks the evidence. */
static double s_merge_p(const so_handbook_t *hb, const double *succ, const double *att, size_t i,
                        size_t j, double min_attempts)
{
    size_t A = hb->n_agents;
    double pmin = 1;
    for (size_t a = 0; a < A; a++) {
        if (!hb->agents[a].available)
            continue;
        double ni = att[i * A + a], nj = att[j * A + a];
        if (!(ni >= min_attempts && nj >= min_attempts))
            return -1;
        double p = so_two_prop_pvalue(succ[i * A + a], ni, succ[j * A + a], nj);
        if (!isfinite(p))
            return -1;
        if (p < pmin)
            pmin = p;
    }
    return pmin;
}

static int s_cmp_term_hash(const void *a, const void *b)
{
    const so_term_t *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return strcmp(x->text, y->text);
}

static int s_cmp_term_weight(const void *a, const void *b)
{
    const so_term_t *x = a, *y = b;
    return x->weight > y->weight ? -1 : x->weight < y->weight;
}

/* The attempt-weighted average of the members' learned terms (borrowed
 * text pointers into hb; *n receives the count). */
static so_term_t *s_merge_terms(const so_handbook_t *hb, const int *group, size_t rep,
                                const double *weight, size_t *n)
{
    size_t cap = 0, k = 0;
    double wsum = 0;
    for (size_t s = 0; s < hb->n_skills; s++)
        if (group[s] == (int) rep) {
            cap += hb->skills[s].n_terms;
            wsum += weight[s];
        }
    so_term_t *t = so_calloc(cap, sizeof *t);
    for (size_t s = 0; s < hb->n_skills; s++) {
        if (group[s] != (int) rep)
            continue;
        double w = wsum > 0 ? weight[s] / wsum : 0;
        for (size_t i = 0; i < hb->skills[s].n_terms; i++) {
            t[k] = hb->skills[s].terms[i];
            t[k++].weight *= w;
        }
    }
    qsort(t, k, sizeof *t, s_cmp_term_hash);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (m > 0 && t[m - 1].hash == t[i].hash && strcmp(t[m - 1].text, t[i].text) == 0)
            t[m - 1].weight += t[i].weight;
        else
            t[m++] = t[i];
    }
    qsort(t, m, sizeof *t, s_cmp_term_weight);
    *n = m;
    return t;
}

/* Which skills merge: fills group[s] with each skill's representative
 * (the lowest index of its group); returns the number of merges. */
static size_t s_merge_groups(const so_handbook_t *hb, const so_refine_opts_t *o, int *group)
{
    size_t S = hb->n_skills, A = hb->n_agents, n_merged = 0;
    unsigned char *leaf = so_calloc(S, 1);
    double *succ = so_calloc(S * A, sizeof *succ), *att = so_calloc(S * A, sizeof *att);
    for (size_t s = 0; s < S; s++) {
        group[s] = (int) s;
        leaf[s] = 1;
        for (size_t a = 0; a < A; a++) {
            const so_stat_t *st = so_handbook_stat(hb, a, s);
            succ[s * A + a] = st->successes;
            att[s * A + a] = st->attempts;
        }
    }
    for (size_t s = 0; s < S; s++)
        if (hb->skills[s].parent >= 0 && (size_t) hb->skills[s].parent < S)
            leaf[hb->skills[s].parent] = 0;
    while (!o->max_merges || n_merged < o->max_merges) {
        int bi = -1, bj = -1;
        double bp = -1;
        for (size_t i = 0; i < S; i++) {
            if (group[i] != (int) i || !leaf[i])
                continue;
            for (size_t j = i + 1; j < S; j++) {
                if (group[j] != (int) j || !leaf[j] || hb->skills[j].mode != hb->skills[i].mode ||
                    hb->skills[j].parent != hb->skills[i].parent)
                    continue;
                double p = s_merge_p(hb, succ, att, i, j, o->min_attempts);
                if (p > bp) {
                    bp = p;
                    bi = (int) i;
                    bj = (int) j;
                }
            }
        }
        if (bi < 0 || bp < o->alpha)
            break;
        for (size_t s = 0; s < S; s++)
            if (group[s] == bj)
                group[s] = bi;
        for (size_t a = 0; a < A; a++) {
            succ[(size_t) bi * A + a] += succ[(size_t) bj * A + a];
            att[(size_t) bi * A + a] += att[(size_t) bj * A + a];
        }
        n_merged++;
    }
    free(leaf);
    free(succ);
    free(att);
    return n_merged;
}

/* A new handbook with hb's settings, modes and agents, and no skills. */
static so_handbook_t *s_shell(const so_handbook_t *hb, const char *version, char *err,
                              size_t errlen)
{
    so_handbook_t *out = so_handbook_new(version);
    free(out->parent_version);
    out->parent_version = so_strdup(hb->version);
    out->prior_alpha = hb->prior_alpha;
    out->prior_beta = hb->prior_beta;
    out->infer_temperature = hb->infer_temperature;
    so_handbook_set_idf(out, hb->idf, hb->n_idf);
    int rc = 0;
    for (size_t m = 0; m < hb->n_modes && rc >= 0; m++)
        rc = so_handbook_add_mode(out, hb->modes[m].id, hb->modes[m].description, err, errlen);
    for (size_t a = 0; a < hb->n_agents && rc >= 0; a++) {
        const so_agent_t *ag = &hb->agents[a];
        rc = so_handbook_add_agent(out, ag->id, ag->model,
                                   ag->mode >= 0 ? hb->modes[ag->mode].id : NULL, ag->price_in,
                                   ag->price_out, ag->context_limit, err, errlen);
        if (rc >= 0)
            out->agents[rc].available = ag->available;
    }
    if (rc < 0)
        so_handbook_destroy(&out);
    return out;
}

/* Adds the merged skill whose representative is s (group members joined). */
static int s_add_merged(so_handbook_t *out, const so_handbook_t *hb, const int *group, size_t s,
                        const double *weight, char *err, size_t errlen)
{
    size_t S = hb->n_skills;
    const so_skill_t *sk = &hb->skills[s];
    char name[256];
    snprintf(name, sizeof name, "%s", sk->name);
    for (size_t j = s + 1; j < S; j++)
        if (group[j] == (int) s && strlen(name) + strlen(hb->skills[j].name) + 4 < sizeof name)
            snprintf(name + strlen(name), sizeof name - strlen(name), " + %s",
                     hb->skills[j].name);
    int ns = so_handbook_add_skill(out, sk->id, name, sk->description, hb->modes[sk->mode].id,
                                   sk->parent >= 0 ? hb->skills[sk->parent].id : NULL, err,
                                   errlen);
    if (ns < 0)
        return -1;
    so_skill_t *dst = &out->skills[ns];
    for (size_t j = s; j < S; j++) {
        if (group[j] != (int) s)
            continue;
        for (size_t i = 0; i < hb->skills[j].n_indicators; i++)
            so_skill_add_indicator(dst, hb->skills[j].indicators[i]);
        for (size_t i = 0; i < hb->skills[j].n_examples; i++)
            so_skill_add_example(dst, hb->skills[j].examples[i]);
        for (size_t a = 0; a < hb->n_agents; a++)
            so_stat_add(so_handbook_stat(out, a, (size_t) ns), so_handbook_stat(hb, a, j));
    }
    size_t nt;
    so_term_t *terms = s_merge_terms(hb, group, s, weight, &nt);
    so_skill_set_terms(dst, terms, nt);
    free(terms);
    return 0;
}

so_handbook_t *so_refine_merge(const so_handbook_t *hb, const so_refine_opts_t *o,
                               const char *version, size_t *merged, char *err, size_t errlen)
{
    size_t S = hb->n_skills;
    int *group = so_calloc(S, sizeof *group);      /* representative skill */
    double *weight = so_calloc(S, sizeof *weight); /* attempts over all agents */
    for (size_t s = 0; s < S; s++)
        for (size_t a = 0; a < hb->n_agents; a++)
            weight[s] += so_handbook_stat(hb, a, s)->attempts;
    size_t n_merged = s_merge_groups(hb, o, group);

    /* Build the new handbook through the public API, in hb's order (a
     * parent comes before its children there, and is never merged away). */
    so_handbook_t *out = s_shell(hb, version, err, errlen);
    for (size_t s = 0; s < S && out; s++)
        if (group[s] == (int) s && s_add_merged(out, hb, group, s, weight, err, errlen) < 0)
            so_handbook_destroy(&out);
    free(group);
    free(weight);
    if (out && merged)
        *merged = n_merged;
    return out;
}
