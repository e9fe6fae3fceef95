/*
 * test_gemm.c - rows-in-lanes matrix products (src/engine/gemm.h) for
 * Q8_0, Q4_0, Q5_0 and IQ4_NL weights.
 *
 *   - the prepared activations hold exactly the Q8_0 rounding that
 *     vec_dot uses (codes and fp16 scale), and corr = -o * sum(codes);
 *   - gemm_ref agrees with a float64 evaluation of the dot products of the
 *     dequantized weights (to_float) and the rounded activations, within
 *     a bound from the float additions: the reference is right;
 *   - the SIMD gemm is bit-identical to gemm_ref over shapes that cross
 *     every internal boundary (16-row groups, 4-token tiles, 64-token
 *     slabs, 32-block panels) and row strides larger than a row;
 *   - batch invariance: every output equals the same dot computed alone
 *     (one row, one token), so results do not depend on batch size.
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

#include "test_gemm_util.h"
#include "test_util.h"

#include "engine/gemm.h"
#include "engine/quant.h"

static uint64_t g_rng = 0x2545f4914f6cdd1dull;

static uint64_t rng_next(void) {
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_sym(void) { return (float)((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

static const struct {
    nuage_type type;
    int offset;
    int has_min; /* Q4_1 / Q5_1: fp16 min at byte 2 of the block, Q8_1 activations */
} k_types[] = {
    {NUAGE_TYPE_Q8_0, NUAGE_GEMM_O_Q8_0, 0},     {NUAGE_TYPE_Q4_0, NUAGE_GEMM_O_Q4_0, 0},
    {NUAGE_TYPE_Q5_0, NUAGE_GEMM_O_Q5_0, 0},     {NUAGE_TYPE_IQ4_NL, NUAGE_GEMM_O_IQ4_NL, 0},
    {NUAGE_TYPE_Q4_1, NUAGE_GEMM_O_Q4_1, 1},     {NUAGE_TYPE_Q5_1, NUAGE_GEMM_O_Q5_1, 1},
};

typedef struct {
    int n, nw, na;
    size_t ws, as;
    uint8_t *w;   /* nw rows of ws bytes */
    uint8_t *a;   /* na prepared rows of as bytes */
    float *wf;    /* dequantized weights (nw, n) */
} problem;

/* Random weights quantized with the type's from_float (rows padded to a
 * stride of ws >= row size), activations prepared with gemm_prep. */
static void make(problem *p, nuage_type type, int n, int nw, int na, int pad_blocks) {
    const nuage_type_traits *tt = nuage_type_get(type);
    p->n = n; p->nw = nw; p->na = na;
    const size_t row = nuage_row_size(type, n);
    p->ws = row + (size_t)pad_blocks * tt->type_size;
    p->as = (size_t)(n / 32) * NUAGE_GEMM_ABLK;
    p->w = calloc((size_t)nw, p->ws);
    p->a = malloc((size_t)na * p->as);
    p->wf = malloc(sizeof(float) * (size_t)nw * n);
    float *x = malloc(sizeof(float) * (size_t)n);
    assert_non_null(p->w); assert_non_null(p->a); assert_non_null(p->wf); assert_non_null(x);
    for (int i = 0; i < nw; i++) {
        /* per-row scale spread so the fp16 scales vary a lot */
        const float s = 0.01f + 4.0f * (float)(i % 7);
        for (int e = 0; e < n; e++) x[e] = s * rng_sym();
        tt->from_float(x, p->w + (size_t)i * p->ws, n);
        tt->to_float(p->w + (size_t)i * p->ws, p->wf + (size_t)i * n, n);
    }
    for (int j = 0; j < na; j++) {
        for (int e = 0; e < n; e++) x[e] = (float)(j % 5 + 1) * rng_sym();
        tt->gemm_prep(x, p->a + (size_t)j * p->as, n);
    }
    free(x);
}

static void unmake(problem *p) { free(p->w); free(p->a); free(p->wf); }

