/*
 * Tests for so_openai's streamed calls (server-sent events, deltas passed to
 * a callback) against tests/openai_stub.py (so_test_openai_stub.h).
 */
#include "so_test_openai_stub.h"

typedef struct {
    char text[256];
    int calls;
    int cancel_after; /* > 0: return 1 on that call */
} s_deltas_t;

static int s_on_delta(const char *delta, size_t len, void *arg)
{
    s_deltas_t *d = arg;
    size_t have = strlen(d->text);
    assert_true(len > 0);
    assert_true(have + len < sizeof d->text);
    memcpy(d->text + have, delta, len);
    d->text[have + len] = '\0';
    d->calls++;
    return d->cancel_after > 0 && d->calls >= d->cancel_after;
}

static int s_stream(so_openai_t *c, const char *text, s_deltas_t *d, so_openai_response_t *r)
{
    so_openai_msg_t m = { "user", text };
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = &m;
    req.n_messages = 1;
    return so_openai_chat_stream(c, &req, s_on_delta, d, r);
}

static void test_stream_ok(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    so_openai_t *c = so_tstub_client("echo~s1");
    s_deltas_t d = { .text = "" };
    so_openai_response_t r;
    assert_int_equal(s_stream(c, "one two three", &d, &r), 0);
    assert_string_equal(d.text, "echo: one two three");
    assert_int_equal(d.calls, 4); /* a delta per word */
    assert_string_equal(r.text, d.text);
    assert_string_equal(r.finish_reason, "stop");
    assert_int_equal(r.usage_estimated, 0); /* from the usage chunk */
    assert_int_equal(r.prompt_tokens, 3);
    assert_int_equal(r.completion_tokens, 4);
    so_openai_response_clear(&r);
    json_t *st = so_tstub_stats();
    json_t *last = json_object_get(json_object_get(st, "last"), "echo~s1");
    assert_true(json_is_true(json_object_get(last, "stream")));
    assert_true(
        json_is_true(json_object_get(json_object_get(last, "stream_options"), "include_usage")));
    json_decref(st);
    /* A stream with a delay between chunks still assembles in order. */
    so_openai_destroy(&c);
    c = so_tstub_client("slow:30~s1b");
    memset(&d, 0, sizeof d);
    assert_int_equal(s_stream(c, "a b", &d, &r), 0);
    assert_string_equal(r.text, "echo: a b");
    so_openai_response_clear(&r);
    /* so_openai_chat with stream = 1 assembles without a callback. */
    so_openai_msg_t m = { "user", "x y" };
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = &m;
    req.n_messages = 1;
    req.stream = 1;
    assert_int_equal(so_openai_chat(c, &req, &r), 0);
    assert_string_equal(r.text, "echo: x y");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_stream_variants(void **state)
{
    (void) state;
    SO_TSTUB_NEED();
    /* The server ignores "stream": one delta with the whole text. */
    so_openai_t *c = so_tstub_client("nostream~s2");
    s_deltas_t d = { .text = "" };
    so_openai_response_t r;
    assert_int_equal(s_stream(c, "p q", &d, &r), 0);
    assert_int_equal(d.calls, 1);
    assert_string_equal(d.text, "echo: p q");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* No usage chunk: estimated. */
    c = so_tstub_client("nousage~s3");
    memset(&d, 0, sizeof d);
    assert_int_equal(s_stream(c, "p q", &d, &r), 0);
    assert_int_equal(r.usage_estimated, 1);
    assert_int_equal(r.completion_tokens, 3); /* "echo: p q" = 9 chars */
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* A malformed chunk after a delta went out: UPSTREAM, no retry. */
    c = so_tstub_client("streambad~s4");
    memset(&d, 0, sizeof d);
    assert_int_equal(s_stream(c, "p q r", &d, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UPSTREAM);
    SO_ASSERT_CONTAINS(r.error, "is not a JSON object");
    assert_int_equal(r.attempts, 1);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* A stream cut short. */
    c = so_tstub_client("streamcut~s5");
    memset(&d, 0, sizeof d);
    assert_int_equal(s_stream(c, "p q", &d, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UPSTREAM);
    SO_ASSERT_CONTAINS(r.error, "stream ended before [DONE]");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* The callback cancels. */
    c = so_tstub_client("echo~s6");
    memset(&d, 0, sizeof d);
    d.cancel_after = 2;
    assert_int_equal(s_stream(c, "p q r s", &d, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UNAVAILABLE);
    SO_ASSERT_CONTAINS(r.error, "cancelled by the caller");
    assert_int_equal(d.calls, 2);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* 429 before any delta is retried like any call. */
    c = so_tstub_client("429ms:1:20~s7");
    memset(&d, 0, sizeof d);
    assert_int_equal(s_stream(c, "p", &d, &r), 0);
    assert_int_equal(r.attempts, 2);
    assert_string_equal(d.text, "echo: p");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_ok),
        cmocka_unit_test(test_stream_variants),
    };
    return cmocka_run_group_tests(tests, so_tstub_setup, so_tstub_teardown);
}
