/* Unit tests for the gateway's worker book (so_broker) and the READY frame
 * that fills it: LRU dispatch over capacities, heartbeat expiry and stuck
 * calls handing their requests back, re-READY, draining, agents per worker. */
#include "so_test_util.h"
#include "so_broker.h"
#include "wire/so_sock.h"

typedef struct {
    char ids[16][SO_WIRE_MAX_ID + 1];
    int n;
} orphans_t;

static void on_orphan(void *arg, const char *request_id)
{
    orphans_t *o = arg;
    snprintf(o->ids[o->n++], sizeof o->ids[0], "%s", request_id);
}

static so_broker_worker_t *ready(so_broker_t *b, const char *rid, unsigned cap, int64_t now,
                                 orphans_t *o)
{
    return so_broker_ready(b, rid, strlen(rid), rid, cap, now, on_orphan, o);
}

static void test_lru_and_capacity(void **state)
{
    so_broker_t *b = so_broker_new(100, 3);
    orphans_t o = { .n = 0 };
    so_broker_worker_t *w1 = ready(b, "w1", 2, 0, &o), *w2 = ready(b, "w2", 1, 0, &o);
    assert_non_null(w1);
    assert_non_null(w2);
    assert_int_equal(so_broker_size(b), 2);
    assert_int_equal(so_broker_free_slots(b), 3);
    /* Least recently used first: w1 (registered first), then w2, then w1. */
    assert_ptr_equal(so_broker_pick(b), w1);
    so_broker_assign(b, w1, "a", 1000);
    assert_ptr_equal(so_broker_pick(b), w2);
    so_broker_assign(b, w2, "b", 1000);
    assert_ptr_equal(so_broker_pick(b), w1);
    so_broker_assign(b, w1, "c", 1000);
    assert_null(so_broker_pick(b)); /* every slot taken */
    assert_int_equal(so_broker_free_slots(b), 0);
    assert_int_equal(so_broker_complete(b, w2, "b"), 1);
    assert_int_equal(so_broker_complete(b, w2, "b"), 0); /* a second answer is stray */
    assert_int_equal(so_broker_complete(b, w1, "b"), 0); /* not w1's call */
    assert_ptr_equal(so_broker_pick(b), w2);
    assert_ptr_equal(so_broker_find(b, "w1", 2), w1);
    assert_null(so_broker_find(b, "nope", 4));
    assert_int_equal(o.n, 0);
    so_broker_destroy(&b);
    assert_null(b);
}

static void test_silent_worker_hands_back_its_calls(void **state)
{
    so_broker_t *b = so_broker_new(100, 3); /* dead after 300 ms of silence */
    orphans_t o = { .n = 0 };
    so_broker_worker_t *w1 = ready(b, "w1", 4, 0, &o), *w2 = ready(b, "w2", 4, 0, &o);
    so_broker_assign(b, w1, "a", 10000);
    so_broker_assign(b, w1, "b", 10000);
    so_broker_assign(b, w2, "c", 10000);
    so_broker_seen(b, w2, 250);
    assert_int_equal(so_broker_expire(b, 299, on_orphan, &o), 0);
    assert_int_equal(so_broker_expire(b, 300, on_orphan, &o), 1); /* w1 */
    assert_int_equal(o.n, 2);
    assert_true((!strcmp(o.ids[0], "a") && !strcmp(o.ids[1], "b")) ||
                (!strcmp(o.ids[0], "b") && !strcmp(o.ids[1], "a")));
    assert_int_equal(so_broker_size(b), 1);
    assert_null(so_broker_find(b, "w1", 2));
    assert_ptr_equal(so_broker_find(b, "w2", 2), w2);
    so_broker_destroy(&b);
}

static void test_stuck_call_drops_worker(void **state)
{
    so_broker_t *b = so_broker_new(100, 3);
    orphans_t o = { .n = 0 };
    so_broker_worker_t *w = ready(b, "w", 2, 0, &o);
    so_broker_assign(b, w, "slow", 50);
    so_broker_seen(b, w, 60); /* alive, but the call is overdue */
    assert_int_equal(so_broker_expire(b, 60, on_orphan, &o), 1);
    assert_int_equal(o.n, 1);
    assert_string_equal(o.ids[0], "slow");
    so_broker_destroy(&b);
}

static void test_ready_again_and_drain(void **state)
{
    so_broker_t *b = so_broker_new(100, 3);
    orphans_t o = { .n = 0 };
    so_broker_worker_t *w = ready(b, "w", 2, 0, &o);
    so_broker_assign(b, w, "x", 1000);
    /* A worker that registers again has forgotten what it held. */
    w = ready(b, "w", 3, 10, &o);
    assert_int_equal(o.n, 1);
    assert_string_equal(o.ids[0], "x");
    assert_int_equal(w->inflight, 0);
    assert_int_equal(so_broker_free_slots(b), 3);
    assert_int_equal(so_broker_size(b), 1);
    /* Draining: no new calls; forgotten once its calls are in. */
    so_broker_assign(b, w, "y", 1000);
    so_broker_drain(b, w);
    assert_null(so_broker_pick(b));
    assert_int_equal(so_broker_expire(b, 20, on_orphan, &o), 0);
    assert_int_equal(so_broker_complete(b, w, "y"), 1);
    assert_int_equal(so_broker_expire(b, 20, on_orphan, &o), 1);
    assert_int_equal(o.n, 1); /* nothing handed back */
    /* Bad registrations are refused. */
    assert_null(so_broker_ready(b, "z", 1, "z", 0, 0, on_orphan, &o));
    assert_null(so_broker_ready(b, "z", 1, "z", SO_BROKER_MAX_CAPACITY + 1, 0, on_orphan, &o));
    assert_null(so_broker_ready(b, "", 0, "z", 1, 0, on_orphan, &o));
    so_broker_destroy(&b);
}

