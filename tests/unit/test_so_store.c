/*
 * Tests for so_store against a real redis-server: the group setup starts a
 * private one on a unix socket in a temporary directory (no TCP port) and
 * the teardown stops it.  Without redis-server installed the tests are
 * skipped with a message.
 */
#include "so_test_util.h"
#include "so_test_redis.h"
#include "so_test_episode.h"
#include "store/so_store.h"
#include "wire/so_wire.h"

#include <errno.h>
#include <sys/stat.h>


static int group_setup(void **state)
{
    (void) state;
    return so_test_redis_setup("store");
}

static int group_teardown(void **state)
{
    (void) state;
    so_test_redis_teardown();
    return 0;
}

/* modes: default; skills math (parent), math.alg, math.geo, code;
 * agents a1, a2.  Bootstrap stats on a1/code. */
static so_handbook_t *s_handbook(const char *version)
{
    so_handbook_t *hb = so_handbook_new(version);
    so_t_mode(hb, "default");
    so_t_skill(hb, "math", "default", NULL);
    so_t_skill(hb, "math.alg", "default", "math");
    so_t_skill(hb, "math.geo", "default", "math");
    so_t_skill(hb, "code", "default", NULL);
    so_t_agent(hb, "a1", "", 1, 2, 0);
    so_t_agent(hb, "a2", "", 3, 4, 0);
    so_t_stat(hb, 0, 3, 4, 5, 0.01);
    return hb;
}

static so_stat_t s_stat(so_store_t *s, const char *version, const char *agent, const char *skill,
                        long long *seq)
{
    char err[256] = "";
    so_handbook_t *hb = s_handbook(version);
    memset(hb->stats, 0, hb->n_agents * hb->n_skills * sizeof *hb->stats);
    if (so_store_load_stats(s, hb, seq, NULL, err, sizeof err) < 0)
        fail_msg("load_stats: %s", err);
    so_stat_t st = *so_handbook_stat(hb, (size_t) so_handbook_agent_index(hb, agent),
                                     (size_t) so_handbook_skill_index(hb, skill));
    so_handbook_destroy(&hb);
    return st;
}

/* ------------------------------------------------------------------ */

