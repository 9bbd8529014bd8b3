/*
 * so_wire_scan — pass 1 of decoding (see so_wire.h, so_wire_scan): a walk
 * over the raw protobuf with the generated descriptors before protobuf-c
 * sees it.
 *
 * protobuf-c 1.4.1 counts repeated elements and allocates for them without
 * a limit, stores unknown fields, and cuts strings at an embedded NUL
 * without telling anyone; the scan rejects truncation, bad wire types, NULs
 * in strings, repeated counts over their cap and bodies that would make
 * protobuf-c allocate too many objects, so the allocation that follows is
 * bounded by what we allow, not by what the peer declared.
 *
 * Owns the table of caps on repeated fields.
 */
#include "wire/so_wire.h"
#include "base/so_err.h"

#include <stdbool.h>
#include <string.h>


/* Caps on repeated fields, by message and field.  A repeated field missing
 * here has cap 0, so a field added to the .proto without a cap makes the
 * golden test fail instead of going unbounded. */
static const struct {
    const ProtobufCMessageDescriptor *msg;
    const char *field;
    size_t max;
} s_caps[] = {
    { &skillorchestra__v1__turn_request__descriptor, "messages", SO_WIRE_MAX_MESSAGES },
    { &skillorchestra__v1__turn_request__descriptor, "exclude_agents", SO_WIRE_MAX_AGENTS },
    { &skillorchestra__v1__skill_demand__descriptor, "skills", SO_WIRE_MAX_SKILLS },
    { &skillorchestra__v1__agent_score__descriptor, "skills", SO_WIRE_MAX_SKILLS },
    { &skillorchestra__v1__routing_decision__descriptor, "scores", SO_WIRE_MAX_AGENTS },
    { &skillorchestra__v1__routing_decision__descriptor, "top_skills", SO_WIRE_MAX_SKILLS },
    { &skillorchestra__v1__agent_call__descriptor, "messages", SO_WIRE_MAX_MESSAGES },
    { &skillorchestra__v1__turn_record__descriptor, "demand", SO_WIRE_MAX_SKILLS },
    { &skillorchestra__v1__episode_outcome__descriptor, "turns", SO_WIRE_MAX_TURNS },
};

static size_t s_cap(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f)
{
    for (size_t i = 0; i < sizeof s_caps / sizeof s_caps[0]; i++)
        if (s_caps[i].msg == d && strcmp(s_caps[i].field, f->name) == 0)
            return s_caps[i].max;
    return 0;
}

#define S_SCAN_MAX_DEPTH 8
#define S_SCAN_MAX_FIELDS 32 /* fields per message in our schema, checked */

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
        v |= (uint64_t) (b & 0x7f) << (7 * i);
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
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_BOOL:
    case PROTOBUF_C_TYPE_ENUM: want = 0; break;
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: want = 1; break;
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT: want = 5; break;
    default: return wt == 2;
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
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return len / 8;
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return len / 4;
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
        return so_err(
            s->err, s->errlen,
            "truncated protobuf (body %zu bytes): %s.%s at offset %zu runs past the end",
            s->body_len, so_wire_pb_name(d->name), f->name, off);
    return so_err(
        s->err, s->errlen,
        "truncated protobuf (body %zu bytes): %s field %u at offset %zu runs past the end",
        s->body_len, so_wire_pb_name(d->name), num, off);
}

