/*
 * so_skillprompt — what we ask an LLM about a handbook's skills, and how its
 * answers are read (the paper's LLM-backed skill analysis and skill naming):
 *
 *   - a skill analysis of one turn: the system message lists the mode's
 *     skills (id, name, description, indicator terms, an example or two,
 *     all cut short) and asks for {"skills": [{"id", "weight"}]}; the user
 *     message is the turn's text.  The answer is read by so_extract_skills
 *     against the listed ids (skill-inference's llm mode, so-name --label);
 *   - a name and a one-sentence description for a learned skill, from its
 *     indicator terms and example prompts (so-name).
 *
 * Prompts are deterministic (same handbook and options, same bytes), so an
 * analysis can be cached by the hash of what was asked.  Owns nothing;
 * thread-safe.
 */
#ifndef SO_SKILLPROMPT_H
#define SO_SKILLPROMPT_H

#include "method/so_handbook.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t max_examples;      /* example prompts per skill (default 2) */
    size_t example_chars;     /* each example cut to this (default 160) */
    size_t max_indicators;    /* indicator terms per skill (default 8) */
    size_t description_chars; /* descriptions cut to this (default 200) */
    size_t text_chars;        /* the turn's text cut to this (default 4000) */
    size_t max_skills;        /* analysis: "name at most N skills" (default 3) */
} so_skillprompt_opts_t;

void so_skillprompt_opts_default(so_skillprompt_opts_t *o);

/* The system message of a skill analysis over hb's skills of mode (index
 * into hb->modes; -1 = every skill), one line per skill:
 *     - <id>: <name>. <description> Indicators: a, b. Example: "..."
 * then the answer format.  Returns a malloc'd string (caller frees) and
 * writes the listed skills' indices to idx (room for hb->n_skills) and
 * their number to *n (0 when the mode has no skill: then nothing is worth
 * asking).  Text from the handbook is cut at UTF-8 boundaries, newlines
 * and control characters turned into blanks. */
char *so_skillprompt_analysis(const so_handbook_t *hb, int mode, const so_skillprompt_opts_t *o,
                              size_t *idx, size_t *n);

/* The user message of a skill analysis: the turn's text cut to
 * o->text_chars at a UTF-8 boundary (a cut is marked " [...]").  Malloc'd. */
char *so_skillprompt_turn(const char *text, const so_skillprompt_opts_t *o);

/* The system message of a naming request (static storage). */
const char *so_skillprompt_naming_system(void);

/* The user message asking to name hb->skills[skill]: its id, current name,
 * indicator terms and example prompts, and the answer format
 * {"name": ..., "description": ...}.  Malloc'd; NULL if skill is out of
 * range. */
char *so_skillprompt_naming(const so_handbook_t *hb, size_t skill,
                            const so_skillprompt_opts_t *o);

/* Longest name and description a naming answer may give (bytes). */
#define SO_SKILLPROMPT_MAX_NAME 80
#define SO_SKILLPROMPT_MAX_DESCRIPTION 300

/* Reads a naming answer (after so_extract_json: fences, think blocks and
 * prose are fine): an object with "name" (1..SO_SKILLPROMPT_MAX_NAME bytes
 * after trimming, one line) and "description" (optional, at most
 * SO_SKILLPROMPT_MAX_DESCRIPTION bytes; newlines become blanks).  Returns 0
 * with *name and *description malloc'd (description "" when absent; the
 * caller frees both), or -1 with err saying what was wrong. */
int so_skillprompt_parse_name(const char *text, size_t len, char **name, char **description,
                              char *err, size_t errlen);

/* A 128-bit key for caching an analysis: the handbook version, the mode
 * and the turn's text (two independent 64-bit FNV-1a variants). */
typedef struct {
    uint64_t h1, h2;
} so_skillprompt_key_t;

so_skillprompt_key_t so_skillprompt_key(const char *version, int mode, const char *text);

#endif
