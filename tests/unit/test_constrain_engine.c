/*
 * test_constrain_engine.c - the constrained-decoding engine core: builder,
 * compilation to per-rule DFAs, the matcher (bytes, tokens, rollback,
 * EOS), and masks checked against brute force (every token tried with
 * accept_token + rollback). A token table made of strings (all 256 single
 * bytes plus multi-byte pieces, a control token, an EOS) keeps these
 * tests independent of ../shared; test_constrain_vocab.c does the same on
 * real vocabularies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include "constrain/cg_internal.h"
#include "nuage/nuage.h"

static const char *extra[] = {"ab", "abc", "abd", "{\"", "\"}", "\xc3\xa9", "\xc3", "\xa9x", "aaaa", "12", "1.5",
                              "((", "))", "true", "null", ", ", " \"", "x\xe2\x82", "\xac!"};
#define N_EXTRA (sizeof extra / sizeof *extra)
#define TOK_CALL (256 + (int32_t)N_EXTRA)   /* control token "<call>" */
#define TOK_EOS (TOK_CALL + 1)              /* control, end of generation */
#define N_TOK (TOK_EOS + 1)

static nuage_cg_tokens *small_table(void) {
    static char bytes[256];
    const char *p[N_TOK];
    size_t l[N_TOK];
    uint8_t k[N_TOK];
    for (int i = 0; i < 256; i++) { bytes[i] = (char)i; p[i] = bytes + i; l[i] = 1; k[i] = 0; }
    for (size_t i = 0; i < N_EXTRA; i++) { p[256 + i] = extra[i]; l[256 + i] = strlen(extra[i]); k[256 + i] = 0; }
    p[TOK_CALL] = "<call>"; l[TOK_CALL] = 6; k[TOK_CALL] = 1;
    p[TOK_EOS] = "</s>"; l[TOK_EOS] = 4; k[TOK_EOS] = 2;
    nuage_cg_tokens *t = NULL;
    assert_int_equal(ncg_tokens_from_strings(p, l, k, N_TOK, &t), 0);
    return t;
}

static nuage_cg_tokens *T;

static int setup(void **st) { (void)st; T = small_table(); return 0; }
static int teardown(void **st) { (void)st; nuage_cg_tokens_free(T); return 0; }

/* 1 when s is a complete sentence, 0 a viable prefix only, -1 rejected. */
static int run(nuage_grammar *g, const char *s, size_t n) {
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    int r = nuage_matcher_accept_bytes(m, s, n) ? -1 : nuage_matcher_is_accepting(m) ? 1 : 0;
    nuage_matcher_free(m);
    return r;
}
#define RUN(g, s) run(g, s, strlen(s))

static nuage_grammar *finish(ncg_builder *b, ncg_rule r) {
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    int rc = ncg_builder_finish(b, r, T, &g, &err);
    if (rc) fail_msg("finish: %d %s", rc, err.msg);
    ncg_builder_free(b);
    return g;
}

static nuage_grammar *one_rule(ncg_builder *b, ncg_expr e) {
    ncg_rule r = ncg_rule_new(b, "root");
    assert_int_equal(ncg_rule_set(b, r, e), 0);
    return finish(b, r);
}

static void test_literals_and_repeats(void **st) {
    (void)st;
    ncg_builder *b = ncg_builder_new();
    /* "a" ("bc" | "d"){2,3} [x-z]* */
    ncg_expr body = ncg_seq2(b, ncg_str(b, "a"),
                             ncg_seq2(b, ncg_repeat(b, ncg_alt2(b, ncg_str(b, "bc"), ncg_str(b, "d")), 2, 3),
                                      ncg_repeat(b, ncg_byte_range(b, 'x', 'z'), 0, NCG_INF)));
    nuage_grammar *g = one_rule(b, body);
    assert_int_equal(RUN(g, "a"), 0);
    assert_int_equal(RUN(g, "abc"), 0);
    assert_int_equal(RUN(g, "abcd"), 1);
    assert_int_equal(RUN(g, "adddxyzzy"), 1);
    assert_int_equal(RUN(g, "adddd"), -1);
    assert_int_equal(RUN(g, "ab"), 0);
    assert_int_equal(RUN(g, "abd"), -1);
    assert_int_equal(RUN(g, "ddd"), -1);
    assert_int_equal(RUN(g, ""), 0);
    nuage_grammar_free(g);
}

