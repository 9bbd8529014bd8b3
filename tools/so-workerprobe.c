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
#include "base/so_opts.h"
#include "wire/so_sock.h"
#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_CALLS 256

static const char *s_code_name(int code)
{
    static const char *names[] = {
        "NONE",         "INVALID_REQUEST",  "TIMEOUT",           "UPSTREAM",
        "RATE_LIMITED", "BUDGET_EXHAUSTED", "NO_ELIGIBLE_AGENT", "CONTEXT_TOO_LONG",
        "UNAVAILABLE",  "INTERNAL",         "UNKNOWN_HANDBOOK"
    };
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

static const char s_synopsis[] =
    "so-workerprobe --bind EP [--prompt TEXT] [--deadline-ms N] [--heartbeat-ms N]\n"
    "                      [--timeout-ms N] [--model M] AGENT[@DEADLINE_MS]...";

typedef struct {
    const char *bind, *prompt, *model;
    long deadline_ms, heartbeat_ms, timeout_ms;
    const char *agents[S_MAX_CALLS];
    long deadlines[S_MAX_CALLS];
    int n_calls;
} s_args_t;

/* Each AGENT[@DEADLINE_MS] into its name and deadline. */
static int s_split_agents(s_args_t *a, char **argv_agents)
{
    for (int i = 0; i < a->n_calls; i++) {
        char *at = strchr(argv_agents[i], '@'), *end;
        a->deadlines[i] = a->deadline_ms;
        if (at) {
            *at = '\0';
            a->deadlines[i] = strtol(at + 1, &end, 10);
            if (end == at + 1 || *end) {
                fprintf(stderr, "so-workerprobe: %s: '%s' is not a deadline in ms\n",
                        argv_agents[i], at + 1);
                return 2;
            }
        }
        a->agents[i] = argv_agents[i];
    }
    return -1;
}

/* -1 to go on, else the exit status. */
static int s_parse(int argc, char **argv, s_args_t *a)
{
    so_opt_t opts[] = {
        SO_OPT_STR("bind", 0, &a->bind, "EP", "the endpoint the worker connects to"),
        SO_OPT_STR("prompt", 0, &a->prompt, "TEXT", "the prompt of every call (hello)"),
        SO_OPT_INT("deadline-ms", 0, &a->deadline_ms, "N", 0, SO_WIRE_MAX_DEADLINE_MS,
                   "each call's deadline (10000)"),
        SO_OPT_INT("heartbeat-ms", 0, &a->heartbeat_ms, "N", 1, 1e9, "heartbeat interval (200)"),
        SO_OPT_INT("timeout-ms", 0, &a->timeout_ms, "N", 1, 1e9,
                   "give up waiting after this long (30000)"),
        SO_OPT_STR("model", 0, &a->model, "M", "the model named in every call"),
        SO_OPT_END,
    };
    const char *pos[S_MAX_CALLS];
    so_opts_t p = { opts, pos, S_MAX_CALLS, 0, 0, 0 };
    int code = so_opts_main(&p, argc, argv, "so-workerprobe", s_synopsis,
                            "Exit: 0 every call answered; 2 usage; 3 no READY or not every "
                            "answer in time.\n");
    if (code >= 0)
        return code;
    if (!a->bind || p.n_pos == 0) {
        fprintf(stderr, "so-workerprobe: give --bind and at least one AGENT "
                        "(so-workerprobe --help)\n");
        return 2;
    }
    a->n_calls = (int) p.n_pos;
    return s_split_agents(a, (char **) pos);
}

/* One probe run: the worker, once READY, and what came back. */
typedef struct {
    const s_args_t *a;
    void *sock;
    so_wire_envelope_t worker;
    int ready, results, heartbeats;
    int64_t next_hb;
} s_probe_t;

/* Sends every call to the worker that just said READY.  0, or -1 after a message. */
static int s_send_calls(s_probe_t *p)
{
    char err[512];
    for (int i = 0; i < p->a->n_calls; i++) {
        so_pb_agent_call_t call = SKILLORCHESTRA__V1__AGENT_CALL__INIT;
        so_pb_chat_message_t m = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT;
        so_pb_chat_message_t *mp = &m;
        char rid[32];
        snprintf(rid, sizeof rid, "r%d", i + 1);
        m.role = "user";
        m.content = (char *) p->a->prompt;
        call.request_id = rid;
        call.episode_id = "ep-probe";
        call.agent_id = (char *) p->a->agents[i];
        call.model = (char *) p->a->model;
        call.messages = &mp;
        call.n_messages = 1;
        call.deadline_ms = (uint32_t) p->a->deadlines[i];
        if (so_wire_send(p->sock, &p->worker, SO_MSG_AGENT_CALL, &call, 0, err, sizeof err) !=
            0) {
            fprintf(stderr, "so-workerprobe: send %s: %s\n", rid, err);
            return -1;
        }
    }
    return 0;
}

/* A control frame from env.  0, or -1 when the calls could not go out. */
static int s_on_ctl(s_probe_t *p, const so_wire_envelope_t *env, const so_ctl_t *ctl)
{
    if (ctl->cmd == SO_CTL_READY && !p->ready) {
        p->worker = *env;
        p->ready = 1;
        s_print(json_pack("{s:s, s:s, s:i}", "event", "ready", "worker_id", ctl->worker_id,
                          "capacity", (int) ctl->capacity));
        if (s_send_calls(p) < 0)
            return -1;
        p->next_hb = so_now_ms() + p->a->heartbeat_ms;
    } else if (ctl->cmd == SO_CTL_HEARTBEAT && p->ready) {
        p->heartbeats++;
    } else if (ctl->cmd == SO_CTL_HEARTBEAT) {
        /* A worker that registered with an earlier gateway: ask it to
         * register again, as the gateway does. */
        so_ctl_send(p->sock, env, SO_CTL_DISCONNECT, 0, NULL);
    }
    return 0;
}

static void s_on_result(s_probe_t *p, const so_pb_agent_result_t *r)
{
    int code = r->error ? (int) r->error->code : 0;
    s_print(json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:f, s:f, s:s, s:s, s:i}", "event",
                      "result", "request_id", r->request_id, "agent_id", r->agent_id, "text",
                      r->text ? r->text : "", "prompt_tokens", (int) r->prompt_tokens,
                      "completion_tokens", (int) r->completion_tokens, "cost_usd", r->cost_usd,
                      "latency_s", r->latency_s, "error_code", s_code_name(code), "error",
                      r->error && r->error->message ? r->error->message : "", "heartbeats",
                      p->heartbeats));
    p->results++;
}

