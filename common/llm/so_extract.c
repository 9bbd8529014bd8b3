/* so_extract — JSON and skill analyses out of LLM output (see so_extract.h). */
#include "llm/so_extract.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_MAX_CANDIDATES 256 /* balanced spans parsed before giving up */
#define S_MAX_ENTRIES 4096   /* skill entries read from one analysis */

/* Offset of needle in hay[0..n) ignoring ASCII case, or -1.  from_end: the
 * last occurrence. */
static long s_find_ci(const char *hay, size_t n, const char *needle, int from_end)
{
    size_t m = strlen(needle);
    if (m == 0 || m > n)
        return -1;
    long found = -1;
    for (size_t i = 0; i + m <= n; i++)
        if (strncasecmp(hay + i, needle, m) == 0) {
            found = (long) i;
            if (!from_end)
                break;
        }
    return found;
}

/* The part of the output after the model's reasoning: [*start, *end).
 * Returns 1 when reasoning was dropped. */
static int s_skip_reasoning(const char *text, size_t len, size_t *start, size_t *end)
{
    static const char *closers[] = { "</think>", "</thinking>", "</reasoning>" };
    static const char *openers[] = { "<think>", "<thinking>", "<reasoning>" };
    int dropped = 0;
    *start = 0;
    *end = len;
    for (size_t i = 0; i < sizeof closers / sizeof *closers; i++) {
        long at = s_find_ci(text, len, closers[i], 1);
        if (at >= 0 && (size_t) at + strlen(closers[i]) > *start) {
            *start = (size_t) at + strlen(closers[i]);
            dropped = 1;
        }
    }
    /* An opener with no closer after it: the model never finished. */
    for (size_t i = 0; i < sizeof openers / sizeof *openers; i++) {
        long at = s_find_ci(text + *start, *end - *start, openers[i], 0);
        if (at >= 0) {
            *end = *start + (size_t) at;
            dropped = 1;
        }
    }
    return dropped;
}

static const char *s_memmem(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

/* A copy of p[0..n) without commas that directly (blanks aside) precede a
 * '}' or ']' outside strings; NULL when there is none to remove. */
static char *s_drop_trailing_commas(const char *p, size_t n, size_t *out_len)
{
    char *out = so_malloc(n + 1);
    size_t k = 0;
    int in_str = 0, removed = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (in_str) {
            if (ch == '\\' && i + 1 < n) {
                out[k++] = ch;
                ch = p[++i];
            } else if (ch == '"') {
                in_str = 0;
            }
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == ',') {
            size_t j = i + 1;
            while (j < n && isspace((unsigned char) p[j]))
                j++;
            if (j < n && (p[j] == '}' || p[j] == ']')) {
                removed = 1;
                continue;
            }
        }
        out[k++] = ch;
    }
    if (!removed) {
        free(out);
        return NULL;
    }
    out[k] = '\0';
    *out_len = k;
    return out;
}

/* Parses p[0..n) as an object or array, then once more without trailing
 * commas.  On failure *je holds the first attempt's error. */
static json_t *s_parse(const char *p, size_t n, json_error_t *je)
{
    json_t *v = json_loadb(p, n, 0, je);
    if (v)
        return v;
    size_t m = 0;
    char *fixed = s_drop_trailing_commas(p, n, &m);
    if (fixed) {
        json_error_t je2;
        v = json_loadb(fixed, m, 0, &je2);
        free(fixed);
    }
    return v;
}

/* The end (exclusive) of the bracketed value opening at p[start], or 0
 * when it is not closed within n.  Adds the bytes looked at to *work. */
static size_t s_balanced_end(const char *p, size_t n, size_t start, size_t *work)
{
    int in_str = 0;
    size_t depth = 0;
    for (size_t i = start; i < n; i++, (*work)++) {
        char ch = p[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return 0;
}

/* What went wrong with the candidates, for the message when none parses. */
typedef struct {
    int tried;
    size_t work;   /* bytes scanned so far */
    size_t budget; /* ... and at most: output of many stray
                                     openers must not cost n^2 */
    int gave_up;
    long first_bad; /* offset of the first candidate that failed */
    json_error_t je;
    long unclosed; /* offset of the first unclosed one, -1 none */
} s_why_t;

/* The first balanced {…} or […] in p[0..n) that parses; base is p's offset
 * in the whole output (for messages). */
static json_t *s_scan(const char *p, size_t n, size_t base, s_why_t *why)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '{' && p[i] != '[')
            continue;
        if (why->tried >= S_MAX_CANDIDATES || why->work >= why->budget) {
            why->gave_up = 1;
            break;
        }
        size_t end = s_balanced_end(p, n, i, &why->work);
        if (end == 0) {
            if (why->unclosed < 0)
                why->unclosed = (long) (base + i);
            continue;
        }
        why->tried++;
        json_error_t je;
        json_t *v = s_parse(p + i, end - i, &je);
        if (v)
            return v;
        if (why->first_bad < 0) {
            why->first_bad = (long) (base + i);
            why->je = je;
        }
    }
    return NULL;
}

