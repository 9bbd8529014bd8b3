/*
 * Tests for the router's handler (services/router/so_decide.c) and its
 * routing profiles (so_profile.c): profiles read from a config (defaults
 * inherited, explore on/off, exclude lists, bad names and values), and
 * decisions made by so_decide_handle against a handbook in a private
 * redis-server, answered over an inproc PAIR: no profile, a profile's λ
 * changing the decision (a turn's own λ still winning), a profile's
 * excluded agent, an unknown profile refused with INVALID_REQUEST and
 * counted.  The Redis cases are skipped without redis-server.
 */
#include "so_test_util.h"
#include "so_test_redis.h"
#include "so_decide.h"
#include "so_profile.h"
#include "base/so_svc.h"
#include "store/so_hbcache.h"
#include "store/so_store.h"
#include "wire/so_wire.h"

#include <zmq.h>

#define S_VERSION "d-1"

/* ------------------------------------------------------------------ */
/* Profiles from a config                                              */

static so_config_t *s_config(const char *const *kv)
{
    so_config_t *cfg = so_config_new("test-so-decide");
    for (; kv && kv[0]; kv += 2)
        so_config_set(cfg, kv[0], kv[1]);
    return cfg;
}

static const so_profile_t s_base = {
    .name = "", .lambda = 0.5, .thompson = 1, .explore_floor = 0.02
};

