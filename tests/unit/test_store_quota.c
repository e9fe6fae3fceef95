/*
 * test_store_quota.c - rate-limit windows shared through the PostgreSQL
 * store (store_pg_quota.c, quota_shared.c), run by tests/pg_run.sh.
 *
 * Two nuage_quota limiters on one database stand for two replicas: the
 * tenant's RPM / TPM must hold for both together (exactly: the sum of
 * what both admit equals the limit), a ticket taken on one can be settled
 * or cancelled on the other, many threads on both at once never admit
 * more than the limit, per-deployment limits are shared too. The same
 * traffic through two in-memory limiters (what each replica had before)
 * admits twice the limit, which is the failure this prevents. On SQLite
 * (no $NUAGE_TEST_PG_URL) the shared calls must refuse: one server keeps
 * its windows in memory. With the database stopped, admission fails
 * closed and recovers after the restart.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "platform/quota.h"
#include "test_store_util.h"

/* Two "replicas": limiters keeping their windows in t's database. */
static void two_replicas(tmp_db *t, nuage_quota **a, nuage_quota **b) {
    char err[256];
    *a = nuage_quota_new();
    *b = nuage_quota_new();
    assert_non_null(*a);
    assert_non_null(*b);
    int rc = nuage_quota_use_store(*a, t->path, 2, err, sizeof err);
    if (rc) print_message("use_store: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(nuage_quota_use_store(*b, t->path, 2, err, sizeof err), 0);
}

#define PG_ONLY(t)                                                          \
    do {                                                                    \
        if (!(t)->pg) {                                                     \
            print_message("skipped on SQLite (needs NUAGE_TEST_PG_URL)\n"); \
            tmp_db_cleanup(t);                                              \
            skip();                                                         \
        }                                                                   \
    } while (0)

static void test_sqlite_refuses_shared_windows(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    if (t.pg) { /* the PostgreSQL store accepts them: prepare twice is fine */
        nuage_store *s = tmp_db_open(&t);
        assert_int_equal(nuage_store_quota_prepare(s), 0);
        assert_int_equal(nuage_store_quota_prepare(s), 0);
        nuage_store_close(s);
        tmp_db_cleanup(&t);
        return;
    }
    nuage_store *s = tmp_db_open(&t);
    int64_t lim[2] = {100, 0}, ticket = 7, retry = 7, r, k;
    nuage_store_window w[2];
    assert_int_equal(nuage_store_quota_prepare(s), NUAGE_E_UNSUPPORTED);
    assert_int_equal(nuage_store_quota_admit(s, 1, "", lim, lim, 10, &ticket, w, &retry), NUAGE_E_UNSUPPORTED);
    assert_int_equal(ticket, 0);
    assert_int_equal(nuage_store_quota_usage(s, 1, "", &r, &k), NUAGE_E_UNSUPPORTED);
    nuage_store_close(s);
    nuage_quota *q = nuage_quota_new();
    char err[256];
    assert_int_not_equal(nuage_quota_use_store(q, t.path, 1, err, sizeof err), 0);
    assert_non_null(strstr(err, "PostgreSQL"));
    /* and the limiter still works in memory */
    assert_int_equal(nuage_quota_admit(q, 1, "", 0, 1, 1, 0, NULL, NULL), 0);
    assert_int_equal(nuage_quota_admit(q, 1, "", 0, 1, 1, 1, NULL, NULL), NUAGE_E_BUSY);
    nuage_quota_free(q);
    tmp_db_cleanup(&t);
}

static void test_rpm_holds_across_two_replicas(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    PG_ONLY(&t);
    nuage_quota *a, *b;
    two_replicas(&t, &a, &b);
    int admitted = 0, admitted_local = 0;
    nuage_quota *la = nuage_quota_new(), *lb = nuage_quota_new(); /* per-replica windows */
    for (int i = 0; i < 20; i++) {
        nuage_quota_info in;
        uint64_t tk = 0;
        int rc = nuage_quota_admit(i % 2 ? b : a, 1, "chat", 0, 10, 5, 0, &in, &tk);
        assert_true(rc == 0 || rc == NUAGE_E_BUSY);
        if (rc == 0) {
            admitted++;
            assert_true(tk > 0);
            assert_int_equal(in.limit_requests, 10);
            assert_int_equal(in.remaining_requests, 10 - admitted);
            assert_int_equal(in.retry_after_ms, 0);
        } else {
            assert_int_equal(tk, 0);
            assert_int_equal(in.remaining_requests, 0);
            assert_true(in.retry_after_ms > 0 && in.retry_after_ms <= NUAGE_QUOTA_WINDOW_MS);
            assert_true(in.reset_requests_ms > 0 && in.reset_requests_ms <= NUAGE_QUOTA_WINDOW_MS);
        }
        if (nuage_quota_admit(i % 2 ? lb : la, 1, "chat", 0, 10, 5, 0, NULL, NULL) == 0) admitted_local++;
    }
    assert_int_equal(admitted, 10);
    assert_int_equal(admitted_local, 20); /* what per-replica limits let through */
    int64_t r = 0, k = 0;
    assert_int_equal(nuage_quota_usage(b, 1, "chat", 0, &r, &k), 0);
    assert_int_equal(r, 10);
    assert_int_equal(k, 50);
    /* another tenant has its own window */
    assert_int_equal(nuage_quota_admit(a, 2, "chat", 0, 10, 5, 0, NULL, NULL), 0);
    nuage_quota_free(la);
    nuage_quota_free(lb);
    nuage_quota_free(a);
    nuage_quota_free(b);
    tmp_db_cleanup(&t);
}

static void test_tokens_settle_cancel_anywhere(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    PG_ONLY(&t);
    nuage_quota *a, *b;
    two_replicas(&t, &a, &b);
    uint64_t t1 = 0, t2 = 0, t3 = 0;
    nuage_quota_info in;
    assert_int_equal(nuage_quota_admit(a, 5, "chat", 1000, 0, 400, 0, &in, &t1), 0);
    assert_int_equal(in.remaining_tokens, 600);
    assert_int_equal(nuage_quota_admit(b, 5, "chat", 1000, 0, 400, 0, &in, &t2), 0);
    assert_int_equal(in.remaining_tokens, 200);
    assert_int_equal(nuage_quota_admit(a, 5, "chat", 1000, 0, 400, 0, &in, &t3), NUAGE_E_BUSY);
    assert_true(in.retry_after_ms > 0);
    /* larger than the limit: never fits */
    assert_int_equal(nuage_quota_admit(b, 5, "chat", 1000, 0, 1001, 0, &in, &t3), NUAGE_E_RANGE);
    assert_int_equal(in.retry_after_ms, -1);
    /* a's request used 100 of its 400: settled on b, 300 come back */
    nuage_quota_settle(b, t1, 100, 0);
    assert_int_equal(nuage_quota_admit(b, 5, "chat", 1000, 0, 400, 0, &in, &t3), 0);
    assert_int_equal(in.remaining_tokens, 100);
    int64_t r = 0, k = 0;
    assert_int_equal(nuage_quota_usage(a, 5, NULL, 0, &r, &k), 0);
    assert_int_equal(r, 3);
    assert_int_equal(k, 900);
    /* b's first one never ran: cancelled on a, request and tokens gone */
    nuage_quota_cancel(a, t2, 0);
    assert_int_equal(nuage_quota_usage(b, 5, NULL, 0, &r, &k), 0);
    assert_int_equal(r, 2);
    assert_int_equal(k, 500);
    nuage_quota_free(a);
    nuage_quota_free(b);
    tmp_db_cleanup(&t);
}

typedef struct {
    nuage_quota *q;
    int tries, admitted;
} worker;

static void *hammer(void *arg) {
    worker *w = arg;
    for (int i = 0; i < w->tries; i++)
        if (nuage_quota_admit(w->q, 9, "chat", 0, 60, 1, 0, NULL, NULL) == 0) w->admitted++;
    return NULL;
}

static void test_concurrent_replicas_never_exceed(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    PG_ONLY(&t);
    nuage_quota *a, *b;
    two_replicas(&t, &a, &b);
    enum { N = 8 };
    worker w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){.q = i % 2 ? b : a, .tries = 25};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        total += w[i].admitted;
    }
    assert_int_equal(total, 60); /* 200 tries, rpm 60 */
    nuage_quota_free(a);
    nuage_quota_free(b);
    tmp_db_cleanup(&t);
}

