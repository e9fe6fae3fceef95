/*
 * test_logits_gptoss.c - the gpt-oss architecture (llama.cpp's
 * LLM_ARCH_OPENAI_MOE) against llama.cpp's reference logits in ../shared,
 * with the tolerances of ../shared/README.md ("Recommended tolerances",
 * points 1, 4, 5 and 6):
 *   rand-gptoss-f32: max |Δlogit| <= 1e-3 and the same arg-max at every
 *       position of prompts A, B, C (smallest reference margin 0.0022);
 *       the greedy continuation replayed on the KV-cache path agrees up to
 *       the first step whose reference margin is < 1e-3.
 *   rand-gptoss-mxfp4 (MXFP4 experts, Q8_0 elsewhere): near-tied expert
 *       choices flip and move single positions by several logits even in
 *       exact arithmetic, so the file is judged by the median KL
 *       (<= 2 x exact's, 0.0064) and the positions with KL > 0.1 (<= 25 of
 *       280), as the README suggests, plus: no arg-max miss where the
 *       reference margin is above 1.1 (llama.cpp's own setting changes and
 *       exact arithmetic flip margins up to 1.02) and the greedy
 *       continuation up to the first step with margin < 0.75.
 * Every feature of the architecture is on the path of these numbers: q/k/v/o
 * biases, NeoX RoPE with YaRN, the 16-token window on layers 0 and 2
 * (prompts B and C are longer), the sinks, the router bias and
 * SOFTMAX_WEIGHT gating, the expert biases and the clamped SwiGLU-OAI.
 * Further checks on the F32 file:
 *   - prompt C fed in chunks of 7 tokens (the window then spans earlier
 *     decode calls and KV blocks) matches the reference within 1e-3;
 *   - prompts A and B as two sequences of one batch on two threads are
 *     bit-identical to A alone on one thread and match the reference;
 *   - an f16 KV cache stays within 0.06 (llama.cpp's own: 0.02) with the
 *     same arg-max wherever the reference margin is >= 0.1;
 *   - KV bytes per token = 2 x head_count_kv x key_length per layer.
 * And on copies of the F32 file with one thing changed: a missing sink or
 * expert-bias tensor or window key is a clear load error, and an
 * attention.sliding_window_pattern key of 1 (no window layers, llama.cpp's
 * rule il % P < P - 1) is honoured: prompt A (16 tokens, all inside the
 * window) still matches the reference, prompt C matches before position
 * 16 and moves after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <unistd.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "integration/logits_ref.h"
#include "integration/logits_checks.h"
#include "test_util.h"

static json_t *g_index, *g_noise;

static void test_model(void **state) {
    const char *key = *state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    json_t *mi = json_object_get(json_object_get(g_index, "models"), key);
    assert_non_null(mi);
    const char *wt = json_string_value(json_object_get(mi, "weight_type"));
    const bool f32 = !strcmp(wt, "F32");
    nuage_ref_stats st;
    assert_int_equal(nuage_ref_compare_model(dir, g_index, key, f32 ? 0 : 1.1, f32 ? 1e-3 : 0.75, 2, &st), 0);
    double ex_med = nuage_ref_noise(g_noise, key, "exact", "median_kl");
    double ex_gt = nuage_ref_noise(g_noise, key, "exact", "n_pos_kl_gt_0_1");
    print_message("%-18s %-9s pos %3d  max|d| %.3g (exact %.3g)  meanKL %.3g  medianKL %.3g (exact %.3g)  "
                  "KL>0.1 %d (exact %g)  argmax misses %d/%d (worst margin %.3g)  greedy %d/%d steps ok\n",
                  key, wt, st.n_pos, st.max_abs, nuage_ref_noise(g_noise, key, "exact", "max_abs"), st.mean_kl,
                  st.median_kl, ex_med, st.n_kl_gt_01, ex_gt, st.n_argmax_miss, st.n_checked_argmax,
                  st.worst_miss_margin, st.greedy_compared - st.greedy_miss, st.greedy_compared);
    assert_int_equal(st.n_pos, 280);
    assert_int_equal(st.n_argmax_miss, 0);
    assert_int_equal(st.greedy_miss, 0);
    assert_true(st.greedy_compared > 0);
    if (f32) {
        assert_int_equal(st.n_checked_argmax, 280);
        assert_true(st.max_abs <= 1e-3);
    } else {
        assert_true(ex_med > 0);
        assert_true(st.median_kl <= 2.0 * ex_med);
        assert_true(st.n_kl_gt_01 <= 25);
    }
}

static inline float *load_prompt(const char *dir, const char *key, const char *p, int32_t *ids, int *n) {
    return nuage_ref_load_prompt(dir, key, p, ids, n);
}
static inline double max_abs_diff(const float *a, const float *b, size_t n) { return nuage_ref_max_abs_diff(a, b, n); }
static inline nuage_model *load_model(const char *dir, const char *key) { return nuage_ref_load_model(g_index, dir, key); }
static inline nuage_context *new_ctx(nuage_model *m, int n_seq, int n_batch, nuage_kv_type kv, int n_threads) {
    return nuage_ref_new_ctx(m, n_seq, n_batch, kv, n_threads);
}

/* Prompt C in chunks of 7 tokens on the KV-cache path. */
static void test_chunks(void **state) {
    const char *key = *state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    nuage_model *m = load_model(dir, key);
    const int nv = nuage_model_n_vocab(m);
    static int32_t ids[4096];
    int n;
    float *ref = load_prompt(dir, key, "C", ids, &n);
    assert_non_null(ref);
    assert_true(n > 16);
    nuage_context *c = new_ctx(m, 1, 7, NUAGE_KV_F32, 2);
    nuage_batch *b = nuage_batch_new(7);
    char err[256];
    double d = 0;
    int miss = 0;
    for (int p0 = 0; p0 < n; p0 += 7) {
        nuage_batch_clear(b);
        int cnt = n - p0 < 7 ? n - p0 : 7;
        for (int i = 0; i < cnt; i++) nuage_batch_add(b, ids[p0 + i], p0 + i, 0, true);
        assert_int_equal(nuage_decode(c, b, err, sizeof err), 0);
        for (int i = 0; i < cnt; i++) {
            const float *l = nuage_get_logits(c, i), *r = ref + (size_t)(p0 + i) * nv;
            d = fmax(d, max_abs_diff(l, r, (size_t)nv));
            miss += nuage_ref_argmax(l, nv, NULL) != nuage_ref_argmax(r, nv, NULL);
        }
    }
    print_message("%-18s prompt C in chunks of 7: max|d| %.3g  argmax misses %d/%d\n", key, d, miss, n);
    assert_true(d <= 1e-3);
    assert_int_equal(miss, 0);
    free(ref);
    nuage_batch_free(b);
    nuage_context_free(c);
    nuage_model_free(m);
}

