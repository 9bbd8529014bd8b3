/*
 * Tests for so_skillprompt: the analysis prompt lists exactly the mode's
 * skills, compactly (cut examples, one line each, no control characters),
 * and its ids are what so_extract_skills maps an answer onto; the turn's
 * text is cut at a UTF-8 boundary; naming prompts and answers; cache keys.
 */
#include "so_test_util.h"
#include "llm/so_extract.h"
#include "llm/so_skillprompt.h"

/* Two modes: "solve" with skills math.alg (name, description, indicators,
 * a long example with a newline) and math.geo (bare), "code" with py. */
static so_handbook_t *s_hb(void)
{
    char err[256];
    so_handbook_t *hb = so_handbook_new("v-test");
    so_t_mode(hb, "solve");
    so_t_mode(hb, "code");
    int a = so_handbook_add_skill(hb, "math.alg", "Algebra", "Solving equations.\nFor x.",
                                  "solve", NULL, err, sizeof err);
    assert_true(a >= 0);
    so_skill_add_indicator(&hb->skills[a], "solve for");
    so_skill_add_indicator(&hb->skills[a], "equation");
    char longex[600];
    memset(longex, 'y', sizeof longex - 1);
    longex[sizeof longex - 1] = '\0';
    memcpy(longex, "Solve\nfor x: ", 13);
    so_skill_add_example(&hb->skills[a], longex);
    so_skill_add_example(&hb->skills[a], longex); /* a repeat: shown once */
    so_skill_add_example(&hb->skills[a], "2x = 4");
    so_skill_add_example(&hb->skills[a], "third example not shown");
    so_t_skill(hb, "math.geo", "solve", NULL);
    so_t_skill(hb, "py", "code", NULL);
    return hb;
}

static void test_analysis_lists_the_mode(void **state)
{
    (void) state;
    so_handbook_t *hb = s_hb();
    so_skillprompt_opts_t o;
    so_skillprompt_opts_default(&o);
    size_t idx[8], n = 99;
    char *p = so_skillprompt_analysis(hb, 0, &o, idx, &n);
    assert_int_equal(n, 2);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    SO_ASSERT_CONTAINS(p,
                       "\n- math.alg: Algebra. Solving equations. For x. Indicators: solve for, "
                       "equation. Example: \"Solve for x: yyy");
    SO_ASSERT_CONTAINS(p, "...\" Example: \"2x = 4\"\n- math.geo: math.geo.");
    assert_null(strstr(p, "third example")); /* max_examples = 2 */
    assert_null(strstr(p, "- py:"));         /* another mode */
    SO_ASSERT_CONTAINS(p, "{\"skills\": [{\"id\":");
    SO_ASSERT_CONTAINS(p, "Name 1 to 3 skills");
    /* The example was cut to example_chars: no line is longer than the
     * skill's fields allow. */
    const char *line = strstr(p, "- math.alg");
    const char *end = strchr(line, '\n');
    assert_true(end - line < 200 + 120 + 160 * 2 + 100);
    free(p);

    /* Every skill, and a mode without skills. */
    p = so_skillprompt_analysis(hb, -1, &o, idx, &n);
    assert_int_equal(n, 3);
    SO_ASSERT_CONTAINS(p, "- py:");
    free(p);
    so_handbook_t *empty = so_handbook_new("v0");
    so_t_mode(empty, "m");
    p = so_skillprompt_analysis(empty, 0, &o, idx, &n);
    assert_int_equal(n, 0);
    free(p);
    so_handbook_destroy(&empty);
    so_handbook_destroy(&hb);
}

/* What the prompt lists is what an answer is mapped onto. */
static void test_analysis_ids_round_trip(void **state)
{
    (void) state;
    so_handbook_t *hb = s_hb();
    so_skillprompt_opts_t o;
    so_skillprompt_opts_default(&o);
    size_t idx[8], n;
    char *p = so_skillprompt_analysis(hb, 0, &o, idx, &n);
    const char *ids[8];
    for (size_t k = 0; k < n; k++)
        ids[k] = hb->skills[idx[k]].id;
    const char *answer = "<think>algebra?</think>```json\n{\"skills\": [{\"id\": \"math.geo\", "
                         "\"weight\": 0.25}, {\"id\": \"math.alg\", \"weight\": 0.75},]}\n```";
    double w[8];
    char err[256];
    assert_int_equal(so_extract_skills(answer, strlen(answer), ids, n, w, NULL, err, sizeof err),
                     2);
    SO_ASSERT_NEAR(w[0], 0.75, 1e-12);
    SO_ASSERT_NEAR(w[1], 0.25, 1e-12);
    free(p);
    so_handbook_destroy(&hb);
}

