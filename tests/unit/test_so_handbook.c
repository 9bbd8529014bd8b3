/* Unit tests for so_handbook: building, observing, JSON save/load (ours and
 * the reference implementation's format).  Rejection of bad input:
 * test_so_handbook_reject.c. */
#include "so_test_util.h"
#include "so_test_handbook.h"
#include "base/so_text.h"

#include <jansson.h>

/* ------------------------------------------------------------------ */
/* Building                                                            */

static void test_new_defaults(void **state)
{
    s_fix_t *f = *state;
    f->hb = so_handbook_new("v3");
    assert_string_equal(f->hb->version, "v3");
    assert_string_equal(f->hb->parent_version, "");
    assert_true(f->hb->prior_alpha == 1.0 && f->hb->prior_beta == 1.0);
    assert_true(f->hb->infer_temperature > 0);
    assert_int_equal(f->hb->n_modes + f->hb->n_skills + f->hb->n_agents, 0);
    so_handbook_destroy(&f->hb);
    assert_null(f->hb);
    so_handbook_destroy(&f->hb); /* NULL-safe */
    so_handbook_destroy(NULL);
    f->hb = so_handbook_new(NULL);
    assert_non_null(f->hb->version);
}

static void test_add_modes_and_skills(void **state)
{
    s_fix_t *f = *state;
    so_handbook_t *hb = f->hb = so_handbook_new("v0");
    char *err = f->err;
    size_t el = sizeof f->err;

    assert_int_equal(so_handbook_add_mode(hb, "search", "look things up", err, el), 0);
    assert_int_equal(so_handbook_add_mode(hb, "code", NULL, err, el), 1);
    assert_int_equal(so_handbook_add_mode(hb, "search", "", err, el), -1);
    SO_ASSERT_CONTAINS(err, "search");
    SO_ASSERT_CONTAINS(err, "twice");
    assert_int_equal(so_handbook_add_mode(hb, "", "", err, el), -1);
    assert_int_equal(so_handbook_add_mode(hb, NULL, "", err, el), -1);
    assert_int_equal(hb->n_modes, 2);
    assert_string_equal(hb->modes[0].description, "look things up");
    assert_string_equal(hb->modes[1].description, "");

    assert_int_equal(so_handbook_add_skill(hb, "py", "Python", "write code", "code", NULL, err,
                                           el),
                     0);
    assert_int_equal(so_handbook_add_skill(hb, "py.fn", NULL, NULL, "code", "py", err, el), 1);
    assert_int_equal(hb->skills[1].parent, 0);
    assert_int_equal(hb->skills[0].parent, -1);
    assert_int_equal(hb->skills[1].mode, 1);
    assert_string_equal(hb->skills[1].name, "py.fn"); /* name defaults to id */
    assert_string_equal(hb->skills[0].name, "Python");

    err[0] = '\0';
    assert_int_equal(so_handbook_add_skill(hb, "py", NULL, NULL, "code", NULL, err, el), -1);
    SO_ASSERT_CONTAINS(err, "py");
    SO_ASSERT_CONTAINS(err, "twice");
    err[0] = '\0';
    assert_int_equal(so_handbook_add_skill(hb, "x", NULL, NULL, "nope", NULL, err, el), -1);
    SO_ASSERT_CONTAINS(err, "nope");
    err[0] = '\0';
    assert_int_equal(so_handbook_add_skill(hb, "x", NULL, NULL, NULL, NULL, err, el), -1);
    SO_ASSERT_CONTAINS(err, "mode");
    err[0] = '\0';
    assert_int_equal(so_handbook_add_skill(hb, "x", NULL, NULL, "code", "ghost", err, el), -1);
    SO_ASSERT_CONTAINS(err, "ghost");
    SO_ASSERT_CONTAINS(err, "parent");
    assert_int_equal(so_handbook_add_skill(hb, "", NULL, NULL, "code", NULL, err, el), -1);
    assert_int_equal(hb->n_skills, 2);

    assert_int_equal(so_handbook_mode_index(hb, "code"), 1);
    assert_int_equal(so_handbook_mode_index(hb, "zzz"), -1);
    assert_int_equal(so_handbook_skill_index(hb, "py.fn"), 1);
    assert_int_equal(so_handbook_skill_index(hb, "zzz"), -1);
    assert_int_equal(so_handbook_agent_index(hb, "zzz"), -1);
}

