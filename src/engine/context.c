/*
 * context.c - creating a context (KV pool, scratch, threads), batches and
 * the KV-cache calls of the public API.
 */
#include "engine/context.h"

#include "engine/attn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

nuage_context_params nuage_context_default_params(void) {
    nuage_context_params p = {0};
    p.n_seq_max = 1;
    p.n_batch_max = 512;
    p.kv_block_size = 16;
    p.kv_type = NUAGE_KV_F16;
    return p;
}

static void *nuage__alloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
    return p;
}

/* The KV layout a context gets for parameters p (defaults resolved in
 * place): how many layers use the window pool and its size, the global
 * pool's block count and the bytes of both pools. One place, so that
 * nuage_context_kv_bytes (deployment sizing) and nuage_context_new agree
 * exactly. 0, or NUAGE_E_INVAL with a message. */
typedef struct {
    int n_win, w_blocks;
    int64_t k_dim, v_dim;
    size_t block_bytes, wpool_bytes;
} nuage__kv_plan;

static int nuage__plan_kv(const nuage_model *m, nuage_context_params *pp, nuage__kv_plan *pl, char *err,
                          size_t errlen) {
    nuage_context_params p = *pp;
    const nuage_hparams *hp = &m->hp;
    memset(pl, 0, sizeof *pl);
    if (p.n_ctx <= 0) p.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (p.n_seq_max <= 0) p.n_seq_max = 1;
    if (p.n_batch_max <= 0) p.n_batch_max = 512;
    if (p.kv_block_size <= 0) p.kv_block_size = 16;
    if (p.n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        p.n_threads = c > 0 ? (int)c : 1;
    }
    *pp = p;
    if (p.n_ctx > (1 << 24) || p.n_seq_max > 4096 || p.n_batch_max > 65536 ||
        p.kv_block_size > 4096 ||
        (p.kv_type != NUAGE_KV_F32 && p.kv_type != NUAGE_KV_F16 && p.kv_type != NUAGE_KV_Q8_0)) {
        snprintf(err, errlen, "context parameters out of range");
        return NUAGE_E_INVAL;
    }
    m->arch->kv_dims(m, &pl->k_dim, &pl->v_dim);
    /* Sliding-window layers live in a small pool of their own (kv_cache.h)
     * when the window is shorter than the context; the global pool then
     * stores only the other layers. */
    if (p.kv_window_keep < 0) p.kv_window_keep = 0;
    if (p.kv_window_keep > p.n_ctx) p.kv_window_keep = p.n_ctx;
    pp->kv_window_keep = p.kv_window_keep;
    if (hp->n_swa > 0 && hp->n_swa < p.n_ctx) {
        for (int il = 0; il < hp->n_layer; il++) pl->n_win += m->layers[il].swa ? 1 : 0;
        /* live sequences' worst case, plus room to pin the window tails of
         * about one cached prefix per two sequences; rows kept for
         * rollbacks (kv_window_keep) widen the window held */
        int held = hp->n_swa + p.kv_window_keep;
        int per = (held - 1 + p.kv_block_size - 1) / p.kv_block_size + 1;
        if (pl->n_win)
            pl->w_blocks = nuage__kv_window_blocks_for(held, p.kv_block_size, p.n_seq_max, p.n_batch_max) +
                           per * (p.n_seq_max / 2 + 1);
    }
    size_t row_bytes = (nuage__kv_row_bytes(p.kv_type, pl->k_dim) + nuage__kv_row_bytes(p.kv_type, pl->v_dim)) *
                       (size_t)p.kv_block_size;
    pl->block_bytes = row_bytes * (size_t)(hp->n_layer - pl->n_win);
    pl->wpool_bytes = row_bytes * (size_t)pl->n_win * (size_t)pl->w_blocks;
    if (p.kv_blocks <= 0) {
        if (p.kv_memory > 0 && pl->n_win == hp->n_layer)
            p.kv_blocks = p.n_seq_max * ((p.n_ctx + p.kv_block_size - 1) / p.kv_block_size);
        else if (p.kv_memory > 0)
            p.kv_blocks = p.kv_memory > pl->wpool_bytes ? (int)((p.kv_memory - pl->wpool_bytes) / pl->block_bytes) : 0;
        else p.kv_blocks = (p.n_ctx + p.kv_block_size - 1) / p.kv_block_size;
    }
    pp->kv_blocks = p.kv_blocks;
    if (p.kv_blocks <= 0) {
        snprintf(err, errlen, "KV memory too small for one block (%zu bytes%s)", pl->block_bytes,
                 pl->n_win ? " after the sliding-window pool" : "");
        return NUAGE_E_INVAL;
    }
    return 0;
}

