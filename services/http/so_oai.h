/*
 * so_oai — the OpenAI-compatible JSON of the HTTP front door, translated to
 * and from the wire messages (proto/skillorchestra.proto).  Pure functions
 * over jansson and protobuf-c: no sockets, no Redis, no threads.
 *
 *   POST /v1/chat/completions body  → so_oai_request_t (a TurnRequest)
 *   TurnReply                       → chat.completion JSON, or SSE chunks
 *   ErrorCode / local failure       → HTTP status + {"error": {...}}
 *   POST /v1/feedback body          → so_oai_feedback_t
 *
 * Everything a client sent is checked; a problem is an so_oai_error_t
 * (status 400 and a message naming the field, e.g. "messages[2].role:
 * expected a string").  docs/HTTP.md lists the fields and the mapping.
 *
 * Files: so_oai.c (errors, limits), so_oai_parse.c (requests, feedback),
 * so_oai_reply.c (completion JSON, SSE, error JSON).  Allocation follows
 * so_alloc (out of memory aborts); a NULL string result means jansson
 * could not build the JSON.
 */
#ifndef SO_OAI_H
#define SO_OAI_H

#include "wire/so_wire.h"

#include <stddef.h>
#include <stdint.h>

/* An error as OpenAI shapes it: {"error": {"message", "type", "param",
 * "code"}} with an HTTP status.  type and code point to static strings. */
typedef struct {
    int status;
    const char *type; /* "invalid_request_error", "server_error", ... */
    const char *code; /* "invalid_json", "no_eligible_agent", ... (NULL = null) */
    char param[96];   /* "messages[2].role", or "" (null) */
    char message[1024];
} so_oai_error_t;

/* Sets every field of e; returns -1 (so parsers can "return so_oai_fail(...)"). */
int so_oai_fail(so_oai_error_t *e, int status, const char *type, const char *code,
                const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The error JSON (malloc'd, caller frees with free(3)). */
char *so_oai_error_json(const so_oai_error_t *e);
/* The HTTP status, type and code of a gateway ErrorCode.  pinned: the client
 * pinned a handbook version (UNKNOWN_HANDBOOK is then 404, else 503). */
void so_oai_error_from_code(so_pb_error_code_t code, const char *message, int pinned,
                            so_oai_error_t *out);
/* "INVALID_REQUEST", ... ("UNKNOWN" outside the enum).  Static storage. */
const char *so_oai_code_name(so_pb_error_code_t code);

/* Limits a request is held to (so-http's config). */
typedef struct {
    size_t max_messages;        /* 1..SO_WIRE_MAX_MESSAGES */
    unsigned max_turn_index;    /* turn_index above it: 400 */
    long max_prompt_tokens;     /* estimated as prompt bytes / 4; 0 = no limit */
    long max_completion_tokens; /* max_tokens / max_completion_tokens above it: 400 */
} so_oai_limits_t;

void so_oai_limits_default(so_oai_limits_t *l);

/* Looks up a request header (case-insensitive); NULL when absent. */
typedef const char *(so_oai_header_fn) (void *arg, const char *name);

/* A parsed chat completion request.  turn is a complete TurnRequest except
 * request_id (set it before encoding); every pointer in it is owned here. */
typedef struct {
    so_pb_turn_request_t turn;
    char *model;        /* as asked, e.g. "auto" */
    int stream;         /* "stream": true */
    int include_usage;  /* "stream_options": {"include_usage": true} */
    int pinned_version; /* the client pinned handbook_version */
    long est_prompt_tokens;
    /* storage */
    so_pb_chat_message_t *msg_store;
    so_pb_chat_message_t **msg_ptrs;
} so_oai_request_t;

/* Parses a chat completion body.  Extension fields come from the body's
 * "skillorchestra" object and from X-SO-* headers (header may be NULL); the
 * body wins where both say something.  Returns the request (free with
 * so_oai_request_destroy) or NULL with *err filled (400, or 404 never: the
 * model is resolved by the caller). */
so_oai_request_t *so_oai_parse_request(const char *body, size_t len, so_oai_header_fn *header,
                                       void *header_arg, const so_oai_limits_t *lim,
                                       so_oai_error_t *err);
void so_oai_request_destroy(so_oai_request_t **self_p);
/* The request id (copied). */
void so_oai_request_set_id(so_oai_request_t *r, const char *id);
/* The routing profile (copied; the router may ignore it). */
void so_oai_request_set_profile(so_oai_request_t *r, const char *profile);
/* Adds agents to exclude_agents (copied; duplicates skipped, at most
 * SO_WIRE_MAX_AGENTS in all).  0, or -1 when the list would be too long. */
int so_oai_request_exclude(so_oai_request_t *r, const char *const *agents, size_t n);

/* The chat.completion JSON of a successful reply (malloc'd; free(3)).
 * model: the chosen agent's model name (NULL = its id); created: Unix s. */
char *so_oai_completion_json(const so_pb_turn_reply_t *rep, const char *completion_id,
                             int64_t created, const char *model);
/* The same answer as a server-sent event stream of chat.completion.chunk
 * events ending in "data: [DONE]" (malloc'd; free(3)).  The gateway returns
 * whole answers, so the stream is the whole text in one content chunk. */
char *so_oai_completion_sse(const so_pb_turn_reply_t *rep, const char *completion_id,
                            int64_t created, const char *model, int include_usage);
/* An incremental stream in pieces (each malloc'd, NUL-terminated; NULL =
 * the JSON could not be built): the role chunk with the decision, one content chunk per
 * delta, the end (finish_reason "stop", usage if asked, "data: [DONE]"),
 * or an error event then "data: [DONE]" when the turn fails mid-stream. */
char *so_oai_sse_head(const so_pb_turn_reply_t *rep, const char *completion_id, int64_t created,
                      const char *model);
char *so_oai_sse_delta(const so_pb_turn_reply_t *rep, const char *completion_id, int64_t created,
                       const char *model, const char *text);
char *so_oai_sse_tail(const so_pb_turn_reply_t *rep, const char *completion_id, int64_t created,
                      const char *model, int include_usage);
char *so_oai_sse_error(const so_oai_error_t *e);
/* "s1=0.620,s2=0.300": the decision's top skills for a header. */
void so_oai_top_skills_header(const so_pb_turn_reply_t *rep, char *buf, size_t len);

/* POST /v1/feedback {"episode_id": "...", "success": true | "score": 0.7}. */
typedef struct {
    char episode_id[129];
    int has_success; /* 1: success, else score */
    int success;
    double score; /* [0, 1] */
} so_oai_feedback_t;

int so_oai_parse_feedback(const char *body, size_t len, so_oai_feedback_t *out,
                          so_oai_error_t *err);

#endif
