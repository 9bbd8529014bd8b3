/*
 * so_wire — framing, validation and ZeroMQ transport of the protobuf
 * messages in proto/skillorchestra.proto.
 *
 * A message on a socket is a ZeroMQ multipart message:
 *
 *     [envelope frames ...] [header: 'S' 'O' version type] [protobuf body]
 *
 * The last two frames are always the header and the body; anything before
 * them is the routing envelope of ROUTER sockets (routing ids, an optional
 * empty delimiter), handed back to the caller to answer with.
 *
 * Nothing a peer sent is trusted: so_wire_decode checks the header, scans
 * the raw protobuf before protobuf-c allocates anything (truncation, wire
 * types, embedded NULs, repeated counts, total allocations), then validates
 * the unpacked message (lengths, UTF-8, enum ranges, numeric ranges,
 * required ids).  Encoding validates too, so a service cannot send what its
 * peers would reject.  Every error names the field, e.g.
 * "AgentResult.cost_usd: -1 is negative".
 *
 * Owns nothing global; all functions are thread-safe given distinct sockets.
 * See docs/PROTOCOL.md for the limits and the compatibility rule.
 */
#ifndef SO_WIRE_H
#define SO_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>
#include <protobuf-c/protobuf-c.h>

#include "skillorchestra.pb-c.h"
#include "base/so_pb.h"

/* Header frame: 'S' 'O' <version> <type>. */
#define SO_WIRE_HDR_LEN 4
#define SO_WIRE_MAGIC0 'S'
#define SO_WIRE_MAGIC1 'O'
#define SO_WIRE_VERSION 1

/* Limits enforced on decode and on encode. */
#define SO_WIRE_MAX_BODY (4u << 20)      /* protobuf body bytes; also ZMQ_MAXMSGSIZE */
#define SO_WIRE_MAX_ID 128               /* ids, versions, modes, models, roles, keys */
#define SO_WIRE_MAX_TEXT (1u << 20)      /* chat content, reply text */
#define SO_WIRE_MAX_NOTE 4096            /* reasons, error messages */
#define SO_WIRE_MAX_SKILLS 1024          /* skill entries per list */
#define SO_WIRE_MAX_AGENTS 256           /* agent scores, exclude_agents */
#define SO_WIRE_MAX_MESSAGES 256         /* chat messages per request/call */
#define SO_WIRE_MAX_TURNS 256            /* turn records per episode */
#define SO_WIRE_MAX_BACKOFF 16           /* SkillCompetence.backoff_level */
#define SO_WIRE_MAX_ATTEMPT 100          /* AgentCall.attempt */
#define SO_WIRE_MAX_DEADLINE_MS 3600000u /* AgentCall.deadline_ms */
#define SO_WIRE_MAX_NODES (1u << 18)     /* objects protobuf-c may allocate per body */
#define SO_WIRE_MAX_UNKNOWN 1024         /* unknown fields kept per body */
#define SO_WIRE_MAX_ENVELOPE 8           /* envelope frames before the header */
#define SO_WIRE_MAX_ROUTING_ID 255       /* bytes per envelope frame (ZMTP limit) */

/* Values equal Skillorchestra__V1__MessageType (checked at compile time). */
typedef enum {
    SO_MSG_ANY = 0,              /* "expect": accept any type */
    SO_MSG_TURN_REQUEST = 1,     /* so_pb_turn_request_t */
    SO_MSG_SKILL_DEMAND = 2,     /* so_pb_skill_demand_t */
    SO_MSG_ROUTING_DECISION = 3, /* so_pb_routing_decision_t */
    SO_MSG_AGENT_CALL = 4,       /* so_pb_agent_call_t */
    SO_MSG_AGENT_RESULT = 5,     /* so_pb_agent_result_t */
    SO_MSG_EPISODE_OUTCOME = 6,  /* so_pb_episode_outcome_t */
    /* 7 was HandbookAnnouncement: retired, reserved (never reuse it) */
    SO_MSG_TURN_REPLY = 8,    /* so_pb_turn_reply_t */
    SO_MSG_ROUTE_REQUEST = 9, /* so_pb_route_request_t */
} so_msg_type_t;

