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
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_opts.h"
#include "offline/so_learn.h"
#include "store/so_store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Stores hb in Redis as the current version.  0 or -1 with err. */
static int s_publish(const so_handbook_t *hb, const char *url, char *err, size_t errlen)
{
    char e[400];
    so_store_t *st = so_store_connect(url, NULL, 5000, e, sizeof e);
    int rc = st ? so_store_put_handbook(st, hb, 1, e, sizeof e) : -1;
    if (rc < 0)
        so_err(err, errlen, "publish to %s: %s", url, e);
    so_store_destroy(&st);
    return rc;
}

/* A handbook for agents with no recorded outcomes yet: "ID:IN:OUT,...". */
static so_handbook_t *s_cold_start(const char *list, const char *version, char *err,
                                   size_t errlen)
{
    so_handbook_t *hb = so_handbook_new(version);
    char *copy = so_strdup(list), *save = NULL;
    int rc = hb ? 0 : so_err(err, errlen, "cannot make a handbook");
    if (rc == 0 && (so_handbook_add_mode(hb, "default", "every turn", err, errlen) < 0 ||
                    so_handbook_add_skill(hb, "default.general", "general",
                                          "any request (cold start: no traces yet)", "default",
                                          NULL, err, errlen) < 0))
        rc = -1;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        char *in = strchr(tok, ':'), *out = in ? strchr(in + 1, ':') : NULL, *end1, *end2;
        double pin = in ? strtod(in + 1, &end1) : NAN, pout = out ? strtod(out + 1, &end2) : NAN;
        if (!in || !out || end1 != out || *end2 || !(pin >= 0) || !(pout >= 0)) {
            rc = so_err(err, errlen,
                        "--agents: '%s': want ID:IN:OUT with prices >= 0 in USD "
                        "per 1M tokens",
                        tok);
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

static const char s_synopsis[] =
    "so-learn --train FILE[,FILE...] --out HANDBOOK.json [options]\n"
    "       so-learn --agents ID:IN:OUT[,...] --out HANDBOOK.json [--version V] [--publish URL]";

/* The command line into the options; -1 to go on, else the exit status. */
static int s_parse(int argc, char **argv, so_learn_opts_t *o, const char **train,
                   const char **out, const char **publish, const char **agents)
{
    long seed = 1, k = o->k, min_leaf = o->min_leaf, max_depth = o->max_depth;
    int quiet = 0;
    so_opt_t opts[] = {
        SO_OPT_STR("train", 0, train, "FILE[,FILE...]",
                   "RouterBench CSVs, MT-bench directories or JSONL traces"),
        SO_OPT_STR("out", 0, out, "HANDBOOK.json", "where the handbook goes"),
        SO_OPT_STR("agents", 0, agents, "LIST",
                   "cold start without traces: these agents (prices in USD\n"
                   "per 1M prompt:completion tokens; 0:0 = unknown, costed\n"
                   "as the others' average), one general skill"),
        SO_OPT_INT("seed", 0, &seed, "N", 0, 1e18, "RNG seed (default 1)"),
        SO_OPT_INT("k", 0, &k, "N", 1, 1000,
                   "top-level clusters (default: chosen on validation)"),
        SO_OPT_DBL("split-alpha", 0, &o->split_alpha, "P", 1e-12, 1,
                   "significance to keep a split (default: chosen)"),
        SO_OPT_DBL("merge-alpha", 0, &o->merge_alpha, "P", 0, 1,
                   "merge clusters no agent tells apart at this level (0.05)"),
        SO_OPT_DBL("temperature", 0, &o->temperature, "T", 1e-6, 100,
                   "inference softmax temperature (default: chosen)"),
        SO_OPT_INT("min-leaf", 0, &min_leaf, "N", 1, 1e9, "smallest skill in prompts (25)"),
        SO_OPT_INT("max-depth", 0, &max_depth, "N", 0, 20, "split depth below the top level (3)"),
        SO_OPT_DBL("val-fraction", 0, &o->val_fraction, "F", 0, 0.9,
                   "held-out share of the training queries (0.2)"),
        SO_OPT_STR("version", 0, &o->version, "V", "handbook version string"),
        SO_OPT_STR("publish", 0, publish, "URL",
                   "also store it in Redis (redis://host:port) as the\ncurrent version"),
        SO_OPT_FLAG("quiet", 0, &quiet, "no log"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    int code = so_opts_main(&p, argc, argv, "so-learn", s_synopsis, NULL);
    if (code >= 0)
        return code;
    if (!(*train || *agents) || (*train && *agents) || !*out) {
        fprintf(stderr, "so-learn: give --out and one of --train, --agents (so-learn --help)\n");
        return 2;
    }
    if (so_opts_seen(&p, "seed"))
        o->seed = (uint64_t) seed;
    o->k = (int) k;
    o->min_leaf = (int) min_leaf;
    o->max_depth = (int) max_depth;
    o->log = quiet ? NULL : stderr;
    return -1;
}

/* --agents: a cold-start handbook, saved (and published); the exit status. */
static int s_cold_main(const so_learn_opts_t *o, const char *agents, const char *out,
                       const char *publish)
{
    char err[512];
    so_handbook_t *hb = s_cold_start(agents, o->version ? o->version : "cold-1", err, sizeof err);
    int rc = hb ? so_handbook_save(hb, out, err, sizeof err) : -1;
    if (rc == 0 && publish)
        rc = s_publish(hb, publish, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "so-learn: %s\n", err);
    else if (o->log)
        fprintf(o->log, "so-learn: wrote cold-start handbook %s (%zu agents)%s%s\n", out,
                hb->n_agents, publish ? ", published to " : "", publish ? publish : "");
    so_handbook_destroy(&hb);
    return rc < 0 ? (hb ? 1 : 2) : 0;
}

static double s_secs(const struct timespec *a, const struct timespec *b)
{
    return (double) (b->tv_sec - a->tv_sec) + (double) (b->tv_nsec - a->tv_nsec) / 1e9;
}

/* The learned handbook hb saved (and published); the exit status. */
static int s_save(const so_learn_opts_t *o, const so_handbook_t *hb, const char *out,
                  const char *publish, double load_s, double learn_s)
{
    char err[512];
    int rc = so_handbook_save(hb, out, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "so-learn: %s\n", err);
    else if (o->log)
        fprintf(o->log, "so-learn: wrote %s (%zu skills) — load %.3f s, learn %.3f s\n", out,
                hb->n_skills, load_s, learn_s);
    if (rc == 0 && publish) {
        rc = s_publish(hb, publish, err, sizeof err);
        if (rc < 0)
            fprintf(stderr, "so-learn: %s\n", err);
        else if (o->log)
            fprintf(o->log, "so-learn: published version %s to %s\n", hb->version, publish);
    }
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *train = NULL, *out = NULL, *publish = NULL, *agents = NULL;
    so_learn_opts_t o;
    char err[512];

    so_learn_opts_default(&o);
    int code = s_parse(argc, argv, &o, &train, &out, &publish, &agents);
    if (code >= 0)
        return code;
    if (agents)
        return s_cold_main(&o, agents, out, publish);

    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    so_dataset_t ds;
    if (so_dataset_load(&ds, train, err, sizeof err) < 0) {
        fprintf(stderr, "so-learn: %s\n", err);
        return 1;
    }
    if (o.log)
        fprintf(o.log,
                "so-learn: %zu training queries, %zu agents (%zu rows skipped as unusable)\n",
                ds.n_samples, ds.n_agents, ds.skipped);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    so_handbook_t *hb = so_learn(&ds, &o, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    int rc = hb ? s_save(&o, hb, out, publish, s_secs(&t0, &t1), s_secs(&t1, &t2)) : 1;
    if (!hb)
        fprintf(stderr, "so-learn: %s\n", err);
    so_handbook_destroy(&hb);
    so_dataset_free(&ds);
    return rc;
}
