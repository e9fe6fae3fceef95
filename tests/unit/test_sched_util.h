/*
 * test_sched_util.h - helpers shared by the scheduler tests
 * (test_sched.c, test_sched_fair.c).
 *
 * References are computed without the scheduler: a plain single-sequence
 * nuage_context fed the whole prompt, then one token per decode, choosing
 * the arg-max (lowest id on ties) -- the textbook greedy loop. Scheduler
 * outputs must match them exactly, which is what the engine guarantees
 * (a token's logits depend only on its own sequence).
 *
 * A collector records what a request's callbacks report; a gate lets a
 * test hold the scheduler thread inside a callback, which makes queue
 * states (full queue, who waits behind whom) deterministic.
 *
 * The model is test_models.h's (stories260K with ../shared, else the
 * bundled nuage-fast): every check here holds for any model.
 *
 * Include after <cmocka.h> and test_util.h.
 */
#ifndef NUAGE_TEST_SCHED_UTIL_H
#define NUAGE_TEST_SCHED_UTIL_H

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nuage/nuage.h"
#include "nuage/sampler.h"
#include "nuage/tokenizer.h"
#include "runtime/sched.h"
#include "test_models.h"

#define TS_THREADS 2
#define TS_NCTX 512
#define TS_MAXC 4
#define TS_MAXT 512

static nuage_model *g_model;

static int ts_setup(void **state) {
    (void)state;
    const char *path = nuage_test_model_path();
    char err[256];
    if (nuage_model_load(path, NULL, &g_model, err, sizeof err)) {
        fprintf(stderr, "cannot load %s: %s\n", path, err);
        g_model = NULL;
    }
    return 0;
}

static int ts_teardown(void **state) {
    (void)state;
    nuage_model_free(g_model);
    g_model = NULL;
    return 0;
}

#define TS_REQUIRE_MODEL() assert_non_null(g_model)

/* ---- prompts ---------------------------------------------------------------- */

static const char *ts_names[] = {"Lily", "Tom", "Sue", "Ben", "Max", "Mia", "Sam", "Zoe"};
static const char *ts_things[] = {"a red ball", "a big dog", "a little bird", "a shiny car",
                                  "a funny hat", "a green tree", "a blue cup", "a soft bed"};

/* Prompt number k (distinct texts, lengths growing with k % 5). */
static int ts_prompt(int k, int32_t *out, int cap) {
    char text[512];
    int n = snprintf(text, sizeof text, "Once upon a time, %s found %s.",
                     ts_names[k % 8], ts_things[(k / 8) % 8]);
    for (int i = 0; i < k % 5; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, " %s was happy and played with %s.",
                      ts_names[(k + i) % 8], ts_things[(k + 3 * i) % 8]);
    int r = nuage_tokenize(nuage_model_vocab(g_model), text, strlen(text), out, (size_t)cap, true, false);
    assert_true(r > 0 && r <= cap);
    return r;
}

/* ---- independent references -------------------------------------------------- */

static nuage_context *ts_ref_ctx(int n_out_batch) {
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = TS_THREADS;
    cp.n_ctx = TS_NCTX;
    cp.n_seq_max = 1;
    cp.n_batch_max = n_out_batch > 64 ? n_out_batch : 64;
    cp.kv_type = NUAGE_KV_F16;
    nuage_context *ctx = NULL;
    char err[200];
    assert_int_equal(nuage_context_new(g_model, &cp, &ctx, err, sizeof err), 0);
    return ctx;
}

static int ts_argmax(const float *l, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

/* Log-softmax of logit row l at token t, in double. */
static double ts_logprob(const float *l, int n, int t) {
    double mx = l[0];
    for (int i = 1; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)l[i] - mx);
    return (double)l[t] - mx - log(sum);
}

/* Greedy continuation of prompt (stops at end-of-generation). Writes the
 * tokens, and if lp != NULL each one's log-probability. Returns the count. */
