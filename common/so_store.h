/*
 * so_store — the shared state in Redis.
 *
 * Keys (all under a configurable prefix, default "so:"):
 *   so:hb:current               current handbook version (string)
 *   so:hb:<version>             the handbook JSON as saved by so_handbook_dumps
 *   so:hb:versions              list of published versions, oldest first
 *   so:stats:<version>          hash of competence/cost deltas learned online,
 *                               field "<agent>\x1f<skill>\x1f<k>" with k one of
 *                               s (successes) n (attempts) c (cost USD)
 *                               pt ct (tokens) l (latency s) cc (cost count)
 *   so:seq:<version>            counter bumped by every applied episode
 *   so:applied:<version>        set of episode ids already applied
 *   so:episodes                 Redis Stream: the durable episode log, one
 *                               entry per completed episode, field "pb" =
 *                               packed EpisodeOutcome, "id" = episode id
 *   so:pending:<episode>        list of packed TurnRecords of an episode
 *                               waiting for its outcome (TTL)
 * Applying an episode is one Redis Function call (library "so", function
 * "so_apply", loaded with FUNCTION LOAD REPLACE on connect): SADD to the
 * applied set and, only if the id is new, every HINCRBYFLOAT and the INCR —
 * atomic and idempotent per episode, so redelivery, restarts and several
 * learners never count an episode twice.  Functions survive Redis restarts.
 *
 * Statistics a router uses = the handbook's bootstrap stats (its JSON) +
 * the deltas in so:stats:<version>.  Rebuilding from the log: replay the
 * stream into an empty stats hash (so_store_rebuild).
 *
 * One so_store_t is one hiredis connection: not thread-safe; one per thread.
 * Timeouts are set again after every reconnect (hiredis drops them).
 */
#ifndef SO_STORE_H
#define SO_STORE_H

#include "so_handbook.h"
#include "skillorchestra.pb-c.h"

#include <stddef.h>

typedef struct so_store so_store_t;

/* url: "redis://host:port[/db]" or "unix:/path/to/sock".  timeout_ms bounds
 * connect and every command.  Returns NULL with err. */
so_store_t *so_store_connect(const char *url, const char *prefix, int timeout_ms, char *err,
                             size_t errlen);
void so_store_destroy(so_store_t **self_p);
/* Reconnects if the connection failed; 0 or -1. */
int so_store_ensure(so_store_t *s, char *err, size_t errlen);

/* Handbooks.  put: stores the JSON, appends the version, and (if
 * make_current) sets current — atomically (MULTI/EXEC). */
int so_store_put_handbook(so_store_t *s, const so_handbook_t *hb, int make_current, char *err,
                          size_t errlen);
/* version NULL or "" = current.  NULL with err if absent or malformed. */
so_handbook_t *so_store_get_handbook(so_store_t *s, const char *version, char *err,
                                     size_t errlen);
/* Writes the current version into buf; 0, or -1 (none yet, or error). */
int so_store_current_version(so_store_t *s, char *buf, size_t len, char *err, size_t errlen);

/* The online sequence number of a version (0 if none). */
int so_store_seq(so_store_t *s, const char *version, long long *seq, char *err, size_t errlen);
/* Adds the online deltas of hb->version onto hb's stats (skills/agents not
 * in hb are ignored and counted in *unknown if not NULL); sets *seq to the
 * sequence number read in the same MULTI. */
int so_store_load_stats(so_store_t *s, so_handbook_t *hb, long long *seq, size_t *unknown,
                        char *err, size_t errlen);

/* Credit assignment of an episode (documented in docs/SERVICES.md): each
 * turn credits its agent on each skill of its demand with weight w_s and
 * score = the turn's own score if set, else the episode's outcome (success
 * = 1/0).  Returns 1 if applied, 0 if the episode was applied before, -1 on
 * error.  Turns naming agents or skills not in hb are skipped. */
int so_store_apply_episode(so_store_t *s, const so_handbook_t *hb,
                           const Skillorchestra__V1__EpisodeOutcome *ep, char *err,
                           size_t errlen);

/* The episode log.  append: XADD (MAXLEN not applied: the log is the source
 * of truth).  Returns 0 or -1. */
int so_store_log_episode(so_store_t *s, const Skillorchestra__V1__EpisodeOutcome *ep, char *err,
                         size_t errlen);

/* Pending turns of an episode awaiting its outcome (feedback). */
int so_store_push_turn(so_store_t *s, const char *episode_id,
                       const Skillorchestra__V1__TurnRecord *tr, int ttl_s, char *err,
                       size_t errlen);

/* Recomputes so:stats:<version> from the whole episode log (for checks and
 * recovery).  Returns the number of episodes applied, or -1. */
long so_store_rebuild(so_store_t *s, const so_handbook_t *hb, char *err, size_t errlen);

/* The raw hiredis context, for services that need more (e.g. XREADGROUP). */
void *so_store_redis(so_store_t *s);
const char *so_store_prefix(const so_store_t *s);

#endif
