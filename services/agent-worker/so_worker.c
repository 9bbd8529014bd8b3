/*
 * so_worker — see so_worker.h.
 */
#include "so_worker.h"
#include "wire/so_sock.h"
#include "base/so_alloc.h"
#include "base/so_err.h"
#include "base/so_svc.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* A result held back by the artificial delay. */
typedef struct {
    int64_t due;
    zmq_msg_t hdr, body;
} s_held_t;

/* One call handed to the pool: the loop fills call/t0/deadline, a pool
 * thread fills ex/latency_s. */
typedef struct s_job {
    struct s_job *next;
    so_pb_agent_call_t *call; /* owned (so_wire_free) */
    int64_t t0;               /* received, so_now_ms() */
    int64_t deadline;         /* 0 = none */
    so_exec_t ex;
    double latency_s;
    int expired;         /* not run: the deadline passed in the queue */
    struct s_pool *pool; /* for the delta sink */
} s_job_t;

/* A text delta of a streamed call, queued by a pool thread for the loop.
 * Its job outlives it: the job is queued as done after all its deltas. */
typedef struct s_part {
    struct s_part *next;
    const s_job_t *job;
    char *text;
} s_part_t;

typedef struct s_pool {
    so_backend_t *backend;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_job_t *todo, *todo_tail;    /* FIFO, guarded by mu */
    s_job_t *done, *done_tail;    /* FIFO, guarded by mu */
    s_part_t *parts, *parts_tail; /* FIFO, guarded by mu */
    int quit;                     /* guarded by mu */
    int wake[2];                  /* pipe: a thread writes a byte per finished job */
    pthread_t *threads;
    unsigned n_threads;
} s_pool_t;

typedef struct {
    const so_worker_opts_t *o;
    so_backend_t *backend;
    s_pool_t *pool; /* NULL: execute in the loop */
    size_t n_jobs;  /* calls given to the pool and not yet answered */
    void *ctx, *sock;
    s_held_t *held; /* [capacity] */
    size_t n_held;
    int64_t gateway_expires; /* presume the gateway dead after this */
    int64_t next_heartbeat;
    int64_t next_stats;
    int reconnect_ms;
    int draining;
    /* counters */
    uint64_t calls, errors, rejected, send_failed, reconnects, over_capacity, queue_timeouts;
    uint64_t partials;
    uint64_t rejected_logged;
    int64_t rejected_log_at;
} s_worker_t;

void so_worker_opts_default(so_worker_opts_t *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->worker_id, sizeof o->worker_id, "worker-%s", so_instance());
    o->endpoint = "tcp://127.0.0.1:5556";
    o->capacity = 8;
    o->heartbeat_ms = 500;
    o->liveness = 3;
    o->reconnect_max_ms = 4000;
    o->drain_ms = 5000;
    o->stats_ms = 10000;
    so_wire_sockopts_defaults(&o->sockopts);
}

static int s_connect(s_worker_t *w)
{
    char err[256];
    so_sock_close(&w->sock);
    w->sock = so_sock_new(w->ctx, ZMQ_DEALER, &w->o->sockopts, w->o->endpoint, 0, 0, err,
                          sizeof err);
    if (!w->sock) {
        so_error("connect_failed", "endpoint=%s error=\"%s\"", w->o->endpoint, err);
        return -1;
    }
    if (so_ctl_send_ready(w->sock, NULL, w->o->capacity, w->o->worker_id, w->o->agents) != 0)
        so_warn("ready_failed", "error=\"%s\"", zmq_strerror(errno));
    int64_t now = so_now_ms();
    w->gateway_expires = now + (int64_t) w->o->heartbeat_ms * w->o->liveness;
    w->next_heartbeat = now + w->o->heartbeat_ms;
    return 0;
}

/* One rejected frame: counted always, logged at most once a second. */
static void s_rejected(s_worker_t *w, const char *what)
{
    w->rejected++;
    int64_t now = so_now_ms();
    if (now - w->rejected_log_at >= 1000) {
        so_warn("rejected", "error=\"%s\" rejected_total=%llu", what,
                (unsigned long long) w->rejected);
        w->rejected_log_at = now;
    }
}

