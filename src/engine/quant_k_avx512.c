/*
 * quant_k_avx512.c - K-quant x Q8_K dot products with AVX-512 BW/VL + VNNI.
 *
 * Same arithmetic as the AVX2 kernels (see quant_k_avx2.c): unsigned weight
 * codes times signed Q8_K bytes with vpmaddubsw, then the integer scales
 * applied by VNNI's vpdpwssd, which multiplies 16-bit pairs and accumulates
 * into 32-bit lanes in one instruction. A 512-bit register holds 64 values,
 * two sub-blocks of 32 (or four groups of 16); the per-lane scale vector is
 * built once per block with vpermw from the block's scales.
 *
 * Layout tricks that keep work off the shuffle port:
 *  - Q4_K/Q5_K: 64 bytes of nibbles give sub-blocks (0|2) from the low
 *    nibbles and (1|3) from the high ones; the matching activations are
 *    two 256-bit loads joined by vinserti64x4 from memory.
 *  - Q2_K/Q3_K/Q6_K: 32 bytes of packed bits are broadcast to both halves
 *    and the upper half shifted two more bits with a masked shift, so one
 *    register covers two consecutive 32-value pieces.
 *  - high bits (Q3_K hmask, Q5_K qh) become opmasks with vptestmb and are
 *    added with a masked byte add.
 * The tile kernels (every type here but Q8_K) unpack a weight block once
 * and reuse it for up to NUAGE_TILE_MAX activation rows; vec_dot is the
 * same code with one row, so both give the same bits.
 */
#include <immintrin.h>

#include "engine/quant_k.h"

#define QK NUAGE__QK
#define NUAGE__INLINE static inline __attribute__((always_inline))
#define UPPER_HALF_W 0xFFFF0000u /* the 16 upper 16-bit lanes of a zmm */

NUAGE__INLINE float h2f(nuage_fp16 h) { return _cvtsh_ss(h); }

NUAGE__INLINE float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

NUAGE__INLINE __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
NUAGE__INLINE __m512i load512(const void *p) { return _mm512_loadu_si512(p); }

/* 32 bytes at p in both halves. */
NUAGE__INLINE __m512i bcast256(const void *p) { return _mm512_broadcast_i64x4(load256(p)); }

/* p[0..32) in the low half, q[0..32) in the high half. */
NUAGE__INLINE __m512i join256(const void *p, const void *q) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(load256(p)), load256(q), 1);
}

/* vpermw index: the low 16 word lanes take word a, the high 16 word b. */
NUAGE__INLINE __m512i idx_pair(int a, int b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)a)),
                              _mm256_set1_epi16((short)b), 1);
}

/* vpermw index: word lane i takes word g + i / 8 (four groups of 16
 * values, each eight 16-bit pair sums wide). */
NUAGE__INLINE __m512i idx_quad(int g) {
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16((short)(g + 1)), _mm_set1_epi16((short)g))),
        _mm256_set_m128i(_mm_set1_epi16((short)(g + 3)), _mm_set1_epi16((short)(g + 2))), 1);
}

/* Bytes 1 << a in the low half, 1 << b in the high half. */
NUAGE__INLINE __m512i bits_pair(int a, int b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8((char)(1 << a))),
                              _mm256_set1_epi8((char)(1 << b)), 1);
}

/* int32 sum of scale * (u * a) over 64 values. */
NUAGE__INLINE __m512i dot64(__m512i acc, __m512i u, __m512i y, __m512i sc) {
    return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(u, y), sc);
}

/* ---- Q2_K ---------------------------------------------------------------- */

