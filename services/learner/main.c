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

int main(int argc, char **argv)
{
    int code = 0;
    so_config_t *cfg = so_cli_config("learner", argc, argv, s_usage, &code);
    if (!cfg)
        return code;
    char err[512];
    so_learner_opts_t o;
    so_learner_opts_default(&o);
    if (so_learner_config(cfg, &o, err, sizeof err) < 0) {
        so_error("config", "error=\"%s\"", err);
        so_config_destroy(&cfg);
        return 2;
    }
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
