/*
 * matmul.h - weight matrix x activations, on all threads of a pool.
 */
#ifndef NUAGE_MATMUL_H
#define NUAGE_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/threadpool.h"

/* A 2-D weight view: `rows` rows of `cols` values of ggml type `type`,
 * row r at data + r * row_bytes. 1-D tensors (norms, biases) are F32 with
 * rows == 1. A NULL data pointer means "absent" (optional tensors). */
typedef struct {
    uint32_t type;
    int64_t cols, rows;
    size_t row_bytes;
    const uint8_t *data;
} nuage_weight;

/* Bytes of scratch nuage__matmul needs for n_tok activation rows of `cols`
 * values quantized to the weight type's dot type. */
size_t nuage__matmul_work_size(uint32_t wtype, int64_t cols, int n_tok);

/* Slice k of a 3-D weight stack whose slices (experts, heads) have `rows`
 * rows each: a view, no copy. */
static inline nuage_weight nuage__weight_slice(const nuage_weight *stack, int64_t rows, int k) {
    nuage_weight v = *stack;
    v.rows = rows;
    v.data = stack->data + (size_t)k * (size_t)rows * stack->row_bytes;
    return v;
}

/* Lay out scratch buffers one after another from base, each 64-byte
 * aligned: *parts[i].p = base + offset (NULL when base is NULL). Returns
 * the total bytes. */
typedef struct {
    void **p;
    size_t bytes;
} nuage__scratch_part;

static inline size_t nuage__scratch_carve(const nuage__scratch_part *parts, size_t n,
                                          uint8_t *base) {
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        *parts[i].p = base ? base + off : NULL;
        off += (parts[i].bytes + 63) & ~(size_t)63;
    }
    return off;
}

/* Enough for any weight type: prepared activations take at most 4 bytes
 * per value (F32 rows for tiles with a tile_prep; 1.06-2 bytes for the
 * quantized and half types; gemm 1.25). */
#define NUAGE_MM_WORK_BYTES(cols, n_tok) (4 * (size_t)(cols) * (size_t)(n_tok) + 4096)

/* y (n_tok, w->rows) = x (n_tok, w->cols) @ W^T. x is f32, row-major with
 * row stride w->cols; work has nuage__matmul_work_size bytes. */
void nuage__matmul(nuage_pool *pool, const nuage_weight *w, const float *x, int n_tok,
                   float *y, void *work);

/* The same for nm <= 3 matrices on one input (Q, K, V; gate, up):
 * y[i] = x @ w[i]^T. When the weights share a type and width the input is
 * prepared once and all rows run in one parallel region (one barrier
 * instead of nm); otherwise it is nm nuage__matmul calls. Results are
 * bit-identical either way. */
void nuage__matmul_n(nuage_pool *pool, const nuage_weight *const *w, int nm, const float *x,
                     int n_tok, float *const *y, void *work);

/* Many small products over slices of one input (a MoE layer's experts):
 * part i computes y (n_tok, w->rows) = x[row0 .. row0 + n_tok) @ w^T. All
 * weights share a type and width; x (n_rows, cols) is prepared once and
 * the parts run in one parallel region (per 64 parts). Each output has the
 * arithmetic of nuage__matmul. */
typedef struct {
    const nuage_weight *w;
    long row0;
    int n_tok;
    float *y;
} nuage__mm_part;

void nuage__matmul_parts(nuage_pool *pool, const nuage__mm_part *parts, int np, const float *x,
                         long n_rows, void *work);

/* Dequantize row r of w into out (w->cols floats). */
void nuage__weight_row(const nuage_weight *w, int64_t r, float *out);

#endif
