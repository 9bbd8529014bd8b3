/*
 * so_opts — see so_opts.h.
 */
#include "base/so_opts.h"

#include "base/so_alloc.h"
#include "base/so_err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Column where the help texts start in the usage. */
#define S_HELP_COL 26

so_opt_t *so_opts_find(const so_opts_t *p, const char *name)
{
    for (so_opt_t *o = p->opts; o && o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

int so_opts_seen(const so_opts_t *p, const char *name)
{
    const so_opt_t *o = so_opts_find(p, name);
    return o ? o->seen : 0;
}

void so_opt_list_free(so_opt_list_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* The entry for "--name" (len bytes of name) or "-x". */
static so_opt_t *s_find_long(const so_opts_t *p, const char *name, size_t len)
{
    for (so_opt_t *o = p->opts; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static so_opt_t *s_find_short(const so_opts_t *p, char c)
{
    for (so_opt_t *o = p->opts; o && o->name; o++)
        if (o->short_name && o->short_name == c)
            return o;
    return NULL;
}

/* A table without short options leaves "-x" to the positionals (a prompt
 * may begin with a dash: `soctl route "-what is 2+2"`). */
static int s_has_short(const so_opts_t *p)
{
    for (const so_opt_t *o = p->opts; o && o->name; o++)
        if (o->short_name)
            return 1;
    return 0;
}

static int s_ranged(const so_opt_t *o)
{
    return o->min != 0 || o->max != 0;
}

static int s_range_err(const char *as, const char *v, const so_opt_t *o, char *err, size_t errlen)
{
    return so_err(err, errlen, "%s: %s is out of range [%g, %g]", as, v, o->min, o->max);
}

static int s_set_int(const so_opt_t *o, const char *as, const char *v, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    long n = *v && !isspace((unsigned char) *v) ? strtol(v, &end, 10) : 0;
    if (!end || end == v || *end)
        return so_err(err, errlen, "%s: '%s' is not an integer", as, v);
    if (errno == ERANGE || (s_ranged(o) && ((double) n < o->min || (double) n > o->max)))
        return s_range_err(as, v, o, err, errlen);
    *(long *) o->dest = n;
    return 0;
}

static int s_set_double(const so_opt_t *o, const char *as, const char *v, char *err,
                        size_t errlen)
{
    char *end = NULL;
    errno = 0;
    double d = *v && !isspace((unsigned char) *v) ? strtod(v, &end) : 0;
    if (!end || end == v || *end)
        return so_err(err, errlen, "%s: '%s' is not a number", as, v);
    if (!isfinite(d))
        return so_err(err, errlen, "%s: '%s' is not a finite number", as, v);
    if ((errno == ERANGE && d != 0) || (s_ranged(o) && !(d >= o->min && d <= o->max)))
        return s_range_err(as, v, o, err, errlen);
    *(double *) o->dest = d;
    return 0;
}

int so_opts_long(const char *as, const char *v, double min, double max, long *out, char *err,
                 size_t errlen)
{
    so_opt_t o = SO_OPT_INT(as, 0, out, NULL, min, max, NULL);
    return s_set_int(&o, as, v, err, errlen);
}

int so_opts_double(const char *as, const char *v, double min, double max, double *out, char *err,
                   size_t errlen)
{
    so_opt_t o = SO_OPT_DBL(as, 0, out, NULL, min, max, NULL);
    return s_set_double(&o, as, v, err, errlen);
}

static void s_list_add(so_opt_list_t *l, const char *v)
{
    l->items = so_reallocarray(l->items, l->n + 1, sizeof *l->items);
    l->items[l->n++] = v;
}

/* Stores value v of option o, which the user wrote as `as`. */
static int s_set(so_opt_t *o, const char *as, const char *v, char *err, size_t errlen)
{
    switch (o->kind) {
    case SO_OPT_KIND_FLAG: *(int *) o->dest = 1; break;
    case SO_OPT_KIND_STRING: *(const char **) o->dest = v; break;
    case SO_OPT_KIND_INT:
        if (s_set_int(o, as, v, err, errlen) < 0)
            return -1;
        break;
    case SO_OPT_KIND_DOUBLE:
        if (s_set_double(o, as, v, err, errlen) < 0)
            return -1;
        break;
    case SO_OPT_KIND_LIST: s_list_add(o->dest, v); break;
    }
    o->seen++;
    return 0;
}

/* One option at argv[*i] (which starts with '-'); advances *i past its value. */
static int s_option(so_opts_t *p, int argc, char **argv, int *i, char *err, size_t errlen)
{
    const char *arg = argv[*i], *inline_v = NULL;
    so_opt_t *o;
    if (arg[1] == '-') {
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t) (eq - name) : strlen(name);
        inline_v = eq ? eq + 1 : NULL;
        o = s_find_long(p, name, len);
        if (!o)
            return so_err(err, errlen, "unknown option --%.*s", (int) len, name);
    } else {
        o = arg[2] ? NULL : s_find_short(p, arg[1]);
        if (!o)
            return so_err(err, errlen, "unknown option %s", arg);
    }
    char as[128];
    if (arg[1] == '-')
        snprintf(as, sizeof as, "--%s", o->name);
    else
        snprintf(as, sizeof as, "%s", arg);
    if (o->kind == SO_OPT_KIND_FLAG) {
        if (inline_v)
            return so_err(err, errlen, "%s takes no value", as);
        return s_set(o, as, NULL, err, errlen);
    }
    if (!inline_v) {
        if (*i + 1 >= argc)
            return so_err(err, errlen, "%s needs a value", as);
        inline_v = argv[++*i];
    }
    return s_set(o, as, inline_v, err, errlen);
}

static int s_positional(so_opts_t *p, const char *arg, char *err, size_t errlen)
{
    if (p->n_pos >= p->max_pos)
        return p->max_pos ? so_err(err, errlen, "too many arguments ('%s')", arg)
                          : so_err(err, errlen, "unexpected argument '%s'", arg);
    p->pos[p->n_pos++] = arg;
    return 0;
}

static int s_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int so_opts_parse(so_opts_t *p, int argc, char **argv, char *err, size_t errlen)
{
    int i = 0, only_pos = 0;
    p->n_pos = 0;
    p->help = 0;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        int dash = !only_pos && arg[0] == '-' && arg[1] != '\0';
        if (dash && strcmp(arg, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (dash && s_is_help(arg)) {
            p->help = 1;
            return i + 1;
        }
        int is_opt = dash && (arg[1] == '-' || s_has_short(p));
        if (is_opt && s_option(p, argc, argv, &i, err, errlen) < 0)
            return -1;
        if (is_opt)
            continue;
        if (p->stop_at_positional)
            return i;
        if (s_positional(p, arg, err, errlen) < 0)
            return -1;
    }
    return i;
}

/* "  -x, --name METAVAR" into buf; returns its length. */
static int s_left(const so_opt_t *o, char *buf, size_t len)
{
    char sh[8] = "    ";
    if (o->short_name)
        snprintf(sh, sizeof sh, "-%c, ", o->short_name);
    return snprintf(buf, len, "  %s--%s%s%s", sh, o->name, o->metavar ? " " : "",
                    o->metavar ? o->metavar : "");
}

static void s_help_text(FILE *out, const char *help)
{
    for (const char *s = help; *s;) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t) (nl - s) : strlen(s);
        fprintf(out, "%.*s\n", (int) n, s);
        s += n;
        if (*s == '\n' && *++s)
            fprintf(out, "%*s", S_HELP_COL, "");
    }
}

static void s_usage_line(FILE *out, const char *left, int n, const char *help)
{
    fputs(left, out);
    if (n >= S_HELP_COL - 1)
        fprintf(out, "\n%*s", S_HELP_COL, "");
    else
        fprintf(out, "%*s", S_HELP_COL - n, "");
    s_help_text(out, help);
}

void so_opts_usage(const so_opts_t *p, FILE *out, const char *synopsis, const char *epilog)
{
    char left[256];
    fprintf(out, "usage: %s\n", synopsis);
    for (const so_opt_t *o = p->opts; o && o->name; o++) {
        if (!o->help)
            continue;
        int n = s_left(o, left, sizeof left);
        s_usage_line(out, left, n < 0 ? 0 : n, o->help);
    }
    static const char help[] = "  -h, --help";
    s_usage_line(out, help, (int) sizeof help - 1, "this help");
    if (epilog)
        fputs(epilog, out);
}

int so_opts_main(so_opts_t *p, int argc, char **argv, const char *prog, const char *synopsis,
                 const char *epilog)
{
    char err[512];
    if (so_opts_parse(p, argc - 1, argv + 1, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s (%s --help)\n", prog, err, prog);
        return 2;
    }
    if (p->help) {
        so_opts_usage(p, stdout, synopsis, epilog);
        return 0;
    }
    return -1;
}
