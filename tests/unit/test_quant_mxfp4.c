/*
 * test_quant_mxfp4.c - MXFP4 weights (ggml type 39): dequantization, the
 * quantizer, the Q8_0 dot product and the rows-in-lanes kernels.
 *
 * Nothing here trusts the code under test for expected values:
 *   - blocks are decoded by an independent decoder written from the
 *     format's definition (E2M1 nibble: sign, 2-bit exponent, 1-bit
 *     mantissa; E8M0 scale 2^(e - 127)), in float64, and to_float must
 *     agree exactly, for every exponent byte 0..255;
 *   - the quantizer must pick the nearest level for each weight (checked
 *     by brute force) with ggml's exponent rule, and reproduce llama.cpp's
 *     bytes on the shared rand-gptoss files (llama-quantize MXFP4_MOE
 *     quantized rand-gptoss-mxfp4 from rand-gptoss-f32);
 *   - vec_dot and gemm_ref against a float64 evaluation of
 *     sum_b dw_b * dy_b * sum(w * y) with a bound from the float additions;
 *   - every SIMD gemm bit-identical to gemm_ref over shapes that cross its
 *     internal boundaries (8/16-row groups, 4-token tiles, 64-token slabs,
 *     32-block panels) with odd row strides (MXFP4 blocks are 17 bytes, so
 *     rows are unaligned), and batch-invariant (each output equal to the
 *     same dot computed alone);
 *   - corrupt blocks (any exponent byte, any nibbles) never crash and
 *     still agree with the reference (NaN where it is NaN).
 * Every check runs at each SIMD level the CPU offers.
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

#include "engine/cpu.h"
#include "engine/gemm.h"
#include "engine/gguf.h"
#include "engine/quant.h"

#define BS 17

static uint64_t g_rng = 0x51ed2701a3c4b5d7ull;

static uint64_t rng_next(void) {
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unif(void) { return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }

static float rng_gauss(void) {
    double u = rng_unif(), v = rng_unif();
    if (u < 1e-300) u = 1e-300;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* Gaussian row with a per-block scale over 1e-3..10, some zero blocks. */
static void fill_row(float *x, int n) {
    for (int b = 0; b * 32 < n; b++) {
        const double r = rng_unif();
        const float scale = (float)pow(10.0, -3.0 + 4.0 * rng_unif());
        for (int j = b * 32; j < n && j < b * 32 + 32; j++) x[j] = r < 0.03 ? 0.0f : scale * rng_gauss();
    }
}

/* Independent E2M1 decode: bit 3 sign, bits 2..1 exponent, bit 0 mantissa;
 * exponent 0 is subnormal (m * 0.5), else (1 + m / 2) * 2^(e - 1). */
static double e2m1(int nib) {
    const int s = nib >> 3, e = (nib >> 1) & 3, m = nib & 1;
    const double v = e == 0 ? 0.5 * m : (1.0 + 0.5 * m) * ldexp(1.0, e - 1);
    return s ? -v : v;
}

/* Weight i of an MXFP4 row: e2m1 * 2^(e - 127). */
static double decode_value(const uint8_t *row, int64_t i) {
    const uint8_t *blk = row + (i / 32) * BS;
    const int j = (int)(i % 32);
    const int nib = j < 16 ? blk[1 + j] & 15 : blk[1 + j - 16] >> 4;
    return e2m1(nib) * ldexp(1.0, blk[0] - 127);
}

/* Value of an activation (Q8_0) code. */
static double act_value(const nuage_block_q8_0 *a, int64_t i) {
    const uint16_t h = a[i / 32].d;
    const nuage_type_traits *f16 = nuage_type_get(NUAGE_TYPE_F16);
    float d;
    f16->to_float(&h, &d, 1);
    return (double)d * a[i / 32].qs[i % 32];
}

/* float64 dot of the decoded weights with the decoded activations; absum
 * = sum |w y| (for the error bound). */
