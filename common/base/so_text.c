/* so_text — tokenizer and term hashes (see so_text.h). */
#include "base/so_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static int s_is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80;
}

static unsigned char s_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c + 32) : c;
}

size_t so_text_tokens(const char *text, so_span_t *out, size_t max)
{
    const unsigned char *p = (const unsigned char *) text;
    size_t n = 0;
    if (!text)
        return 0;
    while (*p && n < max) {
        if (s_is_word(*p)) {
            const unsigned char *start = p;
            while (*p && s_is_word(*p))
                p++;
            out[n].s = (const char *) start;
            out[n].len = (size_t) (p - start);
            n++;
        } else {
            if (*p == '_') {
                out[n].s = (const char *) p;
                out[n].len = 1;
                n++;
                while (p[1] == '_') /* "___" is one blank */
                    p++;
            }
            p++;
        }
    }
    return n;
}

static uint64_t s_hash_more(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= s_lower((unsigned char) s[i]);
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t so_term_hash(const char *s, size_t len)
{
    return s_hash_more(FNV_OFFSET, s, len);
}

uint64_t so_bigram_hash(so_span_t a, so_span_t b)
{
    uint64_t h = s_hash_more(FNV_OFFSET, a.s, a.len);
    h = s_hash_more(h, " ", 1);
    return s_hash_more(h, b.s, b.len);
}

size_t so_text_terms(const char *text, uint64_t *out, size_t max, int bigrams)
{
    so_span_t tok[512];
    size_t n = 0;
    const char *p = text;
    so_span_t prev = { 0, 0 };
    int have_prev = 0;

    /* Tokenize in chunks so long texts need no allocation. */
    while (p && *p && n < max) {
        size_t nt = so_text_tokens(p, tok, 512);
        if (nt == 0)
            break;
        for (size_t i = 0; i < nt && n < max; i++) {
            out[n++] = so_term_hash(tok[i].s, tok[i].len);
            if (bigrams && have_prev && n < max)
                out[n++] = so_bigram_hash(prev, tok[i]);
            prev = tok[i];
            have_prev = 1;
        }
        if (nt < 512)
            break;
        p = tok[nt - 1].s + tok[nt - 1].len;
        while (tok[nt - 1].s[0] == '_' && *p == '_') /* the rest of a "___" blank */
            p++;
    }
    return n;
}

char *so_term_text(so_span_t a, so_span_t b, char *buf, size_t buflen)
{
    size_t n = 0;
    if (buflen == 0)
        return buf;
    for (size_t i = 0; i < a.len && n + 1 < buflen; i++)
        buf[n++] = (char) s_lower((unsigned char) a.s[i]);
    if (b.s) {
        if (n + 1 < buflen)
            buf[n++] = ' ';
        for (size_t i = 0; i < b.len && n + 1 < buflen; i++)
            buf[n++] = (char) s_lower((unsigned char) b.s[i]);
    }
    buf[n] = '\0';
    return buf;
}

char *so_text_fmt_utf8(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (len == 0 || n < 0 || (size_t) n < len)
        return buf;
    /* Cut: find the lead byte of the last sequence and keep it only whole. */
    size_t end = strlen(buf), i = end, cont = 0;
    while (i > 0 && ((unsigned char) buf[i - 1] & 0xC0) == 0x80 && cont < 4) {
        i--;
        cont++;
    }
    if (i > 0) {
        unsigned char c = (unsigned char) buf[i - 1];
        size_t want = c < 0x80             ? 1
                      : (c & 0xE0) == 0xC0 ? 2
                      : (c & 0xF0) == 0xE0 ? 3
                      : (c & 0xF8) == 0xF0 ? 4
                                           : 0;
        if (want != cont + 1)
            buf[i - 1 + (want == 1 ? 1 : 0)] = '\0';
    }
    return buf;
}

double so_tokens_estimate(size_t bytes)
{
    return (double) bytes / 4.0;
}

long so_tokens_estimate_text(const char *s)
{
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *) s; p && *p; p++)
        chars += (*p & 0xC0) != 0x80;
    return (chars + 3) / 4;
}

int so_utf8_seq(const void *sv, size_t avail)
{
    const unsigned char *s = sv;
    if (avail == 0)
        return -1;
    unsigned c = s[0];
    int n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
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
        return 0;
    }
    for (int k = 1; k <= n; k++) {
        if ((size_t) k >= avail)
            return -1;
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n + 1;
}

size_t so_utf8_invalid_at(const void *sv, size_t len)
{
    const unsigned char *s = sv;
    size_t i = 0;
    while (i < len) {
        /* Every message's every string passes here: skip ASCII eight
         * bytes at a time, one byte at a time, and decode only the rest. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        while (i < len && s[i] < 0x80)
            i++;
        if (i == len)
            break;
        int n = so_utf8_seq(s + i, len - i);
        if (n <= 0)
            return i;
        i += (size_t) n;
    }
    return len;
}

size_t so_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

void so_utf8_scrub(char *s)
{
    size_t left = s ? strlen(s) : 0;
    unsigned char *p = (unsigned char *) s;
    while (left > 0) {
        int n = so_utf8_seq(p, left);
        if (n < 0) {
            *p = '\0';
            return;
        }
        if (n == 0) {
            *p++ = '?';
            left--;
            continue;
        }
        p += n;
        left -= (size_t) n;
    }
}
