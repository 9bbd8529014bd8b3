/*
 * so_admin — the endpoints of so-http other than chat completions (see
 * so_httpd_conn.h): GET /v1/models, GET /v1/handbook, POST /v1/feedback,
 * /healthz, /readyz and /metrics.  It owns the pool of Redis connections
 * (struct so_httpd's stores) and the ring of episodes answered here just
 * now (recent), both under the server's mu.
 */
#include "so_httpd_conn.h"
#include "base/so_alloc.h"
#include "base/so_svc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Readiness, health, metrics, models -------------------------------- */

void so_admin_readiness(so_httpd_t *h, so_httpd_ready_t *r)
{
    so_watch_status(h->watch, &r->redis);
    so_gwclient_stats(h->gw, &r->gw);
    r->now = so_now_ms();
    r->ready = !atomic_load(&h->draining) && r->gw.peers > 0 && r->redis.redis_up &&
               r->now - r->redis.last_ok_ms <= h->o.ready_max_age_ms && r->redis.version[0];
}

enum MHD_Result so_admin_readyz(so_hconn_t *c)
{
    so_httpd_ready_t r;
    so_admin_readiness(c->h, &r);
    json_t *gw = json_pack("{s:i,s:o}", "connected", r.gw.peers, "last_reply_ms_ago",
                           r.gw.last_reply_ms ? json_integer(r.now - r.gw.last_reply_ms)
                                              : json_null());
    json_t *redis = json_pack("{s:b,s:o}", "up", r.redis.redis_up, "last_ok_ms_ago",
                              r.redis.last_ok_ms ? json_integer(r.now - r.redis.last_ok_ms)
                                                 : json_null());
    json_t *root = json_pack("{s:b,s:b,s:o,s:o,s:o}", "ready", r.ready, "draining",
                             atomic_load(&c->h->draining), "gateway", gw, "redis", redis,
                             "handbook_version",
                             r.redis.version[0] ? json_string(r.redis.version) : json_null());
    return so_reply_json(c, r.ready ? 200 : 503, root);
}

enum MHD_Result so_admin_healthz(so_hconn_t *c)
{
    return so_reply_json(c, 200, json_pack("{s:s}", "status", "ok"));
}

enum MHD_Result so_admin_metrics(so_hconn_t *c)
{
    so_httpd_t *h = c->h;
    so_httpd_ready_t r;
    so_admin_readiness(h, &r);
    so_counters_gauges_t g = {
        .inflight = atomic_load(&h->inflight),
        .gateway_peers = r.gw.peers,
        .redis_up = r.redis.redis_up,
        .ready = r.ready,
        .draining = atomic_load(&h->draining),
        .handbook_version = r.redis.version,
        .gw_sent = r.gw.sent,
        .gw_replies = r.gw.replies,
        .gw_stray = r.gw.stray,
        .gw_rejected = r.gw.rejected,
    };
    char *s = so_counters_render(h->counters, &g);
    return so_reply_answer(c, 200, "text/plain; version=0.0.4", s, s ? strlen(s) : 0, NULL);
}

static json_t *s_model_entry(const char *id, const char *owner)
{
    return json_pack("{s:s,s:s,s:i,s:s}", "id", id, "object", "model", "created", 0, "owned_by",
                     owner);
}

