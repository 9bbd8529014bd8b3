/*
 * so_llminfer — skill analyses by an LLM, off the service loop: a few
 * threads, each with its own so_openai client (one connection each), run
 * jobs (a system and a user message, the skill ids to map the answer onto)
 * and hand the results back to the loop through a wake-up pipe.
 *
 * The loop submits a job and later takes it back with so_llminfer_next,
 * exactly once, either finished (the analysis, or why there is none) or
 * expired: every job carries a deadline (submit time + timeout_ms) kept by
 * the loop itself, so a reply never waits on a thread that hangs; an
 * expired call still running is cancelled.  Jobs wait in a FIFO when every
 * thread is busy; max_inflight bounds them (submit refuses beyond).
 *
 * Owns the threads, the clients and the jobs (from submit until release).
 * Every function except the thread bodies runs on the loop thread.
 */
#ifndef SO_LLMINFER_H
#define SO_LLMINFER_H

#include "llm/so_openai.h"
#include "base/so_svc.h"
#include "wire/so_wire.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *base_url;    /* required */
    const char *model;       /* required */
    const char *api_key_env; /* NULL/"": no key */
    long timeout_ms;         /* the whole analysis, queue wait included (1500) */
    long connect_timeout_ms; /* (default min(1000, timeout_ms)) */
    int max_retries;         /* within timeout_ms (default 0) */
    unsigned threads;        /* calls at once (default 4) */
    size_t max_inflight;     /* jobs running or waiting (default 64) */
    long max_tokens;         /* completion cap sent (default 256) */
    double temperature;      /* < 0: not sent (default 0) */
} so_llminfer_opts_t;

void so_llminfer_opts_default(so_llminfer_opts_t *o);

/* Reads llm.base_url, llm.model, llm.api_key_env, llm.timeout_ms,
 * llm.connect_timeout_ms, llm.max_retries, llm.threads, llm.max_inflight,
 * llm.max_tokens, llm.temperature over the defaults (strings borrowed from
 * cfg).  -1 with err naming the key. */
int so_llminfer_config(const so_config_t *cfg, so_llminfer_opts_t *o, char *err, size_t errlen);

typedef enum {
    SO_LLM_OK = 0,
    SO_LLM_TIMEOUT = 1,    /* no answer by the deadline */
    SO_LLM_BAD_OUTPUT = 2, /* an answer with no usable analysis */
    SO_LLM_ERROR = 3,      /* HTTP or transport error, refused, stopping */
    SO_LLM_BUSY = 4        /* not run: max_inflight reached (set by the caller) */
} so_llm_code_t;

/* "ok", "timeout", "bad_output", "error", "busy". */
const char *so_llm_code_name(so_llm_code_t code);

/* One analysis.  The caller fills the request fields after so_llmjob_new;
 * after so_llminfer_next the result fields are set. */
typedef struct so_llmjob so_llmjob_t;
struct so_llmjob {
    /* ---- request (the loop's; read-only for the threads once submitted) */
    char *system, *user; /* messages (owned) */
    char **ids;          /* [n_ids] skill ids the answer may name (owned) */
    size_t n_ids;
    /* what the caller needs to answer later (the threads never touch it) */
    so_wire_envelope_t env;
    char *request_id, *episode_id, *version; /* owned */
    uint32_t *skill;                         /* [n_ids] handbook skill index of ids[k] */
    double *fallback;                        /* [n_ids] embedded demand over ids */
    int fallback_uniform;                    /* embedded inference matched nothing */
    uint64_t key_h1, key_h2;                 /* analysis cache key */
    int64_t received_us;                     /* so_server_now_us() at receipt */
    /* ---- result (valid after so_llminfer_next) */
    so_llm_code_t code;
    double *weights; /* [n_ids] normalised, when code is OK */
    char error[384]; /* why not, when code is not OK */
    int64_t llm_ms;  /* the call's duration (0 if not run) */
    /* ---- private */
    struct so_llmjob *next;          /* pool queues, guarded by the pool's mutex */
    struct so_llmjob *pprev, *pnext; /* the loop's pending list */
    struct so_llmjob *rnext;         /* the loop's list of finished jobs */
    int64_t deadline_ms;
    atomic_int cancel;
    int in_pool, finished, returned, released;
    so_llm_code_t t_code; /* written by the thread that ran it */
    double *t_weights;
    char t_error[384];
    int64_t t_ms;
};

/* A job with room for n_ids ids/weights (all zero, strings NULL). */
so_llmjob_t *so_llmjob_new(size_t n_ids);
/* Frees a job never submitted (or refused); NULLs the pointer. */
void so_llmjob_free(so_llmjob_t **job_p);

typedef struct so_llminfer so_llminfer_t;

/* Creates the clients (checks the settings and the API key variable) and
 * starts the threads.  NULL with err on failure. */
so_llminfer_t *so_llminfer_new(const so_llminfer_opts_t *opts, char *err, size_t errlen);
/* Cancels running calls, joins the threads, frees every job still held
 * (answer them first: so_llminfer_next with all = 1).  NULLs the pointer. */
void so_llminfer_destroy(so_llminfer_t **self_p);

/* Takes the job (its deadline starts now) and returns 0; -1 when
 * max_inflight jobs are pending (the job stays the caller's). */
int so_llminfer_submit(so_llminfer_t *l, so_llmjob_t *job);

/* The next job to answer: a finished one, else one past its deadline
 * (code TIMEOUT; its call is cancelled), else NULL.  all = 1: every
 * pending job comes back, those not finished with code ERROR ("stopping").
 * The caller answers it and then calls so_llminfer_release. */
so_llmjob_t *so_llminfer_next(so_llminfer_t *l, int64_t now_ms, int all);
/* Gives a job from so_llminfer_next back; NULLs the pointer. */
void so_llminfer_release(so_llminfer_t *l, so_llmjob_t **job_p);

/* Jobs submitted and not yet returned by so_llminfer_next. */
size_t so_llminfer_pending(const so_llminfer_t *l);
/* ms until the earliest pending deadline (0 if past), -1 when none. */
long so_llminfer_due_ms(const so_llminfer_t *l, int64_t now_ms);
/* Readable when jobs finished (poll it; so_llminfer_next drains it). */
int so_llminfer_wake_fd(const so_llminfer_t *l);
/* The options in use (the strings are the caller's). */
const so_llminfer_opts_t *so_llminfer_opts(const so_llminfer_t *l);

#endif
