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
 * group: all groups' input rows are gathered into one block (expert by
 * expert), every used expert's gate and up products run in one parallel
 * region (nuage__matmul_parts on weight views: the stack's data pointer
 * moved to expert e; the input prepared once), then SwiGLU, then every
 * down product in one more region, and the outputs are added back with
 * their weights into c->xb2. (One expert at a time cost three parallel
 * regions per expert: 20% slower prefill on the test models.)
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
 *
 * gpt-oss adds four things, all optional per layer so the other
 * architectures are untouched: a router bias (added to the logits before
 * choosing), SOFTMAX_WEIGHT gating (the top-k are chosen by the raw biased
 * logits and weighted by the softmax of just those k logits), per-expert
 * biases on the gate, up and down products (added right after each
 * expert's matmul, before the activation / before the weighting, as
 * ggml_add_id does), and SwiGLU-OAI: with x = min(g, limit) and y =
 * clamp(u, -limit, limit), a = x * sigmoid(alpha x) * (y + 1), evaluated
 * as ggml-cpu does (x / (1 + expf(-alpha x)) * (y + 1)).
 */
#include "engine/moe.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/quant.h"

/* Expert weight views built per batch of parts (one parallel region per
 * NUAGE__MOE_VIEWS experts). */
#define NUAGE__MOE_VIEWS 32

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
    if (g->gating == NUAGE_GATING_SOFTMAX_WEIGHT) {
        /* choose by the logits themselves; softmax over the chosen below */
        memcpy(probs, logits, (size_t)n * sizeof *probs);
    } else if (g->gating == NUAGE_GATING_SIGMOID) {
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
    if (g->gating == NUAGE_GATING_SOFTMAX_WEIGHT) {
        /* w = softmax(w) over the k chosen (max-subtracted, sum in double) */
        float mx = -INFINITY;
        for (int j = 0; j < k; j++) mx = w[j] > mx ? w[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < k; j++) {
            w[j] = expf(w[j] - mx);
            sum += w[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < k; j++) w[j] *= inv;
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
    nuage__mm_part *parts; /* (2 NE) matmul parts: one or two per used expert */
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
    const nuage__scratch_part parts[] = {
        {(void **)&s->logits, B * NE * 4}, {(void **)&s->probs, NE * 4},
        {(void **)&s->w, B * K * 4},       {(void **)&s->sel, B * K * 4},
        {(void **)&s->offset, (NE + 1) * 4}, {(void **)&s->sorted, B * K * 4},
        /* every (token, choice) row at once: B * K rows (>= B for the
         * shared experts' B rows) */
        {(void **)&s->xg, B * K * E * 4},  {(void **)&s->g, B * K * F * 4},
        {(void **)&s->u, B * K * F * 4},   {(void **)&s->y, B * K * E * 4},
        {(void **)&s->parts, 2 * NE * sizeof(nuage__mm_part)},
        {(void **)&s->work, NUAGE_MM_WORK_BYTES(cols, B * K)},
    };
    s->total = nuage__scratch_carve(parts, sizeof parts / sizeof parts[0], base);
}

size_t nuage__moe_scratch_bytes(const nuage_model *m, int n_batch) {
    nuage__moe_buf s;
    nuage__moe_layout(m, n_batch, NULL, &s);
    return s.total;
}

/* ---- the FFN ------------------------------------------------------------------------ */

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

/* Add expert e's bias row (bias: n_expert rows of `width`) to every row
 * of its group in y (R, width); bias->data NULL = no bias. */
static void nuage__moe_add_bias(const nuage__moe_buf *s, int n_expert, const nuage_weight *bias,
                                float *y, int width) {
    if (!bias->data) return;
    for (int e = 0; e < n_expert; e++) {
        const float *b = (const float *)bias->data + (size_t)e * width;
        for (int i = s->offset[e]; i < s->offset[e + 1]; i++) {
            float *row = y + (size_t)i * width;
            for (int j = 0; j < width; j++) row[j] += b[j];
        }
    }
}

/* out[k] rows of group e (rows offset[e] ..) = x's rows of that group @
 * expert e's slice of stack[k] (width `rows`), for every used expert: one
 * parallel region per NUAGE__MOE_VIEWS experts, x (R rows) prepared once
 * per region. */
static void nuage__moe_experts(nuage_context *c, const nuage__moe_buf *s,
                               const nuage_weight *const *stack, int ns, int rows, const float *x,
                               float *const *out, int R) {
    const int NE = c->m->hp.n_expert;
    nuage_weight views[2][NUAGE__MOE_VIEWS];
    for (int e0 = 0; e0 < NE; e0 += NUAGE__MOE_VIEWS) {
        const int ne = NE - e0 < NUAGE__MOE_VIEWS ? NE - e0 : NUAGE__MOE_VIEWS;
        int np = 0;
        for (int k = 0; k < ne; k++) {
            const int e = e0 + k, g0 = s->offset[e], n = s->offset[e + 1] - g0;
            if (n == 0) continue;
            for (int q = 0; q < ns; q++) {
                views[q][k] = nuage__weight_slice(stack[q], rows, e);
                s->parts[np++] = (nuage__mm_part){&views[q][k], g0, n, out[q] + (size_t)g0 * rows};
            }
        }
        nuage__matmul_parts(c->pool, s->parts, np, x, R, s->work);
    }
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
    if (L->ffn_gate_inp_b.data)   /* gpt-oss: logits += router bias */
        for (int t = 0; t < T; t++) {
            float *lt = s.logits + (size_t)t * NE;
            for (int e = 0; e < NE; e++) lt[e] += ((const float *)L->ffn_gate_inp_b.data)[e];
        }
    for (int t = 0; t < T; t++)
        nuage__moe_route(&gate, s.logits + (size_t)t * NE, s.probs, s.sel + (size_t)t * K,
                         s.w + (size_t)t * K);
    nuage__moe_group(s.sel, T, K, NE, s.offset, s.sorted);

    /* xg (T K, E) = the input rows grouped by expert (expert e's group is
     * rows offset[e] .. offset[e+1]) */
    const int R = s.offset[NE];
    for (int i = 0; i < R; i++) {
        int t = s.sorted[i] / K;
        memcpy(s.xg + (size_t)i * E, c->xb + (size_t)t * E, (size_t)E * sizeof(float));
    }
    /* g, u (R, F) = each group @ its expert's gate, up: all experts in one
     * parallel region, the input prepared once */
    const nuage_weight *gu[2] = {&L->ffn_gate_exps, &L->ffn_up_exps};
    float *guo[2] = {s.g, s.u};
    nuage__moe_experts(c, &s, gu, 2, F, s.xg, guo, R);
    /* gpt-oss: g += gate bias[e], u += up bias[e] per group */
    nuage__moe_add_bias(&s, NE, &L->ffn_gate_exps_b, s.g, F);
    nuage__moe_add_bias(&s, NE, &L->ffn_up_exps_b, s.u, F);
    if (hp->expert_swiglu_limit > 0) {
        /* g = SwiGLU-OAI(g, u): min(g, lim) sigmoid(alpha min(g, lim)) (clamp(u) + 1) */
        const float lim = hp->expert_swiglu_limit, alpha = hp->expert_swiglu_alpha;
        for (long i = 0; i < (long)R * F; i++) {
            const float x = fminf(s.g[i], lim);
            const float y = fminf(fmaxf(s.u[i], -lim), lim);
            s.g[i] = x / (1.0f + expf(alpha * -x)) * (y + 1.0f);
        }
    } else {
        /* g = silu(g) * u */
        for (long i = 0; i < (long)R * F; i++) s.g[i] = nuage__silu(s.g[i]) * s.u[i];
    }
    /* y (R, E) = each group's g @ its expert's down */
    const nuage_weight *dn[1] = {&L->ffn_down_exps};
    float *dno[1] = {s.y};
    nuage__moe_experts(c, &s, dn, 1, E, s.g, dno, R);
    /* gpt-oss: y += down bias[e] (before the weighting) */
    nuage__moe_add_bias(&s, NE, &L->ffn_down_exps_b, s.y, E);
    /* xb2[t] = sum over its choices, in expert order, of w(t, k) * y */
    memset(c->xb2, 0, (size_t)T * (size_t)E * sizeof(float));
    for (int i = 0; i < R; i++) {
        int choice = s.sorted[i];
        float wt = s.w[choice];
        float *dst = c->xb2 + (size_t)(choice / K) * E;
        const float *src = s.y + (size_t)i * E;
        for (int j = 0; j < E; j++) dst[j] += src[j] * wt;
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
    if (gating != NUAGE_GATING_SOFTMAX && gating != NUAGE_GATING_SIGMOID &&
        gating != NUAGE_GATING_SOFTMAX_WEIGHT) {
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
