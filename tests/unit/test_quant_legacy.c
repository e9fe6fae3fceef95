/*
 * test_quant_legacy.c - F32 SIMD, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0, Q8_1 and IQ4_NL kernels.
 *
 * Nothing here trusts the code under test to define the expected values:
 *   - blocks are decoded by an independent decoder written from ggml's
 *     layout description (decode_block below), and to_float must agree
 *     with it exactly;
 *   - dot products are checked against a float64 evaluation of the
 *     formula ggml's kernels implement (sum over blocks of
 *     dw * da * sum(qw * qa), plus m * s for Q4_1/Q5_1), with a bound
 *     derived from the number of float additions;
 *   - activation rounding is checked on hand-made inputs whose expected
 *     codes follow from the rule (ties to even, scale 127 / amax), and
 *     every SIMD quantizer must be byte-identical to the scalar one;
 *   - fp16/bf16 conversions against the CPU's own conversion instructions
 *     and a float64 rounding;
 *   - with /work/shared: tensors of the rand-llama files that llama.cpp
 *     quantized from rand-llama-f32.gguf must dequantize close to the f32
 *     originals, and our Q4_0/Q4_1/Q5_0/Q5_1 quantizers (ggml's reference
 *     algorithms) must reproduce llama.cpp's bytes.
 * Every kernel check runs at each SIMD level the CPU offers.
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
#include "engine/gguf.h"
#include "engine/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ------------------------------------------------------------ helpers */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

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

/* Random row: gaussian with a per-32-block scale spread over 1e-3..10,
 * an occasional outlier and an occasional all-zero block. */
static void fill_row(float *x, int n) {
    for (int b = 0; b * 32 < n; b++) {
        double r = rng_unif();
        float scale = (float)pow(10.0, -3.0 + 4.0 * rng_unif());
        for (int j = b * 32; j < n && j < b * 32 + 32; j++) {
            x[j] = r < 0.03 ? 0.0f : scale * rng_gauss();
            if (rng_unif() < 0.01) x[j] *= 8.0f;
        }
    }
}

