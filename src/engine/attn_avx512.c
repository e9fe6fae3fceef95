/*
 * attn_avx512.c - the AVX-512 tile kernel of the tiled attention (16 query
 * rows in the lanes of one register) and the widening of cached rows to
 * f32. Bit-exact with nuage__attn_tile_scalar for w = 16: every lane runs
 * the same IEEE operations in the same order (see attn.h).
 */
#include "engine/attn.h"

#include <immintrin.h>
#include <string.h>

#include "engine/quant.h"

/* exp as nuage__attn_exp: clamp, Cody-Waite by ln 2, degree-6 polynomial */
static inline __m512 exp_v(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fx), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

/* The kernel body; inlined with constant head widths below, so the 16
 * key rows' addresses are one base plus constant offsets (no spills). */
static inline __attribute__((always_inline)) void tile_body(const float *kf, const float *vf, int hd, int hdv, int p0, int n, float scale,
                      const float *qt, const int32_t *lo, const int32_t *hi, float *m, float *l, float *ot,
                      float *pbuf) {
    const __m512i vlo = _mm512_loadu_si512((const void *)lo), vhi = _mm512_loadu_si512((const void *)hi);
    const __m512 ninf = _mm512_set1_ps(-INFINITY), vscale = _mm512_set1_ps(scale);
    const __m512 mold = _mm512_loadu_ps(m);
    __m512 mx = mold;
    /* s_k = (q . k_k) * scale, -inf where the lane may not see key k */
    for (int k0 = 0; k0 < NUAGE_ATTN_KT; k0 += 16) {
        __m512 acc[16];
        #pragma GCC unroll 16
        for (int k = 0; k < 16; k++) acc[k] = _mm512_setzero_ps();
        const float *kp = kf + (size_t)k0 * hd;
        for (int d = 0; d < hd; d++) {
            __m512 q = _mm512_loadu_ps(qt + (size_t)d * 16);
            #pragma GCC unroll 16
            for (int k = 0; k < 16; k++) acc[k] = _mm512_fmadd_ps(q, _mm512_set1_ps(kp[(size_t)k * hd + d]), acc[k]);
        }
        #pragma GCC unroll 16
        for (int k = 0; k < 16; k++) {
            int kk = k0 + k;
            __m512 s = _mm512_mul_ps(acc[k], vscale);
            __m512i vp = _mm512_set1_epi32(p0 + kk);
            __mmask16 valid = kk < n ? (__mmask16)(_mm512_cmpge_epi32_mask(vp, vlo) & _mm512_cmplt_epi32_mask(vp, vhi)) : 0;
            s = _mm512_mask_blend_ps(valid, ninf, s);
            _mm512_storeu_ps(pbuf + kk * 16, s);
            mx = _mm512_max_ps(s, mx);
        }
    }
    /* a = exp(m - m'), 1 while nothing was seen */
    __m512 alpha = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(mx, ninf, _CMP_EQ_OQ), exp_v(_mm512_sub_ps(mold, mx)), _mm512_set1_ps(1.0f));
    /* p_k = exp(s_k - m'); l = l a + sum_k p_k in key order */
    __m512 sum = _mm512_mul_ps(_mm512_loadu_ps(l), alpha);
    for (int k = 0; k < NUAGE_ATTN_KT; k++) {
        __m512 s = _mm512_loadu_ps(pbuf + k * 16);
        __m512 pk = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(s, ninf, _CMP_EQ_OQ), exp_v(_mm512_sub_ps(s, mx)), _mm512_setzero_ps());
        _mm512_storeu_ps(pbuf + k * 16, pk);
        sum = _mm512_add_ps(sum, pk);
    }
    _mm512_storeu_ps(l, sum);
    _mm512_storeu_ps(m, mx);
    /* o = o a + sum_k p_k v_k in key order, 16 output columns at a time */
    for (int dv0 = 0; dv0 < hdv; dv0 += 16) {
        __m512 o[16];
        #pragma GCC unroll 16
        for (int j = 0; j < 16; j++) o[j] = _mm512_mul_ps(_mm512_loadu_ps(ot + (size_t)(dv0 + j) * 16), alpha);
        for (int k = 0; k < NUAGE_ATTN_KT; k++) {
            __m512 pk = _mm512_loadu_ps(pbuf + k * 16);
            const float *vp = vf + (size_t)k * hdv + dv0;
            #pragma GCC unroll 16
            for (int j = 0; j < 16; j++) o[j] = _mm512_fmadd_ps(pk, _mm512_set1_ps(vp[j]), o[j]);
        }
        #pragma GCC unroll 16
        for (int j = 0; j < 16; j++) _mm512_storeu_ps(ot + (size_t)(dv0 + j) * 16, o[j]);
    }
}

static void tile_avx512(const float *kf, const float *vf, int hd, int hdv, int p0, int n, float scale,
                      const float *qt, const int32_t *lo, const int32_t *hi, float *m, float *l, float *ot,
                      float *pbuf) {
    if (hd == 64 && hdv == 64) tile_body(kf, vf, 64, 64, p0, n, scale, qt, lo, hi, m, l, ot, pbuf);
    else if (hd == 128 && hdv == 128) tile_body(kf, vf, 128, 128, p0, n, scale, qt, lo, hi, m, l, ot, pbuf);
    else if (hd == 256 && hdv == 256) tile_body(kf, vf, 256, 256, p0, n, scale, qt, lo, hi, m, l, ot, pbuf);
    else if (hd == 32 && hdv == 32) tile_body(kf, vf, 32, 32, p0, n, scale, qt, lo, hi, m, l, ot, pbuf);
    else tile_body(kf, vf, hd, hdv, p0, n, scale, qt, lo, hi, m, l, ot, pbuf);
}

static void load_avx512(nuage_kv_type type, const void *src, int n, float *dst) {
    if (type == NUAGE_KV_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else if (type == NUAGE_KV_F16) {
        const uint16_t *h = src;
        int i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
        for (; i < n; i++) dst[i] = nuage_fp16_to_fp32(h[i]);
    } else {
        /* q8_0: d * q is exact in f32 (11 by 8 significant bits) */
        const nuage_block_q8_0 *b = src;
        for (int i = 0; i < n / NUAGE_QK8_0; i++) {
            __m256 d = _mm256_set1_ps(nuage_fp16_to_fp32(b[i].d));
            for (int j = 0; j < NUAGE_QK8_0; j += 8) {
                __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b[i].qs + j))));
                _mm256_storeu_ps(dst + i * NUAGE_QK8_0 + j, _mm256_mul_ps(d, q));
            }
        }
    }
}

void nuage__attn_fill_avx512(nuage__attn_kernels *k) {
    k->w = 16;
    k->tile = tile_avx512;
    k->tile8 = NULL;
    k->load = load_avx512;
}
