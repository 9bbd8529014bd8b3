/*
 * so_wire — see so_wire.h.  Decoding a body takes three passes:
 *
 *  1. s_scan walks the raw protobuf with the generated descriptors before
 *     protobuf-c sees it.  protobuf-c 1.4.1 counts repeated elements and
 *     allocates for them without a limit, stores unknown fields, and cuts
 *     strings at an embedded NUL without telling anyone; the scan rejects
 *     truncation, bad wire types, NULs in strings, repeated counts over their
 *     cap and bodies that would make protobuf-c allocate too many objects,
 *     so the allocation that follows is bounded by what we allow, not by
 *     what the peer declared.
 *  2. protobuf_c_message_unpack.
 *  3. so_wire_validate: per-message semantic checks (required ids, lengths,
 *     UTF-8, enum ranges, numeric ranges).  The same checks run before
 *     encoding.
 */
#include "wire/so_wire.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Skillorchestra__V1__Error s_pb_error_t;
typedef Skillorchestra__V1__ChatMessage s_pb_chat_t;
typedef Skillorchestra__V1__SkillWeight s_pb_skill_weight_t;
typedef Skillorchestra__V1__TurnRequest s_pb_turn_request_t;
typedef Skillorchestra__V1__SkillDemand s_pb_skill_demand_t;
typedef Skillorchestra__V1__SkillCompetence s_pb_skill_competence_t;
typedef Skillorchestra__V1__AgentScore s_pb_agent_score_t;
typedef Skillorchestra__V1__RoutingDecision s_pb_routing_decision_t;
typedef Skillorchestra__V1__AgentCall s_pb_agent_call_t;
typedef Skillorchestra__V1__AgentResult s_pb_agent_result_t;
typedef Skillorchestra__V1__TurnRecord s_pb_turn_record_t;
typedef Skillorchestra__V1__EpisodeOutcome s_pb_episode_outcome_t;
typedef Skillorchestra__V1__HandbookAnnouncement s_pb_handbook_announcement_t;
typedef Skillorchestra__V1__TurnReply s_pb_turn_reply_t;
typedef Skillorchestra__V1__RouteRequest s_pb_route_request_t;

#define S_SAME_TYPE(x) \
    _Static_assert((int) SO_MSG_##x == (int) SKILLORCHESTRA__V1__MESSAGE_TYPE__MESSAGE_TYPE_##x, \
                   "so_msg_type_t must match MessageType")
S_SAME_TYPE(TURN_REQUEST);
S_SAME_TYPE(SKILL_DEMAND);
S_SAME_TYPE(ROUTING_DECISION);
S_SAME_TYPE(AGENT_CALL);
S_SAME_TYPE(AGENT_RESULT);
S_SAME_TYPE(EPISODE_OUTCOME);
S_SAME_TYPE(HANDBOOK_ANNOUNCEMENT);
S_SAME_TYPE(TURN_REPLY);
S_SAME_TYPE(ROUTE_REQUEST);
_Static_assert(SO_WIRE_MAX_BODY <= INT32_MAX, "body must fit ZMQ_MAXMSGSIZE and int");

typedef int (*s_validate_fn)(char *err, size_t errlen, const char *path, const void *msg);

typedef struct {
    const char *name;
    const ProtobufCMessageDescriptor *desc;
} s_type_t;

static const s_type_t s_types[SO_MSG_TYPE_MAX + 1] = {
    [SO_MSG_TURN_REQUEST] = {"TurnRequest", &skillorchestra__v1__turn_request__descriptor},
    [SO_MSG_SKILL_DEMAND] = {"SkillDemand", &skillorchestra__v1__skill_demand__descriptor},
    [SO_MSG_ROUTING_DECISION] = {"RoutingDecision",
                                 &skillorchestra__v1__routing_decision__descriptor},
    [SO_MSG_AGENT_CALL] = {"AgentCall", &skillorchestra__v1__agent_call__descriptor},
    [SO_MSG_AGENT_RESULT] = {"AgentResult", &skillorchestra__v1__agent_result__descriptor},
    [SO_MSG_EPISODE_OUTCOME] = {"EpisodeOutcome",
                                &skillorchestra__v1__episode_outcome__descriptor},
    [SO_MSG_HANDBOOK_ANNOUNCEMENT] = {"HandbookAnnouncement",
                                      &skillorchestra__v1__handbook_announcement__descriptor},
    [SO_MSG_TURN_REPLY] = {"TurnReply", &skillorchestra__v1__turn_reply__descriptor},
    [SO_MSG_ROUTE_REQUEST] = {"RouteRequest", &skillorchestra__v1__route_request__descriptor},
};

/* "skillorchestra.v1.SkillDemand.Source" -> "SkillDemand.Source" */
static const char *s_name(const char *full)
{
    static const char pkg[] = "skillorchestra.v1.";
    return strncmp(full, pkg, sizeof pkg - 1) == 0 ? full + sizeof pkg - 1 : full;
}

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *so_wire_type_name(so_msg_type_t type)
{
    if (type >= 1 && type <= SO_MSG_TYPE_MAX)
        return s_types[type].name;
    return "unknown";
}

const ProtobufCMessageDescriptor *so_wire_descriptor(so_msg_type_t type)
{
    if (type >= 1 && type <= SO_MSG_TYPE_MAX)
        return s_types[type].desc;
    return NULL;
}

