/*
 * test_logits_moe.c - the MoE architectures (qwen3moe, deepseek2 with MLA)
 * against llama.cpp's reference logits in ../shared, with the tolerances
 * of issue 3 / ../shared/README.md ("What matches means", point 4):
 *   F32 files: max |Δlogit| <= 1e-3 and the same arg-max at every position
 *       over prompts A, B, C; greedy continuations replayed on the KV-cache
 *       path agree up to the first step whose reference margin is < 1e-3.
 *   Quantized MoE files: an expert choice that is nearly tied can flip and
 *       move one position by several logits, so they are judged by the
 *       median KL (<= max(2 x the file's exact median KL, 1e-3)) and by
 *       the count of positions with KL > 0.1 (<= max(3, 2 x exact's)),
 *       both from noise_floor.json; arg-max and greedy figures are printed.
 * Further checks on the F32 files:
 *   - continuous batching: prompts A and B as two sequences of one batch
 *     on two threads give bit-identical logits to A alone on one thread
 *     and match the reference (the MoE groups mix tokens of both
 *     sequences; MLA attends per sequence);
 *   - an f16 KV cache stays within 0.06 of the reference (the README's
 *     bound for engines keeping K/V in f16) with the same arg-max where the
 *     reference margin is >= 0.1 - deepseek2 only: on qwen3moe llama.cpp
 *     itself flips an expert with an f16 cache (one position moves 3.2);
 *   - the KV cache size per token: (kv_lora_rank + rope dims) per layer for
 *     MLA, 2 x head_count_kv x key_length for qwen3moe, from index.json's
 *     copy of the file's metadata.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "integration/logits_ref.h"
#include "test_util.h"

static json_t *g_index, *g_noise;

static int64_t meta_int(json_t *mi, const char *arch, const char *suffix) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return json_integer_value(json_object_get(json_object_get(mi, "metadata"), key));
}

static void test_model(void **state) {
    const char *key = *state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    json_t *mi = json_object_get(json_object_get(g_index, "models"), key);
    const char *wt = json_string_value(json_object_get(mi, "weight_type"));
    const bool f32 = !strcmp(wt, "F32");
    nuage_ref_stats st;
    assert_int_equal(nuage_ref_compare_model(dir, g_index, key, f32 ? 0 : 0.75, f32 ? 1e-3 : 0.75, 2, &st), 0);
    double ex_med = nuage_ref_noise(g_noise, key, "exact", "median_kl");
    double ex_gt = nuage_ref_noise(g_noise, key, "exact", "n_pos_kl_gt_0_1");
    print_message("%-20s %-4s pos %3d  max|d| %.3g  meanKL %.3g  medianKL %.3g (exact %.3g)  KL>0.1 %d (exact %g)  "
                  "argmax misses %d/%d (worst margin %.3g)  greedy %d/%d steps ok\n",
                  key, wt, st.n_pos, st.max_abs, st.mean_kl, st.median_kl, ex_med, st.n_kl_gt_01, ex_gt,
                  st.n_argmax_miss, st.n_checked_argmax, st.worst_miss_margin,
                  st.greedy_compared - st.greedy_miss, st.greedy_compared);
    assert_int_equal(st.n_pos, 280);
    if (f32) {
        assert_true(st.max_abs <= 1e-3);
        assert_int_equal(st.n_argmax_miss, 0);
        assert_int_equal(st.greedy_miss, 0);
        assert_true(st.greedy_compared > 0);
    } else {
        double med_lim = fmax(2.0 * ex_med, 1e-3);
        double gt_lim = fmax(3.0, 2.0 * ex_gt);
        assert_true(st.median_kl <= med_lim);
        assert_true(st.n_kl_gt_01 <= gt_lim);
    }
}

/* Reference logits and tokens of (model, prompt); malloc'd. */
static float *load_prompt(const char *dir, const char *key, const char *p, int32_t *ids, int *n) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s.tokens.txt", key, p);
    char *txt = nuage_ref_read(dir, name, NULL);
    assert_non_null(txt);
    *n = nuage_ref_parse_ids(txt, ids, 4096);
    free(txt);
    snprintf(name, sizeof name, "%s.%s.logits.f32", key, p);
    return (float *)nuage_ref_read(dir, name, NULL);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static nuage_model *load_model(const char *dir, const char *key) {
    json_t *mi = json_object_get(json_object_get(g_index, "models"), key);
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(mi, "file")));
    nuage_model *m = NULL;
    if (nuage_model_load(path, NULL, &m, err, sizeof err)) fprintf(stderr, "%s\n", err);
    assert_non_null(m);
    return m;
}