uint64_t nuage_context_kv_bytes(const nuage_model *m, const nuage_context_params *params) {
    if (!m || !m->layers) return 0;
    nuage_context_params p = params ? *params : nuage_context_default_params();
    nuage__kv_plan pl;
    char err[8];
    if (nuage__plan_kv(m, &p, &pl, err, sizeof err)) return 0;
    return (uint64_t)p.kv_blocks * (uint64_t)pl.block_bytes + (uint64_t)pl.wpool_bytes;
}

int nuage_context_new(const nuage_model *m, const nuage_context_params *params,
                      nuage_context **out, char *err, size_t errlen) {
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    *out = NULL;
    if (!m->layers) {
        snprintf(err, errlen, "model was loaded vocab-only");
        return NUAGE_E_STATE;
    }
    nuage_context_params p = params ? *params : nuage_context_default_params();
    const nuage_hparams *hp = &m->hp;
    nuage__kv_plan pl;
    int prc = nuage__plan_kv(m, &p, &pl, err, errlen);
    if (prc) return prc;
    int64_t k_dim = pl.k_dim, v_dim = pl.v_dim;
    int w_blocks = pl.w_blocks;
    size_t block_bytes = pl.block_bytes, wpool_bytes = pl.wpool_bytes;
    /* the tiled attention serves standard attention; a q8_0 cache needs it */
    bool tiled = !m->arch->attn && nuage__attn_tiled_ok(hp->head_dim_k, hp->head_dim_v, p.kv_type);
    /* NUAGE_ATTN_ROWS=1: the per-row path instead, to compare (f16/f32 only) */
    const char *rows_env = getenv("NUAGE_ATTN_ROWS");
    if (rows_env && !strcmp(rows_env, "1") && p.kv_type != NUAGE_KV_Q8_0) tiled = false;
    if (p.kv_type == NUAGE_KV_Q8_0 && !tiled) {
        snprintf(err, errlen, "KV type q8_0 needs standard attention with head widths that are multiples of 32 "
                 "(this model: %s, head widths %d/%d); use f16", m->arch->name, hp->head_dim_k, hp->head_dim_v);
        return NUAGE_E_INVAL;
    }
    uint8_t *swa = NULL;
    if (pl.n_win) {
        swa = calloc((size_t)hp->n_layer, 1);
        if (!swa) return NUAGE_E_NOMEM;
        for (int il = 0; il < hp->n_layer; il++) swa[il] = m->layers[il].swa ? 1 : 0;
    }

    nuage_context *c = calloc(1, sizeof *c);
    if (!c) {
        free(swa);
        return NUAGE_E_NOMEM;
    }
    c->m = m;
    c->n_ctx = p.n_ctx;
    c->n_seq_max = p.n_seq_max;
    c->n_batch_max = p.n_batch_max;
    int rc = nuage__kv_init_ex(&c->kv, hp->n_layer, k_dim, v_dim, p.kv_block_size, p.kv_blocks,
                               p.n_seq_max, p.n_ctx, p.kv_type, swa, hp->n_swa, w_blocks);
    free(swa);
    if (!rc && c->kv.lwin) c->kv.w_keep = p.kv_window_keep;
    if (rc) {
        snprintf(err, errlen, "cannot allocate KV cache of %d blocks (%zu bytes)", p.kv_blocks,
                 (size_t)p.kv_blocks * block_bytes + wpool_bytes);
        goto fail_kv;
    }
    rc = NUAGE_E_NOMEM;
    if (nuage__kv_tables_init(&c->kv)) goto fail_pool;
    c->pool = nuage__pool_new(p.n_threads);
    if (!c->pool) goto fail_pool;

    size_t B = (size_t)p.n_batch_max;
    size_t E = (size_t)hp->n_embd;
    size_t Q = (size_t)hp->n_head * (size_t)hp->head_dim_k;
    size_t K = (size_t)k_dim, V = (size_t)v_dim;
    size_t A = (size_t)hp->n_head * (size_t)hp->head_dim_v;
    size_t F = (size_t)(hp->n_ff > hp->n_ff_exp ? hp->n_ff : hp->n_ff_exp);
    if (F == 0) F = 1;
    size_t max_cols = E;
    if (Q > max_cols) max_cols = Q;
    if (A > max_cols) max_cols = A;
    if (F > max_cols) max_cols = F;
    if (K > max_cols) max_cols = K;
    c->x = nuage__alloc(B * E * 4);
    c->xb = nuage__alloc(B * E * 4);
    c->xb2 = nuage__alloc(B * E * 4);
    c->q = nuage__alloc(B * Q * 4);
    c->k = nuage__alloc(B * (K > 0 ? K : 1) * 4);
    c->v = nuage__alloc(B * (V > 0 ? V : 1) * 4);
    c->att = nuage__alloc(B * A * 4);
    c->hb = nuage__alloc(B * F * 4);
    c->hb2 = nuage__alloc(B * F * 4);
    c->rope_cs = nuage__alloc(2 * B * (size_t)hp->rope_dim * 4);
    c->scores = nuage__alloc((size_t)p.n_threads * (size_t)p.n_ctx * 4);
    c->work_size = NUAGE_MM_WORK_BYTES(max_cols, B);
    c->work = nuage__alloc(c->work_size);
    if (m->arch->scratch_bytes) {
        c->arch_scratch = nuage__alloc(m->arch->scratch_bytes(m, p.n_batch_max, p.n_threads, p.n_ctx));
        if (!c->arch_scratch) goto fail_scratch;
    }
    if (tiled) {
        size_t n_units = nuage__attn_units_cap(p.n_batch_max, hp->n_head, hp->n_head_kv);
        c->attn_scratch = nuage__alloc((size_t)p.n_threads * nuage__attn_scratch_bytes(hp->head_dim_k, hp->head_dim_v));
        c->attn_order = malloc(B * sizeof *c->attn_order);
        c->attn_seqoff = malloc(((size_t)p.n_seq_max + 1) * sizeof *c->attn_seqoff);
        c->attn_units = malloc(n_units * nuage__attn_unit_bytes());
        if (!c->attn_scratch || !c->attn_order || !c->attn_seqoff || !c->attn_units) {
            snprintf(err, errlen, "cannot allocate attention scratch for %d threads", p.n_threads);
            goto fail_scratch;
        }
    }
    c->out_row = calloc(B, sizeof *c->out_row);
    c->out_tok = calloc(B, sizeof *c->out_tok);
    c->embd = nuage__alloc(B * E * 4);
    c->seq_next = calloc((size_t)p.n_seq_max, sizeof *c->seq_next);
    if (!c->x || !c->xb || !c->xb2 || !c->q || !c->k || !c->v || !c->att || !c->hb || !c->hb2 ||
        !c->rope_cs || !c->scores || !c->work || !c->out_row || !c->out_tok || !c->embd ||
        !c->seq_next) {
        snprintf(err, errlen, "cannot allocate scratch buffers for a batch of %zu tokens", B);
        goto fail_scratch;
    }
    *out = c;
    return 0;

fail_scratch:
    nuage_context_free(c);
    return rc;
fail_pool:
    nuage__kv_free(&c->kv);
fail_kv:
    free(c);
    return rc;
}

