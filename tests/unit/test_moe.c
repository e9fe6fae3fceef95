/*
 * test_moe.c - routing, grouping and the batched MoE FFN (src/engine/moe.c)
 * against independent straightforward computations:
 *   - routing: softmax / sigmoid gating, top-k choice, selection bias used
 *     for choosing only, normalisation and scaling, ties to the lower id,
 *     checked against a double-precision sort-based reference;
 *   - grouping: every choice appears exactly once, in its expert's group,
 *     ascending inside the group, group sizes equal to the counts;
 *   - the whole FFN over a batch (grouped by expert) against a per-token,
 *     per-expert double-precision evaluation, with and without a shared
 *     expert, for 1 and many tokens and 1 and 2 threads; the experts no
 *     token of the batch chose are filled with NaN first, so any read of
 *     them would show in the output;
 *   - gpt-oss's variant: router bias, SOFTMAX_WEIGHT gating (softmax over
 *     the chosen logits only), per-expert gate/up/down biases and the
 *     clamped SwiGLU-OAI, with weights large enough that both clamps bite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/moe.h"
#include "engine/quant.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static double rnd(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

/* Reference router in double: scores, choose by (score + bias) descending
 * with ties to the lower id, weights from unbiased scores. */
static void ref_route(const nuage__moe_gate *g, const float *logits, int *sel, double *w) {
    int n = g->n_expert, k = g->n_used;
    double p[512], key[512];
    if (g->gating == NUAGE_GATING_SIGMOID) {
        for (int e = 0; e < n; e++) p[e] = 1.0 / (1.0 + exp(-(double)logits[e]));
    } else if (g->gating == NUAGE_GATING_SOFTMAX_WEIGHT) {
        for (int e = 0; e < n; e++) p[e] = logits[e];
    } else {
        double mx = -INFINITY, s = 0;
        for (int e = 0; e < n; e++) mx = fmax(mx, logits[e]);
        for (int e = 0; e < n; e++) s += exp(logits[e] - mx);
        for (int e = 0; e < n; e++) p[e] = exp(logits[e] - mx) / s;
    }
    int idx[512];
    for (int e = 0; e < n; e++) { idx[e] = e; key[e] = p[e] + (g->sel_bias ? g->sel_bias[e] : 0); }
    /* insertion sort: descending key, ascending id on ties (stable) */
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i;
        while (j > 0 && key[idx[j - 1]] < key[v]) { idx[j] = idx[j - 1]; j--; }
        idx[j] = v;
    }
    double sum = 0;
    for (int j = 0; j < k; j++) { sel[j] = idx[j]; w[j] = p[idx[j]]; }
    if (g->gating == NUAGE_GATING_SOFTMAX_WEIGHT) { /* softmax over the chosen (w[0] is their max) */
        double z = 0;
        for (int j = 0; j < k; j++) z += exp(w[j] - p[idx[0]]);
        for (int j = 0; j < k; j++) w[j] = exp(w[j] - p[idx[0]]) / z;
    }
    for (int j = 0; j < k; j++) sum += w[j];
    for (int j = 0; j < k; j++) {
        if (g->norm) w[j] /= sum;
        w[j] *= g->scale;
    }
}

static void check_route(const nuage__moe_gate *g, int trials) {
    float logits[512], probs[512], w[64];
    int32_t sel[64];
    int rs[64];
    double rw[64];
    for (int tr = 0; tr < trials; tr++) {
        for (int e = 0; e < g->n_expert; e++) logits[e] = (float)(3.0 * rnd());
        nuage__moe_route(g, logits, probs, sel, w);
        ref_route(g, logits, rs, rw);
        for (int j = 0; j < g->n_used; j++) {
            assert_int_equal(sel[j], rs[j]);
            assert_true(fabs(w[j] - rw[j]) <= 1e-6 * fmax(1.0, fabs(rw[j])));
        }
    }
}

static void test_route_softmax_norm(void **state) {
    (void)state;
    nuage__moe_gate g = {.n_expert = 8, .n_used = 2, .gating = NUAGE_GATING_SOFTMAX, .norm = true, .scale = 1.0f};
    check_route(&g, 200);
    g.n_expert = 128;
    g.n_used = 8;
    check_route(&g, 50);
}

