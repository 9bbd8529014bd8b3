/*
 * so_map — a hash table from strings to pointers (open addressing, linear
 * probing, FNV-1a).  The one map of the code base: use it instead of a
 * hand-written table.
 *
 *     so_map_t *m = so_map_new(free);          // values freed with free(3)
 *     so_map_put(m, "gpt-4", so_strdup("x"));
 *     const char *v = so_map_get(m, "gpt-4");
 *     so_map_destroy(&m);
 *
 * Keys are copied (the map owns its copies); values are owned by the map
 * when a free function was given (replaced and deleted values are freed
 * with it), borrowed otherwise.  Allocation follows so_alloc.  Not
 * thread-safe.
 */
#ifndef SO_MAP_H
#define SO_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct so_map so_map_t;
typedef void so_map_free_fn(void *value);

so_map_t *so_map_new(so_map_free_fn *free_value);
void so_map_destroy(so_map_t **self_p);

/* Inserts or replaces; returns 1 when the key is new, 0 when replaced. */
int so_map_put(so_map_t *m, const char *key, void *value);
void *so_map_get(const so_map_t *m, const char *key); /* NULL: absent */
int so_map_has(const so_map_t *m, const char *key);
/* Removes the key (its value freed when the map owns values); 1 if it was there. */
int so_map_del(so_map_t *m, const char *key);
size_t so_map_size(const so_map_t *m);

/* Iteration in slot order (no change to the map meanwhile):
 *     size_t it = 0; const char *k; void *v;
 *     while (so_map_next(m, &it, &k, &v)) ... */
int so_map_next(const so_map_t *m, size_t *it, const char **key, void **value);

/* FNV-1a, 64 bits, over n bytes. */
uint64_t so_hash64(const void *p, size_t n);

#endif
