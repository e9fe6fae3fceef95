/*
 * test_gguf.c - the GGUF reader on files built in memory.
 *
 * A small independent writer (test_gguf_writer.h) produces GGUF v2 and v3
 * files with every metadata value type, string arrays, nested arrays and
 * tensors of several types; the tests check that every value, shape and
 * data byte reads back. Then hostile files: each must fail with the
 * expected code and a message naming the problem. Every prefix of a valid
 * file, and thousands of randomly corrupted copies, must fail (or succeed)
 * cleanly - under ASan each buffer is a malloc of exactly its size, so any
 * read past the end is caught.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <time.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/quant.h"
#include "nuage/nuage.h"
#include "test_gguf_writer.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------ */

/* Open a copy of buf in a malloc of exactly len bytes (so ASan sees reads
 * past its end). Returns the code; *out set on success, *copy to free after
 * closing. */
static int open_exact(const uint8_t *buf, size_t len, nuage_gguf **out, uint8_t **copy,
                      char *err, size_t errlen) {
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    if (len) memcpy(*copy, buf, len);
    return nuage_gguf_open_buffer(*copy, len, out, err, errlen);
}

/* Assert that the file fails with `code` and a message containing `want`. */
static void expect_fail_(const uint8_t *buf, size_t len, int code, const char *want,
                         const char *file, int line) {
    nuage_gguf *g = (nuage_gguf *)1;
    uint8_t *copy;
    char err[512] = "";
    int rc = open_exact(buf, len, &g, &copy, err, sizeof err);
    if (rc != code || !strstr(err, want)) {
        print_error("%s:%d: got rc %d message \"%s\"; want rc %d and \"%s\"\n", file, line, rc,
                    err, code, want);
        if (g && g != (nuage_gguf *)1) nuage_gguf_close(g);
        free(copy);
        fail();
    }
    assert_null(g);
    /* The same without an error buffer must not crash either. */
    assert_int_equal(nuage_gguf_open_buffer(copy, len, &g, NULL, 0), code);
    free(copy);
}
#define expect_fail(buf, len, code, want) expect_fail_(buf, len, code, want, __FILE__, __LINE__)

/* Finish a writer, check the failure, free everything. */
static void expect_fail_w_(gw *w, int code, const char *want, const char *file, int line) {
    size_t len;
    uint8_t *f = gw_finish(w, &len);
    expect_fail_(f, len, code, want, file, line);
    free(f);
    gw_free(w);
}
#define expect_fail_w(w, code, want) expect_fail_w_(w, code, want, __FILE__, __LINE__)

/* Touch every value and every tensor byte range of an opened file. */
static uint64_t walk_value(const nuage_gguf_value *v) {
    uint64_t h = (uint64_t)v->type;
    if (v->type == NUAGE_GGUF_STRING) {
        h += v->v.str.len + (uint8_t)v->v.str.ptr[v->v.str.len]; /* terminator readable */
    } else if (v->type == NUAGE_GGUF_ARRAY) {
        uint64_t n = v->v.arr.n;
        if (v->v.arr.type == NUAGE_GGUF_STRING) {
            const nuage_gguf_str *s = v->v.arr.data;
            for (uint64_t i = 0; i < n; i++) h += s[i].len + (uint8_t)s[i].ptr[s[i].len];
        } else if (v->v.arr.type == NUAGE_GGUF_ARRAY) {
            const nuage_gguf_value *e = v->v.arr.data;
            for (uint64_t i = 0; i < n; i++) h += walk_value(&e[i]);
        } else if (n) {
            const uint8_t *d = v->v.arr.data;
            h += d[0] + d[n - 1]; /* first and last byte at least */
        }
    }
    return h;
}

static uint64_t walk(const nuage_gguf *g) {
    uint64_t h = 0;
    for (uint64_t i = 0; i < nuage_gguf_n_kv(g); i++) {
        const nuage_gguf_kv *kv = nuage_gguf_kv_at(g, i);
        h += walk_value(&kv->value) + (uint8_t)kv->key.ptr[kv->key.len];
        assert_ptr_equal(nuage_gguf_get(g, kv->key.ptr), &kv->value);
    }
    for (uint64_t i = 0; i < nuage_gguf_n_tensors(g); i++) {
        const nuage_gguf_tensor *t = nuage_gguf_tensor_at(g, i);
        const uint8_t *d = t->data;
        h += d[0] + d[t->nbytes - 1];
        assert_ptr_equal(nuage_gguf_find_tensor(g, t->name), t);
    }
    return h;
}

/* ---- a file with everything --------------------------------------------- */

static const char *const k_strs[] = {"", "hello", "h\xc3\xa9llo \xe2\x9c\x93", "a\nb\tc",
                                     "<|im_start|>"};
#define N_STRS (sizeof k_strs / sizeof k_strs[0])

static float tensor_a[4 * 3];          /* f32 [4, 3] */
static uint8_t tensor_b[2 * 18];       /* q4_0 [64] = 2 blocks */
static uint8_t tensor_c[144 * 2];      /* q4_K [256, 1, 2] */

/* Write every kind of value; `tail_tensors` adds tensors so that the last
 * tensor's data ends exactly at end of file. */
