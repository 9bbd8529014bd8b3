/*
 * Tests for so_hbcache against a private redis-server on a unix socket in a
 * temporary directory (as test_so_store.c): lazy loads, unknown versions
 * (remembered for a while), the current version, stats refresh when the
 * sequence number moves, the LRU bound, and serving from memory while Redis
 * is down, then recovering.  Skipped without redis-server.
 */
#include "so_test_util.h"
#include "so_test_redis.h"
#include "store/so_hbcache.h"
#include "store/so_store.h"
#include "base/so_svc.h"


static int group_setup(void **state)
{
    (void) state;
    so_log_open("test_so_hbcache", SO_LOG_WARN);
    return so_test_redis_setup("hbcache");
}

static int group_teardown(void **state)
{
    (void) state;
    so_test_redis_teardown();
    return 0;
}

/* skills math, code; agents a1 (bootstrap: 4 of 5 on code), a2. */
static so_handbook_t *s_handbook(const char *version)
{
    so_handbook_t *hb = so_handbook_new(version);
    so_t_mode(hb, "default");
    so_t_skill(hb, "math", "default", NULL);
    so_t_skill(hb, "code", "default", NULL);
    so_skill_add_indicator(&hb->skills[0], "integral");
    so_skill_add_indicator(&hb->skills[1], "python function");
    so_t_agent(hb, "a1", "", 1, 2, 0);
    so_t_agent(hb, "a2", "", 3, 4, 0);
    so_t_stat(hb, 0, 1, 4, 5, 0.01);
    return hb;
}

static void s_publish(const char *version, int make_current)
{
    char err[256] = "";
    so_store_t *s = so_test_store();
    so_handbook_t *hb = s_handbook(version);
    if (so_store_put_handbook(s, hb, make_current, err, sizeof err) != 0)
        fail_msg("put_handbook: %s", err);
    so_handbook_destroy(&hb);
    so_store_destroy(&s);
}

/* Applies one successful episode: a2 on code. */
static void s_apply(const char *version, const char *episode)
{
    char err[256] = "";
    so_store_t *s = so_test_store();
    so_handbook_t *hb = s_handbook(version);
    so_pb_episode_outcome_t ep = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
    so_pb_turn_record_t t = SKILLORCHESTRA__V1__TURN_RECORD__INIT, *tp = &t;
    so_pb_skill_weight_t w = SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT, *wp = &w;
    w.skill_id = "code";
    w.weight = 1;
    t.agent_id = "a2";
    t.demand = &wp;
    t.n_demand = 1;
    t.cost_usd = 0.02;
    ep.episode_id = (char *) episode;
    ep.handbook_version = (char *) version;
    ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
    ep.success = 1;
    ep.turns = &tp;
    ep.n_turns = 1;
    if (so_store_apply_episode(s, hb, &ep, err, sizeof err) != 1)
        fail_msg("apply_episode: %s", err);
    so_handbook_destroy(&hb);
    so_store_destroy(&s);
}

static so_hbcache_t *s_cache(int with_router, size_t max_versions, int negative_ttl_ms)
{
    char err[256] = "";
    so_hbcache_opts_t o;
    so_hbcache_opts_default(&o);
    o.redis_url = so_tr_url;
    o.redis_prefix = "t:";
    o.with_infer = 1;
    o.with_router = with_router;
    o.max_versions = max_versions;
    o.negative_ttl_ms = negative_ttl_ms;
    o.refresh_ms = 0; /* every tick polls */
    o.backoff_max_ms = 40;
    so_hbcache_t *c = so_hbcache_new(&o, err, sizeof err);
    if (!c)
        fail_msg("so_hbcache_new: %s", err);
    return c;
}

/* ------------------------------------------------------------------ */

static void test_options(void **state)
{
    (void) state;
    char err[256] = "";
    so_hbcache_opts_t o;
    so_hbcache_opts_default(&o);
    o.max_versions = 0;
    assert_null(so_hbcache_new(&o, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "max_versions");
    so_hbcache_destroy(NULL);
    so_hbcache_t *c = NULL;
    so_hbcache_destroy(&c);
}

static void test_load_hit_and_current(void **state)
{
    (void) state;
    char err[256] = "";
    so_hbcache_status_t st;
    so_hbcache_stats_t stats;
    so_hbcache_t *c = s_cache(1, 4, 1000);

    /* Nothing published: the current version is unknown, not an outage. */
    assert_null(so_hbcache_get(c, NULL, &st, err, sizeof err));
    assert_int_equal(st, SO_HBCACHE_UNKNOWN);
    SO_ASSERT_CONTAINS(err, "none has been published");

    s_publish("v1", 1);
    so_hbcache_tick(c);
    assert_string_equal(so_hbcache_current(c), "v1");
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.loads, 1); /* the poll loaded the new current version */

    const so_hbcache_entry_t *e = so_hbcache_get(c, "", &st, err, sizeof err);
    assert_non_null(e);
    assert_int_equal(st, SO_HBCACHE_OK);
    assert_string_equal(e->version, "v1");
    assert_non_null(e->infer);
    assert_non_null(e->router);
    assert_int_equal(e->seq, 0);
    assert_int_equal(e->hb->n_skills, 2);
    SO_ASSERT_NEAR(so_handbook_stat(e->hb, 0, 1)->attempts, 5, 1e-12);

    e = so_hbcache_get(c, "v1", &st, err, sizeof err);
    assert_non_null(e);
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.hits, 2);
    assert_int_equal(stats.misses, 0);
    assert_int_equal(stats.cached, 1);
    assert_int_equal(stats.redis_up, 1);

    /* The inference index works on the cached handbook. */
    double demand[2];
    so_infer(e->infer, "write a python function", -1, demand);
    assert_true(demand[1] > demand[0]);
    so_hbcache_destroy(&c);
    assert_null(c);
}

