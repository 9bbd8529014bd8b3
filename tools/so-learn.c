/*
 * so-learn — learns a skill handbook from recorded outcomes, with no LLM.
 *
 *   so-learn --train FILE[,FILE...] --out HANDBOOK.json [options]
 *
 * FILE is a RouterBench CSV, an MT-bench directory or a JSONL trace file
 * (docs/TRACES.md).  See so_learn.h for the method.
 */
#include "so_learn.h"
#include "so_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void s_usage(void)
{
    fprintf(stderr,
            "usage: so-learn --train FILE[,FILE...] --out HANDBOOK.json [options]\n"
            "  --seed N            RNG seed (default 1)\n"
            "  --k N               top-level clusters (default: chosen on validation)\n"
            "  --split-alpha P     significance to keep a split (default: chosen)\n"
            "  --merge-alpha P     merge clusters no agent tells apart at this level (0.05)\n"
            "  --temperature T     inference softmax temperature (default: chosen)\n"
            "  --min-leaf N        smallest skill in prompts (25)\n"
            "  --max-depth N       split depth below the top level (3)\n"
            "  --val-fraction F    held-out share of the training queries (0.2)\n"
            "  --version V         handbook version string\n"
            "  --publish URL       also store it in Redis (redis://host:port) as the\n"
            "                      current version\n"
            "  --quiet             no log\n");
}

static int s_num(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || *end || end == v || !(d >= lo && d <= hi)) {
        fprintf(stderr, "so-learn: %s: expected a number in [%g, %g], got '%s'\n", flag, lo, hi,
                v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

int main(int argc, char **argv)
{
    const char *train = NULL, *out = NULL, *publish = NULL;
    so_learn_opts_t o;
    double d;
    char err[512];

    so_learn_opts_default(&o);
    o.log = stderr;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (strcmp(a, "--train") == 0 && v)
            train = v;
        else if (strcmp(a, "--out") == 0 && v)
            out = v;
        else if (strcmp(a, "--publish") == 0 && v)
            publish = v;
        else if (strcmp(a, "--version") == 0 && v)
            o.version = v;
        else if (strcmp(a, "--seed") == 0) {
            if (s_num(a, v, 0, 1e18, &d) < 0)
                return 2;
            o.seed = (uint64_t) d;
        } else if (strcmp(a, "--k") == 0) {
            if (s_num(a, v, 1, 1000, &d) < 0)
                return 2;
            o.k = (int) d;
        } else if (strcmp(a, "--split-alpha") == 0) {
            if (s_num(a, v, 1e-12, 1, &o.split_alpha) < 0)
                return 2;
        } else if (strcmp(a, "--merge-alpha") == 0) {
            if (s_num(a, v, 0, 1, &o.merge_alpha) < 0)
                return 2;
        } else if (strcmp(a, "--temperature") == 0) {
            if (s_num(a, v, 1e-6, 100, &o.temperature) < 0)
                return 2;
        } else if (strcmp(a, "--min-leaf") == 0) {
            if (s_num(a, v, 1, 1e9, &d) < 0)
                return 2;
            o.min_leaf = (int) d;
        } else if (strcmp(a, "--max-depth") == 0) {
            if (s_num(a, v, 0, 20, &d) < 0)
                return 2;
            o.max_depth = (int) d;
        } else if (strcmp(a, "--val-fraction") == 0) {
            if (s_num(a, v, 0, 0.9, &o.val_fraction) < 0)
                return 2;
        } else if (strcmp(a, "--quiet") == 0) {
            o.log = NULL;
            used = 0;
        } else {
            if (strcmp(a, "-h") && strcmp(a, "--help"))
                fprintf(stderr, "so-learn: unknown or incomplete option '%s'\n", a);
            s_usage();
            return 2;
        }
        i += used;
    }
    if (!train || !out) {
        s_usage();
        return 2;
    }

    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    so_dataset_t ds;
    if (so_dataset_load(&ds, train, err, sizeof err) < 0) {
        fprintf(stderr, "so-learn: %s\n", err);
        return 1;
    }
    if (o.log)
        fprintf(o.log, "so-learn: %zu training queries, %zu agents (%zu rows skipped as unusable)\n",
                ds.n_samples, ds.n_agents, ds.skipped);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    so_handbook_t *hb = so_learn(&ds, &o, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (!hb) {
        fprintf(stderr, "so-learn: %s\n", err);
        so_dataset_free(&ds);
        return 1;
    }
    int rc = so_handbook_save(hb, out, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "so-learn: %s\n", err);
    else if (o.log)
        fprintf(o.log, "so-learn: wrote %s (%zu skills) — load %.3f s, learn %.3f s\n", out,
                hb->n_skills, (double) (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
                (double) (t2.tv_sec - t1.tv_sec) + (t2.tv_nsec - t1.tv_nsec) / 1e9);
    if (rc == 0 && publish) {
        so_store_t *st = so_store_connect(publish, NULL, 5000, err, sizeof err);
        if (!st || so_store_put_handbook(st, hb, 1, err, sizeof err) < 0) {
            fprintf(stderr, "so-learn: publish to %s: %s\n", publish, err);
            rc = -1;
        } else if (o.log)
            fprintf(o.log, "so-learn: published version %s to %s\n", hb->version, publish);
        so_store_destroy(&st);
    }
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
    return rc < 0 ? 1 : 0;
}
