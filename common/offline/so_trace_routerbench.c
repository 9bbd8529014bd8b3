/*
 * so_trace_routerbench — RouterBench's wide CSV into episodes: one row per
 * query, a correctness column X and a cost column "X|total_cost" per model,
 * one episode per (query, model).  Owns the reader of the Python list
 * literals RouterBench stores its prompts as (so_pylist_text).
 */
#include "offline/so_trace.h"
#include "offline/so_trace_int.h"
#include "offline/so_csv.h"
#include "base/so_alloc.h"
#include "base/so_buf.h"
#include "base/so_err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Python list literal → text                                           */

static void s_buf_utf8(so_buf_t *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        u[0] = (char) cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char) (0xC0 | (cp >> 6));
        u[1] = (char) (0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char) (0xE0 | (cp >> 12));
        u[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char) (0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char) (0xF0 | (cp >> 18));
        u[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char) (0x80 | (cp & 0x3F));
        n = 4;
    }
    so_buf_append(b, u, n);
}

static int s_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int s_hexn(const char *p, int n, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        int h = s_hexval((unsigned char) p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + (uint32_t) h;
    }
    *out = v;
    return 0;
}

/* Decodes one Python string literal at *pp (optional r/u/b prefix) into b.
 * Returns 0 and advances *pp past the closing quote, -1 if it is not one. */
static int s_py_string(const char **pp, so_buf_t *b)
{
    const char *p = *pp;
    int raw = 0;
    for (int i = 0; i < 2 && strchr("rRuUbB", *p) && *p; i++, p++)
        if (*p == 'r' || *p == 'R')
            raw = 1;
    char q = *p;
    if (q != '\'' && q != '"')
        return -1;
    if (p[1] == q && p[2] == q)
        return -1; /* triple quotes: not produced by repr() */
    p++;
    uint32_t pending_hi = 0; /* high surrogate waiting for its pair */
    for (;;) {
        char c = *p;
        if (c == '\0')
            return -1;
        if (c == q) {
            p++;
            break;
        }
        if (c != '\\' || raw) {
            if (raw && c == '\\' && p[1]) {
                so_buf_append(b, p, 2); /* raw: backslash kept, next char too */
                p += 2;
                continue;
            }
            if (pending_hi) {
                s_buf_utf8(b, 0xFFFD);
                pending_hi = 0;
            }
            so_buf_putc(b, c);
            p++;
            continue;
        }
        /* escape sequence */
        char e = p[1];
        uint32_t cp = 0;
        int have_cp = 0;
        p += 2;
        switch (e) {
        case '\0': return -1;
        case '\n': break; /* line continuation */
        case '\\':
            cp = '\\';
            have_cp = 1;
            break;
        case '\'':
            cp = '\'';
            have_cp = 1;
            break;
        case '"':
            cp = '"';
            have_cp = 1;
            break;
        case 'a':
            cp = 7;
            have_cp = 1;
            break;
        case 'b':
            cp = 8;
            have_cp = 1;
            break;
        case 'f':
            cp = 12;
            have_cp = 1;
            break;
        case 'n':
            cp = '\n';
            have_cp = 1;
            break;
        case 'r':
            cp = '\r';
            have_cp = 1;
            break;
        case 't':
            cp = '\t';
            have_cp = 1;
            break;
        case 'v':
            cp = 11;
            have_cp = 1;
            break;
        case 'x':
            if (s_hexn(p, 2, &cp) < 0)
                return -1;
            p += 2;
            have_cp = 1;
            break;
        case 'u':
            if (s_hexn(p, 4, &cp) < 0)
                return -1;
            p += 4;
            have_cp = 1;
            break;
        case 'U':
            if (s_hexn(p, 8, &cp) < 0 || cp > 0x10FFFF)
                return -1;
            p += 8;
            have_cp = 1;
            break;
        default:
            if (e >= '0' && e <= '7') {
                cp = (uint32_t) (e - '0');
                for (int i = 0; i < 2 && *p >= '0' && *p <= '7'; i++, p++)
                    cp = cp * 8 + (uint32_t) (*p - '0');
                have_cp = 1;
            } else {
                /* Python keeps unknown escapes as written */
                so_buf_putc(b, '\\');
                so_buf_putc(b, e);
            }
        }
        if (!have_cp)
            continue;
        if (pending_hi) {
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                s_buf_utf8(b, 0x10000 + ((pending_hi - 0xD800) << 10) + (cp - 0xDC00));
                pending_hi = 0;
                continue;
            }
            s_buf_utf8(b, 0xFFFD);
            pending_hi = 0;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF)
            pending_hi = cp;
        else
            s_buf_utf8(b, cp);
    }
    if (pending_hi)
        s_buf_utf8(b, 0xFFFD);
    *pp = p;
    return 0;
}

