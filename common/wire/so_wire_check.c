/*
 * so_wire_check — pass 3 of decoding and the check before encoding
 * (so_wire_validate in so_wire.h): per-message semantic rules (required
 * ids, lengths, UTF-8, enum ranges, oneof cases, finite and in-range
 * numbers).  Paths look like "RoutingDecision.scores[2]"; every message
 * names the field: "<path>.<field>: <problem>".
 *
 * Owns the table of validators, one per message type.
 */
#include "wire/so_wire.h"
#include "base/so_err.h"
#include "base/so_text.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef int (*s_validate_fn)(char *err, size_t errlen, const char *path, const void *msg);

#define S_TRY(x) \
    do { \
        if ((x) != 0) \
            return -1; \
    } while (0)

enum { S_OPTIONAL = 0, S_REQUIRED = 1, S_ID = 2 };

static int s_check_str(char *err, size_t errlen, const char *path, const char *field,
                       const char *s, size_t max, int flags)
{
    if (!s)
        s = "";
    size_t len = strnlen(s, max + 1);
    if (len == 0) {
        if (flags & S_REQUIRED)
            return so_err(err, errlen, "%s.%s: empty (required)", path, field);
        return 0;
    }
    if (len > max)
        return so_err(err, errlen, "%s.%s: longer than %zu bytes", path, field, max);
    size_t bad = so_utf8_invalid_at(s, len);
    if (bad < len)
        return so_err(err, errlen, "%s.%s: invalid UTF-8 at byte %zu", path, field, bad);
    if (flags & S_ID)
        for (size_t i = 0; i < len; i++)
            if ((uint8_t) s[i] < 0x20 || s[i] == 0x7f)
                return so_err(err, errlen, "%s.%s: control character 0x%02x at byte %zu", path,
                              field, (unsigned) (uint8_t) s[i], i);
    return 0;
}

#define s_check_id(err, errlen, path, field, s, req) \
    s_check_str(err, errlen, path, field, s, SO_WIRE_MAX_ID, S_ID | (req))

/* Shortest of %.15g / %.17g that reads back as x, so "1.0000000000000002
 * out of range [0, 1]" never prints as "1 out of range". */
static const char *s_num(char buf[32], double x)
{
    snprintf(buf, 32, "%.15g", x);
    if (isfinite(x) && strtod(buf, NULL) != x)
        snprintf(buf, 32, "%.17g", x);
    return buf;
}

/* finite and in [lo, hi] */
static int s_check_num(char *err, size_t errlen, const char *path, const char *field, double x,
                       double lo, double hi)
{
    char b[32];
    if (!isfinite(x))
        return so_err(err, errlen, "%s.%s: not a finite number (%g)", path, field, x);
    if (x < lo || x > hi) {
        if (lo == 0 && x < 0 && isinf(hi))
            return so_err(err, errlen, "%s.%s: %s is negative", path, field, s_num(b, x));
        if (isinf(hi))
            return so_err(err, errlen, "%s.%s: %s is below %g", path, field, s_num(b, x), lo);
        return so_err(err, errlen, "%s.%s: %s out of range [%g, %g]", path, field, s_num(b, x),
                      lo, hi);
    }
    return 0;
}

#define s_check_nonneg(err, errlen, path, field, x) \
    s_check_num(err, errlen, path, field, x, 0.0, INFINITY)
#define s_check_unit(err, errlen, path, field, x) \
    s_check_num(err, errlen, path, field, x, 0.0, 1.0)

static int s_check_uint(char *err, size_t errlen, const char *path, const char *field, uint64_t x,
                        uint64_t max)
{
    if (x > max)
        return so_err(err, errlen, "%s.%s: %llu exceeds %llu", path, field,
                      (unsigned long long) x, (unsigned long long) max);
    return 0;
}

