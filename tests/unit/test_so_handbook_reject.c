/* Unit tests for so_handbook's JSON loader on bad input: NULL, and a
 * message "<file>: <key>: problem" naming what is wrong. */
#include "so_test_util.h"
#include "so_test_handbook.h"

#include <jansson.h>

/* ------------------------------------------------------------------ */
/* Bad input: NULL, and "<file>: <key>: problem"                       */

/* Loads js as "bad.json"; it must fail with a message containing the file
 * name and every needle. */
static void s_expect_reject(s_fix_t *f, const char *js, const char *n1, const char *n2)
{
    f->err[0] = '\0';
    so_handbook_destroy(&f->hb);
    f->hb = so_handbook_load_string(js, "bad.json", f->err, sizeof f->err);
    if (f->hb)
        fail_msg("accepted: %s", js);
    SO_ASSERT_CONTAINS(f->err, "bad.json");
    if (n1)
        SO_ASSERT_CONTAINS(f->err, n1);
    if (n2)
        SO_ASSERT_CONTAINS(f->err, n2);
}

#define SKILLS_ST "\"skills\": {\"s\": {\"mode\": \"m\"}, \"t\": {\"mode\": \"m\"}}"
#define MODES_M "\"modes\": {\"m\": {}}"

static void test_reject_malformed_json(void **state)
{
    s_fix_t *f = *state;
    s_expect_reject(f, "{\n \"modes\": {\n  \"m\": {,\n}", "line 3", "column");
    s_expect_reject(f, "", "line", NULL);
    /* Duplicate keys are an error, not a silent overwrite. */
    s_expect_reject(f, "{\"modes\": {}, \"modes\": {}}", "line", NULL);

    /* Through a file: the message names the path. */
    so_t_tmpfile(f->path, sizeof f->path, "bad");
    so_t_write_file(f->path, "{\n\n  \"skills\": [1, 2,,]\n}\n");
    f->hb = so_handbook_load(f->path, f->err, sizeof f->err);
    assert_null(f->hb);
    SO_ASSERT_CONTAINS(f->err, f->path);
    SO_ASSERT_CONTAINS(f->err, "line 3");
    SO_ASSERT_CONTAINS(f->err, "column");

    f->hb = so_handbook_load("/nonexistent/handbook.json", f->err, sizeof f->err);
    assert_null(f->hb);
    SO_ASSERT_CONTAINS(f->err, "/nonexistent/handbook.json");
}

static void test_reject_wrong_types(void **state)
{
    s_fix_t *f = *state;
    s_expect_reject(f, "[1, 2]", "top level", NULL);
    s_expect_reject(f, "\"handbook\"", NULL, NULL); /* the parser wants [ or { */
    s_expect_reject(f, "{\"metadata\": 3}", "metadata", NULL);
    s_expect_reject(f, "{\"metadata\": {\"version\": 3}}", "metadata.version", "string");
    s_expect_reject(f, "{\"skills\": [\"s\"]}", "skills", NULL);
    s_expect_reject(f, "{" SKILLS_ST ", " MODES_M ", \"agent_profiles\": [1]}", "agent_profiles",
                    NULL);
    s_expect_reject(f, "{" MODES_M ", \"skills\": {\"s\": 3}}", "skills.s", NULL);
    s_expect_reject(f,
                    "{" MODES_M
                    ", \"skills\": {\"s\": {\"mode\": \"m\", \"indicators\": \"x\"}}}",
                    "skills.s.indicators", NULL);
    s_expect_reject(f, "{" MODES_M ", \"skills\": {\"s\": {\"mode\": \"m\", \"examples\": [1]}}}",
                    "skills.s.examples", NULL);
    s_expect_reject(f, "{" MODES_M ", \"skills\": {\"s\": {\"mode\": \"m\", \"terms\": [1]}}}",
                    "skills.s.terms", NULL);
    s_expect_reject(f, "{" MODES_M ", \"skills\": {\"s\": {\"mode\": \"zz\"}}}", "skills.s",
                    "zz");
    s_expect_reject(f, "{" MODES_M ", \"skills\": {\"s\": {\"skill_id\": \"u\"}}}", "skills.s",
                    "u");
    s_expect_reject(f, "{\"skillorchestra\": {\"prior\": {\"alpha\": 0}}}",
                    "skillorchestra.prior", NULL);
    s_expect_reject(f, "{\"skillorchestra\": {\"inference\": {\"temperature\": -1}}}",
                    "temperature", NULL);
}

