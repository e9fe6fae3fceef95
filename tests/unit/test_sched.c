/*
 * test_sched.c - the scheduler (src/runtime/sched.h): continuous batching,
 * n > 1 choices, cancellation, the prefix cache, preemption, and the
 * errors of submit.
 *
 * The reference for every greedy output is an independent single-sequence
 * greedy loop on a plain context (test_sched_util.h); a scheduled request
 * must reproduce it token for token whatever runs beside it, whether its
 * prompt came from the prefix cache and however often it was preempted.
 * Sampled outputs are checked for reproducibility against the same
 * request run alone (choice i of an n-choice request = the one-choice
 * request with seed + i).
 *
 * Model: test_models.h's (stories260K with ../shared, else nuage-fast), 2 compute threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "test_util.h"
#include "test_sched_util.h"
#include "runtime/sched_internal.h"

/* 32 concurrent greedy requests, 8 running at a time, all identical to
 * their references. */
static void test_concurrent_greedy(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { N = 32, MAXT = 40 };
    nuage_sched *s = ts_sched(8, 128, 0, true, 64);
    static int32_t prompts[N][128];
    static int np[N];
    static ts_coll c[N];
    for (int k = 0; k < N; k++) {
        np[k] = ts_prompt(k, prompts[k], 128);
        ts_coll_init(&c[k]);
    }
    for (int k = 0; k < N; k++) {
        nuage_sched_request r = ts_req(prompts[k], np[k], MAXT - (k % 7), &c[k]);
        uint64_t id;
        assert_int_equal(nuage_sched_submit(s, &r, &id), 0);
    }
    for (int k = 0; k < N; k++) ts_wait(&c[k]);
    int32_t ref[MAXT];
    for (int k = 0; k < N; k++) {
        int n = ts_ref_greedy(prompts[k], np[k], MAXT - (k % 7), ref, NULL);
        ts_assert_tokens(&c[k], 0, ref, n);
        assert_int_equal(c[k].n_fin, 1);
        assert_int_equal(c[k].fin[0], n == MAXT - (k % 7) ? NUAGE_FINISH_LENGTH : NUAGE_FINISH_STOP);
        assert_int_equal(c[k].usage.prompt_tokens, np[k]);
        assert_int_equal(c[k].usage.completion_tokens, n);
        assert_int_equal(c[k].events_after_complete, 0);
        assert_true(c[k].usage.ttft_ms >= c[k].usage.queue_ms);
    }
    nuage_sched_stats st;
    nuage_sched_get_stats(s, &st);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.kv_blocks_free + st.kv_blocks_cached, st.kv_blocks_total);
    assert_true(st.steps > 0 && st.steps < (uint64_t)(N * MAXT)); /* batching happened */
    nuage_sched_free(s);
    for (int k = 0; k < N; k++) ts_coll_destroy(&c[k]);
}

/* n = 3 sampled: each choice equals the one-choice request with seed + i,
 * and a second run gives the same; greedy n = 2 gives twice the reference. */
static void test_n_choices(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 30 };
    nuage_sched *s = ts_sched(8, 64, 0, true, 64);
    int32_t prompt[128];
    int np = ts_prompt(3, prompt, 128);
    static ts_coll multi[2], single[3];
    for (int run = 0; run < 2; run++) {
        ts_coll_init(&multi[run]);
        nuage_sched_request r = ts_req(prompt, np, MAXT, &multi[run]);
        r.n_choices = 3;
        r.sampling.temperature = 0.9f;
        r.sampling.seed = 1234;
        r.ignore_eos = true;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    }
    for (int i = 0; i < 3; i++) {
        ts_coll_init(&single[i]);
        nuage_sched_request r = ts_req(prompt, np, MAXT, &single[i]);
        r.sampling.temperature = 0.9f;
        r.sampling.seed = 1234 + (uint64_t)i;
        r.ignore_eos = true;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    }
    for (int run = 0; run < 2; run++) ts_wait(&multi[run]);
    for (int i = 0; i < 3; i++) ts_wait(&single[i]);
    for (int i = 0; i < 3; i++) {
        ts_assert_tokens(&multi[0], i, single[i].tok[0], MAXT);
        ts_assert_tokens(&multi[1], i, single[i].tok[0], MAXT);
        assert_int_equal(multi[0].fin[i], NUAGE_FINISH_LENGTH);
    }
    assert_int_equal(multi[0].n_fin, 3);
    assert_int_equal(multi[0].usage.completion_tokens, 3 * MAXT);
    /* the choices are not all the same (different seeds) */
    assert_true(memcmp(multi[0].tok[0], multi[0].tok[1], MAXT * sizeof(int32_t)) ||
                memcmp(multi[0].tok[0], multi[0].tok[2], MAXT * sizeof(int32_t)));

    ts_coll g;
    ts_coll_init(&g);
    nuage_sched_request r = ts_req(prompt, np, MAXT, &g);
    r.n_choices = 2;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&g);
    int32_t ref[MAXT];
    int n = ts_ref_greedy(prompt, np, MAXT, ref, NULL);
    ts_assert_tokens(&g, 0, ref, n);
    ts_assert_tokens(&g, 1, ref, n);
    nuage_sched_stats st;
    nuage_sched_get_stats(s, &st);
    assert_int_equal(st.kv_blocks_free + st.kv_blocks_cached, st.kv_blocks_total);
    nuage_sched_free(s);
    for (int i = 0; i < 2; i++) ts_coll_destroy(&multi[i]);
    for (int i = 0; i < 3; i++) ts_coll_destroy(&single[i]);
    ts_coll_destroy(&g);
}

