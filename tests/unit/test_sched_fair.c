/*
 * test_sched_fair.c - the scheduler's fair queuing by tenant and priority
 * (issue 6), embeddings, logprobs and drain.
 *
 * Queue states are made deterministic with a gate: the first request's
 * on_token holds the scheduler thread until the test has queued the rest,
 * so every later request is waiting when admission decisions are made.
 * Embeddings and log-probabilities are checked against values computed
 * here from a plain context (mean of final hidden states, L2-normalised;
 * log-softmax in double of reference logits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "test_util.h"
#include "test_sched_util.h"

/* One tenant with 64 queued requests cannot make another tenant's single
 * request wait: it starts among the very first (FIFO would start it
 * last). */
static void test_fair_flood(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { NA = 64 };
    nuage_sched *s = ts_sched(4, 64, 0, true, 128);
    static ts_coll a[NA];
    ts_coll b;
    int rank = 0;
    ts_gate gate;
    ts_gate_init(&gate);
    int32_t prompt[128];
    int np = ts_prompt(5, prompt, 128);
    for (int k = 0; k < NA; k++) {
        ts_coll_init(&a[k]);
        a[k].rank_counter = &rank;
    }
    ts_coll_init(&b);
    b.rank_counter = &rank;
    a[0].gate = &gate;
    a[0].gate_at = 1;
    for (int k = 0; k < NA; k++) {
        nuage_sched_request r = ts_req(prompt, np, 8, &a[k]);
        r.tenant = 1;
        r.ignore_eos = true;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        if (k == 0) ts_gate_wait_reached(&gate);
    }
    nuage_sched_request r = ts_req(prompt, np, 8, &b);
    r.tenant = 2;
    r.ignore_eos = true;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_gate_open(&gate);
    ts_wait(&b);
    for (int k = 0; k < NA; k++) ts_wait(&a[k]);
    fprintf(stderr, "fair flood: tenant 2's request started %d-th of %d\n", b.first_rank + 1, NA + 1);
    assert_true(b.first_rank >= 1 && b.first_rank <= 3);
    assert_int_equal(b.n[0], 8);
    nuage_sched_free(s);
    for (int k = 0; k < NA; k++) ts_coll_destroy(&a[k]);
    ts_coll_destroy(&b);
    ts_gate_destroy(&gate);
}

/* Weights: tenant 1 (weight 3) and tenant 2 (weight 1) both flood; slots
 * are handed out about 3:1 while both wait. */
static void test_fair_weights(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { NT = 24 };
    nuage_sched *s = ts_sched(2, 64, 0, true, 128);
    static ts_coll c[2][NT];
    ts_coll g;
    int rank = 0;
    ts_gate gate;
    ts_gate_init(&gate);
    int32_t prompt[128];
    int np = ts_prompt(6, prompt, 128);
    ts_coll_init(&g);
    g.gate = &gate;
    g.gate_at = 1;
    nuage_sched_request r = ts_req(prompt, np, 4, &g);
    r.tenant = 9;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_gate_wait_reached(&gate);
    for (int k = 0; k < NT; k++)
        for (int t = 0; t < 2; t++) {
            ts_coll_init(&c[t][k]);
            c[t][k].rank_counter = &rank;
            r = ts_req(prompt, np, 6, &c[t][k]);
            r.tenant = 1 + t;
            r.weight = t == 0 ? 3.0f : 1.0f;
            r.ignore_eos = true;
            assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        }
    ts_gate_open(&gate);
    for (int k = 0; k < NT; k++)
        for (int t = 0; t < 2; t++) ts_wait(&c[t][k]);
    ts_wait(&g);
    /* among the first 16 requests to start, count tenant 1's */
    int n1 = 0;
    for (int k = 0; k < NT; k++)
        if (c[0][k].first_rank < 16) n1++;
    fprintf(stderr, "fair weights 3:1: tenant 1 got %d of the first 16 starts\n", n1);
    assert_true(n1 >= 10 && n1 <= 14);
    nuage_sched_free(s);
    for (int k = 0; k < NT; k++)
        for (int t = 0; t < 2; t++) ts_coll_destroy(&c[t][k]);
    ts_coll_destroy(&g);
    ts_gate_destroy(&gate);
}

