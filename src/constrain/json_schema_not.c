/*
 * json_schema_not.c - "not": the negation of a schema written as a
 * positive schema, so the rest of the compiler never needs complement.
 *
 * Design. A schema is a conjunction of keyword constraints, each of which
 * constrains one type ("minimum" only numbers, "minLength" only strings,
 * ...). So not(c1 and c2 and ...) = not c1 or not c2 or ..., and each
 * not ci has a positive form of its own type:
 *   type T         -> type (all types but T)
 *   minimum m      -> type number, exclusiveMaximum m (and so on)
 *   minLength n    -> type string, maxLength n-1 (items, properties alike)
 *   required [k..] -> type object whose properties k is false, for some k
 *   properties     -> type object with some key k present whose value is
 *                     not properties[k]
 *   enum/const V   -> every type V has no value of, numbers in the open
 *                     intervals between V's numbers, strings not in V
 *                     (a private keyword read only on these synthesized
 *                     schemas), [] -> minItems 1, {} -> minProperties 1
 *   anyOf [A..]    -> allOf [not A, ..];  allOf [A..] -> anyOf [not A, ..]
 *   not X          -> X;  $ref T -> not T
 * Anything else (pattern, properties, items, oneOf, ...) has no exact
 * positive form here and is refused at the "not". The synthesized
 * schemas are owned by the compiler context and freed with it.
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/json_schema_internal.h"

#define NOT_STRINGS "$nuage:notStrings"

int js_keep(js_ctx *c, json_t *s) {
    if (!s) return js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory");
    if (c->n_synth == c->cap_synth) {
        int cap = c->cap_synth ? 2 * c->cap_synth : 16;
        json_t **n = realloc(c->synth, sizeof *n * (size_t)cap);
        if (!n) { json_decref(s); return js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory"); }
        c->synth = n;
        c->cap_synth = cap;
    }
    c->synth[c->n_synth++] = s;
    return 0;
}

static bool is_synth(const js_ctx *c, const json_t *s) {
    for (int i = 0; i < c->n_synth; i++) if (c->synth[i] == s) return true;
    return false;
}

const json_t *js_not_strings(const js_ctx *c, const json_t *s) {
    return is_synth(c, s) ? json_object_get(s, NOT_STRINGS) : NULL;
}

/* keywords with no effect on validation, or none that "not" must mind */
static bool inert(const char *k, const json_t *v) {
    static const char *const words[] = {
        "title", "description", "$comment", "examples", "default", "$schema", "$id", "id",
        "definitions", "$defs", "readOnly", "writeOnly", "deprecated", "$anchor", "contentMediaType",
        "contentEncoding", "then", "else",
    };
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) if (!strcmp(k, words[i])) return true;
    if (!strcmp(k, "uniqueItems") && json_is_false(v)) return true;
    return false;
}

static const char *const constraint_words[] = {
    "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "pattern", "format", "items", "prefixItems", "additionalItems", "minItems",
    "maxItems", "uniqueItems", "contains", "minContains", "maxContains", "properties", "patternProperties",
    "additionalProperties", "required", "minProperties", "maxProperties", "propertyNames", "dependencies",
    "dependentRequired", "dependentSchemas", "allOf", "anyOf", "oneOf", "not", "if", "$ref",
    "unevaluatedItems", "unevaluatedProperties", "$dynamicRef", "$recursiveRef",
};

static bool is_constraint(const char *k) {
    for (size_t i = 0; i < sizeof constraint_words / sizeof *constraint_words; i++)
        if (!strcmp(k, constraint_words[i])) return true;
    return false;
}

static json_t *neg(js_ctx *c, const json_t *y, const json_t *at, int depth);

static json_t *typed(const char *type) { return json_pack("{s:s}", "type", type); }

static int push(json_t *pieces, json_t *p) { return p ? json_array_append_new(pieces, p) : -1; }

/* numbers not equal to any of vals[0..n) (sorted ascending, distinct) */
static int neg_numbers(json_t *pieces, const json_t **vals, int n) {
    if (n == 0) return push(pieces, typed("number"));
    int rc = push(pieces, json_pack("{s:s,s:O}", "type", "number", "exclusiveMaximum", vals[0]));
    for (int i = 0; i + 1 < n && rc == 0; i++)
        rc = push(pieces, json_pack("{s:s,s:O,s:O}", "type", "number", "exclusiveMinimum", vals[i],
                                    "exclusiveMaximum", vals[i + 1]));
    if (rc == 0) rc = push(pieces, json_pack("{s:s,s:O}", "type", "number", "exclusiveMinimum", vals[n - 1]));
    return rc;
}