static int ts_ref_greedy(const int32_t *prompt, int np, int max_tokens, int32_t *out, float *lp) {
    nuage_context *ctx = ts_ref_ctx(np);
    nuage_batch *b = nuage_batch_new(np > 64 ? np : 64);
    const nuage_vocab *voc = nuage_model_vocab(g_model);
    const int nv = nuage_model_n_vocab(g_model);
    for (int i = 0; i < np; i++) nuage_batch_add(b, prompt[i], i, 0, i == np - 1);
    assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
    const float *l = nuage_get_logits(ctx, np - 1);
    int n = 0;
    for (;;) {
        int t = ts_argmax(l, nv);
        if (nuage_vocab_is_eog(voc, t)) break;
        if (lp) lp[n] = (float)ts_logprob(l, nv, t);
        out[n++] = t;
        if (n >= max_tokens) break;
        nuage_batch_clear(b);
        nuage_batch_add(b, t, np + n - 1, 0, true);
        assert_int_equal(nuage_decode(ctx, b, NULL, 0), 0);
        l = nuage_get_logits(ctx, 0);
    }
    nuage_batch_free(b);
    nuage_context_free(ctx);
    return n;
}

/* ---- gate ------------------------------------------------------------------------ */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, reached;
} ts_gate;

static void ts_gate_init(ts_gate *g) {
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = g->reached = 0;
}
static void ts_gate_pass(ts_gate *g) {
    pthread_mutex_lock(&g->mu);
    g->reached = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}
static void ts_gate_wait_reached(ts_gate *g) {
    pthread_mutex_lock(&g->mu);
    while (!g->reached) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}
static void ts_gate_open(ts_gate *g) {
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}
static void ts_gate_destroy(ts_gate *g) {
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

/* ---- collector --------------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t tok[TS_MAXC][TS_MAXT];
    float lp[TS_MAXC][TS_MAXT];
    int32_t top0[TS_MAXT];      /* choice 0: top_ids[0] */
    float top0_lp[TS_MAXT];
    int n_top_seen;             /* n_top of the last token */
    int n[TS_MAXC];
    nuage_finish fin[TS_MAXC];
    int n_fin;
    bool complete;
    nuage_sched_usage usage;
    float embd[1024];
    int n_embd, n_embd_calls;
    float plp[TS_MAXT];         /* prompt logprobs by index */
    int plp_count, plp_bad_order, plp_last;
    int stop_after;             /* on_token returns false at this count (0: never) */
    ts_gate *gate;              /* pass this gate when choice 0 reaches gate_at tokens */
    int gate_at;
    int *rank_counter;          /* shared counter: order of first tokens */
    int first_rank;
    int events_after_complete;
    nuage_sched *steps_of;      /* record the scheduler's step count per token */
    uint64_t step_at[TS_MAXT];
} ts_coll;

