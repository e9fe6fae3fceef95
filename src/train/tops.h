/*
 * tops.h - the trainer's numeric kernels: the llama block's operations in
 * float (used for training) and double (used by the gradient checks),
 * both generated from ops_impl.h, and the fast matrix product.
 */
#ifndef NUAGE_TRAIN_TOPS_H
#define NUAGE_TRAIN_TOPS_H

#include <stddef.h>
#include <stdint.h>

#define NUAGE__TOPS_DECL(R, S)                                                                     \
    void nuage__t_rmsnorm_fwd##S(R *y, R *rstd, const R *x, const R *w, int T, int n, R eps);      \
    void nuage__t_rmsnorm_bwd##S(R *dx, R *dw, const R *dy, const R *x, const R *w, const R *rstd, \
                                 int T, int n);                                                    \
    void nuage__t_matmul_fwd##S(R *y, const R *x, const R *W, int T, int nin, int nout);           \
    void nuage__t_matmul_bwd##S(R *dx, R *dW, const R *dy, const R *x, const R *W, int T, int nin, \
                                int nout);                                                         \
    void nuage__t_embed_fwd##S(R *x, const R *E, const int32_t *tok, int T, int n);                \
    void nuage__t_embed_bwd##S(R *dE, const R *dx, const int32_t *tok, int T, int n);              \
    void nuage__t_rope_fwd##S(R *h, const R *cs, int T, int n_heads, int hd, int stride);          \
    void nuage__t_rope_bwd##S(R *dh, const R *cs, int T, int n_heads, int hd, int stride);         \
    void nuage__t_attn_fwd##S(R *att, R *P, const R *q, const R *k, const R *v, int T, int H,      \
                              int Hkv, int hd, R scale);                                           \
    void nuage__t_attn_bwd##S(R *dq, R *dk, R *dv, const R *datt, const R *P, const R *q,          \
                              const R *k, const R *v, int T, int H, int Hkv, int hd, R scale,      \
                              R *scratch);                                                         \
    void nuage__t_swiglu_fwd##S(R *hb, const R *g, const R *u, size_t n);                          \
    void nuage__t_swiglu_bwd##S(R *dg, R *du, const R *dh, const R *g, const R *u, size_t n);      \
    double nuage__t_xent##S(R *dlogits, const R *logits, const int32_t *target, int N, int V,      \
                            R scale);

NUAGE__TOPS_DECL(float, _f32)
NUAGE__TOPS_DECL(double, _f64)

/*
 * The trainer's matrix products, all "outer product" shaped so that no
 * horizontal sums are needed (row-major, leading dimensions in floats):
 *   nn: C (M, N) = A (M, K) B (K, N)        (acc: C += instead of =)
 *   tn: C (M, N) += A (K, M)^T B (K, N)     (weight gradients, K = tokens)
 * Every element is a sequential sum over k (fused multiply-adds), the
 * same whatever the tile, thread or SIMD width, so results are
 * reproducible. AVX2+FMA when the CPU has it, portable C otherwise.
 */
void nuage__tmm_nn(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M, int N,
                   int K, int acc);
void nuage__tmm_tn(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M, int N,
                   int K);
/* Portable and AVX2 versions (the dispatchers above pick one). */
void nuage__tmm_nn_ref(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M,
                       int N, int K, int acc);
void nuage__tmm_tn_ref(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M,
                       int N, int K);
void nuage__tmm_nn_avx2(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M,
                        int N, int K, int acc);
void nuage__tmm_tn_avx2(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M,
                        int N, int K);

#endif
