/*
 * cmd_bench.c - `nuage bench`: prefill (pp) and decode (tg) speed, as
 * llama-bench measures them: ppN evaluates N random tokens as one batch
 * on an empty cache; tgN decodes N tokens one at a time from an empty
 * cache. Each test runs once to warm up (unless --no-warmup, as
 * llama-bench's, for models so big that one run takes minutes), then -r
 * times; we print mean and
 * standard deviation of tokens/s, plus the model size and peak memory.
 * --pg evaluates the -p prompt and then decodes -n tokens after it, one
 * run end to end, as llama-bench's -pg P,N (tokens/s = (P + N) / time).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "engine/quant.h"
#include "nuage/nuage.h"

static int usage(void) {
    fprintf(stderr,
            "usage: nuage bench -m MODEL [-p 128] [-n 128] [-t THREADS] [-r 5] [--kv f16|f32|q8_0] [--pg] [--no-warmup]\n");
    return 2;
}

/* One run of pp (n tokens in one batch) or tg (n single-token decodes).
 * Returns seconds, or < 0 on error. */
static double nuage__bench_run(nuage_context *ctx, nuage_batch *b, int n, bool prefill,
                               int n_vocab, unsigned *rng) {
    char err[256];
    nuage_kv_seq_truncate(ctx, 0, 0);
    double t0 = nuage_cli_now();
    if (prefill) {
        nuage_batch_clear(b);
        for (int i = 0; i < n; i++) {
            *rng = *rng * 1103515245u + 12345u;
            nuage_batch_add(b, (int32_t)((*rng >> 8) % (unsigned)n_vocab), i, 0, i == n - 1);
        }
        if (nuage_decode(ctx, b, err, sizeof err)) { fprintf(stderr, "nuage bench: %s\n", err); return -1; }
    } else {
        int32_t tok = 1 % n_vocab;
        for (int i = 0; i < n; i++) {
            nuage_batch_clear(b);
            nuage_batch_add(b, tok, i, 0, true);
            if (nuage_decode(ctx, b, err, sizeof err)) { fprintf(stderr, "nuage bench: %s\n", err); return -1; }
            /* the next token depends on these logits, as in real decoding */
            const float *l = nuage_get_logits(ctx, 0);
            int best = 0;
            for (int v = 1; v < n_vocab; v++) if (l[v] > l[best]) best = v;
            tok = best;
        }
    }
    return nuage_cli_now() - t0;
}

/* One run of pg: np prompt tokens in one batch, then ng single-token
 * decodes after them. Returns seconds, or < 0 on error. */
static double nuage__bench_pg(nuage_context *ctx, nuage_batch *b, int np, int ng, int n_vocab, unsigned *rng) {
    char err[256];
    nuage_kv_seq_truncate(ctx, 0, 0);
    double t0 = nuage_cli_now();
    nuage_batch_clear(b);
    for (int i = 0; i < np; i++) {
        *rng = *rng * 1103515245u + 12345u;
        nuage_batch_add(b, (int32_t)((*rng >> 8) % (unsigned)n_vocab), i, 0, i == np - 1);
    }
    if (nuage_decode(ctx, b, err, sizeof err)) { fprintf(stderr, "nuage bench: %s\n", err); return -1; }
    for (int i = 0; i < ng; i++) {
        const float *l = nuage_get_logits(ctx, i == 0 ? np - 1 : 0);
        int best = 0;
        for (int v = 1; v < n_vocab; v++) if (l[v] > l[best]) best = v;
        nuage_batch_clear(b);
        nuage_batch_add(b, best, np + i, 0, true);
        if (nuage_decode(ctx, b, err, sizeof err)) { fprintf(stderr, "nuage bench: %s\n", err); return -1; }
    }
    return nuage_cli_now() - t0;
}

