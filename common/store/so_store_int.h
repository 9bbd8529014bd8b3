/*
 * so_store_int.h — what the parts of so_store share; nothing outside
 * common/store/so_store*.c includes it.
 *
 * so_store is one module in several files (see so_store.h for which part
 * owns which keys).  so_store.c owns the connection and the helpers below:
 * every command goes through so_st_command/so_st_commandv (or the
 * pipelining pair so_st_append/so_st_get_reply), which reconnect when the
 * connection broke, check for NULL and error replies and leave a readable
 * message in err.  Callers then check the reply type before touching it:
 * nothing Redis returns is trusted to have the shape we expect, since
 * anyone with access may have written those keys.
 */
#ifndef SO_STORE_INT_H
#define SO_STORE_INT_H

#include "store/so_store.h"
#include "method/so_credit.h"
#include "wire/so_wire.h"

#include <hiredis/hiredis.h>

#define S_KEY_MAX 512

struct so_store {
    redisContext *c;
    char *host;
    int port;
    char *path; /* unix socket, or NULL */
    int db;
    char *prefix;
    int timeout_ms;
    int io_error; /* the last failure was the connection's */
};

/* One command, connecting first if needed; NULL with err on a broken
 * connection or an error reply.  The caller checks the type and frees. */
redisReply *so_st_command(so_store_t *s, char *err, size_t errlen, const char *fmt, ...);
redisReply *so_st_commandv(so_store_t *s, int argc, const char **argv, const size_t *lens,
                           char *err, size_t errlen);
/* Pipelining (after so_store_ensure): append, then collect exactly as
 * many replies.  A failure is the connection's. */
int so_st_append(so_store_t *s, int argc, const char **argv, const size_t *lens, char *err,
                 size_t errlen);
redisReply *so_st_get_reply(so_store_t *s, const char *what, char *err, size_t errlen);
/* "redis <what>: expected <want>, got <type>"; a data error.  Returns -1. */
int so_st_bad_reply(so_store_t *s, const redisReply *r, const char *what, const char *want,
                    char *err, size_t errlen);
/* EXEC's reply: an array of expect replies none of which is an error. */
int so_st_exec_ok(so_store_t *s, redisReply *r, size_t expect, const char *what, char *err,
                  size_t errlen);
/* A handbook version usable in a key: 1..SO_WIRE_MAX_ID bytes. */
int so_st_check_version(const char *v, char *err, size_t errlen);
/* UNWATCH if the connection is alive (errors ignored). */
void so_st_unwatch(so_store_t *s);

/* Applying episodes (so_store_log.c), shared with the rebuild. */
int so_st_check_episode(const so_handbook_t *hb, const so_pb_episode_outcome_t *ep, char *err,
                        size_t errlen);
int so_st_stat_keys(const so_store_t *s, const char *version, char *k_applied, char *k_stats,
                    char *k_seq);
/* The FCALL argument vector of an episode: FCALL so_apply 3 applied stats
 * seq episode_id then field/increment pairs.  Strings live in buf. */
typedef struct {
    const char **argv;
    size_t *lens;
    int argc;
    char *buf;
} so_st_fcall_t;
void so_st_fcall_build(const so_handbook_t *hb, const so_pb_episode_outcome_t *ep,
                       const so_credit_t *c, const char *k_applied, const char *k_stats,
                       const char *k_seq, so_st_fcall_t *f);
void so_st_fcall_free(so_st_fcall_t *f);
/* so_apply's reply: 1 applied, 0 seen before, -1 with err. */
int so_st_fcall_result(so_store_t *s, redisReply *r, const char *ep_id, char *err, size_t errlen);

#endif
