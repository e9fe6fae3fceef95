/*
 * gemm_k_avx512.c - AVX-512 VNNI rows-in-lanes kernels for the K-quants
 * (design and arithmetic: gemm_k.h; loop structure as gemm_avx512.c).
 *
 * Per group of 16 weight rows (a short last group repeats its last row
 * and drops those lanes at the store):
 *
 *   for each slab of up to TT tokens:
 *     acc[TT][16] = 0
 *     for each slab of up to KB blocks:
 *       build the panel: per block, 64 code vectors W (lane r = row r's
 *         unsigned codes 4q..4q+3), the sub-block scales S as int32
 *         lanes, the bsum factors E as int16 pairs, d and m as floats
 *       for the slab's tokens, 4 at a time, per block:
 *         icor = sum_k vpdpwssd(E[k], bsum pair k)  (32-value sub-blocks:
 *                four steps over the 32-value sums)
 *         fb   = mins ? 0 : float(icor) d
 *         per sub-block g: fb = fma(float(sum vpdpbusd(W, y[4q..])), d s_g, fb)
 *           (the chain seeded so that float() is one subtract: see kern)
 *         acc  = fma(fb, dy, acc)      (mins: acc -= float(icor) m dy)
 *     store acc (16 rows) for every token
 *
 * Building a block's panel reads each row's bytes in 16-byte chunks and
 * transposes 16 rows of them at once (tr16: four 4x4 dword transposes in
 * the 128-bit lanes), so a dword of a chunk lands in its row's lane; the
 * scales are then unpacked with shifts and masks in the lanes. About 400
 * instructions per 16 rows x 256 values, paid once per TT tokens (the
 * products cost about 90 per token, 64 of them vpdpbusd). For one token
 * (decode) each block is built and used at once.
 */
#include <immintrin.h>
#include <string.h>

#include "engine/gemm_k.h"
#include "engine/quant_k.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define QK 256
#define KB 2  /* blocks per panel slab: 11.5 KiB, stays in L1 */
#define TT 64 /* tokens per accumulator slab: 4 KiB */
enum { T_Q4_K, T_Q6_K, T_IQ4_XS, T_Q5_K, T_Q2_K, T_Q3_K };

/* One block of 16 rows, transposed (gemm_k.h's generic form). */
typedef struct {
    __m512i W[64]; /* codes 4q..4q+3 of row r in dword lane r */
    union {
        __m512i S[16];  /* sub-block scales (8 used when groups are 32)... */
        __m512 DS[16];  /* ... turned into d * scale (exact) by build_block */
    };
    __m512i E[8];  /* bsum factors, int16 pairs in bsum-pair order */
    __m512 d, m;   /* fp16 factors as floats (m: types with mins) */
} pblk;

ALWAYS_INLINE int has_min(int t) { return t == T_Q4_K || t == T_Q5_K || t == T_Q2_K; }
ALWAYS_INLINE int group(int t) { return t == T_Q6_K || t == T_Q2_K || t == T_Q3_K ? 16 : 32; }
ALWAYS_INLINE size_t bsize(int t) {
    return t == T_Q4_K   ? sizeof(nuage_block_q4_K)
           : t == T_Q5_K ? sizeof(nuage_block_q5_K)
           : t == T_Q6_K ? sizeof(nuage_block_q6_K)
           : t == T_Q2_K ? sizeof(nuage_block_q2_K)
           : t == T_Q3_K ? sizeof(nuage_block_q3_K)
                         : sizeof(nuage_block_iq4_xs);
}

/* The 16 bytes at rp[r] + off of the 16 rows: p[g] dword lane r = dword g
 * of row r's chunk. Rows are loaded [r | r+4 | r+8 | r+12] per register,
 * then a 4x4 dword transpose within each 128-bit lane. */
