/*
 * test_eval_logits_cli.c - `nuage eval-logits` end to end: the command's
 * output file has exactly n_tokens x n_vocab little-endian floats and
 * matches llama.cpp's reference logits (stories260K prompt C, 200 tokens)
 * within the F32 tolerance, evaluated all at once, in 7-token chunks, and
 * with an f16 KV cache (within llama.cpp's own f16-cache spread, 0.06).
 * Also: bad arguments are usage errors (exit 2), a missing model exit 1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

static int run_cmd(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double compare(const char *ours_path, const float *ref, size_t ref_len) {
    size_t len = 0;
    float *ours = (float *)nuage_test_read_file(ours_path, &len);
    assert_non_null(ours);
    assert_int_equal(len, ref_len);
    double mx = 0;
    for (size_t i = 0; i < len / 4; i++) {
        double d = fabs((double)ours[i] - ref[i]);
        if (!(d <= mx)) mx = d;
    }
    free(ours);
    return mx;
}

static void test_eval_logits(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    size_t ref_len = 0;
    float *ref = (float *)nuage_test_read_file(nuage_test_shared_path("vectors/logits/stories260K.C.logits.f32"), &ref_len);
    char *tokens = nuage_test_read_file(nuage_test_shared_path("vectors/logits/stories260K.C.tokens.txt"), NULL);
    assert_non_null(ref);
    assert_non_null(tokens);
    tokens[strcspn(tokens, "\n")] = 0;
    char out[] = "/tmp/nuage_evl_XXXXXX";
    int fd = mkstemp(out);
    assert_true(fd >= 0);
    close(fd);
    const char *model = nuage_test_shared_path("models/stories260K.gguf");
    static const struct { const char *extra; double tol; } runs[] = {
        {"", 1e-3}, {"--ubatch 7", 1e-3}, {"--kv f16", 0.06}, {"--ubatch 1 --kv f16 -t 1", 0.06},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "%s eval-logits -m %s --tokens \"%s\" --out %s -t 2 %s", NUAGE_BIN, model,
                 tokens, out, runs[r].extra);
        assert_int_equal(run_cmd(cmd), 0);
        double mx = compare(out, ref, ref_len);
        print_message("eval-logits %-24s max|d| = %.3g (tolerance %g)\n", runs[r].extra, mx, runs[r].tol);
        assert_true(mx <= runs[r].tol);
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s eval-logits -m %s --tokens \"1 2 x\" --out %s 2>/dev/null", NUAGE_BIN, model, out);
    assert_int_equal(run_cmd(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s eval-logits -m %s --tokens \"1 999\" --out %s 2>/dev/null", NUAGE_BIN, model, out);
    assert_int_equal(run_cmd(cmd), 1);
    snprintf(cmd, sizeof cmd, "%s eval-logits -m /nonexistent.gguf --tokens \"1\" --out %s 2>/dev/null", NUAGE_BIN, out);
    assert_int_equal(run_cmd(cmd), 1);
    remove(out);
    free(ref);
    free(tokens);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_eval_logits)};
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
