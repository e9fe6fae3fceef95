/*
 * forward.c - the transformer forward pass over a batch of tokens from
 * any number of sequences (what continuous batching feeds).
 *
 * Read top to bottom, one step per comment, as in llama2.c: embed, then per
 * layer RMSNorm -> Q/K/V -> (Q/K norm) -> RoPE -> append K/V to the paged
 * cache -> causal attention over each token's own sequence -> output
 * projection -> residual -> RMSNorm -> SwiGLU FFN -> residual; finally the
 * output norm and the vocabulary projection for the tokens that want
 * logits. T is the number of tokens in the batch, E the embedding width.
 * Gemma 3 adds four options read from the model: a scaled embedding, a
 * second RoPE table for window layers, post-norms of each sub-layer's
 * output before its residual add, and a GeGLU FFN (arch_gemma3.c).
 *
 * Each token attends to positions 0..pos of its own sequence; since all of
 * a layer's K/V rows for the batch are written to the cache before any
 * attention runs, tokens of the same sequence in one batch see each other
 * causally exactly as they would one at a time.
 *
 * Numerics follow llama.cpp where it matters for matching its logits:
 * activations are rounded to the weight type's dot type inside matmul,
 * RMSNorm sums squares in double, everything else is f32.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/attn.h"
#include "engine/context.h"
#include "engine/ops.h"
#include "engine/quant.h"
#include "engine/quant_legacy.h"

/* ---- elementwise ops --------------------------------------------------------- */

/* out = x / rms(x) * w  (n values; w may be NULL for no weight) */
void nuage__rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    if (w)
        for (int i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
    else
        for (int i = 0; i < n; i++) out[i] = x[i] * scale;
}

static void nuage__add(float *y, const float *x, long n) {
    for (long i = 0; i < n; i++) y[i] += x[i];
}


/* Rotary tables for one position: cs[2i] = cos(theta_i), cs[2i+1] = sin,
 * i < rope_dim/2, with linear or YaRN scaling as the model asks. */
static float nuage__yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

static void nuage__rope_table(const nuage_model *m, int pos, float base, float scale, float *cs) {
    const nuage_hparams *hp = &m->hp;
    const int d = hp->rope_dim;
    const float *ff = m->rope_freqs.data ? (const float *)m->rope_freqs.data : NULL;
    float corr0 = 0, corr1 = 0, mscale = hp->yarn_attn_factor;
    if (hp->yarn_ext_factor != 0.0f) {
        corr0 = floorf(nuage__yarn_corr_dim(d, hp->rope_orig_ctx, hp->yarn_beta_fast, base));
        corr1 = ceilf(nuage__yarn_corr_dim(d, hp->rope_orig_ctx, hp->yarn_beta_slow, base));
        if (corr0 < 0) corr0 = 0;
        if (corr1 > d - 1) corr1 = (float)(d - 1);
        mscale *= 1.0f + 0.1f * logf(1.0f / scale);
    }
    for (int i = 0; i < d / 2; i++) {
        /* theta_i = pos * base^(-2i/d), divided by the optional frequency factor */
        double theta_extrap = (double)pos * pow((double)base, -2.0 * i / d);
        if (ff) theta_extrap /= ff[i];
        double theta = theta_extrap * scale;
        if (hp->yarn_ext_factor != 0.0f) {
            float y = (i - corr0) / fmaxf(0.001f, corr1 - corr0);
            float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * hp->yarn_ext_factor;
            theta = theta * (1.0 - ramp) + theta_extrap * ramp;
        }
        cs[2 * i] = (float)cos(theta) * mscale;
        cs[2 * i + 1] = (float)sin(theta) * mscale;
    }
}

/* Rotate the first d values of one head vector in place. */
void nuage__rope_apply(float *h, const float *cs, int d, int style) {
    if (style == NUAGE_ROPE_NEOX) {
        for (int i = 0; i < d / 2; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            float a = h[i], b = h[i + d / 2];
            h[i] = a * c - b * s;
            h[i + d / 2] = a * s + b * c;
        }
    } else {
        for (int i = 0; i < d / 2; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            float a = h[2 * i], b = h[2 * i + 1];
            h[2 * i] = a * c - b * s;
            h[2 * i + 1] = a * s + b * c;
        }
    }
}

/* ---- attention ------------------------------------------------------------------ */

typedef struct {
    nuage_context *c;
    const nuage_batch *b;
    int il;
} nuage__attn_job;

/* One chunk of (token, head) pairs: softmax(q.K^T * scale) V over the
 * token's visible sequence positions lo..pos, a KV block at a time.
 * Visible: every p <= pos, or on a sliding-window layer only
 * pos - n_swa < p <= pos. An attention sink s_h (gpt-oss) is one more
 * logit in the softmax denominator that carries no value. */