/* Batch priority only runs when no interactive request waits. */
static void test_priority(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    nuage_sched *s = ts_sched(1, 64, 0, true, 16);
    int rank = 0;
    ts_gate gate;
    ts_gate_init(&gate);
    int32_t prompt[128];
    int np = ts_prompt(8, prompt, 128);
    ts_coll g, x, y1, y2;
    ts_coll_init(&g);
    ts_coll_init(&x);
    ts_coll_init(&y1);
    ts_coll_init(&y2);
    x.rank_counter = y1.rank_counter = y2.rank_counter = &rank;
    g.gate = &gate;
    g.gate_at = 1;
    nuage_sched_request r = ts_req(prompt, np, 3, &g);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_gate_wait_reached(&gate);
    r = ts_req(prompt, np, 3, &x);
    r.priority = 1;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    r = ts_req(prompt, np, 3, &y1);
    r.tenant = 5;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    r = ts_req(prompt, np, 3, &y2);
    r.tenant = 6;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    r.priority = 2;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_INVAL);
    ts_gate_open(&gate);
    ts_wait(&x);
    ts_wait(&y1);
    ts_wait(&y2);
    ts_wait(&g);
    assert_true(x.first_rank == 2);
    assert_true(y1.first_rank < 2 && y2.first_rank < 2);
    nuage_sched_free(s);
    ts_gate_destroy(&gate);
    ts_coll_destroy(&g);
    ts_coll_destroy(&x);
    ts_coll_destroy(&y1);
    ts_coll_destroy(&y2);
}

/* Reference embedding: mean of the final hidden states, L2-normalised. */
static void ref_embedding(const int32_t *p, int np, double *out) {
    nuage_context *ctx = ts_ref_ctx(np);
    nuage_batch *b = nuage_batch_new(np);
    for (int i = 0; i < np; i++) {
        nuage_batch_add(b, p[i], i, 0, false);
        b->logits[i] = NUAGE_OUT_EMBD;
    }
    assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
    int E = nuage_model_n_embd(g_model);
    for (int k = 0; k < E; k++) out[k] = 0;
    for (int i = 0; i < np; i++) {
        const float *h = nuage_get_embedding(ctx, i);
        assert_non_null(h);
        for (int k = 0; k < E; k++) out[k] += h[k];
    }
    double n2 = 0;
    for (int k = 0; k < E; k++) n2 += out[k] * out[k];
    for (int k = 0; k < E; k++) out[k] /= sqrt(n2);
    nuage_batch_free(b);
    nuage_context_free(ctx);
}

static void test_embedding(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    /* batch of 16 tokens: long prompts are pooled over several chunks */
    nuage_sched *s = ts_sched(4, 16, 0, true, 16);
    int32_t p1[300], p2[128];
    int n1 = 0;
    for (int k = 0; k < 3; k++) n1 += ts_prompt(20 + k, p1 + n1, 300 - n1);
    int n2 = ts_prompt(1, p2, 128);
    ts_coll e1, e1b, e2, gen;
    ts_coll_init(&e1);
    ts_coll_init(&e1b);
    ts_coll_init(&e2);
    ts_coll_init(&gen);
    nuage_sched_request r = ts_req(p2, n2, 20, &gen); /* generation alongside */
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    r = ts_req(p1, n1, 0, &e1);
    r.embedding = true;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    r.cb.ud = &e1b;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    r = ts_req(p2, n2, 0, &e2);
    r.embedding = true;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&e1);
    ts_wait(&e1b);
    ts_wait(&e2);
    ts_wait(&gen);
    const int E = nuage_model_n_embd(g_model);
    assert_int_equal(e1.n_embd, E);
    assert_int_equal(e1.n_embd_calls, 1);
    assert_int_equal(e1.fin[0], NUAGE_FINISH_STOP);
    assert_int_equal(e1.n[0], 0);
    assert_int_equal(e1.usage.prompt_tokens, n1);
    double norm = 0;
    for (int k = 0; k < E; k++) norm += (double)e1.embd[k] * e1.embd[k];
    assert_true(fabs(norm - 1.0) < 1e-5);
    assert_memory_equal(e1.embd, e1b.embd, (size_t)E * sizeof(float));
    double ref[1024];
    ref_embedding(p1, n1, ref);
    for (int k = 0; k < E; k++) assert_true(fabs(e1.embd[k] - ref[k]) < 1e-5);
    ref_embedding(p2, n2, ref);
    double diff = 0;
    for (int k = 0; k < E; k++) {
        assert_true(fabs(e2.embd[k] - ref[k]) < 1e-5);
        diff += fabs(e2.embd[k] - e1.embd[k]);
    }
    assert_true(diff > 1e-3);
    int32_t refg[20];
    int ng = ts_ref_greedy(p2, n2, 20, refg, NULL);
    ts_assert_tokens(&gen, 0, refg, ng);
    nuage_sched_stats st;
    nuage_sched_get_stats(s, &st);
    assert_int_equal(st.kv_blocks_free + st.kv_blocks_cached, st.kv_blocks_total);
    nuage_sched_free(s);
    ts_coll_destroy(&e1);
    ts_coll_destroy(&e1b);
    ts_coll_destroy(&e2);
    ts_coll_destroy(&gen);
}

