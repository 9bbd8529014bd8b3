/*
 * so_store — the shared state in Redis (see so_store.h for the key layout).
 *
 * Every command goes through s_command/s_commandv, which reconnect when the
 * connection broke (setting the read timeout and keepalive again, and
 * loading the function library again), check for NULL and error replies and
 * leave a readable message in err.  Callers then check the reply type
 * before touching it: nothing Redis returns is trusted to have the shape we
 * expect, since anyone with access may have written those keys.
 *
 * Credit assignment (s_credit) is shared by the three places that turn an
 * episode into statistics — so_store_apply_episode (one FCALL), the rebuild
 * (FCALLs into temporary keys) and the in-memory replay — so they cannot
 * disagree on what an episode is worth.
 */
#include "store/so_store.h"
#include "wire/so_wire.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

typedef Skillorchestra__V1__EpisodeOutcome s_episode_t;
typedef Skillorchestra__V1__TurnRecord s_turn_t;

#define S_KEY_MAX 512
#define S_REBUILD_PAGE 500
#define S_REBUILD_ROUNDS 1000      /* catch-up scans before the log is "too busy" */
#define S_REBUILD_TTL_MS 600000    /* temporary keys of an abandoned rebuild expire */

struct so_store {
    redisContext *c;
    char *host;
    int port;
    char *path;                    /* unix socket, or NULL */
    int db;
    char *prefix;
    int timeout_ms;
    int io_error;                  /* the last failure was the connection's */
};

/* The function library.  so_apply is the only writer of the statistics:
 * SADD decides whether the episode is new, and only then are the
 * increments and the sequence bump done — all inside one atomic call.
 * so_swap installs a rebuild only if the log has not grown since the
 * rebuild read it (so no episode applied meanwhile is lost).  so_unlock
 * deletes a lock only for the holder that set it. */
static const char s_library[] =
    "#!lua name=so\n"
    "local function apply(keys, args)\n"
    "  if redis.call('SADD', keys[1], args[1]) == 0 then return 0 end\n"
    "  for i = 2, #args - 1, 2 do\n"
    "    redis.call('HINCRBYFLOAT', keys[2], args[i], args[i + 1])\n"
    "  end\n"
    "  redis.call('INCR', keys[3])\n"
    "  return 1\n"
    "end\n"
    "local function swap(keys, args)\n"
    "  local last = redis.call('XREVRANGE', keys[1], '+', '-', 'COUNT', 1)\n"
    "  local id = '0-0'\n"
    "  if #last > 0 then id = last[1][1] end\n"
    "  if id ~= args[1] then return 0 end\n"
    "  for i = 2, 4 do\n"
    "    if redis.call('EXISTS', keys[i]) == 1 then\n"
    "      redis.call('RENAME', keys[i], keys[i + 3])\n"
    "      redis.call('PERSIST', keys[i + 3])\n"
    "    else\n"
    "      redis.call('DEL', keys[i + 3])\n"
    "    end\n"
    "  end\n"
    "  return 1\n"
    "end\n"
    "local function unlock(keys, args)\n"
    "  if redis.call('GET', keys[1]) == args[1] then return redis.call('DEL', keys[1]) end\n"
    "  return 0\n"
    "end\n"
    "redis.register_function('so_apply', apply)\n"
    "redis.register_function('so_swap', swap)\n"
    "redis.register_function('so_unlock', unlock)\n";

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static char *s_strdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

static void *s_alloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

/* ------------------------------------------------------------------ */
/* Connection                                                         */

static int s_parse_url(so_store_t *s, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "unix:", 5) == 0) {
        const char *p = url + 5;
        if (strncmp(p, "//", 2) == 0)
            p += 2;
        if (!*p)
            return s_fail(err, errlen, "redis url '%s': empty socket path", url);
        s->path = s_strdup(p);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return s_fail(err, errlen, "redis url '%s': expected redis://host:port[/db] or "
                      "unix:/path", url);
    const char *h = url + 8, *at = strchr(h, '@');
    if (at)
        return s_fail(err, errlen, "redis url '%s': credentials in the url are not supported",
                      url);
    size_t hl = strcspn(h, ":/");
    if (hl == 0 || hl > 255)
        return s_fail(err, errlen, "redis url '%s': bad host", url);
    s->host = s_alloc(hl + 1, 1);
    memcpy(s->host, h, hl);
    s->port = 6379;
    const char *p = h + hl;
    if (*p == ':') {
        char *end;
        errno = 0;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || errno || port < 1 || port > 65535 || (*end && *end != '/'))
            return s_fail(err, errlen, "redis url '%s': bad port", url);
        s->port = (int) port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        errno = 0;
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || errno || db < 0 || db > 100000)
            return s_fail(err, errlen, "redis url '%s': bad database number", url);
        s->db = (int) db;
    } else if (*p && strcmp(p, "/") != 0) {
        return s_fail(err, errlen, "redis url '%s': unexpected '%s'", url, p);
    }
    return 0;
}

static int s_io_fail(so_store_t *s, char *err, size_t errlen, const char *what)
{
    s->io_error = 1;
    return s_fail(err, errlen, "redis %s: %s", what,
                  s->c && s->c->errstr[0] ? s->c->errstr : "connection lost");
}

/* (Re)connects and prepares the connection: timeouts, keepalive, database,
 * function library.  hiredis 0.14 forgets the timeout on reconnect, so
 * this always starts from a fresh context. */
static int s_connect(so_store_t *s, char *err, size_t errlen)
{
    struct timeval tv = { s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000 };
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
    s->c = s->path ? redisConnectUnixWithTimeout(s->path, tv)
                   : redisConnectWithTimeout(s->host, s->port, tv);
    if (!s->c || s->c->err) {
        char where[300];
        if (s->path)
            snprintf(where, sizeof where, "connect unix:%s", s->path);
        else
            snprintf(where, sizeof where, "connect %s:%d", s->host, s->port);
        s_io_fail(s, err, errlen, where);
        if (s->c) {
            redisFree(s->c);
            s->c = NULL;
        }
        return -1;
    }
    if (redisSetTimeout(s->c, tv) != REDIS_OK) {
        s_io_fail(s, err, errlen, "set timeout");
        goto fail;
    }
    if (!s->path && redisEnableKeepAlive(s->c) != REDIS_OK) {
        s_io_fail(s, err, errlen, "keepalive");
        goto fail;
    }
    redisReply *r;
    if (s->db) {
        r = redisCommand(s->c, "SELECT %d", s->db);
        if (!r) {
            s_io_fail(s, err, errlen, "SELECT");
            goto fail;
        }
        int bad = r->type == REDIS_REPLY_ERROR;
        if (bad)
            s_fail(err, errlen, "redis SELECT %d: %s", s->db, r->str);
        freeReplyObject(r);
        if (bad) {
            s->io_error = 0;
            goto fail;
        }
    }
    r = redisCommand(s->c, "FUNCTION LOAD REPLACE %s", s_library);
    if (!r) {
        s_io_fail(s, err, errlen, "FUNCTION LOAD");
        goto fail;
    }
    int bad = r->type == REDIS_REPLY_ERROR;
    if (bad)
        s_fail(err, errlen, "redis FUNCTION LOAD (Redis 7 needed): %s", r->str);
    freeReplyObject(r);
    if (bad) {
        s->io_error = 0;
        goto fail;
    }
    return 0;
fail:
    redisFree(s->c);
    s->c = NULL;
    return -1;
}

so_store_t *so_store_connect(const char *url, const char *prefix, int timeout_ms, char *err,
                             size_t errlen)
{
    /* hiredis writes with write(2): a connection Redis closed would kill
     * the process with SIGPIPE instead of returning EPIPE.  Ignore it,
     * unless the program installed a handler of its own. */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    so_store_t *s = s_alloc(1, sizeof *s);
    s->prefix = s_strdup(prefix ? prefix : "so:");
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    if (!url || !*url)
        url = "redis://127.0.0.1:6379";
    if (s_parse_url(s, url, err, errlen) < 0 || s_connect(s, err, errlen) < 0) {
        so_store_destroy(&s);
        return NULL;
    }
    return s;
}

