/*
 * test_tok_pre.c - BPE pre-tokenizers (regex word splitting).
 *
 * The vocabularies with test vectors exercise gpt-2, mpt, falcon,
 * starcoder, refact, deepseek-llm and the default pre-tokenizer; the
 * others (llama3, qwen2, deepseek-coder, ...) have no GGUF here, so their
 * regexes are checked on texts whose split follows directly from the
 * pattern's definition (leftmost alternative wins, greedy repetition, text
 * between matches is a word of its own, each regex of the list re-splits
 * the previous words), plus the llama.cpp quirks we reproduce: NEL (U+0085)
 * counts as whitespace, ECMAScript's $ matches only at the very end, and
 * a literal class spanning U+3000 does not match that space.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include "tokenizer/tok_internal.h"

/* Split text with pre-tokenizer `name`; compare with the '|'-joined words. */
static void check_split(const char *name, const char *text, const char *expect) {
    nuage__pre p;
    nuage__pre_flags f;
    const char *canon;
    char err[256] = {0};
    int rc = nuage__pre_init(&p, name, &f, &canon, err, sizeof err);
    if (rc) fail_msg("%s: %s", name, err);
    size_t *ends, n;
    size_t len = strlen(text);
    assert_int_equal(nuage__pre_split_ends(&p, text, len, &ends, &n), 0);
    char got[1024];
    size_t o = 0, a = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) got[o++] = '|';
        memcpy(got + o, text + a, ends[i] - a);
        o += ends[i] - a;
        a = ends[i];
    }
    got[o] = 0;
    if (strcmp(got, expect)) print_message("%s: '%s'\n  got      '%s'\n  expected '%s'\n", name, text, got, expect);
    assert_string_equal(got, expect);
    free(ends);
    nuage__pre_free(&p);
}

static void test_gpt2(void **state) {
    (void)state;
    check_split("gpt-2", "Hello world's  3.14!!  x", "Hello| world|'s| | 3|.|14|!!| | x");
    /* trailing whitespace run stays one word; NEL is whitespace */
    check_split("gpt-2", "x!\xc2\x85", "x|!|\xc2\x85");
    check_split("gpt-2", "end   ", "end|   ");
}

static void test_llama3(void **state) {
    (void)state;
    check_split("llama3", "Hello World'S 1234567 ok\n\n  x", "Hello| World|'S| |123|456|7| ok|\n\n| | x");
    check_split("llama-bpe", "(a) ...\r\nb", "(a|)| ...\r\n|b");
}

static void test_qwen2(void **state) {
    (void)state;
    /* digits one by one */
    check_split("qwen2", "x 2024", "x| |2|0|2|4");
}

static void test_deepseek(void **state) {
    (void)state;
    /* deepseek-coder: newlines alone, letters with one optional space,
     * punctuation, CJK runs, digits one by one */
    check_split("deepseek-coder", "ab, cd\n12", "ab|,| cd|\n|1|2");
    /* deepseek-llm: U+3000 (ideographic space) is not part of the CJK or punctuation
     * classes even though their ranges span it */
    check_split("deepseek-llm", "\xe4\xb8\xad\xe3\x80\x80\xe6\x96\x87", "\xe4\xb8\xad|\xe3\x80\x80|\xe6\x96\x87");
    check_split("deepseek-llm", "a  \n", "a|  |\n");
}

static void test_default_falcon(void **state) {
    (void)state;
    /* default: punctuation runs first, then gpt-2, then digit runs, then
     * groups of three digits */
    check_split("default", "a+b 12345", "a|+|b| |123|45");
    check_split("", "a+b 12345", "a|+|b| |123|45");
    check_split("falcon", "x `y` 1234", "x| |`|y|`| |123|4");
}

static void test_unknown(void **state) {
    (void)state;
    nuage__pre p;
    nuage__pre_flags f;
    const char *canon;
    char err[256] = {0};
    assert_int_equal(nuage__pre_init(&p, "no-such-pre", &f, &canon, err, sizeof err), NUAGE_E_UNSUPPORTED);
    assert_non_null(strstr(err, "no-such-pre"));
    /* every listed name compiles */
    const char *names[] = {"default", "llama3", "dbrx", "smaug-bpe", "deepseek-llm", "deepseek-coder",
                           "deepseek-v3", "falcon", "mpt", "starcoder", "refact", "command-r", "gpt-2",
                           "phi-2", "qwen2", "qwen35", "stablelm2", "poro-chat", "bloom", "viking",
                           "chatglm-bpe", "tekken", "gpt-4o", "chameleon", "bailingmoe", "seed-coder",
                           "superbpe", "olmo", "jais", "smollm", "exaone", "minerva-7b"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int rc = nuage__pre_init(&p, names[i], &f, &canon, err, sizeof err);
        if (rc) fail_msg("%s: %s", names[i], err);
        nuage__pre_free(&p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2),     cmocka_unit_test(test_llama3),
        cmocka_unit_test(test_qwen2),    cmocka_unit_test(test_deepseek),
        cmocka_unit_test(test_default_falcon), cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
