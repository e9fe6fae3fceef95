/*
 * quant_k_avx2.c - K-quant x Q8_K dot products with AVX2 (+FMA, F16C).
 *
 * All kernels follow one pattern. A weight sub-block is unpacked to
 * unsigned bytes (the codes biased to be >= 0: Q3_K's -4..3 as 0..7,
 * Q6_K's -32..31 as 0..63), multiplied with the signed Q8_K bytes by
 * vpmaddubsw (pairs, 16-bit, never saturating for these ranges), then
 * vpmaddwd multiplies the 16-bit pairs by the sub-block's integer scale and
 * widens to 32 bits. The integer sum of a block is thus exact; the bias
 * (and the affine types' mins) comes back through the Q8_K 16-value sums
 * ("bsums"): sum(scale * (u - bias) * a) = sum(scale * u * a)
 * - bias * sum(scale * bsum). One float FMA per block applies d * d_a.
 *
 * vpmaddubsw needs an unsigned operand; IQ4_XS's signed grid uses the usual
 * sign trick (|w| times a with w's sign).
 *
 * The tile kernels (Q4_K, Q6_K) unpack each weight block once and use it
 * for up to NUAGE_TILE_MAX activation rows; the row loops are specialised
 * for the row count so their accumulators stay in registers.
 */
#include <immintrin.h>

#include "engine/quant_k.h"

#define QK NUAGE__QK
#define NUAGE__INLINE static inline __attribute__((always_inline))

NUAGE__INLINE float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

NUAGE__INLINE float h2f(nuage_fp16 h) { return _cvtsh_ss(h); }

NUAGE__INLINE __m256i loadu(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Control for vpshufb on a 128-bit vector of 16 int8 scales: bytes 0-7
 * take scale a, bytes 8-15 scale b (then widened to 16 lanes of int16). */
NUAGE__INLINE __m128i pick2(int a, int b) {
    return _mm_set_epi64x(0x0101010101010101LL * b, 0x0101010101010101LL * a);
}

/* 16 int16 lanes: the first 8 hold scale a, the last 8 scale b (signed). */
NUAGE__INLINE __m256i scales_ab_i8(__m128i sc8, __m128i ctl) {
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, ctl));
}

/* ---- Q2_K ---------------------------------------------------------------- */

void nuage__vec_dot_q2_K_avx2(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q2_K *w = vw;
    const nuage_block_q8_K *a = va;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xf);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int i = 0; i < n / QK; i++) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)w[i].scales);
        const __m128i sc8 = _mm_and_si128(raw, m4);
        const __m128i mn8 = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
        const __m256i pm = _mm256_madd_epi16(loadu(a[i].bsums), _mm256_cvtepu8_epi16(mn8));
        const int8_t *y = a[i].qs;
        __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i q = loadu(w[i].qs + 32 * h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
                __m256i p = _mm256_maddubs_epi16(v, loadu(y + 128 * h + 32 * j));
                const int g = 8 * h + 2 * j;
                p = _mm256_madd_epi16(p, scales_ab_i8(sc8, pick2(g, g + 1)));
                isum = _mm256_add_epi32(isum, p);
            }
        }
        const float dy = a[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(w[i].d) * dy), acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_set1_ps(h2f(w[i].dmin) * dy), accm);
    }
    *s = hsum8(acc) - hsum8(accm);
}

/* ---- Q3_K ---------------------------------------------------------------- */

void nuage__vec_dot_q3_K_avx2(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q3_K *w = vw;
    const nuage_block_q8_K *a = va;
    const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK; i++) {
        uint32_t r[4];
        nuage__k3_scale_words(w[i].scales, r);
        const __m128i sc8 = _mm_sub_epi8(_mm_set_epi32((int)r[3], (int)r[2], (int)r[1], (int)r[0]),
                                         _mm_set1_epi8(32));
        /* codes are stored +4: subtract 4 * sum(scale * bsum) */
        const __m256i pm = _mm256_madd_epi16(loadu(a[i].bsums), _mm256_cvtepi8_epi16(sc8));
        __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(pm, 2));
        const __m256i hm = loadu(w[i].hmask);
        const int8_t *y = a[i].qs;
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i q = loadu(w[i].qs + 32 * h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), m1);
                const __m256i v = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                __m256i p = _mm256_maddubs_epi16(v, loadu(y + 128 * h + 32 * j));
                const int g = 8 * h + 2 * j;
                p = _mm256_madd_epi16(p, scales_ab_i8(sc8, pick2(g, g + 1)));
                isum = _mm256_add_epi32(isum, p);
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc);
    }
    *s = hsum8(acc);
}