static void nuage__attn_worker(void *arg, int ith, int nth) {
    nuage__attn_job *j = arg;
    nuage_context *c = j->c;
    const nuage_hparams *hp = &c->m->hp;
    const nuage_layer *L = &c->m->layers[j->il];
    const nuage__kv *kv = &c->kv;
    const nuage_ops *ops = nuage__ops();
    const int H = hp->n_head, hd = hp->head_dim_k, hdv = hp->head_dim_v;
    const int group = hp->n_head / hp->n_head_kv;
    const int T = j->b->n_tokens, bs = kv->block_size;
    const bool f16 = kv->elem == 2;
    const float *sinks = (const float *)L->attn_sinks.data;                   /* (H) or NULL */
    float *sc = c->scores + (size_t)ith * c->n_ctx;           /* (n_ctx) */
    long lo, hi;
    nuage__pool_range((long)T * H, ith, nth, 1, &lo, &hi);
    for (long th = lo; th < hi; th++) {
        int t = (int)(th / H), h = (int)(th % H), hk = h / group;
        int seq = j->b->seq[t], n = j->b->pos[t] + 1;
        /* visible positions [p_lo, n) */
        int p_lo = L->swa && hp->n_swa > 0 && n > hp->n_swa ? n - hp->n_swa : 0;
        const float *q = c->q + ((size_t)t * H + h) * hd;          /* (hd) */
        float *out = c->att + ((size_t)t * H + h) * hdv;           /* (hdv) */
        /* sc[p] = q . k_p * kq_scale for p_lo <= p < n, a block (or the
         * part of one) at a time */
        for (int p0 = p_lo; p0 < n;) {
            int end = (p0 / bs + 1) * bs;
            int m = (end < n ? end : n) - p0;
            const void *k0 = nuage__kv_k(kv, j->il, seq, p0);
            if (f16) ops->scores_f16(m, hd, q, (const uint16_t *)k0 + (size_t)hk * hd, (size_t)kv->k_dim, hp->kq_scale, sc + p0);
            else ops->scores_f32(m, hd, q, (const float *)k0 + (size_t)hk * hd, (size_t)kv->k_dim, hp->kq_scale, sc + p0);
            p0 += m;
        }
        /* softmax: sc = exp(sc - max) / (sum + exp(sink - max)) */
        const int nv = n - p_lo;
        float *scv = sc + p_lo;
        float mx = sinks ? sinks[h] : -INFINITY;
        for (int p = 0; p < nv; p++) mx = scv[p] > mx ? scv[p] : mx;
        float den = ops->exp_sum(nv, scv, mx);
        if (sinks) den += expf(sinks[h] - mx);
        float inv = 1.0f / den;
        for (int p = 0; p < nv; p++) scv[p] *= inv;
        /* out = sum_p sc[p] * v_p */
        memset(out, 0, (size_t)hdv * sizeof(float));
        for (int p0 = p_lo; p0 < n;) {
            int end = (p0 / bs + 1) * bs;
            int m = (end < n ? end : n) - p0;
            const void *v0 = nuage__kv_v(kv, j->il, seq, p0);
            if (f16) ops->accum_f16(m, hdv, sc + p0, (const uint16_t *)v0 + (size_t)hk * hdv, (size_t)kv->v_dim, out);
            else ops->accum_f32(m, hdv, sc + p0, (const float *)v0 + (size_t)hk * hdv, (size_t)kv->v_dim, out);
            p0 += m;
        }
    }
}

/* ---- validation -------------------------------------------------------------------- */

