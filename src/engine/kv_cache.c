/*
 * kv_cache.c - block pool, block tables, reference counts, copy-on-write.
 * See kv_cache.h for the design.
 */
#include "engine/kv_cache.h"

#include <stdlib.h>
#include <string.h>

int nuage__kv_init(nuage__kv *kv, int n_layer, int64_t k_dim, int64_t v_dim, int block_size,
                   int n_blocks, int n_seq, int n_ctx, nuage_kv_type type) {
    memset(kv, 0, sizeof *kv);
    if (n_layer <= 0 || k_dim <= 0 || v_dim < 0 || block_size <= 0 || n_blocks <= 0 ||
        n_seq <= 0 || n_ctx <= 0)
        return NUAGE_E_INVAL;
    kv->n_layer = n_layer;
    kv->k_dim = k_dim;
    kv->v_dim = v_dim;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    kv->n_seq = n_seq;
    kv->n_ctx = n_ctx;
    kv->type = type;
    kv->elem = type == NUAGE_KV_F16 ? 2 : 4;
    size_t slots = (size_t)n_layer * (size_t)n_blocks * (size_t)block_size;
    kv->k = malloc(slots * (size_t)k_dim * kv->elem);
    if (!kv->k) goto fail_k;
    if (v_dim > 0) {
        kv->v = malloc(slots * (size_t)v_dim * kv->elem);
        if (!kv->v) goto fail_v;
    }
    kv->ref = calloc((size_t)n_blocks, sizeof *kv->ref);
    if (!kv->ref) goto fail_ref;
    kv->free_ids = malloc((size_t)n_blocks * sizeof *kv->free_ids);
    if (!kv->free_ids) goto fail_free;
    kv->seqs = calloc((size_t)n_seq, sizeof *kv->seqs);
    if (!kv->seqs) goto fail_seqs;
    /* Free stack: lowest ids on top, so a fresh context fills blocks in order. */
    for (int i = 0; i < n_blocks; i++) kv->free_ids[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    return 0;

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
    for (int s = 0; s < kv->n_seq; s++) free(kv->seqs[s].blocks);
    free(kv->seqs);
    free(kv->free_ids);
    free(kv->ref);
    free(kv->v);
    free(kv->k);
    memset(kv, 0, sizeof *kv);
}

static int nuage__blocks_for(const nuage__kv *kv, int len) {
    return (len + kv->block_size - 1) / kv->block_size;
}

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
    if (--kv->ref[b] == 0) kv->free_ids[kv->n_free++] = b;
}

static void nuage__kv_copy_block(nuage__kv *kv, int32_t dst, int32_t src) {
    size_t bs = (size_t)kv->block_size;
    for (int l = 0; l < kv->n_layer; l++) {
        size_t kb = bs * (size_t)kv->k_dim * kv->elem;
        size_t base_d = ((size_t)l * kv->n_blocks + (size_t)dst), base_s = ((size_t)l * kv->n_blocks + (size_t)src);
        memcpy(kv->k + base_d * kb, kv->k + base_s * kb, kb);
        if (kv->v_dim > 0) {
            size_t vb = bs * (size_t)kv->v_dim * kv->elem;
            memcpy(kv->v + base_d * vb, kv->v + base_s * vb, vb);
        }
    }
}

static int nuage__kv_table_reserve(nuage__kv_seq *s, int n) {
    if (n <= s->cap) return 0;
    int cap = s->cap ? s->cap : 8;
    while (cap < n) cap *= 2;
    int32_t *nb = realloc(s->blocks, (size_t)cap * sizeof *nb);
    if (!nb) return NUAGE_E_NOMEM;
    s->blocks = nb;
    s->cap = cap;
    return 0;
}

void nuage__kv_grow(nuage__kv *kv, int seq, int new_len) {
    nuage__kv_seq *s = &kv->seqs[seq];
    if (new_len <= s->len) return;
    int first = s->len / kv->block_size;
    if (first < s->n_blocks && kv->ref[s->blocks[first]] > 1) {
        int32_t nb = nuage__kv_alloc(kv);
        nuage__kv_copy_block(kv, nb, s->blocks[first]);
        nuage__kv_release(kv, s->blocks[first]);
        s->blocks[first] = nb;
    }
    int want = nuage__blocks_for(kv, new_len);
    /* Tables are sized for n_ctx at context creation, so this cannot fail. */
    while (s->n_blocks < want) s->blocks[s->n_blocks++] = nuage__kv_alloc(kv);
    s->len = new_len;
}

void nuage__kv_truncate(nuage__kv *kv, int seq, int p0) {
    nuage__kv_seq *s = &kv->seqs[seq];
    if (p0 < 0) p0 = 0;
    if (p0 >= s->len) return;
    int keep = nuage__blocks_for(kv, p0);
    while (s->n_blocks > keep) nuage__kv_release(kv, s->blocks[--s->n_blocks]);
    s->len = p0;
}

int nuage__kv_fork(nuage__kv *kv, int dst, int src, int n) {
    nuage__kv_seq *d = &kv->seqs[dst], *s = &kv->seqs[src];
    if (n > s->len) n = s->len;
    int full = n / kv->block_size, partial = n % kv->block_size ? 1 : 0;
    if (partial > kv->n_free) return NUAGE_E_KV_FULL;
    for (int i = 0; i < full; i++) {
        d->blocks[i] = s->blocks[i];
        kv->ref[s->blocks[i]]++;
    }
    d->n_blocks = full;
    if (partial) {
        int32_t nb = nuage__kv_alloc(kv);
        nuage__kv_copy_block(kv, nb, s->blocks[full]);
        d->blocks[d->n_blocks++] = nb;
    }
    d->len = n;
    return 0;
}

/* Used by context creation: size every table for n_ctx tokens up front so
 * growing never allocates on the hot path. */
int nuage__kv_tables_init(nuage__kv *kv) {
    int per = nuage__blocks_for(kv, kv->n_ctx);
    for (int s = 0; s < kv->n_seq; s++)
        if (nuage__kv_table_reserve(&kv->seqs[s], per)) return NUAGE_E_NOMEM;
    return 0;
}
