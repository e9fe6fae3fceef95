/*
 * ops.h - vector primitives of attention, chosen at run time like the
 * matmul kernels (AVX2+F16C where the CPU has it, portable C otherwise).
 */
#ifndef NUAGE_OPS_H
#define NUAGE_OPS_H

#include <stdint.h>

typedef struct {
    float (*dot_f32)(int n, const float *x, const float *y);      /* sum x*y */
    float (*dot_f16)(int n, const float *x, const uint16_t *y);   /* y fp16 */
    void (*axpy_f32)(int n, float a, const float *x, float *y);   /* y += a*x */
    void (*axpy_f16)(int n, float a, const uint16_t *x, float *y);
} nuage_ops;

/* The best set for this CPU (never NULL). */
const nuage_ops *nuage__ops(void);

/* Implementations (ops.c, ops_avx2.c). */
void nuage__ops_fill_scalar(nuage_ops *o);
void nuage__ops_fill_avx2(nuage_ops *o);

#endif
