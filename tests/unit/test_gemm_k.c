/*
 * test_gemm_k.c - rows-in-lanes matrix products for the K-quants
 * (src/engine/gemm_k.h): Q4_K, Q6_K, IQ4_XS, Q5_K, Q2_K, Q3_K.
 *
 *   - the prepared activations hold exactly the Q8_K rounding that
 *     vec_dot uses (codes, scale, 16-value sums in gemm_k.h's pair order,
 *     32-value sums);
 *   - gemm_ref agrees with a float64 evaluation of the dot products of the
 *     dequantized weights (to_float) and the rounded activations, within
 *     a bound from the float roundings: the reference is right;
 *   - the AVX-512 gemm is bit-identical to gemm_ref over shapes that cross
 *     every internal boundary (16-row groups, 4-token tiles, 64-token
 *     slabs, 2-block panels), row strides larger than a row, and blocks of
 *     random bytes (every code, negative and extreme scales) against
 *     activations at the int8 limits (the int32 sums' worst case);
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
#include "engine/gemm_k.h"
#include "engine/quant.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void) {
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_sym(void) { return (float)((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

/* The K types with a gemm, and the byte offsets of their fp16 factors
 * (random-byte blocks get finite ones there). */
static const struct {
    nuage_type type;
    int d_off, m_off; /* m_off < 0: no second factor */
} k_types[] = {
    {NUAGE_TYPE_Q4_K, 0, 2},
    {NUAGE_TYPE_Q6_K, 208, -1},
    {NUAGE_TYPE_IQ4_XS, 0, -1},
    {NUAGE_TYPE_Q5_K, 0, 2},
    {NUAGE_TYPE_Q2_K, 80, 82},
    {NUAGE_TYPE_Q3_K, 108, -1},
};
#define NTYPES (sizeof k_types / sizeof k_types[0])

typedef struct {
    int n, nw, na;
    size_t ws, as;
    uint8_t *w; /* nw rows of ws bytes */
    uint8_t *a; /* na prepared rows of as bytes */
    float *wf;  /* dequantized weights (nw, n) */
} problem;

static void put_fp16(uint8_t *p, float f) {
    const nuage_fp16 h = nuage_fp32_to_fp16(f);
    memcpy(p, &h, 2);
}

/* Weights quantized with the type's from_float, or (raw) random bytes with
 * finite fp16 factors; rows padded to a stride of ws; activations prepared
 * with gemm_prep, every 3rd at the int8 limits (all +-127). */
static void make(problem *p, size_t k, int n, int nw, int na, int pad_blocks, int raw) {
    const nuage_type_traits *tt = nuage_type_get(k_types[k].type);
    p->n = n; p->nw = nw; p->na = na;
    const size_t row = nuage_row_size(k_types[k].type, n);
    p->ws = row + (size_t)pad_blocks * tt->type_size;
    p->as = (size_t)(n / 32) * NUAGE_GEMM_ABLK; /* the stride matmul uses */
    p->w = calloc((size_t)nw, p->ws);
    p->a = malloc((size_t)na * p->as);
    p->wf = malloc(sizeof(float) * (size_t)nw * n);
    float *x = malloc(sizeof(float) * (size_t)n);
    assert_non_null(p->w); assert_non_null(p->a); assert_non_null(p->wf); assert_non_null(x);
    for (int i = 0; i < nw; i++) {
        uint8_t *wr = p->w + (size_t)i * p->ws;
        if (raw) {
            for (size_t e = 0; e < row; e++) wr[e] = (uint8_t)rng_next();
            for (int b = 0; b < n / 256; b++) {
                uint8_t *blk = wr + (size_t)b * tt->type_size;
                put_fp16(blk + k_types[k].d_off, 0.001f + 0.1f * fabsf(rng_sym()));
                if (k_types[k].m_off >= 0) put_fp16(blk + k_types[k].m_off, 0.001f + 0.1f * fabsf(rng_sym()));
            }
        } else {
            const float s = 0.01f + 4.0f * (float)(i % 7);
            for (int e = 0; e < n; e++) x[e] = s * rng_sym();
            tt->from_float(x, wr, n);
        }
        tt->to_float(wr, p->wf + (size_t)i * n, n);
    }
    for (int j = 0; j < na; j++) {
        const int limit = j % 3 == 2;
        for (int e = 0; e < n; e++)
            x[e] = limit ? ((rng_next() & 1) ? 5.0f : -5.0f) : (float)(j % 5 + 1) * rng_sym();
        if (limit && j % 2) for (int e = 0; e < n; e++) x[e] = 5.0f; /* bsums at 16 * 127 */
        tt->gemm_prep(x, p->a + (size_t)j * p->as, n);
    }
    free(x);
}

static void unmake(problem *p) { free(p->w); free(p->a); free(p->wf); }