static void test_add_agents(void **state)
{
    s_fix_t *f = *state;
    so_handbook_t *hb = f->hb = so_handbook_new("v0");
    char *err = f->err;
    size_t el = sizeof f->err;
    so_t_mode(hb, "search");

    assert_int_equal(so_handbook_add_agent(hb, "a", "model-a", "search", 0.5, 1.5, 8000, err, el),
                     0);
    assert_int_equal(so_handbook_add_agent(hb, "b", NULL, NULL, 0, 0, 0, err, el), 1);
    assert_int_equal(hb->agents[1].mode, -1);      /* every mode */
    assert_string_equal(hb->agents[1].model, "b"); /* model defaults to id */
    assert_string_equal(hb->agents[0].model, "model-a");
    assert_int_equal(hb->agents[0].available, 1);
    assert_true(hb->agents[0].price_in == 0.5 && hb->agents[0].price_out == 1.5);
    assert_int_equal(hb->agents[0].context_limit, 8000);

    err[0] = '\0';
    assert_int_equal(so_handbook_add_agent(hb, "a", NULL, NULL, 0, 0, 0, err, el), -1);
    SO_ASSERT_CONTAINS(err, "twice");
    err[0] = '\0';
    assert_int_equal(so_handbook_add_agent(hb, "c", NULL, "nope", 0, 0, 0, err, el), -1);
    SO_ASSERT_CONTAINS(err, "nope");
    err[0] = '\0';
    assert_int_equal(so_handbook_add_agent(hb, "c", NULL, NULL, -1, 0, 0, err, el), -1);
    SO_ASSERT_CONTAINS(err, "c");
    SO_ASSERT_CONTAINS(err, "price");
    err[0] = '\0';
    assert_int_equal(so_handbook_add_agent(hb, "c", NULL, NULL, 0, NAN, 0, err, el), -1);
    SO_ASSERT_CONTAINS(err, "price");
    assert_int_equal(so_handbook_add_agent(hb, "c", NULL, NULL, INFINITY, 0, 0, err, el), -1);
    assert_int_equal(so_handbook_add_agent(hb, "c", NULL, NULL, 0, 0, -5, err, el), -1);
    SO_ASSERT_CONTAINS(err, "context");
    assert_int_equal(so_handbook_add_agent(hb, "", NULL, NULL, 0, 0, 0, err, el), -1);
    assert_int_equal(hb->n_agents, 2);
    assert_int_equal(so_handbook_agent_index(hb, "b"), 1);
}

/* The agent-major stats matrix keeps its cells while skills and agents are
 * added in any order. */
static void test_stats_survive_growth(void **state)
{
    s_fix_t *f = *state;
    so_handbook_t *hb = f->hb = so_handbook_new("v0");
    so_t_mode(hb, "m");
    int a0 = so_t_agent(hb, "a0", NULL, 0, 0, 0);
    int a1 = so_t_agent(hb, "a1", NULL, 0, 0, 0);
    int s0 = so_t_skill(hb, "s0", "m", NULL);
    so_handbook_observe(hb, a1, s0, 1, 1, 0.5, 10, 20, 1);
    so_handbook_observe(hb, a0, s0, 1, 0, NAN, NAN, NAN, NAN);
    int s1 = so_t_skill(hb, "s1", "m", "s0");
    so_handbook_observe(hb, a1, s1, 1, 0.25, NAN, NAN, NAN, NAN);
    int a2 = so_t_agent(hb, "a2", NULL, 0, 0, 0);
    int s2 = so_t_skill(hb, "s2", "m", NULL);

    const so_stat_t *st = so_handbook_stat(hb, a1, s0);
    assert_true(st->successes == 1 && st->attempts == 1 && st->cost_usd == 0.5);
    assert_true(st->prompt_tokens == 10 && st->completion_tokens == 20 && st->latency_s == 1);
    st = so_handbook_stat(hb, a0, s0);
    assert_true(st->successes == 0 && st->attempts == 1 && st->cost_count == 0);
    st = so_handbook_stat(hb, a1, s1);
    assert_true(st->successes == 0.25 && st->attempts == 1);
    for (int s = 0; s <= s2; s++) {
        st = so_handbook_stat(hb, a2, s);
        assert_true(st->attempts == 0 && st->successes == 0 && st->cost_count == 0);
    }
    st = so_handbook_stat(hb, a1, s2);
    assert_true(st->attempts == 0);
}

