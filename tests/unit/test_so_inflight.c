/* Unit tests for the gateway's turns in flight (so_inflight) and episode
 * pins (so_episodes), without sockets: the ops are recording fakes and the
 * clock is a variable.  One test per transition of the state diagram in
 * so_inflight.h, error paths included. */
#include "so_test_inflight.h"

/* ---- Admission ----------------------------------------------------------- */

static void test_answered_and_recorded(void **state)
{
    fx_t *fx = *state;
    so_broker_worker_t *w1 = s_worker(fx, "w1", 2, "");
    assert_non_null(w1);
    s_admit(fx, "c1");
    assert_int_equal(fx->w.n_infer, 1);
    const char *id = fx->w.infer_id;
    assert_string_not_equal(id, "c1"); /* ours on the backends */
    assert_string_equal(fx->w.infer_version, "v1");
    assert_int_equal(so_inflight_stage(fx->f, id), SO_INFLIGHT_INFER);
    s_demand(fx, id);
    assert_int_equal(fx->w.n_route, 1);
    assert_int_equal(so_inflight_stage(fx->f, id), SO_INFLIGHT_ROUTE);
    s_decide(fx, id, "a");
    assert_int_equal(fx->w.n_call, 1);
    assert_string_equal(fx->w.call_id, id);
    assert_string_equal(fx->w.call_agent, "a");
    assert_int_equal(fx->w.call_attempt, 0);
    assert_int_equal(w1->inflight, 1);
    fx->w.now += 40;
    s_result(fx, "w1", id, "a", SO_ERR(NONE), 0);
    assert_int_equal(fx->w.n_reply, 1);
    assert_string_equal(fx->w.reply_id, "c1"); /* the client's ids again */
    assert_string_equal(fx->w.reply_decision_id, "c1");
    assert_string_equal(fx->w.reply_result_id, "c1");
    assert_string_equal(fx->w.reply_text, "answer");
    assert_string_equal(fx->w.reply_reason, "best");
    assert_int_equal(fx->w.n_record, 1);
    assert_string_equal(fx->w.record_episode, "ep1");
    assert_string_equal(fx->w.record_version, "v1");
    assert_string_equal(fx->w.record_agent, "a");
    assert_int_equal(fx->w.record_final, 0);
    assert_int_equal(w1->inflight, 0);
    assert_int_equal(so_inflight_size(fx->f), 0);
    assert_int_equal(C(fx)->received, 1);
    assert_int_equal(C(fx)->replied, 1);
    assert_int_equal(C(fx)->errors, 0);
    double p50, p99;
    so_inflight_latency(fx->f, &p50, &p99);
    SO_ASSERT_NEAR(p50, 40, 0);
}

static void test_admission_refused_when_draining_or_full(void **state)
{
    fx_t *fx = *state;
    so_inflight_set_draining(fx->f, 1);
    s_admit(fx, "c1");
    assert_int_equal(fx->w.n_error, 1);
    assert_int_equal(fx->w.error_code, SO_ERR(UNAVAILABLE));
    assert_string_equal(fx->w.error_id, "c1");
    SO_ASSERT_CONTAINS(fx->w.error_msg, "shutting down");
    assert_int_equal(fx->w.n_infer, 0);
    so_inflight_set_draining(fx->f, 0);
    for (int i = 0; i < 10; i++)
        s_admit(fx, "cx");
    assert_int_equal(so_inflight_size(fx->f), 10);
    s_admit(fx, "c11");
    SO_ASSERT_CONTAINS(fx->w.error_msg, "overloaded");
    assert_int_equal(so_inflight_size(fx->f), 10);
    assert_int_equal(C(fx)->received, 12);
    assert_int_equal(C(fx)->errors, 2);
}

