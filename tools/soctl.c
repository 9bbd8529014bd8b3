/*
 * soctl — look at and operate the shared state in Redis (handbooks, online
 * competence, the episode log, the learners).  See `soctl --help` and
 * `soctl COMMAND --help`.
 *
 * One function per command, each with its own option table (so_opts); the
 * command table at the end names them.
 *
 * Exit status: 0 done; 1 failed (Redis, not found, a mismatch: the message
 * says which); 2 usage.
 */
#include "base/so_alloc.h"
#include "base/so_opts.h"
#include "base/so_rng.h"
#include "base/so_svc.h"
#include "base/so_text.h"
#include "method/so_infer.h"
#include "method/so_route.h"
#include "store/so_hbcache.h"
#include "store/so_store.h"
#include "wire/so_wire.h"


#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_EXIT_FAIL 1
#define S_EXIT_USAGE 2
#define S_MAX_SKILLS 64

/* What every command gets: where Redis is, and the connection once made. */
typedef struct {
    const char *url, *prefix;
    so_store_t *store;
} s_ctx_t;

/* Says "soctl: <message>" on stderr and returns code: 1 for a failure, 2
 * for a usage error (which also points at --help). */
static int s_say(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int s_say(int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "soctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, code == S_EXIT_USAGE ? " (soctl --help)\n" : "\n");
    return code;
}

#define s_fail(...) s_say(S_EXIT_FAIL, __VA_ARGS__)
#define s_bad_usage(...) s_say(S_EXIT_USAGE, __VA_ARGS__)

/* A command's options: argv[0] is the command.  -1 to go on, else the exit
 * status (after --help or a usage error). */
static int s_opts(so_opts_t *p, int argc, char **argv, const char *synopsis)
{
    char line[256];
    snprintf(line, sizeof line, "soctl [--redis URL] [--prefix P] %s", synopsis);
    return so_opts_main(p, argc, argv, "soctl", line, NULL);
}

/* The store (connected on first use, closed by main), or NULL after a message. */
static so_store_t *s_store(s_ctx_t *c)
{
    char err[512];
    if (!c->store && !(c->store = so_store_connect(c->url, c->prefix, 5000, err, sizeof err)))
        s_fail("%s", err);
    return c->store;
}

/* The handbook of --version (default current); NULL after a message. */
static so_handbook_t *s_get_hb(s_ctx_t *c, const char *version)
{
    char err[512];
    so_store_t *s = s_store(c);
    so_handbook_t *hb = s ? so_store_get_handbook(s, version, err, sizeof err) : NULL;
    if (s && !hb)
        s_fail("%s", err);
    return hb;
}

/* The handbook with its bootstrap statistics zeroed (online deltas alone). */
static so_handbook_t *s_zeroed(const so_handbook_t *hb)
{
    so_handbook_t *z = so_handbook_dup(hb);
    if (z)
        memset(z->stats, 0, z->n_agents * z->n_skills * sizeof *z->stats);
    return z;
}

/* Runs fn on the handbook of version (default current); the exit status. */
static int s_with_hb(s_ctx_t *c, const char *version,
                     int (*fn)(so_store_t *, so_handbook_t *, const void *), const void *arg)
{
    so_handbook_t *hb = s_get_hb(c, version);
    int rc = hb ? fn(c->store, hb, arg) : S_EXIT_FAIL;
    so_handbook_destroy(&hb);
    return rc;
}

/* --- Handbooks ---------------------------------------------------- */

static int s_cmd_publish(s_ctx_t *c, int argc, char **argv)
{
    char err[512];
    int no_current = 0, force = 0;
    const char *pos[1], *version = NULL;
    so_opt_t opts[] = {
        SO_OPT_FLAG("no-current", 0, &no_current, "store it without making it current"),
        SO_OPT_STR("version", 0, &version, "V", "publish it under this version instead"),
        SO_OPT_FLAG("force", 0, &force,
                    "replace a version already published (replicas routing it then disagree)"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, pos, 1, 0, 0, 0 };
    int code = s_opts(&p, argc, argv, "publish FILE.json [--version V] [--force] [--no-current]");
    if (code >= 0)
        return code;
    if (p.n_pos != 1)
        return s_bad_usage("publish wants one handbook file");
    if (!s_store(c))
        return S_EXIT_FAIL;
    so_handbook_t *hb = so_handbook_load(pos[0], err, sizeof err);
    if (!hb)
        return s_fail("%s", err);
    if (version) {
        free(hb->version);
        hb->version = so_strdup(version);
    }
    int rc = force ? (so_store_put_handbook(c->store, hb, !no_current, err, sizeof err) == 0 ? 1
                                                                                             : -1)
                   : so_store_put_handbook_new(c->store, hb, !no_current, err, sizeof err);
    if (rc == 1)
        printf("published %s (%zu skills, %zu agents)%s\n", hb->version, hb->n_skills,
               hb->n_agents, no_current ? "" : "; now current");
    so_handbook_destroy(&hb);
    if (rc == 0)
        return s_fail("%s (--force replaces it, --version V publishes it under another name)",
                      err);
    return rc == 1 ? 0 : s_fail("%s", err);
}

static void s_print_handbook(const so_handbook_t *hb)
{
    printf("version   %s\n", hb->version);
    printf("parent    %s\n", *hb->parent_version ? hb->parent_version : "-");
    printf("prior     Beta(%g, %g)\n", hb->prior_alpha, hb->prior_beta);
    printf("modes     %zu:", hb->n_modes);
    for (size_t m = 0; m < hb->n_modes; m++)
        printf(" %s", hb->modes[m].id);
    printf("\nskills    %zu\n", hb->n_skills);
    for (size_t k = 0; k < hb->n_skills; k++) {
        const so_skill_t *sk = &hb->skills[k];
        printf("  %-32s %s  [mode %s%s%s]\n", sk->id, sk->name, hb->modes[sk->mode].id,
               sk->parent >= 0 ? ", parent " : "",
               sk->parent >= 0 ? hb->skills[sk->parent].id : "");
        if (!sk->n_indicators)
            continue;
        printf("      indicators:");
        for (size_t i = 0; i < sk->n_indicators && i < 8; i++)
            printf("%s \"%s\"", i ? "," : "", sk->indicators[i]);
        printf("%s\n", sk->n_indicators > 8 ? ", ..." : "");
    }
    printf("agents    %zu\n", hb->n_agents);
    for (size_t i = 0; i < hb->n_agents; i++) {
        const so_agent_t *ag = &hb->agents[i];
        printf("  %-32s model %s  $%g/$%g per 1M tokens%s%s\n", ag->id, ag->model, ag->price_in,
               ag->price_out, ag->mode >= 0 ? "  mode " : "",
               ag->mode >= 0 ? hb->modes[ag->mode].id : "");
        if (!ag->available)
            printf("      (out of rotation)\n");
    }
}

static int s_handbook_fn(so_store_t *s, so_handbook_t *hb, const void *json)
{
    (void) s;
    if (!*(const int *) json) {
        s_print_handbook(hb);
        return 0;
    }
    char *js = so_handbook_dumps(hb);
    if (js)
        printf("%s\n", js);
    free(js);
    return js ? 0 : s_fail("cannot serialise the handbook");
}

static int s_cmd_handbook(s_ctx_t *c, int argc, char **argv)
{
    const char *version = NULL;
    int json = 0;
    so_opt_t opts[] = {
        SO_OPT_STR("version", 0, &version, "V", "the handbook version (default: current)"),
        SO_OPT_FLAG("json", 0, &json, "the whole handbook as JSON"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    int code = s_opts(&p, argc, argv, "handbook [--version V] [--json]");
    return code >= 0 ? code : s_with_hb(c, version, s_handbook_fn, &json);
}

static int s_competence_fn(so_store_t *s, so_handbook_t *hb, const void *arg)
{
    char err[512];
    so_handbook_t *on = s_zeroed(hb);
    long long seq = 0;
    size_t unknown = 0;
    (void) arg;
    if (!on || so_store_load_stats(s, on, &seq, &unknown, err, sizeof err) < 0) {
        so_handbook_destroy(&on);
        return s_fail("%s", err);
    }
    printf("version %s: %lld episodes applied online; posterior Beta(%g + s, %g + n - s)\n",
           hb->version, seq, hb->prior_alpha, hb->prior_beta);
    if (unknown)
        printf("(%zu online fields name agents or skills this handbook lacks)\n", unknown);
    printf("%-28s %-32s %17s %15s %17s %6s\n", "agent", "skill", "bootstrap s/n", "online s/n",
           "total s/n", "mean");
    for (size_t i = 0; i < hb->n_agents; i++)
        for (size_t k = 0; k < hb->n_skills; k++) {
            const so_stat_t *b = so_handbook_stat(hb, i, k), *o = so_handbook_stat(on, i, k);
            double S = b->successes + o->successes, N = b->attempts + o->attempts;
            double mean = (hb->prior_alpha + S) / (hb->prior_alpha + hb->prior_beta + N);
            printf("%-28s %-32s %8.1f/%-8.1f %7.2f/%-7.2f %8.1f/%-8.1f %6.3f\n", hb->agents[i].id,
                   hb->skills[k].id, b->successes, b->attempts, o->successes, o->attempts, S, N,
                   mean);
        }
    so_handbook_destroy(&on);
    return 0;
}

/* The commands that take only --version. */
static int s_version_cmd(s_ctx_t *c, int argc, char **argv, const char *synopsis,
                         int (*fn)(so_store_t *, so_handbook_t *, const void *))
{
    const char *version = NULL;
    so_opt_t opts[] = {
        SO_OPT_STR("version", 0, &version, "V", "the handbook version (default: current)"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    int code = s_opts(&p, argc, argv, synopsis);
    return code >= 0 ? code : s_with_hb(c, version, fn, NULL);
}

static int s_cmd_competence(s_ctx_t *c, int argc, char **argv)
{
    return s_version_cmd(c, argc, argv, "competence [--version V]", s_competence_fn);
}

/* --- Episodes ----------------------------------------------------- */

static int s_cmd_outcome(s_ctx_t *c, int argc, char **argv)
{
    char err[512];
    const char *version = NULL, *pos[1];
    long success = 0;
    double score = -1;
    int from_turns = 0;
    so_opt_t opts[] = {
        SO_OPT_INT("success", 0, &success, "0|1", 0, 1, "the episode failed or succeeded"),
        SO_OPT_DBL("score", 0, &score, "X", 0, 1, "a score in [0, 1] instead"),
        SO_OPT_FLAG("from-turns", 0, &from_turns, "the outcome from the turns' scores"),
        SO_OPT_STR("version", 0, &version, "V",
                   "the handbook version if the turns recorded none"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, pos, 1, 0, 0, 0 };
    int code = s_opts(&p, argc, argv,
                      "outcome EPISODE (--success 0|1 | --score X | --from-turns) "
                      "[--version V]");
    if (code >= 0)
        return code;
    int has_success = so_opts_seen(&p, "success") > 0;
    if (p.n_pos != 1)
        return s_bad_usage("outcome wants one episode id");
    if (has_success + (so_opts_seen(&p, "score") > 0) + from_turns != 1)
        return s_bad_usage("outcome wants exactly one of --success 0|1, --score X, --from-turns");
    if (!s_store(c))
        return S_EXIT_FAIL;
    int rc = so_store_finish_episode(c->store, pos[0], has_success, (int) success, score, version,
                                     err, sizeof err);
    if (rc < 0)
        return s_fail("%s", err);
    if (rc == 0)
        return s_fail("episode %s: no pending turns (unknown, expired or already finished)",
                      pos[0]);
    printf("episode %s: outcome logged\n", pos[0]);
    return 0;
}

/* push-turn's options. */
typedef struct {
    const char *version, *agent, *mode;
    so_opt_list_t skills;
    long turn, ttl;
    double score, cost;
} s_turn_args_t;

/* "skill" or "skill=weight" into w. */
static int s_skill_arg(const char *arg, so_pb_skill_weight_t *w, char *buf, size_t len)
{
    char err[256];
    skillorchestra__v1__skill_weight__init(w);
    snprintf(buf, len, "%s", arg);
    char *eq = strchr(buf, '=');
    w->weight = 1;
    if (eq) {
        *eq = '\0';
        if (so_opts_double("--skill S=W", eq + 1, 0, 1, &w->weight, err, sizeof err) < 0) {
            s_fail("%s", err);
            return -1;
        }
    }
    w->skill_id = buf;
    return *buf ? 0 : -1;
}

static int s_push_turn(s_ctx_t *c, const s_turn_args_t *a, int has_score, const char *id)
{
    char err[512], cur[SO_WIRE_MAX_ID + 1], bufs[S_MAX_SKILLS][SO_WIRE_MAX_ID + 16];
    so_pb_turn_record_t t = SKILLORCHESTRA__V1__TURN_RECORD__INIT;
    so_pb_skill_weight_t w[S_MAX_SKILLS], *wp[S_MAX_SKILLS];
    for (size_t i = 0; i < a->skills.n; i++) {
        if (s_skill_arg(a->skills.items[i], &w[i], bufs[i], sizeof bufs[i]) < 0)
            return s_bad_usage("bad --skill '%s'", a->skills.items[i]);
        wp[i] = &w[i];
    }
    t.turn_index = (uint32_t) a->turn;
    t.mode = (char *) (a->mode ? a->mode : "");
    t.agent_id = (char *) a->agent;
    t.demand = wp;
    t.n_demand = a->skills.n;
    t.cost_usd = a->cost;
    if (has_score) {
        t.score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
        t.score = a->score;
    }
    if (!s_store(c))
        return S_EXIT_FAIL;
    if (!a->version && so_store_current_version(c->store, cur, sizeof cur, err, sizeof err) < 0)
        return s_fail("%s", err);
    if (so_store_push_turn_ex(c->store, id, a->version ? a->version : cur, &t, (int) a->ttl, err,
                              sizeof err) < 0)
        return s_fail("%s", err);
    printf("episode %s: turn %u pending\n", id, t.turn_index);
    return 0;
}

static int s_cmd_push_turn(s_ctx_t *c, int argc, char **argv)
{
    s_turn_args_t a = { NULL, NULL, NULL, { 0 }, 0, 86400, 0, 0 };
    const char *pos[1];
    so_opt_t opts[] = {
        SO_OPT_STR("agent", 0, &a.agent, "A", "the agent that served the turn"),
        SO_OPT_LIST("skill", 0, &a.skills, "S[=W]", "a skill the turn demanded (weight 1)"),
        SO_OPT_STR("mode", 0, &a.mode, "M", "the turn's mode"),
        SO_OPT_INT("turn", 0, &a.turn, "N", 0, 1e9, "the turn's index (0)"),
        SO_OPT_DBL("score", 0, &a.score, "X", 0, 1, "the turn's score"),
        SO_OPT_DBL("cost", 0, &a.cost, "USD", 0, 1e6, "the turn's cost"),
        SO_OPT_STR("version", 0, &a.version, "V", "the routing version (default: current)"),
        SO_OPT_INT("ttl", 0, &a.ttl, "S", 1, 1e8, "seconds the turn stays pending (86400)"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, pos, 1, 0, 0, 0 };
    int code = s_opts(&p, argc, argv,
                      "push-turn EPISODE --agent A [--skill S[=W]]... [--mode M]\n"
                      "       [--turn N] [--score X] [--cost USD] [--version V] "
                      "[--ttl S]");
    if (code < 0 && (p.n_pos != 1 || !a.agent))
        code = s_bad_usage("push-turn wants an episode id and --agent");
    if (code < 0 && a.skills.n > S_MAX_SKILLS)
        code = s_bad_usage("too many --skill");
    if (code < 0)
        code = s_push_turn(c, &a, so_opts_seen(&p, "score") > 0, pos[0]);
    so_opt_list_free(&a.skills);
    return code;
}

/* --- Synthetic episodes ------------------------------------------- */

typedef struct {
    const char *version, *prefix;
    long count, seed, turns;
    int direct;
} s_gen_args_t;

/* One synthetic episode's turns, pointing into its own storage. */
typedef struct {
    so_pb_turn_record_t t[SO_WIRE_MAX_TURNS], *tp[SO_WIRE_MAX_TURNS];
    so_pb_skill_weight_t w[SO_WIRE_MAX_TURNS][2], *wp[SO_WIRE_MAX_TURNS][2];
} s_gen_ep_t;

/* Turn k of a synthetic episode; returns the success probability of its
 * agent on its main skill: 0.2 + 0.6 * ((3a + 5k) mod 4) / 3, so agents
 * differ by skill. */
static double s_gen_turn(const so_handbook_t *hb, so_rng_t *rng, s_gen_ep_t *e, size_t k)
{
    size_t ag = so_rng_next(rng) % hb->n_agents;
    size_t s1 = so_rng_next(rng) % hb->n_skills, s2 = so_rng_next(rng) % hb->n_skills;
    so_pb_turn_record_t *t = &e->t[k];
    skillorchestra__v1__turn_record__init(t);
    t->turn_index = (uint32_t) k;
    t->agent_id = hb->agents[ag].id;
    t->mode = hb->modes[hb->skills[s1].mode].id;
    t->cost_usd = 0.001 * (double) (1 + ag);
    t->prompt_tokens = 100;
    t->completion_tokens = 20;
    t->latency_s = 0.5;
    skillorchestra__v1__skill_weight__init(&e->w[k][0]);
    skillorchestra__v1__skill_weight__init(&e->w[k][1]);
    e->w[k][0].skill_id = hb->skills[s1].id;
    e->w[k][0].weight = 0.7;
    e->w[k][1].skill_id = hb->skills[s2].id;
    e->w[k][1].weight = 0.3;
    e->wp[k][0] = &e->w[k][0];
    e->wp[k][1] = &e->w[k][1];
    t->demand = e->wp[k];
    t->n_demand = s1 == s2 ? 1 : 2;
    e->tp[k] = t;
    return 0.2 + 0.6 * (double) ((3 * ag + 5 * s1) % 4) / 3.0;
}

/* Stores one synthetic episode: straight into the log, or as pending turns
 * and an outcome.  0 or -1 with err. */
static int s_gen_store(so_store_t *s, const so_handbook_t *hb, size_t K, int direct,
                       const char *id, s_gen_ep_t *e, int success, char *err, size_t errlen)
{
    if (direct) {
        so_pb_episode_outcome_t ep = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
        ep.episode_id = (char *) id;
        ep.handbook_version = hb->version;
        ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
        ep.success = success;
        ep.turns = e->tp;
        ep.n_turns = K;
        ep.finished_unix_ms = (uint64_t) so_wall_ms();
        return so_store_log_episode(s, &ep, err, errlen);
    }
    for (size_t k = 0; k < K; k++)
        if (so_store_push_turn_ex(s, id, hb->version, &e->t[k], 3600, err, errlen) < 0)
            return -1;
    int f = so_store_finish_episode(s, id, 1, success, -1, NULL, err, errlen);
    if (f == 0)
        snprintf(err, errlen, "episode %s: nothing pending after the push", id);
    return f == 1 ? 0 : -1;
}

static int s_gen_fn(so_store_t *s, so_handbook_t *hb, const void *arg)
{
    const s_gen_args_t *a = arg;
    char err[512], id[SO_WIRE_MAX_ID + 1];
    if (hb->n_agents == 0 || hb->n_skills == 0)
        return s_fail("handbook %s has no agents or no skills", a->version ? a->version : "");
    so_rng_t rng;
    so_rng_seed(&rng, (uint64_t) a->seed);
    size_t K = (size_t) a->turns, n = (size_t) a->count, done = 0;
    s_gen_ep_t *e = so_malloc(sizeof *e);
    int64_t t0 = so_now_ms();
    int rc = 0;
    for (size_t ep = 0; ep < n && rc == 0; ep++) {
        snprintf(id, sizeof id, "%s%zu", a->prefix, ep);
        double p = 0;
        for (size_t k = 0; k < K; k++)
            p += s_gen_turn(hb, &rng, e, k);
        int success = so_rng_uniform(&rng) < p / (double) K;
        rc = s_gen_store(s, hb, K, a->direct, id, e, success, err, sizeof err);
        done += rc == 0;
    }
    free(e);
    double secs = (double) (so_now_ms() - t0) / 1000.0;
    printf("%zu episodes of %zu turn(s) logged for %s (%s) in %.2f s\n", done, K, hb->version,
           a->direct ? "direct" : "pending turns + outcome", secs);
    return rc == 0 ? 0 : s_fail("%s", err);
}

static int s_cmd_gen(s_ctx_t *c, int argc, char **argv)
{
    s_gen_args_t a = { NULL, "gen-", 0, 1, 1, 0 };
    so_opt_t opts[] = {
        SO_OPT_INT("count", 0, &a.count, "N", 0, 1e8, "episodes to make"),
        SO_OPT_STR("version", 0, &a.version, "V", "the handbook version (default: current)"),
        SO_OPT_INT("seed", 0, &a.seed, "S", 0, 1e15, "RNG seed (1)"),
        SO_OPT_INT("turns", 0, &a.turns, "K", 1, SO_WIRE_MAX_TURNS, "turns per episode (1)"),
        SO_OPT_STR("prefix", 0, &a.prefix, "ID", "episode ids are ID0, ID1, ... (gen-)"),
        SO_OPT_FLAG("direct", 0, &a.direct, "straight into the log (no pending turns)"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    int code = s_opts(&p, argc, argv,
                      "gen-episodes --count N [--version V] [--seed S] "
                      "[--turns K]\n       [--prefix ID] [--direct]");
    return code >= 0 ? code : s_with_hb(c, a.version, s_gen_fn, &a);
}

/* --- The log and the learners ------------------------------------- */

static int s_stats_versions(so_store_t *s)
{
    char err[512], cur[SO_WIRE_MAX_ID + 1];
    if (so_store_current_version(s, cur, sizeof cur, err, sizeof err) < 0) {
        if (so_store_io_error(s))
            return s_fail("%s", err);
        snprintf(cur, sizeof cur, "-");
    }
    printf("current version   %s\n", cur);
    char **v = NULL;
    size_t nv = 0;
    if (so_store_versions(s, &v, &nv, err, sizeof err) < 0)
        return s_fail("%s", err);
    printf("versions          %zu\n", nv);
    for (size_t i = 0; i < nv; i++) {
        long long seq = 0;
        if (so_store_seq(s, v[i], &seq, err, sizeof err) < 0)
            seq = -1;
        printf("  %-40s seq %lld\n", v[i], seq);
    }
    so_store_strv_free(&v, nv);
    return 0;
}

/* "<label> <key>: N entries" for the stream named name. */
static int s_stats_xlen(so_store_t *s, const char *label, const char *name)
{
    char key[512], err[512];
    so_store_key(s, key, sizeof key, "%s", name);
    long long n = so_store_stream_len(s, name, err, sizeof err);
    if (n < 0 && so_store_io_error(s))
        return s_fail("%s", err);
    printf("%-17s %s: %lld entries\n", label, key, n);
    return 0;
}

static int s_stats_groups(so_store_t *s)
{
    char err[512], **groups = NULL;
    size_t n = 0;
    int rc = so_store_stream_groups(s, "episodes", &groups, &n, err, sizeof err);
    if (rc < 0)
        return s_fail("%s", err);
    if (rc > 0) {
        printf("consumer groups   0 (%s)\n", err);
        return 0;
    }
    printf("consumer groups   %zu\n", n);
    for (size_t i = 0; i < n; i++)
        printf("  group%s%s\n", groups[i][0] ? " " : "", groups[i]);
    so_store_strv_free(&groups, n);
    return 0;
}

static int s_cmd_stats(s_ctx_t *c, int argc, char **argv)
{
    so_opt_t opts[] = { SO_OPT_END };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    int code = s_opts(&p, argc, argv, "stats");
    if (code >= 0)
        return code;
    so_store_t *s = s_store(c);
    if (!s || s_stats_versions(s) || s_stats_xlen(s, "episode log", "episodes") ||
        s_stats_groups(s) || s_stats_xlen(s, "dead letters", "episodes:dead"))
        return S_EXIT_FAIL;
    return 0;
}

static int s_close(double a, double b)
{
    return fabs(a - b) <= 1e-6 * (1 + fabs(a) + fabs(b));
}

/* Prints the first mismatches of agent i on skill k; counts them on in *bad. */
static void s_verify_cell(const so_handbook_t *hb, size_t i, size_t k, const so_stat_t *w,
                          const so_stat_t *g, size_t *bad)
{
    const double wv[7] = { w->successes,         w->attempts,  w->cost_usd,  w->prompt_tokens,
                           w->completion_tokens, w->latency_s, w->cost_count };
    const double gv[7] = { g->successes,         g->attempts,  g->cost_usd,  g->prompt_tokens,
                           g->completion_tokens, g->latency_s, g->cost_count };
    static const char *names[7] = { "successes",     "attempts",          "cost_usd",
                                    "prompt_tokens", "completion_tokens", "latency_s",
                                    "cost_count" };
    for (int f = 0; f < 7; f++)
        if (!s_close(wv[f], gv[f]) && (*bad)++ < 10)
            printf("mismatch %s/%s %s: redis %.9g, log implies %.9g\n", hb->agents[i].id,
                   hb->skills[k].id, names[f], gv[f], wv[f]);
}

/* Replays the log into want and compares it with the online statistics. */
static int s_verify(so_store_t *s, const so_handbook_t *hb, so_handbook_t *on, so_stat_t *want)
{
    char err[512];
    long long seq = 0;
    size_t malformed = 0, bad = 0;
    long episodes = so_store_replay(s, hb, want, &malformed, err, sizeof err);
    if (episodes < 0 || so_store_load_stats(s, on, &seq, NULL, err, sizeof err) < 0)
        return s_fail("%s", err);
    for (size_t i = 0; i < hb->n_agents; i++)
        for (size_t k = 0; k < hb->n_skills; k++)
            s_verify_cell(hb, i, k, &want[i * hb->n_skills + k], so_handbook_stat(on, i, k),
                          &bad);
    printf("version %s: log implies %ld episodes (%zu unusable entries), redis seq %lld, "
           "%zu mismatching values\n",
           hb->version, episodes, malformed, seq, bad);
    if (seq != episodes || bad)
        return S_EXIT_FAIL;
    printf("OK\n");
    return 0;
}

static int s_verify_fn(so_store_t *s, so_handbook_t *hb, const void *arg)
{
    (void) arg;
    so_handbook_t *on = s_zeroed(hb);
    so_stat_t *want = so_calloc(hb->n_agents * hb->n_skills + 1, sizeof *want);
    int rc = on ? s_verify(s, hb, on, want) : s_fail("cannot copy the handbook");
    free(want);
    so_handbook_destroy(&on);
    return rc;
}

static int s_cmd_verify(s_ctx_t *c, int argc, char **argv)
{
    return s_version_cmd(c, argc, argv, "verify [--version V]", s_verify_fn);
}

static int s_rebuild_fn(so_store_t *s, so_handbook_t *hb, const void *arg)
{
    char err[512];
    (void) arg;
    long n = so_store_rebuild(s, hb, err, sizeof err);
    if (n < 0)
        return s_fail("%s", err);
    printf("version %s: statistics rebuilt from %ld episodes in the log\n", hb->version, n);
    return 0;
}

static int s_cmd_rebuild(s_ctx_t *c, int argc, char **argv)
{
    return s_version_cmd(c, argc, argv, "rebuild [--version V]", s_rebuild_fn);
}

/* --- Routing ------------------------------------------------------ */

typedef struct {
    const char *version, *mode, *prompt;
    double lambda;
} s_route_args_t;

static void s_print_decision(const so_handbook_t *hb, const so_decision_t *d)
{
    printf("chosen  %s (%s)\n", hb->agents[d->chosen].id, so_strategy_name(d->strategy));
    printf("reason  %s\n", d->reason);
    printf("%-32s %8s %11s %10s %8s\n", "agent", "score", "competence", "cost_usd", "eligible");
    for (size_t i = 0; i < d->n_agents; i++) {
        const so_agent_score_t *sc = &d->scores[i];
        const char *why = sc->eligible ? "" : (sc->excluded ? sc->excluded : "");
        printf("%-32s %8.4f %11.4f %10.6f %8s%s%s\n", hb->agents[i].id, sc->score, sc->competence,
               sc->cost, sc->eligible ? "yes" : "no", sc->eligible ? "" : "  ", why);
    }
}

/* Infers the demand and routes the prompt with hb and its online statistics. */
static int s_route_fn(so_store_t *s, so_handbook_t *hb, const void *arg)
{
    const s_route_args_t *a = arg;
    char err[512];
    long long seq = 0;
    int mode = -1;
    if (so_store_load_stats(s, hb, &seq, NULL, err, sizeof err) < 0 ||
        so_hbcache_mode(hb, a->mode ? a->mode : "", &mode, err, sizeof err) < 0)
        return s_fail("%s", err);
    so_infer_t *inf = so_infer_new(hb);
    double *demand = so_calloc(hb->n_skills + 1, sizeof *demand);
    so_demand_source_t src = so_infer(inf, a->prompt, mode, demand);
    so_route_opts_t ro;
    so_route_opts_default(&ro);
    so_route_tables_t *router = so_route_tables_new(hb, &ro);
    so_route_req_t q;
    so_route_req_default(&q);
    q.mode = mode;
    q.lambda = a->lambda;
    q.est_prompt_tokens = so_tokens_estimate(strlen(a->prompt));
    so_decision_t d;
    so_decision_init(&d);
    int rc = so_route(router, demand, &q, &d);
    printf("handbook %s (online seq %lld), lambda %g, computed locally\n", hb->version, seq,
           a->lambda);
    printf("demand (%s):", src == SO_DEMAND_UNIFORM_FALLBACK ? "uniform fallback" : "embedded");
    for (size_t k = 0; k < hb->n_skills; k++)
        if (demand[k] > 0)
            printf(" %s=%.3f", hb->skills[k].id, demand[k]);
    printf("\n");
    if (rc == 0)
        s_print_decision(hb, &d);
    else
        printf("no decision: %s\n", d.reason);
    so_decision_free(&d);
    so_route_tables_destroy(&router);
    so_infer_destroy(&inf);
    free(demand);
    return rc == 0 ? 0 : S_EXIT_FAIL;
}

static int s_cmd_route(s_ctx_t *c, int argc, char **argv)
{
    s_route_args_t a = { NULL, NULL, NULL, 0.055 };
    const char *pos[1];
    so_opt_t opts[] = {
        SO_OPT_DBL("lambda", 0, &a.lambda, "L", 0, 1e9, "cost weight (0.055)"),
        SO_OPT_STR("version", 0, &a.version, "V", "the handbook version (default: current)"),
        SO_OPT_STR("mode", 0, &a.mode, "M", "the turn's mode"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, pos, 1, 0, 0, 0 };
    int code = s_opts(&p, argc, argv, "route PROMPT [--lambda L] [--version V] [--mode M]");
    if (code >= 0)
        return code;
    if (p.n_pos != 1)
        return s_bad_usage("route wants one prompt");
    a.prompt = pos[0];
    return s_with_hb(c, a.version, s_route_fn, &a);
}

/* The commands, in the order --help lists them. */
static const struct {
    const char *name;
    int (*run)(s_ctx_t *c, int argc, char **argv);
    const char *help;
} s_commands[] = {
    { "publish", s_cmd_publish, "store a handbook (and make it current)" },
    { "handbook", s_cmd_handbook, "summary of a handbook (default: current)" },
    { "competence", s_cmd_competence,
      "bootstrap, online and total successes per agent and skill" },
    { "outcome", s_cmd_outcome, "end a pending episode and append it to the episode log" },
    { "push-turn", s_cmd_push_turn, "record one turn of an episode as pending" },
    { "gen-episodes", s_cmd_gen, "synthetic episodes over the handbook's agents (for tests)" },
    { "stats", s_cmd_stats,
      "versions, sequence numbers, the log, consumer groups, dead letters" },
    { "verify", s_cmd_verify,
      "compare the online statistics with the episode log (exit 1 if not)" },
    { "rebuild", s_cmd_rebuild, "recompute the online statistics from the log" },
    { "route", s_cmd_route, "the decision for a prompt, computed locally (embedded inference)" },
};

#define S_N_COMMANDS (sizeof s_commands / sizeof s_commands[0])

static void s_usage(const so_opts_t *p)
{
    so_opts_usage(p, stdout, "soctl [--redis URL] [--prefix P] COMMAND [options]",
                  "Commands (soctl help COMMAND, or soctl COMMAND --help):\n");
    for (size_t k = 0; k < S_N_COMMANDS; k++)
        printf("  %-13s %s\n", s_commands[k].name, s_commands[k].help);
    printf("Exit: 0 done, 1 failed, 2 usage.\n");
}

int main(int argc, char **argv)
{
    s_ctx_t c = { getenv("REDIS_URL"), "so:", NULL };
    if (!c.url || !*c.url)
        c.url = "redis://127.0.0.1:6379";
    so_opt_t opts[] = {
        SO_OPT_STR("redis", 0, &c.url, "URL",
                   "redis://host:port[/db] or unix:/path (default $REDIS_URL,\n"
                   "else redis://127.0.0.1:6379)"),
        SO_OPT_STR("prefix", 0, &c.prefix, "P", "key prefix (so:)"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 1, 0, 0 };
    char err[512];
    int i = so_opts_parse(&p, argc - 1, argv + 1, err, sizeof err) + 1, rc = -1;
    if (i == 0)
        return s_bad_usage("%s", err);
    if (p.help) {
        s_usage(&p);
        return 0;
    }
    if (i >= argc)
        return s_bad_usage("no command");
    char *help[] = { i + 1 < argc ? argv[i + 1] : "", "--help", NULL };
    if (strcmp(argv[i], "help") == 0) { /* soctl help [COMMAND] */
        if (!help[0][0]) {
            s_usage(&p);
            return 0;
        }
        argv = help;
        argc = 2;
        i = 0;
    }
    for (size_t k = 0; k < S_N_COMMANDS && rc < 0; k++)
        if (strcmp(argv[i], s_commands[k].name) == 0)
            rc = s_commands[k].run(&c, argc - i, argv + i);
    so_store_destroy(&c.store);
    return rc >= 0 ? rc : s_bad_usage("unknown command '%s'", argv[i]);
}
