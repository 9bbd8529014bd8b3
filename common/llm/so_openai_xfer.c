/*
 * so_openai_xfer — one attempt of an so_openai call (see so_openai_xfer.h):
 * the request posted with libcurl, the reply taken in by the curl
 * callbacks (a whole JSON body, or server-sent events passed on delta by
 * delta), Retry-After kept, and the outcome: a code, whether a retry may
 * help, and a message.  Everything a provider sent is bounded and checked.
 */
#include "llm/so_openai_xfer.h"
#include "base/so_text.h"
#include "base/so_alloc.h"
#include "base/so_buf.h"

#include <jansson.h>

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static size_t s_on_write(char *data, size_t size, size_t nmemb, void *ud);
static size_t s_on_header(char *data, size_t size, size_t nmemb, void *ud);
static int s_on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un);

void so_openai_xfer_setup(CURL *h)
{
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, s_on_progress);
}

static void s_xfer_reset(so_openai_xfer_t *x)
{
    x->mode = SO_OPENAI_MODE_UNKNOWN;
    x->received = 0;
    x->too_big = 0;
    x->retry_after_ms = -1;
    so_buf_reset(&x->body);
    so_buf_reset(&x->event);
    x->event_has_data = 0;
    x->chunks = 0;
    x->done = 0;
    so_buf_reset(&x->text);
    free(x->finish_reason);
    x->finish_reason = NULL;
    x->prompt_tokens = x->completion_tokens = 0;
    x->has_usage = 0;
    x->failed = 0;
    x->ferr[0] = '\0';
}

void so_openai_xfer_free(so_openai_xfer_t *x)
{
    so_buf_free(&x->body);
    so_buf_free(&x->event);
    so_buf_free(&x->text);
    free(x->finish_reason);
    x->finish_reason = NULL;
}

int so_openai_cancelled(const atomic_int *cancel)
{
    return cancel ? atomic_load(cancel) != 0 : so_stopping();
}

static void s_fail(so_openai_xfer_t *x, so_openai_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_fail(so_openai_xfer_t *x, so_openai_code_t code, const char *fmt, ...)
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
static void s_read_usage(so_openai_xfer_t *x, const json_t *usage)
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

static void s_set_finish(so_openai_xfer_t *x, const json_t *fr)
{
    if (!json_is_string(fr))
        return;
    free(x->finish_reason);
    x->finish_reason = so_strdup(json_string_value(fr));
}

/* Copies at most 200 bytes of peer text into buf, control characters as
 * spaces, for error messages. */
static void s_excerpt(const char *text, size_t len, char *buf, size_t buflen)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < buflen && n < 200; i++)
        buf[n++] = (unsigned char) text[i] < 0x20 ? ' ' : text[i];
    buf[n] = '\0';
    so_utf8_scrub(buf); /* an error page may be Latin-1, or cut mid-character */
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

static void s_deliver(so_openai_xfer_t *x, const char *delta, size_t len)
{
    if (!len)
        return;
    so_buf_append(&x->text, delta, len);
    if (x->on_delta) {
        x->delivered = 1;
        if (x->on_delta(delta, len, x->arg) != 0)
            s_fail(x, SO_OPENAI_UNAVAILABLE, "cancelled by the caller");
    }
}

/* One complete SSE event's data: "[DONE]" or a chat.completion.chunk. */
static void s_sse_chunk(so_openai_xfer_t *x, const char *data, size_t len)
{
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

/* The event whose data lines are in x->event is complete. */
static void s_sse_event(so_openai_xfer_t *x)
{
    x->event_has_data = 0;
    s_sse_chunk(x, so_buf_str(&x->event), x->event.len);
    so_buf_reset(&x->event);
}

/* One SSE line (without its end of line).  Only "data:" matters here;
 * "event:", "id:", "retry:" and ": comments" are ignored. */
static void s_sse_line(so_openai_xfer_t *x, const char *line, size_t len)
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
        so_buf_append(&x->event, "\n", 1);
    so_buf_append(&x->event, line, len);
    x->event_has_data = 1;
}

/* Splits what arrived into lines; keeps an unfinished line for later. */
static void s_sse_feed(so_openai_xfer_t *x, const char *data, size_t n)
{
    so_buf_append(&x->body, data, n);
    size_t pos = 0;
    char *nl;
    while (!x->failed && (nl = memchr(x->body.data + pos, '\n', x->body.len - pos))) {
        size_t len = (size_t) (nl - (x->body.data + pos));
        s_sse_line(x, x->body.data + pos, len && nl[-1] == '\r' ? len - 1 : len);
        pos += len + 1;
    }
    memmove(x->body.data, x->body.data + pos, x->body.len - pos);
    so_buf_truncate(&x->body, x->body.len - pos);
}

