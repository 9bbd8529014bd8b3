/*
 * so_server — the loop of a request/reply service (skill-inference, router):
 * one ROUTER socket, one thread, one timer.
 *
 *   - Each request is received whole with so_wire_recv (so its envelope is
 *     known) and handed to the service's handler, which answers on the same
 *     socket through the envelope.
 *   - A message that fails decoding or validation is answered with a
 *     TurnReply carrying INVALID_REQUEST and the reason (request_id
 *     "invalid": nothing in it can be trusted), logged and counted; the loop
 *     goes on.
 *   - The service's tick (e.g. so_hbcache_tick) runs from the same loop and
 *     says how long the loop may sleep; a stats line is logged every
 *     stats_ms: requests, errors, rejected, send failures, the request rate
 *     and p50/p99 handling time (µs, receive to reply queued) over the last
 *     4,096 requests, then the service's own counters.
 *   - SIGTERM/SIGINT (so_svc): no new poll; the requests already queued on
 *     the socket are answered (until it is empty, at most drain_ms), then
 *     so_server_run returns 0.
 *   - Deferred replies (optional): a handler that cannot answer at once
 *     (skill-inference waiting for an LLM on its own threads) returns
 *     SO_SERVER_DEFERRED, keeps what it needs of the request (the loop frees
 *     msg) and answers later from the deferred callback, which the loop
 *     calls after every wake-up (wake_fd readable, a timer due) and which
 *     reports each reply with so_server_finish.  At SIGTERM the loop also
 *     waits for deferred replies (within the same drain_ms), then asks the
 *     callback to answer the rest at once.  Services without it are
 *     unchanged.
 */
#ifndef SO_SERVER_H
#define SO_SERVER_H

#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <stddef.h>
#include <stdint.h>

/* What a handler did with a request. */
typedef enum {
    SO_SERVER_ANSWERED = 0,    /* the normal reply was queued */
    SO_SERVER_ERROR_REPLY = 1, /* an error TurnReply was queued */
    SO_SERVER_NO_REPLY = 2,    /* nothing could be sent (peer gone, HWM) */
    SO_SERVER_DEFERRED = 3     /* kept: answered later through .deferred */
} so_server_result_t;

/* The running loop, as the deferred callback sees it. */
typedef struct so_server so_server_t;

typedef struct {
    so_msg_type_t expect; /* the request type; others are rejected */
    /* Answers one valid request (msg: borrowed, freed by the loop) on sock
     * with env.  Must not block. */
    so_server_result_t (*handle)(void *arg, void *sock, const so_wire_envelope_t *env, void *msg);
    /* Periodic work; returns ms until it is next due.  May be NULL. */
    int (*tick)(void *arg);
    /* Appends " key=value..." counters to the stats line.  May be NULL. */
    void (*stats)(void *arg, char *buf, size_t len);
    void *arg;
    int stats_ms; /* 0 = no stats line */
    int drain_ms; /* bound on answering what is queued at SIGTERM */
    /* Deferred replies; NULL = the handler never returns SO_SERVER_DEFERRED.
     * Sends the deferred replies that are due (all = 1: every one still
     * pending, now: the loop is about to stop), each reported with
     * so_server_finish, and returns how many are still pending.  Must not
     * block.  The tick's timeout should cover the handler's own deadlines. */
    size_t (*deferred)(void *arg, so_server_t *srv, void *sock, int all);
    int wake_fd; /* with .deferred: polled; readable when replies
                                   may be ready (the callback drains it) */
} so_server_opts_t;

/* Runs until so_stopping(), then drains.  Returns 0, or -1 when polling the
 * socket failed for another reason than a signal (logged). */
int so_server_run(void *sock, const so_server_opts_t *o);

/* Accounts one deferred reply as the loop accounts synchronous ones
 * (requests, errors, no_reply, handling time since received_us, a
 * so_server_now_us() value taken when the request came in).  r must not be
 * SO_SERVER_DEFERRED. */
void so_server_finish(so_server_t *srv, so_server_result_t r, int64_t received_us);

/* Monotonic microseconds (for handlers that time their own stages). */
int64_t so_server_now_us(void);

/* The start-up and shut-down every request/reply service shares (router,
 * skill-inference): its config keys, its bound ROUTER socket, its loop.
 *
 *     so_server_svc_t svc;
 *     int rc = so_server_svc_config(&svc, cfg, "tcp://127.0.0.1:5558", err, sizeof err);
 *     ... the service's own settings and objects (rc = -1 and err on failure) ...
 *     int code = so_server_svc_start(&svc, rc == 0, err);   (logs config / bind_failed)
 *     if (code != 0)
 *         ... free, exit code ...
 *     so_info("started", "endpoint=%s ...", svc.endpoint, ...);
 *     int code = so_server_svc_run(&svc, &opts);   (closes the socket) */
typedef struct {
    const char *endpoint;   /* the `endpoint` key (borrowed from the config) */
    int stats_ms;           /* `stats_ms`, default 10000 */
    int drain_ms;           /* `drain_ms`, default 2000 */
    so_wire_sockopts_t zmq; /* the zmq.* keys (so_sock_opts) */
    void *ctx, *sock;       /* set by so_server_svc_bind */
} so_server_svc_t;

/* Reads endpoint (default_endpoint when unset), stats_ms, drain_ms and the
 * zmq.* options.  0, or -1 with err naming the key. */
int so_server_svc_config(so_server_svc_t *s, const so_config_t *cfg, const char *default_endpoint,
                         char *err, size_t errlen);
/* A new context and a ROUTER socket bound on s->endpoint.  0, or -1 (logged
 * as bind_failed, nothing left open). */
int so_server_svc_bind(so_server_svc_t *s);
/* The step between reading the config and serving: when ready (the service
 * read its config and built what it asks for) binds as so_server_svc_bind
 * and returns 0; else logs "config error=<err>" and returns the exit code 2.
 * A failed bind returns the exit code 1. */
int so_server_svc_start(so_server_svc_t *s, int ready, const char *err);
/* so_server_run on the bound socket with o (its stats_ms and drain_ms set
 * from s), then closes the socket and terminates the context (bounded by
 * the socket's linger).  Returns the exit code: 0, or 1 when the loop
 * failed. */
int so_server_svc_run(so_server_svc_t *s, so_server_opts_t *o);

#endif
