/*
 * test_constrain_jsonschema.c - the JSON Schema correctness yardstick
 * (issue 11): ../shared/jsonschema/cases, 2,744 real schemas with valid and
 * invalid instances (JSONSchemaBench MaskBench). For every schema the
 * compiler either compiles it or refuses it naming a keyword; for every
 * compiled schema each valid instance, serialized as Python's json.dumps
 * does (compact, and indent=2; ensure_ascii=False, keys in document
 * order), must be accepted token by token with the deepseek-llm
 * vocabulary (each token's mask bit set, then end-of-sequence allowed),
 * and each invalid instance refused (some token masked out, or EOS not
 * allowed at its end). Any disagreement is a validation error and fails
 * the test, as does compiling fewer than 90 % of the schemas.
 *
 * NUAGE_JS_LEVEL=bytes checks with nuage_matcher_accept_bytes instead of
 * tokens (faster; the same verdicts). Sanitizer builds check every 8th
 * schema at the byte level (NUAGE_JS_SAMPLE=n overrides the stride).
 * Prints: compiled N / total, refusals by keyword, validation errors,
 * coverage. Skips (77) without ../shared.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <jansson.h>

#include "constrain/grammar.h"
#include "engine/gguf.h"
#include "nuage/constrain.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define JS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JS_SANITIZED 1
#endif
#endif
#ifndef JS_SANITIZED
#define JS_SANITIZED 0
#endif

/* ---- Python json.dumps, ensure_ascii=False ------------------------------ */

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static void sb_put(sbuf *s, const char *x, size_t n) {
    if (s->n + n + 1 > s->cap) {
        s->cap = (s->n + n + 1) * 2;
        s->p = realloc(s->p, s->cap);
        assert_non_null(s->p);
    }
    memcpy(s->p + s->n, x, n);
    s->n += n;
    s->p[s->n] = 0;
}
static void sb_str(sbuf *s, const char *x) { sb_put(s, x, strlen(x)); }

static void py_string(sbuf *s, const char *x, size_t n) {
    sb_str(s, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)x[i];
        char e[8];
        switch (ch) {
        case '"': sb_str(s, "\\\""); break;
        case '\\': sb_str(s, "\\\\"); break;
        case '\n': sb_str(s, "\\n"); break;
        case '\r': sb_str(s, "\\r"); break;
        case '\t': sb_str(s, "\\t"); break;
        case '\b': sb_str(s, "\\b"); break;
        case '\f': sb_str(s, "\\f"); break;
        default:
            if (ch < 0x20) { snprintf(e, sizeof e, "\\u%04x", ch); sb_str(s, e); }
            else sb_put(s, (const char *)&ch, 1);
        }
    }
    sb_str(s, "\"");
}

/* repr(float): shortest round trip; exponent form when the decimal point
 * position is <= -4 or > 16, as Python's float_repr_style 'short'. */
static void py_float(sbuf *s, double x) {
    char buf[64];
    int prec;
    for (prec = 0; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    /* buf = [-]d.ddde[+-]XX */
    char digits[32];
    int nd = 0;
    const char *p = buf;
    bool neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++) if (*p != '.') digits[nd++] = *p;
    int e10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int decpt = e10 + 1;
    char out[80];
    int o = 0;
    if (neg) out[o++] = '-';
    if (decpt <= -4 || decpt > 16) {
        out[o++] = digits[0];
        if (nd > 1) { out[o++] = '.'; for (int i = 1; i < nd; i++) out[o++] = digits[i]; }
        o += snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", e10 < 0 ? '-' : '+', e10 < 0 ? -e10 : e10);
    } else if (decpt <= 0) {
        out[o++] = '0'; out[o++] = '.';
        for (int i = 0; i < -decpt; i++) out[o++] = '0';
        for (int i = 0; i < nd; i++) out[o++] = digits[i];
        out[o] = 0;
    } else {
        for (int i = 0; i < decpt; i++) out[o++] = i < nd ? digits[i] : '0';
        out[o++] = '.';
        if (nd > decpt) for (int i = decpt; i < nd; i++) out[o++] = digits[i];
        else out[o++] = '0';
        out[o] = 0;
    }
    sb_str(s, out);
}