static void test_observe_accumulates(void **state)
{
    s_fix_t *f = *state;
    so_handbook_t *hb = f->hb = so_handbook_new("v0");
    so_t_mode(hb, "m");
    int a = so_t_agent(hb, "a", NULL, 0, 0, 0);
    int s = so_t_skill(hb, "s", "m", NULL);
    const so_stat_t *st = so_handbook_stat(hb, a, s);

    so_handbook_observe(hb, a, s, 1.0, 1.0, 0.002, 100, 50, 1.5);
    so_handbook_observe(hb, a, s, 0.5, 0.6, 0.004, 200, 80, 2.0); /* fractional credit */
    SO_ASSERT_NEAR(st->successes, 1.0 + 0.3, 1e-12);
    SO_ASSERT_NEAR(st->attempts, 1.5, 1e-12);
    SO_ASSERT_NEAR(st->cost_usd, 0.002 + 0.002, 1e-15);
    SO_ASSERT_NEAR(st->cost_count, 1.5, 1e-12);
    SO_ASSERT_NEAR(st->prompt_tokens, 200, 1e-9);
    SO_ASSERT_NEAR(st->completion_tokens, 90, 1e-9);
    SO_ASSERT_NEAR(st->latency_s, 2.5, 1e-12);

    /* NAN cost: an attempt, but nothing enters the cost sums. */
    so_handbook_observe(hb, a, s, 1.0, 0.0, NAN, 300, 300, 3);
    SO_ASSERT_NEAR(st->attempts, 2.5, 1e-12);
    SO_ASSERT_NEAR(st->successes, 1.3, 1e-12);
    SO_ASSERT_NEAR(st->cost_count, 1.5, 1e-12);
    SO_ASSERT_NEAR(st->prompt_tokens, 200, 1e-9);
    SO_ASSERT_NEAR(st->latency_s, 2.5, 1e-12);

    /* Known cost, unknown tokens: the cost counts, the tokens do not. */
    so_handbook_observe(hb, a, s, 1.0, 1.0, 0.001, NAN, NAN, NAN);
    SO_ASSERT_NEAR(st->cost_usd, 0.005, 1e-15);
    SO_ASSERT_NEAR(st->cost_count, 2.5, 1e-12);
    SO_ASSERT_NEAR(st->prompt_tokens, 200, 1e-9);

    /* NAN score: no attempt. */
    so_handbook_observe(hb, a, s, 1.0, NAN, NAN, NAN, NAN, NAN);
    SO_ASSERT_NEAR(st->attempts, 3.5, 1e-12);

    /* Ignored: zero/negative/NAN weight, out-of-range indices. */
    so_handbook_observe(hb, a, s, 0, 1, 1, 1, 1, 1);
    so_handbook_observe(hb, a, s, -1, 1, 1, 1, 1, 1);
    so_handbook_observe(hb, a, s, NAN, 1, 1, 1, 1, 1);
    so_handbook_observe(hb, 5, s, 1, 1, 1, 1, 1, 1);
    so_handbook_observe(hb, a, 5, 1, 1, 1, 1, 1, 1);
    SO_ASSERT_NEAR(st->attempts, 3.5, 1e-12);
    SO_ASSERT_NEAR(st->successes, 2.3, 1e-12);
    SO_ASSERT_NEAR(st->cost_usd, 0.005, 1e-15);
}

static void test_terms_and_idf(void **state)
{
    s_fix_t *f = *state;
    so_handbook_t *hb = f->hb = so_handbook_new("v0");
    so_t_mode(hb, "m");
    int s = so_t_skill(hb, "s", "m", NULL);
    so_term_t t[2] = { { 0, "python", 1.0 }, { 0, "write function", 0.5 } };
    so_skill_set_terms(&hb->skills[s], t, 2);
    assert_int_equal(hb->skills[s].n_terms, 2);
    assert_true(hb->skills[s].terms[0].text != t[0].text); /* copied */
    assert_true(hb->skills[s].terms[0].hash == so_term_hash("python", 6));
    assert_true(hb->skills[s].terms[1].hash == so_term_hash("write function", 14));
    so_skill_set_terms(&hb->skills[s], t + 1, 1); /* replaces */
    assert_int_equal(hb->skills[s].n_terms, 1);
    assert_string_equal(hb->skills[s].terms[0].text, "write function");
    so_skill_set_terms(&hb->skills[s], NULL, 0);
    assert_int_equal(hb->skills[s].n_terms, 0);

    so_handbook_set_idf(hb, t, 2);
    so_handbook_set_idf(hb, t, 2);
    assert_int_equal(hb->n_idf, 2);
    assert_true(hb->idf[1].weight == 0.5);
    so_skill_add_indicator(&hb->skills[s], "write a python function");
    so_skill_add_example(&hb->skills[s], "Write a function that adds two numbers.");
    assert_int_equal(hb->skills[s].n_indicators, 1);
    assert_int_equal(hb->skills[s].n_examples, 1);
}

