/*
 * so_test_handbook — the fixture the handbook tests share: up to two
 * handbooks, a JSON string and a temporary file, freed by the teardown
 * whether or not the test got to the end.  Header-only, one test binary each.
 */
#ifndef SO_TEST_HANDBOOK_H
#define SO_TEST_HANDBOOK_H

#include "so_test_util.h"

#include <unistd.h>

#define REF_RB SO_REF_DIR "routerbench_3skills.json"
#define REF_FRAMES SO_REF_DIR "frames_style_3stages.json"

/* Fixture: up to two handbooks and a temporary file, freed by teardown
 * whether or not the test got to the end. */
typedef struct {
    so_handbook_t *hb, *hb2;
    char *js;
    char path[64];
    char err[512];
} s_fix_t;

static inline int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    *state = f;
    return 0;
}

static inline int s_teardown(void **state)
{
    s_fix_t *f = *state;
    so_handbook_destroy(&f->hb);
    so_handbook_destroy(&f->hb2);
    free(f->js);
    if (f->path[0]) {
        char tmp[80];
        unlink(f->path);
        snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
        unlink(tmp);
    }
    free(f);
    return 0;
}

#endif
