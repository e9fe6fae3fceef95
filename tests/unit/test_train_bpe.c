/*
 * test_train_bpe.c - the GGUF writer and the BPE tokenizer trainer.
 *
 *  - every metadata type (scalars, strings, arrays of numbers and of
 *    strings, nested arrays) and tensors of several types and sizes round
 *    trip through the project's GGUF reader (nuage_gguf_open), with data
 *    at aligned offsets for the default and a custom alignment;
 *  - the trainer's merges, applied in rank order by a naive reference
 *    written here (with its own GPT-2 byte map), reproduce the
 *    segmentation the trainer recorded for every corpus word, and so does
 *    the project's tokenizer loading the written GGUF;
 *  - the corpus round-trips through nuage_tokenize + nuage_detokenize, the
 *    special tokens are single tokens with the right types and ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/quant.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"
#include "test_util.h"
#include "train/bpe_train.h"

/* ---- GGUF writer ------------------------------------------------------------------ */

static void check_roundtrip(uint32_t align) {
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    assert_non_null(w);
    if (align) assert_int_equal(nuage_gguf_writer_set_u32(w, "general.alignment", align), 0);
    assert_int_equal(nuage_gguf_writer_set_u8(w, "k.u8", 200), 0);
    assert_int_equal(nuage_gguf_writer_set_i8(w, "k.i8", -100), 0);
    assert_int_equal(nuage_gguf_writer_set_u16(w, "k.u16", 65000), 0);
    assert_int_equal(nuage_gguf_writer_set_i16(w, "k.i16", -30000), 0);
    assert_int_equal(nuage_gguf_writer_set_u32(w, "k.u32", 4000000000u), 0);
    assert_int_equal(nuage_gguf_writer_set_i32(w, "k.i32", -2000000000), 0);
    assert_int_equal(nuage_gguf_writer_set_u64(w, "k.u64", 18000000000000000000ull), 0);
    assert_int_equal(nuage_gguf_writer_set_i64(w, "k.i64", -9000000000000000000ll), 0);
    assert_int_equal(nuage_gguf_writer_set_f32(w, "k.f32", 1.5f), 0);
    assert_int_equal(nuage_gguf_writer_set_f64(w, "k.f64", -2.25), 0);
    assert_int_equal(nuage_gguf_writer_set_bool(w, "k.bool", true), 0);
    assert_int_equal(nuage_gguf_writer_set_str(w, "k.str", "first"), 0);
    assert_int_equal(nuage_gguf_writer_set_str(w, "k.str", "héllo wörld"), 0); /* replaced */
    const int32_t ai[5] = {1, -2, 3, -4, 5};
    assert_int_equal(nuage_gguf_writer_set_arr(w, "k.arr_i32", NUAGE_GGUF_INT32, ai, 5), 0);
    const float af[3] = {0.5f, -1.0f, 3.25f};
    assert_int_equal(nuage_gguf_writer_set_arr(w, "k.arr_f32", NUAGE_GGUF_FLOAT32, af, 3), 0);
    const char *const as[4] = {"a", "", "<|im_end|>", "Ġthe"};
    assert_int_equal(nuage_gguf_writer_set_arr_str(w, "k.arr_str", as, 4), 0);
    assert_int_equal(nuage_gguf_writer_set_arr(w, "k.empty", NUAGE_GGUF_UINT8, NULL, 0), 0);
    /* tensors: odd sizes so that padding matters */
    float t1[7 * 3];
    for (int i = 0; i < 21; i++) t1[i] = (float)i * 0.25f - 2.0f;
    int64_t ne1[2] = {7, 3};
    assert_int_equal(nuage_gguf_writer_add_tensor(w, "t.f32", NUAGE_TYPE_F32, 2, ne1, t1, sizeof t1), 0);
    uint16_t t2[5];
    for (int i = 0; i < 5; i++) t2[i] = nuage_fp32_to_fp16((float)i - 1.5f);
    int64_t ne2[1] = {5};
    assert_int_equal(nuage_gguf_writer_add_tensor(w, "t.f16", NUAGE_TYPE_F16, 1, ne2, t2, sizeof t2), 0);
    float src[64];
    for (int i = 0; i < 64; i++) src[i] = (float)(i % 9) - 4.0f;
    uint8_t q8[2 * 34];
    nuage_type_get(NUAGE_TYPE_Q8_0)->from_float(src, q8, 64);
    int64_t ne3[3] = {32, 1, 2};
    assert_int_equal(nuage_gguf_writer_add_tensor(w, "t.q8", NUAGE_TYPE_Q8_0, 3, ne3, q8, sizeof q8), 0);
    /* errors: duplicate name, size mismatch */
    assert_int_equal(nuage_gguf_writer_add_tensor(w, "t.f32", NUAGE_TYPE_F32, 2, ne1, t1, sizeof t1), NUAGE_E_INVAL);
    assert_int_equal(nuage_gguf_writer_add_tensor(w, "t.bad", NUAGE_TYPE_F32, 2, ne1, t1, 8), NUAGE_E_INVAL);

    char path[128], err[256];
    snprintf(path, sizeof path, "/tmp/nuage_test_gw_%ld_%u.gguf", (long)getpid(), align);
    assert_int_equal(nuage_gguf_writer_write_file(w, path, err, sizeof err), 0);
    nuage_gguf *g;
    assert_int_equal(nuage_gguf_open(path, &g, err, sizeof err), 0);
    assert_int_equal(nuage_gguf_version(g), 3);
    assert_int_equal(nuage_gguf_alignment(g), align ? align : 32);
    uint32_t u32;
    int64_t i64;
    float f;
    bool b;
    assert_true(nuage_gguf_get_u32(g, "k.u8", &u32) && u32 == 200);
    assert_true(nuage_gguf_get_i64(g, "k.i8", &i64) && i64 == -100);
    assert_true(nuage_gguf_get_u32(g, "k.u16", &u32) && u32 == 65000);
    assert_true(nuage_gguf_get_i64(g, "k.i16", &i64) && i64 == -30000);
    assert_true(nuage_gguf_get_u32(g, "k.u32", &u32) && u32 == 4000000000u);
    assert_true(nuage_gguf_get_i64(g, "k.i32", &i64) && i64 == -2000000000);
    assert_int_equal(nuage_gguf_get(g, "k.u64")->v.u64, 18000000000000000000ull);
    assert_true(nuage_gguf_get_i64(g, "k.i64", &i64) && i64 == -9000000000000000000ll);
    assert_true(nuage_gguf_get_f32(g, "k.f32", &f) && f == 1.5f);
    assert_true(nuage_gguf_get(g, "k.f64")->type == NUAGE_GGUF_FLOAT64 && nuage_gguf_get(g, "k.f64")->v.f64 == -2.25);
    assert_true(nuage_gguf_get_bool(g, "k.bool", &b) && b);
    assert_string_equal(nuage_gguf_get_str(g, "k.str", NULL), "héllo wörld");
    const nuage_gguf_value *v = nuage_gguf_get_arr(g, "k.arr_i32", NUAGE_GGUF_INT32);
    assert_non_null(v);
    assert_int_equal(v->v.arr.n, 5);
    assert_memory_equal(v->v.arr.data, ai, sizeof ai);
    v = nuage_gguf_get_arr(g, "k.arr_f32", NUAGE_GGUF_FLOAT32);
    assert_memory_equal(v->v.arr.data, af, sizeof af);
    v = nuage_gguf_get_arr(g, "k.arr_str", NUAGE_GGUF_STRING);
    assert_int_equal(v->v.arr.n, 4);
    for (int i = 0; i < 4; i++) assert_string_equal(((const nuage_gguf_str *)v->v.arr.data)[i].ptr, as[i]);
    assert_int_equal(nuage_gguf_get(g, "k.empty")->v.arr.n, 0);
    /* one entry per key (the replaced string is not duplicated) */
    assert_int_equal(nuage_gguf_n_kv(g), (align ? 1 : 0) + 16);
    const nuage_gguf_tensor *t = nuage_gguf_find_tensor(g, "t.f32");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 7);
    assert_int_equal(t->ne[1], 3);
    assert_memory_equal(t->data, t1, sizeof t1);
    t = nuage_gguf_find_tensor(g, "t.f16");
    assert_memory_equal(t->data, t2, sizeof t2);
    t = nuage_gguf_find_tensor(g, "t.q8");
    assert_int_equal(t->ne[2], 2);
    assert_memory_equal(t->data, q8, sizeof q8);
    for (uint64_t i = 0; i < nuage_gguf_n_tensors(g); i++) {
        const nuage_gguf_tensor *ti = nuage_gguf_tensor_at(g, i);
        assert_int_equal(ti->offset % nuage_gguf_alignment(g), 0);
        assert_int_equal((nuage_gguf_data_offset(g) + ti->offset) % nuage_gguf_alignment(g), 0);
    }
    /* a copy of every value through set_value gives the same bytes */
    nuage_gguf_writer *w2 = nuage_gguf_writer_new();
    for (uint64_t i = 0; i < nuage_gguf_n_kv(g); i++)
        assert_int_equal(nuage_gguf_writer_set_value(w2, nuage_gguf_kv_at(g, i)->key.ptr, &nuage_gguf_kv_at(g, i)->value), 0);
    void *b1, *b2;
    size_t l1, l2;
    nuage_gguf_writer *w3 = nuage_gguf_writer_new();
    if (align) nuage_gguf_writer_set_u32(w3, "general.alignment", align);
    for (uint64_t i = 0; i < nuage_gguf_n_kv(g); i++)
        nuage_gguf_writer_set_value(w3, nuage_gguf_kv_at(g, i)->key.ptr, &nuage_gguf_kv_at(g, i)->value);
    assert_int_equal(nuage_gguf_writer_to_buffer(w2, &b1, &l1), 0);
    assert_int_equal(nuage_gguf_writer_to_buffer(w3, &b2, &l2), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    free(b1);
    free(b2);
    nuage_gguf_writer_free(w2);
    nuage_gguf_writer_free(w3);
    nuage_gguf_close(g);
    nuage_gguf_writer_free(w);
    unlink(path);
}

