/*
 * so_map — string-keyed hash table (see so_map.h).
 *
 * Deletion uses backward-shift (no tombstones), so a long-lived map that
 * sees many puts and deletes keeps short probe runs.
 */
#include "base/so_map.h"

#include "base/so_alloc.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key; /* NULL: empty slot */
    uint64_t hash;
    void *value;
} s_slot_t;

struct so_map {
    s_slot_t *slots;
    size_t cap; /* a power of two */
    size_t n;
    so_map_free_fn *free_value;
};

uint64_t so_hash64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

so_map_t *so_map_new(so_map_free_fn *free_value)
{
    so_map_t *m = so_calloc(1, sizeof *m);
    m->cap = 16;
    m->slots = so_calloc(m->cap, sizeof *m->slots);
    m->free_value = free_value;
    return m;
}

void so_map_destroy(so_map_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_map_t *m = *self_p;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        free(m->slots[i].key);
        if (m->free_value)
            m->free_value(m->slots[i].value);
    }
    free(m->slots);
    free(m);
    *self_p = NULL;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t s_find(const so_map_t *m, const char *key, uint64_t h)
{
    size_t i = (size_t) h & (m->cap - 1);
    while (m->slots[i].key && (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void s_grow(so_map_t *m)
{
    s_slot_t *old = m->slots;
    size_t old_cap = m->cap;
    m->cap *= 2;
    m->slots = so_calloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].key)
            continue;
        size_t j = (size_t) old[i].hash & (m->cap - 1);
        while (m->slots[j].key)
            j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

int so_map_put(so_map_t *m, const char *key, void *value)
{
    if ((m->n + 1) * 4 > m->cap * 3)
        s_grow(m);
    uint64_t h = so_hash64(key, strlen(key));
    size_t i = s_find(m, key, h);
    s_slot_t *s = &m->slots[i];
    if (s->key) {
        if (m->free_value && s->value != value)
            m->free_value(s->value);
        s->value = value;
        return 0;
    }
    s->key = so_strdup(key);
    s->hash = h;
    s->value = value;
    m->n++;
    return 1;
}

void *so_map_get(const so_map_t *m, const char *key)
{
    size_t i = s_find(m, key, so_hash64(key, strlen(key)));
    return m->slots[i].key ? m->slots[i].value : NULL;
}

int so_map_has(const so_map_t *m, const char *key)
{
    return m->slots[s_find(m, key, so_hash64(key, strlen(key)))].key != NULL;
}

int so_map_del(so_map_t *m, const char *key)
{
    size_t i = s_find(m, key, so_hash64(key, strlen(key)));
    if (!m->slots[i].key)
        return 0;
    free(m->slots[i].key);
    if (m->free_value)
        m->free_value(m->slots[i].value);
    m->slots[i].key = NULL;
    m->n--;
    /* Backward shift: pull later members of the run into the hole when
     * their home slot does not lie (cyclically) between the hole and them. */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & (m->cap - 1);
        if (!m->slots[j].key)
            break;
        size_t home = (size_t) m->slots[j].hash & (m->cap - 1);
        int between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (between)
            continue;
        m->slots[hole] = m->slots[j];
        m->slots[j].key = NULL;
        hole = j;
    }
    return 1;
}

size_t so_map_size(const so_map_t *m)
{
    return m->n;
}

int so_map_next(const so_map_t *m, size_t *it, const char **key, void **value)
{
    while (*it < m->cap) {
        const s_slot_t *s = &m->slots[(*it)++];
        if (s->key) {
            if (key)
                *key = s->key;
            if (value)
                *value = s->value;
            return 1;
        }
    }
    return 0;
}