enum MHD_Result so_admin_models(so_hconn_t *c)
{
    so_httpd_t *h = c->h;
    json_t *data = json_array();
    json_array_append_new(data, s_model_entry("auto", "skillorchestra"));
    for (size_t i = 0; i < h->n_profiles; i++)
        json_array_append_new(data, s_model_entry(h->profiles[i], "skillorchestra"));
    so_watch_agent_t *a = NULL;
    size_t n = 0;
    char version[SO_HTTPD_ID_MAX] = "";
    if (so_watch_agents(h->watch, version, sizeof version, &a, &n) == 0)
        for (size_t i = 0; i < n; i++) {
            json_t *m = s_model_entry(a[i].id, "skillorchestra-agent");
            json_object_set_new(m, "skillorchestra",
                                json_pack("{s:s,s:s,s:f,s:f,s:I,s:b}", "handbook_version",
                                          version, "model", a[i].model, "price_in_per_1m",
                                          a[i].price_in, "price_out_per_1m", a[i].price_out,
                                          "context_limit", (json_int_t) a[i].context_limit,
                                          "available", a[i].available));
            json_array_append_new(data, m);
        }
    free(a);
    if (!c->model_id[0])
        return so_reply_json(c, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
    /* GET /v1/models/{id}: the entry of that id. */
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m) {
        if (strcmp(json_string_value(json_object_get(m, "id")), c->model_id) == 0) {
            json_incref(m);
            json_decref(data);
            return so_reply_json(c, 200, m);
        }
    }
    json_decref(data);
    so_oai_error_t e;
    so_oai_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                "The model '%s' does not exist (GET /v1/models lists them)", c->model_id);
    return so_reply_error(c, &e);
}

/* ---- Redis connections and the handbook -------------------------------- */

static so_store_t *s_store_get(so_httpd_t *h, char *err, size_t errlen)
{
    so_store_t *s = NULL;
    pthread_mutex_lock(&h->mu);
    if (h->n_stores > 0)
        s = h->stores[--h->n_stores];
    pthread_mutex_unlock(&h->mu);
    if (!s)
        s = so_store_connect(h->redis_url, h->redis_prefix, h->o.redis_timeout_ms, err, errlen);
    return s;
}

static void s_store_put(so_httpd_t *h, so_store_t *s)
{
    pthread_mutex_lock(&h->mu);
    if (h->n_stores < h->cap_stores) {
        h->stores[h->n_stores++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&h->mu);
    so_store_destroy(&s);
}

/* The ?version= of a handbook request ("" = the current one); -1 when it
 * was refused (answered in *ret). */
static int s_handbook_want(so_hconn_t *c, char *version, size_t len, enum MHD_Result *ret)
{
    const char *want = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "version");
    if (!want || !*want)
        return 0;
    size_t n = strlen(want);
    int ok = n <= SO_WIRE_MAX_ID;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char) want[i] >= 0x20 && want[i] != 0x7f;
    if (!ok) {
        so_oai_error_t e;
        so_oai_fail(&e, 400, "invalid_request_error", "invalid_request", "version",
                    "version: at most %d bytes, no control characters", SO_WIRE_MAX_ID);
        so_counters_reject(c->h->counters, SO_REJ_INVALID_REQUEST);
        *ret = so_reply_error(c, &e);
        return -1;
    }
    snprintf(version, len, "%s", want);
    return 0;
}

enum MHD_Result so_admin_handbook(so_hconn_t *c)
{
    so_httpd_t *h = c->h;
    char err[512], version[SO_HTTPD_ID_MAX] = "";
    enum MHD_Result ret;
    if (s_handbook_want(c, version, sizeof version, &ret) < 0)
        return ret;
    so_store_t *s = s_store_get(h, err, sizeof err);
    if (!s)
        return so_reply_redis_down(c, err);
    if (!version[0] &&
        so_store_current_version(s, version, sizeof version, err, sizeof err) < 0) {
        int io = so_store_io_error(s);
        s_store_put(h, s);
        if (io)
            return so_reply_redis_down(c, err);
        so_oai_error_t e;
        so_oai_fail(&e, 404, "invalid_request_error", "unknown_handbook", NULL,
                    "no handbook has been published yet");
        return so_reply_error(c, &e);
    }
    char *json = NULL;
    size_t len = 0;
    int found = so_store_get_handbook_json(s, version, &json, &len, err, sizeof err);
    if (found < 0 && so_store_io_error(s)) {
        so_store_destroy(&s); /* a broken connection: do not keep it */
        return so_reply_redis_down(c, err);
    }
    s_store_put(h, s);
    if (found > 0)
        return so_reply_answer(c, 200, "application/json", json, len, "X-SO-Handbook-Version",
                               version, NULL);
    so_oai_error_t e;
    if (found == 0)
        so_oai_fail(&e, 404, "invalid_request_error", "unknown_handbook", "version",
                    "handbook version '%s' is not in Redis", version);
    else
        so_oai_fail(&e, 500, "server_error", "internal_error", NULL, "%s", err);
    return so_reply_error(c, &e);
}

