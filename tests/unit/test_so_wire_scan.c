/*
 * Tests for so_wire_scan, the raw protobuf pre-scan that runs before
 * protobuf-c allocates: truncation at every offset of every golden body,
 * malformed tags and wire types, embedded NULs (and UTF-8, checked right
 * after), the body limit, repeated-field caps and the allocation caps.
 * Run from the repo root.
 */
#include "so_test_wire.h"

/* Marks the offsets in a well-formed body where a top-level field starts. */
static void s_top_boundaries(const uint8_t *b, size_t len, bool *at)
{
    size_t pos = 0;
    memset(at, 0, len + 1);
    at[0] = true;
    while (pos < len) {
        uint64_t tag = 0, v = 0;
        for (unsigned sh = 0;; sh += 7) {
            tag |= (uint64_t) (b[pos] & 0x7f) << sh;
            if (!(b[pos++] & 0x80))
                break;
        }
        switch (tag & 7) {
        case 0:
            while (b[pos++] & 0x80)
                ;
            break;
        case 1: pos += 8; break;
        case 5: pos += 4; break;
        case 2:
            for (unsigned sh = 0;; sh += 7) {
                v |= (uint64_t) (b[pos] & 0x7f) << sh;
                if (!(b[pos++] & 0x80))
                    break;
            }
            pos += v;
            break;
        default: fail();
        }
        assert_true(pos <= len);
        at[pos] = true;
    }
}

static void test_truncated_bodies(void **state)
{
    for (size_t g = 0; g < N_GOLDEN; g++) {
        size_t len;
        uint8_t *file = s_read(s_golden[g].file, &len);
        const uint8_t *body = file + SO_WIRE_HDR_LEN;
        size_t body_len = len - SO_WIRE_HDR_LEN;
        bool *at = malloc(body_len + 1);
        assert_non_null(at);
        s_top_boundaries(body, body_len, at);
        size_t n_truncated = 0;
        for (size_t cut = 0; cut < body_len; cut++) {
            char err[512] = "", want[64];
            int rc = s_decode_bytes(s_golden[g].type, body, cut, err, sizeof err);
            if (at[cut])
                continue; /* a shorter, well-formed message: validation decides */
            assert_int_equal(rc, -1);
            snprintf(want, sizeof want, "truncated protobuf (body %zu bytes)", cut);
            assert_err_contains(err, want);
            n_truncated++;
        }
        assert_true(n_truncated > body_len / 2);
        free(at);
        free(file);
    }
}

static void test_cut_at_boundary_still_validated(void **state)
{
    /* The empty prefix of every golden body misses its required id. */
    for (size_t g = 0; g < N_GOLDEN; g++) {
        char err[256] = "";
        assert_int_equal(s_decode_bytes(s_golden[g].type, (const uint8_t *) "", 0, err,
                                        sizeof err),
                         -1);
        assert_err_contains(err, so_wire_type_name(s_golden[g].type));
        assert_err_contains(err, "empty (required)");
    }
}

static void test_body_too_large(void **state)
{
    char err[256];
    size_t n = SO_WIRE_MAX_BODY + 1;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, big, n, err, sizeof err), -1);
    assert_err_contains(err, "exceeds limit 4194304");
    free(big);

    /* encode: five 1 MiB messages are each fine but too big together */
    char *content = malloc(SO_WIRE_MAX_TEXT + 1);
    assert_non_null(content);
    memset(content, 'x', SO_WIRE_MAX_TEXT);
    content[SO_WIRE_MAX_TEXT] = 0;
    so_pb_chat_message_t chat[5];
    so_pb_chat_message_t *cp[5];
    for (int i = 0; i < 5; i++) {
        chat[i] = (so_pb_chat_message_t) SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT;
        chat[i].role = "user";
        chat[i].content = content;
        cp[i] = &chat[i];
    }
    so_pb_turn_request_t m = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    m.request_id = "r";
    m.episode_id = "e";
    m.n_messages = 5;
    m.messages = cp;
    uint8_t hdr[4], *body;
    size_t len;
    assert_int_equal(so_wire_encode(SO_MSG_TURN_REQUEST, &m, hdr, &body, &len, err, sizeof err),
                     -1);
    assert_err_contains(err, "TurnRequest: body");
    assert_err_contains(err, "exceeds limit");

    /* one message over 1 MiB */
    content[SO_WIRE_MAX_TEXT - 1] = 'y';
    char *longer = malloc(SO_WIRE_MAX_TEXT + 2);
    assert_non_null(longer);
    memcpy(longer, content, SO_WIRE_MAX_TEXT);
    longer[SO_WIRE_MAX_TEXT] = 'z';
    longer[SO_WIRE_MAX_TEXT + 1] = 0;
    chat[0].content = longer;
    m.n_messages = 1;
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m,
                      "TurnRequest.messages[0].content: longer than 1048576 bytes");
    free(longer);
    free(content);
}