static void py_dump(sbuf *s, const json_t *v, int indent, int level) {
    char nl[600];
    switch (json_typeof(v)) {
    case JSON_NULL: sb_str(s, "null"); return;
    case JSON_TRUE: sb_str(s, "true"); return;
    case JSON_FALSE: sb_str(s, "false"); return;
    case JSON_INTEGER: {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)json_integer_value(v));
        sb_str(s, b);
        return;
    }
    case JSON_REAL: py_float(s, json_real_value(v)); return;
    case JSON_STRING: py_string(s, json_string_value(v), json_string_length(v)); return;
    default: break;
    }
    bool arr = json_is_array(v);
    size_t n = arr ? json_array_size(v) : json_object_size(v);
    sb_str(s, arr ? "[" : "{");
    if (n == 0) { sb_str(s, arr ? "]" : "}"); return; }
    int in = indent ? indent * (level + 1) : 0;
    if (in > 590) in = 590;
    nl[0] = '\n';
    memset(nl + 1, ' ', (size_t)in);
    nl[in + 1] = 0;
    size_t i = 0;
    const char *k;
    json_t *x;
    if (arr) {
        json_array_foreach(v, i, x) {
            if (i) sb_str(s, ",");
            if (indent) sb_str(s, nl);
            py_dump(s, x, indent, level + 1);
        }
    } else {
        json_object_foreach((json_t *)v, k, x) {
            if (i++) sb_str(s, ",");
            if (indent) sb_str(s, nl);
            py_string(s, k, strlen(k));
            sb_str(s, indent ? ": " : ":");
            py_dump(s, x, indent, level + 1);
        }
    }
    if (indent) {
        nl[indent * level + 1 > 590 ? 591 : indent * level + 1] = 0;
        sb_str(s, nl);
    }
    sb_str(s, arr ? "]" : "}");
}

/* ---- declared property order ----------------------------------------------
 * The grammar writes declared properties in declaration order (a documented
 * serialization freedom, like whitespace). The data set's README says valid
 * instances follow it, but about 2 % of them do not, so instances are put
 * into declaration order first (and tried as written too): the schemas
 * that apply at a place are collected depth first, declared keys come in
 * order of first declaration, undeclared keys after them. */

#define ORD_MAX 128

static const json_t *ord_ref(const json_t *root, const char *ref) {
    if (ref[0] != '#') return NULL;
    const json_t *at = root;
    const char *p = ref + 1;
    while (*p == '/' && at) {
        p++;
        char tok[512];
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~' && p[1] == '0') { ch = '~'; p++; }
            else if (ch == '~' && p[1] == '1') { ch = '/'; p++; }
            if (n + 1 < sizeof tok) tok[n++] = ch;
        }
        tok[n] = 0;
        at = json_is_object(at) ? json_object_get(at, tok)
           : json_is_array(at) ? json_array_get(at, (size_t)atol(tok)) : NULL;
    }
    return at;
}

static void ord_push(const json_t **L, int *n, const json_t *s) {
    if (!json_is_object(s)) return;
    for (int i = 0; i < *n; i++) if (L[i] == s) return;
    if (*n < ORD_MAX) L[(*n)++] = s;
}

/* depth first, as the compiler lists them: the schema, its anyOf/oneOf
 * branch (for an object instance the one declaring most of its keys: the
 * instance follows one branch's order), its $ref target, its allOf
 * branches */
static void ord_dfs(const json_t *root, const json_t **L, int *n, const json_t *s, const json_t *v, int depth);

static int ord_score(const json_t *root, const json_t *br, const json_t *v) {
    const json_t *L[ORD_MAX];
    int n = 0, score = 0;
    ord_dfs(root, L, &n, br, NULL, 30);
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
        for (int i = 0; i < n; i++) {
            const json_t *props = json_object_get(L[i], "properties");
            if (props && json_object_get(props, k)) { score++; break; }
        }
    return score;
}

static void ord_dfs(const json_t *root, const json_t **L, int *n, const json_t *s, const json_t *v, int depth) {
    if (!json_is_object(s) || depth > 40) return;
    for (int i = 0; i < *n; i++) if (L[i] == s) return;
    if (*n >= ORD_MAX) return;
    L[(*n)++] = s;
    const json_t *x;
    static const char *const comb[] = { "anyOf", "oneOf" };
    for (int c = 0; c < 2; c++) {
        if (!(x = json_object_get(s, comb[c]))) continue;
        if (json_is_object(v)) {
            int best = -1;
            size_t bk = 0;
            for (size_t k = 0; k < json_array_size(x); k++) {
                int sc = ord_score(root, json_array_get(x, k), v);
                if (sc > best) { best = sc; bk = k; }
            }
            ord_dfs(root, L, n, json_array_get(x, bk), v, depth + 1);
        } else {
            for (size_t k = 0; k < json_array_size(x); k++) ord_dfs(root, L, n, json_array_get(x, k), v, depth + 1);
        }
    }
    if ((x = json_object_get(s, "$ref")) && json_is_string(x)) ord_dfs(root, L, n, ord_ref(root, json_string_value(x)), v, depth + 1);
    if ((x = json_object_get(s, "allOf")))
        for (size_t k = 0; k < json_array_size(x); k++) ord_dfs(root, L, n, json_array_get(x, k), v, depth + 1);
}

