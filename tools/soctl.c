/*
 * soctl — look at and operate the shared state in Redis (handbooks, online
 * competence, the episode log, the learners).  See `soctl --help`.
 *
 * Exit status: 0 done; 1 failed (Redis, not found, a mismatch: the message
 * says which); 2 usage.
 */
#include "store/so_hbcache.h"
#include "method/so_infer.h"
#include "base/so_rng.h"
#include "method/so_route.h"
#include "store/so_store.h"
#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_EXIT_FAIL 1
#define S_EXIT_USAGE 2

typedef Skillorchestra__V1__EpisodeOutcome s_episode_t;
typedef Skillorchestra__V1__TurnRecord s_turn_t;
typedef Skillorchestra__V1__SkillWeight s_weight_t;

static void s_usage(FILE *out)
{
    fprintf(out,
        "usage: soctl [--redis URL] [--prefix P] COMMAND [options]\n"
        "  --redis URL   redis://host:port[/db] or unix:/path (default $REDIS_URL, else\n"
        "                redis://127.0.0.1:6379);  --prefix P  key prefix (so:)\n"
        "Commands:\n"
        "  publish FILE.json [--no-current]   store a handbook (and make it current)\n"
        "  handbook [--version V] [--json]    summary of a handbook (default: current)\n"
        "  competence [--version V]           per agent and skill: bootstrap, online and\n"
        "                                     total successes/attempts, posterior mean\n"
        "  outcome EPISODE (--success 0|1 | --score X | --from-turns) [--version V]\n"
        "                                     end an episode waiting in so:pending with this\n"
        "                                     outcome and append it to the episode log\n"
        "                                     (--version: if the turns recorded none)\n"
        "  push-turn EPISODE --agent A [--skill S[=W]]... [--mode M] [--turn N]\n"
        "            [--score X] [--cost USD] [--version V] [--ttl S]\n"
        "                                     record one turn of an episode as pending\n"
        "                                     (routed by V, default: the current version)\n"
        "  gen-episodes --count N [--version V] [--seed S] [--turns K] [--prefix ID]\n"
        "            [--direct]               synthetic episodes over the handbook's agents\n"
        "                                     and skills (pending turns + outcome, or\n"
        "                                     --direct: straight into the log); for tests\n"
        "  stats                              current version, sequence numbers, the log,\n"
        "                                     consumer groups and lag, dead letters\n"
        "  verify [--version V]               compare the online statistics with what the\n"
        "                                     episode log implies (exit 1 on a mismatch)\n"
        "  rebuild [--version V]              recompute the online statistics from the log\n"
        "  route PROMPT [--lambda L] [--version V] [--mode M]\n"
        "                                     the decision for a prompt, computed locally\n"
        "                                     (handbook + online stats read from Redis;\n"
        "                                     embedded inference, greedy, lambda 0.055)\n"
        "Exit: 0 done, 1 failed, 2 usage.\n");
}

static int s_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int s_fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "soctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return S_EXIT_FAIL;
}

static int s_bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int s_bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "soctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (soctl --help)\n");
    return S_EXIT_USAGE;
}