static void test_char_ranges_utf8(void **st) {
    (void)st;
    ncg_builder *b = ncg_builder_new();
    /* one code point in [a-c] U [é-ÿ] U [€] U [U+1F600-U+1F64F], then one not in [a-z] */
    uint32_t r1[] = {'a', 'c', 0xE9, 0xFF, 0x20AC, 0x20AC, 0x1F600, 0x1F64F};
    uint32_t r2[] = {'a', 'z'};
    ncg_expr e = ncg_seq2(b, ncg_char_ranges(b, r1, 4, false), ncg_char_ranges(b, r2, 1, true));
    nuage_grammar *g = one_rule(b, e);
    assert_int_equal(RUN(g, "b!"), 1);
    assert_int_equal(RUN(g, "\xc3\xa9\xc3\xa9"), 1);           /* éé */
    assert_int_equal(RUN(g, "\xe2\x82\xac" "A"), 1);            /* €A */
    assert_int_equal(RUN(g, "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"), 1); /* 😀 U+10FFFF */
    assert_int_equal(RUN(g, "\xf0\x9f\x99\x90" "A"), -1);       /* U+1F650 */
    assert_int_equal(RUN(g, "\xc3\xa8" "A"), -1);               /* è */
    assert_int_equal(RUN(g, "bz"), -1);
    assert_int_equal(RUN(g, "b\xed\xa0\x80"), -1);              /* a surrogate */
    assert_int_equal(RUN(g, "b\xc0\x80"), -1);                  /* overlong */
    assert_int_equal(RUN(g, "b\xf4\x90\x80\x80"), -1);          /* above 10FFFF */
    assert_int_equal(RUN(g, "b\xe2\x82"), 0);                    /* incomplete: a prefix */
    nuage_grammar_free(g);
}

static void test_recursion_and_nullable(void **st) {
    (void)st;
    ncg_builder *b = ncg_builder_new();
    /* p ::= ( "(" p ")" )* ; opt ::= "x"? ; root ::= opt p opt "!" */
    ncg_rule p = ncg_rule_new(b, "p"), opt = ncg_rule_new(b, "opt"), root = ncg_rule_new(b, "root");
    ncg_expr items[] = {ncg_str(b, "("), ncg_ref(b, p), ncg_str(b, ")")};
    assert_int_equal(ncg_rule_set(b, p, ncg_repeat(b, ncg_seq(b, items, 3), 0, NCG_INF)), 0);
    assert_int_equal(ncg_rule_set(b, opt, ncg_opt(b, ncg_str(b, "x"))), 0);
    ncg_expr r[] = {ncg_ref(b, opt), ncg_ref(b, p), ncg_ref(b, opt), ncg_str(b, "!")};
    assert_int_equal(ncg_rule_set(b, root, ncg_seq(b, r, 4)), 0);
    nuage_grammar *g = finish(b, root);
    assert_int_equal(RUN(g, "!"), 1);
    assert_int_equal(RUN(g, "x!"), 1);
    assert_int_equal(RUN(g, "xx!"), 1);
    assert_int_equal(RUN(g, "(()())()x!"), 1);
    assert_int_equal(RUN(g, "((())"), 0);
    assert_int_equal(RUN(g, "(()))"), -1);
    assert_int_equal(RUN(g, "x(x"), -1);
    assert_int_equal(RUN(g, "xxx"), -1);
    /* deep nesting: 5000 levels, one step at a time */
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    for (int i = 0; i < 5000; i++) assert_int_equal(nuage_matcher_accept_bytes(m, "(", 1), 0);
    for (int i = 0; i < 5000; i++) assert_int_equal(nuage_matcher_accept_bytes(m, ")", 1), 0);
    assert_false(nuage_matcher_is_accepting(m));
    assert_int_equal(nuage_matcher_accept_bytes(m, ")", 1), NUAGE_E_INVAL);
    assert_int_equal(nuage_matcher_accept_bytes(m, "!", 1), 0);
    assert_true(nuage_matcher_is_accepting(m));
    assert_true(nuage_matcher_is_terminated(m));
    nuage_matcher_free(m);
    nuage_grammar_free(g);
}

