/* so_openai — OpenAI-compatible chat client over libcurl (see so_openai.h). */
#include "llm/so_openai.h"
#include "base/so_rng.h"

#include <curl/curl.h>
#include <jansson.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define S_MAX_RETRIES 10
#define S_MAX_WAIT_MS (24L * 3600 * 1000)
#define S_MAX_TOKENS 100000000L

struct so_openai {
    so_openai_config_t cfg;        /* strings point at the copies below */
    char *base_url;
    char *model;
    char *key_env;
    char *url;                     /* base_url + "/chat/completions" */
    struct curl_slist *hdr_json;   /* request headers, key included: wiped on destroy */
    struct curl_slist *hdr_sse;
    CURL *curl;
    so_rng_t rng;
    char curl_err[CURL_ERROR_SIZE];
};

const char *so_openai_code_name(so_openai_code_t code)
{
    switch (code) {
    case SO_OPENAI_OK: return "NONE";
    case SO_OPENAI_INVALID_REQUEST: return "INVALID_REQUEST";
    case SO_OPENAI_TIMEOUT: return "TIMEOUT";
    case SO_OPENAI_UPSTREAM: return "UPSTREAM";
    case SO_OPENAI_RATE_LIMITED: return "RATE_LIMITED";
    case SO_OPENAI_CONTEXT_TOO_LONG: return "CONTEXT_TOO_LONG";
    case SO_OPENAI_UNAVAILABLE: return "UNAVAILABLE";
    }
    return "UNKNOWN";
}

void so_openai_config_defaults(so_openai_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->timeout_ms = 60000;
    cfg->connect_timeout_ms = 5000;
    cfg->max_retries = 2;
    cfg->backoff_base_ms = 500;
    cfg->backoff_max_ms = 8000;
    cfg->retry_after_max_ms = 30000;
    cfg->max_response_bytes = 8u << 20;
    cfg->stream_usage = 1;
    cfg->max_tokens_field = "max_tokens";
}

void so_openai_request_init(so_openai_request_t *req)
{
    memset(req, 0, sizeof *req);
    req->temperature = -1.0;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

int so_openai_config_load(const so_config_t *cfg, const char *agent_id,
                          so_openai_config_t *out, char *err, size_t errlen)
{
    char key[256];
    long l;
    so_openai_config_defaults(out);
#define S_KEY(name) (snprintf(key, sizeof key, "agent.%s.%s", agent_id, name), key)
    out->base_url = so_config_get(cfg, S_KEY("base_url"), NULL);
    out->model = so_config_get(cfg, S_KEY("model"), agent_id);
    out->api_key_env = so_config_get(cfg, S_KEY("api_key_env"), NULL);
    out->max_tokens_field = so_config_get(cfg, S_KEY("max_tokens_field"), "max_tokens");
    if (!out->base_url || !*out->base_url) {
        snprintf(err, errlen, "config agent.%s.base_url is missing", agent_id);
        return -1;
    }
    if (so_config_double(cfg, S_KEY("price_in"), 0, 0, 1e6, &out->price_in, err, errlen) < 0
        || so_config_double(cfg, S_KEY("price_out"), 0, 0, 1e6, &out->price_out, err, errlen) < 0
        || so_config_long(cfg, S_KEY("context"), 0, 0, S_MAX_TOKENS, &out->context_tokens, err,
                          errlen) < 0
        || so_config_long(cfg, S_KEY("max_tokens"), 0, 0, S_MAX_TOKENS, &out->max_tokens, err,
                          errlen) < 0
        || so_config_long(cfg, S_KEY("timeout_ms"), out->timeout_ms, 1, S_MAX_WAIT_MS,
                          &out->timeout_ms, err, errlen) < 0
        || so_config_long(cfg, S_KEY("connect_timeout_ms"), out->connect_timeout_ms, 1,
                          S_MAX_WAIT_MS, &out->connect_timeout_ms, err, errlen) < 0
        || so_config_long(cfg, S_KEY("deadline_ms"), 0, 0, S_MAX_WAIT_MS, &out->deadline_ms, err,
                          errlen) < 0
        || so_config_long(cfg, S_KEY("backoff_base_ms"), out->backoff_base_ms, 0, S_MAX_WAIT_MS,
                          &out->backoff_base_ms, err, errlen) < 0
        || so_config_long(cfg, S_KEY("backoff_max_ms"), out->backoff_max_ms, 0, S_MAX_WAIT_MS,
                          &out->backoff_max_ms, err, errlen) < 0
        || so_config_long(cfg, S_KEY("retry_after_max_ms"), out->retry_after_max_ms, 0,
                          S_MAX_WAIT_MS, &out->retry_after_max_ms, err, errlen) < 0)
        return -1;
    if (so_config_long(cfg, S_KEY("max_retries"), out->max_retries, 0, S_MAX_RETRIES, &l, err,
                       errlen) < 0)
        return -1;
    out->max_retries = (int) l;
    if (so_config_long(cfg, S_KEY("max_response_bytes"), (long) out->max_response_bytes, 1024,
                       1L << 30, &l, err, errlen) < 0)
        return -1;
    out->max_response_bytes = (size_t) l;
    if (so_config_long(cfg, S_KEY("stream_usage"), 1, 0, 1, &l, err, errlen) < 0)
        return -1;
    out->stream_usage = (int) l;
    if (so_config_long(cfg, S_KEY("seed"), 0, 0, LONG_MAX, &l, err, errlen) < 0)
        return -1;
    out->seed = (uint64_t) l;
#undef S_KEY
    return 0;
}

/* ------------------------------------------------------------------ */
/* Client                                                              */

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;
static CURLcode s_curl_init_rc = CURLE_FAILED_INIT;

static void s_curl_global_init(void)
{
    s_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *s_strdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

static struct curl_slist *s_headers(const char *accept, const char *auth)
{
    struct curl_slist *h = NULL;
    const char *lines[] = { "Content-Type: application/json", accept,
                            "Expect:" /* no 100-continue round trip */, auth };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        if (!lines[i])
            continue;
        struct curl_slist *n = curl_slist_append(h, lines[i]);
        if (!n)
            abort();
        h = n;
    }
    return h;
}

/* Frees a header list after wiping every line (one holds the key). */
static void s_headers_free(struct curl_slist **h_p)
{
    for (struct curl_slist *h = *h_p; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));
    curl_slist_free_all(*h_p);
    *h_p = NULL;
}

