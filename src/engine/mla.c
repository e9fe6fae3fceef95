/*
 * mla.c - multi-head latent attention (DeepSeek V2/V3/R1), absorbed form.
 *
 * MLA compresses what a token leaves in the cache to one latent vector
 * c (kv_lora_rank values, RMS-normalised output of attn_kv_a_mqa) plus one
 * shared RoPE key k_pe (n_rot values) for all heads. Per head h, the full
 * key would be [W_kb[h] c ; k_pe] and the value W_vb[h] c. Instead of
 * expanding every cached token into per-head keys and values, the
 * projections are absorbed into the query and the output:
 *
 *   score(t, p) = q_nope[h] . (W_kb[h] c_p) + q_pe[h] . k_pe_p
 *               = (W_kb[h]^T q_nope[h]) . c_p + q_pe[h] . k_pe_p
 *   out[h]      = W_vb[h] (sum_p softmax_p c_p)
 *
 * so the cache row is just [c ; k_pe] (kv_lora_rank + n_rot values, V
 * width 0), and attention is multi-query attention with head width
 * kv_lora_rank + n_rot, with the latent part of the same row serving as
 * the value. That is DeepSeek's design: 576 values per token and layer
 * for V3 instead of 128 heads x (192 + 128). The split tensors attn_k_b
 * (per head: kv_lora_rank rows of qk_nope values) and attn_v_b (per head:
 * v_head_dim rows of kv_lora_rank values) are stored per head in 3-D
 * stacks, so the absorption is one nuage__matmul per head over all batch
 * tokens on a weight view of that head, with the activation rounding of
 * the weight type, as ggml does.
 *
 * Steps for a batch of T tokens (H heads, nope + rope = head_dim_k):
 *   q      (T, H*(nope+rope)) = attn_q_b(RMSNorm(attn_q_a(x)))  or attn_q(x)
 *   kv     (T, R + rope)      = attn_kv_a_mqa(x); RMSNorm on the first R
 *   RoPE on q's rope part per head and on kv's rope part; kv -> cache
 *   q_lat  (H, T, R)          = attn_k_b[h] q_nope[h]
 *   o_lat  (H, T, R)          = softmax(scale * [q_lat; q_pe] . cache) cache_latent
 *   att    (T, H*v)           = attn_v_b[h] o_lat[h]
 *   xb2    (T, E)             = attn_output(att)
 * The score scale is 1/sqrt(nope + rope), times the YaRN mscale^2 that
 * arch_deepseek2.c folds into hp->kq_scale.
 *
 * Attention work is split over (token, group of heads) units: all heads
 * read the same cache rows, so a unit reads each row once for its heads
 * (an f16 row is widened to f32 once, with the F16 kernel's converter;
 * the query stays f32, as in forward.c's attention - llama.cpp rounds it
 * to f16 instead, a difference well inside the f16 cache's own noise).
 * Scores are kept per head (two passes: scores and softmax, then the
 * weighted sum of latents), so the softmax uses the exact maximum.
 */
#include "engine/mla.h"

#include <math.h>
#include <string.h>

#include "engine/quant.h"

void nuage__mla_kv_dims(const nuage_model *m, int64_t *k_dim, int64_t *v_dim) {
    *k_dim = (int64_t)m->hp.kv_lora_rank + m->hp.head_dim_rope;
    *v_dim = 0;
}

/* ---- scratch ---------------------------------------------------------------------- */

typedef struct {
    float *qa;    /* (B, q_lora) low-rank query */
    float *qn;    /* (H, B, nope) q_nope, head-major */
    float *qlat;  /* (H, B, R) absorbed queries */
    float *olat;  /* (H, B, R) attention output in latent space */
    float *vt;    /* (H, B, v) value outputs, head-major */
    nuage__mm_part *parts; /* (H) one product per head */
    nuage_weight *views;   /* (H) the heads' weight views */
    /* per attention thread (stride `per_thread` bytes): the query rows
     * [q_lat; q_pe] of its heads (H, R + rope),
     * one cache row converted to f32 (R + rope), scores (H, n_ctx) */
    uint8_t *thr;
    size_t per_thread;
    void *work;   /* matmul activation scratch */
    size_t total;
} nuage__mla_buf;

