/*
 * moe.c - the mixture-of-experts FFN, batched by expert.
 *
 * A MoE layer holds n_expert small SwiGLU FFNs stacked in three 3-D
 * tensors (ffn_gate_exps, ffn_up_exps: n_ff_exp rows of n_embd per expert;
 * ffn_down_exps: n_embd rows of n_ff_exp) and a router ffn_gate_inp. Each
 * token goes through the n_used experts its router scores highest, and the
 * layer's output is the weighted sum of their outputs (plus, for
 * DeepSeek, the always-on shared experts).
 *
 * The naive loop - for each token, for each chosen expert, three
 * matrix-vector products - reads an expert's weights once per token that
 * chose it. Here a batch is first routed (one router matmul for all
 * tokens, then the gating on thread 0: it is n_expert floats per token),
 * then the choices are grouped by expert with a counting sort, and each
 * expert that has any tokens runs its three matrices once over its whole
 * group: the group's input rows are gathered into a contiguous block, the
 * gate and up products, SwiGLU and the down product run with
 * nuage__matmul on a weight view of that expert (the stack's data pointer
 * moved to expert e, rows = that expert's rows), on all threads, and the
 * down outputs are scattered back with their weights into c->xb2.
 * Experts nobody chose are never touched, so a decode step reads n_used of
 * n_expert expert matrices per layer; a prefill batch reads each used
 * expert once instead of once per token.
 *
 * Numerics follow llama.cpp's build_moe_ffn: softmax (max-subtracted, sum
 * in double) or sigmoid of the router logits; the selection bias
 * (exp_probs_b) only changes which experts are chosen, the weights come
 * from the unbiased scores; then optional division by the chosen weights'
 * sum and optional scaling. Activations are rounded to the expert
 * weights' dot type inside nuage__matmul, exactly as ggml's mul_mat_id
 * rounds them. Summation over the chosen experts is in expert-id order
 * rather than llama.cpp's rank order; for two experts per token that is
 * bit-identical (float addition commutes) and for more it differs only in
 * the last bits.
 */
#include "engine/moe.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/quant.h"

nuage__moe_gate nuage__moe_gate_of(const nuage_model *m, int il) {
    const nuage_hparams *hp = &m->hp;
    const nuage_layer *L = &m->layers[il];
    nuage__moe_gate g = {
        .n_expert = hp->n_expert,
        .n_used = hp->n_expert_used,
        .gating = hp->expert_gating,
        .norm = hp->expert_weights_norm,
        .scale = hp->expert_weights_scale != 0.0f ? hp->expert_weights_scale : 1.0f,
        .sel_bias = L->exp_probs_b.data ? (const float *)L->exp_probs_b.data : NULL,
    };
    return g;
}

/* ---- routing ------------------------------------------------------------------ */

void nuage__moe_route(const nuage__moe_gate *g, const float *logits, float *probs, int32_t *sel,
                      float *w) {
    const int n = g->n_expert, k = g->n_used;
    if (g->gating == NUAGE_GATING_SIGMOID) {
        for (int e = 0; e < n; e++) probs[e] = 1.0f / (1.0f + expf(-logits[e]));
    } else {
        float mx = -INFINITY;
        for (int e = 0; e < n; e++) mx = logits[e] > mx ? logits[e] : mx;
        double sum = 0.0;
        for (int e = 0; e < n; e++) {
            probs[e] = expf(logits[e] - mx);
            sum += probs[e];
        }
        float inv = (float)(1.0 / sum);
        for (int e = 0; e < n; e++) probs[e] *= inv;
    }
    /* top-k by (biased) score: k passes of arg-max over the unchosen
     * experts; k and n are small (<= a few hundred). */
    for (int j = 0; j < k; j++) {
        int best = -1;
        float bs = 0;
        for (int e = 0; e < n; e++) {
            bool taken = false;
            for (int i = 0; i < j && !taken; i++) taken = sel[i] == e;
            if (taken) continue;
            float s = g->sel_bias ? probs[e] + g->sel_bias[e] : probs[e];
            if (best < 0 || s > bs) { best = e; bs = s; }
        }
        sel[j] = best;
        w[j] = probs[best];
    }
    if (g->norm) {
        double sum = 0.0;
        for (int j = 0; j < k; j++) sum += w[j];
        float s = (float)sum;
        for (int j = 0; j < k; j++) w[j] /= s;
    }
    if (g->scale != 1.0f)
        for (int j = 0; j < k; j++) w[j] *= g->scale;
}