static int s_check_config(const so_openai_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg->base_url || (strncmp(cfg->base_url, "http://", 7) != 0
                           && strncmp(cfg->base_url, "https://", 8) != 0)) {
        snprintf(err, errlen, "base_url must start with http:// or https:// (got '%.100s')",
                 cfg->base_url ? cfg->base_url : "");
        return -1;
    }
    for (const char *p = cfg->base_url; *p; p++)
        if ((unsigned char) *p <= 0x20 || *p == 0x7f) {
            snprintf(err, errlen, "base_url holds a blank or control character at byte %ld",
                     (long) (p - cfg->base_url));
            return -1;
        }
    if (!cfg->model || !*cfg->model) {
        snprintf(err, errlen, "model is missing");
        return -1;
    }
    if (!(cfg->price_in >= 0 && isfinite(cfg->price_in))
        || !(cfg->price_out >= 0 && isfinite(cfg->price_out))) {
        snprintf(err, errlen, "prices must be finite and >= 0");
        return -1;
    }
    if (cfg->timeout_ms <= 0 || cfg->connect_timeout_ms <= 0 || cfg->deadline_ms < 0
        || cfg->timeout_ms > S_MAX_WAIT_MS || cfg->connect_timeout_ms > S_MAX_WAIT_MS
        || cfg->deadline_ms > S_MAX_WAIT_MS) {
        snprintf(err, errlen, "timeout_ms and connect_timeout_ms must be in [1, %ld], "
                 "deadline_ms in [0, %ld]", S_MAX_WAIT_MS, S_MAX_WAIT_MS);
        return -1;
    }
    if (cfg->max_retries < 0 || cfg->max_retries > S_MAX_RETRIES) {
        snprintf(err, errlen, "max_retries must be in [0, %d]", S_MAX_RETRIES);
        return -1;
    }
    if (cfg->backoff_base_ms < 0 || cfg->backoff_max_ms < cfg->backoff_base_ms
        || cfg->backoff_max_ms > S_MAX_WAIT_MS || cfg->retry_after_max_ms < 0
        || cfg->retry_after_max_ms > S_MAX_WAIT_MS) {
        snprintf(err, errlen, "need 0 <= backoff_base_ms <= backoff_max_ms <= %ld and "
                 "retry_after_max_ms in [0, %ld]", S_MAX_WAIT_MS, S_MAX_WAIT_MS);
        return -1;
    }
    if (cfg->max_response_bytes == 0) {
        snprintf(err, errlen, "max_response_bytes must be > 0");
        return -1;
    }
    if (cfg->context_tokens < 0 || cfg->context_tokens > S_MAX_TOKENS || cfg->max_tokens < 0
        || cfg->max_tokens > S_MAX_TOKENS) {
        snprintf(err, errlen, "context and max_tokens must be in [0, %ld]", S_MAX_TOKENS);
        return -1;
    }
    if (cfg->max_tokens_field && strcmp(cfg->max_tokens_field, "max_tokens") != 0
        && strcmp(cfg->max_tokens_field, "max_completion_tokens") != 0) {
        snprintf(err, errlen, "max_tokens_field must be max_tokens or max_completion_tokens "
                 "(got '%.60s')", cfg->max_tokens_field);
        return -1;
    }
    return 0;
}

/* "Authorization: Bearer <key>" from the environment, or NULL when no
 * variable is configured.  The key itself never reaches a message. */
static int s_auth_line(const char *env, char **line_p, char *err, size_t errlen)
{
    *line_p = NULL;
    if (!env || !*env)
        return 0;
    const char *key = getenv(env);
    if (!key || !*key) {
        snprintf(err, errlen, "environment variable %s (the API key) is not set or empty", env);
        return -1;
    }
    for (const char *p = key; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f) {
            snprintf(err, errlen, "environment variable %s holds a control character", env);
            return -1;
        }
    size_t n = strlen("Authorization: Bearer ") + strlen(key) + 1;
    char *line = malloc(n);
    if (!line)
        abort();
    snprintf(line, n, "Authorization: Bearer %s", key);
    *line_p = line;
    return 0;
}

