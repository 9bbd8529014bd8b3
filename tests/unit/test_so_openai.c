/*
 * Tests for so_openai: the pure functions (Retry-After, UTF-8 scrubbing,
 * names, configuration) and plain calls against tests/openai_stub.py
 * (so_test_openai_stub.h).  Retries and failures: test_so_openai_retry.c;
 * streaming: test_so_openai_stream.c.
 */
#include "so_test_openai_stub.h"
#include "base/so_text.h"

/* ---- pure functions --------------------------------------------------- */

static void test_retry_after_parse(void **state)
{
    (void) state;
    time_t now = 1700000000;
    assert_int_equal(so_openai_parse_retry_after("2", now), 2000);
    assert_int_equal(so_openai_parse_retry_after(" 1.5 ", now), 1500);
    assert_int_equal(so_openai_parse_retry_after("0", now), 0);
    assert_int_equal(so_openai_parse_retry_after("-1", now), -1);
    assert_int_equal(so_openai_parse_retry_after("soon", now), -1);
    assert_int_equal(so_openai_parse_retry_after("2x", now), -1);
    assert_int_equal(so_openai_parse_retry_after("", now), -1);
    assert_int_equal(so_openai_parse_retry_after(NULL, now), -1);
    /* 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT. */
    assert_int_equal(so_openai_parse_retry_after("Tue, 14 Nov 2023 22:13:23 GMT", now), 3000);
    assert_int_equal(so_openai_parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), 0);
    /* Absurd waits are capped (a day), never overflow. */
    assert_int_equal(so_openai_parse_retry_after("1e300", now), 24L * 3600 * 1000);
}

static void test_scrub_utf8(void **state)
{
    (void) state;
    char a[] = "ok\xe9x \xe2\x82\xac \xed\xa0\x80!";
    so_utf8_scrub(a);
    assert_string_equal(a, "ok?x \xe2\x82\xac ?"
                           "?"
                           "?!"); /* a surrogate is not UTF-8 */
    char b[] = "cut \xe2\x82";
    so_utf8_scrub(b);
    assert_string_equal(b, "cut ");
    so_utf8_scrub(NULL);
}

static void test_utf8_cut_and_endpoint(void **state)
{
    (void) state;
    const char *s = "ab\xe2\x82\xac"; /* "ab€": the euro sign is 3 bytes */
    assert_int_equal(so_utf8_cut(s, 5, 10), 5);
    assert_int_equal(so_utf8_cut(s, 5, 5), 5);
    assert_int_equal(so_utf8_cut(s, 5, 4), 2); /* never inside the euro sign */
    assert_int_equal(so_utf8_cut(s, 5, 2), 2);
    assert_int_equal(so_utf8_cut(s, 5, 0), 0);
    so_openai_config_t cfg, def;
    so_openai_config_endpoint(&cfg, "http://127.0.0.1:1/v1", "m", "KEY", 1234);
    so_openai_config_defaults(&def);
    assert_string_equal(cfg.base_url, "http://127.0.0.1:1/v1");
    assert_string_equal(cfg.model, "m");
    assert_string_equal(cfg.api_key_env, "KEY");
    assert_int_equal(cfg.timeout_ms, 1234);
    assert_int_equal(cfg.max_retries, def.max_retries);
    assert_int_equal(cfg.connect_timeout_ms, def.connect_timeout_ms);
}

static void test_code_names(void **state)
{
    (void) state;
    assert_string_equal(so_openai_code_name(SO_OPENAI_OK), "NONE");
    assert_string_equal(so_openai_code_name(SO_OPENAI_TIMEOUT), "TIMEOUT");
    assert_string_equal(so_openai_code_name(SO_OPENAI_CONTEXT_TOO_LONG), "CONTEXT_TOO_LONG");
    assert_string_equal(so_openai_code_name((so_openai_code_t) 99), "UNKNOWN");
}

static void test_config_checks(void **state)
{
    (void) state;
    char err[256];
    so_openai_config_t cfg;
    so_tstub_cfg(&cfg, "echo");
    cfg.base_url = "ftp://example.com";
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "base_url must start with http:// or https://");
    cfg.base_url = "http://127.0.0.1:1/v1 ";
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "base_url holds a blank or control character at byte 21");
    so_tstub_cfg(&cfg, "");
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "model is missing");
    so_tstub_cfg(&cfg, "echo");
    cfg.price_out = -1;
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "prices");
    so_tstub_cfg(&cfg, "echo");
    cfg.backoff_base_ms = 500;
    cfg.backoff_max_ms = 100;
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "backoff_base_ms <= backoff_max_ms");
    so_tstub_cfg(&cfg, "echo");
    cfg.max_tokens_field = "tokens";
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "max_tokens_field");
    so_tstub_cfg(&cfg, "echo");
    cfg.api_key_env = "SO_TEST_OPENAI_UNSET_KEY";
    unsetenv("SO_TEST_OPENAI_UNSET_KEY");
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "environment variable SO_TEST_OPENAI_UNSET_KEY");
    so_openai_destroy(NULL);
    so_openai_t *none = NULL;
    so_openai_destroy(&none);
}

