/*
 * Tests for so_extract: JSON out of LLM output (fences, <think> blocks,
 * prose, trailing commas, arrays, cut-off output) and skill analyses mapped
 * onto known ids (unknown ids dropped and counted, weights normalised).
 */
#include "so_test_util.h"
#include "llm/so_extract.h"

static json_t *s_ok(const char *text)
{
    char err[256] = "";
    json_t *v = so_extract_json(text, strlen(text), err, sizeof err);
    if (!v)
        fail_msg("so_extract_json(\"%s\"): %s", text, err);
    return v;
}

static void s_bad(const char *text, const char *want)
{
    char err[256] = "";
    json_t *v = so_extract_json(text, text ? strlen(text) : 0, err, sizeof err);
    if (v) {
        char *d = json_dumps(v, JSON_COMPACT);
        fail_msg("so_extract_json(\"%s\") gave %s, want an error", text, d);
    }
    SO_ASSERT_CONTAINS(err, want);
}

/* The integer at key "a" of the extracted object. */
static long s_a(const char *text)
{
    json_t *v = s_ok(text);
    assert_true(json_is_object(v));
    json_t *a = json_object_get(v, "a");
    if (!json_is_integer(a))
        fail_msg("no integer \"a\" in what came out of \"%s\"", text);
    long n = (long) json_integer_value(a);
    json_decref(v);
    return n;
}

static void test_plain_and_prose(void **state)
{
    (void) state;
    assert_int_equal(s_a("{\"a\": 1}"), 1);
    assert_int_equal(s_a("  \n{\"a\": 2}\n"), 2);
    assert_int_equal(s_a("Sure! Here is the analysis: {\"a\": 3}. Hope it helps."), 3);
    /* A bracket in the prose that is not JSON is skipped. */
    assert_int_equal(s_a("Skills [see below] {\"a\": 4}"), 4);
    /* Braces inside strings do not confuse the scan. */
    json_t *v = s_ok("x {\"a\": 5, \"s\": \"} { ] [ \\\" }\"} y");
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 5);
    assert_string_equal(json_string_value(json_object_get(v, "s")), "} { ] [ \" }");
    json_decref(v);
    /* An array. */
    v = s_ok("The list: [1, 2, 3] done");
    assert_true(json_is_array(v));
    assert_int_equal(json_array_size(v), 3);
    json_decref(v);
}

static void test_fences(void **state)
{
    (void) state;
    assert_int_equal(s_a("Here:\n```json\n{\"a\": 1}\n```\nThanks"), 1);
    assert_int_equal(s_a("```\n{\"a\": 2}\n```"), 2);
    assert_int_equal(s_a("```JSON\n  {\"a\": 3}  \n```"), 3);
    /* A fence without JSON (code) is passed over for the next one. */
    assert_int_equal(s_a("```python\nprint(1)\n```\nand\n```json\n{\"a\": 4}\n```"), 4);
    /* The fenced block wins over JSON-looking prose before it. */
    assert_int_equal(s_a("Example {\"a\": 0} is wrong; answer:\n```json\n{\"a\": 5}\n```"), 5);
    /* An unclosed fence still yields its JSON. */
    assert_int_equal(s_a("```json\n{\"a\": 6}\n"), 6);
}

static void test_think_blocks(void **state)
{
    (void) state;
    assert_int_equal(s_a("<think>maybe {\"a\": 0}? no.</think>\n{\"a\": 1}"), 1);
    assert_int_equal(s_a("<THINK>draft {\"a\": 0}</THINK>```json\n{\"a\": 2}\n```"), 2);
    /* Only the closing tag (some chat templates eat the opening one). */
    assert_int_equal(s_a("hmm {\"a\": 0} ... </think> {\"a\": 3}"), 3);
    /* Several blocks: the answer follows the last one. */
    assert_int_equal(s_a("<think>x</think>{\"a\": 0}<think>y</think>{\"a\": 4}"), 4);
    assert_int_equal(s_a("<thinking>{\"a\": 0}</thinking>{\"a\": 5}"), 5);
    /* An unterminated block: what precedes it counts, the rest is dropped. */
    assert_int_equal(s_a("{\"a\": 6}<think>on second thought {\"a\": 0}"), 6);
    s_bad("<think>I will answer {\"a\": 1} once I am sure", "nothing outside its <think> block");
    s_bad("<think>done</think>   ", "nothing outside its <think> block");
}

