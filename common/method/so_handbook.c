/*
 * so_handbook — the handbook in memory (see so_handbook.h): building it
 * (modes, skills, agents, terms), finding things in it, its statistics
 * matrix, and copying it.  Loading and saving JSON (ours and the
 * reference's format) is so_handbook_json.c.
 */
#include "method/so_handbook.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A copy of s; NULL copies as "" (every string of a handbook is set). */
static char *s_strdup(const char *s)
{
    return so_strdup(s ? s : "");
}

so_handbook_t *so_handbook_new(const char *version)
{
    so_handbook_t *hb = so_calloc(1, sizeof *hb);
    hb->version = s_strdup(version ? version : "v0");
    hb->parent_version = s_strdup("");
    hb->prior_alpha = 1.0;
    hb->prior_beta = 1.0;
    hb->infer_temperature = SO_HANDBOOK_TEMPERATURE;
    return hb;
}

static void s_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void s_terms_free(so_term_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].text);
    free(t);
}

void so_handbook_destroy(so_handbook_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_handbook_t *hb = *self_p;
    for (size_t i = 0; i < hb->n_modes; i++) {
        free(hb->modes[i].id);
        free(hb->modes[i].description);
    }
    free(hb->modes);
    for (size_t i = 0; i < hb->n_skills; i++) {
        so_skill_t *sk = &hb->skills[i];
        free(sk->id);
        free(sk->name);
        free(sk->description);
        s_strv_free(sk->indicators, sk->n_indicators);
        s_strv_free(sk->examples, sk->n_examples);
        s_terms_free(sk->terms, sk->n_terms);
    }
    free(hb->skills);
    for (size_t i = 0; i < hb->n_agents; i++) {
        free(hb->agents[i].id);
        free(hb->agents[i].model);
    }
    free(hb->agents);
    free(hb->stats);
    s_terms_free(hb->idf, hb->n_idf);
    free(hb->version);
    free(hb->parent_version);
    free(hb);
    *self_p = NULL;
}

int so_handbook_mode_index(const so_handbook_t *hb, const char *id)
{
    for (size_t i = 0; i < hb->n_modes; i++)
        if (strcmp(hb->modes[i].id, id) == 0)
            return (int) i;
    return -1;
}

int so_handbook_skill_index(const so_handbook_t *hb, const char *id)
{
    for (size_t i = 0; i < hb->n_skills; i++)
        if (strcmp(hb->skills[i].id, id) == 0)
            return (int) i;
    return -1;
}

int so_handbook_agent_index(const so_handbook_t *hb, const char *id)
{
    for (size_t i = 0; i < hb->n_agents; i++)
        if (strcmp(hb->agents[i].id, id) == 0)
            return (int) i;
    return -1;
}

/* Re-lays the agent-major stats matrix after the skill or agent count grew. */
static void s_grow_stats(so_handbook_t *hb, size_t n_agents, size_t n_skills)
{
    so_stat_t *st = so_calloc(n_agents * n_skills + 1, sizeof *st);
    for (size_t a = 0; a < hb->n_agents; a++)
        for (size_t s = 0; s < hb->n_skills; s++)
            st[a * n_skills + s] = hb->stats[a * hb->n_skills + s];
    free(hb->stats);
    hb->stats = st;
}

int so_handbook_add_mode(so_handbook_t *hb, const char *id, const char *description, char *err,
                         size_t errlen)
{
    if (!id || !*id) {
        so_err(err, errlen, "mode id is empty");
        return -1;
    }
    if (so_handbook_mode_index(hb, id) >= 0) {
        so_err(err, errlen, "mode '%s' defined twice", id);
        return -1;
    }
    hb->modes = so_realloc(hb->modes, (hb->n_modes + 1) * sizeof *hb->modes);
    hb->modes[hb->n_modes].id = s_strdup(id);
    hb->modes[hb->n_modes].description = s_strdup(description);
    return (int) hb->n_modes++;
}

int so_handbook_add_skill(so_handbook_t *hb, const char *id, const char *name,
                          const char *description, const char *mode, const char *parent,
                          char *err, size_t errlen)
{
    if (!id || !*id) {
        so_err(err, errlen, "skill id is empty");
        return -1;
    }
    if (so_handbook_skill_index(hb, id) >= 0) {
        so_err(err, errlen, "skill '%s' defined twice", id);
        return -1;
    }
    int m = so_handbook_mode_index(hb, mode ? mode : "");
    if (m < 0) {
        so_err(err, errlen, "skill '%s': unknown mode '%s'", id, mode ? mode : "");
        return -1;
    }
    int p = -1;
    if (parent && *parent) {
        p = so_handbook_skill_index(hb, parent);
        if (p < 0) {
            so_err(err, errlen, "skill '%s': unknown parent skill '%s'", id, parent);
            return -1;
        }
    }
    s_grow_stats(hb, hb->n_agents, hb->n_skills + 1);
    hb->skills = so_realloc(hb->skills, (hb->n_skills + 1) * sizeof *hb->skills);
    so_skill_t *sk = &hb->skills[hb->n_skills];
    memset(sk, 0, sizeof *sk);
    sk->id = s_strdup(id);
    sk->name = s_strdup(name && *name ? name : id);
    sk->description = s_strdup(description);
    sk->mode = m;
    sk->parent = p;
    return (int) hb->n_skills++;
}