static void test_profiles_config(void **state)
{
    (void) state;
    char err[256] = "";
    static const char *const kv[] = {
        "profiles",
        "fast, careful,plain",
        "profile.fast.lambda",
        "2.0",
        "profile.fast.explore",
        "off",
        "profile.fast.exclude",
        "a1, a2",
        "profile.careful.lambda",
        "0",
        "profile.careful.explore",
        "off",
        "profile.careful.thompson",
        "1",
        NULL,
        NULL,
    };
    so_config_t *cfg = s_config(kv);
    so_profiles_t *p = so_profiles_new(cfg, &s_base, err, sizeof err);
    if (!p)
        fail_msg("so_profiles_new: %s", err);
    assert_int_equal(so_profiles_count(p), 3);
    assert_string_equal(so_profiles_names(p), "fast,careful,plain");

    const so_profile_t *f = so_profiles_get(p, "fast");
    assert_non_null(f);
    assert_string_equal(f->name, "fast");
    assert_true(f->lambda == 2.0);
    assert_int_equal(f->thompson, 0);
    assert_true(f->explore_floor == 0);
    assert_int_equal(f->n_exclude, 2);
    assert_string_equal(f->exclude[0], "a1");
    assert_string_equal(f->exclude[1], "a2");

    const so_profile_t *c = so_profiles_get(p, "careful");
    assert_true(c->lambda == 0);
    assert_int_equal(c->thompson, 1); /* explicit key over explore = off */
    assert_true(c->explore_floor == 0);
    assert_int_equal(c->n_exclude, 0);

    const so_profile_t *d = so_profiles_get(p, "plain"); /* nothing set: the base */
    assert_true(d->lambda == s_base.lambda);
    assert_int_equal(d->thompson, s_base.thompson);
    assert_true(d->explore_floor == s_base.explore_floor);

    assert_null(so_profiles_get(p, "nope"));
    assert_null(so_profiles_get(p, NULL));
    so_profiles_destroy(&p);
    assert_null(p);
    so_profiles_destroy(&p); /* NULL-safe */
    so_config_destroy(&cfg);

    cfg = s_config(NULL); /* no profiles key: an empty table */
    p = so_profiles_new(cfg, &s_base, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(so_profiles_count(p), 0);
    assert_string_equal(so_profiles_names(p), "-");
    so_profiles_destroy(&p);
    so_config_destroy(&cfg);
}

/* A config that must be refused with an error containing want. */
static void s_assert_refused(const char *const *kv, const char *want)
{
    char err[256] = "";
    so_config_t *cfg = s_config(kv);
    so_profiles_t *p = so_profiles_new(cfg, &s_base, err, sizeof err);
    if (p)
        fail_msg("accepted; want \"%s\"", want);
    SO_ASSERT_CONTAINS(err, want);
    so_config_destroy(&cfg);
}

static void test_profiles_refused(void **state)
{
    (void) state;
    static const char *const dot[] = { "profiles", "ok,a.b", NULL, NULL };
    s_assert_refused(dot, "profiles: 'a.b' is not a valid name");
    static const char *const twice[] = { "profiles", "x,y,x", NULL, NULL };
    s_assert_refused(twice, "profiles: 'x' is listed twice");
    static const char *const neg[] = { "profiles", "x", "profile.x.lambda", "-1", NULL, NULL };
    s_assert_refused(neg, "profile.x.lambda");
    static const char *const exp[] = {
        "profiles", "x", "profile.x.explore", "maybe", NULL, NULL
    };
    s_assert_refused(exp, "profile.x.explore: 'maybe' is neither on nor off");
    static const char *const floor[] = { "profiles", "y,x", "profile.x.explore_floor",
                                         "2",        NULL,  NULL };
    s_assert_refused(floor, "profile.x.explore_floor");
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */

static int group_setup(void **state)
{
    (void) state;
    so_log_open("test_so_decide", SO_LOG_ERROR);
    return so_test_redis_setup("decide");
}

static int group_teardown(void **state)
{
    (void) state;
    so_test_redis_teardown();
    return 0;
}

/* One skill; "strong" succeeds 90 of 100 times at $0.05 a call, "cheap"
 * 50 of 100 at $0.0001.  With λ 0.055 strong wins, with λ 2 cheap does. */
static void s_publish(void)
{
    char err[256] = "";
    so_handbook_t *hb = so_handbook_new(S_VERSION);
    so_t_mode(hb, "default");
    so_t_skill(hb, "code", "default", NULL);
    int strong = so_t_agent(hb, "strong", "", 30, 60, 0);
    int cheap = so_t_agent(hb, "cheap", "", 0.1, 0.2, 0);
    so_t_stat(hb, strong, 0, 90, 100, 0.05);
    so_t_stat(hb, cheap, 0, 50, 100, 0.0001);
    so_store_t *s = so_test_store();
    if (so_store_put_handbook(s, hb, 1, err, sizeof err) != 0)
        fail_msg("put_handbook: %s", err);
    so_store_destroy(&s);
    so_handbook_destroy(&hb);
}

/* The router under test: deterministic (no Thompson, no floor) unless a
 * profile says otherwise; profiles "fast" (λ 2) and "nostrong". */
typedef struct {
    so_config_t *cfg;
    so_profiles_t *profiles;
    so_hbcache_t *cache;
    so_decide_t *d;
    void *ctx, *a, *b;
} s_fix_t;

static void s_fix_new(s_fix_t *f)
{
    char err[256] = "";
    static const char *const kv[] = {
        "profiles",
        "fast,nostrong",
        "profile.fast.lambda",
        "2",
        "profile.nostrong.exclude",
        "strong",
        NULL,
        NULL,
    };
    s_publish();
    so_decide_opts_t ro;
    so_decide_opts_default(&ro);
    ro.thompson = 0;
    ro.explore_floor = 0;
    so_profile_t base = { .name = "",
                          .lambda = ro.lambda,
                          .thompson = ro.thompson,
                          .explore_floor = ro.explore_floor };
    f->cfg = s_config(kv);
    f->profiles = so_profiles_new(f->cfg, &base, err, sizeof err);
    if (!f->profiles)
        fail_msg("so_profiles_new: %s", err);
    ro.profiles = f->profiles;
    so_hbcache_opts_t co;
    so_hbcache_opts_default(&co);
    co.redis_url = so_tr_url;
    co.redis_prefix = "t:";
    co.with_router = 1;
    f->cache = so_hbcache_new(&co, err, sizeof err);
    if (!f->cache)
        fail_msg("so_hbcache_new: %s", err);
    f->d = so_decide_new(f->cache, &ro);
    f->ctx = zmq_ctx_new();
    f->a = zmq_socket(f->ctx, ZMQ_PAIR);
    f->b = zmq_socket(f->ctx, ZMQ_PAIR);
    int timeout = 5000, linger = 0;
    zmq_setsockopt(f->b, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(f->a, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(f->b, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(f->a, "inproc://so-decide"), 0);
    assert_int_equal(zmq_connect(f->b, "inproc://so-decide"), 0);
}

static void s_fix_free(s_fix_t *f)
{
    zmq_close(f->a);
    zmq_close(f->b);
    zmq_ctx_term(f->ctx);
    so_decide_destroy(&f->d);
    so_hbcache_destroy(&f->cache);
    so_profiles_destroy(&f->profiles);
    so_config_destroy(&f->cfg);
}

/* Routes one code turn (profile may be NULL; lambda < 0: the turn sets
 * none) and returns the reply: a RoutingDecision (*type_out says) or an
 * error TurnReply.  Free with so_wire_free. */
static void *s_route(s_fix_t *f, const char *profile, double lambda, so_msg_type_t *type_out)
{
    so_pb_chat_message_t chat = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT, *chatp = &chat;
    chat.role = "user";
    chat.content = "Write a python function that reverses a string.";
    so_pb_turn_request_t t = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    t.request_id = "req-1";
    t.episode_id = "ep-1";
    t.mode = "";
    t.handbook_version = "";
    t.routing_profile = (char *) (profile ? profile : "");
    t.n_messages = 1;
    t.messages = &chatp;
    if (lambda >= 0) {
        t.lambda_opt_case = SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA;
        t.lambda = lambda;
    }
    so_pb_skill_weight_t w = SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT, *wp = &w;
    w.skill_id = "code";
    w.weight = 1;
    so_pb_skill_demand_t dm = SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
    dm.request_id = "req-1";
    dm.handbook_version = S_VERSION;
    dm.n_skills = 1;
    dm.skills = &wp;
    dm.source = SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_EMBEDDED;
    so_pb_route_request_t rr = SKILLORCHESTRA__V1__ROUTE_REQUEST__INIT;
    rr.turn = &t;
    rr.demand = &dm;

    so_server_result_t r = so_decide_handle(f->d, f->a, NULL, &rr);
    assert_true(r == SO_SERVER_ANSWERED || r == SO_SERVER_ERROR_REPLY);
    char err[256] = "";
    void *msg = NULL;
    if (so_wire_recv(f->b, NULL, SO_MSG_ANY, type_out, &msg, 0, err, sizeof err) != 0)
        fail_msg("recv: %s", err);
    assert_int_equal(*type_out,
                     r == SO_SERVER_ANSWERED ? SO_MSG_ROUTING_DECISION : SO_MSG_TURN_REPLY);
    return msg;
}

/* The decision of a turn that must be routed. */
static so_pb_routing_decision_t *s_decision(s_fix_t *f, const char *profile, double lambda)
{
    so_msg_type_t type;
    void *m = s_route(f, profile, lambda, &type);
    if (type != SO_MSG_ROUTING_DECISION)
        fail_msg("error reply: %s", ((so_pb_turn_reply_t *) m)->error->message);
    return m;
}

static void test_no_profile(void **state)
{
    (void) state;
    s_fix_t f;
    s_fix_new(&f);
    so_pb_routing_decision_t *d = s_decision(&f, NULL, -1);
    assert_string_equal(d->chosen_agent, "strong");
    assert_true(d->lambda == 0.055);
    assert_int_equal(d->strategy,
                     SKILLORCHESTRA__V1__ROUTING_DECISION__STRATEGY__STRATEGY_GREEDY);
    assert_null(strstr(d->reason, "routing_profile"));
    SO_ASSERT_CONTAINS(d->reason, "handbook d-1 stats seq");
    so_wire_free(SO_MSG_ROUTING_DECISION, d);
    s_fix_free(&f);
}

static void test_profile_lambda(void **state)
{
    (void) state;
    s_fix_t f;
    s_fix_new(&f);
    so_pb_routing_decision_t *d = s_decision(&f, "fast", -1);
    assert_string_equal(d->chosen_agent, "cheap");
    assert_true(d->lambda == 2);
    SO_ASSERT_CONTAINS(d->reason, "; routing_profile 'fast'");
    so_wire_free(SO_MSG_ROUTING_DECISION, d);
    /* the turn's own lambda still wins over the profile's */
    d = s_decision(&f, "fast", 0);
    assert_string_equal(d->chosen_agent, "strong");
    assert_true(d->lambda == 0);
    SO_ASSERT_CONTAINS(d->reason, "; routing_profile 'fast'");
    so_wire_free(SO_MSG_ROUTING_DECISION, d);
    char stats[1024];
    so_decide_stats(f.d, stats, sizeof stats);
    SO_ASSERT_CONTAINS(stats, " profile_unknown=0 profiled=2 ");
    s_fix_free(&f);
}

static void test_profile_exclude(void **state)
{
    (void) state;
    s_fix_t f;
    s_fix_new(&f);
    so_pb_routing_decision_t *d = s_decision(&f, "nostrong", 0);
    assert_string_equal(d->chosen_agent, "cheap");
    assert_int_equal(d->n_scores, 2);
    for (size_t i = 0; i < d->n_scores; i++)
        if (strcmp(d->scores[i]->agent_id, "strong") == 0)
            assert_false(d->scores[i]->eligible);
    SO_ASSERT_CONTAINS(d->reason, "; routing_profile 'nostrong'");
    so_wire_free(SO_MSG_ROUTING_DECISION, d);
    s_fix_free(&f);
}

static void test_unknown_profile(void **state)
{
    (void) state;
    s_fix_t f;
    s_fix_new(&f);
    so_msg_type_t type;
    so_pb_turn_reply_t *r = s_route(&f, "nope", -1, &type);
    assert_int_equal(type, SO_MSG_TURN_REPLY);
    assert_string_equal(r->request_id, "req-1");
    assert_non_null(r->error);
    assert_int_equal(r->error->code, SO_ERR(INVALID_REQUEST));
    assert_string_equal(r->error->message,
                        "routing_profile 'nope' is not configured (profiles: fast,nostrong)");
    so_wire_free(SO_MSG_TURN_REPLY, r);
    char stats[1024];
    so_decide_stats(f.d, stats, sizeof stats);
    SO_ASSERT_CONTAINS(stats, " invalid=1 profile_unknown=1 profiled=0 ");
    s_fix_free(&f);
}

int main(void)
{
    const struct CMUnitTest config_tests[] = {
        cmocka_unit_test(test_profiles_config),
        cmocka_unit_test(test_profiles_refused),
    };
    int rc = cmocka_run_group_tests_name("so_profile", config_tests, NULL, NULL);
    if (!so_test_have_redis()) {
        printf("so_decide: SKIPPED (redis-server not installed; make deps)\n");
        return rc ? rc : SO_TEST_SKIPPED;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_no_profile, so_test_redis_flush),
        cmocka_unit_test_setup(test_profile_lambda, so_test_redis_flush),
        cmocka_unit_test_setup(test_profile_exclude, so_test_redis_flush),
        cmocka_unit_test_setup(test_unknown_profile, so_test_redis_flush),
    };
    return rc | cmocka_run_group_tests_name("so_decide", tests, group_setup, group_teardown);
}
