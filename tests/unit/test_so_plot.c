/* Tests for so_plot: the SVG is written, well formed, names what it shows,
 * and bad input is an error, not a crash. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "offline/so_plot.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const so_point_t k_sweep[] = { { 0.00009, 0.60 }, { 0.00020, 0.74 }, { 0.00035, 0.80 },
                                      { 0.0012, 0.85 },  { 0.0030, 0.87 },  { 0.0048, 0.88 } };
static const so_point_t k_hull[] = {
    { 0.00009, 0.60 }, { 0.00020, 0.74 }, { 0.00035, 0.80 }, { 0.0012, 0.85 }, { 0.0048, 0.88 }
};
static const so_plot_label_t k_labels[] = {
    { "gpt-4-1106-preview", { 0.0050, 0.879 }, SO_PLOT_MARK_CIRCLE, NULL, "single models" },
    { "mistral-7b & <friends>", { 0.000081, 0.593 }, SO_PLOT_MARK_CIRCLE, NULL, "single models" },
    { "oracle", { 0.000211, 0.976 }, SO_PLOT_MARK_STAR, "#d62728", "oracle" },
    { "random", { 0.00145, 0.686 }, SO_PLOT_MARK_SQUARE, "#7f7f7f", NULL },
};

typedef struct {
    char path[64];
} s_fixture_t;

static int s_setup(void **state)
{
    s_fixture_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->path, "/tmp/test_so_plot_XXXXXX");
    int fd = mkstemp(f->path);
    if (fd < 0) {
        free(f);
        return -1;
    }
    close(fd);
    unlink(f->path); /* so_plot_svg must create it */
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fixture_t *f = *state;
    unlink(f->path);
    free(f);
    return 0;
}

static char *s_slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *s = malloc((size_t) n + 1);
    if (s && fread(s, 1, (size_t) n, fp) != (size_t) n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(fp);
    return s;
}

/* A small XML check: every element closed in order, quotes balanced inside
 * tags, no bare '&' or '<' in text.  Returns 1 when well formed. */
static int s_xmlish(const char *s)
{
    char stack[64][32];
    int depth = 0, seen_root = 0;
    for (const char *c = s; *c; c++) {
        if (*c == '&') {
            if (strncmp(c, "&amp;", 5) && strncmp(c, "&lt;", 4) && strncmp(c, "&gt;", 4) &&
                strncmp(c, "&quot;", 6) && strncmp(c, "&apos;", 6))
                return 0;
            continue;
        }
        if (*c != '<')
            continue;
        const char *end = c + 1;
        int inq = 0;
        while (*end && (inq || *end != '>')) {
            if (*end == '"')
                inq = !inq;
            else if (*end == '<' && !inq)
                return 0;
            end++;
        }
        if (!*end)
            return 0;
        char name[32];
        int closing = c[1] == '/';
        const char *nb = c + 1 + closing;
        size_t len = strcspn(nb, " \t\n/>");
        if (len == 0 || len >= sizeof name)
            return 0;
        memcpy(name, nb, len);
        name[len] = '\0';
        if (closing) {
            if (depth == 0 || strcmp(stack[depth - 1], name))
                return 0;
            depth--;
        } else if (end[-1] != '/') {
            if (depth == 64 || (depth == 0 && seen_root))
                return 0;
            strcpy(stack[depth++], name);
            seen_root = 1;
        }
        c = end;
    }
    return depth == 0 && seen_root;
}

static so_plot_t s_full_plot(so_plot_series_t *series)
{
    series[0] = (so_plot_series_t){ .name = "SkillOrchestra (lambda sweep)",
                                    .pts = k_sweep,
                                    .n = N_OF(k_sweep),
                                    .marker = SO_PLOT_MARK_CIRCLE,
                                    .has_aiq = 1,
                                    .aiq = 0.8226 };
    series[1] = (so_plot_series_t){ .name = "SkillOrchestra hull",
                                    .pts = k_hull,
                                    .n = N_OF(k_hull),
                                    .dashed = 1,
                                    .marker = SO_PLOT_MARK_NONE };
    return (so_plot_t){ .title = "RouterBench test: accuracy vs cost",
                        .series = series,
                        .nseries = 2,
                        .labels = k_labels,
                        .nlabels = N_OF(k_labels) };
}

