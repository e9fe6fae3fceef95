/*
 * quant_legacy_avx512.c - AVX-512 (F, BW, VL, DQ, VNNI, optionally BF16)
 * kernels for F32 and the legacy types. Compiled with those flags; only
 * registered when cpu.c reports level 2.
 *
 * Integer types: two 32-value blocks fill one 512-bit register, laid out
 * [block b values 0..31 | block b+1 values 0..31], the same order for the
 * weight codes and the Q8 activations. VNNI's vpdpbusd multiplies
 * unsigned by signed bytes and sums groups of four into int32 lanes, so
 * every weight is fed as an unsigned code c with a fixed offset o:
 *   Q4_0 c = q (o = 8), Q5_0 c = q (o = 16), Q4_1/Q5_1 c = q (o = 0),
 *   Q8_0 c = x + 128 (o = 128), IQ4_NL c = level + 128 (o = 128),
 * and sum(w * y) = dpbusd(c, y) - dpbusd(o, y): two VNNI instructions
 * and no sign fiddling (AVX-512 has no vpsignb). Lanes 0..7 then hold
 * block b's partial sums and lanes 8..15 block b+1's; each is converted
 * to float and multiplied by its block's dw * da in an FMA. The scales of
 * 8 blocks are fetched at once (eight 32-bit loads, one vcvtph2ps)
 * and spread to the two halves with one permute per block pair. Partial
 * sums stay in per-lane accumulators until the very end, so the float
 * summation order is: per block exact integer dot, scaled, then summed
 * over blocks in 16 (or 32) interleaved lanes, then a tree reduction.
 *
 * Matrix products of these types do not use vec_dot: gemm_avx512.c's
 * rows-in-lanes kernels replace both it and tiles at this level.
 *
 * F32: 16 floats per register, eight accumulators (vec_dot) or up to 16
 * (tiles), masked loads for the row tail. F16 tiles widen with vcvtph2ps
 * once per row and block of 16; the F16 vec_dot stays the AVX2 one, since
 * the 512-bit vcvtph2ps runs at a third of the 256-bit rate on AMD Zen
 * (this project's reference machines). BF16: vdpbf16ps when the CPU has
 * AVX512-BF16 (as llama.cpp uses on such CPUs), else widened by a shift
 * and FMA'd in f32.
 *
 * Measured on the reference machine (AMD EPYC, one thread, rows in L1,
 * n = 4096): Q8_0 vec_dot ~3.8 cycles per 32 values, Q4_0 ~4.6
 * (bench/bench_kernels.c).
 */
#include <immintrin.h>

#include "engine/quant_legacy.h"

#define QK 32
#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE float h2f(nuage_fp16 h) { return _cvtsh_ss(h); }

ALWAYS_INLINE uint16_t rd16(const char *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

ALWAYS_INLINE uint32_t rd32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ------------------------------------------------------- byte helpers */

/* Two 32-byte runs (one per block) -> one register. */
ALWAYS_INLINE __m512i load2(const void *p0, const void *p1) {
    __m512i v = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0));
    return _mm512_inserti64x4(v, _mm256_loadu_si256((const __m256i *)p1), 1);
}

/* One 32-byte run, upper half zero. */
ALWAYS_INLINE __m512i load1(const void *p0) {
    return _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)p0));
}

/* 16 bytes of nibbles of each of two blocks -> codes 0..15 in value
 * order: [b0 low nibbles, b0 high nibbles, b1 low, b1 high]. */
ALWAYS_INLINE __m512i nib2(const void *q0, const void *q1) {
    __m256i v = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)q0)),
        _mm_loadu_si128((const __m128i *)q1), 1);
    __m512i z = _mm512_castsi256_si512(v);
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(1, 1, 0, 0));
    z = _mm512_mask_blend_epi64(0xCC, z, _mm512_srli_epi16(z, 4));
    return _mm512_and_si512(z, _mm512_set1_epi8(15));
}