NUAGE__INLINE void q2k_rows(int nb, const nuage_block_q2_K *w, const uint8_t *a, size_t a_stride,
                            const int NA, float *out) {
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xf);
    const __m512i g0 = idx_quad(0), g4 = idx_quad(4), g8 = idx_quad(8), g12 = idx_quad(12);
    __m512 acc[NUAGE_TILE_MAX];
    __m256 accm[NUAGE_TILE_MAX];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) {
        acc[j] = _mm512_setzero_ps();
        accm[j] = _mm256_setzero_ps();
    }
    for (int i = 0; i < nb; i++) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)w[i].scales);
        const __m512i sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(raw, m4)));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
        /* half h: low half of t = bits 0-1 (values 0-31), high half bits
         * 2-3 (32-63); t >> 4 gives bits 4-5 / 6-7 (64-95 / 96-127) */
        const __m512i q0 = bcast256(w[i].qs), q1 = bcast256(w[i].qs + 32);
        const __m512i t0 = _mm512_mask_srli_epi16(q0, UPPER_HALF_W, q0, 2);
        const __m512i t1 = _mm512_mask_srli_epi16(q1, UPPER_HALF_W, q1, 2);
        const __m512i u0 = _mm512_and_si512(t0, m3), u1 = _mm512_and_si512(_mm512_srli_epi16(t0, 4), m3);
        const __m512i u2 = _mm512_and_si512(t1, m3), u3 = _mm512_and_si512(_mm512_srli_epi16(t1, 4), m3);
        const __m512i s0 = _mm512_permutexvar_epi16(g0, sc), s1 = _mm512_permutexvar_epi16(g4, sc);
        const __m512i s2 = _mm512_permutexvar_epi16(g8, sc), s3 = _mm512_permutexvar_epi16(g12, sc);
        const float d = h2f(w[i].d), dmin = h2f(w[i].dmin);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const nuage_block_q8_K *yb = (const nuage_block_q8_K *)(a + j * a_stride) + i;
            const int8_t *y = yb->qs;
            const __m256i pm = _mm256_madd_epi16(load256(yb->bsums), mn16);
            __m512i isum = dot64(_mm512_setzero_si512(), u0, load512(y), s0);
            isum = dot64(isum, u1, load512(y + 64), s1);
            isum = dot64(isum, u2, load512(y + 128), s2);
            isum = dot64(isum, u3, load512(y + 192), s3);
            const float dy = yb->d;
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * dy), acc[j]);
            accm[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_set1_ps(dmin * dy), accm[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) out[j] = _mm512_reduce_add_ps(acc[j]) - hsum8(accm[j]);
}

void nuage__vec_dot_q2_K_avx512(int n, float *s, const void *w, const void *a) {
    q2k_rows(n / QK, w, a, 0, 1, s);
}

/* ---- Q3_K ---------------------------------------------------------------- */

NUAGE__INLINE void q3k_rows(int nb, const nuage_block_q3_K *w, const uint8_t *a, size_t a_stride,
                            const int NA, float *out) {
    const __m512i m3 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    const __m512i g0 = idx_quad(0), g4 = idx_quad(4), g8 = idx_quad(8), g12 = idx_quad(12);
    const __m512i b01 = bits_pair(0, 1), b23 = bits_pair(2, 3), b45 = bits_pair(4, 5),
                  b67 = bits_pair(6, 7);
    __m512 acc[NUAGE_TILE_MAX];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
        uint32_t r[4];
        nuage__k3_scale_words(w[i].scales, r);
        const __m128i sc8 = _mm_sub_epi8(_mm_set_epi32((int)r[3], (int)r[2], (int)r[1], (int)r[0]),
                                         _mm_set1_epi8(32));
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        const __m512i sc = _mm512_castsi256_si512(sc16);
        const __m512i hm = bcast256(w[i].hmask);
        const __m512i q0 = bcast256(w[i].qs), q1 = bcast256(w[i].qs + 32);
        const __m512i t0 = _mm512_mask_srli_epi16(q0, UPPER_HALF_W, q0, 2);
        const __m512i t1 = _mm512_mask_srli_epi16(q1, UPPER_HALF_W, q1, 2);
        __m512i v[4];
        v[0] = _mm512_and_si512(t0, m3);
        v[0] = _mm512_mask_add_epi8(v[0], _mm512_test_epi8_mask(hm, b01), v[0], four);
        v[1] = _mm512_and_si512(_mm512_srli_epi16(t0, 4), m3);
        v[1] = _mm512_mask_add_epi8(v[1], _mm512_test_epi8_mask(hm, b23), v[1], four);
        v[2] = _mm512_and_si512(t1, m3);
        v[2] = _mm512_mask_add_epi8(v[2], _mm512_test_epi8_mask(hm, b45), v[2], four);
        v[3] = _mm512_and_si512(_mm512_srli_epi16(t1, 4), m3);
        v[3] = _mm512_mask_add_epi8(v[3], _mm512_test_epi8_mask(hm, b67), v[3], four);
        const __m512i s0 = _mm512_permutexvar_epi16(g0, sc), s1 = _mm512_permutexvar_epi16(g4, sc);
        const __m512i s2 = _mm512_permutexvar_epi16(g8, sc), s3 = _mm512_permutexvar_epi16(g12, sc);
        const float d = h2f(w[i].d);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const nuage_block_q8_K *yb = (const nuage_block_q8_K *)(a + j * a_stride) + i;
            const int8_t *y = yb->qs;
            /* codes are stored +4: start from -4 * sum(scale * bsum) */
            const __m256i pm = _mm256_madd_epi16(load256(yb->bsums), sc16);
            __m512i isum = _mm512_zextsi256_si512(
                _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(pm, 2)));
            isum = dot64(isum, v[0], load512(y), s0);
            isum = dot64(isum, v[1], load512(y + 64), s1);
            isum = dot64(isum, v[2], load512(y + 128), s2);
            isum = dot64(isum, v[3], load512(y + 192), s3);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * yb->d), acc[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) out[j] = _mm512_reduce_add_ps(acc[j]);
}

