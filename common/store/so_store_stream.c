/*
 * so_store_stream — the learners' side of the episode log: the consumer
 * group on episodes, reading and claiming entries, the dead-letter stream
 * episodes:dead, acknowledgement, and refined:<version> (see so_store.h).
 *
 * Replies are checked for shape before use: the stream is writable by
 * anyone with access to Redis.  The error texts are the ones the learner
 * logs (redis_down error="...").
 */
#include "store/so_store_int.h"
#include "base/so_alloc.h"
#include "base/so_buf.h"
#include "base/so_err.h"
#include "base/so_svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A command whose error reply the caller wants to see: NULL only when the
 * connection failed ("redis <cmd>: <why>"). */
static redisReply *s_command_any(so_store_t *s, int argc, const char **argv, char *err,
                                 size_t errlen)
{
    size_t lens[16];
    if (so_store_ensure(s, err, errlen) < 0)
        return NULL;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(s->c, argc, argv, lens);
    if (!r) {
        s->io_error = 1;
        so_err(err, errlen, "redis %s: %s", argv[0],
               s->c->errstr[0] ? s->c->errstr : "connection lost");
        return NULL;
    }
    s->io_error = 0;
    return r;
}

int so_store_group_create(so_store_t *s, const char *group, char *err, size_t errlen)
{
    char key[S_KEY_MAX];
    if (so_store_key(s, key, sizeof key, "episodes") < 0)
        return so_err(err, errlen, "redis.prefix too long");
    const char *argv[] = { "XGROUP", "CREATE", key, group, "0", "MKSTREAM" };
    redisReply *r = s_command_any(s, 6, argv, err, errlen);
    if (!r)
        return -1;
    int ok = r->type == REDIS_REPLY_STATUS ||
             (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0);
    if (!ok)
        so_err(err, errlen, "XGROUP CREATE %.200s %.128s: %.150s", key, group,
               r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* One entry of an XREADGROUP/XAUTOCLAIM reply. */
static void s_entry_parse(const redisReply *e, so_store_entry_t *it)
{
    memset(it, 0, sizeof *it);
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !e->element[0] ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len == 0 ||
        e->element[0]->len >= 64) {
        it->kind = SO_STORE_ENTRY_NO_ID;
        return;
    }
    it->id = e->element[0]->str;
    const redisReply *f = e->element[1];
    if (!f || f->type == REDIS_REPLY_NIL) {
        it->kind = SO_STORE_ENTRY_DELETED;
        return;
    }
    if (f->type != REDIS_REPLY_ARRAY) {
        it->kind = SO_STORE_ENTRY_NOT_LIST;
        return;
    }
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i] && f->element[i]->type == REDIS_REPLY_STRING &&
            f->element[i]->len == 2 && memcmp(f->element[i]->str, "pb", 2) == 0 &&
            f->element[i + 1] && f->element[i + 1]->type == REDIS_REPLY_STRING) {
            it->pb = f->element[i + 1]->str;
            it->pb_len = f->element[i + 1]->len;
        }
    it->kind = it->pb ? SO_STORE_ENTRY_OK : SO_STORE_ENTRY_NO_PB;
}

/* Takes r (freed with out) and parses its entries array. */
static void s_entries_take(so_store_entries_t *out, redisReply *r, const redisReply *entries)
{
    out->reply = r;
    out->n = entries ? entries->elements : 0;
    out->v = so_calloc(out->n, sizeof *out->v);
    for (size_t i = 0; i < out->n; i++)
        s_entry_parse(entries->element[i], &out->v[i]);
}

void so_store_entries_free(so_store_entries_t *e)
{
    if (!e)
        return;
    if (e->reply)
        freeReplyObject(e->reply);
    free(e->v);
    memset(e, 0, sizeof *e);
}

