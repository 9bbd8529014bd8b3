/*
 * so_httpd — see so_httpd.h.
 *
 * One request's life (libmicrohttpd calls s_on_request several times):
 *   1st call     route, method, API key, Content-Length: refused at once,
 *                or a GET answered at once, or a POST waits for its body;
 *   body calls   the body is appended (at most max_body_bytes kept);
 *   last call    feedback: answered; chat: parsed into a TurnRequest,
 *                the connection suspended and the turn handed to the
 *                gateway client, whose callback resumes it;
 *   after resume the reply (or timeout, or failure) becomes the answer;
 *   completed    s_on_completed counts, logs one line and frees.
 * Nothing here asserts on what a client sent: every problem is an answer
 * in OpenAI's error shape.
 */
#include "so_httpd.h"
#include "store/so_store.h"
#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef Skillorchestra__V1__TurnReply s_reply_t;

#define S_RECENT 1024               /* episodes answered here, for feedback_wait_ms */
#define S_ID_MAX (SO_WIRE_MAX_ID + 1)

typedef struct {
    char id[S_ID_MAX];
    int64_t at;
} s_recent_t;

struct so_httpd {
    so_httpd_opts_t o;
    struct MHD_Daemon *d;
    unsigned port;
    so_gwclient_t *gw;
    so_watch_t *watch;
    so_counters_t *counters;
    char **keys, **profiles;
    size_t n_keys, n_profiles;
    char id_prefix[32];
    atomic_ullong next_id;
    atomic_int draining;
    atomic_long inflight, active;
    /* Redis connections for feedback and handbook requests (one per user). */
    pthread_mutex_t mu;
    so_store_t **stores;
    size_t n_stores, cap_stores;
    s_recent_t recent[S_RECENT];        /* under mu */
    size_t recent_next;
    char *redis_url, *redis_prefix;
};

typedef struct {
    so_httpd_t *h;
    struct MHD_Connection *conn;
    so_route_id_t route;
    const char *method;
    struct timespec started;
    char *body;
    size_t len, cap, seen;
    int checked, too_large, answered, status;
    so_oai_request_t *req;
    so_gwcall_t *call;
    int counted_inflight;
    so_oai_error_t fail;                /* a chat request that could not be submitted */
    int has_fail;
    char rid[64];
    char episode[S_ID_MAX], agent[S_ID_MAX];
    const char *error;                  /* error code for the log line */
    size_t bytes_out;
    /* Suspension and the incremental stream (stream: true).  The gateway
     * client's thread appends SSE bytes and resumes; the connection's
     * thread sends them and suspends while there are none. */
    pthread_mutex_t smu;
    int suspended;                      /* under smu */
    int ended;                          /* under smu: the call has ended */
    int streaming;                      /* under smu: a partial reply arrived */
    int tail_done;                      /* under smu: the end of the stream is in out */
    char *out;                          /* under smu: SSE bytes not yet sent */
    size_t out_len, out_off, out_cap, sent_text;
    char s_id[96], s_model[S_ID_MAX], s_version[S_ID_MAX], s_turn[16], s_top[1024];
    int64_t s_created;
} s_conn_t;

/* ---- Small helpers ----------------------------------------------------- */

