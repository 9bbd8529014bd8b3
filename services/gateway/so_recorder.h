/*
 * so_recorder — the gateway's Redis side, on a thread of its own so that the
 * request loop never waits on Redis.  It
 *   - polls the current handbook version and reports changes (the loop pins
 *     new episodes to it);
 *   - pushes the TurnRecord of every turn that does not end a scored episode
 *     to so:pending:<episode> (so_store_push_turn_ex), where any gateway
 *     replica, or `soctl outcome` with feedback, can finish the episode;
 *   - finishes an episode whose final turn carries a score: a one-turn
 *     episode goes straight to the episode log; a longer one is finished by
 *     so_store_finish_episode (outcome = mean of the turns' scores, logged
 *     and the pending list dropped in one transaction).
 * Work that fails because Redis is unreachable is kept (up to max_backlog
 * items) and retried; work that Redis rejects is dropped, logged and counted.
 *
 * The loop talks to the thread over an inproc PAIR; nothing is shared but
 * atomic counters.  The caller owns the zmq context.
 */
#ifndef SO_RECORDER_H
#define SO_RECORDER_H

#include "wire/so_wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct so_recorder so_recorder_t;

typedef struct {
    const char *redis_url;
    const char *prefix;     /* key prefix, default "so:" */
    int timeout_ms;         /* per Redis command (500) */
    int version_refresh_ms; /* current-version poll (1000) */
    int pending_ttl_s;      /* so:pending TTL (86400) */
    size_t max_backlog;     /* queued items before new ones are dropped (100000) */
    int flush_ms;           /* shutdown: time to write what is queued (3000) */
} so_recorder_opts_t;

typedef struct {
    uint64_t pushed;   /* turns pushed to so:pending */
    uint64_t logged;   /* episodes appended to the log */
    uint64_t dropped;  /* items given up (rejected, backlog full, shutdown) */
    uint64_t retries;  /* attempts that failed on the connection */
    uint64_t backlog;  /* items waiting now */
    uint64_t redis_up; /* 1 while the last Redis call worked */
} so_recorder_stats_t;

void so_recorder_opts_default(so_recorder_opts_t *o);
/* Starts the thread.  NULL with err. */
so_recorder_t *so_recorder_new(void *ctx, const so_recorder_opts_t *o, char *err, size_t errlen);
/* Asks the thread to write what it holds (bounded by flush_ms), joins it and
 * frees everything.  NULL-safe; NULLs the pointer. */
void so_recorder_destroy(so_recorder_t **self_p);

/* The loop's end of the pipe: readable when an update waits. */
void *so_recorder_socket(so_recorder_t *r);
/* Reads one update without blocking: 1 with the new current version in buf,
 * 0 when nothing (or nothing of use) was there. */
int so_recorder_recv(so_recorder_t *r, char *buf, size_t len);

/* Hands a finished turn to the thread (the record is packed; the caller
 * keeps tr).  final: the turn ends its episode — with tr's score set the
 * episode is logged, without it the turn waits in so:pending for feedback.
 * Returns 0, or -1 when the pipe is full (counted as dropped). */
int so_recorder_turn(so_recorder_t *r, const char *episode_id, const char *version,
                     const so_pb_turn_record_t *tr, int final);

void so_recorder_stats(so_recorder_t *r, so_recorder_stats_t *out);

#endif
