/*
 * grammar_cache.c - per-deployment LRU of compiled grammars (see
 * grammar_cache.h). Keys are the canonical JSON of everything a grammar
 * is built from (api_structured.c); lookups compare a 64-bit hash first,
 * then the key. A table of a few dozen entries is scanned linearly: the
 * scan is nothing next to compiling a schema.
 */
#include "runtime/grammar_cache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;              /* NULL: free slot */
    uint64_t hash;
    nuage_grammar *g;
    char **trig;            /* NULL-terminated or NULL */
    uint64_t used;          /* LRU clock */
} nuage__gentry;

struct nuage__gcache {
    pthread_mutex_t mu;
    nuage__gentry *e;
    int cap;
    uint64_t clock;
};

static uint64_t nuage__fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void nuage__trig_free(char **t) {
    for (int i = 0; t && t[i]; i++) free(t[i]);
    free(t);
}

/* A copy of t (NULL-terminated), NULL for none; *ok false on OOM. */
static char **nuage__trig_copy(char *const *t, bool *ok) {
    *ok = true;
    if (!t) return NULL;
    int n = 0;
    while (t[n]) n++;
    char **c = calloc((size_t)n + 1, sizeof *c);
    if (!c) {
        *ok = false;
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!(c[i] = strdup(t[i]))) {
            nuage__trig_free(c);
            *ok = false;
            return NULL;
        }
    return c;
}

static void nuage__gentry_clear(nuage__gentry *e) {
    free(e->key);
    nuage_grammar_free(e->g);
    nuage__trig_free(e->trig);
    memset(e, 0, sizeof *e);
}

nuage__gcache *nuage__gcache_new(int cap) {
    nuage__gcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->e = calloc((size_t)cap, sizeof *c->e);
    if (!c->e || pthread_mutex_init(&c->mu, NULL)) {
        free(c->e);
        free(c);
        return NULL;
    }
    c->cap = cap;
    return c;
}

void nuage__gcache_free(nuage__gcache *c) {
    if (!c) return;
    for (int i = 0; i < c->cap; i++) nuage__gentry_clear(&c->e[i]);
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

nuage_grammar *nuage__gcache_get(nuage__gcache *c, const char *key, char ***triggers) {
    *triggers = NULL;
    if (!c) return NULL;
    uint64_t h = nuage__fnv(key);
    nuage_grammar *g = NULL;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->cap; i++) {
        nuage__gentry *e = &c->e[i];
        if (!e->key || e->hash != h || strcmp(e->key, key)) continue;
        bool ok;
        char **t = nuage__trig_copy(e->trig, &ok);
        if (ok) {
            g = nuage_grammar_retain(e->g);
            *triggers = t;
            e->used = ++c->clock;
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return g;
}

void nuage__gcache_put(nuage__gcache *c, const char *key, nuage_grammar *g, char *const *triggers) {
    if (!c || !g) return;
    bool ok;
    char **t = nuage__trig_copy(triggers, &ok);
    char *k = strdup(key);
    if (!ok || !k) {
        nuage__trig_free(t);
        free(k);
        return;
    }
    uint64_t h = nuage__fnv(key);
    pthread_mutex_lock(&c->mu);
    int slot = 0;
    for (int i = 0; i < c->cap; i++) {
        nuage__gentry *e = &c->e[i];
        if (e->key && e->hash == h && !strcmp(e->key, key)) { /* raced: keep the first */
            slot = -1;
            break;
        }
        if (!e->key) {
            slot = i;
            break;
        }
        if (e->used < c->e[slot].used) slot = i;
    }
    if (slot >= 0) {
        nuage__gentry *e = &c->e[slot];
        nuage__gentry_clear(e);
        e->key = k;
        e->hash = h;
        e->g = nuage_grammar_retain(g);
        e->trig = t;
        e->used = ++c->clock;
        k = NULL;
        t = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(k);
    nuage__trig_free(t);
}
