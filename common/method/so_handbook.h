/*
 * so_handbook — the skill handbook: modes, skills, agents, and what has been
 * learned about each agent on each skill.
 *
 * Competence per (agent, skill) is kept as success and attempt counts (a
 * score in [0,1] credits a fractional success); with a Beta(α0, β0) prior its
 * posterior is Beta(α0 + successes, β0 + failures).  Cost per (agent, skill)
 * is kept as sums (USD, prompt and completion tokens, latency, count) so that
 * updates from many learners commute.
 *
 * JSON: so_handbook_load reads our own format and the format written by the
 * reference Python implementation (jiayuww/SkillOrchestra SkillHandbook.save:
 * metadata, modes, skills, agent_profiles with skill_competence {alpha, beta}
 * and cost_stats, mode_skill_index).  so_handbook_save writes the reference's
 * keys plus ours (see docs/HANDBOOK.md), so either side can read it.
 *
 * The code: so_handbook.c (the handbook in memory), so_handbook_json.c
 * (loading and saving).
 *
 * The struct is transparent: tools and services read the arrays directly;
 * mutate through the functions so that indices stay consistent.
 */
#ifndef SO_HANDBOOK_H
#define SO_HANDBOOK_H

#include <stddef.h>
#include <stdint.h>

/* The inference temperature of a new handbook, and of a file that names none. */
#define SO_HANDBOOK_TEMPERATURE 0.05

typedef struct {
    char *id;
    char *description;
} so_mode_t;

typedef struct {
    uint64_t hash; /* so_term_hash of text */
    char *text;    /* lowercased term, unigram or "a b" */
    double weight;
} so_term_t;

typedef struct {
    char *id;
    char *name;
    char *description;
    char **indicators; /* phrases that signal the skill */
    size_t n_indicators;
    char **examples; /* example prompts */
    size_t n_examples;
    so_term_t *terms; /* learned term weights (skill centroid) */
    size_t n_terms;
    int mode;   /* index into modes */
    int parent; /* index into skills, -1 for none */
} so_skill_t;

typedef struct {
    char *id;
    char *model;
    int mode;           /* index into modes, -1 = every mode */
    double price_in;    /* USD per 1M prompt tokens (0 = unknown) */
    double price_out;   /* USD per 1M completion tokens */
    long context_limit; /* tokens, 0 = unlimited */
    int available;      /* 0 = taken out of rotation */
} so_agent_t;

/* Everything observed for one (agent, skill): sums only. */
typedef struct {
    double successes;
    double attempts;
    double cost_usd;          /* sum */
    double prompt_tokens;     /* sum */
    double completion_tokens; /* sum */
    double latency_s;         /* sum */
    double cost_count;        /* calls whose cost is in the sums */
} so_stat_t;

typedef struct {
    char *version;
    char *parent_version;
    double prior_alpha, prior_beta; /* Beta prior on competence */
    so_mode_t *modes;
    size_t n_modes;
    so_skill_t *skills;
    size_t n_skills;
    so_agent_t *agents;
    size_t n_agents;
    so_stat_t *stats; /* [n_agents * n_skills], agent-major */
    /* Inverse document frequency of the terms the skills were learned
     * from (optional; inference weighs query terms by it). */
    so_term_t *idf;
    size_t n_idf;
    double infer_temperature; /* softmax temperature for embedded inference */
    size_t cap_skills, cap_agents;
} so_handbook_t;

so_handbook_t *so_handbook_new(const char *version);
void so_handbook_destroy(so_handbook_t **self_p);
so_handbook_t *so_handbook_dup(const so_handbook_t *hb);

/* Building.  Each returns the new index, or -1 with a message in err
 * (duplicate id, unknown mode/parent, bad number). */
int so_handbook_add_mode(so_handbook_t *hb, const char *id, const char *description, char *err,
                         size_t errlen);
int so_handbook_add_skill(so_handbook_t *hb, const char *id, const char *name,
                          const char *description, const char *mode, const char *parent,
                          char *err, size_t errlen);
int so_handbook_add_agent(so_handbook_t *hb, const char *id, const char *model, const char *mode,
                          double price_in, double price_out, long context_limit, char *err,
                          size_t errlen);
/* Appends a string to a skill's indicators or examples (copied). */
void so_skill_add_indicator(so_skill_t *sk, const char *text);
void so_skill_add_example(so_skill_t *sk, const char *text);
/* Replaces a skill's learned terms (copied). */
void so_skill_set_terms(so_skill_t *sk, const so_term_t *terms, size_t n);
void so_handbook_set_idf(so_handbook_t *hb, const so_term_t *idf, size_t n);

int so_handbook_mode_index(const so_handbook_t *hb, const char *id);
int so_handbook_skill_index(const so_handbook_t *hb, const char *id);
int so_handbook_agent_index(const so_handbook_t *hb, const char *id);

static inline so_stat_t *so_handbook_stat(const so_handbook_t *hb, size_t agent, size_t skill)
{
    return &hb->stats[agent * hb->n_skills + skill];
}

/* Adds every sum of x to d (statistics of one cell merged into another). */
void so_stat_add(so_stat_t *d, const so_stat_t *x);

/* Records one outcome of agent on skill with credit weight w (the skill's
 * share of the turn's demand, 1 for a hard assignment): successes += w·score,
 * attempts += w, and the cost sums += w·cost.  NAN cost fields are left out. */
void so_handbook_observe(so_handbook_t *hb, size_t agent, size_t skill, double w, double score,
                         double cost_usd, double prompt_tokens, double completion_tokens,
                         double latency_s);

/* JSON.  Load returns NULL with "file: key: problem" in err; nothing is
 * half-loaded.  Save returns 0 or -1. */
so_handbook_t *so_handbook_load(const char *path, char *err, size_t errlen);
so_handbook_t *so_handbook_load_string(const char *json, const char *name, char *err,
                                       size_t errlen);
int so_handbook_save(const so_handbook_t *hb, const char *path, char *err, size_t errlen);
/* Returns a malloc'd JSON string (caller frees) or NULL. */
char *so_handbook_dumps(const so_handbook_t *hb);

#endif