/* ---- Feedback ---------------------------------------------------------- */

void so_admin_recent_add(so_httpd_t *h, const char *episode)
{
    pthread_mutex_lock(&h->mu);
    so_httpd_recent_t *r = &h->recent[h->recent_next++ % SO_HTTPD_RECENT];
    snprintf(r->id, sizeof r->id, "%s", episode);
    r->at = so_now_ms();
    pthread_mutex_unlock(&h->mu);
}

/* When this process answered a turn of the episode (0 = not recently). */
static int64_t s_recent_at(so_httpd_t *h, const char *episode)
{
    int64_t at = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < SO_HTTPD_RECENT; i++)
        if (h->recent[i].at > at && strcmp(h->recent[i].id, episode) == 0)
            at = h->recent[i].at;
    pthread_mutex_unlock(&h->mu);
    return at;
}

enum MHD_Result so_admin_feedback(so_hconn_t *c)
{
    so_httpd_t *h = c->h;
    so_oai_feedback_t fb;
    so_oai_error_t e;
    if (so_oai_parse_feedback(c->body, c->len, &fb, &e) < 0) {
        so_counters_reject(h->counters, strcmp(e.code ? e.code : "", "invalid_json") == 0
                                            ? SO_REJ_INVALID_JSON
                                            : SO_REJ_INVALID_REQUEST);
        so_counters_feedback(h->counters, SO_FB_INVALID);
        return so_reply_error(c, &e);
    }
    snprintf(c->episode, sizeof c->episode, "%s", fb.episode_id);
    char err[512];
    so_store_t *s = s_store_get(h, err, sizeof err);
    if (!s) {
        so_counters_feedback(h->counters, SO_FB_ERROR);
        return so_reply_redis_down(c, err);
    }
    /* The gateway records a turn after answering it, off its request path:
     * feedback sent right after an answer from here may beat it to Redis. */
    int64_t answered = s_recent_at(h, fb.episode_id);
    int rc;
    for (;;) {
        rc = so_store_finish_episode(s, fb.episode_id, fb.has_success, fb.success,
                                     fb.has_success ? NAN : fb.score, NULL, err, sizeof err);
        if (rc != 0 || !answered || so_now_ms() >= answered + h->o.feedback_wait_ms)
            break;
        usleep(20000);
    }
    int io = rc < 0 && so_store_io_error(s);
    if (io)
        so_store_destroy(&s);
    else
        s_store_put(h, s);
    if (rc < 0) {
        so_counters_feedback(h->counters, SO_FB_ERROR);
        if (io)
            return so_reply_redis_down(c, err);
        so_oai_fail(&e, 500, "server_error", "internal_error", NULL, "%s", err);
        return so_reply_error(c, &e);
    }
    if (rc == 0) {
        so_counters_feedback(h->counters, SO_FB_NOT_FOUND);
        so_oai_fail(&e, 404, "invalid_request_error", "episode_not_found", "episode_id",
                    "episode '%s' has no pending turns (unknown, already finished, or expired)",
                    fb.episode_id);
        return so_reply_error(c, &e);
    }
    so_counters_feedback(h->counters, SO_FB_LOGGED);
    json_t *outcome = fb.has_success ? json_pack("{s:b}", "success", fb.success)
                                     : json_pack("{s:f}", "score", fb.score);
    return so_reply_json(c, 200,
                         json_pack("{s:s,s:s,s:s,s:o}", "object", "feedback", "episode_id",
                                   fb.episode_id, "status", "logged", "outcome", outcome));
}
