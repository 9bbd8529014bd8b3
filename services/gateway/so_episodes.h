/*
 * so_episodes — the gateway's episodes in progress: the handbook version
 * each is pinned to, so that every turn of an episode is routed with the
 * version its first turn had.  An episode is forgotten when its final turn
 * is answered or after ttl_s without a turn.
 *
 * Owns its entries (at most `max`; beyond that new episodes are not pinned).
 * Not thread-safe.
 */
#ifndef SO_EPISODES_H
#define SO_EPISODES_H

#include <stddef.h>
#include <stdint.h>

typedef struct so_episodes so_episodes_t;

so_episodes_t *so_episodes_new(int ttl_s, size_t max);
void so_episodes_destroy(so_episodes_t **self_p);

/* The version episode_id is pinned to (borrowed), or NULL. */
const char *so_episodes_version(const so_episodes_t *e, const char *episode_id);
/* Pins episode_id to version (again) and keeps it until now + ttl_s. */
void so_episodes_keep(so_episodes_t *e, const char *episode_id, const char *version, int64_t now);
void so_episodes_forget(so_episodes_t *e, const char *episode_id);
/* Forgets every episode idle past its ttl. */
void so_episodes_expire(so_episodes_t *e, int64_t now);
size_t so_episodes_size(const so_episodes_t *e);

#endif