#define SO_MSG_TYPE_MAX 9

/* "TurnRequest", ...; "unknown" for anything else (0, 7, > 9).  Static
 * storage. */
const char *so_wire_type_name(so_msg_type_t type);
/* The protobuf-c descriptor of a type, NULL if type is not a message type. */
const ProtobufCMessageDescriptor *so_wire_descriptor(so_msg_type_t type);
/* The type whose descriptor is desc, SO_MSG_ANY if none. */
so_msg_type_t so_wire_type_of(const ProtobufCMessageDescriptor *desc);

/* "skillorchestra.v1.SkillDemand.Source" -> "SkillDemand.Source": the name
 * errors use for a descriptor's full name.  Points into full. */
const char *so_wire_pb_name(const char *full);

/* Writes the 4-byte header of type. */
void so_wire_header(so_msg_type_t type, uint8_t hdr[SO_WIRE_HDR_LEN]);
/* Checks a header frame (length, magic, version, known type) and stores its
 * type.  Returns 0, or -1 with e.g. "protocol version 7 unsupported (want 1)". */
int so_wire_parse_header(const void *hdr, size_t hdr_len, so_msg_type_t *type_out, char *err,
                         size_t errlen);

/* Checks a message of the given type (as built for sending, or as unpacked):
 * required ids, lengths, UTF-8, counts, enum values, oneof cases, finite and
 * in-range numbers.  NULL strings count as empty.  Returns 0, or -1 with
 * "Type.field[i].sub: problem" in err. */
int so_wire_validate(so_msg_type_t type, const void *msg, char *err, size_t errlen);

/* Pass 1 of so_wire_decode, before protobuf-c allocates anything: walks the
 * raw body of type with the generated descriptors and rejects truncation,
 * bad tags and wire types, embedded NULs in strings, nesting deeper than 8,
 * a singular sub-message sent twice, repeated fields over their cap, more
 * than SO_WIRE_MAX_UNKNOWN unknown fields and bodies that would unpack into
 * more than SO_WIRE_MAX_NODES objects.  Returns 0, or -1 with err. */
int so_wire_scan(so_msg_type_t type, const void *body, size_t body_len, char *err, size_t errlen);

/* Validates msg and packs it: writes the header to hdr and a malloc'd body
 * to *body_out (the caller frees it with free(3); an all-default message may
 * have *body_len == 0 and *body_out non-NULL).  Returns 0 or -1 with err. */
int so_wire_encode(so_msg_type_t type, const void *msg, uint8_t hdr[SO_WIRE_HDR_LEN],
                   uint8_t **body_out, size_t *body_len, char *err, size_t errlen);

/* As so_wire_encode, into two zmq messages that this function initializes
 * (on success only); the caller sends or zmq_msg_close()s both. */
int so_wire_pack_zmq(so_msg_type_t type, const void *msg, zmq_msg_t *hdr, zmq_msg_t *body,
                     char *err, size_t errlen);

/* Checks the header against expect (SO_MSG_ANY accepts every type), scans,
 * unpacks and validates the body.  On success returns 0 and *msg_out is the
 * unpacked message (the type in the header; see so_wire_parse_header), which
 * the caller releases with so_wire_free.  On failure returns -1, *msg_out is
 * NULL and err says why: "expected TurnRequest, got AgentResult",
 * "truncated protobuf (body 12 bytes): ...", "TurnRequest.request_id: empty". */
int so_wire_decode(const void *hdr, size_t hdr_len, const void *body, size_t body_len,
                   so_msg_type_t expect, void **msg_out, char *err, size_t errlen);

/* Frees a message returned by so_wire_decode / so_wire_recv.  NULL-safe.
 * type may be SO_MSG_ANY (the message knows its descriptor). */
void so_wire_free(so_msg_type_t type, void *msg);

/* Routing envelope of a multipart message: the frames before the header,
 * copied.  Zero-initialize (or so_wire_envelope_reset) before use. */
typedef struct {
    size_t n;
    size_t len[SO_WIRE_MAX_ENVELOPE];
    uint8_t frame[SO_WIRE_MAX_ENVELOPE][SO_WIRE_MAX_ROUTING_ID];
} so_wire_envelope_t;

