/*
 * so_reply — the answers of the HTTP server (see so_httpd_conn.h): a body
 * with its headers queued on the connection, JSON, and errors in OpenAI's
 * shape.  Every answer carries X-Request-Id, and Connection: close while
 * draining.  It owns nothing: a body handed in is libmicrohttpd's to free.
 */
#include "so_httpd_conn.h"
#include "base/so_alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result so_reply_answer(so_hconn_t *c, int status, const char *type, char *body,
                                size_t len, ...)
{
    if (!body) { /* jansson could not build it */
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                  "\"server_error\",\"param\":null,\"code\":\"internal_error\"}}";
        body = so_strdup(oom);
        status = 500;
        type = "application/json";
        len = strlen(body);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (c->rid[0])
        MHD_add_response_header(r, "X-Request-Id", c->rid);
    va_list ap;
    va_start(ap, len);
    for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (v && *v)
            MHD_add_response_header(r, k, v); /* refuses values with CR/LF */
    }
    va_end(ap);
    if (atomic_load(&c->h->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(c->conn, (unsigned) status, r);
    MHD_destroy_response(r);
    c->answered = 1;
    c->status = status;
    c->bytes_out = len;
    return rc;
}

enum MHD_Result so_reply_json(so_hconn_t *c, int status, json_t *root)
{
    char *s = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(root);
    return so_reply_answer(c, status, "application/json", s, s ? strlen(s) : 0, NULL);
}

enum MHD_Result so_reply_error(so_hconn_t *c, const so_oai_error_t *e)
{
    char *s = so_oai_error_json(e);
    c->error = e->code ? e->code : e->type;
    const char *retry = e->status == 429 || e->status == 503 ? "1" : NULL;
    const char *auth = e->status == 401 ? "Bearer" : NULL;
    return so_reply_answer(c, e->status, "application/json", s, s ? strlen(s) : 0,
                           MHD_HTTP_HEADER_RETRY_AFTER, retry, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                           auth, "X-SO-Episode-Id", c->episode, NULL);
}

enum MHD_Result so_reply_reject(so_hconn_t *c, so_reject_t why, int status, const char *type,
                                const char *code, const char *param, const char *fmt, ...)
{
    so_oai_error_t e;
    so_oai_fail(&e, status, type, code, param, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    so_counters_reject(c->h->counters, why);
    return so_reply_error(c, &e);
}

enum MHD_Result so_reply_redis_down(so_hconn_t *c, const char *err)
{
    so_oai_error_t e;
    so_oai_fail(&e, 503, "server_error", "unavailable", NULL, "Redis is not reachable: %s", err);
    return so_reply_error(c, &e);
}
