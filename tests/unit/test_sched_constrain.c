/*
 * test_sched_constrain.c - constrained decoding in the scheduler
 * (sched_constrain.c) on stories260K.
 *
 * The reference is computed without the scheduler: one sequence, the
 * grammar's mask applied by hand, the arg-max of the allowed tokens, the
 * matcher advanced -- greedy constrained decoding from first principles.
 * Scheduler outputs must match it exactly under batching, n > 1, prefix
 * caching and preemption (the matcher of a preempted choice is kept, its
 * KV recomputed). Sampled choices must stay in the language; lazy
 * grammars must leave the output untouched until the trigger.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>

#include "test_util.h"
#pragma GCC diagnostic ignored "-Wunused-function" /* the helpers this file does not need */
#include "test_sched_util.h"
#include "nuage/constrain.h"
#include "runtime/grammar_cache.h"

static nuage_cg_tokens *tab(void) {
    static nuage_cg_tokens *t;
    if (!t) assert_int_equal(nuage_cg_tokens_new(nuage_model_vocab(g_model), &t), 0);
    return t;
}

static nuage_grammar *regex_grammar(const char *re) {
    nuage_grammar *g = NULL;
    nuage_cg_error ce;
    int rc = nuage_grammar_from_regex(tab(), re, strlen(re), &g, &ce);
    if (rc) fail_msg("regex %s refused: %s", re, ce.msg);
    return g;
}

/* Greedy under g, from scratch. Returns the number of tokens (an EOS that
 * ends it is not counted); *term tells whether the matcher terminated. */
static int ref_constrained(nuage_grammar *g, const int32_t *prompt, int np, int max_tokens, int32_t *out) {
    nuage_context *ctx = ts_ref_ctx(np);
    nuage_batch *b = nuage_batch_new(np > 64 ? np : 64);
    const nuage_vocab *voc = nuage_model_vocab(g_model);
    const int nv = nuage_model_n_vocab(g_model);
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    uint32_t *mask = calloc((size_t)(nv + 31) / 32 + 8, sizeof *mask);
    for (int i = 0; i < np; i++) nuage_batch_add(b, prompt[i], i, 0, i == np - 1);
    assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
    const float *l = nuage_get_logits(ctx, np - 1);
    int n = 0;
    for (;;) {
        memset(mask, 0, ((size_t)(nv + 31) / 32 + 8) * sizeof *mask);
        assert_int_equal(nuage_matcher_fill_mask(m, mask), 0);
        int best = -1;
        for (int t = 0; t < nv; t++)
            if ((mask[t >> 5] >> (t & 31) & 1u) && (best < 0 || l[t] > l[best])) best = t;
        assert_true(best >= 0);
        assert_int_equal(nuage_matcher_accept_token(m, best), 0);
        if (nuage_vocab_is_eog(voc, best)) break;
        out[n++] = best;
        if (nuage_matcher_is_terminated(m) || n >= max_tokens) break;
        nuage_batch_clear(b);
        nuage_batch_add(b, best, np + n - 1, 0, true);
        assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
        l = nuage_get_logits(ctx, 0);
    }
    free(mask);
    nuage_matcher_free(m);
    nuage_batch_free(b);
    nuage_context_free(ctx);
    return n;
}

static void text_of(const int32_t *t, int n, char *buf, size_t cap) {
    int k = nuage_detokenize(nuage_model_vocab(g_model), t, (size_t)n, buf, cap, false, false);
    assert_true(k >= 0 && (size_t)k < cap);
    buf[k] = 0;
}

static void assert_matches(const char *text, const char *posix_re) {
    regex_t re;
    assert_int_equal(regcomp(&re, posix_re, REG_EXTENDED | REG_NOSUB), 0);
    if (regexec(&re, text, 0, NULL, 0)) fail_msg("'%s' does not match %s", text, posix_re);
    regfree(&re);
}

/* Greedy constrained outputs equal the reference, with several requests
 * batched, two choices each, a small pool that forces preemptions, with
 * and without the prefix cache. */
