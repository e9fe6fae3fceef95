/*
 * test_gguf_shared.c - the GGUF reader on the real files in ../shared.
 *
 * Expectations come from outside the reader: vectors/logits/index.json
 * (written by the tool that made the files, from llama.cpp's view of them)
 * gives each model's byte size, tensor type counts, parameter count,
 * general.file_type, vocabulary size and hyper-parameters; the README
 * gives facts such as stories260K's 292,800 parameters and rand-llama's
 * [256, 256] attention weights; the vocab folder's .out files give token
 * ids that must exist in the vocabulary. This unit links only nuage_base,
 * so index.json is read with the small JSON reader below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <strings.h>
#include <time.h>

#include "engine/gguf.h"
#include "engine/quant.h"
#include "nuage/nuage.h"
#include "test_util.h"

/* ---- a minimal JSON reader (enough for index.json) ---------------------- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype type;
    double num;
    char *str;          /* J_STR: decoded; object members: the key */
    struct jval *kids;  /* J_ARR / J_OBJ children */
    size_t n;
    char *key;          /* when a member of an object */
} jval;

typedef struct {
    const char *s;
    bool bad;
} jp;

static void jws(jp *p) { while (isspace((unsigned char)*p->s)) p->s++; }

static char *jstring(jp *p) {
    if (*p->s != '"') { p->bad = true; return NULL; }
    p->s++;
    size_t cap = 16, n = 0;
    char *out = malloc(cap);
    while (*p->s && *p->s != '"') {
        char c = *p->s++;
        if (c == '\\') {
            c = *p->s++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': { /* only needed for ASCII here; others become '?' */
                unsigned v = 0;
                for (int i = 0; i < 4 && isxdigit((unsigned char)*p->s); i++, p->s++)
                    v = v * 16 + (unsigned)(isdigit((unsigned char)*p->s) ? *p->s - '0'
                                                    : (tolower((unsigned char)*p->s) - 'a' + 10));
                c = v < 0x80 ? (char)v : '?';
                break;
            }
            default: break; /* \" \\ \/ */
            }
        }
        if (n + 2 > cap) out = realloc(out, cap *= 2);
        out[n++] = c;
    }
    if (*p->s != '"') p->bad = true; else p->s++;
    out[n] = 0;
    return out;
}

static void jparse(jp *p, jval *v, int depth) {
    memset(v, 0, sizeof *v);
    jws(p);
    if (depth > 64) { p->bad = true; return; }
    char c = *p->s;
    if (c == '{' || c == '[') {
        v->type = c == '{' ? J_OBJ : J_ARR;
        p->s++;
        size_t cap = 0;
        jws(p);
        if (*p->s == (c == '{' ? '}' : ']')) { p->s++; return; }
        for (;;) {
            if (v->n == cap) v->kids = realloc(v->kids, (cap = cap ? cap * 2 : 8) * sizeof *v->kids);
            char *key = NULL;
            if (c == '{') {
                jws(p);
                key = jstring(p);
                jws(p);
                if (*p->s != ':') { p->bad = true; free(key); return; }
                p->s++;
            }
            jparse(p, &v->kids[v->n], depth + 1);
            v->kids[v->n++].key = key;
            if (p->bad) return;
            jws(p);
            if (*p->s == ',') { p->s++; continue; }
            if (*p->s == (c == '{' ? '}' : ']')) { p->s++; return; }
            p->bad = true;
            return;
        }
    } else if (c == '"') {
        v->type = J_STR;
        v->str = jstring(p);
    } else if (!strncmp(p->s, "true", 4) || !strncmp(p->s, "false", 5)) {
        v->type = J_BOOL;
        v->num = *p->s == 't';
        p->s += *p->s == 't' ? 4 : 5;
    } else if (!strncmp(p->s, "null", 4)) {
        v->type = J_NULL;
        p->s += 4;
    } else {
        char *end;
        v->type = J_NUM;
        v->num = strtod(p->s, &end);
        if (end == p->s) p->bad = true;
        p->s = end;
    }
}

