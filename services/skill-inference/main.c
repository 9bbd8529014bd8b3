/*
 * so-skill-inference — TurnRequest → SkillDemand over a ROUTER socket
 * (docs/SERVICES.md, "Skill inference").  Settings:
 * config/skill-inference.conf.
 */
#include "so_demand.h"
#include "base/so_cli.h"
#include "base/so_err.h"
#include "base/so_svc.h"
#include "store/so_hbcache.h"
#include "wire/so_server.h"

#include <string.h>

static const char *s_usage =
    "Keys: endpoint redis.url redis.prefix redis.timeout_ms cache.versions stats_refresh_ms\n"
    "      negative_ttl_ms backoff_max_ms infer.temperature infer.mode stats_ms drain_ms\n"
    "      log.level zmq.*\n"
    "      llm.base_url llm.model llm.api_key_env llm.timeout_ms llm.connect_timeout_ms\n"
    "      llm.max_retries llm.threads llm.max_inflight llm.max_tokens llm.temperature\n"
    "      llm.cache_entries llm.cache_ttl_ms llm.examples llm.example_chars\n"
    "      llm.indicators llm.text_chars llm.max_skills  (infer.mode = llm)\n";

/* The llm-mode settings: the LLM endpoint and pool, the analysis cache and
 * the prompt's size.  0, or -1 with err naming the key. */
static int s_llm_config(const so_config_t *cfg, so_llminfer_opts_t *lo, long *cache_entries,
                        long *cache_ttl_ms, so_skillprompt_opts_t *po, char *err, size_t errlen)
{
    long v;
    so_llminfer_opts_default(lo);
    so_skillprompt_opts_default(po);
    if (so_llminfer_config(cfg, lo, err, errlen) != 0 ||
        so_config_long(cfg, "llm.cache_entries", 4096, 0, 10000000, cache_entries, err, errlen) !=
            0 ||
        so_config_long(cfg, "llm.cache_ttl_ms", 0, 0, 86400000L * 30, cache_ttl_ms, err,
                       errlen) != 0)
        return -1;
    struct {
        const char *key;
        size_t *field;
        long min, max;
    } keys[] = {
        { "llm.examples", &po->max_examples, 0, 20 },
        { "llm.example_chars", &po->example_chars, 20, 4000 },
        { "llm.indicators", &po->max_indicators, 0, 50 },
        { "llm.text_chars", &po->text_chars, 100, 1 << 20 },
        { "llm.max_skills", &po->max_skills, 1, 50 },
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        if (so_config_long(cfg, keys[i].key, (long) *keys[i].field, keys[i].min, keys[i].max, &v,
                           err, errlen) != 0)
            return -1;
        *keys[i].field = (size_t) v;
    }
    return 0;
}

/* Everything skill-inference reads before it binds, and the LLM client in
 * llm mode (*llm stays NULL in embedded mode): 0, or -1 with err. */
static int s_setup(const so_config_t *cfg, so_hbcache_opts_t *co, so_server_svc_t *svc,
                   so_llminfer_opts_t *lo, so_skillprompt_opts_t *po, long *cache_entries,
                   long *cache_ttl_ms, so_llminfer_t **llm, char *err, size_t errlen)
{
    so_hbcache_opts_default(co);
    co->with_infer = 1;
    if (so_hbcache_config(cfg, co, err, errlen) != 0 ||
        so_config_double(cfg, "infer.temperature", 0, 0, 1e6, &co->infer_temperature, err,
                         errlen) != 0 ||
        so_server_svc_config(svc, cfg, "tcp://127.0.0.1:5557", err, errlen) != 0)
        return -1;
    const char *infer_mode = so_config_get(cfg, "infer.mode", "embedded");
    if (strcmp(infer_mode, "embedded") == 0)
        return 0;
    if (strcmp(infer_mode, "llm") != 0)
        return so_err(err, errlen, "infer.mode: '%.60s' is neither embedded nor llm", infer_mode);
    if (s_llm_config(cfg, lo, cache_entries, cache_ttl_ms, po, err, errlen) != 0)
        return -1;
    *llm = so_llminfer_new(lo, err, errlen);
    return *llm ? 0 : -1;
}

int main(int argc, char **argv)
{
    int code = 0;
    so_config_t *cfg = so_cli_config("skill-inference", argc, argv, s_usage, &code);
    if (!cfg)
        return code;
    char err[512];
    so_hbcache_opts_t co;
    so_server_svc_t svc;
    so_llminfer_opts_t lo;
    so_skillprompt_opts_t po;
    long cache_entries = 0, cache_ttl_ms = 0;
    so_llminfer_t *llm = NULL;
    int rc = s_setup(cfg, &co, &svc, &lo, &po, &cache_entries, &cache_ttl_ms, &llm, err,
                     sizeof err);
    so_hbcache_t *cache = rc == 0 ? so_hbcache_new(&co, err, sizeof err) : NULL;
    int start = so_server_svc_start(&svc, cache != NULL, err);
    if (start != 0) {
        so_hbcache_destroy(&cache);
        so_llminfer_destroy(&llm);
        so_config_destroy(&cfg);
        return start;
    }
    so_info("started", "endpoint=%s redis=%s cache_versions=%zu stats_refresh_ms=%d mode=%s",
            svc.endpoint, co.redis_url, co.max_versions, co.refresh_ms, llm ? "llm" : "embedded");

    so_demand_t *handler = so_demand_new(cache);
    so_llmcache_t *acache = NULL;
    if (llm) {
        /* An analysis names at most every skill of a mode: the wire's cap. */
        acache = so_llmcache_new((size_t) cache_entries, SO_WIRE_MAX_SKILLS, cache_ttl_ms);
        so_demand_use_llm(handler, llm, acache, &po);
        so_info("llm",
                "base_url=%s model=%s timeout_ms=%ld threads=%u max_inflight=%zu "
                "cache_entries=%ld",
                lo.base_url, lo.model, lo.timeout_ms, lo.threads, lo.max_inflight, cache_entries);
    }
    so_server_opts_t so = {
        .expect = SO_MSG_TURN_REQUEST,
        .handle = so_demand_handle,
        .tick = so_demand_tick,
        .stats = so_demand_stats,
        .arg = handler,
        .deferred = llm ? so_demand_deferred : NULL,
        .wake_fd = llm ? so_llminfer_wake_fd(llm) : -1,
    };
    int ret = so_server_svc_run(&svc, &so);

    so_demand_destroy(&handler);
    so_llminfer_destroy(&llm); /* every job was answered by the drain */
    so_llmcache_destroy(&acache);
    so_hbcache_destroy(&cache);
    so_config_destroy(&cfg);
    so_info("exit", "code=%d", ret);
    return ret;
}
