/*
 * test_train_grad.c - gradient checks of the trainer's hand-written
 * backward passes.
 *
 * Each operation of the llama block (embedding, RMSNorm, matmul, RoPE,
 * causal GQA attention, SwiGLU, cross-entropy) is run in double (the same
 * source as the float version the trainer uses, see src/train/ops_impl.h)
 * on small random inputs; the analytic gradient of L = sum(r * out) for a
 * fixed random r is compared with central finite differences of L, for
 * every input element. In double the two agree to ~1e-9, so the 1e-6
 * tolerance leaves no room for a wrong term. A control test checks that
 * the comparison rejects a gradient that is off by 1 %.
 *
 * Then the whole model (float, as trained) is checked the same way on a
 * few weights of every tensor with a looser tolerance, which catches
 * wiring mistakes between the operations, and the fast matrix kernels are
 * compared bit for bit with their portable versions.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"
#include "train/tops.h"
#include "train/train.h"

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t g_seed = 12345;
static double rnd(void) { /* uniform in [-1, 1) */
    g_seed = g_seed * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_seed >> 11) * 0x1.0p-52 - 1.0;
}
static void fill(double *x, size_t n, double s) {
    for (size_t i = 0; i < n; i++) x[i] = rnd() * s;
}
static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* An operation under test: computes L = sum(r * out) from the current
 * inputs (the closure reads its own state). */
typedef double (*loss_fn)(void *ctx);

/* Compare analytic gradient g (n) of parameter x (n) with central
 * differences of f; returns the worst |g - fd| / max(1, |fd|). */
static double fd_error(loss_fn f, void *ctx, double *x, const double *g, size_t n) {
    const double h = 1e-5;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double save = x[i];
        x[i] = save + h;
        double lp = f(ctx);
        x[i] = save - h;
        double lm = f(ctx);
        x[i] = save;
        double fd = (lp - lm) / (2 * h);
        double e = fabs(g[i] - fd) / fmax(1.0, fabs(fd));
        if (e > worst) worst = e;
    }
    return worst;
}

#define TOL 1e-6

/* ---- rmsnorm ---------------------------------------------------------------- */

enum { RT = 3, RN = 8 };
typedef struct { double x[RT * RN], w[RN], r[RT * RN], y[RT * RN], rstd[RT]; } rms_ctx;
static double rms_loss(void *p) {
    rms_ctx *c = p;
    nuage__t_rmsnorm_fwd_f64(c->y, c->rstd, c->x, c->w, RT, RN, 1e-5);
    return dot(c->r, c->y, RT * RN);
}

static void test_grad_rmsnorm(void **state) {
    (void)state;
    rms_ctx c;
    fill(c.x, RT * RN, 1.0);
    fill(c.w, RN, 1.0);
    fill(c.r, RT * RN, 1.0);
    double dx[RT * RN], dw[RN] = {0};
    rms_loss(&c);
    nuage__t_rmsnorm_bwd_f64(dx, dw, c.r, c.x, c.w, c.rstd, RT, RN);
    assert_true(fd_error(rms_loss, &c, c.x, dx, RT * RN) < TOL);
    assert_true(fd_error(rms_loss, &c, c.w, dw, RN) < TOL);
}

/* ---- matmul ----------------------------------------------------------------- */

enum { MT = 3, MI = 5, MO = 4 };
typedef struct { double x[MT * MI], W[MO * MI], r[MT * MO], y[MT * MO]; } mm_ctx;
static double mm_loss(void *p) {
    mm_ctx *c = p;
    nuage__t_matmul_fwd_f64(c->y, c->x, c->W, MT, MI, MO);
    return dot(c->r, c->y, MT * MO);
}

static void test_grad_matmul(void **state) {
    (void)state;
    mm_ctx c;
    fill(c.x, MT * MI, 1.0);
    fill(c.W, MO * MI, 1.0);
    fill(c.r, MT * MO, 1.0);
    double dx[MT * MI], dW[MO * MI] = {0};
    nuage__t_matmul_bwd_f64(dx, dW, c.r, c.x, c.W, MT, MI, MO);
    assert_true(fd_error(mm_loss, &c, c.x, dx, MT * MI) < TOL);
    assert_true(fd_error(mm_loss, &c, c.W, dW, MO * MI) < TOL);
}

/* ---- embedding ---------------------------------------------------------------- */

