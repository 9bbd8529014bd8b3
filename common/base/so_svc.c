/* so_svc — config, logging, signals and clocks for the services (see so_svc.h). */
#include "base/so_svc.h"
#include "base/so_alloc.h"
#include "base/so_text.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *key, *value;
    char origin[160];
} s_entry_t;

struct so_config {
    char *service;
    s_entry_t *e;
    size_t n;
};

so_config_t *so_config_new(const char *service)
{
    so_config_t *c = so_calloc(1, sizeof *c);
    c->service = so_strdup(service ? service : "");
    return c;
}

void so_config_destroy(so_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_config_t *c = *self_p;
    for (size_t i = 0; i < c->n; i++) {
        free(c->e[i].key);
        free(c->e[i].value);
    }
    free(c->e);
    free(c->service);
    free(c);
    *self_p = NULL;
}

static void s_set(so_config_t *c, const char *key, const char *value, const char *origin)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].key, key) == 0) {
            free(c->e[i].value);
            c->e[i].value = so_strdup(value);
            snprintf(c->e[i].origin, sizeof c->e[i].origin, "%s", origin);
            return;
        }
    c->e = so_reallocarray(c->e, c->n + 1, sizeof *c->e);
    c->e[c->n].key = so_strdup(key);
    c->e[c->n].value = so_strdup(value);
    snprintf(c->e[c->n].origin, sizeof c->e[c->n].origin, "%s", origin);
    c->n++;
}

void so_config_set(so_config_t *c, const char *key, const char *value)
{
    s_set(c, key, value, "command line");
}

static char *s_trim(char *s)
{
    while (isspace((unsigned char) *s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char) e[-1]))
        *--e = '\0';
    return s;
}

int so_config_load(so_config_t *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[4096], origin[160];
    int lineno = 0;
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line longer than %zu bytes", path, lineno, sizeof line);
            fclose(f);
            return -1;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = s_trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'key = value', got '%.60s'", path, lineno, s);
            fclose(f);
            return -1;
        }
        *eq = '\0';
        char *k = s_trim(s), *v = s_trim(eq + 1);
        if (!*k) {
            snprintf(err, errlen, "%s:%d: empty key", path, lineno);
            fclose(f);
            return -1;
        }
        for (char *p = k; *p; p++)
            if (!(isalnum((unsigned char) *p) || strchr("._-/", *p))) {
                snprintf(err, errlen, "%s:%d: bad character '%c' in key '%s'", path, lineno, *p,
                         k);
                fclose(f);
                return -1;
            }
        snprintf(origin, sizeof origin, "%s:%d", path, lineno);
        s_set(c, k, v, origin);
    }
    fclose(f);
    return 0;
}

/* SO_<PREFIX><KEY> with the key uppercased and '.'/'-' as '_'. */
static const char *s_env(const char *prefix, const char *key, char *name, size_t len)
{
    size_t n = (size_t) snprintf(name, len, "SO_%s", prefix);
    for (const char *p = key; *p && n + 1 < len; p++)
        name[n++] = strchr(".-/", *p) ? '_' : (char) toupper((unsigned char) *p);
    name[n] = '\0';
    return getenv(name);
}

static const char *s_lookup(const so_config_t *c, const char *key, char *origin, size_t olen)
{
    char name[160], prefix[64];
    size_t n = 0;
    for (const char *p = c->service; *p && n + 2 < sizeof prefix; p++)
        prefix[n++] = (*p == '-' || *p == '.') ? '_' : (char) toupper((unsigned char) *p);
    prefix[n++] = '_';
    prefix[n] = '\0';
    const char *v = *c->service ? s_env(prefix, key, name, sizeof name) : NULL;
    if (!v)
        v = s_env("", key, name, sizeof name);
    if (v) {
        snprintf(origin, olen, "environment %s", name);
        return v;
    }
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].key, key) == 0) {
            snprintf(origin, olen, "%s", c->e[i].origin);
            return c->e[i].value;
        }
    return NULL;
}

const char *so_config_get(const so_config_t *c, const char *key, const char *def)
{
    char origin[300];
    const char *v = s_lookup(c, key, origin, sizeof origin);
    return v ? v : def;
}

int so_config_double(const so_config_t *c, const char *key, double def, double min, double max,
                     double *out, char *err, size_t errlen)
{
    char origin[300];
    const char *v = s_lookup(c, key, origin, sizeof origin);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *s_trim(end) || errno || !(d >= min && d <= max)) {
        snprintf(err, errlen, "config %s (from %s): expected a number in [%g, %g], got '%s'", key,
                 origin, min, max, v);
        return -1;
    }
    *out = d;
    return 0;
}

int so_config_long(const so_config_t *c, const char *key, long def, long min, long max, long *out,
                   char *err, size_t errlen)
{
    char origin[300];
    const char *v = s_lookup(c, key, origin, sizeof origin);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long l = strtol(v, &end, 10);
    if (end == v || *end || errno || l < min || l > max) {
        snprintf(err, errlen, "config %s (from %s): expected an integer in [%ld, %ld], got '%s'",
                 key, origin, min, max, v);
        return -1;
    }
    *out = l;
    return 0;
}

/* ------------------------------------------------------------------ */

static char s_service[64] = "so";
static char s_inst[128];
static so_log_level_t s_min_level = SO_LOG_INFO;
static int s_json;
static volatile sig_atomic_t s_stop;

void so_log_open(const char *service, so_log_level_t min_level)
{
    char host[64] = "localhost";
    snprintf(s_service, sizeof s_service, "%s", service);
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(s_inst, sizeof s_inst, "%s:%ld", host, (long) getpid());
    s_min_level = min_level;
    setvbuf(stderr, NULL, _IOLBF, 0);
}

