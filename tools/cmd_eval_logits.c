/*
 * cmd_eval_logits.c - `nuage eval-logits`: evaluate a token list as one
 * prompt and write the logits of every position as raw little-endian f32,
 * row-major [n_tokens][n_vocab]. This is how the engine is checked against
 * llama.cpp's reference dumps; the KV cache is f32 so comparisons are tight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "nuage/nuage.h"

static int usage(void) {
    fprintf(stderr,
            "usage: nuage eval-logits -m MODEL --tokens \"ID ID ...\" --out FILE [-t THREADS]\n"
            "                         [--ubatch N] [--kv f32|f16]\n"
            "  --ubatch N  evaluate in chunks of N tokens (default: all at once)\n");
    return 2;
}

int nuage_cmd_eval_logits(int argc, char **argv) {
    const char *model = NULL, *tokens = NULL, *outp = NULL;
    long threads = 0, ubatch = 0;
    nuage_kv_type kvt = NUAGE_KV_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!v) return usage();
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--tokens")) tokens = v;
        else if (!strcmp(a, "--out")) outp = v;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { if (!nuage_cli_int(v, 1, 1024, &threads)) return usage(); }
        else if (!strcmp(a, "--ubatch")) { if (!nuage_cli_int(v, 1, 1 << 20, &ubatch)) return usage(); }
        else if (!strcmp(a, "--kv")) {
            if (!strcmp(v, "f32")) kvt = NUAGE_KV_F32;
            else if (!strcmp(v, "f16")) kvt = NUAGE_KV_F16;
            else return usage();
        } else return usage();
        i++;
    }
    if (!model || !tokens || !outp) return usage();
    int n = 0;
    int32_t *ids = nuage_cli_ids(tokens, &n);
    if (!ids || n == 0) { free(ids); return nuage_cli_fail("eval-logits", 2, "--tokens: expected space-separated token ids"); }

    char err[512];
    int ret = 1;
    nuage_model *m = NULL;
    nuage_context *ctx = NULL;
    nuage_batch *b = NULL;
    FILE *f = NULL;
    if (nuage_model_load(model, NULL, &m, err, sizeof err)) {
        nuage_cli_fail("eval-logits", 1, "%s: %s", model, err);
        goto done;
    }
    if (ubatch <= 0 || ubatch > n) ubatch = n;
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = (int)threads;
    cp.n_ctx = n > nuage_model_n_ctx_train(m) ? n : nuage_model_n_ctx_train(m);
    if (cp.n_ctx > 1 << 16 && n <= 1 << 16) cp.n_ctx = n;
    cp.n_batch_max = (int)ubatch;
    cp.kv_type = kvt;
    cp.kv_blocks = (n + 15) / 16 + 1;
    if (nuage_context_new(m, &cp, &ctx, err, sizeof err)) {
        nuage_cli_fail("eval-logits", 1, "%s", err);
        goto done;
    }
    b = nuage_batch_new((int)ubatch);
    f = fopen(outp, "wb");
    if (!b || !f) {
        nuage_cli_fail("eval-logits", 1, "cannot open %s", outp);
        goto done;
    }
    int n_vocab = nuage_model_n_vocab(m);
    for (int i0 = 0; i0 < n; i0 += (int)ubatch) {
        nuage_batch_clear(b);
        int i1 = i0 + (int)ubatch < n ? i0 + (int)ubatch : n;
        for (int i = i0; i < i1; i++) nuage_batch_add(b, ids[i], i, 0, true);
        if (nuage_decode(ctx, b, err, sizeof err)) {
            nuage_cli_fail("eval-logits", 1, "%s", err);
            goto done;
        }
        for (int i = 0; i < i1 - i0; i++) {
            if (fwrite(nuage_get_logits(ctx, i), sizeof(float), (size_t)n_vocab, f) != (size_t)n_vocab) {
                nuage_cli_fail("eval-logits", 1, "write to %s failed", outp);
                goto done;
            }
        }
    }
    if (fclose(f)) {
        f = NULL;
        nuage_cli_fail("eval-logits", 1, "write to %s failed", outp);
        goto done;
    }
    f = NULL;
    ret = 0;
done:
    if (f) fclose(f);
    nuage_batch_free(b);
    nuage_context_free(ctx);
    nuage_model_free(m);
    free(ids);
    return ret;
}