static int cmp_num(const void *a, const void *b) {
    js_dec x, y;
    js_dec_from_json(*(const json_t *const *)a, &x);
    js_dec_from_json(*(const json_t *const *)b, &y);
    return js_dec_cmp(&x, &y);
}

/* not (value in V) */
static int neg_enum(js_ctx *c, const json_t *vals, bool is_const, const json_t *at, const char *kw, json_t *pieces) {
    size_t n = is_const ? 1 : json_array_size(vals);
    bool has_null = false, has_true = false, has_false = false, has_str = false;
    json_t *strs = json_array();
    const json_t **nums = malloc(sizeof *nums * (n + 1));
    int nn = 0, rc = 0;
    if (!strs || !nums) { json_decref(strs); free(nums); return js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory"); }
    bool empty_arr = false, empty_obj = false, other = false;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = is_const ? vals : json_array_get(vals, i);
        switch (json_typeof(v)) {
        case JSON_NULL: has_null = true; break;
        case JSON_TRUE: has_true = true; break;
        case JSON_FALSE: has_false = true; break;
        case JSON_STRING: has_str = true; json_array_append(strs, (json_t *)v); break;
        case JSON_INTEGER: case JSON_REAL: {
            js_dec d;
            if (js_dec_from_json(v, &d) < 0) { other = true; break; }
            bool dup = false;
            for (int k = 0; k < nn; k++) if (js_json_equal(nums[k], v)) dup = true;
            if (!dup) nums[nn++] = v;
            break;
        }
        case JSON_ARRAY: if (json_array_size(v) == 0) empty_arr = true; else other = true; break;
        case JSON_OBJECT: if (json_object_size(v) == 0) empty_obj = true; else other = true; break;
        }
    }
    if (other) {
        json_decref(strs);
        free(nums);
        return js_fail(c, NUAGE_E_UNSUPPORTED, at, kw, "'not' of an enum/const with non-empty arrays or objects is not supported");
    }
    qsort(nums, (size_t)nn, sizeof *nums, cmp_num);
    if (!has_null) rc |= push(pieces, typed("null"));
    if (!has_true && !has_false) rc |= push(pieces, typed("boolean"));
    else if (!has_true) rc |= push(pieces, json_pack("{s:b}", "const", 1));
    else if (!has_false) rc |= push(pieces, json_pack("{s:b}", "const", 0));
    rc |= neg_numbers(pieces, nums, nn);
    if (!has_str) rc |= push(pieces, typed("string"));
    else {
        json_t *p = json_pack("{s:s,s:O}", "type", "string", NOT_STRINGS, strs);
        if (p && js_keep(c, json_incref(p)) < 0) { json_decref(p); p = NULL; }
        rc |= push(pieces, p);
    }
    rc |= push(pieces, empty_arr ? json_pack("{s:s,s:i}", "type", "array", "minItems", 1) : typed("array"));
    rc |= push(pieces, empty_obj ? json_pack("{s:s,s:i}", "type", "object", "minProperties", 1) : typed("object"));
    json_decref(strs);
    free(nums);
    return rc ? js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory") : 0;
}

static int neg_type(js_ctx *c, const json_t *t, const json_t *at, json_t *pieces) {
    static const char *const all[] = { "null", "boolean", "string", "array", "object", "number", "integer" };
    bool has[7] = { false };
    size_t n = json_is_array(t) ? json_array_size(t) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_array(t) ? json_array_get(t, i) : t;
        const char *s = json_string_value(e);
        if (!s) return js_fail(c, NUAGE_E_INVAL, at, "type", "type must be type names");
        for (int k = 0; k < 7; k++) if (!strcmp(s, all[k])) has[k] = true;
    }
    if (has[6] && !has[5])
        return js_fail(c, NUAGE_E_UNSUPPORTED, at, "type", "'not' of type integer (non-integer numbers) is not supported");
    for (int k = 0; k < 6; k++)
        if (!has[k] && push(pieces, typed(all[k])) < 0) return js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory");
    return 0;
}

/* count keywords: not (n >= min) -> count <= min - 1 */
static int neg_count(js_ctx *c, const char *type, const char *kw, const json_t *v, const json_t *at, json_t *pieces) {
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return js_fail(c, NUAGE_E_INVAL, at, kw, "%s must be a non-negative integer", kw);
    json_int_t n = json_integer_value(v);
    static const char *const pairs[][2] = { { "minLength", "maxLength" }, { "minItems", "maxItems" },
                                            { "minProperties", "maxProperties" } };
    for (int i = 0; i < 3; i++) {
        if (!strcmp(kw, pairs[i][0])) {          /* not (count >= n): count <= n - 1 */
            if (n == 0) return 0;                  /* never false: nothing to add */
            return push(pieces, json_pack("{s:s,s:I}", "type", type, pairs[i][1], n - 1)) < 0 ? NUAGE_E_NOMEM : 0;
        }
        if (!strcmp(kw, pairs[i][1]))            /* not (count <= n): count >= n + 1 */
            return push(pieces, json_pack("{s:s,s:I}", "type", type, pairs[i][0], n + 1)) < 0 ? NUAGE_E_NOMEM : 0;
    }
    return 0;
}

