/*
 * gemm.c - scalar reference of the rows-in-lanes products (gemm.h) and
 * the activation preparation shared by every SIMD level.
 *
 * The reference computes each output exactly as gemm.h defines it: exact
 * integer block dots, then one fmaf chain over the blocks. The SIMD
 * kernels must match it bit for bit (tests/unit/test_gemm.c).
 */
#include "engine/gemm.h"

#include <math.h>
#include <string.h>

#include "engine/quant_legacy.h"

#define QK 32

/* ---------------------------------------------------- activation prep */

/* Q8_0-round x (the table's from_float: the fastest, bit-identical to the
 * reference) and lay the blocks out as nuage_gemm_ablk with corr for
 * offset o. */
static void prep_offset(const float *x, void *out, int64_t n, int o) {
    const nuage_type_traits *q8 = nuage_type_get(NUAGE_TYPE_Q8_0);
    nuage_gemm_ablk *a = out;
    for (int64_t b = 0; b < n / QK; b++) {
        nuage_block_q8_0 blk;
        q8->from_float(x + b * QK, &blk, QK);
        int sum = 0;
        for (int i = 0; i < QK; i++) sum += blk.qs[i];
        memcpy(a[b].y, blk.qs, QK);
        a[b].d = nuage_fp16_to_fp32(blk.d);
        a[b].corr = -o * sum;
    }
}

static void prep_q8_0(const float *x, void *a, int64_t n) { prep_offset(x, a, n, NUAGE_GEMM_O_Q8_0); }
static void prep_q4_0(const float *x, void *a, int64_t n) { prep_offset(x, a, n, NUAGE_GEMM_O_Q4_0); }
static void prep_q5_0(const float *x, void *a, int64_t n) { prep_offset(x, a, n, NUAGE_GEMM_O_Q5_0); }
static void prep_iq4_nl(const float *x, void *a, int64_t n) {
    prep_offset(x, a, n, NUAGE_GEMM_O_IQ4_NL);
}

/* Q4_1 / Q5_1: ggml's Q8_1 rounding (the table's from_float), s kept. */
static void prep_min(const float *x, void *out, int64_t n) {
    const nuage_type_traits *q81 = nuage_type_get(NUAGE_TYPE_Q8_1);
    nuage_gemm_ablk *a = out;
    for (int64_t b = 0; b < n / QK; b++) {
        nuage_block_q8_1 blk;
        q81->from_float(x + b * QK, &blk, QK);
        memcpy(a[b].y, blk.qs, QK);
        a[b].d = nuage_fp16_to_fp32(blk.d);
        a[b].s = nuage_fp16_to_fp32(blk.s);
    }
}

/* ------------------------------------------------- scalar weight codes */

/* q[32] = the block's integer weights, returns its scale; *m = its min
 * (0 for types without). */
typedef float (*block_codes_fn)(const void *blk, int q[QK], float *m);

static float codes_q8_0(const void *vb, int q[QK], float *m) {
    *m = 0.0f;
    const nuage_block_q8_0 *b = vb;
    for (int i = 0; i < QK; i++) q[i] = b->qs[i];
    return nuage_fp16_to_fp32(b->d);
}

static float codes_q4_0(const void *vb, int q[QK], float *m) {
    *m = 0.0f;
    const nuage_block_q4_0 *b = vb;
    for (int i = 0; i < QK / 2; i++) {
        q[i] = (b->qs[i] & 15) - 8;
        q[i + 16] = (b->qs[i] >> 4) - 8;
    }
    return nuage_fp16_to_fp32(b->d);
}

static float codes_q5_0(const void *vb, int q[QK], float *m) {
    *m = 0.0f;
    const nuage_block_q5_0 *b = vb;
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    for (int i = 0; i < QK / 2; i++) {
        q[i] = ((b->qs[i] & 15) | (((qh >> i) & 1) << 4)) - 16;
        q[i + 16] = ((b->qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4)) - 16;
    }
    return nuage_fp16_to_fp32(b->d);
}

