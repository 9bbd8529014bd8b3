/*
 * so_hbwatch — the one watcher of the current handbook version
 * (so:hb:current), for every service that follows it: so_hbcache (router,
 * skill-inference), the learner, so-http's so_watch, the gateway.
 *
 * It owns (or borrows) one so_store connection, the last version read, and
 * the health of Redis as its polls see it:
 *   - so_hbwatch_tick, from a service's timer loop, does nothing until it
 *     is due (never blocks then), else reads hb:current once and says
 *     whether the version changed; "what is the current version now" is
 *     so_hbwatch_current, answered from memory.
 *   - A poll that fails on the connection marks Redis down (logged once:
 *     redis_down, and redis_up when a poll gets through again, when
 *     opts.log) and the next poll waits refresh_ms doubling up to
 *     backoff_max_ms.  No current version published is not an outage: the
 *     version is "" then.
 *   - Callers that do more in a round (load the new handbook, poll
 *     statistics) use the three steps so_hbwatch_wait / so_hbwatch_poll /
 *     so_hbwatch_done, and report failures of their own calls with
 *     so_hbwatch_down so one outage is logged once.
 * Loading the handbook of a new version is the caller's (so_hbcache loads
 * and indexes it; so_watch keeps its agents).
 *
 * Not thread-safe: one watcher per thread.
 */
#ifndef SO_HBWATCH_H
#define SO_HBWATCH_H

#include "store/so_store.h"

#include <stdint.h>

typedef struct {
    const char *redis_url;    /* "redis://host:port[/db]" or "unix:/path" (default local) */
    const char *redis_prefix; /* "so:" */
    int redis_timeout_ms;     /* per command (500) */
    so_store_t *store;        /* borrowed connection instead of url/prefix (NULL: own) */
    int refresh_ms;           /* poll period (200) */
    int backoff_max_ms;       /* longest wait while Redis is down (5000; <= refresh_ms: none) */
    int log;                  /* log redis_down / redis_up (1) */
    int log_first;            /* also log the first poll's state, up or down (0) */
    const char *down_note;    /* appended to redis_down as " (note)" (NULL: nothing) */
} so_hbwatch_opts_t;

typedef struct so_hbwatch so_hbwatch_t;

void so_hbwatch_opts_default(so_hbwatch_opts_t *o);
/* Copies the options (the strings too).  Connects lazily.  Never NULL. */
so_hbwatch_t *so_hbwatch_new(const so_hbwatch_opts_t *o);
void so_hbwatch_destroy(so_hbwatch_t **self_p);

/* If due: polls (so_hbwatch_poll), then so_hbwatch_done.  *changed (may
 * be NULL) = 1 when the current version changed at this tick.  Returns
 * the ms until it is next due, for a poll timeout. */
int so_hbwatch_tick(so_hbwatch_t *w, int *changed);

/* 0 when a poll is due, else the ms until it is. */
int so_hbwatch_wait(const so_hbwatch_t *w);
/* Reads hb:current now: 1 changed, 0 same, -1 failed on the connection
 * (marked down, current kept). */
int so_hbwatch_poll(so_hbwatch_t *w);
/* Ends a round: ok marks Redis up and schedules the next poll after
 * refresh_ms; !ok schedules it after the back-off (which then doubles).
 * Returns the ms until the next poll. */
int so_hbwatch_done(so_hbwatch_t *w, int ok);
/* A caller's own call failed on the connection: marks Redis down (logged
 * once per outage) and counts it. */
void so_hbwatch_down(so_hbwatch_t *w, const char *err);

/* The current version as last read ("" if none published or not read). */
const char *so_hbwatch_current(const so_hbwatch_t *w);
/* Why the last poll that reached Redis found no current version (the
 * store's words: not set, not a usable version, the wrong type); "" when
 * there is one. */
const char *so_hbwatch_none_reason(const so_hbwatch_t *w);
/* The version before the last change ("" if none). */
const char *so_hbwatch_previous(const so_hbwatch_t *w);
/* 0 while Redis is marked down. */
int so_hbwatch_up(const so_hbwatch_t *w);
/* Failures on the connection so far (polls, connects, so_hbwatch_down). */
uint64_t so_hbwatch_errors(const so_hbwatch_t *w);
/* The text of the last failure on the connection ("" if none yet). */
const char *so_hbwatch_error(const so_hbwatch_t *w);
/* so_now_ms() of the last poll that reached Redis, 0 = never. */
int64_t so_hbwatch_last_ok_ms(const so_hbwatch_t *w);
/* The connection, connecting if needed; NULL (and marked down) when it
 * cannot.  Borrowed: valid until so_hbwatch_destroy. */
so_store_t *so_hbwatch_store(so_hbwatch_t *w);

#endif