void nuage_context_free(nuage_context *c) {
    if (!c) return;
    nuage__pool_free(c->pool);
    nuage__kv_free(&c->kv);
    free(c->x); free(c->xb); free(c->xb2); free(c->q); free(c->k); free(c->v);
    free(c->att); free(c->hb); free(c->hb2); free(c->rope_cs); free(c->scores);
    free(c->work); free(c->arch_scratch); free(c->out_row); free(c->out_tok); free(c->embd); free(c->logits);
    free(c->seq_next);
    free(c->attn_scratch); free(c->attn_order); free(c->attn_seqoff); free(c->attn_units);
    free(c);
}

const nuage_model *nuage_context_model(const nuage_context *c) { return c->m; }
int nuage_context_n_ctx(const nuage_context *c) { return c->n_ctx; }
int nuage_context_n_seq_max(const nuage_context *c) { return c->n_seq_max; }
int nuage_context_n_batch_max(const nuage_context *c) { return c->n_batch_max; }

int nuage_kv_seq_len(const nuage_context *c, int seq) {
    if (seq < 0 || seq >= c->n_seq_max) return NUAGE_E_RANGE;
    return c->kv.seqs[seq].len;
}

int nuage_kv_seq_truncate(nuage_context *c, int seq, int p0) {
    if (seq < 0 || seq >= c->n_seq_max) return NUAGE_E_RANGE;
    nuage__kv_truncate(&c->kv, seq, p0);
    return 0;
}