enum { EV = 6, EN = 4, ET = 5 };
typedef struct { double E[EV * EN], r[ET * EN], x[ET * EN]; int32_t tok[ET]; } emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    nuage__t_embed_fwd_f64(c->x, c->E, c->tok, ET, EN);
    return dot(c->r, c->x, ET * EN);
}

static void test_grad_embedding(void **state) {
    (void)state;
    emb_ctx c = {.tok = {1, 3, 1, 0, 5}}; /* a repeated token: its gradient sums */
    fill(c.E, EV * EN, 1.0);
    fill(c.r, ET * EN, 1.0);
    double dE[EV * EN] = {0};
    nuage__t_embed_bwd_f64(dE, c.r, c.tok, ET, EN);
    assert_true(fd_error(emb_loss, &c, c.E, dE, EV * EN) < TOL);
}

/* ---- rope ------------------------------------------------------------------------ */

enum { PT = 3, PH = 2, PD = 6 };
typedef struct { double h[PT * PH * PD], cs[PT * PD], r[PT * PH * PD], y[PT * PH * PD]; } rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    memcpy(c->y, c->h, sizeof c->y);
    nuage__t_rope_fwd_f64(c->y, c->cs, PT, PH, PD, PH * PD);
    return dot(c->r, c->y, PT * PH * PD);
}

static void test_grad_rope(void **state) {
    (void)state;
    rope_ctx c;
    fill(c.h, PT * PH * PD, 1.0);
    fill(c.r, PT * PH * PD, 1.0);
    for (int t = 0; t < PT; t++)
        for (int i = 0; i < PD / 2; i++) {
            double th = (t + 1) * pow(10000.0, -2.0 * i / PD);
            c.cs[t * PD + 2 * i] = cos(th);
            c.cs[t * PD + 2 * i + 1] = sin(th);
        }
    double dh[PT * PH * PD];
    memcpy(dh, c.r, sizeof dh);
    nuage__t_rope_bwd_f64(dh, c.cs, PT, PH, PD, PH * PD);
    assert_true(fd_error(rope_loss, &c, c.h, dh, PT * PH * PD) < TOL);
    /* and the forward is the engine's pairing: (2i, 2i+1) rotated by theta_i */
    rope_loss(&c);
    double a = c.h[2], b = c.h[3], th = 1 * pow(10000.0, -2.0 * 1 / PD);
    assert_true(fabs(c.y[2] - (a * cos(th) - b * sin(th))) < 1e-12);
    assert_true(fabs(c.y[3] - (a * sin(th) + b * cos(th))) < 1e-12);
}

/* ---- attention ---------------------------------------------------------------------- */

enum { AT = 5, AH = 4, AK = 2, AD = 4 };
typedef struct {
    double q[AT * AH * AD], k[AT * AK * AD], v[AT * AK * AD], r[AT * AH * AD], att[AT * AH * AD];
    double P[AH * AT * AT];
} attn_ctx;
static double attn_loss(void *p) {
    attn_ctx *c = p;
    nuage__t_attn_fwd_f64(c->att, c->P, c->q, c->k, c->v, AT, AH, AK, AD, 0.5);
    return dot(c->r, c->att, AT * AH * AD);
}

static void test_grad_attention(void **state) {
    (void)state;
    attn_ctx c;
    fill(c.q, sizeof c.q / 8, 1.5);
    fill(c.k, sizeof c.k / 8, 1.5);
    fill(c.v, sizeof c.v / 8, 1.0);
    fill(c.r, sizeof c.r / 8, 1.0);
    double dq[AT * AH * AD], dk[AT * AK * AD], dv[AT * AK * AD], scr[AT];
    attn_loss(&c);
    nuage__t_attn_bwd_f64(dq, dk, dv, c.r, c.P, c.q, c.k, c.v, AT, AH, AK, AD, 0.5, scr);
    assert_true(fd_error(attn_loss, &c, c.q, dq, AT * AH * AD) < TOL);
    assert_true(fd_error(attn_loss, &c, c.k, dk, AT * AK * AD) < TOL);
    assert_true(fd_error(attn_loss, &c, c.v, dv, AT * AK * AD) < TOL);
    /* causal: token 0 sees only itself, so its output is v_0 of its KV head */
    for (int h = 0; h < AH; h++)
        for (int i = 0; i < AD; i++) assert_true(fabs(c.att[h * AD + i] - c.v[(h / 2) * AD + i]) < 1e-12);
}