/* A long prompt arriving while a stream decodes is prefilled in chunks
 * beside it: the stream gets a token at every step (its tokens are
 * reported in consecutive steps) and is unchanged. */
static void test_no_stall(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 60 };
    nuage_sched *s = ts_sched(4, 24, 0, true, 8);
    int32_t pa[128], pb[480];
    int na = ts_prompt(2, pa, 128), nb = 0;
    while (nb < 300) nb += ts_prompt(nb % 37, pb + nb, 480 - nb);
    ts_coll a, b;
    ts_coll_init(&a);
    ts_coll_init(&b);
    a.steps_of = s;
    nuage_sched_request r = ts_req(pa, na, MAXT, &a);
    r.ignore_eos = true;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait_tokens(&a, 3);
    r = ts_req(pb, nb, 4, &b);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&a);
    ts_wait(&b);
    assert_true(b.usage.ttft_ms > 0);
    assert_int_equal(a.n[0], MAXT);
    /* B's prompt (> 12 steps of chunks) was computed while A ran */
    assert_true(b.complete && a.complete);
    for (int i = 1; i < MAXT; i++) {
        if (a.step_at[i] != a.step_at[i - 1] + 1)
            fprintf(stderr, "token %d reported at step %llu, previous at %llu\n", i,
                    (unsigned long long)a.step_at[i], (unsigned long long)a.step_at[i - 1]);
        assert_int_equal(a.step_at[i], a.step_at[i - 1] + 1);
    }
    nuage_sched_stats st;
    nuage_sched_get_stats(s, &st);
    assert_true(st.steps >= (uint64_t)(nb / 24));
    nuage_sched_free(s);
    ts_coll_destroy(&a);
    ts_coll_destroy(&b);
}

/* Cancel mid-generation: CANCELLED, and every block is back (free or held
 * only by the prefix cache). Cancel a waiting request too, and stop a
 * choice through on_token's return value. */
