/*
 * test_sched_step.c - the scheduler's per-step token budget (chunked
 * prefill interleaved with decode, sched_step.c step 3).
 *
 * Rule under test: a step that carries decode tokens holds one token per
 * decoding stream, then prompt chunks, oldest request first, until
 * step_tokens tokens in all (at least step_tokens / 4 of prompt); a step
 * with nothing to decode takes up to max_batch_tokens of prompt.
 *
 *   - the budget arithmetic, as a table (nuage__step_budget);
 *   - a scripted run: a request H is held (gate) at its first token while
 *     three requests A, B, C of known prompt lengths are queued; the
 *     scheduler's trace hook records which tokens went into which step,
 *     and the first steps must equal a table worked out by hand from the
 *     rule above (not from the code): H keeps one token in every step,
 *     A's 40-token prompt goes 15 / 15 / 10, B's and C's follow as the
 *     budget frees up, and the three first tokens land in three
 *     different steps;
 *   - batch invariance at those split points: A, B and C produce exactly
 *     the greedy references of a plain context, and their log-probabilities
 *     are bit-identical to the same request run alone (prompt in one
 *     chunk).
 *
 * Model: test_models.h's (stories260K with ../shared, else nuage-fast), 2
 * compute threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_util.h"
#include "test_sched_util.h"
#include "runtime/sched_internal.h"

/* ---- the arithmetic ------------------------------------------------------------ */

static void test_budget_table(void **state) {
    (void)state;
    static const struct {
        int max_batch, step, n_dec, want;
    } t[] = {
        {512, 128, 0, 512},  /* nothing decodes: the whole batch */
        {512, 128, 1, 127},  /* one stream: the rest of the step */
        {512, 128, 16, 112},
        {512, 128, 96, 32},  /* the floor: step / 4 */
        {512, 128, 120, 32}, /* decode tokens past the step: still the floor */
        {64, 64, 60, 4},     /* ... but never past the batch */
        {64, 16, 1, 15},
        {64, 16, 13, 4},
        {8, 3, 2, 1},        /* floor of a tiny step is 1 */
        {8, 3, 8, 0},        /* a full batch of decode tokens */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        nuage_sched_params p = nuage_sched_default_params();
        p.max_batch_tokens = t[i].max_batch;
        p.step_tokens = t[i].step;
        int got = nuage__step_budget(&p, t[i].n_dec);
        if (got != t[i].want)
            fprintf(stderr, "batch %d step %d decode %d: %d, want %d\n", t[i].max_batch, t[i].step,
                    t[i].n_dec, got, t[i].want);
        assert_int_equal(got, t[i].want);
    }
    nuage_sched_params d = nuage_sched_default_params();
    assert_int_equal(d.step_tokens, 256);
    assert_int_equal(d.max_batch_tokens, 512);
}

/* ---- the trace ---------------------------------------------------------------- */

#define TR_MAX 4096

typedef struct {
    uint64_t step, id;
    int pos0, n;
} tr_ent;

typedef struct {
    pthread_mutex_t mu;
    tr_ent e[TR_MAX];
    int n;
} tr_log;

static void tr_hook(void *ud, uint64_t step, const nuage__splan *plan, int n_plan) {
    tr_log *l = ud;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < n_plan && l->n < TR_MAX; i++)
        l->e[l->n++] = (tr_ent){step, plan[i].q->id, plan[i].pos0, plan[i].n};
    pthread_mutex_unlock(&l->mu);
}

/* A prompt of exactly n tokens (prompts k, k+1, ... run together). */
static void tr_prompt(int k, int32_t *out, int n) {
    int got = 0;
    int32_t tmp[128];
    while (got < n) {
        int m = ts_prompt(k++, tmp, 128);
        for (int i = 0; i < m && got < n; i++) out[got++] = tmp[i];
    }
}

static nuage_sched *tr_sched(int max_batch, int step) {
    nuage_sched_params p = nuage_sched_default_params();
    p.n_threads = TS_THREADS;
    p.n_ctx = TS_NCTX;
    p.max_running = 4;
    p.max_batch_tokens = max_batch;
    p.step_tokens = step;
    p.prefix_cache = false; /* the prompts share tokens: no cache hits */
    nuage_sched *s = NULL;
    char err[200];
    int rc = nuage_sched_new(g_model, &p, &s, err, sizeof err);
    if (rc) fprintf(stderr, "nuage_sched_new: %s\n", err);
    assert_int_equal(rc, 0);
    return s;
}