static void test_no_handbook_fails(void **state)
{
    fx_t *fx = *state;
    so_inflight_set_version(fx->f, "");
    s_admit(fx, "c1");
    assert_int_equal(fx->w.error_code, SO_ERR(UNKNOWN_HANDBOOK));
    SO_ASSERT_CONTAINS(fx->w.error_msg, "no handbook");
    assert_int_equal(fx->w.n_infer, 0);
    assert_int_equal(so_inflight_size(fx->f), 0);
    /* The client's own pin still works. */
    s_admit_ex(fx, "c2", (turn_opts_t){ .version = "v0" });
    assert_string_equal(fx->w.infer_version, "v0");
}

static void test_versions_pinned_per_episode(void **state)
{
    fx_t *fx = *state;
    s_admit(fx, "c1"); /* ep1 pinned to v1 */
    so_inflight_set_version(fx->f, "v2");
    s_admit(fx, "c2");
    assert_string_equal(fx->w.infer_version, "v1"); /* the episode's pin */
    s_admit_ex(fx, "c3", (turn_opts_t){ .episode = "ep2" });
    assert_string_equal(fx->w.infer_version, "v2"); /* a new episode: current */
    s_admit_ex(fx, "c4", (turn_opts_t){ .episode = "ep1", .version = "v9" });
    assert_string_equal(fx->w.infer_version, "v9"); /* the client's pin wins */
    s_admit_ex(fx, "c5", (turn_opts_t){ 0 });
    assert_string_not_equal(fx->w.infer_episode, ""); /* an episode id is made */
}

/* ---- Skill inference --------------------------------------------------- */

static void test_infer_timeout_retry_then_uniform_demand(void **state)
{
    fx_t *fx = *state;
    s_admit(fx, "c1");
    char id[ID];
    s_copy(id, fx->w.infer_id);
    s_tick(fx, 50);
    assert_int_equal(fx->w.n_infer, 1); /* not yet due */
    s_tick(fx, 60);
    assert_int_equal(fx->w.n_infer, 2); /* sent once more */
    s_tick(fx, 110);
    assert_int_equal(fx->w.n_infer, 2);
    assert_int_equal(fx->w.n_route, 1); /* routed on a uniform demand */
    assert_int_equal(fx->w.route_source,
                     SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_UNIFORM_FALLBACK);
    assert_int_equal(so_inflight_stage(fx->f, id), SO_INFLIGHT_ROUTE);
    assert_int_equal(C(fx)->uniform_fallbacks, 1);
    s_demand(fx, id); /* the late demand is stray */
    assert_int_equal(C(fx)->stray, 1);
    assert_int_equal(fx->w.n_route, 1);
}

static void test_infer_error_fails(void **state)
{
    fx_t *fx = *state;
    s_admit(fx, "c1");
    so_pb_error_t e = SKILLORCHESTRA__V1__ERROR__INIT;
    e.code = SO_ERR(INVALID_REQUEST);
    e.message = "no such mode";
    so_pb_turn_reply_t rep = SKILLORCHESTRA__V1__TURN_REPLY__INIT;
    rep.request_id = fx->w.infer_id;
    rep.error = &e;
    so_inflight_on_infer_error(fx->f, &rep);
    assert_int_equal(fx->w.n_error, 1);
    assert_string_equal(fx->w.error_id, "c1");
    assert_int_equal(fx->w.error_code, SO_ERR(INVALID_REQUEST));
    assert_string_equal(fx->w.error_msg, "no such mode");
    assert_int_equal(so_inflight_size(fx->f), 0);
    so_inflight_on_infer_error(fx->f, &rep); /* again: stray */
    rep.error = NULL;
    rep.request_id = "unknown";
    so_inflight_on_infer_error(fx->f, &rep);
    assert_int_equal(C(fx)->stray, 2);
    assert_int_equal(C(fx)->errors, 1);
}

/* ---- Router ------------------------------------------------------------ */

