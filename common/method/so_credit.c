/*
 * so_credit — credit assignment of an episode (see so_credit.h).
 *
 * The cells live in a small open-addressing table sized from the episode
 * (its turns and demands), never from the handbook: an episode names at
 * most that many pairs.
 */
#include "method/so_credit.h"
#include "base/so_alloc.h"
#include "base/so_err.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>


/* The table being filled: slot[i] = index + 1 into c->cells, 0 = empty. */
typedef struct {
    so_credit_t *c;
    size_t *slot;
    size_t mask;
} s_table_t;

void so_credit_free(so_credit_t *c)
{
    if (!c)
        return;
    free(c->cells);
    memset(c, 0, sizeof *c);
}

static so_credit_cell_t *s_cell(s_table_t *t, size_t agent, size_t skill)
{
    size_t h = (agent * 0x9E3779B97F4A7C15ULL) ^ (skill * 0xC2B2AE3D27D4EB4FULL);
    for (size_t i = (h >> 7) & t->mask;; i = (i + 1) & t->mask) {
        if (!t->slot[i]) {
            so_credit_cell_t *e = &t->c->cells[t->c->n++];
            memset(e, 0, sizeof *e);
            e->agent = agent;
            e->skill = skill;
            t->slot[i] = t->c->n;
            return e;
        }
        so_credit_cell_t *e = &t->c->cells[t->slot[i] - 1];
        if (e->agent == agent && e->skill == skill)
            return e;
    }
}

static void s_add(s_table_t *t, size_t agent, size_t skill, double w, double score,
                  const so_pb_turn_record_t *tr)
{
    so_stat_t *d = &s_cell(t, agent, skill)->d;
    d->successes += w * score;
    d->attempts += w;
    d->cost_usd += w * tr->cost_usd;
    d->prompt_tokens += w * tr->prompt_tokens;
    d->completion_tokens += w * tr->completion_tokens;
    d->latency_s += w * tr->latency_s;
    d->cost_count += w;
}

double so_credit_outcome(const so_pb_episode_outcome_t *ep)
{
    if (ep->result_case == SKILLORCHESTRA__V1__EPISODE_OUTCOME__RESULT_SUCCESS)
        return ep->success ? 1.0 : 0.0;
    return ep->score;
}

static int s_usable_weight(double w)
{
    return isfinite(w) && w > 0;
}

/* The turn's demand, normalised over its usable weights.  0 if it has no
 * usable weight (the caller falls back on the mode). */
static int s_credit_demand(s_table_t *t, const so_handbook_t *hb, size_t a, double score,
                           const so_pb_turn_record_t *tr)
{
    double wsum = 0;
    for (size_t i = 0; i < tr->n_demand; i++)
        if (s_usable_weight(tr->demand[i]->weight))
            wsum += tr->demand[i]->weight;
    if (!(wsum > 0))
        return 0;
    for (size_t i = 0; i < tr->n_demand; i++) {
        double w = tr->demand[i]->weight;
        if (!s_usable_weight(w))
            continue;
        const char *sid = tr->demand[i]->skill_id;
        int sk = strchr(sid, '\x1f') ? -1 : so_handbook_skill_index(hb, sid);
        if (sk < 0) {
            t->c->skipped++;
            continue;
        }
        s_add(t, a, (size_t) sk, w / wsum, score, tr);
    }
    return 1;
}

/* No demand: the skills of the turn's mode (all of them for no known
 * mode), uniformly. */
static void s_credit_mode(s_table_t *t, const so_handbook_t *hb, size_t a, double score,
                          const so_pb_turn_record_t *tr)
{
    int m = tr->mode && *tr->mode ? so_handbook_mode_index(hb, tr->mode) : -1;
    size_t k = 0;
    for (size_t sk = 0; sk < hb->n_skills; sk++)
        k += m < 0 || hb->skills[sk].mode == m;
    for (size_t sk = 0; sk < hb->n_skills && k; sk++)
        if (m < 0 || hb->skills[sk].mode == m)
            s_add(t, a, sk, 1.0 / (double) k, score, tr);
}

int so_credit_episode(const so_handbook_t *hb, const so_pb_episode_outcome_t *ep,
                      so_credit_t *out, char *err, size_t errlen)
{
    size_t cap = 0, slots = 16;
    memset(out, 0, sizeof *out);
    for (size_t t = 0; t < ep->n_turns; t++)
        cap += ep->turns[t]->n_demand ? ep->turns[t]->n_demand : hb->n_skills;
    while (slots < 2 * cap)
        slots <<= 1;
    s_table_t t = { out, so_calloc(slots, sizeof *t.slot), slots - 1 };
    out->cells = so_calloc(cap, sizeof *out->cells);
    double outcome = so_credit_outcome(ep);
    int rc = 0;
    for (size_t i = 0; i < ep->n_turns && rc == 0; i++) {
        const so_pb_turn_record_t *tr = ep->turns[i];
        int a = strchr(tr->agent_id, '\x1f') ? -1 : so_handbook_agent_index(hb, tr->agent_id);
        if (a < 0) {
            out->skipped++;
            continue;
        }
        double score = tr->score_opt_case == SKILLORCHESTRA__V1__TURN_RECORD__SCORE_OPT_SCORE
                           ? tr->score
                           : outcome;
        if (!isfinite(score) || score < 0 || score > 1) {
            rc = so_err(err, errlen, "episode %s turn %zu: score %g outside [0, 1]",
                        ep->episode_id, i, score);
            break;
        }
        if (!s_credit_demand(&t, hb, (size_t) a, score, tr))
            s_credit_mode(&t, hb, (size_t) a, score, tr);
    }
    free(t.slot);
    if (rc < 0)
        so_credit_free(out);
    return rc;
}

void so_credit_accumulate(const so_credit_t *c, size_t n_skills, so_stat_t *deltas)
{
    for (size_t k = 0; k < c->n; k++) {
        so_stat_add(&deltas[c->cells[k].agent * n_skills + c->cells[k].skill], &c->cells[k].d);
    }
}