static const char *s_skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

char *so_pylist_text(const char *s)
{
    if (!s)
        return NULL;
    so_buf_t b = SO_BUF_INIT;
    const char *p = s_skip_ws(s);
    if (*p != '[')
        return NULL;
    p++;
    size_t n = 0;
    for (;;) {
        p = s_skip_ws(p);
        if (*p == ']') {
            p++;
            break;
        }
        if (n > 0)
            so_buf_putc(&b, '\n');
        if (s_py_string(&p, &b) < 0)
            goto fail;
        n++;
        p = s_skip_ws(p);
        if (*p == ',') {
            p++;
        } else if (*p == ']') {
            p++;
            break;
        } else {
            goto fail;
        }
    }
    p = s_skip_ws(p);
    if (*p)
        goto fail;
    return so_buf_detach(&b, NULL);
fail:
    so_buf_free(&b);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* RouterBench wide CSV                                                 */

/* Shows a cell or value in an error message: quoted, cut at 40 bytes. */
static const char *s_quote(const char *s, char *buf, size_t len)
{
    size_t n = strlen(s);
    if (n > 40)
        snprintf(buf, len, "\"%.40s...\"", s);
    else
        snprintf(buf, len, "\"%s\"", s);
    return buf;
}

/* Parses a whole cell as a finite double (surrounding blanks allowed). */
static int s_parse_double(const char *s, double *out)
{
    while (isspace((unsigned char) *s))
        s++;
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno == ERANGE)
        return -1;
    while (isspace((unsigned char) *end))
        end++;
    if (*end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int s_blank(const char *s)
{
    while (isspace((unsigned char) *s))
        s++;
    return *s == '\0';
}

typedef struct {
    char *name;
    size_t corr_col, cost_col;
} s_rb_model_t;

/* One file being read: its columns, its models and one row's numbers. */
typedef struct {
    const char *path;
    so_csv_t *csv;
    size_t col_id, col_prompt, col_task;
    s_rb_model_t *models;
    size_t n_models;
    double *corr, *cost; /* [n_models], the current row */
} s_rb_t;

/* The header: the three named columns and the models (a column X, without
 * '|', for which "X|total_cost" exists). */
static int s_rb_header(s_rb_t *rb, char *err, size_t errlen)
{
    so_csv_t *csv = rb->csv;
    size_t ncols = so_csv_nfields(csv);
    so_map_t *cols = so_map_new(NULL);
    for (size_t i = 0; i < ncols; i++)
        if (!so_map_has(cols, so_csv_field(csv, i))) /* the first of a name counts */
            so_trace_idx_put(cols, so_csv_field(csv, i), i);
    int ret = -1;
    const char *missing = !so_trace_idx_get(cols, "sample_id", &rb->col_id)     ? "sample_id"
                          : !so_trace_idx_get(cols, "prompt", &rb->col_prompt)  ? "prompt"
                          : !so_trace_idx_get(cols, "eval_name", &rb->col_task) ? "eval_name"
                                                                                : NULL;
    if (missing) {
        so_err(err, errlen, "%s:1: header has no '%s' column (not a RouterBench file?)", rb->path,
               missing);
        goto done;
    }
    rb->models = so_calloc(ncols, sizeof *rb->models);
    so_buf_t key = SO_BUF_INIT;
    for (size_t i = 0; i < ncols; i++) {
        const char *h = so_csv_field(csv, i);
        if (!*h || strchr(h, '|') || i == rb->col_id || i == rb->col_prompt || i == rb->col_task)
            continue;
        so_buf_reset(&key);
        so_buf_appendf(&key, "%s|total_cost", h);
        size_t cc;
        if (!so_trace_idx_get(cols, so_buf_str(&key), &cc))
            continue;
        s_rb_model_t *m = &rb->models[rb->n_models++];
        m->name = so_strdup(h);
        m->corr_col = i;
        m->cost_col = cc;
    }
    so_buf_free(&key);
    if (rb->n_models == 0) {
        so_err(err, errlen, "%s:1: no model columns (a column X with a matching 'X|total_cost')",
               rb->path);
        goto done;
    }
    rb->corr = so_calloc(rb->n_models, sizeof *rb->corr);
    rb->cost = so_calloc(rb->n_models, sizeof *rb->cost);
    ret = 0;
done:
    so_map_destroy(&cols);
    return ret;
}

/* The current row's correctness and cost per model: 1 when read, 0 when a
 * cell is empty (the row is skipped), -1 on a malformed cell. */
static int s_rb_numbers(s_rb_t *rb, char *err, size_t errlen)
{
    char shown[64];
    size_t line = so_csv_row_line(rb->csv);
    for (size_t m = 0; m < rb->n_models; m++)
        if (s_blank(so_csv_field(rb->csv, rb->models[m].corr_col)) ||
            s_blank(so_csv_field(rb->csv, rb->models[m].cost_col)))
            return 0;
    for (size_t m = 0; m < rb->n_models; m++) {
        const char *cv = so_csv_field(rb->csv, rb->models[m].corr_col);
        const char *kv = so_csv_field(rb->csv, rb->models[m].cost_col);
        if (s_parse_double(cv, &rb->corr[m]) < 0 || rb->corr[m] < 0 || rb->corr[m] > 1)
            return so_err(err, errlen,
                          "%s:%zu: column '%s': expected a correctness in [0,1], got %s",
                          rb->path, line, rb->models[m].name, s_quote(cv, shown, sizeof shown));
        if (s_parse_double(kv, &rb->cost[m]) < 0 || rb->cost[m] < 0)
            return so_err(err, errlen,
                          "%s:%zu: column '%s|total_cost': expected a non-negative "
                          "number, got %s",
                          rb->path, line, rb->models[m].name, s_quote(kv, shown, sizeof shown));
    }
    return 1;
}

/* One usable row: an episode per model. */
static int s_rb_row(s_rb_t *rb, so_episodes_t *eps, char *err, size_t errlen)
{
    const char *sid = so_csv_field(rb->csv, rb->col_id);
    if (s_blank(sid))
        return so_err(err, errlen, "%s:%zu: column 'sample_id': empty", rb->path,
                      so_csv_row_line(rb->csv));
    const char *raw = so_csv_field(rb->csv, rb->col_prompt);
    char *prompt = so_pylist_text(raw);
    if (!prompt)
        prompt = so_strdup(raw);
    const char *task = so_csv_field(rb->csv, rb->col_task);
    so_buf_t id = SO_BUF_INIT;
    for (size_t m = 0; m < rb->n_models; m++) {
        so_episode_t ep = { .outcome = rb->corr[m] };
        so_buf_reset(&id);
        so_buf_appendf(&id, "%s/%s", sid, rb->models[m].name);
        ep.id = so_strdup(so_buf_str(&id));
        ep.query_id = so_strdup(sid);
        ep.task = so_strdup(task);
        ep.turns = so_calloc(1, sizeof *ep.turns);
        ep.n_turns = 1;
        so_trace_turn_unknown(&ep.turns[0]);
        ep.turns[0].mode = so_strdup("");
        ep.turns[0].agent = so_strdup(rb->models[m].name);
        ep.turns[0].prompt = so_strdup(prompt);
        ep.turns[0].cost_usd = rb->cost[m];
        ep.turns[0].score = rb->corr[m];
        so_episodes_push(eps, &ep);
    }
    so_buf_free(&id);
    free(prompt);
    return 0;
}

static void s_rb_free(s_rb_t *rb)
{
    for (size_t m = 0; m < rb->n_models; m++)
        free(rb->models[m].name);
    free(rb->models);
    free(rb->corr);
    free(rb->cost);
    so_csv_destroy(&rb->csv);
}

int so_episodes_read_routerbench(so_episodes_t *eps, const char *path, char *err, size_t errlen)
{
    memset(eps, 0, sizeof *eps);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return so_err(err, errlen, "%s: %s", path, strerror(errno));
    s_rb_t rb = { .path = path, .csv = so_csv_new_file(fp, path) };
    int ret = -1, rc = so_csv_next(rb.csv);
    if (rc <= 0) {
        if (rc == 0)
            so_err(err, errlen, "%s:1: empty file (expected a RouterBench header)", path);
        else
            so_err(err, errlen, "%s", so_csv_error(rb.csv));
        goto done;
    }
    if (s_rb_header(&rb, err, errlen) < 0)
        goto done;
    while ((rc = so_csv_next(rb.csv)) == 1) {
        int usable = s_rb_numbers(&rb, err, errlen);
        if (usable < 0 || (usable && s_rb_row(&rb, eps, err, errlen) < 0))
            goto done;
        if (!usable)
            eps->skipped++;
    }
    if (rc < 0) {
        so_err(err, errlen, "%s", so_csv_error(rb.csv));
        goto done;
    }
    ret = 0;
done:
    s_rb_free(&rb);
    fclose(fp);
    if (ret < 0)
        so_episodes_free(eps);
    return ret;
}