/* The first ``` fenced block of p[0..n) holding JSON; base as s_scan. */
static json_t *s_fences(const char *p, size_t n, size_t base, s_why_t *why)
{
    size_t i = 0;
    while (i + 3 <= n) {
        const char *open = s_memmem(p + i, n - i, "```", 3);
        if (!open)
            return NULL;
        /* The info string ("json", "JSON", nothing) runs to the end of line. */
        const char *body = memchr(open + 3, '\n', (size_t) (p + n - (open + 3)));
        if (!body)
            return NULL;
        body++;
        const char *close = s_memmem(body, (size_t) (p + n - body), "```", 3);
        size_t blen = close ? (size_t) (close - body) : (size_t) (p + n - body);
        json_t *v = s_scan(body, blen, base + (size_t) (body - p), why);
        if (v || !close)
            return v;
        i = (size_t) (close - p) + 3;
    }
    return NULL;
}

json_t *so_extract_json(const char *text, size_t len, char *err, size_t errlen)
{
    if (!text || len == 0) {
        snprintf(err, errlen, "the output is empty");
        return NULL;
    }
    if (len > SO_EXTRACT_MAX_TEXT) {
        snprintf(err, errlen, "the output is %zu bytes, more than the %u looked at", len,
                 SO_EXTRACT_MAX_TEXT);
        return NULL;
    }
    size_t start, end;
    int reasoning = s_skip_reasoning(text, len, &start, &end);
    const char *p = text + start;
    size_t n = end - start;
    size_t blank = 0;
    while (blank < n && isspace((unsigned char) p[blank]))
        blank++;
    if (blank == n) {
        snprintf(err, errlen, "the output has nothing %s",
                 reasoning ? "outside its <think> block (unterminated or last)" : "but blanks");
        return NULL;
    }
    s_why_t why = { .first_bad = -1, .unclosed = -1, .budget = 8 * n + 65536 };
    json_t *v = s_fences(p, n, start, &why);
    if (!v)
        v = s_scan(p, n, start, &why);
    if (v)
        return v;
    if (why.first_bad >= 0)
        snprintf(err, errlen, "JSON starting at byte %ld does not parse: %s (line %d, column %d)",
                 why.first_bad, why.je.text, why.je.line, why.je.column);
    else if (why.unclosed >= 0)
        snprintf(err, errlen, "JSON starting at byte %ld is not closed (output cut short?)",
                 why.unclosed);
    else
        snprintf(err, errlen, "the output has no JSON object or array (%zu chars of prose)", n);
    if (why.gave_up && errlen > 0) {
        size_t used = strlen(err);
        if (used < errlen)
            snprintf(err + used, errlen - used,
                     "; gave up after %d candidates, %zu bytes scanned", why.tried, why.work);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Skill analyses                                                      */

/* A weight: a finite number >= 0, or a string holding one; -1 if not. */
static double s_weight(const json_t *v)
{
    double w;
    if (json_is_number(v)) {
        w = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *endp;
        w = strtod(s, &endp);
        while (isspace((unsigned char) *endp))
            endp++;
        if (endp == s || *endp)
            return -1;
    } else {
        return -1;
    }
    return isfinite(w) && w >= 0 ? w : -1;
}

/* Equal ignoring ASCII case and surrounding blanks. */
static int s_loose_eq(const char *a, const char *b)
{
    while (isspace((unsigned char) *a))
        a++;
    size_t n = strlen(a);
    while (n > 0 && isspace((unsigned char) a[n - 1]))
        n--;
    return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

static long s_lookup(const char *id, const char *const *ids, size_t n_ids)
{
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] && strcmp(ids[i], id) == 0)
            return (long) i;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] && s_loose_eq(id, ids[i]))
            return (long) i;
    return -1;
}

