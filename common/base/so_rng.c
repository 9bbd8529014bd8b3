/* so_rng — xoshiro256** with Gamma/Beta draws (see so_rng.h). */
#include "base/so_rng.h"

#include <math.h>

static uint64_t s_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void so_rng_seed(so_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = s_splitmix(&seed);
}

uint64_t so_rng_mix(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0x9E3779B97F4A7C15ULL);
    return s_splitmix(&x);
}

uint64_t so_rng_next(so_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

double so_rng_uniform(so_rng_t *r)
{
    return (double) (so_rng_next(r) >> 11) * 0x1.0p-53;
}

static double s_normal(so_rng_t *r)
{
    /* Box–Muller; one of the pair is enough here. */
    double u1 = so_rng_uniform(r), u2 = so_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Marsaglia & Tsang (2000); shape < 1 by the boost U^(1/shape). */
double so_rng_gamma(so_rng_t *r, double shape)
{
    if (!(shape > 0))
        return 0;
    if (shape < 1) {
        double u = so_rng_uniform(r);
        return so_rng_gamma(r, shape + 1.0) * pow(u > 0 ? u : 1e-300, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = s_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = so_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x)
            return d * v;
        if (log(u > 0 ? u : 1e-300) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

double so_rng_beta(so_rng_t *r, double a, double b)
{
    double x = so_rng_gamma(r, a), y = so_rng_gamma(r, b);
    return (x + y) > 0 ? x / (x + y) : 0.5;
}