static void test_handbook_put_get_current(void **state)
{
    (void) state;
    char err[256] = "", cur[64];
    so_store_t *s = so_test_store();
    so_handbook_t *hb = s_handbook("v1"), *hb2 = s_handbook("v2");

    assert_int_equal(so_store_current_version(s, cur, sizeof cur, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "no current handbook");
    assert_null(so_store_get_handbook(s, NULL, err, sizeof err));

    assert_int_equal(so_store_put_handbook(s, hb, 1, err, sizeof err), 0);
    assert_int_equal(so_store_put_handbook(s, hb2, 0, err, sizeof err), 0);
    assert_int_equal(so_store_current_version(s, cur, sizeof cur, err, sizeof err), 0);
    assert_string_equal(cur, "v1");

    so_handbook_t *got = so_store_get_handbook(s, "", err, sizeof err);
    assert_non_null(got);
    assert_string_equal(got->version, "v1");
    assert_int_equal(got->n_skills, 4);
    assert_int_equal(got->n_agents, 2);
    assert_string_equal(got->skills[1].id, "math.alg");
    assert_int_equal(got->skills[1].parent, 0);
    SO_ASSERT_NEAR(so_handbook_stat(got, 0, 3)->attempts, 5, 1e-12);
    so_handbook_destroy(&got);

    got = so_store_get_handbook(s, "v2", err, sizeof err);
    assert_non_null(got);
    assert_string_equal(got->version, "v2");
    so_handbook_destroy(&got);

    assert_null(so_store_get_handbook(s, "v9", err, sizeof err));
    SO_ASSERT_CONTAINS(err, "'v9' not found");
    assert_int_equal(so_store_io_error(s), 0);

    /* Republishing moves the version to the end of the list, once. */
    assert_int_equal(so_store_put_handbook(s, hb, 1, err, sizeof err), 0);
    char **v;
    size_t n;
    assert_int_equal(so_store_versions(s, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0], "v2");
    assert_string_equal(v[1], "v1");
    so_store_strv_free(&v, n);
    assert_null(v);

    /* Conditional publish: only over the expected current version. */
    assert_int_equal(so_store_put_handbook_if(s, hb2, "v0", err, sizeof err), 0);
    assert_int_equal(so_store_current_version(s, cur, sizeof cur, err, sizeof err), 0);
    assert_string_equal(cur, "v1");
    assert_int_equal(so_store_put_handbook_if(s, hb2, "v1", err, sizeof err), 1);
    assert_int_equal(so_store_current_version(s, cur, sizeof cur, err, sizeof err), 0);
    assert_string_equal(cur, "v2");

    so_handbook_destroy(&hb);
    so_handbook_destroy(&hb2);
    so_store_destroy(&s);
    so_store_destroy(&s); /* NULL-safe */
}

/* The JSON as stored, for so-http's GET /v1/handbook; writing a handbook
 * announces nothing (no PUBLISH). */
static void test_handbook_json(void **state)
{
    (void) state;
    char err[256] = "", *json = NULL;
    size_t len = 0;
    so_store_t *s = so_test_store();
    so_handbook_t *hb = s_handbook("v1");
    redisContext *raw = so_test_redis_raw();
    redisReply *r = redisCommand(raw, "SUBSCRIBE t:hb:announce");
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(so_store_put_handbook(s, hb, 1, err, sizeof err), 0);
    char *want = so_handbook_dumps(hb);
    assert_int_equal(so_store_get_handbook_json(s, "v1", &json, &len, err, sizeof err), 1);
    assert_string_equal(json, want);
    assert_int_equal(len, strlen(want));
    free(json);
    free(want);
    assert_int_equal(so_store_get_handbook_json(s, "v9", &json, NULL, err, sizeof err), 0);
    assert_null(json);
    assert_int_equal(so_store_get_handbook_json(s, "", &json, NULL, err, sizeof err), -1);
    so_test_redis_cmd("HSET t:hb:h f 1");
    assert_int_equal(so_store_get_handbook_json(s, "h", &json, NULL, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "WRONGTYPE");
    assert_int_equal(so_store_io_error(s), 0);
    /* Nothing was published on the old announcement channel. */
    struct timeval tv = { 0, 200000 };
    redisSetTimeout(raw, tv);
    void *msg = NULL;
    assert_int_not_equal(redisGetReply(raw, &msg), REDIS_OK);
    assert_null(msg);
    redisFree(raw);
    so_handbook_destroy(&hb);
    so_store_destroy(&s);
}

static void test_apply_idempotent_fractional(void **state)
{
    (void) state;
    char err[256] = "";
    so_store_t *s = so_test_store();
    so_handbook_t *hb = s_handbook("v1");
    so_t_ep_t e;
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_pb_turn_record_t *t = so_t_ep_turn(&e, "a1", 0.02);
    so_t_ep_demand(&e, t, "math.alg", 0.75);
    so_t_ep_demand(&e, t, "math.geo", 0.25);

    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), 1);
    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), 0);
    /* The bytes in Redis: one field per (agent, skill, k), as so_credit says. */
    redisContext *raw = so_test_redis_raw();
    redisReply *r = redisCommand(raw, "HLEN t:stats:v1");
    assert_int_equal(r->integer, 14);
    freeReplyObject(r);
    r = redisCommand(raw, "HMGET t:stats:v1 a1\x1fmath.alg\x1fn a1\x1fmath.alg\x1fpt "
                          "a1\x1fmath.geo\x1fl");
    assert_string_equal(r->element[0]->str, "0.75");
    assert_string_equal(r->element[1]->str, "75");
    assert_string_equal(r->element[2]->str, "0.125");
    freeReplyObject(r);
    redisFree(raw);

    long long seq = -1;
    so_stat_t st = s_stat(s, "v1", "a1", "math.alg", &seq);
    assert_int_equal(seq, 1);
    SO_ASSERT_NEAR(st.attempts, 0.75, 1e-12);
    SO_ASSERT_NEAR(st.successes, 0.75, 1e-12);
    SO_ASSERT_NEAR(st.cost_usd, 0.015, 1e-12);
    SO_ASSERT_NEAR(st.prompt_tokens, 75, 1e-9);
    SO_ASSERT_NEAR(st.completion_tokens, 7.5, 1e-9);
    SO_ASSERT_NEAR(st.latency_s, 0.375, 1e-12);
    SO_ASSERT_NEAR(st.cost_count, 0.75, 1e-12);
    st = s_stat(s, "v1", "a1", "math.geo", NULL);
    SO_ASSERT_NEAR(st.attempts, 0.25, 1e-12);
    st = s_stat(s, "v1", "a2", "math.alg", NULL);
    SO_ASSERT_NEAR(st.attempts, 0, 0);

    /* Weights that do not sum to 1 are normalised: one turn, one attempt. */
    so_t_ep_init(&e, "ep-2", "v1", 0);
    t = so_t_ep_turn(&e, "a2", 0);
    so_t_ep_demand(&e, t, "code", 0.2);
    so_t_ep_demand(&e, t, "math", 0.2);
    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), 1);
    st = s_stat(s, "v1", "a2", "code", &seq);
    assert_int_equal(seq, 2);
    SO_ASSERT_NEAR(st.attempts, 0.5, 1e-12);
    SO_ASSERT_NEAR(st.successes, 0, 0);

    /* The batch form: repeats inside one pipeline count once. */
    so_t_ep_t e3, e4;
    so_t_ep_init(&e3, "ep-3", "v1", 1);
    so_t_ep_demand(&e3, so_t_ep_turn(&e3, "a2", 0), "code", 1);
    so_t_ep_init(&e4, "ep-3", "v1", 1);
    so_t_ep_demand(&e4, so_t_ep_turn(&e4, "a2", 0), "code", 1);
    const so_handbook_t *hbs[3] = { hb, hb, hb };
    const so_pb_episode_outcome_t *eps[3] = { &e3.ep, &e4.ep, &e.ep };
    int applied[3];
    assert_int_equal(so_store_apply_many(s, hbs, eps, 3, applied, err, sizeof err), 0);
    assert_int_equal(applied[0], 1);
    assert_int_equal(applied[1], 0);
    assert_int_equal(applied[2], 0);
    st = s_stat(s, "v1", "a2", "code", &seq);
    assert_int_equal(seq, 3);
    SO_ASSERT_NEAR(st.attempts, 1.5, 1e-12);
    SO_ASSERT_NEAR(st.successes, 1, 1e-12);

    so_handbook_destroy(&hb);
    so_store_destroy(&s);
}

