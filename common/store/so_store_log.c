/*
 * so_store_log — episodes: applying them to the statistics (one FCALL
 * so_apply each, with the increments method/so_credit computes), the
 * episode log (episodes), and the pending turns of episodes awaiting their
 * outcome (pending:<episode>, pending:<episode>:hb).  See so_store.h.
 */
#include "store/so_store_int.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* ------------------------------------------------------------------ */
/* Applying episodes                                                  */

int so_st_check_episode(const so_handbook_t *hb, const so_pb_episode_outcome_t *ep, char *err,
                        size_t errlen)
{
    if (!hb || !ep)
        return so_err(err, errlen, "no handbook or episode");
    if (so_wire_validate(SO_MSG_EPISODE_OUTCOME, ep, err, errlen) < 0)
        return -1;
    if (ep->result_case != SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS &&
        ep->result_case != SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE)
        return so_err(err, errlen, "episode %s: no outcome", ep->episode_id);
    if (strcmp(ep->handbook_version, hb->version) != 0)
        return so_err(err, errlen, "episode %s was routed by handbook %s, not %s", ep->episode_id,
                      ep->handbook_version, hb->version);
    return 0;
}

void so_st_fcall_free(so_st_fcall_t *f)
{
    free(f->argv);
    free(f->lens);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

void so_st_fcall_build(const so_handbook_t *hb, const so_pb_episode_outcome_t *ep,
                       const so_credit_t *c, const char *k_applied, const char *k_stats,
                       const char *k_seq, so_st_fcall_t *f)
{
    static const char *ks[7] = { "s", "n", "c", "pt", "ct", "l", "cc" };
    size_t max_pairs = c->n * 7, need = 0;
    for (size_t i = 0; i < c->n; i++)
        need += 7 * (strlen(hb->agents[c->cells[i].agent].id) +
                     strlen(hb->skills[c->cells[i].skill].id) + 8 + 32);
    f->argv = so_calloc(7 + 2 * max_pairs, sizeof *f->argv);
    f->lens = so_calloc(7 + 2 * max_pairs, sizeof *f->lens);
    f->buf = so_calloc(need + 1, 1);
    const char *head[7] = { "FCALL", "so_apply", "3", k_applied, k_stats, k_seq, ep->episode_id };
    for (int i = 0; i < 7; i++) {
        f->argv[i] = head[i];
        f->lens[i] = strlen(head[i]);
    }
    f->argc = 7;
    char *p = f->buf;
    for (size_t i = 0; i < c->n; i++) {
        const so_stat_t *d = &c->cells[i].d;
        const double v[7] = { d->successes,         d->attempts,  d->cost_usd,  d->prompt_tokens,
                              d->completion_tokens, d->latency_s, d->cost_count };
        for (int k = 0; k < 7; k++) {
            if (v[k] == 0 && k != 1)
                continue; /* nothing to add; attempts always written */
            int n = sprintf(p, "%s\x1f%s\x1f%s", hb->agents[c->cells[i].agent].id,
                            hb->skills[c->cells[i].skill].id, ks[k]);
            f->argv[f->argc] = p;
            f->lens[f->argc++] = (size_t) n;
            p += n + 1;
            n = sprintf(p, "%.17g", v[k]);
            f->argv[f->argc] = p;
            f->lens[f->argc++] = (size_t) n;
            p += n + 1;
        }
    }
}

int so_st_stat_keys(const so_store_t *s, const char *version, char *k_applied, char *k_stats,
                    char *k_seq)
{
    if (so_store_key(s, k_applied, S_KEY_MAX, "applied:%s", version) < 0 ||
        so_store_key(s, k_stats, S_KEY_MAX, "stats:%s", version) < 0 ||
        so_store_key(s, k_seq, S_KEY_MAX, "seq:%s", version) < 0)
        return -1;
    return 0;
}

int so_st_fcall_result(so_store_t *s, redisReply *r, const char *ep_id, char *err, size_t errlen)
{
    if (r->type == REDIS_REPLY_ERROR) {
        s->io_error = 0;
        return so_err(err, errlen, "episode %s: redis so_apply: %s", ep_id, r->str);
    }
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))
        return so_st_bad_reply(s, r, "so_apply", "0 or 1", err, errlen);
    return (int) r->integer;
}

