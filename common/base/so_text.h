/*
 * so_text — the tokenizer and term hashing shared by skill inference and
 * skill learning, so both see exactly the same terms.
 *
 * A token is a maximal run of ASCII letters/digits or UTF-8 bytes ≥ 0x80,
 * lowercased; '_' (a fill-in blank) is a token of its own.  A term is a
 * token (unigram) or two adjacent tokens joined by one space (bigram).
 * Terms are identified by a 64-bit FNV-1a hash of their lowercased text, so
 * the term "write function" and the bigram in "Write function" hash alike.
 */
#ifndef SO_TEXT_H
#define SO_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *s; /* points into the caller's text (not lowercased) */
    size_t len;
} so_span_t;

/* Splits text into at most max tokens; returns how many were stored. */
size_t so_text_tokens(const char *text, so_span_t *out, size_t max);

/* Hash of a term's text, lowercased on the fly. */
uint64_t so_term_hash(const char *s, size_t len);
/* Hash of the bigram "a b" (same value as so_term_hash("a b")). */
uint64_t so_bigram_hash(so_span_t a, so_span_t b);

/* Term hashes of text: its unigrams, then (if bigrams) its bigrams.
 * Returns the number stored (≤ max).  No allocation. */
size_t so_text_terms(const char *text, uint64_t *out, size_t max, int bigrams);

/* Writes the lowercased text of a span (or "a b" for a bigram when b.s is not
 * NULL) into buf; returns buf.  Truncates to buflen-1. */
char *so_term_text(so_span_t a, so_span_t b, char *buf, size_t buflen);

/* Formats into buf (like snprintf) and, when the result was cut, drops a
 * UTF-8 sequence the cut left incomplete, so that text quoted from a peer
 * stays valid UTF-8.  Returns buf. */
char *so_text_fmt_utf8(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* UTF-8, strict (no overlongs, no surrogates, nothing above U+10FFFF):
 * so_utf8_seq: the length (1-4) of the valid sequence at s, of which avail
 * bytes are readable; 0 if it is invalid, -1 if avail cuts it short.
 * so_utf8_invalid_at: the offset of the first invalid or cut sequence in
 * s[0..len), len when all of it is valid.
 * so_utf8_cut: the longest prefix of s[0..len) of at most max bytes that
 * does not end inside a sequence. */
int so_utf8_seq(const void *s, size_t avail);
size_t so_utf8_invalid_at(const void *s, size_t len);
size_t so_utf8_cut(const char *s, size_t len, size_t max);
/* Makes the NUL-terminated s valid UTF-8 in place: invalid bytes become
 * '?', a sequence cut short at the end is dropped (for messages built from
 * peer bytes and truncated by snprintf). */
void so_utf8_scrub(char *s);

/* The one token estimate, for when no tokenizer or usage figure is at hand:
 * about four bytes (characters) a token, the rule of thumb OpenAI gives for
 * English.  so_tokens_estimate: bytes / 4 (a prompt's expected size, as the
 * router and the evaluation use it); so_tokens_estimate_text: ceil(UTF-8
 * code points / 4), a whole number for usage a provider did not report. */
double so_tokens_estimate(size_t bytes);
long so_tokens_estimate_text(const char *s);

#endif
