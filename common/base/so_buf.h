/*
 * so_buf — a growable byte buffer (text or binary), always NUL-terminated.
 *
 *     so_buf_t b = SO_BUF_INIT;
 *     so_buf_appendf(&b, "%s=%d\n", key, value);
 *     char *s = so_buf_detach(&b);     // yours now: free(3) it
 *
 * Allocation follows so_alloc (out of memory aborts), so appends cannot
 * fail.  A so_buf_t owns its data until so_buf_detach or so_buf_free.
 * Not thread-safe (one owner at a time).
 */
#ifndef SO_BUF_H
#define SO_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char *data; /* NUL-terminated once anything was appended; NULL before */
    size_t len; /* bytes, without the terminating NUL */
    size_t cap;
} so_buf_t;

/* clang-format off */
#define SO_BUF_INIT {NULL, 0, 0}
/* clang-format on */

void so_buf_reserve(so_buf_t *b, size_t extra); /* room for extra more bytes */
void so_buf_append(so_buf_t *b, const void *p, size_t n);
void so_buf_puts(so_buf_t *b, const char *s);
void so_buf_putc(so_buf_t *b, char c);
void so_buf_appendf(so_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void so_buf_vappendf(so_buf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void so_buf_truncate(so_buf_t *b, size_t len); /* len <= b->len */
void so_buf_reset(so_buf_t *b);                /* len 0, memory kept */
/* The contents ("" when empty); valid until the next change. */
const char *so_buf_str(const so_buf_t *b);
/* Hands the data to the caller (free(3) it; never NULL) and empties b. */
char *so_buf_detach(so_buf_t *b, size_t *len);
void so_buf_free(so_buf_t *b);

#endif
