/*
 * so_recorder — see so_recorder.h.
 *
 * The pipe carries two kinds of message:
 *   loop → thread   "T" episode_id version packed-TurnRecord final(1 byte)
 *                   "Q"  (flush what is queued, then exit)
 *   thread → loop   "V" version   (the current handbook version changed)
 * The thread keeps what it could not write yet in a FIFO and retries it
 * every retry_ms while Redis is unreachable.
 */
#include "so_recorder.h"

#include "base/so_alloc.h"
#include "base/so_svc.h"
#include "store/so_hbwatch.h"
#include "store/so_store.h"
#include "wire/so_wire.h"

#include <czmq.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_RETRY_MS 500

typedef struct {
    char episode_id[SO_WIRE_MAX_ID + 1];
    char version[SO_WIRE_MAX_ID + 1];
    so_pb_turn_record_t *record; /* unpacked copy */
    int final;
} s_item_t;

struct so_recorder {
    so_recorder_opts_t o;
    char *redis_url, *prefix;
    void *loop_end, *thread_end; /* inproc PAIR */
    pthread_t thread;
    int started;
    /* written by the thread, read by anyone */
    uint64_t pushed, logged, dropped, retries, backlog, redis_up;
};

static void s_add(uint64_t *c, uint64_t n)
{
    __atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

static void s_set(uint64_t *c, uint64_t v)
{
    __atomic_store_n(c, v, __ATOMIC_RELAXED);
}

void so_recorder_opts_default(so_recorder_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->redis_url = "redis://127.0.0.1:6379";
    o->prefix = "so:";
    o->timeout_ms = 500;
    o->version_refresh_ms = 1000;
    o->pending_ttl_s = 86400;
    o->max_backlog = 100000;
    o->flush_ms = 3000;
}

static void s_item_free(s_item_t **p)
{
    if (p && *p) {
        if ((*p)->record)
            skillorchestra__v1__turn_record__free_unpacked((*p)->record, NULL);
        free(*p);
        *p = NULL;
    }
}

/* ---- The thread -------------------------------------------------------- */

typedef struct {
    so_recorder_t *r;
    so_store_t *store;
    so_hbwatch_t *watch; /* the current version, polled on store */
    zlistx_t *queue;     /* s_item_t*, oldest first */
    int64_t next_version_poll, retry_at;
    int quitting;
    int64_t quit_by;
} s_thread_t;

/* Writes one item.  0 done (or given up: counted), -1 Redis unreachable. */
static int s_write(s_thread_t *t, s_item_t *it)
{
    so_recorder_t *r = t->r;
    char err[512];
    int scored = it->record->score_opt_case == SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE;
    if (it->final && scored && it->record->turn_index == 0) {
        /* A one-turn episode: its outcome is its turn's score, nothing to collect. */
        so_pb_episode_outcome_t ep = SKILLORCHESTRA__V1__EPISODE_OUTCOME__INIT;
        so_pb_turn_record_t *one = it->record;
        ep.episode_id = it->episode_id;
        ep.handbook_version = it->version;
        ep.result_case = SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SCORE;
        ep.score = one->score;
        ep.turns = &one;
        ep.n_turns = 1;
        ep.finished_unix_ms = (uint64_t) so_wall_ms();
        if (so_store_log_episode(t->store, &ep, err, sizeof err) < 0)
            goto failed;
        s_add(&r->logged, 1);
        return 0;
    }
    if (so_store_push_turn_ex(t->store, it->episode_id, it->version, it->record,
                              r->o.pending_ttl_s, err, sizeof err) < 0)
        goto failed;
    s_add(&r->pushed, 1);
    if (!(it->final && scored))
        return 0;
    /* The last turn of a scored episode: log the outcome of all its turns
     * (mean of their scores) and drop the pending list, atomically. */
    int rc = so_store_finish_episode(t->store, it->episode_id, 0, 0, NAN, it->version, err,
                                     sizeof err);
    if (rc < 0)
        goto failed;
    if (rc == 0) {
        snprintf(err, sizeof err, "no pending turns after pushing the final one");
        goto rejected;
    }
    s_add(&r->logged, 1);
    return 0;

failed:
    if (so_store_io_error(t->store)) {
        s_add(&r->retries, 1);
        if (__atomic_load_n(&r->redis_up, __ATOMIC_RELAXED))
            so_warn("redis_unreachable", "error=\"%s\" backlog=%zu", err, zlistx_size(t->queue));
        s_set(&r->redis_up, 0);
        return -1;
    }
rejected:
    so_warn("record_rejected", "episode_id=%s error=\"%s\"", it->episode_id, err);
    s_add(&r->dropped, 1);
    return 0;
}

static void s_drain_queue(s_thread_t *t, int64_t now)
{
    if (now < t->retry_at)
        return;
    s_item_t *it;
    while ((it = zlistx_first(t->queue))) {
        if (s_write(t, it) < 0) {
            t->retry_at = now + S_RETRY_MS;
            break;
        }
        if (!__atomic_load_n(&t->r->redis_up, __ATOMIC_RELAXED)) {
            so_info("redis_back", "backlog=%zu", zlistx_size(t->queue) - 1);
            s_set(&t->r->redis_up, 1);
        }
        zlistx_delete(t->queue, NULL);
    }
    s_set(&t->r->backlog, zlistx_size(t->queue));
}

static void s_poll_version(s_thread_t *t, int64_t now)
{
    if (!t->watch) {
        so_hbwatch_opts_t o;
        so_hbwatch_opts_default(&o);
        o.store = t->store;
        o.refresh_ms = t->r->o.version_refresh_ms;
        o.backoff_max_ms = o.refresh_ms;
        o.log = 0; /* outages are the recorder's to log */
        t->watch = so_hbwatch_new(&o);
    }
    int changed = 0;
    t->next_version_poll = now + so_hbwatch_tick(t->watch, &changed);
    const char *v = so_hbwatch_current(t->watch);
    if (!changed || !v[0])
        return;
    zmq_send(t->r->thread_end, "V", 1, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(t->r->thread_end, v, strlen(v), ZMQ_DONTWAIT);
}

/* Reads one message from the loop.  Returns 1 on "Q". */
static int s_on_pipe(s_thread_t *t)
{
    zmq_msg_t f[5];
    int n = 0, more = 1;
    while (more && n < 5) {
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], t->r->thread_end, 0) < 0) {
            zmq_msg_close(&f[n]);
            break;
        }
        more = zmq_msg_more(&f[n]);
        n++;
    }
    int quit = 0;
    const char *kind = n > 0 ? zmq_msg_data(&f[0]) : "";
    if (n == 1 && zmq_msg_size(&f[0]) == 1 && *kind == 'Q') {
        quit = 1;
    } else if (n == 5 && zmq_msg_size(&f[0]) == 1 && *kind == 'T') {
        s_item_t *it = so_calloc(1, sizeof *it);
        size_t le = zmq_msg_size(&f[1]), lv = zmq_msg_size(&f[2]);
        if (le <= SO_WIRE_MAX_ID && lv <= SO_WIRE_MAX_ID) {
            memcpy(it->episode_id, zmq_msg_data(&f[1]), le);
            memcpy(it->version, zmq_msg_data(&f[2]), lv);
            it->record = skillorchestra__v1__turn_record__unpack(NULL, zmq_msg_size(&f[3]),
                                                                 zmq_msg_data(&f[3]));
            it->final = zmq_msg_size(&f[4]) == 1 && *(char *) zmq_msg_data(&f[4]) == 1;
        }
        if (it->record && zlistx_size(t->queue) < t->r->o.max_backlog) {
            zlistx_add_end(t->queue, it);
        } else {
            s_add(&t->r->dropped, 1);
            s_item_free(&it);
        }
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return quit;
}