void so_store_destroy(so_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_store_t *s = *self_p;
    if (s->c)
        redisFree(s->c);
    free(s->host);
    free(s->path);
    free(s->prefix);
    free(s);
    *self_p = NULL;
}

int so_store_ensure(so_store_t *s, char *err, size_t errlen)
{
    if (s->c && !s->c->err)
        return 0;
    return s_connect(s, err, errlen);
}

int so_store_io_error(const so_store_t *s)
{
    return s->io_error;
}

void *so_store_redis(so_store_t *s)
{
    return s->c;
}

const char *so_store_prefix(const so_store_t *s)
{
    return s->prefix;
}

int so_store_key(const so_store_t *s, char *buf, size_t len, const char *fmt, ...)
{
    int n = snprintf(buf, len, "%s", s->prefix);
    if (n < 0 || (size_t) n >= len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, len - (size_t) n, fmt, ap);
    va_end(ap);
    return m < 0 || (size_t) m >= len - (size_t) n ? -1 : 0;
}

/* Runs a command; NULL with err on a broken connection or an error reply.
 * The caller checks the reply's type and frees it. */
static redisReply *s_reply_check(so_store_t *s, redisReply *r, const char *what, char *err,
                                 size_t errlen)
{
    if (!r) {
        s_io_fail(s, err, errlen, what);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        s->io_error = 0;
        s_fail(err, errlen, "redis %s: %s", what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    s->io_error = 0;
    return r;
}

static redisReply *s_commandv(so_store_t *s, int argc, const char **argv, const size_t *lens,
                              char *err, size_t errlen)
{
    if (so_store_ensure(s, err, errlen) < 0)
        return NULL;
    return s_reply_check(s, redisCommandArgv(s->c, argc, argv, lens), argv[0], err, errlen);
}

static redisReply *s_command(so_store_t *s, char *err, size_t errlen, const char *fmt, ...)
{
    if (so_store_ensure(s, err, errlen) < 0)
        return NULL;
    char what[32];
    size_t n = strcspn(fmt, " ");
    snprintf(what, sizeof what, "%.*s", (int) (n < sizeof what ? n : sizeof what - 1), fmt);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(s->c, fmt, ap);
    va_end(ap);
    return s_reply_check(s, r, what, err, errlen);
}

/* Pipelining: append, then collect exactly as many replies. */
static int s_append(so_store_t *s, int argc, const char **argv, const size_t *lens, char *err,
                    size_t errlen)
{
    if (redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK)
        return s_io_fail(s, err, errlen, argv[0]);
    return 0;
}

static redisReply *s_get_reply(so_store_t *s, const char *what, char *err, size_t errlen)
{
    void *r = NULL;
    if (redisGetReply(s->c, &r) != REDIS_OK || !r) {
        s_io_fail(s, err, errlen, what);
        return NULL;
    }
    return r;
}

static const char *s_type_name(int type)
{
    switch (type) {
    case REDIS_REPLY_STRING: return "string";
    case REDIS_REPLY_ARRAY: return "array";
    case REDIS_REPLY_INTEGER: return "integer";
    case REDIS_REPLY_NIL: return "nil";
    case REDIS_REPLY_STATUS: return "status";
    case REDIS_REPLY_ERROR: return "error";
    default: return "unknown";
    }
}

static int s_bad_reply(so_store_t *s, const redisReply *r, const char *what, const char *want,
                       char *err, size_t errlen)
{
    s->io_error = 0;
    return s_fail(err, errlen, "redis %s: expected %s, got %s", what, want,
                  s_type_name(r->type));
}

/* ------------------------------------------------------------------ */
/* Handbooks                                                          */

static int s_exec_ok(so_store_t *s, redisReply *r, size_t expect, const char *what, char *err,
                     size_t errlen)
{
    if (r->type == REDIS_REPLY_NIL) {
        s->io_error = 0;
        return s_fail(err, errlen, "redis %s: transaction aborted (a watched key changed)", what);
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != expect)
        return s_bad_reply(s, r, what, "the transaction's replies", err, errlen);
    for (size_t i = 0; i < r->elements; i++)
        if (!r->element[i] || r->element[i]->type == REDIS_REPLY_ERROR) {
            s->io_error = 0;
            return s_fail(err, errlen, "redis %s: %s", what,
                          r->element[i] ? r->element[i]->str : "missing reply");
        }
    return 0;
}

static int s_check_version(const char *v, char *err, size_t errlen)
{
    if (!v || !*v)
        return s_fail(err, errlen, "handbook version is empty");
    if (strlen(v) > SO_WIRE_MAX_ID)
        return s_fail(err, errlen, "handbook version '%.40s...' longer than %d bytes", v,
                      SO_WIRE_MAX_ID);
    return 0;
}

/* MULTI; SET hb; LREM+RPUSH versions; [SET current; PUBLISH]; EXEC, and
 * every reply read back.  Returns 1 (stored), 0 (EXEC answered nil: a key
 * WATCHed before changed) or -1. */
static int s_put(so_store_t *s, const so_handbook_t *hb, int make_current, char *err,
                 size_t errlen)
{
    char k_hb[S_KEY_MAX], k_versions[S_KEY_MAX], k_current[S_KEY_MAX], k_announce[S_KEY_MAX];
    char *json = so_handbook_dumps(hb);
    if (!json)
        return s_fail(err, errlen, "handbook %s: cannot serialise", hb->version);
    so_store_key(s, k_hb, sizeof k_hb, "hb:%s", hb->version);
    so_store_key(s, k_versions, sizeof k_versions, "hb:versions");
    so_store_key(s, k_current, sizeof k_current, "hb:current");
    so_store_key(s, k_announce, sizeof k_announce, "hb:announce");
    const char *v = hb->version;
    const char *cmds[7][4] = {
        { "MULTI" },
        { "SET", k_hb, json },
        { "LREM", k_versions, "0", v },
        { "RPUSH", k_versions, v },
        { "SET", k_current, v },
        { "PUBLISH", k_announce, v },
        { "EXEC" },
    };
    const int argc[7] = { 1, 3, 4, 3, 3, 3, 1 };
    int rc = 0, n = 0;
    for (int i = 0; i < 7 && rc == 0; i++) {
        if ((i == 4 || i == 5) && !make_current)
            continue;
        size_t lens[4];
        for (int j = 0; j < argc[i]; j++)
            lens[j] = strlen(cmds[i][j]);
        rc = s_append(s, argc[i], cmds[i], lens, err, errlen);
        n++;
    }
    free(json);
    if (rc < 0)
        return -1;
    /* n replies: +OK, n - 2 QUEUED, then EXEC's array (nil when WATCH fired). */
    int stored = 1;
    for (int i = 0; i < n; i++) {
        redisReply *r = s_get_reply(s, "MULTI", err, errlen);
        if (!r)
            return -1;
        if (rc == 0 && i < n - 1 && r->type == REDIS_REPLY_ERROR) {
            s->io_error = 0;
            rc = s_fail(err, errlen, "redis put handbook: %s", r->str);
        } else if (rc == 0 && i == n - 1) {
            if (r->type == REDIS_REPLY_NIL)
                stored = 0;
            else if (s_exec_ok(s, r, (size_t) n - 2, "put handbook", err, errlen) < 0)
                rc = -1;
        }
        freeReplyObject(r);
    }
    return rc < 0 ? -1 : stored;
}

int so_store_put_handbook(so_store_t *s, const so_handbook_t *hb, int make_current, char *err,
                          size_t errlen)
{
    if (!hb || s_check_version(hb->version, err, errlen) < 0)
        return -1;
    if (so_store_ensure(s, err, errlen) < 0)
        return -1;
    int rc = s_put(s, hb, make_current, err, errlen);
    if (rc == 0)
        s_fail(err, errlen, "put handbook %s: transaction aborted", hb->version);
    return rc == 1 ? 0 : -1;
}

int so_store_put_handbook_if(so_store_t *s, const so_handbook_t *hb, const char *expect_current,
                             char *err, size_t errlen)
{
    char k_current[S_KEY_MAX], cur[SO_WIRE_MAX_ID + 1];
    if (!hb || s_check_version(hb->version, err, errlen) < 0)
        return -1;
    so_store_key(s, k_current, sizeof k_current, "hb:current");
    redisReply *r = s_command(s, err, errlen, "WATCH %s", k_current);
    if (!r)
        return -1;
    freeReplyObject(r);
    int rc = so_store_current_version(s, cur, sizeof cur, err, errlen);
    if (rc < 0 && so_store_io_error(s))
        return -1;
    if ((rc < 0 && expect_current && *expect_current) ||
        (rc == 0 && (!expect_current || strcmp(cur, expect_current) != 0))) {
        r = s_command(s, err, errlen, "UNWATCH");
        if (r)
            freeReplyObject(r);
        return r ? 0 : -1;
    }
    return s_put(s, hb, 1, err, errlen);
}

int so_store_current_version(so_store_t *s, char *buf, size_t len, char *err, size_t errlen)
{
    char key[S_KEY_MAX];
    so_store_key(s, key, sizeof key, "hb:current");
    redisReply *r = s_command(s, err, errlen, "GET %s", key);
    if (!r)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_NIL) {
        s->io_error = 0;
        rc = s_fail(err, errlen, "no current handbook (%s is not set)", key);
    } else if (r->type != REDIS_REPLY_STRING) {
        rc = s_bad_reply(s, r, "GET current", "a string", err, errlen);
    } else if (r->len == 0 || r->len >= len || r->len > SO_WIRE_MAX_ID ||
               memchr(r->str, '\0', r->len)) {
        s->io_error = 0;
        rc = s_fail(err, errlen, "%s: not a handbook version (%zu bytes)", key, r->len);
    } else {
        memcpy(buf, r->str, r->len);
        buf[r->len] = '\0';
    }
    freeReplyObject(r);
    return rc;
}

so_handbook_t *so_store_get_handbook(so_store_t *s, const char *version, char *err,
                                     size_t errlen)
{
    char cur[SO_WIRE_MAX_ID + 1], key[S_KEY_MAX];
    if (!version || !*version) {
        if (so_store_current_version(s, cur, sizeof cur, err, errlen) < 0)
            return NULL;
        version = cur;
    }
    if (s_check_version(version, err, errlen) < 0)
        return NULL;
    so_store_key(s, key, sizeof key, "hb:%s", version);
    redisReply *r = s_command(s, err, errlen, "GET %s", key);
    if (!r)
        return NULL;
    so_handbook_t *hb = NULL;
    if (r->type == REDIS_REPLY_NIL) {
        s->io_error = 0;
        s_fail(err, errlen, "handbook version '%s' not found (%s)", version, key);
    } else if (r->type != REDIS_REPLY_STRING) {
        s_bad_reply(s, r, key, "a string", err, errlen);
    } else if (memchr(r->str, '\0', r->len)) {
        s->io_error = 0;
        s_fail(err, errlen, "%s: handbook JSON contains a NUL byte", key);
    } else {
        s->io_error = 0;
        hb = so_handbook_load_string(r->str, key, err, errlen);
        if (hb && strcmp(hb->version, version) != 0) {
            s_fail(err, errlen, "%s: holds handbook version '%s'", key, hb->version);
            so_handbook_destroy(&hb);
        }
    }
    freeReplyObject(r);
    return hb;
}

int so_store_versions(so_store_t *s, char ***versions, size_t *n, char *err, size_t errlen)
{
    char key[S_KEY_MAX];
    *versions = NULL;
    *n = 0;
    so_store_key(s, key, sizeof key, "hb:versions");
    redisReply *r = s_command(s, err, errlen, "LRANGE %s 0 -1", key);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        s_bad_reply(s, r, "LRANGE versions", "an array", err, errlen);
        freeReplyObject(r);
        return -1;
    }
    char **v = s_alloc(r->elements, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e && e->type == REDIS_REPLY_STRING && e->len <= SO_WIRE_MAX_ID &&
            !memchr(e->str, '\0', e->len))
            v[k++] = s_strdup(e->str);
    }
    freeReplyObject(r);
    *versions = v;
    *n = k;
    return 0;
}

