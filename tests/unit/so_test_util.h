/*
 * so_test_util — small helpers shared by the unit tests: cmocka includes,
 * assertions on doubles and messages, handbook building that fails the test
 * with the core's message, and temporary files.
 *
 * Header-only; every helper is static inline so a test that does not use
 * one gets no unused-function warning.
 */
#ifndef SO_TEST_UTIL_H
#define SO_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* A test binary that cannot run here (a missing tool) says why and exits
 * with this (automake's convention); tests/run_unit.sh counts it as
 * skipped, not passed. */
#define SO_TEST_SKIPPED 77

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "method/so_handbook.h"

/* Reference handbooks, relative to the repo root (tests run from there). */
#define SO_REF_DIR "../shared/data/reference-handbook/"

/* |a - b| <= tol, printing both values when it is not. */
#define SO_ASSERT_NEAR(a, b, tol) \
    do { \
        double so_a_ = (double) (a), so_b_ = (double) (b), so_t_ = (double) (tol); \
        if (!(fabs(so_a_ - so_b_) <= so_t_)) \
            fail_msg("%s = %.17g, expected %s = %.17g (tol %g)", #a, so_a_, #b, so_b_, so_t_); \
    } while (0)

/* The message hay contains needle. */
#define SO_ASSERT_CONTAINS(hay, needle) \
    do { \
        const char *so_h_ = (hay), *so_n_ = (needle); \
        if (!so_h_ || !strstr(so_h_, so_n_)) \
            fail_msg("message \"%s\" does not contain \"%s\"", so_h_ ? so_h_ : "(null)", so_n_); \
    } while (0)

/* ------------------------------------------------------------------ */
/* Handbook building: each returns the index or fails the test.       */

static inline int so_t_mode(so_handbook_t *hb, const char *id)
{
    char err[256] = "";
    int i = so_handbook_add_mode(hb, id, "", err, sizeof err);
    if (i < 0)
        fail_msg("add_mode %s: %s", id, err);
    return i;
}

static inline int so_t_skill(so_handbook_t *hb, const char *id, const char *mode,
                             const char *parent)
{
    char err[256] = "";
    int i = so_handbook_add_skill(hb, id, NULL, NULL, mode, parent, err, sizeof err);
    if (i < 0)
        fail_msg("add_skill %s: %s", id, err);
    return i;
}

static inline int so_t_agent(so_handbook_t *hb, const char *id, const char *mode, double price_in,
                             double price_out, long context_limit)
{
    char err[256] = "";
    int i = so_handbook_add_agent(hb, id, NULL, mode, price_in, price_out, context_limit, err,
                                  sizeof err);
    if (i < 0)
        fail_msg("add_agent %s: %s", id, err);
    return i;
}

/* Sets an (agent, skill) cell directly: succ of att, every call costing
 * cost_usd (cost_usd < 0: no cost known). */
static inline void so_t_stat(so_handbook_t *hb, int agent, int skill, double succ, double att,
                             double cost_usd)
{
    so_stat_t *st = so_handbook_stat(hb, (size_t) agent, (size_t) skill);
    memset(st, 0, sizeof *st);
    st->successes = succ;
    st->attempts = att;
    if (cost_usd >= 0) {
        st->cost_usd = cost_usd * att;
        st->cost_count = att;
    }
}

/* ------------------------------------------------------------------ */
/* Temporary files                                                     */

/* Creates an empty temporary file; path gets its name (caller unlinks). */
static inline void so_t_tmpfile(char *path, size_t len, const char *tag)
{
    snprintf(path, len, "/tmp/so_test_%s_XXXXXX", tag);
    int fd = mkstemp(path);
    if (fd < 0)
        fail_msg("mkstemp %s failed", path);
    close(fd);
}

static inline void so_t_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

#endif
