/*
 * so_learner_batch — one read of the episode log: decode, find each
 * episode's handbook (so_hbcache, a few versions), apply in one
 * pipeline (so_store_apply_many), dead-letter what cannot be used, and
 * acknowledge (so_store_finish_batch).  See so_learner.h.
 */
#include "so_learner_int.h"
#include "base/so_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CLAIM_PAGES 10 /* XAUTOCLAIM pages per claim tick */

/* One entry of a batch. */
typedef struct {
    const char *id; /* borrowed from the entries */
    const char *pb;
    size_t pb_len;
    so_pb_episode_outcome_t *ep;
    const so_handbook_t *hb; /* borrowed from the cache */
    enum { S_APPLY, S_ACK, S_DEAD } what;
    char reason[256];
} s_item_t;

/* The handbook of a version: 0 with *hb, 1 when Redis has none usable (why
 * says what), -1 when Redis failed. */
static int s_handbook(so_learner_t *l, const char *version, const so_handbook_t **hb, char *why,
                      size_t wlen)
{
    so_hbcache_status_t st;
    const so_hbcache_entry_t *e = so_hbcache_get(l->books, version, &st, why, wlen);
    if (e) {
        *hb = e->hb;
        return 0;
    }
    if (st != SO_HBCACHE_UNAVAILABLE)
        return 1;
    snprintf(l->err, sizeof l->err, "%s", why);
    so_lrn_down(l);
    return -1;
}

/* ------------------------------------------------------------------ */
/* A batch                                                            */

/* What the learner does with a delivered entry.  Returns 0, or -1 if the
 * entry has no usable id (it cannot even be acknowledged). */
static int s_item_parse(const so_store_entry_t *e, s_item_t *it)
{
    memset(it, 0, sizeof *it);
    switch (e->kind) {
    case SO_STORE_ENTRY_NO_ID: return -1;
    case SO_STORE_ENTRY_DELETED:
        it->what = S_ACK;
        snprintf(it->reason, sizeof it->reason, "entry deleted from the log");
        break;
    case SO_STORE_ENTRY_NOT_LIST:
        it->what = S_DEAD;
        snprintf(it->reason, sizeof it->reason, "fields are not a list");
        break;
    case SO_STORE_ENTRY_NO_PB:
        it->what = S_DEAD;
        snprintf(it->reason, sizeof it->reason, "no pb field");
        break;
    case SO_STORE_ENTRY_OK: break;
    }
    it->id = e->id;
    it->pb = e->pb;
    it->pb_len = e->pb_len;
    return 0;
}

static void s_items_free(s_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        so_store_episode_free(&items[i].ep);
    free(items);
}

/* Moves dead entries to the dead-letter stream and acknowledges the whole
 * batch, in one pipeline.  A dead-letter write Redis refuses is logged and
 * the entry acknowledged anyway: the entry itself stays in the log. */
static int s_finish_batch(so_learner_t *l, s_item_t *items, size_t n)
{
    so_store_dead_t *dead = so_calloc(n, sizeof *dead);
    const char **ack = so_calloc(n, sizeof *ack);
    size_t n_dead = 0, n_ack = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].id)
            continue;
        ack[n_ack++] = items[i].id;
        if (items[i].what != S_DEAD)
            continue;
        so_store_dead_t *d = &dead[n_dead++];
        d->id = items[i].id;
        d->reason = items[i].reason;
        d->pb = items[i].pb;
        d->pb_len = items[i].pb_len;
    }
    int rc = so_store_finish_batch(l->store, l->group, l->o.consumer, l->o.dead_maxlen, dead,
                                   n_dead, ack, n_ack, l->err, sizeof l->err);
    free(dead);
    free(ack);
    if (rc < 0)
        so_lrn_down(l);
    return rc;
}

/* Handles the entries of one read: decode, look up handbooks, apply in a
 * pipeline, dead-letter what cannot be used, acknowledge.  Returns the
 * number of entries, or -1 if Redis failed (nothing acknowledged). */
