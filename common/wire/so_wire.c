/*
 * so_wire — see so_wire.h.  This file owns the type table, the header, the
 * encode/decode passes and the socket helpers.  Decoding a body takes three
 * passes:
 *
 *  1. so_wire_scan (so_wire_scan.c) walks the raw protobuf before
 *     protobuf-c allocates anything.
 *  2. protobuf_c_message_unpack.
 *  3. so_wire_validate (so_wire_check.c): per-message semantic checks
 *     (required ids, lengths, UTF-8, enum ranges, numeric ranges).  The same
 *     checks run before encoding.
 */
#include "wire/so_wire.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S_TRY(x) \
    do { \
        if ((x) != 0) \
            return -1; \
    } while (0)

#define S_SAME_TYPE(x) \
    _Static_assert((int) SO_MSG_##x == (int) SKILLORCHESTRA__V1__MESSAGE_TYPE__MESSAGE_TYPE_##x, \
                   "so_msg_type_t must match MessageType")
S_SAME_TYPE(TURN_REQUEST);
S_SAME_TYPE(SKILL_DEMAND);
S_SAME_TYPE(ROUTING_DECISION);
S_SAME_TYPE(AGENT_CALL);
S_SAME_TYPE(AGENT_RESULT);
S_SAME_TYPE(EPISODE_OUTCOME);
S_SAME_TYPE(TURN_REPLY);
S_SAME_TYPE(ROUTE_REQUEST);
_Static_assert(SO_WIRE_MAX_BODY <= INT32_MAX, "body must fit ZMQ_MAXMSGSIZE and int");

typedef struct {
    const char *name;
    const ProtobufCMessageDescriptor *desc;
} s_type_t;

static const s_type_t s_types[SO_MSG_TYPE_MAX + 1] = {
    [SO_MSG_TURN_REQUEST] = { "TurnRequest", &skillorchestra__v1__turn_request__descriptor },
    [SO_MSG_SKILL_DEMAND] = { "SkillDemand", &skillorchestra__v1__skill_demand__descriptor },
    [SO_MSG_ROUTING_DECISION] = { "RoutingDecision",
                                  &skillorchestra__v1__routing_decision__descriptor },
    [SO_MSG_AGENT_CALL] = { "AgentCall", &skillorchestra__v1__agent_call__descriptor },
    [SO_MSG_AGENT_RESULT] = { "AgentResult", &skillorchestra__v1__agent_result__descriptor },
    [SO_MSG_EPISODE_OUTCOME] = { "EpisodeOutcome",
                                 &skillorchestra__v1__episode_outcome__descriptor },
    [SO_MSG_TURN_REPLY] = { "TurnReply", &skillorchestra__v1__turn_reply__descriptor },
    [SO_MSG_ROUTE_REQUEST] = { "RouteRequest", &skillorchestra__v1__route_request__descriptor },
};

const char *so_wire_pb_name(const char *full)
{
    static const char pkg[] = "skillorchestra.v1.";
    return strncmp(full, pkg, sizeof pkg - 1) == 0 ? full + sizeof pkg - 1 : full;
}

/* A type number with an entry in s_types (7, retired, has none). */
static int s_known(int type)
{
    return type >= 1 && type <= SO_MSG_TYPE_MAX && s_types[type].desc;
}

const char *so_wire_type_name(so_msg_type_t type)
{
    return s_known((int) type) ? s_types[type].name : "unknown";
}

const ProtobufCMessageDescriptor *so_wire_descriptor(so_msg_type_t type)
{
    return s_known((int) type) ? s_types[type].desc : NULL;
}

so_msg_type_t so_wire_type_of(const ProtobufCMessageDescriptor *desc)
{
    for (int t = 1; t <= SO_MSG_TYPE_MAX; t++)
        if (desc && s_types[t].desc == desc)
            return (so_msg_type_t) t;
    return SO_MSG_ANY;
}

void so_wire_header(so_msg_type_t type, uint8_t hdr[SO_WIRE_HDR_LEN])
{
    hdr[0] = SO_WIRE_MAGIC0;
    hdr[1] = SO_WIRE_MAGIC1;
    hdr[2] = SO_WIRE_VERSION;
    hdr[3] = (uint8_t) type;
}

