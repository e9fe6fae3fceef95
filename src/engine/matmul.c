/*
 * matmul.c - y = x @ W^T for every matrix of the forward pass.
 *
 * As ggml does, activations are first rounded to the weight type's dot
 * type (Q8_0, Q8_1, Q8_K, F16, BF16 or F32), once per token row; every
 * dot product then runs in the integer or half domain of the kernels in
 * quant_*.c. Work is split by weight rows across threads (each thread
 * reads a disjoint slice of the matrix: decode is bound by memory reads,
 * so no two threads fetch the same weights). Inside a slice, rows are
 * taken in chunks that stay in L2 while every token of the batch passes
 * over them, in tiles of up to 4 rows x 4 tokens when the type has a tile
 * kernel (a weight block is unpacked once for 4 tokens).
 */
#include "engine/matmul.h"

#include <assert.h>
#include <string.h>

#include "engine/gemm.h"
#include "engine/quant.h"

#define NUAGE_MM_CHUNK_ROWS 64
#define PFHEAD 1024 /* bytes of each next row prefetched (float types) */

/* Bytes of one prepared activation row: the gemm layout or vec_dot_type's. */
static size_t nuage__act_row_size(const nuage_type_traits *tt, int64_t cols) {
    if (tt->gemm) return (size_t)(cols / 32) * NUAGE_GEMM_ABLK;
    if (tt->vec_dot_tile && tt->tile_prep) return (size_t)cols * sizeof(float);
    return nuage_row_size(tt->vec_dot_type, cols);
}

size_t nuage__matmul_work_size(uint32_t wtype, int64_t cols, int n_tok) {
    const nuage_type_traits *tt = nuage_type_get(wtype);
    if (!tt || !tt->supported) return 0;
    return nuage__act_row_size(tt, cols) * (size_t)n_tok + 64;
}

#define NUAGE_MM_PARTS 64 /* parts per parallel region */

typedef struct {
    const nuage__mm_part *parts;
    int np;
    int first[NUAGE_MM_PARTS + 1]; /* chunk index where part i starts */
    const nuage_type_traits *tt;
    int64_t cols;
    const float *x;
    long n_rows; /* input rows to prepare */
    uint8_t *xq;
    size_t xq_stride;
} nuage__mm_job;

static void nuage__mm_quantize(void *arg, int ith, int nth) {
    nuage__mm_job *j = arg;
    const nuage_type_traits *dt = nuage_type_get(j->tt->vec_dot_type);
    const int64_t cols = j->cols;
    long lo, hi;
    nuage__pool_range(j->n_rows, ith, nth, 1, &lo, &hi);
    nuage_from_float_fn prep = j->tt->gemm ? j->tt->gemm_prep
                               : j->tt->vec_dot_tile && j->tt->tile_prep ? j->tt->tile_prep
                                                                         : dt->from_float;
    for (long t = lo; t < hi; t++) prep(j->x + t * cols, j->xq + t * j->xq_stride, cols);
}

/* Rows-in-lanes kernels (gemm.h): one call for rows [lo, hi) of part p. */
static void nuage__mm_gemm(const nuage__mm_job *j, const nuage__mm_part *p, long lo, long hi) {
    const nuage_weight *w = p->w;
    if (hi > lo)
        j->tt->gemm((int)w->cols, p->y + lo, (size_t)w->rows, w->data + (size_t)lo * w->row_bytes,
                    w->row_bytes, (int)(hi - lo), j->xq + (size_t)p->row0 * j->xq_stride,
                    j->xq_stride, p->n_tok);
}

/* Row-major tiles (or vec_dot) for rows [lo, hi) of part p. */
static void nuage__mm_tiles(const nuage__mm_job *j, const nuage__mm_part *p, long lo, long hi) {
    const nuage_weight *w = p->w;
    float *y = p->y;
    const uint8_t *xq = j->xq + (size_t)p->row0 * j->xq_stride;
    const int n = (int)w->cols;
    const int T = p->n_tok;
    const long rows = w->rows;
    nuage_vec_dot_fn dot = j->tt->vec_dot;
    nuage_vec_dot_tile_fn tile = j->tt->vec_dot_tile;
    /* measured: helps the float types' decode (m76 F16 170 -> 225 tok/s),
     * costs the K-quants a quarter (their 4-row tiles stream well already) */
    const size_t pf_head = j->tt->vec_dot_type == NUAGE_TYPE_F16 ||
                                   j->tt->vec_dot_type == NUAGE_TYPE_F32 ||
                                   j->tt->vec_dot_type == NUAGE_TYPE_BF16
                               ? PFHEAD
                               : 0;
    for (long c0 = lo; c0 < hi; c0 += NUAGE_MM_CHUNK_ROWS) {
        long c1 = c0 + NUAGE_MM_CHUNK_ROWS < hi ? c0 + NUAGE_MM_CHUNK_ROWS : hi;
        for (int t0 = 0; t0 < T; t0 += NUAGE_TILE_MAX) {
            int nt = T - t0 < NUAGE_TILE_MAX ? T - t0 : NUAGE_TILE_MAX;
            const uint8_t *a = xq + (size_t)t0 * j->xq_stride;
            for (long r = c0; r < c1; r += NUAGE_TILE_MAX) {
                int nr = c1 - r < NUAGE_TILE_MAX ? (int)(c1 - r) : NUAGE_TILE_MAX;
                const uint8_t *wr = w->data + (size_t)r * w->row_bytes;
                /* the start of the next tile's rows into L2 while this one
                 * runs: the hardware prefetcher needs a few lines of each
                 * new row before it streams (short rows never get there) */
                if (pf_head && t0 == 0 && r + nr < hi) {
                    const uint8_t *nx = wr + (size_t)nr * w->row_bytes;
                    const size_t head = w->row_bytes < pf_head ? w->row_bytes : pf_head;
                    for (int q = 0; q < nr; q++)
                        for (size_t o = 0; o < head; o += 64)
                            __builtin_prefetch(nx + (size_t)q * w->row_bytes + o, 0, 2);
                }
                float *yo = y + (size_t)t0 * rows + r;
                /* the tile whenever there is one, even 1 x 1: a row must
                 * see the same arithmetic at every batch size */
                if (tile && T == 1 && pf_head) {
                    /* float decode: one row at a time streams better than
                     * four side by side (m76 F32 106 -> 130 tok/s); the
                     * tile shape never changes a result */
                    for (int q = 0; q < nr; q++)
                        tile(n, yo + q, (size_t)rows, wr + (size_t)q * w->row_bytes, w->row_bytes,
                             1, a, j->xq_stride, 1);
                } else if (tile) {
                    tile(n, yo, (size_t)rows, wr, w->row_bytes, nr, a, j->xq_stride, nt);
                } else {
                    for (int tt = 0; tt < nt; tt++)
                        for (int rr = 0; rr < nr; rr++)
                            dot(n, yo + (size_t)tt * rows + rr, wr + (size_t)rr * w->row_bytes,
                                a + (size_t)tt * j->xq_stride);
                }
            }
        }
    }
}