static void test_route_softmax_plain(void **state) {
    (void)state;
    /* no normalisation: the weights are the softmax probabilities */
    nuage__moe_gate g = {.n_expert = 60, .n_used = 4, .gating = NUAGE_GATING_SOFTMAX, .norm = false, .scale = 1.0f};
    check_route(&g, 100);
    float logits[60], probs[60], w[4];
    int32_t sel[4];
    for (int e = 0; e < 60; e++) logits[e] = (float)rnd();
    nuage__moe_route(&g, logits, probs, sel, w);
    double s = 0;
    for (int e = 0; e < 60; e++) s += probs[e];
    assert_true(fabs(s - 1.0) < 1e-5);
    for (int j = 0; j < 4; j++) assert_true(w[j] == probs[sel[j]]);
}

static void test_route_sigmoid_bias_scale(void **state) {
    (void)state;
    float bias[16];
    for (int e = 0; e < 16; e++) bias[e] = (float)(0.5 * rnd());
    nuage__moe_gate g = {.n_expert = 16, .n_used = 3, .gating = NUAGE_GATING_SIGMOID, .norm = true,
                         .scale = 2.5f, .sel_bias = bias};
    check_route(&g, 200);
    /* a large bias forces the choice, but the weight stays unbiased */
    float logits[16], probs[16], w[3];
    int32_t sel[3];
    for (int e = 0; e < 16; e++) { logits[e] = (float)e; bias[e] = 0; }
    bias[0] = 10.0f;
    g.norm = false;
    g.scale = 1.0f;
    nuage__moe_route(&g, logits, probs, sel, w);
    assert_int_equal(sel[0], 0);
    assert_int_equal(sel[1], 15);
    assert_int_equal(sel[2], 14);
    assert_true(fabs(w[0] - 0.5) < 1e-6); /* sigmoid(0), not sigmoid(0) + 10 */
}

static void test_route_softmax_weight(void **state) {
    (void)state;
    nuage__moe_gate g = {.n_expert = 8, .n_used = 2, .gating = NUAGE_GATING_SOFTMAX_WEIGHT, .norm = false,
                         .scale = 1.0f};
    check_route(&g, 200);
    g.n_expert = 32;
    g.n_used = 4;
    check_route(&g, 100);
    /* chosen by the raw logits; weights = softmax of the two chosen */
    float logits[4] = {0.5f, 3.0f, -1.0f, 2.0f}, probs[4], w[2];
    int32_t sel[2];
    g.n_expert = 4;
    g.n_used = 2;
    nuage__moe_route(&g, logits, probs, sel, w);
    assert_int_equal(sel[0], 1);
    assert_int_equal(sel[1], 3);
    assert_true(fabs(w[0] - 1.0 / (1.0 + exp(-1.0))) < 1e-6);
    assert_true(fabs(w[1] - 1.0 / (1.0 + exp(1.0))) < 1e-6);
}

static void test_route_ties(void **state) {
    (void)state;
    nuage__moe_gate g = {.n_expert = 6, .n_used = 3, .gating = NUAGE_GATING_SOFTMAX, .norm = true, .scale = 1.0f};
    float logits[6] = {1, 2, 2, 0, 2, 2}, probs[6], w[3];
    int32_t sel[3];
    nuage__moe_route(&g, logits, probs, sel, w);
    assert_int_equal(sel[0], 1);
    assert_int_equal(sel[1], 2);
    assert_int_equal(sel[2], 4);
    for (int j = 0; j < 3; j++) assert_true(fabs(w[j] - 1.0 / 3.0) < 1e-6);
}

