/*
 * gemm_avx512.c - AVX-512 VNNI rows-in-lanes kernels (design: gemm.h).
 *
 * Work is done per group of 16 weight rows (lane r = row r0 + r; a short
 * last group repeats its last row and drops those lanes at the store):
 *
 *   for each slab of up to TT tokens:
 *     acc[TT][16] = 0
 *     for each slab of up to KB blocks:
 *       build the panel: each block's 32 codes of the 16 rows, transposed
 *         into 8 vectors (vector g, lane r = row r's codes 4g..4g+3, as
 *         unsigned bytes c = q + o), and the 16 rows' scales as floats
 *       for the slab's tokens, 4 at a time:
 *         isum = corr + sum_g vpdpbusd(panel[g], broadcast(y[4g..4g+3]))
 *         acc  = fma(float(isum), scales * dy, acc)
 *     store acc (16 rows) for every token
 *
 * The transposes (build_bytes, build_nibbles) cost about 30 instructions
 * per 16 rows x 32 values, paid once per 64 tokens; for one token they
 * replace the horizontal sums the row-major kernels did, at about the
 * same cost, so decode keeps its speed (memory-bound: see the prefetch
 * note in build).
 */
#include <immintrin.h>
#include <string.h>

#include "engine/gemm.h"
#include "engine/quant_legacy.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define QK 32
#define KB 32 /* blocks per panel slab: 16 KiB of codes, stays in L1 */
#define TT 64 /* tokens per accumulator slab: 4 KiB */
enum { K_Q8_0, K_Q4_0, K_Q5_0, K_IQ4_NL, K_Q4_1, K_Q5_1 };

/* Q4_1 / Q5_1: a min term m * s per block besides d * isum (gemm.h). */
ALWAYS_INLINE int has_min(int k) { return k == K_Q4_1 || k == K_Q5_1; }

/* Byte offset of the packed nibbles and of the high bits in a block. */
ALWAYS_INLINE size_t qs_off(int k) {
    return k == K_Q5_0 ? 6 : k == K_Q5_1 ? 8 : k == K_Q4_1 ? 4 : 2;
}
ALWAYS_INLINE size_t qh_off(int k) { return k == K_Q5_1 ? 4 : 2; }

ALWAYS_INLINE size_t bsize(int k) {
    return k == K_Q8_0   ? sizeof(nuage_block_q8_0)
           : k == K_Q5_0 ? sizeof(nuage_block_q5_0)
           : k == K_Q4_1 ? sizeof(nuage_block_q4_1)
           : k == K_Q5_1 ? sizeof(nuage_block_q5_1)
                         : sizeof(nuage_block_q4_0);
}

ALWAYS_INLINE __m256i nibbles(const char *qs) {
    const __m128i v = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m = _mm_set1_epi8(15);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(v, m)),
                                   _mm_and_si128(_mm_srli_epi16(v, 4), m), 1);
}

/* The 32 unsigned codes c = q + o of one Q8_0, Q5_0 or Q5_1 block, in
 * value order. */
ALWAYS_INLINE __m256i codes(const int k, const char *blk) {
    if (k == K_Q8_0)
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(blk + 2)),
                                _mm256_set1_epi8((char)0x80));
    uint32_t qh;
    memcpy(&qh, blk + qh_off(k), 4);
    const __m256i hi = _mm256_and_si256(_mm256_movm_epi8(qh), _mm256_set1_epi8(16));
    return _mm256_or_si256(nibbles(blk + qs_off(k)), hi);
}

/* 32 codes per row (Q8_0, Q5_0, Q5_1): rows loaded two to a register,
 * [row a | row a+4] for a = 0..3, 8..11; two 32-bit and two 64-bit unpack
 * rounds transpose within 128-bit lanes; one vshufi32x4 per output puts
 * the rows in lane order. */