static void test_right_recursion_and_refusals(void **st) {
    (void)st;
    nuage_cg_error err;
    nuage_grammar *g = NULL;
    /* list ::= "a" list | "" : right recursion, tail calls */
    ncg_builder *b = ncg_builder_new();
    ncg_rule l = ncg_rule_new(b, "list");
    assert_int_equal(ncg_rule_set(b, l, ncg_alt2(b, ncg_seq2(b, ncg_str(b, "a"), ncg_ref(b, l)), ncg_empty(b))), 0);
    g = finish(b, l);
    char buf[20001];
    memset(buf, 'a', 20000);
    assert_int_equal(run(g, buf, 20000), 1);
    nuage_grammar_free(g);

    /* e ::= e "+" "1" | "1" : left recursion is refused with the rule's name */
    b = ncg_builder_new();
    ncg_rule e = ncg_rule_new(b, "expr");
    ncg_expr it[] = {ncg_ref(b, e), ncg_str(b, "+"), ncg_str(b, "1")};
    ncg_rule_set(b, e, ncg_alt2(b, ncg_seq(b, it, 3), ncg_str(b, "1")));
    assert_int_equal(ncg_builder_finish(b, e, T, &g, &err), NUAGE_E_INVAL);
    assert_non_null(strstr(err.msg, "left recursion"));
    assert_non_null(strstr(err.msg, "expr"));
    ncg_builder_free(b);

    /* a rule without a body */
    b = ncg_builder_new();
    ncg_rule r = ncg_rule_new(b, "root"), u = ncg_rule_new(b, "undefined");
    ncg_rule_set(b, r, ncg_ref(b, u));
    assert_int_equal(ncg_builder_finish(b, r, T, &g, &err), NUAGE_E_INVAL);
    assert_non_null(strstr(err.msg, "undefined"));
    ncg_builder_free(b);

    /* x{1000000} and exponential sharing are refused, not exhausted */
    b = ncg_builder_new();
    r = ncg_rule_new(b, "root");
    ncg_rule_set(b, r, ncg_repeat(b, ncg_str(b, "xy"), 1000000, 1000000));
    assert_int_equal(ncg_builder_finish(b, r, T, &g, &err), NUAGE_E_UNSUPPORTED);
    ncg_builder_free(b);
    b = ncg_builder_new();
    r = ncg_rule_new(b, "root");
    ncg_expr x = ncg_str(b, "x");
    for (int i = 0; i < 64; i++) x = ncg_seq2(b, x, x);
    ncg_rule_set(b, r, x);
    assert_int_equal(ncg_builder_finish(b, r, T, &g, &err), NUAGE_E_UNSUPPORTED);
    ncg_builder_free(b);

    /* negative handles propagate */
    b = ncg_builder_new();
    assert_int_equal(ncg_seq2(b, NUAGE_E_NOMEM, ncg_str(b, "a")), NUAGE_E_NOMEM);
    assert_int_equal(ncg_repeat(b, ncg_str(b, "a"), 3, 2), NUAGE_E_INVAL);
    ncg_builder_free(b);
}

static void test_nothing_is_pruned(void **st) {
    (void)st;
    ncg_builder *b = ncg_builder_new();
    /* "ab" nothing | "ac": after "a", only "c" may follow */
    ncg_expr e = ncg_alt2(b, ncg_seq2(b, ncg_str(b, "ab"), ncg_nothing(b)), ncg_str(b, "ac"));
    nuage_grammar *g = one_rule(b, e);
    assert_int_equal(RUN(g, "ab"), -1);
    assert_int_equal(RUN(g, "ac"), 1);
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    uint32_t mask[16];
    assert_int_equal(nuage_matcher_accept_bytes(m, "a", 1), 0);
    assert_int_equal(nuage_matcher_fill_mask(m, mask), 0);
    assert_true(mask['c' >> 5] >> ('c' & 31) & 1);
    assert_false(mask['b' >> 5] >> ('b' & 31) & 1);
    nuage_matcher_free(m);
    nuage_grammar_free(g);
}

