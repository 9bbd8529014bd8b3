/*
 * so_backend — how an agent-worker executes an AgentCall.  A backend is a
 * small vtable: the replay backend (so_replay.c) answers from recorded
 * outcomes; the live backend (so_live.c) calls OpenAI-compatible endpoints.
 *
 * execute runs one call synchronously and fills *out; it never fails as a
 * function: a call it cannot serve comes back with out->error_code set and a
 * readable out->error.  The worker measures latency itself.  A backend that
 * sets thread_safe may have execute running on several threads at once (the
 * worker's pool, so_worker.h "threads"); the others run in the worker loop.
 */
#ifndef SO_BACKEND_H
#define SO_BACKEND_H

#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *text; /* malloc'd answer text (caller frees), may be NULL */
    uint32_t prompt_tokens;
    uint32_t completion_tokens;
    double cost_usd;
    int has_score;                 /* replay: a recorded score is known */
    double score;                  /* [0, 1] */
    so_pb_error_code_t error_code; /* NONE = success */
    char error[512];
    /* Set by the caller (so_backend_execute_stream), read by a backend that
     * streams (live, when call->stream): each text delta, in order, on the
     * executing thread; non-zero cancels the call.  NULL: no deltas. */
    int (*on_delta)(void *arg, const char *delta, size_t len);
    void *delta_arg;
} so_exec_t;

typedef struct so_backend so_backend_t;

struct so_backend {
    const char *name; /* "replay", "live", ... */
    void *self;
    int thread_safe; /* execute may run on several threads at once */
    /* deadline: so_now_ms() time by which the result is due (0 = none). */
    void (*execute)(void *self, const so_pb_agent_call_t *call, int64_t deadline, so_exec_t *out);
    /* Optional: running and later executes return soon (UNAVAILABLE); the
     * worker calls it when it gives up waiting for them.  Thread-safe. */
    void (*cancel)(void *self);
    /* Optional: one log line of the backend's counters (worker stats timer). */
    void (*log_stats)(void *self);
    void (*destroy)(void *self);
};

/* Runs backend->execute after zeroing *out. */
void so_backend_execute(so_backend_t *b, const so_pb_agent_call_t *call, int64_t deadline,
                        so_exec_t *out);
/* The same with a delta sink (see so_exec_t.on_delta); a backend that does
 * not stream ignores it and only fills *out. */
void so_backend_execute_stream(so_backend_t *b, const so_pb_agent_call_t *call, int64_t deadline,
                               int (*on_delta)(void *, const char *, size_t), void *delta_arg,
                               so_exec_t *out);
/* Releases out->text. */
void so_exec_clear(so_exec_t *out);
/* Destroys the backend and NULLs the pointer; NULL-safe. */
void so_backend_destroy(so_backend_t **self_p);

/* The replay backend.  files: comma-separated dataset paths (so_dataset_load:
 * RouterBench CSV, MT-bench directory, JSONL traces).  Prompts are indexed by
 * their exact text; when two records share a prompt, the first file listed
 * wins (counted in *duplicates if not NULL).  NULL with err on failure. */
so_backend_t *so_replay_new(const char *files, size_t *n_prompts, size_t *duplicates, char *err,
                            size_t errlen);

/* The live backend: one OpenAI-compatible client pool per agent of
 * "live.agents" (comma-separated ids), each configured by the agent.<id>.*
 * keys of so_openai_config_load plus agent.<id>.temperature.  Checks every
 * agent's settings and API key variable at start.  NULL with err naming the
 * key on failure.  See config/agent-worker.conf and docs/PROVIDERS.md. */
so_backend_t *so_live_new(const so_config_t *cfg, char *err, size_t errlen);

/* The text a call is answered for: its last "user" message (NULL if none). */
const char *so_backend_prompt(const so_pb_agent_call_t *call);

#endif
