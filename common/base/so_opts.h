/*
 * so_opts — the one command-line option parser: a table of options, parsed
 * the same way by every tool and service.
 *
 *     const char *out = NULL;
 *     long k = 8;
 *     int quiet = 0;
 *     so_opt_t opts[] = {
 *         SO_OPT_STR("out", 'o', &out, "FILE", "where the handbook goes"),
 *         SO_OPT_INT("k", 0, &k, "N", 1, 1000, "clusters (8)"),
 *         SO_OPT_FLAG("quiet", 'q', &quiet, "no progress lines"),
 *         SO_OPT_END
 *     };
 *     so_opts_t p = { opts, NULL, 0, 0, 0, 0 };   // no positional arguments
 *     if (so_opts_parse(&p, argc - 1, argv + 1, err, sizeof err) < 0) ...
 *     if (p.help) so_opts_usage(&p, stdout, "tool [options]", NULL) ...
 *
 * or, in a tool's main, all of that at once (message or usage printed):
 *
 *     int code = so_opts_main(&p, argc, argv, "tool", "tool [options]", NULL);
 *     if (code >= 0)
 *         return code;
 *
 * Accepted: `--name value`, `--name=value`, `-x value`, flags alone, `--`
 * (everything after it is positional), `-` alone (positional), and
 * positional arguments anywhere between options.  In a table with no short
 * options, `-x...` is positional too (a prompt may start with a dash).
 * `--help` and `-h` are always known: they set p.help and stop the parse.
 * An integer option takes whole numbers only ("1e3" and "1.0" are refused).
 *
 * Values are checked strictly: an integer or a number is the whole argument
 * (no trailing garbage, no leading blank), within [min, max] (both 0: any
 * value the type holds), and a number is finite.  Errors name the option
 * and what is wrong ("--k: 'abc' is not an integer", "unknown option --foo",
 * "--out needs a value"); the parser prints nothing and never exits: the
 * caller prints the message and picks the exit code.
 *
 * The table is the caller's (usually an array on main's stack); the parser
 * writes through its pointers and counts each option's uses in .seen.
 * Values are borrowed from argv.  A list (repeatable option) grows with
 * so_alloc: release it with so_opt_list_free.
 */
#ifndef SO_OPTS_H
#define SO_OPTS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    SO_OPT_KIND_FLAG,   /* int *: set to 1 */
    SO_OPT_KIND_STRING, /* const char **: the value (the last one given wins) */
    SO_OPT_KIND_INT,    /* long *: base 10, within [min, max] */
    SO_OPT_KIND_DOUBLE, /* double *: finite, within [min, max] */
    SO_OPT_KIND_LIST    /* so_opt_list_t *: every value, in order */
} so_opt_kind_t;

/* The values of a repeatable option (borrowed from argv). */
typedef struct {
    const char **items;
    size_t n;
} so_opt_list_t;

typedef struct {
    const char *name; /* long name without the dashes; NULL ends the table */
    char short_name;  /* -x, or 0 */
    so_opt_kind_t kind;
    void *dest;
    const char *metavar; /* the value's name in the usage ("FILE"); NULL for flags */
    double min, max;     /* INT and DOUBLE: the range; both 0: unbounded */
    const char *help;    /* NULL: not listed in the usage */
    int seen;            /* written by the parser: how many times it was given */
} so_opt_t;

/* Table entries.  The casts check the destination's type at compile time. */
/* Brace initialisers in macros: clang-format would break them apart. */
/* clang-format off */
#define SO_OPT_FLAG(name, sh, dest, help)                                                          \
    { (name), (sh), SO_OPT_KIND_FLAG, (void *) (1 ? (dest) : (int *) 0), NULL, 0, 0, (help), 0 }
#define SO_OPT_STR(name, sh, dest, metavar, help)                                                  \
    { (name), (sh), SO_OPT_KIND_STRING, (void *) (1 ? (dest) : (const char **) 0), (metavar),     \
      0, 0, (help), 0 }
#define SO_OPT_INT(name, sh, dest, metavar, min, max, help)                                        \
    { (name), (sh), SO_OPT_KIND_INT, (void *) (1 ? (dest) : (long *) 0), (metavar), (min), (max), \
      (help), 0 }
#define SO_OPT_DBL(name, sh, dest, metavar, min, max, help)                                        \
    { (name), (sh), SO_OPT_KIND_DOUBLE, (void *) (1 ? (dest) : (double *) 0), (metavar), (min),   \
      (max), (help), 0 }
#define SO_OPT_LIST(name, sh, dest, metavar, help)                                                 \
    { (name), (sh), SO_OPT_KIND_LIST, (void *) (1 ? (dest) : (so_opt_list_t *) 0), (metavar), 0, \
      0, (help), 0 }
#define SO_OPT_END { NULL, 0, SO_OPT_KIND_FLAG, NULL, NULL, 0, 0, NULL, 0 }
/* clang-format on */

/* One parse: the table in, positional arguments and --help out. */
typedef struct {
    so_opt_t *opts;         /* the table, ended by SO_OPT_END */
    const char **pos;       /* where positional arguments go (may be NULL when max_pos is 0) */
    size_t max_pos;         /* more than this many is an error ("too many arguments") */
    int stop_at_positional; /* 1: the first positional argument ends the parse (a command) */
    size_t n_pos;           /* out: positional arguments stored */
    int help;               /* out: --help or -h was given (the parse stopped there) */
} so_opts_t;

/* Parses argv[0..argc) (leave the program name out).  Returns the index of
 * the first argument not consumed (argc when all were; with
 * stop_at_positional, the index of the first positional argument; with
 * help, the index after --help), or -1 with the message in err. */
int so_opts_parse(so_opts_t *p, int argc, char **argv, char *err, size_t errlen);

/* Prints "usage: <synopsis>", one line per listed option (and -h, --help),
 * then epilog when not NULL.  A help text may hold '\n': its further lines
 * are indented under the first. */
void so_opts_usage(const so_opts_t *p, FILE *out, const char *synopsis, const char *epilog);

/* The usual start of a tool's main: parses argv[1..argc), prints the usage
 * on stdout after --help, or "prog: <message> (prog --help)" on stderr after
 * an error.  Returns -1 when the program goes on, else the exit status to
 * return: 0 after --help, 2 after an error. */
int so_opts_main(so_opts_t *p, int argc, char **argv, const char *prog, const char *synopsis,
                 const char *epilog);

/* One value checked as the table checks it, for values inside values (the
 * W of "S=W", the N of "AGENT@N"): as names it in the message ("--skill
 * S=W: 'x' is not a number").  0, or -1 with err. */
int so_opts_long(const char *as, const char *v, double min, double max, long *out, char *err,
                 size_t errlen);
int so_opts_double(const char *as, const char *v, double min, double max, double *out, char *err,
                   size_t errlen);

/* The entry of the table named name (NULL when there is none). */
so_opt_t *so_opts_find(const so_opts_t *p, const char *name);

/* How many times the option named name was given (0 for a name not in the table). */
int so_opts_seen(const so_opts_t *p, const char *name);

/* Frees a list's array (not its borrowed strings) and empties it. */
void so_opt_list_free(so_opt_list_t *l);

#endif
