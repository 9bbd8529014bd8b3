/*
 * so_sock — see so_sock.h.
 */
#include "wire/so_sock.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int so_sock_opts(const so_config_t *cfg, so_wire_sockopts_t *opts, char *err, size_t errlen)
{
    long v;
    so_wire_sockopts_defaults(opts);
#define S_OPT(key, field, min, max) \
    do { \
        if (so_config_long(cfg, key, (long) opts->field, min, max, &v, err, errlen) != 0) \
            return -1; \
        opts->field = (int) v; \
    } while (0)
    S_OPT("zmq.sndhwm", sndhwm, 0, 10000000);
    S_OPT("zmq.rcvhwm", rcvhwm, 0, 10000000);
    S_OPT("zmq.linger_ms", linger_ms, 0, 600000);
    S_OPT("zmq.heartbeat_ivl_ms", heartbeat_ivl_ms, 0, 3600000);
    S_OPT("zmq.heartbeat_timeout_ms", heartbeat_timeout_ms, 0, 3600000);
    S_OPT("zmq.heartbeat_ttl_ms", heartbeat_ttl_ms, 0, 6553500);
#undef S_OPT
    if (so_config_long(cfg, "zmq.maxmsgsize", (long) opts->maxmsgsize, 1024,
                       (long) SO_WIRE_MAX_BODY + 65536, &v, err, errlen) != 0)
        return -1;
    opts->maxmsgsize = v;
    return 0;
}

void so_sock_close(void **sock_p)
{
    if (sock_p && *sock_p) {
        zmq_close(*sock_p);
        *sock_p = NULL;
    }
}

void *so_sock_new(void *ctx, int type, const so_wire_sockopts_t *opts, const char *endpoints,
                  int bind, int immediate, char *err, size_t errlen)
{
    void *sock = zmq_socket(ctx, type);
    if (!sock) {
        so_err(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    if (so_wire_set_sockopts(sock, opts, err, errlen) != 0) {
        zmq_close(sock);
        return NULL;
    }
    if (immediate) {
        int one = 1;
        if (zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof one) != 0) {
            so_err(err, errlen, "zmq_setsockopt ZMQ_IMMEDIATE: %s", zmq_strerror(errno));
            zmq_close(sock);
            return NULL;
        }
    }
    char *list = so_strdup(endpoints ? endpoints : "");
    int n = 0, rc = 0;
    char *save = NULL;
    for (char *ep = strtok_r(list, ", ", &save); ep && rc == 0;
         ep = strtok_r(NULL, ", ", &save)) {
        rc = bind ? zmq_bind(sock, ep) : zmq_connect(sock, ep);
        if (rc != 0)
            so_err(err, errlen, "%s %s: %s", bind ? "bind" : "connect", ep, zmq_strerror(errno));
        n++;
    }
    free(list);
    if (rc == 0 && n == 0)
        rc = so_err(err, errlen, "no endpoint given");
    if (rc != 0) {
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

int so_sock_send_error(void *sock, const so_wire_envelope_t *env, const char *request_id,
                       const char *episode_id, so_pb_error_code_t code, const char *message,
                       char *err, size_t errlen)
{
    so_pb_turn_reply_t rep = SKILLORCHESTRA__V1__TURN_REPLY__INIT;
    so_pb_error_t e = SKILLORCHESTRA__V1__ERROR__INIT;
    char msg[SO_WIRE_MAX_NOTE];
    /* The message may quote what a peer sent: keep it within the limit and
     * on a character boundary so the reply itself validates. */
    so_text_fmt_utf8(msg, sizeof msg, "%s", message ? message : "");
    e.code = code;
    e.message = msg;
    rep.request_id = (char *) (request_id && *request_id ? request_id : "invalid");
    rep.episode_id = (char *) (episode_id ? episode_id : "");
    rep.error = &e;
    int rc = so_wire_send(sock, env, SO_MSG_TURN_REPLY, &rep, ZMQ_DONTWAIT, err, errlen);
    if (rc != 0 && errno == EINVAL) {
        /* request_id or the text did not validate (e.g. it quoted bad UTF-8):
         * answer anyway, without the parts we cannot vouch for. */
        rep.request_id = "invalid";
        rep.episode_id = "";
        e.message = "request rejected (details in the service log)";
        rc = so_wire_send(sock, env, SO_MSG_TURN_REPLY, &rep, ZMQ_DONTWAIT, err, errlen);
    }
    return rc;
}

/* ---- Control frames ------------------------------------------------------ */

/* A comma-separated list of ids: 1..128 bytes each, no control characters. */
static int s_agent_list_ok(const char *p, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == ',') {
            if (run == 0)
                return 0;
            run = 0;
        } else if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f || ++run > SO_WIRE_MAX_ID) {
            return 0;
        }
    }
    return run > 0;
}

