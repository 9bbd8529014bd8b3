/*
 * so_counters — the front door's counters, updated lock-free from every
 * HTTP thread and rendered as Prometheus text for GET /metrics:
 *
 *   so_http_requests_total{route, code}              requests answered
 *   so_http_request_duration_seconds{route}          latency histogram
 *   so_http_errors_total{code, source}               ErrorCodes of failed turns
 *                                                    (source: gateway | local)
 *   so_http_rejected_total{reason}                   requests refused here
 *   so_http_feedback_total{result}                   POST /v1/feedback outcomes
 *
 * plus the gauges the caller passes to so_counters_render.
 */
#ifndef SO_COUNTERS_H
#define SO_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SO_ROUTE_CHAT = 0,
    SO_ROUTE_FEEDBACK,
    SO_ROUTE_HANDBOOK,
    SO_ROUTE_MODELS,
    SO_ROUTE_HEALTHZ,
    SO_ROUTE_READYZ,
    SO_ROUTE_METRICS,
    SO_ROUTE_OTHER,
    SO_ROUTE_N
} so_route_id_t;

typedef enum {
    SO_REJ_INVALID_JSON = 0,
    SO_REJ_INVALID_REQUEST, /* well-formed JSON, bad field */
    SO_REJ_UNAUTHORIZED,
    SO_REJ_TOO_LARGE,
    SO_REJ_UNKNOWN_ROUTE,
    SO_REJ_METHOD,
    SO_REJ_UNKNOWN_MODEL,
    SO_REJ_OVERLOADED,
    SO_REJ_DRAINING,
    SO_REJ_N
} so_reject_t;

typedef enum {
    SO_FB_LOGGED = 0,
    SO_FB_NOT_FOUND,
    SO_FB_INVALID,
    SO_FB_ERROR,
    SO_FB_N
} so_feedback_result_t;

typedef struct so_counters so_counters_t;

/* Gauges and totals owned by other modules, sampled at render time. */
typedef struct {
    long inflight;
    int gateway_peers;
    int redis_up;
    int ready;
    int draining;
    const char *handbook_version; /* "" = none */
    uint64_t gw_sent, gw_replies, gw_stray, gw_rejected;
} so_counters_gauges_t;

so_counters_t *so_counters_new(void);
void so_counters_destroy(so_counters_t **self_p);

/* status 0 = the client went away before an answer. */
void so_counters_request(so_counters_t *m, so_route_id_t route, int status, double seconds);
/* code: an ErrorCode value; local: 1 when this process ended the turn
 * (timeout, no gateway), 0 when the gateway's reply carried the error. */
void so_counters_error(so_counters_t *m, int code, int local);
void so_counters_reject(so_counters_t *m, so_reject_t reason);
void so_counters_feedback(so_counters_t *m, so_feedback_result_t result);

/* Totals for the stats line. */
typedef struct {
    uint64_t requests, ok, client_errors, server_errors, rejected, feedback;
    double p50_s, p99_s; /* chat latency, from the histogram's buckets */
} so_counters_summary_t;
void so_counters_summary(so_counters_t *m, so_counters_summary_t *out);

/* Prometheus text exposition format 0.0.4 (malloc'd; free(3)). */
char *so_counters_render(so_counters_t *m, const so_counters_gauges_t *g);

const char *so_route_name(so_route_id_t route);

#endif
