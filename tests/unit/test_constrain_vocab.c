/*
 * test_constrain_vocab.c - token masks on real vocabularies from
 * ../shared/vocab: the 102k-token byte-level BPE deepseek-llm vocabulary
 * and the SPM llama vocabulary (byte-fallback tokens, '▁' spaces).
 *
 * A JSON grammar written with the builder drives a matcher along the
 * tokenization of JSON texts (multi-byte UTF-8 split across tokens
 * included); at every step the mask must equal brute force (each token of
 * the vocabulary tried with accept_token, then rolled back), control
 * tokens must be masked out, and end-of-generation allowed exactly at the
 * end. Skipped (77) without ../shared.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include "constrain/cg_internal.h"
#include "engine/gguf.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"

static nuage_vocab *load_vocab(const char *rel) {
    const char *path = nuage_test_shared_path(rel);
    char err[256] = {0};
    nuage_gguf *g = NULL;
    if (nuage_gguf_open(path, &g, err, sizeof err)) fail_msg("open %s: %s", path, err);
    nuage_vocab *v = NULL;
    int rc = nuage_vocab_from_gguf(g, &v, err, sizeof err);
    nuage_gguf_close(g);
    if (rc) fail_msg("vocab %s: %s", path, err);
    return v;
}

/* A generic JSON value grammar, whitespace runs of at most 4. */
static nuage_grammar *json_grammar(const nuage_cg_tokens *t) {
    ncg_builder *b = ncg_builder_new();
    ncg_rule value = ncg_rule_new(b, "value"), str = ncg_rule_new(b, "string"), root = ncg_rule_new(b, "root");
    ncg_expr ws = ncg_repeat(b, ncg_alt2(b, ncg_str(b, " "), ncg_str(b, "\n")), 0, 4);
    uint32_t plain[] = {0x20, 0x21, 0x23, 0x5B, 0x5D, 0x10FFFF};
    uint8_t escset[32] = {0};
    for (const char *c = "\"\\/bfnrt"; *c; c++) escset[(uint8_t)*c >> 3] |= (uint8_t)(1u << (*c & 7));
    ncg_expr hex = ncg_alt2(b, ncg_byte_range(b, '0', '9'), ncg_byte_range(b, 'a', 'f'));
    ncg_expr esc = ncg_seq2(b, ncg_str(b, "\\"), ncg_alt2(b, ncg_byteset(b, escset),
                                                         ncg_seq2(b, ncg_str(b, "u"), ncg_repeat(b, hex, 4, 4))));
    ncg_expr s_items[] = {ncg_str(b, "\""), ncg_repeat(b, ncg_alt2(b, ncg_char_ranges(b, plain, 3, false), esc), 0, NCG_INF),
                          ncg_str(b, "\"")};
    ncg_rule_set(b, str, ncg_seq(b, s_items, 3));
    ncg_expr digits = ncg_repeat(b, ncg_byte_range(b, '0', '9'), 1, NCG_INF);
    ncg_expr num[] = {ncg_opt(b, ncg_str(b, "-")), ncg_alt2(b, ncg_str(b, "0"), ncg_seq2(b, ncg_byte_range(b, '1', '9'),
                      ncg_repeat(b, ncg_byte_range(b, '0', '9'), 0, NCG_INF))),
                      ncg_opt(b, ncg_seq2(b, ncg_str(b, "."), digits)),
                      ncg_opt(b, ncg_seq(b, (ncg_expr[]){ncg_alt2(b, ncg_str(b, "e"), ncg_str(b, "E")),
                                                        ncg_opt(b, ncg_alt2(b, ncg_str(b, "+"), ncg_str(b, "-"))), digits}, 3))};
    ncg_expr member = ncg_seq(b, (ncg_expr[]){ws, ncg_ref(b, str), ws, ncg_str(b, ":"), ws, ncg_ref(b, value), ws}, 7);
    ncg_expr obj = ncg_seq(b, (ncg_expr[]){ncg_str(b, "{"), ncg_alt2(b, ws, ncg_seq2(b, member,
                           ncg_repeat(b, ncg_seq2(b, ncg_str(b, ","), member), 0, NCG_INF))), ncg_str(b, "}")}, 3);
    ncg_expr elem = ncg_seq(b, (ncg_expr[]){ws, ncg_ref(b, value), ws}, 3);
    ncg_expr arr = ncg_seq(b, (ncg_expr[]){ncg_str(b, "["), ncg_alt2(b, ws, ncg_seq2(b, elem,
                           ncg_repeat(b, ncg_seq2(b, ncg_str(b, ","), elem), 0, NCG_INF))), ncg_str(b, "]")}, 3);
    ncg_expr alts[] = {obj, arr, ncg_ref(b, str), ncg_seq(b, num, 4), ncg_str(b, "true"), ncg_str(b, "false"), ncg_str(b, "null")};
    ncg_rule_set(b, value, ncg_alt(b, alts, 7));
    ncg_rule_set(b, root, ncg_seq(b, (ncg_expr[]){ws, ncg_ref(b, value), ws}, 3));
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    int rc = ncg_builder_finish(b, root, t, &g, &err);
    if (rc) fail_msg("json grammar: %s", err.msg);
    ncg_builder_free(b);
    return g;
}