static void test_cancel(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    nuage_sched *s = ts_sched(1, 64, 0, true, 8);
    nuage_sched_stats st0, st;
    nuage_sched_get_stats(s, &st0);
    int32_t prompt[128];
    int np = ts_prompt(7, prompt, 128);
    ts_gate gate;
    ts_gate_init(&gate);
    ts_coll a, b;
    ts_coll_init(&a);
    ts_coll_init(&b);
    a.gate = &gate;
    a.gate_at = 5;
    nuage_sched_request r = ts_req(prompt, np, TS_NCTX - np, &a);
    r.ignore_eos = true;
    uint64_t ida, idb;
    assert_int_equal(nuage_sched_submit(s, &r, &ida), 0);
    ts_gate_wait_reached(&gate); /* a is running, the scheduler holds in its callback */
    nuage_sched_request rb = ts_req(prompt, np, 10, &b);
    assert_int_equal(nuage_sched_submit(s, &rb, &idb), 0); /* waits: max_running 1 */
    nuage_sched_get_stats(s, &st);
    assert_int_equal(st.running, 1);
    assert_true(st.kv_blocks_free < st.kv_blocks_total);
    nuage_sched_cancel(s, idb);
    nuage_sched_cancel(s, ida);
    nuage_sched_cancel(s, 999999); /* unknown: ignored */
    ts_gate_open(&gate);
    ts_wait(&a);
    ts_wait(&b);
    assert_int_equal(a.fin[0], NUAGE_FINISH_CANCELLED);
    assert_int_equal(b.fin[0], NUAGE_FINISH_CANCELLED);
    assert_int_equal(b.n[0], 0);
    assert_true(a.n[0] >= 5 && a.n[0] <= 6); /* ended within one step */
    nuage_sched_get_stats(s, &st);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.kv_blocks_free + st.kv_blocks_cached, st0.kv_blocks_free);
    assert_true(st.kv_blocks_cached > 0); /* the prompt's full blocks stay cached */
    nuage_sched_cancel(s, ida); /* finished: ignored */

    /* on_token returning false ends the choice with STOP */
    ts_coll c;
    ts_coll_init(&c);
    c.stop_after = 3;
    nuage_sched_request rc = ts_req(prompt, np, 50, &c);
    rc.ignore_eos = true;
    assert_int_equal(nuage_sched_submit(s, &rc, NULL), 0);
    ts_wait(&c);
    assert_int_equal(c.n[0], 3);
    assert_int_equal(c.fin[0], NUAGE_FINISH_STOP);
    nuage_sched_free(s);
    ts_gate_destroy(&gate);
    ts_coll_destroy(&a);
    ts_coll_destroy(&b);
    ts_coll_destroy(&c);
}

/* Prefix cache: a request sharing a long prefix reuses its blocks (same
 * output as the reference), another cache_salt does not, and the cache
 * off reuses nothing. */
static void test_prefix_cache(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 24 };
    int32_t base[256];
    int nb = 0;
    for (int k = 0; k < 4; k++) nb += ts_prompt(10 + k, base + nb, 256 - nb);
    assert_true(nb > 80);
    int32_t p2[300];
    memcpy(p2, base, (size_t)nb * sizeof *p2);
    int n2 = nb + ts_prompt(31, p2 + nb, 300 - nb);
    int32_t ref1[MAXT], ref2[MAXT];
    int nr1 = ts_ref_greedy(base, nb, MAXT, ref1, NULL);
    int nr2 = ts_ref_greedy(p2, n2, MAXT, ref2, NULL);

    for (int on = 1; on >= 0; on--) {
        nuage_sched *s = ts_sched(4, 64, 0, on, 16);
        ts_coll a, b, c, d;
        ts_coll_init(&a);
        ts_coll_init(&b);
        ts_coll_init(&c);
        ts_coll_init(&d);
        nuage_sched_request r = ts_req(base, nb, MAXT, &a);
        r.cache_salt = 7;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        ts_wait(&a);
        ts_assert_tokens(&a, 0, ref1, nr1);
        assert_int_equal(a.usage.cached_tokens, 0);
        /* longer prompt sharing base */
        r = ts_req(p2, n2, MAXT, &b);
        r.cache_salt = 7;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        ts_wait(&b);
        ts_assert_tokens(&b, 0, ref2, nr2);
        if (on) assert_int_equal(b.usage.cached_tokens, nb / 16 * 16);
        else assert_int_equal(b.usage.cached_tokens, 0);
        /* the same prompt again: everything but the last token's block */
        r = ts_req(base, nb, MAXT, &c);
        r.cache_salt = 7;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        ts_wait(&c);
        ts_assert_tokens(&c, 0, ref1, nr1);
        if (on) {
            assert_true(c.usage.cached_tokens > 0);
            assert_true(c.usage.cached_tokens <= nb - 1);
            assert_true(c.usage.cached_tokens >= (nb - 1) / 16 * 16);
        }
        /* another tenant's salt: no reuse */
        r = ts_req(base, nb, MAXT, &d);
        r.cache_salt = 8;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        ts_wait(&d);
        ts_assert_tokens(&d, 0, ref1, nr1);
        assert_int_equal(d.usage.cached_tokens, 0);
        nuage_sched_stats st;
        nuage_sched_get_stats(s, &st);
        if (on) {
            assert_true(st.cached_tokens >= (uint64_t)b.usage.cached_tokens + (uint64_t)c.usage.cached_tokens);
            assert_true(st.kv_blocks_cached > 0);
        } else {
            assert_int_equal(st.kv_blocks_cached, 0);
            assert_int_equal(st.kv_blocks_free, st.kv_blocks_total);
        }
        nuage_sched_free(s);
        ts_coll_destroy(&a);
        ts_coll_destroy(&b);
        ts_coll_destroy(&c);
        ts_coll_destroy(&d);
    }
}

