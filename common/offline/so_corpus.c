/*
 * so_corpus — the prompts that skill learning works on, as TF-IDF vectors
 * (unigrams and bigrams of so_text's tokens, terms in at least two
 * prompts), and spherical k-means over them.  Owns the vectors, the term
 * texts and their IDF; the dataset is borrowed.  Used by so_learn only.
 */
#include "offline/so_corpus.h"
#include "base/so_alloc.h"
#include "base/so_text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_DOC_TOKENS 4096

/* ------------------------------------------------------------------ */
/* Term map: 64-bit term hash → dense id (open addressing)            */

/* Not so_map: so_map's keys are strings, and these keys are the 64-bit
 * hashes the tokenizer already computed; a string key per term occurrence
 * would format and hash every term again in the hottest loop of learning.
 * A uint64 → uint32 table keeps them as they are. */

typedef struct {
    uint64_t *keys;
    uint32_t *vals;
    size_t mask, n;
} s_map_t;

static void s_map_init(s_map_t *m, size_t cap)
{
    size_t size = 64;
    while (size < cap * 2)
        size <<= 1;
    m->keys = so_calloc(size, sizeof *m->keys);
    m->vals = so_calloc(size, sizeof *m->vals);
    m->mask = size - 1;
    m->n = 0;
}

static void s_map_free(s_map_t *m)
{
    free(m->keys);
    free(m->vals);
}

static size_t s_map_slot(const s_map_t *m, uint64_t k)
{
    size_t i = (size_t) (k ^ (k >> 31)) & m->mask;
    while (m->keys[i] && m->keys[i] != k)
        i = (i + 1) & m->mask;
    return i;
}

static void s_map_grow(s_map_t *m)
{
    s_map_t n;
    s_map_init(&n, (m->mask + 1));
    for (size_t i = 0; i <= m->mask; i++)
        if (m->keys[i]) {
            size_t j = s_map_slot(&n, m->keys[i]);
            n.keys[j] = m->keys[i];
            n.vals[j] = m->vals[i];
            n.n++;
        }
    s_map_free(m);
    *m = n;
}

/* Returns the slot of k, inserting it with value v if absent (*added = 1). */
static size_t s_map_put(s_map_t *m, uint64_t k, uint32_t v, int *added)
{
    if ((m->n + 1) * 2 > m->mask + 1)
        s_map_grow(m);
    size_t i = s_map_slot(m, k);
    *added = m->keys[i] == 0;
    if (*added) {
        m->keys[i] = k;
        m->vals[i] = v;
        m->n++;
    }
    return i;
}

/* ------------------------------------------------------------------ */
/* Corpus: TF-IDF vectors of the prompts being learned from            */

typedef struct {
    uint64_t h;
    uint32_t tok_a, tok_b; /* token indices; tok_b = UINT32_MAX for unigrams */
} s_term_ref_t;

static int s_cmp_ref(const void *a, const void *b)
{
    const s_term_ref_t *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h;
}

typedef struct {
    uint32_t id;
    double w;
} s_idw_t;

static int s_cmp_idw(const void *a, const void *b)
{
    uint32_t x = ((const s_idw_t *) a)->id, y = ((const s_idw_t *) b)->id;
    return x < y ? -1 : x > y;
}

/* Distinct terms of a text with their counts, sorted by hash. */
static size_t s_doc_terms(const char *text, so_span_t *tok, s_term_ref_t *ref, uint32_t *cnt)
{
    size_t nt = so_text_tokens(text, tok, S_MAX_DOC_TOKENS), n = 0, m = 0;
    for (size_t i = 0; i < nt; i++) {
        ref[n++] = (s_term_ref_t){ so_term_hash(tok[i].s, tok[i].len), (uint32_t) i, UINT32_MAX };
        if (i > 0)
            ref[n++] = (s_term_ref_t){ so_bigram_hash(tok[i - 1], tok[i]), (uint32_t) i - 1,
                                       (uint32_t) i };
    }
    qsort(ref, n, sizeof *ref, s_cmp_ref);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && ref[j].h == ref[i].h)
            j++;
        ref[m] = ref[i];
        cnt[m++] = (uint32_t) (j - i);
        i = j;
    }
    return m;
}

void so_corpus_free(so_corpus_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->doc[i].id);
        free(c->doc[i].w);
    }
    free(c->doc);
    free(c->sample);
    for (size_t v = 0; v < c->V; v++)
        free(c->text[v]);
    free(c->text);
    free(c->idf);
    memset(c, 0, sizeof *c);
}

