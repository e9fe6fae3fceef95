/*
 * test_tok_detok.c - the streaming detokenizer and whole-sequence
 * detokenization.
 *
 * Streaming: whatever the split of a byte stream into tokens, the
 * concatenated output must be identical, must always be valid UTF-8, must
 * equal the input when the input is valid, and must replace invalid bytes
 * as Unicode's "maximal subpart" practice says (the worked example of
 * Unicode 15, section 3.9, table 3-8). Characters split across tokens are
 * held back until complete. Tokens come from llama-spm's byte tokens
 * <0xNN> (id 3 + byte), so every byte sequence can be produced by tokens.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"
#include "test_models.h"

#include "engine/gguf.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"

/* Strict UTF-8 check written independently of the library: decode and
 * re-validate each scalar value's range and shortest form. */
static bool valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        uint32_t cp;
        size_t len;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xe0) == 0xc0) { cp = c & 0x1f; len = 2; }
        else if ((c & 0xf0) == 0xe0) { cp = c & 0x0f; len = 3; }
        else if ((c & 0xf8) == 0xf0) { cp = c & 0x07; len = 4; }
        else return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

static nuage_vocab *load_spm(void) {
    char err[256] = {0};
    nuage_gguf *g = NULL;
    const char *path = nuage_test_shared_path("vocab/ggml-vocab-llama-spm.gguf");
    if (!path) path = nuage_test_spm_vocab();
    if (!path || nuage_gguf_open(path, &g, err, sizeof err))
        fail_msg("open: %s", err);
    nuage_vocab *v = NULL;
    if (nuage_vocab_from_gguf(g, &v, err, sizeof err)) fail_msg("vocab: %s", err);
    nuage_gguf_close(g);
    return v;
}

typedef struct {
    unsigned char *p;
    size_t n;
} bytes;

static void app(bytes *b, const char *p, size_t n) {
    b->p = realloc(b->p, b->n + n + 1);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* Feed data as byte tokens, cutting before every index in cuts (the cut
 * positions only matter through the byte-level token boundaries; with
 * one byte per token every position is a boundary), checking every chunk
 * returned is valid UTF-8. */
static bytes stream(const nuage_vocab *v, const unsigned char *data, size_t n) {
    bytes out = {0};
    nuage_detok *d = nuage_detok_new(v, true);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *s = nuage_detok_push(d, 3 + data[i], &k);
        assert_non_null(s);
        assert_int_equal(s[k], 0); /* NUL-terminated (the text itself may hold NULs) */
        assert_true(valid_utf8((const unsigned char *)s, k));
        app(&out, s, k);
    }
    size_t k;
    const char *s = nuage_detok_flush(d, &k);
    assert_non_null(s);
    assert_true(valid_utf8((const unsigned char *)s, k));
    app(&out, s, k);
    nuage_detok_free(d);
    return out;
}

/* Same through push_bytes with chunks of size `step`. */
static bytes stream_bytes(const unsigned char *data, size_t n, size_t step) {
    bytes out = {0};
    nuage_detok *d = nuage_detok_new(NULL, true);
    for (size_t i = 0; i < n; i += step) {
        size_t k, c = n - i < step ? n - i : step;
        const char *s = nuage_detok_push_bytes(d, (const char *)data + i, c, &k);
        assert_non_null(s);
        assert_true(valid_utf8((const unsigned char *)s, k));
        app(&out, s, k);
    }
    size_t k;
    const char *s = nuage_detok_flush(d, &k);
    app(&out, s, k);
    nuage_detok_free(d);
    return out;
}

static void test_split_chars(void **state) {
    (void)state;
    nuage_vocab *v = load_spm();
    /* 2-, 3- and 4-byte characters, one byte per token: nothing is output
     * until a character is complete */
    const unsigned char euro[] = {0xe2, 0x82, 0xac};
    nuage_detok *d = nuage_detok_new(v, true);
    size_t k;
    assert_string_equal(nuage_detok_push(d, 3 + euro[0], &k), "");
    assert_int_equal(k, 0);
    assert_string_equal(nuage_detok_push(d, 3 + euro[1], &k), "");
    assert_string_equal(nuage_detok_push(d, 3 + euro[2], &k), "\xe2\x82\xac");
    assert_int_equal(k, 3);
    /* a normal token after a held-back lead byte completes nothing: the
     * lead byte becomes U+FFFD, the token's text follows */
    assert_string_equal(nuage_detok_push(d, 3 + 0xf0, &k), "");
    int32_t hello = nuage_vocab_find(v, "\xe2\x96\x81Hello");
    assert_true(hello >= 0);
    assert_string_equal(nuage_detok_push(d, hello, &k), "\xef\xbf\xbd Hello");
    /* flush with an incomplete sequence pending */
    nuage_detok_push(d, 3 + 0xf0, &k);
    nuage_detok_push(d, 3 + 0x9f, &k);
    assert_string_equal(nuage_detok_flush(d, &k), "\xef\xbf\xbd");
    assert_string_equal(nuage_detok_flush(d, &k), "");
    /* out-of-range id */
    assert_null(nuage_detok_push(d, -5, &k));
    assert_null(nuage_detok_push(d, nuage_vocab_n_tokens(v), &k));
    nuage_detok_free(d);

    /* valid text in, same text out, whatever the split */
    const char *txt = "a\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa6\x99 \xe4\xb8\xad\xe6\x96\x87!";
    size_t tn = strlen(txt);
    bytes o = stream(v, (const unsigned char *)txt, tn);
    assert_int_equal(o.n, tn);
    assert_memory_equal(o.p, txt, tn);
    free(o.p);
    for (size_t step = 1; step <= tn; step++) {
        bytes ob = stream_bytes((const unsigned char *)txt, tn, step);
        assert_int_equal(ob.n, tn);
        assert_memory_equal(ob.p, txt, tn);
        free(ob.p);
    }
    nuage_vocab_free(v);
}