/* ------------------------------------------------------------------ */
/* JSON round trip                                                     */

static void s_fill_handbook(so_handbook_t *hb)
{
    char err[256];
    free(hb->parent_version);
    hb->parent_version = strdup("v6");
    hb->prior_alpha = 2.0;
    hb->prior_beta = 3.5;
    hb->infer_temperature = 0.125;
    assert_int_equal(so_handbook_add_mode(hb, "search", "Find facts", err, sizeof err), 0);
    assert_int_equal(so_handbook_add_mode(hb, "code", "Run \"code\"\n", err, sizeof err), 1);
    assert_int_equal(so_handbook_add_skill(hb, "code.py", "Python", "Writes Python", "code", NULL,
                                           err, sizeof err),
                     0);
    assert_int_equal(so_handbook_add_skill(hb, "code.py.fn", "Functions", "", "code", "code.py",
                                           err, sizeof err),
                     1);
    assert_int_equal(so_handbook_add_skill(hb, "search.fact", NULL, "caf\xc3\xa9 facts", "search",
                                           NULL, err, sizeof err),
                     2);
    so_skill_add_indicator(&hb->skills[0], "write a python function");
    so_skill_add_indicator(&hb->skills[0], "def");
    so_skill_add_example(&hb->skills[1], "Write a function to add \"two\" numbers.\nReturn it.");
    so_skill_add_indicator(&hb->skills[2], "which of the following");
    so_term_t terms[3] = { { 0, "python", 0.75 },
                           { 0, "write function", 0.1 },
                           { 0, "def", 1.0 / 3.0 } };
    so_skill_set_terms(&hb->skills[0], terms, 3);
    so_term_t idf[3] = { { 0, "python", 2.5 }, { 0, "def", 3.25 }, { 0, "the", 0.01 } };
    so_handbook_set_idf(hb, idf, 3);

    assert_int_equal(so_handbook_add_agent(hb, "gpt", "gpt-4", "code", 10, 30, 128000, err,
                                           sizeof err),
                     0);
    assert_int_equal(so_handbook_add_agent(hb, "any", "mix", NULL, 0.2, 0.6, 0, err, sizeof err),
                     1);
    assert_int_equal(so_handbook_add_agent(hb, "off", NULL, "search", 0, 0, 4096, err,
                                           sizeof err),
                     2);
    hb->agents[2].available = 0;
    so_handbook_observe(hb, 0, 0, 1, 1, 0.01, 1000, 200, 2.5);
    so_handbook_observe(hb, 0, 0, 0.3, 0.5, 0.02, 500, 100, 1.25);
    so_handbook_observe(hb, 0, 1, 1, 0, NAN, NAN, NAN, NAN);
    so_handbook_observe(hb, 1, 2, 0.7, 1, 1.0 / 3.0, 123, 45, 0.1);
    so_handbook_observe(hb, 2, 2, 1, 1, NAN, NAN, NAN, NAN);
}

static void s_assert_terms_equal(const so_term_t *a, size_t na, const so_term_t *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(a[i].text, b[i].text);
        assert_true(a[i].hash == b[i].hash);
        assert_true(a[i].weight == b[i].weight);
    }
}

static void s_assert_strv_equal(char **a, size_t na, char **b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        assert_string_equal(a[i], b[i]);
}