static int s_check_enum(char *err, size_t errlen, const char *path, const char *field,
                        const ProtobufCEnumDescriptor *ed, int value, bool allow_zero)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, value);
    if (!ev)
        return so_err(err, errlen, "%s.%s: %d is not a valid %s", path, field, value,
                      so_wire_pb_name(ed->name));
    if (value == 0 && !allow_zero)
        return so_err(err, errlen, "%s.%s: unset (%s)", path, field, ev->name);
    return 0;
}

static int s_check_oneof(char *err, size_t errlen, const char *path, const char *field,
                         int value_case, const int *cases, size_t n_cases, bool required)
{
    if (value_case == 0) {
        if (required)
            return so_err(err, errlen, "%s.%s: not set (required)", path, field);
        return 0;
    }
    for (size_t i = 0; i < n_cases; i++)
        if (value_case == cases[i])
            return 0;
    return so_err(err, errlen, "%s.%s: invalid case %d", path, field, value_case);
}

/* A (possibly absent) sub-message: right descriptor, then its validator. */
static int s_check_sub(char *err, size_t errlen, const char *path, const char *field,
                       const void *m, const ProtobufCMessageDescriptor *d, s_validate_fn fn,
                       bool required)
{
    if (!m) {
        if (required)
            return so_err(err, errlen, "%s.%s: absent (required)", path, field);
        return 0;
    }
    if (((const ProtobufCMessage *) m)->descriptor != d)
        return so_err(err, errlen, "%s.%s: not a %s", path, field, so_wire_pb_name(d->name));
    char sub[256];
    snprintf(sub, sizeof sub, "%s.%s", path, field);
    return fn(err, errlen, sub, m);
}

static int s_check_list(char *err, size_t errlen, const char *path, const char *field, size_t n,
                        void *const *arr, size_t min, size_t max,
                        const ProtobufCMessageDescriptor *d, s_validate_fn fn)
{
    if (n > max)
        return so_err(err, errlen, "%s.%s: %zu entries (limit %zu)", path, field, n, max);
    if (n < min)
        return so_err(err, errlen, "%s.%s: %zu entries (at least %zu required)", path, field, n,
                      min);
    if (n && !arr)
        return so_err(err, errlen, "%s.%s: %zu entries but no array", path, field, n);
    for (size_t i = 0; i < n; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.%s[%zu]", path, field, i);
        const ProtobufCMessage *m = arr[i];
        if (!m || m->descriptor != d)
            return so_err(err, errlen, "%s: not a %s", sub, so_wire_pb_name(d->name));
        S_TRY(fn(err, errlen, sub, m));
    }
    return 0;
}

static int s_check_id_list(char *err, size_t errlen, const char *path, const char *field,
                           size_t n, char *const *arr, size_t max)
{
    if (n > max)
        return so_err(err, errlen, "%s.%s: %zu entries (limit %zu)", path, field, n, max);
    if (n && !arr)
        return so_err(err, errlen, "%s.%s: %zu entries but no array", path, field, n);
    for (size_t i = 0; i < n; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "%s[%zu]", field, i);
        if (!arr[i])
            return so_err(err, errlen, "%s.%s: NULL", path, sub);
        S_TRY(s_check_id(err, errlen, path, sub, arr[i], S_REQUIRED));
    }
    return 0;
}

static int s_v_error(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_error_t *m = msg;
    S_TRY(s_check_enum(err, errlen, path, "code", &skillorchestra__v1__error_code__descriptor,
                       (int) m->code, true));
    return s_check_str(err, errlen, path, "message", m->message, SO_WIRE_MAX_NOTE, S_OPTIONAL);
}

static int s_v_chat(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_chat_message_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "role", m->role, S_REQUIRED));
    return s_check_str(err, errlen, path, "content", m->content, SO_WIRE_MAX_TEXT, S_OPTIONAL);
}

static int s_v_skill_weight(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_skill_weight_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "skill_id", m->skill_id, S_REQUIRED));
    return s_check_unit(err, errlen, path, "weight", m->weight);
}

