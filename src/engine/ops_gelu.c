/*
 * ops_gelu.c - the GeGLU gate of Gemma's FFN, evaluated the way ggml's CPU
 * backend evaluates it, so that our logits land on llama.cpp's.
 *
 * ggml computes tanh-GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
 * through a 65,536-entry table indexed by the f16 bits of x and holding the
 * result as f16: the input is rounded to f16 (round to nearest even), the
 * table value is widened back to f32, and inputs <= -10 give 0, >= 10 give
 * x itself. That rounding (about 3 significant digits) moves rand-gemma3-f32
 * logits by up to 0.02 against exact arithmetic, ten times our tolerance for
 * matching, so the table is reproduced here rather than calling tanhf.
 * The table is built once per process (pthread_once, 128 KiB) with the same
 * float formula ggml uses.
 */
#include <math.h>
#include <pthread.h>

#include "engine/ops.h"
#include "engine/quant.h"

static nuage_fp16 g_gelu_f16[1 << 16];
static pthread_once_t g_gelu_once = PTHREAD_ONCE_INIT;

static void nuage__gelu_table_init(void) {
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f, coef_a = 0.044715f;
    for (uint32_t i = 0; i < (1u << 16); i++) {
        float x = nuage_fp16_to_fp32((nuage_fp16)i);
        float y = 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * (1.0f + coef_a * x * x)));
        g_gelu_f16[i] = nuage_fp32_to_fp16(y);
    }
}

void nuage__geglu_f16(long n, float *g, const float *u) {
    pthread_once(&g_gelu_once, nuage__gelu_table_init);
    for (long i = 0; i < n; i++) {
        float x = g[i];
        if (x <= -10.0f) g[i] = 0.0f;
        else if (x >= 10.0f) g[i] = x * u[i];
        else g[i] = nuage_fp16_to_fp32(g_gelu_f16[nuage_fp32_to_fp16(x)]) * u[i];
    }
}
