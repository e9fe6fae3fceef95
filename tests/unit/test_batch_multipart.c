/*
 * test_batch_multipart.c - the multipart/form-data parser of POST
 * /v1/files (src/server/api_files.c, declared in api_batch.h).
 *
 * Bodies are built here the way RFC 7578 clients write them (and with
 * the variations real clients produce: quoted boundaries, a preamble,
 * transport padding, parts without Content-Type, binary content that
 * contains CR/LF, NUL and near-miss boundaries); the parts the parser
 * reports must be exactly the bytes put in. Malformed bodies (no
 * boundary, truncated, no closing delimiter, oversized headers, too many
 * parts, a part without a name) must be refused without reading outside
 * the buffer (the ASan build checks that: every body is an exact-size
 * heap copy).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_util.h"
#include "server/api_batch.h"

typedef struct {
    int n;
    char name[8][64];
    char filename[8][64];
    bool has_filename[8];
    char *data[8];
    size_t len[8];
} parts;

static int on_part(void *ud, const char *name, const char *filename, const char *data, size_t n) {
    parts *p = ud;
    if (p->n >= 8) return NUAGE_E_RANGE;
    int i = p->n++;
    snprintf(p->name[i], sizeof p->name[i], "%s", name);
    p->has_filename[i] = filename != NULL;
    snprintf(p->filename[i], sizeof p->filename[i], "%s", filename ? filename : "");
    p->data[i] = malloc(n + 1);
    memcpy(p->data[i], data, n);
    p->len[i] = n;
    return 0;
}

static int count_part(void *ud, const char *name, const char *filename, const char *data, size_t n) {
    (*(int *)ud)++;
    return 0;
}

static void parts_free(parts *p) {
    for (int i = 0; i < p->n; i++) free(p->data[i]);
    memset(p, 0, sizeof *p);
}

/* Parse body[0..n) from an exact-size heap copy. */
static int parse(const char *ct, const char *body, size_t n, parts *p) {
    memset(p, 0, sizeof *p);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, body, n);
    char err[200] = "";
    int rc = nuage__multipart_parse(ct, copy, n, on_part, p, err, sizeof err);
    if (rc) assert_true(strlen(err) > 0);
    free(copy);
    return rc;
}

/* Append to a growing buffer. */
typedef struct {
    char b[70000];
    size_t n;
} buf;

