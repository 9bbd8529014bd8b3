/*
 * so_worker — see so_worker.h.
 */
#include "so_worker.h"
#include "so_sock.h"
#include "so_svc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Skillorchestra__V1__AgentCall s_call_t;
typedef Skillorchestra__V1__AgentResult s_result_t;

/* A result held back by the artificial delay. */
typedef struct {
    int64_t due;
    zmq_msg_t hdr, body;
} s_held_t;

typedef struct {
    const so_worker_opts_t *o;
    so_backend_t *backend;
    void *ctx, *sock;
    s_held_t *held;               /* [capacity] */
    size_t n_held;
    int64_t gateway_expires;      /* presume the gateway dead after this */
    int64_t next_heartbeat;
    int64_t next_stats;
    int reconnect_ms;
    int draining;
    /* counters */
    uint64_t calls, errors, rejected, send_failed, reconnects, over_capacity;
    uint64_t rejected_logged;
    int64_t rejected_log_at;
} s_worker_t;

void so_worker_opts_default(so_worker_opts_t *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->worker_id, sizeof o->worker_id, "worker-%s", so_instance());
    o->endpoint = "tcp://127.0.0.1:5556";
    o->capacity = 8;
    o->heartbeat_ms = 500;
    o->liveness = 3;
    o->reconnect_max_ms = 4000;
    o->drain_ms = 5000;
    o->stats_ms = 10000;
    so_wire_sockopts_defaults(&o->sockopts);
}

static int s_connect(s_worker_t *w)
{
    char err[256];
    so_sock_close(&w->sock);
    w->sock = so_sock_new(w->ctx, ZMQ_DEALER, &w->o->sockopts, w->o->endpoint, 0, 0, err,
                          sizeof err);
    if (!w->sock) {
        so_error("connect_failed", "endpoint=%s error=\"%s\"", w->o->endpoint, err);
        return -1;
    }
    if (so_ctl_send(w->sock, NULL, SO_CTL_READY, w->o->capacity, w->o->worker_id) != 0)
        so_warn("ready_failed", "error=\"%s\"", zmq_strerror(errno));
    int64_t now = so_now_ms();
    w->gateway_expires = now + (int64_t) w->o->heartbeat_ms * w->o->liveness;
    w->next_heartbeat = now + w->o->heartbeat_ms;
    return 0;
}

/* One rejected frame: counted always, logged at most once a second. */
static void s_rejected(s_worker_t *w, const char *what)
{
    w->rejected++;
    int64_t now = so_now_ms();
    if (now - w->rejected_log_at >= 1000) {
        so_warn("rejected", "error=\"%s\" rejected_total=%llu", what,
                (unsigned long long) w->rejected);
        w->rejected_log_at = now;
    }
}

static void s_build_result(const so_worker_opts_t *o, const s_call_t *call, const so_exec_t *ex,
                           double latency_s, s_result_t *res, Skillorchestra__V1__Error *e)
{
    res->request_id = call->request_id;
    res->agent_id = call->agent_id;
    res->text = ex->text ? ex->text : "";
    res->prompt_tokens = ex->prompt_tokens;
    res->completion_tokens = ex->completion_tokens;
    res->cost_usd = isfinite(ex->cost_usd) && ex->cost_usd > 0 ? ex->cost_usd : 0;
    res->latency_s = latency_s > 0 ? latency_s : 0;
    res->worker_id = (char *) o->worker_id;
    if (ex->has_score) {
        res->replay_score_opt_case = SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE;
        res->replay_score = ex->score;
    }
    if (ex->error_code != SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_NONE) {
        e->code = ex->error_code;
        e->message = (char *) ex->error;
        res->error = e;
    }
}

static void s_send_error(s_worker_t *w, const s_call_t *call,
                         Skillorchestra__V1__ErrorCode code, const char *msg)
{
    so_exec_t ex;
    memset(&ex, 0, sizeof ex);
    ex.error_code = code;
    snprintf(ex.error, sizeof ex.error, "%s", msg);
    s_result_t res = SKILLORCHESTRA__V1__AGENT_RESULT__INIT;
    Skillorchestra__V1__Error e = SKILLORCHESTRA__V1__ERROR__INIT;
    s_build_result(w->o, call, &ex, 0, &res, &e);
    char err[256];
    if (so_wire_send(w->sock, NULL, SO_MSG_AGENT_RESULT, &res, ZMQ_DONTWAIT, err, sizeof err) != 0)
        w->send_failed++;
    w->errors++;
}

