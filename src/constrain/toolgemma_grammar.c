/*
 * toolgemma_grammar.c - the grammar of Gemma 4 tool-call arguments (see
 * toolgemma.h; reading them is toolgemma.c).
 *
 * It cannot reuse the JSON Schema compiler (the spelling differs
 * everywhere), so it compiles the subset of JSON Schema that the syntax
 * carries and tool schemas use: typed objects with properties (closed:
 * only the declared keys, in sorted order as the template's dictsort
 * writes them, required ones present), strings (any, or enum / const),
 * integers, numbers, booleans, null, arrays with items. Everything else is
 * refused, naming the keyword and where: a wrong constraint is worse than
 * none.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "constrain/toolgemma.h"
#include "nuage/nuage.h"

#define MAX_DEPTH 64

typedef struct {
    ncg_builder *b;
    ncg_expr quote;
    ncg_rule any;     /* any value, made on first use */
    char ptr[256];    /* JSON pointer of the schema being compiled */
    nuage_cg_error *err;
} gg;

static int refuse(gg *g, const char *what) {
    if (g->err) {
        snprintf(g->err->msg, sizeof g->err->msg, "%s is not supported in Gemma tool calls", what);
        snprintf(g->err->pointer, sizeof g->err->pointer, "%s", g->ptr);
    }
    return NUAGE_E_UNSUPPORTED;
}

static ncg_expr S(gg *g, const char *s) { return ncg_str(g->b, s); }

/* The text of a string: any characters, but no <|"|> (when the quote is
 * matched by bytes, a '<' may not be followed by '|'). */
static ncg_expr str_text(gg *g) {
    /* (and no NUL, which no tokenizer writes and C strings would cut) */
    static const uint32_t not_lt[] = {0, 0, '<', '<'}, not_bar[] = {0, 0, '|', '|'};
    ncg_expr plain = ncg_char_ranges(g->b, not_lt, 2, true);
    ncg_expr lt = ncg_seq2(g->b, S(g, "<"), ncg_char_ranges(g->b, not_bar, 2, true));
    return ncg_repeat(g->b, ncg_alt2(g->b, plain, lt), 0, NCG_INF);
}

static ncg_expr str_of(gg *g, ncg_expr text) { return ncg_seq(g->b, (ncg_expr[]){g->quote, text, g->quote}, 3); }

static ncg_expr integer(gg *g) {
    ncg_expr digits = ncg_repeat(g->b, ncg_byte_range(g->b, '0', '9'), 0, NCG_INF);
    ncg_expr nz = ncg_seq2(g->b, ncg_byte_range(g->b, '1', '9'), digits);
    return ncg_seq2(g->b, ncg_opt(g->b, S(g, "-")), ncg_alt2(g->b, S(g, "0"), nz));
}

static ncg_expr number(gg *g) {
    ncg_expr d1 = ncg_repeat(g->b, ncg_byte_range(g->b, '0', '9'), 1, NCG_INF);
    ncg_expr frac = ncg_opt(g->b, ncg_seq2(g->b, S(g, "."), d1));
    ncg_expr sign = ncg_opt(g->b, ncg_alt2(g->b, S(g, "+"), S(g, "-")));
    ncg_expr ex = ncg_opt(g->b, ncg_seq(g->b, (ncg_expr[]){ncg_alt2(g->b, S(g, "e"), S(g, "E")), sign, d1}, 3));
    return ncg_seq(g->b, (ncg_expr[]){integer(g), frac, ex}, 3);
}

static ncg_expr null_lit(gg *g) { return ncg_alt2(g->b, S(g, "None"), S(g, "null")); }

