/*
 * so-skill-inference — TurnRequest → SkillDemand over a ROUTER socket
 * (docs/SERVICES.md, "Skill inference").  Settings:
 * config/skill-inference.conf.
 */
#include "so_cli.h"
#include "so_demand.h"
#include "so_hbcache.h"
#include "so_server.h"
#include "so_sock.h"
#include "so_svc.h"

#include <stdio.h>

static const char *s_usage =
    "Keys: endpoint redis.url redis.prefix redis.timeout_ms cache.versions stats_refresh_ms\n"
    "      negative_ttl_ms backoff_max_ms infer.temperature stats_ms drain_ms log.level zmq.*\n";

int main(int argc, char **argv)
{
    int code = 0;
    so_config_t *cfg = so_cli_config("skill-inference", argc, argv, s_usage, &code);
    if (!cfg)
        return code;
    char err[512];
    so_hbcache_opts_t co;
    so_wire_sockopts_t zo;
    long stats_ms = 10000, drain_ms = 2000;
    so_hbcache_opts_default(&co);
    co.with_infer = 1;
    int rc = so_hbcache_config(cfg, &co, err, sizeof err);
    if (rc == 0)
        rc = so_config_double(cfg, "infer.temperature", 0, 0, 1e6, &co.infer_temperature, err,
                              sizeof err);
    if (rc == 0)
        rc = so_config_long(cfg, "stats_ms", stats_ms, 0, 86400000, &stats_ms, err, sizeof err);
    if (rc == 0)
        rc = so_config_long(cfg, "drain_ms", drain_ms, 0, 600000, &drain_ms, err, sizeof err);
    if (rc == 0)
        rc = so_sock_opts(cfg, &zo, err, sizeof err);
    so_hbcache_t *cache = rc == 0 ? so_hbcache_new(&co, err, sizeof err) : NULL;
    if (!cache) {
        so_error("config", "error=\"%s\"", err);
        so_config_destroy(&cfg);
        return 2;
    }

    const char *endpoint = so_config_get(cfg, "endpoint", "tcp://127.0.0.1:5557");
    void *ctx = zmq_ctx_new();
    void *sock = so_sock_new(ctx, ZMQ_ROUTER, &zo, endpoint, 1, 0, err, sizeof err);
    if (!sock) {
        so_error("bind_failed", "endpoint=%s error=\"%s\"", endpoint, err);
        so_hbcache_destroy(&cache);
        zmq_ctx_term(ctx);
        so_config_destroy(&cfg);
        return 1;
    }
    so_info("started", "endpoint=%s redis=%s cache_versions=%zu stats_refresh_ms=%d", endpoint,
            co.redis_url, co.max_versions, co.refresh_ms);

    so_demand_t *handler = so_demand_new(cache);
    so_server_opts_t so = {
        .expect = SO_MSG_TURN_REQUEST,
        .handle = so_demand_handle,
        .tick = so_demand_tick,
        .stats = so_demand_stats,
        .arg = handler,
        .stats_ms = (int) stats_ms,
        .drain_ms = (int) drain_ms,
    };
    int ret = so_server_run(sock, &so) == 0 ? 0 : 1;

    so_sock_close(&sock);
    zmq_ctx_term(ctx);          /* bounded: the socket's linger is set */
    so_demand_destroy(&handler);
    so_hbcache_destroy(&cache);
    so_config_destroy(&cfg);
    so_info("exit", "code=%d", ret);
    return ret;
}