/* Everything the handbook holds is equal (doubles exactly). */
static void s_assert_hb_equal(const so_handbook_t *a, const so_handbook_t *b)
{
    assert_string_equal(a->version, b->version);
    assert_string_equal(a->parent_version, b->parent_version);
    assert_true(a->prior_alpha == b->prior_alpha);
    assert_true(a->prior_beta == b->prior_beta);
    assert_true(a->infer_temperature == b->infer_temperature);
    s_assert_terms_equal(a->idf, a->n_idf, b->idf, b->n_idf);
    assert_int_equal(a->n_modes, b->n_modes);
    for (size_t m = 0; m < a->n_modes; m++) {
        assert_string_equal(a->modes[m].id, b->modes[m].id);
        assert_string_equal(a->modes[m].description, b->modes[m].description);
    }
    assert_int_equal(a->n_skills, b->n_skills);
    for (size_t s = 0; s < a->n_skills; s++) {
        const so_skill_t *x = &a->skills[s], *y = &b->skills[s];
        assert_string_equal(x->id, y->id);
        assert_string_equal(x->name, y->name);
        assert_string_equal(x->description, y->description);
        assert_int_equal(x->mode, y->mode);
        assert_int_equal(x->parent, y->parent);
        s_assert_strv_equal(x->indicators, x->n_indicators, y->indicators, y->n_indicators);
        s_assert_strv_equal(x->examples, x->n_examples, y->examples, y->n_examples);
        s_assert_terms_equal(x->terms, x->n_terms, y->terms, y->n_terms);
    }
    assert_int_equal(a->n_agents, b->n_agents);
    for (size_t i = 0; i < a->n_agents; i++) {
        const so_agent_t *x = &a->agents[i], *y = &b->agents[i];
        assert_string_equal(x->id, y->id);
        assert_string_equal(x->model, y->model);
        assert_int_equal(x->mode, y->mode);
        assert_true(x->price_in == y->price_in);
        assert_true(x->price_out == y->price_out);
        assert_int_equal(x->context_limit, y->context_limit);
        assert_int_equal(x->available, y->available);
        for (size_t s = 0; s < a->n_skills; s++) {
            const so_stat_t *p = so_handbook_stat(a, i, s), *q = so_handbook_stat(b, i, s);
            if (memcmp(p, q, sizeof *p) != 0)
                fail_msg("stats of %s on %s differ: %g/%g $%g n%g vs %g/%g $%g n%g", x->id,
                         a->skills[s].id, p->successes, p->attempts, p->cost_usd, p->cost_count,
                         q->successes, q->attempts, q->cost_usd, q->cost_count);
        }
    }
}

static void test_save_load_round_trip(void **state)
{
    s_fix_t *f = *state;
    f->hb = so_handbook_new("v7");
    s_fill_handbook(f->hb);
    so_t_tmpfile(f->path, sizeof f->path, "hb");
    assert_int_equal(so_handbook_save(f->hb, f->path, f->err, sizeof f->err), 0);
    f->hb2 = so_handbook_load(f->path, f->err, sizeof f->err);
    if (!f->hb2)
        fail_msg("load: %s", f->err);
    s_assert_hb_equal(f->hb, f->hb2);
    /* Spot checks, in case both sides lost the same thing. */
    assert_string_equal(f->hb2->version, "v7");
    assert_string_equal(f->hb2->parent_version, "v6");
    assert_int_equal(f->hb2->skills[1].parent, 0);
    assert_int_equal(f->hb2->agents[1].mode, -1);
    assert_int_equal(f->hb2->agents[2].available, 0);
    SO_ASSERT_NEAR(so_handbook_stat(f->hb2, 0, 0)->successes, 1.15, 1e-12);
    SO_ASSERT_NEAR(so_handbook_stat(f->hb2, 0, 0)->attempts, 1.3, 1e-12);
    SO_ASSERT_NEAR(so_handbook_stat(f->hb2, 1, 2)->cost_usd, 0.7 / 3.0, 1e-15);
}

