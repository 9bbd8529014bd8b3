/*
 * so_trace — episodes (JSONL traces, RouterBench CSV, MT-bench) and the
 * per-query outcome table built from them.  See so_trace.h and
 * docs/TRACES.md for the formats and the import conventions.
 *
 * Every loader resets its output on entry and leaves it empty on error, so
 * a caller never frees a half-filled structure by hand.  Strings and arrays
 * are separate malloc(3) blocks, released by so_episodes_free() /
 * so_dataset_free().
 */
#include "offline/so_trace.h"
#include "offline/so_csv.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static int
s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Growable byte buffer, always NUL-terminated once anything was added. */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} s_buf_t;

static void
s_buf_add(s_buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1) {
            if (ncap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            ncap *= 2;
        }
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
s_buf_putc(s_buf_t *b, char c)
{
    s_buf_add(b, &c, 1);
}

static void
s_buf_utf8(s_buf_t *b, uint32_t cp)
{
    char u[4];
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        u[0] = (char)cp;
        s_buf_add(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        s_buf_add(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        s_buf_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        s_buf_add(b, u, 4);
    }
}

/* Takes the buffer's storage (an empty string if nothing was added);
 * NULL on OOM. */
static char *
s_buf_detach(s_buf_t *b)
{
    if (b->oom) {
        free(b->p);
        b->p = NULL;
        return NULL;
    }
    char *p = b->p ? b->p : strdup("");
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

static char *
s_strdup0(const char *s)
{
    return strdup(s ? s : "");
}

/* Shows a cell or value in an error message: quoted, cut at 40 bytes. */
static const char *
s_quote(const char *s, char *buf, size_t len)
{
    size_t n = strlen(s);
    if (n > 40)
        snprintf(buf, len, "\"%.40s...\"", s);
    else
        snprintf(buf, len, "\"%s\"", s);
    return buf;
}

/* Parses a whole cell as a finite double (surrounding blanks allowed). */
static int
s_parse_double(const char *s, double *out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno == ERANGE)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int
s_blank(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return *s == '\0';
}

/* Number of UTF-8 code points (continuation bytes are not counted). */
static size_t
s_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* ------------------------------------------------------------------ */
/* string → size_t hash map (open addressing, FNV-1a, owned keys)       */

typedef struct {
    char **keys;
    size_t *vals;
    size_t cap, n;
} s_map_t;

static uint64_t
s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void
s_map_free(s_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t *
s_map_get(const s_map_t *m, const char *key)
{
    if (!m->cap)
        return NULL;
    size_t i = (size_t)s_hash(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (strcmp(m->keys[i], key) == 0)
            return &m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

static int
s_map_rehash(s_map_t *m, size_t ncap)
{
    char **nk = calloc(ncap, sizeof *nk);
    size_t *nv = calloc(ncap, sizeof *nv);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return -1;
    }
    for (size_t j = 0; j < m->cap; j++) {
        if (!m->keys[j])
            continue;
        size_t i = (size_t)s_hash(m->keys[j]) & (ncap - 1);
        while (nk[i])
            i = (i + 1) & (ncap - 1);
        nk[i] = m->keys[j];
        nv[i] = m->vals[j];
    }
    free(m->keys);
    free(m->vals);
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
    return 0;
}

/* Inserts key → val unless the key exists.  Returns 1 inserted, 0 existed
 * (*existing set when non-NULL), -1 OOM. */
static int
s_map_put(s_map_t *m, const char *key, size_t val, size_t *existing)
{
    size_t *v = s_map_get(m, key);
    if (v) {
        if (existing)
            *existing = *v;
        return 0;
    }
    if ((m->n + 1) * 2 > m->cap && s_map_rehash(m, m->cap ? m->cap * 2 : 64) < 0)
        return -1;
    char *k = strdup(key);
    if (!k)
        return -1;
    size_t i = (size_t)s_hash(key) & (m->cap - 1);
    while (m->keys[i])
        i = (i + 1) & (m->cap - 1);
    m->keys[i] = k;
    m->vals[i] = val;
    m->n++;
    return 1;
}

/* ------------------------------------------------------------------ */
/* episodes                                                             */

static void
s_turn_clear(so_turn_t *t)
{
    free(t->mode);
    free(t->agent);
    free(t->prompt);
    memset(t, 0, sizeof *t);
}

static void
s_turn_unknown(so_turn_t *t)
{
    memset(t, 0, sizeof *t);
    t->prompt_tokens = t->completion_tokens = t->cost_usd = t->latency_s = t->score = NAN;
}

void
so_episode_clear(so_episode_t *ep)
{
    if (!ep)
        return;
    free(ep->id);
    free(ep->query_id);
    free(ep->task);
    for (size_t i = 0; i < ep->n_turns; i++)
        s_turn_clear(&ep->turns[i]);
    free(ep->turns);
    memset(ep, 0, sizeof *ep);
    ep->outcome = NAN;
}

void
so_episodes_free(so_episodes_t *eps)
{
    if (!eps)
        return;
    for (size_t i = 0; i < eps->n; i++)
        so_episode_clear(&eps->items[i]);
    free(eps->items);
    memset(eps, 0, sizeof *eps);
}

int
so_episodes_push(so_episodes_t *eps, so_episode_t *ep)
{
    if (eps->n == eps->cap) {
        size_t ncap = eps->cap ? eps->cap * 2 : 64;
        so_episode_t *ni = realloc(eps->items, ncap * sizeof *ni);
        if (!ni)
            return -1;
        eps->items = ni;
        eps->cap = ncap;
    }
    eps->items[eps->n++] = *ep;
    memset(ep, 0, sizeof *ep);
    ep->outcome = NAN;
    return 0;
}

int
so_episodes_concat(so_episodes_t *dst, so_episodes_t *src)
{
    if (dst->n + src->n > dst->cap) {
        size_t ncap = dst->cap ? dst->cap : 64;
        while (ncap < dst->n + src->n)
            ncap *= 2;
        so_episode_t *ni = realloc(dst->items, ncap * sizeof *ni);
        if (!ni)
            return -1;
        dst->items = ni;
        dst->cap = ncap;
    }
    if (src->n)
        memcpy(dst->items + dst->n, src->items, src->n * sizeof *src->items);
    dst->n += src->n;
    dst->skipped += src->skipped;
    free(src->items);
    memset(src, 0, sizeof *src);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Python list literal → text                                           */

static int
s_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int
s_hexn(const char *p, int n, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        int h = s_hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + (uint32_t)h;
    }
    *out = v;
    return 0;
}

/* Decodes one Python string literal at *pp (optional r/u/b prefix) into b.
 * Returns 0 and advances *pp past the closing quote, -1 if it is not one. */
static int
s_py_string(const char **pp, s_buf_t *b)
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
        return -1;              /* triple quotes: not produced by repr() */
    p++;
    uint32_t pending_hi = 0;    /* high surrogate waiting for its pair */
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
                s_buf_add(b, p, 2); /* raw: backslash kept, next char too */
                p += 2;
                continue;
            }
            if (pending_hi) {
                s_buf_utf8(b, 0xFFFD);
                pending_hi = 0;
            }
            s_buf_putc(b, c);
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
        case '\n': break;       /* line continuation */
        case '\\': cp = '\\'; have_cp = 1; break;
        case '\'': cp = '\''; have_cp = 1; break;
        case '"': cp = '"'; have_cp = 1; break;
        case 'a': cp = 7; have_cp = 1; break;
        case 'b': cp = 8; have_cp = 1; break;
        case 'f': cp = 12; have_cp = 1; break;
        case 'n': cp = '\n'; have_cp = 1; break;
        case 'r': cp = '\r'; have_cp = 1; break;
        case 't': cp = '\t'; have_cp = 1; break;
        case 'v': cp = 11; have_cp = 1; break;
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
                cp = (uint32_t)(e - '0');
                for (int i = 0; i < 2 && *p >= '0' && *p <= '7'; i++, p++)
                    cp = cp * 8 + (uint32_t)(*p - '0');
                have_cp = 1;
            } else {
                /* Python keeps unknown escapes as written */
                s_buf_putc(b, '\\');
                s_buf_putc(b, e);
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

static const char *
s_skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

char *
so_pylist_text(const char *s)
{
    if (!s)
        return NULL;
    s_buf_t b = { 0 };
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
            s_buf_putc(&b, '\n');
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
    return s_buf_detach(&b);
fail:
    free(b.p);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* JSON → episode                                                       */

/* Compact rendering of a JSON value for "got ..." in messages. */
static void
s_json_show(const json_t *v, char *buf, size_t len)
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

/* Optional string: absent or null → dflt (copied); else must be a string. */
static int
s_get_str(const json_t *obj, const char *key, const char *path, int required,
          const char *dflt, char **out, char *msg, size_t msglen)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return s_err(msg, msglen, "%s%s: missing required key", path, key);
        *out = dflt ? strdup(dflt) : NULL;
        if (dflt && !*out)
            return s_err(msg, msglen, "out of memory");
        return 0;
    }
    if (!json_is_string(v)) {
        char shown[96];
        s_json_show(v, shown, sizeof shown);
        return s_err(msg, msglen, "%s%s: expected a string, got %s", path, key, shown);
    }
    *out = strdup(json_string_value(v));
    return *out ? 0 : s_err(msg, msglen, "out of memory");
}

/* Optional number in [lo, hi]; absent or null → NAN. */
static int
s_get_num(const json_t *obj, const char *key, const char *path, double lo, double hi,
          const char *what, double *out, char *msg, size_t msglen)
{
    const json_t *v = json_object_get(obj, key);
    *out = NAN;
    if (!v || json_is_null(v))
        return 0;
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    if (!json_is_number(v) || !isfinite(d) || d < lo || d > hi) {
        char shown[96];
        s_json_show(v, shown, sizeof shown);
        return s_err(msg, msglen, "%s%s: expected %s, got %s", path, key, what, shown);
    }
    *out = d;
    return 0;
}

static int
s_turn_from_json(const json_t *o, size_t i, so_turn_t *t, char *msg, size_t msglen)
{
    char path[48];
    snprintf(path, sizeof path, "turns[%zu].", i);
    s_turn_unknown(t);
    if (!json_is_object(o)) {
        char shown[96];
        s_json_show(o, shown, sizeof shown);
        return s_err(msg, msglen, "turns[%zu]: expected an object, got %s", i, shown);
    }
    if (s_get_str(o, "agent", path, 1, NULL, &t->agent, msg, msglen) < 0
        || s_get_str(o, "prompt", path, 1, NULL, &t->prompt, msg, msglen) < 0
        || s_get_str(o, "mode", path, 0, "", &t->mode, msg, msglen) < 0)
        return -1;
    const char *nonneg = "a non-negative number";
    if (s_get_num(o, "prompt_tokens", path, 0, INFINITY, nonneg, &t->prompt_tokens, msg, msglen) < 0
        || s_get_num(o, "completion_tokens", path, 0, INFINITY, nonneg, &t->completion_tokens,
                     msg, msglen) < 0
        || s_get_num(o, "cost_usd", path, 0, INFINITY, nonneg, &t->cost_usd, msg, msglen) < 0
        || s_get_num(o, "latency_s", path, 0, INFINITY, nonneg, &t->latency_s, msg, msglen) < 0
        || s_get_num(o, "score", path, 0, 1, "a number in [0,1]", &t->score, msg, msglen) < 0)
        return -1;
    const json_t *succ = json_object_get(o, "success");
    if (succ && !json_is_null(succ)) {
        if (!json_is_boolean(succ)) {
            char shown[96];
            s_json_show(succ, shown, sizeof shown);
            return s_err(msg, msglen, "%ssuccess: expected true or false, got %s", path, shown);
        }
        if (isnan(t->score))
            t->score = json_is_true(succ) ? 1.0 : 0.0;
    }
    return 0;
}

/* Fills ep from a parsed object; msg gets "key: problem" on error. */
static int
s_episode_from_json(const json_t *root, so_episode_t *ep, char *msg, size_t msglen)
{
    memset(ep, 0, sizeof *ep);
    ep->outcome = NAN;
    if (!json_is_object(root)) {
        char shown[96];
        s_json_show(root, shown, sizeof shown);
        return s_err(msg, msglen, "expected a JSON object, got %s", shown);
    }
    if (s_get_str(root, "episode_id", "", 1, NULL, &ep->id, msg, msglen) < 0
        || s_get_str(root, "query_id", "", 0, ep->id, &ep->query_id, msg, msglen) < 0
        || s_get_str(root, "task", "", 0, "", &ep->task, msg, msglen) < 0
        || s_get_num(root, "outcome", "", 0, 1, "a number in [0,1] or null", &ep->outcome, msg,
                     msglen) < 0)
        goto fail;
    const json_t *turns = json_object_get(root, "turns");
    if (!turns) {
        s_err(msg, msglen, "turns: missing required key");
        goto fail;
    }
    if (!json_is_array(turns) || json_array_size(turns) == 0) {
        char shown[96];
        s_json_show(turns, shown, sizeof shown);
        s_err(msg, msglen, "turns: expected a non-empty array, got %s", shown);
        goto fail;
    }
    size_t n = json_array_size(turns);
    ep->turns = calloc(n, sizeof *ep->turns);
    if (!ep->turns) {
        s_err(msg, msglen, "out of memory");
        goto fail;
    }
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

int
so_episode_from_json(so_episode_t *ep, const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root) {
        memset(ep, 0, sizeof *ep);
        ep->outcome = NAN;
        return s_err(err, errlen, "invalid JSON at column %d: %s", jerr.column, jerr.text);
    }
    int rc = s_episode_from_json(root, ep, err, errlen);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ */
/* bounded line reader                                                  */

typedef struct {
    FILE *fp;
    const char *path;
    char *buf;
    size_t len, cap;
    size_t lineno;
    size_t max;
} s_lines_t;

/* 1 = a line in r->buf (without its line end), 0 = EOF, -1 = error. */
static int
s_next_line(s_lines_t *r, char *err, size_t errlen)
{
    r->len = 0;
    int c = getc_unlocked(r->fp);
    if (c == EOF) {
        if (ferror(r->fp))
            return s_err(err, errlen, "%s:%zu: read error: %s", r->path, r->lineno + 1,
                         strerror(errno));
        return 0;
    }
    r->lineno++;
    for (; c != EOF && c != '\n'; c = getc_unlocked(r->fp)) {
        if (r->len + 2 > r->cap) {
            if (r->cap >= r->max + 2)
                return s_err(err, errlen, "%s:%zu: line longer than the limit of %zu bytes",
                             r->path, r->lineno, r->max);
            size_t ncap = r->cap ? r->cap * 2 : 4096;
            if (ncap > r->max + 2)
                ncap = r->max + 2;
            char *nb = realloc(r->buf, ncap);
            if (!nb)
                return s_err(err, errlen, "%s:%zu: out of memory", r->path, r->lineno);
            r->buf = nb;
            r->cap = ncap;
        }
        r->buf[r->len++] = (char)c;
    }
    if (ferror(r->fp))
        return s_err(err, errlen, "%s:%zu: read error: %s", r->path, r->lineno, strerror(errno));
    if (r->len && r->buf[r->len - 1] == '\r')
        r->len--;
    if (!r->buf) {
        r->buf = malloc(1);
        if (!r->buf)
            return s_err(err, errlen, "out of memory");
        r->cap = 1;
    }
    r->buf[r->len] = '\0';
    return 1;
}

static int
s_line_blank(const s_lines_t *r)
{
    for (size_t i = 0; i < r->len; i++)
        if (!isspace((unsigned char)r->buf[i]))
            return 0;
    return 1;
}

/* Parses the current line as JSON; NULL with a message on error. */
static json_t *
s_line_json(const s_lines_t *r, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->buf, r->len, 0, &jerr);
    if (!root)
        s_err(err, errlen, "%s:%zu: invalid JSON at column %d: %s", r->path, r->lineno,
              jerr.column, jerr.text);
    return root;
}

/* ------------------------------------------------------------------ */
/* JSONL traces                                                         */

int
so_episodes_read_jsonl(so_episodes_t *eps, const char *path, char *err, size_t errlen)
{
    memset(eps, 0, sizeof *eps);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return s_err(err, errlen, "%s: %s", path, strerror(errno));
    s_lines_t r = { .fp = fp, .path = path, .max = SO_TRACE_MAX_LINE };
    s_map_t ids = { 0 };
    so_episode_t ep;
    char msg[512];
    int rc, ret = -1;
    while ((rc = s_next_line(&r, err, errlen)) == 1) {
        if (s_line_blank(&r))
            continue;
        json_t *root = s_line_json(&r, err, errlen);
        if (!root)
            goto done;
        rc = s_episode_from_json(root, &ep, msg, sizeof msg);
        json_decref(root);
        if (rc < 0) {
            s_err(err, errlen, "%s:%zu: %s", path, r.lineno, msg);
            goto done;
        }
        size_t first = 0;
        rc = s_map_put(&ids, ep.id, r.lineno, &first);
        if (rc == 0) {
            s_err(err, errlen, "%s:%zu: episode_id: \"%s\" already used on line %zu", path,
                  r.lineno, ep.id, first);
            so_episode_clear(&ep);
            goto done;
        }
        if (rc < 0 || so_episodes_push(eps, &ep) < 0) {
            so_episode_clear(&ep);
            s_err(err, errlen, "%s:%zu: out of memory", path, r.lineno);
            goto done;
        }
    }
    if (rc == 0)
        ret = 0;
done:
    s_map_free(&ids);
    free(r.buf);
    fclose(fp);
    if (ret < 0)
        so_episodes_free(eps);
    return ret;
}

/* JSON string with escapes; invalid UTF-8 bytes become U+FFFD so that the
 * output always parses. */
static void
s_write_str(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    putc('"', out);
    while (*p) {
        unsigned char c = *p;
        size_t run = 0;         /* plain printable ASCII goes out in one call */
        while (p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
            run++;
        if (run) {
            fwrite(p, 1, run, out);
            p += run;
            continue;
        }
        if (c < 0x80) {
            switch (c) {
            case '"': fputs("\\\"", out); break;
            case '\\': fputs("\\\\", out); break;
            case '\n': fputs("\\n", out); break;
            case '\r': fputs("\\r", out); break;
            case '\t': fputs("\\t", out); break;
            case '\b': fputs("\\b", out); break;
            case '\f': fputs("\\f", out); break;
            default:
                if (c < 0x20 || c == 0x7f)
                    fprintf(out, "\\u%04x", c);
                else
                    putc(c, out);
            }
            p++;
            continue;
        }
        /* validate one UTF-8 sequence */
        size_t n = 0;
        uint32_t cp = 0, min = 0;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2; cp = c & 0x1F; min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3; cp = c & 0x0F; min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4; cp = c & 0x07; min = 0x10000;
        }
        size_t k = 1;
        for (; n && k < n; k++) {
            if ((p[k] & 0xC0) != 0x80)
                break;
            cp = (cp << 6) | (p[k] & 0x3F);
        }
        if (n == 0 || k < n || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            fputs("\\ufffd", out);
            p++;
            continue;
        }
        fwrite(p, 1, n, out);
        p += n;
    }
    putc('"', out);
}

/* Shortest decimal that reads back as the same double; null if not finite. */
static void
s_write_num(FILE *out, double v)
{
    if (!isfinite(v)) {
        fputs("null", out);
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        fprintf(out, "%.0f", v);
        return;
    }
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, out);
}

static void
s_write_opt_num(FILE *out, const char *key, double v)
{
    if (isnan(v))
        return;
    fprintf(out, ",\"%s\":", key);
    s_write_num(out, v);
}

int
so_episode_write_json(const so_episode_t *ep, FILE *out)
{
    fputs("{\"episode_id\":", out);
    s_write_str(out, ep->id ? ep->id : "");
    fputs(",\"query_id\":", out);
    s_write_str(out, ep->query_id ? ep->query_id : (ep->id ? ep->id : ""));
    if (ep->task && *ep->task) {
        fputs(",\"task\":", out);
        s_write_str(out, ep->task);
    }
    fputs(",\"outcome\":", out);
    s_write_num(out, ep->outcome);
    fputs(",\"turns\":[", out);
    for (size_t i = 0; i < ep->n_turns; i++) {
        const so_turn_t *t = &ep->turns[i];
        fputs(i ? ",{\"mode\":" : "{\"mode\":", out);
        s_write_str(out, t->mode ? t->mode : "");
        fputs(",\"agent\":", out);
        s_write_str(out, t->agent ? t->agent : "");
        fputs(",\"prompt\":", out);
        s_write_str(out, t->prompt ? t->prompt : "");
        s_write_opt_num(out, "prompt_tokens", t->prompt_tokens);
        s_write_opt_num(out, "completion_tokens", t->completion_tokens);
        s_write_opt_num(out, "cost_usd", t->cost_usd);
        s_write_opt_num(out, "latency_s", t->latency_s);
        fputs(",\"score\":", out);
        s_write_num(out, t->score);
        putc('}', out);
    }
    fputs("]}\n", out);
    return ferror(out) ? -1 : 0;
}

char *
so_episode_to_json(const so_episode_t *ep)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        return NULL;
    int rc = so_episode_write_json(ep, mem);
    if (fclose(mem) != 0 || rc < 0) {
        free(buf);
        return NULL;
    }
    if (len && buf[len - 1] == '\n')
        buf[len - 1] = '\0';
    return buf;
}

int
so_episodes_write_jsonl(const so_episodes_t *eps, FILE *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < eps->n; i++)
        if (so_episode_write_json(&eps->items[i], out) < 0)
            return s_err(err, errlen, "write error after %zu episodes: %s", i, strerror(errno));
    if (fflush(out) != 0 || ferror(out))
        return s_err(err, errlen, "write error: %s", strerror(errno));
    return 0;
}