static double ref_dot(const uint8_t *w, const nuage_block_q8_0 *a, int n, double *absum) {
    double s = 0, as = 0;
    for (int64_t i = 0; i < n; i++) {
        const double p = decode_value(w, i) * act_value(a, i);
        s += p;
        as += fabs(p);
    }
    *absum = as;
    return s;
}

/* One rounding per block sum and per block addition. */
static double dot_tol(int n, double absum) { return (double)(n / 32 + 2) * ldexp(1.0, -23) * absum + 1e-30; }

static int max_level(void) { return nuage_cpu_level(); }

/* bit-equal, or both NaN */
static int same_float(float a, float b) { return (isnan(a) && isnan(b)) || !memcmp(&a, &b, 4); }

/* ------------------------------------------------------------- tests */

static void test_layout(void **state) {
    (void)state;
    const nuage_type_traits *t = nuage_type_get(NUAGE_TYPE_MXFP4);
    assert_non_null(t);
    assert_string_equal(t->name, "mxfp4");
    assert_int_equal(t->blck_size, 32);
    assert_int_equal(t->type_size, 17);
    assert_true(t->supported);
    assert_int_equal(t->vec_dot_type, NUAGE_TYPE_Q8_0);
    assert_int_equal(nuage_row_size(NUAGE_TYPE_MXFP4, 2880), 90 * 17);
    assert_int_equal(nuage_row_size(NUAGE_TYPE_MXFP4, 33), 0);
    assert_non_null(t->gemm_ref);
    assert_non_null(t->gemm_prep);
}

/* Every exponent byte and every nibble decode exactly. */
static void test_dequant_exact(void **state) {
    (void)state;
    for (int lvl = 0; lvl <= max_level(); lvl++) {
        nuage_quant_set_level(lvl);
        const nuage_type_traits *t = nuage_type_get(NUAGE_TYPE_MXFP4);
        uint8_t row[256 * BS];
        for (int b = 0; b < 256; b++) {
            row[b * BS] = (uint8_t)b;
            for (int j = 0; j < 16; j++) row[b * BS + 1 + j] = (uint8_t)(rng_next() & 255);
        }
        row[7 * BS + 1] = 0x10; /* a +0 and a -0... */
        row[7 * BS + 2] = 0x89; /* ...and both signs of one level */
        float *y = malloc(256 * 32 * sizeof(float));
        t->to_float(row, y, 256 * 32);
        for (int i = 0; i < 256 * 32; i++) {
            const double want = decode_value(row, i);
            if (!(y[i] == (float)want)) /* e >= 253 overflows to inf, as in ggml */
                fail_msg("value %d (exponent %d): %.9g, want %.9g", i, i / 32, y[i], want);
        }
        free(y);
    }
    nuage_quant_set_level(max_level());
}

/* Nearest level with ggml's exponent; no crash or bad exponent on
 * infinities, NaNs, huge and subnormal inputs. */
static void test_quantize(void **state) {
    (void)state;
    const nuage_type_traits *t = nuage_type_get(NUAGE_TYPE_MXFP4);
    enum { N = 64 * 32 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint8_t q[N / 32 * BS];
    for (int rep = 0; rep < 20; rep++) {
        fill_row(x, N);
        t->from_float(x, q, N);
        t->to_float(q, y, N);
        for (int b = 0; b < N / 32; b++) {
            double amax = 0;
            for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(x[b * 32 + j]));
            const int want_e = amax > 0 ? (int)floor(log2(amax)) - 2 + 127 : 0;
            assert_int_equal(q[b * BS], want_e);
            const double d = ldexp(1.0, want_e - 128);
            for (int j = 0; j < 32; j++) {
                const double v = x[b * 32 + j];
                double best = INFINITY;
                for (int k = 0; k < 16; k++) best = fmin(best, fabs(e2m1(k) * 2 * d - v));
                assert_true(fabs((double)y[b * 32 + j] - v) <= best);
            }
        }
    }
    const float specials[] = {INFINITY, -INFINITY, NAN, 3.4e38f, -3.4e38f, 1e-40f, -1e-44f, 0.0f};
    for (size_t s = 0; s < sizeof specials / sizeof specials[0]; s++) {
        for (int j = 0; j < 32; j++) x[j] = j == 5 ? specials[s] : (s == 7 ? 0.0f : 1e-41f * (float)j);
        t->from_float(x, q, 32);
        assert_true(q[0] <= 254);
        t->to_float(q, y, 32);
        for (int j = 0; j < 32; j++) assert_false(isnan(y[j]));
    }
    free(x);
    free(y);
}

