/*
 * so_gwclient — see so_gwclient.h.
 *
 * Who touches what:
 *   submitters   a new call (then only through so_gwcall_result/destroy),
 *                the submit queue under mu, the wake pipe's write end;
 *   the thread   the DEALER, the monitor, the sent map, the wait list.
 * A call's end is one atomic exchange on its state (PENDING → DONE, or
 * PENDING → ABANDONED by so_gwcall_destroy), so exactly one side frees it
 * and the callback never runs for an abandoned call.
 */
#include "so_gwclient.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_svc.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


enum { S_PENDING = 0, S_DONE = 1, S_ABANDONED = 2 };

#define S_TICK_MS 20 /* timer resolution of the thread */
#define S_MAX_FDS 64 /* connections tracked by the monitor */

struct so_gwcall {
    so_gwcall_t *next; /* submit queue */
    char id[SO_WIRE_MAX_ID + 1];
    uint8_t hdr[SO_WIRE_HDR_LEN];
    uint8_t *body;
    size_t body_len;
    int64_t deadline, waiting_since;
    so_gwcall_done_fn *done;
    so_gwcall_partial_fn *partial;
    void *arg;
    pthread_mutex_t cb_mu; /* callbacks vs so_gwcall_destroy */
    atomic_int state;
    so_gw_status_t status; /* written before state becomes DONE */
    so_pb_turn_reply_t *reply;
    char message[256];
};

struct so_gwclient {
    int connect_wait_ms;
    void *ctx, *sock, *mon;
    pthread_t thread;
    int started, joined;
    pthread_mutex_t mu;
    so_gwcall_t *q_head, *q_tail; /* under mu */
    int stopping;                 /* under mu */
    int wake[2];
    zhashx_t *sent;     /* thread: id → call */
    zlistx_t *waiting;  /* thread: calls waiting for a gateway */
    int fds[S_MAX_FDS]; /* thread: connected sockets (monitor) */
    int n_fds;
    int64_t next_sweep;
    atomic_ullong n_sent, n_replies, n_timeouts, n_unavailable, n_stray, n_rejected;
    atomic_int peers;
    atomic_llong last_reply;
};

/* ---- Calls ------------------------------------------------------------- */

static void s_call_free(so_gwcall_t *call)
{
    if (!call)
        return;
    free(call->body);
    so_wire_free(SO_MSG_TURN_REPLY, call->reply);
    pthread_mutex_destroy(&call->cb_mu);
    free(call);
}

/* Ends a call: records the outcome, then either runs its callback or,
 * when its owner let go of it, frees it.  reply (may be NULL) is taken. */
static void s_end(so_gwclient_t *c, so_gwcall_t *call, so_gw_status_t status,
                  so_pb_turn_reply_t *reply, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void s_end(so_gwclient_t *c, so_gwcall_t *call, so_gw_status_t status,
                  so_pb_turn_reply_t *reply, const char *fmt, ...)
{
    if (status == SO_GW_TIMEOUT)
        c->n_timeouts++;
    else if (status == SO_GW_UNAVAILABLE)
        c->n_unavailable++;
    call->status = status;
    call->reply = reply;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->message, sizeof call->message, fmt, ap);
    va_end(ap);
    so_gwcall_done_fn *done = call->done;
    void *arg = call->arg;
    /* After the exchange the owner may free the call at any time: nothing
     * below touches it unless it was abandoned. */
    pthread_mutex_lock(&call->cb_mu);
    int prev = atomic_exchange(&call->state, S_DONE);
    if (prev != S_ABANDONED && done)
        done(arg); /* under cb_mu: so_gwcall_destroy waits for it */
    pthread_mutex_unlock(&call->cb_mu);
    if (prev == S_ABANDONED)
        s_call_free(call);
}

so_gw_status_t so_gwcall_result(so_gwcall_t *call, const so_pb_turn_reply_t **reply,
                                const char **message)
{
    if (reply)
        *reply = NULL;
    if (message)
        *message = "";
    if (!call || atomic_load(&call->state) != S_DONE)
        return SO_GW_PENDING;
    if (reply)
        *reply = call->reply;
    if (message)
        *message = call->message;
    return call->status;
}