static void test_prep_matches_q8_K(void **state) {
    (void)state;
    const nuage_type_traits *q8 = nuage_type_get(NUAGE_TYPE_Q8_K);
    enum { N = 512 };
    float x[N];
    for (int e = 0; e < N; e++) x[e] = 3.0f * rng_sym();
    x[5] = 0.0f;
    nuage_block_q8_K ref[N / 256];
    q8->from_float(x, ref, N);
    static const int pos[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};
    for (size_t k = 0; k < NTYPES; k++) {
        const nuage_type_traits *tt = nuage_type_get(k_types[k].type);
        assert_non_null(tt->gemm_prep);
        assert_non_null(tt->gemm_ref);
        nuage_gemm_kblk a[N / 256];
        tt->gemm_prep(x, a, N);
        for (int b = 0; b < N / 256; b++) {
            assert_memory_equal(a[b].y, ref[b].qs, 256);
            assert_true(a[b].d == ref[b].d);
            for (int h = 0; h < 16; h++) {
                int sum = 0;
                for (int e = 0; e < 16; e++) sum += ref[b].qs[16 * h + e];
                assert_int_equal(ref[b].bsums[h], sum);
                assert_int_equal(a[b].bs[pos[h]], sum);
            }
            for (int h = 0; h < 8; h++)
                assert_int_equal(a[b].bs32[h], ref[b].bsums[2 * h] + ref[b].bsums[2 * h + 1]);
        }
    }
}

/* gemm_ref against float64 sums of dequantized weights x rounded
 * activations. Bound: per block, one rounding per sub-block fma (up to
 * 16) and for the correction, then the block's fma and m * dy; partial
 * sums at most sum |terms| (with mins, the two halves d * sc * q and
 * m * mn are bounded separately: their magnitudes are added). */
static void test_ref_vs_float64(void **state) {
    (void)state;
    for (size_t k = 0; k < NTYPES; k++) {
        const nuage_type_traits *tt = nuage_type_get(k_types[k].type);
        for (int raw = 0; raw < 2; raw++) {
            problem p;
            make(&p, k, 1024, 9, 6, 0, raw);
            float *y = malloc(sizeof(float) * 9 * 6);
            tt->gemm_ref(p.n, y, 9, p.w, p.ws, p.nw, p.a, p.as, p.na);
            double worst = 0;
            for (int j = 0; j < p.na; j++) {
                const nuage_gemm_kblk *a = (const nuage_gemm_kblk *)(p.a + (size_t)j * p.as);
                for (int i = 0; i < p.nw; i++) {
                    double exact = 0, mag = 0;
                    for (int e = 0; e < p.n; e++) {
                        double t = (double)p.wf[(size_t)i * p.n + e] * a[e / 256].y[e % 256] * a[e / 256].d;
                        exact += t;
                        mag += fabs(t);
                    }
                    if (k_types[k].m_off >= 0) {
                        /* d sc q and m mn separately: |d sc q y| + |m mn y| */
                        mag = 0;
                        for (int b = 0; b < p.n / 256; b++) {
                            const uint8_t *blk = p.w + (size_t)i * p.ws + (size_t)b * tt->type_size;
                            uint16_t mh;
                            memcpy(&mh, blk + k_types[k].m_off, 2);
                            const double m = nuage_fp16_to_fp32(mh);
                            for (int e = 0; e < 256; e++) {
                                const double v = p.wf[(size_t)i * p.n + b * 256 + e];
                                mag += (fabs(v) + 2 * 63 * m) * fabs((double)a[b].y[e] * a[b].d);
                            }
                        }
                    }
                    double err = fabs((double)y[(size_t)j * 9 + i] - exact);
                    double bound = (p.n / 256 + 16 + 3) * 2 * 6e-8 * mag + 1e-30;
                    if (err / bound > worst) worst = err / bound;
                    assert_true(err <= bound);
                }
            }
            print_message("%-7s gemm_ref vs float64 (%s): worst error %.3f of bound\n", tt->name,
                          raw ? "random bytes" : "quantized", worst);
            free(y);
            unmake(&p);
        }
    }
}

static void check_shape(size_t k, int n, int nw, int na, int pad, int raw) {
    const nuage_type_traits *tt = nuage_type_get(k_types[k].type);
    problem p;
    make(&p, k, n, nw, na, pad, raw);
    gemm_check_simd_vs_ref(tt, p.n, p.w, p.ws, p.nw, p.a, p.as, p.na);
    unmake(&p);
}

static void test_simd_equals_ref(void **state) {
    (void)state;
    if (!nuage_type_get(NUAGE_TYPE_Q4_K)->gemm) {
        print_message("no SIMD gemm on this CPU: only the reference is checked\n");
        return;
    }
    static const int shapes[][4] = {
        /* n, nw, na, pad blocks */
        {256, 1, 1, 0},   {512, 16, 4, 0},   {768, 17, 5, 1},  {1280, 33, 3, 0},
        {1024, 40, 65, 2}, {2048, 15, 130, 0}, {256, 48, 64, 0}, {1536, 31, 9, 1},
    };
    for (size_t k = 0; k < NTYPES; k++) {
        const nuage_type_traits *tt = nuage_type_get(k_types[k].type);
        assert_non_null(tt->gemm);
        for (int raw = 0; raw < 2; raw++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                check_shape(k, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], raw);
        print_message("%-7s gemm == gemm_ref on %zu shapes x 2 weight kinds\n", tt->name,
                      sizeof shapes / sizeof shapes[0]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prep_matches_q8_K),
        cmocka_unit_test(test_ref_vs_float64),
        cmocka_unit_test(test_simd_equals_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
