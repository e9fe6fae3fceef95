/*
 * test_constrain_gbnf.c - the GBNF front end: a JSON grammar in the style
 * of llama.cpp's json.gbnf, an arithmetic grammar, every repetition form,
 * escapes and classes, token references, and errors with line/column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"
#include <time.h>

#include "constrain/cg_internal.h"
#include "nuage/nuage.h"

static nuage_cg_tokens *T;

static int setup(void **st) {
    (void)st;
    static char bytes[256];
    const char *p[258];
    size_t l[258];
    uint8_t k[258];
    for (int i = 0; i < 256; i++) { bytes[i] = (char)i; p[i] = bytes + i; l[i] = 1; k[i] = 0; }
    p[256] = "<tool>"; l[256] = 6; k[256] = 1;
    p[257] = "</s>"; l[257] = 4; k[257] = 2;
    return ncg_tokens_from_strings(p, l, k, 258, &T);
}
static int teardown(void **st) { (void)st; nuage_cg_tokens_free(T); return 0; }

static nuage_grammar *gbnf(const char *src) {
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    int rc = nuage_grammar_from_gbnf(T, src, strlen(src), &g, &err);
    if (rc) fail_msg("gbnf: %d %s", rc, err.msg);
    return g;
}

static int run(nuage_grammar *g, const char *s) {
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    int r = nuage_matcher_accept_bytes(m, s, strlen(s)) ? -1 : nuage_matcher_is_accepting(m) ? 1 : 0;
    nuage_matcher_free(m);
    return r;
}

static const char json_gbnf[] =
    "# JSON, in the style of llama.cpp's grammars/json.gbnf\n"
    "root   ::= object\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "\n"
    "object ::=\n"
    "  \"{\" ws (\n"
    "            string \":\" ws value\n"
    "    (\",\" ws string \":\" ws value)*\n"
    "  )? \"}\" ws\n"
    "\n"
    "array  ::=\n"
    "  \"[\" ws (\n"
    "            value\n"
    "    (\",\" ws value)*\n"
    "  )? \"]\" ws\n"
    "\n"
    "string ::=\n"
    "  \"\\\"\" (\n"
    "    [^\"\\\\\\x7F\\x00-\\x1F] |\n"
    "    \"\\\\\" ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4}) # escapes\n"
    "  )* \"\\\"\" ws\n"
    "\n"
    "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws\n"
    "\n"
    "# Optional space: by convention, applied in this grammar after literal chars when allowed\n"
    "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

static void test_json(void **st) {
    (void)st;
    nuage_grammar *g = gbnf(json_gbnf);
    assert_int_equal(run(g, "{}"), 1);
    assert_int_equal(run(g, "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\n\"], \"b\": {\"c\": \"\xc3\xa9\xf0\x9f\x98\x80\"}}"), 1);
    assert_int_equal(run(g, "{\"a\":\n  [1]}"), 1);
    assert_int_equal(run(g, "{\"a\": 01}"), -1);
    assert_int_equal(run(g, "{\"a\": \"\x01\"}"), -1);
    assert_int_equal(run(g, "{\"a\": \"\\q\"}"), -1);
    assert_int_equal(run(g, "[1]"), -1);
    assert_int_equal(run(g, "{\"a\": [1, 2"), 0);
    nuage_grammar_free(g);
}

static void test_arithmetic(void **st) {
    (void)st;
    nuage_grammar *g = gbnf(
        "root  ::= (expr \"=\" ws term \"\\n\")+\n"
        "expr  ::= term ([-+*/] term)*\n"
        "term  ::= ident | num | \"(\" ws expr \")\" ws\n"
        "ident ::= [a-z] [a-z0-9_]* ws\n"
        "num   ::= [0-9]+ ws\n"
        "ws    ::= [ \\t\\n]*\n");
    assert_int_equal(run(g, "1+2=3\n"), 1);
    assert_int_equal(run(g, "(a +2) *b_1 = 42\nx=y\n"), 1);
    assert_int_equal(run(g, "(a + 2)=1\n"), -1);
    assert_int_equal(run(g, "(a + 2 = 4\n"), -1);
    assert_int_equal(run(g, "1+=3\n"), -1);
    nuage_grammar_free(g);
}

static void test_repetitions_classes_escapes(void **st) {
    (void)st;
    nuage_grammar *g = gbnf("root ::= \"a\"{2} \"b\"{1,} \"c\"{0,2} \"d\"{,1} [^a-z\\u00e9] . x\nx::=\"\\x41\\U0001F600\\\"\\\\\\t\"");
    assert_int_equal(run(g, "aab!" "\xc3\xa8" "A\xf0\x9f\x98\x80\"\\\t"), 1);
    assert_int_equal(run(g, "aabbbccd" "Z" "z" "A\xf0\x9f\x98\x80\"\\\t"), 1);
    assert_int_equal(run(g, "ab!"), -1);
    assert_int_equal(run(g, "aabcccd"), -1);
    assert_int_equal(run(g, "aabq"), -1);
    assert_int_equal(run(g, "aab\xc3\xa9"), -1);
    nuage_grammar_free(g);
    /* CRLF line ends, comments, a rule used before its definition */
    g = gbnf("root ::= item+ # items\r\n\r\nitem ::= [xy] | \"-\" # dash\r\n");
    assert_int_equal(run(g, "x-y"), 1);
    assert_int_equal(run(g, "z"), -1);
    nuage_grammar_free(g);
}

