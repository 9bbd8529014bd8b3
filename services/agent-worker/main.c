/*
 * so-agent-worker — executes AgentCalls for the gateway: replay backend
 * (recorded outcomes) or live backend (OpenAI-compatible endpoints).
 * Settings: config/agent-worker.conf; providers: docs/PROVIDERS.md.
 */
#include "so_backend.h"
#include "base/so_cli.h"
#include "base/so_err.h"
#include "wire/so_sock.h"
#include "base/so_svc.h"
#include "so_worker.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define S_DEFAULT_FILES \
    "../shared/data/routerbench/arc_challenge_test.csv," \
    "../shared/data/routerbench/mbpp_test.csv," \
    "../shared/data/routerbench/winograde_test.csv," \
    "../shared/data/routerbench/arc_challenge_train.csv," \
    "../shared/data/routerbench/mbpp_train.csv," \
    "../shared/data/routerbench/winograde_train.csv"

static const char *s_usage =
    "Keys: worker.id gateway.endpoint capacity threads heartbeat_ms liveness delay_ms\n"
    "      backend (replay|live) replay.files drain_ms stats_ms log.level zmq.*\n"
    "      live.agents agent.<id>.{base_url,model,api_key_env,price_in,price_out,context,\n"
    "      max_tokens,max_tokens_field,temperature,timeout_ms,connect_timeout_ms,deadline_ms,\n"
    "      max_retries,backoff_base_ms,backoff_max_ms,retry_after_max_ms,max_response_bytes}\n";

typedef struct {
    so_worker_opts_t o;
    int live; /* backend = live */
} s_settings_t;

static int s_settings(const so_config_t *cfg, void *arg, char *err, size_t errlen)
{
    s_settings_t *s = arg;
    so_worker_opts_t *o = &s->o;
    so_worker_opts_default(o);
    long v;
    int rc = 0;
    const char *wid = so_config_get(cfg, "worker.id", NULL);
    if (wid)
        snprintf(o->worker_id, sizeof o->worker_id, "%s", wid);
    o->endpoint = so_config_get(cfg, "gateway.endpoint", o->endpoint);
#define S_LONG(key, field, min, max) \
    if (rc == 0 && \
        (rc = so_config_long(cfg, key, (long) o->field, min, max, &v, err, errlen)) == 0) \
        o->field = (int) v;
    S_LONG("heartbeat_ms", heartbeat_ms, 10, 60000);
    S_LONG("liveness", liveness, 1, 100);
    S_LONG("delay_ms", delay_ms, 0, 600000);
    S_LONG("drain_ms", drain_ms, 0, 600000);
    S_LONG("stats_ms", stats_ms, 0, 3600000);
    S_LONG("reconnect_max_ms", reconnect_max_ms, 10, 600000);
#undef S_LONG
    if (rc == 0 && (rc = so_config_long(cfg, "capacity", (long) o->capacity, 1,
                                        SO_CTL_MAX_CAPACITY, &v, err, errlen)) == 0)
        o->capacity = (unsigned) v;
    if (rc == 0)
        rc = so_sock_opts(cfg, &o->sockopts, err, errlen);
    if (rc != 0)
        return -1;
    if (wid && (strlen(wid) == 0 || strlen(wid) > SO_WIRE_MAX_ID))
        return so_err(err, errlen, "worker.id: want 1..%d bytes", SO_WIRE_MAX_ID);
    const char *backend_name = so_config_get(cfg, "backend", "replay");
    s->live = strcmp(backend_name, "live") == 0;
    if (!s->live && strcmp(backend_name, "replay") != 0)
        return so_err(err, errlen, "backend: '%s' unknown (want replay or live)", backend_name);
    /* Live calls take seconds: by default one thread per slot, so the loop
     * keeps heartbeating; replay answers in microseconds in the loop. */
    if (so_config_long(cfg, "threads", s->live ? (long) o->capacity : 0, 0, SO_CTL_MAX_CAPACITY,
                       &v, err, errlen) != 0)
        return -1;
    o->threads = (unsigned) v;
    if (!s->live && o->threads > 0)
        return so_err(err, errlen, "threads: the replay backend runs in the loop (threads = 0)");
    return 0;
}

int main(int argc, char **argv)
{
    int code = 0;
    s_settings_t set;
    so_config_t *cfg = so_cli_start("agent-worker", argc, argv, s_usage, s_settings, &set, &code);
    if (!cfg)
        return code;
    char err[512];
    so_worker_opts_t o = set.o;
    int live = set.live;

    /* A live worker tells the gateway which agents it serves (READY), so
     * calls for other agents go to other workers. */
    char agents[SO_CTL_MAX_AGENTS_LEN + 1] = "";
    if (live) {
        const char *list = so_config_get(cfg, "live.agents", "");
        size_t n = 0;
        for (const char *p = list; *p && n < SO_CTL_MAX_AGENTS_LEN; p++)
            if (!isspace((unsigned char) *p))
                agents[n++] = *p;
        agents[n] = '\0';
        o.agents = agents;
    }
    so_backend_t *backend;
    if (live) {
        backend = so_live_new(cfg, err, sizeof err);
        if (!backend) {
            so_error("config", "backend=live error=\"%s\"", err);
            so_config_destroy(&cfg);
            return 2;
        }
    } else {
        const char *files = so_config_get(cfg, "replay.files", S_DEFAULT_FILES);
        size_t n_prompts = 0, dups = 0;
        int64_t t0 = so_now_ms();
        backend = so_replay_new(files, &n_prompts, &dups, err, sizeof err);
        if (!backend) {
            so_error("replay_load_failed", "files=%s error=\"%s\"", files, err);
            so_config_destroy(&cfg);
            return 1;
        }
        so_info("replay_loaded", "prompts=%zu duplicate_prompts=%zu load_ms=%lld", n_prompts,
                dups, (long long) (so_now_ms() - t0));
    }
    int ret = so_worker_run(&o, backend);
    so_backend_destroy(&backend);
    so_config_destroy(&cfg);
    return ret;
}
