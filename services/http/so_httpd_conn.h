/*
 * so_httpd_conn — what the modules of the HTTP server share (private to
 * so_httpd.c, so_reply.c, so_admin.c and so_chat.c; nothing else includes
 * it): the server's state, one request's state, and the functions one
 * module calls in another.
 *
 *   so_httpd.c   set-up, routes, method/API key/size checks, the
 *                libmicrohttpd callbacks (dispatch)
 *   so_reply.c   answers: a body with headers, JSON, OpenAI-shaped errors
 *   so_admin.c   /v1/models, /v1/handbook, /v1/feedback, /healthz,
 *                /readyz, /metrics, and the pool of Redis connections
 *   so_chat.c    /v1/chat/completions: submit, whole answer, stream
 */
#ifndef SO_HTTPD_CONN_H
#define SO_HTTPD_CONN_H

#include "so_httpd.h"
#include "base/so_buf.h"
#include "store/so_store.h"
#include "wire/so_wire.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define SO_HTTPD_RECENT 1024 /* episodes answered here, for feedback_wait_ms */
#define SO_HTTPD_ID_MAX (SO_WIRE_MAX_ID + 1)

typedef struct {
    char id[SO_HTTPD_ID_MAX];
    int64_t at;
} so_httpd_recent_t;

struct so_httpd {
    so_httpd_opts_t o;
    struct MHD_Daemon *d;
    unsigned port;
    so_gwclient_t *gw;
    so_watch_t *watch;
    so_counters_t *counters;
    char **keys, **profiles;
    size_t n_keys, n_profiles;
    char id_prefix[32];
    atomic_ullong next_id;
    atomic_int draining;
    atomic_long inflight, active;
    /* Redis connections for feedback and handbook requests (one per user). */
    pthread_mutex_t mu;
    so_store_t **stores;
    size_t n_stores, cap_stores;
    so_httpd_recent_t recent[SO_HTTPD_RECENT]; /* under mu */
    size_t recent_next;
    char *redis_url, *redis_prefix;
};

/* One request, from its first callback to s_on_completed. */
typedef struct {
    so_httpd_t *h;
    struct MHD_Connection *conn;
    so_route_id_t route;
    const char *method;
    struct timespec started;
    char *body;
    size_t len, cap, seen;
    int checked, too_large, answered, status;
    so_oai_request_t *req;
    so_gwcall_t *call;
    int counted_inflight;
    so_oai_error_t fail; /* a chat request that could not be submitted */
    int has_fail;
    char rid[64];
    char episode[SO_HTTPD_ID_MAX], agent[SO_HTTPD_ID_MAX];
    char model_id[SO_HTTPD_ID_MAX]; /* GET /v1/models/{id}: the id ("" for the list) */
    const char *error;              /* error code for the log line */
    size_t bytes_out;
    /* Suspension and the incremental stream (stream: true).  The gateway
     * client's thread appends SSE bytes and resumes; the connection's
     * thread sends them and suspends while there are none. */
    pthread_mutex_t smu;
    int suspended; /* under smu */
    int ended;     /* under smu: the call has ended */
    int streaming; /* under smu: a partial reply arrived */
    int tail_done; /* under smu: the end of the stream is in out */
    so_buf_t out;  /* under smu: SSE bytes not yet sent (from out_off) */
    size_t out_off, sent_text;
    char s_id[96], s_model[SO_HTTPD_ID_MAX], s_version[SO_HTTPD_ID_MAX], s_turn[16], s_top[1024];
    int64_t s_created;
} so_hconn_t;

/* A request header (case-insensitive); NULL when absent.  conn is the
 * MHD_Connection (the so_oai_header_fn shape). */
const char *so_httpd_header(void *conn, const char *name);

/* ---- so_reply.c: answers ----------------------------------------------- */

/* Queues body (malloc'd, taken; NULL = it could not be built: a 500) as the
 * answer, with header name/value pairs ending in NULL (empty values are
 * left out). */
enum MHD_Result so_reply_answer(so_hconn_t *c, int status, const char *type, char *body,
                                size_t len, ...);
/* root (taken; NULL = a 500) as compact JSON. */
enum MHD_Result so_reply_json(so_hconn_t *c, int status, json_t *root);
/* e in OpenAI's error shape (Retry-After on 429/503, WWW-Authenticate on 401). */
enum MHD_Result so_reply_error(so_hconn_t *c, const so_oai_error_t *e);
/* Counts the refusal why and answers it as an error. */
enum MHD_Result so_reply_reject(so_hconn_t *c, so_reject_t why, int status, const char *type,
                                const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* 503: Redis is not reachable (err says why). */
enum MHD_Result so_reply_redis_down(so_hconn_t *c, const char *err);

/* ---- so_admin.c: everything but chat completions ------------------------ */

typedef struct {
    int ready;
    so_watch_status_t redis;
    so_gwclient_stats_t gw;
    int64_t now;
} so_httpd_ready_t;

void so_admin_readiness(so_httpd_t *h, so_httpd_ready_t *r);
enum MHD_Result so_admin_healthz(so_hconn_t *c);
enum MHD_Result so_admin_readyz(so_hconn_t *c);
enum MHD_Result so_admin_metrics(so_hconn_t *c);
enum MHD_Result so_admin_models(so_hconn_t *c);
enum MHD_Result so_admin_handbook(so_hconn_t *c);
enum MHD_Result so_admin_feedback(so_hconn_t *c);
/* This process answered a turn of episode just now (for feedback_wait_ms). */
void so_admin_recent_add(so_httpd_t *h, const char *episode);

/* ---- so_chat.c: POST /v1/chat/completions ------------------------------- */

/* The body is in: parse, resolve the model, suspend, submit. */
enum MHD_Result so_chat_start(so_hconn_t *c);
/* The first partial reply arrived: the 200 and the stream's headers now. */
enum MHD_Result so_chat_stream_start(so_hconn_t *c);
/* The call ended (or could not start): the whole answer. */
enum MHD_Result so_chat_finish(so_hconn_t *c);

#endif
