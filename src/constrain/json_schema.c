/*
 * json_schema.c - JSON Schema to grammar: the entry point, conjunctions,
 * $ref, the combinators (allOf, anyOf, oneOf), enum/const, and the type
 * dispatch. Numbers, strings, objects and arrays have files of their own.
 *
 * Design. The grammar must accept exactly the instances the schema
 * validates (with the serialization freedoms documented in
 * docs/structured-outputs.md ("JSON Schema keywords"): declared property order, bounded
 * whitespace, canonical exponent forms for bounded numbers). A grammar has
 * union but no intersection or complement, so:
 *
 * - allOf and $ref are *flattened* into a conjunction, a list of schema
 *   objects that all apply at this place; every keyword handler reads all
 *   of them (bounds take the tightest, required is the union, a property's
 *   schema is the conjunction of its schemas, ...). So intersection is
 *   done on schemas, not on grammars.
 * - anyOf is distributed: A and (B or C) = (A and B) or (A and C); each
 *   branch compiles to its own grammar and they are alternated.
 * - oneOf is anyOf when the branches provably exclude each other (disjoint
 *   types, disjoint const/enum values, or a required property whose
 *   const/enum values differ); otherwise it is refused.
 * - enum/const are literals filtered by the other keywords of the
 *   conjunction (a small exact validator); when that validator cannot
 *   decide, the schema is refused.
 * - not, if/then/else and dependencies are rewritten into positive
 *   schemas (json_schema_not.c) and flattened like allOf.
 * - A keyword that constrains validation and that we cannot compile
 *   exactly (uniqueItems, contains, propertyNames, ...) refuses the schema
 *   with its JSON pointer; annotation and unknown keywords are ignored, as
 *   the JSON Schema specification does.
 *
 * $ref targets are compiled as grammar rules (memoized on the schemas of
 * the conjunction), which is what makes recursive schemas work. The memo
 * also matches identical copies by their serialization, so a definition a
 * document repeats inline compiles once (compile time, issue 11).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/json_schema_internal.h"

/* ---- errors and JSON pointers ------------------------------------------ */

static bool find_path(const json_t *at, const json_t *node, char *buf, size_t cap, size_t len) {
    if (at == node) { buf[len] = 0; return true; }
    if (json_is_object(at)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)at, k, v) {
            size_t l = len;
            if (l + 1 < cap) buf[l++] = '/';
            for (const char *p = k; *p && l + 2 < cap; p++) {
                if (*p == '~') { buf[l++] = '~'; buf[l++] = '0'; }
                else if (*p == '/') { buf[l++] = '~'; buf[l++] = '1'; }
                else buf[l++] = *p;
            }
            if (find_path(v, node, buf, cap, l)) return true;
        }
    } else if (json_is_array(at)) {
        for (size_t i = 0; i < json_array_size(at); i++) {
            int w = snprintf(buf + len, cap - len, "/%zu", i);
            size_t l = len + (w > 0 && (size_t)w < cap - len ? (size_t)w : 0);
            if (find_path(json_array_get(at, i), node, buf, cap, l)) return true;
        }
    }
    return false;
}

ncg_expr js_fail(js_ctx *c, int rc, const json_t *node, const char *kw, const char *fmt, ...) {
    if (c->rc < 0) return c->rc;
    c->rc = rc;
    if (!c->err) return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
    va_end(ap);
    char *p = c->err->pointer;
    size_t cap = sizeof c->err->pointer;
    p[0] = 0;
    if (node && !find_path(c->root, node, p, cap, 0)) p[0] = 0;
    if (kw) {
        size_t l = strlen(p);
        snprintf(p + l, cap - l, "/%s", kw);
    }
    return rc;
}

/* ---- whitespace and any value ------------------------------------------ */

ncg_expr js_ws(js_ctx *c) {
    if (c->ws == NUAGE_E_INVAL - 1000) {
        static const uint8_t set[32] = { [1] = (1u << 1) | (1u << 2) | (1u << 5), [4] = 1 }; /* \t \n \r, space */
        if (c->max_ws <= 0) c->ws = ncg_empty(c->b);
        else {
            /* one shared rule: a bounded run unrolls to max_ws states, which
             * would be copied at every place whitespace may appear */
            ncg_rule r = ncg_rule_new(c->b, "ws");
            int rc = r < 0 ? r : ncg_rule_set(c->b, r, ncg_repeat(c->b, ncg_byteset(c->b, set), 0, (uint32_t)c->max_ws));
            c->ws = rc < 0 ? rc : ncg_ref(c->b, r);
        }
    }
    return c->ws;
}

ncg_expr ncg_json_ws(ncg_builder *b, const nuage_cg_json_opts *opts) {
    int max_ws = opts ? opts->max_ws : 64;
    if (max_ws <= 0) return ncg_empty(b);
    static const uint8_t set[32] = { [1] = (1u << 1) | (1u << 2) | (1u << 5), [4] = 1 };
    return ncg_repeat(b, ncg_byteset(b, set), 0, (uint32_t)max_ws);
}

ncg_expr js_any(js_ctx *c) {
    ncg_builder *b = c->b;
    if (c->any_rule >= 0) return ncg_ref(b, c->any_rule);
    c->any_rule = ncg_rule_new(b, "json_value");
    if (c->any_rule < 0) return c->any_rule;
    ncg_expr ws = js_ws(c), v = ncg_ref(b, c->any_rule);
    ncg_expr str = js_string(c, 0, NCG_INF);
    ncg_expr member = ncg_seq(b, (ncg_expr[]){ str, ws, ncg_str(b, ":"), ws, v }, 5);
    ncg_expr sep = ncg_seq(b, (ncg_expr[]){ ws, ncg_str(b, ","), ws }, 3);
    ncg_expr members = ncg_seq2(b, member, ncg_repeat(b, ncg_seq2(b, sep, member), 0, NCG_INF));
    ncg_expr obj = ncg_seq(b, (ncg_expr[]){ ncg_str(b, "{"), ws, ncg_opt(b, ncg_seq2(b, members, ws)), ncg_str(b, "}") }, 4);
    ncg_expr items = ncg_seq2(b, v, ncg_repeat(b, ncg_seq2(b, sep, v), 0, NCG_INF));
    ncg_expr arr = ncg_seq(b, (ncg_expr[]){ ncg_str(b, "["), ws, ncg_opt(b, ncg_seq2(b, items, ws)), ncg_str(b, "]") }, 4);
    ncg_expr alts[6] = { obj, arr, str, js_number(c, NULL, NULL, false, true), ncg_str(b, "true"),
                         ncg_alt2(b, ncg_str(b, "false"), ncg_str(b, "null")) };
    int rc = ncg_rule_set(b, c->any_rule, ncg_alt(b, alts, 6));
    if (rc < 0) return rc;
    return ncg_ref(b, c->any_rule);
}

/* ---- JSON values: equality and literals -------------------------------- */

bool js_json_equal(const json_t *a, const json_t *b) {
    if (json_is_number(a) && json_is_number(b)) {
        js_dec x, y;
        if (js_dec_from_json(a, &x) < 0 || js_dec_from_json(b, &y) < 0) return false;
        return js_dec_cmp(&x, &y) == 0;
    }
    if (json_typeof(a) != json_typeof(b)) return false;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!js_json_equal(json_array_get(a, i), json_array_get(b, i))) return false;
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v) {
            json_t *w = json_object_get(b, k);
            if (!w || !js_json_equal(v, w)) return false;
        }
        return true;
    }
    return json_equal(a, b);
}

