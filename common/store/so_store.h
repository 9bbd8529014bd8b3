/*
 * so_store — the shared state in Redis: the only code that talks to Redis.
 *
 * One module, one header, four files by concern (so_store_int.h holds
 * what they share):
 *   so_store.c         the connection (url, reconnect, timeouts, the
 *                      function library "so"), key names, locks
 *                      (<name>:lock)
 *   so_store_hb.c      handbooks and their statistics: hb:current,
 *                      hb:<version>, hb:versions, stats:<version>,
 *                      seq:<version>
 *   so_store_log.c     episodes: applied:<version> and the increments
 *                      (so_apply), the log episodes, pending:<episode>[:hb]
 *   so_store_replay.c  the log read back: replay, rebuild (rebuild:*)
 *   so_store_stream.c  the learners' consumer group on episodes, the
 *                      dead-letter stream episodes:dead, refined:<version>
 * so_hbwatch (its own header) watches hb:current on top of it.
 *
 * Keys (all under a configurable prefix, default "so:"):
 *   so:hb:current               current handbook version (string)
 *   so:hb:<version>             the handbook JSON as saved by so_handbook_dumps
 *   so:hb:versions              list of published versions, oldest first
 *   so:stats:<version>          hash of competence/cost deltas learned online,
 *                               field "<agent>\x1f<skill>\x1f<k>" with k one of
 *                               s (successes) n (attempts) c (cost USD)
 *                               pt ct (tokens) l (latency s) cc (cost count)
 *   so:seq:<version>            counter bumped by every applied episode
 *   so:applied:<version>        set of episode ids already applied
 *   so:episodes                 Redis Stream: the durable episode log, one
 *                               entry per completed episode, field "pb" =
 *                               packed EpisodeOutcome, "id" = episode id;
 *                               consumer group of the learners
 *   so:episodes:dead            Redis Stream: log entries a learner could
 *                               not use (src, reason, consumer, pb)
 *   so:refined:<version>        the sequence number of the last refinement
 *                               check of a version
 *   so:pending:<episode>        list of packed TurnRecords of an episode
 *                               waiting for its outcome (TTL)
 *   so:pending:<episode>:hb     the handbook version of those turns (TTL)
 *   so:<name>:lock              a lock (so_store_lock), e.g. so:refine:lock
 * Applying an episode is one Redis Function call (library "so", function
 * "so_apply", loaded with FUNCTION LOAD REPLACE on connect): SADD to the
 * applied set and, only if the id is new, every HINCRBYFLOAT and the INCR —
 * atomic and idempotent per episode, so redelivery, restarts and several
 * learners never count an episode twice.  Functions survive Redis restarts.
 * What an episode is worth (the increments) is decided by method/so_credit;
 * so_store only applies it.
 *
 * Statistics a router uses = the handbook's bootstrap stats (its JSON) +
 * the deltas in so:stats:<version>.  Rebuilding from the log: replay the
 * stream into an empty stats hash (so_store_rebuild).
 *
 * One so_store_t is one hiredis connection: not thread-safe; one per thread.
 * Timeouts are set again after every reconnect (hiredis drops them).
 */
#ifndef SO_STORE_H
#define SO_STORE_H

#include "method/so_handbook.h"
#include "base/so_pb.h"

#include <stddef.h>

typedef struct so_store so_store_t;

/* url: "redis://host:port[/db]" or "unix:/path/to/sock".  timeout_ms bounds
 * connect and every command.  Returns NULL with err.  Sets SIGPIPE to
 * SIG_IGN if it was SIG_DFL (hiredis writes with write(2)). */
so_store_t *so_store_connect(const char *url, const char *prefix, int timeout_ms, char *err,
                             size_t errlen);
void so_store_destroy(so_store_t **self_p);
/* Reconnects if the connection failed; 0 or -1.  Every function below
 * calls it first, so a store heals itself after Redis comes back. */
