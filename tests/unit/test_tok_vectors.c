/*
 * test_tok_vectors.c - the tokenizer against llama.cpp's own test vectors.
 *
 * /work/shared/vocab holds llama.cpp's vocabulary-only GGUFs with texts
 * (.inp, separated by "\n__ggml_vocab_test__\n") and the ids llama.cpp
 * produces for them (.out, one line per text, raw: no BOS/EOS, no special
 * parsing). Every vector of every vocabulary that has both must match
 * exactly; per-vocabulary pass counts are printed.
 *
 * Round trip: concatenating the decoded pieces of tokenize(x) gives x back
 * for the SPM and byte-level BPE vocabularies (SPM after dropping the one
 * space the tokenizer prefixes). WordPiece does not round-trip by design
 * (lower-casing, accent stripping, whitespace normalisation, [UNK]), so it
 * is not checked. baichuan and gpt-neox, which have no vectors, must load
 * and round-trip all the test texts.
 *
 * Also: stories260K's prompts as llama-tokenize produced them (README of
 * /work/shared), and the special-token behaviour on a vocabulary that has
 * control tokens.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include "engine/gguf.h"
#include "tokenizer/tok_internal.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"

static nuage_vocab *load_vocab_path(const char *path) {
    char err[256] = {0};
    nuage_gguf *g = NULL;
    int rc = nuage_gguf_open(path, &g, err, sizeof err);
    if (rc) fail_msg("open %s: %s", path, err);
    nuage_vocab *v = NULL;
    rc = nuage_vocab_from_gguf(g, &v, err, sizeof err);
    nuage_gguf_close(g);
    if (rc) fail_msg("vocab %s: %s", path, err);
    return v;
}

static nuage_vocab *load_vocab(const char *rel) { return load_vocab_path(nuage_test_shared_path(rel)); }

/* tokenize into a malloc'd array */
static int32_t *tok(const nuage_vocab *v, const char *s, size_t n, bool add, bool parse, int *count) {
    int k = nuage_tokenize(v, s, n, NULL, 0, add, parse);
    assert_true(k >= 0);
    int32_t *ids = malloc(((size_t)k + 1) * sizeof *ids);
    assert_non_null(ids);
    int k2 = nuage_tokenize(v, s, n, ids, (size_t)k, add, parse);
    assert_int_equal(k, k2);
    *count = k;
    return ids;
}

/* Concatenated pieces (special rendered) of ids; malloc'd, *n bytes. */
static char *pieces(const nuage_vocab *v, const int32_t *ids, int n, size_t *len) {
    size_t cap = 64, used = 0;
    char *out = malloc(cap);
    for (int i = 0; i < n; i++) {
        int k = nuage_token_to_piece(v, ids[i], NULL, 0, true);
        assert_true(k >= 0);
        while (cap - used < (size_t)k + 1) out = realloc(out, cap *= 2);
        int k2 = nuage_token_to_piece(v, ids[i], out + used, cap - used, true);
        assert_int_equal(k, k2);
        used += (size_t)k;
    }
    out[used] = 0;
    *len = used;
    return out;
}

typedef struct {
    char **text;
    size_t *len;
    int n;
} texts;

static texts read_inp(const char *rel) {
    texts t = {0};
    size_t n = 0;
    char *buf = nuage_test_read_file(nuage_test_shared_path(rel), &n);
    assert_non_null(buf);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t sl = strlen(sep);
    char *p = buf, *end = buf + n;
    while (p < end) {
        char *q = memmem(p, (size_t)(end - p), sep, sl);
        if (!q) break;
        t.text = realloc(t.text, (size_t)(t.n + 1) * sizeof *t.text);
        t.len = realloc(t.len, (size_t)(t.n + 1) * sizeof *t.len);
        t.len[t.n] = (size_t)(q - p);
        t.text[t.n] = malloc(t.len[t.n] + 1);
        memcpy(t.text[t.n], p, t.len[t.n]);
        t.text[t.n][t.len[t.n]] = 0;
        t.n++;
        p = q + sl;
    }
    free(buf);
    return t;
}

static void free_texts(texts *t) {
    for (int i = 0; i < t->n; i++) free(t->text[i]);
    free(t->text);
    free(t->len);
}

