/*
 * quant_legacy_avx2.c - AVX2 + FMA + F16C kernels for F32 and the legacy
 * types (compiled with those flags; called only on CPUs that have them).
 *
 * Integer types work one 32-value block per 256-bit register. x86 has no
 * signed x signed byte multiply, only maddubs (unsigned x signed, pairs
 * summed to saturating int16), so:
 *   - 4/5-bit weights are used as their unsigned codes q (0..31) and the
 *     offset is removed afterwards: sum((q - o) * y) = sum(q * y) -
 *     o * sum(y), with o * sum(y) itself one maddubs of the constant o;
 *     no pair sum can saturate (2 * 31 * 127 < 32767).
 *   - signed weights (Q8_0, IQ4_NL levels) use the sign trick:
 *     |x| * (y with the sign of x).
 * Each block's exact integer dot becomes a float and is scaled by
 * dw * da (fp16 scales widened with F16C) in an FMA accumulator.
 *
 * Tiles (prefill) keep a 4 x 2 block of accumulators in the 16 ymm
 * registers: weights are unpacked once per block for both activation
 * rows, and the activation-only terms (o * sum(y)) once for all weight
 * rows. A 4 x 4 request runs as two 4 x 2 passes.
 *
 * The activation quantizers here (Q8_0, Q8_1, F16, BF16) are byte-identical to
 * the scalar ones in quant_legacy.c (tests check it).
 */
#include <immintrin.h>

#include "engine/quant_legacy.h"

#define QK 32
#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE float h2f(nuage_fp16 h) { return _cvtsh_ss(h); }

ALWAYS_INLINE float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

ALWAYS_INLINE int hsum8i(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 1));
    return _mm_cvtsi128_si32(r);
}

/* 16 bytes of packed nibbles -> 32 bytes 0..15: low nibbles (values
 * 0..15) in the low half, high nibbles (values 16..31) in the high half. */
ALWAYS_INLINE __m256i nibbles32(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(15));
}

/* The 32 bits of a Q5 qh field as bytes: 0x10 where bit j is set. */
ALWAYS_INLINE __m256i qh_bytes(const uint8_t *qh) {
    uint32_t bits;
    memcpy(&bits, qh, 4);
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), pick);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* Signed x signed bytes -> 8 int32 partial sums (sign trick). */
ALWAYS_INLINE __m256i dot_ss(__m256i x, __m256i y) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Unsigned (<= 31) x signed bytes minus o * sum(y) -> 8 int32 sums. The
 * correction cy = maddubs(o, y) is passed in so tiles can share it. */
ALWAYS_INLINE __m256i dot_us_off(__m256i q, __m256i y, __m256i cy) {
    __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), cy);
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

ALWAYS_INLINE __m256i dot_us(__m256i q, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), _mm256_set1_epi16(1));
}

/* ---------------------------------------------------------------- F32 */

static void f32_vec_dot(int n, float *s, const void *vw, const void *va) {
    const float *x = vw, *y = va;
    __m256 acc[8];
    for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64)
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
    for (int k = 0; k < 4; k++) acc[k] = _mm256_add_ps(acc[k], acc[k + 4]);
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

/* ---------------------------------------------------------------- F16 */

ALWAYS_INLINE __m256 load_h8(const nuage_fp16 *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static void f16_vec_dot(int n, float *s, const void *vw, const void *va) {
    const nuage_fp16 *x = vw, *y = va;
    __m256 acc[8];
    for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64)
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            acc[k] = _mm256_fmadd_ps(load_h8(x + i + 8 * k), load_h8(y + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_h8(x + i), load_h8(y + i), acc[0]);
    for (int k = 0; k < 4; k++) acc[k] = _mm256_add_ps(acc[k], acc[k + 4]);
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += h2f(x[i]) * h2f(y[i]);
    *s = sum;
}

static void f16_to_float(const void *vx, float *y, int64_t n) {
    const nuage_fp16 *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_h8(x + i));
    for (; i < n; i++) y[i] = h2f(x[i]);
}

/* F16C rounds to nearest even, exactly as nuage_fp32_to_fp16 (NaN
 * payloads aside). */
static void f16_from_float(const float *x, void *vy, int64_t n) {
    nuage_fp16 *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = nuage_fp32_to_fp16(x[i]);
}

