/*
 * so_gwclient — a thread-safe client of the gateway's client endpoint
 * (docs/SERVICES.md, "Gateway"): any thread submits a TurnRequest and is
 * called back once when its TurnReply, a timeout or a failure is in.
 *
 * ZeroMQ sockets are not thread-safe, so one thread of our own owns the
 * DEALER (connected to every gateway endpoint of the list, round-robin)
 * and everything it touches.  Submitters hand it packed requests through a
 * mutex-guarded queue and wake it through a pipe; replies are matched to
 * calls by request id.  Every call ends exactly once:
 *
 *   SO_GW_REPLY        the gateway answered (the reply may carry an Error)
 *   SO_GW_TIMEOUT      no answer by the call's deadline
 *   SO_GW_UNAVAILABLE  no gateway connected for connect_wait_ms, the
 *                      connection to the only gateway dropped while the call
 *                      was out, or the send failed
 *   SO_GW_STOPPED      the client is stopping
 *
 * Readiness: a socket monitor counts the gateways the DEALER has a working
 * (handshaken) connection to, and the time of the last reply is kept.
 */
#ifndef SO_GWCLIENT_H
#define SO_GWCLIENT_H

#include "wire/so_wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct so_gwclient so_gwclient_t;
typedef struct so_gwcall so_gwcall_t;

typedef enum {
    SO_GW_PENDING = 0,
    SO_GW_REPLY,
    SO_GW_TIMEOUT,
    SO_GW_UNAVAILABLE,
    SO_GW_STOPPED,
} so_gw_status_t;

typedef struct {
    const char *endpoints; /* comma-separated, e.g. "tcp://127.0.0.1:5555" */
    so_wire_sockopts_t sockopts;
    int connect_wait_ms; /* how long a call waits for a connected gateway */
} so_gwclient_opts_t;

typedef struct {
    uint64_t sent, replies, timeouts, unavailable, stray, rejected;
    int peers;             /* gateways connected now */
    int64_t last_reply_ms; /* so_now_ms() of the last reply, 0 = none yet */
} so_gwclient_stats_t;

/* Called once per call, on the client's thread, when the call has ended.
 * It must not block (e.g. MHD_resume_connection). */
typedef void so_gwcall_done_fn(void *arg);

/* Connects and starts the thread.  NULL with err. */
so_gwclient_t *so_gwclient_new(const so_gwclient_opts_t *o, char *err, size_t errlen);
/* Ends every call not yet ended with SO_GW_STOPPED (their callbacks run)
 * and stops accepting new ones; returns when the thread has exited.
 * Idempotent. */
void so_gwclient_stop(so_gwclient_t *c);
/* Stops (if not yet), closes the socket, frees.  NULL-safe; NULLs the pointer. */
void so_gwclient_destroy(so_gwclient_t **self_p);

/* Called on the client's thread for each partial TurnReply (a text delta of
 * a streamed turn, turn->stream set) while the call is pending, in order,
 * before done; never after so_gwcall_destroy returned.  rep is borrowed for
 * the call's duration.  It must not block. */
typedef void so_gwcall_partial_fn(void *arg, const so_pb_turn_reply_t *rep);

/* Submits a TurnRequest whose request_id is unique among this client's
 * calls.  The request is encoded here (validated: err names a bad field).
 * Returns the call, or NULL with err (invalid request, stopping) — then
 * done is never called.  deadline_ms: so_now_ms() value. */
so_gwcall_t *so_gwclient_submit(so_gwclient_t *c, const so_pb_turn_request_t *turn,
                                int64_t deadline_ms, so_gwcall_done_fn *done, void *arg,
                                char *err, size_t errlen);
/* A call's outcome: the status (SO_GW_PENDING until done was called), the
 * reply when SO_GW_REPLY (borrowed: valid until so_gwcall_destroy), and a
 * message for the other statuses. */
/* The same with a partial callback (NULL: partial replies are dropped). */
so_gwcall_t *so_gwclient_submit_stream(so_gwclient_t *c, const so_pb_turn_request_t *turn,
                                       int64_t deadline_ms, so_gwcall_done_fn *done,
                                       so_gwcall_partial_fn *partial, void *arg, char *err,
                                       size_t errlen);
so_gw_status_t so_gwcall_result(so_gwcall_t *call, const so_pb_turn_reply_t **reply,
                                const char **message);
/* Frees a call.  One still pending is abandoned: the client frees it when
 * it ends and does not call its callback.  NULL-safe; NULLs the pointer. */
void so_gwcall_destroy(so_gwcall_t **call_p);

void so_gwclient_stats(so_gwclient_t *c, so_gwclient_stats_t *out);

#endif
