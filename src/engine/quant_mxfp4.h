/*
 * quant_mxfp4.h - private interface of the MXFP4 kernel files.
 *
 * MXFP4 (ggml type 39, the OCP microscaling FP4 format gpt-oss ships its
 * experts in): blocks of 32 weights along a row in 17 bytes, byte 0 an
 * E8M0 exponent e, bytes 1..16 qs; weight j (0..15) is the low nibble of
 * qs[j], weight j + 16 the high nibble. A nibble is an E2M1 float; ggml
 * stores its value doubled as a small integer (kvalues below, range
 * -12..12), so a weight is kvalues[nibble] * 2^(e - 128): the E8M0 scale
 * 2^(e - 127) halved. 2^(e - 128) is computed from the bits as ggml does
 * (e = 0 and 1 are the float subnormals 2^-128 and 2^-127, e = 255 is
 * 2^127): every byte is a finite power of two, so no exponent, however
 * corrupt, makes a NaN (the top exponents times the top levels overflow
 * to infinity, as in ggml).
 *
 * Products follow ggml: activations are rounded to Q8_0 (quant_legacy.h),
 * and per block isum = sum(kvalues[q] * y) (exact int32) scales by
 * dw * dy with dw = 2^(e - 128) and dy the activation's fp16 scale.
 *
 * Files: quant_mxfp4.c (scalar reference, quantizer, the rows-in-lanes
 * reference and activation preparation, registration), quant_mxfp4_avx2.c
 * and quant_mxfp4_avx512.c (the rows-in-lanes kernels for 8 and 16 rows).
 * The SIMD gemm kernels are bit-identical to gemm_ref (the arithmetic of
 * gemm.h, with dw from the exponent byte instead of an fp16 scale), so a
 * result does not depend on the batch, on the rows that share a call, or
 * on which of AVX2 / AVX-512 runs it.
 */
#ifndef NUAGE_QUANT_MXFP4_H
#define NUAGE_QUANT_MXFP4_H

#include <stdint.h>
#include <string.h>

#include "engine/quant.h"

#define NUAGE_QK_MXFP4 32
#define NUAGE_MXFP4_BLOCK 17 /* bytes: e, qs[16] (no padding, no alignment) */

/* Code offset of the rows-in-lanes kernels: weights enter the unsigned x
 * signed byte products as c = kvalues[q] + 12 (0..24), and the prepared
 * activation block carries corr = -12 * sum(y). Small codes keep AVX2's
 * saturating pair sums exact (2 * 24 * 128 < 32767). */
#define NUAGE_GEMM_O_MXFP4 12

/* The 16 E2M1 values doubled, indexed by nibble (ggml's kvalues_mxfp4). */
extern const int8_t nuage__mxfp4_values[16];

/* 2^(e - 128) as a float, from its bits (see above). */
static inline float nuage__e8m0_half(uint8_t e) {
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

#if defined(NUAGE_X86)
/* Set gemm for MXFP4 to the AVX2 kernel (8 rows per vector). */
void nuage__mxfp4_register_avx2(nuage_type_traits *table);
/* Set gemm for MXFP4 to the AVX-512 VNNI kernel (16 rows per vector). */
void nuage__mxfp4_register_avx512(nuage_type_traits *table);
#endif

#endif