int nuage_kv_seq_fork(nuage_context *c, int dst, int src, int n_tokens) {
    if (dst < 0 || dst >= c->n_seq_max || src < 0 || src >= c->n_seq_max || dst == src)
        return NUAGE_E_RANGE;
    if (c->kv.seqs[dst].len != 0) return NUAGE_E_STATE;
    return nuage__kv_fork(&c->kv, dst, src, n_tokens);
}

int nuage_kv_blocks_total(const nuage_context *c) { return c->kv.n_blocks; }
int nuage_kv_blocks_free(const nuage_context *c) { return c->kv.n_free; }
int nuage_kv_block_size(const nuage_context *c) { return c->kv.block_size; }

int nuage_kv_blocks_needed(const nuage_context *c, int seq, int n_tokens) {
    if (seq < 0 || seq >= c->n_seq_max || n_tokens < 0) return NUAGE_E_RANGE;
    return nuage__kv_blocks_needed(&c->kv, seq, c->kv.seqs[seq].len + n_tokens);
}

int nuage_kv_seq_blocks(const nuage_context *c, int seq, const int32_t **blocks) {
    if (seq < 0 || seq >= c->n_seq_max) return NUAGE_E_RANGE;
    *blocks = c->kv.seqs[seq].blocks;
    return c->kv.seqs[seq].n_blocks;
}

int nuage_kv_block_ref(nuage_context *c, int32_t block) { return nuage__kv_block_ref(&c->kv, block); }

int nuage_kv_block_unref(nuage_context *c, int32_t block) { return nuage__kv_block_unref(&c->kv, block); }

int nuage_kv_block_refcount(const nuage_context *c, int32_t block) {
    if (block < 0 || block >= c->kv.n_blocks) return NUAGE_E_RANGE;
    return c->kv.ref[block];
}

int nuage_kv_seq_attach(nuage_context *c, int seq, const int32_t *blocks, int n) {
    if (seq < 0 || seq >= c->n_seq_max || n < 0) return NUAGE_E_RANGE;
    return nuage__kv_attach(&c->kv, seq, blocks, n);
}

int nuage_kv_seq_attachable(const nuage_context *c, const int32_t *blocks, int n) {
    if (n <= 0) return 0;
    return nuage__kv_attachable(&c->kv, blocks, n);
}

int nuage_kv_window_blocks_held(const nuage_context *c, int seq) {
    if (seq < 0 || seq >= c->n_seq_max) return NUAGE_E_RANGE;
    return nuage__kv_window_held(&c->kv, seq);
}

/* ---- batches --------------------------------------------------------------- */

nuage_batch *nuage_batch_new(int capacity) {
    if (capacity <= 0) return NULL;
    nuage_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->capacity = capacity;
    b->token = malloc((size_t)capacity * sizeof *b->token);
    b->pos = malloc((size_t)capacity * sizeof *b->pos);
    b->seq = malloc((size_t)capacity * sizeof *b->seq);
    b->logits = malloc((size_t)capacity * sizeof *b->logits);
    if (!b->token || !b->pos || !b->seq || !b->logits) {
        nuage_batch_free(b);
        return NULL;
    }
    return b;
}

void nuage_batch_free(nuage_batch *b) {
    if (!b) return;
    free(b->token); free(b->pos); free(b->seq); free(b->logits);
    free(b);
}

void nuage_batch_clear(nuage_batch *b) { b->n_tokens = 0; }

int nuage_batch_add(nuage_batch *b, nuage_token tok, int pos, int seq, bool logits) {
    if (b->n_tokens >= b->capacity) return NUAGE_E_RANGE;
    int i = b->n_tokens++;
    b->token[i] = tok;
    b->pos[i] = pos;
    b->seq[i] = seq;
    b->logits[i] = logits ? 1 : 0;
    return i;
}
