/*
 * fuzz_regex.c - libFuzzer harness for the regex front end (regex.c) and
 * the formats (format.c), through the grammar engine.
 *
 * Input: one flags byte, then the pattern, then optionally a NUL and a
 * subject string. Flags bit 0 = anchored, bit 1 = JSON-string mode, bit 2
 * = a format instead of the pattern (bits 4-7 pick which; each format is
 * compiled once per process, then only the subject varies). The pattern is copied
 * into a malloc of exactly its size, so AddressSanitizer sees any read
 * past its end. A pattern the front end accepts is compiled against a
 * 256-byte token table, and the subject is fed to a matcher byte run by
 * byte run, so lowering bugs that produce malformed expressions and
 * engine bugs on unusual expressions both show up. Any input must return
 * (refusal is fine): the front end caps pattern length, nesting, repeat
 * counts and expansion, and the engine has state budgets.
 *
 * Not built by CMake. Build and run (from the repository root; the
 * harness defines the vocabulary functions the constrain sources refer
 * to as aborting stubs (add one if the link asks), so only the constrain sources are needed):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *       tests/fuzz/fuzz_regex.c src/constrain/?*.c -ljansson -lm -pthread -o fuzz_regex
 *   ./fuzz_regex -max_len=256 -timeout=10 tests/fuzz/corpus/regex
 *
 * Without clang, defining NUAGE_FUZZ_MAIN adds a main() that runs the
 * harness over files given on the command line (to replay a crash with
 * gcc; same sources).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/cg_internal.h"
#include "constrain/grammar.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"

/* tokens.c's vocabulary path is never taken here (the table is made from
 * strings); these satisfy the linker without the tokenizer and GGUF code. */
int32_t nuage_vocab_n_tokens(const nuage_vocab *v) { (void)v; abort(); }
bool nuage_vocab_is_eog(const nuage_vocab *v, int32_t tok) { (void)v; (void)tok; abort(); }
uint32_t nuage_vocab_token_attr(const nuage_vocab *v, int32_t tok) { (void)v; (void)tok; abort(); }
int32_t nuage_vocab_find_n(const nuage_vocab *v, const char *text, size_t len) {
    (void)v; (void)text; (void)len;
    abort();
}
int nuage_token_to_piece(const nuage_vocab *v, int32_t tok, char *buf, size_t cap, bool special) {
    (void)v; (void)tok; (void)buf; (void)cap; (void)special;
    abort();
}

static nuage_cg_tokens *table(void) {
    static nuage_cg_tokens *t;
    if (t) return t;
    static char bytes[256];
    const char *p[257];
    size_t l[257];
    uint8_t k[257];
    for (int i = 0; i < 256; i++) { bytes[i] = (char)i; p[i] = bytes + i; l[i] = 1; k[i] = 0; }
    p[256] = "</s>"; l[256] = 4; k[256] = 2;
    if (ncg_tokens_from_strings(p, l, k, 257, &t)) t = NULL;
    return t;
}

static const char *const FORMATS[] = {"date", "time", "date-time", "duration", "email", "hostname",
                                      "ipv4", "ipv6", "uri", "uuid", "regex", ""};

/* Feed subj to a matcher of g in runs of 3 bytes. */
static void run_matcher(nuage_grammar *g, const char *subj, size_t slen) {
    nuage_matcher *m = NULL;
    if (nuage_matcher_new(g, &m)) return;
    for (size_t i = 0; subj && i < slen; i += 3) {
        size_t k = slen - i < 3 ? slen - i : 3;
        if (nuage_matcher_accept_bytes(m, subj + i, k)) break;
    }
    (void)nuage_matcher_is_accepting(m);
    nuage_matcher_free(m);
}

/* The format grammars do not depend on the input: each is compiled once
 * (its first use covers the compiler) and kept, so that the inputs that
 * pick a format spend their time on the matcher rather than recompiling
 * the same grammar (about half of all inputs; it made this harness one of
 * the slowest). */
static nuage_grammar *format_grammar(int i) {
    static nuage_grammar *cache[12];
    static bool tried[12];
    if (tried[i]) return cache[i];
    tried[i] = true;
    ncg_builder *b = ncg_builder_new();
    nuage_cg_error err;
    ncg_expr e = -1;
    int rc = ncg_json_format(b, FORMATS[i], &e, &err);
    if (rc == 0) {
        if (e < 0) abort();
        ncg_rule r = ncg_rule_new(b, "root");
        if (ncg_rule_set(b, r, e) == 0) (void)ncg_builder_finish(b, r, table(), &cache[i], &err);
    } else if (rc != NUAGE_E_UNSUPPORTED && rc != NUAGE_E_INVAL && rc != NUAGE_E_NOMEM) {
        abort();
    } else if (!err.msg[0]) {
        abort();
    }
    ncg_builder_free(b);
    return cache[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || !table()) return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    const uint8_t *nul = memchr(p, 0, n);
    size_t plen = nul ? (size_t)(nul - p) : n;
    const char *subj = nul ? (const char *)nul + 1 : NULL;
    size_t slen = nul ? n - plen - 1 : 0;
    if (flags & 4) {
        nuage_grammar *g = format_grammar((flags >> 4) % 12);
        if (g) run_matcher(g, subj, slen);
        return 0;
    }
    char *re = malloc(plen ? plen : 1);
    if (!re) return 0;
    memcpy(re, p, plen);

    ncg_builder *b = ncg_builder_new();
    nuage_cg_error err;
    ncg_expr e = -1;
    int rc = ncg_regex(b, re, plen, flags & 1, (flags >> 1) & 1, &e, &err);
    if (rc == 0) {
        if (e < 0) abort();   /* success must give a valid handle */
        ncg_rule r = ncg_rule_new(b, "root");
        nuage_grammar *g = NULL;
        if (ncg_rule_set(b, r, e) == 0 && ncg_builder_finish(b, r, table(), &g, &err) == 0) {
            run_matcher(g, subj, slen);
            nuage_grammar_free(g);
        }
    } else if (rc != NUAGE_E_UNSUPPORTED && rc != NUAGE_E_INVAL && rc != NUAGE_E_NOMEM) {
        abort();   /* only the documented refusals */
    } else if (!err.msg[0]) {
        abort();   /* a refusal always says why */
    }
    ncg_builder_free(b);
    free(re);
    return 0;
}

#include "fuzz_main.h"