ALWAYS_INLINE void tr16(const char *const rp[16], size_t off, __m512i p[4]) {
    __m512i z[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rp[q] + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rp[q + 4] + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rp[q + 8] + off)), 2);
        z[q] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rp[q + 12] + off)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]);
    const __m512i t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]);
    const __m512i t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    /* z[q] lane L holds row q + 4L: after the transpose, p[g] lane L
     * dword m is dword g of row 4L + m, i.e. dword lane r = row r */
    p[0] = _mm512_unpacklo_epi64(t0, t2);
    p[1] = _mm512_unpackhi_epi64(t0, t2);
    p[2] = _mm512_unpacklo_epi64(t1, t3);
    p[3] = _mm512_unpackhi_epi64(t1, t3);
}

ALWAYS_INLINE __m512i set1(int v) { return _mm512_set1_epi32(v); }

/* fp16 in the low (hi = 0) or high 16 bits of each dword, as floats. */
ALWAYS_INLINE __m512 h2f_lanes(__m512i v, int hi) {
    if (hi) v = _mm512_srli_epi32(v, 16);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

/* int16 pair (a, b) per dword from two int32 vectors in int16 range. */
ALWAYS_INLINE __m512i pair16(__m512i a, __m512i b) {
    return _mm512_or_si512(_mm512_and_si512(a, set1(0xffff)), _mm512_slli_epi32(b, 16));
}

/* Q4_K: block = d, dmin, scales[12], qs[128]; Q5_K (q5 set): d, dmin,
 * scales[12], qh[32], qs[128]. */
ALWAYS_INLINE void build_q4_K(const char *const rp[16], size_t off, pblk *o, const int q5) {
    __m512i h[4];
    tr16(rp, off, h); /* d | dmin << 16, then the 12 scale bytes w0 w1 w2 */
    o->d = h2f_lanes(h[0], 0);
    o->m = h2f_lanes(h[0], 1);
    const __m512i m6 = set1(0x3f3f3f3f), m4 = set1(0x0f0f0f0f), m30 = set1(0x30303030);
    const __m512i sc_lo = _mm512_and_si512(h[1], m6);
    const __m512i mn_lo = _mm512_and_si512(h[2], m6);
    /* 0xEA: (a & b) | c */
    const __m512i sc_hi = _mm512_ternarylogic_epi32(h[3], m4, _mm512_and_si512(_mm512_srli_epi32(h[1], 2), m30), 0xEA);
    const __m512i mn_hi = _mm512_ternarylogic_epi32(_mm512_srli_epi32(h[3], 4), m4,
                                                    _mm512_and_si512(_mm512_srli_epi32(h[2], 2), m30), 0xEA);
    const __m512i ff = set1(0xff);
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        o->S[g] = _mm512_and_si512(_mm512_srli_epi32(sc_lo, 8 * g), ff);
        o->S[g + 4] = _mm512_and_si512(_mm512_srli_epi32(sc_hi, 8 * g), ff);
    }
    /* E[2j] = E[2j+1] = (mn[2j], mn[2j+1]) */
#pragma GCC unroll 2
    for (int hh = 0; hh < 2; hh++) {
        const __m512i x = hh ? mn_hi : mn_lo;
        const __m512i p01 = pair16(_mm512_and_si512(x, ff), _mm512_and_si512(_mm512_srli_epi32(x, 8), ff));
        const __m512i p23 = pair16(_mm512_and_si512(_mm512_srli_epi32(x, 16), ff), _mm512_srli_epi32(x, 24));
        o->E[4 * hh + 0] = o->E[4 * hh + 1] = p01;
        o->E[4 * hh + 2] = o->E[4 * hh + 3] = p23;
    }
    /* chunk k of qs (c = k / 2): low nibbles are values 64c + 16(k%2) +
     * 4m.., high ones 32 further. Q5_K: bit v / 32 of qh[v % 32] is worth
     * 16; qh chunk k % 2 holds the bytes of these values. */
    const __m512i n4 = _mm512_set1_epi8(15), b10 = _mm512_set1_epi8(0x10);
    __m512i qh[2][4];
    if (q5) {
        tr16(rp, off + 16, qh[0]);
        tr16(rp, off + 32, qh[1]);
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        __m512i p[4];
        tr16(rp, off + (q5 ? 48 : 16) + 16 * (size_t)k, p);
        const int c = k / 2, q0 = 16 * c + 4 * (k % 2);
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++) {
            __m512i lo = _mm512_and_si512(p[m], n4);
            __m512i hi = _mm512_and_si512(_mm512_srli_epi16(p[m], 4), n4);
            if (q5) {
                /* bit 2c (low) / 2c + 1 (high) moved to bit 4; 0xF8: a | (b & c) */
                const __m512i hq = qh[k % 2][m];
                const int bl = 2 * c, bh = 2 * c + 1;
                const __m512i sl = bl <= 4 ? _mm512_slli_epi16(hq, 4 - bl) : _mm512_srli_epi16(hq, bl - 4);
                const __m512i sh = bh <= 4 ? _mm512_slli_epi16(hq, 4 - bh) : _mm512_srli_epi16(hq, bh - 4);
                lo = _mm512_ternarylogic_epi32(lo, sl, b10, 0xF8);
                hi = _mm512_ternarylogic_epi32(hi, sh, b10, 0xF8);
            }
            o->W[q0 + m] = lo;
            o->W[q0 + 8 + m] = hi;
        }
    }
}

