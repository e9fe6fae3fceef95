/*
 * quant_k.h - private to the K-quant kernels (quant_k*.c).
 *
 * The K-quants pack 256 values ("super-block") with one or two fp16 factors
 * and small per-sub-block integer scales (and mins). Every dot product
 * against a Q8_K activation row therefore splits into exact integer work
 * (sub-block dots times integer scales) and a few float multiplies per
 * block. The scalar reference (quant_k.c) and the SIMD kernels
 * (quant_k_avx2.c, quant_k_avx512.c) share the bit-unpacking helpers below
 * so that the layouts are written down once.
 *
 * Sub-block scale packings, as ggml stores them:
 *   Q4_K/Q5_K: 12 bytes hold 8 six-bit scales and 8 six-bit mins. Bytes
 *     0-3 carry scales 0-3 in their low six bits, bytes 4-7 mins 0-3; the
 *     top two bits of bytes 0-3 / 4-7 are the high bits of scales 4-7 /
 *     mins 4-7, whose low nibbles sit in bytes 8-11 (scale low, min high).
 *   Q3_K: 12 bytes hold 16 six-bit scales biased by 32. Low nibbles: bytes
 *     0-7 (low halves for scales 0-7, high halves for 8-15); the two high
 *     bits of scale j are bits 2*(j/4) of byte 8 + j%4.
 */
#ifndef NUAGE_QUANT_K_H
#define NUAGE_QUANT_K_H

#include <stdint.h>
#include <string.h>

#include "engine/quant.h"

#define NUAGE__QK 256

/* Q4_K/Q5_K: unpack the 12 scale bytes into eight 6-bit scales (*sc, one
 * per byte, sub-block 0 in the lowest byte) and eight 6-bit mins (*mn). */
static inline void nuage__k4_scales(const uint8_t *s12, uint64_t *sc, uint64_t *mn) {
    uint32_t w0, w1, w2;
    memcpy(&w0, s12, 4);
    memcpy(&w1, s12 + 4, 4);
    memcpy(&w2, s12 + 8, 4);
    const uint32_t sc_lo = w0 & 0x3f3f3f3fu;
    const uint32_t mn_lo = w1 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
    const uint32_t mn_hi = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
    *sc = sc_lo | ((uint64_t)sc_hi << 32);
    *mn = mn_lo | ((uint64_t)mn_hi << 32);
}

/* Q3_K: unpack the 12 scale bytes into 16 six-bit scales, still biased by
 * 32 (subtract 32 for the signed scale), one per byte: r[k] holds scales
 * 4k..4k+3, lowest byte first. */
static inline void nuage__k3_scale_words(const uint8_t *s12, uint32_t r[4]) {
    uint32_t w0, w1, w2;
    memcpy(&w0, s12, 4);
    memcpy(&w1, s12 + 4, 4);
    memcpy(&w2, s12 + 8, 4);
    r[0] = (w0 & 0x0f0f0f0fu) | ((w2 & 0x03030303u) << 4);
    r[1] = (w1 & 0x0f0f0f0fu) | (((w2 >> 2) & 0x03030303u) << 4);
    r[2] = ((w0 >> 4) & 0x0f0f0f0fu) | (((w2 >> 4) & 0x03030303u) << 4);
    r[3] = ((w1 >> 4) & 0x0f0f0f0fu) | (((w2 >> 6) & 0x03030303u) << 4);
}

/* IQ4_XS: the 6-bit scale (biased by 32) of sub-block ib (0..7). */
static inline int nuage__iq4xs_scale(const nuage_block_iq4_xs *b, int ib) {
    return ((b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) |
           (((b->scales_h >> (2 * ib)) & 3) << 4);
}

/* IQ4_XS: all eight biased scales, one per byte (sub-block 0 lowest):
 * the low nibbles and the 2-bit high parts are spread out to bytes by
 * halving the field width at each step. */
static inline uint64_t nuage__iq4xs_scales8(const nuage_block_iq4_xs *b) {
    uint32_t l4;
    memcpy(&l4, b->scales_l, 4);
    uint64_t lo = l4;
    lo = (lo | (lo << 16)) & 0x0000ffff0000ffffull;
    lo = (lo | (lo << 8)) & 0x00ff00ff00ff00ffull;
    lo = (lo | (lo << 4)) & 0x0f0f0f0f0f0f0f0full;
    uint64_t hi = b->scales_h;
    hi = (hi | (hi << 24)) & 0x000000ff000000ffull;
    hi = (hi | (hi << 12)) & 0x000f000f000f000full;
    hi = (hi | (hi << 6)) & 0x0303030303030303ull;
    return lo | (hi << 4);
}

/* The 16 values of the IQ4_NL / IQ4_XS non-linear grid (ggml's table).
 * A private copy: quant_legacy.c has its own for IQ4_NL. */
static const int8_t nuage__k_iq4_grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                             1,    13,   25,  38,  53,  69,  89,  113};

/* ---- SIMD kernels (defined in quant_k_avx2.c / quant_k_avx512.c) ----- */
#define NUAGE__K_DECL(sfx)                                                           \
    void nuage__vec_dot_q2_K_##sfx(int n, float *s, const void *w, const void *a);   \
    void nuage__vec_dot_q3_K_##sfx(int n, float *s, const void *w, const void *a);   \
    void nuage__vec_dot_q4_K_##sfx(int n, float *s, const void *w, const void *a);   \
    void nuage__vec_dot_q5_K_##sfx(int n, float *s, const void *w, const void *a);   \
    void nuage__vec_dot_q6_K_##sfx(int n, float *s, const void *w, const void *a);   \
    void nuage__vec_dot_q8_K_##sfx(int n, float *s, const void *w, const void *a);   \
    void nuage__vec_dot_iq4_xs_##sfx(int n, float *s, const void *w, const void *a); \
    void nuage__tile_q4_K_##sfx(int n, float *s, size_t s_stride, const void *w,     \
                                size_t w_stride, int nw, const void *a,              \
                                size_t a_stride, int na);                            \
    void nuage__tile_q6_K_##sfx(int n, float *s, size_t s_stride, const void *w,     \
                                size_t w_stride, int nw, const void *a,              \
                                size_t a_stride, int na);

NUAGE__K_DECL(avx2)
NUAGE__K_DECL(avx512)

/* AVX-512 only: tiles of the remaining K types. */
#define NUAGE__K_TILE512(name)                                                        \
    void nuage__tile_##name##_avx512(int n, float *s, size_t s_stride, const void *w, \
                                     size_t w_stride, int nw, const void *a,          \
                                     size_t a_stride, int na);
NUAGE__K_TILE512(q2_K)
NUAGE__K_TILE512(q3_K)
NUAGE__K_TILE512(q5_K)
NUAGE__K_TILE512(iq4_xs)

/* Q8_K activation quantizer with AVX2 (bit-identical to the scalar one). */
void nuage__quantize_q8_K_avx2(const float *x, void *y, int64_t n);

#endif