static void test_greedy_equals_reference(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { N = 6, MAXT = 60 };
    nuage_grammar *g = regex_grammar("( ?[a-z]{1,7}){3,12}\\.");
    static int32_t prompts[N][128], ref[N][MAXT];
    static int np[N], nref[N];
    for (int k = 0; k < N; k++) {
        np[k] = ts_prompt(60 + k, prompts[k], 128);
        nref[k] = ref_constrained(g, prompts[k], np[k], MAXT, ref[k]);
        char txt[1024];
        text_of(ref[k], nref[k], txt, sizeof txt);
        assert_matches(txt, "^( ?[a-z]{1,7}){3,12}\\.$");
    }
    for (int cache = 1; cache >= 0; cache--) {
        nuage_sched *s = ts_sched(6, 64, 10, cache, 32);
        static ts_coll c[N];
        for (int k = 0; k < N; k++) {
            ts_coll_init(&c[k]);
            nuage_sched_request r = ts_req(prompts[k], np[k], MAXT, &c[k]);
            r.grammar = g;
            r.n_choices = 2;
            assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        }
        for (int k = 0; k < N; k++) {
            ts_wait(&c[k]);
            for (int ch = 0; ch < 2; ch++) {
                assert_int_equal(c[k].n[ch], nref[k]);
                ts_assert_tokens(&c[k], ch, ref[k], nref[k]);
                assert_int_equal(c[k].fin[ch], nref[k] == MAXT ? NUAGE_FINISH_LENGTH : NUAGE_FINISH_STOP);
            }
        }
        nuage_sched_stats st;
        nuage_sched_get_stats(s, &st);
        fprintf(stderr, "constrained, cache %d: %llu preemptions\n", cache, (unsigned long long)st.preemptions);
        assert_true(st.preemptions > 0);
        nuage_sched_free(s);
        for (int k = 0; k < N; k++) ts_coll_destroy(&c[k]);
    }
    nuage_grammar_free(g);
}

/* Sampled choices (temperature 1.5, top-k off) stay in the language and
 * stop where the matcher terminates; the grammar outlives its request. */
static void test_sampled_in_language(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    nuage_grammar *g = regex_grammar("(yes|no|[0-9]{2,4})!");
    nuage_sched *s = ts_sched(4, 64, 0, true, 8);
    int32_t p[128];
    int np = ts_prompt(3, p, 128);
    ts_coll c;
    ts_coll_init(&c);
    nuage_sched_request r = ts_req(p, np, 30, &c);
    r.grammar = g;
    r.n_choices = 4;
    r.sampling.temperature = 1.5f;
    r.sampling.seed = 42;
    r.sampling.presence_penalty = 1.0f;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    nuage_grammar_free(g); /* the scheduler holds its own reference */
    ts_wait(&c);
    for (int ch = 0; ch < 4; ch++) {
        char txt[256];
        text_of(c.tok[ch], c.n[ch], txt, sizeof txt);
        assert_matches(txt, "^(yes|no|[0-9]{2,4})!$");
        assert_int_equal(c.fin[ch], NUAGE_FINISH_STOP);
    }
    nuage_sched_free(s);
    ts_coll_destroy(&c);
}

/* Lazy: free until the trigger, then constrained. The trigger is a piece
 * of the unconstrained greedy output, so the output up to it is exactly
 * that. */
static void test_lazy_trigger(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    int32_t p[128], free_out[40];
    int np = ts_prompt(1, p, 128);
    int nf = ts_ref_greedy(p, np, 40, free_out, NULL);
    assert_true(nf >= 8);
    char free_txt[512];
    text_of(free_out, 6, free_txt, sizeof free_txt);
    /* trigger: the text of tokens 4..5 of the free output */
    char before[512];
    text_of(free_out, 4, before, sizeof before);
    const char *trig = free_txt + strlen(before);
    assert_true(strlen(trig) > 0);
    const char *triggers[] = {trig, NULL};
    nuage_grammar *g = regex_grammar("[0-9]{3}#");
    nuage_sched *s = ts_sched(2, 64, 0, true, 8);
    ts_coll c;
    ts_coll_init(&c);
    nuage_sched_request r = ts_req(p, np, 40, &c);
    r.grammar = g;
    r.triggers = triggers;
    assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
    ts_wait(&c);
    assert_true(c.n[0] > 6);
    for (int i = 0; i < 6; i++) assert_int_equal(c.tok[0][i], free_out[i]);
    char txt[512];
    text_of(c.tok[0], c.n[0], txt, sizeof txt);
    assert_int_equal(strncmp(txt, free_txt, strlen(free_txt)), 0);
    assert_matches(txt + strlen(free_txt), "^[0-9]{3}#$");
    assert_int_equal(c.fin[0], NUAGE_FINISH_STOP);
    nuage_sched_free(s);
    nuage_grammar_free(g);
    ts_coll_destroy(&c);
}

