/*
 * so_pctl — percentiles of a latency ring (see so_pctl.h).
 */
#include "base/so_pctl.h"

#include "base/so_alloc.h"

#include <stdlib.h>
#include <string.h>

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* Copies the ring's n = min(count, cap) values of size sz and sorts them;
 * NULL when there are none. */
static void *s_sorted(const void *ring, uint64_t count, size_t cap, size_t sz,
                      int (*cmp)(const void *, const void *), size_t *n)
{
    *n = count < cap ? (size_t) count : cap;
    if (*n == 0)
        return NULL;
    void *v = so_reallocarray(NULL, *n, sz);
    memcpy(v, ring, *n * sz);
    qsort(v, *n, sz, cmp);
    return v;
}

void so_pctl_u32(const uint32_t *ring, uint64_t count, size_t cap, uint32_t *p50, uint32_t *p99)
{
    size_t n;
    uint32_t *v = s_sorted(ring, count, cap, sizeof *v, s_cmp_u32, &n);
    *p50 = v ? v[n / 2] : 0;
    *p99 = v ? v[n * 99 / 100] : 0;
    free(v);
}

void so_pctl_double(const double *ring, uint64_t count, size_t cap, double *p50, double *p99)
{
    size_t n;
    double *v = s_sorted(ring, count, cap, sizeof *v, s_cmp_double, &n);
    *p50 = v ? v[n / 2] : 0;
    *p99 = v ? v[n * 99 / 100] : 0;
    free(v);
}
