/*
 * so_test_trace — what the so_trace tests share (test_so_trace.c,
 * test_so_trace_import.c): the data paths, the error buffer and a few
 * assertions.  Run the tests from the repository root.
 */
#ifndef SO_TEST_TRACE_H
#define SO_TEST_TRACE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "offline/so_trace.h"

#define RB "../shared/data/routerbench/"
#define MT "../shared/data/mtbench"

static char err[1024];

static inline void s_assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static inline void s_assert_num(double got, double want)
{
    if (isnan(want)) {
        if (!isnan(got))
            fail_msg("expected NAN, got %.17g", got);
        return;
    }
    if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want))))
        fail_msg("expected %.17g, got %.17g", want, got);
}

static inline const so_episode_t *s_find(const so_episodes_t *eps, const char *id)
{
    for (size_t i = 0; i < eps->n; i++)
        if (strcmp(eps->items[i].id, id) == 0)
            return &eps->items[i];
    fail_msg("episode %s not found", id);
    return NULL;
}

static inline int s_have(const char *path)
{
    return access(path, R_OK) == 0;
}

#endif
