/*
 * bench_attn.c - how the forward pass's cost grows with context, the
 * figure that attention decides.
 *
 * usage: bench_attn MODEL [ctx 4096 [chunk 512 [kv f16|f32|q8_0 [threads 1]]]]
 *
 * Fills one sequence to ctx tokens in batches of `chunk` (as the server
 * prefills a long prompt), then decodes 32 tokens after it. Reported: CPU
 * milliseconds per chunk and per decoded token (process CPU time, so a
 * busy machine that deschedules us skews it little; with one thread it
 * is the work itself). Run on a model with one layer and a tiny FFN
 * (bench/make_model --layers 1 --ff 256) the growth from the first chunk
 * to the last is nearly all attention. NUAGE_ATTN_ROWS=1 selects the
 * per-row attention path, to compare.
 *
 * bench_attn kernel [hd]: the tile kernels alone (every SIMD level this
 * CPU has), one thread, best of 5: GFLOP/s of the tile's Q.K^T and P.V
 * (4 * KT * hd flops per row and tile) with 256 rows and 128 tiles.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/attn.h"
#include "nuage/nuage.h"

static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double thread_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int bench_kernels(int hd) {
    enum { ROWS = 256, TILES = 128 };
    float *kf = aligned_alloc(64, sizeof(float) * NUAGE_ATTN_KT * hd), *vf = aligned_alloc(64, sizeof(float) * NUAGE_ATTN_KT * hd);
    float *qt = aligned_alloc(64, sizeof(float) * ROWS * hd), *ot = aligned_alloc(64, sizeof(float) * ROWS * hd);
    float m[ROWS], l[ROWS], pbuf[NUAGE_ATTN_KT * 16];
    int32_t lo[ROWS], hi[ROWS];
    for (int i = 0; i < NUAGE_ATTN_KT * hd; i++) kf[i] = vf[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    for (int i = 0; i < ROWS * hd; i++) qt[i] = (float)((i * 53) % 97) / 97.0f - 0.5f;
    for (int level = 0; level <= 2; level++) {
        const nuage__attn_kernels *k = nuage__attn_kernels_level(level);
        if (!k) continue;
        for (int pass = 0; pass < (k->tile8 ? 2 : 1); pass++) {
            nuage__attn_tile_fn tile = pass ? k->tile8 : k->tile;
            int w = pass ? 8 : k->w;
            double best = 1e30;
            for (int rep = 0; rep < 5; rep++) {
                for (int r = 0; r < ROWS; r++) { m[r] = -INFINITY; l[r] = 0; lo[r] = 0; hi[r] = 1 << 30; }
                memset(ot, 0, sizeof(float) * ROWS * hd);
                double t0 = thread_ms();
                for (int t = 0; t < TILES; t++)
                    for (int g = 0; g < ROWS / w; g++)
                        tile(kf, vf, hd, hd, t * NUAGE_ATTN_KT, NUAGE_ATTN_KT, 0.125f, qt + (size_t)g * hd * w,
                             lo + g * w, hi + g * w, m + g * w, l + g * w, ot + (size_t)g * hd * w, pbuf);
                double t = thread_ms() - t0;
                if (t < best) best = t;
                if (level == 0) break; /* the scalar twin is slow; once is enough */
            }
            double flops = 4.0 * NUAGE_ATTN_KT * hd * ROWS * TILES;
            printf("level %d, %2d lanes, hd %d: %.1f GFLOP/s (%.2f ms)\n", level, w, hd, flops / best / 1e6, best);
        }
    }
    free(kf); free(vf); free(qt); free(ot);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "kernel")) return bench_kernels(argc > 2 ? atoi(argv[2]) : 64);
    if (argc < 2) {
        fprintf(stderr, "usage: bench_attn MODEL [ctx [chunk [f16|f32|q8_0 [threads]]]]\n");
        return 2;
    }
    int ctx = argc > 2 ? atoi(argv[2]) : 4096, chunk = argc > 3 ? atoi(argv[3]) : 512;
    const char *kvs = argc > 4 ? argv[4] : "f16";
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    if (ctx < 1 || chunk < 1) return 2;
    char err[512];
    nuage_model *m = NULL;
    if (nuage_model_load(argv[1], NULL, &m, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = threads;
    cp.n_ctx = ctx + 32;
    cp.n_batch_max = chunk;
    cp.kv_type = !strcmp(kvs, "f32") ? NUAGE_KV_F32 : !strcmp(kvs, "q8_0") ? NUAGE_KV_Q8_0 : NUAGE_KV_F16;
    nuage_context *c = NULL;
    if (nuage_context_new(m, &cp, &c, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        nuage_model_free(m);
        return 1;
    }
    nuage_batch *b = nuage_batch_new(chunk);
    const int nv = nuage_model_n_vocab(m);
    unsigned rng = 42;
    printf("ctx %d, chunk %d, kv %s, %d thread(s), attention path: %s\n", ctx, chunk, kvs, threads,
           getenv("NUAGE_ATTN_ROWS") && !strcmp(getenv("NUAGE_ATTN_ROWS"), "1") ? "per row" : "tiled");
    printf("| positions | CPU ms | ms per token |\n|---|---:|---:|\n");
    int rc = 0;
    for (int p0 = 0; p0 < ctx && !rc; p0 += chunk) {
        int n = ctx - p0 < chunk ? ctx - p0 : chunk;
        nuage_batch_clear(b);
        for (int i = 0; i < n; i++) {
            rng = rng * 1103515245u + 12345u;
            nuage_batch_add(b, (int32_t)((rng >> 8) % (unsigned)nv), p0 + i, 0, i == n - 1);
        }
        double t0 = cpu_ms();
        if ((rc = nuage_decode(c, b, err, sizeof err))) break;
        double t = cpu_ms() - t0;
        printf("| %d-%d | %.1f | %.3f |\n", p0, p0 + n, t, t / n);
    }
    double t0 = cpu_ms();
    for (int i = 0; i < 32 && !rc; i++) {
        nuage_batch_clear(b);
        nuage_batch_add(b, 1 + i, ctx + i, 0, true);
        rc = nuage_decode(c, b, err, sizeof err);
    }
    if (!rc) printf("| decode at %d | %.1f | %.3f |\n", ctx, cpu_ms() - t0, (cpu_ms() - t0) / 32);
    else fprintf(stderr, "%s\n", err);
    nuage_batch_free(b);
    nuage_context_free(c);
    nuage_model_free(m);
    return rc ? 1 : 0;
}