/* Waits up to pollms for one message and handles it.  1 when every call
 * was answered, -1 when the calls could not go out, else 0. */
static int s_step(s_probe_t *p, long pollms)
{
    char err[512];
    zmq_pollitem_t item = { p->sock, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&item, 1, pollms > 0 ? pollms : 0) <= 0)
        return 0;
    so_wire_envelope_t env;
    memset(&env, 0, sizeof env);
    so_ctl_t ctl;
    so_msg_type_t type = SO_MSG_ANY;
    void *msg = NULL;
    int got = so_sock_recv_mixed(p->sock, 1, &env, &ctl, &type, &msg, err, sizeof err);
    if (got < 0 && errno == EPROTO)
        fprintf(stderr, "so-workerprobe: rejected a message: %s\n", err);
    if (got < 0)
        return 0;
    if (got == 1)
        return s_on_ctl(p, &env, &ctl);
    if (type == SO_MSG_AGENT_RESULT)
        s_on_result(p, msg);
    so_wire_free(type, msg);
    return p->results == p->a->n_calls ? 1 : 0;
}

/* Heartbeats and messages until every call is answered or time is up:
 * 0, or 3. */
static int s_run(s_probe_t *p)
{
    int64_t give_up = so_now_ms() + p->a->timeout_ms;
    while (so_now_ms() < give_up) {
        int64_t now = so_now_ms();
        if (p->ready && now >= p->next_hb) {
            so_ctl_send(p->sock, &p->worker, SO_CTL_HEARTBEAT, 0, NULL);
            p->next_hb = now + p->a->heartbeat_ms;
        }
        int step = s_step(p, p->ready ? (long) (p->next_hb - now) : 50);
        if (step != 0)
            return step > 0 ? 0 : 3;
    }
    return 3;
}

int main(int argc, char **argv)
{
    s_args_t args = { NULL, "hello", "", 10000, 200, 30000, { 0 }, { 0 }, 0 };
    int code = s_parse(argc, argv, &args);
    if (code >= 0)
        return code;
    so_log_open("workerprobe", SO_LOG_WARN);

    char err[512];
    so_wire_sockopts_t opts;
    so_wire_sockopts_defaults(&opts);
    void *ctx = zmq_ctx_new();
    s_probe_t p = { &args, NULL, { 0 }, 0, 0, 0, 0 };
    p.sock = so_sock_new(ctx, ZMQ_ROUTER, &opts, args.bind, 1, 0, err, sizeof err);
    if (!p.sock) {
        fprintf(stderr, "so-workerprobe: bind %s: %s\n", args.bind, err);
        zmq_ctx_term(ctx);
        return 2;
    }
    int rc = s_run(&p);
    if (rc != 0)
        fprintf(stderr, "so-workerprobe: %s within %ld ms (%d of %d results)\n",
                p.ready ? "not every call answered" : "no READY", args.timeout_ms, p.results,
                args.n_calls);
    s_print(json_pack("{s:s, s:i, s:i}", "event", "done", "results", p.results, "heartbeats",
                      p.heartbeats));
    so_sock_close(&p.sock);
    zmq_ctx_term(ctx);
    return rc;
}