static size_t nuage__al64(size_t n) { return (n + 63) & ~(size_t)63; }

static void nuage__mla_layout(const nuage_model *m, int n_batch, int n_threads, int n_ctx,
                              uint8_t *base, nuage__mla_buf *s) {
    const nuage_hparams *hp = &m->hp;
    const size_t B = (size_t)n_batch, H = (size_t)hp->n_head, R = (size_t)hp->kv_lora_rank;
    const size_t rope = (size_t)hp->head_dim_rope, nope = (size_t)(hp->head_dim_k - hp->head_dim_rope);
    const size_t ql = (size_t)hp->q_lora_rank;
    size_t cols = (size_t)hp->n_embd;
    if (ql > cols) cols = ql;
    if (R > cols) cols = R;
    if (nope > cols) cols = nope;
    if (H * (size_t)hp->head_dim_v > cols) cols = H * (size_t)hp->head_dim_v; /* attn_output */
    s->per_thread = nuage__al64(H * (R + rope) * 4) + nuage__al64((R + rope) * 4) +
                    nuage__al64(H * (size_t)n_ctx * 4);
    /* the per-head products run as one batch over H * B rows */
    size_t work = NUAGE_MM_WORK_BYTES(cols, B);
    if (NUAGE_MM_WORK_BYTES(R > nope ? R : nope, H * B) > work)
        work = NUAGE_MM_WORK_BYTES(R > nope ? R : nope, H * B);
    const nuage__scratch_part parts[] = {
        {(void **)&s->qa, B * ql * 4},       {(void **)&s->qn, H * B * nope * 4},
        {(void **)&s->qlat, H * B * R * 4},  {(void **)&s->olat, H * B * R * 4},
        {(void **)&s->vt, H * B * (size_t)hp->head_dim_v * 4},
        {(void **)&s->thr, (size_t)n_threads * s->per_thread},
        {(void **)&s->parts, H * sizeof(nuage__mm_part)},
        {(void **)&s->views, H * sizeof(nuage_weight)},
        {&s->work, work},
    };
    s->total = nuage__scratch_carve(parts, sizeof parts / sizeof parts[0], base);
}

size_t nuage__mla_scratch_bytes(const nuage_model *m, int n_batch, int n_threads, int n_ctx) {
    nuage__mla_buf s;
    nuage__mla_layout(m, n_batch, n_threads, n_ctx, NULL, &s);
    return s.total;
}

/* ---- attention over the latent cache ------------------------------------------------- */

typedef struct {
    nuage_context *c;
    const nuage_batch *b;
    int il;
    int n_hg; /* head groups per token: units of work are (token, head group) */
    const nuage__mla_buf *s;
} nuage__mla_job;

/* o += a * v over n values, in blocks of 8 the compiler vectorizes. */
static inline void nuage__mla_axpy(float *restrict o, const float *restrict v, float a, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) o[i + k] += a * v[i + k];
    for (; i < n; i++) o[i] += a * v[i];
}

/*
 * One thread's share of (token, head group) units. For the heads of a
 * unit: scores[h][p] = scale * [q_lat; q_pe][h] . row_p over the token's
 * positions 0..pos, softmax per head, o_lat[h] = sum_p softmax * latent_p.
 * Heads share the cache rows (multi-query), so each row is read - and for
 * an f16 cache converted - once per unit, not once per head.
 */