/* ------------------------------------------------------------------ */
/* RouterBench wide CSV                                                 */

typedef struct {
    char *name;
    size_t corr_col, cost_col;
} s_rb_model_t;

int
so_episodes_read_routerbench(so_episodes_t *eps, const char *path, char *err, size_t errlen)
{
    memset(eps, 0, sizeof *eps);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return s_err(err, errlen, "%s: %s", path, strerror(errno));
    so_csv_t *csv = so_csv_new_file(fp, path);
    s_map_t cols = { 0 };
    s_rb_model_t *models = NULL;
    size_t n_models = 0;
    double *corr = NULL, *cost = NULL;
    char *prompt = NULL;
    int ret = -1, rc;
    char shown[64];

    if (!csv) {
        s_err(err, errlen, "%s: out of memory", path);
        goto done;
    }
    rc = so_csv_next(csv);
    if (rc <= 0) {
        if (rc == 0)
            s_err(err, errlen, "%s:1: empty file (expected a RouterBench header)", path);
        else
            s_err(err, errlen, "%s", so_csv_error(csv));
        goto done;
    }
    size_t ncols = so_csv_nfields(csv);
    for (size_t i = 0; i < ncols; i++) {
        if (s_map_put(&cols, so_csv_field(csv, i), i, NULL) < 0) {
            s_err(err, errlen, "%s: out of memory", path);
            goto done;
        }
    }
    size_t *c_id = s_map_get(&cols, "sample_id");
    size_t *c_prompt = s_map_get(&cols, "prompt");
    size_t *c_task = s_map_get(&cols, "eval_name");
    const char *missing = !c_id ? "sample_id" : !c_prompt ? "prompt" : !c_task ? "eval_name" : NULL;
    if (missing) {
        s_err(err, errlen, "%s:1: header has no '%s' column (not a RouterBench file?)", path,
              missing);
        goto done;
    }
    size_t col_id = *c_id, col_prompt = *c_prompt, col_task = *c_task;
    models = calloc(ncols, sizeof *models);
    if (!models) {
        s_err(err, errlen, "%s: out of memory", path);
        goto done;
    }
    /* a model is a column X (no '|') for which "X|total_cost" exists */
    for (size_t i = 0; i < ncols; i++) {
        const char *h = so_csv_field(csv, i);
        if (!*h || strchr(h, '|') || i == col_id || i == col_prompt || i == col_task)
            continue;
        size_t hl = strlen(h);
        char *key = malloc(hl + sizeof "|total_cost");
        if (!key) {
            s_err(err, errlen, "%s: out of memory", path);
            goto done;
        }
        memcpy(key, h, hl);
        memcpy(key + hl, "|total_cost", sizeof "|total_cost");
        size_t *cc = s_map_get(&cols, key);
        free(key);
        if (!cc)
            continue;
        models[n_models].name = strdup(h);
        if (!models[n_models].name) {
            s_err(err, errlen, "%s: out of memory", path);
            goto done;
        }
        models[n_models].corr_col = i;
        models[n_models].cost_col = *cc;
        n_models++;
    }
    if (n_models == 0) {
        s_err(err, errlen, "%s:1: no model columns (a column X with a matching 'X|total_cost')",
              path);
        goto done;
    }
    corr = calloc(n_models, sizeof *corr);
    cost = calloc(n_models, sizeof *cost);
    if (!corr || !cost) {
        s_err(err, errlen, "%s: out of memory", path);
        goto done;
    }

    while ((rc = so_csv_next(csv)) == 1) {
        size_t line = so_csv_row_line(csv);
        int unusable = 0;
        for (size_t m = 0; m < n_models && !unusable; m++)
            if (s_blank(so_csv_field(csv, models[m].corr_col))
                || s_blank(so_csv_field(csv, models[m].cost_col)))
                unusable = 1;
        if (unusable) {
            eps->skipped++;
            continue;
        }
        for (size_t m = 0; m < n_models; m++) {
            const char *cv = so_csv_field(csv, models[m].corr_col);
            const char *kv = so_csv_field(csv, models[m].cost_col);
            if (s_parse_double(cv, &corr[m]) < 0 || corr[m] < 0 || corr[m] > 1) {
                s_err(err, errlen, "%s:%zu: column '%s': expected a correctness in [0,1], got %s",
                      path, line, models[m].name, s_quote(cv, shown, sizeof shown));
                goto done;
            }
            if (s_parse_double(kv, &cost[m]) < 0 || cost[m] < 0) {
                s_err(err, errlen, "%s:%zu: column '%s|total_cost': expected a non-negative "
                      "number, got %s", path, line, models[m].name,
                      s_quote(kv, shown, sizeof shown));
                goto done;
            }
        }
        const char *sid = so_csv_field(csv, col_id);
        if (s_blank(sid)) {
            s_err(err, errlen, "%s:%zu: column 'sample_id': empty", path, line);
            goto done;
        }
        const char *raw = so_csv_field(csv, col_prompt);
        prompt = so_pylist_text(raw);
        if (!prompt)
            prompt = strdup(raw);
        if (!prompt) {
            s_err(err, errlen, "%s: out of memory", path);
            goto done;
        }
        const char *task = so_csv_field(csv, col_task);
        size_t sidl = strlen(sid);
        for (size_t m = 0; m < n_models; m++) {
            so_episode_t ep = { .outcome = corr[m] };
            size_t ml = strlen(models[m].name);
            ep.id = malloc(sidl + ml + 2);
            ep.query_id = strdup(sid);
            ep.task = strdup(task);
            ep.turns = calloc(1, sizeof *ep.turns);
            if (ep.turns) {
                ep.n_turns = 1;
                s_turn_unknown(&ep.turns[0]);
                ep.turns[0].mode = strdup("");
                ep.turns[0].agent = strdup(models[m].name);
                ep.turns[0].prompt = strdup(prompt);
                ep.turns[0].cost_usd = cost[m];
                ep.turns[0].score = corr[m];
            }
            if (ep.id) {
                memcpy(ep.id, sid, sidl);
                ep.id[sidl] = '/';
                memcpy(ep.id + sidl + 1, models[m].name, ml + 1);
            }
            if (!ep.id || !ep.query_id || !ep.task || !ep.turns || !ep.turns[0].mode
                || !ep.turns[0].agent || !ep.turns[0].prompt || so_episodes_push(eps, &ep) < 0) {
                so_episode_clear(&ep);
                s_err(err, errlen, "%s: out of memory", path);
                goto done;
            }
        }
        free(prompt);
        prompt = NULL;
    }
    if (rc < 0) {
        s_err(err, errlen, "%s", so_csv_error(csv));
        goto done;
    }
    ret = 0;
done:
    free(prompt);
    free(corr);
    free(cost);
    for (size_t m = 0; m < n_models; m++)
        free(models[m].name);
    free(models);
    s_map_free(&cols);
    so_csv_destroy(&csv);
    fclose(fp);
    if (ret < 0)
        so_episodes_free(eps);
    return ret;
}

