/*
 * so_alloc — abort-on-out-of-memory wrappers (see so_alloc.h).
 */
#include "base/so_alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void so_oom(const char *what)
{
    fprintf(stderr, "so: out of memory (%s)\n", what ? what : "allocation");
    abort();
}

void *so_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        so_oom("malloc");
    return p;
}

void *so_calloc(size_t n, size_t size)
{
    if (n == 0 || size == 0)
        n = size = 1;
    void *p = calloc(n, size);
    if (!p)
        so_oom("calloc");
    return p;
}

void *so_realloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (!p)
        so_oom("realloc");
    return p;
}

void *so_reallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        so_oom("array size overflow");
    return so_realloc(p, n * size);
}

char *so_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = so_malloc(n);
    memcpy(d, s, n);
    return d;
}

char *so_strndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    size_t len = strnlen(s, n);
    char *d = so_malloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}