/* --------------------------------------------------------------- BF16 */

/* bf16 -> f32 is a 16-bit shift: widen 8 values at a time. */
ALWAYS_INLINE __m256 load_bf8(const nuage_bf16 *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static void bf16_vec_dot(int n, float *s, const void *vw, const void *va) {
    const nuage_bf16 *x = vw, *y = va;
    __m256 acc[8];
    for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64)
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            acc[k] = _mm256_fmadd_ps(load_bf8(x + i + 8 * k), load_bf8(y + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_bf8(x + i), load_bf8(y + i), acc[0]);
    for (int k = 0; k < 4; k++) acc[k] = _mm256_add_ps(acc[k], acc[k + 4]);
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += nuage_bf16_to_fp32(x[i]) * nuage_bf16_to_fp32(y[i]);
    *s = sum;
}

/* Round to nearest even exactly as nuage_fp32_to_bf16 (NaN: quieted). */
static void bf16_from_float(const float *x, void *vy, int64_t n) {
    nuage_bf16 *y = vy;
    int64_t i = 0;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int h = 0; h < 2; h++) {
            __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i + 8 * h));
            __m256i hi = _mm256_srli_epi32(u, 16);
            __m256i rounded = _mm256_srli_epi32(
                _mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(hi, one)), 16);
            __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
            r[h] = _mm256_blendv_epi8(rounded, _mm256_or_si256(hi, _mm256_set1_epi32(64)), nan);
        }
        /* packus works per 128-bit lane; the permute restores order. */
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
        _mm256_storeu_si256((__m256i *)(y + i), p);
    }
    for (; i < n; i++) y[i] = nuage_fp32_to_bf16(x[i]);
}

/* ----------------------------------------------- activation quantizers */

/* F16C's conversion rounds to nearest even like nuage_fp32_to_fp16. */
ALWAYS_INLINE nuage_fp16 f2h(float f) {
    return (nuage_fp16)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

/* One block: returns d, writes 32 int8 and (if sum) the sum of quants.
 * Same arithmetic as quantize_block_q8 in quant_legacy.c. */
ALWAYS_INLINE float q8_block(const float *x, int8_t *q, int *sum) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
    m = _mm256_max_ps(m, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    enum { rnd = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }; /* a constant expression for clang */
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, id), rnd));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, id), rnd));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, id), rnd));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, id), rnd));
    if (sum) *sum = hsum8i(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    /* packs work per 128-bit lane; the permute restores value order. */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p);
    return d;
}

static void q8_0_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / QK; b++)
        y[b].d = f2h(q8_block(x + b * QK, y[b].qs, NULL));
}

static void q8_1_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q8_1 *y = vy;
    for (int64_t b = 0; b < n / QK; b++) {
        int sum;
        float d = q8_block(x + b * QK, y[b].qs, &sum);
        y[b].d = f2h(d);
        y[b].s = f2h(d * (float)sum);
    }
}

/* ------------------------------------------------ integer vec_dot's */

ALWAYS_INLINE __m256i loadq(const int8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Weight code preparation, one block -> 32 bytes. */
ALWAYS_INLINE __m256i iq4nl_levels(__m256i nib) {
    const __m256i tab = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)nuage__iq4nl_values));
    return _mm256_shuffle_epi8(tab, nib);
}

static void q8_0_vec_dot(int n, float *s, const void *vw, const void *va) {
    const nuage_block_q8_0 *x = vw, *y = va;
    const int nb = n / QK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m256 p0 = _mm256_cvtepi32_ps(dot_ss(loadq(x[b].qs), loadq(y[b].qs)));
        __m256 p1 = _mm256_cvtepi32_ps(dot_ss(loadq(x[b + 1].qs), loadq(y[b + 1].qs)));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), p0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[b + 1].d) * h2f(y[b + 1].d)), p1, acc1);
    }
    if (b < nb) {
        __m256 p0 = _mm256_cvtepi32_ps(dot_ss(loadq(x[b].qs), loadq(y[b].qs)));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), p0, acc0);
    }
    *s = hsum8(_mm256_add_ps(acc0, acc1));
}