static json_t *neg(js_ctx *c, const json_t *y, const json_t *at, int depth) {
    if (depth > 16) { js_fail(c, NUAGE_E_UNSUPPORTED, at, "not", "'not' nested too deeply"); return NULL; }
    if (json_is_true(y)) return json_false();
    if (json_is_false(y)) return json_true();
    if (!json_is_object(y)) { js_fail(c, NUAGE_E_INVAL, at, "not", "not must hold a schema"); return NULL; }
    json_t *pieces = json_array();
    if (!pieces) { js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory"); return NULL; }
    const json_t *ref = json_object_get(y, "$ref");
    bool ref_only = ref && c->draft <= 7;
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)y, k, v) {
        if (rc < 0) break;
        if (ref_only && strcmp(k, "$ref")) continue;
        if (inert(k, v) || !is_constraint(k)) continue;
        if (!strcmp(k, "format")) {
            /* annotations (unknown formats) only; js_format_known decides */
            if (json_is_string(v) && !js_format_known(json_string_value(v))) continue;
            rc = js_fail(c, NUAGE_E_UNSUPPORTED, y, k, "'not' of '%s' is not supported", k);
        } else if (!strcmp(k, "type")) rc = neg_type(c, v, y, pieces);
        else if (!strcmp(k, "enum")) {
            if (!json_is_array(v)) rc = js_fail(c, NUAGE_E_INVAL, y, k, "enum must be an array");
            else rc = neg_enum(c, v, false, y, k, pieces);
        } else if (!strcmp(k, "const")) rc = neg_enum(c, v, true, y, k, pieces);
        else if (!strcmp(k, "minimum") || !strcmp(k, "maximum") || !strcmp(k, "exclusiveMinimum") ||
                 !strcmp(k, "exclusiveMaximum")) {
            if (!json_is_number(v) || json_is_boolean(json_object_get(y, "exclusiveMinimum")) ||
                json_is_boolean(json_object_get(y, "exclusiveMaximum"))) {
                rc = js_fail(c, NUAGE_E_UNSUPPORTED, y, k, "'not' of draft-4 exclusive bounds is not supported");
                break;
            }
            const char *flip = !strcmp(k, "minimum") ? "exclusiveMaximum" : !strcmp(k, "maximum") ? "exclusiveMinimum"
                             : !strcmp(k, "exclusiveMinimum") ? "maximum" : "minimum";
            if (push(pieces, json_pack("{s:s,s:O}", "type", "number", flip, v)) < 0) rc = NUAGE_E_NOMEM;
        } else if (!strcmp(k, "minLength") || !strcmp(k, "maxLength")) rc = neg_count(c, "string", k, v, y, pieces);
        else if (!strcmp(k, "minItems") || !strcmp(k, "maxItems")) rc = neg_count(c, "array", k, v, y, pieces);
        else if (!strcmp(k, "minProperties") || !strcmp(k, "maxProperties")) rc = neg_count(c, "object", k, v, y, pieces);
        else if (!strcmp(k, "required")) {
            for (size_t i = 0; json_is_array(v) && i < json_array_size(v) && rc == 0; i++) {
                const char *name = json_string_value(json_array_get(v, i));
                if (!name) { rc = js_fail(c, NUAGE_E_INVAL, y, k, "required must hold strings"); break; }
                if (push(pieces, json_pack("{s:s,s:{s:b}}", "type", "object", "properties", name, 0)) < 0) rc = NUAGE_E_NOMEM;
            }
        } else if (!strcmp(k, "properties")) {
            /* some declared key present with a value its schema refuses */
            if (!json_is_object(v)) { rc = js_fail(c, NUAGE_E_INVAL, y, k, "properties must be an object"); break; }
            const char *pk;
            json_t *ps;
            json_object_foreach(v, pk, ps) {
                if (json_is_true(ps) || (json_is_object(ps) && json_object_size(ps) == 0)) continue;
                json_t *np = neg(c, ps, at, depth + 1);
                if (!np) { rc = c->rc ? c->rc : NUAGE_E_NOMEM; break; }
                if (json_is_false(np)) { json_decref(np); continue; }
                if (push(pieces, json_pack("{s:s,s:[s],s:{s:o}}", "type", "object", "required", pk, "properties", pk, np)) < 0) {
                    rc = NUAGE_E_NOMEM;
                    break;
                }
            }
        } else if (!strcmp(k, "additionalProperties") && json_is_true(v)) {
            continue;
        } else if (!strcmp(k, "not")) {
            if (push(pieces, json_deep_copy(v)) < 0) rc = NUAGE_E_NOMEM;
        } else if (!strcmp(k, "allOf") || !strcmp(k, "anyOf") || !strcmp(k, "$ref")) {
            json_t *arr = !strcmp(k, "$ref") ? NULL : (json_t *)v;
            if (arr && !json_is_array(arr)) { rc = js_fail(c, NUAGE_E_INVAL, y, k, "%s must be an array", k); break; }
            json_t *negs = json_array();
            size_t n = arr ? json_array_size(arr) : 1;
            for (size_t i = 0; i < n && rc == 0; i++) {
                const json_t *br = arr ? json_array_get(arr, i) : js_resolve_ref(c, y, json_string_value(v));
                if (!br) { rc = c->rc ? c->rc : NUAGE_E_INVAL; break; }
                json_t *nb = neg(c, br, at, depth + 1);
                if (!nb) { rc = c->rc ? c->rc : NUAGE_E_NOMEM; break; }
                json_array_append_new(negs, nb);
            }
            if (rc == 0) {
                if (!strcmp(k, "anyOf")) { if (push(pieces, json_pack("{s:o}", "allOf", negs)) < 0) rc = NUAGE_E_NOMEM; negs = NULL; }
                else for (size_t i = 0; i < json_array_size(negs); i++) json_array_append(pieces, json_array_get(negs, i));
            }
            json_decref(negs);
        } else {
            rc = js_fail(c, NUAGE_E_UNSUPPORTED, y, k, "'not' of '%s' is not supported", k);
        }
    }
    if (rc < 0) {
        json_decref(pieces);
        if (c->rc == 0) js_fail(c, rc, at, "not", "'not' could not be compiled");
        return NULL;
    }
    size_t n = json_array_size(pieces);
    if (n == 0) { json_decref(pieces); return json_false(); }   /* not {} */
    if (n == 1) { json_t *p = json_incref(json_array_get(pieces, 0)); json_decref(pieces); return p; }
    return json_pack("{s:o}", "anyOf", pieces);
}

