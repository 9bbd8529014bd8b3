/*
 * so_trace_jsonl — reading the JSONL trace format (one episode per line,
 * docs/TRACES.md): a JSON object to an episode with messages naming the key
 * that is wrong, and whole files with duplicate-id checks.  Also owns the
 * bounded JSON-lines reader (so_trace_each_json) that the MT-bench importer
 * uses for its files.  Writing is so_trace_write.c.
 */
#include "offline/so_trace.h"
#include "offline/so_trace_int.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* JSON → episode                                                       */

void so_trace_json_show(const json_t *v, char *buf, size_t len)
{
    char *s = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    if (!s) {
        snprintf(buf, len, "nothing");
        return;
    }
    if (strlen(s) > 60)
        snprintf(buf, len, "%.60s...", s);
    else
        snprintf(buf, len, "%s", s);
    free(s);
}

/* "<what>: expected <want>, got <v shown>" into msg; returns -1. */
static int s_expected(char *msg, size_t msglen, const char *path, const char *key,
                      const char *want, const json_t *v)
{
    char shown[96];
    so_trace_json_show(v, shown, sizeof shown);
    return so_err(msg, msglen, "%s%s: expected %s, got %s", path, key, want, shown);
}

/* Optional string: absent or null → dflt (copied); else must be a string. */
static int s_get_str(const json_t *obj, const char *key, const char *path, int required,
                     const char *dflt, char **out, char *msg, size_t msglen)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return so_err(msg, msglen, "%s%s: missing required key", path, key);
        *out = so_strdup(dflt);
        return 0;
    }
    if (!json_is_string(v))
        return s_expected(msg, msglen, path, key, "a string", v);
    *out = so_strdup(json_string_value(v));
    return 0;
}

/* Optional number in [lo, hi]; absent or null → NAN. */
static int s_get_num(const json_t *obj, const char *key, const char *path, double lo, double hi,
                     const char *what, double *out, char *msg, size_t msglen)
{
    const json_t *v = json_object_get(obj, key);
    *out = NAN;
    if (!v || json_is_null(v))
        return 0;
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    if (!json_is_number(v) || !isfinite(d) || d < lo || d > hi)
        return s_expected(msg, msglen, path, key, what, v);
    *out = d;
    return 0;
}

static int s_turn_from_json(const json_t *o, size_t i, so_turn_t *t, char *msg, size_t msglen)
{
    char path[48];
    snprintf(path, sizeof path, "turns[%zu].", i);
    so_trace_turn_unknown(t);
    if (!json_is_object(o)) {
        char shown[96];
        so_trace_json_show(o, shown, sizeof shown);
        return so_err(msg, msglen, "turns[%zu]: expected an object, got %s", i, shown);
    }
    if (s_get_str(o, "agent", path, 1, NULL, &t->agent, msg, msglen) < 0 ||
        s_get_str(o, "prompt", path, 1, NULL, &t->prompt, msg, msglen) < 0 ||
        s_get_str(o, "mode", path, 0, "", &t->mode, msg, msglen) < 0)
        return -1;
    const char *nonneg = "a non-negative number";
    if (s_get_num(o, "prompt_tokens", path, 0, INFINITY, nonneg, &t->prompt_tokens, msg, msglen) <
            0 ||
        s_get_num(o, "completion_tokens", path, 0, INFINITY, nonneg, &t->completion_tokens, msg,
                  msglen) < 0 ||
        s_get_num(o, "cost_usd", path, 0, INFINITY, nonneg, &t->cost_usd, msg, msglen) < 0 ||
        s_get_num(o, "latency_s", path, 0, INFINITY, nonneg, &t->latency_s, msg, msglen) < 0 ||
        s_get_num(o, "score", path, 0, 1, "a number in [0,1]", &t->score, msg, msglen) < 0)
        return -1;
    const json_t *succ = json_object_get(o, "success");
    if (succ && !json_is_null(succ)) {
        if (!json_is_boolean(succ))
            return s_expected(msg, msglen, path, "success", "true or false", succ);
        if (isnan(t->score))
            t->score = json_is_true(succ) ? 1.0 : 0.0;
    }
    return 0;
}

/* Fills ep from a parsed object; msg gets "key: problem" on error. */
static int s_episode_from_json(const json_t *root, so_episode_t *ep, char *msg, size_t msglen)
{
    memset(ep, 0, sizeof *ep);
    ep->outcome = NAN;
    if (!json_is_object(root)) {
        char shown[96];
        so_trace_json_show(root, shown, sizeof shown);
        return so_err(msg, msglen, "expected a JSON object, got %s", shown);
    }
    if (s_get_str(root, "episode_id", "", 1, NULL, &ep->id, msg, msglen) < 0 ||
        s_get_str(root, "query_id", "", 0, ep->id, &ep->query_id, msg, msglen) < 0 ||
        s_get_str(root, "task", "", 0, "", &ep->task, msg, msglen) < 0 ||
        s_get_num(root, "outcome", "", 0, 1, "a number in [0,1] or null", &ep->outcome, msg,
                  msglen) < 0)
        goto fail;
    const json_t *turns = json_object_get(root, "turns");
    if (!turns) {
        so_err(msg, msglen, "turns: missing required key");
        goto fail;
    }
    if (!json_is_array(turns) || json_array_size(turns) == 0) {
        s_expected(msg, msglen, "", "turns", "a non-empty array", turns);
        goto fail;
    }
    size_t n = json_array_size(turns);
    ep->turns = so_calloc(n, sizeof *ep->turns);
    for (size_t i = 0; i < n; i++) {
        ep->n_turns = i + 1;
        if (s_turn_from_json(json_array_get(turns, i), i, &ep->turns[i], msg, msglen) < 0)
            goto fail;
    }
    return 0;
fail:
    so_episode_clear(ep);
    return -1;
}

