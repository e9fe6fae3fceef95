/*
 * quant_legacy.c - the "legacy" ggml types: F16, BF16, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, Q8_1 (activation format) and IQ4_NL. Scalar reference code
 * and the registration of the fastest kernels for the chosen SIMD level.
 *
 * Layouts (quant.h) are ggml's byte for byte. In every 32-value block of
 * the 4/5-bit types, byte j of qs holds value j in its low nibble and
 * value j + 16 in its high nibble; for Q5_x, bit j of the 32-bit
 * little-endian qh is the fifth bit of value j. Values decode as
 *   Q4_0: d * (q - 8)        Q4_1: d * q + m
 *   Q5_0: d * (q - 16)       Q5_1: d * q + m
 *   Q8_0: d * q              Q8_1: d * q  (s = d * sum(q), for Q4_1/Q5_1)
 *   IQ4_NL: d * kvalues[q]   (16 fixed non-linear levels)
 *
 * Dot products follow ggml: a weight row is multiplied with an activation
 * row that the engine has already rounded to the weight's vec_dot_type
 * (Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, F16 for F16, BF16
 * for BF16). For the integer types each block contributes
 * (float)isum * (dw * da) where isum is the exact integer dot of the
 * quants, plus m * s for the offset types; blocks are summed in float.
 * The reference kernels here are plain and readable; they define what the
 * SIMD kernels must compute (up to float summation order).
 *
 * Weight quantizers (from_float of Q4_0 ... IQ4_NL) follow ggml's simple
 * reference algorithms (no importance matrix); they exist for tests and
 * tools. The activation quantizers (Q8_0, Q8_1, F16, BF16) must round
 * exactly as llama.cpp does: see quant_legacy.h.
 */
#include "engine/quant_legacy.h"
#include "engine/gemm.h"

#include <float.h>
#include <math.h>

#include "engine/cpu.h"

