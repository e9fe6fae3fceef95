/*
 * test_template_cases.c - every reference rendering of shared/templates.
 *
 * Each case of cases.json and cases_variables.json names a real chat
 * template, a conversation and the variables to bind; `expected` is what
 * Jinja2 (set up as Hugging Face's apply_chat_template sets it up) renders,
 * byte for byte, or an error carrying `error_message`. The clock is pinned
 * to 2026-11-29 00:00:00 UTC as in the reference run. Prints per-template
 * pass counts and, for a failure, the first differing byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "nuage/template.h"
#include "test_util.h"

/* 2026-11-29T00:00:00Z */
#define PINNED_NOW 1795910400

typedef struct { char name[128]; int pass, total; } tally;

static void show_diff(const char *tmpl, const char *cname, const char *got, size_t glen, const char *want) {
    size_t wlen = strlen(want), i = 0;
    while (i < glen && i < wlen && got[i] == want[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    print_message("FAIL %s/%s: first difference at byte %zu (got %zu bytes, want %zu)\n", tmpl, cname, i, glen, wlen);
    print_message("  got : ...%.*s...\n", (int)((glen - from) < 100 ? glen - from : 100), got + from);
    print_message("  want: ...%.*s...\n", (int)((wlen - from) < 100 ? wlen - from : 100), want + from);
}

static int run_file(const char *file, tally *t, int *nt) {
    char rel[256];
    snprintf(rel, sizeof rel, "templates/%s", file);
    json_error_t je;
    json_t *cases = json_load_file(nuage_test_shared_path(rel), 0, &je);
    assert_non_null(cases);
    int failures = 0;
    size_t i;
    json_t *cs;
    json_array_foreach(cases, i, cs) {
        const char *tname = json_string_value(json_object_get(cs, "template"));
        const char *cname = json_string_value(json_object_get(cs, "case"));
        assert_non_null(tname);
        int k;
        for (k = 0; k < *nt; k++)
            if (!strcmp(t[k].name, tname)) break;
        if (k == *nt) { snprintf(t[k].name, sizeof t[k].name, "%s", tname); (*nt)++; }
        t[k].total++;

        snprintf(rel, sizeof rel, "templates/%s", tname);
        size_t len = 0;
        char *src = nuage_test_read_file(nuage_test_shared_path(rel), &len);
        assert_non_null(src);
        char err[512];
        nuage_template *tp = NULL;
        int rc = nuage_template_parse(src, len, &tp, err, sizeof err);
        free(src);
        if (rc) {
            print_message("FAIL %s/%s: parse error: %s\n", tname, cname, err);
            failures++;
            continue;
        }
        json_t *bos = json_object_get(cs, "bos_token"), *eos = json_object_get(cs, "eos_token");
        json_t *tools = json_object_get(cs, "tools");
        nuage_template_input in = {
            .add_generation_prompt = json_is_true(json_object_get(cs, "add_generation_prompt")),
            .bos_token = json_string_value(bos),
            .eos_token = json_string_value(eos),
            .now = PINNED_NOW,
        };
        char *out = NULL;
        size_t olen = 0;
        rc = nuage_template_render_json(tp, json_object_get(cs, "messages"),
                                        json_is_null(tools) ? NULL : tools,
                                        json_object_get(cs, "variables"), &in, &out, &olen, err, sizeof err);
        bool ok;
        if (json_is_true(json_object_get(cs, "expect_error"))) {
            const char *want = json_string_value(json_object_get(cs, "error_message"));
            ok = rc == NUAGE_E_TEMPLATE && want && strstr(err, want);
            if (!ok) print_message("FAIL %s/%s: expected error '%s', got rc=%d err='%s'\n", tname, cname,
                                   want ? want : "", rc, rc ? err : "");
        } else {
            const char *want = json_string_value(json_object_get(cs, "expected"));
            ok = rc == 0 && want && olen == strlen(want) && memcmp(out, want, olen) == 0;
            if (!ok) {
                if (rc) print_message("FAIL %s/%s: render error: %s\n", tname, cname, err);
                else show_diff(tname, cname, out, olen, want);
            }
        }
        if (ok) t[k].pass++;
        else failures++;
        free(out);
        nuage_template_free(tp);
    }
    json_decref(cases);
    return failures;
}

static void test_all_cases(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    tally t[64];
    int nt = 0, fails = 0, pass = 0, total = 0;
    memset(t, 0, sizeof t);
    fails += run_file("cases.json", t, &nt);
    fails += run_file("cases_variables.json", t, &nt);
    for (int k = 0; k < nt; k++) {
        print_message("%-48s %3d / %3d\n", t[k].name, t[k].pass, t[k].total);
        pass += t[k].pass;
        total += t[k].total;
    }
    print_message("template cases: %d / %d passed\n", pass, total);
    assert_true(total > 0);
    assert_int_equal(fails, 0);
}

/* The SHA256SUMS list names exactly the templates the cases use. */
static void test_every_template_parses(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    size_t len;
    char *sums = nuage_test_read_file(nuage_test_shared_path("templates/SHA256SUMS"), &len);
    assert_non_null(sums);
    int n = 0;
    for (char *line = strtok(sums, "\n"); line; line = strtok(NULL, "\n")) {
        char *name = strrchr(line, ' ');
        if (!name) continue;
        name++;
        if (*name == '*') name++;
        char rel[256];
        snprintf(rel, sizeof rel, "templates/%s", name);
        size_t tl = 0;
        char *src = nuage_test_read_file(nuage_test_shared_path(rel), &tl);
        assert_non_null(src);
        nuage_template *tp = NULL;
        char err[256];
        int rc = nuage_template_parse(src, tl, &tp, err, sizeof err);
        if (rc) print_message("%s: %s\n", name, err);
        assert_int_equal(rc, 0);
        nuage_template_free(tp);
        free(src);
        n++;
    }
    free(sums);
    assert_true(n >= 12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_template_parses),
        cmocka_unit_test(test_all_cases),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return nuage_test_exit(rc);
}
