/*
 * so_store_hb — handbooks and their online statistics in Redis (keys
 * hb:current, hb:<version>, hb:versions, stats:<version>, seq:<version>;
 * see so_store.h).
 */
#include "store/so_store_int.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_put(so_store_t *s, const so_handbook_t *hb, int make_current, char *err,
                 size_t errlen)
{
    char k_hb[S_KEY_MAX], k_versions[S_KEY_MAX], k_current[S_KEY_MAX];
    char *json = so_handbook_dumps(hb);
    if (!json)
        return so_err(err, errlen, "handbook %s: cannot serialise", hb->version);
    so_store_key(s, k_hb, sizeof k_hb, "hb:%s", hb->version);
    so_store_key(s, k_versions, sizeof k_versions, "hb:versions");
    so_store_key(s, k_current, sizeof k_current, "hb:current");
    const char *v = hb->version;
    const char *cmds[6][4] = {
        { "MULTI" },
        { "SET", k_hb, json },
        { "LREM", k_versions, "0", v },
        { "RPUSH", k_versions, v },
        { "SET", k_current, v },
        { "EXEC" },
    };
    const int argc[6] = { 1, 3, 4, 3, 3, 1 };
    int rc = 0, n = 0;
    for (int i = 0; i < 6 && rc == 0; i++) {
        if (i == 4 && !make_current)
            continue;
        size_t lens[4];
        for (int j = 0; j < argc[i]; j++)
            lens[j] = strlen(cmds[i][j]);
        rc = so_st_append(s, argc[i], cmds[i], lens, err, errlen);
        n++;
    }
    free(json);
    if (rc < 0)
        return -1;
    /* n replies: +OK, n - 2 QUEUED, then EXEC's array (nil when WATCH fired). */
    int stored = 1;
    for (int i = 0; i < n; i++) {
        redisReply *r = so_st_get_reply(s, "MULTI", err, errlen);
        if (!r)
            return -1;
        if (rc == 0 && i < n - 1 && r->type == REDIS_REPLY_ERROR) {
            s->io_error = 0;
            rc = so_err(err, errlen, "redis put handbook: %s", r->str);
        } else if (rc == 0 && i == n - 1) {
            if (r->type == REDIS_REPLY_NIL)
                stored = 0;
            else if (so_st_exec_ok(s, r, (size_t) n - 2, "put handbook", err, errlen) < 0)
                rc = -1;
        }
        freeReplyObject(r);
    }
    return rc < 0 ? -1 : stored;
}

int so_store_put_handbook(so_store_t *s, const so_handbook_t *hb, int make_current, char *err,
                          size_t errlen)
{
    if (!hb || so_st_check_version(hb->version, err, errlen) < 0)
        return -1;
    if (so_store_ensure(s, err, errlen) < 0)
        return -1;
    int rc = s_put(s, hb, make_current, err, errlen);
    if (rc == 0)
        so_err(err, errlen, "put handbook %s: transaction aborted", hb->version);
    return rc == 1 ? 0 : -1;
}

int so_store_put_handbook_new(so_store_t *s, const so_handbook_t *hb, int make_current, char *err,
                              size_t errlen)
{
    char k_hb[S_KEY_MAX];
    if (!hb || so_st_check_version(hb->version, err, errlen) < 0)
        return -1;
    so_store_key(s, k_hb, sizeof k_hb, "hb:%s", hb->version);
    redisReply *r = so_st_command(s, err, errlen, "WATCH %s", k_hb);
    if (!r)
        return -1;
    freeReplyObject(r);
    r = so_st_command(s, err, errlen, "EXISTS %s", k_hb);
    if (!r)
        return -1;
    int exists = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    if (exists) {
        so_st_unwatch(s);
        so_err(err, errlen, "handbook version %s is already published", hb->version);
        return 0;
    }
    int rc = s_put(s, hb, make_current, err, errlen);
    if (rc == 0)
        so_err(err, errlen, "handbook version %s was published meanwhile", hb->version);
    return rc;
}