static nuage_context *new_ctx(nuage_model *m, int n_seq, int n_batch, nuage_kv_type kv, int n_threads) {
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = n_threads;
    cp.n_ctx = 512;
    cp.n_seq_max = n_seq;
    cp.n_batch_max = n_batch;
    cp.kv_type = kv;
    nuage_context *ctx = NULL;
    char err[256];
    if (nuage_context_new(m, &cp, &ctx, err, sizeof err)) fprintf(stderr, "%s\n", err);
    assert_non_null(ctx);
    return ctx;
}

static void test_two_sequences(void **state) {
    const char *key = *state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    nuage_model *m = load_model(dir, key);
    const int nv = nuage_model_n_vocab(m);
    static int32_t ia[4096], ib[4096];
    int na, nb;
    float *ra = load_prompt(dir, key, "A", ia, &na), *rb = load_prompt(dir, key, "B", ib, &nb);
    assert_non_null(ra);
    assert_non_null(rb);
    char err[256];
    /* A alone, on one thread */
    nuage_context *c1 = new_ctx(m, 1, na, NUAGE_KV_F32, 1);
    nuage_batch *b = nuage_batch_new(na + nb);
    for (int i = 0; i < na; i++) nuage_batch_add(b, ia[i], i, 0, true);
    assert_int_equal(nuage_decode(c1, b, err, sizeof err), 0);
    float *alone = malloc((size_t)na * nv * sizeof(float));
    for (int i = 0; i < na; i++) memcpy(alone + (size_t)i * nv, nuage_get_logits(c1, i), (size_t)nv * sizeof(float));
    /* A and B interleaved in one batch, two sequences, two threads */
    nuage_context *c2 = new_ctx(m, 2, na + nb, NUAGE_KV_F32, 2);
    nuage_batch_clear(b);
    int idx_a[4096], idx_b[4096];
    for (int i = 0, ja = 0, jb = 0; i < na + nb; i++) {
        if (ja < na && (i % 2 == 0 || jb == nb)) { idx_a[ja] = nuage_batch_add(b, ia[ja], ja, 0, true); ja++; }
        else { idx_b[jb] = nuage_batch_add(b, ib[jb], jb, 1, true); jb++; }
    }
    assert_int_equal(nuage_decode(c2, b, err, sizeof err), 0);
    double d_alone = 0, d_ref_a = 0, d_ref_b = 0;
    for (int i = 0; i < na; i++) {
        const float *l = nuage_get_logits(c2, idx_a[i]);
        d_alone = fmax(d_alone, max_abs_diff(l, alone + (size_t)i * nv, (size_t)nv));
        d_ref_a = fmax(d_ref_a, max_abs_diff(l, ra + (size_t)i * nv, (size_t)nv));
    }
    for (int i = 0; i < nb; i++)
        d_ref_b = fmax(d_ref_b, max_abs_diff(nuage_get_logits(c2, idx_b[i]), rb + (size_t)i * nv, (size_t)nv));
    print_message("%-20s two sequences in one batch, 2 threads: |A - A alone, 1 thread| %.3g  |A - ref| %.3g  |B - ref| %.3g\n",
                  key, d_alone, d_ref_a, d_ref_b);
    assert_true(d_alone == 0.0);
    assert_true(d_ref_a <= 1e-3);
    assert_true(d_ref_b <= 1e-3);
    free(alone);
    free(ra);
    free(rb);
    nuage_batch_free(b);
    nuage_context_free(c1);
    nuage_context_free(c2);
    nuage_model_free(m);
}