/* fuzz_gbnf found it (issue 12): a run of postfix operators nested one
 * repetition per operator, and "object+++++++++++++++++++" blew up the
 * subset construction (refused as "grammar too large", after 22 s for
 * one input under ASan: a libFuzzer timeout). A run now folds into
 * one operator with the same language: all '+' is x+, all '?' is x?,
 * any mix is x*. The fuzzer's input compiles in well under a second. */
static void test_postfix_runs_fold(void **st) {
    (void)st;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nuage_grammar *g = gbnf("root ::= object+++++++++++++++++++\n"
                            "object ::= \"{\" ws ( string \"x\"{4,} | \"y\"{,2}) \"}\"\n"
                            "string ::= \"\\\"\" [^*\\\\]* \"\\\"\"\n"
                            "ws ::= [ \\t\\n]{0,4}\n");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    assert_true(dt < 2.0);
    assert_int_equal(run(g, "{ y}{\"a\"xxxx}"), 1);
    assert_int_equal(run(g, ""), 0);
    nuage_grammar_free(g);
    g = gbnf("root ::= \"a\"++ \"b\"?? \"c\"+?");
    assert_int_equal(run(g, "ab"), 1);   /* c: x* */
    assert_int_equal(run(g, "aaccc"), 1);
    assert_int_equal(run(g, "abb"), -1); /* b: x? */
    assert_int_equal(run(g, "b"), -1);   /* a: x+ */
    nuage_grammar_free(g);
}

static void test_token_refs(void **st) {
    (void)st;
    nuage_grammar *g = gbnf("root ::= \"a\" <[256]> \"b\"");
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    assert_int_equal(nuage_matcher_accept_token(m, 'a'), 0);
    uint32_t mask[9];
    assert_int_equal(nuage_matcher_fill_mask(m, mask), 0);
    assert_true(mask[256 >> 5] & 1u);
    assert_int_equal(mask[0] | mask[1] | mask[2] | mask[3], 0);
    assert_int_equal(nuage_matcher_accept_token(m, 256), 0);
    assert_int_equal(nuage_matcher_accept_token(m, 'b'), 0);
    assert_int_equal(nuage_matcher_accept_token(m, 257), 0);
    assert_true(nuage_matcher_is_terminated(m));
    nuage_matcher_free(m);
    nuage_grammar_free(g);
}

static void expect_error(const char *src, int rc, const char *needle) {
    nuage_grammar *g = NULL;
    nuage_cg_error err;
    int got = nuage_grammar_from_gbnf(T, src, strlen(src), &g, &err);
    if (got != rc || !strstr(err.msg, needle)) fail_msg("'%s': got %d '%s', want %d '%s'", src, got, err.msg, rc, needle);
    assert_null(g);
}

static void test_errors(void **st) {
    (void)st;
    expect_error("root ::= \"a\" b", NUAGE_E_INVAL, "line 1, column 14: undefined rule 'b'");
    expect_error("root ::= \"a\"\nx ::= (\"b\"", NUAGE_E_INVAL, "line 2, column 7: unclosed group");
    expect_error("root ::= \"abc", NUAGE_E_INVAL, "unterminated string");
    expect_error("root ::= [a-", NUAGE_E_INVAL, "line 1");
    expect_error("r ::= \"a\"", NUAGE_E_INVAL, "no 'root' rule");
    expect_error("root ::= \"a\"\nroot ::= \"b\"", NUAGE_E_INVAL, "line 2, column 1: rule 'root' defined twice");
    expect_error("root := \"a\"", NUAGE_E_INVAL, "expected '::='");
    expect_error("root ::= \"\\q\"", NUAGE_E_INVAL, "unknown escape");
    expect_error("root ::= [z-a]", NUAGE_E_INVAL, "out of order");
    expect_error("root ::= \"a\"{3,1}", NUAGE_E_INVAL, "maximum below minimum");
    expect_error("root ::= root \"a\" | \"b\"", NUAGE_E_INVAL, "left recursion");
    expect_error("root ::= \"x\"{1000000}", NUAGE_E_UNSUPPORTED, "too large");
    expect_error("root ::= <[999999]>", NUAGE_E_INVAL, "out of the vocabulary");
    expect_error("root ::= <nope>", NUAGE_E_UNSUPPORTED, "vocabulary");
    /* deep nesting is refused, not a stack overflow */
    size_t n = 100000;
    char *deep = malloc(2 * n + 16);
    strcpy(deep, "root ::= ");
    memset(deep + 9, '(', n);
    memset(deep + 9 + n, ')', n);
    deep[9 + 2 * n] = 0;
    expect_error(deep, NUAGE_E_INVAL, "nested too deeply");
    free(deep);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_arithmetic),
        cmocka_unit_test(test_repetitions_classes_escapes),
        cmocka_unit_test(test_postfix_runs_fold),
        cmocka_unit_test(test_token_refs),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