/* Check one vocabulary's vectors; returns failures. */
static int check_vocab(const char *name, bool round_trip) {
    char rel[256], inp[256], outp[256];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    snprintf(inp, sizeof inp, "vocab/ggml-vocab-%s.gguf.inp", name);
    snprintf(outp, sizeof outp, "vocab/ggml-vocab-%s.gguf.out", name);
    nuage_vocab *v = load_vocab(rel);
    texts t = read_inp(inp);
    size_t on;
    char *out = nuage_test_read_file(nuage_test_shared_path(outp), &on);
    assert_non_null(out);
    char *line = out;
    int pass = 0, fails = 0, rt_pass = 0, rt_fail = 0;
    for (int i = 0; i < t.n; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = 0;
        /* expected ids */
        int32_t exp[4096];
        int ne = 0;
        for (char *p = line; *p;) {
            char *e;
            long x = strtol(p, &e, 10);
            if (e == p) break;
            exp[ne++] = (int32_t)x;
            p = e;
        }
        line = nl + 1;
        int n;
        int32_t *ids = tok(v, t.text[i], t.len[i], false, false, &n);
        bool ok = n == ne && !memcmp(ids, exp, (size_t)n * sizeof *ids);
        if (ok) {
            pass++;
        } else {
            fails++;
            if (fails <= 5) {
                print_message("  %s #%d mismatch: text '%s'\n    got     :", name, i, t.text[i]);
                for (int k = 0; k < n; k++) print_message(" %d", ids[k]);
                print_message("\n    expected:");
                for (int k = 0; k < ne; k++) print_message(" %d", exp[k]);
                print_message("\n");
            }
        }
        if (round_trip) {
            size_t pl;
            char *back = pieces(v, ids, n, &pl);
            const char *b = back;
            if (nuage_vocab_type_of(v) == NUAGE_VOCAB_SPM && pl && b[0] == ' ') { b++; pl--; }
            if (pl == t.len[i] && !memcmp(b, t.text[i], pl)) rt_pass++;
            else {
                rt_fail++;
                if (rt_fail <= 3) print_message("  %s #%d round trip differs: '%s' -> '%.*s'\n", name, i,
                                                t.text[i], (int)pl, b);
            }
            free(back);
        }
        free(ids);
    }
    print_message("%-14s vectors %d/%d pass", name, pass, t.n);
    if (round_trip) print_message(", round trip %d/%d", rt_pass, t.n);
    print_message("\n");
    free(out);
    free_texts(&t);
    nuage_vocab_free(v);
    return fails + rt_fail;
}

static void test_vectors(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    static const struct { const char *name; bool rt; } vocabs[] = {
        {"bert-bge", false}, {"deepseek-llm", true}, {"falcon", true}, {"gpt-2", true},
        {"llama-spm", true}, {"mpt", true},          {"refact", true}, {"starcoder", true},
    };
    int fails = 0;
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) fails += check_vocab(vocabs[i].name, vocabs[i].rt);
    assert_int_equal(fails, 0);
}

/* baichuan and gpt-neox: load and round-trip every test text. */
static void test_no_vector_vocabs(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    const char *names[] = {"baichuan", "gpt-neox"};
    texts t = read_inp("vocab/ggml-vocab-llama-spm.gguf.inp");
    for (int k = 0; k < 2; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", names[k]);
        nuage_vocab *v = load_vocab(rel);
        int ok = 0;
        for (int i = 0; i < t.n; i++) {
            int n;
            int32_t *ids = tok(v, t.text[i], t.len[i], false, false, &n);
            size_t pl;
            char *back = pieces(v, ids, n, &pl);
            const char *b = back;
            if (nuage_vocab_type_of(v) == NUAGE_VOCAB_SPM && pl && b[0] == ' ') { b++; pl--; }
            if (pl == t.len[i] && !memcmp(b, t.text[i], pl)) ok++;
            else print_message("  %s #%d: '%s' -> '%.*s'\n", names[k], i, t.text[i], (int)pl, b);
            free(back);
            free(ids);
        }
        print_message("%-14s round trip %d/%d\n", names[k], ok, t.n);
        assert_int_equal(ok, t.n);
        nuage_vocab_free(v);
    }
    free_texts(&t);
}

