/*
 * quant_mxfp4_avx2.c - AVX2 rows-in-lanes product for MXFP4 weights
 * (design: gemm.h; the format: quant_mxfp4.h).
 *
 * quant_mxfp4_avx512.c's scheme with 8 weight rows in the lanes of a ymm
 * and no VNNI:
 *
 *   per group of 8 rows (a short last group repeats its last row):
 *     for each block: the 8 rows' 16 packed bytes, loaded as [row q |
 *       row q + 4], are transposed as dwords inside each 128-bit lane (lane
 *       r = row r), split into low and high nibbles and mapped through the
 *       level table to unsigned codes c = kvalues[q] + 12 (0..24) with
 *       vpshufb: 8 vectors of 4 codes per row; the 8 exponent bytes become
 *       2^(e - 128) as float bits;
 *     per token: vpmaddubsw(codes_g, broadcast(y[4g..4g+3])) gives pairs of
 *       products as int16; four groups are added in int16 (each lane at
 *       most 4 * 2 * 24 * 128 = 24576, so nothing saturates or wraps),
 *       vpmaddwd by 1 widens to the dword sums, and corr = -12 sum(y)
 *       restores the signed levels: isum exact; then
 *       acc = fma(float(isum), sw * dy, acc).
 *
 * (vec_dot, the row-major dot with a Q8_0 row that matmul does not use
 * once gemm is set, is here too, for direct callers.)
 *
 * Each output's arithmetic is gemm_ref's (quant_mxfp4.c), so the results
 * are bit-identical to the reference and to the AVX-512 kernel at every
 * batch size. Decode uses each block as it is built; batches build a
 * panel of up to KB blocks once for up to TT tokens.
 */
#include <immintrin.h>
#include <string.h>

#include "engine/gemm.h"
#include "engine/quant_mxfp4.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define QK 32
#define BS NUAGE_MXFP4_BLOCK
#define KB 32 /* blocks per panel: 8 KiB of codes */
#define TT 64 /* tokens per accumulator slab */

/* 2^(e - 128) of 8 exponent bytes, bit-exactly as nuage__e8m0_half. */
ALWAYS_INLINE __m256 e8m0_half8(__m128i e8) {
    const __m256i e = _mm256_cvtepu8_epi32(e8);
    const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
    const __m256i sub = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);
    const __m256i small = _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e);
    return _mm256_castsi256_ps(_mm256_blendv_epi8(normal, sub, small));
}

/* One block of the 8 rows rp[] at byte offset off: 8 code vectors into o,
 * the 8 scales returned. */
ALWAYS_INLINE __m256 build_block(const char *const rp[8], size_t off, const char *next, __m256i *o) {
    for (size_t p = 0; p < 8 * BS; p += 64) _mm_prefetch(next + off * 8 + p, _MM_HINT_T1);
    __m256i z[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++)
        z[q] = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(rp[q] + off + 1))),
            _mm_loadu_si128((const __m128i *)(rp[q + 4] + off + 1)), 1);
    const __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]);
    const __m256i t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]);
    const __m256i t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    __m256i p[4];
    p[0] = _mm256_unpacklo_epi64(t0, t2);
    p[1] = _mm256_unpackhi_epi64(t0, t2);
    p[2] = _mm256_unpacklo_epi64(t1, t3);
    p[3] = _mm256_unpackhi_epi64(t1, t3);
    const __m256i m = _mm256_set1_epi8(15);
    const __m256i tab = _mm256_broadcastsi128_si256(_mm_add_epi8(
        _mm_loadu_si128((const __m128i *)nuage__mxfp4_values), _mm_set1_epi8(NUAGE_GEMM_O_MXFP4)));
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        o[g] = _mm256_shuffle_epi8(tab, _mm256_and_si256(p[g], m));
        o[g + 4] = _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(p[g], 4), m));
    }
    uint64_t e = 0;
#pragma GCC unroll 8
    for (int l = 0; l < 8; l++) e |= (uint64_t)(uint8_t)rp[l][off] << (8 * l);
    return e8m0_half8(_mm_cvtsi64_si128((long long)e));
}

ALWAYS_INLINE __m256i bcast32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* f = fma(float(corr + sum_g codes_g . y_g), sw * dy, f): gemm_ref's step
 * for one token's block. */
ALWAYS_INLINE __m256 block_fma(const __m256i *W, __m256 sw, const nuage_gemm_ablk *x, __m256 f) {
    __m256i h[2];
#pragma GCC unroll 2
    for (int k = 0; k < 2; k++) {
        const __m256i a0 = _mm256_maddubs_epi16(W[4 * k + 0], bcast32(x->y + 16 * k + 0));
        const __m256i a1 = _mm256_maddubs_epi16(W[4 * k + 1], bcast32(x->y + 16 * k + 4));
        const __m256i a2 = _mm256_maddubs_epi16(W[4 * k + 2], bcast32(x->y + 16 * k + 8));
        const __m256i a3 = _mm256_maddubs_epi16(W[4 * k + 3], bcast32(x->y + 16 * k + 12));
        h[k] = _mm256_add_epi16(_mm256_add_epi16(a0, a1), _mm256_add_epi16(a2, a3));
    }
    const __m256i one = _mm256_set1_epi16(1);
    const __m256i isum = _mm256_add_epi32(
        _mm256_set1_epi32(x->corr),
        _mm256_add_epi32(_mm256_madd_epi16(h[0], one), _mm256_madd_epi16(h[1], one)));
    const __m256 s = _mm256_mul_ps(sw, _mm256_set1_ps(x->d));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), s, f);
}