ALWAYS_INLINE __m512i nib1(const void *q0) {
    __m128i v = _mm_loadu_si128((const __m128i *)q0);
    __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm512_zextsi256_si512(_mm256_and_si256(b, _mm256_set1_epi8(15)));
}

/* fp16 fields of 8 consecutive blocks (stride bytes apart, at base):
 * one 32-bit gather; the low halves are the fields at base, the high
 * halves the next fp16 (Q4_1/Q5_1 m, Q8_1 s). */
ALWAYS_INLINE __m256i gather8(const char *base, const int stride) {
    /* Explicit inserts (as fast as vpgatherdd here; left to itself GCC
     * may assemble the vector through the stack and stall). */
    __m128i lo = _mm_cvtsi32_si128((int)rd32(base));
    __m128i hi = _mm_cvtsi32_si128((int)rd32(base + 4 * stride));
    lo = _mm_insert_epi32(lo, (int)rd32(base + stride), 1);
    hi = _mm_insert_epi32(hi, (int)rd32(base + 5 * stride), 1);
    lo = _mm_insert_epi32(lo, (int)rd32(base + 2 * stride), 2);
    hi = _mm_insert_epi32(hi, (int)rd32(base + 6 * stride), 2);
    lo = _mm_insert_epi32(lo, (int)rd32(base + 3 * stride), 3);
    hi = _mm_insert_epi32(hi, (int)rd32(base + 7 * stride), 3);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}
ALWAYS_INLINE __m256 lo_h2f(__m256i g) { return _mm256_cvtph_ps(_mm256_cvtepi32_epi16(g)); }
ALWAYS_INLINE __m256 hi_h2f(__m256i g) {
    return _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(g, 16)));
}

/* Spread the scales of blocks 2k and 2k+1 (of 8 in v) over lane halves. */
ALWAYS_INLINE __m512 pair_scale(__m512 v, const int k) {
    const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(2 * k), _mm256_set1_epi32(2 * k + 1), 1);
    return _mm512_permutexvar_ps(idx, v);
}

ALWAYS_INLINE __m512 two_scales(float s0, float s1) {
    return _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
}

ALWAYS_INLINE float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* ---------------------------------------------------- integer kinds */

enum { K_Q8_0, K_Q4_0, K_Q5_0, K_IQ4_NL, K_Q4_1, K_Q5_1 };

ALWAYS_INLINE int wsize(const int k) {
    return k == K_Q8_0 ? 34 : k == K_Q4_0 ? 18 : k == K_Q5_0 ? 22 : k == K_IQ4_NL ? 18
         : k == K_Q4_1 ? 20 : 24;
}
ALWAYS_INLINE int has_min(const int k) { return k == K_Q4_1 || k == K_Q5_1; }
ALWAYS_INLINE int asize(const int k) { return has_min(k) ? 36 : 34; }
ALWAYS_INLINE int aqs(const int k) { return has_min(k) ? 4 : 2; } /* qs offset in act. block */
ALWAYS_INLINE int offset(const int k) {
    return k == K_Q8_0 || k == K_IQ4_NL ? 128 : k == K_Q4_0 ? 8 : k == K_Q5_0 ? 16 : 0;
}

ALWAYS_INLINE __m512i iq4_codes(__m512i nib) {
    /* levels + 128, as unsigned bytes */
    const __m512i tab = _mm512_broadcast_i32x4(_mm_setr_epi8(
        1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141, (char)153, (char)166,
        (char)181, (char)197, (char)217, (char)241));
    return _mm512_shuffle_epi8(tab, nib);
}

/* Unsigned codes of blocks b0 and b1 (b1 NULL: one block, upper half
 * zero-or-ignored: its activation half is zero). */
