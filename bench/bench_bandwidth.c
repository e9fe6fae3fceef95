/*
 * bench_bandwidth.c - the machine's memory read roofline, measured.
 *
 * Decode reads every weight once per token, so its speed limit is the
 * rate at which the cores can stream bytes from DRAM. Quoting a vendor
 * figure or an old note is how reports drifted (27 GB/s noted, 50-60
 * measured), so every benchmark report states the roofline measured on
 * the machine it ran on, in the same run: this program.
 *
 * Method (STREAM-like "read" kernel): one buffer far larger than every
 * cache (2 GiB by default) is written once (so its pages exist), then
 * summed with wide vector loads and several independent accumulators
 * (no dependency chain limits the loads). With T threads the buffer is
 * cut into T contiguous slices, the threads start together at a barrier
 * and the time is the slowest thread's; the best of N passes is kept
 * (noise on a shared machine only ever slows a pass). The sum is printed
 * so the compiler cannot drop the reads.
 *
 * Output: one line per thread count, "threads T: X.XX GB/s" (GB = 1e9
 * bytes, wall time), which bench/compare_llamacpp.sh and
 * bench/bench_models.sh grep; decode's bytes per token divided by its time
 * per token over this figure is its fraction of the roofline. The line
 * also gives the rate per CPU second of the readers (bytes / thread CPU
 * time, summed over threads): on a quiet machine the two agree; on a
 * loaded one the wall figure measures the CPU share, not the memory, and
 * no roofline fraction taken then means much.
 *
 * usage: bench_bandwidth [--mib M] [-r PASSES] [-t T[,T...]]   (2048, 5, 1,2)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef uint64_t u64x8 __attribute__((vector_size(64)));

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sums n bytes (a multiple of 256) at p with four 64-byte accumulators;
 * compiled for AVX-512, AVX2 and plain x86-64, picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static uint64_t read_sum(const uint8_t *p, size_t n) {
    u64x8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (size_t i = 0; i < n; i += 256) {
        u64x8 v0, v1, v2, v3;
        memcpy(&v0, p + i, 64);
        memcpy(&v1, p + i + 64, 64);
        memcpy(&v2, p + i + 128, 64);
        memcpy(&v3, p + i + 192, 64);
        a0 += v0;
        a1 += v1;
        a2 += v2;
        a3 += v3;
    }
    u64x8 a = a0 + a1 + a2 + a3;
    uint64_t s = 0;
    for (int k = 0; k < 8; k++) s += a[k];
    return s;
}

typedef struct {
    const uint8_t *p;
    size_t n;
    pthread_barrier_t *go;
    double t_end, cpu; /* wall end; thread CPU seconds of the read */
    uint64_t sum;
} slice;

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *reader(void *arg) {
    slice *s = arg;
    pthread_barrier_wait(s->go);
    double c0 = cpu_s();
    s->sum = read_sum(s->p, s->n);
    s->t_end = now_s();
    s->cpu = cpu_s() - c0;
    return NULL;
}

/* One pass with t threads over buf[0..n). Returns bytes per wall second;
 * *oncpu gets the sum over threads of bytes per second of that thread's
 * CPU time (what the memory delivered while the readers ran: on a
 * time-shared machine the wall figure falls with the CPU share, this one
 * much less). */
static double pass(const uint8_t *buf, size_t n, int t, uint64_t *sum, double *oncpu) {
    pthread_t th[64];
    slice sl[64];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)t + 1);
    size_t per = n / (size_t)t / 256 * 256;
    int started = 0;
    for (int i = 0; i < t; i++) {
        sl[i] = (slice){.p = buf + (size_t)i * per, .n = per, .go = &go};
        if (pthread_create(&th[i], NULL, reader, &sl[i])) break;
        started++;
    }
    if (started < t) { /* a benchmark program: give up plainly */
        fprintf(stderr, "bench_bandwidth: cannot start %d threads\n", t);
        exit(1);
    }
    pthread_barrier_wait(&go);
    double t0 = now_s(), t1 = t0;
    *oncpu = 0;
    for (int i = 0; i < t; i++) {
        pthread_join(th[i], NULL);
        if (sl[i].t_end > t1) t1 = sl[i].t_end;
        *sum += sl[i].sum;
        if (sl[i].cpu > 0) *oncpu += (double)per / sl[i].cpu;
    }
    pthread_barrier_destroy(&go);
    return (double)(per * (size_t)t) / (t1 - t0);
}

int main(int argc, char **argv) {
    size_t mib = 2048;
    int reps = 5, nt = 0, ts[16];
    const char *tlist = "1,2";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (!strcmp(a, "--mib")) mib = strtoul(v, NULL, 10);
        else if (!strcmp(a, "-r")) reps = atoi(v);
        else if (!strcmp(a, "-t")) tlist = v;
        else goto usage;
        i++;
    }
    for (const char *c = tlist; *c && nt < 16;) {
        char *e;
        long t = strtol(c, &e, 10);
        if (e == c || t < 1 || t > 64) goto usage;
        ts[nt++] = (int)t;
        c = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') goto usage;
    }
    if (mib < 16 || reps < 1 || nt == 0) goto usage;
    size_t n = mib << 20;
    uint8_t *buf = aligned_alloc(4096, n);
    if (!buf) {
        fprintf(stderr, "bench_bandwidth: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < n; i += 8) { /* fault every page in, non-zero data */
        uint64_t v = i * 0x9E3779B97F4A7C15ULL;
        memcpy(buf + i, &v, 8);
    }
    uint64_t sum = 0;
    char load[64] = "?";
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (!fgets(load, sizeof load, lf)) strcpy(load, "?");
        fclose(lf);
        load[strcspn(load, "\n")] = 0;
        for (int f = 0, i = 0; load[i]; i++)
            if (load[i] == ' ' && ++f == 3) load[i] = 0;
    }
    printf("read bandwidth: %zu MiB buffer, best of %d passes, load average %s\n", mib, reps, load);
    for (int k = 0; k < nt; k++) {
        double best = 0, best_cpu = 0;
        for (int r = 0; r < reps; r++) {
            double oc, bw = pass(buf, n, ts[k], &sum, &oc);
            if (bw > best) best = bw;
            if (oc > best_cpu) best_cpu = oc;
        }
        printf("threads %d: %.2f GB/s (per CPU second: %.2f GB/s)\n", ts[k], best * 1e-9, best_cpu * 1e-9);
    }
    printf("(checksum %llx)\n", (unsigned long long)sum);
    free(buf);
    return 0;
usage:
    fprintf(stderr, "usage: bench_bandwidth [--mib M] [-r PASSES] [-t T[,T...]]\n");
    return 2;
}