static void test_two_sequences(void **state) {
    NUAGE_REQUIRE_SHARED();
    nuage_ref_check_two_sequences(g_index, nuage_test_shared_dir(), *state);
}

static void test_kv_f16(void **state) {
    NUAGE_REQUIRE_SHARED();
    nuage_ref_check_kv_f16(g_index, g_noise, nuage_test_shared_dir(), *state);
}

static void test_kv_bytes(void **state) {
    const char *key = *state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    json_t *md = json_object_get(json_object_get(json_object_get(g_index, "models"), key), "metadata");
    int64_t n_layer = json_integer_value(json_object_get(md, "gpt-oss.block_count"));
    int64_t per_layer = 2 * json_integer_value(json_object_get(md, "gpt-oss.attention.head_count_kv")) *
                        json_integer_value(json_object_get(md, "gpt-oss.attention.key_length"));
    assert_true(per_layer > 0 && n_layer > 0);
    nuage_model *m = load_model(dir, key);
    uint64_t got = nuage_model_kv_bytes_per_token(m, 2);
    print_message("%-18s KV bytes per token (f16): %llu (expected %lld)\n", key, (unsigned long long)got,
                  (long long)(per_layer * 2 * n_layer));
    assert_true(got == (uint64_t)(per_layer * 2 * n_layer));
    nuage_model_free(m);
}

/* Copy the GGUF at src to dst without tensor `drop` / key `drop_key` (NULL:
 * none) and with the u32 key `set_key` = set_val added (NULL: none). */
static void write_variant(const char *src, const char *dst, const char *drop, const char *drop_key,
                          const char *set_key, uint32_t set_val) {
    char err[256];
    nuage_gguf *g = NULL;
    assert_int_equal(nuage_gguf_open(src, &g, err, sizeof err), 0);
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    assert_non_null(w);
    for (uint64_t i = 0; i < nuage_gguf_n_kv(g); i++) {
        const nuage_gguf_kv *kv = nuage_gguf_kv_at(g, i);
        if (drop_key && !strcmp(kv->key.ptr, drop_key)) continue;
        assert_int_equal(nuage_gguf_writer_set_value(w, kv->key.ptr, &kv->value), 0);
    }
    if (set_key) assert_int_equal(nuage_gguf_writer_set_u32(w, set_key, set_val), 0);
    for (uint64_t i = 0; i < nuage_gguf_n_tensors(g); i++) {
        const nuage_gguf_tensor *t = nuage_gguf_tensor_at(g, i);
        if (drop && !strcmp(t->name, drop)) continue;
        assert_int_equal(nuage_gguf_writer_add_tensor(w, t->name, t->type, (int)t->n_dims, t->ne, t->data,
                                                      (size_t)t->nbytes), 0);
    }
    assert_int_equal(nuage_gguf_writer_write_file(w, dst, err, sizeof err), 0);
    nuage_gguf_writer_free(w);
    nuage_gguf_close(g);
}

