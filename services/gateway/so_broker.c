/*
 * so_broker — see so_broker.h.
 *
 * Workers sit in one doubly linked list in least-recently-dispatched order
 * and in a hash keyed by the hex of their routing id.  The list is scanned
 * from the front for a free slot: with tens of workers that is cheaper than
 * keeping a separate ready queue in step with capacities and draining.
 */
#include "so_broker.h"

#include "base/so_alloc.h"
#include "base/so_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct so_broker {
    so_map_t *by_rid; /* hex(rid) -> so_broker_worker_t* (borrowed) */
    so_broker_worker_t *head, *tail;
    int heartbeat_ms;
    int64_t liveness_ms;
};

static void s_key(const void *rid, size_t len, char *key)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = rid;
    for (size_t i = 0; i < len; i++) {
        key[2 * i] = hex[p[i] >> 4];
        key[2 * i + 1] = hex[p[i] & 15];
    }
    key[2 * len] = '\0';
}

static void s_unlink(so_broker_t *b, so_broker_worker_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        b->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        b->tail = w->prev;
    w->prev = w->next = NULL;
}

static void s_append(so_broker_t *b, so_broker_worker_t *w)
{
    w->prev = b->tail;
    w->next = NULL;
    if (b->tail)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
}

so_broker_t *so_broker_new(int heartbeat_ms, int liveness)
{
    so_broker_t *b = so_calloc(1, sizeof *b);
    b->by_rid = so_map_new(NULL);
    b->heartbeat_ms = heartbeat_ms > 0 ? heartbeat_ms : 500;
    b->liveness_ms = (int64_t) b->heartbeat_ms * (liveness > 0 ? liveness : 3);
    return b;
}

static void s_free_worker(so_broker_worker_t *w)
{
    free(w->agents);
    free(w->calls);
    free(w);
}

void so_broker_destroy(so_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_broker_t *b = *self_p;
    while (b->head) {
        so_broker_worker_t *w = b->head;
        s_unlink(b, w);
        s_free_worker(w);
    }
    so_map_destroy(&b->by_rid);
    free(b);
    *self_p = NULL;
}

so_broker_worker_t *so_broker_find(so_broker_t *b, const void *rid, size_t rid_len)
{
    char key[2 * SO_WIRE_MAX_ROUTING_ID + 1];
    if (rid_len == 0 || rid_len > SO_WIRE_MAX_ROUTING_ID)
        return NULL;
    s_key(rid, rid_len, key);
    return so_map_get(b->by_rid, key);
}

/* Hands back every call w holds. */
static void s_orphan_all(so_broker_worker_t *w, so_broker_orphan_fn *orphan, void *arg)
{
    for (unsigned i = 0; i < w->inflight; i++)
        if (orphan)
            orphan(arg, w->calls[i].request_id);
    w->inflight = 0;
}

so_broker_worker_t *so_broker_ready(so_broker_t *b, const void *rid, size_t rid_len,
                                    const char *name, unsigned capacity, int64_t now,
                                    so_broker_orphan_fn *orphan, void *arg)
{
    if (rid_len == 0 || rid_len > SO_WIRE_MAX_ROUTING_ID || capacity == 0 ||
        capacity > SO_BROKER_MAX_CAPACITY)
        return NULL;
    so_broker_worker_t *w = so_broker_find(b, rid, rid_len);
    if (w) {
        s_orphan_all(w, orphan, arg);
        if (w->capacity != capacity) {
            w->calls = so_reallocarray(w->calls, capacity, sizeof *w->calls);
            w->capacity = capacity;
        }
        s_unlink(b, w);
    } else {
        w = so_calloc(1, sizeof *w);
        w->calls = so_calloc(capacity, sizeof *w->calls);
        memcpy(w->rid, rid, rid_len);
        w->rid_len = rid_len;
        w->capacity = capacity;
        char key[2 * SO_WIRE_MAX_ROUTING_ID + 1];
        s_key(rid, rid_len, key);
        so_map_put(b->by_rid, key, w);
    }
    snprintf(w->name, sizeof w->name, "%s", name ? name : "");
    so_broker_set_agents(b, w, NULL);
    w->draining = 0;
    w->expires = now + b->liveness_ms;
    w->next_heartbeat = now + b->heartbeat_ms;
    s_append(b, w);
    return w;
}

void so_broker_seen(so_broker_t *b, so_broker_worker_t *w, int64_t now)
{
    w->expires = now + b->liveness_ms;
}

void so_broker_drain(so_broker_t *b, so_broker_worker_t *w)
{
    (void) b;
    w->draining = 1;
}

