/*
 * so_rng — a small seeded RNG (xoshiro256**, seeded by splitmix64) with the
 * Gamma and Beta draws that Thompson sampling needs.  Same seed, same draws,
 * on every machine: routing decisions are reproducible.
 */
#ifndef SO_RNG_H
#define SO_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} so_rng_t;

void so_rng_seed(so_rng_t *r, uint64_t seed);
uint64_t so_rng_next(so_rng_t *r);
double so_rng_uniform(so_rng_t *r);             /* [0,1) */
double so_rng_gamma(so_rng_t *r, double shape); /* shape > 0, scale 1 */
double so_rng_beta(so_rng_t *r, double a, double b);
/* Mixes a seed with request identity (e.g. episode id hash, turn). */
uint64_t so_rng_mix(uint64_t a, uint64_t b);

#endif
