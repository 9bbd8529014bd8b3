/*
 * so_opts: every kind of option, every way of giving a value, every error.
 */
#include "so_test_util.h"

#include "base/so_opts.h"

/* One table of every kind, and what it parsed into. */
typedef struct {
    int flag;
    const char *str;
    long n;
    double d;
    so_opt_list_t list;
    const char *pos[3];
    so_opt_t opts[6];
    so_opts_t p;
    char err[256];
} s_fix_t;

static void s_fix_init(s_fix_t *f)
{
    memset(f, 0, sizeof *f);
    f->n = 7;
    f->d = 0.5;
    so_opt_t opts[] = {
        SO_OPT_FLAG("quiet", 'q', &f->flag, "no progress"),
        SO_OPT_STR("out", 'o', &f->str, "FILE", "where it goes"),
        SO_OPT_INT("k", 'k', &f->n, "N", 1, 100, "clusters\nsecond line"),
        SO_OPT_DBL("alpha", 0, &f->d, "X", 0, 1, "a probability"),
        SO_OPT_LIST("train", 't', &f->list, "FILE", NULL),
        SO_OPT_END,
    };
    memcpy(f->opts, opts, sizeof opts);
    f->p.opts = f->opts;
    f->p.pos = f->pos;
    f->p.max_pos = 3;
}

/* Parses a NULL-terminated argument list (no program name). */
static int s_parse(s_fix_t *f, const char **args)
{
    int argc = 0;
    while (args[argc])
        argc++;
    return so_opts_parse(&f->p, argc, (char **) args, f->err, sizeof f->err);
}

static void s_expect_err(const char **args, const char *msg)
{
    s_fix_t f;
    s_fix_init(&f);
    assert_int_equal(s_parse(&f, args), -1);
    assert_string_equal(f.err, msg);
    so_opt_list_free(&f.list);
}

static void test_every_kind(void **state)
{
    s_fix_t f;
    s_fix_init(&f);
    const char *args[] = { "-q", "--out", "a.json",        "--k=42", "--alpha", "0.25",
                           "-t", "x.csv", "--train=y.csv", "pos1",   NULL };
    assert_int_equal(s_parse(&f, args), 10);
    assert_int_equal(f.flag, 1);
    assert_string_equal(f.str, "a.json");
    assert_int_equal(f.n, 42);
    assert_true(f.d == 0.25);
    assert_int_equal(f.list.n, 2);
    assert_string_equal(f.list.items[0], "x.csv");
    assert_string_equal(f.list.items[1], "y.csv");
    assert_int_equal(f.p.n_pos, 1);
    assert_string_equal(f.pos[0], "pos1");
    assert_int_equal(so_opts_seen(&f.p, "train"), 2);
    assert_int_equal(so_opts_seen(&f.p, "quiet"), 1);
    assert_int_equal(so_opts_seen(&f.p, "alpha"), 1);
    assert_int_equal(so_opts_seen(&f.p, "nope"), 0);
    assert_ptr_equal(so_opts_find(&f.p, "out")->dest, &f.str);
    assert_null(so_opts_find(&f.p, "nope"));
    so_opt_list_free(&f.list);
    assert_null(f.list.items);
    assert_int_equal(f.list.n, 0);
    so_opt_list_free(NULL);
}

static void test_defaults_kept(void **state)
{
    s_fix_t f;
    s_fix_init(&f);
    const char *args[] = { NULL };
    assert_int_equal(s_parse(&f, args), 0);
    assert_int_equal(f.n, 7);
    assert_true(f.d == 0.5);
    assert_null(f.str);
    assert_int_equal(f.flag, 0);
    assert_int_equal(so_opts_seen(&f.p, "k"), 0);
}

static void test_values_and_positionals(void **state)
{
    s_fix_t f;
    s_fix_init(&f);
    /* Values that look like options; "-" and what follows "--" are positional;
     * the last string wins; an empty value is a value. */
    const char *args[] = { "a",    "--out",   "-x", "-",  "--out=", "-o",
                           "last", "--alpha", "-0", "--", "--k",    NULL };
    assert_int_equal(s_parse(&f, args), 11);
    assert_string_equal(f.str, "last");
    assert_true(f.d == 0);
    assert_int_equal(f.p.n_pos, 3);
    assert_string_equal(f.pos[0], "a");
    assert_string_equal(f.pos[1], "-");
    assert_string_equal(f.pos[2], "--k");
    assert_int_equal(f.n, 7);
}

/* Without short options in the table, "-x" is a positional (soctl route
 * "-what is 2+2"); "-h" still asks for help. */