static void s_on_call(s_worker_t *w, const s_call_t *call)
{
    if (w->n_held >= w->o->capacity) {
        /* The gateway sent more than our capacity: answer now, do not queue. */
        w->over_capacity++;
        s_send_error(w, call, SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE,
                     "worker over capacity");
        return;
    }
    int64_t t0 = so_now_ms();
    so_exec_t ex;
    so_backend_execute(w->backend, call, &ex);
    double latency = (double) (so_now_ms() - t0 + w->o->delay_ms) / 1000.0;
    s_result_t res = SKILLORCHESTRA__V1__AGENT_RESULT__INIT;
    Skillorchestra__V1__Error e = SKILLORCHESTRA__V1__ERROR__INIT;
    s_build_result(w->o, call, &ex, latency, &res, &e);
    w->calls++;
    if (ex.error_code != SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_NONE)
        w->errors++;
    char err[256];
    if (w->o->delay_ms > 0) {
        s_held_t *h = &w->held[w->n_held];
        if (so_wire_pack_zmq(SO_MSG_AGENT_RESULT, &res, &h->hdr, &h->body, err, sizeof err) == 0) {
            h->due = t0 + w->o->delay_ms;
            w->n_held++;
        } else {
            so_error("encode_failed", "request_id=%s error=\"%s\"", call->request_id, err);
        }
    } else if (so_wire_send(w->sock, NULL, SO_MSG_AGENT_RESULT, &res, ZMQ_DONTWAIT, err,
                            sizeof err) != 0) {
        w->send_failed++;
        so_warn("send_failed", "request_id=%s error=\"%s\"", call->request_id, err);
    }
    so_exec_clear(&ex);
}

/* Sends the held results that are due (all of them when force). */
static void s_flush_held(s_worker_t *w, int64_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < w->n_held; i++) {
        s_held_t *h = &w->held[i];
        if (h->due > now) {
            if (keep != i)
                w->held[keep] = *h;
            keep++;
            continue;
        }
        if (zmq_msg_send(&h->hdr, w->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_msg_send(&h->body, w->sock, ZMQ_DONTWAIT) < 0)
            w->send_failed++;
        zmq_msg_close(&h->hdr);
        zmq_msg_close(&h->body);
    }
    w->n_held = keep;
}

static void s_on_message(s_worker_t *w)
{
    char err[512];
    so_ctl_t ctl;
    so_msg_type_t type = SO_MSG_ANY;
    void *msg = NULL;
    int rc = so_sock_recv_mixed(w->sock, 0, NULL, &ctl, &type, &msg, err, sizeof err);
    if (rc < 0) {
        if (errno == EPROTO)
            s_rejected(w, err);
        return;
    }
    int64_t now = so_now_ms();
    w->gateway_expires = now + (int64_t) w->o->heartbeat_ms * w->o->liveness;
    w->reconnect_ms = w->o->heartbeat_ms;
    if (rc == 1) {
        if (ctl.cmd == SO_CTL_DISCONNECT && !w->draining) {
            /* The gateway does not know us (it restarted, or dropped us). */
            so_info("reregister", "endpoint=%s", w->o->endpoint);
            so_ctl_send(w->sock, NULL, SO_CTL_READY, w->o->capacity, w->o->worker_id);
        } else if (ctl.cmd == SO_CTL_READY) {
            s_rejected(w, "READY from the gateway");
        }
        return;
    }
    if (type != SO_MSG_AGENT_CALL) {
        snprintf(err, sizeof err, "expected AgentCall, got %s", so_wire_type_name(type));
        s_rejected(w, err);
    } else {
        s_on_call(w, msg);
    }
    so_wire_free(type, msg);
}

