/*
 * so_oai_reply — the answer side of so_oai (see so_oai.h): a TurnReply as
 * chat.completion JSON or as chat.completion.chunk server-sent events
 * (whole, or head / deltas / tail of an incremental stream), and errors in
 * OpenAI's JSON shape.  Pure functions over jansson; every string returned
 * is malloc'd and the caller's.
 */
#include "so_oai.h"
#include "base/so_buf.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compact JSON; ten significant digits keep 0.62 from printing as
 * 0.61999999999999999556. */
#define S_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

/* ---- Errors ------------------------------------------------------------ */

/* Length of the longest valid UTF-8 prefix of s[0..n). */
static size_t s_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (k == 0 || i + k > n)
            return i;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return i;
        i += k;
    }
    return i;
}

/* A copy of s with every byte that is not part of valid UTF-8 as '?'
 * (messages quote what clients sent, maybe cut mid-character). */
static void s_utf8_clean(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s), o = 0, i = 0;
    while (i < n && o + 1 < cap) {
        size_t ok = s_utf8_valid((const unsigned char *) s + i, n - i);
        if (ok == 0) {
            dst[o++] = '?';
            i++;
            continue;
        }
        if (ok > cap - 1 - o) /* cut at a character boundary */
            ok = s_utf8_valid((const unsigned char *) s + i, cap - 1 - o);
        if (ok == 0)
            break;
        memcpy(dst + o, s + i, ok);
        o += ok;
        i += ok;
    }
    dst[o] = '\0';
}

char *so_oai_error_json(const so_oai_error_t *e)
{
    char msg[sizeof e->message], param[sizeof e->param];
    s_utf8_clean(msg, sizeof msg, e->message);
    s_utf8_clean(param, sizeof param, e->param);
    json_t *inner = json_pack("{s:s,s:s,s:o,s:o}", "message", msg, "type",
                              e->type ? e->type : "server_error", "param",
                              param[0] ? json_string(param) : json_null(), "code",
                              e->code ? json_string(e->code) : json_null());
    if (!inner) /* e.g. a message that is not UTF-8: never echo it raw */
        inner = json_pack("{s:s,s:s,s:n,s:n}", "message", "error (message not printable)", "type",
                          e->type ? e->type : "server_error");
    json_t *root = inner ? json_pack("{s:o}", "error", inner) : NULL;
    char *s = root ? json_dumps(root, S_DUMP_FLAGS) : NULL;
    json_decref(root);
    return s;
}

/* ---- Completions ------------------------------------------------------- */

static json_t *s_real(double x)
{
    return json_real(isfinite(x) ? x : 0.0);
}

static const char *s_strategy(int s)
{
    switch (s) {
    case SKILLORCHESTRA__V1__ROUTING_DECISION__STRATEGY__STRATEGY_GREEDY: return "greedy";
    case SKILLORCHESTRA__V1__ROUTING_DECISION__STRATEGY__STRATEGY_THOMPSON: return "thompson";
    case SKILLORCHESTRA__V1__ROUTING_DECISION__STRATEGY__STRATEGY_EXPLORE_UNIFORM:
        return "explore_uniform";
    case SKILLORCHESTRA__V1__ROUTING_DECISION__STRATEGY__STRATEGY_BUDGET_FALLBACK:
        return "budget_fallback";
    }
    return "unspecified";
}