static void test_writes_svg(void **state)
{
    s_fixture_t *f = *state;
    so_plot_series_t series[2];
    so_plot_t p = s_full_plot(series);
    char err[128] = "";
    assert_int_equal(so_plot_svg(f->path, &p, err, sizeof err), 0);
    char *svg = s_slurp(f->path);
    assert_non_null(svg);
    assert_int_equal(strncmp(svg, "<svg", 4), 0);
    size_t n = strlen(svg);
    assert_true(n > 7 && strcmp(svg + n - 7, "</svg>\n") == 0);
    assert_true(s_xmlish(svg));
    assert_non_null(strstr(svg, "SkillOrchestra (lambda sweep)"));
    assert_non_null(strstr(svg, "SkillOrchestra hull"));
    assert_non_null(strstr(svg, "AIQ 0.8226"));
    assert_non_null(strstr(svg, "gpt-4-1106-preview"));
    assert_non_null(strstr(svg, "mistral-7b &amp; &lt;friends&gt;"));
    assert_non_null(strstr(svg, "single models"));
    assert_non_null(strstr(svg, "oracle"));
    assert_non_null(strstr(svg, "random"));
    assert_non_null(strstr(svg, "stroke-dasharray"));
    assert_non_null(strstr(svg, "log scale"));
    assert_non_null(strstr(svg, "width=\"900\" height=\"600\""));
    free(svg);
}

static void test_linear_and_degenerate(void **state)
{
    s_fixture_t *f = *state;
    /* One point only: both ranges are degenerate and get widened. */
    so_plot_label_t one = { "only model", { 0.002, 0.7 }, SO_PLOT_MARK_DIAMOND, NULL, NULL };
    so_plot_t p = { .labels = &one, .nlabels = 1 };
    char err[128] = "";
    assert_int_equal(so_plot_svg(f->path, &p, err, sizeof err), 0);
    char *svg = s_slurp(f->path);
    assert_non_null(svg);
    assert_true(s_xmlish(svg));
    assert_non_null(strstr(svg, "only model"));
    assert_null(strstr(svg, "nan"));
    assert_null(strstr(svg, "inf"));
    free(svg);

    so_plot_series_t series[2];
    p = s_full_plot(series);
    p.xscale = SO_PLOT_XLINEAR;
    p.width = 1200;
    p.height = 800;
    p.title = NULL;
    assert_int_equal(so_plot_svg(f->path, &p, err, sizeof err), 0);
    svg = s_slurp(f->path);
    assert_non_null(svg);
    assert_true(s_xmlish(svg));
    assert_null(strstr(svg, "log scale"));
    assert_null(strstr(svg, "nan"));
    free(svg);
}

/* Every rejected plot returns -1 with a message and leaves no file. */
static void s_expect_error(const char *path, const so_plot_t *p, const char *needle)
{
    char err[160] = "";
    assert_int_equal(so_plot_svg(path, p, err, sizeof err), -1);
    assert_true(strlen(err) > 0);
    if (needle && !strstr(err, needle)) {
        print_error("error '%s' lacks '%s'\n", err, needle);
        fail();
    }
    if (path)
        assert_int_equal(access(path, F_OK), -1);
}

static void test_bad_input(void **state)
{
    s_fixture_t *f = *state;
    so_plot_t empty = { .title = "nothing" };
    s_expect_error(f->path, &empty, "nothing to plot");
    s_expect_error(f->path, NULL, "plot");
    s_expect_error(NULL, &empty, "path");

    so_point_t nan_pts[] = { { 0.001, 0.5 }, { NAN, 0.7 } };
    so_plot_series_t s = { .name = "has nan", .pts = nan_pts, .n = 2 };
    so_plot_t p = { .series = &s, .nseries = 1 };
    s_expect_error(f->path, &p, "not finite");

    nan_pts[1] = (so_point_t){ 0.002, INFINITY };
    s_expect_error(f->path, &p, "not finite");

    so_point_t zero_cost[] = { { 0.0, 0.5 }, { 0.001, 0.7 } };
    s.pts = zero_cost;
    s.name = "free";
    s_expect_error(f->path, &p, "log axis");
    p.xscale = SO_PLOT_XLINEAR; /* fine on a linear axis */
    char err[128];
    assert_int_equal(so_plot_svg(f->path, &p, err, sizeof err), 0);
    unlink(f->path);
    p.xscale = SO_PLOT_XLOG;

    s.n = 0;
    s.name = "empty";
    s_expect_error(f->path, &p, "empty");
    s.n = 2;
    s.pts = NULL;
    s_expect_error(f->path, &p, "empty");

    s.pts = k_sweep;
    s.name = NULL;
    s_expect_error(f->path, &p, "no name");
    s.name = "ok";
    s.has_aiq = 1;
    s.aiq = NAN;
    s_expect_error(f->path, &p, "AIQ");
    s.has_aiq = 0;

    so_plot_label_t l = { "nan label", { 0.001, NAN }, SO_PLOT_MARK_CIRCLE, NULL, NULL };
    so_plot_t q = { .labels = &l, .nlabels = 1 };
    s_expect_error(f->path, &q, "not finite");

    p.width = 10;
    s_expect_error(f->path, &p, "size");
    p.width = 0;

    /* Unwritable path. */
    s_expect_error("/nonexistent-dir/x.svg", &p, "cannot open");
    /* NULL err buffer is allowed. */
    assert_int_equal(so_plot_svg(f->path, &empty, NULL, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes_svg, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_linear_and_degenerate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
