/*
 * test_kv_sizing.c - the KV-cache bytes a deployment budgets for a model
 * with sliding-window layers (issue 13).
 *
 * A window layer keeps only its last W positions in a small pool of its
 * own (src/engine/kv_cache.h), so a deployment must not charge it the
 * whole context per sequence. The files are the shared random gpt-oss and
 * Gemma 3 models; the expected byte counts are derived here from their
 * hyper-parameters as ../shared/README.md states them (not read back from
 * the model): gpt-oss E256 L4, 2 KV heads of 64, window 16 on layers 0 and
 * 2; Gemma 3 L6, 2 KV heads of 64, window 16 on layers 0-4. With f16 KV a
 * token costs (2*64 + 2*64) * 2 = 512 bytes per layer.
 *
 * Checked:
 *  - nuage_context_kv_bytes equals the hand formula: global blocks for the
 *    global layers only, plus the window pool kv_cache.h sizes for the
 *    live sequences (n_seq * (ceil((W-1)/bs) + 2) + ceil(n_batch/bs) + 1
 *    blocks) and the prefix cache's pins ((ceil((W-1)/bs) + 1) *
 *    (n_seq/2 + 1) blocks), for the window layers only;
 *  - it equals what a real context allocates (its pools' sizes), and
 *    rollback room (kv_window_keep = K) sizes the pool for W + K;
 *  - nuage_sched_kv_bytes resolves the scheduler's defaults (n_ctx *
 *    parallel / 4 tokens of global blocks);
 *  - a deployment of the Gemma 3 file under a memory limit between the
 *    window-aware size and the old every-layer-keeps-the-context size now
 *    loads, charges exactly the scheduler's bytes, and is still refused
 *    when the limit is below them (fail closed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#include "test_util.h"
#include "engine/context.h"
#include "nuage/nuage.h"
#include "platform/deploy.h"
#include "runtime/sched.h"

#define ROW 512u /* f16 bytes per token per layer: (2*64 + 2*64) * 2 */

typedef struct {
    const char *file;
    int n_layer, n_win, W;
} shape;

static const shape k_gptoss = {"models/rand-gptoss-f32.gguf", 4, 2, 16};
static const shape k_gemma3 = {"models/rand-gemma3-f32.gguf", 6, 5, 16};

static uint64_t cdiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* The hand formula (see top) for n_blocks global blocks. */
static uint64_t expected_bytes(const shape *s, uint64_t n_blocks, uint64_t bs, uint64_t n_seq, uint64_t n_batch) {
    uint64_t per_live = cdiv((uint64_t)s->W - 1, bs) + 2;
    uint64_t per_pin = cdiv((uint64_t)s->W - 1, bs) + 1;
    uint64_t w_blocks = n_seq * per_live + cdiv(n_batch, bs) + 1 + per_pin * (n_seq / 2 + 1);
    uint64_t global = n_blocks * bs * ROW * (uint64_t)(s->n_layer - s->n_win);
    return global + w_blocks * bs * ROW * (uint64_t)s->n_win;
}

static nuage_model *load(const shape *s) {
    nuage_model *m = NULL;
    char err[256];
    int rc = nuage_model_load(nuage_test_shared_path(s->file), NULL, &m, err, sizeof err);
    if (rc) print_message("load %s: %s\n", s->file, err);
    assert_int_equal(rc, 0);
    int32_t n_win = 0;
    assert_int_equal(nuage_model_n_swa(m, &n_win), s->W);
    assert_int_equal(n_win, s->n_win);
    assert_int_equal(nuage_model_n_layer(m), s->n_layer);
    assert_true(nuage_model_kv_bytes_per_token(m, 2) == ROW * (uint64_t)s->n_layer);
    return m;
}

