/*
 * Tests for so_wire's socket helpers over real inproc:// sockets: a round
 * trip of every golden message, DEALER/ROUTER envelopes, protocol errors
 * that consume exactly one message, socket options and the envelope type.
 * Run from the repo root.
 */
#include "so_test_wire.h"

static void *s_socket(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    assert_non_null(s);
    so_wire_sockopts_t o;
    so_wire_sockopts_defaults(&o);
    o.linger_ms = 0;
    char err[256];
    assert_int_equal(so_wire_set_sockopts(s, &o, err, sizeof err), 0);
    int timeout = 5000; /* no test waits forever */
    assert_int_equal(zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout), 0);
    assert_int_equal(zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout), 0);
    return s;
}

static void test_pair_roundtrip(void **state)
{
    void *ctx = zmq_ctx_new();
    void *a = s_socket(ctx, ZMQ_PAIR), *b = s_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://so-wire-pair"), 0);
    assert_int_equal(zmq_connect(b, "inproc://so-wire-pair"), 0);
    char err[256];

    for (size_t g = 0; g < N_GOLDEN; g++) {
        uint8_t *file;
        size_t len;
        void *m = s_golden_decode(s_golden[g].file, s_golden[g].type, &file, &len);
        assert_int_equal(so_wire_send(a, NULL, s_golden[g].type, m, 0, err, sizeof err), 0);
        void *got = NULL;
        so_msg_type_t type = SO_MSG_ANY;
        if (so_wire_recv(b, NULL, SO_MSG_ANY, &type, &got, 0, err, sizeof err) != 0) {
            print_error("recv %s: %s\n", s_golden[g].file, err);
            fail();
        }
        assert_int_equal(type, s_golden[g].type);
        s_assert_reencodes(type, got, file, len);
        so_wire_free(type, got);
        so_wire_free(s_golden[g].type, m);
        free(file);
    }

    /* nothing waiting */
    void *got = (void *) 1;
    assert_int_equal(so_wire_recv(b, NULL, SO_MSG_ANY, NULL, &got, ZMQ_DONTWAIT, err, sizeof err),
                     -1);
    assert_int_equal(errno, EAGAIN);
    assert_null(got);

    /* an invalid message is refused at the sender */
    so_pb_episode_outcome_t h = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
    assert_int_equal(so_wire_send(a, NULL, SO_MSG_EPISODE_OUTCOME, &h, 0, err, sizeof err), -1);
    assert_int_equal(errno, EINVAL);
    assert_string_equal(err, "EpisodeOutcome.episode_id: empty (required)");

    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

static void test_dealer_router(void **state)
{
    void *ctx = zmq_ctx_new();
    void *router = s_socket(ctx, ZMQ_ROUTER), *dealer = s_socket(ctx, ZMQ_DEALER);
    assert_int_equal(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "gw-1", 4), 0);
    assert_int_equal(zmq_bind(router, "inproc://so-wire-router"), 0);
    assert_int_equal(zmq_connect(dealer, "inproc://so-wire-router"), 0);
    char err[256];
    uint8_t *file;
    size_t len;

    /* DEALER -> ROUTER: the routing id comes back as the envelope */
    so_pb_turn_request_t *req = s_golden_decode("turn_request", SO_MSG_TURN_REQUEST, &file, &len);
    assert_int_equal(so_wire_send(dealer, NULL, SO_MSG_TURN_REQUEST, req, 0, err, sizeof err), 0);
    so_wire_envelope_t env = { 0 };
    so_pb_turn_request_t *got = NULL;
    so_msg_type_t type;
    assert_int_equal(so_wire_recv(router, &env, SO_MSG_TURN_REQUEST, &type, (void **) &got, 0,
                                  err, sizeof err),
                     0);
    assert_int_equal(type, SO_MSG_TURN_REQUEST);
    assert_int_equal(env.n, 1);
    assert_int_equal(env.len[0], 4);
    assert_memory_equal(env.frame[0], "gw-1", 4);
    assert_string_equal(got->request_id, "req-0001");
    so_wire_free(SO_MSG_TURN_REQUEST, got);
    so_wire_free(SO_MSG_TURN_REQUEST, req);
    free(file);

    /* ROUTER -> DEALER with that envelope */
    so_pb_turn_reply_t *rep = s_golden_decode("turn_reply", SO_MSG_TURN_REPLY, &file, &len);
    assert_int_equal(so_wire_send(router, &env, SO_MSG_TURN_REPLY, rep, 0, err, sizeof err), 0);
    so_pb_turn_reply_t *rgot = NULL;
    assert_int_equal(so_wire_recv(dealer, NULL, SO_MSG_TURN_REPLY, NULL, (void **) &rgot, 0, err,
                                  sizeof err),
                     0);
    s_assert_reencodes(SO_MSG_TURN_REPLY, rgot, file, len);
    so_wire_free(SO_MSG_TURN_REPLY, rgot);

    /* an unknown routing id fails loudly (ZMQ_ROUTER_MANDATORY) */
    so_wire_envelope_t nobody = { 0 };
    assert_int_equal(so_wire_envelope_push(&nobody, "nobody", 6), 0);
    assert_int_equal(so_wire_send(router, &nobody, SO_MSG_TURN_REPLY, rep, 0, err, sizeof err),
                     -1);
    assert_int_equal(errno, EHOSTUNREACH);
    so_wire_free(SO_MSG_TURN_REPLY, rep);
    free(file);

    /* protocol errors consume exactly one message, keep the envelope, and
     * leave the socket aligned for the next one */
    file = s_read("agent_result", &len);
    uint8_t bad_hdr[4] = { 'S', 'O', 7, SO_MSG_AGENT_RESULT };
    assert_int_equal(zmq_send(dealer, bad_hdr, 4, ZMQ_SNDMORE), 4);
    assert_int_equal(zmq_send(dealer, file + 4, len - 4, 0), (int) (len - 4));
    assert_int_equal(zmq_send(dealer, "lonely", 6, 0), 6); /* 1 frame */
    for (int i = 0; i < SO_WIRE_MAX_ENVELOPE + 3; i++)     /* 11 frames */
        assert_int_equal(zmq_send(dealer, "x", 1, i < SO_WIRE_MAX_ENVELOPE + 2 ? ZMQ_SNDMORE : 0),
                         1);
    assert_int_equal(zmq_send(dealer, file, 4, ZMQ_SNDMORE), 4); /* wrong type */
    assert_int_equal(zmq_send(dealer, file + 4, len - 4, 0), (int) (len - 4));
    assert_int_equal(zmq_send(dealer, file, 4, ZMQ_SNDMORE), 4); /* good */
    assert_int_equal(zmq_send(dealer, file + 4, len - 4, 0), (int) (len - 4));

    void *m = (void *) 1;
    assert_int_equal(so_wire_recv(router, &env, SO_MSG_AGENT_RESULT, NULL, &m, 0, err,
                                  sizeof err),
                     -1);
    assert_int_equal(errno, EPROTO);
    assert_null(m);
    assert_string_equal(err, "protocol version 7 unsupported (want 1)");
    assert_int_equal(env.n, 1);
    assert_memory_equal(env.frame[0], "gw-1", 4);

    assert_int_equal(so_wire_recv(router, &env, SO_MSG_AGENT_RESULT, NULL, &m, 0, err,
                                  sizeof err),
                     -1);
    assert_int_equal(errno, EPROTO);
    assert_string_equal(err, "bad magic 0x67 0x77 (want \"SO\")"); /* [id]["lonely"] */
    assert_int_equal(so_wire_recv(router, &env, SO_MSG_AGENT_RESULT, NULL, &m, 0, err,
                                  sizeof err),
                     -1);
    assert_int_equal(errno, EPROTO);
    assert_string_equal(err, "message has 12 frames (limit 10)");
    assert_int_equal(so_wire_recv(router, &env, SO_MSG_TURN_REQUEST, NULL, &m, 0, err,
                                  sizeof err),
                     -1);
    assert_int_equal(errno, EPROTO);
    assert_string_equal(err, "expected TurnRequest, got AgentResult");
    assert_int_equal(env.n, 1);
    assert_int_equal(so_wire_recv(router, &env, SO_MSG_AGENT_RESULT, NULL, &m, 0, err,
                                  sizeof err),
                     0);
    assert_string_equal(((so_pb_agent_result_t *) m)->worker_id, "worker-a/3");
    so_wire_free(SO_MSG_AGENT_RESULT, m);
    /* a ROUTER message read without an envelope */
    assert_int_equal(zmq_send(dealer, file, 4, ZMQ_SNDMORE), 4);
    assert_int_equal(zmq_send(dealer, file + 4, len - 4, 0), (int) (len - 4));
    assert_int_equal(so_wire_recv(router, NULL, SO_MSG_AGENT_RESULT, NULL, &m, 0, err,
                                  sizeof err),
                     -1);
    assert_int_equal(errno, EPROTO);
    assert_string_equal(err, "message has 1 envelope frames, none expected");
    free(file);

    zmq_close(router);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
}

