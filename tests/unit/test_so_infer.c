/* Unit tests for so_infer: from a turn's text to a skill-demand vector. */
#include "so_test_util.h"
#include "method/so_infer.h"

typedef struct {
    so_handbook_t *hb;
    so_infer_t *inf, *inf2;
} s_fix_t;

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->hb = so_handbook_new("test");
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    so_infer_destroy(&f->inf);
    so_infer_destroy(&f->inf2);
    so_handbook_destroy(&f->hb);
    free(f);
    return 0;
}

/* Demand sums to 1, is 0 outside the mode (mode -1: none outside), every
 * kept weight is at least the 1% cut-off; returns the argmax. */
static int s_check_demand(const so_handbook_t *hb, const double *d, int mode)
{
    double sum = 0;
    int best = -1;
    for (size_t s = 0; s < hb->n_skills; s++) {
        if (!(d[s] >= 0 && d[s] <= 1))
            fail_msg("demand[%s] = %g", hb->skills[s].id, d[s]);
        if (mode >= 0 && hb->skills[s].mode != mode && d[s] != 0)
            fail_msg("demand[%s] = %g outside mode %d", hb->skills[s].id, d[s], mode);
        if (d[s] > 0 && d[s] < 0.01 - 1e-12)
            fail_msg("demand[%s] = %g below the cut-off", hb->skills[s].id, d[s]);
        sum += d[s];
        if (best < 0 || d[s] > d[best])
            best = (int) s;
    }
    SO_ASSERT_NEAR(sum, 1.0, 1e-12);
    return best;
}

/* search: code / science / pronoun skills by indicator; answer: one skill
 * whose indicator is the code skill's phrase. */
static void s_indicator_handbook(so_handbook_t *hb)
{
    so_t_mode(hb, "search");
    so_t_mode(hb, "answer");
    int code = so_t_skill(hb, "programming.python_function", "search", NULL);
    int sci = so_t_skill(hb, "science.multiple_choice", "search", NULL);
    int pro = so_t_skill(hb, "commonsense.pronoun", "search", NULL);
    int ans = so_t_skill(hb, "answer.code", "answer", NULL);
    so_skill_add_indicator(&hb->skills[code], "write a python function");
    so_skill_add_indicator(&hb->skills[sci], "which of the following");
    so_skill_add_indicator(&hb->skills[pro], "what does the pronoun refer to");
    so_skill_add_indicator(&hb->skills[pro], "pronoun");
    so_skill_add_indicator(&hb->skills[ans], "write a python function");
}

static void test_indicators(void **state)
{
    s_fix_t *f = *state;
    s_indicator_handbook(f->hb);
    f->inf = so_infer_new(f->hb);
    double d[4];

    assert_int_equal(so_infer(f->inf, "Write a Python function to reverse a list.", 0, d),
                     SO_DEMAND_EMBEDDED);
    assert_int_equal(s_check_demand(f->hb, d, 0), 0);
    assert_true(d[0] > 0.5);
    assert_true(d[3] == 0); /* the answer skill: other mode */

    assert_int_equal(so_infer(f->inf,
                              "Which of the following is a renewable energy source? "
                              "(A) coal (B) wind (C) oil (D) gas",
                              0, d),
                     SO_DEMAND_EMBEDDED);
    assert_int_equal(s_check_demand(f->hb, d, 0), 1);
    assert_true(d[1] > 0.5);

    assert_int_equal(so_infer(f->inf,
                              "The trophy didn't fit in the suitcase because it was "
                              "too big. What does the pronoun 'it' refer to?",
                              0, d),
                     SO_DEMAND_EMBEDDED);
    assert_int_equal(s_check_demand(f->hb, d, 0), 2);

    /* Every mode: both skills with the phrase share the weight. */
    assert_int_equal(so_infer(f->inf, "write a python function", -1, d), SO_DEMAND_EMBEDDED);
    s_check_demand(f->hb, d, -1);
    SO_ASSERT_NEAR(d[0], d[3], 1e-12);
    assert_true(d[0] > 0.4);
    /* Only the answer mode. */
    assert_int_equal(so_infer(f->inf, "write a python function", 1, d), SO_DEMAND_EMBEDDED);
    assert_true(d[3] == 1.0 && d[0] == 0 && d[1] == 0 && d[2] == 0);
}

