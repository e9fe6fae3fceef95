/*
 * test_sampler.c - the token sampler and log-probabilities (nuage/sampler.h).
 *
 * Every expectation is computed here independently, in double, straight
 * from the documented pipeline (bias -> penalties -> greedy -> top-k ->
 * temperature -> softmax -> top-p -> min-p), with a plain full sort instead
 * of the library's heaps. Two kinds of checks:
 *   - exact: nuage_sampler_candidates() (the distribution sample() draws
 *     from) against the reference distribution, to ~1e-5;
 *   - empirical: frequencies of many sample() draws against the reference
 *     with a chi-square bound far in the tail. Seeds are fixed, so the
 *     outcome is deterministic: it cannot flake, and a wrong transform
 *     (missing temperature, wrong cut) lands orders of magnitude above.
 * The generator is checked against an in-test xoshiro256** and splitmix64
 * written from the published algorithm (splitmix64's first output for
 * seed 0 is the published 0xe220a8397b1dcdaf).
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "nuage/nuage.h"
#include "nuage/sampler.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------- */

/* test-side random numbers for building logits (unrelated to the sampler) */
static uint64_t trng_state = 0x1234567887654321ULL;
static double trng_u(void) {
    trng_state ^= trng_state << 13;
    trng_state ^= trng_state >> 7;
    trng_state ^= trng_state << 17;
    return (double)(trng_state >> 11) * 0x1.0p-53;
}
static void rand_logits(float *l, int n, double lo, double hi) {
    for (int i = 0; i < n; i++) l[i] = (float)(lo + (hi - lo) * trng_u());
}

typedef struct {
    const int32_t *hist; /* accepted tokens, oldest first */
    int n_hist;
} ref_hist;

static const double *g_sort_key;
static int cmp_desc(const void *a, const void *b) {
    int ia = *(const int *)a, ib = *(const int *)b;
    double x = g_sort_key[ia], y = g_sort_key[ib];
    if (x > y) return -1;
    if (x < y) return 1;
    return ia < ib ? -1 : ia > ib;
}

/* Reference pipeline in double: writes the probability of each token (0
 * if dropped) to out[n]. Returns 0, or -1 if nothing can be chosen. */