/* ------------------------------------------------------------------ */
/* MT-bench                                                             */

int
so_trace_list_price(const char *model, double *usd_in_per_mtok, double *usd_out_per_mtok)
{
    static const struct {
        const char *model;
        double in, out;
    } prices[] = {
        { "gpt-4-1106-preview", 10.0, 30.0 },
        { "mistralai/Mixtral-8x7B-Instruct-v0.1", 0.6, 0.6 },
    };
    for (size_t i = 0; i < sizeof prices / sizeof prices[0]; i++) {
        if (strcmp(prices[i].model, model) == 0) {
            *usd_in_per_mtok = prices[i].in;
            *usd_out_per_mtok = prices[i].out;
            return 0;
        }
    }
    return -1;
}

#define S_MT_MAX_TURNS 64

typedef struct {
    char *qid;
    char *category;
    char **turns;
    size_t n_turns;
} s_mt_question_t;

typedef struct {
    size_t q, m, n_turns;
    double *score;      /* [n_turns] judge score / 10 */
    int *state;         /* [n_turns] 0 missing, 1 valid, 2 invalid score */
    char **answer;      /* [n_turns] recovered answers, NULL if unknown */
} s_mt_pair_t;

typedef struct {
    s_mt_question_t *qs;
    size_t n_qs, cap_qs;
    s_map_t qmap;       /* qid → index into qs */
    char **models;      /* in order of first appearance */
    size_t n_models, cap_models;
    s_map_t mmap;
    s_mt_pair_t *pairs;
    size_t n_pairs, cap_pairs;
    s_map_t pmap;       /* "q\x1fm" → index into pairs */
    size_t skipped;
} s_mt_t;

