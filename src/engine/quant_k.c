/*
 * quant_k.c - K-quants (Q2_K ... Q6_K, Q8_K) and IQ4_XS: scalar code and
 * registration.
 *
 * Design. Every weight block of 256 values is first *decoded* into plain
 * integers: a signed 8-bit code per value, an integer scale (and, for the
 * affine types, an integer min) per group of 16 or 32 values, and the
 * block's fp16 factors d and dmin, so that
 *
 *     value[v] = d * sc[g] * q[v] - dmin * mn[g],     g = v / group.
 *
 * One decoder per type is the single place where its bit layout is read;
 * dequantization (to_float) and the scalar reference dot product are both
 * written once on top of the decoded form. The dequantization evaluates the
 * float expression in ggml's order ((d * sc) * q - dmin * mn), so it gives
 * the same floats as ggml's dequantize_row_*. The reference dot keeps the
 * integer part exact (sum over groups of sc * sum(q * a)) and uses the Q8_K
 * block sums for the min terms, then applies the float factors once per
 * block; the SIMD kernels compute the same integers, so they differ from it
 * only in the order of the float additions.
 *
 * Quantizers. Q8_K's is the activation quantizer and reproduces ggml's
 * quantize_row_q8_K_ref exactly (scale from the signed value of largest
 * magnitude, iscale = -127/max, round half to even, clamp at 127,
 * d = 1/iscale, 16-value sums): llama.cpp rounds activations that way before
 * every K-quant matmul and our logits are compared with its. The weight
 * quantizers are simple one-pass fits (range per group, block scale from the
 * largest group scale); they produce valid blocks close to the input and are
 * meant for tests and tools, not for competing with llama-quantize.
 */
#include "engine/quant_k.h"

#include "engine/gemm_k.h"

#include <math.h>
#include <stdbool.h>

#define QK NUAGE__QK

/* ---- decoding ----------------------------------------------------------- */

typedef struct {
    int8_t q[QK];
    int16_t sc[16];
    int16_t mn[16];
    float d, dmin;
    int group;   /* values per scale: 16 or 32 */
    bool has_min;
} nuage__kdec;

typedef void (*nuage__decode_fn)(const void *blk, nuage__kdec *o);

static void nuage__dec_q2_K(const void *blk, nuage__kdec *o) {
    const nuage_block_q2_K *b = blk;
    o->d = nuage_fp16_to_fp32(b->d);
    o->dmin = nuage_fp16_to_fp32(b->dmin);
    o->group = 16;
    o->has_min = true;
    for (int g = 0; g < 16; g++) {
        o->sc[g] = b->scales[g] & 0xf;
        o->mn[g] = b->scales[g] >> 4;
    }
    /* value 128h + 32j + l: bits 2j..2j+1 of qs[32h + l] */
    for (int v = 0; v < QK; v++) {
        const int h = v / 128, j = (v % 128) / 32, l = v % 32;
        o->q[v] = (int8_t)((b->qs[32 * h + l] >> (2 * j)) & 3);
    }
}

static void nuage__dec_q3_K(const void *blk, nuage__kdec *o) {
    const nuage_block_q3_K *b = blk;
    uint32_t w[4];
    uint8_t s[16];
    nuage__k3_scale_words(b->scales, w);
    memcpy(s, w, 16);
    o->d = nuage_fp16_to_fp32(b->d);
    o->dmin = 0;
    o->group = 16;
    o->has_min = false;
    for (int g = 0; g < 16; g++) {
        o->sc[g] = (int16_t)(s[g] - 32);
        o->mn[g] = 0;
    }
    /* value 128h + 32j + l: two low bits as Q2_K, and bit 4h + j of
     * hmask[l]; a clear high bit means "minus 4". */
    for (int v = 0; v < QK; v++) {
        const int h = v / 128, j = (v % 128) / 32, l = v % 32;
        const int lo = (b->qs[32 * h + l] >> (2 * j)) & 3;
        const int hi = (b->hmask[l] >> (4 * h + j)) & 1;
        o->q[v] = (int8_t)(lo - (hi ? 0 : 4));
    }
}

