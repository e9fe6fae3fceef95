/*
 * bench_quota.c - what the rate limiter's check costs a request: the
 * in-memory window of one server against the cluster's shared window in
 * PostgreSQL (quota_shared.c), p50 / p99 / max of nuage_quota_admit and
 * of the settle that follows it, from T threads at once.
 *
 * Every admission is of a tenant of its own with limits far above what
 * the run sends (so each is admitted and inserts a row: the full path),
 * one tenant per thread so that the per-tenant lock measures the database,
 * not the threads queueing on one tenant; --same-tenant puts all threads
 * on one tenant (the worst case: one hot tenant on every replica).
 *
 * usage: bench_quota [--db postgres://...] [-t THREADS] [-n PER_THREAD]
 *                    [--conns C] [--same-tenant]
 * Without --db only the in-memory limiter is measured.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nuage/nuage.h"
#include "platform/quota.h"

static int g_threads = 4, g_n = 500, g_conns = 4;
static int g_same = 0;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

typedef struct {
    nuage_quota *q;
    int id;
    double *admit, *settle; /* g_n each */
    int errors;
} worker;

static void *run(void *arg) {
    worker *w = arg;
    int64_t tenant = g_same ? 1000000 : 1000000 + w->id;
    for (int i = 0; i < g_n; i++) {
        uint64_t ticket = 0;
        double t0 = now_ms();
        int rc = nuage_quota_admit(w->q, tenant, "chat", 1000000000, 100000000, 100, (int64_t)t0, NULL, &ticket);
        double t1 = now_ms();
        nuage_quota_settle(w->q, ticket, 60, (int64_t)t1);
        double t2 = now_ms();
        if (rc) w->errors++;
        w->admit[i] = t1 - t0;
        w->settle[i] = t2 - t1;
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp);
    printf("  %-8s p50 %.3f ms  p99 %.3f ms  max %.3f ms  (%zu calls)\n", what, v[n / 2],
           v[(size_t)((double)n * 0.99)], v[n - 1], n);
}

static int bench(const char *label, nuage_quota *q) {
    worker *ws = calloc((size_t)g_threads, sizeof *ws);
    pthread_t *th = calloc((size_t)g_threads, sizeof *th);
    double *adm = calloc((size_t)g_threads * (size_t)g_n, sizeof *adm);
    double *set = calloc((size_t)g_threads * (size_t)g_n, sizeof *set);
    if (!ws || !th || !adm || !set) return 1;
    double t0 = now_ms();
    for (int i = 0; i < g_threads; i++) {
        ws[i] = (worker){.q = q, .id = i, .admit = adm + (size_t)i * g_n, .settle = set + (size_t)i * g_n};
        pthread_create(&th[i], NULL, run, &ws[i]);
    }
    int errors = 0;
    for (int i = 0; i < g_threads; i++) {
        pthread_join(th[i], NULL);
        errors += ws[i].errors;
    }
    double wall = now_ms() - t0;
    size_t n = (size_t)g_threads * (size_t)g_n;
    printf("%s: %d threads x %d admissions%s, %.0f admissions/s, %d refused or failed\n", label, g_threads,
           g_n, g_same ? " (one tenant)" : "", (double)n / (wall / 1e3), errors);
    report("admit", adm, n);
    report("settle", set, n);
    free(ws);
    free(th);
    free(adm);
    free(set);
    return errors ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *db = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc) db = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) g_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) g_n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--conns") && i + 1 < argc) g_conns = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--same-tenant")) g_same = 1;
        else {
            fprintf(stderr, "usage: bench_quota [--db postgres://...] [-t T] [-n N] [--conns C] [--same-tenant]\n");
            return 2;
        }
    }
    if (g_threads < 1 || g_n < 1) return 2;
    nuage_quota *q = nuage_quota_new();
    if (!q) return 1;
    int rc = bench("in memory", q);
    nuage_quota_free(q);
    if (!db) return rc;
    q = nuage_quota_new();
    char err[256];
    if (!q || nuage_quota_use_store(q, db, g_conns, err, sizeof err)) {
        fprintf(stderr, "bench_quota: %s\n", q ? err : "out of memory");
        nuage_quota_free(q);
        return 1;
    }
    char label[64];
    snprintf(label, sizeof label, "PostgreSQL (%d connections)", g_conns);
    rc |= bench(label, q);
    nuage_quota_free(q);
    return rc;
}