static int s_num(const char *flag, const char *v, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || errno || !(d >= min && d <= max)) {
        fprintf(stderr, "soctl: %s wants a number in [%g, %g], got '%s'\n", flag, min, max,
                v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

/* Options after the command: flags with a value, boolean flags, and
 * positional arguments. */
typedef struct {
    const char *version, *mode, *agent, *prefix, *episode_id;
    const char *skills[64];
    size_t n_skills;
    const char *pos[4];
    size_t n_pos;
    double lambda, score, cost, success;
    double count, seed, turns, turn, ttl;
    int has_lambda, has_score, has_success, has_cost, from_turns;
    int json, no_current, direct;
} s_args_t;

static int s_parse(int argc, char **argv, s_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->lambda = 0.055;
    a->seed = 1;
    a->turns = 1;
    a->ttl = 86400;
    a->prefix = "gen-";
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define S_VAL()                                                                                    \
    do {                                                                                           \
        if (!v)                                                                                    \
            return s_bad_usage("%s wants a value", f);                                             \
        i++;                                                                                       \
    } while (0)
#define S_NUM(dst, min, max)                                                                       \
    do {                                                                                           \
        S_VAL();                                                                                   \
        if (s_num(f, v, min, max, &(dst)) < 0)                                                     \
            return S_EXIT_USAGE;                                                                   \
    } while (0)
        if (strcmp(f, "--version") == 0) {
            S_VAL();
            a->version = v;
        } else if (strcmp(f, "--mode") == 0) {
            S_VAL();
            a->mode = v;
        } else if (strcmp(f, "--agent") == 0) {
            S_VAL();
            a->agent = v;
        } else if (strcmp(f, "--prefix") == 0) {
            S_VAL();
            a->prefix = v;
        } else if (strcmp(f, "--skill") == 0) {
            S_VAL();
            if (a->n_skills == sizeof a->skills / sizeof a->skills[0])
                return s_bad_usage("too many --skill");
            a->skills[a->n_skills++] = v;
        } else if (strcmp(f, "--lambda") == 0) {
            S_NUM(a->lambda, 0, 1e9);
            a->has_lambda = 1;
        } else if (strcmp(f, "--score") == 0) {
            S_NUM(a->score, 0, 1);
            a->has_score = 1;
        } else if (strcmp(f, "--success") == 0) {
            S_VAL();
            if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
                return s_bad_usage("--success wants 0 or 1, got '%s'", v);
            a->success = v[0] == '1';
            a->has_success = 1;
        } else if (strcmp(f, "--cost") == 0) {
            S_NUM(a->cost, 0, 1e6);
            a->has_cost = 1;
        } else if (strcmp(f, "--count") == 0) {
            S_NUM(a->count, 0, 1e8);
        } else if (strcmp(f, "--seed") == 0) {
            S_NUM(a->seed, 0, 1e15);
        } else if (strcmp(f, "--turns") == 0) {
            S_NUM(a->turns, 1, SO_WIRE_MAX_TURNS);
        } else if (strcmp(f, "--turn") == 0) {
            S_NUM(a->turn, 0, 1e9);
        } else if (strcmp(f, "--ttl") == 0) {
            S_NUM(a->ttl, 1, 1e8);
        } else if (strcmp(f, "--json") == 0) {
            a->json = 1;
        } else if (strcmp(f, "--no-current") == 0) {
            a->no_current = 1;
        } else if (strcmp(f, "--direct") == 0) {
            a->direct = 1;
        } else if (strcmp(f, "--from-turns") == 0) {
            a->from_turns = 1;
        } else if (f[0] == '-' && f[1] == '-') {
            return s_bad_usage("unknown option '%s'", f);
        } else {
            if (a->n_pos == sizeof a->pos / sizeof a->pos[0])
                return s_bad_usage("too many arguments ('%s')", f);
            a->pos[a->n_pos++] = f;
        }
#undef S_NUM
#undef S_VAL
    }
    return 0;
}

/* The handbook of --version (default current); NULL after a message. */
static so_handbook_t *s_get_hb(so_store_t *s, const char *version)
{
    char err[512];
    so_handbook_t *hb = so_store_get_handbook(s, version, err, sizeof err);
    if (!hb)
        s_fail("%s", err);
    return hb;
}

/* The handbook with its bootstrap statistics zeroed, for reading online
 * deltas alone. */
static so_handbook_t *s_zeroed(const so_handbook_t *hb)
{
    so_handbook_t *z = so_handbook_dup(hb);
    if (z)
        memset(z->stats, 0, z->n_agents * z->n_skills * sizeof *z->stats);
    return z;
}

/* ------------------------------------------------------------------ */

static int s_cmd_publish(so_store_t *s, const s_args_t *a)
{
    char err[512];
    if (a->n_pos != 1)
        return s_bad_usage("publish wants one handbook file");
    so_handbook_t *hb = so_handbook_load(a->pos[0], err, sizeof err);
    if (!hb)
        return s_fail("%s", err);
    int rc = so_store_put_handbook(s, hb, !a->no_current, err, sizeof err);
    if (rc == 0)
        printf("published %s (%zu skills, %zu agents)%s\n", hb->version, hb->n_skills,
               hb->n_agents, a->no_current ? "" : "; now current");
    so_handbook_destroy(&hb);
    return rc == 0 ? 0 : s_fail("%s", err);
}

static int s_cmd_handbook(so_store_t *s, const s_args_t *a)
{
    so_handbook_t *hb = s_get_hb(s, a->version);
    if (!hb)
        return S_EXIT_FAIL;
    if (a->json) {
        char *js = so_handbook_dumps(hb);
        if (js)
            printf("%s\n", js);
        free(js);
        so_handbook_destroy(&hb);
        return js ? 0 : s_fail("cannot serialise the handbook");
    }
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
        if (sk->n_indicators) {
            printf("      indicators:");
            for (size_t i = 0; i < sk->n_indicators && i < 8; i++)
                printf("%s \"%s\"", i ? "," : "", sk->indicators[i]);
            printf("%s\n", sk->n_indicators > 8 ? ", ..." : "");
        }
    }
    printf("agents    %zu\n", hb->n_agents);
    for (size_t i = 0; i < hb->n_agents; i++) {
        const so_agent_t *ag = &hb->agents[i];
        printf("  %-32s model %s  $%g/$%g per 1M tokens%s%s\n", ag->id, ag->model,
               ag->price_in, ag->price_out, ag->mode >= 0 ? "  mode " : "",
               ag->mode >= 0 ? hb->modes[ag->mode].id : "");
        if (!ag->available)
            printf("      (out of rotation)\n");
    }
    so_handbook_destroy(&hb);
    return 0;
}