static void test_route_timeout_retry_then_unavailable(void **state)
{
    fx_t *fx = *state;
    s_admit(fx, "c1");
    s_demand(fx, fx->w.infer_id);
    s_tick(fx, 110);
    assert_int_equal(fx->w.n_route, 2);
    s_tick(fx, 110);
    assert_int_equal(fx->w.n_route, 2);
    assert_int_equal(fx->w.error_code, SO_ERR(UNAVAILABLE));
    SO_ASSERT_CONTAINS(fx->w.error_msg, "router is not answering");
    assert_int_equal(so_inflight_size(fx->f), 0);
}

static void test_route_error_fails_with_earlier_fallbacks(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 2, "");
    s_to_call(fx, "a");
    char id[ID];
    s_copy(id, fx->w.infer_id);
    s_result(fx, "w1", id, "a", SO_ERR(UPSTREAM), 0); /* fallback: routed again */
    so_pb_error_t e = SKILLORCHESTRA__V1__ERROR__INIT;
    e.code = SO_ERR(NO_ELIGIBLE_AGENT);
    e.message = "nothing left";
    so_pb_turn_reply_t rep = SKILLORCHESTRA__V1__TURN_REPLY__INIT;
    rep.request_id = id;
    rep.error = &e;
    so_inflight_on_route_error(fx->f, &rep);
    assert_int_equal(fx->w.error_code, SO_ERR(NO_ELIGIBLE_AGENT));
    assert_string_equal(fx->w.error_msg, "nothing left; earlier: a failed (boom)");
    so_inflight_on_route_error(fx->f, &rep); /* ended: stray */
    assert_int_equal(C(fx)->stray, 1);
}

static void test_stray_decisions_and_demands(void **state)
{
    fx_t *fx = *state;
    s_decide(fx, "unknown", "a");
    s_demand(fx, "unknown");
    s_admit(fx, "c1");
    s_decide(fx, fx->w.infer_id, "a"); /* still inferring */
    assert_int_equal(C(fx)->stray, 3);
    assert_int_equal(fx->w.n_call, 0);
    assert_int_equal(so_inflight_stage(fx->f, fx->w.infer_id), SO_INFLIGHT_INFER);
}

/* ---- Dispatch ---------------------------------------------------------- */

static void test_wait_for_a_free_slot(void **state)
{
    fx_t *fx = *state;
    s_admit(fx, "c1");
    char id[ID];
    s_copy(id, fx->w.infer_id);
    s_demand(fx, id);
    s_decide(fx, id, "a"); /* no worker at all yet */
    assert_int_equal(so_inflight_stage(fx->f, id), SO_INFLIGHT_WAIT);
    assert_int_equal(so_inflight_waiting(fx->f), 1);
    s_tick(fx, 10);
    assert_int_equal(fx->w.n_call, 0);
    s_worker(fx, "w1", 1, "");
    s_tick(fx, 10);
    assert_int_equal(fx->w.n_call, 1);
    assert_int_equal(so_inflight_stage(fx->f, id), SO_INFLIGHT_CALL);
    assert_int_equal(so_inflight_waiting(fx->f), 0);
}

static void test_waiting_turn_times_out(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 1, "");
    s_to_call(fx, "a"); /* takes w1's only slot */
    s_admit(fx, "c2");
    char id[ID];
    s_copy(id, fx->w.infer_id);
    s_demand(fx, id);
    s_decide(fx, id, "a");
    assert_int_equal(so_inflight_stage(fx->f, id), SO_INFLIGHT_WAIT);
    so_broker_seen(so_inflight_broker(fx->f), so_broker_find(so_inflight_broker(fx->f), "w1", 2),
                   fx->w.now + 10000);
    s_tick(fx, 10001);
    assert_int_equal(fx->w.error_code, SO_ERR(TIMEOUT));
    SO_ASSERT_CONTAINS(fx->w.error_msg, "request_timeout_ms");
    assert_int_equal(C(fx)->timeouts, 2); /* both turns */
    assert_int_equal(so_inflight_waiting(fx->f), 0);
    assert_int_equal(so_inflight_size(fx->f), 0);
}