/* The "skillorchestra" extension: why this agent. */
static json_t *s_decision_json(const so_pb_turn_reply_t *rep)
{
    const so_pb_routing_decision_t *d = rep->decision;
    const so_pb_agent_result_t *res = rep->result;
    json_t *o = json_object();
    json_object_set_new(o, "agent",
                        json_string(res && res->agent_id && *res->agent_id ? res->agent_id
                                    : d                                    ? d->chosen_agent
                                                                           : ""));
    json_object_set_new(o, "episode_id", json_string(rep->episode_id ? rep->episode_id : ""));
    if (d) {
        json_object_set_new(o, "turn_index", json_integer(d->turn_index));
        json_object_set_new(o, "handbook_version", json_string(d->handbook_version));
        json_t *top = json_array();
        for (size_t i = 0; i < d->n_top_skills; i++)
            json_array_append_new(top, json_pack("{s:s,s:o}", "id", d->top_skills[i]->skill_id,
                                                 "weight", s_real(d->top_skills[i]->weight)));
        json_object_set_new(o, "top_skills", top);
        json_t *scores = json_array();
        for (size_t i = 0; i < d->n_scores; i++) {
            const so_pb_agent_score_t *s = d->scores[i];
            json_t *e = json_pack("{s:s,s:o,s:o,s:o,s:b}", "agent", s->agent_id, "score",
                                  s_real(s->score), "competence", s_real(s->competence), "cost",
                                  s_real(s->cost_usd), "eligible", (int) s->eligible);
            if (e && !s->eligible && s->excluded_reason && *s->excluded_reason)
                json_object_set_new(e, "excluded_reason", json_string(s->excluded_reason));
            json_array_append_new(scores, e);
        }
        json_object_set_new(o, "scores", scores);
        json_object_set_new(o, "reason", json_string(d->reason ? d->reason : ""));
        json_object_set_new(o, "strategy", json_string(s_strategy(d->strategy)));
        json_object_set_new(o, "lambda", s_real(d->lambda));
        char seed[24];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long) d->seed);
        json_object_set_new(o, "seed", json_string(seed)); /* uint64: a string */
    }
    if (res) {
        json_object_set_new(o, "cost_usd", s_real(res->cost_usd));
        json_object_set_new(o, "latency_s", s_real(res->latency_s));
        if (res->worker_id && *res->worker_id)
            json_object_set_new(o, "worker", json_string(res->worker_id));
        if (res->replay_score_opt_case ==
            SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE)
            json_object_set_new(o, "replay_score", s_real(res->replay_score));
    }
    return o;
}

static json_t *s_usage(const so_pb_turn_reply_t *rep)
{
    unsigned p = rep->result ? rep->result->prompt_tokens : 0;
    unsigned c = rep->result ? rep->result->completion_tokens : 0;
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t) p, "completion_tokens",
                     (json_int_t) c, "total_tokens", (json_int_t) p + (json_int_t) c);
}

static const char *s_model(const so_pb_turn_reply_t *rep, const char *model)
{
    if (model && *model)
        return model;
    if (rep->result && rep->result->agent_id && *rep->result->agent_id)
        return rep->result->agent_id;
    return rep->decision ? rep->decision->chosen_agent : "auto";
}

static char *s_dump(json_t *root)
{
    char *s = root ? json_dumps(root, S_DUMP_FLAGS) : NULL;
    json_decref(root);
    return s;
}

char *so_oai_completion_json(const so_pb_turn_reply_t *rep, const char *completion_id,
                             int64_t created, const char *model)
{
    json_t *msg = json_pack("{s:s,s:s,s:n}", "role", "assistant", "content",
                            rep->text ? rep->text : "", "refusal");
    json_t *choice = json_pack("{s:i,s:o,s:n,s:s}", "index", 0, "message", msg, "logprobs",
                               "finish_reason", "stop");
    json_t *root = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o,s:o}", "id", completion_id, "object",
                             "chat.completion", "created", (json_int_t) created, "model",
                             s_model(rep, model), "choices", choice, "usage", s_usage(rep),
                             "skillorchestra", s_decision_json(rep));
    return s_dump(root);
}

/* Appends "data: <json>\n\n" to b; frees chunk.  -1 when the chunk could
 * not be built (NULL) or dumped. */
static int s_sse_event(so_buf_t *b, json_t *chunk)
{
    char *s = s_dump(chunk);
    if (!s)
        return -1;
    so_buf_appendf(b, "data: %s\n\n", s);
    free(s);
    return 0;
}

static json_t *s_chunk(const char *id, int64_t created, const char *model, json_t *delta,
                       const char *finish)
{
    json_t *choice = json_pack("{s:i,s:o,s:n,s:o}", "index", 0, "delta", delta, "logprobs",
                               "finish_reason", finish ? json_string(finish) : json_null());
    return json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", id, "object", "chat.completion.chunk",
                     "created", (json_int_t) created, "model", model, "choices", choice);
}

