/*
 * quant_legacy.h - private interface between the legacy-type kernel files.
 *
 * quant_legacy.c owns the scalar reference kernels and the registration of
 * F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 and IQ4_NL. The SIMD files
 * (quant_legacy_avx2.c, quant_legacy_avx512.c) each export one function
 * that overwrites the table entries they speed up; they are compiled with
 * their instruction sets enabled and are only ever called after cpu.c has
 * confirmed the CPU and OS support them.
 *
 * The activation quantizers (Q8_0, Q8_1, F16, BF16 from_float) must round
 * exactly as llama.cpp's x86 build does, so that every SIMD version is
 * byte-identical to the scalar one here: per 32-value block, amax = max |x|,
 * d = amax / 127 (stored as fp16, round-to-nearest-even),
 * id = amax ? 127 / amax : 0, q = x * id rounded to nearest, ties to even
 * (that is what ggml's AVX2 quantize_row_q8_0 computes; its portable
 * reference uses 1/d and roundf instead, which differs on rare ties), and
 * for Q8_1 s = fp16(d * sum(q)).
 */
#ifndef NUAGE_QUANT_LEGACY_H
#define NUAGE_QUANT_LEGACY_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/quant.h"

/* IQ4_NL's 16 non-linear levels (ggml's kvalues_iq4nl), indexed by nibble. */
extern const int8_t nuage__iq4nl_values[16];

/* Scalar activation quantizers, exposed so the SIMD files can fall back on
 * them and tests can compare. Both write n/32 blocks. */
void nuage__quantize_q8_0_ref(const float *x, void *y, int64_t n);
void nuage__quantize_q8_1_ref(const float *x, void *y, int64_t n);

#if defined(NUAGE_X86)
/* Overwrite vec_dot / vec_dot_tile / activation from_float / to_float with
 * AVX2+FMA+F16C versions (legacy types and F32). */
void nuage__legacy_register_avx2(nuage_type_traits *table);
/* Same with AVX-512 F/BW/VL/DQ/VNNI; bf16 says whether AVX512-BF16 may be
 * used too. Call after nuage__legacy_register_avx2 (it keeps AVX2 entries
 * for anything it does not replace). */
void nuage__legacy_register_avx512(nuage_type_traits *table, bool bf16);
#endif

#endif
