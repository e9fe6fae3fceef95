/*
 * cmd_bench.c - `nuage bench`: prefill (pp) and decode (tg) speed, as
 * llama-bench measures them: ppN evaluates N random tokens as one batch
 * on an empty cache; tgN decodes N tokens one at a time from an empty
 * cache. Each test runs once to warm up (unless --no-warmup, as
 * llama-bench's, for models so big that one run takes minutes), then -r
 * times; we print mean and
 * standard deviation of tokens/s, plus the model size and peak memory.
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
            "usage: nuage bench -m MODEL [-p 128] [-n 128] [-t THREADS] [-r 5] [--kv f16|f32] [--no-warmup]\n");
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

int nuage_cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    long pp = 128, tg = 128, threads = 0, reps = 5;
    nuage_kv_type kvt = NUAGE_KV_F16;
    bool warmup = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--no-warmup")) { warmup = false; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        bool ok = true;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-p")) ok = nuage_cli_int(v, 0, 1 << 16, &pp);
        else if (!strcmp(a, "-n")) ok = nuage_cli_int(v, 0, 1 << 16, &tg);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = nuage_cli_int(v, 1, 1024, &threads);
        else if (!strcmp(a, "-r")) ok = nuage_cli_int(v, 1, 1000, &reps);
        else if (!strcmp(a, "--kv")) { ok = !strcmp(v, "f16") || !strcmp(v, "f32"); kvt = !strcmp(v, "f32") ? NUAGE_KV_F32 : NUAGE_KV_F16; }
        else return usage();
        if (!ok) return nuage_cli_fail("bench", 2, "bad value for %s: '%s'", a, v);
        i++;
    }
    if (!model) return usage();
    char err[512];
    nuage_model *m = NULL;
    if (nuage_model_load(model, NULL, &m, err, sizeof err))
        return nuage_cli_fail("bench", 1, "%s: %s", model, err);
    int nmax = (int)(pp > tg ? pp : tg);
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
           threads > 0 ? (int)threads : -1, kvt == NUAGE_KV_F32 ? "f32" : "f16");
    printf("| %-8s | %16s | %12s |\n", "test", "tokens/s", "ms/run");
    printf("|----------|------------------|--------------|\n");
    unsigned rng = 42;
    int ret = 0;
    for (int which = 0; which < 2 && !ret; which++) {
        int n = which == 0 ? (int)pp : (int)tg;
        if (n <= 0) continue;
        if (warmup && nuage__bench_run(ctx, b, n, which == 0, n_vocab, &rng) < 0) { ret = 1; break; }
        double sum = 0, sum2 = 0, tsum = 0;
        for (int r = 0; r < reps; r++) {
            double s = nuage__bench_run(ctx, b, n, which == 0, n_vocab, &rng);
            if (s < 0) { ret = 1; break; }
            double tps = n / s;
            sum += tps;
            sum2 += tps * tps;
            tsum += s;
        }
        if (ret) break;
        double mean = sum / reps, sd = reps > 1 ? sqrt(fmax(0, (sum2 - reps * mean * mean) / (reps - 1))) : 0;
        char name[32];
        snprintf(name, sizeof name, "%s%d", which == 0 ? "pp" : "tg", n);
        printf("| %-8s | %8.1f ± %5.1f | %12.2f |\n", name, mean, sd, tsum / reps * 1e3);
    }
    printf("peak memory: %.1f MiB\n", nuage_cli_peak_rss_mib());
    nuage_batch_free(b);
    nuage_context_free(ctx);
    nuage_model_free(m);
    return ret;
}