static void expect_ids(const nuage_vocab *v, const char *s, bool add, bool parse, const int32_t *exp, int ne) {
    int n;
    int32_t *ids = tok(v, s, strlen(s), add, parse, &n);
    if (n != ne || memcmp(ids, exp, (size_t)n * sizeof *ids)) {
        print_message("'%s':", s);
        for (int i = 0; i < n; i++) print_message(" %d", ids[i]);
        print_message("\n");
    }
    assert_int_equal(n, ne);
    assert_memory_equal(ids, exp, (size_t)n * sizeof *ids);
    free(ids);
}

/* stories260K prompts, from /work/shared/README.md (llama-tokenize output). */
static void test_stories(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    nuage_vocab *v = load_vocab("models/stories260K.gguf");
    assert_int_equal(nuage_vocab_n_tokens(v), 512);
    assert_int_equal(nuage_vocab_bos(v), 1);
    assert_int_equal(nuage_vocab_eos(v), 2);
    assert_true(nuage_vocab_add_bos(v));
    assert_false(nuage_vocab_add_eos(v));
    assert_true(nuage_vocab_is_eog(v, 2));
    assert_false(nuage_vocab_is_eog(v, 1));
    const int32_t once[] = {1, 403, 407, 261, 378}, dog[] = {1, 291, 376, 400, 428};
    expect_ids(v, "Once upon a time", true, true, once, 5);
    expect_ids(v, "The little dog", true, true, dog, 5);
    expect_ids(v, "Once upon a time", false, false, once + 1, 4);
    /* the vectors' prompt ids come from llama.cpp too; their text must
     * tokenize back to them */
    const char *p = nuage_test_shared_path("vectors/logits/stories260K.once.tokens.txt");
    size_t n;
    char *ids = nuage_test_read_file(p, &n);
    if (ids) {
        assert_true(strncmp(ids, "1 403 407 261 378", 17) == 0);
        free(ids);
    }
    nuage_vocab_free(v);
}

/* Control tokens: parsed only with parse_special, never from plain text. */
static void test_special_parsing(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    nuage_vocab *v = load_vocab("vocab/ggml-vocab-llama-spm.gguf");
    const char *s = "Hi</s><s>there";
    int n;
    int32_t *with = tok(v, s, strlen(s), false, true, &n);
    /* </s> = 2 and <s> = 1 appear as tokens */
    int seen2 = 0, seen1 = 0;
    for (int i = 0; i < n; i++) {
        seen2 += with[i] == 2;
        seen1 += with[i] == 1;
    }
    assert_int_equal(seen2, 1);
    assert_int_equal(seen1, 1);
    /* the parts around them tokenize as plain text would alone */
    int na, nb;
    int32_t *a = tok(v, "Hi", 2, false, false, &na);
    assert_memory_equal(with, a, (size_t)na * sizeof *a);
    assert_int_equal(with[na], 2);
    assert_int_equal(with[na + 1], 1);
    int32_t *b = tok(v, "there", 5, false, false, &nb); /* space prefix again after a special */
    assert_int_equal(n, na + 2 + nb);
    assert_memory_equal(with + na + 2, b, (size_t)nb * sizeof *b);
    int nw;
    int32_t *without = tok(v, s, strlen(s), false, false, &nw);
    for (int i = 0; i < nw; i++) {
        assert_int_not_equal(without[i], 1);
        assert_int_not_equal(without[i], 2);
    }
    /* and the pieces of the plain tokenization give the text back */
    size_t pl;
    char *back = pieces(v, without, nw, &pl);
    assert_true(pl == strlen(s) + 1 && !memcmp(back + 1, s, strlen(s)));
    free(back);
    /* add_special: BOS first, no EOS (llama-spm metadata) */
    int nx;
    int32_t *x = tok(v, "Hi", 2, true, false, &nx);
    assert_int_equal(x[0], 1);
    assert_int_equal(nx, na + 1);
    assert_int_not_equal(x[nx - 1], 2);
    free(x);
    free(with);
    free(without);
    free(a);
    free(b);
    nuage_vocab_free(v);
}

/* BPE special handling: user-defined tokens of mpt/neox are split even
 * without parse_special; control tokens only with it. */
