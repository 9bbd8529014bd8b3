/*
 * so_server — a request/reply service loop (see so_server.h).
 */
#include "wire/so_server.h"
#include "base/so_alloc.h"
#include "base/so_pctl.h"
#include "wire/so_sock.h"
#include "base/so_svc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_LAT_RING 4096
#define S_BATCH 256 /* requests handled per wake-up before the timer runs */

struct so_server {
    const so_server_opts_t *o;
    void *sock;
    uint64_t requests, errors, rejected, no_reply;
    uint64_t at_last_stats;
    int64_t last_stats_ms;
    uint32_t lat_us[S_LAT_RING];
    uint64_t n_lat;
};
typedef struct so_server s_loop_t;

int64_t so_server_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_stats_line(s_loop_t *l)
{
    uint32_t p50, p99;
    so_pctl_u32(l->lat_us, l->n_lat, S_LAT_RING, &p50, &p99);
    int64_t now = so_now_ms();
    double secs = (double) (now - l->last_stats_ms) / 1000.0;
    double rate = secs > 0 ? (double) (l->requests - l->at_last_stats) / secs : 0;
    char extra[1024] = "";
    if (l->o->stats)
        l->o->stats(l->o->arg, extra, sizeof extra);
    so_info("stats",
            "requests=%llu errors=%llu rejected=%llu no_reply=%llu rate=%.1f/s "
            "p50_us=%u p99_us=%u%s",
            (unsigned long long) l->requests, (unsigned long long) l->errors,
            (unsigned long long) l->rejected, (unsigned long long) l->no_reply, rate, p50, p99,
            extra);
    l->at_last_stats = l->requests;
    l->last_stats_ms = now;
}

/* Receives and answers one message.  Returns 1 if one was handled, 0 when
 * none was waiting (or a signal interrupted), -1 on a socket error. */
static int s_one(s_loop_t *l)
{
    so_wire_envelope_t env;
    void *msg = NULL;
    char err[512];
    so_wire_envelope_reset(&env);
    if (so_wire_recv(l->sock, &env, l->o->expect, NULL, &msg, ZMQ_DONTWAIT, err, sizeof err) !=
        0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        if (errno != EPROTO) {
            so_error("recv_failed", "error=\"%s\"", err);
            return -1;
        }
        l->rejected++;
        so_warn("request_rejected", "error=\"%s\" rejected_total=%llu", err,
                (unsigned long long) l->rejected);
        char serr[256];
        if (env.n == 0) {
            l->no_reply++; /* no envelope: nobody to answer */
        } else if (so_sock_send_error(l->sock, &env, NULL, NULL,
                                      SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_INVALID_REQUEST,
                                      err, serr, sizeof serr) != 0) {
            l->no_reply++;
            so_warn("reply_failed", "request_id=invalid error=\"%s\"", serr);
        }
        return 1;
    }
    int64_t t0 = so_server_now_us();
    so_server_result_t r = l->o->handle(l->o->arg, l->sock, &env, msg);
    so_wire_free(l->o->expect, msg);
    if (r != SO_SERVER_DEFERRED)
        so_server_finish(l, r, t0);
    return 1;
}

void so_server_finish(so_server_t *l, so_server_result_t r, int64_t received_us)
{
    int64_t us = so_server_now_us() - received_us;
    l->requests++;
    if (r == SO_SERVER_ERROR_REPLY)
        l->errors++;
    else if (r == SO_SERVER_NO_REPLY)
        l->no_reply++;
    if (us < 0)
        us = 0;
    l->lat_us[l->n_lat++ % S_LAT_RING] = us > UINT32_MAX ? UINT32_MAX : (uint32_t) us;
}

/* Waits (at most timeout_ms) for the socket (with_sock) or the deferred
 * wake fd.  Returns 0, or -1 with errno. */
static int s_poll(s_loop_t *l, int with_sock, long timeout_ms)
{
    zmq_pollitem_t items[2];
    int n = 0;
    if (with_sock)
        items[n++] = (zmq_pollitem_t){ l->sock, 0, ZMQ_POLLIN, 0 };
    if (l->o->deferred && l->o->wake_fd >= 0)
        items[n++] = (zmq_pollitem_t){ NULL, l->o->wake_fd, ZMQ_POLLIN, 0 };
    if (n == 0) {
        struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
        return nanosleep(&ts, NULL);
    }
    return zmq_poll(items, n, timeout_ms);
}