static void test_rollback(void **st) {
    (void)st;
    ncg_builder *b = ncg_builder_new();
    ncg_rule p = ncg_rule_new(b, "p");
    ncg_expr it[] = {ncg_str(b, "["), ncg_repeat(b, ncg_ref(b, p), 0, NCG_INF), ncg_str(b, "]")};
    ncg_rule_set(b, p, ncg_seq(b, it, 3));
    nuage_grammar *g = finish(b, p);
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    assert_int_equal(nuage_matcher_accept_bytes(m, "[[", 2), 0);
    assert_int_equal(nuage_matcher_accept_bytes(m, "]", 1), 0);
    assert_int_equal(nuage_matcher_accept_bytes(m, "]]", 2), NUAGE_E_INVAL);   /* unchanged */
    assert_int_equal(nuage_matcher_accept_bytes(m, "]", 1), 0);
    assert_true(nuage_matcher_is_accepting(m));
    assert_int_equal(nuage_matcher_rollback(m, 2), 0);
    assert_false(nuage_matcher_is_accepting(m));
    assert_int_equal(nuage_matcher_accept_bytes(m, "[]]]", 4), 0);   /* "[[" + "[]]]" */
    assert_true(nuage_matcher_is_accepting(m));
    assert_int_equal(nuage_matcher_rollback(m, 2), 0);               /* back to the start */
    assert_int_equal(nuage_matcher_rollback(m, 1), NUAGE_E_RANGE);
    assert_int_equal(nuage_matcher_accept_bytes(m, "]", 1), NUAGE_E_INVAL);
    assert_int_equal(nuage_matcher_accept_bytes(m, "[]", 2), 0);
    assert_true(nuage_matcher_is_terminated(m));
    nuage_matcher_free(m);
    nuage_grammar_free(g);
}

/* ---- masks against brute force ---- */

static void check_mask(nuage_matcher *m) {
    uint32_t mask[(N_TOK + 31) / 32];
    assert_int_equal(nuage_matcher_fill_mask(m, mask), 0);
    for (int32_t tok = 0; tok < N_TOK; tok++) {
        bool bit = mask[tok >> 5] >> (tok & 31) & 1;
        int rc = nuage_matcher_accept_token(m, tok);
        if (rc == 0) assert_int_equal(nuage_matcher_rollback(m, 1), 0);
        if (bit != (rc == 0)) fail_msg("token %d: mask %d, accept %d", tok, bit, rc);
    }
}

/* Drive m along the tokens, checking the mask before each. */
static void drive(nuage_grammar *g, const int32_t *toks, size_t n, bool final_accepting) {
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    for (size_t i = 0; i < n; i++) {
        check_mask(m);
        if (nuage_matcher_accept_token(m, toks[i])) fail_msg("token %zu (%d) refused", i, toks[i]);
    }
    check_mask(m);
    assert_int_equal(nuage_matcher_is_accepting(m), final_accepting);
    if (final_accepting) {
        assert_int_equal(nuage_matcher_accept_token(m, TOK_EOS), 0);
        assert_true(nuage_matcher_is_terminated(m));
        uint32_t mask[(N_TOK + 31) / 32];
        assert_int_equal(nuage_matcher_fill_mask(m, mask), 0);
        for (size_t i = 0; i < sizeof mask / sizeof *mask; i++) assert_int_equal(mask[i], 0);
    } else {
        assert_int_equal(nuage_matcher_accept_token(m, TOK_EOS), NUAGE_E_INVAL);
    }
    nuage_matcher_free(m);
}

static void test_masks_brute_force(void **st) {
    (void)st;
    ncg_builder *b = ncg_builder_new();
    /* value ::= "{\"" [a-z]* "\": " value "}" | "[" (value (", " value)*)? "]" | [0-9]+ ("." [0-9]+)? | "true" | "null" | "é"+ */
    ncg_rule v = ncg_rule_new(b, "value");
    ncg_expr digits = ncg_repeat(b, ncg_byte_range(b, '0', '9'), 1, NCG_INF);
    ncg_expr obj[] = {ncg_str(b, "{\""), ncg_repeat(b, ncg_byte_range(b, 'a', 'z'), 0, NCG_INF), ncg_str(b, "\": "),
                      ncg_ref(b, v), ncg_str(b, "}")};
    ncg_expr more = ncg_repeat(b, ncg_seq2(b, ncg_str(b, ", "), ncg_ref(b, v)), 0, NCG_INF);
    ncg_expr arr[] = {ncg_str(b, "["), ncg_opt(b, ncg_seq2(b, ncg_ref(b, v), more)), ncg_str(b, "]")};
    uint32_t e_acute[] = {0xE9, 0xE9};
    ncg_expr alts[] = {ncg_seq(b, obj, 5), ncg_seq(b, arr, 3),
                       ncg_seq2(b, digits, ncg_opt(b, ncg_seq2(b, ncg_str(b, "."), digits))), ncg_str(b, "true"),
                       ncg_str(b, "null"), ncg_repeat(b, ncg_char_ranges(b, e_acute, 1, false), 1, NCG_INF)};
    ncg_rule_set(b, v, ncg_alt(b, alts, 6));
    nuage_grammar *g = finish(b, v);
    /* {"ab": [12, 1.5, é<split é>]} as tokens */
    int32_t t_obj[] = {256 + 3, 'a', 'b', '"', ':', ' ', '[', 256 + 9, 256 + 15, 256 + 10, ',', ' ',
                       256 + 5, 256 + 6, 0xa9, ']', '}'};
    drive(g, t_obj, sizeof t_obj / sizeof *t_obj, true);
    int32_t t_part[] = {'[', '1', 256 + 15, 't'};
    drive(g, t_part, 4, false);
    nuage_grammar_free(g);
}