static void test_bpe_special(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    nuage_vocab *v = load_vocab("vocab/ggml-vocab-starcoder.gguf");
    int32_t fim = nuage_vocab_find(v, "<fim_prefix>");
    assert_true(fim >= 0);
    assert_true(nuage_vocab_is_control(v, fim));
    const char *s = "a<fim_prefix>b";
    int n1, n2;
    int32_t *p = tok(v, s, strlen(s), false, true, &n1);
    int32_t *q = tok(v, s, strlen(s), false, false, &n2);
    int hit1 = 0, hit2 = 0;
    for (int i = 0; i < n1; i++) hit1 += p[i] == fim;
    for (int i = 0; i < n2; i++) hit2 += q[i] == fim;
    assert_int_equal(hit1, 1);
    assert_int_equal(hit2, 0);
    /* special pieces: rendered with special=true, empty otherwise */
    char buf[64];
    assert_int_equal(nuage_token_to_piece(v, fim, buf, sizeof buf, true), 12);
    assert_memory_equal(buf, "<fim_prefix>", 12);
    assert_int_equal(nuage_token_to_piece(v, fim, buf, sizeof buf, false), 0);
    assert_int_equal(nuage_token_to_piece(v, -1, buf, sizeof buf, true), NUAGE_E_RANGE);
    /* truncated output: full length returned, nothing beyond cap written */
    memset(buf, 'x', sizeof buf);
    assert_int_equal(nuage_token_to_piece(v, fim, buf, 4, true), 12);
    assert_memory_equal(buf, "<fim", 4);
    assert_int_equal(buf[4], 'x');
    free(p);
    free(q);
    nuage_vocab_free(v);
}

/* Invalid UTF-8 input: never an error; BPE turns each bad byte into U+FFFD
 * as llama.cpp does (so "\xff" tokenizes like "\xef\xbf\xbd"). */
static void test_invalid_utf8(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    nuage_vocab *v = load_vocab("vocab/ggml-vocab-gpt-2.gguf");
    int n1, n2;
    int32_t *a = tok(v, "a\xff" "b", 3, false, false, &n1);
    int32_t *b = tok(v, "a\xef\xbf\xbd" "b", 5, false, false, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, (size_t)n1 * sizeof *a);
    free(a);
    free(b);
    /* arbitrary bytes never fail */
    unsigned char junk[256];
    for (int i = 0; i < 256; i++) junk[i] = (unsigned char)(i * 37 + 11);
    int n = nuage_tokenize(v, (const char *)junk, sizeof junk, NULL, 0, true, true);
    assert_true(n > 0);
    nuage_vocab_free(v);
}

/* SPM cuts long texts into independent segments (spm.c) when the
 * vocabulary allows it; the result must equal one global merge queue. */