static void test_sockopts(void **state)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    char err[256];
    assert_int_equal(so_wire_set_sockopts(s, NULL, err, sizeof err), 0);
    int v;
    int64_t v64;
    size_t len = sizeof v;
    assert_int_equal(zmq_getsockopt(s, ZMQ_SNDHWM, &v, &len), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(zmq_getsockopt(s, ZMQ_RCVHWM, &v, &len), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(zmq_getsockopt(s, ZMQ_LINGER, &v, &len), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(zmq_getsockopt(s, ZMQ_HEARTBEAT_IVL, &v, &len), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(zmq_getsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &v, &len), 0);
    assert_int_equal(v, 15000);
    assert_int_equal(zmq_getsockopt(s, ZMQ_HEARTBEAT_TTL, &v, &len), 0);
    assert_int_equal(v, 15000);
    len = sizeof v64;
    assert_int_equal(zmq_getsockopt(s, ZMQ_MAXMSGSIZE, &v64, &len), 0);
    assert_int_equal(v64, SO_WIRE_MAX_BODY);

    so_wire_sockopts_t o;
    so_wire_sockopts_defaults(&o);
    o.sndhwm = -5;
    assert_int_equal(so_wire_set_sockopts(s, &o, err, sizeof err), -1);
    assert_err_contains(err, "ZMQ_SNDHWM");
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static void test_envelope(void **state)
{
    so_wire_envelope_t env = { 0 };
    uint8_t big[SO_WIRE_MAX_ROUTING_ID + 1] = { 0 };
    assert_int_equal(so_wire_envelope_push(&env, big, sizeof big), -1);
    assert_int_equal(so_wire_envelope_push(&env, "", 0), 0);
    for (int i = 1; i < SO_WIRE_MAX_ENVELOPE; i++)
        assert_int_equal(so_wire_envelope_push(&env, "id", 2), 0);
    assert_int_equal(so_wire_envelope_push(&env, "id", 2), -1);
    assert_int_equal(env.n, SO_WIRE_MAX_ENVELOPE);
    so_wire_envelope_reset(&env);
    assert_int_equal(env.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pair_roundtrip),
        cmocka_unit_test(test_dealer_router),
        cmocka_unit_test(test_sockopts),
        cmocka_unit_test(test_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
