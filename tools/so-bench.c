/*
 * so-bench — micro-benchmarks of the routing core: embedded skill inference
 * per turn, one routing decision (greedy and Thompson), and handbook
 * loading.  It measures and prints; it asserts nothing.
 *
 *   so-bench [--json OUT] [--reps N] [--prompts FILE.csv] [--handbook FILE.json]
 *
 * The handbook is synthetic and seeded (100 skills in 10 families, 11
 * agents, 30 learned terms per skill, an idf table, random statistics) so
 * every run measures the same work.  Turns are ~600-character texts made
 * by joining real RouterBench MBPP prompts (synthetic text when the file
 * cannot be read).  Each operation runs in several repetitions; the table
 * gives the median and the minimum time per operation in microseconds.
 */
#include "base/so_alloc.h"
#include "base/so_opts.h"
#include "method/so_handbook.h"
#include "method/so_infer.h"
#include "base/so_rng.h"
#include "method/so_route.h"
#include "base/so_text.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PROMPTS "../shared/data/routerbench/mbpp_test.csv"
#define DEFAULT_HANDBOOK "../shared/data/reference-handbook/routerbench_3skills.json"
#define N_FAMILIES 10
#define N_CHILDREN 9 /* per family: 10 × (1 + 9) = 100 skills */
#define N_AGENTS 11
#define TERMS_PER_SKILL 30
#define VOCAB_MIN 3000
#define TURN_CHARS 600
#define MAX_TURNS 256
#define MAX_REPS 50

typedef struct {
    const char *name;
    size_t ops;               /* operations per repetition */
    double median_us, min_us; /* per operation */
} s_row_t;

/* Keeps results observable so nothing is optimised away. */
static volatile double s_sink;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------ */
/* Turns: real prompts joined to ~600 characters                       */

/* The whole file, NUL-terminated (NULL if unreadable or over 256 MiB). */
static char *s_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (256L << 20) &&
        fseek(f, 0, SEEK_SET) == 0) {
        buf = so_malloc((size_t) n + 1);
        if (fread(buf, 1, (size_t) n, f) != (size_t) n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
    }
    fclose(f);
    return buf;
}

/*
 * Prompts from a RouterBench CSV without a full CSV parser: a row starts
 * on a new line with "<digits>,<sample id>,", then the prompt field, a
 * Python list literal ['…'] (quoted with "" when it holds commas or
 * quotes).  Responses in later columns may span lines; a line inside
 * them that happens to look like a row start and holds a list is taken
 * too, which is harmless for a benchmark input.
 */
static size_t s_extract_prompts(const char *buf, char **out, size_t max)
{
    size_t n = 0;
    for (const char *p = buf; p && *p && n < max; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        const char *q = p;
        while (*q >= '0' && *q <= '9')
            q++;
        if (q == p || *q != ',')
            continue;
        q++;
        while (*q && *q != ',' && *q != '\n' && *q != ' ')
            q++;
        if (*q != ',')
            continue;
        q++;
        /* The field, unquoted into a scratch buffer. */
        size_t cap = 4096, len = 0;
        char *f = so_malloc(cap);
        if (*q == '"') {
            for (q++; *q; q++) {
                if (*q == '"' && q[1] == '"')
                    q++;
                else if (*q == '"')
                    break;
                if (len + 2 < cap)
                    f[len++] = *q;
            }
        } else {
            while (*q && *q != ',' && *q != '\n' && len + 2 < cap)
                f[len++] = *q++;
        }
        f[len] = '\0';
        /* ['text'] or ["text"]: strip the list, turn escapes into spaces. */
        if (len > 24 && f[0] == '[' && (f[1] == '\'' || f[1] == '"') && f[len - 1] == ']') {
            f[len - 2] = '\0';
            char *t = f + 2, *w = f;
            for (; *t; t++) {
                if (*t == '\\' && t[1]) {
                    t++;
                    *w++ = (*t == 'n' || *t == 't') ? ' ' : *t;
                } else {
                    *w++ = *t;
                }
            }
            *w = '\0';
            out[n++] = so_strdup(f);
        }
        free(f);
    }
    return n;
}

