/*
 * so_err — error messages into caller buffers (see so_err.h).
 */
#include "base/so_err.h"

#include <stdio.h>
#include <string.h>

int so_verr(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    return -1;
}

int so_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    so_verr(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void so_err_prefix(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    char prefix[256], old[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(old, sizeof old, "%s", err);
    snprintf(err, errlen, "%s: %s", prefix, old);
}
