/*
 * so_oai_parse — the request side of so_oai (see so_oai.h): a chat
 * completion body (and its X-SO-* headers) checked and turned into a
 * TurnRequest, and a feedback body.  Every problem a client sent is an
 * so_oai_error_t naming the field; nothing is asserted.
 */
#include "so_oai.h"
#include "base/so_alloc.h"
#include "base/so_text.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_BAD(e, param, ...) \
    so_oai_fail(e, 400, "invalid_request_error", "invalid_request", param, __VA_ARGS__)

/* ---- Requests ---------------------------------------------------------- */

/* Replaces *dst (owned) with a copy of src. */
static void s_set_str(char **dst, const char *src)
{
    char *d = so_strdup(src ? src : "");
    free(*dst);
    *dst = d;
}

static const char *s_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

/* An id-like string: 1..SO_WIRE_MAX_ID bytes, no control characters. */
static int s_check_id(so_oai_error_t *e, const char *param, const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return S_BAD(e, param, "%s: empty", param);
    if (n > SO_WIRE_MAX_ID)
        return S_BAD(e, param, "%s: longer than %d bytes", param, SO_WIRE_MAX_ID);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
            return S_BAD(e, param, "%s: control character at byte %zu", param, i);
    return 0;
}

static const char *s_roles[] = { "system", "developer", "user", "assistant", "tool", "function" };

/* A message's content: a string, null, or an array of text parts (joined
 * with newlines).  Returns a malloc'd string or NULL with e. */
static char *s_content(so_oai_error_t *e, const json_t *c, size_t i)
{
    char param[96];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!c || json_is_null(c))
        return so_strdup("");
    if (json_is_string(c))
        return so_strdup(json_string_value(c));
    if (!json_is_array(c)) {
        S_BAD(e, param, "%s: expected a string or an array of content parts, got %s", param,
              s_type_name(c));
        return NULL;
    }
    size_t total = 0, j;
    json_t *part;
    json_array_foreach(c, j, part) {
        char pp[96];
        snprintf(pp, sizeof pp, "messages[%zu].content[%zu]", i, j);
        const json_t *type = json_object_get(part, "type");
        const json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type)) {
            S_BAD(e, pp, "%s: expected an object with a string \"type\"", pp);
            return NULL;
        }
        if (strcmp(json_string_value(type), "text") != 0) {
            S_BAD(e, pp, "%s: content part type '%.40s' is not supported (text only)", pp,
                  json_string_value(type));
            return NULL;
        }
        if (!json_is_string(text)) {
            S_BAD(e, pp, "%s.text: expected a string", pp);
            return NULL;
        }
        total += json_string_length(text) + 1;
        if (total > SO_WIRE_MAX_TEXT + 1) {
            S_BAD(e, param, "%s: longer than %u bytes", param, SO_WIRE_MAX_TEXT);
            return NULL;
        }
    }
    char *s = so_malloc(total + 1), *p = s;
    json_array_foreach(c, j, part) {
        const json_t *text = json_object_get(part, "text");
        if (p != s)
            *p++ = '\n';
        memcpy(p, json_string_value(text), json_string_length(text));
        p += json_string_length(text);
    }
    *p = '\0';
    return s;
}