ALWAYS_INLINE void build_bytes(const int k, const char *const rp[16], size_t off, __m512i *o) {
    __m512i z[8];
#pragma GCC unroll 8
    for (int q = 0; q < 8; q++) {
        const int ra = q < 4 ? q : q + 4;
        z[q] = _mm512_inserti64x4(_mm512_castsi256_si512(codes(k, rp[ra] + off)),
                                  codes(k, rp[ra + 4] + off), 1);
    }
    __m512i u[8];
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m512i *s = z + 4 * h;
        const __m512i t0 = _mm512_unpacklo_epi32(s[0], s[1]);
        const __m512i t1 = _mm512_unpackhi_epi32(s[0], s[1]);
        const __m512i t2 = _mm512_unpacklo_epi32(s[2], s[3]);
        const __m512i t3 = _mm512_unpackhi_epi32(s[2], s[3]);
        u[4 * h + 0] = _mm512_unpacklo_epi64(t0, t2);
        u[4 * h + 1] = _mm512_unpackhi_epi64(t0, t2);
        u[4 * h + 2] = _mm512_unpacklo_epi64(t1, t3);
        u[4 * h + 3] = _mm512_unpackhi_epi64(t1, t3);
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        _mm512_store_si512(o + g, _mm512_shuffle_i32x4(u[g], u[g + 4], 0x88));
        _mm512_store_si512(o + g + 4, _mm512_shuffle_i32x4(u[g], u[g + 4], 0xDD));
    }
}

/* Q4_0 / Q4_1 / IQ4_NL: the 16 packed bytes of 16 rows are transposed first
 * ([row q | q+4 | q+8 | q+12] per register, one 4x4 transpose within
 * 128-bit lanes: lane 4L + m = row m + 4L), then split: the low nibbles
 * of dword g are values 4g..4g+3, the high ones 16+4g..16+4g+3. A third
 * of the work of unpacking each row first. */
ALWAYS_INLINE void build_nibbles(const int k, const char *const rp[16], size_t off, __m512i *o) {
    __m512i z[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rp[q] + off + qs_off(k))));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rp[q + 4] + off + qs_off(k))), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rp[q + 8] + off + qs_off(k))), 2);
        z[q] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rp[q + 12] + off + qs_off(k))), 3);
    }
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
        _mm_loadu_si128((const __m128i *)nuage__iq4nl_values), _mm_set1_epi8((char)0x80)));
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512i lo = _mm512_and_si512(p[g], m);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(p[g], 4), m);
        if (k == K_IQ4_NL) {
            lo = _mm512_shuffle_epi8(tab, lo);
            hi = _mm512_shuffle_epi8(tab, hi);
        }
        _mm512_store_si512(o + g, lo);
        _mm512_store_si512(o + g + 4, hi);
    }
}

/* One block of the 16 rows rp[] at byte offset off: 8 code vectors into
 * o, the scales as floats returned, the mins in *mw (types with mins). */
ALWAYS_INLINE __m512 build_block(const int k, const char *const rp[16], size_t off,
                                 const char *next, __m512i *o, __m512 *mw) {
    const size_t bs = bsize(k);
    /* 16 rows are read side by side, a pattern the hardware prefetchers
     * follow badly: decode ran at half the memory bandwidth. Rows are
     * contiguous, so the next group's 16 rows are one span; fetch 16
     * blocks' worth of it into L2 per block, which brings it in just as
     * this group ends (prefetching past the tensor is harmless). Measured
     * on the reference machine, 1.17 GB Q8_0 decode, one thread: 9.7 ->
     * 20.5 tok/s (llama.cpp: 18.6); a per-row stream into L1 or a longer
     * distance did worse. */
    for (size_t p = 0; p < 16 * bs; p += 64) _mm_prefetch(next + off * 16 + p, _MM_HINT_T1);
    if (k == K_Q4_0 || k == K_Q4_1 || k == K_IQ4_NL) build_nibbles(k, rp, off, o);
    else build_bytes(k, rp, off, o);
    /* the 16 rows' fp16 scales (scalar loads: vpgatherdd measured no
     * faster on Zen 4) */
    _Alignas(32) uint16_t d16[16];
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++) memcpy(&d16[l], rp[l] + off, 2);
    if (has_min(k)) {
        _Alignas(32) uint16_t m16[16];
#pragma GCC unroll 16
        for (int l = 0; l < 16; l++) memcpy(&m16[l], rp[l] + off + 2, 2);
        *mw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)m16));
    }
    return _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)d16));
}

