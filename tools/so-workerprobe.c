/*
 * so-workerprobe — stands in for the gateway's worker endpoint to exercise
 * one agent-worker: binds a ROUTER, waits for the worker's READY, sends one
 * AgentCall per AGENT argument (all at once), heartbeats like the gateway
 * and prints one JSON line per event:
 *
 *   {"event":"ready","worker_id":..,"capacity":N}
 *   {"event":"result","request_id":"r1","agent_id":..,"text":..,"prompt_tokens":N,
 *    "completion_tokens":N,"cost_usd":X,"latency_s":X,"error_code":"NONE"|"TIMEOUT"|..,
 *    "error":"..","heartbeats":N}      (heartbeats: worker HEARTBEATs seen since the
 *                                       calls went out)
 *   {"event":"done","results":N,"heartbeats":N}
 *
 *   so-workerprobe --bind EP [--prompt TEXT] [--deadline-ms N] [--heartbeat-ms N]
 *                  [--timeout-ms N] [--model M] AGENT[@DEADLINE_MS]...
 *
 * Exit status: 0 every call answered (whatever the answers say); 2 usage;
 * 3 no READY or not every answer within --timeout-ms (default 30000).
 * Used by tests/integration/test_worker_live.sh; also handy to check a live
 * worker's configuration against real providers by hand.
 */
#include "wire/so_sock.h"
#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Skillorchestra__V1__AgentCall s_call_t;
typedef Skillorchestra__V1__AgentResult s_result_t;

#define S_MAX_CALLS 256

static const char *s_code_name(int code)
{
    static const char *names[] = { "NONE", "INVALID_REQUEST", "TIMEOUT", "UPSTREAM",
                                   "RATE_LIMITED", "BUDGET_EXHAUSTED", "NO_ELIGIBLE_AGENT",
                                   "CONTEXT_TOO_LONG", "UNAVAILABLE", "INTERNAL",
                                   "UNKNOWN_HANDBOOK" };
    return code >= 0 && code < (int) (sizeof names / sizeof *names) ? names[code] : "UNKNOWN";
}

static void s_print(json_t *o)
{
    char *line = json_dumps(o, JSON_COMPACT);
    if (line) {
        printf("%s\n", line);
        fflush(stdout);
        free(line);
    }
    json_decref(o);
}