/* Independent fp16 decode (float64). */
static double half_val(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp((double)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(1024.0 + m, e - 25);
    return sign ? -v : v;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ggml's IQ4_NL levels (ggml-common.h kvalues_iq4nl): reference data. */
static const int k_iq4nl_ggml[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

/* Decoded block of one of the 32-value types: q[] integer codes as the
 * kernel multiplies them (already offset / mapped), d, and m (min or, for
 * Q8_1, s). value_j = d * q_j + m for Q4_1/Q5_1, d * q_j otherwise. */
typedef struct { int q[32]; double d, m; } dec_block;

static void decode_block(uint32_t type, const uint8_t *p, dec_block *o) {
    memset(o, 0, sizeof *o);
    o->d = half_val(rd16(p));
    switch (type) {
    case NUAGE_TYPE_Q4_0:
        for (int j = 0; j < 16; j++) {
            o->q[j] = (p[2 + j] & 15) - 8;
            o->q[j + 16] = (p[2 + j] >> 4) - 8;
        }
        break;
    case NUAGE_TYPE_Q4_1:
        o->m = half_val(rd16(p + 2));
        for (int j = 0; j < 16; j++) {
            o->q[j] = p[4 + j] & 15;
            o->q[j + 16] = p[4 + j] >> 4;
        }
        break;
    case NUAGE_TYPE_Q5_0:
    case NUAGE_TYPE_Q5_1: {
        int one = type == NUAGE_TYPE_Q5_1;
        const uint8_t *qh = p + (one ? 4 : 2), *qs = qh + 4;
        uint32_t h = rd32(qh);
        if (one) o->m = half_val(rd16(p + 2));
        for (int j = 0; j < 16; j++) {
            o->q[j] = (qs[j] & 15) + (int)((h >> j) & 1) * 16 - (one ? 0 : 16);
            o->q[j + 16] = (qs[j] >> 4) + (int)((h >> (j + 16)) & 1) * 16 - (one ? 0 : 16);
        }
        break;
    }
    case NUAGE_TYPE_Q8_0:
        for (int j = 0; j < 32; j++) o->q[j] = (int8_t)p[2 + j];
        break;
    case NUAGE_TYPE_Q8_1:
        o->m = half_val(rd16(p + 2)); /* s */
        for (int j = 0; j < 32; j++) o->q[j] = (int8_t)p[4 + j];
        break;
    case NUAGE_TYPE_IQ4_NL:
        for (int j = 0; j < 16; j++) {
            o->q[j] = k_iq4nl_ggml[p[2 + j] & 15];
            o->q[j + 16] = k_iq4nl_ggml[p[2 + j] >> 4];
        }
        break;
    default:
        fail_msg("decode_block: type %u", type);
    }
}

static int is_block_type(uint32_t t) {
    return t != NUAGE_TYPE_F32 && t != NUAGE_TYPE_F16 && t != NUAGE_TYPE_BF16;
}

/* Value i of a row of any of our types, decoded independently. */
static double decode_value(uint32_t type, const void *row, int64_t i) {
    const uint8_t *p = row;
    if (type == NUAGE_TYPE_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    if (type == NUAGE_TYPE_F16) return half_val(rd16(p + 2 * i));
    if (type == NUAGE_TYPE_BF16) {
        uint32_t u = (uint32_t)rd16(p + 2 * i) << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    dec_block b;
    decode_block(type, p + (size_t)(i / 32) * nuage_type_get(type)->type_size, &b);
    int has_min = type == NUAGE_TYPE_Q4_1 || type == NUAGE_TYPE_Q5_1;
    return b.d * b.q[i % 32] + (has_min ? b.m : 0.0);
}

/* Exact value of the dot ggml's kernel defines for weight row w and
 * activation row a (already in vec_dot_type), and the sum of |terms| the
 * float summation works on (for error bounds). */
static double ref_dot(uint32_t wt, const void *w, const void *a, int n, double *absum) {
    const nuage_type_traits *tr = nuage_type_get(wt);
    double sum = 0, abs_sum = 0;
    if (!is_block_type(wt)) {
        for (int i = 0; i < n; i++) {
            double p = decode_value(wt, w, i) * decode_value(tr->vec_dot_type, a, i);
            sum += p;
            abs_sum += fabs(p);
        }
    } else {
        const nuage_type_traits *at = nuage_type_get(tr->vec_dot_type);
        for (int b = 0; b < n / 32; b++) {
            dec_block bw, ba;
            decode_block(wt, (const uint8_t *)w + (size_t)b * tr->type_size, &bw);
            decode_block(tr->vec_dot_type, (const uint8_t *)a + (size_t)b * at->type_size, &ba);
            long isum = 0, iabs = 0;
            for (int j = 0; j < 32; j++) {
                isum += (long)bw.q[j] * ba.q[j];
                iabs += labs((long)bw.q[j] * ba.q[j]);
            }
            sum += bw.d * ba.d * (double)isum;
            /* SIMD kernels scale partial sums of a block separately, so
             * the bound is on the products, not the block's total. */
            abs_sum += fabs(bw.d * ba.d) * (double)iabs;
            if (wt == NUAGE_TYPE_Q4_1 || wt == NUAGE_TYPE_Q5_1) {
                sum += bw.m * ba.m;
                abs_sum += fabs(bw.m * ba.m);
            }
        }
    }
    *absum = abs_sum;
    return sum;
}

/* Bound on float summation error: roughly (sequential additions) * eps. */
static double dot_tol(uint32_t wt, int n, double absum) {
    int nseq = is_block_type(wt) ? n / 32 + 16 : n / 8 + 16;
    return 2.0 * nseq * ldexp(1.0, -24) * absum + 1e-30;
}

static const uint32_t k_weight_types[] = {
    NUAGE_TYPE_F32, NUAGE_TYPE_F16, NUAGE_TYPE_BF16, NUAGE_TYPE_Q4_0, NUAGE_TYPE_Q4_1,
    NUAGE_TYPE_Q5_0, NUAGE_TYPE_Q5_1, NUAGE_TYPE_Q8_0, NUAGE_TYPE_IQ4_NL,
};
#define N_WEIGHT_TYPES (sizeof k_weight_types / sizeof k_weight_types[0])

static const int k_block_lens[] = {32, 64, 96, 256, 288, 352, 4096, 11008};
static const int k_float_lens[] = {1, 7, 16, 33, 100, 256, 4097, 11008};

static int max_level(void) { return nuage_cpu_level(); }

/* -------------------------------------------------- fp16 / bf16 / table */

#if defined(__x86_64__)
__attribute__((target("f16c"))) static uint16_t hw_f2h(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static float hw_h2f(uint16_t h) { return _cvtsh_ss(h); }
#endif

static void test_fp16_conversion(void **state) {
    (void)state;
    /* Every half -> float -> half gives the same bits (NaNs stay NaN). */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nuage_fp16_to_fp32((nuage_fp16)h);
        double ref = half_val((uint16_t)h);
        if (isnan(ref)) {
            assert_true(isnan(f));
            uint16_t back = nuage_fp32_to_fp16(f);
            assert_true((back & 0x7c00) == 0x7c00 && (back & 0x3ff));
            continue;
        }
        assert_true((double)f == ref);
        assert_int_equal(nuage_fp32_to_fp16(f), h);
    }
#if defined(__x86_64__)
    if (nuage_cpu_get()->f16c) {
        for (uint32_t h = 0; h < 65536; h++) {
            if (((h >> 10) & 31) == 31 && (h & 1023)) continue;
            assert_true(hw_h2f((uint16_t)h) == nuage_fp16_to_fp32((nuage_fp16)h));
        }
        /* float -> half rounding: random bit patterns over the whole
         * range, plus exact ties between neighbouring halves. */
        for (int i = 0; i < 2000000; i++) {
            uint32_t u = (uint32_t)rng_next();
            float f;
            memcpy(&f, &u, 4);
            if (isnan(f)) continue;
            assert_int_equal(nuage_fp32_to_fp16(f), hw_f2h(f));
        }
        for (uint32_t h = 0; h < 0x7bff; h++) {
            float mid = (float)((half_val((uint16_t)h) + half_val((uint16_t)(h + 1))) / 2);
            assert_int_equal(nuage_fp32_to_fp16(mid), hw_f2h(mid));
            assert_int_equal(nuage_fp32_to_fp16(-mid), hw_f2h(-mid));
        }
    }
#endif
}

/* bf16 rounding computed in float64: nearest of the two neighbours,
 * ties to the even one. */
static uint16_t ref_f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    float flo, fhi;
    memcpy(&flo, &lo, 4);
    memcpy(&fhi, &hi, 4);
    double dlo = fabs((double)f - flo), dhi = fabs((double)fhi - f);
    if ((hi & 0x7f800000u) == 0x7f800000u && (lo & 0x7f800000u) != 0x7f800000u)
        dhi = fabs(ldexp(1.0, 128) * (f < 0 ? -1 : 1) - f); /* rounding up to inf */
    if (dlo < dhi) return (uint16_t)(lo >> 16);
    if (dhi < dlo) return (uint16_t)(hi >> 16);
    return (uint16_t)(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);
}

static void test_bf16_conversion(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nuage_bf16_to_fp32((nuage_bf16)h);
        uint32_t u;
        memcpy(&u, &f, 4);
        assert_int_equal(u, h << 16);
        if (isnan(f)) {
            assert_true(isnan(nuage_bf16_to_fp32(nuage_fp32_to_bf16(f))));
            continue;
        }
        assert_int_equal(nuage_fp32_to_bf16(f), h);
    }
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)rng_next();
        if (i & 1) u = (u & 0xffff0000u) | 0x8000u; /* exact ties */
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f) || isinf(f)) continue;
        assert_int_equal(nuage_fp32_to_bf16(f), ref_f2bf(f));
    }
}

