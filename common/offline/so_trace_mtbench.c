/*
 * so_trace_mtbench — MT-bench into episodes: question.jsonl (the questions
 * and their turns) and judgements.jsonl (a judge's 1-10 score per model,
 * question and turn) from one directory, one episode per (question, model)
 * that has a valid score for every turn.  Owns the recovery of the models'
 * answers from the judge's prompts (for completion token estimates) and the
 * list prices that cost the two models.
 */
#include "offline/so_trace.h"
#include "offline/so_trace_int.h"
#include "base/so_alloc.h"
#include "base/so_buf.h"
#include "base/so_err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int so_trace_list_price(const char *model, double *usd_in_per_mtok, double *usd_out_per_mtok)
{
    static const struct {
        const char *model;
        double in, out;
    } prices[] = {
        { "gpt-4-1106-preview", 10.0, 30.0 },
        { "mistralai/Mixtral-8x7B-Instruct-v0.1", 0.6, 0.6 },
    };
    for (size_t i = 0; i < sizeof prices / sizeof prices[0]; i++) {
        if (strcmp(prices[i].model, model) == 0) {
            *usd_in_per_mtok = prices[i].in;
            *usd_out_per_mtok = prices[i].out;
            return 0;
        }
    }
    return -1;
}

#define S_MT_MAX_TURNS 64

typedef struct {
    char *qid;
    char *category;
    char **turns;
    size_t n_turns;
} s_mt_question_t;

typedef struct {
    size_t q, m, n_turns;
    double *score; /* [n_turns] judge score / 10 */
    int *state;    /* [n_turns] 0 missing, 1 valid, 2 invalid score */
    char **answer; /* [n_turns] recovered answers, NULL if unknown */
} s_mt_pair_t;

typedef struct {
    s_mt_question_t *qs;
    size_t n_qs, cap_qs;
    so_map_t *qmap; /* qid → index into qs */
    char **models;  /* in order of first appearance */
    size_t n_models, cap_models;
    so_map_t *mmap; /* model → index into models */
    s_mt_pair_t *pairs;
    size_t n_pairs, cap_pairs;
    so_map_t *pmap; /* "q\x1fm" → index into pairs */
    size_t skipped;
} s_mt_t;

static void s_mt_free(s_mt_t *mt)
{
    for (size_t i = 0; i < mt->n_qs; i++) {
        free(mt->qs[i].qid);
        free(mt->qs[i].category);
        for (size_t t = 0; t < mt->qs[i].n_turns; t++)
            free(mt->qs[i].turns[t]);
        free(mt->qs[i].turns);
    }
    free(mt->qs);
    for (size_t i = 0; i < mt->n_models; i++)
        free(mt->models[i]);
    free(mt->models);
    for (size_t i = 0; i < mt->n_pairs; i++) {
        s_mt_pair_t *p = &mt->pairs[i];
        for (size_t t = 0; t < p->n_turns; t++)
            free(p->answer[t]);
        free(p->answer);
        free(p->score);
        free(p->state);
    }
    free(mt->pairs);
    so_map_destroy(&mt->qmap);
    so_map_destroy(&mt->mmap);
    so_map_destroy(&mt->pmap);
}

/* An id given as a JSON integer or string, as a string in buf. */
static int s_id_string(const json_t *v, char *buf, size_t len)
{
    if (json_is_integer(v)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < len) {
        snprintf(buf, len, "%s", json_string_value(v));
        return 0;
    }
    return -1;
}

/* Room for one more element in a growing array (capacity doubles from 16). */
static void *s_grow(void *p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 16;
    return so_reallocarray(p, *cap, elem);
}

/* "path:line: key: expected want, got value"; returns -1. */
static int s_bad(char *err, size_t errlen, const char *path, size_t lineno, const char *key,
                 const char *want, const json_t *v)
{
    char shown[96];
    so_trace_json_show(v, shown, sizeof shown);
    return so_err(err, errlen, "%s:%zu: %s: expected %s, got %s", path, lineno, key, want, shown);
}

/* ------------------------------------------------------------------ */
/* question.jsonl                                                       */

