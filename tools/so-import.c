/*
 * so-import — converts recorded outcomes into the JSONL trace format
 * (docs/TRACES.md) and reports how many episodes, samples and skipped rows
 * it saw.  The logic lives in common/offline/so_trace.c.
 *
 *   so-import --routerbench FILE.csv | --mtbench DIR | --jsonl FILE [--out OUT.jsonl]
 */
#include "offline/so_trace.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void
s_usage(FILE *to)
{
    fprintf(to,
            "usage: so-import --routerbench FILE.csv | --mtbench DIR | --jsonl FILE"
            " [--out OUT.jsonl]\n"
            "Writes one JSONL episode per line to OUT (default: stdout) and prints the\n"
            "number of episodes, samples and skipped input rows to stderr.\n");
}

int
main(int argc, char **argv)
{
    const char *kind = NULL, *in = NULL, *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "so-import: %s needs an argument\n", a);
            s_usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--routerbench") || !strcmp(a, "--mtbench") || !strcmp(a, "--jsonl")) {
            if (kind) {
                fprintf(stderr, "so-import: give exactly one input\n");
                return 2;
            }
            kind = a + 2;
            in = argv[++i];
        } else if (!strcmp(a, "--out")) {
            out_path = argv[++i];
        } else {
            fprintf(stderr, "so-import: unknown option %s\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    if (!kind) {
        s_usage(stderr);
        return 2;
    }

    char err[1024];
    so_episodes_t eps = { 0 };
    int rc;
    if (!strcmp(kind, "routerbench"))
        rc = so_episodes_read_routerbench(&eps, in, err, sizeof err);
    else if (!strcmp(kind, "mtbench"))
        rc = so_episodes_read_mtbench(&eps, in, err, sizeof err);
    else
        rc = so_episodes_read_jsonl(&eps, in, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "so-import: %s\n", err);
        return 1;
    }

    so_dataset_t ds;
    if (so_dataset_from_episodes(&ds, &eps, err, sizeof err) < 0) {
        fprintf(stderr, "so-import: %s\n", err);
        so_episodes_free(&eps);
        return 1;
    }

    FILE *out = stdout;
    if (out_path && !(out = fopen(out_path, "w"))) {
        fprintf(stderr, "so-import: %s: %s\n", out_path, strerror(errno));
        so_dataset_free(&ds);
        so_episodes_free(&eps);
        return 1;
    }
    rc = so_episodes_write_jsonl(&eps, out, err, sizeof err);
    if (out != stdout && fclose(out) != 0 && rc == 0) {
        snprintf(err, sizeof err, "%s: %s", out_path, strerror(errno));
        rc = -1;
    }
    if (rc < 0)
        fprintf(stderr, "so-import: %s\n", err);
    else
        fprintf(stderr, "so-import: %zu episodes, %zu samples, %zu agents, %zu skipped\n", eps.n,
                ds.n_samples, ds.n_agents, eps.skipped);
    so_dataset_free(&ds);
    so_episodes_free(&eps);
    return rc < 0 ? 1 : 0;
}