ALWAYS_INLINE __m512i prep(const int k, const char *b0, const char *b1) {
    switch (k) {
    case K_Q8_0:
        return _mm512_xor_si512(b1 ? load2(b0 + 2, b1 + 2) : load1(b0 + 2),
                                _mm512_set1_epi8((char)0x80));
    case K_Q4_0:
    case K_IQ4_NL: {
        __m512i c = b1 ? nib2(b0 + 2, b1 + 2) : nib1(b0 + 2);
        return k == K_IQ4_NL ? iq4_codes(c) : c;
    }
    case K_Q4_1:
        return b1 ? nib2(b0 + 4, b1 + 4) : nib1(b0 + 4);
    default: { /* Q5_0 (qh at 2, qs at 6) and Q5_1 (qh at 4, qs at 8) */
        const int qh = k == K_Q5_0 ? 2 : 4;
        __m512i c = b1 ? nib2(b0 + qh + 4, b1 + qh + 4) : nib1(b0 + qh + 4);
        uint64_t bits = rd32(b0 + qh);
        if (b1) bits |= (uint64_t)rd32(b1 + qh) << 32;
        return _mm512_mask_add_epi8(c, _cvtu64_mask64(bits), c, _mm512_set1_epi8(16));
    }
    }
}

ALWAYS_INLINE __m512i act(const int k, const char *y0, const char *y1) {
    return y1 ? load2(y0 + aqs(k), y1 + aqs(k)) : load1(y0 + aqs(k));
}

/* -o * sum(y) in the lanes dpbusd(c, y) uses: start value of the dot. */
ALWAYS_INLINE __m512i neg_corr(const int k, __m512i y) {
    if (!offset(k)) return _mm512_setzero_si512();
    __m512i c = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)offset(k)), y);
    return _mm512_sub_epi32(_mm512_setzero_si512(), c);
}

/* ------------------------------------------------------- vec_dot */

ALWAYS_INLINE void dot_impl(const int k, int n, float *s, const void *vw, const void *va) {
    const char *x = vw, *y = va;
    const int WS = wsize(k), AS = asize(k), nb = n / QK;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m256 macc = _mm256_setzero_ps();
    float summs = 0;
    int b = 0;
    for (; b + 8 <= nb; b += 8) {
        const char *xb = x + (size_t)b * WS, *yb = y + (size_t)b * AS;
        __m256i gx = gather8(xb, WS), gy = gather8(yb, AS);
        __m512 d8 = _mm512_castps256_ps512(_mm256_mul_ps(lo_h2f(gx), lo_h2f(gy)));
        if (has_min(k)) macc = _mm256_fmadd_ps(hi_h2f(gx), hi_h2f(gy), macc);
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            const char *x0 = xb + 2 * p * WS, *y0 = yb + 2 * p * AS;
            __m512i yv = act(k, y0, y0 + AS);
            __m512i dot = _mm512_dpbusd_epi32(neg_corr(k, yv), prep(k, x0, x0 + WS), yv);
            __m512 f = _mm512_cvtepi32_ps(dot);
            if (p & 1) acc1 = _mm512_fmadd_ps(f, pair_scale(d8, p), acc1);
            else acc0 = _mm512_fmadd_ps(f, pair_scale(d8, p), acc0);
        }
    }
    for (; b < nb; b += 2) {
        const char *x0 = x + (size_t)b * WS, *y0 = y + (size_t)b * AS;
        const int two = b + 1 < nb;
        const char *x1 = two ? x0 + WS : NULL, *y1 = two ? y0 + AS : NULL;
        __m512i yv = act(k, y0, y1);
        __m512i dot = _mm512_dpbusd_epi32(neg_corr(k, yv), prep(k, x0, x1), yv);
        float s0 = h2f(rd16(x0)) * h2f(rd16(y0));
        float s1 = two ? h2f(rd16(x1)) * h2f(rd16(y1)) : 0.0f;
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), two_scales(s0, s1), acc0);
        if (has_min(k)) {
            summs += h2f(rd16(x0 + 2)) * h2f(rd16(y0 + 2));
            if (two) summs += h2f(rd16(x1 + 2)) * h2f(rd16(y1 + 2));
        }
    }
    float r = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    if (has_min(k)) r += hsum8(macc) + summs;
    *s = r;
}