static void jfree(jval *v) {
    for (size_t i = 0; i < v->n; i++) {
        free(v->kids[i].key);
        jfree(&v->kids[i]);
    }
    free(v->kids);
    free(v->str);
}

static const jval *jget(const jval *o, const char *key) {
    if (!o || o->type != J_OBJ) return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (o->kids[i].key && !strcmp(o->kids[i].key, key)) return &o->kids[i];
    return NULL;
}

/* ---- helpers ------------------------------------------------------------ */

static nuage_gguf *open_shared(const char *rel) {
    const char *path = nuage_test_shared_path(rel);
    nuage_gguf *g = NULL;
    char err[512] = "";
    int rc = nuage_gguf_open(path, &g, err, sizeof err);
    if (rc) print_error("%s: %s (rc %d)\n", path, err, rc);
    assert_int_equal(rc, 0);
    return g;
}

static uint64_t n_elements(const nuage_gguf_tensor *t) {
    return (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
}

/* Tensors must lie inside the file, after the infos, without overlaps (true
 * of every file written by llama.cpp's tools). */
static void check_layout(const nuage_gguf *g) {
    uint64_t n = nuage_gguf_n_tensors(g), size = nuage_gguf_file_size(g);
    uint64_t data = nuage_gguf_data_offset(g);
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        const nuage_gguf_tensor *t = nuage_gguf_tensor_at(g, i);
        assert_int_equal(t->offset % nuage_gguf_alignment(g), 0);
        assert_true(data + t->offset + t->nbytes <= size);
        total += t->nbytes;
        /* bytes from the type table, computed here independently */
        const nuage_type_traits *tt = nuage_type_get(t->type);
        assert_int_equal(t->nbytes, n_elements(t) / (uint64_t)tt->blck_size * tt->type_size);
    }
    assert_true(data + total <= size);
}

/* ---- tests -------------------------------------------------------------- */

/* Every model listed in index.json, checked against its record. */
static void test_models_match_index(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    size_t len;
    char *text = nuage_test_read_file(nuage_test_shared_path("vectors/logits/index.json"), &len);
    assert_non_null(text);
    jp p = {text, false};
    jval root;
    jparse(&p, &root, 0);
    assert_false(p.bad);
    const jval *models = jget(&root, "models");
    assert_non_null(models);
    assert_true(models->n >= 20);
    double worst_ms = 0;
    for (size_t m = 0; m < models->n; m++) {
        const jval *rec = &models->kids[m];
        const char *file = jget(rec, "file")->str;
        print_message("%s\n", file);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        nuage_gguf *g = open_shared(file);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
        if (ms > worst_ms) worst_ms = ms;
        assert_int_equal(nuage_gguf_file_size(g), (uint64_t)jget(rec, "bytes")->num);
        assert_true(nuage_gguf_version(g) == 2 || nuage_gguf_version(g) == 3);
        check_layout(g);

        /* tensor types: counts per type name */
        const jval *types = jget(rec, "tensor_types");
        uint64_t listed = 0;
        for (size_t k = 0; k < types->n; k++) {
            uint64_t count = 0;
            for (uint64_t i = 0; i < nuage_gguf_n_tensors(g); i++) {
                const char *tn = nuage_type_get(nuage_gguf_tensor_at(g, i)->type)->name;
                if (!strcasecmp(tn, types->kids[k].key)) count++;
            }
            if (count != (uint64_t)types->kids[k].num)
                print_error("%s: %llu tensors of type %s, index says %g\n", file,
                            (unsigned long long)count, types->kids[k].key, types->kids[k].num);
            assert_int_equal(count, (uint64_t)types->kids[k].num);
            listed += count;
        }
        assert_int_equal(listed, nuage_gguf_n_tensors(g));

        /* parameters */
        const jval *np = jget(rec, "n_params");
        if (np && np->type == J_NUM) {
            uint64_t params = 0;
            for (uint64_t i = 0; i < nuage_gguf_n_tensors(g); i++)
                params += n_elements(nuage_gguf_tensor_at(g, i));
            assert_int_equal(params, (uint64_t)np->num);
        }
        /* general.file_type */
        const jval *ft = jget(rec, "general_file_type");
        uint32_t u;
        if (ft && ft->type == J_NUM) {
            assert_true(nuage_gguf_get_u32(g, "general.file_type", &u));
            assert_int_equal(u, (uint32_t)ft->num);
        }
        /* hyper-parameters */
        const jval *md = jget(rec, "metadata");
        for (size_t k = 0; k < md->n; k++) {
            const jval *v = &md->kids[k];
            if (v->type == J_STR) {
                const char *s = nuage_gguf_get_str(g, v->key, NULL);
                assert_non_null(s);
                assert_string_equal(s, v->str);
            } else if (v->type == J_NUM && nuage_gguf_get(g, v->key) &&
                       nuage_gguf_get(g, v->key)->type != NUAGE_GGUF_FLOAT32 &&
                       nuage_gguf_get(g, v->key)->type != NUAGE_GGUF_FLOAT64) {
                int64_t i64;
                assert_true(nuage_gguf_get_i64(g, v->key, &i64));
                assert_int_equal(i64, (int64_t)v->num);
            } else if (v->type == J_NUM) {
                float f;
                assert_true(nuage_gguf_get_f32(g, v->key, &f));
                assert_true(f == (float)v->num);
            }
        }
        /* vocabulary size */
        const nuage_gguf_value *toks = nuage_gguf_get_arr(g, "tokenizer.ggml.tokens",
                                                          NUAGE_GGUF_STRING);
        assert_non_null(toks);
        assert_int_equal(toks->v.arr.n, (uint64_t)jget(rec, "n_vocab")->num);
        nuage_gguf_close(g);
    }
    print_message("slowest open: %.2f ms\n", worst_ms);
    jfree(&root);
    free(text);
}