static void nuage__mla_worker(void *arg, int ith, int nth) {
    const nuage__mla_job *j = arg;
    nuage_context *c = j->c;
    const nuage_hparams *hp = &c->m->hp;
    const nuage__kv *kv = &c->kv;
    const int H = hp->n_head, R = hp->kv_lora_rank, rope = hp->head_dim_rope;
    const int hdk = hp->head_dim_k, nope = hdk - rope, D = R + rope;
    const int T = j->b->n_tokens, n_hg = j->n_hg;
    const bool f32 = kv->elem == 4;
    const nuage_type_traits *f32d = nuage_type_get(NUAGE_TYPE_F32), *h16 = nuage_type_get(NUAGE_TYPE_F16);
    uint8_t *thr = j->s->thr + (size_t)ith * j->s->per_thread;
    float *qrows = (float *)thr;                                 /* (H, D) */
    float *rowf = (float *)(thr + nuage__al64((size_t)H * D * 4)); /* (D) */
    float *sc = (float *)((uint8_t *)rowf + nuage__al64((size_t)D * 4)); /* (H, n_ctx) */
    long lo, hi;
    nuage__pool_range((long)T * n_hg, ith, nth, 1, &lo, &hi);
    for (long u = lo; u < hi; u++) {
        const int t = (int)(u / n_hg), g = (int)(u % n_hg);
        const int h0 = g * H / n_hg, nh = (g + 1) * H / n_hg - h0;
        const int seq = j->b->seq[t], pos = j->b->pos[t];
        /* query rows [q_lat; q_pe] of heads h0.. */
        for (int i = 0; i < nh; i++) {
            float *q = qrows + (size_t)i * D;
            memcpy(q, j->s->qlat + ((size_t)(h0 + i) * T + t) * R, (size_t)R * sizeof(float));
            memcpy(q + R, c->q + ((size_t)t * H + h0 + i) * hdk + nope, (size_t)rope * sizeof(float));
        }
        /* scores[i][p] = scale * q_i . row_p (an f16 row is widened once
         * for all heads; the query stays f32) */
        for (int p = 0; p <= pos; p++) {
            const void *row = nuage__kv_k(kv, j->il, seq, p);
            if (!f32) {
                h16->to_float(row, rowf, D);
                row = rowf;
            }
            for (int i = 0; i < nh; i++) {
                float s;
                f32d->vec_dot(D, &s, row, qrows + (size_t)i * D);
                sc[(size_t)i * c->n_ctx + p] = s * hp->kq_scale;
            }
        }
        /* softmax per head; the probabilities are left in sc */
        for (int i = 0; i < nh; i++) {
            float *si = sc + (size_t)i * c->n_ctx, mx = -INFINITY;
            for (int p = 0; p <= pos; p++) mx = si[p] > mx ? si[p] : mx;
            double sum = 0.0;
            for (int p = 0; p <= pos; p++) {
                si[p] = expf(si[p] - mx);
                sum += si[p];
            }
            const float inv = (float)(1.0 / sum);
            for (int p = 0; p <= pos; p++) si[p] *= inv;
            memset(j->s->olat + ((size_t)(h0 + i) * T + t) * R, 0, (size_t)R * sizeof(float));
        }
        /* o_lat[h] += softmax[h][p] * latent_p */
        for (int p = 0; p <= pos; p++) {
            const void *row = nuage__kv_k(kv, j->il, seq, p);
            const float *v = row;
            if (!f32) {
                h16->to_float(row, rowf, R);
                v = rowf;
            }
            for (int i = 0; i < nh; i++)
                nuage__mla_axpy(j->s->olat + ((size_t)(h0 + i) * T + t) * R, v,
                                sc[(size_t)i * c->n_ctx + p], R);
        }
    }
}

/* ---- the sub-layer ------------------------------------------------------------------- */