static void test_group(void **state) {
    (void)state;
    for (int trial = 0; trial < 20; trial++) {
        int T = 1 + (int)((rnd() + 1) * 40), K = 1 + trial % 4, NE = K + (trial % 7) * 3;
        int32_t *sel = malloc(sizeof *sel * T * K), *sorted = malloc(sizeof *sorted * T * K);
        int32_t offset[64];
        int count[64] = {0}, seen[4096] = {0};
        for (int t = 0; t < T; t++)
            for (int k = 0; k < K; k++) {
                int e = (int)((rnd() + 1) * 0.5 * NE);
                if (e >= NE) e = NE - 1;
                sel[t * K + k] = e;
                count[e]++;
            }
        nuage__moe_group(sel, T, K, NE, offset, sorted);
        assert_int_equal(offset[0], 0);
        assert_int_equal(offset[NE], T * K);
        for (int e = 0; e < NE; e++) {
            assert_int_equal(offset[e + 1] - offset[e], count[e]);
            for (int i = offset[e]; i < offset[e + 1]; i++) {
                int c = sorted[i];
                assert_true(c >= 0 && c < T * K);
                assert_int_equal(sel[c], e);
                seen[c]++;
                if (i > offset[e]) assert_true(sorted[i - 1] < c);
            }
        }
        for (int c = 0; c < T * K; c++) assert_int_equal(seen[c], 1);
        free(sel);
        free(sorted);
    }
}

/* ---- the FFN against a per-token reference ---------------------------------------------- */

typedef struct {
    nuage_model m;
    nuage_layer layer;
    float *router, *gate, *up, *down, *bias, *gsh, *ush, *dsh;
    float *rb, *gb, *ub, *db; /* gpt-oss biases: router, expert gate/up/down */
} fake_moe;

static float *rand_mat(size_t n, double scale) {
    float *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = (float)(scale * rnd());
    return a;
}

static nuage_weight f32w(const float *d, int64_t cols, int64_t rows) {
    nuage_weight w = {.type = NUAGE_TYPE_F32, .cols = cols, .rows = rows, .row_bytes = (size_t)cols * 4,
                      .data = (const uint8_t *)d};
    return w;
}

static void fake_init(fake_moe *f, int E, int F, int NE, int K, int n_shared, int gating) {
    memset(f, 0, sizeof *f);
    nuage_hparams *hp = &f->m.hp;
    hp->n_embd = E;
    hp->n_ff_exp = F;
    hp->n_expert = NE;
    hp->n_expert_used = K;
    hp->n_expert_shared = n_shared;
    hp->expert_gating = gating;
    hp->expert_weights_norm = true;
    hp->expert_weights_scale = gating == NUAGE_GATING_SIGMOID ? 2.5f : 0.0f;
    const bool oai = gating == NUAGE_GATING_SOFTMAX_WEIGHT;
    f->router = rand_mat((size_t)NE * E, 0.3);
    /* gpt-oss: gate/up values of order 10, so the clamps at 7 bite */
    f->gate = rand_mat((size_t)NE * F * E, oai ? 3.0 : 0.2);
    f->up = rand_mat((size_t)NE * F * E, oai ? 3.0 : 0.2);
    f->down = rand_mat((size_t)NE * E * F, 0.2);
    nuage_layer *L = &f->layer;
    L->ffn_gate_inp = f32w(f->router, E, NE);
    L->ffn_gate_exps = f32w(f->gate, E, (int64_t)F * NE);
    L->ffn_up_exps = f32w(f->up, E, (int64_t)F * NE);
    L->ffn_down_exps = f32w(f->down, F, (int64_t)E * NE);
    if (gating == NUAGE_GATING_SIGMOID) {
        f->bias = rand_mat((size_t)NE, 0.1);
        L->exp_probs_b = f32w(f->bias, NE, 1);
    }
    if (oai) {
        hp->expert_weights_norm = false;
        hp->expert_swiglu_alpha = 1.702f;
        hp->expert_swiglu_limit = 7.0f;
        f->rb = rand_mat((size_t)NE, 1.0);
        f->gb = rand_mat((size_t)NE * F, 2.0);
        f->ub = rand_mat((size_t)NE * F, 2.0);
        f->db = rand_mat((size_t)NE * E, 0.5);
        L->ffn_gate_inp_b = f32w(f->rb, NE, 0);
        L->ffn_gate_exps_b = f32w(f->gb, F, NE);
        L->ffn_up_exps_b = f32w(f->ub, F, NE);
        L->ffn_down_exps_b = f32w(f->db, E, NE);
    }
    if (n_shared) {
        int Fs = F * n_shared;
        f->gsh = rand_mat((size_t)Fs * E, 0.2);
        f->ush = rand_mat((size_t)Fs * E, 0.2);
        f->dsh = rand_mat((size_t)E * Fs, 0.2);
        L->ffn_gate_shexp = f32w(f->gsh, E, Fs);
        L->ffn_up_shexp = f32w(f->ush, E, Fs);
        L->ffn_down_shexp = f32w(f->dsh, Fs, E);
    }
    L->is_moe = true;
    f->m.layers = L;
}

