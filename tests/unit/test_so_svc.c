/* Tests for so_svc: config files, environment overrides, numeric checks,
 * ids, clocks and the stop flag; and so_cli, the services' command line. */
#include "so_test_util.h"
#include "base/so_cli.h"
#include "base/so_svc.h"

#include <jansson.h>
#include <signal.h>

static void s_clear_env(void)
{
    unsetenv("SO_REDIS_URL");
    unsetenv("SO_LEARNER_REDIS_URL");
    unsetenv("SO_LEARNER_BATCH");
    unsetenv("SO_BATCH");
    unsetenv("SO_LEARNER_REFINE_MERGE_ALPHA");
}

static int setup(void **state)
{
    (void) state;
    s_clear_env();
    return 0;
}

static so_config_t *s_load(const char *text, char *path, size_t plen, int expect_ok, char *err,
                           size_t errlen)
{
    so_t_tmpfile(path, plen, "svc");
    so_t_write_file(path, text);
    so_config_t *c = so_config_new("learner");
    int rc = so_config_load(c, path, err, errlen);
    if (expect_ok && rc != 0)
        fail_msg("load: %s", err);
    if (!expect_ok && rc == 0)
        fail_msg("load of a malformed file succeeded");
    return c;
}

static void test_parse(void **state)
{
    (void) state;
    char path[64], err[256] = "";
    so_config_t *c = s_load("# a comment\n"
                            "\n"
                            "redis.url = redis://127.0.0.1:7000   # trailing comment\n"
                            "  learner.batch=64\n"
                            "refine.every =   500\n"
                            "empty =\n"
                            "redis.url = redis://127.0.0.1:7001\n", /* later wins */
                            path, sizeof path, 1, err, sizeof err);
    assert_string_equal(so_config_get(c, "redis.url", "x"), "redis://127.0.0.1:7001");
    assert_string_equal(so_config_get(c, "learner.batch", "x"), "64");
    assert_string_equal(so_config_get(c, "empty", "x"), "");
    assert_string_equal(so_config_get(c, "missing", "def"), "def");
    assert_null(so_config_get(c, "missing", NULL));
    long v;
    assert_int_equal(so_config_long(c, "refine.every", 0, 0, 1000000, &v, err, sizeof err), 0);
    assert_int_equal(v, 500);
    assert_int_equal(so_config_long(c, "absent", 42, 0, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, 42);
    so_config_set(c, "learner.batch", "128");
    assert_string_equal(so_config_get(c, "learner.batch", "x"), "128");
    so_config_destroy(&c);
    assert_null(c);
    so_config_destroy(&c);
    unlink(path);
}

static void test_env_overrides(void **state)
{
    (void) state;
    char path[64], err[256] = "";
    so_config_t *c = s_load("redis.url = redis://file\nlearner.batch = 10\n", path, sizeof path,
                            1, err, sizeof err);
    setenv("SO_REDIS_URL", "redis://generic", 1);
    assert_string_equal(so_config_get(c, "redis.url", NULL), "redis://generic");
    setenv("SO_LEARNER_REDIS_URL", "redis://service", 1);
    assert_string_equal(so_config_get(c, "redis.url", NULL), "redis://service");
    /* The environment beats so_config_set too. */
    so_config_set(c, "redis.url", "redis://cli");
    assert_string_equal(so_config_get(c, "redis.url", NULL), "redis://service");
    unsetenv("SO_LEARNER_REDIS_URL");
    unsetenv("SO_REDIS_URL");
    assert_string_equal(so_config_get(c, "redis.url", NULL), "redis://cli");
    /* Dots and dashes become underscores. */
    setenv("SO_LEARNER_REFINE_MERGE_ALPHA", "0.25", 1);
    double d;
    assert_int_equal(so_config_double(c, "refine.merge-alpha", 0.05, 0, 1, &d, err, sizeof err),
                     0);
    SO_ASSERT_NEAR(d, 0.25, 0);
    assert_int_equal(so_config_double(c, "refine.merge_alpha", 0.05, 0, 1, &d, err, sizeof err),
                     0);
    SO_ASSERT_NEAR(d, 0.25, 0);
    /* A bad value from the environment is named with its variable. */
    setenv("SO_LEARNER_BATCH", "lots", 1);
    long v;
    assert_int_equal(so_config_long(c, "learner.batch", 1, 1, 1000, &v, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "learner.batch");
    SO_ASSERT_CONTAINS(err, "environment SO_LEARNER_BATCH");
    SO_ASSERT_CONTAINS(err, "'lots'");
    so_config_destroy(&c);
    unlink(path);
}

static void test_malformed(void **state)
{
    (void) state;
    char path[64], err[256] = "";
    so_config_t *c = s_load("a = 1\nno equals sign here\n", path, sizeof path, 0, err,
                            sizeof err);
    SO_ASSERT_CONTAINS(err, path);
    SO_ASSERT_CONTAINS(err, ":2:");
    SO_ASSERT_CONTAINS(err, "expected 'key = value'");
    so_config_destroy(&c);
    unlink(path);

    c = s_load("# ok\n = value\n", path, sizeof path, 0, err, sizeof err);
    SO_ASSERT_CONTAINS(err, ":2: empty key");
    so_config_destroy(&c);
    unlink(path);

    c = s_load("\n\nbad key = 1\n", path, sizeof path, 0, err, sizeof err);
    SO_ASSERT_CONTAINS(err, ":3: bad character ' '");
    so_config_destroy(&c);
    unlink(path);

    char *big = malloc(6000);
    memset(big, 'x', 5000);
    memcpy(big, "k = ", 4);
    big[5000] = '\n';
    big[5001] = '\0';
    c = s_load(big, path, sizeof path, 0, err, sizeof err);
    SO_ASSERT_CONTAINS(err, ":1: line longer than");
    so_config_destroy(&c);
    unlink(path);
    free(big);

    c = so_config_new("learner");
    assert_int_equal(so_config_load(c, "/nonexistent/so.conf", err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "/nonexistent/so.conf: cannot open");
    so_config_destroy(&c);
}

static void test_numbers(void **state)
{
    (void) state;
    char path[64], err[256] = "";
    so_config_t *c = s_load("n = 12x\nbig = 99999999999999999999999\nneg = -3\nd = 0.5\n"
                            "dd = nan\nsp = 7  \n",
                            path, sizeof path, 1, err, sizeof err);
    long v;
    double d;
    assert_int_equal(so_config_long(c, "n", 0, 0, 100, &v, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "config n (from ");
    SO_ASSERT_CONTAINS(err, ":1)");
    SO_ASSERT_CONTAINS(err, "'12x'");
    assert_int_equal(so_config_long(c, "big", 0, 0, 100, &v, err, sizeof err), -1);
    assert_int_equal(so_config_long(c, "neg", 0, 0, 100, &v, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "[0, 100]");
    assert_int_equal(so_config_long(c, "neg", 0, -10, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, -3);
    assert_int_equal(so_config_long(c, "sp", 0, 0, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, 7);
    assert_int_equal(so_config_double(c, "d", 0, 0, 1, &d, err, sizeof err), 0);
    SO_ASSERT_NEAR(d, 0.5, 0);
    assert_int_equal(so_config_double(c, "d", 0, 0.6, 1, &d, err, sizeof err), -1);
    assert_int_equal(so_config_double(c, "dd", 0, 0, 1, &d, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "config dd");
    so_config_destroy(&c);
    unlink(path);
}

static void test_ids_clocks_signals(void **state)
{
    (void) state;
    char a[64], b[64];
    so_new_id("ep-", a, sizeof a);
    so_new_id("ep-", b, sizeof b);
    assert_int_equal(strlen(a), 3 + 16);
    assert_memory_equal(a, "ep-", 3);
    assert_string_not_equal(a, b);
    int64_t t0 = so_now_ms();
    assert_true(so_now_ms() >= t0);
    assert_true(so_wall_ms() > 1600000000000LL);
    assert_non_null(so_instance());
    assert_non_null(strchr(so_instance(), ':'));

    so_signals_install();
    assert_false(so_stopping());
    raise(SIGTERM);
    assert_true(so_stopping());
}

/* so_cli_config on a NULL-terminated argument list; *code as it set it. */
static so_config_t *s_cli(char **argv, int *code)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    *code = -1;
    return so_cli_config("learner", argc, argv, NULL, code);
}

static void test_cli(void **state)
{
    (void) state;
    char path[64];
    int code;
    so_t_tmpfile(path, sizeof path, "cli");
    so_t_write_file(path, "redis.url = redis://file\nlearner.batch = 10\n");
    /* Files load in order, then every --set applies, whatever the order. */
    char *ok[] = { "so-learner",         "--set", "redis.url=redis://cli",
                   "--config",           path,    "--set=learner.batch=20",
                   "--config=/dev/null", NULL };
    so_config_t *c = s_cli(ok, &code);
    assert_non_null(c);
    assert_string_equal(so_config_get(c, "redis.url", NULL), "redis://cli");
    assert_string_equal(so_config_get(c, "learner.batch", NULL), "20");
    so_config_destroy(&c);
    char *no_file[] = { "so-learner", "--config", "/nonexistent/x.conf", NULL };
    assert_null(s_cli(no_file, &code));
    assert_int_equal(code, 2);
    char *bad_set[] = { "so-learner", "--set", "=x", NULL };
    assert_null(s_cli(bad_set, &code));
    assert_int_equal(code, 2);
    char *unknown[] = { "so-learner", "--nope", NULL };
    assert_null(s_cli(unknown, &code));
    assert_int_equal(code, 2);
    char *no_value[] = { "so-learner", "--config", NULL };
    assert_null(s_cli(no_value, &code));
    assert_int_equal(code, 2);
    char *help[] = { "so-learner", "--help", NULL };
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    c = s_cli(help, &code);
    fclose(stdout);
    stdout = saved;
    assert_null(c);
    assert_int_equal(code, 0);
    unlink(path);
}

/* log.format = json: the event's key=value pairs become fields. */
static void test_log_json(void **state)
{
    (void) state;
    so_buf_t b = SO_BUF_INIT;
    so_log_json_line(
        &b, "2026-12-08T00:00:00.000Z", "router", "vm:1", "info", "stats",
        "requests=12 rate=2603.5 p50_us=033 current=v1 error=\"say \"hi\"\x01\" z=-1");
    json_error_t je;
    json_t *o = json_loads(so_buf_str(&b), 0, &je);
    if (!o)
        fail_msg("not JSON: %s (%s)", so_buf_str(&b), je.text);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "stats");
    assert_string_equal(json_string_value(json_object_get(o, "service")), "router");
    assert_int_equal(json_integer_value(json_object_get(o, "requests")), 12);
    assert_true(json_real_value(json_object_get(o, "rate")) == 2603.5);
    assert_string_equal(json_string_value(json_object_get(o, "p50_us")),
                        "033"); /* not a number */
    assert_string_equal(json_string_value(json_object_get(o, "current")), "v1");
    assert_string_equal(json_string_value(json_object_get(o, "error")), "say \"hi\"\x01");
    assert_int_equal(json_integer_value(json_object_get(o, "z")), -1);
    json_decref(o);
    /* A quote before a blank inside a quoted value is ambiguous: still JSON,
     * the whole message in "msg". */
    so_buf_reset(&b);
    so_log_json_line(&b, "t", "s", "i", "warn", "odd", "error=\"a\" b\" n=1");
    o = json_loads(so_buf_str(&b), 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "error=\"a\" b\" n=1");
    json_decref(o);
    /* Not key=value pairs (and invalid UTF-8): the whole message in "msg". */
    so_buf_reset(&b);
    so_log_json_line(&b, "t", "s", "i", "warn", "odd", "free text \xff here");
    o = json_loads(so_buf_str(&b), 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "free text ? here");
    json_decref(o);
    so_buf_free(&b);
}

static void test_log_format_config(void **state)
{
    (void) state;
    int code;
    char *bad[] = { "so-learner", "--set", "log.format=xml", NULL };
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    so_config_t *c = s_cli(bad, &code);
    fclose(stderr);
    stderr = saved;
    assert_null(c);
    assert_int_equal(code, 2);
    char *json[] = { "so-learner", "--set", "log.format=json", NULL };
    c = s_cli(json, &code);
    assert_non_null(c);
    so_log_set_json(0);
    so_config_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_parse, setup),
        cmocka_unit_test_setup(test_env_overrides, setup),
        cmocka_unit_test_setup(test_malformed, setup),
        cmocka_unit_test_setup(test_numbers, setup),
        cmocka_unit_test_setup(test_ids_clocks_signals, setup),
        cmocka_unit_test_setup(test_cli, setup),
        cmocka_unit_test_setup(test_log_json, setup),
        cmocka_unit_test_setup(test_log_format_config, setup),
    };
    return cmocka_run_group_tests_name("so_svc", tests, NULL, NULL);
}
