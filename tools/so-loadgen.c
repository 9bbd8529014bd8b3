/*
 * so-loadgen — sends a recorded dataset through the gateway as a client
 * would, and reports what the service set did with it.
 *
 *   so-loadgen --gateway tcp://127.0.0.1:5555 --data FILE[,FILE...] [options]
 *
 * Every query of the data becomes an episode (its turns in order, each turn
 * after the previous one's answer, with the earlier turns and answers as
 * context); up to --concurrency episodes are in flight at once.  With the
 * replay agents every answer carries the recorded score of the chosen
 * agent, so the report is the router's real accuracy and cost on the data,
 * next to the best single agent, the oracle and uniform random on the same
 * queries.  Online learning shows as accuracy by quarter of the stream.
 */
#include "base/so_alloc.h"
#include "base/so_pctl.h"
#include "base/so_map.h"
#include "base/so_opts.h"
#include "offline/so_eval.h"
#include "base/so_rng.h"
#include "store/so_store.h"
#include "base/so_svc.h"
#include "offline/so_trace.h"
#include "wire/so_wire.h"

#include <zmq.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    size_t *samples; /* dataset sample indices, by turn */
    size_t n, cap;
    size_t next;    /* next turn to send */
    char **answers; /* [n] reply texts (context for later turns) */
    char id[64];
} s_ep_t;

typedef struct {
    const char *gateway, *data, *redis, *json_path;
    int concurrency, timeout_ms;
    long limit;
    unsigned long long shuffle; /* seed; 0 = the data's order */
    double lambda;
    int has_lambda;
    int progress_tty;
} s_opts_t;

typedef struct {
    s_opts_t o;
    so_dataset_t ds;
    s_ep_t *eps;
    size_t n_eps;
    void *ctx, *sock;
    /* in flight: slot → episode, send time */
    size_t *slot_ep;
    double *slot_sent; /* s_now() */
    int *slot_busy;
    unsigned long *slot_gen; /* bumped per turn sent: stale answers are ignored */
    size_t next_ep, done_eps, turns_done, turns_total;
    /* results, per turn in completion order */
    double *score, *cost, *lat_ms;
    size_t n_scored, n_res;
    size_t *calls;    /* [n_agents of ds] + 1 for unknown agents */
    so_map_t *skills; /* skill id → double* total weight */
    so_map_t *errors; /* "CODE: message" → size_t* count */
    size_t n_errors, n_timeouts, n_fallback;
    char version[SO_WIRE_MAX_ID + 1];
    int64_t t0;
} s_gen_t;

/* Monotonic milliseconds with microsecond resolution (latencies). */
static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static void s_add_sample(s_ep_t *e, size_t i)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 2;
        e->samples = so_reallocarray(e->samples, e->cap, sizeof *e->samples);
    }
    e->samples[e->n++] = i;
}

/* An episode's samples in turn order (insertion sort: a few turns each). */
static void s_sort_turns(const so_dataset_t *ds, s_ep_t *ep)
{
    for (size_t a = 1; a < ep->n; a++)
        for (size_t b = a;
             b > 0 && ds->samples[ep->samples[b]].turn < ds->samples[ep->samples[b - 1]].turn;
             b--) {
            size_t t = ep->samples[b];
            ep->samples[b] = ep->samples[b - 1];
            ep->samples[b - 1] = t;
        }
}

