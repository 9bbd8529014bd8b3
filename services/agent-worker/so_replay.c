/*
 * so_replay — the replay backend: answers an AgentCall with the outcome that
 * was recorded for the same prompt and agent (RouterBench and friends), so
 * the whole service chain runs, learns and is evaluated without a provider.
 *
 * Owns the loaded dataset and a hash index from prompt text to sample.
 */
#include "so_backend.h"
#include "offline/so_trace.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "wire/so_wire.h"

#include <czmq.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    so_dataset_t ds;
    zhashx_t *by_prompt; /* prompt text -> (sample index + 1) */
} s_replay_t;

static uint32_t s_tokens(double recorded, size_t chars)
{
    if (isfinite(recorded) && recorded >= 0 && recorded < 4e9)
        return (uint32_t) llround(recorded);
    return (uint32_t) ((chars + 3) / 4);
}

static void s_execute(void *self, const so_pb_agent_call_t *call, int64_t deadline,
                      so_exec_t *out)
{
    s_replay_t *r = self;
    (void) deadline; /* a lookup: always in time */
    const char *prompt = so_backend_prompt(call);
    if (!prompt) {
        out->error_code = SO_ERR(INVALID_REQUEST);
        snprintf(out->error, sizeof out->error, "replay: the call has no user message");
        return;
    }
    uintptr_t at = (uintptr_t) zhashx_lookup(r->by_prompt, prompt);
    if (at == 0) {
        out->error_code = SO_ERR(INVALID_REQUEST);
        snprintf(out->error, sizeof out->error,
                 "replay: no recorded outcome for this prompt (%zu chars) in the replay files",
                 strlen(prompt));
        return;
    }
    const so_sample_t *s = &r->ds.samples[at - 1];
    int a = so_dataset_agent_index(&r->ds, call->agent_id);
    if (a < 0 || !isfinite(s->score[a])) {
        /* UPSTREAM: another agent may have a record; the gateway re-routes. */
        out->error_code = SO_ERR(UPSTREAM);
        snprintf(out->error, sizeof out->error,
                 "replay: agent %.128s has no recorded outcome for this prompt (query %.128s)",
                 call->agent_id, s->query_id ? s->query_id : "?");
        return;
    }
    double score = s->score[a];
    out->has_score = 1;
    out->score = score < 0 ? 0 : score > 1 ? 1 : score;
    out->cost_usd = isfinite(s->cost[a]) && s->cost[a] > 0 ? s->cost[a] : 0;
    out->prompt_tokens = s_tokens(s->prompt_tokens[a], strlen(prompt));
    out->completion_tokens = s_tokens(s->completion_tokens[a], 0);
    char text[256];
    if (score == 0 || score == 1)
        snprintf(text, sizeof text, "[replay] %.128s answered %s (recorded)", call->agent_id,
                 score == 1 ? "correct" : "incorrect");
    else
        snprintf(text, sizeof text, "[replay] %.128s scored %.3f (recorded)", call->agent_id,
                 score);
    out->text = so_strdup(text);
}

static void s_destroy(void *self)
{
    s_replay_t *r = self;
    if (!r)
        return;
    zhashx_destroy(&r->by_prompt);
    so_dataset_free(&r->ds);
    free(r);
}

so_backend_t *so_replay_new(const char *files, size_t *n_prompts, size_t *duplicates, char *err,
                            size_t errlen)
{
    s_replay_t *r = so_calloc(1, sizeof *r);
    so_backend_t *b = so_calloc(1, sizeof *b);
    if (so_dataset_load(&r->ds, files, err, errlen) != 0) {
        free(r);
        free(b);
        return NULL;
    }
    r->by_prompt = zhashx_new();
    size_t dups = 0;
    for (size_t i = 0; i < r->ds.n_samples; i++) {
        const char *p = r->ds.samples[i].prompt ? r->ds.samples[i].prompt : "";
        if (zhashx_insert(r->by_prompt, p, (void *) (uintptr_t) (i + 1)) != 0)
            dups++;
    }
    if (n_prompts)
        *n_prompts = zhashx_size(r->by_prompt);
    if (duplicates)
        *duplicates = dups;
    b->name = "replay";
    b->self = r;
    b->thread_safe = 0; /* zhashx_lookup updates the hash's cache */
    b->execute = s_execute;
    b->destroy = s_destroy;
    return b;
}
