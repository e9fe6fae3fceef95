/*
 * test_engine.c - the engine's batch and KV-cache contracts, on the model
 * of test_models.h (stories260K with ../shared, else the bundled
 * nuage-fast) and on random llamas of every weight type generated here
 * (plus ../shared's other architectures when present):
 *  - batch invariance: a sequence's logits are bit-identical whether its
 *    tokens are decoded all at once, one at a time, or interleaved with
 *    another sequence in the same batch (what continuous batching and the
 *    "same output alone or among 30 others" guarantee rest on), for every
 *    weight type;
 *  - the paged KV cache: fork shares full blocks and copies a partial one,
 *    copy-on-write keeps a forked sequence's answer unchanged, truncate and
 *    attach, reference counts, and a full cache fails cleanly leaving
 *    everything as it was;
 *  - malformed batches get their specific error codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "nuage/nuage.h"
#include "test_util.h"
#include "test_models.h"

static const int32_t prompt_a[16] = {1, 438, 90, 74, 195, 254, 353, 351, 260, 448, 131, 348, 48, 43, 364, 351};
static const int32_t prompt_b[12] = {1, 222, 295, 191, 496, 498, 301, 317, 428, 231, 151, 501};

static nuage_model *load(const char *path) {
    assert_non_null(path);
    nuage_model *m = NULL;
    char err[256];
    int rc = nuage_model_load(path, NULL, &m, err, sizeof err);
    if (rc) print_message("load %s: %s\n", path, err);
    assert_int_equal(rc, 0);
    return m;
}

static nuage_context *make_ctx(nuage_model *m, int n_seq, int n_batch, int blocks, nuage_kv_type kvt) {
    nuage_context_params p = nuage_context_default_params();
    p.n_threads = 2;
    p.n_ctx = 256;
    p.n_seq_max = n_seq;
    p.n_batch_max = n_batch;
    p.kv_blocks = blocks;
    p.kv_block_size = 4;
    p.kv_type = kvt;
    nuage_context *c = NULL;
    char err[256];
    assert_int_equal(nuage_context_new(m, &p, &c, err, sizeof err), 0);
    return c;
}

/* logits (n, n_vocab) of prompt decoded in chunks of `chunk` on sequence 0,
 * optionally interleaved token by token with prompt_b on sequence 1. */
static float *run(nuage_model *m, const int32_t *p, int n, int chunk, bool interleave) {
    int nv = nuage_model_n_vocab(m);
    nuage_context *c = make_ctx(m, 2, 64, 64, NUAGE_KV_F32);
    nuage_batch *b = nuage_batch_new(64);
    float *out = malloc((size_t)n * nv * sizeof(float));
    char err[256];
    int other = 0;
    for (int i0 = 0; i0 < n; i0 += chunk) {
        nuage_batch_clear(b);
        int idx[64], k = 0;
        for (int i = i0; i < n && i < i0 + chunk; i++) {
            if (interleave && other < 12) { nuage_batch_add(b, prompt_b[other], other, 1, true); other++; }
            idx[k++] = nuage_batch_add(b, p[i], i, 0, true);
        }
        assert_int_equal(nuage_decode(c, b, err, sizeof err), 0);
        for (int j = 0; j < k; j++)
            memcpy(out + (size_t)(i0 + j) * nv, nuage_get_logits(c, idx[j]), (size_t)nv * sizeof(float));
    }
    nuage_batch_free(b);
    nuage_context_free(c);
    return out;
}

static int check_invariance(const char *path) {
    nuage_model *m = load(path);
    int nv = nuage_model_n_vocab(m);
    size_t bytes = (size_t)16 * nv * sizeof(float);
    float *whole = run(m, prompt_a, 16, 16, false);
    float *single = run(m, prompt_a, 16, 1, false);
    float *mixed = run(m, prompt_a, 16, 5, true);
    bool ok1 = !memcmp(whole, single, bytes), ok2 = !memcmp(whole, mixed, bytes);
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    print_message("%-36s all-at-once == one-by-one: %s, == interleaved with another sequence: %s\n", name,
                  ok1 ? "yes" : "NO", ok2 ? "yes" : "NO");
    free(whole); free(single); free(mixed);
    nuage_model_free(m);
    return !ok1 + !ok2;
}