size_t so_ctl_encode_ex(int cmd, unsigned capacity, const char *worker_id, const char *agents,
                        uint8_t *buf)
{
    buf[0] = 'S';
    buf[1] = 'O';
    buf[2] = 'W';
    buf[3] = (uint8_t) cmd;
    if (cmd == SO_CTL_HEARTBEAT || cmd == SO_CTL_DISCONNECT)
        return SO_CTL_MAGIC_LEN + 1;
    if (cmd != SO_CTL_READY || capacity < 1 || capacity > SO_CTL_MAX_CAPACITY || !worker_id)
        return 0;
    size_t idlen = strlen(worker_id), alen = agents ? strlen(agents) : 0;
    if (idlen < 1 || idlen > SO_WIRE_MAX_ID || alen > SO_CTL_MAX_AGENTS_LEN ||
        (alen > 0 && !s_agent_list_ok(agents, alen)))
        return 0;
    buf[4] = (uint8_t) (capacity >> 8);
    buf[5] = (uint8_t) (capacity & 0xff);
    memcpy(buf + 6, worker_id, idlen);
    if (alen == 0)
        return 6 + idlen;
    buf[6 + idlen] = '\n';
    memcpy(buf + 7 + idlen, agents, alen);
    return 7 + idlen + alen;
}

size_t so_ctl_encode(int cmd, unsigned capacity, const char *worker_id, uint8_t *buf)
{
    return so_ctl_encode_ex(cmd, capacity, worker_id, NULL, buf);
}

int so_ctl_decode(const void *frame, size_t len, so_ctl_t *out, char *err, size_t errlen)
{
    const uint8_t *p = frame;
    memset(out, 0, sizeof *out);
    if (len < SO_CTL_MAGIC_LEN + 1 || p[0] != 'S' || p[1] != 'O' || p[2] != 'W')
        return so_err(err, errlen, "control frame of %zu bytes without the \"SOW\" magic", len);
    out->cmd = p[3];
    switch (out->cmd) {
    case SO_CTL_HEARTBEAT:
    case SO_CTL_DISCONNECT:
        if (len != SO_CTL_MAGIC_LEN + 1)
            return so_err(err, errlen, "%s: %zu unexpected payload bytes",
                          out->cmd == SO_CTL_HEARTBEAT ? "HEARTBEAT" : "DISCONNECT", len - 4);
        return 0;
    case SO_CTL_READY: {
        if (len < 7 || len > SO_CTL_MAX_LEN)
            return so_err(err, errlen, "READY: %zu bytes (want 7..%d)", len, SO_CTL_MAX_LEN);
        out->capacity = ((unsigned) p[4] << 8) | p[5];
        if (out->capacity < 1 || out->capacity > SO_CTL_MAX_CAPACITY)
            return so_err(err, errlen, "READY: capacity %u out of range [1, %d]", out->capacity,
                          SO_CTL_MAX_CAPACITY);
        const uint8_t *nl = memchr(p + 6, '\n', len - 6);
        size_t idlen = nl ? (size_t) (nl - (p + 6)) : len - 6;
        if (idlen < 1 || idlen > SO_WIRE_MAX_ID)
            return so_err(err, errlen, "READY: worker id of %zu bytes (want 1..%d)", idlen,
                          SO_WIRE_MAX_ID);
        for (size_t i = 6; i < 6 + idlen; i++)
            if (p[i] < 0x20 || p[i] == 0x7f)
                return so_err(err, errlen, "READY: control character in the worker id");
        memcpy(out->worker_id, p + 6, idlen);
        out->worker_id[idlen] = '\0';
        if (nl) {
            size_t alen = len - 7 - idlen;
            if (alen > SO_CTL_MAX_AGENTS_LEN || !s_agent_list_ok((const char *) nl + 1, alen))
                return so_err(err, errlen,
                              "READY: malformed agent list (want comma-separated "
                              "ids of 1..%d bytes, %d bytes in all)",
                              SO_WIRE_MAX_ID, SO_CTL_MAX_AGENTS_LEN);
            memcpy(out->agents, nl + 1, alen);
            out->agents[alen] = '\0';
        }
        return 0;
    }
    default: return so_err(err, errlen, "unknown control command %d", out->cmd);
    }
}

