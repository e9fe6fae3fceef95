/*
 * cmd_tokenize.c - `nuage tokenize` and `nuage detokenize`: the tokenizer
 * from the command line, for checking ids against llama.cpp's
 * llama-tokenize and for scripts.
 *
 *   nuage tokenize -m MODEL [--raw] [--file F]
 *       reads the text from F (or stdin) byte for byte (no newline is
 *       stripped) and prints the ids on one line, separated by single
 *       spaces, then a newline. By default BOS/EOS are added as the
 *       metadata says and special-token text ("<|im_end|>") becomes the
 *       special token; --raw adds none and parses none.
 *   nuage detokenize -m MODEL [--no-special] "ID ID ..."
 *       prints the text of the ids exactly (no newline added), as
 *       llama.cpp's llama_detokenize renders it: control tokens shown (unless
 *       --no-special), SPM's leading space removed, BPE's space clean-up.
 *
 * MODEL may be a vocabulary-only GGUF (no weights): only the GGUF metadata
 * is read (nuage_gguf_open + nuage_vocab_from_gguf), no model is loaded.
 * Exit codes: 0 ok, 1 error (file, tokenizer), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "engine/gguf.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"

/* Open MODEL's vocabulary; prints the error and returns NULL on failure. */
static nuage_vocab *open_vocab(const char *cmd, const char *path) {
    char err[512] = {0};
    nuage_gguf *g = NULL;
    int rc = nuage_gguf_open(path, &g, err, sizeof err);
    if (rc) {
        nuage_cli_fail(cmd, 1, "%s: %s", path, err[0] ? err : nuage_strerror(rc));
        return NULL;
    }
    nuage_vocab *v = NULL;
    rc = nuage_vocab_from_gguf(g, &v, err, sizeof err);
    nuage_gguf_close(g);
    if (rc) {
        nuage_cli_fail(cmd, 1, "%s: %s", path, err[0] ? err : nuage_strerror(rc));
        return NULL;
    }
    return v;
}

/* Read all of f; malloc'd buffer (NUL-terminated) and *len, or NULL. */
static char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (cap - n < 4096) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int tok_usage(FILE *f, int code) {
    fprintf(f,
            "usage: nuage tokenize -m MODEL [--raw] [--file F]\n"
            "  print the token ids of the text in F (default: stdin), byte-exact\n"
            "  --raw      add no BOS/EOS and do not parse special-token text\n");
    return code;
}

int nuage_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *file = NULL;
    bool raw = false;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) model = argv[++i];
        else if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--raw")) raw = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return tok_usage(stdout, 0);
        else {
            fprintf(stderr, "nuage tokenize: unknown or incomplete option '%s'\n", argv[i]);
            return tok_usage(stderr, 2);
        }
    }
    if (!model) return tok_usage(stderr, 2);
    FILE *in = stdin;
    if (file && !(in = fopen(file, "rb"))) return nuage_cli_fail("tokenize", 1, "cannot open %s", file);
    size_t len = 0;
    char *text = read_all(in, &len);
    if (in != stdin) fclose(in);
    if (!text) return nuage_cli_fail("tokenize", 1, "cannot read the input");
    nuage_vocab *v = open_vocab("tokenize", model);
    if (!v) {
        free(text);
        return 1;
    }
    int code = 0;
    size_t cap = len / 2 + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    int n = ids ? nuage_tokenize(v, text, len, ids, cap, !raw, !raw) : NUAGE_E_NOMEM;
    if (n > (int)cap) {
        int32_t *bigger = realloc(ids, (size_t)n * sizeof *ids);
        if (!bigger) n = NUAGE_E_NOMEM;
        else {
            ids = bigger;
            n = nuage_tokenize(v, text, len, ids, (size_t)n, !raw, !raw);
        }
    }
    if (n < 0) {
        code = nuage_cli_fail("tokenize", 1, "%s", nuage_strerror(n));
    } else {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        if (fflush(stdout)) code = 1;
    }
    free(ids);
    free(text);
    nuage_vocab_free(v);
    return code;
}

static int detok_usage(FILE *f, int code) {
    fprintf(f,
            "usage: nuage detokenize -m MODEL [--no-special] \"ID ID ...\"\n"
            "  print the text of the token ids (bytes as they are, no newline added)\n"
            "  --no-special  render control tokens (BOS, <|im_end|>, ...) as nothing\n");
    return code;
}

int nuage_cmd_detokenize(int argc, char **argv) {
    const char *model = NULL, *idstr = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--no-special")) special = false;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return detok_usage(stdout, 0);
        else if (!idstr && argv[i][0] != '-') idstr = argv[i];
        else {
            fprintf(stderr, "nuage detokenize: unknown or extra argument '%s'\n", argv[i]);
            return detok_usage(stderr, 2);
        }
    }
    if (!model || !idstr) return detok_usage(stderr, 2);
    int n = 0;
    int32_t *ids = nuage_cli_ids(idstr, &n);
    if (!ids) return nuage_cli_fail("detokenize", 2, "bad token id list '%s'", idstr);
    nuage_vocab *v = open_vocab("detokenize", model);
    if (!v) {
        free(ids);
        return 1;
    }
    int code = 0;
    int len = nuage_detokenize(v, ids, (size_t)n, NULL, 0, !special, special);
    char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (len < 0) {
        code = nuage_cli_fail("detokenize", 1, "%s (ids must be below %d)", nuage_strerror(len),
                              nuage_vocab_n_tokens(v));
    } else if (!buf) {
        code = nuage_cli_fail("detokenize", 1, "out of memory");
    } else {
        nuage_detokenize(v, ids, (size_t)n, buf, (size_t)len + 1, !special, special);
        if (fwrite(buf, 1, (size_t)len, stdout) != (size_t)len || fflush(stdout)) code = 1;
    }
    free(buf);
    free(ids);
    nuage_vocab_free(v);
    return code;
}