static int chat_limits(void *ud, const char *deployment, int64_t *tpm, int64_t *rpm) {
    (void)ud;
    if (strcmp(deployment, "chat")) return 1;
    *tpm = 0;
    *rpm = 3;
    return 0;
}

static void test_deployment_limits_shared(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    PG_ONLY(&t);
    nuage_quota *a, *b;
    two_replicas(&t, &a, &b);
    nuage_quota_set_lookup(a, chat_limits, NULL);
    nuage_quota_set_lookup(b, chat_limits, NULL);
    int on_chat = 0, on_other = 0;
    for (int i = 0; i < 6; i++) {
        if (nuage_quota_admit(i % 2 ? a : b, 3, "chat", 0, 0, 1, 0, NULL, NULL) == 0) on_chat++;
        if (nuage_quota_admit(i % 2 ? a : b, 3, "other", 0, 0, 1, 0, NULL, NULL) == 0) on_other++;
    }
    assert_int_equal(on_chat, 3);  /* the deployment's rpm 3, for both replicas */
    assert_int_equal(on_other, 6); /* no limits there */
    int64_t r = 0, k = 0;
    assert_int_equal(nuage_quota_usage_on(b, 3, "chat", 0, &r, &k), 0);
    assert_int_equal(r, 3);
    /* with the tenant's own rpm 4 as well: its window starts empty (the
     * requests above had no tenant limit and were not counted, as in
     * memory), so "other" fits, "chat" still does not */
    assert_int_equal(nuage_quota_admit(a, 3, "chat", 0, 4, 1, 0, NULL, NULL), NUAGE_E_BUSY);
    assert_int_equal(nuage_quota_admit(b, 3, "other", 0, 4, 1, 0, NULL, NULL), 0);
    nuage_quota_free(a);
    nuage_quota_free(b);
    tmp_db_cleanup(&t);
}