static void test_iq4nl_table(void **state) {
    (void)state;
    const nuage_type_traits *t = nuage_type_get(NUAGE_TYPE_IQ4_NL);
    assert_non_null(t->to_float);
    uint8_t blk[18];
    uint16_t one = 0x3c00; /* 1.0 */
    memcpy(blk, &one, 2);
    for (int j = 0; j < 16; j++) blk[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    t->to_float(blk, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == (float)k_iq4nl_ggml[j]);
        assert_true(y[j + 16] == (float)k_iq4nl_ggml[15 - j]);
    }
}

/* ---------------------------------------------- activation rounding */

/* The rule (quant_legacy.h), evaluated here in float like llama.cpp's
 * AVX2 code: d = amax / 127, id = 127 / amax, q = round-half-even(x*id). */
static void expect_q8_block(const float *x, uint16_t *d_out, int8_t *q, int *sum) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    volatile float d = amax / 127.0f;
    volatile float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int s = 0;
    for (int j = 0; j < 32; j++) {
        volatile float v = x[j] * id;
        float r = floorf(v);
        float frac = v - r;
        if (frac > 0.5f || (frac == 0.5f && fmodf(r, 2.0f) != 0.0f)) r += 1.0f;
        q[j] = (int8_t)r;
        s += q[j];
    }
    *d_out = nuage_fp32_to_fp16(d);
    *sum = s;
}

static void check_q8_rows(const float *x, int n) {
    for (int lvl = 0; lvl <= max_level(); lvl++) {
        nuage_quant_set_level(lvl);
        const nuage_type_traits *t0 = nuage_type_get(NUAGE_TYPE_Q8_0);
        const nuage_type_traits *t1 = nuage_type_get(NUAGE_TYPE_Q8_1);
        uint8_t *y0 = malloc((size_t)n / 32 * 34), *y1 = malloc((size_t)n / 32 * 36);
        t0->from_float(x, y0, n);
        t1->from_float(x, y1, n);
        for (int b = 0; b < n / 32; b++) {
            uint16_t d;
            int8_t q[32];
            int sum;
            expect_q8_block(x + b * 32, &d, q, &sum);
            assert_int_equal(rd16(y0 + b * 34), d);
            assert_memory_equal(y0 + b * 34 + 2, q, 32);
            assert_int_equal(rd16(y1 + b * 36), d);
            /* s = fp16(d * sum) with d the unrounded f32 scale. */
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            volatile float df = amax / 127.0f;
            assert_int_equal(rd16(y1 + b * 36 + 2), nuage_fp32_to_fp16(df * (float)sum));
            assert_memory_equal(y1 + b * 36 + 4, q, 32);
        }
        free(y0);
        free(y1);
    }
    nuage_quant_set_level(max_level());
}