static void nuage__dec_q4_K(const void *blk, nuage__kdec *o) {
    const nuage_block_q4_K *b = blk;
    uint64_t sc, mn;
    nuage__k4_scales(b->scales, &sc, &mn);
    o->d = nuage_fp16_to_fp32(b->d);
    o->dmin = nuage_fp16_to_fp32(b->dmin);
    o->group = 32;
    o->has_min = true;
    for (int g = 0; g < 8; g++) {
        o->sc[g] = (int16_t)((sc >> (8 * g)) & 0xff);
        o->mn[g] = (int16_t)((mn >> (8 * g)) & 0xff);
    }
    /* value 64c + l (l < 32): low nibble of qs[32c + l]; 64c + 32 + l: high */
    for (int v = 0; v < QK; v++) {
        const int c = v / 64, hi = (v % 64) / 32, l = v % 32;
        o->q[v] = (int8_t)((b->qs[32 * c + l] >> (4 * hi)) & 0xf);
    }
}

static void nuage__dec_q5_K(const void *blk, nuage__kdec *o) {
    const nuage_block_q5_K *b = blk;
    uint64_t sc, mn;
    nuage__k4_scales(b->scales, &sc, &mn);
    o->d = nuage_fp16_to_fp32(b->d);
    o->dmin = nuage_fp16_to_fp32(b->dmin);
    o->group = 32;
    o->has_min = true;
    for (int g = 0; g < 8; g++) {
        o->sc[g] = (int16_t)((sc >> (8 * g)) & 0xff);
        o->mn[g] = (int16_t)((mn >> (8 * g)) & 0xff);
    }
    /* as Q4_K, plus bit (v / 32) of qh[v % 32] worth 16 */
    for (int v = 0; v < QK; v++) {
        const int c = v / 64, hi = (v % 64) / 32, l = v % 32;
        const int nib = (b->qs[32 * c + l] >> (4 * hi)) & 0xf;
        o->q[v] = (int8_t)(nib + (((b->qh[l] >> (v / 32)) & 1) << 4));
    }
}

