/*
 * so_openai — a client for one OpenAI-compatible chat endpoint
 * (POST {base_url}/chat/completions: OpenAI, vLLM, SGLang, llama.cpp server,
 * Ollama) over libcurl.
 *
 * A client is one agent's endpoint: base URL, model, API key (read from a
 * named environment variable when the client is created, never logged),
 * prices, timeouts and the retry policy.  It owns one CURL easy handle, so
 * consecutive calls reuse the connection (and TLS session).  A client is NOT
 * thread-safe: give each thread its own.
 *
 * A call retries 429, 5xx and transport failures (connection refused or
 * reset, timeouts) with exponential backoff and seeded jitter, honouring
 * Retry-After / retry-after-ms, within one deadline for the whole call; a
 * server that asks for a longer wait than retry_after_max_ms, or than the
 * deadline leaves, gets no retry (the caller is better off elsewhere).
 * Other 4xx answers are final.  A streamed call is retried only while
 * nothing has been passed to its callback yet.
 *
 * A reply without "usage" (some servers, some streams) is accepted: the
 * tokens are estimated (characters / 4) and resp.usage_estimated says so.
 *
 * Errors carry the project's ErrorCode numbers (proto/skillorchestra.proto),
 * so a worker can copy resp.code into an AgentResult unchanged.
 */
#ifndef SO_OPENAI_H
#define SO_OPENAI_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/so_svc.h"

/* The subset of ErrorCode a call can end with; values equal the proto's. */
typedef enum {
    SO_OPENAI_OK = 0,
    SO_OPENAI_INVALID_REQUEST = 1,  /* bad request (ours, or a 400/404/413/422) */
    SO_OPENAI_TIMEOUT = 2,          /* attempt timeout or call deadline passed */
    SO_OPENAI_UPSTREAM = 3,         /* provider error, 5xx, 401/403, unusable reply */
    SO_OPENAI_RATE_LIMITED = 4,     /* 429 after the retries */
    SO_OPENAI_CONTEXT_TOO_LONG = 7, /* prompt over the context limit (ours or the
                                        provider's "context_length_exceeded") */
    SO_OPENAI_UNAVAILABLE = 8       /* cannot connect, 503, stopping, cancelled */
} so_openai_code_t;

/* "TIMEOUT", "UPSTREAM", ... (static storage); "NONE" for SO_OPENAI_OK. */
const char *so_openai_code_name(so_openai_code_t code);

typedef struct {
    const char *base_url;         /* e.g. "https://api.openai.com/v1"; required */
    const char *model;            /* sent as "model"; required */
    const char *api_key_env;      /* environment variable holding the key; NULL or ""
                                   = no Authorization header (local servers) */
    double price_in;              /* USD per 1M prompt tokens */
    double price_out;             /* USD per 1M completion tokens */
    long context_tokens;          /* the model's context; 0 = unknown.  A prompt whose
                                   estimate (chars / 4) reaches it is refused
                                   locally with CONTEXT_TOO_LONG */
    long max_tokens;              /* completion cap sent when the request has none;
                                   0 = none sent */
    const char *max_tokens_field; /* "max_tokens" (default; vLLM, llama.cpp, Ollama)
                                   or "max_completion_tokens" (newer OpenAI models) */
    long timeout_ms;              /* one attempt, connect to last byte (default 60000) */
    long connect_timeout_ms;      /* TCP + TLS connect (default 5000) */
    long deadline_ms;             /* whole call across retries and waits; 0 = derived:
                                   timeout_ms x (max_retries + 1) + backoff_max_ms x
                                   max_retries */
    int max_retries;              /* retries after the first attempt (default 2) */
    long backoff_base_ms;         /* first backoff (default 500), doubled per retry */
    long backoff_max_ms;          /* backoff cap (default 8000) */
    long retry_after_max_ms;      /* longest Retry-After waited for; a server asking
                                   for more gets no retry (default 30000) */
    size_t max_response_bytes;    /* reply size cap (default 8 MiB) */
    int stream_usage;             /* streaming: ask for usage in the last chunk
                                   (stream_options.include_usage; default 1) */
    uint64_t seed;                /* backoff jitter; 0 = seeded from time and pid */
} so_openai_config_t;

/* Fills the defaults above (strings NULL, prices 0). */
void so_openai_config_defaults(so_openai_config_t *cfg);
/* The defaults, then an endpoint: base_url, model, api_key_env (strings
 * borrowed) and timeout_ms of one attempt.  Callers tune the rest. */
