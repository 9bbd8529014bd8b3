/*
 * so-gateway — the front door: start-up and wiring.  Reads the settings
 * (config/gateway.conf), opens the four sockets and the recorder thread,
 * and runs the loop (so_gateway.c) around the turns in flight
 * (so_inflight.c, where a turn's life and its state diagram are).
 *
 * A turn moves INFER → ROUTE → CALL (WAIT while no worker has a free slot)
 * and always ends in exactly one reply to its client (docs/SERVICES.md,
 * "Gateway").
 */
#include "so_gateway.h"

#include "base/so_cli.h"
#include "base/so_svc.h"
#include "store/so_hbwatch.h"
#include "wire/so_sock.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

static const char *s_usage =
    "Keys: client.endpoint workers.endpoint infer.endpoint router.endpoint\n"
    "      redis.url redis.prefix request_timeout_ms stage_timeout_ms call_timeout_ms\n"
    "      max_inflight max_attempts max_fallbacks heartbeat_ms liveness episode_ttl_s\n"
    "      pending_ttl_s drain_ms stats_ms log.level zmq.*\n";

static int s_settings(so_gateway_opts_t *o, const so_config_t *cfg, char *err, size_t errlen)
{
    long v;
#define S_INT(key, field, def, min, max) \
    if (so_config_long(cfg, key, def, min, max, &v, err, errlen) != 0) \
        return -1; \
    o->field = v;
    S_INT("request_timeout_ms", turns.request_timeout_ms, 30000, 100, 3600000);
    S_INT("stage_timeout_ms", turns.stage_timeout_ms, 2000, 10, 600000);
    S_INT("call_timeout_ms", turns.call_timeout_ms, 20000, 10, 3600000);
    S_INT("heartbeat_ms", turns.heartbeat_ms, 500, 10, 60000);
    S_INT("liveness", turns.liveness, 3, 1, 100);
    S_INT("drain_ms", drain_ms, 10000, 0, 600000);
    S_INT("stats_ms", stats_ms, 10000, 0, 3600000);
    S_INT("episode_ttl_s", turns.episode_ttl_s, 3600, 1, 30 * 86400);
    S_INT("max_inflight", turns.max_inflight, 10000, 1, 1000000);
    S_INT("max_attempts", turns.max_attempts, 3, 1, SO_WIRE_MAX_ATTEMPT);
    S_INT("max_fallbacks", turns.max_fallbacks, 2, 0, SO_WIRE_MAX_AGENTS);
#undef S_INT
    return 0;
}

static int s_recorder_settings(so_recorder_opts_t *ro, const so_config_t *cfg, char *err,
                               size_t errlen)
{
    so_recorder_opts_default(ro);
    ro->redis_url = so_config_get(cfg, "redis.url", ro->redis_url);
    ro->prefix = so_config_get(cfg, "redis.prefix", ro->prefix);
    long ttl;
    if (so_config_long(cfg, "pending_ttl_s", ro->pending_ttl_s, 1, 30 * 86400, &ttl, err,
                       errlen) != 0)
        return -1;
    ro->pending_ttl_s = (int) ttl;
    return 0;
}

static void *s_socket(void *ctx, int type, const char *key, const char *ep, int bind,
                      const so_wire_sockopts_t *opts)
{
    char err[512];
    void *s = so_sock_new(ctx, type, opts, ep, bind, 0, err, sizeof err);
    if (!s)
        so_error("socket_failed", "key=%s endpoint=%s error=\"%s\"", key, ep, err);
    return s;
}

/* The current handbook version at start-up, so the first requests need not
 * wait for the recorder's first poll.  (To be replaced by the shared
 * handbook watcher.) */
