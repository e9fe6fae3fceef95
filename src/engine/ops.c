/*
 * ops.c - portable versions of the attention primitives and dispatch.
 */
#include "engine/ops.h"

#include <math.h>
#include <pthread.h>

#include "engine/cpu.h"
#include "engine/quant.h"

static void scores_f32(int n, int hd, const float *q, const float *k, size_t stride, float scale, float *out) {
    for (int i = 0; i < n; i++, k += stride) {
        float s = 0;
        for (int d = 0; d < hd; d++) s += q[d] * k[d];
        out[i] = s * scale;
    }
}

static void scores_f16(int n, int hd, const float *q, const uint16_t *k, size_t stride, float scale, float *out) {
    for (int i = 0; i < n; i++, k += stride) {
        float s = 0;
        for (int d = 0; d < hd; d++) s += q[d] * nuage_fp16_to_fp32(k[d]);
        out[i] = s * scale;
    }
}

static float exp_sum(int n, float *x, float mx) {
    float sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    return sum;
}

static void accum_f32(int n, int hd, const float *w, const float *v, size_t stride, float *out) {
    for (int i = 0; i < n; i++, v += stride)
        for (int d = 0; d < hd; d++) out[d] += w[i] * v[d];
}

static void accum_f16(int n, int hd, const float *w, const uint16_t *v, size_t stride, float *out) {
    for (int i = 0; i < n; i++, v += stride)
        for (int d = 0; d < hd; d++) out[d] += w[i] * nuage_fp16_to_fp32(v[d]);
}

static void silu_mul(long n, float *g, const float *u) {
    for (long i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void nuage__ops_fill_scalar(nuage_ops *o) {
    o->silu_mul = silu_mul;
    o->scores_f32 = scores_f32;
    o->scores_f16 = scores_f16;
    o->exp_sum = exp_sum;
    o->accum_f32 = accum_f32;
    o->accum_f16 = accum_f16;
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
