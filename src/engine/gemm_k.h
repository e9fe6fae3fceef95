/*
 * gemm_k.h - rows-in-lanes matrix products for the 256-value K-quants
 * (Q4_K, Q5_K, Q6_K, IQ4_XS, Q2_K, Q3_K; the shape of gemm.h's kernels).
 *
 * Why. The row-major K-quant tiles (quant_k_avx512.c) unpack a block
 * once per 4 tokens and then spend vpmaddubsw + vpdpwssd per 64 values
 * and (row, token), plus a horizontal reduction per output. Here, as in
 * gemm.h, the lanes of a vector are 16 different weight rows: a block's
 * 256 codes of 16 rows are transposed into 64 vectors (lane r = row r's
 * codes 4q..4q+3) and each is multiplied with one broadcast group of four
 * activation bytes (vpdpbusd with an embedded broadcast), so every lane
 * ends with its row's sub-block dot. The transposed panel is built once
 * per 64 tokens and stays in L1; weights stay in the file's layout (no
 * repacked copy at load).
 *
 * Every K-quant block is read here in one generic form:
 *   c[v]   unsigned code of value v (0..255)
 *   s[g]   integer scale of sub-block g (32 values: Q4_K, Q5_K, IQ4_XS;
 *          16: Q6_K, Q2_K, Q3_K)
 *   e[h]   integer factor of the activation's 16-value sum bsum[h]
 *   d, m   the block's fp16 factors (m only for types with mins: Q4_K,
 *          Q5_K, Q2_K)
 * dot_g = sum_{v in g} c[v] y[v] and icor = sum_h e[h] bsum[h] are exact
 * int32. For types with mins e[h] is the min of h's sub-block; for the
 * others it undoes the code offset (Q6_K stores q + 32: e[h] = -32 s[h];
 * Q3_K q + 4: e[h] = -4 s[h]; IQ4_XS's grid is offset by 128: e[h] =
 * -128 s[h / 2]).
 *
 * The arithmetic of every output is then fixed, whatever the batch, the
 * row count or the SIMD level that has the kernel:
 *   acc = 0; for each block b in order:
 *     fb  = mins ? 0 : (float)icor * d
 *     for each sub-block g in order: fb = fma((float)dot_g, s_g * d, fb)
 *     acc = fma(fb, dy, acc)
 *     (mins)  acc = fma(-(float)icor, m * dy, acc)
 * with dy the block's Q8_K activation scale (ggml's rounding, bit for
 * bit), every product rounded to float (s_g * d is exact: 11 x 8 bits)
 * and every dot_g exact in float (< 2^24). The scale is applied in float
 * rather than with vpmulld because on the x86 cores at hand the float
 * ports are idle while vpdpbusd keeps its port busy (Q6_K: 16.6 -> 12 ns
 * per row dot at 64 tokens). gemm_k.c computes it in C (gemm_ref);
 * gemm_k_avx512.c must give the same bits (tests/unit/test_gemm_k.c), and
 * since matmul uses gemm at every batch size a row's result never depends
 * on what it is batched with. This is not the row-major kernels' order
 * (they keep float lanes per block), so the AVX-512 level's logits move
 * by float rounding against before; the reference-logit tests bound it.
 *
 * Activations: gemm_prep rounds a row to Q8_K (the table's from_float)
 * and writes nuage_gemm_kblk per 256 values. The 16-value sums are stored
 * in the pair order the vpdpwssd steps want: dword k = 2j + o (o = 0, 1)
 * holds bsum[4j + o] (low half) and bsum[4j + 2 + o] (high half); the
 * weight side pairs e[] the same way. The types with 32-value sub-blocks
 * (e[h] equal over a sub-block's two halves) use the 32-value sums bs32
 * instead: half the vpdpwssd, the same exact icor. A prepared row takes
 * 308 bytes per 256 values, within the NUAGE_GEMM_ABLK-per-32 stride
 * matmul allots.
 */
#ifndef NUAGE_GEMM_K_H
#define NUAGE_GEMM_K_H

#include <stdint.h>

#include "engine/quant.h"

typedef struct {
    int8_t y[256];
    int16_t bs[16];  /* bsum pairs, order 0,2,1,3, 4,6,5,7, ... (above) */
    int16_t bs32[8]; /* 32-value sums bsum[2k] + bsum[2k+1], in order */
    float d;
} nuage_gemm_kblk;

/* Set gemm_ref and gemm_prep for the six types above (gemm stays NULL:
 * the scalar version is for tests). */
void nuage__gemm_k_register_ref(nuage_type_traits *table);

#if defined(NUAGE_X86)
/* Set gemm to the AVX-512 VNNI kernels. */
void nuage__gemm_k_register_avx512(nuage_type_traits *table);
#endif

#endif
