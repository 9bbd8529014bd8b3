/* Unit tests for the so_trace importers: Python list literals, RouterBench
 * CSV and MT-bench.  Fixtures are in tests/data/; the real files are read
 * from ../shared/data when present.  Run from the repository root. */
#include "so_test_trace.h"

/* ---- Python list literals ---------------------------------------- */

static void s_py(const char *in, const char *want)
{
    char *got = so_pylist_text(in);
    if (!want) {
        if (got)
            fail_msg("%s: expected NULL, got \"%s\"", in, got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_pylist(void **state)
{
    s_py("['Write a python function to identify non-prime numbers.']",
         "Write a python function to identify non-prime numbers.");
    s_py("[\"It's double quoted\"]", "It's double quoted");
    s_py("['a\\nb\\tc\\\\d\\'e\\\"f']", "a\nb\tc\\d'e\"f");
    s_py("['\\x41\\xe9 \\u20ac \\U0001F600 \\ud83d\\ude00 \\101']",
         "A\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf0\x9f\x98\x80 A");
    s_py(" [ 'one' , \"two\", ] ", "one\ntwo");
    s_py("['keep \\d unknown escapes']", "keep \\d unknown escapes");
    s_py("[]", "");
    s_py("['caf\xc3\xa9 raw utf-8']", "caf\xc3\xa9 raw utf-8");
    s_py("hello", NULL);
    s_py("['unterminated", NULL);
    s_py("['a'] trailing", NULL);
    s_py("[1, 2]", NULL);
    s_py("['bad \\x4']", NULL);
    s_py("['a' 'b']", NULL);
    s_py("", NULL);
}

/* ---- RouterBench -------------------------------------------------- */

static void test_routerbench_fixture(void **state)
{
    so_episodes_t eps;
    assert_int_equal(so_episodes_read_routerbench(&eps, "tests/data/rb_small.csv", err,
                                                  sizeof err),
                     0);
    assert_int_equal(eps.n, 6);       /* 3 usable rows x 2 models */
    assert_int_equal(eps.skipped, 1); /* t.3 has an empty correctness cell */

    const so_episode_t *e = s_find(&eps, "t.1/modelA");
    assert_string_equal(e->query_id, "t.1");
    assert_string_equal(e->task, "math");
    assert_int_equal(e->n_turns, 1);
    assert_string_equal(e->turns[0].mode, "");
    assert_string_equal(e->turns[0].agent, "modelA");
    assert_string_equal(e->turns[0].prompt, "What is 2+2, exactly?");
    s_assert_num(e->turns[0].score, 1.0);
    s_assert_num(e->outcome, 1.0);
    s_assert_num(e->turns[0].cost_usd, 0.002);
    s_assert_num(e->turns[0].prompt_tokens, NAN);
    s_assert_num(e->turns[0].completion_tokens, NAN);
    s_assert_num(e->turns[0].latency_s, NAN);

    e = s_find(&eps, "t.1/org/modelB");
    s_assert_num(e->turns[0].score, 0.0);
    s_assert_num(e->turns[0].cost_usd, 0.0001);

    e = s_find(&eps, "t.2/org/modelB");
    assert_string_equal(e->turns[0].prompt,
                        "It's a \"test\"\\n\nline\ttwo \xc3\xa9 \xe2\x82\xac");
    assert_string_equal(e->task, "qa");

    e = s_find(&eps, "t.4/modelA");
    assert_string_equal(e->turns[0].prompt, "plain prompt not a list");
    s_assert_num(e->turns[0].cost_usd, 0.0005);
    s_assert_num(e->turns[0].score, 1.0);
    so_episodes_free(&eps);
    assert_null(eps.items);
    so_episodes_free(&eps); /* twice is harmless */

    assert_int_equal(so_episodes_read_routerbench(&eps, "tests/data/rb_crlf.csv", err,
                                                  sizeof err),
                     0);
    assert_int_equal(eps.n, 4);
    assert_string_equal(s_find(&eps, "a.2/m2")->turns[0].prompt, "y");
    s_assert_num(s_find(&eps, "a.2/m2")->turns[0].cost_usd, 0.2);
    so_episodes_free(&eps);
}

static void test_routerbench_malformed(void **state)
{
    so_episodes_t eps;
    assert_int_equal(so_episodes_read_routerbench(&eps, "tests/data/rb_bad_number.csv", err,
                                                  sizeof err),
                     -1);
    s_assert_contains(err, "tests/data/rb_bad_number.csv:3:");
    s_assert_contains(err, "m2|total_cost");
    s_assert_contains(err, "\"abc\"");
    assert_int_equal(eps.n, 0);
    assert_null(eps.items);

    assert_int_equal(so_episodes_read_routerbench(&eps, "tests/data/rb_bad_columns.csv", err,
                                                  sizeof err),
                     -1);
    s_assert_contains(err, "tests/data/rb_bad_columns.csv:3:");
    s_assert_contains(err, "7 fields, expected 8");
    assert_int_equal(eps.n, 0);

    assert_int_equal(so_episodes_read_routerbench(&eps, "tests/data/rb_truncated.csv", err,
                                                  sizeof err),
                     -1);
    s_assert_contains(err, "tests/data/rb_truncated.csv:3:");
    s_assert_contains(err, "unterminated");

    assert_int_equal(so_episodes_read_routerbench(&eps, "tests/data/no_such.csv", err,
                                                  sizeof err),
                     -1);
    s_assert_contains(err, "tests/data/no_such.csv");

    /* a JSONL file is not a RouterBench header */
    assert_int_equal(so_episodes_read_routerbench(&eps, "tests/data/traces_ok.jsonl", err,
                                                  sizeof err),
                     -1);
    s_assert_contains(err, "traces_ok.jsonl");
}

static void s_check_split(const char *split, size_t arc, size_t mbpp, size_t wino, size_t skipped,
                          double gpt4_acc, double gpt4_cost)
{
    char paths[512];
    snprintf(paths, sizeof paths,
             RB "arc_challenge_%s.csv," RB "mbpp_%s.csv," RB "winograde_%s.csv", split, split,
             split);
    so_dataset_t ds;
    if (so_dataset_load(&ds, paths, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(ds.n_samples, arc + mbpp + wino);
    assert_int_equal(ds.skipped, skipped);
    assert_int_equal(ds.n_agents, 11);
    size_t n_arc = 0, n_mbpp = 0, n_wino = 0;
    for (size_t i = 0; i < ds.n_samples; i++) {
        const char *t = ds.samples[i].task;
        n_arc += strcmp(t, "arc-challenge") == 0;
        n_mbpp += strcmp(t, "mbpp") == 0;
        n_wino += strcmp(t, "winogrande") == 0;
        for (size_t a = 0; a < ds.n_agents; a++)
            assert_false(isnan(ds.samples[i].score[a]));
    }
    assert_int_equal(n_arc, arc);
    assert_int_equal(n_mbpp, mbpp);
    assert_int_equal(n_wino, wino);
    int g = so_dataset_agent_index(&ds, "gpt-4-1106-preview");
    assert_true(g >= 0);
    double acc = 0, cost = 0;
    for (size_t i = 0; i < ds.n_samples; i++) {
        acc += ds.samples[i].score[g];
        cost += ds.samples[i].cost[g];
    }
    acc /= (double) ds.n_samples;
    cost /= (double) ds.n_samples;
    if (gpt4_acc > 0) {
        assert_true(fabs(acc - gpt4_acc) < 0.0005);
        assert_true(fabs(cost - gpt4_cost) < 0.0000005);
    }
    so_dataset_free(&ds);
}

static void test_routerbench_real(void **state)
{
    if (!s_have(RB "mbpp_test.csv"))
        skip();
    so_episodes_t eps;
    assert_int_equal(so_episodes_read_routerbench(&eps, RB "mbpp_test.csv", err, sizeof err), 0);
    assert_int_equal(eps.n, 128 * 11);
    assert_int_equal(eps.skipped, 0);
    so_episodes_free(&eps);
    /* reference figures: 945 test rows, gpt-4 accuracy 0.879 at $0.005003 */
    s_check_split("test", 437, 128, 380, 8, 0.879, 0.005003);
    s_check_split("train", 1019, 299, 887, 20, 0, 0);
}

/* ---- MT-bench ----------------------------------------------------- */

static void test_mtbench_fixture(void **state)
{
    so_episodes_t eps;
    if (so_episodes_read_mtbench(&eps, "tests/data/mtbench_small", err, sizeof err) != 0)
        fail_msg("%s", err);
    /* q2/B has a -1 score, q3/gpt-4 lacks turn 2, q3/B has no judgement,
     * one judgement names an unknown question */
    assert_int_equal(eps.n, 3);
    assert_int_equal(eps.skipped, 4);

    const so_episode_t *e = &eps.items[0];
    assert_string_equal(e->id, "1/gpt-4-1106-preview");
    assert_string_equal(e->query_id, "1");
    assert_string_equal(e->task, "writing");
    assert_int_equal(e->n_turns, 2);
    assert_string_equal(e->turns[0].prompt, "Write a haiku.");
    assert_string_equal(e->turns[1].prompt, "Now make it rhyme.");
    assert_string_equal(e->turns[1].agent, "gpt-4-1106-preview");
    s_assert_num(e->turns[0].score, 1.0);
    s_assert_num(e->turns[1].score, 0.8);
    s_assert_num(e->outcome, 0.9);
    /* ceil(chars/4): 14 → 4 in, "Leaves fall" 11 → 3 out;
     * turn 2 sees 14 + 11 + 18 = 43 → 11 in, 23 → 6 out */
    s_assert_num(e->turns[0].prompt_tokens, 4);
    s_assert_num(e->turns[0].completion_tokens, 3);
    s_assert_num(e->turns[1].prompt_tokens, 11);
    s_assert_num(e->turns[1].completion_tokens, 6);
    s_assert_num(e->turns[0].cost_usd, (4 * 10.0 + 3 * 30.0) / 1e6);
    s_assert_num(e->turns[1].cost_usd, (11 * 10.0 + 6 * 30.0) / 1e6);
    s_assert_num(e->turns[0].latency_s, NAN);

    e = &eps.items[1];
    assert_string_equal(e->id, "1/B");
    s_assert_num(e->turns[1].score, 0.95);
    s_assert_num(e->outcome, 0.775);
    s_assert_num(e->turns[0].cost_usd, NAN); /* no list price for "B" */
    assert_string_equal(eps.items[2].id, "2/gpt-4-1106-preview");
    so_episodes_free(&eps);

    assert_int_equal(so_episodes_read_mtbench(&eps, "tests/data", err, sizeof err), -1);
    s_assert_contains(err, "tests/data/question.jsonl");
}

static void test_mtbench_real(void **state)
{
    if (!s_have(MT "/question.jsonl"))
        skip();
    so_episodes_t eps;
    if (so_episodes_read_any(&eps, MT, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(eps.n, 160); /* 80 questions x 2 models */
    assert_int_equal(eps.skipped, 0);
    double in, out;
    assert_int_equal(so_trace_list_price("mistralai/Mixtral-8x7B-Instruct-v0.1", &in, &out), 0);
    s_assert_num(in, 0.6);
    assert_int_equal(so_trace_list_price("nobody", &in, &out), -1);
    for (size_t i = 0; i < eps.n; i++) {
        const so_episode_t *e = &eps.items[i];
        assert_int_equal(e->n_turns, 2);
        for (size_t t = 0; t < 2; t++) {
            assert_true(e->turns[t].score >= 0.1 && e->turns[t].score <= 1.0);
            assert_true(e->turns[t].cost_usd > 0);
            assert_true(e->turns[t].prompt_tokens > 0);
        }
        /* turn 2 carries turn 1's question and answer as context */
        assert_true(e->turns[1].prompt_tokens > e->turns[0].completion_tokens);
    }
    so_dataset_t ds;
    assert_int_equal(so_dataset_from_episodes(&ds, &eps, err, sizeof err), 0);
    assert_int_equal(ds.n_agents, 2);
    assert_int_equal(ds.n_samples, 160); /* 80 questions x 2 turns */
    assert_int_equal(ds.samples[0].turn, 0);
    assert_int_equal(ds.samples[1].turn, 1);
    assert_string_equal(ds.samples[0].query_id, ds.samples[1].query_id);
    so_dataset_free(&ds);
    so_episodes_free(&eps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pylist),
        cmocka_unit_test(test_routerbench_fixture),
        cmocka_unit_test(test_routerbench_malformed),
        cmocka_unit_test(test_routerbench_real),
        cmocka_unit_test(test_mtbench_fixture),
        cmocka_unit_test(test_mtbench_real),
    };
    return cmocka_run_group_tests_name("so_trace_import", tests, NULL, NULL);
}