static void test_turn_score_vs_outcome(void **state)
{
    (void) state;
    char err[256] = "";
    so_store_t *s = so_test_store();
    so_handbook_t *hb = s_handbook("v1");
    so_t_ep_t e;
    so_t_ep_init(&e, "ep-1", "v1", 0); /* the episode failed ... */
    so_pb_turn_record_t *t0 = so_t_ep_turn(&e, "a1", 0);
    so_t_ep_demand(&e, t0, "code", 1);
    t0->score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
    t0->score = 0.9; /* ... but turn 0 has its own score */
    so_pb_turn_record_t *t1 = so_t_ep_turn(&e, "a2", 0);
    so_t_ep_demand(&e, t1, "code", 1);
    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), 1);
    so_stat_t st = s_stat(s, "v1", "a1", "code", NULL);
    SO_ASSERT_NEAR(st.successes, 0.9, 1e-12);
    SO_ASSERT_NEAR(st.attempts, 1, 1e-12);
    st = s_stat(s, "v1", "a2", "code", NULL);
    SO_ASSERT_NEAR(st.successes, 0, 0);
    SO_ASSERT_NEAR(st.attempts, 1, 1e-12);

    /* A score outcome credits its value. */
    so_t_ep_init(&e, "ep-2", "v1", 0);
    e.ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE;
    e.ep.score = 0.25;
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a2", 0), "math.geo", 1);
    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), 1);
    st = s_stat(s, "v1", "a2", "math.geo", NULL);
    SO_ASSERT_NEAR(st.successes, 0.25, 1e-12);
    SO_ASSERT_NEAR(st.attempts, 1, 1e-12);

    /* No demand: uniform over the turn's mode, as the router does. */
    so_t_ep_init(&e, "ep-3", "v1", 1);
    so_pb_turn_record_t *t = so_t_ep_turn(&e, "a1", 0);
    t->mode = "default";
    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), 1);
    st = s_stat(s, "v1", "a1", "math", NULL);
    SO_ASSERT_NEAR(st.attempts, 0.25, 1e-12);
    st = s_stat(s, "v1", "a1", "code", NULL);
    SO_ASSERT_NEAR(st.attempts, 1.25, 1e-12);

    so_handbook_destroy(&hb);
    so_store_destroy(&s);
}