int so_store_read_group(so_store_t *s, const char *group, const char *consumer, const char *id,
                        int count, int block_ms, so_store_entries_t *out, char *err,
                        size_t errlen)
{
    char key[S_KEY_MAX], cnt[16], blk[16];
    memset(out, 0, sizeof *out);
    so_store_key(s, key, sizeof key, "episodes");
    snprintf(cnt, sizeof cnt, "%d", count);
    snprintf(blk, sizeof blk, "%d", block_ms);
    const char *argv[] = { "XREADGROUP", "GROUP", group,     consumer, "COUNT", cnt,
                           "BLOCK",      blk,     "STREAMS", key,      id };
    const char *nb[] = {
        "XREADGROUP", "GROUP", group, consumer, "COUNT", cnt, "STREAMS", key, id
    };
    redisReply *r = block_ms >= 0 ? s_command_any(s, 11, argv, err, errlen)
                                  : s_command_any(s, 9, nb, err, errlen);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_NIL) {
        s_entries_take(out, r, NULL); /* timed out: nothing new */
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* NOGROUP: the log or the group was deleted. */
        so_err(err, errlen, "XREADGROUP: %s", r->str);
        freeReplyObject(r);
        return -1;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0] &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[1] && r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        s_entries_take(out, r, r->element[0]->element[1]);
        return 0;
    }
    so_err(err, errlen, "XREADGROUP: unexpected reply shape");
    freeReplyObject(r);
    return -1;
}

int so_store_claim(so_store_t *s, const char *group, const char *consumer, int min_idle_ms,
                   const char *cursor, int count, so_store_entries_t *out, char *err,
                   size_t errlen)
{
    char key[S_KEY_MAX], idle[16], cnt[16];
    memset(out, 0, sizeof *out);
    so_store_key(s, key, sizeof key, "episodes");
    snprintf(idle, sizeof idle, "%d", min_idle_ms);
    snprintf(cnt, sizeof cnt, "%d", count);
    const char *argv[] = { "XAUTOCLAIM", key, group, consumer, idle, cursor, "COUNT", cnt };
    redisReply *r = s_command_any(s, 8, argv, err, errlen);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !r->element[0] ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof out->cursor ||
        !r->element[1] || r->element[1]->type != REDIS_REPLY_ARRAY) {
        so_err(err, errlen, "XAUTOCLAIM: %s",
               r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply shape");
        freeReplyObject(r);
        return -1;
    }
    snprintf(out->cursor, sizeof out->cursor, "%s", r->element[0]->str);
    s_entries_take(out, r, r->element[1]);
    return 0;
}

/* XADD episodes:dead MAXLEN ~ maxlen * src reason consumer [pb], queued. */
static int s_append_dead(so_store_t *s, const char *k_dead, const char *maxlen,
                         const char *consumer, const so_store_dead_t *d)
{
    const char *argv[14] = {
        "XADD", k_dead,   "MAXLEN",  "~",        maxlen,   "*",  "src",
        d->id,  "reason", d->reason, "consumer", consumer, "pb", d->pb ? d->pb : ""
    };
    size_t lens[14];
    for (int k = 0; k < 13; k++)
        lens[k] = strlen(argv[k]);
    lens[13] = d->pb ? d->pb_len : 0;
    return redisAppendCommandArgv(s->c, d->pb ? 14 : 12, argv, lens) == REDIS_OK ? 0 : -1;
}

static int s_append_ack(so_store_t *s, const char *k_log, const char *group,
                        const char *const *ids, size_t n)
{
    const char **argv = so_calloc(3 + n, sizeof *argv);
    size_t *lens = so_calloc(3 + n, sizeof *lens);
    argv[0] = "XACK";
    argv[1] = k_log;
    argv[2] = group;
    memcpy(argv + 3, ids, n * sizeof *ids);
    for (size_t i = 0; i < 3 + n; i++)
        lens[i] = strlen(argv[i]);
    int rc = redisAppendCommandArgv(s->c, (int) (3 + n), argv, lens);
    free(argv);
    free(lens);
    return rc == REDIS_OK ? 0 : -1;
}