enum { NH = 100, NA = 40, NB = 10, NC = 30, MAXH = 40, MAXO = 8 };

static void test_scripted_steps(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    static tr_log log;
    memset(&log, 0, sizeof log);
    pthread_mutex_init(&log.mu, NULL);
    nuage_sched *s = tr_sched(64, 16);
    nuage__sched_set_trace(s, tr_hook, &log);

    int32_t ph[NH], pa[NA], pb[NB], pc[NC];
    tr_prompt(0, ph, NH);
    tr_prompt(3, pa, NA);
    tr_prompt(9, pb, NB);
    tr_prompt(14, pc, NC);
    ts_gate gate;
    ts_gate_init(&gate);
    ts_coll h, a, b, c;
    ts_coll_init(&h);
    ts_coll_init(&a);
    ts_coll_init(&b);
    ts_coll_init(&c);
    h.gate = &gate;
    h.gate_at = 1;
    uint64_t idh, ida, idb, idc;
    nuage_sched_request r = ts_req(ph, NH, MAXH, &h);
    r.ignore_eos = true;
    assert_int_equal(nuage_sched_submit(s, &r, &idh), 0);
    ts_gate_wait_reached(&gate); /* H's first token: the scheduler waits in on_token */
    r = ts_req(pa, NA, MAXO, &a);
    r.ignore_eos = true;
    r.top_logprobs = 0;
    assert_int_equal(nuage_sched_submit(s, &r, &ida), 0);
    r = ts_req(pb, NB, MAXO, &b);
    r.ignore_eos = true;
    r.top_logprobs = 0;
    assert_int_equal(nuage_sched_submit(s, &r, &idb), 0);
    r = ts_req(pc, NC, MAXO, &c);
    r.ignore_eos = true;
    r.top_logprobs = 0;
    assert_int_equal(nuage_sched_submit(s, &r, &idc), 0);
    ts_gate_open(&gate);
    ts_wait(&h);
    ts_wait(&a);
    ts_wait(&b);
    ts_wait(&c);
    nuage_sched_free(s);

    /* Worked out by hand from the rule (max_batch 64, step 16, floor 4):
     * steps 0-1: nothing decodes, H's 100 prompt tokens go 64 + 36.
     * step 2: H decodes (1) -> 15 of prompt: A 0..14.
     * step 3: H (1) -> 15: A 15..29.
     * step 4: H (1) -> 15: A 30..39 (A's first token), B 0..4.
     * step 5: H, A (2) -> 14: B 5..9 (B's first token), C 0..8.
     * step 6: H, A, B (3) -> 13: C 9..21.
     * step 7: H, A, B (3) -> 13: C 22..29 (C's first token).
     * step 8: H, A, B, C decode. */
    const struct {
        uint64_t step;
        int who, pos0, n; /* who: 0 H, 1 A, 2 B, 3 C */
    } want[] = {
        {0, 0, 0, 64},
        {1, 0, 64, 36},
        {2, 0, 100, 1}, {2, 1, 0, 15},
        {3, 0, 101, 1}, {3, 1, 15, 15},
        {4, 0, 102, 1}, {4, 1, 30, 10}, {4, 2, 0, 5},
        {5, 0, 103, 1}, {5, 1, 40, 1}, {5, 2, 5, 5}, {5, 3, 0, 9},
        {6, 0, 104, 1}, {6, 1, 41, 1}, {6, 2, 10, 1}, {6, 3, 9, 13},
        {7, 0, 105, 1}, {7, 1, 42, 1}, {7, 2, 11, 1}, {7, 3, 22, 8},
        {8, 0, 106, 1}, {8, 1, 43, 1}, {8, 2, 12, 1}, {8, 3, 30, 1},
    };
    const uint64_t ids[4] = {idh, ida, idb, idc};
    const int nw = (int)(sizeof want / sizeof want[0]);
    pthread_mutex_lock(&log.mu);
    bool same = log.n >= nw;
    for (int i = 0; i < nw && same; i++)
        same = log.e[i].step == want[i].step && log.e[i].id == ids[want[i].who] &&
               log.e[i].pos0 == want[i].pos0 && log.e[i].n == want[i].n;
    if (!same)
        for (int i = 0; i < log.n && i < 40; i++) {
            int who = -1;
            for (int k = 0; k < 4; k++)
                if (log.e[i].id == ids[k]) who = k;
            fprintf(stderr, "trace %d: step %llu %c pos %d n %d%s\n", i, (unsigned long long)log.e[i].step,
                    who >= 0 ? "HABC"[who] : '?', log.e[i].pos0, log.e[i].n,
                    i < nw ? "" : " (beyond the table)");
        }
    assert_true(same);
    /* H got exactly one token in every step from its first sample to its
     * last: a step never went by without it. */
    uint64_t expect = 2;
    int hpos = NH;
    for (int i = 0; i < log.n; i++) {
        if (log.e[i].id != idh || log.e[i].pos0 < NH) continue;
        assert_int_equal(log.e[i].step, expect);
        assert_int_equal(log.e[i].pos0, hpos);
        assert_int_equal(log.e[i].n, 1);
        expect++;
        hpos++;
    }
    assert_int_equal(hpos, NH + MAXH - 1); /* the last token needs no decode */
    /* No step exceeded its budget: decode tokens (one token past the
     * prompt) plus at most max(16 - decode, 4) prompt tokens, or 64 when
     * nothing decoded. */
    const int nps[4] = {NH, NA, NB, NC};
    for (int i = 0, j; i < log.n; i = j) {
        int dec = 0, tot = 0;
        for (j = i; j < log.n && log.e[j].step == log.e[i].step; j++) {
            int np = 0;
            for (int k = 0; k < 4; k++)
                if (log.e[j].id == ids[k]) np = nps[k];
            tot += log.e[j].n;
            dec += log.e[j].pos0 >= np;
        }
        int pf = dec == 0 ? 64 : 16 - dec > 4 ? 16 - dec : 4;
        assert_true(tot - dec <= pf);
    }
    pthread_mutex_unlock(&log.mu);
    pthread_mutex_destroy(&log.mu);

    /* Outputs: the greedy references; log-probabilities bit-identical to
     * the same request alone, its prompt in one chunk. */
    int32_t ref[MAXH];
    int n = ts_ref_greedy(ph, NH, MAXH, ref, NULL);
    assert_int_equal(n, MAXH); /* ignore_eos only matters if the reference ends early */
    ts_assert_tokens(&h, 0, ref, MAXH);
    const int32_t *pr[3] = {pa, pb, pc};
    const int npr[3] = {NA, NB, NC};
    ts_coll *got[3] = {&a, &b, &c};
    nuage_sched *alone = tr_sched(64, 64);
    for (int k = 0; k < 3; k++) {
        n = ts_ref_greedy(pr[k], npr[k], MAXO, ref, NULL);
        if (n == MAXO) ts_assert_tokens(got[k], 0, ref, MAXO);
        else {
            assert_int_equal(got[k]->n[0], MAXO);
            for (int i = 0; i < n; i++) assert_int_equal(got[k]->tok[0][i], ref[i]);
        }
        ts_coll one;
        ts_coll_init(&one);
        r = ts_req(pr[k], npr[k], MAXO, &one);
        r.ignore_eos = true;
        r.top_logprobs = 0;
        assert_int_equal(nuage_sched_submit(alone, &r, NULL), 0);
        ts_wait(&one);
        assert_int_equal(one.n[0], MAXO);
        assert_memory_equal(one.tok[0], got[k]->tok[0], MAXO * sizeof(int32_t));
        assert_memory_equal(one.lp[0], got[k]->lp[0], MAXO * sizeof(float));
        ts_coll_destroy(&one);
    }
    nuage_sched_free(alone);
    ts_gate_destroy(&gate);
    ts_coll_destroy(&h);
    ts_coll_destroy(&a);
    ts_coll_destroy(&b);
    ts_coll_destroy(&c);
}

int main(void) {
    (void)ts_sched; /* test_sched_util.h helpers this file does not need */
    (void)ts_wait_tokens;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_table),
        cmocka_unit_test(test_scripted_steps),
    };
    int rc = cmocka_run_group_tests(tests, ts_setup, ts_teardown);
    return nuage_test_exit(rc);
}