/* require_trigger: no end of generation before the trigger. With EOS
 * pushed up by a logit bias, a lazy choice stops at once; one that
 * requires the trigger cannot, and runs to max_tokens. */
static void test_require_trigger(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    enum { MAXT = 40 };
    int32_t p[128];
    int np = ts_prompt(2, p, 128);
    const nuage_vocab *voc = nuage_model_vocab(g_model);
    int32_t eos = nuage_vocab_eos(voc);
    assert_true(eos >= 0);
    float up = 100.0f;
    const char *triggers[] = {"\x01never\x02", NULL};
    nuage_grammar *g = regex_grammar("x");
    nuage_sched *s = ts_sched(2, 64, 0, true, 8);
    for (int req = 0; req < 2; req++) {
        ts_coll c;
        ts_coll_init(&c);
        nuage_sched_request r = ts_req(p, np, MAXT, &c);
        r.grammar = g;
        r.triggers = triggers;
        r.require_trigger = req == 1;
        r.sampling.bias_tokens = &eos;
        r.sampling.bias_values = &up;
        r.sampling.n_bias = 1;
        assert_int_equal(nuage_sched_submit(s, &r, NULL), 0);
        ts_wait(&c);
        if (req == 0) {
            assert_int_equal(c.n[0], 0);
            assert_int_equal(c.fin[0], NUAGE_FINISH_STOP);
        } else {
            assert_int_equal(c.n[0], MAXT);
            assert_int_equal(c.fin[0], NUAGE_FINISH_LENGTH);
            for (int i = 0; i < MAXT; i++) assert_false(nuage_vocab_is_eog(voc, c.tok[0][i]));
        }
        ts_coll_destroy(&c);
    }
    nuage_sched_free(s);
    nuage_grammar_free(g);
}

/* The per-deployment grammar cache: hits share the grammar, triggers are
 * copied, the least recently used entry goes first. */
static void test_grammar_cache(void **state) {
    (void)state;
    TS_REQUIRE_MODEL();
    nuage_grammar *a = regex_grammar("a+"), *b = regex_grammar("b+"), *c = regex_grammar("c+");
    nuage__gcache *gc = nuage__gcache_new(2);
    assert_non_null(gc);
    char *trig[] = {"<tool_call>", NULL};
    char **t = NULL;
    assert_null(nuage__gcache_get(gc, "A", &t));
    nuage__gcache_put(gc, "A", a, trig);
    nuage__gcache_put(gc, "B", b, NULL);
    nuage_grammar *g = nuage__gcache_get(gc, "A", &t); /* A is now the most recent */
    assert_ptr_equal(g, a);
    assert_non_null(t);
    assert_string_equal(t[0], "<tool_call>");
    assert_null(t[1]);
    free(t[0]);
    free(t);
    nuage_grammar_free(g);
    nuage__gcache_put(gc, "C", c, NULL);                /* evicts B */
    assert_null(nuage__gcache_get(gc, "B", &t));
    g = nuage__gcache_get(gc, "C", &t);
    assert_ptr_equal(g, c);
    assert_null(t);
    nuage_grammar_free(g);
    /* the cache holds its own references */
    nuage_grammar_free(a);
    nuage_grammar_free(b);
    nuage_grammar_free(c);
    g = nuage__gcache_get(gc, "A", &t);
    assert_non_null(g);
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    assert_int_equal(nuage_matcher_accept_bytes(m, "aa", 2), 0);
    nuage_matcher_free(m);
    nuage_grammar_free(g);
    for (int i = 0; t && t[i]; i++) free(t[i]);
    free(t);
    nuage__gcache_free(gc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_equals_reference),
        cmocka_unit_test(test_sampled_in_language),
        cmocka_unit_test(test_lazy_trigger),
        cmocka_unit_test(test_require_trigger),
        cmocka_unit_test(test_grammar_cache),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, ts_setup, ts_teardown));
}
