/*
 * so_trace — recorded execution experience: episodes (JSONL traces) and the
 * per-query outcome table ("dataset") that learning and evaluation replay.
 *
 * An episode is one interaction: one or more turns, each routed to one agent,
 * with its measured tokens, cost, latency and score, plus an episode outcome.
 * The JSONL trace format (one episode per line) is documented in
 * docs/TRACES.md.  RouterBench's wide CSV and the MT-bench files import into
 * the same episodes (one episode per (query, agent)).
 *
 * The code: so_trace.c (episodes, dataset), so_trace_jsonl.c (reading
 * traces), so_trace_write.c (writing them), so_trace_routerbench.c and
 * so_trace_mtbench.c (the importers).
 *
 * A dataset groups episodes that answered the same query (query_id) at the
 * same turn index into one sample holding every agent's outcome for it: the
 * counterfactual table that replay needs ("what would agent B have scored
 * here?").  Scores are in [0,1]: 1 success, 0 failure, judge scores scaled.
 */
#ifndef SO_TRACE_H
#define SO_TRACE_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char *mode;               /* stage, e.g. "search"; "" = the default mode */
    char *agent;              /* agent id (model name for RouterBench) */
    char *prompt;             /* the user text of this turn */
    double prompt_tokens;     /* NAN when unknown */
    double completion_tokens; /* NAN when unknown */
    double cost_usd;          /* NAN when unknown */
    double latency_s;         /* NAN when unknown */
    double score;             /* [0,1]; NAN when unknown */
} so_turn_t;

typedef struct {
    char *id;       /* episode id, unique within a file */
    char *query_id; /* groups episodes over the same query; may equal id */
    char *task;     /* optional label (RouterBench eval_name); "" if none */
    so_turn_t *turns;
    size_t n_turns;
    double outcome; /* [0,1]; NAN when unknown */
} so_episode_t;

typedef struct {
    so_episode_t *items;
    size_t n, cap;
    size_t skipped; /* input rows/cells skipped as unusable (counted, reported) */
} so_episodes_t;

/* One query at one turn index with every agent's recorded outcome.
 * Arrays are indexed by the dataset's agent index; NAN = no record. */
typedef struct {
    char *query_id;
    char *task;
    char *mode;
    char *prompt;              /* this turn's text */
    int turn;                  /* 0-based turn index within its episode */
    double *score;             /* [n_agents] */
    double *cost;              /* [n_agents] USD */
    double *prompt_tokens;     /* [n_agents] */
    double *completion_tokens; /* [n_agents] */
    double *latency;           /* [n_agents] seconds */
} so_sample_t;

typedef struct {
    char **agents; /* sorted agent ids */
    size_t n_agents;
    so_sample_t *samples; /* in input order */
    size_t n_samples;
    size_t skipped; /* carried over from import */
} so_dataset_t;

/* All loaders return 0 on success, -1 on error with a message naming the
 * file, line (and column/key where it applies) and the problem in err.
 * Loaders reset *eps on entry (its old contents are not freed) and leave it
 * empty on error; on success the caller frees it with so_episodes_free(). */
int so_episodes_read_jsonl(so_episodes_t *eps, const char *path, char *err, size_t errlen);
int so_episodes_write_jsonl(const so_episodes_t *eps, FILE *out, char *err, size_t errlen);
/* RouterBench wide CSV (RFC 4180). Rows with an empty correctness or cost
 * cell are skipped and counted in eps->skipped. */
int so_episodes_read_routerbench(so_episodes_t *eps, const char *path, char *err, size_t errlen);
/* MT-bench: question.jsonl + judgements.jsonl from one directory. */
int so_episodes_read_mtbench(so_episodes_t *eps, const char *dir, char *err, size_t errlen);
/* Dispatch on the file: *.csv → RouterBench, a directory → MT-bench, else JSONL. */
int so_episodes_read_any(so_episodes_t *eps, const char *path, char *err, size_t errlen);
void so_episodes_free(so_episodes_t *eps);

/* Builds the counterfactual table; the dataset owns copies of the strings.
 * Samples where fewer than 1 agent has a score are dropped. */
int so_dataset_from_episodes(so_dataset_t *ds, const so_episodes_t *eps, char *err,
                             size_t errlen);
/* Reads one or more comma-separated paths (so_episodes_read_any each). */
int so_dataset_load(so_dataset_t *ds, const char *paths, char *err, size_t errlen);
int so_dataset_agent_index(const so_dataset_t *ds, const char *agent); /* -1 if absent */
void so_dataset_free(so_dataset_t *ds);

/* ---- Additions (see docs/TRACES.md) ------------------------------------ */

#define SO_TRACE_MAX_LINE ((size_t) 64 << 20) /* longest JSONL line read */
/* MT-bench: completion tokens assumed when an answer cannot be recovered
 * from the judge's prompt (never the case in the shipped files). */
#define SO_MTBENCH_COMPLETION_TOKENS 350.0

/* so_dataset_from_episodes and so_dataset_load reset *ds on entry and leave
 * it empty on error; the caller frees a built dataset with so_dataset_free(),
 * which releases every string and array with free(3). */

/* Frees the episode's strings and turns and zeroes it (outcome = NAN). */
void so_episode_clear(so_episode_t *ep);
/* Appends *ep, taking its storage (*ep is zeroed).  Returns 0 (out of
 * memory aborts, as everywhere: base/so_alloc.h). */
int so_episodes_push(so_episodes_t *eps, so_episode_t *ep);
/* Moves every episode of src to the end of dst and adds src->skipped;
 * src is left empty.  Returns 0. */
int so_episodes_concat(so_episodes_t *dst, so_episodes_t *src);
/* Parses one trace-format JSON object (text[0..len)) into *ep (reset on
 * entry).  Errors read "turns[1].score: expected a number in [0,1], got ...";
 * the caller frees *ep with so_episode_clear() on success. */
int so_episode_from_json(so_episode_t *ep, const char *text, size_t len, char *err,
                         size_t errlen);
/* Writes one episode as one JSONL line (with its newline). -1 on I/O error. */
int so_episode_write_json(const so_episode_t *ep, FILE *out);
/* The same line without the newline; the caller frees it with free(3). */
char *so_episode_to_json(const so_episode_t *ep);
/* Decodes a Python list-of-strings literal ("['a', \"b\"]", repr() escapes)
 * into its elements joined by "\n".  NULL when s is not such a literal;
 * otherwise the caller frees the result with free(3). */
char *so_pylist_text(const char *s);
/* List price in USD per 1M input/output tokens for the MT-bench models;
 * -1 when the model is not in the table. */
int so_trace_list_price(const char *model, double *usd_in_per_mtok, double *usd_out_per_mtok);

#endif
