/*
 * so_watch — so-http's view of Redis, kept fresh by a thread of its own so
 * that no chat request waits on Redis: whether Redis answers, the current
 * handbook version and the agents of the last few handbook versions seen
 * (id, model, prices), for GET /v1/models, "model": "<agent>" and the
 * model name in replies.
 *
 * Every refresh_ms the thread reads so:hb:current; a version not yet held
 * (the current one, or one a reply named: so_watch_model asks for it) is
 * loaded once and kept among the last SO_WATCH_VERSIONS.  A Redis outage
 * is logged once when it starts and once when it ends; what was loaded
 * stays in use.
 */
#ifndef SO_WATCH_H
#define SO_WATCH_H

#include <stddef.h>
#include <stdint.h>

#define SO_WATCH_VERSIONS 4

typedef struct so_watch so_watch_t;

typedef struct {
    const char *redis_url;
    const char *prefix; /* "so:" */
    int timeout_ms;     /* per Redis command */
    int refresh_ms;
} so_watch_opts_t;

typedef struct {
    char id[129];
    char model[129];            /* the provider's model name ("" = the id) */
    double price_in, price_out; /* USD per 1M tokens */
    long context_limit;
    int available;
} so_watch_agent_t;

typedef struct {
    int redis_up;       /* the last poll reached Redis */
    int64_t last_ok_ms; /* so_now_ms() of the last poll that did, 0 = never */
    char version[129];  /* current handbook version, "" = none published */
    size_t n_agents;    /* of the current version, 0 if not loaded */
} so_watch_status_t;

/* Starts the thread (Redis need not be up).  NULL with err. */
so_watch_t *so_watch_new(const so_watch_opts_t *o, char *err, size_t errlen);
void so_watch_destroy(so_watch_t **self_p);

void so_watch_status(so_watch_t *w, so_watch_status_t *out);
/* A copy of the current version's agents (malloc'd, free(3)) and the
 * version.  0, or -1 when no handbook is loaded. */
int so_watch_agents(so_watch_t *w, char *version, size_t vlen, so_watch_agent_t **agents,
                    size_t *n);
/* The model name of agent in version (the agent's id when the handbook
 * names no model).  0, or -1 when the version is not loaded yet (it will
 * be at the next refresh) or lacks the agent. */
int so_watch_model(so_watch_t *w, const char *version, const char *agent, char *buf, size_t len);

#endif