/* Q2_K: block = scales[16] (scale | min << 4), qs[64], d, dmin. */
ALWAYS_INLINE void build_q2_K(const char *const rp[16], size_t off, pblk *o) {
    __m512i x[4], t[4];
    tr16(rp, off, x);      /* x[j]: scale bytes 4j..4j+3 */
    tr16(rp, off + 68, t); /* t[3]: d | dmin << 16 */
    o->d = h2f_lanes(t[3], 0);
    o->m = h2f_lanes(t[3], 1);
    const __m512i f = set1(15), w8 = set1(0x00ff00ff);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) o->S[4 * j + u] = _mm512_and_si512(_mm512_srli_epi32(x[j], 8 * u), f);
        /* mins as words (mn[4j], mn[4j+2]) and (mn[4j+1], mn[4j+3]) */
        const __m512i mn = _mm512_and_si512(_mm512_srli_epi32(x[j], 4), set1(0x0f0f0f0f));
        o->E[2 * j] = _mm512_and_si512(mn, w8);
        o->E[2 * j + 1] = _mm512_and_si512(_mm512_srli_epi32(mn, 8), w8);
    }
    /* qs chunk i (h = i / 2): bits 2j of its bytes are values 128h + 32j
     * + 16(i % 2) + 4m.., vector 32h + 8j + 4(i % 2) + m */
    const __m512i m3 = _mm512_set1_epi8(3);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m512i p[4];
        tr16(rp, off + 16 + 16 * (size_t)i, p);
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                o->W[32 * (i / 2) + 8 * j + 4 * (i % 2) + m] =
                    _mm512_and_si512(j ? _mm512_srli_epi16(p[m], 2 * j) : p[m], m3);
    }
}

