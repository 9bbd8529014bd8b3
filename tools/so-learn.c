/*
 * so-learn — learns a skill handbook from recorded outcomes, with no LLM.
 *
 *   so-learn --train FILE[,FILE...] --out HANDBOOK.json [options]
 *
 *   so-learn --agents ID:IN:OUT[,ID:IN:OUT...] --out HANDBOOK.json
 *
 * FILE is a RouterBench CSV, an MT-bench directory or a JSONL trace file
 * (docs/TRACES.md).  See so_learn.h for the method.  --agents writes a
 * cold-start handbook instead (no traces yet: one general skill, every agent
 * at the prior, prices in USD per 1M prompt/completion tokens); the online
 * learner fills in competence from feedback, and so-learn on the traces
 * collected meanwhile gives it real skills later.
 */
#include "offline/so_learn.h"
#include "store/so_store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void s_usage(void)
{
    fprintf(stderr,
            "usage: so-learn --train FILE[,FILE...] --out HANDBOOK.json [options]\n"
            "       so-learn --agents ID:IN:OUT[,...] --out HANDBOOK.json [--version V] [--publish URL]\n"
            "  --agents LIST       cold start without traces: these agents (prices in USD\n"
            "                      per 1M prompt:completion tokens; 0:0 = unknown, costed\n"
            "                      as the others' average), one general skill\n"
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

/* Stores hb in Redis as the current version.  0 or -1 with err. */
static int s_publish(const so_handbook_t *hb, const char *url, char *err, size_t errlen)
{
    char e[400];
    so_store_t *st = so_store_connect(url, NULL, 5000, e, sizeof e);
    int rc = st ? so_store_put_handbook(st, hb, 1, e, sizeof e) : -1;
    if (rc < 0)
        snprintf(err, errlen, "publish to %s: %s", url, e);
    so_store_destroy(&st);
    return rc;
}

/* A handbook for agents with no recorded outcomes yet: "ID:IN:OUT,...". */
static so_handbook_t *s_cold_start(const char *list, const char *version, char *err,
                                   size_t errlen)
{
    so_handbook_t *hb = so_handbook_new(version);
    char *copy = strdup(list), *save = NULL;
    int rc = hb && copy ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    if (rc == 0 && (so_handbook_add_mode(hb, "default", "every turn", err, errlen) < 0 ||
                    so_handbook_add_skill(hb, "default.general", "general",
                                          "any request (cold start: no traces yet)", "default",
                                          NULL, err, errlen) < 0))
        rc = -1;
    for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        char *in = strchr(tok, ':'), *out = in ? strchr(in + 1, ':') : NULL, *end1, *end2;
        double pin = in ? strtod(in + 1, &end1) : NAN, pout = out ? strtod(out + 1, &end2) : NAN;
        if (!in || !out || end1 != out || *end2 || !(pin >= 0) || !(pout >= 0)) {
            snprintf(err, errlen, "--agents: '%s': want ID:IN:OUT with prices >= 0 in USD per "
                     "1M tokens", tok);
            rc = -1;
            break;
        }
        *in = '\0';
        if (so_handbook_add_agent(hb, tok, tok, "default", pin, pout, 0, err, errlen) < 0)
            rc = -1;
    }
    free(copy);
    if (rc < 0)
        so_handbook_destroy(&hb);
    return hb;
}

int main(int argc, char **argv)
{
    const char *train = NULL, *out = NULL, *publish = NULL, *agents = NULL;
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
        else if (strcmp(a, "--agents") == 0 && v)
            agents = v;
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
    if (!(train || agents) || (train && agents) || !out) {
        s_usage();
        return 2;
    }
    if (agents) {
        so_handbook_t *hb = s_cold_start(agents, o.version ? o.version : "cold-1", err, sizeof err);
        int rc = hb ? so_handbook_save(hb, out, err, sizeof err) : -1;
        if (rc == 0 && publish)
            rc = s_publish(hb, publish, err, sizeof err);
        if (rc < 0)
            fprintf(stderr, "so-learn: %s\n", err);
        else if (o.log)
            fprintf(o.log, "so-learn: wrote cold-start handbook %s (%zu agents)%s%s\n", out,
                    hb->n_agents, publish ? ", published to " : "", publish ? publish : "");
        so_handbook_destroy(&hb);
        return rc < 0 ? (hb ? 1 : 2) : 0;
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
        rc = s_publish(hb, publish, err, sizeof err);
        if (rc < 0)
            fprintf(stderr, "so-learn: %s\n", err);
        else if (o.log)
            fprintf(o.log, "so-learn: published version %s to %s\n", hb->version, publish);
    }
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
    return rc < 0 ? 1 : 0;
}
