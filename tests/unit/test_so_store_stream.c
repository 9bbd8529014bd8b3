/*
 * Tests for so_store's stream inspection (so_store_stream_len,
 * so_store_stream_groups: what soctl stats prints) against a real
 * redis-server started by the group setup.
 */
#include "so_test_util.h"
#include "so_test_redis.h"
#include "store/so_store.h"

static int group_setup(void **state)
{
    (void) state;
    return so_test_redis_setup("store-stream");
}

static int group_teardown(void **state)
{
    (void) state;
    so_test_redis_teardown();
    return 0;
}

static void test_stream_len(void **state)
{
    so_store_t *s = so_test_store();
    char err[256];
    /* No stream yet: Redis says 0. */
    assert_int_equal(so_store_stream_len(s, "episodes", err, sizeof err), 0);
    so_test_redis_cmd("XADD t:episodes * id e1");
    so_test_redis_cmd("XADD t:episodes * id e2");
    assert_int_equal(so_store_stream_len(s, "episodes", err, sizeof err), 2);
    /* A key of another type is a data error, not a crash. */
    so_test_redis_cmd("SET t:episodes:dead x");
    assert_int_equal(so_store_stream_len(s, "episodes:dead", err, sizeof err), -1);
    assert_non_null(strstr(err, "XLEN"));
    assert_int_equal(so_store_io_error(s), 0);
    so_store_destroy(&s);
}

static void test_stream_groups(void **state)
{
    so_store_t *s = so_test_store();
    char err[256], **g = NULL;
    size_t n = 9;
    /* No such key: Redis's error text, no groups. */
    assert_int_equal(so_store_stream_groups(s, "episodes", &g, &n, err, sizeof err), 1);
    assert_int_equal(n, 0);
    assert_null(g);
    assert_non_null(strstr(err, "no such key"));
    so_test_redis_cmd("XADD t:episodes * id e1");
    assert_int_equal(so_store_group_create(s, "learners", err, sizeof err), 0);
    assert_int_equal(so_store_stream_groups(s, "episodes", &g, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_non_null(strstr(g[0], "name=learners"));
    assert_non_null(strstr(g[0], "consumers=0"));
    assert_true(g[0][0] != ' ');
    so_store_strv_free(&g, n);
    so_store_destroy(&s);
}

static void test_stream_connection_lost(void **state)
{
    so_store_t *s = so_test_store();
    char err[256], **g = NULL;
    size_t n = 0;
    so_test_redis_stop();
    assert_int_equal(so_store_stream_len(s, "episodes", err, sizeof err), -1);
    assert_int_equal(so_store_io_error(s), 1);
    assert_int_equal(so_store_stream_groups(s, "episodes", &g, &n, err, sizeof err), -1);
    assert_int_equal(so_test_redis_start(), 0);
    assert_int_equal(so_store_stream_len(s, "episodes", err, sizeof err), 0);
    so_store_destroy(&s);
}

int main(void)
{
    if (!so_test_have_redis()) {
        printf("so_store_stream: SKIPPED (redis-server not installed; make deps)\n");
        return SO_TEST_SKIPPED;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_stream_len, so_test_redis_flush),
        cmocka_unit_test_setup(test_stream_groups, so_test_redis_flush),
        cmocka_unit_test_setup(test_stream_connection_lost, so_test_redis_flush),
    };
    return cmocka_run_group_tests_name("so_store_stream", tests, group_setup, group_teardown);
}
