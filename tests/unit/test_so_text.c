/* Unit tests for so_text: tokenizer, term hashes, term extraction. */
#include "so_test_util.h"
#include "base/so_text.h"

/* The span's text equals s (byte for byte, case kept). */
static void s_assert_span(so_span_t sp, const char *s)
{
    if (sp.len != strlen(s) || memcmp(sp.s, s, sp.len) != 0)
        fail_msg("span \"%.*s\" (len %zu), expected \"%s\"", (int) sp.len, sp.s, sp.len, s);
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static void test_tokens_case_kept_hash_folded(void **state)
{
    so_span_t tok[8];
    size_t n = so_text_tokens("Hello WORLD mixedCase42", tok, 8);
    assert_int_equal(n, 3);
    s_assert_span(tok[0], "Hello"); /* spans point into the caller's text */
    s_assert_span(tok[1], "WORLD");
    s_assert_span(tok[2], "mixedCase42");
    assert_true(so_term_hash(tok[0].s, tok[0].len) == so_term_hash("hello", 5));
    assert_true(so_term_hash(tok[1].s, tok[1].len) == so_term_hash("world", 5));
    assert_true(so_term_hash("hello", 5) != so_term_hash("hellp", 5));
}

static void test_tokens_underscore_is_a_token(void **state)
{
    so_span_t tok[16];
    size_t n = so_text_tokens("Fill in: ___ and _, foo_bar", tok, 16);
    assert_int_equal(n, 8);
    s_assert_span(tok[0], "Fill");
    s_assert_span(tok[1], "in");
    s_assert_span(tok[2], "_"); /* "___" is one blank */
    s_assert_span(tok[3], "and");
    s_assert_span(tok[4], "_");
    s_assert_span(tok[5], "foo");
    s_assert_span(tok[6], "_");
    s_assert_span(tok[7], "bar");
    n = so_text_tokens("foo_bar", tok, 16);
    assert_int_equal(n, 3);
    s_assert_span(tok[0], "foo");
    s_assert_span(tok[1], "_");
    s_assert_span(tok[2], "bar");
}

static void test_tokens_utf8_bytes_kept(void **state)
{
    so_span_t tok[8];
    size_t n = so_text_tokens("Caf\xc3\xa9 na\xc3\xafve, \xe6\x97\xa5\xe6\x9c\xac x", tok, 8);
    assert_int_equal(n, 4);
    s_assert_span(tok[0], "Caf\xc3\xa9");
    s_assert_span(tok[1], "na\xc3\xafve");
    s_assert_span(tok[2], "\xe6\x97\xa5\xe6\x9c\xac");
    s_assert_span(tok[3], "x");
    /* Only ASCII is folded: the UTF-8 bytes hash as they are. */
    assert_true(so_term_hash(tok[0].s, tok[0].len) == so_term_hash("caf\xc3\xa9", 5));
}

static void test_tokens_punctuation_dropped(void **state)
{
    so_span_t tok[16];
    size_t n = so_text_tokens("a.b,c;d!?(e)[f]{g}\"h'i\tj\nk-l", tok, 16);
    const char *want[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l" };
    assert_int_equal(n, 12);
    for (size_t i = 0; i < n; i++)
        s_assert_span(tok[i], want[i]);
    assert_int_equal(so_text_tokens("  ... ?! --- ", tok, 16), 0);
    assert_int_equal(so_text_tokens("", tok, 16), 0);
    assert_int_equal(so_text_tokens(NULL, tok, 16), 0);
}

static void test_tokens_respect_max(void **state)
{
    so_span_t tok[5];
    memset(tok, 0xAB, sizeof tok);
    size_t n = so_text_tokens("a b c d e f g", tok, 3);
    assert_int_equal(n, 3);
    s_assert_span(tok[2], "c");
    /* Nothing written past max. */
    unsigned char *p = (unsigned char *) &tok[3];
    for (size_t i = 0; i < 2 * sizeof *tok; i++)
        assert_int_equal(p[i], 0xAB);
    assert_int_equal(so_text_tokens("a b", tok, 0), 0);
}

static void test_bigram_hash_equals_term_hash(void **state)
{
    so_span_t tok[4];
    assert_int_equal(so_text_tokens("Write   FUNCTION", tok, 4), 2);
    uint64_t h = so_bigram_hash(tok[0], tok[1]);
    assert_true(h == so_term_hash("write function", 14));
    assert_true(h == so_term_hash("Write Function", 14));
    assert_true(h != so_term_hash("writefunction", 13));
    assert_true(h != so_bigram_hash(tok[1], tok[0]));
}

static void test_term_text(void **state)
{
    so_span_t tok[4];
    char buf[64];
    assert_int_equal(so_text_tokens("Write FUNCTION", tok, 4), 2);
    so_span_t none = { NULL, 0 };
    assert_string_equal(so_term_text(tok[0], none, buf, sizeof buf), "write");
    assert_string_equal(so_term_text(tok[0], tok[1], buf, sizeof buf), "write function");
    assert_string_equal(so_term_text(tok[0], tok[1], buf, 8), "write f");
    assert_string_equal(so_term_text(tok[0], tok[1], buf, 1), "");
    /* The text's hash is the bigram hash. */
    so_term_text(tok[0], tok[1], buf, sizeof buf);
    assert_true(so_term_hash(buf, strlen(buf)) == so_bigram_hash(tok[0], tok[1]));
}

static void test_text_terms_unigrams_and_bigrams(void **state)
{
    uint64_t h[16], want[5];
    size_t n = so_text_terms("A b C", h, 16, 0);
    assert_int_equal(n, 3);
    assert_true(h[0] == so_term_hash("a", 1));
    assert_true(h[1] == so_term_hash("b", 1));
    assert_true(h[2] == so_term_hash("c", 1));

    n = so_text_terms("A b C", h, 16, 1);
    assert_int_equal(n, 5);
    want[0] = so_term_hash("a", 1);
    want[1] = so_term_hash("b", 1);
    want[2] = so_term_hash("c", 1);
    want[3] = so_term_hash("a b", 3);
    want[4] = so_term_hash("b c", 3);
    qsort(h, n, sizeof *h, s_cmp_u64);
    qsort(want, 5, sizeof *want, s_cmp_u64);
    assert_memory_equal(h, want, sizeof want);

    assert_int_equal(so_text_terms("", h, 16, 1), 0);
    assert_int_equal(so_text_terms(NULL, h, 16, 1), 0);
    assert_int_equal(so_text_terms("one", h, 16, 1), 1);
}

static void test_text_terms_respects_max(void **state)
{
    uint64_t h[12];
    for (size_t max = 0; max <= 9; max++) {
        for (size_t i = 0; i < 12; i++)
            h[i] = 0xDEADBEEFu;
        size_t n = so_text_terms("a b c d e f g h i j", h, max, 1);
        assert_int_equal(n, max);
        for (size_t i = max; i < 12; i++)
            assert_true(h[i] == 0xDEADBEEFu);
    }
    /* With room for everything: 10 unigrams + 9 bigrams. */
    uint64_t all[32];
    assert_int_equal(so_text_terms("a b c d e f g h i j", all, 32, 1), 19);
}

/* "t0 t1 … t(n-1)" in a malloc'd buffer. */
static char *s_numbered_text(size_t n)
{
    char *t = malloc(n * 8 + 1), *p = t;
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%sT%zu", i ? " " : "", i);
    return t;
}

static void test_text_terms_long_text(void **state)
{
    const size_t N = 1500; /* well past the 512-token chunk */
    char *text = s_numbered_text(N);
    uint64_t *h = malloc(2 * N * sizeof *h), *want = malloc(2 * N * sizeof *want);
    so_span_t *tok = malloc((N + 1) * sizeof *tok);
    assert_non_null(h);
    assert_non_null(want);
    assert_non_null(tok);

    assert_int_equal(so_text_tokens(text, tok, N + 1), N);
    size_t n = so_text_terms(text, h, 2 * N, 1);
    assert_int_equal(n, 2 * N - 1);
    size_t k = 0;
    for (size_t i = 0; i < N; i++) {
        want[k++] = so_term_hash(tok[i].s, tok[i].len);
        if (i)
            want[k++] = so_bigram_hash(tok[i - 1], tok[i]);
    }
    qsort(h, n, sizeof *h, s_cmp_u64);
    qsort(want, k, sizeof *want, s_cmp_u64);
    assert_memory_equal(h, want, k * sizeof *h);
    /* The bigram across the chunk boundary is there. */
    uint64_t cross = so_term_hash("t511 t512", 9);
    assert_non_null(bsearch(&cross, h, n, sizeof *h, s_cmp_u64));

    /* Unigrams only, and a max that cuts the second chunk. */
    assert_int_equal(so_text_terms(text, h, 2 * N, 0), N);
    assert_int_equal(so_text_terms(text, h, 700, 0), 700);
    assert_int_equal(so_text_terms(text, h, 700, 1), 700);
    free(text);
    free(h);
    free(want);
    free(tok);
}

/*
 * CORE BUG (common/base/so_text.c:88, so_text_terms): when the 512th token of a
 * chunk is a multi-underscore blank ("___"), the next chunk restarts at
 * tok.s + tok.len, i.e. on the blank's second '_', so the rest of the blank
 * is tokenized again as an extra "_" token (and an extra "_ _" bigram).
 * Input: 511 words, then "___ x".  Expected 513 unigrams (as
 * so_text_tokens returns), actual 514.  Skipped until the owner fixes it.
 */
static void test_text_terms_blank_at_chunk_boundary(void **state)
{
    char *text = malloc(511 * 2 + 8);
    assert_non_null(text);
    text[0] = '\0';
    for (int i = 0; i < 511; i++)
        strcat(text, "w ");
    strcat(text, "___ x");
    so_span_t *tok = malloc(1024 * sizeof *tok);
    uint64_t *h = malloc(2048 * sizeof *h);
    assert_non_null(tok);
    assert_non_null(h);
    size_t nt = so_text_tokens(text, tok, 1024);
    size_t n = so_text_terms(text, h, 2048, 0);
    free(text);
    free(tok);
    free(h);
    assert_int_equal(nt, 513);
    assert_int_equal(n, nt);
}

/* A cut never leaves half a UTF-8 character behind. */
static void test_fmt_utf8_cuts_on_characters(void **state)
{
    char b[6];
    assert_string_equal(so_text_fmt_utf8(b, sizeof b, "%s", "abc"), "abc");
    assert_string_equal(so_text_fmt_utf8(b, sizeof b, "%s", "abcdefg"), "abcde");
    /* "abc" + é (2 bytes) fits exactly; + € (3 bytes) would be cut. */
    assert_string_equal(so_text_fmt_utf8(b, sizeof b, "abc%s", "\xc3\xa9x"), "abc\xc3\xa9");
    assert_string_equal(so_text_fmt_utf8(b, sizeof b, "abc%s", "\xe2\x82\xac"), "abc");
    assert_string_equal(so_text_fmt_utf8(b, sizeof b, "a%s", "\xf0\x9f\x98\x80!"),
                        "a\xf0\x9f\x98\x80");
    assert_string_equal(so_text_fmt_utf8(b, sizeof b, "ab%s", "\xf0\x9f\x98\x80"), "ab");
}

static void test_utf8_strict(void **state)
{
    assert_int_equal(so_utf8_seq("a", 1), 1);
    assert_int_equal(so_utf8_seq("\xc3\xa9", 2), 2);
    assert_int_equal(so_utf8_seq("\xe2\x82\xac", 3), 3);
    assert_int_equal(so_utf8_seq("\xf0\x9f\x98\x80", 4), 4);
    assert_int_equal(so_utf8_seq("\xe2\x82", 2), -1);        /* cut short */
    assert_int_equal(so_utf8_seq("\xc0\xaf", 2), 0);         /* overlong */
    assert_int_equal(so_utf8_seq("\xed\xa0\x80", 3), 0);     /* surrogate */
    assert_int_equal(so_utf8_seq("\xf4\x90\x80\x80", 4), 0); /* above U+10FFFF */
    assert_int_equal(so_utf8_seq("\x80", 1), 0);
    assert_int_equal(so_utf8_invalid_at("ab\xc3\xa9", 4), 4);
    assert_int_equal(so_utf8_invalid_at("ab\xc3", 3), 2);
    assert_int_equal(so_utf8_invalid_at("a\xff"
                                        "b",
                                        3),
                     1);
    /* Past the eight-bytes-at-a-time ASCII skip, and inside it. */
    assert_int_equal(so_utf8_invalid_at("0123456789abcdefghij\xc3\xa9!", 23), 23);
    assert_int_equal(so_utf8_invalid_at("0123456789abcdefghij\xc3(", 22), 20);
    assert_int_equal(so_utf8_invalid_at("012345678\x80"
                                        "0123456789",
                                        20),
                     9);
    assert_int_equal(so_utf8_invalid_at("0123456\xe2\x82\xac"
                                        "0123456789\xff",
                                        21),
                     20);
    assert_int_equal(so_utf8_cut("ab\xe2\x82\xac", 5, 4), 2);
    assert_int_equal(so_utf8_cut("abc", 3, 10), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_case_kept_hash_folded),
        cmocka_unit_test(test_tokens_underscore_is_a_token),
        cmocka_unit_test(test_tokens_utf8_bytes_kept),
        cmocka_unit_test(test_tokens_punctuation_dropped),
        cmocka_unit_test(test_tokens_respect_max),
        cmocka_unit_test(test_bigram_hash_equals_term_hash),
        cmocka_unit_test(test_term_text),
        cmocka_unit_test(test_text_terms_unigrams_and_bigrams),
        cmocka_unit_test(test_text_terms_respects_max),
        cmocka_unit_test(test_text_terms_long_text),
        cmocka_unit_test(test_text_terms_blank_at_chunk_boundary),
        cmocka_unit_test(test_fmt_utf8_cuts_on_characters),
        cmocka_unit_test(test_utf8_strict),
    };
    return cmocka_run_group_tests_name("so_text", tests, NULL, NULL);
}
