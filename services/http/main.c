/*
 * so-http — the OpenAI-compatible HTTP front door (docs/HTTP.md).  A thin
 * translator in front of the gateway: it speaks HTTP/JSON to clients
 * (libmicrohttpd, so_httpd) and is a ZeroMQ client of the gateway's client
 * endpoint (so_gwclient); it reads Redis for handbooks and readiness
 * (so_watch) and writes it only to finish episodes on feedback.  It keeps
 * no state a replica would need: run as many as you like.
 *
 * SIGTERM: new requests get 503, requests in flight finish (bounded by
 * drain_ms), the rest get 503, then it exits 0.
 *
 * Settings: config/http.conf.
 */
#include "base/so_cli.h"
#include "so_counters.h"
#include "so_gwclient.h"
#include "so_httpd.h"
#include "wire/so_sock.h"
#include "base/so_svc.h"
#include "so_watch.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *s_usage =
    "Keys: listen threads gateway.endpoint redis.url redis.prefix redis.timeout_ms api_keys\n"
    "      routing_profiles timeout_ms connect_wait_ms max_body_bytes max_messages\n"
    "      max_turn_index max_prompt_tokens max_completion_tokens max_inflight\n"
    "      max_connections idle_timeout_s feedback_wait_ms refresh_ms drain_ms stats_ms\n"
    "      log.level zmq.*\n";

typedef struct {
    so_httpd_opts_t http;
    so_gwclient_opts_t gw;
    so_watch_opts_t watch;
    long drain_ms, stats_ms;
} s_settings_t;

static int s_settings(const so_config_t *cfg, void *arg, char *err, size_t errlen)
{
    s_settings_t *s = arg;
    long v;
    memset(s, 0, sizeof *s);
#define S_LONG(key, def, min, max, dst) \
    if (so_config_long(cfg, key, def, min, max, &v, err, errlen) != 0) \
        return -1; \
    (dst) = v;
    so_httpd_opts_t *h = &s->http;
    h->listen = so_config_get(cfg, "listen", "127.0.0.1:8080");
    S_LONG("threads", 4, 1, 256, h->threads);
    S_LONG("max_connections", 1024, 1, 100000, h->max_connections);
    S_LONG("idle_timeout_s", 60, 1, 86400, h->idle_timeout_s);
    S_LONG("max_body_bytes", 4 << 20, 1024, 64 << 20, h->max_body_bytes);
    so_oai_limits_default(&h->limits);
    S_LONG("max_messages", SO_WIRE_MAX_MESSAGES, 1, SO_WIRE_MAX_MESSAGES, h->limits.max_messages);
    S_LONG("max_turn_index", SO_WIRE_MAX_TURNS - 1, 0, SO_WIRE_MAX_TURNS - 1,
           h->limits.max_turn_index);
    S_LONG("max_prompt_tokens", 262144, 0, 100000000, h->limits.max_prompt_tokens);
    S_LONG("max_completion_tokens", 65536, 1, 100000000, h->limits.max_completion_tokens);
    S_LONG("timeout_ms", 35000, 100, 3600000, h->timeout_ms);
    S_LONG("max_inflight", 1024, 1, 1000000, h->max_inflight);
    S_LONG("feedback_wait_ms", 500, 0, 60000, h->feedback_wait_ms);
    h->api_keys = so_config_get(cfg, "api_keys", "");
    h->routing_profiles = so_config_get(cfg, "routing_profiles", "");
    h->redis_url = so_config_get(cfg, "redis.url", "redis://127.0.0.1:6379");
    h->redis_prefix = so_config_get(cfg, "redis.prefix", "so:");
    S_LONG("redis.timeout_ms", 500, 10, 60000, h->redis_timeout_ms);

    so_watch_opts_t *w = &s->watch;
    w->redis_url = h->redis_url;
    w->prefix = h->redis_prefix;
    w->timeout_ms = h->redis_timeout_ms;
    S_LONG("refresh_ms", 1000, 10, 60000, w->refresh_ms);
    h->ready_max_age_ms = 3 * w->refresh_ms + h->redis_timeout_ms;

    so_gwclient_opts_t *g = &s->gw;
    g->endpoints = so_config_get(cfg, "gateway.endpoint", "tcp://127.0.0.1:5555");
    S_LONG("connect_wait_ms", 1000, 0, 600000, g->connect_wait_ms);
    if (so_sock_opts(cfg, &g->sockopts, err, errlen) != 0)
        return -1;
    /* Room for every request in flight, both ways. */
    if (g->sockopts.sndhwm < 2 * h->max_inflight)
        g->sockopts.sndhwm = (int) (2 * h->max_inflight);
    if (g->sockopts.rcvhwm < 2 * h->max_inflight)
        g->sockopts.rcvhwm = (int) (2 * h->max_inflight);

    S_LONG("drain_ms", 10000, 0, 600000, s->drain_ms);
    S_LONG("stats_ms", 10000, 0, 3600000, s->stats_ms);
#undef S_LONG
    return 0;
}

/* Waits (bounded) until no request is being handled. */
static void s_wait_idle(so_httpd_t *h, int64_t until)
{
    while (so_httpd_active(h) > 0 && so_now_ms() < until)
        usleep(10000);
}

int main(int argc, char **argv)
{
    int code = 0;
    s_settings_t s;
    so_config_t *cfg = so_cli_start("http", argc, argv, s_usage, s_settings, &s, &code);
    if (!cfg)
        return code;
    char err[512];
    /* jansson seeds its hash function on first use; do it before the
     * threads start (its documentation's advice for threaded programs). */
    json_object_seed(0);
    so_counters_t *counters = so_counters_new();
    so_watch_t *watch = so_watch_new(&s.watch, err, sizeof err);
    so_gwclient_t *gw = watch ? so_gwclient_new(&s.gw, err, sizeof err) : NULL;
    so_httpd_t *httpd = gw ? so_httpd_new(&s.http, gw, watch, counters, err, sizeof err) : NULL;
    int ret = 0;
    if (!httpd) {
        so_error("start_failed", "error=\"%s\"", err);
        ret = 1;
        goto done;
    }
    so_info("start", "listen=%s port=%u gateway=%s redis=%s threads=%u auth=%s", s.http.listen,
            so_httpd_port(httpd), s.gw.endpoints, s.http.redis_url, s.http.threads,
            s.http.api_keys[0] ? "bearer" : "none");
    int64_t next_stats = so_now_ms() + s.stats_ms;
    while (!so_stopping()) {
        usleep(50000);
        if (s.stats_ms > 0 && so_now_ms() >= next_stats) {
            so_httpd_log_stats(httpd);
            next_stats = so_now_ms() + s.stats_ms;
        }
    }
    /* Drain: refuse new work, let what is in flight finish, then end the
     * rest (its clients get 503) and give the answers a moment to leave. */
    so_info("draining", "inflight=%ld active=%ld drain_ms=%ld", so_httpd_inflight(httpd),
            so_httpd_active(httpd), s.drain_ms);
    so_httpd_drain(httpd);
    s_wait_idle(httpd, so_now_ms() + s.drain_ms);
    so_gwclient_stop(gw);
    s_wait_idle(httpd, so_now_ms() + 1000);
    so_httpd_log_stats(httpd);
done:
    so_httpd_destroy(&httpd);
    so_gwclient_destroy(&gw);
    so_watch_destroy(&watch);
    so_counters_destroy(&counters);
    so_info("stop", "exit=%d", ret);
    so_config_destroy(&cfg);
    return ret;
}