static void s_build_result(const so_worker_opts_t *o, const so_pb_agent_call_t *call,
                           const so_exec_t *ex, double latency_s, so_pb_agent_result_t *res,
                           so_pb_error_t *e)
{
    res->request_id = call->request_id;
    res->agent_id = call->agent_id;
    res->text = ex->text ? ex->text : "";
    res->prompt_tokens = ex->prompt_tokens;
    res->completion_tokens = ex->completion_tokens;
    res->cost_usd = isfinite(ex->cost_usd) && ex->cost_usd > 0 ? ex->cost_usd : 0;
    res->latency_s = latency_s > 0 ? latency_s : 0;
    res->worker_id = (char *) o->worker_id;
    if (ex->has_score) {
        res->replay_score_opt_case =
            SKILLORCHESTRA__V1__AGENT_RESULT__REPLAY_SCORE_OPT_REPLAY_SCORE;
        res->replay_score = ex->score;
    }
    if (ex->error_code != SO_ERR(NONE)) {
        e->code = ex->error_code;
        e->message = (char *) ex->error;
        res->error = e;
    }
}

/* Answers one executed call: at once, or held back for the artificial
 * delay.  A result that fails validation (a backend bug, or peer bytes that
 * slipped through) is replaced by an INTERNAL error naming the problem, so
 * the gateway is never left waiting for its deadline. */
static void s_answer(s_worker_t *w, const so_pb_agent_call_t *call, so_exec_t *ex,
                     double latency_s, int64_t t0)
{
    char err[256];
    for (int pass = 0; pass < 2; pass++) {
        so_pb_agent_result_t res = SKILLORCHESTRA__V1__AGENT_RESULT__INIT;
        so_pb_error_t e = SKILLORCHESTRA__V1__ERROR__INIT;
        s_build_result(w->o, call, ex, latency_s, &res, &e);
        if (w->o->delay_ms > 0) {
            s_held_t *h = &w->held[w->n_held];
            if (so_wire_pack_zmq(SO_MSG_AGENT_RESULT, &res, &h->hdr, &h->body, err, sizeof err) ==
                0) {
                h->due = t0 + w->o->delay_ms;
                w->n_held++;
                break;
            }
        } else if (so_wire_send(w->sock, NULL, SO_MSG_AGENT_RESULT, &res, ZMQ_DONTWAIT, err,
                                sizeof err) == 0) {
            break;
        } else if (errno != EINVAL) {
            w->send_failed++;
            so_warn("send_failed", "request_id=%s error=\"%s\"", call->request_id, err);
            break;
        }
        so_error("invalid_result", "request_id=%s agent_id=%s error=\"%s\"", call->request_id,
                 call->agent_id, err);
        if (pass == 1)
            break;
        so_exec_clear(ex);
        memset(ex, 0, sizeof *ex);
        ex->error_code = SO_ERR(INTERNAL);
        snprintf(ex->error, sizeof ex->error, "the worker built an invalid AgentResult: %s", err);
    }
    w->calls++;
    if (ex->error_code != SO_ERR(NONE))
        w->errors++;
}

static void s_send_error(s_worker_t *w, const so_pb_agent_call_t *call, so_pb_error_code_t code,
                         const char *msg)
{
    so_exec_t ex;
    memset(&ex, 0, sizeof ex);
    ex.error_code = code;
    snprintf(ex.error, sizeof ex.error, "%s", msg);
    so_pb_agent_result_t res = SKILLORCHESTRA__V1__AGENT_RESULT__INIT;
    so_pb_error_t e = SKILLORCHESTRA__V1__ERROR__INIT;
    s_build_result(w->o, call, &ex, 0, &res, &e);
    char err[256];
    if (so_wire_send(w->sock, NULL, SO_MSG_AGENT_RESULT, &res, ZMQ_DONTWAIT, err, sizeof err) !=
        0)
        w->send_failed++;
    w->errors++;
}

/* ---- the pool ---------------------------------------------------------- */

static void s_job_free(s_job_t *j)
{
    so_exec_clear(&j->ex);
    so_wire_free(SO_MSG_AGENT_CALL, j->call);
    free(j);
}

/* The backend's delta sink on a pool thread: queues the delta for the loop
 * (which alone touches the socket) and wakes it. */
