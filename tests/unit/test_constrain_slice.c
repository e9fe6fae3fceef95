/*
 * test_constrain_slice.c - the explored string slice (mask.c slice_bfs):
 * states that are not plain chains of string states (a string whose
 * characters go through a called rule, a string that must not equal an
 * enum value, search patterns, formats, long counted strings) accept the
 * slice tokens of at most K characters at once, K proven by exploring
 * their configuration sets, and their trie walks skip those subtrees.
 *
 * Each schema's matcher is driven along a valid instance tokenized with
 * the 102k-token deepseek-llm vocabulary; at the checked steps the mask
 * must equal brute force (every token tried with accept_token and rolled
 * back), and the whole instance, then end-of-generation, must be accepted.
 * An invalid instance must be refused. Skipped (77) without ../shared.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test_util.h"

#include "engine/gguf.h"
#include "nuage/constrain.h"
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

/* The mask of m against accept_token of every vocabulary token. */
static void check_brute(nuage_matcher *m, const nuage_cg_tokens *t, const nuage_vocab *v, size_t k, int step) {
    size_t nw = nuage_cg_mask_words(t);
    uint32_t *mask = malloc(nw * sizeof *mask);
    assert_non_null(mask);
    assert_int_equal(nuage_matcher_fill_mask(m, mask), 0);
    int32_t nv = nuage_cg_tokens_n_vocab(t);
    bool acc = nuage_matcher_is_accepting(m);
    for (int32_t tok = 0; tok < nv; tok++) {
        bool bit = mask[tok >> 5] >> (tok & 31) & 1;
        if (nuage_vocab_is_eog(v, tok)) {
            assert_int_equal(bit, acc);
            continue;
        }
        int rc = nuage_matcher_accept_token(m, tok);
        if (rc == 0) assert_int_equal(nuage_matcher_rollback(m, 1), 0);
        if (bit != (rc == 0))
            fail_msg("case %zu step %d token %d '%s': mask %d, accept %d", k, step, tok, nuage_vocab_token_text(v, tok),
                     bit, rc);
    }
    free(mask);
}

static void test_slice_states_brute_force(void **st) {
    (void)st;
    NUAGE_REQUIRE_SHARED();
    nuage_vocab *v = load_vocab("vocab/ggml-vocab-deepseek-llm.gguf");
    nuage_cg_tokens *t = NULL;
    assert_int_equal(nuage_cg_tokens_new(v, &t), 0);
    /* schema, valid instance, invalid instance */
    static const char *cases[][3] = {
        /* a pattern whose automaton tracks the '@' */
        {"{\"type\":\"object\",\"properties\":{\"email\":{\"type\":\"string\",\"pattern\":\"^\\\\S+@\\\\S+$\"}},"
         "\"required\":[\"email\"]}",
         "{\"email\":\"first.last+tag@example.com\"}", "{\"email\":\"no at sign\"}"},
        /* a string that must not be one of some values */
        {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"not\":{\"enum\":[\"abc\",\"abd\",\"\"]}}},"
         "\"required\":[\"s\"]}",
         "{\"s\":\"abcd and more \xc3\xa9\"}", "{\"s\":\"abc\"}"},
        /* counted through a called character rule: K is the characters left */
        {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":12}}",
         "[\"ab\",\"hello there\",\"x y z w v a\",\"\"]", "[\"this is thirteen\"]"},
        /* a long counted string and an unanchored search */
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":300},"
         "\"b\":{\"type\":\"string\",\"pattern\":\"[0-9]\"}},\"required\":[\"a\",\"b\"]}",
         "{\"a\":\"a fairly long sentence with \xe6\x97\xa5\xe6\x9c\xac text\",\"b\":\"release v2 notes\"}",
         "{\"a\":\"ab\",\"b\":\"x\"}"},
        /* formats */
        {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"format\":\"uri\"}}",
         "[\"https://example.com/a/b?q=1#frag\",\"mailto:someone@example.org\"]", "[\"not a uri\"]"},
        {"{\"type\":\"object\",\"properties\":{\"e\":{\"type\":\"string\",\"format\":\"email\"},"
         "\"h\":{\"type\":\"string\",\"format\":\"hostname\"}}}",
         "{\"e\":\"user.name@sub.example.com\",\"h\":\"api.example.net\"}", "{\"e\":\"a@@b\"}"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nuage_grammar *g = NULL;
        nuage_cg_error err;
        int rc = nuage_grammar_from_json_schema(t, cases[k][0], strlen(cases[k][0]), NULL, &g, &err);
        if (rc) fail_msg("schema %zu: %s", k, err.msg);
        for (int which = 1; which <= 2; which++) {
            const char *s = cases[k][which];
            int32_t ids[256];
            int n = nuage_tokenize(v, s, strlen(s), ids, 256, false, false);
            assert_true(n > 0 && n <= 256);
            nuage_matcher *m = NULL;
            assert_int_equal(nuage_matcher_new(g, &m), 0);
            int refused = -1;
            for (int i = 0; i < n && refused < 0; i++) {
                if (which == 1 && (i < 6 || i % 2 == 0)) check_brute(m, t, v, k, i);
                if (nuage_matcher_accept_token(m, ids[i])) refused = i;
            }
            if (which == 1) {
                if (refused >= 0) fail_msg("case %zu: valid instance refused at token %d", k, refused);
                check_brute(m, t, v, k, n);
                assert_true(nuage_matcher_is_accepting(m));
            } else if (refused < 0 && nuage_matcher_is_accepting(m)) {
                fail_msg("case %zu: invalid instance accepted", k);
            }
            nuage_matcher_free(m);
        }
        nuage_grammar_free(g);
    }
    nuage_cg_tokens_free(t);
    nuage_vocab_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_states_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