static void test_no_worker_serves_the_agent(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 2, "b");
    s_admit(fx, "c1");
    char id[ID];
    s_copy(id, fx->w.infer_id);
    s_demand(fx, id);
    s_decide(fx, id, "a"); /* w1 does not serve a */
    assert_int_equal(fx->w.n_call, 0);
    assert_int_equal(fx->w.n_route, 2);         /* routed again ... */
    assert_int_equal(fx->w.route_n_exclude, 1); /* ... without a */
    assert_string_equal(fx->w.route_exclude[0], "a");
    assert_int_equal(C(fx)->fallbacks, 1);
    s_decide(fx, id, "a"); /* late, for an excluded agent */
    assert_int_equal(C(fx)->stray, 1);
    s_decide(fx, id, "b");
    assert_int_equal(fx->w.n_call, 1);
    s_result(fx, "w1", id, "b", SO_ERR(NONE), 0);
    SO_ASSERT_CONTAINS(fx->w.reply_reason, "best; fallback: a failed (no registered worker");
}

static void test_client_exclusions_forwarded(void **state)
{
    fx_t *fx = *state;
    s_admit_ex(fx, "c1", (turn_opts_t){ .episode = "ep1", .exclude = "x" });
    s_demand(fx, fx->w.infer_id);
    assert_int_equal(fx->w.route_n_exclude, 1);
    assert_string_equal(fx->w.route_exclude[0], "x");
    s_decide(fx, fx->w.infer_id, "x"); /* the router ignored it: stray */
    assert_int_equal(C(fx)->stray, 1);
}

static void test_send_to_worker_fails(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 1, "");
    s_worker(fx, "w2", 1, "");
    fx->w.fail_call_errno = EHOSTUNREACH; /* w1 is gone */
    fx->w.fail_call_times = 1;
    s_to_call(fx, "a");
    assert_string_equal(fx->w.call_worker, "w2");
    assert_int_equal(fx->w.call_attempt, 0);
    assert_int_equal(so_broker_size(so_inflight_broker(fx->f)), 1);
    /* A call that does not validate ends the turn. */
    s_worker(fx, "w3", 1, "");
    fx->w.fail_call_errno = EINVAL;
    fx->w.fail_call_times = 1;
    s_admit(fx, "c2");
    s_demand(fx, fx->w.infer_id);
    s_decide(fx, fx->w.infer_id, "a");
    assert_int_equal(fx->w.error_code, SO_ERR(INTERNAL));
    assert_string_equal(fx->w.error_msg, "send failed");
    assert_int_equal(so_broker_size(so_inflight_broker(fx->f)), 2);
}

/* ---- Results ----------------------------------------------------------- */

static void test_retryable_error_falls_back(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 2, "");
    s_to_call(fx, "a");
    char id[ID];
    s_copy(id, fx->w.infer_id);
    s_result(fx, "w1", id, "a", SO_ERR(RATE_LIMITED), 0);
    assert_int_equal(so_inflight_stage(fx->f, id), SO_INFLIGHT_ROUTE);
    assert_int_equal(fx->w.route_n_exclude, 1);
    assert_string_equal(fx->w.route_exclude[0], "a");
    s_decide(fx, id, "b");
    s_result(fx, "w1", id, "b", SO_ERR(NONE), 0);
    assert_int_equal(fx->w.n_reply, 1);
    assert_string_equal(fx->w.reply_reason, "best; fallback: a failed (boom)");
    assert_string_equal(fx->w.record_agent, "b");
    assert_int_equal(C(fx)->fallbacks, 1);
}

static void test_final_error_fails(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 2, "");
    s_to_call(fx, "a");
    s_result(fx, "w1", fx->w.infer_id, "a", SO_ERR(INVALID_REQUEST), 0);
    assert_int_equal(fx->w.n_route, 1); /* not routed again */
    assert_int_equal(fx->w.error_code, SO_ERR(INVALID_REQUEST));
    assert_string_equal(fx->w.error_msg, "agent a: boom");
    assert_int_equal(fx->w.n_record, 0);
    assert_int_equal(so_inflight_size(fx->f), 0);
}