static void check_context_bytes(const shape *s) {
    nuage_model *m = load(s);
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = 1;
    cp.n_ctx = 4096;
    cp.n_seq_max = 8;
    cp.n_batch_max = 512;
    cp.kv_block_size = 16;
    cp.kv_blocks = 512; /* 8 sequences * 4096 / 4 tokens, as the scheduler's default */
    cp.kv_type = NUAGE_KV_F16;
    uint64_t want = expected_bytes(s, 512, 16, 8, 512);
    uint64_t got = nuage_context_kv_bytes(m, &cp);
    print_message("%s: %llu bytes (every layer for the whole context: %llu)\n", s->file, (unsigned long long)got,
                  (unsigned long long)(512ull * 16 * ROW * (uint64_t)s->n_layer));
    assert_true(got == want);
    /* far below every layer keeping every position */
    assert_true(got < 512ull * 16 * ROW * (uint64_t)s->n_layer);

    /* what a context really allocates */
    nuage_context *c = NULL;
    char err[200];
    assert_int_equal(nuage_context_new(m, &cp, &c, err, sizeof err), 0);
    const nuage__kv *kv = &c->kv;
    assert_int_equal(kv->n_wlayer, s->n_win);
    uint64_t row_bs = (uint64_t)(kv->k_dim + kv->v_dim) * kv->elem * (uint64_t)kv->block_size;
    uint64_t real = (uint64_t)kv->n_blocks * row_bs * (uint64_t)(kv->n_layer - kv->n_wlayer) +
                    (uint64_t)kv->w_n_blocks * row_bs * (uint64_t)kv->n_wlayer;
    assert_true(real == got);
    nuage_context_free(c);

    /* rollback room (kv_window_keep = K) sizes the pool for W + K */
    shape wide = *s;
    wide.W = s->W + 32;
    cp.kv_window_keep = 32;
    assert_true(nuage_context_kv_bytes(m, &cp) == expected_bytes(&wide, 512, 16, 8, 512));
    cp.kv_window_keep = 0;

    /* a context no longer than the window has no window pool */
    cp.n_ctx = s->W;
    cp.kv_blocks = 8;
    assert_true(nuage_context_kv_bytes(m, &cp) == 8ull * 16 * ROW * (uint64_t)s->n_layer);
    /* refused parameters size to 0 */
    cp.kv_block_size = 1 << 20;
    assert_true(nuage_context_kv_bytes(m, &cp) == 0);

    /* the scheduler's defaults: n_ctx * parallel / 4 tokens of global blocks */
    nuage_sched_params sp = nuage_sched_default_params();
    sp.n_ctx = 4096;
    sp.max_running = 8;
    assert_true(nuage_sched_kv_bytes(m, &sp) == want);
    sp.n_ctx = 32768;
    assert_true(nuage_sched_kv_bytes(m, &sp) == expected_bytes(s, 32768 * 8 / 4 / 16, 16, 8, 512));
    nuage_model_free(m);
}

static void test_gptoss_bytes(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    check_context_bytes(&k_gptoss);
}

static void test_gemma3_bytes(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    check_context_bytes(&k_gemma3);
}

/* The deployment path: admitted where only the window-aware size fits. */
static void test_deploy_window_model(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    const char *path = nuage_test_shared_path(k_gemma3.file);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    const uint64_t weights = (uint64_t)sb.st_size;
    const uint64_t window_aware = expected_bytes(&k_gemma3, 4096 * 8 / 4 / 16, 16, 8, 512);
    const uint64_t every_layer = 4096ull * 8 / 4 * ROW * (uint64_t)k_gemma3.n_layer;
    assert_true(window_aware * 2 < every_layer);

    nuage_deploy_config a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "g3");
    snprintf(a.model, sizeof a.model, "%s", path);
    a.kind = NUAGE_DEPLOY_MODEL;
    a.n_ctx = 4096;
    a.parallel = 8;
    a.threads = 1;
    a.kv_block_size = 16;
    a.kv_type = NUAGE_KV_F16;
    char err[600];

    /* a limit between the two sizes: loads, charged the window-aware size */
    nuage_registry_params p = nuage_registry_default_params();
    p.memory_limit = weights + (window_aware + every_layer) / 2;
    nuage_registry *reg = NULL;
    assert_int_equal(nuage_registry_new(&p, &reg), 0);
    int rc = nuage_registry_load(reg, &a, NUAGE_DEPLOY_ORIGIN_API, NULL, err, sizeof err);
    if (rc) print_message("load: %s\n", err);
    assert_int_equal(rc, 0);
    nuage_deployment *d = nuage_registry_acquire(reg, "g3");
    assert_non_null(d);
    assert_true(d->kv_bytes == window_aware);
    assert_true(d->weights_bytes == weights);
    nuage_deployment_release(d);
    nuage_registry_free(reg);

    /* a limit one byte short of weights + window-aware KV: refused */
    p.memory_limit = weights + window_aware - 1;
    reg = NULL;
    assert_int_equal(nuage_registry_new(&p, &reg), 0);
    assert_int_equal(nuage_registry_load(reg, &a, NUAGE_DEPLOY_ORIGIN_API, NULL, err, sizeof err), NUAGE_E_NOMEM);
    assert_non_null(strstr(err, "does not fit in memory"));
    nuage_registry_free(reg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gptoss_bytes),
        cmocka_unit_test(test_gemma3_bytes),
        cmocka_unit_test(test_deploy_window_model),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