void so_store_strv_free(char ***v, size_t n)
{
    if (!v || !*v)
        return;
    for (size_t i = 0; i < n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
}

/* ------------------------------------------------------------------ */
/* Statistics                                                         */

static int s_parse_ll(const redisReply *r, long long *out)
{
    if (r->type == REDIS_REPLY_NIL) {
        *out = 0;
        return 0;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 24)
        return -1;
    char buf[32], *end;
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || errno)
        return -1;
    *out = v;
    return 0;
}

int so_store_seq(so_store_t *s, const char *version, long long *seq, char *err, size_t errlen)
{
    char key[S_KEY_MAX];
    if (s_check_version(version, err, errlen) < 0)
        return -1;
    so_store_key(s, key, sizeof key, "seq:%s", version);
    redisReply *r = s_command(s, err, errlen, "GET %s", key);
    if (!r)
        return -1;
    int rc = s_parse_ll(r, seq);
    if (rc < 0) {
        s->io_error = 0;
        s_fail(err, errlen, "%s: not an integer", key);
    }
    freeReplyObject(r);
    return rc;
}

/* The stat field a suffix names. */
static double *s_stat_field(so_stat_t *st, const char *k)
{
    if (strcmp(k, "s") == 0) return &st->successes;
    if (strcmp(k, "n") == 0) return &st->attempts;
    if (strcmp(k, "c") == 0) return &st->cost_usd;
    if (strcmp(k, "pt") == 0) return &st->prompt_tokens;
    if (strcmp(k, "ct") == 0) return &st->completion_tokens;
    if (strcmp(k, "l") == 0) return &st->latency_s;
    if (strcmp(k, "cc") == 0) return &st->cost_count;
    return NULL;
}

/* Adds one "<agent>\x1f<skill>\x1f<k>" = value pair onto hb.  Returns 0
 * (added), 1 (names something hb does not have) or -1 (malformed). */
