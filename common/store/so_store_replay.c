/*
 * so_store_replay — the episode log read back: the in-memory replay and
 * the rebuild of stats:<version>, applied:<version>, seq:<version> from
 * the whole log (temporary keys rebuild:<token>:<version>:*, swapped in by
 * the function so_swap).  See so_store.h.
 */
#include "store/so_store_int.h"
#include "base/so_err.h"
#include "base/so_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define S_REBUILD_PAGE 500
#define S_REBUILD_ROUNDS 1000   /* catch-up scans before the log is "too busy" */
#define S_REBUILD_TTL_MS 600000 /* temporary keys of an abandoned rebuild expire */

/* ------------------------------------------------------------------ */
/* Replaying the log                                                  */

/* One page of the log after `after` ("-" for the start).  The entries'
 * field lists are checked by the caller. */
static redisReply *s_page(so_store_t *s, const char *key, const char *after, char *err,
                          size_t errlen)
{
    char start[64];
    if (strcmp(after, "-") == 0)
        snprintf(start, sizeof start, "-");
    else
        snprintf(start, sizeof start, "(%s", after);
    redisReply *r = so_st_command(s, err, errlen, "XRANGE %s %s + COUNT %d", key, start,
                                  S_REBUILD_PAGE);
    if (r && r->type != REDIS_REPLY_ARRAY) {
        so_st_bad_reply(s, r, "XRANGE", "an array", err, errlen);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* The id and the "pb" value of a stream entry; -1 if the entry has not
 * the shape XRANGE gives. */
static int s_entry(const redisReply *e, const char **id, const char **pb, size_t *pb_len)
{
    *pb = NULL;
    *pb_len = 0;
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !e->element[0] ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= 64)
        return -1;
    *id = e->element[0]->str;
    const redisReply *f = e->element[1];
    if (!f || f->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i] && f->element[i]->type == REDIS_REPLY_STRING &&
            f->element[i]->len == 2 && memcmp(f->element[i]->str, "pb", 2) == 0 &&
            f->element[i + 1] && f->element[i + 1]->type == REDIS_REPLY_STRING) {
            *pb = f->element[i + 1]->str;
            *pb_len = f->element[i + 1]->len;
        }
    return 0;
}

long so_store_replay(so_store_t *s, const so_handbook_t *hb, so_stat_t *deltas, size_t *malformed,
                     char *err, size_t errlen)
{
    char key[S_KEY_MAX], last[64] = "-", e1[256];
    long episodes = 0;
    size_t bad = 0;
    if (!hb || so_st_check_version(hb->version, err, errlen) < 0)
        return -1;
    so_map_t *seen = so_map_new(NULL);
    so_store_key(s, key, sizeof key, "episodes");
    memset(deltas, 0, hb->n_agents * hb->n_skills * sizeof *deltas);
    for (;;) {
        redisReply *r = s_page(s, key, last, err, errlen);
        if (!r) {
            so_map_destroy(&seen);
            return -1;
        }
        for (size_t i = 0; i < r->elements; i++) {
            const char *id, *pb;
            size_t len;
            so_pb_episode_outcome_t *ep = NULL;
            so_credit_t c;
            if (s_entry(r->element[i], &id, &pb, &len) < 0) {
                freeReplyObject(r);
                so_map_destroy(&seen);
                return so_err(err, errlen, "XRANGE %s: malformed entry", key);
            }
            snprintf(last, sizeof last, "%s", id);
            if (!pb || so_store_decode_episode(pb, len, &ep, e1, sizeof e1) < 0) {
                bad++;
                continue;
            }
            if (strcmp(ep->handbook_version, hb->version) == 0 &&
                so_st_check_episode(hb, ep, e1, sizeof e1) == 0 &&
                so_credit_episode(hb, ep, &c, e1, sizeof e1) == 0) {
                if (so_map_put(seen, ep->episode_id, NULL)) {
                    episodes++;
                    so_credit_accumulate(&c, hb->n_skills, deltas);
                }
                so_credit_free(&c);
            } else if (strcmp(ep->handbook_version, hb->version) == 0) {
                bad++;
            }
            so_store_episode_free(&ep);
        }
        size_t got = r->elements;
        freeReplyObject(r);
        if (got < S_REBUILD_PAGE)
            break;
    }
    so_map_destroy(&seen);
    if (malformed)
        *malformed = bad;
    return episodes;
}