int so_store_apply_episode(so_store_t *s, const so_handbook_t *hb,
                           const so_pb_episode_outcome_t *ep, char *err, size_t errlen)
{
    int applied = -1;
    const so_handbook_t *hbs[1] = { hb };
    const so_pb_episode_outcome_t *eps[1] = { ep };
    if (so_store_apply_many(s, hbs, eps, 1, &applied, err, errlen) < 0)
        return -1;
    return applied;
}

int so_store_apply_many(so_store_t *s, const so_handbook_t *const *hbs,
                        const so_pb_episode_outcome_t *const *eps, size_t n, int *applied,
                        char *err, size_t errlen)
{
    char k_applied[S_KEY_MAX], k_stats[S_KEY_MAX], k_seq[S_KEY_MAX], e1[256];
    int first_err = 0;
    if (so_store_ensure(s, err, errlen) < 0)
        return -1;
    int *queued = so_calloc(n, sizeof *queued);
    for (size_t i = 0; i < n; i++) {
        so_credit_t c;
        so_st_fcall_t f;
        applied[i] = -1;
        if (so_st_check_episode(hbs[i], eps[i], e1, sizeof e1) < 0 ||
            so_st_stat_keys(s, hbs[i]->version, k_applied, k_stats, k_seq) < 0 ||
            so_credit_episode(hbs[i], eps[i], &c, e1, sizeof e1) < 0) {
            if (!first_err++)
                so_err(err, errlen, "%s", e1);
            continue;
        }
        so_st_fcall_build(hbs[i], eps[i], &c, k_applied, k_stats, k_seq, &f);
        int rc = so_st_append(s, f.argc, f.argv, f.lens, err, errlen);
        so_st_fcall_free(&f);
        so_credit_free(&c);
        if (rc < 0) {
            free(queued);
            return -1;
        }
        queued[i] = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!queued[i])
            continue;
        redisReply *r = so_st_get_reply(s, "FCALL so_apply", err, errlen);
        if (!r) {
            free(queued);
            return -1;
        }
        applied[i] = so_st_fcall_result(s, r, eps[i]->episode_id, e1, sizeof e1);
        if (applied[i] < 0 && !first_err++)
            so_err(err, errlen, "%s", e1);
        freeReplyObject(r);
    }
    free(queued);
    s->io_error = 0;
    return 0;
}

/* ------------------------------------------------------------------ */
/* The episode log                                                    */

int so_store_decode_episode(const void *pb, size_t len, so_pb_episode_outcome_t **out, char *err,
                            size_t errlen)
{
    uint8_t hdr[SO_WIRE_HDR_LEN];
    void *msg = NULL;
    *out = NULL;
    so_wire_header(SO_MSG_EPISODE_OUTCOME, hdr);
    if (so_wire_decode(hdr, sizeof hdr, pb ? pb : "", pb ? len : 0, SO_MSG_EPISODE_OUTCOME, &msg,
                       err, errlen) < 0)
        return -1;
    *out = msg;
    return 0;
}

void so_store_episode_free(so_pb_episode_outcome_t **ep_p)
{
    if (!ep_p || !*ep_p)
        return;
    so_wire_free(SO_MSG_EPISODE_OUTCOME, *ep_p);
    *ep_p = NULL;
}

int so_store_log_episode(so_store_t *s, const so_pb_episode_outcome_t *ep, char *err,
                         size_t errlen)
{
    uint8_t hdr[SO_WIRE_HDR_LEN], *body = NULL;
    size_t blen = 0;
    char key[S_KEY_MAX];
    if (!ep)
        return so_err(err, errlen, "no episode");
    if (so_wire_encode(SO_MSG_EPISODE_OUTCOME, ep, hdr, &body, &blen, err, errlen) < 0)
        return -1;
    so_store_key(s, key, sizeof key, "episodes");
    const char *argv[7] = { "XADD", key, "*", "id", ep->episode_id, "pb", (const char *) body };
    size_t lens[7] = { 4, strlen(key), 1, 2, strlen(ep->episode_id), 2, blen };
    if (!body)
        argv[6] = "";
    redisReply *r = so_st_commandv(s, 7, argv, lens, err, errlen);
    free(body);
    if (!r)
        return -1;
    int rc = r->type == REDIS_REPLY_STRING ? 0
                                           : so_st_bad_reply(s, r, "XADD", "an id", err, errlen);
    freeReplyObject(r);
    return rc;
}