static double s_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double) (t.tv_sec - t0->tv_sec) + (double) (t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A comma-separated list, trimmed, empty entries dropped. */
static char **s_split(const char *s, size_t *n)
{
    *n = 0;
    char *copy = strdup(s ? s : ""), *save = NULL;
    size_t cap = 1;
    for (const char *p = copy; p && *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    if (!copy || !v) {
        free(copy);
        free(v);
        return NULL;
    }
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        size_t l = strlen(t);
        while (l && (t[l - 1] == ' ' || t[l - 1] == '\t'))
            t[--l] = '\0';
        if (l && *n < cap)
            v[(*n)++] = strdup(t);
    }
    free(copy);
    return v;
}

static void s_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static const char *s_header(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* Compares without leaking where the first difference is. */
static int s_same(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char) (a[i] ^ b[lb ? i % lb : 0]);
    return d == 0;
}

/* ---- Answers ----------------------------------------------------------- */

/* Queues body (malloc'd, taken; NULL = out of memory) as the answer, with
 * header name/value pairs ending in NULL. */
static enum MHD_Result s_answer(s_conn_t *c, int status, const char *type, char *body,
                                size_t len, ...)
{
    if (!body) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                  "\"server_error\",\"param\":null,\"code\":\"internal_error\"}}";
        body = strdup(oom);
        if (!body)
            return MHD_NO;
        status = 500;
        type = "application/json";
        len = strlen(body);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (c->rid[0])
        MHD_add_response_header(r, "X-Request-Id", c->rid);
    va_list ap;
    va_start(ap, len);
    for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (v && *v)
            MHD_add_response_header(r, k, v);   /* refuses values with CR/LF */
    }
    va_end(ap);
    if (atomic_load(&c->h->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(c->conn, (unsigned) status, r);
    MHD_destroy_response(r);
    c->answered = 1;
    c->status = status;
    c->bytes_out = len;
    return rc;
}

static enum MHD_Result s_json(s_conn_t *c, int status, json_t *root)
{
    char *s = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(root);
    return s_answer(c, status, "application/json", s, s ? strlen(s) : 0, NULL);
}

static enum MHD_Result s_error(s_conn_t *c, const so_oai_error_t *e)
{
    char *s = so_oai_error_json(e);
    c->error = e->code ? e->code : e->type;
    const char *retry = e->status == 429 || e->status == 503 ? "1" : NULL;
    const char *auth = e->status == 401 ? "Bearer" : NULL;
    return s_answer(c, e->status, "application/json", s, s ? strlen(s) : 0,
                    MHD_HTTP_HEADER_RETRY_AFTER, retry, MHD_HTTP_HEADER_WWW_AUTHENTICATE, auth,
                    "X-SO-Episode-Id", c->episode, NULL);
}

static enum MHD_Result s_reject(s_conn_t *c, so_reject_t why, int status, const char *type,
                                const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static enum MHD_Result s_reject(s_conn_t *c, so_reject_t why, int status, const char *type,
                                const char *code, const char *param, const char *fmt, ...)
{
    so_oai_error_t e;
    so_oai_fail(&e, status, type, code, param, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    so_counters_reject(c->h->counters, why);
    return s_error(c, &e);
}

/* ---- Readiness, health, metrics, models, handbook ---------------------- */

typedef struct {
    int ready;
    so_watch_status_t redis;
    so_gwclient_stats_t gw;
    int64_t now;
} s_ready_t;

static void s_readiness(so_httpd_t *h, s_ready_t *r)
{
    so_watch_status(h->watch, &r->redis);
    so_gwclient_stats(h->gw, &r->gw);
    r->now = so_now_ms();
    r->ready = !atomic_load(&h->draining) && r->gw.peers > 0 && r->redis.redis_up &&
               r->now - r->redis.last_ok_ms <= h->o.ready_max_age_ms && r->redis.version[0];
}

static enum MHD_Result s_readyz(s_conn_t *c)
{
    s_ready_t r;
    s_readiness(c->h, &r);
    json_t *gw = json_pack("{s:i,s:o}", "connected", r.gw.peers, "last_reply_ms_ago",
                           r.gw.last_reply_ms ? json_integer(r.now - r.gw.last_reply_ms)
                                              : json_null());
    json_t *redis = json_pack("{s:b,s:o}", "up", r.redis.redis_up, "last_ok_ms_ago",
                              r.redis.last_ok_ms ? json_integer(r.now - r.redis.last_ok_ms)
                                                 : json_null());
    json_t *root = json_pack("{s:b,s:b,s:o,s:o,s:o}", "ready", r.ready, "draining",
                             atomic_load(&c->h->draining), "gateway", gw, "redis", redis,
                             "handbook_version",
                             r.redis.version[0] ? json_string(r.redis.version) : json_null());
    return s_json(c, r.ready ? 200 : 503, root);
}

static enum MHD_Result s_metrics(s_conn_t *c)
{
    so_httpd_t *h = c->h;
    s_ready_t r;
    s_readiness(h, &r);
    so_counters_gauges_t g = {
        .inflight = atomic_load(&h->inflight),
        .gateway_peers = r.gw.peers,
        .redis_up = r.redis.redis_up,
        .ready = r.ready,
        .draining = atomic_load(&h->draining),
        .handbook_version = r.redis.version,
        .gw_sent = r.gw.sent,
        .gw_replies = r.gw.replies,
        .gw_stray = r.gw.stray,
        .gw_rejected = r.gw.rejected,
    };
    char *s = so_counters_render(h->counters, &g);
    return s_answer(c, 200, "text/plain; version=0.0.4", s, s ? strlen(s) : 0, NULL);
}

static json_t *s_model_entry(const char *id, const char *owner)
{
    return json_pack("{s:s,s:s,s:i,s:s}", "id", id, "object", "model", "created", 0,
                     "owned_by", owner);
}

static enum MHD_Result s_models(s_conn_t *c)
{
    so_httpd_t *h = c->h;
    json_t *data = json_array();
    json_array_append_new(data, s_model_entry("auto", "skillorchestra"));
    for (size_t i = 0; i < h->n_profiles; i++)
        json_array_append_new(data, s_model_entry(h->profiles[i], "skillorchestra"));
    so_watch_agent_t *a = NULL;
    size_t n = 0;
    char version[S_ID_MAX] = "";
    if (so_watch_agents(h->watch, version, sizeof version, &a, &n) == 0)
        for (size_t i = 0; i < n; i++) {
            json_t *m = s_model_entry(a[i].id, "skillorchestra-agent");
            json_object_set_new(m, "skillorchestra",
                                json_pack("{s:s,s:s,s:f,s:f,s:I,s:b}", "handbook_version",
                                          version, "model", a[i].model, "price_in_per_1m",
                                          a[i].price_in, "price_out_per_1m", a[i].price_out,
                                          "context_limit", (json_int_t) a[i].context_limit,
                                          "available", a[i].available));
            json_array_append_new(data, m);
        }
    free(a);
    return s_json(c, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static so_store_t *s_store_get(so_httpd_t *h, char *err, size_t errlen)
{
    so_store_t *s = NULL;
    pthread_mutex_lock(&h->mu);
    if (h->n_stores > 0)
        s = h->stores[--h->n_stores];
    pthread_mutex_unlock(&h->mu);
    if (!s)
        s = so_store_connect(h->redis_url, h->redis_prefix, h->o.redis_timeout_ms, err, errlen);
    return s;
}

static void s_store_put(so_httpd_t *h, so_store_t *s)
{
    pthread_mutex_lock(&h->mu);
    if (h->n_stores < h->cap_stores) {
        h->stores[h->n_stores++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&h->mu);
    so_store_destroy(&s);
}

static enum MHD_Result s_redis_down(s_conn_t *c, const char *err)
{
    so_oai_error_t e;
    so_oai_fail(&e, 503, "server_error", "unavailable", NULL, "Redis is not reachable: %s", err);
    return s_error(c, &e);
}

static enum MHD_Result s_handbook(s_conn_t *c)
{
    so_httpd_t *h = c->h;
    const char *want = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "version");
    char err[512], version[S_ID_MAX] = "", key[512];
    if (want && *want) {
        so_oai_error_t e;
        size_t n = strlen(want);
        int ok = n <= SO_WIRE_MAX_ID;
        for (size_t i = 0; ok && i < n; i++)
            ok = (unsigned char) want[i] >= 0x20 && want[i] != 0x7f;
        if (!ok) {
            so_oai_fail(&e, 400, "invalid_request_error", "invalid_request", "version",
                        "version: at most %d bytes, no control characters", SO_WIRE_MAX_ID);
            so_counters_reject(h->counters, SO_REJ_INVALID_REQUEST);
            return s_error(c, &e);
        }
        snprintf(version, sizeof version, "%s", want);
    }
    so_store_t *s = s_store_get(h, err, sizeof err);
    if (!s)
        return s_redis_down(c, err);
    if (!version[0] && so_store_current_version(s, version, sizeof version, err, sizeof err) < 0) {
        int io = so_store_io_error(s);
        s_store_put(h, s);
        if (io)
            return s_redis_down(c, err);
        so_oai_error_t e;
        so_oai_fail(&e, 404, "invalid_request_error", "unknown_handbook", NULL,
                    "no handbook has been published yet");
        return s_error(c, &e);
    }
    so_store_key(s, key, sizeof key, "hb:%s", version);
    redisReply *r = NULL;
    if (so_store_ensure(s, err, sizeof err) == 0) {
        redisContext *rc = so_store_redis(s);
        r = redisCommand(rc, "GET %s", key);
        if (!r)
            snprintf(err, sizeof err, "GET %.200s: %.200s", key,
                     rc->errstr[0] ? rc->errstr : "failed");
    }
    if (!r) {
        so_store_destroy(&s);      /* a broken connection: do not keep it */
        return s_redis_down(c, err);
    }
    s_store_put(h, s);
    enum MHD_Result ret;
    if (r->type == REDIS_REPLY_STRING) {
        char *body = malloc(r->len + 1);
        if (body) {
            memcpy(body, r->str, r->len);
            body[r->len] = '\0';
        }
        ret = s_answer(c, 200, "application/json", body, r->len, "X-SO-Handbook-Version",
                       version, NULL);
    } else if (r->type == REDIS_REPLY_NIL) {
        so_oai_error_t e;
        so_oai_fail(&e, 404, "invalid_request_error", "unknown_handbook", "version",
                    "handbook version '%s' is not in Redis", version);
        ret = s_error(c, &e);
    } else {
        so_oai_error_t e;
        so_oai_fail(&e, 500, "server_error", "internal_error", NULL, "GET %.200s: %.200s", key,
                    r->type == REDIS_REPLY_ERROR ? r->str : "not a string");
        ret = s_error(c, &e);
    }
    freeReplyObject(r);
    return ret;
}

/* ---- Feedback ---------------------------------------------------------- */

static void s_recent_add(so_httpd_t *h, const char *episode)
{
    pthread_mutex_lock(&h->mu);
    s_recent_t *r = &h->recent[h->recent_next++ % S_RECENT];
    snprintf(r->id, sizeof r->id, "%s", episode);
    r->at = so_now_ms();
    pthread_mutex_unlock(&h->mu);
}

/* When this process answered a turn of the episode (0 = not recently). */
static int64_t s_recent_at(so_httpd_t *h, const char *episode)
{
    int64_t at = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < S_RECENT; i++)
        if (h->recent[i].at > at && strcmp(h->recent[i].id, episode) == 0)
            at = h->recent[i].at;
    pthread_mutex_unlock(&h->mu);
    return at;
}

static enum MHD_Result s_feedback(s_conn_t *c)
{
    so_httpd_t *h = c->h;
    so_oai_feedback_t fb;
    so_oai_error_t e;
    if (so_oai_parse_feedback(c->body, c->len, &fb, &e) < 0) {
        so_counters_reject(h->counters, strcmp(e.code ? e.code : "", "invalid_json") == 0
                                            ? SO_REJ_INVALID_JSON
                                            : SO_REJ_INVALID_REQUEST);
        so_counters_feedback(h->counters, SO_FB_INVALID);
        return s_error(c, &e);
    }
    snprintf(c->episode, sizeof c->episode, "%s", fb.episode_id);
    char err[512];
    so_store_t *s = s_store_get(h, err, sizeof err);
    if (!s) {
        so_counters_feedback(h->counters, SO_FB_ERROR);
        return s_redis_down(c, err);
    }
    /* The gateway records a turn after answering it, off its request path:
     * feedback sent right after an answer from here may beat it to Redis. */
    int64_t answered = s_recent_at(h, fb.episode_id);
    int rc;
    for (;;) {
        rc = so_store_finish_episode(s, fb.episode_id, fb.has_success, fb.success,
                                     fb.has_success ? NAN : fb.score, NULL, err, sizeof err);
        if (rc != 0 || !answered || so_now_ms() >= answered + h->o.feedback_wait_ms)
            break;
        usleep(20000);
    }
    int io = rc < 0 && so_store_io_error(s);
    if (io)
        so_store_destroy(&s);
    else
        s_store_put(h, s);
    if (rc < 0) {
        so_counters_feedback(h->counters, SO_FB_ERROR);
        if (io)
            return s_redis_down(c, err);
        so_oai_fail(&e, 500, "server_error", "internal_error", NULL, "%s", err);
        return s_error(c, &e);
    }
    if (rc == 0) {
        so_counters_feedback(h->counters, SO_FB_NOT_FOUND);
        so_oai_fail(&e, 404, "invalid_request_error", "episode_not_found", "episode_id",
                    "episode '%s' has no pending turns (unknown, already finished, or expired)",
                    fb.episode_id);
        return s_error(c, &e);
    }
    so_counters_feedback(h->counters, SO_FB_LOGGED);
    json_t *outcome = fb.has_success ? json_pack("{s:b}", "success", fb.success)
                                     : json_pack("{s:f}", "score", fb.score);
    return s_json(c, 200, json_pack("{s:s,s:s,s:s,s:o}", "object", "feedback", "episode_id",
                                    fb.episode_id, "status", "logged", "outcome", outcome));
}

/* ---- Chat completions -------------------------------------------------- */

/* Resumes the connection if it is suspended (under smu). */
static void s_wake(s_conn_t *c)
{
    if (c->suspended) {
        c->suspended = 0;
        MHD_resume_connection(c->conn);
    }
}

/* The call ended (gateway client's thread). */
static void s_resume(void *arg)
{
    s_conn_t *c = arg;
    pthread_mutex_lock(&c->smu);
    c->ended = 1;
    s_wake(c);
    pthread_mutex_unlock(&c->smu);
}

/* Appends s (taken; NULL = out of memory, dropped) to the stream (under smu). */
static void s_out_add(s_conn_t *c, char *s)
{
    if (!s)
        return;
    size_t n = strlen(s);
    if (c->out_len + n + 1 > c->out_cap) {
        size_t cap = (c->out_len + n + 1) * 2;
        char *b = realloc(c->out, cap);
        if (!b) {
            free(s);
            return;
        }
        c->out = b;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    free(s);
}

/* A partial reply (gateway client's thread): the first one fixes the
 * stream's headers and sends the role chunk; each is one content chunk. */
static void s_partial(void *arg, const s_reply_t *rep)
{
    s_conn_t *c = arg;
    const char *text = rep->text ? rep->text : "";
    pthread_mutex_lock(&c->smu);
    if (!c->streaming) {
        const Skillorchestra__V1__RoutingDecision *d = rep->decision;
        const char *agent = rep->result ? rep->result->agent_id : "";
        snprintf(c->agent, sizeof c->agent, "%s", agent);
        snprintf(c->s_id, sizeof c->s_id, "chatcmpl-%s", c->rid);
        c->s_created = (int64_t) time(NULL);
        if (d) {
            so_watch_model(c->h->watch, d->handbook_version, agent, c->s_model,
                           sizeof c->s_model);
            snprintf(c->s_version, sizeof c->s_version, "%s", d->handbook_version);
            snprintf(c->s_turn, sizeof c->s_turn, "%u", d->turn_index);
        }
        so_oai_top_skills_header(rep, c->s_top, sizeof c->s_top);
        s_out_add(c, so_oai_sse_head(rep, c->s_id, c->s_created, c->s_model));
        c->streaming = 1;
    }
    if (*text) {
        s_out_add(c, so_oai_sse_delta(rep, c->s_id, c->s_created, c->s_model, text));
        c->sent_text += strlen(text);
    }
    s_wake(c);
    pthread_mutex_unlock(&c->smu);
}

/* The end of a stream from the call's outcome (under smu, call ended): the
 * text the deltas missed, finish_reason and usage, or an error event. */
static void s_stream_end(s_conn_t *c)
{
    so_httpd_t *h = c->h;
    const s_reply_t *rep = NULL;
    const char *msg = "";
    so_gw_status_t st = so_gwcall_result(c->call, &rep, &msg);
    so_oai_error_t e;
    if (st == SO_GW_REPLY && rep->result &&
        !(rep->error && rep->error->code != SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_NONE)) {
        const char *text = rep->text ? rep->text : "";
        if (strlen(text) > c->sent_text)
            s_out_add(c, so_oai_sse_delta(rep, c->s_id, c->s_created, c->s_model,
                                          text + c->sent_text));
        s_out_add(c, so_oai_sse_tail(rep, c->s_id, c->s_created, c->s_model,
                                     c->req->include_usage));
        if (c->episode[0])
            s_recent_add(h, c->episode);
        return;
    }
    if (st == SO_GW_REPLY && rep->error) {
        so_oai_error_from_code(rep->error->code, rep->error->message, c->req->pinned_version, &e);
        so_counters_error(h->counters, (int) rep->error->code, 0);
    } else if (st == SO_GW_TIMEOUT) {
        so_counters_error(h->counters, SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_TIMEOUT, 1);
        so_oai_fail(&e, 504, "server_error", "timeout", NULL, "no answer within %d ms (%s)",
                    h->o.timeout_ms, msg);
    } else {
        so_counters_error(h->counters, SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE, 1);
        so_oai_fail(&e, 503, "server_error", "unavailable", NULL, "%s", msg);
    }
    c->error = e.code ? e.code : "error";
    s_out_add(c, so_oai_sse_error(&e));
}

/* MHD's content reader for a stream: the queued bytes, else the end once
 * the call ended, else suspend until the gateway client wakes us. */
static ssize_t s_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) pos;
    s_conn_t *c = cls;
    pthread_mutex_lock(&c->smu);
    for (;;) {
        if (c->out_off < c->out_len) {
            size_t n = c->out_len - c->out_off < max ? c->out_len - c->out_off : max;
            memcpy(buf, c->out + c->out_off, n);
            c->out_off += n;
            if (c->out_off == c->out_len)
                c->out_off = c->out_len = 0;
            c->bytes_out += n;
            pthread_mutex_unlock(&c->smu);
            return (ssize_t) n;
        }
        if (c->tail_done) {
            pthread_mutex_unlock(&c->smu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (!c->ended)
            break;
        s_stream_end(c);
        c->tail_done = 1;
    }
    c->suspended = 1;
    MHD_suspend_connection(c->conn);
    pthread_mutex_unlock(&c->smu);
    return 0;
}

/* The first partial reply arrived: the 200 and the stream's headers now. */
static enum MHD_Result s_stream_start(s_conn_t *c)
{
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
                                                               s_stream_read, c, NULL);
    if (!r)
        return MHD_NO;
    pthread_mutex_lock(&c->smu);
    const char *hdr[][2] = {
        { MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream" }, { "Cache-Control", "no-cache" },
        { "X-Request-Id", c->rid }, { "X-SO-Agent", c->agent },
        { "X-SO-Episode-Id", c->episode }, { "X-SO-Turn-Index", c->s_turn },
        { "X-SO-Handbook-Version", c->s_version }, { "X-SO-Top-Skills", c->s_top },
    };
    for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++)
        if (hdr[i][1][0])
            MHD_add_response_header(r, hdr[i][0], hdr[i][1]);
    pthread_mutex_unlock(&c->smu);
    if (atomic_load(&c->h->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(c->conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    c->answered = 1;
    c->status = 200;
    return rc;
}

/* "auto", a routing profile, or an agent of the current handbook (routed
 * to that agent alone: every other one is excluded). */
static int s_resolve_model(so_httpd_t *h, so_oai_request_t *r, so_oai_error_t *e)
{
    if (strcmp(r->model, "auto") == 0)
        return 0;
    for (size_t i = 0; i < h->n_profiles; i++)
        if (strcmp(r->model, h->profiles[i]) == 0)
            return so_oai_request_set_profile(r, r->model);
    so_watch_agent_t *a = NULL;
    size_t n = 0, found = (size_t) -1;
    char version[S_ID_MAX] = "";
    if (so_watch_agents(h->watch, version, sizeof version, &a, &n) == 0)
        for (size_t i = 0; i < n && found == (size_t) -1; i++)
            if (strcmp(a[i].id, r->model) == 0)
                found = i;
    int rc = 0;
    if (found != (size_t) -1) {
        for (size_t i = 0; i < n && rc == 0; i++) {
            const char *id = a[i].id;
            if (i != found)
                rc = so_oai_request_exclude(r, &id, 1);
        }
        if (rc < 0)
            so_oai_fail(e, 500, "server_error", "internal_error", "model", "out of memory");
    } else {
        rc = so_oai_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                         "The model '%.128s' does not exist here: use \"auto\"%s, a routing "
                         "profile, or an agent of handbook %s (GET /v1/models)", r->model,
                         h->n_profiles ? "" : " (no routing profiles are configured)",
                         version[0] ? version : "(none loaded)");
    }
    free(a);
    return rc;
}

static enum MHD_Result s_chat_start(s_conn_t *c)
{
    so_httpd_t *h = c->h;
    so_oai_error_t e;
    c->req = so_oai_parse_request(c->body, c->len, s_header, c->conn, &h->o.limits, &e);
    if (!c->req) {
        so_counters_reject(h->counters, strcmp(e.code ? e.code : "", "invalid_json") == 0
                                            ? SO_REJ_INVALID_JSON
                                            : SO_REJ_INVALID_REQUEST);
        return s_error(c, &e);
    }
    snprintf(c->episode, sizeof c->episode, "%s", c->req->turn.episode_id);
    if (s_resolve_model(h, c->req, &e) < 0) {
        so_counters_reject(h->counters, SO_REJ_UNKNOWN_MODEL);
        return s_error(c, &e);
    }
    if (atomic_fetch_add(&h->inflight, 1) >= h->o.max_inflight) {
        atomic_fetch_sub(&h->inflight, 1);
        return s_reject(c, SO_REJ_OVERLOADED, 503, "server_error", "overloaded", NULL,
                        "overloaded: %ld requests in flight", h->o.max_inflight);
    }
    c->counted_inflight = 1;
    if (so_oai_request_set_id(c->req, c->rid) < 0) {
        so_oai_fail(&e, 500, "server_error", "internal_error", NULL, "out of memory");
        return s_error(c, &e);
    }
    /* Suspend first: the client thread may end the call (and resume us)
     * before so_gwclient_submit even returns. */
    pthread_mutex_lock(&c->smu);
    MHD_suspend_connection(c->conn);
    c->suspended = 1;
    pthread_mutex_unlock(&c->smu);
    char err[512];
    c->call = so_gwclient_submit_stream(h->gw, &c->req->turn, so_now_ms() + h->o.timeout_ms,
                                        s_resume, c->req->stream ? s_partial : NULL, c, err,
                                        sizeof err);
    if (!c->call) {
        so_oai_fail(&c->fail, 503, "server_error", "unavailable", NULL, "%s", err);
        c->has_fail = 1;
        pthread_mutex_lock(&c->smu);
        s_wake(c);
        pthread_mutex_unlock(&c->smu);
    }
    return MHD_YES;
}

static enum MHD_Result s_chat_reply(s_conn_t *c, const s_reply_t *rep)
{
    so_httpd_t *h = c->h;
    const Skillorchestra__V1__AgentResult *res = rep->result;
    const Skillorchestra__V1__RoutingDecision *d = rep->decision;
    snprintf(c->episode, sizeof c->episode, "%s", rep->episode_id ? rep->episode_id : "");
    if (rep->error && rep->error->code != SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_NONE) {
        so_oai_error_t e;
        so_oai_error_from_code(rep->error->code, rep->error->message, c->req->pinned_version, &e);
        so_counters_error(h->counters, (int) rep->error->code, 0);
        return s_error(c, &e);
    }
    if (!res) {     /* so_wire validation makes this impossible; stay safe */
        so_oai_error_t e;
        so_oai_error_from_code(SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
                               "the gateway's reply carries no result", 0, &e);
        return s_error(c, &e);
    }
    snprintf(c->agent, sizeof c->agent, "%s", res->agent_id);
    if (c->episode[0])
        s_recent_add(h, c->episode);
    char model[S_ID_MAX] = "", completion_id[96], top[1024], turn[16] = "", cost[32];
    if (d)
        so_watch_model(h->watch, d->handbook_version, res->agent_id, model, sizeof model);
    snprintf(completion_id, sizeof completion_id, "chatcmpl-%s", c->rid);
    so_oai_top_skills_header(rep, top, sizeof top);
    if (d)
        snprintf(turn, sizeof turn, "%u", d->turn_index);
    snprintf(cost, sizeof cost, "%.8f", res->cost_usd);
    int64_t created = (int64_t) time(NULL);
    char *body = c->req->stream ? so_oai_completion_sse(rep, completion_id, created, model,
                                                        c->req->include_usage)
                                : so_oai_completion_json(rep, completion_id, created, model);
    return s_answer(c, 200, c->req->stream ? "text/event-stream" : "application/json", body,
                    body ? strlen(body) : 0, "Cache-Control",
                    c->req->stream ? "no-cache" : NULL, "X-SO-Agent", res->agent_id,
                    "X-SO-Episode-Id", c->episode, "X-SO-Turn-Index", turn,
                    "X-SO-Handbook-Version", d ? d->handbook_version : NULL, "X-SO-Top-Skills",
                    top, "X-SO-Cost-USD", cost, NULL);
}

static enum MHD_Result s_chat_finish(s_conn_t *c)
{
    so_httpd_t *h = c->h;
    if (c->counted_inflight) {
        atomic_fetch_sub(&h->inflight, 1);
        c->counted_inflight = 0;
    }
    if (c->has_fail)
        return s_error(c, &c->fail);
    const s_reply_t *rep = NULL;
    const char *msg = "";
    so_gw_status_t st = so_gwcall_result(c->call, &rep, &msg);
    so_oai_error_t e;
    enum MHD_Result ret;
    switch (st) {
    case SO_GW_REPLY:
        ret = s_chat_reply(c, rep);
        break;
    case SO_GW_TIMEOUT:
        so_counters_error(h->counters, SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_TIMEOUT, 1);
        so_oai_fail(&e, 504, "server_error", "timeout", NULL,
                    "no answer within %d ms (%s)", h->o.timeout_ms, msg);
        ret = s_error(c, &e);
        break;
    default:
        so_counters_error(h->counters, SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE, 1);
        so_oai_fail(&e, 503, "server_error", "unavailable", NULL, "%s", msg);
        ret = s_error(c, &e);
        break;
    }
    so_gwcall_destroy(&c->call);
    return ret;
}

/* ---- Dispatch ---------------------------------------------------------- */

static so_route_id_t s_route(const char *url)
{
    static const struct {
        const char *path;
        so_route_id_t id;
    } routes[] = {
        { "/v1/chat/completions", SO_ROUTE_CHAT }, { "/v1/feedback", SO_ROUTE_FEEDBACK },
        { "/v1/handbook", SO_ROUTE_HANDBOOK },     { "/v1/models", SO_ROUTE_MODELS },
        { "/healthz", SO_ROUTE_HEALTHZ },          { "/readyz", SO_ROUTE_READYZ },
        { "/metrics", SO_ROUTE_METRICS },
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(url, routes[i].path) == 0)
            return routes[i].id;
    return SO_ROUTE_OTHER;
}

static int s_is_post(so_route_id_t r)
{
    return r == SO_ROUTE_CHAT || r == SO_ROUTE_FEEDBACK;
}

static int s_needs_key(so_route_id_t r)
{
    return r == SO_ROUTE_CHAT || r == SO_ROUTE_FEEDBACK || r == SO_ROUTE_HANDBOOK ||
           r == SO_ROUTE_MODELS;
}

/* 0 when the request may go on; else it was answered (401). */
static int s_auth(s_conn_t *c, enum MHD_Result *ret)
{
    so_httpd_t *h = c->h;
    if (h->n_keys == 0 || !s_needs_key(c->route))
        return 0;
    const char *a = s_header(c->conn, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a || strncasecmp(a, "Bearer ", 7) != 0) {
        *ret = s_reject(c, SO_REJ_UNAUTHORIZED, 401, "invalid_request_error", "missing_api_key",
                        NULL, "You didn't provide an API key: send \"Authorization: Bearer "
                        "<key>\"");
        return -1;
    }
    const char *key = a + 7;
    while (*key == ' ')
        key++;
    int ok = 0;
    for (size_t i = 0; i < h->n_keys; i++)
        ok |= s_same(key, h->keys[i]);
    if (!ok) {
        *ret = s_reject(c, SO_REJ_UNAUTHORIZED, 401, "invalid_request_error", "invalid_api_key",
                        NULL, "Incorrect API key provided");
        return -1;
    }
    return 0;
}

/* What can be decided from the request line and the headers.  Answers
 * (and sets c->answered) when the request is refused. */
static enum MHD_Result s_checks(s_conn_t *c, const char *url)
{
    so_httpd_t *h = c->h;
    enum MHD_Result ret = MHD_YES;
    int get = strcmp(c->method, "GET") == 0 || strcmp(c->method, "HEAD") == 0;
    int post = strcmp(c->method, "POST") == 0;
    c->checked = 1;
    if (c->route == SO_ROUTE_OTHER)
        return s_reject(c, SO_REJ_UNKNOWN_ROUTE, 404, "invalid_request_error", "unknown_url",
                        NULL, "Invalid URL (%s %.200s)", c->method, url);
    if (s_is_post(c->route) ? !post : !get) {
        const char *allow = s_is_post(c->route) ? "POST" : "GET, HEAD";
        so_oai_error_t e;
        so_oai_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                    "%s is not allowed on %s (use %s)", c->method, url, allow);
        so_counters_reject(h->counters, SO_REJ_METHOD);
        char *s = so_oai_error_json(&e);
        c->error = e.code;
        return s_answer(c, 405, "application/json", s, s ? strlen(s) : 0, MHD_HTTP_HEADER_ALLOW,
                        allow, NULL);
    }
    if (atomic_load(&h->draining) && c->route != SO_ROUTE_HEALTHZ &&
        c->route != SO_ROUTE_READYZ && c->route != SO_ROUTE_METRICS)
        return s_reject(c, SO_REJ_DRAINING, 503, "server_error", "unavailable", NULL,
                        "shutting down: send the request to another replica");
    if (s_auth(c, &ret) != 0)
        return ret;
    const char *cl = s_header(c->conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end != cl && !*end && !errno && n > h->o.max_body_bytes)
            return s_reject(c, SO_REJ_TOO_LARGE, 413, "invalid_request_error",
                            "request_too_large", NULL,
                            "request body of %llu bytes is larger than the limit of %zu", n,
                            h->o.max_body_bytes);
    }
    return MHD_YES;
}

/* A request whose body is complete (or that has none). */
static enum MHD_Result s_complete(s_conn_t *c)
{
    switch (c->route) {
    case SO_ROUTE_HEALTHZ:
        return s_json(c, 200, json_pack("{s:s}", "status", "ok"));
    case SO_ROUTE_READYZ:
        return s_readyz(c);
    case SO_ROUTE_METRICS:
        return s_metrics(c);
    case SO_ROUTE_MODELS:
        return s_models(c);
    case SO_ROUTE_HANDBOOK:
        return s_handbook(c);
    case SO_ROUTE_FEEDBACK:
        return s_feedback(c);
    default:
        return s_chat_start(c);
    }
}

/* A body follows the headers (so refusing before reading it is worth it).
 * Answering before the request is read whole makes libmicrohttpd close
 * the connection, so requests without a body are answered at their end. */
static int s_has_body(s_conn_t *c)
{
    const char *cl = s_header(c->conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return (cl && strcmp(cl, "0") != 0) ||
           s_header(c->conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/* Appends a piece of the body; past the limit, counts and drops. */
static enum MHD_Result s_body(s_conn_t *c, const char *data, size_t n)
{
    size_t max = c->h->o.max_body_bytes;
    c->seen += n;
    if (c->seen > max) {
        c->too_large = 1;
        /* A client that keeps streaming far past the limit is cut off. */
        return c->seen > 8 * max + (1u << 20) ? MHD_NO : MHD_YES;
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *b = realloc(c->body, cap);
        if (!b)
            return MHD_NO;
        c->body = b;
        c->cap = cap;
    }
    memcpy(c->body + c->len, data, n);
    c->len += n;
    c->body[c->len] = '\0';
    return MHD_YES;
}

static enum MHD_Result s_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    (void) version;
    so_httpd_t *h = cls;
    s_conn_t *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return MHD_NO;
        c->h = h;
        c->conn = conn;
        c->method = method;
        pthread_mutex_init(&c->smu, NULL);
        c->route = s_route(url);
        clock_gettime(CLOCK_MONOTONIC, &c->started);
        snprintf(c->rid, sizeof c->rid, "%s-%llu", h->id_prefix,
                 (unsigned long long) atomic_fetch_add(&h->next_id, 1));
        *con_cls = c;
        atomic_fetch_add(&h->active, 1);
        return s_has_body(c) ? s_checks(c, url) : MHD_YES;
    }
    if (c->answered) {      /* refused early: the rest of the body is dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->call) {
        pthread_mutex_lock(&c->smu);
        int streaming = c->streaming;
        pthread_mutex_unlock(&c->smu);
        if (streaming)      /* deltas are in: stream them, then the end */
            return s_stream_start(c);
    }
    if (c->call || c->has_fail)
        return s_chat_finish(c);
    if (*upload_data_size) {
        enum MHD_Result rc = s_body(c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rc;
    }
    if (!c->checked) {
        enum MHD_Result ret = s_checks(c, url);
        if (c->answered)
            return ret;
    }
    if (c->too_large)
        return s_reject(c, SO_REJ_TOO_LARGE, 413, "invalid_request_error", "request_too_large",
                        NULL, "request body larger than the limit of %zu bytes",
                        h->o.max_body_bytes);
    return s_complete(c);
}

static void s_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void) conn;
    so_httpd_t *h = cls;
    s_conn_t *c = *con_cls;
    if (!c)
        return;
    *con_cls = NULL;
    double secs = s_since(&c->started);
    int status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? c->status : 0;
    so_counters_request(h->counters, c->route, status, secs);
    int probe = c->route == SO_ROUTE_HEALTHZ || c->route == SO_ROUTE_READYZ ||
                c->route == SO_ROUTE_METRICS;
    so_log(probe && status == 200 ? SO_LOG_DEBUG : SO_LOG_INFO, "request",
           "method=%s route=%s status=%d ms=%.2f request_id=%s episode_id=%s agent=%s "
           "stream=%d bytes_in=%zu bytes_out=%zu%s%s%s",
           c->method, so_route_name(c->route), status, secs * 1e3, c->rid,
           c->episode[0] ? c->episode : "-", c->agent[0] ? c->agent : "-",
           c->req ? c->req->stream : 0, c->seen, c->bytes_out, c->error ? " error=" : "",
           c->error ? c->error : "", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
                                                                               : " aborted=1");
    if (c->counted_inflight)
        atomic_fetch_sub(&h->inflight, 1);
    so_gwcall_destroy(&c->call);     /* waits for a running callback */
    so_oai_request_destroy(&c->req);
    free(c->body);
    free(c->out);
    pthread_mutex_destroy(&c->smu);
    free(c);
    atomic_fetch_sub(&h->active, 1);
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void) cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    so_warn("http_server", "message=\"%s\"", line);
}

/* ---- Set-up ------------------------------------------------------------ */

static int s_listen_addr(const char *listen, struct sockaddr_storage *ss, int *v6, char *err,
                         size_t errlen)
{
    char host[256], port[16];
    const char *colon;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "listen '%s': expected [v6-address]:port", listen);
            return -1;
        }
        snprintf(host, sizeof host, "%.*s", (int) (close - listen - 1), listen + 1);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            snprintf(err, errlen, "listen '%s': expected host:port", listen);
            return -1;
        }
        snprintf(host, sizeof host, "%.*s", (int) (colon - listen), listen);
    }
    snprintf(port, sizeof port, "%s", colon + 1);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "listen '%s': %s", listen, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

so_httpd_t *so_httpd_new(const so_httpd_opts_t *o, so_gwclient_t *gw, so_watch_t *watch,
                         so_counters_t *counters, char *err, size_t errlen)
{
    so_httpd_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->o = *o;
    h->gw = gw;
    h->watch = watch;
    h->counters = counters;
    pthread_mutex_init(&h->mu, NULL);
    h->keys = s_split(o->api_keys, &h->n_keys);
    h->profiles = s_split(o->routing_profiles, &h->n_profiles);
    h->redis_url = strdup(o->redis_url ? o->redis_url : "redis://127.0.0.1:6379");
    h->redis_prefix = strdup(o->redis_prefix ? o->redis_prefix : "so:");
    h->cap_stores = o->threads + 2;
    h->stores = calloc(h->cap_stores, sizeof *h->stores);
    /* Request ids: unique per process (the prefix) and per request. */
    so_new_id("h", h->id_prefix, sizeof h->id_prefix);
    if (!h->keys || !h->profiles || !h->redis_url || !h->redis_prefix || !h->stores) {
        snprintf(err, errlen, "out of memory");
        so_httpd_destroy(&h);
        return NULL;
    }
    struct sockaddr_storage ss;
    int v6 = 0;
    if (s_listen_addr(o->listen, &ss, &v6, err, errlen) != 0) {
        so_httpd_destroy(&h);
        return NULL;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (v6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, s_on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
                            MHD_OPTION_THREAD_POOL_SIZE, o->threads,
                            MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, o->idle_timeout_s,
                            MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, h,
                            MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "cannot listen on %s: %s", o->listen,
                 errno ? strerror(errno) : "libmicrohttpd refused the settings");
        so_httpd_destroy(&h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : 0;
    return h;
}

unsigned so_httpd_port(so_httpd_t *h)
{
    return h->port;
}

void so_httpd_drain(so_httpd_t *h)
{
    atomic_store(&h->draining, 1);
}

long so_httpd_active(so_httpd_t *h)
{
    return atomic_load(&h->active);
}

long so_httpd_inflight(so_httpd_t *h)
{
    return atomic_load(&h->inflight);
}

void so_httpd_log_stats(so_httpd_t *h)
{
    so_counters_summary_t s;
    so_counters_summary(h->counters, &s);
    s_ready_t r;
    s_readiness(h, &r);
    so_info("stats",
            "requests=%llu ok=%llu client_errors=%llu server_errors=%llu rejected=%llu "
            "feedback=%llu inflight=%ld active=%ld chat_p50_le_s=%g chat_p99_le_s=%g "
            "gateway_peers=%d gateway_sent=%llu gateway_replies=%llu gateway_timeouts=%llu "
            "stray=%llu redis_up=%d ready=%d version=%s",
            (unsigned long long) s.requests, (unsigned long long) s.ok,
            (unsigned long long) s.client_errors, (unsigned long long) s.server_errors,
            (unsigned long long) s.rejected, (unsigned long long) s.feedback,
            atomic_load(&h->inflight), atomic_load(&h->active), s.p50_s, s.p99_s, r.gw.peers,
            (unsigned long long) r.gw.sent, (unsigned long long) r.gw.replies,
            (unsigned long long) r.gw.timeouts, (unsigned long long) r.gw.stray,
            r.redis.redis_up, r.ready, r.redis.version[0] ? r.redis.version : "-");
}

void so_httpd_destroy(so_httpd_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_httpd_t *h = *self_p;
    if (h->d)
        MHD_stop_daemon(h->d);
    for (size_t i = 0; i < h->n_stores; i++)
        so_store_destroy(&h->stores[i]);
    free(h->stores);
    s_strv_free(h->keys, h->n_keys);
    s_strv_free(h->profiles, h->n_profiles);
    free(h->redis_url);
    free(h->redis_prefix);
    pthread_mutex_destroy(&h->mu);
    free(h);
    *self_p = NULL;
}
