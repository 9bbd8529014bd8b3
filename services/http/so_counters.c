/*
 * so_counters — see so_counters.h.  Plain C11 atomics (relaxed order: these
 * are statistics, read for display only).
 */
#include "so_counters.h"
#include "so_oai.h"
#include "base/so_alloc.h"
#include "base/so_buf.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Status codes this service answers with; anything else counts as "other". */
static const int s_statuses[] = {
    200, 400, 401, 402, 404, 405, 409, 413, 429, 500, 502, 503, 504
};
#define S_N_STATUS (sizeof s_statuses / sizeof s_statuses[0] + 2) /* + other, + 0 */
#define S_STATUS_OTHER (S_N_STATUS - 2)
#define S_STATUS_NONE (S_N_STATUS - 1)

/* Histogram bounds (seconds). */
static const double s_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                   0.5,   1,      2.5,   5,    10,    30,   60 };
#define S_N_BOUNDS (sizeof s_bounds / sizeof s_bounds[0])

#define S_N_CODES 11 /* ErrorCode values 0..10 */

static const char *s_routes[SO_ROUTE_N] = { "chat",    "feedback", "handbook", "models",
                                            "healthz", "readyz",   "metrics",  "other" };
static const char *s_rejects[SO_REJ_N] = {
    "invalid_json",       "invalid_request", "unauthorized", "too_large", "unknown_route",
    "method_not_allowed", "unknown_model",   "overloaded",   "draining"
};
static const char *s_feedbacks[SO_FB_N] = { "logged", "not_found", "invalid", "error" };

struct so_counters {
    atomic_ullong requests[SO_ROUTE_N][S_N_STATUS];
    atomic_ullong buckets[SO_ROUTE_N][S_N_BOUNDS + 1]; /* non-cumulative; last = +Inf */
    atomic_ullong sum_us[SO_ROUTE_N];
    atomic_ullong errors[S_N_CODES + 1][2]; /* [code][local] ; last = other */
    atomic_ullong rejected[SO_REJ_N];
    atomic_ullong feedback[SO_FB_N];
};

const char *so_route_name(so_route_id_t route)
{
    return route < SO_ROUTE_N ? s_routes[route] : "other";
}

so_counters_t *so_counters_new(void)
{
    so_counters_t *m = so_calloc(1, sizeof *m); /* all-zero bits are zero atomics here */
    return m;
}