#define DEFINE_DOT(name, kind) \
    static void name(int n, float *s, const void *w, const void *a) { dot_impl(kind, n, s, w, a); }
DEFINE_DOT(q8_0_vec_dot, K_Q8_0)
DEFINE_DOT(q4_0_vec_dot, K_Q4_0)
DEFINE_DOT(q5_0_vec_dot, K_Q5_0)
DEFINE_DOT(iq4_nl_vec_dot, K_IQ4_NL)
DEFINE_DOT(q4_1_vec_dot, K_Q4_1)
DEFINE_DOT(q5_1_vec_dot, K_Q5_1)

/* -------------------------------------------------------------- tiles */

#define TILE_ARGS int n, float *s, size_t ss, const void *w, size_t ws, const void *a, size_t as
#define ROWP(p, stride, i) ((const char *)(p) + (size_t)(i) * (stride))

/* ---------------------------------------------------------- F32 / F16 */

ALWAYS_INLINE __mmask16 tail_mask(int r) { return (__mmask16)((1u << r) - 1); }

ALWAYS_INLINE __m512 ld_f32(const float *p) { return _mm512_loadu_ps(p); }
ALWAYS_INLINE __m512 ld_f32_m(const float *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
ALWAYS_INLINE __m512 ld_f16(const nuage_fp16 *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
ALWAYS_INLINE __m512 ld_f16_m(const nuage_fp16 *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

/* Eight accumulators: FMA latency (4) x throughput (2 per cycle). */
static void f32_vec_dot(int n, float *s, const void *vw, const void *va) {
    const float *x = vw, *y = va;
    __m512 acc[8];
    for (int k = 0; k < 8; k++) acc[k] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 128 <= n; i += 128)
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            acc[k] = _mm512_fmadd_ps(ld_f32(x + i + 16 * k), ld_f32(y + i + 16 * k), acc[k]);
    for (; i + 16 <= n; i += 16) acc[0] = _mm512_fmadd_ps(ld_f32(x + i), ld_f32(y + i), acc[0]);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        acc[1] = _mm512_fmadd_ps(ld_f32_m(x + i, m), ld_f32_m(y + i, m), acc[1]);
    }
    for (int k = 0; k < 4; k++) acc[k] = _mm512_add_ps(acc[k], acc[k + 4]);
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

/* Sixteen horizontal sums at once, v[4i + j] = accumulator of (weight row
 * i, token j). Each sum is formed exactly as _mm512_reduce_add_ps forms it
 * (halves of 256, then of 128, then lanes 0+2 / 1+3, then 0+1), so the
 * results are bit-identical to sixteen reduce_add calls, in 45
 * instructions instead of ~130. 128-bit lane j of the result holds rows
 * 0..3 of token j. */
ALWAYS_INLINE __m512 reduce16(const __m512 v[16]) {
    __m512 c[8], e[4], g[2];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) /* [A.lo + A.hi | B.lo + B.hi] */
        c[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) /* 128-bit halves: block m = v[4q + m] */
        e[q] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * q], c[2 * q + 1], 0x88),
                             _mm512_shuffle_f32x4(c[2 * q], c[2 * q + 1], 0xDD));
#pragma GCC unroll 2
    for (int r = 0; r < 2; r++) /* lanes 0+2, 1+3 */
        g[r] = _mm512_add_ps(_mm512_shuffle_ps(e[2 * r], e[2 * r + 1], 0x44),
                             _mm512_shuffle_ps(e[2 * r], e[2 * r + 1], 0xEE));
    /* lanes 0+1: block m lane q = sum of v[4q + m] */
    return _mm512_add_ps(_mm512_shuffle_ps(g[0], g[1], 0x88), _mm512_shuffle_ps(g[0], g[1], 0xDD));
}

