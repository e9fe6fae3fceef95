/*
 * logits_checks.h - checks shared by the reference tests of several
 * architectures (test_logits_moe.c, test_logits_gptoss.c): loading a
 * model and a prompt's reference logits from ../shared's index, and the
 * batching and KV-type checks every architecture must pass. Include after
 * <cmocka.h> and logits_ref.h.
 */
#ifndef NUAGE_LOGITS_CHECKS_H
#define NUAGE_LOGITS_CHECKS_H

/* Reference logits and tokens of (model, prompt); malloc'd. */
static inline float *nuage_ref_load_prompt(const char *dir, const char *key, const char *p, int32_t *ids, int *n) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s.tokens.txt", key, p);
    char *txt = nuage_ref_read(dir, name, NULL);
    assert_non_null(txt);
    *n = nuage_ref_parse_ids(txt, ids, 4096);
    free(txt);
    snprintf(name, sizeof name, "%s.%s.logits.f32", key, p);
    return (float *)nuage_ref_read(dir, name, NULL);
}

static inline double nuage_ref_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static inline nuage_model *nuage_ref_load_model(json_t *index, const char *dir, const char *key) {
    json_t *mi = json_object_get(json_object_get(index, "models"), key);
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(mi, "file")));
    nuage_model *m = NULL;
    if (nuage_model_load(path, NULL, &m, err, sizeof err)) fprintf(stderr, "%s\n", err);
    assert_non_null(m);
    return m;
}

static inline nuage_context *nuage_ref_new_ctx(nuage_model *m, int n_seq, int n_batch, nuage_kv_type kv, int n_threads) {
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

/* Prompts A and B interleaved in one batch as two sequences on two
 * threads: A's logits equal A alone on one thread bit for bit, and both
 * stay within 1e-3 of the reference. */
static inline void nuage_ref_check_two_sequences(json_t *index, const char *dir, const char *key) {
    nuage_model *m = nuage_ref_load_model(index, dir, key);
    const int nv = nuage_model_n_vocab(m);
    static int32_t ia[4096], ib[4096];
    int na, nb;
    float *ra = nuage_ref_load_prompt(dir, key, "A", ia, &na), *rb = nuage_ref_load_prompt(dir, key, "B", ib, &nb);
    assert_non_null(ra);
    assert_non_null(rb);
    char err[256];
    /* A alone, on one thread */
    nuage_context *c1 = nuage_ref_new_ctx(m, 1, na, NUAGE_KV_F32, 1);
    nuage_batch *b = nuage_batch_new(na + nb);
    for (int i = 0; i < na; i++) nuage_batch_add(b, ia[i], i, 0, true);
    assert_int_equal(nuage_decode(c1, b, err, sizeof err), 0);
    float *alone = malloc((size_t)na * nv * sizeof(float));
    for (int i = 0; i < na; i++) memcpy(alone + (size_t)i * nv, nuage_get_logits(c1, i), (size_t)nv * sizeof(float));
    /* A and B interleaved in one batch, two sequences, two threads */
    nuage_context *c2 = nuage_ref_new_ctx(m, 2, na + nb, NUAGE_KV_F32, 2);
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
        d_alone = fmax(d_alone, nuage_ref_max_abs_diff(l, alone + (size_t)i * nv, (size_t)nv));
        d_ref_a = fmax(d_ref_a, nuage_ref_max_abs_diff(l, ra + (size_t)i * nv, (size_t)nv));
    }
    for (int i = 0; i < nb; i++)
        d_ref_b = fmax(d_ref_b, nuage_ref_max_abs_diff(nuage_get_logits(c2, idx_b[i]), rb + (size_t)i * nv, (size_t)nv));
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

/* Prompt C with an f16 KV cache: within 0.06 of the reference and no
 * arg-max miss where the reference margin is >= 0.1. */
static inline void nuage_ref_check_kv_f16(json_t *index, json_t *noise, const char *dir, const char *key) {
    nuage_model *m = nuage_ref_load_model(index, dir, key);
    const int nv = nuage_model_n_vocab(m);
    static int32_t ids[4096];
    int n;
    float *ref = nuage_ref_load_prompt(dir, key, "C", ids, &n);
    assert_non_null(ref);
    nuage_context *c = nuage_ref_new_ctx(m, 1, n, NUAGE_KV_F16, 2);
    nuage_batch *b = nuage_batch_new(n);
    for (int i = 0; i < n; i++) nuage_batch_add(b, ids[i], i, 0, true);
    char err[256];
    assert_int_equal(nuage_decode(c, b, err, sizeof err), 0);
    double d = 0;
    int checked = 0, miss = 0;
    for (int i = 0; i < n; i++) {
        const float *l = nuage_get_logits(c, i), *r = ref + (size_t)i * nv;
        d = fmax(d, nuage_ref_max_abs_diff(l, r, (size_t)nv));
        double margin;
        int ra = nuage_ref_argmax(r, nv, &margin);
        if (margin >= 0.1) {
            checked++;
            miss += nuage_ref_argmax(l, nv, NULL) != ra;
        }
    }
    print_message("%-20s f16 KV cache, prompt C: max|d| %.3g (llama.cpp's own f16 cache: %.3g)  argmax misses %d/%d\n",
                  key, d, nuage_ref_noise(noise, key, "kv_f16", "max_abs"), miss, checked);
    assert_true(d <= 0.06);
    assert_int_equal(miss, 0);
    free(ref);
    nuage_batch_free(b);
    nuage_context_free(c);
    nuage_model_free(m);
}

#endif
