/*
 * so_live — the live backend: executes AgentCalls against OpenAI-compatible
 * endpoints through so_openai, one endpoint configuration per agent.
 *
 * An so_openai client is one connection and not thread-safe, so each agent
 * keeps a small pool of idle clients: a call takes one (or makes one), uses
 * it and gives it back, so consecutive calls reuse connections and calls on
 * different pool threads never share a client.  Owns the clients, the agent
 * table and per-agent counters.
 *
 * The call's deadline (from AgentCall.deadline_ms) bounds the HTTP call,
 * retries and Retry-After waits included, minus a small margin to send the
 * result.  Failures keep so_openai's ErrorCode and message, prefixed with
 * the agent, so the gateway can fall back and say why.
 */
#include "so_backend.h"
#include "llm/so_openai.h"
#include "base/so_text.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "wire/so_wire.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_AGENTS 64
#define S_MAX_IDLE 64 /* idle clients kept per agent */


typedef struct {
    char id[SO_WIRE_MAX_ID + 1];
    so_openai_config_t cfg; /* strings point at the copies below */
    char *base_url, *model, *key_env;
    double temperature; /* < 0: not sent */
    pthread_mutex_t mu; /* guards idle and the counters */
    so_openai_t *idle[S_MAX_IDLE];
    size_t n_idle;
    uint64_t calls, errors, retries, usage_estimated, prompt_tokens, completion_tokens;
    uint64_t by_code[16];
    double cost_usd;
} s_agent_t;

typedef struct {
    s_agent_t *agents;
    size_t n_agents;
    char list[512]; /* "a,b" for messages */
    atomic_int cancel;
} s_live_t;

/* ---- configuration ---------------------------------------------------- */

static int s_valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > SO_WIRE_MAX_ID)
        return 0;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char) *p) && !strchr("-_./", *p))
            return 0;
    return 1;
}

/* Splits "a, b,c" into agents; -1 with err on an empty, bad or repeated id. */
static int s_parse_agents(s_live_t *l, const char *list, char *err, size_t errlen)
{
    char *copy = so_strdup(list);
    int rc = 0;
    char *save = NULL;
    l->agents = so_calloc(S_MAX_AGENTS, sizeof *l->agents);
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char) *tok))
            tok++;
        size_t n = strlen(tok);
        while (n > 0 && isspace((unsigned char) tok[n - 1]))
            tok[--n] = '\0';
        if (!s_valid_id(tok)) {
            so_err(err, errlen,
                   "live.agents: '%.64s' is not an agent id (1..%d of "
                   "[A-Za-z0-9._/-])",
                   tok, SO_WIRE_MAX_ID);
            rc = -1;
        } else if (l->n_agents == S_MAX_AGENTS) {
            so_err(err, errlen, "live.agents: more than %d agents", S_MAX_AGENTS);
            rc = -1;
        } else {
            for (size_t i = 0; i < l->n_agents; i++)
                if (strcmp(l->agents[i].id, tok) == 0) {
                    so_err(err, errlen, "live.agents: '%s' listed twice", tok);
                    rc = -1;
                }
            if (rc == 0)
                snprintf(l->agents[l->n_agents++].id, sizeof l->agents->id, "%s", tok);
        }
    }
    free(copy);
    if (rc == 0 && l->n_agents == 0) {
        so_err(err, errlen, "live.agents is empty: list the agents this worker serves");
        rc = -1;
    }
    return rc;
}

/* ---- clients ----------------------------------------------------------- */

static so_openai_t *s_take(s_agent_t *a, char *err, size_t errlen)
{
    pthread_mutex_lock(&a->mu);
    so_openai_t *c = a->n_idle ? a->idle[--a->n_idle] : NULL;
    pthread_mutex_unlock(&a->mu);
    return c ? c : so_openai_new(&a->cfg, err, errlen);
}