void so_corpus_build(so_corpus_t *c, const so_dataset_t *ds, const size_t *samples, size_t n)
{
    so_span_t *tok = so_calloc(S_MAX_DOC_TOKENS, sizeof *tok);
    s_term_ref_t *ref = so_calloc(2 * S_MAX_DOC_TOKENS, sizeof *ref);
    uint32_t *cnt = so_calloc(2 * S_MAX_DOC_TOKENS, sizeof *cnt);
    s_map_t map;
    uint32_t *df = NULL, n_terms = 0;
    char **text = NULL;
    uint32_t **doc_ids = so_calloc(n, sizeof *doc_ids), *doc_n = so_calloc(n, sizeof *doc_n);
    uint32_t **doc_cnt = so_calloc(n, sizeof *doc_cnt);
    char buf[256];

    memset(c, 0, sizeof *c);
    c->ds = ds;
    c->n = n;
    c->sample = so_calloc(n, sizeof *c->sample);
    memcpy(c->sample, samples, n * sizeof *samples);
    s_map_init(&map, 4096);

    /* Pass 1: every distinct term of every document, with document frequency. */
    for (size_t i = 0; i < n; i++) {
        const char *p = ds->samples[samples[i]].prompt;
        size_t m = s_doc_terms(p ? p : "", tok, ref, cnt);
        doc_ids[i] = so_calloc(m, sizeof(uint32_t));
        doc_cnt[i] = so_calloc(m, sizeof(uint32_t));
        doc_n[i] = (uint32_t) m;
        for (size_t k = 0; k < m; k++) {
            int added;
            size_t slot = s_map_put(&map, ref[k].h ? ref[k].h : 1, n_terms, &added);
            if (added) {
                df = so_realloc(df, (n_terms + 1) * sizeof *df);
                text = so_realloc(text, (n_terms + 1) * sizeof *text);
                df[n_terms] = 0;
                so_span_t b = { NULL, 0 };
                if (ref[k].tok_b != UINT32_MAX)
                    b = tok[ref[k].tok_b];
                so_term_text(tok[ref[k].tok_a], b, buf, sizeof buf);
                text[n_terms] = so_strdup(buf);
                n_terms++;
            }
            uint32_t t = map.vals[slot];
            df[t]++; // NOLINT(clang-analyzer-core.NullDereference): t < n_terms, df has n_terms entries
            doc_ids[i][k] = t;
            doc_cnt[i][k] = cnt[k];
        }
    }

    /* Keep terms seen in at least two documents; renumber them. */
    uint32_t *keep = so_calloc(n_terms, sizeof *keep);
    c->text = so_calloc(n_terms, sizeof *c->text);
    c->idf = so_calloc(n_terms, sizeof *c->idf);
    for (uint32_t t = 0; t < n_terms; t++) {
        if (df[t] >= 2) {
            keep[t] = (uint32_t) c->V + 1;
            c->text[c->V] = text[t];
            c->idf[c->V] = log((double) (n + 1) / (double) (df[t] + 1)) + 1.0;
            c->V++;
        } else {
            free(text[t]);
        }
    }

    /* Pass 2: TF-IDF vectors (count × idf, unit length), ids sorted. */
    c->doc = so_calloc(n, sizeof *c->doc);
    s_idw_t *pairs = so_calloc(2 * S_MAX_DOC_TOKENS, sizeof *pairs);
    for (size_t i = 0; i < n; i++) {
        so_corpus_vec_t *v = &c->doc[i];
        double norm = 0;
        uint32_t m = 0;
        for (uint32_t k = 0; k < doc_n[i]; k++) {
            uint32_t t = keep[doc_ids[i][k]];
            if (t)
                pairs[m++] = (s_idw_t){ t - 1, doc_cnt[i][k] * c->idf[t - 1] };
        }
        qsort(pairs, m, sizeof *pairs, s_cmp_idw);
        v->id = so_calloc(m, sizeof *v->id);
        v->w = so_calloc(m, sizeof *v->w);
        v->n = m;
        for (uint32_t j = 0; j < m; j++) {
            v->id[j] = pairs[j].id;
            v->w[j] = (float) pairs[j].w;
            norm += pairs[j].w * pairs[j].w;
        }
        norm = norm > 0 ? sqrt(norm) : 1;
        for (uint32_t j = 0; j < v->n; j++)
            v->w[j] = (float) (v->w[j] / norm);
        free(doc_ids[i]);
        free(doc_cnt[i]);
    }
    free(pairs);
    free(doc_ids);
    free(doc_cnt);
    free(doc_n);
    free(keep);
    free(df);
    free(text);
    free(tok);
    free(ref);
    free(cnt);
    s_map_free(&map);
}

