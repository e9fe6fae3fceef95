/*
 * kv_cache.c - block pools, block tables, reference counts, copy-on-write,
 * and the sliding-window pool with its pairs and pins. See kv_cache.h for
 * the design.
 */
#include "engine/kv_cache.h"

#include <stdlib.h>
#include <string.h>

static int nuage__blocks_for(const nuage__kv *kv, int len) {
    return (len + kv->block_size - 1) / kv->block_size;
}

int nuage__kv_window_blocks_for(int n_swa, int block_size, int n_seq, int n_batch_max) {
    if (n_swa <= 0 || block_size <= 0) return 0;
    long per = (n_swa - 1 + block_size - 1) / block_size + 2;
    long n = (long)n_seq * per + (n_batch_max + block_size - 1) / block_size + 1;
    return n > (1L << 30) ? (1 << 30) : (int)n;
}

int nuage__kv_init(nuage__kv *kv, int n_layer, int64_t k_dim, int64_t v_dim, int block_size,
                   int n_blocks, int n_seq, int n_ctx, nuage_kv_type type) {
    return nuage__kv_init_ex(kv, n_layer, k_dim, v_dim, block_size, n_blocks, n_seq, n_ctx, type,
                             NULL, 0, 0);
}

/* Allocate the window pool and the layer maps (kv->n_layer etc. set). */
static int nuage__kv_init_window(nuage__kv *kv, const uint8_t *swa, int n_swa, int w_blocks) {
    kv->n_swa = n_swa;
    kv->w_n_blocks = w_blocks;
    kv->lwin = malloc((size_t)kv->n_layer);
    kv->lidx = malloc((size_t)kv->n_layer * sizeof *kv->lidx);
    if (!kv->lwin || !kv->lidx) return NUAGE_E_NOMEM;
    int ng = 0, nw = 0;
    for (int l = 0; l < kv->n_layer; l++) {
        kv->lwin[l] = swa[l] ? 1 : 0;
        kv->lidx[l] = swa[l] ? nw++ : ng++;
    }
    kv->n_wlayer = nw;
    size_t slots = (size_t)nw * (size_t)w_blocks * (size_t)kv->block_size;
    kv->wk = malloc(slots * kv->k_row);
    if (kv->v_dim > 0) kv->wv = malloc(slots * kv->v_row);
    kv->wref = calloc((size_t)w_blocks, sizeof *kv->wref);
    kv->wfree_ids = malloc((size_t)w_blocks * sizeof *kv->wfree_ids);
    kv->wowner = malloc((size_t)w_blocks * sizeof *kv->wowner);
    kv->gpair = malloc((size_t)kv->n_blocks * sizeof *kv->gpair);
    kv->gpin = calloc((size_t)kv->n_blocks, 1);
    if (!kv->wk || (kv->v_dim > 0 && !kv->wv) || !kv->wref || !kv->wfree_ids || !kv->wowner ||
        !kv->gpair || !kv->gpin)
        return NUAGE_E_NOMEM;
    for (int i = 0; i < w_blocks; i++) {
        kv->wfree_ids[i] = w_blocks - 1 - i;
        kv->wowner[i] = -1;
    }
    for (int i = 0; i < kv->n_blocks; i++) kv->gpair[i] = -1;
    kv->w_n_free = w_blocks;
    return 0;
}

static void nuage__kv_free_window(nuage__kv *kv) {
    free(kv->lwin); free(kv->lidx); free(kv->wk); free(kv->wv); free(kv->wref);
    free(kv->wfree_ids); free(kv->wowner); free(kv->gpair); free(kv->gpin);
}