static int s_ctl_send(void *sock, const so_wire_envelope_t *env, int cmd, unsigned capacity,
                      const char *worker_id, const char *agents)
{
    uint8_t buf[SO_CTL_MAX_LEN];
    size_t len = so_ctl_encode_ex(cmd, capacity, worker_id, agents, buf);
    if (len == 0) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; env && i < env->n; i++)
        if (zmq_send(sock, env->frame[i], env->len[i], ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0)
            return -1;
    return zmq_send(sock, buf, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

int so_ctl_send(void *sock, const so_wire_envelope_t *env, int cmd, unsigned capacity,
                const char *worker_id)
{
    return s_ctl_send(sock, env, cmd, capacity, worker_id, NULL);
}

int so_ctl_send_ready(void *sock, const so_wire_envelope_t *env, unsigned capacity,
                      const char *worker_id, const char *agents)
{
    return s_ctl_send(sock, env, SO_CTL_READY, capacity, worker_id, agents);
}

int so_sock_recv_mixed(void *sock, size_t env_frames, so_wire_envelope_t *env, so_ctl_t *ctl,
                       so_msg_type_t *type_out, void **msg_out, char *err, size_t errlen)
{
    zmq_msg_t parts[SO_WIRE_MAX_FRAMES];
    size_t n = 0;
    int rc = 0;

    *msg_out = NULL;
    if (env)
        so_wire_envelope_reset(env);
    long got = so_wire_recv_frames(sock, parts, &n, ZMQ_DONTWAIT, err, errlen);
    if (got < 0)
        return -1;
    size_t total = (size_t) got;

    if (total > SO_WIRE_MAX_FRAMES || env_frames > SO_WIRE_MAX_ENVELOPE) {
        rc = so_err(err, errlen, "message has %zu frames (limit %d)", total, SO_WIRE_MAX_FRAMES);
    } else if (total != env_frames + 1 && total != env_frames + 2) {
        rc = so_err(err, errlen, "message has %zu frames (want %zu or %zu)", total,
                    env_frames + 1, env_frames + 2);
        /* Keep the envelope when it can be one, so the sender can be told. */
        for (size_t i = 0; env && total > env_frames && i < env_frames; i++)
            if (so_wire_envelope_push(env, zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i])) != 0)
                so_wire_envelope_reset(env);
    } else {
        for (size_t i = 0; i < env_frames && rc == 0; i++)
            if (!env ||
                so_wire_envelope_push(env, zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i])) != 0)
                rc = so_err(err, errlen, "envelope frame %zu is %zu bytes (limit %d)", i,
                            zmq_msg_size(&parts[i]), SO_WIRE_MAX_ROUTING_ID);
        if (rc == 0 && total == env_frames + 1) {
            rc = so_ctl_decode(zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]), ctl, err,
                               errlen);
            if (rc == 0)
                rc = 1;
        } else if (rc == 0) {
            rc = so_wire_decode(zmq_msg_data(&parts[n - 2]), zmq_msg_size(&parts[n - 2]),
                                zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]),
                                SO_MSG_ANY, msg_out, err, errlen);
            if (rc == 0 && type_out)
                so_wire_parse_header(zmq_msg_data(&parts[n - 2]), SO_WIRE_HDR_LEN, type_out, NULL,
                                     0);
        }
    }
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    if (rc < 0) {
        errno = EPROTO;
        return -1;
    }
    return rc;
}