/* Wraps a turn in an otherwise empty episode so that so_wire_validate can
 * check it (TurnRecord has no message type of its own). */
static int s_check_turn(const char *episode_id, const so_pb_turn_record_t *tr, char *err,
                        size_t errlen)
{
    so_pb_episode_outcome_t ep = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
    so_pb_turn_record_t *turns[1] = { (so_pb_turn_record_t *) tr };
    ep.episode_id = (char *) episode_id;
    ep.handbook_version = "-";
    ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
    ep.n_turns = 1;
    ep.turns = turns;
    return so_wire_validate(SO_MSG_EPISODE_OUTCOME, &ep, err, errlen);
}

int so_store_push_turn_ex(so_store_t *s, const char *episode_id, const char *handbook_version,
                          const so_pb_turn_record_t *tr, int ttl_s, char *err, size_t errlen)
{
    char k_list[S_KEY_MAX], k_hb[S_KEY_MAX], ttl[32];
    if (!tr || s_check_turn(episode_id, tr, err, errlen) < 0)
        return -1;
    if (handbook_version && *handbook_version &&
        so_st_check_version(handbook_version, err, errlen) < 0)
        return -1;
    if (ttl_s <= 0)
        return so_err(err, errlen, "pending turns need a ttl > 0 (got %d)", ttl_s);
    so_store_key(s, k_list, sizeof k_list, "pending:%s", episode_id);
    so_store_key(s, k_hb, sizeof k_hb, "pending:%s:hb", episode_id);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    size_t len = protobuf_c_message_get_packed_size(&tr->base);
    uint8_t *buf = so_calloc(len + 1, 1);
    protobuf_c_message_pack(&tr->base, buf);
    if (so_store_ensure(s, err, errlen) < 0) {
        free(buf);
        return -1;
    }
    const char *cmds[5][5] = {
        { "MULTI" },
        { "RPUSH", k_list, (const char *) buf },
        { "EXPIRE", k_list, ttl },
        { "SET", k_hb, handbook_version ? handbook_version : "", "EX", ttl },
        { "EXEC" },
    };
    int argc[5] = { 1, 3, 3, 5, 1 }, n = 0, rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++) {
        if (i == 3 && !(handbook_version && *handbook_version))
            continue;
        size_t lens[5];
        for (int j = 0; j < argc[i]; j++)
            lens[j] = (i == 1 && j == 2) ? len : strlen(cmds[i][j]);
        rc = so_st_append(s, argc[i], cmds[i], lens, err, errlen);
        n++;
    }
    free(buf);
    for (int i = 0; i < n && rc == 0; i++) {
        redisReply *r = so_st_get_reply(s, "push turn", err, errlen);
        if (!r)
            return -1;
        if (i == n - 1 && so_st_exec_ok(s, r, (size_t) n - 2, "push turn", err, errlen) < 0)
            rc = -1;
        freeReplyObject(r);
    }
    return rc;
}

int so_store_push_turn(so_store_t *s, const char *episode_id, const so_pb_turn_record_t *tr,
                       int ttl_s, char *err, size_t errlen)
{
    return so_store_push_turn_ex(s, episode_id, NULL, tr, ttl_s, err, errlen);
}

void so_store_turns_free(so_pb_turn_record_t ***turns_p, size_t n)
{
    if (!turns_p || !*turns_p)
        return;
    for (size_t i = 0; i < n; i++)
        if ((*turns_p)[i])
            skillorchestra__v1__turn_record__free_unpacked((*turns_p)[i], NULL);
    free(*turns_p);
    *turns_p = NULL;
}