static int s_usage(void)
{
    fprintf(stderr, "usage: so-workerprobe --bind EP [--prompt TEXT] [--deadline-ms N] "
                    "[--heartbeat-ms N] [--timeout-ms N] [--model M] AGENT[@DEADLINE_MS]...\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *bind = NULL, *prompt = "hello", *model = "";
    long deadline_ms = 10000, heartbeat_ms = 200, timeout_ms = 30000;
    char *agents[S_MAX_CALLS];
    long deadlines[S_MAX_CALLS];
    int n_calls = 0;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        int more = a + 1 < argc;
        if (strcmp(arg, "--bind") == 0 && more)
            bind = argv[++a];
        else if (strcmp(arg, "--prompt") == 0 && more)
            prompt = argv[++a];
        else if (strcmp(arg, "--model") == 0 && more)
            model = argv[++a];
        else if (strcmp(arg, "--deadline-ms") == 0 && more)
            deadline_ms = strtol(argv[++a], NULL, 10);
        else if (strcmp(arg, "--heartbeat-ms") == 0 && more)
            heartbeat_ms = strtol(argv[++a], NULL, 10);
        else if (strcmp(arg, "--timeout-ms") == 0 && more)
            timeout_ms = strtol(argv[++a], NULL, 10);
        else if (arg[0] == '-')
            return s_usage();
        else if (n_calls < S_MAX_CALLS)
            agents[n_calls++] = argv[a];
    }
    if (!bind || n_calls == 0 || heartbeat_ms <= 0 || timeout_ms <= 0 || deadline_ms < 0
        || deadline_ms > (long) SO_WIRE_MAX_DEADLINE_MS)
        return s_usage();
    for (int i = 0; i < n_calls; i++) {
        char *at = strchr(agents[i], '@');
        deadlines[i] = deadline_ms;
        if (at) {
            *at = '\0';
            deadlines[i] = strtol(at + 1, NULL, 10);
        }
    }
    so_log_open("workerprobe", SO_LOG_WARN);

    char err[512];
    so_wire_sockopts_t opts;
    so_wire_sockopts_defaults(&opts);
    void *ctx = zmq_ctx_new();
    void *sock = so_sock_new(ctx, ZMQ_ROUTER, &opts, bind, 1, 0, err, sizeof err);
    if (!sock) {
        fprintf(stderr, "so-workerprobe: bind %s: %s\n", bind, err);
        zmq_ctx_term(ctx);
        return 2;
    }
    int64_t give_up = so_now_ms() + timeout_ms;
    int64_t next_hb = 0;
    so_wire_envelope_t worker;
    memset(&worker, 0, sizeof worker);
    int ready = 0, results = 0, heartbeats = 0;
    int rc = 3;
    while (so_now_ms() < give_up) {
        int64_t now = so_now_ms();
        if (ready && now >= next_hb) {
            so_ctl_send(sock, &worker, SO_CTL_HEARTBEAT, 0, NULL);
            next_hb = now + heartbeat_ms;
        }
        zmq_pollitem_t item = { sock, 0, ZMQ_POLLIN, 0 };
        long wait = ready ? (long) (next_hb - now) : 50;
        if (zmq_poll(&item, 1, wait > 0 ? wait : 0) <= 0)
            continue;
        so_wire_envelope_t env;
        memset(&env, 0, sizeof env);
        so_ctl_t ctl;
        so_msg_type_t type = SO_MSG_ANY;
        void *msg = NULL;
        int got = so_sock_recv_mixed(sock, 1, &env, &ctl, &type, &msg, err, sizeof err);
        if (got < 0) {
            if (errno == EPROTO)
                fprintf(stderr, "so-workerprobe: rejected a message: %s\n", err);
            continue;
        }
        if (got == 1) {
            if (ctl.cmd == SO_CTL_READY && !ready) {
                worker = env;
                ready = 1;
                s_print(json_pack("{s:s, s:s, s:i}", "event", "ready", "worker_id",
                                  ctl.worker_id, "capacity", (int) ctl.capacity));
                for (int i = 0; i < n_calls; i++) {
                    s_call_t call = SKILLORCHESTRA__V1__AGENT_CALL__INIT;
                    Skillorchestra__V1__ChatMessage m = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT;
                    Skillorchestra__V1__ChatMessage *mp = &m;
                    char rid[32];
                    snprintf(rid, sizeof rid, "r%d", i + 1);
                    m.role = "user";
                    m.content = (char *) prompt;
                    call.request_id = rid;
                    call.episode_id = "ep-probe";
                    call.agent_id = agents[i];
                    call.model = (char *) model;
                    call.messages = &mp;
                    call.n_messages = 1;
                    call.deadline_ms = (uint32_t) deadlines[i];
                    if (so_wire_send(sock, &worker, SO_MSG_AGENT_CALL, &call, 0, err,
                                     sizeof err) != 0) {
                        fprintf(stderr, "so-workerprobe: send %s: %s\n", rid, err);
                        goto out;
                    }
                }
                next_hb = so_now_ms() + heartbeat_ms;
            } else if (ctl.cmd == SO_CTL_HEARTBEAT && ready) {
                heartbeats++;
            } else if (ctl.cmd == SO_CTL_HEARTBEAT) {
                /* A worker that registered with an earlier gateway: ask it
                 * to register again, as the gateway does. */
                so_ctl_send(sock, &env, SO_CTL_DISCONNECT, 0, NULL);
            }
            continue;
        }
        if (type == SO_MSG_AGENT_RESULT) {
            const s_result_t *r = msg;
            int code = r->error ? (int) r->error->code : 0;
            s_print(json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:f, s:f, s:s, s:s, s:i}",
                              "event", "result", "request_id", r->request_id, "agent_id",
                              r->agent_id, "text", r->text ? r->text : "", "prompt_tokens",
                              (int) r->prompt_tokens, "completion_tokens",
                              (int) r->completion_tokens, "cost_usd", r->cost_usd, "latency_s",
                              r->latency_s, "error_code", s_code_name(code), "error",
                              r->error && r->error->message ? r->error->message : "",
                              "heartbeats", heartbeats));
            if (++results == n_calls) {
                rc = 0;
                so_wire_free(type, msg);
                break;
            }
        }
        so_wire_free(type, msg);
    }
out:
    if (rc != 0)
        fprintf(stderr, "so-workerprobe: %s within %ld ms (%d of %d results)\n",
                ready ? "not every call answered" : "no READY", timeout_ms, results, n_calls);
    s_print(json_pack("{s:s, s:i, s:i}", "event", "done", "results", results, "heartbeats",
                      heartbeats));
    so_sock_close(&sock);
    zmq_ctx_term(ctx);
    return rc;
}