so_msg_type_t so_wire_type_of(const ProtobufCMessageDescriptor *desc)
{
    for (int t = 1; t <= SO_MSG_TYPE_MAX; t++)
        if (desc && s_types[t].desc == desc)
            return (so_msg_type_t) t;
    return SO_MSG_ANY;
}

void so_wire_header(so_msg_type_t type, uint8_t hdr[SO_WIRE_HDR_LEN])
{
    hdr[0] = SO_WIRE_MAGIC0;
    hdr[1] = SO_WIRE_MAGIC1;
    hdr[2] = SO_WIRE_VERSION;
    hdr[3] = (uint8_t) type;
}

int so_wire_parse_header(const void *hdr, size_t hdr_len, so_msg_type_t *type_out, char *err,
                         size_t errlen)
{
    const uint8_t *h = hdr;
    if (hdr_len != SO_WIRE_HDR_LEN || !h)
        return s_fail(err, errlen, "header frame is %zu bytes (want %d)", hdr_len,
                      SO_WIRE_HDR_LEN);
    if (h[0] != SO_WIRE_MAGIC0 || h[1] != SO_WIRE_MAGIC1)
        return s_fail(err, errlen, "bad magic 0x%02x 0x%02x (want \"SO\")", h[0], h[1]);
    if (h[2] != SO_WIRE_VERSION)
        return s_fail(err, errlen, "protocol version %u unsupported (want %d)", h[2],
                      SO_WIRE_VERSION);
    if (h[3] < 1 || h[3] > SO_MSG_TYPE_MAX)
        return s_fail(err, errlen, "unknown message type %u", h[3]);
    if (type_out)
        *type_out = (so_msg_type_t) h[3];
    return 0;
}

/* ------------------------------------------------------------------------
 * Pass 1: the raw scan.
 */

/* Caps on repeated fields, by message and field.  A repeated field missing
 * here has cap 0, so a field added to the .proto without a cap makes the
 * golden test fail instead of going unbounded. */
static const struct {
    const ProtobufCMessageDescriptor *msg;
    const char *field;
    size_t max;
} s_caps[] = {
    {&skillorchestra__v1__turn_request__descriptor, "messages", SO_WIRE_MAX_MESSAGES},
    {&skillorchestra__v1__turn_request__descriptor, "exclude_agents", SO_WIRE_MAX_AGENTS},
    {&skillorchestra__v1__skill_demand__descriptor, "skills", SO_WIRE_MAX_SKILLS},
    {&skillorchestra__v1__agent_score__descriptor, "skills", SO_WIRE_MAX_SKILLS},
    {&skillorchestra__v1__routing_decision__descriptor, "scores", SO_WIRE_MAX_AGENTS},
    {&skillorchestra__v1__routing_decision__descriptor, "top_skills", SO_WIRE_MAX_SKILLS},
    {&skillorchestra__v1__agent_call__descriptor, "messages", SO_WIRE_MAX_MESSAGES},
    {&skillorchestra__v1__turn_record__descriptor, "demand", SO_WIRE_MAX_SKILLS},
    {&skillorchestra__v1__episode_outcome__descriptor, "turns", SO_WIRE_MAX_TURNS},
};

static size_t s_cap(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f)
{
    for (size_t i = 0; i < sizeof s_caps / sizeof s_caps[0]; i++)
        if (s_caps[i].msg == d && strcmp(s_caps[i].field, f->name) == 0)
            return s_caps[i].max;
    return 0;
}

#define S_SCAN_MAX_DEPTH 8
#define S_SCAN_MAX_FIELDS 32   /* fields per message in our schema, checked */

typedef struct {
    const uint8_t *base;
    size_t body_len;
    size_t nodes;
    size_t unknown;
    char *err;
    size_t errlen;
} s_scan_t;

/* 0 ok, -1 ran off the end, -2 longer than 10 bytes. */
static int s_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (*pos >= len)
            return -1;
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -2;
}

static int s_wire_type_ok(const ProtobufCFieldDescriptor *f, unsigned wt, bool *packed)
{
    *packed = false;
    unsigned want;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_BOOL: case PROTOBUF_C_TYPE_ENUM:
        want = 0;
        break;
    case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        want = 1;
        break;
    case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_FLOAT:
        want = 5;
        break;
    default:
        return wt == 2;
    }
    if (wt == want)
        return 1;
    if (wt == 2 && f->label == PROTOBUF_C_LABEL_REPEATED) {
        *packed = true;
        return 1;
    }
    return 0;
}

/* Elements in a packed run of scalars of f's type. */
static size_t s_packed_count(const ProtobufCFieldDescriptor *f, const uint8_t *p, size_t len)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return len / 8;
    case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_FLOAT:
        return len / 4;
    default: {
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
            n += !(p[i] & 0x80);
        return n;
    }
    }
}

static int s_truncated(s_scan_t *s, const ProtobufCMessageDescriptor *d,
                       const ProtobufCFieldDescriptor *f, unsigned num, size_t off)
{
    if (f)
        return s_fail(s->err, s->errlen,
                      "truncated protobuf (body %zu bytes): %s.%s at offset %zu runs past the end",
                      s->body_len, s_name(d->name), f->name, off);
    return s_fail(
        s->err, s->errlen,
        "truncated protobuf (body %zu bytes): %s field %u at offset %zu runs past the end",
        s->body_len, s_name(d->name), num, off);
}

