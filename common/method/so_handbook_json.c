/*
 * so_handbook_json — a handbook to and from JSON: our own file (the
 * reference's keys plus a "skillorchestra" section with priors, IDF and
 * learned terms) and the reference handbooks' format, which loads the same
 * way (see so_handbook.h).
 *
 * Loading builds a fresh handbook and validates every key before returning
 * it; any error destroys the partial handbook, so callers either get a
 * complete one or none.  Errors read "<file>: <key path>: <problem>".
 */
#include "method/so_handbook.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* JSON loading                                                       */

typedef struct {
    const char *file;
    char *err;
    size_t errlen;
} s_ctx_t;

static int s_fail(s_ctx_t *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return so_err(c->err, c->errlen, "%s: %s", c->file, msg);
}

/* Optional string: absent or null → def; anything else but a string fails. */
static int s_get_str(s_ctx_t *c, json_t *obj, const char *key, const char *path, const char *def,
                     const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_string(v))
        return s_fail(c, "%s.%s: expected a string", path, key);
    *out = json_string_value(v);
    return 0;
}

/* Optional number ≥ 0 and finite. */
static int s_get_num(s_ctx_t *c, json_t *obj, const char *key, const char *path, double def,
                     double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return s_fail(c, "%s.%s: expected a number", path, key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < 0)
        return s_fail(c, "%s.%s: must be a finite number >= 0, got %g", path, key, d);
    *out = d;
    return 0;
}

static int s_get_strv(s_ctx_t *c, json_t *obj, const char *key, const char *path, so_skill_t *sk,
                      int indicators)
{
    json_t *v = json_object_get(obj, key), *e;
    size_t i;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return s_fail(c, "%s.%s: expected a list of strings", path, key);
    json_array_foreach(v, i, e) {
        if (!json_is_string(e))
            return s_fail(c, "%s.%s[%zu]: expected a string", path, key, i);
        if (indicators)
            so_skill_add_indicator(sk, json_string_value(e));
        else
            so_skill_add_example(sk, json_string_value(e));
    }
    return 0;
}

/* Terms (term -> weight) into sk's learned terms, or hb's IDF table when sk
 * is NULL. */
static int s_get_terms(s_ctx_t *c, json_t *v, const char *path, so_skill_t *sk, so_handbook_t *hb)
{
    const char *k;
    json_t *w;
    size_t i = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return s_fail(c, "%s: expected an object of term -> weight", path);
    so_term_t *t = so_realloc(NULL, json_object_size(v) * sizeof *t);
    json_object_foreach(v, k, w) {
        if (!json_is_number(w) || !isfinite(json_number_value(w))) {
            free(t); /* its texts are borrowed jansson keys */
            return s_fail(c, "%s.%s: expected a finite number", path, k);
        }
        t[i].text = (char *) k; /* borrowed until copied below */
        t[i].weight = json_number_value(w);
        i++;
    }
    if (sk)
        so_skill_set_terms(sk, t, i);
    else
        so_handbook_set_idf(hb, t, i);
    free(t);
    return 0;
}

static int s_load_modes(s_ctx_t *c, so_handbook_t *hb, json_t *root)
{
    json_t *modes = json_object_get(root, "modes"), *m;
    const char *k;
    char err[256];
    if (modes && !json_is_null(modes) && !json_is_object(modes))
        return s_fail(c, "modes: expected an object keyed by mode id");
    if (!modes || json_is_null(modes) || json_object_size(modes) == 0) {
        /* A handbook without modes has one implicit mode. */
        so_handbook_add_mode(hb, "default", "", err, sizeof err);
        return 0;
    }
    json_object_foreach(modes, k, m) {
        const char *desc = "";
        if (!json_is_object(m))
            return s_fail(c, "modes.%s: expected an object", k);
        if (s_get_str(c, m, "description", k, "", &desc) < 0)
            return -1;
        if (so_handbook_add_mode(hb, k, desc, err, sizeof err) < 0)
            return s_fail(c, "modes.%s: %s", k, err);
    }
    return 0;
}