static void test_q8_rounding(void **state) {
    (void)state;
    /* Hand-made block: amax 127 makes id exactly 1, so x*id = x and the
     * ties .5 must go to even: 2.5 -> 2, -2.5 -> -2, 3.5 -> 4, 0.5 -> 0,
     * -1.5 -> -2 (roundf would give 3, -3, 4, 1, -2). */
    float x[64] = {127.0f, 2.5f, -2.5f, 3.5f, 0.5f, -1.5f, 126.5f, -0.49f, 1.51f, -127.0f};
    for (int j = 10; j < 32; j++) x[j] = (float)(j - 20) * 0.25f;
    /* Second block: a scale that is not a power of two. */
    for (int j = 0; j < 32; j++) x[32 + j] = (float)sin(j * 0.7) * 3.3f;
    check_q8_rows(x, 64);

    for (int lvl = 0; lvl <= max_level(); lvl++) {
        nuage_quant_set_level(lvl);
        uint8_t y[34];
        nuage_type_get(NUAGE_TYPE_Q8_0)->from_float(x, y, 32);
        const int8_t want[10] = {127, 2, -2, 4, 0, -2, 126, 0, 2, -127};
        assert_memory_equal(y + 2, want, 10);
        assert_int_equal(rd16(y), 0x3c00); /* d = 1.0 */
    }

    /* Random rows, many scales; zero blocks give d = 0 and q = 0. */
    for (int it = 0; it < 20; it++) {
        int n = 32 * (1 + (int)(rng_next() % 64));
        float *r = malloc((size_t)n * sizeof *r);
        fill_row(r, n);
        check_q8_rows(r, n);
        free(r);
    }
    nuage_quant_set_level(max_level());
}

/* SIMD activation quantizers (Q8_0, Q8_1, F16, BF16) write the same bytes
 * as the scalar ones. */
static void test_activation_quant_identical(void **state) {
    (void)state;
    const uint32_t types[] = {NUAGE_TYPE_Q8_0, NUAGE_TYPE_Q8_1, NUAGE_TYPE_F16, NUAGE_TYPE_BF16};
    for (size_t ti = 0; ti < 4; ti++) {
        for (int it = 0; it < 30; it++) {
            int n = 32 * (1 + (int)(rng_next() % 200));
            float *x = malloc((size_t)n * sizeof *x);
            fill_row(x, n);
            size_t sz = nuage_row_size(types[ti], n);
            uint8_t *ref = malloc(sz), *got = malloc(sz);
            nuage_quant_set_level(0);
            nuage_type_get(types[ti])->from_float(x, ref, n);
            for (int lvl = 1; lvl <= max_level(); lvl++) {
                nuage_quant_set_level(lvl);
                memset(got, 0xa5, sz);
                nuage_type_get(types[ti])->from_float(x, got, n);
                assert_memory_equal(ref, got, sz);
            }
            free(x);
            free(ref);
            free(got);
        }
    }
    /* Any bit pattern (denormals, infinities; NaNs too for BF16, whose
     * SIMD version quiets them exactly as the scalar one; F16C keeps NaN
     * payloads, so they are left out for F16). */
    enum { NB = 4096 };
    static float xb[NB];
    static uint16_t ref16[NB], got16[NB];
    for (int it = 0; it < 50; it++) {
        for (int i = 0; i < NB; i++) {
            uint32_t u = (uint32_t)rng_next();
            if (i % 7 == 0) u &= 0x807fffffu; /* denormal */
            if (i % 11 == 0) u |= 0x7f800000u; /* inf / nan */
            memcpy(&xb[i], &u, 4);
        }
        for (int f16 = 0; f16 < 2; f16++) {
            uint32_t t = f16 ? NUAGE_TYPE_F16 : NUAGE_TYPE_BF16;
            if (f16)
                for (int i = 0; i < NB; i++)
                    if (isnan(xb[i])) xb[i] = 1.0f;
            nuage_quant_set_level(0);
            nuage_type_get(t)->from_float(xb, ref16, NB - it);
            for (int lvl = 1; lvl <= max_level(); lvl++) {
                nuage_quant_set_level(lvl);
                nuage_type_get(t)->from_float(xb, got16, NB - it);
                assert_memory_equal(ref16, got16, (NB - it) * 2);
            }
        }
    }
    nuage_quant_set_level(max_level());
}

/* --------------------------------------------------- round trips */