static void test_trailing_commas(void **state)
{
    (void) state;
    json_t *v = s_ok("{\"a\": 1, \"b\": [1, 2, ], }");
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    assert_int_equal(json_array_size(json_object_get(v, "b")), 2);
    json_decref(v);
    /* A comma inside a string is text, not a trailing comma. */
    v = s_ok("{\"a\": \",}\", }");
    assert_string_equal(json_string_value(json_object_get(v, "a")), ",}");
    json_decref(v);
    v = s_ok("```json\n{\"skills\": [\n  {\"id\": \"x\", \"weight\": 1},\n]\n}\n```");
    assert_int_equal(json_array_size(json_object_get(v, "skills")), 1);
    json_decref(v);
}

static void test_errors(void **state)
{
    (void) state;
    s_bad(NULL, "empty");
    s_bad("", "empty");
    s_bad("   \n ", "nothing but blanks");
    s_bad("I cannot help with that.", "no JSON object or array (24 chars of prose)");
    s_bad("{\"a\": 1, \"b\": [1, 2", "not closed (output cut short?)");
    s_bad("{\"a\": nope}", "does not parse");
    s_bad("{'a': 1}", "JSON starting at byte 0 does not parse");
    /* Offsets count from the start of the whole output. */
    s_bad("<think>x</think>\n```json\n{\"a\" 1}\n```", "JSON starting at byte 25 does not parse");
    char *big = malloc(SO_EXTRACT_MAX_TEXT + 2);
    assert_non_null(big);
    memset(big, ' ', SO_EXTRACT_MAX_TEXT + 1);
    big[SO_EXTRACT_MAX_TEXT + 1] = '\0';
    s_bad(big, "more than the");
    free(big);
}

/* Many unbalanced openers: bounded work, a clear error. */
static void test_pathological(void **state)
{
    (void) state;
    size_t n = 100000;
    char *t = malloc(n + 1);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        t[i] = i % 2 ? '[' : '{';
    t[n] = '\0';
    s_bad(t, "not closed");
    for (size_t i = 0; i < n; i++)
        t[i] = i % 4 == 0 ? '[' : i % 4 == 1 ? 'x' : i % 4 == 2 ? ']' : ' ';
    s_bad(t, "does not parse");
    free(t);
}

/* ---- skill analyses --------------------------------------------------- */

static const char *const s_ids[] = { "math.alg", "math.geo", "code", "writing" };
#define S_N 4

static int s_skills(const char *text, double *w, so_extract_report_t *rep, char *err)
{
    return so_extract_skills(text, strlen(text), s_ids, S_N, w, rep, err, 256);
}

static void test_skills_list(void **state)
{
    (void) state;
    double w[S_N];
    so_extract_report_t rep;
    char err[256] = "";
    int n = s_skills("<think>the user asks about triangles</think>\n```json\n"
                     "{\"skills\": [{\"id\": \"math.geo\", \"weight\": 0.6},\n"
                     "             {\"id\": \"math.alg\", \"weight\": 0.2},]}\n```",
                     w, &rep, err);
    if (n < 0)
        fail_msg("%s", err);
    assert_int_equal(n, 2);
    SO_ASSERT_NEAR(w[0], 0.25, 1e-12);
    SO_ASSERT_NEAR(w[1], 0.75, 1e-12);
    SO_ASSERT_NEAR(w[2], 0, 0);
    SO_ASSERT_NEAR(w[3], 0, 0);
    assert_int_equal(rep.entries, 2);
    assert_int_equal(rep.matched, 2);
    assert_int_equal(rep.unknown, 0);
    /* Other key names, bare strings, numeric strings, loose id matching. */
    n = s_skills("[{\"skill_id\": \"CODE\", \"score\": \"3\"}, \"writing\", "
                 "{\"skill\": \" math.alg \", \"probability\": 1}]",
                 w, &rep, err);
    assert_int_equal(n, 3);
    SO_ASSERT_NEAR(w[2], 0.6, 1e-12);
    SO_ASSERT_NEAR(w[3], 0.2, 1e-12);
    SO_ASSERT_NEAR(w[0], 0.2, 1e-12);
}