static size_t s_on_write(char *data, size_t size, size_t nmemb, void *ud);
static size_t s_on_header(char *data, size_t size, size_t nmemb, void *ud);
static int s_on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un);

so_openai_t *so_openai_new(const so_openai_config_t *cfg, char *err, size_t errlen)
{
    char *auth = NULL;
    if (s_check_config(cfg, err, errlen) < 0 || s_auth_line(cfg->api_key_env, &auth, err, errlen) < 0)
        return NULL;
    pthread_once(&s_curl_once, s_curl_global_init);
    if (s_curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init failed: %s", curl_easy_strerror(s_curl_init_rc));
        free(auth);
        return NULL;
    }
    so_openai_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->cfg = *cfg;
    c->base_url = s_strdup(cfg->base_url);
    size_t blen = strlen(c->base_url);
    while (blen > 0 && c->base_url[blen - 1] == '/')
        c->base_url[--blen] = '\0';
    c->model = s_strdup(cfg->model);
    c->key_env = s_strdup(cfg->api_key_env);
    c->cfg.base_url = c->base_url;
    c->cfg.model = c->model;
    c->cfg.api_key_env = c->key_env;
    /* One of two literals (checked above): no copy needed. */
    c->cfg.max_tokens_field = cfg->max_tokens_field
                                  && strcmp(cfg->max_tokens_field, "max_completion_tokens") == 0
                                  ? "max_completion_tokens" : "max_tokens";
    if (c->cfg.deadline_ms == 0)
        c->cfg.deadline_ms = c->cfg.timeout_ms * (c->cfg.max_retries + 1)
                             + c->cfg.backoff_max_ms * c->cfg.max_retries;
    size_t ulen = blen + sizeof "/chat/completions";
    c->url = malloc(ulen);
    if (!c->url)
        abort();
    snprintf(c->url, ulen, "%s/chat/completions", c->base_url);
    c->hdr_json = s_headers("Accept: application/json", auth);
    c->hdr_sse = s_headers("Accept: text/event-stream", auth);
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    uint64_t seed = cfg->seed ? cfg->seed
                              : so_rng_mix((uint64_t) so_wall_ms(), (uint64_t) getpid());
    so_rng_seed(&c->rng, seed);

    c->curl = curl_easy_init();
    if (!c->curl) {
        snprintf(err, errlen, "curl_easy_init failed");
        so_openai_destroy(&c);
        return NULL;
    }
    /* Options that hold for every call; per-call ones are set in s_attempt. */
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "skillorchestra/1 (so_openai)");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, s_on_progress);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    return c;
}

void so_openai_destroy(so_openai_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_openai_t *c = *self_p;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    s_headers_free(&c->hdr_json);
    s_headers_free(&c->hdr_sse);
    free(c->base_url);
    free(c->model);
    free(c->key_env);
    free(c->url);
    free(c);
    *self_p = NULL;
}

void so_openai_response_clear(so_openai_response_t *resp)
{
    if (!resp)
        return;
    free(resp->text);
    free(resp->finish_reason);
    memset(resp, 0, sizeof *resp);
}

/* The length of the valid UTF-8 sequence at s (strict: no overlongs, no
 * surrogates, <= U+10FFFF), 0 if invalid, -1 if cut short by the NUL. */
static int s_utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    int n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (int k = 1; k <= n; k++) {
        if (s[k] == '\0')
            return -1;
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff
        || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n + 1;
}