static int s_messages(so_oai_request_t *r, const json_t *msgs, const so_oai_limits_t *lim,
                      so_oai_error_t *e)
{
    if (!msgs)
        return S_BAD(e, "messages", "messages: required");
    if (!json_is_array(msgs))
        return S_BAD(e, "messages", "messages: expected an array, got %s", s_type_name(msgs));
    size_t n = json_array_size(msgs);
    if (n == 0)
        return S_BAD(e, "messages", "messages: empty (at least one message is required)");
    if (n > lim->max_messages)
        return so_oai_fail(e, 400, "invalid_request_error", "too_many_messages", "messages",
                           "messages: %zu messages (limit %zu)", n, lim->max_messages);
    r->msg_store = so_calloc(n, sizeof *r->msg_store);
    r->msg_ptrs = so_calloc(n, sizeof *r->msg_ptrs);
    long bytes = 0;
    unsigned assistants = 0;
    for (size_t i = 0; i < n; i++) {
        so_pb_chat_message_t *m = &r->msg_store[i];
        skillorchestra__v1__chat_message__init(m);
        m->role = m->content = NULL;
        r->msg_ptrs[i] = m;
        r->turn.n_messages = i + 1; /* so destroy frees what is set */
        const json_t *o = json_array_get(msgs, i);
        char param[96];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(o))
            return S_BAD(e, param, "%s: expected an object, got %s", param, s_type_name(o));
        const json_t *role = json_object_get(o, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role))
            return S_BAD(e, param, "%s: expected a string", param);
        size_t k = 0;
        while (k < sizeof s_roles / sizeof s_roles[0] &&
               strcmp(s_roles[k], json_string_value(role)) != 0)
            k++;
        if (k == sizeof s_roles / sizeof s_roles[0])
            return S_BAD(e, param,
                         "%s: '%.40s' is not one of system, developer, user, "
                         "assistant, tool, function",
                         param, json_string_value(role));
        assistants += k == 3;
        m->role = so_strdup(s_roles[k]);
        if (!(m->content = s_content(e, json_object_get(o, "content"), i)))
            return -1;
        size_t clen = strlen(m->content);
        if (clen > SO_WIRE_MAX_TEXT) {
            snprintf(param, sizeof param, "messages[%zu].content", i);
            return S_BAD(e, param, "%s: longer than %u bytes", param, SO_WIRE_MAX_TEXT);
        }
        bytes += (long) clen;
    }
    r->turn.messages = r->msg_ptrs;
    r->turn.turn_index = assistants; /* default: the turns answered so far */
    r->est_prompt_tokens = (long) so_tokens_estimate((size_t) bytes);
    if (lim->max_prompt_tokens > 0 && r->est_prompt_tokens > lim->max_prompt_tokens)
        return so_oai_fail(e, 400, "invalid_request_error", "context_length_exceeded", "messages",
                           "messages: about %ld prompt tokens (bytes / 4), above "
                           "this router's limit of %ld",
                           r->est_prompt_tokens, lim->max_prompt_tokens);
    return 0;
}

/* max_tokens / max_completion_tokens: a positive integer within the limit;
 * null counts as absent. */
static int s_max_tokens(so_oai_request_t *r, const json_t *root, const so_oai_limits_t *lim,
                        so_oai_error_t *e)
{
    const char *keys[] = { "max_tokens", "max_completion_tokens" }; /* the latter wins */
    for (int k = 0; k < 2; k++) {
        const json_t *v = json_object_get(root, keys[k]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return S_BAD(e, keys[k], "%s: expected a positive integer", keys[k]);
        if (json_integer_value(v) > lim->max_completion_tokens)
            return so_oai_fail(e, 400, "invalid_request_error", "max_tokens_exceeded", keys[k],
                               "%s: %lld is above this router's limit of %ld", keys[k],
                               (long long) json_integer_value(v), lim->max_completion_tokens);
        r->turn.max_completion_tokens = (uint32_t) json_integer_value(v);
    }
    return 0;
}

/* Parameters an OpenAI client may send that this router cannot honour in
 * a way the client would notice: refused rather than silently dropped. */
static int s_unsupported(const json_t *root, so_oai_error_t *e)
{
    const json_t *n = json_object_get(root, "n");
    if (n && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1))
        return S_BAD(e, "n", "n: only one choice per request is supported");
    const char *lists[] = { "tools", "functions" };
    for (int k = 0; k < 2; k++) {
        const json_t *v = json_object_get(root, lists[k]);
        if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0))
            return S_BAD(e, lists[k], "%s: tool calling is not supported by this router",
                         lists[k]);
    }
    return 0;
}

/* ---- The extension: "skillorchestra" in the body, X-SO-* headers -------- */

typedef struct {
    const char *key;    /* in the "skillorchestra" object */
    const char *header; /* X-SO-... */
} s_ext_field_t;