static int s_scan_msg(s_scan_t *s, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                      size_t len, int depth)
{
    size_t counts[S_SCAN_MAX_FIELDS] = {0};
    if (depth > S_SCAN_MAX_DEPTH)
        return s_fail(s->err, s->errlen, "malformed protobuf: %s nested deeper than %d",
                      s_name(d->name), S_SCAN_MAX_DEPTH);
    if (d->n_fields > S_SCAN_MAX_FIELDS)
        return s_fail(s->err, s->errlen, "%s has %u fields; raise S_SCAN_MAX_FIELDS",
                      s_name(d->name), d->n_fields);

    size_t pos = 0;
    while (pos < len) {
        size_t off = (size_t)(p - s->base) + pos;
        uint64_t tag;
        int rc = s_varint(p, len, &pos, &tag);
        if (rc == -1)
            return s_fail(
                s->err, s->errlen,
                "truncated protobuf (body %zu bytes): %s tag at offset %zu runs past the end",
                s->body_len, s_name(d->name), off);
        if (rc < 0 || tag >> 32 || (tag >> 3) == 0)
            return s_fail(s->err, s->errlen, "malformed protobuf: %s bad tag at offset %zu",
                          s_name(d->name), off);
        unsigned num = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, num);

        const uint8_t *payload = p + pos;
        size_t plen = 0;
        uint64_t v;
        switch (wt) {
        case 0:
            rc = s_varint(p, len, &pos, &v);
            if (rc == -1)
                return s_truncated(s, d, f, num, off);
            if (rc < 0)
                return s_fail(s->err, s->errlen,
                              "malformed protobuf: %s field %u at offset %zu: varint too long",
                              s_name(d->name), num, off);
            break;
        case 1:
        case 5:
            plen = wt == 1 ? 8 : 4;
            if (len - pos < plen)
                return s_truncated(s, d, f, num, off);
            pos += plen;
            break;
        case 2:
            rc = s_varint(p, len, &pos, &v);
            if (rc == -1)
                return s_truncated(s, d, f, num, off);
            if (rc < 0)
                return s_fail(s->err, s->errlen,
                              "malformed protobuf: %s field %u at offset %zu: length too long",
                              s_name(d->name), num, off);
            if (v > len - pos)
                return s_truncated(s, d, f, num, off);
            payload = p + pos;
            plen = (size_t) v;
            pos += plen;
            break;
        default:
            return s_fail(s->err, s->errlen,
                          "malformed protobuf: %s field %u at offset %zu: wire type %u unsupported",
                          s_name(d->name), num, off, wt);
        }

        if (!f) {
            /* Unknown field: protobuf-c keeps a copy (forward compatibility). */
            if (++s->unknown > SO_WIRE_MAX_UNKNOWN)
                return s_fail(s->err, s->errlen, "%s: more than %d unknown fields", s_name(d->name),
                              SO_WIRE_MAX_UNKNOWN);
            s->nodes++;
        } else {
            bool packed;
            if (!s_wire_type_ok(f, wt, &packed))
                return s_fail(s->err, s->errlen,
                              "malformed protobuf: %s.%s at offset %zu has wire type %u",
                              s_name(d->name), f->name, off, wt);
            size_t idx = (size_t)(f - d->fields);
            if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                size_t n = packed ? s_packed_count(f, payload, plen) : 1;
                counts[idx] += n;
                s->nodes += n;
            }
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                const uint8_t *nul = memchr(payload, 0, plen);
                if (nul)
                    return s_fail(s->err, s->errlen, "%s.%s: embedded NUL at byte %zu",
                                  s_name(d->name), f->name, (size_t)(nul - payload));
                s->nodes++;
            } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
                s->nodes++;
            } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                /* protobuf-c merges repeats of a singular sub-message by
                 * re-copying its arrays each time: quadratic in a hostile
                 * body.  Our encoders never repeat one, so refuse. */
                if (f->label != PROTOBUF_C_LABEL_REPEATED && ++counts[idx] > 1)
                    return s_fail(s->err, s->errlen,
                                  "malformed protobuf: %s.%s at offset %zu repeats a singular field",
                                  s_name(d->name), f->name, off);
                s->nodes++;
                if (s_scan_msg(s, f->descriptor, payload, plen, depth + 1) != 0)
                    return -1;
            }
        }
        if (s->nodes > SO_WIRE_MAX_NODES)
            return s_fail(s->err, s->errlen, "%s: body would unpack into more than %u objects",
                          s_name(d->name), SO_WIRE_MAX_NODES);
    }

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REPEATED || counts[i] == 0)
            continue;
        size_t cap = s_cap(d, f);
        if (counts[i] > cap)
            return s_fail(s->err, s->errlen, "%s.%s: %zu entries (limit %zu)", s_name(d->name),
                          f->name, counts[i], cap);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Pass 3: semantic validation.  Paths look like "RoutingDecision.scores[2]";
 * every message names the field: "<path>.<field>: <problem>".
 */

#define S_TRY(x) do { if ((x) != 0) return -1; } while (0)

enum { S_OPTIONAL = 0, S_REQUIRED = 1, S_ID = 2 };

/* Offset of the first invalid UTF-8 sequence (strict: no overlongs, no
 * surrogates, <= U+10FFFF), or len if valid. */