static void s_initial_version(char *current, size_t len, const char *url, const char *prefix)
{
    so_hbwatch_opts_t o;
    so_hbwatch_opts_default(&o);
    o.redis_url = url;
    o.redis_prefix = prefix;
    o.redis_timeout_ms = 1000;
    o.log = 0;
    so_hbwatch_t *w = so_hbwatch_new(&o);
    so_hbwatch_poll(w);
    snprintf(current, len, "%s", so_hbwatch_current(w));
    if (!current[0])
        so_warn("no_handbook_yet", "redis=%s error=\"%s\"", url,
                so_hbwatch_up(w) ? so_hbwatch_none_reason(w) : so_hbwatch_error(w));
    so_hbwatch_destroy(&w);
}

typedef struct {
    so_gateway_opts_t gw;
    so_recorder_opts_t rec;
    so_wire_sockopts_t sock;
} s_all_t;

static int s_all_settings(const so_config_t *cfg, void *arg, char *err, size_t errlen)
{
    s_all_t *a = arg;
    memset(&a->gw, 0, sizeof a->gw);
    if (s_settings(&a->gw, cfg, err, errlen) != 0 ||
        so_sock_opts(cfg, &a->sock, err, errlen) != 0)
        return -1;
    return s_recorder_settings(&a->rec, cfg, err, errlen) != 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    int code = 0;
    s_all_t all;
    so_config_t *cfg = so_cli_start("gateway", argc, argv, s_usage, s_all_settings, &all, &code);
    if (!cfg)
        return code;
    so_gateway_opts_t o = all.gw;
    so_recorder_opts_t ro = all.rec;
    so_wire_sockopts_t opts = all.sock;
    char err[512];
    void *ctx = zmq_ctx_new();
    const char *ep_clients = so_config_get(cfg, "client.endpoint", "tcp://127.0.0.1:5555");
    const char *ep_workers = so_config_get(cfg, "workers.endpoint", "tcp://127.0.0.1:5556");
    const char *ep_infer = so_config_get(cfg, "infer.endpoint", "tcp://127.0.0.1:5557");
    const char *ep_route = so_config_get(cfg, "router.endpoint", "tcp://127.0.0.1:5558");
    o.clients = s_socket(ctx, ZMQ_ROUTER, "client.endpoint", ep_clients, 1, &opts);
    o.workers = s_socket(ctx, ZMQ_ROUTER, "workers.endpoint", ep_workers, 1, &opts);
    o.infer = s_socket(ctx, ZMQ_DEALER, "infer.endpoint", ep_infer, 0, &opts);
    o.route = s_socket(ctx, ZMQ_DEALER, "router.endpoint", ep_route, 0, &opts);
    char current[SO_WIRE_MAX_ID + 1] = "";
    if (o.clients && o.workers && o.infer && o.route) {
        s_initial_version(current, sizeof current, ro.redis_url, ro.prefix);
        o.recorder = so_recorder_new(ctx, &ro, err, sizeof err);
        if (!o.recorder)
            so_error("recorder_failed", "error=\"%s\"", err);
    }
    so_gateway_t *gw = o.recorder ? so_gateway_new(&o) : NULL;
    int ret = 1;
    so_inflight_counters_t none = { 0 }, *c = &none;
    if (gw) {
        so_inflight_set_version(so_gateway_turns(gw), current);
        so_info("start", "client=%s workers=%s infer=%s router=%s redis=%s version=%s",
                ep_clients, ep_workers, ep_infer, ep_route, ro.redis_url,
                current[0] ? current : "(none)");
        ret = so_gateway_run(gw);
        c = so_inflight_counters(so_gateway_turns(gw));
    }
    so_info("stop", "received=%llu replied=%llu errors=%llu", (unsigned long long) c->received,
            (unsigned long long) c->replied, (unsigned long long) c->errors);
    so_recorder_destroy(&o.recorder);
    so_gateway_destroy(&gw);
    so_sock_close(&o.clients);
    so_sock_close(&o.workers);
    so_sock_close(&o.infer);
    so_sock_close(&o.route);
    if (ctx)
        zmq_ctx_term(ctx);
    so_config_destroy(&cfg);
    return ret;
}