static void nuage__dec_q6_K(const void *blk, nuage__kdec *o) {
    const nuage_block_q6_K *b = blk;
    o->d = nuage_fp16_to_fp32(b->d);
    o->dmin = 0;
    o->group = 16;
    o->has_min = false;
    for (int g = 0; g < 16; g++) {
        o->sc[g] = b->scales[g];
        o->mn[g] = 0;
    }
    /* value 128h + 32k + l: nibble (k / 2) of ql[64h + 32(k % 2) + l],
     * high two bits at bit 2k of qh[32h + l]; biased by 32 */
    for (int v = 0; v < QK; v++) {
        const int h = v / 128, k = (v % 128) / 32, l = v % 32;
        const int lo = (b->ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xf;
        const int hi = (b->qh[32 * h + l] >> (2 * k)) & 3;
        o->q[v] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

static void nuage__dec_q8_K(const void *blk, nuage__kdec *o) {
    const nuage_block_q8_K *b = blk;
    o->d = b->d;
    o->dmin = 0;
    o->group = 16;
    o->has_min = false;
    for (int g = 0; g < 16; g++) {
        o->sc[g] = 1;
        o->mn[g] = 0;
    }
    memcpy(o->q, b->qs, QK);
}

static void nuage__dec_iq4_xs(const void *blk, nuage__kdec *o) {
    const nuage_block_iq4_xs *b = blk;
    o->d = nuage_fp16_to_fp32(b->d);
    o->dmin = 0;
    o->group = 32;
    o->has_min = false;
    for (int g = 0; g < 8; g++) {
        o->sc[g] = (int16_t)(nuage__iq4xs_scale(b, g) - 32);
        o->mn[g] = 0;
    }
    /* value 32ib + j (j < 16): low nibble of qs[16ib + j]; + 16: high */
    for (int v = 0; v < QK; v++) {
        const int ib = v / 32, hi = (v % 32) / 16, j = v % 16;
        o->q[v] = nuage__k_iq4_grid[(b->qs[16 * ib + j] >> (4 * hi)) & 0xf];
    }
}

/* ---- dequantization and the reference dot, generic over the decoder ---- */

static void nuage__k_to_float(nuage__decode_fn dec, size_t bsize, const void *x, float *y,
                              int64_t n) {
    nuage__kdec o;
    const uint8_t *p = x;
    for (int64_t i = 0; i < n / QK; i++, p += bsize, y += QK) {
        dec(p, &o);
        const int ng = QK / o.group;
        for (int g = 0; g < ng; g++) {
            const float dl = o.d * o.sc[g];
            const float ml = o.dmin * o.mn[g];
            const int8_t *q = o.q + g * o.group;
            float *yy = y + g * o.group;
            if (o.has_min)
                for (int l = 0; l < o.group; l++) yy[l] = dl * q[l] - ml;
            else
                for (int l = 0; l < o.group; l++) yy[l] = dl * q[l];
        }
    }
}

static void nuage__k_vec_dot(nuage__decode_fn dec, size_t bsize, int n, float *s, const void *w,
                             const void *a) {
    nuage__kdec o;
    const uint8_t *p = w;
    const nuage_block_q8_K *y = a;
    float sum = 0;
    for (int i = 0; i < n / QK; i++, p += bsize) {
        dec(p, &o);
        const int ng = QK / o.group;
        const int per = o.group / 16; /* Q8_K sums per group */
        int32_t isum = 0, imin = 0;
        for (int g = 0; g < ng; g++) {
            const int8_t *q = o.q + g * o.group;
            const int8_t *qa = y[i].qs + g * o.group;
            int32_t dot = 0;
            for (int l = 0; l < o.group; l++) dot += q[l] * qa[l];
            isum += o.sc[g] * dot;
            int32_t bs = 0;
            for (int k = 0; k < per; k++) bs += y[i].bsums[g * per + k];
            imin += o.mn[g] * bs;
        }
        sum += y[i].d * (o.d * (float)isum - o.dmin * (float)imin);
    }
    *s = sum;
}

#define NUAGE__K_SCALAR(name, blk_t)                                                   \
    static void name##_to_float(const void *x, float *y, int64_t n) {                 \
        nuage__k_to_float(nuage__dec_##name, sizeof(blk_t), x, y, n);                 \
    }                                                                                 \
    static void name##_vec_dot_ref(int n, float *s, const void *w, const void *a) {   \
        nuage__k_vec_dot(nuage__dec_##name, sizeof(blk_t), n, s, w, a);               \
    }

NUAGE__K_SCALAR(q2_K, nuage_block_q2_K)
NUAGE__K_SCALAR(q3_K, nuage_block_q3_K)
NUAGE__K_SCALAR(q4_K, nuage_block_q4_K)
NUAGE__K_SCALAR(q5_K, nuage_block_q5_K)
NUAGE__K_SCALAR(q6_K, nuage_block_q6_K)
NUAGE__K_SCALAR(q8_K, nuage_block_q8_K)
NUAGE__K_SCALAR(iq4_xs, nuage_block_iq4_xs)

/* ---- quantizers ----------------------------------------------------------- */

/* Round to nearest, ties to even, for |f| < 2^22: adding 1.5 * 2^23 leaves
 * the rounded integer in the low mantissa bits (the FPU rounds the sum to
 * nearest-even), which is the rounding ggml's activation quantizer uses. */
static inline int nuage__round(float f) {
    float t = f + 12582912.f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int nuage__clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static void nuage__q8_K_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0) {
            y[i].d = 0;
            memset(y[i].qs, 0, sizeof y[i].qs);
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK; j++) {
            const int v = nuage__round(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int g = 0; g < QK / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* Affine fit of every group of `group` values (x ~ scale * q - min with
 * q in 0..nmax, min >= 0), then integer scales/mins of `sbits` bits against
 * block factors d, dmin. Fills L[256] (codes), ls/lm (integer scales/mins)
 * and the fp16 factors. */
static void nuage__fit_affine(const float *x, int group, int nmax, int sbits, uint8_t *L,
                              uint8_t *ls, uint8_t *lm, nuage_fp16 *d16, nuage_fp16 *dmin16) {
    const int ng = QK / group, smax = (1 << sbits) - 1;
    float scale[16], min[16], max_scale = 0, max_min = 0;
    for (int g = 0; g < ng; g++) {
        float lo = x[g * group], hi = lo;
        for (int l = 1; l < group; l++) {
            const float v = x[g * group + l];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (lo > 0) lo = 0;
        scale[g] = (hi - lo) / nmax;
        min[g] = -lo;
        if (scale[g] > max_scale) max_scale = scale[g];
        if (min[g] > max_min) max_min = min[g];
    }
    *d16 = nuage_fp32_to_fp16(max_scale / smax);
    *dmin16 = nuage_fp32_to_fp16(max_min / smax);
    const float d = nuage_fp16_to_fp32(*d16), dmin = nuage_fp16_to_fp32(*dmin16);
    for (int g = 0; g < ng; g++) {
        ls[g] = (uint8_t)(d > 0 ? nuage__clampi(nuage__round(scale[g] / d), 0, smax) : 0);
        /* round the min up so the group's smallest value stays in range */
        lm[g] = (uint8_t)(dmin > 0 ? nuage__clampi((int)ceilf(min[g] / dmin - 0.01f), 0, smax) : 0);
        const float dl = d * ls[g], ml = dmin * lm[g];
        for (int l = 0; l < group; l++) {
            const int v = g * group + l;
            L[v] = (uint8_t)(dl > 0 ? nuage__clampi(nuage__round((x[v] + ml) / dl), 0, nmax) : 0);
        }
    }
}

/* Symmetric fit: per group the value of largest magnitude maps to -nneg,
 * codes q in [-nneg, nneg-1]; integer scales in [-smin, smin-1] against the
 * block factor d (the largest group scale maps to -smin). Fills the codes
 * biased by +nneg in L and the signed scales in ls. */
static void nuage__fit_symmetric(const float *x, int group, int nneg, int smin, uint8_t *L,
                                 int *ls, nuage_fp16 *d16) {
    const int ng = QK / group;
    float scale[16], max_scale = 0, amax_scale = 0;
    for (int g = 0; g < ng; g++) {
        float amax = 0, max = 0;
        for (int l = 0; l < group; l++) {
            const float v = x[g * group + l];
            if (fabsf(v) > amax) {
                amax = fabsf(v);
                max = v;
            }
        }
        scale[g] = max / -nneg;
        if (fabsf(scale[g]) > amax_scale) {
            amax_scale = fabsf(scale[g]);
            max_scale = scale[g];
        }
    }
    if (amax_scale == 0) {
        *d16 = 0;
        memset(L, nneg, QK);
        for (int g = 0; g < ng; g++) ls[g] = 0;
        return;
    }
    const float iscale = -(float)smin / max_scale;
    *d16 = nuage_fp32_to_fp16(1 / iscale);
    const float d = nuage_fp16_to_fp32(*d16);
    for (int g = 0; g < ng; g++) {
        ls[g] = nuage__clampi(nuage__round(iscale * scale[g]), -smin, smin - 1);
        const float dl = d * ls[g];
        for (int l = 0; l < group; l++) {
            const int v = g * group + l;
            const int q = dl != 0 ? nuage__clampi(nuage__round(x[v] / dl), -nneg, nneg - 1) : 0;
            L[v] = (uint8_t)(q + nneg);
        }
    }
}

static void nuage__q2_K_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q2_K *y = vy;
    uint8_t L[QK], ls[16], lm[16];
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        nuage_block_q2_K *b = &y[i];
        nuage__fit_affine(x, 16, 3, 4, L, ls, lm, &b->d, &b->dmin);
        for (int g = 0; g < 16; g++) b->scales[g] = (uint8_t)(ls[g] | (lm[g] << 4));
        memset(b->qs, 0, sizeof b->qs);
        for (int v = 0; v < QK; v++) {
            const int h = v / 128, j = (v % 128) / 32, l = v % 32;
            b->qs[32 * h + l] |= (uint8_t)(L[v] << (2 * j));
        }
    }
}

static void nuage__q3_K_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q3_K *y = vy;
    uint8_t L[QK];
    int ls[16];
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        nuage_block_q3_K *b = &y[i];
        nuage__fit_symmetric(x, 16, 4, 32, L, ls, &b->d);
        memset(b->scales, 0, sizeof b->scales);
        for (int g = 0; g < 16; g++) {
            const int s = ls[g] + 32;
            b->scales[g % 8] |= (uint8_t)((s & 0xf) << (4 * (g / 8)));
            b->scales[8 + g % 4] |= (uint8_t)((s >> 4) << (2 * (g / 4)));
        }
        memset(b->qs, 0, sizeof b->qs);
        memset(b->hmask, 0, sizeof b->hmask);
        for (int v = 0; v < QK; v++) {
            const int h = v / 128, j = (v % 128) / 32, l = v % 32;
            b->qs[32 * h + l] |= (uint8_t)((L[v] & 3) << (2 * j));
            b->hmask[l] |= (uint8_t)((L[v] >> 2) << (4 * h + j));
        }
    }
}

static void nuage__pack_k4_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *s12) {
    for (int j = 0; j < 4; j++) {
        s12[j] = (uint8_t)(ls[j] | ((ls[j + 4] >> 4) << 6));
        s12[j + 4] = (uint8_t)(lm[j] | ((lm[j + 4] >> 4) << 6));
        s12[j + 8] = (uint8_t)((ls[j + 4] & 0xf) | ((lm[j + 4] & 0xf) << 4));
    }
}

static void nuage__q4_K_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q4_K *y = vy;
    uint8_t L[QK], ls[16], lm[16];
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        nuage_block_q4_K *b = &y[i];
        nuage__fit_affine(x, 32, 15, 6, L, ls, lm, &b->d, &b->dmin);
        nuage__pack_k4_scales(ls, lm, b->scales);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

static void nuage__q5_K_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q5_K *y = vy;
    uint8_t L[QK], ls[16], lm[16];
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        nuage_block_q5_K *b = &y[i];
        nuage__fit_affine(x, 32, 31, 6, L, ls, lm, &b->d, &b->dmin);
        nuage__pack_k4_scales(ls, lm, b->scales);
        memset(b->qh, 0, sizeof b->qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b->qs[32 * c + l] =
                    (uint8_t)((L[64 * c + l] & 0xf) | ((L[64 * c + 32 + l] & 0xf) << 4));
        for (int v = 0; v < QK; v++) b->qh[v % 32] |= (uint8_t)((L[v] >> 4) << (v / 32));
    }
}