static void test_unknown_remembered(void **state)
{
    (void) state;
    char err[256] = "";
    so_hbcache_status_t st;
    so_hbcache_stats_t stats;
    so_hbcache_t *c = s_cache(0, 4, 300);

    assert_null(so_hbcache_get(c, "v9", &st, err, sizeof err));
    assert_int_equal(st, SO_HBCACHE_UNKNOWN);
    SO_ASSERT_CONTAINS(err, "'v9' not found");

    /* Published now, but the cache remembers "unknown" for negative_ttl_ms
     * and does not ask Redis again. */
    s_publish("v9", 0);
    assert_null(so_hbcache_get(c, "v9", &st, err, sizeof err));
    assert_int_equal(st, SO_HBCACHE_UNKNOWN);
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.unknown, 2);
    assert_int_equal(stats.loads, 0);

    so_test_sleep_ms(350);
    const so_hbcache_entry_t *e = so_hbcache_get(c, "v9", &st, err, sizeof err);
    assert_non_null(e);
    assert_null(e->router); /* with_router = 0 */
    assert_int_equal(e->seq, -1);
    so_hbcache_destroy(&c);
}

static void test_stats_refresh(void **state)
{
    (void) state;
    char err[256] = "";
    so_hbcache_status_t st;
    so_hbcache_stats_t stats;
    s_publish("v1", 1);
    s_apply("v1", "ep-0"); /* a delta before the first load */
    so_hbcache_t *c = s_cache(1, 4, 1000);

    const so_hbcache_entry_t *e = so_hbcache_get(c, "v1", &st, err, sizeof err);
    assert_non_null(e);
    assert_int_equal(e->seq, 1);
    SO_ASSERT_NEAR(so_handbook_stat(e->hb, 1, 1)->attempts, 1, 1e-12);
    SO_ASSERT_NEAR(so_handbook_stat(e->hb, 0, 1)->attempts, 5, 1e-12); /* bootstrap */
    double a0, b0, a1, b1;
    so_route_posterior(e->router, 1, 1, &a0, &b0, NULL);

    /* Nothing moved: a poll reloads nothing. */
    so_hbcache_tick(c);
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.reloads, 0);

    /* Two more episodes: the poll sees seq 3, adds the deltas once onto the
     * bootstrap stats (not onto the previous sum) and rebuilds the router. */
    s_apply("v1", "ep-1");
    s_apply("v1", "ep-2");
    so_hbcache_tick(c);
    e = so_hbcache_get(c, "v1", &st, err, sizeof err);
    assert_non_null(e);
    assert_int_equal(e->seq, 3);
    SO_ASSERT_NEAR(so_handbook_stat(e->hb, 1, 1)->attempts, 3, 1e-12);
    SO_ASSERT_NEAR(so_handbook_stat(e->hb, 1, 1)->successes, 3, 1e-12);
    SO_ASSERT_NEAR(so_handbook_stat(e->hb, 0, 1)->attempts, 5, 1e-12);
    so_route_posterior(e->router, 1, 1, &a1, &b1, NULL);
    assert_true(a1 > a0);
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.reloads, 1);
    so_hbcache_destroy(&c);
}