int so_store_pending_turns(so_store_t *s, const char *episode_id, char *version, size_t vlen,
                           so_pb_turn_record_t ***turns_out, size_t *n_out, char *err,
                           size_t errlen)
{
    char k_list[S_KEY_MAX], k_hb[S_KEY_MAX];
    *turns_out = NULL;
    *n_out = 0;
    if (version && vlen)
        version[0] = '\0';
    if (!episode_id || !*episode_id || strlen(episode_id) > SO_WIRE_MAX_ID)
        return so_err(err, errlen, "bad episode id");
    so_store_key(s, k_list, sizeof k_list, "pending:%s", episode_id);
    so_store_key(s, k_hb, sizeof k_hb, "pending:%s:hb", episode_id);
    redisReply *r = so_st_command(s, err, errlen, "LRANGE %s 0 %d", k_list, SO_WIRE_MAX_TURNS);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        so_st_bad_reply(s, r, k_list, "a list", err, errlen);
        freeReplyObject(r);
        return -1;
    }
    if (r->elements > SO_WIRE_MAX_TURNS) {
        freeReplyObject(r);
        return so_err(err, errlen, "%s: more than %d turns", k_list, SO_WIRE_MAX_TURNS);
    }
    so_pb_turn_record_t **turns = so_calloc(r->elements, sizeof *turns);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e && e->type == REDIS_REPLY_STRING && e->len <= SO_WIRE_MAX_BODY)
            turns[i] = skillorchestra__v1__turn_record__unpack(NULL, e->len,
                                                               (const uint8_t *) e->str);
        if (!turns[i] || s_check_turn(episode_id, turns[i], err, errlen) < 0) {
            char why[200];
            snprintf(why, sizeof why, "%s", turns[i] ? err : "not a TurnRecord");
            so_err(err, errlen, "%s[%zu]: %s", k_list, i, why);
            so_store_turns_free(&turns, r->elements);
            freeReplyObject(r);
            return -1;
        }
    }
    size_t n = r->elements;
    freeReplyObject(r);
    r = so_st_command(s, err, errlen, "GET %s", k_hb);
    if (!r) {
        so_store_turns_free(&turns, n);
        return -1;
    }
    if (r->type == REDIS_REPLY_STRING && version && r->len < vlen && !memchr(r->str, 0, r->len)) {
        memcpy(version, r->str, r->len);
        version[r->len] = '\0';
    }
    freeReplyObject(r);
    *turns_out = turns;
    *n_out = n;
    return 0;
}