void so_gwcall_destroy(so_gwcall_t **call_p)
{
    if (!call_p || !*call_p)
        return;
    so_gwcall_t *call = *call_p;
    *call_p = NULL;
    pthread_mutex_lock(&call->cb_mu);
    int prev = atomic_exchange(&call->state, S_ABANDONED);
    pthread_mutex_unlock(&call->cb_mu);
    if (prev == S_DONE)
        s_call_free(call); /* else the thread frees it when it ends */
}

/* ---- The thread -------------------------------------------------------- */

/* Sends a call: 0 sent, 1 the socket refused (no gateway connected, or its
 * queue is full), -1 the call was ended (do not touch it again). */
static int s_try_send(so_gwclient_t *c, so_gwcall_t *call, int64_t now)
{
    if (now >= call->deadline) {
        s_end(c, call, SO_GW_TIMEOUT, NULL, "deadline passed before the request was sent");
        return -1;
    }
    int rc = zmq_send(c->sock, call->hdr, SO_WIRE_HDR_LEN, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc >= 0)
        rc = zmq_send(c->sock, call->body, call->body_len, ZMQ_DONTWAIT);
    if (rc >= 0) {
        free(call->body);
        call->body = NULL;
        zhashx_insert(c->sent, call->id, call);
        c->n_sent++;
        return 0;
    }
    if (errno == EAGAIN) /* ZMQ_IMMEDIATE: no gateway connected, or HWM */
        return 1;
    s_end(c, call, SO_GW_UNAVAILABLE, NULL, "send to the gateway failed: %s",
          zmq_strerror(errno));
    return -1;
}

/* A new call: sent, or queued behind the calls already waiting. */
static void s_send(so_gwclient_t *c, so_gwcall_t *call, int64_t now)
{
    if (zlistx_size(c->waiting) > 0 || s_try_send(c, call, now) == 1) {
        call->waiting_since = now;
        zlistx_add_end(c->waiting, call);
    }
}

/* Sends what waits, in order, until the socket refuses. */
static void s_send_waiting(so_gwclient_t *c, int64_t now)
{
    so_gwcall_t *call;
    while ((call = zlistx_first(c->waiting))) {
        zlistx_detach_cur(c->waiting);
        if (s_try_send(c, call, now) == 1) {
            zlistx_add_start(c->waiting, call); /* still first in line */
            return;
        }
    }
}

static void s_on_reply(so_gwclient_t *c)
{
    void *msg = NULL;
    char err[512];
    if (so_wire_recv(c->sock, NULL, SO_MSG_TURN_REPLY, NULL, &msg, ZMQ_DONTWAIT, err,
                     sizeof err) != 0) {
        if (errno == EPROTO) {
            c->n_rejected++;
            so_warn("gateway_reply_rejected", "error=\"%s\"", err);
        }
        return;
    }
    so_pb_turn_reply_t *rep = msg;
    so_gwcall_t *call = zhashx_lookup(c->sent, rep->request_id);
    if (call && rep->partial) {
        /* A delta: the call goes on.  Abandoned calls get no callback. */
        pthread_mutex_lock(&call->cb_mu);
        if (call->partial && atomic_load(&call->state) == S_PENDING)
            call->partial(call->arg, rep);
        pthread_mutex_unlock(&call->cb_mu);
        so_wire_free(SO_MSG_TURN_REPLY, rep);
        return;
    }
    if (!call) {
        c->n_stray++; /* an answer after our deadline, or not ours */
        so_debug("gateway_reply_stray", "request_id=%s", rep->request_id);
        so_wire_free(SO_MSG_TURN_REPLY, rep);
        return;
    }
    zhashx_delete(c->sent, rep->request_id);
    c->n_replies++;
    c->last_reply = so_now_ms();
    s_end(c, call, SO_GW_REPLY, rep, "%s", "");
}