/* Q3_K: block = hmask[32], qs[64], scales[12] (16 six-bit, biased 32), d. */
ALWAYS_INLINE void build_q3_K(const char *const rp[16], size_t off, pblk *o) {
    /* bytes 94..109 (the block ends at 110): realign to the scale words */
    __m512i t[4];
    tr16(rp, off + 94, t);
    const __m512i w0 = _mm512_or_si512(_mm512_srli_epi32(t[0], 16), _mm512_slli_epi32(t[1], 16));
    const __m512i w1 = _mm512_or_si512(_mm512_srli_epi32(t[1], 16), _mm512_slli_epi32(t[2], 16));
    const __m512i w2 = _mm512_or_si512(_mm512_srli_epi32(t[2], 16), _mm512_slli_epi32(t[3], 16));
    o->d = h2f_lanes(t[3], 1);
    o->m = o->d;
    const __m512i lo4 = set1(0x0f0f0f0f), lo2 = set1(0x03030303);
    __m512i r[4]; /* r[k]: biased scales 4k..4k+3, one per byte (nuage__k3_scale_words) */
    r[0] = _mm512_or_si512(_mm512_and_si512(w0, lo4), _mm512_slli_epi32(_mm512_and_si512(w2, lo2), 4));
    r[1] = _mm512_or_si512(_mm512_and_si512(w1, lo4),
                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w2, 2), lo2), 4));
    r[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w0, 4), lo4),
                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w2, 4), lo2), 4));
    r[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w1, 4), lo4),
                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w2, 6), lo2), 4));
    const __m512i ff = set1(0xff), w8 = set1(0x00ff00ff), b32 = set1(32), m4 = _mm512_set1_epi16(-4),
                  o32 = set1(0x00200020);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            o->S[4 * k + u] = _mm512_sub_epi32(_mm512_and_si512(_mm512_srli_epi32(r[k], 8 * u), ff), b32);
        /* words (s[4k], s[4k+2]) and (s[4k+1], s[4k+3]), times -4 (codes
         * are q + 4) */
        o->E[2 * k] = _mm512_mullo_epi16(_mm512_sub_epi16(_mm512_and_si512(r[k], w8), o32), m4);
        o->E[2 * k + 1] =
            _mm512_mullo_epi16(_mm512_sub_epi16(_mm512_and_si512(_mm512_srli_epi32(r[k], 8), w8), o32), m4);
    }
    /* qs chunk i (h = i / 2, half = i % 2) and hmask chunk half: value
     * 128h + 32j + 16half + 4m.. (vector 32h + 8j + 4half + m) has low
     * bits 2j of qs and bit 4h + j of hmask, moved to bit 2 */
    const __m512i m3 = _mm512_set1_epi8(3), b4 = _mm512_set1_epi8(4);
    __m512i hm[2][4];
    tr16(rp, off, hm[0]);
    tr16(rp, off + 16, hm[1]);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const int h = i / 2, half = i % 2;
        __m512i p[4];
        tr16(rp, off + 32 + 16 * (size_t)i, p);
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const int bit = 4 * h + j;
                const __m512i hb = bit >= 2 ? _mm512_srli_epi16(hm[half][m], bit - 2)
                                            : _mm512_slli_epi16(hm[half][m], 2 - bit);
                const __m512i lo = _mm512_and_si512(j ? _mm512_srli_epi16(p[m], 2 * j) : p[m], m3);
                /* 0xF8: a | (b & c) */
                o->W[32 * h + 8 * j + 4 * half + m] = _mm512_ternarylogic_epi32(lo, hb, b4, 0xF8);
            }
    }
}

/* IQ4_XS: block = d, scales_h, scales_l[4], qs[128]. */
ALWAYS_INLINE void build_iq4_xs(const char *const rp[16], size_t off, pblk *o) {
    __m512i h[4];
    tr16(rp, off, h); /* d | scales_h << 16, scales_l */
    o->d = h2f_lanes(h[0], 0);
    o->m = o->d;
    const __m512i sh = _mm512_srli_epi32(h[0], 16);
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) {
        const __m512i lo = _mm512_and_si512(_mm512_srli_epi32(h[1], 4 * g), set1(15));
        const __m512i hi = _mm512_and_si512(_mm512_slli_epi32(_mm512_srli_epi32(sh, 2 * g), 4), set1(0x30));
        o->S[g] = _mm512_sub_epi32(_mm512_or_si512(lo, hi), set1(32));
    }
    /* codes are grid + 128: e = -128 s, both halves of a sub-block */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512i a = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(o->S[2 * j], 7));
        const __m512i b = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(o->S[2 * j + 1], 7));
        o->E[2 * j] = o->E[2 * j + 1] = pair16(a, b);
    }
    const __m512i n4 = _mm512_set1_epi8(15);
    const __m512i tab = _mm512_broadcast_i32x4(
        _mm_add_epi8(_mm_loadu_si128((const __m128i *)nuage__k_iq4_grid), _mm_set1_epi8((char)0x80)));
    /* chunk ib: low nibbles are values 32ib + 4m.., high ones 16 further */