static int s_on_delta(void *arg, const char *delta, size_t len)
{
    s_job_t *j = arg;
    s_pool_t *p = j->pool;
    if (len == 0 || len > SO_WIRE_MAX_TEXT)
        return 0; /* the final result carries the text anyway */
    s_part_t *part = so_calloc(1, sizeof *part);
    char *text = so_malloc(len + 1);
    memcpy(text, delta, len);
    text[len] = '\0';
    part->job = j;
    part->text = text;
    pthread_mutex_lock(&p->mu);
    if (p->parts_tail)
        p->parts_tail->next = part;
    else
        p->parts = part;
    p->parts_tail = part;
    ssize_t wr = write(p->wake[1], "p", 1); /* a full pipe wakes the loop anyway */
    (void) wr;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static void s_parts_free(s_part_t *part)
{
    for (s_part_t *next; part; part = next) {
        next = part->next;
        free(part->text);
        free(part);
    }
}

/* Runs one job on a pool thread.  A job whose deadline passed while it
 * waited in the queue is not run: its caller has given up on it. */
static void s_run_job(so_backend_t *b, s_job_t *j)
{
    int64_t now = so_now_ms();
    if (j->deadline > 0 && now >= j->deadline) {
        memset(&j->ex, 0, sizeof j->ex);
        j->expired = 1;
        j->ex.error_code = SO_ERR(TIMEOUT);
        snprintf(j->ex.error, sizeof j->ex.error,
                 "waited %lld ms in the worker's queue, past the call's deadline "
                 "(all %s threads busy)",
                 (long long) (now - j->t0), b->name);
    } else {
        so_backend_execute_stream(b, j->call, j->deadline, j->call->stream ? s_on_delta : NULL, j,
                                  &j->ex);
    }
    j->latency_s = (double) (so_now_ms() - j->t0) / 1000.0;
}

static void *s_pool_main(void *arg)
{
    s_pool_t *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && !p->todo)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit)
            break;
        s_job_t *j = p->todo;
        p->todo = j->next;
        if (!p->todo)
            p->todo_tail = NULL;
        j->next = NULL;
        pthread_mutex_unlock(&p->mu);
        s_run_job(p->backend, j);
        pthread_mutex_lock(&p->mu);
        if (p->done_tail)
            p->done_tail->next = j;
        else
            p->done = j;
        p->done_tail = j;
        /* A full pipe already wakes the loop: the byte may be dropped. */
        ssize_t wr = write(p->wake[1], "j", 1);
        (void) wr;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void s_pool_destroy(s_pool_t **p_p);

/* Starts n threads; signals are blocked in them, so SIGTERM interrupts the
 * loop's poll rather than a thread's HTTP call. */