int nuage__kv_init_ex(nuage__kv *kv, int n_layer, int64_t k_dim, int64_t v_dim, int block_size,
                      int n_blocks, int n_seq, int n_ctx, nuage_kv_type type,
                      const uint8_t *swa, int n_swa, int w_blocks) {
    memset(kv, 0, sizeof *kv);
    if (n_layer <= 0 || k_dim <= 0 || v_dim < 0 || block_size <= 0 || n_blocks <= 0 ||
        n_seq <= 0 || n_ctx <= 0)
        return NUAGE_E_INVAL;
    int n_win = 0;
    if (swa && n_swa > 0 && n_swa < n_ctx)
        for (int l = 0; l < n_layer; l++) n_win += swa[l] ? 1 : 0;
    if (n_win > 0 && w_blocks < nuage__kv_window_blocks_for(n_swa, block_size, n_seq, 1))
        return NUAGE_E_INVAL;
    kv->n_layer = n_layer;
    kv->k_dim = k_dim;
    kv->v_dim = v_dim;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    kv->n_seq = n_seq;
    kv->n_ctx = n_ctx;
    kv->type = type;
    kv->elem = type == NUAGE_KV_F16 ? 2 : type == NUAGE_KV_Q8_0 ? 1 : 4;
    if (type == NUAGE_KV_Q8_0 && (k_dim % 32 || v_dim % 32)) return NUAGE_E_INVAL;
    kv->k_row = nuage__kv_row_bytes(type, k_dim);
    kv->v_row = nuage__kv_row_bytes(type, v_dim);
    /* Global storage holds the layers that are not window layers (at least
     * one byte, so a model whose every layer is a window layer still has
     * block ids for the accounting and the prefix cache). */
    size_t slots = (size_t)(n_layer - n_win) * (size_t)n_blocks * (size_t)block_size;
    kv->k = malloc(slots ? slots * kv->k_row : 1);
    if (!kv->k) goto fail_k;
    if (v_dim > 0) {
        kv->v = malloc(slots ? slots * kv->v_row : 1);
        if (!kv->v) goto fail_v;
    }
    kv->ref = calloc((size_t)n_blocks, sizeof *kv->ref);
    if (!kv->ref) goto fail_ref;
    kv->free_ids = malloc((size_t)n_blocks * sizeof *kv->free_ids);
    if (!kv->free_ids) goto fail_free;
    kv->seqs = calloc((size_t)n_seq, sizeof *kv->seqs);
    if (!kv->seqs) goto fail_seqs;
    if (n_win > 0 && nuage__kv_init_window(kv, swa, n_swa, w_blocks)) goto fail_window;
    /* Free stack: lowest ids on top, so a fresh context fills blocks in order. */
    for (int i = 0; i < n_blocks; i++) kv->free_ids[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    return 0;

fail_window:
    nuage__kv_free_window(kv);
    free(kv->seqs);
fail_seqs:
    free(kv->free_ids);
fail_free:
    free(kv->ref);
fail_ref:
    free(kv->v);
fail_v:
    free(kv->k);
fail_k:
    memset(kv, 0, sizeof *kv);
    return NUAGE_E_NOMEM;
}

void nuage__kv_free(nuage__kv *kv) {
    if (!kv->seqs) return;
    for (int s = 0; s < kv->n_seq; s++) {
        free(kv->seqs[s].blocks);
        free(kv->seqs[s].wblocks);
    }
    free(kv->seqs);
    nuage__kv_free_window(kv);
    free(kv->free_ids);
    free(kv->ref);
    free(kv->v);
    free(kv->k);
    memset(kv, 0, sizeof *kv);
}

/* ---- the window pool: blocks, pairs, pins ------------------------------------ */

static void nuage__kv_wrelease(nuage__kv *kv, int32_t w) {
    if (--kv->wref[w] > 0) return;
    int32_t b = kv->wowner[w];
    if (b >= 0) kv->gpair[b] = -1; /* a weak pair (a pin would have held w) */
    kv->wowner[w] = -1;
    kv->wfree_ids[kv->w_n_free++] = w;
}

/* Break global block b's pair; drop its pin if it held one. */
static void nuage__kv_unpair(nuage__kv *kv, int32_t b) {
    int32_t w = kv->gpair[b];
    if (w < 0) return;
    kv->gpair[b] = -1;
    kv->wowner[w] = -1;
    if (kv->gpin[b]) {
        kv->gpin[b] = 0;
        nuage__kv_wrelease(kv, w);
    }
}

/* Pair global block b with window block w (both written for the same
 * logical block of the same sequence), breaking older pairs of either. */
static void nuage__kv_pair(nuage__kv *kv, int32_t b, int32_t w) {
    if (kv->gpair[b] == w) return;
    nuage__kv_unpair(kv, b);
    if (kv->wowner[w] >= 0) nuage__kv_unpair(kv, kv->wowner[w]);
    kv->gpair[b] = w;
    kv->wowner[w] = b;
}

/* A window block. The pool is sized so that live sequences never exhaust
 * it (kv_cache.h); when only pins are left to take, one held by nobody
 * else is dropped. */
static int32_t nuage__kv_walloc(nuage__kv *kv) {
    if (kv->w_n_free == 0)
        for (int32_t b = 0; b < kv->n_blocks && kv->w_n_free == 0; b++)
            if (kv->gpin[b] && kv->wref[kv->gpair[b]] == 1) nuage__kv_unpair(kv, b);
    int32_t w = kv->wfree_ids[--kv->w_n_free];
    kv->wref[w] = 1;
    kv->wowner[w] = -1;
    return w;
}

static void nuage__kv_copy_wblock(nuage__kv *kv, int32_t dst, int32_t src) {
    size_t bs = (size_t)kv->block_size;
    for (int l = 0; l < kv->n_wlayer; l++) {
        size_t base_d = ((size_t)l * kv->w_n_blocks + (size_t)dst), base_s = ((size_t)l * kv->w_n_blocks + (size_t)src);
        size_t kb = bs * kv->k_row;
        memcpy(kv->wk + base_d * kb, kv->wk + base_s * kb, kb);
        if (kv->v_dim > 0) {
            size_t vb = bs * kv->v_row;
            memcpy(kv->wv + base_d * vb, kv->wv + base_s * vb, vb);
        }
    }
}

/* First logical block whose window rows the next token of a sequence of
 * length len reads: it sees positions len - W + 1 .. len - 1. */
static int nuage__kv_wfirst(const nuage__kv *kv, int len) {
    int p = len - kv->n_swa + 1;
    return p > 0 ? p / kv->block_size : 0;
}

/* Release seq's window blocks below its window -- the window of its last
 * full-block boundary, so that its full blocks stay attachable for the
 * prefix cache (at no cost: still at most ceil((W - 1) / bs) + 1 blocks),
 * widened by w_keep positions for rollbacks (ceil((W - 1 + w_keep) / bs)
 * + 1 blocks). */
static void nuage__kv_trim_seq(nuage__kv *kv, nuage__kv_seq *s) {
    int lo = nuage__kv_wfirst(kv, s->len - s->len % kv->block_size - kv->w_keep);
    if (lo > s->n_blocks) lo = s->n_blocks;
    for (; s->wlo < lo; s->wlo++) {
        if (s->wblocks[s->wlo] >= 0) nuage__kv_wrelease(kv, s->wblocks[s->wlo]);
        s->wblocks[s->wlo] = -1;
    }
}

void nuage__kv_trim_windows(nuage__kv *kv) {
    if (!kv->lwin) return;
    for (int s = 0; s < kv->n_seq; s++) nuage__kv_trim_seq(kv, &kv->seqs[s]);
}

int nuage__kv_window_held(const nuage__kv *kv, int seq) {
    if (!kv->lwin) return 0;
    const nuage__kv_seq *s = &kv->seqs[seq];
    int n = 0;
    for (int i = s->wlo; i < s->n_blocks; i++) n += s->wblocks[i] >= 0;
    return n;
}

/* ---- the global pool ------------------------------------------------------------- */

int nuage__kv_blocks_needed(const nuage__kv *kv, int seq, int new_len) {
    const nuage__kv_seq *s = &kv->seqs[seq];
    if (new_len <= s->len) return 0;
    int need = nuage__blocks_for(kv, new_len) - s->n_blocks;
    if (need < 0) need = 0;
    /* Writing into a partially filled shared block copies it first. */
    int first = s->len / kv->block_size;
    if (first < s->n_blocks && kv->ref[s->blocks[first]] > 1) need++;
    return need;
}

static int32_t nuage__kv_alloc(nuage__kv *kv) {
    int32_t b = kv->free_ids[--kv->n_free];
    kv->ref[b] = 1;
    return b;
}

static void nuage__kv_release(nuage__kv *kv, int32_t b) {
    if (--kv->ref[b] > 0) return;
    if (kv->gpair) nuage__kv_unpair(kv, b);
    kv->free_ids[kv->n_free++] = b;
}

static void nuage__kv_copy_block(nuage__kv *kv, int32_t dst, int32_t src) {
    size_t bs = (size_t)kv->block_size;
    int n_glayer = kv->n_layer - kv->n_wlayer;
    for (int l = 0; l < n_glayer; l++) {
        size_t kb = bs * kv->k_row;
        size_t base_d = ((size_t)l * kv->n_blocks + (size_t)dst), base_s = ((size_t)l * kv->n_blocks + (size_t)src);
        memcpy(kv->k + base_d * kb, kv->k + base_s * kb, kb);
        if (kv->v_dim > 0) {
            size_t vb = bs * kv->v_row;
            memcpy(kv->v + base_d * vb, kv->v + base_s * vb, vb);
        }
    }
}

static int nuage__kv_table_reserve(nuage__kv_seq *s, int n, int window) {
    if (n <= s->cap) return 0;
    int cap = s->cap ? s->cap : 8;
    while (cap < n) cap *= 2;
    int32_t *nb = realloc(s->blocks, (size_t)cap * sizeof *nb);
    if (!nb) return NUAGE_E_NOMEM;
    s->blocks = nb;
    if (window) {
        int32_t *nw = realloc(s->wblocks, (size_t)cap * sizeof *nw);
        if (!nw) return NUAGE_E_NOMEM;
        for (int i = s->cap; i < cap; i++) nw[i] = -1;
        s->wblocks = nw;
    }
    s->cap = cap;
    return 0;
}

void nuage__kv_grow(nuage__kv *kv, int seq, int new_len) {
    nuage__kv_seq *s = &kv->seqs[seq];
    if (new_len <= s->len) return;
    const bool win = kv->lwin != NULL;
    if (win) nuage__kv_trim_seq(kv, s);
    int first = s->len / kv->block_size;
    if (first < s->n_blocks) {
        /* the partially filled block about to be written: copy if shared */
        if (kv->ref[s->blocks[first]] > 1) {
            int32_t nb = nuage__kv_alloc(kv);
            nuage__kv_copy_block(kv, nb, s->blocks[first]);
            nuage__kv_release(kv, s->blocks[first]);
            s->blocks[first] = nb;
        }
        if (win) {
            int32_t b = s->blocks[first], w = s->wblocks[first];
            /* our own block's pin on w: no longer worth keeping, w changes */
            if (kv->gpair[b] == w) nuage__kv_unpair(kv, b);
            if (kv->wref[w] > 1) {
                int32_t nw = nuage__kv_walloc(kv);
                nuage__kv_copy_wblock(kv, nw, w);
                nuage__kv_wrelease(kv, w);
                s->wblocks[first] = w = nw;
            }
            nuage__kv_pair(kv, b, w);
        }
    }
    int want = nuage__blocks_for(kv, new_len);
    /* Tables are sized for n_ctx at context creation, so this cannot fail. */
    while (s->n_blocks < want) {
        int i = s->n_blocks++;
        s->blocks[i] = nuage__kv_alloc(kv);
        if (win) {
            s->wblocks[i] = nuage__kv_walloc(kv);
            nuage__kv_pair(kv, s->blocks[i], s->wblocks[i]);
        }
    }
    s->len = new_len;
}

void nuage__kv_truncate(nuage__kv *kv, int seq, int p0) {
    nuage__kv_seq *s = &kv->seqs[seq];
    if (p0 < 0) p0 = 0;
    if (p0 >= s->len) return;
    /* The window rows p0 needs are gone: start over (a recompute, never a
     * read of a freed block). */
    if (kv->lwin && nuage__kv_wfirst(kv, p0) < s->wlo) p0 = 0;
    int keep = nuage__blocks_for(kv, p0);
    while (s->n_blocks > keep) {
        int i = --s->n_blocks;
        nuage__kv_release(kv, s->blocks[i]);
        if (kv->lwin && s->wblocks[i] >= 0) {
            nuage__kv_wrelease(kv, s->wblocks[i]);
            s->wblocks[i] = -1;
        }
    }
    s->len = p0;
    if (kv->lwin) {
        if (p0 == 0) s->wlo = 0;
        nuage__kv_trim_seq(kv, s);
    }
}

int nuage__kv_fork(nuage__kv *kv, int dst, int src, int n) {
    nuage__kv_seq *d = &kv->seqs[dst], *s = &kv->seqs[src];
    if (n > s->len) n = s->len;
    if (n < 0) n = 0;
    int full = n / kv->block_size, partial = n % kv->block_size ? 1 : 0;
    int lo = kv->lwin ? nuage__kv_wfirst(kv, n) : 0;
    if (kv->lwin && n > 0 && lo < s->wlo) return NUAGE_E_STATE;
    if (partial > kv->n_free) return NUAGE_E_KV_FULL;
    for (int i = 0; i < full; i++) {
        d->blocks[i] = s->blocks[i];
        kv->ref[s->blocks[i]]++;
    }
    d->n_blocks = full;
    if (kv->lwin) {
        /* window rows: share the blocks still in the window, and those
         * still held below it for rollbacks (w_keep) */
        int lk = nuage__kv_wfirst(kv, n - kv->w_keep);
        if (lk < s->wlo) lk = s->wlo;
        if (lk > lo) lk = lo;
        for (int i = lk; i < full; i++) {
            d->wblocks[i] = s->wblocks[i];
            kv->wref[s->wblocks[i]]++;
        }
        d->wlo = lk;
    }
    if (partial) {
        int32_t nb = nuage__kv_alloc(kv);
        nuage__kv_copy_block(kv, nb, s->blocks[full]);
        d->blocks[d->n_blocks++] = nb;
        if (kv->lwin) {
            int32_t nw = nuage__kv_walloc(kv);
            nuage__kv_copy_wblock(kv, nw, s->wblocks[full]);
            d->wblocks[full] = nw;
            nuage__kv_pair(kv, nb, nw);
        }
    }
    d->len = n;
    return 0;
}

/* ---- outside references (the prefix cache) ------------------------------------- */

int nuage__kv_block_ref(nuage__kv *kv, int32_t block) {
    if (block < 0 || block >= kv->n_blocks || kv->ref[block] <= 0) return NUAGE_E_RANGE;
    kv->ref[block]++;
    /* keep the window rows of this block alive with it (see kv_cache.h) */
    if (kv->gpair && kv->gpair[block] >= 0 && !kv->gpin[block]) {
        kv->gpin[block] = 1;
        kv->wref[kv->gpair[block]]++;
    }
    return 0;
}

int nuage__kv_block_unref(nuage__kv *kv, int32_t block) {
    if (block < 0 || block >= kv->n_blocks || kv->ref[block] <= 0) return NUAGE_E_RANGE;
    nuage__kv_release(kv, block);
    return 0;
}

int nuage__kv_attachable(const nuage__kv *kv, const int32_t *blocks, int n) {
    if (!kv->lwin) return n;
    for (int m = n; m > 0; m--) {
        int lo = nuage__kv_wfirst(kv, m * kv->block_size), i = lo;
        while (i < m && blocks[i] >= 0 && blocks[i] < kv->n_blocks && kv->gpair[blocks[i]] >= 0) i++;
        if (i == m) return m;
    }
    return 0;
}

int nuage__kv_attach(nuage__kv *kv, int seq, const int32_t *blocks, int n) {
    nuage__kv_seq *s = &kv->seqs[seq];
    if (n < 0) return NUAGE_E_RANGE;
    if (s->len != 0 || s->n_blocks != 0 || (long)n * kv->block_size > kv->n_ctx) return NUAGE_E_STATE;
    for (int i = 0; i < n; i++)
        if (blocks[i] < 0 || blocks[i] >= kv->n_blocks || kv->ref[blocks[i]] <= 0) return NUAGE_E_RANGE;
    if (nuage__kv_attachable(kv, blocks, n) != n) return NUAGE_E_STATE;
    for (int i = 0; i < n; i++) {
        kv->ref[blocks[i]]++;
        s->blocks[i] = blocks[i];
    }
    if (kv->lwin) {
        int lo = nuage__kv_wfirst(kv, n * kv->block_size);
        for (int i = lo; i < n; i++) {
            s->wblocks[i] = kv->gpair[blocks[i]];
            kv->wref[s->wblocks[i]]++;
        }
        s->wlo = lo;
    }
    s->n_blocks = n;
    s->len = n * kv->block_size;
    return 0;
}

/* Used by context creation: size every table for n_ctx tokens up front so
 * growing never allocates on the hot path. */
int nuage__kv_tables_init(nuage__kv *kv) {
    int per = nuage__blocks_for(kv, kv->n_ctx);
    for (int s = 0; s < kv->n_seq; s++)
        if (nuage__kv_table_reserve(&kv->seqs[s], per, kv->lwin != NULL)) return NUAGE_E_NOMEM;
    return 0;
}
