/*
 * quant.c - the type table and its dispatch.
 *
 * One static table indexed by ggml type id. It is filled once: sizes and
 * names for every id we know (so the GGUF reader can compute tensor byte
 * counts, even for types the engine cannot run), then F32 here, then the
 * legacy and K-quant families register their kernels for the SIMD level
 * chosen (nuage_quant_set_level re-registers, for tests and benchmarks).
 */
#include "engine/quant.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include "engine/cpu.h"

_Static_assert(sizeof(nuage_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(nuage_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(nuage_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(nuage_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(nuage_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(nuage_block_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(nuage_block_iq4_nl) == 18, "iq4_nl block");
_Static_assert(sizeof(nuage_block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(nuage_block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(nuage_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(nuage_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(nuage_block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(nuage_block_q8_K) == 292, "q8_K block");
_Static_assert(sizeof(nuage_block_iq4_xs) == 136, "iq4_xs block");

static nuage_type_traits g_table[NUAGE_TYPE_COUNT];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_level_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_level;

/* Sizes of every type id we know of, runnable or not (ggml's values). */
static void nuage__set_size(uint32_t t, const char *name, int blck, size_t size) {
    g_table[t].name = name;
    g_table[t].blck_size = blck;
    g_table[t].type_size = size;
}

static void f32_to_float(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * 4); }
static void f32_from_float(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * 4); }

/* Scalar f32 dot with 8 independent accumulators (lets the compiler keep
 * several FMAs in flight even at baseline x86-64). */
static void f32_vec_dot_ref(int n, float *s, const void *w, const void *a) {
    const float *x = w, *y = a;
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k] * y[i + k];
    float sum = 0;
    for (int k = 0; k < 8; k++) sum += acc[k];
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

static void nuage__fill(int level) {
    memset(g_table, 0, sizeof g_table);
    nuage__set_size(NUAGE_TYPE_F32, "f32", 1, 4);
    nuage__set_size(NUAGE_TYPE_F16, "f16", 1, 2);
    nuage__set_size(NUAGE_TYPE_Q4_0, "q4_0", 32, 18);
    nuage__set_size(NUAGE_TYPE_Q4_1, "q4_1", 32, 20);
    nuage__set_size(NUAGE_TYPE_Q5_0, "q5_0", 32, 22);
    nuage__set_size(NUAGE_TYPE_Q5_1, "q5_1", 32, 24);
    nuage__set_size(NUAGE_TYPE_Q8_0, "q8_0", 32, 34);
    nuage__set_size(NUAGE_TYPE_Q8_1, "q8_1", 32, 36);
    nuage__set_size(NUAGE_TYPE_Q2_K, "q2_K", 256, 84);
    nuage__set_size(NUAGE_TYPE_Q3_K, "q3_K", 256, 110);
    nuage__set_size(NUAGE_TYPE_Q4_K, "q4_K", 256, 144);
    nuage__set_size(NUAGE_TYPE_Q5_K, "q5_K", 256, 176);
    nuage__set_size(NUAGE_TYPE_Q6_K, "q6_K", 256, 210);
    nuage__set_size(NUAGE_TYPE_Q8_K, "q8_K", 256, 292);
    nuage__set_size(NUAGE_TYPE_IQ2_XXS, "iq2_xxs", 256, 66);
    nuage__set_size(NUAGE_TYPE_IQ2_XS, "iq2_xs", 256, 74);
    nuage__set_size(NUAGE_TYPE_IQ3_XXS, "iq3_xxs", 256, 98);
    nuage__set_size(NUAGE_TYPE_IQ1_S, "iq1_s", 256, 50);
    nuage__set_size(NUAGE_TYPE_IQ4_NL, "iq4_nl", 32, 18);
    nuage__set_size(NUAGE_TYPE_IQ3_S, "iq3_s", 256, 110);
    nuage__set_size(NUAGE_TYPE_IQ2_S, "iq2_s", 256, 82);
    nuage__set_size(NUAGE_TYPE_IQ4_XS, "iq4_xs", 256, 136);
    nuage__set_size(NUAGE_TYPE_I8, "i8", 1, 1);
    nuage__set_size(NUAGE_TYPE_I16, "i16", 1, 2);
    nuage__set_size(NUAGE_TYPE_I32, "i32", 1, 4);
    nuage__set_size(NUAGE_TYPE_I64, "i64", 1, 8);
    nuage__set_size(NUAGE_TYPE_F64, "f64", 1, 8);
    nuage__set_size(NUAGE_TYPE_IQ1_M, "iq1_m", 256, 56);
    nuage__set_size(NUAGE_TYPE_BF16, "bf16", 1, 2);
    /* gpt-oss's expert format; kernels in quant_mxfp4*.c */
    nuage__set_size(NUAGE_TYPE_MXFP4, "mxfp4", 32, 17);

    nuage_type_traits *f = &g_table[NUAGE_TYPE_F32];
    f->supported = true;
    f->vec_dot_type = NUAGE_TYPE_F32;
    f->to_float = f32_to_float;
    f->from_float = f32_from_float;
    f->vec_dot = f->vec_dot_ref = f32_vec_dot_ref;

    nuage__quant_register_legacy(g_table, level);
    nuage__quant_register_k(g_table, level);
    nuage__quant_register_mxfp4(g_table, level);
}

/* NUAGE_SIMD_MAX=0|1|2 caps the level (scalar, AVX2, AVX-512), so the
 * fallback kernels can be run and tested on a machine that has more. */
static void nuage__init_once(void) {
    g_level = nuage_cpu_level();
    const char *cap = getenv("NUAGE_SIMD_MAX");
    if (cap && *cap >= '0' && *cap <= '2' && !cap[1] && *cap - '0' < g_level) g_level = *cap - '0';
    nuage__fill(g_level);
}

void nuage_quant_init(void) { pthread_once(&g_once, nuage__init_once); }

const nuage_type_traits *nuage_type_get(uint32_t type) {
    nuage_quant_init();
    if (type >= NUAGE_TYPE_COUNT) return NULL;
    return &g_table[type];
}

size_t nuage_row_size(uint32_t type, int64_t n) {
    const nuage_type_traits *t = nuage_type_get(type);
    if (!t || !t->name || n < 0 || n % t->blck_size) return 0;
    return (size_t)(n / t->blck_size) * t->type_size;
}

const char *nuage_quant_simd_name(void) {
    nuage_quant_init();
    return g_level == 2 ? "avx512-vnni" : g_level == 1 ? "avx2" : "scalar";
}

/* Not meant to race with running kernels: tests and benchmarks call it
 * between runs. */
int nuage_quant_set_level(int level) {
    nuage_quant_init();
    int max = nuage_cpu_level();
    if (level > max) level = max;
    if (level < 0) level = 0;
    pthread_mutex_lock(&g_level_mu);
    g_level = level;
    nuage__fill(level);
    pthread_mutex_unlock(&g_level_mu);
    return level;
}
