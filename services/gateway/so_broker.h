/*
 * so_broker — the gateway's book of agent-workers (Paranoid Pirate /
 * lbbroker3 style), without sockets: which workers are registered, how many
 * calls each may take (capacity from READY) and has in flight, when each was
 * last heard from, which calls it holds and until when.
 *
 * Dispatch is least-recently-used: so_broker_pick returns the worker that
 * waited longest among those with a free slot, and so_broker_assign moves it
 * to the back of the queue.  A worker is dropped when it is silent for
 * `liveness_ms`, when one of its calls passes its deadline, when a send to
 * it fails, or when it says DISCONNECT and has nothing left in flight;
 * every call it still held is handed back through a callback so the gateway
 * can dispatch it again.
 *
 * Owns its workers; lookups are by routing id (hash).  Not thread-safe (the
 * gateway's single loop owns it).
 */
#ifndef SO_BROKER_H
#define SO_BROKER_H

#include "wire/so_wire.h"

#include <stddef.h>
#include <stdint.h>

#define SO_BROKER_MAX_CAPACITY 256

typedef struct so_broker so_broker_t;

typedef struct {
    char request_id[SO_WIRE_MAX_ID + 1];
    int64_t deadline; /* monotonic ms */
} so_broker_call_t;

typedef struct so_broker_worker {
    uint8_t rid[SO_WIRE_MAX_ROUTING_ID]; /* ROUTER routing id */
    size_t rid_len;
    char name[SO_WIRE_MAX_ID + 1]; /* worker id from READY */
    char *agents;                  /* ",a,b," (the agents it serves), NULL = every agent */
    unsigned capacity;
    unsigned inflight;
    int draining;                         /* said DISCONNECT: no new calls */
    int64_t expires;                      /* silent past this → dead */
    int64_t next_heartbeat;               /* when the gateway pings it next */
    uint64_t dispatched;                  /* calls sent to it, ever */
    so_broker_call_t *calls;              /* [capacity] */
    struct so_broker_worker *prev, *next; /* LRU queue */
} so_broker_worker_t;

/* Called for each call a dropped worker still held ("re-dispatch this").
 * It must not call into the broker: queue the call, dispatch afterwards. */
typedef void so_broker_orphan_fn(void *arg, const char *request_id);

so_broker_t *so_broker_new(int heartbeat_ms, int liveness);
void so_broker_destroy(so_broker_t **self_p);

/* READY: registers a worker (or re-registers it: its old calls are handed
 * to orphan first, since a worker that says READY again has forgotten them). */
so_broker_worker_t *so_broker_ready(so_broker_t *b, const void *rid, size_t rid_len,
                                    const char *name, unsigned capacity, int64_t now,
                                    so_broker_orphan_fn *orphan, void *arg);
/* Restricts w to the agents of a comma-separated list (NULL or "" = every
 * agent, the default after READY). */
void so_broker_set_agents(so_broker_t *b, so_broker_worker_t *w, const char *agents);
/* Whether w serves agent. */
int so_broker_serves(const so_broker_worker_t *w, const char *agent);
so_broker_worker_t *so_broker_find(so_broker_t *b, const void *rid, size_t rid_len);
/* Any message from the worker: it is alive. */
void so_broker_seen(so_broker_t *b, so_broker_worker_t *w, int64_t now);
/* DISCONNECT from the worker: no new calls; dropped once its calls are in. */
void so_broker_drain(so_broker_t *b, so_broker_worker_t *w);

/* The least recently used worker with a free slot, or NULL. */
so_broker_worker_t *so_broker_pick(so_broker_t *b);
/* The same among the workers that serve agent. */
so_broker_worker_t *so_broker_pick_for(so_broker_t *b, const char *agent);
/* Whether any worker taking calls (free slot or not) serves agent. */
int so_broker_has_agent(const so_broker_t *b, const char *agent);
/* Records that request_id went to w, due by deadline; moves w to the back. */
void so_broker_assign(so_broker_t *b, so_broker_worker_t *w, const char *request_id,
                      int64_t deadline);
/* A result for request_id came from w: frees its slot.  Returns 1 if w held
 * that call, 0 if not (a late or stray result). */
int so_broker_complete(so_broker_t *b, so_broker_worker_t *w, const char *request_id);
/* 1 if w holds request_id (a partial result from it is current), else 0. */
int so_broker_holds(const so_broker_worker_t *w, const char *request_id);

/* Drops w now; its calls go to orphan.  w is freed. */
void so_broker_remove(so_broker_t *b, so_broker_worker_t *w, so_broker_orphan_fn *orphan,
                      void *arg);
/* Drops every worker that is silent or has a call past its deadline, and
 * every draining worker with nothing in flight.  Returns how many. */
size_t so_broker_expire(so_broker_t *b, int64_t now, so_broker_orphan_fn *orphan, void *arg);

/* Calls fn for each worker due a heartbeat and schedules the next one. */
void so_broker_heartbeats(so_broker_t *b, int64_t now,
                          void (*fn)(void *arg, so_broker_worker_t *w), void *arg);

size_t so_broker_size(const so_broker_t *b);
/* Workers taking calls (registered and not draining). */
size_t so_broker_active(const so_broker_t *b);
/* Free slots over the workers that take calls. */
size_t so_broker_free_slots(const so_broker_t *b);

#endif
