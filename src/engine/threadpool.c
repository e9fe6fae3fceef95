/*
 * threadpool.c - fork-join pool with chunk stealing (see threadpool.h).
 *
 * A job is split into n_chunks chunks. The pool state is one 64-bit word:
 * the job's generation in the high 32 bits, its chunk count in the next 16
 * and the next unclaimed chunk in the low 16. Any thread, the caller
 * included, claims a chunk with a CAS on that word (count and generation
 * come from the same word, so a thread can never claim a chunk of a job
 * against another job's count), runs it, and counts it in `done`; the caller returns when
 * `done` reaches n_chunks. Nobody waits for a particular thread: if a
 * worker is descheduled (an oversubscribed machine, HTTP threads busy in
 * the server), the others take its chunks, and the caller only ever waits
 * for chunks already running. A worker reads fn/arg only after claiming a
 * chunk of the current generation; the caller cannot publish the next job
 * before that chunk is counted, so fn/arg are stable while it runs.
 *
 * Idle workers spin on the state word for a short while (the next region
 * of a forward pass starts within microseconds), then sleep on `cv`. The
 * publisher reads `n_sleeping` after storing the new state and broadcasts
 * under `mu` if anyone may sleep; a worker re-checks the state under the
 * same mutex before waiting, so no wake-up is lost (seq_cst on both sides).
 *
 * Lock order: only `mu` exists, a leaf.
 */
#include "engine/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define NUAGE_POOL_SPINS 100000      /* worker: pause-spins before sleeping */
#define NUAGE_POOL_WAIT_SPINS 20000  /* caller: pause-spins before yielding */

struct nuage_worker {
    struct nuage_pool *pool;
    int ith;
    pthread_t tid;
};

struct nuage_pool {
    int n;
    struct nuage_worker *workers;   /* (n - 1) */
    _Atomic uint64_t state;         /* gen << 32 | next chunk */
    _Atomic int done;               /* chunks finished in this generation */
    _Atomic int n_sleeping;
    _Atomic bool stop;
    uint32_t gen;                   /* caller's copy of the generation */
    /* The job. Atomic (relaxed) because a worker may read them while the
     * caller writes the next job; they are only used after a successful
     * CAS on `state` for this job's generation. */
    _Atomic(nuage_pool_fn) fn;
    _Atomic(void *) arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static inline void nuage__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claim and run chunks of generation `gen` until none is left. */
static void nuage__pool_work(struct nuage_pool *p, uint32_t gen) {
    for (;;) {
        uint64_t cur = atomic_load(&p->state);
        if ((uint32_t)(cur >> 32) != gen) return;
        int idx = (int)(cur & 0xffff), n = (int)((cur >> 16) & 0xffff);
        if (idx >= n) return;
        if (!atomic_compare_exchange_weak(&p->state, &cur, cur + 1)) continue;
        /* claimed: the job cannot change until we count this chunk */
        nuage_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        fn(atomic_load_explicit(&p->arg, memory_order_relaxed), idx, n);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *nuage__worker_main(void *arg) {
    struct nuage_worker *w = arg;
    struct nuage_pool *p = w->pool;
    uint32_t seen = 0;
    for (;;) {
        int spins = 0;
        uint32_t gen;
        while ((gen = (uint32_t)(atomic_load(&p->state) >> 32)) == seen && !atomic_load(&p->stop)) {
            if (++spins < NUAGE_POOL_SPINS) {
                nuage__cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while ((uint32_t)(atomic_load(&p->state) >> 32) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->stop)) return NULL;
        nuage__pool_work(p, gen);
        seen = gen;
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

void nuage__pool_run_chunks(nuage_pool *p, nuage_pool_fn fn, void *arg, int n_chunks) {
    if (n_chunks <= 0) return;
    if (n_chunks > 0xffff) n_chunks = 0xffff; /* the state word holds 16 bits */
    if (p->n == 1 || n_chunks == 1) {
        for (int i = 0; i < n_chunks; i++) fn(arg, i, n_chunks);
        return;
    }
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->arg, arg, memory_order_relaxed);
    atomic_store(&p->done, 0);
    uint32_t gen = ++p->gen;
    if (gen == 0) gen = ++p->gen; /* 0 is "nothing seen yet" for workers */
    atomic_store(&p->state, (uint64_t)gen << 32 | (uint64_t)n_chunks << 16);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    nuage__pool_work(p, gen);
    long spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks) {
        if (++spins < NUAGE_POOL_WAIT_SPINS) nuage__cpu_relax();
        else sched_yield();
    }
}

void nuage__pool_run(nuage_pool *p, nuage_pool_fn fn, void *arg) {
    nuage__pool_run_chunks(p, fn, arg, p->n);
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