void nuage__vec_dot_q3_K_avx512(int n, float *s, const void *w, const void *a) {
    q3k_rows(n / QK, w, a, 0, 1, s);
}

/* ---- Q4_K ---------------------------------------------------------------- */

/* out[j] = dot(w row, activation row j), j < NA (a constant at each call). */
NUAGE__INLINE void q4k_rows(int nb, const nuage_block_q4_K *w, const uint8_t *a, size_t a_stride,
                            const int NA, float *out) {
    const __m512i m4 = _mm512_set1_epi8(0xf);
    const __m512i i02 = idx_pair(0, 2), i13 = idx_pair(1, 3), i46 = idx_pair(4, 6),
                  i57 = idx_pair(5, 7);
    __m512 acc[NUAGE_TILE_MAX];
    __m256 accm[NUAGE_TILE_MAX];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) {
        acc[j] = _mm512_setzero_ps();
        accm[j] = _mm256_setzero_ps();
    }
    for (int i = 0; i < nb; i++) {
        uint64_t sc, mn;
        nuage__k4_scales(w[i].scales, &sc, &mn);
        const __m512i scz = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
        const __m128i mn8 = _mm_cvtsi64_si128((long long)mn);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));
        const float d = h2f(w[i].d), dmin = h2f(w[i].dmin);
        /* low nibbles of qs[0..64): sub-blocks 0 | 2; high: 1 | 3. (A
         * broadcast + masked shift per 32 bytes, which keeps the activation
         * loads contiguous, measured slower on Zen 4.) */
        const __m512i v0 = load512(w[i].qs), v1 = load512(w[i].qs + 64);
        const __m512i l0 = _mm512_and_si512(v0, m4), h0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4);
        const __m512i l1 = _mm512_and_si512(v1, m4), h1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4);
        const __m512i s02 = _mm512_permutexvar_epi16(i02, scz), s13 = _mm512_permutexvar_epi16(i13, scz);
        const __m512i s46 = _mm512_permutexvar_epi16(i46, scz), s57 = _mm512_permutexvar_epi16(i57, scz);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const nuage_block_q8_K *yb = (const nuage_block_q8_K *)(a + j * a_stride) + i;
            const int8_t *y = yb->qs;
            __m512i isum = dot64(_mm512_setzero_si512(), l0, join256(y, y + 64), s02);
            isum = dot64(isum, h0, join256(y + 32, y + 96), s13);
            isum = dot64(isum, l1, join256(y + 128, y + 192), s46);
            isum = dot64(isum, h1, join256(y + 160, y + 224), s57);
            const float dy = yb->d;
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * dy), acc[j]);
            const __m256i pm = _mm256_madd_epi16(load256(yb->bsums), mn16);
            accm[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_set1_ps(dmin * dy), accm[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) out[j] = _mm512_reduce_add_ps(acc[j]) - hsum8(accm[j]);
}

void nuage__vec_dot_q4_K_avx512(int n, float *s, const void *w, const void *a) {
    q4k_rows(n / QK, w, a, 0, 1, s);
}

/* ---- Q5_K ---------------------------------------------------------------- */