int so_wire_parse_header(const void *hdr, size_t hdr_len, so_msg_type_t *type_out, char *err,
                         size_t errlen)
{
    const uint8_t *h = hdr;
    if (hdr_len != SO_WIRE_HDR_LEN || !h)
        return so_err(err, errlen, "header frame is %zu bytes (want %d)", hdr_len,
                      SO_WIRE_HDR_LEN);
    if (h[0] != SO_WIRE_MAGIC0 || h[1] != SO_WIRE_MAGIC1)
        return so_err(err, errlen, "bad magic 0x%02x 0x%02x (want \"SO\")", h[0], h[1]);
    if (h[2] != SO_WIRE_VERSION)
        return so_err(err, errlen, "protocol version %u unsupported (want %d)", h[2],
                      SO_WIRE_VERSION);
    if (!s_known(h[3]))
        return so_err(err, errlen, "unknown message type %u", h[3]);
    if (type_out)
        *type_out = (so_msg_type_t) h[3];
    return 0;
}

/* ------------------------------------------------------------------------
 * Encode / decode.
 */

static int s_encode_size(so_msg_type_t type, const void *msg, size_t *size, char *err,
                         size_t errlen)
{
    if (so_wire_validate(type, msg, err, errlen) != 0)
        return -1;
    *size = protobuf_c_message_get_packed_size(msg);
    if (*size > SO_WIRE_MAX_BODY)
        return so_err(err, errlen, "%s: body %zu bytes exceeds limit %u", so_wire_type_name(type),
                      *size, SO_WIRE_MAX_BODY);
    return 0;
}

int so_wire_encode(so_msg_type_t type, const void *msg, uint8_t hdr[SO_WIRE_HDR_LEN],
                   uint8_t **body_out, size_t *body_len, char *err, size_t errlen)
{
    size_t size;
    *body_out = NULL;
    *body_len = 0;
    if (s_encode_size(type, msg, &size, err, errlen) != 0)
        return -1;
    uint8_t *buf = so_malloc(size);
    size_t packed = protobuf_c_message_pack(msg, buf);
    if (packed != size) {
        free(buf);
        return so_err(err, errlen, "%s: packed %zu bytes, expected %zu", so_wire_type_name(type),
                      packed, size);
    }
    so_wire_header(type, hdr);
    *body_out = buf;
    *body_len = size;
    return 0;
}

int so_wire_pack_zmq(so_msg_type_t type, const void *msg, zmq_msg_t *hdr, zmq_msg_t *body,
                     char *err, size_t errlen)
{
    size_t size;
    if (s_encode_size(type, msg, &size, err, errlen) != 0)
        return -1;
    if (zmq_msg_init_size(body, size) != 0)
        return so_err(err, errlen, "zmq_msg_init_size: %s", zmq_strerror(errno));
    if (zmq_msg_init_size(hdr, SO_WIRE_HDR_LEN) != 0) {
        int e = errno;
        zmq_msg_close(body);
        return so_err(err, errlen, "zmq_msg_init_size: %s", zmq_strerror(e));
    }
    size_t packed = size ? protobuf_c_message_pack(msg, zmq_msg_data(body)) : 0;
    if (packed != size) {
        zmq_msg_close(hdr);
        zmq_msg_close(body);
        return so_err(err, errlen, "%s: packed %zu bytes, expected %zu", so_wire_type_name(type),
                      packed, size);
    }
    so_wire_header(type, zmq_msg_data(hdr));
    return 0;
}