/* Panel of blocks [b0, b0 + kb) of the 16 rows rp[]: codes in pw, scales
 * in ps[0, KB), mins in ps[KB, 2 KB). */
ALWAYS_INLINE void build(const int k, const char *const rp[16], const char *next, int b0, int kb,
                         __m512i *pw, __m512 *ps) {
    for (int b = 0; b < kb; b++)
        _mm512_store_ps(ps + b, build_block(k, rp, (size_t)(b0 + b) * bsize(k), next, pw + 8 * b,
                                            ps + KB + b));
}

ALWAYS_INLINE __m512i bcast32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* isum + corr of one token's block against the 8 code vectors W, then
 * f = fma(float(isum), sw * dy, f) and, with mins, f = fma(mw, s, f): the
 * arithmetic of gemm.h. */
ALWAYS_INLINE __m512 block_fma(const int MIN, const __m512i *W, __m512 sw, __m512 mw,
                               const nuage_gemm_ablk *x, __m512 f) {
    /* two chains, so the dpbusd latency is hidden; integer sums are
     * exact, the split changes nothing */
    __m512i i0 = MIN ? _mm512_setzero_si512() : _mm512_set1_epi32(x->corr);
    __m512i i1 = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int g = 0; g < 8; g += 2) {
        i0 = _mm512_dpbusd_epi32(i0, _mm512_load_si512(W + g), bcast32(x->y + 4 * g));
        i1 = _mm512_dpbusd_epi32(i1, _mm512_load_si512(W + g + 1), bcast32(x->y + 4 * g + 4));
    }
    const __m512 s = _mm512_mul_ps(sw, _mm512_set1_ps(x->d));
    f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(i0, i1)), s, f);
    return MIN ? _mm512_fmadd_ps(mw, _mm512_set1_ps(x->s), f) : f;
}

/* J tokens (rows a, a + as, ...) over the panel's kb blocks; acc is
 * (J, 16) floats, read and written back. */
ALWAYS_INLINE void kern(const int MIN, const __m512i *pw, const __m512 *ps, int kb, const char *a,
                        size_t as, int b0, float *acc, const int J) {
    const nuage_gemm_ablk *ab[4];
    __m512 f[4];
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) {
        ab[j] = (const nuage_gemm_ablk *)(a + (size_t)j * as) + b0;
        f[j] = _mm512_load_ps(acc + 16 * j);
    }
    for (int b = 0; b < kb; b++) {
        const __m512i *W = pw + 8 * b;
        const __m512 sw = _mm512_load_ps(ps + b);
        const __m512 mw = MIN ? _mm512_load_ps(ps + KB + b) : sw;
#pragma GCC unroll 4
        for (int j = 0; j < J; j++) f[j] = block_fma(MIN, W, sw, mw, ab[j] + b, f[j]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) _mm512_store_ps(acc + 16 * j, f[j]);
}

#define KERN(M, J)                                                                       \
    static void kern##M##_##J(const __m512i *pw, const __m512 *ps, int kb, const char *a, \
                              size_t as, int b0, float *acc) {                            \
        kern(M, pw, ps, kb, a, as, b0, acc, J);                                           \
    }
KERN(0, 1)
KERN(0, 2)
KERN(0, 3)
KERN(0, 4)
KERN(1, 1)
KERN(1, 2)
KERN(1, 3)
KERN(1, 4)

