/*
 * so_svc — what every service shares: configuration (a key = value file with
 * environment overrides), one log line per event, SIGTERM/SIGINT handling
 * and a monotonic clock.
 *
 * Config files hold "key = value" lines; '#' starts a comment; keys are
 * letters, digits and . _ - / ("redis.url", "agent.meta/llama-2-70b-chat.model":
 * agent ids may hold '/').  An environment variable overrides a key:
 * SO_<SERVICE>_<KEY> first, then SO_<KEY>, with the key uppercased and '.',
 * '-' or '/' turned into '_' (redis.url → SO_REDIS_URL, or
 * SO_ROUTER_REDIS_URL for the router only).
 */
#ifndef SO_SVC_H
#define SO_SVC_H

#include "base/so_buf.h"

#include <stdint.h>
#include <stddef.h>

typedef struct so_config so_config_t;

so_config_t *so_config_new(const char *service);
void so_config_destroy(so_config_t **self_p);
/* Reads a file; a malformed line is an error naming file and line. */
int so_config_load(so_config_t *c, const char *path, char *err, size_t errlen);
/* Sets a key (command-line overrides). */
void so_config_set(so_config_t *c, const char *key, const char *value);
/* The value: environment override, else file/set value, else def. */
const char *so_config_get(const so_config_t *c, const char *key, const char *def);
/* Numeric values with a range; a malformed or out-of-range value is an
 * error naming the key, its source and the value. */
int so_config_long(const so_config_t *c, const char *key, long def, long min, long max, long *out,
                   char *err, size_t errlen);
int so_config_double(const so_config_t *c, const char *key, double def, double min, double max,
                     double *out, char *err, size_t errlen);

/* Logging: "2026-11-25T09:00:00.123Z router[host:pid] info event k=v ...". */
typedef enum {
    SO_LOG_DEBUG = 0,
    SO_LOG_INFO = 1,
    SO_LOG_WARN = 2,
    SO_LOG_ERROR = 3
} so_log_level_t;
void so_log_open(const char *service, so_log_level_t min_level);
/* log.format = json: one JSON object a line instead of text (for log
 * collectors): {"ts", "service", "instance", "level", "event", then the
 * event's key=value pairs as fields}; a message that is not key=value pairs
 * goes whole into "msg".  Numbers stay numbers; invalid UTF-8 becomes '?'. */
void so_log_set_json(int on);
/* The JSON line of one event (no newline), appended to out. */
void so_log_json_line(so_buf_t *out, const char *ts, const char *service, const char *instance,
                      const char *level, const char *event, const char *msg);
void so_log(so_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define so_info(ev, ...) so_log(SO_LOG_INFO, ev, __VA_ARGS__)
#define so_warn(ev, ...) so_log(SO_LOG_WARN, ev, __VA_ARGS__)
#define so_error(ev, ...) so_log(SO_LOG_ERROR, ev, __VA_ARGS__)
#define so_debug(ev, ...) so_log(SO_LOG_DEBUG, ev, __VA_ARGS__)
/* This process's instance name, "host:pid" (static storage). */
const char *so_instance(void);

/* SIGTERM and SIGINT set a flag (and interrupt blocking calls). */
void so_signals_install(void);
int so_stopping(void);
void so_request_stop(void);

int64_t so_now_ms(void);  /* monotonic */
int64_t so_wall_ms(void); /* Unix epoch */

/* A fresh random id ("ep-" prefix + 16 hex digits, say). */
void so_new_id(const char *prefix, char *buf, size_t len);

#endif
