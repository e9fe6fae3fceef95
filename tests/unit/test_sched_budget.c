/*
 * test_sched_budget.c - the scheduler's thinking budget (reasoning_effort)
 * and its treatment of batch work (priority 1: max_batch_running, batch
 * requests giving way to interactive ones).
 *
 * stories260K has no <think> tokens, so ordinary vocabulary ids stand in
 * for them. The reference for each case is the independent greedy loop of
 * test_sched_util.h: the open marker is chosen as a token the model
 * generates by itself (first at position k of its greedy output), the
 * close markers as tokens it never generates for that prompt. With budget
 * B the output must equal the reference up to and including position
 * k + B, then carry the forced close tokens exactly there, then continue
 * as the greedy reference of (prompt + everything so far) -- computed
 * from scratch on a plain context.
 *
 * Batch work: with max_batch_running 1, two batch requests never overlap
 * in time (step counters of their first and last tokens); an interactive
 * request arriving while batch requests hold every sequence starts at
 * once (it finishes before them), and the preempted batch requests still
 * produce exactly their greedy references.
 *
 * Model: test_models.h's (stories260K with ../shared, else nuage-fast), 2 compute threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_util.h"
#include "test_sched_util.h"

static bool tb_has(const int32_t *a, int n, int32_t t) {
    for (int i = 0; i < n; i++)
        if (a[i] == t) return true;
    return false;
}

/* n_want token ids absent from a[0..n) and b[0..nb), not end-of-generation
 * and not `not`. */
static void tb_unused(const int32_t *a, int n, const int32_t *b, int nb, int32_t not, int32_t *out,
                      int n_want) {
    const nuage_vocab *voc = nuage_model_vocab(g_model);
    int nv = nuage_model_n_vocab(g_model);
    int k = 0;
    for (int32_t t = 10; t < nv && k < n_want; t++) {
        if (t == not || tb_has(a, n, t) || tb_has(b, nb, t) || nuage_vocab_is_eog(voc, t)) continue;
        out[k++] = t;
    }
    assert_int_equal(k, n_want);
}

static nuage_sched *tb_sched(int max_running, int max_batch_running) {
    nuage_sched_params p = nuage_sched_default_params();
    p.n_threads = TS_THREADS;
    p.n_ctx = TS_NCTX;
    p.max_running = max_running;
    p.max_batch_tokens = 128;
    p.max_batch_running = max_batch_running;
    nuage_sched *s = NULL;
    char err[200];
    assert_int_equal(nuage_sched_new(g_model, &p, &s, err, sizeof err), 0);
    return s;
}

/* Run one greedy request with the given thinking setup; c collects. */
static void tb_run(nuage_sched *s, const int32_t *prompt, int np, int max_tokens, int budget,
                   int32_t start, const int32_t *end, int n_end, ts_coll *c) {
    ts_coll_init(c);
    nuage_sched_request r = ts_req(prompt, np, max_tokens, c);
    r.top_logprobs = 1;
    r.think_budget = budget;
    r.think_start = start;
    for (int i = 0; i < n_end; i++) r.think_end[i] = end[i];
    r.n_think_end = n_end;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(c);
}

/* Greedy reference of prompt[0..np) + extra[0..ne). */
static int tb_ref_after(const int32_t *prompt, int np, const int32_t *extra, int ne, int max_tokens,
                        int32_t *out) {
    int32_t *p = malloc((size_t)(np + ne) * sizeof *p);
    assert_non_null(p);
    memcpy(p, prompt, (size_t)np * sizeof *p);
    memcpy(p + np, extra, (size_t)ne * sizeof *p);
    int n = ts_ref_greedy(p, np + ne, max_tokens, out, NULL);
    free(p);
    return n;
}

/* The budget runs out inside a block the model opened itself: the close
 * tokens come exactly after B reasoning tokens, then the model goes on
 * from them. */
