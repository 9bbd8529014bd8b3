/*
 * so_learn — learns a skill handbook from recorded outcomes, with no LLM.
 *
 * The paper asks an LLM to contrast successful and failed trajectories and
 * name the skills that separate agents.  Here the same idea runs on term
 * statistics:
 *   1. prompts become TF-IDF vectors (unigrams and bigrams, df >= 2);
 *   2. per mode, spherical k-means (k-means++ seeding, seeded RNG) finds
 *      top-level clusters;
 *   3. merge: top-level clusters on which no agent's success rate differs
 *      (two-proportion test, p >= merge_alpha for every agent) are merged;
 *   4. split: each cluster is bisected (2-means on its text) and the split
 *      is kept only where some agent's success rate differs between the
 *      halves (Bonferroni-corrected p < split_alpha) — a skill exists where
 *      agents differ; kept splits make the cluster a parent skill;
 *   5. leaves are skills: named by their most distinctive terms, with the
 *      centroid as learned term weights, nearest prompts as examples, and
 *      each agent's competence and cost profiled on the prompts they hold.
 * The granularity (k, split_alpha) and the inference temperature are chosen
 * on a validation slice of the training data by the area under the
 * accuracy-cost curve (the Pareto selection of the reference), then the
 * handbook is learned again on all training data with that choice.
 * Same data and seed, same handbook.
 */
#ifndef SO_LEARN_H
#define SO_LEARN_H

#include "method/so_handbook.h"
#include "offline/so_trace.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
    uint64_t seed;
    int k;               /* top-level clusters per mode; 0 = choose on validation */
    double split_alpha;  /* 0 = choose on validation */
    double merge_alpha;  /* default 0.05 */
    int min_leaf;        /* smallest skill, in prompts (default 25) */
    int max_depth;       /* split depth below the top level (default 3) */
    double temperature;  /* inference temperature; 0 = choose on validation */
    double val_fraction; /* share of training queries held out (default 0.2) */
    int max_terms;       /* learned terms kept per skill (default 300) */
    const char *version; /* handbook version string (default "learned-<seed>") */
    FILE *log;           /* progress and selection log, may be NULL */
} so_learn_opts_t;

void so_learn_opts_default(so_learn_opts_t *o);

/* Learns a handbook from the dataset.  Returns NULL with err on failure
 * (e.g. no usable samples). */
so_handbook_t *so_learn(const so_dataset_t *train, const so_learn_opts_t *opts, char *err,
                        size_t errlen);

/* Profiles competence and cost of every agent in ds on hb's skills, crediting
 * each sample to skills by its inferred demand (adds to the stats; agents
 * missing from hb are added). */
void so_learn_profile(so_handbook_t *hb, const so_dataset_t *ds);

#endif