/* Store an NW x NA tile of sums from accumulators acc[i][j]. */
ALWAYS_INLINE void store_tile(__m512 acc[4][4], float *s, size_t ss, const int NW, const int NA) {
    __m512 v[16];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            v[4 * i + j] = i < NW && j < NA ? acc[i][j] : _mm512_setzero_ps();
    const __m512 r = reduce16(v);
    const __mmask8 m = (__mmask8)((1u << NW) - 1);
    _mm_mask_storeu_ps(s, m, _mm512_castps512_ps128(r));
    if (NA > 1) _mm_mask_storeu_ps(s + ss, m, _mm512_extractf32x4_ps(r, 1));
    if (NA > 2) _mm_mask_storeu_ps(s + 2 * ss, m, _mm512_extractf32x4_ps(r, 2));
    if (NA > 3) _mm_mask_storeu_ps(s + 3 * ss, m, _mm512_extractf32x4_ps(r, 3));
}

/* One tile body for the float weight types, activations always F32 (for
 * F16 weights, values rounded to fp16 by f16_tile_prep: the same numbers
 * ggml's F16 activations hold, converted once per matmul instead of once
 * per tile). LD/LDM load 16 weights as floats. */
#define FLOAT_TILE_IMPL(name, T, LD, LDM)                                               \
    ALWAYS_INLINE void name(TILE_ARGS, const int NW, const int NA) {                    \
        const T *x[4];                                                                  \
        const float *y[4];                                                              \
        __m512 acc[4][4];                                                               \
        _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) x[i] =                     \
            (const T *)ROWP(w, ws, i);                                                  \
        _Pragma("GCC unroll 4") for (int j = 0; j < NA; j++) y[j] =                     \
            (const float *)ROWP(a, as, j);                                              \
        _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++)                            \
            _Pragma("GCC unroll 4") for (int j = 0; j < NA; j++) acc[i][j] =            \
                _mm512_setzero_ps();                                                    \
        int kk = 0;                                                                     \
        for (; kk + 16 <= n; kk += 16) {                                                \
            __m512 xv[4];                                                               \
            _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) xv[i] = LD(x[i] + kk); \
            _Pragma("GCC unroll 4") for (int j = 0; j < NA; j++) {                      \
                __m512 yv = _mm512_loadu_ps(y[j] + kk);                                 \
                _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) acc[i][j] =        \
                    _mm512_fmadd_ps(xv[i], yv, acc[i][j]);                              \
            }                                                                           \
        }                                                                               \
        if (kk < n) {                                                                   \
            const __mmask16 m = tail_mask(n - kk);                                      \
            __m512 xv[4];                                                               \
            _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) xv[i] =                \
                LDM(x[i] + kk, m);                                                      \
            _Pragma("GCC unroll 4") for (int j = 0; j < NA; j++) {                      \
                __m512 yv = _mm512_maskz_loadu_ps(m, y[j] + kk);                        \
                _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) acc[i][j] =        \
                    _mm512_fmadd_ps(xv[i], yv, acc[i][j]);                              \
            }                                                                           \
        }                                                                               \
        store_tile(acc, s, ss, NW, NA);                                                 \
    }

FLOAT_TILE_IMPL(f32_tile_impl, float, ld_f32, ld_f32_m)
FLOAT_TILE_IMPL(f16_tile_impl, nuage_fp16, ld_f16, ld_f16_m)

/* F16 activations for the tile: x rounded to fp16 (as f16_from_float
 * rounds) and widened back, exactly representable. */
static void f16_tile_prep(const float *x, void *vy, int64_t n) {
    float *y = vy;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(x + i),
                                                                _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) y[i] = nuage_fp16_to_fp32(nuage_fp32_to_fp16(x[i]));
}

typedef void (*tile_fn)(TILE_ARGS);