static void test_budget_forces_close(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 60, B = 5 };
    int32_t prompt[128], ref[MAXT];
    int np = ts_prompt(2, prompt, 128);
    int nref = ts_ref_greedy(prompt, np, MAXT, ref, NULL);
    /* open marker: a token first generated at k >= 2, absent from the prompt
     * and from the B tokens after it */
    int k = -1;
    for (int i = 2; i + B + 1 < nref && k < 0; i++)
        if (!tb_has(ref, i, ref[i]) && !tb_has(prompt, np, ref[i]) && !tb_has(ref + i + 1, B, ref[i]))
            k = i;
    assert_true(k >= 0);
    int32_t start = ref[k], end[2];
    tb_unused(ref, nref, prompt, np, start, end, 2);

    nuage_sched *s = tb_sched(4, 0);
    ts_coll c;
    tb_run(s, prompt, np, MAXT, B, start, end, 2, &c);
    int at = k + 1 + B; /* index of the first forced token */
    assert_true(c.n[0] > at + 1);
    for (int i = 0; i < at; i++) assert_int_equal(c.tok[0][i], ref[i]);
    assert_int_equal(c.tok[0][at], end[0]);
    assert_int_equal(c.tok[0][at + 1], end[1]);
    /* the forced tokens carry the model's log-probabilities, which for a
     * token the model would not pick are below the greedy one's */
    assert_true(c.lp[0][at] < c.top0_lp[at] && c.lp[0][at] <= 0.0f);
    assert_int_equal(c.top0[at], ref[at]);
    /* after the forced close: greedy continuation of everything so far,
     * compared up to the model's next use of the open marker */
    int32_t cont[MAXT];
    int ncont = tb_ref_after(prompt, np, c.tok[0], at + 2, MAXT - at - 2, cont);
    int cmp = 0;
    while (cmp < ncont && cont[cmp] != start) cmp++;
    if (cmp == ncont) assert_int_equal(c.n[0], at + 2 + ncont);
    for (int i = 0; i < cmp; i++) assert_int_equal(c.tok[0][at + 2 + i], cont[i]);
    assert_int_equal(c.usage.completion_tokens, c.n[0]);
    ts_coll_destroy(&c);
    nuage_sched_free(s);
}

/* The prompt opens the block (as reasoning templates do): counting starts
 * with the first generated token; budget 0 closes it at once. */
static void test_budget_prompt_opened(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 40, B = 4 };
    int32_t base[128], ref[MAXT];
    int nb = ts_prompt(5, base, 128);
    int32_t marks[3];
    int nref0 = ts_ref_greedy(base, nb, MAXT, ref, NULL);
    tb_unused(ref, nref0, base, nb, -1, marks, 3);
    int32_t start = marks[0], end[2] = {marks[1], marks[2]};
    int32_t prompt[130];
    memcpy(prompt, base, (size_t)nb * sizeof *prompt);
    prompt[nb] = start;
    int np = nb + 1;
    int nref = ts_ref_greedy(prompt, np, MAXT, ref, NULL);
    nuage_sched *s = tb_sched(4, 0);

    for (int budget = B; budget >= 0; budget -= B) {
        if (budget > 0) { /* the reference's first `budget` tokens must be plain reasoning */
            assert_true(nref > budget);
            for (int i = 0; i < budget; i++) assert_true(ref[i] != start && ref[i] != end[0]);
        }
        ts_coll c;
        tb_run(s, prompt, np, MAXT, budget, start, end, 2, &c);
        assert_true(c.n[0] >= budget + 2);
        for (int i = 0; i < budget; i++) assert_int_equal(c.tok[0][i], ref[i]);
        assert_int_equal(c.tok[0][budget], end[0]);
        assert_int_equal(c.tok[0][budget + 1], end[1]);
        int32_t cont[MAXT];
        int ncont = tb_ref_after(prompt, np, c.tok[0], budget + 2, MAXT - budget - 2, cont);
        int cmp = 0;
        while (cmp < ncont && cont[cmp] != start) cmp++;
        for (int i = 0; i < cmp; i++) assert_int_equal(c.tok[0][budget + 2 + i], cont[i]);
        ts_coll_destroy(&c);
    }
    /* a closed block in the prompt: nothing is forced */
    int32_t closed[132];
    memcpy(closed, prompt, (size_t)np * sizeof *closed);
    closed[np] = end[0];
    int32_t ref2[MAXT];
    int nref2 = ts_ref_greedy(closed, np + 1, MAXT, ref2, NULL);
    bool reopens = tb_has(ref2, nref2, start);
    ts_coll c;
    tb_run(s, closed, np + 1, MAXT, 0, start, end, 2, &c);
    if (!reopens) ts_assert_tokens(&c, 0, ref2, nref2);
    else assert_int_equal(c.tok[0][0], ref2[0]);
    ts_coll_destroy(&c);
    nuage_sched_free(s);
}

/* The model closes the block itself within the budget: nothing is forced
 * and the output is the plain greedy one; the forced tokens also respect
 * max_tokens (a request ending in the middle of them). */