static int nuage__check_batch(nuage_context *c, const nuage_batch *b, char *err, size_t errlen) {
    const int T = b->n_tokens;
    if (T <= 0 || T > c->n_batch_max) {
        snprintf(err, errlen, "batch has %d tokens (allowed 1..%d)", T, c->n_batch_max);
        return NUAGE_E_INVAL;
    }
    for (int s = 0; s < c->n_seq_max; s++) c->seq_next[s] = c->kv.seqs[s].len;
    for (int t = 0; t < T; t++) {
        int s = b->seq[t];
        if (s < 0 || s >= c->n_seq_max) {
            snprintf(err, errlen, "token %d: sequence id %d out of range 0..%d", t, s, c->n_seq_max - 1);
            return NUAGE_E_RANGE;
        }
        if (b->token[t] < 0 || b->token[t] >= c->m->hp.n_vocab) {
            snprintf(err, errlen, "token %d: id %d out of vocabulary (%d)", t, b->token[t], c->m->hp.n_vocab);
            return NUAGE_E_RANGE;
        }
        if (b->pos[t] != c->seq_next[s]) {
            snprintf(err, errlen, "token %d: position %d, but sequence %d continues at %d", t,
                     b->pos[t], s, c->seq_next[s]);
            return NUAGE_E_INVAL;
        }
        if (b->pos[t] >= c->n_ctx) {
            snprintf(err, errlen, "sequence %d: position %d exceeds the context of %d", s, b->pos[t], c->n_ctx);
            return NUAGE_E_CTX;
        }
        c->seq_next[s]++;
    }
    int need = 0;
    for (int s = 0; s < c->n_seq_max; s++)
        if (c->seq_next[s] > c->kv.seqs[s].len) need += nuage__kv_blocks_needed(&c->kv, s, c->seq_next[s]);
    if (need > c->kv.n_free) {
        snprintf(err, errlen, "KV cache full: batch needs %d blocks, %d free", need, c->kv.n_free);
        return NUAGE_E_KV_FULL;
    }
    return 0;
}

/* ---- standard sub-layers ------------------------------------------------------------ */

/* Grouped-query attention with optional biases and Q/K norms:
 * xb2 (T, E) = Wo @ attention(RoPE(Wq xb), RoPE(Wk xb), Wv xb). */
static void nuage__attn_std(nuage_context *c, const nuage_batch *b, int il) {
    const nuage_model *m = c->m;
    const nuage_hparams *hp = &m->hp;
    const nuage_layer *L = &m->layers[il];
    const int T = b->n_tokens;
    const int H = hp->n_head, Hkv = hp->n_head_kv, hd = hp->head_dim_k, hdv = hp->head_dim_v;
    const long Q = (long)H * hd, K = (long)Hkv * hd, V = (long)Hkv * hdv;
    /* q (T, H*hd), k (T, Hkv*hd), v (T, Hkv*hdv) = xb @ Wq^T, Wk^T, Wv^T (+ biases) */
    {
        const nuage_weight *w[3] = {&L->wq, &L->wk, &L->wv};
        float *y[3] = {c->q, c->k, c->v};
        nuage__matmul_n(c->pool, w, 3, c->xb, T, y, c->work);
    }
    if (L->bq.data)
        for (int t = 0; t < T; t++) nuage__add(c->q + t * Q, (const float *)L->bq.data, Q);
    if (L->bk.data)
        for (int t = 0; t < T; t++) nuage__add(c->k + t * K, (const float *)L->bk.data, K);
    if (L->bv.data)
        for (int t = 0; t < T; t++) nuage__add(c->v + t * V, (const float *)L->bv.data, V);
    /* qwen3: per-head RMSNorm of q and k */
    if (L->q_norm.data)
        for (long r = 0; r < (long)T * H; r++)
            nuage__rmsnorm(c->q + r * hd, c->q + r * hd, (const float *)L->q_norm.data, hd, hp->norm_eps);
    if (L->k_norm.data)
        for (long r = 0; r < (long)T * Hkv; r++)
            nuage__rmsnorm(c->k + r * hd, c->k + r * hd, (const float *)L->k_norm.data, hd, hp->norm_eps);
    /* RoPE on every head of q and k (window layers may have their own table) */
    const float *rope_cs = L->swa ? c->rope_cs_swa : c->rope_cs;
    for (int t = 0; t < T; t++) {
        const float *cs = rope_cs + (size_t)t * hp->rope_dim;
        for (int h = 0; h < H; h++) nuage__rope_apply(c->q + t * Q + (long)h * hd, cs, hp->rope_dim, hp->rope_style);
        for (int h = 0; h < Hkv; h++) nuage__rope_apply(c->k + t * K + (long)h * hd, cs, hp->rope_dim, hp->rope_style);
    }
    /* append k, v to the cache at (seq, pos) */
    for (int t = 0; t < T; t++) {
        void *kd = nuage__kv_k(&c->kv, il, b->seq[t], b->pos[t]);
        void *vd = nuage__kv_v(&c->kv, il, b->seq[t], b->pos[t]);
        if (c->kv.type == NUAGE_KV_F32) {
            memcpy(kd, c->k + t * K, (size_t)K * 4);
            memcpy(vd, c->v + t * V, (size_t)V * 4);
        } else if (c->kv.type == NUAGE_KV_Q8_0) {
            nuage__quantize_q8_0_ref(c->k + t * K, kd, K);
            nuage__quantize_q8_0_ref(c->v + t * V, vd, V);
        } else {
            for (long i = 0; i < K; i++) ((uint16_t *)kd)[i] = nuage_fp32_to_fp16(c->k[t * K + i]);
            for (long i = 0; i < V; i++) ((uint16_t *)vd)[i] = nuage_fp32_to_fp16(c->v[t * V + i]);
        }
    }
    /* att (T, H*hdv) = softmax(q k^T * scale) v, causal per sequence:
     * tiled with an online softmax (attn.c), or per row for head widths
     * the tiled kernels do not take */
    if (c->attn_scratch) {
        nuage__attn_tiled(c, b, il);
    } else {
        nuage__attn_job aj = {.c = c, .b = b, .il = il};
        nuage__pool_run(c->pool, nuage__attn_worker, &aj);
    }
    /* xb2 = att @ Wo^T (+ bo) */
    nuage__matmul(c->pool, &L->wo, c->att, T, c->xb2, c->work);
    if (L->bo.data)
        for (int t = 0; t < T; t++) nuage__add(c->xb2 + (size_t)t * hp->n_embd, (const float *)L->bo.data, hp->n_embd);
}

