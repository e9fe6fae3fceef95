/*
 * sched_prefix.c - the automatic prefix cache: full KV blocks kept after
 * the sequence that computed them moved on, re-attached to new sequences
 * starting with the same tokens.
 *
 * Key. Block i of a token stream is named by a 64-bit chain hash
 *   h_i = H(h_{i-1}, tokens[i*bs .. (i+1)*bs)),   h_{-1} = root(cache_salt)
 * so it stands for the salt and every token up to the end of the block --
 * exactly what the block's K/V rows depend on (positions are implied).
 * Lookup walks a new prompt block by block and stops at the first miss.
 * A hash match is confirmed by comparing the stored parent hash and the
 * block's own tokens, so a 64-bit collision of the block hash alone can
 * never attach a wrong block. Different salts give different roots (the
 * root is a bijection of the salt), so tenants never share blocks.
 *
 * Ownership. The cache holds one reference on each block it knows (taken
 * with nuage_kv_block_ref). A block whose only reference is the cache's
 * ("cache-only", refcount 1) is free memory in waiting: evicting it returns
 * it to the pool. Each block is in the cache at most once (a block holds
 * one chain's content; once cached it cannot be reused for other content
 * until evicted), so the table is sized for every block of the pool and
 * never grows.
 *
 * LRU. Entries sit on a recency list. A lookup or registration touches a
 * chain from its deepest block to its root, so a chain's root is always
 * more recent than its descendants and eviction takes leaves first: an
 * evicted parent would make its descendants unreachable.
 *
 * Sliding-window layers (gemma3, gpt-oss). A window layer at position p
 * reads only the last W positions, and the engine frees window rows that
 * fall out of every window (engine/kv_cache.h). The block ids here are
 * the global pool's; when the cache takes its reference on a block whose
 * window rows are still held (the tail of the sequence being registered),
 * the engine pins them to the block. A cached chain of n blocks is
 * therefore reusable only up to the lengths m whose window rows, positions
 * m*bs - W + 1 .. m*bs - 1, are all pinned: lookup shortens its hit to the
 * longest such m (nuage_kv_seq_attachable) -- in practice the end of a
 * registered chain -- and anything shorter is a miss that recomputes.
 * Pins live in the window pool's spare room and the engine drops pins
 * nobody else uses when it needs the room, which can only shorten later
 * hits. A hit is never attached without its window rows, so it can never
 * change an answer. With several choices (n > 1) the scheduler also caps
 * the hit at the prompt's end, so the fork there finds the window rows.
 *
 * Everything runs on the scheduler thread; nothing allocates after
 * creation.
 */
#include "runtime/sched_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash, parent;
    int32_t block;
    int next;             /* hash bucket chain, or free list; -1 ends */
    int lru_prev, lru_next;
} nuage__pentry;

struct nuage__sprefix {
    nuage_context *ctx;
    int bs, cap, n;
    nuage__pentry *e;     /* (cap) */
    int32_t *tok;         /* (cap, bs) tokens of each entry's block */
    int *bucket;          /* (mask + 1) first entry, -1 */
    uint64_t mask;
    int free_head;
    int lru_old, lru_new; /* least / most recently used, -1 when empty */
    int *scratch;         /* (cap) entry indices of a chain */
    uint64_t *hscratch;   /* (cap) hashes of a chain */
};

static uint64_t nuage__mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t nuage__root_hash(uint64_t salt) { return nuage__mix64(salt ^ 0x6e75616765707263ULL); }

static uint64_t nuage__block_hash(uint64_t parent, const int32_t *t, int bs) {
    uint64_t h = parent ^ 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < bs; i++) {
        h = (h ^ (uint64_t)(uint32_t)t[i]) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return nuage__mix64(h);
}

nuage__sprefix *nuage__prefix_new(nuage_context *ctx) {
    nuage__sprefix *pc = calloc(1, sizeof *pc);
    if (!pc) return NULL;
    pc->ctx = ctx;
    pc->bs = nuage_kv_block_size(ctx);
    pc->cap = nuage_kv_blocks_total(ctx);
    uint64_t nb = 16;
    while (nb < (uint64_t)pc->cap * 2) nb *= 2;
    pc->mask = nb - 1;
    pc->e = malloc((size_t)pc->cap * sizeof *pc->e);
    pc->tok = malloc((size_t)pc->cap * (size_t)pc->bs * sizeof *pc->tok);
    pc->bucket = malloc((size_t)nb * sizeof *pc->bucket);
    pc->scratch = malloc((size_t)pc->cap * sizeof *pc->scratch);
    pc->hscratch = malloc((size_t)pc->cap * sizeof *pc->hscratch);
    if (!pc->e || !pc->tok || !pc->bucket || !pc->scratch || !pc->hscratch) {
        nuage__prefix_free(pc);
        return NULL;
    }
    for (uint64_t i = 0; i < nb; i++) pc->bucket[i] = -1;
    for (int i = 0; i < pc->cap; i++) pc->e[i].next = i + 1 < pc->cap ? i + 1 : -1;
    pc->free_head = 0;
    pc->lru_old = pc->lru_new = -1;
    return pc;
}

static void nuage__lru_unlink(nuage__sprefix *pc, int i) {
    nuage__pentry *e = &pc->e[i];
    if (e->lru_prev >= 0) pc->e[e->lru_prev].lru_next = e->lru_next;
    else pc->lru_old = e->lru_next;
    if (e->lru_next >= 0) pc->e[e->lru_next].lru_prev = e->lru_prev;
    else pc->lru_new = e->lru_prev;
}