static void check_mask(nuage_matcher *m, const nuage_cg_tokens *t, const nuage_vocab *v, bool brute) {
    size_t nw = nuage_cg_mask_words(t);
    uint32_t *mask = malloc(nw * sizeof *mask);
    assert_int_equal(nuage_matcher_fill_mask(m, mask), 0);
    int32_t nv = nuage_cg_tokens_n_vocab(t);
    bool acc = nuage_matcher_is_accepting(m);
    for (int32_t tok = 0; tok < nv; tok++) {
        bool bit = mask[tok >> 5] >> (tok & 31) & 1;
        if (nuage_vocab_is_eog(v, tok)) { assert_int_equal(bit, acc); continue; }
        if (nuage_vocab_is_control(v, tok)) assert_false(bit);
        if (!brute) continue;
        int rc = nuage_matcher_accept_token(m, tok);
        if (rc == 0) assert_int_equal(nuage_matcher_rollback(m, 1), 0);
        if (bit != (rc == 0)) fail_msg("token %d '%s': mask %d, accept %d", tok, nuage_vocab_token_text(v, tok), bit, rc);
    }
    free(mask);
}

static void drive_text(const char *vocab_file, const char *const *texts, size_t n_texts) {
    nuage_vocab *v = load_vocab(vocab_file);
    nuage_cg_tokens *t = NULL;
    assert_int_equal(nuage_cg_tokens_new(v, &t), 0);
    assert_int_equal(nuage_cg_tokens_n_vocab(t), nuage_vocab_n_tokens(v));
    assert_true(t->n_eog >= 1);
    nuage_grammar *g = json_grammar(t);
    for (size_t k = 0; k < n_texts; k++) {
        const char *s = texts[k];
        int32_t ids[512];
        int n = nuage_tokenize(v, s, strlen(s), ids, 512, false, false);
        assert_true(n > 0 && n <= 512);
        nuage_matcher *m = NULL;
        assert_int_equal(nuage_matcher_new(g, &m), 0);
        for (int i = 0; i < n; i++) {
            check_mask(m, t, v, i < 12 || i % 5 == 0);
            if (nuage_matcher_accept_token(m, ids[i]))
                fail_msg("text %zu token %d (%d '%s') refused", k, i, ids[i], nuage_vocab_token_text(v, ids[i]));
        }
        check_mask(m, t, v, true);
        assert_true(nuage_matcher_is_accepting(m));
        assert_int_equal(nuage_matcher_accept_token(m, t->eog[0]), 0);
        assert_true(nuage_matcher_is_terminated(m));
        /* rolling everything back gives the start again: the first token is allowed, EOS is not */
        assert_int_equal(nuage_matcher_rollback(m, n + 1), 0);
        assert_int_equal(nuage_matcher_accept_token(m, t->eog[0]), NUAGE_E_INVAL);
        assert_int_equal(nuage_matcher_accept_token(m, ids[0]), 0);
        nuage_matcher_free(m);
    }
    /* an invalid text is refused at its first bad token */
    int32_t ids[64];
    int n = nuage_tokenize(v, "{\"a\":tru}", 9, ids, 64, false, false);
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    int bad = -1;
    for (int i = 0; i < n && bad < 0; i++)
        if (nuage_matcher_accept_token(m, ids[i])) bad = i;
    assert_true(bad >= 0);
    nuage_matcher_free(m);
    nuage_grammar_free(g);
    nuage_cg_tokens_free(t);
    nuage_vocab_free(v);
}

static const char *texts[] = {
    "{\"name\":\"Zo\xc3\xab \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac\",\"tags\":[\"a b\",1.5e3,true,null],\"n\":{\"x\":[]}}",
    "[\n  {\"id\": -12, \"ok\": false},\n  \"\\u00e9\\n\"\n]",
};

static void test_deepseek(void **st) {
    (void)st;
    NUAGE_REQUIRE_SHARED();
    drive_text("vocab/ggml-vocab-deepseek-llm.gguf", texts, 2);
}

static void test_llama_spm(void **st) {
    (void)st;
    NUAGE_REQUIRE_SHARED();
    drive_text("vocab/ggml-vocab-llama-spm.gguf", texts, 2);
}

