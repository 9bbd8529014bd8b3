/*
 * so_trace — episodes and the per-query outcome table built from them
 * (see so_trace.h and docs/TRACES.md).  This file owns the episode list
 * (clear, push, concat, free), the dispatch of a path to its reader, and
 * the dataset; the readers and the writer are in so_trace_*.c (the list is
 * in so_trace_int.h).
 *
 * Every loader resets its output on entry and leaves it empty on error, so
 * a caller never frees a half-filled structure by hand.  Strings and arrays
 * are separate malloc(3) blocks, released by so_episodes_free() /
 * so_dataset_free().  Allocation follows so_alloc (out of memory aborts).
 */
#include "offline/so_trace.h"
#include "offline/so_trace_int.h"
#include "base/so_alloc.h"
#include "base/so_buf.h"
#include "base/so_err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ */
/* episodes                                                             */

static void s_turn_clear(so_turn_t *t)
{
    free(t->mode);
    free(t->agent);
    free(t->prompt);
    memset(t, 0, sizeof *t);
}

void so_trace_turn_unknown(so_turn_t *t)
{
    memset(t, 0, sizeof *t);
    t->prompt_tokens = t->completion_tokens = t->cost_usd = t->latency_s = t->score = NAN;
}

void so_episode_clear(so_episode_t *ep)
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

void so_episodes_free(so_episodes_t *eps)
{
    if (!eps)
        return;
    for (size_t i = 0; i < eps->n; i++)
        so_episode_clear(&eps->items[i]);
    free(eps->items);
    memset(eps, 0, sizeof *eps);
}

/* Room for n more episodes (capacity doubles from 64). */
static void s_episodes_reserve(so_episodes_t *eps, size_t n)
{
    if (eps->n + n <= eps->cap)
        return;
    size_t ncap = eps->cap ? eps->cap : 64;
    while (ncap < eps->n + n)
        ncap *= 2;
    eps->items = so_reallocarray(eps->items, ncap, sizeof *eps->items);
    eps->cap = ncap;
}

int so_episodes_push(so_episodes_t *eps, so_episode_t *ep)
{
    s_episodes_reserve(eps, 1);
    eps->items[eps->n++] = *ep;
    memset(ep, 0, sizeof *ep);
    ep->outcome = NAN;
    return 0;
}

int so_episodes_concat(so_episodes_t *dst, so_episodes_t *src)
{
    s_episodes_reserve(dst, src->n);
    if (src->n)
        memcpy(dst->items + dst->n, src->items, src->n * sizeof *src->items);
    dst->n += src->n;
    dst->skipped += src->skipped;
    free(src->items);
    memset(src, 0, sizeof *src);
    return 0;
}

/* ------------------------------------------------------------------ */
/* dispatch                                                             */

