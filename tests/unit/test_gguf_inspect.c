/*
 * test_gguf_inspect.c - `nuage inspect` as a user runs it.
 *
 * Writes GGUF files with the test writer (test_gguf_writer.h), runs the
 * `nuage` binary on them and checks the printed lines, totals computed here
 * from the shapes written, exit codes (0 ok, 1 bad file, 2 usage) and the
 * "nuage inspect: FILE: MESSAGE" error form. The binary is $NUAGE_BIN or
 * the one CMake builds; the test is skipped when it has not been built
 * (this unit links only nuage_base, so it cannot depend on the CLI target).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/wait.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/quant.h"
#include "test_gguf_writer.h"
#include "test_util.h"

static const char *nuage_bin(void) {
    const char *env = getenv("NUAGE_BIN");
    const char *bin = env && *env ? env : NUAGE_BIN;
    return access(bin, X_OK) == 0 ? bin : NULL;
}

#define REQUIRE_BIN()                                                         \
    do {                                                                      \
        nuage_test_n_run++;                                                   \
        if (!nuage_bin()) {                                                   \
            nuage_test_n_skipped++;                                           \
            print_message("nuage binary not built: skipped\n");              \
            skip();                                                           \
        }                                                                     \
    } while (0)

/* Run `nuage ARGS` (stdout and stderr together); returns the exit code and
 * a malloc'd copy of the output in *out. */
static int run(char **out, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", nuage_bin(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 1024) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_has(const char *out, const char *want) {
    if (!strstr(out, want)) {
        print_error("output lacks \"%s\":\n%s\n", want, out);
        fail();
    }
}

static char g_path[64];
static size_t g_template_len;

/* A llama-like file with every display case. */
static void write_file(int truncate_by) {
    static const char *tmpl =
        "{% for message in messages %}\n{{ '<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}";
    g_template_len = strlen(tmpl);
    gw w;
    gw_init(&w, 3);
    gw_kv_str(&w, "general.architecture", "llama");
    gw_kv_u32(&w, "llama.context_length", 2048);
    gw_key(&w, "llama.attention.layer_norm_rms_epsilon", NUAGE_GGUF_FLOAT32);
    gw_f32(&w.kv, 1e-5f);
    gw_key(&w, "general.flag", NUAGE_GGUF_BOOL);
    gw_u8(&w.kv, 1);
    gw_key(&w, "general.neg", NUAGE_GGUF_INT64);
    gw_u64(&w.kv, (uint64_t)-42);
    gw_kv_str(&w, "tokenizer.chat_template", tmpl);
    gw_key(&w, "t.ids", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_UINT32);
    gw_u64(&w.kv, 100);
    for (uint32_t i = 0; i < 100; i++) gw_u32(&w.kv, i * 3);
    gw_key(&w, "t.toks", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_STRING);
    gw_u64(&w.kv, 3);
    gw_str(&w.kv, "<s>");
    gw_str(&w.kv, "a\"b");
    gw_str(&w.kv, "\xc3\xa9t\xc3\xa9");
    gw_key(&w, "t.nested", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_ARRAY);
    gw_u64(&w.kv, 2);
    gw_u32(&w.kv, NUAGE_GGUF_INT8);
    gw_u64(&w.kv, 2);
    gw_u8(&w.kv, (uint8_t)-1);
    gw_u8(&w.kv, 5);
    gw_u32(&w.kv, NUAGE_GGUF_BOOL);
    gw_u64(&w.kv, 0);
    gw_tensor(&w, "blk.0.attn_q.weight", 2, ((uint64_t[]){256, 256}), NUAGE_TYPE_F32, NULL,
              256 * 256 * 4);
    gw_tensor(&w, "blk.0.ffn_up.weight", 3, ((uint64_t[]){64, 2, 3}), NUAGE_TYPE_Q4_0, NULL,
              6 * 2 * 18);
    size_t len;
    uint8_t *f = gw_finish(&w, &len);
    gw_free(&w);
    snprintf(g_path, sizeof g_path, "/tmp/nuage_inspect_XXXXXX");
    int fd = mkstemp(g_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, f, len - (size_t)truncate_by), (ssize_t)(len - (size_t)truncate_by));
    close(fd);
    free(f);
}

