/*
 * quant_mxfp4_ref_gptoss.c - a minimal scalar MXFP4 weight type, enough for
 * gpt-oss's expert tensors to load and run.
 *
 * MXFP4 (ggml type 39, OCP microscaling FP4) stores 32 weights of a row in
 * 17 bytes: byte 0 an E8M0 exponent e (a bare power of two, no sign or
 * mantissa), then 16 bytes of 4-bit E2M1 codes - weight j (0..15) in the
 * low nibble of qs[j], weight j + 16 in the high nibble. ggml keeps the
 * E2M1 values doubled as small integers (kvalues below: 0, +-1, +-2, +-3,
 * +-4, +-6, +-8, +-12), so a weight is kvalues[code] * 2^(e - 128), one
 * less than E8M0's bias of 127 to undo the doubling.
 *
 * As in ggml, activations are rounded to Q8_0 (the block sizes agree: 32),
 * and a block's dot product is exact in integers - sum of int8 activation
 * times int8 kvalue over the two 16-value halves - then scaled by the
 * Q8_0 block's f16 scale times 2^(e - 128) and accumulated in f32 block by
 * block. That is ggml's generic kernel's arithmetic, so results differ
 * from ggml's SIMD kernels only in the order of the f32 block sums.
 *
 * Only scalar code here, registered for every SIMD level: this file exists
 * so gpt-oss MXFP4 files run before the fast kernels land (a SIMD
 * implementation behind the same table entry replaces it without any
 * change to callers). Named so it cannot collide with that work.
 */
#include <string.h>

#include "engine/quant.h"

typedef struct {
    uint8_t e;       /* E8M0 shared exponent */
    uint8_t qs[16];  /* E2M1 codes: low nibbles values 0-15, high 16-31 */
} nuage__block_mxfp4;

_Static_assert(sizeof(nuage__block_mxfp4) == 17, "mxfp4 block");

/* Doubled E2M1 values by 4-bit code (sign in bit 3). */
static const int8_t nuage__kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* 2^(e - 128) as a float, exactly (e < 2 gives the subnormals 2^-128 and
 * 2^-127). */
static float nuage__e8m0_half(uint8_t e) {
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void mxfp4_to_float(const void *vx, float *y, int64_t n) {
    const nuage__block_mxfp4 *x = vx;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        const float d = nuage__e8m0_half(x[ib].e);
        for (int j = 0; j < 16; j++) {
            y[ib * 32 + j] = nuage__kvalues_mxfp4[x[ib].qs[j] & 0xf] * d;
            y[ib * 32 + j + 16] = nuage__kvalues_mxfp4[x[ib].qs[j] >> 4] * d;
        }
    }
}

/* *s = dot(MXFP4 weight row, Q8_0 activation row), n values. */
static void mxfp4_vec_dot_ref(int n, float *s, const void *vw, const void *va) {
    const nuage__block_mxfp4 *x = vw;
    const nuage_block_q8_0 *y = va;
    float sum = 0.0f;
    for (int ib = 0; ib < n / 32; ib++) {
        const float d = nuage_fp16_to_fp32(y[ib].d) * nuage__e8m0_half(x[ib].e);
        int lo = 0, hi = 0;
        for (int j = 0; j < 16; j++) {
            lo += y[ib].qs[j] * nuage__kvalues_mxfp4[x[ib].qs[j] & 0xf];
            hi += y[ib].qs[j + 16] * nuage__kvalues_mxfp4[x[ib].qs[j] >> 4];
        }
        sum += d * (float)(lo + hi);
    }
    *s = sum;
}

void nuage__quant_register_mxfp4_gptoss(nuage_type_traits *table) {
    nuage_type_traits *t = &table[NUAGE_TYPE_MXFP4];
    t->supported = true;
    t->vec_dot_type = NUAGE_TYPE_Q8_0;
    t->to_float = mxfp4_to_float;
    t->vec_dot = t->vec_dot_ref = mxfp4_vec_dot_ref;
}
