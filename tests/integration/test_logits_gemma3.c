/*
 * test_logits_gemma3.c - Gemma 3 (`gemma3`) against llama.cpp's reference
 * logits for rand-gemma3-{f32,q8_0,q4_k} in ../shared, with the tolerances
 * of ../shared/README.md ("Recommended tolerances", point 6):
 *   F32: max |Δlogit| <= 0.1, mean KL <= 1e-4 and the same arg-max wherever
 *       the reference top1-top2 margin is >= 0.05. (ggml evaluates GELU
 *       through an f16 table; exact arithmetic lands 0.020 away. We
 *       reproduce the table, so we also hold ourselves to the 0.01 the
 *       README expects of an engine that does: a regression to exact GELU
 *       fails here.)
 *   Q8_0 / Q4_K: mean KL <= 2 x the file's exact mean KL (noise_floor.json)
 *       and the same arg-max wherever the reference margin is >= 1.0.
 *   Greedy continuations replayed on the KV-cache path agree up to the
 *   first step whose reference margin is below the type's tolerance (rule
 *   5: F32 1e-3, quantized 0.75; the quantized files' first steps have
 *   margins below 0.75, so only F32 compares steps).
 * The window (16 positions on layers 0-4) is shorter than prompts B (64)
 * and C (200), so those comparisons already exercise it; test_window_chunks
 * also feeds prompt C through the KV cache in uneven chunks (13 tokens, then
 * single tokens past position 150), where the window has to be applied to
 * cached positions rather than within one batch, and checks every position
 * against the reference. test_kv_f16 checks the serving default, an f16 KV
 * cache, on rand-gemma3-f32: max |Δ| <= 0.1 (llama.cpp itself moves 0.053)
 * and the same arg-max wherever the reference margin is >= 0.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "integration/logits_ref.h"
#include "test_util.h"

static json_t *g_index, *g_noise;

static void test_model(void **state) {
    const char *key = *state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    json_t *mi = json_object_get(json_object_get(g_index, "models"), key);
    const char *wt = json_string_value(json_object_get(mi, "weight_type"));
    const bool f32 = !strcmp(wt, "F32");
    nuage_ref_stats st;
    assert_int_equal(nuage_ref_compare_model(dir, g_index, key, f32 ? 0.05 : 1.0, f32 ? 1e-3 : 0.75, 2, &st), 0);
    double exact_kl = nuage_ref_noise(g_noise, key, "exact", "mean_kl");
    print_message("%-18s %-4s pos %3d  max|d| %.3g  meanKL %.3g (exact %.3g)  KL>0.1 %d  argmax misses %d/%d "
                  "(worst margin %.3g)  greedy %d/%d steps ok\n",
                  key, wt, st.n_pos, st.max_abs, st.mean_kl, exact_kl, st.n_kl_gt_01, st.n_argmax_miss,
                  st.n_checked_argmax, st.worst_miss_margin, st.greedy_compared - st.greedy_miss,
                  st.greedy_compared);
    assert_int_equal(st.n_pos, 280);
    assert_int_equal(st.n_argmax_miss, 0);
    assert_int_equal(st.greedy_miss, 0);
    if (f32) {
        assert_true(st.greedy_compared > 0); /* quantized: step 0's margin is < 0.75 */
        assert_true(st.max_abs <= 0.1);
        assert_true(st.mean_kl <= 1e-4);
        assert_true(st.max_abs <= 0.01); /* the f16 GELU table is reproduced */
    } else {
        assert_true(exact_kl > 0);
        assert_true(st.mean_kl <= 2.0 * exact_kl);
    }
}

/* Prompt C of rand-gemma3-f32 through the KV cache in chunks of 13 tokens,
 * then one token per decode from position 150 on. */
static void test_window_chunks(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    const char *key = "rand-gemma3-f32";
    char path[8192], err[512];
    snprintf(path, sizeof path, "%s/vectors/logits/%s.C.tokens.txt", dir, key);
    char *txt = nuage_test_read_file(path, NULL);
    assert_non_null(txt);
    int32_t ids[4096];
    int n = nuage_ref_parse_ids(txt, ids, 4096);
    free(txt);
    assert_int_equal(n, 200);
    snprintf(path, sizeof path, "%s/vectors/logits/%s.C.logits.f32", dir, key);
    size_t ref_len = 0;
    float *ref = (float *)nuage_test_read_file(path, &ref_len);
    assert_non_null(ref);
    snprintf(path, sizeof path, "%s/models/%s.gguf", dir, key);
    nuage_model *m = NULL;
    assert_int_equal(nuage_model_load(path, NULL, &m, err, sizeof err), 0);
    const int nv = nuage_model_n_vocab(m);
    assert_int_equal(ref_len, (size_t)n * nv * sizeof(float));

    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = 2;
    cp.n_ctx = n;
    cp.n_batch_max = 13;
    cp.kv_type = NUAGE_KV_F32;
    cp.kv_block_size = 8; /* window 16 spans block boundaries */
    nuage_context *ctx = NULL;
    assert_int_equal(nuage_context_new(m, &cp, &ctx, err, sizeof err), 0);
    nuage_batch *b = nuage_batch_new(13);
    double max_abs = 0;
    int misses = 0;
    for (int p0 = 0; p0 < n;) {
        int len = p0 < 150 ? 13 : 1;
        if (p0 + len > n) len = n - p0;
        nuage_batch_clear(b);
        for (int i = 0; i < len; i++) nuage_batch_add(b, ids[p0 + i], p0 + i, 0, true);
        int rc = nuage_decode(ctx, b, err, sizeof err);
        if (rc) print_message("decode at %d: %s\n", p0, err);
        assert_int_equal(rc, 0);
        for (int i = 0; i < len; i++) {
            const float *o = nuage_get_logits(ctx, i), *r = ref + (size_t)(p0 + i) * nv;
            assert_non_null(o);
            for (int v = 0; v < nv; v++) {
                double d = fabs((double)o[v] - r[v]);
                if (!(d <= max_abs)) max_abs = d;
            }
            double margin;
            int ra = nuage_ref_argmax(r, nv, &margin);
            if (margin >= 0.05 && nuage_ref_argmax(o, nv, NULL) != ra) misses++;
        }
        p0 += len;
    }
    print_message("%s prompt C in chunks: max|d| %.3g, argmax misses %d\n", key, max_abs, misses);
    assert_true(max_abs <= 0.01);
    assert_int_equal(misses, 0);
    nuage_batch_free(b);
    nuage_context_free(ctx);
    nuage_model_free(m);
    free(ref);
}