static int ref_dist(const float *logits, int n, const nuage_sampler_params *p,
                    const ref_hist *h, double *out) {
    double *l = malloc(sizeof(double) * n);
    int *idx = malloc(sizeof(int) * n);
    int *cnt = calloc(n, sizeof(int));
    for (int i = 0; i < n; i++) l[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    for (int j = 0; j < p->n_bias; j++) {
        if (p->bias_values[j] <= -100) l[p->bias_tokens[j]] = -INFINITY;
        else l[p->bias_tokens[j]] += p->bias_values[j];
    }
    if (h && p->penalty_last_n != 0) {
        int start = 0;
        if (p->penalty_last_n > 0 && h->n_hist > p->penalty_last_n)
            start = h->n_hist - p->penalty_last_n;
        for (int j = start; j < h->n_hist; j++) cnt[h->hist[j]]++;
        for (int t = 0; t < n; t++) {
            if (!cnt[t]) continue;
            double x = l[t];
            double rp = p->repetition_penalty;
            if (x > 0) x /= rp;
            else x *= rp;
            x -= p->frequency_penalty * cnt[t] + p->presence_penalty;
            l[t] = x;
        }
    }
    for (int i = 0; i < n; i++) { out[i] = 0; idx[i] = i; }
    g_sort_key = l;
    qsort(idx, n, sizeof(int), cmp_desc);
    int rc = 0;
    if (!(l[idx[0]] > -INFINITY)) { rc = -1; goto done; }
    if (p->temperature == 0) { out[idx[0]] = 1; goto done; }
    int m = n;
    while (m > 0 && !(l[idx[m - 1]] > -INFINITY)) m--;
    if (p->top_k > 0 && p->top_k < m) m = p->top_k;
    double mx = l[idx[0]], z = 0;
    for (int j = 0; j < m; j++) { out[idx[j]] = exp((l[idx[j]] - mx) / p->temperature); z += out[idx[j]]; }
    for (int j = 0; j < m; j++) out[idx[j]] /= z;
    if (p->top_p < 1) {
        double cum = 0;
        int keep = m;
        for (int j = 0; j < m; j++) {
            cum += out[idx[j]];
            if (cum >= p->top_p) { keep = j + 1; break; }
        }
        for (int j = keep; j < m; j++) out[idx[j]] = 0;
        m = keep;
    }
    if (p->min_p > 0) {
        double thr = p->min_p * out[idx[0]];
        for (int j = 0; j < m; j++)
            if (out[idx[j]] < thr) out[idx[j]] = 0;
    }
    z = 0;
    for (int i = 0; i < n; i++) z += out[i];
    for (int i = 0; i < n; i++) out[i] /= z;
done:
    free(l);
    free(idx);
    free(cnt);
    return rc;
}

/* candidates() vs the reference, as dense vectors */
static void check_candidates(nuage_sampler *s, const float *logits, int n, const double *ref) {
    int32_t *ids = malloc(sizeof(int32_t) * n);
    float *pr = malloc(sizeof(float) * n);
    double *got = calloc(n, sizeof(double));
    int32_t m = nuage_sampler_candidates(s, logits, ids, pr, n);
    assert_true(m >= 1 && m <= n);
    double sum = 0;
    for (int j = 0; j < m; j++) {
        assert_true(ids[j] >= 0 && ids[j] < n);
        assert_true(got[ids[j]] == 0); /* no duplicates */
        got[ids[j]] = pr[j];
        sum += pr[j];
    }
    assert_true(fabs(sum - 1) < 1e-5);
    for (int i = 0; i < n; i++) {
        if (fabs(got[i] - ref[i]) > 1e-5 + 1e-4 * ref[i]) {
            print_message("token %d: got %.8g want %.8g\n", i, got[i], ref[i]);
            fail();
        }
        if (got[i] > 0) assert_true(ref[i] > 0);        /* same support */
        if (ref[i] > 1e-12) assert_true(got[i] > 0);
    }
    free(ids);
    free(pr);
    free(got);
}

/* Draw `draws` tokens (no accept between draws) and compare frequencies to
 * ref with a chi-square statistic; tokens with ref == 0 must never come. */
static void check_empirical(nuage_sampler *s, const float *logits, int n, const double *ref,
                            int draws) {
    long *cnt = calloc(n, sizeof(long));
    for (int d = 0; d < draws; d++) {
        int32_t t = nuage_sampler_sample(s, logits);
        assert_true(t >= 0 && t < n);
        cnt[t]++;
    }
    double chi = 0, e_other = 0;
    long o_other = 0;
    int df = -1;
    for (int i = 0; i < n; i++) {
        if (ref[i] == 0) { assert_int_equal(cnt[i], 0); continue; }
        double e = ref[i] * draws;
        if (e < 5) { e_other += e; o_other += cnt[i]; continue; }
        chi += (cnt[i] - e) * (cnt[i] - e) / e;
        df++;
    }
    if (e_other >= 5) { chi += (o_other - e_other) * (o_other - e_other) / e_other; df++; }
    if (df < 1) df = 1;
    double bound = df + 8 * sqrt(2.0 * df) + 15;
    if (chi > bound) {
        print_message("chi-square %.2f > %.2f (df %d)\n", chi, bound, df);
        fail();
    }
    free(cnt);
}

static int ref_argmax(const float *l, int n) {
    int b = -1;
    float m = -INFINITY;
    for (int i = 0; i < n; i++)
        if (!isnan(l[i]) && l[i] > m) { m = l[i]; b = i; }
    return b;
}

/* ---- parameters ---------------------------------------------------------- */

static void test_default_params(void **st) {
    (void)st;
    nuage_sampler_params p = nuage_sampler_default_params();
    assert_true(p.temperature == 1.0f);
    assert_true(p.top_k <= 0);
    assert_true(p.top_p == 1.0f);
    assert_true(p.min_p == 0.0f);
    assert_true(p.repetition_penalty == 1.0f);
    assert_true(p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f);
    assert_int_equal(p.n_bias, 0);
    nuage_sampler *s = nuage_sampler_new(&p, 10);
    assert_non_null(s);
    nuage_sampler_free(s);
    s = nuage_sampler_new(NULL, 10);
    assert_non_null(s);
    nuage_sampler_free(s);
    nuage_sampler_free(NULL);
}

static void test_params_validation(void **st) {
    (void)st;
    const nuage_sampler_params d = nuage_sampler_default_params();
    nuage_sampler_params p;
    int32_t bt[2] = {1, 5};
    float bv[2] = {1.0f, -100.0f};
#define EXPECT_NULL(stmt, nv)                        \
    do {                                             \
        p = d;                                       \
        stmt;                                        \
        nuage_sampler *x_ = nuage_sampler_new(&p, nv); \
        if (x_) { nuage_sampler_free(x_); print_message("accepted: %s\n", #stmt); fail(); } \
    } while (0)
#define EXPECT_OK(stmt, nv)                          \
    do {                                             \
        p = d;                                       \
        stmt;                                        \
        nuage_sampler *x_ = nuage_sampler_new(&p, nv); \
        if (!x_) { print_message("rejected: %s\n", #stmt); fail(); } \
        nuage_sampler_free(x_);                      \
    } while (0)
    EXPECT_NULL((void)0, 0);
    EXPECT_NULL((void)0, -5);
    EXPECT_NULL(p.temperature = -0.1f, 10);
    EXPECT_NULL(p.temperature = NAN, 10);
    EXPECT_NULL(p.temperature = INFINITY, 10);
    EXPECT_NULL(p.top_p = 0.0f, 10);
    EXPECT_NULL(p.top_p = -0.5f, 10);
    EXPECT_NULL(p.top_p = 1.0001f, 10);
    EXPECT_NULL(p.top_p = NAN, 10);
    EXPECT_NULL(p.min_p = -0.01f, 10);
    EXPECT_NULL(p.min_p = 1.5f, 10);
    EXPECT_NULL(p.min_p = NAN, 10);
    EXPECT_NULL(p.repetition_penalty = 0.0f, 10);
    EXPECT_NULL(p.repetition_penalty = -1.0f, 10);
    EXPECT_NULL(p.repetition_penalty = INFINITY, 10);
    EXPECT_NULL(p.presence_penalty = NAN, 10);
    EXPECT_NULL(p.frequency_penalty = -INFINITY, 10);
    EXPECT_NULL(p.penalty_last_n = -2, 10);
    EXPECT_NULL(p.penalty_last_n = NUAGE_SAMPLER_MAX_LAST_N + 1, 10);
    EXPECT_NULL(p.n_bias = -1, 10);
    EXPECT_NULL((p.n_bias = 2, p.bias_tokens = NULL, p.bias_values = bv), 10);
    EXPECT_NULL((p.n_bias = 2, p.bias_tokens = bt, p.bias_values = NULL), 10);
    EXPECT_NULL((p.n_bias = 2, p.bias_tokens = bt, p.bias_values = bv), 5); /* id 5 >= n */
    {
        int32_t neg[1] = {-1};
        EXPECT_NULL((p.n_bias = 1, p.bias_tokens = neg, p.bias_values = bv), 10);
        float nanv[1] = {NAN}, pinf[1] = {INFINITY}, ninf[1] = {-INFINITY};
        EXPECT_NULL((p.n_bias = 1, p.bias_tokens = bt, p.bias_values = nanv), 10);
        EXPECT_NULL((p.n_bias = 1, p.bias_tokens = bt, p.bias_values = pinf), 10);
        EXPECT_OK((p.n_bias = 1, p.bias_tokens = bt, p.bias_values = ninf), 10);
    }
    /* boundaries that are valid */
    EXPECT_OK(p.temperature = 0.0f, 10);
    EXPECT_OK(p.temperature = 100.0f, 10);
    EXPECT_OK(p.top_p = 1.0f, 10);
    EXPECT_OK(p.top_p = 1e-9f, 10);
    EXPECT_OK(p.min_p = 1.0f, 10);
    EXPECT_OK(p.top_k = -3, 10);
    EXPECT_OK(p.top_k = 1000, 10);
    EXPECT_OK(p.penalty_last_n = -1, 10);
    EXPECT_OK(p.penalty_last_n = 0, 10);
    EXPECT_OK((p.penalty_last_n = NUAGE_SAMPLER_MAX_LAST_N, p.repetition_penalty = 1.1f), 10);
    EXPECT_OK((p.n_bias = 2, p.bias_tokens = bt, p.bias_values = bv), 10);
    EXPECT_OK(p.presence_penalty = -2.0f, 10);
#undef EXPECT_NULL
#undef EXPECT_OK

    /* NULL arguments to the calls */
    nuage_sampler *s = nuage_sampler_new(NULL, 4);
    float l[4] = {0, 1, 2, 3};
    int32_t ids[4];
    float pr[4];
    assert_true(nuage_sampler_sample(NULL, l) < 0);
    assert_true(nuage_sampler_sample(s, NULL) < 0);
    assert_true(nuage_sampler_candidates(s, l, NULL, pr, 4) < 0);
    assert_true(nuage_sampler_candidates(s, l, ids, pr, -1) < 0);
    assert_int_equal(nuage_sampler_candidates(s, l, NULL, NULL, 0), 4);
    assert_null(nuage_sampler_clone(NULL, 1));
    nuage_sampler_accept(NULL, 1);
    nuage_sampler_reset(NULL);
    nuage_sampler_free(s);
}

/* ---- greedy -------------------------------------------------------------- */

static void test_greedy(void **st) {
    (void)st;
    nuage_sampler_params p = nuage_sampler_default_params();
    p.temperature = 0;
    nuage_sampler *s = nuage_sampler_new(&p, 10);
    float l[10] = {0, 1, 2, 5, 1, 5, 0, 5, -3, 4};
    for (int r = 0; r < 5; r++) assert_int_equal(nuage_sampler_sample(s, l), 3);
    float l2[10] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    assert_int_equal(nuage_sampler_sample(s, l2), 0);
    int32_t ids[10];
    float pr[10];
    assert_int_equal(nuage_sampler_candidates(s, l, ids, pr, 10), 1);
    assert_int_equal(ids[0], 3);
    assert_true(pr[0] == 1.0f);
    /* random rows with planted ties */
    for (int r = 0; r < 50; r++) {
        float x[10];
        rand_logits(x, 10, -4, 4);
        int a = (int)(trng_u() * 10), b = (int)(trng_u() * 10);
        x[a] = x[b] = 9.5f;
        assert_int_equal(nuage_sampler_sample(s, x), a < b ? a : b);
    }
    nuage_sampler_free(s);
}

static void test_top_k1_and_tiny_top_p_are_greedy(void **st) {
    (void)st;
    enum { N = 300 };
    nuage_sampler_params pk = nuage_sampler_default_params(), pp = pk;
    pk.top_k = 1;
    pk.temperature = 1.7f;
    pk.seed = 11;
    pp.top_p = 1e-6f;
    pp.temperature = 0.9f;
    pp.seed = 12;
    nuage_sampler *sk = nuage_sampler_new(&pk, N), *sp = nuage_sampler_new(&pp, N);
    float x[N];
    for (int r = 0; r < 200; r++) {
        rand_logits(x, N, -5, 5);
        if (r % 3 == 0) { /* ties at the top */
            int a = (int)(trng_u() * N), b = (int)(trng_u() * N);
            x[a] = x[b] = 7.0f;
        }
        int want = ref_argmax(x, N);
        assert_int_equal(nuage_sampler_sample(sk, x), want);
        assert_int_equal(nuage_sampler_sample(sp, x), want);
    }
    nuage_sampler_free(sk);
    nuage_sampler_free(sp);
}

/* ---- each transform against the reference -------------------------------- */

static void run_case(nuage_sampler_params p, int n, double lo, double hi, int draws) {
    float *x = malloc(sizeof(float) * n);
    double *ref = malloc(sizeof(double) * n);
    rand_logits(x, n, lo, hi);
    nuage_sampler *s = nuage_sampler_new(&p, n);
    assert_non_null(s);
    assert_int_equal(ref_dist(x, n, &p, NULL, ref), 0);
    check_candidates(s, x, n, ref);
    if (draws) check_empirical(s, x, n, ref, draws);
    nuage_sampler_free(s);
    free(x);
    free(ref);
}

static void test_temperature(void **st) {
    (void)st;
    nuage_sampler_params p = nuage_sampler_default_params();
    p.seed = 1;
    run_case(p, 12, -2, 2, 100000);
    p.temperature = 0.5f;
    run_case(p, 12, -2, 2, 100000);
    p.temperature = 2.5f;
    run_case(p, 12, -2, 2, 100000);
    p.temperature = 1e-3f; /* near-greedy, must not blow up */
    run_case(p, 12, -2, 2, 0);
    p.temperature = 1e6f; /* near-uniform */
    run_case(p, 12, -2, 2, 0);
    /* a wrong temperature must be caught by the empirical check: sampler
     * at T=1 vs reference at T=0.5 */
    {
        enum { N = 12 };
        float x[N];
        double ref[N];
        rand_logits(x, N, -2, 2);
        nuage_sampler_params q = nuage_sampler_default_params();
        q.temperature = 0.5f;
        ref_dist(x, N, &q, NULL, ref);
        nuage_sampler *s = nuage_sampler_new(NULL, N);
        long cnt[N] = {0};
        for (int d = 0; d < 100000; d++) cnt[nuage_sampler_sample(s, x)]++;
        double chi = 0;
        for (int i = 0; i < N; i++) chi += (cnt[i] - ref[i] * 1e5) * (cnt[i] - ref[i] * 1e5) / (ref[i] * 1e5);
        assert_true(chi > 11 + 8 * sqrt(22.0) + 15); /* the bound used above */
        nuage_sampler_free(s);
    }
}

static void test_top_k(void **st) {
    (void)st;
    nuage_sampler_params p = nuage_sampler_default_params();
    p.seed = 2;
    p.top_k = 5;
    run_case(p, 20, -3, 3, 100000);
    p.temperature = 1.3f;
    run_case(p, 20, -3, 3, 100000);
    p.top_k = 19;
    run_case(p, 20, -3, 3, 0);
    p.top_k = 20; /* == n: off */
    run_case(p, 20, -3, 3, 0);

    /* order of candidates: descending; ties at the cut go to lower ids */
    enum { N = 10 };
    float x[N] = {1, 3, 2, 3, 0, 2, 2, -1, 3, 2};
    p = nuage_sampler_default_params();
    p.top_k = 5;
    nuage_sampler *s = nuage_sampler_new(&p, N);
    int32_t ids[N];
    float pr[N];
    assert_int_equal(nuage_sampler_candidates(s, x, ids, pr, N), 5);
    const int32_t want[5] = {1, 3, 8, 2, 5};
    for (int j = 0; j < 5; j++) assert_int_equal(ids[j], want[j]);
    for (int j = 1; j < 5; j++) assert_true(pr[j] <= pr[j - 1]);
    nuage_sampler_free(s);
}

static void test_top_p(void **st) {
    (void)st;
    nuage_sampler_params p = nuage_sampler_default_params();
    p.seed = 3;
    p.top_p = 0.8f;
    run_case(p, 16, -3, 3, 100000);
    p.top_p = 0.35f;
    p.temperature = 0.8f;
    run_case(p, 16, -3, 3, 100000);
    p.top_p = 0.999f;
    run_case(p, 16, -3, 3, 0);
    p.top_k = 8; /* top-p inside top-k */
    p.top_p = 0.7f;
    run_case(p, 16, -3, 3, 100000);

    /* exact boundary: probabilities 0.5 0.25 0.125 0.125 -> top_p 0.75 keeps 2 */
    float x[4] = {(float)log(0.125), (float)log(0.5), (float)log(0.125), (float)log(0.25)};
    p = nuage_sampler_default_params();
    p.top_p = 0.7f;
    nuage_sampler *s = nuage_sampler_new(&p, 4);
    int32_t ids[4];
    float pr[4];
    assert_int_equal(nuage_sampler_candidates(s, x, ids, pr, 4), 2);
    int first = ids[0] == 1 ? 0 : 1; /* order unspecified without top-k */
    assert_int_equal(ids[first], 1);
    assert_int_equal(ids[1 - first], 3);
    assert_true(fabs(pr[first] - 2.0 / 3) < 1e-6);
    nuage_sampler_free(s);

    /* the nucleus on patterns that trouble partitioning: all equal (ties
     * go to lower ids), ascending, descending, few distinct values */
    enum { M = 5000 };
    float *y = malloc(sizeof(float) * M);
    double *ref = malloc(sizeof(double) * M);
    for (int pat = 0; pat < 4; pat++) {
        for (int i = 0; i < M; i++)
            y[i] = pat == 0 ? 1.0f : pat == 1 ? i * 1e-3f : pat == 2 ? -i * 1e-3f : (float)(i % 7);
        p = nuage_sampler_default_params();
        p.top_p = 0.3053f;
        s = nuage_sampler_new(&p, M);
        ref_dist(y, M, &p, NULL, ref);
        check_candidates(s, y, M, ref);
        if (pat == 0) {
            assert_int_equal(nuage_sampler_candidates(s, y, NULL, NULL, 0), 1527);
            for (int i = 0; i < M; i++) assert_true((ref[i] > 0) == (i < 1527));
        }
        nuage_sampler_free(s);
    }
    free(y);
    free(ref);
}

static void test_min_p(void **st) {
    (void)st;
    nuage_sampler_params p = nuage_sampler_default_params();
    p.seed = 4;
    p.min_p = 0.2f;
    run_case(p, 16, -3, 3, 100000);
    p.min_p = 0.05f;
    p.temperature = 1.5f; /* threshold is on post-temperature probabilities */
    run_case(p, 16, -3, 3, 100000);
    p.min_p = 1.0f; /* only the max */
    run_case(p, 16, -3, 3, 0);

    /* exact: probs 0.4 0.3 0.2 0.1, min_p 0.49 -> keeps >= 0.196: three */
    float x[4] = {(float)log(0.1), (float)log(0.4), (float)log(0.3), (float)log(0.2)};
    p = nuage_sampler_default_params();
    p.min_p = 0.49f;
    nuage_sampler *s = nuage_sampler_new(&p, 4);
    assert_int_equal(nuage_sampler_candidates(s, x, NULL, NULL, 0), 3);
    nuage_sampler_free(s);
}

static void test_combined(void **st) {
    (void)st;
    nuage_sampler_params p = nuage_sampler_default_params();
    p.seed = 5;
    p.top_k = 30;
    p.temperature = 0.7f;
    p.top_p = 0.9f;
    p.min_p = 0.03f;
    run_case(p, 64, -4, 4, 100000);
    for (int r = 0; r < 20; r++) { /* many random settings, exact check */
        p.top_k = (int)(trng_u() * 80) - 10;
        p.temperature = (float)(0.05 + 2 * trng_u());
        p.top_p = (float)(0.05 + 0.95 * trng_u());
        p.min_p = (float)(trng_u() < 0.5 ? 0 : 0.3 * trng_u());
        run_case(p, 64, -6, 6, 0);
    }
}

/* ---- penalties and bias -------------------------------------------------- */

static void test_penalties_exact(void **st) {
    (void)st;
    enum { N = 20 };
    const int32_t hist[] = {1, 2, 2, 5, 1, 2, 7, 9, 9, 2};
    const int nh = (int)(sizeof hist / sizeof hist[0]);
    float x[N];
    double ref[N];
    rand_logits(x, N, -3, 3);
    x[2] = 2.5f;  /* a positive and a negative penalized logit */
    x[9] = -1.5f;
    const int32_t windows[] = {-1, 0, 1, 4, 7, 10, 50};
    for (unsigned w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        nuage_sampler_params p = nuage_sampler_default_params();
        p.repetition_penalty = 1.3f;
        p.presence_penalty = 0.4f;
        p.frequency_penalty = 0.25f;
        p.penalty_last_n = windows[w];
        nuage_sampler *s = nuage_sampler_new(&p, N);
        for (int j = 0; j < nh; j++) nuage_sampler_accept(s, hist[j]);
        nuage_sampler_accept(s, -1); /* ignored */
        nuage_sampler_accept(s, N);  /* ignored */
        ref_hist h = {hist, nh};
        ref_dist(x, N, &p, &h, ref);
        check_candidates(s, x, N, ref);
        nuage_sampler_free(s);
    }
    /* only one kind of penalty at a time */
    for (int kind = 0; kind < 3; kind++) {
        nuage_sampler_params p = nuage_sampler_default_params();
        if (kind == 0) p.repetition_penalty = 0.7f; /* < 1 boosts */
        if (kind == 1) p.presence_penalty = -0.5f;
        if (kind == 2) p.frequency_penalty = 0.6f;
        nuage_sampler *s = nuage_sampler_new(&p, N);
        for (int j = 0; j < nh; j++) nuage_sampler_accept(s, hist[j]);
        ref_hist h = {hist, nh};
        ref_dist(x, N, &p, &h, ref);
        check_candidates(s, x, N, ref);
        nuage_sampler_free(s);
    }
}

static void test_penalties_flip_greedy(void **st) {
    (void)st;
    /* threshold checks with greedy: penalized token 0 vs a rival */
    struct {
        float l0, l1, rp, pres, freq;
        int n_acc, want;
    } cases[] = {
        {2.0f, 1.9f, 1, 0.05f, 0, 1, 0},  /* 1.95 > 1.9 */
        {2.0f, 1.9f, 1, 0.15f, 0, 1, 1},  /* 1.85 < 1.9 */
        {2.0f, 1.5f, 1, 0, 0.2f, 2, 0},   /* 2 - 0.4 = 1.6 */
        {2.0f, 1.5f, 1, 0, 0.2f, 3, 1},   /* 2 - 0.6 = 1.4 */
        {3.0f, 2.0f, 1.4f, 0, 0, 1, 0},   /* 3/1.4 = 2.14 */
        {3.0f, 2.0f, 1.6f, 0, 0, 1, 1},   /* 3/1.6 = 1.875 */
        {-1.0f, -1.9f, 1.8f, 0, 0, 1, 0}, /* -1.8 > -1.9 */
        {-1.0f, -1.9f, 2.0f, 0, 0, 1, 1}, /* -2.0 < -1.9 */
    };
    for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nuage_sampler_params p = nuage_sampler_default_params();
        p.temperature = 0;
        p.repetition_penalty = cases[c].rp;
        p.presence_penalty = cases[c].pres;
        p.frequency_penalty = cases[c].freq;
        nuage_sampler *s = nuage_sampler_new(&p, 4);
        float x[4] = {cases[c].l0, cases[c].l1, -10, -10};
        assert_int_equal(nuage_sampler_sample(s, x), 0);
        for (int j = 0; j < cases[c].n_acc; j++) nuage_sampler_accept(s, 0);
        assert_int_equal(nuage_sampler_sample(s, x), cases[c].want);
        nuage_sampler_reset(s); /* history forgotten */
        assert_int_equal(nuage_sampler_sample(s, x), 0);
        nuage_sampler_free(s);
    }
    /* window: token 0 leaves the window after 2 newer tokens */
    nuage_sampler_params p = nuage_sampler_default_params();
    p.temperature = 0;
    p.presence_penalty = 1.0f;
    p.penalty_last_n = 2;
    nuage_sampler *s = nuage_sampler_new(&p, 4);
    float x[4] = {2.0f, 1.5f, -10, -10};
    nuage_sampler_accept(s, 0);
    assert_int_equal(nuage_sampler_sample(s, x), 1);
    nuage_sampler_accept(s, 3);
    assert_int_equal(nuage_sampler_sample(s, x), 1);
    nuage_sampler_accept(s, 3);
    assert_int_equal(nuage_sampler_sample(s, x), 0);
    nuage_sampler_free(s);
}

static void test_logit_bias(void **st) {
    (void)st;
    enum { N = 12 };
    float x[N];
    double ref[N];
    rand_logits(x, N, -2, 2);
    x[4] = 6.0f; /* dominant token, to be banned */
    int32_t bt[4] = {4, 7, 2, 7};
    float bv[4] = {-100.0f, 1.5f, -0.7f, 0.5f}; /* 7 listed twice: +2 */
    nuage_sampler_params p = nuage_sampler_default_params();
    p.seed = 6;
    p.bias_tokens = bt;
    p.bias_values = bv;
    p.n_bias = 4;
    nuage_sampler *s = nuage_sampler_new(&p, N);
    /* the sampler copied the arrays */
    bt[0] = 0;
    bv[0] = 0;
    bt[0] = 4;
    bv[0] = -100.0f;
    ref_dist(x, N, &p, NULL, ref);
    assert_true(ref[4] == 0);
    check_candidates(s, x, N, ref);
    check_empirical(s, x, N, ref, 50000);
    nuage_sampler_free(s);

    p.temperature = 0; /* banned arg-max is not chosen greedily either */
    s = nuage_sampler_new(&p, N);
    int want = -1;
    float best = -INFINITY;
    for (int i = 0; i < N; i++) {
        float v = i == 4 ? -INFINITY : x[i] + (i == 7 ? 2.0f : i == 2 ? -0.7f : 0.0f);
        if (v > best) { best = v; want = i; }
    }
    assert_int_equal(nuage_sampler_sample(s, x), want);
    nuage_sampler_free(s);

    /* banning everything leaves nothing to choose */
    int32_t all[3] = {0, 1, 2};
    float ban[3] = {-100, -150, -INFINITY};
    p = nuage_sampler_default_params();
    p.bias_tokens = all;
    p.bias_values = ban;
    p.n_bias = 3;
    s = nuage_sampler_new(&p, 3);
    float y[3] = {1, 2, 3};
    assert_true(nuage_sampler_sample(s, y) < 0);
    nuage_sampler_free(s);
}

/* ---- random generator, reproducibility, clone, reset --------------------- */

static uint64_t ref_sm(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t ref_xo(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Constrained decoding: only masked-in tokens are ever drawn, greedy picks
 * the best allowed one, bias cannot revive a masked token, and a mask with
 * nothing allowed is an error. 70 tokens: masks span three words. */
static void test_mask(void **st) {
    (void)st;
    enum { N = 70 };
    float x[N];
    rand_logits(x, N, -2, 2);
    x[5] = 9.0f;                       /* the model's favourite, masked out */
    uint32_t mask[3] = {0, 0, 0};
    const int allowed[] = {3, 33, 64, 69};
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        mask[allowed[i] >> 5] |= 1u << (allowed[i] & 31);
    int32_t bt[1] = {5};
    float bv[1] = {50.0f};
    nuage_sampler_params p = nuage_sampler_default_params();
    p.seed = 11;
    p.bias_tokens = bt;
    p.bias_values = bv;
    p.n_bias = 1;
    p.presence_penalty = 0.5f;
    nuage_sampler *s = nuage_sampler_new(&p, N);
    int seen[N] = {0};
    for (int r = 0; r < 4000; r++) {
        int32_t t = nuage_sampler_sample_masked(s, x, mask);
        assert_true(t >= 0 && t < N);
        assert_true(mask[t >> 5] >> (t & 31) & 1u);
        seen[t]++;
        nuage_sampler_accept(s, t);
    }
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++) assert_true(seen[allowed[i]] > 0);
    nuage_sampler_free(s);

    p = nuage_sampler_default_params();
    p.temperature = 0;
    s = nuage_sampler_new(&p, N);
    int want = -1;
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (want < 0 || x[allowed[i]] > x[want]) want = allowed[i];
    assert_int_equal(nuage_sampler_sample_masked(s, x, mask), want);
    assert_int_equal(nuage_sampler_sample(s, x), 5);
    uint32_t none[3] = {0, 0, 0};
    assert_true(nuage_sampler_sample_masked(s, x, none) < 0);
    uint32_t all[3] = {UINT32_MAX, UINT32_MAX, UINT32_MAX};
    assert_int_equal(nuage_sampler_sample_masked(s, x, all), 5);
    nuage_sampler_free(s);
}

static void test_rng_is_xoshiro(void **st) {
    (void)st;
    uint64_t x0 = 0;
    assert_true(ref_sm(&x0) == 0xe220a8397b1dcdafULL); /* published value */
    /* 256 equal logits: the draw is floor(u * 256) = top 8 bits */
    enum { N = 256 };
    float x[N];
    for (int i = 0; i < N; i++) x[i] = 0.25f;
    const uint64_t seeds[3] = {0, 42, 0xdeadbeefcafef00dULL};
    for (int k = 0; k < 3; k++) {
        nuage_sampler_params p = nuage_sampler_default_params();
        p.seed = seeds[k];
        nuage_sampler *s = nuage_sampler_new(&p, N);
        uint64_t st4[4], sx = seeds[k];
        for (int i = 0; i < 4; i++) st4[i] = ref_sm(&sx);
        for (int d = 0; d < 1000; d++) {
            int want = (int)(ref_xo(st4) >> 56);
            assert_int_equal(nuage_sampler_sample(s, x), want);
        }
        nuage_sampler_free(s);
    }
}

static void test_reproducible(void **st) {
    (void)st;
    enum { N = 50, D = 1000 };
    float x[N];
    rand_logits(x, N, -1, 1);
    nuage_sampler_params p = nuage_sampler_default_params();
    p.seed = 777;
    p.top_p = 0.95f;
    p.frequency_penalty = 0.1f;
    nuage_sampler *a = nuage_sampler_new(&p, N), *b = nuage_sampler_new(&p, N);
    p.seed = 778;
    nuage_sampler *c = nuage_sampler_new(&p, N);
    int same_c = 0;
    for (int d = 0; d < D; d++) {
        int32_t ta = nuage_sampler_sample(a, x), tb = nuage_sampler_sample(b, x);
        int32_t tc = nuage_sampler_sample(c, x);
        assert_int_equal(ta, tb);
        same_c += ta == tc;
        nuage_sampler_accept(a, ta);
        nuage_sampler_accept(b, tb);
        nuage_sampler_accept(c, tc);
    }
    assert_true(same_c < D / 2); /* different seed, different sequence */
    nuage_sampler_free(a);
    nuage_sampler_free(b);
    nuage_sampler_free(c);
}

static void test_clone_and_reset(void **st) {
    (void)st;
    enum { N = 40, D = 300 };
    float x[N];
    rand_logits(x, N, -2, 2);
    nuage_sampler_params p = nuage_sampler_default_params();
    p.seed = 10;
    p.repetition_penalty = 1.5f;
    p.presence_penalty = 0.3f;
    p.penalty_last_n = 16;
    p.top_k = 20;
    const int32_t prompt[] = {3, 5, 5, 8, 1, 3, 3};
    nuage_sampler *s = nuage_sampler_new(&p, N);
    for (unsigned j = 0; j < sizeof prompt / sizeof *prompt; j++) nuage_sampler_accept(s, prompt[j]);
    (void)nuage_sampler_sample(s, x); /* advance the original's generator */

    nuage_sampler *c = nuage_sampler_clone(s, 99);
    assert_non_null(c);
    /* reference: a fresh sampler with seed 99 and the same history */
    nuage_sampler_params q = p;
    q.seed = 99;
    nuage_sampler *f = nuage_sampler_new(&q, N);
    for (unsigned j = 0; j < sizeof prompt / sizeof *prompt; j++) nuage_sampler_accept(f, prompt[j]);
    /* and the original continues as an untouched twin would */
    nuage_sampler *twin = nuage_sampler_new(&p, N);
    for (unsigned j = 0; j < sizeof prompt / sizeof *prompt; j++) nuage_sampler_accept(twin, prompt[j]);
    (void)nuage_sampler_sample(twin, x);

    int32_t seq_c[D];
    for (int d = 0; d < D; d++) {
        int32_t tc = nuage_sampler_sample(c, x), tf = nuage_sampler_sample(f, x);
        assert_int_equal(tc, tf);
        seq_c[d] = tc;
        nuage_sampler_accept(c, tc);
        nuage_sampler_accept(f, tf);
        int32_t ts = nuage_sampler_sample(s, x), tt = nuage_sampler_sample(twin, x);
        assert_int_equal(ts, tt);
        nuage_sampler_accept(s, ts);
        nuage_sampler_accept(twin, tt);
    }
    /* reset of the clone: fresh sampler with seed 99, no history */
    nuage_sampler_reset(c);
    nuage_sampler *g = nuage_sampler_new(&q, N);
    for (int d = 0; d < D; d++) {
        int32_t tc = nuage_sampler_sample(c, x), tg = nuage_sampler_sample(g, x);
        assert_int_equal(tc, tg);
        nuage_sampler_accept(c, tc);
        nuage_sampler_accept(g, tg);
    }
    /* reset then replaying the prompt reproduces the clone's first run */
    nuage_sampler_reset(c);
    for (unsigned j = 0; j < sizeof prompt / sizeof *prompt; j++) nuage_sampler_accept(c, prompt[j]);
    for (int d = 0; d < D; d++) {
        int32_t tc = nuage_sampler_sample(c, x);
        assert_int_equal(tc, seq_c[d]);
        nuage_sampler_accept(c, tc);
    }
    nuage_sampler_free(s);
    nuage_sampler_free(c);
    nuage_sampler_free(f);
    nuage_sampler_free(twin);
    nuage_sampler_free(g);
}

/* ---- NaN / inf ------------------------------------------------------------ */

static void test_nan_inf(void **st) {
    (void)st;
    enum { N = 16 };
    float x[N];
    rand_logits(x, N, -2, 2);
    x[0] = NAN;
    x[5] = NAN;
    x[9] = -INFINITY;
    nuage_sampler_params p = nuage_sampler_default_params();
    p.seed = 8;
    p.repetition_penalty = 1.2f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 1e30f;
    nuage_sampler *s = nuage_sampler_new(&p, N);
    nuage_sampler_accept(s, 0);
    nuage_sampler_accept(s, 9); /* penalizing -inf and NaN tokens */
    for (int d = 0; d < 2000; d++) {
        int32_t t = nuage_sampler_sample(s, x);
        assert_true(t >= 0 && t < N && t != 0 && t != 5 && t != 9);
    }
    nuage_sampler_free(s);

    /* greedy with NaN at the front */
    p = nuage_sampler_default_params();
    p.temperature = 0;
    s = nuage_sampler_new(&p, N);
    assert_int_equal(nuage_sampler_sample(s, x), ref_argmax(x, N));
    nuage_sampler_free(s);

    /* +inf: uniform over the +inf tokens */
    float y[N];
    rand_logits(y, N, -2, 2);
    y[3] = INFINITY;
    y[7] = INFINITY;
    y[1] = NAN;
    p = nuage_sampler_default_params();
    p.seed = 9;
    p.top_p = 0.4f; /* two tokens of 0.5 each: top-p 0.4 keeps the lower id */
    s = nuage_sampler_new(&p, N);
    int32_t ids[N];
    float pr[N];
    assert_int_equal(nuage_sampler_candidates(s, y, ids, pr, N), 1);
    assert_int_equal(ids[0], 3);
    nuage_sampler_free(s);
    p.top_p = 1.0f;
    s = nuage_sampler_new(&p, N);
    double ref[N] = {0};
    ref[3] = ref[7] = 0.5;
    check_candidates(s, y, N, ref);
    check_empirical(s, y, N, ref, 20000);
    nuage_sampler_free(s);
    p.temperature = 0;
    s = nuage_sampler_new(&p, N);
    assert_int_equal(nuage_sampler_sample(s, y), 3);
    nuage_sampler_free(s);

    /* extreme finite values */
    float z[4] = {FLT_MAX, -FLT_MAX, FLT_MAX, 0};
    p = nuage_sampler_default_params();
    p.temperature = 1e-30f;
    p.repetition_penalty = 0.5f; /* FLT_MAX / 0.5 overflows to +inf */
    s = nuage_sampler_new(&p, 4);
    nuage_sampler_accept(s, 2);
    for (int d = 0; d < 100; d++) assert_int_equal(nuage_sampler_sample(s, z), 2);
    nuage_sampler_free(s);
    p.repetition_penalty = 1.0f;
    p.temperature = 1e30f;
    s = nuage_sampler_new(&p, 4);
    for (int d = 0; d < 100; d++) {
        int32_t t = nuage_sampler_sample(s, z);
        assert_true(t >= 0 && t < 4);
    }
    nuage_sampler_free(s);

    /* nothing finite */
    float allnan[4] = {NAN, NAN, NAN, NAN}, allninf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    float one[4] = {-INFINITY, NAN, 0.5f, -INFINITY};
    for (int greedy = 0; greedy < 2; greedy++) {
        p = nuage_sampler_default_params();
        p.temperature = greedy ? 0.0f : 1.0f;
        p.top_k = 2;
        s = nuage_sampler_new(&p, 4);
        assert_true(nuage_sampler_sample(s, allnan) < 0);
        assert_true(nuage_sampler_sample(s, allninf) < 0);
        assert_int_equal(nuage_sampler_sample(s, one), 2);
        nuage_sampler_free(s);
    }
}

/* ---- log-probabilities --------------------------------------------------- */

static void test_logprobs(void **st) {
    (void)st;
    enum { N = 1000, K = 10 };
    float x[N];
    rand_logits(x, N, -20, 15);
    x[17] = x[400] = x[999] = 15.5f; /* tie at the top */
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < N; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < N; i++) sum += exp(x[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < N; i++) {
        float lp = nuage_logprobs(x, N, i, 0, NULL, NULL);
        assert_true(fabs(lp - (x[i] - lse)) < 1e-5 * fmax(1, fabs(x[i] - lse)));
    }
    int32_t ids[K + 3];
    float lps[K + 3];
    float lp5 = nuage_logprobs(x, N, 5, K, ids, lps);
    assert_true(fabs(lp5 - (x[5] - lse)) < 1e-5 * fmax(1, fabs(x[5] - lse)));
    double key[N];
    int idx[N];
    for (int i = 0; i < N; i++) { key[i] = x[i]; idx[i] = i; }
    g_sort_key = key;
    qsort(idx, N, sizeof(int), cmp_desc);
    for (int j = 0; j < K; j++) {
        assert_int_equal(ids[j], idx[j]);
        assert_true(fabs(lps[j] - (x[idx[j]] - lse)) < 1e-5);
    }
    assert_int_equal(ids[0], 17);
    assert_int_equal(ids[1], 400);
    assert_int_equal(ids[2], 999);
    assert_true(isnan(nuage_logprobs(x, N, -1, 3, ids, lps)));
    assert_true(isnan(nuage_logprobs(x, N, N, 0, NULL, NULL)));
    assert_int_equal(ids[0], 17);

    /* probabilities sum to 1 */
    double tot = 0;
    for (int i = 0; i < N; i++) tot += exp(nuage_logprobs(x, N, i, 0, NULL, NULL));
    assert_true(fabs(tot - 1) < 1e-4);

    /* k > n_vocab, NaN, -inf */
    float y[4] = {NAN, 1.0f, -INFINITY, 1.0f};
    assert_true(isinf(nuage_logprobs(y, 4, 0, 6, ids, lps)) && nuage_logprobs(y, 4, 0, 0, NULL, NULL) < 0);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 3);
    assert_true(fabs(lps[0] - log(0.5)) < 1e-6 && fabs(lps[1] - log(0.5)) < 1e-6);
    assert_true(isinf(lps[2]) && isinf(lps[3]));
    assert_true(ids[2] == 0 || ids[2] == 2);
    assert_int_equal(ids[4], -1);
    assert_int_equal(ids[5], -1);
    assert_true(isinf(lps[5]) && lps[5] < 0);

    /* +inf logits share the mass */
    float z[5] = {INFINITY, 3, INFINITY, INFINITY, NAN};
    assert_true(fabs(nuage_logprobs(z, 5, 2, 2, ids, lps) - (-log(3.0))) < 1e-6);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 2);
    assert_true(isinf(nuage_logprobs(z, 5, 1, 0, NULL, NULL)));

    /* nothing finite */
    float w[3] = {NAN, -INFINITY, NAN};
    float r = nuage_logprobs(w, 3, 1, 2, ids, lps);
    assert_true(isinf(r) && r < 0);
    assert_true(isinf(lps[0]) && isinf(lps[1]));

    /* huge range without overflow */
    float h[3] = {1e30f, 0.0f, -1e30f};
    assert_true(fabs(nuage_logprobs(h, 3, 0, 0, NULL, NULL)) < 1e-6);
    assert_true(nuage_logprobs(h, 3, 1, 0, NULL, NULL) < -1e29f);
    assert_true(isnan(nuage_logprobs(NULL, 3, 0, 0, NULL, NULL)));
}

/* ---- a real vocabulary size ---------------------------------------------- */

static void test_large_vocab(void **st) {
    (void)st;
    enum { N = 151936 };
    float *x = malloc(sizeof(float) * N);
    double *ref = malloc(sizeof(double) * N);
    /* roughly bell-shaped logits, as a model gives */
    for (int i = 0; i < N; i++) x[i] = (float)(3 * (trng_u() + trng_u() + trng_u() - 1.5));
    x[12345] = 14.0f;
    x[99] = 12.5f;
    nuage_sampler_params p = nuage_sampler_default_params();
    const struct {
        int top_k;
        float T, top_p, min_p;
    } cfg[] = {{0, 0, 1, 0}, {40, 0.8f, 1, 0}, {0, 1, 0.9f, 0}, {0, 1, 1, 0.05f},
               {0, 1, 1, 0}, {40, 0.7f, 0.95f, 0.05f}, {1000, 1.1f, 0.5f, 0}};
    for (unsigned c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        p.top_k = cfg[c].top_k;
        p.temperature = cfg[c].T;
        p.top_p = cfg[c].top_p;
        p.min_p = cfg[c].min_p;
        p.seed = c;
        nuage_sampler *s = nuage_sampler_new(&p, N);
        assert_non_null(s);
        ref_dist(x, N, &p, NULL, ref);
        check_candidates(s, x, N, ref);
        const int reps = 200;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int r = 0; r < reps; r++) {
            int32_t t = nuage_sampler_sample(s, x);
            assert_true(t >= 0 && t < N && ref[t] > 0);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / reps;
        print_message("n_vocab %d top_k %d T %.2f top_p %.2f min_p %.2f: %.1f us/sample\n", N,
                      p.top_k, p.temperature, p.top_p, p.min_p, us);
        nuage_sampler_free(s);
    }
    free(x);
    free(ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_params),
        cmocka_unit_test(test_params_validation),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_top_k1_and_tiny_top_p_are_greedy),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_combined),
        cmocka_unit_test(test_penalties_exact),
        cmocka_unit_test(test_penalties_flip_greedy),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_rng_is_xoshiro),
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_clone_and_reset),
        cmocka_unit_test(test_nan_inf),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_large_vocab),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