static void ts_coll_init(ts_coll *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->first_rank = -1;
}
static void ts_coll_destroy(ts_coll *c) {
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static bool ts_on_token(void *ud, int choice, const nuage_sched_token *t) {
    ts_coll *c = ud;
    bool gate = false, keep = true;
    pthread_mutex_lock(&c->mu);
    if (c->complete) c->events_after_complete++;
    if (c->first_rank < 0 && c->rank_counter) c->first_rank = (*c->rank_counter)++;
    if (choice >= 0 && choice < TS_MAXC && c->n[choice] < TS_MAXT) {
        int i = c->n[choice]++;
        c->tok[choice][i] = t->token;
        c->lp[choice][i] = t->logprob;
        if (choice == 0) {
            if (c->steps_of) {
                nuage_sched_stats st; /* callbacks run without the scheduler's lock */
                nuage_sched_get_stats(c->steps_of, &st);
                c->step_at[i] = st.steps;
            }
            c->top0[i] = t->n_top > 0 ? t->top_ids[0] : -1;
            c->top0_lp[i] = t->n_top > 0 ? t->top_lp[0] : 0;
        }
        c->n_top_seen = t->n_top;
        if (c->stop_after && c->n[choice] >= c->stop_after) keep = false;
        gate = c->gate && choice == 0 && c->n[0] == c->gate_at;
    }
    pthread_mutex_unlock(&c->mu);
    if (gate) ts_gate_pass(c->gate);
    return keep;
}

static void ts_on_prompt_token(void *ud, int index, const nuage_sched_token *t) {
    ts_coll *c = ud;
    pthread_mutex_lock(&c->mu);
    if (index != c->plp_last + 1) c->plp_bad_order++;
    c->plp_last = index;
    if (index >= 0 && index < TS_MAXT) c->plp[index] = t->logprob;
    c->plp_count++;
    pthread_mutex_unlock(&c->mu);
}

static void ts_on_embedding(void *ud, const float *e, int n) {
    ts_coll *c = ud;
    pthread_mutex_lock(&c->mu);
    c->n_embd_calls++;
    c->n_embd = n < 1024 ? n : 1024;
    memcpy(c->embd, e, (size_t)c->n_embd * sizeof *e);
    pthread_mutex_unlock(&c->mu);
}

static void ts_on_finish(void *ud, int choice, nuage_finish reason) {
    ts_coll *c = ud;
    pthread_mutex_lock(&c->mu);
    if (c->complete) c->events_after_complete++;
    if (choice >= 0 && choice < TS_MAXC) c->fin[choice] = reason;
    c->n_fin++;
    pthread_mutex_unlock(&c->mu);
}

static void ts_on_complete(void *ud, const nuage_sched_usage *u) {
    ts_coll *c = ud;
    pthread_mutex_lock(&c->mu);
    if (c->complete) c->events_after_complete++;
    c->complete = true;
    c->usage = *u;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void ts_wait(ts_coll *c) {
    pthread_mutex_lock(&c->mu);
    while (!c->complete) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* Wait until choice 0 has at least n tokens (or the request completed). */
static void ts_wait_tokens(ts_coll *c, int n) {
    pthread_mutex_lock(&c->mu);
    while (!c->complete && c->n[0] < n) {
        pthread_mutex_unlock(&c->mu);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
}

/* A request over prompt with callbacks into c: greedy unless changed. */
static nuage_sched_request ts_req(const int32_t *prompt, int np, int max_tokens, ts_coll *c) {
    nuage_sched_request r;
    memset(&r, 0, sizeof r);
    r.prompt = prompt;
    r.n_prompt = np;
    r.max_tokens = max_tokens;
    r.n_choices = 1;
    r.sampling = nuage_sampler_default_params();
    r.sampling.temperature = 0;
    r.top_logprobs = -1;
    r.weight = 1;
    r.cb.ud = c;
    r.cb.on_token = ts_on_token;
    r.cb.on_prompt_token = ts_on_prompt_token;
    r.cb.on_embedding = ts_on_embedding;
    r.cb.on_finish = ts_on_finish;
    r.cb.on_complete = ts_on_complete;
    return r;
}

static nuage_sched *ts_sched(int max_running, int max_batch, int kv_blocks, bool prefix, int max_queue) {
    nuage_sched_params p = nuage_sched_default_params();
    p.n_threads = TS_THREADS;
    p.n_ctx = TS_NCTX;
    p.max_running = max_running;
    p.max_batch_tokens = max_batch;
    p.kv_blocks = kv_blocks;
    p.prefix_cache = prefix;
    p.max_queue = max_queue;
    nuage_sched *s = NULL;
    char err[200];
    int rc = nuage_sched_new(g_model, &p, &s, err, sizeof err);
    if (rc) fprintf(stderr, "nuage_sched_new: %s\n", err);
    assert_int_equal(rc, 0);
    return s;
}

/* Tokens of choice ch in c equal ref[0..n) exactly. */
static void ts_assert_tokens(const ts_coll *c, int ch, const int32_t *ref, int n) {
    if (c->n[ch] != n)
        fprintf(stderr, "choice %d: %d tokens, reference %d (finish %d, error '%s')\n", ch, c->n[ch], n,
                (int)c->fin[ch], c->usage.error);
    assert_int_equal(c->n[ch], n);
    for (int i = 0; i < n; i++) {
        if (c->tok[ch][i] != ref[i]) fprintf(stderr, "choice %d token %d: %d != reference %d\n", ch, i, c->tok[ch][i], ref[i]);
        assert_int_equal(c->tok[ch][i], ref[i]);
    }
}

#endif