static int s_add_field(so_handbook_t *hb, const redisReply *f, const redisReply *v, char *err,
                       size_t errlen)
{
    char name[3 * SO_WIRE_MAX_ID + 16], num[64], *end;
    if (!f || !v || f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
        return s_fail(err, errlen, "stats hash: field or value is not a string");
    if (f->len >= sizeof name || memchr(f->str, '\0', f->len))
        return 1;
    memcpy(name, f->str, f->len);
    name[f->len] = '\0';
    char *sep1 = strchr(name, '\x1f'), *sep2 = strrchr(name, '\x1f');
    if (!sep1 || sep1 == sep2)
        return 1;
    *sep1 = *sep2 = '\0';
    int a = so_handbook_agent_index(hb, name);
    int sk = so_handbook_skill_index(hb, sep1 + 1);
    if (a < 0 || sk < 0)
        return 1;
    double *dst = s_stat_field(so_handbook_stat(hb, (size_t) a, (size_t) sk), sep2 + 1);
    if (!dst)
        return 1;
    if (v->len == 0 || v->len >= sizeof num)
        return s_fail(err, errlen, "stats hash: %s/%s/%s: bad value", name, sep1 + 1, sep2 + 1);
    memcpy(num, v->str, v->len);
    num[v->len] = '\0';
    errno = 0;
    double d = strtod(num, &end);
    if (end == num || *end || errno || !isfinite(d))
        return s_fail(err, errlen, "stats hash: %s/%s/%s: '%s' is not a number", name, sep1 + 1,
                      sep2 + 1, num);
    *dst += d;
    return 0;
}

int so_store_load_stats(so_store_t *s, so_handbook_t *hb, long long *seq, size_t *unknown,
                        char *err, size_t errlen)
{
    char k_stats[S_KEY_MAX], k_seq[S_KEY_MAX];
    if (!hb || s_check_version(hb->version, err, errlen) < 0)
        return -1;
    so_store_key(s, k_stats, sizeof k_stats, "stats:%s", hb->version);
    so_store_key(s, k_seq, sizeof k_seq, "seq:%s", hb->version);
    if (so_store_ensure(s, err, errlen) < 0)
        return -1;
    const char *a1[] = { "MULTI" }, *a2[] = { "HGETALL", k_stats }, *a3[] = { "GET", k_seq },
               *a4[] = { "EXEC" };
    size_t l1[] = { 5 }, l2[] = { 7, strlen(k_stats) }, l3[] = { 3, strlen(k_seq) }, l4[] = { 4 };
    if (s_append(s, 1, a1, l1, err, errlen) < 0 || s_append(s, 2, a2, l2, err, errlen) < 0 ||
        s_append(s, 2, a3, l3, err, errlen) < 0 || s_append(s, 1, a4, l4, err, errlen) < 0)
        return -1;
    redisReply *r = NULL;
    for (int i = 0; i < 4; i++) {
        if (r)
            freeReplyObject(r);
        if (!(r = s_get_reply(s, "load stats", err, errlen)))
            return -1;
    }
    int rc = 0;
    size_t n_unknown = 0;
    long long sq = 0;
    /* Work on a copy so an error leaves hb untouched. */
    so_stat_t *backup = s_alloc(hb->n_agents * hb->n_skills + 1, sizeof *backup);
    memcpy(backup, hb->stats, hb->n_agents * hb->n_skills * sizeof *backup);
    if (s_exec_ok(s, r, 2, "load stats", err, errlen) < 0) {
        rc = -1;
    } else if (r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements % 2) {
        rc = s_bad_reply(s, r->element[0], k_stats, "a hash", err, errlen);
    } else if (s_parse_ll(r->element[1], &sq) < 0) {
        rc = s_fail(err, errlen, "%s: not an integer", k_seq);
    } else {
        redisReply *h = r->element[0];
        for (size_t i = 0; i + 1 < h->elements && rc == 0; i += 2) {
            int k = s_add_field(hb, h->element[i], h->element[i + 1], err, errlen);
            if (k < 0)
                rc = -1;
            else
                n_unknown += (size_t) k;
        }
    }
    freeReplyObject(r);
    if (rc < 0) {
        s->io_error = 0;
        memcpy(hb->stats, backup, hb->n_agents * hb->n_skills * sizeof *backup);
    } else {
        if (seq)
            *seq = sq;
        if (unknown)
            *unknown = n_unknown;
    }
    free(backup);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Credit assignment                                                  */

typedef struct {
    size_t agent, skill;
    so_stat_t d;
} s_cell_t;

/* The deltas of one episode, one cell per (agent, skill), in a small open
 * addressing table sized from the episode (never from the handbook). */
typedef struct {
    s_cell_t *cells;
    size_t n;
    size_t *slot;               /* index + 1 into cells, 0 = empty */
    size_t mask;
    size_t skipped;             /* turns or demand entries naming unknown ids */
} s_credit_t;

static void s_credit_free(s_credit_t *c)
{
    free(c->cells);
    free(c->slot);
    memset(c, 0, sizeof *c);
}

static s_cell_t *s_cell(s_credit_t *c, size_t agent, size_t skill)
{
    size_t h = (agent * 0x9E3779B97F4A7C15ULL) ^ (skill * 0xC2B2AE3D27D4EB4FULL);
    for (size_t i = (h >> 7) & c->mask;; i = (i + 1) & c->mask) {
        if (!c->slot[i]) {
            s_cell_t *e = &c->cells[c->n++];
            memset(e, 0, sizeof *e);
            e->agent = agent;
            e->skill = skill;
            c->slot[i] = c->n;
            return e;
        }
        s_cell_t *e = &c->cells[c->slot[i] - 1];
        if (e->agent == agent && e->skill == skill)
            return e;
    }
}

static void s_credit_add(s_credit_t *c, size_t agent, size_t skill, double w, double score,
                         const s_turn_t *t)
{
    so_stat_t *d = &s_cell(c, agent, skill)->d;
    d->successes += w * score;
    d->attempts += w;
    d->cost_usd += w * t->cost_usd;
    d->prompt_tokens += w * t->prompt_tokens;
    d->completion_tokens += w * t->completion_tokens;
    d->latency_s += w * t->latency_s;
    d->cost_count += w;
}

static double s_episode_score(const s_episode_t *ep)
{
    if (ep->result_case == SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS)
        return ep->success ? 1.0 : 0.0;
    return ep->score;
}

/* Credit assignment (docs/SERVICES.md, "Credit assignment"): every turn
 * credits its agent on each skill of its demand with the skill's share of
 * the demand (weights normalised to sum 1 over the whole demand, so a
 * turn is worth one attempt; the share of skills hb does not know is
 * dropped), and with the turn's score if the turn has one, else the
 * episode's outcome.  A turn with no demand credits the skills of its
 * mode uniformly, as the router does for it. */
static int s_credit(const so_handbook_t *hb, const s_episode_t *ep, s_credit_t *c, char *err,
                    size_t errlen)
{
    size_t cap = 0;
    memset(c, 0, sizeof *c);
    for (size_t t = 0; t < ep->n_turns; t++)
        cap += ep->turns[t]->n_demand ? ep->turns[t]->n_demand : hb->n_skills;
    size_t slots = 16;
    while (slots < 2 * cap)
        slots <<= 1;
    c->cells = s_alloc(cap, sizeof *c->cells);
    c->slot = s_alloc(slots, sizeof *c->slot);
    c->mask = slots - 1;
    double outcome = s_episode_score(ep);
    for (size_t t = 0; t < ep->n_turns; t++) {
        const s_turn_t *tr = ep->turns[t];
        int a = strchr(tr->agent_id, '\x1f') ? -1 : so_handbook_agent_index(hb, tr->agent_id);
        if (a < 0) {
            c->skipped++;
            continue;
        }
        double score = tr->score_opt_case == SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE
                           ? tr->score : outcome;
        if (!isfinite(score) || score < 0 || score > 1) {
            s_credit_free(c);
            return s_fail(err, errlen, "episode %s turn %zu: score %g outside [0, 1]",
                          ep->episode_id, t, score);
        }
        double wsum = 0;
        for (size_t i = 0; i < tr->n_demand; i++) {
            double w = tr->demand[i]->weight;
            if (isfinite(w) && w > 0)
                wsum += w;
        }
        if (wsum > 0) {
            for (size_t i = 0; i < tr->n_demand; i++) {
                double w = tr->demand[i]->weight;
                if (!(isfinite(w) && w > 0))
                    continue;
                const char *sid = tr->demand[i]->skill_id;
                int sk = strchr(sid, '\x1f') ? -1 : so_handbook_skill_index(hb, sid);
                if (sk < 0) {
                    c->skipped++;
                    continue;
                }
                s_credit_add(c, (size_t) a, (size_t) sk, w / wsum, score, tr);
            }
        } else {
            int m = tr->mode && *tr->mode ? so_handbook_mode_index(hb, tr->mode) : -1;
            size_t k = 0;
            for (size_t sk = 0; sk < hb->n_skills; sk++)
                k += m < 0 || hb->skills[sk].mode == m;
            for (size_t sk = 0; sk < hb->n_skills && k; sk++)
                if (m < 0 || hb->skills[sk].mode == m)
                    s_credit_add(c, (size_t) a, sk, 1.0 / (double) k, score, tr);
        }
    }
    return 0;
}

static int s_check_episode(const so_handbook_t *hb, const s_episode_t *ep, char *err,
                           size_t errlen)
{
    if (!hb || !ep)
        return s_fail(err, errlen, "no handbook or episode");
    if (so_wire_validate(SO_MSG_EPISODE_OUTCOME, ep, err, errlen) < 0)
        return -1;
    if (ep->result_case != SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS &&
        ep->result_case != SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE)
        return s_fail(err, errlen, "episode %s: no outcome", ep->episode_id);
    if (strcmp(ep->handbook_version, hb->version) != 0)
        return s_fail(err, errlen, "episode %s was routed by handbook %s, not %s",
                      ep->episode_id, ep->handbook_version, hb->version);
    return 0;
}

/* The FCALL argument vector of an episode: FCALL so_apply 3 applied stats
 * seq episode_id then field/increment pairs.  Strings live in *buf. */
typedef struct {
    const char **argv;
    size_t *lens;
    int argc;
    char *buf;
} s_fcall_t;

static void s_fcall_free(s_fcall_t *f)
{
    free(f->argv);
    free(f->lens);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

static void s_fcall_build(const so_handbook_t *hb, const s_episode_t *ep, const s_credit_t *c,
                          const char *k_applied, const char *k_stats, const char *k_seq,
                          s_fcall_t *f)
{
    static const char *ks[7] = { "s", "n", "c", "pt", "ct", "l", "cc" };
    size_t max_pairs = c->n * 7, need = 0;
    for (size_t i = 0; i < c->n; i++)
        need += 7 * (strlen(hb->agents[c->cells[i].agent].id) +
                     strlen(hb->skills[c->cells[i].skill].id) + 8 + 32);
    f->argv = s_alloc(7 + 2 * max_pairs, sizeof *f->argv);
    f->lens = s_alloc(7 + 2 * max_pairs, sizeof *f->lens);
    f->buf = s_alloc(need + 1, 1);
    const char *head[7] = { "FCALL", "so_apply", "3", k_applied, k_stats, k_seq,
                            ep->episode_id };
    for (int i = 0; i < 7; i++) {
        f->argv[i] = head[i];
        f->lens[i] = strlen(head[i]);
    }
    f->argc = 7;
    char *p = f->buf;
    for (size_t i = 0; i < c->n; i++) {
        const so_stat_t *d = &c->cells[i].d;
        const double v[7] = { d->successes, d->attempts, d->cost_usd, d->prompt_tokens,
                              d->completion_tokens, d->latency_s, d->cost_count };
        for (int k = 0; k < 7; k++) {
            if (v[k] == 0 && k != 1)
                continue;       /* nothing to add; attempts always written */
            int n = sprintf(p, "%s\x1f%s\x1f%s", hb->agents[c->cells[i].agent].id,
                            hb->skills[c->cells[i].skill].id, ks[k]);
            f->argv[f->argc] = p;
            f->lens[f->argc++] = (size_t) n;
            p += n + 1;
            n = sprintf(p, "%.17g", v[k]);
            f->argv[f->argc] = p;
            f->lens[f->argc++] = (size_t) n;
            p += n + 1;
        }
    }
}

static int s_stat_keys(const so_store_t *s, const char *version, char *k_applied, char *k_stats,
                       char *k_seq)
{
    if (so_store_key(s, k_applied, S_KEY_MAX, "applied:%s", version) < 0 ||
        so_store_key(s, k_stats, S_KEY_MAX, "stats:%s", version) < 0 ||
        so_store_key(s, k_seq, S_KEY_MAX, "seq:%s", version) < 0)
        return -1;
    return 0;
}

static int s_fcall_result(so_store_t *s, redisReply *r, const char *ep_id, char *err,
                          size_t errlen)
{
    if (r->type == REDIS_REPLY_ERROR) {
        s->io_error = 0;
        return s_fail(err, errlen, "episode %s: redis so_apply: %s", ep_id, r->str);
    }
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))
        return s_bad_reply(s, r, "so_apply", "0 or 1", err, errlen);
    return (int) r->integer;
}

int so_store_apply_episode(so_store_t *s, const so_handbook_t *hb, const s_episode_t *ep,
                           char *err, size_t errlen)
{
    int applied = -1;
    const so_handbook_t *hbs[1] = { hb };
    const s_episode_t *eps[1] = { ep };
    if (so_store_apply_many(s, hbs, eps, 1, &applied, err, errlen) < 0)
        return -1;
    return applied;
}

int so_store_apply_many(so_store_t *s, const so_handbook_t *const *hbs,
                        const s_episode_t *const *eps, size_t n, int *applied, char *err,
                        size_t errlen)
{
    char k_applied[S_KEY_MAX], k_stats[S_KEY_MAX], k_seq[S_KEY_MAX], e1[256];
    int first_err = 0;
    if (so_store_ensure(s, err, errlen) < 0)
        return -1;
    int *queued = s_alloc(n, sizeof *queued);
    for (size_t i = 0; i < n; i++) {
        s_credit_t c;
        s_fcall_t f;
        applied[i] = -1;
        if (s_check_episode(hbs[i], eps[i], e1, sizeof e1) < 0 ||
            s_stat_keys(s, hbs[i]->version, k_applied, k_stats, k_seq) < 0 ||
            s_credit(hbs[i], eps[i], &c, e1, sizeof e1) < 0) {
            if (!first_err++)
                s_fail(err, errlen, "%s", e1);
            continue;
        }
        s_fcall_build(hbs[i], eps[i], &c, k_applied, k_stats, k_seq, &f);
        int rc = s_append(s, f.argc, f.argv, f.lens, err, errlen);
        s_fcall_free(&f);
        s_credit_free(&c);
        if (rc < 0) {
            free(queued);
            return -1;
        }
        queued[i] = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!queued[i])
            continue;
        redisReply *r = s_get_reply(s, "FCALL so_apply", err, errlen);
        if (!r) {
            free(queued);
            return -1;
        }
        applied[i] = s_fcall_result(s, r, eps[i]->episode_id, e1, sizeof e1);
        if (applied[i] < 0 && !first_err++)
            s_fail(err, errlen, "%s", e1);
        freeReplyObject(r);
    }
    free(queued);
    s->io_error = 0;
    return 0;
}

