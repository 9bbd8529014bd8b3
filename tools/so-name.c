/*
 * so-name — asks an LLM to name learned skills (the reference's "skill
 * discovery naming" step) and, optionally, to label which skills recorded
 * turns used.
 *
 *   so-name --handbook IN.json --out OUT.json --llm-url URL --model M
 *           [--api-key-env VAR] [options]
 *   so-name --handbook IN.json --llm-url URL --model M
 *           --label TRACES --out-labels LABELS.jsonl [--limit N]
 *
 * Naming: so-learn names a skill by its most distinctive terms ("write a /
 * write / function"); for each skill the LLM gets its id, current name,
 * indicator terms and a few example prompts (so_skillprompt_naming) and
 * answers {"name", "description"}.  Only names and descriptions change: ids,
 * modes, terms, examples and every statistic are written back as loaded.
 * A skill whose answer is unusable (no JSON, no name, too long) or whose
 * call failed keeps its name; each is reported and counted.  Names are made
 * unique (" (2)" appended to a repeat).
 *
 * Labelling: each turn of the traces (JSONL, RouterBench CSV, MT-bench) gets
 * a skill analysis by the LLM over the skills of its mode — the prompt
 * skill-inference's llm mode sends — written as one JSON line per turn:
 *   {"episode_id", "turn", "mode", "agent", "source": "llm"|"embedded"|
 *    "uniform", "skills": [{"id", "weight"}], "error"?}
 * with the embedded inference as the fallback (source says which).
 *
 * Exit status: 0 done (fallbacks are reported, not failures); 1 an input,
 * output or Redis error; 2 usage.
 */
#include "base/so_alloc.h"
#include "base/so_text.h"
#include "base/so_opts.h"
#include "llm/so_extract.h"
#include "method/so_handbook.h"
#include "store/so_hbcache.h"
#include "method/so_infer.h"
#include "llm/so_llmcache.h"
#include "llm/so_openai.h"
#include "llm/so_skillprompt.h"
#include "store/so_store.h"
#include "offline/so_trace.h"
#include "wire/so_wire.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *handbook, *out, *url, *model, *key_env, *version, *publish;
    const char *label, *out_labels;
    long timeout_ms, limit;
    int max_retries, quiet;
    so_skillprompt_opts_t po;
} s_opts_t;

static const char
    s_synopsis[] = "so-name --handbook IN.json --out OUT.json --llm-url URL --model M [options]\n"
                   "       so-name --handbook IN.json --llm-url URL --model M --label TRACES\n"
                   "               --out-labels LABELS.jsonl [--limit N]";

/* What the options ask for, checked together; -1 when it holds, else 2. */
static int s_check(const s_opts_t *o)
{
    const char *why = NULL;
    if (!o->handbook || !o->url || !o->model)
        why = "--handbook, --llm-url and --model are required";
    else if (!o->out && !o->label)
        why = "nothing to do: give --out (naming) and/or --label";
    else if (!o->label != !o->out_labels)
        why = "--label and --out-labels go together";
    else if (o->publish && (!o->out || !o->version))
        why = "--publish needs --out and a new --version (a published version is never "
              "overwritten: services cache it)";
    if (!why)
        return -1;
    fprintf(stderr, "so-name: %s (so-name --help)\n", why);
    return 2;
}

