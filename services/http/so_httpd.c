/*
 * so_httpd — see so_httpd.h.  This file: set-up, routes, the checks made
 * from the request line and headers (method, API key, size), and the
 * libmicrohttpd callbacks that dispatch to so_admin.c and so_chat.c
 * (so_httpd_conn.h says which module does what).
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
#include "so_httpd_conn.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_svc.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

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
    char *copy = so_strdup(s ? s : ""), *save = NULL;
    size_t cap = 1;
    for (const char *p = copy; *p; p++)
        cap += *p == ',';
    char **v = so_calloc(cap, sizeof *v);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        size_t l = strlen(t);
        while (l && (t[l - 1] == ' ' || t[l - 1] == '\t'))
            t[--l] = '\0';
        if (l && *n < cap)
            v[(*n)++] = so_strdup(t);
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

const char *so_httpd_header(void *conn, const char *name)
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
    if (strncmp(url, "/v1/models/", 11) == 0 && url[11])
        return SO_ROUTE_MODELS; /* one model: the id may hold '/' (meta/llama-2-70b-chat) */
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
static int s_auth(so_hconn_t *c, enum MHD_Result *ret)
{
    so_httpd_t *h = c->h;
    if (h->n_keys == 0 || !s_needs_key(c->route))
        return 0;
    const char *a = so_httpd_header(c->conn, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a || strncasecmp(a, "Bearer ", 7) != 0) {
        *ret = so_reply_reject(c, SO_REJ_UNAUTHORIZED, 401, "invalid_request_error",
                               "missing_api_key", NULL,
                               "You didn't provide an API key: send \"Authorization: Bearer "
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
        *ret = so_reply_reject(c, SO_REJ_UNAUTHORIZED, 401, "invalid_request_error",
                               "invalid_api_key", NULL, "Incorrect API key provided");
        return -1;
    }
    return 0;
}

/* What can be decided from the request line and the headers.  Answers
 * (and sets c->answered) when the request is refused. */
static enum MHD_Result s_checks(so_hconn_t *c, const char *url)
{
    so_httpd_t *h = c->h;
    enum MHD_Result ret = MHD_YES;
    int get = strcmp(c->method, "GET") == 0 || strcmp(c->method, "HEAD") == 0;
    int post = strcmp(c->method, "POST") == 0;
    c->checked = 1;
    if (c->route == SO_ROUTE_OTHER)
        return so_reply_reject(c, SO_REJ_UNKNOWN_ROUTE, 404, "invalid_request_error",
                               "unknown_url", NULL, "Invalid URL (%s %.200s)", c->method, url);
    if (s_is_post(c->route) ? !post : !get) {
        const char *allow = s_is_post(c->route) ? "POST" : "GET, HEAD";
        so_oai_error_t e;
        so_oai_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                    "%s is not allowed on %s (use %s)", c->method, url, allow);
        so_counters_reject(h->counters, SO_REJ_METHOD);
        char *s = so_oai_error_json(&e);
        c->error = e.code;
        return so_reply_answer(c, 405, "application/json", s, s ? strlen(s) : 0,
                               MHD_HTTP_HEADER_ALLOW, allow, NULL);
    }
    if (atomic_load(&h->draining) && c->route != SO_ROUTE_HEALTHZ &&
        c->route != SO_ROUTE_READYZ && c->route != SO_ROUTE_METRICS)
        return so_reply_reject(c, SO_REJ_DRAINING, 503, "server_error", "unavailable", NULL,
                               "shutting down: send the request to another replica");
    if (s_auth(c, &ret) != 0)
        return ret;
    const char *cl = so_httpd_header(c->conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end != cl && !*end && !errno && n > h->o.max_body_bytes)
            return so_reply_reject(c, SO_REJ_TOO_LARGE, 413, "invalid_request_error",
                                   "request_too_large", NULL,
                                   "request body of %llu bytes is larger than the limit of %zu",
                                   n, h->o.max_body_bytes);
    }
    return MHD_YES;
}

/* A request whose body is complete (or that has none). */
static enum MHD_Result s_complete(so_hconn_t *c)
{
    switch (c->route) {
    case SO_ROUTE_HEALTHZ: return so_admin_healthz(c);
    case SO_ROUTE_READYZ: return so_admin_readyz(c);
    case SO_ROUTE_METRICS: return so_admin_metrics(c);
    case SO_ROUTE_MODELS: return so_admin_models(c);
    case SO_ROUTE_HANDBOOK: return so_admin_handbook(c);
    case SO_ROUTE_FEEDBACK: return so_admin_feedback(c);
    default: return so_chat_start(c);
    }
}