static void test_malformed_bytes(void **state)
{
    char err[256];
    /* request_id sent as a varint */
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, (const uint8_t *) "\x08\x01", 2, err,
                                    sizeof err),
                     -1);
    assert_string_equal(err,
                        "malformed protobuf: TurnRequest.request_id at offset 0 has wire type 0");
    /* group wire type */
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, (const uint8_t *) "\x0b", 1, err,
                                    sizeof err),
                     -1);
    assert_err_contains(err, "wire type 3 unsupported");
    /* field number 0 */
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, (const uint8_t *) "\x02\x00", 2, err,
                                    sizeof err),
                     -1);
    assert_err_contains(err, "bad tag at offset 0");
    /* an 11-byte varint */
    assert_int_equal(
        s_decode_bytes(SO_MSG_TURN_REQUEST,
                       (const uint8_t *) "\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12,
                       err, sizeof err),
        -1);
    assert_err_contains(err, "varint too long");
    /* nested length runs past its parent */
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, (const uint8_t *) "\x2a\x02\x0a\x05", 4,
                                    err, sizeof err),
                     -1);
    assert_err_contains(err, "truncated protobuf (body 4 bytes): ChatMessage.role at offset 2");
    /* a singular sub-message twice (protobuf-c would merge them) */
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REPLY,
                                    (const uint8_t *) "\x0a\x01r\x2a\x00\x2a\x00", 7, err,
                                    sizeof err),
                     -1);
    assert_string_equal(
        err, "malformed protobuf: TurnReply.result at offset 5 repeats a singular field");
}

static void test_embedded_nul_and_utf8(void **state)
{
    char err[256];
    static const uint8_t nul[] = { 0x0a, 0x03, 'a', 0x00, 'b', 0x12, 0x01, 'e' };
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, nul, sizeof nul, err, sizeof err), -1);
    assert_string_equal(err, "TurnRequest.request_id: embedded NUL at byte 1");

    /* inside a nested message */
    static const uint8_t nul2[] = { 0x0a, 0x01, 'r', 0x12, 0x01, 'e', 0x2a, 0x07,
                                    0x0a, 0x01, 'u', 0x12, 0x02, 'h', 0x00 };
    assert_int_equal(s_decode_bytes(SO_MSG_TURN_REQUEST, nul2, sizeof nul2, err, sizeof err), -1);
    assert_string_equal(err, "ChatMessage.content: embedded NUL at byte 1");

    so_pb_turn_request_t m = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    so_pb_chat_message_t c = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT, *cp = &c;
    m.request_id = "r";
    m.episode_id = "e";
    m.n_messages = 1;
    m.messages = &cp;
    c.role = "user";
    c.content = "ok \xc3\xa9";
    char err2[256];
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &m, err2, sizeof err2), 0);
    c.content = "bad \xc0\xaf"; /* overlong '/' */
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m,
                      "TurnRequest.messages[0].content: invalid UTF-8 at byte 4");
    c.content = "\xed\xa0\x80"; /* surrogate */
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m, "invalid UTF-8 at byte 0");
    c.content = "cut \xe2\x80";
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m, "invalid UTF-8 at byte 4");
    c.content = "line\nbreaks\tare fine in text";
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &m, err2, sizeof err2), 0);
    m.episode_id = "ep\n1";
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m,
                      "TurnRequest.episode_id: control character 0x0a at byte 2");
    m.episode_id = "\xff";
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m, "TurnRequest.episode_id: invalid UTF-8 at byte 0");
}