ALWAYS_INLINE void gemm_run(const int k, int n, float *y, size_t ys, const void *w, size_t ws,
                            int nw, const void *a, size_t as, int na) {
    typedef void (*kern_fn)(const __m512i *, const __m512 *, int, const char *, size_t, int,
                            float *);
    static const kern_fn kerns[2][5] = {{NULL, kern0_1, kern0_2, kern0_3, kern0_4},
                                        {NULL, kern1_1, kern1_2, kern1_3, kern1_4}};
    const kern_fn *kf = kerns[has_min(k)];
    const int nb = n / QK;
    _Alignas(64) __m512i pw[KB * 8];
    _Alignas(64) __m512 ps[2 * KB];
    _Alignas(64) float acc[TT * 16];
    for (int r0 = 0; r0 < nw; r0 += 16) {
        const int nr = nw - r0 < 16 ? nw - r0 : 16;
        const char *rp[16];
        for (int l = 0; l < 16; l++) {
            const int r = l < nr ? l : nr - 1;
            rp[l] = (const char *)w + (size_t)(r0 + r) * ws;
        }
        const __mmask16 keep = (__mmask16)((1u << nr) - 1);
        const char *next = (const char *)w + (size_t)(r0 + 16) * ws;
        if (na == 1) {
            /* one token (decode): no panel, each block's codes are used
             * as soon as they are built */
            const nuage_gemm_ablk *ab = (const nuage_gemm_ablk *)a;
            __m512 f = _mm512_setzero_ps();
            for (int b = 0; b < nb; b++) {
                __m512i W[8];
                __m512 mw = _mm512_setzero_ps();
                const __m512 sw = build_block(k, rp, (size_t)b * bsize(k), next, W, &mw);
                f = block_fma(has_min(k), W, sw, mw, ab + b, f);
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
                build(k, rp, next, b0, kb, pw, ps);
                int t = 0;
                for (; t + 4 <= tn; t += 4) kf[4](pw, ps, kb, at + (size_t)t * as, as, b0, acc + 16 * t);
                if (t < tn) kf[tn - t](pw, ps, kb, at + (size_t)t * as, as, b0, acc + 16 * t);
            }
            for (int t = 0; t < tn; t++)
                _mm512_mask_storeu_ps(y + (size_t)(t0 + t) * ys + r0, keep,
                                      _mm512_load_ps(acc + 16 * t));
        }
    }
}

#define GEMM(name, K)                                                                    \
    static void gemm_##name(int n, float *y, size_t ys, const void *w, size_t ws, int nw, \
                            const void *a, size_t as, int na) {                          \
        gemm_run(K, n, y, ys, w, ws, nw, a, as, na);                                     \
    }
GEMM(q8_0, K_Q8_0)
GEMM(q4_0, K_Q4_0)
GEMM(q5_0, K_Q5_0)
GEMM(iq4_nl, K_IQ4_NL)
GEMM(q4_1, K_Q4_1)
GEMM(q5_1, K_Q5_1)

/* gemm replaces the row-major tiles of these types: matmul would not call
 * them, so none are left registered at this level. */
void nuage__gemm_register_avx512(nuage_type_traits *t) {
    static const nuage_type types[] = {NUAGE_TYPE_Q8_0, NUAGE_TYPE_Q4_0, NUAGE_TYPE_Q5_0,
                                       NUAGE_TYPE_IQ4_NL, NUAGE_TYPE_Q4_1, NUAGE_TYPE_Q5_1};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) t[types[i]].vec_dot_tile = NULL;
    t[NUAGE_TYPE_Q8_0].gemm = gemm_q8_0;
    t[NUAGE_TYPE_Q4_0].gemm = gemm_q4_0;
    t[NUAGE_TYPE_Q5_0].gemm = gemm_q5_0;
    t[NUAGE_TYPE_IQ4_NL].gemm = gemm_iq4_nl;
    t[NUAGE_TYPE_Q4_1].gemm = gemm_q4_1;
    t[NUAGE_TYPE_Q5_1].gemm = gemm_q5_1;
}