static void test_fallbacks_exhausted(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 2, "");
    s_to_call(fx, "a");
    char id[ID];
    s_copy(id, fx->w.infer_id);
    s_result(fx, "w1", id, "a", SO_ERR(TIMEOUT), 0);
    s_decide(fx, id, "b");
    s_result(fx, "w1", id, "b", SO_ERR(UPSTREAM), 0);
    assert_int_equal(fx->w.route_n_exclude, 2);
    s_decide(fx, id, "c");
    s_result(fx, "w1", id, "c", SO_ERR(UNAVAILABLE), 0); /* max_fallbacks = 2 */
    assert_int_equal(fx->w.n_route, 3);
    assert_int_equal(fx->w.error_code, SO_ERR(UNAVAILABLE));
    assert_string_equal(fx->w.error_msg, "agent c: boom");
    assert_int_equal(C(fx)->fallbacks, 2);
}

static void test_partials_then_final(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 2, "");
    s_worker(fx, "w2", 2, "");
    s_admit_ex(fx, "c1", (turn_opts_t){ .episode = "ep1", .stream = 1, .final_turn = 1 });
    char id[ID];
    s_copy(id, fx->w.infer_id);
    s_demand(fx, id);
    s_decide(fx, id, "a");
    assert_string_equal(fx->w.call_worker, "w1");
    s_result(fx, "w1", id, "a", SO_ERR(NONE), 1);
    s_result(fx, "w1", id, "a", SO_ERR(NONE), 1);
    assert_int_equal(fx->w.n_partial, 2);
    assert_string_equal(fx->w.reply_id, "c1");
    assert_string_equal(fx->w.reply_text, "del");
    assert_int_equal(fx->w.n_record, 0);
    s_result(fx, "w2", id, "a", SO_ERR(NONE), 1); /* w2 does not hold it: stray */
    assert_int_equal(C(fx)->stray, 1);
    assert_int_equal(fx->w.n_partial, 2);
    s_result(fx, "w1", id, "a", SO_ERR(NONE), 0);
    assert_int_equal(fx->w.n_reply, 1);
    assert_int_equal(fx->w.n_record, 1);
    assert_int_equal(fx->w.record_final, 1);
    assert_int_equal(C(fx)->partials, 2);
    s_result(fx, "w1", id, "a", SO_ERR(NONE), 0); /* a second final: stray */
    assert_int_equal(C(fx)->stray, 2);
}

static void test_error_after_partials_fails(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 2, "");
    s_admit_ex(fx, "c1", (turn_opts_t){ .episode = "ep1", .stream = 1 });
    char id[ID];
    s_copy(id, fx->w.infer_id);
    s_demand(fx, id);
    s_decide(fx, id, "a");
    s_result(fx, "w1", id, "a", SO_ERR(NONE), 1);
    s_result(fx, "w1", id, "a", SO_ERR(UPSTREAM), 0); /* retryable, but deltas went out */
    assert_int_equal(fx->w.n_route, 1);
    assert_int_equal(fx->w.error_code, SO_ERR(UPSTREAM));
    assert_string_equal(fx->w.error_msg, "agent a: boom");
}

static void test_reply_that_does_not_validate(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 2, "");
    s_to_call(fx, "a");
    fx->w.fail_reply_errno = EINVAL;
    s_result(fx, "w1", fx->w.infer_id, "a", SO_ERR(NONE), 0);
    assert_int_equal(fx->w.n_error, 1); /* the client still gets one */
    assert_int_equal(fx->w.error_code, SO_ERR(INTERNAL));
    assert_int_equal(C(fx)->send_failed, 1);
    assert_int_equal(fx->w.n_record, 1); /* the turn happened */
    fx->w.fail_reply_errno = EAGAIN;     /* a full pipe: nothing more */
    s_to_call(fx, "a");
    s_result(fx, "w1", fx->w.infer_id, "a", SO_ERR(NONE), 0);
    assert_int_equal(fx->w.n_error, 1);
    assert_int_equal(C(fx)->send_failed, 2);
    assert_int_equal(C(fx)->replied, 2);
}