static void test_special_tokens(void **st) {
    (void)st;
    ncg_builder *b = ncg_builder_new();
    /* "x"* <call> "ab" : the control token only where named, never its bytes */
    ncg_expr it[] = {ncg_repeat(b, ncg_str(b, "x"), 0, NCG_INF), ncg_token(b, TOK_CALL), ncg_str(b, "ab")};
    nuage_grammar *g = one_rule(b, ncg_seq(b, it, 3));
    int32_t toks[] = {'x', 'x', TOK_CALL, 256 + 0};
    drive(g, toks, 4, true);
    assert_int_equal(RUN(g, "xx<call>ab"), -1);
    nuage_grammar_free(g);
    /* a grammar that does not name <call> never allows it */
    b = ncg_builder_new();
    g = one_rule(b, ncg_repeat(b, ncg_byte_range(b, 0, 255), 0, NCG_INF));
    int32_t any[] = {'<', 256 + 17, 256 + 18};
    drive(g, any, 3, true);
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    assert_int_equal(nuage_matcher_accept_token(m, TOK_CALL), NUAGE_E_INVAL);
    nuage_matcher_free(m);
    nuage_grammar_free(g);
}

static void test_choices_api(void **st) {
    (void)st;
    const char *ch[] = {"yes", "no", "maybe so"};
    size_t len[] = {3, 2, 8};
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    assert_int_equal(nuage_grammar_from_choices(T, ch, len, 3, &g, &err), 0);
    assert_int_equal(RUN(g, "yes"), 1);
    assert_int_equal(RUN(g, "maybe"), 0);
    assert_int_equal(RUN(g, "maybe so"), 1);
    assert_int_equal(RUN(g, "yess"), -1);
    nuage_grammar *g2 = nuage_grammar_retain(g);
    nuage_grammar_free(g);
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g2, &m), 0);
    nuage_grammar_free(g2);   /* the matcher keeps it alive */
    assert_int_equal(nuage_matcher_accept_bytes(m, "no", 2), 0);
    assert_true(nuage_matcher_is_terminated(m));
    nuage_matcher_free(m);
    assert_int_equal(nuage_grammar_from_json_schema(T, "{\"type\":", 8, NULL, &g, &err), NUAGE_E_INVAL);
    assert_null(g);
}

/* End of generation after any number of steps: the step it records repeats
 * the current one from the matcher's own history, which may have to grow
 * right then (a use-after-free under ASan before the fix). */
static void test_eos_at_history_growth(void **st) {
    (void)st;
    ncg_builder *b = ncg_builder_new();
    ncg_rule r = ncg_rule_new(b, "root");
    assert_int_equal(ncg_rule_set(b, r, ncg_repeat(b, ncg_str(b, "a"), 0, NCG_INF)), 0);
    nuage_grammar *g = finish(b, r);   /* frees b */
    for (int k = 0; k < 600; k++) {
        nuage_matcher *m = NULL;
        assert_int_equal(nuage_matcher_new(g, &m), 0);
        for (int i = 0; i < k; i++) assert_int_equal(nuage_matcher_accept_token(m, 'a'), 0);
        assert_int_equal(nuage_matcher_accept_token(m, TOK_EOS), 0);
        assert_true(nuage_matcher_is_terminated(m));
        assert_int_equal(nuage_matcher_rollback(m, 1), 0);
        assert_true(nuage_matcher_is_accepting(m));
        assert_false(nuage_matcher_is_terminated(m));
        nuage_matcher_free(m);
    }
    nuage_grammar_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals_and_repeats),
        cmocka_unit_test(test_char_ranges_utf8),
        cmocka_unit_test(test_recursion_and_nullable),
        cmocka_unit_test(test_right_recursion_and_refusals),
        cmocka_unit_test(test_nothing_is_pruned),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_masks_brute_force),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_choices_api),
        cmocka_unit_test(test_eos_at_history_growth),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
