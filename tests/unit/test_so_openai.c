/*
 * Tests for so_openai against tests/openai_stub.py: the group setup starts
 * the stub on a free loopback port (it writes the port to a file) and the
 * teardown stops it.  The stub's behaviour is chosen by the model name (see
 * the stub's docstring); every test uses its own "~tag" so the stub's
 * per-model counters never mix.  Without python3 the tests are skipped.
 */
#include "so_test_util.h"
#include "llm/so_openai.h"
#include "base/so_svc.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

static char s_dir[128];
static char s_port_file[200];
static int s_port;
static pid_t s_stub = -1;
static char s_base[64];

static void s_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int group_setup(void **state)
{
    (void) state;
    so_log_open("test", SO_LOG_WARN);
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        return 0;                         /* each test skips */
    snprintf(s_dir, sizeof s_dir, "/tmp/so_test_openai_XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(s_port_file, sizeof s_port_file, "%s/port", s_dir);
    s_stub = fork();
    if (s_stub < 0)
        return -1;
    if (s_stub == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);     /* never outlive a crashed test */
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("python3", "python3", "tests/openai_stub.py", "--port-file", s_port_file,
               (char *) NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {            /* bounded: 10 s */
        FILE *f = fopen(s_port_file, "r");
        if (f) {
            int ok = fscanf(f, "%d", &s_port) == 1;
            fclose(f);
            if (ok) {
                snprintf(s_base, sizeof s_base, "http://127.0.0.1:%d/v1", s_port);
                return 0;
            }
        }
        if (waitpid(s_stub, NULL, WNOHANG) == s_stub) {
            s_stub = -1;
            return -1;
        }
        s_sleep_ms(50);
    }
    return -1;
}

static int group_teardown(void **state)
{
    (void) state;
    if (s_stub > 0) {
        kill(s_stub, SIGTERM);
        int st;
        for (int i = 0; i < 100 && waitpid(s_stub, &st, WNOHANG) == 0; i++)
            s_sleep_ms(50);
        if (waitpid(s_stub, &st, WNOHANG) == 0) {
            kill(s_stub, SIGKILL);
            waitpid(s_stub, &st, 0);
        }
    }
    if (s_dir[0]) {
        unlink(s_port_file);
        rmdir(s_dir);
    }
    return 0;
}

#define S_NEED_STUB()                                                                    \
    do {                                                                                 \
        if (s_stub <= 0)                                                                 \
            skip();                                                                      \
    } while (0)

/* A config for the stub with short backoffs; price 1 and 2 USD per 1M. */
static void s_cfg(so_openai_config_t *cfg, const char *model)
{
    so_openai_config_defaults(cfg);
    cfg->base_url = s_base;
    cfg->model = model;
    cfg->price_in = 1.0;
    cfg->price_out = 2.0;
    cfg->timeout_ms = 5000;
    cfg->backoff_base_ms = 20;
    cfg->backoff_max_ms = 100;
    cfg->seed = 7;
}

static so_openai_t *s_client_cfg(const so_openai_config_t *cfg)
{
    char err[256] = "";
    so_openai_t *c = so_openai_new(cfg, err, sizeof err);
    if (!c)
        fail_msg("so_openai_new: %s", err);
    return c;
}

static so_openai_t *s_client(const char *model)
{
    so_openai_config_t cfg;
    s_cfg(&cfg, model);
    return s_client_cfg(&cfg);
}

static int s_chat(so_openai_t *c, const char *text, so_openai_response_t *resp)
{
    so_openai_msg_t m[2] = { { "system", "be brief" }, { "user", text } };
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = m;
    req.n_messages = 2;
    return so_openai_chat(c, &req, resp);
}

/* ---- the stub's /control/stats ---------------------------------------- */

typedef struct {
    char *p;
    size_t len;
} s_body_t;

static size_t s_collect(char *data, size_t size, size_t nmemb, void *ud)
{
    s_body_t *b = ud;
    size_t n = size * nmemb;
    char *p = realloc(b->p, b->len + n + 1);
    assert_non_null(p);
    memcpy(p + b->len, data, n);
    b->p = p;
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* {"requests": {...}, "connections": {...}, "last": {...}}; caller decrefs. */
static json_t *s_stats(void)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/control/stats", s_port);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    s_body_t body = { NULL, 0 };
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK || !body.p)
        fail_msg("GET /control/stats: %s", curl_easy_strerror(rc));
    json_t *root = json_loadb(body.p, body.len, 0, NULL);
    free(body.p);
    assert_non_null(root);
    return root;
}

static long s_stat(const char *what, const char *model)
{
    json_t *root = s_stats();
    json_t *v = json_object_get(json_object_get(root, what), model);
    long n = json_is_integer(v) ? (long) json_integer_value(v) : 0;
    json_decref(root);
    return n;
}

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
    so_openai_scrub_utf8(a);
    assert_string_equal(a, "ok?x \xe2\x82\xac ?" "?" "?!");  /* a surrogate is not UTF-8 */
    char b[] = "cut \xe2\x82";
    so_openai_scrub_utf8(b);
    assert_string_equal(b, "cut ");
    so_openai_scrub_utf8(NULL);
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
    s_cfg(&cfg, "echo");
    cfg.base_url = "ftp://example.com";
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "base_url must start with http:// or https://");
    cfg.base_url = "http://127.0.0.1:1/v1 ";
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "base_url holds a blank or control character at byte 21");
    s_cfg(&cfg, "");
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "model is missing");
    s_cfg(&cfg, "echo");
    cfg.price_out = -1;
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "prices");
    s_cfg(&cfg, "echo");
    cfg.backoff_base_ms = 500;
    cfg.backoff_max_ms = 100;
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "backoff_base_ms <= backoff_max_ms");
    s_cfg(&cfg, "echo");
    cfg.max_tokens_field = "tokens";
    assert_null(so_openai_new(&cfg, err, sizeof err));
    SO_ASSERT_CONTAINS(err, "max_tokens_field");
    s_cfg(&cfg, "echo");
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
    assert_string_equal(cfg.model, "a1");            /* defaults to the agent id */
    assert_string_equal(cfg.api_key_env, "MY_KEY");
    assert_string_equal(cfg.max_tokens_field, "max_tokens");
    SO_ASSERT_NEAR(cfg.price_in, 0.5, 0);
    SO_ASSERT_NEAR(cfg.price_out, 1.5, 0);
    assert_int_equal(cfg.context_tokens, 8192);
    assert_int_equal(cfg.timeout_ms, 1234);
    assert_int_equal(cfg.max_retries, 4);
    assert_int_equal(cfg.backoff_base_ms, 500);      /* default kept */
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
    S_NEED_STUB();
    so_openai_t *c = s_client("echo~ok");
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "hello big world", &r), 0);
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
    S_NEED_STUB();
    so_openai_config_t cfg;
    s_cfg(&cfg, "echo~fields");
    cfg.max_tokens = 77;
    cfg.max_tokens_field = "max_completion_tokens";
    so_openai_t *c = s_client_cfg(&cfg);
    so_openai_msg_t m = { "user", "x" };
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = &m;
    req.n_messages = 1;
    req.temperature = 0;
    so_openai_response_t r;
    assert_int_equal(so_openai_chat(c, &req, &r), 0);
    so_openai_response_clear(&r);
    json_t *st = s_stats();
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
    st = s_stats();
    last = json_object_get(json_object_get(st, "last"), "echo~fields2");
    assert_int_equal(json_integer_value(json_object_get(last, "max_completion_tokens")), 5);
    assert_null(json_object_get(last, "temperature"));
    json_decref(st);
    so_openai_destroy(&c);
}