/* SwiGLU: xb2 (T, E) = Wdown (silu(Wgate xb) * (Wup xb)). */
static void nuage__ffn_std(nuage_context *c, const nuage_batch *b, int il) {
    const nuage_model *m = c->m;
    const nuage_layer *L = &m->layers[il];
    const int T = b->n_tokens;
    const long F = m->hp.n_ff;
    {
        const nuage_weight *w[2] = {&L->ffn_gate, &L->ffn_up};
        float *y[2] = {c->hb, c->hb2};
        nuage__matmul_n(c->pool, w, 2, c->xb, T, y, c->work);
    }
    /* hb = silu(xb @ Wgate^T) * (xb @ Wup^T);  xb2 = hb @ Wdown^T */
    /* row by row: a token's values must not depend on where the batch
     * splits into vector lanes and scalar tails (batch invariance) */
    for (int t = 0; t < T; t++) {
        if (m->hp.ffn_act == NUAGE_ACT_GELU_F16) nuage__geglu_f16(F, c->hb + (size_t)t * F, c->hb2 + (size_t)t * F);
        else nuage__ops()->silu_mul(F, c->hb + (size_t)t * F, c->hb2 + (size_t)t * F);
    }
    nuage__matmul(c->pool, &L->ffn_down, c->hb, T, c->xb2, c->work);
}

/* ---- the forward pass ------------------------------------------------------------------ */

static int nuage__ensure_logits(nuage_context *c, int n_out) {
    if (n_out <= c->n_out_cap) return 0;
    float *l = realloc(c->logits, (size_t)n_out * (size_t)c->m->hp.n_vocab * sizeof(float));
    if (!l) return NUAGE_E_NOMEM;
    c->logits = l;
    c->n_out_cap = n_out;
    return 0;
}

