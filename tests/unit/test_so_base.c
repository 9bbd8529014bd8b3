/*
 * The base toolkit: so_buf, so_map, so_err, so_alloc, the token estimate.
 */
#include "so_test_util.h"

#include "base/so_alloc.h"
#include "base/so_buf.h"
#include "base/so_err.h"
#include "base/so_map.h"
#include "base/so_pctl.h"
#include "base/so_text.h"

#include <string.h>

static void test_buf_append_and_format(void **state)
{
    so_buf_t b = SO_BUF_INIT;
    assert_string_equal(so_buf_str(&b), "");
    so_buf_puts(&b, "ab");
    so_buf_putc(&b, 'c');
    so_buf_appendf(&b, "-%d-%s", 42, "x");
    assert_string_equal(so_buf_str(&b), "abc-42-x");
    assert_int_equal(b.len, 8);
    /* A long formatted append takes the second vsnprintf. */
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    so_buf_appendf(&b, "%s", big);
    assert_int_equal(b.len, 8 + 999);
    assert_int_equal(b.data[b.len], '\0');
    so_buf_truncate(&b, 3);
    assert_string_equal(so_buf_str(&b), "abc");
    so_buf_append(&b, "\0z", 2); /* binary */
    assert_int_equal(b.len, 5);
    size_t len = 0;
    char *s = so_buf_detach(&b, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "abc\0z", 5);
    assert_null(b.data);
    free(s);
    s = so_buf_detach(&b, NULL); /* empty: "" not NULL */
    assert_string_equal(s, "");
    free(s);
    so_buf_free(&b);
}

static void test_map_put_get_del(void **state)
{
    so_map_t *m = so_map_new(free);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(so_map_put(m, key, so_strdup(key)), 1);
    }
    assert_int_equal(so_map_size(m), 1000);
    assert_int_equal(so_map_put(m, "k7", so_strdup("seven")), 0);
    assert_string_equal(so_map_get(m, "k7"), "seven");
    assert_null(so_map_get(m, "nope"));
    /* Delete every other key; the rest stay reachable (backward shift). */
    for (int i = 0; i < 1000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(so_map_del(m, key), 1);
        assert_int_equal(so_map_del(m, key), 0);
    }
    assert_int_equal(so_map_size(m), 500);
    for (int i = 1; i < 1000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        assert_true(so_map_has(m, key));
        if (i != 7)
            assert_string_equal(so_map_get(m, key), key);
    }
    size_t it = 0, n = 0;
    const char *k;
    void *v;
    while (so_map_next(m, &it, &k, &v))
        n++;
    assert_int_equal(n, 500);
    so_map_destroy(&m);
    assert_null(m);
    so_map_destroy(&m); /* NULL-safe */
}

static void test_map_borrowed_values(void **state)
{
    so_map_t *m = so_map_new(NULL);
    int a = 1, b = 2;
    so_map_put(m, "", &a); /* the empty key is a key */
    so_map_put(m, "b", &b);
    assert_ptr_equal(so_map_get(m, ""), &a);
    assert_ptr_equal(so_map_get(m, "b"), &b);
    so_map_destroy(&m);
}

static void test_err(void **state)
{
    char err[16];
    assert_int_equal(so_err(err, sizeof err, "bad %s at %d", "field", 12345), -1);
    assert_string_equal(err, "bad field at 12"); /* cut to the buffer */
    assert_int_equal(so_err(NULL, 0, "ignored %d", 1), -1);
    char e2[64];
    so_err(e2, sizeof e2, "not a number");
    so_err_prefix(e2, sizeof e2, "config:%d", 3);
    assert_string_equal(e2, "config:3: not a number");
}

static void test_alloc(void **state)
{
    char *s = so_strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    assert_null(so_strdup(NULL));
    int *v = so_reallocarray(NULL, 10, sizeof *v);
    v[9] = 1;
    free(v);
    free(so_calloc(0, 0)); /* a zero size still allocates */
}

static void test_tokens(void **state)
{
    assert_true(so_tokens_estimate(400) == 100.0);
    assert_int_equal(so_tokens_estimate_text("abcde"), 2);
    assert_int_equal(so_tokens_estimate_text("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"),
                     1); /* 4 code points */
    assert_int_equal(so_tokens_estimate_text(NULL), 0);
}

static void test_pctl(void **state)
{
    uint32_t p50 = 7, p99 = 7;
    uint32_t none[1] = { 5 };
    so_pctl_u32(none, 0, 1, &p50, &p99);
    assert_int_equal(p50, 0);
    assert_int_equal(p99, 0);
    /* A full ring of 200 holding 1..200 out of order (written 450 times). */
    uint32_t ring[200];
    for (uint32_t i = 0; i < 200; i++)
        ring[i] = (i * 7) % 200 + 1;
    so_pctl_u32(ring, 450, 200, &p50, &p99);
    assert_int_equal(p50, 101);   /* v[100] */
    assert_int_equal(p99, 199);   /* v[198] */
    assert_int_equal(ring[1], 8); /* the ring is not sorted in place */
    double d[3] = { 3.5, 1.5, 2.5 }, m50, m99;
    so_pctl_double(d, 3, 3, &m50, &m99);
    assert_true(m50 == 2.5 && m99 == 3.5);
    so_pctl_double(d, 1, 3, &m50, &m99); /* only the first value written */
    assert_true(m50 == 3.5 && m99 == 3.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_and_format),
        cmocka_unit_test(test_map_put_get_del),
        cmocka_unit_test(test_map_borrowed_values),
        cmocka_unit_test(test_err),
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_pctl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