/* vec_dot against the float64 definition, at every level and odd sizes. */
static void test_vec_dot(void **state) {
    (void)state;
    const int lens[] = {32, 64, 96, 288, 544, 2880, 4096};
    for (int lvl = 0; lvl <= max_level(); lvl++) {
        nuage_quant_set_level(lvl);
        const nuage_type_traits *t = nuage_type_get(NUAGE_TYPE_MXFP4);
        const nuage_type_traits *q8 = nuage_type_get(NUAGE_TYPE_Q8_0);
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const int n = lens[li];
            float *x = malloc((size_t)n * 4);
            uint8_t *w = malloc(nuage_row_size(NUAGE_TYPE_MXFP4, n));
            nuage_block_q8_0 *a = malloc(nuage_row_size(NUAGE_TYPE_Q8_0, n));
            for (int rep = 0; rep < 8; rep++) {
                fill_row(x, n);
                t->from_float(x, w, n);
                fill_row(x, n);
                q8->from_float(x, a, n);
                float s, sr;
                t->vec_dot(n, &s, w, a);
                t->vec_dot_ref(n, &sr, w, a);
                double absum, ref = ref_dot(w, a, n, &absum);
                if (!(fabs(s - ref) <= dot_tol(n, absum)) || !(fabs(sr - ref) <= dot_tol(n, absum)))
                    fail_msg("n %d level %d: %.9g / %.9g vs %.9g", n, lvl, s, sr, ref);
            }
            free(x);
            free(w);
            free(a);
        }
    }
    nuage_quant_set_level(max_level());
}

/* ------------------------------------------------------------- gemm */

typedef struct {
    int n, nw, na;
    size_t ws, as;
    uint8_t *w, *a;
    nuage_block_q8_0 *aq; /* the same activations as Q8_0 rows */
} problem;

static void make_problem(problem *p, int n, int nw, int na, int corrupt) {
    const nuage_type_traits *t = nuage_type_get(NUAGE_TYPE_MXFP4);
    const nuage_type_traits *q8 = nuage_type_get(NUAGE_TYPE_Q8_0);
    p->n = n;
    p->nw = nw;
    p->na = na;
    p->ws = nuage_row_size(NUAGE_TYPE_MXFP4, n) + 3; /* odd stride: unaligned rows */
    p->as = (size_t)(n / 32) * NUAGE_GEMM_ABLK + 8;
    p->w = malloc(p->ws * (size_t)nw);
    p->a = malloc(p->as * (size_t)na);
    p->aq = malloc(nuage_row_size(NUAGE_TYPE_Q8_0, n) * (size_t)na);
    float *x = malloc((size_t)n * 4);
    for (int i = 0; i < nw; i++) {
        uint8_t *wr = p->w + (size_t)i * p->ws;
        if (corrupt) {
            for (size_t k = 0; k < p->ws; k++) wr[k] = (uint8_t)rng_next();
        } else {
            fill_row(x, n);
            t->from_float(x, wr, n);
        }
    }
    for (int j = 0; j < na; j++) {
        fill_row(x, n);
        t->gemm_prep(x, p->a + (size_t)j * p->as, n);
        q8->from_float(x, p->aq + (size_t)j * (n / 32), n);
    }
    free(x);
}

static void free_problem(problem *p) {
    free(p->w);
    free(p->a);
    free(p->aq);
}

