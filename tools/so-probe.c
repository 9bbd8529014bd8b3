/*
 * so-probe — asks skill-inference and the router about one prompt, the way
 * the gateway does, and prints what they answered; or measures them.
 *
 *   so-probe --infer EP [--route EP] [turn options] [--json] "PROMPT"
 *   so-probe --route EP --version V [turn options] "PROMPT"   (uniform demand)
 *   so-probe --infer EP --route EP --count N [--window W] "PROMPT"   (benchmark)
 *   so-probe --raw-garbage EP                                 (a malformed frame)
 *
 * Exit status: 0 answered; 1 an error reply (printed); 2 usage; 3 no answer
 * within --timeout-ms.  --raw-garbage exits 0 when the service answered the
 * garbage with an error reply, as it should.
 */
#include "base/so_alloc.h"
#include "base/so_opts.h"
#include "wire/so_sock.h"
#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_EXIT_ERROR 1
#define S_EXIT_USAGE 2
#define S_EXIT_TIMEOUT 3

typedef struct {
    const char *infer, *route, *garbage;
    const char *mode, *version, *episode, *profile, *prompt;
    char *exclude; /* comma-separated, split in place */
    double lambda, budget;
    int has_lambda, json, timeout_ms;
    long turn, max_tokens, count, window;
} s_opts_t;

static const char
    s_synopsis[] = "so-probe --infer EP [--route EP] [options] PROMPT\n"
                   "       so-probe --route EP --version V [options] PROMPT   (uniform demand)\n"
                   "       so-probe --raw-garbage EP";

/* What the options ask for, checked together; -1 when it holds, else 2. */
static int s_check(const s_opts_t *o, size_t n_pos)
{
    const char *why = NULL;
    if (n_pos > 1)
        why = "one PROMPT only (quote it)";
    else if (o->garbage)
        return -1;
    else if (!o->infer && !o->route)
        why = "give --infer and/or --route (or --raw-garbage)";
    else if (!o->prompt)
        why = "PROMPT missing";
    else if (!o->infer && !(o->version && *o->version))
        why = "--route without --infer needs --version (the demand's)";
    if (!why)
        return -1;
    fprintf(stderr, "so-probe: %s (so-probe --help)\n", why);
    return S_EXIT_USAGE;
}

/* -1 to go on, else the exit status. */
static int s_parse(int argc, char **argv, s_opts_t *o)
{
    const char *exclude = NULL, *pos[2] = { NULL, NULL };
    long timeout_ms = 5000;
    memset(o, 0, sizeof *o);
    o->episode = "ep-probe";
    o->window = 1;
    so_opt_t opts[] = {
        SO_OPT_STR("infer", 0, &o->infer, "EP",
                   "skill-inference endpoint (tcp://127.0.0.1:5557)"),
        SO_OPT_STR("route", 0, &o->route, "EP", "router endpoint (tcp://127.0.0.1:5558)"),
        SO_OPT_DBL("lambda", 0, &o->lambda, "L", 0, 1e9,
                   "cost trade-off (default: the router's)"),
        SO_OPT_STR("mode", 0, &o->mode, "M", "the turn's mode"),
        SO_OPT_STR("version", 0, &o->version, "V", "pin a handbook version (default: current)"),
        SO_OPT_STR("episode", 0, &o->episode, "ID", "episode id (default ep-probe)"),
        SO_OPT_INT("turn", 0, &o->turn, "N", 0, 4294967295.0, "turn index (0)"),
        SO_OPT_STR("exclude", 0, &exclude, "A,B", "agents not to use"),
        SO_OPT_DBL("budget", 0, &o->budget, "USD", 0, 1e9, "remaining budget (0 = none)"),
        SO_OPT_INT("max-tokens", 0, &o->max_tokens, "N", 0, 4294967295.0,
                   "max completion tokens"),
        SO_OPT_STR("profile", 0, &o->profile, "P", "routing profile"),
        SO_OPT_FLAG("json", 0, &o->json, "print JSON instead of text"),
        SO_OPT_INT("timeout-ms", 0, &timeout_ms, "MS", 1, 3600000,
                   "wait at most this long for each answer (5000)"),
        SO_OPT_INT("count", 0, &o->count, "N", 1, 1e9,
                   "benchmark: N requests to each service given, then rates\n"
                   "and p50/p99 round trips"),
        SO_OPT_INT("window", 0, &o->window, "W", 1, 10000, "benchmark: requests in flight (1)"),
        SO_OPT_STR("raw-garbage", 0, &o->garbage, "EP",
                   "send a malformed message to EP and print the answer"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, pos, 2, 0, 0, 0 };
    int code = so_opts_main(&p, argc, argv, "so-probe", s_synopsis,
                            "Exit: 0 answered, 1 error reply, 2 usage, 3 timeout.\n");
    if (code >= 0)
        return code;
    o->prompt = pos[0];
    o->exclude = (char *) exclude; /* argv's own storage: split in place */
    o->timeout_ms = (int) timeout_ms;
    o->has_lambda = so_opts_seen(&p, "lambda") > 0;
    return s_check(o, p.n_pos);
}

/* ---- Printing -------------------------------------------------------------- */

/* --json: everything goes into one object, printed at exit:
 * {"demand": ..., "decision": ..., "error": ...}. */
static json_t *s_root;

static const char *s_enum(const ProtobufCEnumDescriptor *d, int v, const char *prefix)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    if (!ev)
        return "UNKNOWN";
    size_t n = strlen(prefix);
    return strncmp(ev->name, prefix, n) == 0 ? ev->name + n : ev->name;
}