static int s_v_turn_request(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_turn_request_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "request_id", m->request_id, S_REQUIRED));
    /* Optional on the wire: a client leaves it empty on an episode's first
     * turn and the gateway assigns one; services behind the gateway require it. */
    S_TRY(s_check_id(err, errlen, path, "episode_id", m->episode_id, S_OPTIONAL));
    S_TRY(s_check_id(err, errlen, path, "mode", m->mode, S_OPTIONAL));
    S_TRY(s_check_list(err, errlen, path, "messages", m->n_messages, (void *const *) m->messages,
                       1, SO_WIRE_MAX_MESSAGES, &skillorchestra__v1__chat_message__descriptor,
                       s_v_chat));
    S_TRY(s_check_nonneg(err, errlen, path, "budget_usd", m->budget_usd));
    static const int lambda_cases[] = { SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA };
    S_TRY(s_check_oneof(err, errlen, path, "lambda", (int) m->lambda_opt_case, lambda_cases, 1,
                        false));
    if (m->lambda_opt_case == SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA)
        S_TRY(s_check_nonneg(err, errlen, path, "lambda", m->lambda));
    S_TRY(s_check_id(err, errlen, path, "handbook_version", m->handbook_version, S_OPTIONAL));
    S_TRY(s_check_id(err, errlen, path, "routing_profile", m->routing_profile, S_OPTIONAL));
    return s_check_id_list(err, errlen, path, "exclude_agents", m->n_exclude_agents,
                           m->exclude_agents, SO_WIRE_MAX_AGENTS);
}

static int s_v_skill_demand(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_skill_demand_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "request_id", m->request_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "handbook_version", m->handbook_version, S_REQUIRED));
    S_TRY(s_check_list(err, errlen, path, "skills", m->n_skills, (void *const *) m->skills, 0,
                       SO_WIRE_MAX_SKILLS, &skillorchestra__v1__skill_weight__descriptor,
                       s_v_skill_weight));
    return s_check_enum(err, errlen, path, "source",
                        &skillorchestra__v1__skill_demand__source__descriptor, (int) m->source,
                        false);
}

static int s_v_skill_competence(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_skill_competence_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "skill_id", m->skill_id, S_REQUIRED));
    S_TRY(s_check_unit(err, errlen, path, "weight", m->weight));
    S_TRY(s_check_unit(err, errlen, path, "competence", m->competence));
    S_TRY(s_check_nonneg(err, errlen, path, "successes", m->successes));
    S_TRY(s_check_nonneg(err, errlen, path, "attempts", m->attempts));
    return s_check_uint(err, errlen, path, "backoff_level", m->backoff_level,
                        SO_WIRE_MAX_BACKOFF);
}

static int s_v_agent_score(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_agent_score_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "agent_id", m->agent_id, S_REQUIRED));
    S_TRY(s_check_num(err, errlen, path, "score", m->score, -INFINITY, INFINITY));
    S_TRY(s_check_unit(err, errlen, path, "competence", m->competence));
    S_TRY(s_check_nonneg(err, errlen, path, "cost_usd", m->cost_usd));
    S_TRY(s_check_nonneg(err, errlen, path, "cost_norm", m->cost_norm));
    S_TRY(s_check_str(err, errlen, path, "excluded_reason", m->excluded_reason, SO_WIRE_MAX_NOTE,
                      S_OPTIONAL));
    return s_check_list(err, errlen, path, "skills", m->n_skills, (void *const *) m->skills, 0,
                        SO_WIRE_MAX_SKILLS, &skillorchestra__v1__skill_competence__descriptor,
                        s_v_skill_competence);
}

