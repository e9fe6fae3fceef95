/*
 * gemm.h - rows-in-lanes matrix products for the 32-value integer types
 * (Q8_0, Q4_0, Q5_0, IQ4_NL; Q4_1 and Q5_1 with their min term).
 *
 * Why this exists. The row-major kernels (quant_legacy_*.c) keep one
 * accumulator per (weight row, token) whose lanes hold partial sums of
 * the same dot product; every block then costs a convert, a multiply and
 * an FMA per (row, token) pair, and every pair a horizontal reduction.
 * For prefill that is three float operations per 32 multiply-adds. Here
 * the lanes of a vector are 16 *different weight rows*: a block's 32
 * codes of 16 rows are transposed into eight vectors (lane r = row r's
 * four codes of one group), each multiplied by one broadcast group of
 * four activation bytes (vpdpbusd), so after eight instructions every
 * lane holds the full integer dot of its row's block. One convert, one
 * multiply and one FMA then serve 16 rows x 32 values. The transpose is
 * done once per slab of blocks and reused for up to 64 tokens, so the
 * weights stay in the file's layout (mmap, no copy, no repacking at load)
 * and a decode step (one token) costs about what the row-major kernel did.
 *
 * The arithmetic of every output is fixed, whatever the batch, the row
 * count or the SIMD level that has the kernel:
 *   isum_b = sum over the block's 32 values of w * y       (exact int32)
 *   acc    = 0; for b = 0 .. nb-1: acc = fma((float)isum_b, dw_b * dy_b, acc)
 * with dw_b the weight block's fp16 scale and dy_b the activation's
 * (fp16-rounded, as ggml stores it), dw_b * dy_b rounded to float. That
 * is ggml's own scalar order. Q4_1 and Q5_1 add, per block after that
 * step, acc = fma(m_b, s_b, acc) with their fp16 min m_b and the
 * activation's s_b = fp16(dy_b * sum(y)) (ggml's Q8_1 rounding, from which
 * they take y and dy too). This makes gemm and gemm_ref bit-equal and a
 * sequence's logits independent of what it is batched with.
 *
 * Activations are prepared once per matmul by the type's gemm_prep, from
 * the same Q8_0 rounding as vec_dot uses, into NUAGE_GEMM_ABLK-byte
 * blocks: int8 y[32], float dy, int32 corr, where corr = -o * sum(y) for
 * the weight type's code offset o (weights enter vpdpbusd as unsigned
 * codes c = q + o; sum(c * y) + corr = sum(q * y)).
 */
#ifndef NUAGE_GEMM_H
#define NUAGE_GEMM_H

#include <stdint.h>

#include "engine/quant.h"

#define NUAGE_GEMM_ABLK 40 /* bytes of a prepared activation block */

typedef struct {
    int8_t y[32];
    float d;
    union {
        int32_t corr; /* types without mins */
        float s;      /* Q4_1, Q5_1: fp16(d * sum(y)), as ggml's Q8_1 */
    };
} nuage_gemm_ablk;

/* Code offsets o of the weight types (see above). */
#define NUAGE_GEMM_O_Q8_0 128
#define NUAGE_GEMM_O_Q4_0 8
#define NUAGE_GEMM_O_Q5_0 16
#define NUAGE_GEMM_O_IQ4_NL 128
#define NUAGE_GEMM_O_Q4_1 0 /* codes are unsigned already; mins instead */
#define NUAGE_GEMM_O_Q5_1 0

/* Set gemm_ref and gemm_prep for the types above (gemm stays NULL: the
 * scalar version is for tests; matmul uses gemm only from a SIMD level). */
void nuage__gemm_register_ref(nuage_type_traits *table);

#if defined(NUAGE_X86)
/* Set gemm to the AVX-512 VNNI kernels. */
void nuage__gemm_register_avx512(nuage_type_traits *table);
#endif

#endif