/* Largest error allowed for a block, from its values (type's step size
 * plus the fp16 rounding of the scale and min). */
static double block_err_bound(uint32_t t, const float *x, int len) {
    double amax = 0, mn = INFINITY, mx = -INFINITY;
    for (int j = 0; j < len; j++) {
        amax = fmax(amax, fabs(x[j]));
        mn = fmin(mn, x[j]);
        mx = fmax(mx, x[j]);
    }
    /* h: relative rounding of a normal fp16 scale; sub: absolute step of
     * a subnormal one (times the largest code it multiplies). */
    double range = mx - mn, h = ldexp(1.0, -10), sub = ldexp(1.0, -25);
    switch (t) {
    /* The far side of Q4_0/Q5_0 clamps to +7/+15: one full step, plus
     * 8 or 16 times the scale rounding. */
    case NUAGE_TYPE_Q4_0: return amax / 8 * (1 + 8 * h) + 8 * sub;
    case NUAGE_TYPE_Q5_0: return amax / 16 * (1 + 16 * h) + 16 * sub;
    case NUAGE_TYPE_Q4_1: return range / 30 + range * h + fabs(mn) * h + 16 * sub;
    case NUAGE_TYPE_Q5_1: return range / 62 + range * h + fabs(mn) * h + 32 * sub;
    case NUAGE_TYPE_Q8_0:
    case NUAGE_TYPE_Q8_1: return amax / 254 + amax * h + 128 * sub;
    /* IQ4_NL: our quantizer refits the scale by least squares, which may
     * move the largest value by up to ~1/6 of it (the RMS is checked
     * separately, and llama.cpp's own file against 0.12 below). */
    case NUAGE_TYPE_IQ4_NL: return amax * 0.2 + 128 * sub;
    default: return 0;
    }
}

static void check_roundtrip(uint32_t t, const float *x, const void *q, const float *y, int n) {
    if (t == NUAGE_TYPE_F16) {
        for (int i = 0; i < n; i++)
            assert_true(fabs((double)y[i] - x[i]) <= fabs(x[i]) * ldexp(1.0, -11) + ldexp(1.0, -25));
    } else if (t == NUAGE_TYPE_BF16) {
        for (int i = 0; i < n; i++)
            assert_true(fabs((double)y[i] - x[i]) <= fabs(x[i]) * ldexp(1.0, -8));
    } else {
        for (int b = 0; b < n / 32; b++) {
            double bound = block_err_bound(t, x + b * 32, 32);
            for (int j = b * 32; j < b * 32 + 32; j++) {
                if (!(fabs((double)y[j] - x[j]) <= bound))
                    fail_msg("%s n=%d value %d: x=%g y=%g bound=%g", nuage_type_get(t)->name, n,
                             j, x[j], y[j], bound);
            }
        }
    }
    /* to_float agrees exactly with the independent decoder. */
    for (int i = 0; i < n; i++)
        if ((double)y[i] != decode_value(t, q, i))
            fail_msg("%s to_float[%d]=%.9g decoder=%.9g", nuage_type_get(t)->name, i, y[i],
                     decode_value(t, q, i));
}

static void test_roundtrip(void **state) {
    (void)state;
    const uint32_t types[] = {NUAGE_TYPE_F16, NUAGE_TYPE_BF16, NUAGE_TYPE_Q4_0, NUAGE_TYPE_Q4_1,
                              NUAGE_TYPE_Q5_0, NUAGE_TYPE_Q5_1, NUAGE_TYPE_Q8_0, NUAGE_TYPE_Q8_1,
                              NUAGE_TYPE_IQ4_NL};
    for (int lvl = 0; lvl <= max_level(); lvl++) {
        nuage_quant_set_level(lvl);
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            uint32_t t = types[ti];
            const nuage_type_traits *tr = nuage_type_get(t);
            assert_non_null(tr->to_float);
            assert_non_null(tr->from_float);
            for (size_t li = 0; li < sizeof k_block_lens / sizeof k_block_lens[0]; li++) {
                int n = k_block_lens[li];
                float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
                void *q = malloc(nuage_row_size(t, n));
                fill_row(x, n);
                tr->from_float(x, q, n);
                tr->to_float(q, y, n);
                check_roundtrip(t, x, q, y, n);
                /* Root-mean-square error of IQ4_NL (gaussian: ~7%, with outliers
                 * ~10%; Q4_0 gets 9% / 14% on the same data). */
                if (t == NUAGE_TYPE_IQ4_NL && n >= 4096) { /* many blocks */
                    double e2 = 0, x2 = 0;
                    for (int i = 0; i < n; i++) {
                        e2 += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
                        x2 += (double)x[i] * x[i];
                    }
                    if (!(e2 <= 0.15 * 0.15 * x2))
                        fail_msg("iq4_nl n=%d: rms relative error %.3f", n, sqrt(e2 / x2));
                }
                free(x);
                free(y);
                free(q);
            }
        }
    }
    nuage_quant_set_level(max_level());
}