/* A literal; numbers: integer-only spellings when integer. */
static ncg_expr literal(js_ctx *c, const json_t *v, bool integer) {
    ncg_builder *b = c->b;
    ncg_expr ws = js_ws(c);
    switch (json_typeof(v)) {
    case JSON_NULL: return ncg_str(b, "null");
    case JSON_TRUE: return ncg_str(b, "true");
    case JSON_FALSE: return ncg_str(b, "false");
    case JSON_STRING: return js_string_lit(c, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
    case JSON_REAL: {
        js_bound x = { .set = true };
        if (js_dec_from_json(v, &x.v) < 0) return js_fail(c, NUAGE_E_UNSUPPORTED, NULL, NULL, "number literal too long");
        return js_number(c, &x, &x, integer, c->draft >= 6);
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (n == 0) return ncg_seq(b, (ncg_expr[]){ ncg_str(b, "["), ws, ncg_str(b, "]") }, 3);
        ncg_expr acc = ncg_seq(b, (ncg_expr[]){ ncg_str(b, "["), ws, literal(c, json_array_get(v, 0), false) }, 3);
        for (size_t i = 1; i < n; i++)
            acc = ncg_seq(b, (ncg_expr[]){ acc, ws, ncg_str(b, ","), ws, literal(c, json_array_get(v, i), false) }, 5);
        return ncg_seq(b, (ncg_expr[]){ acc, ws, ncg_str(b, "]") }, 3);
    }
    case JSON_OBJECT: {
        if (json_object_size(v) == 0) return ncg_seq(b, (ncg_expr[]){ ncg_str(b, "{"), ws, ncg_str(b, "}") }, 3);
        ncg_expr acc = ncg_seq2(b, ncg_str(b, "{"), ws);
        const char *k;
        json_t *x;
        bool first = true;
        json_object_foreach((json_t *)v, k, x) {
            if (!first) acc = ncg_seq(b, (ncg_expr[]){ acc, ws, ncg_str(b, ","), ws }, 4);
            first = false;
            acc = ncg_seq(b, (ncg_expr[]){ acc, js_string_lit(c, k, strlen(k)), ws, ncg_str(b, ":"), ws,
                                           literal(c, x, false) }, 6);
        }
        return ncg_seq(b, (ncg_expr[]){ acc, ws, ncg_str(b, "}") }, 3);
    }
    }
    return ncg_nothing(b);
}

ncg_expr js_literal(js_ctx *c, const json_t *v) { return literal(c, v, false); }

/* ---- keyword tables ------------------------------------------------------ */

/* Keywords that constrain validation and that this compiler refuses. */
static const char *const refused_kw[] = {
    "uniqueItems", "contains", "minContains", "maxContains", "propertyNames", "unevaluatedProperties",
    "unevaluatedItems", "$dynamicRef", "$recursiveRef", "extends", "disallow", "divisibleBy",
};

/* Formats that validators know (assert); others are annotations. */
static const char *const known_formats[] = {
    "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname",
    "ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template",
    "json-pointer", "relative-json-pointer", "regex",
};

enum { T_NULL = 1, T_BOOL = 2, T_INT = 4, T_NUM = 8, T_STR = 16, T_ARR = 32, T_OBJ = 64, T_ALL = 127 };

static int type_bit(const char *s) {
    if (!strcmp(s, "null")) return T_NULL;
    if (!strcmp(s, "boolean")) return T_BOOL;
    if (!strcmp(s, "integer")) return T_INT;
    if (!strcmp(s, "number")) return T_INT | T_NUM;
    if (!strcmp(s, "string")) return T_STR;
    if (!strcmp(s, "array")) return T_ARR;
    if (!strcmp(s, "object")) return T_OBJ;
    return -1;
}

/* The type bits of schema s's "type" (T_ALL without one); -1 malformed. */
static int schema_types(js_ctx *c, const json_t *s) {
    const json_t *t = json_object_get(s, "type");
    if (!t) return T_ALL;
    if (json_is_string(t)) {
        int v = type_bit(json_string_value(t));
        if (v < 0) return js_fail(c, NUAGE_E_UNSUPPORTED, s, "type", "type '%s' is not supported", json_string_value(t));
        return v;
    }
    if (json_is_array(t)) {
        int m = 0;
        for (size_t i = 0; i < json_array_size(t); i++) {
            const json_t *e = json_array_get(t, i);
            int v = json_is_string(e) ? type_bit(json_string_value(e)) : -1;
            if (v < 0) return js_fail(c, NUAGE_E_UNSUPPORTED, s, "type", "type: only type names are supported");
            m |= v;
        }
        return m;
    }
    return js_fail(c, NUAGE_E_INVAL, s, "type", "type must be a string or an array");
}

/* The type bit of a JSON value (integers: T_INT, also for 2.0 from draft 6). */
static int value_type(js_ctx *c, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_NULL: return T_NULL;
    case JSON_TRUE: case JSON_FALSE: return T_BOOL;
    case JSON_STRING: return T_STR;
    case JSON_ARRAY: return T_ARR;
    case JSON_OBJECT: return T_OBJ;
    case JSON_INTEGER: return T_INT;
    case JSON_REAL: {
        js_dec d;
        if (c->draft >= 6 && js_dec_from_json(v, &d) == 0 && js_dec_is_int(&d)) return T_INT;
        return T_NUM;
    }
    }
    return 0;
}

/* ---- $ref -------------------------------------------------------------- */

bool js_format_known(const char *fmt) {
    for (size_t f = 0; f < sizeof known_formats / sizeof *known_formats; f++)
        if (!strcmp(fmt, known_formats[f])) return true;
    return false;
}

const json_t *js_resolve_ref(js_ctx *c, const json_t *s, const char *ref) {
    if (ref[0] != '#') {
        js_fail(c, NUAGE_E_UNSUPPORTED, s, "$ref", "$ref '%.120s': only references within the document (#/...) are supported", ref);
        return NULL;
    }
    const json_t *at = c->root;
    const char *p = ref + 1;
    if (*p && *p != '/') {
        js_fail(c, NUAGE_E_UNSUPPORTED, s, "$ref", "$ref '%.120s': anchors are not supported", ref);
        return NULL;
    }
    while (*p == '/') {
        p++;
        char tok[512];
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~' && p[1] == '0') { ch = '~'; p++; }
            else if (ch == '~' && p[1] == '1') { ch = '/'; p++; }
            else if (ch == '%' && p[1] && p[2]) {
                char hx[3] = { p[1], p[2], 0 };
                char *end;
                long v = strtol(hx, &end, 16);
                if (*end == 0) { ch = (char)v; p += 2; }
            }
            if (n + 1 < sizeof tok) tok[n++] = ch;
        }
        tok[n] = 0;
        if (json_is_object(at)) at = json_object_get(at, tok);
        else if (json_is_array(at)) {
            char *end;
            long i = strtol(tok, &end, 10);
            at = (*end || i < 0) ? NULL : json_array_get(at, (size_t)i);
        } else at = NULL;
        if (!at) {
            js_fail(c, NUAGE_E_INVAL, s, "$ref", "$ref '%.120s' does not resolve", ref);
            return NULL;
        }
    }
    return at;
}

/* ---- conjunctions ------------------------------------------------------- */

/* Insert s at position pos (unless already present); 1 inserted, 0 present. */
static int conj_insert(js_ctx *c, js_conj *cj, int pos, const json_t *s, const json_t *at, const char *kw) {
    for (int i = 0; i < cj->n; i++) if (cj->it[i].s == s) return 0;
    if (cj->n >= JS_MAX_CONJ) return js_fail(c, NUAGE_E_UNSUPPORTED, at, kw, "schema too deeply combined (allOf/$ref)");
    memmove(&cj->it[pos + 1], &cj->it[pos], sizeof cj->it[0] * (size_t)(cj->n - pos));
    cj->it[pos].s = s;
    cj->it[pos].used = 0;
    cj->n++;
    return 1;
}

