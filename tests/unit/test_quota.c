/*
 * test_quota.c - the sliding-window rate limiter (quota.h).
 *
 * Times are passed explicitly, so every case is exact. Retry-after values
 * are checked by behaviour as well as by value: refused one millisecond
 * before the advertised time, admitted at it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "nuage/nuage.h"
#include "platform/quota.h"
#include "test_util.h"

#define W NUAGE_QUOTA_WINDOW_MS

static void test_unlimited(void **state) {
    (void)state;
    nuage_quota *q = nuage_quota_new();
    assert_non_null(q);
    nuage_quota_info info;
    uint64_t ticket = 99;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(nuage_quota_admit(q, 1, "d", 0, 0, 1000000, i, &info, &ticket), 0);
    assert_int_equal(ticket, 0);
    assert_int_equal(info.limit_requests, 0);
    assert_int_equal(info.remaining_requests, -1);
    assert_int_equal(info.remaining_tokens, -1);
    assert_int_equal(info.retry_after_ms, 0);
    nuage_quota_settle(q, ticket, 5, 10);  /* no-op */
    /* Bad arguments. */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 0, 0, -1, 0, &info, &ticket), NUAGE_E_INVAL);
    assert_int_equal(nuage_quota_admit(q, 1, "d", -5, 0, 1, 0, &info, &ticket), NUAGE_E_INVAL);
    assert_int_equal(nuage_quota_admit(NULL, 1, "d", 1, 1, 1, 0, &info, &ticket), NUAGE_E_INVAL);
    nuage_quota_free(q);
}

static void test_rpm(void **state) {
    (void)state;
    nuage_quota *q = nuage_quota_new();
    nuage_quota_info info;
    uint64_t tk;
    /* 3 requests per minute, admitted at t = 0, 1000, 2000. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nuage_quota_admit(q, 1, "d", 0, 3, 10, i * 1000, &info, &tk), 0);
        assert_true(tk != 0);
        assert_int_equal(info.limit_requests, 3);
        assert_int_equal(info.remaining_requests, 2 - i);
        assert_int_equal(info.reset_requests_ms, W);  /* newest entry leaves at +60 s */
    }
    /* The 4th at t = 3000: the oldest (t = 0) leaves the window at 60000. */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 0, 3, 10, 3000, &info, &tk), NUAGE_E_BUSY);
    assert_int_equal(tk, 0);
    assert_int_equal(info.retry_after_ms, W - 3000);
    assert_int_equal(info.remaining_requests, 0);
    assert_int_equal(info.reset_requests_ms, 2000 + W - 3000);
    /* Refused just before, admitted at the advertised time. */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 0, 3, 10, W - 1, &info, &tk), NUAGE_E_BUSY);
    assert_int_equal(info.retry_after_ms, 1);
    assert_int_equal(nuage_quota_admit(q, 1, "d", 0, 3, 10, W, &info, &tk), 0);
    assert_int_equal(info.remaining_requests, 0);
    int64_t r, t;
    assert_int_equal(nuage_quota_usage(q, 1, "d", W, &r, &t), 0);
    assert_int_equal(r, 3);
    assert_int_equal(t, 30);
    /* Long after, the window is empty again. */
    assert_int_equal(nuage_quota_usage(q, 1, "d", 10 * W, &r, &t), 0);
    assert_int_equal(r, 0);
    assert_int_equal(t, 0);
    nuage_quota_free(q);
}

static void test_tpm_and_retry(void **state) {
    (void)state;
    nuage_quota *q = nuage_quota_new();
    nuage_quota_info info;
    uint64_t tk;
    /* 1000 tokens per minute: 400 at 0, 400 at 20 s, 200 at 40 s. */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 0, 400, 0, &info, &tk), 0);
    assert_int_equal(info.remaining_tokens, 600);
    assert_int_equal(info.remaining_requests, -1);
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 0, 400, 20000, &info, &tk), 0);
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 0, 200, 40000, &info, &tk), 0);
    assert_int_equal(info.remaining_tokens, 0);
    /* 500 more at 50 s: the first entry leaving frees 400 (not enough),
     * the second frees 800 at 20 s + 60 s = 80 s. */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 0, 500, 50000, &info, &tk), NUAGE_E_BUSY);
    assert_int_equal(info.retry_after_ms, 80000 - 50000);
    assert_int_equal(info.limit_tokens, 1000);
    assert_int_equal(info.reset_tokens_ms, 40000 + W - 50000);
    /* A small one fits as soon as the first entry leaves. */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 0, 300, 50000, &info, &tk), NUAGE_E_BUSY);
    assert_int_equal(info.retry_after_ms, W - 50000);
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 0, 500, 79999, &info, &tk), NUAGE_E_BUSY);
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 0, 500, 80000, &info, &tk), 0);
    assert_int_equal(info.remaining_tokens, 1000 - 200 - 500);
    /* Larger than the limit: never fits. */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 0, 1001, 10 * W, &info, &tk),
                     NUAGE_E_RANGE);
    assert_int_equal(info.retry_after_ms, -1);
    assert_int_equal(tk, 0);
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 0, 1000, 10 * W, &info, &tk), 0);
    nuage_quota_free(q);
}

