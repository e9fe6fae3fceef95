/*
 * tmodel.c - the trainable llama model: parameter table, initialisation,
 * and the forward + hand-written backward of one sequence.
 *
 * One sequence is processed by one thread from start to end (the trainer
 * parallelises over sequences), so nothing here locks or depends on
 * thread timing. The forward keeps every activation the backward needs in
 * the per-thread workspace: per layer the block input, both normalised
 * inputs and their 1/rms, q/k (after RoPE), v, the attention
 * probabilities, the attention output, the mid-block residual, and the
 * FFN's gate, up and product. The backward walks the layers in reverse,
 * carrying d(residual) in dx.
 *
 * Matrix products (tops.h): forward y = x W^T uses the transposed copy
 * (x @ Wt), the input gradient dx = dy @ W uses the weights as stored,
 * the weight gradient dW += dy^T @ x is the "tn" product. Logits are
 * computed only at positions that have a target (the assistant's answer),
 * which is most of the output layer's cost saved on chat data.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nuage/nuage.h"
#include "train/tops.h"
#include "train/train.h"

/* ---- parameter table ----------------------------------------------------------- */

static int nuage__add_param(nuage_tmodel *m, const char *name, int64_t rows, int64_t cols, bool decay) {
    nuage_tparam *p = &m->p[m->n_p];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->rows = rows;
    p->cols = cols;
    p->off = m->n;
    p->decay = decay;
    p->matrix = rows > 1;
    m->n += (size_t)(rows * cols);
    /* keep every tensor 64-byte aligned inside the array */
    m->n = (m->n + 15) / 16 * 16;
    return m->n_p++;
}

int nuage_tmodel_init(nuage_tmodel *m, const nuage_tcfg *c, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (c->n_vocab < 2 || c->dim < 8 || c->n_layer < 1 || c->n_head < 1 || c->n_head_kv < 1 ||
        c->n_ff < 8 || c->n_ctx < 2 || c->dim % c->n_head || c->n_head % c->n_head_kv ||
        (c->dim / c->n_head) % 2 || c->dim > 16384 || c->n_ff > 65536 || c->n_ctx > 65536 ||
        c->n_layer > 256 || c->n_vocab > (1 << 22) || !(c->norm_eps > 0) || !(c->rope_base > 1)) {
        snprintf(err, errlen,
                 "bad model shape: vocab %d dim %d layers %d heads %d/%d ff %d ctx %d "
                 "(need dim divisible by heads, heads by kv-heads, even head size)",
                 c->n_vocab, c->dim, c->n_layer, c->n_head, c->n_head_kv, c->n_ff, c->n_ctx);
        return NUAGE_E_INVAL;
    }
    m->c = *c;
    m->hd = c->dim / c->n_head;
    const int E = c->dim, Dq = c->dim, Dk = m->hd * c->n_head_kv, F = c->n_ff;
    m->p = calloc((size_t)(3 + 9 * c->n_layer), sizeof *m->p);
    m->L = calloc((size_t)c->n_layer, sizeof *m->L);
    if (!m->p || !m->L) goto nomem;
    m->tok_embd = nuage__add_param(m, "token_embd.weight", c->n_vocab, E, false);
    char nm[48];
    for (int l = 0; l < c->n_layer; l++) {
        nuage_tlayer *L = &m->L[l];
#define P(field, suffix, rows, cols, decay)                              \
    snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, suffix);              \
    L->field = nuage__add_param(m, nm, rows, cols, decay);
        P(attn_norm, "attn_norm", 1, E, false)
        P(wq, "attn_q", Dq, E, true)
        P(wk, "attn_k", Dk, E, true)
        P(wv, "attn_v", Dk, E, true)
        P(wo, "attn_output", E, Dq, true)
        P(ffn_norm, "ffn_norm", 1, E, false)
        P(wg, "ffn_gate", F, E, true)
        P(wu, "ffn_up", F, E, true)
        P(wd, "ffn_down", E, F, true)
#undef P
    }
    m->out_norm = nuage__add_param(m, "output_norm.weight", 1, E, false);
    m->out = nuage__add_param(m, "output.weight", c->n_vocab, E, true);
    m->w = aligned_alloc(64, m->n * sizeof(float));
    m->wt = aligned_alloc(64, m->n * sizeof(float));
    m->rope_cs = malloc((size_t)c->n_ctx * m->hd * sizeof(float));
    if (!m->w || !m->wt || !m->rope_cs) goto nomem;
    memset(m->w, 0, m->n * sizeof(float));
    memset(m->wt, 0, m->n * sizeof(float));
    /* RoPE table, computed as the engine does (forward.c nuage__rope_table) */
    for (int pos = 0; pos < c->n_ctx; pos++)
        for (int i = 0; i < m->hd / 2; i++) {
            double theta = (double)pos * pow((double)c->rope_base, -2.0 * i / m->hd);
            m->rope_cs[(size_t)pos * m->hd + 2 * i] = (float)cos(theta);
            m->rope_cs[(size_t)pos * m->hd + 2 * i + 1] = (float)sin(theta);
        }
    return 0;