#pragma GCC unroll 8
    for (int ib = 0; ib < 8; ib++) {
        __m512i p[4];
        tr16(rp, off + 8 + 16 * (size_t)ib, p);
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++) {
            o->W[8 * ib + m] = _mm512_shuffle_epi8(tab, _mm512_and_si512(p[m], n4));
            o->W[8 * ib + 4 + m] = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(p[m], 4), n4));
        }
    }
}

/* Q6_K: block = ql[128], qh[64], scales[16] (int8), d. */
ALWAYS_INLINE void build_q6_K(const char *const rp[16], size_t off, pblk *o) {
    __m512i x[4];
    tr16(rp, off + 192, x); /* x[j]: scales 4j..4j+3, one byte each */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) o->S[4 * j + t] = _mm512_srai_epi32(_mm512_slli_epi32(x[j], 24 - 8 * t), 24);
        /* words (sc[4j], sc[4j+2]) and (sc[4j+1], sc[4j+3]), times -32
         * (codes are q + 32) */
        const __m512i m32 = _mm512_set1_epi16(-32);
        o->E[2 * j] = _mm512_mullo_epi16(_mm512_srai_epi16(_mm512_slli_epi16(x[j], 8), 8), m32);
        o->E[2 * j + 1] = _mm512_mullo_epi16(_mm512_srai_epi16(x[j], 8), m32);
    }
    _Alignas(32) uint16_t d16[16];
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++) memcpy(&d16[l], rp[l] + off + 208, 2);
    o->d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)d16));
    o->m = o->d;
    const __m512i n4 = _mm512_set1_epi8(15), b30 = _mm512_set1_epi8(0x30);
    /* qh chunk i' = 2h + half serves ql chunks 4h + 2k1 + half (k1 = 0, 1):
     * value 128h + 32k + 16half + 4m.. is vector 32h + 8k + 4half + m,
     * low nibble for k = k1, high for k = k1 + 2, its two high bits at
     * bit 2k of qh */
#pragma GCC unroll 4
    for (int ih = 0; ih < 4; ih++) {
        const int hb = ih / 2, half = ih % 2;
        __m512i qh[4];
        tr16(rp, off + 128 + 16 * (size_t)ih, qh);
#pragma GCC unroll 2
        for (int k1 = 0; k1 < 2; k1++) {
            __m512i ql[4];
            tr16(rp, off + 16 * (size_t)(4 * hb + 2 * k1 + half), ql);
#pragma GCC unroll 4
            for (int m = 0; m < 4; m++) {
                /* 0xF8: a | (b & c) */
                const __m512i hl = k1 ? _mm512_slli_epi16(qh[m], 2) : _mm512_slli_epi16(qh[m], 4);
                const __m512i hh = k1 ? _mm512_srli_epi16(qh[m], 2) : qh[m];
                o->W[32 * hb + 8 * k1 + 4 * half + m] =
                    _mm512_ternarylogic_epi32(_mm512_and_si512(ql[m], n4), hl, b30, 0xF8);
                o->W[32 * hb + 8 * (k1 + 2) + 4 * half + m] = _mm512_ternarylogic_epi32(
                    _mm512_and_si512(_mm512_srli_epi16(ql[m], 4), n4), hh, b30, 0xF8);
            }
        }
    }
}

/* Block at byte offset off of the 16 rows rp[] into o; prefetches a
 * 16th of the next row group's span (see gemm_avx512.c's build_block:
 * rows side by side defeat the hardware prefetchers). */
ALWAYS_INLINE void build_block(const int t, const char *const rp[16], size_t off, const char *next,
                               pblk *o) {
    const size_t bs = bsize(t);
    for (size_t p = 0; p < 16 * bs; p += 64) _mm_prefetch(next + off * 16 + p, _MM_HINT_T1);
    if (t == T_Q4_K || t == T_Q5_K) build_q4_K(rp, off, o, t == T_Q5_K);
    else if (t == T_Q6_K) build_q6_K(rp, off, o);
    else if (t == T_Q2_K) build_q2_K(rp, off, o);
    else if (t == T_Q3_K) build_q3_K(rp, off, o);
    else build_iq4_xs(rp, off, o);
    for (int g = 0; g < QK / group(t); g++) o->DS[g] = _mm512_mul_ps(_mm512_cvtepi32_ps(o->S[g]), o->d);
}