void so_openai_scrub_utf8(char *s)
{
    unsigned char *p = (unsigned char *) s;
    while (p && *p) {
        int n = s_utf8_seq(p);
        if (n < 0) {
            *p = '\0';
            return;
        }
        if (n == 0) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

/* ------------------------------------------------------------------ */
/* Retry-After                                                         */

long so_openai_parse_retry_after(const char *value, time_t now)
{
    if (!value)
        return -1;
    while (isspace((unsigned char) *value))
        value++;
    if (isdigit((unsigned char) *value)) {
        char *end;
        errno = 0;
        double s = strtod(value, &end);
        while (isspace((unsigned char) *end))
            end++;
        if (*end || errno || !isfinite(s) || s < 0)
            return -1;
        return s * 1000.0 >= (double) S_MAX_WAIT_MS ? S_MAX_WAIT_MS : (long) ceil(s * 1000.0);
    }
    time_t when = curl_getdate(value, NULL);
    if (when == (time_t) -1)
        return -1;
    if (when <= now)
        return 0;
    double ms = difftime(when, now) * 1000.0;
    return ms >= (double) S_MAX_WAIT_MS ? S_MAX_WAIT_MS : (long) ms;
}

/* ------------------------------------------------------------------ */
/* One transfer                                                        */

typedef struct {
    char *p;
    size_t len, cap;
} s_buf_t;

static void s_buf_add(s_buf_t *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void s_buf_free(s_buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

enum { S_MODE_UNKNOWN = 0, S_MODE_BODY, S_MODE_SSE };

/* State of one attempt, shared with the curl callbacks. */
typedef struct {
    so_openai_t *c;
    int stream;
    so_openai_delta_fn *on_delta;
    void *arg;
    const atomic_int *cancel;      /* NULL: so_stopping() */
    int mode;
    size_t received;
    int too_big;
    long retry_after_ms;           /* -1: the server sent none */
    s_buf_t body;                  /* whole body, or the unparsed SSE tail */
    s_buf_t event;                 /* SSE: data lines of the current event */
    int event_has_data;
    int chunks;                    /* SSE events seen */
    int done;                      /* "[DONE]" seen */
    s_buf_t text;                  /* assembled deltas */
    char *finish_reason;
    long prompt_tokens, completion_tokens;
    int has_usage;
    int delivered;                 /* a delta went to on_delta: no retry */
    int failed;                    /* a callback found an error: fcode, ferr */
    so_openai_code_t fcode;
    char ferr[300];
} s_xfer_t;

static void s_xfer_reset(s_xfer_t *x)
{
    x->mode = S_MODE_UNKNOWN;
    x->received = 0;
    x->too_big = 0;
    x->retry_after_ms = -1;
    x->body.len = 0;
    x->event.len = 0;
    x->event_has_data = 0;
    x->chunks = 0;
    x->done = 0;
    x->text.len = 0;
    free(x->finish_reason);
    x->finish_reason = NULL;
    x->prompt_tokens = x->completion_tokens = 0;
    x->has_usage = 0;
    x->failed = 0;
    x->ferr[0] = '\0';
}

static void s_xfer_free(s_xfer_t *x)
{
    s_buf_free(&x->body);
    s_buf_free(&x->event);
    s_buf_free(&x->text);
    free(x->finish_reason);
    x->finish_reason = NULL;
}

/* The caller's cancel flag, or the process stopping when there is none. */
static int s_cancelled(const atomic_int *cancel)
{
    return cancel ? atomic_load(cancel) != 0 : so_stopping();
}

static void s_fail(s_xfer_t *x, so_openai_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_fail(s_xfer_t *x, so_openai_code_t code, const char *fmt, ...)
{
    if (x->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->ferr, sizeof x->ferr, fmt, ap);
    va_end(ap);
    x->failed = 1;
    x->fcode = code;
}

/* A token count from usage: a non-negative number, else -1. */
static long s_count(const json_t *v)
{
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    return d >= 0 && d < 1e12 ? (long) d : -1;
}

/* Reads usage.prompt_tokens / completion_tokens when both are there. */
static void s_read_usage(s_xfer_t *x, const json_t *usage)
{
    if (!json_is_object(usage))
        return;
    long pt = s_count(json_object_get(usage, "prompt_tokens"));
    long ct = s_count(json_object_get(usage, "completion_tokens"));
    if (pt >= 0 && ct >= 0) {
        x->prompt_tokens = pt;
        x->completion_tokens = ct;
        x->has_usage = 1;
    }
}

static void s_set_finish(s_xfer_t *x, const json_t *fr)
{
    if (!json_is_string(fr))
        return;
    free(x->finish_reason);
    x->finish_reason = s_strdup(json_string_value(fr));
}

/* Copies at most 200 bytes of peer text into buf, control characters as
 * spaces, for error messages. */
static void s_excerpt(const char *text, size_t len, char *buf, size_t buflen)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < buflen && n < 200; i++)
        buf[n++] = (unsigned char) text[i] < 0x20 ? ' ' : text[i];
    buf[n] = '\0';
    so_openai_scrub_utf8(buf);         /* an error page may be Latin-1, or cut mid-character */
}

/* The provider's own words from an error body: {"error": {"message": ...}},
 * {"error": "..."} or {"message": ...}; else the body's first bytes. */
static void s_error_text(const char *body, size_t len, char *buf, size_t buflen)
{
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *msg = NULL;
    if (json_is_object(root)) {
        json_t *e = json_object_get(root, "error");
        if (json_is_object(e))
            msg = json_string_value(json_object_get(e, "message"));
        else if (json_is_string(e))
            msg = json_string_value(e);
        if (!msg)
            msg = json_string_value(json_object_get(root, "message"));
    }
    if (msg)
        s_excerpt(msg, strlen(msg), buf, buflen);
    else if (body && len)
        s_excerpt(body, len, buf, buflen);
    else
        snprintf(buf, buflen, "(empty body)");
    json_decref(root);
}

static void s_deliver(s_xfer_t *x, const char *delta, size_t len)
{
    if (!len)
        return;
    s_buf_add(&x->text, delta, len);
    if (x->on_delta) {
        x->delivered = 1;
        if (x->on_delta(delta, len, x->arg) != 0)
            s_fail(x, SO_OPENAI_UNAVAILABLE, "cancelled by the caller");
    }
}

/* One complete SSE event: "[DONE]" or a chat.completion.chunk. */
static void s_sse_event(s_xfer_t *x)
{
    const char *data = x->event.p ? x->event.p : "";
    size_t len = x->event.len;
    x->event_has_data = 0;
    x->event.len = 0;
    if (x->done || x->failed)
        return;
    x->chunks++;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        x->done = 1;
        return;
    }
    json_error_t je;
    json_t *root = json_loadb(data, len, 0, &je);
    if (!json_is_object(root)) {
        s_fail(x, SO_OPENAI_UPSTREAM, "stream chunk %d is not a JSON object (%s)", x->chunks,
               root ? "other JSON type" : je.text);
        json_decref(root);
        return;
    }
    json_t *err = json_object_get(root, "error");
    if (err) {
        char msg[240];
        char *dump = json_dumps(root, JSON_COMPACT);
        s_error_text(dump, dump ? strlen(dump) : 0, msg, sizeof msg);
        free(dump);
        s_fail(x, SO_OPENAI_UPSTREAM, "error in stream chunk %d: %s", x->chunks, msg);
        json_decref(root);
        return;
    }
    json_t *choices = json_object_get(root, "choices");
    json_t *ch0 = json_is_array(choices) ? json_array_get(choices, 0) : NULL;
    if (json_is_object(ch0)) {
        json_t *content = json_object_get(json_object_get(ch0, "delta"), "content");
        if (json_is_string(content))
            s_deliver(x, json_string_value(content), json_string_length(content));
        s_set_finish(x, json_object_get(ch0, "finish_reason"));
    }
    s_read_usage(x, json_object_get(root, "usage"));
    json_decref(root);
}

/* One SSE line (without its end of line).  Only "data:" matters here;
 * "event:", "id:", "retry:" and ": comments" are ignored. */
static void s_sse_line(s_xfer_t *x, const char *line, size_t len)
{
    if (len == 0) {
        if (x->event_has_data)
            s_sse_event(x);
        return;
    }
    if (len < 5 || memcmp(line, "data:", 5) != 0)
        return;
    line += 5;
    len -= 5;
    if (len && *line == ' ') {
        line++;
        len--;
    }
    if (x->event_has_data)
        s_buf_add(&x->event, "\n", 1);
    s_buf_add(&x->event, line, len);
    x->event_has_data = 1;
}

/* Splits what arrived into lines; keeps an unfinished line for later. */
static void s_sse_feed(s_xfer_t *x, const char *data, size_t n)
{
    s_buf_add(&x->body, data, n);
    size_t pos = 0;
    char *nl;
    while (!x->failed && (nl = memchr(x->body.p + pos, '\n', x->body.len - pos))) {
        size_t len = (size_t) (nl - (x->body.p + pos));
        s_sse_line(x, x->body.p + pos, len && nl[-1] == '\r' ? len - 1 : len);
        pos += len + 1;
    }
    memmove(x->body.p, x->body.p + pos, x->body.len - pos);
    x->body.len -= pos;
}

/* End of an SSE body: a last line without its newline, a last event
 * without its blank line. */
static void s_sse_finish(s_xfer_t *x)
{
    if (x->failed)
        return;
    if (x->body.len) {
        size_t len = x->body.len;
        if (x->body.p[len - 1] == '\r')
            len--;
        s_sse_line(x, x->body.p, len);
        x->body.len = 0;
    }
    if (x->event_has_data)
        s_sse_event(x);
}

static size_t s_on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    s_xfer_t *x = ud;
    size_t n = size * nmemb;
    if (n > x->c->cfg.max_response_bytes - x->received) {
        x->too_big = 1;
        return 0;      /* CURLE_WRITE_ERROR ends the transfer */
    }
    x->received += n;
    if (x->mode == S_MODE_UNKNOWN) {
        long status = 0;
        char *ctype = NULL;
        curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(x->c->curl, CURLINFO_CONTENT_TYPE, &ctype);
        int sse = ctype ? strncasecmp(ctype, "text/event-stream", 17) == 0
                        : (n >= 5 && memcmp(data, "data:", 5) == 0);
        x->mode = x->stream && status / 100 == 2 && sse ? S_MODE_SSE : S_MODE_BODY;
    }
    if (x->mode == S_MODE_BODY)
        s_buf_add(&x->body, data, n);
    else
        s_sse_feed(x, data, n);
    return x->failed ? 0 : n;
}

/* Keeps Retry-After (or the more precise retry-after-ms) of the last
 * response; a new status line forgets the previous one's. */
static size_t s_on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    s_xfer_t *x = ud;
    size_t n = size * nmemb;
    char line[256];
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        x->retry_after_ms = -1;
        return n;
    }
    if (n >= sizeof line)
        return n;
    memcpy(line, data, n);
    line[n] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    char *colon = strchr(line, ':');
    if (!colon)
        return n;
    *colon = '\0';
    const char *value = colon + 1;
    if (strcasecmp(line, "retry-after-ms") == 0) {
        char *end;
        double ms = strtod(value, &end);
        while (isspace((unsigned char) *end))
            end++;
        if (end != value && !*end && ms >= 0 && ms < (double) S_MAX_WAIT_MS)
            x->retry_after_ms = (long) ceil(ms);
    } else if (strcasecmp(line, "retry-after") == 0 && x->retry_after_ms < 0) {
        x->retry_after_ms = so_openai_parse_retry_after(value, time(NULL));
    }
    return n;
}