nomem:
    nuage_tmodel_free(m);
    snprintf(err, errlen, "out of memory for the model");
    return NUAGE_E_NOMEM;
}

void nuage_tmodel_free(nuage_tmodel *m) {
    free(m->p);
    free(m->L);
    free(m->w);
    free(m->wt);
    free(m->rope_cs);
    memset(m, 0, sizeof *m);
}

int nuage_tmodel_find(const nuage_tmodel *m, const char *name) {
    for (int i = 0; i < m->n_p; i++)
        if (!strcmp(m->p[i].name, name)) return i;
    return -1;
}

void nuage_tmodel_random(nuage_tmodel *m, uint64_t seed) {
    nuage_rng r;
    nuage_rng_seed(&r, seed);
    const float std = 0.02f, res = std / sqrtf(2.0f * (float)m->c.n_layer);
    for (int i = 0; i < m->n_p; i++) {
        const nuage_tparam *p = &m->p[i];
        float *w = m->w + p->off;
        size_t n = (size_t)(p->rows * p->cols);
        bool resid = strstr(p->name, "attn_output") || strstr(p->name, "ffn_down");
        for (size_t k = 0; k < n; k++)
            w[k] = p->matrix ? (float)nuage_rng_normal(&r) * (resid ? res : std) : 1.0f;
    }
    nuage_tmodel_sync(m);
}

void nuage_tmodel_sync_range(nuage_tmodel *m, int ith, int nth) {
    /* matrices are split by rows into nth parts each */
    for (int i = 0; i < m->n_p; i++) {
        const nuage_tparam *p = &m->p[i];
        if (!p->matrix) continue;
        int64_t lo = p->rows * ith / nth, hi = p->rows * (ith + 1) / nth;
        const float *w = m->w + p->off;
        float *wt = m->wt + p->off;
        for (int64_t r = lo; r < hi; r++)
            for (int64_t c = 0; c < p->cols; c++) wt[c * p->rows + r] = w[r * p->cols + c];
    }
}

void nuage_tmodel_sync(nuage_tmodel *m) { nuage_tmodel_sync_range(m, 0, 1); }

/* ---- workspace ------------------------------------------------------------------- */

typedef struct {
    float *xn1, *rstd1, *q, *k, *v, *P, *att, *xm, *xn2, *rstd2, *g, *u, *hb;
} nuage__tact;

struct nuage_tws {
    int Tm;
    float *xs;           /* (n_layer + 1, Tm, E) block inputs; the last = final */
    nuage__tact *a;      /* (n_layer) */
    float *xf, *rstdf;   /* (Tm, E), (Tm): final norm at logit rows */
    float *logits, *dlogits; /* (Tm, V) */
    int32_t *lpos, *ltgt;/* (Tm) logit row -> position, target */
    /* backward scratch */
    float *dx, *dxn, *dtmp, *dq, *dk, *dv, *datt, *dg, *du, *dh, *scr;
    float *mem;
};

void nuage_tws_free(nuage_tws *ws) {
    if (!ws) return;
    free(ws->a);
    free(ws->lpos);
    free(ws->ltgt);
    free(ws->mem);
    free(ws);
}