static int s_handle(so_learner_t *l, const so_store_entries_t *entries)
{
    size_t n = entries->n;
    if (n == 0)
        return 0;
    so_hbcache_hold(l->books);
    l->st.read += n;
    l->st.batches++;
    s_item_t *items = so_calloc(n, sizeof *items);
    const so_handbook_t **hbs = so_calloc(n, sizeof *hbs);
    const so_pb_episode_outcome_t **eps = so_calloc(n, sizeof *eps);
    int *applied = so_calloc(n, sizeof *applied);
    size_t *idx = so_calloc(n, sizeof *idx), m = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        s_item_t *it = &items[i];
        if (s_item_parse(&entries->v[i], it) < 0) {
            so_error("entry_unreadable", "stream=%s index=%zu (no id: cannot acknowledge)",
                     l->k_log, i);
            continue;
        }
        if (it->what != S_APPLY)
            continue;
        char e[256];
        if (so_store_decode_episode(it->pb, it->pb_len, &it->ep, e, sizeof e) < 0) {
            it->what = S_DEAD;
            snprintf(it->reason, sizeof it->reason, "undecodable: %.230s", e);
            continue;
        }
        int h = s_handbook(l, it->ep->handbook_version, &it->hb, e, sizeof e);
        if (h < 0) {
            rc = -1;
        } else if (h > 0) {
            it->what = S_DEAD;
            snprintf(it->reason, sizeof it->reason, "handbook %.100s: %.140s",
                     it->ep->handbook_version, e);
        } else {
            hbs[m] = it->hb;
            eps[m] = it->ep;
            idx[m++] = i;
        }
    }
    if (rc == 0 && m > 0 &&
        so_store_apply_many(l->store, hbs, eps, m, applied, l->err, sizeof l->err) < 0) {
        so_lrn_down(l);
        rc = -1;
    }
    for (size_t k = 0; k < m && rc == 0; k++) {
        s_item_t *it = &items[idx[k]];
        if (applied[k] < 0) {
            /* Ask again alone for this episode's own reason. */
            char e[256] = "";
            int again = so_store_apply_episode(l->store, it->hb, it->ep, e, sizeof e);
            if (again < 0 && so_store_io_error(l->store)) {
                snprintf(l->err, sizeof l->err, "%s", e);
                so_lrn_down(l);
                rc = -1;
                break;
            }
            applied[k] = again;
            if (again < 0) {
                it->what = S_DEAD;
                snprintf(it->reason, sizeof it->reason, "rejected: %.230s", e);
                continue;
            }
        }
        it->what = S_ACK;
        if (applied[k] == 1)
            l->st.applied++;
        else
            l->st.duplicates++;
        so_debug("episode_applied", "entry=%s episode_id=%s version=%s new=%d", it->id,
                 it->ep->episode_id, it->ep->handbook_version, applied[k]);
    }
    if (rc == 0)
        rc = s_finish_batch(l, items, n);
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            if (items[i].what == S_DEAD) {
                l->st.dead++;
                so_warn("episode_dead", "entry=%s dead_stream=%s reason=\"%s\"", items[i].id,
                        l->k_dead, items[i].reason);
            }
    s_items_free(items, n);
    free(hbs);
    free(eps);
    free(applied);
    free(idx);
    return rc < 0 ? -1 : (int) n;
}
/* XREADGROUP from id ("0": our pending entries; ">": new ones, blocking). */
int so_lrn_read(so_learner_t *l, const char *id, int block)
{
    so_store_entries_t got;
    if (so_store_read_group(l->store, l->group, l->o.consumer, id, l->o.batch,
                            block ? l->o.block_ms : -1, &got, l->err, sizeof l->err) < 0) {
        so_lrn_down(l);
        return -1;
    }
    int rc = s_handle(l, &got);
    so_store_entries_free(&got);
    return rc;
}

/* Takes over entries other consumers (dead ones, most likely) left
 * unacknowledged for claim_min_idle_ms, and handles them. */
int so_lrn_claim(so_learner_t *l)
{
    char cursor[64] = "0-0";
    int total = 0;
    for (int page = 0; page < S_CLAIM_PAGES; page++) {
        so_store_entries_t got;
        if (so_store_claim(l->store, l->group, l->o.consumer, l->o.claim_min_idle_ms, cursor,
                           l->o.batch, &got, l->err, sizeof l->err) < 0) {
            so_lrn_down(l);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", got.cursor);
        size_t n = got.n;
        int rc = s_handle(l, &got);
        so_store_entries_free(&got);
        if (rc < 0)
            return -1;
        if (n) {
            l->st.claimed += n;
            so_info("entries_claimed", "count=%zu min_idle_ms=%d", n, l->o.claim_min_idle_ms);
        }
        total += (int) n;
        if (strcmp(cursor, "0-0") == 0)
            break;
    }
    return total;
}