static const char *s_code_name(int code)
{
    return s_enum(&skillorchestra__v1__error_code__descriptor, code, "ERROR_CODE_");
}

static void s_print_error(const s_opts_t *o, const char *stage, const so_pb_turn_reply_t *r)
{
    int code = r->error ? (int) r->error->code : 0;
    const char *msg = r->error && r->error->message ? r->error->message : "";
    if (o->json) {
        json_object_set_new(s_root, "error",
                            json_pack("{s:s, s:s, s:s, s:s}", "stage", stage, "request_id",
                                      r->request_id, "code", s_code_name(code), "message", msg));
    } else {
        printf("%s error code=%s request_id=%s message=\"%s\"\n", stage, s_code_name(code),
               r->request_id, msg);
    }
}

static void s_print_demand(const s_opts_t *o, const so_pb_skill_demand_t *d)
{
    const char *src = s_enum(&skillorchestra__v1__skill_demand__source__descriptor,
                             (int) d->source, "SOURCE_");
    if (o->json) {
        json_t *sk = json_array();
        for (size_t i = 0; i < d->n_skills; i++)
            json_array_append_new(sk, json_pack("{s:s, s:f}", "skill_id", d->skills[i]->skill_id,
                                                "weight", d->skills[i]->weight));
        json_object_set_new(s_root, "demand",
                            json_pack("{s:s, s:s, s:s, s:o}", "request_id", d->request_id,
                                      "handbook_version", d->handbook_version, "source", src,
                                      "skills", sk));
        return;
    }
    printf("demand request_id=%s version=%s source=%s skills=%zu\n", d->request_id,
           d->handbook_version, src, d->n_skills);
    for (size_t i = 0; i < d->n_skills; i++)
        printf("  skill=%s weight=%.4f\n", d->skills[i]->skill_id, d->skills[i]->weight);
}