int so_store_drop_pending(so_store_t *s, const char *episode_id, char *err, size_t errlen)
{
    char k_list[S_KEY_MAX], k_hb[S_KEY_MAX];
    so_store_key(s, k_list, sizeof k_list, "pending:%s", episode_id);
    so_store_key(s, k_hb, sizeof k_hb, "pending:%s:hb", episode_id);
    redisReply *r = so_st_command(s, err, errlen, "DEL %s %s", k_list, k_hb);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Finishing an episode                                               */

#define S_FINISH_TRIES 8 /* WATCH rounds before giving up */

static int s_by_turn_index(const void *a, const void *b)
{
    const so_pb_turn_record_t *x = *(so_pb_turn_record_t *const *) a;
    const so_pb_turn_record_t *y = *(so_pb_turn_record_t *const *) b;
    return x->turn_index < y->turn_index ? -1 : x->turn_index > y->turn_index;
}

/* Sorts turns by index and drops repeats of an index (a retried push);
 * returns how many are kept at the front. */
static size_t s_unique_turns(so_pb_turn_record_t **turns, size_t n)
{
    size_t kept = 0;
    qsort(turns, n, sizeof *turns, s_by_turn_index);
    for (size_t i = 0; i < n; i++) {
        if (kept > 0 && turns[kept - 1]->turn_index == turns[i]->turn_index)
            continue;
        so_pb_turn_record_t *t = turns[kept];
        turns[kept++] = turns[i];
        turns[i] = t; /* the repeat moves behind: still freed with the rest */
    }
    return kept;
}

/* One round: WATCH, read, build, MULTI XADD DEL EXEC.  Returns 1 logged,
 * 0 nothing pending, 2 a watched key changed (try again), -1 error. */
static int s_finish_once(so_store_t *s, const char *episode_id, int has_success, int success,
                         double score, const char *version_if_none, char *err, size_t errlen)
{
    char k_list[S_KEY_MAX], k_hb[S_KEY_MAX], k_log[S_KEY_MAX], version[SO_WIRE_MAX_ID + 1];
    so_pb_turn_record_t **turns = NULL;
    size_t n = 0;
    so_store_key(s, k_list, sizeof k_list, "pending:%s", episode_id);
    so_store_key(s, k_hb, sizeof k_hb, "pending:%s:hb", episode_id);
    so_store_key(s, k_log, sizeof k_log, "episodes");
    redisReply *r = so_st_command(s, err, errlen, "WATCH %s %s", k_list, k_hb);
    if (!r)
        return -1;
    freeReplyObject(r);
    if (so_store_pending_turns(s, episode_id, version, sizeof version, &turns, &n, err, errlen) <
        0) {
        so_st_unwatch(s);
        return -1;
    }
    if (n == 0) {
        so_store_turns_free(&turns, n);
        so_st_unwatch(s);
        return 0;
    }
    so_pb_episode_outcome_t ep = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
    ep.episode_id = (char *) episode_id;
    ep.handbook_version = *version ? version : (char *) (version_if_none ? version_if_none : "");
    ep.turns = turns;
    ep.n_turns = s_unique_turns(turns, n);
    struct timeval now;
    gettimeofday(&now, NULL);
    ep.finished_unix_ms = (uint64_t) now.tv_sec * 1000u + (uint64_t) now.tv_usec / 1000u;
    int rc = 0;
    if (has_success) {
        ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
        ep.success = success != 0;
    } else if (isfinite(score) && score >= 0) {
        ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE;
        ep.score = score;
    } else {
        double sum = 0;
        size_t scored = 0;
        for (size_t i = 0; i < ep.n_turns; i++)
            if (turns[i]->score_opt_case == SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE) {
                sum += turns[i]->score;
                scored++;
            }
        if (scored == 0)
            rc = so_err(err, errlen,
                        "episode %s: no outcome given and none of its %zu turns "
                        "has a score",
                        episode_id, ep.n_turns);
        ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE;
        ep.score = scored ? sum / (double) scored : 0;
    }
    if (rc == 0 && !*ep.handbook_version)
        rc = so_err(err, errlen, "episode %s: no handbook version recorded or given", episode_id);
    uint8_t hdr[SO_WIRE_HDR_LEN], *body = NULL;
    size_t blen = 0;
    if (rc == 0)
        rc = so_wire_encode(SO_MSG_EPISODE_OUTCOME, &ep, hdr, &body, &blen, err, errlen);
    so_store_turns_free(&turns, n);
    if (rc < 0) {
        s->io_error = 0;
        so_st_unwatch(s);
        return -1;
    }
    const char *cmds[4][7] = {
        { "MULTI" },
        { "XADD", k_log, "*", "id", episode_id, "pb", body ? (const char *) body : "" },
        { "DEL", k_list, k_hb },
        { "EXEC" },
    };
    const int argc[4] = { 1, 7, 3, 1 };
    for (int i = 0; i < 4 && rc == 0; i++) {
        size_t lens[7];
        for (int j = 0; j < argc[i]; j++)
            lens[j] = (i == 1 && j == 6) ? blen : strlen(cmds[i][j]);
        rc = so_st_append(s, argc[i], cmds[i], lens, err, errlen);
    }
    free(body);
    if (rc < 0)
        return -1;
    int out = 1;
    for (int i = 0; i < 4; i++) {
        r = so_st_get_reply(s, "finish episode", err, errlen);
        if (!r)
            return -1;
        if (rc == 0 && i < 3 && r->type == REDIS_REPLY_ERROR) {
            s->io_error = 0;
            rc = so_err(err, errlen, "redis finish episode: %s", r->str);
        } else if (rc == 0 && i == 3) {
            if (r->type == REDIS_REPLY_NIL)
                out = 2;
            else if (so_st_exec_ok(s, r, 2, "finish episode", err, errlen) < 0)
                rc = -1;
        }
        freeReplyObject(r);
    }
    return rc < 0 ? -1 : out;
}

int so_store_finish_episode(so_store_t *s, const char *episode_id, int has_success, int success,
                            double score, const char *version_if_none, char *err, size_t errlen)
{
    if (!episode_id || !*episode_id || strlen(episode_id) > SO_WIRE_MAX_ID)
        return so_err(err, errlen, "bad episode id");
    if (!has_success && isfinite(score) && score > 1)
        return so_err(err, errlen, "episode %s: score %g outside [0, 1]", episode_id, score);
    if (version_if_none && *version_if_none &&
        so_st_check_version(version_if_none, err, errlen) < 0)
        return -1;
    for (int i = 0; i < S_FINISH_TRIES; i++) {
        int rc = s_finish_once(s, episode_id, has_success, success, score, version_if_none, err,
                               errlen);
        if (rc != 2)
            return rc;
    }
    s->io_error = 0;
    return so_err(err, errlen, "episode %s: its pending turns kept changing (%d tries)",
                  episode_id, S_FINISH_TRIES);
}