static int s_load_skills(s_ctx_t *c, so_handbook_t *hb, json_t *root)
{
    json_t *skills = json_object_get(root, "skills"), *s;
    const char *k;
    char err[256], path[300];
    if (!skills || json_is_null(skills))
        return 0;
    if (!json_is_object(skills))
        return s_fail(c, "skills: expected an object keyed by skill id");
    /* Parents may be listed after their children: add skills whose parent
     * is known, repeat until nothing changes, then report what is left. */
    size_t total = json_object_size(skills), added = 0;
    for (int progress = 1; progress && added < total;) {
        progress = 0;
        json_object_foreach(skills, k, s) {
            const char *name = "", *desc = "", *mode = "", *parent = "", *sid = "";
            if (so_handbook_skill_index(hb, k) >= 0)
                continue;
            snprintf(path, sizeof path, "skills.%s", k);
            if (!json_is_object(s))
                return s_fail(c, "%s: expected an object", path);
            if (s_get_str(c, s, "skill_id", path, k, &sid) < 0 ||
                s_get_str(c, s, "name", path, k, &name) < 0 ||
                s_get_str(c, s, "description", path, "", &desc) < 0 ||
                s_get_str(c, s, "mode", path, hb->modes[0].id, &mode) < 0 ||
                s_get_str(c, s, "parent_skill_id", path, "", &parent) < 0)
                return -1;
            if (strcmp(sid, k) != 0)
                return s_fail(c, "%s.skill_id: '%s' differs from its key", path, sid);
            if (*parent && so_handbook_skill_index(hb, parent) < 0) {
                if (!json_object_get(skills, parent))
                    return s_fail(c, "%s.parent_skill_id: unknown skill '%s'", path, parent);
                continue; /* parent not added yet */
            }
            if (strcmp(parent, k) == 0)
                return s_fail(c, "%s.parent_skill_id: a skill cannot be its own parent", path);
            int idx = so_handbook_add_skill(hb, k, name, desc, mode, parent, err, sizeof err);
            if (idx < 0)
                return s_fail(c, "%s: %s", path, err);
            so_skill_t *sk = &hb->skills[idx];
            if (s_get_strv(c, s, "indicators", path, sk, 1) < 0 ||
                s_get_strv(c, s, "examples", path, sk, 0) < 0)
                return -1;
            snprintf(path, sizeof path, "skills.%s.terms", k);
            if (s_get_terms(c, json_object_get(s, "terms"), path, sk, NULL) < 0)
                return -1;
            added++;
            progress = 1;
        }
    }
    if (added < total)
        return s_fail(c, "skills: parent_skill_id links form a cycle");
    return 0;
}

/* One agent's per-skill statistics, from our "skill_stats" or, for the
 * reference format, from skill_successes/skill_attempts or the Beta
 * parameters (the reference's prior is Beta(1,1)). */