static int s_cmd_competence(so_store_t *s, const s_args_t *a)
{
    char err[512];
    so_handbook_t *hb = s_get_hb(s, a->version);
    if (!hb)
        return S_EXIT_FAIL;
    so_handbook_t *on = s_zeroed(hb);
    long long seq = 0;
    size_t unknown = 0;
    if (!on || so_store_load_stats(s, on, &seq, &unknown, err, sizeof err) < 0) {
        so_handbook_destroy(&hb);
        so_handbook_destroy(&on);
        return s_fail("%s", err);
    }
    printf("version %s: %lld episodes applied online; posterior Beta(%g + s, %g + n - s)\n",
           hb->version, seq, hb->prior_alpha, hb->prior_beta);
    if (unknown)
        printf("(%zu online fields name agents or skills this handbook lacks)\n", unknown);
    printf("%-28s %-32s %17s %15s %17s %6s\n", "agent", "skill", "bootstrap s/n",
           "online s/n", "total s/n", "mean");
    for (size_t i = 0; i < hb->n_agents; i++)
        for (size_t k = 0; k < hb->n_skills; k++) {
            const so_stat_t *b = so_handbook_stat(hb, i, k), *o = so_handbook_stat(on, i, k);
            double S = b->successes + o->successes, N = b->attempts + o->attempts;
            double mean = (hb->prior_alpha + S) / (hb->prior_alpha + hb->prior_beta + N);
            printf("%-28s %-32s %8.1f/%-8.1f %7.2f/%-7.2f %8.1f/%-8.1f %6.3f\n", hb->agents[i].id,
                   hb->skills[k].id, b->successes, b->attempts, o->successes, o->attempts, S, N,
                   mean);
        }
    so_handbook_destroy(&hb);
    so_handbook_destroy(&on);
    return 0;
}

static int s_cmd_outcome(so_store_t *s, const s_args_t *a)
{
    char err[512];
    if (a->n_pos != 1)
        return s_bad_usage("outcome wants one episode id");
    if (a->has_success + a->has_score + a->from_turns != 1)
        return s_bad_usage("outcome wants exactly one of --success 0|1, --score X, --from-turns");
    int rc = so_store_finish_episode(s, a->pos[0], a->has_success, (int) a->success,
                                     a->has_score ? a->score : -1, a->version, err, sizeof err);
    if (rc < 0)
        return s_fail("%s", err);
    if (rc == 0)
        return s_fail("episode %s: no pending turns (unknown, expired or already finished)",
                      a->pos[0]);
    printf("episode %s: outcome logged\n", a->pos[0]);
    return 0;
}