int so_episodes_read_any(so_episodes_t *eps, const char *path, char *err, size_t errlen)
{
    struct stat st;
    memset(eps, 0, sizeof *eps);
    if (stat(path, &st) != 0)
        return so_err(err, errlen, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return so_episodes_read_mtbench(eps, path, err, errlen);
    size_t n = strlen(path);
    if (n >= 4 && strcasecmp(path + n - 4, ".csv") == 0)
        return so_episodes_read_routerbench(eps, path, err, errlen);
    return so_episodes_read_jsonl(eps, path, err, errlen);
}

/* ------------------------------------------------------------------ */
/* dataset                                                              */

static void s_sample_free(so_sample_t *s)
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

void so_dataset_free(so_dataset_t *ds)
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

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

int so_dataset_agent_index(const so_dataset_t *ds, const char *agent)
{
    if (!ds || !agent || !ds->n_agents)
        return -1;
    char *const *hit = bsearch(&agent, ds->agents, ds->n_agents, sizeof *ds->agents, s_cmp_str);
    return hit ? (int) (hit - ds->agents) : -1;
}

static double *s_nan_array(size_t n)
{
    double *a = so_malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = NAN;
    return a;
}

/* The sorted unique agents of every turn ("" for a turn without one). */
static void s_dataset_agents(so_dataset_t *ds, const so_episodes_t *eps)
{
    so_map_t *agents = so_map_new(NULL);
    for (size_t e = 0; e < eps->n; e++) {
        const so_episode_t *ep = &eps->items[e];
        for (size_t t = 0; t < ep->n_turns; t++)
            so_map_put(agents, ep->turns[t].agent ? ep->turns[t].agent : "", NULL);
    }
    size_t n = so_map_size(agents), it = 0;
    const char *key;
    ds->agents = so_calloc(n ? n : 1, sizeof *ds->agents);
    while (so_map_next(agents, &it, &key, NULL))
        ds->agents[ds->n_agents++] = so_strdup(key);
    so_map_destroy(&agents);
    qsort(ds->agents, ds->n_agents, sizeof *ds->agents, s_cmp_str);
}

static so_sample_t *s_sample_new(so_dataset_t *ds, size_t *cap, const char *qid,
                                 const so_episode_t *ep, const so_turn_t *tu, size_t t)
{
    if (ds->n_samples == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        ds->samples = so_reallocarray(ds->samples, *cap, sizeof *ds->samples);
    }
    size_t na = ds->n_agents;
    so_sample_t *s = &ds->samples[ds->n_samples++];
    memset(s, 0, sizeof *s);
    s->turn = (int) t;
    s->query_id = so_strdup(qid);
    s->task = so_strdup(ep->task ? ep->task : "");
    s->mode = so_strdup(tu->mode ? tu->mode : "");
    s->prompt = so_strdup(tu->prompt ? tu->prompt : "");
    s->score = s_nan_array(na);
    s->cost = s_nan_array(na);
    s->prompt_tokens = s_nan_array(na);
    s->completion_tokens = s_nan_array(na);
    s->latency = s_nan_array(na);
    return s;
}

/* Drops samples in which no agent has a score (order kept). */
static void s_dataset_drop_unscored(so_dataset_t *ds)
{
    size_t w = 0, na = ds->n_agents;
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
}

/* Why a hash table: RouterBench alone gives ~35k episodes over ~3k
 * queries; a linear scan per episode would be quadratic.  Samples are keyed
 * on "query_id \x1f turn" and appended in order of first appearance. */
int so_dataset_from_episodes(so_dataset_t *ds, const so_episodes_t *eps, char *err, size_t errlen)
{
    (void) err;
    (void) errlen;
    memset(ds, 0, sizeof *ds);
    s_dataset_agents(ds, eps);
    size_t na = ds->n_agents, cap_samples = 0;
    so_map_t *keys = so_map_new(NULL);
    so_buf_t filled = SO_BUF_INIT; /* [sample * na]: a record was taken */
    so_buf_t key = SO_BUF_INIT;

    for (size_t e = 0; e < eps->n; e++) {
        const so_episode_t *ep = &eps->items[e];
        const char *qid = ep->query_id ? ep->query_id : (ep->id ? ep->id : "");
        for (size_t t = 0; t < ep->n_turns; t++) {
            const so_turn_t *tu = &ep->turns[t];
            so_buf_reset(&key);
            so_buf_appendf(&key, "%s\x1f%zu", qid, t);
            size_t si = ds->n_samples;
            if (!so_trace_idx_get(keys, so_buf_str(&key), &si)) {
                so_trace_idx_put(keys, so_buf_str(&key), si);
                s_sample_new(ds, &cap_samples, qid, ep, tu, t);
                so_buf_reserve(&filled, na);
                memset(filled.data + filled.len, 0, na + 1); /* and the NUL */
                filled.len += na;
            }
            int ai = so_dataset_agent_index(ds, tu->agent ? tu->agent : "");
            if (ai < 0 || filled.data[si * na + (size_t) ai])
                continue; /* a repeated (query, turn, agent): first record wins */
            filled.data[si * na + (size_t) ai] = 1;
            so_sample_t *s = &ds->samples[si];
            s->score[ai] = tu->score;
            s->cost[ai] = tu->cost_usd;
            s->prompt_tokens[ai] = tu->prompt_tokens;
            s->completion_tokens[ai] = tu->completion_tokens;
            s->latency[ai] = tu->latency_s;
        }
    }
    s_dataset_drop_unscored(ds);
    ds->skipped = eps->skipped;
    so_map_destroy(&keys);
    so_buf_free(&filled);
    so_buf_free(&key);
    return 0;
}

int so_dataset_load(so_dataset_t *ds, const char *paths, char *err, size_t errlen)
{
    memset(ds, 0, sizeof *ds);
    so_episodes_t all = { 0 }, one = { 0 };
    char *copy = so_strdup(paths ? paths : "");
    int ret = -1;
    size_t n_paths = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char) *tok))
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char) end[-1]))
            *--end = '\0';
        if (!*tok)
            continue;
        n_paths++;
        if (so_episodes_read_any(&one, tok, err, errlen) < 0)
            goto done;
        so_episodes_concat(&all, &one);
    }
    if (n_paths == 0) {
        so_err(err, errlen, "no input paths given");
        goto done;
    }
    ret = so_dataset_from_episodes(ds, &all, err, errlen);
done:
    so_episodes_free(&all);
    free(copy);
    return ret;
}