static void test_kv_f16(void **state) {
    const char *key = *state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    nuage_model *m = load_model(dir, key);
    const int nv = nuage_model_n_vocab(m);
    static int32_t ids[4096];
    int n;
    float *ref = load_prompt(dir, key, "C", ids, &n);
    assert_non_null(ref);
    nuage_context *c = new_ctx(m, 1, n, NUAGE_KV_F16, 2);
    nuage_batch *b = nuage_batch_new(n);
    for (int i = 0; i < n; i++) nuage_batch_add(b, ids[i], i, 0, true);
    char err[256];
    assert_int_equal(nuage_decode(c, b, err, sizeof err), 0);
    double d = 0;
    int checked = 0, miss = 0;
    for (int i = 0; i < n; i++) {
        const float *l = nuage_get_logits(c, i), *r = ref + (size_t)i * nv;
        d = fmax(d, max_abs_diff(l, r, (size_t)nv));
        double margin;
        int ra = nuage_ref_argmax(r, nv, &margin);
        if (margin >= 0.1) {
            checked++;
            miss += nuage_ref_argmax(l, nv, NULL) != ra;
        }
    }
    print_message("%-20s f16 KV cache, prompt C: max|d| %.3g (llama.cpp's own f16 cache: %.3g)  argmax misses %d/%d\n",
                  key, d, nuage_ref_noise(g_noise, key, "kv_f16", "max_abs"), miss, checked);
    assert_true(d <= 0.06);
    assert_int_equal(miss, 0);
    free(ref);
    nuage_batch_free(b);
    nuage_context_free(c);
    nuage_model_free(m);
}

static void test_kv_bytes(void **state) {
    const char *key = *state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    json_t *mi = json_object_get(json_object_get(g_index, "models"), key);
    const char *arch = json_string_value(json_object_get(mi, "arch"));
    int64_t n_layer = meta_int(mi, arch, "block_count"), per_layer;
    if (!strcmp(arch, "deepseek2"))
        per_layer = meta_int(mi, arch, "attention.kv_lora_rank") + meta_int(mi, arch, "rope.dimension_count");
    else
        per_layer = 2 * meta_int(mi, arch, "attention.head_count_kv") * meta_int(mi, arch, "attention.key_length");
    assert_true(per_layer > 0 && n_layer > 0);
    nuage_model *m = load_model(dir, key);
    uint64_t got = nuage_model_kv_bytes_per_token(m, 2);
    print_message("%-20s KV bytes per token (f16): %llu (expected %lld)\n", key, (unsigned long long)got,
                  (long long)(per_layer * 2 * n_layer));
    assert_true(got == (uint64_t)(per_layer * 2 * n_layer));
    nuage_model_free(m);
}

int main(void) {
    const char *dir = nuage_test_shared_dir();
    static struct CMUnitTest tests[64];
    static char *keys[16];
    size_t n = 0, nk = 0;
    if (dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/vectors/logits/index.json", dir);
        g_index = json_load_file(path, 0, NULL);
        snprintf(path, sizeof path, "%s/vectors/logits/noise_floor.json", dir);
        g_noise = json_load_file(path, 0, NULL);
        const char *key;
        json_t *mi;
        json_object_foreach(json_object_get(g_index, "models"), key, mi) {
            const char *arch = json_string_value(json_object_get(mi, "arch"));
            if (strcmp(arch, "qwen3moe") && strcmp(arch, "deepseek2")) continue;
            if (nk == 16) break;
            char *k = keys[nk++] = strdup(key);
            bool f32 = !strcmp(json_string_value(json_object_get(mi, "weight_type")), "F32");
            tests[n++] = (struct CMUnitTest){.name = k, .test_func = test_model, .initial_state = k};
            if (f32) {
                tests[n++] = (struct CMUnitTest){.name = "two sequences", .test_func = test_two_sequences, .initial_state = k};
                tests[n++] = (struct CMUnitTest){.name = "kv bytes per token", .test_func = test_kv_bytes, .initial_state = k};
                if (!strcmp(arch, "deepseek2"))
                    tests[n++] = (struct CMUnitTest){.name = "f16 KV cache", .test_func = test_kv_f16, .initial_state = k};
            }
        }
    }
    if (n == 0) {
        tests[0] = (struct CMUnitTest){.name = "shared data", .test_func = test_model, .initial_state = "none"};
        n = 1;
    }
    int rc = _cmocka_run_group_tests("logits_moe", tests, n, NULL, NULL);
    return nuage_test_exit(rc);
}