/* "skill" or "skill=weight" into w. */
static int s_skill_arg(const char *arg, s_weight_t *w, char *buf, size_t len)
{
    skillorchestra__v1__skill_weight__init(w);
    snprintf(buf, len, "%s", arg);
    char *eq = strchr(buf, '=');
    w->weight = 1;
    if (eq) {
        *eq = '\0';
        double d;
        if (s_num("--skill S=W", eq + 1, 0, 1, &d) < 0)
            return -1;
        w->weight = d;
    }
    w->skill_id = buf;
    return *buf ? 0 : -1;
}

static int s_cmd_push_turn(so_store_t *s, const s_args_t *a)
{
    char err[512], bufs[64][SO_WIRE_MAX_ID + 16];
    if (a->n_pos != 1 || !a->agent)
        return s_bad_usage("push-turn wants an episode id and --agent");
    s_turn_t t = SKILLORCHESTRA__V1__TURN_RECORD__INIT;
    s_weight_t w[64], *wp[64];
    for (size_t i = 0; i < a->n_skills; i++) {
        if (s_skill_arg(a->skills[i], &w[i], bufs[i], sizeof bufs[i]) < 0)
            return s_bad_usage("bad --skill '%s'", a->skills[i]);
        wp[i] = &w[i];
    }
    t.turn_index = (uint32_t) a->turn;
    t.mode = (char *) (a->mode ? a->mode : "");
    t.agent_id = (char *) a->agent;
    t.demand = wp;
    t.n_demand = a->n_skills;
    t.cost_usd = a->has_cost ? a->cost : 0;
    if (a->has_score) {
        t.score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
        t.score = a->score;
    }
    char cur[SO_WIRE_MAX_ID + 1];
    const char *version = a->version;
    if (!version) {
        if (so_store_current_version(s, cur, sizeof cur, err, sizeof err) < 0)
            return s_fail("%s", err);
        version = cur;
    }
    if (so_store_push_turn_ex(s, a->pos[0], version, &t, (int) a->ttl, err, sizeof err) < 0)
        return s_fail("%s", err);
    printf("episode %s: turn %u pending\n", a->pos[0], t.turn_index);
    return 0;
}

/* Synthetic episodes: agent a succeeds on skill k with probability
 * 0.2 + 0.6 * ((3a + 5k) mod 4) / 3, so agents differ by skill. */