void nuage__mla_attn(nuage_context *c, const nuage_batch *b, int il) {
    const nuage_model *m = c->m;
    const nuage_hparams *hp = &m->hp;
    const nuage_layer *L = &m->layers[il];
    const int T = b->n_tokens, H = hp->n_head, R = hp->kv_lora_rank, rope = hp->head_dim_rope;
    const int hdk = hp->head_dim_k, hdv = hp->head_dim_v, nope = hdk - rope, D = R + rope;
    nuage__mla_buf s;
    nuage__mla_layout(m, c->n_batch_max, nuage__pool_size(c->pool), c->n_ctx, c->arch_scratch, &s);

    /* q (T, H*hdk) = Wq_b RMSNorm(Wq_a xb), or Wq xb without the low-rank path */
    if (L->wq_a.data) {
        nuage__matmul(c->pool, &L->wq_a, c->xb, T, s.qa, s.work);
        for (int t = 0; t < T; t++) {
            float *r = s.qa + (size_t)t * hp->q_lora_rank;
            nuage__rmsnorm(r, r, (const float *)L->q_a_norm.data, hp->q_lora_rank, hp->norm_eps);
        }
        nuage__matmul(c->pool, &L->wq_b, s.qa, T, c->q, s.work);
    } else {
        nuage__matmul(c->pool, &L->wq, c->xb, T, c->q, s.work);
    }
    /* kv (T, R + rope) = Wkv_a xb: latent, then the shared rope key */
    nuage__matmul(c->pool, &L->wkv_a_mqa, c->xb, T, c->k, s.work);
    for (int t = 0; t < T; t++) {
        const float *cs = c->rope_cs + (size_t)t * hp->rope_dim;
        for (int h = 0; h < H; h++)
            nuage__rope_apply(c->q + ((size_t)t * H + h) * hdk + nope, cs, rope, hp->rope_style);
        float *kvr = c->k + (size_t)t * D;
        nuage__rope_apply(kvr + R, cs, rope, hp->rope_style);
        nuage__rmsnorm(kvr, kvr, (const float *)L->kv_a_norm.data, R, hp->norm_eps);
        /* append [latent; k_pe] to the cache at (seq, pos) */
        void *dst = nuage__kv_k(&c->kv, il, b->seq[t], b->pos[t]);
        if (c->kv.elem == 4) memcpy(dst, kvr, (size_t)D * sizeof(float));
        else
            for (int i = 0; i < D; i++) ((uint16_t *)dst)[i] = nuage_fp32_to_fp16(kvr[i]);
    }
    /* q_lat[h] (T, R) = q_nope[h] @ Wk_b[h]^T, every head in one parallel
     * region: qn (H, T, nope) = q_nope head-major */
    for (int h = 0; h < H; h++) {
        for (int t = 0; t < T; t++)
            memcpy(s.qn + ((size_t)h * T + t) * nope, c->q + ((size_t)t * H + h) * hdk,
                   (size_t)nope * sizeof(float));
        s.views[h] = nuage__weight_slice(&L->wk_b, R, h);
        s.parts[h] = (nuage__mm_part){&s.views[h], (long)h * T, T, s.qlat + (size_t)h * T * R};
    }
    nuage__matmul_parts(c->pool, s.parts, H, s.qn, (long)H * T, s.work);
    /* o_lat = attention over the latent cache */
    const int nth = nuage__pool_size(c->pool);
    int n_hg = T >= nth ? 1 : (nth + T - 1) / T;
    if (n_hg > H) n_hg = H;
    nuage__mla_job job = {.c = c, .b = b, .il = il, .n_hg = n_hg, .s = &s};
    nuage__pool_run(c->pool, nuage__mla_worker, &job);
    /* att[t, h*hdv ...] = o_lat[h][t] @ Wv_b[h]^T, every head in one region:
     * vt (H, T, hdv) */
    for (int h = 0; h < H; h++) {
        s.views[h] = nuage__weight_slice(&L->wv_b, hdv, h);
        s.parts[h] = (nuage__mm_part){&s.views[h], (long)h * T, T, s.vt + (size_t)h * T * hdv};
    }
    nuage__matmul_parts(c->pool, s.parts, H, s.olat, (long)H * T, s.work);
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++)
            memcpy(c->att + ((size_t)t * H + h) * hdv, s.vt + ((size_t)h * T + t) * hdv,
                   (size_t)hdv * sizeof(float));
    /* xb2 = att @ Wo^T */
    nuage__matmul(c->pool, &L->wo, c->att, T, c->xb2, s.work);
}
