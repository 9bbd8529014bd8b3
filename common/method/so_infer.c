/*
 * so_infer — embedded skill inference (see so_infer.h).
 *
 * The index is an open-addressing hash table from term hash to the term's
 * idf and its postings (skill, weight).  Query terms are sorted and grouped
 * so each distinct term is looked up once with its frequency.
 */
#include "method/so_infer.h"
#include "base/so_alloc.h"
#include "base/so_text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SO_INFER_MAX_TERMS 4096
#define SO_INFER_MIN_WEIGHT 0.01
#define SO_INDICATOR_WEIGHT 0.5

typedef struct {
    uint64_t hash; /* 0 = empty slot */
    double idf;
    unsigned start, count; /* postings range */
} s_slot_t;

typedef struct {
    int skill;
    double weight;
} s_posting_t;

struct so_infer {
    size_t n_skills;
    int *skill_mode;
    s_slot_t *slots;
    size_t mask; /* table size − 1 */
    s_posting_t *postings;
    size_t n_postings;
    double default_idf; /* for terms without idf: the largest seen, or 1 */
    double temperature;
    int have_idf;
};

/* A (term, skill, weight) triple gathered before the index is built. */
typedef struct {
    uint64_t hash;
    int skill;
    double weight;
} s_triple_t;

typedef struct {
    s_triple_t *v;
    size_t n, cap;
} s_triples_t;

static void s_push(s_triples_t *t, uint64_t hash, int skill, double weight)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->v = so_reallocarray(t->v, t->cap, sizeof *t->v);
    }
    t->v[t->n++] = (s_triple_t){ hash ? hash : 1, skill, weight };
}

static int s_cmp_triple(const void *a, const void *b)
{
    const s_triple_t *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->skill - y->skill;
}

static s_slot_t *s_find(const so_infer_t *inf, uint64_t h)
{
    size_t i = (size_t) (h ^ (h >> 29)) & inf->mask;
    for (;;) {
        s_slot_t *sl = &inf->slots[i];
        if (sl->hash == h || sl->hash == 0)
            return sl;
        i = (i + 1) & inf->mask;
    }
}

static double s_idf(const so_infer_t *inf, uint64_t h)
{
    s_slot_t *sl = s_find(inf, h);
    return sl->hash ? sl->idf : inf->default_idf;
}

/* Adds the terms of an indicator phrase: its unigram, or its bigrams. */
static void s_indicator_terms(s_triples_t *t, const char *phrase, int skill)
{
    so_span_t tok[64];
    size_t n = so_text_tokens(phrase, tok, 64);
    if (n == 1) {
        s_push(t, so_term_hash(tok[0].s, tok[0].len), skill, SO_INDICATOR_WEIGHT);
        return;
    }
    for (size_t i = 1; i < n; i++)
        s_push(t, so_bigram_hash(tok[i - 1], tok[i]), skill,
               SO_INDICATOR_WEIGHT / (double) (n - 1));
}

so_infer_t *so_infer_new(const so_handbook_t *hb)
{
    so_infer_t *inf = so_calloc(1, sizeof *inf);
    s_triples_t tr = { 0 };
    inf->n_skills = hb->n_skills;
    inf->temperature = hb->infer_temperature > 0 ? hb->infer_temperature : 0.05;
    inf->skill_mode = so_calloc(hb->n_skills + 1, sizeof(int));

    for (size_t s = 0; s < hb->n_skills; s++) {
        const so_skill_t *sk = &hb->skills[s];
        inf->skill_mode[s] = sk->mode;
        for (size_t i = 0; i < sk->n_terms; i++)
            s_push(&tr, sk->terms[i].hash, (int) s, sk->terms[i].weight);
        for (size_t i = 0; i < sk->n_indicators; i++)
            s_indicator_terms(&tr, sk->indicators[i], (int) s);
    }

    /* Size the table for every term it will hold — learned terms,
     * indicators, idf entries and the terms of examples (counted here,
     * indexed below) — at a load factor <= 0.5. */
    size_t n_example_terms = 0;
    uint64_t *h = so_malloc(SO_INFER_MAX_TERMS * sizeof *h);
    for (size_t s = 0; s < hb->n_skills; s++)
        if (!hb->skills[s].n_terms)
            for (size_t e = 0; e < hb->skills[s].n_examples; e++)
                n_example_terms += so_text_terms(hb->skills[s].examples[e], h, SO_INFER_MAX_TERMS,
                                                 1);
    size_t want = (tr.n + hb->n_idf + n_example_terms) * 2 + 16, size = 16;
    while (size < want)
        size <<= 1;
    inf->slots = so_calloc(size, sizeof *inf->slots);
    inf->mask = size - 1;
    inf->default_idf = 1;
    inf->have_idf = hb->n_idf > 0;
    for (size_t i = 0; i < hb->n_idf; i++) {
        uint64_t h = hb->idf[i].hash ? hb->idf[i].hash : 1;
        s_slot_t *sl = s_find(inf, h);
        sl->hash = h;
        sl->idf = hb->idf[i].weight;
        if (hb->idf[i].weight > inf->default_idf)
            inf->default_idf = hb->idf[i].weight;
    }

    /* Skills without learned terms: the TF-IDF mean of their examples. */
    for (size_t s = 0; s < hb->n_skills; s++) {
        const so_skill_t *sk = &hb->skills[s];
        if (sk->n_terms || sk->n_examples == 0)
            continue;
        for (size_t e = 0; e < sk->n_examples; e++) {
            size_t n = so_text_terms(sk->examples[e], h, SO_INFER_MAX_TERMS, 1);
            double norm = 0;
            for (size_t i = 0; i < n; i++) {
                double w = s_idf(inf, h[i]);
                norm += w * w;
            }
            norm = norm > 0 ? sqrt(norm) * (double) sk->n_examples : 1;
            for (size_t i = 0; i < n; i++)
                s_push(&tr, h[i], (int) s, s_idf(inf, h[i]) / norm);
        }
    }
    free(h);

    /* Group postings by term (sorted), merging duplicates per skill. */
    if (tr.n) /* qsort(NULL, 0) is undefined behaviour (no terms, no postings) */
        qsort(tr.v, tr.n, sizeof *tr.v, s_cmp_triple);
    inf->postings = so_calloc(tr.n + 1, sizeof *inf->postings);
    for (size_t i = 0; i < tr.n;) {
        uint64_t h = tr.v[i].hash;
        s_slot_t *sl = s_find(inf, h);
        if (!sl->hash) {
            sl->hash = h;
            sl->idf = inf->default_idf;
        }
        sl->start = (unsigned) inf->n_postings;
        while (i < tr.n && tr.v[i].hash == h) {
            s_posting_t *last = inf->n_postings > sl->start ? &inf->postings[inf->n_postings - 1]
                                                            : NULL;
            if (last && last->skill == tr.v[i].skill)
                last->weight += tr.v[i].weight;
            else
                inf->postings[inf->n_postings++] = (s_posting_t){ tr.v[i].skill, tr.v[i].weight };
            i++;
        }
        sl->count = (unsigned) inf->n_postings - sl->start;
    }
    free(tr.v);
    return inf;
}