static void nuage__lru_push_new(nuage__sprefix *pc, int i) {
    nuage__pentry *e = &pc->e[i];
    e->lru_next = -1;
    e->lru_prev = pc->lru_new;
    if (pc->lru_new >= 0) pc->e[pc->lru_new].lru_next = i;
    else pc->lru_old = i;
    pc->lru_new = i;
}

static void nuage__touch(nuage__sprefix *pc, int i) {
    if (pc->lru_new == i) return;
    nuage__lru_unlink(pc, i);
    nuage__lru_push_new(pc, i);
}

/* Entry for (hash, parent, tokens) or -1. */
static int nuage__find(const nuage__sprefix *pc, uint64_t h, uint64_t parent, const int32_t *t) {
    for (int i = pc->bucket[h & pc->mask]; i >= 0; i = pc->e[i].next) {
        const nuage__pentry *e = &pc->e[i];
        if (e->hash == h && e->parent == parent &&
            !memcmp(pc->tok + (size_t)i * pc->bs, t, (size_t)pc->bs * sizeof *t))
            return i;
    }
    return -1;
}

/* Remove entry i and drop the cache's reference on its block. */
static void nuage__remove(nuage__sprefix *pc, int i) {
    nuage__pentry *e = &pc->e[i];
    int *link = &pc->bucket[e->hash & pc->mask];
    while (*link != i) link = &pc->e[*link].next;
    *link = e->next;
    nuage__lru_unlink(pc, i);
    nuage_kv_block_unref(pc->ctx, e->block);
    e->next = pc->free_head;
    pc->free_head = i;
    pc->n--;
}

void nuage__prefix_free(nuage__sprefix *pc) {
    if (!pc) return;
    if (pc->e && pc->bucket)
        while (pc->lru_old >= 0) nuage__remove(pc, pc->lru_old);
    free(pc->e);
    free(pc->tok);
    free(pc->bucket);
    free(pc->scratch);
    free(pc->hscratch);
    free(pc);
}

int nuage__prefix_lookup(nuage__sprefix *pc, uint64_t salt, const int32_t *tokens, int n_max,
                         int32_t *blocks) {
    uint64_t parent = nuage__root_hash(salt);
    int n = 0;
    while (n < n_max && n < pc->cap) {
        const int32_t *t = tokens + (size_t)n * pc->bs;
        uint64_t h = nuage__block_hash(parent, t, pc->bs);
        int i = nuage__find(pc, h, parent, t);
        if (i < 0) break;
        pc->scratch[n] = i;
        blocks[n++] = pc->e[i].block;
        parent = h;
    }
    /* sliding-window models: only as far as the window rows are kept */
    n = nuage_kv_seq_attachable(pc->ctx, blocks, n);
    for (int k = n - 1; k >= 0; k--) nuage__touch(pc, pc->scratch[k]);
    return n;
}

void nuage__prefix_register(nuage__sprefix *pc, uint64_t salt, const int32_t *tokens, int n,
                            const int32_t *blocks) {
    if (n > pc->cap) n = pc->cap;
    uint64_t parent = nuage__root_hash(salt);
    for (int k = 0; k < n; k++) {
        uint64_t h = nuage__block_hash(parent, tokens + (size_t)k * pc->bs, pc->bs);
        pc->hscratch[k] = h;
        parent = h;
    }
    /* Deepest first, so the root ends most recent. */
    for (int k = n - 1; k >= 0; k--) {
        const int32_t *t = tokens + (size_t)k * pc->bs;
        uint64_t par = k ? pc->hscratch[k - 1] : nuage__root_hash(salt);
        int i = nuage__find(pc, pc->hscratch[k], par, t);
        if (i >= 0) {
            nuage__touch(pc, i);
            continue;
        }
        /* The block may already be cached under this chain only; a block
         * with different content cannot be (see the top). A full table
         * would mean a bug; skip rather than fail. */
        if (pc->free_head < 0 || nuage_kv_block_ref(pc->ctx, blocks[k]) != 0) continue;
        i = pc->free_head;
        nuage__pentry *e = &pc->e[i];
        pc->free_head = e->next;
        e->hash = pc->hscratch[k];
        e->parent = par;
        e->block = blocks[k];
        memcpy(pc->tok + (size_t)i * pc->bs, t, (size_t)pc->bs * sizeof *t);
        uint64_t b = e->hash & pc->mask;
        e->next = pc->bucket[b];
        pc->bucket[b] = i;
        nuage__lru_push_new(pc, i);
        pc->n++;
    }
}

int nuage__prefix_evictable(const nuage__sprefix *pc) {
    int n = 0;
    for (int i = pc->lru_old; i >= 0; i = pc->e[i].lru_next)
        if (nuage_kv_block_refcount(pc->ctx, pc->e[i].block) == 1) n++;
    return n;
}

int nuage__prefix_evict(nuage__sprefix *pc, int n) {
    int freed = 0;
    for (int i = pc->lru_old; i >= 0 && freed < n;) {
        int next = pc->e[i].lru_next;
        if (nuage_kv_block_refcount(pc->ctx, pc->e[i].block) == 1) {
            nuage__remove(pc, i);
            freed++;
        }
        i = next;
    }
    return freed;
}

int nuage__prefix_size(const nuage__sprefix *pc) { return pc->n; }
