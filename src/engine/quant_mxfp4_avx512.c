/*
 * quant_mxfp4_avx512.c - AVX-512 VNNI rows-in-lanes product for MXFP4
 * weights (design: gemm.h; the format: quant_mxfp4.h).
 *
 * The same scheme as gemm_avx512.c's IQ4_NL kernel, with the MXFP4 block
 * (17 bytes: exponent, 16 bytes of nibbles) and its scale:
 *
 *   per group of 16 weight rows (lane r = row r0 + r; a short last group
 *   repeats its last row and drops those lanes at the store):
 *     for each block: the 16 rows' 16 packed bytes are transposed as four
 *       dwords per row (lane order), split into low / high nibbles (values
 *       4g..4g+3 and 16+4g..16+4g+3 of dword g) and mapped through the
 *       level table, offset to unsigned codes c = kvalues[q] + 12, with
 *       vpshufb: 8 vectors, lane r = row r's codes of one group of four;
 *       the 16 exponent bytes become 2^(e - 128) as float bits;
 *     per token: isum = corr + sum_g vpdpbusd(codes_g, broadcast(y[4g..]))
 *       (exact: corr = -12 sum(y)), then acc = fma(float(isum), sw * dy, acc)
 *
 * Decode (one token) uses each block as soon as it is built; batches build
 * a panel of up to KB blocks once and run it over up to TT tokens, four at
 * a time. Each output's arithmetic is gemm_ref's (quant_mxfp4.c) whatever
 * the path, the row count or the batch: bit-identical results.
 *
 * The next group's rows are one contiguous span (rows are adjacent in the
 * tensor); each block step prefetches 16 blocks' worth of it into L2, as
 * the other gemm kernels do, because 16 rows read side by side defeat the
 * hardware prefetchers.
 */
#include <immintrin.h>
#include <string.h>

#include "engine/gemm.h"
#include "engine/quant_mxfp4.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define QK 32
#define BS NUAGE_MXFP4_BLOCK
#define KB 32 /* blocks per panel: 16 KiB of codes, stays in L1 */
#define TT 64 /* tokens per accumulator slab */

/* 2^(e - 128) of 16 exponent bytes, bit-exactly as nuage__e8m0_half. */
ALWAYS_INLINE __m512 e8m0_half16(__m128i e8) {
    const __m512i e = _mm512_cvtepu8_epi32(e8);
    const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    const __m512i sub = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
    const __mmask16 small = _mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2));
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(small, normal, sub));
}

/* One block of the 16 rows rp[] at byte offset off: 8 code vectors into o,
 * the 16 scales returned. */
ALWAYS_INLINE __m512 build_block(const char *const rp[16], size_t off, const char *next, __m512i *o) {
    for (size_t p = 0; p < 16 * BS; p += 64) _mm_prefetch(next + off * 16 + p, _MM_HINT_T1);
    __m512i z[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rp[q] + off + 1)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rp[q + 4] + off + 1)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rp[q + 8] + off + 1)), 2);
        z[q] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rp[q + 12] + off + 1)), 3);
    }
    /* 4x4 dword transpose in each 128-bit lane: p[g] lane 4L + m = row
     * 4L + m's dword g */
    const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]);
    const __m512i t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]);
    const __m512i t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    __m512i p[4];
    p[0] = _mm512_unpacklo_epi64(t0, t2);
    p[1] = _mm512_unpackhi_epi64(t0, t2);
    p[2] = _mm512_unpacklo_epi64(t1, t3);
    p[3] = _mm512_unpackhi_epi64(t1, t3);
    const __m512i m = _mm512_set1_epi8(15);
    const __m512i tab = _mm512_broadcast_i32x4(_mm_add_epi8(
        _mm_loadu_si128((const __m128i *)nuage__mxfp4_values), _mm_set1_epi8(NUAGE_GEMM_O_MXFP4)));
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        o[g] = _mm512_shuffle_epi8(tab, _mm512_and_si512(p[g], m));
        o[g + 4] = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(p[g], 4), m));
    }
    _Alignas(16) uint8_t e[16];
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++) e[l] = (uint8_t)rp[l][off];
    return e8m0_half16(_mm_load_si128((const __m128i *)e));
}

ALWAYS_INLINE __m512i bcast32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* f = fma(float(corr + sum_g codes_g . y_g), sw * dy, f) for one token's
 * block: gemm_ref's step. */