/* ------------------------------------------------------------------ */
/* The episode log                                                    */

int so_store_decode_episode(const void *pb, size_t len, s_episode_t **out, char *err,
                            size_t errlen)
{
    uint8_t hdr[SO_WIRE_HDR_LEN];
    void *msg = NULL;
    *out = NULL;
    so_wire_header(SO_MSG_EPISODE_OUTCOME, hdr);
    if (so_wire_decode(hdr, sizeof hdr, pb ? pb : "", pb ? len : 0, SO_MSG_EPISODE_OUTCOME,
                       &msg, err, errlen) < 0)
        return -1;
    *out = msg;
    return 0;
}

void so_store_episode_free(s_episode_t **ep_p)
{
    if (!ep_p || !*ep_p)
        return;
    so_wire_free(SO_MSG_EPISODE_OUTCOME, *ep_p);
    *ep_p = NULL;
}

int so_store_log_episode(so_store_t *s, const s_episode_t *ep, char *err, size_t errlen)
{
    uint8_t hdr[SO_WIRE_HDR_LEN], *body = NULL;
    size_t blen = 0;
    char key[S_KEY_MAX];
    if (!ep)
        return s_fail(err, errlen, "no episode");
    if (so_wire_encode(SO_MSG_EPISODE_OUTCOME, ep, hdr, &body, &blen, err, errlen) < 0)
        return -1;
    so_store_key(s, key, sizeof key, "episodes");
    const char *argv[7] = { "XADD", key, "*", "id", ep->episode_id, "pb", (const char *) body };
    size_t lens[7] = { 4, strlen(key), 1, 2, strlen(ep->episode_id), 2, blen };
    if (!body)
        argv[6] = "";
    redisReply *r = s_commandv(s, 7, argv, lens, err, errlen);
    free(body);
    if (!r)
        return -1;
    int rc = r->type == REDIS_REPLY_STRING ? 0 : s_bad_reply(s, r, "XADD", "an id", err, errlen);
    freeReplyObject(r);
    return rc;
}

/* Wraps a turn in an otherwise empty episode so that so_wire_validate can
 * check it (TurnRecord has no message type of its own). */
static int s_check_turn(const char *episode_id, const s_turn_t *tr, char *err, size_t errlen)
{
    s_episode_t ep = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
    s_turn_t *turns[1] = { (s_turn_t *) tr };
    ep.episode_id = (char *) episode_id;
    ep.handbook_version = "-";
    ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
    ep.n_turns = 1;
    ep.turns = turns;
    return so_wire_validate(SO_MSG_EPISODE_OUTCOME, &ep, err, errlen);
}