static void test_oversized_counts(void **state)
{
    enum { N = SO_WIRE_MAX_MESSAGES + 1 };
    static so_pb_chat_message_t chat[N];
    static so_pb_chat_message_t *cp[N];
    static char *ex[N];
    for (int i = 0; i < N; i++) {
        chat[i] = (so_pb_chat_message_t) SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT;
        chat[i].role = "user";
        chat[i].content = "hi";
        cp[i] = &chat[i];
        ex[i] = "agent";
    }
    so_pb_turn_request_t m = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    m.request_id = "r";
    m.episode_id = "e";
    m.n_messages = N;
    m.messages = cp;
    /* the scan rejects it before protobuf-c allocates; validate agrees */
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m, "TurnRequest.messages: 257 entries (limit 256)");
    m.n_messages = N - 1;
    char err[256];
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &m, err, sizeof err), 0);
    m.n_exclude_agents = SO_WIRE_MAX_AGENTS + 1;
    m.exclude_agents = ex;
    s_assert_rejected(SO_MSG_TURN_REQUEST, &m,
                      "TurnRequest.exclude_agents: 257 entries (limit 256)");

    enum { S = SO_WIRE_MAX_SKILLS + 1 };
    static so_pb_skill_weight_t w[S];
    static so_pb_skill_weight_t *wp[S];
    for (int i = 0; i < S; i++) {
        w[i] = (so_pb_skill_weight_t) SKILLORCHESTRA__V1__SKILL_WEIGHT__INIT;
        w[i].skill_id = "s";
        w[i].weight = 0.001;
        wp[i] = &w[i];
    }
    so_pb_skill_demand_t d = SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
    d.request_id = "r";
    d.handbook_version = "v";
    d.source = SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_EMBEDDED;
    d.n_skills = S;
    d.skills = wp;
    s_assert_rejected(SO_MSG_SKILL_DEMAND, &d, "SkillDemand.skills: 1025 entries (limit 1024)");
    d.n_skills = S - 1;
    assert_int_equal(so_wire_validate(SO_MSG_SKILL_DEMAND, &d, err, sizeof err), 0);
    char err2[256];
    assert_int_equal(s_raw_decode(SO_MSG_SKILL_DEMAND, &d, err2, sizeof err2), 0);
}

static void test_allocation_caps(void **state)
{
    char err[256];
    /* 1025 unknown varint fields */
    size_t n = 2 * (SO_WIRE_MAX_UNKNOWN + 1);
    uint8_t *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i += 2) {
        b[i] = (15 << 3) | 0; /* field 15: unknown to EpisodeOutcome */
        b[i + 1] = 1;
    }
    assert_int_equal(s_decode_bytes(SO_MSG_EPISODE_OUTCOME, b, n, err, sizeof err), -1);
    assert_string_equal(err, "EpisodeOutcome: more than 1024 unknown fields");
    free(b);

    /* EpisodeOutcome: 256 turns x 1024 empty demand entries = 2^19 objects
     * from ~530 KB: each count is within its cap, the total is not. */
    size_t inner = SO_WIRE_MAX_SKILLS * 2; /* 0x22 0x00 per entry */
    size_t turn = 1 + 3 + inner;           /* 0x2a, 3-byte length, entries */
    n = SO_WIRE_MAX_TURNS * turn;
    b = malloc(n);
    assert_non_null(b);
    uint8_t *p = b;
    for (int t = 0; t < SO_WIRE_MAX_TURNS; t++) {
        *p++ = 0x2a;
        *p++ = (uint8_t) (0x80 | (inner & 0x7f));
        *p++ = (uint8_t) (0x80 | ((inner >> 7) & 0x7f));
        *p++ = (uint8_t) (inner >> 14);
        for (int s = 0; s < SO_WIRE_MAX_SKILLS; s++) {
            *p++ = 0x22;
            *p++ = 0x00;
        }
    }
    assert_int_equal((size_t) (p - b), n);
    assert_int_equal(s_decode_bytes(SO_MSG_EPISODE_OUTCOME, b, n, err, sizeof err), -1);
    assert_err_contains(err, "would unpack into more than 262144 objects");
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_bodies),
        cmocka_unit_test(test_cut_at_boundary_still_validated),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_malformed_bytes),
        cmocka_unit_test(test_embedded_nul_and_utf8),
        cmocka_unit_test(test_oversized_counts),
        cmocka_unit_test(test_allocation_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
