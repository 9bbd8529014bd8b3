/*
 * so-learner — applies completed episodes from the episode log to the
 * competence statistics in Redis, and refines the handbook now and then.
 * Run as many as you like: they share the consumer group "learners".
 * Settings: config/learner.conf; design: docs/SERVICES.md ("Learner").
 */
#include "base/so_cli.h"
#include "so_learner.h"
#include "base/so_svc.h"

#include <stdio.h>

static const char *s_usage =
    "Keys: redis.url redis.prefix redis.timeout_ms learner.id group batch block_ms\n"
    "      claim.min_idle_ms claim.every_ms cache.versions cache.ttl_ms dead.maxlen\n"
    "      backoff_max_ms stats_ms refine.every_episodes refine.check_ms refine.alpha\n"
    "      refine.min_attempts refine.max_merges refine.always_publish refine.lock_ttl_ms\n"
    "      log.level\n";

static int s_settings(const so_config_t *cfg, void *o, char *err, size_t errlen)
{
    so_learner_opts_default(o);
    return so_learner_config(cfg, o, err, errlen) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    int code = 0;
    so_learner_opts_t o;
    so_config_t *cfg = so_cli_start("learner", argc, argv, s_usage, s_settings, &o, &code);
    if (!cfg)
        return code;
    char err[512];
    so_learner_t *l = so_learner_new(&o, err, sizeof err);
    if (!l) {
        so_error("config", "error=\"%s\"", err);
        so_config_destroy(&cfg);
        return 2;
    }
    int rc = so_learner_run(l);
    so_learner_destroy(&l);
    so_config_destroy(&cfg);
    return rc;
}