static uint8_t *build_full(uint32_t version, uint64_t alignment, size_t *len) {
    gw w;
    gw_init(&w, version);
    w.alignment = alignment;
    if (alignment != 32) {
        gw_key(&w, "general.alignment", NUAGE_GGUF_UINT32);
        gw_u32(&w.kv, (uint32_t)alignment);
    }
    gw_key(&w, "t.u8", NUAGE_GGUF_UINT8); gw_u8(&w.kv, 255);
    gw_key(&w, "t.i8", NUAGE_GGUF_INT8); gw_u8(&w.kv, 0x80);
    gw_key(&w, "t.u16", NUAGE_GGUF_UINT16); gw_u16(&w.kv, 65535);
    gw_key(&w, "t.i16", NUAGE_GGUF_INT16); gw_u16(&w.kv, 0x8000);
    gw_key(&w, "t.u32", NUAGE_GGUF_UINT32); gw_u32(&w.kv, 4000000000u);
    gw_key(&w, "t.i32", NUAGE_GGUF_INT32); gw_u32(&w.kv, (uint32_t)-123456);
    gw_key(&w, "t.f32", NUAGE_GGUF_FLOAT32); gw_f32(&w.kv, 1e-5f);
    gw_key(&w, "t.bool1", NUAGE_GGUF_BOOL); gw_u8(&w.kv, 1);
    gw_key(&w, "t.bool0", NUAGE_GGUF_BOOL); gw_u8(&w.kv, 0);
    gw_key(&w, "t.str", NUAGE_GGUF_STRING); gw_str(&w.kv, k_strs[2]);
    gw_key(&w, "t.empty", NUAGE_GGUF_STRING); gw_str(&w.kv, "");
    gw_key(&w, "t.nul", NUAGE_GGUF_STRING); gw_strn(&w.kv, "a\0b", 3);
    gw_key(&w, "t.u64", NUAGE_GGUF_UINT64); gw_u64(&w.kv, UINT64_MAX);
    gw_key(&w, "t.i64", NUAGE_GGUF_INT64); gw_u64(&w.kv, (uint64_t)INT64_MIN);
    gw_key(&w, "t.f64", NUAGE_GGUF_FLOAT64); gw_f64(&w.kv, 3.141592653589793);
    gw_key(&w, "t.big_f64", NUAGE_GGUF_FLOAT64); gw_f64(&w.kv, 1e300);
    /* arrays of scalars */
    gw_key(&w, "a.u8", NUAGE_GGUF_ARRAY); gw_u32(&w.kv, NUAGE_GGUF_UINT8); gw_u64(&w.kv, 3);
    gw_u8(&w.kv, 1); gw_u8(&w.kv, 2); gw_u8(&w.kv, 250);
    gw_key(&w, "a.i16", NUAGE_GGUF_ARRAY); gw_u32(&w.kv, NUAGE_GGUF_INT16); gw_u64(&w.kv, 2);
    gw_u16(&w.kv, (uint16_t)-2); gw_u16(&w.kv, 300);
    gw_key(&w, "a.f32", NUAGE_GGUF_ARRAY); gw_u32(&w.kv, NUAGE_GGUF_FLOAT32); gw_u64(&w.kv, 5);
    for (int i = 0; i < 5; i++) gw_f32(&w.kv, -0.5f * (float)i);
    gw_key(&w, "a.bool", NUAGE_GGUF_ARRAY); gw_u32(&w.kv, NUAGE_GGUF_BOOL); gw_u64(&w.kv, 3);
    gw_u8(&w.kv, 1); gw_u8(&w.kv, 0); gw_u8(&w.kv, 1);
    gw_key(&w, "a.i64", NUAGE_GGUF_ARRAY); gw_u32(&w.kv, NUAGE_GGUF_INT64); gw_u64(&w.kv, 2);
    gw_u64(&w.kv, (uint64_t)-7); gw_u64(&w.kv, 1ull << 40);
    gw_key(&w, "a.f64", NUAGE_GGUF_ARRAY); gw_u32(&w.kv, NUAGE_GGUF_FLOAT64); gw_u64(&w.kv, 1);
    gw_f64(&w.kv, -2.25);
    gw_key(&w, "a.u32e", NUAGE_GGUF_ARRAY); gw_u32(&w.kv, NUAGE_GGUF_UINT32); gw_u64(&w.kv, 0);
    /* array of strings */
    gw_key(&w, "a.str", NUAGE_GGUF_ARRAY); gw_u32(&w.kv, NUAGE_GGUF_STRING);
    gw_u64(&w.kv, N_STRS);
    for (size_t i = 0; i < N_STRS; i++) gw_str(&w.kv, k_strs[i]);
    /* nested: [[1, 2, 3], [], [[ "x", "yz" ]]] : an array of arrays whose
     * elements have different element types */
    gw_key(&w, "a.nested", NUAGE_GGUF_ARRAY); gw_u32(&w.kv, NUAGE_GGUF_ARRAY); gw_u64(&w.kv, 3);
    gw_u32(&w.kv, NUAGE_GGUF_INT32); gw_u64(&w.kv, 3);
    gw_u32(&w.kv, 1); gw_u32(&w.kv, 2); gw_u32(&w.kv, 3);
    gw_u32(&w.kv, NUAGE_GGUF_UINT16); gw_u64(&w.kv, 0);
    gw_u32(&w.kv, NUAGE_GGUF_ARRAY); gw_u64(&w.kv, 1);
    gw_u32(&w.kv, NUAGE_GGUF_STRING); gw_u64(&w.kv, 2); gw_str(&w.kv, "x"); gw_str(&w.kv, "yz");
    /* tensors */
    for (int i = 0; i < 12; i++) tensor_a[i] = (float)i * 0.25f;
    for (size_t i = 0; i < sizeof tensor_b; i++) tensor_b[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof tensor_c; i++) tensor_c[i] = (uint8_t)(i * 13 + 5);
    uint64_t da[] = {4, 3}, db[] = {64}, dc[] = {256, 1, 2};
    gw_tensor(&w, "tensor.a", 2, da, NUAGE_TYPE_F32, tensor_a, sizeof tensor_a);
    gw_tensor(&w, "tensor.b", 1, db, NUAGE_TYPE_Q4_0, tensor_b, sizeof tensor_b);
    gw_tensor(&w, "blk.0.tensor.c", 3, dc, NUAGE_TYPE_Q4_K, tensor_c, sizeof tensor_c);
    uint8_t *f = gw_finish(&w, len);
    gw_free(&w);
    return f;
}

