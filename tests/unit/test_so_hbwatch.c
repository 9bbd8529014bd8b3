/*
 * Tests for so_hbwatch against a private redis-server on a unix socket (as
 * test_so_store.c): the current version and its changes, the schedule,
 * an outage counted and backed off, a borrowed connection.  Skipped
 * without redis-server.
 */
#include "so_test_util.h"
#include "so_test_redis.h"
#include "store/so_hbwatch.h"
#include "store/so_store.h"
#include "base/so_svc.h"

static int group_setup(void **state)
{
    (void) state;
    so_log_open("test_so_hbwatch", SO_LOG_WARN);
    return so_test_redis_setup("hbwatch");
}

static int group_teardown(void **state)
{
    (void) state;
    so_test_redis_teardown();
    return 0;
}

static so_hbwatch_t *s_watch(int refresh_ms, int backoff_max_ms)
{
    so_hbwatch_opts_t o;
    so_hbwatch_opts_default(&o);
    o.redis_url = so_tr_url;
    o.redis_prefix = "t:";
    o.refresh_ms = refresh_ms;
    o.backoff_max_ms = backoff_max_ms;
    return so_hbwatch_new(&o);
}

static void test_current_and_changes(void **state)
{
    (void) state;
    int changed = -1;
    so_hbwatch_t *w = s_watch(1000, 5000);
    assert_string_equal(so_hbwatch_current(w), "");
    /* Nothing published: not an outage, no change. */
    int wait = so_hbwatch_tick(w, &changed);
    assert_int_equal(wait, 1000);
    assert_int_equal(changed, 0);
    assert_int_equal(so_hbwatch_up(w), 1);
    assert_true(so_hbwatch_last_ok_ms(w) > 0);
    assert_non_null(strstr(so_hbwatch_none_reason(w), "not set"));
    /* Not due: nothing read. */
    so_test_redis_cmd("SET t:hb:current v1");
    wait = so_hbwatch_tick(w, &changed);
    assert_true(wait > 0 && wait <= 1000);
    assert_int_equal(changed, 0);
    assert_string_equal(so_hbwatch_current(w), "");
    /* Read now. */
    assert_int_equal(so_hbwatch_poll(w), 1);
    assert_string_equal(so_hbwatch_current(w), "v1");
    assert_string_equal(so_hbwatch_none_reason(w), "");
    assert_string_equal(so_hbwatch_previous(w), "");
    assert_int_equal(so_hbwatch_poll(w), 0);
    so_test_redis_cmd("SET t:hb:current v2");
    assert_int_equal(so_hbwatch_poll(w), 1);
    assert_string_equal(so_hbwatch_current(w), "v2");
    assert_string_equal(so_hbwatch_previous(w), "v1");
    /* A malformed value reads as none published. */
    so_test_redis_cmd("SET t:hb:current %s", "");
    assert_int_equal(so_hbwatch_poll(w), 1);
    assert_string_equal(so_hbwatch_current(w), "");
    assert_int_equal(so_hbwatch_errors(w), 0);
    assert_non_null(so_hbwatch_store(w));
    so_hbwatch_destroy(&w);
    so_hbwatch_destroy(&w); /* NULL-safe */
}

static void test_outage_backoff(void **state)
{
    (void) state;
    int changed = -1;
    so_test_redis_cmd("SET t:hb:current v1");
    so_hbwatch_t *w = s_watch(10, 40);
    so_hbwatch_tick(w, &changed);
    assert_int_equal(changed, 1);
    so_test_redis_stop();
    /* The poll fails: down, current kept, waits 10, 20, 40, 40. */
    so_test_sleep_ms(15);
    assert_int_equal(so_hbwatch_tick(w, &changed), 10);
    assert_int_equal(so_hbwatch_up(w), 0);
    assert_string_equal(so_hbwatch_current(w), "v1");
    assert_true(so_hbwatch_errors(w) >= 1);
    assert_true(strlen(so_hbwatch_error(w)) > 0);
    assert_int_equal(so_hbwatch_done(w, 0), 20);
    assert_int_equal(so_hbwatch_done(w, 0), 40);
    assert_int_equal(so_hbwatch_done(w, 0), 40);
    /* A caller's failure counts too. */
    uint64_t n = so_hbwatch_errors(w);
    so_hbwatch_down(w, "lost");
    assert_int_equal(so_hbwatch_errors(w), n + 1);
    assert_string_equal(so_hbwatch_error(w), "lost");
    /* Back: the next poll reconnects; the back-off starts over. */
    assert_int_equal(so_test_redis_start(), 0);
    so_test_redis_cmd("SET t:hb:current v3");
    assert_int_equal(so_hbwatch_poll(w), 1);
    assert_int_equal(so_hbwatch_done(w, 1), 10);
    assert_int_equal(so_hbwatch_up(w), 1);
    assert_string_equal(so_hbwatch_current(w), "v3");
    so_hbwatch_destroy(&w);
}

static void test_borrowed_store(void **state)
{
    (void) state;
    so_store_t *s = so_test_store();
    so_hbwatch_opts_t o;
    so_hbwatch_opts_default(&o);
    o.store = s;
    o.log = 0;
    so_hbwatch_t *w = so_hbwatch_new(&o);
    assert_ptr_equal(so_hbwatch_store(w), s);
    so_test_redis_cmd("SET t:hb:current b1");
    assert_int_equal(so_hbwatch_poll(w), 1);
    assert_string_equal(so_hbwatch_current(w), "b1");
    so_hbwatch_destroy(&w);
    /* The store is still the caller's. */
    char cur[64], err[128];
    assert_int_equal(so_store_current_version(s, cur, sizeof cur, err, sizeof err), 0);
    so_store_destroy(&s);
}

/* hb:current holding something that is not a version: no current version,
 * not an outage, and the reason says what Redis holds. */
static void test_bad_current_reason(void **state)
{
    (void) state;
    so_hbwatch_t *w = s_watch(1000, 5000);
    so_test_redis_cmd("HSET t:hb:current a b");
    assert_int_equal(so_hbwatch_poll(w), 0);
    assert_string_equal(so_hbwatch_current(w), "");
    assert_int_equal(so_hbwatch_errors(w), 0);
    assert_true(so_hbwatch_none_reason(w)[0] != '\0');
    assert_null(strstr(so_hbwatch_none_reason(w), "not set"));
    so_hbwatch_destroy(&w);
}

int main(void)
{
    if (!so_test_have_redis()) {
        printf("[  SKIPPED ] test_so_hbwatch: redis-server not installed\n");
        return SO_TEST_SKIPPED;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_current_and_changes, so_test_redis_flush),
        cmocka_unit_test_setup(test_bad_current_reason, so_test_redis_flush),
        cmocka_unit_test_setup(test_outage_backoff, so_test_redis_flush),
        cmocka_unit_test_setup(test_borrowed_store, so_test_redis_flush),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
