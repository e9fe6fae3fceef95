/*
 * cmd_train.c - `nuage train`: train a llama-architecture model from
 * scratch on JSONL chats and write it as a GGUF model the engine (and
 * other GGUF runtimes) can run. See src/train/train.h for the model, the
 * loop and the checkpoints, docs/training.md for a walk-through.
 *
 * The tokenizer comes from --tokenizer TOK.gguf (nuage train-tokenizer),
 * or is trained on the data first (--vocab N). Its tokenizer.* metadata,
 * chat template included, is copied into the output and the checkpoints.
 * Checkpoints go to OUT.ckpt (or --ckpt) every --ckpt-every steps and at
 * the end; --resume CKPT continues a run with the checkpoint's shape,
 * options, weights, Adam moments, step and RNG state, so a killed run
 * resumed ends with the same weights as an uninterrupted one.
 *
 * --init MODEL.gguf continues training a finished model on new data (a
 * second stage, e.g. tool use on top of the arithmetic): its shape and
 * weights, a fresh optimizer and schedule; the tokenizer is the model's
 * own unless --tokenizer is given. --tools-template renders the data
 * with, and writes into the output and the checkpoints, the trainer's
 * ChatML-with-tools template (bpe_train.c) instead of the tokenizer's:
 * how a model trained on plain chats learns tool calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"
#include "train/bpe_train.h"
#include "train/train.h"

static int usage(void) {
    fprintf(stderr,
            "usage: nuage train --data FILE.jsonl --out MODEL.gguf [options]\n"
            "model:     --dim 256 --layers 4 --heads 8 --kv-heads 4 --ff 768 --ctx 256\n"
            "           --rope-base 10000 --norm-eps 1e-5\n"
            "tokenizer: --tokenizer TOK.gguf | --vocab 1024 (train one on the data)\n"
            "training:  --steps 1000 --batch 32 --lr 1e-3 --lr-min 1e-4 --warmup 100 --wd 0.1\n"
            "           --clip 1 --seed 1 -t THREADS\n"
            "files:     --ckpt PATH (default MODEL.gguf.ckpt) --ckpt-every N (default steps/10)\n"
            "           --resume CKPT --f16 (store matrices as F16) --name NAME --quiet\n"
            "stage 2:   --init MODEL.gguf (start from a trained model, fresh optimizer)\n"
            "           --tools-template (the trainer's ChatML-with-tools chat template)\n"
            "           --stop-after N (run only N steps of the --steps schedule: the output is\n"
            "           the model at that step, as a run cut there)\n");
    return 2;
}

/* Train a tokenizer on the data; returns it as an in-memory GGUF (buf
 * must outlive the handle). */
static int nuage__auto_tokenizer(const char *data, int vocab, void **buf, nuage_gguf **g, char *err,
                                 size_t errlen) {
    char **texts = NULL;
    size_t *lens = NULL, n = 0, len = 0;
    nuage_bpe *b = NULL;
    nuage_gguf_writer *w = NULL;
    int rc = nuage_tdata_render_file(data, nuage_bpe_chat_template(), &texts, &lens, &n, err, errlen);
    if (!rc) rc = nuage_bpe_train((const char *const *)texts, lens, n, vocab, "qwen2", &b, err, errlen);
    if (!rc) rc = (w = nuage_gguf_writer_new()) ? nuage_bpe_write_gguf(b, w) : NUAGE_E_NOMEM;
    if (!rc) rc = nuage_gguf_writer_to_buffer(w, buf, &len);
    if (!rc) rc = nuage_gguf_open_buffer(*buf, len, g, err, errlen);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(lens);
    nuage_bpe_free(b);
    nuage_gguf_writer_free(w);
    return rc;
}