/* ---- swiglu ---------------------------------------------------------------------------- */

enum { SN = 12 };
typedef struct { double g[SN], u[SN], r[SN], h[SN]; } swi_ctx;
static double swi_loss(void *p) {
    swi_ctx *c = p;
    nuage__t_swiglu_fwd_f64(c->h, c->g, c->u, SN);
    return dot(c->r, c->h, SN);
}

static void test_grad_swiglu(void **state) {
    (void)state;
    swi_ctx c;
    fill(c.g, SN, 3.0);
    fill(c.u, SN, 1.0);
    fill(c.r, SN, 1.0);
    double dg[SN], du[SN];
    nuage__t_swiglu_bwd_f64(dg, du, c.r, c.g, c.u, SN);
    assert_true(fd_error(swi_loss, &c, c.g, dg, SN) < TOL);
    assert_true(fd_error(swi_loss, &c, c.u, du, SN) < TOL);
}

/* ---- cross-entropy ------------------------------------------------------------------------- */

enum { XN = 3, XV = 7 };
typedef struct { double z[XN * XV], dz[XN * XV]; int32_t tgt[XN]; } xe_ctx;
static double xe_loss(void *p) {
    xe_ctx *c = p;
    double tmp[XN * XV];
    return nuage__t_xent_f64(tmp, c->z, c->tgt, XN, XV, 1.0);
}

static void test_grad_xent(void **state) {
    (void)state;
    xe_ctx c = {.tgt = {0, 6, 3}};
    fill(c.z, XN * XV, 3.0);
    double loss = nuage__t_xent_f64(c.dz, c.z, c.tgt, XN, XV, 1.0);
    assert_true(fd_error(xe_loss, &c, c.z, c.dz, XN * XV) < TOL);
    /* the loss itself: -log softmax(target), computed independently */
    double ref = 0;
    for (int r = 0; r < XN; r++) {
        double s = 0;
        for (int i = 0; i < XV; i++) s += exp(c.z[r * XV + i]);
        ref += log(s) - c.z[r * XV + c.tgt[r]];
    }
    assert_true(fabs(loss - ref) < 1e-12);
}

/* The comparison is not vacuous: a gradient off by 1 % fails it. */
static void test_grad_check_detects_errors(void **state) {
    (void)state;
    mm_ctx c;
    fill(c.x, MT * MI, 1.0);
    fill(c.W, MO * MI, 1.0);
    fill(c.r, MT * MO, 1.0);
    double dx[MT * MI], dW[MO * MI] = {0};
    nuage__t_matmul_bwd_f64(dx, dW, c.r, c.x, c.W, MT, MI, MO);
    dW[5] *= 1.01;
    assert_true(fd_error(mm_loss, &c, c.W, dW, MO * MI) > 1e-4);
    rms_ctx rc;
    fill(rc.x, RT * RN, 1.0);
    fill(rc.w, RN, 1.0);
    fill(rc.r, RT * RN, 1.0);
    double rdx[RT * RN], rdw[RN] = {0};
    rms_loss(&rc);
    nuage__t_rmsnorm_bwd_f64(rdx, rdw, rc.r, rc.x, rc.w, rc.rstd, RT, RN);
    for (int i = 0; i < RT * RN; i++) rdx[i] = rc.r[i] * rc.w[i % RN] * rc.rstd[i / RN]; /* drop the norm term */
    assert_true(fd_error(rms_loss, &rc, rc.x, rdx, RT * RN) > 1e-4);
}

/* ---- fast kernels == portable ---------------------------------------------------------------- */

