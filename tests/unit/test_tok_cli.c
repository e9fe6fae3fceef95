/*
 * test_tok_cli.c - `nuage tokenize` / `nuage detokenize` end to end.
 *
 * Runs the built binary (NUAGE_BIN; the test is skipped when it has not
 * been built) on vocabulary-only GGUFs: the ids printed for a text file
 * (--raw) must be llama.cpp's ids from the .out vectors, the file read
 * byte for byte (texts ending in spaces and newlines included); stdin
 * works the same; the default mode adds BOS as the metadata says; and
 * detokenize prints the text back. The comparisons with llama.cpp need
 * ../shared; the round trip on the bundled models/nuage-fast.gguf runs on
 * a bare clone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

static bool have_bin(void) {
    struct stat st;
    return stat(NUAGE_BIN, &st) == 0 && (st.st_mode & S_IXUSR);
}

/* Run cmd, return its stdout (malloc'd) and exit status. */
static char *run(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    size_t got;
    while ((got = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) out = realloc(out, cap *= 2);
    }
    out[n] = 0;
    *status = pclose(p);
    return out;
}

static void check_vocab(const char *name, int max_texts) {
    char gguf[4200], inp[4300], outp[4300];
    snprintf(gguf, sizeof gguf, "%s/vocab/ggml-vocab-%s.gguf", nuage_test_shared_dir(), name);
    snprintf(inp, sizeof inp, "%s.inp", gguf);
    snprintf(outp, sizeof outp, "%s.out", gguf);
    size_t in_n, out_n;
    char *in = nuage_test_read_file(inp, &in_n);
    char *out = nuage_test_read_file(outp, &out_n);
    assert_non_null(in);
    assert_non_null(out);
    char tmp[] = "/tmp/nuage_tok_cli_XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    close(fd);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *p = in, *line = out;
    int done = 0;
    while (done < max_texts) {
        char *q = strstr(p, sep);
        if (!q) break;
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = 0;
        FILE *f = fopen(tmp, "wb");
        fwrite(p, 1, (size_t)(q - p), f);
        fclose(f);
        char cmd[16384];
        snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' --raw --file '%s'", NUAGE_BIN, gguf, tmp);
        int st;
        char *ids = run(cmd, &st);
        assert_int_equal(st, 0);
        /* expected: the .out line without its leading space, then \n */
        char exp[8192];
        snprintf(exp, sizeof exp, "%s\n", line[0] == ' ' ? line + 1 : line);
        if (strcmp(ids, exp)) print_message("%s text %d: got '%s' expected '%s'\n", name, done, ids, exp);
        assert_string_equal(ids, exp);
        free(ids);
        /* same through stdin */
        snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' --raw < '%s'", NUAGE_BIN, gguf, tmp);
        ids = run(cmd, &st);
        assert_int_equal(st, 0);
        assert_string_equal(ids, exp);
        free(ids);
        p = q + strlen(sep);
        line = nl + 1;
        done++;
    }
    unlink(tmp);
    free(in);
    free(out);
}

static void test_tokenize_cli(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    if (!have_bin()) {
        nuage_test_n_skipped++;
        print_message("%s not built: skipped\n", NUAGE_BIN);
        skip();
    }
    check_vocab("llama-spm", 14);
    check_vocab("gpt-2", 6);
    check_vocab("bert-bge", 6);
    check_vocab("falcon", 6);
}

static void test_defaults_and_detok(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    if (!have_bin()) {
        nuage_test_n_skipped++;
        skip();
    }
    char cmd[16384];
    int st;
    const char *stories = nuage_test_shared_path("models/stories260K.gguf");
    /* README: llama-tokenize gives 1 403 407 261 378 (BOS added) */
    snprintf(cmd, sizeof cmd, "printf 'Once upon a time' | '%s' tokenize -m '%s'", NUAGE_BIN, stories);
    char *o = run(cmd, &st);
    assert_int_equal(st, 0);
    assert_string_equal(o, "1 403 407 261 378\n");
    free(o);
    /* special-token text is parsed by default, not with --raw */
    snprintf(cmd, sizeof cmd, "printf 'a</s>' | '%s' tokenize -m '%s'", NUAGE_BIN, stories);
    o = run(cmd, &st);
    size_t n = strlen(o);
    assert_true(n > 3 && !strcmp(o + n - 3, " 2\n"));
    free(o);
    snprintf(cmd, sizeof cmd, "printf 'a</s>' | '%s' tokenize -m '%s' --raw", NUAGE_BIN, stories);
    o = run(cmd, &st);
    n = strlen(o);
    assert_false(n > 3 && !strcmp(o + n - 3, " 2\n"));
    free(o);
    /* detokenize without BOS gives the text back exactly */
    snprintf(cmd, sizeof cmd, "'%s' detokenize -m '%s' '403 407 261 378'", NUAGE_BIN, stories);
    o = run(cmd, &st);
    assert_int_equal(st, 0);
    assert_string_equal(o, "Once upon a time");
    free(o);
    /* bad ids and usage errors */
    snprintf(cmd, sizeof cmd, "'%s' detokenize -m '%s' '99999' 2>/dev/null", NUAGE_BIN, stories);
    o = run(cmd, &st);
    assert_int_equal(WEXITSTATUS(st), 1);
    free(o);
    snprintf(cmd, sizeof cmd, "'%s' tokenize 2>/dev/null", NUAGE_BIN);
    o = run(cmd, &st);
    assert_int_equal(WEXITSTATUS(st), 2);
    free(o);
}

/* Bare clone: the bundled model's byte-level BPE vocabulary. File and
 * stdin give the same ids; detokenize gives the text back byte for byte. */
static void test_bundled_roundtrip(void **state) {
    (void)state;
    if (!have_bin()) {
        nuage_test_n_skipped++;
        skip();
    }
    const char *model = NUAGE_SOURCE_DIR "/models/nuage-fast.gguf";
    static const char *const texts[] = {"What is 4821 + 3999?", "  two  spaces, tabs\tand\nnewlines\n",
                                        "caf\xc3\xa9 \xe2\x82\xac 42", "x"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char tmp[] = "/tmp/nuage_tok_cli_XXXXXX";
        int fd = mkstemp(tmp);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, texts[i], strlen(texts[i])), (ssize_t)strlen(texts[i]));
        close(fd);
        char cmd[8192];
        int st;
        snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' --raw --file '%s'", NUAGE_BIN, model, tmp);
        char *ids = run(cmd, &st);
        assert_int_equal(st, 0);
        assert_true(strlen(ids) > 1);
        snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' --raw < '%s'", NUAGE_BIN, model, tmp);
        char *ids2 = run(cmd, &st);
        assert_int_equal(st, 0);
        assert_string_equal(ids, ids2);
        ids[strcspn(ids, "\n")] = 0;
        snprintf(cmd, sizeof cmd, "'%s' detokenize -m '%s' '%s'", NUAGE_BIN, model, ids);
        char *back = run(cmd, &st);
        assert_int_equal(st, 0);
        assert_string_equal(back, texts[i]);
        free(ids);
        free(ids2);
        free(back);
        unlink(tmp);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenize_cli),
        cmocka_unit_test(test_defaults_and_detok),
        cmocka_unit_test(test_bundled_roundtrip),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
