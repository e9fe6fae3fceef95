/*
 * attn.h - tiled attention over the paged KV cache with an online softmax
 * (flash-attention style), for prefill chunks and for decode of many
 * sequences at once (internal).
 *
 * The work is cut into units: one sequence, one KV head, up to
 * NUAGE_ATTN_ROWS query rows (a row is one (token, query head) pair of
 * that KV head's group, token-major, so a unit is a few consecutive
 * tokens times the group's heads). Bigger units widen fewer tiles per
 * row; a batch too small to give every thread a few units at 256 rows is
 * cut finer (down to 16 rows). A unit walks its keys in tiles of
 * NUAGE_ATTN_KT absolute positions ([32j, 32j + 32)); each tile's K and V
 * rows are gathered from the block table and widened to f32 once, then
 * shared by every row of the unit (the group's heads and the unit's
 * tokens), which is what makes GQA and prefill cheap.
 *
 * Inside a tile the kernel keeps query rows in SIMD lanes (W = 16 on
 * AVX-512, 8 on AVX2): S^T[k][r] = q_r . k_k as W-wide FMAs over d with
 * the key value broadcast, so max, exp, row sums and the rescaling of the
 * output are plain vertical operations with no horizontal reductions. Per
 * lane, every value is computed by the same sequence of IEEE operations
 * (a dot is fma over d in order; the row sum and the output add keys in
 * position order), whatever the lane width, the other rows of the unit
 * or the batch: the scalar twin (nuage__attn_tile_scalar) is bit-exact
 * with the SIMD kernels, and a token's attention does not depend on how
 * the batch was cut (batch invariance). Keys a row may not see (causal,
 * sliding window, padding) are masked to weight exactly 0; a tile a row
 * does not see at all leaves its state unchanged.
 *
 * Per row: m = running max (the sink logit, or -inf), l = running sum,
 * o = running output; per tile: m' = max(m, max_k s_k), a = exp(m - m')
 * (1 while m' is -inf), p_k = exp(s_k - m'), l = l a + sum_k p_k,
 * o = o a + sum_k p_k v_k; at the end out = o * (1 / l).
 */
#ifndef NUAGE_ATTN_H
#define NUAGE_ATTN_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/context.h"

#define NUAGE_ATTN_KT 32   /* keys per tile */
#define NUAGE_ATTN_ROWS 256 /* most query rows per unit (scratch is sized for it) */
#define NUAGE_ATTN_ROWS_MIN 16 /* fewest, when a small batch must feed many threads */
#define NUAGE_ATTN_MAXD 512 /* largest head width the tiled path takes */

/* One tile for one group of w query rows (w = the kernel's lane width):
 * kf (KT, hd) and vf (KT, hdv) are the tile's keys and values in f32
 * (rows that no lane may see are zero); qt (hd, w) the queries transposed;
 * key k sits at position p0 + k and lane r sees it when
 * lo[r] <= p0 + k < hi[r] and k < n. Updates m, l (w) and ot (hdv, w);
 * pbuf (KT, w) is scratch. */
typedef void (*nuage__attn_tile_fn)(const float *kf, const float *vf, int hd, int hdv, int p0, int n,
                                    float scale, const float *qt, const int32_t *lo, const int32_t *hi,
                                    float *m, float *l, float *ot, float *pbuf);

/* Widen n values of one cached row (f32, f16 or q8_0 blocks) to f32. */
typedef void (*nuage__attn_load_fn)(nuage_kv_type type, const void *src, int n, float *dst);

typedef struct {
    int w;                     /* lanes of tile */
    nuage__attn_tile_fn tile;
    nuage__attn_tile_fn tile8; /* an 8-lane kernel for small units, or NULL */
    nuage__attn_load_fn load;
} nuage__attn_kernels;

/* The scalar twin: any lane width w (1..16); bit-exact with the SIMD
 * kernels for the same w and inputs. */
void nuage__attn_tile_scalar(int w, const float *kf, const float *vf, int hd, int hdv, int p0, int n,
                             float scale, const float *qt, const int32_t *lo, const int32_t *hi,
                             float *m, float *l, float *ot, float *pbuf);
/* exp as the kernels compute it (Cody-Waite by ln 2, degree-6 polynomial,
 * input clamped to [-87, 88]); exp(0) is exactly 1. */
float nuage__attn_exp(float x);

/* The kernels for this CPU (respecting NUAGE_SIMD_MAX); never NULL. */
const nuage__attn_kernels *nuage__attn_kernels_get(void);
/* SIMD kernels by level, for tests: 1 AVX2, 2 AVX-512; NULL where the CPU
 * or the build lacks them. */
const nuage__attn_kernels *nuage__attn_kernels_level(int level);
#if defined(NUAGE_X86)
void nuage__attn_fill_avx2(nuage__attn_kernels *k);
void nuage__attn_fill_avx512(nuage__attn_kernels *k);
#endif

/* Work units a batch of up to n_batch tokens can need. */
size_t nuage__attn_units_cap(int n_batch, int n_head, int n_head_kv);
/* Bytes of one work unit. */
size_t nuage__attn_unit_bytes(void);
/* Bytes of per-thread scratch the tiled path needs for these head widths. */
size_t nuage__attn_scratch_bytes(int hd, int hdv);
/* Whether the tiled path takes these head widths (else the caller uses the
 * per-row path; a q8_0 cache needs the tiled path). */
bool nuage__attn_tiled_ok(int hd, int hdv, nuage_kv_type type);

/* att (T, H*hdv) = softmax(q k^T * kq_scale [+ sink]) v for every token of
 * the batch over its own sequence's cached positions (causal; window
 * layers see only the last n_swa), layer il. K/V of the batch must
 * already be in the cache. Runs on the context's pool. */
void nuage__attn_tiled(nuage_context *c, const nuage_batch *b, int il);

#endif
