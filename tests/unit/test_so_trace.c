/* Unit tests for so_trace: the JSONL trace format (reading, writing, the
 * round trip, malformed input) and the dataset built from episodes.  The
 * importers are in test_so_trace_import.c.  Fixtures are in tests/data/;
 * the real files are read from ../shared/data when present.  Run from the
 * repository root. */
#include "so_test_trace.h"

/* ---- JSONL traces ------------------------------------------------- */

static void test_jsonl_read(void **state)
{
    so_episodes_t eps;
    if (so_episodes_read_jsonl(&eps, "tests/data/traces_ok.jsonl", err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(eps.n, 3);
    const so_episode_t *e = &eps.items[0];
    assert_string_equal(e->id, "e1");
    assert_string_equal(e->query_id, "q1");
    assert_string_equal(e->task, "search");
    s_assert_num(e->outcome, 1);
    assert_int_equal(e->n_turns, 2);
    assert_string_equal(e->turns[0].mode, "search");
    s_assert_num(e->turns[0].prompt_tokens, 12);
    s_assert_num(e->turns[0].completion_tokens, 30);
    s_assert_num(e->turns[0].cost_usd, 0.0001);
    s_assert_num(e->turns[0].latency_s, 0.8);
    s_assert_num(e->turns[0].score, 0.5);
    s_assert_num(e->turns[1].score, 1.0); /* "success": true */

    e = &eps.items[1];
    s_assert_num(e->outcome, NAN);
    assert_string_equal(e->task, "");
    assert_string_equal(e->turns[0].mode, "");
    s_assert_num(e->turns[0].cost_usd, NAN);
    s_assert_num(e->turns[1].score, NAN);

    e = &eps.items[2];
    assert_string_equal(e->query_id, "e3"); /* defaults to the episode id */
    assert_string_equal(e->turns[0].prompt, "unicode \xc3\xa9\xe2\x82\xac \"quoted\"\n");
    s_assert_num(e->turns[0].score, 0.0); /* "success": false */
    so_episodes_free(&eps);
}

static void s_assert_same(const so_episodes_t *a, const so_episodes_t *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const so_episode_t *x = &a->items[i], *y = &b->items[i];
        assert_string_equal(x->id, y->id);
        assert_string_equal(x->query_id, y->query_id);
        assert_string_equal(x->task, y->task);
        s_assert_num(y->outcome, x->outcome);
        assert_int_equal(x->n_turns, y->n_turns);
        for (size_t t = 0; t < x->n_turns; t++) {
            const so_turn_t *u = &x->turns[t], *v = &y->turns[t];
            assert_string_equal(u->mode, v->mode);
            assert_string_equal(u->agent, v->agent);
            assert_string_equal(u->prompt, v->prompt);
            /* exact: the writer prints the shortest round-tripping form */
            assert_true(isnan(u->prompt_tokens) ? isnan(v->prompt_tokens)
                                                : u->prompt_tokens == v->prompt_tokens);
            assert_true(isnan(u->completion_tokens)
                            ? isnan(v->completion_tokens)
                            : u->completion_tokens == v->completion_tokens);
            assert_true(isnan(u->cost_usd) ? isnan(v->cost_usd) : u->cost_usd == v->cost_usd);
            assert_true(isnan(u->latency_s) ? isnan(v->latency_s) : u->latency_s == v->latency_s);
            assert_true(isnan(u->score) ? isnan(v->score) : u->score == v->score);
        }
    }
}

static void s_roundtrip(const so_episodes_t *eps)
{
    char path[] = "/tmp/so_trace_rt_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_non_null(fp);
    assert_int_equal(so_episodes_write_jsonl(eps, fp, err, sizeof err), 0);
    fclose(fp);
    so_episodes_t back;
    if (so_episodes_read_jsonl(&back, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    s_assert_same(eps, &back);
    so_episodes_free(&back);
    unlink(path);
}

static void test_jsonl_roundtrip(void **state)
{
    so_episodes_t eps;
    assert_int_equal(so_episodes_read_jsonl(&eps, "tests/data/traces_ok.jsonl", err, sizeof err),
                     0);
    s_roundtrip(&eps);
    so_episodes_free(&eps);
    assert_int_equal(so_episodes_read_routerbench(&eps, "tests/data/rb_small.csv", err,
                                                  sizeof err),
                     0);
    s_roundtrip(&eps);
    so_episodes_free(&eps);
    assert_int_equal(so_episodes_read_mtbench(&eps, "tests/data/mtbench_small", err, sizeof err),
                     0);
    s_roundtrip(&eps);

    /* one episode to and from a string, with awkward numbers and bytes */
    so_episode_t *e = &eps.items[0];
    e->turns[0].cost_usd = 0.1 + 0.2;
    e->turns[0].latency_s = 1e-300;
    free(e->turns[0].prompt);
    e->turns[0].prompt = strdup("ctl\x01 tab\t bad\xff utf8");
    char *line = so_episode_to_json(e);
    assert_non_null(line);
    assert_null(strchr(line, '\n'));
    s_assert_contains(line, "\"prompt\":\"ctl\\u0001 tab\\t bad\\ufffd utf8\"");
    so_episode_t back;
    if (so_episode_from_json(&back, line, strlen(line), err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_true(back.turns[0].cost_usd == 0.1 + 0.2);
    assert_true(back.turns[0].latency_s == 1e-300);
    assert_string_equal(back.turns[0].prompt, "ctl\x01 tab\t bad\xef\xbf\xbd utf8");
    so_episode_clear(&back);
    free(line);
    so_episodes_free(&eps);
}

static void s_bad_json(const char *text, const char *want)
{
    so_episode_t ep;
    assert_int_equal(so_episode_from_json(&ep, text, strlen(text), err, sizeof err), -1);
    s_assert_contains(err, want);
    assert_null(ep.id);
    assert_null(ep.turns);
}

static void test_jsonl_malformed(void **state)
{
    so_episodes_t eps;
    assert_int_equal(so_episodes_read_jsonl(&eps, "tests/data/traces_bad_json.jsonl", err,
                                            sizeof err),
                     -1);
    s_assert_contains(err, "tests/data/traces_bad_json.jsonl:2: invalid JSON");
    assert_int_equal(eps.n, 0);
    assert_null(eps.items);

    assert_int_equal(so_episodes_read_jsonl(&eps, "tests/data/traces_missing_key.jsonl", err,
                                            sizeof err),
                     -1);
    s_assert_contains(err, "tests/data/traces_missing_key.jsonl:3: turns[0].agent: missing");

    assert_int_equal(so_episodes_read_jsonl(&eps, "tests/data/traces_bad_score.jsonl", err,
                                            sizeof err),
                     -1);
    s_assert_contains(err, "tests/data/traces_bad_score.jsonl:2: turns[1].score: expected a "
                           "number in [0,1], got \"abc\"");

    assert_int_equal(so_episodes_read_jsonl(&eps, "tests/data/nope.jsonl", err, sizeof err), -1);
    s_assert_contains(err, "tests/data/nope.jsonl");

    s_bad_json("{\"turns\": [{\"agent\": \"a\", \"prompt\": \"p\"}]}", "episode_id: missing");
    s_bad_json("{\"episode_id\": \"e\"}", "turns: missing");
    s_bad_json("{\"episode_id\": \"e\", \"turns\": []}", "turns: expected a non-empty array");
    s_bad_json("{\"episode_id\": \"e\", \"turns\": [{\"agent\": \"a\"}]}",
               "turns[0].prompt: missing");
    s_bad_json("{\"episode_id\": \"e\", \"turns\": [{\"agent\": \"a\", \"prompt\": \"p\", "
               "\"score\": 1.5}]}",
               "turns[0].score: expected a number in [0,1], got 1.5");
    s_bad_json("{\"episode_id\": \"e\", \"turns\": [{\"agent\": \"a\", \"prompt\": \"p\", "
               "\"cost_usd\": -1}]}",
               "turns[0].cost_usd: expected a non-negative number");
    s_bad_json("{\"episode_id\": \"e\", \"turns\": [{\"agent\": 7, \"prompt\": \"p\"}]}",
               "turns[0].agent: expected a string, got 7");
    s_bad_json("{\"episode_id\": \"e\", \"turns\": [{\"agent\": \"a\", \"prompt\": \"p\", "
               "\"success\": 1}]}",
               "turns[0].success: expected true or false");
    s_bad_json("{\"episode_id\": \"e\", \"outcome\": 2, \"turns\": [{\"agent\": \"a\", "
               "\"prompt\": \"p\"}]}",
               "outcome: expected a number in [0,1]");
    s_bad_json("[1]", "expected a JSON object");
    s_bad_json("{\"episode_id\": ", "invalid JSON");

    /* repeated episode ids name both lines */
    char path[] = "/tmp/so_trace_dup_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    fputs("{\"episode_id\": \"x\", \"turns\": [{\"agent\": \"a\", \"prompt\": \"p\"}]}\n\n"
          "{\"episode_id\": \"x\", \"turns\": [{\"agent\": \"a\", \"prompt\": \"p\"}]}\n",
          fp);
    fclose(fp);
    assert_int_equal(so_episodes_read_jsonl(&eps, path, err, sizeof err), -1);
    s_assert_contains(err, ":3: episode_id: \"x\" already used on line 1");
    unlink(path);
}

/* ---- dataset ------------------------------------------------------ */

static void test_dataset_grouping(void **state)
{
    so_episodes_t eps;
    assert_int_equal(so_episodes_read_jsonl(&eps, "tests/data/traces_ok.jsonl", err, sizeof err),
                     0);
    /* an episode whose only turn has no score: its sample is dropped */
    so_episode_t extra = { .outcome = NAN };
    extra.id = strdup("e4");
    extra.query_id = strdup("q9");
    extra.task = strdup("");
    extra.turns = calloc(1, sizeof *extra.turns);
    extra.n_turns = 1;
    extra.turns[0] = (so_turn_t){ .mode = strdup(""),
                                  .agent = strdup("third"),
                                  .prompt = strdup("?"),
                                  .prompt_tokens = NAN,
                                  .completion_tokens = NAN,
                                  .cost_usd = NAN,
                                  .latency_s = NAN,
                                  .score = NAN };
    assert_int_equal(so_episodes_push(&eps, &extra), 0);
    assert_null(extra.id);
    eps.skipped = 5;

    so_dataset_t ds;
    assert_int_equal(so_dataset_from_episodes(&ds, &eps, err, sizeof err), 0);
    assert_int_equal(ds.n_agents, 3);
    assert_string_equal(ds.agents[0], "big");
    assert_string_equal(ds.agents[1], "small");
    assert_string_equal(ds.agents[2], "third");
    assert_int_equal(so_dataset_agent_index(&ds, "small"), 1);
    assert_int_equal(so_dataset_agent_index(&ds, "absent"), -1);
    assert_int_equal(ds.skipped, 5);
    int big = 0, small = 1, third = 2;

    assert_int_equal(ds.n_samples, 3); /* (q1,0), (q1,1), (e3,0); (q9,0) dropped */
    const so_sample_t *s = &ds.samples[0];
    assert_string_equal(s->query_id, "q1");
    assert_int_equal(s->turn, 0);
    assert_string_equal(s->task, "search"); /* from the first episode seen */
    assert_string_equal(s->mode, "search");
    assert_string_equal(s->prompt, "find X");
    s_assert_num(s->score[small], 0.5);
    s_assert_num(s->score[big], 1.0);
    s_assert_num(s->score[third], NAN);
    s_assert_num(s->cost[small], 0.0001);
    s_assert_num(s->cost[big], NAN);
    s_assert_num(s->prompt_tokens[small], 12);
    s_assert_num(s->completion_tokens[small], 30);
    s_assert_num(s->latency[small], 0.8);

    s = &ds.samples[1];
    assert_string_equal(s->query_id, "q1");
    assert_int_equal(s->turn, 1);
    assert_string_equal(s->mode, "answer");
    s_assert_num(s->score[big], 1.0);
    s_assert_num(s->score[small], NAN);
    s_assert_num(s->latency[big], 2.5);

    s = &ds.samples[2];
    assert_string_equal(s->query_id, "e3");
    s_assert_num(s->score[small], 0.0);
    so_dataset_free(&ds);
    assert_null(ds.samples);
    so_dataset_free(&ds);
    so_episodes_free(&eps);

    /* empty input: no agents, no samples */
    so_episodes_t none = { 0 };
    assert_int_equal(so_dataset_from_episodes(&ds, &none, err, sizeof err), 0);
    assert_int_equal(ds.n_samples, 0);
    assert_int_equal(so_dataset_agent_index(&ds, "x"), -1);
    so_dataset_free(&ds);
}

static void test_dataset_load(void **state)
{
    so_dataset_t ds;
    if (so_dataset_load(&ds,
                        "tests/data/rb_small.csv, tests/data/rb_crlf.csv,"
                        "tests/data/traces_ok.jsonl,tests/data/mtbench_small",
                        err, sizeof err) != 0)
        fail_msg("%s", err);
    /* 3 + 2 RouterBench rows, 3 trace samples, 2 x 2 MT-bench turns */
    assert_int_equal(ds.n_samples, 3 + 2 + 3 + 4);
    assert_int_equal(ds.skipped, 1 + 4);
    /* modelA, org/modelB; m1, m2; big, small; gpt-4-1106-preview, B */
    assert_int_equal(ds.n_agents, 8);
    so_dataset_free(&ds);

    assert_int_equal(so_dataset_load(&ds, "tests/data/rb_small.csv,tests/data/rb_bad_number.csv",
                                     err, sizeof err),
                     -1);
    s_assert_contains(err, "rb_bad_number.csv:3");
    assert_int_equal(ds.n_samples, 0);
    assert_int_equal(so_dataset_load(&ds, " , ", err, sizeof err), -1);
    assert_int_equal(so_dataset_load(&ds, "tests/data/missing.jsonl", err, sizeof err), -1);
    s_assert_contains(err, "tests/data/missing.jsonl");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonl_read),      cmocka_unit_test(test_jsonl_roundtrip),
        cmocka_unit_test(test_jsonl_malformed), cmocka_unit_test(test_dataset_grouping),
        cmocka_unit_test(test_dataset_load),
    };
    return cmocka_run_group_tests_name("so_trace", tests, NULL, NULL);
}
