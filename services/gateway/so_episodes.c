/*
 * so_episodes — episode → pinned handbook version, with an idle ttl.
 */
#include "so_episodes.h"

#include "base/so_alloc.h"
#include "base/so_map.h"
#include "wire/so_wire.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    char version[SO_WIRE_MAX_ID + 1];
    int64_t expires;
} s_episode_t;

struct so_episodes {
    so_map_t *map; /* episode id → s_episode_t* */
    int ttl_s;
    size_t max;
};

so_episodes_t *so_episodes_new(int ttl_s, size_t max)
{
    so_episodes_t *e = so_calloc(1, sizeof *e);
    e->map = so_map_new(free);
    e->ttl_s = ttl_s;
    e->max = max;
    return e;
}

void so_episodes_destroy(so_episodes_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_map_destroy(&(*self_p)->map);
    free(*self_p);
    *self_p = NULL;
}

const char *so_episodes_version(const so_episodes_t *e, const char *episode_id)
{
    const s_episode_t *ep = so_map_get(e->map, episode_id);
    return ep ? ep->version : NULL;
}

void so_episodes_keep(so_episodes_t *e, const char *episode_id, const char *version, int64_t now)
{
    s_episode_t *ep = so_map_get(e->map, episode_id);
    if (!ep) {
        if (so_map_size(e->map) >= e->max)
            return;
        ep = so_calloc(1, sizeof *ep);
        so_map_put(e->map, episode_id, ep);
    }
    snprintf(ep->version, sizeof ep->version, "%s", version);
    ep->expires = now + (int64_t) e->ttl_s * 1000;
}

void so_episodes_forget(so_episodes_t *e, const char *episode_id)
{
    so_map_del(e->map, episode_id);
}

void so_episodes_expire(so_episodes_t *e, int64_t now)
{
    /* Collect first: the map must not change while it is walked. */
    size_t n = 0, cap = 0, it = 0;
    char **old = NULL;
    const char *id;
    void *v;
    while (so_map_next(e->map, &it, &id, &v)) {
        if (now < ((s_episode_t *) v)->expires)
            continue;
        if (n == cap)
            old = so_reallocarray(old, cap = cap ? 2 * cap : 16, sizeof *old);
        old[n++] = so_strdup(id);
    }
    for (size_t i = 0; i < n; i++) {
        so_map_del(e->map, old[i]);
        free(old[i]);
    }
    free(old);
}

size_t so_episodes_size(const so_episodes_t *e)
{
    return so_map_size(e->map);
}
