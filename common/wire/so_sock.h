/*
 * so_sock — the ZeroMQ plumbing every service shares: sockets configured
 * from so_config (the so_wire options, overridable per service), endpoint
 * lists, error replies, and the small control protocol between the gateway's
 * worker broker and the agent-workers.
 *
 * Socket options in a config file (defaults: so_wire_sockopts_defaults):
 *   zmq.sndhwm  zmq.rcvhwm  zmq.linger_ms  zmq.maxmsgsize
 *   zmq.heartbeat_ivl_ms  zmq.heartbeat_timeout_ms  zmq.heartbeat_ttl_ms
 *
 * Worker control frames (docs/SERVICES.md, "Workers").  A control message
 * is exactly one frame after the routing envelope (a protocol message is
 * two: header and body), so the two can never be confused:
 *
 *   'S' 'O' 'W' <cmd> [payload]
 *
 *   cmd 1 READY       worker → gateway: capacity (uint16, big-endian, 1..256)
 *                     then the worker id (UTF-8, 1..128 bytes), then
 *                     optionally '\n' and the agents the worker serves,
 *                     comma-separated (none = every agent)
 *   cmd 2 HEARTBEAT   both ways, no payload
 *   cmd 3 DISCONNECT  both ways, no payload: "forget me" / "register again"
 *
 * Everything here works on raw libzmq sockets and is thread-safe given
 * distinct sockets.
 */
#ifndef SO_SOCK_H
#define SO_SOCK_H

#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <stddef.h>
#include <stdint.h>

/* The options of the so_wire defaults, overridden by the zmq.* keys. */
int so_sock_opts(const so_config_t *cfg, so_wire_sockopts_t *opts, char *err, size_t errlen);

/* A raw socket of the given type with opts applied, bound (bind = 1) or
 * connected to every endpoint of a comma-separated list.  immediate = 1 sets
 * ZMQ_IMMEDIATE (a connecting DEALER queues only to peers that are up).
 * Returns NULL with err (the socket is closed). */
void *so_sock_new(void *ctx, int type, const so_wire_sockopts_t *opts, const char *endpoints,
                  int bind, int immediate, char *err, size_t errlen);
/* Closes a socket and NULLs the pointer; NULL-safe. */
void so_sock_close(void **sock_p);

/* Sends a TurnReply that carries only request_id (NULL or "" → "invalid")
 * and an error, with ZMQ_DONTWAIT.  Returns so_wire_send's result. */
int so_sock_send_error(void *sock, const so_wire_envelope_t *env, const char *request_id,
                       const char *episode_id, so_pb_error_code_t code, const char *message,
                       char *err, size_t errlen);

/* ---- Worker control frames -------------------------------------------- */

#define SO_CTL_MAGIC_LEN 3 /* "SOW" */
#define SO_CTL_READY 1
#define SO_CTL_HEARTBEAT 2
#define SO_CTL_DISCONNECT 3
#define SO_CTL_MAX_CAPACITY 256
#define SO_CTL_MAX_AGENTS_LEN 8192 /* the comma-separated agent list */
#define SO_CTL_MAX_LEN (SO_CTL_MAGIC_LEN + 1 + 2 + SO_WIRE_MAX_ID + 1 + SO_CTL_MAX_AGENTS_LEN)

typedef struct {
    int cmd;                                /* SO_CTL_* */
    unsigned capacity;                      /* READY only */
    char worker_id[SO_WIRE_MAX_ID + 1];     /* READY only, NUL-terminated */
    char agents[SO_CTL_MAX_AGENTS_LEN + 1]; /* READY only: "a,b,c"; "" = every agent */
} so_ctl_t;

/* Writes a control frame into buf (at least SO_CTL_MAX_LEN bytes); returns
 * its length, or 0 when the arguments are invalid (READY with an empty or
 * too long id, capacity out of range). */
size_t so_ctl_encode(int cmd, unsigned capacity, const char *worker_id, uint8_t *buf);
/* As so_ctl_encode; READY also lists the agents served (NULL or "" = every
 * agent; each id 1..128 bytes without control characters, at most
 * SO_CTL_MAX_AGENTS_LEN bytes in all, else 0). */
size_t so_ctl_encode_ex(int cmd, unsigned capacity, const char *worker_id, const char *agents,
                        uint8_t *buf);
/* Parses a control frame.  0, or -1 with err ("READY: capacity 0 out of
 * range [1, 256]", "unknown control command 9", ...). */
int so_ctl_decode(const void *frame, size_t len, so_ctl_t *out, char *err, size_t errlen);
/* Sends [env] [control frame] with ZMQ_DONTWAIT.  0, or -1 with errno. */
int so_ctl_send(void *sock, const so_wire_envelope_t *env, int cmd, unsigned capacity,
                const char *worker_id);
/* READY with the agents served (see so_ctl_encode_ex). */
int so_ctl_send_ready(void *sock, const so_wire_envelope_t *env, unsigned capacity,
                      const char *worker_id, const char *agents);

/* Receives one multipart message on a socket that carries both protocol
 * messages and control frames.  env_frames is the exact number of envelope
 * frames expected (1 on the gateway's worker ROUTER, 0 on a worker's
 * DEALER); env (may be NULL when env_frames is 0) receives them.
 * Returns
 *    1  a control frame, parsed into *ctl;
 *    0  a protocol message: *type_out and *msg_out as so_wire_recv;
 *   -1  errno EPROTO: a message was consumed and rejected (err says why;
 *       env holds its envelope when it had the expected shape), or
 *       libzmq's errno (EAGAIN, EINTR, ETERM) with nothing consumed. */
int so_sock_recv_mixed(void *sock, size_t env_frames, so_wire_envelope_t *env, so_ctl_t *ctl,
                       so_msg_type_t *type_out, void **msg_out, char *err, size_t errlen);

#endif