/* Applies one page of log entries to the temporary keys, pipelined. */
static long s_rebuild_page(so_store_t *s, const so_handbook_t *hb, redisReply *page,
                           const char *k_applied, const char *k_stats, const char *k_seq,
                           char *last, size_t lastlen, char *err, size_t errlen)
{
    char e1[256];
    long applied = 0;
    size_t queued = 0;
    for (size_t i = 0; i < page->elements; i++) {
        const char *id, *pb;
        size_t len;
        so_pb_episode_outcome_t *ep = NULL;
        so_credit_t c;
        so_st_fcall_t f;
        if (s_entry(page->element[i], &id, &pb, &len) < 0)
            return so_err(err, errlen, "XRANGE: malformed entry");
        snprintf(last, lastlen, "%s", id);
        if (!pb || so_store_decode_episode(pb, len, &ep, e1, sizeof e1) < 0)
            continue;
        if (strcmp(ep->handbook_version, hb->version) != 0 ||
            so_st_check_episode(hb, ep, e1, sizeof e1) < 0 ||
            so_credit_episode(hb, ep, &c, e1, sizeof e1) < 0) {
            so_store_episode_free(&ep);
            continue;
        }
        so_st_fcall_build(hb, ep, &c, k_applied, k_stats, k_seq, &f);
        int rc = so_st_append(s, f.argc, f.argv, f.lens, err, errlen);
        so_st_fcall_free(&f);
        so_credit_free(&c);
        so_store_episode_free(&ep);
        if (rc < 0)
            return -1;
        queued++;
    }
    int failed = 0;
    for (size_t i = 0; i < queued; i++) {
        redisReply *r = so_st_get_reply(s, "FCALL so_apply", err, errlen);
        if (!r)
            return -1;
        int rc = so_st_fcall_result(s, r, "(rebuild)", e1, sizeof e1);
        if (rc < 0 && !failed++)
            so_err(err, errlen, "%s", e1);
        applied += rc == 1;
        freeReplyObject(r);
    }
    return failed ? -1 : applied;
}

long so_store_rebuild(so_store_t *s, const so_handbook_t *hb, char *err, size_t errlen)
{
    char key[S_KEY_MAX], last[64] = "-", tok[40];
    char t_applied[S_KEY_MAX], t_stats[S_KEY_MAX], t_seq[S_KEY_MAX];
    char k_applied[S_KEY_MAX], k_stats[S_KEY_MAX], k_seq[S_KEY_MAX];
    long applied = 0;
    if (!hb || so_st_check_version(hb->version, err, errlen) < 0)
        return -1;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(tok, sizeof tok, "%lx%06lx", (unsigned long) tv.tv_sec, (unsigned long) tv.tv_usec);
    so_store_key(s, key, sizeof key, "episodes");
    if (so_st_stat_keys(s, hb->version, k_applied, k_stats, k_seq) < 0 ||
        so_store_key(s, t_applied, sizeof t_applied, "rebuild:%s:%s:applied", tok, hb->version) <
            0 ||
        so_store_key(s, t_stats, sizeof t_stats, "rebuild:%s:%s:stats", tok, hb->version) < 0 ||
        so_store_key(s, t_seq, sizeof t_seq, "rebuild:%s:%s:seq", tok, hb->version) < 0)
        return so_err(err, errlen, "handbook version too long for a key");
    if (so_store_ensure(s, err, errlen) < 0)
        return -1;
    for (int round = 0; round < S_REBUILD_ROUNDS; round++) {
        /* Read to the end of the log, then try to swap; if entries arrived
         * meanwhile, read those too. */
        for (;;) {
            redisReply *page = s_page(s, key, last, err, errlen);
            if (!page)
                goto fail;
            long n = s_rebuild_page(s, hb, page, t_applied, t_stats, t_seq, last, sizeof last,
                                    err, errlen);
            size_t got = page->elements;
            freeReplyObject(page);
            if (n < 0)
                goto fail;
            applied += n;
            const char *tmp[3] = { t_applied, t_stats, t_seq };
            for (int i = 0; i < 3; i++) {
                redisReply *r = so_st_command(s, err, errlen, "PEXPIRE %s %d", tmp[i],
                                              S_REBUILD_TTL_MS);
                if (!r)
                    goto fail;
                freeReplyObject(r);
            }
            if (got < S_REBUILD_PAGE)
                break;
        }
        const char *argv[] = { "FCALL",
                               "so_swap",
                               "7",
                               key,
                               t_applied,
                               t_stats,
                               t_seq,
                               k_applied,
                               k_stats,
                               k_seq,
                               strcmp(last, "-") ? last : "0-0" };
        size_t lens[11];
        for (int i = 0; i < 11; i++)
            lens[i] = strlen(argv[i]);
        redisReply *r = so_st_commandv(s, 11, argv, lens, err, errlen);
        if (!r)
            goto fail;
        if (r->type != REDIS_REPLY_INTEGER) {
            so_st_bad_reply(s, r, "so_swap", "an integer", err, errlen);
            freeReplyObject(r);
            goto fail;
        }
        long long swapped = r->integer;
        freeReplyObject(r);
        if (swapped == 1)
            return applied;
    }
    so_err(err, errlen, "rebuild: the log kept growing for %d rounds; try again",
           S_REBUILD_ROUNDS);
fail : {
    char e2[64];
    redisReply *r = so_st_command(s, e2, sizeof e2, "DEL %s %s %s", t_applied, t_stats, t_seq);
    if (r)
        freeReplyObject(r);
}
    return -1;
}
