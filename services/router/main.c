/*
 * so-router — RouteRequest → RoutingDecision over a ROUTER socket
 * (docs/SERVICES.md, "Router").  Settings: config/router.conf.
 */
#include "so_decide.h"
#include "so_profile.h"
#include "base/so_cli.h"
#include "base/so_err.h"
#include "base/so_svc.h"
#include "store/so_hbcache.h"
#include "wire/so_server.h"

#include <string.h>

static const char *s_usage =
    "Keys: endpoint redis.url redis.prefix redis.timeout_ms cache.versions stats_refresh_ms\n"
    "      negative_ttl_ms backoff_max_ms lambda thompson explore_floor seed budget_fallback\n"
    "      min_obs cost_norm stats_ms drain_ms log.level zmq.*\n"
    "      profiles profile.<name>.{lambda,explore,thompson,explore_floor,exclude}\n";

static int s_opts(const so_config_t *cfg, so_hbcache_opts_t *co, so_decide_opts_t *ro, char *err,
                  size_t errlen)
{
    long v;
    double x;
    if (so_hbcache_config(cfg, co, err, errlen) != 0 ||
        so_config_double(cfg, "lambda", ro->lambda, 0, 1e9, &ro->lambda, err, errlen) != 0 ||
        so_config_double(cfg, "explore_floor", ro->explore_floor, 0, 1, &ro->explore_floor, err,
                         errlen) != 0 ||
        so_config_double(cfg, "min_obs", co->router.min_obs, 0, 1e9, &co->router.min_obs, err,
                         errlen) != 0)
        return -1;
    if (so_config_long(cfg, "thompson", ro->thompson, 0, 1, &v, err, errlen) != 0)
        return -1;
    ro->thompson = (int) v;
    if (so_config_long(cfg, "budget_fallback", ro->budget_fallback, 0, 1, &v, err, errlen) != 0)
        return -1;
    ro->budget_fallback = (int) v;
    /* A seed up to 2^53 is exact in a double. */
    if (so_config_double(cfg, "seed", (double) ro->seed, 0, 9007199254740992.0, &x, err,
                         errlen) != 0)
        return -1;
    ro->seed = (uint64_t) x;
    const char *norm = so_config_get(cfg, "cost_norm", "linear");
    if (strcmp(norm, "linear") == 0) {
        co->router.cost_norm = SO_COST_LINEAR;
    } else if (strcmp(norm, "log") == 0) {
        co->router.cost_norm = SO_COST_LOG;
    } else {
        return so_err(err, errlen, "cost_norm: '%s' unknown (linear or log)", norm);
    }
    return 0;
}

/* Everything the router reads before it binds: 0, or -1 with err. */
static int s_setup(const so_config_t *cfg, so_hbcache_opts_t *co, so_decide_opts_t *ro,
                   so_server_svc_t *svc, so_profiles_t **profiles, char *err, size_t errlen)
{
    so_hbcache_opts_default(co);
    co->with_router = 1;
    so_decide_opts_default(ro);
    if (s_opts(cfg, co, ro, err, errlen) != 0 ||
        so_server_svc_config(svc, cfg, "tcp://127.0.0.1:5558", err, errlen) != 0)
        return -1;
    so_profile_t base = { .name = "",
                          .lambda = ro->lambda,
                          .thompson = ro->thompson,
                          .explore_floor = ro->explore_floor };
    *profiles = so_profiles_new(cfg, &base, err, errlen);
    ro->profiles = *profiles;
    return *profiles ? 0 : -1;
}

int main(int argc, char **argv)
{
    int code = 0;
    so_config_t *cfg = so_cli_config("router", argc, argv, s_usage, &code);
    if (!cfg)
        return code;
    char err[512];
    so_hbcache_opts_t co;
    so_decide_opts_t ro;
    so_server_svc_t svc;
    so_profiles_t *profiles = NULL;
    int rc = s_setup(cfg, &co, &ro, &svc, &profiles, err, sizeof err);
    so_hbcache_t *cache = rc == 0 ? so_hbcache_new(&co, err, sizeof err) : NULL;
    int start = so_server_svc_start(&svc, cache != NULL, err);
    if (start != 0) {
        so_hbcache_destroy(&cache);
        so_profiles_destroy(&profiles);
        so_config_destroy(&cfg);
        return start;
    }
    so_info("started",
            "endpoint=%s redis=%s cache_versions=%zu stats_refresh_ms=%d lambda=%g "
            "thompson=%d explore_floor=%g seed=%llu budget_fallback=%d profiles=%s",
            svc.endpoint, co.redis_url, co.max_versions, co.refresh_ms, ro.lambda, ro.thompson,
            ro.explore_floor, (unsigned long long) ro.seed, ro.budget_fallback,
            so_profiles_names(profiles));

    so_decide_t *handler = so_decide_new(cache, &ro);
    so_server_opts_t so = {
        .expect = SO_MSG_ROUTE_REQUEST,
        .handle = so_decide_handle,
        .tick = so_decide_tick,
        .stats = so_decide_stats,
        .arg = handler,
    };
    int ret = so_server_svc_run(&svc, &so);

    so_decide_destroy(&handler);
    so_hbcache_destroy(&cache);
    so_profiles_destroy(&profiles);
    so_config_destroy(&cfg);
    so_info("exit", "code=%d", ret);
    return ret;
}