static void test_dumps_and_dup(void **state)
{
    s_fix_t *f = *state;
    f->hb = so_handbook_new("v7");
    s_fill_handbook(f->hb);
    f->js = so_handbook_dumps(f->hb);
    assert_non_null(f->js);
    /* The reference's keys are there for the Python side. */
    SO_ASSERT_CONTAINS(f->js, "\"agent_profiles\"");
    SO_ASSERT_CONTAINS(f->js, "\"skill_competence\"");
    SO_ASSERT_CONTAINS(f->js, "\"mode_skill_index\"");
    SO_ASSERT_CONTAINS(f->js, "\"parent_skill_id\"");
    f->hb2 = so_handbook_load_string(f->js, "dump", f->err, sizeof f->err);
    if (!f->hb2)
        fail_msg("load_string: %s", f->err);
    s_assert_hb_equal(f->hb, f->hb2);
    so_handbook_destroy(&f->hb2);
    f->hb2 = so_handbook_dup(f->hb);
    assert_non_null(f->hb2);
    s_assert_hb_equal(f->hb, f->hb2);
    /* The copy is independent. */
    so_handbook_observe(f->hb2, 0, 0, 1, 1, NAN, NAN, NAN, NAN);
    SO_ASSERT_NEAR(so_handbook_stat(f->hb, 0, 0)->attempts, 1.3, 1e-12);
    SO_ASSERT_NEAR(so_handbook_stat(f->hb2, 0, 0)->attempts, 2.3, 1e-12);
}

static void test_save_load_empty(void **state)
{
    s_fix_t *f = *state;
    f->hb = so_handbook_new("empty");
    f->js = so_handbook_dumps(f->hb);
    f->hb2 = so_handbook_load_string(f->js, "empty", f->err, sizeof f->err);
    if (!f->hb2)
        fail_msg("load_string: %s", f->err);
    assert_string_equal(f->hb2->version, "empty");
    assert_int_equal(f->hb2->n_skills, 0);
    assert_int_equal(f->hb2->n_agents, 0);
    /* A handbook without modes gets one implicit mode. */
    assert_int_equal(f->hb2->n_modes, 1);
}

static void test_save_unwritable(void **state)
{
    s_fix_t *f = *state;
    f->hb = so_handbook_new("v0");
    assert_int_equal(so_handbook_save(f->hb, "/nonexistent-dir/x/hb.json", f->err, sizeof f->err),
                     -1);
    SO_ASSERT_CONTAINS(f->err, "/nonexistent-dir/x/hb.json");
}

/* ------------------------------------------------------------------ */
/* The reference implementation's files                                */

static void test_load_reference_routerbench(void **state)
{
    s_fix_t *f = *state;
    f->hb = so_handbook_load(REF_RB, f->err, sizeof f->err);
    if (!f->hb)
        fail_msg("%s", f->err);
    so_handbook_t *hb = f->hb;
    assert_int_equal(hb->n_modes, 1);
    assert_int_equal(hb->n_skills, 3);
    assert_int_equal(hb->n_agents, 11);
    assert_string_equal(hb->version, "v0");
    assert_string_equal(hb->modes[0].id, "search");

    int a = so_handbook_agent_index(hb, "gpt-3.5-turbo-1106");
    int s = so_handbook_skill_index(hb, "science_reasoning.multiple_choice");
    assert_true(a >= 0 && s >= 0);
    const so_stat_t *st = so_handbook_stat(hb, a, s);
    assert_true(st->successes == 853);
    assert_true(st->attempts == 1027);
    assert_true(st->cost_count > 0);
    SO_ASSERT_NEAR(st->cost_usd / st->cost_count, 0.00042144690465431556, 1e-15);
    for (size_t i = 0; i < hb->n_agents; i++) {
        assert_int_equal(hb->agents[i].mode, 0);
        assert_int_equal(hb->agents[i].available, 1);
    }

    /* Every agent and skill against the file itself. */
    json_error_t je;
    json_t *root = json_load_file(REF_RB, 0, &je);
    assert_non_null(root);
    json_t *profiles = json_object_get(root, "agent_profiles"), *p;
    const char *k;
    json_object_foreach(profiles, k, p) {
        int ai = so_handbook_agent_index(hb, k);
        json_t *succ = json_object_get(p, "skill_successes");
        json_t *att = json_object_get(p, "skill_attempts");
        double avg = json_number_value(
            json_object_get(json_object_get(p, "cost_stats"), "avg_cost_usd"));
        const char *sk;
        json_t *n;
        if (ai < 0) {
            json_decref(root);
            fail_msg("agent %s missing", k);
        }
        json_object_foreach(att, sk, n) {
            int si = so_handbook_skill_index(hb, sk);
            const so_stat_t *x = so_handbook_stat(hb, ai, si);
            double want_att = json_number_value(n);
            double want_ok = json_number_value(json_object_get(succ, sk));
            if (si < 0 || x->attempts != want_att || x->successes != want_ok ||
                fabs(x->cost_usd / x->cost_count - avg) > 1e-12 * (1 + avg)) {
                json_decref(root);
                fail_msg("%s on %s: %g/%g, want %g/%g", k, sk, x->successes, x->attempts, want_ok,
                         want_att);
            }
        }
    }
    json_decref(root);
}

