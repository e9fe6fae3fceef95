/*
 * test_attn.c - the tiled attention kernels (src/engine/attn.h).
 *
 *   - nuage__attn_exp: exp(0) is exactly 1 (a tile a row does not see
 *     must leave it unchanged), relative error <= 4e-7 against exp in
 *     double over [-80, 80], no NaN for -inf;
 *   - every SIMD tile kernel (AVX2 8 lanes, AVX-512 16 lanes and its
 *     8-lane companion) is bit-identical to the scalar twin of the same
 *     width over runs of tiles with causal and window masks, lanes that
 *     see nothing, sinks, partial tiles, and head widths 32..256;
 *   - the row widening (f16, q8_0) is bit-identical to the scalar one;
 *   - the online softmax over tiles agrees with a float64 softmax
 *     attention computed in one pass (the math is right, not just the
 *     twins alike), within 2e-6 relative.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#include "engine/attn.h"
#include "engine/quant.h"
#include "engine/quant_legacy.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* [-1, 1) */
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((g_rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static int irand(int n) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((g_rng >> 33) % (uint64_t)n);
}

static void test_exp(void **state) {
    (void)state;
    assert_true(nuage__attn_exp(0.0f) == 1.0f);
    assert_true(nuage__attn_exp(-0.0f) == 1.0f);
    double worst = 0;
    for (int i = 0; i <= 160000; i++) {
        float x = -80.0f + (float)i * 0.001f;
        double r = fabs((double)nuage__attn_exp(x) / exp((double)x) - 1.0);
        if (r > worst) worst = r;
    }
    print_message("attn exp: worst relative error over [-80, 80] %.3g\n", worst);
    assert_true(worst <= 4e-7);
    float e = nuage__attn_exp(-INFINITY);
    assert_false(isnan(e));
    assert_true(e >= 0.0f && e < 1e-37f);
}

/* Per-lane state of one run: m, l (w), ot (hdv, w). */
typedef struct {
    float m[16], l[16];
    float ot[256 * 16];
} state_t;

/* A run of n_tiles tiles through `tile` (or the scalar twin when tile is
 * NULL) with the same inputs; returns the final state in *st. */
static void run_tiles(nuage__attn_tile_fn tile, int w, int hd, int hdv, int n_tiles, uint64_t seed, state_t *st) {
    static float kf[NUAGE_ATTN_KT * 256], vf[NUAGE_ATTN_KT * 256], qt[256 * 16], pbuf[NUAGE_ATTN_KT * 16];
    int32_t lo[16], hi[16];
    g_rng = seed;
    for (int i = 0; i < hd * w; i++) qt[i] = frand() * 2.0f;
    int ctx = n_tiles * NUAGE_ATTN_KT;
    for (int r = 0; r < w; r++) {
        int kind = irand(5);
        hi[r] = 1 + irand(ctx);                       /* causal: sees [lo, hi) */
        lo[r] = kind == 1 ? irand(hi[r]) : 0;         /* a window */
        if (kind == 2) lo[r] = hi[r] = 0;             /* a padding lane: sees nothing */
        st->m[r] = kind == 3 ? frand() : -INFINITY;   /* a sink */
        st->l[r] = kind == 3 ? 1.0f : 0.0f;
    }
    memset(st->ot, 0, sizeof st->ot);
    for (int t = 0; t < n_tiles; t++) {
        int p0 = t * NUAGE_ATTN_KT;
        int n = t == n_tiles - 1 ? 1 + irand(NUAGE_ATTN_KT) : NUAGE_ATTN_KT;
        for (int i = 0; i < NUAGE_ATTN_KT * hd; i++) kf[i] = frand();
        for (int i = 0; i < NUAGE_ATTN_KT * hdv; i++) vf[i] = frand();
        if (tile) tile(kf, vf, hd, hdv, p0, n, 0.125f, qt, lo, hi, st->m, st->l, st->ot, pbuf);
        else nuage__attn_tile_scalar(w, kf, vf, hd, hdv, p0, n, 0.125f, qt, lo, hi, st->m, st->l, st->ot, pbuf);
    }
}

static int check_twin(nuage__attn_tile_fn tile, int w, const char *what) {
    static const int dims[][2] = {{32, 32}, {64, 64}, {128, 128}, {256, 256}, {64, 128}, {96, 48}};
    int checked = 0;
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        if (dims[i][1] % 16) continue; /* the SIMD kernels take hdv in 16s */
        for (int rep = 0; rep < 8; rep++) {
            static state_t a, b;
            uint64_t seed = 1000 + 77 * (uint64_t)rep + (uint64_t)i;
            run_tiles(tile, w, dims[i][0], dims[i][1], 1 + rep, seed, &a);
            run_tiles(NULL, w, dims[i][0], dims[i][1], 1 + rep, seed, &b);
            assert_memory_equal(a.m, b.m, sizeof(float) * w);
            assert_memory_equal(a.l, b.l, sizeof(float) * w);
            assert_memory_equal(a.ot, b.ot, sizeof(float) * w * dims[i][1]);
            checked++;
        }
    }
    print_message("%s: %d runs bit-identical to the scalar twin\n", what, checked);
    return checked;
}