static void test_connection_reuse(void **state)
{
    (void) state;
    S_NEED_STUB();
    so_openai_t *c = s_client("echo~reuse");
    for (int i = 0; i < 3; i++) {
        so_openai_response_t r;
        assert_int_equal(s_chat(c, "again", &r), 0);
        so_openai_response_clear(&r);
    }
    so_openai_destroy(&c);
    assert_int_equal(s_stat("requests", "echo~reuse"), 3);
    assert_int_equal(s_stat("connections", "echo~reuse"), 1);
}

static void test_api_key(void **state)
{
    (void) state;
    S_NEED_STUB();
    setenv("SO_TEST_OPENAI_KEY", "sk-test-123", 1);
    so_openai_config_t cfg;
    s_cfg(&cfg, "whoami~key");
    cfg.api_key_env = "SO_TEST_OPENAI_KEY";
    so_openai_t *c = s_client_cfg(&cfg);
    /* Read once at creation: a later change does not matter. */
    setenv("SO_TEST_OPENAI_KEY", "sk-changed", 1);
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "who", &r), 0);
    assert_string_equal(r.text, "Bearer sk-test-123");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
    unsetenv("SO_TEST_OPENAI_KEY");
    /* No variable configured: no Authorization header. */
    c = s_client("whoami~nokey");
    assert_int_equal(s_chat(c, "who", &r), 0);
    assert_string_equal(r.text, "none");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_429_retry_after_seconds(void **state)
{
    (void) state;
    S_NEED_STUB();
    so_openai_t *c = s_client("429:1:1~ra");
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "rate", &r), 0);
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
    S_NEED_STUB();
    so_openai_t *c = s_client("429ms:2:150~ram");
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "rate", &r), 0);
    assert_int_equal(r.attempts, 3);
    assert_true(r.latency_ms >= 300);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
    c = s_client("429:1:date1~rad");
    assert_int_equal(s_chat(c, "rate", &r), 0);
    assert_int_equal(r.attempts, 2);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_429_exhausted(void **state)
{
    (void) state;
    S_NEED_STUB();
    so_openai_t *c = s_client("429ms:inf:10~rax");
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "rate", &r), -1);
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
    assert_int_equal(s_stat("requests", "429ms:inf:10~rax"), 3);
}