static void test_unknown_skipped(void **state)
{
    (void) state;
    char err[256] = "";
    so_store_t *s = so_test_store();
    so_handbook_t *hb = s_handbook("v1");
    so_t_ep_t e;
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_t_ep_demand(&e, so_t_ep_turn(&e, "ghost", 0), "code", 1); /* unknown agent */
    so_pb_turn_record_t *t = so_t_ep_turn(&e, "a1", 0);
    so_t_ep_demand(&e, t, "nope", 0.5); /* unknown skill */
    so_t_ep_demand(&e, t, "math.alg", 0.5);
    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), 1);
    so_stat_t st = s_stat(s, "v1", "a1", "math.alg", NULL);
    SO_ASSERT_NEAR(st.attempts, 0.5, 1e-12);
    st = s_stat(s, "v1", "a1", "code", NULL);
    SO_ASSERT_NEAR(st.attempts, 0, 0);

    /* Fields naming agents/skills a handbook lacks are counted, not added. */
    so_test_redis_cmd("HSET t:stats:v1 ghost\x1f"
                      "code\x1fn 3 a1\x1fnope\x1fn 2 a1\x1f"
                      "code\x1fzz 1");
    so_handbook_t *h = s_handbook("v1");
    size_t unknown = 0;
    long long seq = 0;
    assert_int_equal(so_store_load_stats(s, h, &seq, &unknown, err, sizeof err), 0);
    assert_int_equal(unknown, 3);
    assert_int_equal(seq, 1);
    /* Bootstrap (5) + nothing online on a1/code. */
    SO_ASSERT_NEAR(so_handbook_stat(h, 0, 3)->attempts, 5, 1e-12);
    SO_ASSERT_NEAR(so_handbook_stat(h, 0, 1)->attempts, 0.5, 1e-12);
    so_handbook_destroy(&h);

    /* An episode of another version is refused, not miscounted. */
    so_t_ep_init(&e, "ep-2", "v2", 1);
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a1", 0), "code", 1);
    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "routed by handbook v2");
    /* And so is one that fails validation. */
    so_t_ep_init(&e, "", "v1", 1);
    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "episode_id");

    so_handbook_destroy(&hb);
    so_store_destroy(&s);
}

/* Logs a mix of episodes (repeats, another version, a failure, a garbage
 * entry), applies them one by one, then checks that replay and rebuild
 * give the same numbers. */
static void test_rebuild_equals_incremental(void **state)
{
    (void) state;
    char err[256] = "";
    so_store_t *s = so_test_store();
    so_handbook_t *hb = s_handbook("v1");
    const char *agents[2] = { "a1", "a2" };
    const char *skills[4] = { "math", "math.alg", "math.geo", "code" };
    char ids[60][16];
    for (int i = 0; i < 60; i++) {
        so_t_ep_t e;
        snprintf(ids[i], sizeof ids[i], "ep-%d", i % 50); /* 10 repeats */
        so_t_ep_init(&e, ids[i], i % 7 == 3 ? "v0" : "v1", i % 3 != 0);
        for (int k = 0; k < 1 + i % 3; k++) {
            so_pb_turn_record_t *t = so_t_ep_turn(&e, agents[(i + k) % 2], 0.001 * (i + 1));
            so_t_ep_demand(&e, t, skills[(i + k) % 4], 0.3 + 0.1 * (i % 5));
            so_t_ep_demand(&e, t, skills[(i + 2 * k + 1) % 4], 0.7);
        }
        assert_int_equal(so_store_log_episode(s, &e.ep, err, sizeof err), 0);
        if (strcmp(e.ep.handbook_version, "v1") == 0)
            assert_in_range(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), 0, 1);
    }
    so_test_redis_cmd("XADD t:episodes * id garbage pb notprotobuf");
    so_test_redis_cmd("XADD t:episodes * id nopb");

    so_handbook_t *inc = s_handbook("v1");
    memset(inc->stats, 0, inc->n_agents * inc->n_skills * sizeof *inc->stats);
    long long seq_inc;
    assert_int_equal(so_store_load_stats(s, inc, &seq_inc, NULL, err, sizeof err), 0);

    so_stat_t *deltas = calloc(hb->n_agents * hb->n_skills, sizeof *deltas);
    size_t malformed = 0;
    long n = so_store_replay(s, hb, deltas, &malformed, err, sizeof err);
    assert_int_equal(n, seq_inc);
    assert_int_equal(malformed, 2);

    long rebuilt = so_store_rebuild(s, hb, err, sizeof err);
    if (rebuilt < 0)
        fail_msg("rebuild: %s", err);
    assert_int_equal(rebuilt, seq_inc);
    so_handbook_t *reb = s_handbook("v1");
    memset(reb->stats, 0, reb->n_agents * reb->n_skills * sizeof *reb->stats);
    long long seq_reb;
    assert_int_equal(so_store_load_stats(s, reb, &seq_reb, NULL, err, sizeof err), 0);
    assert_int_equal(seq_reb, seq_inc);
    for (size_t i = 0; i < hb->n_agents * hb->n_skills; i++) {
        SO_ASSERT_NEAR(reb->stats[i].attempts, inc->stats[i].attempts, 1e-9);
        SO_ASSERT_NEAR(reb->stats[i].successes, inc->stats[i].successes, 1e-9);
        SO_ASSERT_NEAR(reb->stats[i].cost_usd, inc->stats[i].cost_usd, 1e-12);
        SO_ASSERT_NEAR(reb->stats[i].prompt_tokens, inc->stats[i].prompt_tokens, 1e-6);
        SO_ASSERT_NEAR(deltas[i].attempts, inc->stats[i].attempts, 1e-9);
        SO_ASSERT_NEAR(deltas[i].successes, inc->stats[i].successes, 1e-9);
        SO_ASSERT_NEAR(deltas[i].latency_s, inc->stats[i].latency_s, 1e-9);
    }
    /* The rebuilt applied set still makes repeats no-ops, and no
     * temporary keys are left behind. */
    so_t_ep_t e;
    so_t_ep_init(&e, "ep-7", "v1", 1);
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a1", 0), "code", 1);
    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), 0);
    redisContext *c = so_test_redis_raw();
    redisReply *r = redisCommand(c, "KEYS t:rebuild:*");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
    r = redisCommand(c, "TTL t:stats:v1");
    assert_int_equal(r->integer, -1);
    freeReplyObject(r);
    redisFree(c);

    /* An empty log for a version rebuilds to nothing. */
    so_handbook_t *v9 = s_handbook("v9");
    assert_int_equal(so_store_rebuild(s, v9, err, sizeof err), 0);
    so_handbook_destroy(&v9);

    free(deltas);
    so_handbook_destroy(&inc);
    so_handbook_destroy(&reb);
    so_handbook_destroy(&hb);
    so_store_destroy(&s);
}