static void
s_mt_free(s_mt_t *mt)
{
    for (size_t i = 0; i < mt->n_qs; i++) {
        free(mt->qs[i].qid);
        free(mt->qs[i].category);
        for (size_t t = 0; t < mt->qs[i].n_turns; t++)
            free(mt->qs[i].turns[t]);
        free(mt->qs[i].turns);
    }
    free(mt->qs);
    for (size_t i = 0; i < mt->n_models; i++)
        free(mt->models[i]);
    free(mt->models);
    for (size_t i = 0; i < mt->n_pairs; i++) {
        s_mt_pair_t *p = &mt->pairs[i];
        for (size_t t = 0; t < p->n_turns; t++)
            free(p->answer[t]);
        free(p->answer);
        free(p->score);
        free(p->state);
    }
    free(mt->pairs);
    s_map_free(&mt->qmap);
    s_map_free(&mt->mmap);
    s_map_free(&mt->pmap);
}

/* An id given as a JSON integer or string, as a string in buf. */
static int
s_id_string(const json_t *v, char *buf, size_t len)
{
    if (json_is_integer(v)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < len) {
        snprintf(buf, len, "%s", json_string_value(v));
        return 0;
    }
    return -1;
}

static int
s_grow_array(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

static int
s_mt_read_questions(s_mt_t *mt, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return s_err(err, errlen, "%s: %s", path, strerror(errno));
    s_lines_t r = { .fp = fp, .path = path, .max = SO_TRACE_MAX_LINE };
    int rc, ret = -1;
    char shown[96], qid[128];
    while ((rc = s_next_line(&r, err, errlen)) == 1) {
        if (s_line_blank(&r))
            continue;
        json_t *root = s_line_json(&r, err, errlen);
        if (!root)
            goto done;
        const json_t *v = json_object_get(root, "question_id");
        if (!json_is_object(root) || !v || s_id_string(v, qid, sizeof qid) < 0) {
            s_json_show(json_is_object(root) ? v : root, shown, sizeof shown);
            s_err(err, errlen, "%s:%zu: question_id: expected an integer or a string, got %s",
                  path, r.lineno, shown);
            json_decref(root);
            goto done;
        }
        const json_t *cat = json_object_get(root, "category");
        if (cat && !json_is_string(cat) && !json_is_null(cat)) {
            s_json_show(cat, shown, sizeof shown);
            s_err(err, errlen, "%s:%zu: category: expected a string, got %s", path, r.lineno,
                  shown);
            json_decref(root);
            goto done;
        }
        const json_t *turns = json_object_get(root, "turns");
        size_t nt = json_is_array(turns) ? json_array_size(turns) : 0;
        int turns_ok = nt > 0 && nt <= S_MT_MAX_TURNS;
        for (size_t t = 0; turns_ok && t < nt; t++)
            if (!json_is_string(json_array_get(turns, t)))
                turns_ok = 0;
        if (!turns_ok) {
            s_json_show(turns, shown, sizeof shown);
            s_err(err, errlen, "%s:%zu: turns: expected 1 to %d strings, got %s", path, r.lineno,
                  S_MT_MAX_TURNS, shown);
            json_decref(root);
            goto done;
        }
        size_t first = 0;
        rc = s_map_put(&mt->qmap, qid, mt->n_qs, &first);
        if (rc == 0) {
            s_err(err, errlen, "%s:%zu: question_id: %s repeats an earlier question", path,
                  r.lineno, qid);
            json_decref(root);
            goto done;
        }
        if (rc < 0 || s_grow_array((void **)&mt->qs, &mt->cap_qs, mt->n_qs, sizeof *mt->qs) < 0) {
            s_err(err, errlen, "%s: out of memory", path);
            json_decref(root);
            goto done;
        }
        s_mt_question_t *q = &mt->qs[mt->n_qs++];
        memset(q, 0, sizeof *q);
        q->qid = strdup(qid);
        q->category = s_strdup0(json_is_string(cat) ? json_string_value(cat) : "");
        q->turns = calloc(nt, sizeof *q->turns);
        int oom = !q->qid || !q->category || !q->turns;
        if (q->turns) {
            q->n_turns = nt;
            for (size_t t = 0; t < nt; t++)
                if (!(q->turns[t] = strdup(json_string_value(json_array_get(turns, t)))))
                    oom = 1;
        }
        json_decref(root);
        if (oom) {
            s_err(err, errlen, "%s: out of memory", path);
            goto done;
        }
    }
    if (rc == 0)
        ret = 0;
done:
    free(r.buf);
    fclose(fp);
    return ret;
}

static char *
s_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static const char *
s_find_last(const char *hay, const char *needle)
{
    const char *last = NULL, *p = hay;
    while ((p = strstr(p, needle)) != NULL)
        last = p++;
    return last;
}

/* Recovers the assistant's answers to turns 1..turn from the judge's
 * prompt (FastChat's templates): single-turn prompts hold the answer
 * between "[The Start of Assistant's Answer]" and "[The End of ...]";
 * multi-turn prompts hold the whole conversation between
 * "<|The Start of Assistant A's Conversation with User|>" and its end
 * marker as "### User:" / "### Assistant A:" sections.  Question texts
 * anchor the section boundaries so that an answer quoting "### User:" does
 * not cut it short.  Unrecovered answers stay NULL. */
static void
s_mt_recover(const char *up, const s_mt_question_t *q, size_t turn, char **answers)
{
    static const char a_start[] = "[The Start of Assistant's Answer]\n";
    static const char a_end[] = "\n[The End of Assistant's Answer]";
    static const char c_start[] = "<|The Start of Assistant A's Conversation with User|>";
    static const char c_end[] = "\n\n<|The End of Assistant A's Conversation with User|>";
    static const char user[] = "\n\n### User:\n";
    static const char asst[] = "\n\n### Assistant A:\n";

    const char *c = strstr(up, c_start);
    if (!c) {
        if (turn != 1)
            return;
        const char *a = strstr(up, a_start);
        if (!a)
            return;
        a += sizeof a_start - 1;
        const char *e = s_find_last(a, a_end);
        if (e)
            answers[0] = s_strndup(a, (size_t)(e - a));
        return;
    }
    const char *end = s_find_last(c, c_end);
    if (!end)
        return;
    const char *pos = c;
    for (size_t k = 0; k < turn; k++) {
        const char *a = strstr(pos, asst);
        if (!a || a >= end)
            return;
        a += sizeof asst - 1;
        const char *e = end;
        if (k + 1 < turn) {
            const char *next = q->turns[k + 1];
            size_t nl = strlen(next);
            char *marker = malloc(sizeof user + nl);
            if (!marker)
                return;
            memcpy(marker, user, sizeof user - 1);
            memcpy(marker + sizeof user - 1, next, nl + 1);
            e = strstr(a, marker);
            free(marker);
            if (!e || e > end)
                e = strstr(a, user);
            if (!e || e > end)
                return;
        }
        answers[k] = s_strndup(a, (size_t)(e - a));
        pos = e;
    }
}

static int
s_mt_read_judgements(s_mt_t *mt, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return s_err(err, errlen, "%s: %s", path, strerror(errno));
    s_lines_t r = { .fp = fp, .path = path, .max = SO_TRACE_MAX_LINE };
    int rc, ret = -1;
    char shown[96], qid[128], key[64];
    json_t *root = NULL;
    char **answers = NULL;
    while ((rc = s_next_line(&r, err, errlen)) == 1) {
        if (s_line_blank(&r))
            continue;
        root = s_line_json(&r, err, errlen);
        if (!root)
            goto done;
        if (!json_is_object(root)) {
            s_json_show(root, shown, sizeof shown);
            s_err(err, errlen, "%s:%zu: expected a JSON object, got %s", path, r.lineno, shown);
            goto done;
        }
        const json_t *v_q = json_object_get(root, "question_id");
        const json_t *v_m = json_object_get(root, "model");
        const json_t *v_t = json_object_get(root, "turn");
        const json_t *v_s = json_object_get(root, "score");
        const json_t *v_u = json_object_get(root, "user_prompt");
        const char *bad = NULL, *want = NULL;
        const json_t *badv = NULL;
        if (!v_q || s_id_string(v_q, qid, sizeof qid) < 0)
            bad = "question_id", want = "an integer or a string", badv = v_q;
        else if (!json_is_string(v_m) || json_string_length(v_m) == 0)
            bad = "model", want = "a non-empty string", badv = v_m;
        else if (!json_is_integer(v_t) || json_integer_value(v_t) < 1)
            bad = "turn", want = "an integer >= 1", badv = v_t;
        else if (!json_is_number(v_s))
            bad = "score", want = "a number", badv = v_s;
        else if (v_u && !json_is_string(v_u) && !json_is_null(v_u))
            bad = "user_prompt", want = "a string", badv = v_u;
        if (bad) {
            s_json_show(badv, shown, sizeof shown);
            s_err(err, errlen, "%s:%zu: %s: expected %s, got %s", path, r.lineno, bad, want,
                  shown);
            goto done;
        }
        size_t *qi = s_map_get(&mt->qmap, qid);
        json_int_t turn = json_integer_value(v_t);
        if (!qi || (size_t)turn > mt->qs[*qi].n_turns) {
            mt->skipped++;      /* judges a question (or turn) we do not have */
            json_decref(root);
            root = NULL;
            continue;
        }
        const s_mt_question_t *q = &mt->qs[*qi];
        const char *model = json_string_value(v_m);
        size_t mi = mt->n_models;
        rc = s_map_put(&mt->mmap, model, mi, &mi);
        if (rc < 0)
            goto oom;
        if (rc == 1) {
            if (s_grow_array((void **)&mt->models, &mt->cap_models, mt->n_models,
                             sizeof *mt->models) < 0
                || !(mt->models[mt->n_models] = strdup(model)))
                goto oom;
            mt->n_models++;
        }
        snprintf(key, sizeof key, "%zu\x1f%zu", *qi, mi);
        size_t pi = mt->n_pairs;
        rc = s_map_put(&mt->pmap, key, pi, &pi);
        if (rc < 0)
            goto oom;
        if (rc == 1) {
            if (s_grow_array((void **)&mt->pairs, &mt->cap_pairs, mt->n_pairs, sizeof *mt->pairs)
                < 0)
                goto oom;
            s_mt_pair_t *p = &mt->pairs[mt->n_pairs++];
            memset(p, 0, sizeof *p);
            p->q = *qi;
            p->m = mi;
            p->score = calloc(q->n_turns, sizeof *p->score);
            p->state = calloc(q->n_turns, sizeof *p->state);
            p->answer = calloc(q->n_turns, sizeof *p->answer);
            if (!p->score || !p->state || !p->answer)
                goto oom;
            p->n_turns = q->n_turns;
        }
        s_mt_pair_t *p = &mt->pairs[pi];
        size_t t = (size_t)turn - 1;
        if (p->state[t] == 0) { /* the first judgement of a turn wins */
            double sc = json_number_value(v_s);
            p->state[t] = (sc >= 1 && sc <= 10) ? 1 : 2;
            p->score[t] = sc / 10.0;
        }
        if (json_is_string(v_u)) {
            answers = calloc((size_t)turn, sizeof *answers);
            if (!answers)
                goto oom;
            s_mt_recover(json_string_value(v_u), q, (size_t)turn, answers);
            for (size_t k = 0; k < (size_t)turn; k++) {
                if (!p->answer[k])
                    p->answer[k] = answers[k];
                else
                    free(answers[k]);
            }
            free(answers);
            answers = NULL;
        }
        json_decref(root);
        root = NULL;
    }
    if (rc == 0)
        ret = 0;
    goto done;
oom:
    s_err(err, errlen, "%s:%zu: out of memory", path, r.lineno);
done:
    free(answers);
    json_decref(root);
    free(r.buf);
    fclose(fp);
    return ret;
}

static double
s_tokens(size_t chars)
{
    return (double)((chars + 3) / 4);
}

int
so_episodes_read_mtbench(so_episodes_t *eps, const char *dir, char *err, size_t errlen)
{
    memset(eps, 0, sizeof *eps);
    s_mt_t mt = { 0 };
    size_t dl = strlen(dir);
    char *qpath = malloc(dl + sizeof "/judgements.jsonl");
    char *jpath = malloc(dl + sizeof "/judgements.jsonl");
    int ret = -1;
    if (!qpath || !jpath) {
        s_err(err, errlen, "out of memory");
        goto done;
    }
    snprintf(qpath, dl + sizeof "/judgements.jsonl", "%s/question.jsonl", dir);
    snprintf(jpath, dl + sizeof "/judgements.jsonl", "%s/judgements.jsonl", dir);
    if (s_mt_read_questions(&mt, qpath, err, errlen) < 0
        || s_mt_read_judgements(&mt, jpath, err, errlen) < 0)
        goto done;
    eps->skipped = mt.skipped;
    for (size_t qi = 0; qi < mt.n_qs; qi++) {
        const s_mt_question_t *q = &mt.qs[qi];
        for (size_t mi = 0; mi < mt.n_models; mi++) {
            char key[64];
            snprintf(key, sizeof key, "%zu\x1f%zu", qi, mi);
            size_t *pi = s_map_get(&mt.pmap, key);
            const s_mt_pair_t *p = pi ? &mt.pairs[*pi] : NULL;
            int usable = p != NULL;
            for (size_t t = 0; usable && t < q->n_turns; t++)
                if (p->state[t] != 1)
                    usable = 0;
            if (!usable) {
                eps->skipped++;
                continue;
            }
            const char *model = mt.models[mi];
            double pin = NAN, pout = NAN;
            if (so_trace_list_price(model, &pin, &pout) < 0)
                pin = pout = NAN;
            so_episode_t ep = { .outcome = 0 };
            size_t il = strlen(q->qid), ml = strlen(model);
            ep.id = malloc(il + ml + 2);
            if (ep.id)
                snprintf(ep.id, il + ml + 2, "%s/%s", q->qid, model);
            ep.query_id = strdup(q->qid);
            ep.task = strdup(q->category);
            ep.turns = calloc(q->n_turns, sizeof *ep.turns);
            int oom = !ep.id || !ep.query_id || !ep.task || !ep.turns;
            size_t context = 0;  /* characters of earlier turns */
            for (size_t t = 0; !oom && t < q->n_turns; t++) {
                so_turn_t *tu = &ep.turns[t];
                ep.n_turns = t + 1;
                s_turn_unknown(tu);
                tu->mode = strdup("");
                tu->agent = strdup(model);
                tu->prompt = strdup(q->turns[t]);
                oom = !tu->mode || !tu->agent || !tu->prompt;
                size_t qc = s_utf8_chars(q->turns[t]);
                tu->prompt_tokens = s_tokens(context + qc);
                tu->completion_tokens = p->answer[t] ? s_tokens(s_utf8_chars(p->answer[t]))
                                                     : SO_MTBENCH_COMPLETION_TOKENS;
                tu->cost_usd = (tu->prompt_tokens * pin + tu->completion_tokens * pout) / 1e6;
                tu->score = p->score[t];
                ep.outcome += p->score[t];
                context += qc + (p->answer[t] ? s_utf8_chars(p->answer[t]) : 0);
            }
            if (!oom)
                ep.outcome /= (double)q->n_turns;
            if (oom || so_episodes_push(eps, &ep) < 0) {
                so_episode_clear(&ep);
                s_err(err, errlen, "out of memory");
                goto done;
            }
        }
    }
    ret = 0;
done:
    s_mt_free(&mt);
    free(qpath);
    free(jpath);
    if (ret < 0)
        so_episodes_free(eps);
    return ret;
}

/* ------------------------------------------------------------------ */
/* dispatch                                                             */

int
so_episodes_read_any(so_episodes_t *eps, const char *path, char *err, size_t errlen)
{
    struct stat st;
    memset(eps, 0, sizeof *eps);
    if (stat(path, &st) != 0)
        return s_err(err, errlen, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return so_episodes_read_mtbench(eps, path, err, errlen);
    size_t n = strlen(path);
    if (n >= 4 && strcasecmp(path + n - 4, ".csv") == 0)
        return so_episodes_read_routerbench(eps, path, err, errlen);
    return so_episodes_read_jsonl(eps, path, err, errlen);
}

/* ------------------------------------------------------------------ */
/* dataset                                                              */

static void
s_sample_free(so_sample_t *s)
{
    free(s->query_id);
    free(s->task);
    free(s->mode);
    free(s->prompt);
    free(s->score);
    free(s->cost);
    free(s->prompt_tokens);
    free(s->completion_tokens);
    free(s->latency);
    memset(s, 0, sizeof *s);
}

void
so_dataset_free(so_dataset_t *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; i < ds->n_agents; i++)
        free(ds->agents[i]);
    free(ds->agents);
    for (size_t i = 0; i < ds->n_samples; i++)
        s_sample_free(&ds->samples[i]);
    free(ds->samples);
    memset(ds, 0, sizeof *ds);
}

static int
s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
so_dataset_agent_index(const so_dataset_t *ds, const char *agent)
{
    if (!ds || !agent || !ds->n_agents)
        return -1;
    char *const *hit = bsearch(&agent, ds->agents, ds->n_agents, sizeof *ds->agents, s_cmp_str);
    return hit ? (int)(hit - ds->agents) : -1;
}

static double *
s_nan_array(size_t n)
{
    double *a = malloc((n ? n : 1) * sizeof *a);
    if (a)
        for (size_t i = 0; i < n; i++)
            a[i] = NAN;
    return a;
}

/* Why a hash table: RouterBench alone gives ~35k episodes over ~3k
 * queries; a linear scan per episode would be quadratic.  Samples are keyed
 * on "query_id \x1f turn" and appended in order of first appearance. */
int
so_dataset_from_episodes(so_dataset_t *ds, const so_episodes_t *eps, char *err, size_t errlen)
{
    memset(ds, 0, sizeof *ds);
    s_map_t agents = { 0 }, keys = { 0 };
    size_t cap_samples = 0;
    unsigned char *filled = NULL; /* [sample * n_agents]: a record was taken */
    size_t cap_filled = 0;
    s_buf_t key = { 0 };
    int ret = -1;

    /* sorted unique agents */
    for (size_t e = 0; e < eps->n; e++) {
        const so_episode_t *ep = &eps->items[e];
        for (size_t t = 0; t < ep->n_turns; t++) {
            const char *a = ep->turns[t].agent ? ep->turns[t].agent : "";
            int rc = s_map_put(&agents, a, 0, NULL);
            if (rc < 0)
                goto oom;
        }
    }
    ds->agents = calloc(agents.n ? agents.n : 1, sizeof *ds->agents);
    if (!ds->agents)
        goto oom;
    for (size_t i = 0; i < agents.cap; i++) {
        if (!agents.keys[i])
            continue;
        ds->agents[ds->n_agents++] = agents.keys[i];
        agents.keys[i] = NULL;  /* ownership moves to the dataset */
    }
    s_map_free(&agents);
    qsort(ds->agents, ds->n_agents, sizeof *ds->agents, s_cmp_str);
    size_t na = ds->n_agents;

    for (size_t e = 0; e < eps->n; e++) {
        const so_episode_t *ep = &eps->items[e];
        const char *qid = ep->query_id ? ep->query_id : (ep->id ? ep->id : "");
        for (size_t t = 0; t < ep->n_turns; t++) {
            const so_turn_t *tu = &ep->turns[t];
            char num[32];
            snprintf(num, sizeof num, "\x1f%zu", t);
            key.len = 0;
            s_buf_add(&key, qid, strlen(qid));
            s_buf_add(&key, num, strlen(num));
            if (key.oom)
                goto oom;
            size_t si = ds->n_samples;
            int rc = s_map_put(&keys, key.p, si, &si);
            if (rc < 0)
                goto oom;
            if (rc == 1) {
                if (s_grow_array((void **)&ds->samples, &cap_samples, ds->n_samples,
                                 sizeof *ds->samples) < 0)
                    goto oom;
                if ((ds->n_samples + 1) * na > cap_filled) {
                    size_t nc = cap_filled ? cap_filled * 2 : 1024;
                    while (nc < (ds->n_samples + 1) * na)
                        nc *= 2;
                    unsigned char *nf = realloc(filled, nc);
                    if (!nf)
                        goto oom;
                    filled = nf;
                    cap_filled = nc;
                }
                memset(filled + ds->n_samples * na, 0, na);
                so_sample_t *s = &ds->samples[ds->n_samples++];
                memset(s, 0, sizeof *s);
                s->turn = (int)t;
                s->query_id = strdup(qid);
                s->task = s_strdup0(ep->task);
                s->mode = s_strdup0(tu->mode);
                s->prompt = s_strdup0(tu->prompt);
                s->score = s_nan_array(na);
                s->cost = s_nan_array(na);
                s->prompt_tokens = s_nan_array(na);
                s->completion_tokens = s_nan_array(na);
                s->latency = s_nan_array(na);
                if (!s->query_id || !s->task || !s->mode || !s->prompt || !s->score || !s->cost
                    || !s->prompt_tokens || !s->completion_tokens || !s->latency)
                    goto oom;
            }
            int ai = so_dataset_agent_index(ds, tu->agent ? tu->agent : "");
            if (ai < 0 || filled[si * na + (size_t)ai])
                continue;       /* a repeated (query, turn, agent): first record wins */
            filled[si * na + (size_t)ai] = 1;
            so_sample_t *s = &ds->samples[si];
            s->score[ai] = tu->score;
            s->cost[ai] = tu->cost_usd;
            s->prompt_tokens[ai] = tu->prompt_tokens;
            s->completion_tokens[ai] = tu->completion_tokens;
            s->latency[ai] = tu->latency_s;
        }
    }

    /* drop samples in which no agent has a score */
    size_t w = 0;
    for (size_t i = 0; i < ds->n_samples; i++) {
        so_sample_t *s = &ds->samples[i];
        int any = 0;
        for (size_t a = 0; a < na && !any; a++)
            any = !isnan(s->score[a]);
        if (!any) {
            s_sample_free(s);
            continue;
        }
        if (w != i)
            ds->samples[w] = *s;
        w++;
    }
    ds->n_samples = w;
    ds->skipped = eps->skipped;
    ret = 0;
    goto done;
oom:
    s_err(err, errlen, "out of memory while building the dataset");
done:
    s_map_free(&agents);
    s_map_free(&keys);
    free(filled);
    free(key.p);
    if (ret < 0)
        so_dataset_free(ds);
    return ret;
}

int
so_dataset_load(so_dataset_t *ds, const char *paths, char *err, size_t errlen)
{
    memset(ds, 0, sizeof *ds);
    so_episodes_t all = { 0 }, one = { 0 };
    char *copy = strdup(paths ? paths : "");
    int ret = -1;
    size_t n_paths = 0;
    if (!copy)
        return s_err(err, errlen, "out of memory");
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (!*tok)
            continue;
        n_paths++;
        if (so_episodes_read_any(&one, tok, err, errlen) < 0)
            goto done;
        if (so_episodes_concat(&all, &one) < 0) {
            so_episodes_free(&one);
            s_err(err, errlen, "out of memory");
            goto done;
        }
    }
    if (n_paths == 0) {
        s_err(err, errlen, "no input paths given");
        goto done;
    }
    ret = so_dataset_from_episodes(ds, &all, err, errlen);
done:
    so_episodes_free(&all);
    free(copy);
    return ret;
}
