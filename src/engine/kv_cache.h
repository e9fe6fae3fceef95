/*
 * kv_cache.h - the block-paged KV cache (internal).
 *
 * One pool of fixed-size blocks (block_size token slots each) serves every
 * sequence; each sequence owns a block table mapping its positions to
 * blocks: position p lives in block blocks[p / block_size], slot
 * p % block_size. Blocks are reference-counted so sequences can share a
 * prefix (n > 1 choices, the server's prefix cache); a shared block is
 * copied before it is written (copy-on-write), so sharing never changes
 * anyone's answer. There is no static per-sequence split of the context:
 * any sequence may grow to n_ctx while blocks last.
 *
 * Storage per layer: K (n_blocks, block_size, k_dim), V (n_blocks,
 * block_size, v_dim), f32 or f16. k_dim/v_dim are per-token widths chosen
 * by the architecture (n_kv_head * head_dim, or a compressed latent for
 * MLA, where v_dim may be 0).
 *
 * Ownership: the nuage_context owns its nuage_kv; only the thread driving
 * the context touches it (no locks).
 */
#ifndef NUAGE_KV_CACHE_H
#define NUAGE_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "nuage/nuage.h"

typedef struct {
    int32_t *blocks; /* (cap) block ids */
    int n_blocks;    /* blocks in the table */
    int cap;
    int len;         /* tokens cached = next position */
} nuage__kv_seq;

typedef struct {
    int n_layer, block_size, n_blocks, n_seq, n_ctx;
    int64_t k_dim, v_dim;
    nuage_kv_type type;
    size_t elem;        /* 4 (f32) or 2 (f16) */
    uint8_t *k, *v;     /* (n_layer, n_blocks, block_size, k_dim|v_dim) */
    int32_t *ref;       /* (n_blocks) reference counts */
    int32_t *free_ids;  /* (n_blocks) stack of free block ids */
    int n_free;
    nuage__kv_seq *seqs; /* (n_seq) */
} nuage__kv;

/* Allocate everything; 0, NUAGE_E_NOMEM or NUAGE_E_INVAL. */
int nuage__kv_init(nuage__kv *kv, int n_layer, int64_t k_dim, int64_t v_dim, int block_size,
                   int n_blocks, int n_seq, int n_ctx, nuage_kv_type type);
void nuage__kv_free(nuage__kv *kv);
/* Size every block table for n_ctx tokens (called once after init). */
int nuage__kv_tables_init(nuage__kv *kv);

/* Blocks that growing seq to new_len tokens would take from the pool,
 * counting the copy of a shared block about to be written. */
int nuage__kv_blocks_needed(const nuage__kv *kv, int seq, int new_len);

/* Make room for seq to hold new_len tokens (allocating and copying shared
 * blocks as needed) and set its len. The caller checked blocks_needed
 * against n_free, so this cannot fail. */
void nuage__kv_grow(nuage__kv *kv, int seq, int new_len);

/* Drop positions >= p0. */
void nuage__kv_truncate(nuage__kv *kv, int seq, int p0);

/* dst (empty) shares src's first n tokens. 0 or NUAGE_E_KV_FULL. */
int nuage__kv_fork(nuage__kv *kv, int dst, int src, int n);

/* Address of the K / V row of (layer, seq, pos). pos < seqs[seq].len. */
static inline void *nuage__kv_k(const nuage__kv *kv, int layer, int seq, int pos) {
    int32_t b = kv->seqs[seq].blocks[pos / kv->block_size];
    size_t slot = ((size_t)layer * kv->n_blocks + (size_t)b) * kv->block_size + (size_t)(pos % kv->block_size);
    return kv->k + slot * (size_t)kv->k_dim * kv->elem;
}
static inline void *nuage__kv_v(const nuage__kv *kv, int layer, int seq, int pos) {
    int32_t b = kv->seqs[seq].blocks[pos / kv->block_size];
    size_t slot = ((size_t)layer * kv->n_blocks + (size_t)b) * kv->block_size + (size_t)(pos % kv->block_size);
    return kv->v + slot * (size_t)kv->v_dim * kv->elem;
}

#endif