static void check_full(const nuage_gguf *g, uint32_t version, uint64_t alignment) {
    assert_int_equal(nuage_gguf_version(g), version);
    assert_int_equal(nuage_gguf_alignment(g), alignment);
    assert_int_equal(nuage_gguf_n_kv(g), 25 + (alignment != 32));
    assert_int_equal(nuage_gguf_data_offset(g) % alignment, 0);
    /* order of entries is the file's */
    uint64_t k0 = alignment != 32;
    assert_string_equal(nuage_gguf_kv_at(g, k0)->key.ptr, "t.u8");
    assert_int_equal(nuage_gguf_kv_at(g, k0)->key.len, 4);
    assert_null(nuage_gguf_kv_at(g, nuage_gguf_n_kv(g)));

    const nuage_gguf_value *v;
    v = nuage_gguf_get(g, "t.u8");
    assert_int_equal(v->type, NUAGE_GGUF_UINT8); assert_int_equal(v->v.u64, 255);
    v = nuage_gguf_get(g, "t.i8");
    assert_int_equal(v->type, NUAGE_GGUF_INT8); assert_int_equal(v->v.i64, -128);
    v = nuage_gguf_get(g, "t.u16"); assert_int_equal(v->v.u64, 65535);
    v = nuage_gguf_get(g, "t.i16"); assert_int_equal(v->v.i64, -32768);
    v = nuage_gguf_get(g, "t.u32"); assert_int_equal(v->v.u64, 4000000000u);
    v = nuage_gguf_get(g, "t.i32"); assert_int_equal(v->v.i64, -123456);
    v = nuage_gguf_get(g, "t.f32");
    assert_int_equal(v->type, NUAGE_GGUF_FLOAT32); assert_true(v->v.f64 == (double)1e-5f);
    v = nuage_gguf_get(g, "t.bool1"); assert_int_equal(v->type, NUAGE_GGUF_BOOL); assert_true(v->v.b);
    v = nuage_gguf_get(g, "t.bool0"); assert_false(v->v.b);
    v = nuage_gguf_get(g, "t.u64"); assert_true(v->v.u64 == UINT64_MAX);
    v = nuage_gguf_get(g, "t.i64"); assert_true(v->v.i64 == INT64_MIN);
    v = nuage_gguf_get(g, "t.f64"); assert_true(v->v.f64 == 3.141592653589793);
    uint64_t len = 99;
    assert_string_equal(nuage_gguf_get_str(g, "t.str", &len), k_strs[2]);
    assert_int_equal(len, strlen(k_strs[2]));
    assert_string_equal(nuage_gguf_get_str(g, "t.empty", &len), "");
    assert_int_equal(len, 0);
    const char *nul = nuage_gguf_get_str(g, "t.nul", &len);
    assert_int_equal(len, 3);
    assert_memory_equal(nul, "a\0b\0", 4);

    /* typed getters: lossless conversions only */
    uint32_t u32 = 7; int64_t i64 = 7; float f = 7; bool b = false;
    assert_true(nuage_gguf_get_u32(g, "t.u8", &u32)); assert_int_equal(u32, 255);
    assert_true(nuage_gguf_get_u32(g, "t.u32", &u32)); assert_int_equal(u32, 4000000000u);
    u32 = 7;
    assert_false(nuage_gguf_get_u32(g, "t.i32", &u32));   /* negative */
    assert_false(nuage_gguf_get_u32(g, "t.u64", &u32));   /* too large */
    assert_false(nuage_gguf_get_u32(g, "t.f32", &u32));   /* float */
    assert_false(nuage_gguf_get_u32(g, "t.str", &u32));
    assert_false(nuage_gguf_get_u32(g, "missing", &u32));
    assert_int_equal(u32, 7);
    assert_true(nuage_gguf_get_i64(g, "t.i8", &i64)); assert_int_equal(i64, -128);
    assert_true(nuage_gguf_get_i64(g, "t.u32", &i64)); assert_int_equal(i64, 4000000000);
    assert_true(nuage_gguf_get_i64(g, "t.i64", &i64)); assert_true(i64 == INT64_MIN);
    i64 = 7;
    assert_false(nuage_gguf_get_i64(g, "t.u64", &i64));
    assert_false(nuage_gguf_get_i64(g, "t.bool1", &i64));
    assert_int_equal(i64, 7);
    assert_true(nuage_gguf_get_f32(g, "t.f32", &f)); assert_true(f == 1e-5f);
    assert_true(nuage_gguf_get_f32(g, "t.f64", &f)); assert_true(f == (float)3.141592653589793);
    assert_true(nuage_gguf_get_f32(g, "t.i32", &f)); assert_true(f == -123456.0f);
    assert_true(nuage_gguf_get_f32(g, "t.u16", &f)); assert_true(f == 65535.0f);
    f = 7;
    assert_false(nuage_gguf_get_f32(g, "t.big_f64", &f)); /* beyond float range */
    assert_false(nuage_gguf_get_f32(g, "t.str", &f));
    assert_true(f == 7);
    assert_true(nuage_gguf_get_bool(g, "t.bool1", &b)); assert_true(b);
    assert_true(nuage_gguf_get_bool(g, "t.bool0", &b)); assert_false(b);
    assert_false(nuage_gguf_get_bool(g, "t.u8", &b));
    assert_null(nuage_gguf_get_str(g, "t.u8", NULL));
    assert_null(nuage_gguf_get(g, "t.u"));
    assert_null(nuage_gguf_get(g, ""));

    /* arrays */
    const nuage_gguf_value *a = nuage_gguf_get_arr(g, "a.u8", NUAGE_GGUF_UINT8);
    assert_non_null(a);
    assert_int_equal(a->v.arr.n, 3);
    assert_memory_equal(a->v.arr.data, "\x01\x02\xfa", 3);
    assert_null(nuage_gguf_get_arr(g, "a.u8", NUAGE_GGUF_INT8));
    assert_null(nuage_gguf_get_arr(g, "t.u8", NUAGE_GGUF_UINT8));
    a = nuage_gguf_get_arr(g, "a.i16", NUAGE_GGUF_INT16);
    const int16_t *i16 = a->v.arr.data;
    assert_int_equal(i16[0], -2); assert_int_equal(i16[1], 300);
    a = nuage_gguf_get_arr(g, "a.f32", NUAGE_GGUF_FLOAT32);
    assert_int_equal(a->v.arr.n, 5);
    for (int i = 0; i < 5; i++) assert_true(((const float *)a->v.arr.data)[i] == -0.5f * (float)i);
    a = nuage_gguf_get_arr(g, "a.bool", NUAGE_GGUF_BOOL);
    assert_memory_equal(a->v.arr.data, "\x01\x00\x01", 3);
    a = nuage_gguf_get_arr(g, "a.i64", NUAGE_GGUF_INT64);
    assert_true(((const int64_t *)a->v.arr.data)[0] == -7);
    assert_true(((const int64_t *)a->v.arr.data)[1] == 1ll << 40);
    a = nuage_gguf_get_arr(g, "a.f64", NUAGE_GGUF_FLOAT64);
    assert_true(((const double *)a->v.arr.data)[0] == -2.25);
    a = nuage_gguf_get_arr(g, "a.u32e", NUAGE_GGUF_UINT32);
    assert_non_null(a);
    assert_int_equal(a->v.arr.n, 0);
    a = nuage_gguf_get_arr(g, "a.str", NUAGE_GGUF_STRING);
    assert_int_equal(a->v.arr.n, N_STRS);
    const nuage_gguf_str *s = a->v.arr.data;
    for (size_t i = 0; i < N_STRS; i++) {
        assert_int_equal(s[i].len, strlen(k_strs[i]));
        assert_string_equal(s[i].ptr, k_strs[i]);
    }
    a = nuage_gguf_get_arr(g, "a.nested", NUAGE_GGUF_ARRAY);
    assert_int_equal(a->v.arr.n, 3);
    const nuage_gguf_value *e = a->v.arr.data;
    assert_int_equal(e[0].type, NUAGE_GGUF_ARRAY);
    assert_int_equal(e[0].v.arr.type, NUAGE_GGUF_INT32);
    assert_int_equal(e[0].v.arr.n, 3);
    assert_int_equal(((const int32_t *)e[0].v.arr.data)[2], 3);
    assert_int_equal(e[1].v.arr.type, NUAGE_GGUF_UINT16);
    assert_int_equal(e[1].v.arr.n, 0);
    assert_int_equal(e[2].v.arr.type, NUAGE_GGUF_ARRAY);
    assert_int_equal(e[2].v.arr.n, 1);
    const nuage_gguf_value *inner = e[2].v.arr.data;
    assert_int_equal(inner->v.arr.type, NUAGE_GGUF_STRING);
    assert_int_equal(inner->v.arr.n, 2);
    assert_string_equal(((const nuage_gguf_str *)inner->v.arr.data)[1].ptr, "yz");

    /* tensors */
    assert_int_equal(nuage_gguf_n_tensors(g), 3);
    const nuage_gguf_tensor *t = nuage_gguf_find_tensor(g, "tensor.a");
    assert_ptr_equal(t, nuage_gguf_tensor_at(g, 0));
    assert_int_equal(t->type, NUAGE_TYPE_F32);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 4); assert_int_equal(t->ne[1], 3);
    assert_int_equal(t->ne[2], 1); assert_int_equal(t->ne[3], 1);
    assert_int_equal(t->nbytes, sizeof tensor_a);
    assert_int_equal(t->offset, 0);
    assert_memory_equal(t->data, tensor_a, sizeof tensor_a);
    t = nuage_gguf_find_tensor(g, "tensor.b");
    assert_int_equal(t->type, NUAGE_TYPE_Q4_0);
    assert_int_equal(t->nbytes, 36);
    assert_int_equal(t->offset % alignment, 0);
    assert_memory_equal(t->data, tensor_b, sizeof tensor_b);
    t = nuage_gguf_find_tensor(g, "blk.0.tensor.c");
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->ne[2], 2);
    assert_int_equal(t->nbytes, 288);
    assert_memory_equal(t->data, tensor_c, sizeof tensor_c);
    assert_null(nuage_gguf_find_tensor(g, "tensor"));
    assert_null(nuage_gguf_tensor_at(g, 3));
    walk(g);
}