/* -1 to go on, else the exit status. */
static int s_parse(int argc, char **argv, s_opts_t *o)
{
    long max_retries = 2, examples = -1, example_chars = -1;
    memset(o, 0, sizeof *o);
    o->timeout_ms = 30000;
    so_opt_t opts[] = {
        SO_OPT_STR("handbook", 0, &o->handbook, "IN.json", "the handbook to name"),
        SO_OPT_STR("out", 0, &o->out, "OUT.json", "where the renamed handbook goes"),
        SO_OPT_STR("llm-url", 0, &o->url, "URL", "the OpenAI-compatible endpoint"),
        SO_OPT_STR("model", 0, &o->model, "M", "the model to ask"),
        SO_OPT_STR("api-key-env", 0, &o->key_env, "VAR",
                   "environment variable holding the API key (none: no key)"),
        SO_OPT_INT("timeout-ms", 0, &o->timeout_ms, "MS", 1, 3600000,
                   "per LLM call, retries included (30000)"),
        SO_OPT_INT("max-retries", 0, &max_retries, "N", 0, 10,
                   "retries of 429/5xx/transport errors (2)"),
        SO_OPT_INT("examples", 0, &examples, "N", 0, 20,
                   "example prompts shown per skill (naming 4, labels 2)"),
        SO_OPT_INT("example-chars", 0, &example_chars, "N", 20, 4000,
                   "each example cut to this (naming 300, labels 160)"),
        SO_OPT_STR("version", 0, &o->version, "V",
                   "write the renamed handbook as version V (parent: IN's)"),
        SO_OPT_STR("publish", 0, &o->publish, "URL",
                   "also store it in Redis (redis://host:port) as the current\n"
                   "version (needs --version other than IN's)"),
        SO_OPT_STR("label", 0, &o->label, "TRACES",
                   "label every turn of these traces (comma-separated files)"),
        SO_OPT_STR("out-labels", 0, &o->out_labels, "FILE", "where the labels go (JSONL)"),
        SO_OPT_INT("limit", 0, &o->limit, "N", 1, 1000000000, "label at most N turns"),
        SO_OPT_FLAG("quiet", 0, &o->quiet, "no per-skill lines"),
        SO_OPT_END,
    };
    so_opts_t p = { opts, NULL, 0, 0, 0, 0 };
    int code = so_opts_main(&p, argc, argv, "so-name", s_synopsis,
                            "Exit: 0 done (fallbacks reported), 1 error, 2 usage.\n");
    if (code < 0)
        code = s_check(o);
    if (code >= 0)
        return code;
    o->max_retries = (int) max_retries;
    so_skillprompt_opts_default(&o->po);
    if (!o->label || o->out) {
        /* Naming sees more of each skill than a per-turn analysis. */
        o->po.max_examples = 4;
        o->po.example_chars = 300;
    }
    if (examples >= 0)
        o->po.max_examples = (size_t) examples;
    if (example_chars >= 0)
        o->po.example_chars = (size_t) example_chars;
    return -1;
}

static so_openai_t *s_client(const s_opts_t *o, char *err, size_t errlen)
{
    so_openai_config_t cc;
    so_openai_config_endpoint(&cc, o->url, o->model, o->key_env, o->timeout_ms);
    cc.connect_timeout_ms = o->timeout_ms < 5000 ? o->timeout_ms : 5000;
    cc.deadline_ms = o->timeout_ms;
    cc.max_retries = o->max_retries;
    cc.max_response_bytes = 1u << 20;
    return so_openai_new(&cc, err, errlen);
}

/* One chat call; 0 with *text (malloc'd), or -1 with err. */
static int s_ask(so_openai_t *c, const char *system, const char *user, char **text, char *err,
                 size_t errlen)
{
    so_openai_msg_t msgs[2] = { { "system", system }, { "user", user } };
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = msgs;
    req.n_messages = 2;
    req.max_tokens = 300;
    req.temperature = 0;
    so_openai_response_t resp;
    int rc = so_openai_chat(c, &req, &resp);
    *text = NULL;
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", so_openai_code_name(resp.code), resp.error);
    } else {
        *text = resp.text;
        resp.text = NULL;
    }
    so_openai_response_clear(&resp);
    return rc;
}

/* ---- naming -------------------------------------------------------------- */

/* A name no other skill of hb before index skill has: name, else
 * "name (2)", "name (3)", ...  Malloc'd. */
static char *s_unique(const so_handbook_t *hb, size_t skill, const char *name)
{
    size_t n = strlen(name) + 16;
    char *out = so_malloc(n);
    snprintf(out, n, "%s", name);
    for (int k = 2;; k++) {
        int clash = 0;
        for (size_t s = 0; s < skill && !clash; s++)
            clash = hb->skills[s].name && strcmp(hb->skills[s].name, out) == 0;
        if (!clash)
            return out;
        snprintf(out, n, "%s (%d)", name, k);
    }
}

typedef struct {
    size_t named, bad_output, errors;
} s_name_counts_t;