static void test_both_limits(void **state) {
    (void)state;
    nuage_quota *q = nuage_quota_new();
    nuage_quota_info info;
    uint64_t tk;
    /* rpm 2, tpm 100: the request limit binds first here. */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 100, 2, 10, 0, &info, &tk), 0);
    assert_int_equal(nuage_quota_admit(q, 1, "d", 100, 2, 10, 5000, &info, &tk), 0);
    assert_int_equal(nuage_quota_admit(q, 1, "d", 100, 2, 10, 6000, &info, &tk), NUAGE_E_BUSY);
    assert_int_equal(info.retry_after_ms, W - 6000);
    assert_int_equal(info.remaining_tokens, 80);
    /* Both bind: 95 tokens need both earlier entries gone (at 65 s). */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 100, 2, 95, 6000, &info, &tk), NUAGE_E_BUSY);
    assert_int_equal(info.retry_after_ms, 5000 + W - 6000);
    nuage_quota_free(q);
}

static void test_settle_and_cancel(void **state) {
    (void)state;
    nuage_quota *q = nuage_quota_new();
    nuage_quota_info info;
    uint64_t a, b, c;
    int64_t r, t;
    /* Reserve 800 of 1000; 300 more does not fit until 800 is settled to 100. */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 10, 800, 0, &info, &a), 0);
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 10, 300, 100, &info, &b), NUAGE_E_BUSY);
    nuage_quota_settle(q, a, 100, 200);
    assert_int_equal(nuage_quota_usage(q, 1, "d", 200, &r, &t), 0);
    assert_int_equal(r, 1);
    assert_int_equal(t, 100);
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 10, 300, 300, &info, &b), 0);
    assert_int_equal(info.remaining_tokens, 600);
    /* Settling twice does nothing; an unknown ticket does nothing. */
    nuage_quota_settle(q, a, 0, 400);
    nuage_quota_settle(q, 12345, 0, 400);
    nuage_quota_settle(q, a ^ ((uint64_t)1 << 45), 0, 400);
    assert_int_equal(nuage_quota_usage(q, 1, "d", 400, &r, &t), 0);
    assert_int_equal(t, 400);
    /* Settling above the reservation counts the actual use. */
    nuage_quota_settle(q, b, 350, 500);
    assert_int_equal(nuage_quota_usage(q, 1, "d", 500, &r, &t), 0);
    assert_int_equal(t, 450);
    /* Cancel: request and tokens both go back. */
    assert_int_equal(nuage_quota_admit(q, 1, "d", 1000, 10, 500, 600, &info, &c), 0);
    assert_int_equal(info.remaining_requests, 7);
    nuage_quota_cancel(q, c, 700);
    assert_int_equal(nuage_quota_usage(q, 1, "d", 700, &r, &t), 0);
    assert_int_equal(r, 2);
    assert_int_equal(t, 450);
    nuage_quota_cancel(q, c, 700);  /* twice: no-op */
    nuage_quota_settle(q, c, 999, 700);  /* after cancel: no-op */
    assert_int_equal(nuage_quota_usage(q, 1, "d", 700, &r, &t), 0);
    assert_int_equal(r, 2);
    assert_int_equal(t, 450);
    /* Settling an entry that already left the window changes nothing. */
    uint64_t d;
    assert_int_equal(nuage_quota_admit(q, 2, "d", 1000, 0, 900, 0, &info, &d), 0);
    nuage_quota_settle(q, d, 0, W + 1);
    assert_int_equal(nuage_quota_usage(q, 2, "d", W + 1, &r, &t), 0);
    assert_int_equal(r, 0);
    assert_int_equal(t, 0);
    nuage_quota_free(q);
}

/* Issue 12, item 10: a tenant's limits count its requests to every
 * deployment (rpm 60 through two deployments gave 120 a minute); tenants
 * stay separate. */