/* Q4_0 / Q5_0: unsigned codes with offset o against Q8_0. */
#define DEFINE_OFFSET_DOT(name, wtype, CODES, OFF)                                   \
    static void name(int n, float *s, const void *vw, const void *va) {            \
        const wtype *x = vw;                                                       \
        const nuage_block_q8_0 *y = va;                                            \
        const int nb = n / QK;                                                     \
        const __m256i off = _mm256_set1_epi8(OFF);                                 \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;                            \
        for (int b = 0; b < nb; b++) {                                             \
            __m256i q = CODES(x[b]);                                               \
            __m256i yv = loadq(y[b].qs);                                           \
            __m256i cy = _mm256_maddubs_epi16(off, yv);                            \
            __m256 p = _mm256_cvtepi32_ps(dot_us_off(q, yv, cy));                  \
            __m256 d = _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d));                  \
            if (b & 1) acc1 = _mm256_fmadd_ps(d, p, acc1);                         \
            else acc0 = _mm256_fmadd_ps(d, p, acc0);                               \
        }                                                                          \
        *s = hsum8(_mm256_add_ps(acc0, acc1));                                     \
    }

/* Q4_1 / Q5_1: unsigned codes against Q8_1, plus m * s per block. */
#define DEFINE_MIN_DOT(name, wtype, CODES)                                           \
    static void name(int n, float *s, const void *vw, const void *va) {            \
        const wtype *x = vw;                                                       \
        const nuage_block_q8_1 *y = va;                                            \
        const int nb = n / QK;                                                     \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;                            \
        float summs[2] = {0, 0}; /* two chains: float add latency */             \
        for (int b = 0; b < nb; b++) {                                             \
            __m256i q = CODES(x[b]);                                               \
            __m256 p = _mm256_cvtepi32_ps(dot_us(q, loadq(y[b].qs)));              \
            __m256 d = _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d));                  \
            summs[b & 1] += h2f(x[b].m) * h2f(y[b].s);                             \
            if (b & 1) acc1 = _mm256_fmadd_ps(d, p, acc1);                         \
            else acc0 = _mm256_fmadd_ps(d, p, acc0);                               \
        }                                                                          \
        *s = hsum8(_mm256_add_ps(acc0, acc1)) + (summs[0] + summs[1]);             \
    }

#define CODES_Q4(blk) nibbles32((blk).qs)
#define CODES_Q5(blk) _mm256_or_si256(nibbles32((blk).qs), qh_bytes((blk).qh))

DEFINE_OFFSET_DOT(q4_0_vec_dot, nuage_block_q4_0, CODES_Q4, 8)
DEFINE_OFFSET_DOT(q5_0_vec_dot, nuage_block_q5_0, CODES_Q5, 16)
DEFINE_MIN_DOT(q4_1_vec_dot, nuage_block_q4_1, CODES_Q4)
DEFINE_MIN_DOT(q5_1_vec_dot, nuage_block_q5_1, CODES_Q5)

static void iq4_nl_vec_dot(int n, float *s, const void *vw, const void *va) {
    const nuage_block_iq4_nl *x = vw;
    const nuage_block_q8_0 *y = va;
    const int nb = n / QK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (int b = 0; b < nb; b++) {
        __m256i q = iq4nl_levels(nibbles32(x[b].qs));
        __m256 p = _mm256_cvtepi32_ps(dot_ss(q, loadq(y[b].qs)));
        __m256 d = _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d));
        if (b & 1) acc1 = _mm256_fmadd_ps(d, p, acc1);
        else acc0 = _mm256_fmadd_ps(d, p, acc0);
    }
    *s = hsum8(_mm256_add_ps(acc0, acc1));
}

/* -------------------------------------------------------------- tiles */

/* Tile kernels are written once with compile-time NW (weight rows, 1..4)
 * and NA (activation rows, 1..2) and instantiated below; the dispatcher
 * splits a request into passes of at most 2 activation rows. */
#define TILE_ARGS int n, float *s, size_t ss, const void *w, size_t ws, const void *a, size_t as
#define ROW(p, stride, i) ((const void *)((const char *)(p) + (size_t)(i) * (stride)))

