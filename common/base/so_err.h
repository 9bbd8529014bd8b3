/*
 * so_err — the one way a function reports why it failed.
 *
 * Functions that can fail take `char *err, size_t errlen` (hiredis keeps its
 * errstr the same way), return -1 or NULL, and leave a readable message
 * naming what was wrong.  so_err formats it; err may be NULL (the caller
 * does not want the text) and the message is cut to errlen.
 *
 *     if (n > SO_MAX)
 *         return so_err(err, errlen, "%s: %zu items, above the limit %d", path, n, SO_MAX);
 */
#ifndef SO_ERR_H
#define SO_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* Formats into err (when err && errlen) and returns -1. */
int so_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int so_verr(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Puts "prefix: " before the message already in err (in place). */
void so_err_prefix(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
