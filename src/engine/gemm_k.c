/*
 * gemm_k.c - scalar reference of the K-quant rows-in-lanes products
 * (gemm_k.h) and their activation preparation, shared by every SIMD level.
 *
 * Each type has one decoder into the generic form of gemm_k.h (codes c,
 * sub-block scales s, bsum factors e, d and m); the reference then forms
 * the exact integers and the one fmaf chain over blocks that gemm_k.h
 * defines. The SIMD kernels must match it bit for bit
 * (tests/unit/test_gemm_k.c).
 */
#include "engine/gemm_k.h"

#include <math.h>
#include <string.h>

#include "engine/quant_k.h"

#define QK NUAGE__QK

/* ---------------------------------------------------- activation prep */

/* Position of bsum[h] in nuage_gemm_kblk.bs (the pair order of gemm_k.h). */
static inline int bs_pos(int h) {
    const int j = h / 4, r = h % 4; /* r: 0 -> 0, 1 -> 2, 2 -> 1, 3 -> 3 */
    return 4 * j + (r == 1 ? 2 : r == 2 ? 1 : r);
}

/* Q8_K-round x with the table's from_float (ggml's rounding) and lay the
 * blocks out as nuage_gemm_kblk. */
static void prep_k(const float *x, void *out, int64_t n) {
    const nuage_type_traits *q8 = nuage_type_get(NUAGE_TYPE_Q8_K);
    nuage_gemm_kblk *a = out;
    for (int64_t b = 0; b < n / QK; b++) {
        nuage_block_q8_K blk;
        q8->from_float(x + b * QK, &blk, QK);
        nuage_gemm_kblk o;
        memcpy(o.y, blk.qs, QK);
        for (int h = 0; h < 16; h++) o.bs[bs_pos(h)] = blk.bsums[h];
        for (int k = 0; k < 8; k++) o.bs32[k] = (int16_t)(blk.bsums[2 * k] + blk.bsums[2 * k + 1]);
        o.d = blk.d;
        memcpy(&a[b], &o, sizeof o);
    }
}

/* ---------------------------------------------------------- decoders */

typedef struct {
    uint8_t c[QK];
    int32_t s[16];
    int32_t e[16];
    float d, m;
    int group; /* values per s[]: 16 or 32 */
    int has_min;
} kform;

typedef void (*kdec_fn)(const void *blk, kform *o);

static void dec_q4_K(const void *vb, kform *o) {
    const nuage_block_q4_K *b = vb;
    uint64_t sc, mn;
    nuage__k4_scales(b->scales, &sc, &mn);
    o->d = nuage_fp16_to_fp32(b->d);
    o->m = nuage_fp16_to_fp32(b->dmin);
    o->group = 32;
    o->has_min = 1;
    for (int g = 0; g < 8; g++) {
        o->s[g] = (int32_t)((sc >> (8 * g)) & 0xff);
        o->e[2 * g] = o->e[2 * g + 1] = (int32_t)((mn >> (8 * g)) & 0xff);
    }
    /* value 64c + l (l < 32): low nibble of qs[32c + l]; 64c + 32 + l: high */
    for (int v = 0; v < QK; v++) {
        const int c = v / 64, hi = (v % 64) / 32, l = v % 32;
        o->c[v] = (uint8_t)((b->qs[32 * c + l] >> (4 * hi)) & 0xf);
    }
}

