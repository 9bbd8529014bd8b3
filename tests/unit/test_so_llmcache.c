/*
 * Tests for so_llmcache: hits return what was stored, a full set loses its
 * least recently used entry, entries expire after ttl_ms, too-long
 * analyses are not stored, a NULL cache does nothing.
 */
#include "so_test_util.h"
#include "llm/so_llmcache.h"

static so_skillprompt_key_t s_key(uint64_t h1, uint64_t h2)
{
    return (so_skillprompt_key_t){ h1, h2 };
}

static void test_put_get(void **state)
{
    (void) state;
    so_llmcache_t *c = so_llmcache_new(16, 4, 0);
    so_llmcache_item_t in[2] = { { 3, 0.75 }, { 1, 0.25 } }, out[4];
    assert_int_equal(so_llmcache_get(c, s_key(1, 2), 0, out, 4), 0);
    so_llmcache_put(c, s_key(1, 2), 0, in, 2);
    assert_int_equal(so_llmcache_get(c, s_key(1, 2), 0, out, 4), 2);
    assert_int_equal(out[0].skill, 3);
    SO_ASSERT_NEAR(out[1].weight, 0.25, 0);
    /* Same h1, other h2: another key. */
    assert_int_equal(so_llmcache_get(c, s_key(1, 3), 0, out, 4), 0);
    /* An entry longer than the caller's room is a miss. */
    assert_int_equal(so_llmcache_get(c, s_key(1, 2), 0, out, 1), 0);
    /* Replacing keeps one entry. */
    so_llmcache_put(c, s_key(1, 2), 0, in, 1);
    assert_int_equal(so_llmcache_get(c, s_key(1, 2), 0, out, 4), 1);
    /* Empty or too long: not stored. */
    so_llmcache_item_t many[5] = { { 0, 1 } };
    so_llmcache_put(c, s_key(9, 9), 0, many, 5);
    so_llmcache_put(c, s_key(8, 8), 0, many, 0);
    so_llmcache_stats_t st;
    so_llmcache_stats(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.inserts, 2);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 3);
    so_llmcache_destroy(&c);
    assert_null(c);
}

/* Capacity 4 is one set: the fifth key evicts the least recently used. */
static void test_lru_eviction(void **state)
{
    (void) state;
    so_llmcache_t *c = so_llmcache_new(4, 1, 0);
    so_llmcache_item_t it = { 0, 1 }, out[1];
    for (uint64_t k = 1; k <= 4; k++)
        so_llmcache_put(c, s_key(k, k), 0, &it, 1);
    assert_int_equal(so_llmcache_get(c, s_key(1, 1), 0, out, 1), 1); /* 1 is now recent */
    so_llmcache_put(c, s_key(5, 5), 0, &it, 1);                      /* evicts 2 */
    assert_int_equal(so_llmcache_get(c, s_key(2, 2), 0, out, 1), 0);
    for (uint64_t k = 1; k <= 5; k++)
        if (k != 2)
            assert_int_equal(so_llmcache_get(c, s_key(k, k), 0, out, 1), 1);
    so_llmcache_stats_t st;
    so_llmcache_stats(c, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.evictions, 1);
    so_llmcache_destroy(&c);
}

static void test_ttl(void **state)
{
    (void) state;
    so_llmcache_t *c = so_llmcache_new(8, 1, 100);
    so_llmcache_item_t it = { 0, 1 }, out[1];
    so_llmcache_put(c, s_key(1, 1), 1000, &it, 1);
    assert_int_equal(so_llmcache_get(c, s_key(1, 1), 1099, out, 1), 1);
    assert_int_equal(so_llmcache_get(c, s_key(1, 1), 1100, out, 1), 0);
    so_llmcache_stats_t st;
    so_llmcache_stats(c, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 0);
    so_llmcache_destroy(&c);
}

static void test_null_cache(void **state)
{
    (void) state;
    assert_null(so_llmcache_new(0, 4, 0));
    so_llmcache_item_t it = { 0, 1 }, out[1];
    so_llmcache_put(NULL, s_key(1, 1), 0, &it, 1);
    assert_int_equal(so_llmcache_get(NULL, s_key(1, 1), 0, out, 1), 0);
    so_llmcache_stats_t st;
    so_llmcache_stats(NULL, &st);
    assert_int_equal(st.entries, 0);
    so_llmcache_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_null_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