static void s_timers(s_worker_t *w, int64_t now)
{
    s_flush_held(w, now);
    if (now >= w->next_heartbeat) {
        so_ctl_send(w->sock, NULL, SO_CTL_HEARTBEAT, 0, NULL);
        w->next_heartbeat = now + w->o->heartbeat_ms;
    }
    if (!w->draining && now >= w->gateway_expires) {
        w->reconnects++;
        so_warn("gateway_silent", "endpoint=%s silent_ms=%d reconnect_in_ms=%d", w->o->endpoint,
                w->o->heartbeat_ms * w->o->liveness, w->reconnect_ms);
        /* Back off: the gateway may be restarting. */
        zmq_poll(NULL, 0, w->reconnect_ms);
        w->reconnect_ms = w->reconnect_ms * 2 > w->o->reconnect_max_ms ? w->o->reconnect_max_ms
                                                                      : w->reconnect_ms * 2;
        s_connect(w);
    }
    if (w->o->stats_ms > 0 && now >= w->next_stats) {
        so_info("stats", "calls=%llu errors=%llu held=%zu rejected=%llu send_failed=%llu "
                "reconnects=%llu over_capacity=%llu",
                (unsigned long long) w->calls, (unsigned long long) w->errors, w->n_held,
                (unsigned long long) w->rejected, (unsigned long long) w->send_failed,
                (unsigned long long) w->reconnects, (unsigned long long) w->over_capacity);
        w->next_stats = now + w->o->stats_ms;
    }
}

static int64_t s_next_timer(const s_worker_t *w)
{
    int64_t t = w->next_heartbeat;
    if (!w->draining && w->gateway_expires < t)
        t = w->gateway_expires;
    for (size_t i = 0; i < w->n_held; i++)
        if (w->held[i].due < t)
            t = w->held[i].due;
    return t;
}

int so_worker_run(const so_worker_opts_t *o, so_backend_t *backend)
{
    s_worker_t w;
    memset(&w, 0, sizeof w);
    w.o = o;
    w.backend = backend;
    w.reconnect_ms = o->heartbeat_ms;
    w.held = calloc(o->capacity, sizeof *w.held);
    w.ctx = zmq_ctx_new();
    if (!w.held || !w.ctx || s_connect(&w) != 0) {
        free(w.held);
        if (w.ctx)
            zmq_ctx_term(w.ctx);
        return 1;
    }
    so_info("start", "worker_id=%s endpoint=%s backend=%s capacity=%u delay_ms=%d heartbeat_ms=%d",
            o->worker_id, o->endpoint, backend->name, o->capacity, o->delay_ms, o->heartbeat_ms);
    w.next_stats = so_now_ms() + o->stats_ms;

    int64_t drain_until = 0;
    for (;;) {
        int64_t now = so_now_ms();
        if (so_stopping() && !w.draining) {
            /* Tell the gateway to send nothing more; what we hold still goes out. */
            w.draining = 1;
            drain_until = now + o->drain_ms;
            so_ctl_send(w.sock, NULL, SO_CTL_DISCONNECT, 0, NULL);
            so_info("draining", "held=%zu drain_ms=%d", w.n_held, o->drain_ms);
        }
        if (w.draining && (w.n_held == 0 || now >= drain_until))
            break;
        int64_t next = s_next_timer(&w);
        long timeout = next > now ? (long) (next - now) : 0;
        zmq_pollitem_t item = {w.sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, timeout);
        if (rc < 0 && errno != EINTR) {
            so_error("poll_failed", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
        if (rc > 0 && (item.revents & ZMQ_POLLIN))
            for (int i = 0; i < 256; i++) {
                int ev = 0;
                size_t len = sizeof ev;
                if (zmq_getsockopt(w.sock, ZMQ_EVENTS, &ev, &len) != 0 || !(ev & ZMQ_POLLIN))
                    break;
                s_on_message(&w);
            }
        s_timers(&w, so_now_ms());
    }
    /* Anything still held past the drain deadline is dropped: the gateway
     * re-dispatches it once our heartbeats stop. */
    for (size_t i = 0; i < w.n_held; i++) {
        zmq_msg_close(&w.held[i].hdr);
        zmq_msg_close(&w.held[i].body);
    }
    so_info("stop", "calls=%llu errors=%llu dropped_held=%zu rejected=%llu",
            (unsigned long long) w.calls, (unsigned long long) w.errors, w.n_held,
            (unsigned long long) w.rejected);
    free(w.held);
    so_sock_close(&w.sock);
    zmq_ctx_term(w.ctx);
    return 0;
}