static void test_batch_invariance(void **state) {
    (void)state;
    int failures = check_invariance(nuage_test_model_path()), n_types = 0;
    /* Every weight type the engine runs, on a random llama made here. */
    for (uint32_t t = 0; t < NUAGE_TYPE_COUNT; t++) {
        const char *path = nuage_test_random_model(t);
        if (!path) continue;
        failures += check_invariance(path);
        n_types++;
    }
    assert_true(n_types >= 15);
    /* Other architectures, when ../shared has them. */
    static const char *shared[] = {"models/rand-qwen2-q8_0.gguf", "models/rand-qwen3-q4_k.gguf"};
    for (size_t f = 0; nuage_test_shared_dir() && f < sizeof shared / sizeof shared[0]; f++)
        failures += check_invariance(nuage_test_shared_path(shared[f]));
    assert_int_equal(failures, 0);
}

static void test_kv_paging(void **state) {
    (void)state;
    nuage_model *m = load(nuage_test_model_path());
    int nv = nuage_model_n_vocab(m);
    nuage_context *c = make_ctx(m, 4, 32, 12, NUAGE_KV_F32); /* 12 blocks of 4 tokens */
    nuage_batch *b = nuage_batch_new(32);
    char err[256];
    assert_int_equal(nuage_kv_blocks_total(c), 12);
    assert_int_equal(nuage_kv_block_size(c), 4);
    /* 10 tokens on seq 0 take 3 blocks */
    for (int i = 0; i < 10; i++) nuage_batch_add(b, prompt_a[i], i, 0, i == 9);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), 0);
    assert_int_equal(nuage_kv_seq_len(c, 0), 10);
    assert_int_equal(nuage_kv_blocks_free(c), 9);
    /* fork 10 tokens into seq 1: 2 full blocks shared, the partial one copied */
    assert_int_equal(nuage_kv_seq_fork(c, 1, 0, 10), 0);
    assert_int_equal(nuage_kv_blocks_free(c), 8);
    const int32_t *b0, *b1;
    assert_int_equal(nuage_kv_seq_blocks(c, 0, &b0), 3);
    assert_int_equal(nuage_kv_seq_blocks(c, 1, &b1), 3);
    assert_int_equal(b0[0], b1[0]);
    assert_int_equal(b0[1], b1[1]);
    assert_int_not_equal(b0[2], b1[2]);
    assert_int_equal(nuage_kv_block_refcount(c, b0[0]), 2);
    /* both continue with the same token: identical logits */
    nuage_batch_clear(b);
    nuage_batch_add(b, prompt_a[10], 10, 0, true);
    nuage_batch_add(b, prompt_a[10], 10, 1, true);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), 0);
    assert_memory_equal(nuage_get_logits(c, 0), nuage_get_logits(c, 1), (size_t)nv * sizeof(float));
    /* copy-on-write: truncate seq 1 into a shared block, write other tokens,
     * seq 0 must be unaffected */
    float *before = malloc((size_t)nv * sizeof(float));
    memcpy(before, nuage_get_logits(c, 0), (size_t)nv * sizeof(float));
    assert_int_equal(nuage_kv_seq_truncate(c, 1, 6), 0);
    assert_int_equal(nuage_kv_seq_len(c, 1), 6);
    nuage_batch_clear(b);
    for (int i = 6; i < 11; i++) nuage_batch_add(b, prompt_b[i], i, 1, false);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), 0);
    assert_int_equal(nuage_kv_block_refcount(c, b0[1]), 1); /* seq 1 copied it */
    /* recompute seq 0's last step on a fresh sequence 2 via attach of seq 0's
     * first two full blocks + the rest; must equal `before` */
    assert_int_equal(nuage_kv_seq_attach(c, 2, b0, 2), 0);
    assert_int_equal(nuage_kv_seq_len(c, 2), 8);
    nuage_batch_clear(b);
    for (int i = 8; i < 11; i++) nuage_batch_add(b, prompt_a[i], i, 2, i == 10);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), 0);
    assert_memory_equal(nuage_get_logits(c, 2), before, (size_t)nv * sizeof(float));
    /* attach to a non-empty sequence is refused */
    assert_int_equal(nuage_kv_seq_attach(c, 2, b0, 1), NUAGE_E_STATE);
    /* KV full: fails cleanly and changes nothing */
    int free_before = nuage_kv_blocks_free(c);
    int len3 = nuage_kv_seq_len(c, 3);
    nuage_batch_clear(b);
    for (int i = 0; i < 32; i++) nuage_batch_add(b, 5, i, 3, false);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), NUAGE_E_KV_FULL);
    assert_non_null(strstr(err, "KV cache full"));
    assert_int_equal(nuage_kv_blocks_free(c), free_before);
    assert_int_equal(nuage_kv_seq_len(c, 3), len3);
    /* freeing everything returns every block */
    for (int s = 0; s < 4; s++) assert_int_equal(nuage_kv_seq_truncate(c, s, 0), 0);
    assert_int_equal(nuage_kv_blocks_free(c), 12);
    free(before);
    nuage_batch_free(b);
    nuage_context_free(c);
    nuage_model_free(m);
}

