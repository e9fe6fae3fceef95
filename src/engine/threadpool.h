/*
 * threadpool.h - a fork-join pool for the forward pass.
 *
 * Why our own: a decode step runs ~10 parallel regions per layer, each a
 * few microseconds long, thousands of times a second. OpenMP would do,
 * but its wait policy is global and environment-driven; a pool of our own
 * spins briefly between regions (no syscall on the hot path) and sleeps on
 * a condition variable when idle, so an idle server burns no CPU.
 *
 * Threading: one caller at a time (the owner of the nuage_context). The
 * caller is thread 0 and takes part in every job.
 */
#ifndef NUAGE_THREADPOOL_H
#define NUAGE_THREADPOOL_H

typedef struct nuage_pool nuage_pool;

/* fn(arg, ith, nth): the ith of nth chunks of a job, ith in [0, nth).
 * Each chunk runs exactly once, on some thread of the pool; no two chunks
 * of a job share an index, so per-chunk scratch indexed by ith is safe. */
typedef void (*nuage_pool_fn)(void *arg, int ith, int nth);

/* Create a pool of n threads in all (n-1 workers + the caller); NULL on
 * failure. n <= 0 means one per online CPU. */
nuage_pool *nuage__pool_new(int n);
void nuage__pool_free(nuage_pool *p);
int nuage__pool_size(const nuage_pool *p);

/* Run fn as nuage__pool_size(p) chunks and return when all have finished. */
void nuage__pool_run(nuage_pool *p, nuage_pool_fn fn, void *arg);
/* The same with n_chunks chunks (more chunks than threads balances load). */
void nuage__pool_run_chunks(nuage_pool *p, nuage_pool_fn fn, void *arg, int n_chunks);

/* Split [0, n) into nth near-equal contiguous ranges, aligned to `align`
 * items; sets [*lo, *hi) for thread ith. */
void nuage__pool_range(long n, int ith, int nth, long align, long *lo, long *hi);

#endif