ALWAYS_INLINE __m512i bcast32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* J tokens (rows a, a + as, ...) over the panel's kb blocks from block
 * b0 on; acc is (J, 16) floats, read and written back. */
ALWAYS_INLINE void kern(const int t, const pblk *P, int kb, const char *a, size_t as, int b0,
                        float *acc, const int J) {
    const int G = group(t), NS = QK / G, VPS = G / 4, MIN = has_min(t);
    /* the dot chains start at the bits of 1.5 * 2^23, so chain - 1.5 * 2^23
     * as floats is float(dot) exactly (|dot| < 2^22 for every type here:
     * at most 241 * 127 * 32): a float subtract instead of vcvtdq2ps,
     * which would share vpdpbusd's port */
    const __m512i magic = _mm512_set1_epi32(0x4B400000);
    const __m512 fmagic = _mm512_set1_ps(12582912.0f);
    const nuage_gemm_kblk *ab[4];
    __m512 f[4];
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) {
        ab[j] = (const nuage_gemm_kblk *)(a + (size_t)j * as) + b0;
        f[j] = _mm512_load_ps(acc + 16 * j);
    }
    for (int b = 0; b < kb; b++) {
        const pblk *p = P + b;
        __m512i ic[4];
        __m512 fb[4];
        /* icor: the bsum factors (mins, or the code offsets' correction) */
#pragma GCC unroll 4
        for (int j = 0; j < J; j++) ic[j] = _mm512_setzero_si512();
        if (G == 32) {
            /* E[2k] = E[2k+1]: the 32-value sums, four steps */
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m512i e = _mm512_load_si512(p->E + 2 * k);
#pragma GCC unroll 4
                for (int j = 0; j < J; j++) ic[j] = _mm512_dpwssd_epi32(ic[j], e, bcast32(ab[j][b].bs32 + 2 * k));
            }
        } else {
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                const __m512i e = _mm512_load_si512(p->E + k);
#pragma GCC unroll 4
                for (int j = 0; j < J; j++) ic[j] = _mm512_dpwssd_epi32(ic[j], e, bcast32(ab[j][b].bs + 2 * k));
            }
        }
        /* fb = (mins ? 0 : float(icor) d); then per sub-block g,
         * fb = fma(float(dot_g), d s_g, fb): one vpdpbusd chain per token
         * (the J tokens' chains and the next sub-block's overlap), the
         * scale applied on the float ports */
#pragma GCC unroll 4
        for (int j = 0; j < J; j++)
            fb[j] = MIN ? _mm512_setzero_ps() : _mm512_mul_ps(_mm512_cvtepi32_ps(ic[j]), p->d);
#pragma GCC unroll 16
        for (int g = 0; g < NS; g++) {
            __m512i c[4];
#pragma GCC unroll 4
            for (int j = 0; j < J; j++) c[j] = magic;
#pragma GCC unroll 8
            for (int v = 0; v < VPS; v++) {
                const int q = g * VPS + v;
                const __m512i wq = _mm512_load_si512(p->W + q);
#pragma GCC unroll 4
                for (int j = 0; j < J; j++) c[j] = _mm512_dpbusd_epi32(c[j], wq, bcast32(ab[j][b].y + 4 * q));
            }
            const __m512 ds = _mm512_load_ps(p->DS + g);
#pragma GCC unroll 4
            for (int j = 0; j < J; j++)
                fb[j] = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_castsi512_ps(c[j]), fmagic), ds, fb[j]);
        }
        /* acc = fma(fb, dy, acc); mins: acc -= float(icor) m dy */
#pragma GCC unroll 4
        for (int j = 0; j < J; j++) {
            const __m512 dy = _mm512_set1_ps(ab[j][b].d);
            f[j] = _mm512_fmadd_ps(fb[j], dy, f[j]);
            if (MIN) f[j] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ic[j]), _mm512_mul_ps(p->m, dy), f[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < J; j++) _mm512_store_ps(acc + 16 * j, f[j]);
}