/* Groups the samples into episodes by query id, turns in order. */
static void s_build_episodes(s_gen_t *g)
{
    so_map_t *by_q = so_map_new(NULL);
    g->eps = so_calloc(g->ds.n_samples ? g->ds.n_samples : 1, sizeof *g->eps);
    for (size_t i = 0; i < g->ds.n_samples; i++) {
        const so_sample_t *s = &g->ds.samples[i];
        const char *q = s->query_id ? s->query_id : "";
        size_t idx = (size_t) (uintptr_t) so_map_get(by_q, q);
        if (idx == 0) {
            idx = ++g->n_eps;
            so_map_put(by_q, q, (void *) (uintptr_t) idx);
        }
        s_add_sample(&g->eps[idx - 1], i);
    }
    so_map_destroy(&by_q);
    if (g->o.shuffle) {
        so_rng_t rng;
        so_rng_seed(&rng, g->o.shuffle);
        for (size_t e = g->n_eps; e > 1; e--) {
            size_t j = (size_t) (so_rng_uniform(&rng) * (double) e);
            s_ep_t t = g->eps[e - 1];
            g->eps[e - 1] = g->eps[j < e ? j : e - 1];
            g->eps[j < e ? j : e - 1] = t;
        }
    }
    if (g->o.limit > 0 && (size_t) g->o.limit < g->n_eps) {
        for (size_t e = (size_t) g->o.limit; e < g->n_eps; e++)
            free(g->eps[e].samples);
        g->n_eps = (size_t) g->o.limit;
    }
    for (size_t e = 0; e < g->n_eps; e++) {
        s_ep_t *ep = &g->eps[e];
        s_sort_turns(&g->ds, ep);
        ep->answers = so_calloc(ep->n, sizeof *ep->answers);
        snprintf(ep->id, sizeof ep->id, "lg-%d-%zu", (int) getpid(), e);
        g->turns_total += ep->n;
    }
}

static int s_send_turn(s_gen_t *g, size_t slot)
{
    s_ep_t *ep = &g->eps[g->slot_ep[slot]];
    size_t k = ep->next;
    so_pb_chat_message_t msgs[2 * SO_WIRE_MAX_MESSAGES];
    so_pb_chat_message_t *pm[2 * SO_WIRE_MAX_MESSAGES];
    size_t nm = 0;
    for (size_t j = 0; j <= k && nm + 2 <= SO_WIRE_MAX_MESSAGES; j++) {
        const so_sample_t *s = &g->ds.samples[ep->samples[j]];
        skillorchestra__v1__chat_message__init(&msgs[nm]);
        msgs[nm].role = "user";
        msgs[nm].content = s->prompt ? s->prompt : "";
        pm[nm] = &msgs[nm];
        nm++;
        if (j < k) {
            skillorchestra__v1__chat_message__init(&msgs[nm]);
            msgs[nm].role = "assistant";
            msgs[nm].content = ep->answers[j] ? ep->answers[j] : "";
            pm[nm] = &msgs[nm];
            nm++;
        }
    }
    const so_sample_t *s = &g->ds.samples[ep->samples[k]];
    char rid[96];
    snprintf(rid, sizeof rid, "%zu.%lu", slot, ++g->slot_gen[slot]);
    so_pb_turn_request_t t = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    t.request_id = rid;
    t.episode_id = ep->id;
    t.turn_index = (uint32_t) k;
    t.mode = s->mode && strcmp(s->mode, "default") ? s->mode : "";
    t.messages = pm;
    t.n_messages = nm;
    t.final_turn = k + 1 == ep->n;
    if (g->o.has_lambda) {
        t.lambda_opt_case = SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA;
        t.lambda = g->o.lambda;
    }
    char err[512];
    if (so_wire_send(g->sock, NULL, SO_MSG_TURN_REQUEST, &t, 0, err, sizeof err) != 0) {
        fprintf(stderr, "so-loadgen: send: %s\n", err);
        return -1;
    }
    g->slot_sent[slot] = s_now();
    return 0;
}

static void s_count_error(s_gen_t *g, const char *what)
{
    size_t *c = so_map_get(g->errors, what);
    if (!c) {
        c = so_calloc(1, sizeof *c);
        so_map_put(g->errors, what, c);
    }
    (*c)++;
    g->n_errors++;
}

/* Starts the next episode in a free slot; an episode whose first turn
 * cannot be sent is counted as failed and the next one tried.  0, or -1
 * when no episode is left (the slot stays free). */