static void fake_free(fake_moe *f) {
    free(f->router); free(f->gate); free(f->up); free(f->down);
    free(f->bias); free(f->gsh); free(f->ush); free(f->dsh);
    free(f->rb); free(f->gb); free(f->ub); free(f->db);
}

/* Clamp counters of the gpt-oss reference (gate values above the limit,
 * up values outside +-limit). */
static long g_clamp_gate, g_clamp_up;

/* out (E) += w * down(silu(gate x) * up x) in double; matrices row-major.
 * With biases gb, ub, db (non-NULL: gpt-oss) the products get them and the
 * activation is SwiGLU-OAI: min(a, 7) sigmoid(1.702 min(a, 7)) (clamp(b, -7, 7) + 1). */
static void ref_swiglu(const float *g, const float *u, const float *d, int E, int F, const float *x,
                       double w, double *out, const float *gb, const float *ub, const float *db) {
    double *h = malloc(sizeof *h * F);
    for (int r = 0; r < F; r++) {
        double a = 0, b = 0;
        for (int i = 0; i < E; i++) { a += (double)g[(size_t)r * E + i] * x[i]; b += (double)u[(size_t)r * E + i] * x[i]; }
        if (gb) {
            a += gb[r];
            b += ub[r];
            g_clamp_gate += a > 7.0;
            g_clamp_up += fabs(b) > 7.0;
            a = fmin(a, 7.0);
            b = fmin(fmax(b, -7.0), 7.0);
            h[r] = a / (1.0 + exp(-1.702 * a)) * (b + 1.0);
        } else {
            h[r] = a / (1.0 + exp(-a)) * b;
        }
    }
    for (int r = 0; r < E; r++) {
        double s = db ? db[r] : 0;
        for (int i = 0; i < F; i++) s += (double)d[(size_t)r * F + i] * h[i];
        out[r] += w * s;
    }
    free(h);
}