/* Loading dst must fail with `code` and a message containing `what`. */
static void expect_load_error(const char *path, int code, const char *what) {
    nuage_model *m = NULL;
    char err[512] = "";
    int rc = nuage_model_load(path, NULL, &m, err, sizeof err);
    print_message("  variant without %s: rc %d, \"%s\"\n", what, rc, err);
    assert_int_equal(rc, code);
    assert_null(m);
    assert_non_null(strstr(err, what));
}

static void test_variants(void **state) {
    const char *key = *state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_dir();
    char src[4096], dst[4096];
    int len = snprintf(src, sizeof src, "%s/%s", dir,
                       json_string_value(json_object_get(json_object_get(json_object_get(g_index, "models"), key), "file")));
    assert_true(len > 0 && (size_t)len < sizeof src);
    len = snprintf(dst, sizeof dst, "%s/nuage-gptoss-variant-%d.gguf",
                   getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    assert_true(len > 0 && (size_t)len < sizeof dst);
    /* missing tensors and keys are load errors naming them */
    write_variant(src, dst, "blk.1.attn_sinks.weight", NULL, NULL, 0);
    expect_load_error(dst, NUAGE_E_FORMAT, "blk.1.attn_sinks.weight");
    write_variant(src, dst, "blk.2.ffn_up_exps.bias", NULL, NULL, 0);
    expect_load_error(dst, NUAGE_E_FORMAT, "blk.2.ffn_up_exps.bias");
    write_variant(src, dst, "output.weight", NULL, NULL, 0);
    expect_load_error(dst, NUAGE_E_FORMAT, "output.weight");
    write_variant(src, dst, NULL, "gpt-oss.attention.sliding_window", NULL, 0);
    expect_load_error(dst, NUAGE_E_FORMAT, "sliding_window");
    /* sliding_window_pattern 1: no window layer */
    write_variant(src, dst, NULL, NULL, "gpt-oss.attention.sliding_window_pattern", 1);
    nuage_model *m = NULL;
    char err[512];
    assert_int_equal(nuage_model_load(dst, NULL, &m, err, sizeof err), 0);
    const int nv = nuage_model_n_vocab(m);
    static int32_t ids[4096];
    int n;
    double d_a = 0, d_c_in = 0, d_c_out = 0;
    float *ref = load_prompt(dir, key, "A", ids, &n);
    assert_non_null(ref);
    float *ours = nuage_ref_eval(m, ids, n, 2);
    assert_non_null(ours);
    d_a = max_abs_diff(ours, ref, (size_t)n * nv);
    free(ref);
    free(ours);
    ref = load_prompt(dir, key, "C", ids, &n);
    assert_non_null(ref);
    ours = nuage_ref_eval(m, ids, n, 2);
    assert_non_null(ours);
    d_c_in = max_abs_diff(ours, ref, (size_t)16 * nv);
    d_c_out = max_abs_diff(ours + (size_t)16 * nv, ref + (size_t)16 * nv, (size_t)(n - 16) * nv);
    print_message("%-18s sliding_window_pattern 1: |A - ref| %.3g  |C[0,16) - ref| %.3g  |C[16,) - ref| %.3g\n",
                  key, d_a, d_c_in, d_c_out);
    assert_true(d_a <= 1e-3);
    assert_true(d_c_in <= 1e-3);
    assert_true(d_c_out > 0.1);
    free(ref);
    free(ours);
    nuage_model_free(m);
    unlink(dst);
}

int main(void) {
    const char *dir = nuage_test_shared_dir();
    static struct CMUnitTest tests[32];
    static char *keys[8];
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
            if (strcmp(json_string_value(json_object_get(mi, "arch")), "gpt-oss")) continue;
            if (nk == 8) break;
            char *k = keys[nk++] = strdup(key);
            bool f32 = !strcmp(json_string_value(json_object_get(mi, "weight_type")), "F32");
            tests[n++] = (struct CMUnitTest){.name = k, .test_func = test_model, .initial_state = k};
            if (f32) {
                tests[n++] = (struct CMUnitTest){.name = "chunks of 7", .test_func = test_chunks, .initial_state = k};
                tests[n++] = (struct CMUnitTest){.name = "two sequences", .test_func = test_two_sequences, .initial_state = k};
                tests[n++] = (struct CMUnitTest){.name = "f16 KV cache", .test_func = test_kv_f16, .initial_state = k};
                tests[n++] = (struct CMUnitTest){.name = "kv bytes per token", .test_func = test_kv_bytes, .initial_state = k};
                tests[n++] = (struct CMUnitTest){.name = "file variants", .test_func = test_variants, .initial_state = k};
            }
        }
    }
    if (n == 0) {
        tests[0] = (struct CMUnitTest){.name = "shared data", .test_func = test_model, .initial_state = "none"};
        n = 1;
    }
    int rc = _cmocka_run_group_tests("logits_gptoss", tests, n, NULL, NULL);
    for (size_t i = 0; i < nk; i++) free(keys[i]);
    json_decref(g_index);
    json_decref(g_noise);
    return nuage_test_exit(rc);
}