static size_t s_utf8_invalid_at(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n + 1;
    }
    return len;
}

static int s_check_str(char *err, size_t errlen, const char *path, const char *field,
                       const char *s, size_t max, int flags)
{
    if (!s)
        s = "";
    size_t len = strnlen(s, max + 1);
    if (len == 0) {
        if (flags & S_REQUIRED)
            return s_fail(err, errlen, "%s.%s: empty (required)", path, field);
        return 0;
    }
    if (len > max)
        return s_fail(err, errlen, "%s.%s: longer than %zu bytes", path, field, max);
    size_t bad = s_utf8_invalid_at((const uint8_t *) s, len);
    if (bad < len)
        return s_fail(err, errlen, "%s.%s: invalid UTF-8 at byte %zu", path, field, bad);
    if (flags & S_ID)
        for (size_t i = 0; i < len; i++)
            if ((uint8_t) s[i] < 0x20 || s[i] == 0x7f)
                return s_fail(err, errlen, "%s.%s: control character 0x%02x at byte %zu", path,
                              field, (unsigned)(uint8_t) s[i], i);
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
        return s_fail(err, errlen, "%s.%s: not a finite number (%g)", path, field, x);
    if (x < lo || x > hi) {
        if (lo == 0 && x < 0 && isinf(hi))
            return s_fail(err, errlen, "%s.%s: %s is negative", path, field, s_num(b, x));
        if (isinf(hi))
            return s_fail(err, errlen, "%s.%s: %s is below %g", path, field, s_num(b, x), lo);
        return s_fail(err, errlen, "%s.%s: %s out of range [%g, %g]", path, field, s_num(b, x),
                      lo, hi);
    }
    return 0;
}

#define s_check_nonneg(err, errlen, path, field, x) \
    s_check_num(err, errlen, path, field, x, 0.0, INFINITY)
#define s_check_unit(err, errlen, path, field, x) \
    s_check_num(err, errlen, path, field, x, 0.0, 1.0)

static int s_check_uint(char *err, size_t errlen, const char *path, const char *field,
                        uint64_t x, uint64_t max)
{
    if (x > max)
        return s_fail(err, errlen, "%s.%s: %llu exceeds %llu", path, field,
                      (unsigned long long) x, (unsigned long long) max);
    return 0;
}

static int s_check_enum(char *err, size_t errlen, const char *path, const char *field,
                        const ProtobufCEnumDescriptor *ed, int value, bool allow_zero)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, value);
    if (!ev)
        return s_fail(err, errlen, "%s.%s: %d is not a valid %s", path, field, value,
                      s_name(ed->name));
    if (value == 0 && !allow_zero)
        return s_fail(err, errlen, "%s.%s: unset (%s)", path, field, ev->name);
    return 0;
}

static int s_check_oneof(char *err, size_t errlen, const char *path, const char *field,
                         int value_case, const int *cases, size_t n_cases, bool required)
{
    if (value_case == 0) {
        if (required)
            return s_fail(err, errlen, "%s.%s: not set (required)", path, field);
        return 0;
    }
    for (size_t i = 0; i < n_cases; i++)
        if (value_case == cases[i])
            return 0;
    return s_fail(err, errlen, "%s.%s: invalid case %d", path, field, value_case);
}

/* A (possibly absent) sub-message: right descriptor, then its validator. */
static int s_check_sub(char *err, size_t errlen, const char *path, const char *field,
                       const void *m, const ProtobufCMessageDescriptor *d, s_validate_fn fn,
                       bool required)
{
    if (!m) {
        if (required)
            return s_fail(err, errlen, "%s.%s: absent (required)", path, field);
        return 0;
    }
    if (((const ProtobufCMessage *) m)->descriptor != d)
        return s_fail(err, errlen, "%s.%s: not a %s", path, field, s_name(d->name));
    char sub[256];
    snprintf(sub, sizeof sub, "%s.%s", path, field);
    return fn(err, errlen, sub, m);
}

static int s_check_list(char *err, size_t errlen, const char *path, const char *field, size_t n,
                        void *const *arr, size_t min, size_t max,
                        const ProtobufCMessageDescriptor *d, s_validate_fn fn)
{
    if (n > max)
        return s_fail(err, errlen, "%s.%s: %zu entries (limit %zu)", path, field, n, max);
    if (n < min)
        return s_fail(err, errlen, "%s.%s: %zu entries (at least %zu required)", path, field, n,
                      min);
    if (n && !arr)
        return s_fail(err, errlen, "%s.%s: %zu entries but no array", path, field, n);
    for (size_t i = 0; i < n; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.%s[%zu]", path, field, i);
        const ProtobufCMessage *m = arr[i];
        if (!m || m->descriptor != d)
            return s_fail(err, errlen, "%s: not a %s", sub, s_name(d->name));
        S_TRY(fn(err, errlen, sub, m));
    }
    return 0;
}

static int s_check_id_list(char *err, size_t errlen, const char *path, const char *field,
                           size_t n, char *const *arr, size_t max)
{
    if (n > max)
        return s_fail(err, errlen, "%s.%s: %zu entries (limit %zu)", path, field, n, max);
    if (n && !arr)
        return s_fail(err, errlen, "%s.%s: %zu entries but no array", path, field, n);
    for (size_t i = 0; i < n; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "%s[%zu]", field, i);
        if (!arr[i])
            return s_fail(err, errlen, "%s.%s: NULL", path, sub);
        S_TRY(s_check_id(err, errlen, path, sub, arr[i], S_REQUIRED));
    }
    return 0;
}