static void nuage__q6_K_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q6_K *y = vy;
    uint8_t L[QK];
    int ls[16];
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        nuage_block_q6_K *b = &y[i];
        nuage__fit_symmetric(x, 16, 32, 128, L, ls, &b->d);
        for (int g = 0; g < 16; g++) b->scales[g] = (int8_t)ls[g];
        memset(b->ql, 0, sizeof b->ql);
        memset(b->qh, 0, sizeof b->qh);
        for (int v = 0; v < QK; v++) {
            const int h = v / 128, k = (v % 128) / 32, l = v % 32;
            b->ql[64 * h + 32 * (k % 2) + l] |= (uint8_t)((L[v] & 0xf) << (4 * (k / 2)));
            b->qh[32 * h + l] |= (uint8_t)((L[v] >> 4) << (2 * k));
        }
    }
}

static int nuage__iq4_nearest(float t) {
    int best = 0;
    float err = fabsf(t - nuage__k_iq4_grid[0]);
    for (int k = 1; k < 16; k++) {
        const float e = fabsf(t - nuage__k_iq4_grid[k]);
        if (e < err) {
            err = e;
            best = k;
        }
    }
    return best;
}

/* IQ4_XS: per group of 32 a few candidate scales around "largest magnitude
 * maps to -127" are tried and the one with the least squared error kept;
 * then the group scales are quantized to 6 bits against the block factor. */