/*
 * CORE BUG (common/method/so_handbook.c:423, s_load_modes): json_object_size() is
 * 0 for anything that is not an object, so a "modes" value of the wrong type
 * (a list, a string, a number) is taken as "no modes" and silently replaced
 * by the implicit "default" mode; the !json_is_object check below it can
 * never fire for a non-empty wrong type.  Input {"modes": ["search"]}:
 * expected NULL with "bad.json: modes: expected an object keyed by mode id",
 * actual a handbook with one mode "default".  Skipped until fixed.
 */
static void test_reject_modes_wrong_type(void **state)
{
    s_fix_t *f = *state;
    s_expect_reject(f, "{\"modes\": [\"search\"]}", "modes", NULL);
    s_expect_reject(f, "{\"modes\": \"search\"}", "modes", NULL);
}

static void test_reject_unknown_skill_in_competence(void **state)
{
    s_fix_t *f = *state;
    s_expect_reject(
        f,
        "{" MODES_M ", " SKILLS_ST ", \"agent_profiles\": {\"gpt-x\": {\"skill_competence\":"
        " {\"s\": {\"alpha\": 2, \"beta\": 2}, \"nope.skill\": {\"alpha\": 2, \"beta\": 1}}}}}",
        "agent_profiles.gpt-x", "nope.skill");
    s_expect_reject(f,
                    "{" MODES_M ", " SKILLS_ST
                    ", \"agent_profiles\": {\"gpt-x\": {\"skill_attempts\":"
                    " {\"nope.skill\": 3}}}}",
                    "gpt-x", "nope.skill");
    s_expect_reject(f,
                    "{" MODES_M ", " SKILLS_ST
                    ", \"agent_profiles\": {\"gpt-x\": {\"skill_stats\":"
                    " {\"nope.skill\": {\"attempts\": 1}}}}}",
                    "gpt-x", "nope.skill");
    s_expect_reject(f,
                    "{" MODES_M ", " SKILLS_ST
                    ", \"agent_profiles\": {\"gpt-x\": {\"skill_competence\":"
                    " {\"s\": {\"alpha\": 0.5, \"beta\": 2}}}}}",
                    "agent_profiles.gpt-x.skill_competence.s", "alpha");
    s_expect_reject(f,
                    "{" MODES_M ", " SKILLS_ST
                    ", \"agent_profiles\": {\"gpt-x\": {\"skill_competence\":"
                    " {\"s\": [1, 2]}}}}",
                    "agent_profiles.gpt-x.skill_competence.s", NULL);
}

static void test_reject_successes_over_attempts(void **state)
{
    s_fix_t *f = *state;
    s_expect_reject(
        f,
        "{" MODES_M ", " SKILLS_ST ", \"agent_profiles\": {\"gpt-x\": {"
        " \"skill_attempts\": {\"s\": 3, \"t\": 4}, \"skill_successes\": {\"s\": 3, \"t\": 5}}}}",
        "agent_profiles.gpt-x.skill_successes.t", "exceed");
    s_expect_reject(f,
                    "{" MODES_M ", " SKILLS_ST
                    ", \"agent_profiles\": {\"gpt-x\": {\"skill_stats\":"
                    " {\"s\": {\"successes\": 2.5, \"attempts\": 2}}}}}",
                    "agent_profiles.gpt-x.skill_stats.s", "exceed");
}

static void test_reject_bad_prices(void **state)
{
    s_fix_t *f = *state;
    s_expect_reject(f,
                    "{" MODES_M ", \"agent_profiles\": {\"gpt-x\": {\"input_price_per_m\": -1}}}",
                    "agent_profiles.gpt-x.input_price_per_m", NULL);
    s_expect_reject(f,
                    "{" MODES_M
                    ", \"agent_profiles\": {\"gpt-x\": {\"output_price_per_m\": \"1.5\"}}}",
                    "agent_profiles.gpt-x.output_price_per_m", "number");
    s_expect_reject(f, "{" MODES_M ", \"agent_profiles\": {\"gpt-x\": {\"context_limit\": -10}}}",
                    "agent_profiles.gpt-x.context_limit", NULL);
    s_expect_reject(f, "{" MODES_M ", \"agent_profiles\": {\"gpt-x\": {\"mode\": \"zz\"}}}",
                    "agent_profiles.gpt-x", "zz");
    s_expect_reject(f, "{" MODES_M ", \"agent_profiles\": {\"gpt-x\": {\"agent_id\": \"y\"}}}",
                    "agent_profiles.gpt-x.agent_id", NULL);
    s_expect_reject(f,
                    "{" MODES_M ", \"agent_profiles\": {\"gpt-x\": {\"cost_stats\": {"
                    "\"avg_cost_usd\": -0.1}}}}",
                    "agent_profiles.gpt-x.cost_stats", "avg_cost_usd");
}