static void put(buf *b, const void *s, size_t n) {
    assert_true(b->n + n <= sizeof b->b);
    memcpy(b->b + b->n, s, n);
    b->n += n;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static void test_openai_shape(void **state) {
    (void)state;
    /* what undici's FormData writes for files.create */
    static buf b;
    b.n = 0;
    const char *bd = "----formdata-undici-012345678901";
    const char file[] = "{\"custom_id\": \"a\"}\n{\"custom_id\": \"b\"}\n";
    puts_(&b, "------formdata-undici-012345678901\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n");
    puts_(&b, "------formdata-undici-012345678901\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\""
              "\r\nContent-Type: application/octet-stream\r\n\r\n");
    put(&b, file, sizeof file - 1);
    puts_(&b, "\r\n------formdata-undici-012345678901--\r\n");
    char ct[200];
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%s", bd);
    parts p;
    assert_int_equal(parse(ct, b.b, b.n, &p), 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.name[0], "purpose");
    assert_false(p.has_filename[0]);
    assert_int_equal(p.len[0], 5);
    assert_memory_equal(p.data[0], "batch", 5);
    assert_string_equal(p.name[1], "file");
    assert_true(p.has_filename[1]);
    assert_string_equal(p.filename[1], "in.jsonl");
    assert_int_equal(p.len[1], sizeof file - 1);
    assert_memory_equal(p.data[1], file, sizeof file - 1);
    parts_free(&p);
    /* the same with a quoted boundary parameter, a preamble and padding */
    static buf c;
    c.n = 0;
    puts_(&c, "This is a preamble.\r\n--XyZ \t\r\nContent-Disposition: form-data; name=purpose\r\n\r\nbatch\r\n--XyZ--");
    assert_int_equal(parse("Multipart/Form-Data; charset=utf-8; boundary=\"XyZ\"", c.b, c.n, &p), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.name[0], "purpose");
    assert_memory_equal(p.data[0], "batch", 5);
    parts_free(&p);
}

/* Binary content with CR, LF, NUL and near-miss delimiters survives intact. */
static void test_binary(void **state) {
    (void)state;
    static buf b;
    b.n = 0;
    static char content[60000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof content; i++) {
        x = x * 1664525u + 1013904223u;
        content[i] = (char)(x >> 24);
    }
    /* near misses of "\r\n--bnd" inside the data */
    memcpy(content + 100, "\r\n--bn", 6);
    memcpy(content + 200, "\r\n--bnX", 7);
    memcpy(content + 300, "--bnd", 5); /* without CRLF: not a delimiter */
    content[400] = 0;
    puts_(&b, "--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n\r\n");
    put(&b, content, sizeof content);
    puts_(&b, "\r\n--bnd--\r\n");
    parts p;
    assert_int_equal(parse("multipart/form-data; boundary=bnd", b.b, b.n, &p), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.len[0], sizeof content);
    assert_memory_equal(p.data[0], content, sizeof content);
    parts_free(&p);
    /* an empty part */
    const char e[] = "--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\n\r\n\r\n--bnd--";
    assert_int_equal(parse("multipart/form-data; boundary=bnd", e, sizeof e - 1, &p), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.len[0], 0);
    assert_true(p.has_filename[0]);
    parts_free(&p);
}

static void test_malformed(void **state) {
    (void)state;
    parts p;
    const char ok[] = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--b--";
    /* every strict prefix of a valid body is refused (no closing delimiter) */
    for (size_t n = 0; n < sizeof ok - 1 - 1; n++) {
        int rc = parse("multipart/form-data; boundary=b", ok, n, &p);
        if (rc == 0) fprintf(stderr, "prefix %zu accepted\n", n);
        assert_int_equal(rc, NUAGE_E_FORMAT);
        parts_free(&p);
    }
    assert_int_equal(parse("multipart/form-data; boundary=b", ok, sizeof ok - 1, &p), 0);
    parts_free(&p);
    /* wrong or missing content type / boundary */
    assert_int_equal(parse("application/json", ok, sizeof ok - 1, &p), NUAGE_E_FORMAT);
    assert_int_equal(parse(NULL, ok, sizeof ok - 1, &p), NUAGE_E_FORMAT);
    assert_int_equal(parse("multipart/form-data", ok, sizeof ok - 1, &p), NUAGE_E_FORMAT);
    assert_int_equal(parse("multipart/form-data; boundary=", ok, sizeof ok - 1, &p), NUAGE_E_FORMAT);
    assert_int_equal(parse("multipart/form-data; boundary=other", ok, sizeof ok - 1, &p), NUAGE_E_FORMAT);
    /* a part without a name */
    const char noname[] = "--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--";
    assert_int_equal(parse("multipart/form-data; boundary=b", noname, sizeof noname - 1, &p), NUAGE_E_FORMAT);
    /* headers that never end / are too long */
    static buf big;
    big.n = 0;
    puts_(&big, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: ");
    for (int i = 0; i < 10000; i++) puts_(&big, "x");
    puts_(&big, "\r\n\r\nv\r\n--b--");
    assert_int_equal(parse("multipart/form-data; boundary=b", big.b, big.n, &p), NUAGE_E_FORMAT);
    /* too many parts */
    big.n = 0;
    for (int i = 0; i < 40; i++) puts_(&big, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n");
    puts_(&big, "--b--");
    int count = 0;
    assert_int_equal(nuage__multipart_parse("multipart/form-data; boundary=b", big.b, big.n, count_part, &count,
                                            NULL, 0), NUAGE_E_FORMAT);
    assert_int_equal(count, 32);
    /* a callback error stops the parse and is returned */
    assert_int_equal(nuage__multipart_parse("multipart/form-data; boundary=b", big.b, big.n, on_part, &p, NULL, 0),
                     NUAGE_E_RANGE);
    parts_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_shape),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