int so_store_push_turn_ex(so_store_t *s, const char *episode_id, const char *handbook_version,
                          const s_turn_t *tr, int ttl_s, char *err, size_t errlen)
{
    char k_list[S_KEY_MAX], k_hb[S_KEY_MAX], ttl[32];
    if (!tr || s_check_turn(episode_id, tr, err, errlen) < 0)
        return -1;
    if (handbook_version && *handbook_version &&
        s_check_version(handbook_version, err, errlen) < 0)
        return -1;
    if (ttl_s <= 0)
        return s_fail(err, errlen, "pending turns need a ttl > 0 (got %d)", ttl_s);
    so_store_key(s, k_list, sizeof k_list, "pending:%s", episode_id);
    so_store_key(s, k_hb, sizeof k_hb, "pending:%s:hb", episode_id);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    size_t len = protobuf_c_message_get_packed_size(&tr->base);
    uint8_t *buf = s_alloc(len + 1, 1);
    protobuf_c_message_pack(&tr->base, buf);
    if (so_store_ensure(s, err, errlen) < 0) {
        free(buf);
        return -1;
    }
    const char *cmds[5][5] = {
        { "MULTI" },
        { "RPUSH", k_list, (const char *) buf },
        { "EXPIRE", k_list, ttl },
        { "SET", k_hb, handbook_version ? handbook_version : "", "EX", ttl },
        { "EXEC" },
    };
    int argc[5] = { 1, 3, 3, 5, 1 }, n = 0, rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++) {
        if (i == 3 && !(handbook_version && *handbook_version))
            continue;
        size_t lens[5];
        for (int j = 0; j < argc[i]; j++)
            lens[j] = (i == 1 && j == 2) ? len : strlen(cmds[i][j]);
        rc = s_append(s, argc[i], cmds[i], lens, err, errlen);
        n++;
    }
    free(buf);
    for (int i = 0; i < n && rc == 0; i++) {
        redisReply *r = s_get_reply(s, "push turn", err, errlen);
        if (!r)
            return -1;
        if (i == n - 1 && s_exec_ok(s, r, (size_t) n - 2, "push turn", err, errlen) < 0)
            rc = -1;
        freeReplyObject(r);
    }
    return rc;
}

int so_store_push_turn(so_store_t *s, const char *episode_id, const s_turn_t *tr, int ttl_s,
                       char *err, size_t errlen)
{
    return so_store_push_turn_ex(s, episode_id, NULL, tr, ttl_s, err, errlen);
}

void so_store_turns_free(s_turn_t ***turns_p, size_t n)
{
    if (!turns_p || !*turns_p)
        return;
    for (size_t i = 0; i < n; i++)
        if ((*turns_p)[i])
            skillorchestra__v1__turn_record__free_unpacked((*turns_p)[i], NULL);
    free(*turns_p);
    *turns_p = NULL;
}

int so_store_pending_turns(so_store_t *s, const char *episode_id, char *version, size_t vlen,
                           s_turn_t ***turns_out, size_t *n_out, char *err, size_t errlen)
{
    char k_list[S_KEY_MAX], k_hb[S_KEY_MAX];
    *turns_out = NULL;
    *n_out = 0;
    if (version && vlen)
        version[0] = '\0';
    if (!episode_id || !*episode_id || strlen(episode_id) > SO_WIRE_MAX_ID)
        return s_fail(err, errlen, "bad episode id");
    so_store_key(s, k_list, sizeof k_list, "pending:%s", episode_id);
    so_store_key(s, k_hb, sizeof k_hb, "pending:%s:hb", episode_id);
    redisReply *r = s_command(s, err, errlen, "LRANGE %s 0 %d", k_list, SO_WIRE_MAX_TURNS);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        s_bad_reply(s, r, k_list, "a list", err, errlen);
        freeReplyObject(r);
        return -1;
    }
    if (r->elements > SO_WIRE_MAX_TURNS) {
        freeReplyObject(r);
        return s_fail(err, errlen, "%s: more than %d turns", k_list, SO_WIRE_MAX_TURNS);
    }
    s_turn_t **turns = s_alloc(r->elements, sizeof *turns);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e && e->type == REDIS_REPLY_STRING && e->len <= SO_WIRE_MAX_BODY)
            turns[i] = skillorchestra__v1__turn_record__unpack(NULL, e->len,
                                                               (const uint8_t *) e->str);
        if (!turns[i] || s_check_turn(episode_id, turns[i], err, errlen) < 0) {
            char why[200];
            snprintf(why, sizeof why, "%s", turns[i] ? err : "not a TurnRecord");
            s_fail(err, errlen, "%s[%zu]: %s", k_list, i, why);
            so_store_turns_free(&turns, r->elements);
            freeReplyObject(r);
            return -1;
        }
    }
    size_t n = r->elements;
    freeReplyObject(r);
    r = s_command(s, err, errlen, "GET %s", k_hb);
    if (!r) {
        so_store_turns_free(&turns, n);
        return -1;
    }
    if (r->type == REDIS_REPLY_STRING && version && r->len < vlen && !memchr(r->str, 0, r->len)) {
        memcpy(version, r->str, r->len);
        version[r->len] = '\0';
    }
    freeReplyObject(r);
    *turns_out = turns;
    *n_out = n;
    return 0;
}