static void test_tmm_kernels(void **state) {
    (void)state;
    /* odd sizes exercise the 16/8/1-column tails and the row remainder */
    const int M = 7, N = 37, K = 29;
    float A[7 * 29], At[29 * 7], B[29 * 37], C1[7 * 37], C2[7 * 37];
    for (int i = 0; i < M * K; i++) A[i] = (float)rnd();
    for (int i = 0; i < K; i++)
        for (int j = 0; j < M; j++) At[i * M + j] = A[j * K + i];
    for (int i = 0; i < K * N; i++) B[i] = (float)rnd();
    for (int acc = 0; acc < 2; acc++) {
        for (int i = 0; i < M * N; i++) C1[i] = C2[i] = (float)rnd();
        nuage__tmm_nn(A, K, B, N, C1, N, M, N, K, acc);
        nuage__tmm_nn_ref(A, K, B, N, C2, N, M, N, K, acc);
        assert_memory_equal(C1, C2, sizeof C1);
        /* and against plain double arithmetic */
        for (int i = 0; i < M && !acc; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)A[i * K + k] * B[k * N + j];
                assert_true(fabs(C1[i * N + j] - s) < 1e-4);
            }
    }
    for (int i = 0; i < M * N; i++) C1[i] = C2[i] = (float)rnd();
    nuage__tmm_tn(At, M, B, N, C1, N, M, N, K);
    nuage__tmm_tn_ref(At, M, B, N, C2, N, M, N, K);
    assert_memory_equal(C1, C2, sizeof C1);
}

/* ---- whole model (float) ------------------------------------------------------------------------ */

static void test_grad_model(void **state) {
    (void)state;
    nuage_tcfg c = {.n_vocab = 11, .dim = 16, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 24,
                    .n_ctx = 8, .norm_eps = 1e-5f, .rope_base = 10000.0f};
    nuage_tmodel m;
    char err[256];
    assert_int_equal(nuage_tmodel_init(&m, &c, err, sizeof err), 0);
    nuage_tmodel_random(&m, 7);
    /* larger weights than the training init, so every path carries gradient */
    for (size_t i = 0; i < m.n; i++)
        if (m.w[i] != 1.0f) m.w[i] *= 15.0f;
        else m.w[i] = 1.0f + 0.3f * (float)rnd();
    nuage_tmodel_sync(&m);
    nuage_tws *ws = nuage_tws_new(&m);
    assert_non_null(ws);
    const int32_t tok[7] = {1, 4, 2, 9, 4, 0, 3};
    const int32_t tgt[7] = {-1, -1, 2, 9, 4, 10, 3};
    float *grad = calloc(m.n, sizeof *grad);
    int nt;
    nuage_tmodel_seq(&m, ws, tok, tgt, 7, 1.0f, grad, &nt);
    assert_int_equal(nt, 5);
    int checked = 0;
    for (int pi = 0; pi < m.n_p; pi++) {
        const nuage_tparam *p = &m.p[pi];
        size_t n = (size_t)(p->rows * p->cols);
        for (int s = 0; s < 4; s++) {
            size_t i = p->off + (size_t)((s * 7919 + 13) % (int)n);
            if (!strcmp(p->name, "token_embd.weight")) /* rows of tokens that occur */
                i = p->off + (size_t)(tok[s] * p->cols + s);
            float save = m.w[i];
            const float h = 1e-2f;
            m.w[i] = save + h;
            nuage_tmodel_sync(&m);
            double lp = nuage_tmodel_seq(&m, ws, tok, tgt, 7, 1.0f, NULL, &nt);
            m.w[i] = save - h;
            nuage_tmodel_sync(&m);
            double lm = nuage_tmodel_seq(&m, ws, tok, tgt, 7, 1.0f, NULL, &nt);
            m.w[i] = save;
            double fd = (lp - lm) / (2.0 * h);
            double g = grad[i];
            if (fabs(g - fd) > 2e-3 + 3e-2 * fabs(fd))
                print_message("%s[%zu]: analytic %g, finite difference %g\n", p->name, i - p->off, g, fd);
            assert_true(fabs(g - fd) <= 2e-3 + 3e-2 * fabs(fd));
            if (fabs(fd) > 1e-2) checked++;
        }
    }
    nuage_tmodel_sync(&m);
    /* most probes must carry a real gradient, or the check proves little */
    assert_true(checked > m.n_p * 2);
    free(grad);
    nuage_tws_free(ws);
    nuage_tmodel_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_rmsnorm),   cmocka_unit_test(test_grad_matmul),
        cmocka_unit_test(test_grad_embedding), cmocka_unit_test(test_grad_rope),
        cmocka_unit_test(test_grad_attention), cmocka_unit_test(test_grad_swiglu),
        cmocka_unit_test(test_grad_xent),      cmocka_unit_test(test_grad_check_detects_errors),
        cmocka_unit_test(test_tmm_kernels),    cmocka_unit_test(test_grad_model),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
