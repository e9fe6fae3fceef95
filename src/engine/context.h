/*
 * context.h - the internal view of nuage_context (see nuage.h).
 */
#ifndef NUAGE_CONTEXT_H
#define NUAGE_CONTEXT_H

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/threadpool.h"

struct nuage_context {
    const nuage_model *m;
    nuage_pool *pool;
    nuage__kv kv;
    int n_ctx, n_seq_max, n_batch_max;
    /* Scratch for one batch of up to B = n_batch_max tokens. */
    float *x;         /* (B, n_embd) residual stream */
    float *xb;        /* (B, n_embd) normalised input of a sub-layer */
    float *xb2;       /* (B, n_embd) sub-layer output */
    float *q;         /* (B, n_head * head_dim_k) */
    float *k;         /* (B, n_head_kv * head_dim_k) */
    float *v;         /* (B, n_head_kv * head_dim_v) */
    float *att;       /* (B, n_head * head_dim_v) attention output */
    float *hb, *hb2;  /* (B, n_ff) FFN hidden */
    float *rope_cs;   /* (2, B, rope_dim) interleaved cos, sin per pair; the
                       * second half for window layers with their own base */
    float *rope_cs_swa; /* table window layers use: rope_cs or its 2nd half */
    float *scores;    /* (n_threads, n_ctx) attention scores per thread */
    void *arch_scratch; /* (nuage__arch.scratch_bytes) for arch overrides */
    void *attn_scratch;  /* (n_threads, nuage__attn_scratch_bytes) tiled attention */
    int32_t *attn_order; /* (B) batch tokens grouped by sequence */
    int32_t *attn_seqoff; /* (n_seq_max + 1) */
    void *attn_units;    /* tiled attention work units (attn.c) */
    void *work;       /* quantized activations for matmul */
    size_t work_size;
    /* Outputs of the last decode. */
    int n_out;        /* output rows (logits rows first) */
    int n_logits;     /* rows with logits */
    int32_t *out_row; /* (B) batch index -> output row or -1 */
    int32_t *out_tok; /* (B) output row -> batch index */
    float *embd;      /* (B, n_embd) final-norm hidden of output rows */
    float *logits;    /* (n_out_cap, n_vocab) */
    int n_out_cap;
    /* Per-decode bookkeeping: next position per sequence. */
    int32_t *seq_next; /* (n_seq_max) */
    int n_tokens_last; /* tokens in the last decoded batch */
};

/* Shared by forward.c and the architecture files. */
void nuage__rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void nuage__rope_apply(float *h, const float *cs, int d, int style);
static inline float nuage__silu(float x);
#include <math.h>
static inline float nuage__silu(float x) { return x / (1.0f + expf(-x)); }

#endif