int nuage_cmd_train(int argc, char **argv) {
    const char *data = NULL, *out = NULL, *tok_path = NULL, *resume = NULL, *ckpt = NULL, *name = NULL;
    const char *init = NULL;
    bool tools_template = false;
    nuage_tcfg cfg = {.dim = 256, .n_layer = 4, .n_head = 8, .n_head_kv = 4, .n_ff = 768, .n_ctx = 256,
                      .norm_eps = 1e-5f, .rope_base = 10000.0f};
    nuage_topts o = nuage_topts_default();
    long vocab = 1024, ckpt_every = -1, threads = 0;
    bool f16 = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--f16")) { f16 = true; continue; }
        if (!strcmp(a, "--quiet")) { o.quiet = true; continue; }
        if (!strcmp(a, "--tools-template")) { tools_template = true; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        long x = 0;
        double f = 0;
        bool ok = true;
#define INT(opt, lo, hi, dst) else if (!strcmp(a, opt)) { ok = nuage_cli_int(v, lo, hi, &x); dst = (int)x; }
#define FLT(opt, dst) else if (!strcmp(a, opt)) { ok = nuage_cli_float(v, &f) && f >= 0; dst = (float)f; }
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--out") || !strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "--resume")) resume = v;
        else if (!strcmp(a, "--init")) init = v;
        else if (!strcmp(a, "--ckpt")) ckpt = v;
        else if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "--vocab")) ok = nuage_cli_int(v, 256 + NUAGE_BPE_N_SPECIAL, 1 << 20, &vocab);
        else if (!strcmp(a, "--ckpt-every")) ok = nuage_cli_int(v, 0, 1 << 30, &ckpt_every);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = nuage_cli_int(v, 1, 1024, &threads);
        else if (!strcmp(a, "--seed")) { ok = nuage_cli_int(v, 0, INT64_MAX, &x); o.seed = (uint64_t)x; }
        INT("--dim", 8, 16384, cfg.dim)
        INT("--layers", 1, 256, cfg.n_layer)
        INT("--heads", 1, 1024, cfg.n_head)
        INT("--kv-heads", 1, 1024, cfg.n_head_kv)
        INT("--ff", 8, 65536, cfg.n_ff)
        INT("--ctx", 2, 65536, cfg.n_ctx)
        INT("--steps", 0, 1 << 30, o.steps)
        INT("--stop-after", 0, 1 << 30, o.stop_after)
        INT("--batch", 1, 1 << 20, o.batch)
        INT("--warmup", 0, 1 << 30, o.warmup)
        FLT("--lr", o.lr)
        FLT("--lr-min", o.lr_min)
        FLT("--wd", o.wd)
        FLT("--clip", o.clip)
        FLT("--rope-base", cfg.rope_base)
        FLT("--norm-eps", cfg.norm_eps)
        else return usage();
