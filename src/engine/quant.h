/*
 * quant.h - weight/activation types and their kernels.
 *
 * Every tensor type has a fixed block layout, bit-compatible with ggml's
 * (a block of `blck_size` values stored in `type_size` bytes). For each
 * type we provide:
 *   to_float   dequantize a row,
 *   from_float quantize a row (reference quantizer; used for activations
 *              of the matching dot type, for tests and for writing files),
 *   vec_dot    the dot product of a weight row of this type with an
 *              activation row already quantized to `vec_dot_type`
 *              (as ggml does: Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for
 *              Q4_1/Q5_1, Q8_K for the K types and IQ4_XS, F16 for F16,
 *              BF16 for BF16, F32 for F32),
 *   vec_dot_ref the scalar reference of the same dot product.
 *
 * `vec_dot` is chosen once at start-up from the CPU's features (cpu.c):
 * AVX-512 (+VNNI) where present, else AVX2, else the scalar reference.
 * Kernel files: quant.c (table, F32, dispatch), quant_legacy*.c (F16, BF16,
 * Q4_0 ... Q8_1, IQ4_NL), quant_k*.c (Q2_K ... Q8_K, IQ4_XS), quant_mxfp4*.c
 * (MXFP4, with Q8_0 activations); *_avx2.c and
 * *_avx512.c hold the SIMD versions and are compiled with those flags.
 */
#ifndef NUAGE_QUANT_H
#define NUAGE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ggml type ids, as stored in GGUF tensor infos. */
typedef enum {
    NUAGE_TYPE_F32 = 0,
    NUAGE_TYPE_F16 = 1,
    NUAGE_TYPE_Q4_0 = 2,
    NUAGE_TYPE_Q4_1 = 3,
    NUAGE_TYPE_Q5_0 = 6,
    NUAGE_TYPE_Q5_1 = 7,
    NUAGE_TYPE_Q8_0 = 8,
    NUAGE_TYPE_Q8_1 = 9,
    NUAGE_TYPE_Q2_K = 10,
    NUAGE_TYPE_Q3_K = 11,
    NUAGE_TYPE_Q4_K = 12,
    NUAGE_TYPE_Q5_K = 13,
    NUAGE_TYPE_Q6_K = 14,
    NUAGE_TYPE_Q8_K = 15,
    NUAGE_TYPE_IQ2_XXS = 16,
    NUAGE_TYPE_IQ2_XS = 17,
    NUAGE_TYPE_IQ3_XXS = 18,
    NUAGE_TYPE_IQ1_S = 19,
    NUAGE_TYPE_IQ4_NL = 20,
    NUAGE_TYPE_IQ3_S = 21,
    NUAGE_TYPE_IQ2_S = 22,
    NUAGE_TYPE_IQ4_XS = 23,
    NUAGE_TYPE_I8 = 24,
    NUAGE_TYPE_I16 = 25,
    NUAGE_TYPE_I32 = 26,
    NUAGE_TYPE_I64 = 27,
    NUAGE_TYPE_F64 = 28,
    NUAGE_TYPE_IQ1_M = 29,
    NUAGE_TYPE_BF16 = 30,
    NUAGE_TYPE_MXFP4 = 39,   /* 32 values: E8M0 scale byte + 16 bytes of FP4 (E2M1) pairs */
    NUAGE_TYPE_COUNT = 40
} nuage_type;

#define NUAGE_QK4_0 32
#define NUAGE_QK4_1 32
#define NUAGE_QK5_0 32
#define NUAGE_QK5_1 32
#define NUAGE_QK8_0 32
#define NUAGE_QK8_1 32
#define NUAGE_QK4_NL 32
#define NUAGE_QK_K 256
#define NUAGE_K_SCALE_SIZE 12

typedef uint16_t nuage_fp16;  /* IEEE half, raw bits */
typedef uint16_t nuage_bf16;  /* bfloat16, raw bits */