/* A pool far too small for the load: preemptions happen, outputs are
 * still exact (greedy against the reference; a sampled n = 2 request
 * against the same request run alone with plenty of KV). */
static void test_preemption(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { N = 10, MAXT = 70 };
    static int32_t prompts[N][128];
    static int np[N];
    static ts_coll c[N];
    for (int k = 0; k < N; k++) np[k] = ts_prompt(40 + k, prompts[k], 128);
    /* the sampled request alone, big pool */
    ts_coll alone;
    ts_coll_init(&alone);
    {
        nuage_sched *s = ts_sched(4, 64, 0, true, 16);
        nuage_sched_request r = ts_req(prompts[0], np[0], MAXT, &alone);
        r.n_choices = 2;
        r.sampling.temperature = 1.0f;
        r.sampling.top_k = 40;
        r.sampling.seed = 99;
        r.ignore_eos = true;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        ts_wait(&alone);
        nuage_sched_stats st;
        nuage_sched_get_stats(s, &st);
        assert_int_equal(st.preemptions, 0);
        nuage_sched_free(s);
    }
    for (int cache = 1; cache >= 0; cache--) {
        /* 16 blocks of 16 tokens: each request needs 4-8 blocks */
        nuage_sched *s = ts_sched(6, 64, 16, cache, 32);
        for (int k = 0; k < N; k++) {
            ts_coll_init(&c[k]);
            nuage_sched_request r = ts_req(prompts[k], np[k], MAXT, &c[k]);
            r.ignore_eos = true;
            if (k == 0) {
                r.n_choices = 2;
                r.sampling.temperature = 1.0f;
                r.sampling.top_k = 40;
                r.sampling.seed = 99;
            }
            assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        }
        for (int k = 0; k < N; k++) ts_wait(&c[k]);
        nuage_sched_stats st;
        nuage_sched_get_stats(s, &st);
        fprintf(stderr, "preemption test (cache %d): %llu preemptions, %llu steps\n", cache,
                (unsigned long long)st.preemptions, (unsigned long long)st.steps);
        assert_true(st.preemptions > 0);
        assert_int_equal(st.kv_blocks_free + st.kv_blocks_cached, st.kv_blocks_total);
        ts_assert_tokens(&c[0], 0, alone.tok[0], MAXT);
        ts_assert_tokens(&c[0], 1, alone.tok[1], MAXT);
        int32_t ref[MAXT];
        for (int k = 1; k < N; k++) {
            /* ignore_eos: the reference continues through EOS too */
            nuage_context *ctx = ts_ref_ctx(np[k]);
            nuage_batch *b = nuage_batch_new(128);
            for (int i = 0; i < np[k]; i++) nuage_batch_add(b, prompts[k][i], i, 0, i == np[k] - 1);
            assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
            const float *l = nuage_get_logits(ctx, np[k] - 1);
            for (int n = 0; n < MAXT; n++) {
                ref[n] = ts_argmax(l, nuage_model_n_vocab(g_model));
                nuage_batch_clear(b);
                nuage_batch_add(b, ref[n], np[k] + n, 0, true);
                assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
                l = nuage_get_logits(ctx, 0);
            }
            nuage_batch_free(b);
            nuage_context_free(ctx);
            ts_assert_tokens(&c[k], 0, ref, MAXT);
            assert_int_equal(c[k].fin[0], NUAGE_FINISH_LENGTH);
        }
        nuage_sched_free(s);
        for (int k = 0; k < N; k++) ts_coll_destroy(&c[k]);
    }
    ts_coll_destroy(&alone);
}