ALWAYS_INLINE void f32_tile_impl(TILE_ARGS, const int NW, const int NA) {
    __m256 acc[4][2];
    const float *x[4], *y[2];
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++) x[i] = ROW(w, ws, i);
#pragma GCC unroll 2
    for (int j = 0; j < NA; j++) y[j] = ROW(a, as, j);
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) acc[i][j] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 xv[4];
#pragma GCC unroll 4
        for (int i = 0; i < NW; i++) xv[i] = _mm256_loadu_ps(x[i] + k);
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) {
            __m256 yv = _mm256_loadu_ps(y[j] + k);
#pragma GCC unroll 4
            for (int i = 0; i < NW; i++) acc[i][j] = _mm256_fmadd_ps(xv[i], yv, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) {
            float sum = hsum8(acc[i][j]);
            for (int kk = k; kk < n; kk++) sum += x[i][kk] * y[j][kk];
            s[j * ss + i] = sum;
        }
}

ALWAYS_INLINE void f16_tile_impl(TILE_ARGS, const int NW, const int NA) {
    __m256 acc[4][2];
    const nuage_fp16 *x[4], *y[2];
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++) x[i] = ROW(w, ws, i);
#pragma GCC unroll 2
    for (int j = 0; j < NA; j++) y[j] = ROW(a, as, j);
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) acc[i][j] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 xv[4];
#pragma GCC unroll 4
        for (int i = 0; i < NW; i++) xv[i] = load_h8(x[i] + k);
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) {
            __m256 yv = load_h8(y[j] + k);
#pragma GCC unroll 4
            for (int i = 0; i < NW; i++) acc[i][j] = _mm256_fmadd_ps(xv[i], yv, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) {
            float sum = hsum8(acc[i][j]);
            for (int kk = k; kk < n; kk++) sum += h2f(x[i][kk]) * h2f(y[j][kk]);
            s[j * ss + i] = sum;
        }
}

/* Q8_0 x Q8_0: sign trick per (weight, activation) pair; |x| shared. */
ALWAYS_INLINE void q8_0_tile_impl(TILE_ARGS, const int NW, const int NA) {
    __m256 acc[4][2];
    const nuage_block_q8_0 *x[4], *y[2];
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++) x[i] = ROW(w, ws, i);
#pragma GCC unroll 2
    for (int j = 0; j < NA; j++) y[j] = ROW(a, as, j);
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) acc[i][j] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < n / QK; b++) {
        __m256i ax[4];
        __m256 dw[4];
#pragma GCC unroll 4
        for (int i = 0; i < NW; i++) {
            __m256i xv = loadq(x[i][b].qs);
            ax[i] = _mm256_sign_epi8(xv, xv);
            dw[i] = _mm256_set1_ps(h2f(x[i][b].d));
        }
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) {
            __m256i yv = loadq(y[j][b].qs);
            __m256 da = _mm256_set1_ps(h2f(y[j][b].d));
#pragma GCC unroll 4
            for (int i = 0; i < NW; i++) {
                __m256i sy = _mm256_sign_epi8(yv, loadq(x[i][b].qs));
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax[i], sy), ones);
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(dw[i], da), _mm256_cvtepi32_ps(p),
                                            acc[i][j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) s[j * ss + i] = hsum8(acc[i][j]);
}

/* Q4_0 x Q8_0: codes unpacked once per weight block, 8 * sum(y) once per
 * activation block. */