typedef void (*kern_fn)(const pblk *, int, const char *, size_t, int, float *);

#define KERN(name, T, J)                                                                 \
    static void kern_##name##_##J(const pblk *P, int kb, const char *a, size_t as, int b0, \
                                  float *acc) {                                          \
        kern(T, P, kb, a, as, b0, acc, J);                                               \
    }
#define KERNS(name, T) KERN(name, T, 1) KERN(name, T, 2) KERN(name, T, 3) KERN(name, T, 4)
KERNS(q4_K, T_Q4_K)
KERNS(q6_K, T_Q6_K)
KERNS(iq4_xs, T_IQ4_XS)
KERNS(q5_K, T_Q5_K)
KERNS(q2_K, T_Q2_K)
KERNS(q3_K, T_Q3_K)

ALWAYS_INLINE void gemm_run(const int t, const kern_fn kf[5], int n, float *y, size_t ys,
                            const void *w, size_t ws, int nw, const void *a, size_t as, int na) {
    const int nb = n / QK;
    _Alignas(64) pblk P[KB];
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
            /* one token (decode): each block used as soon as it is built */
            memset(acc, 0, sizeof(float) * 16);
            for (int b = 0; b < nb; b++) {
                build_block(t, rp, (size_t)b * bsize(t), next, &P[0]);
                kf[1](P, 1, a, as, b, acc);
            }
            _mm512_mask_storeu_ps(y + r0, keep, _mm512_load_ps(acc));
            continue;
        }
        for (int t0 = 0; t0 < na; t0 += TT) {
            const int tn = na - t0 < TT ? na - t0 : TT;
            memset(acc, 0, sizeof(float) * 16 * (size_t)tn);
            const char *at = (const char *)a + (size_t)t0 * as;
            for (int b0 = 0; b0 < nb; b0 += KB) {
                const int kb = nb - b0 < KB ? nb - b0 : KB;
                for (int b = 0; b < kb; b++)
                    build_block(t, rp, (size_t)(b0 + b) * bsize(t), next, &P[b]);
                int tt = 0;
                for (; tt + 4 <= tn; tt += 4) kf[4](P, kb, at + (size_t)tt * as, as, b0, acc + 16 * tt);
                if (tt < tn) kf[tn - tt](P, kb, at + (size_t)tt * as, as, b0, acc + 16 * tt);
            }
            for (int tt = 0; tt < tn; tt++)
                _mm512_mask_storeu_ps(y + (size_t)(t0 + tt) * ys + r0, keep,
                                      _mm512_load_ps(acc + 16 * tt));
        }
    }
}

#define GEMM(name, T)                                                                       \
    static void gemm_##name(int n, float *y, size_t ys, const void *w, size_t ws, int nw,   \
                            const void *a, size_t as, int na) {                             \
        static const kern_fn kf[5] = {NULL, kern_##name##_1, kern_##name##_2, kern_##name##_3, \
                                      kern_##name##_4};                                     \
        gemm_run(T, kf, n, y, ys, w, ws, nw, a, as, na);                                    \
    }
GEMM(q4_K, T_Q4_K)
GEMM(q6_K, T_Q6_K)
GEMM(iq4_xs, T_IQ4_XS)
GEMM(q5_K, T_Q5_K)
GEMM(q2_K, T_Q2_K)
GEMM(q3_K, T_Q3_K)

/* matmul uses gemm at every batch size once it is set; the row-major
 * tiles stay registered for bench_kernels' comparison. */
void nuage__gemm_k_register_avx512(nuage_type_traits *t) {
    t[NUAGE_TYPE_Q4_K].gemm = gemm_q4_K;
    t[NUAGE_TYPE_Q6_K].gemm = gemm_q6_K;
    t[NUAGE_TYPE_IQ4_XS].gemm = gemm_iq4_xs;
    t[NUAGE_TYPE_Q5_K].gemm = gemm_q5_K;
    t[NUAGE_TYPE_Q2_K].gemm = gemm_q2_K;
    t[NUAGE_TYPE_Q3_K].gemm = gemm_q3_K;
}