#define INST1(impl, NW, NA)                                                     \
    static void impl##_##NW##_##NA(TILE_ARGS) { impl(n, s, ss, w, ws, a, as, NW, NA); }
#define INST_ROW(impl, NW) \
    INST1(impl, NW, 1) INST1(impl, NW, 2) INST1(impl, NW, 3) INST1(impl, NW, 4)
#define INST_ALL(impl)                                                                  \
    INST_ROW(impl, 1) INST_ROW(impl, 2) INST_ROW(impl, 3) INST_ROW(impl, 4)             \
    static const tile_fn impl##_tab[4][4] = {                                           \
        {impl##_1_1, impl##_1_2, impl##_1_3, impl##_1_4},                               \
        {impl##_2_1, impl##_2_2, impl##_2_3, impl##_2_4},                               \
        {impl##_3_1, impl##_3_2, impl##_3_3, impl##_3_4},                               \
        {impl##_4_1, impl##_4_2, impl##_4_3, impl##_4_4}};                              \
    static void impl##_tile(int n, float *s, size_t ss, const void *w, size_t ws, int nw, \
                            const void *a, size_t as, int na) {                         \
        impl##_tab[nw - 1][na - 1](n, s, ss, w, ws, a, as);                             \
    }

INST_ALL(f32_tile_impl)
INST_ALL(f16_tile_impl)

/* --------------------------------------------------------------- BF16 */

ALWAYS_INLINE __m512 bf_lo(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
ALWAYS_INLINE __m512 bf_hi(__m512i v) {
    return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
}

/* Without AVX512-BF16: even and odd halves widened by shift/mask. */
static void bf16_vec_dot(int n, float *s, const void *vw, const void *va) {
    const nuage_bf16 *x = vw, *y = va;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i x0 = _mm512_loadu_si512(x + i), y0 = _mm512_loadu_si512(y + i);
        __m512i x1 = _mm512_loadu_si512(x + i + 32), y1 = _mm512_loadu_si512(y + i + 32);
        a0 = _mm512_fmadd_ps(bf_lo(x0), bf_lo(y0), a0);
        a1 = _mm512_fmadd_ps(bf_hi(x0), bf_hi(y0), a1);
        a2 = _mm512_fmadd_ps(bf_lo(x1), bf_lo(y1), a2);
        a3 = _mm512_fmadd_ps(bf_hi(x1), bf_hi(y1), a3);
    }
    for (; i < n; i += 32) {
        __mmask32 m = n - i >= 32 ? 0xffffffffu : (__mmask32)((1u << (n - i)) - 1);
        __m512i x0 = _mm512_maskz_loadu_epi16(m, x + i), y0 = _mm512_maskz_loadu_epi16(m, y + i);
        a0 = _mm512_fmadd_ps(bf_lo(x0), bf_lo(y0), a0);
        a1 = _mm512_fmadd_ps(bf_hi(x0), bf_hi(y0), a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* With AVX512-BF16: vdpbf16ps, 32 products per instruction. */
static void bf16_vec_dot_dp(int n, float *s, const void *vw, const void *va) {
    const nuage_bf16 *x = vw, *y = va;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 128 <= n; i += 128) {
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(x + i),
                              (__m512bh)_mm512_loadu_si512(y + i));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(x + i + 32),
                              (__m512bh)_mm512_loadu_si512(y + i + 32));
        a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(x + i + 64),
                              (__m512bh)_mm512_loadu_si512(y + i + 64));
        a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(x + i + 96),
                              (__m512bh)_mm512_loadu_si512(y + i + 96));
    }
    for (; i < n; i += 32) {
        __mmask32 m = n - i >= 32 ? 0xffffffffu : (__mmask32)((1u << (n - i)) - 1);
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_maskz_loadu_epi16(m, x + i),
                              (__m512bh)_mm512_maskz_loadu_epi16(m, y + i));
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* BF16 tile (AVX512-BF16): one vdpbf16ps per 32 values per (row, token);
 * the tail is masked. */
ALWAYS_INLINE void bf16_tile_impl(TILE_ARGS, const int NW, const int NA) {
    const nuage_bf16 *x[4], *y[4];
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++) x[i] = (const nuage_bf16 *)ROWP(w, ws, i);
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) y[j] = (const nuage_bf16 *)ROWP(a, as, j);
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) acc[i][j] = _mm512_setzero_ps();
    for (int k = 0; k < n; k += 32) {
        const __mmask32 m = n - k >= 32 ? 0xffffffffu : (__mmask32)((1u << (n - k)) - 1);
        __m512bh xv[4];
#pragma GCC unroll 4
        for (int i = 0; i < NW; i++) xv[i] = (__m512bh)_mm512_maskz_loadu_epi16(m, x[i] + k);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const __m512bh yv = (__m512bh)_mm512_maskz_loadu_epi16(m, y[j] + k);
#pragma GCC unroll 4
            for (int i = 0; i < NW; i++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv[i], yv);
        }
    }
    store_tile(acc, s, ss, NW, NA);
}
INST_ALL(bf16_tile_impl)