nuage_tws *nuage_tws_new(const nuage_tmodel *m) {
    nuage_tws *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    const nuage_tcfg *c = &m->c;
    const size_t Tm = (size_t)c->n_ctx, E = (size_t)c->dim, Dk = (size_t)m->hd * c->n_head_kv;
    const size_t F = (size_t)c->n_ff, V = (size_t)c->n_vocab, H = (size_t)c->n_head, L = (size_t)c->n_layer;
    ws->Tm = c->n_ctx;
    /* sizes in floats, each rounded to 16 */
#define R16(x) (((x) + 15) / 16 * 16)
    size_t per_layer = R16(Tm * E) * 4 + R16(Tm) * 2 + R16(Tm * E) + R16(Tm * Dk) * 2 + R16(H * Tm * Tm) +
                       R16(Tm * F) * 3;
    size_t total = R16((L + 1) * Tm * E) + L * per_layer + R16(Tm * E) + R16(Tm) + R16(Tm * V) * 2 +
                   R16(Tm * E) * 5 + R16(Tm * Dk) * 2 + R16(Tm * F) * 3 + R16(Tm);
    ws->mem = aligned_alloc(64, total * sizeof(float));
    ws->a = calloc(L, sizeof *ws->a);
    ws->lpos = malloc(Tm * sizeof *ws->lpos);
    ws->ltgt = malloc(Tm * sizeof *ws->ltgt);
    if (!ws->mem || !ws->a || !ws->lpos || !ws->ltgt) {
        nuage_tws_free(ws);
        return NULL;
    }
    float *p = ws->mem;
#define TAKE(dst, n) do { dst = p; p += R16(n); } while (0)
    TAKE(ws->xs, (L + 1) * Tm * E);
    for (size_t l = 0; l < L; l++) {
        nuage__tact *a = &ws->a[l];
        TAKE(a->xn1, Tm * E);
        TAKE(a->rstd1, Tm);
        TAKE(a->q, Tm * E);
        TAKE(a->k, Tm * Dk);
        TAKE(a->v, Tm * Dk);
        TAKE(a->P, H * Tm * Tm);
        TAKE(a->att, Tm * E);
        TAKE(a->xm, Tm * E);
        TAKE(a->xn2, Tm * E);
        TAKE(a->rstd2, Tm);
        TAKE(a->g, Tm * F);
        TAKE(a->u, Tm * F);
        TAKE(a->hb, Tm * F);
    }
    TAKE(ws->xf, Tm * E);
    TAKE(ws->rstdf, Tm);
    TAKE(ws->logits, Tm * V);
    TAKE(ws->dlogits, Tm * V);
    TAKE(ws->dx, Tm * E);
    TAKE(ws->dxn, Tm * E);
    TAKE(ws->dtmp, Tm * E);
    TAKE(ws->dq, Tm * E);
    TAKE(ws->datt, Tm * E);
    TAKE(ws->dk, Tm * Dk);
    TAKE(ws->dv, Tm * Dk);
    TAKE(ws->dg, Tm * F);
    TAKE(ws->du, Tm * F);
    TAKE(ws->dh, Tm * F);
    TAKE(ws->scr, Tm);
#undef TAKE
#undef R16
    return ws;
}

/* ---- forward -------------------------------------------------------------------------- */

#define W(i) (m->w + m->p[i].off)
#define WT(i) (m->wt + m->p[i].off)