void nuage__moe_group(const int32_t *sel, int T, int n_used, int n_expert, int32_t *offset,
                      int32_t *sorted) {
    const int n = T * n_used;
    memset(offset, 0, (size_t)(n_expert + 1) * sizeof *offset);
    for (int i = 0; i < n; i++) {
        assert(sel[i] >= 0 && sel[i] < n_expert);
        offset[sel[i] + 1]++;
    }
    for (int e = 0; e < n_expert; e++) offset[e + 1] += offset[e];
    /* offset[e] doubles as the fill cursor; restored below */
    for (int i = 0; i < n; i++) sorted[offset[sel[i]]++] = i;
    for (int e = n_expert; e > 0; e--) offset[e] = offset[e - 1];
    offset[0] = 0;
}

/* ---- scratch ---------------------------------------------------------------------- */

typedef struct {
    float *logits;   /* (B, n_expert) router outputs */
    float *probs;    /* (n_expert) gated scores of one token */
    float *w;        /* (B, n_used) expert weights */
    int32_t *sel;    /* (B, n_used) expert ids */
    int32_t *offset; /* (n_expert + 1) group starts */
    int32_t *sorted; /* (B * n_used) choice indices grouped by expert */
    float *xg;       /* (B, E) gathered inputs of one group; shared-expert output */
    float *g, *u;    /* (B, F) gate / up products (F = widest expert FFN) */
    float *y;        /* (B, E) down products of one group */
    void *work;      /* matmul activation scratch */
    size_t total;
} nuage__moe_buf;

static size_t nuage__moe_f(const nuage_model *m) {
    const nuage_hparams *hp = &m->hp;
    size_t F = (size_t)hp->n_ff_exp;
    size_t Fs = (size_t)hp->n_ff_exp * (size_t)(hp->n_expert_shared > 0 ? hp->n_expert_shared : 0);
    return Fs > F ? Fs : F;
}

/* Lay the buffers out from base (NULL: only compute total). */
static void nuage__moe_layout(const nuage_model *m, int n_batch, uint8_t *base, nuage__moe_buf *s) {
    const nuage_hparams *hp = &m->hp;
    const size_t B = (size_t)n_batch, E = (size_t)hp->n_embd, F = nuage__moe_f(m);
    const size_t NE = (size_t)hp->n_expert, K = (size_t)hp->n_expert_used;
    const size_t cols = E > F ? E : F;
    struct { void **p; size_t bytes; } parts[] = {
        {(void **)&s->logits, B * NE * 4}, {(void **)&s->probs, NE * 4},
        {(void **)&s->w, B * K * 4},       {(void **)&s->sel, B * K * 4},
        {(void **)&s->offset, (NE + 1) * 4}, {(void **)&s->sorted, B * K * 4},
        {(void **)&s->xg, B * E * 4},      {(void **)&s->g, B * F * 4},
        {(void **)&s->u, B * F * 4},       {(void **)&s->y, B * E * 4},
        {(void **)&s->work, NUAGE_MM_WORK_BYTES(cols, B)},
    };
    size_t off = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        *parts[i].p = base ? base + off : NULL;
        off += (parts[i].bytes + 63) & ~(size_t)63;
    }
    s->total = off;
}

size_t nuage__moe_scratch_bytes(const nuage_model *m, int n_batch) {
    nuage__moe_buf s;
    nuage__moe_layout(m, n_batch, NULL, &s);
    return s.total;
}

/* ---- the FFN ------------------------------------------------------------------------ */

/* Rows [r0, r0 + rows) of a weight view: expert e of a stack. */
static nuage_weight nuage__moe_view(const nuage_weight *stack, int64_t rows, int e) {
    nuage_weight v = *stack;
    v.rows = rows;
    v.data = stack->data + (size_t)e * (size_t)rows * stack->row_bytes;
    return v;
}

