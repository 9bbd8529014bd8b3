/* so_llmcache — a bounded cache of LLM skill analyses (see so_llmcache.h). */
#include "llm/so_llmcache.h"
#include "base/so_alloc.h"

#include <stdlib.h>
#include <string.h>

#define S_WAYS 4

typedef struct {
    so_skillprompt_key_t key;
    int64_t stored_ms;
    uint64_t used; /* the cache's clock when last touched; 0 = empty */
    uint32_t n;    /* items held, in the cache's item array */
} s_slot_t;

struct so_llmcache {
    s_slot_t *slots;           /* [n_sets * S_WAYS] */
    so_llmcache_item_t *items; /* [n_sets * S_WAYS * max_items] */
    size_t n_sets, max_items;
    int64_t ttl_ms;
    uint64_t clock;
    so_llmcache_stats_t st;
};

so_llmcache_t *so_llmcache_new(size_t capacity, size_t max_items, int64_t ttl_ms)
{
    if (capacity == 0 || max_items == 0)
        return NULL;
    so_llmcache_t *c = so_calloc(1, sizeof *c);
    c->n_sets = (capacity + S_WAYS - 1) / S_WAYS;
    c->max_items = max_items;
    c->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
    c->slots = so_calloc(c->n_sets * S_WAYS, sizeof *c->slots);
    c->items = so_calloc(c->n_sets * S_WAYS * max_items, sizeof *c->items);
    return c;
}

void so_llmcache_destroy(so_llmcache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_llmcache_t *c = *self_p;
    free(c->slots);
    free(c->items);
    free(c);
    *self_p = NULL;
}

static size_t s_set(const so_llmcache_t *c, so_skillprompt_key_t key)
{
    return (size_t) (key.h1 % c->n_sets) * S_WAYS;
}

static int s_same(so_skillprompt_key_t a, so_skillprompt_key_t b)
{
    return a.h1 == b.h1 && a.h2 == b.h2;
}

size_t so_llmcache_get(so_llmcache_t *c, so_skillprompt_key_t key, int64_t now_ms,
                       so_llmcache_item_t *out, size_t max_out)
{
    if (!c)
        return 0;
    size_t base = s_set(c, key);
    for (size_t i = base; i < base + S_WAYS; i++) {
        s_slot_t *s = &c->slots[i];
        if (!s->used || !s_same(s->key, key))
            continue;
        if (c->ttl_ms > 0 && now_ms - s->stored_ms >= c->ttl_ms) {
            s->used = 0; /* stale: free the slot */
            c->st.entries--;
            c->st.expired++;
            break;
        }
        if (s->n > max_out)
            break;
        s->used = ++c->clock;
        memcpy(out, &c->items[i * c->max_items], s->n * sizeof *out);
        c->st.hits++;
        return s->n;
    }
    c->st.misses++;
    return 0;
}

void so_llmcache_put(so_llmcache_t *c, so_skillprompt_key_t key, int64_t now_ms,
                     const so_llmcache_item_t *items, size_t n)
{
    if (!c || n == 0 || n > c->max_items)
        return;
    size_t base = s_set(c, key), pick = base;
    /* The key's own slot, else an empty one, else the least recently used. */
    for (size_t i = base; i < base + S_WAYS; i++) {
        s_slot_t *s = &c->slots[i];
        if (s->used && s_same(s->key, key)) {
            pick = i;
            break;
        }
        if (!s->used) {
            if (c->slots[pick].used)
                pick = i;
        } else if (c->slots[pick].used && s->used < c->slots[pick].used) {
            pick = i;
        }
    }
    s_slot_t *s = &c->slots[pick];
    if (!s->used)
        c->st.entries++;
    else if (!s_same(s->key, key))
        c->st.evictions++;
    s->key = key;
    s->stored_ms = now_ms;
    s->used = ++c->clock;
    s->n = (uint32_t) n;
    memcpy(&c->items[pick * c->max_items], items, n * sizeof *items);
    c->st.inserts++;
}

void so_llmcache_stats(const so_llmcache_t *c, so_llmcache_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (c)
        *out = c->st;
}