static void test_bad_stats_kept_out(void **state)
{
    (void) state;
    char err[256] = "";
    so_hbcache_status_t st;
    so_hbcache_stats_t stats;
    s_publish("v1", 1);
    s_apply("v1", "ep-0");
    so_hbcache_t *c = s_cache(1, 4, 1000);
    const so_hbcache_entry_t *e = so_hbcache_get(c, "v1", &st, err, sizeof err);
    assert_non_null(e);
    assert_int_equal(e->seq, 1);

    /* A value that is not a number, and the sequence moves: the reload
     * fails, the entry keeps its stats, and the same sequence number is not
     * retried on every poll. */
    so_test_redis_cmd("HSET t:stats:v1 a1\x1f"
                      "code\x1fn oops");
    so_test_redis_cmd("INCR t:seq:v1");
    so_hbcache_tick(c);
    so_hbcache_tick(c);
    e = so_hbcache_get(c, "v1", &st, err, sizeof err);
    assert_non_null(e);
    assert_int_equal(e->seq, 1);
    SO_ASSERT_NEAR(so_handbook_stat(e->hb, 1, 1)->attempts, 1, 1e-12);
    SO_ASSERT_NEAR(so_handbook_stat(e->hb, 0, 1)->attempts, 5, 1e-12);
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.reloads, 0);
    assert_int_equal(stats.redis_up, 1);

    /* Repaired, and the sequence moves again: loaded. */
    so_test_redis_cmd("HDEL t:stats:v1 a1\x1f"
                      "code\x1fn");
    s_apply("v1", "ep-1");
    so_hbcache_tick(c);
    e = so_hbcache_get(c, "v1", &st, err, sizeof err);
    assert_int_equal(e->seq, 3);
    SO_ASSERT_NEAR(so_handbook_stat(e->hb, 1, 1)->attempts, 2, 1e-12);
    so_hbcache_destroy(&c);
}

static void test_lru_and_new_current(void **state)
{
    (void) state;
    char err[256] = "";
    so_hbcache_status_t st;
    so_hbcache_stats_t stats;
    s_publish("v1", 1);
    s_publish("v2", 0);
    s_publish("v3", 0);
    so_hbcache_t *c = s_cache(1, 2, 1000);
    so_hbcache_tick(c); /* loads v1 (current) */
    assert_non_null(so_hbcache_get(c, "v2", &st, err, sizeof err));
    /* Full: v3 evicts v2 — the current version v1 stays though older. */
    assert_non_null(so_hbcache_get(c, "v3", &st, err, sizeof err));
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.evictions, 1);
    assert_int_equal(stats.cached, 2);
    assert_non_null(so_hbcache_get(c, "v1", &st, err, sizeof err));
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.loads, 3);

    /* A newly published current version is loaded by the poll. */
    s_publish("v4", 1);
    so_hbcache_tick(c);
    assert_string_equal(so_hbcache_current(c), "v4");
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.loads, 4);
    const so_hbcache_entry_t *e = so_hbcache_get(c, NULL, &st, err, sizeof err);
    assert_non_null(e);
    assert_string_equal(e->version, "v4");
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.loads, 4);
    so_hbcache_destroy(&c);
}

static void test_redis_down_and_back(void **state)
{
    (void) state;
    char err[256] = "";
    so_hbcache_status_t st;
    so_hbcache_stats_t stats;
    s_publish("v1", 1);
    s_publish("v2", 0);
    so_hbcache_t *c = s_cache(1, 4, 1000);
    assert_non_null(so_hbcache_get(c, NULL, &st, err, sizeof err));

    so_test_redis_stop();
    /* The poll notices and backs off; cached versions are still served, and
     * a version not cached fails at once as unavailable. */
    int wait = so_hbcache_tick(c);
    assert_true(wait > 0 && wait <= 40);
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.redis_up, 0);
    const so_hbcache_entry_t *e = so_hbcache_get(c, "v1", &st, err, sizeof err);
    assert_non_null(e);
    assert_string_equal(e->version, "v1");
    assert_null(so_hbcache_get(c, "v2", &st, err, sizeof err));
    assert_int_equal(st, SO_HBCACHE_UNAVAILABLE);
    SO_ASSERT_CONTAINS(err, "unreachable");
    for (int i = 0; i < 5; i++) { /* back-off grows to its bound */
        so_test_sleep_ms(45);
        wait = so_hbcache_tick(c);
        assert_true(wait > 0 && wait <= 40);
    }

    /* Redis comes back empty (no persistence): the poll reconnects; the
     * cached v1 keeps serving. */
    assert_int_equal(so_test_redis_start(), 0);
    s_publish("v2", 1);
    for (int i = 0; i < 20; i++) {
        so_hbcache_tick(c);
        so_hbcache_stats(c, &stats);
        if (stats.redis_up)
            break;
        so_test_sleep_ms(20);
    }
    assert_int_equal(stats.redis_up, 1);
    assert_string_equal(so_hbcache_current(c), "v2");
    assert_non_null(so_hbcache_get(c, "v2", &st, err, sizeof err));
    assert_non_null(so_hbcache_get(c, "v1", &st, err, sizeof err));
    so_hbcache_destroy(&c);
}

/* The learner's use: a borrowed connection, batches held, versions read
 * again after reload_ms. */