static void s_print_decision(const s_opts_t *o, const so_pb_routing_decision_t *d)
{
    const char *strat = s_enum(&skillorchestra__v1__routing_decision__strategy__descriptor,
                               (int) d->strategy, "STRATEGY_");
    if (o->json) {
        json_t *scores = json_array(), *top = json_array();
        for (size_t i = 0; i < d->n_top_skills; i++)
            json_array_append_new(top,
                                  json_pack("{s:s, s:f}", "skill_id", d->top_skills[i]->skill_id,
                                            "weight", d->top_skills[i]->weight));
        for (size_t a = 0; a < d->n_scores; a++) {
            const so_pb_agent_score_t *s = d->scores[a];
            json_t *sk = json_array();
            for (size_t k = 0; k < s->n_skills; k++) {
                const so_pb_skill_competence_t *c = s->skills[k];
                json_array_append_new(sk, json_pack("{s:s, s:f, s:f, s:f, s:f, s:i}", "skill_id",
                                                    c->skill_id, "weight", c->weight,
                                                    "competence", c->competence, "successes",
                                                    c->successes, "attempts", c->attempts,
                                                    "backoff_level", (int) c->backoff_level));
            }
            json_array_append_new(scores,
                                  json_pack("{s:s, s:f, s:f, s:f, s:f, s:b, s:s, s:o}",
                                            "agent_id", s->agent_id, "score", s->score,
                                            "competence", s->competence, "cost_usd", s->cost_usd,
                                            "cost_norm", s->cost_norm, "eligible",
                                            (int) s->eligible, "excluded_reason",
                                            s->excluded_reason, "skills", sk));
        }
        /* The seed as a string: it uses all 64 bits. */
        char seed[24];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long) d->seed);
        json_object_set_new(s_root, "decision",
                            json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:f, s:s, s:s, s:o, s:o}",
                                      "request_id", d->request_id, "episode_id", d->episode_id,
                                      "turn_index", (int) d->turn_index, "handbook_version",
                                      d->handbook_version, "chosen_agent", d->chosen_agent,
                                      "strategy", strat, "lambda", d->lambda, "seed", seed,
                                      "reason", d->reason, "top_skills", top, "scores", scores));
        return;
    }
    printf("decision request_id=%s version=%s chosen=%s strategy=%s lambda=%g seed=%llu\n",
           d->request_id, d->handbook_version, d->chosen_agent, strat, d->lambda,
           (unsigned long long) d->seed);
    printf("  reason: %s\n", d->reason);
    for (size_t i = 0; i < d->n_top_skills; i++)
        printf("  top_skill=%s weight=%.4f\n", d->top_skills[i]->skill_id,
               d->top_skills[i]->weight);
    for (size_t a = 0; a < d->n_scores; a++) {
        const so_pb_agent_score_t *s = d->scores[a];
        printf(
            "  agent=%s eligible=%d score=%.4f competence=%.4f cost_usd=%.6f cost_norm=%.3f%s%s%s\n",
            s->agent_id, (int) s->eligible, s->score, s->competence, s->cost_usd, s->cost_norm,
            s->eligible ? "" : " excluded=\"", s->eligible ? "" : s->excluded_reason,
            s->eligible ? "" : "\"");
        for (size_t k = 0; k < s->n_skills; k++) {
            const so_pb_skill_competence_t *c = s->skills[k];
            printf(
                "    skill=%s weight=%.3f competence=%.4f successes=%.1f attempts=%.1f backoff=%u\n",
                c->skill_id, c->weight, c->competence, c->successes, c->attempts,
                c->backoff_level);
        }
    }
}

/* ---- Talking to a service ------------------------------------------------ */

static void *s_connect(void *ctx, const char *ep)
{
    char err[256];
    so_wire_sockopts_t zo;
    so_wire_sockopts_defaults(&zo);
    zo.linger_ms = 200;
    void *s = so_sock_new(ctx, ZMQ_DEALER, &zo, ep, 0, 0, err, sizeof err);
    if (!s)
        fprintf(stderr, "so-probe: %s\n", err);
    return s;
}

/* Waits for one message until deadline_ms (so_now_ms clock).  Returns 0 with
 * *type and *msg, 1 on timeout, -1 on a socket or decoding error. */
static int s_recv(void *sock, int64_t deadline_ms, so_msg_type_t *type, void **msg)
{
    char err[512];
    for (;;) {
        int64_t left = deadline_ms - so_now_ms();
        if (left <= 0)
            return 1;
        zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };
        int n = zmq_poll(&it, 1, (long) left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 1;
        if (so_wire_recv(sock, NULL, SO_MSG_ANY, type, msg, ZMQ_DONTWAIT, err, sizeof err) == 0)
            return 0;
        if (errno == EAGAIN || errno == EINTR)
            continue;
        fprintf(stderr, "so-probe: bad answer: %s\n", err);
        return -1;
    }
}