/* A request longer than the whole pool ends cleanly instead of looping. */
static void test_pool_too_small(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    nuage_sched *s = ts_sched(2, 64, 4, true, 8); /* 64 tokens of KV */
    int32_t prompt[128];
    int np = ts_prompt(0, prompt, 128);
    assert_true(np < 60);
    ts_coll a, b;
    ts_coll_init(&a);
    ts_coll_init(&b);
    nuage_sched_request r = ts_req(prompt, np, 200, &a);
    r.ignore_eos = true;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&a);
    assert_int_equal(a.fin[0], NUAGE_FINISH_LENGTH);
    assert_int_equal(a.n[0], 64 - np + 1); /* the last sample needs no KV */
    int32_t big[200];
    for (int i = 0; i < 100; i++) big[i] = prompt[i % np];
    r = ts_req(big, 100, 5, &b);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&b);
    assert_int_equal(b.fin[0], NUAGE_FINISH_ERROR);
    assert_true(b.usage.error[0] != 0);
    nuage_sched_stats st;
    nuage_sched_get_stats(s, &st);
    assert_int_equal(st.kv_blocks_free + st.kv_blocks_cached, st.kv_blocks_total);
    nuage_sched_free(s);
    ts_coll_destroy(&a);
    ts_coll_destroy(&b);
}

/* Errors of submit: no callback is ever called for them. */
static void test_submit_errors(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    nuage_sched *s = ts_sched(1, 64, 0, true, 2);
    int32_t prompt[128];
    int np = ts_prompt(1, prompt, 128);
    ts_coll bad;
    ts_coll_init(&bad);
    nuage_sched_request r = ts_req(prompt, np, TS_NCTX - np + 1, &bad);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_CTX);
    r = ts_req(prompt, np, 10, &bad);
    int32_t saved = prompt[1];
    prompt[1] = nuage_model_n_vocab(g_model);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_RANGE);
    prompt[1] = -1;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_RANGE);
    prompt[1] = saved;
    r.max_tokens = 0;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_INVAL);
    r.max_tokens = 5;
    r.n_prompt = 0;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_INVAL);
    r.n_prompt = np;
    r.top_logprobs = 21;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_INVAL);
    r.top_logprobs = -1;
    r.n_choices = 2; /* more sequences than max_running */
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_INVAL);
    r.n_choices = 1;
    r.sampling.top_p = 2.0f;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_INVAL);
    assert_int_equal(bad.n_fin + bad.n[0] + (int)bad.complete, 0);

    /* queue full: one request running (held in its callback), two waiting */
    ts_gate gate;
    ts_gate_init(&gate);
    ts_coll a, q1, q2, q3;
    ts_coll_init(&a);
    ts_coll_init(&q1);
    ts_coll_init(&q2);
    ts_coll_init(&q3);
    a.gate = &gate;
    a.gate_at = 1;
    r = ts_req(prompt, np, 20, &a);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_gate_wait_reached(&gate);
    r = ts_req(prompt, np, 3, &q1);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    r = ts_req(prompt, np, 3, &q2);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    r = ts_req(prompt, np, 3, &q3);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_BUSY);
    nuage_sched_stats st;
    nuage_sched_get_stats(s, &st);
    assert_int_equal(st.queued, 2);
    ts_gate_open(&gate);
    ts_wait(&a);
    ts_wait(&q1);
    ts_wait(&q2);
    assert_false(q3.complete);
    assert_int_equal(q3.n_fin, 0);
    /* room again */
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&q3);
    nuage_sched_free(s);
    ts_gate_destroy(&gate);
    ts_coll_destroy(&bad);
    ts_coll_destroy(&a);
    ts_coll_destroy(&q1);
    ts_coll_destroy(&q2);
    ts_coll_destroy(&q3);
}

/* Freeing a scheduler with work in flight cancels it (callbacks run). */
static void test_free_busy(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    nuage_sched *s = ts_sched(2, 64, 0, true, 16);
    int32_t prompt[128];
    int np = ts_prompt(2, prompt, 128);
    static ts_coll c[6];
    for (int k = 0; k < 6; k++) {
        ts_coll_init(&c[k]);
        nuage_sched_request r = ts_req(prompt, np, TS_NCTX - np, &c[k]);
        r.ignore_eos = true;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    }
    ts_wait_tokens(&c[0], 2);
    nuage_sched_free(s);
    for (int k = 0; k < 6; k++) {
        assert_true(c[k].complete);
        assert_int_equal(c[k].fin[0], NUAGE_FINISH_CANCELLED);
        ts_coll_destroy(&c[k]);
    }
}

/* The prefix cache module on its own: chain lookup, salt scoping,
 * reference counting, leaf-first LRU eviction. */
