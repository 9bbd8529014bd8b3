/*
 * so_oai — see so_oai.h.  This file: errors (the ErrorCode table, the HTTP
 * status and OpenAI type of each) and the limits' defaults.  Parsing is in
 * so_oai_parse.c, reply building (completion JSON, SSE, error JSON) in
 * so_oai_reply.c.
 */
#include "so_oai.h"

#include <stdarg.h>
#include <stdio.h>

int so_oai_fail(so_oai_error_t *e, int status, const char *type, const char *code,
                const char *param, const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

static const struct {
    so_pb_error_code_t code;
    const char *name;
    int status;
    const char *type, *oai_code;
} s_codes[] = {
    { SO_ERR(NONE), "NONE", 500, "server_error", "internal_error" },
    { SO_ERR(INVALID_REQUEST), "INVALID_REQUEST", 400, "invalid_request_error",
      "invalid_request" },
    { SO_ERR(TIMEOUT), "TIMEOUT", 504, "server_error", "timeout" },
    { SO_ERR(UPSTREAM), "UPSTREAM", 502, "server_error", "upstream_error" },
    { SO_ERR(RATE_LIMITED), "RATE_LIMITED", 429, "rate_limit_error", "rate_limited" },
    { SO_ERR(BUDGET_EXHAUSTED), "BUDGET_EXHAUSTED", 402, "invalid_request_error",
      "budget_exhausted" },
    { SO_ERR(NO_ELIGIBLE_AGENT), "NO_ELIGIBLE_AGENT", 503, "server_error", "no_eligible_agent" },
    { SO_ERR(CONTEXT_TOO_LONG), "CONTEXT_TOO_LONG", 400, "invalid_request_error",
      "context_length_exceeded" },
    { SO_ERR(UNAVAILABLE), "UNAVAILABLE", 503, "server_error", "unavailable" },
    { SO_ERR(INTERNAL), "INTERNAL", 500, "server_error", "internal_error" },
    { SO_ERR(UNKNOWN_HANDBOOK), "UNKNOWN_HANDBOOK", 503, "server_error", "unknown_handbook" },
};
#define S_N_CODES (sizeof s_codes / sizeof s_codes[0])

const char *so_oai_code_name(so_pb_error_code_t code)
{
    for (size_t i = 0; i < S_N_CODES; i++)
        if (s_codes[i].code == code)
            return s_codes[i].name;
    return "UNKNOWN";
}

void so_oai_error_from_code(so_pb_error_code_t code, const char *message, int pinned,
                            so_oai_error_t *out)
{
    size_t i = 0;
    while (i < S_N_CODES && s_codes[i].code != code)
        i++;
    if (i == S_N_CODES)
        i = 0; /* a code this build does not know: a server error */
    so_oai_fail(out, s_codes[i].status, s_codes[i].type, s_codes[i].oai_code, NULL, "%s",
                message && *message ? message : s_codes[i].name);
    if (code == SO_ERR(UNKNOWN_HANDBOOK) && pinned) {
        /* The client asked for a version that does not exist. */
        out->status = 404;
        out->type = "invalid_request_error";
        snprintf(out->param, sizeof out->param, "skillorchestra.handbook_version");
    }
}

void so_oai_limits_default(so_oai_limits_t *l)
{
    l->max_messages = SO_WIRE_MAX_MESSAGES;
    l->max_turn_index = SO_WIRE_MAX_TURNS - 1;
    l->max_prompt_tokens = 0;
    l->max_completion_tokens = 1 << 20;
}
