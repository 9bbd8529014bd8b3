/*
 * so_infer — embedded skill inference (no LLM): from a turn's text to a
 * normalised skill-demand vector, using what the handbook holds.
 *
 * Each skill gets a term profile: its learned terms (a TF-IDF centroid
 * written by so-learn), its indicator phrases, and — when it has no learned
 * terms — the TF-IDF average of its examples.  A turn is scored against
 * every skill of its mode by the cosine of its TF-IDF vector with the
 * profile; a softmax with the handbook's temperature turns the scores into
 * weights, weights below 1% are dropped, and the rest renormalised.  When
 * no term matches, the demand is uniform over the mode's skills.
 *
 * so_infer_t is read-only after construction: share it between threads.
 * A call allocates nothing.
 */
#ifndef SO_INFER_H
#define SO_INFER_H

#include "method/so_handbook.h"

typedef enum {
    SO_DEMAND_EMBEDDED = 0,
    SO_DEMAND_LLM = 1,
    SO_DEMAND_UNIFORM_FALLBACK = 2
} so_demand_source_t;

typedef struct so_infer so_infer_t;

/* Builds the term index; the handbook may be destroyed afterwards. */
so_infer_t *so_infer_new(const so_handbook_t *hb);
void so_infer_destroy(so_infer_t **self_p);
/* Overrides the handbook's softmax temperature (> 0). */
void so_infer_set_temperature(so_infer_t *inf, double temperature);

/* Writes demand[n_skills] (sums to 1 over the mode's skills, 0 elsewhere;
 * mode -1 = every skill).  Returns the source. */
so_demand_source_t so_infer(const so_infer_t *inf, const char *text, int mode, double *demand);

/* Raw cosine scores (before the softmax), for learning and debugging. */
void so_infer_scores(const so_infer_t *inf, const char *text, double *scores);

#endif
