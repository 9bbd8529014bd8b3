/*
 * so_profile — the router's routing profiles: named sets of routing
 * settings a turn selects with TurnRequest.routing_profile (so-http passes a
 * "model" listed in its routing_profiles as that name).
 *
 * A profile sets the cost trade-off λ (used when the turn sets none), the
 * exploration (Thompson sampling on/off, the uniform explore floor) and
 * agents never to route to (added to the turn's exclude_agents).  Profiles
 * come from the router's config (config/router.conf):
 *
 *     profiles                  = fast, careful     # the names, required
 *     profile.fast.lambda       = 2.0               # >= 0
 *     profile.fast.explore      = off               # on | off (off: no Thompson, no floor)
 *     profile.fast.thompson     = 0                 # 0 | 1 (overrides explore)
 *     profile.fast.explore_floor = 0                # [0, 1] (overrides explore)
 *     profile.fast.exclude      = a, b              # agent ids
 *
 * A key left out takes the router's own setting (lambda, thompson,
 * explore_floor); `explore = on` means those settings.  Keys of a profile
 * not named in `profiles` are not read (the config cannot be listed).
 *
 * Owns the profiles and their strings; read-only once built, so a decision
 * borrows a profile for as long as the table lives.
 */
#ifndef SO_PROFILE_H
#define SO_PROFILE_H

#include "base/so_svc.h"

#include <stddef.h>

#define SO_PROFILE_MAX 64          /* profiles per router */
#define SO_PROFILE_MAX_EXCLUDE 256 /* excluded agents per profile (the wire's cap) */

typedef struct {
    const char *name;     /* "" for the router's defaults */
    double lambda;        /* when the turn sets none */
    int thompson;         /* sample competence */
    double explore_floor; /* uniform pick probability */
    char **exclude;       /* agent ids, [n_exclude] */
    size_t n_exclude;
} so_profile_t;

typedef struct so_profiles so_profiles_t;

/* Reads the profiles named by the `profiles` key of cfg; base gives the
 * settings a profile does not set (its exclude list is not inherited).
 * Returns the table (empty when `profiles` is unset), or NULL with err
 * naming the bad key or name. */
so_profiles_t *so_profiles_new(const so_config_t *cfg, const so_profile_t *base, char *err,
                               size_t errlen);
void so_profiles_destroy(so_profiles_t **self_p);

/* The profile called name, NULL if there is none.  NULL-safe in p. */
const so_profile_t *so_profiles_get(const so_profiles_t *p, const char *name);
size_t so_profiles_count(const so_profiles_t *p);
/* The names, comma-separated ("-" when there are none), for log lines and
 * errors.  Owned by the table. */
const char *so_profiles_names(const so_profiles_t *p);

#endif