static void test_turn_text_cut(void **state)
{
    (void) state;
    so_skillprompt_opts_t o;
    so_skillprompt_opts_default(&o);
    char *t = so_skillprompt_turn("short\ntext", &o);
    assert_string_equal(t, "short\ntext"); /* the turn keeps its lines */
    free(t);
    o.text_chars = 5;
    /* "abcd" + a 2-byte 'é' straddling the cut: the whole character goes. */
    t = so_skillprompt_turn("abcd\xc3\xa9xyz", &o);
    assert_string_equal(t, "abcd [...]");
    free(t);
    t = so_skillprompt_turn(NULL, &o);
    assert_string_equal(t, "");
    free(t);
}

static void test_naming_prompt(void **state)
{
    (void) state;
    so_handbook_t *hb = s_hb();
    so_skillprompt_opts_t o;
    so_skillprompt_opts_default(&o);
    char *p = so_skillprompt_naming(hb, 0, &o);
    SO_ASSERT_CONTAINS(p, "Skill id: math.alg\nCurrent name: Algebra\n");
    SO_ASSERT_CONTAINS(p, "Mode (stage of the interaction): solve\n");
    SO_ASSERT_CONTAINS(p, "Indicator terms (most distinctive first): solve for, equation\n");
    SO_ASSERT_CONTAINS(p, "\n2. \"2x = 4\"");
    SO_ASSERT_CONTAINS(p, "{\"name\": \"...\", \"description\": \"...\"}");
    free(p);
    /* No indicators or examples: said so. */
    p = so_skillprompt_naming(hb, 1, &o);
    SO_ASSERT_CONTAINS(p, "first): (none)");
    SO_ASSERT_CONTAINS(p, "Example requests: (none)");
    free(p);
    assert_null(so_skillprompt_naming(hb, 3, &o));
    assert_non_null(so_skillprompt_naming_system());
    so_handbook_destroy(&hb);
}

static void test_parse_name(void **state)
{
    (void) state;
    char *name, *desc, err[256];
    const char *ok = "Sure!\n```json\n{\"name\": \"  Linear\\nalgebra \", \"description\": "
                     "\"Requests that solve\\tequations.\"}\n```";
    assert_int_equal(so_skillprompt_parse_name(ok, strlen(ok), &name, &desc, err, sizeof err), 0);
    assert_string_equal(name, "Linear algebra");
    assert_string_equal(desc, "Requests that solve equations.");
    free(name);
    free(desc);
    /* A missing description is "". */
    const char *nodesc = "{\"name\": \"Algebra\"}";
    assert_int_equal(so_skillprompt_parse_name(nodesc, strlen(nodesc), &name, &desc, err,
                                               sizeof err),
                     0);
    assert_string_equal(desc, "");
    free(name);
    free(desc);

    struct {
        const char *text, *want;
    } bad[] = {
        { "Algebra, I think.", "no JSON object or array" },
        { "[\"Algebra\"]", "a JSON array, not an object" },
        { "{\"title\": \"Algebra\"}", "no string \"name\"" },
        { "{\"name\": \"   \"}", "\"name\" is empty" },
        { "{\"name\": \"A\", \"description\": 3}", "\"description\" is not a string" },
        { "{\"name\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaaaaaaaaaaaaaaaa\"}",
          "longer than 80 bytes" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        name = desc = (char *) "untouched";
        assert_int_equal(so_skillprompt_parse_name(bad[i].text, strlen(bad[i].text), &name, &desc,
                                                   err, sizeof err),
                         -1);
        SO_ASSERT_CONTAINS(err, bad[i].want);
        assert_null(name);
        assert_null(desc);
    }
}

static void test_key(void **state)
{
    (void) state;
    so_skillprompt_key_t a = so_skillprompt_key("v1", 0, "hello");
    so_skillprompt_key_t b = so_skillprompt_key("v1", 0, "hello");
    assert_true(a.h1 == b.h1 && a.h2 == b.h2);
    so_skillprompt_key_t c[] = {
        so_skillprompt_key("v1", 1, "hello"),  so_skillprompt_key("v2", 0, "hello"),
        so_skillprompt_key("v1", 0, "hellp"),  so_skillprompt_key("v1h", 0, "ello"),
        so_skillprompt_key("v1", -1, "hello"),
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        assert_false(c[i].h1 == a.h1 || c[i].h2 == a.h2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_analysis_lists_the_mode),
        cmocka_unit_test(test_analysis_ids_round_trip),
        cmocka_unit_test(test_turn_text_cut),
        cmocka_unit_test(test_naming_prompt),
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