static int s_v_error(char *err, size_t errlen, const char *path, const void *msg)
{
    const s_pb_error_t *m = msg;
    S_TRY(s_check_enum(err, errlen, path, "code", &skillorchestra__v1__error_code__descriptor,
                       (int) m->code, true));
    return s_check_str(err, errlen, path, "message", m->message, SO_WIRE_MAX_NOTE, S_OPTIONAL);
}

static int s_v_chat(char *err, size_t errlen, const char *path, const void *msg)
{
    const s_pb_chat_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "role", m->role, S_REQUIRED));
    return s_check_str(err, errlen, path, "content", m->content, SO_WIRE_MAX_TEXT, S_OPTIONAL);
}

static int s_v_skill_weight(char *err, size_t errlen, const char *path, const void *msg)
{
    const s_pb_skill_weight_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "skill_id", m->skill_id, S_REQUIRED));
    return s_check_unit(err, errlen, path, "weight", m->weight);
}

static int s_v_turn_request(char *err, size_t errlen, const char *path, const void *msg)
{
    const s_pb_turn_request_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "request_id", m->request_id, S_REQUIRED));
    /* Optional on the wire: a client leaves it empty on an episode's first
     * turn and the gateway assigns one; services behind the gateway require it. */
    S_TRY(s_check_id(err, errlen, path, "episode_id", m->episode_id, S_OPTIONAL));
    S_TRY(s_check_id(err, errlen, path, "mode", m->mode, S_OPTIONAL));
    S_TRY(s_check_list(err, errlen, path, "messages", m->n_messages, (void *const *) m->messages,
                       1, SO_WIRE_MAX_MESSAGES, &skillorchestra__v1__chat_message__descriptor,
                       s_v_chat));
    S_TRY(s_check_nonneg(err, errlen, path, "budget_usd", m->budget_usd));
    static const int lambda_cases[] = {SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA};
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
    const s_pb_skill_demand_t *m = msg;
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
    const s_pb_skill_competence_t *m = msg;
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
    const s_pb_agent_score_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "agent_id", m->agent_id, S_REQUIRED));
    S_TRY(s_check_num(err, errlen, path, "score", m->score, -INFINITY, INFINITY));
    S_TRY(s_check_unit(err, errlen, path, "competence", m->competence));
    S_TRY(s_check_nonneg(err, errlen, path, "cost_usd", m->cost_usd));
    S_TRY(s_check_nonneg(err, errlen, path, "cost_norm", m->cost_norm));
    S_TRY(s_check_str(err, errlen, path, "excluded_reason", m->excluded_reason,
                      SO_WIRE_MAX_NOTE, S_OPTIONAL));
    return s_check_list(err, errlen, path, "skills", m->n_skills, (void *const *) m->skills, 0,
                        SO_WIRE_MAX_SKILLS, &skillorchestra__v1__skill_competence__descriptor,
                        s_v_skill_competence);
}

static int s_v_routing_decision(char *err, size_t errlen, const char *path, const void *msg)
{
    const s_pb_routing_decision_t *m = msg;
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
    const s_pb_agent_call_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "request_id", m->request_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "episode_id", m->episode_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "agent_id", m->agent_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "model", m->model, S_OPTIONAL));
    S_TRY(s_check_list(err, errlen, path, "messages", m->n_messages, (void *const *) m->messages,
                       1, SO_WIRE_MAX_MESSAGES, &skillorchestra__v1__chat_message__descriptor,
                       s_v_chat));
    S_TRY(s_check_uint(err, errlen, path, "deadline_ms", m->deadline_ms,
                       SO_WIRE_MAX_DEADLINE_MS));
    return s_check_uint(err, errlen, path, "attempt", m->attempt, SO_WIRE_MAX_ATTEMPT);
}

static int s_v_agent_result(char *err, size_t errlen, const char *path, const void *msg)
{
    const s_pb_agent_result_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "request_id", m->request_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "agent_id", m->agent_id, S_REQUIRED));
    S_TRY(s_check_str(err, errlen, path, "text", m->text, SO_WIRE_MAX_TEXT, S_OPTIONAL));
    S_TRY(s_check_nonneg(err, errlen, path, "cost_usd", m->cost_usd));
    S_TRY(s_check_nonneg(err, errlen, path, "latency_s", m->latency_s));
    S_TRY(s_check_sub(err, errlen, path, "error", m->error,
                      &skillorchestra__v1__error__descriptor, s_v_error, false));
    static const int cases[] = {SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE};
    S_TRY(s_check_oneof(err, errlen, path, "replay_score", (int) m->replay_score_opt_case,
                        cases, 1, false));
    if (m->replay_score_opt_case == SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE)
        S_TRY(s_check_unit(err, errlen, path, "replay_score", m->replay_score));
    if (m->partial && (m->prompt_tokens || m->completion_tokens || m->cost_usd != 0 ||
                       m->replay_score_opt_case != SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT__NOT_SET ||
                       m->error))
        return s_fail(err, errlen, "%s.partial: a partial result carries no usage, cost, score "
                      "or error", path);
    return s_check_id(err, errlen, path, "worker_id", m->worker_id, S_OPTIONAL);
}

