/*
 * so_extract — reading structured answers out of what an LLM wrote.
 *
 * Models wrap JSON in prose, ```json fences and <think>…</think> reasoning,
 * and leave trailing commas; so_extract_json finds the JSON value anyway.
 * so_extract_skills reads a skill analysis from it and maps it onto the ids
 * the caller knows (a handbook's skills), dropping and counting the rest.
 *
 * Owns nothing; thread-safe.
 */
#ifndef SO_EXTRACT_H
#define SO_EXTRACT_H

#include <jansson.h>
#include <stddef.h>

/* Longest text looked at (longer output is an error, not truncated). */
#define SO_EXTRACT_MAX_TEXT (1u << 20)

/* The JSON object or array in an LLM's output:
 *   1. reasoning is dropped: everything up to the last "</think>" (with or
 *      without its "<think>"), and an unterminated "<think>" to the end
 *      ("<thinking>" and "<reasoning>" likewise);
 *   2. the first ``` fenced block (```json or plain) that holds JSON wins;
 *   3. else the first balanced {…} or […] in the text that parses;
 * each candidate is parsed as is, then again with trailing commas removed
 * (",}" / ",]" outside strings).  Returns a new reference (json_decref it),
 * or NULL with err saying what was wrong, e.g. "the output has no JSON
 * object or array (212 chars of prose)" or "JSON starting at byte 14 is not
 * closed (output cut short?)". */
json_t *so_extract_json(const char *text, size_t len, char *err, size_t errlen);

typedef struct {
    size_t entries;         /* skill entries read from the JSON */
    size_t matched;         /* known ids that got a positive weight */
    size_t unknown;         /* entries whose id is not in the list: dropped */
    size_t invalid;         /* entries without a usable id or weight: dropped */
    size_t duplicates;      /* ids named more than once: weights added up */
    char first_unknown[64]; /* the first unknown id (cut), for messages */
} so_extract_report_t;

/* A skill analysis from an LLM's output, mapped onto ids[0..n_ids).
 * Accepted shapes (after so_extract_json):
 *   {"skills": [{"id": "math.alg", "weight": 0.7}, ...]}
 *       (id also as "skill_id", "skill" or "name"; weight also as "score",
 *        "probability" or "w"; a bare string entry weighs 1)
 *   {"skills": {"math.alg": 0.7, ...}}    {"math.alg": 0.7, ...}
 *   [{"id": ..., "weight": ...}, ...]
 * Weights must be finite numbers >= 0 (numeric strings are read too);
 * others count as invalid.  Ids match exactly, else ignoring case and
 * surrounding blanks.  weights[n_ids] receives the known skills' weights,
 * normalised to sum 1 (the rest 0).  Returns the number of skills with a
 * positive weight (>= 1), or -1 with err when the output has no JSON, the
 * shape is wrong or no known skill has a positive weight ("no known skill
 * with a positive weight: 3 entries, 2 unknown ids (first 'calculus'), 1
 * invalid").  rep (may be NULL) is filled either way. */
int so_extract_skills(const char *text, size_t len, const char *const *ids, size_t n_ids,
                      double *weights, so_extract_report_t *rep, char *err, size_t errlen);

/* As so_extract_skills, from a JSON value already extracted. */
int so_extract_skills_json(const json_t *root, const char *const *ids, size_t n_ids,
                           double *weights, so_extract_report_t *rep, char *err, size_t errlen);

#endif