static void test_no_match_uniform_fallback(void **state)
{
    s_fix_t *f = *state;
    s_indicator_handbook(f->hb);
    f->inf = so_infer_new(f->hb);
    double d[4];
    const char *texts[] = { "Bonjour tout le monde", "", "?!... ---", NULL,
                            "python write" }; /* words, but no indicator bigram */
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        assert_int_equal(so_infer(f->inf, texts[i], 0, d), SO_DEMAND_UNIFORM_FALLBACK);
        s_check_demand(f->hb, d, 0);
        for (int s = 0; s < 3; s++)
            SO_ASSERT_NEAR(d[s], 1.0 / 3.0, 1e-12);
        assert_true(d[3] == 0);
        assert_int_equal(so_infer(f->inf, texts[i], -1, d), SO_DEMAND_UNIFORM_FALLBACK);
        for (int s = 0; s < 4; s++)
            SO_ASSERT_NEAR(d[s], 0.25, 1e-12);
    }
}

/* code: {python 1.0, def 0.5}; science: {which 1.0, following 0.8}. */
static void s_terms_handbook(so_handbook_t *hb, int with_idf)
{
    so_t_mode(hb, "m");
    int code = so_t_skill(hb, "code", "m", NULL);
    int sci = so_t_skill(hb, "science", "m", NULL);
    so_term_t ct[2] = { { 0, "python", 1.0 }, { 0, "def", 0.5 } };
    so_term_t st[2] = { { 0, "which", 1.0 }, { 0, "following", 0.8 } };
    so_skill_set_terms(&hb->skills[code], ct, 2);
    so_skill_set_terms(&hb->skills[sci], st, 2);
    if (with_idf) {
        so_term_t idf[4] = {
            { 0, "python", 3.0 }, { 0, "def", 1.5 }, { 0, "which", 0.1 }, { 0, "following", 2.0 }
        };
        so_handbook_set_idf(hb, idf, 4);
    }
}

static void test_learned_terms_with_idf(void **state)
{
    s_fix_t *f = *state;
    s_terms_handbook(f->hb, 1);
    f->inf = so_infer_new(f->hb);
    double sc[2], d[2];

    /* Unigrams python×2 (idf 3), def (1.5); the bigrams "python python"
     * and "python def" are in neither the idf table nor any skill, so with
     * an idf table they do not count: norm = sqrt(6² + 1.5²),
     * code = (6·1 + 1.5·0.5) / norm. */
    so_infer_scores(f->inf, "Python python, def!", sc);
    SO_ASSERT_NEAR(sc[0], 6.75 / sqrt(38.25), 1e-12);
    SO_ASSERT_NEAR(sc[1], 0.0, 1e-15);
    /* Unknown words do not dilute the score. */
    so_infer_scores(f->inf, "python zzz qqq", sc);
    SO_ASSERT_NEAR(sc[0], 1.0, 1e-12);

    /* A common word (low idf) weighs little against a rare one. */
    so_infer_scores(f->inf, "which python", sc);
    SO_ASSERT_NEAR(sc[0], 3.0 / sqrt(0.01 + 9), 1e-12);
    SO_ASSERT_NEAR(sc[1], 0.1 / sqrt(0.01 + 9), 1e-12);
    assert_int_equal(so_infer(f->inf, "which python", 0, d), SO_DEMAND_EMBEDDED);
    assert_int_equal(s_check_demand(f->hb, d, 0), 0);
    assert_true(d[0] > 0.9);

    /* A learned term missing from the idf table gets the largest idf (3). */
    so_term_t ct[3] = { { 0, "python", 1.0 }, { 0, "def", 0.5 }, { 0, "lambda", 0.25 } };
    so_skill_set_terms(&f->hb->skills[0], ct, 3);
    so_infer_destroy(&f->inf);
    f->inf = so_infer_new(f->hb);
    so_infer_scores(f->inf, "lambda lambda", sc);
    SO_ASSERT_NEAR(sc[0], 0.25, 1e-12); /* (2·3·0.25) / (2·3) */
    so_infer_scores(f->inf, "lambda which", sc);
    SO_ASSERT_NEAR(sc[0], 3 * 0.25 / sqrt(9 + 0.01), 1e-12);
    SO_ASSERT_NEAR(sc[1], 0.1 / sqrt(9 + 0.01), 1e-12);
}