static void test_load_reference_frames(void **state)
{
    s_fix_t *f = *state;
    f->hb = so_handbook_load(REF_FRAMES, f->err, sizeof f->err);
    if (!f->hb)
        fail_msg("%s", f->err);
    so_handbook_t *hb = f->hb;
    assert_int_equal(hb->n_modes, 3);
    assert_int_equal(hb->n_skills, 7);
    assert_int_equal(hb->n_agents, 10);
    int child = so_handbook_skill_index(hb, "answer.synthesis.entity.long_chain");
    int parent = so_handbook_skill_index(hb, "answer.synthesis.entity");
    assert_true(child >= 0 && parent >= 0);
    assert_int_equal(hb->skills[child].parent, parent);
    assert_int_equal(hb->skills[parent].parent, -1);
    int answer = so_handbook_mode_index(hb, "answer");
    assert_true(answer >= 0);
    assert_int_equal(hb->skills[child].mode, answer);
    assert_int_equal(hb->skills[so_handbook_skill_index(hb, "code.arithmetic.counting")].mode,
                     so_handbook_mode_index(hb, "code"));
    int ag = so_handbook_agent_index(hb, "search-1");
    assert_true(ag >= 0);
    assert_int_equal(hb->agents[ag].mode, so_handbook_mode_index(hb, "search"));
    assert_true(hb->skills[0].n_indicators > 0 || hb->skills[0].n_examples > 0);

    /* And it survives our own round trip. */
    f->js = so_handbook_dumps(hb);
    f->hb2 = so_handbook_load_string(f->js, "frames-dump", f->err, sizeof f->err);
    if (!f->hb2)
        fail_msg("%s", f->err);
    s_assert_hb_equal(hb, f->hb2);
}

static void test_load_competence_only(void **state)
{
    s_fix_t *f = *state;
    const char
        *js = "{\"metadata\": {\"version\": \"v2\"},"
              " \"modes\": {\"search\": {\"mode\": \"search\", \"description\": \"d\"}},"
              " \"skills\": {\"s\": {\"skill_id\": \"s\", \"mode\": \"search\"},"
              "              \"t\": {\"skill_id\": \"t\", \"mode\": \"search\"}},"
              " \"agent_profiles\": {\"x\": {\"agent_id\": \"x\", \"mode\": \"search\","
              "   \"skill_competence\": {\"s\": {\"alpha\": 8.0, \"beta\": 4.0},"
              "                          \"t\": {\"alpha\": 1.0, \"beta\": 1.0}},"
              "   \"cost_stats\": {\"avg_cost_usd\": 0.002, \"avg_prompt_tokens\": 100}}}}";
    f->hb = so_handbook_load_string(js, "comp.json", f->err, sizeof f->err);
    if (!f->hb)
        fail_msg("%s", f->err);
    const so_stat_t *st = so_handbook_stat(f->hb, 0, 0);
    assert_string_equal(f->hb->version, "v2");
    assert_true(st->successes == 7); /* alpha - 1 */
    assert_true(st->attempts == 10); /* alpha + beta - 2 */
    SO_ASSERT_NEAR(st->cost_usd, 0.02, 1e-15);
    assert_true(st->cost_count == 10);
    SO_ASSERT_NEAR(st->prompt_tokens, 1000, 1e-9);
    st = so_handbook_stat(f->hb, 0, 1);
    assert_true(st->attempts == 0 && st->cost_count == 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_new_defaults),
        T(test_add_modes_and_skills),
        T(test_add_agents),
        T(test_stats_survive_growth),
        T(test_observe_accumulates),
        T(test_terms_and_idf),
        T(test_save_load_round_trip),
        T(test_dumps_and_dup),
        T(test_save_load_empty),
        T(test_save_unwritable),
        T(test_load_reference_routerbench),
        T(test_load_reference_frames),
        T(test_load_competence_only),
    };
#undef T
    return cmocka_run_group_tests_name("so_handbook", tests, NULL, NULL);
}
