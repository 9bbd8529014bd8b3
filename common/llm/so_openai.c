/*
 * so_openai — OpenAI-compatible chat client over libcurl (see so_openai.h).
 * This file: configuration, the client (one curl handle, its headers), the
 * request body, and the call with its retries, backoff and deadline.  One
 * attempt (the transfer, body and SSE parsing) is so_openai_xfer.c.
 */
#include "llm/so_openai_xfer.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_text.h"

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
#define S_MAX_TOKENS 100000000L

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

void so_openai_config_endpoint(so_openai_config_t *cfg, const char *base_url, const char *model,
                               const char *api_key_env, long timeout_ms)
{
    so_openai_config_defaults(cfg);
    cfg->base_url = base_url;
    cfg->model = model;
    cfg->api_key_env = api_key_env;
    cfg->timeout_ms = timeout_ms;
}

void so_openai_request_init(so_openai_request_t *req)
{
    memset(req, 0, sizeof *req);
    req->temperature = -1.0;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

int so_openai_config_load(const so_config_t *cfg, const char *agent_id, so_openai_config_t *out,
                          char *err, size_t errlen)
{
    char key[256];
    long l;
    so_openai_config_defaults(out);
#define S_KEY(name) (snprintf(key, sizeof key, "agent.%s.%s", agent_id, name), key)
    out->base_url = so_config_get(cfg, S_KEY("base_url"), NULL);
    out->model = so_config_get(cfg, S_KEY("model"), agent_id);
    out->api_key_env = so_config_get(cfg, S_KEY("api_key_env"), NULL);
    out->max_tokens_field = so_config_get(cfg, S_KEY("max_tokens_field"), "max_tokens");
    if (!out->base_url || !*out->base_url)
        return so_err(err, errlen, "config agent.%s.base_url is missing", agent_id);
    if (so_config_double(cfg, S_KEY("price_in"), 0, 0, 1e6, &out->price_in, err, errlen) < 0 ||
        so_config_double(cfg, S_KEY("price_out"), 0, 0, 1e6, &out->price_out, err, errlen) < 0 ||
        so_config_long(cfg, S_KEY("context"), 0, 0, S_MAX_TOKENS, &out->context_tokens, err,
                       errlen) < 0 ||
        so_config_long(cfg, S_KEY("max_tokens"), 0, 0, S_MAX_TOKENS, &out->max_tokens, err,
                       errlen) < 0 ||
        so_config_long(cfg, S_KEY("timeout_ms"), out->timeout_ms, 1, SO_WAIT_MAX_MS,
                       &out->timeout_ms, err, errlen) < 0 ||
        so_config_long(cfg, S_KEY("connect_timeout_ms"), out->connect_timeout_ms, 1,
                       SO_WAIT_MAX_MS, &out->connect_timeout_ms, err, errlen) < 0 ||
        so_config_long(cfg, S_KEY("deadline_ms"), 0, 0, SO_WAIT_MAX_MS, &out->deadline_ms, err,
                       errlen) < 0 ||
        so_config_long(cfg, S_KEY("backoff_base_ms"), out->backoff_base_ms, 0, SO_WAIT_MAX_MS,
                       &out->backoff_base_ms, err, errlen) < 0 ||
        so_config_long(cfg, S_KEY("backoff_max_ms"), out->backoff_max_ms, 0, SO_WAIT_MAX_MS,
                       &out->backoff_max_ms, err, errlen) < 0 ||
        so_config_long(cfg, S_KEY("retry_after_max_ms"), out->retry_after_max_ms, 0,
                       SO_WAIT_MAX_MS, &out->retry_after_max_ms, err, errlen) < 0)
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
            so_oom("curl header list");
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
    if (!cfg->base_url ||
        (strncmp(cfg->base_url, "http://", 7) != 0 && strncmp(cfg->base_url, "https://", 8) != 0))
        return so_err(err, errlen, "base_url must start with http:// or https:// (got '%.100s')",
                      cfg->base_url ? cfg->base_url : "");
    for (const char *p = cfg->base_url; *p; p++)
        if ((unsigned char) *p <= 0x20 || *p == 0x7f)
            return so_err(err, errlen, "base_url holds a blank or control character at byte %ld",
                          (long) (p - cfg->base_url));
    if (!cfg->model || !*cfg->model)
        return so_err(err, errlen, "model is missing");
    if (!(cfg->price_in >= 0 && isfinite(cfg->price_in)) ||
        !(cfg->price_out >= 0 && isfinite(cfg->price_out)))
        return so_err(err, errlen, "prices must be finite and >= 0");
    if (cfg->timeout_ms <= 0 || cfg->connect_timeout_ms <= 0 || cfg->deadline_ms < 0 ||
        cfg->timeout_ms > SO_WAIT_MAX_MS || cfg->connect_timeout_ms > SO_WAIT_MAX_MS ||
        cfg->deadline_ms > SO_WAIT_MAX_MS)
        return so_err(err, errlen,
                      "timeout_ms and connect_timeout_ms must be in [1, %ld], "
                      "deadline_ms in [0, %ld]",
                      SO_WAIT_MAX_MS, SO_WAIT_MAX_MS);
    if (cfg->max_retries < 0 || cfg->max_retries > S_MAX_RETRIES)
        return so_err(err, errlen, "max_retries must be in [0, %d]", S_MAX_RETRIES);
    if (cfg->backoff_base_ms < 0 || cfg->backoff_max_ms < cfg->backoff_base_ms ||
        cfg->backoff_max_ms > SO_WAIT_MAX_MS || cfg->retry_after_max_ms < 0 ||
        cfg->retry_after_max_ms > SO_WAIT_MAX_MS)
        return so_err(err, errlen,
                      "need 0 <= backoff_base_ms <= backoff_max_ms <= %ld and "
                      "retry_after_max_ms in [0, %ld]",
                      SO_WAIT_MAX_MS, SO_WAIT_MAX_MS);
    if (cfg->max_response_bytes == 0)
        return so_err(err, errlen, "max_response_bytes must be > 0");
    if (cfg->context_tokens < 0 || cfg->context_tokens > S_MAX_TOKENS || cfg->max_tokens < 0 ||
        cfg->max_tokens > S_MAX_TOKENS)
        return so_err(err, errlen, "context and max_tokens must be in [0, %ld]", S_MAX_TOKENS);
    if (cfg->max_tokens_field && strcmp(cfg->max_tokens_field, "max_tokens") != 0 &&
        strcmp(cfg->max_tokens_field, "max_completion_tokens") != 0)
        return so_err(err, errlen,
                      "max_tokens_field must be max_tokens or max_completion_tokens "
                      "(got '%.60s')",
                      cfg->max_tokens_field);
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
    if (!key || !*key)
        return so_err(err, errlen, "environment variable %s (the API key) is not set or empty",
                      env);
    for (const char *p = key; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return so_err(err, errlen, "environment variable %s holds a control character", env);
    size_t n = strlen("Authorization: Bearer ") + strlen(key) + 1;
    char *line = so_malloc(n);
    snprintf(line, n, "Authorization: Bearer %s", key);
    *line_p = line;
    return 0;
}

so_openai_t *so_openai_new(const so_openai_config_t *cfg, char *err, size_t errlen)
{
    char *auth = NULL;
    if (s_check_config(cfg, err, errlen) < 0 ||
        s_auth_line(cfg->api_key_env, &auth, err, errlen) < 0)
        return NULL;
    pthread_once(&s_curl_once, s_curl_global_init);
    if (s_curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init failed: %s", curl_easy_strerror(s_curl_init_rc));
        free(auth);
        return NULL;
    }
    so_openai_t *c = so_calloc(1, sizeof *c);
    c->cfg = *cfg;
    c->base_url = so_strdup(cfg->base_url);
    size_t blen = strlen(c->base_url);
    while (blen > 0 && c->base_url[blen - 1] == '/')
        c->base_url[--blen] = '\0';
    c->model = so_strdup(cfg->model);
    c->key_env = so_strdup(cfg->api_key_env ? cfg->api_key_env : "");
    c->cfg.base_url = c->base_url;
    c->cfg.model = c->model;
    c->cfg.api_key_env = c->key_env;
    /* One of two literals (checked above): no copy needed. */
    c->cfg.max_tokens_field = cfg->max_tokens_field &&
                                      strcmp(cfg->max_tokens_field, "max_completion_tokens") == 0
                                  ? "max_completion_tokens"
                                  : "max_tokens";
    if (c->cfg.deadline_ms == 0)
        c->cfg.deadline_ms = c->cfg.timeout_ms * (c->cfg.max_retries + 1) +
                             c->cfg.backoff_max_ms * c->cfg.max_retries;
    size_t ulen = blen + sizeof "/chat/completions";
    c->url = so_malloc(ulen);
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
    so_openai_xfer_setup(h);
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
        return s * 1000.0 >= (double) SO_WAIT_MAX_MS ? SO_WAIT_MAX_MS : (long) ceil(s * 1000.0);
    }
    time_t when = curl_getdate(value, NULL);
    if (when == (time_t) -1)
        return -1;
    if (when <= now)
        return 0;
    double ms = difftime(when, now) * 1000.0;
    return ms >= (double) SO_WAIT_MAX_MS ? SO_WAIT_MAX_MS : (long) ms;
}

/* ------------------------------------------------------------------ */
/* The call                                                            */

/* The request's prompt estimate: ceil(chars / 4) per message. */
static long s_prompt_estimate(const so_openai_request_t *req)
{
    long pt = 0;
    for (size_t i = 0; i < req->n_messages; i++)
        pt += so_tokens_estimate_text(req->messages[i].content);
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
        so_oom("request JSON");
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
        so_oom("request JSON");
    *len = strlen(body);
    return body;
}

/* Sleeps ms in short slices; -1 once the call is cancelled. */
static int s_sleep_ms(long ms, const atomic_int *cancel)
{
    int64_t end = so_now_ms() + ms;
    for (;;) {
        if (so_openai_cancelled(cancel))
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

static void s_finish_ok(so_openai_t *c, const so_openai_request_t *req, so_openai_xfer_t *x,
                        so_openai_response_t *resp)
{
    resp->text = so_buf_detach(&x->text, NULL); /* an empty reply is "" */
    resp->finish_reason = x->finish_reason;
    x->finish_reason = NULL;
    if (x->has_usage) {
        resp->prompt_tokens = x->prompt_tokens;
        resp->completion_tokens = x->completion_tokens;
    } else {
        resp->prompt_tokens = s_prompt_estimate(req);
        resp->completion_tokens = so_tokens_estimate_text(resp->text);
        resp->usage_estimated = 1;
    }
    resp->cost_usd = ((double) resp->prompt_tokens * c->cfg.price_in +
                      (double) resp->completion_tokens * c->cfg.price_out) /
                     1e6;
}

/* The wait before the next attempt in ms, or -1 (with a note) when there
 * should be none. */
static long s_next_wait(so_openai_t *c, const so_openai_xfer_t *x, int retry, int64_t deadline,
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
                     "%ld tokens of model %s",
                     est, c->cfg.context_tokens, c->model);
            free(body);
            return -1;
        }
    }
    long budget = c->cfg.deadline_ms;
    if (req->deadline_ms > 0 && req->deadline_ms < budget)
        budget = req->deadline_ms;
    int64_t deadline = t0 + budget;
    so_openai_xfer_t x = {
        .c = c, .stream = stream, .on_delta = on_delta, .arg = arg, .cancel = req->cancel
    };
    so_openai_outcome_t o = { .code = SO_OPENAI_TIMEOUT };
    snprintf(o.error, sizeof o.error, "call deadline of %ld ms passed before the first attempt",
             budget);
    const char *note = "";
    for (int retry = 0;; retry++) {
        int64_t remaining = deadline - so_now_ms();
        if (remaining <= 0)
            break;
        int clipped = remaining < c->cfg.timeout_ms;
        so_openai_attempt(c, &x, body, body_len, clipped ? (long) remaining : c->cfg.timeout_ms,
                          clipped ? budget : 0, &o);
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
        so_utf8_scrub(resp->error);
    }
    so_openai_xfer_free(&x);
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