static void nuage__iq4_xs_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_iq4_xs *y = vy;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        nuage_block_iq4_xs *b = &y[i];
        float scale[8], max_scale = 0, amax_scale = 0;
        for (int g = 0; g < 8; g++) {
            const float *xg = x + 32 * g;
            float amax = 0, max = 0;
            for (int l = 0; l < 32; l++)
                if (fabsf(xg[l]) > amax) {
                    amax = fabsf(xg[l]);
                    max = xg[l];
                }
            float best = max / -127.f, best_err = INFINITY;
            for (int k = -6; amax > 0 && k <= 6; k++) {
                const float sc = max / (-127.f + 4.f * k);
                float err = 0;
                for (int l = 0; l < 32; l++) {
                    const float e = xg[l] - sc * nuage__k_iq4_grid[nuage__iq4_nearest(xg[l] / sc)];
                    err += e * e;
                }
                if (err < best_err) {
                    best_err = err;
                    best = sc;
                }
            }
            scale[g] = best;
            if (fabsf(best) > amax_scale) {
                amax_scale = fabsf(best);
                max_scale = best;
            }
        }
        memset(b->scales_l, 0, sizeof b->scales_l);
        b->scales_h = 0;
        if (amax_scale == 0) {
            b->d = 0;
            memset(b->qs, 0x88, sizeof b->qs); /* value 1 * 0 */
            for (int g = 0; g < 8; g++) {
                b->scales_l[g / 2] |= (uint8_t)((32 & 0xf) << (4 * (g % 2)));
                b->scales_h |= (uint16_t)((32 >> 4) << (2 * g));
            }
            continue;
        }
        const float dd = -max_scale / 32;
        b->d = nuage_fp32_to_fp16(dd);
        const float d = nuage_fp16_to_fp32(b->d);
        for (int g = 0; g < 8; g++) {
            const int l6 = nuage__clampi(nuage__round(scale[g] / d), -32, 31) + 32;
            b->scales_l[g / 2] |= (uint8_t)((l6 & 0xf) << (4 * (g % 2)));
            b->scales_h |= (uint16_t)((l6 >> 4) << (2 * g));
            const float dl = d * (l6 - 32);
            for (int j = 0; j < 16; j++) {
                const int lo = dl != 0 ? nuage__iq4_nearest(x[32 * g + j] / dl) : 8;
                const int hi = dl != 0 ? nuage__iq4_nearest(x[32 * g + 16 + j] / dl) : 8;
                b->qs[16 * g + j] = (uint8_t)(lo | (hi << 4));
            }
        }
    }
}