/* ---- Q4_K ---------------------------------------------------------------- */

/* Sub-blocks 2c and 2c+1 of one Q4_K block against NA activation rows. */
NUAGE__INLINE void q4k_chunk(const uint8_t *qs, __m128i sc8, int c, const uint8_t *a,
                             size_t a_stride, int i, const int NA, __m256i *isum) {
    const __m256i m4 = _mm256_set1_epi8(0xf);
    const __m256i q = loadu(qs + 32 * c);
    const __m256i lo = _mm256_and_si256(q, m4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    /* scales are unsigned 6-bit: zero-extend */
    const __m256i s0 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sc8, pick2(2 * c, 2 * c)));
    const __m256i s1 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sc8, pick2(2 * c + 1, 2 * c + 1)));
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) {
        const int8_t *y = ((const nuage_block_q8_K *)(a + j * a_stride) + i)->qs + 64 * c;
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, loadu(y)), s0);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, loadu(y + 32)), s1);
        isum[j] = _mm256_add_epi32(isum[j], _mm256_add_epi32(p0, p1));
    }
}

/* out[j] = dot(w row, activation row j) for j < NA; NA is a constant at
 * every call site, so the accumulators are registers. */
NUAGE__INLINE void q4k_rows(int nb, const nuage_block_q4_K *w, const uint8_t *a, size_t a_stride,
                            const int NA, float *out) {
    __m256 acc[NUAGE_TILE_MAX], accm[NUAGE_TILE_MAX];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) acc[j] = accm[j] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        uint64_t sc, mn;
        nuage__k4_scales(w[i].scales, &sc, &mn);
        const __m128i sc8 = _mm_cvtsi64_si128((long long)sc);
        const __m128i mn8 = _mm_cvtsi64_si128((long long)mn);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));
        const float d = h2f(w[i].d), dmin = h2f(w[i].dmin);
        __m256i isum[NUAGE_TILE_MAX];
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const nuage_block_q8_K *y = (const nuage_block_q8_K *)(a + j * a_stride) + i;
            const __m256i pm = _mm256_madd_epi16(loadu(y->bsums), mn16);
            accm[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_set1_ps(dmin * y->d), accm[j]);
            isum[j] = _mm256_setzero_si256();
        }
        /* fully unrolled for one row (vec_dot); for tiles the rolled loop
         * keeps the unrolled row loop within the 16 ymm registers */
        if (NA == 1) {
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) q4k_chunk(w[i].qs, sc8, c, a, a_stride, i, NA, isum);
        } else {
            for (int c = 0; c < 4; c++) q4k_chunk(w[i].qs, sc8, c, a, a_stride, i, NA, isum);
        }
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const float dy = ((const nuage_block_q8_K *)(a + j * a_stride) + i)->d;
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(d * dy), acc[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) out[j] = hsum8(acc[j]) - hsum8(accm[j]);
}

void nuage__vec_dot_q4_K_avx2(int n, float *s, const void *w, const void *a) {
    q4k_rows(n / QK, w, a, 0, 1, s);
}

/* ---- Q5_K ---------------------------------------------------------------- */