int so_store_finish_batch(so_store_t *s, const char *group, const char *consumer,
                          long dead_maxlen, const so_store_dead_t *dead, size_t n_dead,
                          const char *const *ack, size_t n_ack, char *err, size_t errlen)
{
    char k_log[S_KEY_MAX], k_dead[S_KEY_MAX], maxlen[32];
    if (so_store_ensure(s, err, errlen) < 0)
        return -1;
    so_store_key(s, k_log, sizeof k_log, "episodes");
    so_store_key(s, k_dead, sizeof k_dead, "episodes:dead");
    snprintf(maxlen, sizeof maxlen, "%ld", dead_maxlen);
    size_t queued = 0;
    for (size_t i = 0; i < n_dead; i++, queued++)
        if (s_append_dead(s, k_dead, maxlen, consumer, &dead[i]) < 0)
            goto io;
    if (n_ack) {
        if (s_append_ack(s, k_log, group, ack, n_ack) < 0)
            goto io;
        queued++;
    }
    for (size_t q = 0; q < queued; q++) {
        void *v = NULL;
        if (redisGetReply(s->c, &v) != REDIS_OK || !v)
            goto io;
        redisReply *r = v;
        if (r->type == REDIS_REPLY_ERROR)
            so_error("batch_write_failed", "command=%s error=\"%s\"",
                     q + 1 == queued && n_ack ? "XACK" : "XADD dead", r->str);
        freeReplyObject(r);
    }
    s->io_error = 0;
    return 0;
io:
    s->io_error = 1;
    return so_err(err, errlen, "redis batch finish: %s",
                  s->c->errstr[0] ? s->c->errstr : "connection lost");
}

int so_store_refined_seq(so_store_t *s, const char *version, long long *seq, char *err,
                         size_t errlen)
{
    char key[S_KEY_MAX];
    *seq = 0;
    so_store_key(s, key, sizeof key, "refined:%s", version);
    const char *argv[] = { "GET", key };
    redisReply *r = s_command_any(s, 2, argv, err, errlen);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < 24) {
        char *end;
        *seq = strtoll(r->str, &end, 10);
        if (*end)
            *seq = 0;
    }
    freeReplyObject(r);
    return 0;
}

int so_store_set_refined(so_store_t *s, const char *version, long long seq, char *err,
                         size_t errlen)
{
    char key[S_KEY_MAX], seqs[32];
    so_store_key(s, key, sizeof key, "refined:%s", version);
    snprintf(seqs, sizeof seqs, "%lld", seq);
    const char *argv[] = { "SET", key, seqs };
    redisReply *r = s_command_any(s, 3, argv, err, errlen);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

long long so_store_stream_len(so_store_t *s, const char *name, char *err, size_t errlen)
{
    char key[S_KEY_MAX];
    if (so_store_key(s, key, sizeof key, "%s", name) < 0)
        return so_err(err, errlen, "stream name '%.100s' too long", name);
    redisReply *r = so_st_command(s, err, errlen, "XLEN %s", key);
    if (!r)
        return -1;
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (n < 0)
        so_st_bad_reply(s, r, "XLEN", "an integer", err, errlen);
    freeReplyObject(r);
    return n;
}

/* One XINFO GROUPS entry (a flat field/value array) as "f=v f=v ...". */
static char *s_group_line(const redisReply *g)
{
    so_buf_t b = SO_BUF_INIT;
    for (size_t i = 0; g->type == REDIS_REPLY_ARRAY && i + 1 < g->elements; i += 2) {
        const redisReply *k = g->element[i], *v = g->element[i + 1];
        if (!k || k->type != REDIS_REPLY_STRING || !v)
            continue;
        const char *sep = b.len ? " " : "";
        if (v->type == REDIS_REPLY_INTEGER)
            so_buf_appendf(&b, "%s%s=%lld", sep, k->str, v->integer);
        else if (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS)
            so_buf_appendf(&b, "%s%s=%s", sep, k->str, v->str);
        else if (v->type == REDIS_REPLY_NIL)
            so_buf_appendf(&b, "%s%s=-", sep, k->str);
    }
    return so_buf_detach(&b, NULL);
}

int so_store_stream_groups(so_store_t *s, const char *name, char ***groups, size_t *n, char *err,
                           size_t errlen)
{
    char key[S_KEY_MAX];
    *groups = NULL;
    *n = 0;
    if (so_store_key(s, key, sizeof key, "%s", name) < 0)
        return so_err(err, errlen, "stream name '%.100s' too long", name);
    const char *argv[] = { "XINFO", "GROUPS", key };
    redisReply *r = s_command_any(s, 3, argv, err, errlen);
    if (!r)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_ARRAY) {
        *groups = so_calloc(r->elements, sizeof **groups);
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i])
                (*groups)[(*n)++] = s_group_line(r->element[i]);
    } else {
        so_err(err, errlen, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "none");
        rc = 1;
    }
    freeReplyObject(r);
    return rc;
}