/* ------------------------------------------------------ dot products */

/* Quantized weight and activation rows for type t, length n. */
typedef struct {
    uint32_t wt;
    int n;
    void *w, *a;
} dot_case;

static void make_case(dot_case *c, uint32_t wt, int n) {
    const nuage_type_traits *tr = nuage_type_get(wt);
    c->wt = wt;
    c->n = n;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    fill_row(x, n);
    fill_row(y, n);
    c->w = malloc(nuage_row_size(wt, n) + 64);
    c->a = malloc(nuage_row_size(tr->vec_dot_type, n) + 64);
    tr->from_float(x, c->w, n);
    nuage_type_get(tr->vec_dot_type)->from_float(y, c->a, n);
    free(x);
    free(y);
}

static void free_case(dot_case *c) {
    free(c->w);
    free(c->a);
}

static void check_dot(const char *what, uint32_t wt, int n, float got, double ref, double absum) {
    double tol = dot_tol(wt, n, absum);
    if (!(fabs((double)got - ref) <= tol))
        fail_msg("%s %s n=%d: got %.9g want %.9g (|diff| %.3g > tol %.3g)", what,
                 nuage_type_get(wt)->name, n, got, ref, fabs(got - ref), tol);
}

static void test_vec_dot(void **state) {
    (void)state;
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        uint32_t wt = k_weight_types[ti];
        const int *lens = is_block_type(wt) ? k_block_lens : k_float_lens;
        for (int li = 0; li < 8; li++) {
            for (int rep = 0; rep < 3; rep++) {
                int n = lens[li];
                dot_case c;
                nuage_quant_set_level(0);
                make_case(&c, wt, n);
                double absum, ref = ref_dot(wt, c.w, c.a, n, &absum);
                for (int lvl = 0; lvl <= max_level(); lvl++) {
                    nuage_quant_set_level(lvl);
                    const nuage_type_traits *tr = nuage_type_get(wt);
                    assert_true(tr->supported);
                    float r = -1, s = -2;
                    tr->vec_dot_ref(n, &r, c.w, c.a);
                    tr->vec_dot(n, &s, c.w, c.a);
                    check_dot("vec_dot_ref", wt, n, r, ref, absum);
                    check_dot(lvl ? "vec_dot(simd)" : "vec_dot", wt, n, s, ref, absum);
                }
                free_case(&c);
            }
        }
    }
    nuage_quant_set_level(max_level());
}

/* The dot of a weight row with the dequantized values computes the
 * dequantized dot up to the kernel's formula (Q8_1's rounded s): the
 * float64 dot of to_float(w) . to_float(a) agrees within the s rounding. */
static void test_vec_dot_vs_dequant(void **state) {
    (void)state;
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        uint32_t wt = k_weight_types[ti];
        int n = is_block_type(wt) ? 4096 : 4097;
        dot_case c;
        nuage_quant_set_level(0);
        make_case(&c, wt, n);
        const nuage_type_traits *tr = nuage_type_get(wt);
        float *fw = malloc((size_t)n * 4), *fa = malloc((size_t)n * 4);
        tr->to_float(c.w, fw, n);
        nuage_type_get(tr->vec_dot_type)->to_float(c.a, fa, n);
        double d = 0, absum = 0, mabs = 0;
        for (int i = 0; i < n; i++) {
            d += (double)fw[i] * fa[i];
            absum += fabs((double)fw[i] * fa[i]);
        }
        if (wt == NUAGE_TYPE_Q4_1 || wt == NUAGE_TYPE_Q5_1)
            for (int b = 0; b < n / 32; b++) { /* |m| * |s| per block */
                dec_block bw, ba;
                decode_block(wt, (uint8_t *)c.w + (size_t)b * tr->type_size, &bw);
                decode_block(NUAGE_TYPE_Q8_1, (uint8_t *)c.a + (size_t)b * 36, &ba);
                mabs += fabs(bw.m * ba.m);
            }
        for (int lvl = 0; lvl <= max_level(); lvl++) {
            nuage_quant_set_level(lvl);
            float s;
            nuage_type_get(wt)->vec_dot(n, &s, c.w, c.a);
            double tol = dot_tol(wt, n, absum + mabs) + mabs * ldexp(1.0, -10);
            if (!(fabs(s - d) <= tol)) fail_msg("%s: %.9g vs %.9g", tr->name, s, d);
        }
        free(fw);
        free(fa);
        free_case(&c);
    }
    nuage_quant_set_level(max_level());
}