int so_episode_from_json(so_episode_t *ep, const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root) {
        memset(ep, 0, sizeof *ep);
        ep->outcome = NAN;
        return so_err(err, errlen, "invalid JSON at column %d: %s", jerr.column, jerr.text);
    }
    int rc = s_episode_from_json(root, ep, err, errlen);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ */
/* bounded JSON-lines reader                                            */

typedef struct {
    FILE *fp;
    const char *path;
    char *buf;
    size_t len, cap;
    size_t lineno;
    size_t max;
} s_lines_t;

/* 1 = a line in r->buf (without its line end), 0 = EOF, -1 = error. */
static int s_next_line(s_lines_t *r, char *err, size_t errlen)
{
    r->len = 0;
    int c = getc_unlocked(r->fp);
    if (c == EOF) {
        if (ferror(r->fp))
            return so_err(err, errlen, "%s:%zu: read error: %s", r->path, r->lineno + 1,
                          strerror(errno));
        return 0;
    }
    r->lineno++;
    for (; c != EOF && c != '\n'; c = getc_unlocked(r->fp)) {
        if (r->len + 2 > r->cap) {
            if (r->cap >= r->max + 2)
                return so_err(err, errlen, "%s:%zu: line longer than the limit of %zu bytes",
                              r->path, r->lineno, r->max);
            size_t ncap = r->cap ? r->cap * 2 : 4096;
            if (ncap > r->max + 2)
                ncap = r->max + 2;
            r->buf = so_realloc(r->buf, ncap);
            r->cap = ncap;
        }
        r->buf[r->len++] = (char) c;
    }
    if (ferror(r->fp))
        return so_err(err, errlen, "%s:%zu: read error: %s", r->path, r->lineno, strerror(errno));
    if (r->len && r->buf[r->len - 1] == '\r')
        r->len--;
    if (!r->buf) {
        r->buf = so_malloc(1);
        r->cap = 1;
    }
    r->buf[r->len] = '\0';
    return 1;
}

static int s_line_blank(const s_lines_t *r)
{
    for (size_t i = 0; i < r->len; i++)
        if (!isspace((unsigned char) r->buf[i]))
            return 0;
    return 1;
}

int so_trace_each_json(const char *path, so_trace_line_fn *fn, void *ctx, char *err,
                       size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return so_err(err, errlen, "%s: %s", path, strerror(errno));
    s_lines_t r = { .fp = fp, .path = path, .max = SO_TRACE_MAX_LINE };
    int rc;
    while ((rc = s_next_line(&r, err, errlen)) == 1) {
        if (s_line_blank(&r))
            continue;
        json_error_t jerr;
        json_t *root = json_loadb(r.buf, r.len, 0, &jerr);
        if (!root) {
            rc = so_err(err, errlen, "%s:%zu: invalid JSON at column %d: %s", path, r.lineno,
                        jerr.column, jerr.text);
            break;
        }
        rc = fn(root, path, r.lineno, ctx, err, errlen);
        json_decref(root);
        if (rc < 0)
            break;
    }
    free(r.buf);
    fclose(fp);
    return rc < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* JSONL traces                                                         */

typedef struct {
    so_episodes_t *eps;
    so_map_t *ids; /* episode id → line of first use */
} s_jsonl_t;

static int s_jsonl_line(json_t *root, const char *path, size_t lineno, void *ctx, char *err,
                        size_t errlen)
{
    s_jsonl_t *j = ctx;
    so_episode_t ep;
    char msg[512];
    if (s_episode_from_json(root, &ep, msg, sizeof msg) < 0)
        return so_err(err, errlen, "%s:%zu: %s", path, lineno, msg);
    size_t first = 0;
    if (so_trace_idx_get(j->ids, ep.id, &first)) {
        so_err(err, errlen, "%s:%zu: episode_id: \"%s\" already used on line %zu", path, lineno,
               ep.id, first);
        so_episode_clear(&ep);
        return -1;
    }
    so_trace_idx_put(j->ids, ep.id, lineno);
    return so_episodes_push(j->eps, &ep);
}

int so_episodes_read_jsonl(so_episodes_t *eps, const char *path, char *err, size_t errlen)
{
    memset(eps, 0, sizeof *eps);
    s_jsonl_t j = { .eps = eps, .ids = so_map_new(NULL) };
    int rc = so_trace_each_json(path, s_jsonl_line, &j, err, errlen);
    so_map_destroy(&j.ids);
    if (rc < 0)
        so_episodes_free(eps);
    return rc;
}