/* ----------------------------------------------- activation quantizers */

/* Same arithmetic as quantize_block_q8 in quant_legacy.c: bit-identical. */
ALWAYS_INLINE float q8_block(const float *x, int8_t *q, int *sum) {
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    enum { rnd = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }; /* a constant expression for clang */
    __m512i i0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, id), rnd);
    __m512i i1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, id), rnd);
    if (sum) *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
    _mm_storeu_si128((__m128i *)q, _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtsepi32_epi8(i1));
    return d;
}

static void q8_0_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / QK; b++)
        y[b].d = (nuage_fp16)_cvtss_sh(q8_block(x + b * QK, y[b].qs, NULL), _MM_FROUND_TO_NEAREST_INT);
}

static void q8_1_from_float(const float *x, void *vy, int64_t n) {
    nuage_block_q8_1 *y = vy;
    for (int64_t b = 0; b < n / QK; b++) {
        int sum;
        float d = q8_block(x + b * QK, y[b].qs, &sum);
        y[b].d = (nuage_fp16)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[b].s = (nuage_fp16)_cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

/* ------------------------------------------------------- registration */

void nuage__legacy_register_avx512(nuage_type_traits *t, bool bf16) {
    t[NUAGE_TYPE_F32].vec_dot = f32_vec_dot;
    t[NUAGE_TYPE_F32].vec_dot_tile = f32_tile_impl_tile;
    /* F16 vec_dot stays AVX2's: 256-bit vcvtph2ps is up to 3x the
     * throughput of the 512-bit one on AMD Zen. */
    t[NUAGE_TYPE_F16].vec_dot_tile = f16_tile_impl_tile;
    t[NUAGE_TYPE_F16].tile_prep = f16_tile_prep;
    t[NUAGE_TYPE_BF16].vec_dot = bf16 ? bf16_vec_dot_dp : bf16_vec_dot;
    if (bf16) t[NUAGE_TYPE_BF16].vec_dot_tile = bf16_tile_impl_tile;

    t[NUAGE_TYPE_Q8_0].from_float = q8_0_from_float;
    t[NUAGE_TYPE_Q8_1].from_float = q8_1_from_float;

    t[NUAGE_TYPE_Q8_0].vec_dot = q8_0_vec_dot;
    t[NUAGE_TYPE_Q4_0].vec_dot = q4_0_vec_dot;
    t[NUAGE_TYPE_Q5_0].vec_dot = q5_0_vec_dot;
    t[NUAGE_TYPE_IQ4_NL].vec_dot = iq4_nl_vec_dot;
    t[NUAGE_TYPE_Q4_1].vec_dot = q4_1_vec_dot;
    t[NUAGE_TYPE_Q5_1].vec_dot = q5_1_vec_dot;
}
