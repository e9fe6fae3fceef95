/*
 * test_template_bounds.c - a hostile chat template costs a bounded amount
 * of time and memory (issue 12, found by tests/fuzz/fuzz_jinja.c: nested
 * loops of 10M iterations rendered for a second of CPU). Every render
 * below must end in an ordinary NUAGE_E_TEMPLATE error naming the bound
 * (steps, bytes built, recursion), while a realistic large render -- a
 * 20,000-message conversation through ChatML -- still succeeds. And a
 * failing render frees what it built (fuzz_jinja found a dict literal
 * whose value failed to evaluate leaked; the ASan build checks it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nuage/nuage.h"
#include "nuage/template.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Render src over messages; returns the code, err filled. */
static int render(const char *src, const char *messages, char *err, size_t errlen, size_t *out_len) {
    nuage_template *t = NULL;
    assert_int_equal(nuage_template_parse(src, strlen(src), &t, err, errlen), 0);
    nuage_template_input in = {.messages_json = messages, .add_generation_prompt = true, .now = 0};
    char *out = NULL;
    size_t n = 0;
    double t0 = now_s();
    int rc = nuage_template_render(t, &in, &out, &n, err, errlen);
    print_message("%.60s...: rc %d in %.3f s%s%s\n", src, rc, now_s() - t0, rc ? ": " : "", rc ? err : "");
    free(out);
    nuage_template_free(t);
    if (out_len) *out_len = n;
    return rc;
}

static const char one_msg[] = "[{\"role\":\"user\",\"content\":\"hi\"}]";

static void test_loops_bounded(void **state) {
    (void)state;
    char err[256];
    /* 6M iterations: more than the step budget */
    assert_int_equal(render("{% for i in range(6000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", one_msg,
                            err, sizeof err, NULL),
                     NUAGE_E_TEMPLATE);
    assert_non_null(strstr(err, "steps"));
    assert_int_equal(render("{% for i in range(1000) %}{% for j in range(10001) %}{{ i * j }}{% endfor %}{% endfor %}",
                            one_msg, err, sizeof err, NULL),
                     NUAGE_E_TEMPLATE);
}

static void test_string_blowup_bounded(void **state) {
    (void)state;
    char err[256];
    /* 40 strings of 8 MB: 320 MB built, over the work budget (64 MiB) */
    assert_int_equal(render("{% for i in range(40) %}{% set x = 'a' * 8000000 %}{% endfor %}", one_msg, err,
                            sizeof err, NULL),
                     NUAGE_E_TEMPLATE);
    assert_non_null(strstr(err, "bytes"));
    /* doubling: over the size of one string */
    assert_int_equal(render("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                            "{% endfor %}{{ ns.s }}",
                            one_msg, err, sizeof err, NULL),
                     NUAGE_E_TEMPLATE);
}

static void test_recursion_bounded(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", one_msg, err, sizeof err, NULL),
                     NUAGE_E_TEMPLATE);
    /* exponential fan-out: bounded by steps, not by depth */
    assert_int_equal(render("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
                            one_msg, err, sizeof err, NULL),
                     NUAGE_E_TEMPLATE);
}

static void test_errors_free_what_was_built(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(render("{{ {'a': 1, 'b': undefined_name + 1} | items | list }}", one_msg, err, sizeof err, NULL),
                     NUAGE_E_TEMPLATE);
    assert_non_null(strstr(err, "undefined"));
    assert_int_equal(render("{{ {'k': 1, 'j': 1 / 0} }}", one_msg, err, sizeof err, NULL), NUAGE_E_TEMPLATE);
    assert_int_equal(render("{{ {[1]: 2} }}", one_msg, err, sizeof err, NULL), NUAGE_E_TEMPLATE);
    assert_non_null(strstr(err, "unhashable"));
}

static void test_large_conversation_fits(void **state) {
    (void)state;
    size_t cap = 20000 * 64 + 16, n = 0;
    char *m = malloc(cap);
    assert_non_null(m);
    n += (size_t)snprintf(m + n, cap - n, "[");
    for (int i = 0; i < 20000; i++)
        n += (size_t)snprintf(m + n, cap - n, "%s{\"role\":\"%s\",\"content\":\"hello there number %d\"}", i ? "," : "",
                              i % 2 ? "assistant" : "user", i);
    snprintf(m + n, cap - n, "]");
    char err[256];
    size_t out = 0;
    assert_int_equal(render("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
                            m, err, sizeof err, &out),
                     0);
    assert_true(out > 1000000);
    free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loops_bounded),
        cmocka_unit_test(test_string_blowup_bounded),
        cmocka_unit_test(test_recursion_bounded),
        cmocka_unit_test(test_errors_free_what_was_built),
        cmocka_unit_test(test_large_conversation_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
