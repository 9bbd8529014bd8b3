/*
 * so_demand — skill-inference's request handler: a TurnRequest in, the
 * SkillDemand of its last user message out (embedded inference, so_infer),
 * against the pinned handbook version or the current one, from so_hbcache.
 *
 * Errors are TurnReplies carrying the request id and an Error:
 * UNKNOWN_HANDBOOK (version not in Redis, or none published), UNAVAILABLE
 * (version not cached and Redis unreachable), INVALID_REQUEST (no
 * episode_id, a mode the handbook lacks).
 */
#ifndef SO_DEMAND_H
#define SO_DEMAND_H

#include "so_hbcache.h"
#include "so_server.h"

typedef struct so_demand so_demand_t;

/* Borrows cache (built with with_infer); it must outlive the handler. */
so_demand_t *so_demand_new(so_hbcache_t *cache);
void so_demand_destroy(so_demand_t **self_p);

/* so_server callbacks; arg is the so_demand_t. */
so_server_result_t so_demand_handle(void *arg, void *sock, const so_wire_envelope_t *env,
                                    void *msg);
int so_demand_tick(void *arg);
void so_demand_stats(void *arg, char *buf, size_t len);

#endif