/* The prepared activations are the Q8_0 rounding with corr = -12 sum. */
static void test_gemm_prep(void **state) {
    (void)state;
    problem p;
    make_problem(&p, 1024, 1, 3, 0);
    for (int j = 0; j < 3; j++)
        for (int b = 0; b < 1024 / 32; b++) {
            const nuage_gemm_ablk *ab = (const nuage_gemm_ablk *)(p.a + (size_t)j * p.as) + b;
            const nuage_block_q8_0 *q = p.aq + (size_t)j * 32 + b;
            assert_memory_equal(ab->y, q->qs, 32);
            int sum = 0;
            for (int i = 0; i < 32; i++) sum += q->qs[i];
            assert_int_equal(ab->corr, -12 * sum);
            assert_true(ab->d == nuage_fp16_to_fp32(q->d));
        }
    free_problem(&p);
}

/* gemm_ref against float64; the SIMD gemm bit-equal to gemm_ref; every
 * output equal to the lone 1 x 1 product. */
static void check_gemm(int n, int nw, int na, int corrupt) {
    problem p;
    make_problem(&p, n, nw, na, corrupt);
    const size_t ys = (size_t)nw + 5;
    float *yr = malloc(sizeof(float) * ys * (size_t)na);
    float *yg = malloc(sizeof(float) * ys * (size_t)na);
    const nuage_type_traits *t = nuage_type_get(NUAGE_TYPE_MXFP4);
    t->gemm_ref(n, yr, ys, p.w, p.ws, nw, p.a, p.as, na);
    if (!corrupt)
        for (int j = 0; j < na; j++)
            for (int i = 0; i < nw; i += 1 + nw / 7) {
                double absum, ref = ref_dot(p.w + (size_t)i * p.ws, p.aq + (size_t)j * (n / 32), n, &absum);
                const float v = yr[(size_t)j * ys + i];
                if (!(fabs(v - ref) <= dot_tol(n, absum)))
                    fail_msg("gemm_ref n %d row %d tok %d: %.9g vs %.9g", n, i, j, v, ref);
            }
    if (t->gemm) {
        for (size_t k = 0; k < ys * (size_t)na; k++) yg[k] = -777.0f;
        t->gemm(n, yg, ys, p.w, p.ws, nw, p.a, p.as, na);
        for (int j = 0; j < na; j++) {
            for (int i = 0; i < nw; i++) {
                const float g = yg[(size_t)j * ys + i], r = yr[(size_t)j * ys + i];
                if (!same_float(g, r))
                    fail_msg("%s gemm n %d nw %d na %d: row %d tok %d: %.9g vs ref %.9g",
                             nuage_quant_simd_name(), n, nw, na, i, j, g, r);
                /* batch invariance: the same output computed alone */
                if ((i * 7 + j) % 5 == 0) {
                    float one = -1.0f;
                    t->gemm(n, &one, 1, p.w + (size_t)i * p.ws, p.ws, 1, p.a + (size_t)j * p.as, p.as, 1);
                    assert_true(same_float(one, g));
                }
            }
            for (size_t i = (size_t)nw; i < ys; i++) assert_true(yg[(size_t)j * ys + i] == -777.0f);
        }
    }
    free(yr);
    free(yg);
    free_problem(&p);
}

static void test_gemm(void **state) {
    (void)state;
    const int ns[] = {32, 96, 1024, 1056, 2880};
    const int nws[] = {1, 7, 8, 9, 16, 17, 33};
    const int nas[] = {1, 2, 4, 5, 64, 67};
    int checked = 0;
    for (int lvl = 0; lvl <= max_level(); lvl++) {
        nuage_quant_set_level(lvl);
        /* from AVX2 on, matmul runs the rows-in-lanes kernel */
        if (lvl > 0) assert_non_null(nuage_type_get(NUAGE_TYPE_MXFP4)->gemm);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t b = 0; b < sizeof nws / sizeof nws[0]; b++)
                for (size_t c = 0; c < sizeof nas / sizeof nas[0]; c++) {
                    if (ns[a] >= 2880 && nas[c] > 5 && nws[b] > 9) continue; /* time */
                    check_gemm(ns[a], nws[b], nas[c], 0);
                    checked++;
                }
    }
    print_message("%d gemm shapes checked\n", checked);
    nuage_quant_set_level(max_level());
}

/* Random bytes as weights: every exponent 0..255, any nibble; the kernels
 * must not crash and must still agree with the reference. */