int so_store_drop_pending(so_store_t *s, const char *episode_id, char *err, size_t errlen)
{
    char k_list[S_KEY_MAX], k_hb[S_KEY_MAX];
    so_store_key(s, k_list, sizeof k_list, "pending:%s", episode_id);
    so_store_key(s, k_hb, sizeof k_hb, "pending:%s:hb", episode_id);
    redisReply *r = s_command(s, err, errlen, "DEL %s %s", k_list, k_hb);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Finishing an episode                                               */

#define S_FINISH_TRIES 8           /* WATCH rounds before giving up */

static int s_by_turn_index(const void *a, const void *b)
{
    const s_turn_t *x = *(s_turn_t *const *) a, *y = *(s_turn_t *const *) b;
    return x->turn_index < y->turn_index ? -1 : x->turn_index > y->turn_index;
}

/* Sorts turns by index and drops repeats of an index (a retried push);
 * returns how many are kept at the front. */
static size_t s_unique_turns(s_turn_t **turns, size_t n)
{
    size_t kept = 0;
    qsort(turns, n, sizeof *turns, s_by_turn_index);
    for (size_t i = 0; i < n; i++) {
        if (kept > 0 && turns[kept - 1]->turn_index == turns[i]->turn_index)
            continue;
        s_turn_t *t = turns[kept];
        turns[kept++] = turns[i];
        turns[i] = t;           /* the repeat moves behind: still freed with the rest */
    }
    return kept;
}

static void s_unwatch(so_store_t *s)
{
    char e[64];
    if (s->c && !s->c->err) {
        redisReply *r = s_command(s, e, sizeof e, "UNWATCH");
        if (r)
            freeReplyObject(r);
    }
}

/* One round: WATCH, read, build, MULTI XADD DEL EXEC.  Returns 1 logged,
 * 0 nothing pending, 2 a watched key changed (try again), -1 error. */
static int s_finish_once(so_store_t *s, const char *episode_id, int has_success, int success,
                         double score, const char *version_if_none, char *err, size_t errlen)
{
    char k_list[S_KEY_MAX], k_hb[S_KEY_MAX], k_log[S_KEY_MAX], version[SO_WIRE_MAX_ID + 1];
    s_turn_t **turns = NULL;
    size_t n = 0;
    so_store_key(s, k_list, sizeof k_list, "pending:%s", episode_id);
    so_store_key(s, k_hb, sizeof k_hb, "pending:%s:hb", episode_id);
    so_store_key(s, k_log, sizeof k_log, "episodes");
    redisReply *r = s_command(s, err, errlen, "WATCH %s %s", k_list, k_hb);
    if (!r)
        return -1;
    freeReplyObject(r);
    if (so_store_pending_turns(s, episode_id, version, sizeof version, &turns, &n, err,
                               errlen) < 0) {
        s_unwatch(s);
        return -1;
    }
    if (n == 0) {
        so_store_turns_free(&turns, n);
        s_unwatch(s);
        return 0;
    }
    s_episode_t ep = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
    ep.episode_id = (char *) episode_id;
    ep.handbook_version = *version ? version : (char *) (version_if_none ? version_if_none : "");
    ep.turns = turns;
    ep.n_turns = s_unique_turns(turns, n);
    struct timeval now;
    gettimeofday(&now, NULL);
    ep.finished_unix_ms = (uint64_t) now.tv_sec * 1000u + (uint64_t) now.tv_usec / 1000u;
    int rc = 0;
    if (has_success) {
        ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS;
        ep.success = success != 0;
    } else if (isfinite(score) && score >= 0) {
        ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE;
        ep.score = score;
    } else {
        double sum = 0;
        size_t scored = 0;
        for (size_t i = 0; i < ep.n_turns; i++)
            if (turns[i]->score_opt_case == SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE) {
                sum += turns[i]->score;
                scored++;
            }
        if (scored == 0)
            rc = s_fail(err, errlen, "episode %s: no outcome given and none of its %zu turns "
                        "has a score", episode_id, ep.n_turns);
        ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE;
        ep.score = scored ? sum / (double) scored : 0;
    }
    if (rc == 0 && !*ep.handbook_version)
        rc = s_fail(err, errlen, "episode %s: no handbook version recorded or given",
                    episode_id);
    uint8_t hdr[SO_WIRE_HDR_LEN], *body = NULL;
    size_t blen = 0;
    if (rc == 0)
        rc = so_wire_encode(SO_MSG_EPISODE_OUTCOME, &ep, hdr, &body, &blen, err, errlen);
    so_store_turns_free(&turns, n);
    if (rc < 0) {
        s->io_error = 0;
        s_unwatch(s);
        return -1;
    }
    const char *cmds[4][7] = {
        { "MULTI" },
        { "XADD", k_log, "*", "id", episode_id, "pb", body ? (const char *) body : "" },
        { "DEL", k_list, k_hb },
        { "EXEC" },
    };
    const int argc[4] = { 1, 7, 3, 1 };
    for (int i = 0; i < 4 && rc == 0; i++) {
        size_t lens[7];
        for (int j = 0; j < argc[i]; j++)
            lens[j] = (i == 1 && j == 6) ? blen : strlen(cmds[i][j]);
        rc = s_append(s, argc[i], cmds[i], lens, err, errlen);
    }
    free(body);
    if (rc < 0)
        return -1;
    int out = 1;
    for (int i = 0; i < 4; i++) {
        r = s_get_reply(s, "finish episode", err, errlen);
        if (!r)
            return -1;
        if (rc == 0 && i < 3 && r->type == REDIS_REPLY_ERROR) {
            s->io_error = 0;
            rc = s_fail(err, errlen, "redis finish episode: %s", r->str);
        } else if (rc == 0 && i == 3) {
            if (r->type == REDIS_REPLY_NIL)
                out = 2;
            else if (s_exec_ok(s, r, 2, "finish episode", err, errlen) < 0)
                rc = -1;
        }
        freeReplyObject(r);
    }
    return rc < 0 ? -1 : out;
}

int so_store_finish_episode(so_store_t *s, const char *episode_id, int has_success, int success,
                            double score, const char *version_if_none, char *err, size_t errlen)
{
    if (!episode_id || !*episode_id || strlen(episode_id) > SO_WIRE_MAX_ID)
        return s_fail(err, errlen, "bad episode id");
    if (!has_success && isfinite(score) && score > 1)
        return s_fail(err, errlen, "episode %s: score %g outside [0, 1]", episode_id, score);
    if (version_if_none && *version_if_none && s_check_version(version_if_none, err, errlen) < 0)
        return -1;
    for (int i = 0; i < S_FINISH_TRIES; i++) {
        int rc = s_finish_once(s, episode_id, has_success, success, score, version_if_none, err,
                               errlen);
        if (rc != 2)
            return rc;
    }
    s->io_error = 0;
    return s_fail(err, errlen, "episode %s: its pending turns kept changing (%d tries)",
                  episode_id, S_FINISH_TRIES);
}

/* ------------------------------------------------------------------ */
/* Replaying the log                                                  */

/* A set of episode ids (open addressing, grows at half load). */
typedef struct {
    char **v;
    size_t n, cap;
} s_idset_t;

static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char) *s) * 1099511628211ULL;
    return h;
}

static int s_idset_add(s_idset_t *set, const char *id)
{
    if (2 * (set->n + 1) > set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 1024;
        char **v = s_alloc(cap, sizeof *v);
        for (size_t i = 0; i < set->cap; i++)
            if (set->v[i]) {
                size_t j = s_hash(set->v[i]) & (cap - 1);
                while (v[j])
                    j = (j + 1) & (cap - 1);
                v[j] = set->v[i];
            }
        free(set->v);
        set->v = v;
        set->cap = cap;
    }
    size_t j = s_hash(id) & (set->cap - 1);
    for (; set->v[j]; j = (j + 1) & (set->cap - 1))
        if (strcmp(set->v[j], id) == 0)
            return 0;
    set->v[j] = s_strdup(id);
    set->n++;
    return 1;
}

static void s_idset_free(s_idset_t *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->v[i]);
    free(set->v);
    memset(set, 0, sizeof *set);
}

/* One page of the log after `after` ("-" for the start).  The entries'
 * field lists are checked by the caller. */
static redisReply *s_page(so_store_t *s, const char *key, const char *after, char *err,
                          size_t errlen)
{
    char start[64];
    if (strcmp(after, "-") == 0)
        snprintf(start, sizeof start, "-");
    else
        snprintf(start, sizeof start, "(%s", after);
    redisReply *r = s_command(s, err, errlen, "XRANGE %s %s + COUNT %d", key, start,
                              S_REBUILD_PAGE);
    if (r && r->type != REDIS_REPLY_ARRAY) {
        s_bad_reply(s, r, "XRANGE", "an array", err, errlen);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* The id and the "pb" value of a stream entry; -1 if the entry has not
 * the shape XRANGE gives. */
static int s_entry(const redisReply *e, const char **id, const char **pb, size_t *pb_len)
{
    *pb = NULL;
    *pb_len = 0;
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !e->element[0] ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= 64)
        return -1;
    *id = e->element[0]->str;
    const redisReply *f = e->element[1];
    if (!f || f->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i] && f->element[i]->type == REDIS_REPLY_STRING &&
            f->element[i]->len == 2 && memcmp(f->element[i]->str, "pb", 2) == 0 &&
            f->element[i + 1] && f->element[i + 1]->type == REDIS_REPLY_STRING) {
            *pb = f->element[i + 1]->str;
            *pb_len = f->element[i + 1]->len;
        }
    return 0;
}