/* Forward of T tokens; logits at the n_l rows listed in ws->lpos. */
static void nuage__tfwd(const nuage_tmodel *m, nuage_tws *ws, const int32_t *tok, int T, int n_l) {
    const nuage_tcfg *c = &m->c;
    const int E = c->dim, H = c->n_head, Hk = c->n_head_kv, hd = m->hd, F = c->n_ff;
    const int Dk = hd * Hk;
    const float eps = c->norm_eps, scale = 1.0f / sqrtf((float)hd);
    const size_t TE = (size_t)ws->Tm * E;
    nuage__t_embed_fwd_f32(ws->xs, W(m->tok_embd), tok, T, E);
    for (int l = 0; l < c->n_layer; l++) {
        const nuage_tlayer *L = &m->L[l];
        nuage__tact *a = &ws->a[l];
        const float *x = ws->xs + l * TE;
        float *xo = ws->xs + (l + 1) * TE;
        /* attention sub-block: xm = x + Wo attn(RoPE(Wq xn1), RoPE(Wk xn1), Wv xn1) */
        nuage__t_rmsnorm_fwd_f32(a->xn1, a->rstd1, x, W(L->attn_norm), T, E, eps);
        nuage__tmm_nn(a->xn1, E, WT(L->wq), E, a->q, E, T, E, E, 0);
        nuage__tmm_nn(a->xn1, E, WT(L->wk), Dk, a->k, Dk, T, Dk, E, 0);
        nuage__tmm_nn(a->xn1, E, WT(L->wv), Dk, a->v, Dk, T, Dk, E, 0);
        nuage__t_rope_fwd_f32(a->q, m->rope_cs, T, H, hd, E);
        nuage__t_rope_fwd_f32(a->k, m->rope_cs, T, Hk, hd, Dk);
        nuage__t_attn_fwd_f32(a->att, a->P, a->q, a->k, a->v, T, H, Hk, hd, scale);
        memcpy(a->xm, x, (size_t)T * E * sizeof(float));
        nuage__tmm_nn(a->att, E, WT(L->wo), E, a->xm, E, T, E, E, 1);
        /* FFN sub-block: xo = xm + Wd (silu(Wg xn2) * Wu xn2) */
        nuage__t_rmsnorm_fwd_f32(a->xn2, a->rstd2, a->xm, W(L->ffn_norm), T, E, eps);
        nuage__tmm_nn(a->xn2, E, WT(L->wg), F, a->g, F, T, F, E, 0);
        nuage__tmm_nn(a->xn2, E, WT(L->wu), F, a->u, F, T, F, E, 0);
        nuage__t_swiglu_fwd_f32(a->hb, a->g, a->u, (size_t)T * F);
        memcpy(xo, a->xm, (size_t)T * E * sizeof(float));
        nuage__tmm_nn(a->hb, F, WT(L->wd), E, xo, E, T, E, F, 1);
    }
    /* final norm and output projection at the logit rows */
    const float *xl = ws->xs + (size_t)c->n_layer * TE;
    for (int r = 0; r < n_l; r++)
        nuage__t_rmsnorm_fwd_f32(ws->xf + (size_t)r * E, ws->rstdf + r, xl + (size_t)ws->lpos[r] * E,
                                 W(m->out_norm), 1, E, eps);
    if (n_l) nuage__tmm_nn(ws->xf, E, WT(m->out), c->n_vocab, ws->logits, c->n_vocab, n_l, c->n_vocab, E, 0);
}

void nuage_tmodel_logits(const nuage_tmodel *m, nuage_tws *ws, const int32_t *tok, int T, float *out) {
    for (int t = 0; t < T; t++) ws->lpos[t] = t;
    nuage__tfwd(m, ws, tok, T, T);
    memcpy(out, ws->logits, (size_t)T * m->c.n_vocab * sizeof(float));
}

/* ---- backward ---------------------------------------------------------------------------- */

#define G(i) (grad + m->p[i].off)