void so_broker_set_agents(so_broker_t *b, so_broker_worker_t *w, const char *agents)
{
    (void) b;
    free(w->agents);
    w->agents = NULL;
    if (agents && *agents) {
        /* ",a,b," so that a lookup is one strstr of ",agent,". */
        size_t len = strlen(agents);
        w->agents = so_malloc(len + 3);
        snprintf(w->agents, len + 3, ",%s,", agents);
    }
}

int so_broker_serves(const so_broker_worker_t *w, const char *agent)
{
    if (!w->agents)
        return 1;
    size_t len = strlen(agent);
    if (len == 0)
        return 0;
    for (const char *p = strstr(w->agents, agent); p; p = strstr(p + 1, agent))
        if (p > w->agents && p[-1] == ',' && p[len] == ',')
            return 1;
    return 0;
}

so_broker_worker_t *so_broker_pick_for(so_broker_t *b, const char *agent)
{
    for (so_broker_worker_t *w = b->head; w; w = w->next)
        if (!w->draining && w->inflight < w->capacity && (!agent || so_broker_serves(w, agent)))
            return w;
    return NULL;
}

so_broker_worker_t *so_broker_pick(so_broker_t *b)
{
    return so_broker_pick_for(b, NULL);
}

int so_broker_has_agent(const so_broker_t *b, const char *agent)
{
    for (const so_broker_worker_t *w = b->head; w; w = w->next)
        if (!w->draining && so_broker_serves(w, agent))
            return 1;
    return 0;
}

void so_broker_assign(so_broker_t *b, so_broker_worker_t *w, const char *request_id,
                      int64_t deadline)
{
    if (w->inflight >= w->capacity)
        return; /* the caller picked a full worker: a bug, but keep the books right */
    so_broker_call_t *c = &w->calls[w->inflight++];
    snprintf(c->request_id, sizeof c->request_id, "%s", request_id);
    c->deadline = deadline;
    w->dispatched++;
    s_unlink(b, w);
    s_append(b, w);
}

int so_broker_complete(so_broker_t *b, so_broker_worker_t *w, const char *request_id)
{
    (void) b;
    for (unsigned i = 0; i < w->inflight; i++)
        if (strcmp(w->calls[i].request_id, request_id) == 0) {
            w->calls[i] = w->calls[--w->inflight];
            return 1;
        }
    return 0;
}

int so_broker_holds(const so_broker_worker_t *w, const char *request_id)
{
    for (unsigned i = 0; i < w->inflight; i++)
        if (strcmp(w->calls[i].request_id, request_id) == 0)
            return 1;
    return 0;
}

void so_broker_remove(so_broker_t *b, so_broker_worker_t *w, so_broker_orphan_fn *orphan,
                      void *arg)
{
    char key[2 * SO_WIRE_MAX_ROUTING_ID + 1];
    s_key(w->rid, w->rid_len, key);
    so_map_del(b->by_rid, key);
    s_unlink(b, w);
    s_orphan_all(w, orphan, arg);
    s_free_worker(w);
}

static int s_overdue(const so_broker_worker_t *w, int64_t now)
{
    for (unsigned i = 0; i < w->inflight; i++)
        if (w->calls[i].deadline <= now)
            return 1;
    return 0;
}

size_t so_broker_expire(so_broker_t *b, int64_t now, so_broker_orphan_fn *orphan, void *arg)
{
    size_t n = 0;
    so_broker_worker_t *w = b->head;
    while (w) {
        so_broker_worker_t *next = w->next;
        if (w->expires <= now || s_overdue(w, now) || (w->draining && w->inflight == 0)) {
            so_broker_remove(b, w, orphan, arg);
            n++;
        }
        w = next;
    }
    return n;
}

void so_broker_heartbeats(so_broker_t *b, int64_t now,
                          void (*fn)(void *arg, so_broker_worker_t *w), void *arg)
{
    for (so_broker_worker_t *w = b->head; w; w = w->next)
        if (w->next_heartbeat <= now) {
            fn(arg, w);
            w->next_heartbeat = now + b->heartbeat_ms;
        }
}

size_t so_broker_size(const so_broker_t *b)
{
    return so_map_size(b->by_rid);
}

size_t so_broker_active(const so_broker_t *b)
{
    size_t n = 0;
    for (const so_broker_worker_t *w = b->head; w; w = w->next)
        n += !w->draining;
    return n;
}

size_t so_broker_free_slots(const so_broker_t *b)
{
    size_t n = 0;
    for (const so_broker_worker_t *w = b->head; w; w = w->next)
        if (!w->draining && w->inflight < w->capacity)
            n += w->capacity - w->inflight;
    return n;
}