static int s_v_routing_decision(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_routing_decision_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "request_id", m->request_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "episode_id", m->episode_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "handbook_version", m->handbook_version, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "chosen_agent", m->chosen_agent, S_REQUIRED));
    S_TRY(s_check_list(err, errlen, path, "scores", m->n_scores, (void *const *) m->scores, 0,
                       SO_WIRE_MAX_AGENTS, &skillorchestra__v1__agent_score__descriptor,
                       s_v_agent_score));
    S_TRY(s_check_str(err, errlen, path, "reason", m->reason, SO_WIRE_MAX_NOTE, S_OPTIONAL));
    S_TRY(s_check_enum(err, errlen, path, "strategy",
                       &skillorchestra__v1__routing_decision__strategy__descriptor,
                       (int) m->strategy, false));
    S_TRY(s_check_list(err, errlen, path, "top_skills", m->n_top_skills,
                       (void *const *) m->top_skills, 0, SO_WIRE_MAX_SKILLS,
                       &skillorchestra__v1__skill_weight__descriptor, s_v_skill_weight));
    return s_check_nonneg(err, errlen, path, "lambda", m->lambda);
}

static int s_v_agent_call(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_agent_call_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "request_id", m->request_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "episode_id", m->episode_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "agent_id", m->agent_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "model", m->model, S_OPTIONAL));
    S_TRY(s_check_list(err, errlen, path, "messages", m->n_messages, (void *const *) m->messages,
                       1, SO_WIRE_MAX_MESSAGES, &skillorchestra__v1__chat_message__descriptor,
                       s_v_chat));
    S_TRY(
        s_check_uint(err, errlen, path, "deadline_ms", m->deadline_ms, SO_WIRE_MAX_DEADLINE_MS));
    return s_check_uint(err, errlen, path, "attempt", m->attempt, SO_WIRE_MAX_ATTEMPT);
}

static int s_v_agent_result(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_agent_result_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "request_id", m->request_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "agent_id", m->agent_id, S_REQUIRED));
    S_TRY(s_check_str(err, errlen, path, "text", m->text, SO_WIRE_MAX_TEXT, S_OPTIONAL));
    S_TRY(s_check_nonneg(err, errlen, path, "cost_usd", m->cost_usd));
    S_TRY(s_check_nonneg(err, errlen, path, "latency_s", m->latency_s));
    S_TRY(s_check_sub(err, errlen, path, "error", m->error,
                      &skillorchestra__v1__error__descriptor, s_v_error, false));
    static const int cases[] = {
        SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE
    };
    S_TRY(s_check_oneof(err, errlen, path, "replay_score", (int) m->replay_score_opt_case, cases,
                        1, false));
    if (m->replay_score_opt_case ==
        SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE)
        S_TRY(s_check_unit(err, errlen, path, "replay_score", m->replay_score));
    if (m->partial && (m->prompt_tokens || m->completion_tokens || m->cost_usd != 0 ||
                       m->replay_score_opt_case !=
                           SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT__NOT_SET ||
                       m->error))
        return so_err(err, errlen,
                      "%s.partial: a partial result carries no usage, cost, score "
                      "or error",
                      path);
    return s_check_id(err, errlen, path, "worker_id", m->worker_id, S_OPTIONAL);
}

static int s_v_turn_record(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_turn_record_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "mode", m->mode, S_OPTIONAL));
    S_TRY(s_check_id(err, errlen, path, "agent_id", m->agent_id, S_REQUIRED));
    S_TRY(s_check_list(err, errlen, path, "demand", m->n_demand, (void *const *) m->demand, 0,
                       SO_WIRE_MAX_SKILLS, &skillorchestra__v1__skill_weight__descriptor,
                       s_v_skill_weight));
    S_TRY(s_check_nonneg(err, errlen, path, "cost_usd", m->cost_usd));
    S_TRY(s_check_nonneg(err, errlen, path, "latency_s", m->latency_s));
    static const int cases[] = { SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE };
    S_TRY(s_check_oneof(err, errlen, path, "score", (int) m->score_opt_case, cases, 1, false));
    if (m->score_opt_case == SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE)
        S_TRY(s_check_unit(err, errlen, path, "score", m->score));
    return 0;
}

