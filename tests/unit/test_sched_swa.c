/*
 * test_sched_swa.c - the scheduler on a model with sliding-window layers:
 * continuous batching, the prefix cache, n > 1 forks and preemption while
 * the engine frees window blocks (src/engine/kv_cache.h,
 * src/runtime/sched_prefix.c).
 *
 * The model is test_models.h's with hp.n_swa = 24 and all layers but one
 * marked as window layers by hand. Every greedy output must equal an
 * independent reference: a single-sequence context created while no layer
 * was marked (so it has no window pool and frees nothing) and decoded with
 * the window on (the attention reads the flags at run time) -- the plain
 * greedy loop over a cache that keeps everything. References are computed
 * while no scheduler runs, because they flip the model's flags.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "test_util.h"
#pragma GCC diagnostic ignored "-Wunused-function" /* the helpers this file does not need */
#include "test_sched_util.h"
#include "engine/model.h"

#define SW_W 24

static void sw_flags(bool on) {
    nuage_model *m = g_model;
    m->hp.n_swa = on ? SW_W : 0;
    for (int il = 0; il < m->hp.n_layer; il++) m->layers[il].swa = on && il != 2;
}

static int sw_setup(void **state) {
    ts_setup(state);
    if (!g_model) return -1;
    sw_flags(true);
    return 0;
}

/* Greedy reference for max_tokens tokens (through end-of-generation, as
 * with ignore_eos), over a cache that frees nothing. */
static void sw_ref_window(const int32_t *prompt, int np, int max_tokens, int32_t *out, bool window) {
    sw_flags(false);
    nuage_context *ctx = ts_ref_ctx(np);
    sw_flags(window);
    nuage_batch *b = nuage_batch_new(np > 64 ? np : 64);
    for (int i = 0; i < np; i++) nuage_batch_add(b, prompt[i], i, 0, i == np - 1);
    assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
    const float *l = nuage_get_logits(ctx, np - 1);
    for (int n = 0; n < max_tokens; n++) {
        out[n] = ts_argmax(l, nuage_model_n_vocab(g_model));
        nuage_batch_clear(b);
        nuage_batch_add(b, out[n], np + n, 0, true);
        assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
        l = nuage_get_logits(ctx, 0);
    }
    nuage_batch_free(b);
    nuage_context_free(ctx);
    sw_flags(true);
}

static void sw_ref(const int32_t *prompt, int np, int max_tokens, int32_t *out) {
    sw_ref_window(prompt, np, max_tokens, out, true);
}

static nuage_sched_request sw_req(const int32_t *prompt, int np, int max_tokens, ts_coll *c) {
    nuage_sched_request r = ts_req(prompt, np, max_tokens, c);
    r.ignore_eos = true;
    return r;
}

static void sw_check_books(nuage_sched *s) {
    nuage_sched_stats st;
    nuage_sched_get_stats(s, &st);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.kv_blocks_free + st.kv_blocks_cached, st.kv_blocks_total);
}

/* Eight requests, three at a time, prompts prefilled in chunks beside
 * decoding streams, generations well past the window. */
static void test_swa_concurrent(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { N = 8, MAXT = 80 };
    static int32_t prompts[N][128], ref[N][MAXT];
    static int np[N];
    static ts_coll c[N];
    for (int k = 0; k < N; k++) {
        np[k] = ts_prompt(k + 3, prompts[k], 128);
        sw_ref(prompts[k], np[k], MAXT, ref[k]);
        ts_coll_init(&c[k]);
    }
    /* the window changes the outputs (else this would not test it) */
    int differ = 0;
    for (int k = 0; k < N; k++) {
        int32_t full[MAXT];
        sw_ref_window(prompts[k], np[k], MAXT, full, false);
        differ += memcmp(full, ref[k], sizeof full) != 0;
    }
    assert_true(differ > 0);
    nuage_sched *s = ts_sched(3, 32, 0, true, 16);
    for (int k = 0; k < N; k++) {
        nuage_sched_request r = sw_req(prompts[k], np[k], MAXT - k, &c[k]);
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    }
    for (int k = 0; k < N; k++) ts_wait(&c[k]);
    for (int k = 0; k < N; k++) ts_assert_tokens(&c[k], 0, ref[k], MAXT - k);
    sw_check_books(s);
    nuage_sched_free(s);
    for (int k = 0; k < N; k++) ts_coll_destroy(&c[k]);
}

/* Multi-turn reuse. A finished request registers its stream's full
 * blocks, and its prompt's full blocks were registered when the prompt was
 * done; each time the window rows of the chain's end are pinned. So:
 *  - b, whose prompt is a's prompt and output plus more, reuses a's whole
 *    stream (the chain end a left);
 *  - c, a's prompt again, reuses the prompt's full blocks;
 *  - d, sharing 96 tokens with b's stream at a point where no window rows
 *    were kept, gets a shorter hit (the longest attachable: a's 64-token
 *    chain end) and recomputes the rest.
 * All equal fresh runs over a cache that frees nothing. */