static void *s_thread(void *arg)
{
    so_recorder_t *r = arg;
    s_thread_t t;
    memset(&t, 0, sizeof t);
    t.r = r;
    t.queue = zlistx_new();
    zlistx_set_destructor(t.queue, (zlistx_destructor_fn *) s_item_free);
    char err[256];
    s_set(&r->redis_up, 1);
    for (;;) {
        int64_t now = so_now_ms();
        if (!t.store && now >= t.retry_at) {
            /* Redis may come up after the gateway: keep trying. */
            t.store = so_store_connect(r->redis_url, r->prefix, r->o.timeout_ms, err, sizeof err);
            if (!t.store) {
                if (__atomic_load_n(&r->redis_up, __ATOMIC_RELAXED))
                    so_warn("redis_unreachable", "redis=%s error=\"%s\"", r->redis_url, err);
                s_set(&r->redis_up, 0);
                t.retry_at = now + S_RETRY_MS;
            } else if (!__atomic_load_n(&r->redis_up, __ATOMIC_RELAXED)) {
                so_info("redis_back", "redis=%s", r->redis_url);
                s_set(&r->redis_up, 1);
            }
        }
        if (t.store) {
            s_drain_queue(&t, now);
            if (!t.quitting)
                s_poll_version(&t, now);
        }
        if (t.quitting && (zlistx_size(t.queue) == 0 || now >= t.quit_by))
            break;
        int64_t next = t.store ? t.next_version_poll : t.retry_at;
        if (zlistx_size(t.queue) > 0 && t.retry_at < next)
            next = t.retry_at;
        long timeout = next > now ? (long) (next - now) : 0;
        if (t.quitting && timeout > 50)
            timeout = 50;
        zmq_pollitem_t item = { r->thread_end, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll(&item, 1, timeout);
        if (rc < 0 && errno == ETERM)
            break;
        if (rc > 0)
            for (int i = 0; i < 1000; i++) {
                int ev = 0;
                size_t len = sizeof ev;
                if (zmq_getsockopt(r->thread_end, ZMQ_EVENTS, &ev, &len) != 0 ||
                    !(ev & ZMQ_POLLIN))
                    break;
                if (s_on_pipe(&t) && !t.quitting) {
                    t.quitting = 1;
                    t.quit_by = so_now_ms() + r->o.flush_ms;
                    t.retry_at = 0;
                }
            }
    }
    size_t lost = zlistx_size(t.queue);
    if (lost > 0) {
        so_warn("recorder_unflushed", "items=%zu", lost);
        s_add(&r->dropped, lost);
    }
    zlistx_destroy(&t.queue);
    so_hbwatch_destroy(&t.watch); /* borrows t.store */
    so_store_destroy(&t.store);
    return NULL;
}

/* ---- The loop's side --------------------------------------------------- */

so_recorder_t *so_recorder_new(void *ctx, const so_recorder_opts_t *o, char *err, size_t errlen)
{
    so_recorder_t *r = so_calloc(1, sizeof *r);
    r->o = *o;
    r->redis_url = so_strdup(o->redis_url ? o->redis_url : "redis://127.0.0.1:6379");
    r->prefix = so_strdup(o->prefix ? o->prefix : "so:");
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://so-recorder-%p", (void *) r);
    r->loop_end = zmq_socket(ctx, ZMQ_PAIR);
    r->thread_end = zmq_socket(ctx, ZMQ_PAIR);
    int hwm = (int) (o->max_backlog < 1000000 ? o->max_backlog : 1000000), linger = 0;
    if (!r->loop_end || !r->thread_end ||
        zmq_setsockopt(r->loop_end, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(r->thread_end, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(r->loop_end, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(r->thread_end, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(r->thread_end, endpoint) || zmq_connect(r->loop_end, endpoint)) {
        snprintf(err, errlen, "recorder pipe: %s", zmq_strerror(errno));
        so_recorder_destroy(&r);
        return NULL;
    }
    if (pthread_create(&r->thread, NULL, s_thread, r) != 0) {
        snprintf(err, errlen, "recorder thread: %s", strerror(errno));
        so_recorder_destroy(&r);
        return NULL;
    }
    r->started = 1;
    return r;
}

void so_recorder_destroy(so_recorder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_recorder_t *r = *self_p;
    if (r->started) {
        zmq_send(r->loop_end, "Q", 1, 0);
        pthread_join(r->thread, NULL);
    }
    if (r->loop_end)
        zmq_close(r->loop_end);
    if (r->thread_end)
        zmq_close(r->thread_end);
    free(r->redis_url);
    free(r->prefix);
    free(r);
    *self_p = NULL;
}

void *so_recorder_socket(so_recorder_t *r)
{
    return r->loop_end;
}

int so_recorder_recv(so_recorder_t *r, char *buf, size_t len)
{
    char kind = 0;
    int more = 0;
    size_t ml = sizeof more;
    if (zmq_recv(r->loop_end, &kind, 1, ZMQ_DONTWAIT) < 0)
        return 0;
    zmq_getsockopt(r->loop_end, ZMQ_RCVMORE, &more, &ml);
    if (!more)
        return 0;
    int n = zmq_recv(r->loop_end, buf, len - 1, ZMQ_DONTWAIT);
    if (n < 0 || kind != 'V')
        return 0;
    buf[(size_t) n < len - 1 ? (size_t) n : len - 1] = '\0';
    return 1;
}

int so_recorder_turn(so_recorder_t *r, const char *episode_id, const char *version,
                     const so_pb_turn_record_t *tr, int final)
{
    size_t len = protobuf_c_message_get_packed_size(&tr->base);
    uint8_t *buf = so_malloc(len);
    protobuf_c_message_pack(&tr->base, buf);
    char f = final ? 1 : 0;
    int rc = 0;
    if (zmq_send(r->loop_end, "T", 1, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        rc = -1; /* nothing queued yet: the pipe is full */
    else {
        /* The first frame is in: the rest of an inproc multipart message
         * cannot fail on the high-water mark. */
        zmq_send(r->loop_end, episode_id, strlen(episode_id), ZMQ_SNDMORE);
        zmq_send(r->loop_end, version, strlen(version), ZMQ_SNDMORE);
        zmq_send(r->loop_end, buf, len, ZMQ_SNDMORE);
        zmq_send(r->loop_end, &f, 1, 0);
    }
    free(buf);
    if (rc < 0)
        s_add(&r->dropped, 1);
    return rc;
}

void so_recorder_stats(so_recorder_t *r, so_recorder_stats_t *out)
{
    out->pushed = __atomic_load_n(&r->pushed, __ATOMIC_RELAXED);
    out->logged = __atomic_load_n(&r->logged, __ATOMIC_RELAXED);
    out->dropped = __atomic_load_n(&r->dropped, __ATOMIC_RELAXED);
    out->retries = __atomic_load_n(&r->retries, __ATOMIC_RELAXED);
    out->backlog = __atomic_load_n(&r->backlog, __ATOMIC_RELAXED);
    out->redis_up = __atomic_load_n(&r->redis_up, __ATOMIC_RELAXED);
}
