/*
 * ops.h - vector primitives of attention, chosen at run time like the
 * matmul kernels (AVX2+FMA+F16C where the CPU has it, portable C
 * otherwise). They work on runs of consecutive cached positions (one KV
 * block at a time), so the per-position cost is a few instructions.
 */
#ifndef NUAGE_OPS_H
#define NUAGE_OPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    /* out[i] = scale * dot(q, k + i*stride), i < n; k rows of hd values */
    void (*scores_f32)(int n, int hd, const float *q, const float *k, size_t stride, float scale, float *out);
    void (*scores_f16)(int n, int hd, const float *q, const uint16_t *k, size_t stride, float scale, float *out);
    /* x[i] = exp(x[i] - mx); returns the sum of the new x[i] */
    float (*exp_sum)(int n, float *x, float mx);
    /* out += sum_i w[i] * v_i, i < n; v rows of hd values at stride */
    void (*accum_f32)(int n, int hd, const float *w, const float *v, size_t stride, float *out);
    void (*accum_f16)(int n, int hd, const float *w, const uint16_t *v, size_t stride, float *out);
    /* SwiGLU gate: g[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u. Call it
     * per row: lanes and tails depend on where the array starts. */
    void (*silu_mul)(long n, float *g, const float *u);
} nuage_ops;

/* GeGLU gate (gemma3): g[i] = gelu(g[i]) * u[i] with tanh-GELU looked up
 * in ggml's f16 table (ops_gelu.c); NaN inputs give NaN. */
void nuage__geglu_f16(long n, float *g, const float *u);

/* The best set for this CPU (never NULL). */
const nuage_ops *nuage__ops(void);

/* Implementations (ops.c, ops_avx2.c). */
void nuage__ops_fill_scalar(nuage_ops *o);
void nuage__ops_fill_avx2(nuage_ops *o);

#endif