static const s_ext_field_t s_ext[] = {
    { "episode_id", "X-SO-Episode-Id" },
    { "turn_index", "X-SO-Turn-Index" },
    { "final_turn", "X-SO-Final-Turn" },
    { "lambda", "X-SO-Lambda" },
    { "mode", "X-SO-Mode" },
    { "budget_usd", "X-SO-Budget-USD" },
    { "exclude_agents", "X-SO-Exclude-Agents" },
    { "handbook_version", "X-SO-Handbook-Version" },
};
#define S_N_EXT (sizeof s_ext / sizeof s_ext[0])

/* A header value as JSON of the type the body would carry (so one checker
 * handles both).  NULL with e when it does not parse. */
static json_t *s_header_json(const s_ext_field_t *f, const char *v, so_oai_error_t *e)
{
    char *end = NULL;
    if (!strcmp(f->key, "turn_index")) {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno)
            goto bad;
        return json_integer(x);
    }
    if (!strcmp(f->key, "lambda") || !strcmp(f->key, "budget_usd")) {
        errno = 0;
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x))
            goto bad;
        return json_real(x);
    }
    if (!strcmp(f->key, "final_turn")) {
        if (!strcasecmp(v, "true") || !strcmp(v, "1"))
            return json_true();
        if (!strcasecmp(v, "false") || !strcmp(v, "0"))
            return json_false();
        goto bad;
    }
    if (!strcmp(f->key, "exclude_agents")) {
        json_t *a = json_array();
        char *copy = so_strdup(v), *save = NULL;
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
            json_array_append_new(a, json_string(t));
        free(copy);
        return a;
    }
    json_t *s = json_string(v);
    if (s)
        return s;
bad:
    S_BAD(e, f->header, "header %s: '%.60s' does not parse", f->header, v);
    return NULL;
}

static int s_ext_apply(so_oai_request_t *r, const s_ext_field_t *f, const json_t *v,
                       const so_oai_limits_t *lim, so_oai_error_t *e)
{
    char param[64];
    snprintf(param, sizeof param, "skillorchestra.%s", f->key);
    so_pb_turn_request_t *t = &r->turn;
    if (!strcmp(f->key, "turn_index")) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > (json_int_t) lim->max_turn_index)
            return so_oai_fail(e, 400, "invalid_request_error", "too_many_turns", param,
                               "%s: expected an integer in [0, %u]", param, lim->max_turn_index);
        t->turn_index = (uint32_t) json_integer_value(v);
    } else if (!strcmp(f->key, "final_turn")) {
        if (!json_is_boolean(v))
            return S_BAD(e, param, "%s: expected a boolean, got %s", param, s_type_name(v));
        t->final_turn = json_is_true(v);
    } else if (!strcmp(f->key, "lambda") || !strcmp(f->key, "budget_usd")) {
        double x = json_is_number(v) ? json_number_value(v) : NAN;
        if (!(x >= 0 && x <= 1e9))
            return S_BAD(e, param, "%s: expected a number >= 0", param);
        if (f->key[0] == 'l') {
            t->lambda_opt_case = SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA;
            t->lambda = x;
        } else {
            t->budget_usd = x;
        }
    } else if (!strcmp(f->key, "exclude_agents")) {
        if (!json_is_array(v))
            return S_BAD(e, param, "%s: expected an array of agent ids", param);
        size_t i;
        json_t *a;
        json_array_foreach(v, i, a) {
            char p[96];
            snprintf(p, sizeof p, "%s[%zu]", param, i);
            if (!json_is_string(a))
                return S_BAD(e, p, "%s: expected a string", p);
            if (s_check_id(e, p, json_string_value(a)) < 0)
                return -1;
            const char *one = json_string_value(a);
            if (so_oai_request_exclude(r, &one, 1) < 0)
                return S_BAD(e, param, "%s: more than %d agents", param, SO_WIRE_MAX_AGENTS);
        }
    } else {
        /* episode_id, mode, handbook_version: ids */
        if (!json_is_string(v))
            return S_BAD(e, param, "%s: expected a string, got %s", param, s_type_name(v));
        const char *s = json_string_value(v);
        if (*s && s_check_id(e, param, s) < 0)
            return -1;
        char **dst = !strcmp(f->key, "episode_id") ? &t->episode_id
                     : !strcmp(f->key, "mode")     ? &t->mode
                                                   : &t->handbook_version;
        s_set_str(dst, s);
        if (dst == &t->handbook_version)
            r->pinned_version = *s != '\0';
    }
    return 0;
}