/* Block layouts (must match ggml byte for byte; sizes are static-asserted
 * in quant.c). */
typedef struct { nuage_fp16 d; uint8_t qs[NUAGE_QK4_0 / 2]; } nuage_block_q4_0;
typedef struct { nuage_fp16 d, m; uint8_t qs[NUAGE_QK4_1 / 2]; } nuage_block_q4_1;
typedef struct { nuage_fp16 d; uint8_t qh[4]; uint8_t qs[NUAGE_QK5_0 / 2]; } nuage_block_q5_0;
typedef struct { nuage_fp16 d, m; uint8_t qh[4]; uint8_t qs[NUAGE_QK5_1 / 2]; } nuage_block_q5_1;
typedef struct { nuage_fp16 d; int8_t qs[NUAGE_QK8_0]; } nuage_block_q8_0;
typedef struct { nuage_fp16 d, s; int8_t qs[NUAGE_QK8_1]; } nuage_block_q8_1; /* s = d * sum(qs) */
typedef struct { nuage_fp16 d; uint8_t qs[NUAGE_QK4_NL / 2]; } nuage_block_iq4_nl;
typedef struct { uint8_t scales[NUAGE_QK_K / 16]; uint8_t qs[NUAGE_QK_K / 4]; nuage_fp16 d, dmin; } nuage_block_q2_K;
typedef struct { uint8_t hmask[NUAGE_QK_K / 8]; uint8_t qs[NUAGE_QK_K / 4]; uint8_t scales[12]; nuage_fp16 d; } nuage_block_q3_K;
typedef struct { nuage_fp16 d, dmin; uint8_t scales[NUAGE_K_SCALE_SIZE]; uint8_t qs[NUAGE_QK_K / 2]; } nuage_block_q4_K;
typedef struct { nuage_fp16 d, dmin; uint8_t scales[NUAGE_K_SCALE_SIZE]; uint8_t qh[NUAGE_QK_K / 8]; uint8_t qs[NUAGE_QK_K / 2]; } nuage_block_q5_K;
typedef struct { uint8_t ql[NUAGE_QK_K / 2]; uint8_t qh[NUAGE_QK_K / 4]; int8_t scales[NUAGE_QK_K / 16]; nuage_fp16 d; } nuage_block_q6_K;
typedef struct { float d; int8_t qs[NUAGE_QK_K]; int16_t bsums[NUAGE_QK_K / 16]; } nuage_block_q8_K;
typedef struct { nuage_fp16 d; uint16_t scales_h; uint8_t scales_l[NUAGE_QK_K / 64]; uint8_t qs[NUAGE_QK_K / 2]; } nuage_block_iq4_xs;

/* Row kernels. n is the number of values and must be a multiple of the
 * type's block size. Rows must be 2-byte aligned (4 for F32), as GGUF data
 * and malloc'd buffers always are. */
typedef void (*nuage_to_float_fn)(const void *x, float *y, int64_t n);
typedef void (*nuage_from_float_fn)(const float *x, void *y, int64_t n);
/* *s = dot(weight row w (this type), activation row a (vec_dot_type)). */
typedef void (*nuage_vec_dot_fn)(int n, float *s, const void *w, const void *a);

/* Tile of dot products for matrix x matrix (prefill): for i < nw weight
 * rows (row i at w + i*w_stride bytes) and j < na activation rows (row j at
 * a + j*a_stride bytes), s[j*s_stride + i] = dot(w_i, a_j). nw and na are
 * at most NUAGE_TILE_MAX. Optional: NULL means the caller loops vec_dot.
 * Unpacking a weight block once for several tokens is what makes it pay. */
#define NUAGE_TILE_MAX 4
typedef void (*nuage_vec_dot_tile_fn)(int n, float *s, size_t s_stride,
                                      const void *w, size_t w_stride, int nw,
                                      const void *a, size_t a_stride, int na);