static void s_fail_sent(so_gwclient_t *c, so_gw_status_t status, const char *why)
{
    so_gwcall_t *call;
    while ((call = zhashx_first(c->sent))) {
        zhashx_delete(c->sent, call->id);
        s_end(c, call, status, NULL, "%s", why);
    }
}

/* Monitor events (libzmq 4.x): [uint16 event, uint32 value][endpoint]. */
static void s_on_monitor(so_gwclient_t *c)
{
    zmq_msg_t m1, m2;
    zmq_msg_init(&m1);
    zmq_msg_init(&m2);
    if (zmq_msg_recv(&m1, c->mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m1);
        zmq_msg_close(&m2);
        return;
    }
    if (zmq_msg_more(&m1))
        zmq_msg_recv(&m2, c->mon, 0);
    if (zmq_msg_size(&m1) >= 6) {
        const uint8_t *d = zmq_msg_data(&m1);
        uint16_t ev;
        uint32_t value;
        memcpy(&ev, d, sizeof ev);
        memcpy(&value, d + 2, sizeof value);
        char ep[256];
        size_t n = zmq_msg_size(&m2) < sizeof ep - 1 ? zmq_msg_size(&m2) : sizeof ep - 1;
        memcpy(ep, zmq_msg_data(&m2), n);
        ep[n] = '\0';
        int fd = (int) value, i = 0;
        while (i < c->n_fds && c->fds[i] != fd)
            i++;
        if (ev == ZMQ_EVENT_CONNECTED && i == c->n_fds && c->n_fds < S_MAX_FDS) {
            c->fds[c->n_fds++] = fd;
            so_info("gateway_connected", "endpoint=%s peers=%d", ep, c->n_fds);
        } else if (ev == ZMQ_EVENT_DISCONNECTED && i < c->n_fds) {
            c->fds[i] = c->fds[--c->n_fds];
            so_warn("gateway_disconnected", "endpoint=%s peers=%d inflight=%zu", ep, c->n_fds,
                    zhashx_size(c->sent));
            /* With no gateway left, no reply can come back: a reconnected
             * DEALER gets a new routing id, and the gateway's answers to
             * the old one are dropped. */
            if (c->n_fds == 0)
                s_fail_sent(c, SO_GW_UNAVAILABLE, "lost the connection to the gateway");
        }
        c->peers = c->n_fds;
    }
    zmq_msg_close(&m1);
    zmq_msg_close(&m2);
}

static void s_timers(so_gwclient_t *c, int64_t now)
{
    if (zlistx_size(c->waiting) > 0)
        s_send_waiting(c, now);
    if (now < c->next_sweep)
        return;
    c->next_sweep = now + 50;
    /* Calls waiting for a gateway: bounded by connect_wait_ms and deadline. */
    size_t n = zlistx_size(c->waiting);
    for (size_t i = 0; i < n; i++) {
        so_gwcall_t *call = zlistx_detach(c->waiting, NULL); /* the first */
        if (now >= call->deadline)
            s_end(c, call, SO_GW_TIMEOUT, NULL, "no gateway took the request in time");
        else if (now - call->waiting_since >= c->connect_wait_ms)
            s_end(c, call, SO_GW_UNAVAILABLE, NULL, "no gateway connected (waited %d ms)",
                  c->connect_wait_ms);
        else
            zlistx_add_end(c->waiting, call);
    }
    /* Sent calls past their deadline. */
    zlistx_t *due = NULL;
    for (so_gwcall_t *s = zhashx_first(c->sent); s; s = zhashx_next(c->sent))
        if (now >= s->deadline) {
            if (!due)
                due = zlistx_new();
            zlistx_add_end(due, s);
        }
    for (so_gwcall_t *s = due ? zlistx_first(due) : NULL; s; s = zlistx_next(due)) {
        zhashx_delete(c->sent, s->id);
        s_end(c, s, SO_GW_TIMEOUT, NULL, "no reply from the gateway by the deadline");
    }
    zlistx_destroy(&due);
}