static int conj_add(js_ctx *c, js_conj *cj, const json_t *s, const json_t *at, const char *kw) {
    int rc = conj_insert(c, cj, cj->n, s, at, kw);
    return rc < 0 ? rc : 0;
}

/* Flatten $ref, allOf and not; 1 when the conjunction is unsatisfiable (a
 * false schema), 0, or an error. The schemas a schema brings in are
 * inserted right after it, so the list is in depth-first pre-order: the
 * order in which properties are declared reading the schema top down. */
static int flatten(js_ctx *c, js_conj *cj) {
    for (int i = 0; i < cj->n; i++) {
        const json_t *s = cj->it[i].s;
        int ins = i + 1, rc;
        if (json_is_true(s)) continue;
        if (json_is_false(s)) return 1;
        if (!json_is_object(s)) return js_fail(c, NUAGE_E_INVAL, s, NULL, "a schema must be an object or a boolean");
        const json_t *ref = json_object_get(s, "$ref");
        if (ref && !(cj->it[i].used & JS_USED_REF)) {
            cj->it[i].used |= JS_USED_REF;
            if (!json_is_string(ref)) return js_fail(c, NUAGE_E_INVAL, s, "$ref", "$ref must be a string");
            const json_t *t = js_resolve_ref(c, s, json_string_value(ref));
            if (!t) return c->rc;
            if (c->draft <= 7) cj->it[i].used |= JS_USED_ALLOF | JS_USED_ANYOF | JS_USED_ONEOF | 0x100; /* siblings ignored */
            if ((rc = conj_insert(c, cj, ins, t, s, "$ref")) < 0) return rc;
            ins += rc;
        }
        if (cj->it[i].used & 0x100) continue;
        const json_t *all = json_object_get(s, "allOf");
        if (all && !(cj->it[i].used & JS_USED_ALLOF)) {
            cj->it[i].used |= JS_USED_ALLOF;
            if (!json_is_array(all)) return js_fail(c, NUAGE_E_INVAL, s, "allOf", "allOf must be an array");
            for (size_t k = 0; k < json_array_size(all); k++) {
                if ((rc = conj_insert(c, cj, ins, json_array_get(all, k), s, "allOf")) < 0) return rc;
                ins += rc;
            }
        }
        /* if/then/else (draft 7 on) and dependencies: rewritten with not */
        if (c->draft >= 7 && json_object_get(s, "if") && (json_object_get(s, "then") || json_object_get(s, "else")) &&
            !(cj->it[i].used & JS_USED_IF)) {
            cj->it[i].used |= JS_USED_IF;
            const json_t *x = js_conditional(c, s);
            if (!x) return c->rc ? c->rc : NUAGE_E_UNSUPPORTED;
            if ((rc = conj_insert(c, cj, ins, x, s, "if")) < 0) return rc;
            ins += rc;
        }
        if (!(cj->it[i].used & JS_USED_DEP)) {
            cj->it[i].used |= JS_USED_DEP;
            static const char *const deps[] = { "dependencies", "dependentRequired", "dependentSchemas" };
            for (int k = 0; k < 3; k++) {
                if (!json_object_get(s, deps[k])) continue;
                const json_t *x = js_dependencies(c, s, deps[k]);
                if (!x) return c->rc ? c->rc : NUAGE_E_UNSUPPORTED;
                if ((rc = conj_insert(c, cj, ins, x, s, deps[k])) < 0) return rc;
                ins += rc;
            }
        }
        const json_t *nt = json_object_get(s, "not");
        if (nt && !(cj->it[i].used & JS_USED_NOT)) {
            cj->it[i].used |= JS_USED_NOT;
            const json_t *ng = js_negate(c, nt, s);
            if (!ng) return c->rc ? c->rc : NUAGE_E_UNSUPPORTED;
            if (json_is_false(ng)) return 1;
            if ((rc = conj_insert(c, cj, ins, ng, s, "not")) < 0) return rc;
        }
    }
    return 0;
}

/* The value-constraining keywords of item i (not ignored as $ref sibling). */
static bool live(const js_item *it) { return json_is_object(it->s) && !(it->used & 0x100); }

/* ---- oneOf disjointness --------------------------------------------------- */

typedef struct branch_sig {
    int types;                 /* possible types */
    const json_t *values;      /* enum array or NULL */
    const json_t *cvalue;      /* const or NULL */
} branch_sig;

static void sig_of(js_ctx *c, const json_t *s, branch_sig *g) {
    g->types = T_ALL; g->values = NULL; g->cvalue = NULL;
    if (!json_is_object(s)) { if (json_is_false(s)) g->types = 0; return; }
    const json_t *ref = json_object_get(s, "$ref");
    if (ref && json_is_string(ref) && json_object_size(s) == 1) {
        int save = c->rc;
        const json_t *t = js_resolve_ref(c, s, json_string_value(ref));
        c->rc = save;
        if (t && t != s && c->depth < JS_MAX_DEPTH) { c->depth++; sig_of(c, t, g); c->depth--; }
        return;
    }
    int save = c->rc;
    int t = schema_types(c, s);
    c->rc = save;
    if (t >= 0) g->types = t;
    g->values = json_object_get(s, "enum");
    if (g->values && !json_is_array(g->values)) g->values = NULL;
    g->cvalue = json_object_get(s, "const");
    if (g->values || g->cvalue) {
        int m = 0;
        if (g->cvalue) m |= value_type(c, g->cvalue) | (value_type(c, g->cvalue) == T_INT ? T_NUM : 0);
        else for (size_t i = 0; i < json_array_size(g->values); i++) {
            int v = value_type(c, json_array_get(g->values, i));
            m |= v | (v == T_INT ? T_NUM : 0);
        }
        g->types &= m;
    }
}

static bool value_in(const json_t *v, const branch_sig *g) {
    if (g->cvalue) return js_json_equal(v, g->cvalue);
    for (size_t i = 0; i < json_array_size(g->values); i++)
        if (js_json_equal(v, json_array_get(g->values, i))) return true;
    return false;
}

static bool values_disjoint(const branch_sig *a, const branch_sig *b) {
    if (!(a->values || a->cvalue) || !(b->values || b->cvalue)) return false;
    if (a->cvalue) return !value_in(a->cvalue, b);
    for (size_t i = 0; i < json_array_size(a->values); i++)
        if (value_in(json_array_get(a->values, i), b)) return false;
    return true;
}

static const json_t *deref_plain(js_ctx *c, const json_t *s) {
    for (int k = 0; k < 8 && json_is_object(s); k++) {
        const json_t *ref = json_object_get(s, "$ref");
        if (!ref || !json_is_string(ref)) break;
        int save = c->rc;
        const json_t *t = js_resolve_ref(c, s, json_string_value(ref));
        c->rc = save;
        if (!t) break;
        s = t;
    }
    return s;
}

/* a forbids key k: additionalProperties false, k not declared, no patterns */
static bool forbids_key(const json_t *a, const char *k) {
    if (!json_is_false(json_object_get(a, "additionalProperties"))) return false;
    if (json_object_get(a, "patternProperties") || json_object_get(a, "allOf") || json_object_get(a, "anyOf") ||
        json_object_get(a, "oneOf") || json_object_get(a, "$ref"))
        return false;
    const json_t *pa = json_object_get(a, "properties");
    return !(pa && json_object_get(pa, k));
}