static void ord_expand(const json_t *root, const json_t **L, int *n, const json_t *v) {
    const json_t *in[ORD_MAX];
    int nin = *n;
    memcpy(in, L, sizeof *in * (size_t)nin);
    *n = 0;
    for (int i = 0; i < nin; i++) ord_dfs(root, L, n, in[i], v, 0);
}

static json_t *reorder(const json_t *root, const json_t *const *in, int nin, const json_t *v, int depth) {
    if (!json_is_object(v) && !json_is_array(v)) return json_deep_copy(v);
    const json_t *L[ORD_MAX];
    int n = 0;
    for (int i = 0; i < nin; i++) ord_push(L, &n, in[i]);
    if (depth < 60) ord_expand(root, L, &n, v);
    if (json_is_array(v)) {
        json_t *out = json_array();
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *C[ORD_MAX];
            int nc = 0;
            for (int k = 0; k < n; k++) {
                const json_t *pi = json_object_get(L[k], "prefixItems"), *it = json_object_get(L[k], "items");
                if (pi && i < json_array_size(pi)) ord_push(C, &nc, json_array_get(pi, i));
                else if (json_is_array(it)) {
                    if (i < json_array_size(it)) ord_push(C, &nc, json_array_get(it, i));
                    else ord_push(C, &nc, json_object_get(L[k], "additionalItems"));
                } else ord_push(C, &nc, it);
            }
            json_array_append_new(out, reorder(root, C, nc, json_array_get(v, i), depth + 1));
        }
        return out;
    }
    json_t *out = json_object();
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: declared keys in declaration order; pass 1: the others */
        const char *key;
        json_t *val;
        if (pass == 0) {
            for (int k = 0; k < n; k++) {
                const json_t *props = json_object_get(L[k], "properties");
                const char *pk;
                json_t *ps;
                json_object_foreach((json_t *)props, pk, ps) {
                    json_t *x = json_object_get(v, pk);
                    if (!x || json_object_get(out, pk)) continue;
                    const json_t *C[ORD_MAX];
                    int nc = 0;
                    for (int q = 0; q < n; q++) {
                        const json_t *pp = json_object_get(L[q], "properties");
                        ord_push(C, &nc, pp ? json_object_get(pp, pk) : NULL);
                    }
                    json_object_set_new(out, pk, reorder(root, C, nc, x, depth + 1));
                }
            }
        } else {
            json_object_foreach((json_t *)v, key, val) {
                if (json_object_get(out, key)) continue;
                const json_t *C[ORD_MAX];
                int nc = 0;
                for (int q = 0; q < n; q++) {
                    /* pattern schemas (the key is not matched here: for
                     * ordering only) and additionalProperties */
                    const json_t *pp = json_object_get(L[q], "patternProperties");
                    const char *pk;
                    json_t *ps;
                    json_object_foreach((json_t *)pp, pk, ps) ord_push(C, &nc, ps);
                    ord_push(C, &nc, json_object_get(L[q], "additionalProperties"));
                }
                json_object_set_new(out, key, reorder(root, C, nc, val, depth + 1));
            }
        }
    }
    return out;
}

/* ---- checking one instance ------------------------------------------------ */

typedef struct yard {
    nuage_vocab *v;
    nuage_cg_tokens *t;
    bool tokens;          /* token level (else bytes) */
    uint32_t *mask;
    int32_t *toks;
    size_t cap_toks;
    int32_t eos;
} yard;