static int s_v_turn_record(char *err, size_t errlen, const char *path, const void *msg)
{
    const s_pb_turn_record_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "mode", m->mode, S_OPTIONAL));
    S_TRY(s_check_id(err, errlen, path, "agent_id", m->agent_id, S_REQUIRED));
    S_TRY(s_check_list(err, errlen, path, "demand", m->n_demand, (void *const *) m->demand, 0,
                       SO_WIRE_MAX_SKILLS, &skillorchestra__v1__skill_weight__descriptor,
                       s_v_skill_weight));
    S_TRY(s_check_nonneg(err, errlen, path, "cost_usd", m->cost_usd));
    S_TRY(s_check_nonneg(err, errlen, path, "latency_s", m->latency_s));
    static const int cases[] = {SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE};
    S_TRY(s_check_oneof(err, errlen, path, "score", (int) m->score_opt_case, cases, 1, false));
    if (m->score_opt_case == SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE)
        S_TRY(s_check_unit(err, errlen, path, "score", m->score));
    return 0;
}

static int s_v_episode_outcome(char *err, size_t errlen, const char *path, const void *msg)
{
    const s_pb_episode_outcome_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "episode_id", m->episode_id, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "handbook_version", m->handbook_version, S_REQUIRED));
    static const int cases[] = {SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS,
                                SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE};
    S_TRY(s_check_oneof(err, errlen, path, "result", (int) m->result_case, cases, 2, true));
    if (m->result_case == SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE)
        S_TRY(s_check_unit(err, errlen, path, "score", m->score));
    return s_check_list(err, errlen, path, "turns", m->n_turns, (void *const *) m->turns, 0,
                        SO_WIRE_MAX_TURNS, &skillorchestra__v1__turn_record__descriptor,
                        s_v_turn_record);
}

static int s_v_handbook_announcement(char *err, size_t errlen, const char *path,
                                     const void *msg)
{
    const s_pb_handbook_announcement_t *m = msg;
    S_TRY(s_check_id(err, errlen, path, "version", m->version, S_REQUIRED));
    S_TRY(s_check_id(err, errlen, path, "previous_version", m->previous_version, S_OPTIONAL));
    S_TRY(s_check_uint(err, errlen, path, "n_skills", m->n_skills, SO_WIRE_MAX_SKILLS));
    S_TRY(s_check_uint(err, errlen, path, "n_agents", m->n_agents, SO_WIRE_MAX_AGENTS));
    return s_check_id(err, errlen, path, "redis_key", m->redis_key, S_REQUIRED);
}

static int s_v_turn_reply(char *err, size_t errlen, const char *path, const void *msg)
{
    const s_pb_turn_reply_t *m = msg;
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
        return s_fail(err, errlen, "%s.result: absent (required unless error is set)", path);
    if (m->partial && (failed || !m->result->partial))
        return s_fail(err, errlen, "%s.partial: a partial reply carries no error and a partial "
                      "result", path);
    if (!m->partial && m->result && m->result->partial)
        return s_fail(err, errlen, "%s.result.partial: set in a final reply", path);
    return s_check_sub(err, errlen, path, "result", m->result,
                       &skillorchestra__v1__agent_result__descriptor, s_v_agent_result, false);
}

/* The demand must be the one inferred for this turn: a mismatched pair is a
 * gateway bug or a forged message, and routing it would credit the wrong turn. */