long so_store_replay(so_store_t *s, const so_handbook_t *hb, so_stat_t *deltas,
                     size_t *malformed, char *err, size_t errlen)
{
    char key[S_KEY_MAX], last[64] = "-", e1[256];
    s_idset_t seen = { 0 };
    long episodes = 0;
    size_t bad = 0;
    if (!hb || s_check_version(hb->version, err, errlen) < 0)
        return -1;
    so_store_key(s, key, sizeof key, "episodes");
    memset(deltas, 0, hb->n_agents * hb->n_skills * sizeof *deltas);
    for (;;) {
        redisReply *r = s_page(s, key, last, err, errlen);
        if (!r) {
            s_idset_free(&seen);
            return -1;
        }
        for (size_t i = 0; i < r->elements; i++) {
            const char *id, *pb;
            size_t len;
            s_episode_t *ep = NULL;
            s_credit_t c;
            if (s_entry(r->element[i], &id, &pb, &len) < 0) {
                freeReplyObject(r);
                s_idset_free(&seen);
                return s_fail(err, errlen, "XRANGE %s: malformed entry", key);
            }
            snprintf(last, sizeof last, "%s", id);
            if (!pb || so_store_decode_episode(pb, len, &ep, e1, sizeof e1) < 0) {
                bad++;
                continue;
            }
            if (strcmp(ep->handbook_version, hb->version) == 0 &&
                s_check_episode(hb, ep, e1, sizeof e1) == 0 &&
                s_credit(hb, ep, &c, e1, sizeof e1) == 0) {
                if (s_idset_add(&seen, ep->episode_id)) {
                    episodes++;
                    for (size_t k = 0; k < c.n; k++) {
                        so_stat_t *d = &deltas[c.cells[k].agent * hb->n_skills + c.cells[k].skill];
                        const so_stat_t *x = &c.cells[k].d;
                        d->successes += x->successes;
                        d->attempts += x->attempts;
                        d->cost_usd += x->cost_usd;
                        d->prompt_tokens += x->prompt_tokens;
                        d->completion_tokens += x->completion_tokens;
                        d->latency_s += x->latency_s;
                        d->cost_count += x->cost_count;
                    }
                }
                s_credit_free(&c);
            } else if (strcmp(ep->handbook_version, hb->version) == 0) {
                bad++;
            }
            so_store_episode_free(&ep);
        }
        size_t got = r->elements;
        freeReplyObject(r);
        if (got < S_REBUILD_PAGE)
            break;
    }
    s_idset_free(&seen);
    if (malformed)
        *malformed = bad;
    return episodes;
}

/* Applies one page of log entries to the temporary keys, pipelined. */
static long s_rebuild_page(so_store_t *s, const so_handbook_t *hb, redisReply *page,
                           const char *k_applied, const char *k_stats, const char *k_seq,
                           char *last, size_t lastlen, char *err, size_t errlen)
{
    char e1[256];
    long applied = 0;
    size_t queued = 0;
    for (size_t i = 0; i < page->elements; i++) {
        const char *id, *pb;
        size_t len;
        s_episode_t *ep = NULL;
        s_credit_t c;
        s_fcall_t f;
        if (s_entry(page->element[i], &id, &pb, &len) < 0)
            return s_fail(err, errlen, "XRANGE: malformed entry");
        snprintf(last, lastlen, "%s", id);
        if (!pb || so_store_decode_episode(pb, len, &ep, e1, sizeof e1) < 0)
            continue;
        if (strcmp(ep->handbook_version, hb->version) != 0 ||
            s_check_episode(hb, ep, e1, sizeof e1) < 0 || s_credit(hb, ep, &c, e1, sizeof e1) < 0) {
            so_store_episode_free(&ep);
            continue;
        }
        s_fcall_build(hb, ep, &c, k_applied, k_stats, k_seq, &f);
        int rc = s_append(s, f.argc, f.argv, f.lens, err, errlen);
        s_fcall_free(&f);
        s_credit_free(&c);
        so_store_episode_free(&ep);
        if (rc < 0)
            return -1;
        queued++;
    }
    int failed = 0;
    for (size_t i = 0; i < queued; i++) {
        redisReply *r = s_get_reply(s, "FCALL so_apply", err, errlen);
        if (!r)
            return -1;
        int rc = s_fcall_result(s, r, "(rebuild)", e1, sizeof e1);
        if (rc < 0 && !failed++)
            s_fail(err, errlen, "%s", e1);
        applied += rc == 1;
        freeReplyObject(r);
    }
    return failed ? -1 : applied;
}

long so_store_rebuild(so_store_t *s, const so_handbook_t *hb, char *err, size_t errlen)
{
    char key[S_KEY_MAX], last[64] = "-", tok[40];
    char t_applied[S_KEY_MAX], t_stats[S_KEY_MAX], t_seq[S_KEY_MAX];
    char k_applied[S_KEY_MAX], k_stats[S_KEY_MAX], k_seq[S_KEY_MAX];
    long applied = 0;
    if (!hb || s_check_version(hb->version, err, errlen) < 0)
        return -1;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(tok, sizeof tok, "%lx%06lx", (unsigned long) tv.tv_sec, (unsigned long) tv.tv_usec);
    so_store_key(s, key, sizeof key, "episodes");
    if (s_stat_keys(s, hb->version, k_applied, k_stats, k_seq) < 0 ||
        so_store_key(s, t_applied, sizeof t_applied, "rebuild:%s:%s:applied", tok,
                     hb->version) < 0 ||
        so_store_key(s, t_stats, sizeof t_stats, "rebuild:%s:%s:stats", tok, hb->version) < 0 ||
        so_store_key(s, t_seq, sizeof t_seq, "rebuild:%s:%s:seq", tok, hb->version) < 0)
        return s_fail(err, errlen, "handbook version too long for a key");
    if (so_store_ensure(s, err, errlen) < 0)
        return -1;
    for (int round = 0; round < S_REBUILD_ROUNDS; round++) {
        /* Read to the end of the log, then try to swap; if entries arrived
         * meanwhile, read those too. */
        for (;;) {
            redisReply *page = s_page(s, key, last, err, errlen);
            if (!page)
                goto fail;
            long n = s_rebuild_page(s, hb, page, t_applied, t_stats, t_seq, last, sizeof last,
                                    err, errlen);
            size_t got = page->elements;
            freeReplyObject(page);
            if (n < 0)
                goto fail;
            applied += n;
            const char *tmp[3] = { t_applied, t_stats, t_seq };
            for (int i = 0; i < 3; i++) {
                redisReply *r = s_command(s, err, errlen, "PEXPIRE %s %d", tmp[i],
                                          S_REBUILD_TTL_MS);
                if (!r)
                    goto fail;
                freeReplyObject(r);
            }
            if (got < S_REBUILD_PAGE)
                break;
        }
        const char *argv[] = { "FCALL", "so_swap", "7", key, t_applied, t_stats, t_seq,
                               k_applied, k_stats, k_seq, strcmp(last, "-") ? last : "0-0" };
        size_t lens[11];
        for (int i = 0; i < 11; i++)
            lens[i] = strlen(argv[i]);
        redisReply *r = s_commandv(s, 11, argv, lens, err, errlen);
        if (!r)
            goto fail;
        if (r->type != REDIS_REPLY_INTEGER) {
            s_bad_reply(s, r, "so_swap", "an integer", err, errlen);
            freeReplyObject(r);
            goto fail;
        }
        long long swapped = r->integer;
        freeReplyObject(r);
        if (swapped == 1)
            return applied;
    }
    s_fail(err, errlen, "rebuild: the log kept growing for %d rounds; try again",
           S_REBUILD_ROUNDS);
fail:
    {
        char e2[64];
        redisReply *r = s_command(s, e2, sizeof e2, "DEL %s %s %s", t_applied, t_stats, t_seq);
        if (r)
            freeReplyObject(r);
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Locks                                                              */

int so_store_lock(so_store_t *s, const char *name, const char *token, int ttl_ms, char *err,
                  size_t errlen)
{
    char key[S_KEY_MAX];
    if (so_store_key(s, key, sizeof key, "%s:lock", name) < 0)
        return s_fail(err, errlen, "lock name too long");
    redisReply *r = s_command(s, err, errlen, "SET %s %s NX PX %d", key, token, ttl_ms);
    if (!r)
        return -1;
    int rc = r->type == REDIS_REPLY_STATUS ? 1 : r->type == REDIS_REPLY_NIL ? 0
             : s_bad_reply(s, r, "SET NX", "OK or nil", err, errlen);
    freeReplyObject(r);
    return rc;
}

int so_store_unlock(so_store_t *s, const char *name, const char *token, char *err,
                    size_t errlen)
{
    char key[S_KEY_MAX];
    if (so_store_key(s, key, sizeof key, "%s:lock", name) < 0)
        return s_fail(err, errlen, "lock name too long");
    const char *argv[] = { "FCALL", "so_unlock", "1", key, token };
    size_t lens[5];
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = s_commandv(s, 5, argv, lens, err, errlen);
    if (!r)
        return -1;
    int rc = r->type == REDIS_REPLY_INTEGER ? (int) (r->integer > 0)
             : s_bad_reply(s, r, "so_unlock", "an integer", err, errlen);
    freeReplyObject(r);
    return rc;
}