void so_counters_destroy(so_counters_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

static size_t s_status_index(int status)
{
    if (status == 0)
        return S_STATUS_NONE;
    for (size_t i = 0; i < S_STATUS_OTHER; i++)
        if (s_statuses[i] == status)
            return i;
    return S_STATUS_OTHER;
}

void so_counters_request(so_counters_t *m, so_route_id_t route, int status, double seconds)
{
    if (route >= SO_ROUTE_N)
        route = SO_ROUTE_OTHER;
    atomic_fetch_add_explicit(&m->requests[route][s_status_index(status)], 1,
                              memory_order_relaxed);
    size_t b = 0;
    while (b < S_N_BOUNDS && seconds > s_bounds[b])
        b++;
    atomic_fetch_add_explicit(&m->buckets[route][b], 1, memory_order_relaxed);
    if (seconds > 0)
        atomic_fetch_add_explicit(&m->sum_us[route], (unsigned long long) (seconds * 1e6),
                                  memory_order_relaxed);
}

void so_counters_error(so_counters_t *m, int code, int local)
{
    size_t c = code >= 0 && code < S_N_CODES ? (size_t) code : S_N_CODES;
    atomic_fetch_add_explicit(&m->errors[c][local ? 1 : 0], 1, memory_order_relaxed);
}

void so_counters_reject(so_counters_t *m, so_reject_t reason)
{
    if (reason < SO_REJ_N)
        atomic_fetch_add_explicit(&m->rejected[reason], 1, memory_order_relaxed);
}

void so_counters_feedback(so_counters_t *m, so_feedback_result_t result)
{
    if (result < SO_FB_N)
        atomic_fetch_add_explicit(&m->feedback[result], 1, memory_order_relaxed);
}

static unsigned long long s_get(atomic_ullong *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* The upper bound of the bucket holding quantile q of a route's latencies. */
static double s_quantile(so_counters_t *m, so_route_id_t r, double q)
{
    unsigned long long n[S_N_BOUNDS + 1], total = 0;
    for (size_t b = 0; b <= S_N_BOUNDS; b++)
        total += n[b] = s_get(&m->buckets[r][b]);
    if (total == 0)
        return 0;
    unsigned long long want = (unsigned long long) (q * (double) total), seen = 0;
    for (size_t b = 0; b < S_N_BOUNDS; b++) {
        seen += n[b];
        if (seen > want)
            return s_bounds[b];
    }
    return s_bounds[S_N_BOUNDS - 1];
}

void so_counters_summary(so_counters_t *m, so_counters_summary_t *out)
{
    memset(out, 0, sizeof *out);
    for (size_t r = 0; r < SO_ROUTE_N; r++)
        for (size_t s = 0; s < S_N_STATUS; s++) {
            unsigned long long v = s_get(&m->requests[r][s]);
            int status = s < S_STATUS_OTHER ? s_statuses[s] : 0;
            out->requests += v;
            if (status >= 200 && status < 300)
                out->ok += v;
            else if (status >= 400 && status < 500)
                out->client_errors += v;
            else if (status >= 500)
                out->server_errors += v;
        }
    for (size_t i = 0; i < SO_REJ_N; i++)
        out->rejected += s_get(&m->rejected[i]);
    for (size_t i = 0; i < SO_FB_N; i++)
        out->feedback += s_get(&m->feedback[i]);
    out->p50_s = s_quantile(m, SO_ROUTE_CHAT, 0.50);
    out->p99_s = s_quantile(m, SO_ROUTE_CHAT, 0.99);
}

/* ---- Rendering --------------------------------------------------------- */

/* A label value with \, " and newlines escaped. */
static void s_label(so_buf_t *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            so_buf_putc(o, '\\');
        if (*v == '\n')
            so_buf_puts(o, "\\n");
        else
            so_buf_putc(o, *v);
    }
}

char *so_counters_render(so_counters_t *m, const so_counters_gauges_t *g)
{
    so_buf_t o = SO_BUF_INIT;
    so_buf_appendf(&o,
                   "# HELP so_http_requests_total HTTP requests answered, by route and status "
                   "code (code 0: the client went away first).\n"
                   "# TYPE so_http_requests_total counter\n");
    for (size_t r = 0; r < SO_ROUTE_N; r++)
        for (size_t s = 0; s < S_N_STATUS; s++) {
            unsigned long long v = s_get(&m->requests[r][s]);
            if (!v)
                continue;
            if (s < S_STATUS_OTHER)
                so_buf_appendf(&o, "so_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                               s_routes[r], s_statuses[s], v);
            else
                so_buf_appendf(&o, "so_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                               s_routes[r], s == S_STATUS_OTHER ? "other" : "0", v);
        }
    so_buf_appendf(&o,
                   "# HELP so_http_request_duration_seconds Time from the request's headers to "
                   "the end of its answer.\n"
                   "# TYPE so_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < SO_ROUTE_N; r++) {
        unsigned long long cum = 0;
        for (size_t b = 0; b <= S_N_BOUNDS; b++) {
            cum += s_get(&m->buckets[r][b]);
            if (b < S_N_BOUNDS)
                so_buf_appendf(&o,
                               "so_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                               "%llu\n",
                               s_routes[r], s_bounds[b], cum);
            else
                so_buf_appendf(&o,
                               "so_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"}"
                               " %llu\n",
                               s_routes[r], cum);
        }
        so_buf_appendf(&o, "so_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                       s_routes[r], (double) s_get(&m->sum_us[r]) / 1e6);
        so_buf_appendf(&o, "so_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                       s_routes[r], cum);
    }
    so_buf_appendf(&o,
                   "# HELP so_http_errors_total Chat turns that ended in an error, by ErrorCode; "
                   "source=gateway: the gateway's reply, local: this process (timeout, no "
                   "gateway).\n"
                   "# TYPE so_http_errors_total counter\n");
    for (size_t c = 0; c <= S_N_CODES; c++)
        for (int l = 0; l < 2; l++)
            so_buf_appendf(&o, "so_http_errors_total{code=\"%s\",source=\"%s\"} %llu\n",
                           c < S_N_CODES ? so_oai_code_name((so_pb_error_code_t) c) : "UNKNOWN",
                           l ? "local" : "gateway", s_get(&m->errors[c][l]));
    so_buf_appendf(&o,
                   "# HELP so_http_rejected_total Requests refused before reaching the gateway.\n"
                   "# TYPE so_http_rejected_total counter\n");
    for (size_t i = 0; i < SO_REJ_N; i++)
        so_buf_appendf(&o, "so_http_rejected_total{reason=\"%s\"} %llu\n", s_rejects[i],
                       s_get(&m->rejected[i]));
    so_buf_appendf(&o, "# HELP so_http_feedback_total POST /v1/feedback outcomes.\n"
                       "# TYPE so_http_feedback_total counter\n");
    for (size_t i = 0; i < SO_FB_N; i++)
        so_buf_appendf(&o, "so_http_feedback_total{result=\"%s\"} %llu\n", s_feedbacks[i],
                       s_get(&m->feedback[i]));
    so_buf_appendf(&o,
                   "# HELP so_http_inflight Chat requests waiting for the gateway.\n"
                   "# TYPE so_http_inflight gauge\nso_http_inflight %ld\n"
                   "# HELP so_http_gateway_peers Gateways connected.\n"
                   "# TYPE so_http_gateway_peers gauge\nso_http_gateway_peers %d\n"
                   "# HELP so_http_redis_up 1 while Redis answers.\n"
                   "# TYPE so_http_redis_up gauge\nso_http_redis_up %d\n"
                   "# HELP so_http_ready 1 while /readyz says ready.\n"
                   "# TYPE so_http_ready gauge\nso_http_ready %d\n"
                   "# HELP so_http_draining 1 after SIGTERM.\n"
                   "# TYPE so_http_draining gauge\nso_http_draining %d\n"
                   "# HELP so_http_gateway_messages_total TurnRequests sent, replies matched, "
                   "stray replies (after their deadline) and undecodable ones.\n"
                   "# TYPE so_http_gateway_messages_total counter\n"
                   "so_http_gateway_messages_total{kind=\"sent\"} %llu\n"
                   "so_http_gateway_messages_total{kind=\"reply\"} %llu\n"
                   "so_http_gateway_messages_total{kind=\"stray\"} %llu\n"
                   "so_http_gateway_messages_total{kind=\"rejected\"} %llu\n",
                   g->inflight, g->gateway_peers, g->redis_up, g->ready, g->draining,
                   (unsigned long long) g->gw_sent, (unsigned long long) g->gw_replies,
                   (unsigned long long) g->gw_stray, (unsigned long long) g->gw_rejected);
    if (g->handbook_version && *g->handbook_version) {
        so_buf_appendf(&o,
                       "# HELP so_http_handbook_info The current handbook version.\n"
                       "# TYPE so_http_handbook_info gauge\nso_http_handbook_info{version=\"");
        s_label(&o, g->handbook_version);
        so_buf_appendf(&o, "\"} 1\n");
    }
    return so_buf_detach(&o, NULL);
}
