/*
 * so_learner_refine — now and then, merge the current handbook's skills on
 * its online statistics and publish the result (see so_learner.h,
 * "Refinement").
 */
#include "so_learner_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The current version, read now (so_hbwatch): 1 with it in buf, 0 none
 * published, -1 Redis failed (l->err says why). */
static int s_current(so_learner_t *l, char *buf, size_t len)
{
    if (so_hbwatch_poll(l->watch) < 0) {
        snprintf(l->err, sizeof l->err, "%s", so_hbwatch_error(l->watch));
        return -1;
    }
    snprintf(buf, len, "%s", so_hbwatch_current(l->watch));
    if (!*buf)
        snprintf(l->err, sizeof l->err, "%s", so_hbwatch_none_reason(l->watch));
    return *buf ? 1 : 0;
}

/* "<base>.r<N+1>" for "<base>.r<N>", else "<version>.r1"; the first such
 * name not yet published.  0 or -1 (too long, or Redis failed). */
static int s_next_version(so_learner_t *l, const char *cur, char *out, size_t len)
{
    char base[SO_WIRE_MAX_ID + 1];
    snprintf(base, sizeof base, "%s", cur);
    long n = 1;
    char *dot = strrchr(base, '.');
    if (dot && dot[1] == 'r' && dot[2] >= '0' && dot[2] <= '9') {
        char *end;
        errno = 0;
        long k = strtol(dot + 2, &end, 10);
        if (!*end && !errno && k >= 0 && k < 1000000000L) {
            n = k + 1;
            *dot = '\0';
        }
    }
    char **versions = NULL;
    size_t nv = 0;
    if (so_store_versions(l->store, &versions, &nv, l->err, sizeof l->err) < 0)
        return -1;
    int rc = -1;
    for (int tries = 0; tries < 1000; tries++, n++) {
        int w = snprintf(out, len, "%s.r%ld", base, n);
        if (w < 0 || (size_t) w >= len || w > SO_WIRE_MAX_ID) {
            snprintf(l->err, sizeof l->err, "refined version name of '%s' too long", cur);
            break;
        }
        int taken = 0;
        for (size_t i = 0; i < nv && !taken; i++)
            taken = strcmp(versions[i], out) == 0;
        if (!taken) {
            rc = 0;
            break;
        }
    }
    so_store_strv_free(&versions, nv);
    return rc;
}

/* Under the lock: merge the current version's skills on its bootstrap +
 * online statistics and publish the result if anything merged.  Records
 * the sequence number it looked at in so:refined:<version>.  0 or -1. */
static int s_refine_locked(so_learner_t *l, const char *cur)
{
    char now_cur[SO_WIRE_MAX_ID + 1], name[SO_WIRE_MAX_ID + 1];
    int got_cur = s_current(l, now_cur, sizeof now_cur);
    if (got_cur == 0) {
        char key[S_KEY_MAX];
        so_store_key(l->store, key, sizeof key, "hb:current");
        snprintf(l->err, sizeof l->err, "no current handbook (%.400s is not set)", key);
    }
    if (got_cur <= 0)
        return -1;
    if (strcmp(now_cur, cur) != 0)
        return 0; /* someone published meanwhile */
    l->st.refines++;
    so_handbook_t *hb = so_store_get_handbook(l->store, cur, l->err, sizeof l->err);
    if (!hb)
        return -1;
    long long seq = 0;
    size_t unknown = 0;
    int rc = so_store_load_stats(l->store, hb, &seq, &unknown, l->err, sizeof l->err);
    so_handbook_t *out = NULL;
    size_t merged = 0;
    if (rc == 0 && (rc = s_next_version(l, cur, name, sizeof name)) == 0) {
        out = so_refine_merge(hb, &l->o.merge, name, &merged, l->err, sizeof l->err);
        rc = out ? 0 : -1;
    }
    if (rc == 0 && (merged > 0 || l->o.refine_always_publish)) {
        int p = so_store_put_handbook_if(l->store, out, cur, l->err, sizeof l->err);
        if (p < 0) {
            rc = -1;
        } else if (p == 0) {
            so_info("refine_raced", "version=%s (current moved; not published)", name);
        } else {
            char gone[512] = "";
            size_t used = 0;
            for (size_t s = 0; s < hb->n_skills; s++) {
                const char *id = hb->skills[s].id;
                if (so_handbook_skill_index(out, id) < 0 && used + strlen(id) + 2 < sizeof gone)
                    used += (size_t) snprintf(gone + used, sizeof gone - used, "%s%s",
                                              used ? "," : "", id);
            }
            l->st.published++;
            so_info("handbook_refined",
                    "version=%s parent=%s seq=%lld merged=%zu skills=%zu->%zu "
                    "merged_away=%s",
                    name, cur, seq, merged, hb->n_skills, out->n_skills, *gone ? gone : "-");
        }
    } else if (rc == 0) {
        so_info("refine_checked", "version=%s seq=%lld merged=0 (nothing to publish)", cur, seq);
    }
    if (rc == 0 && so_store_set_refined(l->store, cur, seq, l->err, sizeof l->err) < 0) {
        so_lrn_down(l);
        rc = -1;
    }
    so_handbook_destroy(&out);
    so_handbook_destroy(&hb);
    return rc;
}

/* Due when refine_every episodes were applied to the current version
 * since the last check.  0 (done or not due) or -1 (Redis failed). */
int so_lrn_refine_tick(so_learner_t *l)
{
    char cur[SO_WIRE_MAX_ID + 1];
    long long seq = 0, last = 0;
    int got_cur = s_current(l, cur, sizeof cur);
    if (got_cur <= 0)
        return got_cur; /* Redis failed, or no handbook yet */
    if (so_store_seq(l->store, cur, &seq, l->err, sizeof l->err) < 0)
        return so_store_io_error(l->store) ? -1 : 0;
    if (seq < l->o.refine_every)
        return 0;
    if (so_store_refined_seq(l->store, cur, &last, l->err, sizeof l->err) < 0) {
        so_lrn_down(l);
        return -1;
    }
    if (seq - last < l->o.refine_every)
        return 0;
    int got = so_store_lock(l->store, "refine", l->o.consumer, l->o.refine_lock_ttl_ms, l->err,
                            sizeof l->err);
    if (got <= 0)
        return got < 0 && so_store_io_error(l->store) ? -1 : 0;
    int rc = s_refine_locked(l, cur);
    if (rc < 0 && !so_store_io_error(l->store))
        so_error("refine_failed", "version=%s error=\"%s\"", cur, l->err);
    char e[128];
    so_store_unlock(l->store, "refine", l->o.consumer, e, sizeof e);
    return rc < 0 && so_store_io_error(l->store) ? -1 : 0;
}