/* JSON Schema grammars (json_schema.c) through the cache: masks equal brute force. */
static void test_schemas_brute_force(void **st) {
    (void)st;
    NUAGE_REQUIRE_SHARED();
    nuage_vocab *v = load_vocab("vocab/ggml-vocab-deepseek-llm.gguf");
    nuage_cg_tokens *t = NULL;
    assert_int_equal(nuage_cg_tokens_new(v, &t), 0);
    static const char *cases[][2] = {
        {"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
         "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},\"required\":[\"name\"]}",
         "{\"name\":\"Zo\xc3\xab \\\"x\\\" \xe6\x97\xa5\",\"age\":42,\"tags\":[\"a\",\"b c\"]}"},
        {"{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"green\",1.5,null]}}", "[\"green\",null,1.5]"},
        {"{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"number\"},\"o\":{\"type\":\"object\"}}}",
         "{\"n\":-1.25e3,\"o\":{\"k\":[1,{\"z\":\"\xf0\x9f\x98\x80\"}]}}"},
        /* bounded strings: counted slice characters */
        {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"maxLength\":5},"
         "\"t\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":40}},\"required\":[\"s\",\"t\"]}",
         "{\"s\":\"ab\xc3\xa9 \",\"t\":\"hello world, \xe6\x97\xa5\xe6\x9c\xac \\n and more text\"}"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nuage_grammar *g = NULL;
        nuage_cg_error err;
        int rc = nuage_grammar_from_json_schema(t, cases[k][0], strlen(cases[k][0]), NULL, &g, &err);
        if (rc) fail_msg("schema %zu: %s", k, err.msg);
        const char *s = cases[k][1];
        int32_t ids[256];
        int n = nuage_tokenize(v, s, strlen(s), ids, 256, false, false);
        assert_true(n > 0 && n <= 256);
        nuage_matcher *m = NULL;
        assert_int_equal(nuage_matcher_new(g, &m), 0);
        for (int i = 0; i < n; i++) {
            check_mask(m, t, v, i < 8 || i % 3 == 0);
            if (nuage_matcher_accept_token(m, ids[i])) fail_msg("schema %zu token %d refused", k, i);
        }
        check_mask(m, t, v, true);
        assert_true(nuage_matcher_is_accepting(m));
        nuage_matcher_free(m);
        nuage_grammar_free(g);
    }
    nuage_cg_tokens_free(t);
    nuage_vocab_free(v);
}

/* Matchers of one grammar on several threads fill its cache at once. */
typedef struct { nuage_grammar *g; const int32_t *ids; int n; uint64_t sum; int rc; } thr_arg;

static void *thr_main(void *p) {
    thr_arg *a = p;
    nuage_matcher *m = NULL;
    if ((a->rc = nuage_matcher_new(a->g, &m))) return NULL;
    size_t nw = nuage_cg_mask_words(a->g->t);
    uint32_t *mask = malloc(nw * sizeof *mask);
    for (int i = 0; i < a->n && !a->rc; i++) {
        if ((a->rc = nuage_matcher_fill_mask(m, mask))) break;
        for (size_t w = 0; w < nw; w++) a->sum = a->sum * 31 + mask[w];
        a->rc = nuage_matcher_accept_token(m, a->ids[i]);
    }
    free(mask);
    nuage_matcher_free(m);
    return NULL;
}

static void test_threads(void **st) {
    (void)st;
    NUAGE_REQUIRE_SHARED();
    nuage_vocab *v = load_vocab("vocab/ggml-vocab-deepseek-llm.gguf");
    nuage_cg_tokens *t = NULL;
    assert_int_equal(nuage_cg_tokens_new(v, &t), 0);
    nuage_grammar *g = json_grammar(t), *g1 = json_grammar(t);
    int32_t ids[256];
    int n = nuage_tokenize(v, texts[0], strlen(texts[0]), ids, 256, false, false);
    thr_arg ref = {g1, ids, n, 0, 0};
    thr_main(&ref);   /* the reference: one thread, a grammar of its own */
    assert_int_equal(ref.rc, 0);
    pthread_t th[4];
    thr_arg a[4];
    for (int k = 0; k < 4; k++) {
        a[k] = (thr_arg){nuage_grammar_retain(g), ids, n, 0, 0};
        assert_int_equal(pthread_create(&th[k], NULL, thr_main, &a[k]), 0);
    }
    nuage_grammar_free(g);
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(a[k].rc, 0);
        assert_true(a[k].sum == ref.sum);
        nuage_grammar_free(a[k].g);
    }
    nuage_grammar_free(g1);
    nuage_cg_tokens_free(t);
    nuage_vocab_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deepseek),
        cmocka_unit_test(test_llama_spm),
        cmocka_unit_test(test_schemas_brute_force),
        cmocka_unit_test(test_threads),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