int so_server_run(void *sock, const so_server_opts_t *o)
{
    s_loop_t *l = so_calloc(1, sizeof *l);
    l->o = o;
    l->sock = sock;
    l->last_stats_ms = so_now_ms();
    int rc = 0;
    while (!so_stopping()) {
        int64_t now = so_now_ms();
        long timeout = o->tick ? o->tick(o->arg) : 1000;
        if (o->stats_ms > 0) {
            int64_t to_stats = l->last_stats_ms + o->stats_ms - now;
            if (to_stats <= 0) {
                s_stats_line(l);
                to_stats = o->stats_ms;
            }
            if (to_stats < timeout)
                timeout = (long) to_stats;
        }
        if (timeout < 0)
            timeout = 0;
        if (s_poll(l, 1, timeout) < 0) {
            if (errno == EINTR)
                continue;
            so_error("poll_failed", "error=\"%s\"", zmq_strerror(errno));
            rc = -1;
            break;
        }
        if (o->deferred)
            o->deferred(o->arg, l, sock, 0);
        /* A bounded batch, so the timer runs even under a flood. */
        for (int i = 0; i < S_BATCH && !so_stopping(); i++) {
            int k = s_one(l);
            if (k < 0)
                rc = -1;
            if (k <= 0)
                break;
        }
        if (rc < 0)
            break;
    }

    /* Stopping: answer what is already queued, then go. */
    int64_t until = so_now_ms() + o->drain_ms;
    uint64_t before = l->requests + l->rejected;
    so_info("draining", "drain_ms=%d", o->drain_ms);
    while (rc == 0 && so_now_ms() < until && s_one(l) > 0)
        ;
    if (o->deferred) {
        /* Replies still owed: wait for them within the same bound, then
         * have the handler answer the rest at once. */
        size_t left;
        while ((left = o->deferred(o->arg, l, sock, 0)) > 0 && so_now_ms() < until) {
            long wait = (long) (until - so_now_ms());
            if (s_poll(l, 0, wait < 20 ? wait : 20) < 0 && errno != EINTR)
                break;
        }
        if (left > 0)
            so_info("drain_deferred", "answered_at_once=%zu", left);
        o->deferred(o->arg, l, sock, 1);
    }
    so_info("stopped", "answered_while_draining=%llu",
            (unsigned long long) (l->requests + l->rejected - before));
    if (o->stats_ms > 0)
        s_stats_line(l);
    free(l);
    return rc;
}

int so_server_svc_config(so_server_svc_t *s, const so_config_t *cfg, const char *default_endpoint,
                         char *err, size_t errlen)
{
    long stats_ms = 10000, drain_ms = 2000;
    *s = (so_server_svc_t){ 0 };
    if (so_config_long(cfg, "stats_ms", stats_ms, 0, 86400000, &stats_ms, err, errlen) != 0 ||
        so_config_long(cfg, "drain_ms", drain_ms, 0, 600000, &drain_ms, err, errlen) != 0 ||
        so_sock_opts(cfg, &s->zmq, err, errlen) != 0)
        return -1;
    s->stats_ms = (int) stats_ms;
    s->drain_ms = (int) drain_ms;
    s->endpoint = so_config_get(cfg, "endpoint", default_endpoint);
    return 0;
}

int so_server_svc_bind(so_server_svc_t *s)
{
    char err[512];
    s->ctx = zmq_ctx_new();
    s->sock = so_sock_new(s->ctx, ZMQ_ROUTER, &s->zmq, s->endpoint, 1, 0, err, sizeof err);
    if (!s->sock) {
        so_error("bind_failed", "endpoint=%s error=\"%s\"", s->endpoint, err);
        zmq_ctx_term(s->ctx);
        s->ctx = NULL;
        return -1;
    }
    return 0;
}

int so_server_svc_start(so_server_svc_t *s, int ready, const char *err)
{
    if (!ready) {
        so_error("config", "error=\"%s\"", err);
        return 2;
    }
    return so_server_svc_bind(s) == 0 ? 0 : 1;
}

int so_server_svc_run(so_server_svc_t *s, so_server_opts_t *o)
{
    o->stats_ms = s->stats_ms;
    o->drain_ms = s->drain_ms;
    int code = so_server_run(s->sock, o) == 0 ? 0 : 1;
    so_sock_close(&s->sock);
    zmq_ctx_term(s->ctx); /* bounded: the socket's linger is set */
    s->ctx = NULL;
    return code;
}