/* out (n, E) = down(silu(gate x) * up x) for n rows of x; g, u (n, F). */
static void nuage__moe_swiglu(nuage_context *c, const nuage_weight *gate, const nuage_weight *up,
                              const nuage_weight *down, const float *x, int n, float *g, float *u,
                              float *out, void *work) {
    const long F = (long)gate->rows;
    {
        const nuage_weight *w[2] = {gate, up};
        float *y[2] = {g, u};
        nuage__matmul_n(c->pool, w, 2, x, n, y, work);
    }
    for (long i = 0; i < (long)n * F; i++) g[i] = nuage__silu(g[i]) * u[i];
    nuage__matmul(c->pool, down, g, n, out, work);
}

void nuage__moe_ffn(nuage_context *c, const nuage_batch *b, int il) {
    const nuage_model *m = c->m;
    const nuage_hparams *hp = &m->hp;
    const nuage_layer *L = &m->layers[il];
    const int T = b->n_tokens, E = hp->n_embd, K = hp->n_expert_used, NE = hp->n_expert;
    const int F = hp->n_ff_exp;
    nuage__moe_buf s;
    nuage__moe_layout(m, c->n_batch_max, c->arch_scratch, &s);
    nuage__moe_gate gate = nuage__moe_gate_of(m, il);

    /* logits (T, NE) = xb @ Wrouter^T; route every token */
    nuage__matmul(c->pool, &L->ffn_gate_inp, c->xb, T, s.logits, s.work);
    for (int t = 0; t < T; t++)
        nuage__moe_route(&gate, s.logits + (size_t)t * NE, s.probs, s.sel + (size_t)t * K,
                         s.w + (size_t)t * K);
    nuage__moe_group(s.sel, T, K, NE, s.offset, s.sorted);

    /* xb2 = sum over chosen experts of w * expert(xb), one expert at a time
     * over all the tokens that chose it */
    memset(c->xb2, 0, (size_t)T * (size_t)E * sizeof(float));
    for (int e = 0; e < NE; e++) {
        const int g0 = s.offset[e], n = s.offset[e + 1] - g0;
        if (n == 0) continue;
        /* xg (n, E) = the group's input rows */
        for (int i = 0; i < n; i++) {
            int t = s.sorted[g0 + i] / K;
            memcpy(s.xg + (size_t)i * E, c->xb + (size_t)t * E, (size_t)E * sizeof(float));
        }
        nuage_weight wg = nuage__moe_view(&L->ffn_gate_exps, F, e);
        nuage_weight wu = nuage__moe_view(&L->ffn_up_exps, F, e);
        nuage_weight wd = nuage__moe_view(&L->ffn_down_exps, E, e);
        nuage__moe_swiglu(c, &wg, &wu, &wd, s.xg, n, s.g, s.u, s.y, s.work);
        /* xb2[t] += w(t, k) * y[i] */
        for (int i = 0; i < n; i++) {
            int choice = s.sorted[g0 + i];
            float wt = s.w[choice];
            float *dst = c->xb2 + (size_t)(choice / K) * E;
            const float *src = s.y + (size_t)i * E;
            for (int j = 0; j < E; j++) dst[j] += src[j] * wt;
        }
    }

    /* DeepSeek: xb2 += shared experts' SwiGLU(xb) (one wide FFN) */
    if (L->ffn_gate_shexp.data) {
        nuage__moe_swiglu(c, &L->ffn_gate_shexp, &L->ffn_up_shexp, &L->ffn_down_shexp, c->xb, T,
                          s.g, s.u, s.xg, s.work);
        for (long i = 0; i < (long)T * E; i++) c->xb2[i] += s.xg[i];
    }
}

/* ---- loading --------------------------------------------------------------------------- */

static bool nuage__moe_u32(const nuage_model *m, const char *suffix, int32_t *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", m->arch->name, suffix);
    uint32_t v;
    if (!nuage_gguf_get_u32(m->gguf, key, &v) || v > INT32_MAX) return false;
    *out = (int32_t)v;
    return true;
}