static void test_learned_terms_without_idf(void **state)
{
    s_fix_t *f = *state;
    s_terms_handbook(f->hb, 0);
    f->inf = so_infer_new(f->hb);
    double sc[2], d[2];
    /* Counts only: which, python, "which python" → norm sqrt(3). */
    so_infer_scores(f->inf, "which python", sc);
    SO_ASSERT_NEAR(sc[0], 1.0 / sqrt(3.0), 1e-12);
    SO_ASSERT_NEAR(sc[1], 1.0 / sqrt(3.0), 1e-12);
    so_infer(f->inf, "which python", 0, d);
    SO_ASSERT_NEAR(d[0], 0.5, 1e-12);
    SO_ASSERT_NEAR(d[1], 0.5, 1e-12);
    so_infer(f->inf, "which of the following", 0, d);
    assert_int_equal(s_check_demand(f->hb, d, 0), 1);
}

/* Skills described only by examples (short ones; see the bug below). */
static void test_examples_only(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    int lists = so_t_skill(f->hb, "lists", "m", NULL);
    int geo = so_t_skill(f->hb, "geo", "m", NULL);
    so_skill_add_example(&f->hb->skills[lists], "sort list");
    so_skill_add_example(&f->hb->skills[lists], "reverse list");
    so_skill_add_example(&f->hb->skills[geo], "capital city");
    f->inf = so_infer_new(f->hb);
    double d[2];
    assert_int_equal(so_infer(f->inf, "Please sort this list", 0, d), SO_DEMAND_EMBEDDED);
    assert_int_equal(s_check_demand(f->hb, d, 0), lists);
    assert_true(d[lists] > 0.9);
    assert_int_equal(so_infer(f->inf, "What is the capital city of Peru?", 0, d),
                     SO_DEMAND_EMBEDDED);
    assert_int_equal(s_check_demand(f->hb, d, 0), geo);
    /* Learned terms win over examples: a skill with terms ignores its examples. */
    so_term_t t[1] = { { 0, "peru", 1.0 } };
    so_skill_set_terms(&f->hb->skills[lists], t, 1);
    so_infer_destroy(&f->inf);
    f->inf = so_infer_new(f->hb);
    so_infer(f->inf, "sort list peru", 0, d);
    assert_int_equal(s_check_demand(f->hb, d, 0), lists);
    assert_int_equal(so_infer(f->inf, "reverse", 0, d), SO_DEMAND_UNIFORM_FALLBACK);
}

/*
 * CORE BUG (common/method/so_infer.c:132, so_infer_new): the term hash table is
 * sized from tr.n + n_idf before the example terms are pushed (lines
 * 150-170), so a handbook whose skills are described by examples alone gets
 * a 16-slot table; inserting an example's 17th distinct term (line 179,
 * s_find) then loops forever on a full table, and with 9..16 distinct terms
 * the load factor passes 0.5.  Input: one skill, no terms or indicators,
 * one example "Which of the following is a renewable energy source for
 * homes" (11 unigrams + 10 bigrams).  Expected: an index is built and the
 * text matches the skill; actual: so_infer_new never returns.  Fix: size
 * the table after the example triples are pushed (or grow it).  Skipped
 * (it would hang the binary) until fixed.
 */
static void test_examples_only_realistic(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "m");
    int s = so_t_skill(f->hb, "science", "m", NULL);
    so_t_skill(f->hb, "other", "m", NULL);
    so_skill_add_example(&f->hb->skills[s],
                         "Which of the following is a renewable energy source for homes");
    f->inf = so_infer_new(f->hb);
    double d[2];
    assert_int_equal(so_infer(f->inf, "Which of the following is renewable?", 0, d),
                     SO_DEMAND_EMBEDDED);
    assert_int_equal(s_check_demand(f->hb, d, 0), s);
}