/* b requires a key that a forbids */
static bool requires_forbidden(const json_t *a, const json_t *b) {
    const json_t *rb = json_object_get(b, "required");
    for (size_t i = 0; i < json_array_size(rb); i++) {
        const char *k = json_string_value(json_array_get(rb, i));
        if (k && forbids_key(a, k)) return true;
    }
    return false;
}

/* Object branches that require a common property with disjoint const/enum,
 * or where one requires a key the other forbids. */
static bool discriminated(js_ctx *c, const json_t *a, const json_t *b) {
    a = deref_plain(c, a); b = deref_plain(c, b);
    if (json_is_object(a) && json_is_object(b) && (requires_forbidden(a, b) || requires_forbidden(b, a))) return true;
    const json_t *ra = json_object_get(a, "required"), *rb = json_object_get(b, "required");
    const json_t *pa = json_object_get(a, "properties"), *pb = json_object_get(b, "properties");
    if (!json_is_array(ra) || !json_is_array(rb) || !json_is_object(pa) || !json_is_object(pb)) return false;
    for (size_t i = 0; i < json_array_size(ra); i++) {
        const char *k = json_string_value(json_array_get(ra, i));
        if (!k) continue;
        bool inb = false;
        for (size_t j = 0; j < json_array_size(rb); j++) {
            const char *kb = json_string_value(json_array_get(rb, j));
            if (kb && !strcmp(k, kb)) inb = true;
        }
        if (!inb) continue;
        branch_sig ga, gb;
        sig_of(c, json_object_get(pa, k), &ga);
        sig_of(c, json_object_get(pb, k), &gb);
        if (json_object_get(pa, k) && json_object_get(pb, k) && values_disjoint(&ga, &gb)) return true;
    }
    return false;
}

static bool branches_disjoint(js_ctx *c, const json_t *arr) {
    size_t n = json_array_size(arr);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            branch_sig a, b;
            const json_t *x = json_array_get(arr, i), *y = json_array_get(arr, j);
            sig_of(c, x, &a);
            sig_of(c, y, &b);
            if (!(a.types & b.types)) continue;
            if (values_disjoint(&a, &b)) continue;
            if ((a.types & b.types) == T_OBJ && discriminated(c, x, y)) continue;
            /* the same branch twice can never validate exactly once */
            return false;
        }
    return true;
}

/* ---- the small exact validator (for enum/const candidates) --------------- */

static int check_container(js_ctx *c, const js_conj *cj, const json_t *v);
static int flatten(js_ctx *c, js_conj *cj);
static int check_refused(js_ctx *c, const js_conj *cj);
static const json_t *kw(const js_item *it, const char *k);

/* 1 valid, 0 invalid, -1 cannot tell. Scalar keywords, then containers
 * element by element (check_container). */
static int check_value(js_ctx *c, const js_conj *cj, const json_t *v, int types) {
    int vt = value_type(c, v);
    if (!(vt & types) && !(vt == T_INT && (types & T_NUM))) return 0;
    for (int i = 0; i < cj->n; i++) {
        const json_t *s = cj->it[i].s;
        if (!live(&cj->it[i])) continue;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)s, k, x) {
            if (!strcmp(k, "$nuage:notStrings") && js_not_strings(c, s)) {
                for (size_t j = 0; json_is_string(v) && j < json_array_size(x); j++)
                    if (js_json_equal(v, json_array_get(x, j))) return 0;
            } else if (!strcmp(k, "enum")) {
                bool in = false;
                for (size_t j = 0; json_is_array(x) && j < json_array_size(x); j++)
                    if (js_json_equal(v, json_array_get(x, j))) in = true;
                if (!in) return 0;
            } else if (!strcmp(k, "const")) {
                if (!js_json_equal(v, x)) return 0;
            } else if (json_is_number(v) && (!strcmp(k, "minimum") || !strcmp(k, "maximum") ||
                                              !strcmp(k, "exclusiveMinimum") || !strcmp(k, "exclusiveMaximum"))) {
                if (!json_is_number(x)) continue;   /* draft-4 boolean: read with its partner */
                js_dec a, b;
                if (js_dec_from_json(v, &a) < 0 || js_dec_from_json(x, &b) < 0) return -1;
                int r = js_dec_cmp(&a, &b);
                bool ex = (!strcmp(k, "minimum") && json_is_true(json_object_get(s, "exclusiveMinimum"))) ||
                          (!strcmp(k, "maximum") && json_is_true(json_object_get(s, "exclusiveMaximum")));
                if (k[0] == 'e') ex = true;
                bool lower = strstr(k, "inimum") != NULL;
                if (lower ? (r < 0 || (r == 0 && ex)) : (r > 0 || (r == 0 && ex))) return 0;
            } else if (json_is_number(v) && !strcmp(k, "multipleOf")) {
                return -1;
            } else if (json_is_string(v) && (!strcmp(k, "minLength") || !strcmp(k, "maxLength"))) {
                if (!json_is_integer(x)) return -1;
                size_t n = 0;
                const unsigned char *p = (const unsigned char *)json_string_value(v);
                for (size_t j = 0; j < json_string_length(v); j++) n += (p[j] & 0xC0) != 0x80;
                if (k[1] == 'i' ? (long long)n < json_integer_value(x) : (long long)n > json_integer_value(x)) return 0;
            } else if (json_is_string(v) && (!strcmp(k, "pattern") || !strcmp(k, "format"))) {
                if (!json_is_string(x)) return -1;
                bool is_pattern = !strcmp(k, "pattern");
                if (!is_pattern && !js_format_known(json_string_value(x))) continue;
                int r = js_string_satisfies(c, is_pattern, json_string_value(x), json_string_value(v), json_string_length(v));
                if (r < 0) return -1;
                if (r == 0) return 0;
            }
        }
    }
    if (json_is_array(v) || json_is_object(v)) return check_container(c, cj, v);
    return 1;
}

/* v against a conjunction of (unflattened) schemas: 1, 0, -1 cannot tell.
 * Refusals met on the way are not errors here (c->rc is restored). */
static int check_schemas(js_ctx *c, const js_conj *in, const json_t *v) {
    if (++c->depth > JS_MAX_DEPTH) { c->depth--; return -1; }
    js_conj cj = *in;
    int save_rc = c->rc;
    nuage_cg_error save_err;
    if (c->err) save_err = *c->err;
    int r = flatten(c, &cj);
    if (r == 1) r = 0;
    else if (r == 0) {
        r = check_refused(c, &cj) < 0 ? -1 : 1;
        int types = T_ALL;
        for (int i = 0; i < cj.n && r == 1; i++) {
            const js_item *it = &cj.it[i];
            if (!live(it)) continue;
            if ((json_object_get(it->s, "anyOf") && !(it->used & JS_USED_ANYOF)) ||
                (json_object_get(it->s, "oneOf") && !(it->used & JS_USED_ONEOF)))
                r = -1;
            int t = schema_types(c, it->s);
            if (t < 0) r = -1;
            else types &= t;
        }
        if (r == 1) r = check_value(c, &cj, v, types);
    } else r = -1;
    c->rc = save_rc;
    if (c->err) *c->err = save_err;
    c->depth--;
    return r;
}

static int add_s(js_conj *cj, const json_t *s) {
    if (!s || json_is_true(s)) return 0;
    for (int i = 0; i < cj->n; i++) if (cj->it[i].s == s) return 0;
    if (cj->n >= JS_MAX_CONJ) return -1;
    cj->it[cj->n].s = s;
    cj->it[cj->n].used = 0;
    cj->n++;
    return 0;
}

