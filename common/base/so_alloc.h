/*
 * so_alloc — the one allocation policy: out of memory aborts.
 *
 * A router that cannot allocate a few hundred bytes cannot do anything
 * useful, and every "out of memory" return path is a path nobody tests.  So
 * allocation never fails for the caller: these wrappers print one line to
 * stderr and abort().  (What a peer or a file declares is still checked
 * against a limit BEFORE allocating: never size an allocation from a length
 * someone else sent.)
 *
 * A zero size allocates one byte, so a NULL return always means "nothing"
 * only where the caller passed NULL in.
 */
#ifndef SO_ALLOC_H
#define SO_ALLOC_H

#include <stddef.h>

void *so_malloc(size_t size);
void *so_calloc(size_t n, size_t size); /* n * size overflow aborts too */
void *so_realloc(void *p, size_t size);
char *so_strdup(const char *s);            /* NULL in, NULL out */
char *so_strndup(const char *s, size_t n); /* at most n bytes, NUL-terminated */
/* realloc to n * size bytes, aborting on overflow (arrays that grow). */
void *so_reallocarray(void *p, size_t n, size_t size);

/* Prints "so: out of memory (what)" and aborts; for allocators this module
 * does not wrap (jansson, protobuf-c, CZMQ results). */
void so_oom(const char *what) __attribute__((noreturn));

#endif