int so_store_put_handbook_if(so_store_t *s, const so_handbook_t *hb, const char *expect_current,
                             char *err, size_t errlen)
{
    char k_current[S_KEY_MAX], cur[SO_WIRE_MAX_ID + 1];
    if (!hb || so_st_check_version(hb->version, err, errlen) < 0)
        return -1;
    so_store_key(s, k_current, sizeof k_current, "hb:current");
    redisReply *r = so_st_command(s, err, errlen, "WATCH %s", k_current);
    if (!r)
        return -1;
    freeReplyObject(r);
    int rc = so_store_current_version(s, cur, sizeof cur, err, errlen);
    if (rc < 0 && so_store_io_error(s))
        return -1;
    if ((rc < 0 && expect_current && *expect_current) ||
        (rc == 0 && (!expect_current || strcmp(cur, expect_current) != 0))) {
        r = so_st_command(s, err, errlen, "UNWATCH");
        if (r)
            freeReplyObject(r);
        return r ? 0 : -1;
    }
    return s_put(s, hb, 1, err, errlen);
}

int so_store_current_version(so_store_t *s, char *buf, size_t len, char *err, size_t errlen)
{
    char key[S_KEY_MAX];
    so_store_key(s, key, sizeof key, "hb:current");
    redisReply *r = so_st_command(s, err, errlen, "GET %s", key);
    if (!r)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_NIL) {
        s->io_error = 0;
        rc = so_err(err, errlen, "no current handbook (%s is not set)", key);
    } else if (r->type != REDIS_REPLY_STRING) {
        rc = so_st_bad_reply(s, r, "GET current", "a string", err, errlen);
    } else if (r->len == 0 || r->len >= len || r->len > SO_WIRE_MAX_ID ||
               memchr(r->str, '\0', r->len)) {
        s->io_error = 0;
        rc = so_err(err, errlen, "%s: not a handbook version (%zu bytes)", key, r->len);
    } else {
        memcpy(buf, r->str, r->len);
        buf[r->len] = '\0';
    }
    freeReplyObject(r);
    return rc;
}

so_handbook_t *so_store_get_handbook(so_store_t *s, const char *version, char *err, size_t errlen)
{
    char cur[SO_WIRE_MAX_ID + 1], key[S_KEY_MAX];
    if (!version || !*version) {
        if (so_store_current_version(s, cur, sizeof cur, err, errlen) < 0)
            return NULL;
        version = cur;
    }
    if (so_st_check_version(version, err, errlen) < 0)
        return NULL;
    so_store_key(s, key, sizeof key, "hb:%s", version);
    redisReply *r = so_st_command(s, err, errlen, "GET %s", key);
    if (!r)
        return NULL;
    so_handbook_t *hb = NULL;
    if (r->type == REDIS_REPLY_NIL) {
        s->io_error = 0;
        so_err(err, errlen, "handbook version '%s' not found (%s)", version, key);
    } else if (r->type != REDIS_REPLY_STRING) {
        so_st_bad_reply(s, r, key, "a string", err, errlen);
    } else if (memchr(r->str, '\0', r->len)) {
        s->io_error = 0;
        so_err(err, errlen, "%s: handbook JSON contains a NUL byte", key);
    } else {
        s->io_error = 0;
        hb = so_handbook_load_string(r->str, key, err, errlen);
        if (hb && strcmp(hb->version, version) != 0) {
            so_err(err, errlen, "%s: holds handbook version '%s'", key, hb->version);
            so_handbook_destroy(&hb);
        }
    }
    freeReplyObject(r);
    return hb;
}