static void test_bad_batches(void **state) {
    (void)state;
    nuage_model *m = load(nuage_test_model_path());
    nuage_context *c = make_ctx(m, 2, 8, 64, NUAGE_KV_F16);
    nuage_batch *b = nuage_batch_new(16);
    char err[256];
    /* empty batch */
    assert_int_equal(nuage_decode(c, b, err, sizeof err), NUAGE_E_INVAL);
    /* too many tokens for n_batch_max */
    for (int i = 0; i < 9; i++) nuage_batch_add(b, 1, i, 0, false);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), NUAGE_E_INVAL);
    /* token out of vocabulary */
    nuage_batch_clear(b);
    nuage_batch_add(b, nuage_model_n_vocab(m), 0, 0, true);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), NUAGE_E_RANGE);
    assert_non_null(strstr(err, "out of vocabulary"));
    nuage_batch_clear(b);
    nuage_batch_add(b, -1, 0, 0, true);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), NUAGE_E_RANGE);
    /* sequence id out of range */
    nuage_batch_clear(b);
    nuage_batch_add(b, 1, 0, 2, true);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), NUAGE_E_RANGE);
    /* position gap */
    nuage_batch_clear(b);
    nuage_batch_add(b, 1, 1, 0, true);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), NUAGE_E_INVAL);
    assert_int_equal(nuage_kv_seq_len(c, 0), 0);
    /* beyond the context */
    nuage_context *small = NULL;
    nuage_context_params p = nuage_context_default_params();
    p.n_ctx = 4;
    p.n_threads = 1;
    assert_int_equal(nuage_context_new(m, &p, &small, err, sizeof err), 0);
    nuage_batch_clear(b);
    for (int i = 0; i < 5; i++) nuage_batch_add(b, 1, i, 0, false);
    assert_int_equal(nuage_decode(small, b, err, sizeof err), NUAGE_E_CTX);
    assert_int_equal(nuage_kv_seq_len(small, 0), 0);
    nuage_context_free(small);
    /* get_logits of a token that did not ask */
    nuage_batch_clear(b);
    nuage_batch_add(b, 1, 0, 0, false);
    nuage_batch_add(b, 2, 1, 0, true);
    assert_int_equal(nuage_decode(c, b, err, sizeof err), 0);
    assert_null(nuage_get_logits(c, 0));
    assert_non_null(nuage_get_logits(c, 1));
    assert_null(nuage_get_logits(c, 2));
    /* embeddings-only output */
    nuage_batch_clear(b);
    nuage_batch_add(b, 3, 2, 0, false);
    b->logits[0] = NUAGE_OUT_EMBD;
    assert_int_equal(nuage_decode(c, b, err, sizeof err), 0);
    assert_null(nuage_get_logits(c, 0));
    assert_non_null(nuage_get_embedding(c, 0));
    nuage_batch_free(b);
    nuage_context_free(c);
    nuage_model_free(m);
}

static void test_bad_model_files(void **state) {
    (void)state;
    char err[256];
    nuage_model *m = NULL;
    assert_int_equal(nuage_model_load("/nonexistent/model.gguf", NULL, &m, err, sizeof err), NUAGE_E_IO);
    assert_null(m);
    /* a vocabulary-only GGUF has no weights: a clear format error */
    const char *vocab_only = nuage_test_vocab_only();
    assert_non_null(vocab_only);
    int rc = nuage_model_load(vocab_only, NULL, &m, err, sizeof err);
    assert_true(rc == NUAGE_E_FORMAT || rc == NUAGE_E_UNSUPPORTED);
    print_message("vocab-only file: %s\n", err);
    assert_null(m);
    /* truncated copy of a real model: the loader names the problem */
    size_t len = 0;
    char *buf = nuage_test_read_file(nuage_test_model_path(), &len);
    assert_non_null(buf);
    char path[] = "/tmp/nuage_trunc_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    fwrite(buf, 1, len - 1000, f);
    fclose(f);
    rc = nuage_model_load(path, NULL, &m, err, sizeof err);
    print_message("truncated file: %s\n", err);
    assert_int_equal(rc, NUAGE_E_FORMAT);
    assert_non_null(strstr(err, "past end of file"));
    remove(path);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_model_files),
        cmocka_unit_test(test_bad_batches),
        cmocka_unit_test(test_kv_paging),
        cmocka_unit_test(test_batch_invariance),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