static float codes_iq4_nl(const void *vb, int q[QK], float *m) {
    *m = 0.0f;
    const nuage_block_iq4_nl *b = vb;
    for (int i = 0; i < QK / 2; i++) {
        q[i] = nuage__iq4nl_values[b->qs[i] & 15];
        q[i + 16] = nuage__iq4nl_values[b->qs[i] >> 4];
    }
    return nuage_fp16_to_fp32(b->d);
}

static float codes_q4_1(const void *vb, int q[QK], float *m) {
    const nuage_block_q4_1 *b = vb;
    for (int i = 0; i < QK / 2; i++) {
        q[i] = b->qs[i] & 15;
        q[i + 16] = b->qs[i] >> 4;
    }
    *m = nuage_fp16_to_fp32(b->m);
    return nuage_fp16_to_fp32(b->d);
}

static float codes_q5_1(const void *vb, int q[QK], float *m) {
    const nuage_block_q5_1 *b = vb;
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    for (int i = 0; i < QK / 2; i++) {
        q[i] = (b->qs[i] & 15) | (((qh >> i) & 1) << 4);
        q[i + 16] = (b->qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4);
    }
    *m = nuage_fp16_to_fp32(b->m);
    return nuage_fp16_to_fp32(b->d);
}

static void gemm_ref_impl(block_codes_fn codes, size_t bsize, int has_min, int n, float *y, size_t ys,
                          const void *w, size_t ws, int nw, const void *a, size_t as, int na) {
    const int nb = n / QK;
    for (int i = 0; i < nw; i++) {
        const char *wr = (const char *)w + (size_t)i * ws;
        for (int j = 0; j < na; j++) {
            const nuage_gemm_ablk *ar =
                (const nuage_gemm_ablk *)((const char *)a + (size_t)j * as);
            float acc = 0.0f;
            for (int b = 0; b < nb; b++) {
                int q[QK];
                float mw;
                const float dw = codes(wr + (size_t)b * bsize, q, &mw);
                int32_t isum = 0;
                for (int e = 0; e < QK; e++) isum += q[e] * ar[b].y[e];
                const float s = dw * ar[b].d;
                acc = fmaf((float)isum, s, acc);
                if (has_min) acc = fmaf(mw, ar[b].s, acc);
            }
            y[(size_t)j * ys + i] = acc;
        }
    }
}

#define REF(name, blk, MIN)                                                                   \
    static void gemm_ref_##name(int n, float *y, size_t ys, const void *w, size_t ws,      \
                                int nw, const void *a, size_t as, int na) {                \
        gemm_ref_impl(codes_##name, sizeof(blk), MIN, n, y, ys, w, ws, nw, a, as, na);     \
    }
REF(q8_0, nuage_block_q8_0, 0)
REF(q4_0, nuage_block_q4_0, 0)
REF(q5_0, nuage_block_q5_0, 0)
REF(iq4_nl, nuage_block_iq4_nl, 0)
REF(q4_1, nuage_block_q4_1, 1)
REF(q5_1, nuage_block_q5_1, 1)

void nuage__gemm_register_ref(nuage_type_traits *t) {
    t[NUAGE_TYPE_Q8_0].gemm_ref = gemm_ref_q8_0;
    t[NUAGE_TYPE_Q8_0].gemm_prep = prep_q8_0;
    t[NUAGE_TYPE_Q4_0].gemm_ref = gemm_ref_q4_0;
    t[NUAGE_TYPE_Q4_0].gemm_prep = prep_q4_0;
    t[NUAGE_TYPE_Q5_0].gemm_ref = gemm_ref_q5_0;
    t[NUAGE_TYPE_Q5_0].gemm_prep = prep_q5_0;
    t[NUAGE_TYPE_IQ4_NL].gemm_ref = gemm_ref_iq4_nl;
    t[NUAGE_TYPE_IQ4_NL].gemm_prep = prep_iq4_nl;
    t[NUAGE_TYPE_Q4_1].gemm_ref = gemm_ref_q4_1;
    t[NUAGE_TYPE_Q4_1].gemm_prep = prep_min;
    t[NUAGE_TYPE_Q5_1].gemm_ref = gemm_ref_q5_1;
    t[NUAGE_TYPE_Q5_1].gemm_prep = prep_min;
}