int so_store_ensure(so_store_t *s, char *err, size_t errlen);
/* 1 if the last failure was the connection's (retry later), 0 if it was
 * the data's or a Redis error reply (retrying will not help). */
int so_store_io_error(const so_store_t *s);
/* Writes prefix + the formatted name into buf; 0, or -1 if it is cut. */
int so_store_key(const so_store_t *s, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Handbooks.  put: stores the JSON, appends the version, and (if
 * make_current) sets current — atomically (MULTI/EXEC).  Nothing is
 * announced: readers poll hb:current (so_hbwatch). */
int so_store_put_handbook(so_store_t *s, const so_handbook_t *hb, int make_current, char *err,
                          size_t errlen);
/* As so_store_put_handbook, but only if the version is not published yet
 * (WATCH + EXISTS + MULTI/EXEC): two replicas must never route one version
 * with two handbooks.  Returns 1 (published), 0 (the version exists, or
 * appeared meanwhile: nothing written, err says so) or -1. */
int so_store_put_handbook_new(so_store_t *s, const so_handbook_t *hb, int make_current, char *err,
                              size_t errlen);
/* version NULL or "" = current.  NULL with err if absent or malformed. */
so_handbook_t *so_store_get_handbook(so_store_t *s, const char *version, char *err,
                                     size_t errlen);
/* The JSON of a version exactly as stored (version given, not ""):
 * 1 with *json (malloc'd, NUL-terminated, free(3)) and *len (may be NULL),
 * 0 when Redis has no such version, -1 with err (so_store_io_error says
 * whether the connection failed). */
int so_store_get_handbook_json(so_store_t *s, const char *version, char **json, size_t *len,
                               char *err, size_t errlen);
/* Writes the current version into buf; 0, or -1 (none yet, or error). */
int so_store_current_version(so_store_t *s, char *buf, size_t len, char *err, size_t errlen);
/* Publishes hb and makes it current only if the current version is still
 * expect_current (NULL or "" = none yet): WATCH + MULTI/EXEC.  Returns 1
 * (published), 0 (current changed meanwhile; nothing written) or -1. */
int so_store_put_handbook_if(so_store_t *s, const so_handbook_t *hb, const char *expect_current,
                             char *err, size_t errlen);
/* The published versions, oldest first: a malloc'd array of malloc'd
 * strings (free with so_store_strv_free).  0 or -1. */
int so_store_versions(so_store_t *s, char ***versions, size_t *n, char *err, size_t errlen);
void so_store_strv_free(char ***v, size_t n);

/* The online sequence number of a version (0 if none). */
int so_store_seq(so_store_t *s, const char *version, long long *seq, char *err, size_t errlen);
/* Adds the online deltas of hb->version onto hb's stats (skills/agents not
 * in hb are ignored and counted in *unknown if not NULL); sets *seq to the
 * sequence number read in the same MULTI. */
int so_store_load_stats(so_store_t *s, so_handbook_t *hb, long long *seq, size_t *unknown,
                        char *err, size_t errlen);

/* Applies an episode: the increments so_credit_episode computes (see
 * method/so_credit.h) in one FCALL so_apply.  Returns 1 if applied, 0 if
 * the episode was applied before, -1 on error.  Turns naming agents or
 * skills not in hb are skipped. */
int so_store_apply_episode(so_store_t *s, const so_handbook_t *hb,
                           const so_pb_episode_outcome_t *ep, char *err, size_t errlen);
/* Applies n episodes in one pipeline (hbs[i] is the handbook of eps[i]).
 * applied[i] = 1, 0 (applied before) or -1 (this episode is unusable: err
 * holds the first such reason).  Returns 0 when every reply came back, -1
 * when the connection failed (then nothing is known: apply again, it is
 * idempotent). */
int so_store_apply_many(so_store_t *s, const so_handbook_t *const *hbs,
                        const so_pb_episode_outcome_t *const *eps, size_t n, int *applied,
                        char *err, size_t errlen);

/* The episode log.  append: XADD (MAXLEN not applied: the log is the source
 * of truth).  Returns 0 or -1. */
int so_store_log_episode(so_store_t *s, const so_pb_episode_outcome_t *ep, char *err,
                         size_t errlen);
/* Decodes a log entry's "pb" value (a header-less EpisodeOutcome body) with
 * so_wire_decode's checks.  0 with *out (free with so_store_episode_free),
 * or -1 with err. */
int so_store_decode_episode(const void *pb, size_t len, so_pb_episode_outcome_t **out, char *err,
                            size_t errlen);
void so_store_episode_free(so_pb_episode_outcome_t **ep_p);

/* Pending turns of an episode awaiting its outcome (feedback). */
int so_store_push_turn(so_store_t *s, const char *episode_id, const so_pb_turn_record_t *tr,
                       int ttl_s, char *err, size_t errlen);
/* As so_store_push_turn, also recording the handbook version that routed
 * the episode (so:pending:<episode>:hb), which the outcome needs. */
int so_store_push_turn_ex(so_store_t *s, const char *episode_id, const char *handbook_version,
                          const so_pb_turn_record_t *tr, int ttl_s, char *err, size_t errlen);
/* Reads the pending turns (validated) and, into version (may be NULL), the
 * recorded handbook version ("" if none).  *turns_out is malloc'd (free
 * with so_store_turns_free); none pending = 0 turns.  0 or -1. */
int so_store_pending_turns(so_store_t *s, const char *episode_id, char *version, size_t vlen,
                           so_pb_turn_record_t ***turns_out, size_t *n_out, char *err,
                           size_t errlen);
void so_store_turns_free(so_pb_turn_record_t ***turns_p, size_t n);
int so_store_drop_pending(so_store_t *s, const char *episode_id, char *err, size_t errlen);
/* Ends an episode whose turns wait in so:pending:<episode>: reads them and
 * the recorded handbook version (version_if_none when none was recorded),
 * builds the EpisodeOutcome (turns sorted by turn_index, a turn index seen
 * twice counted once; finished_unix_ms = now) and, in one MULTI/EXEC under
 * WATCH of the pending keys, appends it to the episode log and drops the
 * pending keys — so two finishers of one episode log it once, and a turn
 * pushed meanwhile makes the transaction retry with it.
 * Outcome: has_success → success (0/1); else score if in [0, 1]; else
 * (score < 0 or NaN = unset) the mean of the turns' own scores — an error
 * if no turn has one.  Returns 1 (logged), 0 (nothing pending: unknown or
 * already finished episode) or -1 with err (pending keys left as they
 * were). */
int so_store_finish_episode(so_store_t *s, const char *episode_id, int has_success, int success,
                            double score, const char *version_if_none, char *err, size_t errlen);

/* Recomputes so:stats:<version> from the whole episode log (for checks and
 * recovery).  Returns the number of episodes applied, or -1.
 * Safe while learners run: it applies the log into temporary keys and
 * swaps them in (so_swap) only if the log has not grown since it read it
 * to the end, else it reads the new entries and tries again — so every
 * episode is in the result exactly once. */
long so_store_rebuild(so_store_t *s, const so_handbook_t *hb, char *err, size_t errlen);
/* Replays the log in memory, writing nothing: deltas[n_agents * n_skills]
 * (agent-major, as hb->stats) receives what so:stats:<version> should hold
 * for hb->version.  Returns the number of distinct episodes of that version,
 * or -1; *malformed (may be NULL) counts entries that do not decode or
 * cannot be credited. */
long so_store_replay(so_store_t *s, const so_handbook_t *hb, so_stat_t *deltas, size_t *malformed,
                     char *err, size_t errlen);

/* The learners' consumer group on the episode log (so_store_stream.c). */

/* XGROUP CREATE episodes group 0 MKSTREAM (an existing group is fine). */
int so_store_group_create(so_store_t *s, const char *group, char *err, size_t errlen);

typedef enum {
    SO_STORE_ENTRY_OK = 0,   /* id and pb set */
    SO_STORE_ENTRY_NO_ID,    /* no usable id: cannot even be acknowledged */
    SO_STORE_ENTRY_DELETED,  /* deleted from the log since it was delivered */
    SO_STORE_ENTRY_NOT_LIST, /* its fields are not a list */
    SO_STORE_ENTRY_NO_PB     /* no "pb" field */
} so_store_entry_kind_t;

/* One delivered log entry; strings borrowed from the entries' reply. */
typedef struct {
    so_store_entry_kind_t kind;
    const char *id;
    const char *pb;
    size_t pb_len;
} so_store_entry_t;

typedef struct {
    so_store_entry_t *v;
    size_t n;
    char cursor[64]; /* so_store_claim: where the next page starts */
    void *reply;     /* private: owns the strings */
} so_store_entries_t;
void so_store_entries_free(so_store_entries_t *e);

/* XREADGROUP GROUP group consumer COUNT count [BLOCK block_ms] STREAMS
 * episodes id (block_ms < 0: no BLOCK).  0 with *out (n = 0 when nothing
 * came), or -1 with err (a NOGROUP error reply included). */
int so_store_read_group(so_store_t *s, const char *group, const char *consumer, const char *id,
                        int count, int block_ms, so_store_entries_t *out, char *err,
                        size_t errlen);
/* XAUTOCLAIM episodes group consumer min_idle_ms cursor COUNT count. */
int so_store_claim(so_store_t *s, const char *group, const char *consumer, int min_idle_ms,
                   const char *cursor, int count, so_store_entries_t *out, char *err,
                   size_t errlen);

/* An entry for the dead-letter stream. */
typedef struct {
    const char *id; /* the entry's id in the log (field src) */
    const char *reason;
    const char *pb; /* NULL: none */
    size_t pb_len;
} so_store_dead_t;
/* In one pipeline: each dead entry XADDed to episodes:dead (MAXLEN ~
 * dead_maxlen; fields src reason consumer [pb]), then XACK of the ack ids.
 * A command Redis refuses is logged (batch_write_failed) and the rest goes
 * on.  0, or -1 when the connection failed (nothing known). */
int so_store_finish_batch(so_store_t *s, const char *group, const char *consumer,
                          long dead_maxlen, const so_store_dead_t *dead, size_t n_dead,
                          const char *const *ack, size_t n_ack, char *err, size_t errlen);

/* refined:<version>: the sequence number of the last refinement check
 * (0 when unset or not a number). */
int so_store_refined_seq(so_store_t *s, const char *version, long long *seq, char *err,
                         size_t errlen);
int so_store_set_refined(so_store_t *s, const char *version, long long seq, char *err,
                         size_t errlen);

/* A lock "<prefix><name>:lock" held by token for ttl_ms (SET NX PX).
 * lock: 1 taken, 0 held by someone else, -1 error.  unlock deletes it only
 * if token still holds it: 1 released, 0 not ours (expired), -1 error. */
int so_store_lock(so_store_t *s, const char *name, const char *token, int ttl_ms, char *err,
                  size_t errlen);
int so_store_unlock(so_store_t *s, const char *name, const char *token, char *err, size_t errlen);

/* Inspection of a stream under the prefix (name "episodes", "episodes:dead"),
 * for operators (soctl stats).  stream_len: XLEN (0 for no such stream), or
 * -1 with err.  stream_groups: XINFO GROUPS, each group as one line of
 * "field=value" pairs in Redis's order (a malloc'd array of malloc'd strings,
 * free with so_store_strv_free); returns 0, 1 when Redis answered with an
 * error (e.g. no such key: its text in err, no groups) or -1 when the
 * connection failed. */
long long so_store_stream_len(so_store_t *s, const char *name, char *err, size_t errlen);
int so_store_stream_groups(so_store_t *s, const char *name, char ***groups, size_t *n, char *err,
                           size_t errlen);
const char *so_store_prefix(const so_store_t *s);

#endif
