/*
 * cpu.c - which instruction sets may we use?
 *
 * cpuid tells what the processor implements; xgetbv tells whether the OS
 * saves the wider registers on context switches (YMM for AVX2, ZMM/opmask
 * for AVX-512). Both must agree before a kernel using them is selected.
 */
#include "engine/cpu.h"

#include <pthread.h>
#include <stdint.h>

#if defined(NUAGE_X86)
#include <cpuid.h>
static uint64_t nuage__xgetbv(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static nuage_cpu g_cpu;
static pthread_once_t g_cpu_once = PTHREAD_ONCE_INIT;

static void nuage__cpu_detect(void) {
#if defined(NUAGE_X86)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool osxsave = c & (1u << 27);
    bool avx = c & (1u << 28);
    g_cpu.fma = c & (1u << 12);
    g_cpu.f16c = c & (1u << 29);
    if (!osxsave || !avx) return;
    uint64_t xcr0 = nuage__xgetbv();
    bool ymm_ok = (xcr0 & 0x6) == 0x6;
    bool zmm_ok = (xcr0 & 0xe6) == 0xe6;
    if (!ymm_ok) return;
    if (__get_cpuid_max(0, 0) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    g_cpu.avx2 = b & (1u << 5);
    g_cpu.bmi2 = b & (1u << 8);
    if (zmm_ok) {
        g_cpu.avx512f = b & (1u << 16);
        g_cpu.avx512dq = b & (1u << 17);
        g_cpu.avx512bw = b & (1u << 30);
        g_cpu.avx512vl = b & (1u << 31);
        g_cpu.avx512vnni = c & (1u << 11);
        __cpuid_count(7, 1, a, b, c, d);
        g_cpu.avx512bf16 = a & (1u << 5);
    }
#endif
}

const nuage_cpu *nuage_cpu_get(void) {
    pthread_once(&g_cpu_once, nuage__cpu_detect);
    return &g_cpu;
}

int nuage_cpu_level(void) {
    const nuage_cpu *c = nuage_cpu_get();
    if (c->avx512f && c->avx512bw && c->avx512vl && c->avx512dq && c->avx512vnni &&
        c->avx2 && c->fma && c->f16c)
        return 2;
    if (c->avx2 && c->fma && c->f16c) return 1;
    return 0;
}