int so_wire_decode(const void *hdr, size_t hdr_len, const void *body, size_t body_len,
                   so_msg_type_t expect, void **msg_out, char *err, size_t errlen)
{
    so_msg_type_t type = SO_MSG_ANY;
    *msg_out = NULL;
    if (so_wire_parse_header(hdr, hdr_len, &type, err, errlen) != 0)
        return -1;
    if (expect != SO_MSG_ANY && type != expect)
        return so_err(err, errlen, "expected %s, got %s", so_wire_type_name(expect),
                      so_wire_type_name(type));
    const char *name = so_wire_type_name(type);
    if (body_len > SO_WIRE_MAX_BODY)
        return so_err(err, errlen, "%s: body %zu bytes exceeds limit %u", name, body_len,
                      SO_WIRE_MAX_BODY);
    if (body_len && !body)
        return so_err(err, errlen, "%s: NULL body", name);

    if (so_wire_scan(type, body, body_len, err, errlen) != 0)
        return -1;

    static const uint8_t empty[1];
    ProtobufCMessage *m = protobuf_c_message_unpack(s_types[type].desc, NULL, body_len,
                                                    body_len ? body : empty);
    if (!m)
        return so_err(err, errlen,
                      "malformed protobuf (body %zu bytes): %s rejected by protobuf-c", body_len,
                      name);
    if (so_wire_validate(type, m, err, errlen) != 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return -1;
    }
    *msg_out = m;
    return 0;
}

void so_wire_free(so_msg_type_t type, void *msg)
{
    (void) type;
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}

/* ------------------------------------------------------------------------
 * Sockets.
 */

void so_wire_envelope_reset(so_wire_envelope_t *env)
{
    if (env)
        env->n = 0;
}

int so_wire_envelope_push(so_wire_envelope_t *env, const void *data, size_t len)
{
    if (!env || env->n >= SO_WIRE_MAX_ENVELOPE || len > SO_WIRE_MAX_ROUTING_ID || (len && !data))
        return -1;
    if (len)
        memcpy(env->frame[env->n], data, len);
    env->len[env->n++] = len;
    return 0;
}

int so_wire_send(void *sock, const so_wire_envelope_t *env, so_msg_type_t type, const void *msg,
                 int flags, char *err, size_t errlen)
{
    zmq_msg_t hdr, body;
    if (env && env->n > SO_WIRE_MAX_ENVELOPE) {
        errno = EINVAL;
        return so_err(err, errlen, "envelope has %zu frames (limit %d)", env->n,
                      SO_WIRE_MAX_ENVELOPE);
    }
    if (so_wire_pack_zmq(type, msg, &hdr, &body, err, errlen) != 0) {
        errno = EINVAL;
        return -1;
    }
    size_t n = env ? env->n : 0;
    int rc = 0;
    /* libzmq queues a multipart message atomically: HWM and routability are
     * decided on the first frame, so a failure can only come from there
     * (or from ETERM, after which nothing is delivered anyway). */
    for (size_t i = 0; i < n && rc == 0; i++)
        if (zmq_send(sock, env->frame[i], env->len[i], flags | ZMQ_SNDMORE) < 0)
            rc = -1;
    if (rc == 0 && zmq_msg_send(&hdr, sock, flags | ZMQ_SNDMORE) < 0)
        rc = -1;
    if (rc == 0 && zmq_msg_send(&body, sock, flags) < 0)
        rc = -1;
    int e = errno;
    zmq_msg_close(&hdr); /* no-ops after a successful send */
    zmq_msg_close(&body);
    if (rc != 0) {
        errno = e;
        return so_err(err, errlen, "send %s: %s", so_wire_type_name(type), zmq_strerror(e));
    }
    return 0;
}

long so_wire_recv_frames(void *sock, zmq_msg_t parts[SO_WIRE_MAX_FRAMES], size_t *n_kept,
                         int flags, char *err, size_t errlen)
{
    size_t n = 0;
    long total = 0;
    int more = 1;
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *m = n < SO_WIRE_MAX_FRAMES ? &parts[n] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, total == 0 ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(m);
            if (total > 0 && e == EINTR)
                continue; /* the rest of a multipart message is already here */
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            *n_kept = 0;
            errno = e;
            return so_err(err, errlen, "recv: %s", zmq_strerror(e));
        }
        total++;
        more = zmq_msg_more(m);
        if (m == &scratch)
            zmq_msg_close(m);
        else
            n++;
    }
    *n_kept = n;
    return total;
}