static int s_start(s_gen_t *g, size_t slot)
{
    g->slot_busy[slot] = 0;
    while (g->next_ep < g->n_eps) {
        s_ep_t *ep = &g->eps[g->next_ep];
        g->slot_ep[slot] = g->next_ep++;
        if (ep->n > 0) {
            g->slot_busy[slot] = 1;
            if (s_send_turn(g, slot) == 0)
                return 0;
            g->slot_busy[slot] = 0;
            s_count_error(g, "turn not sent (the reason is on stderr)");
            g->turns_done += ep->n;
        }
        g->done_eps++;
    }
    return -1;
}

/* The turn in slot ended (answered, failed or timed out): next turn of the
 * episode, or the next episode. */
static void s_advance(s_gen_t *g, size_t slot)
{
    s_ep_t *ep = &g->eps[g->slot_ep[slot]];
    g->turns_done++;
    ep->next++;
    if (ep->next < ep->n) {
        if (s_send_turn(g, slot) == 0)
            return;
        s_count_error(g, "turn not sent (the reason is on stderr)");
        g->turns_done += ep->n - ep->next; /* give up on the rest of the episode */
    }
    g->done_eps++;
    s_start(g, slot);
}

/* The version, fallbacks and skill demand a routing decision shows. */
static void s_on_decision(s_gen_t *g, const so_pb_routing_decision_t *d)
{
    snprintf(g->version, sizeof g->version, "%s", d->handbook_version);
    if (strstr(d->reason ? d->reason : "", "fallback:"))
        g->n_fallback++;
    for (size_t i = 0; i < d->n_top_skills; i++) {
        double *w = so_map_get(g->skills, d->top_skills[i]->skill_id);
        if (!w) {
            w = so_calloc(1, sizeof *w);
            so_map_put(g->skills, d->top_skills[i]->skill_id, w);
        }
        *w += d->top_skills[i]->weight;
    }
}

static void s_on_reply(s_gen_t *g, so_pb_turn_reply_t *rep)
{
    char *dot = NULL;
    unsigned long slot = strtoul(rep->request_id, &dot, 10);
    unsigned long gen = dot && *dot == '.' ? strtoul(dot + 1, NULL, 10) : 0;
    if (slot >= (unsigned long) g->o.concurrency || !g->slot_busy[slot] ||
        g->slot_gen[slot] != gen)
        return; /* a late answer to a turn we gave up on */
    s_ep_t *ep = &g->eps[g->slot_ep[slot]];
    size_t k = ep->next;
    double lat = s_now() - g->slot_sent[slot];
    if (rep->error && rep->error->code != 0) {
        char what[256];
        snprintf(what, sizeof what, "%d: %.200s", (int) rep->error->code,
                 rep->error->message ? rep->error->message : "");
        s_count_error(g, what);
    } else if (rep->result) {
        const so_pb_agent_result_t *res = rep->result;
        ep->answers[k] = so_strdup(rep->text ? rep->text : "");
        g->lat_ms[g->n_res] = lat;
        g->cost[g->n_res] = res->cost_usd;
        g->score[g->n_res] = res->replay_score_opt_case ? res->replay_score : NAN;
        g->n_scored += res->replay_score_opt_case != 0;
        g->n_res++;
        size_t a = 0;
        while (a < g->ds.n_agents && strcmp(g->ds.agents[a], res->agent_id) != 0)
            a++;
        g->calls[a]++;
        if (rep->decision)
            s_on_decision(g, rep->decision);
    }
    s_advance(g, slot);
}

/* Mean score and cost over the scored answers in [lo, hi); their number. */
static size_t s_mean(const s_gen_t *g, size_t lo, size_t hi, double *acc, double *cost)
{
    size_t n = 0;
    *acc = *cost = 0;
    for (size_t i = lo; i < hi; i++)
        if (isfinite(g->score[i])) {
            *acc += g->score[i];
            *cost += g->cost[i];
            n++;
        }
    if (n) {
        *acc /= (double) n;
        *cost /= (double) n;
    }
    return n;
}