static void dec_q6_K(const void *vb, kform *o) {
    const nuage_block_q6_K *b = vb;
    o->d = nuage_fp16_to_fp32(b->d);
    o->m = 0;
    o->group = 16;
    o->has_min = 0;
    for (int g = 0; g < 16; g++) {
        o->s[g] = b->scales[g];
        o->e[g] = -32 * b->scales[g]; /* codes are q + 32 */
    }
    /* value 128h + 32k + l: nibble (k / 2) of ql[64h + 32(k % 2) + l],
     * high two bits at bit 2k of qh[32h + l] */
    for (int v = 0; v < QK; v++) {
        const int h = v / 128, k = (v % 128) / 32, l = v % 32;
        const int lo = (b->ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xf;
        const int hi = (b->qh[32 * h + l] >> (2 * k)) & 3;
        o->c[v] = (uint8_t)(lo | (hi << 4));
    }
}

static void dec_iq4_xs(const void *vb, kform *o) {
    const nuage_block_iq4_xs *b = vb;
    o->d = nuage_fp16_to_fp32(b->d);
    o->m = 0;
    o->group = 32;
    o->has_min = 0;
    for (int g = 0; g < 8; g++) {
        o->s[g] = nuage__iq4xs_scale(b, g) - 32;
        o->e[2 * g] = o->e[2 * g + 1] = -128 * o->s[g]; /* codes are grid + 128 */
    }
    /* value 32ib + j (j < 16): low nibble of qs[16ib + j]; + 16: high */
    for (int v = 0; v < QK; v++) {
        const int ib = v / 32, hi = (v % 32) / 16, j = v % 16;
        o->c[v] = (uint8_t)(nuage__k_iq4_grid[(b->qs[16 * ib + j] >> (4 * hi)) & 0xf] + 128);
    }
}

static void dec_q5_K(const void *vb, kform *o) {
    const nuage_block_q5_K *b = vb;
    dec_q4_K(vb, o); /* d, dmin and the scales sit where Q4_K has them */
    /* as Q4_K, plus bit (v / 32) of qh[v % 32] worth 16 */
    for (int v = 0; v < QK; v++) {
        const int c = v / 64, hi = (v % 64) / 32, l = v % 32;
        const int nib = (b->qs[32 * c + l] >> (4 * hi)) & 0xf;
        o->c[v] = (uint8_t)(nib + (((b->qh[l] >> (v / 32)) & 1) << 4));
    }
}

static void dec_q2_K(const void *vb, kform *o) {
    const nuage_block_q2_K *b = vb;
    o->d = nuage_fp16_to_fp32(b->d);
    o->m = nuage_fp16_to_fp32(b->dmin);
    o->group = 16;
    o->has_min = 1;
    for (int g = 0; g < 16; g++) {
        o->s[g] = b->scales[g] & 0xf;
        o->e[g] = b->scales[g] >> 4;
    }
    /* value 128h + 32j + l: bits 2j..2j+1 of qs[32h + l] */
    for (int v = 0; v < QK; v++) {
        const int h = v / 128, j = (v % 128) / 32, l = v % 32;
        o->c[v] = (uint8_t)((b->qs[32 * h + l] >> (2 * j)) & 3);
    }
}

static void dec_q3_K(const void *vb, kform *o) {
    const nuage_block_q3_K *b = vb;
    uint32_t w[4];
    uint8_t sc[16];
    nuage__k3_scale_words(b->scales, w);
    memcpy(sc, w, 16);
    o->d = nuage_fp16_to_fp32(b->d);
    o->m = 0;
    o->group = 16;
    o->has_min = 0;
    for (int g = 0; g < 16; g++) {
        o->s[g] = sc[g] - 32;
        o->e[g] = -4 * o->s[g]; /* codes are q + 4 */
    }
    /* value 128h + 32j + l: two low bits as Q2_K, and bit 4h + j of
     * hmask[l] worth 4 (a clear bit means q = low bits - 4) */
    for (int v = 0; v < QK; v++) {
        const int h = v / 128, j = (v % 128) / 32, l = v % 32;
        const int lo = (b->qs[32 * h + l] >> (2 * j)) & 3;
        const int hi = (b->hmask[l] >> (4 * h + j)) & 1;
        o->c[v] = (uint8_t)(lo + 4 * hi);
    }
}

/* ------------------------------------------------------------ the ref */

static void gemm_ref_impl(kdec_fn dec, size_t bsize, int n, float *y, size_t ys, const void *w,
                          size_t ws, int nw, const void *a, size_t as, int na) {
    const int nb = n / QK;
    kform f;
    for (int i = 0; i < nw; i++) {
        const char *wr = (const char *)w + (size_t)i * ws;
        for (int j = 0; j < na; j++) {
            const nuage_gemm_kblk *ar = (const nuage_gemm_kblk *)((const char *)a + (size_t)j * as);
            float acc = 0.0f;
            for (int b = 0; b < nb; b++) {
                dec(wr + (size_t)b * bsize, &f);
                int32_t icor = 0;
                for (int h = 0; h < 16; h++) icor += f.e[h] * ar[b].bs[bs_pos(h)];
                float fb = f.has_min ? 0.0f : (float)icor * f.d;
                for (int g = 0; g < QK / f.group; g++) {
                    int32_t dot = 0;
                    for (int v = g * f.group; v < (g + 1) * f.group; v++) dot += f.c[v] * ar[b].y[v];
                    fb = fmaf((float)dot, (float)f.s[g] * f.d, fb);
                }
                acc = fmaf(fb, ar[b].d, acc);
                if (f.has_min) acc = fmaf(-(float)icor, f.m * ar[b].d, acc);
            }
            y[(size_t)j * ys + i] = acc;
        }
    }
}

#define REF(name, blk)                                                                   \
    static void gemm_ref_##name(int n, float *y, size_t ys, const void *w, size_t ws,   \
                                int nw, const void *a, size_t as, int na) {             \
        gemm_ref_impl(dec_##name, sizeof(blk), n, y, ys, w, ws, nw, a, as, na);         \
    }
REF(q4_K, nuage_block_q4_K)
REF(q6_K, nuage_block_q6_K)
REF(iq4_xs, nuage_block_iq4_xs)
REF(q5_K, nuage_block_q5_K)
REF(q2_K, nuage_block_q2_K)
REF(q3_K, nuage_block_q3_K)

void nuage__gemm_k_register_ref(nuage_type_traits *t) {
    t[NUAGE_TYPE_Q4_K].gemm_ref = gemm_ref_q4_K;
    t[NUAGE_TYPE_Q4_K].gemm_prep = prep_k;
    t[NUAGE_TYPE_Q6_K].gemm_ref = gemm_ref_q6_K;
    t[NUAGE_TYPE_Q6_K].gemm_prep = prep_k;
    t[NUAGE_TYPE_IQ4_XS].gemm_ref = gemm_ref_iq4_xs;
    t[NUAGE_TYPE_IQ4_XS].gemm_prep = prep_k;
    t[NUAGE_TYPE_Q5_K].gemm_ref = gemm_ref_q5_K;
    t[NUAGE_TYPE_Q5_K].gemm_prep = prep_k;
    t[NUAGE_TYPE_Q2_K].gemm_ref = gemm_ref_q2_K;
    t[NUAGE_TYPE_Q2_K].gemm_prep = prep_k;
    t[NUAGE_TYPE_Q3_K].gemm_ref = gemm_ref_q3_K;
    t[NUAGE_TYPE_Q3_K].gemm_prep = prep_k;
}
