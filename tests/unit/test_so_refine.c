/*
 * test_so_refine — online refinement on a handbook's statistics: which
 * sibling skills merge, what a merged skill holds, and the limits
 * (evidence, agents out of rotation, max_merges).
 */
#include "so_test_util.h"

#include "method/so_refine.h"
#include "base/so_text.h"

/* so_refine_merge on statistics: siblings on which every agent performs
 * alike merge (stats summed, terms averaged, names joined); siblings where
 * one agent differs, skills without enough evidence, parents and skills of
 * different parents stay. */
static void test_merge_handbook_stats(void **state)
{
    (void) state;
    char err[256] = "";
    so_handbook_t *hb = so_handbook_new("base");
    so_t_mode(hb, "default");
    so_t_skill(hb, "top", "default", NULL); /* 0: a parent */
    so_t_skill(hb, "a", "default", "top");  /* 1 */
    so_t_skill(hb, "b", "default", "top");  /* 2: like a */
    so_t_skill(hb, "c", "default", "top");  /* 3: a2 differs */
    so_t_skill(hb, "d", "default", NULL);   /* 4: like a, other parent */
    so_t_skill(hb, "e", "default", "top");  /* 5: like a, too little data */
    so_t_agent(hb, "a1", "", 1, 1, 0);
    so_t_agent(hb, "a2", "", 1, 1, 0);
    for (int s = 0; s < 6; s++) {
        so_t_stat(hb, 0, s, 80, 100, 0.01);
        so_t_stat(hb, 1, s, s == 3 ? 20 : 50, 100, 0.02);
    }
    so_t_stat(hb, 0, 5, 8, 10, 0.01);
    so_term_t ta[1] = { { so_term_hash("x", 1), "x", 1.0 } };
    so_term_t tb[2] = { { so_term_hash("x", 1), "x", 0.5 }, { so_term_hash("y", 1), "y", 1.0 } };
    so_skill_set_terms(&hb->skills[1], ta, 1);
    so_skill_set_terms(&hb->skills[2], tb, 2);
    so_skill_add_indicator(&hb->skills[2], "why");

    so_refine_opts_t o;
    so_refine_opts_default(&o);
    size_t merged = 99;
    so_handbook_t *out = so_refine_merge(hb, &o, "base.r1", &merged, err, sizeof err);
    assert_non_null(out);
    assert_int_equal(merged, 1);
    assert_string_equal(out->version, "base.r1");
    assert_string_equal(out->parent_version, "base");
    assert_int_equal(out->n_skills, 5);
    assert_int_equal(so_handbook_skill_index(out, "b"), -1);
    int a = so_handbook_skill_index(out, "a");
    assert_true(a >= 0);
    assert_string_equal(out->skills[a].name, "a + b");
    assert_int_equal(out->skills[a].parent, so_handbook_skill_index(out, "top"));
    assert_int_equal(out->skills[a].n_indicators, 1);
    SO_ASSERT_NEAR(so_handbook_stat(out, 0, (size_t) a)->attempts, 200, 1e-12);
    SO_ASSERT_NEAR(so_handbook_stat(out, 1, (size_t) a)->successes, 100, 1e-12);
    SO_ASSERT_NEAR(so_handbook_stat(out, 1, (size_t) a)->cost_usd, 4, 1e-12);
    assert_int_equal(out->skills[a].n_terms, 2); /* x: (1 + 0.5) / 2, y: 1 / 2 */
    assert_string_equal(out->skills[a].terms[0].text, "x");
    SO_ASSERT_NEAR(out->skills[a].terms[0].weight, 0.75, 1e-12);
    SO_ASSERT_NEAR(out->skills[a].terms[1].weight, 0.5, 1e-12);
    so_handbook_destroy(&out);

    /* An agent taken out of rotation needs no evidence (e joins a + b);
     * max_merges bounds a call. */
    hb->agents[0].available = 0;
    out = so_refine_merge(hb, &o, "base.r2", &merged, err, sizeof err);
    assert_non_null(out);
    assert_int_equal(merged, 2);
    assert_string_equal(out->skills[so_handbook_skill_index(out, "a")].name, "a + b + e");
    so_handbook_destroy(&out);
    o.max_merges = 1;
    out = so_refine_merge(hb, &o, "base.r2", &merged, err, sizeof err);
    assert_int_equal(merged, 1);
    so_handbook_destroy(&out);
    /* A demanding evidence threshold blocks every merge. */
    hb->agents[0].available = 1;
    o.max_merges = 0;
    o.min_attempts = 1000;
    out = so_refine_merge(hb, &o, "base.r3", &merged, err, sizeof err);
    assert_non_null(out);
    assert_int_equal(merged, 0);
    assert_int_equal(out->n_skills, 6);
    SO_ASSERT_NEAR(so_handbook_stat(out, 1, 3)->successes, 20, 1e-12);
    so_handbook_destroy(&out);
    so_handbook_destroy(&hb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_handbook_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