int nuage__moe_read_hparams(nuage_model *m, bool norm_default, char *err, size_t errlen) {
    nuage_hparams *hp = &m->hp;
    const char *a = m->arch->name;
    char key[160];
    hp->n_expert = hp->n_expert_used = hp->n_ff_exp = 0;
    hp->n_expert_shared = hp->n_layer_dense_lead = 0;
    if (!nuage__moe_u32(m, "expert_count", &hp->n_expert) ||
        !nuage__moe_u32(m, "expert_used_count", &hp->n_expert_used) ||
        !nuage__moe_u32(m, "expert_feed_forward_length", &hp->n_ff_exp)) {
        snprintf(err, errlen, "metadata %s.expert_count / expert_used_count / "
                 "expert_feed_forward_length missing", a);
        return NUAGE_E_FORMAT;
    }
    nuage__moe_u32(m, "expert_shared_count", &hp->n_expert_shared);
    nuage__moe_u32(m, "leading_dense_block_count", &hp->n_layer_dense_lead);
    if (hp->n_expert <= 0 || hp->n_expert > 4096 || hp->n_expert_used <= 0 ||
        hp->n_expert_used > hp->n_expert || hp->n_ff_exp <= 0 || hp->n_expert_shared > 64 ||
        hp->n_layer_dense_lead > hp->n_layer) {
        snprintf(err, errlen, "bad MoE shape: %d experts, %d used, width %d, %d shared, %d dense layers",
                 hp->n_expert, hp->n_expert_used, hp->n_ff_exp, hp->n_expert_shared,
                 hp->n_layer_dense_lead);
        return NUAGE_E_FORMAT;
    }
    hp->expert_weights_scale = 0.0f;
    snprintf(key, sizeof key, "%s.expert_weights_scale", a);
    nuage_gguf_get_f32(m->gguf, key, &hp->expert_weights_scale);
    if (!isfinite(hp->expert_weights_scale)) {
        snprintf(err, errlen, "bad %s", key);
        return NUAGE_E_FORMAT;
    }
    hp->expert_weights_norm = norm_default;
    snprintf(key, sizeof key, "%s.expert_weights_norm", a);
    nuage_gguf_get_bool(m->gguf, key, &hp->expert_weights_norm);
    int32_t gating = NUAGE_GATING_SOFTMAX;
    nuage__moe_u32(m, "expert_gating_func", &gating);
    if (gating == 0) gating = NUAGE_GATING_SOFTMAX; /* "none": older DeepSeek V2 files */
    if (gating != NUAGE_GATING_SOFTMAX && gating != NUAGE_GATING_SIGMOID) {
        snprintf(err, errlen, "%s.expert_gating_func %d is not supported", a, gating);
        return NUAGE_E_UNSUPPORTED;
    }
    hp->expert_gating = gating;
    return 0;
}

int nuage__moe_load_layer(nuage_model *m, int il, char *err, size_t errlen) {
    const nuage_hparams *hp = &m->hp;
    nuage_layer *L = &m->layers[il];
    const int64_t E = hp->n_embd, F = hp->n_ff_exp, NE = hp->n_expert;
    const int64_t Fs = (int64_t)hp->n_ff_exp * hp->n_expert_shared;
    int rc;
    if ((rc = nuage__weight_get(m, &L->ffn_norm, true, E, 0, err, errlen, "blk.%d.ffn_norm.weight", il)) ||
        (rc = nuage__weight_get(m, &L->ffn_gate_inp, true, E, NE, err, errlen, "blk.%d.ffn_gate_inp.weight", il)) ||
        (rc = nuage__weight_get(m, &L->exp_probs_b, false, NE, 0, err, errlen, "blk.%d.exp_probs_b.bias", il)) ||
        (rc = nuage__weight_get3(m, &L->ffn_gate_exps, true, E, F, NE, err, errlen, "blk.%d.ffn_gate_exps.weight", il)) ||
        (rc = nuage__weight_get3(m, &L->ffn_up_exps, true, E, F, NE, err, errlen, "blk.%d.ffn_up_exps.weight", il)) ||
        (rc = nuage__weight_get3(m, &L->ffn_down_exps, true, F, E, NE, err, errlen, "blk.%d.ffn_down_exps.weight", il)))
        return rc;
    if (Fs > 0 &&
        ((rc = nuage__weight_get(m, &L->ffn_gate_shexp, true, E, Fs, err, errlen, "blk.%d.ffn_gate_shexp.weight", il)) ||
         (rc = nuage__weight_get(m, &L->ffn_up_shexp, true, E, Fs, err, errlen, "blk.%d.ffn_up_shexp.weight", il)) ||
         (rc = nuage__weight_get(m, &L->ffn_down_shexp, true, Fs, E, err, errlen, "blk.%d.ffn_down_shexp.weight", il))))
        return rc;
    L->is_moe = true;
    return 0;
}
