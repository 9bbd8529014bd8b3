/*
 * Tests for the start-up and shut-down the request/reply services share
 * (so_server_svc_* in common/wire/so_server.h): the config keys and their
 * defaults, a refused value, a bind failure and the exit codes of
 * so_server_svc_start, and a bind-run-close cycle that answers one request
 * and stops on so_request_stop.
 */
#include "so_test_util.h"
#include "base/so_svc.h"
#include "wire/so_server.h"
#include "wire/so_sock.h"

#include <zmq.h>

static void test_svc_config(void **state)
{
    (void) state;
    char err[256] = "";
    so_server_svc_t s;
    so_config_t *cfg = so_config_new("test-so-server");
    assert_int_equal(so_server_svc_config(&s, cfg, "tcp://127.0.0.1:5999", err, sizeof err), 0);
    assert_string_equal(s.endpoint, "tcp://127.0.0.1:5999");
    assert_int_equal(s.stats_ms, 10000);
    assert_int_equal(s.drain_ms, 2000);
    assert_int_equal(s.zmq.sndhwm, 1000);
    assert_null(s.ctx);
    assert_null(s.sock);

    so_config_set(cfg, "endpoint", "inproc://x");
    so_config_set(cfg, "stats_ms", "0");
    so_config_set(cfg, "drain_ms", "50");
    so_config_set(cfg, "zmq.rcvhwm", "7");
    assert_int_equal(so_server_svc_config(&s, cfg, "tcp://127.0.0.1:5999", err, sizeof err), 0);
    assert_string_equal(s.endpoint, "inproc://x");
    assert_int_equal(s.stats_ms, 0);
    assert_int_equal(s.drain_ms, 50);
    assert_int_equal(s.zmq.rcvhwm, 7);

    so_config_set(cfg, "drain_ms", "-1");
    assert_int_equal(so_server_svc_config(&s, cfg, "tcp://127.0.0.1:5999", err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "drain_ms");
    so_config_destroy(&cfg);
}

static void test_svc_bind_failed(void **state)
{
    (void) state;
    char err[256] = "";
    so_server_svc_t s;
    so_config_t *cfg = so_config_new("test-so-server");
    so_config_set(cfg, "endpoint", "bogus://nowhere");
    assert_int_equal(so_server_svc_config(&s, cfg, "tcp://127.0.0.1:5999", err, sizeof err), 0);
    assert_int_equal(so_server_svc_bind(&s), -1); /* logged as bind_failed */
    assert_null(s.ctx);
    assert_null(s.sock);
    assert_int_equal(so_server_svc_start(&s, 1, ""), 1);            /* bind failed */
    assert_int_equal(so_server_svc_start(&s, 0, "lambda: bad"), 2); /* config */
    assert_null(s.ctx);
    so_config_destroy(&cfg);
}

/* Answers every TurnRequest with an error TurnReply, then asks the loop to
 * stop. */
static so_server_result_t s_handle(void *arg, void *sock, const so_wire_envelope_t *env,
                                   void *msg)
{
    char err[256];
    int *handled = arg;
    const so_pb_turn_request_t *t = msg;
    (*handled)++;
    so_request_stop();
    return so_sock_send_error(sock, env, t->request_id, t->episode_id, SO_ERR(INTERNAL), "test",
                              err, sizeof err) == 0
               ? SO_SERVER_ERROR_REPLY
               : SO_SERVER_NO_REPLY;
}

static void test_svc_run(void **state)
{
    (void) state;
    char err[256] = "";
    so_server_svc_t s;
    so_config_t *cfg = so_config_new("test-so-server");
    so_config_set(cfg, "stats_ms", "0");
    so_config_set(cfg, "drain_ms", "100");
    assert_int_equal(so_server_svc_config(&s, cfg, "tcp://127.0.0.1:*", err, sizeof err), 0);
    assert_int_equal(so_server_svc_bind(&s), 0);
    assert_non_null(s.ctx);
    assert_non_null(s.sock);
    char endpoint[256];
    size_t len = sizeof endpoint;
    assert_int_equal(zmq_getsockopt(s.sock, ZMQ_LAST_ENDPOINT, endpoint, &len), 0);

    /* a client in a context of its own queues one request before the loop
     * runs; the handler answers it and stops the loop */
    void *cctx = zmq_ctx_new();
    void *c = zmq_socket(cctx, ZMQ_DEALER);
    int linger = 0, timeout = 5000;
    zmq_setsockopt(c, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_connect(c, endpoint), 0);
    so_pb_chat_message_t chat = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT, *chatp = &chat;
    chat.role = "user";
    so_pb_turn_request_t t = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    t.request_id = "r-1";
    t.episode_id = "e-1";
    t.n_messages = 1;
    t.messages = &chatp;
    assert_int_equal(so_wire_send(c, NULL, SO_MSG_TURN_REQUEST, &t, 0, err, sizeof err), 0);
    int handled = 0;
    so_server_opts_t o = {
        .expect = SO_MSG_TURN_REQUEST, .handle = s_handle, .arg = &handled, .stats_ms = 12345
    };
    assert_int_equal(so_server_svc_run(&s, &o), 0);
    assert_int_equal(handled, 1);
    assert_int_equal(o.stats_ms, 0); /* from the service's config */
    assert_int_equal(o.drain_ms, 100);
    assert_null(s.sock);
    assert_null(s.ctx);

    so_pb_turn_reply_t *rep = NULL;
    assert_int_equal(so_wire_recv(c, NULL, SO_MSG_TURN_REPLY, NULL, (void **) &rep, 0, err,
                                  sizeof err),
                     0);
    assert_string_equal(rep->request_id, "r-1");
    assert_int_equal(rep->error->code, SO_ERR(INTERNAL));
    so_wire_free(SO_MSG_TURN_REPLY, rep);
    zmq_close(c);
    zmq_ctx_term(cctx);
    so_config_destroy(&cfg);
}

int main(void)
{
    so_log_open("test_so_server", SO_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svc_config),
        cmocka_unit_test(test_svc_bind_failed),
        cmocka_unit_test(test_svc_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