static void s_name_all(so_handbook_t *hb, so_openai_t *c, const s_opts_t *o, s_name_counts_t *k)
{
    char err[768];
    for (size_t s = 0; s < hb->n_skills; s++) {
        so_skill_t *sk = &hb->skills[s];
        char *user = so_skillprompt_naming(hb, s, &o->po), *text = NULL, *name = NULL,
             *desc = NULL;
        int rc = s_ask(c, so_skillprompt_naming_system(), user, &text, err, sizeof err);
        if (rc != 0) {
            k->errors++;
        } else if (so_skillprompt_parse_name(text, strlen(text), &name, &desc, err, sizeof err) !=
                   0) {
            k->bad_output++;
            rc = -1;
        }
        if (rc == 0) {
            char *unique = s_unique(hb, s, name);
            if (!o->quiet)
                printf("skill id=%s named name=\"%s\" was=\"%s\"\n", sk->id, unique, sk->name);
            free(sk->name);
            sk->name = unique;
            if (*desc) {
                free(sk->description);
                sk->description = desc;
                desc = NULL;
            }
            k->named++;
        } else {
            so_utf8_scrub(err);
            /* The kept name may now repeat one given above. */
            char *unique = s_unique(hb, s, sk->name ? sk->name : sk->id);
            free(sk->name);
            sk->name = unique;
            printf("skill id=%s kept name=\"%s\" error=\"%s\"\n", sk->id, sk->name, err);
        }
        free(name);
        free(desc);
        free(text);
        free(user);
    }
}

/* ---- labelling ------------------------------------------------------------- */

typedef struct {
    size_t turns, llm, cached, fallback_bad_output, fallback_error, embedded, uniform;
} s_label_counts_t;

/* The analysis prompt of one mode index (-1 = every skill), kept. */
typedef struct {
    char *system;
    size_t *idx, n;
    const char **ids;
} s_modeprompt_t;

static json_t *s_skills_json(const so_handbook_t *hb, const double *w, const size_t *idx,
                             size_t n)
{
    json_t *a = json_array();
    for (size_t k = 0; k < n; k++)
        if (w[k] > 0 && isfinite(w[k]))
            json_array_append_new(a, json_pack("{s:s, s:f}", "id", hb->skills[idx[k]].id,
                                               "weight", w[k]));
    return a;
}

/* RouterBench holds one episode per (query, agent): the same prompt comes
 * back once per agent, and is asked once. */
static int s_cached(so_llmcache_t *cache, const so_handbook_t *hb, int mode, const char *prompt,
                    const s_modeprompt_t *m, double *w)
{
    so_llmcache_item_t items[SO_WIRE_MAX_SKILLS];
    size_t n = so_llmcache_get(cache, so_skillprompt_key(hb->version, mode, prompt), 0, items,
                               SO_WIRE_MAX_SKILLS);
    if (n == 0)
        return 0;
    for (size_t k = 0; k < m->n; k++) {
        w[k] = 0;
        for (size_t i = 0; i < n; i++)
            if (items[i].skill == m->idx[k])
                w[k] = items[i].weight;
    }
    return 1;
}

static void s_cache_put(so_llmcache_t *cache, const so_handbook_t *hb, int mode,
                        const char *prompt, const s_modeprompt_t *m, const double *w,
                        so_llmcache_item_t *items)
{
    size_t n = 0;
    for (size_t k = 0; k < m->n && n < SO_WIRE_MAX_SKILLS; k++)
        if (w[k] > 0)
            items[n++] = (so_llmcache_item_t){ (uint32_t) m->idx[k], w[k] };
    so_llmcache_put(cache, so_skillprompt_key(hb->version, mode, prompt), 0, items, n);
}

/* What labelling keeps from turn to turn. */
typedef struct {
    const so_handbook_t *hb;
    so_openai_t *c;
    const s_opts_t *o;
    s_label_counts_t *k;
    so_infer_t *inf;
    so_llmcache_t *cache;
    so_llmcache_item_t *items;
    s_modeprompt_t *mp; /* [mode + 1], built on first use */
    double *w, *dense;
} s_labeller_t;

/* Every turn of the comma-separated trace files into eps.  0, or -1 after a message. */
static int s_read_traces(const char *list, so_episodes_t *eps)
{
    char err[768];
    memset(eps, 0, sizeof *eps);
    char *paths = so_strdup(list), *save = NULL;
    int rc = 0;
    for (char *p = strtok_r(paths, ",", &save); p && rc == 0; p = strtok_r(NULL, ",", &save)) {
        so_episodes_t one;
        if (so_episodes_read_any(&one, p, err, sizeof err) != 0 ||
            so_episodes_concat(eps, &one) != 0) {
            fprintf(stderr, "so-name: %s\n", err);
            so_episodes_free(eps);
            rc = -1;
        } else {
            so_episodes_free(&one);
        }
    }
    free(paths);
    return rc;
}

