/*
 * Tests for so_openai's retries and failures against tests/openai_stub.py
 * (so_test_openai_stub.h): 429 with Retry-After, 5xx, final 4xx, timeouts,
 * unusable replies, unreachable servers and dropped connections.
 */
#include "so_test_openai_stub.h"

static void test_429_retry_after_seconds(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_t *c = so_tstub_client("429:1:1~ra");
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "rate", &r), 0);
    assert_string_equal(r.text, "echo: rate");
    assert_int_equal(r.attempts, 2);
    /* The wait asked for was honoured (behaviour, not speed). */
    assert_true(r.latency_ms >= 1000);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_429_retry_after_ms_and_date(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_t *c = so_tstub_client("429ms:2:150~ram");
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "rate", &r), 0);
    assert_int_equal(r.attempts, 3);
    assert_true(r.latency_ms >= 300);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
    c = so_tstub_client("429:1:date1~rad");
    assert_int_equal(so_tstub_chat(c, "rate", &r), 0);
    assert_int_equal(r.attempts, 2);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_429_exhausted(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_t *c = so_tstub_client("429ms:inf:10~rax");
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "rate", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_RATE_LIMITED);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.http_status, 429);
    assert_null(r.text);
    SO_ASSERT_CONTAINS(r.error, "HTTP 429");
    SO_ASSERT_CONTAINS(r.error, "rate limited by the stub");
    SO_ASSERT_CONTAINS(r.error, "after 3 attempts");
    SO_ASSERT_CONTAINS(r.error, "retries exhausted");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
    assert_int_equal(so_tstub_stat("requests", "429ms:inf:10~rax"), 3);
}

static void test_429_retry_after_too_long(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_config_t cfg;
    so_tstub_cfg(&cfg, "429:1:60~ralong");
    cfg.retry_after_max_ms = 2000;
    so_openai_t *c = so_tstub_client_cfg(&cfg);
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "rate", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_RATE_LIMITED);
    assert_int_equal(r.attempts, 1);
    SO_ASSERT_CONTAINS(r.error, "Retry-After exceeds retry_after_max_ms");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_5xx(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_t *c = so_tstub_client("500:2~5a");
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "flaky", &r), 0);
    assert_int_equal(r.attempts, 3);
    assert_string_equal(r.text, "echo: flaky");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    c = so_tstub_client("500:inf~5b");
    assert_int_equal(so_tstub_chat(c, "down", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UPSTREAM);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.http_status, 500);
    SO_ASSERT_CONTAINS(r.error, "HTTP 500");
    SO_ASSERT_CONTAINS(r.error, "stub server error 500");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    c = so_tstub_client("503:inf~5c");
    assert_int_equal(so_tstub_chat(c, "down", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UNAVAILABLE);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_4xx_final(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    struct {
        const char *model;
        so_openai_code_t code;
    } cases[] = {
        { "status:400~4a", SO_OPENAI_INVALID_REQUEST },
        { "status:401~4b", SO_OPENAI_UPSTREAM },
        { "status:404~4c", SO_OPENAI_INVALID_REQUEST },
        { "ctx~4d", SO_OPENAI_CONTEXT_TOO_LONG },
        { "latin1~4e", SO_OPENAI_INVALID_REQUEST },
        { "ctx500~4f", SO_OPENAI_CONTEXT_TOO_LONG }, /* a 500, yet not retried */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        so_openai_t *c = so_tstub_client(cases[i].model);
        so_openai_response_t r;
        assert_int_equal(so_tstub_chat(c, "no", &r), -1);
        if (r.code != cases[i].code)
            fail_msg("%s: code %s, want %s (%s)", cases[i].model, so_openai_code_name(r.code),
                     so_openai_code_name(cases[i].code), r.error);
        assert_int_equal(r.attempts, 1);
        if (strstr(cases[i].model, "latin1"))
            SO_ASSERT_CONTAINS(r.error, "Requ?te refus?e");
        so_openai_response_clear(&r);
        so_openai_destroy(&c);
    }
}

static void test_timeouts(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    /* One attempt too slow, no retries: TIMEOUT naming the limit. */
    so_openai_config_t cfg;
    so_tstub_cfg(&cfg, "slow:3000~t1");
    cfg.timeout_ms = 200;
    cfg.max_retries = 0;
    so_openai_t *c = so_tstub_client_cfg(&cfg);
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "slow", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_TIMEOUT);
    assert_int_equal(r.http_status, 0);
    SO_ASSERT_CONTAINS(r.error, "within 200 ms");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* Retries stop at the whole-call deadline. */
    so_tstub_cfg(&cfg, "slow:3000~t2");
    cfg.timeout_ms = 200;
    cfg.max_retries = 10;
    cfg.deadline_ms = 500;
    c = so_tstub_client_cfg(&cfg);
    assert_int_equal(so_tstub_chat(c, "slow", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_TIMEOUT);
    assert_true(r.attempts >= 2 && r.attempts <= 3);
    assert_true(r.latency_ms < 3000);
    so_openai_response_clear(&r);

    /* A request's own deadline is shorter still. */
    so_openai_msg_t m = { "user", "slow" };
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = &m;
    req.n_messages = 1;
    req.deadline_ms = 100;
    assert_int_equal(so_openai_chat(c, &req, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_TIMEOUT);
    assert_int_equal(r.attempts, 1);
    SO_ASSERT_CONTAINS(r.error, "the call's deadline");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_bad_replies(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    struct {
        const char *model;
        const char *want;
    } cases[] = {
        { "badjson~b1", "reply is not JSON" },
        { "error200~b2", "stub error inside a 200 reply" },
        { "nullcontent~b3", "content is null" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        so_openai_t *c = so_tstub_client(cases[i].model);
        so_openai_response_t r;
        assert_int_equal(so_tstub_chat(c, "bad", &r), -1);
        assert_int_equal(r.code, SO_OPENAI_UPSTREAM);
        assert_int_equal(r.attempts, 1);
        SO_ASSERT_CONTAINS(r.error, cases[i].want);
        so_openai_response_clear(&r);
        so_openai_destroy(&c);
    }
    /* Too large a reply. */
    so_openai_config_t cfg;
    so_tstub_cfg(&cfg, "big:5000~b4");
    cfg.max_response_bytes = 2048;
    so_openai_t *c = so_tstub_client_cfg(&cfg);
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "big", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UPSTREAM);
    SO_ASSERT_CONTAINS(r.error, "larger than 2048 bytes");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_unreachable(void **state)
{
    (void) state;
    so_openai_config_t cfg;
    so_tstub_cfg(&cfg, "echo");
    cfg.base_url = "http://127.0.0.1:1/v1"; /* nothing listens on port 1 */
    so_openai_t *c = so_tstub_client_cfg(&cfg);
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "anyone", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UNAVAILABLE);
    assert_int_equal(r.attempts, 3);
    SO_ASSERT_CONTAINS(r.error, "cannot reach http://127.0.0.1:1/v1/chat/completions");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_dropped_connection(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_t *c = so_tstub_client("drop~d");
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "bye", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UNAVAILABLE);
    assert_int_equal(r.attempts, 3);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_429_retry_after_seconds),
        cmocka_unit_test(test_429_retry_after_ms_and_date),
        cmocka_unit_test(test_429_exhausted),
        cmocka_unit_test(test_429_retry_after_too_long),
        cmocka_unit_test(test_5xx),
        cmocka_unit_test(test_4xx_final),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_bad_replies),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_dropped_connection),
    };
    return cmocka_run_group_tests(tests, so_tstub_setup, so_tstub_teardown);
}
