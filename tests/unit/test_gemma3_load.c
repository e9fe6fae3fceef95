/*
 * test_gemma3_load.c - what arch_gemma3.c reads from a gemma3 GGUF: the
 * sliding window, which layers use it, the window layers' RoPE base, the
 * embedding scale and GeGLU, the post-norm tensors; and the clear errors a
 * malformed file gets.
 *
 * The files are variants of ../shared/models/rand-gemma3-f32.gguf: every
 * key and tensor copied through the GGUF writer with one key changed,
 * added or left out, written to a temporary file and loaded. The expected
 * layer patterns follow llama.cpp's rule (layer il uses the window iff
 * il % period < period - 1; period 6 when the key is absent; one flag per
 * layer when the key is a bool array). Skipped without ../shared.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/gguf_write.h"
#include "engine/model.h"
#include "nuage/nuage.h"
#include "test_util.h"

/* How a variant differs from the original file. */
typedef struct {
    const char *drop_key;      /* metadata key left out, or NULL */
    const char *drop_tensor;   /* tensor left out, or NULL */
    int pattern_kind;          /* 0 none, 1 u32 `pattern_u32`, 2 bool array `flags`, 3 a string */
    uint32_t pattern_u32;
    uint8_t flags[6];
} variant;

/* Write the variant to a temporary file; returns its path (malloc'd). */
static char *write_variant(const variant *v) {
    char src[4096], err[256];
    snprintf(src, sizeof src, "%s", nuage_test_shared_path("models/rand-gemma3-f32.gguf"));
    nuage_gguf *g = NULL;
    assert_int_equal(nuage_gguf_open(src, &g, err, sizeof err), 0);
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    assert_non_null(w);
    for (uint64_t i = 0; i < nuage_gguf_n_kv(g); i++) {
        const nuage_gguf_kv *kv = nuage_gguf_kv_at(g, i);
        if (v->drop_key && !strcmp(kv->key.ptr, v->drop_key)) continue;
        assert_int_equal(nuage_gguf_writer_set_value(w, kv->key.ptr, &kv->value), 0);
    }
    const char *pk = "gemma3.attention.sliding_window_pattern";
    if (v->pattern_kind == 1) assert_int_equal(nuage_gguf_writer_set_u32(w, pk, v->pattern_u32), 0);
    if (v->pattern_kind == 2) assert_int_equal(nuage_gguf_writer_set_arr(w, pk, NUAGE_GGUF_BOOL, v->flags, 6), 0);
    if (v->pattern_kind == 3) assert_int_equal(nuage_gguf_writer_set_str(w, pk, "5:1"), 0);
    for (uint64_t i = 0; i < nuage_gguf_n_tensors(g); i++) {
        const nuage_gguf_tensor *t = nuage_gguf_tensor_at(g, i);
        if (v->drop_tensor && !strcmp(t->name, v->drop_tensor)) continue;
        assert_int_equal(nuage_gguf_writer_add_tensor(w, t->name, t->type, (int)t->n_dims, t->ne, t->data, t->nbytes), 0);
    }
    char *path = strdup("/tmp/nuage-gemma3-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(nuage_gguf_writer_write_file(w, path, err, sizeof err), 0);
    nuage_gguf_writer_free(w);
    nuage_gguf_close(g);
    return path;
}

/* Load the variant: returns the load's rc; *m set on success, err filled. */
static int load_variant(const variant *v, nuage_model **m, char *err, size_t errlen) {
    char *path = write_variant(v);
    int rc = nuage_model_load(path, NULL, m, err, errlen);
    unlink(path);
    free(path);
    return rc;
}

static void expect_swa(const nuage_model *m, const int *want) {
    for (int il = 0; il < m->hp.n_layer; il++) {
        if (m->layers[il].swa != (want[il] != 0)) print_message("layer %d: swa %d, want %d\n", il, m->layers[il].swa, want[il]);
        assert_int_equal(m->layers[il].swa, want[il] != 0);
    }
}

static void test_default_pattern(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    variant v = {0};
    nuage_model *m = NULL;
    char err[512];
    assert_int_equal(load_variant(&v, &m, err, sizeof err), 0);
    assert_string_equal(nuage_model_arch(m), "gemma3");
    assert_int_equal(m->hp.n_layer, 6);
    assert_int_equal(m->hp.n_swa, 16);
    static const int want[6] = {1, 1, 1, 1, 1, 0};
    expect_swa(m, want);
    assert_true(m->hp.rope_freq_base == 1e6f);
    assert_true(m->hp.rope_freq_base_swa == 1e4f);
    assert_true(m->hp.rope_freq_scale_swa == 1.0f);
    assert_true(m->hp.embd_scale == 16.0f);        /* sqrt(256) */
    assert_true(m->hp.kq_scale == 0.125f);         /* 1/sqrt(64) */
    assert_int_equal(m->hp.ffn_act, NUAGE_ACT_GELU_F16);
    assert_true(m->hp.logit_softcap == 0.0f);
    assert_true(m->output.data == m->tok_embd.data); /* tied */
    for (int il = 0; il < 6; il++) {
        assert_non_null(m->layers[il].attn_post_norm.data);
        assert_non_null(m->layers[il].ffn_post_norm.data);
        assert_non_null(m->layers[il].q_norm.data);
        assert_non_null(m->layers[il].k_norm.data);
    }
    assert_int_equal(nuage_model_n_params(m), 3677184); /* ../shared/README.md */
    nuage_model_free(m);
}

static void test_pattern_key(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    nuage_model *m = NULL;
    char err[512];
    /* period 2: layers 0, 2, 4 */
    variant v = {.pattern_kind = 1, .pattern_u32 = 2};
    assert_int_equal(load_variant(&v, &m, err, sizeof err), 0);
    static const int want2[6] = {1, 0, 1, 0, 1, 0};
    expect_swa(m, want2);
    nuage_model_free(m);
    /* period 0: every layer */
    v.pattern_u32 = 0;
    assert_int_equal(load_variant(&v, &m, err, sizeof err), 0);
    static const int want0[6] = {1, 1, 1, 1, 1, 1};
    expect_swa(m, want0);
    nuage_model_free(m);
    /* one flag per layer */
    variant vf = {.pattern_kind = 2, .flags = {1, 0, 0, 1, 1, 0}};
    assert_int_equal(load_variant(&vf, &m, err, sizeof err), 0);
    static const int wantf[6] = {1, 0, 0, 1, 1, 0};
    expect_swa(m, wantf);
    nuage_model_free(m);
    /* anything else is a format error naming the key */
    variant vs = {.pattern_kind = 3};
    assert_int_equal(load_variant(&vs, &m, err, sizeof err), NUAGE_E_FORMAT);
    assert_null(m);
    assert_non_null(strstr(err, "sliding_window_pattern"));
}

static void test_no_window(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    nuage_model *m = NULL;
    char err[512];
    /* without attention.sliding_window every layer is global */
    variant v = {.drop_key = "gemma3.attention.sliding_window"};
    assert_int_equal(load_variant(&v, &m, err, sizeof err), 0);
    assert_int_equal(m->hp.n_swa, 0);
    static const int want[6] = {0};
    expect_swa(m, want);
    nuage_model_free(m);
    /* without rope.freq_base_swa window layers use llama.cpp's default 10000 */
    variant vb = {.drop_key = "gemma3.rope.freq_base_swa"};
    assert_int_equal(load_variant(&vb, &m, err, sizeof err), 0);
    assert_true(m->hp.rope_freq_base_swa == 1e4f);
    nuage_model_free(m);
}

static void test_missing_post_norm(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    nuage_model *m = NULL;
    char err[512];
    variant v = {.drop_tensor = "blk.3.post_ffw_norm.weight"};
    assert_int_equal(load_variant(&v, &m, err, sizeof err), NUAGE_E_FORMAT);
    assert_null(m);
    assert_non_null(strstr(err, "blk.3.post_ffw_norm.weight"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_pattern),
        cmocka_unit_test(test_pattern_key),
        cmocka_unit_test(test_no_window),
        cmocka_unit_test(test_missing_post_norm),
    };
    int rc = cmocka_run_group_tests_name("gemma3_load", tests, NULL, NULL);
    return nuage_test_exit(rc);
}