static int s_load_agent_stats(s_ctx_t *c, so_handbook_t *hb, size_t a, json_t *p,
                              const char *path)
{
    json_t *stats = json_object_get(p, "skill_stats");
    json_t *succ = json_object_get(p, "skill_successes");
    json_t *att = json_object_get(p, "skill_attempts");
    json_t *comp = json_object_get(p, "skill_competence");
    json_t *v;
    const char *k;
    char sub[400];

    if (stats && !json_is_null(stats)) {
        if (!json_is_object(stats))
            return s_fail(c, "%s.skill_stats: expected an object keyed by skill id", path);
        json_object_foreach(stats, k, v) {
            int s = so_handbook_skill_index(hb, k);
            snprintf(sub, sizeof sub, "%s.skill_stats.%s", path, k);
            if (s < 0)
                return s_fail(c, "%s: unknown skill id", sub);
            if (!json_is_object(v))
                return s_fail(c, "%s: expected an object", sub);
            so_stat_t *st = so_handbook_stat(hb, a, (size_t) s);
            if (s_get_num(c, v, "successes", sub, 0, &st->successes) < 0 ||
                s_get_num(c, v, "attempts", sub, 0, &st->attempts) < 0 ||
                s_get_num(c, v, "cost_usd", sub, 0, &st->cost_usd) < 0 ||
                s_get_num(c, v, "prompt_tokens", sub, 0, &st->prompt_tokens) < 0 ||
                s_get_num(c, v, "completion_tokens", sub, 0, &st->completion_tokens) < 0 ||
                s_get_num(c, v, "latency_s", sub, 0, &st->latency_s) < 0 ||
                s_get_num(c, v, "cost_count", sub, 0, &st->cost_count) < 0)
                return -1;
            if (st->successes > st->attempts + 1e-9)
                return s_fail(c, "%s: successes %g exceed attempts %g", sub, st->successes,
                              st->attempts);
        }
        return 0;
    }

    if (comp && !json_is_null(comp) && !json_is_object(comp))
        return s_fail(c, "%s.skill_competence: expected an object keyed by skill id", path);
    if (succ && !json_is_null(succ) && !json_is_object(succ))
        return s_fail(c, "%s.skill_successes: expected an object keyed by skill id", path);
    if (att && !json_is_null(att) && !json_is_object(att))
        return s_fail(c, "%s.skill_attempts: expected an object keyed by skill id", path);
    if (json_is_object(comp)) {
        json_object_foreach(comp, k, v) {
            int s = so_handbook_skill_index(hb, k);
            double alpha, beta;
            snprintf(sub, sizeof sub, "%s.skill_competence.%s", path, k);
            if (s < 0)
                return s_fail(c, "%s: unknown skill id", sub);
            if (!json_is_object(v))
                return s_fail(c, "%s: expected {alpha, beta}", sub);
            if (s_get_num(c, v, "alpha", sub, 1, &alpha) < 0 ||
                s_get_num(c, v, "beta", sub, 1, &beta) < 0)
                return -1;
            if (alpha < 1 || beta < 1)
                return s_fail(c, "%s: alpha and beta must be >= 1 (Beta(1,1) prior)", sub);
            so_stat_t *st = so_handbook_stat(hb, a, (size_t) s);
            st->successes = alpha - 1;
            st->attempts = alpha + beta - 2;
        }
    }
    if (json_is_object(att)) {
        json_object_foreach(att, k, v) {
            int s = so_handbook_skill_index(hb, k);
            double n, ok = 0;
            snprintf(sub, sizeof sub, "%s.skill_attempts", path);
            if (s < 0)
                return s_fail(c, "%s.%s: unknown skill id", sub, k);
            if (s_get_num(c, att, k, sub, 0, &n) < 0)
                return -1;
            if (json_is_object(succ)) {
                snprintf(sub, sizeof sub, "%s.skill_successes", path);
                if (s_get_num(c, succ, k, sub, 0, &ok) < 0)
                    return -1;
            }
            if (ok > n)
                return s_fail(c, "%s.skill_successes.%s: %g successes exceed %g attempts", path,
                              k, ok, n);
            so_stat_t *st = so_handbook_stat(hb, a, (size_t) s);
            st->successes = ok;
            st->attempts = n;
        }
    }

    /* The reference keeps one cost average per agent: spread it over the
     * skills in proportion to the attempts seen on each. */
    json_t *cs = json_object_get(p, "cost_stats");
    if (cs && !json_is_null(cs)) {
        double cost, pt, ct, lat;
        snprintf(sub, sizeof sub, "%s.cost_stats", path);
        if (!json_is_object(cs))
            return s_fail(c, "%s: expected an object", sub);
        if (s_get_num(c, cs, "avg_cost_usd", sub, 0, &cost) < 0 ||
            s_get_num(c, cs, "avg_prompt_tokens", sub, 0, &pt) < 0 ||
            s_get_num(c, cs, "avg_completion_tokens", sub, 0, &ct) < 0 ||
            s_get_num(c, cs, "avg_latency_s", sub, 0, &lat) < 0)
            return -1;
        for (size_t s = 0; s < hb->n_skills; s++) {
            so_stat_t *st = so_handbook_stat(hb, a, s);
            if (st->attempts <= 0)
                continue;
            st->cost_count = st->attempts;
            st->cost_usd = cost * st->attempts;
            st->prompt_tokens = pt * st->attempts;
            st->completion_tokens = ct * st->attempts;
            st->latency_s = lat * st->attempts;
        }
    }
    return 0;
}