static s_pool_t *s_pool_new(so_backend_t *b, unsigned n, char *err, size_t errlen)
{
    s_pool_t *p = so_calloc(1, sizeof *p);
    p->backend = b;
    p->wake[0] = p->wake[1] = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = so_calloc(n, sizeof *p->threads);
    if (pipe(p->wake) != 0) {
        so_err(err, errlen, "pool set-up failed: %s", strerror(errno));
        s_pool_destroy(&p);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(p->wake[i], F_SETFL, fcntl(p->wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(p->wake[i], F_SETFD, FD_CLOEXEC);
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 0; i < n; i++) {
        int rc = pthread_create(&p->threads[i], NULL, s_pool_main, p);
        if (rc != 0) {
            snprintf(err, errlen, "pthread_create: %s", strerror(rc));
            break;
        }
        p->n_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->n_threads < n) {
        s_pool_destroy(&p);
        return NULL;
    }
    return p;
}

static void s_pool_submit(s_pool_t *p, s_job_t *j)
{
    pthread_mutex_lock(&p->mu);
    if (p->todo_tail)
        p->todo_tail->next = j;
    else
        p->todo = j;
    p->todo_tail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Detaches the queued deltas and the finished jobs (each FIFO) after
 * draining the pipe: a job's deltas are all in *parts when it is done. */
static s_job_t *s_pool_take_done(s_pool_t *p, s_part_t **parts)
{
    char buf[256];
    while (read(p->wake[0], buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&p->mu);
    s_job_t *j = p->done;
    p->done = p->done_tail = NULL;
    *parts = p->parts;
    p->parts = p->parts_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    return j;
}

/* Stops the threads after their current job (join: the caller cancels the
 * backend first when it cannot wait); returns the jobs never started. */
static s_job_t *s_pool_stop(s_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    p->n_threads = 0;
    s_job_t *j = p->todo;
    p->todo = p->todo_tail = NULL;
    return j;
}

static void s_pool_destroy(s_pool_t **p_p)
{
    s_pool_t *p = *p_p;
    if (!p)
        return;
    for (s_job_t *j = s_pool_stop(p), *next; j; j = next) {
        next = j->next;
        s_job_free(j);
    }
    for (s_job_t *j = p->done, *next; j; j = next) {
        next = j->next;
        s_job_free(j);
    }
    s_parts_free(p->parts);
    for (int i = 0; i < 2; i++)
        if (p->wake[i] >= 0)
            close(p->wake[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
    *p_p = NULL;
}

/* Sends one delta as a partial AgentResult (not delayed, not counted as a
 * call).  A delta that cannot be sent is dropped: the final result still
 * carries the whole text. */
static void s_send_partial(s_worker_t *w, const s_part_t *part)
{
    const so_pb_agent_call_t *call = part->job->call;
    so_pb_agent_result_t res = SKILLORCHESTRA__V1__AGENT_RESULT__INIT;
    res.request_id = call->request_id;
    res.agent_id = call->agent_id;
    res.text = part->text;
    res.worker_id = (char *) w->o->worker_id;
    res.partial = 1;
    char err[256];
    if (so_wire_send(w->sock, NULL, SO_MSG_AGENT_RESULT, &res, ZMQ_DONTWAIT, err, sizeof err) !=
        0) {
        w->send_failed++;
        so_debug("partial_send_failed", "request_id=%s error=\"%s\"", call->request_id, err);
        return;
    }
    w->partials++;
}

/* Sends the queued deltas, then answers the jobs the pool finished. */
static void s_collect(s_worker_t *w)
{
    s_part_t *parts = NULL;
    s_job_t *done = s_pool_take_done(w->pool, &parts);
    for (s_part_t *part = parts; part; part = part->next)
        s_send_partial(w, part);
    s_parts_free(parts);
    for (s_job_t *j = done, *next; j; j = next) {
        next = j->next;
        w->n_jobs--;
        w->queue_timeouts += (uint64_t) j->expired;
        s_answer(w, j->call, &j->ex, j->latency_s + w->o->delay_ms / 1000.0, j->t0);
        s_job_free(j);
    }
}

/* ---- calls ------------------------------------------------------------- */

/* Takes *msg_p when the pool keeps the call. */
static void s_on_call(s_worker_t *w, so_pb_agent_call_t **msg_p)
{
    const so_pb_agent_call_t *call = *msg_p;
    if (w->n_held + w->n_jobs >= w->o->capacity) {
        /* The gateway sent more than our capacity: answer now, do not queue. */
        w->over_capacity++;
        s_send_error(w, call, SO_ERR(UNAVAILABLE), "worker over capacity");
        return;
    }
    int64_t t0 = so_now_ms();
    int64_t deadline = call->deadline_ms > 0 ? t0 + (int64_t) call->deadline_ms : 0;
    if (w->pool) {
        s_job_t *j = so_calloc(1, sizeof *j);
        j->call = *msg_p;
        *msg_p = NULL;
        j->t0 = t0;
        j->deadline = deadline;
        j->pool = w->pool;
        w->n_jobs++;
        s_pool_submit(w->pool, j);
        return;
    }
    so_exec_t ex;
    so_backend_execute(w->backend, call, deadline, &ex);
    double latency = (double) (so_now_ms() - t0 + w->o->delay_ms) / 1000.0;
    s_answer(w, call, &ex, latency, t0);
    so_exec_clear(&ex);
}

/* Sends the held results that are due (all of them when force). */
static void s_flush_held(s_worker_t *w, int64_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < w->n_held; i++) {
        s_held_t *h = &w->held[i];
        if (h->due > now) {
            if (keep != i)
                w->held[keep] = *h;
            keep++;
            continue;
        }
        if (zmq_msg_send(&h->hdr, w->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_msg_send(&h->body, w->sock, ZMQ_DONTWAIT) < 0)
            w->send_failed++;
        zmq_msg_close(&h->hdr);
        zmq_msg_close(&h->body);
    }
    w->n_held = keep;
}

static void s_on_message(s_worker_t *w)
{
    char err[512];
    so_ctl_t ctl;
    so_msg_type_t type = SO_MSG_ANY;
    void *msg = NULL;
    int rc = so_sock_recv_mixed(w->sock, 0, NULL, &ctl, &type, &msg, err, sizeof err);
    if (rc < 0) {
        if (errno == EPROTO)
            s_rejected(w, err);
        return;
    }
    int64_t now = so_now_ms();
    w->gateway_expires = now + (int64_t) w->o->heartbeat_ms * w->o->liveness;
    w->reconnect_ms = w->o->heartbeat_ms;
    if (rc == 1) {
        if (ctl.cmd == SO_CTL_DISCONNECT && !w->draining) {
            /* The gateway does not know us (it restarted, or dropped us). */
            so_info("reregister", "endpoint=%s", w->o->endpoint);
            so_ctl_send_ready(w->sock, NULL, w->o->capacity, w->o->worker_id, w->o->agents);
        } else if (ctl.cmd == SO_CTL_READY) {
            s_rejected(w, "READY from the gateway");
        }
        return;
    }
    if (type != SO_MSG_AGENT_CALL) {
        snprintf(err, sizeof err, "expected AgentCall, got %s", so_wire_type_name(type));
        s_rejected(w, err);
    } else {
        so_pb_agent_call_t *call = msg;
        s_on_call(w, &call);
        msg = call;
    }
    so_wire_free(type, msg);
}

static void s_timers(s_worker_t *w, int64_t now)
{
    s_flush_held(w, now);
    if (now >= w->next_heartbeat) {
        so_ctl_send(w->sock, NULL, SO_CTL_HEARTBEAT, 0, NULL);
        w->next_heartbeat = now + w->o->heartbeat_ms;
    }
    if (!w->draining && now >= w->gateway_expires) {
        w->reconnects++;
        so_warn("gateway_silent", "endpoint=%s silent_ms=%d reconnect_in_ms=%d", w->o->endpoint,
                w->o->heartbeat_ms * w->o->liveness, w->reconnect_ms);
        /* Back off: the gateway may be restarting. */
        zmq_poll(NULL, 0, w->reconnect_ms);
        w->reconnect_ms = w->reconnect_ms * 2 > w->o->reconnect_max_ms ? w->o->reconnect_max_ms
                                                                       : w->reconnect_ms * 2;
        s_connect(w);
    }
    if (w->o->stats_ms > 0 && now >= w->next_stats) {
        so_info("stats",
                "calls=%llu errors=%llu running=%zu held=%zu rejected=%llu "
                "send_failed=%llu reconnects=%llu over_capacity=%llu queue_timeouts=%llu",
                (unsigned long long) w->calls, (unsigned long long) w->errors, w->n_jobs,
                w->n_held, (unsigned long long) w->rejected, (unsigned long long) w->send_failed,
                (unsigned long long) w->reconnects, (unsigned long long) w->over_capacity,
                (unsigned long long) w->queue_timeouts);
        if (w->backend->log_stats)
            w->backend->log_stats(w->backend->self);
        w->next_stats = now + w->o->stats_ms;
    }
}

static int64_t s_next_timer(const s_worker_t *w)
{
    int64_t t = w->next_heartbeat;
    if (!w->draining && w->gateway_expires < t)
        t = w->gateway_expires;
    for (size_t i = 0; i < w->n_held; i++)
        if (w->held[i].due < t)
            t = w->held[i].due;
    return t;
}

/* Stopping with calls still on the pool: cancel them (the backend makes
 * them return soon), join the threads and answer every call, so the
 * gateway can re-route at once instead of waiting for a deadline. */
static void s_pool_finish(s_worker_t *w)
{
    if (w->n_jobs > 0 && w->backend->cancel) {
        so_info("cancelling", "running=%zu", w->n_jobs);
        w->backend->cancel(w->backend->self);
    }
    s_job_t *never = s_pool_stop(w->pool);
    s_collect(w);
    for (s_job_t *j = never, *next; j; j = next) {
        next = j->next;
        w->n_jobs--;
        s_send_error(w, j->call, SO_ERR(UNAVAILABLE), "worker stopping: call not started");
        s_job_free(j);
    }
}

int so_worker_run(const so_worker_opts_t *o, so_backend_t *backend)
{
    s_worker_t w;
    memset(&w, 0, sizeof w);
    w.o = o;
    w.backend = backend;
    w.reconnect_ms = o->heartbeat_ms;
    if (o->threads > 0 && !backend->thread_safe) {
        so_error("config",
                 "error=\"threads: the %s backend runs in the loop only (threads = 0)\"",
                 backend->name);
        return 1;
    }
    char err[256];
    if (o->threads > 0 && !(w.pool = s_pool_new(backend, o->threads, err, sizeof err))) {
        so_error("pool_failed", "threads=%u error=\"%s\"", o->threads, err);
        return 1;
    }
    w.held = so_calloc(o->capacity, sizeof *w.held);
    w.ctx = zmq_ctx_new();
    if (!w.ctx || s_connect(&w) != 0) {
        free(w.held);
        if (w.ctx)
            zmq_ctx_term(w.ctx);
        s_pool_destroy(&w.pool);
        return 1;
    }
    so_info("start",
            "worker_id=%s endpoint=%s backend=%s capacity=%u threads=%u delay_ms=%d "
            "heartbeat_ms=%d",
            o->worker_id, o->endpoint, backend->name, o->capacity, o->threads, o->delay_ms,
            o->heartbeat_ms);
    w.next_stats = so_now_ms() + o->stats_ms;

    int64_t drain_until = 0;
    for (;;) {
        int64_t now = so_now_ms();
        if (so_stopping() && !w.draining) {
            /* Tell the gateway to send nothing more; what runs or is held still goes out. */
            w.draining = 1;
            drain_until = now + o->drain_ms;
            so_ctl_send(w.sock, NULL, SO_CTL_DISCONNECT, 0, NULL);
            so_info("draining", "running=%zu held=%zu drain_ms=%d", w.n_jobs, w.n_held,
                    o->drain_ms);
        }
        if (w.draining && ((w.n_held == 0 && w.n_jobs == 0) || now >= drain_until))
            break;
        int64_t next = s_next_timer(&w);
        if (w.draining && drain_until < next)
            next = drain_until;
        long timeout = next > now ? (long) (next - now) : 0;
        zmq_pollitem_t items[2] = { { w.sock, 0, ZMQ_POLLIN, 0 },
                                    { NULL, w.pool ? w.pool->wake[0] : -1, ZMQ_POLLIN, 0 } };
        int rc = zmq_poll(items, w.pool ? 2 : 1, timeout);
        if (rc < 0 && errno != EINTR) {
            so_error("poll_failed", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
            for (int i = 0; i < 256; i++) {
                int ev = 0;
                size_t len = sizeof ev;
                if (zmq_getsockopt(w.sock, ZMQ_EVENTS, &ev, &len) != 0 || !(ev & ZMQ_POLLIN))
                    break;
                s_on_message(&w);
            }
        if (w.pool)
            s_collect(&w);
        s_timers(&w, so_now_ms());
    }
    if (w.pool) {
        s_pool_finish(&w);
        s_pool_destroy(&w.pool);
    }
    /* Anything still held past the drain deadline is dropped: the gateway
     * re-dispatches it once our heartbeats stop. */
    for (size_t i = 0; i < w.n_held; i++) {
        zmq_msg_close(&w.held[i].hdr);
        zmq_msg_close(&w.held[i].body);
    }
    so_info("stop", "calls=%llu errors=%llu dropped_held=%zu rejected=%llu",
            (unsigned long long) w.calls, (unsigned long long) w.errors, w.n_held,
            (unsigned long long) w.rejected);
    free(w.held);
    so_sock_close(&w.sock);
    zmq_ctx_term(w.ctx);
    return 0;
}