/* An array or object value against the container keywords of a flat
 * conjunction: 1, 0, -1 cannot tell. */
static int check_container(js_ctx *c, const js_conj *cj, const json_t *v) {
    bool arr = json_is_array(v);
    size_t n = arr ? json_array_size(v) : json_object_size(v);
    for (int i = 0; i < cj->n; i++) {
        const js_item *it = &cj->it[i];
        if (!live(it)) continue;
        const json_t *x;
        if ((x = kw(it, arr ? "minItems" : "minProperties")) && json_is_integer(x) && (json_int_t)n < json_integer_value(x)) return 0;
        if ((x = kw(it, arr ? "maxItems" : "maxProperties")) && json_is_integer(x) && (json_int_t)n > json_integer_value(x)) return 0;
        if (!arr && (x = kw(it, "patternProperties")) && json_object_size(x)) return -1;
        if (!arr && (x = kw(it, "required")))
            for (size_t j = 0; j < json_array_size(x); j++) {
                const char *name = json_string_value(json_array_get(x, j));
                if (!name) return -1;
                if (!json_object_get(v, name)) return 0;
            }
    }
    if (arr) {
        for (size_t e = 0; e < n; e++) {
            js_conj child = { 0 };
            for (int i = 0; i < cj->n; i++) {
                const js_item *it = &cj->it[i];
                if (!live(it)) continue;
                const json_t *pi = kw(it, "prefixItems"), *items = kw(it, "items"), *s2 = NULL;
                if (pi) s2 = e < json_array_size(pi) ? json_array_get(pi, e) : items;
                else if (json_is_array(items)) s2 = e < json_array_size(items) ? json_array_get(items, e) : kw(it, "additionalItems");
                else s2 = items;
                if (json_is_false(s2)) return 0;
                if (add_s(&child, s2) < 0) return -1;
            }
            if (child.n == 0) continue;
            int r = check_schemas(c, &child, json_array_get(v, e));
            if (r != 1) return r;
        }
        return 1;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        js_conj child = { 0 };
        for (int i = 0; i < cj->n; i++) {
            const js_item *it = &cj->it[i];
            if (!live(it)) continue;
            const json_t *props = kw(it, "properties"), *ap = kw(it, "additionalProperties");
            const json_t *ps = props ? json_object_get(props, key) : NULL;
            if (ps) { if (json_is_false(ps)) return 0; if (add_s(&child, ps) < 0) return -1; continue; }
            if (json_is_false(ap)) return 0;
            if (!ap && c->strict && props) return 0;
            if (json_is_object(ap) && add_s(&child, ap) < 0) return -1;
        }
        if (child.n == 0) continue;
        int r = check_schemas(c, &child, val);
        if (r != 1) return r;
    }
    return 1;
}

/* ---- compiling a flat conjunction -------------------------------------- */

static const json_t *kw(const js_item *it, const char *k) {
    return live(it) ? json_object_get(it->s, k) : NULL;
}

/* Refuse keywords we cannot compile exactly. */
static int check_refused(js_ctx *c, const js_conj *cj) {
    for (int i = 0; i < cj->n; i++) {
        const js_item *it = &cj->it[i];
        if (!live(it)) continue;
        for (size_t k = 0; k < sizeof refused_kw / sizeof *refused_kw; k++) {
            const json_t *x = kw(it, refused_kw[k]);
            if (!x) continue;
            if (!strcmp(refused_kw[k], "uniqueItems") && json_is_false(x)) continue;
            if (!strcmp(refused_kw[k], "propertyNames") && json_is_true(x)) continue;
            return js_fail(c, NUAGE_E_UNSUPPORTED, it->s, refused_kw[k], "'%s' is not supported", refused_kw[k]);
        }
        const json_t *req = kw(it, "required");
        if (req && !json_is_array(req))
            return js_fail(c, NUAGE_E_UNSUPPORTED, it->s, "required", "draft-3 boolean 'required' is not supported");
    }
    return 0;
}

/* Tightest bound across the conjunction. lower: minimum/exclusiveMinimum. */
static int gather_bound(js_ctx *c, const js_conj *cj, bool lower, js_bound *out) {
    const char *inc = lower ? "minimum" : "maximum", *exc = lower ? "exclusiveMinimum" : "exclusiveMaximum";
    out->set = false;
    for (int i = 0; i < cj->n; i++) {
        const js_item *it = &cj->it[i];
        for (int pass = 0; pass < 2; pass++) {
            const json_t *x = kw(it, pass ? exc : inc);
            if (!x || !json_is_number(x)) continue;
            js_bound b = { .set = true, .excl = pass == 1 };
            if (pass == 0 && json_is_true(kw(it, exc))) b.excl = true;   /* draft 4 */
            if (js_dec_from_json(x, &b.v) < 0)
                return js_fail(c, NUAGE_E_UNSUPPORTED, it->s, pass ? exc : inc, "bound has too many digits");
            if (!out->set) { *out = b; continue; }
            int r = js_dec_cmp(&b.v, &out->v);
            if (lower ? r > 0 : r < 0) *out = b;
            else if (r == 0 && b.excl) out->excl = true;
        }
    }
    return 0;
}

static ncg_expr compile_number(js_ctx *c, const js_conj *cj, bool integer) {
    js_bound lo, hi;
    int rc = gather_bound(c, cj, true, &lo);
    if (rc == 0) rc = gather_bound(c, cj, false, &hi);
    if (rc < 0) return rc;
    uint64_t k = 0;
    const js_item *kit = NULL;
    for (int i = 0; i < cj->n; i++) {
        const json_t *m = kw(&cj->it[i], "multipleOf");
        if (!m) continue;
        js_dec d;
        if (!json_is_number(m) || js_dec_from_json(m, &d) < 0 || d.neg || d.nd == 0)
            return js_fail(c, NUAGE_E_INVAL, cj->it[i].s, "multipleOf", "multipleOf must be a positive number");
        if (!js_dec_is_int(&d) || d.ip > 6)
            return js_fail(c, NUAGE_E_UNSUPPORTED, cj->it[i].s, "multipleOf",
                           "multipleOf is supported for integer divisors up to 1000 only");
        uint64_t v = 0;
        for (int j = 0; j < d.ip; j++) v = v * 10 + (uint64_t)(j < d.nd ? d.d[j] - '0' : 0);
        if (k && v != k)
            return js_fail(c, NUAGE_E_UNSUPPORTED, cj->it[i].s, "multipleOf", "several different multipleOf are not supported");
        k = v;
        kit = &cj->it[i];
    }
    if (k > 1 && (lo.set || hi.set))
        return js_fail(c, NUAGE_E_UNSUPPORTED, kit->s, "multipleOf", "multipleOf together with minimum/maximum is not supported");
    if (k > 1) {
        ncg_expr e = js_multiple_of(c, k, c->draft >= 6);
        if (e < 0) return js_fail(c, e, kit->s, "multipleOf", "multipleOf is supported for integer divisors up to 1000 only");
        return e;
    }
    return js_number(c, &lo, &hi, integer || k == 1, c->draft >= 6);
}

/* A pattern "^A1 Q1 A2 Q2 ... $" where every Ai matches exactly one BMP
 * code point (a non-negated class of BMP characters, \d, \w, or a literal
 * ASCII character) and every Qi is absent, + * ? {m} {m,} {m,n}, with at
 * most one Qi not a fixed count: the string length is then the fixed
 * atoms' total plus the variable atom's count, so minLength/maxLength
 * become bounds on that one count (or are checked, when all are fixed).
 * 1 and the rewritten pattern in out, or 0 when not of that shape. */