static void *s_run(void *arg)
{
    so_gwclient_t *c = arg;
    for (;;) {
        zmq_pollitem_t items[] = {
            { c->sock, 0, ZMQ_POLLIN, 0 },
            { c->mon, 0, ZMQ_POLLIN, 0 },
            { NULL, c->wake[0], ZMQ_POLLIN, 0 },
        };
        if (zmq_poll(items, 3, S_TICK_MS) < 0 && errno != EINTR)
            so_warn("gateway_poll_failed", "error=\"%s\"", zmq_strerror(errno));
        char drain[64];
        while (read(c->wake[0], drain, sizeof drain) > 0)
            ;
        pthread_mutex_lock(&c->mu);
        so_gwcall_t *q = c->q_head;
        c->q_head = c->q_tail = NULL;
        int stopping = c->stopping;
        pthread_mutex_unlock(&c->mu);
        int64_t now = so_now_ms();
        while (q) {
            so_gwcall_t *next = q->next;
            q->next = NULL;
            if (stopping)
                s_end(c, q, SO_GW_STOPPED, NULL, "the HTTP front door is stopping");
            else
                s_send(c, q, now);
            q = next;
        }
        for (int i = 0; i < 256; i++) {
            int ev = 0;
            size_t len = sizeof ev;
            if (zmq_getsockopt(c->sock, ZMQ_EVENTS, &ev, &len) != 0 || !(ev & ZMQ_POLLIN))
                break;
            s_on_reply(c);
        }
        for (int i = 0; i < 64; i++) {
            int ev = 0;
            size_t len = sizeof ev;
            if (zmq_getsockopt(c->mon, ZMQ_EVENTS, &ev, &len) != 0 || !(ev & ZMQ_POLLIN))
                break;
            s_on_monitor(c);
        }
        if (stopping) {
            so_gwcall_t *call;
            while ((call = zlistx_detach(c->waiting, NULL)))
                s_end(c, call, SO_GW_STOPPED, NULL, "the HTTP front door is stopping");
            s_fail_sent(c, SO_GW_STOPPED, "the HTTP front door is stopping");
            break;
        }
        s_timers(c, so_now_ms());
    }
    return NULL;
}

/* ---- Set-up ------------------------------------------------------------ */