static int s_send(void *sock, so_msg_type_t type, const void *msg)
{
    char err[512];
    if (so_wire_send(sock, NULL, type, msg, 0, err, sizeof err) != 0) {
        fprintf(stderr, "so-probe: send: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- The request --------------------------------------------------------- */

typedef struct {
    so_pb_turn_request_t turn;
    so_pb_chat_message_t msg, *msgp;
    char *excl[SO_WIRE_MAX_AGENTS];
    char rid[64];
} s_req_t;

static void s_build(const s_opts_t *o, s_req_t *r)
{
    skillorchestra__v1__turn_request__init(&r->turn);
    skillorchestra__v1__chat_message__init(&r->msg);
    r->msg.role = "user";
    r->msg.content = (char *) o->prompt;
    r->msgp = &r->msg;
    snprintf(r->rid, sizeof r->rid, "probe-%ld-0", (long) getpid());
    r->turn.request_id = r->rid;
    r->turn.episode_id = (char *) o->episode;
    r->turn.turn_index = (uint32_t) o->turn;
    r->turn.mode = (char *) (o->mode ? o->mode : "");
    r->turn.messages = &r->msgp;
    r->turn.n_messages = 1;
    r->turn.budget_usd = o->budget;
    if (o->has_lambda) {
        r->turn.lambda_opt_case = SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA;
        r->turn.lambda = o->lambda;
    }
    r->turn.handbook_version = (char *) (o->version ? o->version : "");
    r->turn.max_completion_tokens = (uint32_t) o->max_tokens;
    r->turn.routing_profile = (char *) (o->profile ? o->profile : "");
    if (o->exclude) {
        char *save = NULL;
        for (char *a = strtok_r(o->exclude, ",", &save);
             a && r->turn.n_exclude_agents < SO_WIRE_MAX_AGENTS; a = strtok_r(NULL, ",", &save))
            r->excl[r->turn.n_exclude_agents++] = a;
        r->turn.exclude_agents = r->excl;
    }
}

/* One round trip; prints the answer.  Returns 0, or the exit status. */
static int s_ask(const s_opts_t *o, void *sock, const char *stage, so_msg_type_t type,
                 const void *req, so_msg_type_t want, void **answer)
{
    so_msg_type_t got;
    void *msg = NULL;
    *answer = NULL;
    if (s_send(sock, type, req) != 0)
        return S_EXIT_ERROR;
    int rc = s_recv(sock, so_now_ms() + o->timeout_ms, &got, &msg);
    if (rc == 1) {
        fprintf(stderr, "so-probe: %s: no answer within %d ms\n", stage, o->timeout_ms);
        return S_EXIT_TIMEOUT;
    }
    if (rc < 0)
        return S_EXIT_ERROR;
    if (got == SO_MSG_TURN_REPLY) {
        s_print_error(o, stage, msg);
        so_wire_free(got, msg);
        return S_EXIT_ERROR;
    }
    if (got != want) {
        fprintf(stderr, "so-probe: %s: unexpected %s\n", stage, so_wire_type_name(got));
        so_wire_free(got, msg);
        return S_EXIT_ERROR;
    }
    *answer = msg;
    return 0;
}

static int s_once(const s_opts_t *o, void *infer, void *route)
{
    s_req_t r;
    s_build(o, &r);
    so_pb_skill_demand_t *dem = NULL, uniform = SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
    int rc;
    if (infer) {
        if ((rc = s_ask(o, infer, "infer", SO_MSG_TURN_REQUEST, &r.turn, SO_MSG_SKILL_DEMAND,
                        (void **) &dem)) != 0)
            return rc;
        s_print_demand(o, dem);
    } else {
        uniform.request_id = r.rid;
        uniform.handbook_version = (char *) o->version;
        uniform.source = SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_UNIFORM_FALLBACK;
    }
    if (route) {
        so_pb_route_request_t rr = SKILLORCHESTRA__V1__ROUTE_REQUEST__INIT;
        so_pb_routing_decision_t *dec = NULL;
        rr.turn = &r.turn;
        rr.demand = dem ? dem : &uniform;
        rc = s_ask(o, route, "route", SO_MSG_ROUTE_REQUEST, &rr, SO_MSG_ROUTING_DECISION,
                   (void **) &dec);
        if (rc == 0)
            s_print_decision(o, dec);
        so_wire_free(SO_MSG_ROUTING_DECISION, dec);
    } else {
        rc = 0;
    }
    so_wire_free(SO_MSG_SKILL_DEMAND, dem);
    return rc;
}

/* ---- Benchmark ----------------------------------------------------------- */

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One benchmark run: what was sent when, and the round trips. */
typedef struct {
    const s_opts_t *o;
    void *sock;
    const char *stage;
    const so_pb_skill_demand_t *demand; /* NULL: TurnRequests */
    s_req_t r;
    so_pb_skill_demand_t dm;
    so_pb_route_request_t rr;
    char ep[64];
    long n, sent, done, errors;
    int64_t *sent_at, *rtt;
} s_bench_t;

/* Sends until --window requests are in flight.  0, or S_EXIT_ERROR. */
static int s_bench_fill(s_bench_t *b)
{
    while (b->sent < b->n && b->sent - b->done < b->o->window) {
        snprintf(b->r.rid, sizeof b->r.rid, "bench-%ld", b->sent);
        snprintf(b->ep, sizeof b->ep, "ep-bench-%ld", b->sent);
        b->sent_at[b->sent] = s_now_us();
        if (s_send(b->sock, b->demand ? SO_MSG_ROUTE_REQUEST : SO_MSG_TURN_REQUEST,
                   b->demand ? (void *) &b->rr : (void *) &b->r.turn) != 0)
            return S_EXIT_ERROR;
        b->sent++;
    }
    return 0;
}

/* An answer: its round trip (request_id "bench-<i>", or "invalid"), and
 * the first error reply printed. */
static void s_bench_take(s_bench_t *b, so_msg_type_t type, void *msg)
{
    const char *id = type == SO_MSG_SKILL_DEMAND ? ((so_pb_skill_demand_t *) msg)->request_id
                     : type == SO_MSG_ROUTING_DECISION
                         ? ((so_pb_routing_decision_t *) msg)->request_id
                         : ((so_pb_turn_reply_t *) msg)->request_id;
    long i = strncmp(id, "bench-", 6) == 0 ? strtol(id + 6, NULL, 10) : -1;
    if (type == SO_MSG_TURN_REPLY && b->errors++ == 0)
        s_print_error(b->o, b->stage, msg);
    if (i >= 0 && i < b->sent)
        b->rtt[b->done] = s_now_us() - b->sent_at[i];
    b->done++;
}

/* Sends and receives until every answer is in.  0, or the exit status. */
static int s_bench_loop(s_bench_t *b)
{
    while (b->done < b->n) {
        if (s_bench_fill(b) != 0)
            return S_EXIT_ERROR;
        so_msg_type_t type;
        void *msg = NULL;
        int k = s_recv(b->sock, so_now_ms() + b->o->timeout_ms, &type, &msg);
        if (k == 1) {
            fprintf(stderr, "so-probe: %s: no answer within %d ms (%ld of %ld answered)\n",
                    b->stage, b->o->timeout_ms, b->done, b->n);
            return S_EXIT_TIMEOUT;
        }
        if (k < 0)
            return S_EXIT_ERROR;
        s_bench_take(b, type, msg);
        so_wire_free(type, msg);
    }
    return 0;
}

/* Sends o->count requests (episode ep-bench-<i>, so every decision has its
 * own seed) with o->window in flight, and prints rate and round trips.
 * demand == NULL: TurnRequests to skill-inference; else RouteRequests. */
static int s_bench(const s_opts_t *o, void *sock, const char *stage,
                   const so_pb_skill_demand_t *demand)
{
    s_bench_t *b = so_calloc(1, sizeof *b);
    b->o = o;
    b->sock = sock;
    b->stage = stage;
    b->demand = demand;
    s_build(o, &b->r);
    b->n = o->count;
    b->sent_at = so_calloc((size_t) b->n, sizeof *b->sent_at);
    b->rtt = so_calloc((size_t) b->n, sizeof *b->rtt);
    b->dm = demand ? *demand : (so_pb_skill_demand_t) SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
    skillorchestra__v1__route_request__init(&b->rr);
    b->rr.turn = &b->r.turn;
    b->rr.demand = &b->dm;
    b->r.turn.episode_id = b->ep;
    b->dm.request_id = b->r.rid;
    int64_t t0 = s_now_us();
    int rc = s_bench_loop(b);
    double secs = (double) (s_now_us() - t0) / 1e6;
    long done = b->done;
    if (done > 0) {
        qsort(b->rtt, (size_t) done, sizeof *b->rtt, s_cmp_i64);
        printf("%s: %ld requests in %.3f s = %.0f req/s, round trip p50 %lld us, p99 %lld us, "
               "errors %ld (window %ld)\n",
               stage, done, secs, (double) done / secs, (long long) b->rtt[done / 2],
               (long long) b->rtt[(done * 99) / 100], b->errors, o->window);
    }
    rc = rc ? rc : b->errors ? S_EXIT_ERROR : 0;
    free(b->sent_at);
    free(b->rtt);
    free(b);
    return rc;
}

static int s_benchmarks(const s_opts_t *o, void *infer, void *route)
{
    so_pb_skill_demand_t *dem = NULL;
    s_req_t r;
    int rc = 0;
    if (infer) {
        /* One real demand first: the router benchmark routes it. */
        s_build(o, &r);
        if ((rc = s_ask(o, infer, "infer", SO_MSG_TURN_REQUEST, &r.turn, SO_MSG_SKILL_DEMAND,
                        (void **) &dem)) != 0)
            return rc;
        rc = s_bench(o, infer, "infer", NULL);
    }
    if (route && rc == 0) {
        so_pb_skill_demand_t uniform = SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
        uniform.handbook_version = (char *) o->version;
        uniform.source = SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_UNIFORM_FALLBACK;
        rc = s_bench(o, route, "route", dem ? dem : &uniform);
    }
    so_wire_free(SO_MSG_SKILL_DEMAND, dem);
    return rc;
}

/* ---- Garbage ------------------------------------------------------------- */

static int s_garbage(const s_opts_t *o, void *sock)
{
    /* A header with the right magic and type but a body that is not
     * protobuf (a field 15 with wire type 7), then bytes. */
    static const uint8_t hdr[SO_WIRE_HDR_LEN] = { 'S', 'O', SO_WIRE_VERSION,
                                                  SO_MSG_TURN_REQUEST };
    static const uint8_t body[] = { 0x7f, 0xff, 0xff, 0x00, 'g', 'a', 'r', 'b', 'a', 'g', 'e' };
    if (zmq_send(sock, hdr, sizeof hdr, ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, body, sizeof body, 0) < 0) {
        fprintf(stderr, "so-probe: send: %s\n", zmq_strerror(errno));
        return S_EXIT_ERROR;
    }
    so_msg_type_t type;
    void *msg = NULL;
    int rc = s_recv(sock, so_now_ms() + o->timeout_ms, &type, &msg);
    if (rc == 1) {
        fprintf(stderr, "so-probe: no answer to the malformed message within %d ms\n",
                o->timeout_ms);
        return S_EXIT_TIMEOUT;
    }
    if (rc < 0)
        return S_EXIT_ERROR;
    if (type != SO_MSG_TURN_REPLY || !((so_pb_turn_reply_t *) msg)->error) {
        printf("unexpected %s (no error) in answer to a malformed message\n",
               so_wire_type_name(type));
        so_wire_free(type, msg);
        return S_EXIT_ERROR;
    }
    s_print_error(o, "garbage", msg);
    so_wire_free(type, msg);
    return 0;
}

int main(int argc, char **argv)
{
    s_opts_t o;
    int code = s_parse(argc, argv, &o);
    if (code >= 0)
        return code;
    so_log_open("so-probe", SO_LOG_WARN);
    s_root = json_object();
    void *ctx = zmq_ctx_new();
    void *infer = NULL, *route = NULL, *garbage = NULL;
    int rc = S_EXIT_ERROR;
    if (o.garbage) {
        if ((garbage = s_connect(ctx, o.garbage)))
            rc = s_garbage(&o, garbage);
    } else if ((!o.infer || (infer = s_connect(ctx, o.infer))) &&
               (!o.route || (route = s_connect(ctx, o.route)))) {
        rc = o.count > 0 ? s_benchmarks(&o, infer, route) : s_once(&o, infer, route);
    }
    if (o.json && json_object_size(s_root) > 0) {
        json_dumpf(s_root, stdout, JSON_INDENT(2));
        printf("\n");
    }
    json_decref(s_root);
    so_sock_close(&garbage);
    so_sock_close(&infer);
    so_sock_close(&route);
    zmq_ctx_term(ctx);
    return rc;
}