static void test_roundtrip(void **state) {
    (void)state;
    static const uint32_t versions[] = {2, 3};
    static const uint64_t aligns[] = {32, 1, 64, 4096};
    for (size_t vi = 0; vi < 2; vi++)
        for (size_t ai = 0; ai < sizeof aligns / sizeof aligns[0]; ai++) {
            size_t len;
            uint8_t *f = build_full(versions[vi], aligns[ai], &len);
            nuage_gguf *g = NULL;
            uint8_t *copy;
            char err[256] = "";
            int rc = open_exact(f, len, &g, &copy, err, sizeof err);
            if (rc) print_error("v%u align %llu: %s\n", versions[vi],
                                (unsigned long long)aligns[ai], err);
            assert_int_equal(rc, 0);
            assert_int_equal(nuage_gguf_file_size(g), len);
            check_full(g, versions[vi], aligns[ai]);
            nuage_gguf_close(g);
            free(copy);
            free(f);
        }
}

/* The same file through the mmap path, and file-level errors. */
static void test_open_file(void **state) {
    (void)state;
    char path[] = "/tmp/nuage_test_gguf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len;
    uint8_t *f = build_full(3, 32, &len);
    assert_int_equal(write(fd, f, len), (ssize_t)len);
    close(fd);
    nuage_gguf *g = NULL;
    char err[256] = "";
    assert_int_equal(nuage_gguf_open(path, &g, err, sizeof err), 0);
    check_full(g, 3, 32);
    nuage_gguf_close(g);

    /* truncated on disk */
    assert_int_equal(truncate(path, (off_t)len - 1), 0);
    assert_int_equal(nuage_gguf_open(path, &g, err, sizeof err), NUAGE_E_FORMAT);
    assert_null(g);
    assert_non_null(strstr(err, "tensor blk.0.tensor.c: data runs past end of file"));
    /* empty */
    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(nuage_gguf_open(path, &g, err, sizeof err), NUAGE_E_FORMAT);
    assert_non_null(strstr(err, "file too small (0 bytes)"));
    unlink(path);
    /* missing, directory */
    assert_int_equal(nuage_gguf_open(path, &g, err, sizeof err), NUAGE_E_IO);
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(nuage_gguf_open("/tmp", &g, err, sizeof err), NUAGE_E_IO);
    assert_non_null(strstr(err, "not a regular file"));
    assert_int_equal(nuage_gguf_open_buffer(NULL, 5, &g, err, sizeof err), NUAGE_E_INVAL);
    free(f);
}