/* The role chunk, with the decision. */
static json_t *s_head_chunk(const so_pb_turn_reply_t *rep, const char *id, int64_t created,
                            const char *m)
{
    json_t *first = s_chunk(id, created, m,
                            json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL);
    if (first)
        json_object_set_new(first, "skillorchestra", s_decision_json(rep));
    return first;
}

/* Appends the end of a stream to b (finish_reason "stop", the usage chunk
 * when asked, "data: [DONE]") and hands b's text over; NULL (b freed) when
 * bad is set or an event could not be built. */
static char *s_sse_end(so_buf_t *b, int bad, const so_pb_turn_reply_t *rep, const char *id,
                       int64_t created, const char *m, int include_usage)
{
    bad = s_sse_event(b, s_chunk(id, created, m, json_object(), "stop")) || bad;
    if (include_usage && !bad) {
        json_t *u = json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", id, "object",
                              "chat.completion.chunk", "created", (json_int_t) created, "model",
                              m, "choices", "usage", s_usage(rep));
        bad = s_sse_event(b, u);
    }
    if (bad) {
        so_buf_free(b);
        return NULL;
    }
    so_buf_puts(b, "data: [DONE]\n\n");
    return so_buf_detach(b, NULL);
}

char *so_oai_completion_sse(const so_pb_turn_reply_t *rep, const char *completion_id,
                            int64_t created, const char *model, int include_usage)
{
    const char *m = s_model(rep, model);
    so_buf_t b = SO_BUF_INIT;
    /* The role first (with the decision), then the whole text, then the end. */
    int bad = s_sse_event(&b, s_head_chunk(rep, completion_id, created, m));
    bad = s_sse_event(&b,
                      s_chunk(completion_id, created, m,
                              json_pack("{s:s}", "content", rep->text ? rep->text : ""), NULL)) ||
          bad;
    return s_sse_end(&b, bad, rep, completion_id, created, m, include_usage);
}

char *so_oai_sse_head(const so_pb_turn_reply_t *rep, const char *completion_id, int64_t created,
                      const char *model)
{
    so_buf_t b = SO_BUF_INIT;
    if (s_sse_event(&b, s_head_chunk(rep, completion_id, created, s_model(rep, model))) != 0)
        return NULL;
    return so_buf_detach(&b, NULL);
}

char *so_oai_sse_delta(const so_pb_turn_reply_t *rep, const char *completion_id, int64_t created,
                       const char *model, const char *text)
{
    so_buf_t b = SO_BUF_INIT;
    if (s_sse_event(&b, s_chunk(completion_id, created, s_model(rep, model),
                                json_pack("{s:s}", "content", text), NULL)) != 0)
        return NULL;
    return so_buf_detach(&b, NULL);
}

char *so_oai_sse_tail(const so_pb_turn_reply_t *rep, const char *completion_id, int64_t created,
                      const char *model, int include_usage)
{
    so_buf_t b = SO_BUF_INIT;
    return s_sse_end(&b, 0, rep, completion_id, created, s_model(rep, model), include_usage);
}

char *so_oai_sse_error(const so_oai_error_t *e)
{
    char *json = so_oai_error_json(e);
    if (!json)
        return NULL;
    so_buf_t b = SO_BUF_INIT;
    so_buf_appendf(&b, "data: %s\n\ndata: [DONE]\n\n", json);
    free(json);
    return so_buf_detach(&b, NULL);
}

void so_oai_top_skills_header(const so_pb_turn_reply_t *rep, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    const so_pb_routing_decision_t *d = rep->decision;
    for (size_t i = 0; d && i < d->n_top_skills && n < len; i++) {
        int w = snprintf(buf + n, len - n, "%s%s=%.3f", i ? "," : "", d->top_skills[i]->skill_id,
                         d->top_skills[i]->weight);
        if (w < 0 || (size_t) w >= len - n) {
            buf[n] = '\0'; /* whole entries only */
            break;
        }
        n += (size_t) w;
    }
}
