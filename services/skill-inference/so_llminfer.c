/*
 * so_llminfer — LLM skill analyses on a thread pool (see so_llminfer.h).
 *
 * Who may touch a job when: the loop fills it and submits it; from then on
 * a pool thread may read the request fields and write the t_* fields, until
 * it puts the job on the done list (under the mutex, which orders those
 * writes before the loop's reads).  The loop alone keeps the pending list,
 * the deadlines, the result fields and the flags in_pool / finished /
 * returned / released.  So a job answered at its deadline while its call
 * still runs is never freed under the thread: it is freed when it comes back
 * on the done list (in_pool = 0), after the caller released it.
 */
#include "so_llminfer.h"
#include "llm/so_extract.h"
#include "base/so_text.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct s_thread s_thread_t;

struct so_llminfer {
    so_llminfer_opts_t o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    so_llmjob_t *todo, *todo_tail; /* FIFO, guarded by mu */
    so_llmjob_t *done, *done_tail; /* FIFO, guarded by mu */
    int quit;                      /* guarded by mu */
    int wake[2];                   /* a thread writes a byte per finished job */
    s_thread_t *threads;
    unsigned n_threads;
    /* The loop's own: */
    so_llmjob_t *phead, *ptail; /* submitted, not returned; deadline order */
    so_llmjob_t *rhead, *rtail; /* finished, not returned (a subset of the above) */
    size_t n_pending;
    size_t n_owned; /* submitted and not freed */
};

struct s_thread {
    so_llminfer_t *l;
    so_openai_t *client;
    pthread_t tid;
};

void so_llminfer_opts_default(so_llminfer_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = 1500;
    o->connect_timeout_ms = 0; /* derived */
    o->max_retries = 0;
    o->threads = 4;
    o->max_inflight = 64;
    o->max_tokens = 256;
    o->temperature = 0;
}

int so_llminfer_config(const so_config_t *cfg, so_llminfer_opts_t *o, char *err, size_t errlen)
{
    long v;
    o->base_url = so_config_get(cfg, "llm.base_url", o->base_url);
    o->model = so_config_get(cfg, "llm.model", o->model);
    o->api_key_env = so_config_get(cfg, "llm.api_key_env", o->api_key_env);
    if (so_config_long(cfg, "llm.timeout_ms", o->timeout_ms, 1, 600000, &o->timeout_ms, err,
                       errlen) != 0 ||
        so_config_long(cfg, "llm.connect_timeout_ms", o->connect_timeout_ms, 0, 600000,
                       &o->connect_timeout_ms, err, errlen) != 0)
        return -1;
    if (so_config_long(cfg, "llm.max_retries", o->max_retries, 0, 5, &v, err, errlen) != 0)
        return -1;
    o->max_retries = (int) v;
    if (so_config_long(cfg, "llm.threads", o->threads, 1, 256, &v, err, errlen) != 0)
        return -1;
    o->threads = (unsigned) v;
    if (so_config_long(cfg, "llm.max_inflight", (long) o->max_inflight, 1, 100000, &v, err,
                       errlen) != 0)
        return -1;
    o->max_inflight = (size_t) v;
    if (so_config_long(cfg, "llm.max_tokens", o->max_tokens, 0, 100000, &o->max_tokens, err,
                       errlen) != 0)
        return -1;
    if (so_config_double(cfg, "llm.temperature", o->temperature, -1, 2, &o->temperature, err,
                         errlen) != 0)
        return -1;
    return 0;
}

const char *so_llm_code_name(so_llm_code_t code)
{
    switch (code) {
    case SO_LLM_OK: return "ok";
    case SO_LLM_TIMEOUT: return "timeout";
    case SO_LLM_BAD_OUTPUT: return "bad_output";
    case SO_LLM_ERROR: return "error";
    case SO_LLM_BUSY: return "busy";
    }
    return "unknown";
}

/* ---- jobs --------------------------------------------------------------- */