/* The database stops: admission fails closed (NUAGE_E_IO, nothing
 * admitted), then works again after the restart, with the window intact
 * for what was admitted before (the table is unlogged, but a clean stop
 * keeps it). */
static void test_database_down_fails_closed(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    PG_ONLY(&t);
    const char *dir = getenv("NUAGE_TEST_PG_DIR"), *tool = getenv("NUAGE_PG_TEMP");
    if (!dir || !tool) {
        print_message("needs NUAGE_TEST_PG_DIR and NUAGE_PG_TEMP (tests/pg_run.sh)\n");
        tmp_db_cleanup(&t);
        skip();
    }
    nuage_quota *a, *b;
    two_replicas(&t, &a, &b);
    assert_int_equal(nuage_quota_admit(a, 4, "chat", 0, 3, 1, 0, NULL, NULL), 0);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "bash %s halt %s", tool, dir);
    assert_int_equal(system(cmd), 0);
    uint64_t tk = 1;
    for (int i = 0; i < 4; i++) /* every connection of both */
        assert_int_equal(nuage_quota_admit(i % 2 ? a : b, 4, "chat", 0, 3, 1, 0, NULL, &tk), NUAGE_E_IO);
    assert_int_equal(tk, 0);
    /* an unlimited tenant never needs the database */
    assert_int_equal(nuage_quota_admit(a, 8, "chat", 0, 0, 1, 0, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "bash %s resume %s", tool, dir);
    assert_int_equal(system(cmd), 0);
    int ok = 0, rc = 0;
    for (int i = 0; i < 100 && ok < 2; i++) {
        rc = nuage_quota_admit(i % 2 ? a : b, 4, "chat", 0, 3, 1, 0, NULL, NULL);
        if (rc == 0) ok++;
        else if (rc == NUAGE_E_IO) usleep(100 * 1000); /* reconnecting */
        else break;
    }
    assert_int_equal(ok, 2); /* 1 before + 2 = rpm 3 */
    assert_int_equal(nuage_quota_admit(a, 4, "chat", 0, 3, 1, 0, NULL, NULL), NUAGE_E_BUSY);
    assert_int_equal(nuage_quota_admit(b, 4, "chat", 0, 3, 1, 0, NULL, NULL), NUAGE_E_BUSY);
    nuage_quota_free(a);
    nuage_quota_free(b);
    tmp_db_cleanup(&t);
}

/* Leased slices (quota_slices.c): three replicas with slices of 5 % of
 * rpm 200 (10 requests), 12 threads. Within one window nothing beyond the
 * limit is admitted, at most the unused slices short of it; after a lease
 * ends its unused part is given back (the database's window equals what
 * was admitted) and can be admitted elsewhere; cancel and settle give
 * back locally. */
typedef struct {
    nuage_quota *q;
    int tries, admitted;
} sworker;

static void *shammer(void *arg) {
    sworker *w = arg;
    for (int i = 0; i < w->tries; i++) {
        nuage_quota_info in;
        int rc = nuage_quota_admit(w->q, 11, "chat", 0, 200, 1, 0, &in, NULL);
        if (rc == 0) {
            w->admitted++;
        } else {
            assert_int_equal(rc, NUAGE_E_BUSY);
            assert_true(in.retry_after_ms > 0 && in.retry_after_ms <= 300);
            if (in.retry_after_ms <= 25) { /* a lease in flight: not a try */
                usleep(2000);
                i--;
            }
        }
    }
    return NULL;
}

