/*
 * so_pctl — the median and 99th percentile of the last latencies a service
 * kept, for its stats line.  A ring of cap slots written at count++ % cap
 * holds min(count, cap) values; they are copied and sorted here (the ring
 * is not touched).  p50 = v[n / 2], p99 = v[n * 99 / 100] of the n sorted
 * values; both 0 when there are none.  Owns nothing; thread-safe.
 */
#ifndef SO_PCTL_H
#define SO_PCTL_H

#include <stddef.h>
#include <stdint.h>

void so_pctl_u32(const uint32_t *ring, uint64_t count, size_t cap, uint32_t *p50, uint32_t *p99);
void so_pctl_double(const double *ring, uint64_t count, size_t cap, double *p50, double *p99);

#endif
