/*
 * so_backend — what every backend of the agent-worker shares (see
 * so_backend.h): running a backend's execute with a clean so_exec_t (and a
 * delta sink), releasing a result, destroying a backend, and the prompt a
 * call is answered for.  The backends themselves are so_replay.c and
 * so_live.c.
 */
#include "so_backend.h"
#include "wire/so_wire.h"

#include <stdlib.h>
#include <string.h>

void so_exec_clear(so_exec_t *out)
{
    if (out) {
        free(out->text);
        out->text = NULL;
    }
}

void so_backend_execute(so_backend_t *b, const so_pb_agent_call_t *call, int64_t deadline,
                        so_exec_t *out)
{
    memset(out, 0, sizeof *out);
    b->execute(b->self, call, deadline, out);
}

void so_backend_execute_stream(so_backend_t *b, const so_pb_agent_call_t *call, int64_t deadline,
                               int (*on_delta)(void *, const char *, size_t), void *delta_arg,
                               so_exec_t *out)
{
    memset(out, 0, sizeof *out);
    out->on_delta = on_delta;
    out->delta_arg = delta_arg;
    b->execute(b->self, call, deadline, out);
}

void so_backend_destroy(so_backend_t **self_p)
{
    if (self_p && *self_p) {
        so_backend_t *b = *self_p;
        if (b->destroy)
            b->destroy(b->self);
        free(b);
        *self_p = NULL;
    }
}

const char *so_backend_prompt(const so_pb_agent_call_t *call)
{
    for (size_t i = call->n_messages; i > 0; i--) {
        const so_pb_chat_message_t *m = call->messages[i - 1];
        if (m && m->role && strcmp(m->role, "user") == 0)
            return m->content ? m->content : "";
    }
    return NULL;
}