static void test_tenant_limits_span_deployments(void **state) {
    (void)state;
    nuage_quota *q = nuage_quota_new();
    nuage_quota_info info;
    uint64_t tk;
    assert_int_equal(nuage_quota_admit(q, 1, "a", 0, 1, 1, 0, &info, &tk), 0);
    assert_int_equal(nuage_quota_admit(q, 1, "a", 0, 1, 1, 1, &info, &tk), NUAGE_E_BUSY);
    assert_int_equal(nuage_quota_admit(q, 1, "b", 0, 1, 1, 1, &info, &tk), NUAGE_E_BUSY);
    assert_int_equal(nuage_quota_admit(q, 1, NULL, 0, 1, 1, 1, &info, &tk), NUAGE_E_BUSY);
    assert_int_equal(nuage_quota_admit(q, 2, "a", 0, 1, 1, 1, &info, &tk), 0);
    assert_int_equal(nuage_quota_admit(q, 2, "b", 0, 1, 1, 1, &info, &tk), NUAGE_E_BUSY);
    /* rpm 60 through two deployments: 60 in the minute, not 120. */
    int admitted = 0;
    for (int i = 0; i < 120; i++)
        admitted += nuage_quota_admit(q, 3, i % 2 ? "chat-a" : "chat-b", 0, 60, 1, 1000 + i * 100, &info, &tk) == 0;
    assert_int_equal(admitted, 60);
    /* Tokens too: 1000 TPM shared by three deployments. */
    assert_int_equal(nuage_quota_admit(q, 4, "x", 1000, 0, 400, 0, &info, &tk), 0);
    assert_int_equal(nuage_quota_admit(q, 4, "y", 1000, 0, 400, 0, &info, &tk), 0);
    assert_int_equal(nuage_quota_admit(q, 4, "z", 1000, 0, 400, 0, &info, &tk), NUAGE_E_BUSY);
    assert_true(info.remaining_tokens == 200);
    int64_t r, t;
    assert_int_equal(nuage_quota_usage(q, 4, "z", 1, &r, &t), 0);
    assert_true(r == 2 && t == 800);
    /* Many tenants (hash table growth); each keeps its own count. */
    for (int i = 0; i < 500; i++) {
        char d[16];
        snprintf(d, sizeof d, "dep%d", i);
        assert_int_equal(nuage_quota_admit(q, 100 + i, d, 0, 2, 1, 10, &info, &tk), 0);
    }
    for (int i = 0; i < 500; i++) {
        assert_int_equal(nuage_quota_usage(q, 100 + i, NULL, 20, &r, NULL), 0);
        assert_int_equal(r, 1);
    }
    nuage_quota_free(q);
}

/* Deployment "small" allows each tenant 2 requests and 100 tokens a
 * minute; "big" has no limits of its own. */
static int dep_limits(void *ud, const char *deployment, int64_t *tpm, int64_t *rpm) {
    (*(int *)ud)++;
    if (strcmp(deployment, "small")) return -1;
    *tpm = 100;
    *rpm = 2;
    return 0;
}