ALWAYS_INLINE __m512 block_fma(const __m512i *W, __m512 sw, const nuage_gemm_ablk *x, __m512 f) {
    __m512i i0 = _mm512_set1_epi32(x->corr), i1 = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int g = 0; g < 8; g += 2) {
        i0 = _mm512_dpbusd_epi32(i0, W[g], bcast32(x->y + 4 * g));
        i1 = _mm512_dpbusd_epi32(i1, W[g + 1], bcast32(x->y + 4 * g + 4));
    }
    const __m512 s = _mm512_mul_ps(sw, _mm512_set1_ps(x->d));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(i0, i1)), s, f);
}

/* J tokens (rows a, a + as, ...) over a panel of kb blocks starting at
 * block b0; acc (J, 16) floats, read and written back. */
ALWAYS_INLINE void kern(const __m512i *pw, const __m512 *ps, int kb, const char *a, size_t as,
                        int b0, float *acc, const int J) {
    const nuage_gemm_ablk *ab[4];
    __m512 f[4];
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) {
        ab[j] = (const nuage_gemm_ablk *)(a + (size_t)j * as) + b0;
        f[j] = _mm512_load_ps(acc + 16 * j);
    }
    for (int b = 0; b < kb; b++) {
        const __m512 sw = _mm512_load_ps((const float *)(ps + b));
#pragma GCC unroll 4
        for (int j = 0; j < J; j++) f[j] = block_fma(pw + 8 * b, sw, ab[j] + b, f[j]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) _mm512_store_ps(acc + 16 * j, f[j]);
}

#define KERN(J)                                                                                \
    static void kern_##J(const __m512i *pw, const __m512 *ps, int kb, const char *a, size_t as, \
                         int b0, float *acc) {                                                 \
        kern(pw, ps, kb, a, as, b0, acc, J);                                                   \
    }
KERN(1)
KERN(2)
KERN(3)
KERN(4)

static void gemm_mxfp4(int n, float *y, size_t ys, const void *w, size_t ws, int nw, const void *a,
                       size_t as, int na) {
    typedef void (*kern_fn)(const __m512i *, const __m512 *, int, const char *, size_t, int, float *);
    static const kern_fn kf[5] = {NULL, kern_1, kern_2, kern_3, kern_4};
    const int nb = n / QK;
    _Alignas(64) __m512i pw[KB * 8];
    _Alignas(64) __m512 ps[KB];
    _Alignas(64) float acc[TT * 16];
    for (int r0 = 0; r0 < nw; r0 += 16) {
        const int nr = nw - r0 < 16 ? nw - r0 : 16;
        const char *rp[16];
        for (int l = 0; l < 16; l++) rp[l] = (const char *)w + (size_t)(r0 + (l < nr ? l : nr - 1)) * ws;
        const __mmask16 keep = (__mmask16)((1u << nr) - 1);
        const char *next = (const char *)w + (size_t)(r0 + 16) * ws;
        if (na == 1) {
            const nuage_gemm_ablk *ab = a;
            __m512 f = _mm512_setzero_ps();
            for (int b = 0; b < nb; b++) {
                __m512i W[8];
                const __m512 sw = build_block(rp, (size_t)b * BS, next, W);
                f = block_fma(W, sw, ab + b, f);
            }
            _mm512_mask_storeu_ps(y + r0, keep, f);
            continue;
        }
        for (int t0 = 0; t0 < na; t0 += TT) {
            const int tn = na - t0 < TT ? na - t0 : TT;
            memset(acc, 0, sizeof(float) * 16 * (size_t)tn);
            const char *at = (const char *)a + (size_t)t0 * as;
            for (int b0 = 0; b0 < nb; b0 += KB) {
                const int kb = nb - b0 < KB ? nb - b0 : KB;
                for (int b = 0; b < kb; b++)
                    ps[b] = build_block(rp, (size_t)(b0 + b) * BS, next, pw + 8 * b);
                int t = 0;
                for (; t + 4 <= tn; t += 4) kf[4](pw, ps, kb, at + (size_t)t * as, as, b0, acc + 16 * t);
                if (t < tn) kf[tn - t](pw, ps, kb, at + (size_t)t * as, as, b0, acc + 16 * t);
            }
            for (int t = 0; t < tn; t++)
                _mm512_mask_storeu_ps(y + (size_t)(t0 + t) * ys + r0, keep, _mm512_load_ps(acc + 16 * t));
        }
    }
}

void nuage__mxfp4_register_avx512(nuage_type_traits *t) { t[NUAGE_TYPE_MXFP4].gemm = gemm_mxfp4; }