static void s_give_back(s_agent_t *a, so_openai_t *c)
{
    pthread_mutex_lock(&a->mu);
    if (a->n_idle < S_MAX_IDLE) {
        a->idle[a->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&a->mu);
    so_openai_destroy(&c);
}

/* ---- execution --------------------------------------------------------- */

static s_agent_t *s_find(s_live_t *l, const char *id)
{
    for (size_t i = 0; i < l->n_agents; i++)
        if (strcmp(l->agents[i].id, id) == 0)
            return &l->agents[i];
    return NULL;
}

static void s_fail(so_exec_t *out, so_pb_error_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_fail(so_exec_t *out, so_pb_error_code_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    so_utf8_scrub(out->error);
    out->error_code = code;
}

static uint32_t s_u32(long v)
{
    return v <= 0 ? 0 : v >= (long) UINT32_MAX ? UINT32_MAX : (uint32_t) v;
}

/* so_openai's delta callback → the worker's sink. */
static int s_on_delta(const char *delta, size_t len, void *arg)
{
    const so_exec_t *out = arg;
    return out->on_delta(out->delta_arg, delta, len);
}

static void s_execute(void *self, const so_pb_agent_call_t *call, int64_t deadline,
                      so_exec_t *out)
{
    s_live_t *l = self;
    s_agent_t *a = s_find(l, call->agent_id);
    if (!a) {
        /* Another worker may serve it: UNAVAILABLE, not a bad request. */
        s_fail(out, SO_ERR(UNAVAILABLE),
               "live: this worker does not serve agent '%.128s' (it serves %s)", call->agent_id,
               l->list);
        return;
    }
    long budget = 0;
    if (deadline > 0) {
        /* Leave a little time to send the result before the gateway's deadline. */
        int64_t left = deadline - so_now_ms();
        int64_t margin = left / 20 < 10 ? 10 : left / 20 > 250 ? 250 : left / 20;
        budget = (long) (left - margin);
        if (budget <= 0) {
            s_fail(out, SO_ERR(TIMEOUT),
                   "live: agent %s: the call's deadline passed before it started", a->id);
            return;
        }
    }
    so_openai_msg_t *msgs = so_calloc(call->n_messages ? call->n_messages : 1, sizeof *msgs);
    for (size_t i = 0; i < call->n_messages; i++) {
        msgs[i].role = call->messages[i]->role;
        msgs[i].content = call->messages[i]->content;
    }
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = msgs;
    req.n_messages = call->n_messages;
    req.model = call->model;
    req.max_tokens = (long) call->max_completion_tokens;
    req.temperature = a->temperature;
    req.deadline_ms = budget;
    req.cancel = &l->cancel;

    char err[256];
    so_openai_t *c = s_take(a, err, sizeof err);
    if (!c) {
        free(msgs);
        s_fail(out, SO_ERR(INTERNAL), "live: agent %s: cannot make a client: %s", a->id, err);
        return;
    }
    so_openai_response_t r;
    int rc = call->stream && out->on_delta ? so_openai_chat_stream(c, &req, s_on_delta, out, &r)
                                           : so_openai_chat(c, &req, &r);
    s_give_back(a, c);
    free(msgs);

    if (rc == 0) {
        size_t len = strlen(r.text);
        size_t keep = so_utf8_cut(r.text, len, SO_WIRE_MAX_TEXT);
        if (keep < len) {
            so_warn("reply_truncated", "agent_id=%s request_id=%s bytes=%zu kept=%zu", a->id,
                    call->request_id, len, keep);
            r.text[keep] = '\0';
        }
        out->text = r.text;
        r.text = NULL;
        out->prompt_tokens = s_u32(r.prompt_tokens);
        out->completion_tokens = s_u32(r.completion_tokens);
        out->cost_usd = isfinite(r.cost_usd) && r.cost_usd > 0 ? r.cost_usd : 0;
    } else {
        const char *model = call->model && *call->model ? call->model : a->cfg.model;
        s_fail(out, (so_pb_error_code_t) r.code, "live: agent %s (model %.64s): %s", a->id, model,
               r.error);
    }
    so_debug("live_call",
             "agent_id=%s request_id=%s code=%s attempts=%d status=%ld "
             "latency_ms=%lld usage_estimated=%d",
             a->id, call->request_id, so_openai_code_name(r.code), r.attempts, r.http_status,
             (long long) r.latency_ms, r.usage_estimated);

    pthread_mutex_lock(&a->mu);
    a->calls++;
    a->errors += rc != 0;
    a->retries += r.attempts > 1 ? (uint64_t) (r.attempts - 1) : 0;
    a->usage_estimated += rc == 0 && r.usage_estimated;
    a->prompt_tokens += out->prompt_tokens;
    a->completion_tokens += out->completion_tokens;
    a->cost_usd += out->cost_usd;
    a->by_code[(unsigned) r.code < 16 ? (unsigned) r.code : 15]++;
    pthread_mutex_unlock(&a->mu);
    so_openai_response_clear(&r);
}

static void s_cancel(void *self)
{
    s_live_t *l = self;
    atomic_store(&l->cancel, 1);
}

static void s_log_stats(void *self)
{
    s_live_t *l = self;
    for (size_t i = 0; i < l->n_agents; i++) {
        s_agent_t *a = &l->agents[i];
        pthread_mutex_lock(&a->mu);
        so_info("live_stats",
                "agent_id=%s calls=%llu errors=%llu retries=%llu timeout=%llu "
                "upstream=%llu rate_limited=%llu unavailable=%llu usage_estimated=%llu "
                "prompt_tokens=%llu completion_tokens=%llu cost_usd=%.6f idle_clients=%zu",
                a->id, (unsigned long long) a->calls, (unsigned long long) a->errors,
                (unsigned long long) a->retries,
                (unsigned long long) a->by_code[SO_OPENAI_TIMEOUT],
                (unsigned long long) a->by_code[SO_OPENAI_UPSTREAM],
                (unsigned long long) a->by_code[SO_OPENAI_RATE_LIMITED],
                (unsigned long long) a->by_code[SO_OPENAI_UNAVAILABLE],
                (unsigned long long) a->usage_estimated, (unsigned long long) a->prompt_tokens,
                (unsigned long long) a->completion_tokens, a->cost_usd, a->n_idle);
        pthread_mutex_unlock(&a->mu);
    }
}

static void s_destroy(void *self)
{
    s_live_t *l = self;
    if (!l)
        return;
    for (size_t i = 0; i < l->n_agents; i++) {
        s_agent_t *a = &l->agents[i];
        for (size_t k = 0; k < a->n_idle; k++)
            so_openai_destroy(&a->idle[k]);
        pthread_mutex_destroy(&a->mu);
        free(a->base_url);
        free(a->model);
        free(a->key_env);
    }
    free(l->agents);
    free(l);
}

so_backend_t *so_live_new(const so_config_t *cfg, char *err, size_t errlen)
{
    const char *list = so_config_get(cfg, "live.agents", NULL);
    if (!list) {
        so_err(err, errlen,
               "live.agents is missing: list the agents this worker serves "
               "(and configure agent.<id>.base_url etc.)");
        return NULL;
    }
    s_live_t *l = so_calloc(1, sizeof *l);
    so_backend_t *b = so_calloc(1, sizeof *b);
    atomic_init(&l->cancel, 0);
    if (s_parse_agents(l, list, err, errlen) != 0) {
        free(l->agents);
        free(l);
        free(b);
        return NULL;
    }
    size_t used = 0;
    for (size_t i = 0; i < l->n_agents; i++) {
        s_agent_t *a = &l->agents[i];
        pthread_mutex_init(&a->mu, NULL);
        int n = snprintf(l->list + used, sizeof l->list - used, "%s%s", i ? "," : "", a->id);
        if (n > 0 && (size_t) n < sizeof l->list - used)
            used += (size_t) n;
    }
    int rc = 0;
    for (size_t i = 0; i < l->n_agents && rc == 0; i++) {
        s_agent_t *a = &l->agents[i];
        char key[200], why[256];
        snprintf(key, sizeof key, "agent.%s.temperature", a->id);
        if (so_openai_config_load(cfg, a->id, &a->cfg, why, sizeof why) != 0 ||
            so_config_double(cfg, key, -1, -1, 2, &a->temperature, why, sizeof why) != 0) {
            so_err(err, errlen, "%s", why);
            rc = -1;
            break;
        }
        /* The first client now: a bad URL or a missing API key stops the
         * worker at start, not at its first call. */
        so_openai_t *c = so_openai_new(&a->cfg, why, sizeof why);
        if (!c) {
            so_err(err, errlen, "agent %s: %s", a->id, why);
            rc = -1;
            break;
        }
        /* Later clients are made from cfg: own its strings (checked above). */
        a->base_url = so_strdup(a->cfg.base_url);
        a->model = so_strdup(a->cfg.model);
        a->key_env = so_strdup(a->cfg.api_key_env);
        a->cfg.base_url = a->base_url;
        a->cfg.model = a->model;
        a->cfg.api_key_env = a->key_env;
        a->cfg.max_tokens_field = strcmp(a->cfg.max_tokens_field, "max_completion_tokens") == 0
                                      ? "max_completion_tokens"
                                      : "max_tokens";
        a->idle[a->n_idle++] = c;
        so_info("live_agent",
                "agent_id=%s base_url=%s model=%s key_env=%s price_in=%g "
                "price_out=%g context=%ld timeout_ms=%ld max_retries=%d",
                a->id, a->cfg.base_url, a->cfg.model,
                a->cfg.api_key_env ? a->cfg.api_key_env : "-", a->cfg.price_in, a->cfg.price_out,
                a->cfg.context_tokens, a->cfg.timeout_ms, a->cfg.max_retries);
    }
    if (rc != 0) {
        s_destroy(l);
        free(b);
        return NULL;
    }
    b->name = "live";
    b->self = l;
    b->thread_safe = 1;
    b->execute = s_execute;
    b->cancel = s_cancel;
    b->log_stats = s_log_stats;
    b->destroy = s_destroy;
    return b;
}
