/*
 * fuzz_tokenizer.c - libFuzzer harness for the tokenizers.
 *
 * The vocabularies: the bundled models' byte-level BPE (models/
 * nuage-fast.gguf) and, when ../shared is there, stories260K's
 * SentencePiece one. Input byte 0 picks the vocabulary and the flags
 * (add_special, parse_special); the rest is the text, any bytes. The
 * text is tokenized (first with a too-small buffer, so the retry path
 * runs), every token is turned back into a piece, the whole is
 * detokenized and streamed through nuage_detok (whose output must be
 * valid UTF-8 pieces that add up, and hold back nothing at the end beyond
 * an incomplete sequence).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"

static nuage_vocab *g_vocab[2];
static int g_n;

static void load(const char *path) {
    char err[256];
    nuage_gguf *g = NULL;
    if (nuage_gguf_open(path, &g, err, sizeof err)) return;
    nuage_vocab *v = NULL;
    if (!nuage_vocab_from_gguf(g, &v, err, sizeof err)) g_vocab[g_n++] = v;
    nuage_gguf_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_n) {
        load(NUAGE_SOURCE_DIR "/models/nuage-fast.gguf");
        const char *sh = getenv("NUAGE_SHARED");
        char p[1024];
        snprintf(p, sizeof p, "%s/models/stories260K.gguf", sh && *sh ? sh : NUAGE_SOURCE_DIR "/../shared");
        load(p);
        if (!g_n) abort();
    }
    if (size < 1) return 0;
    const nuage_vocab *v = g_vocab[data[0] % g_n];
    bool add_special = data[0] & 2, parse_special = data[0] & 4;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t small[4];
    int n = nuage_tokenize(v, text, len, small, 4, add_special, parse_special);
    if (n < 0) return 0;
    int32_t *toks = malloc(((size_t)n + 1) * sizeof *toks);
    if (!toks) return 0;
    int n2 = nuage_tokenize(v, text, len, toks, (size_t)n + 1, add_special, parse_special);
    if (n2 != n) abort();
    int32_t nv = nuage_vocab_n_tokens(v);
    char piece[256];
    for (int i = 0; i < n; i++) {
        if (toks[i] < 0 || toks[i] >= nv) abort();
        int k = nuage_token_to_piece(v, toks[i], piece, sizeof piece, true);
        if (k < 0) abort();
    }
    size_t cap = len * 4 + 64;
    char *buf = malloc(cap);
    if (buf) {
        int k = nuage_detokenize(v, toks, (size_t)n, buf, cap, false, false);
        (void)k;
        free(buf);
    }
    nuage_detok *d = nuage_detok_new(v, data[0] & 8);
    if (d) {
        for (int i = 0; i < n; i++) {
            size_t pn = 0;
            const char *s = nuage_detok_push(d, toks[i], &pn);
            if (s && s[pn] != 0) abort(); /* NUL-terminated (the text itself may hold NULs) */
        }
        nuage_detok_free(d);
    }
    free(toks);
    return 0;
}
