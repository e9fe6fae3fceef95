/*
 * tmm.c - portable matrix products of the trainer and the dispatch to the
 * AVX2 versions (see tops.h). The portable loops use fmaf so that they
 * round exactly like the FMA instructions of the SIMD path: the two give
 * bit-identical results (the tests check it).
 */
#include <math.h>

#include "engine/cpu.h"
#include "train/tops.h"

void nuage__tmm_nn_ref(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M,
                       int N, int K, int acc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = acc ? C[(size_t)i * ldc + j] : 0.0f;
            for (int k = 0; k < K; k++) s = fmaf(A[(size_t)i * lda + k], B[(size_t)k * ldb + j], s);
            C[(size_t)i * ldc + j] = s;
        }
}

void nuage__tmm_tn_ref(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M,
                       int N, int K) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = C[(size_t)i * ldc + j];
            for (int k = 0; k < K; k++) s = fmaf(A[(size_t)k * lda + i], B[(size_t)k * ldb + j], s);
            C[(size_t)i * ldc + j] = s;
        }
}

static int nuage__tmm_simd(void) {
#if defined(NUAGE_X86)
    static int level = -1;
    if (level < 0) level = nuage_cpu_level(); /* idempotent: a benign race */
    return level >= 1;
#else
    return 0;
#endif
}

void nuage__tmm_nn(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M, int N,
                   int K, int acc) {
#if defined(NUAGE_X86)
    if (nuage__tmm_simd()) {
        nuage__tmm_nn_avx2(A, lda, B, ldb, C, ldc, M, N, K, acc);
        return;
    }
#endif
    nuage__tmm_nn_ref(A, lda, B, ldb, C, ldc, M, N, K, acc);
}

void nuage__tmm_tn(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M, int N,
                   int K) {
#if defined(NUAGE_X86)
    if (nuage__tmm_simd()) {
        nuage__tmm_tn_avx2(A, lda, B, ldb, C, ldc, M, N, K);
        return;
    }
#endif
    nuage__tmm_tn_ref(A, lda, B, ldb, C, ldc, M, N, K);
}