int so_store_get_handbook_json(so_store_t *s, const char *version, char **json, size_t *len,
                               char *err, size_t errlen)
{
    char key[S_KEY_MAX];
    *json = NULL;
    if (len)
        *len = 0;
    if (so_st_check_version(version, err, errlen) < 0)
        return -1;
    so_store_key(s, key, sizeof key, "hb:%s", version);
    redisReply *r = so_st_command(s, err, errlen, "GET %s", key);
    if (!r)
        return -1;
    int rc = 1;
    if (r->type == REDIS_REPLY_NIL) {
        rc = 0;
    } else if (r->type != REDIS_REPLY_STRING) {
        rc = so_st_bad_reply(s, r, key, "a string", err, errlen);
    } else {
        *json = so_malloc(r->len + 1);
        memcpy(*json, r->str, r->len);
        (*json)[r->len] = '\0';
        if (len)
            *len = r->len;
    }
    freeReplyObject(r);
    return rc;
}

int so_store_versions(so_store_t *s, char ***versions, size_t *n, char *err, size_t errlen)
{
    char key[S_KEY_MAX];
    *versions = NULL;
    *n = 0;
    so_store_key(s, key, sizeof key, "hb:versions");
    redisReply *r = so_st_command(s, err, errlen, "LRANGE %s 0 -1", key);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        so_st_bad_reply(s, r, "LRANGE versions", "an array", err, errlen);
        freeReplyObject(r);
        return -1;
    }
    char **v = so_calloc(r->elements, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e && e->type == REDIS_REPLY_STRING && e->len <= SO_WIRE_MAX_ID &&
            !memchr(e->str, '\0', e->len))
            v[k++] = so_strdup(e->str);
    }
    freeReplyObject(r);
    *versions = v;
    *n = k;
    return 0;
}

void so_store_strv_free(char ***v, size_t n)
{
    if (!v || !*v)
        return;
    for (size_t i = 0; i < n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
}

/* ------------------------------------------------------------------ */
/* Statistics                                                         */

static int s_parse_ll(const redisReply *r, long long *out)
{
    if (r->type == REDIS_REPLY_NIL) {
        *out = 0;
        return 0;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 24)
        return -1;
    char buf[32], *end;
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || errno)
        return -1;
    *out = v;
    return 0;
}

int so_store_seq(so_store_t *s, const char *version, long long *seq, char *err, size_t errlen)
{
    char key[S_KEY_MAX];
    if (so_st_check_version(version, err, errlen) < 0)
        return -1;
    so_store_key(s, key, sizeof key, "seq:%s", version);
    redisReply *r = so_st_command(s, err, errlen, "GET %s", key);
    if (!r)
        return -1;
    int rc = s_parse_ll(r, seq);
    if (rc < 0) {
        s->io_error = 0;
        so_err(err, errlen, "%s: not an integer", key);
    }
    freeReplyObject(r);
    return rc;
}

/* The stat field a suffix names. */
static double *s_stat_field(so_stat_t *st, const char *k)
{
    if (strcmp(k, "s") == 0)
        return &st->successes;
    if (strcmp(k, "n") == 0)
        return &st->attempts;
    if (strcmp(k, "c") == 0)
        return &st->cost_usd;
    if (strcmp(k, "pt") == 0)
        return &st->prompt_tokens;
    if (strcmp(k, "ct") == 0)
        return &st->completion_tokens;
    if (strcmp(k, "l") == 0)
        return &st->latency_s;
    if (strcmp(k, "cc") == 0)
        return &st->cost_count;
    return NULL;
}

/* Adds one "<agent>\x1f<skill>\x1f<k>" = value pair onto hb.  Returns 0
 * (added), 1 (names something hb does not have) or -1 (malformed). */