static int s_open(so_gwclient_t *c, const so_gwclient_opts_t *o, char *err, size_t errlen)
{
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    if (!c->sock)
        return so_err(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
    if (so_wire_set_sockopts(c->sock, &o->sockopts, err, errlen) != 0)
        return -1;
    int one = 1;
    if (zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof one) != 0)
        return so_err(err, errlen, "ZMQ_IMMEDIATE: %s", zmq_strerror(errno));
    /* The monitor first, so no connection event is missed. */
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://so-gwclient-monitor-%p", (void *) c);
    if (zmq_socket_monitor(c->sock, addr, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0)
        return so_err(err, errlen, "zmq_socket_monitor: %s", zmq_strerror(errno));
    c->mon = zmq_socket(c->ctx, ZMQ_PAIR);
    int zero = 0;
    if (!c->mon || zmq_setsockopt(c->mon, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(c->mon, addr) != 0)
        return so_err(err, errlen, "monitor socket: %s", zmq_strerror(errno));
    char *list = so_strdup(o->endpoints ? o->endpoints : ""), *save = NULL;
    int n = 0, rc = 0;
    for (char *ep = strtok_r(list, ", ", &save); ep && rc == 0;
         ep = strtok_r(NULL, ", ", &save), n++)
        if (zmq_connect(c->sock, ep) != 0)
            rc = so_err(err, errlen, "connect %s: %s", ep, zmq_strerror(errno));
    free(list);
    if (rc == 0 && n == 0)
        rc = so_err(err, errlen, "no gateway endpoint given");
    return rc;
}

so_gwclient_t *so_gwclient_new(const so_gwclient_opts_t *o, char *err, size_t errlen)
{
    so_gwclient_t *c = so_calloc(1, sizeof *c);
    c->connect_wait_ms = o->connect_wait_ms > 0 ? o->connect_wait_ms : 1;
    c->wake[0] = c->wake[1] = -1;
    pthread_mutex_init(&c->mu, NULL);
    c->sent = zhashx_new();
    c->waiting = zlistx_new();
    if (pipe(c->wake) != 0) {
        so_err(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < 2; i++)
        fcntl(c->wake[i], F_SETFL, fcntl(c->wake[i], F_GETFL) | O_NONBLOCK);
    if (s_open(c, o, err, errlen) != 0)
        goto fail;
    if (pthread_create(&c->thread, NULL, s_run, c) != 0) {
        so_err(err, errlen, "pthread_create failed");
        goto fail;
    }
    c->started = 1;
    return c;
fail:
    so_gwclient_destroy(&c);
    return NULL;
}

void so_gwclient_stop(so_gwclient_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_mutex_unlock(&c->mu);
    if (c->wake[1] >= 0 && write(c->wake[1], "s", 1) < 0 && errno != EAGAIN)
        so_warn("gateway_wake_failed", "error=\"%s\"", strerror(errno));
    if (c->started && !c->joined) {
        pthread_join(c->thread, NULL);
        c->joined = 1;
    }
}

void so_gwclient_destroy(so_gwclient_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_gwclient_t *c = *self_p;
    so_gwclient_stop(c);
    /* Nothing can be queued now (stopping refuses submits), and the thread
     * ended everything it held. */
    if (c->sock)
        zmq_socket_monitor(c->sock, NULL, 0);
    if (c->sock) {
        int zero = 0;
        zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(c->sock);
    }
    if (c->mon)
        zmq_close(c->mon);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    zhashx_destroy(&c->sent);
    zlistx_destroy(&c->waiting);
    for (int i = 0; i < 2; i++)
        if (c->wake[i] >= 0)
            close(c->wake[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
    *self_p = NULL;
}

so_gwcall_t *so_gwclient_submit(so_gwclient_t *c, const so_pb_turn_request_t *turn,
                                int64_t deadline_ms, so_gwcall_done_fn *done, void *arg,
                                char *err, size_t errlen)
{
    return so_gwclient_submit_stream(c, turn, deadline_ms, done, NULL, arg, err, errlen);
}

so_gwcall_t *so_gwclient_submit_stream(so_gwclient_t *c, const so_pb_turn_request_t *turn,
                                       int64_t deadline_ms, so_gwcall_done_fn *done,
                                       so_gwcall_partial_fn *partial, void *arg, char *err,
                                       size_t errlen)
{
    so_gwcall_t *call = so_calloc(1, sizeof *call);
    pthread_mutex_init(&call->cb_mu, NULL);
    call->partial = partial;
    if (so_wire_encode(SO_MSG_TURN_REQUEST, turn, call->hdr, &call->body, &call->body_len, err,
                       errlen) != 0) {
        s_call_free(call);
        return NULL;
    }
    snprintf(call->id, sizeof call->id, "%s", turn->request_id);
    call->deadline = deadline_ms;
    call->done = done;
    call->arg = arg;
    atomic_init(&call->state, S_PENDING);
    pthread_mutex_lock(&c->mu);
    int stopping = c->stopping;
    if (!stopping) {
        if (c->q_tail)
            c->q_tail->next = call;
        else
            c->q_head = call;
        c->q_tail = call;
    }
    pthread_mutex_unlock(&c->mu);
    if (stopping) {
        so_err(err, errlen, "the HTTP front door is stopping");
        s_call_free(call);
        return NULL;
    }
    /* A full pipe means the thread has wake-ups pending anyway. */
    if (write(c->wake[1], "c", 1) < 0 && errno != EAGAIN)
        so_warn("gateway_wake_failed", "error=\"%s\"", strerror(errno));
    return call;
}

void so_gwclient_stats(so_gwclient_t *c, so_gwclient_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    out->sent = c->n_sent;
    out->replies = c->n_replies;
    out->timeouts = c->n_timeouts;
    out->unavailable = c->n_unavailable;
    out->stray = c->n_stray;
    out->rejected = c->n_rejected;
    out->peers = c->peers;
    out->last_reply_ms = c->last_reply;
}