static int s_load_agents(s_ctx_t *c, so_handbook_t *hb, json_t *root)
{
    json_t *agents = json_object_get(root, "agent_profiles"), *p;
    const char *k;
    char err[256], path[300];
    if (!agents || json_is_null(agents))
        return 0;
    if (!json_is_object(agents))
        return s_fail(c, "agent_profiles: expected an object keyed by agent id");
    json_object_foreach(agents, k, p) {
        const char *aid = "", *model = "", *mode = "";
        double pin = 0, pout = 0, ctx = 0, avail = 1;
        snprintf(path, sizeof path, "agent_profiles.%s", k);
        if (!json_is_object(p))
            return s_fail(c, "%s: expected an object", path);
        if (s_get_str(c, p, "agent_id", path, k, &aid) < 0 ||
            s_get_str(c, p, "model_name", path, k, &model) < 0 ||
            s_get_str(c, p, "mode", path, "", &mode) < 0 ||
            s_get_num(c, p, "input_price_per_m", path, 0, &pin) < 0 ||
            s_get_num(c, p, "output_price_per_m", path, 0, &pout) < 0 ||
            s_get_num(c, p, "context_limit", path, 0, &ctx) < 0 ||
            s_get_num(c, p, "available", path, 1, &avail) < 0)
            return -1;
        if (strcmp(aid, k) != 0)
            return s_fail(c, "%s.agent_id: '%s' differs from its key", path, aid);
        /* A mode the handbook does not list means "any mode" only when it
         * is empty; a named unknown mode is an error. */
        int a = so_handbook_add_agent(hb, k, model, mode, pin, pout, (long) ctx, err, sizeof err);
        if (a < 0)
            return s_fail(c, "%s: %s", path, err);
        hb->agents[a].available = avail != 0;
        if (s_load_agent_stats(c, hb, (size_t) a, p, path) < 0)
            return -1;
    }
    return 0;
}

static so_handbook_t *s_load_json(json_t *root, s_ctx_t *c)
{
    json_t *meta = json_object_get(root, "metadata");
    json_t *ours = json_object_get(root, "skillorchestra");
    const char *version = "v0", *parent = "";
    if (!json_is_object(root)) {
        s_fail(c, "top level: expected a JSON object");
        return NULL;
    }
    if (meta && !json_is_object(meta)) {
        s_fail(c, "metadata: expected an object");
        return NULL;
    }
    if (ours && !json_is_object(ours)) {
        s_fail(c, "skillorchestra: expected an object");
        return NULL;
    }
    if (meta && s_get_str(c, meta, "version", "metadata", "v0", &version) < 0)
        return NULL;
    if (ours && s_get_str(c, ours, "parent_version", "skillorchestra", "", &parent) < 0)
        return NULL;

    so_handbook_t *hb = so_handbook_new(version);
    free(hb->parent_version);
    hb->parent_version = so_strdup(parent ? parent : "");
    if (ours) {
        json_t *prior = json_object_get(ours, "prior");
        json_t *inf = json_object_get(ours, "inference");
        if (prior && !json_is_object(prior)) {
            s_fail(c, "skillorchestra.prior: expected {alpha, beta}");
            goto fail;
        }
        if (prior &&
            (s_get_num(c, prior, "alpha", "skillorchestra.prior", 1, &hb->prior_alpha) < 0 ||
             s_get_num(c, prior, "beta", "skillorchestra.prior", 1, &hb->prior_beta) < 0))
            goto fail;
        if (!(hb->prior_alpha > 0) || !(hb->prior_beta > 0)) {
            s_fail(c, "skillorchestra.prior: alpha and beta must be > 0");
            goto fail;
        }
        if (inf && json_is_object(inf) &&
            s_get_num(c, inf, "temperature", "skillorchestra.inference", SO_HANDBOOK_TEMPERATURE,
                      &hb->infer_temperature) < 0)
            goto fail;
        if (!(hb->infer_temperature > 0)) {
            s_fail(c, "skillorchestra.inference.temperature: must be > 0");
            goto fail;
        }
        if (s_get_terms(c, json_object_get(ours, "term_idf"), "skillorchestra.term_idf", NULL,
                        hb) < 0)
            goto fail;
    }
    if (s_load_modes(c, hb, root) < 0 || s_load_skills(c, hb, root) < 0 ||
        s_load_agents(c, hb, root) < 0)
        goto fail;
    return hb;
fail:
    so_handbook_destroy(&hb);
    return NULL;
}

so_handbook_t *so_handbook_load_string(const char *json, const char *name, char *err,
                                       size_t errlen)
{
    s_ctx_t c = { name ? name : "handbook", err, errlen };
    json_error_t je;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        s_fail(&c, "line %d column %d: invalid JSON: %s", je.line, je.column, je.text);
        return NULL;
    }
    so_handbook_t *hb = s_load_json(root, &c);
    json_decref(root);
    return hb;
}