static int s_add_field(so_handbook_t *hb, const redisReply *f, const redisReply *v, char *err,
                       size_t errlen)
{
    char name[3 * SO_WIRE_MAX_ID + 16], num[64], *end;
    if (!f || !v || f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
        return so_err(err, errlen, "stats hash: field or value is not a string");
    if (f->len >= sizeof name || memchr(f->str, '\0', f->len))
        return 1;
    memcpy(name, f->str, f->len);
    name[f->len] = '\0';
    char *sep1 = strchr(name, '\x1f'), *sep2 = strrchr(name, '\x1f');
    if (!sep1 || sep1 == sep2)
        return 1;
    *sep1 = *sep2 = '\0';
    int a = so_handbook_agent_index(hb, name);
    int sk = so_handbook_skill_index(hb, sep1 + 1);
    if (a < 0 || sk < 0)
        return 1;
    double *dst = s_stat_field(so_handbook_stat(hb, (size_t) a, (size_t) sk), sep2 + 1);
    if (!dst)
        return 1;
    if (v->len == 0 || v->len >= sizeof num)
        return so_err(err, errlen, "stats hash: %s/%s/%s: bad value", name, sep1 + 1, sep2 + 1);
    memcpy(num, v->str, v->len);
    num[v->len] = '\0';
    errno = 0;
    double d = strtod(num, &end);
    if (end == num || *end || errno || !isfinite(d))
        return so_err(err, errlen, "stats hash: %s/%s/%s: '%s' is not a number", name, sep1 + 1,
                      sep2 + 1, num);
    *dst += d;
    return 0;
}

int so_store_load_stats(so_store_t *s, so_handbook_t *hb, long long *seq, size_t *unknown,
                        char *err, size_t errlen)
{
    char k_stats[S_KEY_MAX], k_seq[S_KEY_MAX];
    if (!hb || so_st_check_version(hb->version, err, errlen) < 0)
        return -1;
    so_store_key(s, k_stats, sizeof k_stats, "stats:%s", hb->version);
    so_store_key(s, k_seq, sizeof k_seq, "seq:%s", hb->version);
    if (so_store_ensure(s, err, errlen) < 0)
        return -1;
    const char *a1[] = { "MULTI" }, *a2[] = { "HGETALL", k_stats }, *a3[] = { "GET", k_seq },
               *a4[] = { "EXEC" };
    size_t l1[] = { 5 }, l2[] = { 7, strlen(k_stats) }, l3[] = { 3, strlen(k_seq) }, l4[] = { 4 };
    if (so_st_append(s, 1, a1, l1, err, errlen) < 0 ||
        so_st_append(s, 2, a2, l2, err, errlen) < 0 ||
        so_st_append(s, 2, a3, l3, err, errlen) < 0 ||
        so_st_append(s, 1, a4, l4, err, errlen) < 0)
        return -1;
    redisReply *r = NULL;
    for (int i = 0; i < 4; i++) {
        if (r)
            freeReplyObject(r);
        if (!(r = so_st_get_reply(s, "load stats", err, errlen)))
            return -1;
    }
    int rc = 0;
    size_t n_unknown = 0;
    long long sq = 0;
    /* Work on a copy so an error leaves hb untouched. */
    so_stat_t *backup = so_calloc(hb->n_agents * hb->n_skills + 1, sizeof *backup);
    memcpy(backup, hb->stats, hb->n_agents * hb->n_skills * sizeof *backup);
    if (so_st_exec_ok(s, r, 2, "load stats", err, errlen) < 0) {
        rc = -1;
    } else if (r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements % 2) {
        rc = so_st_bad_reply(s, r->element[0], k_stats, "a hash", err, errlen);
    } else if (s_parse_ll(r->element[1], &sq) < 0) {
        rc = so_err(err, errlen, "%s: not an integer", k_seq);
    } else {
        redisReply *h = r->element[0];
        for (size_t i = 0; i + 1 < h->elements && rc == 0; i += 2) {
            int k = s_add_field(hb, h->element[i], h->element[i + 1], err, errlen);
            if (k < 0)
                rc = -1;
            else
                n_unknown += (size_t) k;
        }
    }
    freeReplyObject(r);
    if (rc < 0) {
        s->io_error = 0;
        memcpy(hb->stats, backup, hb->n_agents * hb->n_skills * sizeof *backup);
    } else {
        if (seq)
            *seq = sq;
        if (unknown)
            *unknown = n_unknown;
    }
    free(backup);
    return rc;
}
