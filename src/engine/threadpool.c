/*
 * threadpool.c - spin-then-sleep fork-join pool (see threadpool.h).
 *
 * A job is published by bumping `gen` (seq_cst) after storing fn/arg and
 * setting `pending` to the number of workers. Workers spin on `gen` for a
 * while, then announce themselves in `n_sleeping` and sleep on `cv`. The
 * publisher reads `n_sleeping` after bumping `gen` and broadcasts under
 * the mutex if anyone may sleep; a worker re-checks `gen` under the same
 * mutex before waiting, so no wake-up is lost (both sides use seq_cst, so
 * at least one of them sees the other's write).
 *
 * Lock order: only `mu` exists.
 */
#include "engine/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define NUAGE_POOL_SPINS 200000

struct nuage_worker {
    struct nuage_pool *pool;
    int ith;
    pthread_t tid;
};

struct nuage_pool {
    int n;
    struct nuage_worker *workers; /* (n - 1) */
    _Atomic unsigned long gen;
    _Atomic int pending;
    _Atomic int n_sleeping;
    _Atomic bool stop;
    nuage_pool_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static inline void nuage__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *nuage__worker_main(void *p) {
    struct nuage_worker *w = p;
    struct nuage_pool *pool = w->pool;
    unsigned long seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->stop)) {
            if (++spins < NUAGE_POOL_SPINS) {
                nuage__cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv, &pool->mu);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = atomic_load(&pool->gen);
        pool->fn(pool->arg, w->ith, pool->n);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
}

nuage_pool *nuage__pool_new(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (n > 256) n = 256;
    struct nuage_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n;
    if (pthread_mutex_init(&p->mu, NULL)) goto fail_mu;
    if (pthread_cond_init(&p->cv, NULL)) goto fail_cv;
    if (n > 1) {
        p->workers = calloc((size_t)n - 1, sizeof *p->workers);
        if (!p->workers) goto fail_workers;
    }
    int started = 0;
    for (; started < n - 1; started++) {
        p->workers[started].pool = p;
        p->workers[started].ith = started + 1;
        if (pthread_create(&p->workers[started].tid, NULL, nuage__worker_main, &p->workers[started]))
            goto fail_threads;
    }
    return p;

fail_threads:
    atomic_store(&p->stop, true);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++) pthread_join(p->workers[i].tid, NULL);
    free(p->workers);
fail_workers:
    pthread_cond_destroy(&p->cv);
fail_cv:
    pthread_mutex_destroy(&p->mu);
fail_mu:
    free(p);
    return NULL;
}

void nuage__pool_free(nuage_pool *p) {
    if (!p) return;
    atomic_store(&p->stop, true);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n - 1; i++) pthread_join(p->workers[i].tid, NULL);
    free(p->workers);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int nuage__pool_size(const nuage_pool *p) { return p->n; }

void nuage__pool_run(nuage_pool *p, nuage_pool_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, p->n);
    long spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        if (++spins < NUAGE_POOL_SPINS) nuage__cpu_relax();
        else sched_yield();
    }
}

void nuage__pool_range(long n, int ith, int nth, long align, long *lo, long *hi) {
    if (align < 1) align = 1;
    long units = (n + align - 1) / align;
    long per = units / nth, extra = units % nth;
    long u0 = ith * per + (ith < extra ? ith : extra);
    long u1 = u0 + per + (ith < extra ? 1 : 0);
    *lo = u0 * align;
    *hi = u1 * align;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}