static int s_scan_msg(s_scan_t *s, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                      size_t len, int depth)
{
    size_t counts[S_SCAN_MAX_FIELDS] = { 0 };
    if (depth > S_SCAN_MAX_DEPTH)
        return so_err(s->err, s->errlen, "malformed protobuf: %s nested deeper than %d",
                      so_wire_pb_name(d->name), S_SCAN_MAX_DEPTH);
    if (d->n_fields > S_SCAN_MAX_FIELDS)
        return so_err(s->err, s->errlen, "%s has %u fields; raise S_SCAN_MAX_FIELDS",
                      so_wire_pb_name(d->name), d->n_fields);

    size_t pos = 0;
    while (pos < len) {
        size_t off = (size_t) (p - s->base) + pos;
        uint64_t tag;
        int rc = s_varint(p, len, &pos, &tag);
        if (rc == -1)
            return so_err(
                s->err, s->errlen,
                "truncated protobuf (body %zu bytes): %s tag at offset %zu runs past the end",
                s->body_len, so_wire_pb_name(d->name), off);
        if (rc < 0 || tag >> 32 || (tag >> 3) == 0)
            return so_err(s->err, s->errlen, "malformed protobuf: %s bad tag at offset %zu",
                          so_wire_pb_name(d->name), off);
        unsigned num = (unsigned) (tag >> 3), wt = (unsigned) (tag & 7);
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
                return so_err(s->err, s->errlen,
                              "malformed protobuf: %s field %u at offset %zu: varint too long",
                              so_wire_pb_name(d->name), num, off);
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
                return so_err(s->err, s->errlen,
                              "malformed protobuf: %s field %u at offset %zu: length too long",
                              so_wire_pb_name(d->name), num, off);
            if (v > len - pos)
                return s_truncated(s, d, f, num, off);
            payload = p + pos;
            plen = (size_t) v;
            pos += plen;
            break;
        default:
            return so_err(
                s->err, s->errlen,
                "malformed protobuf: %s field %u at offset %zu: wire type %u unsupported",
                so_wire_pb_name(d->name), num, off, wt);
        }

        if (!f) {
            /* Unknown field: protobuf-c keeps a copy (forward compatibility). */
            if (++s->unknown > SO_WIRE_MAX_UNKNOWN)
                return so_err(s->err, s->errlen, "%s: more than %d unknown fields",
                              so_wire_pb_name(d->name), SO_WIRE_MAX_UNKNOWN);
            s->nodes++;
        } else {
            bool packed;
            if (!s_wire_type_ok(f, wt, &packed))
                return so_err(s->err, s->errlen,
                              "malformed protobuf: %s.%s at offset %zu has wire type %u",
                              so_wire_pb_name(d->name), f->name, off, wt);
            size_t idx = (size_t) (f - d->fields);
            if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                size_t n = packed ? s_packed_count(f, payload, plen) : 1;
                counts[idx] += n;
                s->nodes += n;
            }
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                const uint8_t *nul = memchr(payload, 0, plen);
                if (nul)
                    return so_err(s->err, s->errlen, "%s.%s: embedded NUL at byte %zu",
                                  so_wire_pb_name(d->name), f->name, (size_t) (nul - payload));
                s->nodes++;
            } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
                s->nodes++;
            } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                /* protobuf-c merges repeats of a singular sub-message by
                 * re-copying its arrays each time: quadratic in a hostile
                 * body.  Our encoders never repeat one, so refuse. */
                if (f->label != PROTOBUF_C_LABEL_REPEATED && ++counts[idx] > 1)
                    return so_err(
                        s->err, s->errlen,
                        "malformed protobuf: %s.%s at offset %zu repeats a singular field",
                        so_wire_pb_name(d->name), f->name, off);
                s->nodes++;
                if (s_scan_msg(s, f->descriptor, payload, plen, depth + 1) != 0)
                    return -1;
            }
        }
        if (s->nodes > SO_WIRE_MAX_NODES)
            return so_err(s->err, s->errlen, "%s: body would unpack into more than %u objects",
                          so_wire_pb_name(d->name), SO_WIRE_MAX_NODES);
    }

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REPEATED || counts[i] == 0)
            continue;
        size_t cap = s_cap(d, f);
        if (counts[i] > cap)
            return so_err(s->err, s->errlen, "%s.%s: %zu entries (limit %zu)",
                          so_wire_pb_name(d->name), f->name, counts[i], cap);
    }
    return 0;
}

int so_wire_scan(so_msg_type_t type, const void *body, size_t body_len, char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *d = so_wire_descriptor(type);
    if (!d)
        return so_err(err, errlen, "unknown message type %d", (int) type);
    s_scan_t scan = { .base = body, .body_len = body_len, .err = err, .errlen = errlen };
    return s_scan_msg(&scan, d, body, body_len, 0);
}
