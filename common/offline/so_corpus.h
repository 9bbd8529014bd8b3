/*
 * so_corpus — TF-IDF vectors of the prompts skill learning works on, and
 * spherical k-means over them (so_learn's first two steps; see so_learn.h).
 * Same data and seed, same clusters.
 */
#ifndef SO_CORPUS_H
#define SO_CORPUS_H

#include "offline/so_trace.h"
#include "base/so_rng.h"

#include <stddef.h>
#include <stdint.h>

/* A sparse unit-length vector: weights w of term ids id, sorted by id. */
typedef struct {
    uint32_t *id;
    float *w;
    uint32_t n;
} so_corpus_vec_t;

/* The documents: one per sample given to so_corpus_build. */
typedef struct {
    const so_dataset_t *ds;
    size_t n;       /* documents */
    size_t *sample; /* doc → dataset sample index */
    so_corpus_vec_t *doc;
    size_t V;
    char **text; /* [V] */
    double *idf; /* [V] */
} so_corpus_t;

/* Builds the vectors of ds's samples[samples[0..n)] (the dataset is
 * borrowed and must outlive c).  so_corpus_free releases it. */
void so_corpus_build(so_corpus_t *c, const so_dataset_t *ds, const size_t *samples, size_t n);
void so_corpus_free(so_corpus_t *c);

/* The dot product of v with a dense vector of c->V weights. */
double so_corpus_dot(const so_corpus_vec_t *v, const double *dense);

/* The unit-length mean of documents docs[i] with assign[i] == k (every one
 * when assign is NULL) into out[c->V]. */
void so_corpus_centroid(const so_corpus_t *c, const size_t *docs, size_t n, const int *assign,
                        int k, double *out);

/* Spherical k-means of documents docs[0..n) with k-means++ seeding (draws
 * from rng): assign[i] in [0, K). */
void so_corpus_kmeans(const so_corpus_t *c, const size_t *docs, size_t n, int K, so_rng_t *rng,
                      int *assign);

#endif
