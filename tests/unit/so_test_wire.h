/*
 * so_test_wire — what the so_wire tests share: the golden vectors in
 * tests/golden (read, decode, re-encode byte for byte), decoding bytes or a
 * message packed without validation (as a bad peer would send it), and the
 * assertion that a mutated message is refused on decode and on encode.
 * Run the tests from the repo root.
 *
 * Header-only; every helper is static inline so a test that does not use
 * one gets no unused-function warning.
 */
#ifndef SO_TEST_WIRE_H
#define SO_TEST_WIRE_H

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/so_wire.h"

#define GOLDEN_DIR "tests/golden"

#define assert_dbl(a, b) assert_true((a) == (b))

#define assert_err_contains(err, s) \
    do { \
        if (!strstr((err), (s))) { \
            print_error("error \"%s\" does not contain \"%s\"\n", (err), (s)); \
            fail(); \
        } \
    } while (0)

/* The golden vectors checked here (route_request.bin: test_so_wire_route). */
static const struct {
    const char *file;
    so_msg_type_t type;
} s_golden[] = {
    { "turn_request", SO_MSG_TURN_REQUEST },
    { "skill_demand", SO_MSG_SKILL_DEMAND },
    { "routing_decision", SO_MSG_ROUTING_DECISION },
    { "agent_call", SO_MSG_AGENT_CALL },
    { "agent_result", SO_MSG_AGENT_RESULT },
    { "episode_outcome", SO_MSG_EPISODE_OUTCOME },
    { "turn_reply", SO_MSG_TURN_REPLY },
};
#define N_GOLDEN (sizeof s_golden / sizeof s_golden[0])

/* tests/golden/<name>.bin, malloc'd; fails the test if missing. */
static inline uint8_t *s_read(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.bin", GOLDEN_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        print_error("cannot open %s (run from the repo root)\n", path);
        fail();
    }
    uint8_t *buf = malloc(65536);
    assert_non_null(buf);
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    assert_true(*len >= SO_WIRE_HDR_LEN && *len < 65536);
    return buf;
}

/* Decodes a golden file (must succeed) and keeps its bytes in *file. */
static inline void *s_golden_decode(const char *name, so_msg_type_t type, uint8_t **file,
                                    size_t *file_len)
{
    char err[256] = "";
    void *msg = NULL;
    *file = s_read(name, file_len);
    int rc = so_wire_decode(*file, SO_WIRE_HDR_LEN, *file + SO_WIRE_HDR_LEN,
                            *file_len - SO_WIRE_HDR_LEN, type, &msg, err, sizeof err);
    if (rc != 0) {
        print_error("%s: %s\n", name, err);
        fail();
    }
    assert_non_null(msg);
    return msg;
}

/* Re-encodes msg and compares with the golden bytes. */
static inline void s_assert_reencodes(so_msg_type_t type, const void *msg, const uint8_t *file,
                                      size_t file_len)
{
    char err[256] = "";
    uint8_t hdr[SO_WIRE_HDR_LEN], *body = NULL;
    size_t len = 0;
    if (so_wire_encode(type, msg, hdr, &body, &len, err, sizeof err) != 0) {
        print_error("re-encode: %s\n", err);
        fail();
    }
    assert_int_equal(SO_WIRE_HDR_LEN + len, file_len);
    assert_memory_equal(hdr, file, SO_WIRE_HDR_LEN);
    assert_memory_equal(body, file + SO_WIRE_HDR_LEN, len);
    free(body);
}

/* Packs msg with protobuf-c directly (no validation, as a bad peer would)
 * and decodes it as type.  Returns so_wire_decode's result; err holds the
 * message.  Also checks that the encode-side validator agrees. */
static inline int s_raw_decode(so_msg_type_t type, const void *msg, char *err, size_t errlen)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *b = malloc(n + 1);
    assert_non_null(b);
    assert_int_equal(protobuf_c_message_pack(msg, b), n);
    uint8_t hdr[SO_WIRE_HDR_LEN];
    so_wire_header(type, hdr);
    void *out = NULL;
    int rc = so_wire_decode(hdr, sizeof hdr, b, n, type, &out, err, errlen);
    if (rc == 0) {
        assert_non_null(out);
        so_wire_free(type, out);
    } else {
        assert_null(out);
    }
    free(b);
    return rc;
}

/* Asserts that a (mutated) message is rejected on decode and on encode with
 * an error containing want. */
static inline void s_assert_rejected(so_msg_type_t type, const void *msg, const char *want)
{
    char err[512] = "";
    assert_int_equal(s_raw_decode(type, msg, err, sizeof err), -1);
    assert_err_contains(err, want);
    err[0] = 0;
    assert_int_equal(so_wire_validate(type, msg, err, sizeof err), -1);
    assert_err_contains(err, want);
    uint8_t hdr[SO_WIRE_HDR_LEN], *body = (uint8_t *) 1;
    size_t len = 1;
    assert_int_equal(so_wire_encode(type, msg, hdr, &body, &len, err, sizeof err), -1);
    assert_null(body);
    assert_int_equal(len, 0);
}

static inline int s_decode_bytes(so_msg_type_t type, const uint8_t *body, size_t len, char *err,
                                 size_t errlen)
{
    uint8_t hdr[SO_WIRE_HDR_LEN];
    so_wire_header(type, hdr);
    void *out = NULL;
    int rc = so_wire_decode(hdr, sizeof hdr, body, len, type, &out, err, errlen);
    so_wire_free(type, out);
    return rc;
}

#endif
