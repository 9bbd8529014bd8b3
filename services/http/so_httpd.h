/*
 * so_httpd — the HTTP server of so-http (libmicrohttpd, a pool of threads
 * with internal polling): routes, API keys, limits, the OpenAI-compatible
 * endpoints, health, readiness and metrics.  docs/HTTP.md is the reference.
 *
 *   POST /v1/chat/completions   a turn through the gateway (so_gwclient)
 *   POST /v1/feedback           finishes an episode in Redis
 *   GET  /v1/handbook           a handbook's JSON from Redis
 *   GET  /v1/models             "auto", routing profiles, the agents
 *   GET  /healthz /readyz /metrics
 *
 * A chat request never blocks an HTTP thread: once its body is in, the
 * connection is suspended (MHD_suspend_connection) until the gateway
 * client calls back, so a few threads carry many requests in flight.
 * Feedback and handbook requests use Redis from the HTTP thread (bounded by
 * redis.timeout_ms per command).
 *
 * It borrows the gateway client, the Redis watch and the counters; they
 * must outlive it.
 */
#ifndef SO_HTTPD_H
#define SO_HTTPD_H

#include "so_counters.h"
#include "so_gwclient.h"
#include "so_oai.h"
#include "so_watch.h"

#include <stddef.h>

typedef struct so_httpd so_httpd_t;

typedef struct {
    const char *listen; /* "127.0.0.1:8080", "[::1]:8080", ":8080" */
    unsigned threads;   /* HTTP threads */
    unsigned max_connections;
    unsigned idle_timeout_s; /* an idle keep-alive connection is closed */
    size_t max_body_bytes;   /* larger bodies: 413 */
    so_oai_limits_t limits;
    int timeout_ms;               /* a chat request's deadline: 504 */
    long max_inflight;            /* chat requests at the gateway at once: beyond, 503 */
    int feedback_wait_ms;         /* feedback for a turn answered here just now: wait for
                                       the gateway's recorder to store it */
    const char *api_keys;         /* comma-separated; "" = no authentication */
    const char *routing_profiles; /* comma-separated names accepted as "model" */
    const char *redis_url, *redis_prefix;
    int redis_timeout_ms;
    int ready_max_age_ms; /* Redis must have answered within this */
} so_httpd_opts_t;

/* Starts listening.  NULL with err (bad address, port taken, ...). */
so_httpd_t *so_httpd_new(const so_httpd_opts_t *o, so_gwclient_t *gw, so_watch_t *watch,
                         so_counters_t *counters, char *err, size_t errlen);
/* The port listened on (useful with port 0). */
unsigned so_httpd_port(so_httpd_t *h);
/* From now on new requests get 503 (and Connection: close); /readyz says
 * not ready.  Requests already in go on. */
void so_httpd_drain(so_httpd_t *h);
/* Requests begun and not yet finished (headers in, answer not yet sent). */
long so_httpd_active(so_httpd_t *h);
/* Chat requests waiting for the gateway. */
long so_httpd_inflight(so_httpd_t *h);
/* Logs a stats line. */
void so_httpd_log_stats(so_httpd_t *h);
/* Stops the server (every connection closed) and frees it.  Calls still
 * pending must have been ended first (so_gwclient_stop): a suspended
 * connection cannot be closed.  NULL-safe; NULLs the pointer. */
void so_httpd_destroy(so_httpd_t **self_p);

#endif
