/*
 * Tests for publishing a handbook version only once
 * (so_store_put_handbook_new, what soctl publish uses) against a real
 * redis-server started by the group setup.
 */
#include "so_test_util.h"
#include "so_test_redis.h"
#include "base/so_alloc.h"
#include "store/so_store.h"

static int group_setup(void **state)
{
    (void) state;
    return so_test_redis_setup("store-publish");
}

static int group_teardown(void **state)
{
    (void) state;
    so_test_redis_teardown();
    return 0;
}

static so_handbook_t *s_handbook(const char *version, const char *agent)
{
    so_handbook_t *hb = so_handbook_new(version);
    so_t_mode(hb, "default");
    so_t_skill(hb, "code", "default", NULL);
    so_t_agent(hb, agent, "", 1, 2, 0);
    return hb;
}

static void test_publish_once(void **state)
{
    so_store_t *s = so_test_store();
    char err[256], cur[64];
    so_handbook_t *a = s_handbook("v1", "a1"), *b = s_handbook("v1", "b1");
    assert_int_equal(so_store_put_handbook_new(s, a, 1, err, sizeof err), 1);
    assert_int_equal(so_store_current_version(s, cur, sizeof cur, err, sizeof err), 0);
    assert_string_equal(cur, "v1");
    /* The same version again, with another handbook: refused, nothing written. */
    assert_int_equal(so_store_put_handbook_new(s, b, 1, err, sizeof err), 0);
    assert_non_null(strstr(err, "v1 is already published"));
    so_handbook_t *got = so_store_get_handbook(s, "v1", err, sizeof err);
    assert_non_null(got);
    assert_string_equal(got->agents[0].id, "a1");
    so_handbook_destroy(&got);
    char **v = NULL;
    size_t n = 0;
    assert_int_equal(so_store_versions(s, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    so_store_strv_free(&v, n);
    /* Another version goes in, not current when asked so. */
    free(b->version);
    b->version = so_strdup("v2");
    assert_int_equal(so_store_put_handbook_new(s, b, 0, err, sizeof err), 1);
    assert_int_equal(so_store_current_version(s, cur, sizeof cur, err, sizeof err), 0);
    assert_string_equal(cur, "v1");
    so_handbook_destroy(&a);
    so_handbook_destroy(&b);
    so_store_destroy(&s);
}

static void test_publish_connection_lost(void **state)
{
    so_store_t *s = so_test_store();
    char err[256];
    so_handbook_t *a = s_handbook("v1", "a1");
    so_test_redis_stop();
    assert_int_equal(so_store_put_handbook_new(s, a, 1, err, sizeof err), -1);
    assert_int_equal(so_store_io_error(s), 1);
    assert_int_equal(so_test_redis_start(), 0);
    assert_int_equal(so_store_put_handbook_new(s, a, 1, err, sizeof err), 1);
    so_handbook_destroy(&a);
    so_store_destroy(&s);
}

int main(void)
{
    if (!so_test_have_redis()) {
        printf("so_store_publish: SKIPPED (redis-server not installed; make deps)\n");
        return SO_TEST_SKIPPED;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_publish_once, so_test_redis_flush),
        cmocka_unit_test_setup(test_publish_connection_lost, so_test_redis_flush),
    };
    return cmocka_run_group_tests_name("so_store_publish", tests, group_setup, group_teardown);
}