const char *so_instance(void)
{
    if (!s_inst[0])
        snprintf(s_inst, sizeof s_inst, "localhost:%ld", (long) getpid());
    return s_inst;
}

void so_log(so_log_level_t level, const char *event, const char *fmt, ...)
{
    static const char *names[] = { "debug", "info", "warn", "error" };
    char line[2048], ts[40];
    struct timespec now;
    struct tm tm;
    if (level < s_min_level)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(line, sizeof line, "%s.%03ldZ %s[%s] %s %s ", ts, now.tv_nsec / 1000000,
                     s_service, so_instance(), names[level], event);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t) n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t) n, fmt, ap);
    va_end(ap);
    if (s_json) {
        char stamp[64];
        snprintf(stamp, sizeof stamp, "%s.%03ldZ", ts, now.tv_nsec / 1000000);
        so_buf_t b = SO_BUF_INIT;
        so_log_json_line(&b, stamp, s_service, so_instance(), names[level], event,
                         n > 0 && (size_t) n < sizeof line ? line + n : "");
        fprintf(stderr, "%s\n", so_buf_str(&b));
        so_buf_free(&b);
        return;
    }
    /* One write per line, so lines from threads and replicas never interleave. */
    fprintf(stderr, "%s\n", line);
}

void so_log_set_json(int on)
{
    s_json = on;
}

/* A JSON string: escapes, control characters as \u00XX, invalid UTF-8 as '?'. */
static void s_json_str(so_buf_t *b, const char *s, size_t len)
{
    so_buf_putc(b, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char) s[i];
        int n = so_utf8_seq(s + i, len - i);
        if (n <= 0) {
            so_buf_putc(b, '?');
            i++;
        } else if (c == '"' || c == '\\') {
            so_buf_putc(b, '\\');
            so_buf_putc(b, (char) c);
            i++;
        } else if (c < 0x20) {
            so_buf_appendf(b, "\\u%04x", c);
            i++;
        } else {
            so_buf_append(b, s + i, (size_t) n);
            i += (size_t) n;
        }
    }
    so_buf_putc(b, '"');
}

/* 1 if v[0..len) is a JSON number as logs write them: -?(0|[1-9][0-9]*)(.[0-9]+)? */
static int s_is_number(const char *v, size_t len)
{
    size_t i = len > 0 && v[0] == '-';
    size_t int_start = i;
    while (i < len && isdigit((unsigned char) v[i]))
        i++;
    size_t int_len = i - int_start;
    if (int_len == 0 || (int_len > 1 && v[int_start] == '0'))
        return 0;
    if (i < len && v[i] == '.') {
        size_t frac_start = ++i;
        while (i < len && isdigit((unsigned char) v[i]))
            i++;
        if (i == frac_start)
            return 0;
    }
    return i == len;
}

/* Splits "k=v k2=\"v 2\" ..." into fields; 0 when msg is not that shape. */
static int s_json_fields(so_buf_t *b, const char *msg)
{
    so_buf_t f = SO_BUF_INIT;
    const char *p = msg;
    while (*p) {
        const char *k = p;
        while (isalnum((unsigned char) *p) || *p == '_' || *p == '.' || *p == '-')
            p++;
        if (p == k || *p != '=')
            break;
        size_t klen = (size_t) (p - k);
        const char *v = ++p, *end;
        if (*v == '"') { /* a quoted value ends at a quote before a blank or the end */
            end = v + 1;
            while (*end && !(end[0] == '"' && (end[1] == ' ' || end[1] == '\0')))
                end++;
            if (!*end)
                break;
            p = end + 1;
            v++;
        } else {
            end = v;
            while (*end && *end != ' ')
                end++;
            p = end;
        }
        so_buf_putc(&f, ',');
        s_json_str(&f, k, klen);
        so_buf_putc(&f, ':');
        if (s_is_number(v, (size_t) (end - v)))
            so_buf_append(&f, v, (size_t) (end - v));
        else
            s_json_str(&f, v, (size_t) (end - v));
        while (*p == ' ')
            p++;
    }
    int ok = *p == '\0';
    if (ok)
        so_buf_append(b, so_buf_str(&f), f.len);
    so_buf_free(&f);
    return ok;
}

void so_log_json_line(so_buf_t *out, const char *ts, const char *service, const char *instance,
                      const char *level, const char *event, const char *msg)
{
    const char *keys[] = { "ts", "service", "instance", "level", "event" };
    const char *vals[] = { ts, service, instance, level, event };
    so_buf_putc(out, '{');
    for (size_t i = 0; i < 5; i++) {
        if (i)
            so_buf_putc(out, ',');
        s_json_str(out, keys[i], strlen(keys[i]));
        so_buf_putc(out, ':');
        s_json_str(out, vals[i], strlen(vals[i]));
    }
    if (*msg && !s_json_fields(out, msg)) {
        so_buf_puts(out, ",\"msg\":");
        s_json_str(out, msg, strlen(msg));
    }
    so_buf_putc(out, '}');
}

static void s_on_signal(int sig)
{
    (void) sig;
    s_stop = 1;
}

void so_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int so_stopping(void)
{
    return s_stop != 0;
}

void so_request_stop(void)
{
    s_stop = 1;
}

int64_t so_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t) t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int64_t so_wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t) t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void so_new_id(const char *prefix, char *buf, size_t len)
{
    static uint64_t state;
    if (!state) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        state = ((uint64_t) t.tv_nsec << 20) ^ (uint64_t) t.tv_sec ^ ((uint64_t) getpid() << 40);
    }
    /* splitmix64 step: unique per process, unpredictable enough for ids. */
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    snprintf(buf, len, "%s%016llx", prefix ? prefix : "", (unsigned long long) z);
}
