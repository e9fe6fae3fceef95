/*
 * cpu.h - run-time CPU feature detection (x86-64 cpuid + xgetbv).
 * The SIMD kernels are compiled with their instruction sets enabled and
 * are only called after these checks say the CPU and OS support them.
 */
#ifndef NUAGE_CPU_H
#define NUAGE_CPU_H
#include <stdbool.h>

typedef struct nuage_cpu {
    bool avx2, fma, f16c, bmi2;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16;
} nuage_cpu;

/* Detected once; never NULL. */
const nuage_cpu *nuage_cpu_get(void);

/* Best SIMD level this CPU runs: 0 scalar, 1 AVX2+FMA+F16C,
 * 2 AVX-512 F/BW/VL/DQ/VNNI (+BF16 when present). */
int nuage_cpu_level(void);

#endif
