/*
 * so_store — the connection: url, (re)connect, keys, the command helpers
 * the other parts use (so_store_int.h), the function library, locks.
 *
 * Credit assignment is not here: so_store applies what method/so_credit
 * computes (so_store_log.c, so_store_replay.c).
 */
#include "store/so_store_int.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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


/* ------------------------------------------------------------------ */
/* Connection                                                         */

static int s_parse_url(so_store_t *s, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "unix:", 5) == 0) {
        const char *p = url + 5;
        if (strncmp(p, "//", 2) == 0)
            p += 2;
        if (!*p)
            return so_err(err, errlen, "redis url '%s': empty socket path", url);
        s->path = so_strdup(p);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return so_err(err, errlen,
                      "redis url '%s': expected redis://host:port[/db] or "
                      "unix:/path",
                      url);
    const char *h = url + 8, *at = strchr(h, '@');
    if (at)
        return so_err(err, errlen, "redis url '%s': credentials in the url are not supported",
                      url);
    size_t hl = strcspn(h, ":/");
    if (hl == 0 || hl > 255)
        return so_err(err, errlen, "redis url '%s': bad host", url);
    s->host = so_calloc(hl + 1, 1);
    memcpy(s->host, h, hl);
    s->port = 6379;
    const char *p = h + hl;
    if (*p == ':') {
        char *end;
        errno = 0;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || errno || port < 1 || port > 65535 || (*end && *end != '/'))
            return so_err(err, errlen, "redis url '%s': bad port", url);
        s->port = (int) port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        errno = 0;
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || errno || db < 0 || db > 100000)
            return so_err(err, errlen, "redis url '%s': bad database number", url);
        s->db = (int) db;
    } else if (*p && strcmp(p, "/") != 0) {
        return so_err(err, errlen, "redis url '%s': unexpected '%s'", url, p);
    }
    return 0;
}

static int s_io_fail(so_store_t *s, char *err, size_t errlen, const char *what)
{
    s->io_error = 1;
    return so_err(err, errlen, "redis %s: %s", what,
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
            so_err(err, errlen, "redis SELECT %d: %s", s->db, r->str);
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
        so_err(err, errlen, "redis FUNCTION LOAD (Redis 7 needed): %s", r->str);
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
    so_store_t *s = so_calloc(1, sizeof *s);
    s->prefix = so_strdup(prefix ? prefix : "so:");
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
        so_err(err, errlen, "redis %s: %s", what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    s->io_error = 0;
    return r;
}

redisReply *so_st_commandv(so_store_t *s, int argc, const char **argv, const size_t *lens,
                           char *err, size_t errlen)
{
    if (so_store_ensure(s, err, errlen) < 0)
        return NULL;
    return s_reply_check(s, redisCommandArgv(s->c, argc, argv, lens), argv[0], err, errlen);
}

redisReply *so_st_command(so_store_t *s, char *err, size_t errlen, const char *fmt, ...)
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
int so_st_append(so_store_t *s, int argc, const char **argv, const size_t *lens, char *err,
                 size_t errlen)
{
    if (redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK)
        return s_io_fail(s, err, errlen, argv[0]);
    return 0;
}

redisReply *so_st_get_reply(so_store_t *s, const char *what, char *err, size_t errlen)
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

int so_st_bad_reply(so_store_t *s, const redisReply *r, const char *what, const char *want,
                    char *err, size_t errlen)
{
    s->io_error = 0;
    return so_err(err, errlen, "redis %s: expected %s, got %s", what, want, s_type_name(r->type));
}

int so_st_exec_ok(so_store_t *s, redisReply *r, size_t expect, const char *what, char *err,
                  size_t errlen)
{
    if (r->type == REDIS_REPLY_NIL) {
        s->io_error = 0;
        return so_err(err, errlen, "redis %s: transaction aborted (a watched key changed)", what);
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != expect)
        return so_st_bad_reply(s, r, what, "the transaction's replies", err, errlen);
    for (size_t i = 0; i < r->elements; i++)
        if (!r->element[i] || r->element[i]->type == REDIS_REPLY_ERROR) {
            s->io_error = 0;
            return so_err(err, errlen, "redis %s: %s", what,
                          r->element[i] ? r->element[i]->str : "missing reply");
        }
    return 0;
}

int so_st_check_version(const char *v, char *err, size_t errlen)
{
    if (!v || !*v)
        return so_err(err, errlen, "handbook version is empty");
    if (strlen(v) > SO_WIRE_MAX_ID)
        return so_err(err, errlen, "handbook version '%.40s...' longer than %d bytes", v,
                      SO_WIRE_MAX_ID);
    return 0;
}

void so_st_unwatch(so_store_t *s)
{
    char e[64];
    if (s->c && !s->c->err) {
        redisReply *r = so_st_command(s, e, sizeof e, "UNWATCH");
        if (r)
            freeReplyObject(r);
    }
}

/* ------------------------------------------------------------------ */
/* Locks                                                              */

int so_store_lock(so_store_t *s, const char *name, const char *token, int ttl_ms, char *err,
                  size_t errlen)
{
    char key[S_KEY_MAX];
    if (so_store_key(s, key, sizeof key, "%s:lock", name) < 0)
        return so_err(err, errlen, "lock name too long");
    redisReply *r = so_st_command(s, err, errlen, "SET %s %s NX PX %d", key, token, ttl_ms);
    if (!r)
        return -1;
    int rc = r->type == REDIS_REPLY_STATUS ? 1
             : r->type == REDIS_REPLY_NIL
                 ? 0
                 : so_st_bad_reply(s, r, "SET NX", "OK or nil", err, errlen);
    freeReplyObject(r);
    return rc;
}

int so_store_unlock(so_store_t *s, const char *name, const char *token, char *err, size_t errlen)
{
    char key[S_KEY_MAX];
    if (so_store_key(s, key, sizeof key, "%s:lock", name) < 0)
        return so_err(err, errlen, "lock name too long");
    const char *argv[] = { "FCALL", "so_unlock", "1", key, token };
    size_t lens[5];
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = so_st_commandv(s, 5, argv, lens, err, errlen);
    if (!r)
        return -1;
    int rc = r->type == REDIS_REPLY_INTEGER
                 ? (int) (r->integer > 0)
                 : so_st_bad_reply(s, r, "so_unlock", "an integer", err, errlen);
    freeReplyObject(r);
    return rc;
}