#undef INT
#undef FLT
        if (!ok) return nuage_cli_fail("train", 2, "bad value for %s: '%s'", a, v);
        i++;
    }
    if (!data || !out) return usage();
    if (init && resume) return nuage_cli_fail("train", 2, "--init and --resume exclude each other");
    o.threads = (int)threads;
    if (tools_template) o.chat_template = nuage_bpe_chat_template_tools();

    char err[512], ckpt_buf[4096];
    int ret = 1;
    void *tok_buf = NULL;
    nuage_gguf *tg = NULL;
    nuage_vocab *voc = NULL;
    nuage_tdata d = {0};
    nuage_tmodel m = {0};
    nuage_tstate st = {0};
    nuage_gguf_writer *w = NULL;
    bool have_model = false, have_state = false;
    double t0 = nuage_cli_now();

    /* tokenizer */
    if (tok_path || init) {
        const char *tp = tok_path ? tok_path : init; /* a model carries its tokenizer */
        if (nuage_gguf_open(tp, &tg, err, sizeof err)) {
            nuage_cli_fail("train", 1, "%s: %s", tp, err);
            goto done;
        }
    } else if (!resume) {
        if (nuage__auto_tokenizer(data, (int)vocab, &tok_buf, &tg, err, sizeof err)) {
            nuage_cli_fail("train", 1, "training the tokenizer: %s", err);
            goto done;
        }
    } else if (nuage_gguf_open(resume, &tg, err, sizeof err)) { /* the checkpoint carries it */
        nuage_cli_fail("train", 1, "%s: %s", resume, err);
        goto done;
    }
    if (nuage_vocab_from_gguf(tg, &voc, err, sizeof err)) {
        nuage_cli_fail("train", 1, "tokenizer: %s", err);
        goto done;
    }

    /* model and optimizer state */
    if (resume) {
        if (nuage_train_load_ckpt(resume, &m, &st, &o, err, sizeof err)) {
            nuage_cli_fail("train", 1, "%s: %s", resume, err);
            goto done;
        }
        have_model = have_state = true;
        cfg = m.c;
        fprintf(stderr, "train: resuming %s at step %d of %d\n", resume, st.step, o.steps);
    } else if (init) {
        nuage_gguf *ig = NULL;
        int irc = nuage_gguf_open(init, &ig, err, sizeof err);
        if (!irc) irc = nuage_tmodel_from_gguf(&m, ig, err, sizeof err);
        if (ig) nuage_gguf_close(ig);
        if (irc) {
            nuage_cli_fail("train", 1, "%s: %s", init, err);
            goto done;
        }
        have_model = true;
        cfg = m.c;
        if (nuage_tstate_init(&st, &m, o.seed)) {
            nuage_cli_fail("train", 1, "out of memory");
            goto done;
        }
        have_state = true;
        fprintf(stderr, "train: starting from the weights of %s\n", init);
    } else {
        cfg.n_vocab = nuage_vocab_n_tokens(voc);
        if (nuage_tmodel_init(&m, &cfg, err, sizeof err)) {
            nuage_cli_fail("train", 1, "%s", err);
            goto done;
        }
        have_model = true;
        nuage_tmodel_random(&m, o.seed);
        if (nuage_tstate_init(&st, &m, o.seed)) {
            nuage_cli_fail("train", 1, "out of memory");
            goto done;
        }
        have_state = true;
    }
    if (nuage_vocab_n_tokens(voc) > m.c.n_vocab) {
        nuage_cli_fail("train", 1, "the tokenizer has %d tokens, the model only %d", nuage_vocab_n_tokens(voc), m.c.n_vocab);
        goto done;
    }

    /* data */
    const char *tmpl = o.chat_template ? o.chat_template : nuage_gguf_get_str(tg, "tokenizer.chat_template", NULL);
    if (nuage_tdata_load(&d, data, voc, tmpl, m.c.n_ctx, err, sizeof err)) {
        nuage_cli_fail("train", 1, "%s", err);
        goto done;
    }
    if (!ckpt) {
        snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", out);
        ckpt = ckpt_buf;
    }
    o.ckpt_path = ckpt;
    o.ckpt_every = ckpt_every >= 0 ? (int)ckpt_every : (o.steps >= 10 ? o.steps / 10 : 0);
    fprintf(stderr,
            "train: %d chats, %lld tokens (%lld trained), %d cut at ctx %d | model dim %d layers %d "
            "heads %d/%d ff %d vocab %d: %.2fM parameters | %d steps x batch %d, lr %g -> %g, "
            "warm-up %d, seed %llu\n",
            d.n, (long long)d.off[d.n], (long long)d.n_tgt, d.n_truncated, m.c.n_ctx, m.c.dim,
            m.c.n_layer, m.c.n_head, m.c.n_head_kv, m.c.n_ff, m.c.n_vocab, m.n / 1e6, o.steps, o.batch,
            o.lr, o.lr_min, o.warmup, (unsigned long long)o.seed);
    double t1 = nuage_cli_now();
    if (nuage_train_run(&m, &st, &d, &o, tg, err, sizeof err)) {
        nuage_cli_fail("train", 1, "%s", err);
        goto done;
    }
    double t2 = nuage_cli_now();

    /* export */
    w = nuage_gguf_writer_new();
    if (!w || nuage_tmodel_to_gguf(&m, w, f16) || nuage_train_copy_tokenizer(tg, w) ||
        (o.chat_template && nuage_gguf_writer_set_str(w, "tokenizer.chat_template", o.chat_template))) {
        nuage_cli_fail("train", 1, "out of memory writing the model");
        goto done;
    }
    if (!name) {
        const char *slash = strrchr(out, '/');
        name = slash ? slash + 1 : out;
    }
    char stem[256];
    snprintf(stem, sizeof stem, "%s", name);
    char *dot = strstr(stem, ".gguf");
    if (dot) *dot = 0;
    nuage_gguf_writer_set_str(w, "general.name", stem);
    if (nuage_gguf_writer_write_file(w, out, err, sizeof err)) {
        nuage_cli_fail("train", 1, "%s", err);
        goto done;
    }
    fprintf(stderr, "train: final loss %.4f, training %.1fs, total %.1fs -> %s\n", st.last_loss, t2 - t1,
            t2 - t0, out);
    ret = 0;
done:
    nuage_gguf_writer_free(w);
    if (have_state) nuage_tstate_free(&st);
    if (have_model) nuage_tmodel_free(&m);
    nuage_tdata_free(&d);
    nuage_vocab_free(voc);
    if (tg) nuage_gguf_close(tg);
    free(tok_buf);
    return ret;
}
