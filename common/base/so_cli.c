/*
 * so_cli — see so_cli.h.
 */
#include "base/so_cli.h"

#include <stdio.h>
#include <string.h>

static void s_usage(const char *service, const char *usage, FILE *out)
{
    char upper[64];
    size_t i;
    for (i = 0; service[i] && i < sizeof upper - 1; i++)
        upper[i] = service[i] == '-' ? '_'
                   : service[i] >= 'a' && service[i] <= 'z' ? (char) (service[i] - 32)
                                                            : service[i];
    upper[i] = '\0';
    fprintf(out,
            "usage: so-%s [--config FILE] [--set key=value]... [--help]\n"
            "  --config FILE     key = value settings (see config/%s.conf)\n"
            "  --set key=value   one setting (overrides the file)\n"
            "Environment: SO_%s_<KEY> or SO_<KEY> overrides a key (redis.url -> SO_REDIS_URL).\n",
            service, service, upper);
    if (usage && *usage)
        fprintf(out, "%s", usage);
}

so_config_t *so_cli_config(const char *service, int argc, char **argv, const char *usage,
                           int *exit_code)
{
    char err[512];
    so_config_t *cfg = so_config_new(service);
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            s_usage(service, usage, stdout);
            *exit_code = 0;
            so_config_destroy(&cfg);
            return NULL;
        } else if (strcmp(argv[a], "--config") == 0 && a + 1 < argc) {
            if (so_config_load(cfg, argv[++a], err, sizeof err) != 0) {
                fprintf(stderr, "so-%s: %s\n", service, err);
                *exit_code = 2;
                so_config_destroy(&cfg);
                return NULL;
            }
        } else if (strcmp(argv[a], "--set") == 0 && a + 1 < argc) {
            char kv[1024];
            snprintf(kv, sizeof kv, "%s", argv[++a]);
            char *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                fprintf(stderr, "so-%s: --set wants key=value, got '%s'\n", service, kv);
                *exit_code = 2;
                so_config_destroy(&cfg);
                return NULL;
            }
            *eq = '\0';
            so_config_set(cfg, kv, eq + 1);
        } else {
            fprintf(stderr, "so-%s: unknown argument '%s'\n", service, argv[a]);
            s_usage(service, usage, stderr);
            *exit_code = 2;
            so_config_destroy(&cfg);
            return NULL;
        }
    }
    const char *lvl = so_config_get(cfg, "log.level", "info");
    so_log_level_t level = SO_LOG_INFO;
    if (strcmp(lvl, "debug") == 0)
        level = SO_LOG_DEBUG;
    else if (strcmp(lvl, "warn") == 0)
        level = SO_LOG_WARN;
    else if (strcmp(lvl, "error") == 0)
        level = SO_LOG_ERROR;
    so_log_open(service, level);
    so_signals_install();
    return cfg;
}