/* ---- every prefix and random corruption --------------------------------- */

static void test_truncated_everywhere(void **state) {
    (void)state;
    for (uint32_t version = 2; version <= 3; version++) {
        size_t len;
        uint8_t *f = build_full(version, 32, &len);
        for (size_t cut = 0; cut < len; cut++) {
            nuage_gguf *g = (nuage_gguf *)1;
            uint8_t *copy;
            char err[256] = "";
            int rc = open_exact(f, cut, &g, &copy, err, sizeof err);
            if (rc >= 0 || err[0] == 0)
                print_error("cut at %zu of %zu: rc %d \"%s\"\n", cut, len, rc, err);
            assert_int_equal(rc, NUAGE_E_FORMAT);
            assert_null(g);
            assert_true(strlen(err) > 10);
            free(copy);
        }
        free(f);
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Corrupt 1-4 random bytes (often into a length/count field, sometimes as
 * all-ones bytes) thousands of times: open must succeed or fail cleanly,
 * and a file that opens must be fully walkable. */
static void test_random_corruption(void **state) {
    (void)state;
    size_t len;
    uint8_t *f = build_full(3, 32, &len);
    int n_ok = 0, n_fail = 0;
    for (int it = 0; it < 20000; it++) {
        uint8_t *c = malloc(len);
        memcpy(c, f, len);
        int k = 1 + (int)(rng() % 4);
        for (int j = 0; j < k; j++) {
            size_t at = rng() % len;
            uint64_t r = rng();
            c[at] = (r & 3) == 0 ? 0xff : (r & 3) == 1 ? 0x00 : (uint8_t)(r >> 8);
        }
        nuage_gguf *g = NULL;
        char err[256] = "";
        int rc = nuage_gguf_open_buffer(c, len, &g, err, sizeof err);
        if (rc == 0) {
            walk(g);
            nuage_gguf_close(g);
            n_ok++;
        } else {
            assert_true(rc == NUAGE_E_FORMAT || rc == NUAGE_E_UNSUPPORTED);
            assert_null(g);
            assert_true(err[0] != 0);
            n_fail++;
        }
        free(c);
    }
    print_message("random corruption: %d opened, %d rejected\n", n_ok, n_fail);
    assert_true(n_fail > 1000);
    free(f);
}

/* ---- hostile headers ---------------------------------------------------- */

static void test_bad_header(void **state) {
    (void)state;
    uint8_t h[24] = "GGUF";
    expect_fail(h, 0, NUAGE_E_FORMAT, "file too small (0 bytes)");
    expect_fail(h, 3, NUAGE_E_FORMAT, "file too small (3 bytes)");
    expect_fail((const uint8_t *)"\x7f" "ELF\x02\x01\x01\x00", 8, NUAGE_E_FORMAT,
                "bad magic 0x7f454c46 (not a GGUF file)");
    expect_fail((const uint8_t *)"GGUX\x03\0\0\0", 8, NUAGE_E_FORMAT, "bad magic 0x47475558");
    expect_fail(h, 4, NUAGE_E_FORMAT, "truncated header");
    uint32_t v = 3;
    memcpy(h + 4, &v, 4);
    expect_fail(h, 12, NUAGE_E_FORMAT, "truncated header");
    expect_fail(h, 23, NUAGE_E_FORMAT, "truncated header");
    /* a header alone (no metadata, no tensors) is a valid, empty file */
    nuage_gguf *g;
    assert_int_equal(nuage_gguf_open_buffer(h, 24, &g, NULL, 0), 0);
    assert_int_equal(nuage_gguf_n_kv(g), 0);
    assert_int_equal(nuage_gguf_n_tensors(g), 0);
    assert_null(nuage_gguf_get(g, "general.architecture"));
    assert_null(nuage_gguf_find_tensor(g, "x"));
    nuage_gguf_close(g);

    gw w;
    gw_init(&w, 1);
    expect_fail_w(&w, NUAGE_E_UNSUPPORTED, "unsupported GGUF version 1");
    gw_init(&w, 4);
    expect_fail_w(&w, NUAGE_E_UNSUPPORTED, "unsupported GGUF version 4");
    gw_init(&w, 0);
    expect_fail_w(&w, NUAGE_E_FORMAT, "bad GGUF version 0");
    gw_init(&w, 0x03000000u); /* a big-endian v3 file */
    expect_fail_w(&w, NUAGE_E_UNSUPPORTED, "big-endian GGUF file");
    gw_init(&w, 0x02000000u);
    expect_fail_w(&w, NUAGE_E_UNSUPPORTED, "big-endian");

    gw_init(&w, 3);
    w.override_counts = 1;
    w.hdr_n_kv = 1ull << 62;
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata count 4611686018427387904 exceeds the limit");
    gw_init(&w, 3);
    gw_kv_u32(&w, "a", 1);
    w.override_counts = 1;
    w.hdr_n_kv = 1000;
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata count 1000 is too large for the 17 bytes left");
    gw_init(&w, 3);
    gw_kv_u32(&w, "a", 1);
    w.override_counts = 1;
    w.hdr_n_kv = 2; /* 17 bytes cannot hold two 13-byte entries */
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata count 2 is too large");
    gw_init(&w, 3);
    w.override_counts = 1;
    w.hdr_n_ti = UINT64_MAX;
    expect_fail_w(&w, NUAGE_E_FORMAT, "tensor count 18446744073709551615 exceeds the limit");
    gw_init(&w, 3);
    gw_kv_u32(&w, "a", 1);
    w.override_counts = 1;
    w.hdr_n_kv = 1;
    w.hdr_n_ti = 5;
    expect_fail_w(&w, NUAGE_E_FORMAT, "tensor count 5 is too large for the 0 bytes left");
    /* the header claims two entries, the file holds one: truncation */
    gw_init(&w, 3);
    gw_kv_u32(&w, "a.b", 1);
    gw_kv_u32(&w, "a.c", 1);
    w.override_counts = 1;
    w.hdr_n_kv = 3;
    expect_fail_w(&w, NUAGE_E_FORMAT, "too large");
}

/* ---- hostile metadata --------------------------------------------------- */

static void test_bad_metadata(void **state) {
    (void)state;
    gw w;
    gw_init(&w, 3);
    gw_key(&w, "general.name", NUAGE_GGUF_STRING);
    gw_u64(&w.kv, UINT64_MAX);
    gw_put(&w.kv, "0123456789", 10);
    expect_fail_w(&w, NUAGE_E_FORMAT,
                  "metadata key 'general.name': string length 18446744073709551615 runs past "
                  "end of file");
    gw_init(&w, 2);
    gw_u64(&w.kv, UINT64_MAX); /* key length */
    gw_put(&w.kv, "0123456789abcdef", 16);
    w.n_kv = 1;
    expect_fail_w(&w, NUAGE_E_FORMAT,
                  "metadata entry 0 (of 1): key length 18446744073709551615 runs past end");
    gw_init(&w, 3);
    gw_kv_u32(&w, "", 1);
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata entry 0 (of 1): empty key");
    gw_init(&w, 3);
    gw_kv_u32(&w, "ok", 1);
    gw_key(&w, "bad", NUAGE_GGUF_UINT32);
    w.kv.p[w.kv.n - 4 - 3 + 1] = 0; /* "b\0d" */
    gw_u32(&w.kv, 1);
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata entry 1 (of 2): key contains a NUL byte");
    gw_init(&w, 3);
    gw_key(&w, "a.b\n\x01", 13);
    gw_u32(&w.kv, 0);
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata key 'a.b\\x0a\\x01': unknown value type 13");
    gw_init(&w, 3);
    gw_key(&w, "a.b", 0xffffffffu);
    gw_u64(&w.kv, 0);
    expect_fail_w(&w, NUAGE_E_FORMAT, "unknown value type 4294967295");
    gw_init(&w, 3);
    gw_key(&w, "t.u64", NUAGE_GGUF_UINT64);
    gw_u32(&w.kv, 0); /* 4 of 8 bytes */
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata key 't.u64': uint64 value runs past end of file");
    gw_init(&w, 3);
    gw_key(&w, "t.b", NUAGE_GGUF_BOOL);
    gw_u8(&w.kv, 2);
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata key 't.b': bad bool value 2");
    gw_init(&w, 3);
    gw_kv_u32(&w, "a.b", 1);
    gw_kv_str(&w, "a.c", "x");
    gw_kv_u32(&w, "a.b", 2);
    expect_fail_w(&w, NUAGE_E_FORMAT, "duplicate metadata key 'a.b'");
}

static void test_bad_arrays(void **state) {
    (void)state;
    gw w;
    gw_init(&w, 3);
    gw_key(&w, "a", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, 99);
    gw_u64(&w.kv, 1);
    gw_u32(&w.kv, 0);
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata key 'a': array element type 99 is unknown");
    gw_init(&w, 3);
    gw_key(&w, "a", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_UINT32);
    gw_u64(&w.kv, 1ull << 60);
    gw_u64(&w.kv, 0);
    expect_fail_w(&w, NUAGE_E_FORMAT, "array of 1152921504606846976 uint32 elements runs past end");
    gw_init(&w, 3);
    gw_key(&w, "a", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_UINT32);
    gw_u64(&w.kv, 3);
    gw_u64(&w.kv, 0); /* only 2 of 3 elements */
    expect_fail_w(&w, NUAGE_E_FORMAT, "array of 3 uint32 elements runs past end of file");
    gw_init(&w, 3);
    gw_key(&w, "a", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_UINT8);
    gw_u32(&w.kv, 0); /* 4 of the 8 count bytes */
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata key 'a': array header runs past end of file");
    gw_init(&w, 3);
    gw_key(&w, "tokenizer.ggml.tokens", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_STRING);
    gw_u64(&w.kv, 4);
    gw_str(&w.kv, "a");
    gw_str(&w.kv, "b");
    gw_u64(&w.kv, 1ull << 40);
    gw_str(&w.kv, "d");
    expect_fail_w(&w, NUAGE_E_FORMAT,
                  "metadata key 'tokenizer.ggml.tokens': element 2: string length 1099511627776 "
                  "runs past end of file");
    gw_init(&w, 3);
    gw_key(&w, "a", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_STRING);
    gw_u64(&w.kv, 1000000); /* each string needs >= 8 bytes */
    gw_str(&w.kv, "a");
    expect_fail_w(&w, NUAGE_E_FORMAT, "array of 1000000 string elements runs past end");
    gw_init(&w, 3);
    gw_key(&w, "a", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_BOOL);
    gw_u64(&w.kv, 3);
    gw_put(&w.kv, "\x01\x00\x05", 3);
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata key 'a': element 2: bad bool value 5");
    /* nested array with a bad inner element */
    gw_init(&w, 3);
    gw_key(&w, "n", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_ARRAY);
    gw_u64(&w.kv, 2);
    gw_u32(&w.kv, NUAGE_GGUF_INT8);
    gw_u64(&w.kv, 0);
    gw_u32(&w.kv, 77);
    gw_u64(&w.kv, 0);
    expect_fail_w(&w, NUAGE_E_FORMAT, "metadata key 'n': element 1: array element type 77");
}

/* Arrays nested `depth` deep, innermost [uint8 x 1]. */
static uint8_t *build_nested(int depth, size_t *len) {
    gw w;
    gw_init(&w, 3);
    gw_key(&w, "deep", NUAGE_GGUF_ARRAY);
    for (int d = 1; d < depth; d++) {
        gw_u32(&w.kv, NUAGE_GGUF_ARRAY);
        gw_u64(&w.kv, 1);
    }
    gw_u32(&w.kv, NUAGE_GGUF_UINT8);
    gw_u64(&w.kv, 1);
    gw_u8(&w.kv, 42);
    uint8_t *f = gw_finish(&w, len);
    gw_free(&w);
    return f;
}

static void test_nesting_depth(void **state) {
    (void)state;
    size_t len;
    uint8_t *f = build_nested(8, &len); /* the deepest accepted */
    nuage_gguf *g;
    char err[256] = "";
    assert_int_equal(nuage_gguf_open_buffer(f, len, &g, err, sizeof err), 0);
    const nuage_gguf_value *v = nuage_gguf_get(g, "deep");
    for (int d = 1; d < 8; d++) {
        assert_int_equal(v->type, NUAGE_GGUF_ARRAY);
        assert_int_equal(v->v.arr.type, NUAGE_GGUF_ARRAY);
        assert_int_equal(v->v.arr.n, 1);
        v = v->v.arr.data;
    }
    assert_int_equal(v->v.arr.type, NUAGE_GGUF_UINT8);
    assert_int_equal(*(const uint8_t *)v->v.arr.data, 42);
    nuage_gguf_close(g);
    free(f);
    f = build_nested(9, &len);
    expect_fail(f, len, NUAGE_E_FORMAT, "arrays nested more than 8 deep");
    free(f);
    f = build_nested(100000, &len); /* a depth bomb */
    expect_fail(f, len, NUAGE_E_FORMAT, "arrays nested more than 8 deep");
    free(f);
}

static void test_bad_alignment(void **state) {
    (void)state;
    static const uint32_t bad[] = {0, 3, 48, 1u << 31};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gw w;
        gw_init(&w, 3);
        gw_kv_u32(&w, "general.alignment", bad[i]);
        expect_fail_w(&w, NUAGE_E_FORMAT, "general.alignment must be a non-zero power of two");
    }
    gw w;
    gw_init(&w, 3);
    gw_kv_str(&w, "general.alignment", "32");
    expect_fail_w(&w, NUAGE_E_FORMAT, "general.alignment has type string, expected uint32");
    gw_init(&w, 3);
    gw_key(&w, "general.alignment", NUAGE_GGUF_INT32);
    gw_u32(&w.kv, (uint32_t)-64);
    expect_fail_w(&w, NUAGE_E_FORMAT, "got -64");
}

/* ---- hostile tensor infos ----------------------------------------------- */

static void test_bad_tensors(void **state) {
    (void)state;
    gw w;
    uint64_t d2[] = {256, 256};
    uint64_t d5[] = {1, 1, 1, 1, 1};
#define ONE(setup, want)                                                       \
    do {                                                                       \
        gw_init(&w, 3);                                                        \
        gw_kv_str(&w, "general.architecture", "llama");                        \
        setup;                                                                 \
        expect_fail_w(&w, NUAGE_E_FORMAT, want);                               \
    } while (0)
    ONE(gw_tensor_info(&w, "w", 0, d2, 0, 0), "tensor w: n_dims 0 out of range 1..4");
    ONE(gw_tensor_info(&w, "w", 5, d5, 0, 0), "tensor w: n_dims 5 out of range 1..4");
    ONE(gw_tensor_info(&w, "w", 2, ((uint64_t[]){4, 0}), 0, 0), "tensor w: dimension 1 is 0");
    ONE(gw_tensor_info(&w, "w", 1, ((uint64_t[]){UINT64_MAX}), 0, 0),
        "tensor w: dimension 0 is negative (-1)");
    ONE(gw_tensor_info(&w, "w", 2, ((uint64_t[]){1ull << 32, 1ull << 32}), 0, 0),
        "tensor w: shape 4294967296 x 4294967296 x 1 x 1 overflows");
    ONE(gw_tensor_info(&w, "w", 1, ((uint64_t[]){1ull << 62}), 0, 0),
        "overflows the element or byte count"); /* elements fit, bytes do not */
    ONE(gw_tensor_info(&w, "w", 4, ((uint64_t[]){256, 1ull << 20, 1ull << 20, 1ull << 20}),
                       NUAGE_TYPE_Q4_K, 0),
        "overflows");
    ONE(gw_tensor_info(&w, "w", 2, d2, 99, 0), "tensor w: unknown tensor type id 99");
    ONE(gw_tensor_info(&w, "w", 2, d2, 4, 0), "tensor w: unknown tensor type id 4"); /* removed q4_2 */
    ONE(gw_tensor_info(&w, "w", 2, d2, 0xffffffffu, 0), "unknown tensor type id 4294967295");
    ONE(gw_tensor_info(&w, "w", 2, ((uint64_t[]){33, 2}), NUAGE_TYPE_Q4_0, 0),
        "tensor w: row length 33 is not a multiple of the q4_0 block size 32");
    ONE(gw_tensor_info(&w, "w", 1, ((uint64_t[]){128}), NUAGE_TYPE_Q2_K, 0),
        "row length 128 is not a multiple of the q2_K block size 256");
    ONE(gw_tensor(&w, "a", 1, ((uint64_t[]){8}), 0, NULL, 32);
        gw_tensor_info(&w, "w", 1, ((uint64_t[]){8}), 0, 4),
        "tensor w: offset 4 is not a multiple of the alignment 32");
    ONE(gw_tensor(&w, "a", 1, ((uint64_t[]){8}), 0, NULL, 32);
        gw_tensor_info(&w, "blk.3.attn_q.weight", 2, d2, 0, 64),
        "tensor blk.3.attn_q.weight: data runs past end of file");
    ONE(gw_tensor(&w, "a", 1, ((uint64_t[]){8}), 0, NULL, 32);
        gw_tensor_info(&w, "w", 1, ((uint64_t[]){8}), 0, UINT64_MAX - 31),
        "tensor w: data runs past end of file");
    ONE(gw_tensor(&w, "a", 1, ((uint64_t[]){8}), 0, NULL, 32);
        gw_tensor_info(&w, "w", 1, ((uint64_t[]){9}), 0, 0), /* one float too many */
        "tensor w: data runs past end of file");
    ONE(gw_tensor(&w, "w", 1, ((uint64_t[]){8}), 0, NULL, 32);
        gw_tensor(&w, "v", 1, ((uint64_t[]){8}), 0, NULL, 32);
        gw_tensor(&w, "w", 1, ((uint64_t[]){8}), 0, NULL, 32),
        "duplicate tensor name w");
    ONE(gw_tensor(&w, "", 1, ((uint64_t[]){8}), 0, NULL, 32), "tensor info 0 (of 1): empty name");
    ONE(gw_str(&w.ti, "wwwwwwwwwwwwwwww"); gw_u32(&w.ti, 2); gw_u64(&w.ti, 4); w.n_ti = 1,
        "tensor wwwwwwwwwwwwwwww: dimensions run past end of file");
    ONE(gw_str(&w.ti, "wwwwwwwwwwwwwwww"); gw_u32(&w.ti, 1); gw_u64(&w.ti, 4); w.n_ti = 1,
        "tensor wwwwwwwwwwwwwwww: type/offset run past end of file");
    ONE(gw_u64(&w.ti, 1ull << 50); w.n_ti = 1; gw_put(&w.ti, "012345678901234567890123456789012", 33),
        "tensor info 0 (of 1): name length 1125899906842624 runs past end of file");
#undef ONE
    /* overlapping tensors are accepted (as in llama.cpp) */
    gw_init(&w, 3);
    gw_tensor(&w, "a", 1, ((uint64_t[]){16}), 0, NULL, 64);
    gw_tensor_info(&w, "b", 1, ((uint64_t[]){8}), 0, 0);
    size_t len;
    uint8_t *f = gw_finish(&w, &len);
    nuage_gguf *g;
    assert_int_equal(nuage_gguf_open_buffer(f, len, &g, NULL, 0), 0);
    assert_ptr_equal(nuage_gguf_find_tensor(g, "a")->data, nuage_gguf_find_tensor(g, "b")->data);
    nuage_gguf_close(g);
    free(f);
    gw_free(&w);
}

/* ---- size and speed ----------------------------------------------------- */

/* A vocabulary-sized file: 32000 strings, scores and types, plus 20000
 * metadata keys and 20000 tensors (quadratic duplicate checks would take
 * seconds here). */
static void test_large_file_fast(void **state) {
    (void)state;
    enum { NV = 32000, NK = 20000, NT = 20000 };
    gw w;
    gw_init(&w, 3);
    char name[64];
    gw_key(&w, "tokenizer.ggml.tokens", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_STRING);
    gw_u64(&w.kv, NV);
    for (int i = 0; i < NV; i++) {
        snprintf(name, sizeof name, "tok%d", i);
        gw_str(&w.kv, name);
    }
    gw_key(&w, "tokenizer.ggml.scores", NUAGE_GGUF_ARRAY);
    gw_u32(&w.kv, NUAGE_GGUF_FLOAT32);
    gw_u64(&w.kv, NV);
    for (int i = 0; i < NV; i++) gw_f32(&w.kv, (float)-i);
    for (int i = 0; i < NK; i++) {
        snprintf(name, sizeof name, "key.%d", i);
        gw_kv_u32(&w, name, (uint32_t)i);
    }
    for (int i = 0; i < NT; i++) {
        snprintf(name, sizeof name, "blk.%d.w", i);
        gw_tensor(&w, name, 1, ((uint64_t[]){8}), 0, NULL, 32);
    }
    size_t len;
    uint8_t *f = gw_finish(&w, &len);
    gw_free(&w);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nuage_gguf *g;
    char err[256] = "";
    assert_int_equal(nuage_gguf_open_buffer(f, len, &g, err, sizeof err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
    print_message("open of %zu bytes (%d strings, %d keys, %d tensors): %.1f ms\n", len, NV,
                  NK + 2, NT, ms);
    assert_true(ms < 1500.0); /* linear: a few ms (tens under ASan) */
    const nuage_gguf_value *toks = nuage_gguf_get_arr(g, "tokenizer.ggml.tokens", NUAGE_GGUF_STRING);
    assert_int_equal(toks->v.arr.n, NV);
    assert_string_equal(((const nuage_gguf_str *)toks->v.arr.data)[31999].ptr, "tok31999");
    for (int i = 0; i < NK; i += 997) {
        snprintf(name, sizeof name, "key.%d", i);
        uint32_t u;
        assert_true(nuage_gguf_get_u32(g, name, &u));
        assert_int_equal(u, i);
    }
    for (int i = 0; i < NT; i += 991) {
        snprintf(name, sizeof name, "blk.%d.w", i);
        const nuage_gguf_tensor *t = nuage_gguf_find_tensor(g, name);
        assert_non_null(t);
        assert_ptr_equal(t, nuage_gguf_tensor_at(g, (uint64_t)i));
        assert_int_equal(t->offset, (uint64_t)i * 32);
    }
    nuage_gguf_close(g);
    free(f);
}

static void test_vtype_names(void **state) {
    (void)state;
    assert_string_equal(nuage_gguf_vtype_name(NUAGE_GGUF_UINT32), "uint32");
    assert_string_equal(nuage_gguf_vtype_name(NUAGE_GGUF_STRING), "string");
    assert_string_equal(nuage_gguf_vtype_name(NUAGE_GGUF_FLOAT64), "float64");
    assert_string_equal(nuage_gguf_vtype_name((nuage_gguf_vtype)13), "unknown");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_open_file),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_random_corruption),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_bad_arrays),
        cmocka_unit_test(test_nesting_depth),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_large_file_fast),
        cmocka_unit_test(test_vtype_names),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
