/*
 * so_demand — skill-inference's request handler: a TurnRequest in, the
 * SkillDemand of its last user message out, against the pinned handbook
 * version or the current one, from so_hbcache.
 *
 * Two modes (infer.mode):
 *   embedded  the demand is computed in the loop by so_infer (TF-IDF against
 *             the skills' terms); answered at once.
 *   llm       an LLM is asked for a skill analysis (so_skillprompt) on
 *             so_llminfer's threads and the request is answered when the
 *             result comes back (so_server's deferred replies), with source
 *             LLM; on a timeout, an HTTP error, unusable output or a full
 *             queue the embedded demand (computed up front) is sent instead
 *             and the fallback counted by kind.  Analyses are cached by
 *             (version, mode, text) when a cache is given.
 *
 * Errors are TurnReplies carrying the request id and an Error:
 * UNKNOWN_HANDBOOK (version not in Redis, or none published), UNAVAILABLE
 * (version not cached and Redis unreachable), INVALID_REQUEST (no
 * episode_id, a mode the handbook lacks).  They never wait for the LLM.
 */
#ifndef SO_DEMAND_H
#define SO_DEMAND_H

#include "store/so_hbcache.h"
#include "llm/so_llmcache.h"
#include "so_llminfer.h"
#include "wire/so_server.h"
#include "llm/so_skillprompt.h"

typedef struct so_demand so_demand_t;

/* Borrows cache (built with with_infer); it must outlive the handler. */
so_demand_t *so_demand_new(so_hbcache_t *cache);
void so_demand_destroy(so_demand_t **self_p);

/* Switches to llm mode.  Borrows llm and acache (NULL: no cache); copies
 * popts.  Both must outlive the handler. */
void so_demand_use_llm(so_demand_t *d, so_llminfer_t *llm, so_llmcache_t *acache,
                       const so_skillprompt_opts_t *popts);

/* so_server callbacks; arg is the so_demand_t.  so_demand_deferred and
 * so_demand_wake_fd are for llm mode (so_server_opts_t.deferred/.wake_fd). */
so_server_result_t so_demand_handle(void *arg, void *sock, const so_wire_envelope_t *env,
                                    void *msg);
int so_demand_tick(void *arg);
void so_demand_stats(void *arg, char *buf, size_t len);
size_t so_demand_deferred(void *arg, so_server_t *srv, void *sock, int all);

#endif