/* A body follows the headers (so refusing before reading it is worth it).
 * Answering before the request is read whole makes libmicrohttpd close
 * the connection, so requests without a body are answered at their end. */
static int s_has_body(so_hconn_t *c)
{
    const char *cl = so_httpd_header(c->conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return (cl && strcmp(cl, "0") != 0) ||
           so_httpd_header(c->conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/* Appends a piece of the body; past the limit, counts and drops. */
static enum MHD_Result s_body(so_hconn_t *c, const char *data, size_t n)
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
        c->body = so_realloc(c->body, cap);
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
    so_hconn_t *c = *con_cls;
    if (!c) {
        c = so_calloc(1, sizeof *c);
        c->h = h;
        c->conn = conn;
        c->method = method;
        pthread_mutex_init(&c->smu, NULL);
        c->route = s_route(url);
        if (c->route == SO_ROUTE_MODELS && strncmp(url, "/v1/models/", 11) == 0)
            snprintf(c->model_id, sizeof c->model_id, "%s", url + 11);
        clock_gettime(CLOCK_MONOTONIC, &c->started);
        snprintf(c->rid, sizeof c->rid, "%s-%llu", h->id_prefix,
                 (unsigned long long) atomic_fetch_add(&h->next_id, 1));
        *con_cls = c;
        atomic_fetch_add(&h->active, 1);
        return s_has_body(c) ? s_checks(c, url) : MHD_YES;
    }
    if (c->answered) { /* refused early: the rest of the body is dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->call) {
        pthread_mutex_lock(&c->smu);
        int streaming = c->streaming;
        pthread_mutex_unlock(&c->smu);
        if (streaming) /* deltas are in: stream them, then the end */
            return so_chat_stream_start(c);
    }
    if (c->call || c->has_fail)
        return so_chat_finish(c);
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
        return so_reply_reject(c, SO_REJ_TOO_LARGE, 413, "invalid_request_error",
                               "request_too_large", NULL,
                               "request body larger than the limit of %zu bytes",
                               h->o.max_body_bytes);
    return s_complete(c);
}

static void s_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void) conn;
    so_httpd_t *h = cls;
    so_hconn_t *c = *con_cls;
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
           c->error ? c->error : "",
           toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    if (c->counted_inflight)
        atomic_fetch_sub(&h->inflight, 1);
    so_gwcall_destroy(&c->call); /* waits for a running callback */
    so_oai_request_destroy(&c->req);
    free(c->body);
    so_buf_free(&c->out);
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
            return so_err(err, errlen, "listen '%s': expected [v6-address]:port", listen);
        }
        snprintf(host, sizeof host, "%.*s", (int) (close - listen - 1), listen + 1);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            return so_err(err, errlen, "listen '%s': expected host:port", listen);
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
    if (rc != 0 || !res)
        return so_err(err, errlen, "listen '%s': %s", listen, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

so_httpd_t *so_httpd_new(const so_httpd_opts_t *o, so_gwclient_t *gw, so_watch_t *watch,
                         so_counters_t *counters, char *err, size_t errlen)
{
    so_httpd_t *h = so_calloc(1, sizeof *h);
    h->o = *o;
    h->gw = gw;
    h->watch = watch;
    h->counters = counters;
    pthread_mutex_init(&h->mu, NULL);
    h->keys = s_split(o->api_keys, &h->n_keys);
    h->profiles = s_split(o->routing_profiles, &h->n_profiles);
    h->redis_url = so_strdup(o->redis_url ? o->redis_url : "redis://127.0.0.1:6379");
    h->redis_prefix = so_strdup(o->redis_prefix ? o->redis_prefix : "so:");
    h->cap_stores = o->threads + 2;
    h->stores = so_calloc(h->cap_stores, sizeof *h->stores);
    /* Request ids: unique per process (the prefix) and per request. */
    so_new_id("h", h->id_prefix, sizeof h->id_prefix);
    struct sockaddr_storage ss;
    int v6 = 0;
    if (s_listen_addr(o->listen, &ss, &v6, err, errlen) != 0) {
        so_httpd_destroy(&h);
        return NULL;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (v6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, s_on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
                            s_mhd_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
                            MHD_OPTION_THREAD_POOL_SIZE, o->threads, MHD_OPTION_CONNECTION_LIMIT,
                            o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, o->idle_timeout_s,
                            MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, h, MHD_OPTION_END);
    if (!h->d) {
        so_err(err, errlen, "cannot listen on %s: %s", o->listen,
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
    so_httpd_ready_t r;
    so_admin_readiness(h, &r);
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
            (unsigned long long) r.gw.timeouts, (unsigned long long) r.gw.stray, r.redis.redis_up,
            r.ready, r.redis.version[0] ? r.redis.version : "-");
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
