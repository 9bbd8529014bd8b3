/*
 * so_gateway — the loop around the turns in flight: sockets in, ops out,
 * timers.  The turns' logic is all in so_inflight.c.
 */
#include "so_gateway.h"

#include "base/so_alloc.h"
#include "base/so_svc.h"
#include "wire/so_sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct so_gateway {
    so_gateway_opts_t o;
    so_inflight_t *turns;
    so_broker_t *broker;       /* the turns' */
    so_inflight_counters_t *c; /* the turns' */
    int draining;
    int64_t next_stats;
};

/* ---- The ops: how the turns reach the sockets --------------------------- */

static int s_send_infer(void *arg, const so_pb_turn_request_t *turn, char *err, size_t errlen)
{
    so_gateway_t *gw = arg;
    return so_wire_send(gw->o.infer, NULL, SO_MSG_TURN_REQUEST, turn, ZMQ_DONTWAIT, err, errlen);
}

static int s_send_route(void *arg, const so_pb_route_request_t *req, char *err, size_t errlen)
{
    so_gateway_t *gw = arg;
    return so_wire_send(gw->o.route, NULL, SO_MSG_ROUTE_REQUEST, req, ZMQ_DONTWAIT, err, errlen);
}

static int s_send_call(void *arg, const so_broker_worker_t *w, const so_pb_agent_call_t *call,
                       char *err, size_t errlen)
{
    so_gateway_t *gw = arg;
    so_wire_envelope_t env;
    so_wire_envelope_reset(&env);
    so_wire_envelope_push(&env, w->rid, w->rid_len);
    return so_wire_send(gw->o.workers, &env, SO_MSG_AGENT_CALL, call, ZMQ_DONTWAIT, err, errlen);
}

static int s_send_reply(void *arg, const so_wire_envelope_t *env, const so_pb_turn_reply_t *rep,
                        char *err, size_t errlen)
{
    so_gateway_t *gw = arg;
    return so_wire_send(gw->o.clients, env, SO_MSG_TURN_REPLY, rep, ZMQ_DONTWAIT, err, errlen);
}

static int s_send_error(void *arg, const so_wire_envelope_t *env, const char *request_id,
                        const char *episode_id, so_pb_error_code_t code, const char *msg,
                        char *err, size_t errlen)
{
    so_gateway_t *gw = arg;
    return so_sock_send_error(gw->o.clients, env, request_id, episode_id, code, msg, err, errlen);
}

static void s_record(void *arg, const char *episode_id, const char *version,
                     const so_pb_turn_record_t *tr, int final)
{
    so_gateway_t *gw = arg;
    so_recorder_turn(gw->o.recorder, episode_id, version, tr, final);
}

/* ---- Socket handlers --------------------------------------------------- */

static void s_on_client(so_gateway_t *gw)
{
    so_wire_envelope_t env;
    so_wire_envelope_reset(&env);
    void *msg = NULL;
    char err[512];
    if (so_wire_recv(gw->o.clients, &env, SO_MSG_TURN_REQUEST, NULL, &msg, ZMQ_DONTWAIT, err,
                     sizeof err) != 0) {
        if (errno != EPROTO)
            return;
        gw->c->rejected++;
        so_warn("request_rejected", "error=\"%s\" rejected_total=%llu", err,
                (unsigned long long) gw->c->rejected);
        if (env.n > 0)
            so_sock_send_error(gw->o.clients, &env, NULL, NULL, SO_ERR(INVALID_REQUEST), err, err,
                               sizeof err);
        return;
    }
    so_pb_turn_request_t *turn = msg;
    so_inflight_admit(gw->turns, &env, &turn);
}

/* Receives one message from a backend DEALER; 0 with it, or -1 (a message
 * that did not decode is counted and logged as `what`_reply_rejected). */
static int s_recv_backend(so_gateway_t *gw, void *sock, const char *what, so_msg_type_t *type,
                          void **msg)
{
    char err[512];
    if (so_wire_recv(sock, NULL, SO_MSG_ANY, type, msg, ZMQ_DONTWAIT, err, sizeof err) == 0)
        return 0;
    if (errno == EPROTO) {
        gw->c->rejected++;
        so_warn(what, "error=\"%s\"", err);
    }
    return -1;
}

static void s_unexpected(so_gateway_t *gw, const char *what, so_msg_type_t type)
{
    gw->c->rejected++;
    so_warn(what, "error=\"unexpected %s\"", so_wire_type_name(type));
}

static void s_on_infer(so_gateway_t *gw)
{
    so_msg_type_t type;
    void *msg = NULL;
    if (s_recv_backend(gw, gw->o.infer, "infer_reply_rejected", &type, &msg) != 0)
        return;
    if (type == SO_MSG_SKILL_DEMAND) {
        so_pb_skill_demand_t *d = msg;
        so_inflight_on_demand(gw->turns, &d);
        return;
    }
    if (type == SO_MSG_TURN_REPLY)
        so_inflight_on_infer_error(gw->turns, msg);
    else
        s_unexpected(gw, "infer_reply_rejected", type);
    so_wire_free(type, msg);
}

