/*
 * so_buf — growable buffer (see so_buf.h).
 */
#include "base/so_buf.h"

#include "base/so_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void so_buf_reserve(so_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t) -1) / 2)
            so_oom("so_buf");
        cap *= 2;
    }
    b->data = so_realloc(b->data, cap);
    b->cap = cap;
}

void so_buf_append(so_buf_t *b, const void *p, size_t n)
{
    so_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void so_buf_puts(so_buf_t *b, const char *s)
{
    so_buf_append(b, s, strlen(s));
}

void so_buf_putc(so_buf_t *b, char c)
{
    so_buf_append(b, &c, 1);
}

void so_buf_vappendf(so_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    so_buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    if (n < 0) {
        /* An encoding error: keep what was there. */
        b->data[b->len] = '\0';
    } else if ((size_t) n >= b->cap - b->len) {
        so_buf_reserve(b, (size_t) n);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
        b->len += (size_t) n;
    } else {
        b->len += (size_t) n;
    }
    va_end(ap2);
}

void so_buf_appendf(so_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    so_buf_vappendf(b, fmt, ap);
    va_end(ap);
}

void so_buf_truncate(so_buf_t *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

void so_buf_reset(so_buf_t *b)
{
    so_buf_truncate(b, 0);
}

const char *so_buf_str(const so_buf_t *b)
{
    return b->data ? b->data : "";
}

char *so_buf_detach(so_buf_t *b, size_t *len)
{
    if (!b->data) {
        so_buf_reserve(b, 0);
        b->data[0] = '\0';
    }
    char *d = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void so_buf_free(so_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
