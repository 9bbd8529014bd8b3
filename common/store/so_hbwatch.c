/*
 * so_hbwatch — polls hb:current (see so_hbwatch.h).
 */
#include "store/so_hbwatch.h"
#include "base/so_alloc.h"
#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct so_hbwatch {
    so_hbwatch_opts_t o;
    char *url, *prefix, *note;
    so_store_t *store;
    int own_store;
    char current[SO_WIRE_MAX_ID + 1];
    char previous[SO_WIRE_MAX_ID + 1];
    int state; /* 1 up, 0 down, -1 not polled yet */
    int backoff_ms;
    int64_t next_due;
    int64_t last_ok;
    uint64_t errors;
    char err[256];  /* the last failure's text */
    char none[256]; /* why current is "" (Redis's words), "" otherwise */
};

void so_hbwatch_opts_default(so_hbwatch_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->redis_url = "redis://127.0.0.1:6379";
    o->redis_prefix = "so:";
    o->redis_timeout_ms = 500;
    o->refresh_ms = 200;
    o->backoff_max_ms = 5000;
    o->log = 1;
}

static int s_min_backoff(const so_hbwatch_t *w)
{
    return w->o.refresh_ms > 10 ? w->o.refresh_ms : 10;
}

so_hbwatch_t *so_hbwatch_new(const so_hbwatch_opts_t *o)
{
    so_hbwatch_opts_t d;
    so_hbwatch_opts_default(&d);
    if (!o)
        o = &d;
    so_hbwatch_t *w = so_calloc(1, sizeof *w);
    w->o = *o;
    w->url = so_strdup(o->redis_url && *o->redis_url ? o->redis_url : "redis://127.0.0.1:6379");
    w->prefix = so_strdup(o->redis_prefix ? o->redis_prefix : "so:");
    w->note = o->down_note ? so_strdup(o->down_note) : NULL;
    w->o.redis_url = w->url;
    w->o.redis_prefix = w->prefix;
    w->o.down_note = w->note;
    w->store = o->store;
    w->own_store = !o->store;
    w->state = o->log_first ? -1 : 1;
    w->backoff_ms = s_min_backoff(w);
    return w;
}

void so_hbwatch_destroy(so_hbwatch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_hbwatch_t *w = *self_p;
    if (w->own_store)
        so_store_destroy(&w->store);
    free(w->url);
    free(w->prefix);
    free(w->note);
    free(w);
    *self_p = NULL;
}

void so_hbwatch_down(so_hbwatch_t *w, const char *err)
{
    w->errors++;
    snprintf(w->err, sizeof w->err, "%s", err ? err : "");
    if (w->state != 0 && w->o.log)
        so_warn("redis_down", "url=%s error=\"%s\"%s%s%s", w->url, err ? err : "",
                w->note ? " (" : "", w->note ? w->note : "", w->note ? ")" : "");
    w->state = 0;
}

static void s_up(so_hbwatch_t *w)
{
    if (w->state != 1 && w->o.log)
        so_info("redis_up", "url=%s", w->url);
    w->state = 1;
}

so_store_t *so_hbwatch_store(so_hbwatch_t *w)
{
    char err[256];
    if (w->store)
        return w->store;
    w->store = so_store_connect(w->url, w->prefix, w->o.redis_timeout_ms, err, sizeof err);
    if (!w->store)
        so_hbwatch_down(w, err);
    return w->store;
}

int so_hbwatch_poll(so_hbwatch_t *w)
{
    char err[256], cur[SO_WIRE_MAX_ID + 1];
    so_store_t *s = so_hbwatch_store(w);
    if (!s)
        return -1;
    if (so_store_current_version(s, cur, sizeof cur, err, sizeof err) != 0) {
        if (so_store_io_error(s)) {
            so_hbwatch_down(w, err);
            return -1;
        }
        cur[0] = '\0'; /* nothing published yet, or not a usable version */
        snprintf(w->none, sizeof w->none, "%s", err);
    } else {
        w->none[0] = '\0';
    }
    w->last_ok = so_now_ms();
    if (strcmp(cur, w->current) == 0)
        return 0;
    snprintf(w->previous, sizeof w->previous, "%s", w->current);
    snprintf(w->current, sizeof w->current, "%s", cur);
    return 1;
}

int so_hbwatch_wait(const so_hbwatch_t *w)
{
    int64_t now = so_now_ms();
    return now < w->next_due ? (int) (w->next_due - now) : 0;
}

int so_hbwatch_done(so_hbwatch_t *w, int ok)
{
    if (ok) {
        s_up(w);
        w->backoff_ms = s_min_backoff(w);
        w->next_due = so_now_ms() + w->o.refresh_ms;
        return w->o.refresh_ms;
    }
    /* Redis is down: try again later, waiting longer each time. */
    int wait = w->backoff_ms;
    w->backoff_ms = w->backoff_ms * 2 < w->o.backoff_max_ms ? w->backoff_ms * 2
                                                            : w->o.backoff_max_ms;
    w->next_due = so_now_ms() + wait;
    return wait;
}

int so_hbwatch_tick(so_hbwatch_t *w, int *changed)
{
    if (changed)
        *changed = 0;
    int wait = so_hbwatch_wait(w);
    if (wait > 0)
        return wait;
    int rc = so_hbwatch_poll(w);
    if (changed)
        *changed = rc == 1;
    return so_hbwatch_done(w, rc >= 0);
}

const char *so_hbwatch_current(const so_hbwatch_t *w)
{
    return w->current;
}

const char *so_hbwatch_none_reason(const so_hbwatch_t *w)
{
    return w->none;
}

const char *so_hbwatch_previous(const so_hbwatch_t *w)
{
    return w->previous;
}

int so_hbwatch_up(const so_hbwatch_t *w)
{
    return w->state != 0;
}

uint64_t so_hbwatch_errors(const so_hbwatch_t *w)
{
    return w->errors;
}

int64_t so_hbwatch_last_ok_ms(const so_hbwatch_t *w)
{
    return w->last_ok;
}

const char *so_hbwatch_error(const so_hbwatch_t *w)
{
    return w->err;
}