static void test_hold_and_reload(void **state)
{
    (void) state;
    char err[256] = "";
    so_hbcache_status_t st;
    so_hbcache_stats_t stats;
    s_publish("v1", 1);
    s_publish("v2", 0);
    s_publish("v3", 0);
    so_store_t *s = so_test_store();
    so_hbcache_opts_t o;
    so_hbcache_opts_default(&o);
    o.store = s;
    o.max_versions = 1;
    o.reload_ms = 100000;
    o.log_unknown = 1;
    so_hbcache_t *c = so_hbcache_new(&o, err, sizeof err);
    assert_non_null(c);
    /* Within a hold, three versions stay valid together. */
    so_hbcache_hold(c);
    const so_hbcache_entry_t *e1 = so_hbcache_get(c, "v1", &st, err, sizeof err);
    const so_hbcache_entry_t *e2 = so_hbcache_get(c, "v2", &st, err, sizeof err);
    const so_hbcache_entry_t *e3 = so_hbcache_get(c, "v3", &st, err, sizeof err);
    assert_non_null(e1);
    assert_non_null(e2);
    assert_non_null(e3);
    assert_string_equal(e1->version, "v1");
    assert_string_equal(e2->version, "v2");
    assert_null(e1->router);
    assert_null(e1->infer);
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.cached, 3);
    assert_int_equal(stats.evictions, 0);
    /* The next hold trims back to max_versions (the most recent stays). */
    so_hbcache_hold(c);
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.cached, 1);
    assert_int_equal(stats.evictions, 2);
    assert_ptr_equal(so_hbcache_get(c, "v3", &st, err, sizeof err), e3);
    assert_int_equal(so_hbcache_get(c, "v9", &st, err, sizeof err) == NULL, 1);
    assert_int_equal(st, SO_HBCACHE_UNKNOWN);
    so_hbcache_destroy(&c);

    /* reload_ms: a version is read again once that old (not while held). */
    o.max_versions = 2;
    o.reload_ms = 1;
    c = so_hbcache_new(&o, err, sizeof err);
    so_hbcache_hold(c);
    assert_non_null(so_hbcache_get(c, "v1", &st, err, sizeof err));
    so_test_sleep_ms(5);
    assert_non_null(so_hbcache_get(c, "v1", &st, err, sizeof err));
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.loads, 1);
    so_hbcache_hold(c);
    assert_non_null(so_hbcache_get(c, "v1", &st, err, sizeof err));
    so_hbcache_stats(c, &stats);
    assert_int_equal(stats.loads, 2);
    /* Redis away: with a borrowed store a miss asks Redis at once. */
    so_test_redis_stop();
    so_hbcache_hold(c);
    so_test_sleep_ms(5);
    assert_null(so_hbcache_get(c, "v1", &st, err, sizeof err));
    assert_int_equal(st, SO_HBCACHE_UNAVAILABLE);
    assert_int_equal(so_test_redis_start(), 0);
    s_publish("v1", 1);
    assert_non_null(so_hbcache_get(c, "v1", &st, err, sizeof err));
    so_hbcache_destroy(&c);
    so_store_destroy(&s);
}

static void test_redis_down_at_start(void **state)
{
    (void) state;
    char err[256] = "";
    so_hbcache_status_t st;
    so_hbcache_opts_t o;
    so_hbcache_opts_default(&o);
    o.redis_url = "unix:/nonexistent/so-test.sock";
    o.refresh_ms = 0;
    so_hbcache_t *c = so_hbcache_new(&o, err, sizeof err);
    assert_non_null(c);
    assert_null(so_hbcache_get(c, "v1", &st, err, sizeof err));
    assert_int_equal(st, SO_HBCACHE_UNAVAILABLE);
    assert_null(so_hbcache_get(c, NULL, &st, err, sizeof err));
    assert_int_equal(st, SO_HBCACHE_UNAVAILABLE);
    assert_true(so_hbcache_tick(c) > 0);
    so_hbcache_destroy(&c);
}

int main(void)
{
    if (!so_test_have_redis()) {
        printf("so_hbcache: SKIPPED (redis-server not installed; make deps)\n");
        return SO_TEST_SKIPPED;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test_setup(test_load_hit_and_current, so_test_redis_flush),
        cmocka_unit_test_setup(test_unknown_remembered, so_test_redis_flush),
        cmocka_unit_test_setup(test_stats_refresh, so_test_redis_flush),
        cmocka_unit_test_setup(test_bad_stats_kept_out, so_test_redis_flush),
        cmocka_unit_test_setup(test_lru_and_new_current, so_test_redis_flush),
        cmocka_unit_test_setup(test_redis_down_and_back, so_test_redis_flush),
        cmocka_unit_test_setup(test_hold_and_reload, so_test_redis_flush),
        cmocka_unit_test(test_redis_down_at_start),
    };
    return cmocka_run_group_tests_name("so_hbcache", tests, group_setup, group_teardown);
}