static int s_cmd_gen(so_store_t *s, const s_args_t *a)
{
    char err[512], id[SO_WIRE_MAX_ID + 1];
    so_handbook_t *hb = s_get_hb(s, a->version);
    if (!hb)
        return S_EXIT_FAIL;
    if (hb->n_agents == 0 || hb->n_skills == 0) {
        so_handbook_destroy(&hb);
        return s_fail("handbook %s has no agents or no skills", a->version ? a->version : "");
    }
    so_rng_t rng;
    so_rng_seed(&rng, (uint64_t) a->seed);
    size_t K = (size_t) a->turns, n = (size_t) a->count, done = 0;
    s_turn_t t[SO_WIRE_MAX_TURNS], *tp[SO_WIRE_MAX_TURNS];
    s_weight_t w[SO_WIRE_MAX_TURNS][2], *wp[SO_WIRE_MAX_TURNS][2];
    int64_t t0 = so_now_ms();
    int rc = 0;
    for (size_t e = 0; e < n && rc == 0; e++) {
        snprintf(id, sizeof id, "%s%zu", a->prefix, e);
        double p = 0;
        for (size_t k = 0; k < K; k++) {
            size_t ag = so_rng_next(&rng) % hb->n_agents;
            size_t s1 = so_rng_next(&rng) % hb->n_skills, s2 = so_rng_next(&rng) % hb->n_skills;
            skillorchestra__v1__turn_record__init(&t[k]);
            t[k].turn_index = (uint32_t) k;
            t[k].agent_id = hb->agents[ag].id;
            t[k].mode = hb->modes[hb->skills[s1].mode].id;
            t[k].cost_usd = 0.001 * (double) (1 + ag);
            t[k].prompt_tokens = 100;
            t[k].completion_tokens = 20;
            t[k].latency_s = 0.5;
            skillorchestra__v1__skill_weight__init(&w[k][0]);
            skillorchestra__v1__skill_weight__init(&w[k][1]);
            w[k][0].skill_id = hb->skills[s1].id;
            w[k][0].weight = 0.7;
            w[k][1].skill_id = hb->skills[s2].id;
            w[k][1].weight = 0.3;
            wp[k][0] = &w[k][0];
            wp[k][1] = &w[k][1];
            t[k].demand = wp[k];
            t[k].n_demand = s1 == s2 ? 1 : 2;
            tp[k] = &t[k];
            p += 0.2 + 0.6 * (double) ((3 * ag + 5 * s1) % 4) / 3.0;
        }
        int success = so_rng_uniform(&rng) < p / (double) K;
        if (a->direct) {
            s_episode_t ep = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
            ep.episode_id = id;
            ep.handbook_version = hb->version;
            ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
            ep.success = success;
            ep.turns = tp;
            ep.n_turns = K;
            ep.finished_unix_ms = (uint64_t) so_wall_ms();
            rc = so_store_log_episode(s, &ep, err, sizeof err);
        } else {
            for (size_t k = 0; k < K && rc == 0; k++)
                rc = so_store_push_turn_ex(s, id, hb->version, &t[k], 3600, err, sizeof err);
            if (rc == 0) {
                int f = so_store_finish_episode(s, id, 1, success, -1, NULL, err, sizeof err);
                rc = f == 1 ? 0 : -1;
                if (f == 0)
                    snprintf(err, sizeof err, "episode %s: nothing pending after the push", id);
            }
        }
        done += rc == 0;
    }
    double secs = (double) (so_now_ms() - t0) / 1000.0;
    printf("%zu episodes of %zu turn(s) logged for %s (%s) in %.2f s\n", done, K, hb->version,
           a->direct ? "direct" : "pending turns + outcome", secs);
    so_handbook_destroy(&hb);
    return rc == 0 ? 0 : s_fail("%s", err);
}

/* ------------------------------------------------------------------ */

static redisReply *s_raw(so_store_t *s, const char *fmt, const char *key)
{
    char err[256];
    if (so_store_ensure(s, err, sizeof err) < 0)
        return NULL;
    return redisCommand(so_store_redis(s), fmt, key);
}

static void s_print_group(const redisReply *g)
{
    if (!g || g->type != REDIS_REPLY_ARRAY)
        return;
    printf("  group");
    for (size_t i = 0; i + 1 < g->elements; i += 2) {
        const redisReply *k = g->element[i], *v = g->element[i + 1];
        if (!k || k->type != REDIS_REPLY_STRING || !v)
            continue;
        if (v->type == REDIS_REPLY_INTEGER)
            printf(" %s=%lld", k->str, v->integer);
        else if (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS)
            printf(" %s=%s", k->str, v->str);
        else if (v->type == REDIS_REPLY_NIL)
            printf(" %s=-", k->str);
    }
    printf("\n");
}