static void test_gguf_writer_roundtrip(void **state) {
    (void)state;
    check_roundtrip(0);
    check_roundtrip(64);
}

/* ---- BPE trainer --------------------------------------------------------------------- */

static const char *const corpus[] = {
    "<|im_start|>user\nWhat is 12 + 34?<|im_end|>\n<|im_start|>assistant\n12 + 34 = 46<|im_end|>\n",
    "the cat sat on the mat, the cat ate the rat",
    "banana bandana cabana! ananas (and) bananas...",
    "<think>\nlower lowest newer newest wider widest\n</think>\nnewest",
    "aaaa aaa aa a  aaaaa\ttabs\n\nnew lines 2024-01-31 ünïcödé ✓",
    "the theme of the thesis: there, then, these",
};
#define N_CORPUS (sizeof corpus / sizeof corpus[0])

/* GPT-2 byte -> code point, computed here independently of the tokenizer */
static int byte_cp(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
    return 256 + n;
}

static void cp_utf8(int cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

static void test_bpe_train(void **state) {
    (void)state;
    size_t lens[N_CORPUS];
    for (size_t i = 0; i < N_CORPUS; i++) lens[i] = strlen(corpus[i]);
    nuage_bpe *b;
    char err[256];
    assert_int_equal(nuage_bpe_train(corpus, lens, N_CORPUS, 300, NULL, &b, err, sizeof err), 0);
    assert_true(b->n_merges > 10);
    assert_true(b->n_tokens <= 300);
    assert_string_equal(b->pre, "qwen2");

    /* naive reference: symbols of each word, merges applied by rank */
    for (int wi = 0; wi < b->n_words; wi++) {
        const char *word = b->words[wi];
        int n = (int)strlen(word);
        char **sym = calloc((size_t)n, sizeof *sym);
        for (int i = 0; i < n; i++) {
            sym[i] = malloc(256);
            cp_utf8(byte_cp((unsigned char)word[i]), sym[i]);
        }
        for (;;) {
            int best = -1, at = -1;
            for (int i = 0; i + 1 < n; i++) {
                char pair[512];
                snprintf(pair, sizeof pair, "%s %s", sym[i], sym[i + 1]);
                for (int r = 0; r < b->n_merges && (best < 0 || r < best); r++)
                    if (!strcmp(b->merges[r], pair)) { best = r; at = i; break; }
            }
            if (best < 0) break;
            strcat(sym[at], sym[at + 1]);
            free(sym[at + 1]);
            memmove(sym + at + 1, sym + at + 2, (size_t)(n - at - 2) * sizeof *sym);
            n--;
        }
        assert_int_equal(n, b->word_len[wi]);
        for (int i = 0; i < n; i++) {
            assert_string_equal(sym[i], b->tokens[b->word_ids[wi][i]]);
            free(sym[i]);
        }
        free(sym);
    }

    /* the written GGUF through the project's tokenizer */
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    assert_int_equal(nuage_bpe_write_gguf(b, w), 0);
    void *buf;
    size_t len;
    assert_int_equal(nuage_gguf_writer_to_buffer(w, &buf, &len), 0);
    nuage_gguf *g;
    assert_int_equal(nuage_gguf_open_buffer(buf, len, &g, err, sizeof err), 0);
    assert_string_equal(nuage_gguf_get_str(g, "tokenizer.ggml.model", NULL), "gpt2");
    nuage_vocab *v;
    assert_int_equal(nuage_vocab_from_gguf(g, &v, err, sizeof err), 0);
    assert_int_equal(nuage_vocab_n_tokens(v), b->n_tokens);
    assert_false(nuage_vocab_add_bos(v));
    assert_int_equal(nuage_vocab_eos(v), b->special[NUAGE_BPE_IM_END]);
    assert_true(nuage_vocab_is_eog(v, b->special[NUAGE_BPE_IM_END]));
    assert_true(nuage_vocab_token_attr(v, b->special[NUAGE_BPE_IM_START]) & NUAGE_TOKEN_ATTR_CONTROL);
    assert_true(nuage_vocab_token_attr(v, b->special[NUAGE_BPE_THINK]) & NUAGE_TOKEN_ATTR_USER_DEFINED);
    int32_t ids[512];
    for (int wi = 0; wi < b->n_words; wi++) {
        int n = nuage_tokenize(v, b->words[wi], strlen(b->words[wi]), ids, 512, false, false);
        assert_int_equal(n, b->word_len[wi]);
        assert_memory_equal(ids, b->word_ids[wi], (size_t)n * sizeof *ids);
    }
    for (size_t i = 0; i < N_CORPUS; i++) {
        int n = nuage_tokenize(v, corpus[i], lens[i], ids, 512, false, true);
        assert_true(n > 0 && n < 512);
        char text[1024];
        int tl = nuage_detokenize(v, ids, (size_t)n, text, sizeof text, false, true);
        assert_int_equal(tl, (int)lens[i]);
        assert_memory_equal(text, corpus[i], lens[i]);
    }
    /* special tokens are single tokens */
    const char *sp = "<|im_start|><think></think><|im_end|>";
    int n = nuage_tokenize(v, sp, strlen(sp), ids, 16, false, true);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], b->special[NUAGE_BPE_IM_START]);
    assert_int_equal(ids[1], b->special[NUAGE_BPE_THINK]);
    assert_int_equal(ids[2], b->special[NUAGE_BPE_THINK_END]);
    assert_int_equal(ids[3], b->special[NUAGE_BPE_IM_END]);
    /* digits stay single tokens (qwen2 pre-tokenizer) */
    n = nuage_tokenize(v, "2024", 4, ids, 16, false, false);
    assert_int_equal(n, 4);
    nuage_vocab_free(v);
    nuage_gguf_close(g);
    free(buf);
    nuage_gguf_writer_free(w);
    nuage_bpe_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_writer_roundtrip),
        cmocka_unit_test(test_bpe_train),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