static void s_progress(s_gen_t *g, int final)
{
    static int64_t last;
    static size_t last_pct = (size_t) -1;
    int64_t now = so_now_ms();
    size_t pct = g->turns_total ? 100 * g->turns_done / g->turns_total : 100;
    if (!final && (g->o.progress_tty ? now - last < 200 : pct / 10 == last_pct / 10))
        return;
    last = now;
    last_pct = pct;
    double acc, cost;
    s_mean(g, 0, g->n_res, &acc, &cost);
    double secs = (double) (now - g->t0) / 1000.0;
    char bar[21];
    for (int i = 0; i < 20; i++)
        bar[i] = (size_t) i < pct / 5 ? '#' : '.';
    bar[20] = '\0';
    fprintf(stderr,
            "%s[%s] %zu/%zu turns  accuracy %.3f  cost $%.6f/query  %.0f turns/s  errors %zu%s",
            g->o.progress_tty ? "\r" : "", bar, g->turns_done, g->turns_total, acc, cost,
            secs > 0 ? g->turns_done / secs : 0, g->n_errors,
            g->o.progress_tty && !final ? "" : "\n");
    fflush(stderr);
}

typedef struct {
    const char *id;
    double w;
} s_skill_t;

static int s_cmp_skill(const void *a, const void *b)
{
    double x = ((const s_skill_t *) a)->w, y = ((const s_skill_t *) b)->w;
    return x > y ? -1 : x < y;
}

/* The run's headline numbers. */
typedef struct {
    double secs, acc, cost, p50, p99;
} s_summary_t;

static void s_summary(const s_gen_t *g, double secs, s_summary_t *sm)
{
    sm->secs = secs;
    if (!s_mean(g, 0, g->n_res, &sm->acc, &sm->cost))
        sm->acc = sm->cost = NAN;
    so_pctl_double(g->lat_ms, g->n_res, g->n_res, &sm->p50, &sm->p99);
    if (!g->n_res)
        sm->p50 = sm->p99 = NAN;
}

/* The run next to the baselines on the same queries. */
static void s_print_table(const s_gen_t *g, const so_eval_t *base, const s_summary_t *sm)
{
    int b = base->best_single;
    printf("\n== SkillOrchestra service run: %zu episodes, %zu turns in %.1f s (%.0f turns/s)\n",
           g->n_eps, g->turns_total, sm->secs,
           sm->secs > 0 ? (double) g->turns_total / sm->secs : 0);
    printf("   answered %zu, errors %zu, timeouts %zu, agent fallbacks %zu; latency p50 %.2f ms, "
           "p99 %.2f ms\n",
           g->n_res, g->n_errors, g->n_timeouts, g->n_fallback, sm->p50, sm->p99);
    printf("   handbook version at the end: %s\n\n", g->version[0] ? g->version : "?");
    printf("  %-34s %9s %14s\n", "", "accuracy", "USD/query");
    printf("  %-34s %9.3f %14.6f\n", "SkillOrchestra (services, online)", sm->acc, sm->cost);
    if (b >= 0) {
        char name[64];
        snprintf(name, sizeof name, "best single: %.21s", g->ds.agents[b]);
        printf("  %-34s %9.3f %14.6f\n", name, base->single_acc[b], base->single_cost[b]);
    }
    printf("  %-34s %9.3f %14.6f\n", "oracle (cheapest correct)", base->oracle_acc,
           base->oracle_cost);
    printf("  %-34s %9.3f %14.6f\n", "uniform random", base->random_acc, base->random_cost);
    if (b >= 0 && base->single_cost[b] > 0 && isfinite(sm->cost))
        printf("  cost relative to the best single agent: %.0f%%\n",
               100.0 * sm->cost / base->single_cost[b]);
}

/* Online learning (accuracy by quarter of the stream) and calls per agent. */
static void s_print_breakdown(const s_gen_t *g)
{
    printf("\n  accuracy by quarter of the stream (online learning):");
    for (int q = 0; q < 4; q++) {
        double qacc, qcost;
        size_t m = s_mean(g, g->n_res * (size_t) q / 4, g->n_res * (size_t) (q + 1) / 4, &qacc,
                          &qcost);
        printf(" %.3f", m ? qacc : NAN);
    }
    printf("\n\n  calls per agent:\n");
    for (size_t a = 0; a <= g->ds.n_agents; a++)
        if (g->calls[a])
            printf("    %-40s %6zu  %5.1f%%\n", a < g->ds.n_agents ? g->ds.agents[a] : "(other)",
                   g->calls[a],
                   100.0 * (double) g->calls[a] / (double) (g->n_res ? g->n_res : 1));
}