static int s_cmd_stats(so_store_t *s)
{
    char err[512], cur[SO_WIRE_MAX_ID + 1], key[512];
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
    so_store_key(s, key, sizeof key, "episodes");
    redisReply *r = s_raw(s, "XLEN %s", key);
    if (!r)
        return s_fail("redis: connection lost");
    printf("episode log       %s: %lld entries\n", key,
           r->type == REDIS_REPLY_INTEGER ? r->integer : -1LL);
    freeReplyObject(r);
    r = s_raw(s, "XINFO GROUPS %s", key);
    if (!r)
        return s_fail("redis: connection lost");
    if (r->type == REDIS_REPLY_ARRAY) {
        printf("consumer groups   %zu\n", r->elements);
        for (size_t i = 0; i < r->elements; i++)
            s_print_group(r->element[i]);
    } else {
        printf("consumer groups   0 (%s)\n", r->type == REDIS_REPLY_ERROR ? r->str : "none");
    }
    freeReplyObject(r);
    so_store_key(s, key, sizeof key, "episodes:dead");
    r = s_raw(s, "XLEN %s", key);
    if (!r)
        return s_fail("redis: connection lost");
    printf("dead letters      %s: %lld entries\n", key,
           r->type == REDIS_REPLY_INTEGER ? r->integer : -1LL);
    freeReplyObject(r);
    return 0;
}

static int s_close(double a, double b)
{
    return fabs(a - b) <= 1e-6 * (1 + fabs(a) + fabs(b));
}

static int s_cmd_verify(so_store_t *s, const s_args_t *a)
{
    char err[512];
    so_handbook_t *hb = s_get_hb(s, a->version);
    if (!hb)
        return S_EXIT_FAIL;
    so_handbook_t *on = s_zeroed(hb);
    so_stat_t *want = calloc(hb->n_agents * hb->n_skills + 1, sizeof *want);
    long long seq = 0;
    size_t malformed = 0;
    long episodes = -1;
    int rc = 0;
    if (!on || !want)
        rc = s_fail("out of memory");
    if (rc == 0 && (episodes = so_store_replay(s, hb, want, &malformed, err, sizeof err)) < 0)
        rc = s_fail("%s", err);
    if (rc == 0 && so_store_load_stats(s, on, &seq, NULL, err, sizeof err) < 0)
        rc = s_fail("%s", err);
    size_t bad = 0;
    for (size_t i = 0; rc == 0 && i < hb->n_agents; i++)
        for (size_t k = 0; k < hb->n_skills; k++) {
            const so_stat_t *w = &want[i * hb->n_skills + k], *g = so_handbook_stat(on, i, k);
            const double wv[7] = { w->successes, w->attempts, w->cost_usd, w->prompt_tokens,
                                   w->completion_tokens, w->latency_s, w->cost_count };
            const double gv[7] = { g->successes, g->attempts, g->cost_usd, g->prompt_tokens,
                                   g->completion_tokens, g->latency_s, g->cost_count };
            static const char *names[7] = { "successes", "attempts", "cost_usd",
                                             "prompt_tokens", "completion_tokens", "latency_s",
                                             "cost_count" };
            for (int f = 0; f < 7; f++)
                if (!s_close(wv[f], gv[f]) && bad++ < 10)
                    printf("mismatch %s/%s %s: redis %.9g, log implies %.9g\n",
                           hb->agents[i].id, hb->skills[k].id, names[f], gv[f], wv[f]);
        }
    if (rc == 0) {
        printf("version %s: log implies %ld episodes (%zu unusable entries), redis seq %lld, "
               "%zu mismatching values\n", hb->version, episodes, malformed, seq, bad);
        if (seq != episodes || bad)
            rc = S_EXIT_FAIL;
        else
            printf("OK\n");
    }
    free(want);
    so_handbook_destroy(&on);
    so_handbook_destroy(&hb);
    return rc;
}

static int s_cmd_rebuild(so_store_t *s, const s_args_t *a)
{
    char err[512];
    so_handbook_t *hb = s_get_hb(s, a->version);
    if (!hb)
        return S_EXIT_FAIL;
    long n = so_store_rebuild(s, hb, err, sizeof err);
    if (n >= 0)
        printf("version %s: statistics rebuilt from %ld episodes in the log\n", hb->version, n);
    so_handbook_destroy(&hb);
    return n >= 0 ? 0 : s_fail("%s", err);
}

