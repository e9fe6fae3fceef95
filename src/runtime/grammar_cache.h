/*
 * grammar_cache.h - compiled grammars kept per deployment, so that
 * requests with the same constraint (the same response_format schema, the
 * same tools) share one grammar and its mask cache instead of compiling a
 * fresh one with cold caches each time.
 *
 * A small LRU table under its own mutex (a leaf lock); entries hold one
 * reference on their grammar. A deployment owns one (deploy.c) and frees
 * it before its token table, which its grammars point into.
 */
#ifndef NUAGE_SERVER_GRAMMAR_CACHE_H
#define NUAGE_SERVER_GRAMMAR_CACHE_H

#include "nuage/constrain.h"

typedef struct nuage__gcache nuage__gcache;

/* A cache of cap entries, or NULL when out of memory. */
nuage__gcache *nuage__gcache_new(int cap);
void nuage__gcache_free(nuage__gcache *c);   /* NULL ok */
/* The grammar stored under key (a new reference) and, in *triggers, a
 * malloc'd NULL-terminated copy of its trigger strings (NULL when it has
 * none; caller frees each and the array); NULL when absent or on OOM. */
nuage_grammar *nuage__gcache_get(nuage__gcache *c, const char *key, char ***triggers);
/* Store g (the cache takes its own reference) with its triggers (copied;
 * may be NULL) under key, evicting the least recently used entry when
 * full. Silently does nothing on OOM. */
void nuage__gcache_put(nuage__gcache *c, const char *key, nuage_grammar *g, char *const *triggers);

#endif
