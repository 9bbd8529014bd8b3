/*
 * so_profile — the router's routing profiles (see so_profile.h).
 */
#include "so_profile.h"
#include "base/so_alloc.h"
#include "base/so_buf.h"
#include "base/so_err.h"
#include "base/so_map.h"
#include "wire/so_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct so_profiles {
    so_profile_t p[SO_PROFILE_MAX];
    size_t n;
    so_map_t *by_name; /* name -> &p[i] (borrowed) */
    so_buf_t names;
};

/* Splits a comma/space-separated list into so_strdup'd items.  Returns the
 * count, or -1 when there are more than max. */
static long s_split(const char *list, char **out, size_t max)
{
    char *copy = so_strdup(list), *save = NULL;
    long n = 0;
    for (char *it = strtok_r(copy, ", \t", &save); it; it = strtok_r(NULL, ", \t", &save)) {
        if ((size_t) n == max) {
            while (n > 0)
                free(out[--n]);
            n = -1;
            break;
        }
        out[n++] = so_strdup(it);
    }
    free(copy);
    return n;
}

/* A name is a config key part: letters, digits, '-', '_' (no '.'). */
static int s_name_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > SO_WIRE_MAX_ID)
        return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return 0;
    return 1;
}

static int s_explore(const so_config_t *cfg, const char *name, so_profile_t *p, char *err,
                     size_t errlen)
{
    char key[SO_WIRE_MAX_ID + 32];
    snprintf(key, sizeof key, "profile.%s.explore", name);
    const char *v = so_config_get(cfg, key, "on");
    if (strcmp(v, "off") == 0) {
        p->thompson = 0;
        p->explore_floor = 0;
    } else if (strcmp(v, "on") != 0) {
        return so_err(err, errlen, "%s: '%.60s' is neither on nor off", key, v);
    }
    return 0;
}

/* Fills p (name already set) from cfg over base. */
static int s_read(const so_config_t *cfg, const so_profile_t *base, so_profile_t *p, char *err,
                  size_t errlen)
{
    char key[SO_WIRE_MAX_ID + 32];
    long v;
    p->lambda = base->lambda;
    p->thompson = base->thompson;
    p->explore_floor = base->explore_floor;
    if (s_explore(cfg, p->name, p, err, errlen) != 0)
        return -1;
    snprintf(key, sizeof key, "profile.%s.lambda", p->name);
    if (so_config_double(cfg, key, p->lambda, 0, 1e9, &p->lambda, err, errlen) != 0)
        return -1;
    snprintf(key, sizeof key, "profile.%s.thompson", p->name);
    if (so_config_long(cfg, key, p->thompson, 0, 1, &v, err, errlen) != 0)
        return -1;
    p->thompson = (int) v;
    snprintf(key, sizeof key, "profile.%s.explore_floor", p->name);
    if (so_config_double(cfg, key, p->explore_floor, 0, 1, &p->explore_floor, err, errlen) != 0)
        return -1;
    snprintf(key, sizeof key, "profile.%s.exclude", p->name);
    p->exclude = so_calloc(SO_PROFILE_MAX_EXCLUDE, sizeof *p->exclude);
    long n = s_split(so_config_get(cfg, key, ""), p->exclude, SO_PROFILE_MAX_EXCLUDE);
    if (n < 0)
        return so_err(err, errlen, "%s: more than %d agents", key, SO_PROFILE_MAX_EXCLUDE);
    p->n_exclude = (size_t) n;
    return 0;
}

static int s_add(so_profiles_t *t, const so_config_t *cfg, const so_profile_t *base, char *name,
                 char *err, size_t errlen)
{
    if (!s_name_ok(name)) {
        so_err(err, errlen, "profiles: '%.60s' is not a valid name (letters, digits, '-', '_')",
               name);
        free(name);
        return -1;
    }
    if (so_map_has(t->by_name, name)) {
        so_err(err, errlen, "profiles: '%.60s' is listed twice", name);
        free(name);
        return -1;
    }
    so_profile_t *p = &t->p[t->n++];
    p->name = name; /* owned: freed by destroy */
    so_map_put(t->by_name, name, p);
    so_buf_appendf(&t->names, "%s%s", t->n > 1 ? "," : "", name);
    return s_read(cfg, base, p, err, errlen);
}

so_profiles_t *so_profiles_new(const so_config_t *cfg, const so_profile_t *base, char *err,
                               size_t errlen)
{
    so_profiles_t *t = so_calloc(1, sizeof *t);
    t->by_name = so_map_new(NULL);
    char *names[SO_PROFILE_MAX];
    long n = s_split(so_config_get(cfg, "profiles", ""), names, SO_PROFILE_MAX);
    if (n < 0) {
        so_err(err, errlen, "profiles: more than %d names", SO_PROFILE_MAX);
        so_profiles_destroy(&t);
        return NULL;
    }
    long i = 0;
    while (i < n && s_add(t, cfg, base, names[i], err, errlen) == 0)
        i++;
    if (i < n) { /* names[i] went to s_add; the rest are ours */
        while (++i < n)
            free(names[i]);
        so_profiles_destroy(&t);
    }
    return t;
}

void so_profiles_destroy(so_profiles_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_profiles_t *t = *self_p;
    for (size_t i = 0; i < t->n; i++) {
        for (size_t k = 0; k < t->p[i].n_exclude; k++)
            free(t->p[i].exclude[k]);
        free(t->p[i].exclude);
        free((char *) t->p[i].name);
    }
    so_map_destroy(&t->by_name);
    so_buf_free(&t->names);
    free(t);
    *self_p = NULL;
}

const so_profile_t *so_profiles_get(const so_profiles_t *p, const char *name)
{
    return p && name ? so_map_get(p->by_name, name) : NULL;
}

size_t so_profiles_count(const so_profiles_t *p)
{
    return p ? p->n : 0;
}

const char *so_profiles_names(const so_profiles_t *p)
{
    return p && p->n ? so_buf_str(&p->names) : "-";
}
