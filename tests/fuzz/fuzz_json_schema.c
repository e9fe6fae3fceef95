/*
 * fuzz_json_schema.c - libFuzzer harness for the JSON Schema front end
 * (json_schema*.c), through the grammar engine.
 *
 * Input: a JSON Schema, then optionally a NUL and an instance. Text that
 * jansson does not parse is skipped. A schema the compiler accepts is
 * finished against a 256-byte token table and the instance is fed to a
 * matcher in runs of 5 bytes, so malformed expressions, bad rule
 * structure (unset rules, left recursion) and engine bugs on unusual
 * grammars all show up. Any schema must return: compiled, or refused
 * with NUAGE_E_UNSUPPORTED / NUAGE_E_INVAL / NUAGE_E_NOMEM and a message
 * (the compiler bounds nesting, conjunction size, repeat counts; the
 * engine has state budgets). Self-referencing $ref loops, huge bounds,
 * deep nesting and odd types are what the seeds start from.
 *
 * Not built by CMake. Build and run (from the repository root; the
 * harness defines the five vocabulary functions tokens.c refers to, as
 * aborting stubs, so only the constrain sources are needed):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *       tests/fuzz/fuzz_json_schema.c src/constrain/?*.c -ljansson -lm -pthread -o fuzz_json_schema
 *   ./fuzz_json_schema -max_len=2048 -timeout=10 tests/fuzz/corpus/json_schema
 *
 * Without clang, defining NUAGE_FUZZ_MAIN adds a main() that runs the
 * harness over files given on the command line (to replay a crash with
 * gcc; same sources).
 */
#include <jansson.h>
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
int nuage_token_to_piece(const nuage_vocab *v, int32_t tok, char *buf, size_t cap, bool special) {
    (void)v; (void)tok; (void)buf; (void)cap; (void)special;
    abort();
}
int32_t nuage_vocab_find_n(const nuage_vocab *v, const char *text, size_t len) {
    (void)v; (void)text; (void)len;
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!table()) return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t slen = nul ? (size_t)(nul - data) : size;
    const char *inst = nul ? (const char *)nul + 1 : NULL;
    size_t ilen = nul ? size - slen - 1 : 0;
    json_error_t je;
    json_t *schema = json_loadb((const char *)data, slen, JSON_DECODE_ANY, &je);
    if (!schema) return 0;
    ncg_builder *b = ncg_builder_new();
    nuage_cg_error err;
    err.msg[0] = 0;
    nuage_cg_json_opts o = { .max_ws = size & 1 ? 2 : 0, .strict = (size & 2) != 0 };
    ncg_expr e = -1;
    int rc = ncg_json_schema(b, schema, &o, &e, &err);
    if (rc == 0) {
        if (e < 0) abort();   /* success must give a valid handle */
        ncg_rule r = ncg_rule_new(b, "root");
        nuage_grammar *g = NULL;
        if (ncg_rule_set(b, r, e) == 0 && ncg_builder_finish(b, r, table(), &g, &err) == 0) {
            nuage_matcher *m = NULL;
            if (nuage_matcher_new(g, &m) == 0) {
                for (size_t i = 0; inst && i < ilen; i += 5) {
                    size_t k = ilen - i < 5 ? ilen - i : 5;
                    if (nuage_matcher_accept_bytes(m, inst + i, k)) break;
                }
                (void)nuage_matcher_is_accepting(m);
                nuage_matcher_free(m);
            }
            nuage_grammar_free(g);
        }
    } else if (rc != NUAGE_E_UNSUPPORTED && rc != NUAGE_E_INVAL && rc != NUAGE_E_NOMEM) {
        abort();   /* only the documented refusals */
    } else if (!err.msg[0]) {
        abort();   /* a refusal always says why */
    }
    ncg_builder_free(b);
    json_decref(schema);
    return 0;
}

#include "fuzz_main.h"