static void test_corrupt(void **state) {
    (void)state;
    for (int lvl = 0; lvl <= max_level(); lvl++) {
        nuage_quant_set_level(lvl);
        for (int rep = 0; rep < 4; rep++) {
            check_gemm(1024, 17, 5, 1);
            check_gemm(96, 16, 1, 1);
        }
        const nuage_type_traits *t = nuage_type_get(NUAGE_TYPE_MXFP4);
        uint8_t w[8 * BS];
        for (size_t k = 0; k < sizeof w; k++) w[k] = (uint8_t)rng_next();
        w[0] = 255;
        w[BS] = 0;
        float y[256];
        t->to_float(w, y, 256);
        for (int i = 0; i < 256; i++) assert_false(isnan(y[i]));
    }
    nuage_quant_set_level(max_level());
}

/* ------------------------------------------------ shared model files */

/* llama.cpp quantized rand-gptoss-mxfp4 from rand-gptoss-f32: our
 * quantizer (ggml's reference algorithm) must give the same bytes, and
 * the dequantized weights must be near the originals. */
static void test_shared_models(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    char err[256];
    nuage_gguf *gf = NULL, *gq = NULL;
    if (nuage_gguf_open(nuage_test_shared_path("models/rand-gptoss-f32.gguf"), &gf, err, sizeof err))
        fail_msg("open f32: %s", err);
    if (nuage_gguf_open(nuage_test_shared_path("models/rand-gptoss-mxfp4.gguf"), &gq, err, sizeof err))
        fail_msg("open mxfp4: %s", err);
    const char *names[] = {"blk.0.ffn_gate_exps.weight", "blk.1.ffn_up_exps.weight",
                           "blk.3.ffn_down_exps.weight"};
    const nuage_type_traits *t = nuage_type_get(NUAGE_TYPE_MXFP4);
    for (size_t k = 0; k < 3; k++) {
        const nuage_gguf_tensor *tf = nuage_gguf_find_tensor(gf, names[k]);
        const nuage_gguf_tensor *tq = nuage_gguf_find_tensor(gq, names[k]);
        assert_non_null(tf);
        assert_non_null(tq);
        assert_int_equal(tq->type, NUAGE_TYPE_MXFP4);
        const int64_t cols = tf->ne[0], n = tf->ne[0] * tf->ne[1] * tf->ne[2];
        const size_t rs = nuage_row_size(NUAGE_TYPE_MXFP4, cols), total = (size_t)(n / cols) * rs;
        uint8_t *mine = malloc(total);
        float *deq = malloc((size_t)n * 4);
        const float *ref = tf->data;
        for (int64_t r = 0; r < n / cols; r++) t->from_float(ref + r * cols, mine + r * rs, cols);
        size_t diff = 0;
        for (size_t b = 0; b < total / BS; b++)
            diff += memcmp(mine + b * BS, (const uint8_t *)tq->data + b * BS, BS) != 0;
        print_message("%s: %zu of %zu blocks differ from llama.cpp's\n", names[k], diff, total / BS);
        assert_true(diff * 1000 <= total / BS);
        t->to_float(tq->data, deq, n);
        for (int64_t b = 0; b < n / 32; b++) {
            double amax = 0;
            for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(ref[b * 32 + j]));
            for (int j = 0; j < 32; j++) /* half the widest level gap (4 of 12 at the top) */
                assert_true(fabs((double)deq[b * 32 + j] - ref[b * 32 + j]) <= amax / 3.0 + 1e-30);
        }
        free(mine);
        free(deq);
    }
    nuage_gguf_close(gf);
    nuage_gguf_close(gq);
}

int main(void) {
    nuage_quant_init();
    print_message("SIMD level %d (%s)\n", max_level(), nuage_quant_simd_name());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),        cmocka_unit_test(test_dequant_exact),
        cmocka_unit_test(test_quantize),      cmocka_unit_test(test_vec_dot),
        cmocka_unit_test(test_gemm_prep),     cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_corrupt),       cmocka_unit_test(test_shared_models),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
