/*
 * cmd_train_tokenizer.c - `nuage train-tokenizer`: learn a byte-level BPE
 * vocabulary from JSONL chats (rendered with the ChatML template the
 * tokenizer will carry) and write it as a vocabulary-only GGUF with the
 * standard tokenizer.ggml.* keys (see src/train/bpe_train.h).
 * --tools-template renders the corpus with the ChatML-with-tools template
 * instead, so the tool markup (`<tool_call>{"name": ...`) and the argument
 * spellings (`"kilometers"`, no leading space) become merges too; the
 * written file still carries the plain ChatML template (a model trained
 * for tools gets its own through `nuage train --tools-template`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "engine/gguf_write.h"
#include "nuage/nuage.h"
#include "train/bpe_train.h"
#include "train/train.h"

static int usage(void) {
    fprintf(stderr,
            "usage: nuage train-tokenizer --data FILE.jsonl --vocab N --out TOK.gguf [--pre NAME]\n"
            "                             [--tools-template] [--space-apart]\n"
            "  --vocab N   vocabulary size: 256 bytes + merges + 5 special tokens (at most N)\n"
            "  --pre NAME  pre-tokenizer (default qwen2: every digit is its own word)\n"
            "  --tools-template  render the chats with the ChatML-with-tools template\n"
            "              (tool lists, calls and results count as text to merge)\n"
            "  --space-apart  never merge a leading space into a word: \" Turkey\" is \" \" +\n"
            "              \"Turkey\", the same word token as inside a JSON string\n");
    return 2;
}

int nuage_cmd_train_tokenizer(int argc, char **argv) {
    const char *data = NULL, *out = NULL, *pre = "qwen2";
    long vocab = 0;
    bool tools_tpl = false;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--tools-template")) { tools_tpl = true; continue; }
        if (!strcmp(a, "--space-apart")) { flags |= NUAGE_BPE_SPACE_APART; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        bool ok = true;
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--out") || !strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--pre")) pre = v;
        else if (!strcmp(a, "--vocab")) ok = nuage_cli_int(v, 256 + NUAGE_BPE_N_SPECIAL, 1 << 20, &vocab);
        else return usage();
        if (!ok) return nuage_cli_fail("train-tokenizer", 2, "bad value for %s: '%s'", a, v);
        i++;
    }
    if (!data || !out || !vocab) return usage();
    char err[512];
    char **texts = NULL;
    size_t *lens = NULL, n = 0;
    nuage_bpe *b = NULL;
    nuage_gguf_writer *w = NULL;
    int ret = 1;
    double t0 = nuage_cli_now();
    if (nuage_tdata_render_file(data, tools_tpl ? nuage_bpe_chat_template_tools() : nuage_bpe_chat_template(), &texts, &lens, &n, err, sizeof err)) {
        nuage_cli_fail("train-tokenizer", 1, "%s: %s", data, err);
        goto done;
    }
    if (nuage_bpe_train_ex((const char *const *)texts, lens, n, (int)vocab, pre, flags, &b, err, sizeof err)) {
        nuage_cli_fail("train-tokenizer", 1, "%s", err);
        goto done;
    }
    w = nuage_gguf_writer_new();
    if (!w || nuage_gguf_writer_set_str(w, "general.architecture", "llama") ||
        nuage_gguf_writer_set_str(w, "general.name", "nuage-tokenizer") || nuage_bpe_write_gguf(b, w)) {
        nuage_cli_fail("train-tokenizer", 1, "out of memory");
        goto done;
    }
    if (nuage_gguf_writer_write_file(w, out, err, sizeof err)) {
        nuage_cli_fail("train-tokenizer", 1, "%s", err);
        goto done;
    }
    fprintf(stderr, "train-tokenizer: %zu chats, %d distinct words, %d tokens (%d merges), %.1fs -> %s\n",
            n, b->n_words, b->n_tokens, b->n_merges, nuage_cli_now() - t0, out);
    ret = 0;
done:
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(lens);
    nuage_bpe_free(b);
    nuage_gguf_writer_free(w);
    return ret;
}