static ncg_expr any_value(gg *g) {
    if (g->any < 0) {
        g->any = ncg_rule_new(g->b, "gemma_any");
        if (g->any < 0) return g->any;
        ncg_expr v = ncg_ref(g->b, g->any);
        ncg_expr key = ncg_repeat(g->b, ncg_alt(g->b, (ncg_expr[]){ncg_byte_range(g->b, 'a', 'z'),
                                  ncg_byte_range(g->b, 'A', 'Z'), ncg_byte_range(g->b, '0', '9'), S(g, "_")}, 4),
                                  1, 64);
        ncg_expr member = ncg_seq(g->b, (ncg_expr[]){key, S(g, ":"), v}, 3);
        ncg_expr members = ncg_opt(g->b, ncg_seq2(g->b, member,
                                   ncg_repeat(g->b, ncg_seq2(g->b, S(g, ","), member), 0, NCG_INF)));
        ncg_expr items = ncg_opt(g->b, ncg_seq2(g->b, v, ncg_repeat(g->b, ncg_seq2(g->b, S(g, ","), v), 0, NCG_INF)));
        ncg_expr alts[] = {str_of(g, str_text(g)), number(g), S(g, "true"), S(g, "false"), null_lit(g),
                           ncg_seq(g->b, (ncg_expr[]){S(g, "{"), members, S(g, "}")}, 3),
                           ncg_seq(g->b, (ncg_expr[]){S(g, "["), items, S(g, "]")}, 3)};
        int rc = ncg_rule_set(g->b, g->any, ncg_alt(g->b, alts, sizeof alts / sizeof alts[0]));
        if (rc) return rc;
    }
    return ncg_ref(g->b, g->any);
}

/* A literal value (enum / const) in Gemma's spelling. */
static int literal(gg *g, json_t *v, ncg_expr *out) {
    if (json_is_string(v)) {
        if (strstr(json_string_value(v), GEMMA_QUOTE)) return refuse(g, "a string containing <|\"|>");
        *out = str_of(g, ncg_bytes(g->b, json_string_value(v), json_string_length(v)));
    } else if (json_is_true(v)) *out = S(g, "true");
    else if (json_is_false(v)) *out = S(g, "false");
    else if (json_is_null(v)) *out = null_lit(g);
    else if (json_is_integer(v) || json_is_real(v)) {
        char *t = json_dumps(v, JSON_ENCODE_ANY);
        if (!t) return NUAGE_E_NOMEM;
        *out = S(g, t);
        free(t);
    } else return refuse(g, "an object or array in enum/const");
    return 0;
}

static int schema(gg *g, json_t *js, int depth, ncg_expr *out);

static int cmp_key(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int c = strcasecmp(x, y);
    return c ? c : strcmp(x, y);
}

static int object(gg *g, json_t *js, int depth, ncg_expr *out) {
    json_t *props = json_object_get(js, "properties"), *req = json_object_get(js, "required");
    json_t *ap = json_object_get(js, "additionalProperties");
    if (ap && !json_is_false(ap)) return refuse(g, "additionalProperties other than false");
    if (props && !json_is_object(props)) return NUAGE_E_INVAL;
    size_t m = props ? json_object_size(props) : 0;
    if (m > 64) return refuse(g, "more than 64 properties");
    const char *keys[64];
    size_t k = 0;
    const char *key;
    json_t *sub;
    if (props) json_object_foreach(props, key, sub) keys[k++] = key;
    qsort(keys, m, sizeof *keys, cmp_key);
    ncg_expr mem[64];
    bool opt[64];
    size_t plen = strlen(g->ptr);
    for (size_t i = 0; i < m; i++) {
        for (const char *c = keys[i]; *c; c++)
            if (!nuage__gemma_key_char(*c)) return refuse(g, "a property name Gemma cannot write bare");
        snprintf(g->ptr + plen, sizeof g->ptr - plen, "/properties/%s", keys[i]);
        ncg_expr v;
        int rc = schema(g, json_object_get(props, keys[i]), depth + 1, &v);
        g->ptr[plen] = 0;
        if (rc) return rc;
        mem[i] = ncg_seq(g->b, (ncg_expr[]){S(g, keys[i]), S(g, ":"), v}, 3);
        opt[i] = true;
        size_t r;
        json_t *rv;
        json_array_foreach(req, r, rv) if (json_is_string(rv) && !strcmp(json_string_value(rv), keys[i])) opt[i] = false;
    }
    size_t r;
    json_t *rv;
    json_array_foreach(req, r, rv) {
        if (!json_is_string(rv) || !json_object_get(props, json_string_value(rv)))
            return refuse(g, "a required property without a schema");
    }
    /* after[i]: the members from i on, one already written (each starts
     * with ','); first[i]: the same with none written yet */
    ncg_expr after[65], first[65];
    after[m] = first[m] = ncg_empty(g->b);
    for (size_t i = m; i-- > 0;) {
        ncg_expr aa[64], fa[64];
        size_t na = 0;
        bool all_opt = true;
        for (size_t j = i; j < m; j++) {
            aa[na] = ncg_seq(g->b, (ncg_expr[]){S(g, ","), mem[j], after[j + 1]}, 3);
            fa[na++] = ncg_seq2(g->b, mem[j], after[j + 1]);
            if (!opt[j]) { all_opt = false; break; }
        }
        if (all_opt) { aa[na] = ncg_empty(g->b); fa[na++] = ncg_empty(g->b); }
        after[i] = ncg_alt(g->b, aa, na);
        first[i] = ncg_alt(g->b, fa, na);
    }
    *out = ncg_seq(g->b, (ncg_expr[]){S(g, "{"), first[0], S(g, "}")}, 3);
    return 0;
}