static int s_mt_question(json_t *root, const char *path, size_t lineno, void *ctx, char *err,
                         size_t errlen)
{
    s_mt_t *mt = ctx;
    char qid[128];
    const json_t *v = json_object_get(root, "question_id");
    if (!json_is_object(root) || !v || s_id_string(v, qid, sizeof qid) < 0)
        return s_bad(err, errlen, path, lineno, "question_id", "an integer or a string",
                     json_is_object(root) ? v : root);
    const json_t *cat = json_object_get(root, "category");
    if (cat && !json_is_string(cat) && !json_is_null(cat))
        return s_bad(err, errlen, path, lineno, "category", "a string", cat);
    const json_t *turns = json_object_get(root, "turns");
    size_t nt = json_is_array(turns) ? json_array_size(turns) : 0;
    int turns_ok = nt > 0 && nt <= S_MT_MAX_TURNS;
    for (size_t t = 0; turns_ok && t < nt; t++)
        if (!json_is_string(json_array_get(turns, t)))
            turns_ok = 0;
    if (!turns_ok) {
        char want[32];
        snprintf(want, sizeof want, "1 to %d strings", S_MT_MAX_TURNS);
        return s_bad(err, errlen, path, lineno, "turns", want, turns);
    }
    if (so_trace_idx_get(mt->qmap, qid, NULL))
        return so_err(err, errlen, "%s:%zu: question_id: %s repeats an earlier question", path,
                      lineno, qid);
    so_trace_idx_put(mt->qmap, qid, mt->n_qs);
    mt->qs = s_grow(mt->qs, &mt->cap_qs, mt->n_qs, sizeof *mt->qs);
    s_mt_question_t *q = &mt->qs[mt->n_qs++];
    q->qid = so_strdup(qid);
    q->category = so_strdup(json_is_string(cat) ? json_string_value(cat) : "");
    q->turns = so_calloc(nt, sizeof *q->turns);
    q->n_turns = nt;
    for (size_t t = 0; t < nt; t++)
        q->turns[t] = so_strdup(json_string_value(json_array_get(turns, t)));
    return 0;
}

/* ------------------------------------------------------------------ */
/* judgements.jsonl                                                     */

static const char *s_find_last(const char *hay, const char *needle)
{
    const char *last = NULL, *p = hay;
    while ((p = strstr(p, needle)) != NULL)
        last = p++;
    return last;
}

/* The single-turn template: the answer between "[The Start of Assistant's
 * Answer]" and "[The End of ...]". */
static void s_mt_recover_single(const char *up, char **answers)
{
    static const char a_start[] = "[The Start of Assistant's Answer]\n";
    static const char a_end[] = "\n[The End of Assistant's Answer]";
    const char *a = strstr(up, a_start);
    if (!a)
        return;
    a += sizeof a_start - 1;
    const char *e = s_find_last(a, a_end);
    if (e)
        answers[0] = so_strndup(a, (size_t) (e - a));
}

/* Recovers the assistant's answers to turns 1..turn from the judge's
 * prompt (FastChat's templates): single-turn prompts hold the answer
 * between "[The Start of Assistant's Answer]" and "[The End of ...]";
 * multi-turn prompts hold the whole conversation between
 * "<|The Start of Assistant A's Conversation with User|>" and its end
 * marker as "### User:" / "### Assistant A:" sections.  Question texts
 * anchor the section boundaries so that an answer quoting "### User:" does
 * not cut it short.  Unrecovered answers stay NULL. */
static void s_mt_recover(const char *up, const s_mt_question_t *q, size_t turn, char **answers)
{
    static const char c_start[] = "<|The Start of Assistant A's Conversation with User|>";
    static const char c_end[] = "\n\n<|The End of Assistant A's Conversation with User|>";
    static const char user[] = "\n\n### User:\n";
    static const char asst[] = "\n\n### Assistant A:\n";

    const char *c = strstr(up, c_start);
    if (!c) {
        if (turn == 1)
            s_mt_recover_single(up, answers);
        return;
    }
    const char *end = s_find_last(c, c_end);
    if (!end)
        return;
    const char *pos = c;
    so_buf_t marker = SO_BUF_INIT;
    for (size_t k = 0; k < turn; k++) {
        const char *a = strstr(pos, asst);
        if (!a || a >= end)
            break;
        a += sizeof asst - 1;
        const char *e = end;
        if (k + 1 < turn) {
            so_buf_reset(&marker);
            so_buf_puts(&marker, user);
            so_buf_puts(&marker, q->turns[k + 1]);
            e = strstr(a, so_buf_str(&marker));
            if (!e || e > end)
                e = strstr(a, user);
            if (!e || e > end)
                break;
        }
        answers[k] = so_strndup(a, (size_t) (e - a));
        pos = e;
    }
    so_buf_free(&marker);
}