/* The optional per-deployment limits come on top of the tenant's. */
static void test_deployment_limits(void **state) {
    (void)state;
    nuage_quota *q = nuage_quota_new();
    int calls = 0;
    nuage_quota_set_lookup(q, dep_limits, &calls);
    nuage_quota_info info;
    uint64_t a, b, c;
    /* A tenant with no limits of its own is still held to "small"'s. */
    assert_int_equal(nuage_quota_admit(q, 1, "small", 0, 0, 10, 0, &info, &a), 0);
    assert_true(a != 0);
    assert_true(info.limit_requests == 2 && info.remaining_requests == 1);
    assert_int_equal(nuage_quota_admit(q, 1, "small", 0, 0, 10, 1, &info, &b), 0);
    assert_int_equal(nuage_quota_admit(q, 1, "small", 0, 0, 10, 2, &info, &c), NUAGE_E_BUSY);
    assert_true(info.retry_after_ms == W - 2);
    assert_int_equal(nuage_quota_admit(q, 1, "big", 0, 0, 10, 2, &info, &c), 0);
    assert_true(c == 0); /* nothing limits it: nothing logged */
    assert_int_equal(nuage_quota_admit(q, 1, "small", 0, 0, 101, 2, &info, &c), NUAGE_E_RANGE);
    assert_true(info.retry_after_ms == -1);
    /* Another tenant has its own window on "small". */
    assert_int_equal(nuage_quota_admit(q, 2, "small", 0, 0, 10, 2, &info, &c), 0);
    /* Cancelling a request gives its place back in the deployment's window. */
    nuage_quota_cancel(q, b, 3);
    int64_t r, t;
    assert_int_equal(nuage_quota_usage_on(q, 1, "small", 3, &r, &t), 0);
    assert_true(r == 1 && t == 10);
    /* Both windows: tenant rpm 3 (all deployments) and small's rpm 2. */
    nuage_quota_free(q);
    q = nuage_quota_new();
    nuage_quota_set_lookup(q, dep_limits, &calls);
    assert_int_equal(nuage_quota_admit(q, 5, "small", 1000, 3, 60, 0, &info, &a), 0);
    /* tighter of the two: small's 100 tokens (40 left), tenant's... */
    assert_true(info.limit_tokens == 100 && info.remaining_tokens == 40);
    assert_true(info.limit_requests == 2 && info.remaining_requests == 1);
    /* Settling updates both windows: 60 reserved, 20 used. */
    nuage_quota_settle(q, a, 20, 1);
    assert_int_equal(nuage_quota_usage(q, 5, NULL, 1, &r, &t), 0);
    assert_true(r == 1 && t == 20);
    assert_int_equal(nuage_quota_usage_on(q, 5, "small", 1, &r, &t), 0);
    assert_true(r == 1 && t == 20);
    assert_int_equal(nuage_quota_admit(q, 5, "small", 1000, 3, 60, 2, &info, &b), 0);
    assert_int_equal(nuage_quota_admit(q, 5, "small", 1000, 3, 1, 3, &info, &c), NUAGE_E_BUSY); /* small's rpm */
    assert_int_equal(nuage_quota_admit(q, 5, "big", 1000, 3, 1, 3, &info, &c), 0);            /* tenant's 3rd */
    assert_int_equal(nuage_quota_admit(q, 5, "big", 1000, 3, 1, 4, &info, &c), NUAGE_E_BUSY);  /* tenant's rpm */
    assert_int_equal(nuage_quota_usage_on(q, 5, "big", 4, &r, &t), 0);
    assert_true(r == 0);
    assert_int_equal(nuage_quota_usage_on(q, 5, NULL, 4, &r, &t), NUAGE_E_INVAL);
    assert_true(calls > 0);
    nuage_quota_free(q);
}

/* A long run with random traffic: the limiter's count always equals a
 * brute-force count over the admitted requests of the last 60 s. */
static void test_matches_brute_force(void **state) {
    (void)state;
    nuage_quota *q = nuage_quota_new();
    enum { N = 3000 };
    static int64_t when[N], toks[N];
    int n = 0;
    uint64_t rng = 12345;
    int64_t now = 0;
    const int64_t tpm = 5000, rpm = 40;
    for (int i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        now += (int64_t)(rng >> 33) % 3000;
        int64_t tokens = 1 + (int64_t)(rng >> 40) % 400;
        int64_t used_r = 0, used_t = 0;
        for (int k = 0; k < n; k++)
            if (when[k] > now - W) {
                used_r++;
                used_t += toks[k];
            }
        bool fits = used_r + 1 <= rpm && used_t + tokens <= tpm;
        nuage_quota_info info;
        uint64_t tk;
        int rc = nuage_quota_admit(q, 1, "d", tpm, rpm, tokens, now, &info, &tk);
        assert_int_equal(rc, fits ? 0 : NUAGE_E_BUSY);
        if (rc == 0) {
            when[n] = now;
            toks[n++] = tokens;
            assert_int_equal(info.remaining_requests, rpm - used_r - 1);
            assert_int_equal(info.remaining_tokens, tpm - used_t - tokens);
        } else {
            assert_true(info.retry_after_ms > 0 && info.retry_after_ms <= W);
        }
    }
    assert_true(n > 100 && n < N);  /* both outcomes happened */
    nuage_quota_free(q);
}

typedef struct {
    nuage_quota *q;
    int admitted;
} thread_job;

static void *admit_thread(void *arg) {
    thread_job *j = arg;
    for (int i = 0; i < 1000; i++) {
        uint64_t tk;
        if (nuage_quota_admit(j->q, 1, "d", 0, 2000, 1, 1000, NULL, &tk) == 0) {
            j->admitted++;
            nuage_quota_settle(j->q, tk, 1, 1000);
        }
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    nuage_quota *q = nuage_quota_new();
    pthread_t th[4];
    thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){q, 0};
        assert_int_equal(pthread_create(&th[i], NULL, admit_thread, &jobs[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += jobs[i].admitted;
    }
    assert_int_equal(total, 2000);  /* exactly the limit, never more */
    nuage_quota_free(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_rpm),
        cmocka_unit_test(test_tpm_and_retry),
        cmocka_unit_test(test_both_limits),
        cmocka_unit_test(test_settle_and_cancel),
        cmocka_unit_test(test_tenant_limits_span_deployments),
        cmocka_unit_test(test_deployment_limits),
        cmocka_unit_test(test_matches_brute_force),
        cmocka_unit_test(test_threads),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