static void test_stray_results(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 2, "");
    s_worker(fx, "w2", 2, "");
    s_result(fx, "w1", "unknown", "a", SO_ERR(NONE), 0);
    s_to_call(fx, "a");
    s_result(fx, "w2", fx->w.infer_id, "a", SO_ERR(NONE), 0); /* not w2's call */
    assert_int_equal(C(fx)->stray, 2);
    assert_int_equal(fx->w.n_reply, 0);
    assert_int_equal(so_inflight_stage(fx->f, fx->w.infer_id), SO_INFLIGHT_CALL);
}

/* ---- Workers that die -------------------------------------------------- */

static void test_orphans_dispatched_again(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 1, "");
    s_worker(fx, "w2", 1, "");
    s_to_call(fx, "a");
    char id[ID];
    s_copy(id, fx->w.infer_id);
    assert_string_equal(fx->w.call_worker, "w1");
    s_worker(fx, "w1", 1, ""); /* READY again: it forgot the call */
    assert_int_equal(fx->w.n_call, 2);
    assert_string_equal(fx->w.call_worker, "w2");
    assert_int_equal(fx->w.call_attempt, 1);
    assert_int_equal(C(fx)->redispatched, 1);
    s_result(fx, "w1", id, "a", SO_ERR(NONE), 0); /* the old holder: stray */
    assert_int_equal(C(fx)->stray, 1);
    /* w2 falls silent; w1 is heard from: the call goes back to w1. */
    so_broker_t *b = so_inflight_broker(fx->f);
    so_broker_seen(b, so_broker_find(b, "w1", 2), fx->w.now + 400);
    fx->w.now += 400;
    so_inflight_expire_workers(fx->f, fx->w.now);
    assert_int_equal(fx->w.n_call, 3);
    assert_string_equal(fx->w.call_worker, "w1");
    assert_int_equal(fx->w.call_attempt, 2);
    s_result(fx, "w1", id, "a", SO_ERR(NONE), 0);
    assert_int_equal(fx->w.n_reply, 1);
}

static void test_orphan_attempts_exhausted(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 1, "");
    s_to_call(fx, "a");
    for (int i = 0; i < 2; i++)
        s_worker(fx, "w1", 1, ""); /* attempts 2 and 3 */
    assert_int_equal(fx->w.n_call, 3);
    s_worker(fx, "w1", 1, ""); /* max_attempts = 3 */
    assert_int_equal(fx->w.n_call, 3);
    assert_int_equal(fx->w.error_code, SO_ERR(UNAVAILABLE));
    SO_ASSERT_CONTAINS(fx->w.error_msg, "workers holding this call stopped");
    assert_int_equal(C(fx)->redispatched, 3);
}

static void test_orphan_after_partials_fails(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 1, "");
    s_worker(fx, "w2", 1, "");
    s_admit_ex(fx, "c1", (turn_opts_t){ .episode = "ep1", .stream = 1 });
    s_demand(fx, fx->w.infer_id);
    s_decide(fx, fx->w.infer_id, "a");
    s_result(fx, "w1", fx->w.infer_id, "a", SO_ERR(NONE), 1);
    s_worker(fx, "w1", 1, "");
    assert_int_equal(fx->w.n_call, 1);
    SO_ASSERT_CONTAINS(fx->w.error_msg, "worker streaming this call stopped");
}

static void test_stuck_call_times_out(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 1, "");
    s_to_call(fx, "a");
    /* The call's deadline (1000) plus two heartbeats; w1 keeps beating. */
    so_broker_t *b = so_inflight_broker(fx->f);
    so_broker_seen(b, so_broker_find(b, "w1", 2), fx->w.now + 1150);
    fx->w.now += 1201;
    so_inflight_expire_workers(fx->f, fx->w.now);
    assert_int_equal(so_broker_size(b), 0);
    assert_int_equal(so_inflight_stage(fx->f, fx->w.infer_id), SO_INFLIGHT_WAIT);
    assert_int_equal(C(fx)->redispatched, 1);
}

