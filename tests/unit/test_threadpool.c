/*
 * test_threadpool.c - the fork-join pool's contract under stress: in every
 * job each chunk index runs exactly once, with that job's argument and
 * chunk count, and the caller returns only after all of them finished.
 * Jobs alternate between very different chunk counts (a stale count from
 * the previous job must never let a thread claim a chunk that does not
 * exist), with 2, 3 and 4 threads on whatever cores the machine has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <string.h>

#include "engine/threadpool.h"
#include "test_util.h"

#define MAX_CHUNKS 64

typedef struct {
    int expect_n;
    _Atomic int hits[MAX_CHUNKS];
    _Atomic int bad_n;
    _Atomic int finished;
} job;

static void chunk_fn(void *arg, int ith, int nth) {
    job *j = arg;
    if (nth != j->expect_n || ith < 0 || ith >= nth) {
        atomic_fetch_add(&j->bad_n, 1);
        return;
    }
    atomic_fetch_add(&j->hits[ith], 1);
    /* a little work so chunks overlap */
    volatile int x = 0;
    for (int i = 0; i < (ith % 7) * 50; i++) x += i;
    atomic_fetch_add(&j->finished, 1);
}

static void test_every_chunk_once(void **state) {
    (void)state;
    static const int counts[] = {64, 2, 17, 1, 3, 64, 5, 33, 2, 8};
    for (int nt = 2; nt <= 4; nt++) {
        nuage_pool *p = nuage__pool_new(nt);
        assert_non_null(p);
        assert_int_equal(nuage__pool_size(p), nt);
        static job jobs[2];
        int errors = 0;
        for (int it = 0; it < 20000; it++) {
            job *j = &jobs[it & 1]; /* reuse memory: stale access would show */
            int n = counts[it % 10];
            memset(j, 0, sizeof *j);
            j->expect_n = n;
            nuage__pool_run_chunks(p, chunk_fn, j, n);
            /* everything finished before run returned */
            if (atomic_load(&j->finished) != n || atomic_load(&j->bad_n)) errors++;
            for (int c = 0; c < n; c++)
                if (atomic_load(&j->hits[c]) != 1) errors++;
        }
        print_message("%d threads: 20000 jobs, %d errors\n", nt, errors);
        assert_int_equal(errors, 0);
        nuage__pool_free(p);
    }
}

static void test_range(void **state) {
    (void)state;
    /* ranges tile [0, n) exactly, aligned, for many shapes */
    for (long n = 0; n < 300; n += 7)
        for (int nth = 1; nth <= 9; nth++)
            for (long align = 1; align <= 8; align *= 2) {
                long next = 0;
                for (int i = 0; i < nth; i++) {
                    long lo, hi;
                    nuage__pool_range(n, i, nth, align, &lo, &hi);
                    assert_int_equal(lo, next);
                    assert_true(hi >= lo);
                    assert_true(lo % align == 0 || lo == n);
                    next = hi;
                }
                assert_int_equal(next, n);
            }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_every_chunk_once),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