/* J tokens over a panel of kb blocks from block b0; acc (J, 8) floats. */
ALWAYS_INLINE void kern(const __m256i *pw, const __m256 *ps, int kb, const char *a, size_t as,
                        int b0, float *acc, const int J) {
    const nuage_gemm_ablk *ab[4];
    __m256 f[4];
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) {
        ab[j] = (const nuage_gemm_ablk *)(a + (size_t)j * as) + b0;
        f[j] = _mm256_load_ps(acc + 8 * j);
    }
    for (int b = 0; b < kb; b++) {
        const __m256 sw = _mm256_load_ps((const float *)(ps + b));
#pragma GCC unroll 4
        for (int j = 0; j < J; j++) f[j] = block_fma(pw + 8 * b, sw, ab[j] + b, f[j]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) _mm256_store_ps(acc + 8 * j, f[j]);
}

#define KERN(J)                                                                                \
    static void kern_##J(const __m256i *pw, const __m256 *ps, int kb, const char *a, size_t as, \
                         int b0, float *acc) {                                                 \
        kern(pw, ps, kb, a, as, b0, acc, J);                                                   \
    }
KERN(1)
KERN(2)
KERN(3)
KERN(4)

/* Store the first nr of 8 lanes. */
ALWAYS_INLINE void store_rows(float *y, __m256 v, int nr) {
    if (nr == 8) {
        _mm256_storeu_ps(y, v);
        return;
    }
    _Alignas(32) float t[8];
    _mm256_store_ps(t, v);
    memcpy(y, t, sizeof(float) * (size_t)nr);
}

static void gemm_mxfp4(int n, float *y, size_t ys, const void *w, size_t ws, int nw, const void *a,
                       size_t as, int na) {
    typedef void (*kern_fn)(const __m256i *, const __m256 *, int, const char *, size_t, int, float *);
    static const kern_fn kf[5] = {NULL, kern_1, kern_2, kern_3, kern_4};
    const int nb = n / QK;
    _Alignas(32) __m256i pw[KB * 8];
    _Alignas(32) __m256 ps[KB];
    _Alignas(32) float acc[TT * 8];
    for (int r0 = 0; r0 < nw; r0 += 8) {
        const int nr = nw - r0 < 8 ? nw - r0 : 8;
        const char *rp[8];
        for (int l = 0; l < 8; l++) rp[l] = (const char *)w + (size_t)(r0 + (l < nr ? l : nr - 1)) * ws;
        const char *next = (const char *)w + (size_t)(r0 + 8) * ws;
        if (na == 1) {
            const nuage_gemm_ablk *ab = a;
            __m256 f = _mm256_setzero_ps();
            for (int b = 0; b < nb; b++) {
                __m256i W[8];
                const __m256 sw = build_block(rp, (size_t)b * BS, next, W);
                f = block_fma(W, sw, ab + b, f);
            }
            store_rows(y + r0, f, nr);
            continue;
        }
        for (int t0 = 0; t0 < na; t0 += TT) {
            const int tn = na - t0 < TT ? na - t0 : TT;
            memset(acc, 0, sizeof(float) * 8 * (size_t)tn);
            const char *at = (const char *)a + (size_t)t0 * as;
            for (int b0 = 0; b0 < nb; b0 += KB) {
                const int kb = nb - b0 < KB ? nb - b0 : KB;
                for (int b = 0; b < kb; b++)
                    ps[b] = build_block(rp, (size_t)(b0 + b) * BS, next, pw + 8 * b);
                int t = 0;
                for (; t + 4 <= tn; t += 4) kf[4](pw, ps, kb, at + (size_t)t * as, as, b0, acc + 8 * t);
                if (t < tn) kf[tn - t](pw, ps, kb, at + (size_t)t * as, as, b0, acc + 8 * t);
            }
            for (int t = 0; t < tn; t++)
                store_rows(y + (size_t)(t0 + t) * ys + r0, _mm256_load_ps(acc + 8 * t), nr);
        }
    }
}

/* Row-major dot with a Q8_0 row (vec_dot; matmul uses gemm, this is for
 * direct callers): the signed levels via vpshufb, then the sign trick
 * |w| * (y with w's sign) in vpmaddubsw (pairs at most 2 * 12 * 128),
 * dword sums scaled by dw * dy into 8 float lanes, summed at the end. */
static void vec_dot_mxfp4(int n, float *s, const void *vw, const void *va) {
    const uint8_t *x = vw;
    const nuage_block_q8_0 *y = va;
    const __m128i tab = _mm_loadu_si128((const __m128i *)nuage__mxfp4_values);
    const __m128i m = _mm_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < n / QK; b++) {
        const uint8_t *blk = x + (size_t)b * BS;
        const __m128i q = _mm_loadu_si128((const __m128i *)(blk + 1));
        const __m256i w = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_shuffle_epi8(tab, _mm_and_si128(q, m))),
            _mm_shuffle_epi8(tab, _mm_and_si128(_mm_srli_epi16(q, 4), m)), 1);
        const __m256i a = _mm256_loadu_si256((const __m256i *)y[b].qs);
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
        const __m256i i32 = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
        const float d = nuage__e8m0_half(blk[0]) * _cvtsh_ss(y[b].d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32), _mm256_set1_ps(d), acc);
    }
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    *s = _mm_cvtss_f32(r);
}

void nuage__mxfp4_register_avx2(nuage_type_traits *t) {
    t[NUAGE_TYPE_MXFP4].gemm = gemm_mxfp4;
    t[NUAGE_TYPE_MXFP4].vec_dot = vec_dot_mxfp4;
}
