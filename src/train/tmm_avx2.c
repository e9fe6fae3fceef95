/*
 * tmm_avx2.c - the trainer's matrix products with AVX2 + FMA (compiled
 * with those flags; called only after the CPU check in tmm.c).
 *
 * Register tile: 6 rows of C x 16 columns (12 accumulators); each step of
 * k broadcasts 6 values of A and loads 16 values of B. Column tails (N not
 * a multiple of 16 / 8) use 8-wide or scalar fmaf steps; every element is
 * still the sequential FMA sum over k, so tails and tiles agree bit for
 * bit with the portable version.
 */
#include <immintrin.h>
#include <math.h>

#include "train/tops.h"

/* One row block of `mr` (1..4) rows: C[i][j0..j0+16) over k. */
#define TILE_BODY(LOADA)                                                                   \
    for (int j = 0; j + 16 <= N; j += 16) {                                                \
        __m256 c[6][2];                                                                    \
        for (int r = 0; r < mr; r++) {                                                     \
            c[r][0] = init ? _mm256_loadu_ps(C + (size_t)(i + r) * ldc + j) : _mm256_setzero_ps(); \
            c[r][1] = init ? _mm256_loadu_ps(C + (size_t)(i + r) * ldc + j + 8) : _mm256_setzero_ps(); \
        }                                                                                  \
        for (int k = 0; k < K; k++) {                                                      \
            const float *b = B + (size_t)k * ldb + j;                                      \
            __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);                   \
            for (int r = 0; r < mr; r++) {                                                 \
                __m256 a = _mm256_broadcast_ss(LOADA);                                     \
                c[r][0] = _mm256_fmadd_ps(a, b0, c[r][0]);                                 \
                c[r][1] = _mm256_fmadd_ps(a, b1, c[r][1]);                                 \
            }                                                                              \
        }                                                                                  \
        for (int r = 0; r < mr; r++) {                                                     \
            _mm256_storeu_ps(C + (size_t)(i + r) * ldc + j, c[r][0]);                      \
            _mm256_storeu_ps(C + (size_t)(i + r) * ldc + j + 8, c[r][1]);                  \
        }                                                                                  \
    }                                                                                      \
    for (int j = N / 16 * 16; j + 8 <= N; j += 8) {                                        \
        __m256 c[6];                                                                       \
        for (int r = 0; r < mr; r++)                                                       \
            c[r] = init ? _mm256_loadu_ps(C + (size_t)(i + r) * ldc + j) : _mm256_setzero_ps(); \
        for (int k = 0; k < K; k++) {                                                      \
            __m256 b0 = _mm256_loadu_ps(B + (size_t)k * ldb + j);                          \
            for (int r = 0; r < mr; r++)                                                   \
                c[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(LOADA), b0, c[r]);              \
        }                                                                                  \
        for (int r = 0; r < mr; r++) _mm256_storeu_ps(C + (size_t)(i + r) * ldc + j, c[r]); \
    }                                                                                      \
    for (int j = N / 8 * 8; j < N; j++)                                                    \
        for (int r = 0; r < mr; r++) {                                                     \
            float s = init ? C[(size_t)(i + r) * ldc + j] : 0.0f;                          \
            for (int k = 0; k < K; k++) s = fmaf(*(LOADA), B[(size_t)k * ldb + j], s);     \
            C[(size_t)(i + r) * ldc + j] = s;                                              \
        }

void nuage__tmm_nn_avx2(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M,
                        int N, int K, int acc) {
    const int init = acc;
    for (int i = 0; i < M; i += 6) {
        if (M - i >= 6) {
            enum { mr = 6 }; /* constant: the tile lives in registers */
            TILE_BODY(A + (size_t)(i + r) * lda + k)
        } else {
            const int mr = M - i;
            TILE_BODY(A + (size_t)(i + r) * lda + k)
        }
    }
}

void nuage__tmm_tn_avx2(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M,
                        int N, int K) {
    const int init = 1;
    for (int i = 0; i < M; i += 6) {
        if (M - i >= 6) {
            enum { mr = 6 };
            TILE_BODY(A + (size_t)k * lda + i + r)
        } else {
            const int mr = M - i;
            TILE_BODY(A + (size_t)k * lda + i + r)
        }
    }
}
