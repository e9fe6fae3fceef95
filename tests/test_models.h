/*
 * test_models.h - models for tests that need one but compare with no
 * reference data, so that they run on a bare clone (no ../shared).
 *
 *  - nuage_test_model_path(): a small real model: ../shared's stories260K
 *    when the reference data is there (the smallest), else the bundled
 *    models/nuage-fast.gguf. Tests built on it must hold for any model
 *    (invariances, bookkeeping), never for a particular text.
 *  - nuage_test_random_model(type): a random-weight llama GGUF of that
 *    weight type with nuage-fast's vocabulary (src/engine/random_llama.c),
 *    written once per process into a temporary folder removed at exit.
 *  - nuage_test_vocab_only(): a GGUF with a tokenizer and no weights.
 *  - nuage_test_spm_vocab(): a small SentencePiece-style vocabulary laid
 *    out like llama's (<unk> <s> </s>, the 256 byte tokens <0xNN> at id
 *    3 + byte, then a few pieces such as "\u2581Hello"), for the
 *    detokenizer tests.
 *
 * Include after <cmocka.h> and test_util.h; link the whole library.
 */
#ifndef NUAGE_TEST_MODELS_H
#define NUAGE_TEST_MODELS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/quant.h"
#include "engine/random_llama.h"

static inline const char *nuage_test_bundled_model(void) { return NUAGE_SOURCE_DIR "/models/nuage-fast.gguf"; }

static inline const char *nuage_test_model_path(void) {
    const char *p = nuage_test_shared_path("models/stories260K.gguf");
    struct stat st;
    if (p && stat(p, &st) == 0) return p;
    return nuage_test_bundled_model();
}

static char nuage_test_tmpdir[256];

static void nuage_test_tmpdir_remove(void) {
    if (!nuage_test_tmpdir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", nuage_test_tmpdir);
    if (system(cmd)) { /* best effort */
    }
}

/* A temporary folder for this process (removed at exit); NULL on failure. */
static inline const char *nuage_test_tmp(void) {
    if (!nuage_test_tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(nuage_test_tmpdir, sizeof nuage_test_tmpdir, "%s/nuage-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(nuage_test_tmpdir)) {
            nuage_test_tmpdir[0] = 0;
            return NULL;
        }
        atexit(nuage_test_tmpdir_remove);
    }
    return nuage_test_tmpdir;
}

/* Path of a random llama (dim 256, one layer, 1024-token vocabulary) with
 * weights of `type` (static buffer rotated 4 ways); NULL when the type
 * cannot hold 256 columns or the file cannot be written. */
static inline const char *nuage_test_random_model(uint32_t type) {
    static char bufs[4][320];
    static int k;
    const char *dir = nuage_test_tmp();
    const nuage_type_traits *tt = nuage_type_get(type);
    if (!dir || !tt || !tt->name || !tt->supported || !tt->from_float || !nuage_row_size(type, 256)) return NULL;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/rand-llama-%s.gguf", dir, tt->name);
    struct stat st;
    if (stat(b, &st) == 0) return b;
    nuage_random_llama_params p = nuage_random_llama_default_params();
    p.vocab_from = nuage_test_bundled_model();
    p.type = type;
    p.dim = 256;
    p.layers = 1;
    p.heads = 4;
    p.kv_heads = 2;
    p.ff = 512;
    p.ctx = 256;
    p.seed = type + 1;
    char err[256];
    if (nuage_random_llama_write(&p, b, err, sizeof err)) {
        fprintf(stderr, "random model %s: %s\n", tt->name, err);
        return NULL;
    }
    return b;
}

/* A GGUF with nuage-fast's tokenizer and architecture keys but no tensor. */
static inline const char *nuage_test_vocab_only(void) {
    static char path[320];
    const char *dir = nuage_test_tmp();
    if (!dir) return NULL;
    snprintf(path, sizeof path, "%s/vocab-only.gguf", dir);
    nuage_gguf *g = NULL;
    char err[256];
    if (nuage_gguf_open(nuage_test_bundled_model(), &g, err, sizeof err)) return NULL;
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    int rc = w ? 0 : -1;
    for (uint64_t i = 0; !rc && i < nuage_gguf_n_kv(g); i++) {
        const nuage_gguf_kv *kv = nuage_gguf_kv_at(g, i);
        rc = nuage_gguf_writer_set_value(w, kv->key.ptr, &kv->value);
    }
    if (!rc) rc = nuage_gguf_writer_write_file(w, path, err, sizeof err);
    nuage_gguf_writer_free(w);
    nuage_gguf_close(g);
    return rc ? NULL : path;
}

/* The SPM vocabulary above, written once per process; NULL on failure. */
static inline const char *nuage_test_spm_vocab(void) {
    static char path[320];
    const char *dir = nuage_test_tmp();
    if (!dir) return NULL;
    snprintf(path, sizeof path, "%s/spm-vocab.gguf", dir);
    struct stat st;
    if (stat(path, &st) == 0) return path;
    static const char *const pieces[] = {"\xe2\x96\x81", "\xe2\x96\x81Hello", "\xe2\x96\x81world", "H", "e", "l",
                                         "o", "w", "r", "d", "\xe2\x96\x81H", "ll", "llo", "\xe2\x96\x81w", "or"};
    enum { NP = sizeof pieces / sizeof *pieces, N = 3 + 256 + NP };
    char *toks[N];
    float scores[N];
    int32_t types[N];
    char bytes[256][8];
    toks[0] = "<unk>", toks[1] = "<s>", toks[2] = "</s>";
    types[0] = 2, types[1] = 3, types[2] = 3;
    for (int i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
        toks[3 + i] = bytes[i];
        types[3 + i] = 6;
    }
    for (int i = 0; i < NP; i++) {
        toks[3 + 256 + i] = (char *)pieces[i];
        types[3 + 256 + i] = 1;
    }
    for (int i = 0; i < N; i++) scores[i] = i < 3 + 256 ? 0.0f : (float)strlen(toks[i]) - 100.0f;
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    int rc = w ? 0 : -1;
    if (!rc) rc = nuage_gguf_writer_set_str(w, "general.architecture", "llama");
    if (!rc) rc = nuage_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    if (!rc) rc = nuage_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, N);
    if (!rc) rc = nuage_gguf_writer_set_arr(w, "tokenizer.ggml.scores", NUAGE_GGUF_FLOAT32, scores, N);
    if (!rc) rc = nuage_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", NUAGE_GGUF_INT32, types, N);
    if (!rc) rc = nuage_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    if (!rc) rc = nuage_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (!rc) rc = nuage_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    char err[256];
    if (!rc) rc = nuage_gguf_writer_write_file(w, path, err, sizeof err);
    nuage_gguf_writer_free(w);
    return rc ? NULL : path;
}

#endif