/* The handbook of the run's last version, when Redis is at hand (names). */
static so_handbook_t *s_last_handbook(const s_gen_t *g)
{
    char err[256];
    if (!g->o.redis || !g->version[0])
        return NULL;
    so_store_t *st = so_store_connect(g->o.redis, NULL, 2000, err, sizeof err);
    so_handbook_t *hb = st ? so_store_get_handbook(st, g->version, err, sizeof err) : NULL;
    so_store_destroy(&st);
    return hb;
}

/* Top skills by share of the inferred demand, named from the handbook
 * when Redis is at hand; then the errors. */
static void s_print_skills_errors(const s_gen_t *g)
{
    size_t ns = so_map_size(g->skills), i = 0, it = 0;
    s_skill_t *sk = so_calloc(ns ? ns : 1, sizeof *sk);
    const char *key;
    void *val;
    while (so_map_next(g->skills, &it, &key, &val)) {
        sk[i].id = key;
        sk[i++].w = *(double *) val;
    }
    qsort(sk, ns, sizeof *sk, s_cmp_skill);
    so_handbook_t *hb = s_last_handbook(g);
    double tot = 0;
    for (i = 0; i < ns; i++)
        tot += sk[i].w;
    printf("\n  top skills (share of inferred demand):\n");
    for (i = 0; i < ns && i < 8; i++) {
        int s = hb ? so_handbook_skill_index(hb, sk[i].id) : -1;
        printf("    %-14s %5.1f%%  %s\n", sk[i].id, tot > 0 ? 100 * sk[i].w / tot : 0,
               s >= 0 && hb->skills[s].name ? hb->skills[s].name : "");
    }
    if (so_map_size(g->errors)) {
        printf("\n  errors:\n");
        for (it = 0; so_map_next(g->errors, &it, &key, &val);)
            printf("    %6zu  %s\n", *(size_t *) val, key);
    }
    so_handbook_destroy(&hb);
    free(sk);
}

static void s_write_json(const s_gen_t *g, const so_eval_t *base, const s_summary_t *sm)
{
    int b = base->best_single;
    json_t *root = json_pack("{s:i,s:i,s:i,s:i,s:f,s:f,s:f,s:f,s:s}", "episodes",
                             (json_int_t) g->n_eps, "turns", (json_int_t) g->turns_total,
                             "answered", (json_int_t) g->n_res, "errors",
                             (json_int_t) g->n_errors, "seconds", sm->secs, "p50_ms",
                             isfinite(sm->p50) ? sm->p50 : -1, "accuracy",
                             isfinite(sm->acc) ? sm->acc : -1, "cost",
                             isfinite(sm->cost) ? sm->cost : -1, "version", g->version);
    json_object_set_new(root, "p99_ms", json_real(isfinite(sm->p99) ? sm->p99 : -1));
    json_t *agents = json_object();
    for (size_t a = 0; a < g->ds.n_agents; a++)
        json_object_set_new(agents, g->ds.agents[a], json_integer((json_int_t) g->calls[a]));
    json_object_set_new(root, "calls", agents);
    if (b >= 0)
        json_object_set_new(root, "best_single",
                            json_pack("{s:s,s:f,s:f}", "model", g->ds.agents[b], "accuracy",
                                      base->single_acc[b], "cost", base->single_cost[b]));
    json_object_set_new(root, "oracle",
                        json_pack("{s:f,s:f}", "accuracy", base->oracle_acc, "cost",
                                  base->oracle_cost));
    json_object_set_new(root, "random",
                        json_pack("{s:f,s:f}", "accuracy", base->random_acc, "cost",
                                  base->random_cost));
    if (json_dump_file(root, g->o.json_path, JSON_INDENT(2)) != 0)
        fprintf(stderr, "so-loadgen: cannot write %s\n", g->o.json_path);
    json_decref(root);
}

