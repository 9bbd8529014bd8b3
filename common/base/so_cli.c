/*
 * so_cli — see so_cli.h.
 */
#include "base/so_cli.h"

#include "base/so_opts.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static void s_usage(const so_opts_t *p, const char *service, const char *usage, FILE *out)
{
    char upper[64], synopsis[128], env[256];
    size_t i;
    for (i = 0; service[i] && i < sizeof upper - 1; i++)
        upper[i] = service[i] == '-' ? '_' : (char) toupper((unsigned char) service[i]);
    upper[i] = '\0';
    snprintf(synopsis, sizeof synopsis, "so-%s [--config FILE] [--set key=value]... [--help]",
             service);
    snprintf(
        env, sizeof env,
        "Environment: SO_%s_<KEY> or SO_<KEY> overrides a key (redis.url -> SO_REDIS_URL).\n",
        upper);
    so_opts_usage(p, out, synopsis, env);
    if (usage && *usage)
        fprintf(out, "%s", usage);
}

/* Loads every --config file in order, then applies every --set. */
static int s_apply(so_config_t *cfg, const char *service, const so_opt_list_t *files,
                   const so_opt_list_t *sets)
{
    char err[512];
    for (size_t i = 0; i < files->n; i++)
        if (so_config_load(cfg, files->items[i], err, sizeof err) != 0) {
            fprintf(stderr, "so-%s: %s\n", service, err);
            return -1;
        }
    for (size_t i = 0; i < sets->n; i++) {
        char kv[1024];
        snprintf(kv, sizeof kv, "%s", sets->items[i]);
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            fprintf(stderr, "so-%s: --set wants key=value, got '%s'\n", service, kv);
            return -1;
        }
        *eq = '\0';
        so_config_set(cfg, kv, eq + 1);
    }
    return 0;
}

/* log.level and log.format; -1 (message on stderr) for a format not known. */
static int s_open_log(const so_config_t *cfg, const char *service)
{
    const char *format = so_config_get(cfg, "log.format", "text");
    if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
        fprintf(stderr, "so-%s: log.format: '%s' unknown (text or json)\n", service, format);
        return -1;
    }
    so_log_set_json(strcmp(format, "json") == 0);
    const char *lvl = so_config_get(cfg, "log.level", "info");
    so_log_level_t level = SO_LOG_INFO;
    if (strcmp(lvl, "debug") == 0)
        level = SO_LOG_DEBUG;
    else if (strcmp(lvl, "warn") == 0)
        level = SO_LOG_WARN;
    else if (strcmp(lvl, "error") == 0)
        level = SO_LOG_ERROR;
    so_log_open(service, level);
    return 0;
}

so_config_t *so_cli_config(const char *service, int argc, char **argv, const char *usage,
                           int *exit_code)
{
    char err[512], config_help[128];
    snprintf(config_help, sizeof config_help, "key = value settings (see config/%s.conf)",
             service);
    so_opt_list_t files = { 0 }, sets = { 0 };
    so_opt_t opts[] = {
        SO_OPT_LIST("config", 0, &files, "FILE", config_help),
        SO_OPT_LIST("set", 0, &sets, "key=value", "one setting (overrides the file)"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    so_config_t *cfg = NULL;
    *exit_code = 2;
    if (so_opts_parse(&p, argc - 1, argv + 1, err, sizeof err) < 0) {
        fprintf(stderr, "so-%s: %s\n", service, err);
        s_usage(&p, service, usage, stderr);
    } else if (p.help) {
        s_usage(&p, service, usage, stdout);
        *exit_code = 0;
    } else {
        cfg = so_config_new(service);
        if (s_apply(cfg, service, &files, &sets) < 0)
            so_config_destroy(&cfg);
    }
    so_opt_list_free(&files);
    so_opt_list_free(&sets);
    if (!cfg)
        return NULL;
    if (s_open_log(cfg, service) < 0) {
        so_config_destroy(&cfg);
        return NULL; /* *exit_code is 2 */
    }
    so_signals_install();
    return cfg;
}

so_config_t *so_cli_start(const char *service, int argc, char **argv, const char *usage,
                          so_cli_settings_fn *settings, void *opts, int *exit_code)
{
    so_config_t *cfg = so_cli_config(service, argc, argv, usage, exit_code);
    if (!cfg)
        return NULL;
    char err[512] = "";
    if (settings(cfg, opts, err, sizeof err) != 0) {
        so_error("config", "error=\"%s\"", err);
        so_config_destroy(&cfg);
        *exit_code = 2;
    }
    return cfg;
}