static void test_budget_natural_close_and_length(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 50, B = 6 };
    int32_t prompt[128], ref[MAXT];
    int np = ts_prompt(7, prompt, 128);
    int nref = ts_ref_greedy(prompt, np, MAXT, ref, NULL);
    /* open at k, close at k + 3 (both first occurrences, close not in between) */
    int k = -1;
    for (int i = 1; i + 3 < nref && k < 0; i++) {
        int32_t a = ref[i], b = ref[i + 3];
        if (a == b || tb_has(ref, i, a) || tb_has(ref, i + 3, b) || tb_has(prompt, np, a) ||
            tb_has(prompt, np, b))
            continue;
        if (tb_has(ref + i + 4, nref - i - 4, a)) continue; /* never re-opened */
        k = i;
    }
    assert_true(k >= 0);
    int32_t start = ref[k], end[2];
    end[0] = ref[k + 3];
    tb_unused(ref, nref, prompt, np, start, end + 1, 1);
    nuage_sched *s = tb_sched(4, 0);
    ts_coll c;
    tb_run(s, prompt, np, MAXT, B, start, end, 2, &c);
    ts_assert_tokens(&c, 0, ref, nref);
    ts_coll_destroy(&c);

    /* max_tokens = k + 1 + B + 1: the request ends after the first forced token */
    int32_t other[2];
    tb_unused(ref, nref, prompt, np, start, other, 2);
    int32_t start2 = -1;
    int k2 = -1;
    for (int i = 0; i + B + 1 < nref && k2 < 0; i++)
        if (!tb_has(ref, i, ref[i]) && !tb_has(prompt, np, ref[i]) && !tb_has(ref + i + 1, B, ref[i])) {
            k2 = i;
            start2 = ref[i];
        }
    assert_true(k2 >= 0);
    int mt = k2 + 1 + B + 1;
    tb_run(s, prompt, np, mt, B, start2, other, 2, &c);
    assert_int_equal(c.n[0], mt);
    assert_int_equal(c.tok[0][mt - 1], other[0]);
    assert_int_equal(c.fin[0], NUAGE_FINISH_LENGTH);
    ts_coll_destroy(&c);
    nuage_sched_free(s);
}

/* Every choice of an n > 1 request has its own budget: with greedy
 * sampling all choices are the same forced sequence. */
static void test_budget_choices(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 30, B = 3 };
    int32_t prompt[130], ref[MAXT];
    int np = ts_prompt(4, prompt, 128);
    int nref = ts_ref_greedy(prompt, np, MAXT, ref, NULL);
    int32_t m[3];
    tb_unused(ref, nref, prompt, np, -1, m, 3);
    prompt[np++] = m[0];
    nuage_sched *s = tb_sched(4, 0);
    ts_coll c;
    ts_coll_init(&c);
    nuage_sched_request r = ts_req(prompt, np, MAXT, &c);
    r.n_choices = 3;
    r.think_budget = B;
    r.think_start = m[0];
    r.think_end[0] = m[1];
    r.think_end[1] = m[2];
    r.n_think_end = 2;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&c);
    for (int ch = 0; ch < 3; ch++) {
        assert_true(c.n[ch] >= B + 2);
        assert_int_equal(c.tok[ch][B], m[1]);
        assert_int_equal(c.tok[ch][B + 1], m[2]);
        assert_int_equal(c.n[ch], c.n[0]);
        for (int i = 0; i < c.n[0]; i++) assert_int_equal(c.tok[ch][i], c.tok[0][i]);
    }
    ts_coll_destroy(&c);
    nuage_sched_free(s);
}

static void test_budget_errors(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    nuage_sched *s = tb_sched(2, 0);
    int32_t prompt[128];
    int np = ts_prompt(1, prompt, 128);
    ts_coll c;
    ts_coll_init(&c);
    nuage_sched_request r = ts_req(prompt, np, 5, &c);
    r.n_think_end = NUAGE_SCHED_MAX_THINK_END + 1;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_INVAL);
    r.n_think_end = 1;
    r.think_start = 5;
    r.think_end[0] = 6;
    r.think_budget = -1;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_INVAL);
    r.think_budget = 3;
    r.think_end[0] = nuage_model_n_vocab(g_model);
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_RANGE);
    r.think_end[0] = 6;
    r.think_start = -2;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), NUAGE_E_RANGE);
    /* stories260K has no <think> / </think> tokens: no markers, r
     * untouched; nuage-fast's vocabulary (bare clone) has them. */
    r.n_think_end = 0;
    const nuage_vocab *voc = nuage_model_vocab(g_model);
    int32_t think[4];
    bool has = nuage_tokenize(voc, "<think>", 7, think, 4, false, true) == 1 &&
               nuage_tokenize(voc, "</think>", 8, think + 1, 3, false, true) == 1;
    int mrc = nuage_sched_think_markers(voc, &r);
    if (!has) {
        assert_int_equal(mrc, NUAGE_E_RANGE);
        assert_int_equal(r.n_think_end, 0);
    } else {
        assert_int_equal(mrc, 0);
        assert_int_equal(r.think_start, think[0]);
        assert_true(r.n_think_end >= 1 && r.think_end[0] == think[1]);
    }
    nuage_sched_free(s);
    assert_false(c.complete); /* no callback on a refused submit */
    ts_coll_destroy(&c);
}