static void test_prep_matches_q8_0(void **state) {
    (void)state;
    const nuage_type_traits *q8 = nuage_type_get(NUAGE_TYPE_Q8_0);
    const nuage_type_traits *q81 = nuage_type_get(NUAGE_TYPE_Q8_1);
    enum { N = 256 };
    float x[N];
    for (int e = 0; e < N; e++) x[e] = 3.0f * rng_sym();
    x[5] = 0.0f;
    nuage_block_q8_0 ref[N / 32];
    nuage_block_q8_1 ref1[N / 32];
    q8->from_float(x, ref, N);
    q81->from_float(x, ref1, N);
    for (size_t k = 0; k < sizeof k_types / sizeof k_types[0]; k++) {
        const nuage_type_traits *tt = nuage_type_get(k_types[k].type);
        assert_non_null(tt->gemm_prep);
        nuage_gemm_ablk a[N / 32];
        tt->gemm_prep(x, a, N);
        for (int b = 0; b < N / 32; b++) {
            if (k_types[k].has_min) { /* vec_dot's Q8_1 rounding, s kept */
                assert_memory_equal(a[b].y, ref1[b].qs, 32);
                assert_true(a[b].d == nuage_fp16_to_fp32(ref1[b].d));
                assert_true(a[b].s == nuage_fp16_to_fp32(ref1[b].s));
                continue;
            }
            int sum = 0;
            for (int i = 0; i < 32; i++) {
                assert_int_equal(a[b].y[i], ref[b].qs[i]);
                sum += ref[b].qs[i];
            }
            assert_true(a[b].d == nuage_fp16_to_fp32(ref[b].d));
            assert_int_equal(a[b].corr, -k_types[k].offset * sum);
        }
    }
}

/* gemm_ref against float64 sums of dequantized weights x rounded
 * activations. Bound: nb float roundings of partial sums of magnitude at
 * most sum |terms|, plus the scale product's rounding per block. */
static void test_ref_vs_float64(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof k_types / sizeof k_types[0]; k++) {
        const nuage_type_traits *tt = nuage_type_get(k_types[k].type);
        problem p;
        make(&p, k_types[k].type, 1024, 9, 5, 0);
        float *y = malloc(sizeof(float) * 9 * 5);
        tt->gemm_ref(p.n, y, 9, p.w, p.ws, p.nw, p.a, p.as, p.na);
        double worst = 0;
        for (int j = 0; j < p.na; j++) {
            const nuage_gemm_ablk *a = (const nuage_gemm_ablk *)(p.a + (size_t)j * p.as);
            for (int i = 0; i < p.nw; i++) {
                double exact = 0, mag = 0;
                for (int e = 0; e < p.n; e++) {
                    double t = (double)p.wf[(size_t)i * p.n + e] * a[e / 32].y[e % 32] * a[e / 32].d;
                    exact += t;
                    mag += fabs(t);
                }
                /* ggml's min term uses s = fp16(d * sum(y)), not the exact
                 * d * sum(y): add m * (s - d * sum(y)) per block */
                if (k_types[k].has_min)
                    for (int b = 0; b < p.n / 32; b++) {
                        uint16_t mh;
                        memcpy(&mh, p.w + (size_t)i * p.ws + (size_t)b * tt->type_size + 2, 2);
                        int sum = 0;
                        for (int e = 0; e < 32; e++) sum += a[b].y[e];
                        const double m = nuage_fp16_to_fp32(mh);
                        exact += m * ((double)a[b].s - (double)a[b].d * sum);
                        mag += fabs(m * a[b].s);
                    }
                double err = fabs((double)y[(size_t)j * 9 + i] - exact);
                double bound = (p.n / 32 + 2) * 2 * 6e-8 * mag + 1e-30;
                if (err / bound > worst) worst = err / bound;
                assert_true(err <= bound);
            }
        }
        print_message("%-7s gemm_ref vs float64: worst error %.3f of bound\n", tt->name, worst);
        free(y);
        unmake(&p);
    }
}

static void check_shape(nuage_type type, int n, int nw, int na, int pad) {
    const nuage_type_traits *tt = nuage_type_get(type);
    problem p;
    make(&p, type, n, nw, na, pad);
    gemm_check_simd_vs_ref(tt, p.n, p.w, p.ws, p.nw, p.a, p.as, p.na);
    unmake(&p);
}

static void test_simd_equals_ref(void **state) {
    (void)state;
    if (!nuage_type_get(NUAGE_TYPE_Q8_0)->gemm) {
        print_message("no SIMD gemm on this CPU: only the reference is checked\n");
        return;
    }
    static const int shapes[][4] = {
        /* n, nw, na, pad blocks */
        {32, 1, 1, 0},    {64, 16, 4, 0},   {96, 17, 5, 1},    {1024, 33, 3, 0},
        {1056, 40, 65, 2}, {2048, 15, 130, 0}, {4096, 64, 7, 0}, {160, 48, 64, 0},
        /* one token (decode) over full groups of 16 rows and a short one */
        {1024, 40, 1, 0}, {96, 33, 1, 1},
    };
    for (size_t k = 0; k < sizeof k_types / sizeof k_types[0]; k++) {
        const nuage_type_traits *tt = nuage_type_get(k_types[k].type);
        assert_non_null(tt->gemm);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_shape(k_types[k].type, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]);
        print_message("%-7s gemm == gemm_ref on %zu shapes\n", tt->name,
                      sizeof shapes / sizeof shapes[0]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prep_matches_q8_0),
        cmocka_unit_test(test_ref_vs_float64),
        cmocka_unit_test(test_simd_equals_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