static int narrow_pattern(const char *p, size_t n, uint32_t min, uint32_t max, char *out, size_t cap) {
    if (n < 3 || p[0] != '^' || p[n - 1] != '$' || p[n - 2] == '\\') return 0;
    enum { MAXA = 64 };
    size_t ae[MAXA], qe[MAXA];
    uint64_t qmin[MAXA], qmax[MAXA];
    int na = 0;
    size_t i = 1;
    while (i < n - 1) {
        if (na == MAXA) return 0;
        unsigned char ch = (unsigned char)p[i];
        if (ch == '[') {
            if (p[i + 1] == '^' || p[i + 1] == ']') return 0;
            for (i++; i < n - 1 && p[i] != ']'; i++) {
                unsigned char d = (unsigned char)p[i];
                if (d >= 0xF0 || d == '[') return 0;                 /* above the BMP */
                if (d == '\\') {
                    char e = p[++i];
                    if (e == 'S' || e == 'D' || e == 'W' || e == 'p' || e == 'P' || e == 'u' || e == 'c' || e == 'x' ||
                        e == 'b' || e == 'B' || (e >= '0' && e <= '9'))
                        return 0;
                }
            }
            if (i >= n - 1) return 0;
            i++;
        } else if (ch == '\\') {
            char e = p[i + 1];
            if (!(e == 'd' || e == 'w' || (e && strchr(".-_/+*?()[]{}|^$\\:@#!%&,;=<>~ ", e)))) return 0;
            i += 2;
        } else if (ch < 0x80 && (isalnum(ch) || strchr(" -_:/@#,;=<>~'\"%&!", ch))) {
            i++;
        } else return 0;
        ae[na] = i;
        qmin[na] = qmax[na] = 1;
        if (p[i] == '+') { qmin[na] = 1; qmax[na] = NCG_INF; i++; }
        else if (p[i] == '*') { qmin[na] = 0; qmax[na] = NCG_INF; i++; }
        else if (p[i] == '?') { qmin[na] = 0; qmax[na] = 1; i++; }
        else if (p[i] == '{') {
            char *end;
            qmin[na] = strtoull(p + i + 1, &end, 10);
            if (end == p + i + 1) return 0;
            if (*end == '}') qmax[na] = qmin[na];
            else if (*end == ',' && end[1] == '}') { qmax[na] = NCG_INF; end++; }
            else if (*end == ',') {
                char *e2;
                qmax[na] = strtoull(end + 1, &e2, 10);
                if (e2 == end + 1 || *e2 != '}' || qmax[na] < qmin[na]) return 0;
                end = e2;
            } else return 0;
            i = (size_t)(end - p) + 1;
        }
        if (i < n - 1 && (p[i] == '?' || p[i] == '+' || p[i] == '*' || p[i] == '{')) return 0;  /* lazy, nested */
        if (qmin[na] > 100000 || (qmax[na] != NCG_INF && qmax[na] > 100000)) return 0;
        qe[na] = i;
        na++;
    }
    int var = -1;
    uint64_t fixed = 0;
    for (int k = 0; k < na; k++) {
        if (qmin[k] == qmax[k]) { fixed += qmin[k]; continue; }
        if (var >= 0) return 0;
        var = k;
    }
    uint64_t mx = max == NCG_INF ? UINT64_MAX : max;
    if (var < 0) {
        if (fixed < min || fixed > mx) return snprintf(out, cap, "^[]$") > 0;
        return snprintf(out, cap, "%.*s", (int)n, p) == (int)n && n < cap;
    }
    uint64_t lo = qmin[var], hi = qmax[var];
    if (min > fixed && min - fixed > lo) lo = min - fixed;
    if (mx != UINT64_MAX) {
        if (mx < fixed) return snprintf(out, cap, "^[]$") > 0;
        if (hi == NCG_INF || mx - fixed < hi) hi = mx - fixed;
    }
    if (lo > hi) return snprintf(out, cap, "^[]$") > 0;
    int w = snprintf(out, cap, "%.*s", (int)ae[var], p);
    if (w < 0 || (size_t)w >= cap) return 0;
    int w2 = hi == NCG_INF ? snprintf(out + w, cap - (size_t)w, "{%llu,}", (unsigned long long)lo)
                           : snprintf(out + w, cap - (size_t)w, "{%llu,%llu}", (unsigned long long)lo, (unsigned long long)hi);
    if (w2 < 0 || (size_t)(w + w2) >= cap) return 0;
    int w3 = snprintf(out + w + w2, cap - (size_t)(w + w2), "%.*s", (int)(n - qe[var]), p + qe[var]);
    return w3 >= 0 && (size_t)(w + w2 + w3) < cap;
}