static int s_v_route_request(char *err, size_t errlen, const char *path, const void *msg)
{
    const s_pb_route_request_t *m = msg;
    S_TRY(s_check_sub(err, errlen, path, "turn", m->turn,
                      &skillorchestra__v1__turn_request__descriptor, s_v_turn_request, true));
    if (!m->turn->episode_id || !*m->turn->episode_id)
        return s_fail(err, errlen, "%s.turn.episode_id: empty (required)", path);
    S_TRY(s_check_sub(err, errlen, path, "demand", m->demand,
                      &skillorchestra__v1__skill_demand__descriptor, s_v_skill_demand, true));
    if (strcmp(m->demand->request_id, m->turn->request_id) != 0)
        return s_fail(err, errlen, "%s.demand.request_id: \"%s\" differs from turn.request_id",
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
    [SO_MSG_HANDBOOK_ANNOUNCEMENT] = s_v_handbook_announcement,
    [SO_MSG_TURN_REPLY] = s_v_turn_reply,
    [SO_MSG_ROUTE_REQUEST] = s_v_route_request,
};

int so_wire_validate(so_msg_type_t type, const void *msg, char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *d = so_wire_descriptor(type);
    if (!d)
        return s_fail(err, errlen, "unknown message type %d", (int) type);
    if (!msg)
        return s_fail(err, errlen, "%s: NULL message", s_types[type].name);
    const ProtobufCMessageDescriptor *got = ((const ProtobufCMessage *) msg)->descriptor;
    if (got != d)
        return s_fail(err, errlen, "message is %s, not %s",
                      got ? s_name(got->name) : "uninitialized", s_name(d->name));
    return s_validators[type](err, errlen, s_name(d->name), msg);
}

/* ------------------------------------------------------------------------
 * Encode / decode.
 */

static int s_encode_size(so_msg_type_t type, const void *msg, size_t *size, char *err,
                         size_t errlen)
{
    if (so_wire_validate(type, msg, err, errlen) != 0)
        return -1;
    *size = protobuf_c_message_get_packed_size(msg);
    if (*size > SO_WIRE_MAX_BODY)
        return s_fail(err, errlen, "%s: body %zu bytes exceeds limit %u", s_types[type].name,
                      *size, SO_WIRE_MAX_BODY);
    return 0;
}

int so_wire_encode(so_msg_type_t type, const void *msg, uint8_t hdr[SO_WIRE_HDR_LEN],
                   uint8_t **body_out, size_t *body_len, char *err, size_t errlen)
{
    size_t size;
    *body_out = NULL;
    *body_len = 0;
    if (s_encode_size(type, msg, &size, err, errlen) != 0)
        return -1;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return s_fail(err, errlen, "out of memory (%zu bytes)", size);
    size_t packed = protobuf_c_message_pack(msg, buf);
    if (packed != size) {
        free(buf);
        return s_fail(err, errlen, "%s: packed %zu bytes, expected %zu", s_types[type].name,
                      packed, size);
    }
    so_wire_header(type, hdr);
    *body_out = buf;
    *body_len = size;
    return 0;
}

int so_wire_pack_zmq(so_msg_type_t type, const void *msg, zmq_msg_t *hdr, zmq_msg_t *body,
                     char *err, size_t errlen)
{
    size_t size;
    if (s_encode_size(type, msg, &size, err, errlen) != 0)
        return -1;
    if (zmq_msg_init_size(body, size) != 0)
        return s_fail(err, errlen, "zmq_msg_init_size: %s", zmq_strerror(errno));
    if (zmq_msg_init_size(hdr, SO_WIRE_HDR_LEN) != 0) {
        int e = errno;
        zmq_msg_close(body);
        return s_fail(err, errlen, "zmq_msg_init_size: %s", zmq_strerror(e));
    }
    size_t packed = size ? protobuf_c_message_pack(msg, zmq_msg_data(body)) : 0;
    if (packed != size) {
        zmq_msg_close(hdr);
        zmq_msg_close(body);
        return s_fail(err, errlen, "%s: packed %zu bytes, expected %zu", s_types[type].name,
                      packed, size);
    }
    so_wire_header(type, zmq_msg_data(hdr));
    return 0;
}

int so_wire_decode(const void *hdr, size_t hdr_len, const void *body, size_t body_len,
                   so_msg_type_t expect, void **msg_out, char *err, size_t errlen)
{
    so_msg_type_t type;
    *msg_out = NULL;
    if (so_wire_parse_header(hdr, hdr_len, &type, err, errlen) != 0)
        return -1;
    if (expect != SO_MSG_ANY && type != expect)
        return s_fail(err, errlen, "expected %s, got %s", so_wire_type_name(expect),
                      so_wire_type_name(type));
    const char *name = s_types[type].name;
    if (body_len > SO_WIRE_MAX_BODY)
        return s_fail(err, errlen, "%s: body %zu bytes exceeds limit %u", name, body_len,
                      SO_WIRE_MAX_BODY);
    if (body_len && !body)
        return s_fail(err, errlen, "%s: NULL body", name);

    s_scan_t scan = {.base = body, .body_len = body_len, .err = err, .errlen = errlen};
    if (s_scan_msg(&scan, s_types[type].desc, body, body_len, 0) != 0)
        return -1;

    static const uint8_t empty[1];
    ProtobufCMessage *m = protobuf_c_message_unpack(s_types[type].desc, NULL, body_len,
                                                    body_len ? body : empty);
    if (!m)
        return s_fail(err, errlen, "malformed protobuf (body %zu bytes): %s rejected by protobuf-c",
                      body_len, name);
    if (so_wire_validate(type, m, err, errlen) != 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return -1;
    }
    *msg_out = m;
    return 0;
}

void so_wire_free(so_msg_type_t type, void *msg)
{
    (void) type;
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}

/* ------------------------------------------------------------------------
 * Sockets.
 */

void so_wire_envelope_reset(so_wire_envelope_t *env)
{
    if (env)
        env->n = 0;
}

int so_wire_envelope_push(so_wire_envelope_t *env, const void *data, size_t len)
{
    if (!env || env->n >= SO_WIRE_MAX_ENVELOPE || len > SO_WIRE_MAX_ROUTING_ID ||
        (len && !data))
        return -1;
    if (len)
        memcpy(env->frame[env->n], data, len);
    env->len[env->n++] = len;
    return 0;
}

int so_wire_send(void *sock, const so_wire_envelope_t *env, so_msg_type_t type,
                 const void *msg, int flags, char *err, size_t errlen)
{
    zmq_msg_t hdr, body;
    if (env && env->n > SO_WIRE_MAX_ENVELOPE) {
        errno = EINVAL;
        return s_fail(err, errlen, "envelope has %zu frames (limit %d)", env->n,
                      SO_WIRE_MAX_ENVELOPE);
    }
    if (so_wire_pack_zmq(type, msg, &hdr, &body, err, errlen) != 0) {
        errno = EINVAL;
        return -1;
    }
    size_t n = env ? env->n : 0;
    int rc = 0;
    /* libzmq queues a multipart message atomically: HWM and routability are
     * decided on the first frame, so a failure can only come from there
     * (or from ETERM, after which nothing is delivered anyway). */
    for (size_t i = 0; i < n && rc == 0; i++)
        if (zmq_send(sock, env->frame[i], env->len[i], flags | ZMQ_SNDMORE) < 0)
            rc = -1;
    if (rc == 0 && zmq_msg_send(&hdr, sock, flags | ZMQ_SNDMORE) < 0)
        rc = -1;
    if (rc == 0 && zmq_msg_send(&body, sock, flags) < 0)
        rc = -1;
    int e = errno;
    zmq_msg_close(&hdr);   /* no-ops after a successful send */
    zmq_msg_close(&body);
    if (rc != 0) {
        errno = e;
        return s_fail(err, errlen, "send %s: %s", so_wire_type_name(type), zmq_strerror(e));
    }
    return 0;
}

#define S_MAX_FRAMES (SO_WIRE_MAX_ENVELOPE + 2)

int so_wire_recv(void *sock, so_wire_envelope_t *env, so_msg_type_t expect,
                 so_msg_type_t *type_out, void **msg_out, int flags, char *err, size_t errlen)
{
    zmq_msg_t parts[S_MAX_FRAMES];
    size_t n = 0, total = 0;
    int more = 1, rc = 0, e = 0;

    *msg_out = NULL;
    so_wire_envelope_reset(env);
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *m = n < S_MAX_FRAMES ? &parts[n] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, total == 0 ? flags : 0) < 0) {
            e = errno;
            zmq_msg_close(m);
            if (total > 0 && e == EINTR)
                continue;   /* the rest of a multipart message is already here */
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            errno = e;
            return s_fail(err, errlen, "recv: %s", zmq_strerror(e));
        }
        total++;
        more = zmq_msg_more(m);
        if (m == &scratch)
            zmq_msg_close(m);
        else
            n++;
    }

    if (total > S_MAX_FRAMES) {
        rc = s_fail(err, errlen, "message has %zu frames (limit %d)", total, S_MAX_FRAMES);
    } else if (total < 2) {
        rc = s_fail(err, errlen, "message has %zu frame (want header and body)", total);
    } else if (n > 2 && !env) {
        rc = s_fail(err, errlen, "message has %zu envelope frames, none expected", n - 2);
    } else {
        for (size_t i = 0; i + 2 < n && rc == 0; i++)
            if (so_wire_envelope_push(env, zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i])) != 0)
                rc = s_fail(err, errlen, "envelope frame %zu is %zu bytes (limit %d)", i,
                            zmq_msg_size(&parts[i]), SO_WIRE_MAX_ROUTING_ID);
        if (rc == 0)
            rc = so_wire_decode(zmq_msg_data(&parts[n - 2]), zmq_msg_size(&parts[n - 2]),
                                zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]),
                                expect, msg_out, err, errlen);
        if (rc == 0 && type_out)
            so_wire_parse_header(zmq_msg_data(&parts[n - 2]), SO_WIRE_HDR_LEN, type_out, NULL,
                                 0);
    }
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    if (rc != 0) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