so_llmjob_t *so_llmjob_new(size_t n_ids)
{
    so_llmjob_t *j = so_calloc(1, sizeof *j);
    size_t n = n_ids ? n_ids : 1;
    j->n_ids = n_ids;
    j->ids = so_calloc(n, sizeof *j->ids);
    j->skill = so_calloc(n, sizeof *j->skill);
    j->fallback = so_calloc(n, sizeof *j->fallback);
    j->weights = so_calloc(n, sizeof *j->weights);
    j->t_weights = so_calloc(n, sizeof *j->t_weights);
    atomic_init(&j->cancel, 0);
    return j;
}

void so_llmjob_free(so_llmjob_t **job_p)
{
    if (!job_p || !*job_p)
        return;
    so_llmjob_t *j = *job_p;
    for (size_t i = 0; i < j->n_ids; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j->skill);
    free(j->fallback);
    free(j->weights);
    free(j->t_weights);
    free(j->system);
    free(j->user);
    free(j->request_id);
    free(j->episode_id);
    free(j->version);
    free(j);
    *job_p = NULL;
}

/* ---- the threads -------------------------------------------------------- */

/* A short, printable piece of what the model said, for error messages. */
static void s_snippet(const char *text, char *out, size_t outlen)
{
    size_t k = 0;
    for (const char *p = text ? text : ""; *p && k + 1 < outlen && k < 80; p++)
        out[k++] = (unsigned char) *p < 0x20 || *p == '"' || *p == '\\' ? ' ' : *p;
    out[k] = '\0';
    so_utf8_scrub(out);
}

static void s_run(so_openai_t *client, const so_llminfer_opts_t *o, so_llmjob_t *j)
{
    int64_t t0 = so_now_ms();
    if (atomic_load(&j->cancel)) {
        j->t_code = SO_LLM_ERROR;
        snprintf(j->t_error, sizeof j->t_error, "cancelled before it ran");
        return;
    }
    long left = (long) (j->deadline_ms - t0);
    if (left <= 0) {
        j->t_code = SO_LLM_TIMEOUT;
        snprintf(j->t_error, sizeof j->t_error,
                 "waited past its deadline for a free LLM thread (all %u busy)", o->threads);
        return;
    }
    so_openai_msg_t msgs[2] = { { "system", j->system }, { "user", j->user } };
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = msgs;
    req.n_messages = 2;
    req.max_tokens = o->max_tokens;
    req.temperature = o->temperature;
    req.deadline_ms = left;
    req.cancel = &j->cancel;
    so_openai_response_t resp;
    char err[256];
    int rc = so_openai_chat(client, &req, &resp);
    if (rc != 0 && resp.code == SO_OPENAI_TIMEOUT) {
        /* The call's deadline is what was left of the job's: say it the way
         * the loop does when it gets there first (one wording, whichever
         * timer fires first). */
        j->t_code = SO_LLM_TIMEOUT;
        snprintf(j->t_error, sizeof j->t_error, "no answer within %ld ms", o->timeout_ms);
    } else if (rc != 0) {
        j->t_code = SO_LLM_ERROR;
        snprintf(j->t_error, sizeof j->t_error, "%s: %.360s", so_openai_code_name(resp.code),
                 resp.error);
        so_utf8_scrub(j->t_error);
    } else {
        so_extract_report_t rep;
        size_t len = resp.text ? strlen(resp.text) : 0;
        if (so_extract_skills(resp.text ? resp.text : "", len, (const char *const *) j->ids,
                              j->n_ids, j->t_weights, &rep, err, sizeof err) < 0) {
            char snip[96];
            s_snippet(resp.text, snip, sizeof snip);
            j->t_code = SO_LLM_BAD_OUTPUT;
            snprintf(j->t_error, sizeof j->t_error, "%.250s; the answer began: %s", err, snip);
            so_utf8_scrub(j->t_error);
        } else {
            j->t_code = SO_LLM_OK;
        }
    }
    so_openai_response_clear(&resp);
    j->t_ms = so_now_ms() - t0;
}