/* The pair (question qi, model) of a judgement, made on first sight. */
static s_mt_pair_t *s_mt_pair(s_mt_t *mt, size_t qi, const char *model)
{
    size_t mi = mt->n_models;
    if (!so_trace_idx_get(mt->mmap, model, &mi)) {
        so_trace_idx_put(mt->mmap, model, mi);
        mt->models = s_grow(mt->models, &mt->cap_models, mt->n_models, sizeof *mt->models);
        mt->models[mt->n_models++] = so_strdup(model);
    }
    char key[64];
    snprintf(key, sizeof key, "%zu\x1f%zu", qi, mi);
    size_t pi = mt->n_pairs;
    if (so_trace_idx_get(mt->pmap, key, &pi))
        return &mt->pairs[pi];
    so_trace_idx_put(mt->pmap, key, pi);
    mt->pairs = s_grow(mt->pairs, &mt->cap_pairs, mt->n_pairs, sizeof *mt->pairs);
    s_mt_pair_t *p = &mt->pairs[mt->n_pairs++];
    size_t nt = mt->qs[qi].n_turns;
    p->q = qi;
    p->m = mi;
    p->score = so_calloc(nt, sizeof *p->score);
    p->state = so_calloc(nt, sizeof *p->state);
    p->answer = so_calloc(nt, sizeof *p->answer);
    p->n_turns = nt;
    return p;
}

static int s_mt_judgement(json_t *root, const char *path, size_t lineno, void *ctx, char *err,
                          size_t errlen)
{
    s_mt_t *mt = ctx;
    char qid[128];
    if (!json_is_object(root)) {
        char shown[96];
        so_trace_json_show(root, shown, sizeof shown);
        return so_err(err, errlen, "%s:%zu: expected a JSON object, got %s", path, lineno, shown);
    }
    const json_t *v_q = json_object_get(root, "question_id");
    const json_t *v_m = json_object_get(root, "model");
    const json_t *v_t = json_object_get(root, "turn");
    const json_t *v_s = json_object_get(root, "score");
    const json_t *v_u = json_object_get(root, "user_prompt");
    if (!v_q || s_id_string(v_q, qid, sizeof qid) < 0)
        return s_bad(err, errlen, path, lineno, "question_id", "an integer or a string", v_q);
    if (!json_is_string(v_m) || json_string_length(v_m) == 0)
        return s_bad(err, errlen, path, lineno, "model", "a non-empty string", v_m);
    if (!json_is_integer(v_t) || json_integer_value(v_t) < 1)
        return s_bad(err, errlen, path, lineno, "turn", "an integer >= 1", v_t);
    if (!json_is_number(v_s))
        return s_bad(err, errlen, path, lineno, "score", "a number", v_s);
    if (v_u && !json_is_string(v_u) && !json_is_null(v_u))
        return s_bad(err, errlen, path, lineno, "user_prompt", "a string", v_u);
    size_t qi;
    json_int_t turn = json_integer_value(v_t);
    if (!so_trace_idx_get(mt->qmap, qid, &qi) || (size_t) turn > mt->qs[qi].n_turns) {
        mt->skipped++; /* judges a question (or turn) we do not have */
        return 0;
    }
    s_mt_pair_t *p = s_mt_pair(mt, qi, json_string_value(v_m));
    size_t t = (size_t) turn - 1;
    if (p->state[t] == 0) { /* the first judgement of a turn wins */
        double sc = json_number_value(v_s);
        p->state[t] = (sc >= 1 && sc <= 10) ? 1 : 2;
        p->score[t] = sc / 10.0;
    }
    if (json_is_string(v_u)) {
        char **answers = so_calloc((size_t) turn, sizeof *answers);
        s_mt_recover(json_string_value(v_u), &mt->qs[qi], (size_t) turn, answers);
        for (size_t k = 0; k < (size_t) turn; k++) {
            if (!p->answer[k])
                p->answer[k] = answers[k];
            else
                free(answers[k]);
        }
        free(answers);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* episodes                                                             */

/* Number of UTF-8 code points (continuation bytes are not counted). */
static size_t s_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char) *s & 0xC0) != 0x80)
            n++;
    return n;
}