so_handbook_t *so_handbook_load(const char *path, char *err, size_t errlen)
{
    s_ctx_t c = { path, err, errlen };
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line <= 0)
            s_fail(&c, "%s", je.text);
        else
            s_fail(&c, "line %d column %d: invalid JSON: %s", je.line, je.column, je.text);
        return NULL;
    }
    so_handbook_t *hb = s_load_json(root, &c);
    json_decref(root);
    return hb;
}

/* ------------------------------------------------------------------ */
/* JSON saving: the reference's keys plus ours                         */

static json_t *s_terms_json(const so_term_t *t, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, t[i].text, json_real(t[i].weight));
    return o;
}

static json_t *s_strv_json(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *s_agent_json(const so_handbook_t *hb, size_t a)
{
    const so_agent_t *ag = &hb->agents[a];
    json_t *p = json_object();
    json_t *comp = json_object(), *scores = json_object(), *atts = json_object();
    json_t *succs = json_object(), *stats = json_object(), *cs = json_object();
    double tot_att = 0, tot_ok = 0, sum_cost = 0, sum_pt = 0, sum_ct = 0, sum_lat = 0, n_cost = 0;

    json_object_set_new(p, "agent_id", json_string(ag->id));
    json_object_set_new(p, "mode", json_string(ag->mode >= 0 ? hb->modes[ag->mode].id : ""));
    json_object_set_new(p, "model_name", json_string(ag->model));
    json_object_set_new(p, "tools", json_array());
    for (size_t s = 0; s < hb->n_skills; s++) {
        const so_stat_t *st = so_handbook_stat(hb, a, s);
        const char *sid = hb->skills[s].id;
        if (st->attempts <= 0 && st->cost_count <= 0)
            continue;
        json_t *ab = json_object();
        /* The reference reads Beta(1,1) + counts. */
        json_object_set_new(ab, "alpha", json_real(1 + st->successes));
        json_object_set_new(ab, "beta", json_real(1 + st->attempts - st->successes));
        json_object_set_new(comp, sid, ab);
        if (st->attempts > 0)
            json_object_set_new(scores, sid, json_real(st->successes / st->attempts));
        json_object_set_new(atts, sid, json_integer((json_int_t) llround(st->attempts)));
        json_object_set_new(succs, sid, json_integer((json_int_t) llround(st->successes)));
        json_t *o = json_object();
        json_object_set_new(o, "successes", json_real(st->successes));
        json_object_set_new(o, "attempts", json_real(st->attempts));
        json_object_set_new(o, "cost_usd", json_real(st->cost_usd));
        json_object_set_new(o, "prompt_tokens", json_real(st->prompt_tokens));
        json_object_set_new(o, "completion_tokens", json_real(st->completion_tokens));
        json_object_set_new(o, "latency_s", json_real(st->latency_s));
        json_object_set_new(o, "cost_count", json_real(st->cost_count));
        json_object_set_new(stats, sid, o);
        tot_att += st->attempts;
        tot_ok += st->successes;
        sum_cost += st->cost_usd;
        sum_pt += st->prompt_tokens;
        sum_ct += st->completion_tokens;
        sum_lat += st->latency_s;
        n_cost += st->cost_count;
    }
    json_object_set_new(p, "skill_competence", comp);
    json_object_set_new(p, "skill_scores", scores);
    json_object_set_new(p, "skill_attempts", atts);
    json_object_set_new(p, "skill_successes", succs);
    json_object_set_new(p, "total_attempts", json_integer((json_int_t) llround(tot_att)));
    json_object_set_new(p, "total_successes", json_integer((json_int_t) llround(tot_ok)));
    double d = n_cost > 0 ? n_cost : 1;
    json_object_set_new(cs, "avg_prompt_tokens", json_real(sum_pt / d));
    json_object_set_new(cs, "avg_completion_tokens", json_real(sum_ct / d));
    json_object_set_new(cs, "avg_latency_s", json_real(sum_lat / d));
    json_object_set_new(cs, "avg_cost_usd", json_real(sum_cost / d));
    json_object_set_new(cs, "avg_completion_cost_usd", json_real(0));
    json_object_set_new(cs, "avg_prompt_cost_usd", json_real(0));
    json_object_set_new(cs, "total_executions", json_integer((json_int_t) llround(n_cost)));
    json_object_set_new(p, "cost_stats", cs);
    json_object_set_new(p, "routing_signals", json_array());
    json_object_set_new(p, "strengths", json_array());
    json_object_set_new(p, "weaknesses", json_array());
    /* Ours. */
    json_object_set_new(p, "input_price_per_m", json_real(ag->price_in));
    json_object_set_new(p, "output_price_per_m", json_real(ag->price_out));
    json_object_set_new(p, "context_limit", json_integer(ag->context_limit));
    json_object_set_new(p, "available", json_integer(ag->available));
    json_object_set_new(p, "skill_stats", stats);
    return p;
}

static json_t *s_to_json(const so_handbook_t *hb)
{
    json_t *root = json_object(), *meta = json_object(), *modes = json_object();
    json_t *skills = json_object(), *agents = json_object(), *index = json_object();
    json_t *ours = json_object(), *prior = json_object(), *inf = json_object();

    json_object_set_new(meta, "version", json_string(hb->version));
    json_object_set_new(meta, "num_modes", json_integer((json_int_t) hb->n_modes));
    json_object_set_new(meta, "num_skills", json_integer((json_int_t) hb->n_skills));
    json_object_set_new(meta, "num_agents", json_integer((json_int_t) hb->n_agents));
    json_object_set_new(meta, "learning_stats", json_object());
    json_object_set_new(root, "metadata", meta);

    for (size_t m = 0; m < hb->n_modes; m++) {
        json_t *o = json_object();
        json_object_set_new(o, "mode", json_string(hb->modes[m].id));
        json_object_set_new(o, "description", json_string(hb->modes[m].description));
        json_object_set_new(o, "insights", json_array());
        json_object_set_new(modes, hb->modes[m].id, o);
        json_object_set_new(index, hb->modes[m].id, json_array());
    }
    json_object_set_new(root, "modes", modes);

    for (size_t s = 0; s < hb->n_skills; s++) {
        const so_skill_t *sk = &hb->skills[s];
        json_t *o = json_object();
        json_object_set_new(o, "skill_id", json_string(sk->id));
        json_object_set_new(o, "name", json_string(sk->name));
        json_object_set_new(o, "description", json_string(sk->description));
        json_object_set_new(o, "indicators", s_strv_json(sk->indicators, sk->n_indicators));
        json_object_set_new(o, "examples", s_strv_json(sk->examples, sk->n_examples));
        json_object_set_new(o, "mode", json_string(hb->modes[sk->mode].id));
        json_object_set_new(o, "parent_skill_id",
                            sk->parent >= 0 ? json_string(hb->skills[sk->parent].id)
                                            : json_null());
        if (sk->n_terms)
            json_object_set_new(o, "terms", s_terms_json(sk->terms, sk->n_terms));
        json_object_set_new(skills, sk->id, o);
        json_array_append_new(json_object_get(index, hb->modes[sk->mode].id),
                              json_string(sk->id));
    }
    json_object_set_new(root, "skills", skills);

    for (size_t a = 0; a < hb->n_agents; a++)
        json_object_set_new(agents, hb->agents[a].id, s_agent_json(hb, a));
    json_object_set_new(root, "agent_profiles", agents);
    json_object_set_new(root, "mode_skill_index", index);

    json_object_set_new(ours, "format", json_integer(1));
    json_object_set_new(ours, "parent_version", json_string(hb->parent_version));
    json_object_set_new(prior, "alpha", json_real(hb->prior_alpha));
    json_object_set_new(prior, "beta", json_real(hb->prior_beta));
    json_object_set_new(ours, "prior", prior);
    json_object_set_new(inf, "temperature", json_real(hb->infer_temperature));
    json_object_set_new(ours, "inference", inf);
    if (hb->n_idf)
        json_object_set_new(ours, "term_idf", s_terms_json(hb->idf, hb->n_idf));
    json_object_set_new(root, "skillorchestra", ours);
    return root;
}

char *so_handbook_dumps(const so_handbook_t *hb)
{
    json_t *root = s_to_json(hb);
    char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

int so_handbook_save(const so_handbook_t *hb, const char *path, char *err, size_t errlen)
{
    /* Write to a temporary file and rename, so readers never see half a file. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    json_t *root = s_to_json(hb);
    int rc = json_dump_file(root, tmp, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc != 0 || rename(tmp, path) != 0) {
        so_err(err, errlen, "%s: cannot write handbook", path);
        remove(tmp);
        return -1;
    }
    return 0;
}
