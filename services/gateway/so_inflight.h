/*
 * so_inflight — the gateway's turns in flight: the state machine that takes
 * a client's TurnRequest to exactly one reply (docs/SERVICES.md, "Gateway").
 *
 * It owns every request in flight (keyed by the gateway's own request id,
 * which every backend message carries, so clients may reuse theirs), the
 * queue of calls waiting for a worker, the episodes' pinned handbook
 * versions, the worker book (so_broker) and the counters.  It sends nothing
 * itself: every message leaves through an ops table (skill-inference, router,
 * a worker, the client, the recorder), so a test drives it with recording
 * fakes and a fake clock, without sockets.
 *
 *   admit ─▶ INFER ─────────▶ ROUTE ─────────────▶ CALL ───────▶ answered ─▶ recorded
 *           (waiting demand)  (waiting decision) (dispatched)
 *                              ▲      │ no free slot ▲  │
 *                              │      └─▶ WAIT ──────┘  │ agent failed
 *                              └──── fallback ◀─────────┘
 *   every state ─▶ failed (one error reply, nothing recorded)
 *
 *   state     event                                    next
 *   (admit)   draining, or max_inflight reached        UNAVAILABLE reply, not admitted
 *             no handbook version yet                  failed UNKNOWN_HANDBOOK
 *             else: TurnRequest to skill-inference     INFER
 *   INFER     SkillDemand                              ROUTE
 *             stage timeout, 1st                       INFER (sent again)
 *             stage timeout, 2nd                       ROUTE with a uniform demand
 *             TurnReply with an error                  failed (its code)
 *   ROUTE     RoutingDecision for an excluded agent    stray (a late one), stays
 *             RoutingDecision                          dispatch
 *             stage timeout, 1st / 2nd                 ROUTE (sent again) / failed UNAVAILABLE
 *             TurnReply with an error                  failed (its code; earlier fallbacks noted)
 *   dispatch  a worker serving the agent has a slot    CALL (AgentCall sent)
 *             no slot free                             WAIT
 *             workers up, none serves the agent        fallback
 *             send refused (worker gone or stuck)      worker dropped, dispatch again
 *             the call does not validate               failed INTERNAL
 *   WAIT      a slot frees (so_inflight_tick)          dispatch
 *   CALL      partial result from the holder           partial reply to the client, stays
 *             final result without error               answered, then recorded
 *             retryable error (TIMEOUT UPSTREAM RATE_LIMITED UNAVAILABLE
 *                 CONTEXT_TOO_LONG INTERNAL)           fallback
 *             other error                              failed (its code)
 *             the holder dies, stalls or says READY    dispatch again (an orphan); failed
 *                 again                                UNAVAILABLE past max_attempts or
 *                                                      once partials went out
 *   fallback  < max_fallbacks so far, no partials      ROUTE again, the agent excluded
 *             else                                     failed (the agent's code)
 *   any       request_timeout_ms passed                failed TIMEOUT
 *             shutdown after the drain                 failed UNAVAILABLE
 *
 * Whatever arrives for a turn that has moved on (a late demand, decision or
 * result, a result from a worker that no longer holds the call) is counted as
 * stray and dropped.
 *
 * Not thread-safe: the gateway's single loop owns it.
 */
#ifndef SO_INFLIGHT_H
#define SO_INFLIGHT_H

#include "so_broker.h"
#include "wire/so_wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct so_inflight so_inflight_t;

typedef enum {
    SO_INFLIGHT_INFER, /* waiting for the skill demand */
    SO_INFLIGHT_ROUTE, /* waiting for the routing decision */
    SO_INFLIGHT_WAIT,  /* waiting for a worker with a free slot */
    SO_INFLIGHT_CALL   /* dispatched to a worker */
} so_inflight_stage_t;

/* Settings (config/gateway.conf). */
typedef struct {
    int request_timeout_ms, stage_timeout_ms, call_timeout_ms;
    int heartbeat_ms, liveness; /* the worker book's */
    int episode_ttl_s;
    long max_inflight, max_attempts, max_fallbacks;
} so_inflight_opts_t;

/* How the turns reach the world.  The send functions return 0, or -1 with
 * errno set (EINVAL: the message did not validate) and err filled; every
 * message is borrowed for the call. */
