/*
 * so-import — converts recorded outcomes into the JSONL trace format
 * (docs/TRACES.md) and reports how many episodes, samples and skipped rows
 * it saw.  The logic lives in common/offline/so_trace*.c.
 *
 *   so-import --routerbench FILE.csv | --mtbench DIR | --jsonl FILE [--out OUT.jsonl]
 */
#include "base/so_err.h"
#include "base/so_opts.h"
#include "offline/so_trace.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *rb = NULL, *mt = NULL, *jsonl = NULL, *out_path = NULL;
    so_opt_t opts[] = {
        SO_OPT_STR("routerbench", 0, &rb, "FILE.csv", "a RouterBench CSV"),
        SO_OPT_STR("mtbench", 0, &mt, "DIR", "an MT-bench directory"),
        SO_OPT_STR("jsonl", 0, &jsonl, "FILE", "a JSONL trace file (docs/TRACES.md)"),
        SO_OPT_STR("out", 0, &out_path, "OUT.jsonl", "where the episodes go (default: stdout)"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    static const char synopsis[] =
        "so-import --routerbench FILE.csv | --mtbench DIR | --jsonl FILE [--out OUT.jsonl]";
    int code = so_opts_main(
        &p, argc, argv, "so-import", synopsis,
        "Writes one JSONL episode per line to OUT (default: stdout) and prints the\n"
        "number of episodes, samples and skipped input rows to stderr.\n");
    if (code >= 0)
        return code;
    if (so_opts_seen(&p, "routerbench") + so_opts_seen(&p, "mtbench") +
            so_opts_seen(&p, "jsonl") !=
        1) {
        fprintf(stderr, "so-import: give exactly one input (so-import --help)\n");
        return 2;
    }

    char err[1024];
    so_episodes_t eps = { 0 };
    int rc;
    if (rb)
        rc = so_episodes_read_routerbench(&eps, rb, err, sizeof err);
    else if (mt)
        rc = so_episodes_read_mtbench(&eps, mt, err, sizeof err);
    else
        rc = so_episodes_read_jsonl(&eps, jsonl, err, sizeof err);
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
    if (out != stdout && fclose(out) != 0 && rc == 0)
        rc = so_err(err, sizeof err, "%s: %s", out_path, strerror(errno));
    if (rc < 0)
        fprintf(stderr, "so-import: %s\n", err);
    else
        fprintf(stderr, "so-import: %zu episodes, %zu samples, %zu agents, %zu skipped\n", eps.n,
                ds.n_samples, ds.n_agents, eps.skipped);
    so_dataset_free(&ds);
    so_episodes_free(&eps);
    return rc < 0 ? 1 : 0;
}