/* true when the text is accepted (and may end) */
static bool accepts(yard *y, nuage_grammar *g, const char *text, size_t n) {
    nuage_matcher *m = NULL;
    assert_int_equal(nuage_matcher_new(g, &m), 0);
    bool ok = true;
    if (!y->tokens) {
        ok = nuage_matcher_accept_bytes(m, text, n) == 0 && nuage_matcher_is_accepting(m);
    } else {
        int nt = nuage_tokenize(y->v, text, n, y->toks, y->cap_toks, false, false);
        if (nt > (int)y->cap_toks) {
            y->cap_toks = (size_t)nt * 2;
            y->toks = realloc(y->toks, y->cap_toks * sizeof *y->toks);
            assert_non_null(y->toks);
            nt = nuage_tokenize(y->v, text, n, y->toks, y->cap_toks, false, false);
        }
        assert_true(nt >= 0);
        for (int i = 0; i < nt && ok; i++) {
            assert_int_equal(nuage_matcher_fill_mask(m, y->mask), 0);
            int32_t tk = y->toks[i];
            bool bit = (y->mask[tk >> 5] >> (tk & 31)) & 1;
            int rc = nuage_matcher_accept_token(m, tk);
            /* the mask and accept_token must agree */
            assert_int_equal(bit, rc == 0);
            ok = bit;
        }
        if (ok) {
            assert_int_equal(nuage_matcher_fill_mask(m, y->mask), 0);
            bool bit = (y->mask[y->eos >> 5] >> (y->eos & 31)) & 1;
            assert_int_equal(bit, nuage_matcher_is_accepting(m));
            ok = bit;
        }
    }
    nuage_matcher_free(m);
    return ok;
}

/* ---- refusal statistics ------------------------------------------------- */

typedef struct reason { char key[64]; int n; } reason;

static void count_reason(reason *r, int *nr, const nuage_cg_error *err) {
    char key[64];
    const char *slash = strrchr(err->pointer, '/');
    if (slash && slash[1] && !(slash[1] >= '0' && slash[1] <= '9')) snprintf(key, sizeof key, "%s", slash + 1);
    else snprintf(key, sizeof key, "%.40s", err->msg);
    for (int i = 0; i < *nr; i++) if (!strcmp(r[i].key, key)) { r[i].n++; return; }
    if (*nr < 256) { snprintf(r[*nr].key, sizeof r[*nr].key, "%s", key); r[*nr].n = 1; (*nr)++; }
}

static int cmp_reason(const void *a, const void *b) { return ((const reason *)b)->n - ((const reason *)a)->n; }
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int compile_schema(yard *y, const json_t *schema, nuage_grammar **g, nuage_cg_error *err) {
    ncg_builder *b = ncg_builder_new();
    assert_non_null(b);
    ncg_expr e;
    nuage_cg_json_opts o = { .max_ws = 64 };
    if (getenv("NUAGE_JS_MAXWS")) o.max_ws = atoi(getenv("NUAGE_JS_MAXWS"));
    int rc = ncg_json_schema(b, schema, &o, &e, err);
    if (rc == 0) {
        ncg_rule r = ncg_rule_new(b, "root");
        rc = ncg_rule_set(b, r, e);
        if (rc == 0) rc = ncg_builder_finish(b, r, y->t, g, err);
    }
    ncg_builder_free(b);
    return rc;
}