void so_wire_envelope_reset(so_wire_envelope_t *env);
/* Appends a frame (e.g. a routing id to address a ROUTER peer).  0 or -1. */
int so_wire_envelope_push(so_wire_envelope_t *env, const void *data, size_t len);

/* Sends [env frames] [header] [body] on a raw libzmq socket.  env may be NULL
 * (DEALER, PAIR, PUB, ...).  flags: 0 or ZMQ_DONTWAIT.  Either the whole
 * message is queued or none of it.  Returns 0, or -1 with errno: EINVAL when
 * msg fails validation (err says why), else libzmq's errno (EAGAIN,
 * EHOSTUNREACH with ZMQ_ROUTER_MANDATORY, ETERM, ...) and its text in err. */
int so_wire_send(void *sock, const so_wire_envelope_t *env, so_msg_type_t type, const void *msg,
                 int flags, char *err, size_t errlen);

/* Receives one whole multipart message and decodes it as so_wire_decode.
 * env receives the envelope frames; pass NULL where there are none (a
 * message with envelope frames is then rejected).  flags: 0 or ZMQ_DONTWAIT.
 * On success returns 0, *type_out (may be NULL) is the type and *msg_out the
 * message (free with so_wire_free).  Returns -1 with errno:
 *   EPROTO  a message was consumed but rejected; err says why; env (if
 *           given) holds its envelope so the caller can answer (empty when
 *           the framing itself was bad: < 2 or > 10 frames);
 *   other   libzmq's errno (EAGAIN, EINTR, ETERM, ...); nothing consumed. */
int so_wire_recv(void *sock, so_wire_envelope_t *env, so_msg_type_t expect,
                 so_msg_type_t *type_out, void **msg_out, int flags, char *err, size_t errlen);

/* The frames of one multipart message: envelope, header, body. */
#define SO_WIRE_MAX_FRAMES (SO_WIRE_MAX_ENVELOPE + 2)

/* Receives every frame of one multipart message, so the socket stays
 * aligned whatever the peer sent: the first SO_WIRE_MAX_FRAMES go into parts
 * (*n_kept of them, which the caller zmq_msg_close()s), the rest are counted
 * and dropped.  flags (0 or ZMQ_DONTWAIT) apply to the first frame.  Returns
 * the number of frames received, or -1 with libzmq's errno and its text in
 * err, nothing consumed and nothing kept.  (so_wire_recv and the workers'
 * mixed receive build on it.) */
long so_wire_recv_frames(void *sock, zmq_msg_t parts[SO_WIRE_MAX_FRAMES], size_t *n_kept,
                         int flags, char *err, size_t errlen);

/* Options every socket gets.  Defaults (so_wire_sockopts_defaults):
 *   sndhwm = rcvhwm = 1000 messages (PUB and ROUTER drop beyond, others block)
 *   linger_ms = 1000            (bounded: zmq_ctx_term cannot hang forever)
 *   maxmsgsize = SO_WIRE_MAX_BODY (per frame; larger frames drop the peer)
 *   heartbeat_ivl_ms = 5000, heartbeat_timeout_ms = 15000,
 *   heartbeat_ttl_ms = 15000    (ZMTP PING; dead peers detected in ~15 s)
 *   router_mandatory = 1        (ROUTER sockets only: unroutable sends fail
 *                                with EHOSTUNREACH instead of vanishing)
 * Set before bind/connect: heartbeats and limits apply to new connections. */
typedef struct {
    int sndhwm;
    int rcvhwm;
    int linger_ms;
    int64_t maxmsgsize;
    int heartbeat_ivl_ms;
    int heartbeat_timeout_ms;
    int heartbeat_ttl_ms;
    int router_mandatory;
} so_wire_sockopts_t;

void so_wire_sockopts_defaults(so_wire_sockopts_t *opts);
/* Applies opts (NULL = defaults) to a raw libzmq socket.  0, or -1 with errno
 * and the failing option in err. */
int so_wire_set_sockopts(void *sock, const so_wire_sockopts_t *opts, char *err, size_t errlen);

#endif