void so_wire_sockopts_defaults(so_wire_sockopts_t *o)
{
    o->sndhwm = 1000;
    o->rcvhwm = 1000;
    o->linger_ms = 1000;
    o->maxmsgsize = SO_WIRE_MAX_BODY;
    o->heartbeat_ivl_ms = 5000;
    o->heartbeat_timeout_ms = 15000;
    o->heartbeat_ttl_ms = 15000;
    o->router_mandatory = 1;
}

static int s_setopt(void *sock, int opt, const char *name, const void *val, size_t len,
                    char *err, size_t errlen)
{
    if (zmq_setsockopt(sock, opt, val, len) != 0) {
        int e = errno;
        s_fail(err, errlen, "zmq_setsockopt %s: %s", name, zmq_strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

int so_wire_set_sockopts(void *sock, const so_wire_sockopts_t *opts, char *err, size_t errlen)
{
    so_wire_sockopts_t d;
    if (!opts) {
        so_wire_sockopts_defaults(&d);
        opts = &d;
    }
#define S_SET(opt, field)                                                                          \
    S_TRY(s_setopt(sock, opt, #opt, &opts->field, sizeof opts->field, err, errlen))
    S_SET(ZMQ_SNDHWM, sndhwm);
    S_SET(ZMQ_RCVHWM, rcvhwm);
    S_SET(ZMQ_LINGER, linger_ms);
    S_SET(ZMQ_MAXMSGSIZE, maxmsgsize);
    S_SET(ZMQ_HEARTBEAT_IVL, heartbeat_ivl_ms);
    S_SET(ZMQ_HEARTBEAT_TIMEOUT, heartbeat_timeout_ms);
    S_SET(ZMQ_HEARTBEAT_TTL, heartbeat_ttl_ms);
#undef S_SET
    int type = 0;
    size_t len = sizeof type;
    if (zmq_getsockopt(sock, ZMQ_TYPE, &type, &len) != 0) {
        int e = errno;
        s_fail(err, errlen, "zmq_getsockopt ZMQ_TYPE: %s", zmq_strerror(e));
        errno = e;
        return -1;
    }
    if (type == ZMQ_ROUTER)
        S_TRY(s_setopt(sock, ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY",
                       &opts->router_mandatory, sizeof opts->router_mandatory, err, errlen));
    return 0;
}