ALWAYS_INLINE void q4_0_tile_impl(TILE_ARGS, const int NW, const int NA) {
    __m256 acc[4][2];
    const nuage_block_q4_0 *x[4];
    const nuage_block_q8_0 *y[2];
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++) x[i] = ROW(w, ws, i);
#pragma GCC unroll 2
    for (int j = 0; j < NA; j++) y[j] = ROW(a, as, j);
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) acc[i][j] = _mm256_setzero_ps();
    const __m256i off = _mm256_set1_epi8(8);
    for (int b = 0; b < n / QK; b++) {
        __m256i q[4];
        __m256 dw[4];
#pragma GCC unroll 4
        for (int i = 0; i < NW; i++) {
            q[i] = nibbles32(x[i][b].qs);
            dw[i] = _mm256_set1_ps(h2f(x[i][b].d));
        }
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) {
            __m256i yv = loadq(y[j][b].qs);
            __m256i cy = _mm256_maddubs_epi16(off, yv);
            __m256 da = _mm256_set1_ps(h2f(y[j][b].d));
#pragma GCC unroll 4
            for (int i = 0; i < NW; i++) {
                __m256 p = _mm256_cvtepi32_ps(dot_us_off(q[i], yv, cy));
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(dw[i], da), p, acc[i][j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) s[j * ss + i] = hsum8(acc[i][j]);
}

typedef void (*tile_fn)(TILE_ARGS);

#define INST1(impl, NW, NA)                                                     \
    static void impl##_##NW##_##NA(TILE_ARGS) { impl(n, s, ss, w, ws, a, as, NW, NA); }
#define INST_ALL(impl)                                                          \
    INST1(impl, 1, 1) INST1(impl, 1, 2) INST1(impl, 2, 1) INST1(impl, 2, 2)    \
    INST1(impl, 3, 1) INST1(impl, 3, 2) INST1(impl, 4, 1) INST1(impl, 4, 2)    \
    static const tile_fn impl##_tab[4][2] = {                                   \
        {impl##_1_1, impl##_1_2}, {impl##_2_1, impl##_2_2},                     \
        {impl##_3_1, impl##_3_2}, {impl##_4_1, impl##_4_2}};

INST_ALL(f32_tile_impl)
INST_ALL(f16_tile_impl)
INST_ALL(q8_0_tile_impl)
INST_ALL(q4_0_tile_impl)

ALWAYS_INLINE void run_tile(const tile_fn tab[4][2], int n, float *s, size_t ss,
                            const void *w, size_t ws, int nw, const void *a, size_t as,
                            int na) {
    for (int j = 0; j < na; j += 2) {
        int nj = na - j < 2 ? na - j : 2;
        tab[nw - 1][nj - 1](n, s + (size_t)j * ss, ss, w, ws, ROW(a, as, j), as);
    }
}

#define DEFINE_TILE(name, impl)                                                        \
    static void name(int n, float *s, size_t ss, const void *w, size_t ws, int nw,     \
                     const void *a, size_t as, int na) {                               \
        run_tile(impl##_tab, n, s, ss, w, ws, nw, a, as, na);                          \
    }

DEFINE_TILE(f32_tile, f32_tile_impl)
DEFINE_TILE(f16_tile, f16_tile_impl)
DEFINE_TILE(q8_0_tile, q8_0_tile_impl)
DEFINE_TILE(q4_0_tile, q4_0_tile_impl)

/* ------------------------------------------------------- registration */

void nuage__legacy_register_avx2(nuage_type_traits *t) {
    t[NUAGE_TYPE_F32].vec_dot = f32_vec_dot;
    t[NUAGE_TYPE_F32].vec_dot_tile = f32_tile;

    t[NUAGE_TYPE_F16].vec_dot = f16_vec_dot;
    t[NUAGE_TYPE_F16].vec_dot_tile = f16_tile;
    t[NUAGE_TYPE_F16].to_float = f16_to_float;
    t[NUAGE_TYPE_F16].from_float = f16_from_float;

    t[NUAGE_TYPE_BF16].vec_dot = bf16_vec_dot;
    t[NUAGE_TYPE_BF16].from_float = bf16_from_float;

    t[NUAGE_TYPE_Q8_0].from_float = q8_0_from_float;
    t[NUAGE_TYPE_Q8_1].from_float = q8_1_from_float;

    t[NUAGE_TYPE_Q8_0].vec_dot = q8_0_vec_dot;
    t[NUAGE_TYPE_Q8_0].vec_dot_tile = q8_0_tile;
    t[NUAGE_TYPE_Q4_0].vec_dot = q4_0_vec_dot;
    t[NUAGE_TYPE_Q4_0].vec_dot_tile = q4_0_tile;
    t[NUAGE_TYPE_Q4_1].vec_dot = q4_1_vec_dot;
    t[NUAGE_TYPE_Q5_0].vec_dot = q5_0_vec_dot;
    t[NUAGE_TYPE_Q5_1].vec_dot = q5_1_vec_dot;
    t[NUAGE_TYPE_IQ4_NL].vec_dot = iq4_nl_vec_dot;
}