static void s_on_route(so_gateway_t *gw)
{
    so_msg_type_t type;
    void *msg = NULL;
    if (s_recv_backend(gw, gw->o.route, "route_reply_rejected", &type, &msg) != 0)
        return;
    if (type == SO_MSG_ROUTING_DECISION) {
        so_pb_routing_decision_t *d = msg;
        so_inflight_on_decision(gw->turns, &d);
        return;
    }
    if (type == SO_MSG_TURN_REPLY)
        so_inflight_on_route_error(gw->turns, msg);
    else
        s_unexpected(gw, "route_reply_rejected", type);
    so_wire_free(type, msg);
}

static void s_ctl(so_gateway_t *gw, const so_wire_envelope_t *env, int cmd)
{
    so_ctl_send(gw->o.workers, env, cmd, 0, NULL);
}

/* READY, HEARTBEAT or DISCONNECT from a worker (w: NULL when unknown). */
static void s_on_worker_ctl(so_gateway_t *gw, so_broker_worker_t *w,
                            const so_wire_envelope_t *env, const so_ctl_t *ctl, int64_t now)
{
    if (ctl->cmd == SO_CTL_READY) {
        so_inflight_worker_ready(gw->turns, env->frame[0], env->len[0], ctl->worker_id,
                                 ctl->capacity, ctl->agents, now);
    } else if (!w) {
        if (ctl->cmd == SO_CTL_HEARTBEAT)
            s_ctl(gw, env, SO_CTL_DISCONNECT); /* "register again" */
    } else if (ctl->cmd == SO_CTL_HEARTBEAT) {
        so_broker_seen(gw->broker, w, now);
    } else if (ctl->cmd == SO_CTL_DISCONNECT) {
        so_info("worker_draining", "worker=%s inflight=%u", w->name, w->inflight);
        so_broker_seen(gw->broker, w, now);
        so_broker_drain(gw->broker, w);
    }
}

static void s_on_worker(so_gateway_t *gw)
{
    so_wire_envelope_t env;
    so_wire_envelope_reset(&env);
    so_ctl_t ctl;
    so_msg_type_t type;
    void *msg = NULL;
    char err[512];
    int rc = so_sock_recv_mixed(gw->o.workers, 1, &env, &ctl, &type, &msg, err, sizeof err);
    if (rc < 0) {
        if (errno == EPROTO) {
            gw->c->rejected++;
            so_warn("worker_message_rejected", "error=\"%s\"", err);
        }
        return;
    }
    int64_t now = so_now_ms();
    so_broker_worker_t *w = so_broker_find(gw->broker, env.frame[0], env.len[0]);
    if (rc == 1) {
        s_on_worker_ctl(gw, w, &env, &ctl, now);
    } else if (!w) {
        gw->c->stray++;
        s_ctl(gw, &env, SO_CTL_DISCONNECT);
    } else if (type != SO_MSG_AGENT_RESULT) {
        gw->c->rejected++;
        so_warn("worker_message_rejected", "worker=%s error=\"unexpected %s\"", w->name,
                so_wire_type_name(type));
    } else {
        so_broker_seen(gw->broker, w, now);
        so_inflight_on_result(gw->turns, w, msg);
    }
    so_wire_free(type, msg);
}

/* Up to 64 messages per socket per round: no socket starves another. */
static void s_read_sockets(so_gateway_t *gw)
{
    void *socks[4] = { gw->o.workers, gw->o.route, gw->o.infer, gw->o.clients };
    static void (*const handler[4])(so_gateway_t *) = { s_on_worker, s_on_route, s_on_infer,
                                                        s_on_client };
    for (int i = 0; i < 64; i++) {
        int any = 0;
        for (int k = 0; k < 4; k++) {
            int ev = 0;
            size_t len = sizeof ev;
            if (zmq_getsockopt(socks[k], ZMQ_EVENTS, &ev, &len) != 0 || !(ev & ZMQ_POLLIN))
                continue;
            any = 1;
            handler[k](gw);
        }
        if (!any)
            break;
    }
}

/* The recorder's polls of the current handbook version: new episodes are
 * pinned to it.  (To be replaced by the shared handbook watcher.) */
static void s_read_version(so_gateway_t *gw)
{
    char v[SO_WIRE_MAX_ID + 1];
    while (so_recorder_recv(gw->o.recorder, v, sizeof v)) {
        const char *current = so_inflight_version(gw->turns);
        if (strcmp(v, current) != 0)
            so_info("handbook_version", "current=%s previous=%s", v, current);
        so_inflight_set_version(gw->turns, v);
    }
}

/* ---- Timers ------------------------------------------------------------ */