static int s_v_episode_outcome(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_episode_outcome_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "episode_id", m->episode_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "handbook_version", m->handbook_version, S_REQUIRED));
    static const int cases[] = { SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS,
                                 SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE };
    S_TRY(s_check_oneof(err, errlen, path, "result", (int) m->result_case, cases, 2, true));
    if (m->result_case == SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE)
        S_TRY(s_check_unit(err, errlen, path, "score", m->score));
    return s_check_list(err, errlen, path, "turns", m->n_turns, (void *const *) m->turns, 0,
                        SO_WIRE_MAX_TURNS, &skillorchestra__v1__turn_record__descriptor,
                        s_v_turn_record);
}

static int s_v_turn_reply(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_turn_reply_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "request_id", m->request_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "episode_id", m->episode_id, S_OPTIONAL));
    S_TRY(s_check_str(err, errlen, path, "text", m->text, SO_WIRE_MAX_TEXT, S_OPTIONAL));
    S_TRY(s_check_sub(err, errlen, path, "error", m->error,
                      &skillorchestra__v1__error__descriptor, s_v_error, false));
    bool failed = m->error && m->error->code != SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_NONE;
    S_TRY(s_check_sub(err, errlen, path, "decision", m->decision,
                      &skillorchestra__v1__routing_decision__descriptor, s_v_routing_decision,
                      false));
    if (!failed && !m->result)
        return so_err(err, errlen, "%s.result: absent (required unless error is set)", path);
    if (m->partial && (failed || !m->result->partial))
        return so_err(err, errlen,
                      "%s.partial: a partial reply carries no error and a partial "
                      "result",
                      path);
    if (!m->partial && m->result && m->result->partial)
        return so_err(err, errlen, "%s.result.partial: set in a final reply", path);
    return s_check_sub(err, errlen, path, "result", m->result,
                       &skillorchestra__v1__agent_result__descriptor, s_v_agent_result, false);
}

/* The demand must be the one inferred for this turn: a mismatched pair is a
 * gateway bug or a forged message, and routing it would credit the wrong turn. */
static int s_v_route_request(char *err, size_t errlen, const char *path, const void *msg)
{
    const so_pb_route_request_t *m = msg;
    S_TRY(s_check_sub(err, errlen, path, "turn", m->turn,
                      &skillorchestra__v1__turn_request__descriptor, s_v_turn_request, true));
    if (!m->turn->episode_id || !*m->turn->episode_id)
        return so_err(err, errlen, "%s.turn.episode_id: empty (required)", path);
    S_TRY(s_check_sub(err, errlen, path, "demand", m->demand,
                      &skillorchestra__v1__skill_demand__descriptor, s_v_skill_demand, true));
    if (strcmp(m->demand->request_id, m->turn->request_id) != 0)
        return so_err(err, errlen, "%s.demand.request_id: \"%s\" differs from turn.request_id",
                      path, m->demand->request_id);
    return 0;
}

static const s_validate_fn s_validators[SO_MSG_TYPE_MAX + 1] = {
    [SO_MSG_TURN_REQUEST] = s_v_turn_request,
    [SO_MSG_SKILL_DEMAND] = s_v_skill_demand,
    [SO_MSG_ROUTING_DECISION] = s_v_routing_decision,
    [SO_MSG_AGENT_CALL] = s_v_agent_call,
    [SO_MSG_AGENT_RESULT] = s_v_agent_result,
    [SO_MSG_EPISODE_OUTCOME] = s_v_episode_outcome,
    [SO_MSG_TURN_REPLY] = s_v_turn_reply,
    [SO_MSG_ROUTE_REQUEST] = s_v_route_request,
};

int so_wire_validate(so_msg_type_t type, const void *msg, char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *d = so_wire_descriptor(type);
    if (!d)
        return so_err(err, errlen, "unknown message type %d", (int) type);
    if (!msg)
        return so_err(err, errlen, "%s: NULL message", so_wire_type_name(type));
    const ProtobufCMessageDescriptor *got = ((const ProtobufCMessage *) msg)->descriptor;
    if (got != d)
        return so_err(err, errlen, "message is %s, not %s",
                      got ? so_wire_pb_name(got->name) : "uninitialized",
                      so_wire_pb_name(d->name));
    return s_validators[type](err, errlen, so_wire_pb_name(d->name), msg);
}