/* End of an SSE body: a last line without its newline, a last event
 * without its blank line. */
static void s_sse_finish(so_openai_xfer_t *x)
{
    if (x->failed)
        return;
    if (x->body.len) {
        size_t len = x->body.len;
        if (x->body.data[len - 1] == '\r')
            len--;
        s_sse_line(x, x->body.data, len);
        so_buf_reset(&x->body);
    }
    if (x->event_has_data)
        s_sse_event(x);
}

static size_t s_on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    so_openai_xfer_t *x = ud;
    size_t n = size * nmemb;
    if (n > x->c->cfg.max_response_bytes - x->received) {
        x->too_big = 1;
        return 0; /* CURLE_WRITE_ERROR ends the transfer */
    }
    x->received += n;
    if (x->mode == SO_OPENAI_MODE_UNKNOWN) {
        long status = 0;
        char *ctype = NULL;
        curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(x->c->curl, CURLINFO_CONTENT_TYPE, &ctype);
        int sse = ctype ? strncasecmp(ctype, "text/event-stream", 17) == 0
                        : (n >= 5 && memcmp(data, "data:", 5) == 0);
        x->mode = x->stream && status / 100 == 2 && sse ? SO_OPENAI_MODE_SSE
                                                        : SO_OPENAI_MODE_BODY;
    }
    if (x->mode == SO_OPENAI_MODE_BODY)
        so_buf_append(&x->body, data, n);
    else
        s_sse_feed(x, data, n);
    return x->failed ? 0 : n;
}

/* Keeps Retry-After (or the more precise retry-after-ms) of the last
 * response; a new status line forgets the previous one's. */
static size_t s_on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    so_openai_xfer_t *x = ud;
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
        if (end != value && !*end && ms >= 0 && ms < (double) SO_WAIT_MAX_MS)
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
    const so_openai_xfer_t *x = ud;
    (void) dt;
    (void) dn;
    (void) ut;
    (void) un;
    return so_openai_cancelled(x->cancel);
}

static void s_outcome(so_openai_outcome_t *o, so_openai_code_t code, int retryable,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void s_outcome(so_openai_outcome_t *o, so_openai_code_t code, int retryable,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->error, sizeof o->error, fmt, ap);
    va_end(ap);
    o->code = code;
    o->retryable = retryable;
}

/* A 200 reply that is not a stream: choices[0].message.content & co. */
static void s_parse_body(so_openai_xfer_t *x, so_openai_outcome_t *o)
{
    json_error_t je;
    json_t *root = json_loadb(so_buf_str(&x->body), x->body.len, 0, &je);
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
        s_error_text(x->body.data, x->body.len, msg_text, sizeof msg_text);
        snprintf(detail, sizeof detail, "provider error in a %ld reply: %s", o->status, msg_text);
        problem = detail;
    } else if (!json_is_array(choices = json_object_get(root, "choices")) ||
               json_array_size(choices) == 0)
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
    case CURLE_SSL_CONNECT_ERROR: return 1;
    default: return 0;
    }
}

void so_openai_attempt(so_openai_t *c, so_openai_xfer_t *x, const char *body, size_t body_len,
                       long timeout_ms, long deadline_ms, so_openai_outcome_t *o)
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
        s_outcome(o, SO_OPENAI_TIMEOUT, deadline_ms <= 0,
                  "no complete reply from %s within %ld ms%s", c->url,
                  deadline_ms > 0 ? deadline_ms : timeout_ms,
                  deadline_ms > 0 ? " (the call's deadline)" : "");
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
        s_error_text(x->body.data, x->body.len, msg, sizeof msg);
        so_openai_code_t code = s_status_code(o->status);
        /* A prompt too long stays too long: never retried, whatever the status. */
        if ((code == SO_OPENAI_INVALID_REQUEST || code == SO_OPENAI_UPSTREAM) &&
            s_is_context_error(x->body.data, x->body.len))
            code = SO_OPENAI_CONTEXT_TOO_LONG;
        s_outcome(o, code,
                  code != SO_OPENAI_CONTEXT_TOO_LONG &&
                      (o->status == 429 || (o->status >= 500 && o->status != 501)),
                  "HTTP %ld from %s: %s", o->status, c->url, msg);
        return;
    }
    if (x->mode == SO_OPENAI_MODE_SSE) {
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