static void s_heartbeat(void *arg, so_broker_worker_t *w)
{
    so_wire_envelope_t env;
    so_wire_envelope_reset(&env);
    so_wire_envelope_push(&env, w->rid, w->rid_len);
    s_ctl(arg, &env, SO_CTL_HEARTBEAT);
}

static void s_stats(so_gateway_t *gw)
{
    double p50, p99;
    so_inflight_latency(gw->turns, &p50, &p99);
    so_recorder_stats_t rs;
    so_recorder_stats(gw->o.recorder, &rs);
    const so_inflight_counters_t *c = gw->c;
    so_info("stats",
            "received=%llu replied=%llu errors=%llu rejected=%llu timeouts=%llu inflight=%zu "
            "waiting=%zu workers=%zu free_slots=%zu redispatched=%llu fallbacks=%llu "
            "uniform_demand=%llu stray=%llu p50_ms=%.1f p99_ms=%.1f version=%s "
            "episodes_logged=%llu turns_pending=%llu record_dropped=%llu record_backlog=%llu",
            (unsigned long long) c->received, (unsigned long long) c->replied,
            (unsigned long long) c->errors, (unsigned long long) c->rejected,
            (unsigned long long) c->timeouts, so_inflight_size(gw->turns),
            so_inflight_waiting(gw->turns), so_broker_size(gw->broker),
            so_broker_free_slots(gw->broker), (unsigned long long) c->redispatched,
            (unsigned long long) c->fallbacks, (unsigned long long) c->uniform_fallbacks,
            (unsigned long long) c->stray, p50, p99, so_inflight_version(gw->turns),
            (unsigned long long) rs.logged, (unsigned long long) rs.pushed,
            (unsigned long long) rs.dropped, (unsigned long long) rs.backlog);
}

static void s_timers(so_gateway_t *gw, int64_t now)
{
    so_inflight_expire_workers(gw->turns, now);
    so_broker_heartbeats(gw->broker, now, s_heartbeat, gw);
    so_inflight_tick(gw->turns, now);
    if (gw->o.stats_ms > 0 && now >= gw->next_stats) {
        s_stats(gw);
        gw->next_stats = now + gw->o.stats_ms;
    }
}

/* ---- The loop ---------------------------------------------------------- */

int so_gateway_run(so_gateway_t *gw)
{
    int ret = 0;
    int64_t drain_until = 0;
    gw->next_stats = so_now_ms() + gw->o.stats_ms;
    for (;;) {
        int64_t now = so_now_ms();
        if (so_stopping() && !gw->draining) {
            gw->draining = 1;
            so_inflight_set_draining(gw->turns, 1);
            drain_until = now + gw->o.drain_ms;
            so_info("draining", "inflight=%zu drain_ms=%d", so_inflight_size(gw->turns),
                    gw->o.drain_ms);
        }
        if (gw->draining && (so_inflight_size(gw->turns) == 0 || now >= drain_until))
            break;
        zmq_pollitem_t items[] = {
            { gw->o.clients, 0, ZMQ_POLLIN, 0 },
            { gw->o.workers, 0, ZMQ_POLLIN, 0 },
            { gw->o.infer, 0, ZMQ_POLLIN, 0 },
            { gw->o.route, 0, ZMQ_POLLIN, 0 },
            { so_recorder_socket(gw->o.recorder), 0, ZMQ_POLLIN, 0 },
        };
        int rc = zmq_poll(items, 5, 20);
        if (rc < 0 && errno != EINTR) {
            so_error("poll_failed", "error=\"%s\"", zmq_strerror(errno));
            ret = 1;
            break;
        }
        if (rc > 0)
            s_read_sockets(gw);
        s_read_version(gw);
        s_timers(gw, so_now_ms());
    }
    /* Whatever is still in flight past the drain gets an answer. */
    so_inflight_fail_all(gw->turns, SO_ERR(UNAVAILABLE), "the gateway stopped");
    s_stats(gw);
    return ret;
}

so_gateway_t *so_gateway_new(const so_gateway_opts_t *opts)
{
    so_gateway_t *gw = so_calloc(1, sizeof *gw);
    gw->o = *opts;
    so_inflight_ops_t ops = {
        .send_infer = s_send_infer,
        .send_route = s_send_route,
        .send_call = s_send_call,
        .send_reply = s_send_reply,
        .send_error = s_send_error,
        .record = s_record,
    };
    gw->turns = so_inflight_new(&opts->turns, &ops, gw);
    if (!gw->turns) {
        free(gw);
        return NULL;
    }
    gw->broker = so_inflight_broker(gw->turns);
    gw->c = so_inflight_counters(gw->turns);
    return gw;
}

void so_gateway_destroy(so_gateway_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_inflight_destroy(&(*self_p)->turns);
    free(*self_p);
    *self_p = NULL;
}

so_inflight_t *so_gateway_turns(so_gateway_t *gw)
{
    return gw->turns;
}