static void test_dash_positional_without_short_options(void **state)
{
    const char *str = NULL, *pos[2];
    so_opt_t opts[] = { SO_OPT_STR("version", 0, &str, "V", NULL), SO_OPT_END };
    so_opts_t p = { opts, pos, 2, 0, 0, 0 };
    char err[128];
    const char *args[] = { "-what is 2+2", "--version", "v1", NULL };
    assert_int_equal(so_opts_parse(&p, 3, (char **) args, err, sizeof err), 3);
    assert_int_equal(p.n_pos, 1);
    assert_string_equal(pos[0], "-what is 2+2");
    assert_string_equal(str, "v1");
    const char *help[] = { "-h", NULL };
    assert_int_equal(so_opts_parse(&p, 1, (char **) help, err, sizeof err), 1);
    assert_int_equal(p.help, 1);
}

static void test_stop_at_positional(void **state)
{
    s_fix_t f;
    s_fix_init(&f);
    f.p.stop_at_positional = 1;
    const char *args[] = { "-q", "cmd", "--nope", NULL };
    assert_int_equal(s_parse(&f, args), 1);
    assert_int_equal(f.p.n_pos, 0);
    assert_int_equal(f.flag, 1);
}

static void test_help(void **state)
{
    s_fix_t f;
    s_fix_init(&f);
    const char *args[] = { "-q", "--help", "--nope", NULL };
    assert_int_equal(s_parse(&f, args), 2);
    assert_int_equal(f.p.help, 1);
    const char *args2[] = { "-h", NULL };
    assert_int_equal(s_parse(&f, args2), 1);
    assert_int_equal(f.p.help, 1);
    const char *args3[] = { "x", NULL };
    assert_int_equal(s_parse(&f, args3), 1);
    assert_int_equal(f.p.help, 0);
}

static void test_usage_from_table(void **state)
{
    s_fix_t f;
    s_fix_init(&f);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    so_opts_usage(&f.p, out, "tool [options] ARG", "Exit: 0 done.\n");
    fclose(out);
    const char *want = "usage: tool [options] ARG\n"
                       "  -q, --quiet             no progress\n"
                       "  -o, --out FILE          where it goes\n"
                       "  -k, --k N               clusters\n"
                       "                          second line\n"
                       "      --alpha X           a probability\n"
                       "  -h, --help              this help\n"
                       "Exit: 0 done.\n";
    assert_string_equal(text, want);
    free(text);
}

static void test_long_metavar_wraps(void **state)
{
    const char *s = NULL;
    so_opt_t opts[] = { SO_OPT_STR("a-very-long-option", 0, &s, "SOMETHING", "text"),
                        SO_OPT_END };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    so_opts_usage(&p, out, "t", NULL);
    fclose(out);
    SO_ASSERT_CONTAINS(text, "--a-very-long-option SOMETHING\n                          text\n");
    free(text);
}

static void test_unknown_options(void **state)
{
    s_expect_err((const char *[]){ "--foo", NULL }, "unknown option --foo");
    s_expect_err((const char *[]){ "--foo=1", NULL }, "unknown option --foo");
    s_expect_err((const char *[]){ "-z", NULL }, "unknown option -z");
    s_expect_err((const char *[]){ "-qo", NULL }, "unknown option -qo");
    s_expect_err((const char *[]){ "--qu", NULL }, "unknown option --qu");
}

static void test_missing_and_extra_values(void **state)
{
    s_expect_err((const char *[]){ "--out", NULL }, "--out needs a value");
    s_expect_err((const char *[]){ "-o", NULL }, "-o needs a value");
    s_expect_err((const char *[]){ "--train", NULL }, "--train needs a value");
    s_expect_err((const char *[]){ "--quiet=1", NULL }, "--quiet takes no value");
    s_expect_err((const char *[]){ "a", "b", "c", "d", NULL }, "too many arguments ('d')");
    s_fix_t f;
    s_fix_init(&f);
    f.p.max_pos = 0;
    assert_int_equal(s_parse(&f, (const char *[]){ "a", NULL }), -1);
    assert_string_equal(f.err, "unexpected argument 'a'");
}

static void test_bad_integers(void **state)
{
    s_expect_err((const char *[]){ "--k", "abc", NULL }, "--k: 'abc' is not an integer");
    s_expect_err((const char *[]){ "-k", "12x", NULL }, "-k: '12x' is not an integer");
    s_expect_err((const char *[]){ "--k=", NULL }, "--k: '' is not an integer");
    s_expect_err((const char *[]){ "--k", " 5", NULL }, "--k: ' 5' is not an integer");
    s_expect_err((const char *[]){ "--k", "1.5", NULL }, "--k: '1.5' is not an integer");
    s_expect_err((const char *[]){ "--k", "0", NULL }, "--k: 0 is out of range [1, 100]");
    s_expect_err((const char *[]){ "--k", "101", NULL }, "--k: 101 is out of range [1, 100]");
    s_expect_err((const char *[]){ "--k", "99999999999999999999999", NULL },
                 "--k: 99999999999999999999999 is out of range [1, 100]");
}