static void test_swa_prefix_cache(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 40 };
    int32_t p1[128], p2[300], p3[300], ref1[MAXT], ref2[MAXT], ref3[MAXT];
    int n1 = ts_prompt(21, p1, 128);
    assert_true(n1 % 16 != 0 && n1 > 16 && n1 + MAXT - 1 < 96);
    sw_ref(p1, n1, MAXT, ref1);
    memcpy(p2, p1, (size_t)n1 * sizeof *p2);
    memcpy(p2 + n1, ref1, MAXT * sizeof *p2);
    int n2 = n1 + MAXT;
    n2 += ts_prompt(9, p2 + n2, 300 - n2);
    assert_true(n2 > 110);
    sw_ref(p2, n2, MAXT, ref2);
    memcpy(p3, p2, 100 * sizeof *p3);
    int n3 = 100 + ts_prompt(12, p3 + 100, 200);
    sw_ref(p3, n3, MAXT, ref3);
    nuage_sched *s = ts_sched(4, 64, 0, true, 16);
    ts_coll a, b, c, d;
    ts_coll_init(&a);
    ts_coll_init(&b);
    ts_coll_init(&c);
    ts_coll_init(&d);
    nuage_sched_request r = sw_req(p1, n1, MAXT, &a);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&a);
    ts_assert_tokens(&a, 0, ref1, MAXT);
    assert_int_equal(a.usage.cached_tokens, 0);
    /* a's stream: the prompt and all but the last generated token (that
     * one was sampled, never decoded) */
    int a_len = n1 + MAXT - 1;
    r = sw_req(p2, n2, MAXT, &b);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&b);
    ts_assert_tokens(&b, 0, ref2, MAXT);
    assert_int_equal(b.usage.cached_tokens, a_len / 16 * 16);
    assert_true(b.usage.cached_tokens > n1);
    r = sw_req(p1, n1, MAXT, &c);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&c);
    ts_assert_tokens(&c, 0, ref1, MAXT);
    assert_int_equal(c.usage.cached_tokens, n1 / 16 * 16);
    r = sw_req(p3, n3, MAXT, &d);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&d);
    ts_assert_tokens(&d, 0, ref3, MAXT);
    assert_int_equal(d.usage.cached_tokens, a_len / 16 * 16);
    assert_true(d.usage.cached_tokens < 96);
    sw_check_books(s);
    nuage_sched_free(s);
    ts_coll_destroy(&a);
    ts_coll_destroy(&b);
    ts_coll_destroy(&c);
    ts_coll_destroy(&d);
}

/* n = 3 greedy: the fork at the prompt's end finds the window rows; every
 * choice equals the reference. Then the same prompt again (its end was
 * registered, window tail pinned, by the fork) and a resumed-looking
 * longer stream do not break it. */
static void test_swa_n_choices(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 60 };
    int32_t p[160], ref[MAXT];
    int np = ts_prompt(34, p, 128);
    /* a prompt that ends on a block boundary, so the registered chain
     * ends exactly at the prompt's end */
    np = np / 16 * 16 + 1;
    for (int i = ts_prompt(34, p, 128); i < np; i++) p[i] = p[i % 7 + 1];
    sw_ref(p, np, MAXT, ref);
    nuage_sched *s = ts_sched(4, 48, 0, true, 16);
    for (int run = 0; run < 2; run++) {
        ts_coll g;
        ts_coll_init(&g);
        nuage_sched_request r = sw_req(p, np, MAXT, &g);
        r.n_choices = 3;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        ts_wait(&g);
        for (int i = 0; i < 3; i++) ts_assert_tokens(&g, i, ref, MAXT);
        /* the second run reuses the prompt's full blocks, registered (their
         * window tail pinned) at the fork */
        assert_int_equal(g.usage.cached_tokens, run ? np - 1 : 0);
        ts_coll_destroy(&g);
    }
    sw_check_books(s);
    nuage_sched_free(s);
}

/* A pool far too small: preemptions, re-admission through the prefix
 * cache, outputs exact. */
static void test_swa_preemption(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { N = 6, MAXT = 70 };
    static int32_t prompts[N][128], ref[N][MAXT];
    static int np[N];
    static ts_coll c[N];
    for (int k = 0; k < N; k++) {
        np[k] = ts_prompt(40 + k, prompts[k], 128);
        sw_ref(prompts[k], np[k], MAXT, ref[k]);
    }
    for (int cache = 1; cache >= 0; cache--) {
        nuage_sched *s = ts_sched(5, 64, 16, cache, 32);
        for (int k = 0; k < N; k++) {
            ts_coll_init(&c[k]);
            nuage_sched_request r = sw_req(prompts[k], np[k], MAXT, &c[k]);
            if (k == 0) r.n_choices = 2;
            assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        }
        for (int k = 0; k < N; k++) ts_wait(&c[k]);
        nuage_sched_stats st;
        nuage_sched_get_stats(s, &st);
        assert_true(st.preemptions > 0);
        for (int k = 0; k < N; k++) ts_assert_tokens(&c[k], 0, ref[k], MAXT);
        ts_assert_tokens(&c[0], 1, ref[0], MAXT);
        sw_check_books(s);
        nuage_sched_free(s);
        for (int k = 0; k < N; k++) ts_coll_destroy(&c[k]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swa_concurrent),
        cmocka_unit_test(test_swa_prefix_cache),
        cmocka_unit_test(test_swa_n_choices),
        cmocka_unit_test(test_swa_preemption),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, sw_setup, ts_teardown));
}
