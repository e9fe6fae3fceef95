/*
 * ops.c - portable versions of the attention primitives and dispatch.
 */
#include "engine/ops.h"

#include <pthread.h>

#include "engine/cpu.h"
#include "engine/quant.h"

static float dot_f32(int n, const float *x, const float *y) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k] * y[i + k];
    float s = 0;
    for (int k = 0; k < 8; k++) s += acc[k];
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

static float dot_f16(int n, const float *x, const uint16_t *y) {
    float s = 0;
    for (int i = 0; i < n; i++) s += x[i] * nuage_fp16_to_fp32(y[i]);
    return s;
}

static void axpy_f32(int n, float a, const float *x, float *y) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void axpy_f16(int n, float a, const uint16_t *x, float *y) {
    for (int i = 0; i < n; i++) y[i] += a * nuage_fp16_to_fp32(x[i]);
}

void nuage__ops_fill_scalar(nuage_ops *o) {
    o->dot_f32 = dot_f32;
    o->dot_f16 = dot_f16;
    o->axpy_f32 = axpy_f32;
    o->axpy_f16 = axpy_f16;
}

static nuage_ops g_ops;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void nuage__ops_init(void) {
    nuage__ops_fill_scalar(&g_ops);
#if defined(NUAGE_X86)
    if (nuage_cpu_level() >= 1) nuage__ops_fill_avx2(&g_ops);
#endif
}

const nuage_ops *nuage__ops(void) {
    pthread_once(&g_once, nuage__ops_init);
    return &g_ops;
}