void nuage__vec_dot_q5_K_avx2(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q5_K *w = vw;
    const nuage_block_q8_K *a = va;
    const __m256i m4 = _mm256_set1_epi8(0xf), m1 = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int i = 0; i < n / QK; i++) {
        uint64_t sc, mn;
        nuage__k4_scales(w[i].scales, &sc, &mn);
        const __m128i sc8 = _mm_cvtsi64_si128((long long)sc);
        const __m128i mn8 = _mm_cvtsi64_si128((long long)mn);
        const __m256i pm =
            _mm256_madd_epi16(loadu(a[i].bsums), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8)));
        const __m256i qh = loadu(w[i].qh);
        const int8_t *y = a[i].qs;
        __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256i q = loadu(w[i].qs + 32 * c);
            const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), m1);
            const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), m1);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_slli_epi16(h0, 4));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                               _mm256_slli_epi16(h1, 4));
            const __m256i s0 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sc8, pick2(2 * c, 2 * c)));
            const __m256i s1 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sc8, pick2(2 * c + 1, 2 * c + 1)));
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, loadu(y + 64 * c)), s0);
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, loadu(y + 64 * c + 32)), s1);
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));
        }
        const float dy = a[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(w[i].d) * dy), acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_set1_ps(h2f(w[i].dmin) * dy), accm);
    }
    *s = hsum8(acc) - hsum8(accm);
}

/* ---- Q6_K ---------------------------------------------------------------- */

NUAGE__INLINE void q6k_rows(int nb, const nuage_block_q6_K *w, const uint8_t *a, size_t a_stride,
                            const int NA, float *out) {
    const __m256i m4 = _mm256_set1_epi8(0xf), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[NUAGE_TILE_MAX];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) acc[j] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)w[i].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        const float d = h2f(w[i].d);
        __m256i isum[NUAGE_TILE_MAX];
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            /* codes are stored +32: subtract 32 * sum(scale * bsum) */
            const nuage_block_q8_K *y = (const nuage_block_q8_K *)(a + j * a_stride) + i;
            const __m256i pm = _mm256_madd_epi16(loadu(y->bsums), sc16);
            isum[j] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(pm, 5));
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = loadu(w[i].ql + 64 * h), l1 = loadu(w[i].ql + 64 * h + 32);
            const __m256i qh = loadu(w[i].qh + 32 * h);
            __m256i v[4];
            v[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            v[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, m30));
            v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const int g = 8 * h + 2 * k;
                const __m256i sk = scales_ab_i8(sc8, pick2(g, g + 1));
#pragma GCC unroll 4
                for (int j = 0; j < NA; j++) {
                    const int8_t *y = ((const nuage_block_q8_K *)(a + j * a_stride) + i)->qs;
                    const __m256i p = _mm256_maddubs_epi16(v[k], loadu(y + 128 * h + 32 * k));
                    isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(p, sk));
                }
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const float dy = ((const nuage_block_q8_K *)(a + j * a_stride) + i)->d;
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(d * dy), acc[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) out[j] = hsum8(acc[j]);
}

void nuage__vec_dot_q6_K_avx2(int n, float *s, const void *w, const void *a) {
    q6k_rows(n / QK, w, a, 0, 1, s);
}

/* ---- tiles ---------------------------------------------------------------- */

#define NUAGE__TILE(name, blk_t, rows)                                                      \
    void nuage__tile_##name##_avx2(int n, float *s, size_t s_stride, const void *w,         \
                                   size_t w_stride, int nw, const void *a, size_t a_stride,  \
                                   int na) {                                                 \
        float out[NUAGE_TILE_MAX];                                                           \
        for (int i = 0; i < nw; i++) {                                                       \
            const blk_t *wi = (const blk_t *)((const uint8_t *)w + (size_t)i * w_stride);   \
            switch (na) {                                                                    \
            case 1: rows(n / QK, wi, a, a_stride, 1, out); break;                            \
            case 2: rows(n / QK, wi, a, a_stride, 2, out); break;                            \
            case 3: rows(n / QK, wi, a, a_stride, 3, out); break;                            \
            default: rows(n / QK, wi, a, a_stride, 4, out); break;                           \
            }                                                                                \
            for (int j = 0; j < na; j++) s[(size_t)j * s_stride + i] = out[j];              \
        }                                                                                    \
    }

NUAGE__TILE(q4_K, nuage_block_q4_K, q4k_rows)
NUAGE__TILE(q6_K, nuage_block_q6_K, q6k_rows)