int so_wire_recv(void *sock, so_wire_envelope_t *env, so_msg_type_t expect,
                 so_msg_type_t *type_out, void **msg_out, int flags, char *err, size_t errlen)
{
    zmq_msg_t parts[SO_WIRE_MAX_FRAMES];
    size_t n = 0;
    int rc = 0;

    *msg_out = NULL;
    so_wire_envelope_reset(env);
    long got = so_wire_recv_frames(sock, parts, &n, flags, err, errlen);
    if (got < 0)
        return -1;
    size_t total = (size_t) got;
    if (total > SO_WIRE_MAX_FRAMES) {
        rc = so_err(err, errlen, "message has %zu frames (limit %d)", total, SO_WIRE_MAX_FRAMES);
    } else if (total < 2) {
        rc = so_err(err, errlen, "message has %zu frame (want header and body)", total);
    } else if (n > 2 && !env) {
        rc = so_err(err, errlen, "message has %zu envelope frames, none expected", n - 2);
    } else {
        for (size_t i = 0; i + 2 < n && rc == 0; i++)
            if (so_wire_envelope_push(env, zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i])) != 0)
                rc = so_err(err, errlen, "envelope frame %zu is %zu bytes (limit %d)", i,
                            zmq_msg_size(&parts[i]), SO_WIRE_MAX_ROUTING_ID);
        if (rc == 0)
            rc = so_wire_decode(zmq_msg_data(&parts[n - 2]), zmq_msg_size(&parts[n - 2]),
                                zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]), expect,
                                msg_out, err, errlen);
        if (rc == 0 && type_out)
            so_wire_parse_header(zmq_msg_data(&parts[n - 2]), SO_WIRE_HDR_LEN, type_out, NULL, 0);
    }
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    if (rc != 0) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

void so_wire_sockopts_defaults(so_wire_sockopts_t *o)
{
    o->sndhwm = 1000;
    o->rcvhwm = 1000;
    o->linger_ms = 1000;
    o->maxmsgsize = SO_WIRE_MAX_BODY;
    o->heartbeat_ivl_ms = 5000;
    o->heartbeat_timeout_ms = 15000;
    o->heartbeat_ttl_ms = 15000;
    o->router_mandatory = 1;
}

static int s_setopt(void *sock, int opt, const char *name, const void *val, size_t len, char *err,
                    size_t errlen)
{
    if (zmq_setsockopt(sock, opt, val, len) != 0) {
        int e = errno;
        so_err(err, errlen, "zmq_setsockopt %s: %s", name, zmq_strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

int so_wire_set_sockopts(void *sock, const so_wire_sockopts_t *opts, char *err, size_t errlen)
{
    so_wire_sockopts_t d;
    if (!opts) {
        so_wire_sockopts_defaults(&d);
        opts = &d;
    }
#define S_SET(opt, field) \
    S_TRY(s_setopt(sock, opt, #opt, &opts->field, sizeof opts->field, err, errlen))
    S_SET(ZMQ_SNDHWM, sndhwm);
    S_SET(ZMQ_RCVHWM, rcvhwm);
    S_SET(ZMQ_LINGER, linger_ms);
    S_SET(ZMQ_MAXMSGSIZE, maxmsgsize);
    S_SET(ZMQ_HEARTBEAT_IVL, heartbeat_ivl_ms);
    S_SET(ZMQ_HEARTBEAT_TIMEOUT, heartbeat_timeout_ms);
    S_SET(ZMQ_HEARTBEAT_TTL, heartbeat_ttl_ms);
#undef S_SET
    int type = 0;
    size_t len = sizeof type;
    if (zmq_getsockopt(sock, ZMQ_TYPE, &type, &len) != 0) {
        int e = errno;
        so_err(err, errlen, "zmq_getsockopt ZMQ_TYPE: %s", zmq_strerror(e));
        errno = e;
        return -1;
    }
    if (type == ZMQ_ROUTER)
        S_TRY(s_setopt(sock, ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY",
                       &opts->router_mandatory, sizeof opts->router_mandatory, err, errlen));
    return 0;
}