int nuage_decode(nuage_context *c, const nuage_batch *b, char *err, size_t errlen) {
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    const nuage_model *m = c->m;
    const nuage_hparams *hp = &m->hp;
    int rc = nuage__check_batch(c, b, err, errlen);
    if (rc) return rc;
    const int T = b->n_tokens, E = hp->n_embd;
    /* Output rows: tokens wanting logits first (they get the vocabulary
     * projection), then those wanting only the hidden state. */
    int n_out = 0, n_logits = 0;
    for (int t = 0; t < T; t++) c->out_row[t] = b->logits[t] == NUAGE_OUT_LOGITS ? n_out++ : -1;
    n_logits = n_out;
    for (int t = 0; t < T; t++)
        if (b->logits[t] == NUAGE_OUT_EMBD) c->out_row[t] = n_out++;
    if (nuage__ensure_logits(c, n_logits)) {
        snprintf(err, errlen, "out of memory for %d logit rows", n_logits);
        return NUAGE_E_NOMEM;
    }
    /* Reserve the cache: from here on nothing can fail. */
    for (int s = 0; s < c->n_seq_max; s++)
        if (c->seq_next[s] > c->kv.seqs[s].len) nuage__kv_grow(&c->kv, s, c->seq_next[s]);

    /* x (T, E) = token embeddings */
    for (int t = 0; t < T; t++) nuage__weight_row(&m->tok_embd, b->token[t], c->x + (size_t)t * E);
    /* gemma3: x *= sqrt(E) */
    if (hp->embd_scale != 0.0f)
        for (long i = 0; i < (long)T * E; i++) c->x[i] *= hp->embd_scale;
    /* rope_cs (T, rope_dim): rotation of each token's position; window
     * layers with their own base/scale get rope_cs_swa, else the same */
    for (int t = 0; t < T; t++)
        nuage__rope_table(m, b->pos[t], hp->rope_freq_base, hp->rope_freq_scale, c->rope_cs + (size_t)t * hp->rope_dim);
    c->rope_cs_swa = c->rope_cs;
    if (hp->rope_freq_base_swa > 0.0f) {
        c->rope_cs_swa = c->rope_cs + (size_t)c->n_batch_max * hp->rope_dim;
        float scale_swa = hp->rope_freq_scale_swa > 0.0f ? hp->rope_freq_scale_swa : hp->rope_freq_scale;
        for (int t = 0; t < T; t++)
            nuage__rope_table(m, b->pos[t], hp->rope_freq_base_swa, scale_swa, c->rope_cs_swa + (size_t)t * hp->rope_dim);
    }

    for (int il = 0; il < hp->n_layer; il++) {
        const nuage_layer *L = &m->layers[il];
        /* xb = RMSNorm(x) * attn_norm */
        for (int t = 0; t < T; t++)
            nuage__rmsnorm(c->xb + (size_t)t * E, c->x + (size_t)t * E, (const float *)L->attn_norm.data, E, hp->norm_eps);
        /* xb2 = attention(xb) */
        if (m->arch->attn) m->arch->attn(c, b, il);
        else nuage__attn_std(c, b, il);
        /* gemma3: xb2 = RMSNorm(xb2) * attn_post_norm */
        if (L->attn_post_norm.data)
            for (int t = 0; t < T; t++)
                nuage__rmsnorm(c->xb2 + (size_t)t * E, c->xb2 + (size_t)t * E, (const float *)L->attn_post_norm.data, E, hp->norm_eps);
        nuage__add(c->x, c->xb2, (long)T * E);
        /* xb = RMSNorm(x) * ffn_norm */
        for (int t = 0; t < T; t++)
            nuage__rmsnorm(c->xb + (size_t)t * E, c->x + (size_t)t * E, (const float *)L->ffn_norm.data, E, hp->norm_eps);
        /* xb2 = ffn(xb) */
        if (m->arch->ffn && L->is_moe) m->arch->ffn(c, b, il);
        else nuage__ffn_std(c, b, il);
        /* gemma3: xb2 = RMSNorm(xb2) * ffn_post_norm */
        if (L->ffn_post_norm.data)
            for (int t = 0; t < T; t++)
                nuage__rmsnorm(c->xb2 + (size_t)t * E, c->xb2 + (size_t)t * E, (const float *)L->ffn_post_norm.data, E, hp->norm_eps);
        nuage__add(c->x, c->xb2, (long)T * E);
    }

    /* embd (n_out, E) = RMSNorm(x) * output_norm, for tokens wanting logits */
    for (int t = 0; t < T; t++) {
        int r = c->out_row[t];
        if (r < 0) continue;
        c->out_tok[r] = t;
        nuage__rmsnorm(c->embd + (size_t)r * E, c->x + (size_t)t * E, (const float *)m->output_norm.data, E, hp->norm_eps);
    }
    /* logits (n_out, n_vocab) = embd @ Wout^T */
    for (int r0 = 0; r0 < n_logits; r0 += c->n_batch_max) {
        int nr = n_logits - r0 < c->n_batch_max ? n_logits - r0 : c->n_batch_max;
        nuage__matmul(c->pool, &m->output, c->embd + (size_t)r0 * E, nr,
                      c->logits + (size_t)r0 * hp->n_vocab, c->work);
    }
    /* optional soft-cap: logits = cap * tanh(logits / cap) */
    if (hp->logit_softcap > 0.0f) {
        const float inv = 1.0f / hp->logit_softcap;
        for (size_t i = 0; i < (size_t)n_logits * hp->n_vocab; i++)
            c->logits[i] = tanhf(c->logits[i] * inv) * hp->logit_softcap;
    }
    c->n_out = n_out;
    c->n_logits = n_logits;
    c->n_tokens_last = T;
    /* sliding-window layers: free the blocks no longer in any window */
    nuage__kv_trim_windows(&c->kv);
    return 0;
}

const float *nuage_get_logits(const nuage_context *c, int i) {
    if (i < 0 || i >= c->n_tokens_last) return NULL;
    int r = c->out_row[i];
    if (r < 0 || r >= c->n_logits) return NULL;
    return c->logits + (size_t)r * c->m->hp.n_vocab;
}

const float *nuage_get_embedding(const nuage_context *c, int i) {
    if (i < 0 || i >= c->n_tokens_last) return NULL;
    int r = c->out_row[i];
    if (r < 0 || r >= c->n_out) return NULL;
    return c->embd + (size_t)r * c->m->hp.n_embd;
}