static void test_malformed_data(void **state)
{
    (void) state;
    char err[256] = "", cur[64];
    so_store_t *s = so_test_store();
    so_handbook_t *hb = s_handbook("v1");

    so_test_redis_cmd("SET t:hb:bad %s", "{not json");
    so_test_redis_cmd("SET t:hb:current bad");
    assert_null(so_store_get_handbook(s, NULL, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "invalid JSON");
    so_test_redis_cmd("SET t:hb:other %s", "{\"metadata\": {\"version\": \"v7\"}}");
    assert_null(so_store_get_handbook(s, "other", err, sizeof err));
    SO_ASSERT_CONTAINS(err, "holds handbook version 'v7'");
    so_test_redis_cmd("SET t:hb:arr %s", "[1, 2]");
    assert_null(so_store_get_handbook(s, "arr", err, sizeof err));
    so_test_redis_cmd("HSET t:hb:hash a b");
    assert_null(so_store_get_handbook(s, "hash", err, sizeof err));
    SO_ASSERT_CONTAINS(err, "WRONGTYPE");
    assert_int_equal(so_store_io_error(s), 0);
    so_test_redis_cmd("DEL t:hb:current");
    so_test_redis_cmd("HSET t:hb:current a b");
    assert_int_equal(so_store_current_version(s, cur, sizeof cur, err, sizeof err), -1);

    /* Statistics: a non-number value leaves the handbook untouched. */
    so_test_redis_cmd("HSET t:stats:v1 a1\x1f"
                      "code\x1fn abc");
    double before = so_handbook_stat(hb, 0, 3)->attempts;
    assert_int_equal(so_store_load_stats(s, hb, NULL, NULL, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "'abc' is not a number");
    SO_ASSERT_NEAR(so_handbook_stat(hb, 0, 3)->attempts, before, 0);
    so_test_redis_cmd("HSET t:stats:v1 a1\x1f"
                      "code\x1fn inf");
    assert_int_equal(so_store_load_stats(s, hb, NULL, NULL, err, sizeof err), -1);
    so_test_redis_cmd("DEL t:stats:v1");
    so_test_redis_cmd("SET t:stats:v1 x");
    assert_int_equal(so_store_load_stats(s, hb, NULL, NULL, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "WRONGTYPE");
    so_test_redis_cmd("DEL t:stats:v1");
    so_test_redis_cmd("SET t:seq:v1 twelve");
    assert_int_equal(so_store_load_stats(s, hb, NULL, NULL, err, sizeof err), -1);
    long long seq;
    assert_int_equal(so_store_seq(s, "v1", &seq, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "not an integer");

    /* A wrong-typed applied set makes apply fail cleanly. */
    so_test_redis_cmd("DEL t:seq:v1");
    so_test_redis_cmd("SET t:applied:v1 x");
    so_t_ep_t e;
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a1", 0), "code", 1);
    assert_int_equal(so_store_apply_episode(s, hb, &e.ep, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "WRONGTYPE");

    /* The version list and the log as wrong types. */
    so_test_redis_cmd("SET t:hb:versions x");
    char **v;
    size_t n;
    assert_int_equal(so_store_versions(s, &v, &n, err, sizeof err), -1);
    so_test_redis_cmd("SET t:episodes x");
    assert_int_equal(so_store_log_episode(s, &e.ep, err, sizeof err), -1);
    so_stat_t deltas[8];
    assert_int_equal(so_store_replay(s, hb, deltas, NULL, err, sizeof err), -1);
    assert_int_equal(so_store_rebuild(s, hb, err, sizeof err), -1);

    /* Pending turns that are not TurnRecords. */
    so_test_redis_cmd("RPUSH t:pending:ep-9 %b", "\xff\xff\xff", (size_t) 3);
    so_pb_turn_record_t **turns;
    assert_int_equal(so_store_pending_turns(s, "ep-9", NULL, 0, &turns, &n, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "t:pending:ep-9[0]");

    /* Bad urls and a server that is not there. */
    assert_null(so_store_connect("http://x", "t:", 500, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "expected redis://");
    assert_null(so_store_connect("redis://127.0.0.1:99999", "t:", 500, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "bad port");
    assert_null(so_store_connect("redis://127.0.0.1:6379/x", "t:", 500, err, sizeof err));
    char url[300];
    snprintf(url, sizeof url, "unix:%s/none.sock", so_tr_dir);
    assert_null(so_store_connect(url, "t:", 500, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "connect unix:");

    so_handbook_destroy(&hb);
    so_store_destroy(&s);
}

static void test_pending_turns(void **state)
{
    (void) state;
    char err[256] = "", version[64];
    so_store_t *s = so_test_store();
    so_t_ep_t e;
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_pb_turn_record_t *t0 = so_t_ep_turn(&e, "a1", 0.5);
    so_t_ep_demand(&e, t0, "code", 1);
    so_pb_turn_record_t *t1 = so_t_ep_turn(&e, "a2", 0.25);
    t1->score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
    t1->score = 0.5;
    assert_int_equal(so_store_push_turn_ex(s, "ep-1", "v1", t0, 60, err, sizeof err), 0);
    assert_int_equal(so_store_push_turn(s, "ep-1", t1, 60, err, sizeof err), 0);

    so_pb_turn_record_t **turns;
    size_t n;
    assert_int_equal(so_store_pending_turns(s, "ep-1", version, sizeof version, &turns, &n, err,
                                            sizeof err),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(version, "v1");
    assert_string_equal(turns[0]->agent_id, "a1");
    assert_int_equal(turns[0]->n_demand, 1);
    SO_ASSERT_NEAR(turns[1]->score, 0.5, 0);
    so_store_turns_free(&turns, n);
    assert_null(turns);

    assert_int_equal(so_store_drop_pending(s, "ep-1", err, sizeof err), 0);
    assert_int_equal(so_store_pending_turns(s, "ep-1", version, sizeof version, &turns, &n, err,
                                            sizeof err),
                     0);
    assert_int_equal(n, 0);
    assert_string_equal(version, "");
    so_store_turns_free(&turns, n);

    /* Invalid turns are refused before they reach Redis. */
    t0->agent_id = "";
    assert_int_equal(so_store_push_turn(s, "ep-1", t0, 60, err, sizeof err), -1);
    t0->agent_id = "a1";
    assert_int_equal(so_store_push_turn(s, "ep-1", t0, 0, err, sizeof err), -1);
    so_store_destroy(&s);
}

/* Reads the log's entries into decoded episodes (at most max). */
static size_t s_log_read(so_pb_episode_outcome_t **out, size_t max)
{
    char err[256];
    redisContext *c = so_test_redis_raw();
    redisReply *r = redisCommand(c, "XRANGE t:episodes - +");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    size_t n = 0;
    for (size_t i = 0; i < r->elements && n < max; i++) {
        redisReply *f = r->element[i]->element[1];
        assert_int_equal(f->elements, 4);
        assert_string_equal(f->element[2]->str, "pb");
        if (so_store_decode_episode(f->element[3]->str, f->element[3]->len, &out[n], err,
                                    sizeof err) < 0)
            fail_msg("decode: %s", err);
        n++;
    }
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static void test_finish_episode(void **state)
{
    (void) state;
    char err[256] = "", version[64];
    so_store_t *s = so_test_store();
    so_t_ep_t e;
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_pb_turn_record_t *t0 = so_t_ep_turn(&e, "a1", 0.5);
    so_t_ep_demand(&e, t0, "code", 1);
    so_pb_turn_record_t *t1 = so_t_ep_turn(&e, "a2", 0.25);
    t1->score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
    t1->score = 0.5;
    /* Pushed out of order, turn 1 twice (a retried push). */
    assert_int_equal(so_store_push_turn_ex(s, "ep-1", "v1", t1, 60, err, sizeof err), 0);
    assert_int_equal(so_store_push_turn_ex(s, "ep-1", "v1", t0, 60, err, sizeof err), 0);
    assert_int_equal(so_store_push_turn_ex(s, "ep-1", "v1", t1, 60, err, sizeof err), 0);

    /* An explicit success; the version comes from the pending record. */
    assert_int_equal(so_store_finish_episode(s, "ep-1", 1, 1, -1, "other", err, sizeof err), 1);
    assert_int_equal(so_store_finish_episode(s, "ep-1", 1, 1, -1, "v1", err, sizeof err), 0);
    so_pb_turn_record_t **turns;
    size_t n;
    assert_int_equal(so_store_pending_turns(s, "ep-1", version, sizeof version, &turns, &n, err,
                                            sizeof err),
                     0);
    assert_int_equal(n, 0);
    so_store_turns_free(&turns, n);
    so_pb_episode_outcome_t *got[8];
    assert_int_equal(s_log_read(got, 8), 1);
    assert_string_equal(got[0]->episode_id, "ep-1");
    assert_string_equal(got[0]->handbook_version, "v1");
    assert_int_equal(got[0]->result_case, SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS);
    assert_true(got[0]->success);
    assert_int_equal(got[0]->n_turns, 2);
    assert_int_equal(got[0]->turns[0]->turn_index, 0);
    assert_string_equal(got[0]->turns[0]->agent_id, "a1");
    assert_int_equal(got[0]->turns[1]->turn_index, 1);
    assert_true(got[0]->finished_unix_ms > 1600000000000ULL);
    so_store_episode_free(&got[0]);

    /* No outcome given: the mean of the turns' scores. */
    t0->score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
    t0->score = 1;
    assert_int_equal(so_store_push_turn_ex(s, "ep-2", "v1", t0, 60, err, sizeof err), 0);
    assert_int_equal(so_store_push_turn_ex(s, "ep-2", "v1", t1, 60, err, sizeof err), 0);
    assert_int_equal(so_store_finish_episode(s, "ep-2", 0, 0, NAN, NULL, err, sizeof err), 1);
    /* An explicit score; no version recorded: version_if_none. */
    assert_int_equal(so_store_push_turn(s, "ep-3", t0, 60, err, sizeof err), 0);
    assert_int_equal(so_store_finish_episode(s, "ep-3", 0, 0, 0.25, "v2", err, sizeof err), 1);
    assert_int_equal(s_log_read(got, 8), 3);
    assert_int_equal(got[1]->result_case, SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE);
    SO_ASSERT_NEAR(got[1]->score, 0.75, 1e-12);
    SO_ASSERT_NEAR(got[2]->score, 0.25, 1e-12);
    assert_string_equal(got[2]->handbook_version, "v2");
    for (int i = 0; i < 3; i++)
        so_store_episode_free(&got[i]);

    /* Refusals leave the pending turns in place. */
    t0->score_opt_case = SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT__NOT_SET;
    assert_int_equal(so_store_push_turn_ex(s, "ep-4", "v1", t0, 60, err, sizeof err), 0);
    assert_int_equal(so_store_finish_episode(s, "ep-4", 0, 0, -1, NULL, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "no outcome given");
    assert_int_equal(so_store_finish_episode(s, "ep-4", 0, 0, 1.5, NULL, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "outside [0, 1]");
    assert_int_equal(so_store_push_turn(s, "ep-5", t0, 60, err, sizeof err), 0);
    assert_int_equal(so_store_finish_episode(s, "ep-5", 1, 0, -1, NULL, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "no handbook version");
    assert_int_equal(so_store_finish_episode(s, "", 1, 0, -1, NULL, err, sizeof err), -1);
    assert_int_equal(so_store_io_error(s), 0);
    assert_int_equal(so_store_pending_turns(s, "ep-4", version, sizeof version, &turns, &n, err,
                                            sizeof err),
                     0);
    assert_int_equal(n, 1);
    so_store_turns_free(&turns, n);
    assert_int_equal(so_store_finish_episode(s, "ep-4", 1, 0, -1, NULL, err, sizeof err), 1);
    assert_int_equal(s_log_read(got, 8), 4);
    assert_false(got[3]->success);
    for (int i = 0; i < 4; i++)
        so_store_episode_free(&got[i]);

    /* The finished episode is applied like any other. */
    so_handbook_t *hb = s_handbook("v1");
    assert_int_equal(s_log_read(got, 1), 1);
    assert_int_equal(so_store_apply_episode(s, hb, got[0], err, sizeof err), 1);
    so_store_episode_free(&got[0]);
    so_stat_t st = s_stat(s, "v1", "a1", "code", NULL);
    SO_ASSERT_NEAR(st.attempts, 1, 1e-12);
    SO_ASSERT_NEAR(st.successes, 1, 1e-12);
    so_handbook_destroy(&hb);
    so_store_destroy(&s);
}

static void test_lock_and_reconnect(void **state)
{
    (void) state;
    char err[256] = "";
    so_store_t *s = so_test_store();
    assert_int_equal(so_store_lock(s, "refine", "me", 10000, err, sizeof err), 1);
    assert_int_equal(so_store_lock(s, "refine", "you", 10000, err, sizeof err), 0);
    assert_int_equal(so_store_unlock(s, "refine", "you", err, sizeof err), 0);
    assert_int_equal(so_store_unlock(s, "refine", "me", err, sizeof err), 1);
    assert_int_equal(so_store_lock(s, "refine", "you", 10000, err, sizeof err), 1);

    /* The server drops our connection: one call may fail with an I/O
     * error, the next reconnects (and loads the functions again). */
    so_test_redis_cmd("CLIENT KILL TYPE normal SKIPME yes");
    so_handbook_t *hb = s_handbook("v1");
    so_t_ep_t e;
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a1", 0), "code", 1);
    int rc = so_store_apply_episode(s, hb, &e.ep, err, sizeof err);
    if (rc < 0) {
        assert_int_equal(so_store_io_error(s), 1);
        rc = so_store_apply_episode(s, hb, &e.ep, err, sizeof err);
    }
    assert_int_equal(rc, 1);
    so_test_redis_cmd("FUNCTION FLUSH");
    so_test_redis_cmd("CLIENT KILL TYPE normal SKIPME yes");
    assert_int_equal(so_store_ensure(s, err, sizeof err), 0);
    rc = so_store_apply_episode(s, hb, &e.ep, err, sizeof err);
    if (rc < 0)
        rc = so_store_apply_episode(s, hb, &e.ep, err, sizeof err);
    assert_int_equal(rc, 0);
    so_handbook_destroy(&hb);
    so_store_destroy(&s);
}

static void test_decode_episode(void **state)
{
    (void) state;
    char err[256] = "";
    so_t_ep_t e;
    uint8_t hdr[SO_WIRE_HDR_LEN], *body;
    size_t len;
    so_t_ep_init(&e, "ep-1", "v1", 1);
    so_t_ep_demand(&e, so_t_ep_turn(&e, "a1", 0), "code", 1);
    assert_int_equal(so_wire_encode(SO_MSG_EPISODE_OUTCOME, &e.ep, hdr, &body, &len, err,
                                    sizeof err),
                     0);
    so_pb_episode_outcome_t *got = NULL;
    assert_int_equal(so_store_decode_episode(body, len, &got, err, sizeof err), 0);
    assert_string_equal(got->episode_id, "ep-1");
    assert_int_equal(got->n_turns, 1);
    so_store_episode_free(&got);
    assert_null(got);
    assert_int_equal(so_store_decode_episode(body, len - 1, &got, err, sizeof err), -1);
    assert_null(got);
    assert_int_equal(so_store_decode_episode(NULL, 0, &got, err, sizeof err), -1);
    free(body);
}

int main(void)
{
    if (!so_test_have_redis()) {
        printf("so_store: SKIPPED (redis-server not installed; make deps)\n");
        return SO_TEST_SKIPPED;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_handbook_put_get_current, so_test_redis_flush),
        cmocka_unit_test_setup(test_handbook_json, so_test_redis_flush),
        cmocka_unit_test_setup(test_apply_idempotent_fractional, so_test_redis_flush),
        cmocka_unit_test_setup(test_turn_score_vs_outcome, so_test_redis_flush),
        cmocka_unit_test_setup(test_unknown_skipped, so_test_redis_flush),
        cmocka_unit_test_setup(test_rebuild_equals_incremental, so_test_redis_flush),
        cmocka_unit_test_setup(test_malformed_data, so_test_redis_flush),
        cmocka_unit_test_setup(test_pending_turns, so_test_redis_flush),
        cmocka_unit_test_setup(test_finish_episode, so_test_redis_flush),
        cmocka_unit_test_setup(test_lock_and_reconnect, so_test_redis_flush),
        cmocka_unit_test(test_decode_episode),
    };
    return cmocka_run_group_tests_name("so_store", tests, group_setup, group_teardown);
}