/* Unicode 15.0, section 3.9, "U+FFFD Substitution of Maximal Subparts",
 * table 3-8: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 decodes to
 * 0061 FFFD FFFD FFFD 0062 FFFD 0063 FFFD FFFD 0064. */
static void test_invalid_bytes(void **state) {
    (void)state;
    nuage_vocab *v = load_spm();
    const unsigned char in[] = {0x61, 0xf1, 0x80, 0x80, 0xe1, 0x80, 0xc2, 0x62, 0x80, 0x63, 0x80, 0xbf, 0x64};
    const char *exp = "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd" "d";
    bytes o = stream(v, in, sizeof in);
    assert_int_equal(o.n, strlen(exp));
    assert_memory_equal(o.p, exp, o.n);
    free(o.p);
    for (size_t step = 1; step <= sizeof in; step++) {
        bytes ob = stream_bytes(in, sizeof in, step);
        assert_int_equal(ob.n, strlen(exp));
        assert_memory_equal(ob.p, exp, ob.n);
        free(ob.p);
    }
    /* overlong, surrogate, beyond U+10FFFF: each byte its own U+FFFD
     * (none of their second bytes is allowed after the lead) */
    const unsigned char bad[] = {0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80};
    bytes b = stream(v, bad, sizeof bad);
    assert_int_equal(b.n, 9 * 3);
    for (size_t i = 0; i < b.n; i += 3) assert_memory_equal(b.p + i, "\xef\xbf\xbd", 3);
    free(b.p);
    /* random bytes: output is always valid and independent of chunking */
    unsigned char rnd[2000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof rnd; i++) {
        x = x * 1103515245u + 12345u;
        rnd[i] = (unsigned char)(x >> 16);
        if (i % 7 == 0) rnd[i] |= 0x80;
    }
    bytes r1 = stream(v, rnd, sizeof rnd);
    assert_true(valid_utf8(r1.p, r1.n));
    for (size_t step = 2; step < 40; step += 3) {
        bytes r2 = stream_bytes(rnd, sizeof rnd, step);
        assert_int_equal(r1.n, r2.n);
        assert_memory_equal(r1.p, r2.p, r1.n);
        free(r2.p);
    }
    free(r1.p);
    nuage_vocab_free(v);
}

/* Control tokens are rendered only when asked for. */
static void test_special_render(void **state) {
    (void)state;
    nuage_vocab *v = load_spm();
    size_t k;
    nuage_detok *on = nuage_detok_new(v, true), *off = nuage_detok_new(v, false);
    assert_string_equal(nuage_detok_push(on, 2, &k), "</s>");
    assert_string_equal(nuage_detok_push(off, 2, &k), "");
    assert_int_equal(k, 0);
    nuage_detok_free(on);
    nuage_detok_free(off);
    nuage_vocab_free(v);
}

/* Whole-sequence detokenization, llama.cpp's llama_detokenize rules. */
static void test_detokenize(void **state) {
    (void)state;
    nuage_vocab *v = load_spm();
    const char *s = "Hello world";
    int32_t ids[32];
    int n = nuage_tokenize(v, s, strlen(s), ids, 32, true, false);
    assert_true(n > 2 && ids[0] == 1);
    char buf[64];
    /* BOS kept and rendered; the leading space of the first word stays
     * (llama.cpp only strips it from the very first piece) */
    int len = nuage_detokenize(v, ids, (size_t)n, buf, sizeof buf, false, true);
    assert_int_equal(len, (int)strlen("<s> Hello world"));
    assert_string_equal(buf, "<s> Hello world");
    /* without BOS: the space prefix added by tokenize is removed */
    len = nuage_detokenize(v, ids + 1, (size_t)n - 1, buf, sizeof buf, false, true);
    assert_string_equal(buf, "Hello world");
    /* too small a buffer: full length returned, nothing past cap written */
    memset(buf, 'x', sizeof buf);
    len = nuage_detokenize(v, ids + 1, (size_t)n - 1, buf, 5, false, true);
    assert_int_equal(len, 11);
    assert_memory_equal(buf, "Hello", 5);
    assert_int_equal(buf[5], 'x');
    int32_t badid = 1 << 30;
    assert_int_equal(nuage_detokenize(v, &badid, 1, buf, sizeof buf, false, true), NUAGE_E_RANGE);
    nuage_vocab_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_chars),
        cmocka_unit_test(test_invalid_bytes),
        cmocka_unit_test(test_special_render),
        cmocka_unit_test(test_detokenize),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