static void test_config_load(void **state)
{
    (void) state;
    char err[256] = "";
    so_config_t *c = so_config_new("test-openai");
    so_openai_config_t cfg;
    assert_int_equal(so_openai_config_load(c, "a1", &cfg, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "agent.a1.base_url is missing");
    so_config_set(c, "agent.a1.base_url", "http://127.0.0.1:1/v1");
    so_config_set(c, "agent.a1.price_in", "0.5");
    so_config_set(c, "agent.a1.price_out", "1.5");
    so_config_set(c, "agent.a1.context", "8192");
    so_config_set(c, "agent.a1.timeout_ms", "1234");
    so_config_set(c, "agent.a1.max_retries", "4");
    so_config_set(c, "agent.a1.api_key_env", "MY_KEY");
    assert_int_equal(so_openai_config_load(c, "a1", &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.base_url, "http://127.0.0.1:1/v1");
    assert_string_equal(cfg.model, "a1"); /* defaults to the agent id */
    assert_string_equal(cfg.api_key_env, "MY_KEY");
    assert_string_equal(cfg.max_tokens_field, "max_tokens");
    SO_ASSERT_NEAR(cfg.price_in, 0.5, 0);
    SO_ASSERT_NEAR(cfg.price_out, 1.5, 0);
    assert_int_equal(cfg.context_tokens, 8192);
    assert_int_equal(cfg.timeout_ms, 1234);
    assert_int_equal(cfg.max_retries, 4);
    assert_int_equal(cfg.backoff_base_ms, 500); /* default kept */
    so_config_set(c, "agent.a1.max_retries", "11");
    assert_int_equal(so_openai_config_load(c, "a1", &cfg, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "agent.a1.max_retries");
    so_config_set(c, "agent.a1.max_retries", "1");
    so_config_set(c, "agent.a1.price_in", "cheap");
    assert_int_equal(so_openai_config_load(c, "a1", &cfg, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "agent.a1.price_in");
    so_config_destroy(&c);
}

/* ---- calls against the stub ------------------------------------------ */

static void test_chat_ok(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_t *c = so_tstub_client("echo~ok");
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "hello big world", &r), 0);
    assert_int_equal(r.code, SO_OPENAI_OK);
    assert_string_equal(r.text, "echo: hello big world");
    assert_string_equal(r.finish_reason, "stop");
    assert_string_equal(r.error, "");
    /* The stub counts words: 2 + 3 prompt, 4 completion. */
    assert_int_equal(r.prompt_tokens, 5);
    assert_int_equal(r.completion_tokens, 4);
    assert_int_equal(r.usage_estimated, 0);
    SO_ASSERT_NEAR(r.cost_usd, (5 * 1.0 + 4 * 2.0) / 1e6, 1e-15);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.http_status, 200);
    so_openai_response_clear(&r);
    assert_null(r.text);
    so_openai_destroy(&c);
    assert_null(c);
}

static void test_request_fields(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_config_t cfg;
    so_tstub_cfg(&cfg, "echo~fields");
    cfg.max_tokens = 77;
    cfg.max_tokens_field = "max_completion_tokens";
    so_openai_t *c = so_tstub_client_cfg(&cfg);
    so_openai_msg_t m = { "user", "x" };
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = &m;
    req.n_messages = 1;
    req.temperature = 0;
    so_openai_response_t r;
    assert_int_equal(so_openai_chat(c, &req, &r), 0);
    so_openai_response_clear(&r);
    json_t *st = so_tstub_stats();
    json_t *last = json_object_get(json_object_get(st, "last"), "echo~fields");
    assert_int_equal(json_integer_value(json_object_get(last, "max_completion_tokens")), 77);
    assert_null(json_object_get(last, "max_tokens"));
    assert_true(json_is_number(json_object_get(last, "temperature")));
    assert_null(json_object_get(last, "stream"));
    json_decref(st);
    /* The request's model and max_tokens win over the client's. */
    req.model = "echo~fields2";
    req.max_tokens = 5;
    req.temperature = -1;
    assert_int_equal(so_openai_chat(c, &req, &r), 0);
    so_openai_response_clear(&r);
    st = so_tstub_stats();
    last = json_object_get(json_object_get(st, "last"), "echo~fields2");
    assert_int_equal(json_integer_value(json_object_get(last, "max_completion_tokens")), 5);
    assert_null(json_object_get(last, "temperature"));
    json_decref(st);
    so_openai_destroy(&c);
}

static void test_connection_reuse(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_t *c = so_tstub_client("echo~reuse");
    for (int i = 0; i < 3; i++) {
        so_openai_response_t r;
        assert_int_equal(so_tstub_chat(c, "again", &r), 0);
        so_openai_response_clear(&r);
    }
    so_openai_destroy(&c);
    assert_int_equal(so_tstub_stat("requests", "echo~reuse"), 3);
    assert_int_equal(so_tstub_stat("connections", "echo~reuse"), 1);
}

static void test_api_key(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    setenv("SO_TEST_OPENAI_KEY", "sk-test-123", 1);
    so_openai_config_t cfg;
    so_tstub_cfg(&cfg, "whoami~key");
    cfg.api_key_env = "SO_TEST_OPENAI_KEY";
    so_openai_t *c = so_tstub_client_cfg(&cfg);
    /* Read once at creation: a later change does not matter. */
    setenv("SO_TEST_OPENAI_KEY", "sk-changed", 1);
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "who", &r), 0);
    assert_string_equal(r.text, "Bearer sk-test-123");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
    unsetenv("SO_TEST_OPENAI_KEY");
    /* No variable configured: no Authorization header. */
    c = so_tstub_client("whoami~nokey");
    assert_int_equal(so_tstub_chat(c, "who", &r), 0);
    assert_string_equal(r.text, "none");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_usage_missing(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_t *c = so_tstub_client("nousage~u");
    so_openai_response_t r;
    assert_int_equal(so_tstub_chat(c, "12345678", &r), 0);
    assert_int_equal(r.usage_estimated, 1);
    /* ceil(chars / 4): "be brief" 2, "12345678" 2; "echo: 12345678" 4. */
    assert_int_equal(r.prompt_tokens, 4);
    assert_int_equal(r.completion_tokens, 4);
    SO_ASSERT_NEAR(r.cost_usd, (4 * 1.0 + 4 * 2.0) / 1e6, 1e-15);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_invalid_requests(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_config_t cfg;
    so_tstub_cfg(&cfg, "echo~inv");
    cfg.context_tokens = 10;
    so_openai_t *c = so_tstub_client_cfg(&cfg);
    so_openai_request_t req;
    so_openai_request_init(&req);
    so_openai_response_t r;
    assert_int_equal(so_openai_chat(c, &req, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_INVALID_REQUEST);
    SO_ASSERT_CONTAINS(r.error, "no messages");
    so_openai_response_clear(&r);
    so_openai_msg_t bad = { "user", "\xff\xfe" };
    req.messages = &bad;
    req.n_messages = 1;
    assert_int_equal(so_openai_chat(c, &req, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_INVALID_REQUEST);
    SO_ASSERT_CONTAINS(r.error, "messages[0].content");
    so_openai_response_clear(&r);
    so_openai_msg_t nullrole = { NULL, "x" };
    req.messages = &nullrole;
    assert_int_equal(so_openai_chat(c, &req, &r), -1);
    SO_ASSERT_CONTAINS(r.error, "messages[0].role");
    so_openai_response_clear(&r);
    /* About 11 tokens against a context of 10: refused without a call. */
    so_openai_msg_t longer = { "user", "0123456789012345678901234567890123456789abcd" };
    req.messages = &longer;
    assert_int_equal(so_openai_chat(c, &req, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_CONTEXT_TOO_LONG);
    SO_ASSERT_CONTAINS(r.error, "context of 10 tokens");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
    assert_int_equal(so_tstub_stat("requests", "echo~inv"), 0);
}

static void test_cancel_flag(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_t *c = so_tstub_client("slow:5000~cancel");
    atomic_int cancel = 1;
    so_openai_msg_t m = { "user", "x" };
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = &m;
    req.n_messages = 1;
    req.cancel = &cancel;
    so_openai_response_t r;
    assert_int_equal(so_openai_chat(c, &req, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UNAVAILABLE);
    SO_ASSERT_CONTAINS(r.error, "cancelled");
    assert_true(r.latency_ms < 4000);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test(test_scrub_utf8),
        cmocka_unit_test(test_utf8_cut_and_endpoint),
        cmocka_unit_test(test_code_names),
        cmocka_unit_test(test_config_checks),
        cmocka_unit_test(test_config_load),
        cmocka_unit_test(test_chat_ok),
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_connection_reuse),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_usage_missing),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_cancel_flag),
    };
    return cmocka_run_group_tests(tests, so_tstub_setup, so_tstub_teardown);
}