static void test_unbounded_integer(void **state)
{
    long n = 0;
    so_opt_t opts[] = { SO_OPT_INT("n", 0, &n, "N", 0, 0, "any"), SO_OPT_END };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    char err[128];
    char *args[] = { "--n", "-123456789012" };
    assert_int_equal(so_opts_parse(&p, 2, args, err, sizeof err), 2);
    assert_true(n == -123456789012L);
    char *args2[] = { "--n", "99999999999999999999999" };
    assert_int_equal(so_opts_parse(&p, 2, args2, err, sizeof err), -1);
    SO_ASSERT_CONTAINS(err, "is out of range");
}

static void test_bad_numbers(void **state)
{
    s_expect_err((const char *[]){ "--alpha", "x", NULL }, "--alpha: 'x' is not a number");
    s_expect_err((const char *[]){ "--alpha", "0.5e", NULL }, "--alpha: '0.5e' is not a number");
    s_expect_err((const char *[]){ "--alpha", "", NULL }, "--alpha: '' is not a number");
    s_expect_err((const char *[]){ "--alpha", "nan", NULL },
                 "--alpha: 'nan' is not a finite number");
    s_expect_err((const char *[]){ "--alpha", "inf", NULL },
                 "--alpha: 'inf' is not a finite number");
    s_expect_err((const char *[]){ "--alpha", "1e999", NULL },
                 "--alpha: '1e999' is not a finite number");
    s_expect_err((const char *[]){ "--alpha", "1.5", NULL },
                 "--alpha: 1.5 is out of range [0, 1]");
    s_expect_err((const char *[]){ "--alpha=-0.1", NULL },
                 "--alpha: -0.1 is out of range [0, 1]");
}

static void test_error_keeps_earlier_values(void **state)
{
    s_fix_t f;
    s_fix_init(&f);
    assert_int_equal(s_parse(&f, (const char *[]){ "--k", "3", "--k", "x", NULL }), -1);
    assert_int_equal(f.n, 3);
    assert_int_equal(so_opts_seen(&f.p, "k"), 1);
    /* A NULL err is allowed (the caller does not want the text). */
    assert_int_equal(so_opts_parse(&f.p, 1, (char *[]){ "--nope" }, NULL, 0), -1);
}

static void test_single_values(void **state)
{
    char err[128];
    long n = 0;
    double d = 0;
    assert_int_equal(so_opts_long("A@N", "250", 0, 1000, &n, err, sizeof err), 0);
    assert_int_equal(n, 250);
    assert_int_equal(so_opts_long("A@N", "25x", 0, 1000, &n, err, sizeof err), -1);
    assert_string_equal(err, "A@N: '25x' is not an integer");
    assert_int_equal(so_opts_long("A@N", "2000", 0, 1000, &n, err, sizeof err), -1);
    assert_string_equal(err, "A@N: 2000 is out of range [0, 1000]");
    assert_int_equal(n, 250);
    assert_int_equal(so_opts_double("--skill S=W", "0.3", 0, 1, &d, err, sizeof err), 0);
    assert_true(d == 0.3);
    assert_int_equal(so_opts_double("--skill S=W", "x", 0, 1, &d, err, sizeof err), -1);
    assert_string_equal(err, "--skill S=W: 'x' is not a number");
}

static void test_main_codes(void **state)
{
    const char *out = NULL;
    so_opt_t opts[] = { SO_OPT_STR("out", 'o', &out, "FILE", "where"), SO_OPT_END };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    char *ok[] = { "prog", "-o", "x" };
    assert_int_equal(so_opts_main(&p, 3, ok, "prog", "prog [-o FILE]", NULL), -1);
    assert_string_equal(out, "x");
    char *bad[] = { "prog", "--nope" };
    assert_int_equal(so_opts_main(&p, 2, bad, "prog", "prog [-o FILE]", NULL), 2);
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    char *help[] = { "prog", "--help" };
    int code = so_opts_main(&p, 2, help, "prog", "prog [-o FILE]", NULL);
    fclose(stdout);
    stdout = saved;
    assert_int_equal(code, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind),
        cmocka_unit_test(test_defaults_kept),
        cmocka_unit_test(test_values_and_positionals),
        cmocka_unit_test(test_dash_positional_without_short_options),
        cmocka_unit_test(test_stop_at_positional),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_from_table),
        cmocka_unit_test(test_long_metavar_wraps),
        cmocka_unit_test(test_unknown_options),
        cmocka_unit_test(test_missing_and_extra_values),
        cmocka_unit_test(test_bad_integers),
        cmocka_unit_test(test_unbounded_integer),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_error_keeps_earlier_values),
        cmocka_unit_test(test_single_values),
        cmocka_unit_test(test_main_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
