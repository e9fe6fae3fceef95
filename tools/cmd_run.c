/*
 * cmd_run.c - `nuage run`: generate a continuation of a prompt and stream
 * it to stdout as it is produced (the incremental KV-cache path: the
 * prompt in one batch, then one token per decode).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_util.h"
#include "nuage/nuage.h"
#include "nuage/sampler.h"
#include "nuage/tokenizer.h"

static int usage(void) {
    fprintf(stderr,
            "usage: nuage run -m MODEL -p PROMPT [-n N] [-t THREADS] [--temp T] [--seed S]\n"
            "                 [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R]\n"
            "                 [--ctx N] [--kv-type f16|f32|q8_0] [--ignore-eos] [--ids] [--echo]\n"
            "  -n N            tokens to generate (default 128)\n"
            "  --temp T        temperature, 0 = greedy (default 0.8)\n"
            "  --ignore-eos    keep generating after end-of-generation tokens\n"
            "  --ids           print generated token ids instead of text\n"
            "  --echo          print the prompt before the continuation\n");
    return 2;
}

int nuage_cmd_run(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL;
    long n_gen = 128, threads = 0, top_k = 40, n_ctx = 0, seed = -1;
    double temp = 0.8, top_p = 0.95, min_p = 0.05, rep = 1.0;
    bool ignore_eos = false, print_ids = false, echo = false;
    nuage_kv_type kv_type = NUAGE_KV_F16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--ignore-eos")) { ignore_eos = true; continue; }
        if (!strcmp(a, "--ids")) { print_ids = true; continue; }
        if (!strcmp(a, "--echo")) { echo = true; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        bool ok = true;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "-n")) ok = nuage_cli_int(v, 0, 1 << 24, &n_gen);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = nuage_cli_int(v, 1, 1024, &threads);
        else if (!strcmp(a, "--kv-type")) {
            ok = !strcmp(v, "f16") || !strcmp(v, "f32") || !strcmp(v, "q8_0");
            kv_type = !strcmp(v, "f32") ? NUAGE_KV_F32 : !strcmp(v, "q8_0") ? NUAGE_KV_Q8_0 : NUAGE_KV_F16;
        }
        else if (!strcmp(a, "--temp")) ok = nuage_cli_float(v, &temp) && temp >= 0;
        else if (!strcmp(a, "--seed")) ok = nuage_cli_int(v, 0, INT64_MAX, &seed);
        else if (!strcmp(a, "--top-k")) ok = nuage_cli_int(v, 0, 1 << 30, &top_k);
        else if (!strcmp(a, "--top-p")) ok = nuage_cli_float(v, &top_p) && top_p > 0 && top_p <= 1;
        else if (!strcmp(a, "--min-p")) ok = nuage_cli_float(v, &min_p) && min_p >= 0 && min_p <= 1;
        else if (!strcmp(a, "--repeat-penalty")) ok = nuage_cli_float(v, &rep) && rep > 0;
        else if (!strcmp(a, "--ctx")) ok = nuage_cli_int(v, 1, 1 << 24, &n_ctx);
        else return usage();
        if (!ok) return nuage_cli_fail("run", 2, "bad value for %s: '%s'", a, v);
        i++;
    }
    if (!model || !prompt) return usage();

    char err[512];
    int ret = 1;
    nuage_model *m = NULL;
    nuage_context *ctx = NULL;
    nuage_batch *b = NULL;
    nuage_sampler *smp = NULL;
    nuage_detok *dt = NULL;
    int32_t *toks = NULL;
    if (nuage_model_load(model, NULL, &m, err, sizeof err)) {
        nuage_cli_fail("run", 1, "%s: %s", model, err);
        goto done;
    }
    const nuage_vocab *voc = nuage_model_vocab(m);
    size_t plen = strlen(prompt);
    size_t cap = plen + 16;
    toks = malloc(cap * sizeof *toks);
    int n_prompt = toks ? nuage_tokenize(voc, prompt, plen, toks, cap, true, true) : NUAGE_E_NOMEM;
    if (n_prompt < 0 || (size_t)n_prompt > cap) {
        nuage_cli_fail("run", 1, "cannot tokenize the prompt: %s", nuage_strerror(n_prompt < 0 ? n_prompt : NUAGE_E_NOMEM));
        goto done;
    }
    if (n_prompt == 0) {
        nuage_cli_fail("run", 1, "the prompt is empty and the model adds no BOS token");
        goto done;
    }
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = (int)threads;
    cp.kv_type = kv_type;
    cp.n_ctx = n_ctx > 0 ? (int)n_ctx : n_prompt + (int)n_gen;
    if (cp.n_ctx > nuage_model_n_ctx_train(m) && n_ctx <= 0) cp.n_ctx = nuage_model_n_ctx_train(m);
    cp.n_batch_max = n_prompt < 512 ? n_prompt : 512;
    if (n_prompt >= cp.n_ctx) {
        nuage_cli_fail("run", 1, "prompt of %d tokens does not fit the context of %d", n_prompt, cp.n_ctx);
        goto done;
    }
    if (nuage_context_new(m, &cp, &ctx, err, sizeof err)) {
        nuage_cli_fail("run", 1, "%s", err);
        goto done;
    }
    nuage_sampler_params sp = nuage_sampler_default_params();
    sp.temperature = (float)temp;
    sp.top_k = (int32_t)top_k;
    sp.top_p = (float)top_p;
    sp.min_p = (float)min_p;
    sp.repetition_penalty = (float)rep;
    sp.penalty_last_n = 64;
    sp.seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL);
    smp = nuage_sampler_new(&sp, nuage_model_n_vocab(m));
    b = nuage_batch_new(cp.n_batch_max);
    dt = nuage_detok_new(voc, false);
    if (!smp || !b || !dt) {
        nuage_cli_fail("run", 1, "out of memory");
        goto done;
    }
    if (echo) fwrite(prompt, 1, plen, stdout);
    for (int i = 0; i < n_prompt; i++) nuage_sampler_accept(smp, toks[i]);

    double t0 = nuage_cli_now(), t_first = 0;
    int pos = 0, n_done = 0;
    /* prefill in chunks of n_batch_max */
    while (pos < n_prompt) {
        nuage_batch_clear(b);
        int end = pos + cp.n_batch_max < n_prompt ? pos + cp.n_batch_max : n_prompt;
        for (int i = pos; i < end; i++) nuage_batch_add(b, toks[i], i, 0, i == n_prompt - 1);
        if (nuage_decode(ctx, b, err, sizeof err)) {
            nuage_cli_fail("run", 1, "%s", err);
            goto done;
        }
        pos = end;
    }
    const float *logits = nuage_get_logits(ctx, b->n_tokens - 1);
    double t_prefill = nuage_cli_now();
    for (; n_done < n_gen; n_done++) {
        int32_t tok = nuage_sampler_sample(smp, logits);
        if (tok < 0) {
            nuage_cli_fail("run", 1, "no token can be sampled (all logits invalid or banned)");
            goto done;
        }
        if (n_done == 0) t_first = nuage_cli_now();
        nuage_sampler_accept(smp, tok);
        if (!ignore_eos && nuage_vocab_is_eog(voc, tok)) break;
        if (print_ids) {
            printf(n_done ? " %d" : "%d", tok);
        } else {
            size_t len;
            const char *txt = nuage_detok_push(dt, tok, &len);
            fwrite(txt, 1, len, stdout);
        }
        fflush(stdout);
        if (n_done + 1 == n_gen) { n_done++; break; }
        if (pos >= cp.n_ctx) {
            fprintf(stderr, "\nnuage run: context of %d tokens is full\n", cp.n_ctx);
            n_done++;
            break;
        }
        nuage_batch_clear(b);
        nuage_batch_add(b, tok, pos++, 0, true);
        if (nuage_decode(ctx, b, err, sizeof err)) {
            nuage_cli_fail("run", 1, "%s", err);
            goto done;
        }
        logits = nuage_get_logits(ctx, 0);
    }
    if (!print_ids) {
        size_t len;
        const char *txt = nuage_detok_flush(dt, &len);
        fwrite(txt, 1, len, stdout);
    }
    printf("\n");
    double t1 = nuage_cli_now();
    fprintf(stderr, "nuage run: prompt %d tokens in %.1f ms (%.1f tok/s), generated %d tokens at %.1f tok/s, first token after %.1f ms\n",
            n_prompt, (t_prefill - t0) * 1e3, n_prompt / (t_prefill - t0), n_done,
            n_done > 1 ? (n_done - 1) / (t1 - t_first) : 0.0, (t_first - t0) * 1e3);
    ret = 0;
done:
    nuage_detok_free(dt);
    nuage_sampler_free(smp);
    nuage_batch_free(b);
    nuage_context_free(ctx);
    nuage_model_free(m);
    free(toks);
    return ret;
}