static int s_extension(so_oai_request_t *r, const json_t *root, so_oai_header_fn *header,
                       void *harg, const so_oai_limits_t *lim, so_oai_error_t *e)
{
    const json_t *ext = json_object_get(root, "skillorchestra");
    if (ext && !json_is_null(ext)) {
        if (!json_is_object(ext))
            return S_BAD(e, "skillorchestra", "skillorchestra: expected an object, got %s",
                         s_type_name(ext));
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *) ext, key, v) {
            size_t k = 0;
            while (k < S_N_EXT && strcmp(s_ext[k].key, key) != 0)
                k++;
            if (k == S_N_EXT)
                return S_BAD(e, "skillorchestra",
                             "skillorchestra.%.60s: unknown field (known: "
                             "episode_id, turn_index, final_turn, lambda, mode, budget_usd, "
                             "exclude_agents, handbook_version)",
                             key);
        }
    }
    for (size_t k = 0; k < S_N_EXT; k++) {
        const json_t *v = ext && json_is_object(ext) ? json_object_get(ext, s_ext[k].key) : NULL;
        if (v && json_is_null(v))
            v = NULL;
        json_t *from_header = NULL;
        const char *h = !v && header ? header(harg, s_ext[k].header) : NULL;
        if (h) {
            if (!(from_header = s_header_json(&s_ext[k], h, e)))
                return -1;
            v = from_header;
        }
        int rc = v ? s_ext_apply(r, &s_ext[k], v, lim, e) : 0;
        json_decref(from_header);
        if (rc < 0)
            return -1;
    }
    return 0;
}