static ncg_expr compile_string(js_ctx *c, const js_conj *cj) {
    ncg_builder *b = c->b;
    uint32_t min = 0, max = NCG_INF;
    const json_t *pattern = NULL, *format = NULL;
    const js_item *pit = NULL, *fit = NULL, *lit = NULL;
    for (int i = 0; i < cj->n; i++) {
        const js_item *it = &cj->it[i];
        const json_t *x;
        if ((x = kw(it, "minLength"))) {
            if (!json_is_integer(x) || json_integer_value(x) < 0)
                return js_fail(c, NUAGE_E_INVAL, it->s, "minLength", "minLength must be a non-negative integer");
            json_int_t v = json_integer_value(x);
            if (v > 100000) return js_fail(c, NUAGE_E_UNSUPPORTED, it->s, "minLength", "minLength too large");
            if ((uint32_t)v > min) min = (uint32_t)v;
            lit = it;
        }
        if ((x = kw(it, "maxLength"))) {
            if (!json_is_integer(x) || json_integer_value(x) < 0)
                return js_fail(c, NUAGE_E_INVAL, it->s, "maxLength", "maxLength must be a non-negative integer");
            json_int_t v = json_integer_value(x);
            if (v < 100000 && (uint32_t)v < max) max = (uint32_t)v;
            lit = it;
        }
        if ((x = kw(it, "pattern"))) {
            if (!json_is_string(x)) return js_fail(c, NUAGE_E_INVAL, it->s, "pattern", "pattern must be a string");
            if (pattern && strcmp(json_string_value(pattern), json_string_value(x)))
                return js_fail(c, NUAGE_E_UNSUPPORTED, it->s, "pattern", "several patterns on one string are not supported");
            pattern = x; pit = it;
        }
        if ((x = kw(it, "format")) && json_is_string(x)) {
            bool known = false;
            for (size_t f = 0; f < sizeof known_formats / sizeof *known_formats; f++)
                if (!strcmp(json_string_value(x), known_formats[f])) known = true;
            if (!known) continue;     /* an annotation */
            if (format && strcmp(json_string_value(format), json_string_value(x)))
                return js_fail(c, NUAGE_E_UNSUPPORTED, it->s, "format", "several formats on one string are not supported");
            format = x; fit = it;
        }
    }
    if (min > max) return ncg_nothing(b);
    bool len = min > 0 || max != NCG_INF;
    /* strings excluded by a "not" of an enum/const */
    int n_ex = 0;
    const char *ex[256];
    size_t exl[256];
    for (int i = 0; i < cj->n; i++) {
        const json_t *l = live(&cj->it[i]) ? js_not_strings(c, cj->it[i].s) : NULL;
        for (size_t j = 0; l && j < json_array_size(l); j++) {
            if (n_ex == 256) return js_fail(c, NUAGE_E_UNSUPPORTED, NULL, NULL, "'not' of a long enum of strings is not supported");
            ex[n_ex] = json_string_value(json_array_get(l, j));
            exl[n_ex++] = json_string_length(json_array_get(l, j));
        }
    }
    if (n_ex) {
        if (len || pattern || format)
            return js_fail(c, NUAGE_E_UNSUPPORTED, NULL, NULL,
                           "'not' of string values together with other string keywords is not supported");
        ncg_expr e = js_string_not_in(c, ex, exl, n_ex);
        if (e < 0) return js_fail(c, e, NULL, NULL, "'not' of strings outside the Basic Multilingual Plane is not supported");
        return e;
    }
    char narrowed[1024];
    if (pattern && len && !format &&
        narrow_pattern(json_string_value(pattern), json_string_length(pattern), min, max, narrowed, sizeof narrowed)) {
        /* the length bounds folded into the pattern's own repeat */
        ncg_expr body;
        nuage_cg_error e2 = { { 0 }, { 0 } };
        int rc = ncg_regex(b, narrowed, strlen(narrowed), false, true, &body, &e2);
        if (rc < 0) return js_fail(c, rc, pit->s, "pattern", "%s", e2.msg);
        return ncg_seq(b, (ncg_expr[]){ ncg_str(b, "\""), body, ncg_str(b, "\"") }, 3);
    }
    if (pattern && (format || len))
        return js_fail(c, NUAGE_E_UNSUPPORTED, pit->s, "pattern", "pattern together with %s is not supported",
                       format ? "format" : "minLength/maxLength");
    if (format && len && min <= 1 && max == NCG_INF) {
        /* these formats never match the empty string: minLength 1 is moot */
        static const char *const nonempty[] = { "date-time", "date", "time", "duration", "email", "hostname",
                                                "ipv4", "ipv6", "uri", "uuid" };
        for (size_t f = 0; f < sizeof nonempty / sizeof *nonempty; f++)
            if (!strcmp(json_string_value(format), nonempty[f])) len = false;
    }
    if (format && len)
        return js_fail(c, NUAGE_E_UNSUPPORTED, fit->s, "format", "format together with minLength/maxLength is not supported");
    (void)lit;
    if (pattern || format) {
        /* one rule per distinct pattern / format: their automata are big
         * and the same ones recur across properties */
        const char *key = json_string_value(pattern ? pattern : format);
        for (int i = 0; i < c->n_strc; i++)
            if (c->strc[i].is_pattern == (pattern != NULL) && !strcmp(c->strc[i].text, key))
                return ncg_ref(b, c->strc[i].rule);
        ncg_expr body;
        nuage_cg_error e2 = { { 0 }, { 0 } };
        int rc = pattern ? ncg_regex(b, json_string_value(pattern), json_string_length(pattern), false, true, &body, &e2)
                         : ncg_json_format(b, json_string_value(format), &body, &e2);
        if (rc < 0)
            return js_fail(c, rc, pattern ? pit->s : fit->s, pattern ? "pattern" : "format", "%s", e2.msg);
        ncg_rule r = ncg_rule_new(b, pattern ? "pattern" : "format");
        if (r < 0) return r;
        rc = ncg_rule_set(b, r, ncg_seq(b, (ncg_expr[]){ ncg_str(b, "\""), body, ncg_str(b, "\"") }, 3));
        if (rc < 0) return rc;
        if (c->n_strc == c->cap_strc) {
            int cap = c->cap_strc ? 2 * c->cap_strc : 8;
            js_strcache *n = realloc(c->strc, sizeof *n * (size_t)cap);
            if (!n) return js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory");
            c->strc = n;
            c->cap_strc = cap;
        }
        c->strc[c->n_strc].is_pattern = pattern != NULL;
        c->strc[c->n_strc].text = key;
        c->strc[c->n_strc].rule = r;
        c->n_strc++;
        return ncg_ref(b, r);
    }
    return js_string(c, min, max);
}

static ncg_expr compile_flat(js_ctx *c, js_conj *cj) {
    ncg_builder *b = c->b;
    int rc = check_refused(c, cj);
    if (rc < 0) return rc;
    int types = T_ALL;
    for (int i = 0; i < cj->n; i++) {
        if (!live(&cj->it[i])) continue;
        int t = schema_types(c, cj->it[i].s);
        if (t < 0) return t;
        types &= t;
    }
    /* enum / const */
    const json_t *cand = NULL;
    bool is_const = false;
    for (int i = 0; i < cj->n && !cand; i++) {
        const json_t *x = kw(&cj->it[i], "const");
        if (x) { cand = x; is_const = true; break; }
        x = kw(&cj->it[i], "enum");
        if (x) {
            if (!json_is_array(x)) return js_fail(c, NUAGE_E_INVAL, cj->it[i].s, "enum", "enum must be an array");
            cand = x;
        }
    }
    if (cand) {
        size_t n = is_const ? 1 : json_array_size(cand);
        ncg_expr acc = ncg_nothing(b);
        for (size_t j = 0; j < n; j++) {
            const json_t *v = is_const ? cand : json_array_get(cand, j);
            bool dup = false;
            for (size_t q = 0; q < j && !dup; q++) dup = js_json_equal(v, json_array_get(cand, q));
            if (dup) continue;
            int ok = check_value(c, cj, v, types);
            if (ok < 0)
                return js_fail(c, NUAGE_E_UNSUPPORTED, NULL, NULL,
                               "enum/const together with other keywords on containers, pattern or format is not supported");
            if (!ok) continue;
            bool integer = json_is_number(v) && !(types & T_NUM);
            acc = ncg_alt2(b, acc, literal(c, v, integer));
        }
        return acc;
    }
    ncg_expr alts[7];
    int na = 0;
    if (types & T_NULL) alts[na++] = ncg_str(b, "null");
    if (types & T_BOOL) alts[na++] = ncg_alt2(b, ncg_str(b, "true"), ncg_str(b, "false"));
    if (types & (T_INT | T_NUM)) alts[na++] = compile_number(c, cj, !(types & T_NUM));
    if (types & T_STR) alts[na++] = compile_string(c, cj);
    if (types & T_ARR) alts[na++] = js_array(c, cj);
    if (types & T_OBJ) alts[na++] = js_object(c, cj);
    for (int i = 0; i < na; i++) if (alts[i] < 0) return alts[i];
    return ncg_alt(b, alts, (size_t)na);
}

