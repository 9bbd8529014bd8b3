/*
 * so_worker — the agent-worker's loop: a DEALER connected to the gateway's
 * worker endpoint, registered with READY (capacity + id), heartbeating both
 * ways (Paranoid Pirate), executing each AgentCall through a backend and
 * answering with an AgentResult.  An optional artificial delay holds each
 * result back (load and fault tests) without blocking the loop: held results
 * wait in a queue and go out when due.
 *
 * The gateway is presumed dead after `liveness` heartbeat intervals of
 * silence; the worker then reconnects with a fresh socket and registers
 * again (held results are kept and sent on the new connection).
 *
 * Fast backends (replay) execute in the loop itself.  Slow ones (live: an
 * HTTP call takes seconds) execute on a pool of `threads` threads, so the
 * loop keeps heartbeating and receiving while calls run: the loop hands a
 * decoded call to the pool and gets the finished one back through a queue
 * and a wake-up pipe it polls; only the loop touches the socket.  A call
 * that waited in the pool's queue past its deadline is answered TIMEOUT
 * without running.
 */
#ifndef SO_WORKER_H
#define SO_WORKER_H

#include "so_backend.h"
#include "wire/so_wire.h"

typedef struct {
    char worker_id[SO_WIRE_MAX_ID + 1];
    const char *endpoint; /* gateway worker endpoint(s) */
    const char *agents;   /* "a,b": the agents served, told in READY; NULL = all */
    unsigned capacity;    /* calls in flight at once, 1..256 */
    unsigned threads;     /* 0: execute in the loop; n: a pool of n threads
                                      (the backend must be thread_safe) */
    int heartbeat_ms;     /* default 500 */
    int liveness;         /* missed heartbeats before reconnecting (3) */
    int delay_ms;         /* artificial delay per call (0) */
    int reconnect_max_ms; /* back-off ceiling between reconnects (4000) */
    int drain_ms;         /* on SIGTERM: how long running and held calls may
                                      take (5000); then running ones are cancelled */
    int stats_ms;         /* periodic stats line (10000; 0 = off) */
    so_wire_sockopts_t sockopts;
} so_worker_opts_t;

void so_worker_opts_default(so_worker_opts_t *o);

/* Runs until so_stopping(); returns 0 on a clean stop, 1 on a setup error. */
int so_worker_run(const so_worker_opts_t *o, so_backend_t *backend);

#endif