so_oai_request_t *so_oai_parse_request(const char *body, size_t len, so_oai_header_fn *header,
                                       void *header_arg, const so_oai_limits_t *lim,
                                       so_oai_error_t *err)
{
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", len, 0, &je);
    if (!root) {
        so_oai_fail(err, 400, "invalid_request_error", "invalid_json", NULL,
                    "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    so_oai_request_t *r = so_calloc(1, sizeof *r);
    skillorchestra__v1__turn_request__init(&r->turn);
    so_pb_turn_request_t *t = &r->turn;
    t->request_id = t->episode_id = t->mode = t->handbook_version = t->routing_profile = NULL;
    t->final_turn = 1; /* one request, one episode, unless told otherwise */
    int rc = -1;
    if (!json_is_object(root)) {
        S_BAD(err, NULL, "the body must be a JSON object, got %s", s_type_name(root));
        goto out;
    }
    const json_t *model = json_object_get(root, "model");
    if (!model) {
        S_BAD(err, "model", "model: required (\"auto\" lets the router choose)");
        goto out;
    }
    if (!json_is_string(model) || s_check_id(err, "model", json_string_value(model)) < 0) {
        if (!json_is_string(model))
            S_BAD(err, "model", "model: expected a string, got %s", s_type_name(model));
        goto out;
    }
    r->model = so_strdup(json_string_value(model));
    const json_t *stream = json_object_get(root, "stream");
    if (stream && !json_is_null(stream) && !json_is_boolean(stream)) {
        S_BAD(err, "stream", "stream: expected a boolean, got %s", s_type_name(stream));
        goto out;
    }
    r->stream = json_is_true(stream);
    r->turn.stream = r->stream; /* partial replies: incremental SSE */
    const json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        const json_t *iu = json_object_get(so, "include_usage");
        if (!json_is_object(so) || (iu && !json_is_boolean(iu))) {
            S_BAD(err, "stream_options", "stream_options: expected {\"include_usage\": bool}");
            goto out;
        }
        r->include_usage = json_is_true(iu);
    }
    if (s_unsupported(root, err) < 0 ||
        s_messages(r, json_object_get(root, "messages"), lim, err) < 0 ||
        s_max_tokens(r, root, lim, err) < 0 ||
        s_extension(r, root, header, header_arg, lim, err) < 0)
        goto out;
    /* Everything else the wire checks (UTF-8, lengths), with its message. */
    char why[512];
    t->request_id = "x";
    int bad = so_wire_validate(SO_MSG_TURN_REQUEST, t, why, sizeof why);
    t->request_id = NULL;
    if (bad) {
        S_BAD(err, NULL, "%s", why);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc < 0)
        so_oai_request_destroy(&r);
    return r;
}

void so_oai_request_destroy(so_oai_request_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_oai_request_t *r = *self_p;
    so_pb_turn_request_t *t = &r->turn;
    for (size_t i = 0; r->msg_store && i < t->n_messages; i++) {
        free(r->msg_store[i].role);
        free(r->msg_store[i].content);
    }
    free(r->msg_store);
    free(r->msg_ptrs);
    for (size_t i = 0; i < t->n_exclude_agents; i++)
        free(t->exclude_agents[i]);
    free(t->exclude_agents);
    free(t->request_id);
    free(t->episode_id);
    free(t->mode);
    free(t->handbook_version);
    free(t->routing_profile);
    free(r->model);
    free(r);
    *self_p = NULL;
}

void so_oai_request_set_id(so_oai_request_t *r, const char *id)
{
    s_set_str(&r->turn.request_id, id);
}

void so_oai_request_set_profile(so_oai_request_t *r, const char *profile)
{
    s_set_str(&r->turn.routing_profile, profile);
}

int so_oai_request_exclude(so_oai_request_t *r, const char *const *agents, size_t n)
{
    so_pb_turn_request_t *t = &r->turn;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < t->n_exclude_agents && strcmp(t->exclude_agents[k], agents[i]) != 0)
            k++;
        if (k < t->n_exclude_agents)
            continue;
        if (t->n_exclude_agents >= SO_WIRE_MAX_AGENTS)
            return -1;
        t->exclude_agents = so_reallocarray(t->exclude_agents, t->n_exclude_agents + 1,
                                            sizeof *t->exclude_agents);
        t->exclude_agents[t->n_exclude_agents++] = so_strdup(agents[i]);
    }
    return 0;
}

/* ---- Feedback ---------------------------------------------------------- */

int so_oai_parse_feedback(const char *body, size_t len, so_oai_feedback_t *out,
                          so_oai_error_t *err)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", len, 0, &je);
    if (!root)
        return so_oai_fail(err, 400, "invalid_request_error", "invalid_json", NULL,
                           "malformed JSON at line %d column %d: %s", je.line, je.column,
                           je.text);
    int rc = -1;
    const json_t *ep = json_object_get(root, "episode_id");
    const json_t *ok = json_object_get(root, "success");
    const json_t *sc = json_object_get(root, "score");
    if (ok && json_is_null(ok))
        ok = NULL;
    if (sc && json_is_null(sc))
        sc = NULL;
    if (!json_is_object(root))
        S_BAD(err, NULL, "the body must be a JSON object, got %s", s_type_name(root));
    else if (!json_is_string(ep))
        S_BAD(err, "episode_id", "episode_id: required, a string");
    else if (!ok == !sc)
        S_BAD(err, ok ? "score" : "success",
              "give exactly one of success (a boolean) or score (a number in [0, 1])");
    else if (ok && !json_is_boolean(ok))
        S_BAD(err, "success", "success: expected a boolean, got %s", s_type_name(ok));
    else if (sc &&
             !(json_is_number(sc) && json_number_value(sc) >= 0 && json_number_value(sc) <= 1))
        S_BAD(err, "score", "score: expected a number in [0, 1]");
    else if (s_check_id(err, "episode_id", json_string_value(ep)) == 0) {
        snprintf(out->episode_id, sizeof out->episode_id, "%s", json_string_value(ep));
        out->has_success = ok != NULL;
        out->success = json_is_true(ok);
        out->score = sc ? json_number_value(sc) : (out->success ? 1.0 : 0.0);
        rc = 0;
    }
    json_decref(root);
    return rc;
}