static void test_vec_dot_tile(void **state) {
    (void)state;
    int n_tiles = 0;
    for (int lvl = 0; lvl <= max_level(); lvl++) {
        nuage_quant_set_level(lvl);
        for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
            uint32_t wt = k_weight_types[ti];
            const nuage_type_traits *tr = nuage_type_get(wt);
            /* from AVX2 on, the common types have a tile or (AVX-512)
             * the rows-in-lanes gemm (tests/unit/test_gemm.c) instead */
            if (lvl > 0 && (wt == NUAGE_TYPE_F32 || wt == NUAGE_TYPE_F16 ||
                            wt == NUAGE_TYPE_Q8_0 || wt == NUAGE_TYPE_Q4_0))
                assert_true(tr->vec_dot_tile || tr->gemm);
            if (!tr->vec_dot_tile) continue;
            const nuage_type_traits *at = nuage_type_get(tr->vec_dot_type);
            const int lens_q[] = {32, 64, 96, 256, 288, 544, 4096};
            const int lens_f[] = {7, 16, 33, 100, 256, 544, 4096};
            for (int li = 0; li < 7; li++) {
                int n = is_block_type(wt) ? lens_q[li] : lens_f[li];
                /* 4 weight rows and 4 activation rows with padding between
                 * rows (strides larger than a row). */
                size_t wrow = nuage_row_size(wt, n), arow = nuage_row_size(tr->vec_dot_type, n);
                size_t ws = wrow + 8, as = arow + 12; /* element-aligned */
                uint8_t *W = malloc(ws * 4), *A = malloc(as * 4);
                float *x = malloc((size_t)n * 4);
                /* the tile's own activation rows when it has a prep (F32,
                 * the same rounded values), else the vec_dot rows */
                size_t ts = tr->tile_prep ? (size_t)n * 4 + 12 : as;
                uint8_t *AT = tr->tile_prep ? malloc(ts * 4) : A;
                for (int i = 0; i < 4; i++) {
                    fill_row(x, n);
                    tr->from_float(x, W + i * ws, n);
                    fill_row(x, n);
                    at->from_float(x, A + i * as, n);
                    if (tr->tile_prep) tr->tile_prep(x, AT + i * ts, n);
                }
                float full[4 * 7];
                for (int nw = 1; nw <= 4; nw++)
                    for (int na = 1; na <= 4; na++) {
                        float out[4 * 7];
                        for (int k = 0; k < 28; k++) out[k] = NAN;
                        tr->vec_dot_tile(n, out, 7, W, ws, nw, AT, ts, na);
                        n_tiles++;
                        if (nw == 1 && na == 1) memcpy(full, out, sizeof full);
                        for (int j = 0; j < 4; j++)
                            for (int i = 0; i < 7; i++) {
                                if (j >= na || i >= nw) {
                                    assert_true(isnan(out[j * 7 + i])); /* untouched */
                                    continue;
                                }
                                float v;
                                tr->vec_dot(n, &v, W + i * ws, A + j * as);
                                double absum, ref = ref_dot(wt, W + i * ws, A + j * as, n, &absum);
                                check_dot("vec_dot_tile", wt, n, out[j * 7 + i], ref, absum);
                                assert_true(fabs((double)out[j * 7 + i] - v) <=
                                            2 * dot_tol(wt, n, absum));
                                /* tile shape never changes a result */
                                if (i == 0 && j == 0)
                                    assert_memory_equal(&out[0], &full[0], sizeof(float));
                            }
                    }
                if (AT != A) free(AT);
                free(W);
                free(A);
                free(x);
            }
        }
    }
    print_message("%d tiles checked\n", n_tiles);
    nuage_quant_set_level(max_level());
}

/* ------------------------------------------------ shared model files */

typedef struct {
    const char *file;
    uint32_t type;
    double max_err; /* bound on |deq - f32| as a fraction of block amax */
} model_case;