/* Rows-in-lanes matrix product (see gemm.h): y[j*y_stride + i] =
 * dot(w_i, a_j) for i < nw weight rows and j < na activation rows, the
 * activations prepared by the type's gemm_prep (NUAGE_GEMM_ABLK bytes per
 * 32 values). Any nw and na. Each output's arithmetic is fixed (gemm.h), so
 * it does not depend on nw, na or which rows share a call. */
typedef void (*nuage_gemm_fn)(int n, float *y, size_t y_stride, const void *w,
                              size_t w_stride, int nw, const void *a, size_t a_stride,
                              int na);

typedef struct {
    const char *name;          /* "q4_K", as ggml names it; NULL = unknown id */
    int blck_size;             /* values per block */
    size_t type_size;          /* bytes per block */
    bool supported;            /* usable as a weight type by the engine */
    nuage_type vec_dot_type;   /* activation format for vec_dot */
    nuage_to_float_fn to_float;
    nuage_from_float_fn from_float;
    nuage_vec_dot_fn vec_dot;      /* fastest available on this CPU */
    nuage_vec_dot_fn vec_dot_ref;  /* scalar reference */
    nuage_vec_dot_tile_fn vec_dot_tile; /* optional, fastest available */
    /* Optional: when set, vec_dot_tile takes F32 activation rows made by
     * tile_prep (the vec_dot_type rounding, widened back to float) instead
     * of vec_dot_type rows. */
    nuage_from_float_fn tile_prep;
    /* Optional rows-in-lanes kernel, used by matmul for every batch size
     * when set; gemm_ref is its scalar twin (bit-identical results) and
     * gemm_prep rounds activations for both. */
    nuage_gemm_fn gemm;
    nuage_gemm_fn gemm_ref;
    nuage_from_float_fn gemm_prep;
} nuage_type_traits;

/* Fill the table once (thread-safe, idempotent). Called by model load and
 * by tests; every function below calls it implicitly. */
void nuage_quant_init(void);

/* Traits of a type id; NULL when id >= NUAGE_TYPE_COUNT. A returned entry
 * may have name == NULL (unknown id) or supported == false. */
const nuage_type_traits *nuage_type_get(uint32_t type);

/* Bytes of a row of n values of type t; 0 when n is not a multiple of the
 * block size or t unknown. */
size_t nuage_row_size(uint32_t type, int64_t n);

/* Name of the SIMD level chosen for vec_dot ("avx512-vnni", "avx2",
 * "scalar"). */
const char *nuage_quant_simd_name(void);

/* Force a SIMD level for tests/benchmarks: 0 scalar, 1 avx2, 2 avx512.
 * Levels the CPU lacks are clamped down. Returns the level set. */
int nuage_quant_set_level(int level);

/* ---- registration hooks (called by nuage_quant_init) ---------------- */
struct nuage_cpu;
void nuage__quant_register_legacy(nuage_type_traits *table, int level);
void nuage__quant_register_k(nuage_type_traits *table, int level);
void nuage__quant_register_mxfp4(nuage_type_traits *table, int level);

/* ---- half / bfloat16 conversion (exact, round-to-nearest-even) ------- */
static inline float nuage_fp16_to_fp32(nuage_fp16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { e++; mant <<= 1; } while (!(mant & 0x400));
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline nuage_fp16 nuage_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (nuage_fp16)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (nuage_fp16)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* result is subnormal or zero */
        if (absx < 0x33000000u) return (nuage_fp16)sign; /* < 2^-25 */
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (nuage_fp16)(sign | r);
    }
    uint32_t r = ((absx - 0x38000000u) >> 13); /* rebias exponent */
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (nuage_fp16)(sign | r);
}

static inline float nuage_bf16_to_fp32(nuage_bf16 h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline nuage_bf16 nuage_fp32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* nan: keep it quiet */
        return (nuage_bf16)((x >> 16) | 64);
    return (nuage_bf16)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#endif