static void *s_thread_main(void *arg)
{
    s_thread_t *t = arg;
    so_llminfer_t *l = t->l;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && !l->todo)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit)
            break;
        so_llmjob_t *j = l->todo;
        l->todo = j->next;
        if (!l->todo)
            l->todo_tail = NULL;
        j->next = NULL;
        pthread_mutex_unlock(&l->mu);
        s_run(t->client, &l->o, j);
        pthread_mutex_lock(&l->mu);
        if (l->done_tail)
            l->done_tail->next = j;
        else
            l->done = j;
        l->done_tail = j;
        /* A full pipe already wakes the loop: the byte may be dropped. */
        ssize_t wr = write(l->wake[1], "j", 1);
        (void) wr;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- life cycle ----------------------------------------------------------- */

so_llminfer_t *so_llminfer_new(const so_llminfer_opts_t *opts, char *err, size_t errlen)
{
    if (!opts->base_url || !*opts->base_url || !opts->model || !*opts->model) {
        so_err(err, errlen, "llm.base_url and llm.model are required in llm mode");
        return NULL;
    }
    so_llminfer_t *l = so_calloc(1, sizeof *l);
    l->o = *opts;
    l->wake[0] = l->wake[1] = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->threads = so_calloc(opts->threads, sizeof *l->threads);

    so_openai_config_t cc;
    so_openai_config_endpoint(&cc, opts->base_url, opts->model, opts->api_key_env,
                              opts->timeout_ms);
    cc.connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms
                            : opts->timeout_ms < 1000    ? opts->timeout_ms
                                                         : 1000;
    cc.deadline_ms = opts->timeout_ms;
    cc.max_retries = opts->max_retries;
    cc.backoff_base_ms = 50;
    cc.backoff_max_ms = 200;
    cc.retry_after_max_ms = opts->timeout_ms;
    cc.max_response_bytes = 1u << 20;
    for (unsigned i = 0; i < opts->threads; i++) {
        l->threads[i].l = l;
        l->threads[i].client = so_openai_new(&cc, err, errlen);
        if (!l->threads[i].client) {
            so_llminfer_destroy(&l);
            return NULL;
        }
    }
    if (pipe(l->wake) != 0) {
        so_err(err, errlen, "pipe: %s", strerror(errno));
        so_llminfer_destroy(&l);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(l->wake[i], F_SETFL, fcntl(l->wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(l->wake[i], F_SETFD, FD_CLOEXEC);
    }
    /* Signals stay with the loop: SIGTERM must interrupt its poll, not a
     * thread's HTTP call. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 0; i < opts->threads; i++) {
        int rc = pthread_create(&l->threads[i].tid, NULL, s_thread_main, &l->threads[i]);
        if (rc != 0) {
            so_err(err, errlen, "pthread_create: %s", strerror(rc));
            break;
        }
        l->n_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (l->n_threads < opts->threads) {
        so_llminfer_destroy(&l);
        return NULL;
    }
    return l;
}

static void s_free_owned(so_llminfer_t *l, so_llmjob_t *j)
{
    so_llmjob_free(&j);
    l->n_owned--;
}

/* Frees the pool's jobs that the caller is done with; jobs still pending
 * are left for the pending list. */
static void s_free_returned(so_llminfer_t *l, so_llmjob_t *j)
{
    for (so_llmjob_t *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        j->in_pool = 0;
        if (j->returned)
            s_free_owned(l, j);
    }
}

void so_llminfer_destroy(so_llminfer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_llminfer_t *l = *self_p;
    for (so_llmjob_t *j = l->phead; j; j = j->pnext)
        atomic_store(&j->cancel, 1);
    pthread_mutex_lock(&l->mu);
    l->quit = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (unsigned i = 0; i < l->n_threads; i++)
        pthread_join(l->threads[i].tid, NULL);
    s_free_returned(l, l->todo);
    s_free_returned(l, l->done);
    l->todo = l->todo_tail = l->done = l->done_tail = NULL;
    for (so_llmjob_t *j = l->phead, *next; j; j = next) {
        next = j->pnext;
        s_free_owned(l, j);
    }
    for (unsigned i = 0; i < (l->threads ? l->o.threads : 0); i++)
        so_openai_destroy(&l->threads[i].client);
    for (int i = 0; i < 2; i++)
        if (l->wake[i] >= 0)
            close(l->wake[i]);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->threads);
    free(l);
    *self_p = NULL;
}

/* ---- the loop's side ------------------------------------------------------ */

int so_llminfer_submit(so_llminfer_t *l, so_llmjob_t *j)
{
    if (l->n_owned >= l->o.max_inflight)
        return -1;
    j->deadline_ms = so_now_ms() + l->o.timeout_ms;
    j->in_pool = 1;
    j->pprev = l->ptail;
    j->pnext = NULL;
    if (l->ptail)
        l->ptail->pnext = j;
    else
        l->phead = j;
    l->ptail = j;
    l->n_pending++;
    l->n_owned++;
    pthread_mutex_lock(&l->mu);
    if (l->todo_tail)
        l->todo_tail->next = j;
    else
        l->todo = j;
    l->todo_tail = j;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

static void s_unlink_pending(so_llminfer_t *l, so_llmjob_t *j)
{
    if (j->pprev)
        j->pprev->pnext = j->pnext;
    else
        l->phead = j->pnext;
    if (j->pnext)
        j->pnext->pprev = j->pprev;
    else
        l->ptail = j->pprev;
    j->pprev = j->pnext = NULL;
    l->n_pending--;
}

/* Takes what the threads finished: results of pending jobs go to the ready
 * list; jobs answered at their deadline meanwhile are freed if released. */
static void s_collect(so_llminfer_t *l)
{
    char buf[256];
    while (read(l->wake[0], buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&l->mu);
    so_llmjob_t *j = l->done;
    l->done = l->done_tail = NULL;
    pthread_mutex_unlock(&l->mu);
    for (so_llmjob_t *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        j->in_pool = 0;
        if (j->returned) {
            if (j->released)
                s_free_owned(l, j);
            continue;
        }
        j->finished = 1;
        j->code = j->t_code;
        j->llm_ms = j->t_ms;
        memcpy(j->error, j->t_error, sizeof j->error);
        memcpy(j->weights, j->t_weights, j->n_ids * sizeof *j->weights);
        j->rnext = NULL;
        if (l->rtail)
            l->rtail->rnext = j;
        else
            l->rhead = j;
        l->rtail = j;
    }
}

so_llmjob_t *so_llminfer_next(so_llminfer_t *l, int64_t now_ms, int all)
{
    s_collect(l);
    so_llmjob_t *j = l->rhead;
    if (j) {
        l->rhead = j->rnext;
        if (!l->rhead)
            l->rtail = NULL;
        j->rnext = NULL;
    } else {
        /* No result: the oldest pending job, if its deadline passed.  (The
         * ready list is empty, so no pending job has finished.) */
        j = l->phead;
        if (!j || (!all && now_ms < j->deadline_ms))
            return NULL;
        atomic_store(&j->cancel, 1);
        if (now_ms >= j->deadline_ms) {
            j->code = SO_LLM_TIMEOUT;
            snprintf(j->error, sizeof j->error, "no answer within %ld ms", l->o.timeout_ms);
        } else {
            j->code = SO_LLM_ERROR;
            snprintf(j->error, sizeof j->error, "stopping: the call was abandoned");
        }
    }
    s_unlink_pending(l, j);
    j->returned = 1;
    return j;
}

void so_llminfer_release(so_llminfer_t *l, so_llmjob_t **job_p)
{
    so_llmjob_t *j = *job_p;
    *job_p = NULL;
    if (!j)
        return;
    j->released = 1;
    if (!j->in_pool)
        s_free_owned(l, j);
}

size_t so_llminfer_pending(const so_llminfer_t *l)
{
    return l->n_pending;
}

long so_llminfer_due_ms(const so_llminfer_t *l, int64_t now_ms)
{
    if (l->rhead)
        return 0;
    if (!l->phead)
        return -1;
    int64_t d = l->phead->deadline_ms - now_ms;
    return d <= 0 ? 0 : (long) d;
}

int so_llminfer_wake_fd(const so_llminfer_t *l)
{
    return l->wake[0];
}

const so_llminfer_opts_t *so_llminfer_opts(const so_llminfer_t *l)
{
    return &l->o;
}
