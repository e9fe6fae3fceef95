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
 * block_size, v_dim), f32, f16 or q8_0 (k_row / v_row bytes a token). k_dim/v_dim are per-token widths chosen
 * by the architecture (n_kv_head * head_dim, or a compressed latent for
 * MLA, where v_dim may be 0).
 *
 * Sliding-window layers (hp.n_swa = W, layers[il].swa) get a second,
 * small pool. A window layer's query at position i reads only positions
 * i - W < j <= i, so a sequence of length len needs, for its *next*
 * token, window blocks covering [len - W + 1, len) and nothing below.
 * Each sequence therefore has a second block table (wblocks, indexed by
 * the same logical block number p / block_size, -1 where nothing is held)
 * into the window pool; blocks that fall wholly below the window are
 * released after every decode (nuage__kv_trim_windows) and before a grow.
 * The window kept is that of the sequence's last full-block boundary
 * b = len - len % bs, [b - W + 1, len): then the sequence's full blocks
 * can always be reused by the prefix cache (below), and a sequence still
 * holds at most ceil((W - 1) / bs) + 1 window blocks (the bound of the
 * exact window at its worst alignment).
 * A model without window layers (or with W >= n_ctx) has no window pool,
 * no window tables, and behaves exactly as before.
 *
 * Sizing and accounting. The public counts (n_blocks, n_free,
 * blocks_needed) are those of the global pool: it is the one whose use
 * grows with the context, and the scheduler admits against it. The window
 * pool needs no accounting of its own because it is sized for the worst
 * case of live sequences: after trimming, a sequence holds at most
 * ceil((W - 1) / bs) + 1 window blocks, plus ceil(T / bs) more while a
 * batch gives it T new tokens, the tokens of a batch sum to at most
 * n_batch_max, and a copy-on-write takes one block before it frees one:
 *   w_blocks >= n_seq * (ceil((W - 1) / bs) + 2) + ceil(n_batch_max / bs) + 1
 * can never run dry (nuage__kv_window_blocks_for computes it; context
 * creation adds a little room for the prefix cache, below).
 *
 * Prefix reuse. A global block and the window block written for the same
 * logical block of the same sequence form a pair (gpair / wowner; a weak
 * link, cleared when either is freed). When someone outside takes a
 * reference on a global block (nuage_kv_block_ref: the prefix cache) and
 * its pair is still alive, the global block pins the pair (takes a window
 * reference, dropped when the global block is freed). So a cached chain
 * keeps the window rows of the blocks that were still in the window when
 * it was registered: its tail. Attaching n cached blocks is correct only
 * if the window rows for positions [n*bs - W + 1, n*bs) are all pinned
 * (nuage__kv_attachable returns the longest prefix for which that holds;
 * the prefix cache shortens its hits to it -- a miss, never a wrong
 * answer). Pins live in the window pool's spare room; when it runs out, a
 * pin held by nobody else is dropped (the cached chain then stops being
 * attachable at that length), so pins never starve a live sequence.
 *
 * Truncation and forks. Truncating to p0 keeps the sequence usable only if
 * the window rows for [p0 - W + 1, p0) are still held; otherwise the
 * sequence is cleared to length 0 (callers read nuage_kv_seq_len back and
 * recompute). Forking n tokens needs the same of the source, else
 * NUAGE_E_STATE. Both are never a wrong answer, at worst a recompute.
 * With the minimal window above, a truncation that drops more than about
 * one block always clears (the rows it needs are exactly the ones freed
 * first). A context that rolls back (nuage_context_params.kv_window_keep
 * = K > 0: speculative decoding, an API user's edits) keeps K more
 * positions: rows [b - W - K + 1, len), so any p0 >= b - K keeps the
 * sequence, at ceil(K / bs) more window blocks per sequence (the pool is
 * sized for W + K; nuage_context_kv_bytes counts it). Clearing remains
 * for anything older: rows below the window cannot be rebuilt without
 * recomputing the whole prefix.
 *
 * Ownership: the nuage_context owns its nuage_kv; only the thread driving
 * the context touches it (no locks).
 */
#ifndef NUAGE_KV_CACHE_H
#define NUAGE_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nuage/nuage.h"

typedef struct {
    int32_t *blocks; /* (cap) block ids */
    int n_blocks;    /* blocks in the table */
    int cap;
    int len;         /* tokens cached = next position */
    int32_t *wblocks; /* (cap) window-pool ids by logical block, -1 = none;
                         NULL without a window pool */
    int wlo;          /* entries below wlo are -1 (slid out of the window) */
} nuage__kv_seq;

typedef struct {
    int n_layer, block_size, n_blocks, n_seq, n_ctx;
    int64_t k_dim, v_dim;
    nuage_kv_type type;
    size_t elem;        /* 4 (f32), 2 (f16), 1 (q8_0: see k_row) */
    size_t k_row, v_row; /* bytes of one token's K / V row */
    uint8_t *k, *v;     /* (n_layer, n_blocks, block_size, k_dim|v_dim) */
    int32_t *ref;       /* (n_blocks) reference counts */
    int32_t *free_ids;  /* (n_blocks) stack of free block ids */
    int n_free;
    nuage__kv_seq *seqs; /* (n_seq) */
    /* Sliding-window layers; all zero / NULL without a window pool. */
    int n_swa;          /* window W of the window layers */
    int w_keep;         /* extra positions of window rows kept (see top) */
    int n_wlayer;       /* layers stored in the window pool */
    uint8_t *lwin;      /* (n_layer) 1 = window layer, or NULL */
    int32_t *lidx;      /* (n_layer) index of the layer inside its pool */
    int w_n_blocks, w_n_free;
    uint8_t *wk, *wv;   /* (n_wlayer, w_n_blocks, block_size, k_dim|v_dim) */
    int32_t *wref;      /* (w_n_blocks) reference counts */
    int32_t *wfree_ids; /* (w_n_blocks) stack of free window block ids */
    int32_t *wowner;    /* (w_n_blocks) global block paired with it, -1 */
    int32_t *gpair;     /* (n_blocks) window block paired with it, -1 */
    uint8_t *gpin;      /* (n_blocks) 1 = the pair holds a window reference */
} nuage__kv;

/* Bytes of one token's row of dim values (q8_0: dim a multiple of 32,
 * 34 bytes per 32 values). */
static inline size_t nuage__kv_row_bytes(nuage_kv_type type, int64_t dim) {
    if (type == NUAGE_KV_Q8_0) return (size_t)dim / 32 * 34;
    return (size_t)dim * (type == NUAGE_KV_F16 ? 2 : 4);
}

/* Allocate everything; 0, NUAGE_E_NOMEM or NUAGE_E_INVAL. */
int nuage__kv_init(nuage__kv *kv, int n_layer, int64_t k_dim, int64_t v_dim, int block_size,
                   int n_blocks, int n_seq, int n_ctx, nuage_kv_type type);
/* The same with window layers: swa (n_layer) marks them (NULL = none), W =
 * n_swa, w_blocks the window pool's size (at least
 * nuage__kv_window_blocks_for). Window layers take no global storage. With
 * no marked layer, n_swa <= 0 or n_swa >= n_ctx this is nuage__kv_init. */
int nuage__kv_init_ex(nuage__kv *kv, int n_layer, int64_t k_dim, int64_t v_dim, int block_size,
                      int n_blocks, int n_seq, int n_ctx, nuage_kv_type type,
                      const uint8_t *swa, int n_swa, int w_blocks);
void nuage__kv_free(nuage__kv *kv);
/* The window pool size that live sequences can never exhaust (see top). */
int nuage__kv_window_blocks_for(int n_swa, int block_size, int n_seq, int n_batch_max);
/* Size every block table for n_ctx tokens (called once after init). */
int nuage__kv_tables_init(nuage__kv *kv);

/* Blocks that growing seq to new_len tokens would take from the pool,
 * counting the copy of a shared block about to be written. */
int nuage__kv_blocks_needed(const nuage__kv *kv, int seq, int new_len);

/* Make room for seq to hold new_len tokens (allocating and copying shared
 * blocks as needed) and set its len. The caller checked blocks_needed
 * against n_free, so this cannot fail. */
void nuage__kv_grow(nuage__kv *kv, int seq, int new_len);

/* Drop positions >= p0 (to 0 if the window rows p0 needs are gone). */
void nuage__kv_truncate(nuage__kv *kv, int seq, int p0);

/* dst (empty) shares src's first n tokens. 0, NUAGE_E_KV_FULL, or
 * NUAGE_E_STATE when src no longer holds the window rows position n needs. */
int nuage__kv_fork(nuage__kv *kv, int dst, int src, int n);

/* Release window blocks wholly below every sequence's window (after a
 * decode). No-op without a window pool. */
void nuage__kv_trim_windows(nuage__kv *kv);

/* Global-block references from outside (the prefix cache): ref pins the
 * block's window pair if alive; unref frees the block (and its pin) on the
 * last reference. NUAGE_E_RANGE for a bad or free block. */
int nuage__kv_block_ref(nuage__kv *kv, int32_t block);
int nuage__kv_block_unref(nuage__kv *kv, int32_t block);
/* seq (empty) takes the n full global blocks and their pinned window pairs.
 * 0, NUAGE_E_RANGE, or NUAGE_E_STATE (seq not empty, too long, or the
 * window rows for position n * block_size are not all pinned). */
int nuage__kv_attach(nuage__kv *kv, int seq, const int32_t *blocks, int n);
/* Largest m <= n such that attaching blocks[0..m) gives a sequence whose
 * window rows are all there (n itself without a window pool). */
int nuage__kv_attachable(const nuage__kv *kv, const int32_t *blocks, int n);
/* Blocks a sequence holds: global table, and window pool (0 without). */
int nuage__kv_window_held(const nuage__kv *kv, int seq);

/* Address of the K / V row of (layer, seq, pos). pos < seqs[seq].len and,
 * on a window layer, pos > len - 1 - W (still in the window: the rows the
 * attention reads). */
static inline size_t nuage__kv_slot(const nuage__kv *kv, int layer, int seq, int pos, int *win) {
    const nuage__kv_seq *s = &kv->seqs[seq];
    int i = pos / kv->block_size;
    *win = kv->lwin && kv->lwin[layer];
    int32_t b = *win ? s->wblocks[i] : s->blocks[i];
    size_t nb = *win ? (size_t)kv->w_n_blocks : (size_t)kv->n_blocks;
    size_t l = kv->lidx ? (size_t)kv->lidx[layer] : (size_t)layer;
    return (l * nb + (size_t)b) * kv->block_size + (size_t)(pos % kv->block_size);
}
static inline void *nuage__kv_k(const nuage__kv *kv, int layer, int seq, int pos) {
    int win;
    size_t slot = nuage__kv_slot(kv, layer, seq, pos, &win);
    return (win ? kv->wk : kv->k) + slot * kv->k_row;
}
static inline void *nuage__kv_v(const nuage__kv *kv, int layer, int seq, int pos) {
    int win;
    size_t slot = nuage__kv_slot(kv, layer, seq, pos, &win);
    return (win ? kv->wv : kv->v) + slot * kv->v_row;
}

#endif
