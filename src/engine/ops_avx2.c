/*
 * ops_avx2.c - AVX2 + FMA + F16C attention primitives (compiled with those
 * flags; only installed by ops.c after the CPU check). Tails are scalar.
 */
#include <immintrin.h>

#include "engine/ops.h"
#include "engine/quant.h"

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float dot_f32(int n, const float *x, const float *y) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float s = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

static float dot_f16(int n, const float *x, const uint16_t *y) {
    __m256 a0 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 yv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), yv, a0);
    }
    float s = hsum256(a0);
    for (; i < n; i++) s += x[i] * nuage_fp16_to_fp32(y[i]);
    return s;
}

static void axpy_f32(int n, float a, const float *x, float *y) {
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void axpy_f16(int n, float a, const uint16_t *x, float *y) {
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++) y[i] += a * nuage_fp16_to_fp32(x[i]);
}

void nuage__ops_fill_avx2(nuage_ops *o) {
    o->dot_f32 = dot_f32;
    o->dot_f16 = dot_f16;
    o->axpy_f32 = axpy_f32;
    o->axpy_f16 = axpy_f16;
}
