/*
 * so_trace_int — what the so_trace modules share with each other and with
 * nobody else (include it only from common/offline/so_trace*.c):
 *
 *   so_trace.c            episodes, the dispatch on a path, the dataset
 *   so_trace_jsonl.c      the JSONL trace format: reading (and the bounded
 *                         JSON-lines reader the importers use)
 *   so_trace_write.c      the JSONL trace format: writing
 *   so_trace_routerbench.c  RouterBench's wide CSV (and its Python list
 *                         literals)
 *   so_trace_mtbench.c    MT-bench's question and judgement files
 */
#ifndef SO_TRACE_INT_H
#define SO_TRACE_INT_H

#include "offline/so_trace.h"
#include "base/so_map.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Resets a turn to "nothing known": no strings, every number NAN. */
void so_trace_turn_unknown(so_turn_t *t);

/* A compact rendering of a JSON value (cut at 60 bytes) for "got ..." in
 * messages; "nothing" for NULL. */
void so_trace_json_show(const json_t *v, char *buf, size_t len);

/* Called for each non-blank line of a JSON-lines file, parsed (the reader
 * frees root after the call).  Return 0 to go on, -1 to stop with err set. */
typedef int(so_trace_line_fn)(json_t *root, const char *path, size_t lineno, void *ctx, char *err,
                              size_t errlen);

/* Reads path line by line (lines up to SO_TRACE_MAX_LINE bytes, CRLF or
 * LF), parses each non-blank line and calls fn.  0 at the end of the file;
 * -1 with "path:line: problem" in err when the file cannot be read, a line
 * is too long or not JSON, or fn failed. */
int so_trace_each_json(const char *path, so_trace_line_fn *fn, void *ctx, char *err,
                       size_t errlen);

/* so_map values that are indexes (or line numbers): stored as idx + 1, so
 * that 0 (NULL) still means absent. */
static inline void so_trace_idx_put(so_map_t *m, const char *key, size_t idx)
{
    so_map_put(m, key, (void *) (uintptr_t) (idx + 1));
}

/* 1 and *idx when key is there, 0 when not. */
static inline int so_trace_idx_get(const so_map_t *m, const char *key, size_t *idx)
{
    uintptr_t v = (uintptr_t) so_map_get(m, key);
    if (v && idx)
        *idx = (size_t) (v - 1);
    return v != 0;
}

#endif