static void test_inspect_output(void **state) {
    (void)state;
    REQUIRE_BIN();
    write_file(0);
    char *out, args[256];
    snprintf(args, sizeof args, "inspect %s", g_path);
    assert_int_equal(run(&out, args), 0);
    expect_has(out, "GGUF v3");
    expect_has(out, "alignment: 32");
    expect_has(out, "metadata (9 entries)");
    expect_has(out, "\n  string   general.architecture = \"llama\"\n");
    expect_has(out, "\n  uint32   llama.context_length = 2048\n");
    expect_has(out, "\n  float32  llama.attention.layer_norm_rms_epsilon = 1e-05\n");
    expect_has(out, "\n  bool     general.flag = true\n");
    expect_has(out, "\n  int64    general.neg = -42\n");
    /* long string: escaped newline, cut, full length given */
    expect_has(out, "tokenizer.chat_template = \"{% for message in messages %}\\n{{ '<|im_start|>'");
    char want[128];
    snprintf(want, sizeof want, "... (%zu bytes)\n", g_template_len);
    expect_has(out, want);
    expect_has(out, "t.ids = [uint32 x 100] 0, 3, 6, 9, 12, 15, 18, 21, ... (92 more)\n");
    expect_has(out, "t.toks = [string x 3] \"<s>\", \"a\\\"b\", \"\xc3\xa9t\xc3\xa9\"\n");
    expect_has(out, "t.nested = [array x 2] ([int8 x 2] -1, 5), ([bool x 0])\n");
    expect_has(out, "tensors (2)");
    expect_has(out, "blk.0.attn_q.weight  f32      256 x 256         262144             0\n");
    expect_has(out, "64 x 2 x 3");
    /* totals computed from the shapes written */
    snprintf(want, sizeof want, "total: 2 tensors, %d parameters", 256 * 256 + 64 * 2 * 3);
    expect_has(out, want);
    snprintf(want, sizeof want, "%d bytes", 256 * 256 * 4 + 6 * 2 * 18);
    expect_has(out, want);
    free(out);

    snprintf(args, sizeof args, "inspect --all %s", g_path);
    assert_int_equal(run(&out, args), 0);
    expect_has(out, "291, 294, 297\n");
    expect_has(out, "'<|im_end|>' + '\\\\n' }}{% endfor %}\"\n"); /* \\ escaped */
    assert_null(strstr(out, "more)"));
    free(out);
    unlink(g_path);
}

static void test_inspect_errors(void **state) {
    (void)state;
    REQUIRE_BIN();
    write_file(1);
    char *out, args[256], want[256];
    snprintf(args, sizeof args, "inspect %s", g_path);
    assert_int_equal(run(&out, args), 1);
    snprintf(want, sizeof want,
             "nuage inspect: %s: tensor blk.0.ffn_up.weight: data runs past end of file", g_path);
    expect_has(out, want);
    free(out);
    unlink(g_path);

    assert_int_equal(run(&out, "inspect /nonexistent/x.gguf"), 1);
    expect_has(out, "nuage inspect: /nonexistent/x.gguf: cannot open");
    free(out);
    assert_int_equal(run(&out, "inspect"), 2);
    expect_has(out, "usage: nuage inspect");
    free(out);
    assert_int_equal(run(&out, "inspect --bogus x.gguf"), 2);
    expect_has(out, "unknown option '--bogus'");
    free(out);
    assert_int_equal(run(&out, "inspect a.gguf b.gguf"), 2);
    free(out);
    assert_int_equal(run(&out, "inspect --help"), 0);
    expect_has(out, "--all");
    free(out);
}

static void test_inspect_shared(void **state) {
    (void)state;
    REQUIRE_BIN();
    NUAGE_REQUIRE_SHARED();
    char *out, args[4200];
    snprintf(args, sizeof args, "inspect '%s'", nuage_test_shared_path("models/stories260K.gguf"));
    assert_int_equal(run(&out, args), 0);
    /* README: 292,800 parameters, all F32 (4 bytes each) */
    expect_has(out, "total: 48 tensors, 292800 parameters");
    expect_has(out, "1171200 bytes");
    expect_has(out, "tokenizer.ggml.tokens = [string x 512] \"<unk>\", \"<s>\", \"</s>\"");
    expect_has(out, "uint32   llama.embedding_length = 64\n");
    /* 5 layers x (64 K + 64 V) x 2 bytes = 640 bytes a token (f16), no window */
    expect_has(out, "engine: KV cache per sequence of 4096 tokens: 2.50 MiB (f16), 5.00 MiB (f32)\n");
    expect_has(out, "engine: KV cache per sequence of 32768 tokens: 20.00 MiB (f16), 40.00 MiB (f32)\n");
    free(out);
    /* rand-gemma3: 6 layers x (128 K + 128 V) x 2 bytes = 3072 bytes a token
     * (f16); window 16 on 5 of them, which keep 2 blocks of 16 rows: at 4096
     * tokens 512 x 4096 + 5 x 512 x 32 bytes = 2.08 MiB */
    snprintf(args, sizeof args, "inspect '%s'", nuage_test_shared_path("models/rand-gemma3-f32.gguf"));
    assert_int_equal(run(&out, args), 0);
    expect_has(out, "engine: KV cache per token per sequence: 3072 bytes (f16), 6144 bytes (f32)\n");
    expect_has(out, "engine: sliding window 16 tokens on 5 of 6 layers; past it a token costs 512 bytes (f16)");
    expect_has(out, "engine: KV cache per sequence of 4096 tokens: 2.08 MiB (f16), 4.16 MiB (f32), window counted\n");
    expect_has(out, "engine: KV cache per sequence of 32768 tokens: 16.08 MiB (f16), 32.16 MiB (f32), window counted\n");
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inspect_output),
        cmocka_unit_test(test_inspect_errors),
        cmocka_unit_test(test_inspect_shared),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