/* Facts from the README, independent of index.json. */
static void test_known_facts(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    nuage_gguf *g = open_shared("models/stories260K.gguf");
    uint64_t params = 0;
    for (uint64_t i = 0; i < nuage_gguf_n_tensors(g); i++)
        params += n_elements(nuage_gguf_tensor_at(g, i));
    assert_int_equal(params, 292800);
    assert_string_equal(nuage_gguf_get_str(g, "general.architecture", NULL), "llama");
    uint32_t u;
    assert_true(nuage_gguf_get_u32(g, "llama.context_length", &u)); assert_int_equal(u, 2048);
    assert_true(nuage_gguf_get_u32(g, "llama.embedding_length", &u)); assert_int_equal(u, 64);
    assert_true(nuage_gguf_get_u32(g, "llama.block_count", &u)); assert_int_equal(u, 5);
    assert_true(nuage_gguf_get_u32(g, "llama.feed_forward_length", &u)); assert_int_equal(u, 172);
    /* SentencePiece vocabulary: 512 tokens with scores and types */
    const nuage_gguf_value *v = nuage_gguf_get_arr(g, "tokenizer.ggml.tokens", NUAGE_GGUF_STRING);
    assert_int_equal(v->v.arr.n, 512);
    v = nuage_gguf_get_arr(g, "tokenizer.ggml.scores", NUAGE_GGUF_FLOAT32);
    assert_int_equal(v->v.arr.n, 512);
    /* token 1 is BOS (the prompts in the README start with id 1) */
    assert_true(nuage_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u));
    assert_int_equal(u, 1);
    const nuage_gguf_tensor *t = nuage_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 512);
    nuage_gguf_close(g);

    g = open_shared("models/rand-llama-f32.gguf");
    t = nuage_gguf_find_tensor(g, "blk.0.attn_q.weight");
    assert_non_null(t);
    assert_int_equal(t->type, NUAGE_TYPE_F32);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 256);
    assert_int_equal(t->ne[1], 256);
    assert_int_equal(t->nbytes, 256 * 256 * 4);
    /* GQA 8/2 with head dim 32: K is 256 -> 64 */
    t = nuage_gguf_find_tensor(g, "blk.3.attn_k.weight");
    assert_int_equal(t->ne[0], 256);
    assert_int_equal(t->ne[1], 64);
    t = nuage_gguf_find_tensor(g, "blk.0.ffn_gate.weight");
    assert_int_equal(t->ne[1], 768);
    assert_null(nuage_gguf_find_tensor(g, "blk.4.attn_q.weight"));
    /* weights are N(0, s): a mapped F32 tensor holds finite, non-constant values */
    const float *w = t->data;
    double sum = 0, sq = 0;
    for (int i = 0; i < 256 * 768; i++) { sum += w[i]; sq += (double)w[i] * w[i]; }
    assert_true(isfinite(sq) && sq > 0);
    assert_true(fabs(sum / (256 * 768)) < 0.1 * sqrt(sq / (256 * 768)));
    nuage_gguf_close(g);

    /* Q4_K_M mix: output.weight and layers 2-3 attn_v / ffn_down are Q6_K */
    g = open_shared("models/rand-llama-q4_k_m.gguf");
    assert_int_equal(nuage_gguf_find_tensor(g, "output.weight")->type, NUAGE_TYPE_Q6_K);
    assert_int_equal(nuage_gguf_find_tensor(g, "blk.3.ffn_down.weight")->type, NUAGE_TYPE_Q6_K);
    assert_int_equal(nuage_gguf_find_tensor(g, "blk.0.attn_q.weight")->type, NUAGE_TYPE_Q4_K);
    nuage_gguf_close(g);

    /* deepseek2 Q4_K: the two attn_k_b tensors fell back to Q5_0 */
    g = open_shared("models/rand-deepseek2-q4_k.gguf");
    assert_int_equal(nuage_gguf_find_tensor(g, "blk.0.attn_k_b.weight")->type, NUAGE_TYPE_Q5_0);
    nuage_gguf_close(g);

    /* llama-2-tiny-random: the real 32000-token Llama-2 vocabulary */
    g = open_shared("models/llama-2-tiny-random.gguf");
    v = nuage_gguf_get_arr(g, "tokenizer.ggml.tokens", NUAGE_GGUF_STRING);
    assert_int_equal(v->v.arr.n, 32000);
    assert_string_equal(((const nuage_gguf_str *)v->v.arr.data)[1].ptr, "<s>");
    assert_string_equal(((const nuage_gguf_str *)v->v.arr.data)[2].ptr, "</s>");
    nuage_gguf_close(g);
}

