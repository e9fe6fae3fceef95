/*
 * quant_mxfp4.c - MXFP4 weights: the scalar reference kernels, the weight
 * quantizer, the rows-in-lanes reference and its activation preparation,
 * and the registration of the fastest kernels for the SIMD level.
 *
 * The format and the product are described in quant_mxfp4.h. What is
 * registered, per level:
 *   scalar   vec_dot = the reference below (matmul calls it per row and
 *            token: the same function for every batch, so batch-invariant);
 *   AVX2     gemm (quant_mxfp4_avx2.c, 8 rows in the lanes of a ymm) and a
 *            row-major vec_dot for direct callers;
 *   AVX-512  gemm (quant_mxfp4_avx512.c, 16 rows per zmm, vpdpbusd).
 * The two gemm kernels compute each output exactly as gemm_ref here does
 * (exact integer block dots, then acc = fma((float)isum, dw * dy, acc)
 * block after block), so they are bit-identical to it and to each other;
 * vec_dot (matmul's only at the scalar level) keeps ggml's order in the
 * reference, sum += (float)isum * (dw * dy), and 8 float lanes in AVX2.
 *
 * The quantizer is ggml's reference algorithm (no importance matrix): the
 * exponent is floor(log2(amax)) - 2 + 127, so the largest value lands
 * among the top levels 4..12 (times 2^(e-128)), and each weight takes the
 * nearest level, the first on ties. It is used to write files
 * (bench/make_model) and by tests; exponents are clamped to 0..254 so
 * inputs with infinities, NaNs or subnormal magnitudes still give a valid
 * block.
 */
#include "engine/quant_mxfp4.h"

#include <math.h>

#include "engine/gemm.h"
#include "engine/quant_legacy.h"

#define QK NUAGE_QK_MXFP4
#define BS NUAGE_MXFP4_BLOCK

const int8_t nuage__mxfp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* ------------------------------------------------------- dequantize */

static void mxfp4_to_float(const void *vx, float *y, int64_t n) {
    const uint8_t *x = vx;
    for (int64_t b = 0; b < n / QK; b++) {
        const uint8_t *blk = x + b * BS;
        const float d = nuage__e8m0_half(blk[0]);
        for (int j = 0; j < QK / 2; j++) {
            y[b * QK + j] = d * (float)nuage__mxfp4_values[blk[1 + j] & 15];
            y[b * QK + j + QK / 2] = d * (float)nuage__mxfp4_values[blk[1 + j] >> 4];
        }
    }
}

/* ------------------------------------------------------------ quantize */

/* Index of the level whose value (times d) is nearest to x; the first one
 * on ties (ggml's order); 0 for NaN. */
static int mxfp4_nearest(float x, float d) {
    int best = 0;
    float best_err = fabsf((float)nuage__mxfp4_values[0] * d - x);
    for (int i = 1; i < 16; i++) {
        const float err = fabsf((float)nuage__mxfp4_values[i] * d - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return best;
}

static void mxfp4_from_float(const float *x, void *vy, int64_t n) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        uint8_t *blk = y + b * BS;
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            if (amax < fabsf(xb[j])) amax = fabsf(xb[j]);
        int e = 0;
        if (amax > 0.0f) {
            const float v = floorf(log2f(amax)) - 2.0f + 127.0f;
            e = v < 0.0f ? 0 : v > 254.0f ? 254 : (int)v;
        }
        const float d = nuage__e8m0_half((uint8_t)e);
        blk[0] = (uint8_t)e;
        for (int j = 0; j < QK / 2; j++)
            blk[1 + j] = (uint8_t)(mxfp4_nearest(xb[j], d) | (mxfp4_nearest(xb[j + QK / 2], d) << 4));
    }
}

/* ------------------------------------------------------------ products */

/* Exact integer dot of one weight block's 32 values with 32 int8. */
static inline int32_t mxfp4_block_isum(const uint8_t *blk, const int8_t *y) {
    int32_t isum = 0;
    for (int j = 0; j < QK / 2; j++) {
        isum += nuage__mxfp4_values[blk[1 + j] & 15] * y[j];
        isum += nuage__mxfp4_values[blk[1 + j] >> 4] * y[j + QK / 2];
    }
    return isum;
}

/* Weight row (MXFP4) . activation row (Q8_0), ggml's generic order. */
static void mxfp4_vec_dot_ref(int n, float *s, const void *vw, const void *va) {
    const uint8_t *x = vw;
    const nuage_block_q8_0 *y = va;
    float sum = 0.0f;
    for (int b = 0; b < n / QK; b++) {
        const uint8_t *blk = x + (size_t)b * BS;
        const int32_t isum = mxfp4_block_isum(blk, y[b].qs);
        sum += (float)isum * (nuage__e8m0_half(blk[0]) * nuage_fp16_to_fp32(y[b].d));
    }
    *s = sum;
}

/* Q8_0-round x (the table's from_float: the fastest, byte-identical to
 * the reference) into gemm activation blocks with corr = -12 * sum(y). */
static void mxfp4_gemm_prep(const float *x, void *out, int64_t n) {
    const nuage_type_traits *q8 = nuage_type_get(NUAGE_TYPE_Q8_0);
    nuage_gemm_ablk *a = out;
    for (int64_t b = 0; b < n / QK; b++) {
        nuage_block_q8_0 blk;
        q8->from_float(x + b * QK, &blk, QK);
        int sum = 0;
        for (int i = 0; i < QK; i++) sum += blk.qs[i];
        memcpy(a[b].y, blk.qs, QK);
        a[b].d = nuage_fp16_to_fp32(blk.d);
        a[b].corr = -NUAGE_GEMM_O_MXFP4 * sum;
    }
}

/* The definition the SIMD gemm kernels reproduce bit for bit: per output,
 * acc = fma((float)isum_b, dw_b * dy_b, acc) over the blocks in order. */
static void mxfp4_gemm_ref(int n, float *y, size_t ys, const void *w, size_t ws, int nw,
                           const void *a, size_t as, int na) {
    const int nb = n / QK;
    for (int i = 0; i < nw; i++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)i * ws;
        for (int j = 0; j < na; j++) {
            const nuage_gemm_ablk *ar = (const nuage_gemm_ablk *)((const char *)a + (size_t)j * as);
            float acc = 0.0f;
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = wr + (size_t)b * BS;
                const int32_t isum = mxfp4_block_isum(blk, ar[b].y);
                acc = fmaf((float)isum, nuage__e8m0_half(blk[0]) * ar[b].d, acc);
            }
            y[(size_t)j * ys + i] = acc;
        }
    }
}

/* ------------------------------------------------------- registration */

void nuage__quant_register_mxfp4(nuage_type_traits *table, int level) {
    nuage_type_traits *t = &table[NUAGE_TYPE_MXFP4];
    t->supported = true;
    t->vec_dot_type = NUAGE_TYPE_Q8_0;
    t->to_float = mxfp4_to_float;
    t->from_float = mxfp4_from_float;
    t->vec_dot = t->vec_dot_ref = mxfp4_vec_dot_ref;
    t->vec_dot_tile = NULL;
    t->tile_prep = NULL;
    t->gemm = NULL;
    t->gemm_ref = mxfp4_gemm_ref;
    t->gemm_prep = mxfp4_gemm_prep;
#if defined(NUAGE_X86)
    if (level >= 1) nuage__mxfp4_register_avx2(table);
    if (level >= 2) nuage__mxfp4_register_avx512(table);
#else
    (void)level;
#endif
}