static void test_reject_bad_parents(void **state)
{
    s_fix_t *f = *state;
    s_expect_reject(f,
                    "{" MODES_M ", \"skills\": {\"s\": {\"mode\": \"m\"},"
                    " \"child\": {\"mode\": \"m\", \"parent_skill_id\": \"ghost\"}}}",
                    "skills.child.parent_skill_id", "ghost");
    s_expect_reject(f,
                    "{" MODES_M
                    ", \"skills\": {\"a\": {\"mode\": \"m\", \"parent_skill_id\": \"b\"},"
                    " \"b\": {\"mode\": \"m\", \"parent_skill_id\": \"a\"}}}",
                    "parent_skill_id", "cycle");
    s_expect_reject(f,
                    "{" MODES_M
                    ", \"skills\": {\"a\": {\"mode\": \"m\", \"parent_skill_id\": \"a\"}}}",
                    "parent_skill_id", NULL);
}

/* A child listed before its parent is fine. */
static void test_load_child_before_parent(void **state)
{
    s_fix_t *f = *state;
    f->hb = so_handbook_load_string(
        "{" MODES_M ", \"skills\": {\"c\": {\"mode\": \"m\", \"parent_skill_id\": \"p\"},"
        " \"p\": {\"mode\": \"m\"}}}",
        "order.json", f->err, sizeof f->err);
    if (!f->hb)
        fail_msg("%s", f->err);
    int c = so_handbook_skill_index(f->hb, "c"), p = so_handbook_skill_index(f->hb, "p");
    assert_int_equal(f->hb->skills[c].parent, p);
    assert_true(p < c); /* parents precede children in index order */
}

/*
 * CORE BUG (common/method/so_handbook.c:404-406, s_get_terms): the term texts in
 * the temporary array are borrowed jansson keys (line 408), but on a
 * non-number weight the error path calls s_terms_free(t, i), which free()s
 * those keys; glibc aborts with "free(): invalid pointer".  Input: a skill
 * with "terms": {"a": 1.0, "b": "x"} (a bad weight after a good one).
 * Expected NULL with "bad.json: skills.s.terms.b: expected a finite
 * number"; actual: the process aborts.  Fix: free(t) only.  Skipped (it
 * would kill the test binary) until fixed.
 */
static void test_reject_bad_term_weight(void **state)
{
    s_fix_t *f = *state;
    s_expect_reject(f,
                    "{" MODES_M ", \"skills\": {\"s\": {\"mode\": \"m\","
                    " \"terms\": {\"a\": 1.0, \"b\": \"x\"}}}}",
                    "skills.s.terms.b", NULL);
}

/* The first term bad: the path that does not touch borrowed keys. */
static void test_reject_first_term_weight(void **state)
{
    s_fix_t *f = *state;
    s_expect_reject(f,
                    "{" MODES_M
                    ", \"skills\": {\"s\": {\"mode\": \"m\", \"terms\": {\"a\": \"x\"}}}}",
                    "skills.s.terms.a", NULL);
    s_expect_reject(f, "{\"skillorchestra\": {\"term_idf\": {\"a\": null}}}",
                    "skillorchestra.term_idf.a", NULL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_reject_malformed_json),
        T(test_reject_wrong_types),
        T(test_reject_modes_wrong_type),
        T(test_reject_unknown_skill_in_competence),
        T(test_reject_successes_over_attempts),
        T(test_reject_bad_prices),
        T(test_reject_bad_parents),
        T(test_load_child_before_parent),
        T(test_reject_bad_term_weight),
        T(test_reject_first_term_weight),
    };
#undef T
    return cmocka_run_group_tests_name("so_handbook_reject", tests, NULL, NULL);
}
