/*
 * so_trace_write — writing the JSONL trace format (docs/TRACES.md): one
 * episode per line, strings escaped so that the output always parses
 * (invalid UTF-8 becomes U+FFFD), numbers in the shortest form that reads
 * back as the same double, unknown values left out.  Reading is
 * so_trace_jsonl.c.
 */
#include "offline/so_trace.h"
#include "base/so_err.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* JSON string with escapes; invalid UTF-8 bytes become U+FFFD so that the
 * output always parses. */
static void s_write_str(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *) s;
    putc('"', out);
    while (*p) {
        unsigned char c = *p;
        size_t run = 0; /* plain printable ASCII goes out in one call */
        while (p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
            run++;
        if (run) {
            fwrite(p, 1, run, out);
            p += run;
            continue;
        }
        if (c < 0x80) {
            switch (c) {
            case '"': fputs("\\\"", out); break;
            case '\\': fputs("\\\\", out); break;
            case '\n': fputs("\\n", out); break;
            case '\r': fputs("\\r", out); break;
            case '\t': fputs("\\t", out); break;
            case '\b': fputs("\\b", out); break;
            case '\f': fputs("\\f", out); break;
            default:
                if (c < 0x20 || c == 0x7f)
                    fprintf(out, "\\u%04x", c);
                else
                    putc(c, out);
            }
            p++;
            continue;
        }
        /* validate one UTF-8 sequence */
        size_t n = 0;
        uint32_t cp = 0, min = 0;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1F;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0F;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07;
            min = 0x10000;
        }
        size_t k = 1;
        for (; n && k < n; k++) {
            if ((p[k] & 0xC0) != 0x80)
                break;
            cp = (cp << 6) | (p[k] & 0x3F);
        }
        if (n == 0 || k < n || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            fputs("\\ufffd", out);
            p++;
            continue;
        }
        fwrite(p, 1, n, out);
        p += n;
    }
    putc('"', out);
}

/* Shortest decimal that reads back as the same double; null if not finite. */
static void s_write_num(FILE *out, double v)
{
    if (!isfinite(v)) {
        fputs("null", out);
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        fprintf(out, "%.0f", v);
        return;
    }
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, out);
}

static void s_write_opt_num(FILE *out, const char *key, double v)
{
    if (isnan(v))
        return;
    fprintf(out, ",\"%s\":", key);
    s_write_num(out, v);
}

int so_episode_write_json(const so_episode_t *ep, FILE *out)
{
    fputs("{\"episode_id\":", out);
    s_write_str(out, ep->id ? ep->id : "");
    fputs(",\"query_id\":", out);
    s_write_str(out, ep->query_id ? ep->query_id : (ep->id ? ep->id : ""));
    if (ep->task && *ep->task) {
        fputs(",\"task\":", out);
        s_write_str(out, ep->task);
    }
    fputs(",\"outcome\":", out);
    s_write_num(out, ep->outcome);
    fputs(",\"turns\":[", out);
    for (size_t i = 0; i < ep->n_turns; i++) {
        const so_turn_t *t = &ep->turns[i];
        fputs(i ? ",{\"mode\":" : "{\"mode\":", out);
        s_write_str(out, t->mode ? t->mode : "");
        fputs(",\"agent\":", out);
        s_write_str(out, t->agent ? t->agent : "");
        fputs(",\"prompt\":", out);
        s_write_str(out, t->prompt ? t->prompt : "");
        s_write_opt_num(out, "prompt_tokens", t->prompt_tokens);
        s_write_opt_num(out, "completion_tokens", t->completion_tokens);
        s_write_opt_num(out, "cost_usd", t->cost_usd);
        s_write_opt_num(out, "latency_s", t->latency_s);
        fputs(",\"score\":", out);
        s_write_num(out, t->score);
        putc('}', out);
    }
    fputs("]}\n", out);
    return ferror(out) ? -1 : 0;
}

char *so_episode_to_json(const so_episode_t *ep)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        return NULL;
    int rc = so_episode_write_json(ep, mem);
    if (fclose(mem) != 0 || rc < 0) {
        free(buf);
        return NULL;
    }
    if (len && buf[len - 1] == '\n')
        buf[len - 1] = '\0';
    return buf;
}

int so_episodes_write_jsonl(const so_episodes_t *eps, FILE *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < eps->n; i++)
        if (so_episode_write_json(&eps->items[i], out) < 0)
            return so_err(err, errlen, "write error after %zu episodes: %s", i, strerror(errno));
    if (fflush(out) != 0 || ferror(out))
        return so_err(err, errlen, "write error: %s", strerror(errno));
    return 0;
}