/* max_batch_running 1: batch requests run one after the other, their
 * outputs equal to the references. */
static void test_batch_cap(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { N = 3, MAXT = 12 };
    nuage_sched *s = tb_sched(4, 1);
    static int32_t prompts[N][128];
    int np[N];
    static ts_coll c[N];
    for (int k = 0; k < N; k++) {
        np[k] = ts_prompt(10 + k, prompts[k], 128);
        ts_coll_init(&c[k]);
        c[k].steps_of = s;
    }
    for (int k = 0; k < N; k++) {
        nuage_sched_request r = ts_req(prompts[k], np[k], MAXT, &c[k]);
        r.priority = 1;
        r.ignore_eos = true;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    }
    for (int k = 0; k < N; k++) ts_wait(&c[k]);
    for (int a = 0; a < N; a++) {
        assert_int_equal(c[a].n[0], MAXT);
        for (int b = a + 1; b < N; b++) {
            /* [first, last] step intervals are disjoint */
            bool disjoint = c[a].step_at[MAXT - 1] < c[b].step_at[0] ||
                            c[b].step_at[MAXT - 1] < c[a].step_at[0];
            assert_true(disjoint);
        }
    }
    nuage_sched_free(s);
    for (int k = 0; k < N; k++) ts_coll_destroy(&c[k]);
}

/* Batch requests hold every sequence; an interactive request arrives: it
 * preempts one and finishes first; the batch outputs are unchanged. */
static void test_batch_yields(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { NB = 2, MAXT = 60, MAXI = 4 };
    nuage_sched *s = tb_sched(NB, 0);
    static int32_t prompts[NB + 1][128];
    int np[NB + 1];
    static ts_coll c[NB + 1];
    ts_gate gate;
    ts_gate_init(&gate);
    for (int k = 0; k <= NB; k++) {
        np[k] = ts_prompt(20 + k, prompts[k], 128);
        ts_coll_init(&c[k]);
    }
    for (int k = 0; k <= NB; k++) c[k].steps_of = s;
    c[0].gate = &gate;
    c[0].gate_at = 3;
    for (int k = 0; k < NB; k++) {
        nuage_sched_request r = ts_req(prompts[k], np[k], MAXT, &c[k]);
        r.priority = 1;
        r.ignore_eos = true;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    }
    ts_gate_wait_reached(&gate); /* both batch requests run (2 sequences) */
    nuage_sched_request r = ts_req(prompts[NB], np[NB], MAXI, &c[NB]);
    r.ignore_eos = true;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_gate_open(&gate);
    for (int k = 0; k <= NB; k++) ts_wait(&c[k]);
    /* the interactive request did not wait for the 60-token batch requests:
     * it finished (scheduler step of its last token) before either did */
    for (int k = 0; k < NB; k++) assert_true(c[NB].step_at[MAXI - 1] < c[k].step_at[MAXT - 1]);
    nuage_sched_stats st;
    nuage_sched_get_stats(s, &st);
    assert_true(st.preemptions >= 1);
    int32_t ref[MAXT];
    for (int k = 0; k <= NB; k++) {
        int mt = k < NB ? MAXT : MAXI;
        int32_t *p = prompts[k];
        /* ignore_eos: the reference may stop at end-of-generation earlier */
        int n = ts_ref_greedy(p, np[k], mt, ref, NULL);
        for (int i = 0; i < n; i++) assert_int_equal(c[k].tok[0][i], ref[i]);
        assert_int_equal(c[k].n[0], mt);
    }
    nuage_sched_free(s);
    ts_gate_destroy(&gate);
    for (int k = 0; k <= NB; k++) ts_coll_destroy(&c[k]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_forces_close),
        cmocka_unit_test(test_budget_prompt_opened),
        cmocka_unit_test(test_budget_natural_close_and_length),
        cmocka_unit_test(test_budget_choices),
        cmocka_unit_test(test_budget_errors),
        cmocka_unit_test(test_batch_cap),
        cmocka_unit_test(test_batch_yields),
    };
    (void)ts_sched; /* helpers of test_sched_util.h this file does not need */
    (void)ts_wait_tokens;
    int rc = cmocka_run_group_tests(tests, ts_setup, ts_teardown);
    return nuage_test_exit(rc);
}