int nuage_cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    long pp = 128, tg = 128, threads = 0, reps = 5;
    nuage_kv_type kvt = NUAGE_KV_F16;
    bool warmup = true, pg = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--no-warmup")) { warmup = false; continue; }
        if (!strcmp(a, "--pg")) { pg = true; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        bool ok = true;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-p")) ok = nuage_cli_int(v, 0, 1 << 16, &pp);
        else if (!strcmp(a, "-n")) ok = nuage_cli_int(v, 0, 1 << 16, &tg);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = nuage_cli_int(v, 1, 1024, &threads);
        else if (!strcmp(a, "-r")) ok = nuage_cli_int(v, 1, 1000, &reps);
        else if (!strcmp(a, "--kv")) {
            ok = !strcmp(v, "f16") || !strcmp(v, "f32") || !strcmp(v, "q8_0");
            kvt = !strcmp(v, "f32") ? NUAGE_KV_F32 : !strcmp(v, "q8_0") ? NUAGE_KV_Q8_0 : NUAGE_KV_F16;
        }
        else return usage();
        if (!ok) return nuage_cli_fail("bench", 2, "bad value for %s: '%s'", a, v);
        i++;
    }
    if (!model) return usage();
    char err[512];
    nuage_model *m = NULL;
    if (nuage_model_load(model, NULL, &m, err, sizeof err))
        return nuage_cli_fail("bench", 1, "%s: %s", model, err);
    int nmax = (int)(pg ? pp + tg : pp > tg ? pp : tg);
    if (nmax < 1) nmax = 1;
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = (int)threads;
    cp.n_ctx = nmax;
    cp.n_batch_max = pp > 0 ? (int)pp : 1;
    cp.kv_type = kvt;
    nuage_context *ctx = NULL;
    if (nuage_context_new(m, &cp, &ctx, err, sizeof err)) {
        nuage_model_free(m);
        return nuage_cli_fail("bench", 1, "%s", err);
    }
    nuage_batch *b = nuage_batch_new(cp.n_batch_max);
    int n_vocab = nuage_model_n_vocab(m);
    printf("model: %s (%s), %.2f MiB weights, %.2f M params, kernels: %s, threads: %d, kv: %s\n",
           model, nuage_model_arch(m), nuage_model_size_bytes(m) / 1048576.0,
           nuage_model_n_params(m) / 1e6, nuage_quant_simd_name(),
           threads > 0 ? (int)threads : -1, kvt == NUAGE_KV_F32 ? "f32" : kvt == NUAGE_KV_Q8_0 ? "q8_0" : "f16");
    printf("| %-8s | %16s | %12s |\n", "test", "tokens/s", "ms/run");
    printf("|----------|------------------|--------------|\n");
    unsigned rng = 42;
    int ret = 0;
    for (int which = pg ? 2 : 0; which < (pg ? 3 : 2) && !ret; which++) {
        int n = which == 0 ? (int)pp : which == 1 ? (int)tg : (int)(pp + tg);
        if (n <= 0 || (which == 2 && pp <= 0)) continue;
#define NUAGE__BENCH_ONE() (which == 2 ? nuage__bench_pg(ctx, b, (int)pp, (int)tg, n_vocab, &rng) \
                                       : nuage__bench_run(ctx, b, n, which == 0, n_vocab, &rng))
        if (warmup && NUAGE__BENCH_ONE() < 0) { ret = 1; break; }
        double sum = 0, sum2 = 0, tsum = 0;
        for (int r = 0; r < reps; r++) {
            double s = NUAGE__BENCH_ONE();
            if (s < 0) { ret = 1; break; }
            double tps = n / s;
            sum += tps;
            sum2 += tps * tps;
            tsum += s;
        }
        if (ret) break;
        double mean = sum / reps, sd = reps > 1 ? sqrt(fmax(0, (sum2 - reps * mean * mean) / (reps - 1))) : 0;
        char name[32];
        if (which == 2) snprintf(name, sizeof name, "pp%ld+tg%ld", pp, tg);
        else snprintf(name, sizeof name, "%s%d", which == 0 ? "pp" : "tg", n);
        printf("| %-8s | %8.1f ± %5.1f | %12.2f |\n", name, mean, sd, tsum / reps * 1e3);
    }
    printf("peak memory: %.1f MiB\n", nuage_cli_peak_rss_mib());
    nuage_batch_free(b);
    nuage_context_free(ctx);
    nuage_model_free(m);
    return ret;
}