double so_corpus_dot(const so_corpus_vec_t *v, const double *dense)
{
    double d = 0;
    for (uint32_t j = 0; j < v->n; j++)
        d += v->w[j] * dense[v->id[j]];
    return d;
}

/* Unit-length mean of the documents assigned to cluster k. */
void so_corpus_centroid(const so_corpus_t *c, const size_t *docs, size_t n, const int *assign,
                        int k, double *out)
{
    double norm = 0;
    memset(out, 0, c->V * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (assign && assign[i] != k)
            continue;
        const so_corpus_vec_t *v = &c->doc[docs[i]];
        for (uint32_t j = 0; j < v->n; j++)
            out[v->id[j]] += v->w[j];
    }
    for (size_t t = 0; t < c->V; t++)
        norm += out[t] * out[t];
    if (norm > 0) {
        norm = sqrt(norm);
        for (size_t t = 0; t < c->V; t++)
            out[t] /= norm;
    }
}

/* Spherical k-means with k-means++ seeding.  assign[i] ∈ [0, K). */
void so_corpus_kmeans(const so_corpus_t *c, const size_t *docs, size_t n, int K, so_rng_t *rng,
                      int *assign)
{
    double *cent = so_calloc((size_t) K * c->V, sizeof *cent);
    double *best = so_calloc(n, sizeof *best);
    size_t first = (size_t) (so_rng_uniform(rng) * (double) n);

    if ((size_t) K > n)
        K = (int) n;
    for (size_t i = 0; i < n; i++)
        assign[i] = 0;
    if (K <= 1) {
        free(cent);
        free(best);
        return;
    }
    /* Seeding: next centre drawn with probability ∝ (1 − best cosine)². */
    const so_corpus_vec_t *v0 = &c->doc[docs[first]];
    for (uint32_t j = 0; j < v0->n; j++)
        cent[v0->id[j]] = v0->w[j];
    for (size_t i = 0; i < n; i++)
        best[i] = so_corpus_dot(&c->doc[docs[i]], cent);
    for (int k = 1; k < K; k++) {
        double tot = 0;
        for (size_t i = 0; i < n; i++)
            tot += (1 - best[i]) * (1 - best[i]);
        double u = so_rng_uniform(rng) * tot;
        size_t pick = n - 1;
        for (size_t i = 0; i < n; i++) {
            u -= (1 - best[i]) * (1 - best[i]);
            if (u <= 0) {
                pick = i;
                break;
            }
        }
        double *ck = cent + (size_t) k * c->V;
        const so_corpus_vec_t *v = &c->doc[docs[pick]];
        for (uint32_t j = 0; j < v->n; j++)
            ck[v->id[j]] = v->w[j];
        for (size_t i = 0; i < n; i++) {
            double d = so_corpus_dot(&c->doc[docs[i]], ck);
            if (d > best[i]) {
                best[i] = d;
                assign[i] = k;
            }
        }
    }
    /* Lloyd iterations on the unit sphere. */
    for (int it = 0; it < 25; it++) {
        for (int k = 0; k < K; k++)
            so_corpus_centroid(c, docs, n, assign, k, cent + (size_t) k * c->V);
        int changed = 0;
        size_t *size = so_calloc((size_t) K, sizeof *size);
        for (size_t i = 0; i < n; i++) {
            int bk = 0;
            double bd = -2;
            for (int k = 0; k < K; k++) {
                double d = so_corpus_dot(&c->doc[docs[i]], cent + (size_t) k * c->V);
                if (d > bd) {
                    bd = d;
                    bk = k;
                }
            }
            best[i] = bd;
            changed += bk != assign[i];
            assign[i] = bk;
            size[bk]++;
        }
        /* An emptied cluster takes the document farthest from its centre. */
        for (int k = 0; k < K; k++)
            if (size[k] == 0) {
                size_t far = 0;
                for (size_t i = 1; i < n; i++)
                    if (best[i] < best[far])
                        far = i;
                size[assign[far]]--;
                assign[far] = k;
                best[far] = 1;
                size[k] = 1;
                changed = 1;
            }
        free(size);
        if (!changed)
            break;
    }
    free(cent);
    free(best);
}
