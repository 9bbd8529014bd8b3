/*
 * so_openai_xfer — one HTTP attempt of so_openai (private to so_openai.c and
 * so_openai_xfer.c; nothing else includes it): the client's state, the
 * state one attempt shares with the curl callbacks, and the attempt itself
 * (body or SSE parsing, status mapping).  so_openai.c owns the client and
 * the call with its retries.
 */
#ifndef SO_OPENAI_XFER_H
#define SO_OPENAI_XFER_H

#include "llm/so_openai.h"
#include "base/so_buf.h"
#include "base/so_rng.h"

#include <curl/curl.h>

/* The longest wait (timeout, backoff, Retry-After) accepted anywhere: a day. */
#define SO_WAIT_MAX_MS (24L * 3600 * 1000)

struct so_openai {
    so_openai_config_t cfg; /* strings point at the copies below */
    char *base_url;
    char *model;
    char *key_env;
    char *url;                   /* base_url + "/chat/completions" */
    struct curl_slist *hdr_json; /* request headers, key included: wiped on destroy */
    struct curl_slist *hdr_sse;
    CURL *curl;
    so_rng_t rng;
    char curl_err[CURL_ERROR_SIZE];
};

enum { SO_OPENAI_MODE_UNKNOWN = 0, SO_OPENAI_MODE_BODY, SO_OPENAI_MODE_SSE };

/* State of one attempt, shared with the curl callbacks. */
typedef struct {
    so_openai_t *c;
    int stream;
    so_openai_delta_fn *on_delta;
    void *arg;
    const atomic_int *cancel; /* NULL: so_stopping() */
    int mode;
    size_t received;
    int too_big;
    long retry_after_ms; /* -1: the server sent none */
    so_buf_t body;       /* whole body, or the unparsed SSE tail */
    so_buf_t event;      /* SSE: data lines of the current event */
    int event_has_data;
    int chunks;    /* SSE events seen */
    int done;      /* "[DONE]" seen */
    so_buf_t text; /* assembled deltas */
    char *finish_reason;
    long prompt_tokens, completion_tokens;
    int has_usage;
    int delivered; /* a delta went to on_delta: no retry */
    int failed;    /* a callback found an error: fcode, ferr */
    so_openai_code_t fcode;
    char ferr[300];
} so_openai_xfer_t;

/* The outcome of one attempt. */
typedef struct {
    so_openai_code_t code;
    int retryable;
    long status;
    char error[400];
} so_openai_outcome_t;

/* Sets the curl callbacks of a new client's handle (they get the attempt's
 * so_openai_xfer_t). */
void so_openai_xfer_setup(CURL *h);
/* One attempt of at most timeout_ms: the outcome in *o, what arrived in x.
 * deadline_ms > 0: the call's whole deadline cut this attempt short (its
 * timeout is then final, and the message names that deadline). */
void so_openai_attempt(so_openai_t *c, so_openai_xfer_t *x, const char *body, size_t body_len,
                       long timeout_ms, long deadline_ms, so_openai_outcome_t *o);
void so_openai_xfer_free(so_openai_xfer_t *x);
/* The caller's cancel flag, or the process stopping when there is none. */
int so_openai_cancelled(const atomic_int *cancel);

#endif
