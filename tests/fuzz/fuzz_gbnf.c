/*
 * fuzz_gbnf.c - libFuzzer harness for the GBNF front end and the engine
 * behind it (clang -fsanitize=fuzzer,address). The input is split at the
 * first NUL byte: before it a GBNF grammar, after it bytes to feed the
 * matcher. Every compiled grammar also gets a mask, a rollback and a
 * second run, over a token table of the 256 single bytes and a few
 * multi-byte pieces. Nothing may crash, leak, or grow without bound.
 *
 * Not built by CMake. Build and run from the repository root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *       tests/fuzz/fuzz_gbnf.c src/constrain/*.c src/tokenizer/*.c \
 *       src/engine/gguf.c $(ls src/engine/quant*.c | grep -v avx) \
 *       src/engine/gemm.c src/engine/cpu.c src/engine/errors.c \
 *       $(pkg-config --cflags --libs jansson libpcre2-8) -lm -pthread -o fuzz_gbnf
 *   ./fuzz_gbnf -max_len=512 -timeout=10 tests/fuzz/corpus/gbnf
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/cg_internal.h"
#include "nuage/nuage.h"

static nuage_cg_tokens *table(void) {
    static nuage_cg_tokens *t;
    if (t) return t;
    static char bytes[256];
    static const char *multi[] = {"ab", "{\"", "\xc3\xa9", "  ", "true", "<eos>"};
    const char *p[262];
    size_t l[262];
    uint8_t k[262];
    for (int i = 0; i < 256; i++) { bytes[i] = (char)i; p[i] = bytes + i; l[i] = 1; k[i] = 0; }
    for (int i = 0; i < 6; i++) { p[256 + i] = multi[i]; l[256 + i] = strlen(multi[i]); k[256 + i] = i == 5 ? 2 : 0; }
    if (ncg_tokens_from_strings(p, l, k, 262, &t)) abort();
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const nuage_cg_tokens *t = table();
    const uint8_t *nul = memchr(data, 0, size);
    size_t glen = nul ? (size_t)(nul - data) : size;
    const char *input = nul ? (const char *)nul + 1 : "";
    size_t ilen = nul ? size - glen - 1 : 0;
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    if (nuage_grammar_from_gbnf(t, (const char *)data, glen, &g, &err)) return 0;
    nuage_matcher *m = NULL;
    if (nuage_matcher_new(g, &m) == 0) {
        uint32_t mask[(262 + 31) / 32];
        nuage_matcher_fill_mask(m, mask);
        if (nuage_matcher_accept_bytes(m, input, ilen) == 0) {
            nuage_matcher_fill_mask(m, mask);
            nuage_matcher_is_accepting(m);
            nuage_matcher_is_terminated(m);
            if (nuage_matcher_rollback(m, 1)) abort();
        }
        for (size_t i = 0; i < ilen; i++)
            if (nuage_matcher_accept_token(m, (uint8_t)input[i])) break;
        nuage_matcher_fill_mask(m, mask);
        nuage_matcher_free(m);
    }
    nuage_grammar_free(g);
    return 0;
}