/* libcurl calls this often during a transfer (at least once a second when
 * idle): the only way to end a blocked attempt early. */
static int s_on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    const s_xfer_t *x = ud;
    (void) dt;
    (void) dn;
    (void) ut;
    (void) un;
    return s_cancelled(x->cancel);
}

/* The outcome of one attempt. */
typedef struct {
    so_openai_code_t code;
    int retryable;
    long status;
    char error[400];
} s_outcome_t;

static void s_outcome(s_outcome_t *o, so_openai_code_t code, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void s_outcome(s_outcome_t *o, so_openai_code_t code, int retryable, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->error, sizeof o->error, fmt, ap);
    va_end(ap);
    o->code = code;
    o->retryable = retryable;
}

/* A 200 reply that is not a stream: choices[0].message.content & co. */
static void s_parse_body(s_xfer_t *x, s_outcome_t *o)
{
    json_error_t je;
    json_t *root = json_loadb(x->body.p ? x->body.p : "", x->body.len, 0, &je);
    const char *problem = NULL;
    char detail[300];
    json_t *choices, *ch0, *msg, *content = NULL;
    if (!root) {
        snprintf(detail, sizeof detail, "reply is not JSON (%s at byte %d)", je.text,
                 je.position);
        problem = detail;
    } else if (!json_is_object(root))
        problem = "reply is not a JSON object";
    else if (json_object_get(root, "error") && !json_is_null(json_object_get(root, "error"))) {
        char msg_text[240];
        s_error_text(x->body.p, x->body.len, msg_text, sizeof msg_text);
        snprintf(detail, sizeof detail, "provider error in a %ld reply: %s", o->status, msg_text);
        problem = detail;
    } else if (!json_is_array(choices = json_object_get(root, "choices"))
               || json_array_size(choices) == 0)
        problem = "choices missing or empty";
    else if (!json_is_object(ch0 = json_array_get(choices, 0)))
        problem = "choices[0] is not an object";
    else if (!json_is_object(msg = json_object_get(ch0, "message")))
        problem = "choices[0].message missing";
    else if (!(content = json_object_get(msg, "content")))
        problem = "choices[0].message.content missing";
    else if (json_is_null(content)) {
        const char *fr = json_string_value(json_object_get(ch0, "finish_reason"));
        snprintf(detail, sizeof detail, "choices[0].message.content is null (finish_reason %s)",
                 fr ? fr : "missing");
        problem = detail;
    } else if (!json_is_string(content))
        problem = "choices[0].message.content is not a string";
    if (problem) {
        s_outcome(o, SO_OPENAI_UPSTREAM, 0, "%s", problem);
        json_decref(root);
        return;
    }
    s_deliver(x, json_string_value(content), json_string_length(content));
    s_set_finish(x, json_object_get(ch0, "finish_reason"));
    s_read_usage(x, json_object_get(root, "usage"));
    json_decref(root);
    if (x->failed)
        s_outcome(o, x->fcode, 0, "%s", x->ferr);
}