static int typed(gg *g, json_t *js, const char *t, int depth, ncg_expr *out) {
    if (!strcmp(t, "object")) return object(g, js, depth, out);
    if (!strcmp(t, "string")) *out = str_of(g, str_text(g));
    else if (!strcmp(t, "integer")) *out = integer(g);
    else if (!strcmp(t, "number")) *out = number(g);
    else if (!strcmp(t, "boolean")) *out = ncg_alt2(g->b, S(g, "true"), S(g, "false"));
    else if (!strcmp(t, "null")) *out = null_lit(g);
    else if (!strcmp(t, "array")) {
        json_t *items = json_object_get(js, "items");
        ncg_expr it;
        size_t plen = strlen(g->ptr);
        snprintf(g->ptr + plen, sizeof g->ptr - plen, "/items");
        int rc = items ? schema(g, items, depth + 1, &it) : ((it = any_value(g)) < 0 ? it : 0);
        g->ptr[plen] = 0;
        if (rc) return rc;
        ncg_expr list = ncg_opt(g->b, ncg_seq2(g->b, it, ncg_repeat(g->b, ncg_seq2(g->b, S(g, ","), it), 0, NCG_INF)));
        *out = ncg_seq(g->b, (ncg_expr[]){S(g, "["), list, S(g, "]")}, 3);
    } else return refuse(g, "this type");
    return 0;
}

static int schema(gg *g, json_t *js, int depth, ncg_expr *out) {
    if (depth > MAX_DEPTH) return refuse(g, "nesting this deep");
    if (json_is_true(js) || (json_is_object(js) && json_object_size(js) == 0)) {
        *out = any_value(g);
        return *out < 0 ? *out : 0;
    }
    if (!json_is_object(js)) return refuse(g, "this schema");
    static const char *const ok[] = {"type", "properties", "required", "additionalProperties", "items", "enum",
                                     "const", "description", "title", "default", "examples", "$schema", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(js, key, v) {
        size_t i = 0;
        while (ok[i] && strcmp(ok[i], key)) i++;
        if (!ok[i]) return refuse(g, key);
    }
    json_t *e = json_object_get(js, "enum"), *c = json_object_get(js, "const");
    if (c || e) {
        ncg_expr alts[256];
        size_t n = 0;
        if (c) {
            int rc = literal(g, c, &alts[n++]);
            if (rc) return rc;
        } else {
            if (!json_is_array(e) || json_array_size(e) == 0 || json_array_size(e) > 256) return refuse(g, "this enum");
            size_t i;
            json_array_foreach(e, i, v) {
                int rc = literal(g, v, &alts[n++]);
                if (rc) return rc;
            }
        }
        *out = ncg_alt(g->b, alts, n);
        return 0;
    }
    json_t *t = json_object_get(js, "type");
    if (json_is_string(t)) return typed(g, js, json_string_value(t), depth, out);
    if (json_is_array(t) && json_array_size(t) > 0 && json_array_size(t) <= 7) {
        ncg_expr alts[7];
        size_t i;
        json_array_foreach(t, i, v) {
            if (!json_is_string(v)) return refuse(g, "type");
            int rc = typed(g, js, json_string_value(v), depth, &alts[i]);
            if (rc) return rc;
        }
        *out = ncg_alt(g->b, alts, json_array_size(t));
        return 0;
    }
    if (!t && json_object_get(js, "properties")) return object(g, js, depth, out);
    return refuse(g, "a schema without type");
}

int nuage__gemma_args(ncg_builder *b, const void *schema_, ncg_expr quote, ncg_expr *out, nuage_cg_error *err) {
    gg g = {b, quote, -1, "", err};
    json_t *js = (json_t *)schema_;
    json_t *t = json_object_get(js, "type");
    if (t && !(json_is_string(t) && !strcmp(json_string_value(t), "object"))) return refuse(&g, "arguments that are not an object");
    return schema(&g, js, 0, out);
}
