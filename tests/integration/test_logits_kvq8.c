/*
 * test_logits_kvq8.c - the q8_0 KV cache against llama.cpp's reference
 * logits (computed with an f32 cache) for the F32 files of every
 * architecture with standard attention: llama, qwen2, qwen3 (Q/K norms),
 * gemma3 (window layers, head width 256 in 8 q8_0 blocks) and gpt-oss
 * (window layers, sinks).
 *
 * Measured (prompt C, 200 tokens, max |Δlogit| against the reference,
 * arg-max misses where the reference margin is >= 0.1):
 *   rand-llama-f32  0.227, 0 misses   (its f16 cache: 0.0095)
 *   rand-qwen2-f32  0.242, 0          (0.0096)
 *   rand-qwen3-f32  0.099, 0          (0.0040)
 *   rand-gemma3-f32 1.06,  7 of 180   (0.040)
 *   rand-gptoss-f32 6.73, 12 of 185   (0.021)
 * The random gemma3 and gpt-oss files are very sensitive to the cache's
 * rounding (their f16 figures are the largest too), and the error is all
 * the q8_0 rounding, not the kernels: an f32 cache whose K and V rows
 * were rounded through q8_0 and back gives the same 6.73 on gpt-oss (K
 * alone 6.56, V alone 6.80) and 0.227 on llama. The limits below are the
 * measured figures with a 30 % margin (misses: + 2); a change that makes
 * the q8_0 cache worse fails here.
 * And: the prompt in one batch is bit-identical to the prompt fed in
 * chunks of 5 tokens (the q8_0 rows are quantized per token, so a token's
 * cache row does not depend on the batch, and the tiled attention is
 * batch invariant).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "integration/logits_ref.h"
#include "integration/logits_checks.h"
#include "test_util.h"

static json_t *g_index;

static const char *const g_keys[] = {"rand-llama-f32", "rand-qwen2-f32", "rand-qwen3-f32", "rand-gemma3-f32",
                                     "rand-gptoss-f32"};
/* measured x 1.3, and measured arg-max misses + 2 (see top) */
static const double g_max_abs[] = {0.30, 0.32, 0.13, 1.4, 8.8};
static const int g_max_miss[] = {0, 0, 0, 9, 14};

/* Logits of ids[0..n) decoded in chunks of `chunk` tokens (malloc'd). */
static float *run(nuage_model *m, const int32_t *ids, int n, nuage_kv_type kv, int chunk) {
    const int nv = nuage_model_n_vocab(m);
    nuage_context *c = nuage_ref_new_ctx(m, 1, chunk, kv, 2);
    nuage_batch *b = nuage_batch_new(chunk);
    float *out = malloc((size_t)n * nv * sizeof(float));
    assert_non_null(out);
    char err[256];
    for (int p0 = 0; p0 < n; p0 += chunk) {
        int e = p0 + chunk < n ? p0 + chunk : n;
        nuage_batch_clear(b);
        for (int i = p0; i < e; i++) nuage_batch_add(b, ids[i], i, 0, true);
        int rc = nuage_decode(c, b, err, sizeof err);
        if (rc) fprintf(stderr, "%s\n", err);
        assert_int_equal(rc, 0);
        for (int i = p0; i < e; i++) memcpy(out + (size_t)i * nv, nuage_get_logits(c, i - p0), (size_t)nv * sizeof(float));
    }
    nuage_batch_free(b);
    nuage_context_free(c);
    return out;
}

static void test_model(void **state) {
    const int ki = (int)(intptr_t)*state;
    const char *key = g_keys[ki];
    const char *dir = nuage_test_shared_dir();
    if (!dir) skip();
    nuage_model *m = nuage_ref_load_model(g_index, dir, key);
    const int nv = nuage_model_n_vocab(m);
    static int32_t ids[4096];
    int n;
    float *ref = nuage_ref_load_prompt(dir, key, "C", ids, &n);
    assert_non_null(ref);
    float *q8 = run(m, ids, n, NUAGE_KV_Q8_0, n);
    float *f16 = run(m, ids, n, NUAGE_KV_F16, n);
    float *q8c = run(m, ids, n, NUAGE_KV_Q8_0, 5);
    double d = 0, d16 = 0;
    int checked = 0, miss = 0;
    for (int i = 0; i < n; i++) {
        const float *r = ref + (size_t)i * nv;
        d = fmax(d, nuage_ref_max_abs_diff(q8 + (size_t)i * nv, r, (size_t)nv));
        d16 = fmax(d16, nuage_ref_max_abs_diff(f16 + (size_t)i * nv, r, (size_t)nv));
        double margin;
        int ra = nuage_ref_argmax(r, nv, &margin);
        if (margin >= 0.1) {
            checked++;
            miss += nuage_ref_argmax(q8 + (size_t)i * nv, nv, NULL) != ra;
        }
    }
    bool same = !memcmp(q8, q8c, (size_t)n * nv * sizeof(float));
    print_message("%-16s q8_0 KV cache, prompt C (%d tokens): max|d| %.4f (f16 cache %.4f)  argmax misses %d/%d  "
                  "chunks of 5 %s\n", key, n, d, d16, miss, checked, same ? "bit-identical" : "DIFFER");
    assert_true(d <= g_max_abs[ki]);
    assert_true(miss <= g_max_miss[ki]);
    assert_true(same);
    free(q8);
    free(f16);
    free(q8c);
    free(ref);
    nuage_model_free(m);
}

int main(void) {
    const char *dir = nuage_test_shared_dir();
    struct CMUnitTest tests[8];
    size_t n = 0;
    if (dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/vectors/logits/index.json", dir);
        g_index = json_load_file(path, 0, NULL);
        for (size_t i = 0; i < sizeof g_keys / sizeof g_keys[0]; i++)
            if (json_object_get(json_object_get(g_index, "models"), g_keys[i]))
                tests[n++] = (struct CMUnitTest){.name = g_keys[i], .test_func = test_model,
                                                 .initial_state = (void *)(intptr_t)i};
    }
    if (n == 0) return nuage_test_exit(77);
    int rc = _cmocka_run_group_tests("logits_kvq8", tests, n, NULL, NULL);
    return nuage_test_exit(rc);
}