void so_openai_config_endpoint(so_openai_config_t *cfg, const char *base_url, const char *model,
                               const char *api_key_env, long timeout_ms);

/* Reads agent.<id>.* keys (base_url, model, api_key_env, price_in, price_out,
 * context, max_tokens, max_tokens_field, timeout_ms, connect_timeout_ms,
 * deadline_ms, max_retries, backoff_base_ms, backoff_max_ms,
 * retry_after_max_ms, max_response_bytes, stream_usage, seed) over the
 * defaults; model defaults to the agent id.  The strings are borrowed from
 * cfg (valid while it lives).  -1 with err naming the key. */
int so_openai_config_load(const so_config_t *cfg, const char *agent_id, so_openai_config_t *out,
                          char *err, size_t errlen);

typedef struct so_openai so_openai_t;

/* Copies cfg (and the key from the environment).  NULL with err when a
 * field is missing or out of range or the key variable is unset/empty. */
so_openai_t *so_openai_new(const so_openai_config_t *cfg, char *err, size_t errlen);
/* Closes the connection, wipes the key, NULLs the pointer; NULL-safe. */
void so_openai_destroy(so_openai_t **self_p);

typedef struct {
    const char *role;    /* "system", "user", "assistant", "tool" */
    const char *content; /* UTF-8 */
} so_openai_msg_t;

typedef struct {
    const so_openai_msg_t *messages;
    size_t n_messages;        /* >= 1 */
    const char *model;        /* NULL or "": the client's model */
    long max_tokens;          /* <= 0: the client's max_tokens (if any) */
    double temperature;       /* < 0 or NaN: not sent (0 is a valid value) */
    int stream;               /* so_openai_chat: use SSE and assemble the text */
    long deadline_ms;         /* > 0: this call's deadline if shorter than the
                                   client's deadline_ms */
    const atomic_int *cancel; /* non-NULL: the call ends (UNAVAILABLE,
                                   "cancelled") soon after *cancel becomes non-zero.
                                   NULL: it ends that way when so_stopping(). */
} so_openai_request_t;

/* Fills { NULL, 0, NULL, 0, -1.0, 0, 0, NULL }. */
void so_openai_request_init(so_openai_request_t *req);

typedef struct {
    char *text;          /* the reply (choices[0].message.content, or the
                                   assembled deltas); owned, freed by _clear */
    char *finish_reason; /* owned; NULL if the server sent none */
    long prompt_tokens;
    long completion_tokens;
    int usage_estimated;   /* 1: no usage in the reply, tokens = ceil(chars/4) */
    double cost_usd;       /* tokens x prices / 1e6 */
    int64_t latency_ms;    /* whole call, retries and waits included */
    long http_status;      /* last attempt's status; 0 = no HTTP answer */
    int attempts;          /* HTTP attempts made (1 + retries) */
    so_openai_code_t code; /* SO_OPENAI_OK on success */
    char error[512];       /* readable; "" on success */
} so_openai_response_t;

/* Frees text and finish_reason and zeroes *resp; NULL-safe. */
void so_openai_response_clear(so_openai_response_t *resp);

/* One chat completion.  Zeroes *resp first (call _clear before reusing
 * one).  0 on success; -1 with resp->code and resp->error on failure (then
 * resp->text is NULL).  Either way call so_openai_response_clear. */
int so_openai_chat(so_openai_t *c, const so_openai_request_t *req, so_openai_response_t *resp);

/* Streaming callback: one content delta (not NUL-terminated, len > 0, valid
 * UTF-8), in order, called on the calling thread.  Return 0 to go on,
 * non-zero to cancel the call (UNAVAILABLE, "cancelled by the caller"). */
typedef int so_openai_delta_fn(const char *delta, size_t len, void *arg);

/* Like so_openai_chat with "stream": true (whatever req->stream says):
 * on_delta gets each delta as it arrives; resp->text is the whole text.
 * A server that ignores the flag and answers with one JSON reply is
 * accepted: on_delta then gets the whole text once. */
int so_openai_chat_stream(so_openai_t *c, const so_openai_request_t *req,
                          so_openai_delta_fn *on_delta, void *arg, so_openai_response_t *resp);


/* The wait a Retry-After value asks for, in ms: delta-seconds ("2", "1.5")
 * or an HTTP date relative to now.  A date in the past is 0.  -1 when the
 * value is neither.  (Exposed for tests.) */
long so_openai_parse_retry_after(const char *value, time_t now);

#endif