/* The default serving configuration: an f16 KV cache, prompts A, B and C
 * of rand-gemma3-f32 in one batch each. llama.cpp itself moves by 0.053
 * with an f16 cache (noise_floor.json); we allow 0.1 and the same arg-max
 * wherever the reference margin is >= 0.1. */
static void test_kv_f16(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    const char *key = "rand-gemma3-f32";
    char path[8192], err[512];
    snprintf(path, sizeof path, "%s/models/%s.gguf", dir, key);
    nuage_model *m = NULL;
    assert_int_equal(nuage_model_load(path, NULL, &m, err, sizeof err), 0);
    const int nv = nuage_model_n_vocab(m);
    double max_abs = 0;
    int misses = 0, checked = 0;
    const char *prompts[] = {"A", "B", "C"};
    for (int pi = 0; pi < 3; pi++) {
        snprintf(path, sizeof path, "%s/vectors/logits/%s.%s.tokens.txt", dir, key, prompts[pi]);
        char *txt = nuage_test_read_file(path, NULL);
        assert_non_null(txt);
        int32_t ids[4096];
        int n = nuage_ref_parse_ids(txt, ids, 4096);
        free(txt);
        snprintf(path, sizeof path, "%s/vectors/logits/%s.%s.logits.f32", dir, key, prompts[pi]);
        size_t ref_len = 0;
        float *ref = (float *)nuage_test_read_file(path, &ref_len);
        assert_non_null(ref);
        assert_int_equal(ref_len, (size_t)n * nv * sizeof(float));
        nuage_context_params cp = nuage_context_default_params();
        cp.n_threads = 2;
        cp.n_ctx = n;
        cp.n_batch_max = n;
        cp.kv_type = NUAGE_KV_F16;
        nuage_context *ctx = NULL;
        assert_int_equal(nuage_context_new(m, &cp, &ctx, err, sizeof err), 0);
        nuage_batch *b = nuage_batch_new(n);
        for (int i = 0; i < n; i++) nuage_batch_add(b, ids[i], i, 0, true);
        assert_int_equal(nuage_decode(ctx, b, err, sizeof err), 0);
        for (int i = 0; i < n; i++) {
            const float *o = nuage_get_logits(ctx, i), *r = ref + (size_t)i * nv;
            for (int v = 0; v < nv; v++) {
                double d = fabs((double)o[v] - r[v]);
                if (!(d <= max_abs)) max_abs = d;
            }
            double margin;
            int ra = nuage_ref_argmax(r, nv, &margin);
            if (margin >= 0.1) {
                checked++;
                if (nuage_ref_argmax(o, nv, NULL) != ra) misses++;
            }
        }
        nuage_batch_free(b);
        nuage_context_free(ctx);
        free(ref);
    }
    print_message("%s f16 KV cache: max|d| %.3g (llama.cpp f16 KV: %.3g), argmax misses %d/%d\n", key, max_abs,
                  nuage_ref_noise(g_noise, key, "kv_f16", "max_abs"), misses, checked);
    assert_true(max_abs <= 0.1);
    assert_int_equal(misses, 0);
    nuage_model_free(m);
}

int main(void) {
    const char *dir = nuage_test_shared_dir();
    static struct CMUnitTest tests[16];
    static char *keys[16];
    size_t n = 0;
    if (dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/vectors/logits/index.json", dir);
        g_index = json_load_file(path, 0, NULL);
        snprintf(path, sizeof path, "%s/vectors/logits/noise_floor.json", dir);
        g_noise = json_load_file(path, 0, NULL);
        const char *key;
        json_t *mi;
        json_object_foreach(json_object_get(g_index, "models"), key, mi) {
            if (strcmp(json_string_value(json_object_get(mi, "arch")), "gemma3")) continue;
            if (n == 15) break;
            keys[n] = strdup(key);
            tests[n] = (struct CMUnitTest){.name = keys[n], .test_func = test_model, .initial_state = keys[n]};
            n++;
        }
    }
    if (n == 0) {
        tests[n++] = (struct CMUnitTest){.name = "shared data", .test_func = test_model, .initial_state = "none"};
    } else {
        tests[n++] = (struct CMUnitTest){.name = "window_chunks", .test_func = test_window_chunks};
        tests[n++] = (struct CMUnitTest){.name = "kv_f16", .test_func = test_kv_f16};
    }
    int rc = _cmocka_run_group_tests("logits_gemma3", tests, n, NULL, NULL);
    json_decref(g_index);
    json_decref(g_noise);
    for (size_t i = 0; i < n; i++) free(keys[i]);
    return nuage_test_exit(rc);
}