/* ---- Q8_K (as weights) --------------------------------------------------- */

void nuage__vec_dot_q8_K_avx2(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q8_K *w = vw;
    const nuage_block_q8_K *a = va;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK; i++) {
        __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int k = 0; k < QK; k += 32) {
            const __m256i x = loadu(w[i].qs + k), y = loadu(a[i].qs + k);
            /* |x| * (y with x's sign); |x| <= 128, |y| <= 127: no saturation */
            const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, ones));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(w[i].d * a[i].d), acc);
    }
    *s = hsum8(acc);
}

/* ---- IQ4_XS --------------------------------------------------------------- */

void nuage__vec_dot_iq4_xs_avx2(int n, float *s, const void *vw, const void *va) {
    const nuage_block_iq4_xs *w = vw;
    const nuage_block_q8_K *a = va;
    const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)nuage__k_iq4_grid));
    const __m128i m4 = _mm_set1_epi8(0xf);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK; i++) {
        const __m128i sc8 =
            _mm_sub_epi8(_mm_cvtsi64_si128((long long)nuage__iq4xs_scales8(&w[i])), _mm_set1_epi8(32));
        __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int ib = 0; ib < 8; ib++) {
            const __m128i q = _mm_loadu_si128((const __m128i *)(w[i].qs + 16 * ib));
            const __m256i nib = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
            const __m256i v = _mm256_shuffle_epi8(grid, nib);
            const __m256i y = loadu(a[i].qs + 32 * ib);
            const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(y, v));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scales_ab_i8(sc8, pick2(ib, ib))));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc);
    }
    *s = hsum8(acc);
}

/* ---- Q8_K activation quantizer --------------------------------------------- */

/* Same results as the scalar quantizer, bit for bit: the largest magnitude
 * and the first value reaching it give the signed max; the products
 * iscale * x are the same IEEE multiplies and vroundps rounds half to even
 * like the scalar magic-number rounding; vpackssdw/vpacksswb saturate at 127
 * exactly where the scalar code clamps. */
void nuage__quantize_q8_K_avx2(const float *x, void *vy, int64_t n) {
    nuage_block_q8_K *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        __m256 vmax = _mm256_setzero_ps();
#pragma GCC unroll 8
        for (int k = 0; k < QK; k += 8) vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        if (!(amax > 0)) { /* zero (or NaN) block, as the scalar code */
            y[i].d = 0;
            memset(y[i].qs, 0, sizeof y[i].qs);
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            continue;
        }
        const __m256 vam = _mm256_set1_ps(amax);
        float max = 0;
        for (int k = 0; k < QK; k += 8) {
            const __m256 ax = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k));
            const int msk = _mm256_movemask_ps(_mm256_cmp_ps(ax, vam, _CMP_EQ_OQ));
            if (msk) {
                max = x[k + __builtin_ctz((unsigned)msk)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
#pragma GCC unroll 8
        for (int k = 0; k < QK; k += 32) {
            __m256i v[4];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const __m256 p = _mm256_mul_ps(vs, _mm256_loadu_ps(x + k + 8 * t));
                v[t] = _mm256_cvtps_epi32(_mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            }
            const __m256i p01 = _mm256_packs_epi32(v[0], v[1]), p23 = _mm256_packs_epi32(v[2], v[3]);
            const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), perm);
            _mm256_storeu_si256((__m256i *)(y[i].qs + k), b);
            /* sums of 16: pairs, then quads; lanes 0-3 / 4-7 cover bytes 0-15 / 16-31 */
            const __m256i q4 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, b), ones16);
            const __m256i h = _mm256_hadd_epi32(q4, q4);
            const __m256i h2 = _mm256_hadd_epi32(h, h);
            y[i].bsums[k / 16] = (int16_t)_mm256_extract_epi32(h2, 0);
            y[i].bsums[k / 16 + 1] = (int16_t)_mm256_extract_epi32(h2, 4);
        }
        y[i].d = 1 / iscale;
    }
}