static void test_429_retry_after_too_long(void **state)
{
    (void) state;
    S_NEED_STUB();
    so_openai_config_t cfg;
    s_cfg(&cfg, "429:1:60~ralong");
    cfg.retry_after_max_ms = 2000;
    so_openai_t *c = s_client_cfg(&cfg);
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "rate", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_RATE_LIMITED);
    assert_int_equal(r.attempts, 1);
    SO_ASSERT_CONTAINS(r.error, "Retry-After exceeds retry_after_max_ms");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_5xx(void **state)
{
    (void) state;
    S_NEED_STUB();
    so_openai_t *c = s_client("500:2~5a");
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "flaky", &r), 0);
    assert_int_equal(r.attempts, 3);
    assert_string_equal(r.text, "echo: flaky");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    c = s_client("500:inf~5b");
    assert_int_equal(s_chat(c, "down", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UPSTREAM);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.http_status, 500);
    SO_ASSERT_CONTAINS(r.error, "HTTP 500");
    SO_ASSERT_CONTAINS(r.error, "stub server error 500");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    c = s_client("503:inf~5c");
    assert_int_equal(s_chat(c, "down", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UNAVAILABLE);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_4xx_final(void **state)
{
    (void) state;
    S_NEED_STUB();
    struct { const char *model; so_openai_code_t code; } cases[] = {
        { "status:400~4a", SO_OPENAI_INVALID_REQUEST },
        { "status:401~4b", SO_OPENAI_UPSTREAM },
        { "status:404~4c", SO_OPENAI_INVALID_REQUEST },
        { "ctx~4d", SO_OPENAI_CONTEXT_TOO_LONG },
        { "latin1~4e", SO_OPENAI_INVALID_REQUEST },
        { "ctx500~4f", SO_OPENAI_CONTEXT_TOO_LONG },      /* a 500, yet not retried */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        so_openai_t *c = s_client(cases[i].model);
        so_openai_response_t r;
        assert_int_equal(s_chat(c, "no", &r), -1);
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
    S_NEED_STUB();
    /* One attempt too slow, no retries: TIMEOUT naming the limit. */
    so_openai_config_t cfg;
    s_cfg(&cfg, "slow:3000~t1");
    cfg.timeout_ms = 200;
    cfg.max_retries = 0;
    so_openai_t *c = s_client_cfg(&cfg);
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "slow", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_TIMEOUT);
    assert_int_equal(r.http_status, 0);
    SO_ASSERT_CONTAINS(r.error, "within 200 ms");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* Retries stop at the whole-call deadline. */
    s_cfg(&cfg, "slow:3000~t2");
    cfg.timeout_ms = 200;
    cfg.max_retries = 10;
    cfg.deadline_ms = 500;
    c = s_client_cfg(&cfg);
    assert_int_equal(s_chat(c, "slow", &r), -1);
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
    S_NEED_STUB();
    struct { const char *model; const char *want; } cases[] = {
        { "badjson~b1", "reply is not JSON" },
        { "error200~b2", "stub error inside a 200 reply" },
        { "nullcontent~b3", "content is null" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        so_openai_t *c = s_client(cases[i].model);
        so_openai_response_t r;
        assert_int_equal(s_chat(c, "bad", &r), -1);
        assert_int_equal(r.code, SO_OPENAI_UPSTREAM);
        assert_int_equal(r.attempts, 1);
        SO_ASSERT_CONTAINS(r.error, cases[i].want);
        so_openai_response_clear(&r);
        so_openai_destroy(&c);
    }
    /* Too large a reply. */
    so_openai_config_t cfg;
    s_cfg(&cfg, "big:5000~b4");
    cfg.max_response_bytes = 2048;
    so_openai_t *c = s_client_cfg(&cfg);
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "big", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UPSTREAM);
    SO_ASSERT_CONTAINS(r.error, "larger than 2048 bytes");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_usage_missing(void **state)
{
    (void) state;
    S_NEED_STUB();
    so_openai_t *c = s_client("nousage~u");
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "12345678", &r), 0);
    assert_int_equal(r.usage_estimated, 1);
    /* ceil(chars / 4): "be brief" 2, "12345678" 2; "echo: 12345678" 4. */
    assert_int_equal(r.prompt_tokens, 4);
    assert_int_equal(r.completion_tokens, 4);
    SO_ASSERT_NEAR(r.cost_usd, (4 * 1.0 + 4 * 2.0) / 1e6, 1e-15);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_unreachable(void **state)
{
    (void) state;
    so_openai_config_t cfg;
    s_cfg(&cfg, "echo");
    cfg.base_url = "http://127.0.0.1:1/v1";       /* nothing listens on port 1 */
    so_openai_t *c = s_client_cfg(&cfg);
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "anyone", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UNAVAILABLE);
    assert_int_equal(r.attempts, 3);
    SO_ASSERT_CONTAINS(r.error, "cannot reach http://127.0.0.1:1/v1/chat/completions");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_dropped_connection(void **state)
{
    (void) state;
    S_NEED_STUB();
    so_openai_t *c = s_client("drop~d");
    so_openai_response_t r;
    assert_int_equal(s_chat(c, "bye", &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UNAVAILABLE);
    assert_int_equal(r.attempts, 3);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);
}

static void test_invalid_requests(void **state)
{
    (void) state;
    S_NEED_STUB();
    so_openai_config_t cfg;
    s_cfg(&cfg, "echo~inv");
    cfg.context_tokens = 10;
    so_openai_t *c = s_client_cfg(&cfg);
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
    assert_int_equal(s_stat("requests", "echo~inv"), 0);
}

static void test_cancel_flag(void **state)
{
    (void) state;
    S_NEED_STUB();
    so_openai_t *c = s_client("slow:5000~cancel");
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

/* ---- streaming -------------------------------------------------------- */

typedef struct {
    char text[256];
    int calls;
    int cancel_after;             /* > 0: return 1 on that call */
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
    S_NEED_STUB();
    so_openai_t *c = s_client("echo~s1");
    s_deltas_t d = { .text = "" };
    so_openai_response_t r;
    assert_int_equal(s_stream(c, "one two three", &d, &r), 0);
    assert_string_equal(d.text, "echo: one two three");
    assert_int_equal(d.calls, 4);                 /* a delta per word */
    assert_string_equal(r.text, d.text);
    assert_string_equal(r.finish_reason, "stop");
    assert_int_equal(r.usage_estimated, 0);       /* from the usage chunk */
    assert_int_equal(r.prompt_tokens, 3);
    assert_int_equal(r.completion_tokens, 4);
    so_openai_response_clear(&r);
    json_t *st = s_stats();
    json_t *last = json_object_get(json_object_get(st, "last"), "echo~s1");
    assert_true(json_is_true(json_object_get(last, "stream")));
    assert_true(json_is_true(json_object_get(json_object_get(last, "stream_options"),
                                             "include_usage")));
    json_decref(st);
    /* A stream with a delay between chunks still assembles in order. */
    so_openai_destroy(&c);
    c = s_client("slow:30~s1b");
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
    S_NEED_STUB();
    /* The server ignores "stream": one delta with the whole text. */
    so_openai_t *c = s_client("nostream~s2");
    s_deltas_t d = { .text = "" };
    so_openai_response_t r;
    assert_int_equal(s_stream(c, "p q", &d, &r), 0);
    assert_int_equal(d.calls, 1);
    assert_string_equal(d.text, "echo: p q");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* No usage chunk: estimated. */
    c = s_client("nousage~s3");
    memset(&d, 0, sizeof d);
    assert_int_equal(s_stream(c, "p q", &d, &r), 0);
    assert_int_equal(r.usage_estimated, 1);
    assert_int_equal(r.completion_tokens, 3);     /* "echo: p q" = 9 chars */
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* A malformed chunk after a delta went out: UPSTREAM, no retry. */
    c = s_client("streambad~s4");
    memset(&d, 0, sizeof d);
    assert_int_equal(s_stream(c, "p q r", &d, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UPSTREAM);
    SO_ASSERT_CONTAINS(r.error, "is not a JSON object");
    assert_int_equal(r.attempts, 1);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* A stream cut short. */
    c = s_client("streamcut~s5");
    memset(&d, 0, sizeof d);
    assert_int_equal(s_stream(c, "p q", &d, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UPSTREAM);
    SO_ASSERT_CONTAINS(r.error, "stream ended before [DONE]");
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* The callback cancels. */
    c = s_client("echo~s6");
    memset(&d, 0, sizeof d);
    d.cancel_after = 2;
    assert_int_equal(s_stream(c, "p q r s", &d, &r), -1);
    assert_int_equal(r.code, SO_OPENAI_UNAVAILABLE);
    SO_ASSERT_CONTAINS(r.error, "cancelled by the caller");
    assert_int_equal(d.calls, 2);
    so_openai_response_clear(&r);
    so_openai_destroy(&c);

    /* 429 before any delta is retried like any call. */
    c = s_client("429ms:1:20~s7");
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
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test(test_scrub_utf8),
        cmocka_unit_test(test_code_names),
        cmocka_unit_test(test_config_checks),
        cmocka_unit_test(test_config_load),
        cmocka_unit_test(test_chat_ok),
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_connection_reuse),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_429_retry_after_seconds),
        cmocka_unit_test(test_429_retry_after_ms_and_date),
        cmocka_unit_test(test_429_exhausted),
        cmocka_unit_test(test_429_retry_after_too_long),
        cmocka_unit_test(test_5xx),
        cmocka_unit_test(test_4xx_final),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_bad_replies),
        cmocka_unit_test(test_usage_missing),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_dropped_connection),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_cancel_flag),
        cmocka_unit_test(test_stream_ok),
        cmocka_unit_test(test_stream_variants),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