/* Chunk c of the job: find its part, then its row range there. */
static void nuage__mm_chunk(void *arg, int c, int n_chunks) {
    (void)n_chunks;
    nuage__mm_job *j = arg;
    int i = 0;
    while (c >= j->first[i + 1]) i++;
    const nuage__mm_part *p = &j->parts[i];
    const int k = c - j->first[i], nk = j->first[i + 1] - j->first[i];
    long lo, hi;
    nuage__pool_range(p->w->rows, k, nk, j->tt->gemm ? 16 : NUAGE_TILE_MAX, &lo, &hi);
    if (j->tt->gemm) nuage__mm_gemm(j, p, lo, hi);
    else nuage__mm_tiles(j, p, lo, hi);
}

/* Chunks for one matrix: more than threads, so a thread that is slow or
 * descheduled does not hold up the others (see threadpool.c). */
static int nuage__mm_chunks(const nuage_weight *w, long unit, int nth) {
    long units = (w->rows + unit - 1) / unit;
    long want = units / 16;
    if (want < nth) want = nth;
    if (want > 8L * nth) want = 8L * nth;
    if (want > units) want = units;
    return (int)want;
}

void nuage__matmul_parts(nuage_pool *pool, const nuage__mm_part *parts, int np, const float *x,
                         long n_rows, void *work) {
    if (np <= 0) return;
    const nuage_type_traits *tt = nuage_type_get(parts[0].w->type);
    assert(tt && tt->supported);
    nuage__mm_job j = {.tt = tt, .cols = parts[0].w->cols, .x = x, .n_rows = n_rows};
    for (int i = 1; i < np; i++)
        assert(parts[i].w->type == parts[0].w->type && parts[i].w->cols == j.cols);
    if (tt->vec_dot_type == NUAGE_TYPE_F32 && !tt->gemm && !tt->tile_prep) {
        j.xq = (uint8_t *)x; /* f32 activations are used in place */
        j.xq_stride = (size_t)j.cols * sizeof(float);
    } else {
        j.xq = work;
        j.xq_stride = nuage__act_row_size(tt, j.cols);
        if (n_rows >= 8) nuage__pool_run(pool, nuage__mm_quantize, &j);
        else nuage__mm_quantize(&j, 0, 1);
    }
    const int nth = nuage__pool_size(pool);
    const long unit = tt->gemm ? 16 : NUAGE_TILE_MAX;
    for (int p0 = 0; p0 < np; p0 += NUAGE_MM_PARTS) {
        j.parts = parts + p0;
        j.np = np - p0 < NUAGE_MM_PARTS ? np - p0 : NUAGE_MM_PARTS;
        for (int i = 0; i < j.np; i++)
            j.first[i + 1] = j.first[i] + nuage__mm_chunks(j.parts[i].w, unit, nth);
        nuage__pool_run_chunks(pool, nuage__mm_chunk, &j, j.first[j.np]);
    }
}

void nuage__matmul_n(nuage_pool *pool, const nuage_weight *const *w, int nm, const float *x,
                     int n_tok, float *const *y, void *work) {
    assert(nm >= 1 && nm <= 3);
    /* one input preparation serves every matrix of the same type and width */
    for (int i = 1; i < nm; i++)
        if (w[i]->type != w[0]->type || w[i]->cols != w[0]->cols) {
            for (int k = 0; k < nm; k++) nuage__matmul_n(pool, &w[k], 1, x, n_tok, &y[k], work);
            return;
        }
    nuage__mm_part parts[3];
    for (int i = 0; i < nm; i++) parts[i] = (nuage__mm_part){.w = w[i], .row0 = 0, .n_tok = n_tok, .y = y[i]};
    nuage__matmul_parts(pool, parts, nm, x, n_tok, work);
}

void nuage__matmul(nuage_pool *pool, const nuage_weight *w, const float *x, int n_tok,
                   float *y, void *work) {
    nuage__matmul_n(pool, &w, 1, x, n_tok, &y, work);
}

void nuage__weight_row(const nuage_weight *w, int64_t r, float *out) {
    const nuage_type_traits *tt = nuage_type_get(w->type);
    tt->to_float(w->data + (size_t)r * w->row_bytes, out, w->cols);
}