static int s_cmd_route(so_store_t *s, const s_args_t *a)
{
    char err[512];
    if (a->n_pos != 1)
        return s_bad_usage("route wants one prompt");
    so_handbook_t *hb = s_get_hb(s, a->version);
    if (!hb)
        return S_EXIT_FAIL;
    long long seq = 0;
    int mode = -1;
    if (so_store_load_stats(s, hb, &seq, NULL, err, sizeof err) < 0 ||
        so_hbcache_mode(hb, a->mode ? a->mode : "", &mode, err, sizeof err) < 0) {
        so_handbook_destroy(&hb);
        return s_fail("%s", err);
    }
    so_infer_t *inf = so_infer_new(hb);
    double *demand = calloc(hb->n_skills + 1, sizeof *demand);
    if (!demand)
        abort();
    so_demand_source_t src = so_infer(inf, a->pos[0], mode, demand);
    so_router_opts_t ro;
    so_router_opts_default(&ro);
    so_router_t *router = so_router_new(hb, &ro);
    so_route_req_t q;
    so_route_req_default(&q);
    q.mode = mode;
    q.lambda = a->lambda;
    q.est_prompt_tokens = (double) strlen(a->pos[0]) / 4.0;
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
    if (rc == 0) {
        printf("chosen  %s (%s)\n", hb->agents[d.chosen].id, so_strategy_name(d.strategy));
        printf("reason  %s\n", d.reason);
        printf("%-32s %8s %11s %10s %8s\n", "agent", "score", "competence", "cost_usd",
               "eligible");
        for (size_t i = 0; i < d.n_agents; i++) {
            const so_agent_score_t *sc = &d.scores[i];
            printf("%-32s %8.4f %11.4f %10.6f %8s%s%s\n", hb->agents[i].id, sc->score,
                   sc->competence, sc->cost, sc->eligible ? "yes" : "no",
                   sc->eligible ? "" : "  ", sc->eligible ? "" : (sc->excluded ? sc->excluded : ""));
        }
    } else {
        printf("no decision: %s\n", d.reason);
    }
    so_decision_free(&d);
    so_router_destroy(&router);
    so_infer_destroy(&inf);
    free(demand);
    so_handbook_destroy(&hb);
    return rc == 0 ? 0 : S_EXIT_FAIL;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    const char *url = getenv("REDIS_URL"), *prefix = "so:";
    if (!url || !*url)
        url = "redis://127.0.0.1:6379";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc) {
            prefix = argv[++i];
        } else {
            return s_bad_usage("unknown option '%s'", argv[i]);
        }
    }
    if (i >= argc)
        return s_bad_usage("no command");
    const char *cmd = argv[i++];
    static const char *known[] = { "publish", "handbook", "competence", "outcome", "push-turn",
                                   "gen-episodes", "stats", "verify", "rebuild", "route" };
    int ok = 0;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        ok |= strcmp(cmd, known[k]) == 0;
    if (!ok)
        return s_bad_usage("unknown command '%s'", cmd);
    s_args_t a;
    int rc = s_parse(argc - i, argv + i, &a);
    if (rc != 0)
        return rc;
    char err[512];
    so_store_t *s = so_store_connect(url, prefix, 5000, err, sizeof err);
    if (!s)
        return s_fail("%s", err);
    if (strcmp(cmd, "publish") == 0)
        rc = s_cmd_publish(s, &a);
    else if (strcmp(cmd, "handbook") == 0)
        rc = s_cmd_handbook(s, &a);
    else if (strcmp(cmd, "competence") == 0)
        rc = s_cmd_competence(s, &a);
    else if (strcmp(cmd, "outcome") == 0)
        rc = s_cmd_outcome(s, &a);
    else if (strcmp(cmd, "push-turn") == 0)
        rc = s_cmd_push_turn(s, &a);
    else if (strcmp(cmd, "gen-episodes") == 0)
        rc = s_cmd_gen(s, &a);
    else if (strcmp(cmd, "stats") == 0)
        rc = s_cmd_stats(s);
    else if (strcmp(cmd, "verify") == 0)
        rc = s_cmd_verify(s, &a);
    else if (strcmp(cmd, "rebuild") == 0)
        rc = s_cmd_rebuild(s, &a);
    else
        rc = s_cmd_route(s, &a);
    so_store_destroy(&s);
    return rc;
}