static void test_shared_models(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    const char *name = "blk.0.attn_q.weight";
    char err[256];
    nuage_gguf *gf = NULL;
    int rc = nuage_gguf_open(nuage_test_shared_path("models/rand-llama-f32.gguf"), &gf, err,
                             sizeof err);
    if (rc) fail_msg("open f32: %s", err);
    const nuage_gguf_tensor *tf = nuage_gguf_find_tensor(gf, name);
    assert_non_null(tf);
    assert_int_equal(tf->type, NUAGE_TYPE_F32);
    const int64_t n = tf->ne[0] * tf->ne[1];
    const int64_t row = tf->ne[0];
    const float *ref = tf->data;

    const model_case cases[] = {
        {"rand-llama-f16.gguf", NUAGE_TYPE_F16, 0},
        {"rand-llama-bf16.gguf", NUAGE_TYPE_BF16, 0},
        {"rand-llama-q8_0.gguf", NUAGE_TYPE_Q8_0, 0.6 / 127},
        {"rand-llama-q4_0.gguf", NUAGE_TYPE_Q4_0, 1.01 / 8},
        {"rand-llama-q4_1.gguf", NUAGE_TYPE_Q4_1, 0},
        {"rand-llama-q5_0.gguf", NUAGE_TYPE_Q5_0, 1.01 / 16},
        {"rand-llama-q5_1.gguf", NUAGE_TYPE_Q5_1, 0},
        {"rand-llama-iq4_nl.gguf", NUAGE_TYPE_IQ4_NL, 0.12},
    };
    float *deq = malloc((size_t)n * 4);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        char path[64];
        snprintf(path, sizeof path, "models/%s", cases[ci].file);
        nuage_gguf *g = NULL;
        rc = nuage_gguf_open(nuage_test_shared_path(path), &g, err, sizeof err);
        if (rc) fail_msg("open %s: %s", path, err);
        const nuage_gguf_tensor *t = nuage_gguf_find_tensor(g, name);
        assert_non_null(t);
        assert_int_equal(t->type, cases[ci].type);
        assert_int_equal(t->ne[0], row);
        const nuage_type_traits *tr = nuage_type_get(t->type);
        const size_t rs = nuage_row_size(t->type, row);
        for (int64_t r = 0; r < n / row; r++)
            tr->to_float((const uint8_t *)t->data + r * rs, deq + r * row, row);
        /* Error of each value against the f32 original. */
        double e2 = 0, x2 = 0;
        for (int64_t i = 0; i < n; i++) {
            e2 += ((double)deq[i] - ref[i]) * ((double)deq[i] - ref[i]);
            x2 += (double)ref[i] * ref[i];
        }
        double bound_fixed = cases[ci].type == NUAGE_TYPE_F16 ? ldexp(1.0, -11)
                           : cases[ci].type == NUAGE_TYPE_BF16 ? ldexp(1.0, -8) : 0;
        for (int64_t b = 0; b < n / 32; b++) {
            const float *xb = ref + b * 32;
            double bound = cases[ci].max_err > 0 ? 0 : block_err_bound(t->type, xb, 32);
            double amax = 0;
            for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(xb[j]));
            if (cases[ci].max_err > 0) bound = cases[ci].max_err * amax + 128 * ldexp(1.0, -25);
            for (int j = 0; j < 32; j++) {
                double e = fabs((double)deq[b * 32 + j] - xb[j]);
                double bb = bound_fixed > 0 ? fabs(xb[j]) * bound_fixed + ldexp(1.0, -25) : bound;
                if (!(e <= bb))
                    fail_msg("%s value %lld: %.9g vs f32 %.9g (bound %.3g)", cases[ci].file,
                             (long long)(b * 32 + j), deq[b * 32 + j], xb[j], bb);
            }
        }
        print_message("%-24s rms rel err %.3g\n", cases[ci].file, sqrt(e2 / x2));

        /* Our ggml-reference quantizers reproduce llama.cpp's bytes. */
        if (t->type == NUAGE_TYPE_Q4_0 || t->type == NUAGE_TYPE_Q4_1 ||
            t->type == NUAGE_TYPE_Q5_0 || t->type == NUAGE_TYPE_Q5_1 ||
            t->type == NUAGE_TYPE_Q8_0 || t->type == NUAGE_TYPE_F16 || t->type == NUAGE_TYPE_BF16) {
            size_t total = (size_t)(n / row) * rs;
            uint8_t *mine = malloc(total);
            for (int64_t r = 0; r < n / row; r++) tr->from_float(ref + r * row, mine + r * rs, row);
            size_t bsz = tr->type_size, nblk = total / bsz, diff = 0;
            for (size_t k = 0; k < nblk; k++)
                diff += memcmp(mine + k * bsz, (const uint8_t *)t->data + k * bsz, bsz) != 0;
            print_message("%-24s %zu of %zu blocks differ from llama.cpp's\n", cases[ci].file,
                          diff, nblk);
            if (t->type == NUAGE_TYPE_Q8_0)  /* ggml's reference: 1/d and roundf */
                assert_true(diff * 20 <= nblk);
            else
                assert_true(diff * 1000 <= nblk); /* rare float-contraction ties at most */
            free(mine);
        }
        nuage_gguf_close(g);
    }
    free(deq);
    nuage_gguf_close(gf);
}

int main(void) {
    nuage_quant_init();
    print_message("SIMD level %d (%s)\n", max_level(), nuage_quant_simd_name());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_conversion),
        cmocka_unit_test(test_bf16_conversion),
        cmocka_unit_test(test_iq4nl_table),
        cmocka_unit_test(test_q8_rounding),
        cmocka_unit_test(test_activation_quant_identical),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_vec_dot),
        cmocka_unit_test(test_vec_dot_vs_dequant),
        cmocka_unit_test(test_vec_dot_tile),
        cmocka_unit_test(test_shared_models),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