typedef struct {
    const char *const *ids;
    size_t n_ids;
    double *weights;
    unsigned char *seen;
    so_extract_report_t *rep;
} s_map_t;

static void s_add(s_map_t *m, const char *id, double w)
{
    m->rep->entries++;
    if (!id || !*id || w < 0) {
        m->rep->invalid++;
        return;
    }
    long i = s_lookup(id, m->ids, m->n_ids);
    if (i < 0) {
        if (m->rep->unknown++ == 0)
            snprintf(m->rep->first_unknown, sizeof m->rep->first_unknown, "%s", id);
        return;
    }
    if (m->seen[i])
        m->rep->duplicates++;
    m->seen[i] = 1;
    m->weights[i] += w;
}

static const json_t *s_first_key(const json_t *o, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(o, keys[i]);
        if (v)
            return v;
    }
    return NULL;
}

static void s_entry(s_map_t *m, const json_t *e)
{
    static const char *id_keys[] = { "id", "skill_id", "skill", "name" };
    static const char *w_keys[] = { "weight", "score", "probability", "w" };
    if (json_is_string(e)) {
        s_add(m, json_string_value(e), 1.0);
    } else if (json_is_object(e)) {
        const json_t *id = s_first_key(e, id_keys, 4);
        const json_t *w = s_first_key(e, w_keys, 4);
        s_add(m, json_string_value(id), w ? s_weight(w) : 1.0);
    } else {
        s_add(m, NULL, -1);
    }
}

int so_extract_skills_json(const json_t *root, const char *const *ids, size_t n_ids,
                           double *weights, so_extract_report_t *rep, char *err, size_t errlen)
{
    so_extract_report_t local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    for (size_t i = 0; i < n_ids; i++)
        weights[i] = 0;
    const json_t *v = root;
    if (json_is_object(root) && json_object_get(root, "skills"))
        v = json_object_get(root, "skills");
    size_t n = json_is_array(v)    ? json_array_size(v)
               : json_is_object(v) ? json_object_size(v)
                                   : 0;
    if (!json_is_array(v) && !json_is_object(v))
        return so_err(err, errlen, "\"skills\" must be an array or an object");
    if (n > S_MAX_ENTRIES)
        return so_err(err, errlen, "%zu skill entries, more than the %d read", n, S_MAX_ENTRIES);
    unsigned char *seen = so_calloc(n_ids ? n_ids : 1, 1);
    s_map_t m = { ids, n_ids, weights, seen, rep };
    if (json_is_array(v)) {
        for (size_t i = 0; i < n; i++)
            s_entry(&m, json_array_get(v, i));
    } else {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *) v, key, val)
            s_add(&m, key, s_weight(val));
    }
    free(seen);
    double sum = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (weights[i] > 0) {
            sum += weights[i];
            rep->matched++;
        }
    if (rep->matched == 0 || !isfinite(sum)) {
        char unknown[128] = "";
        if (rep->unknown)
            snprintf(unknown, sizeof unknown, " (first '%s')", rep->first_unknown);
        snprintf(err, errlen,
                 "%s: %zu entries, %zu unknown ids%s, %zu invalid, %zu known with weight 0",
                 rep->matched ? "skill weights overflow"
                              : "no known skill with a positive weight",
                 rep->entries, rep->unknown, unknown, rep->invalid,
                 rep->entries - rep->unknown - rep->invalid);
        for (size_t i = 0; i < n_ids; i++)
            weights[i] = 0;
        rep->matched = 0;
        return -1;
    }
    for (size_t i = 0; i < n_ids; i++)
        weights[i] /= sum;
    return (int) rep->matched;
}

int so_extract_skills(const char *text, size_t len, const char *const *ids, size_t n_ids,
                      double *weights, so_extract_report_t *rep, char *err, size_t errlen)
{
    json_t *root = so_extract_json(text, len, err, errlen);
    if (!root) {
        if (rep)
            memset(rep, 0, sizeof *rep);
        for (size_t i = 0; i < n_ids; i++)
            weights[i] = 0;
        return -1;
    }
    int rc = so_extract_skills_json(root, ids, n_ids, weights, rep, err, errlen);
    json_decref(root);
    return rc;
}