NUAGE__INLINE void q5k_rows(int nb, const nuage_block_q5_K *w, const uint8_t *a, size_t a_stride,
                            const int NA, float *out) {
    const __m512i m4 = _mm512_set1_epi8(0xf), sixteen = _mm512_set1_epi8(16);
    const __m512i i02 = idx_pair(0, 2), i13 = idx_pair(1, 3), i46 = idx_pair(4, 6),
                  i57 = idx_pair(5, 7);
    const __m512i b02 = bits_pair(0, 2), b13 = bits_pair(1, 3), b46 = bits_pair(4, 6),
                  b57 = bits_pair(5, 7);
    __m512 acc[NUAGE_TILE_MAX];
    __m256 accm[NUAGE_TILE_MAX];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) {
        acc[j] = _mm512_setzero_ps();
        accm[j] = _mm256_setzero_ps();
    }
    for (int i = 0; i < nb; i++) {
        uint64_t sc, mn;
        nuage__k4_scales(w[i].scales, &sc, &mn);
        const __m512i scz = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
        const __m128i mn8 = _mm_cvtsi64_si128((long long)mn);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));
        const __m512i qh = bcast256(w[i].qh);
        const __m512i v0 = load512(w[i].qs), v1 = load512(w[i].qs + 64);
        __m512i l0 = _mm512_and_si512(v0, m4), h0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4);
        __m512i l1 = _mm512_and_si512(v1, m4), h1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4);
        l0 = _mm512_mask_add_epi8(l0, _mm512_test_epi8_mask(qh, b02), l0, sixteen);
        h0 = _mm512_mask_add_epi8(h0, _mm512_test_epi8_mask(qh, b13), h0, sixteen);
        l1 = _mm512_mask_add_epi8(l1, _mm512_test_epi8_mask(qh, b46), l1, sixteen);
        h1 = _mm512_mask_add_epi8(h1, _mm512_test_epi8_mask(qh, b57), h1, sixteen);
        const __m512i s02 = _mm512_permutexvar_epi16(i02, scz), s13 = _mm512_permutexvar_epi16(i13, scz);
        const __m512i s46 = _mm512_permutexvar_epi16(i46, scz), s57 = _mm512_permutexvar_epi16(i57, scz);
        const float d = h2f(w[i].d), dmin = h2f(w[i].dmin);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const nuage_block_q8_K *yb = (const nuage_block_q8_K *)(a + j * a_stride) + i;
            const int8_t *y = yb->qs;
            const __m256i pm = _mm256_madd_epi16(load256(yb->bsums), mn16);
            __m512i isum = dot64(_mm512_setzero_si512(), l0, join256(y, y + 64), s02);
            isum = dot64(isum, h0, join256(y + 32, y + 96), s13);
            isum = dot64(isum, l1, join256(y + 128, y + 192), s46);
            isum = dot64(isum, h1, join256(y + 160, y + 224), s57);
            const float dy = yb->d;
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * dy), acc[j]);
            accm[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_set1_ps(dmin * dy), accm[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) out[j] = _mm512_reduce_add_ps(acc[j]) - hsum8(accm[j]);
}

void nuage__vec_dot_q5_K_avx512(int n, float *s, const void *w, const void *a) {
    q5k_rows(n / QK, w, a, 0, 1, s);
}

/* ---- Q6_K ---------------------------------------------------------------- */

NUAGE__INLINE void q6k_rows(int nb, const nuage_block_q6_K *w, const uint8_t *a, size_t a_stride,
                            const int NA, float *out) {
    const __m512i m4 = _mm512_set1_epi8(0xf), m30 = _mm512_set1_epi8(0x30);
    const __m512i g0 = idx_quad(0), g4 = idx_quad(4), g8 = idx_quad(8), g12 = idx_quad(12);
    __m512 acc[NUAGE_TILE_MAX];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[i].scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        const float d = h2f(w[i].d);
        __m512i v[4];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* values 128h + [0,64): low nibbles of ql[64h..], high bits
             * 0-1 (first 32) / 2-3 (next 32) of qh[32h..]; values
             * 128h + [64,128): high nibbles, bits 4-5 / 6-7 */
            const __m512i l = load512(w[i].ql + 64 * h);
            const __m512i q = bcast256(w[i].qh + 32 * h);
            const __m512i hl = _mm512_and_si512(
                _mm512_mask_slli_epi16(_mm512_slli_epi16(q, 4), UPPER_HALF_W, q, 2), m30);
            const __m512i hh = _mm512_and_si512(_mm512_mask_srli_epi16(q, UPPER_HALF_W, q, 2), m30);
            /* 0xE4: bits of the first operand where m4 is set, else the second */
            v[2 * h] = _mm512_ternarylogic_epi32(l, hl, m4, 0xE4);
            v[2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), hh, m4, 0xE4);
        }
        const __m512i s0 = _mm512_permutexvar_epi16(g0, sc), s1 = _mm512_permutexvar_epi16(g4, sc);
        const __m512i s2 = _mm512_permutexvar_epi16(g8, sc), s3 = _mm512_permutexvar_epi16(g12, sc);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const nuage_block_q8_K *yb = (const nuage_block_q8_K *)(a + j * a_stride) + i;
            const int8_t *y = yb->qs;
            /* codes are stored +32: start from -32 * sum(scale * bsum) */
            const __m256i pm = _mm256_madd_epi16(load256(yb->bsums), sc16);
            __m512i isum = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(pm, 5)));
            isum = dot64(isum, v[0], load512(y), s0);
            isum = dot64(isum, v[1], load512(y + 64), s1);
            isum = dot64(isum, v[2], load512(y + 128), s2);
            isum = dot64(isum, v[3], load512(y + 192), s3);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * yb->d), acc[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) out[j] = _mm512_reduce_add_ps(acc[j]);
}