/* The analysis prompt of a mode and its skills, built on first use. */
static s_modeprompt_t *s_modeprompt(s_labeller_t *lb, int mode)
{
    s_modeprompt_t *m = &lb->mp[mode + 1];
    if (!m->system) {
        m->idx = so_calloc(lb->hb->n_skills + 1, sizeof *m->idx);
        m->ids = so_calloc(lb->hb->n_skills + 1, sizeof *m->ids);
        m->system = so_skillprompt_analysis(lb->hb, mode, &lb->o->po, m->idx, &m->n);
        for (size_t i = 0; i < m->n; i++)
            m->ids[i] = lb->hb->skills[m->idx[i]].id;
    }
    return m;
}

/* The LLM's analysis of prompt into lb->w (from the cache when it was
 * asked before).  1, or 0 with why not in err (counted). */
static int s_label_llm(s_labeller_t *lb, const s_modeprompt_t *m, int mode, const char *prompt,
                       char *err, size_t errlen)
{
    char *user = so_skillprompt_turn(prompt, &lb->o->po), *text = NULL;
    int ok = 0;
    if (m->n == 0) {
        snprintf(err, errlen, "the mode has no skills");
        lb->k->fallback_error++;
    } else if (s_cached(lb->cache, lb->hb, mode, prompt, m, lb->w)) {
        ok = 1;
        lb->k->cached++;
    } else if (s_ask(lb->c, m->system, user, &text, err, errlen) != 0) {
        lb->k->fallback_error++;
    } else if (so_extract_skills(text, strlen(text), m->ids, m->n, lb->w, NULL, err, errlen) <
               0) {
        lb->k->fallback_bad_output++;
    } else {
        ok = 1;
        s_cache_put(lb->cache, lb->hb, mode, prompt, m, lb->w, lb->items);
    }
    free(text);
    free(user);
    return ok;
}

/* Source, skills (and error) of one turn of mode into line. */
static void s_label_turn(s_labeller_t *lb, int mode, const char *prompt, json_t *line)
{
    char err[768];
    const so_handbook_t *hb = lb->hb;
    const s_modeprompt_t *m = s_modeprompt(lb, mode);
    if (s_label_llm(lb, m, mode, prompt, err, sizeof err)) {
        lb->k->llm++;
        json_object_set_new(line, "source", json_string("llm"));
        json_object_set_new(line, "skills", s_skills_json(hb, lb->w, m->idx, m->n));
        return;
    }
    so_demand_source_t src = so_infer(lb->inf, prompt, mode, lb->dense);
    for (size_t i = 0; i < m->n; i++)
        lb->w[i] = lb->dense[m->idx[i]];
    int uni = src == SO_DEMAND_UNIFORM_FALLBACK;
    lb->k->uniform += uni;
    lb->k->embedded += !uni;
    so_utf8_scrub(err);
    json_object_set_new(line, "source", json_string(uni ? "uniform" : "embedded"));
    json_object_set_new(line, "skills",
                        uni ? json_array() : s_skills_json(hb, lb->w, m->idx, m->n));
    json_object_set_new(line, "error", json_string(err));
}

/* The label line of turn t of ep. */
static json_t *s_label_line(s_labeller_t *lb, const so_episode_t *ep, size_t t)
{
    char err[768];
    const so_turn_t *turn = &ep->turns[t];
    int mode;
    json_t *line = json_pack("{s:s, s:i, s:s, s:s}", "episode_id", ep->id, "turn", (int) t,
                             "mode", turn->mode ? turn->mode : "", "agent",
                             turn->agent ? turn->agent : "");
    lb->k->turns++;
    if (so_hbcache_mode(lb->hb, turn->mode, &mode, err, sizeof err) != 0) {
        json_object_set_new(line, "source", json_string("none"));
        json_object_set_new(line, "skills", json_array());
        json_object_set_new(line, "error", json_string(err));
        lb->k->fallback_error++;
    } else {
        s_label_turn(lb, mode, turn->prompt ? turn->prompt : "", line);
    }
    return line;
}

