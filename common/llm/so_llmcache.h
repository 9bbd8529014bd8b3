/*
 * so_llmcache — a bounded cache of LLM skill analyses, so that a prompt seen
 * again (a retried turn, a popular question) costs no LLM call.
 *
 * Keys are 128-bit hashes of what was asked (so_skillprompt_key: handbook
 * version, mode, text); values are short lists of (skill index, weight).
 * Four-way set-associative: a key can live in one set of four slots, and a
 * full set loses its least recently used entry, so lookups and inserts are
 * O(1) and memory is fixed at creation (entries x (slot + up to max_skills
 * items)).  Entries older than ttl_ms are misses (0 = no expiry).
 *
 * Not thread-safe: one cache per thread (skill-inference uses it from its
 * loop only).
 */
#ifndef SO_LLMCACHE_H
#define SO_LLMCACHE_H

#include "llm/so_skillprompt.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t skill; /* index into the handbook's skills */
    double weight;
} so_llmcache_item_t;

typedef struct {
    uint64_t hits, misses, inserts, evictions, expired;
    size_t entries; /* held now */
} so_llmcache_stats_t;

typedef struct so_llmcache so_llmcache_t;

/* capacity: entries kept (rounded up to a multiple of 4; 0 → NULL, i.e. no
 * cache; the functions below accept NULL and do nothing).  max_items:
 * longest analysis kept (longer ones are not cached). */
so_llmcache_t *so_llmcache_new(size_t capacity, size_t max_items, int64_t ttl_ms);
void so_llmcache_destroy(so_llmcache_t **self_p);

/* Copies the entry of key into out (room for max_out items) and returns
 * its length, or 0 on a miss (an entry longer than max_out is a miss too).
 * now_ms: a so_now_ms() value (for the ttl). */
size_t so_llmcache_get(so_llmcache_t *c, so_skillprompt_key_t key, int64_t now_ms,
                       so_llmcache_item_t *out, size_t max_out);

/* Stores (a copy of) items[0..n) under key, replacing what it held.  n == 0
 * or n > max_items: nothing is stored. */
void so_llmcache_put(so_llmcache_t *c, so_skillprompt_key_t key, int64_t now_ms,
                     const so_llmcache_item_t *items, size_t n);

void so_llmcache_stats(const so_llmcache_t *c, so_llmcache_stats_t *out);

#endif
