/*
 * so_gateway — the gateway's loop: reads the four sockets, hands what it
 * decodes to the turns in flight (so_inflight), sends what they send, and
 * drives the timers (worker expiry and heartbeats, deadlines, stats) and the
 * drain at shutdown.
 *
 *   clients  ROUTER  TurnRequest → TurnReply
 *   workers  ROUTER  AgentCall → AgentResult, READY/HEARTBEAT/DISCONNECT
 *   infer    DEALER  TurnRequest → SkillDemand        (skill-inference)
 *   route    DEALER  RouteRequest → RoutingDecision   (router)
 *
 * Borrows the sockets and the recorder; owns the turns in flight.
 */
#ifndef SO_GATEWAY_H
#define SO_GATEWAY_H

#include "so_inflight.h"
#include "so_recorder.h"

typedef struct so_gateway so_gateway_t;

typedef struct {
    void *clients, *workers, *infer, *route; /* borrowed */
    so_recorder_t *recorder;                 /* borrowed */
    int drain_ms, stats_ms;
    so_inflight_opts_t turns;
} so_gateway_opts_t;

/* NULL when the turns' tables cannot be made. */
so_gateway_t *so_gateway_new(const so_gateway_opts_t *opts);
void so_gateway_destroy(so_gateway_t **self_p);

/* The turns in flight (for the start-up version and the final counters). */
so_inflight_t *so_gateway_turns(so_gateway_t *gw);

/* Runs until so_stopping() and the drain is over; whatever is still in
 * flight then gets an error reply.  0, or 1 when polling failed. */
int so_gateway_run(so_gateway_t *gw);

#endif
