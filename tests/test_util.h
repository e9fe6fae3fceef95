/*
 * test_util.h - small helpers shared by the cmocka test programs.
 *
 * Include after <cmocka.h>. Reference data lives in ../shared (or
 * $NUAGE_SHARED); a test needing it calls NUAGE_REQUIRE_SHARED(), which
 * marks it skipped when the data is missing, and main() returns
 * nuage_test_exit(rc) so a program whose tests were *all* skipped exits
 * 77 (ctest: "Skipped"); one that ran any test reports its result (the
 * skipped ones are listed in its output). Only comparisons with reference
 * data may need ../shared: tests that just need a model use
 * nuage_test_model_path() (test_models.h), which works on a bare clone.
 */
#ifndef NUAGE_TEST_UTIL_H
#define NUAGE_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int nuage_test_n_skipped __attribute__((unused));
static int nuage_test_n_run __attribute__((unused));
static size_t nuage_test_n_total __attribute__((unused)); /* tests in the group (cmocka_run_group_tests below) */

/* cmocka's macro, also counting the group's tests for nuage_test_exit. */
#undef cmocka_run_group_tests
#define cmocka_run_group_tests(group_tests, group_setup, group_teardown)                          \
    (nuage_test_n_total = sizeof(group_tests) / sizeof((group_tests)[0]),                         \
     _cmocka_run_group_tests(#group_tests, group_tests, sizeof(group_tests) / sizeof((group_tests)[0]), \
                             group_setup, group_teardown))

static inline const char *nuage_test_shared_dir(void) {
    static char buf[4096];
    const char *env = getenv("NUAGE_SHARED");
    const char *dir = (env && *env) ? env : NUAGE_SHARED_DEFAULT;
    struct stat st;
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/README.md", dir);
    if (stat(probe, &st) != 0) return NULL;
    snprintf(buf, sizeof buf, "%s", dir);
    return buf;
}

/* Path of a file under the shared dir (static buffer rotated 8 ways). */
static inline const char *nuage_test_shared_path(const char *rel) {
    static char bufs[8][4600];
    static int k;
    const char *dir = nuage_test_shared_dir();
    if (!dir) return NULL;
    char *b = bufs[k++ & 7];
    snprintf(b, 4600, "%s/%s", dir, rel);
    return b;
}

#define NUAGE_REQUIRE_SHARED()                                              \
    do {                                                                    \
        nuage_test_n_run++;                                                 \
        if (!nuage_test_shared_dir()) {                                     \
            nuage_test_n_skipped++;                                         \
            print_message("shared data not found: skipped\n");             \
            skip();                                                         \
        }                                                                   \
    } while (0)

/* Read a whole file; returns malloc'd buffer (NUL-terminated) or NULL. */
static inline char *nuage_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) { buf[n] = 0; if (len) *len = (size_t)n; }
    return buf;
}

static inline int nuage_test_exit(int rc) {
    if (rc == 0 && nuage_test_n_skipped > 0 && (size_t)nuage_test_n_skipped >= nuage_test_n_total) return 77;
    return rc;
}

#endif