json_t *js_negate(js_ctx *c, const json_t *y, const json_t *at) {
    json_t *r = neg(c, y, at, 0);
    if (!r) return NULL;
    if (js_keep(c, r) < 0) return NULL;
    return r;
}

json_t *js_conditional(js_ctx *c, const json_t *s) {
    const json_t *i = json_object_get(s, "if"), *t = json_object_get(s, "then"), *e = json_object_get(s, "else");
    json_t *ni = js_negate(c, i, s);
    if (!ni) return NULL;
    json_t *yes = t ? json_pack("{s:[O,O]}", "allOf", i, t) : json_incref((json_t *)i);
    json_t *no = e ? json_pack("{s:[O,O]}", "allOf", ni, e) : json_incref(ni);
    json_t *r = (yes && no) ? json_pack("{s:[o,o]}", "anyOf", yes, no) : NULL;
    if (!r) { json_decref(yes); json_decref(no); js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory"); return NULL; }
    return js_keep(c, r) < 0 ? NULL : r;
}

json_t *js_dependencies(js_ctx *c, const json_t *s, const char *kw) {
    const json_t *d = json_object_get(s, kw);
    if (!json_is_object(d)) { js_fail(c, NUAGE_E_INVAL, s, kw, "%s must be an object", kw); return NULL; }
    if (json_object_size(d) > 6) {
        js_fail(c, NUAGE_E_UNSUPPORTED, s, kw, "more than 6 %s are not supported", kw);
        return NULL;
    }
    json_t *all = json_array();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)d, k, v) {
        json_t *absent = json_pack("{s:{s:b}}", "properties", k, 0), *present;
        if (json_is_array(v)) {
            json_t *req = json_array();
            json_array_append_new(req, json_string(k));
            for (size_t j = 0; j < json_array_size(v); j++) json_array_append(req, json_array_get(v, j));
            present = json_pack("{s:o}", "required", req);
        } else {
            present = json_pack("{s:[{s:[s]},O]}", "allOf", "required", k, v);
        }
        json_t *alt = (absent && present) ? json_pack("{s:[o,o]}", "anyOf", absent, present) : NULL;
        if (!alt) { json_decref(all); js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory"); return NULL; }
        json_array_append_new(all, alt);
    }
    json_t *r = json_pack("{s:o}", "allOf", all);
    if (!r) { js_fail(c, NUAGE_E_NOMEM, NULL, NULL, "out of memory"); return NULL; }
    return js_keep(c, r) < 0 ? NULL : r;
}