static void s_report(s_gen_t *g, double secs)
{
    so_eval_t base;
    s_summary_t sm;
    so_eval_baselines(&g->ds, &base);
    s_summary(g, secs, &sm);
    s_print_table(g, &base, &sm);
    s_print_breakdown(g);
    s_print_skills_errors(g);
    if (g->o.json_path)
        s_write_json(g, &base, &sm);
    so_eval_free(&base);
}

/* -1 to go on, else the exit status. */
static int s_parse(int argc, char **argv, s_opts_t *o)
{
    long concurrency = 16, timeout_ms = 60000;
    const char *shuffle = NULL;
    memset(o, 0, sizeof *o);
    so_opt_t opts[] = {
        SO_OPT_STR("gateway", 0, &o->gateway, "ENDPOINT", "the gateway's client endpoint"),
        SO_OPT_STR("data", 0, &o->data, "FILE[,FILE...]", "the dataset to send"),
        SO_OPT_INT("concurrency", 0, &concurrency, "N", 1, 10000,
                   "episodes in flight at once (16)"),
        SO_OPT_INT("limit", 0, &o->limit, "N", 1, 1e15, "send only the first N queries"),
        SO_OPT_STR("shuffle", 0, &shuffle, "SEED",
                   "send the episodes in a random order (reproducible; SEED 1..2^64-1)"),
        SO_OPT_DBL("lambda", 0, &o->lambda, "L", 0, 1e6,
                   "cost trade-off sent with every turn (default: the router's)"),
        SO_OPT_INT("timeout-ms", 0, &timeout_ms, "MS", 10, 3600000,
                   "give up on a turn after this long (60000)"),
        SO_OPT_STR("redis", 0, &o->redis, "URL",
                   "read skill names from this Redis for the report"),
        SO_OPT_STR("json", 0, &o->json_path, "FILE", "write the report as JSON too"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    int code = so_opts_main(&p, argc, argv, "so-loadgen",
                            "so-loadgen --gateway ENDPOINT --data FILE[,FILE...] [options]",
                            NULL);
    if (code >= 0)
        return code;
    if (!o->gateway || !o->data) {
        fprintf(stderr, "so-loadgen: --gateway and --data are required (so-loadgen --help)\n");
        return 2;
    }
    o->concurrency = (int) concurrency;
    o->timeout_ms = (int) timeout_ms;
    if (shuffle) {
        char *end = NULL;
        errno = 0;
        o->shuffle = *shuffle >= '0' && *shuffle <= '9' ? strtoull(shuffle, &end, 10) : 0;
        if (!end || *end || errno || o->shuffle == 0) {
            fprintf(stderr, "so-loadgen: --shuffle: '%s' is not a seed in 1..2^64-1\n", shuffle);
            return 2;
        }
    }
    o->has_lambda = so_opts_seen(&p, "lambda") > 0;
    o->progress_tty = isatty(2);
    return -1;
}

/* The per-slot and per-turn arrays, once the episodes are built. */
static void s_alloc(s_gen_t *g)
{
    size_t C = (size_t) g->o.concurrency, T = g->turns_total ? g->turns_total : 1;
    g->slot_ep = so_calloc(C, sizeof *g->slot_ep);
    g->slot_sent = so_calloc(C, sizeof *g->slot_sent);
    g->slot_busy = so_calloc(C, sizeof *g->slot_busy);
    g->slot_gen = so_calloc(C, sizeof *g->slot_gen);
    g->score = so_calloc(T, sizeof *g->score);
    g->cost = so_calloc(T, sizeof *g->cost);
    g->lat_ms = so_calloc(T, sizeof *g->lat_ms);
    g->calls = so_calloc(g->ds.n_agents + 1, sizeof *g->calls);
    g->skills = so_map_new(free);
    g->errors = so_map_new(free);
}

static void s_free(s_gen_t *g)
{
    for (size_t e = 0; e < g->n_eps; e++) {
        for (size_t k = 0; k < g->eps[e].n; k++)
            free(g->eps[e].answers[k]);
        free(g->eps[e].answers);
        free(g->eps[e].samples);
    }
    free(g->eps);
    free(g->slot_ep);
    free(g->slot_sent);
    free(g->slot_busy);
    free(g->slot_gen);
    free(g->score);
    free(g->cost);
    free(g->lat_ms);
    free(g->calls);
    so_map_destroy(&g->skills);
    so_map_destroy(&g->errors);
    so_dataset_free(&g->ds);
}

/* Takes what the gateway answered, up to 1000 replies at a time. */
static void s_drain(s_gen_t *g)
{
    char err[512];
    for (int i = 0; i < 1000; i++) {
        void *msg = NULL;
        if (so_wire_recv(g->sock, NULL, SO_MSG_TURN_REPLY, NULL, &msg, ZMQ_DONTWAIT, err,
                         sizeof err) != 0) {
            if (errno != EPROTO)
                return;
            s_count_error(g, err);
            continue;
        }
        s_on_reply(g, msg);
        so_wire_free(SO_MSG_TURN_REPLY, msg);
    }
}

/* Sends and receives until every episode is done (or a signal). */
static void s_loop(s_gen_t *g)
{
    size_t C = (size_t) g->o.concurrency;
    for (size_t s = 0; s < C; s++)
        if (s_start(g, s) < 0)
            break;
    while (g->done_eps < g->n_eps && !so_stopping()) {
        zmq_pollitem_t item = { g->sock, 0, ZMQ_POLLIN, 0 };
        zmq_poll(&item, 1, 100);
        if (item.revents & ZMQ_POLLIN)
            s_drain(g);
        /* Turns without an answer in time are given up. */
        double now = s_now();
        for (size_t s = 0; s < C; s++)
            if (g->slot_busy[s] && now - g->slot_sent[s] > g->o.timeout_ms) {
                g->n_timeouts++;
                s_count_error(g, "client timeout: no answer in --timeout-ms");
                s_advance(g, s);
            }
        s_progress(g, 0);
    }
}

int main(int argc, char **argv)
{
    s_gen_t g;
    memset(&g, 0, sizeof g);
    int code = s_parse(argc, argv, &g.o);
    if (code >= 0)
        return code;
    char err[512];
    if (so_dataset_load(&g.ds, g.o.data, err, sizeof err) < 0) {
        fprintf(stderr, "so-loadgen: %s\n", err);
        return 1;
    }
    s_build_episodes(&g);
    s_alloc(&g);
    size_t C = (size_t) g.o.concurrency;
    so_wire_sockopts_t opts;
    so_wire_sockopts_defaults(&opts);
    opts.sndhwm = opts.rcvhwm = (int) (C * 4 > 1000 ? C * 4 : 1000);
    g.ctx = zmq_ctx_new();
    g.sock = zmq_socket(g.ctx, ZMQ_DEALER);
    int rc = 1;
    if (!g.sock || so_wire_set_sockopts(g.sock, &opts, err, sizeof err) != 0 ||
        zmq_connect(g.sock, g.o.gateway) != 0) {
        fprintf(stderr, "so-loadgen: connect %s: %s\n", g.o.gateway,
                g.sock ? zmq_strerror(errno) : err);
    } else {
        fprintf(stderr, "so-loadgen: %zu episodes, %zu turns from %s → %s, %d in flight\n",
                g.n_eps, g.turns_total, g.o.data, g.o.gateway, g.o.concurrency);
        g.t0 = so_now_ms();
        so_signals_install();
        s_loop(&g);
        s_progress(&g, 1);
        s_report(&g, (double) (so_now_ms() - g.t0) / 1000.0);
        rc = so_stopping() ? 1 : (g.n_res > 0 ? 0 : 1);
    }
    if (g.sock) {
        int linger = 0;
        zmq_setsockopt(g.sock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(g.sock);
    }
    zmq_ctx_term(g.ctx);
    s_free(&g);
    return rc;
}