double nuage_tmodel_seq(const nuage_tmodel *m, nuage_tws *ws, const int32_t *tok, const int32_t *tgt,
                        int T, float scale, float *grad, int *n_tgt) {
    const nuage_tcfg *c = &m->c;
    const int E = c->dim, H = c->n_head, Hk = c->n_head_kv, hd = m->hd, F = c->n_ff, V = c->n_vocab;
    const int Dk = hd * Hk;
    const float fscale = 1.0f / sqrtf((float)hd);
    const size_t TE = (size_t)ws->Tm * E;
    int n_l = 0;
    for (int t = 0; t < T; t++)
        if (tgt[t] >= 0) {
            ws->lpos[n_l] = t;
            ws->ltgt[n_l++] = tgt[t];
        }
    *n_tgt = n_l;
    nuage__tfwd(m, ws, tok, T, n_l);
    double loss = nuage__t_xent_f32(ws->dlogits, ws->logits, ws->ltgt, n_l, V, scale);
    if (!grad) return loss;

    /* output projection and final norm; dx = d(final residual), zero off the logit rows */
    float *dx = ws->dx;
    memset(dx, 0, (size_t)T * E * sizeof(float));
    if (n_l) {
        nuage__tmm_tn(ws->dlogits, V, ws->xf, E, G(m->out), E, V, E, n_l);
        nuage__tmm_nn(ws->dlogits, V, W(m->out), E, ws->dxn, E, n_l, E, V, 0);
        const float *xl = ws->xs + (size_t)c->n_layer * TE;
        for (int r = 0; r < n_l; r++)
            nuage__t_rmsnorm_bwd_f32(dx + (size_t)ws->lpos[r] * E, G(m->out_norm), ws->dxn + (size_t)r * E,
                                     xl + (size_t)ws->lpos[r] * E, W(m->out_norm), ws->rstdf + r, 1, E);
    }
    for (int l = c->n_layer - 1; l >= 0; l--) {
        const nuage_tlayer *L = &m->L[l];
        const nuage__tact *a = &ws->a[l];
        const float *x = ws->xs + l * TE;
        /* FFN: xo = xm + hb Wd^T */
        nuage__tmm_tn(dx, E, a->hb, F, G(L->wd), F, E, F, T);
        nuage__tmm_nn(dx, E, W(L->wd), F, ws->dh, F, T, F, E, 0);
        nuage__t_swiglu_bwd_f32(ws->dg, ws->du, ws->dh, a->g, a->u, (size_t)T * F);
        nuage__tmm_tn(ws->dg, F, a->xn2, E, G(L->wg), E, F, E, T);
        nuage__tmm_tn(ws->du, F, a->xn2, E, G(L->wu), E, F, E, T);
        nuage__tmm_nn(ws->dg, F, W(L->wg), E, ws->dxn, E, T, E, F, 0);
        nuage__tmm_nn(ws->du, F, W(L->wu), E, ws->dxn, E, T, E, F, 1);
        nuage__t_rmsnorm_bwd_f32(ws->dtmp, G(L->ffn_norm), ws->dxn, a->xm, W(L->ffn_norm), a->rstd2, T, E);
        for (size_t i = 0; i < (size_t)T * E; i++) dx[i] += ws->dtmp[i];
        /* attention: xm = x + att Wo^T */
        nuage__tmm_tn(dx, E, a->att, E, G(L->wo), E, E, E, T);
        nuage__tmm_nn(dx, E, W(L->wo), E, ws->datt, E, T, E, E, 0);
        nuage__t_attn_bwd_f32(ws->dq, ws->dk, ws->dv, ws->datt, a->P, a->q, a->k, a->v, T, H, Hk, hd,
                              fscale, ws->scr);
        nuage__t_rope_bwd_f32(ws->dq, m->rope_cs, T, H, hd, E);
        nuage__t_rope_bwd_f32(ws->dk, m->rope_cs, T, Hk, hd, Dk);
        nuage__tmm_tn(ws->dq, E, a->xn1, E, G(L->wq), E, E, E, T);
        nuage__tmm_tn(ws->dk, Dk, a->xn1, E, G(L->wk), E, Dk, E, T);
        nuage__tmm_tn(ws->dv, Dk, a->xn1, E, G(L->wv), E, Dk, E, T);
        nuage__tmm_nn(ws->dq, E, W(L->wq), E, ws->dxn, E, T, E, E, 0);
        nuage__tmm_nn(ws->dk, Dk, W(L->wk), E, ws->dxn, E, T, E, Dk, 1);
        nuage__tmm_nn(ws->dv, Dk, W(L->wv), E, ws->dxn, E, T, E, Dk, 1);
        nuage__t_rmsnorm_bwd_f32(ws->dtmp, G(L->attn_norm), ws->dxn, x, W(L->attn_norm), a->rstd1, T, E);
        for (size_t i = 0; i < (size_t)T * E; i++) dx[i] += ws->dtmp[i];
    }
    nuage__t_embed_bwd_f32(G(m->tok_embd), dx, tok, T, E);
    return loss;
}