static void test_skills_map(void **state)
{
    (void) state;
    double w[S_N];
    so_extract_report_t rep;
    char err[256] = "";
    assert_int_equal(s_skills("{\"code\": 30, \"writing\": 70}", w, &rep, err), 2);
    SO_ASSERT_NEAR(w[2], 0.3, 1e-12);
    SO_ASSERT_NEAR(w[3], 0.7, 1e-12);
    assert_int_equal(s_skills("Answer: {\"skills\": {\"code\": 1, \"poetry\": 5}}", w, &rep, err),
                     1);
    SO_ASSERT_NEAR(w[2], 1.0, 0);
    assert_int_equal(rep.unknown, 1);
    assert_string_equal(rep.first_unknown, "poetry");
}

static void test_skills_dropped_and_counted(void **state)
{
    (void) state;
    double w[S_N];
    so_extract_report_t rep;
    char err[256] = "";
    int n = s_skills("{\"skills\": [{\"id\": \"code\", \"weight\": 0.5},"
                     " {\"id\": \"calculus\", \"weight\": 0.3},"
                     " {\"id\": \"code\", \"weight\": 0.5},"
                     " {\"id\": \"writing\", \"weight\": -1},"
                     " {\"id\": \"math.geo\", \"weight\": \"lots\"},"
                     " {\"weight\": 0.2}, 17, {\"id\": \"math.alg\", \"weight\": 0}]}",
                     w, &rep, err);
    assert_int_equal(n, 1);
    SO_ASSERT_NEAR(w[2], 1.0, 0);
    assert_int_equal(rep.entries, 8);
    assert_int_equal(rep.matched, 1);
    assert_int_equal(rep.unknown, 1);
    assert_string_equal(rep.first_unknown, "calculus");
    assert_int_equal(rep.duplicates, 1);
    assert_int_equal(rep.invalid, 4); /* -1, "lots", no id, 17 */
}

static void test_skills_errors(void **state)
{
    (void) state;
    double w[S_N];
    so_extract_report_t rep;
    char err[256] = "";
    assert_int_equal(s_skills("{\"skills\": [{\"id\": \"poetry\", \"weight\": 1}, "
                              "{\"id\": \"dance\", \"weight\": 1}]}",
                              w, &rep, err),
                     -1);
    SO_ASSERT_CONTAINS(err, "no known skill with a positive weight");
    SO_ASSERT_CONTAINS(err, "2 unknown ids (first 'poetry')");
    for (int i = 0; i < S_N; i++)
        SO_ASSERT_NEAR(w[i], 0, 0);
    assert_int_equal(s_skills("{\"skills\": \"code\"}", w, &rep, err), -1);
    SO_ASSERT_CONTAINS(err, "\"skills\" must be an array or an object");
    assert_int_equal(s_skills("{\"skills\": []}", w, &rep, err), -1);
    SO_ASSERT_CONTAINS(err, "0 entries");
    assert_int_equal(s_skills("{\"code\": 0}", w, &rep, err), -1);
    SO_ASSERT_CONTAINS(err, "1 known with weight 0");
    assert_int_equal(s_skills("I think it is mostly code.", w, &rep, err), -1);
    SO_ASSERT_CONTAINS(err, "no JSON object or array");
    assert_int_equal(rep.entries, 0);
    assert_int_equal(s_skills("{\"code\": 1e308, \"writing\": 1e308}", w, NULL, err), -1);
    SO_ASSERT_CONTAINS(err, "overflow");
    /* No known ids at all. */
    assert_int_equal(so_extract_skills("{\"code\": 1}", 11, NULL, 0, w, &rep, err, sizeof err),
                     -1);
    assert_int_equal(rep.unknown, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_prose),
        cmocka_unit_test(test_fences),
        cmocka_unit_test(test_think_blocks),
        cmocka_unit_test(test_trailing_commas),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_pathological),
        cmocka_unit_test(test_skills_list),
        cmocka_unit_test(test_skills_map),
        cmocka_unit_test(test_skills_dropped_and_counted),
        cmocka_unit_test(test_skills_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