typedef struct {
    int (*send_infer)(void *arg, const so_pb_turn_request_t *turn, char *err, size_t errlen);
    int (*send_route)(void *arg, const so_pb_route_request_t *req, char *err, size_t errlen);
    int (*send_call)(void *arg, const so_broker_worker_t *w, const so_pb_agent_call_t *call,
                     char *err, size_t errlen);
    int (*send_reply)(void *arg, const so_wire_envelope_t *env, const so_pb_turn_reply_t *rep,
                      char *err, size_t errlen);
    int (*send_error)(void *arg, const so_wire_envelope_t *env, const char *request_id,
                      const char *episode_id, so_pb_error_code_t code, const char *msg, char *err,
                      size_t errlen);
    /* A finished turn for the episode log (so_recorder_turn). */
    void (*record)(void *arg, const char *episode_id, const char *version,
                   const so_pb_turn_record_t *tr, int final);
    /* Monotonic ms; NULL = so_now_ms. */
    int64_t (*now)(void *arg);
} so_inflight_ops_t;

/* Live counters; the loop adds what it drops before a turn is found
 * (rejected messages, results from unknown workers). */
typedef struct {
    uint64_t received, replied, errors, rejected, timeouts, redispatched, fallbacks;
    uint64_t uniform_fallbacks, stray, send_failed, partials;
} so_inflight_counters_t;

/* ops is copied; arg is passed to every op. */
so_inflight_t *so_inflight_new(const so_inflight_opts_t *opts, const so_inflight_ops_t *ops,
                               void *arg);
/* Frees every request without answering it; NULL-safe; NULLs the pointer. */
void so_inflight_destroy(so_inflight_t **self_p);

/* The worker book (owned): the loop registers, heartbeats and drains
 * workers through it. */
so_broker_t *so_inflight_broker(so_inflight_t *f);

/* ---- Events ------------------------------------------------------------ */

/* A client's request (takes *turn_p and NULLs it): admitted and sent to
 * skill-inference, or answered with an error at once. */
void so_inflight_admit(so_inflight_t *f, const so_wire_envelope_t *env,
                       so_pb_turn_request_t **turn_p);
/* From skill-inference: the demand (takes *demand_p), or a TurnReply with
 * an error (borrowed). */
void so_inflight_on_demand(so_inflight_t *f, so_pb_skill_demand_t **demand_p);
void so_inflight_on_infer_error(so_inflight_t *f, const so_pb_turn_reply_t *rep);
/* From the router: the decision (takes *decision_p), or a TurnReply with an
 * error (borrowed). */
void so_inflight_on_decision(so_inflight_t *f, so_pb_routing_decision_t **decision_p);
void so_inflight_on_route_error(so_inflight_t *f, const so_pb_turn_reply_t *rep);
/* READY from a worker: registers it (calls it held before go elsewhere).
 * Returns the worker, or NULL. */
so_broker_worker_t *so_inflight_worker_ready(so_inflight_t *f, const void *rid, size_t rid_len,
                                             const char *name, unsigned capacity,
                                             const char *agents, int64_t now);
/* An AgentResult (partial or final) from worker w; res is borrowed. */
void so_inflight_on_result(so_inflight_t *f, so_broker_worker_t *w, so_pb_agent_result_t *res);

/* ---- Time -------------------------------------------------------------- */

/* Drops silent and stuck workers and dispatches their calls again. */
void so_inflight_expire_workers(so_inflight_t *f, int64_t now);
/* Dispatches waiting calls; every 50 ms ends turns past a deadline, retries
 * stages that timed out and forgets idle episodes. */
void so_inflight_tick(so_inflight_t *f, int64_t now);
/* Ends every turn with an error (shutdown). */
void so_inflight_fail_all(so_inflight_t *f, so_pb_error_code_t code, const char *msg);

/* ---- State ------------------------------------------------------------- */

/* New turns take no new episode; admission answers UNAVAILABLE. */
void so_inflight_set_draining(so_inflight_t *f, int draining);
/* The handbook version for new episodes ("" = none published yet). */
void so_inflight_set_version(so_inflight_t *f, const char *version);
const char *so_inflight_version(const so_inflight_t *f);
size_t so_inflight_size(const so_inflight_t *f);
size_t so_inflight_waiting(const so_inflight_t *f);
/* The stage of request id (ours), or -1 when it is not in flight. */
int so_inflight_stage(const so_inflight_t *f, const char *id);
so_inflight_counters_t *so_inflight_counters(so_inflight_t *f);
/* Median and 99th percentile of the last 2048 turns' latencies, ms. */
void so_inflight_latency(const so_inflight_t *f, double *p50, double *p99);

#endif