/* Logprobs of generated tokens (and top-k) and of prompt tokens, against
 * log-softmax of reference logits. */
static void test_logprobs(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 16 };
    nuage_sched *s = ts_sched(4, 16, 0, true, 16); /* prompt logprobs over several chunks */
    int32_t p[300];
    int np = 0;
    for (int k = 0; k < 2; k++) np += ts_prompt(12 + k, p + np, 300 - np);
    assert_true(np > 32);
    ts_coll c;
    ts_coll_init(&c);
    nuage_sched_request r = ts_req(p, np, MAXT, &c);
    r.top_logprobs = 5;
    r.prompt_logprobs = true;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&c);
    int32_t ref[MAXT];
    float reflp[MAXT];
    int n = ts_ref_greedy(p, np, MAXT, ref, reflp);
    ts_assert_tokens(&c, 0, ref, n);
    assert_int_equal(c.n_top_seen, 5);
    for (int i = 0; i < n; i++) {
        assert_true(fabs(c.lp[0][i] - reflp[i]) < 1e-4);
        assert_int_equal(c.top0[i], ref[i]); /* greedy picks the most likely */
        assert_true(fabs(c.top0_lp[i] - c.lp[0][i]) < 1e-6);
    }
    /* prompt token i's logprob comes from the logits at i - 1 */
    assert_int_equal(c.plp_count, np - 1);
    assert_int_equal(c.plp_bad_order, 0);
    nuage_context *ctx = ts_ref_ctx(np);
    nuage_batch *b = nuage_batch_new(np);
    for (int i = 0; i < np; i++) nuage_batch_add(b, p[i], i, 0, true);
    assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
    for (int i = 1; i < np; i++) {
        double want = ts_logprob(nuage_get_logits(ctx, i - 1), nuage_model_n_vocab(g_model), p[i]);
        assert_true(fabs(c.plp[i] - want) < 1e-4);
    }
    nuage_batch_free(b);
    nuage_context_free(ctx);
    /* no logprobs asked: n_top 0 */
    ts_coll d;
    ts_coll_init(&d);
    r = ts_req(p, np, 3, &d);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&d);
    assert_int_equal(d.n_top_seen, 0);
    assert_int_equal(d.plp_count, 0);
    nuage_sched_free(s);
    ts_coll_destroy(&c);
    ts_coll_destroy(&d);
}

static void test_drain(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    int32_t prompt[128];
    int np = ts_prompt(9, prompt, 128);
    /* everything finishes before the deadline */
    nuage_sched *s = ts_sched(4, 64, 0, true, 16);
    ts_coll c[4];
    for (int k = 0; k < 3; k++) {
        ts_coll_init(&c[k]);
        nuage_sched_request r = ts_req(prompt, np, 10, &c[k]);
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    }
    assert_int_equal(nuage_sched_drain(s, 60000), 0);
    for (int k = 0; k < 3; k++) {
        assert_true(c[k].complete);
        assert_true(c[k].fin[0] == NUAGE_FINISH_LENGTH || c[k].fin[0] == NUAGE_FINISH_STOP);
    }
    ts_coll_init(&c[3]);
    nuage_sched_request r = ts_req(prompt, np, 10, &c[3]);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_BUSY);
    nuage_sched_free(s);
    for (int k = 0; k < 4; k++) ts_coll_destroy(&c[k]);

    /* long work, no time: the rest is cancelled and counted */
    s = ts_sched(2, 64, 0, true, 16);
    for (int k = 0; k < 4; k++) {
        ts_coll_init(&c[k]);
        r = ts_req(prompt, np, TS_NCTX - np, &c[k]);
        r.ignore_eos = true;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    }
    ts_wait_tokens(&c[0], 2);
    int n = nuage_sched_drain(s, 0);
    int n_cancelled = 0;
    for (int k = 0; k < 4; k++) {
        assert_true(c[k].complete);
        n_cancelled += c[k].fin[0] == NUAGE_FINISH_CANCELLED;
    }
    assert_true(n >= 1);
    assert_int_equal(n, n_cancelled);
    nuage_sched_stats st;
    nuage_sched_get_stats(s, &st);
    assert_int_equal(st.running + st.queued, 0);
    assert_int_equal(st.kv_blocks_free + st.kv_blocks_cached, st.kv_blocks_total);
    nuage_sched_free(s);
    for (int k = 0; k < 4; k++) ts_coll_destroy(&c[k]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fair_flood),
        cmocka_unit_test(test_fair_weights),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_drain),
    };
    int rc = cmocka_run_group_tests(tests, ts_setup, ts_teardown);
    return nuage_test_exit(rc);
}