static void hb_count(void *arg, so_broker_worker_t *w)
{
    (void) w;
    (*(int *) arg)++;
}

static void test_heartbeats_are_scheduled(void **state)
{
    so_broker_t *b = so_broker_new(100, 3);
    orphans_t o = { .n = 0 };
    ready(b, "a", 1, 0, &o);
    ready(b, "b", 1, 50, &o);
    int n = 0;
    so_broker_heartbeats(b, 99, hb_count, &n);
    assert_int_equal(n, 0);
    so_broker_heartbeats(b, 100, hb_count, &n);
    assert_int_equal(n, 1);
    so_broker_heartbeats(b, 150, hb_count, &n);
    assert_int_equal(n, 2);
    so_broker_heartbeats(b, 150, hb_count, &n);
    assert_int_equal(n, 2);
    so_broker_destroy(&b);
}

static void test_agents_per_worker(void **state)
{
    so_broker_t *b = so_broker_new(100, 3);
    orphans_t o = { .n = 0 };
    so_broker_worker_t *all = ready(b, "all", 1, 0, &o), *ab = ready(b, "ab", 1, 0, &o);
    so_broker_set_agents(b, ab, "a,bb");
    assert_true(so_broker_serves(all, "zz"));
    assert_true(so_broker_serves(ab, "a"));
    assert_true(so_broker_serves(ab, "bb"));
    assert_false(so_broker_serves(ab, "b")); /* whole ids only */
    assert_false(so_broker_serves(ab, ",a"));
    assert_false(so_broker_serves(ab, ""));
    /* "c" only on the worker that serves everything; "a" on both, LRU. */
    assert_ptr_equal(so_broker_pick_for(b, "c"), all);
    assert_ptr_equal(so_broker_pick_for(b, "a"), all);
    so_broker_assign(b, all, "x", 1000);
    assert_null(so_broker_pick_for(b, "c"));  /* its one slot is taken */
    assert_true(so_broker_has_agent(b, "c")); /* but it still serves c */
    assert_ptr_equal(so_broker_pick_for(b, "a"), ab);
    /* Without the catch-all worker nobody serves "c". */
    so_broker_remove(b, all, on_orphan, &o);
    assert_false(so_broker_has_agent(b, "c"));
    assert_true(so_broker_has_agent(b, "bb"));
    /* READY again resets the list to "every agent" until told otherwise. */
    (void) ready(b, "ab", 1, 5, &o);
    assert_true(so_broker_has_agent(b, "c"));
    so_broker_destroy(&b);
}

static void test_ready_frame_with_agents(void **state)
{
    uint8_t buf[SO_CTL_MAX_LEN];
    so_ctl_t c;
    char err[256];
    size_t n = so_ctl_encode_ex(SO_CTL_READY, 4, "w-1", "gpt-4o,llama.cpp/8b", buf);
    assert_true(n > 0);
    assert_int_equal(so_ctl_decode(buf, n, &c, err, sizeof err), 0);
    assert_int_equal(c.cmd, SO_CTL_READY);
    assert_int_equal(c.capacity, 4);
    assert_string_equal(c.worker_id, "w-1");
    assert_string_equal(c.agents, "gpt-4o,llama.cpp/8b");
    /* Old frames (no list) mean every agent. */
    n = so_ctl_encode(SO_CTL_READY, 2, "w-2", buf);
    assert_int_equal(so_ctl_decode(buf, n, &c, err, sizeof err), 0);
    assert_string_equal(c.worker_id, "w-2");
    assert_string_equal(c.agents, "");
    /* Malformed lists are refused on both sides. */
    assert_int_equal(so_ctl_encode_ex(SO_CTL_READY, 1, "w", "a,,b", buf), 0);
    assert_int_equal(so_ctl_encode_ex(SO_CTL_READY, 1, "w", "a,", buf), 0);
    assert_int_equal(so_ctl_encode_ex(SO_CTL_READY, 1, "w", "a\tb", buf), 0);
    memcpy(buf, "SOW\x01\x00\x01w\na,,b", 13);
    assert_int_equal(so_ctl_decode(buf, 13, &c, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "agent list");
    memcpy(buf, "SOW\x01\x00\x01\na", 9);
    assert_int_equal(so_ctl_decode(buf, 9, &c, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "worker id");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lru_and_capacity),
        cmocka_unit_test(test_silent_worker_hands_back_its_calls),
        cmocka_unit_test(test_stuck_call_drops_worker),
        cmocka_unit_test(test_ready_again_and_drain),
        cmocka_unit_test(test_heartbeats_are_scheduled),
        cmocka_unit_test(test_agents_per_worker),
        cmocka_unit_test(test_ready_frame_with_agents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
