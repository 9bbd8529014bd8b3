/*
 * so_chat — POST /v1/chat/completions (see so_httpd_conn.h): the body
 * parsed into a TurnRequest, the model resolved, the connection suspended
 * and the turn handed to the gateway client; then the whole answer, or an
 * incremental SSE stream fed by the client's partial replies.  A request's
 * stream state (out, suspended, ended, ...) lives in its so_hconn_t under
 * smu, shared with the gateway client's thread.
 */
#include "so_httpd_conn.h"
#include "base/so_svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- The stream --------------------------------------------------------- */

/* Resumes the connection if it is suspended (under smu). */
static void s_wake(so_hconn_t *c)
{
    if (c->suspended) {
        c->suspended = 0;
        MHD_resume_connection(c->conn);
    }
}

/* The call ended (gateway client's thread). */
static void s_resume(void *arg)
{
    so_hconn_t *c = arg;
    pthread_mutex_lock(&c->smu);
    c->ended = 1;
    s_wake(c);
    pthread_mutex_unlock(&c->smu);
}

/* Appends s (taken; NULL = it could not be built, dropped) to the stream
 * (under smu). */
static void s_out_add(so_hconn_t *c, char *s)
{
    if (!s)
        return;
    so_buf_puts(&c->out, s);
    free(s);
}

/* A partial reply (gateway client's thread): the first one fixes the
 * stream's headers and sends the role chunk; each is one content chunk. */
static void s_partial(void *arg, const so_pb_turn_reply_t *rep)
{
    so_hconn_t *c = arg;
    const char *text = rep->text ? rep->text : "";
    pthread_mutex_lock(&c->smu);
    if (!c->streaming) {
        const so_pb_routing_decision_t *d = rep->decision;
        const char *agent = rep->result ? rep->result->agent_id : "";
        snprintf(c->agent, sizeof c->agent, "%s", agent);
        if (rep->episode_id && *rep->episode_id)
            snprintf(c->episode, sizeof c->episode, "%s", rep->episode_id);
        snprintf(c->s_id, sizeof c->s_id, "chatcmpl-%s", c->rid);
        c->s_created = (int64_t) time(NULL);
        if (d) {
            so_watch_model(c->h->watch, d->handbook_version, agent, c->s_model,
                           sizeof c->s_model);
            snprintf(c->s_version, sizeof c->s_version, "%s", d->handbook_version);
            snprintf(c->s_turn, sizeof c->s_turn, "%u", d->turn_index);
        }
        so_oai_top_skills_header(rep, c->s_top, sizeof c->s_top);
        s_out_add(c, so_oai_sse_head(rep, c->s_id, c->s_created, c->s_model));
        c->streaming = 1;
    }
    if (*text) {
        s_out_add(c, so_oai_sse_delta(rep, c->s_id, c->s_created, c->s_model, text));
        c->sent_text += strlen(text);
    }
    s_wake(c);
    pthread_mutex_unlock(&c->smu);
}

/* The end of a stream from the call's outcome (under smu, call ended): the
 * text the deltas missed, finish_reason and usage, or an error event. */
static void s_stream_end(so_hconn_t *c)
{
    so_httpd_t *h = c->h;
    const so_pb_turn_reply_t *rep = NULL;
    const char *msg = "";
    so_gw_status_t st = so_gwcall_result(c->call, &rep, &msg);
    so_oai_error_t e;
    if (st == SO_GW_REPLY && rep->result && !(rep->error && rep->error->code != SO_ERR(NONE))) {
        const char *text = rep->text ? rep->text : "";
        if (strlen(text) > c->sent_text)
            s_out_add(c, so_oai_sse_delta(rep, c->s_id, c->s_created, c->s_model,
                                          text + c->sent_text));
        s_out_add(c,
                  so_oai_sse_tail(rep, c->s_id, c->s_created, c->s_model, c->req->include_usage));
        if (c->episode[0])
            so_admin_recent_add(h, c->episode);
        return;
    }
    if (st == SO_GW_REPLY && rep->error) {
        so_oai_error_from_code(rep->error->code, rep->error->message, c->req->pinned_version, &e);
        so_counters_error(h->counters, (int) rep->error->code, 0);
    } else if (st == SO_GW_TIMEOUT) {
        so_counters_error(h->counters, SO_ERR(TIMEOUT), 1);
        so_oai_fail(&e, 504, "server_error", "timeout", NULL, "no answer within %d ms (%s)",
                    h->o.timeout_ms, msg);
    } else {
        so_counters_error(h->counters, SO_ERR(UNAVAILABLE), 1);
        so_oai_fail(&e, 503, "server_error", "unavailable", NULL, "%s", msg);
    }
    c->error = e.code ? e.code : "error";
    s_out_add(c, so_oai_sse_error(&e));
}

