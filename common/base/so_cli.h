/*
 * so_cli — the command line every service accepts, and the start-up that
 * goes with it:
 *
 *     so-<service> [--config FILE] [--set key=value]... [--help]
 *
 * The --config files load in order, then every --set applies (a --set
 * overrides the files whatever the order on the line); environment
 * variables override both (so_svc).  The options are parsed by so_opts.
 * The log opens at "log.level" (debug, info, warn, error; default info).
 */
#ifndef SO_CLI_H
#define SO_CLI_H

#include "base/so_svc.h"

/* Parses argv and loads the config.  Returns NULL and sets *exit_code (0 for
 * --help, 2 for a usage or config error, message on stderr) when the service
 * should exit.  usage is printed by --help below the common options. */
so_config_t *so_cli_config(const char *service, int argc, char **argv, const char *usage,
                           int *exit_code);

/* A service's settings from its config: fills opts, returns 0, or -1 with a
 * message naming the key and what is wrong in err. */
typedef int so_cli_settings_fn(const so_config_t *cfg, void *opts, char *err, size_t errlen);

/* Every service's start: so_cli_config, then settings(cfg, opts, ...).
 * Returns the config (opts may borrow its strings: destroy it last), or
 * NULL with *exit_code set (0 for --help, 2 for a usage or config error; a
 * settings error is logged as `config error="..."`). */
so_config_t *so_cli_start(const char *service, int argc, char **argv, const char *usage,
                          so_cli_settings_fn *settings, void *opts, int *exit_code);

#endif