void nuage__vec_dot_q6_K_avx512(int n, float *s, const void *w, const void *a) {
    q6k_rows(n / QK, w, a, 0, 1, s);
}

/* ---- tiles ---------------------------------------------------------------- */

#define NUAGE__TILE(name, blk_t, rows)                                                      \
    void nuage__tile_##name##_avx512(int n, float *s, size_t s_stride, const void *w,       \
                                     size_t w_stride, int nw, const void *a,                 \
                                     size_t a_stride, int na) {                              \
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

NUAGE__TILE(q2_K, nuage_block_q2_K, q2k_rows)
NUAGE__TILE(q3_K, nuage_block_q3_K, q3k_rows)
NUAGE__TILE(q4_K, nuage_block_q4_K, q4k_rows)
NUAGE__TILE(q5_K, nuage_block_q5_K, q5k_rows)
NUAGE__TILE(q6_K, nuage_block_q6_K, q6k_rows)

/* ---- Q8_K (as weights) --------------------------------------------------- */

void nuage__vec_dot_q8_K_avx512(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q8_K *w = vw;
    const nuage_block_q8_K *a = va;
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n / QK; i++) {
        __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int k = 0; k < QK; k += 32) {
            const __m512i x = _mm512_cvtepi8_epi16(load256(w[i].qs + k));
            const __m512i y = _mm512_cvtepi8_epi16(load256(a[i].qs + k));
            isum = _mm512_dpwssd_epi32(isum, x, y);
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(w[i].d * a[i].d), acc);
    }
    *s = _mm512_reduce_add_ps(acc);
}

/* ---- IQ4_XS --------------------------------------------------------------- */

NUAGE__INLINE void iq4xs_rows(int nb, const nuage_block_iq4_xs *w, const uint8_t *a,
                              size_t a_stride, const int NA, float *out) {
    /* |grid| by index; indices 0-7 are the negative entries */
    int8_t absg[16];
    for (int k = 0; k < 16; k++)
        absg[k] = (int8_t)(nuage__k_iq4_grid[k] < 0 ? -nuage__k_iq4_grid[k] : nuage__k_iq4_grid[k]);
    const __m512i grid = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)absg));
    const __m512i m4 = _mm512_set1_epi8(0xf), eight = _mm512_set1_epi8(8);
    const __m512i zero = _mm512_setzero_si512();
    const __m512i i01 = idx_pair(0, 1), i23 = idx_pair(2, 3), i45 = idx_pair(4, 5),
                  i67 = idx_pair(6, 7);
    __m512 acc[NUAGE_TILE_MAX];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m128i sc8 = _mm_cvtsi64_si128((long long)nuage__iq4xs_scales8(&w[i]));
        const __m512i sc = _mm512_castsi128_si512(_mm_cvtepi8_epi16(_mm_sub_epi8(sc8, _mm_set1_epi8(32))));
        const __m512i sk[4] = {_mm512_permutexvar_epi16(i01, sc), _mm512_permutexvar_epi16(i23, sc),
                               _mm512_permutexvar_epi16(i45, sc), _mm512_permutexvar_epi16(i67, sc)};
        __m512i mag[4];
        __mmask64 neg[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            /* 128-bit lanes: low, high nibbles of sub-block 2k, then of 2k+1 */
            const __m512i q = _mm512_castsi256_si512(load256(w[i].qs + 32 * k));
            const __m512i qq = _mm512_shuffle_i64x2(q, q, 0x50);
            const __m512i nib = _mm512_and_si512(_mm512_mask_srli_epi16(qq, 0xFF00FF00u, qq, 4), m4);
            mag[k] = _mm512_shuffle_epi8(grid, nib);
            neg[k] = _mm512_testn_epi8_mask(nib, eight);
        }
        const float d = h2f(w[i].d);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const nuage_block_q8_K *yb = (const nuage_block_q8_K *)(a + j * a_stride) + i;
            __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m512i y = load512(yb->qs + 64 * k);
                isum = dot64(isum, mag[k], _mm512_mask_sub_epi8(y, neg[k], zero, y), sk[k]);
            }
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * yb->d), acc[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) out[j] = _mm512_reduce_add_ps(acc[j]);
}

void nuage__vec_dot_iq4_xs_avx512(int n, float *s, const void *w, const void *a) {
    iq4xs_rows(n / QK, w, a, 0, 1, s);
}

NUAGE__TILE(iq4_xs, nuage_block_iq4_xs, iq4xs_rows)