/* Joins prompts into turns of at least TURN_CHARS characters. */
static size_t s_make_turns(char **prompts, size_t n_prompts, char **turns, size_t max)
{
    size_t n = 0, i = 0;
    while (i < n_prompts && n < max) {
        size_t cap = TURN_CHARS * 2 + 4096, len = 0;
        char *t = so_malloc(cap);
        t[0] = '\0';
        while (i < n_prompts && len < TURN_CHARS) {
            size_t pl = strlen(prompts[i]);
            if (len + pl + 2 >= cap)
                break;
            len += (size_t) sprintf(t + len, "%s%s", len ? " " : "", prompts[i]);
            i++;
        }
        if (len < TURN_CHARS / 2) { /* the tail: too short to be a turn */
            free(t);
            break;
        }
        turns[n++] = t;
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* The synthetic handbook                                              */

typedef struct {
    char **v;
    uint64_t *hash;
    size_t n, cap;
} s_vocab_t;

static int s_vocab_has(const s_vocab_t *vb, uint64_t h)
{
    for (size_t i = 0; i < vb->n; i++)
        if (vb->hash[i] == h)
            return 1;
    return 0;
}

static void s_vocab_add(s_vocab_t *vb, const char *text)
{
    uint64_t h = so_term_hash(text, strlen(text));
    if (s_vocab_has(vb, h))
        return;
    if (vb->n == vb->cap) {
        vb->cap = vb->cap ? vb->cap * 2 : 1024;
        vb->v = so_reallocarray(vb->v, vb->cap, sizeof *vb->v);
        vb->hash = so_reallocarray(vb->hash, vb->cap, sizeof *vb->hash);
    }
    vb->v[vb->n] = so_strdup(text);
    vb->hash[vb->n++] = h;
}

static void s_vocab_free(s_vocab_t *vb)
{
    for (size_t i = 0; i < vb->n; i++)
        free(vb->v[i]);
    free(vb->v);
    free(vb->hash);
}

/* Unigrams and bigrams of the turns, then synthetic words up to VOCAB_MIN
 * unigrams in all. */
static void s_build_vocab(char **turns, size_t n_turns, s_vocab_t *uni, s_vocab_t *bi)
{
    so_span_t tok[512];
    char buf[256];
    so_span_t none = { NULL, 0 };
    for (size_t t = 0; t < n_turns; t++) {
        size_t n = so_text_tokens(turns[t], tok, 512);
        for (size_t i = 0; i < n; i++) {
            s_vocab_add(uni, so_term_text(tok[i], none, buf, sizeof buf));
            if (i)
                s_vocab_add(bi, so_term_text(tok[i - 1], tok[i], buf, sizeof buf));
        }
    }
    for (int k = 0; uni->n < VOCAB_MIN; k++) {
        snprintf(buf, sizeof buf, "syn%04d", k);
        s_vocab_add(uni, buf);
    }
}

static const struct {
    const char *id;
    double price_in, price_out; /* USD per 1M tokens */
    long context;
} s_agents[N_AGENTS] = {
    { "gpt-4-1106-preview", 10, 30, 128000 },
    { "gpt-3.5-turbo-1106", 1, 2, 16000 },
    { "claude-v2", 8, 24, 100000 },
    { "claude-v1", 8, 24, 100000 },
    { "claude-instant-v1", 0.8, 2.4, 100000 },
    { "meta/llama-2-70b-chat", 0.9, 0.9, 4096 },
    { "meta/code-llama-instruct-34b-chat", 0.776, 0.776, 16000 },
    { "mistralai/mixtral-8x7b-chat", 0.6, 0.6, 32000 },
    { "mistralai/mistral-7b-chat", 0.2, 0.2, 32000 },
    { "zero-one-ai/Yi-34B-Chat", 0.8, 0.8, 4096 },
    { "WizardLM/WizardLM-13B-V1.2", 0.3, 0.3, 4096 },
};

static so_handbook_t *s_synthetic_handbook(const s_vocab_t *uni, const s_vocab_t *bi,
                                           uint64_t seed)
{
    char err[256], id[64], parent[64];
    so_rng_t rng;
    so_rng_seed(&rng, seed);
    so_handbook_t *hb = so_handbook_new("bench");
    so_handbook_add_mode(hb, "search", "synthetic", err, sizeof err);

    for (int fam = 0; fam < N_FAMILIES; fam++) {
        snprintf(parent, sizeof parent, "family%02d", fam);
        so_handbook_add_skill(hb, parent, NULL, NULL, "search", NULL, err, sizeof err);
        for (int c = 0; c < N_CHILDREN; c++) {
            snprintf(id, sizeof id, "family%02d.skill%d", fam, c);
            so_handbook_add_skill(hb, id, NULL, NULL, "search", parent, err, sizeof err);
        }
    }

    /* 30 distinct terms per skill, two thirds unigrams, a unit vector. */
    so_term_t terms[TERMS_PER_SKILL];
    for (size_t s = 0; s < hb->n_skills; s++) {
        size_t n = 0;
        double norm = 0;
        while (n < TERMS_PER_SKILL) {
            const s_vocab_t *vb = (n % 3 == 2 && bi->n) ? bi : uni;
            size_t k = (size_t) (so_rng_uniform(&rng) * (double) vb->n);
            int dup = 0;
            for (size_t j = 0; j < n; j++)
                dup |= terms[j].text == vb->v[k];
            if (dup)
                continue;
            terms[n].text = vb->v[k];
            terms[n].weight = 0.05 + so_rng_uniform(&rng);
            norm += terms[n].weight * terms[n].weight;
            n++;
        }
        for (size_t j = 0; j < n; j++)
            terms[j].weight /= sqrt(norm);
        so_skill_set_terms(&hb->skills[s], terms, n);
    }

    /* idf for every unigram and bigram. */
    size_t n_idf = uni->n + bi->n;
    so_term_t *idf = so_malloc(n_idf * sizeof *idf);
    for (size_t i = 0; i < n_idf; i++) {
        idf[i].text = i < uni->n ? uni->v[i] : bi->v[i - uni->n];
        idf[i].weight = 1.0 + 4.0 * so_rng_uniform(&rng);
    }
    so_handbook_set_idf(hb, idf, n_idf);
    free(idf);

    /* Agents and random statistics: ~20% of cells unseen. */
    for (int a = 0; a < N_AGENTS; a++) {
        so_handbook_add_agent(hb, s_agents[a].id, NULL, "search", s_agents[a].price_in,
                              s_agents[a].price_out, s_agents[a].context, err, sizeof err);
        double base = 0.35 + 0.5 * so_rng_uniform(&rng);
        for (size_t s = 0; s < hb->n_skills; s++) {
            if (so_rng_uniform(&rng) < 0.2)
                continue;
            so_stat_t *st = so_handbook_stat(hb, (size_t) a, s);
            double att = floor(1 + 200 * so_rng_uniform(&rng));
            double rate = fmin(1, fmax(0, base + 0.3 * (so_rng_uniform(&rng) - 0.5)));
            double pt = 150 + 400 * so_rng_uniform(&rng), ct = 50 + 300 * so_rng_uniform(&rng);
            st->attempts = att;
            st->successes = floor(att * rate + 0.5);
            st->cost_count = att;
            st->prompt_tokens = pt * att;
            st->completion_tokens = ct * att;
            st->cost_usd = att * (s_agents[a].price_in * pt + s_agents[a].price_out * ct) / 1e6;
            st->latency_s = att * (0.5 + 3 * so_rng_uniform(&rng));
        }
    }
    return hb;
}

/* ------------------------------------------------------------------ */
/* Timing                                                              */

typedef struct {
    const so_infer_t *inf;
    const so_route_tables_t *router;
    char **turns;
    size_t n_turns;
    double *demands;    /* [n_turns * n_skills] */
    double *demand;     /* scratch [n_skills] */
    const double *zero; /* all-zero demand [n_skills] */
    size_t n_skills;
    so_decision_t d;
    const char *ref_path;
    const so_handbook_t *hb;
    const char *hb_json;
} s_bench_t;

typedef void (*s_op_fn)(s_bench_t *b, size_t i, int rep);

static void s_op_infer(s_bench_t *b, size_t i, int rep)
{
    (void) rep;
    so_infer(b->inf, b->turns[i % b->n_turns], 0, b->demand);
    s_sink += b->demand[i % b->n_skills];
}

static void s_route(s_bench_t *b, const double *demand, int thompson, uint64_t seed)
{
    so_route_req_t q;
    so_route_req_default(&q);
    q.mode = 0;
    q.lambda = 0.5;
    q.est_prompt_tokens = 300;
    q.est_completion_tokens = 200;
    q.thompson = thompson;
    q.explore_floor = thompson ? 0.05 : 0;
    q.seed = seed;
    so_route(b->router, demand, &q, &b->d);
    s_sink += b->d.chosen;
}

static void s_op_route_greedy(s_bench_t *b, size_t i, int rep)
{
    (void) rep;
    s_route(b, b->demands + (i % b->n_turns) * b->n_skills, 0, 0);
}

static void s_op_route_thompson(s_bench_t *b, size_t i, int rep)
{
    s_route(b, b->demands + (i % b->n_turns) * b->n_skills, 1,
            so_rng_mix((uint64_t) rep, (uint64_t) i));
}

static void s_op_route_uniform(s_bench_t *b, size_t i, int rep)
{
    (void) rep;
    s_route(b, b->zero, 0, (uint64_t) i);
}

static void s_op_infer_route(s_bench_t *b, size_t i, int rep)
{
    so_infer(b->inf, b->turns[i % b->n_turns], 0, b->demand);
    s_route(b, b->demand, 1, so_rng_mix((uint64_t) rep, (uint64_t) i));
}

/* A handbook just loaded: its size into the sink (agents, or skills), then
 * freed; a load error ends the run. */
static void s_loaded(so_handbook_t *hb, const char *err, int skills)
{
    if (!hb) {
        fprintf(stderr, "so-bench: %s\n", err);
        exit(1);
    }
    s_sink += (double) (skills ? hb->n_skills : hb->n_agents);
    so_handbook_destroy(&hb);
}

static void s_op_load_ref(s_bench_t *b, size_t i, int rep)
{
    char err[512];
    (void) i;
    (void) rep;
    s_loaded(so_handbook_load(b->ref_path, err, sizeof err), err, 0);
}

static void s_op_load_synthetic(s_bench_t *b, size_t i, int rep)
{
    char err[512];
    (void) i;
    (void) rep;
    s_loaded(so_handbook_load_string(b->hb_json, "synthetic", err, sizeof err), err, 1);
}

static void s_op_infer_new(s_bench_t *b, size_t i, int rep)
{
    (void) i;
    (void) rep;
    so_infer_t *inf = so_infer_new(b->hb);
    s_sink += 1;
    so_infer_destroy(&inf);
}

static void s_op_router_new(s_bench_t *b, size_t i, int rep)
{
    (void) i;
    (void) rep;
    so_route_tables_t *r = so_route_tables_new(b->hb, NULL);
    s_sink += 1;
    so_route_tables_destroy(&r);
}

/* One warm-up repetition, then reps timed ones. */
static void s_time(s_bench_t *b, s_row_t *row, s_op_fn fn, int reps)
{
    double t[MAX_REPS];
    for (size_t i = 0; i < row->ops; i++)
        fn(b, i, -1);
    for (int r = 0; r < reps; r++) {
        double t0 = s_now();
        for (size_t i = 0; i < row->ops; i++)
            fn(b, i, r);
        t[r] = (s_now() - t0) * 1e6 / (double) row->ops;
    }
    qsort(t, (size_t) reps, sizeof *t, s_cmp_double);
    row->median_us = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    row->min_us = t[0];
}

/* ------------------------------------------------------------------ */
/* Machine and output                                                  */

static void s_cpu_model(char *out, size_t len)
{
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(out, len, "unknown");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Model", 5) == 0 ||
            strncmp(line, "Hardware", 8) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ' || *v == '\t')
                    v++;
                v[strcspn(v, "\n")] = '\0';
                snprintf(out, len, "%s", v);
                break;
            }
        }
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *json_out = NULL, *prompts_path = DEFAULT_PROMPTS;
    long reps_opt = 7;
    s_bench_t b;
    memset(&b, 0, sizeof b);
    b.ref_path = DEFAULT_HANDBOOK;
    so_opt_t opts[] = {
        SO_OPT_STR("json", 0, &json_out, "OUT", "write the results as JSON too"),
        SO_OPT_INT("reps", 0, &reps_opt, "N", 1, MAX_REPS, "repetitions of each benchmark (7)"),
        SO_OPT_STR("prompts", 0, &prompts_path, "FILE.csv",
                   "RouterBench CSV the turns come from"),
        SO_OPT_STR("handbook", 0, &b.ref_path, "FILE.json", "the reference handbook to load"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    int code = so_opts_main(&p, argc, argv, "so-bench",
                            "so-bench [--json OUT] [--reps N] [--prompts FILE.csv] "
                            "[--handbook FILE.json]",
                            NULL);
    if (code >= 0)
        return code;
    int reps = (int) reps_opt;

    /* Turns. */
    char *prompts[1024], *turns[MAX_TURNS];
    size_t n_prompts = 0, n_turns = 0;
    const char *turn_source = prompts_path;
    char *csv = s_read_file(prompts_path);
    if (csv) {
        n_prompts = s_extract_prompts(csv, prompts, 1024);
        free(csv);
        n_turns = s_make_turns(prompts, n_prompts, turns, MAX_TURNS);
    }
    if (n_turns < 4) {
        /* Synthetic text of ordinary words. */
        static const char *words[] = { "write", "a",    "python",  "function", "to",
                                       "find",  "the",  "which",   "of",       "following",
                                       "is",    "list", "number",  "string",   "return",
                                       "given", "sum",  "elements" };
        so_rng_t rng;
        so_rng_seed(&rng, 7);
        for (size_t i = 0; i < n_turns; i++)
            free(turns[i]);
        n_turns = 0;
        turn_source = "synthetic text";
        while (n_turns < 32) {
            char *t = so_malloc(TURN_CHARS + 32);
            size_t len = 0;
            while (len < TURN_CHARS)
                len += (size_t) sprintf(t + len, "%s ",
                                        words[(size_t) (so_rng_uniform(&rng) * 18)]);
            turns[n_turns++] = t;
        }
    }
    double mean_chars = 0;
    for (size_t i = 0; i < n_turns; i++)
        mean_chars += (double) strlen(turns[i]) / (double) n_turns;

    /* Handbook, index, router. */
    s_vocab_t uni = { 0 }, bi = { 0 };
    s_build_vocab(turns, n_turns, &uni, &bi);
    so_handbook_t *hb = s_synthetic_handbook(&uni, &bi, 20240611);
    so_infer_t *inf = so_infer_new(hb);
    so_route_tables_t *router = so_route_tables_new(hb, NULL);
    char *hb_json = so_handbook_dumps(hb);
    b.hb = hb;
    b.hb_json = hb_json;
    b.inf = inf;
    b.router = router;
    b.turns = turns;
    b.n_turns = n_turns;
    b.n_skills = hb->n_skills;
    b.demand = so_calloc(hb->n_skills, sizeof(double));
    double *zero = so_calloc(hb->n_skills, sizeof(double));
    b.zero = zero;
    b.demands = so_calloc(n_turns * hb->n_skills, sizeof(double));
    if (!hb_json) {
        fprintf(stderr, "so-bench: cannot serialise the handbook\n");
        return 1;
    }
    size_t nnz = 0, embedded = 0;
    for (size_t i = 0; i < n_turns; i++) {
        double *d = b.demands + i * hb->n_skills;
        embedded += so_infer(inf, turns[i], 0, d) == SO_DEMAND_EMBEDDED;
        for (size_t s = 0; s < hb->n_skills; s++)
            nnz += d[s] > 0;
    }
    so_decision_init(&b.d);

    s_row_t rows[] = {
        { "so_infer (per turn)", 2000, 0, 0 },
        { "so_route greedy", 5000, 0, 0 },
        { "so_route thompson (+5% floor)", 5000, 0, 0 },
        { "so_route greedy, uniform demand", 2000, 0, 0 },
        { "so_infer + so_route thompson", 2000, 0, 0 },
        { "so_handbook_load (reference file)", 200, 0, 0 },
        { "so_handbook_load_string (synthetic)", 10, 0, 0 },
        { "so_infer_new (synthetic)", 10, 0, 0 },
        { "so_route_tables_new (synthetic)", 50, 0, 0 },
    };
    s_op_fn fns[] = { s_op_infer,          s_op_route_greedy, s_op_route_thompson,
                      s_op_route_uniform,  s_op_infer_route,  s_op_load_ref,
                      s_op_load_synthetic, s_op_infer_new,    s_op_router_new };
    size_t n_rows = sizeof rows / sizeof *rows;
    double t_start = s_now();
    for (size_t i = 0; i < n_rows; i++)
        s_time(&b, &rows[i], fns[i], reps);
    double t_total = s_now() - t_start;

    /* Report. */
    struct utsname un;
    char cpu[256], cmd[1024];
    size_t cl = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (uname(&un) != 0)
        snprintf(un.machine, sizeof un.machine, "unknown");
    s_cpu_model(cpu, sizeof cpu);
    cmd[0] = '\0';
    for (int i = 0; i < argc && cl + 2 < sizeof cmd; i++)
        cl += (size_t) snprintf(cmd + cl, sizeof cmd - cl, "%s%s", i ? " " : "", argv[i]);

    size_t n_terms = 0;
    for (size_t s = 0; s < hb->n_skills; s++)
        n_terms += hb->skills[s].n_terms;
    printf("so-bench: SkillOrchestra core micro-benchmarks\n");
    printf("machine:  %s, %ld CPUs, %s\n", un.machine, ncpu, cpu);
    printf("command:  %s\n", cmd);
    printf(
        "handbook: synthetic, %zu skills (%d families), %zu agents, %zu terms, %zu idf terms\n",
        hb->n_skills, N_FAMILIES, hb->n_agents, n_terms, hb->n_idf);
    printf("turns:    %zu of %.0f chars on average, from %s (%zu prompts); "
           "%zu/%zu embedded, %.1f skills with weight per turn\n",
           n_turns, mean_chars, turn_source, n_prompts, embedded, n_turns,
           (double) nnz / (double) n_turns);
    printf("reference handbook: %s\n\n", b.ref_path);
    printf("%-38s %8s %5s %14s %11s\n", "operation", "ops/rep", "reps", "median us/op",
           "min us/op");
    for (size_t i = 0; i < n_rows; i++)
        printf("%-38s %8zu %5d %14.2f %11.2f\n", rows[i].name, rows[i].ops, reps,
               rows[i].median_us, rows[i].min_us);
    printf("\ntotal %.1f s\n", t_total);

    int rc = 0;
    if (json_out) {
        json_t *root = json_object(), *machine = json_object(), *ops = json_array();
        json_object_set_new(machine, "arch", json_string(un.machine));
        json_object_set_new(machine, "nproc", json_integer(ncpu));
        json_object_set_new(machine, "cpu", json_string(cpu));
        json_object_set_new(root, "machine", machine);
        json_object_set_new(root, "command", json_string(cmd));
        json_object_set_new(root, "reps", json_integer(reps));
        json_object_set_new(root, "skills", json_integer((json_int_t) hb->n_skills));
        json_object_set_new(root, "agents", json_integer((json_int_t) hb->n_agents));
        json_object_set_new(root, "turns", json_integer((json_int_t) n_turns));
        json_object_set_new(root, "turn_chars_mean", json_real(mean_chars));
        json_object_set_new(root, "turn_source", json_string(turn_source));
        for (size_t i = 0; i < n_rows; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "operation", json_string(rows[i].name));
            json_object_set_new(o, "ops_per_rep", json_integer((json_int_t) rows[i].ops));
            json_object_set_new(o, "median_us", json_real(rows[i].median_us));
            json_object_set_new(o, "min_us", json_real(rows[i].min_us));
            json_array_append_new(ops, o);
        }
        json_object_set_new(root, "operations", ops);
        if (json_dump_file(root, json_out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
            fprintf(stderr, "so-bench: cannot write %s\n", json_out);
            rc = 1;
        }
        json_decref(root);
    }

    so_decision_free(&b.d);
    free(b.demand);
    free(zero);
    free(b.demands);
    free(hb_json);
    so_route_tables_destroy(&router);
    so_infer_destroy(&inf);
    so_handbook_destroy(&hb);
    s_vocab_free(&uni);
    s_vocab_free(&bi);
    for (size_t i = 0; i < n_turns; i++)
        free(turns[i]);
    for (size_t i = 0; i < n_prompts; i++)
        free(prompts[i]);
    return rc;
}