/* The token estimate of so_tokens_estimate_text (ceil(code points / 4)),
 * over a count of code points: a turn's prompt is its own text plus every
 * earlier question and answer of the conversation. */
static double s_tokens(size_t chars)
{
    return (double) ((chars + 3) / 4); // NOLINT(bugprone-integer-division): ceil, on purpose
}

/* The episode of question q answered by model (pair p, every turn valid). */
static void s_mt_episode(so_episode_t *ep, const s_mt_question_t *q, const char *model,
                         const s_mt_pair_t *p)
{
    double pin = NAN, pout = NAN;
    if (so_trace_list_price(model, &pin, &pout) < 0)
        pin = pout = NAN;
    so_buf_t id = SO_BUF_INIT;
    so_buf_appendf(&id, "%s/%s", q->qid, model);
    memset(ep, 0, sizeof *ep);
    ep->id = so_buf_detach(&id, NULL);
    ep->query_id = so_strdup(q->qid);
    ep->task = so_strdup(q->category);
    ep->turns = so_calloc(q->n_turns, sizeof *ep->turns);
    ep->n_turns = q->n_turns;
    size_t context = 0; /* characters of earlier turns */
    for (size_t t = 0; t < q->n_turns; t++) {
        so_turn_t *tu = &ep->turns[t];
        so_trace_turn_unknown(tu);
        tu->mode = so_strdup("");
        tu->agent = so_strdup(model);
        tu->prompt = so_strdup(q->turns[t]);
        size_t qc = s_utf8_chars(q->turns[t]);
        tu->prompt_tokens = s_tokens(context + qc);
        tu->completion_tokens = p->answer[t] ? s_tokens(s_utf8_chars(p->answer[t]))
                                             : SO_MTBENCH_COMPLETION_TOKENS;
        tu->cost_usd = (tu->prompt_tokens * pin + tu->completion_tokens * pout) / 1e6;
        tu->score = p->score[t];
        ep->outcome += p->score[t];
        context += qc + (p->answer[t] ? s_utf8_chars(p->answer[t]) : 0);
    }
    ep->outcome /= (double) q->n_turns;
}

int so_episodes_read_mtbench(so_episodes_t *eps, const char *dir, char *err, size_t errlen)
{
    memset(eps, 0, sizeof *eps);
    s_mt_t mt = { .qmap = so_map_new(NULL), .mmap = so_map_new(NULL), .pmap = so_map_new(NULL) };
    so_buf_t qpath = SO_BUF_INIT, jpath = SO_BUF_INIT;
    so_buf_appendf(&qpath, "%s/question.jsonl", dir);
    so_buf_appendf(&jpath, "%s/judgements.jsonl", dir);
    int ret = -1;
    if (so_trace_each_json(so_buf_str(&qpath), s_mt_question, &mt, err, errlen) < 0 ||
        so_trace_each_json(so_buf_str(&jpath), s_mt_judgement, &mt, err, errlen) < 0)
        goto done;
    eps->skipped = mt.skipped;
    for (size_t qi = 0; qi < mt.n_qs; qi++) {
        const s_mt_question_t *q = &mt.qs[qi];
        for (size_t mi = 0; mi < mt.n_models; mi++) {
            char key[64];
            size_t pi;
            snprintf(key, sizeof key, "%zu\x1f%zu", qi, mi);
            const s_mt_pair_t *p = so_trace_idx_get(mt.pmap, key, &pi) ? &mt.pairs[pi] : NULL;
            int usable = p != NULL;
            for (size_t t = 0; usable && t < q->n_turns; t++)
                if (p->state[t] != 1)
                    usable = 0;
            if (!usable) {
                eps->skipped++;
                continue;
            }
            so_episode_t ep;
            s_mt_episode(&ep, q, mt.models[mi], p);
            so_episodes_push(eps, &ep);
        }
    }
    ret = 0;
done:
    s_mt_free(&mt);
    so_buf_free(&qpath);
    so_buf_free(&jpath);
    if (ret < 0)
        so_episodes_free(eps);
    return ret;
}
