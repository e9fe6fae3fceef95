/*
 * bench_kernels.c - speed of the row kernels (vec_dot, vec_dot_tile and
 * the activation quantizers) for every runnable type at every SIMD level
 * this CPU has.
 *
 * usage: bench_kernels [n [rows [type]]]   (defaults 4096, 1024, all;
 *        n a multiple of 32: types with 256-value blocks are skipped
 *        unless it is a multiple of 256; gpt-oss's experts: 2880 2880 mxfp4)
 *
 * For each type, a rows x n weight matrix (random, quantized with the
 * type's from_float) is multiplied with 4 activation rows: first one
 * vec_dot per (row, activation) pair, then with vec_dot_tile in 4 x 4
 * tiles when the type has one. Reported: ns per row dot, and the weight
 * bytes streamed per second (GB/s, the figure to compare with memory
 * bandwidth for token generation). Types with a rows-in-lanes kernel
 * (gemm.h) also report it: GB/s of weights for one token (decode) and ns
 * per row dot with 64 tokens (prefill). Single-threaded; the best of a few
 * repetitions is kept, so a briefly busy machine does not skew it much.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cpu.h"
#include "engine/gemm.h"
#include "engine/quant.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* excludes time descheduled */
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static uint64_t g_rng = 12345;
static float frand(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((g_rng >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

static volatile float g_sink;

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4096;
    int rows = argc > 2 ? atoi(argv[2]) : 1024;
    const char *only = argc > 3 ? argv[3] : NULL;
    if (n <= 0 || n % 32 || rows <= 0 || rows % 4) {
        fprintf(stderr, "n must be a multiple of 32 and rows of 4\n");
        return 2;
    }
    const uint32_t types[] = {NUAGE_TYPE_F32, NUAGE_TYPE_F16, NUAGE_TYPE_BF16, NUAGE_TYPE_Q8_0,
                              NUAGE_TYPE_Q4_0, NUAGE_TYPE_Q4_1, NUAGE_TYPE_Q5_0, NUAGE_TYPE_Q5_1,
                              NUAGE_TYPE_IQ4_NL, NUAGE_TYPE_Q2_K, NUAGE_TYPE_Q3_K, NUAGE_TYPE_Q4_K,
                              NUAGE_TYPE_Q5_K, NUAGE_TYPE_Q6_K, NUAGE_TYPE_IQ4_XS,
                              NUAGE_TYPE_MXFP4};
    float *xf = malloc((size_t)n * rows * sizeof(float));
    float *af = malloc((size_t)n * 64 * sizeof(float));
    for (size_t i = 0; i < (size_t)n * rows; i++) xf[i] = frand();
    for (size_t i = 0; i < (size_t)n * 64; i++) af[i] = frand();
    printf("n=%d rows=%d, single thread\n", n, rows);
    printf("%-8s %-12s %12s %10s %14s %16s %12s %14s\n", "type", "level", "vec_dot ns", "GB/s",
           "tile ns/dot", "quantize ns/row", "gemm1 GB/s", "gemm64 ns/dot");
    int maxl = nuage_cpu_level();
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        for (int lvl = 0; lvl <= maxl; lvl++) {
            nuage_quant_set_level(lvl);
            const nuage_type_traits *t = nuage_type_get(types[ti]);
            if (!t->supported || !t->vec_dot || !t->from_float) continue;
            if (only && strcmp(only, t->name)) continue;
            if (n % t->blck_size) continue;
            const nuage_type_traits *at = nuage_type_get(t->vec_dot_type);
            size_t wrs = nuage_row_size(types[ti], n), ars = nuage_row_size(t->vec_dot_type, n);
            unsigned char *w = malloc(wrs * rows), *a = malloc(ars * 4);
            for (int r = 0; r < rows; r++) t->from_float(xf + (size_t)r * n, w + r * wrs, n);
            double tq = 1e30;
            for (int rep = 0; rep < 5; rep++) {
                double t0 = now_ns();
                for (int j = 0; j < 4; j++) at->from_float(af + (size_t)j * n, a + j * ars, n);
                double dt = (now_ns() - t0) / 4;
                if (dt < tq) tq = dt;
            }
            /* vec_dot: rows x 4 activation rows */
            double best = 1e30;
            float s = 0;
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now_ns();
                for (int j = 0; j < 4; j++)
                    for (int r = 0; r < rows; r++) {
                        t->vec_dot(n, &s, w + r * wrs, a + j * ars);
                        g_sink += s;
                    }
                double dt = (now_ns() - t0) / (4.0 * rows);
                if (dt < best) best = dt;
            }
            double tbest = 0;
            if (t->vec_dot_tile) {
                tbest = 1e30;
                float out[16];
                /* a tile with its own activation rounding takes F32 rows */
                size_t trs = t->tile_prep ? (size_t)n * sizeof(float) : ars;
                unsigned char *ta = t->tile_prep ? malloc(trs * 4) : a;
                if (t->tile_prep)
                    for (int j = 0; j < 4; j++) t->tile_prep(af + (size_t)j * n, ta + j * trs, n);
                for (int rep = 0; rep < 3; rep++) {
                    double t0 = now_ns();
                    for (int r = 0; r < rows; r += 4) {
                        t->vec_dot_tile(n, out, 4, w + r * wrs, wrs, 4, ta, trs, 4);
                        g_sink += out[5];
                    }
                    double dt = (now_ns() - t0) / (4.0 * rows);
                    if (dt < tbest) tbest = dt;
                }
                if (ta != a) free(ta);
            }
            /* rows-in-lanes: 1 token (decode), then 64 (prefill) */
            double g1 = 0, g64 = 0;
            if (t->gemm) {
                size_t grs = (size_t)(n / 32) * NUAGE_GEMM_ABLK;
                unsigned char *ga = malloc(grs * 64);
                float *gy = malloc(sizeof(float) * (size_t)rows * 64);
                for (int j = 0; j < 64; j++) t->gemm_prep(af + (size_t)j * n, ga + j * grs, n);
                g1 = g64 = 1e30;
                for (int rep = 0; rep < 3; rep++) {
                    double t0 = now_ns();
                    t->gemm(n, gy, (size_t)rows, w, wrs, rows, ga, grs, 1);
                    double dt = now_ns() - t0;
                    if (dt < g1) g1 = dt;
                    t0 = now_ns();
                    t->gemm(n, gy, (size_t)rows, w, wrs, rows, ga, grs, 64);
                    dt = (now_ns() - t0) / (64.0 * rows);
                    if (dt < g64) g64 = dt;
                    g_sink += gy[7];
                }
                g1 = (double)wrs * rows / g1;
                free(ga);
                free(gy);
            }
            char gcols[40] = "";
            if (t->gemm) snprintf(gcols, sizeof gcols, " %12.2f %14.1f", g1, g64);
            const char *lname = lvl == 2 ? "avx512" : lvl == 1 ? "avx2" : "scalar";
            if (t->vec_dot_tile)
                printf("%-8s %-12s %12.1f %10.2f %14.1f %16.1f%s\n", t->name, lname, best,
                       wrs / best, tbest, tq, gcols);
            else
                printf("%-8s %-12s %12.1f %10.2f %14s %16.1f%s\n", t->name, lname, best, wrs / best,
                       "-", tq, gcols);
            free(w);
            free(a);
        }
    }
    free(xf);
    free(af);
    return 0;
}