static int s_check_price(double v)
{
    return isfinite(v) && v >= 0;
}

int so_handbook_add_agent(so_handbook_t *hb, const char *id, const char *model, const char *mode,
                          double price_in, double price_out, long context_limit, char *err,
                          size_t errlen)
{
    if (!id || !*id) {
        so_err(err, errlen, "agent id is empty");
        return -1;
    }
    if (so_handbook_agent_index(hb, id) >= 0) {
        so_err(err, errlen, "agent '%s' defined twice", id);
        return -1;
    }
    int m = -1;
    if (mode && *mode) {
        m = so_handbook_mode_index(hb, mode);
        if (m < 0) {
            so_err(err, errlen, "agent '%s': unknown mode '%s'", id, mode);
            return -1;
        }
    }
    if (!s_check_price(price_in) || !s_check_price(price_out)) {
        so_err(err, errlen, "agent '%s': prices must be finite and >= 0", id);
        return -1;
    }
    if (context_limit < 0) {
        so_err(err, errlen, "agent '%s': context limit must be >= 0", id);
        return -1;
    }
    s_grow_stats(hb, hb->n_agents + 1, hb->n_skills);
    hb->agents = so_realloc(hb->agents, (hb->n_agents + 1) * sizeof *hb->agents);
    so_agent_t *ag = &hb->agents[hb->n_agents];
    ag->id = s_strdup(id);
    ag->model = s_strdup(model && *model ? model : id);
    ag->mode = m;
    ag->price_in = price_in;
    ag->price_out = price_out;
    ag->context_limit = context_limit;
    ag->available = 1;
    return (int) hb->n_agents++;
}

static void s_strv_push(char ***v, size_t *n, const char *s)
{
    *v = so_realloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = s_strdup(s);
}

void so_skill_add_indicator(so_skill_t *sk, const char *text)
{
    s_strv_push(&sk->indicators, &sk->n_indicators, text);
}

void so_skill_add_example(so_skill_t *sk, const char *text)
{
    s_strv_push(&sk->examples, &sk->n_examples, text);
}

static so_term_t *s_terms_copy(const so_term_t *t, size_t n)
{
    so_term_t *c = so_realloc(NULL, n * sizeof *c);
    for (size_t i = 0; i < n; i++) {
        c[i].text = s_strdup(t[i].text);
        c[i].hash = so_term_hash(c[i].text, strlen(c[i].text));
        c[i].weight = t[i].weight;
    }
    return c;
}

void so_skill_set_terms(so_skill_t *sk, const so_term_t *terms, size_t n)
{
    s_terms_free(sk->terms, sk->n_terms);
    sk->terms = s_terms_copy(terms, n);
    sk->n_terms = n;
}

void so_handbook_set_idf(so_handbook_t *hb, const so_term_t *idf, size_t n)
{
    s_terms_free(hb->idf, hb->n_idf);
    hb->idf = s_terms_copy(idf, n);
    hb->n_idf = n;
}

void so_stat_add(so_stat_t *d, const so_stat_t *x)
{
    d->successes += x->successes;
    d->attempts += x->attempts;
    d->cost_usd += x->cost_usd;
    d->prompt_tokens += x->prompt_tokens;
    d->completion_tokens += x->completion_tokens;
    d->latency_s += x->latency_s;
    d->cost_count += x->cost_count;
}

void so_handbook_observe(so_handbook_t *hb, size_t agent, size_t skill, double w, double score,
                         double cost_usd, double prompt_tokens, double completion_tokens,
                         double latency_s)
{
    if (agent >= hb->n_agents || skill >= hb->n_skills || !(w > 0))
        return;
    so_stat_t *st = so_handbook_stat(hb, agent, skill);
    if (isfinite(score)) {
        st->successes += w * score;
        st->attempts += w;
    }
    if (isfinite(cost_usd)) {
        st->cost_usd += w * cost_usd;
        st->cost_count += w;
        if (isfinite(prompt_tokens))
            st->prompt_tokens += w * prompt_tokens;
        if (isfinite(completion_tokens))
            st->completion_tokens += w * completion_tokens;
        if (isfinite(latency_s))
            st->latency_s += w * latency_s;
    }
}

so_handbook_t *so_handbook_dup(const so_handbook_t *hb)
{
    char *js = so_handbook_dumps(hb);
    char err[256];
    so_handbook_t *c = js ? so_handbook_load_string(js, "dup", err, sizeof err) : NULL;
    free(js);
    return c;
}