/* ---- registration ------------------------------------------------------- */

void nuage__quant_register_k(nuage_type_traits *table, int level) {
    struct entry {
        nuage_type type;
        nuage_to_float_fn to_float;
        nuage_from_float_fn from_float;
        nuage_vec_dot_fn ref, avx2, avx512;
        nuage_vec_dot_tile_fn tile2, tile512;
    };
#if defined(NUAGE_X86)
#define NUAGE__SIMD(name) nuage__vec_dot_##name##_avx2, nuage__vec_dot_##name##_avx512
#define NUAGE__TILE512(name) nuage__tile_##name##_avx512
#else
#define NUAGE__SIMD(name) NULL, NULL
#define NUAGE__TILE512(name) NULL
#endif
    const struct entry e[] = {
        {NUAGE_TYPE_Q2_K, q2_K_to_float, nuage__q2_K_from_float, q2_K_vec_dot_ref,
         NUAGE__SIMD(q2_K), NULL, NUAGE__TILE512(q2_K)},
        {NUAGE_TYPE_Q3_K, q3_K_to_float, nuage__q3_K_from_float, q3_K_vec_dot_ref,
         NUAGE__SIMD(q3_K), NULL, NUAGE__TILE512(q3_K)},
        {NUAGE_TYPE_Q4_K, q4_K_to_float, nuage__q4_K_from_float, q4_K_vec_dot_ref,
         NUAGE__SIMD(q4_K),
#if defined(NUAGE_X86)
         nuage__tile_q4_K_avx2, nuage__tile_q4_K_avx512},
#else
         NULL, NULL},
#endif
        {NUAGE_TYPE_Q5_K, q5_K_to_float, nuage__q5_K_from_float, q5_K_vec_dot_ref,
         NUAGE__SIMD(q5_K), NULL, NUAGE__TILE512(q5_K)},
        {NUAGE_TYPE_Q6_K, q6_K_to_float, nuage__q6_K_from_float, q6_K_vec_dot_ref,
         NUAGE__SIMD(q6_K),
#if defined(NUAGE_X86)
         nuage__tile_q6_K_avx2, nuage__tile_q6_K_avx512},
#else
         NULL, NULL},
#endif
        {NUAGE_TYPE_Q8_K, q8_K_to_float, nuage__q8_K_from_float, q8_K_vec_dot_ref,
         NUAGE__SIMD(q8_K), NULL, NULL},
        {NUAGE_TYPE_IQ4_XS, iq4_xs_to_float, nuage__iq4_xs_from_float, iq4_xs_vec_dot_ref,
         NUAGE__SIMD(iq4_xs), NULL, NUAGE__TILE512(iq4_xs)},
    };
#undef NUAGE__SIMD
#undef NUAGE__TILE512
    for (size_t k = 0; k < sizeof e / sizeof e[0]; k++) {
        nuage_type_traits *t = &table[e[k].type];
        t->supported = true;
        t->vec_dot_type = NUAGE_TYPE_Q8_K;
        t->to_float = e[k].to_float;
        t->from_float = e[k].from_float;
        t->vec_dot_ref = e[k].ref;
        t->vec_dot = e[k].ref;
        t->vec_dot_tile = NULL;
        if (level >= 2 && e[k].avx512) {
            t->vec_dot = e[k].avx512;
            t->vec_dot_tile = e[k].tile512;
        } else if (level >= 1 && e[k].avx2) {
            t->vec_dot = e[k].avx2;
            t->vec_dot_tile = e[k].tile2;
        }
    }
#if defined(NUAGE_X86)
    if (level >= 1) table[NUAGE_TYPE_Q8_K].from_float = nuage__quantize_q8_K_avx2;
#endif
    /* rows-in-lanes products (gemm_k.h): matmul's kernel at every batch
     * size on AVX-512 VNNI */
    nuage__gemm_k_register_ref(table);
#if defined(NUAGE_X86)
    if (level >= 2) nuage__gemm_k_register_avx512(table);
#endif
}