/* Whether an error body says the prompt is too long for the model:
 * OpenAI and vLLM ("context_length_exceeded", "maximum context length"),
 * llama.cpp ("exceed_context_size_error", "exceeds the available context
 * size", and in some versions a 500 "Context size has been exceeded"). */
static int s_is_context_error(const char *body, size_t len)
{
    static const char *marks[] = { "context_length_exceeded", "maximum context length",
                                   "exceed_context_size", "context size", "context length" };
    if (!body || !len)
        return 0;
    char low[4096];
    size_t n = len < sizeof low - 1 ? len : sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char) tolower((unsigned char) body[i]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
        if (strstr(low, marks[i]))
            return 1;
    return 0;
}

static so_openai_code_t s_status_code(long status)
{
    if (status == 429)
        return SO_OPENAI_RATE_LIMITED;
    if (status == 503)
        return SO_OPENAI_UNAVAILABLE;
    if (status == 408 || status == 504)
        return SO_OPENAI_TIMEOUT;
    if (status == 400 || status == 404 || status == 413 || status == 422)
        return SO_OPENAI_INVALID_REQUEST;
    return SO_OPENAI_UPSTREAM;
}

static int s_retryable_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static void s_attempt(so_openai_t *c, s_xfer_t *x, const char *body, size_t body_len,
                      long timeout_ms, int clipped, s_outcome_t *o)
{
    CURL *h = c->curl;
    memset(o, 0, sizeof *o);
    s_xfer_reset(x);
    c->curl_err[0] = '\0';
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->stream ? c->hdr_sse : c->hdr_json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     c->cfg.connect_timeout_ms < timeout_ms ? c->cfg.connect_timeout_ms
                                                            : timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &o->status);
    const char *why = c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc);

    if (x->too_big) {
        s_outcome(o, SO_OPENAI_UPSTREAM, 0, "reply larger than %zu bytes",
                  c->cfg.max_response_bytes);
        return;
    }
    if (x->failed) {
        s_outcome(o, x->fcode, 0, "%s", x->ferr);
        return;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        s_outcome(o, SO_OPENAI_UNAVAILABLE, 0, "%s",
                  x->cancel ? "cancelled" : "stopping: call abandoned");
        return;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        s_outcome(o, SO_OPENAI_TIMEOUT, !clipped, "no complete reply from %s within %ld ms%s",
                  c->url, timeout_ms, clipped ? " (the call's deadline)" : "");
        return;
    }
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
        s_outcome(o, SO_OPENAI_INVALID_REQUEST, 0, "bad URL %s: %s", c->url, why);
        return;
    }
    if (rc != CURLE_OK) {
        s_outcome(o, SO_OPENAI_UNAVAILABLE, s_retryable_curl(rc), "%s %s: %s",
                  o->status ? "transfer from" : "cannot reach", c->url, why);
        return;
    }
    if (o->status / 100 != 2) {
        char msg[240];
        s_error_text(x->body.p, x->body.len, msg, sizeof msg);
        so_openai_code_t code = s_status_code(o->status);
        /* A prompt too long stays too long: never retried, whatever the status. */
        if ((code == SO_OPENAI_INVALID_REQUEST || code == SO_OPENAI_UPSTREAM)
            && s_is_context_error(x->body.p, x->body.len))
            code = SO_OPENAI_CONTEXT_TOO_LONG;
        s_outcome(o, code,
                  code != SO_OPENAI_CONTEXT_TOO_LONG
                      && (o->status == 429 || (o->status >= 500 && o->status != 501)),
                  "HTTP %ld from %s: %s", o->status, c->url, msg);
        return;
    }
    if (x->mode == S_MODE_SSE) {
        s_sse_finish(x);
        if (x->failed)
            s_outcome(o, x->fcode, 0, "%s", x->ferr);
        else if (!x->done && !x->finish_reason)
            s_outcome(o, SO_OPENAI_UPSTREAM, !x->delivered,
                      "stream ended before [DONE] or a finish_reason (%d chunks)", x->chunks);
        return;
    }
    s_parse_body(x, o);
}