static void test_prefix_module(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = TS_THREADS;
    cp.n_ctx = 128;
    cp.n_seq_max = 2;
    cp.kv_blocks = 8;
    cp.kv_block_size = 16;
    nuage_context *ctx;
    assert_int_equal(nuage_context_new(g_model, &cp, &ctx, NULL, 0), 0);
    nuage__sprefix *pc = nuage__prefix_new(ctx);
    assert_non_null(pc);
    int32_t tok[48];
    for (int i = 0; i < 48; i++) tok[i] = 5 + (i * 37) % 400;
    nuage_batch *b = nuage_batch_new(48);
    for (int i = 0; i < 48; i++) nuage_batch_add(b, tok[i], i, 0, false);
    assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
    const int32_t *blocks;
    assert_int_equal(nuage_kv_seq_blocks(ctx, 0, &blocks), 3);
    int32_t seqb[3] = {blocks[0], blocks[1], blocks[2]};
    nuage__prefix_register(pc, 1, tok, 3, seqb);
    nuage__prefix_register(pc, 1, tok, 3, seqb); /* idempotent */
    assert_int_equal(nuage__prefix_size(pc), 3);
    for (int i = 0; i < 3; i++) assert_int_equal(nuage_kv_block_refcount(ctx, seqb[i]), 2);
    int32_t got[3];
    assert_int_equal(nuage__prefix_lookup(pc, 1, tok, 3, got), 3);
    assert_memory_equal(got, seqb, sizeof got);
    assert_int_equal(nuage__prefix_lookup(pc, 1, tok, 2, got), 2);
    assert_int_equal(nuage__prefix_lookup(pc, 2, tok, 3, got), 0); /* other salt */
    int32_t alt[48];
    memcpy(alt, tok, sizeof alt);
    alt[20]++;
    assert_int_equal(nuage__prefix_lookup(pc, 1, alt, 3, got), 1); /* differs in block 1 */
    alt[20]--;
    alt[0]++;
    assert_int_equal(nuage__prefix_lookup(pc, 1, alt, 3, got), 0); /* block 0 differs: nothing after */
    assert_int_equal(nuage__prefix_evictable(pc), 0); /* the sequence still holds them */
    nuage_kv_seq_truncate(ctx, 0, 0);
    assert_int_equal(nuage__prefix_evictable(pc), 3);
    assert_int_equal(nuage_kv_blocks_free(ctx), 5);
    /* re-attach: the blocks are shared again, not evictable */
    assert_int_equal(nuage__prefix_lookup(pc, 1, tok, 2, got), 2);
    assert_int_equal(nuage_kv_seq_attach(ctx, 1, got, 2), 0);
    assert_int_equal(nuage__prefix_evictable(pc), 1);
    nuage_kv_seq_truncate(ctx, 1, 0);
    /* eviction takes the leaf first, so the chain stays reachable */
    assert_int_equal(nuage__prefix_evict(pc, 1), 1);
    assert_int_equal(nuage__prefix_lookup(pc, 1, tok, 3, got), 2);
    assert_int_equal(nuage__prefix_evict(pc, 10), 2);
    assert_int_equal(nuage__prefix_size(pc), 0);
    assert_int_equal(nuage_kv_blocks_free(ctx), 8);
    /* freeing the cache drops its references */
    for (int i = 0; i < 48; i++) b->seq[i] = 0;
    assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
    assert_int_equal(nuage_kv_seq_blocks(ctx, 0, &blocks), 3);
    nuage__prefix_register(pc, 1, tok, 3, blocks);
    nuage_kv_seq_truncate(ctx, 0, 0);
    assert_int_equal(nuage_kv_blocks_free(ctx), 5);
    nuage__prefix_free(pc);
    assert_int_equal(nuage_kv_blocks_free(ctx), 8);
    nuage_batch_free(b);
    nuage_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_greedy),
        cmocka_unit_test(test_n_choices),
        cmocka_unit_test(test_no_stall),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_prefix_cache),
        cmocka_unit_test(test_preemption),
        cmocka_unit_test(test_pool_too_small),
        cmocka_unit_test(test_submit_errors),
        cmocka_unit_test(test_free_busy),
        cmocka_unit_test(test_prefix_module),
    };
    int rc = cmocka_run_group_tests(tests, ts_setup, ts_teardown);
    return nuage_test_exit(rc);
}