/* ---- Shutdown and episodes --------------------------------------------- */

static void test_fail_all(void **state)
{
    fx_t *fx = *state;
    s_admit(fx, "c1");
    s_admit(fx, "c2");
    so_inflight_fail_all(fx->f, SO_ERR(UNAVAILABLE), "the gateway stopped");
    assert_int_equal(fx->w.n_error, 2);
    assert_string_equal(fx->w.error_msg, "the gateway stopped");
    assert_int_equal(so_inflight_size(fx->f), 0);
}

static void test_episodes(void **state)
{
    (void) state;
    so_episodes_t *e = so_episodes_new(1, 2);
    so_episodes_keep(e, "a", "v1", 0);
    so_episodes_keep(e, "b", "v1", 500);
    so_episodes_keep(e, "c", "v1", 0); /* over max: not kept */
    assert_int_equal(so_episodes_size(e), 2);
    assert_null(so_episodes_version(e, "c"));
    so_episodes_keep(e, "a", "v2", 0);
    assert_string_equal(so_episodes_version(e, "a"), "v2");
    so_episodes_expire(e, 1000); /* a: idle 1 s */
    assert_null(so_episodes_version(e, "a"));
    assert_string_equal(so_episodes_version(e, "b"), "v1");
    so_episodes_forget(e, "b");
    assert_int_equal(so_episodes_size(e), 0);
    so_episodes_destroy(&e);
    assert_null(e);
}

static void test_final_turn_forgets_episode(void **state)
{
    fx_t *fx = *state;
    s_worker(fx, "w1", 2, "");
    s_to_call(fx, "a"); /* ep1 pinned to v1 */
    s_result(fx, "w1", fx->w.infer_id, "a", SO_ERR(NONE), 0);
    so_inflight_set_version(fx->f, "v2");
    s_admit_ex(fx, "c2", (turn_opts_t){ .episode = "ep1", .final_turn = 1 });
    assert_string_equal(fx->w.infer_version, "v1");
    s_demand(fx, fx->w.infer_id);
    s_decide(fx, fx->w.infer_id, "a");
    s_result(fx, "w1", fx->w.infer_id, "a", SO_ERR(NONE), 0);
    s_admit(fx, "c3");
    assert_string_equal(fx->w.infer_version, "v2"); /* ep1 was forgotten */
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    so_log_open("test_so_inflight", SO_LOG_ERROR); /* the turns log every step */
    const struct CMUnitTest tests[] = {
        T(test_answered_and_recorded),
        T(test_admission_refused_when_draining_or_full),
        T(test_no_handbook_fails),
        T(test_versions_pinned_per_episode),
        T(test_infer_timeout_retry_then_uniform_demand),
        T(test_infer_error_fails),
        T(test_route_timeout_retry_then_unavailable),
        T(test_route_error_fails_with_earlier_fallbacks),
        T(test_stray_decisions_and_demands),
        T(test_wait_for_a_free_slot),
        T(test_waiting_turn_times_out),
        T(test_no_worker_serves_the_agent),
        T(test_client_exclusions_forwarded),
        T(test_send_to_worker_fails),
        T(test_retryable_error_falls_back),
        T(test_final_error_fails),
        T(test_fallbacks_exhausted),
        T(test_partials_then_final),
        T(test_error_after_partials_fails),
        T(test_reply_that_does_not_validate),
        T(test_stray_results),
        T(test_orphans_dispatched_again),
        T(test_orphan_attempts_exhausted),
        T(test_orphan_after_partials_fails),
        T(test_stuck_call_times_out),
        T(test_fail_all),
        T(test_episodes),
        T(test_final_turn_forgets_episode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