static void test_spm_segmenting(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    const char *names[] = {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-baichuan.gguf"};
    texts t = read_inp("vocab/ggml-vocab-llama-spm.gguf.inp");
    char *all = NULL;
    size_t n = 0;
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < t.n; i++) {
            all = realloc(all, n + t.len[i] + 1);
            memcpy(all + n, t.text[i], t.len[i]);
            n += t.len[i];
            all[n++] = r ? ' ' : '\n';
        }
    for (int k = 0; k < 2; k++) {
        nuage_vocab *v = load_vocab(names[k]);
        assert_true(v->spm_split);
        int n1, n2;
        int32_t *a = tok(v, all, n, true, false, &n1);
        v->spm_split = false;
        int32_t *b = tok(v, all, n, true, false, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(a, b, (size_t)n1 * sizeof *a);
        free(a);
        free(b);
        nuage_vocab_free(v);
    }
    free(all);
    free_texts(&t);
}

/* A vocabulary is shared read-only: several threads tokenizing at once
 * must each get the single-threaded result. */
typedef struct {
    const nuage_vocab *v;
    const texts *t;
    int32_t **ref;
    int *nref;
    int bad;
} thr_arg;

static void *thr_main(void *p) {
    thr_arg *a = p;
    for (int r = 0; r < 20; r++)
        for (int i = 0; i < a->t->n; i++) {
            int32_t buf[4096];
            int n = nuage_tokenize(a->v, a->t->text[i], a->t->len[i], buf, 4096, true, true);
            if (n != a->nref[i] || memcmp(buf, a->ref[i], (size_t)n * sizeof *buf)) a->bad++;
        }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    const char *names[] = {"vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-llama-spm.gguf",
                           "vocab/ggml-vocab-bert-bge.gguf"};
    texts t = read_inp("vocab/ggml-vocab-gpt-2.gguf.inp");
    for (int k = 0; k < 3; k++) {
        nuage_vocab *v = load_vocab(names[k]);
        int32_t **ref = calloc((size_t)t.n, sizeof *ref);
        int *nref = calloc((size_t)t.n, sizeof *nref);
        for (int i = 0; i < t.n; i++) ref[i] = tok(v, t.text[i], t.len[i], true, true, &nref[i]);
        pthread_t th[4];
        thr_arg args[4];
        for (int j = 0; j < 4; j++) {
            args[j] = (thr_arg){v, &t, ref, nref, 0};
            assert_int_equal(pthread_create(&th[j], NULL, thr_main, &args[j]), 0);
        }
        for (int j = 0; j < 4; j++) {
            pthread_join(th[j], NULL);
            assert_int_equal(args[j].bad, 0);
        }
        for (int i = 0; i < t.n; i++) free(ref[i]);
        free(ref);
        free(nref);
        nuage_vocab_free(v);
    }
    free_texts(&t);
}

/* Bare clone: the bundled model's byte-level BPE vocabulary. Bad UTF-8
 * is never an error and becomes U+FFFD as in BPE vocabularies above;
 * texts round-trip through detokenize; four threads tokenizing at once
 * get the single-threaded ids. */
static void test_bundled_vocab(void **state) {
    (void)state;
    nuage_vocab *v = load_vocab_path(NUAGE_SOURCE_DIR "/models/nuage-fast.gguf");
    int n1, n2;
    int32_t *a = tok(v, "a\xff" "b", 3, false, false, &n1);
    int32_t *b = tok(v, "a\xef\xbf\xbd" "b", 5, false, false, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, (size_t)n1 * sizeof *a);
    free(a);
    free(b);
    static const char *const samples[] = {"What is 4821 + 3999?", "Sort these: pear, apple, fig.",
                                          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa6\x99", "  spaces\tand\nlines\n"};
    texts t = {0};
    t.n = (int)(sizeof samples / sizeof *samples);
    t.text = calloc((size_t)t.n, sizeof *t.text);
    t.len = calloc((size_t)t.n, sizeof *t.len);
    for (int i = 0; i < t.n; i++) {
        t.text[i] = strdup(samples[i]);
        t.len[i] = strlen(samples[i]);
        int n;
        int32_t *ids = tok(v, t.text[i], t.len[i], false, false, &n);
        char buf[256];
        int len = nuage_detokenize(v, ids, (size_t)n, buf, sizeof buf, false, false);
        assert_int_equal(len, (int)t.len[i]);
        assert_memory_equal(buf, t.text[i], t.len[i]);
        free(ids);
    }
    int32_t **ref = calloc((size_t)t.n, sizeof *ref);
    int *nref = calloc((size_t)t.n, sizeof *nref);
    for (int i = 0; i < t.n; i++) ref[i] = tok(v, t.text[i], t.len[i], true, true, &nref[i]);
    pthread_t th[4];
    thr_arg args[4];
    for (int j = 0; j < 4; j++) {
        args[j] = (thr_arg){v, &t, ref, nref, 0};
        assert_int_equal(pthread_create(&th[j], NULL, thr_main, &args[j]), 0);
    }
    for (int j = 0; j < 4; j++) {
        pthread_join(th[j], NULL);
        assert_int_equal(args[j].bad, 0);
    }
    for (int i = 0; i < t.n; i++) free(ref[i]);
    free(ref);
    free(nref);
    free_texts(&t);
    nuage_vocab_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),          cmocka_unit_test(test_no_vector_vocabs),
        cmocka_unit_test(test_stories),          cmocka_unit_test(test_special_parsing),
        cmocka_unit_test(test_bpe_special),      cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_spm_segmenting),   cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bundled_vocab),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