/* MHD's content reader for a stream: the queued bytes, else the end once
 * the call ended, else suspend until the gateway client wakes us. */
static ssize_t s_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) pos;
    so_hconn_t *c = cls;
    pthread_mutex_lock(&c->smu);
    for (;;) {
        if (c->out_off < c->out.len) {
            size_t n = c->out.len - c->out_off < max ? c->out.len - c->out_off : max;
            memcpy(buf, c->out.data + c->out_off, n);
            c->out_off += n;
            if (c->out_off == c->out.len) {
                c->out_off = 0;
                so_buf_reset(&c->out);
            }
            c->bytes_out += n;
            pthread_mutex_unlock(&c->smu);
            return (ssize_t) n;
        }
        if (c->tail_done) {
            pthread_mutex_unlock(&c->smu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (!c->ended)
            break;
        s_stream_end(c);
        c->tail_done = 1;
    }
    c->suspended = 1;
    MHD_suspend_connection(c->conn);
    pthread_mutex_unlock(&c->smu);
    return 0;
}

enum MHD_Result so_chat_stream_start(so_hconn_t *c)
{
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
                                                               s_stream_read, c, NULL);
    if (!r)
        return MHD_NO;
    pthread_mutex_lock(&c->smu);
    const char *hdr[][2] = {
        { MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream" },
        { "Cache-Control", "no-cache" },
        { "X-Request-Id", c->rid },
        { "X-SO-Agent", c->agent },
        { "X-SO-Episode-Id", c->episode },
        { "X-SO-Turn-Index", c->s_turn },
        { "X-SO-Handbook-Version", c->s_version },
        { "X-SO-Top-Skills", c->s_top },
    };
    for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++)
        if (hdr[i][1][0])
            MHD_add_response_header(r, hdr[i][0], hdr[i][1]);
    pthread_mutex_unlock(&c->smu);
    if (atomic_load(&c->h->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(c->conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    c->answered = 1;
    c->status = 200;
    return rc;
}

/* ---- Submit and answer -------------------------------------------------- */

/* "auto", a routing profile, or an agent of the current handbook (routed
 * to that agent alone: every other one is excluded). */
static int s_resolve_model(so_httpd_t *h, so_oai_request_t *r, so_oai_error_t *e)
{
    if (strcmp(r->model, "auto") == 0)
        return 0;
    for (size_t i = 0; i < h->n_profiles; i++)
        if (strcmp(r->model, h->profiles[i]) == 0) {
            so_oai_request_set_profile(r, r->model);
            return 0;
        }
    so_watch_agent_t *a = NULL;
    size_t n = 0, found = (size_t) -1;
    char version[SO_HTTPD_ID_MAX] = "";
    if (so_watch_agents(h->watch, version, sizeof version, &a, &n) == 0)
        for (size_t i = 0; i < n && found == (size_t) -1; i++)
            if (strcmp(a[i].id, r->model) == 0)
                found = i;
    int rc = 0;
    if (found != (size_t) -1) {
        for (size_t i = 0; i < n && rc == 0; i++) {
            const char *id = a[i].id;
            if (i != found)
                rc = so_oai_request_exclude(r, &id, 1);
        }
        if (rc < 0)
            so_oai_fail(e, 500, "server_error", "internal_error", "model",
                        "the handbook has more agents than a request may exclude (%d)",
                        SO_WIRE_MAX_AGENTS);
    } else {
        rc = so_oai_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                         "The model '%.128s' does not exist here: use \"auto\"%s, a routing "
                         "profile, or an agent of handbook %s (GET /v1/models)",
                         r->model, h->n_profiles ? "" : " (no routing profiles are configured)",
                         version[0] ? version : "(none loaded)");
    }
    free(a);
    return rc;
}

enum MHD_Result so_chat_start(so_hconn_t *c)
{
    so_httpd_t *h = c->h;
    so_oai_error_t e;
    c->req = so_oai_parse_request(c->body, c->len, so_httpd_header, c->conn, &h->o.limits, &e);
    if (!c->req) {
        so_counters_reject(h->counters, strcmp(e.code ? e.code : "", "invalid_json") == 0
                                            ? SO_REJ_INVALID_JSON
                                            : SO_REJ_INVALID_REQUEST);
        return so_reply_error(c, &e);
    }
    /* The client's episode, if it named one; else the gateway's, from its
     * reply (s_partial, s_chat_reply). */
    snprintf(c->episode, sizeof c->episode, "%s",
             c->req->turn.episode_id ? c->req->turn.episode_id : "");
    if (s_resolve_model(h, c->req, &e) < 0) {
        so_counters_reject(h->counters, SO_REJ_UNKNOWN_MODEL);
        return so_reply_error(c, &e);
    }
    if (atomic_fetch_add(&h->inflight, 1) >= h->o.max_inflight) {
        atomic_fetch_sub(&h->inflight, 1);
        return so_reply_reject(c, SO_REJ_OVERLOADED, 503, "server_error", "overloaded", NULL,
                               "overloaded: %ld requests in flight", h->o.max_inflight);
    }
    c->counted_inflight = 1;
    so_oai_request_set_id(c->req, c->rid);
    /* Suspend first: the client thread may end the call (and resume us)
     * before so_gwclient_submit even returns. */
    pthread_mutex_lock(&c->smu);
    MHD_suspend_connection(c->conn);
    c->suspended = 1;
    pthread_mutex_unlock(&c->smu);
    char err[512];
    c->call = so_gwclient_submit_stream(h->gw, &c->req->turn, so_now_ms() + h->o.timeout_ms,
                                        s_resume, c->req->stream ? s_partial : NULL, c, err,
                                        sizeof err);
    if (!c->call) {
        so_oai_fail(&c->fail, 503, "server_error", "unavailable", NULL, "%s", err);
        c->has_fail = 1;
        pthread_mutex_lock(&c->smu);
        s_wake(c);
        pthread_mutex_unlock(&c->smu);
    }
    return MHD_YES;
}

static enum MHD_Result s_chat_reply(so_hconn_t *c, const so_pb_turn_reply_t *rep)
{
    so_httpd_t *h = c->h;
    const so_pb_agent_result_t *res = rep->result;
    const so_pb_routing_decision_t *d = rep->decision;
    snprintf(c->episode, sizeof c->episode, "%s", rep->episode_id ? rep->episode_id : "");
    if (rep->error && rep->error->code != SO_ERR(NONE)) {
        so_oai_error_t e;
        so_oai_error_from_code(rep->error->code, rep->error->message, c->req->pinned_version, &e);
        so_counters_error(h->counters, (int) rep->error->code, 0);
        return so_reply_error(c, &e);
    }
    if (!res) { /* so_wire validation makes this impossible; stay safe */
        so_oai_error_t e;
        so_oai_error_from_code(SO_ERR(INTERNAL), "the gateway's reply carries no result", 0, &e);
        return so_reply_error(c, &e);
    }
    snprintf(c->agent, sizeof c->agent, "%s", res->agent_id);
    if (c->episode[0])
        so_admin_recent_add(h, c->episode);
    char model[SO_HTTPD_ID_MAX] = "", completion_id[96], top[1024], turn[16] = "", cost[32];
    if (d)
        so_watch_model(h->watch, d->handbook_version, res->agent_id, model, sizeof model);
    snprintf(completion_id, sizeof completion_id, "chatcmpl-%s", c->rid);
    so_oai_top_skills_header(rep, top, sizeof top);
    if (d)
        snprintf(turn, sizeof turn, "%u", d->turn_index);
    snprintf(cost, sizeof cost, "%.8f", res->cost_usd);
    int64_t created = (int64_t) time(NULL);
    char *body = c->req->stream ? so_oai_completion_sse(rep, completion_id, created, model,
                                                        c->req->include_usage)
                                : so_oai_completion_json(rep, completion_id, created, model);
    return so_reply_answer(c, 200, c->req->stream ? "text/event-stream" : "application/json",
                           body, body ? strlen(body) : 0, "Cache-Control",
                           c->req->stream ? "no-cache" : NULL, "X-SO-Agent", res->agent_id,
                           "X-SO-Episode-Id", c->episode, "X-SO-Turn-Index", turn,
                           "X-SO-Handbook-Version", d ? d->handbook_version : NULL,
                           "X-SO-Top-Skills", top, "X-SO-Cost-USD", cost, NULL);
}

enum MHD_Result so_chat_finish(so_hconn_t *c)
{
    so_httpd_t *h = c->h;
    if (c->counted_inflight) {
        atomic_fetch_sub(&h->inflight, 1);
        c->counted_inflight = 0;
    }
    if (c->has_fail)
        return so_reply_error(c, &c->fail);
    const so_pb_turn_reply_t *rep = NULL;
    const char *msg = "";
    so_gw_status_t st = so_gwcall_result(c->call, &rep, &msg);
    so_oai_error_t e;
    enum MHD_Result ret;
    switch (st) {
    case SO_GW_REPLY: ret = s_chat_reply(c, rep); break;
    case SO_GW_TIMEOUT:
        so_counters_error(h->counters, SO_ERR(TIMEOUT), 1);
        so_oai_fail(&e, 504, "server_error", "timeout", NULL, "no answer within %d ms (%s)",
                    h->o.timeout_ms, msg);
        ret = so_reply_error(c, &e);
        break;
    default:
        so_counters_error(h->counters, SO_ERR(UNAVAILABLE), 1);
        so_oai_fail(&e, 503, "server_error", "unavailable", NULL, "%s", msg);
        ret = so_reply_error(c, &e);
        break;
    }
    so_gwcall_destroy(&c->call);
    return ret;
}