static void test_deterministic(void **state)
{
    s_fix_t *f = *state;
    s_indicator_handbook(f->hb);
    f->inf = so_infer_new(f->hb);
    f->inf2 = so_infer_new(f->hb);
    const char *text = "Write a python function: which of the following pronouns...";
    double a[4], b[4], c[4];
    so_infer(f->inf, text, -1, a);
    so_infer(f->inf, text, -1, b);
    so_infer(f->inf2, text, -1, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(a, c, sizeof a);
    so_infer_scores(f->inf, text, a);
    so_infer_scores(f->inf2, text, b);
    assert_memory_equal(a, b, sizeof a);
}

/* The index owns what it needs: the handbook may go first. */
static void test_outlives_handbook(void **state)
{
    s_fix_t *f = *state;
    s_terms_handbook(f->hb, 1);
    f->inf = so_infer_new(f->hb);
    so_handbook_destroy(&f->hb);
    double sc[2];
    so_infer_scores(f->inf, "Python python, def!", sc);
    SO_ASSERT_NEAR(sc[0], 6.75 / sqrt(38.25), 1e-12);
}

static void test_long_text(void **state)
{
    s_fix_t *f = *state;
    s_indicator_handbook(f->hb);
    f->inf = so_infer_new(f->hb);
    size_t n = 40000;
    char *text = malloc(n + 64);
    assert_non_null(text);
    size_t len = 0;
    while (len < n)
        len += (size_t) sprintf(text + len, "filler%zu ", len % 997);
    strcpy(text + len, "which of the following"); /* past the term cap */
    double d[4];
    so_demand_source_t src = so_infer(f->inf, text, 0, d);
    free(text);
    assert_true(src == SO_DEMAND_EMBEDDED || src == SO_DEMAND_UNIFORM_FALLBACK);
    s_check_demand(f->hb, d, 0);
}

static void test_temperature(void **state)
{
    s_fix_t *f = *state;
    s_terms_handbook(f->hb, 1);
    double d[2];
    f->hb->infer_temperature = 100;
    f->inf = so_infer_new(f->hb);
    so_infer(f->inf, "which python", 0, d);
    s_check_demand(f->hb, d, 0);
    assert_true(d[0] > d[1]);
    assert_true(d[0] - d[1] < 0.01); /* nearly flat */
    so_infer_destroy(&f->inf);
    f->hb->infer_temperature = 0.001;
    f->inf = so_infer_new(f->hb);
    so_infer(f->inf, "which python", 0, d);
    assert_true(d[0] == 1.0 && d[1] == 0.0); /* the tail is cut */

    /* so_infer_set_temperature overrides the handbook's; <= 0 is ignored. */
    so_infer_set_temperature(f->inf, 100);
    so_infer(f->inf, "which python", 0, d);
    assert_true(d[0] > d[1] && d[0] - d[1] < 0.01);
    so_infer_set_temperature(f->inf, 0);
    so_infer_set_temperature(f->inf, -1);
    so_infer_set_temperature(f->inf, NAN);
    so_infer(f->inf, "which python", 0, d);
    assert_true(d[0] > d[1] && d[0] - d[1] < 0.01);
    so_infer_set_temperature(f->inf, 0.001);
    so_infer(f->inf, "which python", 0, d);
    assert_true(d[0] == 1.0 && d[1] == 0.0);
}

/*
 * CORE BUG (common/method/so_infer.c:267-268, so_infer): when the requested mode
 * has no skills (a mode with none yet, or an index past n_modes), the
 * early return leaves every demand[s] at the NAN used as the "other mode"
 * marker, although so_infer.h promises 0 outside the mode.  Input: modes
 * {a, empty}, one skill in a; so_infer(inf, "hello", 1, d).  Expected
 * SO_DEMAND_UNIFORM_FALLBACK with d[0] == 0; actual d[0] is NAN
 * (so_route happens to skip NAN weights, other consumers may not).
 * Skipped until fixed.
 */
static void test_mode_without_skills(void **state)
{
    s_fix_t *f = *state;
    so_t_mode(f->hb, "a");
    int empty = so_t_mode(f->hb, "empty");
    so_t_skill(f->hb, "s", "a", NULL);
    f->inf = so_infer_new(f->hb);
    double d[1];
    assert_int_equal(so_infer(f->inf, "hello", empty, d), SO_DEMAND_UNIFORM_FALLBACK);
    assert_true(d[0] == 0);
    assert_int_equal(so_infer(f->inf, "hello", 7, d), SO_DEMAND_UNIFORM_FALLBACK);
    assert_true(d[0] == 0);
}

/* A handbook without skills: nothing to write, nothing to crash on. */
static void test_no_skills(void **state)
{
    s_fix_t *f = *state;
    f->inf = so_infer_new(f->hb);
    double d[1] = { 42 };
    assert_int_equal(so_infer(f->inf, "anything", -1, d), SO_DEMAND_UNIFORM_FALLBACK);
    assert_true(d[0] == 42);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_indicators),
        T(test_no_match_uniform_fallback),
        T(test_learned_terms_with_idf),
        T(test_learned_terms_without_idf),
        T(test_examples_only),
        T(test_examples_only_realistic),
        T(test_deterministic),
        T(test_outlives_handbook),
        T(test_long_text),
        T(test_temperature),
        T(test_mode_without_skills),
        T(test_no_skills),
    };
#undef T
    return cmocka_run_group_tests_name("so_infer", tests, NULL, NULL);
}