/* Every *.gguf in vocab/ opens; every token id in the matching .out file is
 * inside the vocabulary; parallel arrays have the vocabulary's length. */
static void test_vocab_files(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_path("vocab");
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n_files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 5, ".gguf")) continue;
        char rel[300];
        snprintf(rel, sizeof rel, "vocab/%s", de->d_name);
        print_message("%s\n", rel);
        nuage_gguf *g = open_shared(rel);
        n_files++;
        assert_int_equal(nuage_gguf_n_tensors(g), 0);
        const nuage_gguf_value *toks = nuage_gguf_get_arr(g, "tokenizer.ggml.tokens",
                                                          NUAGE_GGUF_STRING);
        assert_non_null(toks);
        uint64_t n = toks->v.arr.n;
        assert_true(n > 1000);
        const nuage_gguf_value *a;
        if ((a = nuage_gguf_get(g, "tokenizer.ggml.scores"))) assert_int_equal(a->v.arr.n, n);
        if ((a = nuage_gguf_get(g, "tokenizer.ggml.token_type"))) assert_int_equal(a->v.arr.n, n);
        assert_non_null(nuage_gguf_get_str(g, "tokenizer.ggml.model", NULL));
        char outrel[310];
        snprintf(outrel, sizeof outrel, "%s.out", rel);
        char *out = nuage_test_read_file(nuage_test_shared_path(outrel), NULL);
        if (out) {
            int n_ids = 0;
            for (char *s = out, *end; *s; s = end) {
                long id = strtol(s, &end, 10);
                if (end == s) { end = s + 1; continue; }
                assert_true(id >= 0 && (uint64_t)id < n);
                n_ids++;
            }
            assert_true(n_ids > 100);
            free(out);
        }
        nuage_gguf_close(g);
    }
    closedir(d);
    assert_true(n_files >= 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_match_index),
        cmocka_unit_test(test_known_facts),
        cmocka_unit_test(test_vocab_files),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