void so_infer_destroy(so_infer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_infer_t *inf = *self_p;
    free(inf->skill_mode);
    free(inf->slots);
    free(inf->postings);
    free(inf);
    *self_p = NULL;
}

void so_infer_set_temperature(so_infer_t *inf, double temperature)
{
    if (temperature > 0)
        inf->temperature = temperature;
}

/* A term of the query with its frequency. */
typedef struct {
    uint64_t hash; /* 0 = empty slot */
    uint32_t tf;
} s_tf_t;

void so_infer_scores(const so_infer_t *inf, const char *text, double *scores)
{
    uint64_t h[SO_INFER_MAX_TERMS];
    s_tf_t stack_tab[1024], *tab = stack_tab;
    size_t n = so_text_terms(text, h, SO_INFER_MAX_TERMS, 1), cap = 64;
    double norm = 0;

    memset(scores, 0, inf->n_skills * sizeof *scores);
    /* Count each distinct term once (open addressing, load <= 0.5): a hash
     * table beats sorting the terms on turns of a few hundred terms.  Only
     * very long turns need the heap. */
    while (cap < 2 * n)
        cap <<= 1;
    if (cap > 1024)
        tab = so_calloc(cap, sizeof *tab);
    if (tab == stack_tab)
        memset(tab, 0, cap * sizeof *tab);
    for (size_t i = 0; i < n; i++) {
        uint64_t key = h[i] ? h[i] : 1;
        size_t j = (size_t) (key ^ (key >> 29)) & (cap - 1);
        while (tab[j].hash && tab[j].hash != key)
            j = (j + 1) & (cap - 1);
        tab[j].hash = key;
        tab[j].tf++;
    }
    for (size_t j = 0; j < cap; j++) {
        if (!tab[j].hash)
            continue;
        s_slot_t *sl = s_find(inf, tab[j].hash);
        /* With an idf table (a learned handbook) the query vector has the
         * same terms as the training vectors: those in the table.  Without
         * one (a hand-written handbook), every term counts once. */
        double q = (double) tab[j].tf;
        if (inf->have_idf)
            q = sl->hash ? q * sl->idf : 0;
        norm += q * q;
        if (sl->hash)
            for (unsigned p = 0; p < sl->count; p++) {
                const s_posting_t *po = &inf->postings[sl->start + p];
                scores[po->skill] += q * po->weight;
            }
    }
    if (tab != stack_tab)
        free(tab);
    if (norm > 0) {
        norm = sqrt(norm);
        for (size_t s = 0; s < inf->n_skills; s++)
            scores[s] /= norm;
    }
}

so_demand_source_t so_infer(const so_infer_t *inf, const char *text, int mode, double *demand)
{
    size_t S = inf->n_skills, n_in = 0;
    double best = -INFINITY, sum = 0;

    so_infer_scores(inf, text ? text : "", demand);
    for (size_t s = 0; s < S; s++) {
        if (mode >= 0 && inf->skill_mode[s] != mode) {
            demand[s] = NAN; /* marks "not in this mode" until the end */
            continue;
        }
        n_in++;
        if (demand[s] > best)
            best = demand[s];
    }
    if (n_in == 0) {
        for (size_t s = 0; s < S; s++)
            demand[s] = 0; /* no skill in this mode */
        return SO_DEMAND_UNIFORM_FALLBACK;
    }
    if (!(best > 0)) {
        for (size_t s = 0; s < S; s++)
            demand[s] = isnan(demand[s]) ? 0 : 1.0 / (double) n_in;
        return SO_DEMAND_UNIFORM_FALLBACK;
    }
    for (size_t s = 0; s < S; s++) {
        if (isnan(demand[s])) {
            demand[s] = 0;
            continue;
        }
        demand[s] = exp((demand[s] - best) / inf->temperature);
        sum += demand[s];
    }
    /* Drop the tail and renormalise: a sparse demand keeps routing cheap. */
    double kept = 0;
    for (size_t s = 0; s < S; s++) {
        demand[s] /= sum;
        if (demand[s] < SO_INFER_MIN_WEIGHT)
            demand[s] = 0;
        kept += demand[s];
    }
    for (size_t s = 0; s < S; s++)
        demand[s] /= kept;
    return SO_DEMAND_EMBEDDED;
}