static void sliced_replicas(tmp_db *t, nuage_quota **q, int n, double fraction, int lease_ms) {
    char err[256];
    for (int i = 0; i < n; i++) {
        q[i] = nuage_quota_new();
        assert_non_null(q[i]);
        int rc = nuage_quota_use_store_sliced(q[i], t->path, 2, fraction, lease_ms, err, sizeof err);
        if (rc) print_message("use_store_sliced: %s\n", err);
        assert_int_equal(rc, 0);
    }
}

static void test_sliced_replicas_bound(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    PG_ONLY(&t);
    nuage_quota *q[3];
    sliced_replicas(&t, q, 3, 0.05, 300);
    enum { N = 12 };
    sworker w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        w[i] = (sworker){.q = q[i % 3], .tries = 40};
        assert_int_equal(pthread_create(&th[i], NULL, shammer, &w[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        total += w[i].admitted;
    }
    print_message("sliced: %d of 480 tries admitted at rpm 200\n", total);
    assert_true(total <= 200);
    assert_true(total >= 200 - 3 * 10);
    /* the leases end: their unused part goes back to the shared window */
    usleep(700 * 1000);
    int64_t r = 0, k = 0;
    assert_int_equal(nuage_quota_usage(q[0], 11, "", 0, &r, &k), 0);
    assert_int_equal(r, total);
    /* and the rest of the limit is admitted, by one replica alone */
    int more = 0;
    for (int i = 0; i < 300; i++) {
        nuage_quota_info in;
        int rc = nuage_quota_admit(q[1], 11, "chat", 0, 200, 1, 0, &in, NULL);
        if (rc == 0) more++;
        else if (in.retry_after_ms <= 25) usleep(2000), i--;
    }
    assert_int_equal(total + more, 200);

    /* tokens: a cancelled request and a settled one give back at once */
    uint64_t t1 = 0, t2 = 0;
    nuage_quota_info in;
    assert_int_equal(nuage_quota_admit(q[2], 12, "chat", 1000, 0, 400, 0, &in, &t1), 0);
    assert_int_equal(nuage_quota_admit(q[2], 12, "chat", 1000, 0, 400, 0, &in, &t2), 0);
    assert_int_equal(nuage_quota_admit(q[2], 12, "chat", 1000, 0, 400, 0, &in, NULL), NUAGE_E_BUSY);
    nuage_quota_cancel(q[2], t1, 0);
    nuage_quota_settle(q[2], t2, 100, 0);
    assert_int_equal(nuage_quota_admit(q[2], 12, "chat", 1000, 0, 400, 0, &in, NULL), 0);
    assert_int_equal(nuage_quota_admit(q[2], 12, "chat", 1000, 0, 400, 0, &in, NULL), 0);
    assert_int_equal(nuage_quota_admit(q[2], 12, "chat", 1000, 0, 400, 0, &in, NULL), NUAGE_E_BUSY);
    usleep(700 * 1000);
    assert_int_equal(nuage_quota_usage(q[0], 12, "", 0, &r, &k), 0);
    assert_int_equal(r, 3);
    assert_int_equal(k, 900);
    for (int i = 0; i < 3; i++) nuage_quota_free(q[i]);
    tmp_db_cleanup(&t);
}

/* A small limit leases one request at a time: rpm 6 over three sliced
 * replicas in turn is exact, headers counting down across them. */
static void test_sliced_small_limit_exact(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    PG_ONLY(&t);
    nuage_quota *q[3];
    sliced_replicas(&t, q, 3, 0.005, 1000);
    int admitted = 0;
    for (int i = 0; i < 18; i++) {
        nuage_quota_info in;
        int rc = nuage_quota_admit(q[i % 3], 13, "chat", 0, 6, 5, 0, &in, NULL);
        if (rc == 0) {
            admitted++;
            assert_int_equal(in.remaining_requests, 6 - admitted);
        } else {
            assert_int_equal(rc, NUAGE_E_BUSY);
            assert_int_equal(in.remaining_requests, 0);
        }
    }
    assert_int_equal(admitted, 6);
    for (int i = 0; i < 3; i++) nuage_quota_free(q[i]);
    tmp_db_cleanup(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite_refuses_shared_windows),
        cmocka_unit_test(test_rpm_holds_across_two_replicas),
        cmocka_unit_test(test_tokens_settle_cancel_anywhere),
        cmocka_unit_test(test_sliced_replicas_bound),
        cmocka_unit_test(test_sliced_small_limit_exact),
        cmocka_unit_test(test_concurrent_replicas_never_exceed),
        cmocka_unit_test(test_deployment_limits_shared),
        cmocka_unit_test(test_database_down_fails_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