static void test_yardstick(void **state) {
    (void)state;
    NUAGE_REQUIRE_SHARED();
    const char *dir = nuage_test_shared_path("jsonschema/cases");
    DIR *d = opendir(dir);
    if (!d) { print_message("no jsonschema/cases: skipped\n"); nuage_test_n_skipped++; skip(); }
    char **names = NULL;
    size_t nn = 0, capn = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json")) continue;
        if (nn == capn) { capn = capn ? 2 * capn : 4096; names = realloc(names, capn * sizeof *names); }
        names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);

    yard y = { 0 };
    char err[256];
    nuage_gguf *gg = NULL;
    assert_int_equal(nuage_gguf_open(nuage_test_shared_path("vocab/ggml-vocab-deepseek-llm.gguf"), &gg, err, sizeof err), 0);
    assert_int_equal(nuage_vocab_from_gguf(gg, &y.v, err, sizeof err), 0);
    nuage_gguf_close(gg);
    assert_int_equal(nuage_cg_tokens_new(y.v, &y.t), 0);
    y.mask = malloc(nuage_cg_mask_words(y.t) * sizeof *y.mask);
    y.eos = nuage_vocab_eos(y.v);
    const char *lvl = getenv("NUAGE_JS_LEVEL");
    y.tokens = !JS_SANITIZED && !(lvl && !strcmp(lvl, "bytes"));
    size_t stride = JS_SANITIZED ? 8 : 1;
    if (getenv("NUAGE_JS_SAMPLE")) stride = (size_t)atoi(getenv("NUAGE_JS_SAMPLE"));
    if (stride < 1) stride = 1;
    const char *only = getenv("NUAGE_JS_ONLY");

    int total = 0, compiled = 0, verrors = 0, n_inst = 0, unloadable = 0;
    reason reasons[256];
    int nr = 0;
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    for (size_t f = 0; f < nn; f += stride) {
        if (only && !strstr(names[f], only)) continue;
        char path[4800];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        json_error_t je;
        json_t *doc = json_load_file(path, 0, &je);
        total++;
        if (!doc) {
            unloadable++;
            nuage_cg_error e2 = { { 0 }, { 0 } };
            snprintf(e2.msg, sizeof e2.msg, "unloadable by jansson (64-bit integers)");
            count_reason(reasons, &nr, &e2);
            continue;
        }
        const json_t *schema = json_object_get(doc, "schema");
        nuage_grammar *g = NULL;
        nuage_cg_error e = { { 0 }, { 0 } };
        double tc0 = (double)clock() / CLOCKS_PER_SEC;
        int rc = compile_schema(&y, schema, &g, &e);
        if (getenv("NUAGE_JS_VERBOSE")) {
            fprintf(stderr, "%s: rc %d %.3f s\n", names[f], rc, (double)clock() / CLOCKS_PER_SEC - tc0);
        }
        if (rc != 0) {
            assert_true(rc < 0);
            assert_true(e.msg[0] != 0);
            if (getenv("NUAGE_JS_VERBOSE")) print_message("refused %s: %s at '%s'\n", names[f], e.msg, e.pointer);
            count_reason(reasons, &nr, &e);
            json_decref(doc);
            continue;
        }
        compiled++;
        const json_t *tests = json_object_get(doc, "tests");
        size_t i;
        const json_t *tc;
        json_array_foreach(tests, i, tc) {
            bool valid = json_is_true(json_object_get(tc, "valid"));
            const json_t *raw = json_object_get(tc, "data");
            json_t *data = reorder(schema, &schema, 1, raw, 0);
            for (int indent = 0; indent <= 2; indent += 2) {
                /* valid: accepted in declaration order or as written;
                 * invalid: refused in both orders */
                bool ok = false;
                sbuf s = { 0 }, s0 = { 0 };
                for (int form = 0; form < 2; form++) {
                    s.n = 0;
                    py_dump(&s, form ? raw : data, indent, 0);
                    if (form == 1 && s.n == s0.n && !memcmp(s.p, s0.p, s.n)) break;
                    bool a = accepts(&y, g, s.p, s.n);
                    n_inst++;
                    if (a) { ok = true; break; }
                    if (form == 0) sb_put(&s0, s.p, s.n);
                }
                free(s0.p);
                if (ok != valid) {
                    verrors++;
                    if (verrors <= 40)
                        print_message("VALIDATION ERROR %s test %zu (%s, indent %d): %s: %.300s\n", names[f], i,
                                      valid ? "valid refused" : "invalid accepted", indent,
                                      json_string_value(json_object_get(tc, "description")), s.p);
                }
                free(s.p);
            }
            json_decref(data);
        }
        nuage_grammar_free(g);
        json_decref(doc);
    }
    double t1 = (double)clock() / CLOCKS_PER_SEC;
    qsort(reasons, (size_t)nr, sizeof *reasons, cmp_reason);
    print_message("JSON Schema yardstick (%s level, every %zu. schema): compiled %d / %d (%.1f %%), "
                  "%d instance serializations checked, %d validation errors, %.1f s\n",
                  y.tokens ? "token" : "byte", stride, compiled, total, total ? 100.0 * compiled / total : 0.0,
                  n_inst, verrors, t1 - t0);
    print_message("refused %d (unloadable %d), by reason:\n", total - compiled, unloadable);
    for (int i = 0; i < nr && i < 25; i++) print_message("  %5d  %s\n", reasons[i].n, reasons[i].key);
    for (size_t f = 0; f < nn; f++) free(names[f]);
    free(names);
    free(y.mask);
    free(y.toks);
    nuage_cg_tokens_free(y.t);
    nuage_vocab_free(y.v);
    assert_int_equal(verrors, 0);
    if (!only) assert_true(compiled * 100 >= total * 90);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yardstick),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
