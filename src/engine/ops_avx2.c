/*
 * ops_avx2.c - AVX2 + FMA + F16C attention primitives (compiled with those
 * flags; only installed by ops.c after the CPU check). Head dimensions that
 * are not a multiple of 8 finish with scalar tails.
 */
#include <immintrin.h>
#include <math.h>

#include "engine/ops.h"
#include "engine/quant.h"

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void scores_f32(int n, int hd, const float *q, const float *k, size_t stride, float scale, float *out) {
    for (int i = 0; i < n; i++, k += stride) {
        __m256 a = _mm256_setzero_ps();
        int d = 0;
        for (; d + 8 <= hd; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a);
        float s = hsum256(a);
        for (; d < hd; d++) s += q[d] * k[d];
        out[i] = s * scale;
    }
}

static void scores_f16(int n, int hd, const float *q, const uint16_t *k, size_t stride, float scale, float *out) {
    for (int i = 0; i < n; i++, k += stride) {
        __m256 a = _mm256_setzero_ps();
        int d = 0;
        for (; d + 8 <= hd; d += 8)
            a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + d))), a);
        float s = hsum256(a);
        for (; d < hd; d++) s += q[d] * nuage_fp16_to_fp32(k[d]);
        out[i] = s * scale;
    }
}

/* exp(x) for x <= 88 (scores minus their max; -g in SiLU): Cody-Waite
 * reduction by ln 2 and a degree-6 polynomial (relative error ~2e-7, like
 * expf). Inputs below -87 give ~1e-38 instead of a denormal. */
static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

static float exp_sum(int n, float *x, float mx) {
    __m256 m = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum256(acc);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    return sum;
}

static void accum_f32(int n, int hd, const float *w, const float *v, size_t stride, float *out) {
    int d = 0;
    for (; d + 8 <= hd; d += 8) {
        __m256 a = _mm256_loadu_ps(out + d);
        const float *vp = v + d;
        for (int i = 0; i < n; i++, vp += stride) a = _mm256_fmadd_ps(_mm256_set1_ps(w[i]), _mm256_loadu_ps(vp), a);
        _mm256_storeu_ps(out + d, a);
    }
    for (; d < hd; d++) {
        float a = out[d];
        for (int i = 0; i < n; i++) a += w[i] * v[(size_t)i * stride + d];
        out[d] = a;
    }
}

static void accum_f16(int n, int hd, const float *w, const uint16_t *v, size_t stride, float *out) {
    int d = 0;
    for (; d + 8 <= hd; d += 8) {
        __m256 a = _mm256_loadu_ps(out + d);
        const uint16_t *vp = v + d;
        for (int i = 0; i < n; i++, vp += stride)
            a = _mm256_fmadd_ps(_mm256_set1_ps(w[i]), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)vp)), a);
        _mm256_storeu_ps(out + d, a);
    }
    for (; d < hd; d++) {
        float a = out[d];
        for (int i = 0; i < n; i++) a += w[i] * nuage_fp16_to_fp32(v[(size_t)i * stride + d]);
        out[d] = a;
    }
}

static void silu_mul(long n, float *g, const float *u) {
    const __m256 one = _mm256_set1_ps(1.0f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void nuage__ops_fill_avx2(nuage_ops *o) {
    o->silu_mul = silu_mul;
    o->scores_f32 = scores_f32;
    o->scores_f16 = scores_f16;
    o->exp_sum = exp_sum;
    o->accum_f32 = accum_f32;
    o->accum_f16 = accum_f16;
}