static void check_ffn(int E, int F, int NE, int K, int n_shared, int gating, int T, int n_threads) {
    fake_moe f;
    fake_init(&f, E, F, NE, K, n_shared, gating);
    nuage_context c;
    memset(&c, 0, sizeof c);
    c.m = &f.m;
    c.n_batch_max = T;
    c.pool = nuage__pool_new(n_threads);
    assert_non_null(c.pool);
    c.xb = rand_mat((size_t)T * E, 1.0);
    c.xb2 = malloc(sizeof(float) * T * E);
    c.arch_scratch = malloc(nuage__moe_scratch_bytes(&f.m, T));
    /* reference: route every token in double, then poison the experts no
     * token chose with NaN - the batched FFN must never read them */
    nuage__moe_gate g = nuage__moe_gate_of(&f.m, 0);
    int *sel = malloc(sizeof *sel * T * K);
    double *w = malloc(sizeof *w * T * K);
    bool used[512] = {false};
    for (int t = 0; t < T; t++) {
        const float *x = c.xb + (size_t)t * E;
        float logits[512];
        for (int e = 0; e < NE; e++) {
            double s = 0;
            for (int i = 0; i < E; i++) s += (double)f.router[(size_t)e * E + i] * x[i];
            logits[e] = (float)s + (f.rb ? f.rb[e] : 0.0f);
        }
        ref_route(&g, logits, sel + (size_t)t * K, w + (size_t)t * K);
        for (int k = 0; k < K; k++) used[sel[t * K + k]] = true;
    }
    int n_unused = 0;
    for (int e = 0; e < NE; e++) {
        if (used[e]) continue;
        n_unused++;
        for (size_t i = 0; i < (size_t)F * E; i++)
            f.gate[(size_t)e * F * E + i] = f.up[(size_t)e * F * E + i] = f.down[(size_t)e * E * F + i] = NAN;
        if (f.gb) {
            for (int i = 0; i < F; i++) f.gb[(size_t)e * F + i] = f.ub[(size_t)e * F + i] = NAN;
            for (int i = 0; i < E; i++) f.db[(size_t)e * E + i] = NAN;
        }
    }
    nuage_batch b = {.n_tokens = T};
    nuage__moe_ffn(&c, &b, 0);

    double *ref = malloc(sizeof *ref * E), maxd = 0, maxr = 0;
    for (int t = 0; t < T; t++) {
        const float *x = c.xb + (size_t)t * E;
        memset(ref, 0, sizeof *ref * E);
        for (int k = 0; k < K; k++) {
            size_t e = (size_t)sel[t * K + k];
            ref_swiglu(f.gate + e * F * E, f.up + e * F * E, f.down + e * E * F, E, F, x, w[t * K + k], ref,
                       f.gb ? f.gb + e * F : NULL, f.ub ? f.ub + e * F : NULL, f.db ? f.db + e * E : NULL);
        }
        if (n_shared) ref_swiglu(f.gsh, f.ush, f.dsh, E, F * n_shared, x, 1.0, ref, NULL, NULL, NULL);
        for (int i = 0; i < E; i++) {
            double d = fabs(ref[i] - c.xb2[(size_t)t * E + i]);
            if (!(d <= maxd)) maxd = d; /* NaN propagates */
            maxr = fmax(maxr, fabs(ref[i]));
        }
    }
    free(sel);
    free(w);
    print_message("moe ffn E%d F%d %d experts top-%d shared %d T%d threads %d: max |d| %.3g (max |y| %.3g), "
                  "%d unused experts poisoned\n", E, F, NE, K, n_shared, T, n_threads, maxd, maxr, n_unused);
    assert_true(maxr > 0.01);
    assert_true(maxd <= 1e-4 * maxr);
    free(ref);
    free(c.xb);
    free(c.xb2);
    free(c.arch_scratch);
    nuage__pool_free(c.pool);
    fake_free(&f);
}

static void test_ffn_softmax(void **state) {
    (void)state;
    check_ffn(64, 32, 8, 2, 0, NUAGE_GATING_SOFTMAX, 1, 1);
    check_ffn(64, 32, 8, 2, 0, NUAGE_GATING_SOFTMAX, 37, 2);
    check_ffn(32, 48, 16, 4, 0, NUAGE_GATING_SOFTMAX, 64, 2);
    check_ffn(32, 16, 64, 2, 0, NUAGE_GATING_SOFTMAX, 5, 2);
}

static void test_ffn_gptoss(void **state) {
    (void)state;
    g_clamp_gate = g_clamp_up = 0;
    check_ffn(64, 32, 8, 2, 0, NUAGE_GATING_SOFTMAX_WEIGHT, 1, 1);
    check_ffn(64, 32, 8, 2, 0, NUAGE_GATING_SOFTMAX_WEIGHT, 37, 2);
    check_ffn(32, 64, 32, 4, 0, NUAGE_GATING_SOFTMAX_WEIGHT, 50, 2);
    print_message("gpt-oss reference: %ld gate values above 7, %ld up values outside [-7, 7]\n", g_clamp_gate,
                  g_clamp_up);
    assert_true(g_clamp_gate > 100);
    assert_true(g_clamp_up > 100);
}

static void test_ffn_sigmoid_shared(void **state) {
    (void)state;
    check_ffn(64, 32, 8, 2, 1, NUAGE_GATING_SIGMOID, 1, 2);
    check_ffn(64, 32, 8, 3, 2, NUAGE_GATING_SIGMOID, 29, 2);
}

int main(void) {
    nuage_quant_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_softmax_norm),
        cmocka_unit_test(test_route_softmax_plain),
        cmocka_unit_test(test_route_sigmoid_bias_scale),
        cmocka_unit_test(test_route_softmax_weight),
        cmocka_unit_test(test_route_ties),
        cmocka_unit_test(test_group),
        cmocka_unit_test(test_ffn_softmax),
        cmocka_unit_test(test_ffn_sigmoid_shared),
        cmocka_unit_test(test_ffn_gptoss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