ncg_expr js_conj_value(js_ctx *c, js_conj *cj) {
    if (++c->depth > JS_MAX_DEPTH) {
        c->depth--;
        return js_fail(c, NUAGE_E_UNSUPPORTED, cj->n ? cj->it[0].s : NULL, NULL, "schema nested too deeply");
    }
    ncg_expr out;
    int rc = flatten(c, cj);
    if (rc < 0) { out = rc; goto done; }
    if (rc == 1) { out = ncg_nothing(c->b); goto done; }
    /* distribute the first anyOf / oneOf */
    for (int i = 0; i < cj->n; i++) {
        js_item *it = &cj->it[i];
        if (!live(it)) continue;
        for (int one = 0; one < 2; one++) {
            unsigned bit = one ? JS_USED_ONEOF : JS_USED_ANYOF;
            const char *name = one ? "oneOf" : "anyOf";
            const json_t *arr = json_object_get(it->s, name);
            if (!arr || (it->used & bit)) continue;
            if (!json_is_array(arr) || json_array_size(arr) == 0) {
                out = js_fail(c, NUAGE_E_INVAL, it->s, name, "%s must be a non-empty array", name);
                goto done;
            }
            /* overlapping oneOf branches: branch k and not every other
             * branch, when each branch has an exact negation */
            const json_t *negs[16];
            size_t nb = json_array_size(arr);
            bool with_negs = false;
            if (one && nb > 1 && !branches_disjoint(c, arr)) {
                bool ok = nb <= 8;
                for (size_t k = 0; k < nb && ok; k++) {
                    int save_rc = c->rc;
                    nuage_cg_error save_err;
                    if (c->err) save_err = *c->err;
                    negs[k] = js_negate(c, json_array_get(arr, k), it->s);
                    if (!negs[k]) {
                        ok = false;
                        c->rc = save_rc;
                        if (c->err) *c->err = save_err;
                    }
                }
                if (!ok) {
                    out = js_fail(c, NUAGE_E_UNSUPPORTED, it->s, name,
                                  "oneOf whose branches may overlap is not supported (use anyOf)");
                    goto done;
                }
                with_negs = true;
            }
            it->used |= bit;
            /* distribution multiplies: bound the alternatives compiled */
            c->n_alts += (long)json_array_size(arr);
            if (c->n_alts > 4096) {
                out = js_fail(c, NUAGE_E_UNSUPPORTED, it->s, name, "too many anyOf/oneOf combinations");
                goto done;
            }
            ncg_expr acc = ncg_nothing(c->b);
            for (size_t k = 0; k < json_array_size(arr); k++) {
                /* the branch right after its holder: declaration order */
                js_conj sub = *cj;
                int r2 = conj_insert(c, &sub, i + 1, json_array_get(arr, k), it->s, name);
                if (r2 > 0) r2 = 0;
                for (size_t j = 0; with_negs && j < nb && r2 == 0; j++)
                    if (j != k) r2 = conj_add(c, &sub, negs[j], it->s, name);
                if (r2 < 0) { out = r2; goto done; }
                ncg_expr e = js_conj_value(c, &sub);
                if (e < 0) { out = e; goto done; }
                acc = ncg_alt2(c->b, acc, e);
            }
            out = acc;
            goto done;
        }
    }
    out = compile_flat(c, cj);
done:
    c->depth--;
    if (out < 0 && c->rc == 0) c->rc = out;
    return out;
}

ncg_expr js_value(js_ctx *c, const json_t *schema) {
    js_conj cj = { 0 };
    cj.n = 1;
    cj.it[0].s = schema;
    return js_conj_value(c, &cj);
}

/* The conjunction's schemas serialized compactly in document order
 * (jansson keeps objects' insertion order; integers and reals print
 * differently), joined by \x01: equal texts generate equal grammars,
 * since generation depends only on the schemas' content, the document
 * root ("#/..." references) and its draft. malloc'd, or NULL. */
static char *memo_text(const js_conj *cj, uint64_t *hash) {
    char *parts[JS_MAX_CONJ];
    size_t len[JS_MAX_CONJ], total = 1;
    int n = 0;
    for (; n < cj->n; n++) {
        parts[n] = json_dumps(cj->it[n].s, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!parts[n]) break;
        len[n] = strlen(parts[n]);
        total += len[n] + 1;
    }
    char *t = n == cj->n ? malloc(total) : NULL;
    if (t) {
        size_t o = 0;
        for (int i = 0; i < n; i++) {
            memcpy(t + o, parts[i], len[i]);
            o += len[i];
            t[o++] = '\x01';
        }
        t[o] = 0;
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < o; i++) h = (h ^ (unsigned char)t[i]) * 1099511628211ull;
        *hash = h;
    }
    for (int i = 0; i < n; i++) free(parts[i]);
    return t;
}

ncg_expr js_conj_ref(js_ctx *c, js_conj *cj) {
    for (int i = 0; i < c->n_memo; i++) {
        js_memo *m = &c->memo[i];
        if (m->n != cj->n) continue;
        bool same = true;
        for (int k = 0; k < cj->n && same; k++) same = m->key[k] == cj->it[k].s;
        if (same) return ncg_ref(c->b, m->rule);
    }
    if (c->n_memo == c->cap_memo) {
        int cap = c->cap_memo ? 2 * c->cap_memo : 16;
        js_memo *nm = realloc(c->memo, sizeof *nm * (size_t)cap);
        if (!nm) return js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory");
        c->memo = nm;
        c->cap_memo = cap;
    }
    /* Not these schemas, but maybe an identical copy (big documents repeat
     * definitions inline): share its rule. */
    uint64_t h = 0;
    char *text = memo_text(cj, &h);
    if (text)
        for (int i = 0; i < c->n_memo; i++) {
            js_memo *o = &c->memo[i];
            if (o->text && o->hash == h && o->n == cj->n && !strcmp(o->text, text)) {
                js_memo *m = &c->memo[c->n_memo++];   /* these pointers, same rule */
                m->n = cj->n;
                for (int k = 0; k < cj->n; k++) m->key[k] = cj->it[k].s;
                m->rule = o->rule;
                m->text = NULL;
                m->hash = 0;
                free(text);
                return ncg_ref(c->b, m->rule);
            }
        }
    js_memo *m = &c->memo[c->n_memo++];
    m->n = cj->n;
    for (int k = 0; k < cj->n; k++) m->key[k] = cj->it[k].s;
    m->text = text;
    m->hash = h;
    char name[64];
    snprintf(name, sizeof name, "ref%d", c->n_memo);
    ncg_rule r = ncg_rule_new(c->b, name);
    if (r < 0) return r;
    m->rule = r;
    ncg_expr body = js_conj_value(c, cj);
    if (body < 0) return body;
    int rc = ncg_rule_set(c->b, r, body);
    if (rc < 0) return rc;
    return ncg_ref(c->b, r);
}

/* ---- entry ---------------------------------------------------------------- */

static int detect_draft(const json_t *root) {
    const json_t *s = json_is_object(root) ? json_object_get(root, "$schema") : NULL;
    const char *v = json_is_string(s) ? json_string_value(s) : "";
    if (strstr(v, "draft-03") || strstr(v, "draft-04")) return 4;
    if (strstr(v, "draft-06")) return 6;
    if (strstr(v, "draft-07")) return 7;
    if (strstr(v, "2019-09")) return 2019;
    return 2020;
}

int ncg_json_schema(ncg_builder *b, const void *schema, const nuage_cg_json_opts *opts,
                    ncg_expr *out, nuage_cg_error *err) {
    if (!b || !schema || !out) return NUAGE_E_INVAL;
    if (err) { err->msg[0] = 0; err->pointer[0] = 0; }
    js_ctx c = { 0 };
    c.b = b;
    c.max_ws = opts ? opts->max_ws : 64;
    if (c.max_ws < 0) c.max_ws = 0;
    c.strict = opts ? opts->strict : false;
    c.root = schema;
    c.draft = detect_draft(schema);
    c.err = err;
    c.ws = NUAGE_E_INVAL - 1000;
    c.any_rule = -1;
    c.str_rest_rule = -1;
    for (int i = 0; i < 5; i++) c.str_tail_rule[i] = -1;
    c.str_char_rule = -1;
    ncg_expr e = js_value(&c, schema);
    for (int i = 0; i < c.n_memo; i++) free(c.memo[i].text);
    free(c.memo);
    free(c.strc);
    nuage_cg_tokens_free(c.bytes_table);
    for (int i = 0; i < c.n_synth; i++) json_decref(c.synth[i]);
    free(c.synth);
    if (c.rc < 0) return c.rc;
    if (e < 0) {
        if (err && !err->msg[0]) snprintf(err->msg, sizeof err->msg, "grammar construction failed (%d)", e);
        return e;
    }
    *out = e;
    return 0;
}
