/*
 * test_train_synth.c - the synthetic data is right and the splits are
 * disjoint.
 *
 * An independent checker re-derives every answer from the question text
 * alone (its own parsing, unit table, weekday list and the C library's
 * calendar via timegm), for thousands of generated items of every task,
 * and checks the reasoning too: every addition/subtraction column line's
 * arithmetic, the final accumulated digits, the running letter count. The
 * held-out and train splits of every task share no question and no
 * canonical key.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "test_util.h"
#include "train/synth.h"

/* All integers in s, in order (a '-' directly before a digit is not a sign
 * here: questions have no negative numbers). */
static int ints(const char *s, long long *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        if (isdigit((unsigned char)*s)) {
            out[n++] = strtoll(s, (char **)&s, 10);
        } else {
            s++;
        }
    }
    return n;
}

static const char *const WD[7] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

static int weekday_in(const char *s) {
    for (int i = 0; i < 7; i++)
        if (strstr(s, WD[i])) return i;
    return -1;
}

/* Unit name (singular or plural) -> size in its family's base unit. */
static long long unit_size(const char *name) {
    static const struct { const char *n; long long v; } U[] = {
        {"millimeter", 1}, {"centimeter", 10}, {"meter", 1000}, {"kilometer", 1000000},
        {"gram", 1}, {"kilogram", 1000}, {"milliliter", 1}, {"liter", 1000},
        {"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400}, {"week", 604800},
        {"inch", 1}, {"inches", 1}, {"foot", 12}, {"feet", 12}, {"yard", 36}, {"month", 1}, {"year", 12},
    };
    char base[64];
    snprintf(base, sizeof base, "%s", name);
    size_t n = strlen(base);
    for (size_t i = 0; i < sizeof U / sizeof U[0]; i++)
        if (!strcmp(base, U[i].n)) return U[i].v;
    if (n > 1 && base[n - 1] == 's') base[n - 1] = 0;
    for (size_t i = 0; i < sizeof U / sizeof U[0]; i++)
        if (!strcmp(base, U[i].n)) return U[i].v;
    return -1;
}

/* Words of the question that are unit names, in order. */
static int units_in(const char *q, long long *sz, int cap) {
    int n = 0;
    char w[64];
    const char *p = q;
    while (*p && n < cap) {
        while (*p && !isalpha((unsigned char)*p)) p++;
        int k = 0;
        while (isalpha((unsigned char)*p) && k < 63) w[k++] = *p++;
        w[k] = 0;
        if (k) {
            long long s = unit_size(w);
            if (s > 0) sz[n++] = s;
        }
    }
    return n;
}

/* Re-derive the answer from the question alone. */
static void expected(const nuage_synth_item *it, char *out, size_t cap) {
    const char *q = it->question;
    long long v[8];
    int n = ints(q, v, 8);
    switch (it->task) {
    case NUAGE_TASK_ADD: assert_int_equal(n, 2); snprintf(out, cap, "%lld", v[0] + v[1]); break;
    case NUAGE_TASK_MUL: assert_int_equal(n, 2); snprintf(out, cap, "%lld", v[0] * v[1]); break;
    case NUAGE_TASK_SUB:
        assert_int_equal(n, 2);
        snprintf(out, cap, "%lld", strstr(q, "Subtract") ? v[1] - v[0] : v[0] - v[1]);
        break;
    case NUAGE_TASK_CONVERT: {
        long long sz[4];
        assert_int_equal(units_in(q, sz, 4), 2);
        assert_int_equal(n, 1);
        /* "How many X are in N Y" / "How many X is N Y": target first;
         * "Convert N Y to X" / "N Y is how many X": source first */
        bool target_first = !strncmp(q, "How many", 8);
        long long from = target_first ? sz[1] : sz[0], to = target_first ? sz[0] : sz[1];
        assert_int_equal((v[0] * from) % to, 0);
        snprintf(out, cap, "%lld", v[0] * from / to);
        break;
    }
    case NUAGE_TASK_DATE:
        if (weekday_in(q) >= 0) {
            int w = weekday_in(q);
            assert_int_equal(n, 1);
            bool back = strstr(q, "ago") || strstr(q, "before");
            int r = (int)(((w + (back ? -v[0] : v[0])) % 7 + 7) % 7);
            snprintf(out, cap, "%s", WD[r]);
        } else {
            /* "... N days after YYYY-MM-DD" or "Add N days to YYYY-MM-DD." */
            assert_int_equal(n, 4);
            long long days = v[0], y = v[1], mo = v[2], d = v[3];
            struct tm tm = {.tm_year = (int)y - 1900, .tm_mon = (int)mo - 1, .tm_mday = (int)d, .tm_hour = 12};
            time_t t = timegm(&tm) + (time_t)days * 86400;
            struct tm r;
            gmtime_r(&t, &r);
            snprintf(out, cap, "%04d-%02d-%02d", r.tm_year + 1900, r.tm_mon + 1, r.tm_mday);
        }
        break;
    case NUAGE_TASK_REVERSE: case NUAGE_TASK_SORT: {
        long long a[8];
        int k = ints(q, a, 8);
        assert_true(k >= 3 && k <= 6);
        if (it->task == NUAGE_TASK_REVERSE)
            for (int i = 0; i < k / 2; i++) { long long t = a[i]; a[i] = a[k - 1 - i]; a[k - 1 - i] = t; }
        else
            for (int i = 1; i < k; i++)
                for (int j = i; j > 0 && a[j - 1] > a[j]; j--) { long long t = a[j]; a[j] = a[j - 1]; a[j - 1] = t; }
        out[0] = 0;
        for (int i = 0; i < k; i++) {
            size_t l = strlen(out);
            snprintf(out + l, cap - l, "%s%lld", i ? "," : "", a[i]);
        }
        break;
    }
    case NUAGE_TASK_COUNT: {
        /* the letter is the single-letter word; the word the longest one after "in"/"in the word" */
        char letter = 0, word[64] = {0};
        const char *p = q;
        while (*p) {
            while (*p && !isalpha((unsigned char)*p)) p++;
            char w[64];
            int k = 0;
            while (isalpha((unsigned char)*p) && k < 63) w[k++] = *p++;
            w[k] = 0;
            if (k == 1 && !letter) letter = w[0];
            if (k) snprintf(word, sizeof word, "%s", w);
        }
        /* the last word of the question is the counted word except in
         * "How many times does the letter 'x' appear in 'w'?" where it is too */
        int c = 0;
        for (const char *s = word; *s; s++) c += *s == letter;
        snprintf(out, cap, "%d", c);
        break;
    }
    default: out[0] = 0;
    }
}

/* Check the column lines "a+b+c=d cX -> R" of an addition/subtraction. */
static void check_columns(const nuage_synth_item *it) {
    bool add = it->task == NUAGE_TASK_ADD;
    char *th = strdup(it->think), *save = NULL, last[64] = "";
    int lines = 0;
    for (char *l = strtok_r(th, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        int a, b, c, d, co;
        char res[64];
        if (add ? sscanf(l, "%d+%d+%d=%d c%d -> %63s", &a, &b, &c, &d, &co, res) != 6
                : sscanf(l, "%d-%d-%d=%d b%d -> %63s", &a, &b, &c, &d, &co, res) != 6)
            continue;
        int s = add ? a + b + c : a - b - c;
        assert_int_equal(d, ((s % 10) + 10) % 10);
        assert_int_equal(co, add ? s >= 10 : s < 0);
        snprintf(last, sizeof last, "%s", res);
        lines++;
    }
    assert_true(lines >= 1);
    const char *p = last;
    while (*p == '0' && p[1]) p++;
    assert_string_equal(p, it->answer);
    free(th);
}

static void test_answers_rederived(void **state) {
    (void)state;
    nuage_rng r;
    nuage_rng_seed(&r, 2024);
    for (int t = 0; t < NUAGE_TASK_N; t++) {
        if (t == NUAGE_TASK_FACTS) continue;
        for (int digits = 1; digits <= 3; digits++) {
            for (int split = 0; split < 2; split++) {
                nuage_synth_opts o = {.digits = digits, .heldout = split};
                for (int i = 0; i < 300; i++) {
                    nuage_synth_item it;
                    assert_int_equal(nuage_synth_gen((nuage_task)t, &o, &r, &it), 0);
                    char want[128], got[128], content[2048];
                    expected(&it, want, sizeof want);
                    if (strcmp(want, it.answer))
                        print_message("%s: '%s' -> '%s', checker says '%s'\n", nuage_task_name(it.task),
                                      it.question, it.answer, want);
                    assert_string_equal(want, it.answer);
                    /* both variants end with the answer */
                    for (int reasoning = 0; reasoning < 2; reasoning++) {
                        nuage_synth_content(&it, reasoning, content, sizeof content);
                        nuage_synth_final_answer(content, got, sizeof got);
                        assert_string_equal(got, it.answer);
                    }
                    if (t == NUAGE_TASK_ADD || t == NUAGE_TASK_SUB) check_columns(&it);
                    if (t == NUAGE_TASK_COUNT) { /* the running count ends at the answer */
                        char tail[128];
                        snprintf(tail, sizeof tail, ": %s\n", it.answer);
                        assert_non_null(strstr(it.think, tail));
                    }
                }
            }
        }
    }
    /* 4-digit additions too (the think model's target) */
    nuage_synth_opts o4 = {.digits = 4, .heldout = true};
    for (int i = 0; i < 300; i++) {
        nuage_synth_item it;
        assert_int_equal(nuage_synth_gen(NUAGE_TASK_ADD, &o4, &r, &it), 0);
        char want[64];
        expected(&it, want, sizeof want);
        assert_string_equal(want, it.answer);
        check_columns(&it);
    }
}

static void test_facts_consistent(void **state) {
    (void)state;
    static const char *const known[][2] = {{"France", "Paris"}, {"Japan", "Tokyo"}, {"Egypt", "Cairo"},
                                           {"Canada", "Ottawa"}, {"Norway", "Oslo"}, {"Peru", "Lima"}};
    nuage_rng r;
    nuage_rng_seed(&r, 7);
    int hits = 0;
    for (int i = 0; i < 2000; i++) {
        nuage_synth_item it;
        nuage_synth_opts o = {.heldout = i % 2};
        assert_int_equal(nuage_synth_gen(NUAGE_TASK_FACTS, &o, &r, &it), 0);
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
            if (strstr(it.question, known[k][0])) { assert_string_equal(it.answer, known[k][1]); hits++; }
            if (strstr(it.question, known[k][1])) { assert_string_equal(it.answer, known[k][0]); hits++; }
        }
    }
    assert_true(hits > 50);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_splits_disjoint(void **state) {
    (void)state;
    enum { NT = 2000, NH = 300 };
    for (int t = 0; t < NUAGE_TASK_N; t++) {
        for (int digits = 1; digits <= 2; digits++) {
            nuage_rng r;
            nuage_rng_seed(&r, (uint64_t)(100 + t));
            char **q = malloc((NT + NH) * sizeof *q), **k = malloc((NT + NH) * sizeof *k);
            for (int i = 0; i < NT + NH; i++) {
                nuage_synth_item it;
                nuage_synth_opts o = {.digits = digits, .heldout = i >= NT};
                assert_int_equal(nuage_synth_gen((nuage_task)t, &o, &r, &it), 0);
                assert_int_equal(nuage_synth_key_heldout(it.key), i >= NT);
                /* tag with the split so a shared question shows as two adjacent tags */
                if (asprintf(&q[i], "%s\x01%d", it.question, i >= NT) < 0) fail();
                if (asprintf(&k[i], "%s\x01%d", it.key, i >= NT) < 0) fail();
            }
            for (int pass = 0; pass < 2; pass++) {
                char **a = pass ? k : q;
                qsort(a, NT + NH, sizeof *a, cmp_str);
                for (int i = 1; i < NT + NH; i++) {
                    size_t la = strchr(a[i - 1], 1) - a[i - 1], lb = strchr(a[i], 1) - a[i];
                    bool same = la == lb && !memcmp(a[i - 1], a[i], la);
                    if (same) assert_string_equal(a[i - 1], a[i]); /* same text => same split */
                }
            }
            for (int i = 0; i < NT + NH; i++) { free(q[i]); free(k[i]); }
            free(q);
            free(k);
        }
    }
    /* about a tenth of all 2-digit additions are held out */
    int held = 0, total = 0;
    for (int a = 10; a < 100; a++)
        for (int b = a; b < 100; b++) {
            char key[32];
            snprintf(key, sizeof key, "add:%d:%d", a, b);
            held += nuage_synth_key_heldout(key);
            total++;
        }
    assert_true(held > total / 20 && held < total / 6);
}

static void test_final_answer(void **state) {
    (void)state;
    char out[64];
    nuage_synth_final_answer("<think>\n1+2=3\n</think>\n12 + 3 = 15", out, sizeof out);
    assert_string_equal(out, "15");
    nuage_synth_final_answer("The capital is Paris.", out, sizeof out);
    assert_string_equal(out, "Paris");
    nuage_synth_final_answer("<think>\nstill thinking 42", out, sizeof out);
    assert_string_equal(out, "");
    nuage_synth_final_answer("  2021-03-05\n", out, sizeof out);
    assert_string_equal(out, "2021-03-05");
    nuage_synth_final_answer("\"5,1,8,3\"", out, sizeof out);
    assert_string_equal(out, "5,1,8,3");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_rederived),
        cmocka_unit_test(test_facts_consistent),
        cmocka_unit_test(test_splits_disjoint),
        cmocka_unit_test(test_final_answer),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