static void test_tile_twins(void **state) {
    (void)state;
    int n = 0;
    const nuage__attn_kernels *k1 = nuage__attn_kernels_level(1), *k2 = nuage__attn_kernels_level(2);
    if (k1) n += check_twin(k1->tile, k1->w, "avx2 tile (8 lanes)");
    if (k2) n += check_twin(k2->tile, k2->w, "avx512 tile (16 lanes)");
    if (k2 && k2->tile8) n += check_twin(k2->tile8, 8, "avx512's 8-lane tile");
    const nuage__attn_kernels *k0 = nuage__attn_kernels_level(0);
    assert_non_null(k0);
    n += check_twin(k0->tile, k0->w, "scalar tile (16 lanes)");
    if (!k1 && !k2) print_message("no SIMD attention kernels on this CPU\n");
    assert_true(n > 0);
}

static void test_load_twins(void **state) {
    (void)state;
    float x[256], a[256], b[256];
    uint16_t h[256];
    nuage_block_q8_0 q[8];
    for (int i = 0; i < 256; i++) {
        x[i] = frand() * 3.0f;
        h[i] = nuage_fp32_to_fp16(x[i]);
    }
    nuage__quantize_q8_0_ref(x, q, 256);
    const nuage__attn_kernels *k0 = nuage__attn_kernels_level(0);
    for (int level = 1; level <= 2; level++) {
        const nuage__attn_kernels *k = nuage__attn_kernels_level(level);
        if (!k) continue;
        k0->load(NUAGE_KV_F16, h, 256, a);
        k->load(NUAGE_KV_F16, h, 256, b);
        assert_memory_equal(a, b, sizeof a);
        k0->load(NUAGE_KV_Q8_0, q, 256, a);
        k->load(NUAGE_KV_Q8_0, q, 256, b);
        assert_memory_equal(a, b, sizeof a);
        k0->load(NUAGE_KV_F32, x, 256, a);
        k->load(NUAGE_KV_F32, x, 256, b);
        assert_memory_equal(a, b, sizeof a);
    }
    /* q8_0 widening is the dequantization: within half a step of x (plus
     * the f16 rounding of the step, up to 127 steps) */
    k0->load(NUAGE_KV_Q8_0, q, 256, a);
    for (int i = 0; i < 256; i++) {
        float d = nuage_fp16_to_fp32(q[i / 32].d);
        assert_true(fabsf(a[i] - x[i]) <= 0.5f * d + fabsf(x[i]) * 1e-3f);
    }
}

/* The tiled online softmax against one-pass float64 attention. */
static void test_vs_float64(void **state) {
    (void)state;
    const int hd = 64, hdv = 64, ctx = 200, w = 16;
    static float K[200 * 64], V[200 * 64], Q[16 * 64], qt[64 * 16], kf[NUAGE_ATTN_KT * 64], vf[NUAGE_ATTN_KT * 64],
        pbuf[NUAGE_ATTN_KT * 16];
    float m[16], l[16];
    static float ot[64 * 16];
    int32_t lo[16], hi[16];
    g_rng = 4242;
    for (int i = 0; i < ctx * hd; i++) K[i] = frand();
    for (int i = 0; i < ctx * hdv; i++) V[i] = frand();
    for (int i = 0; i < w * hd; i++) Q[i] = frand() * 4.0f;
    for (int r = 0; r < w; r++) {
        for (int d = 0; d < hd; d++) qt[d * w + r] = Q[r * hd + d];
        hi[r] = ctx - 11 * r;
        lo[r] = r % 3 == 1 ? hi[r] - 50 : 0;
        m[r] = -INFINITY;
        l[r] = 0;
    }
    memset(ot, 0, sizeof ot);
    const float scale = 0.125f;
    const nuage__attn_kernels *k = nuage__attn_kernels_get();
    for (int p0 = 0; p0 < ctx; p0 += NUAGE_ATTN_KT) {
        int n = ctx - p0 < NUAGE_ATTN_KT ? ctx - p0 : NUAGE_ATTN_KT;
        memset(kf, 0, sizeof kf);
        memset(vf, 0, sizeof vf);
        memcpy(kf, K + (size_t)p0 * hd, (size_t)n * hd * sizeof(float));
        memcpy(vf, V + (size_t)p0 * hdv, (size_t)n * hdv * sizeof(float));
        if (k->w == 16) k->tile(kf, vf, hd, hdv, p0, n, scale, qt, lo, hi, m, l, ot, pbuf);
        else nuage__attn_tile_scalar(16, kf, vf, hd, hdv, p0, n, scale, qt, lo, hi, m, l, ot, pbuf);
    }
    double worst = 0;
    for (int r = 0; r < w; r++) {
        double s[200], mx = -1e300, sum = 0;
        for (int p = lo[r]; p < hi[r]; p++) {
            double dot = 0;
            for (int d = 0; d < hd; d++) dot += (double)Q[r * hd + d] * K[p * hd + d];
            s[p] = dot * scale;
            if (s[p] > mx) mx = s[p];
        }
        for (int p = lo[r]; p < hi[r]; p++) sum += exp(s[p] - mx);
        for (int dv = 0; dv < hdv; dv++) {
            double o = 0, mag = 0;
            for (int p = lo[r]; p < hi[r]; p++) {
                o += exp(s[p] - mx) / sum * V[p * hdv + dv];
                mag += exp(s[p] - mx) / sum * fabs(V[p * hdv + dv]);
            }
            double got = ot[dv * w + r] / l[r];
            double e = fabs(got - o) / mag;
            if (e > worst) worst = e;
        }
    }
    print_message("tiled attention vs float64: worst error %.3g of sum |p v|\n", worst);
    assert_true(worst <= 2e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_tile_twins),
        cmocka_unit_test(test_load_twins),
        cmocka_unit_test(test_vs_float64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
