/*
 * test_model_path.c - admin-API model paths confined to --models-dir
 * (src/platform/model_path.c; issue 12, item 3): the store's database and
 * its siblings, hard and symbolic links out, "..", absolute paths
 * elsewhere, directories and FIFOs are refused with the same words as a
 * missing file, and a file inside (relative or absolute, through a link
 * that stays inside) resolves to its canonical path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nuage/nuage.h"
#include "platform/model_path.h"
#include "test_util.h"

static char g_root[PATH_MAX], g_models[PATH_MAX + 16], g_db[PATH_MAX + 32];

static void touch(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state) {
    (void)state;
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/nuage-mpath-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl) || !realpath(tmpl, g_root)) return -1;
    snprintf(g_models, sizeof g_models, "%s/models", g_root);
    mkdir(g_models, 0700);
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/a.gguf", g_models), touch(p, "GGUF");
    snprintf(p, sizeof p, "%s/sub", g_models), mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/sub/b.gguf", g_models), touch(p, "GGUF");
    snprintf(p, sizeof p, "%s/secret.txt", g_root), touch(p, "top secret");
    /* The store lives in the models folder (the config's folder is the
     * default models dir and tests often put the database beside it). */
    snprintf(g_db, sizeof g_db, "%s/nuage.db", g_models), touch(g_db, "SQLite format 3");
    snprintf(p, sizeof p, "%s/nuage.db-wal", g_models), touch(p, "wal");
    char q[PATH_MAX + 64];
    snprintf(q, sizeof q, "%s/hard.gguf", g_models);
    assert_int_equal(link(g_db, q), 0);
    snprintf(q, sizeof q, "%s/out.gguf", g_models);
    assert_int_equal(symlink("../secret.txt", q), 0);
    snprintf(q, sizeof q, "%s/in.gguf", g_models);
    assert_int_equal(symlink("sub/b.gguf", q), 0);
    snprintf(q, sizeof q, "%s/fifo.gguf", g_models);
    assert_int_equal(mkfifo(q, 0600), 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    return system(cmd) == 0 ? 0 : -1;
}

/* Expect a refusal whose message is the generic one for `path`. */
static void refused(const char *path) {
    char out[PATH_MAX] = "", err[400] = "", ref[400] = "";
    assert_int_equal(nuage_model_path_confine(g_models, g_db, path, out, sizeof out, err, sizeof err),
                     NUAGE_E_INVAL);
    assert_string_equal(out, "");
    /* Same words as a file that does not exist (nothing learnt about it). */
    char none[PATH_MAX + 32];
    snprintf(none, sizeof none, "%s", path);
    nuage_model_path_confine(g_models, g_db, "/no/such/file.gguf", out, sizeof out, ref, sizeof ref);
    char *a = strstr(err, "' is not"), *b = strstr(ref, "' is not");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    assert_null(strstr(err, "bytes"));
    assert_null(strstr(err, "top secret"));
    assert_null(strstr(err, "SQLite"));
}

static void test_refused(void **state) {
    (void)state;
    char p[PATH_MAX + 64];
    refused(g_db);                           /* the store itself */
    snprintf(p, sizeof p, "%s-wal", g_db), refused(p);
    refused("nuage.db");                     /* relative, resolved against the models dir */
    refused("./sub/../nuage.db-wal");
    refused("hard.gguf");                    /* hard link to the database */
    refused("out.gguf");                     /* symbolic link leaving the folder */
    refused("../secret.txt");
    snprintf(p, sizeof p, "%s/secret.txt", g_root), refused(p);
    refused("/etc/passwd");
    refused("/proc/self/environ");
    refused("sub");                          /* a directory */
    refused(".");
    refused("fifo.gguf");                    /* would block the loading thread */
    refused("missing.gguf");
    refused("");
    /* A sibling folder whose name starts like the models dir. */
    snprintf(p, sizeof p, "%s-old", g_models);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s-old/x.gguf", g_models), touch(p, "GGUF");
    refused(p);
    refused("../models-old/x.gguf");
    /* No models dir configured: nothing is loadable. */
    char out[PATH_MAX], err[300];
    assert_int_equal(nuage_model_path_confine(NULL, NULL, "a.gguf", out, sizeof out, err, sizeof err), NUAGE_E_INVAL);
}

static void test_allowed(void **state) {
    (void)state;
    char out[PATH_MAX], err[300], want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/a.gguf", g_models);
    assert_int_equal(nuage_model_path_confine(g_models, g_db, "a.gguf", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, want);
    assert_int_equal(nuage_model_path_confine(g_models, g_db, want, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, want);
    /* A link that stays inside resolves to its target. */
    snprintf(want, sizeof want, "%s/sub/b.gguf", g_models);
    assert_int_equal(nuage_model_path_confine(g_models, g_db, "in.gguf", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, want);
    assert_int_equal(nuage_model_path_confine(g_models, NULL, "sub/../sub/b.gguf", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, want);
    /* The directory helpers. */
    char d[PATH_MAX];
    nuage_model_path_dirname("/x/y/conf.json", d, sizeof d);
    assert_string_equal(d, "/x/y");
    nuage_model_path_dirname("conf.json", d, sizeof d);
    assert_string_equal(d, ".");
    nuage_model_path_dirname("/conf.json", d, sizeof d);
    assert_string_equal(d, "/");
    assert_int_equal(nuage_model_path_dir(g_models, d, sizeof d), 0);
    assert_string_equal(d, g_models);
    assert_int_equal(nuage_model_path_dir(g_db, d, sizeof d), NUAGE_E_IO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_allowed),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, setup, teardown));
}