/* Labels every turn of eps (up to --limit) into out.  0, or -1 after a message. */
static int s_label_eps(s_labeller_t *lb, const so_episodes_t *eps, FILE *out)
{
    const s_opts_t *o = lb->o;
    for (size_t e = 0; e < eps->n; e++)
        for (size_t t = 0; t < eps->items[e].n_turns; t++) {
            if (o->limit > 0 && lb->k->turns >= (size_t) o->limit)
                break;
            json_t *line = s_label_line(lb, &eps->items[e], t);
            char *s = json_dumps(line,
                                 JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
            int bad = !s || fprintf(out, "%s\n", s) < 0;
            free(s);
            json_decref(line);
            if (bad) {
                fprintf(stderr, "so-name: %s: write failed\n", o->out_labels);
                return -1;
            }
        }
    return 0;
}

static int s_label_all(const so_handbook_t *hb, so_openai_t *c, const s_opts_t *o,
                       s_label_counts_t *k)
{
    so_episodes_t eps;
    if (s_read_traces(o->label, &eps) < 0)
        return -1;
    FILE *out = fopen(o->out_labels, "w");
    if (!out) {
        fprintf(stderr, "so-name: %s: %s\n", o->out_labels, strerror(errno));
        so_episodes_free(&eps);
        return -1;
    }
    s_labeller_t lb = { hb,
                        c,
                        o,
                        k,
                        so_infer_new(hb),
                        so_llmcache_new(1 << 16, SO_WIRE_MAX_SKILLS, 0),
                        so_calloc(SO_WIRE_MAX_SKILLS, sizeof *lb.items),
                        so_calloc(hb->n_modes + 1, sizeof *lb.mp),
                        so_calloc(hb->n_skills + 1, sizeof *lb.w),
                        so_calloc(hb->n_skills + 1, sizeof *lb.dense) };
    int rc = s_label_eps(&lb, &eps, out);
    if (fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "so-name: %s: %s\n", o->out_labels, strerror(errno));
        rc = -1;
    }
    for (size_t i = 0; i <= hb->n_modes; i++) {
        free(lb.mp[i].system);
        free(lb.mp[i].idx);
        free(lb.mp[i].ids);
    }
    free(lb.mp);
    free(lb.w);
    free(lb.dense);
    free(lb.items);
    so_llmcache_destroy(&lb.cache);
    so_infer_destroy(&lb.inf);
    so_episodes_free(&eps);
    return rc;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    s_opts_t o;
    char err[768];
    int code = s_parse(argc, argv, &o);
    if (code >= 0)
        return code;
    so_log_open("so-name", SO_LOG_WARN);
    so_handbook_t *hb = so_handbook_load(o.handbook, err, sizeof err);
    if (!hb) {
        fprintf(stderr, "so-name: %s\n", err);
        return 1;
    }
    if (o.publish && strcmp(o.version, hb->version) == 0) {
        fprintf(stderr,
                "so-name: --version %s is the input's own version: publish under a "
                "new one\n",
                o.version);
        so_handbook_destroy(&hb);
        return 2;
    }
    so_openai_t *c = s_client(&o, err, sizeof err);
    if (!c) {
        fprintf(stderr, "so-name: LLM client: %s\n", err);
        so_handbook_destroy(&hb);
        return 2;
    }
    int rc = 0;
    if (o.label) {
        s_label_counts_t k = { 0 };
        rc = s_label_all(hb, c, &o, &k);
        if (rc == 0)
            printf("so-name: labelled %zu turns: %zu by the LLM (%zu repeated prompts asked "
                   "once), %zu fell back (bad output %zu, errors %zu; embedded %zu, uniform %zu) "
                   "-> %s\n",
                   k.turns, k.llm, k.cached, k.fallback_bad_output + k.fallback_error,
                   k.fallback_bad_output, k.fallback_error, k.embedded, k.uniform, o.out_labels);
    }
    if (rc == 0 && o.out) {
        s_name_counts_t k = { 0 };
        s_name_all(hb, c, &o, &k);
        if (o.version) {
            free(hb->parent_version);
            hb->parent_version = hb->version;
            hb->version = so_strdup(o.version);
        }
        if (so_handbook_save(hb, o.out, err, sizeof err) != 0) {
            fprintf(stderr, "so-name: %s\n", err);
            rc = -1;
        } else {
            printf("so-name: named %zu of %zu skills; %zu kept their name (bad output %zu, "
                   "errors %zu) -> %s (version %s)\n",
                   k.named, hb->n_skills, k.bad_output + k.errors, k.bad_output, k.errors, o.out,
                   hb->version);
        }
        if (rc == 0 && o.publish) {
            so_store_t *st = so_store_connect(o.publish, NULL, 5000, err, sizeof err);
            if (!st || so_store_put_handbook(st, hb, 1, err, sizeof err) < 0) {
                fprintf(stderr, "so-name: publish to %s: %s\n", o.publish, err);
                rc = -1;
            } else {
                printf("so-name: published version %s to %s as current\n", hb->version,
                       o.publish);
            }
            so_store_destroy(&st);
        }
    }
    so_openai_destroy(&c);
    so_handbook_destroy(&hb);
    return rc == 0 ? 0 : 1;
}