/* ------------------------------------------------------------------ */
/* The call                                                            */

/* ceil(characters / 4), counting UTF-8 code points. */
static long s_estimate_tokens(const char *s)
{
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *) s; p && *p; p++)
        chars += (*p & 0xC0) != 0x80;
    return (chars + 3) / 4;
}

/* The request's prompt estimate: ceil(chars / 4) per message. */
static long s_prompt_estimate(const so_openai_request_t *req)
{
    long pt = 0;
    for (size_t i = 0; i < req->n_messages; i++)
        pt += s_estimate_tokens(req->messages[i].content);
    return pt;
}

/* The request body; NULL with err when a message cannot be sent. */
static char *s_build_body(const so_openai_t *c, const so_openai_request_t *req, int stream,
                          size_t *len, char *err, size_t errlen)
{
    if (!req || !req->messages || req->n_messages == 0) {
        snprintf(err, errlen, "request has no messages");
        return NULL;
    }
    json_t *root = json_object(), *msgs = json_array();
    if (!root || !msgs)
        abort();
    const char *model = req->model && *req->model ? req->model : c->model;
    json_t *jmodel = json_string(model);
    if (!jmodel) {
        snprintf(err, errlen, "model name is not valid UTF-8");
        json_decref(root);
        json_decref(msgs);
        return NULL;
    }
    json_object_set_new(root, "model", jmodel);
    json_object_set_new(root, "messages", msgs);
    for (size_t i = 0; i < req->n_messages; i++) {
        const so_openai_msg_t *m = &req->messages[i];
        json_t *role = m->role && *m->role ? json_string(m->role) : NULL;
        json_t *content = m->content ? json_string(m->content) : NULL;
        if (!role || !content) {
            snprintf(err, errlen, "messages[%zu].%s is missing or not valid UTF-8", i,
                     role ? "content" : "role");
            json_decref(role);
            json_decref(content);
            json_decref(root);
            return NULL;
        }
        json_t *o = json_object();
        json_object_set_new(o, "role", role);
        json_object_set_new(o, "content", content);
        json_array_append_new(msgs, o);
    }
    long max_tokens = req->max_tokens > 0 ? req->max_tokens : c->cfg.max_tokens;
    if (max_tokens > 0)
        json_object_set_new(root, c->cfg.max_tokens_field, json_integer(max_tokens));
    if (req->temperature >= 0 && isfinite(req->temperature))
        json_object_set_new(root, "temperature", json_real(req->temperature));
    if (stream) {
        json_object_set_new(root, "stream", json_true());
        if (c->cfg.stream_usage)
            json_object_set_new(root, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    char *body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!body)
        abort();
    *len = strlen(body);
    return body;
}

/* Sleeps ms in short slices; -1 once the call is cancelled. */
static int s_sleep_ms(long ms, const atomic_int *cancel)
{
    int64_t end = so_now_ms() + ms;
    for (;;) {
        if (s_cancelled(cancel))
            return -1;
        int64_t left = end - so_now_ms();
        if (left <= 0)
            return 0;
        if (left > 50)
            left = 50;
        struct timespec ts = { 0, (long) left * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* Exponential backoff with "equal jitter": half the step fixed, half
 * random, so that retries of many clients spread out but never collapse
 * to zero. */
static long s_backoff_ms(so_openai_t *c, int retry)
{
    double step = (double) c->cfg.backoff_base_ms * ldexp(1.0, retry < 30 ? retry : 30);
    if (step > (double) c->cfg.backoff_max_ms)
        step = (double) c->cfg.backoff_max_ms;
    return (long) (step / 2 + so_rng_uniform(&c->rng) * step / 2);
}

static void s_finish_ok(so_openai_t *c, const so_openai_request_t *req, s_xfer_t *x,
                        so_openai_response_t *resp)
{
    s_buf_add(&x->text, "", 0);        /* an empty reply is "" */
    resp->text = x->text.p;
    memset(&x->text, 0, sizeof x->text);
    resp->finish_reason = x->finish_reason;
    x->finish_reason = NULL;
    if (x->has_usage) {
        resp->prompt_tokens = x->prompt_tokens;
        resp->completion_tokens = x->completion_tokens;
    } else {
        resp->prompt_tokens = s_prompt_estimate(req);
        resp->completion_tokens = s_estimate_tokens(resp->text);
        resp->usage_estimated = 1;
    }
    resp->cost_usd = ((double) resp->prompt_tokens * c->cfg.price_in
                      + (double) resp->completion_tokens * c->cfg.price_out) / 1e6;
}

/* The wait before the next attempt in ms, or -1 (with a note) when there
 * should be none. */
static long s_next_wait(so_openai_t *c, const s_xfer_t *x, int retry, int64_t deadline,
                        const char **note)
{
    long wait;
    if (x->retry_after_ms >= 0) {
        if (x->retry_after_ms > c->cfg.retry_after_max_ms) {
            /* Waiting less than asked would only earn another 429. */
            *note = " (the server's Retry-After exceeds retry_after_max_ms: no retry)";
            return -1;
        }
        wait = x->retry_after_ms;
    } else {
        wait = s_backoff_ms(c, retry);
    }
    if (so_now_ms() + wait >= deadline) {
        *note = " (no time left before the deadline to retry)";
        return -1;
    }
    return wait;
}

static int s_call(so_openai_t *c, const so_openai_request_t *req, int stream,
                  so_openai_delta_fn *on_delta, void *arg, so_openai_response_t *resp)
{
    memset(resp, 0, sizeof *resp);
    int64_t t0 = so_now_ms();
    size_t body_len = 0;
    char *body = s_build_body(c, req, stream, &body_len, resp->error, sizeof resp->error);
    if (!body) {
        resp->code = SO_OPENAI_INVALID_REQUEST;
        return -1;
    }
    if (c->cfg.context_tokens > 0) {
        long est = s_prompt_estimate(req);
        if (est >= c->cfg.context_tokens) {
            resp->code = SO_OPENAI_CONTEXT_TOO_LONG;
            snprintf(resp->error, sizeof resp->error,
                     "prompt of about %ld tokens (characters / 4) does not fit the context of "
                     "%ld tokens of model %s", est, c->cfg.context_tokens, c->model);
            free(body);
            return -1;
        }
    }
    long budget = c->cfg.deadline_ms;
    if (req->deadline_ms > 0 && req->deadline_ms < budget)
        budget = req->deadline_ms;
    int64_t deadline = t0 + budget;
    s_xfer_t x = { .c = c, .stream = stream, .on_delta = on_delta, .arg = arg,
                   .cancel = req->cancel };
    s_outcome_t o = { .code = SO_OPENAI_TIMEOUT };
    snprintf(o.error, sizeof o.error, "call deadline of %ld ms passed before the first attempt",
             budget);
    const char *note = "";
    for (int retry = 0;; retry++) {
        int64_t remaining = deadline - so_now_ms();
        if (remaining <= 0)
            break;
        int clipped = remaining < c->cfg.timeout_ms;
        s_attempt(c, &x, body, body_len, clipped ? (long) remaining : c->cfg.timeout_ms,
                  clipped, &o);
        resp->attempts++;
        resp->http_status = o.status;
        if (o.code == SO_OPENAI_OK || !o.retryable || x.delivered)
            break;
        if (retry >= c->cfg.max_retries) {
            note = resp->attempts > 1 ? " (retries exhausted)" : "";
            break;
        }
        long wait = s_next_wait(c, &x, retry, deadline, &note);
        if (wait < 0)
            break;
        so_info("openai_retry", "url=%s model=%s attempt=%d status=%ld wait_ms=%ld error=\"%s\"",
                c->url, c->model, resp->attempts, o.status, wait, o.error);
        if (s_sleep_ms(wait, req->cancel) < 0) {
            note = req->cancel ? " (cancelled: no retry)" : " (stopping: no retry)";
            break;
        }
    }
    resp->latency_ms = so_now_ms() - t0;
    if (o.code == SO_OPENAI_OK) {
        s_finish_ok(c, req, &x, resp);
    } else {
        resp->code = o.code;
        if (resp->attempts > 1)
            snprintf(resp->error, sizeof resp->error, "%s (after %d attempts)%s", o.error,
                     resp->attempts, note);
        else
            snprintf(resp->error, sizeof resp->error, "%s%s", o.error, note);
        so_openai_scrub_utf8(resp->error);
    }
    s_xfer_free(&x);
    free(body);
    return o.code == SO_OPENAI_OK ? 0 : -1;
}

int so_openai_chat(so_openai_t *c, const so_openai_request_t *req, so_openai_response_t *resp)
{
    return s_call(c, req, req && req->stream, NULL, NULL, resp);
}

int so_openai_chat_stream(so_openai_t *c, const so_openai_request_t *req,
                          so_openai_delta_fn *on_delta, void *arg, so_openai_response_t *resp)
{
    return s_call(c, req, 1, on_delta, arg, resp);
}