const int8_t nuage__iq4nl_values[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

#define QK 32

static inline float h2f(nuage_fp16 h) { return nuage_fp16_to_fp32(h); }
static inline nuage_fp16 f2h(float f) { return nuage_fp32_to_fp16(f); }

static inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void store_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* Clamp then truncate toward zero: float -> int without UB on any input
 * (NaN gives lo). */
static inline int trunc_clamp(float v, int lo, int hi) {
    if (!(v >= (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* ---------------------------------------------------------------- F16 */

static void f16_to_float(const void *x, float *y, int64_t n) {
    const nuage_fp16 *h = x;
    for (int64_t i = 0; i < n; i++) y[i] = h2f(h[i]);
}

static void f16_from_float(const float *x, void *y, int64_t n) {
    nuage_fp16 *h = y;
    for (int64_t i = 0; i < n; i++) h[i] = f2h(x[i]);
}

/* Products of two halves are exact in float; accumulated in float in 8
 * interleaved partial sums (as the SIMD versions roughly do). */
static void f16_vec_dot_ref(int n, float *s, const void *w, const void *a) {
    const nuage_fp16 *x = w, *y = a;
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += h2f(x[i + k]) * h2f(y[i + k]);
    float sum = 0;
    for (int k = 0; k < 8; k++) sum += acc[k];
    for (; i < n; i++) sum += h2f(x[i]) * h2f(y[i]);
    *s = sum;
}

/* --------------------------------------------------------------- BF16 */

static void bf16_to_float(const void *x, float *y, int64_t n) {
    const nuage_bf16 *h = x;
    for (int64_t i = 0; i < n; i++) y[i] = nuage_bf16_to_fp32(h[i]);
}

static void bf16_from_float(const float *x, void *y, int64_t n) {
    nuage_bf16 *h = y;
    for (int64_t i = 0; i < n; i++) h[i] = nuage_fp32_to_bf16(x[i]);
}

static void bf16_vec_dot_ref(int n, float *s, const void *w, const void *a) {
    const nuage_bf16 *x = w, *y = a;
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += nuage_bf16_to_fp32(x[i + k]) * nuage_bf16_to_fp32(y[i + k]);
    float sum = 0;
    for (int k = 0; k < 8; k++) sum += acc[k];
    for (; i < n; i++) sum += nuage_bf16_to_fp32(x[i]) * nuage_bf16_to_fp32(y[i]);
    *s = sum;
}

/* ----------------------------------------------------- Q8_0 and Q8_1 */

/* Largest |x| of one block. */
static inline float block_amax(const float *x) {
    float amax = 0.0f;
    for (int j = 0; j < QK; j++) {
        float v = fabsf(x[j]);
        if (v > amax) amax = v;
    }
    return amax;
}

/* Round one block to int8 as llama.cpp's x86 build does (quant_legacy.h);
 * returns d and the sum of the quants. */
static inline float quantize_block_q8(const float *x, int8_t *q, int *sum) {
    const float amax = block_amax(x);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int s = 0;
    for (int j = 0; j < QK; j++) {
        float v = nearbyintf(x[j] * id); /* default mode: ties to even */
        int iv = v > 127.0f ? 127 : v < -128.0f ? -128 : (int)v;
        q[j] = (int8_t)iv;
        s += iv;
    }
    *sum = s;
    return d;
}

void nuage__quantize_q8_0_ref(const float *x, void *vy, int64_t n) {
    nuage_block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / QK; b++) {
        int sum;
        float d = quantize_block_q8(x + b * QK, y[b].qs, &sum);
        y[b].d = f2h(d);
    }
}

void nuage__quantize_q8_1_ref(const float *x, void *vy, int64_t n) {
    nuage_block_q8_1 *y = vy;
    for (int64_t b = 0; b < n / QK; b++) {
        int sum;
        float d = quantize_block_q8(x + b * QK, y[b].qs, &sum);
        y[b].d = f2h(d);
        y[b].s = f2h(d * (float)sum);
    }
}

static void q8_0_to_float(const void *vx, float *y, int64_t n) {
    const nuage_block_q8_0 *x = vx;
    for (int64_t b = 0; b < n / QK; b++) {
        const float d = h2f(x[b].d);
        for (int j = 0; j < QK; j++) y[b * QK + j] = d * x[b].qs[j];
    }
}

static void q8_1_to_float(const void *vx, float *y, int64_t n) {
    const nuage_block_q8_1 *x = vx;
    for (int64_t b = 0; b < n / QK; b++) {
        const float d = h2f(x[b].d);
        for (int j = 0; j < QK; j++) y[b * QK + j] = d * x[b].qs[j];
    }
}

static void q8_0_vec_dot_ref(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q8_0 *x = vw, *y = va;
    float sum = 0;
    for (int b = 0; b < n / QK; b++) {
        int isum = 0;
        for (int j = 0; j < QK; j++) isum += x[b].qs[j] * y[b].qs[j];
        sum += (float)isum * (h2f(x[b].d) * h2f(y[b].d));
    }
    *s = sum;
}

/* ------------------------------------------------------- Q4_0 / Q5_0 */

/* The signed value with the largest magnitude (ggml's "max"). */
static inline float block_signed_max(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void q4_0_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q4_0 *y = vy;
    for (int64_t b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        const float d = block_signed_max(xb) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = f2h(d);
        for (int j = 0; j < QK / 2; j++) {
            int q0 = trunc_clamp(xb[j] * id + 8.5f, 0, 15);
            int q1 = trunc_clamp(xb[j + QK / 2] * id + 8.5f, 0, 15);
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void q4_0_to_float(const void *vx, float *y, int64_t n) {
    const nuage_block_q4_0 *x = vx;
    for (int64_t b = 0; b < n / QK; b++) {
        const float d = h2f(x[b].d);
        for (int j = 0; j < QK / 2; j++) {
            y[b * QK + j] = d * (float)((x[b].qs[j] & 15) - 8);
            y[b * QK + j + QK / 2] = d * (float)((x[b].qs[j] >> 4) - 8);
        }
    }
}

static void q4_0_vec_dot_ref(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q4_0 *x = vw;
    const nuage_block_q8_0 *y = va;
    float sum = 0;
    for (int b = 0; b < n / QK; b++) {
        int isum = 0;
        for (int j = 0; j < QK / 2; j++) {
            isum += ((x[b].qs[j] & 15) - 8) * y[b].qs[j];
            isum += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + QK / 2];
        }
        sum += (float)isum * (h2f(x[b].d) * h2f(y[b].d));
    }
    *s = sum;
}

static void q5_0_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q5_0 *y = vy;
    for (int64_t b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        const float d = block_signed_max(xb) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            int q0 = trunc_clamp(xb[j] * id + 16.5f, 0, 31);
            int q1 = trunc_clamp(xb[j + QK / 2] * id + 16.5f, 0, 31);
            y[b].qs[j] = (uint8_t)((q0 & 15) | ((q1 & 15) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK / 2);
        }
        store_u32(y[b].qh, qh);
    }
}

/* The 5-bit quants of a Q5 block, unpacked to 0..31. */
static inline void q5_unpack(const uint8_t *qs, const uint8_t *qhb, int *q) {
    const uint32_t qh = load_u32(qhb);
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (qs[j] & 15) | (int)(((qh >> j) & 1) << 4);
        q[j + QK / 2] = (qs[j] >> 4) | (int)(((qh >> (j + QK / 2)) & 1) << 4);
    }
}

static void q5_0_to_float(const void *vx, float *y, int64_t n) {
    const nuage_block_q5_0 *x = vx;
    for (int64_t b = 0; b < n / QK; b++) {
        const float d = h2f(x[b].d);
        int q[QK];
        q5_unpack(x[b].qs, x[b].qh, q);
        for (int j = 0; j < QK; j++) y[b * QK + j] = d * (float)(q[j] - 16);
    }
}

static void q5_0_vec_dot_ref(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q5_0 *x = vw;
    const nuage_block_q8_0 *y = va;
    float sum = 0;
    for (int b = 0; b < n / QK; b++) {
        int q[QK], isum = 0;
        q5_unpack(x[b].qs, x[b].qh, q);
        for (int j = 0; j < QK; j++) isum += (q[j] - 16) * y[b].qs[j];
        sum += (float)isum * (h2f(x[b].d) * h2f(y[b].d));
    }
    *s = sum;
}

/* ------------------------------------------------------- Q4_1 / Q5_1 */

static inline void block_min_max(const float *x, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static void q4_1_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q4_1 *y = vy;
    for (int64_t b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        float mn, mx;
        block_min_max(xb, &mn, &mx);
        const float d = (mx - mn) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = f2h(d);
        y[b].m = f2h(mn);
        for (int j = 0; j < QK / 2; j++) {
            int q0 = trunc_clamp((xb[j] - mn) * id + 0.5f, 0, 15);
            int q1 = trunc_clamp((xb[j + QK / 2] - mn) * id + 0.5f, 0, 15);
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void q4_1_to_float(const void *vx, float *y, int64_t n) {
    const nuage_block_q4_1 *x = vx;
    for (int64_t b = 0; b < n / QK; b++) {
        const float d = h2f(x[b].d), m = h2f(x[b].m);
        for (int j = 0; j < QK / 2; j++) {
            y[b * QK + j] = d * (float)(x[b].qs[j] & 15) + m;
            y[b * QK + j + QK / 2] = d * (float)(x[b].qs[j] >> 4) + m;
        }
    }
}

static void q4_1_vec_dot_ref(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q4_1 *x = vw;
    const nuage_block_q8_1 *y = va;
    float sum = 0;
    for (int b = 0; b < n / QK; b++) {
        int isum = 0;
        for (int j = 0; j < QK / 2; j++) {
            isum += (x[b].qs[j] & 15) * y[b].qs[j];
            isum += (x[b].qs[j] >> 4) * y[b].qs[j + QK / 2];
        }
        sum += (float)isum * (h2f(x[b].d) * h2f(y[b].d)) + h2f(x[b].m) * h2f(y[b].s);
    }
    *s = sum;
}

static void q5_1_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q5_1 *y = vy;
    for (int64_t b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        float mn, mx;
        block_min_max(xb, &mn, &mx);
        const float d = (mx - mn) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = f2h(d);
        y[b].m = f2h(mn);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            int q0 = trunc_clamp((xb[j] - mn) * id + 0.5f, 0, 31);
            int q1 = trunc_clamp((xb[j + QK / 2] - mn) * id + 0.5f, 0, 31);
            y[b].qs[j] = (uint8_t)((q0 & 15) | ((q1 & 15) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK / 2);
        }
        store_u32(y[b].qh, qh);
    }
}

static void q5_1_to_float(const void *vx, float *y, int64_t n) {
    const nuage_block_q5_1 *x = vx;
    for (int64_t b = 0; b < n / QK; b++) {
        const float d = h2f(x[b].d), m = h2f(x[b].m);
        int q[QK];
        q5_unpack(x[b].qs, x[b].qh, q);
        for (int j = 0; j < QK; j++) y[b * QK + j] = d * (float)q[j] + m;
    }
}

static void q5_1_vec_dot_ref(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q5_1 *x = vw;
    const nuage_block_q8_1 *y = va;
    float sum = 0;
    for (int b = 0; b < n / QK; b++) {
        int q[QK], isum = 0;
        q5_unpack(x[b].qs, x[b].qh, q);
        for (int j = 0; j < QK; j++) isum += q[j] * y[b].qs[j];
        sum += (float)isum * (h2f(x[b].d) * h2f(y[b].d)) + h2f(x[b].m) * h2f(y[b].s);
    }
    *s = sum;
}

/* ------------------------------------------------------------- IQ4_NL */

/* Index of the level nearest to v (levels are sorted). */
static inline int iq4nl_nearest(float v) {
    int lo = 0;
    for (int k = 1; k < 16; k++) {
        float mid = 0.5f * (float)(nuage__iq4nl_values[k - 1] + nuage__iq4nl_values[k]);
        if (v > mid) lo = k;
        else break;
    }
    return lo;
}

/* Squared error of a block quantized with inverse scale id, refitted by
 * least squares; stores the refitted scale in *dout and indices in idx. */
static float iq4nl_try(const float *x, float id, int *idx, float *dout) {
    float sqx = 0, sqq = 0;
    for (int j = 0; j < QK; j++) {
        idx[j] = iq4nl_nearest(x[j] * id);
        float q = nuage__iq4nl_values[idx[j]];
        sqx += q * x[j];
        sqq += q * q;
    }
    float d = sqq > 0 ? sqx / sqq : 0.0f;
    float err = 0;
    for (int j = 0; j < QK; j++) {
        float e = x[j] - d * (float)nuage__iq4nl_values[idx[j]];
        err += e * e;
    }
    *dout = d;
    return err;
}

/* Tries scales mapping the largest-magnitude value near either end of the
 * table, refits each by least squares and keeps the best. */
static void iq4_nl_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_iq4_nl *y = vy;
    for (int64_t b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        const float max = block_signed_max(xb);
        int best_idx[QK], idx[QK];
        float best_d = 0, best_err = FLT_MAX;
        for (int j = 0; j < QK; j++) best_idx[j] = 8; /* level 1: ~0 */
        if (max != 0.0f) {
            for (int end = 0; end < 2; end++) {
                float level = end ? 113.0f : -127.0f;
                for (int t = -8; t <= 8; t++) {
                    float id = (level + (float)t) / max;
                    float d;
                    float err = iq4nl_try(xb, id, idx, &d);
                    if (err < best_err) {
                        best_err = err;
                        best_d = d;
                        memcpy(best_idx, idx, sizeof idx);
                    }
                }
            }
        }
        y[b].d = f2h(best_d);
        for (int j = 0; j < QK / 2; j++)
            y[b].qs[j] = (uint8_t)(best_idx[j] | (best_idx[j + QK / 2] << 4));
    }
}

static void iq4_nl_to_float(const void *vx, float *y, int64_t n) {
    const nuage_block_iq4_nl *x = vx;
    for (int64_t b = 0; b < n / QK; b++) {
        const float d = h2f(x[b].d);
        for (int j = 0; j < QK / 2; j++) {
            y[b * QK + j] = d * (float)nuage__iq4nl_values[x[b].qs[j] & 15];
            y[b * QK + j + QK / 2] = d * (float)nuage__iq4nl_values[x[b].qs[j] >> 4];
        }
    }
}

static void iq4_nl_vec_dot_ref(int n, float *s, const void *vw, const void *va) {
    const nuage_block_iq4_nl *x = vw;
    const nuage_block_q8_0 *y = va;
    float sum = 0;
    for (int b = 0; b < n / QK; b++) {
        int isum = 0;
        for (int j = 0; j < QK / 2; j++) {
            isum += nuage__iq4nl_values[x[b].qs[j] & 15] * y[b].qs[j];
            isum += nuage__iq4nl_values[x[b].qs[j] >> 4] * y[b].qs[j + QK / 2];
        }
        sum += (float)isum * (h2f(x[b].d) * h2f(y[b].d));
    }
    *s = sum;
}

/* ------------------------------------------------------- registration */

static void set_type(nuage_type_traits *t, bool supported, nuage_type dot_type,
                     nuage_to_float_fn to, nuage_from_float_fn from,
                     nuage_vec_dot_fn dot) {
    t->supported = supported;
    t->vec_dot_type = dot_type;
    t->to_float = to;
    t->from_float = from;
    t->vec_dot = t->vec_dot_ref = dot;
    t->vec_dot_tile = NULL;
}

/* Fills the legacy entries with the scalar kernels, then lets the SIMD
 * files replace what they accelerate for `level` (1 AVX2, 2 AVX-512). */
void nuage__quant_register_legacy(nuage_type_traits *table, int level) {
    set_type(&table[NUAGE_TYPE_F16], true, NUAGE_TYPE_F16, f16_to_float,
             f16_from_float, f16_vec_dot_ref);
    set_type(&table[NUAGE_TYPE_BF16], true, NUAGE_TYPE_BF16, bf16_to_float,
             bf16_from_float, bf16_vec_dot_ref);
    set_type(&table[NUAGE_TYPE_Q4_0], true, NUAGE_TYPE_Q8_0, q4_0_to_float,
             q4_0_from_float, q4_0_vec_dot_ref);
    set_type(&table[NUAGE_TYPE_Q4_1], true, NUAGE_TYPE_Q8_1, q4_1_to_float,
             q4_1_from_float, q4_1_vec_dot_ref);
    set_type(&table[NUAGE_TYPE_Q5_0], true, NUAGE_TYPE_Q8_0, q5_0_to_float,
             q5_0_from_float, q5_0_vec_dot_ref);
    set_type(&table[NUAGE_TYPE_Q5_1], true, NUAGE_TYPE_Q8_1, q5_1_to_float,
             q5_1_from_float, q5_1_vec_dot_ref);
    set_type(&table[NUAGE_TYPE_Q8_0], true, NUAGE_TYPE_Q8_0, q8_0_to_float,
             nuage__quantize_q8_0_ref, q8_0_vec_dot_ref);
    /* Q8_1 is an activation format only (ggml has no Q8_1 weights). */
    set_type(&table[NUAGE_TYPE_Q8_1], false, NUAGE_TYPE_Q8_1, q8_1_to_float,
             nuage__quantize_q8_1_ref, NULL);
    set_type(&table[NUAGE_TYPE_IQ4_NL], true, NUAGE_TYPE_Q8_0, iq4_nl_to_float,
             iq4_nl_from_float, iq4_nl_vec_dot_ref);

    nuage__gemm_register_ref(table);
#if defined(NUAGE_X86)
    if (level >= 1) nuage__legacy_register_avx2(table);
    if (level >= 2) {
        nuage__legacy_register_avx512(table, nuage_cpu_get()->avx512bf16);
        nuage__gemm_register_avx512(table);
    }
#else
    (void)level;
#endif
}
