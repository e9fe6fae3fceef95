/*
 * bench_store.c - what the store adds to a request, per backend: the API
 * key lookup every authenticated request makes (nuage_store_key_verify,
 * which also returns the tenant's quota limits) and the usage record
 * written when it ends (nuage_store_usage_add, a durable commit).
 *
 *   bench_store DB [N]    DB: a SQLite path or a postgres:// URL (a
 *                         database of its own: the bench adds a tenant
 *                         and keys to it); N lookups and N records
 *                         (default 2000)
 *
 * Prints p50 / p99 / mean in microseconds for each, and the open (and
 * migrate) time. One thread, so the figures are latencies, not
 * throughput; compare backends on the same machine, at the same load.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nuage/nuage.h"
#include "platform/store.h"

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    printf("%-28s p50 %8.1f us   p99 %8.1f us   mean %8.1f us   (n=%d)\n", what, v[n / 2],
           v[(int)(n * 0.99)], sum / n, n);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_store DB [N]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 2000;
    if (n < 10) n = 10;
    nuage_store *s;
    char err[512];
    double t0 = now_us();
    if (nuage_store_open(argv[1], &s, err, sizeof err)) {
        fprintf(stderr, "bench_store: %s\n", err);
        return 1;
    }
    printf("open + migrate: %.1f ms (schema %d)\n", (now_us() - t0) / 1000, nuage_store_schema_version(s));
    char tenant[32];
    snprintf(tenant, sizeof tenant, "bench-%ld", (long)time(NULL));
    if (nuage_store_tenant_create(s, tenant, 60000, 600, 1.0, NULL)) {
        fprintf(stderr, "bench_store: %s\n", nuage_store_errmsg(s));
        return 1;
    }
    /* some keys, so the lookup is an index probe among several rows */
    char key[80];
    for (int i = 0; i < 50; i++)
        if (nuage_store_key_create(s, tenant, "", 0, false, key, sizeof key, NULL)) {
            fprintf(stderr, "bench_store: %s\n", nuage_store_errmsg(s));
            return 1;
        }
    double *v = malloc((size_t)n * sizeof *v);
    if (!v) return 1;
    for (int i = 0; i < n; i++) {
        nuage_key k;
        nuage_tenant t;
        double a = now_us();
        if (nuage_store_key_verify(s, key, &k, &t)) {
            fprintf(stderr, "bench_store: verify: %s\n", nuage_store_errmsg(s));
            return 1;
        }
        v[i] = now_us() - a;
    }
    report("key lookup (auth + limits)", v, n);
    for (int i = 0; i < n; i++) {
        nuage_usage_record r;
        memset(&r, 0, sizeof r);
        snprintf(r.request_id, sizeof r.request_id, "bench-%d", i);
        snprintf(r.deployment, sizeof r.deployment, "chat");
        r.prompt_tokens = 100;
        r.completion_tokens = 20;
        r.status = 200;
        double a = now_us();
        if (nuage_store_usage_add(s, &r)) {
            fprintf(stderr, "bench_store: usage: %s\n", nuage_store_errmsg(s));
            return 1;
        }
        v[i] = now_us() - a;
    }
    report("usage record (durable)", v, n);
    free(v);
    nuage_store_close(s);
    return 0;
}
